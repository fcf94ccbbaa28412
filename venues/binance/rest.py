"""The signed REST side of the Binance USD-M adapter: one session, signing, the venue clock, calls.

Every request goes through `BinanceRest.send`: signed with the secret and the venue's clock,
under explicit timeouts, its failures mapped to the `venues.errors` family. An order whose
answer is lost is resolved by querying its client order id, never by sending it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import aiohttp
import msgspec
from yarl import URL

from venues.binance import parse, wire
from venues.client import take_samples
from venues.errors import (
    AuthError,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    ExecutionReport,
    Instrument,
    NewOrder,
    Position,
    pending_report,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
RespType = Literal["ACK", "RESULT"]
PublicGet = Callable[[str, dict[str, str] | None], Awaitable[bytes]]
BATCH_MAX = 5  # Binance takes at most 5 orders per /batchOrders
_HALF_MS_NS = 500_000
_FINISHED_KEPT = 10_000


class Secret:
    """An API secret that signs and never shows itself (repr, logs, pickles)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.encode()

    def sign(self, payload: str) -> str:
        return wire.sign(self._value, payload)

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> Any:
        raise TypeError("an API secret cannot be pickled")


class OrderWatch:
    """Which orders may still change: what a resync after a stream drop must ask about."""

    def __init__(self) -> None:
        # client order id -> (symbol, venue order id); the id is 0 until the venue answers.
        self.unfinished: dict[str, tuple[str, int]] = {}
        self._finished: dict[str, None] = {}  # recently terminal, oldest first

    def track_inflight(self, order: NewOrder) -> bool:
        """Watch an order before its answer, so a resync while it is in flight asks for it.
        False when it was watched already (then a failure must not forget it)."""
        if order.client_order_id in self.unfinished:
            return False
        self.unfinished[order.client_order_id] = (order.symbol, 0)
        return True

    def forget(self, client_order_id: str) -> None:
        """The order never reached the venue."""
        self.unfinished.pop(client_order_id, None)

    def keep_asking(self, order: NewOrder) -> None:
        """An order whose outcome stays unknown: the next resync asks for it again."""
        self.unfinished.setdefault(order.client_order_id, (order.symbol, 0))

    def observe(self, report: ExecutionReport) -> ExecutionReport:
        """Follow what a report says of its order; the report, unchanged."""
        coid = report.client_order_id
        if report.status.is_terminal:
            self.unfinished.pop(coid, None)
            self._finished[coid] = None
            if len(self._finished) > _FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
        elif coid not in self._finished:
            # An answer can arrive after the stream has already shown the order done.
            self.unfinished[coid] = (report.symbol, report.order_id)
        return report


