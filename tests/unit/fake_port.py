"""Hand-written fakes of a runner's port: a simulated clock and a scriptable venue."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from decimal import Decimal

import msgspec

from actors.journal import Entry, JournalError, Record
from actors.messages import LegProgress
from actors.runners.port import VenueAnswer
from venues.errors import (
    OrderRejected,
    OutcomeUnknown,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AckKind,
    ExecutionReport,
    Fill,
    Liquidity,
    NewOrder,
    OrderStatus,
    RejectReason,
    Side,
)

MS = 1_000_000
MAX_EVENTS = 1_000_000  # a loop of zero-delay timers is a bug, not a long test


class FakeTimer:
    """One `call_at`: cancelling it (before or after it ran) only stops it running."""

    def __init__(self, t_ns: int, fn: Callable[[], None]) -> None:
        self.t_ns = t_ns
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Simulated time: a heap of timers run one by one, in time order then in the order they
    were set. `watchers` run after every event (invariants that must hold at every instant)."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns
        self._heap: list[tuple[int, int, FakeTimer]] = []
        self._seq = itertools.count()
        self.watchers: list[Callable[[], None]] = []

    def now_ns(self) -> int:
        return self._now

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        timer = FakeTimer(max(t_ns, self._now), fn)
        heapq.heappush(self._heap, (timer.t_ns, next(self._seq), timer))
        return timer

    def pending(self) -> int:
        """Timers still to run (cancelled ones left out)."""
        return sum(not timer.cancelled for _, _, timer in self._heap)

    def _next_ns(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _run_next(self) -> None:
        _, _, timer = heapq.heappop(self._heap)
        self._now = timer.t_ns
        timer.fn()
        for watch in self.watchers:
            watch()

    def run_until(self, until: int | Callable[[], bool], limit_ns: int | None = None) -> None:
        """Run events up to the instant `until` (then stand at it), or until the condition
        `until` holds; a condition that has not held by `limit_ns` (or by the time no event is
        left) raises."""
        for _ in range(MAX_EVENTS):
            if callable(until):
                if until():
                    return
                nxt = self._next_ns()
                if nxt is None or (limit_ns is not None and nxt > limit_ns):
                    raise AssertionError(
                        f"condition still false at {self._now} ns (next event: {nxt}, "
                        f"limit: {limit_ns})"
                    )
            else:
                nxt = self._next_ns()
                if nxt is None or nxt > until:
                    self._now = max(self._now, until)
                    return
            self._run_next()
        raise AssertionError(f"more than {MAX_EVENTS} events before {until}")


class Sent(msgspec.Struct, frozen=True):
    """A placement as the runner made it: when, and what."""

    t_ns: int
    order: NewOrder


class FakeVenue:
    """A venue with a one-way trip of `latency_ns` each way. By default an order fills in full
    at its limit price; the answer carries the RESULT (`AckKind.RESULT`) and the same report
    comes on the execution stream (`on_report`) `stream_lag_ns` after the venue applied it.
    The venue's truth (`orders`) is what queries answer from.

    Faults, by the instant a request reaches the venue:
    - `outages`: windows [t0, t1) in which places and queries get `VenueUnavailable` (503);
    - `reject_from`: refuse (`OrderRejected`) every order from this one on (0: all);
    - `lost`: orders (by their index among placements) whose answer is lost
      (`OutcomeUnknown`); the venue applies each `apply_lost_after_ns` after receiving it
      (None: never);
    - `failing_queries`: the next this many queries to reach it get a 503.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        latency_ns: int = 5 * MS,
        stream_lag_ns: int = 8 * MS,
        name: str = "sim",
    ) -> None:
        self.clock = clock
        self.latency_ns = latency_ns
        self.stream_lag_ns = stream_lag_ns
        self.name = name
        self.stream: Callable[[ExecutionReport], None] | None = None
        self.sent: list[Sent] = []  # every placement, as the runner made it
        self.queries: list[tuple[int, str]] = []  # (time, client order id) of each query
        self.orders: dict[str, ExecutionReport] = {}  # what the venue applied, by client id
        self.outages: list[tuple[int, int]] = []
        self.reject_from: int | None = None
        self.lost: set[int] = set()
        self.apply_lost_after_ns: int | None = None
        self.failing_queries = 0
        self.trade_queries: list[int] = []  # order ids whose trades were asked for
        self.reports_without_trades = False  # answers and stream reports carry no trade

    # -- what a test reads -----------------------------------------------------------------
    @property
    def position(self) -> Decimal:
        """The account's net position from the orders the venue applied (buys positive)."""
        return sum(
            (r.cum_filled if r.side is Side.BUY else -r.cum_filled for r in self.orders.values()),
            Decimal(0),
        )

    def down(self, t_ns: int) -> bool:
        return any(t0 <= t_ns < t1 for t0, t1 in self.outages)

    # -- the port's calls ------------------------------------------------------------------
    def place(self, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None:
        index = len(self.sent)
        self.sent.append(Sent(self.clock.now_ns(), order))
        self._later(self.latency_ns, lambda: self._receive(index, order, then))

    def query(self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]) -> None:
        self.queries.append((self.clock.now_ns(), client_order_id))
        self._later(self.latency_ns, lambda: self._answer_query(client_order_id, then))

    # -- the venue's side ------------------------------------------------------------------
    def _later(self, delay_ns: int, fn: Callable[[], None]) -> None:
        self.clock.call_at(self.clock.now_ns() + delay_ns, fn)

    def _reply(self, then: Callable[[VenueAnswer], None], answer: VenueAnswer) -> None:
        self._later(self.latency_ns, lambda: then(answer))

    def _receive(self, index: int, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None:
        now = self.clock.now_ns()
        if self.down(now):
            self._reply(then, VenueUnavailable("service unavailable", venue=self.name, code=503))
        elif self.reject_from is not None and index >= self.reject_from:
            refusal = OrderRejected(
                "injected refusal",
                reason=RejectReason.INJECTED,
                venue=self.name,
                code=-2010,
                client_order_id=order.client_order_id,
            )
            self._reply(then, refusal)
        elif index in self.lost:
            lost = OutcomeUnknown(
                "timeout waiting for the venue",
                venue=self.name,
                code=-1007,
                client_order_id=order.client_order_id,
            )
            self._reply(then, lost)
            if self.apply_lost_after_ns is not None:
                self._later(self.apply_lost_after_ns, lambda: self._apply(order, now))
        else:
            report = self._apply(order, now)
            self._reply(then, msgspec.structs.replace(report, ack_kind=AckKind.RESULT))

    def _apply(self, order: NewOrder, received_ns: int) -> ExecutionReport:
        """Fill `order` in full at its limit; the stream tells of it a little later."""
        if order.client_order_id in self.orders:
            raise AssertionError(f"{order.client_order_id} applied twice")
        now = self.clock.now_ns()
        report = ExecutionReport(
            venue=self.name,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            order_id=len(self.orders) + 1,
            side=order.side,
            order_type=order.type,
            time_in_force=order.time_in_force,
            status=OrderStatus.FILLED,
            quantity=order.quantity,
            price=order.price,
            cum_filled=order.quantity,
            avg_price=order.price,
            cum_fee=Decimal(0),
            last_fill=Fill(
                trade_id=len(self.orders) + 1,
                price=order.price or Decimal(0),
                quantity=order.quantity,
                fee=Decimal(0),
                fee_asset="USDT",
                liquidity=Liquidity.TAKER,
                ts_ns=now,
            ),
            venue_receive_ns=received_ns,
            venue_accept_ns=now,
            venue_ts_ns=now,
        )
        self.orders[order.client_order_id] = report
        if self.reports_without_trades:  # as after a stream gap: cumulative figures only
            report = msgspec.structs.replace(report, last_fill=None)
        stream = self.stream
        if stream is not None:
            self._later(self.stream_lag_ns, lambda: stream(report))
        return report

    def trades(
        self, symbol: str, order_id: int, then: Callable[[list[Fill] | VenueError], None]
    ) -> None:
        """The order's one trade (every order fills at once here)."""
        self.trade_queries.append(order_id)
        found = [r.last_fill for r in self.orders.values() if r.order_id == order_id]
        self._reply(then, [f for f in found if f is not None])

    def _answer_query(self, coid: str, then: Callable[[VenueAnswer], None]) -> None:
        if self.down(self.clock.now_ns()) or self.failing_queries > 0:
            self.failing_queries = max(0, self.failing_queries - 1)
            self._reply(then, VenueUnavailable("service unavailable", venue=self.name, code=503))
        elif coid in self.orders:
            report = self.orders[coid]
            if self.reports_without_trades:
                report = msgspec.structs.replace(report, last_fill=None)
            self._reply(then, report)
        else:
            self._reply(then, UnknownOrder("Order does not exist.", venue=self.name, code=-2013))


class FakeJournal:
    """A journal on the fake clock: `record` takes a record at once; `record_durably` takes
    it and commits it `commit_ns` later, or fails then while `failing` is set. `commits`
    holds (time, record) of every durable commit."""

    def __init__(self, clock: FakeClock, commit_ns: int = 2 * MS) -> None:
        self.clock = clock
        self.commit_ns = commit_ns
        self.records: list[Record] = []
        self.commits: list[tuple[int, Record]] = []
        self.failing = False

    def record(self, record: Record) -> None:
        self.records.append(record)

    def record_durably(self, record: Record, then: Callable[[Exception | None], None]) -> None:
        failing = self.failing
        if not failing:
            self.records.append(record)

        def done() -> None:
            if failing:
                then(JournalError("the journal's disk is full"))
            else:
                self.commits.append((self.clock.now_ns(), record))
                then(None)

        self.clock.call_at(self.clock.now_ns() + self.commit_ns, done)

    def entries(self) -> list[Entry]:
        return [Entry(seq=i + 1, record=r) for i, r in enumerate(self.records)]


class FakePort:
    """A leg runner's port on the fake clock and venue; the basket's snapshots are kept."""

    def __init__(self, clock: FakeClock, venue: FakeVenue) -> None:
        self.clock = clock
        self.venue = venue
        self.snapshots: list[LegProgress] = []

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        return self.clock.call_at(t_ns, fn, precise=precise)

    def send(self, progress: LegProgress) -> None:
        self.snapshots.append(progress)
