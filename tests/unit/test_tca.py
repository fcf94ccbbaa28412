"""The basket TCA: shortfall parts against their definition, symmetry and scale, a textbook
example, legging risk against a Monte Carlo, path figures and latency percentiles by hand."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from fractions import Fraction

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.leg import ChildOrder
from actors.lifecycle import BasketState
from actors.messages import LegStatus
from actors.report import (
    BasketReport,
    CollateralReport,
    HedgeReport,
    LegReport,
    Timeline,
    TimelinePoint,
    load_report,
)
from actors.risk import RiskModel
from actors.spec import Policy
from actors.tca import basket_tca, fill_path_risk, leg_shortfall, legging_risk_usd, percentiles
from venues.model import AckKind, Side
from venues.sim.calibration import SECONDS_PER_YEAR, SYNTHETIC_INSTRUMENTS

SECOND = 1_000_000_000
D = Decimal


# -- builders ---------------------------------------------------------------------------------


def child(
    n: int,
    side: Side,
    qty: Decimal | str,
    price: Decimal | str | None,
    *,
    fee: Decimal | str = "0",
    purpose: str = "slice",
    mid: Decimal | str | None = None,
    sent_ns: int = 0,
    ack_ns: int | None = None,
    ack_kind: AckKind | None = None,
    accept_ns: int | None = None,
) -> ChildOrder:
    return ChildOrder(
        client_order_id=f"c{n}",
        n=n,
        side=side,
        quantity=D(qty),
        price=None,
        purpose=purpose,
        sent_ns=sent_ns,
        ack_ns=ack_ns,
        ack_kind=ack_kind,
        venue_accept_ns=accept_ns,
        filled_qty=D(qty),
        avg_price=None if price is None else D(price),
        fee=D(fee),
        mid=None if mid is None else D(mid),
    )


def leg(
    side: Side = Side.BUY,
    qty: Decimal | str = "10",
    children: list[ChildOrder] | None = None,
    *,
    leg_id: str = "a",
    venue: str = "v1",
    decision: Decimal | str | None = "100",
    arrival: Decimal | str | None = None,
    end: Decimal | str | None = None,
    fees: Decimal | str = "0",
    contract: Decimal | str = "1",
    market_vwap: Decimal | str | None = None,
    filled: Decimal | str = "0",
    avg: Decimal | str | None = None,
) -> LegReport:
    return LegReport(
        leg_id=leg_id,
        venue=venue,
        symbol=f"{leg_id.upper()}USDT",
        side=side,
        original_qty=D(qty),
        target_qty=D(qty),
        filled_qty=D(filled),
        avg_price=None if avg is None else D(avg),
        fees_usd=D(fees),
        status=LegStatus.DONE,
        reconciled=True,
        child_orders=children or [],
        rejects=[],
        decision_price=None if decision is None else D(decision),
        arrival_price=None if arrival is None else D(arrival),
        end_price=None if end is None else D(end),
        contract_size=D(contract),
        market_vwap=None if market_vwap is None else D(market_vwap),
    )


def basket(
    legs: list[LegReport],
    *,
    hedge: HedgeReport | None = None,
    timeline: Timeline | None = None,
) -> BasketReport:
    return BasketReport(
        basket_id="b1",
        status=BasketState.COMPLETED,
        policy=Policy.UNWIND,
        reason="",
        submitted_ns=0,
        launched_ns=0,
        completed_ns=10 * SECOND,
        legs=legs,
        hedge=hedge,
        collateral=CollateralReport(),
        launch_skew_ns=1_500,
        raw_ack_skew_ns=40_000,
        timeline=timeline,
    )


def point(
    t_s: float, progress: list[float], u: list[float], hedge_usd: float = 0.0
) -> TimelinePoint:
    return TimelinePoint(
        ts_ns=round(t_s * SECOND),
        schedule=0.0,
        progress=progress,
        imbalance_usd=u,
        hedge_usd=hedge_usd,
    )


def parts(sf: dict[str, float]) -> list[float]:
    return [sf["delay_usd"], sf["execution_usd"], sf["opportunity_usd"], sf["fees_usd"]]


# -- the four parts add up to the shortfall -----------------------------------------------------

prices = st.integers(1, 10_000_000).map(lambda i: D(i).scaleb(-2))  # 0.01 … 100,000.00
quantities = st.integers(1, 1_000_000).map(lambda i: D(i).scaleb(-3))  # 0.001 … 1,000
fees = st.integers(0, 100_000).map(lambda i: D(i).scaleb(-4))
sides = st.sampled_from([Side.BUY, Side.SELL])


@st.composite
def legs_with_fills(draw: st.DrawFn) -> LegReport:
    side = draw(sides)
    children = []
    for i in range(draw(st.integers(0, 6))):
        # Mostly slices on the leg's side; some unwinds, sold (or bought) back.
        own = draw(st.sampled_from([side, side, side.opposite]))
        purpose = "slice" if own is side else "unwind"
        children.append(
            child(i, own, draw(quantities), draw(prices), fee=draw(fees), purpose=purpose)
        )
    return leg(
        side,
        draw(quantities),
        children,
        decision=draw(prices),
        arrival=draw(st.none() | prices),
        end=draw(st.none() | prices),
        fees=draw(fees),
        contract=draw(st.sampled_from(["1", "0.001", "10", "100"])),
    )


def exact_shortfall(r: LegReport) -> tuple[Fraction, Fraction]:
    """Σ σq(p − P_d)c + s(Q − q)(P_end − P_d)c + fees in exact arithmetic, straight from the
    definition; with the dollar scale that float rounding is relative to."""
    assert r.decision_price is not None
    s, c, p_d = r.side.sign, Fraction(r.contract_size), Fraction(r.decision_price)
    filled = [ch for ch in r.child_orders if ch.filled_qty > 0 and ch.avg_price is not None]
    signed = [ch.side.sign * Fraction(ch.filled_qty) for ch in filled]
    q = s * sum(signed, Fraction(0))
    if r.end_price is not None:
        p_end = Fraction(r.end_price)
    else:
        p_end = Fraction(filled[-1].avg_price) if filled else p_d  # type: ignore[arg-type]
    child_fees = [Fraction(ch.fee) for ch in r.child_orders if ch.fee]
    fee = sum(child_fees, Fraction(0)) if child_fees else Fraction(r.fees_usd)
    terms = [
        x * (Fraction(ch.avg_price) - p_d) * c  # type: ignore[arg-type]
        for x, ch in zip(signed, filled, strict=True)
    ]
    terms.append(s * (Fraction(r.original_qty) - q) * (p_end - p_d) * c)
    terms.append(fee)
    # Float rounding is relative to the prices, not to their differences: the scale is the
    # dollars the fills and the target amount to, at the largest price in play.
    p_a = Fraction(r.arrival_price) if r.arrival_price is not None else p_d
    top = max([p_d, p_a, p_end, *(Fraction(ch.avg_price) for ch in filled)])  # type: ignore[arg-type]
    qty = sum((abs(x) for x in signed), Fraction(0)) + Fraction(r.original_qty) + abs(q)
    scale = qty * top * c + fee
    return sum(terms, Fraction(0)), scale


@settings(max_examples=300, deadline=None)
@given(r=legs_with_fills())
def test_the_four_parts_add_up_to_the_shortfall_defined_independently(r: LegReport) -> None:
    tca = basket_tca(basket([r]))
    sf = tca["legs"][0]["shortfall"]
    expected, scale = exact_shortfall(r)
    tol = 1e-12 * float(scale)
    assert math.isclose(math.fsum(parts(sf)), float(expected), rel_tol=1e-12, abs_tol=tol)
    assert math.isclose(sf["total_usd"], float(expected), rel_tol=1e-12, abs_tol=tol)
    assert math.isclose(tca["shortfall_usd"], float(expected), rel_tol=1e-12, abs_tol=tol)
    assert tca["parts"] == {k: sf[k] for k in tca["parts"]}  # one leg: the basket is the leg


# -- zero, mirror, scale ------------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_filled_at_the_decision_mid_without_fees_costs_nothing(side: Side) -> None:
    children = [child(0, side, "4", "2500.5"), child(1, side, "6", "2500.5")]
    r = leg(side, "10", children, decision="2500.5", arrival="2500.5", end="2600")
    tca = basket_tca(basket([r]))
    sf = tca["legs"][0]["shortfall"]
    assert parts(sf) == [0.0, 0.0, 0.0, 0.0]
    assert sf["total_usd"] == 0.0
    assert sf["total_bps"] == 0.0
    assert tca["shortfall_usd"] == 0.0
    assert tca["gross_notional_usd"] == 25_005.0


offsets = st.integers(-50_000, 50_000).map(lambda i: D(i).scaleb(-2))


@settings(max_examples=200, deadline=None)
@given(
    p_d=st.integers(100_000, 10_000_000).map(lambda i: D(i).scaleb(-2)),
    arrival=offsets,
    end=offsets,
    fills=st.lists(st.tuples(quantities, offsets), max_size=5),
    unwind=st.none() | st.tuples(quantities, offsets),
    target=quantities,
    fee=fees,
)
def test_mirrored_buy_and_sell_cost_the_same(
    p_d: Decimal,
    arrival: Decimal,
    end: Decimal,
    fills: list[tuple[Decimal, Decimal]],
    unwind: tuple[Decimal, Decimal] | None,
    target: Decimal,
    fee: Decimal,
) -> None:
    """A sell filled at P_d − x costs what a buy filled at P_d + x costs, every price mirrored
    around P_d (arrival, fills, unwinds and the end mid)."""

    def one(side: Side) -> LegReport:
        s = side.sign
        children = [child(i, side, q, p_d + s * x, fee=fee) for i, (q, x) in enumerate(fills)]
        if unwind is not None:
            q, x = unwind
            children.append(child(len(children), side.opposite, q, p_d + s * x, purpose="unwind"))
        return leg(
            side,
            target,
            children,
            decision=p_d,
            arrival=p_d + s * arrival,
            end=p_d + s * end,
            fees=fee,
        )

    buy, sell = (basket_tca(basket([one(side)])) for side in (Side.BUY, Side.SELL))
    unwound = unwind[0] if unwind is not None else 0
    scale = float(p_d + 500) * float(2 * target + 2 * sum(q for q, _ in fills) + 2 * unwound)
    scale += float(fee) * (len(fills) + 1)
    tol = 1e-12 * scale
    for b, s in zip(
        parts(buy["legs"][0]["shortfall"]), parts(sell["legs"][0]["shortfall"]), strict=True
    ):
        assert math.isclose(b, s, rel_tol=1e-9, abs_tol=tol)
    bp_tol = tol / buy["gross_notional_usd"] * 1e4
    assert math.isclose(buy["shortfall_bps"], sell["shortfall_bps"], rel_tol=1e-9, abs_tol=bp_tol)


def test_a_mirrored_pair_basket_costs_the_same() -> None:
    def pair(long: Side) -> BasketReport:
        s = long.sign
        eth = leg(
            long,
            "10",
            [child(0, long, "10", D("2500") + s * D("1.5"), fee="5")],
            leg_id="eth",
            decision="2500",
            arrival=D("2500") + s * D("0.5"),
        )
        btc = leg(
            long.opposite,
            "0.5",
            [child(0, long.opposite, "0.3", D("60000") - s * D("12"), fee="3")],
            leg_id="btc",
            decision="60000",
            arrival=D("60000") - s * D("4"),
            end=D("60000") - s * D("30"),
        )
        return basket([eth, btc])

    a, b = basket_tca(pair(Side.BUY)), basket_tca(pair(Side.SELL))
    assert a["shortfall_usd"] == pytest.approx(b["shortfall_usd"], rel=1e-12)
    assert a["parts"] == pytest.approx(b["parts"], rel=1e-12)
    # eth: 10 × 1.5 + 5; btc: 0.3 × 12 + 0.2 × 30 + 3 (the unfilled 0.2 moved 30 against us)
    assert a["shortfall_usd"] == pytest.approx(20.0 + 3.6 + 6.0 + 3.0)


@settings(max_examples=150, deadline=None)
@given(
    r=legs_with_fills(),
    k=st.sampled_from([D("0.001"), D("0.5"), D("3"), D("1000")]),
    m=st.sampled_from([D("0.01"), D("2"), D("7"), D("100")]),
)
def test_prices_and_quantities_scale_dollars_and_leave_bp(
    r: LegReport, k: Decimal, m: Decimal
) -> None:
    """Prices × k scale every dollar figure by k, quantities × m by m; the bp stay put. Fees are
    a share of notional, so they scale with it."""

    def scaled(pk: Decimal, qm: Decimal) -> LegReport:
        def p(x: Decimal | None) -> Decimal | None:
            return None if x is None else x * pk

        children = [
            msgspec.structs.replace(
                c,
                quantity=c.quantity * qm,
                filled_qty=c.filled_qty * qm,
                avg_price=p(c.avg_price),
                fee=c.fee * pk * qm,
            )
            for c in r.child_orders
        ]
        return msgspec.structs.replace(
            r,
            original_qty=r.original_qty * qm,
            target_qty=r.target_qty * qm,
            child_orders=children,
            fees_usd=r.fees_usd * pk * qm,
            decision_price=p(r.decision_price),
            arrival_price=p(r.arrival_price),
            end_price=p(r.end_price),
        )

    base = basket_tca(basket([r]))
    _, scale = exact_shortfall(r)
    for factor, t in (
        (k, basket_tca(basket([scaled(k, D(1))]))),
        (m, basket_tca(basket([scaled(D(1), m)]))),
    ):
        f = float(factor)
        tol = 1e-11 * float(scale) * f
        for key in ("delay_usd", "execution_usd", "opportunity_usd", "fees_usd"):
            assert math.isclose(t["parts"][key], f * base["parts"][key], rel_tol=1e-9, abs_tol=tol)
        assert math.isclose(
            t["shortfall_usd"], f * base["shortfall_usd"], rel_tol=1e-9, abs_tol=tol
        )
        assert math.isclose(t["gross_notional_usd"], f * base["gross_notional_usd"], rel_tol=1e-12)
        bp_tol = 1e-11 * float(scale) / base["gross_notional_usd"] * 1e4
        assert math.isclose(t["shortfall_bps"], base["shortfall_bps"], rel_tol=1e-9, abs_tol=bp_tol)


# -- a published example ------------------------------------------------------------------------


def test_reproduces_the_cfa_impulse_robotics_implementation_shortfall() -> None:
    """The worked example of the CFA Institute's reading "Execution of Portfolio Decisions"
    (Madhavan, Treynor and Wagner, in Maginn et al., *Managing Investment Portfolios: A Dynamic
    Process*, 3rd ed., 2007; kept in the CFA Program Level III curriculum, "Trade Strategy and
    Execution"), after Perold's (1988) paper portfolio.

    Monday Impulse Robotics closes at 10.00, the benchmark (our decision price). Tuesday a
    limit buy for 1,000 shares at 9.98 does not fill; the close rises to 10.05 (the price at
    which the order that did trade was worked: our arrival price). Wednesday 700 shares are
    bought at 10.07, commissions and fees 14; the close is 10.08 and the other 300 are
    cancelled (our end price). Published answer: paper-portfolio gain 80, real-portfolio gain
    −7, implementation shortfall 87 = 0.87 % of the 10,000 paper investment, made of delay
    0.35 %, realised P&L (our execution cost) 0.14 %, missed-trade opportunity 0.24 % and
    explicit costs 0.14 %.
    """
    r = leg(
        Side.BUY,
        "1000",
        [child(0, Side.BUY, "700", "10.07", fee="14")],
        decision="10.00",
        arrival="10.05",
        end="10.08",
    )
    tca = basket_tca(basket([r]))
    sf = tca["legs"][0]["shortfall"]
    assert tca["gross_notional_usd"] == pytest.approx(10_000.0)
    assert tca["shortfall_usd"] == pytest.approx(87.0)
    assert tca["shortfall_bps"] == pytest.approx(87.0)  # 0.87 %
    paper_gain, real_gain = 1_000 * (10.08 - 10.00), 700 * (10.08 - 10.07) - 14
    assert tca["shortfall_usd"] == pytest.approx(paper_gain - real_gain)
    pct = {k: v / 10_000 * 100 for k, v in sf.items() if k.endswith("_usd")}
    assert pct["delay_usd"] == pytest.approx(0.35)
    assert pct["execution_usd"] == pytest.approx(0.14)
    assert pct["opportunity_usd"] == pytest.approx(0.24)
    assert pct["fees_usd"] == pytest.approx(0.14)
    assert pct["total_usd"] == pytest.approx(0.87)


def test_reproduces_a_published_sell_side_shortfall() -> None:
    """A sell: CFA Level III exam (2000), question 28, as discussed on AnalystForum ("Implementation
    shortfall (sell order)"). 10:00 the manager orders a sale of 50,000 TRP at 43.00 (decision);
    10:30 the desk gives it to a broker at 41.00 (arrival); the broker sells all 50,000 at 40.25,
    commission 0.05 a share. Published answer: a shortfall of 2.80 a share."""
    r = leg(
        Side.SELL,
        "50000",
        [child(0, Side.SELL, "50000", "40.25", fee="2500")],
        decision="43.00",
        arrival="41.00",
    )
    tca = basket_tca(basket([r]))
    assert tca["shortfall_usd"] / 50_000 == pytest.approx(2.80)
    # Of it, 2.00 a share is the drop before the broker had it, 0.75 the sale below 41.00.
    assert tca["parts"] == pytest.approx(
        {
            "delay_usd": 100_000.0,
            "execution_usd": 37_500.0,
            "opportunity_usd": 0.0,
            "fees_usd": 2_500.0,
        }
    )


# -- other per-leg figures ----------------------------------------------------------------------


def test_an_unwind_reduces_the_filled_quantity_and_counts_at_its_price() -> None:
    children = [
        child(0, Side.BUY, "10", "101", fee="1", mid="100.5"),
        child(1, Side.SELL, "4", "99", fee="0.5", purpose="unwind", mid="99.25"),
    ]
    r = leg(Side.BUY, "10", children, decision="100", arrival="100.5", end="98", market_vwap="100")
    tca = basket_tca(basket([r]))
    row = tca["legs"][0]
    sf = row["shortfall"]
    assert row["filled_qty"] == 6.0
    assert sf["delay_usd"] == pytest.approx(6 * 0.5)
    assert sf["execution_usd"] == pytest.approx(10 * 0.5 - 4 * (99 - 100.5))
    assert sf["opportunity_usd"] == pytest.approx(4 * (98 - 100))
    assert sf["fees_usd"] == pytest.approx(1.5)
    # Paper portfolio: bought 10 at 101, sold 4 at 99, 4 never held at 100 → 98.
    assert sf["total_usd"] == pytest.approx(10 * 1 - 4 * (-1) + 4 * (-2) + 1.5)
    assert row["fill_vwap"] == 101.0  # the slices only
    assert row["slippage_vs_market_vwap_bps"] == pytest.approx(100.0)
    assert row["spread_paid_usd"] == pytest.approx(10 * 0.5 + 4 * 0.25)
    assert sf["total_bps"] == pytest.approx(sf["total_usd"] / 1_000 * 1e4)


def test_contract_size_and_fallbacks() -> None:
    # A sell of 3 contracts of 0.01 (one contract is 0.01 of a unit): no arrival, no end mid,
    # no child fees (the leg's total is used), end valued at the last fill.
    children = [child(0, Side.SELL, "1", "2990"), child(1, Side.SELL, "1", "2980")]
    r = leg(Side.SELL, "3", children, decision="3000", fees="0.25", contract="0.01")
    row = basket_tca(basket([r]))["legs"][0]
    sf = row["shortfall"]
    assert row["end_price"] == 2980.0
    assert row["arrival_price"] is None
    assert sf["delay_usd"] == 0.0
    assert sf["execution_usd"] == pytest.approx(-(2990 - 3000) * 0.01 - (2980 - 3000) * 0.01)
    assert sf["opportunity_usd"] == pytest.approx(-1 * (2980 - 3000) * 0.01)
    assert sf["fees_usd"] == 0.25
    assert sf["total_bps"] == pytest.approx((0.1 + 0.2 + 0.2 + 0.25) / 90.0 * 1e4)


def test_a_lost_leg_is_valued_from_its_last_snapshot() -> None:
    r = leg(Side.BUY, "5", [], decision="100", end="100", filled="2", avg="102")
    sf = leg_shortfall(r)
    assert sf.execution_usd == pytest.approx(4.0)
    assert sf.opportunity_usd == 0.0


def test_basket_bp_are_of_gross_notional_and_the_hedge_is_a_line_of_its_own() -> None:
    # Long 100k of one, short 100k of another: net notional 0, gross 200k.
    long = leg(Side.BUY, "1", [child(0, Side.BUY, "1", "100100")], leg_id="x", decision="100000")
    short = leg(Side.SELL, "1", [child(0, Side.SELL, "1", "99950")], leg_id="y", decision="100000")
    hedge = HedgeReport(venue="h", instruments=["BTCUSDT"], orders=3, pnl_usd=-40.0)
    tca = basket_tca(basket([long, short], hedge=hedge))
    assert tca["gross_notional_usd"] == 200_000.0
    assert tca["shortfall_usd"] == pytest.approx(150.0)
    assert tca["shortfall_bps"] == pytest.approx(7.5)
    assert tca["hedge_cost_usd"] == 40.0
    assert tca["hedge_cost_bps"] == pytest.approx(2.0)
    assert tca["total_cost_usd"] == pytest.approx(190.0)
    assert tca["total_cost_bps"] == pytest.approx(9.5)
    assert tca["hedge_orders"] == 3


def test_an_empty_or_refused_basket_gives_a_valid_document() -> None:
    empty = basket_tca(basket([]))
    assert empty["shortfall_usd"] == 0.0
    assert empty["gross_notional_usd"] == 0.0
    assert empty["legging_risk_usd"] == 0.0
    assert empty["legs"] == []
    assert empty["hedge_reaction_ns"] == {"p50": None, "p99": None, "n": 0}
    refused = basket([leg(decision=None), leg(leg_id="b", decision=None)])
    tca = basket_tca(refused)
    assert tca["unpriced_legs"] == ["a", "b"]
    assert [row["shortfall"]["total_usd"] for row in tca["legs"]] == [0.0, 0.0]
    assert tca["legs"][0]["shortfall"]["total_bps"] is None
    # It is JSON and travels in the report.
    refused.tca = tca
    assert load_report(refused.to_json()).tca == tca


# -- the path: legging risk, skew, peaks, hedge activations --------------------------------------


def test_legging_risk_matches_a_monte_carlo_of_the_same_path() -> None:
    insts = [SYNTHETIC_INSTRUMENTS[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    cov = RiskModel.from_calibration().instrument_covariance(insts) / SECONDS_PER_YEAR
    rng = np.random.default_rng(20240611)
    k = 50
    dt = rng.uniform(0.2, 30.0, size=k)  # seconds each imbalance is held
    u = rng.normal(0.0, 50_000.0, size=(k, 3))
    t = np.concatenate([[0.0], np.cumsum(dt)])
    pts = [point(float(t[i]), [0.0] * 3, list(u[i])) for i in range(k)]
    pts.append(point(float(t[k]), [0.0] * 3, [1e9, 1e9, 1e9]))  # the end: held for no time
    random.Random(1).shuffle(pts)  # the order in the report does not matter, the times do
    timeline = Timeline(
        legs=["btc", "eth", "sol"], band=None, covariance_per_s=cov.tolist(), points=pts
    )

    # Exact ns times, as the timeline holds them.
    dt_ns = np.diff([round(x * SECOND) for x in t]) / SECOND
    chol = np.linalg.cholesky(cov)
    paths = 20_000
    z = rng.standard_normal(size=(paths, k, 3))
    r = np.einsum("ij,pkj->pki", chol, z) * np.sqrt(dt_ns)[None, :, None]
    pnl = np.einsum("ki,pki->p", u, r)
    risk = legging_risk_usd(timeline)
    assert risk is not None and risk > 0
    assert abs(pnl.std(ddof=1) / risk - 1) < 0.03
    assert basket_tca(basket([], timeline=timeline))["legging_risk_usd"] == risk


def test_path_figures_on_a_hand_made_timeline() -> None:
    band = 0.125
    betas = [1.0, 1.2, 0.8]
    # Var per second of each leg's return, uncorrelated so the integral is done by hand.
    var = [1e-8, 4e-8, 9e-8]
    pts = [
        point(0.0, [0, 0, 0], [0, 0, 0], hedge_usd=0.0),
        point(1.0, [0.25, 0.0625, 0.125], [15_000, 0, -5_000], hedge_usd=0.5),
        point(3.0, [0.375, 0.25, 0.3125], [5_000, 0, -3_000], hedge_usd=12_000),  # on: 1
        point(3.5, [0.5, 0.375, 0.75], [20_000, 0, -25_000], hedge_usd=0.25),
        point(6.0, [0.875, 0.8125, 0.875], [5_000, 2_000, -5_000], hedge_usd=8_000),  # on: 2
        point(10.0, [1, 1, 1], [0, 0, 0], hedge_usd=1.0),  # still on: no edge
        point(11.0, [1, 1, 1], [0, 0, 0], hedge_usd=0.0),
        point(12.0, [1, 1, 1], [0, 0, 0], hedge_usd=1.0),  # on again, at exactly $1: 3
    ]
    timeline = Timeline(
        legs=["a", "b", "c"],
        band=band,
        betas=betas,
        covariance_per_s=np.diag(var).tolist(),
        points=list(reversed(pts)),
    )
    tca = basket_tca(basket([], timeline=timeline))
    # Skews: 0, 0.1875, 0.125 (= band: inside), 0.375, 0.0625, 0, 0, 0.
    assert tca["max_completion_skew"] == 0.375
    # Over the band: 0.1875 held 1 → 3 s, 0.375 held 3.5 → 6 s.
    assert tca["time_outside_band_s"] == pytest.approx(2.0 + 2.5)
    # Gross Σ|u|: 20k, 8k, 45k, 12k; net |Σu|: 10k, 2k, 5k, 2k; beta: 11k, 2.6k, 0, 3.4k.
    assert tca["peak_imbalance_usd"] == 45_000.0
    assert tca["peak_net_imbalance_usd"] == 10_000.0
    assert tca["peak_beta_imbalance_usd"] == pytest.approx(11_000.0)
    assert tca["hedge_activations"] == 3
    # ∫uᵀΣu dt: 2 s·(2.25 + 2.25) + 0.5 s·(0.25 + 0.81) + 2.5 s·(4 + 56.25) + 4 s·(0.25 + 0.16
    # + 2.25); the last point is where the path ends.
    integral = 2 * 4.5 + 0.5 * 1.06 + 2.5 * 60.25 + 4 * 2.66
    assert tca["legging_risk_usd"] == pytest.approx(math.sqrt(integral))
    assert tca["launch_skew_ns"] == 1_500
    assert tca["raw_ack_skew_ns"] == 40_000


def test_without_a_band_or_betas_those_figures_are_not_given() -> None:
    timeline = Timeline(
        legs=["a", "b"],
        band=None,
        covariance_per_s=[[1e-8, 0.0], [0.0, 1e-8]],
        points=[point(0, [0.5, 0.0], [100.0, 0.0]), point(1, [1.0, 1.0], [0.0, 0.0])],
    )
    tca = basket_tca(basket([], timeline=timeline))
    assert tca["time_outside_band_s"] is None
    assert tca["peak_beta_imbalance_usd"] is None
    assert tca["max_completion_skew"] == 0.5
    one_point = msgspec.structs.replace(timeline, points=timeline.points[:1])
    assert legging_risk_usd(one_point) == 0.0
    assert legging_risk_usd(None) == 0.0


def test_fill_path_risk_dates_a_resting_orders_fills_from_when_they_happened() -> None:
    # Leg a's post-only quote is accepted at 0 s and fills at 2 s and 3 s (half each); leg b
    # follows each fill with an IOC 0.5 s later. Naked: 0.5 ETH of a for 0.5 s, twice. Dated
    # from the quote's accept instead, a would have been naked from 0 s.
    quote = child(0, Side.BUY, "1", "100", accept_ns=0)
    quote.fill_marks = [(2 * SECOND, D("0.5")), (3 * SECOND, D("1"))]
    b = [
        child(0, Side.SELL, "0.5", "100", accept_ns=2_500_000_000),
        child(1, Side.SELL, "0.5", "100", accept_ns=3_500_000_000),
    ]
    var = 1e-6  # per second, uncorrelated
    report = basket(
        [leg(Side.BUY, "1", [quote], leg_id="a"), leg(Side.SELL, "1", b, leg_id="b")],
        timeline=Timeline(
            legs=["a", "b"],
            band=0.05,
            covariance_per_s=[[var, 0.0], [0.0, var]],
            points=[point(0, [0.0, 0.0], [0.0, 0.0]), point(4, [1.0, 1.0], [0.0, 0.0])],
        ),
    )
    path = fill_path_risk(report)
    assert path["legging_risk_usd"] == pytest.approx(math.sqrt(2 * 50.0**2 * var * 0.5))
    assert path["peak_imbalance_usd"] == pytest.approx(50.0)
    # What no mark dates goes by the accept time, as an IOC's fill does: half of a from 0 s,
    # all of it from 2 s until b's first IOC, half again until its second.
    quote.fill_marks = [(2 * SECOND, D("0.5"))]
    undated = fill_path_risk(report)["legging_risk_usd"]
    assert undated == pytest.approx(math.sqrt(var * (50.0**2 * 2 + 100.0**2 * 0.5 + 50.0**2)))
    # A mark past what the order filled (a report that overstated it) counts only the fill.
    quote.fill_marks = [(2 * SECOND, D("0.5")), (3 * SECOND, D("1.5"))]
    assert fill_path_risk(report) == path


# -- latencies ----------------------------------------------------------------------------------


def test_percentiles_interpolate_linearly_and_round_to_whole_ns() -> None:
    # Linear interpolation: p50 between 20 and 30; p99 at rank 0.99 × 3 = 2.97 → 30 + 9.7.
    assert percentiles([40, 10, 30, 20]) == {"p50": 25, "p99": 40, "n": 4}
    assert percentiles([0, 1_000]) == {"p50": 500, "p99": 990, "n": 2}
    assert percentiles([7]) == {"p50": 7, "p99": 7, "n": 1}
    assert percentiles([]) == {"p50": None, "p99": None, "n": 0}


def test_ack_latency_is_grouped_by_venue_and_kind_and_accept_latency_by_venue() -> None:
    def sent(n: int, side: Side, t0: int, **kw: object) -> ChildOrder:
        return child(n, side, "1", "100", sent_ns=t0, **kw)  # type: ignore[arg-type]

    binance = [
        sent(0, Side.BUY, 1_000, ack_ns=1_100, ack_kind=AckKind.ACCEPTED, accept_ns=1_080),
        sent(1, Side.BUY, 2_000, ack_ns=2_200, ack_kind=AckKind.ACCEPTED, accept_ns=2_150),
        sent(2, Side.BUY, 3_000, ack_ns=3_300, ack_kind=AckKind.ACCEPTED, accept_ns=3_090),
        sent(3, Side.BUY, 4_000, ack_ns=4_400, ack_kind=AckKind.ACCEPTED),  # no accept stamp
        sent(4, Side.BUY, 5_000, ack_ns=5_050, ack_kind=AckKind.RECEIPT, accept_ns=5_310),
        sent(5, Side.BUY, 6_000, ack_ns=6_900),  # refused: an error, not an ack
    ]
    deribit = [
        sent(0, Side.SELL, 0, ack_ns=1_000, ack_kind=AckKind.RESULT, accept_ns=600),
        sent(1, Side.SELL, 0, ack_ns=3_000, ack_kind=AckKind.RESULT, accept_ns=2_600),
    ]
    legs = [
        leg(Side.BUY, "6", binance, leg_id="a", venue="binance"),
        leg(Side.SELL, "2", deribit, leg_id="b", venue="deribit"),
    ]
    hedge = HedgeReport(venue="h", instruments=[], reaction_ns=[300, 100, 200])
    tca = basket_tca(basket(legs, hedge=hedge))
    assert tca["ack_latency_ns"] == {
        # 100, 200, 300, 400: p99 at rank 2.97 → 300 + 97.
        "binance": {
            "ACCEPTED": {"p50": 250, "p99": 397, "n": 4},
            "RECEIPT": {"p50": 50, "p99": 50, "n": 1},
        },
        "deribit": {"RESULT": {"p50": 2_000, "p99": 2_980, "n": 2}},
    }
    assert tca["accept_latency_ns"] == {
        # 80, 150, 90, 310 → sorted 80, 90, 150, 310: p99 at 150 + 0.97 × 160.
        "binance": {"p50": 120, "p99": 305, "n": 4},
        "deribit": {"p50": 1_600, "p99": 2_580, "n": 2},
    }
    assert tca["hedge_reaction_ns"] == {"p50": 200, "p99": 298, "n": 3}