class BinanceRest:
    """One account's REST API at a Binance USD-M venue: the transport and every call.

    `orders` and `fees` are shared with the user-data stream, which observes the same
    orders and adds the fills it sees. `closed` is set by the client that owns this when it
    closes: from then on no request starts and no stream reconnects.
    """

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        api_key: str,
        secret: Secret,
        declared_ack: AckKind,
        resp_type: RespType,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        account_id: str,
        account_api: Literal["v2", "v3"],
        time_sync: bool,
        clock_samples: int,
        resolve_timeout_s: float,
    ) -> None:
        self.venue = venue
        self.rest_url = rest_url
        self.api_key = api_key
        self._secret = secret
        self.declared_ack = declared_ack
        self._resp_type = resp_type
        self._recv_window_ms = recv_window_ms
        self._timeout = timeout
        self._account_id = account_id
        self._account_api = account_api
        self.time_sync = time_sync
        self._clock_samples = clock_samples
        self._resolve_timeout_s = resolve_timeout_s

        self.closed = False
        self._session: aiohttp.ClientSession | None = None
        self.orders = OrderWatch()
        self.fees = parse.FeeLedger()
        self._instruments: dict[str, Instrument] = {}  # as last read, to explain rejects

        self.offset_ns = 0
        self.rtt_ns: int | None = None
        self.rtt_median_ns: int | None = None
        self._clock_epoch = 0
        self._clock_lock = asyncio.Lock()

    # --- transport -----------------------------------------------------------------------
    def http(self) -> aiohttp.ClientSession:
        """The one session of this account (REST and WebSockets alike), opened on first use."""
        if self._session is None:
            if self.closed:
                raise VenueUnavailable("client is closed", venue=self.venue)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60.0),
            )
        return self._session

    async def close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timestamp_ms(self) -> int:
        return (time.time_ns() + self.offset_ns) // parse.NS_PER_MS

    async def send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        signed: bool = True,
        api_key: bool = True,
        mutating: bool = False,
        client_order_id: str | None = None,
    ) -> bytes:
        """One request; the body of a 2xx answer, else the mapped `VenueError`."""
        query = dict(params or {})
        if signed:
            query["recvWindow"] = str(self._recv_window_ms)
            query["timestamp"] = str(self._timestamp_ms())
        payload = wire.encode_params(query)
        if signed:
            payload = f"{payload}&signature={self._secret.sign(payload)}"
        headers = {"X-MBX-APIKEY": self.api_key} if api_key or signed else {}
        data: bytes | None = None
        if method in ("POST", "PUT"):
            url = URL(self.rest_url + path)
            if payload:
                data = payload.encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            # Sent exactly as signed: yarl must not re-encode the query.
            url = URL(f"{self.rest_url}{path}{'?' + payload if payload else ''}", encoded=True)
        try:
            async with self.http().request(method, url, data=data, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            # The request never left: nothing can have happened at the venue.
            raise VenueUnavailable(
                f"cannot connect to {self.rest_url} ({type(e).__name__})", venue=self.venue
            ) from e
        except (TimeoutError, aiohttp.ClientError) as e:
            what = f"{method} {path} failed after sending ({type(e).__name__})"
            if mutating:
                raise OutcomeUnknown(
                    f"{what}; execution status unknown",
                    venue=self.venue,
                    client_order_id=client_order_id,
                ) from e
            raise VenueUnavailable(what, venue=self.venue) from e
        if 200 <= status < 300:
            return body
        raise parse.error_from_response(
            status,
            body,
            venue=self.venue,
            mutating=mutating,
            client_order_id=client_order_id,
            retry_after_s=parse.retry_after(retry_after),
        )

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        mutating: bool = False,
        client_order_id: str | None = None,
    ) -> bytes:
        """A signed request; a stale timestamp (-1021) re-measures the clock and retries
        once, which is safe: Binance refuses such a request before looking at it."""
        epoch = self._clock_epoch
        try:
            return await self.send(
                method, path, params, mutating=mutating, client_order_id=client_order_id
            )
        except AuthError as e:
            if e.code != parse.STALE_TIMESTAMP or not self.time_sync:
                raise
        await self._resync_clock(epoch)
        return await self.send(
            method, path, params, mutating=mutating, client_order_id=client_order_id
        )

    async def public(self, path: str, params: dict[str, str] | None = None) -> bytes:
        """An unsigned GET without the API key (market data, the clock)."""
        return await self.send("GET", path, params, signed=False, api_key=False)

    def decode(self, decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
        try:
            return decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise VenueError(f"unexpected answer to {what}: {e}", venue=self.venue) from e

    # --- clock ---------------------------------------------------------------------------
    async def sync_clock(self, samples: int | None = None) -> int:
        """Measure the venue clock against the local one; keep the minimum-round-trip
        sample: offset = server − (send + receive) / 2. Returns the offset in ns.

        A sample the venue does not answer (a busy venue times out now and then) is taken
        again (`take_samples`); only a venue that answers none fails the measurement."""
        best: tuple[int, int] | None = None
        rtts: list[int] = []

        async def sample() -> None:
            nonlocal best
            sent_wall = time.time_ns()
            sent = time.monotonic_ns()
            body = await self.public("/fapi/v1/time")
            rtt = time.monotonic_ns() - sent
            server_ms = self.decode(wire.SERVER_TIME, body, "/fapi/v1/time").server_time
            # The venue truncates to the millisecond: its true time is half a ms later on
            # average.
            offset = parse.ms_to_ns(server_ms) + _HALF_MS_NS - (sent_wall + rtt // 2)
            rtts.append(rtt)
            if best is None or rtt < best[1]:
                best = (offset, rtt)

        await take_samples(sample, samples or self._clock_samples)
        assert best is not None
        self.offset_ns, self.rtt_ns = best
        self.rtt_median_ns = sorted(rtts)[len(rtts) // 2]
        self._clock_epoch += 1
        log.info(
            "%s: venue clock offset %.3f ms (round trip %.3f ms)",
            self.venue,
            best[0] / 1e6,
            best[1] / 1e6,
        )
        return self.offset_ns

    async def _resync_clock(self, epoch: int) -> None:
        async with self._clock_lock:
            if self._clock_epoch == epoch:  # nobody re-measured since the request was signed
                await self.sync_clock()

    async def server_time_ns(self) -> int:
        body = await self.public("/fapi/v1/time")
        return parse.ms_to_ns(self.decode(wire.SERVER_TIME, body, "/fapi/v1/time").server_time)

    def venue_now_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    # --- listen key ----------------------------------------------------------------------
    async def listen_key(self, method: Literal["POST", "PUT"]) -> str:
        """Create (POST) or keep alive (PUT) the account's listenKey; needs the API key only."""
        body = await self.send(method, "/fapi/v1/listenKey", signed=False, api_key=True)
        return self.decode(wire.LISTEN_KEY, body, "listenKey").listen_key

    # --- reference data ------------------------------------------------------------------
    async def instruments(self) -> list[Instrument]:
        body = await self.public("/fapi/v1/exchangeInfo")
        insts = parse.instruments(self.decode(wire.EXCHANGE_INFO, body, "exchangeInfo"))
        self._instruments = {i.symbol: i for i in insts}
        return insts

    async def order_book(self, symbol: str, depth: int) -> BookSnapshot:
        limit = parse.depth_limit(depth)
        body = await self.public("/fapi/v1/depth", {"symbol": symbol, "limit": str(limit)})
        return parse.book(self.decode(wire.DEPTH, body, "depth"), self.venue, symbol, depth)

    # --- orders --------------------------------------------------------------------------
    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id."""
        try:
            params = parse.order_params(order, self._resp_type)
        except OrderRejected as e:
            e.venue = self.venue
            raise
        added = self.orders.track_inflight(order)
        try:
            body = await self.call(
                "POST",
                "/fapi/v1/order",
                params,
                mutating=True,
                client_order_id=order.client_order_id,
            )
        except OutcomeUnknown as e:
            return await self._resolve(order, e)
        except VenueError as e:
            if added:
                self.orders.forget(order.client_order_id)
            if isinstance(e, OrderRejected):
                raise await self._refined(e, order) from None
            raise
        report = parse.order_report(
            self.decode(wire.ORDER, body, "new order"), self.venue, ack_kind=self.declared_ack
        )
        return self.orders.observe(self._with_known_fees(report))

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Send orders in /batchOrders requests of up to 5; each succeeds or fails alone."""
        chunks = [orders[i : i + BATCH_MAX] for i in range(0, len(orders), BATCH_MAX)]
        answers = await asyncio.gather(*(self._place_chunk(c) for c in chunks))
        return [a for chunk in answers for a in chunk]

    async def _place_chunk(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        answers: list[ExecutionReport | VenueError | None] = [None] * len(orders)
        chunk: list[NewOrder] = []
        items: list[dict[str, str]] = []
        at: list[int] = []
        for i, o in enumerate(orders):
            try:
                items.append(parse.order_params(o, self._resp_type))
            except OrderRejected as e:
                e.venue = self.venue
                answers[i] = e
            else:
                chunk.append(o)
                at.append(i)
        if chunk:
            for i, answer in zip(at, await self._send_chunk(chunk, items), strict=True):
                answers[i] = answer
        return [a for a in answers if a is not None]

    async def _send_chunk(
        self, chunk: Sequence[NewOrder], items: list[dict[str, str]]
    ) -> list[ExecutionReport | VenueError]:
        params = {"batchOrders": wire.ENCODER.encode(items).decode()}
        added = [self.orders.track_inflight(o) for o in chunk]
        try:
            body = await self.call("POST", "/fapi/v1/batchOrders", params, mutating=True)
        except OutcomeUnknown as e:
            return list(await asyncio.gather(*(self._resolve(o, e) for o in chunk)))
        except VenueError as e:
            for o, a in zip(chunk, added, strict=True):
                if a:
                    self.orders.forget(o.client_order_id)
            return [e] * len(chunk)
        raw = self.decode(wire.BATCH, body, "batchOrders")
        if len(raw) != len(chunk):
            raise VenueError(
                f"batchOrders answered {len(raw)} items for {len(chunk)} orders",
                venue=self.venue,
            )

        async def one(o: NewOrder, item: msgspec.Raw, a: bool) -> ExecutionReport | VenueError:
            try:
                answer = wire.batch_item(item)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                return VenueError(f"unexpected batchOrders item: {e}", venue=self.venue)
            if isinstance(answer, wire.ErrorBody):
                err = parse.error_from_code(
                    answer.code,
                    answer.msg,
                    venue=self.venue,
                    mutating=True,
                    client_order_id=o.client_order_id,
                )
                if isinstance(err, OutcomeUnknown):
                    return await self._resolve(o, err)
                if a:
                    self.orders.forget(o.client_order_id)
                if isinstance(err, OrderRejected):
                    return await self._refined(err, o)
                return err
            report = parse.order_report(answer, self.venue, ack_kind=self.declared_ack)
            return self.orders.observe(self._with_known_fees(report))

        return list(
            await asyncio.gather(
                *(one(o, item, a) for o, item, a in zip(chunk, raw, added, strict=True))
            )
        )

    async def _refined(self, err: OrderRejected, order: NewOrder) -> OrderRejected:
        """A precision error (-1111) does not say whether the price or the quantity broke
        it; the instrument's tick and lot do."""
        if err.code != parse.BAD_PRECISION:
            return err
        if order.symbol not in self._instruments:
            with contextlib.suppress(VenueError):
                await self.instruments()
        inst = self._instruments.get(order.symbol)
        reason = parse.precision_reason(order, inst) if inst is not None else None
        if reason is None or reason is err.reason:
            return err
        return OrderRejected(
            err.message,
            reason=reason,
            venue=err.venue,
            code=err.code,
            client_order_id=err.client_order_id,
        )

    async def _resolve(self, order: NewOrder, cause: OutcomeUnknown) -> ExecutionReport:
        """Learn what became of an order whose answer was lost, by asking for its client
        order id with backoff until the deadline. Never sends the order again."""
        deadline = time.monotonic() + self._resolve_timeout_s
        delay = 0.02
        log.warning(
            "%s: outcome of order %s unknown (%s); querying it",
            self.venue,
            order.client_order_id,
            cause.message,
        )
        while True:
            try:
                report = await self.query(order.symbol, order.client_order_id)
            except UnknownOrder:
                pass  # not there (yet): the venue may still be processing it
            except RateLimited as e:
                delay = max(delay, e.retry_after_s or 0.0)
            except VenueError as e:
                log.info("%s: query of %s failed: %s", self.venue, order.client_order_id, e)
            else:
                # The answer now comes from a query, after any match: a RESULT.
                return msgspec.structs.replace(report, ack_kind=AckKind.RESULT)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)
        log.warning(
            "%s: order %s still unresolved after %.1fs",
            self.venue,
            order.client_order_id,
            self._resolve_timeout_s,
        )
        self.orders.keep_asking(order)
        return pending_report(order, self.venue, AckKind.UNKNOWN)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """Cancel one order. A cancel is idempotent: on OutcomeUnknown, send it again."""
        body = await self.call(
            "DELETE",
            "/fapi/v1/order",
            {"symbol": symbol, "origClientOrderId": client_order_id},
            mutating=True,
            client_order_id=client_order_id,
        )
        report = parse.order_report(self.decode(wire.ORDER, body, "cancel"), self.venue)
        return self.orders.observe(await self._with_fees(report))

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards.

        Binance's DELETE /allOpenOrders answers only "done", so the orders open before it
        are queried after it (fills that raced the cancel included).
        """
        before = await self.open_orders(symbol)
        await self.call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}, mutating=True)
        after = await asyncio.gather(
            *(self.query(symbol, r.client_order_id) for r in before), return_exceptions=True
        )
        out = []
        for r in after:
            if isinstance(r, UnknownOrder):
                continue
            if isinstance(r, BaseException):
                raise r
            out.append(r)
        return out

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """The order's state now, by client order id, fees included."""
        body = await self.call(
            "GET", "/fapi/v1/order", {"symbol": symbol, "origClientOrderId": client_order_id}
        )
        report = parse.order_report(self.decode(wire.ORDER, body, "query order"), self.venue)
        return self.orders.observe(await self._with_fees(report))

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        body = await self.call("GET", "/fapi/v1/openOrders", {"symbol": symbol} if symbol else {})
        orders = self.decode(wire.ORDERS, body, "openOrders")
        reports = await asyncio.gather(
            *(self._with_fees(parse.order_report(o, self.venue)) for o in orders)
        )
        return [self.orders.observe(r) for r in reports]

    async def user_trades(self, symbol: str, order_id: str | None = None) -> list[wire.UserTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        params = {"symbol": symbol}
        if order_id is not None:
            params["orderId"] = order_id
        body = await self.call("GET", "/fapi/v1/userTrades", params)
        trades = self.decode(wire.USER_TRADES, body, "userTrades")
        return [t for t in trades if order_id is None or str(t.order_id) == order_id]

    def _with_known_fees(self, report: ExecutionReport) -> ExecutionReport:
        fee = self.fees.fee(report.symbol, report.order_id)
        return report if fee == report.cum_fee else msgspec.structs.replace(report, cum_fee=fee)

    async def _with_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with its cumulative fee; REST orders carry none, so the fills the
        stream has not shown are read from /userTrades."""
        if report.cum_filled > 0 and not self.fees.complete(report):
            for t in await self.user_trades(report.symbol, report.order_id):
                self.fees.add(t.symbol, str(t.order_id), str(t.id), t.qty, t.commission)
        return self._with_known_fees(report)

    # --- account -------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """Collateral and margin (/fapi/v2 or v3/account) with positions (positionRisk)."""
        acct_body, pos_body = await asyncio.gather(
            self.call("GET", f"/fapi/{self._account_api}/account"),
            self.call("GET", f"/fapi/{self._account_api}/positionRisk"),
        )
        return parse.account(
            self.decode(wire.ACCOUNT, acct_body, "account"),
            self.decode(wire.POSITIONS, pos_body, "positionRisk"),
            venue=self.venue,
            account_id=self._account_id,
            ts_ns=self.venue_now_ns(),
        )

    async def positions(self) -> list[Position]:
        body = await self.call("GET", f"/fapi/{self._account_api}/positionRisk")
        return parse.positions(self.decode(wire.POSITIONS, body, "positionRisk"))
