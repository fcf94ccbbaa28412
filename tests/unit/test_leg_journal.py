"""The leg runner's records: every child order is in the journal before it leaves (the
first at once, the others committed first), every answer, report and trade as the venue
gave it, and the journal folds back to the leg's own ledger."""

from __future__ import annotations

from decimal import Decimal

from actors.journal.orders import fold_orders
from actors.journal.records import (
    ChildOrderSent,
    FillBooked,
    LegReconciled,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
)
from actors.leg import Reconciliation
from actors.messages import LegStatus
from actors.runners.leg import LegRunner
from tests.unit.fake_port import FakeJournal, FakePort
from tests.unit.test_leg_runner import BOOK, FIRE_AT, SECOND, TARGET, Leg, arm
from venues.model import AckKind

D = Decimal
RUN = "b1#1"


class JournaledLeg(Leg):
    """A `Leg` whose runner has a run identity and a journal on the fake clock."""

    def __init__(self, commit_ns: int = 2_000_000, **kw: object) -> None:
        super().__init__(**kw)
        self.journal = FakeJournal(self.clock, commit_ns)
        self.port = FakePort(self.clock, self.venue)
        cmd = arm(run_id=RUN, order_prefix="b1.1abcd", **kw)
        self.runner = LegRunner(
            cmd, self.port, book=BOOK, ack_kind=AckKind.RESULT, journal=self.journal
        )
        self.venue.stream = self.runner.on_report


def test_every_order_but_the_first_leaves_only_once_its_record_is_committed() -> None:
    leg = JournaledLeg(commit_ns=3_000_000)
    leg.run_to_done()
    sent = {s.order.client_order_id: s.t_ns for s in leg.venue.sent}
    assert list(sent) == [f"b1.1abcd-eth-{n}" for n in range(4)]  # the run's prefix
    committed = {r.client_order_id: t for t, r in leg.journal.commits}
    # The launch order is not held up by the journal: it is recorded and sent at once ...
    first = "b1.1abcd-eth-0"
    assert first not in committed
    assert any(
        isinstance(r, ChildOrderSent) and r.client_order_id == first for r in leg.journal.records
    )
    # ... every later one leaves no sooner than its record's commit.
    for coid, t_sent in sent.items():
        if coid != first:
            assert committed[coid] <= t_sent, coid


def test_the_journal_folds_back_to_the_legs_own_ledger() -> None:
    leg = JournaledLeg()
    leg.run_to_done()
    got: list[Reconciliation] = []
    leg.runner.reconcile(leg.now + 10 * SECOND, got.append)
    leg.clock.run_until(lambda: bool(got), leg.now + 10 * SECOND)
    records = leg.journal.records
    orders = fold_orders(leg.journal.entries())
    ledger = leg.runner.ledger.orders
    assert [o.order.client_order_id for o in orders] == list(ledger)
    for o in orders:
        mine = ledger[o.order.client_order_id]
        assert (o.order.status, o.order.filled_qty, o.order.avg_price) == (
            mine.status,
            mine.filled_qty,
            mine.avg_price,
        )
        # One trade per order here, booked once though the ack and the stream both carry it.
        assert [f.qty for f in o.fills] == [mine.filled_qty]
    assert sum(o.order.filled_qty for o in orders) == TARGET == leg.venue.position
    assert sum(isinstance(r, OrderAcked) for r in records) == 4
    assert sum(isinstance(r, OrderReported) for r in records) >= 4  # the stream's reports
    assert sum(isinstance(r, FillBooked) for r in records) >= 4
    (rec,) = [r for r in records if isinstance(r, LegReconciled)]
    assert rec.reconciled and rec.venue_filled_qty == TARGET and rec.run_id == RUN


def test_an_order_the_journal_cannot_record_is_never_sent() -> None:
    leg = JournaledLeg()
    leg.fire()
    leg.clock.run_until(lambda: leg.venue.position == D("0.1"), FIRE_AT + 2 * SECOND)
    leg.journal.failing = True
    leg.clock.run_until(FIRE_AT + 6 * SECOND)
    # Nothing after the launch order left: each later one was refused before it was sent.
    assert [s.order.client_order_id for s in leg.venue.sent] == ["b1.1abcd-eth-0"]
    assert leg.runner.blocked and "journal" in leg.runner.reason
    assert leg.runner.ledger.filled_qty == D("0.1") == leg.venue.position
    # The journal coming back lets the leg go on, under fresh ids.
    leg.journal.failing = False
    leg.clock.run_until(lambda: leg.runner.status is LegStatus.DONE, FIRE_AT + 20 * SECOND)
    ids = [s.order.client_order_id for s in leg.venue.sent]
    assert len(ids) == len(set(ids)) and leg.venue.position == TARGET


