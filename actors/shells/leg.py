"""`LegActor`: one per leg, on a node near its venue; slices the leg into child orders.

The shell owns the leg's venue connection and its timers; the decisions are the
`SliceScheduler`'s (what to send, when, at what price) and the record is the `LegLedger`'s
(what was sent and what the venue said). It tells the basket how far it is with monotonic
`LegProgress` snapshots, sent whenever something changes and as a heartbeat.

Order-sending methods run at most once: the actor is created with `max_task_retries=0`, and
every child order has a deterministic client order id, and an order whose answer was lost is
settled by querying that id, never by sending it again.

A leg actor may be created ahead of any basket and warmed up (`connect`: the venue client
started, the venue clock measured and tracked) by the engine's warm pool; `arm` then only
does what is particular to the leg (its symbol's market stream and book).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.clock import ClockEstimate, ClockOffsetEstimator
from actors.leg import MAX_CONSECUTIVE_REJECTS, LegLedger, Reconciliation
from actors.messages import LegProgress, LegStatus
from actors.protocol import ArmLeg, LegArmed, Placement, VenueEndpoint
from actors.report import LegReport
from actors.schedule import Hold, Mode, SendChildOrder, SliceScheduler, latency_buffer_bps
from actors.shells import here
from actors.shells.channel import Outbox
from actors.shells.tasks import BackgroundTasks
from actors.shells.venue import client_for
from actors.spec import ResolvedLeg, client_order_id
from actors.sync import AdjustLeg
from venues.binance.client import BinanceUsdmClient
from venues.binance.parse import STALE_TIMESTAMP
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
    AckKind,
    BookTicker,
    ExecutionReport,
    MarketTrade,
    NewOrder,
    OrderType,
    Side,
    TimeInForce,
)

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
# The last 5 ms before fire_at are waited out without the event loop's timer (late by up
# to a millisecond): a blocking sleep to SPIN_TAIL_NS before it, then a spin. A spin of
# the whole 5 ms would, with eight legs on two cores, keep each other's processes off the
# cores at the very instant they must send.
SPIN_NS = 5_000_000
SPIN_TAIL_NS = 150_000
UNWIND_SLIPPAGE_BPS = Decimal(100)  # an unwind crosses this far through the mid to get out
SETTLE_TIMEOUT_S = 10.0  # how long reconciliation waits for in-flight orders to finish
VENUE_CLOCK_PINGS = 8  # server-time exchanges when arming; the narrowest bounds the offset
VENUE_CLOCK_EVERY_S = 2.0  # then one more this often, so drift is tracked over the basket
VENUE_TICK_NS = 1_000_000  # Binance stamps times in milliseconds
# Holds that only time (the next slice, the start), a command (a mode change, a shrink) or
# an order report can end: a leg in one of them sleeps through book ticks and trades.
_TIMED_HOLDS = frozenset(
    {Hold.NOT_DUE, Hold.NOT_STARTED, Hold.AHEAD, Hold.PAUSED, Hold.DONE, Hold.STOPPED}
)
# Holds that wait on a command or a report alone: no timer but the heartbeat.
_WAITING_HOLDS = frozenset({Hold.PAUSED, Hold.DONE, Hold.STOPPED})


async def wait_until(t_ns: int, now_ns: Callable[[], int] = time.time_ns) -> None:
    """Return at `t_ns` of the clock `now_ns`: asleep on the event loop until `SPIN_NS`
    before it, then blocking the loop in the kernel's sleep until `SPIN_TAIL_NS` before, and
    spinning out the rest. The loop's timer alone is late by up to a millisecond, which
    would show as launch skew."""
    while (left := t_ns - now_ns()) > SPIN_NS:
        await asyncio.sleep((left - SPIN_NS) / 1e9)
    if (left := t_ns - now_ns() - SPIN_TAIL_NS) > 0:
        time.sleep(left / 1e9)  # blocks the loop: it has nothing more urgent now
    while now_ns() < t_ns:
        pass


class LegActor:
    """One leg of one basket (see the module docstring)."""

    def __init__(self, venue: str, clock_offset_ns: int = 0) -> None:
        self.venue = venue
        # A test hook (DESIGN §6): a node whose clock is off by a known amount.
        self._offset = clock_offset_ns
        self._cmd: ArmLeg | None = None
        self._leg: ResolvedLeg | None = None
        self._client: BinanceUsdmClient | None = None
        self._progress: Outbox[LegProgress] | None = None  # to the basket (`_publish`)
        self._ledger: LegLedger | None = None
        self._sched: SliceScheduler | None = None
        self._book: BookTicker | None = None
        self._volume = _ZERO
        self._mode = Mode.NORMAL
        self._status = LegStatus.IDLE
        self._reason = ""
        self._blocked = False
        self._wake = asyncio.Event()
        self._tasks = BackgroundTasks(f"leg on {venue}")
        self._endpoint: VenueEndpoint | None = None  # what the client is connected to
        self._connection: list[asyncio.Task[None]] = []  # the connection's own tasks
        self._connecting = asyncio.Lock()
        self._taken = asyncio.Event()  # armed (or closed): no longer idle in a warm pool
        self._run_task: asyncio.Task[None] | None = None
        self._fired_ns: int | None = None  # when the timer went off (leg clock)
        self._fire_at_ns: int | None = None  # when the first order should reach the venue
        self._published: tuple[object, ...] = ()  # what the last snapshot said
        self._publish_due = False  # a snapshot is scheduled (`_publish_soon`)
        self._adjusted_ns = 0  # basket time of the newest adjustment applied
        self._published_ns = 0
        self._rejects_in_row = 0
        self._next_n = 0
        self._original_qty = _ZERO
        self._unwound = _ZERO
        self._arrival: Decimal | None = None
        self._reconciliation: Reconciliation | None = None
        self._placement: Placement | None = None
        self._venue_clock = ClockOffsetEstimator(remote_resolution_ns=VENUE_TICK_NS)
        self._market_notional = _ZERO  # public trades over the leg's life, for market VWAP
        self._market_qty = _ZERO

    def now_ns(self) -> int:
        return time.time_ns() + self._offset

    # -- basics ------------------------------------------------------------------------------
    def ping(self) -> int:
        """This leg's clock, for the basket's offset estimate (DESIGN §6)."""
        return self.now_ns()

    def placement(self) -> Placement:
        return here()

    @property
    def _l(self) -> LegLedger:
        assert self._ledger is not None, "arm() first"
        return self._ledger

    # -- warm up and arm ----------------------------------------------------------------------
    async def connect(self, endpoint: VenueEndpoint) -> None:
        """Start the venue client, measure the venue clock and keep tracking it: all the
        arming that does not depend on the leg. The warm pool calls it ahead of any basket;
        `arm` calls it too, and it does nothing when already connected to `endpoint`."""
        async with self._connecting:
            if self._client is not None and self._endpoint == endpoint:
                return
            await self._disconnect()  # a venue started afresh (new epoch): a new connection
            client = client_for(endpoint, timeout_s=10.0, resolve_timeout_s=3.0)
            await client.start()
            self._client, self._endpoint = client, endpoint
            self._venue_clock = ClockOffsetEstimator(remote_resolution_ns=VENUE_TICK_NS)
            try:
                # A busy venue leaves a sample unanswered now and then: it is taken again.
                await take_samples(self._sample_venue_clock, VENUE_CLOCK_PINGS)
            except BaseException:  # not connected after all: the next call starts afresh
                await self._disconnect()
                raise
            # The basket's handle comes with `arm`, and Ray loads its class's module to
            # rebuild it: 50-100 ms of imports on a small machine, done here while idle.
            importlib.import_module("actors.shells.basket")
            self._connection = [
                self._tasks.spawn(self._track_venue_clock(), f"{self.venue}-clock"),
                # The account's order reports flow from now on (other baskets' orders on the
                # same account too): read them, or an idle connection's queue would overflow.
                self._tasks.spawn(self._follow_reports(), f"{self.venue}-reports"),
            ]

    async def _disconnect(self) -> None:
        for task in self._connection:
            task.cancel()
        for task in self._connection:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._connection = []
        if self._client is not None:
            await self._client.close()
        self._client, self._endpoint = None, None

    async def idle(self) -> None:
        """Returns once the leg is armed or closed. The warm pool keeps this call pending
        on every idle leg: should the actor die, the call fails at once in the pool's
        process, which then knows, without asking, not to hand the leg out."""
        await self._taken.wait()

    async def arm(self, cmd: ArmLeg, basket: Any) -> LegArmed:
        """Connect to the venue (unless warm already), follow the leg's book and trades."""
        if self._cmd is not None:
            raise RuntimeError(f"leg {self._cmd.leg.leg_id} is already armed")
        self._taken.set()
        self._cmd = cmd
        self._leg = leg = cmd.leg
        self._progress = Outbox(basket.on_progress.remote, f"leg {leg.leg_id} progress")
        self._original_qty = leg.quantity
        self._ledger = LegLedger(cmd.basket_id, leg.leg_id, leg.side, leg.quantity)
        await self.connect(cmd.endpoint)
        client = self._client
        assert client is not None
        self._tasks.spawn(self._follow_market(), f"{leg.leg_id}-market")
        book = await client.order_book(leg.symbol, 5)
        self._book = book.top() or self._book
        self._status = LegStatus.ARMED
        self._placement = here()
        await self._progress.open(cmd.progress_inbox, self._placement.node_id)
        # A first snapshot now: the handle's first call costs more than the next ones, and
        # the next one is the launch order's.
        self._publish()
        return LegArmed(
            leg_id=leg.leg_id,
            placement=self._placement,
            ack_kind=client.ack_semantics,
            venue_clock_offset_ns=self._venue_clock.offset_ns,
            venue_clock_rtt_ns=self._venue_clock.best.rtt_ns,
            venue_typical_rtt_ns=self._typical_rtt_ns(),
            mid=book.mid,
        )

    def _typical_rtt_ns(self) -> int:
        """The median round trip of this leg's own venue-clock exchanges (those of the
        clock window, refreshed every `VENUE_CLOCK_EVERY_S`): what a request to the venue
        usually takes there and back, from this process as it is now. The client's own
        figure, from its start, before any."""
        rtts = sorted(sample.rtt_ns for sample in self._venue_clock.samples)
        if rtts:
            return rtts[len(rtts) // 2]
        return (self._client.typical_rtt_ns if self._client is not None else None) or 0

    async def _sample_venue_clock(self) -> None:
        """One server-time exchange, on this leg's own clock (which may be off from true
        time on its node: the offset measured is venue − leg, whatever the node's error)."""
        assert self._client is not None
        t_send = self.now_ns()
        remote = await self._client.server_time_ns()
        self._venue_clock.add_sample(t_send, remote, self.now_ns())

    async def _track_venue_clock(self) -> None:
        """Keep measuring the venue clock while the leg lives (DESIGN §6: continuous,
        drift-aware). A failed exchange is skipped; the venue's errors show elsewhere."""
        while True:
            await asyncio.sleep(VENUE_CLOCK_EVERY_S)
            try:
                await self._sample_venue_clock()
            except VenueError as e:
                log.debug("leg %s: venue clock sample: %s", self.venue, e)

    async def _follow_reports(self) -> None:
        client = self._client
        assert client is not None
        while True:
            try:
                async for report in client.execution_reports():
                    # Before arming nothing is ours: the account's other orders pass by.
                    if self._ledger is not None and self._ledger.on_report(report, self.now_ns()):
                        self._changed()
                return
            except VenueError as e:  # the stream overflowed: settle by query, then go on
                log.warning("leg on %s: execution reports: %s", self.venue, e)
                if self._ledger is not None:
                    await self._settle_by_query()

    async def _follow_market(self) -> None:
        assert self._client is not None and self._leg is not None
        async for event in self._client.market_events([self._leg.symbol]):
            if isinstance(event, BookTicker):
                self._book = event
            elif isinstance(event, MarketTrade):
                self._volume += event.quantity
                if self._fired_ns is not None and self._status in (
                    LegStatus.WORKING,
                    LegStatus.PAUSED,
                ):
                    self._market_notional += event.price * event.quantity
                    self._market_qty += event.quantity
            # Most of the time the next decision waits on the clock or on a command: the
            # book is read when it is taken. Only a hold the market can end is woken (a
            # leg follows 10-120 events a second).
            sched = self._sched
            if sched is not None and sched.hold is not None and sched.hold not in _TIMED_HOLDS:
                self._wake.set()

    # -- fire and run ------------------------------------------------------------------------
    def fire(self, fire_at_ns: int) -> None:
        """Have the first child order reach the venue at `fire_at_ns` of this leg's clock,
        then work the leg.

        The order leaves one estimated one-way trip earlier (half the venue's median round
        trip): legs on a colocated and on a cross-region venue then arrive together, and the
        launch skew measured at the venues is bounded by clock and latency error rather than
        by the latency itself (DESIGN §5.4).

        Every NORMAL slice's limit goes `latency_buffer_bps` through the touch: the price's
        move, at the instrument's volatility, over the book's age when the order lands (the
        book came one trip ago, the order takes another: about a round trip).
        """
        cmd = self._cmd
        if cmd is None or self._run_task is not None or self._client is None:
            raise RuntimeError("fire() needs an armed leg that has not fired yet")
        leg = cmd.leg
        self._fire_at_ns = fire_at_ns
        rtt = self._typical_rtt_ns()
        fire_at_ns -= rtt // 2
        self._sched = SliceScheduler(
            cmd.basket_id,
            leg.leg_id,
            leg.instrument,
            leg.side,
            leg.quantity,
            start_ns=fire_at_ns,
            horizon_ns=cmd.horizon_ns,
            slice_ns=cmd.slice_ns,
            max_slippage_bps=leg.max_slippage_bps,
            participation_cap=cmd.participation_cap,
            max_child_fraction=cmd.max_child_fraction,
            latency_buffer_bps=latency_buffer_bps(cmd.vol_annual, rtt),
            synchronized=cmd.synchronized,
        )
        self._run_task = self._tasks.spawn(self._run(fire_at_ns), f"{leg.leg_id}-run")

    async def _run(self, fire_at_ns: int) -> None:
        sched = self._sched
        assert sched is not None
        await wait_until(fire_at_ns, self.now_ns)
        fired = self.now_ns()
        self._status = LegStatus.WORKING
        try:
            while True:
                if self._status is LegStatus.FAILED:  # failed by a report meanwhile
                    return
                now = self.now_ns()
                volume, self._volume = self._volume, _ZERO
                mode = self._mode
                ledger = self._l
                child = sched.next_slice(
                    now,
                    ledger.filled_qty,
                    self._book,
                    volume,
                    mode,
                    ledger.open_qty,
                    ledger.missed_qty,
                )
                if self._fired_ns is None:
                    self._fired_ns = fired
                if child is not None:
                    await self._send(child)
                    if self._status is LegStatus.FAILED:
                        return
                else:
                    self._blocked = sched.blocked
                    if sched.hold is Hold.SLIPPAGE_CAP:
                        self._reason = "the touch is beyond the slippage cap from arrival"
                    elif sched.hold is Hold.NO_BOOK:
                        self._reason = "no two-sided book"
                    if sched.hold in (Hold.DONE, Hold.STOPPED) and self._l.open_qty <= 0:
                        self._status = LegStatus.DONE
                        self._publish()
                        return
                if self._mode is Mode.PAUSE and self._status is LegStatus.WORKING:
                    self._status = LegStatus.PAUSED
                elif self._mode is not Mode.PAUSE and self._status is LegStatus.PAUSED:
                    self._status = LegStatus.WORKING
                self._publish(only_if_changed=True)
                await self._sleep_until_due(sched)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must not leave the basket waiting forever
            log.exception("leg %s failed", self._l.leg_id)
            self._fail(f"leg actor error: {e!r}")

    async def _sleep_until_due(self, sched: SliceScheduler) -> None:
        cmd = self._cmd
        assert cmd is not None
        now = self.now_ns()
        if sched.hold in _WAITING_HOLDS:
            due = now + cmd.progress_every_ns  # woken by the command or report that ends it
        elif sched.hold is Hold.AHEAD:
            # The schedule moves on at the next grid point (or a fill or shrink wakes it).
            done = (now - sched.start_ns) // sched.slice_ns + 1
            due = max(sched.next_due_ns, sched.start_ns + done * sched.slice_ns)
        else:
            due = max(sched.next_due_ns, now + 1_000_000)
        timeout = min(due - now, cmd.progress_every_ns) / 1e9
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0.001))
        # A wake-up for a book tick or a report should not re-decide more often than the
        # interval allows: the scheduler says NOT_DUE cheaply, so just go round.

    def _fail(self, reason: str) -> None:
        self._status = LegStatus.FAILED
        self._reason = reason
        self._mode = Mode.STOP
        self._publish()

    async def _send(self, child: SendChildOrder) -> None:
        assert self._client is not None
        if self._arrival is None:
            self._arrival = child.arrival_price
        self._next_n = max(self._next_n, child.n + 1)
        await self._place(child.order, child.n, "slice")

    async def _place(self, order: NewOrder, n: int, purpose: str) -> ExecutionReport | None:
        assert self._client is not None
        ledger = self._l
        first = not ledger.orders
        ledger.sent(order, n, self.now_ns(), purpose, mid=self._mark())
        if first:
            # The launch order leaves first: the snapshot (a Ray call) goes once the request
            # is on its way and the loop waits on the venue.
            asyncio.get_running_loop().call_soon(self._publish)
        else:
            self._publish()
        try:
            report = await self._client.place(order)
        except OrderRejected as e:
            ledger.refused(order.client_order_id, f"{e.reason.value}: {e.message}", self.now_ns())
            self._rejects_in_row += 1
            if first:
                self._fail(f"first order {order.client_order_id} rejected: {e.message}")
            elif self._rejects_in_row >= MAX_CONSECUTIVE_REJECTS:
                self._fail(f"{self._rejects_in_row} orders in a row rejected; last: {e.message}")
            return None
        except OutcomeUnknown:
            ledger.unknown(order.client_order_id)  # settled by query later; never resent
            self._tasks.spawn(self._settle_by_query(), f"{ledger.leg_id}-settle")
            return None
        except (VenueUnavailable, RateLimited, AuthError) as e:
            if isinstance(e, AuthError) and e.code != STALE_TIMESTAMP:
                raise
            # Nothing reached the book: the order is known to be refused at the door (a
            # request that reached a busy venue past its receive window is one, twice).
            ledger.refused(order.client_order_id, f"VENUE_UNAVAILABLE: {e.message}", self.now_ns())
            self._blocked = True
            self._reason = e.message
            if first:
                self._fail(f"first order {order.client_order_id} not accepted: {e.message}")
            return None
        self._rejects_in_row = 0
        ledger.acked(report, self.now_ns())
        if report.ack_kind is AckKind.UNKNOWN:  # the answer was lost: ask, never resend
            self._tasks.spawn(self._settle_by_query(), f"{ledger.leg_id}-settle")
        if report.status.value == "REJECTED" and first:
            self._fail(f"first order {order.client_order_id} rejected: {report.reject_message}")
        self._changed()
        return report

    async def _settle_by_query(self) -> None:
        """Ask the venue about every order that may still change."""
        assert self._client is not None and self._leg is not None
        for coid, child in list(self._l.orders.items()):
            if child.status.is_terminal and not child.unknown:
                continue
            try:
                report = await self._client.query(self._leg.symbol, coid)
            except UnknownOrder:
                self._l.refused(coid, "UNKNOWN_ORDER: never reached the venue", self.now_ns())
            except VenueError as e:
                log.warning("leg %s: query %s: %s", self._l.leg_id, coid, e)
                continue
            else:
                self._l.on_report(report, self.now_ns())
        self._changed()

    def _changed(self) -> None:
        # Refusals that arrive on the stream (a RECEIPT venue answers before its checks, so
        # later orders may already be out) count as those answered at once do.
        working = self._status in (LegStatus.WORKING, LegStatus.PAUSED, LegStatus.ARMED)
        if working and (reason := self._l.give_up_reason()) is not None:
            self._fail(reason)
            return
        self._publish_soon()
        self._wake.set()

    def _publish_soon(self) -> None:
        """One snapshot once the reports read together are all in (an order's NEW and
        FILLED often come in one read): one Ray call rather than one per report."""
        if not self._publish_due:
            self._publish_due = True
            asyncio.get_running_loop().call_soon(self._publish_now)

    def _publish_now(self) -> None:
        self._publish_due = False
        self._publish()

    def _mark(self) -> Decimal | None:
        book = self._book
        return None if book is None else (book.bid + book.ask) / 2

    def _publish(self, *, only_if_changed: bool = False) -> None:
        """Send the basket a snapshot. `only_if_changed`: skip it when nothing the basket
        reads has changed since the last one and the heartbeat is not due (the run loop
        wakes on every book tick)."""
        if self._progress is None or self._ledger is None:
            return
        ledger = self._ledger
        state = (
            self._status,
            ledger.filled_qty,
            ledger.open_qty,
            ledger.target_qty,
            self._blocked,
            ledger.first is not None and ledger.first.ack_ns is not None,
        )
        now = self.now_ns()
        if (
            only_if_changed
            and state == self._published
            and self._cmd is not None
            and now - self._published_ns < self._cmd.progress_every_ns
        ):
            return
        self._published, self._published_ns = state, now
        snapshot = self._ledger.progress(
            self._status,
            self.now_ns(),
            self._mark(),
            blocked=self._blocked or self._status is LegStatus.FAILED,
            reason=self._reason,
        )
        self._progress.send(snapshot)

    def progress(self) -> LegProgress:
        return self._l.progress(self._status, self.now_ns(), self._mark(), reason=self._reason)

    # -- commands from the basket ------------------------------------------------------------
    def adjust(self, adj: AdjustLeg) -> None:
        """Obey the synchronizer: a new mode, and perhaps a smaller target. Calls may arrive
        out of order: an adjustment older than the last one applied is dropped."""
        if self._mode is Mode.STOP or adj.ts_ns < self._adjusted_ns:
            return
        self._adjusted_ns = adj.ts_ns
        sched = self._sched
        if adj.target_qty is not None and sched is not None and adj.target_qty < sched.target_qty:
            # Targets only ever shrink; a cut older than one applied cannot get here.
            self._l.target_qty = sched.shrink(adj.target_qty, self._l.filled_qty)
        self._mode = adj.mode
        self._wake.set()

    async def stop(self, reason: str = "stopped by the basket") -> LegProgress:
        """Send nothing more; wait (bounded) for the orders in flight to finish."""
        self._mode = Mode.STOP
        if self._status not in (LegStatus.FAILED, LegStatus.DONE):
            self._reason = self._reason or reason
        self._wake.set()
        if self._run_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._run_task), SETTLE_TIMEOUT_S)
        await self._settled(SETTLE_TIMEOUT_S)
        if self._status not in (LegStatus.FAILED,):
            self._status = LegStatus.DONE
        self._publish()
        return self.progress()

    async def _settled(self, timeout_s: float) -> None:
        """Wait until no order is open; past half the time, ask the venue."""
        deadline = time.monotonic() + timeout_s
        asked = False
        while self._ledger is not None and self._l.open_qty > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not asked and left < timeout_s / 2:
                asked = True
                await self._settle_by_query()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, 0.2))

    async def unwind(self, deadline_s: float = 30.0) -> Decimal:
        """Trade the leg's net fill back to zero (policy `unwind`); returns what remains.

        IOC limits `UNWIND_SLIPPAGE_BPS` through the mid, repeated until flat or out of time.
        """
        await self.stop("unwinding")
        leg = self._leg
        if leg is None or self._client is None:
            return _ZERO
        inst = leg.instrument
        back = Side.SELL if leg.side is Side.BUY else Side.BUY
        away = UNWIND_SLIPPAGE_BPS / Decimal(10_000)
        deadline = time.monotonic() + deadline_s
        attempts = 0
        while time.monotonic() < deadline and attempts < 50:
            if self._l.open_qty > 0:
                # An order whose outcome is still unknown may yet fill: sending more could
                # overshoot flat. Stop here; what is left is reported.
                break
            remaining = inst.snap_qty(self._l.filled_qty)
            if remaining <= 0:
                break
            mid = self._mark()
            if mid is None:
                await asyncio.sleep(0.05)
                attempts += 1
                continue
            raw = mid * (1 + away) if back is Side.BUY else mid * (1 - away)
            order = NewOrder(
                client_order_id=client_order_id(self._l.basket_id, leg.leg_id, self._next_n),
                symbol=leg.symbol,
                side=back,
                type=OrderType.LIMIT,
                quantity=remaining,
                price=inst.snap_price_passive(raw, back),
                time_in_force=TimeInForce.IOC,
            )
            n = self._next_n
            self._next_n += 1
            await self._place(order, n, "unwind")
            await self._settled(SETTLE_TIMEOUT_S)
            attempts += 1
        self._unwound = self._l.slice_filled_qty - self._l.filled_qty
        self._publish()
        return self._l.filled_qty

    async def reconcile(self, attempts: int = 3) -> Reconciliation:
        """Confirm every child order with the venue (DESIGN §5.7); the venue's figures win."""
        assert self._client is not None and self._leg is not None
        await self._settled(SETTLE_TIMEOUT_S)
        result: Reconciliation | None = None
        for attempt in range(attempts):
            answers: dict[str, ExecutionReport | None] = {}
            for coid in self._l.orders:
                try:
                    answers[coid] = await self._client.query(self._leg.symbol, coid)
                except UnknownOrder:
                    answers[coid] = None
            final = attempt + 1 == attempts
            result = self._l.reconcile(answers, self.now_ns(), adopt=final)
            if result.reconciled:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(0.3)  # a stream report may still be on its way
        assert result is not None
        self._reconciliation = result
        if result.reconciled and self._status is not LegStatus.FAILED:
            self._status = LegStatus.RECONCILED
        self._publish()
        return result

    def report(self) -> LegReport:
        """The leg as it ended, times on this leg's clock (the basket maps them)."""
        leg = self._leg
        assert leg is not None and self._client is not None
        ledger = self._l
        first = ledger.first
        rec = self._reconciliation
        # The venue's offset where it matters most: at the leg's first venue stamp.
        clock: ClockEstimate | None = None
        if self._venue_clock.ready:
            at = first.sent_ns if first is not None else None
            clock = self._venue_clock.estimate(at)
        return LegReport(
            leg_id=leg.leg_id,
            venue=leg.venue,
            symbol=leg.symbol,
            side=leg.side,
            original_qty=self._original_qty,
            target_qty=ledger.target_qty,
            filled_qty=ledger.filled_qty,
            avg_price=ledger.avg_price,
            fees_usd=ledger.fees,
            status=self._status,
            reconciled=rec is not None and rec.reconciled,
            child_orders=list(ledger.orders.values()),
            rejects=ledger.rejects,
            mismatches=[] if rec is None else rec.mismatches,
            node_id="" if self._placement is None else self._placement.node_id,
            node_labels={} if self._placement is None else self._placement.node_labels,
            arrival_price=self._arrival,
            first_send_ns=None if first is None else first.sent_ns,
            first_ack_ns=None if first is None else first.ack_ns,
            first_venue_accept_ns=None if first is None else first.venue_accept_ns,
            ack_kind=self._client.ack_semantics,
            venue_clock_offset_ns=clock.offset_ns if clock else 0,
            venue_clock_rtt_ns=self._venue_clock.best.rtt_ns if clock else None,
            venue_clock_uncertainty_ns=clock.uncertainty_ns if clock else None,
            venue_clock_drift_ppm=clock.drift_ppm if clock else None,
            venue_clock_at_ns=clock.at_ns if clock else None,
            unwound_qty=self._unwound,
            reason=self._reason,
            contract_size=leg.instrument.contract_size,
            end_price=self._mark(),
            market_vwap=self._market_notional / self._market_qty if self._market_qty else None,
            market_volume=self._market_qty,
        )

    async def close(self) -> None:
        self._taken.set()
        if self._progress is not None:
            self._progress.close()
        await self._tasks.cancel_all()
        if self._client is not None:
            await self._client.close()
