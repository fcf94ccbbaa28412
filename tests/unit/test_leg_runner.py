"""The leg runner on a fake clock and a scripted venue: refusals, stop, unwind, unknown
outcomes, the order window, and reconciliation through venue errors."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from actors.leg import MAX_CONSECUTIVE_REJECTS, Reconciliation
from actors.messages import LegProgress, LegStatus
from actors.protocol import ArmLeg, VenueEndpoint
from actors.runners.leg import BACKOFF_MAX_NS, REQUERY_NS, LegRunner, Unwound, book_age_ns
from actors.schedule import latency_buffer_bps
from actors.spec import ResolvedLeg
from tests.unit.fake_port import FakeClock, FakePort, FakeVenue
from venues.config import SimVenueConfig
from venues.model import AckKind, BookTicker, OrderStatus, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
FIRE_AT = START + 100 * MS
LATENCY = 5 * MS  # one way
RTT = 2 * LATENCY
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]  # tick 0.01, lot 0.001, min notional 20
TARGET = D("0.4")  # four slices of 0.1 ETH, one a second
BOOK = BookTicker(
    venue="sim",
    symbol="ETHUSDT",
    bid=D("2000.00"),
    bid_qty=D(5),
    ask=D("2000.01"),
    ask_qty=D(5),
    ts_ns=START,
)
MARKET_EVERY = 100 * MS
MARKET_END = FIRE_AT + 20 * SECOND


def arm(**kw: object) -> ArmLeg:
    """Buy 0.4 ETH over 4 s in 1 s slices, kept in step (the launch slice is a full one)."""
    leg = ResolvedLeg(
        leg_id="eth",
        venue="sim",
        symbol="ETHUSDT",
        side=Side.BUY,
        quantity=TARGET,
        instrument=ETH,
        price=D(2000),
        max_slippage_bps=50.0,
    )
    return ArmLeg(
        basket_id="b1",
        leg=leg,
        endpoint=VenueEndpoint(venue="sim", config=SimVenueConfig()),
        horizon_ns=4 * SECOND,
        slice_ns=SECOND,
        participation_cap=1.0,
        max_child_fraction=None,
        synchronized=True,
        **kw,  # type: ignore[arg-type]
    )


class Leg:
    """A runner wired as the leg actor wires it, on the fake clock and venue, with a market
    that prints 1 ETH every 100 ms (the participation cap never binds). After every event
    no client order id has gone out twice and the venue never holds more than the target."""

    def __init__(self, **kw: object) -> None:
        self.clock = FakeClock(START)
        self.venue = FakeVenue(self.clock, latency_ns=LATENCY)
        self.port = FakePort(self.clock, self.venue)
        self.runner = LegRunner(arm(**kw), self.port, book=BOOK, ack_kind=AckKind.RESULT)
        self.venue.stream = self.runner.on_report
        self.clock.watchers.append(self._invariants)
        self.clock.call_at(START, self._tick)

    def _tick(self) -> None:
        self.runner.on_market(BOOK, D(1), D(2000))
        if self.clock.now_ns() + MARKET_EVERY <= MARKET_END:
            self.clock.call_at(self.clock.now_ns() + MARKET_EVERY, self._tick)

    def _invariants(self) -> None:
        ids = [s.order.client_order_id for s in self.venue.sent]
        assert len(set(ids)) == len(ids), f"a client order id was sent twice: {ids}"
        assert self.venue.position <= TARGET, f"overfilled: {self.venue.position}"

    @property
    def now(self) -> int:
        return self.clock.now_ns()

    def fire(self) -> None:
        self.runner.fire(FIRE_AT, RTT)

    def run_to_done(self) -> None:
        """Fire and work the whole leg (four fills)."""
        self.fire()
        self.clock.run_until(lambda: self.runner.status is LegStatus.DONE, FIRE_AT + 8 * SECOND)
        assert self.runner.ledger.filled_qty == TARGET == self.venue.position

    def sent_after(self, t_ns: int) -> list[int]:
        return [s.t_ns for s in self.venue.sent if s.t_ns >= t_ns]

    def stop(self) -> list[tuple[int, LegProgress]]:
        got: list[tuple[int, LegProgress]] = []
        self.runner.stop("cancelled by the basket", lambda p: got.append((self.now, p)))
        return got

    def unwind(self, deadline_ns: int) -> list[tuple[int, Unwound]]:
        got: list[tuple[int, Unwound]] = []
        self.runner.unwind(deadline_ns, lambda u: got.append((self.now, u)))
        return got

    def reconcile(self, deadline_ns: int) -> list[tuple[int, Reconciliation]]:
        got: list[tuple[int, Reconciliation]] = []
        self.runner.reconcile(deadline_ns, lambda r: got.append((self.now, r)))
        return got


def test_a_leg_works_its_slices_on_the_fake_venue() -> None:
    leg = Leg()
    leg.run_to_done()
    assert [s.order.quantity for s in leg.venue.sent] == [D("0.1")] * 4
    assert leg.port.snapshots[-1].status is LegStatus.DONE
    assert leg.port.snapshots[-1].filled_qty == TARGET


def test_a_leg_fired_late_on_the_baskets_schedule_is_behind_it_and_catches_up() -> None:
    # Fired 2 s into its basket's 4 s schedule (its collateral was being moved): half the
    # target is due at once, and the leg is done by the schedule's end, not 4 s later.
    late = Leg()
    late.runner.fire(FIRE_AT + 2 * SECOND, RTT, schedule_ns=FIRE_AT - RTT // 2)
    late.clock.run_until(lambda: late.runner.status is LegStatus.DONE, FIRE_AT + 10 * SECOND)
    first = late.venue.sent[0]
    assert first.order.quantity >= D("0.2")  # the half already due, not one slice
    assert first.t_ns >= FIRE_AT + 2 * SECOND - RTT
    assert max(s.t_ns for s in late.venue.sent) < FIRE_AT + 4 * SECOND + 500_000_000
    # Without it, the same late fire runs its whole horizon from the fire.
    alone = Leg()
    alone.runner.fire(FIRE_AT + 2 * SECOND, RTT)
    alone.clock.run_until(lambda: alone.runner.status is LegStatus.DONE, FIRE_AT + 10 * SECOND)
    assert alone.venue.sent[0].order.quantity == D("0.1")
    assert max(s.t_ns for s in alone.venue.sent) >= FIRE_AT + 4 * SECOND + 500_000_000


# -- refusals ---------------------------------------------------------------------------------


def test_a_leg_whose_first_order_is_refused_fails_at_once_and_sends_nothing_more() -> None:
    leg = Leg()
    leg.venue.reject_from = 0
    leg.fire()
    leg.clock.run_until(FIRE_AT + 6 * SECOND)
    assert len(leg.venue.sent) == 1
    assert leg.runner.status is LegStatus.FAILED
    last = leg.port.snapshots[-1]
    assert last.status is LegStatus.FAILED and last.blocked
    assert "first order b1-eth-0 rejected" in last.reason


def test_a_reject_storm_fails_the_leg_after_the_refusals_in_a_row_and_stops_sending() -> None:
    leg = Leg()
    leg.venue.reject_from = 1  # the launch order fills; every later one is refused
    leg.fire()
    leg.clock.run_until(lambda: leg.runner.status is LegStatus.FAILED, FIRE_AT + 10 * SECOND)
    failed_at = leg.now
    assert len(leg.venue.sent) == 1 + MAX_CONSECUTIVE_REJECTS
    leg.clock.run_until(failed_at + 10 * SECOND)
    assert len(leg.venue.sent) == 1 + MAX_CONSECUTIVE_REJECTS  # nothing after giving up
    assert leg.runner.status is LegStatus.FAILED
    last = leg.port.snapshots[-1]
    assert last.status is LegStatus.FAILED and last.blocked
    assert f"{MAX_CONSECUTIVE_REJECTS} orders in a row rejected" in last.reason
    assert last.filled_qty == D("0.1") == leg.venue.position


# -- stop -------------------------------------------------------------------------------------


def test_a_stop_with_a_slice_in_flight_waits_for_its_answer_and_sends_nothing_more() -> None:
    leg = Leg()
    leg.fire()
    leg.clock.run_until(lambda: len(leg.venue.sent) == 2, FIRE_AT + 3 * SECOND)
    second = leg.venue.sent[1]
    leg.clock.run_until(second.t_ns + 2 * MS)  # its answer is still on its way
    stopped = leg.stop()
    assert stopped == []
    leg.clock.run_until(lambda: bool(stopped), leg.now + SECOND)
    at, progress = stopped[0]
    assert at >= second.t_ns + RTT  # not before the answer came back
    assert leg.runner.ledger.orders[second.order.client_order_id].status is OrderStatus.FILLED
    assert progress.status is LegStatus.DONE and progress.open_qty == 0
    assert progress.filled_qty == D("0.2") == leg.venue.position
    leg.clock.run_until(MARKET_END + SECOND)
    assert len(leg.venue.sent) == 2
    assert leg.runner.status is LegStatus.DONE


def test_a_stop_before_the_leg_is_fired_ends_it_with_nothing_sent() -> None:
    leg = Leg()
    stopped = leg.stop()
    assert [p.status for _, p in stopped] == [LegStatus.DONE]
    assert leg.runner.status is LegStatus.DONE
    with pytest.raises(RuntimeError, match="armed leg"):
        leg.fire()
    leg.clock.run_until(MARKET_END + SECOND)
    assert leg.venue.sent == []
    assert leg.port.snapshots[-1].status is LegStatus.DONE


def test_a_stop_before_the_fire_instant_cancels_the_launch() -> None:
    leg = Leg()
    leg.fire()
    leg.clock.run_until(FIRE_AT - 50 * MS)
    stopped = leg.stop()
    assert [(at, p.status) for at, p in stopped] == [(FIRE_AT - 50 * MS, LegStatus.DONE)]
    leg.clock.run_until(MARKET_END + SECOND)
    assert leg.venue.sent == []
    assert leg.runner.status is LegStatus.DONE


# -- unwind -----------------------------------------------------------------------------------


@pytest.mark.parametrize("outage_s", [1, 5, 20])
def test_an_unwind_waits_out_an_outage_with_growing_gaps_and_ends_flat(outage_s: int) -> None:
    leg = Leg()
    leg.run_to_done()
    t0 = leg.now
    back = t0 + outage_s * SECOND
    leg.venue.outages = [(t0, back)]
    result = leg.unwind(t0 + 30 * SECOND)
    leg.clock.run_until(lambda: bool(result), t0 + 31 * SECOND)
    _, unwound = result[0]
    attempts = leg.sent_after(t0)
    refused = [t for t in attempts if t + LATENCY < back]
    assert unwound.flat and unwound.left_qty == 0 and leg.venue.position == 0
    assert unwound.orders == len(attempts) == len(refused) + 1
    assert unwound.refusals == len(refused) <= 20
    gaps = [b - a for a, b in pairwise(attempts)]
    assert all(b >= a for a, b in pairwise(gaps)), gaps  # growing
    assert gaps[-1] > gaps[0]
    assert max(gaps) <= BACKOFF_MAX_NS + RTT
    # The venue's return is seen within one capped wait.
    assert attempts[-1] <= back + BACKOFF_MAX_NS + RTT


def test_an_unwind_through_an_outage_past_its_deadline_says_what_is_left() -> None:
    leg = Leg()
    leg.run_to_done()
    t0 = leg.now
    deadline = t0 + 30 * SECOND
    leg.venue.outages = [(t0, t0 + 40 * SECOND)]
    result = leg.unwind(deadline)
    leg.clock.run_until(lambda: bool(result), deadline + SECOND)
    at, unwound = result[0]
    assert at <= deadline + RTT
    assert not unwound.flat
    assert unwound.left_qty == leg.venue.position == TARGET
    assert "service unavailable" in unwound.last_error
    assert unwound.refusals == unwound.orders == len(leg.sent_after(t0)) <= 20
    leg.clock.run_until(t0 + 60 * SECOND)
    assert leg.sent_after(deadline) == []


def test_an_unwind_sells_nothing_while_an_order_may_still_fill() -> None:
    leg = Leg()
    leg.venue.lost = {3}  # the last slice's answer is lost; the venue applies it 1.5 s late
    leg.venue.apply_lost_after_ns = 1_500 * MS
    last = "b1-eth-3"
    sells: list[int] = []

    def no_sell_while_unknown() -> None:
        child = leg.runner.ledger.orders.get(last)
        sold = [s for s in leg.venue.sent if s.order.side is Side.SELL]
        if child is not None and child.unknown:
            assert sold == [], "sold while an order's outcome was unknown"
        sells[:] = [s.t_ns for s in sold]

    leg.clock.watchers.append(no_sell_while_unknown)
    leg.fire()
    leg.clock.run_until(
        lambda: last in leg.runner.ledger.orders and leg.runner.ledger.orders[last].unknown,
        FIRE_AT + 5 * SECOND,
    )
    result = leg.unwind(leg.now + 30 * SECOND)
    leg.clock.run_until(lambda: bool(result), leg.now + 31 * SECOND)
    _, unwound = result[0]
    assert unwound.flat and leg.venue.position == 0
    assert len(sells) == unwound.orders == 1  # the whole 0.4 at once, once the fill was known
    assert sells[0] >= leg.venue.orders[last].venue_accept_ns


# -- unknown outcomes -------------------------------------------------------------------------


LATE = [
    pytest.param(0, 300 * MS, id="launch-300ms"),
    # The last slice, applied after the next grid point: a leg that took the unknown order
    # for nothing would send its quantity again there, and overfill.
    pytest.param(3, 1_500 * MS, id="last-1500ms"),
]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "query-only"])
@pytest.mark.parametrize(("index", "late_ns"), LATE)
def test_an_order_applied_late_is_waited_for_and_booked_never_sent_again(
    index: int, late_ns: int, stream: bool
) -> None:
    leg = Leg()
    if not stream:
        leg.venue.stream = None  # the fill is learnt by querying alone
    leg.venue.lost = {index}
    leg.venue.apply_lost_after_ns = late_ns
    coid = f"b1-eth-{index}"
    seen_unknown: list[int] = []

    def while_unknown() -> None:
        assert leg.runner.status is not LegStatus.FAILED
        assert leg.runner.ledger.filled_qty <= TARGET
        child = leg.runner.ledger.orders.get(coid)
        if child is not None and (child.unknown or child.status is OrderStatus.PENDING_NEW):
            seen_unknown.append(leg.now)
            assert len(leg.venue.sent) == index + 1, "sent more while the order was unknown"

    leg.clock.watchers.append(while_unknown)
    leg.run_to_done()
    assert seen_unknown  # the answer was lost, and the runner knew it
    child = leg.runner.ledger.orders[coid]
    assert child.status is OrderStatus.FILLED and child.filled_qty == D("0.1")
    assert child.reject is None
    assert len(leg.venue.sent) == 4
    asked = [t for t, c in leg.venue.queries if c == coid]
    assert any(t < child.sent_ns + late_ns for t in asked)  # asked before the venue had it
    result = leg.reconcile(leg.now + 5 * SECOND)
    leg.clock.run_until(lambda: bool(result), leg.now + 6 * SECOND)
    assert result[0][1].reconciled
    assert leg.runner.status is LegStatus.RECONCILED


def test_an_order_the_venue_never_applied_stays_open_until_its_window_then_is_dropped() -> None:
    window = SECOND
    leg = Leg(order_window_ns=window)
    leg.venue.lost = {1}  # the second slice's answer is lost, and the venue never had it
    leg.venue.apply_lost_after_ns = None
    lost = "b1-eth-1"
    dropped: list[int] = []

    def watch() -> None:
        child = leg.runner.ledger.orders.get(lost)
        if child is None or dropped:
            return
        if child.status is OrderStatus.REJECTED:
            dropped.append(leg.now)
        elif leg.now > child.sent_ns + RTT:
            assert child.unknown and leg.runner.ledger.open_qty >= child.quantity

    leg.clock.watchers.append(watch)
    leg.run_to_done()
    child = leg.runner.ledger.orders[lost]
    assert child.reject is not None and child.reject.startswith("UNKNOWN_ORDER")
    assert child.sent_ns + window <= dropped[0] <= child.sent_ns + window + REQUERY_NS + RTT
    # Snapshots told the basket it was open while unknown.
    told = [p for p in leg.port.snapshots if child.sent_ns + RTT < p.ts_ns < dropped[0]]
    assert told and all(p.open_qty >= child.quantity for p in told)
    # The leg went on: the lost 0.1 was made up by later slices, and no more.
    assert leg.runner.status is LegStatus.DONE
    assert leg.runner.ledger.filled_qty == TARGET == leg.venue.position
    assert lost not in leg.venue.orders


def test_an_unknown_order_is_not_dropped_on_a_query_made_inside_its_window() -> None:
    # The lost order's answer comes back at sent + RTT; it is then asked about every
    # REQUERY_NS after each answer: the third query is made at sent + 3 (REQUERY_NS + RTT).
    third = 3 * (REQUERY_NS + RTT)
    window = third + LATENCY + 3 * MS  # that query reaches the venue inside the window...
    leg = Leg(order_window_ns=window)
    leg.venue.stream = None  # ...and, with the stream gapped, only a query can tell the fill
    leg.venue.lost = {1}
    leg.venue.apply_lost_after_ns = third + 2 * MS  # applied just after the query saw nothing
    lost = "b1-eth-1"
    leg.fire()
    leg.clock.run_until(lambda: lost in leg.venue.orders, FIRE_AT + 3 * SECOND)
    sent = leg.runner.ledger.orders[lost].sent_ns
    assert leg.venue.orders[lost].venue_accept_ns < sent + window  # the venue kept its window
    leg.clock.run_until(sent + window + SECOND)
    child = leg.runner.ledger.orders[lost]
    assert child.reject is None, child.reject
    assert child.status is OrderStatus.FILLED


def test_an_outage_after_launch_keeps_the_leg_blocked_until_the_venue_answers_again() -> None:
    leg = Leg()
    back = FIRE_AT + 6 * SECOND
    leg.venue.outages = [(FIRE_AT + 1_100 * MS, back)]
    leg.fire()
    leg.clock.run_until(lambda: leg.runner.status is LegStatus.DONE, back + 5 * SECOND)
    assert leg.runner.ledger.filled_qty == TARGET == leg.venue.position
    refused = [c.ack_ns for c in leg.runner.ledger.orders.values() if c.reject is not None]
    assert len(refused) >= 3
    orders = leg.runner.ledger.orders.values()
    after = min(c.ack_ns for c in orders if c.filled_qty > 0 and c.ack_ns > min(refused))
    during = [p for p in leg.port.snapshots if min(refused) <= p.ts_ns < after]
    assert [p.seq for p in during if not p.blocked] == []


def test_an_outage_after_launch_does_not_fail_the_leg_while_an_order_is_queried() -> None:
    leg = Leg()
    leg.venue.lost = {1}  # an unknown order, queried all through the outage
    leg.venue.apply_lost_after_ns = None
    back = FIRE_AT + 9 * SECOND
    leg.venue.outages = [(FIRE_AT + 1_100 * MS, back)]
    leg.fire()
    leg.clock.run_until(back)
    assert leg.runner.status is LegStatus.WORKING, leg.runner.reason
    refused = [c for c in leg.runner.ledger.orders.values() if c.reject is not None]
    assert len(refused) > MAX_CONSECUTIVE_REJECTS  # more outage refusals than rejects allowed
    leg.clock.run_until(lambda: leg.runner.status is LegStatus.DONE, back + 5 * SECOND)
    assert leg.runner.ledger.filled_qty == TARGET == leg.venue.position


# -- reconcile --------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 3, 10])
def test_a_reconcile_retries_transient_venue_errors_and_agrees(failures: int) -> None:
    leg = Leg()
    leg.run_to_done()
    t0 = leg.now
    leg.venue.failing_queries = failures
    result = leg.reconcile(t0 + 5 * SECOND)
    leg.clock.run_until(lambda: bool(result), t0 + 6 * SECOND)
    at, rec = result[0]
    assert rec.reconciled and rec.error == ""
    assert at < t0 + 5 * SECOND
    assert len(leg.venue.queries) >= 4 + failures  # every order, and the failed ones again
    assert leg.venue.failing_queries == 0
    assert leg.runner.status is LegStatus.RECONCILED


def test_a_reconcile_against_a_venue_down_past_its_deadline_gives_up_in_time() -> None:
    leg = Leg()
    leg.run_to_done()
    t0 = leg.now
    deadline = t0 + 2 * SECOND
    leg.venue.outages = [(t0, t0 + 60 * SECOND)]
    result = leg.reconcile(deadline)
    leg.clock.run_until(lambda: bool(result), deadline + SECOND)
    at, rec = result[0]
    assert at <= deadline + RTT
    assert not rec.reconciled
    assert "could not be asked" in rec.error and "service unavailable" in rec.error
    assert leg.runner.status is LegStatus.DONE
    leg.clock.run_until(t0 + 60 * SECOND)
    assert [t for t, _ in leg.venue.queries if t > at] == []
    assert leg.clock.pending() == 0  # nothing left polling


def test_a_leg_recovered_from_its_venue_takes_in_every_order_and_unwinds_them() -> None:
    # The first actor works two slices, then is lost (nothing more is heard of it).
    first = Leg()
    first.fire()
    first.clock.run_until(lambda: first.venue.position == D("0.2"), FIRE_AT + 3 * SECOND)
    first.runner.crash(RuntimeError("the actor's process died"))  # sends nothing more
    venue, clock = first.venue, first.clock
    # A fresh runner on the same venue rebuilds the record from the venue's orders.
    port = FakePort(clock, venue)
    fresh = LegRunner(arm(), port, book=BOOK, ack_kind=AckKind.RESULT)
    venue.stream = fresh.on_report
    venue.failing_queries = 2  # the venue is busy at first: asked again, not given up
    done: list[object] = []
    fresh.recover(clock.now_ns() + 10 * SECOND, done.append)
    clock.run_until(lambda: bool(done), clock.now_ns() + 10 * SECOND)
    assert done == [None]
    assert set(fresh.ledger.orders) == set(venue.orders) == {"b1-eth-0", "b1-eth-1"}
    assert fresh.ledger.filled_qty == D("0.2") == venue.position
    assert fresh.status is LegStatus.FAILED and "recovered" in fresh.reason
    # Its snapshots outrank the lost actor's, and it sends nothing of its own.
    assert port.snapshots[-1].seq > first.runner.ledger.seq
    clock.run_until(clock.now_ns() + 2 * SECOND)
    assert [s.order.client_order_id for s in venue.sent].count("b1-eth-2") == 0
    # It unwinds like any leg, under ids the lost actor never used.
    unwound: list[Unwound] = []
    fresh.unwind(clock.now_ns() + 10 * SECOND, unwound.append)
    clock.run_until(lambda: bool(unwound), clock.now_ns() + 10 * SECOND)
    assert unwound[0].flat and venue.position == 0
    ids = [s.order.client_order_id for s in venue.sent]
    assert len(ids) == len(set(ids))


def test_a_recovery_against_a_venue_that_never_answers_gives_up_at_its_deadline() -> None:
    leg = Leg()
    leg.venue.outages = [(START, START + 60 * SECOND)]
    fresh = LegRunner(arm(), leg.port, book=BOOK, ack_kind=AckKind.RESULT)
    done: list[object] = []
    deadline = START + 5 * SECOND
    fresh.recover(deadline, done.append)
    leg.clock.run_until(lambda: bool(done), START + 10 * SECOND)
    assert len(done) == 1 and isinstance(done[0], Exception)
    assert leg.clock.now_ns() <= deadline + RTT


@pytest.mark.parametrize(("delivery_ms", "age_ms"), [(None, 10), (12, 17), (0, 5)])
def test_the_latency_buffer_covers_the_book_delivery_and_the_order_trip(
    delivery_ms: int | None, age_ms: int
) -> None:
    # A 10 ms round trip: the order takes 5 ms to the venue; the book took `delivery_ms` to
    # arrive (unmeasured: as long as the trip back).
    leg = Leg(vol_annual=0.65)
    delivery = None if delivery_ms is None else delivery_ms * MS
    assert book_age_ns(RTT, delivery) == age_ms * MS
    leg.runner.fire(FIRE_AT, RTT, delivery)
    assert leg.runner.sched is not None
    expected = latency_buffer_bps(0.65, age_ms * MS)
    took = float(leg.runner.sched._buffer) * 10_000  # the scheduler keeps it as a fraction
    assert took == pytest.approx(expected, rel=1e-9)
    assert expected > 0
