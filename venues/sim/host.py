"""The in-process venue: a simulated exchange run in real time behind `VenueClient`.

`SimVenue` owns one `SimExchange`, advances its market on the venue clock, applies the
venue profile (latency, acknowledgement semantics, outages, injected rejects and lost
answers, rate limits) and fans execution reports and market events out to subscribers
after the profile's stream lag. `SimVenueClient` binds it to one account. The Binance
compatible HTTP server is built on the same `SimVenue`, so both paths behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

import msgspec

from venues.errors import (
    OrderRejected,
    RateLimited,
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
    OrderStatus,
    Position,
    RejectReason,
    pending_report,
)
from venues.sim.exchange import AccountReport, SimExchange
from venues.sim.profile import VenueConditions, VenueProfile

T = TypeVar("T")
_STREAM_QUEUE = 10_000


class _Subscription:
    """One consumer's bounded queue. Execution reports must not be lost: on overflow the
    stream ends with an error and the consumer resynchronises by query."""

    def __init__(self, lossy: bool) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue(_STREAM_QUEUE)
        self.lossy = lossy
        self.last_delivery = 0.0
        self._due: deque[object] = deque()

    def put_at(self, loop: asyncio.AbstractEventLoop, at: float, item: object) -> None:
        """Deliver `item` at loop time `at`, but never before anything queued earlier."""
        self.last_delivery = max(at, self.last_delivery)
        self._due.append(item)
        loop.call_at(self.last_delivery, self._release)

    def _release(self) -> None:
        # Timers due at the same instant may run in any order (the loop's heap is not
        # stable), so each releases the oldest item rather than its own.
        self.put(self._due.popleft())

    def put(self, item: object) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if self.lossy:  # market data: the newest matters, drop the oldest
                self.queue.get_nowait()
                self.queue.put_nowait(item)
            else:
                self.queue = asyncio.Queue(1)
                self.queue.put_nowait(
                    VenueUnavailable("execution report stream overflowed; resync by query")
                )


class StreamClosed:
    """Put on a subscription's queue when its stream ends (venue stopped, client closed)."""


