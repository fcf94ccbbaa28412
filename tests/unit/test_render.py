"""The report's renderings: the summary shows the report's figures, the chart is a real PNG,
the HTML page is self-contained and escaped, and degenerate reports render too."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from matplotlib.image import imread

from actors.lifecycle import BasketState
from actors.messages import LegProgress, LegStatus
from actors.protocol import BasketStatus
from actors.report import (
    BasketReport,
    CollateralReport,
    HedgeReport,
    LegReport,
    Timeline,
    TimelinePoint,
    TransferView,
    load_report,
)
from actors.spec import Policy
from actors.tca import basket_tca
from cluster import present, render
from venues.model import AckKind, Side, TransferKind, TransferState

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # submission, basket axis
LAUNCH = T0 + 120_000_000
BAND = 0.05
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# leg id, venue, symbol, side, target, filled, decision, arrival, fill VWAP, end, fees, ack kind
LEGS: list[tuple[str, str, str, Side, str, str, str, str, str, str, str, AckKind]] = [
    ("eth", "alpha", "ETHUSDT", Side.BUY, "10", "10", "2500", "2500.8", "2501.5", "2503", "5.0",
     AckKind.RESULT),
    ("steth", "beta", "STETHUSDT", Side.BUY, "10", "10", "2490", "2490.2", "2490.9", "2492",
     "4.9", AckKind.ACCEPTED),
    ("btc", "gamma", "BTCUSDT", Side.SELL, "0.8", "0.75", "62000", "61995", "61990", "61980",
     "9.3", AckKind.RECEIPT),
]  # fmt: skip
CLOCKS = {  # leg → (leg − basket, ±, venue − leg, ±), ns
    "eth": (120_000, 40_000, -1_500_000, 500_000),
    "steth": (-250_000, 60_000, 2_250_000, 750_000),
    "btc": (80_000, 30_000, 31_000_000, 4_000_000),
}
LAUNCH_SKEW_NS = 1_234_000
RAW_ACK_SKEW_NS = 81_500_000
REACTION_NS = [12_000_000, 16_000_000, 36_000_000]


def leg_report(row: tuple[Any, ...], leg_id: str | None = None) -> LegReport:
    lid, venue, symbol, side, q, f, pd, pa, vwap, pe, fees, ack = row
    off, unc, voff, vunc = CLOCKS[lid]
    return LegReport(
        leg_id=leg_id or lid,
        venue=venue,
        symbol=symbol,
        side=side,
        original_qty=Decimal(q),
        target_qty=Decimal(q),
        filled_qty=Decimal(f),
        avg_price=Decimal(vwap),
        fees_usd=Decimal(fees),
        status=LegStatus.RECONCILED,
        reconciled=True,
        child_orders=[],
        rejects=["INSUFFICIENT_MARGIN: no"] if lid == "btc" else [],
        arrival_price=Decimal(pa),
        decision_price=Decimal(pd),
        end_price=Decimal(pe),
        ack_kind=ack,
        clock_offset_ns=off,
        clock_uncertainty_ns=unc,
        venue_clock_offset_ns=voff,
        venue_clock_uncertainty_ns=vunc,
    )


def leg_tca(row: tuple[Any, ...]) -> dict[str, Any]:
    """DESIGN §8 by hand: delay, execution, opportunity and fees of one leg."""
    lid, venue, symbol, side, q, f, pd, pa, vwap, pe, fees, _ = row
    s, big_q, q_f = side.sign, float(q), float(f)
    pd, pa, vwap, pe, fees = (float(x) for x in (pd, pa, vwap, pe, fees))
    delay = s * q_f * (pa - pd)
    execution = s * q_f * (vwap - pa)
    opportunity = s * (big_q - q_f) * (pe - pd)
    total = delay + execution + opportunity + fees
    notional = big_q * pd
    return {
        "leg_id": lid,
        "venue": venue,
        "symbol": symbol,
        "side": side.value,
        "target_qty": big_q,
        "filled_qty": q_f,
        "decision_price": pd,
        "arrival_price": pa,
        "fill_vwap": vwap,
        "end_price": pe,
        "market_vwap": vwap - s * 0.3,
        "slippage_vs_market_vwap_bps": s * 0.3 / vwap * 1e4,
        "spread_paid_usd": 0.5,
        "notional_usd": notional,
        "shortfall": {
            "delay_usd": delay,
            "execution_usd": execution,
            "opportunity_usd": opportunity,
            "fees_usd": fees,
            "total_usd": total,
            "total_bps": total / notional * 1e4,
        },
    }


def timeline(legs: list[str], points: int = 40) -> Timeline:
    """A 15 s run: eth a little ahead, btc lagging past the band in the middle."""
    notionals = [float(r[4]) * float(r[6]) * r[3].sign for r in LEGS]
    out = []
    for k in range(points):
        s = k / (points - 1)
        bump = math.sin(math.pi * s)
        p = [min(1.0, s + 0.02 * bump), s, max(0.0, s - 0.07 * bump)]
        mean = sum(p) / 3
        u = [(pi - mean) * n for pi, n in zip(p, notionals, strict=True)]
        out.append(
            TimelinePoint(
                ts_ns=LAUNCH + int(15 * NS * s),
                schedule=s,
                progress=p,
                imbalance_usd=u,
                hedge_usd=abs(sum(u)) * 0.8,
            )
        )
    return Timeline(legs=legs, band=BAND, betas=[1.0, 0.98, 0.0], points=out)


def tca_dict() -> dict[str, Any]:
    legs = [leg_tca(r) for r in LEGS]
    gross = sum(leg["notional_usd"] for leg in legs)
    parts = {
        k: sum(leg["shortfall"][k] for leg in legs)
        for k in ("delay_usd", "execution_usd", "opportunity_usd", "fees_usd")
    }
    shortfall = sum(parts.values())
    hedge_cost = 4.01
    return {
        "gross_notional_usd": gross,
        "shortfall_usd": shortfall,
        "shortfall_bps": shortfall / gross * 1e4,
        "parts": parts,
        "hedge_cost_usd": hedge_cost,
        "hedge_cost_bps": hedge_cost / gross * 1e4,
        "total_cost_usd": shortfall + hedge_cost,
        "total_cost_bps": (shortfall + hedge_cost) / gross * 1e4,
        "launch_skew_ns": LAUNCH_SKEW_NS,
        "raw_ack_skew_ns": RAW_ACK_SKEW_NS,
        "max_completion_skew": 0.09,
        "time_outside_band_s": 4.6,
        "peak_imbalance_usd": 1523.25,
        "peak_net_imbalance_usd": 1204.5,
        "peak_beta_imbalance_usd": 811.5,
        "legging_risk_usd": 17.42,
        "hedge_activations": 2,
        "hedge_orders": len(REACTION_NS),
        "hedge_reaction_ns": {
            "p50": float(sorted(REACTION_NS)[1]),
            "p99": float(max(REACTION_NS)),
            "n": len(REACTION_NS),
        },
        "ack_latency_ns": {
            "alpha": {"RESULT": {"p50": 2.1e6, "p99": 3.3e6, "n": 11}},
            "gamma": {"RECEIPT": {"p50": None, "p99": None, "n": 0}},
        },
        "accept_latency_ns": {"alpha": {"p50": 1.4e6, "p99": 2.2e6, "n": 11}},
        "legs": legs,
    }


def completed_report(rename: dict[str, str] | None = None) -> BasketReport:
    """The 3-leg basket: completed, with a 40-point timeline, a hedge and its TCA."""
    rename = rename or {}
    legs = [leg_report(r, rename.get(r[0])) for r in LEGS]
    tca = tca_dict()
    for leg in tca["legs"]:
        leg["leg_id"] = rename.get(leg["leg_id"], leg["leg_id"])
    return BasketReport(
        basket_id="b-render",
        status=BasketState.COMPLETED,
        policy=Policy.UNWIND,
        reason="every leg filled and reconciled",
        submitted_ns=T0,
        launched_ns=LAUNCH,
        completed_ns=LAUNCH + 16 * NS,
        legs=legs,
        hedge=HedgeReport(
            venue="alpha",
            instruments=["ETHUSDT"],
            orders=len(REACTION_NS),
            max_abs_position=2345.0,
            pnl_usd=-4.01,
            fees_usd=0.75,
            reaction_ns=REACTION_NS,
        ),
        collateral=CollateralReport(
            reserved={"alpha": Decimal(5000), "gamma": Decimal(10400)},
            holdings={"beta": {"spot:USDT": Decimal("5000.25")}},
            released=True,
        ),
        tca=tca,
        launch_skew_ns=LAUNCH_SKEW_NS,
        raw_ack_skew_ns=RAW_ACK_SKEW_NS,
        timeline=timeline([leg.leg_id for leg in legs]),
        notes=["btc shrunk to 0.75 of 0.8"],
    )


def refused_report() -> BasketReport:
    return BasketReport(
        basket_id="b-refused",
        status=BasketState.FAILED,
        policy=Policy.UNWIND,
        reason="collateral refused on gamma",
        submitted_ns=T0,
        launched_ns=None,
        completed_ns=T0 + 50_000_000,
        legs=[],
        hedge=None,
        collateral=CollateralReport(refused=["venue gamma: needs $10,400, has $100"]),
    )


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


# -- the summary -----------------------------------------------------------------------------
def test_summary_shows_the_reports_figures() -> None:
    report = completed_report()
    tca = report.tca
    assert tca is not None
    text = render.summary(report)

    assert text.startswith("basket b-render: COMPLETED (policy unwind, 16.1 s)")
    assert f"{tca['shortfall_usd']:,.2f}" in text
    assert f"{tca['shortfall_bps']:.2f}" in text
    for part, usd in tca["parts"].items():
        line = next(x for x in text.splitlines() if x.strip().startswith(part.removesuffix("_usd")))
        assert f"{usd:,.2f}" in line
        assert f"{usd / tca['gross_notional_usd'] * 1e4:.2f}" in line
    assert f"${tca['gross_notional_usd']:,.2f}" in text
    assert f"{tca['total_cost_usd']:,.2f}" in text

    for row, leg in zip(LEGS, tca["legs"], strict=True):
        line = next(x for x in text.splitlines() if x.startswith(f"  {row[0]} "))
        assert f"{row[5]}/{row[4]}" in line  # filled/target
        assert f"{leg['shortfall']['total_bps']:.2f}" in line
        assert f"{leg['slippage_vs_market_vwap_bps']:.2f}" in line
        assert f"{float(row[10]):.2f}" in line  # fees
        assert row[11].value in line  # ack kind

    assert ms(LAUNCH_SKEW_NS) in text and ms(RAW_ACK_SKEW_NS) in text
    phantom = next(x for x in text.splitlines() if "phantom asynchrony" in x)
    assert ms(RAW_ACK_SKEW_NS - LAUNCH_SKEW_NS) in phantom
    assert f"band {BAND:.1%}" in text
    assert f"${tca['legging_risk_usd']:,.2f}" in text
    assert f"${tca['peak_beta_imbalance_usd']:,.2f}" in text

    reaction = next(x for x in text.splitlines() if "reaction" in x)
    assert ms(sorted(REACTION_NS)[1]) in reaction and ms(max(REACTION_NS)) in reaction
    assert f"n={len(REACTION_NS)}" in reaction

    for leg, (off, unc, voff, vunc) in CLOCKS.items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {leg} ") and "±" not in x
                    and f"{off / 1e6:+.3f} ms" in x)  # fmt: skip
        assert ms(unc) in line and f"{voff / 1e6:+.3f} ms" in line and ms(vunc) in line
    assert re.search(r"rejects +1 \(btc 1\)", text)
    assert "$10,400.00" in text and "released" in text
    assert "beta 5000.25 USDT (spot)" in text  # a spot leg's pool, in its own asset
    assert re.search(r"note +btc shrunk", text)


def test_a_hedge_left_with_orders_that_may_still_fill_says_which() -> None:
    report = completed_report()
    assert report.hedge is not None
    line = next(x for x in render.summary(report).splitlines() if "at the end" in x)
    assert line.split("at the end")[1].strip() == "flat"
    report.hedge.flat_at_end = False
    report.hedge.unsettled = ["lgh-d1-4", "lgh-d1-7"]
    line = next(x for x in render.summary(report).splitlines() if "at the end" in x)
    assert "NOT flat; orders that may still fill: lgh-d1-4, lgh-d1-7" in line


def test_summary_survives_a_json_round_trip(tmp_path: Path) -> None:
    report = completed_report()
    path = tmp_path / "report.json"
    report.write(path)
    assert render.summary(load_report(path)) == render.summary(report)


def test_a_refused_basket_renders() -> None:
    report = refused_report()
    text = render.summary(report)
    assert text.startswith("basket b-refused: FAILED")
    assert "no leg was started" in text
    assert "no hedge" in text
    assert "venue gamma: needs $10,400, has $100" in text
    page = render.html_report(report)
    assert "no timeline" in page


def test_a_report_without_tca_or_hedge_or_band_renders(tmp_path: Path) -> None:
    report = completed_report()
    report.tca = {}  # a report from before the TCA: every figure missing
    report.hedge = None
    assert report.timeline is not None
    report.timeline.band = None
    text = render.summary(report)
    assert "no hedge" in text
    assert ms(LAUNCH_SKEW_NS) in text  # the report's own launch skew stands in
    render.chart_png(report, tmp_path / "c.png")
    render.html_report(report)


def test_a_report_without_its_tca_gets_it_computed() -> None:
    report = completed_report()
    report.tca = None
    computed = basket_tca(completed_report())
    text = render.summary(report)
    assert f"{computed['shortfall_usd']:,.2f}" in text
    render.summary(refused_report())  # nothing to compute from: still renders


# -- the chart -------------------------------------------------------------------------------
def test_chart_png_is_a_real_image(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    render.chart_png(completed_report(), path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000  # three panels of lines, not a blank canvas
    image = imread(path)
    height, width, channels = image.shape
    assert height > 600 and width > 800 and channels in (3, 4)
    assert image[..., :3].std() > 0.05  # something is drawn


@pytest.mark.parametrize("report", [refused_report(), completed_report()])
def test_chart_without_a_timeline_says_so(tmp_path: Path, report: BasketReport) -> None:
    report.timeline = None
    path = tmp_path / "none.png"
    render.chart_png(report, path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert imread(path).ndim == 3


def test_chart_of_an_empty_or_ragged_timeline(tmp_path: Path) -> None:
    report = completed_report()
    assert report.timeline is not None
    report.timeline.points = report.timeline.points[:1]
    render.chart_png(report, tmp_path / "one.png")
    p = report.timeline.points[0]
    report.timeline.points = [msgspec.structs.replace(p, progress=[0.1], imbalance_usd=[])]
    render.chart_png(report, tmp_path / "ragged.png")
    report.timeline.points = []
    render.chart_png(report, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes().startswith(PNG_MAGIC)


# -- the HTML page ---------------------------------------------------------------------------
def test_html_is_self_contained(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    render.write_html(completed_report(), path)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//""", page, re.I)  # only url(#id)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page
    for section in ("cost", "legs", "integrity", "hedge", "operations"):
        assert f"<h2>{section}</h2>" in page
    assert "phantom asynchrony" in page


