"""`LegRunner`: every decision of a leg's life, live and in the backtest alike.

The leg's cores decide what to send (`SliceScheduler`) and keep the record (`LegLedger`);
the runner decides everything around them:

- **its status** (`LEG_TRANSITIONS`): ARMED → WORKING ⇄ PAUSED → DONE → RECONCILED, FAILED
  from anywhere before the end;
- **the run loop**: when to ask the scheduler again (the next slice, a heartbeat, a book
  tick that can end the hold) and when to tell the basket (a snapshot whenever something
  it reads changed, and as a heartbeat every `progress_every_ns`). One slice is on its way
  at a time, and none while a quote's cancel is: the answer steps the leg again. The one
  exception is a `passive` leg told to follow its partners' fills, whose IOC goes at once
  (`SliceScheduler.follow_now`, sized with what is in flight counted as filled);
- **what an answer means**: a refusal counts towards giving up (the first order refused, or
  `MAX_CONSECUTIVE_REJECTS` in a row); a venue that is down or rate-limits blocks the leg
  but fails it only at launch; bad credentials fail it; an answer that was lost (UNKNOWN)
  is settled by querying the client order id, never by sending again;
- **never sent** means the venue said so in a way nothing can contradict later: a definite
  refusal, or "no such order" from a query made once the venue's order window
  (`ArmLeg.order_window_ns`) has passed since the send. Before that an unknown order stays
  unknown, counts as open in full (so nothing more is sent in its place), and is queried
  again;
- **stop**: nothing more is sent and the leg waits (bounded) for what is in flight;
- **unwind**: IOC orders `UNWIND_SLIPPAGE_BPS` through the mid until flat or the deadline,
  through outages and refusals with capped exponential backoff, never while an order's
  outcome is unknown, and it says exactly what is left;
- **reconcile**: every child order queried by its client order id until the record and the
  venue agree, transient venue errors retried until the deadline;
- **the report** (`LegReport`) from the record.

It reaches the world only through its `LegPort`; the leg actor (live) and the backtest's
loop (simulated time) are its two drivers.

The module is one class and long (over 800 lines) on purpose: its run, its settling of
unknown outcomes and its stop, unwind, reconcile and recovery share the leg's record, its
timers and its status machine, and split apart they would reach into each other's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

import msgspec

from actors.journal.records import ReportSource
from actors.leg import MAX_CONSECUTIVE_REJECTS, ChildOrder, LegLedger, Reconciliation
from actors.lifecycle import leg_transition
from actors.messages import LegProgress, LegStatus
from actors.protocol import ArmLeg
from actors.report import LegReport
from actors.runners.journal import NO_JOURNAL, Journal, LegJournal
from actors.runners.port import LegPort, Timer, VenueAnswer
from actors.schedule import (
    DEFAULT_CATCH_UP_LAG,
    CancelChildOrder,
    Hold,
    Mode,
    Quote,
    SendChildOrder,
    SliceScheduler,
    latency_buffer_bps,
)
from actors.spec import MAX_CHILD_SEQ, ChildStyle, client_order_id
from actors.sync import AdjustLeg
from venues.binance.parse import STALE_TIMESTAMP
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
    Fill,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

MS = 1_000_000
_ZERO = Decimal(0)
UNWIND_SLIPPAGE_BPS = Decimal(100)  # an unwind crosses this far through the mid to get out
SETTLE_TIMEOUT_NS = 10_000 * MS  # how long a stop waits for the orders in flight to finish
SETTLE_POLL_NS = 200 * MS  # a settling leg looks again this often (reports also wake it)
BACKOFF_FIRST_NS = 100 * MS  # the first wait after a refused unwind order or failed query
BACKOFF_MAX_NS = 2_000 * MS  # the longest: a venue back from an outage is seen within this
REQUERY_NS = 250 * MS  # an order still unknown to the venue is asked about again this often
RECONCILE_ROUNDS = 3  # looks at the venue before a disagreement is taken as real
RECONCILE_GAP_NS = 300 * MS  # between those looks: a stream report may still be on its way
RECOVER_GAP = 20  # ids in a row the venue does not know before a recovery stops looking
RECOVERED_SEQ = 1 << 40  # where a recovered leg's snapshot numbers start
# Holds that only time (the next slice, the start), a command (a mode change, a shrink) or
# an order report can end: a leg in one of them sleeps through book ticks and trades.
_NEVER_REACHED = "UNKNOWN_ORDER: never reached the venue"
_TIMED_HOLDS = frozenset(
    {
        Hold.NOT_DUE,
        Hold.NOT_STARTED,
        Hold.AHEAD,
        Hold.PAUSED,
        Hold.DONE,
        Hold.STOPPED,
        Hold.REQUOTE_WAIT,
        Hold.WAITING,
    }
)
# Holds that wait on a command or a report alone: no timer but the heartbeat.
_WAITING_HOLDS = frozenset({Hold.PAUSED, Hold.DONE, Hold.STOPPED, Hold.WAITING})
_ENDED = frozenset({LegStatus.DONE, LegStatus.RECONCILED, LegStatus.FAILED})


class Unwound(msgspec.Struct, frozen=True, kw_only=True):
    """How an unwind ended: what is still held, and why it is not flat when it is not."""

    leg_id: str
    left_qty: Decimal  # net filled along the leg's side still held (0: flat)
    unknown: list[str] = []  # orders whose outcome is still unknown (they may yet fill)
    orders: int = 0  # unwind orders sent
    refusals: int = 0  # of those, refused by the venue (an outage, a rate limit, a reject)
    last_error: str = ""

    @property
    def flat(self) -> bool:
        return self.left_qty == 0 and not self.unknown

    def describe(self) -> str:
        """What is left, in words ("" when flat)."""
        if self.flat:
            return ""
        parts = [f"{self.left_qty} left"]
        if self.unknown:
            parts.append(f"outcome unknown for {', '.join(self.unknown)}")
        if self.last_error:
            parts.append(f"last error: {self.last_error}")
        return "; ".join(parts)


def book_age_ns(rtt_ns: int, delivery_ns: int | None) -> int:
    """How old a leg's book is when an order priced on it lands: its delivery (measured, or
    half the round trip) plus the order's trip there (half the round trip)."""
    one_way = rtt_ns // 2
    return (one_way if delivery_ns is None else max(delivery_ns, 0)) + one_way


