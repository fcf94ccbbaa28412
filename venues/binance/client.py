"""`BinanceUsdmClient`: legato's native client of the Binance USD-M futures API (aiohttp I/O).

The same code talks to the simulated venue server and to the real venue: only the base URLs
and the credentials change. One `aiohttp.ClientSession` per client, explicit timeouts, the
venue's clock tracked for signatures and for attribution, UNKNOWN outcomes resolved by
querying the client order id (never by sending again), and a user-data stream that
reconnects after a drop and re-synchronises the orders it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
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
    MarketEvent,
    NewOrder,
    Position,
    pending_report,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
RespType = Literal["ACK", "RESULT"]
BATCH_MAX = 5  # Binance takes at most 5 orders per /batchOrders
_HALF_MS_NS = 500_000
_FINISHED_KEPT = 10_000


class _Secret:
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


class _Closed:
    """Ends the execution-report stream."""


class BinanceUsdmClient:
    """`VenueClient` over the Binance USD-M futures REST API and its user-data stream.

    `ack_semantics` is what the venue's answer to a new order means (DESIGN §6): Binance's
    ACK answers after the risk checks (ACCEPTED); with `resp_type="RESULT"` the answer waits
    for the match and every ack is RESULT. Use as an async context manager, or call
    `start()` and `close()`: `start()` measures the venue clock and opens the user-data
    stream, so no execution report is missed from then on.

    The real venue (never used by tests) is `rest_url="https://fapi.binance.com"` with
    `user_ws_url="wss://fstream.binance.com/private"`, `public_ws_url=".../public"`,
    `market_ws_url=".../market"` and `trade_stream="aggTrade"` (the trade stream USD-M
    documents). The simulator serves everything from `ws_url`.
    """

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        ws_url: str,
        api_key: str,
        secret: str,
        ack_semantics: AckKind = AckKind.ACCEPTED,
        resp_type: RespType = "ACK",
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        account_id: str = "",
        account_api: Literal["v2", "v3"] = "v2",
        user_ws_url: str | None = None,
        market_ws_url: str | None = None,
        public_ws_url: str | None = None,
        trade_stream: Literal["trade", "aggTrade"] = "trade",
        time_sync: bool = True,
        clock_samples: int = 5,
        resolve_timeout_s: float = 3.0,
        keepalive_s: float = 30 * 60.0,
        reconnect_max_s: float = 5.0,
        ws_heartbeat_s: float = 20.0,
        stream_connect_timeout_s: float = 5.0,
        report_queue: int = 10_000,
    ) -> None:
        if resp_type not in ("ACK", "RESULT"):
            raise ValueError(f"resp_type must be 'ACK' or 'RESULT', got {resp_type!r}")
        if account_api not in ("v2", "v3"):
            raise ValueError(f"account_api must be 'v2' or 'v3', got {account_api!r}")
        if trade_stream not in ("trade", "aggTrade"):
            raise ValueError(f"trade_stream must be 'trade' or 'aggTrade', got {trade_stream!r}")
        if not api_key or not secret:
            raise AuthError("an API key and secret are required", venue=venue)
        self._venue = venue
        self._rest_url = rest_url.rstrip("/")
        self._ws_url = ws_url.rstrip("/")
        # Binance now splits its streams: user data under /private, book tickers under
        # /public, trades under /market. The simulator serves them all from one root.
        self._user_ws_url = (user_ws_url or ws_url).rstrip("/")
        self._market_ws_url = (market_ws_url or ws_url).rstrip("/")
        self._public_ws_url = (public_ws_url or market_ws_url or ws_url).rstrip("/")
        self._api_key = api_key
        self._secret = _Secret(secret)
        self._declared_ack = AckKind.RESULT if resp_type == "RESULT" else ack_semantics
        self._resp_type = resp_type
        self._recv_window_ms = recv_window_ms
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._account_id = account_id
        self._account_api = account_api
        self._trade_stream = trade_stream
        self._time_sync = time_sync
        self._clock_samples = max(1, clock_samples)
        self._resolve_timeout_s = resolve_timeout_s
        self._keepalive_s = keepalive_s
        self._reconnect_max_s = reconnect_max_s
        self._ws_heartbeat_s = ws_heartbeat_s
        self._stream_connect_timeout_s = stream_connect_timeout_s

        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_task: asyncio.Task[None] | None = None
        self._user_ws: aiohttp.ClientWebSocketResponse | None = None
        self._market_ws: set[aiohttp.ClientWebSocketResponse] = set()
        self._connected = asyncio.Event()
        self._reports: asyncio.Queue[ExecutionReport | VenueError | _Closed] = asyncio.Queue(
            report_queue
        )
        self._overflowed = False
        # Orders that may still change: client order id -> (symbol, venue order id).
        self._open: dict[str, tuple[str, int]] = {}
        self._finished: dict[str, None] = {}  # recently terminal, oldest first
        self._fees = parse.FeeLedger()
        self._instruments: dict[str, Instrument] = {}  # as last read, to explain rejects

        self._offset_ns = 0
        self._rtt_ns: int | None = None
        self._rtt_median_ns: int | None = None
        self._clock_epoch = 0
        self._clock_lock = asyncio.Lock()

        self.reconnects = 0  # user-data stream reconnection attempts
        self.resyncs = 0  # completed re-synchronisations of open orders
        self.keepalives = 0  # listenKey keepalives the venue accepted

    @classmethod
    def from_env(
        cls,
        venue: str,
        rest_url: str,
        ws_url: str,
        api_key_env: str,
        secret_env: str,
        **kwargs: Any,
    ) -> BinanceUsdmClient:
        """A client whose credentials come from two environment variables."""
        missing = [name for name in (api_key_env, secret_env) if not os.environ.get(name)]
        if missing:
            raise AuthError(
                f"environment variable {' and '.join(missing)} is not set or empty "
                f"(the API key is read from {api_key_env}, the secret from {secret_env})",
                venue=venue,
            )
        return cls(
            venue,
            rest_url=rest_url,
            ws_url=ws_url,
            api_key=os.environ[api_key_env],
            secret=os.environ[secret_env],
            **kwargs,
        )

    def __repr__(self) -> str:
        key = f"{self._api_key[:4]}…" if len(self._api_key) > 4 else "…"
        return (
            f"BinanceUsdmClient(venue={self._venue!r}, rest_url={self._rest_url!r}, "
            f"ws_url={self._ws_url!r}, api_key={key!r})"
        )

    # --- VenueClient: identity ---------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @property
    def ack_semantics(self) -> AckKind:
        return self._declared_ack

    @property
    def clock_offset_ns(self) -> int:
        """Venue clock minus local wall clock, from the minimum-round-trip sample."""
        return self._offset_ns

    @property
    def clock_rtt_ns(self) -> int | None:
        """Round trip of the sample the offset came from (its error is at most half)."""
        return self._rtt_ns

    @property
    def typical_rtt_ns(self) -> int | None:
        """The median round trip of the last clock measurement: what a request usually
        takes there and back (the minimum is what it takes at best)."""
        return self._rtt_median_ns

    @property
    def stream_connected(self) -> bool:
        return self._connected.is_set()

    def venue_now_ns(self) -> int:
        """The venue's clock now, as estimated from the local clock and the offset."""
        return time.time_ns() + self._offset_ns

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Measure the venue clock and open the user-data stream (waits until connected)."""
        if self._started:
            return
        self._started = True
        try:
            if self._time_sync:
                await self.sync_clock()
            # Created here rather than in the stream task so that bad credentials fail now.
            key = await self._listen_key_call("POST")
            self._ensure_stream(key)
            try:
                await asyncio.wait_for(self._connected.wait(), self._stream_connect_timeout_s)
            except TimeoutError:
                raise VenueUnavailable(
                    f"user-data stream did not connect within {self._stream_connect_timeout_s}s",
                    venue=self._venue,
                ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every background task, end the streams and release the session."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._stream_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for ws in list(self._market_ws):
            with contextlib.suppress(Exception):
                await ws.close()
        # The listenKey is left to expire rather than deleted: Binance keeps one per account,
        # and other clients of the same account (other legs) may be reading it.
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._connected.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._reports.put_nowait(_Closed())

    async def __aenter__(self) -> BinanceUsdmClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=f"{self._venue}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: background task %s failed",
                self._venue,
                task.get_name(),
                exc_info=task.exception(),
            )

    # --- HTTP ------------------------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise VenueUnavailable("client is closed", venue=self._venue)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60.0),
            )
        return self._session

    def _timestamp_ms(self) -> int:
        return (time.time_ns() + self._offset_ns) // parse.NS_PER_MS

    async def _send(
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
        headers = {"X-MBX-APIKEY": self._api_key} if api_key or signed else {}
        data: bytes | None = None
        if method in ("POST", "PUT"):
            url = URL(self._rest_url + path)
            if payload:
                data = payload.encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            # Sent exactly as signed: yarl must not re-encode the query.
            url = URL(f"{self._rest_url}{path}{'?' + payload if payload else ''}", encoded=True)
        try:
            async with self._http().request(method, url, data=data, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            # The request never left: nothing can have happened at the venue.
            raise VenueUnavailable(
                f"cannot connect to {self._rest_url} ({type(e).__name__})", venue=self._venue
            ) from e
        except (TimeoutError, aiohttp.ClientError) as e:
            what = f"{method} {path} failed after sending ({type(e).__name__})"
            if mutating:
                raise OutcomeUnknown(
                    f"{what}; execution status unknown",
                    venue=self._venue,
                    client_order_id=client_order_id,
                ) from e
            raise VenueUnavailable(what, venue=self._venue) from e
        if 200 <= status < 300:
            return body
        raise parse.error_from_response(
            status,
            body,
            venue=self._venue,
            mutating=mutating,
            client_order_id=client_order_id,
            retry_after_s=parse.retry_after(retry_after),
        )

    async def _call(
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
            return await self._send(
                method, path, params, mutating=mutating, client_order_id=client_order_id
            )
        except AuthError as e:
            if e.code != parse.STALE_TIMESTAMP or not self._time_sync:
                raise
        await self._resync_clock(epoch)
        return await self._send(
            method, path, params, mutating=mutating, client_order_id=client_order_id
        )

    async def _public(self, path: str, params: dict[str, str] | None = None) -> bytes:
        return await self._send("GET", path, params, signed=False, api_key=False)

    def _decode(self, decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
        try:
            return decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise VenueError(f"unexpected answer to {what}: {e}", venue=self._venue) from e

    # --- clock -----------------------------------------------------------------------------
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
            body = await self._public("/fapi/v1/time")
            rtt = time.monotonic_ns() - sent
            server_ms = self._decode(wire.SERVER_TIME, body, "/fapi/v1/time").server_time
            # The venue truncates to the millisecond: its true time is half a ms later on
            # average.
            offset = parse.ms_to_ns(server_ms) + _HALF_MS_NS - (sent_wall + rtt // 2)
            rtts.append(rtt)
            if best is None or rtt < best[1]:
                best = (offset, rtt)

        await take_samples(sample, samples or self._clock_samples)
        assert best is not None
        self._offset_ns, self._rtt_ns = best
        self._rtt_median_ns = sorted(rtts)[len(rtts) // 2]
        self._clock_epoch += 1
        log.info(
            "%s: venue clock offset %.3f ms (round trip %.3f ms)",
            self._venue,
            best[0] / 1e6,
            best[1] / 1e6,
        )
        return self._offset_ns

    async def _resync_clock(self, epoch: int) -> None:
        async with self._clock_lock:
            if self._clock_epoch == epoch:  # nobody re-measured since the request was signed
                await self.sync_clock()

    async def server_time_ns(self) -> int:
        body = await self._public("/fapi/v1/time")
        return parse.ms_to_ns(self._decode(wire.SERVER_TIME, body, "/fapi/v1/time").server_time)

    # --- reference data --------------------------------------------------------------------
    async def instruments(self) -> list[Instrument]:
        body = await self._public("/fapi/v1/exchangeInfo")
        insts = parse.instruments(self._decode(wire.EXCHANGE_INFO, body, "exchangeInfo"))
        self._instruments = {i.symbol: i for i in insts}
        return insts

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        limit = parse.depth_limit(depth)
        body = await self._public("/fapi/v1/depth", {"symbol": symbol, "limit": str(limit)})
        return parse.book(self._decode(wire.DEPTH, body, "depth"), self._venue, symbol, depth)

    # --- orders ----------------------------------------------------------------------------
    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id."""
        try:
            params = parse.order_params(order, self._resp_type)
        except OrderRejected as e:
            e.venue = self._venue
            raise
        added = self._track_inflight(order)
        try:
            body = await self._call(
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
                self._open.pop(order.client_order_id, None)
            if isinstance(e, OrderRejected):
                raise await self._refined(e, order) from None
            raise
        report = parse.order_report(
            self._decode(wire.ORDER, body, "new order"), self._venue, ack_kind=self._declared_ack
        )
        return self._observe(self._with_known_fees(report))

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
                e.venue = self._venue
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
        added = [self._track_inflight(o) for o in chunk]
        try:
            body = await self._call("POST", "/fapi/v1/batchOrders", params, mutating=True)
        except OutcomeUnknown as e:
            return list(await asyncio.gather(*(self._resolve(o, e) for o in chunk)))
        except VenueError as e:
            for o, a in zip(chunk, added, strict=True):
                if a:
                    self._open.pop(o.client_order_id, None)
            return [e] * len(chunk)
        raw = self._decode(wire.BATCH, body, "batchOrders")
        if len(raw) != len(chunk):
            raise VenueError(
                f"batchOrders answered {len(raw)} items for {len(chunk)} orders",
                venue=self._venue,
            )

        async def one(o: NewOrder, item: msgspec.Raw, a: bool) -> ExecutionReport | VenueError:
            try:
                answer = wire.batch_item(item)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                return VenueError(f"unexpected batchOrders item: {e}", venue=self._venue)
            if isinstance(answer, wire.ErrorBody):
                err = parse.error_from_code(
                    answer.code,
                    answer.msg,
                    venue=self._venue,
                    mutating=True,
                    client_order_id=o.client_order_id,
                )
                if isinstance(err, OutcomeUnknown):
                    return await self._resolve(o, err)
                if a:
                    self._open.pop(o.client_order_id, None)
                if isinstance(err, OrderRejected):
                    return await self._refined(err, o)
                return err
            report = parse.order_report(answer, self._venue, ack_kind=self._declared_ack)
            return self._observe(self._with_known_fees(report))

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
            self._venue,
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
                log.info("%s: query of %s failed: %s", self._venue, order.client_order_id, e)
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
            self._venue,
            order.client_order_id,
            self._resolve_timeout_s,
        )
        self._open.setdefault(order.client_order_id, (order.symbol, 0))  # the resync asks again
        return pending_report(order, self._venue, AckKind.UNKNOWN)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """Cancel one order. A cancel is idempotent: on OutcomeUnknown, send it again."""
        body = await self._call(
            "DELETE",
            "/fapi/v1/order",
            {"symbol": symbol, "origClientOrderId": client_order_id},
            mutating=True,
            client_order_id=client_order_id,
        )
        report = parse.order_report(self._decode(wire.ORDER, body, "cancel"), self._venue)
        return self._observe(await self._with_fees(report))

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards.

        Binance's DELETE /allOpenOrders answers only "done", so the orders open before it
        are queried after it (fills that raced the cancel included).
        """
        before = await self.open_orders(symbol)
        await self._call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}, mutating=True)
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
        body = await self._call(
            "GET", "/fapi/v1/order", {"symbol": symbol, "origClientOrderId": client_order_id}
        )
        report = parse.order_report(self._decode(wire.ORDER, body, "query order"), self._venue)
        return self._observe(await self._with_fees(report))

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        body = await self._call("GET", "/fapi/v1/openOrders", {"symbol": symbol} if symbol else {})
        orders = self._decode(wire.ORDERS, body, "openOrders")
        reports = await asyncio.gather(
            *(self._with_fees(parse.order_report(o, self._venue)) for o in orders)
        )
        return [self._observe(r) for r in reports]

    async def user_trades(self, symbol: str, order_id: int | None = None) -> list[wire.UserTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        params = {"symbol": symbol}
        if order_id is not None:
            params["orderId"] = str(order_id)
        body = await self._call("GET", "/fapi/v1/userTrades", params)
        trades = self._decode(wire.USER_TRADES, body, "userTrades")
        return [t for t in trades if order_id is None or t.order_id == order_id]

    def _with_known_fees(self, report: ExecutionReport) -> ExecutionReport:
        fee = self._fees.fee(report.symbol, report.order_id)
        return report if fee == report.cum_fee else msgspec.structs.replace(report, cum_fee=fee)

    async def _with_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with its cumulative fee; REST orders carry none, so the fills the
        stream has not shown are read from /userTrades."""
        if report.cum_filled > 0 and not self._fees.complete(report):
            for t in await self.user_trades(report.symbol, report.order_id):
                self._fees.add(t.symbol, t.order_id, t.id, t.qty, t.commission)
        return self._with_known_fees(report)

    def _track_inflight(self, order: NewOrder) -> bool:
        # Known before its answer, so a stream resync while it is in flight asks for it.
        if order.client_order_id in self._open:
            return False
        self._open[order.client_order_id] = (order.symbol, 0)
        return True

    def _observe(self, report: ExecutionReport) -> ExecutionReport:
        """Follow which orders may still change (what a resync must ask about)."""
        coid = report.client_order_id
        if report.status.is_terminal:
            self._open.pop(coid, None)
            self._finished[coid] = None
            if len(self._finished) > _FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
        elif coid not in self._finished:
            # An answer can arrive after the stream has already shown the order done.
            self._open[coid] = (report.symbol, report.order_id)
        return report

    # --- account ---------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """Collateral and margin (/fapi/v2 or v3/account) with positions (positionRisk)."""
        acct_body, pos_body = await asyncio.gather(
            self._call("GET", f"/fapi/{self._account_api}/account"),
            self._call("GET", f"/fapi/{self._account_api}/positionRisk"),
        )
        return parse.account(
            self._decode(wire.ACCOUNT, acct_body, "account"),
            self._decode(wire.POSITIONS, pos_body, "positionRisk"),
            venue=self._venue,
            account_id=self._account_id,
            ts_ns=self.venue_now_ns(),
        )

    async def positions(self) -> list[Position]:
        body = await self._call("GET", f"/fapi/{self._account_api}/positionRisk")
        return parse.positions(self._decode(wire.POSITIONS, body, "positionRisk"))

    # --- user-data stream ------------------------------------------------------------------
    async def _listen_key_call(self, method: Literal["POST", "PUT"]) -> str:
        """Create (POST) or keep alive (PUT) the account's listenKey; needs the API key only."""
        body = await self._send(method, "/fapi/v1/listenKey", signed=False, api_key=True)
        return self._decode(wire.LISTEN_KEY, body, "listenKey").listen_key

    def _ensure_stream(self, key: str | None = None) -> None:
        if self._stream_task is None and not self._closed:
            self._stream_task = asyncio.create_task(
                self._run_user_stream(key), name=f"{self._venue}-user-stream"
            )

    async def _run_user_stream(self, key: str | None) -> None:
        """Keep one user-data connection up: listenKey, connect, read; after a drop, back off
        and reconnect, then re-synchronise the orders that may have moved meanwhile."""
        attempt = 0
        first = True
        while not self._closed:
            try:
                if key is None:
                    key = await self._listen_key_call("POST")
                url = URL(f"{self._user_ws_url}/ws/{key}")
                async with self._http().ws_connect(
                    url, heartbeat=self._ws_heartbeat_s, decode_text=False
                ) as ws:
                    resync, first, attempt = not first or bool(self._open), False, 0
                    await self._read_user_stream(ws, resync=resync)
            except asyncio.CancelledError:
                raise
            except (VenueError, aiohttp.ClientError, TimeoutError, OSError) as e:
                if not self._closed:
                    log.warning("%s: user-data stream: %s", self._venue, e)
            except Exception:  # a bug must not end the stream for good: log, reconnect
                log.exception("%s: user-data stream failed", self._venue)
            key = None  # ask again: the venue returns the account's key, or a new one
            if self._closed:
                return
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(min(self._reconnect_max_s, 0.05 * 2 ** min(attempt, 10)))

    async def _read_user_stream(self, ws: aiohttp.ClientWebSocketResponse, *, resync: bool) -> None:
        self._user_ws = ws
        self._connected.set()
        # Connected before the snapshot: whatever changes after it arrives on this socket.
        helpers = [self._spawn(self._keepalive(ws), "keepalive")]
        if resync:
            helpers.append(self._spawn(self._resync(), "resync"))
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                    if not self._on_user_message(msg.data):
                        break  # listenKey expired: reconnect with a new one
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.warning("%s: user-data stream error: %s", self._venue, ws.exception())
                    break
        finally:
            self._connected.clear()
            self._user_ws = None
            for t in helpers:
                t.cancel()

    async def _keepalive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """PUT the listenKey on a timer; a key the venue forgot (-1125) means reconnect."""
        while True:
            await asyncio.sleep(self._keepalive_s)
            try:
                await self._listen_key_call("PUT")
                self.keepalives += 1
            except VenueError as e:
                log.warning("%s: listenKey keepalive failed: %s", self._venue, e)
                if e.code == parse.INVALID_LISTEN_KEY:
                    await ws.close()
                    return

    def _on_user_message(self, data: bytes | str) -> bool:
        """Handle one user-data event; False when the stream must be reopened."""
        try:
            event = wire.USER_EVENT.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            try:
                kind = wire.EVENT_HEAD.decode(data).e
            except (msgspec.DecodeError, msgspec.ValidationError):
                kind = ""
            if kind in ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "listenKeyExpired"):
                log.error("%s: malformed %s event: %s", self._venue, kind, e)
            return True  # an event legato does not read (TRADE_LITE, MARGIN_CALL, ...)
        match event:
            case wire.OrderTradeUpdate():
                o = event.order
                try:
                    fill = parse.stream_fill(o)
                    if fill is not None:
                        self._fees.add(o.symbol, o.order_id, fill.trade_id, fill.quantity, fill.fee)
                    report = parse.stream_report(
                        event, self._venue, cum_fee=self._fees.fee(o.symbol, o.order_id)
                    )
                except ValueError as e:  # a status or time in force legato does not know
                    log.error(
                        "%s: cannot read order update of %s: %s", self._venue, o.client_order_id, e
                    )
                    return True
                self._emit(self._observe(report))
            case wire.AccountUpdate():
                pass  # balances and positions are read on demand (account, positions)
            case wire.ListenKeyExpired():
                log.warning("%s: listenKey expired; reconnecting", self._venue)
                return False
        return True

    async def _resync(self) -> None:
        """Emit the current state of every order that may have moved while disconnected:
        the open orders, and each order open before the drop. Retried until it succeeds
        or the connection drops again; cumulative fields make repeats harmless."""
        delay = 0.05
        while True:
            try:
                await self._resync_once()
            except VenueError as e:
                log.warning("%s: resync failed (%s); retrying", self._venue, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max_s)
            else:
                self.resyncs += 1
                return

    async def _resync_once(self) -> None:
        before = dict(self._open)
        current = await self.open_orders()
        seen = {r.client_order_id for r in current}
        for r in current:
            self._emit(r)

        async def settle(coid: str, symbol: str) -> None:
            try:
                self._emit(await self.query(symbol, coid))
            except UnknownOrder:
                self._open.pop(coid, None)  # never reached the venue

        await asyncio.gather(*(settle(c, s) for c, (s, _) in before.items() if c not in seen))

    def _emit(self, report: ExecutionReport) -> None:
        if self._overflowed:
            return  # the consumer has yet to see the overflow; it will resync by query
        try:
            self._reports.put_nowait(report)
        except asyncio.QueueFull:
            # Never drop a report silently: end the consumer's stream with an error instead.
            while not self._reports.empty():
                self._reports.get_nowait()
            self._reports.put_nowait(
                VenueUnavailable(
                    "execution report queue overflowed; resynchronise by query",
                    venue=self._venue,
                )
            )
            self._overflowed = True

    async def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the user-data stream (and resyncs); one consumer per client."""
        self._ensure_stream()
        while True:
            if self._closed and self._reports.empty():
                return
            item = await self._reports.get()
            if isinstance(item, _Closed):
                return
            if isinstance(item, VenueError):
                self._overflowed = False
                raise item
            yield item

    async def wait_stream_connected(self, timeout_s: float) -> None:
        """Wait until the user-data stream is connected (for callers that need it up)."""
        self._ensure_stream()
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def drop_user_stream(self) -> None:
        """Close the user-data connection as a network drop would (it reconnects)."""
        if self._user_ws is not None:
            await self._user_ws.close()

    # --- market streams --------------------------------------------------------------------
    async def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        """Book tickers and trades of `symbols` over combined streams (one connection per
        base URL); each reconnects after a drop. Market data is lossy by nature: nothing
        missed is replayed, and a slow reader loses the oldest events first."""
        groups: dict[str, list[str]] = {}
        for s in symbols:
            groups.setdefault(self._public_ws_url, []).append(f"{s.lower()}@bookTicker")
            groups.setdefault(self._market_ws_url, []).append(f"{s.lower()}@{self._trade_stream}")
        urls = [
            URL(f"{base}/stream?streams={'/'.join(names)}", encoded=True)
            for base, names in groups.items()
        ]
        if len(urls) == 1:
            async for event in self._market_connection(urls[0]):
                yield event
            return
        queue: asyncio.Queue[MarketEvent | _Closed] = asyncio.Queue(10_000)

        async def pump(url: URL) -> None:
            try:
                async for event in self._market_connection(url):
                    if queue.full():
                        queue.get_nowait()
                    queue.put_nowait(event)
            finally:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(_Closed())

        pumps = [self._spawn(pump(url), "market-stream") for url in urls]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Closed):
                    return  # the client closed
                yield item
        finally:
            for t in pumps:
                t.cancel()

    async def _market_connection(self, url: URL) -> AsyncIterator[MarketEvent]:
        attempt = 0
        while not self._closed:
            try:
                async with self._http().ws_connect(
                    url, heartbeat=self._ws_heartbeat_s, decode_text=False
                ) as ws:
                    self._market_ws.add(ws)
                    attempt = 0
                    try:
                        async for msg in ws:
                            if msg.type is not aiohttp.WSMsgType.TEXT and (
                                msg.type is not aiohttp.WSMsgType.BINARY
                            ):
                                break
                            try:
                                envelope = wire.MARKET.decode(msg.data)
                            except (msgspec.DecodeError, msgspec.ValidationError):
                                continue  # a stream legato does not read
                            yield parse.market_event(envelope.data, self._venue)
                    finally:
                        self._market_ws.discard(ws)
            except (VenueError, aiohttp.ClientError, TimeoutError, OSError) as e:
                if not self._closed:
                    log.warning("%s: market stream: %s", self._venue, e)
            if self._closed:
                return
            attempt += 1
            await asyncio.sleep(min(self._reconnect_max_s, 0.05 * 2 ** min(attempt, 10)))