class SimVenue:
    """One simulated venue served in real time on this event loop."""

    def __init__(
        self,
        exchange: SimExchange,
        profile: VenueProfile | None = None,
        *,
        seed: int = 0,
        advance_every_s: float = 0.005,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.exchange = exchange
        self._clock = clock
        profile = profile or VenueProfile()
        started = clock() + int(profile.clock_offset_ms * 1_000_000)
        self.conditions = VenueConditions(profile, seed, started)
        self._advance_every_s = advance_every_s
        self._accounts: dict[str, list[_Subscription]] = {}
        self._market: dict[str, list[_Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[object]] = set()
        self.orders_received = 0  # order requests that reached the venue, rejected included

    @property
    def name(self) -> str:
        return self.exchange.venue

    @property
    def profile(self) -> VenueProfile:
        return self.conditions.profile

    def now_ns(self) -> int:
        """The venue's own clock: true time plus the profile's injected offset."""
        return self._clock() + int(self.conditions.profile.clock_offset_ms * 1_000_000)

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"venue-{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        self._task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for subs in (*self._accounts.values(), *self._market.values()):
            for sub in subs:
                sub.put(StreamClosed())

    async def __aenter__(self) -> SimVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            self.exchange.advance(self.now_ns())
            self._dispatch()
            await asyncio.sleep(self._advance_every_s)

    def client(self, account_id: str) -> SimVenueClient:
        """A `VenueClient` for one account of this venue."""
        if not self.exchange.has_account(account_id):
            raise OrderRejected(
                f"unknown account {account_id!r} on {self.name}",
                reason=RejectReason.UNKNOWN_ACCOUNT,
                venue=self.name,
            )
        return SimVenueClient(self, account_id)

    # --- streams -------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Deliver what the exchange did, each stream in order, after its stream lag."""
        events = self.exchange.drain()
        if not events:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for event in events:
            if isinstance(event, AccountReport):
                subs = self._accounts.get(event.account_id, ())
                item: object = event.report
            else:
                subs = self._market.get(event.symbol, ())
                item = event
            for sub in subs:
                sub.put_at(loop, now + self.conditions.stream_delay_ns() / 1e9, item)

    def subscribe_account(self, account_id: str) -> _Subscription:
        sub = _Subscription(lossy=False)
        self._accounts.setdefault(account_id, []).append(sub)
        return sub

    def subscribe_market(self, symbols: Sequence[str]) -> _Subscription:
        sub = _Subscription(lossy=True)
        for s in symbols:
            self._market.setdefault(s, []).append(sub)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        for table in (self._accounts, self._market):
            for subs in table.values():
                if sub in subs:
                    subs.remove(sub)

    # --- requests ------------------------------------------------------------------
    async def _sleep_ns(self, ns: int) -> None:
        if ns > 0:
            await asyncio.sleep(ns / 1e9)

    async def _arrive(self) -> int:
        """Carry a request to the venue; its receive time, or an error if the venue is down."""
        await self._sleep_ns(self.conditions.latency_ns("request"))
        received = self.now_ns()
        mode = self.conditions.outage(received)
        if mode is not None:
            await self._sleep_ns(self.conditions.latency_ns("response"))
            kind = "refused the connection" if mode == "refuse" else "answered 503"
            raise VenueUnavailable(
                f"venue {self.name} is in an outage: it {kind}", venue=self.name, code=503
            )
        return received

    async def call(self, fn: Callable[[int], T]) -> T:
        """Run one non-order request through the profile's latencies."""
        await self._arrive()
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        try:
            result = fn(self.now_ns())
        except VenueError as e:
            error: VenueError | None = e
        else:
            error = None
        finally:
            self._dispatch()
        await self._sleep_ns(self.conditions.latency_ns("response"))  # refusals travel too
        if error is not None:
            raise error
        return result

    async def submit(self, account_id: str, order: NewOrder) -> ExecutionReport:
        """Place one order, answering as the venue's ack semantics say (DESIGN §6)."""
        received = await self._arrive()
        return await self._submit_received(account_id, order, received)

    async def submit_batch(
        self, account_id: str, orders: Sequence[NewOrder]
    ) -> list[ExecutionReport | VenueError]:
        """Place several orders in one request; each succeeds or fails on its own."""
        received = await self._arrive()
        results = await asyncio.gather(
            *(self._submit_received(account_id, o, received) for o in orders),
            return_exceptions=True,
        )
        out: list[ExecutionReport | VenueError] = []
        for r in results:
            if isinstance(r, ExecutionReport | VenueError):
                out.append(r)
            else:
                raise r  # a bug, not a venue answer
        return out

    async def _submit_received(
        self, account_id: str, order: NewOrder, received: int
    ) -> ExecutionReport:
        self.orders_received += 1
        retry = self.conditions.rate_limited(received)
        if retry is not None:
            await self._sleep_ns(self.conditions.latency_ns("response"))
            raise RateLimited(
                f"order rate limit of {self.profile.orders_per_minute}/min reached on {self.name}",
                venue=self.name,
                retry_after_s=retry,
            )
        ack = self.profile.ack
        lost, applied = self.conditions.inject_unknown()
        if ack is AckKind.RECEIPT and not lost:
            # The venue answers on receipt; the risk check and match happen afterwards and
            # their outcome (including a reject) reaches the client on the stream.
            task = asyncio.create_task(self._process_later(account_id, order, received))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            await self._sleep_ns(self.conditions.latency_ns("response"))
            return _pending_report(self.name, order, AckKind.RECEIPT, received)
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        if lost and not applied:
            await self._sleep_ns(self.conditions.latency_ns("response"))
            return _pending_report(self.name, order, AckKind.UNKNOWN, received)
        try:
            final = self._place(account_id, order, received)
        except OrderRejected as e:
            error: OrderRejected | None = e
        else:
            error = None
        finally:
            self._dispatch()
        await self._sleep_ns(self.conditions.latency_ns("response"))  # refusals travel too
        if lost:  # whatever the answer said, reject included, it never arrives
            return _pending_report(self.name, order, AckKind.UNKNOWN, received)
        if error is not None:
            raise error
        if ack is AckKind.RESULT:
            return msgspec.structs.replace(final, ack_kind=AckKind.RESULT)
        # ACCEPTED: the answer leaves after the risk check, before the match is known.
        return accepted_view(final)

    def _place(self, account_id: str, order: NewOrder, received: int) -> ExecutionReport:
        if self.conditions.inject_reject():
            raise OrderRejected(
                f"order {order.client_order_id} rejected by {self.name} (injected reject)",
                reason=RejectReason.INJECTED,
                venue=self.name,
                client_order_id=order.client_order_id,
            )
        return self.exchange.place(account_id, order, self.now_ns(), receive_ns=received)

    async def _process_later(self, account_id: str, order: NewOrder, received: int) -> None:
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        try:
            self._place(account_id, order, received)
        except OrderRejected as e:
            rejected = msgspec.structs.replace(
                _pending_report(self.name, order, AckKind.RECEIPT, received),
                status=OrderStatus.REJECTED,
                reject_reason=e.reason,
                reject_message=e.message,
                venue_ts_ns=self.now_ns(),
            )
            self.exchange.notify(account_id, rejected)
        finally:
            self._dispatch()


def accepted_view(r: ExecutionReport) -> ExecutionReport:
    """The order as it stood when it passed the risk checks: what an ACCEPTED answer shows."""
    return msgspec.structs.replace(
        r,
        ack_kind=AckKind.ACCEPTED,
        status=OrderStatus.NEW,
        cum_filled=r.cum_filled * 0,
        avg_price=None,
        cum_fee=r.cum_fee * 0,
        last_fill=None,
        reject_reason=None,
        reject_message=None,
        venue_ts_ns=r.venue_accept_ns or r.venue_ts_ns,
    )


def _pending_report(venue: str, order: NewOrder, ack: AckKind, received: int) -> ExecutionReport:
    """A pending report as this venue knows it: it received the order at `received`."""
    return pending_report(
        order,
        venue,
        ack,
        venue_receive_ns=received if ack is AckKind.RECEIPT else None,
        venue_ts_ns=received,
    )


class SimVenueClient:
    """`VenueClient` for one account of an in-process `SimVenue`."""

    def __init__(self, venue: SimVenue, account_id: str) -> None:
        self._venue = venue
        self._account = account_id
        # Subscribed from the start, like a user-data stream opened on connect, so no
        # report is missed between a place() and the first read of the stream.
        self._reports = venue.subscribe_account(account_id)
        self._subs: list[_Subscription] = [self._reports]

    @property
    def venue(self) -> str:
        return self._venue.name

    @property
    def ack_semantics(self) -> AckKind:
        return self._venue.profile.ack

    async def instruments(self) -> list[Instrument]:
        return await self._venue.call(lambda now: list(self._venue.exchange.instruments.values()))

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        return await self._venue.call(
            lambda now: self._venue.exchange.book_snapshot(symbol, depth, now)
        )

    async def place(self, order: NewOrder) -> ExecutionReport:
        return await self._venue.submit(self._account, order)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        return await self._venue.submit_batch(self._account, orders)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._venue.call(
            lambda now: self._venue.exchange.cancel(self._account, symbol, client_order_id, now)
        )

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        return await self._venue.call(
            lambda now: self._venue.exchange.cancel_all(self._account, symbol, now)
        )

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._venue.call(
            lambda now: self._venue.exchange.query(self._account, symbol, client_order_id)
        )

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        return await self._venue.call(
            lambda now: self._venue.exchange.open_orders(self._account, symbol)
        )

    async def account(self) -> AccountSnapshot:
        return await self._venue.call(
            lambda now: self._venue.exchange.account_snapshot(self._account, now)
        )

    async def positions(self) -> list[Position]:
        return await self._venue.call(
            lambda now: self._venue.exchange.positions(self._account, now)
        )

    async def server_time_ns(self) -> int:
        return await self._venue.call(lambda now: now)

    async def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """This account's reports since the client was made; one consumer per client."""
        while True:
            item = await self._reports.queue.get()
            if isinstance(item, StreamClosed):
                return
            if isinstance(item, VenueError):
                raise item
            assert isinstance(item, ExecutionReport)
            yield item

    async def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        sub = self._venue.subscribe_market(symbols)
        self._subs.append(sub)
        try:
            while True:
                item = await sub.queue.get()
                if isinstance(item, StreamClosed):
                    return
                yield item  # type: ignore[misc]
        finally:
            self._venue.unsubscribe(sub)

    async def close(self) -> None:
        for sub in self._subs:
            sub.put(StreamClosed())
            self._venue.unsubscribe(sub)
        self._subs.clear()
