"""The hedge's decision rule: it trades only when the risk it removes is worth its cost."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.hedge import (
    HedgeBook,
    HedgeCosts,
    HedgeReason,
    HedgeRule,
    HedgeSizer,
    RiskRemoved,
    risk_value_usd,
)
from actors.risk import NS_PER_YEAR, RiskModel
from venues.sim.calibration import SECONDS_PER_YEAR, SYNTHETIC_INSTRUMENTS

RISK = RiskModel.from_calibration()
BTC_HEDGE = HedgeSizer(RISK, [SYNTHETIC_INSTRUMENTS["BTCUSDT"]])
SECOND = 1_000_000_000
COSTS = HedgeCosts(fee_bps=5.0, impact_bps_per_musd=1.0, half_spread_bps={"BTCUSDT": 0.5})
RULE = HedgeRule(risk_price=1.0, enter_ratio=1.0, exit_ratio=0.5, min_hold_ns=10 * SECOND)
KEEP = HedgeRule(risk_price=1.0, enter_ratio=1.0, exit_ratio=0.0, min_hold_ns=10 * SECOND)


def eth(usd: float) -> np.ndarray:
    return RISK.vector({"ETH": usd})


def decide(book: HedgeBook, held: dict[str, float], now: int, t_s: float, **kw: object):
    args: dict[str, object] = {
        "activation_usd": 0.0,
        "hysteresis_usd": 0.0,
        "rule": RULE,
        "costs": COSTS,
        "catchup_s": t_s,
        "last_trade_ns": None,
    }
    args.update(kw)
    return book.decide(held, now, **args)  # type: ignore[arg-type]


def breakeven_s(book: HedgeBook, rule: HedgeRule = RULE) -> float:
    """The catch-up time at which the optimal hedge's value equals enter_ratio round trips."""
    e = book.netted()
    h = BTC_HEDGE.optimal(e)
    removed = RISK.variance(e) - BTC_HEDGE.residual_variance(e, h)
    cost = COSTS.round_trip_usd(BTC_HEDGE.as_mapping(h))
    return SECONDS_PER_YEAR * (rule.enter_ratio * cost / rule.risk_price) ** 2 / removed


def test_the_value_of_removed_risk_is_a_price_times_its_standard_deviation() -> None:
    # $100k of ETH for a day: 1σ = 100k × 0.65 / sqrt(365).
    v = RISK.variance(eth(100_000.0))
    assert risk_value_usd(2.0, v, 86_400.0) == pytest.approx(2 * 100_000 * 0.65 / math.sqrt(365))
    assert risk_value_usd(1.0, -v, 86_400.0) == 0.0
    assert risk_value_usd(1.0, v, 0.0) == 0.0


def test_a_round_trip_costs_fees_half_spread_and_impact_twice() -> None:
    # $1M: 5 bp fee + 0.5 bp half spread + 1 bp impact, in and out.
    assert COSTS.round_trip_usd({"BTCUSDT": -1_000_000.0}) == pytest.approx(2 * 1_000_000 * 6.5e-4)
    assert COSTS.one_way_usd("XRPUSDT", 10_000.0) == pytest.approx(10_000 * (5.0 + 0.01) / 1e4)


def test_an_imbalance_that_clears_soon_is_not_hedged_and_one_that_lasts_is() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(5_000.0), 0)
    t = breakeven_s(book)
    assert 60 < t < 3_600  # a $5k imbalance: worth hedging only if it lasts minutes
    assert decide(book, {}, SECOND, 0.9 * t) == []
    (order,) = decide(book, {}, SECOND, 1.1 * t)
    assert order.reason is HedgeReason.OPEN
    assert order.target_usd == pytest.approx(BTC_HEDGE.optimal(book.netted())[0])


def test_the_activation_still_gates_entry() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    assert decide(book, {}, SECOND, 86_400.0, activation_usd=1e9) == []
    assert decide(book, {}, SECOND, 86_400.0, activation_usd=0.0)


exposures = st.floats(-2e6, 2e6, allow_nan=False).filter(lambda x: abs(x) > 1.0)


@settings(max_examples=200, deadline=None)
@given(
    usd=exposures,
    t_s=st.floats(0.0, 86_400.0 * 7),
    fee=st.floats(0.0, 50.0),
    price=st.floats(0.01, 10.0),
    enter=st.floats(0.1, 5.0),
)
def test_the_hedge_never_enters_when_the_risk_removed_is_worth_less_than_the_cost(
    usd: float, t_s: float, fee: float, price: float, enter: float
) -> None:
    costs = HedgeCosts(fee_bps=fee, impact_bps_per_musd=1.0, half_spread_bps={"BTCUSDT": 0.5})
    rule = HedgeRule(risk_price=price, enter_ratio=enter, exit_ratio=0.0, min_hold_ns=0)
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(usd), 0)
    orders = decide(book, {}, SECOND, t_s, rule=rule, costs=costs)
    e = book.netted()
    h = BTC_HEDGE.optimal(e)
    value = risk_value_usd(price, RISK.variance(e) - BTC_HEDGE.residual_variance(e, h), t_s)
    cost = costs.round_trip_usd(BTC_HEDGE.as_mapping(h))
    if orders:
        assert value >= enter * cost * (1 - 1e-9)
    else:
        assert value <= enter * cost * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(noise=st.lists(st.floats(-0.15, 0.15), min_size=20, max_size=80))
