"""`CcxtClient`: legato's `VenueClient` over ccxt.pro, for exchanges without a native adapter.

The client keeps legato's semantics on top of ccxt's unified API: client order ids mapped to
each exchange's rule and back (`venues.client_ids`), a lost answer resolved by querying the
client id and never by sending again, errors as the `venues.errors` family (Binance-wire
exchanges by their codes, as the native adapter maps them), the venue clock measured at
start, and one execution-report stream joined from ccxt.pro's order and trade streams,
re-synchronised after every reconnection (`venues.ccxt.streams`). Transfers between the
account's wallets and withdrawals go through ccxt's `transfer` and `withdraw` where the
exchange has them, a lost answer found in its history (`venues.binance.transfer_claims`).

ccxt's own client-side rate limiter is off by default, as in the native adapter: the venue's
429s become `RateLimited` with its Retry-After (`rate_limit=True` turns ccxt's on).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import msgspec

from venues.adapter_kit import (
    OrderWatch,
    OwnedTasks,
    batch_failed,
    check_market_tif,
    credentials_from_env,
    measure_clock,
    query_each,
    resolve_by_query,
)
from venues.binance.parse import NS_PER_MS, depth_limit
from venues.binance.transfer_claims import CLOCK_SLACK_NS, TransferClaims, asked, find_lost
from venues.ccxt import parse
from venues.ccxt.exchange import answer_of, make_exchange
from venues.ccxt.join import ReportJoin
from venues.ccxt.rules import exchange_rules
from venues.ccxt.streams import MarketStreams, UserStreams
from venues.client_ids import ClientIds
from venues.errors import (
    AuthError,
    InvalidRequest,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    Unsupported,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    Capabilities,
    ExecutionReport,
    Fill,
    Instrument,
    InstrumentKind,
    MarketEvent,
    NewOrder,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    TimeInForce,
    TransferKind,
    TransferReceipt,
    WalletKind,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_ALL_TIF = frozenset(TimeInForce)
_CCXT_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


class CcxtClient:
    """`VenueClient` over any exchange ccxt.pro implements (spot and linear perpetuals).

    `exchange_id` is ccxt's (`binanceusdm`, `okx`, ...; `known_exchange` says which exist).
    `urls` moves the exchange's REST and WebSocket roots (`{"rest": ..., "ws": ...}`), each
    URL keeping its path: how a simulator is reached. `options` are ccxt's, on top of the
    adapter's defaults for the exchange (`venues.ccxt.rules`). Symbols are the exchange's
    own market ids (BTCUSDT); where one id names several markets, ccxt's `defaultType`
    option picks which. `ack_semantics` overrides the exchange's row in the rules.

    Use as an async context manager, or call `start()` and `close()`.
    """

    def __init__(
        self,
        venue: str,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        password: str | None = None,
        sandbox: bool = False,
        urls: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        timeout_s: float = 10.0,
        account_id: str = "",
        ack_semantics: AckKind | None = None,
        resolve_timeout_s: float = 3.0,
        clock_samples: int = 5,
        reconnect_max_s: float = 5.0,
        stream_connect_timeout_s: float = 10.0,
        report_queue: int = 10_000,
        rate_limit: bool = False,
    ) -> None:
        self._rules = exchange_rules(exchange_id)
        if not api_key or not secret:
            raise AuthError("an API key and secret are required", venue=venue)
        self._venue = venue
        self.rate_limited = 0  # rate-limit answers to this client's calls, for metrics
        self._exchange_id = exchange_id
        self._account_id = account_id
        self._api_key = api_key
        self._secrets = tuple(s for s in (api_key, secret, password) if s)
        self._ack = ack_semantics or self._rules.ack
        self._resolve_timeout_s = resolve_timeout_s
        self._claims = TransferClaims(int(timeout_s * 1e9))
        self._one_transfer_at_a_time = asyncio.Lock()
        self._clock_samples = max(1, clock_samples)

        self._ex, self._redact = make_exchange(
            exchange_id,
            self._rules,
            api_key=api_key,
            secret=secret,
            password=password,
            sandbox=sandbox,
            urls=urls,
            options=options,
            timeout_s=timeout_s,
            rate_limit=rate_limit,
        )

        self._ids = ClientIds(self._rules.client_ids)
        self._join = ReportJoin()
        self.orders = OrderWatch()  # which orders a resync must ask about
        self._instruments: dict[str, Instrument] = {}
        self._unified: dict[str, str] = {}  # market id -> ccxt symbol
        self._market_ids: dict[str, str] = {}  # ccxt symbol -> market id
        self._markets_lock = asyncio.Lock()

        self._offset_ns = 0
        self._rtt_ns: int | None = None
        self._rtt_median_ns: int | None = None
        self._clock_epoch = 0
        self._clock_lock = asyncio.Lock()

        self.closed = False
        self._started = False
        self._tasks = OwnedTasks(venue)
        self._user = UserStreams(
            self,
            spawn=self._tasks.spawn,
            reconnect_max_s=reconnect_max_s,
            connect_timeout_s=stream_connect_timeout_s,
            queue_size=report_queue,
        )
        self._market = MarketStreams(self, spawn=self._tasks.spawn, reconnect_max_s=reconnect_max_s)
        self._ex.legato_hooks = self._user

    @classmethod
    def from_env(
        cls,
        venue: str,
        exchange_id: str,
        *,
        api_key_env: str,
        secret_env: str,
        password_env: str | None = None,
        **kwargs: Any,
    ) -> CcxtClient:
        """A client whose credentials come from environment variables (the password too,
        for the exchanges that have one: OKX's passphrase)."""
        api_key, secret, password = credentials_from_env(
            venue, api_key_env, secret_env, password_env
        )
        return cls(venue, exchange_id, api_key=api_key, secret=secret, password=password, **kwargs)

    def __repr__(self) -> str:
        key = f"{self._api_key[:4]}…" if len(self._api_key) > 4 else "…"
        return f"CcxtClient(venue={self._venue!r}, exchange={self._exchange_id!r}, api_key={key!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a CcxtClient holds API secrets and cannot be pickled")

    # --- identity ------------------------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @property
    def exchange(self) -> Any:
        """The ccxt.pro exchange object underneath (for what legato does not wrap)."""
        return self._ex

    @property
    def ack_semantics(self) -> AckKind:
        return self._ack

    @property
    def capabilities(self) -> Capabilities:
        """From ccxt's `has` and `features` and the markets loaded at start: the kinds
        traded (spot, linear perpetuals), times in force and post-only every kind takes,
        reduce-only where perpetuals are, the batch size of `createOrders`; transfers where
        ccxt can `transfer` and the exchange's row names both wallets, withdrawals where it
        can `withdraw`, `fetchDepositAddress` and list its withdrawals."""
        kinds = frozenset(i.kind for i in self._instruments.values()) or self._default_kinds()
        tifs: frozenset[TimeInForce] = _ALL_TIF
        batch = None
        for kind in kinds:
            features = self._features(kind)
            create = features.get("createOrder") or {}
            offered = create.get("timeInForce")
            if isinstance(offered, Mapping):
                tifs &= frozenset(
                    {t for name, t in _CCXT_TIF.items() if offered.get(name)}
                    | ({TimeInForce.POST_ONLY} if offered.get("PO") else set())
                )
            many = features.get("createOrders")
            limit = many.get("max") if isinstance(many, Mapping) else None
            size = int(limit) if self._ex.has.get("createOrders") and limit else 1
            batch = size if batch is None else min(batch, size)
        return Capabilities(
            instrument_kinds=kinds,
            ack_semantics=self._ack,
            time_in_force=tifs,
            post_only=TimeInForce.POST_ONLY in tifs,
            reduce_only=InstrumentKind.PERP in kinds,
            batch_size=batch or 1,
            transfers=self._can_transfer,
            withdrawals=self._can_withdraw,
            client_ids=self._rules.client_ids,
        )

    @property
    def _can_transfer(self) -> bool:
        wallets = self._rules.wallets
        return bool(self._ex.has.get("transfer")) and all(w.value in wallets for w in WalletKind)

    @property
    def _can_withdraw(self) -> bool:
        has = self._ex.has
        return bool(
            has.get("withdraw")
            and has.get("fetchDepositAddress")
            and (has.get("fetchWithdrawals") or has.get("fetchWithdrawal"))
        )

    def _features(self, kind: InstrumentKind) -> Mapping[str, Any]:
        features = self._ex.features or {}
        if kind is InstrumentKind.SPOT:
            found = features.get("spot")
        else:
            found = (features.get("swap") or {}).get("linear")
        return found if isinstance(found, Mapping) else {}

    def _default_kinds(self) -> frozenset[InstrumentKind]:
        """Before the markets are loaded: what ccxt's default market type says."""
        spot = self._ex.options.get("defaultType") == "spot"
        return frozenset({InstrumentKind.SPOT if spot else InstrumentKind.PERP})

    @property
    def typical_rtt_ns(self) -> int | None:
        """The median round trip of the clock measurement at start."""
        return self._rtt_median_ns

    @property
    def clock_offset_ns(self) -> int:
        """Venue clock minus local wall clock, from the minimum-round-trip sample."""
        return self._offset_ns

    @property
    def clock_rtt_ns(self) -> int | None:
        return self._rtt_ns

    def venue_now_ns(self) -> int:
        return time.time_ns() + self._offset_ns

    @property
    def stream_connected(self) -> bool:
        return self._user.connected

    @property
    def reconnects(self) -> int:
        """Re-openings of the private streams after an error."""
        return self._user.reconnects

    @property
    def resyncs(self) -> int:
        """Completed re-synchronisations of the orders after a reconnection."""
        return self._user.resyncs

    @property
    def market_reconnects(self) -> int:
        return self._market.reconnects

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the markets, measure the venue clock, read the balance (bad credentials fail
        here: ccxt does not always say so when a stream's subscription is refused) and open
        the private streams (returns once they are subscribed, so no report is missed from
        then on)."""
        if self._started:
            return
        self._started = True
        try:
            await self._load_markets()
            await self.sync_clock()
            await self.call(self._ex.fetch_balance)
            await self._user.open()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every background task, end the streams and close ccxt's sockets and session."""
        if self.closed:
            return
        self.closed = True
        await self._tasks.cancel_all()
        with contextlib.suppress(Exception):
            await self._ex.close()
        self._ex.logger.removeFilter(self._redact)
        self._user.end()
        self._market.end()

    async def __aenter__(self) -> CcxtClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- calls -----------------------------------------------------------------------------
    def error(
        self,
        exc: BaseException,
        *,
        mutating: bool = False,
        client_order_id: str | None = None,
        wallet: bool = False,
    ) -> VenueError:
        """The legato exception for what a ccxt call raised (`wallet`: one that moves funds)."""
        status, retry_after = answer_of(exc)
        return parse.error_from_ccxt(
            exc,
            venue=self._venue,
            binance_wire=self._rules.binance_wire,
            mutating=mutating,
            client_order_id=client_order_id,
            http_status=status,
            retry_after_s=retry_after,
            secrets=self._secrets,
            wallet=wallet,
        )

    async def call(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        mutating: bool = False,
        client_order_id: str | None = None,
        wallet: bool = False,
    ) -> T:
        """One ccxt call, its failure as a `VenueError` (`wallet`: a call about transfers or
        withdrawals, whose refusals read as the wallet's). A request refused for its
        timestamp re-measures the clock and is sent once more (the venue refused it
        unread)."""
        if self.closed:
            raise VenueUnavailable("client is closed", venue=self._venue)
        epoch = self._clock_epoch
        for attempt in (0, 1):
            try:
                return await fn(*args)
            except (ccxt.BaseError, OSError, TimeoutError) as e:
                err = self.error(
                    e, mutating=mutating, client_order_id=client_order_id, wallet=wallet
                )
                if isinstance(err, RateLimited):
                    self.rate_limited += 1
                if attempt or not parse.stale_clock(err, e) or not self._ex.has.get("fetchTime"):
                    raise err from None
            await self._resync_clock(epoch)
        raise AssertionError("unreachable")

    # --- clock and reference data ------------------------------------------------------------
    async def sync_clock(self, samples: int | None = None) -> int:
        """Measure the venue clock against the local one (`measure_clock`: the minimum
        round trip of `samples` `fetch_time` calls; the median round trip is the typical
        one). Signed requests then carry the venue's time (ccxt's `timeDifference`)."""
        if not self._ex.has.get("fetchTime"):
            log.info("%s: %s has no server time; clock offset taken as 0", self._venue, self._ex.id)
            return 0
        reading = await measure_clock(
            self._venue,
            lambda: self.call(self._ex.fetch_time),
            int,
            samples or self._clock_samples,
        )
        self._offset_ns, self._rtt_ns = reading.offset_ns, reading.rtt_ns
        self._rtt_median_ns = reading.rtt_median_ns
        self._ex.options["timeDifference"] = round(-self._offset_ns / 1_000_000)
        self._clock_epoch += 1
        return self._offset_ns

    async def _resync_clock(self, epoch: int) -> None:
        async with self._clock_lock:
            if self._clock_epoch == epoch:  # nobody re-measured since the request was signed
                await self.sync_clock()

    async def server_time_ns(self) -> int:
        if not self._ex.has.get("fetchTime"):
            return self.venue_now_ns()
        return int(await self.call(self._ex.fetch_time)) * 1_000_000

    async def _load_markets(self, reload: bool = False) -> None:
        async with self._markets_lock:
            if self._instruments and not reload:
                return
            markets = await self.call(self._ex.load_markets, reload)
            self._index(markets)

    def _index(self, markets: Mapping[str, Mapping[str, Any]]) -> None:
        """The instruments by market id; one market per id, the kind of ccxt's
        `defaultType` first where an id names several (Bybit's spot and perp BTCUSDT)."""
        preferred = self._ex.options.get("defaultType")
        chosen: dict[str, Mapping[str, Any]] = {}
        for market in markets.values():
            inst = parse.instrument(market, self._ex.precisionMode)
            if inst is None:
                continue
            held = chosen.get(inst.symbol)
            if held is None or (held.get("type") != preferred and market.get("type") == preferred):
                chosen[inst.symbol] = market
        instruments: dict[str, Instrument] = {}
        for market_id, market in chosen.items():
            inst = parse.instrument(market, self._ex.precisionMode)
            assert inst is not None
            instruments[market_id] = inst
        self._instruments = instruments
        self._unified = {i: str(m["symbol"]) for i, m in chosen.items()}
        self._market_ids = {s: i for i, s in self._unified.items()}

    async def instruments(self) -> list[Instrument]:
        await self._load_markets(reload=self._started)
        return list(self._instruments.values())

    async def _instrument(self, symbol: str, client_order_id: str | None = None) -> Instrument:
        await self._load_markets()
        inst = self._instruments.get(symbol)
        if inst is None:
            raise OrderRejected(
                f"unknown symbol {symbol!r} at {self._ex.id} (legato trades its spot and "
                "linear perpetual markets, by the exchange's own ids such as BTCUSDT)",
                reason=RejectReason.UNKNOWN_SYMBOL,
                venue=self._venue,
                client_order_id=client_order_id,
            )
        return inst

    async def _symbol(self, symbol: str) -> str:
        """ccxt's symbol for a market id (BTCUSDT -> BTC/USDT:USDT)."""
        return self._unified[(await self._instrument(symbol)).symbol]

    def market_id(self, unified: object) -> str | None:
        """The market id for a ccxt symbol; None for a market legato does not follow."""
        return self._market_ids.get(str(unified)) if unified is not None else None

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        unified = await self._symbol(symbol)
        limit = depth_limit(depth) if self._rules.binance_wire else depth
        ob = await self.call(self._ex.fetch_order_book, unified, limit)
        return parse.book(
            ob, venue=self._venue, symbol=symbol, depth=depth, now_ns=self.venue_now_ns()
        )

    # --- reports ---------------------------------------------------------------------------
    def report(
        self,
        order: Mapping[str, Any],
        *,
        asked: NewOrder | None = None,
        ack_kind: AckKind | None = None,
    ) -> ExecutionReport | None:
        """A ccxt order as legato's report (legato's symbol and client id); None for an order
        of a market legato does not follow, or one ccxt could not make sense of."""
        symbol = asked.symbol if asked is not None else self.market_id(order.get("symbol"))
        if symbol is None:
            return None
        if asked is not None:
            coid = asked.client_order_id
        else:
            coid = self._ids.from_venue(parse.client_id_of(order, self._rules.id_field))
        try:
            return parse.order_report(
                order,
                venue=self._venue,
                symbol=symbol,
                client_order_id=coid,
                binance_wire=self._rules.binance_wire,
                asked=asked,
                ack_kind=ack_kind,
            )
        except ValueError as e:  # a status or time in force legato does not know
            log.error("%s: cannot read order %s: %s", self._venue, order.get("id"), e)
            return None

    def _keep_fills(self, order: Mapping[str, Any], report: ExecutionReport) -> None:
        """Trades an answer carries with their ids (Binance spot's FULL answer) go to the
        fee ledger."""
        for f in parse.order_fills(order):
            self._join.add_trade(report.symbol, report.order_id, f)

    async def _with_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with its cumulative fee: the order's trades as the stream showed them,
        completed from the venue's trade list when some are missing."""
        if report.order_id and report.cum_filled > 0 and not self._join.complete(report):
            for f in await self.trades(report.symbol, report.order_id):
                self._join.add_trade(report.symbol, report.order_id, f)
        return self._join.with_fees(report)

    async def _rest_report(self, order: Mapping[str, Any]) -> ExecutionReport | None:
        report = self.report(order)
        if report is None:
            return None
        self._keep_fills(order, report)
        return self.orders.observe(await self._with_fees(report))

    # --- orders ----------------------------------------------------------------------------
    def _order_args(self, order: NewOrder, inst: Instrument) -> tuple[Any, ...]:
        """`create_order`'s arguments for `order`. Refuses (OrderRejected) what ccxt or the
        venue would carry out otherwise than asked: ccxt rounds a price or quantity off the
        grid onto it, and a market order's FOK or post-only would be dropped."""

        def refuse(message: str, reason: RejectReason) -> OrderRejected:
            return OrderRejected(
                message, reason=reason, venue=self._venue, client_order_id=order.client_order_id
            )

        if not inst.on_lot(order.quantity) or order.quantity <= 0:
            raise refuse(
                f"quantity {order.quantity} is not a positive multiple of the lot {inst.lot}",
                RejectReason.QTY_OFF_LOT,
            )
        params: dict[str, Any] = {
            self._rules.create_param: self._ids.to_venue(order.client_order_id)
        }
        price: float | None = None
        if order.type is OrderType.LIMIT:
            if order.price is None:
                raise ValueError(f"limit order {order.client_order_id!r} needs a price")
            if not inst.on_tick(order.price):
                raise refuse(
                    f"price {order.price} is not on the tick {inst.tick}",
                    RejectReason.PRICE_OFF_TICK,
                )
            price = float(order.price)
            if order.time_in_force is TimeInForce.POST_ONLY:
                params["postOnly"] = True
            else:
                params["timeInForce"] = order.time_in_force.value
        else:
            check_market_tif(order, self._venue)
        if order.reduce_only:
            if inst.kind is InstrumentKind.SPOT:
                raise refuse(
                    f"reduce-only needs a perpetual; {order.symbol} is spot",
                    RejectReason.VENUE_REFUSED,
                )
            params["reduceOnly"] = True
        return (
            self._unified[inst.symbol],
            order.type.value.lower(),
            order.side.value.lower(),
            float(order.quantity),
            price,
            params,
        )

    def _ack_report(self, answer: Mapping[str, Any], order: NewOrder) -> ExecutionReport:
        report = self.report(answer, asked=order, ack_kind=self._ack)
        if report is None:
            raise VenueError(
                f"unreadable answer to order {order.client_order_id}", venue=self._venue
            )
        if report.status is OrderStatus.PENDING_NEW:
            report = msgspec.structs.replace(report, ack_kind=AckKind.RECEIPT)
        self._keep_fills(answer, report)
        return self.orders.observe(self._join.with_fees(report))

    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id, never
        by sending it again; still unresolved at the deadline, the answer is UNKNOWN."""
        inst = await self._instrument(order.symbol, order.client_order_id)
        args = self._order_args(order, inst)
        added = self.orders.track_inflight(order)
        try:
            answer = await self.call(
                self._ex.create_order, *args, mutating=True, client_order_id=order.client_order_id
            )
        except OutcomeUnknown as e:
            return await self._resolve(order, e)
        except VenueError:
            if added:
                self.orders.forget(order.client_order_id)
            raise
        return self._ack_report(answer, order)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Send orders in `createOrders` batches where the exchange has them (else one by
        one, concurrently); each succeeds or fails alone."""
        size = self.capabilities.batch_size
        answers: list[ExecutionReport | VenueError | None] = [None] * len(orders)
        ready: list[tuple[int, NewOrder, tuple[Any, ...]]] = []
        for i, o in enumerate(orders):
            try:
                inst = await self._instrument(o.symbol, o.client_order_id)
                ready.append((i, o, self._order_args(o, inst)))
            except OrderRejected as e:
                answers[i] = e

        async def single(o: NewOrder) -> ExecutionReport | VenueError:
            try:
                return await self.place(o)
            except VenueError as e:
                return e

        if size <= 1:
            done = await asyncio.gather(*(single(o) for _, o, _ in ready))
            for (i, _, _), answer in zip(ready, done, strict=True):
                answers[i] = answer
        else:
            chunks = [ready[k : k + size] for k in range(0, len(ready), size)]
            for chunk, done in zip(
                chunks, await asyncio.gather(*(self._send_chunk(c) for c in chunks)), strict=True
            ):
                for (i, _, _), answer in zip(chunk, done, strict=True):
                    answers[i] = answer
        return [a for a in answers if a is not None]

    async def _send_chunk(
        self, chunk: Sequence[tuple[int, NewOrder, tuple[Any, ...]]]
    ) -> list[ExecutionReport | VenueError]:
        requests = [
            {"symbol": s, "type": t, "side": d, "amount": a, "price": p, "params": params}
            for _, _, (s, t, d, a, p, params) in chunk
        ]
        orders = [o for _, o, _ in chunk]
        added = [self.orders.track_inflight(o) for o in orders]
        try:
            raw = await self.call(self._ex.create_orders, requests, mutating=True)
        except VenueError as e:
            return await batch_failed(
                self, orders, added, e, resolve_timeout_s=self._resolve_timeout_s
            )
        if len(raw) != len(orders):
            raise VenueError(
                f"createOrders answered {len(raw)} items for {len(orders)} orders",
                venue=self._venue,
            )
        items = self._pair_items(orders, raw)

        async def one(
            o: NewOrder, item: Mapping[str, Any], a: bool
        ) -> ExecutionReport | VenueError:
            err = self._item_error(item, o)
            if err is None:
                return self._ack_report(item, o)
            if isinstance(err, OutcomeUnknown):
                return await self._resolve(o, err)
            if a:
                self.orders.forget(o.client_order_id)
            return err

        return list(
            await asyncio.gather(
                *(one(o, item, a) for o, item, a in zip(orders, items, added, strict=True))
            )
        )

    def _pair_items(
        self, orders: Sequence[NewOrder], raw: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """Each order's item of a batch answer. ccxt sorts the items by time, refusals
        (which have none) first, so an item is its order's by client id; the refusals, in
        the order ccxt kept, are those of the orders left, in the order they were sent."""
        by_venue_id = {self._ids.to_venue(o.client_order_id): o.client_order_id for o in orders}
        placed: dict[str, Mapping[str, Any]] = {}
        refusals: list[Mapping[str, Any]] = []
        for item in raw:
            coid = by_venue_id.get(parse.client_id_of(item, self._rules.id_field))
            if coid is not None and coid not in placed:
                placed[coid] = item
            else:
                refusals.append(item)
        left = iter(refusals)
        return [placed.get(o.client_order_id) or next(left) for o in orders]

    def _item_error(self, item: Mapping[str, Any], order: NewOrder) -> VenueError | None:
        """The refusal a batch answer's item carries, if it is one: Binance's items are
        `{"code", "msg"}`; elsewhere an item without an order id or rejected is refused."""
        info = item.get("info")
        info = info if isinstance(info, Mapping) else {}
        if self._rules.binance_wire and isinstance(info.get("code"), int) and info["code"] < 0:
            return self.error(
                ccxt.ExchangeError(
                    msgspec.json.encode({"code": info["code"], "msg": info.get("msg", "")}).decode()
                ),
                mutating=True,
                client_order_id=order.client_order_id,
            )
        if parse.order_id_of(item) and item.get("status") != "rejected":
            return None
        return OrderRejected(
            parse.redact(str(info or item), self._secrets)[:300],
            reason=RejectReason.VENUE_REFUSED,
            venue=self._venue,
            client_order_id=order.client_order_id,
        )

    async def _resolve(self, order: NewOrder, cause: OutcomeUnknown) -> ExecutionReport:
        """Learn what became of an order whose answer was lost, by query; never by sending
        it again (`resolve_by_query`)."""
        return await resolve_by_query(self, order, cause, timeout_s=self._resolve_timeout_s)

    async def _fetch_by_client_id(self, symbol: str, client_order_id: str) -> Mapping[str, Any]:
        """The venue's order for a legato client id: by the exchange's query parameter, or,
        where ccxt has none (Deribit's label), among the open then the closed orders."""
        unified = await self._symbol(symbol)
        venue_id = self._ids.to_venue(client_order_id)
        param = self._rules.query_param
        if param is not None:
            params = {param: venue_id} | self._rules.query_extra
            return await self.call(self._ex.fetch_order, None, unified, params)
        fetches = [self._ex.fetch_open_orders]
        if self._ex.has.get("fetchClosedOrders"):
            fetches.append(self._ex.fetch_closed_orders)
        for fetch in fetches:
            for o in await self.call(fetch, unified):
                if parse.client_id_of(o, self._rules.id_field) == venue_id:
                    return o
        raise UnknownOrder(f"no order {client_order_id!r} on {symbol}", venue=self._venue)

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """The order's state now, by client order id, fees included."""
        order = await self._fetch_by_client_id(symbol, client_order_id)
        report = await self._rest_report(order)
        if report is None:
            raise VenueError(f"unreadable order {client_order_id!r}", venue=self._venue)
        if report.client_order_id != client_order_id:  # the venue echoed its own form
            report = msgspec.structs.replace(report, client_order_id=client_order_id)
        return report

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """Cancel one order by its client id (where ccxt cannot, by the venue's id found by
        query). A cancel is idempotent: on OutcomeUnknown, send it again."""
        unified = await self._symbol(symbol)
        param = self._rules.query_param
        if param is not None:
            params = {param: self._ids.to_venue(client_order_id)}
            answer = await self.call(
                self._ex.cancel_order, None, unified, params, mutating=True,
                client_order_id=client_order_id,
            )  # fmt: skip
        else:
            found = await self.query(symbol, client_order_id)
            answer = await self.call(
                self._ex.cancel_order, found.order_id, unified, mutating=True,
                client_order_id=client_order_id,
            )  # fmt: skip
        report = await self._rest_report(answer) if answer.get("status") else None
        if report is None or report.client_order_id != client_order_id:
            return await self.query(symbol, client_order_id)  # the answer named the order only
        return report

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards (fills that
        raced the cancel included)."""
        before = await self.open_orders(symbol)
        if self._ex.has.get("cancelAllOrders"):
            await self.call(self._ex.cancel_all_orders, await self._symbol(symbol), mutating=True)
        else:
            for r in before:
                with contextlib.suppress(UnknownOrder):
                    await self.cancel(symbol, r.client_order_id)
        return await query_each(self, symbol, before)

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        unified = await self._symbol(symbol) if symbol is not None else None
        orders = await self.call(self._ex.fetch_open_orders, unified)
        reports = await asyncio.gather(*(self._rest_report(o) for o in orders))
        return [r for r in reports if r is not None]

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order: `fetch_my_trades` narrowed by the order on Binance's
        wire, ccxt's `fetch_order_trades` where the exchange has it, else the account's
        trades on the symbol filtered by order."""
        unified = await self._symbol(symbol)
        if self._rules.trades_param is not None:
            params = {self._rules.trades_param: order_id}
            rows = await self.call(self._ex.fetch_my_trades, unified, None, None, params)
        elif self._ex.has.get("fetchOrderTrades"):
            rows = await self.call(self._ex.fetch_order_trades, order_id, unified)
        else:
            rows = await self.call(self._ex.fetch_my_trades, unified)
        return [parse.fill(t) for t in rows if str(t.get("order")) == order_id]

    # --- account ---------------------------------------------------------------------------
    @property
    def _derivatives(self) -> bool:
        return InstrumentKind.PERP in self.capabilities.instrument_kinds

    def _margin_asset(self) -> str:
        """The asset perpetuals settle in (spot: the quote asset), the most common one."""
        kind = InstrumentKind.PERP if self._derivatives else InstrumentKind.SPOT
        counts: dict[str, int] = {}
        for market_id, inst in self._instruments.items():
            if inst.kind is kind:
                market = self._ex.markets.get(self._unified[market_id]) or {}
                asset = str(market.get("settle") or inst.quote)
                counts[asset] = counts.get(asset, 0) + 1
        return max(counts, key=lambda a: counts[a]) if counts else "USDT"

    async def account(self) -> AccountSnapshot:
        """Balances; for derivatives also margin and positions (spot: the quote asset's
        wallet, free and held amounts, no positions)."""
        await self._load_markets()
        derivatives = self._derivatives
        if derivatives:
            balance, positions = await asyncio.gather(
                self.call(self._ex.fetch_balance), self.positions()
            )
        else:
            balance, positions = await self.call(self._ex.fetch_balance), []
        return parse.account(
            balance,
            positions,
            venue=self._venue,
            account_id=self._account_id,
            margin_asset=self._margin_asset(),
            derivatives=derivatives,
            binance_wire=self._rules.binance_wire,
            ts_ns=parse.ms_to_ns(balance.get("timestamp")) or self.venue_now_ns(),
        )

    async def positions(self) -> list[Position]:
        """Open perpetual positions (`fetch_positions`); none on a spot venue."""
        await self._load_markets()
        if not self._derivatives or not self._ex.has.get("fetchPositions"):
            return []
        out = []
        for p in await self.call(self._ex.fetch_positions):
            symbol = self.market_id(p.get("symbol"))
            pos = parse.position(p, symbol) if symbol is not None else None
            if pos is not None:
                out.append(pos)
        return out

    # --- transfers and withdrawals ---------------------------------------------------------
    def _wallet_account(self, wallet: WalletKind) -> str | None:
        """The exchange's account (ccxt's name) for one of legato's wallets."""
        return self._rules.wallets.get(WalletKind(wallet).value)

    def _account_code(self, name: object) -> str:
        """The exchange's id of one of ccxt's account names (Bybit's "fund" and "funding"
        are both "FUND"): how a history row's accounts are told."""
        by_type = self._ex.options.get("accountsByType") or {}
        text = str(name or "")
        return str(by_type.get(text.lower(), text))

    def _wallets_by_account(self) -> dict[str, WalletKind]:
        return {
            self._account_code(name): WalletKind(kind) for kind, name in self._rules.wallets.items()
        }

    def _asked(
        self,
        kind: TransferKind,
        asset: str,
        amount: Decimal,
        source: str,
        destination: str,
        client_transfer_id: str,
    ) -> TransferReceipt:
        return asked(
            venue=self._venue,
            kind=kind,
            asset=asset,
            amount=amount,
            source=source,
            destination=destination,
            client_transfer_id=client_transfer_id,
            now_ns=self.venue_now_ns(),
        )

    def _wallet_amount(self, asset: str, amount: Decimal) -> float:
        """`amount` as ccxt takes it. Refused (`InvalidRequest`, nothing sent) when ccxt
        would round it to the currency's precision: a transfer moves what was asked or
        nothing."""
        value = float(amount)
        try:
            sent = self._ex.currency_to_precision(asset, value)
        except (KeyError, TypeError, ccxt.BaseError):
            return value  # a currency ccxt does not list: the venue's answer says why
        if parse.dec(sent) != amount:
            raise InvalidRequest(
                f"amount {amount} {asset} has more decimals than {self._ex.id} takes for "
                f"{asset} (ccxt would send {sent}); nothing was sent",
                venue=self._venue,
            )
        return value

    def _transfers_unsupported(self, source: WalletKind, destination: WalletKind) -> Unsupported:
        if not self._can_transfer:
            why = (
                f"ccxt has no transfer for {self._ex.id}"
                if not self._ex.has.get("transfer")
                else f"legato does not know {self._ex.id}'s accounts (venues/ccxt/rules.py)"
            )
            return Unsupported(f"no transfers between wallets: {why}", venue=self._venue)
        names = ", ".join(f"{k} ({v!r})" for k, v in self._rules.wallets.items())
        return Unsupported(
            f"cannot move funds from the {source} wallet to the {destination} wallet: "
            f"a transfer at {self._ex.id} goes between its wallets {names}, one to the other",
            venue=self._venue,
        )

    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        """Move `amount` of `asset` between the account's spot and margin wallets (ccxt's
        `transfer`, between the accounts the exchange's row names). The venue keeps no
        client id: a lost answer is found in `fetch_transfers` by the rule of
        `venues.binance.transfer_claims`, never sent again."""
        src, dst = self._wallet_account(source), self._wallet_account(destination)
        if not self._can_transfer or src is None or dst is None or source == destination:
            raise self._transfers_unsupported(source, destination)
        await self._load_markets()
        value = self._wallet_amount(asset, amount)
        async with self._one_transfer_at_a_time:
            asked = self._asked(
                TransferKind.INTERNAL,
                asset,
                amount,
                WalletKind(source).value,
                WalletKind(destination).value,
                client_transfer_id,
            )
            earlier = self._claims.earlier(asked)
            if earlier is not None:
                return await self._transfer_status(earlier)
            try:
                answer = await self.call(
                    self._ex.transfer, asset, value, src, dst,
                    mutating=True, client_order_id=client_transfer_id, wallet=True,
                )  # fmt: skip
            except OutcomeUnknown as e:
                return await self._lost(asked, e)
            return self._claims.record(parse.answered(answer, asked))

    async def _lost(self, asked: TransferReceipt, cause: OutcomeUnknown) -> TransferReceipt:
        """A transfer or withdrawal whose answer was lost: looked for in the history, where
        ccxt can list it; never sent again."""
        self._claims.record(asked)
        if asked.kind is TransferKind.WITHDRAWAL:
            listed = bool(self._ex.has.get("fetchWithdrawals"))
            by_id = self._rules.withdraw_id_param is not None
        else:
            listed, by_id = bool(self._ex.has.get("fetchTransfers")), False
        if not listed:
            return self._claims.record(
                msgspec.structs.replace(
                    asked,
                    reason=f"answer lost ({cause.message}); ccxt cannot list {self._ex.id}'s "
                    f"{asked.kind.value}s to find it",
                )
            )
        return await find_lost(
            self._claims,
            asked,
            lambda: self._history(asked),
            cause,
            timeout_s=self._resolve_timeout_s,
            by_client_id=by_id,
        )

    async def _history(self, receipt: TransferReceipt) -> list[TransferReceipt]:
        """The venue's transfers or withdrawals that may be `receipt`'s."""
        since = (receipt.requested_ns - CLOCK_SLACK_NS) // NS_PER_MS
        binance_wire = self._rules.binance_wire
        if receipt.kind is TransferKind.WITHDRAWAL:
            id_param = self._rules.withdraw_id_param
            params: dict[str, Any] = {}
            if id_param is not None and receipt.client_transfer_id:
                # By legato's id alone (Binance looks back 7 days then, and refuses a longer
                # window with it).
                params[id_param] = self._ids.to_venue(receipt.client_transfer_id)
                rows = await self.call(
                    self._ex.fetch_withdrawals, receipt.asset, None, None, params, wallet=True
                )
            else:
                rows = await self.call(
                    self._ex.fetch_withdrawals, receipt.asset, since, None, params, wallet=True
                )
            out = []
            for row in rows:
                r = parse.withdrawal_row(
                    row, venue=self._venue, id_field=id_param, binance_wire=binance_wire
                )
                if r is not None:
                    cid = self._ids.from_venue(r.client_transfer_id) if r.client_transfer_id else ""
                    out.append(msgspec.structs.replace(r, client_transfer_id=cid))
            return out
        params = {}
        if binance_wire:
            # Binance lists one direction at a time, named by ccxt's account names.
            params = {
                "fromAccount": self._wallet_account(WalletKind(receipt.source)),
                "toAccount": self._wallet_account(WalletKind(receipt.destination)),
            }
        rows = await self.call(
            self._ex.fetch_transfers, receipt.asset, since, 100, params, wallet=True
        )
        wallets = self._wallets_by_account()
        found = (
            parse.transfer_row(
                row,
                venue=self._venue,
                wallets=wallets,
                account_id=self._account_code,
                binance_wire=binance_wire,
            )
            for row in rows
        )
        return [r for r in found if r is not None]

    async def deposit_address(self, asset: str) -> str:
        """The spot (funding) wallet's address for `asset` (`fetch_deposit_address`, the
        currency's default network)."""
        if not self._ex.has.get("fetchDepositAddress"):
            raise Unsupported(
                f"ccxt cannot fetch {self._ex.id}'s deposit addresses", venue=self._venue
            )
        await self._load_markets()
        found = await self.call(self._ex.fetch_deposit_address, asset, wallet=True)
        return parse.deposit_address(found, asset, self._venue)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        """Withdraw from the spot (funding) wallet to `address` (ccxt's `withdraw`), legato's
        client id in the exchange's parameter for it (Binance's `withdrawOrderId`). A
        withdrawal the history already holds under that id is answered, not made again; a
        lost answer is looked for there, never sent again."""
        if not self._ex.has.get("withdraw"):
            raise Unsupported(f"ccxt has no withdraw for {self._ex.id}", venue=self._venue)
        if not address:
            raise InvalidRequest("a withdrawal needs an address", venue=self._venue)
        await self._load_markets()
        value = self._wallet_amount(asset, amount)
        id_param = self._rules.withdraw_id_param
        async with self._one_transfer_at_a_time:
            asked = self._asked(
                TransferKind.WITHDRAWAL,
                asset,
                amount,
                WalletKind.SPOT.value,
                address,
                client_transfer_id,
            )
            earlier = self._claims.earlier(asked)
            if earlier is not None:
                return await self._transfer_status(earlier)
            params: dict[str, Any] = {}
            if id_param is not None:
                params[id_param] = self._ids.to_venue(client_transfer_id)
                if self._ex.has.get("fetchWithdrawals"):
                    made = self._claims.find(asked, await self._history(asked), by_client_id=True)
                    if made is not None:
                        return made
            try:
                answer = await self.call(
                    functools.partial(self._ex.withdraw, params=params), asset, value, address,
                    mutating=True, client_order_id=client_transfer_id, wallet=True,
                )  # fmt: skip
            except OutcomeUnknown as e:
                return await self._lost(asked, e)
            return self._claims.record(parse.answered(answer, asked))

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        """The transfer's state now, from the exchange's history (ccxt's `fetch_transfers` or
        `fetch_withdrawals`); as it was when ccxt cannot list them or the history does not
        (yet) hold it."""
        async with self._one_transfer_at_a_time:
            return await self._transfer_status(receipt)

    async def _transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        if receipt.kind is TransferKind.WITHDRAWAL:
            if not self._ex.has.get("fetchWithdrawals"):
                return receipt
            by_id = not receipt.transfer_id and self._rules.withdraw_id_param is not None
        else:
            if not self._ex.has.get("fetchTransfers"):
                return receipt
            by_id = False
        found = self._claims.find(receipt, await self._history(receipt), by_client_id=by_id)
        return receipt if found is None else found

    # --- streams ---------------------------------------------------------------------------
    def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the private streams (and resyncs); one consumer per client."""
        return self._user.reports()

    def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        """Book tickers and public trades of `symbols`; lossy (a slow reader loses the oldest
        first), each watch re-opened after an error."""
        return self._market.events(symbols)

    async def drop_streams(self) -> None:
        """Close the private streams' sockets as a network drop would (they reconnect)."""
        await self._user.drop()

    # --- what the streams need ---------------------------------------------------------------
    @property
    def join(self) -> ReportJoin:
        return self._join

    def fill_key(self, trade: Mapping[str, Any]) -> tuple[str, str] | None:
        """(market id, order id) of one of the account's trades; None if not followed."""
        symbol = self.market_id(trade.get("symbol"))
        order_id = trade.get("order")
        return (symbol, str(order_id)) if symbol is not None and order_id else None

    async def watched_symbols(self, symbols: Sequence[str]) -> dict[str, str]:
        """ccxt symbol -> market id for the given market ids."""
        return {await self._symbol(s): s for s in symbols}
