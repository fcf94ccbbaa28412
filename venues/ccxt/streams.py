"""The ccxt adapter's streams: the account's orders and trades as one execution-report stream,
kept up and re-synchronised after every reconnection; and public market data.

ccxt.pro reads each socket in a task of its own and keeps what arrives; a `watch_*` call
returns all that arrived since the previous call, but only once something arrives while it
waits. So each loop here handles a batch without awaiting anything and calls again at once:
nothing waits in ccxt's cache for a later message. A watch that fails (the socket dropped, the
venue closed it) is called again after a backoff, which re-opens the socket; the orders'
loop then reads the open orders and every order that was open before (REST), so no state
missed meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from venues.adapter_kit import ReportQueue, Spawn, reconnect_delay, resync_orders
from venues.ccxt import parse
from venues.ccxt.exchange import PRIVATE, STREAM
from venues.errors import AuthError, VenueError, VenueUnavailable
from venues.model import BookTicker, ExecutionReport, MarketEvent

if TYPE_CHECKING:
    from venues.ccxt.client import CcxtClient

log = logging.getLogger(__name__)

T = TypeVar("T")


def _own_cancel() -> bool:
    """Whether the running task itself is being cancelled (ccxt also cancels its pending
    watches when a socket is closed under them: that is a drop, not a stop)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _watching(
    name: str,
    venue: str,
    watch: Callable[[], Awaitable[T]],
    handle: Callable[[T], None],
    *,
    closed: Callable[[], bool],
    failed: Callable[[BaseException], Awaitable[None]],
) -> None:
    """Call `watch` and `handle` what it returns, again and again; a failure goes to
    `failed` (which backs off) and the watch is called anew."""
    while not closed():
        try:
            batch = await watch()
        except asyncio.CancelledError:
            if _own_cancel() or closed():
                raise
            await failed(VenueUnavailable(f"{name} stream closed", venue=venue))
            continue
        except Exception as e:
            if closed():
                return
            await failed(e)
            continue
        try:
            handle(batch)
        except Exception:  # a bug must not end the stream for good: log it, keep reading
            log.exception("%s: %s stream: an update could not be handled", venue, name)