def test_hysteresis_and_the_minimum_hold_stop_flip_flopping_on_a_noisy_exposure(
    noise: list[float],
) -> None:
    """An exposure wandering ±15 % around the entry point, reported every second: the desk
    trades at most once per minimum hold, and never unwinds while the position still
    removes more than `exit_ratio` round trips' worth of risk."""
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 0, eth(5_000.0), 0)
    t = breakeven_s(book)
    held: dict[str, float] = {}
    last: int | None = None
    trades: list[int] = []
    for i, x in enumerate(noise, start=1):
        now = i * SECOND
        book.report("a", i, eth(5_000.0 * (1 + x)), now)
        orders = decide(book, held, now, t, last_trade_ns=last)
        for o in orders:
            held[o.symbol] = o.target_usd
            trades.append(now)
            last = now
            assert o.reason is not HedgeReason.UNWIND  # ±15 % never halves the value
    assert all(b - a >= RULE.min_hold_ns for a, b in itertools.pairwise(trades))
    assert len(trades) <= 1 + len(noise) * SECOND // RULE.min_hold_ns


def test_a_hedge_is_held_its_minimum_then_unwound_when_it_only_adds_risk() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    (opened,) = decide(book, {}, 0, 86_400.0)
    held = {"BTCUSDT": opened.target_usd}
    book.report("a", 2, eth(0.5), SECOND)  # the legs caught up: the hedge is naked risk now
    assert decide(book, held, 5 * SECOND, 86_400.0, last_trade_ns=0) == []
    (unwind,) = decide(book, held, 11 * SECOND, 86_400.0, last_trade_ns=0)
    assert unwind.reason is HedgeReason.UNWIND
    assert unwind.target_usd == 0.0


def test_with_no_basket_left_the_hedge_goes_flat_within_its_hold() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    book.close("a", SECOND)
    (unwind,) = decide(book, {"BTCUSDT": -104_000.0}, SECOND, 86_400.0, last_trade_ns=0)
    assert unwind.reason is HedgeReason.UNWIND


def test_a_resize_is_judged_on_the_move_and_small_ones_wait_for_the_hysteresis() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    (opened,) = decide(book, {}, 0, 86_400.0)
    held = {"BTCUSDT": opened.target_usd}
    book.report("a", 2, eth(101_000.0), SECOND)  # a $1,040 move of the hedge
    assert decide(book, held, 20 * SECOND, 86_400.0, last_trade_ns=0, hysteresis_usd=2_000.0) == []
    book.report("a", 3, eth(200_000.0), 2 * SECOND)  # a $104k move: worth it over a day...
    (resize,) = decide(book, held, 20 * SECOND, 86_400.0, last_trade_ns=0, hysteresis_usd=2_000.0)
    assert resize.reason is HedgeReason.ADJUST
    assert resize.notional_usd == pytest.approx(104_000.0)
    # ...and not over a few seconds, when the position held is still worth keeping.
    assert decide(book, held, 20 * SECOND, 5.0, last_trade_ns=0, rule=KEEP) == []


def test_the_catch_up_time_is_weighted_by_each_baskets_variance() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(300_000.0), 0)
    book.report("b", 1, eth(100_000.0), 0)
    # Variances 9:1.
    assert book.catchup_s({"a": 10.0, "b": 110.0}) == pytest.approx(20.0)
    assert HedgeBook(BTC_HEDGE).catchup_s({"a": 10.0}) == 0.0


def test_the_removed_variance_integrates_over_time_by_share() -> None:
    r = RiskRemoved()
    r.update(4.0e6, {"a": 0.75, "b": 0.25}, 0)
    r.update(0.0, {}, NS_PER_YEAR // 365)  # a day at 4e6 USD² a year
    assert r.total_usd2 == pytest.approx(4.0e6 / 365, rel=1e-9)
    assert r.by_basket["a"] == pytest.approx(0.75 * 4.0e6 / 365, rel=1e-9)
    r.update(-1.0e6, {"a": 1.0}, NS_PER_YEAR // 365)  # a hedge adding risk is charged
    r.accrue(2 * (NS_PER_YEAR // 365))
    assert r.by_basket["a"] == pytest.approx((3.0e6 - 1.0e6) / 365, rel=1e-9)
