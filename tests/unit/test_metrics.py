"""The metrics a basket exports: what each figure is fed from, through a stand-in for Ray's
metrics classes (the real ones need a Ray worker), and that a failing exporter is harmless."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import pytest

from actors import report as r
from actors.leg import ChildOrder
from actors.lifecycle import BasketState
from actors.messages import LegStatus
from actors.shells import metrics as m
from actors.spec import Policy
from tests.unit.test_basket_core import coordinator
from venues.model import AckKind, OrderStatus, Side

MS = 1_000_000


class Recorder:
    """Stands in for ray.util.metrics.Gauge/Histogram: remembers what it was given."""

    made: ClassVar[dict[str, Recorder]] = {}

    def __init__(self, name: str, description: str = "", tag_keys: Any = None, **kw: Any) -> None:
        self.name, self.tag_keys, self.kw = name, tag_keys, kw
        self.values: list[tuple[float, dict[str, str]]] = []
        Recorder.made[name] = self

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.values.append((value, tags or {}))

    observe = set


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


def test_gauges_are_set_at_most_once_per_interval(recorder, monkeypatch) -> None:
    core, _, _ = coordinator()
    clock = [100.0]
    monkeypatch.setattr(m.time, "monotonic", lambda: clock[0])
    exporter = m.BasketMetrics("b")
    exporter.observe(core, 0.0)
    exporter.observe(core, 0.0)  # the next tick, 100 ms later: skipped
    clock[0] += m.GAUGE_EVERY_S / 2
    exporter.observe(core, 0.0)
    assert len(recorder.made["legato_basket_hedge_usd"].values) == 1
    clock[0] += m.GAUGE_EVERY_S
    exporter.observe(core, 5.0)
    exporter.observe(core, 7.0, force=True)  # the basket's last word goes out regardless
    assert [v for v, _ in recorder.made["legato_basket_hedge_usd"].values] == [0.0, 5.0, 7.0]