class UserStreams:
    """The account's private streams (`watch_orders`, `watch_my_trades`) as one stream of
    execution reports, joined by `ReportJoin`.

    ccxt tells (through the client's exchange class) which socket serves these streams and
    when it is up: `connected` says so. A consumer too slow for the bounded queue is told by
    a `VenueUnavailable` on its stream (then it resynchronises by query), never by a report
    silently dropped.
    """

    def __init__(
        self,
        client: CcxtClient,
        *,
        spawn: Spawn,
        reconnect_max_s: float,
        connect_timeout_s: float,
        queue_size: int,
    ) -> None:
        self._client = client
        self._spawn = spawn
        self._reconnect_max_s = reconnect_max_s
        self._connect_timeout_s = connect_timeout_s
        self._reports = ReportQueue(client.venue, queue_size)
        # ccxt's sockets (its ws `Client`s): those that serve these streams, those up now,
        # and those whose order or trade watch is registered. A socket closed is forgotten;
        # ccxt opens a new one for the next watch.
        self._private: set[Any] = set()
        self._up: set[Any] = set()
        self._ready: set[Any] = set()
        self._changed = asyncio.Event()
        self._first_error: VenueError | None = None
        self._opened = False
        self._ever_connected = False
        self.reconnects = 0
        self.resyncs = 0

    # --- what the exchange class reports -----------------------------------------------------
    def private_watch(self, socket: Any, message_hash: str) -> None:
        """A watch of the private streams registers on `socket`. Those of orders or trades
        (not an authentication request first) make the stream ready once the socket is up:
        from then on every event reaches it."""
        self._private.add(socket)
        if "order" in message_hash.lower() or "trade" in message_hash.lower():
            self._ready.add(socket)
            self._note_connected()

    def socket_up(self, socket: Any) -> None:
        self._up.add(socket)
        self._note_connected()

    def socket_down(self, socket: Any) -> None:
        self._up.discard(socket)
        self._ready.discard(socket)
        self._private.discard(socket)

    def _note_connected(self) -> None:
        if self.connected:
            self._ever_connected = True
            self._changed.set()

    @property
    def connected(self) -> bool:
        return bool(self._ready & self._up)

    @property
    def overflowed(self) -> bool:
        """The report queue overflowed and the consumer has yet to be told."""
        return self._reports.overflowed

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Start watching and wait until the private socket is up (or the first watch
        failed: bad credentials fail here, not later)."""
        if self._opened:
            return
        self._opened = True
        ex = self._client.exchange
        self._spawn(self._follow("orders", ex.watch_orders, self._on_orders), "orders")
        if ex.has.get("watchMyTrades"):
            self._spawn(self._follow("trades", ex.watch_my_trades, self._on_trades), "trades")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout_s
        while not self.connected:
            if self._first_error is not None:
                raise self._first_error
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise VenueUnavailable(
                    f"private stream did not connect within {self._connect_timeout_s}s",
                    venue=self._client.venue,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def end(self) -> None:
        """The client closed: the consumer's stream ends once it has read what is queued."""
        self._up.clear()
        self._reports.end()

    async def drop(self) -> None:
        """Close the private sockets as a network drop would (the streams reconnect)."""
        for socket in list(self._private):
            connection = getattr(socket, "connection", None)
            if connection is not None:
                await connection.close()

    def reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the streams (and resyncs); one consumer per client."""
        return self._reports.reports(lambda: self._client.closed)

    # --- the loops ---------------------------------------------------------------------------
    async def _follow(
        self, name: str, watch: Callable[[], Awaitable[Any]], handle: Callable[[Any], None]
    ) -> None:
        STREAM.set(PRIVATE)  # this task's context: the sockets it opens are the private ones
        resyncing = name == "orders"
        state = {"attempt": 0, "resync": False}

        async def watch_once() -> Any:
            if not state["resync"]:
                batch = await watch()
                state["attempt"] = 0
                return batch
            # Re-opened after a failure: once the socket is up, read what may have moved
            # meanwhile; whatever changes after that arrives on the socket.
            state["resync"] = False
            pending = asyncio.ensure_future(watch())
            try:
                await self._until_up(pending)
                self._spawn(self._resync(), "resync")
                batch = await pending
            finally:
                pending.cancel()
            state["attempt"] = 0
            return batch

        async def failed(e: BaseException) -> None:
            err = e if isinstance(e, VenueError) else self._client.error(e)
            if not self._ever_connected and self._first_error is None:
                self._first_error = err
                self._changed.set()
                if isinstance(err, AuthError):
                    return  # start() fails with it; nothing to reconnect to
            log.warning("%s: %s stream: %s", self._client.venue, name, err)
            state["attempt"] += 1
            if resyncing:
                self.reconnects += 1
                state["resync"] = True
            await asyncio.sleep(reconnect_delay(state["attempt"], self._reconnect_max_s))

        await _watching(
            name,
            self._client.venue,
            watch_once,
            handle,
            closed=lambda: self._client.closed or isinstance(self._first_error, AuthError),
            failed=failed,
        )

    async def _until_up(self, pending: asyncio.Future[Any]) -> None:
        """Wait until the private socket is up again (or the watch ended, or a deadline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout_s
        while not self.connected and not pending.done() and loop.time() < deadline:
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({pending, waiter}, timeout=deadline - loop.time(),
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                waiter.cancel()

    def _on_orders(self, orders: Iterable[Any]) -> None:
        for o in orders:
            report = self._client.report(o)
            if report is not None:
                self._emit_joined(report)

    def _on_trades(self, trades: Iterable[Any]) -> None:
        join = self._client.join
        for t in trades:
            key = self._client.fill_key(t)
            if key is None:
                continue
            for report in join.on_trade(*key, parse.fill(t)):
                self._reports.put(self._client.orders.observe(report))

    def _emit_joined(self, report: ExecutionReport) -> None:
        for r in self._client.join.on_order(report):
            self._reports.put(self._client.orders.observe(r))

    async def _resync(self) -> None:
        """Emit the current state of every order that may have moved while disconnected
        (`resync_orders`), each joined with the fills the stream showed."""
        if await resync_orders(
            self._client,
            self._emit_joined,
            retry_max_s=self._reconnect_max_s,
            closed=lambda: self._client.closed,
        ):
            self.resyncs += 1


class MarketStreams:
    """Book tickers and public trades through ccxt.pro's watches: `watch_bids_asks` (else
    `watch_ticker`, else the top of `watch_order_book`) and `watch_trades_for_symbols` (else
    `watch_trades`). Lossy by nature: a slow reader loses the oldest events first, and
    nothing missed during a reconnection is replayed."""

    def __init__(
        self, client: CcxtClient, *, spawn: Spawn, reconnect_max_s: float, queue_size: int = 10_000
    ) -> None:
        self._client = client
        self._spawn = spawn
        self._reconnect_max_s = reconnect_max_s
        self._queue_size = queue_size
        self._readers: set[asyncio.Queue[MarketEvent | None]] = set()
        self.reconnects = 0

    def end(self) -> None:
        """The client closed: every reader's stream ends."""
        for queue in self._readers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        by_unified = await self._client.watched_symbols(symbols)
        queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue(self._queue_size)

        def put(event: MarketEvent | None) -> None:
            if event is None:
                return
            if queue.full():
                queue.get_nowait()  # lossy: the oldest goes first
            queue.put_nowait(event)

        self._readers.add(queue)
        tasks = [self._spawn(self._follow(name, w, h), name) for name, w, h in
                 self._watches(list(by_unified), by_unified, put)]  # fmt: skip
        try:
            while not self._client.closed:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            self._readers.discard(queue)
            for t in tasks:
                t.cancel()

    def _watches(
        self,
        unified: list[str],
        by_unified: dict[str, str],
        put: Callable[[MarketEvent | None], None],
    ) -> list[tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], None]]]:
        ex = self._client.exchange
        venue = self._client.venue
        has = ex.has

        def now() -> int:
            return self._client.venue_now_ns()

        def ticker(t: Any) -> None:
            symbol = by_unified.get(t.get("symbol"))
            if symbol is not None:
                put(parse.book_ticker(t, venue=venue, symbol=symbol, now_ns=now()))

        def tickers(batch: Any) -> None:
            for t in batch.values() if isinstance(batch, dict) else batch:
                ticker(t)

        def trades(batch: Any) -> None:
            for t in batch:
                symbol = by_unified.get(t.get("symbol"))
                if symbol is not None:
                    put(parse.market_trade(t, venue=venue, symbol=symbol))

        def top_of(symbol: str) -> Callable[[Any], None]:
            def handle(ob: Any) -> None:
                snap = parse.book(ob, venue=venue, symbol=symbol, depth=1, now_ns=now())
                top: BookTicker | None = snap.top()
                put(top)

            return handle

        out: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], None]]] = []
        if has.get("watchBidsAsks"):
            out.append(("tops", lambda: ex.watch_bids_asks(unified), tickers))
        elif has.get("watchTicker"):
            out += [(f"ticker-{s}", _bind(ex.watch_ticker, s), ticker) for s in unified]
        elif has.get("watchOrderBook"):
            out += [
                (f"book-{s}", _bind(ex.watch_order_book, s, 5), top_of(by_unified[s]))
                for s in unified
            ]
        if has.get("watchTradesForSymbols"):
            out.append(("trades", lambda: ex.watch_trades_for_symbols(unified), trades))
        elif has.get("watchTrades"):
            out += [(f"trades-{s}", _bind(ex.watch_trades, s), trades) for s in unified]
        return out

    async def _follow(
        self, name: str, watch: Callable[[], Awaitable[Any]], handle: Callable[[Any], None]
    ) -> None:
        STREAM.set("market")
        attempt = 0

        async def failed(e: BaseException) -> None:
            nonlocal attempt
            err = e if isinstance(e, VenueError) else self._client.error(e)
            log.warning("%s: market stream %s: %s", self._client.venue, name, err)
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(reconnect_delay(attempt, self._reconnect_max_s))

        def handled(batch: Any) -> None:
            nonlocal attempt
            attempt = 0
            handle(batch)

        await _watching(
            name,
            self._client.venue,
            watch,
            handled,
            closed=lambda: self._client.closed,
            failed=failed,
        )


def _bind(fn: Callable[..., Awaitable[T]], *args: Any) -> Callable[[], Awaitable[T]]:
    return lambda: fn(*args)