def test_an_unknown_outcome_is_recorded_and_settled_by_the_query() -> None:
    leg = JournaledLeg()
    leg.venue.lost = {1}
    leg.venue.apply_lost_after_ns = 300_000_000
    leg.run_to_done()
    lost = "b1.1abcd-eth-1"
    assert any(
        isinstance(r, OrderOutcomeUnknown) and r.client_order_id == lost
        for r in leg.journal.records
    )
    (order,) = [o for o in fold_orders(leg.journal.entries()) if o.order.client_order_id == lost]
    assert not order.order.unknown and order.order.filled_qty == D("0.1")


def test_trades_the_reports_did_not_carry_are_asked_of_the_venue_and_journaled() -> None:
    leg = JournaledLeg()
    leg.venue.reports_without_trades = True  # cumulative figures only, as after a stream gap
    leg.run_to_done()
    assert not [r for r in leg.journal.records if isinstance(r, FillBooked)]
    got: list[Reconciliation] = []
    leg.runner.reconcile(leg.now + 10 * SECOND, got.append)
    leg.clock.run_until(lambda: bool(got), leg.now + 10 * SECOND)
    assert got[0].reconciled
    # Each order's trade asked for once, and journaled before the reconciliation answered.
    assert sorted(leg.venue.trade_queries) == sorted(r.order_id for r in leg.venue.orders.values())
    booked = {r.client_order_id: r.qty for r in leg.journal.records if isinstance(r, FillBooked)}
    assert booked == {c: r.cum_filled for c, r in leg.venue.orders.items()}
    # Asked again, nothing new: a trade is journaled once.
    leg.runner.reconcile(leg.now + 10 * SECOND, got.append)
    leg.clock.run_until(lambda: len(got) == 2, leg.now + 10 * SECOND)
    assert sum(isinstance(r, FillBooked) for r in leg.journal.records) == len(booked)


def test_a_recovery_closes_the_orders_written_ahead_that_never_reached_the_venue() -> None:
    # The first actor works two slices and dies; the journal shows two more written ahead
    # that never left it: one just before the death, one far beyond the search's usual gap.
    first = JournaledLeg()
    first.fire()
    first.clock.run_until(lambda: first.venue.position == D("0.2"), FIRE_AT + 3 * SECOND)
    first.runner.crash(RuntimeError("the actor's process died"))
    clock, venue = first.clock, first.venue
    died = clock.now_ns()
    journal = FakeJournal(clock)
    fresh = LegRunner(
        arm(run_id=RUN, order_prefix="b1.1abcd"),
        FakePort(clock, venue),
        book=BOOK,
        ack_kind=AckKind.RESULT,
        journal=journal,
    )
    venue.stream = fresh.on_report
    done: list[object] = []
    fresh.recover(died + 30 * SECOND, done.append, written={2: died, 40: died - 60 * SECOND})
    clock.run_until(lambda: bool(done), died + 30 * SECOND)
    assert done == [None]
    # The recent one is called never placed only once the venue could no longer apply it.
    window = fresh.cmd.order_window_ns
    assert clock.now_ns() >= died + window
    closed = {r.client_order_id: r for r in journal.records if isinstance(r, OrderRejected)}
    assert set(closed) == {"b1.1abcd-eth-2", "b1.1abcd-eth-40"}
    assert all("never reached the venue" in r.reason for r in closed.values())
    # What the venue knows is adopted; later orders take ids past every one written ahead.
    assert set(fresh.ledger.orders) == set(venue.orders) == {"b1.1abcd-eth-0", "b1.1abcd-eth-1"}
    assert fresh._next_n > 40


def test_a_recovery_adopts_an_order_written_ahead_that_the_venue_applies_late() -> None:
    first = JournaledLeg()
    first.venue.lost = {2}  # the third placement's answer is lost; the venue applies it late
    first.venue.apply_lost_after_ns = 2 * SECOND
    first.fire()
    first.clock.run_until(
        lambda: any(isinstance(r, OrderOutcomeUnknown) for r in first.journal.records),
        FIRE_AT + 10 * SECOND,
    )
    first.runner.crash(RuntimeError("the actor's process died"))
    clock, venue = first.clock, first.venue
    sent = {r.n: r.ts_ns for r in first.journal.records if isinstance(r, ChildOrderSent)}
    journal = FakeJournal(clock)
    fresh = LegRunner(
        arm(run_id=RUN, order_prefix="b1.1abcd"),
        FakePort(clock, venue),
        book=BOOK,
        ack_kind=AckKind.RESULT,
        journal=journal,
    )
    venue.stream = fresh.on_report
    done: list[object] = []
    fresh.recover(clock.now_ns() + 30 * SECOND, done.append, written={2: sent[2]})
    clock.run_until(lambda: bool(done), clock.now_ns() + 30 * SECOND)
    assert done == [None]
    assert "b1.1abcd-eth-2" in fresh.ledger.orders and "b1.1abcd-eth-2" in venue.orders
    assert not [r for r in journal.records if isinstance(r, OrderRejected)]
    assert fresh.ledger.filled_qty == venue.position