def test_html_escapes_every_text() -> None:
    report = completed_report(rename={"eth": "x<b>y"})
    report.notes.append('a "quoted" <i>note</i> & more')
    page = render.html_report(report)
    assert "<b>" not in page and "<i>" not in page
    assert "x&lt;b&gt;y" in page
    assert "&lt;i&gt;note&lt;/i&gt; &amp; more" in page
    text = render.summary(report)
    assert "  x<b>y " in text  # the terminal shows it as it is


# -- live progress ---------------------------------------------------------------------------
def status(progress: dict[str, float], band: float | None = BAND) -> BasketStatus:
    legs = [
        LegProgress(
            basket_id="b-live",
            leg_id=leg,
            seq=1,
            side=Side.BUY,
            target_qty=Decimal(100),
            filled_qty=Decimal(round(p * 100)),
            avg_price=None,
            open_qty=Decimal(0),
            status=LegStatus.WORKING,
            ts_ns=T0,
        )
        for leg, p in progress.items()
    ]
    return BasketStatus(
        basket_id="b-live",
        state=BasketState.RUNNING,
        reason="",
        legs=legs,
        schedule_progress=0.5,
        hedge_position_usd=1234.0,
        ts_ns=T0,
        band=band,
    )


def test_live_progress_shows_the_skew_against_the_band_and_the_hedge() -> None:
    inside = status({"eth": 0.52, "steth": 0.50, "btc": 0.49})
    lines = present.status_lines(inside)
    assert f"skew {0.52 - 0.49:.1%} / band {BAND:.1%}" in lines[0]
    assert "OUTSIDE" not in lines[0] and "hedge $1,234" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["eth", "steth", "btc"]
    assert all("|" in line or "█" * 12 in line for line in lines[1:])  # the schedule mark

    outside = status({"eth": 0.60, "steth": 0.50, "btc": 0.49})
    assert "OUTSIDE THE BAND" in present.status_lines(outside)[0]
    plain = present.status_line(outside)
    assert f"skew={0.60 - 0.49:.1%}" in plain and f"band={BAND:.1%}" in plain
    assert plain.endswith("OUTSIDE_BAND") and "hedge_usd=1234" in plain


