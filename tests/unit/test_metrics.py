"""The metrics legato exports: what each figure is fed from, through a stand-in for Ray's
metrics classes (the real ones need a Ray worker), that no series is per basket, and that a
failing exporter is harmless."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import pytest

from actors import report as r
from actors.hedge import HedgeLedger
from actors.journal.records import OrderAcked, OrderOutcomeUnknown, OrderRejected, OrderReported
from actors.leg import ChildOrder
from actors.lifecycle import BasketState
from actors.margin import MarginBookSnapshot, PoolState, Reserved
from actors.messages import LegStatus
from actors.shells import metrics as m
from actors.shells.audit import SentOrders
from actors.spec import Policy
from tests.unit.test_audit import COID, RUN, fill, hedge_reported, hedge_sent, sent
from tests.unit.test_audit import report as venue_report
from venues.model import AckKind, OrderStatus, RejectReason, Side

MS = 1_000_000


class Recorder:
    """Stands in for ray.util.metrics.Gauge/Histogram: remembers what it was given."""

    made: ClassVar[dict[str, Recorder]] = {}

    def __init__(self, name: str, description: str = "", tag_keys: Any = None, **kw: Any) -> None:
        self.name, self.description, self.tag_keys, self.kw = name, description, tag_keys, kw
        self.values: list[tuple[float, dict[str, str]]] = []
        Recorder.made[name] = self

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.values.append((value, tags or {}))

    observe = set
    inc = set

    def last(self, **tags: str) -> float | None:
        """The last value set with exactly `tags`."""
        found = [v for v, t in self.values if t == tags]
        return found[-1] if found else None

    def total(self, **tags: str) -> float:
        """The sum of the increments whose tags include `tags`."""
        return sum(v for v, t in self.values if tags.items() <= t.items())


class Broken(Recorder):
    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        raise RuntimeError("metrics agent gone")

    observe = set


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    Recorder.made = {}
    monkeypatch.setattr(m, "_instruments", {})
    monkeypatch.setattr(m.metrics, "Gauge", Recorder)
    monkeypatch.setattr(m.metrics, "Histogram", Recorder)
    monkeypatch.setattr(m.metrics, "Counter", Recorder)
    return Recorder


def child(n: int, sent: int, ack: int, accept: int, kind: AckKind) -> ChildOrder:
    return ChildOrder(
        client_order_id=f"b-l-{n}",
        n=n,
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal(100),
        purpose="slice",
        sent_ns=sent,
        ack_ns=ack,
        ack_kind=kind,
        venue_accept_ns=accept,
        status=OrderStatus.FILLED,
        filled_qty=Decimal(1),
        avg_price=Decimal(100),
    )


def leg(leg_id: str, venue: str, children: list[ChildOrder]) -> r.LegReport:
    return r.LegReport(
        leg_id=leg_id,
        venue=venue,
        symbol="ETHUSDT",
        side=Side.BUY,
        original_qty=Decimal(2),
        target_qty=Decimal(2),
        filled_qty=Decimal(2),
        avg_price=Decimal(100),
        fees_usd=Decimal(0),
        status=LegStatus.RECONCILED,
        reconciled=True,
        child_orders=children,
        rejects=[],
    )


def report() -> r.BasketReport:
    return r.BasketReport(
        basket_id="b",
        status=BasketState.COMPLETED,
        policy=Policy.UNWIND,
        reason="done",
        submitted_ns=0,
        launched_ns=1,
        completed_ns=2,
        legs=[
            leg("a", "alpha", [child(0, 0, 2 * MS, 1 * MS, AckKind.RESULT)]),
            leg("b", "beta", [child(0, 0, 180 * MS, 91 * MS, AckKind.RECEIPT)]),
        ],
        hedge=r.HedgeReport(venue="alpha", instruments=["IDXUSDT"], reaction_ns=[3 * MS]),
        collateral=r.CollateralReport(),
        launch_skew_ns=4 * MS,
    )


def test_histograms_take_raw_and_normalised_latencies_from_the_report(recorder) -> None:
    m.BasketMetrics("b").finished(report())
    made = recorder.made
    ack = made["legato_ack_latency_ms"].values
    assert sorted(ack, key=lambda v: v[0]) == [
        (2.0, {"venue": "alpha", "ack_kind": "RESULT"}),
        (180.0, {"venue": "beta", "ack_kind": "RECEIPT"}),
    ]
    accept = sorted(made["legato_accept_latency_ms"].values, key=lambda v: v[0])
    assert accept == [(1.0, {"venue": "alpha"}), (91.0, {"venue": "beta"})]
    assert made["legato_hedge_reaction_ms"].values == [(3.0, {})]
    assert made["legato_launch_skew_ms"].values == [(4.0, {})]
    assert made["legato_ack_latency_ms"].kw["boundaries"] == m.LATENCY_MS


def test_a_broken_exporter_is_logged_once_and_never_raises(monkeypatch, caplog) -> None:
    monkeypatch.setattr(m, "_instruments", {})
    monkeypatch.setattr(m.metrics, "Histogram", Broken)
    monkeypatch.setattr(m.metrics, "Gauge", Broken)
    exporter = m.BasketMetrics("b")
    exporter.finished(report())
    exporter.finished(report())
    assert [rec.levelname for rec in caplog.records] == ["WARNING"]


def counted(*records) -> None:
    orders, tap = SentOrders(), m.OrderMetrics("test")
    for rec in records:
        tap.count(rec, orders.take(rec))


def test_orders_fills_and_answers_are_counted_per_venue_and_role(recorder) -> None:
    ack = OrderAcked(run_id=RUN, leg_id="long", report=venue_report(OrderStatus.NEW), ts_ns=1)
    counted(sent(), ack, fill(trade="t1"), fill(trade="t2"), hedge_sent(), hedge_reported("2"))
    made = recorder.made
    assert made["legato_orders_sent"].total(venue="alpha", role="leg") == 1
    assert made["legato_orders_sent"].total(venue="alpha", role="hedge") == 1
    assert made["legato_fills"].total(venue="alpha", role="leg") == 2  # one per trade
    assert made["legato_fills"].total(venue="alpha", role="hedge") == 1
    assert made["legato_fill_notional"].total(role="leg") == 2 * 1.5 * 3000


def test_a_refusal_is_counted_once_by_reason_and_odd_reasons_stay_few(recorder) -> None:
    rejected = OrderReported(
        run_id=RUN,
        leg_id="long",
        report=venue_report(OrderStatus.REJECTED, reject_reason=RejectReason.INSUFFICIENT_MARGIN),
        ts_ns=2,
    )
    other = "eth-pair.ab.long.1"
    counted(
        sent(),
        rejected,
        rejected,  # the stream and a query both say so: one order, one reject
        sent(other),
        OrderRejected(run_id=RUN, leg_id="long", client_order_id=other, reason="x: odd", ts_ns=3),
    )
    rejects = recorder.made["legato_order_rejects"]
    assert rejects.total(venue="alpha", reason="INSUFFICIENT_MARGIN") == 1
    assert rejects.total(venue="alpha", reason="OTHER") == 1
    assert m.reject_reason("VENUE_UNAVAILABLE: 429 too many requests") == "VENUE_UNAVAILABLE"


def test_lost_answers_and_cancellations_are_counted(recorder) -> None:
    unknown_ack = OrderAcked(
        run_id=RUN,
        leg_id="long",
        report=venue_report(OrderStatus.PENDING_NEW, ack_kind=AckKind.UNKNOWN),
        ts_ns=1,
    )
    expired = OrderReported(
        run_id=RUN, leg_id="long", report=venue_report(OrderStatus.EXPIRED, "0.5"), ts_ns=2
    )
    lost = OrderOutcomeUnknown(run_id=RUN, leg_id="long", client_order_id=COID, ts_ns=3)
    counted(sent(), unknown_ack, lost, expired, expired)
    made = recorder.made
    assert made["legato_order_unknown_outcomes"].total(venue="alpha", role="leg") == 2
    assert made["legato_order_cancels"].total(venue="alpha", status="EXPIRED") == 1


def test_client_counters_are_published_as_increases(recorder) -> None:
    class Client:
        reconnects = 2
        rate_limited = 1

    client = Client()
    counters = m.ClientCounters("beta")
    counters.publish(client)
    counters.publish(client)  # nothing new: nothing added
    client.reconnects, client.rate_limited = 5, 4
    counters.publish(client)
    counters.publish(Client())  # a new connection counts from its own start
    made = recorder.made
    assert made["legato_venue_reconnects"].total(venue="beta", stream="user") == 5 + 2
    assert made["legato_venue_rate_limited"].total(venue="beta") == 4 + 1


def test_hedge_gauges_sum_desks_per_venue_and_a_closed_desk_goes_to_zero(recorder) -> None:
    ledger = HedgeLedger({"IDXUSDT": 1.0})
    ledger.fill("IDXUSDT", Side.SELL, 2.0, 100.0, fee_usd=0.5)
    ledger.mark({"IDXUSDT": 101.0})
    exporter = m.HedgeMetrics()
    exporter.publish([("alpha", ledger)])
    made = recorder.made
    assert made["legato_hedge_position_usd"].last(venue="alpha", symbol="IDXUSDT") == -202.0
    assert made["legato_hedge_fees_usd"].last(venue="alpha") == 0.5
    assert made["legato_hedge_pnl_usd"].last(venue="alpha") == -202.0 + 200.0 - 0.5
    exporter.publish([])
    assert made["legato_hedge_position_usd"].last(venue="alpha", symbol="IDXUSDT") == 0.0


def test_collateral_gauges_per_venue_and_asset(recorder) -> None:
    pool = PoolState(
        venue="alpha",
        asset="USD",
        available=Decimal(1000),
        reserved=Decimal(300),
        free=Decimal(700),
        updated_ns=0,
    )
    held = Reserved(basket_id="b", needs={"alpha": Decimal(300)}, reserved_ns=0)
    m.CollateralMetrics().publish(MarginBookSnapshot(pools=[pool], reservations=[held], ts_ns=0))
    made = recorder.made
    tags = {"venue": "alpha", "asset": "USD"}
    assert made["legato_collateral_available"].last(**tags) == 1000
    assert made["legato_collateral_reserved"].last(**tags) == 300
    assert made["legato_collateral_free"].last(**tags) == 700
    assert made["legato_collateral_reservations"].last(venue="alpha") == 1


def test_basket_states_are_counts_with_every_live_state_shown(recorder) -> None:
    states = m.BasketStates()
    states.publish([BasketState.RUNNING, BasketState.RUNNING, BasketState.QUEUED])
    states.ended(BasketState.COMPLETED)
    gauge = recorder.made["legato_baskets"]
    assert gauge.last(state="RUNNING") == 2
    assert gauge.last(state="QUEUED") == 1
    assert gauge.last(state="ARMING") == 0
    assert gauge.last(state="COMPLETED") is None  # ended ones are a counter
    assert recorder.made["legato_baskets_ended"].total(state="COMPLETED") == 1


def test_no_metric_is_tagged_by_basket_run_or_order(recorder) -> None:
    counted(sent(), fill(), hedge_sent(), hedge_reported("1"))
    m.ClientCounters("alpha").publish(type("C", (), {"reconnects": 1})())
    m.BasketStates().publish([])
    m.HedgeMetrics().publish([])
    m.CollateralMetrics().publish(MarginBookSnapshot(pools=[], reservations=[], ts_ns=0))
    m.BasketMetrics("b").finished(report())
    assert len(recorder.made) >= 20
    for made in recorder.made.values():
        assert not {"basket", "run", "run_id", "leg", "client_order_id"} & set(made.tag_keys)
        assert made.description.isascii(), made.name  # Ray's exporter refuses anything else