def backoff_ns(previous_ns: int) -> int:
    """The next wait of a capped exponential backoff (0: the first)."""
    return BACKOFF_FIRST_NS if previous_ns <= 0 else min(2 * previous_ns, BACKOFF_MAX_NS)


class LegRunner:
    """One leg of one basket (see the module docstring)."""

    def __init__(
        self,
        cmd: ArmLeg,
        port: LegPort,
        *,
        book: BookTicker | None,
        ack_kind: AckKind,
        journal: Journal = NO_JOURNAL,
    ) -> None:
        """`journal`: where the leg's orders are recorded, when its run has an identity
        (`cmd.run_id`); every child order but the leg's first is recorded before it is
        sent (the first goes at once: `recover` asks the venue about it in any case)."""
        leg = cmd.leg
        self.cmd = cmd
        self.leg = leg
        self.port = port
        self.ack_kind = ack_kind
        self.ledger = LegLedger(cmd.basket_id, leg.leg_id, leg.side, leg.quantity)
        self.prefix = cmd.order_prefix or cmd.basket_id  # of its client order ids
        self.journal = LegJournal(journal, cmd.run_id, leg.leg_id, leg.venue)
        self.sched: SliceScheduler | None = None
        self.book = book
        self.status = leg_transition(leg.leg_id, LegStatus.IDLE, LegStatus.ARMED)
        self.mode = Mode.NORMAL
        self.reason = ""
        self.blocked = False
        self.arrival: Decimal | None = None
        self.reconciliation: Reconciliation | None = None
        self.unwound_qty = _ZERO
        self._volume = _ZERO
        self._busy = 0  # slices on their way: the next waits for their answers (but a follow)
        self._venue_down = False  # the venue turned the last order away (down, rate limit)
        self._timer: Timer | None = None
        self._rejects_in_row = 0
        self._next_n = 0
        self._written: dict[int, int] = {}  # recovering: written ahead, not yet found
        self._adjusted_ns = 0
        self._published: tuple[object, ...] = ()
        self._published_ns = 0
        self._publish_due = False
        self._first_acked = False
        self._querying: set[str] = set()  # client order ids with a query in flight
        self._requery: Timer | None = None
        self._settlers: list[Callable[[], bool]] = []  # waiting for the open orders to end
        self._market_notional = _ZERO  # public trades while working, for the market VWAP
        self._market_qty = _ZERO
        # `passive`: the resting post-only quote, and the cancels sent (in flight, or
        # answered while the order's end is still to be learned: never sent twice).
        self._quote: str | None = None
        self._cancelling: set[str] = set()
        self._cancel_sent: set[str] = set()

    # -- inputs from the driver ---------------------------------------------------------------
    def fire(
        self,
        fire_at_ns: int,
        rtt_ns: int,
        delivery_ns: int | None = None,
        schedule_ns: int | None = None,
    ) -> None:
        """Have the first child order reach the venue at `fire_at_ns` (this leg's clock),
        then work the leg. `rtt_ns`: the venue's median round trip as this leg measures it;
        `delivery_ns`: how late its book reaches the leg (from the venue's stamp on a book
        update to its arrival, median; None when not measured: half the round trip).

        A leg kept in step with partners (`synchronized`) sends one estimated one-way trip
        early (half the round trip), so that legs on a colocated and on a distant venue
        arrive together: launch skew is then bounded by clock and latency error, not by the
        latency itself (DESIGN §5.4). Every NORMAL slice's limit goes `latency_buffer_bps`
        through the touch: the price's move over the book's age when the order lands (the
        book's delivery, the venue's stream lag and the trip back, then the order's trip
        there: `book_age_ns`).
        """
        if self.sched is not None or self.status is not LegStatus.ARMED:
            raise RuntimeError(f"leg {self.leg.leg_id}: fire() needs an armed leg not yet fired")
        start = fire_at_ns - (rtt_ns // 2 if self.cmd.synchronized else 0)
        # `schedule_ns`: the schedule began earlier (this leg's clock), with its partners; a
        # leg that starts late (its collateral was still being moved) is behind it at once
        # and catches up, rather than running its whole horizon from now.
        begun = start if schedule_ns is None else min(schedule_ns, start)
        self.sched = self._scheduler(begun, rtt_ns, delivery_ns)
        self._timer = self.port.call_at(start, self._go, precise=True)

    def resume(self, started_ns: int, rtt_ns: int, delivery_ns: int | None = None) -> None:
        """Carry on the schedule of a leg recovered with `recover(..., resume=True)` (its
        basket's actor was lost and the basket goes on, policy `complete`): the schedule
        that began at `started_ns` (this leg's clock), its fills so far the venue's, its
        next client order ids past every id the lost actors used or wrote ahead."""
        if self.sched is not None or self.status is not LegStatus.ARMED:
            raise RuntimeError(f"leg {self.leg.leg_id}: resume() needs a recovered armed leg")
        self.mode = Mode.NORMAL
        self.sched = self._scheduler(started_ns, rtt_ns, delivery_ns)
        self._timer = self.port.call_at(self.port.now_ns(), self._go)

    def _scheduler(self, start_ns: int, rtt_ns: int, delivery_ns: int | None) -> SliceScheduler:
        cmd, leg = self.cmd, self.leg
        return SliceScheduler(
            self.prefix,
            leg.leg_id,
            leg.instrument,
            leg.side,
            leg.quantity,
            start_ns=start_ns,
            horizon_ns=cmd.horizon_ns,
            slice_ns=cmd.slice_ns,
            max_slippage_bps=leg.max_slippage_bps,
            participation_cap=cmd.participation_cap,
            max_child_fraction=cmd.max_child_fraction,
            arrival_price=self.arrival,
            next_n=self._next_n,
            latency_buffer_bps=latency_buffer_bps(cmd.vol_annual, book_age_ns(rtt_ns, delivery_ns)),
            synchronized=cmd.synchronized,
            style=leg.child_style,
            pov_rate=leg.pov_rate,
            # Half the basket's band (what it passes as `max_child_fraction`), or the default.
            catch_up_lag=cmd.max_child_fraction or DEFAULT_CATCH_UP_LAG,
        )

    def on_market(self, ticker: BookTicker | None, qty: Decimal, notional: Decimal) -> None:
        """Market data: the newest top of book, and public trades (their quantity and
        notional summed) since the last call."""
        if ticker is not None:
            self.book = ticker
        self._volume += qty
        if self.status in (LegStatus.WORKING, LegStatus.PAUSED):
            self._market_qty += qty
            self._market_notional += notional
            # Most of the time the next decision waits on the clock or on a command: only a
            # hold the market can end is woken (a leg follows 10-120 events a second).
            sched = self.sched
            if sched is not None and sched.hold is not None and sched.hold not in _TIMED_HOLDS:
                self._step()

    def on_report(self, report: ExecutionReport) -> None:
        """A report from the venue's execution stream (other orders' pass by)."""
        now = self.port.now_ns()
        if report.client_order_id in self.ledger.orders:
            self.journal.reported(report, ReportSource.STREAM, now)
        if self.ledger.on_report(report, now):
            self._changed()

    def on_stream_gap(self) -> None:
        """The execution stream lost reports (it overflowed or reconnected): ask the venue
        about every order that may still change."""
        self._query_open()

    def adjust(self, adj: AdjustLeg) -> None:
        """Obey the synchronizer: a new mode, and perhaps a smaller target. Calls may arrive
        out of order: an adjustment older than the last one applied is dropped."""
        if self.mode is Mode.STOP or adj.ts_ns < self._adjusted_ns:
            return
        self._adjusted_ns = adj.ts_ns
        sched = self.sched
        if adj.target_qty is not None and sched is not None and adj.target_qty < sched.target_qty:
            # Targets only ever shrink; a cut older than one applied cannot get here.
            self.ledger.target_qty = sched.shrink(adj.target_qty, self.ledger.filled_qty)
        self.mode = adj.mode
        if sched is not None:
            sched.reach_qty = adj.reach_qty
        self._step()

    def crash(self, error: BaseException) -> None:
        """A bug in a driver's callback: the leg stops rather than leave its basket waiting."""
        self._fail(f"leg actor error: {error!r}")

    # -- commands with an answer ------------------------------------------------------------
    def stop(self, reason: str, then: Callable[[LegProgress], None]) -> None:
        """Send nothing more; once nothing is in flight (or `SETTLE_TIMEOUT_NS` passed, the
        venue asked at half of it), the leg is DONE (unless FAILED) and `then` gets its
        snapshot."""
        self.mode = Mode.STOP
        if self.status not in _ENDED:
            self.reason = self.reason or reason
        self._step()
        self._pull_quote("stopped")

        def settled() -> None:
            if self.status not in (LegStatus.FAILED, LegStatus.RECONCILED):
                self._to(LegStatus.DONE)
            if self._timer is not None:
                self._timer.cancel()
            self._publish()
            then(self.progress())

        self._settle(SETTLE_TIMEOUT_NS, settled)

    def unwind(self, deadline_ns: int, then: Callable[[Unwound], None]) -> None:
        """Trade the leg's net fill back to zero (policy `unwind`) by `deadline_ns`; `then`
        gets what is left. Outages and refusals are waited out with capped exponential
        backoff; nothing is sent while an order's outcome is unknown (it may yet fill, and
        more would overshoot flat): it is queried instead."""
        state = _UnwindState(deadline_ns, then)
        self.stop("unwinding", lambda _p: self._unwind_next(state))

    def reconcile(self, deadline_ns: int, then: Callable[[Reconciliation], None]) -> None:
        """Confirm every child order with the venue (DESIGN §5.7); the venue's figures win.
        Transient venue errors are retried until `deadline_ns`."""
        timeout = max(0, min(SETTLE_TIMEOUT_NS, deadline_ns - self.port.now_ns()))
        self._pull_quote("reconciling")
        self._settle(timeout, lambda: self._reconcile_round(deadline_ns, 0, 0, then))

    def recover(
        self,
        deadline_ns: int,
        then: Callable[[Exception | None], None],
        written: Mapping[int, int] | None = None,
        *,
        resume: bool = False,
    ) -> None:
        """Rebuild the leg's record from its venue (its actor was lost, DESIGN §9): ask for
        `<basket>-<leg>-<n>` for n = 0, 1, … until `RECOVER_GAP` ids in a row are unknown
        there, and adopt every order found, with the venue's figures. The leg is FAILED and
        sends nothing of its own; it can unwind and reconcile like any other. Transient venue
        errors are retried until `deadline_ns`; past it `then` gets the error (what was
        found so far is kept).

        `written`: the orders the journal shows written ahead and not yet settled (slice
        number → when it was sent). One the venue does not know is asked about again once
        its order window has passed, and then journaled as never having reached the venue;
        the search goes on at least to the last of them.

        `resume`: the leg is to carry on its schedule afterwards (`resume`): it stays
        ARMED, sending nothing until then."""
        if self.sched is not None or self.ledger.orders:
            raise RuntimeError(f"leg {self.leg.leg_id}: recover() is for a fresh runner")
        self.mode = Mode.STOP
        if not resume:
            self._to(LegStatus.FAILED)
            self.reason = "recovered from the venue's records after its actor was lost"
        # Its snapshots must outrank every one the lost actor sent (receivers keep the
        # highest sequence number).
        self.ledger.seq = RECOVERED_SEQ
        self._written = dict(written or {})
        self._recover_from(0, 0, 0, deadline_ns, then)

    def _recover_from(
        self,
        n: int,
        gap: int,
        wait_ns: int,
        deadline_ns: int,
        then: Callable[[Exception | None], None],
    ) -> None:
        if (gap >= RECOVER_GAP and not any(m >= n for m in self._written)) or n > MAX_CHILD_SEQ:
            self._next_n = n
            self._publish()
            then(None)
            return
        coid = client_order_id(self.prefix, self.leg.leg_id, n)
        asked_ns = self.port.now_ns()

        def answered(answer: VenueAnswer) -> None:
            match answer:
                case ExecutionReport():
                    self._written.pop(n, None)
                    self._adopt(n, answer)
                    self._recover_from(n + 1, 0, 0, deadline_ns, then)
                case UnknownOrder() if n in self._written:
                    due = self._written[n] + self.cmd.order_window_ns
                    if asked_ns >= due:
                        # Written ahead, never placed: the lost actor died before it left,
                        # or the venue turned it away unheard. It never will be placed.
                        del self._written[n]
                        self.journal.refused(coid, _NEVER_REACHED, self.port.now_ns())
                        self._recover_from(n + 1, gap + 1, 0, deadline_ns, then)
                    elif asked_ns >= deadline_ns:  # left as the journal has it
                        del self._written[n]
                        self._recover_from(n + 1, gap + 1, 0, deadline_ns, then)
                    else:  # the venue may still apply it: ask again once it cannot
                        self.port.call_at(
                            min(due, deadline_ns),
                            lambda: self._recover_from(n, gap, 0, deadline_ns, then),
                        )
                case UnknownOrder():
                    self._recover_from(n + 1, gap + 1, 0, deadline_ns, then)
                case _ if self.port.now_ns() >= deadline_ns:
                    self._next_n = n + RECOVER_GAP  # never reuse an id that may exist
                    then(answer)
                case _:
                    nxt = backoff_ns(wait_ns)
                    self.port.call_at(
                        min(self.port.now_ns() + nxt, deadline_ns),
                        lambda: self._recover_from(n, gap, nxt, deadline_ns, then),
                    )

        self.port.venue.query(self.leg.symbol, coid, answered)

    def _adopt(self, n: int, report: ExecutionReport) -> None:
        """Take an order the venue knows into the record: as sent (a slice when on the leg's
        side, else an unwind), with the venue's figures."""
        order = NewOrder(
            client_order_id=report.client_order_id,
            symbol=report.symbol,
            side=report.side,
            type=report.order_type,
            quantity=report.quantity,
            price=report.price,
            time_in_force=report.time_in_force,
        )
        purpose = "slice" if report.side is self.leg.side else "unwind"
        sent_ns = report.venue_receive_ns or report.venue_ts_ns
        self.ledger.sent(order, n, sent_ns, purpose)
        self.journal.sent(order, n, purpose, None, sent_ns, None)  # a repeat counts once
        self.journal.reported(report, ReportSource.RECOVERY, self.port.now_ns())
        self.ledger.acked(report, self.port.now_ns())
        if purpose == "slice" and self.arrival is None:
            self.arrival = report.avg_price
        if not report.status.is_terminal:
            # Still open at the venue: a passive leg's quote, left resting by the lost actor.
            # It is this leg's quote from now on (pulled on a stop, a failure or before
            # reconciling; replaced as the book moves once the leg carries on); any other
            # open order is cancelled. Left alone, it would rest past the basket's end and
            # hold up its unwind and its reconciliation.
            if self._quote is None and report.time_in_force is TimeInForce.POST_ONLY:
                self._quote = report.client_order_id
            else:
                self._pull(report.client_order_id)

    # -- the run loop ------------------------------------------------------------------------
    def _go(self) -> None:
        if self.status is LegStatus.ARMED and self.mode is not Mode.STOP:
            self._to(LegStatus.WORKING)
        self._step()

    def _step(self) -> None:
        """Ask the scheduler what to send now; send it, or sleep until something can
        change its answer."""
        sched = self.sched
        if sched is None or self.status not in (LegStatus.WORKING, LegStatus.PAUSED):
            return
        if self._busy or self._cancelling:
            # A slice, or a quote's cancel, is on its way: its answer steps the leg again.
            # Only a follow of the partners' fills goes before (`SliceScheduler.follow_now`).
            self._follow()
            return
        now = self.port.now_ns()
        volume, self._volume = self._volume, _ZERO
        ledger = self.ledger
        filled, open_qty = ledger.filled_qty, ledger.open_qty
        quote = self._resting()
        child = sched.next_slice(
            now,
            filled,
            self.book,
            volume,
            self.mode,
            open_qty,
            ledger.missed_qty,
            quote,
            quote is None and ledger.quote_refused,
        )
        if isinstance(child, CancelChildOrder):
            if child.client_order_id in self._cancel_sent:
                # Cancelled once and still open in the record: its end (a fill that won the
                # race) is on its way or being asked for. Never cancelled twice.
                self._query_later(child.client_order_id)
                self._wake_at(now + SETTLE_POLL_NS)
                return
            self._pull(child.client_order_id)
            return
        if child is not None:
            self._send(child)
            return
        # Blocked while the scheduler cannot trade, or the venue turned the last order away
        # (until it answers again: the synchronizer must not take a dead venue for a slow one).
        self.blocked = sched.blocked or self._venue_down
        if sched.hold is Hold.SLIPPAGE_CAP:
            self.reason = "the touch is beyond the slippage cap from arrival"
        elif sched.hold is Hold.NO_BOOK:
            self.reason = "no two-sided book"
        if sched.hold in (Hold.DONE, Hold.STOPPED) and open_qty <= 0:
            self._to(LegStatus.DONE)
            self._publish()
            return
        if self.mode is Mode.PAUSE and self.status is LegStatus.WORKING:
            self._to(LegStatus.PAUSED)
        elif self.mode is not Mode.PAUSE and self.status is LegStatus.PAUSED:
            self._to(LegStatus.WORKING)
        # The ledger has not changed since `next_slice`: its sums are still these.
        self._publish(only_if_changed=True, totals=(filled, open_qty))
        self._sleep(sched, now)

    def _follow(self) -> None:
        """Told to follow its partners' fills, cross to them now, whatever of the leg's own
        is still on its way (`SliceScheduler.follow_now`)."""
        sched = self.sched
        if sched is None or self.mode is not Mode.CATCH_UP or sched.reach_qty is None:
            return
        ledger = self.ledger
        child = sched.follow_now(
            self.port.now_ns(), ledger.filled_qty, ledger.open_qty, self.book, self._resting()
        )
        if child is not None:
            self._send(child)

    def _sleep(self, sched: SliceScheduler, now: int) -> None:
        every = self.cmd.progress_every_ns
        if sched.wake_ns is not None:
            due = sched.wake_ns
        elif sched.style is not ChildStyle.TWAP and sched.hold not in _WAITING_HOLDS:
            # `passive`, `pov`: the schedule is looked at again at the next grid point (the
            # market wakes a resting quote before then).
            done = (now - sched.start_ns) // sched.slice_ns + 1
            due = max(sched.start_ns + done * sched.slice_ns, sched.next_due_ns)
        elif sched.hold in _WAITING_HOLDS:
            due = now + every  # woken by the command or report that ends it
        elif sched.hold is Hold.AHEAD:
            # The schedule moves on at the next grid point (or a fill or shrink wakes it).
            done = (now - sched.start_ns) // sched.slice_ns + 1
            due = max(sched.next_due_ns, sched.start_ns + done * sched.slice_ns)
        else:
            due = max(sched.next_due_ns, now + MS)
        self._wake_at(max(min(due, now + every), now + MS))

    def _wake_at(self, t_ns: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.port.call_at(t_ns, self._step)

    def _to(self, status: LegStatus) -> None:
        self.status = leg_transition(self.leg.leg_id, self.status, status)

    def _fail(self, reason: str) -> None:
        if self.status is not LegStatus.FAILED:
            self._to(LegStatus.FAILED)
            self.reason = reason
        self.mode = Mode.STOP
        self._pull_quote("failed")
        self._publish()
        self._check_settlers()

    # -- the resting quote (`passive`) -------------------------------------------------------
    def _resting(self) -> Quote | None:
        """The resting post-only quote as the record has it (None once it has ended)."""
        coid = self._quote
        if coid is None:
            return None
        child = self.ledger.orders[coid]
        if child.status.is_terminal and not child.unknown:
            self._quote = None
            self._cancel_sent.discard(coid)
            return None
        assert child.price is not None
        return Quote(
            client_order_id=coid,
            price=child.price,
            open_qty=child.quantity - child.filled_qty,
            placed_ns=child.sent_ns,
            working=not child.unknown and child.ack_ns is not None,
        )

    def _pull_quote(self, reason: str) -> None:
        """Cancel the resting quote, if any (a stop, a failure, before reconciling)."""
        quote = self._resting()
        if quote is not None and quote.client_order_id not in self._cancel_sent:
            self._pull(quote.client_order_id)

    def _pull(self, coid: str) -> None:
        """Ask the venue to cancel `coid`; the answer is booked as any report, and an order
        that had already ended is asked about (its last report is on its way)."""
        self._cancelling.add(coid)
        self._cancel_sent.add(coid)
        self.port.venue.cancel(self.leg.symbol, coid, lambda a: self._cancelled(coid, a))

    def _cancelled(self, coid: str, answer: VenueAnswer) -> None:
        self._cancelling.discard(coid)
        now = self.port.now_ns()
        match answer:
            case ExecutionReport():
                self._venue_back()
                self.journal.reported(answer, ReportSource.QUERY, now)
                self.ledger.on_report(answer, now)
            case UnknownOrder():
                self._query_later(coid)  # it ended before the cancel: learn how
            case _:
                # The venue did not answer (down, rate limit): the quote may still rest.
                # Ask about it, and cancel again after a pause.
                self._query_later(coid)

                def again() -> None:
                    self._cancel_sent.discard(coid)
                    if self.status in (LegStatus.WORKING, LegStatus.PAUSED):
                        self._step()
                    else:
                        self._pull_quote("again")

                self.port.call_at(now + BACKOFF_FIRST_NS, again)
        self._changed()

    # -- orders ------------------------------------------------------------------------------
    def _send(self, child: SendChildOrder) -> None:
        if self.arrival is None:
            self.arrival = child.arrival_price
        if child.order.time_in_force is TimeInForce.POST_ONLY:
            self._quote = child.order.client_order_id
        self._next_n = max(self._next_n, child.n + 1)
        self._busy += 1
        self._place(child.order, child.n, "slice", self._answered_slice)

    def _place(
        self,
        order: NewOrder,
        n: int,
        purpose: str,
        then: Callable[[NewOrder, bool, VenueAnswer], None],
    ) -> None:
        """Record `order` as sent, send it, then tell the basket. The journal has it first: at
        once for the leg's first order (the launch: no database trip before it), committed
        before it leaves for every other; one the journal cannot take is not sent."""
        ledger = self.ledger
        first = purpose == "slice" and ledger.first is None
        now = self.port.now_ns()
        mid = self.mark()
        ledger.sent(order, n, now, purpose, mid=mid)
        if len(ledger.orders) == 1:
            self.journal.sent(order, n, purpose, mid, now, None)
            self.port.venue.place(order, lambda answer: then(order, first, answer))
            # After the request: the launch order leaves before the snapshot about it.
            self._publish_soon()
            return

        def recorded(error: Exception | None) -> None:
            if error is None:
                self.port.venue.place(order, lambda answer: then(order, first, answer))
            else:
                then(order, first, VenueUnavailable(f"the journal cannot record it: {error}"))

        self.journal.sent(order, n, purpose, mid, now, recorded)
        self._publish_soon()

    def _answered_slice(self, order: NewOrder, first: bool, answer: VenueAnswer) -> None:
        self._busy -= 1
        self._take_answer(order, first, answer)
        self._step()

    def _take_answer(self, order: NewOrder, first: bool, answer: VenueAnswer) -> None:
        """Book the venue's answer to a placement, and what it means for the leg."""
        ledger = self.ledger
        now = self.port.now_ns()
        coid = order.client_order_id
        match answer:
            case ExecutionReport():
                self._rejects_in_row = 0
                self._venue_back()
                self.journal.acked(answer, now)
                ledger.acked(answer, now)
                if answer.ack_kind is AckKind.UNKNOWN:  # the answer was lost: ask, never resend
                    self._query_later(coid)
                if answer.status is OrderStatus.REJECTED and first:
                    self._fail(f"first order {coid} rejected: {answer.reject_message}")
                    return
                self._changed()
            case OrderRejected() if answer.reason is RejectReason.POST_ONLY_WOULD_CROSS:
                # The touch moved onto the quote's price while it travelled: it is priced
                # again on a newer book, no refusal of the leg's orders.
                reason = f"{answer.reason.value}: {answer.message}"
                self.journal.refused(coid, reason, now)
                ledger.refused(coid, reason, now)
                self._changed()
            case OrderRejected():
                reason = f"{answer.reason.value}: {answer.message}"
                self.journal.refused(coid, reason, now)
                ledger.refused(coid, reason, now)
                self._rejects_in_row += 1
                if first:
                    self._fail(f"first order {coid} rejected: {answer.message}")
                elif self._rejects_in_row >= MAX_CONSECUTIVE_REJECTS:
                    self._fail(
                        f"{self._rejects_in_row} orders in a row rejected; last: {answer.message}"
                    )
            case OutcomeUnknown():
                self.journal.unknown(coid, answer.message, now)
                ledger.unknown(coid)  # settled by query; never resent
                self._query_later(coid)
            case AuthError() if answer.code != STALE_TIMESTAMP:
                self.journal.refused(coid, f"AUTH: {answer.message}", now)
                ledger.refused(coid, f"AUTH: {answer.message}", now)
                self._fail(f"the venue refused the leg's credentials: {answer.message}")
            case VenueError():
                # Nothing reached the book: the venue is down, rate-limits, or the request
                # reached a busy venue past its receive window (a stale timestamp).
                reason = f"VENUE_UNAVAILABLE: {answer.message}"
                self.journal.refused(coid, reason, now, turned_away=True)
                ledger.refused(coid, reason, now, turned_away=True)
                self._venue_down = True
                self.blocked = True
                self.reason = answer.message
                if first:
                    self._fail(f"first order {coid} not accepted: {answer.message}")
                else:
                    self._publish()

    def _venue_back(self) -> None:
        """The venue answered: it is up again, and the reason it gave while down is moot."""
        if self._venue_down:
            self._venue_down = False
            if self.status is not LegStatus.FAILED:
                self.reason = ""

    def _changed(self) -> None:
        # Refusals that arrive on the stream (a RECEIPT venue answers before its checks, so
        # later orders may already be out) count as those answered at once do.
        working = self.status in (LegStatus.WORKING, LegStatus.PAUSED, LegStatus.ARMED)
        if working and (reason := self.ledger.give_up_reason()) is not None:
            self._fail(reason)
            return
        self._publish_soon()
        self._check_settlers()
        self._step()

    # -- orders whose outcome is unknown -----------------------------------------------------
    def _query_later(self, coid: str) -> None:
        """Ask about an unknown order a round of `REQUERY_NS` from now (one timer for all)."""
        if self._requery is None:
            self._requery = self.port.call_at(self.port.now_ns() + REQUERY_NS, self._requery_due)

    def _requery_due(self) -> None:
        self._requery = None
        self._query_open()

    def _query_open(self) -> None:
        """Ask the venue about every order that may still change."""
        asked = self.port.now_ns()
        for coid, child in list(self.ledger.orders.items()):
            if (child.status.is_terminal and not child.unknown) or coid in self._querying:
                continue
            self._querying.add(coid)
            self.port.venue.query(
                self.leg.symbol, coid, lambda answer, c=coid: self._queried(c, asked, answer)
            )

    def _queried(self, coid: str, asked_ns: int, answer: VenueAnswer) -> None:
        self._querying.discard(coid)
        ledger = self.ledger
        child = ledger.orders[coid]
        now = self.port.now_ns()
        match answer:
            case ExecutionReport():
                self._venue_back()
                self.journal.reported(answer, ReportSource.QUERY, now)
                ledger.on_report(answer, now)
            case UnknownOrder() if self._window_passed(child, asked_ns):
                self.journal.refused(coid, _NEVER_REACHED, now)
                ledger.refused(coid, _NEVER_REACHED, now)
            case _:
                # Not known yet (the venue may still apply it), or the venue did not answer:
                # the order stays as it is, and is asked about again.
                if child.unknown or not child.status.is_terminal:
                    self._query_later(coid)
        self._changed()

    def _window_passed(self, child: ChildOrder, asked_ns: int) -> bool:
        """Had the venue's order window passed since `child` was sent when it was asked
        about at `asked_ns`? Only then does "no such order" mean it never will be."""
        return asked_ns - child.sent_ns >= self.cmd.order_window_ns

    # -- settling, unwinding, reconciling ----------------------------------------------------
    def _settle(self, timeout_ns: int, then: Callable[[], None]) -> None:
        """Call `then` once no order is open, or after `timeout_ns` (asking the venue about
        what is still open at half of it)."""
        start = self.port.now_ns()
        deadline = start + timeout_ns
        asked = False
        finished = False

        def check() -> bool:
            nonlocal asked, finished
            if finished:
                return True
            now = self.port.now_ns()
            if self.ledger.open_qty <= 0 or now >= deadline:
                finished = True
                then()
                return True
            if not asked and now - start >= timeout_ns // 2:
                asked = True
                self._query_open()
            return False

        def poll() -> None:
            if not check():
                self.port.call_at(min(deadline, self.port.now_ns() + SETTLE_POLL_NS), poll)

        self._settlers.append(check)
        poll()

    def _check_settlers(self) -> None:
        if self._settlers:
            self._settlers = [c for c in list(self._settlers) if not c()]

    def _unwind_next(self, state: _UnwindState) -> None:
        now = self.port.now_ns()
        ledger = self.ledger
        unknown = [c.client_order_id for c in ledger.orders.values() if c.unknown]
        if now >= state.deadline_ns:
            self._unwind_done(state, unknown)
            return
        if ledger.open_qty > 0:
            # An order of unknown outcome may yet fill: ask, and look again.
            self._query_open()
            state.wait_ns = backoff_ns(state.wait_ns)
            self._unwind_later(state)
            return
        inst = self.leg.instrument
        remaining = inst.snap_qty(self._held())
        mid = self.mark()
        if remaining <= 0:
            self._unwind_done(state, [])
            return
        if mid is None:
            state.last_error = "no book to price the unwind on"
            state.wait_ns = backoff_ns(state.wait_ns)
            self._unwind_later(state)
            return
        back = Side.SELL if self.leg.side is Side.BUY else Side.BUY
        away = UNWIND_SLIPPAGE_BPS / Decimal(10_000)
        raw = mid * (1 + away) if back is Side.BUY else mid * (1 - away)
        n = self._next_n
        self._next_n += 1
        order = NewOrder(
            client_order_id=client_order_id(self.prefix, self.leg.leg_id, n),
            symbol=self.leg.symbol,
            side=back,
            type=OrderType.LIMIT,
            quantity=remaining,
            price=inst.snap_price_passive(raw, back),
            time_in_force=TimeInForce.IOC,
        )
        state.orders += 1
        self._place(order, n, "unwind", lambda o, f, a: self._unwind_answered(state, o, a))

    def _unwind_answered(self, state: _UnwindState, order: NewOrder, answer: VenueAnswer) -> None:
        self._take_answer(order, False, answer)
        if isinstance(answer, ExecutionReport):
            state.wait_ns = 0
            left = max(0, state.deadline_ns - self.port.now_ns())
            self._settle(min(SETTLE_TIMEOUT_NS, left), lambda: self._unwind_next(state))
            return
        if isinstance(answer, OutcomeUnknown):
            self._unwind_next(state)  # it waits on the query, with backoff
            return
        state.refusals += 1
        state.last_error = answer.message
        state.wait_ns = backoff_ns(state.wait_ns)
        if isinstance(answer, RateLimited) and answer.retry_after_s:
            state.wait_ns = max(state.wait_ns, int(answer.retry_after_s * 1e9))
        self._unwind_later(state)

    def _unwind_later(self, state: _UnwindState) -> None:
        at = min(self.port.now_ns() + state.wait_ns, state.deadline_ns)
        self.port.call_at(at, lambda: self._unwind_next(state))

    def _held(self) -> Decimal:
        """What the leg's fills left it holding along its side: the filled quantity, less
        fees the venue took in the leg's own asset (a spot buy charged in what it bought).
        An unwind gives back this, not more: the rest was never the basket's."""
        return self.ledger.filled_qty - self.ledger.fee_qty(self.leg.instrument.base)

    def _unwind_done(self, state: _UnwindState, unknown: list[str]) -> None:
        ledger = self.ledger
        held = self._held()
        self.unwound_qty = ledger.slice_filled_qty - ledger.filled_qty
        self._publish()
        state.then(
            Unwound(
                leg_id=self.leg.leg_id,
                left_qty=self.leg.instrument.snap_qty(held) if held > 0 else held,
                unknown=unknown,
                orders=state.orders,
                refusals=state.refusals,
                last_error=state.last_error,
            )
        )

    def _reconcile_round(
        self,
        deadline_ns: int,
        rounds: int,
        wait_ns: int,
        then: Callable[[Reconciliation], None],
    ) -> None:
        """Query every child order once; then decide: agreed, look again, or give up."""
        coids = list(self.ledger.orders)
        answers: dict[str, ExecutionReport | None] = {}
        errors: list[str] = []
        pending = [len(coids)]

        asked = self.port.now_ns()

        def got(coid: str, answer: VenueAnswer) -> None:
            child = self.ledger.orders[coid]
            match answer:
                case ExecutionReport():
                    answers[coid] = answer
                case UnknownOrder() if not child.unknown or self._window_passed(child, asked):
                    answers[coid] = None
                case UnknownOrder():
                    errors.append(f"{coid} not known to the venue yet")
                case VenueError():
                    errors.append(answer.message)
            pending[0] -= 1
            if pending[0] == 0:
                decide()

        def decide() -> None:
            now = self.port.now_ns()
            if errors:
                if now < deadline_ns:
                    nxt = backoff_ns(wait_ns)
                    at = min(now + nxt, deadline_ns)
                    self.port.call_at(
                        at, lambda: self._reconcile_round(deadline_ns, rounds, nxt, then)
                    )
                    return
                result = Reconciliation(
                    leg_id=self.leg.leg_id,
                    reconciled=False,
                    orders_checked=len(answers),
                    venue_filled_qty=self.ledger.filled_qty,
                    ledger_filled_qty=self.ledger.filled_qty,
                    ts_ns=now,
                    error=f"the venue could not be asked before the deadline: {errors[-1]}",
                )
                self._reconciled(result, then)
                return
            final = rounds + 1 >= RECONCILE_ROUNDS or now + RECONCILE_GAP_NS >= deadline_ns
            result = self.ledger.reconcile(answers, now, adopt=final)
            if result.reconciled or final:
                # The trades the journal lacks first (a report carries only the last one):
                # then every fill the venue made is in the journal, per trade.
                self._book_missing_trades(answers, lambda: self._reconciled(result, then))
                return
            self.port.call_at(
                now + RECONCILE_GAP_NS,
                lambda: self._reconcile_round(deadline_ns, rounds + 1, 0, then),
            )

        if not coids:
            decide()
            return
        for coid in coids:
            self.port.venue.query(self.leg.symbol, coid, lambda a, c=coid: got(c, a))

    def _book_missing_trades(
        self, answers: dict[str, ExecutionReport | None], then: Callable[[], None]
    ) -> None:
        """Ask the venue for the trades of every order whose journaled trades fall short of
        its fill, and journal those missing (once per trade id); then `then`. A venue that
        does not answer leaves them to its own records (the order's fill is journaled)."""
        short = [
            r
            for r in answers.values()
            if r is not None and self.journal.booked_qty(r.client_order_id) < r.cum_filled
        ]
        if not self.journal.on or not short:
            then()
            return
        left = [len(short)]

        def got(report: ExecutionReport, answer: list[Fill] | VenueError) -> None:
            if isinstance(answer, list):
                self.journal.trades(report, answer, self.port.now_ns())
            left[0] -= 1
            if left[0] == 0:
                then()

        for r in short:
            self.port.venue.trades(r.symbol, r.order_id, lambda a, r=r: got(r, a))

    def _reconciled(self, result: Reconciliation, then: Callable[[Reconciliation], None]) -> None:
        self.journal.reconciled(result)
        self.reconciliation = result
        if result.reconciled and self.status is LegStatus.DONE:
            self._to(LegStatus.RECONCILED)
        self._publish()
        then(result)

    # -- telling the basket -----------------------------------------------------------------
    def mark(self) -> Decimal | None:
        book = self.book
        return None if book is None else (book.bid + book.ask) / 2

    def _publish_soon(self) -> None:
        """One snapshot once the reports taken together are all in (an order's NEW and
        FILLED often come in one read): one message rather than one per report."""
        if not self._publish_due:
            self._publish_due = True
            self.port.call_at(self.port.now_ns(), self._publish_now)

    def _publish_now(self) -> None:
        self._publish_due = False
        # The step that ran meanwhile may have told the basket already.
        self._publish(only_if_changed=True)

    def publish(self) -> None:
        """Send the basket a snapshot now (the driver's first, when the leg is armed)."""
        self._publish()

    def _publish(
        self, *, only_if_changed: bool = False, totals: tuple[Decimal, Decimal] | None = None
    ) -> None:
        """Send the basket a snapshot (`only_if_changed`: unless it would say what the last
        one did, less than a heartbeat ago). `totals`: the ledger's filled and open
        quantities, when the caller has them."""
        ledger = self.ledger
        filled, open_qty = totals or (ledger.filled_qty, ledger.open_qty)
        if not self._first_acked:  # once acked, for good: no need to look again
            first = ledger.first
            self._first_acked = first is not None and first.ack_ns is not None
        state = (self.status, filled, open_qty, ledger.target_qty, self.blocked, self._first_acked)
        now = self.port.now_ns()
        if (
            only_if_changed
            and state == self._published
            and now - self._published_ns < self.cmd.progress_every_ns
        ):
            return
        self._published, self._published_ns = state, now
        self.port.send(self._snapshot(now))

    def _snapshot(self, now: int) -> LegProgress:
        return self.ledger.progress(
            self.status,
            now,
            self.mark(),
            blocked=self.blocked or self.status is LegStatus.FAILED,
            reason=self.reason,
            base=self.leg.instrument.base,
        )

    def progress(self) -> LegProgress:
        """The leg's snapshot now (sequence number advanced)."""
        return self._snapshot(self.port.now_ns())

    # -- the report ------------------------------------------------------------------------
    def report(self) -> LegReport:
        """The leg as it ended, times on this leg's clock; the driver adds where it ran and
        its venue clock, the basket its decision price (`msgspec.structs.replace`)."""
        leg, ledger = self.leg, self.ledger
        first = ledger.first
        rec = self.reconciliation
        inst = leg.instrument
        fees = ledger.fee_totals(inst.base, inst.quote)
        return LegReport(
            leg_id=leg.leg_id,
            venue=leg.venue,
            symbol=leg.symbol,
            side=leg.side,
            original_qty=leg.quantity,
            target_qty=ledger.target_qty,
            filled_qty=ledger.filled_qty,
            avg_price=ledger.avg_price,
            fees_usd=fees.usd,
            fees_unpriced=fees.unpriced,
            fee_qty=ledger.fee_qty(inst.base),
            base_asset=inst.base,
            quote_asset=inst.quote,
            status=self.status,
            reconciled=rec is not None and rec.reconciled,
            child_orders=list(ledger.orders.values()),
            rejects=ledger.rejects,
            mismatches=[] if rec is None else rec.mismatches,
            arrival_price=self.arrival,
            first_send_ns=None if first is None else first.sent_ns,
            first_ack_ns=None if first is None else first.ack_ns,
            first_venue_accept_ns=None if first is None else first.venue_accept_ns,
            ack_kind=self.ack_kind,
            unwound_qty=self.unwound_qty,
            reason=self.reason,
            contract_size=leg.instrument.contract_size,
            end_price=self.mark(),
            market_vwap=self._market_notional / self._market_qty if self._market_qty else None,
            market_volume=self._market_qty,
        )


class _UnwindState:
    """One unwind in progress."""

    def __init__(self, deadline_ns: int, then: Callable[[Unwound], None]) -> None:
        self.deadline_ns = deadline_ns
        self.then = then
        self.wait_ns = 0
        self.orders = 0
        self.refusals = 0
        self.last_error = ""


def with_extras(report: LegReport, **fields: object) -> LegReport:
    """`report` with the driver's own fields filled in."""
    return msgspec.structs.replace(report, **fields)