def test_live_progress_without_legs_or_band() -> None:
    empty = status({}, band=None)
    assert (
        present.status_line(empty) == "b-live RUNNING schedule=50.0% skew=— band=— hedge_usd=1234"
    )
    assert present.status_lines(empty) == [
        "b-live  RUNNING     schedule  50.0%  skew —  hedge $1,234"
    ]
    assert "band in dollars" in present.status_lines(status({"eth": 0.5}, band=None))[0]


def test_live_progress_shows_each_transfer_and_how_long_a_pending_one_has_waited() -> None:
    def transfer(n: int, state: TransferState, asked_s_ago: float) -> TransferView:
        return TransferView(
            client_transfer_id=f"b-live.r1-t{n}",
            basket_id="b-live",
            kind=TransferKind.INTERNAL,
            venue="gamma",
            asset="USDT",
            amount=Decimal("2821.24"),
            source="gamma/spot",
            destination="gamma/margin",
            state=state,
            requested_ns=T0 - int(asked_s_ago * 1e9),
            updated_ns=T0,
        )

    waiting = msgspec.structs.replace(
        status({}, band=None),
        state=BasketState.CHECKING,
        transfers=[transfer(1, TransferState.COMPLETED, 5), transfer(2, TransferState.PENDING, 42)],
    )
    lines = present.status_lines(waiting)
    assert lines[1:] == [
        "  transfer internal b-live.r1-t1 2821.24 USDT gamma/spot → gamma/margin: completed",
        "  transfer internal b-live.r1-t2 2821.24 USDT gamma/spot → gamma/margin: pending for 42 s",
    ]
    assert present.status_line(waiting).endswith("transfers_pending=1 oldest_s=42")


def test_the_report_lists_the_transfers_that_funded_the_basket_and_what_it_did_meanwhile() -> None:
    report = completed_report()
    moved = TransferView(
        client_transfer_id="b-render.r1-t1",
        basket_id="b-render",
        kind=TransferKind.INTERNAL,
        venue="gamma",
        asset="USDT",
        amount=Decimal("2821.24"),
        source="gamma/spot",
        destination="gamma/margin",
        state=TransferState.COMPLETED,
        requested_ns=T0,
        updated_ns=T0 + 61_180_000_000,
        venue_transfer_id="17",
    )
    report.collateral.transfers = [moved]
    report.collateral.funding = "waited 61.2 s in CHECKING for the transfers"
    text = render.summary(report)
    row = next(line for line in text.splitlines() if "b-render.r1-t1" in line)
    for cell in ("internal", "2821.24 USDT", "gamma/spot → gamma/margin", "completed", "61.2 s"):
        assert cell in row
    assert row.rstrip().endswith("17")
    assert "waited 61.2 s in CHECKING for the transfers" in text
    assert "b-render.r1-t1" in render.html_report(report)
