"""The hedge's decision rule: it trades only when the risk it removes is worth its cost."""

from __future__ import annotations

import itertools
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.hedge import (
    HEDGE_FRACTIONS,
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


def breakeven_s(book: HedgeBook, rule: HedgeRule = RULE, fraction: float = 1.0) -> float:
    """The catch-up time at which `fraction` of the optimal hedge is worth enter_ratio round
    trips."""
    e = book.netted()
    h = BTC_HEDGE.optimal(e) * fraction
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
    full = BTC_HEDGE.optimal(book.netted())[0]
    # Part of the hedge pays sooner than the whole: the risk it removes grows as sqrt(2x − x²)
    # of the whole's, its cost as x.
    t = min(breakeven_s(book, fraction=x) for x in HEDGE_FRACTIONS)
    assert t == breakeven_s(book, fraction=HEDGE_FRACTIONS[0]) < breakeven_s(book)
    assert 10 < t < 3_600  # a $5k imbalance: worth hedging only if it lasts a while
    assert decide(book, {}, SECOND, 0.9 * t) == []
    (order,) = decide(book, {}, SECOND, 1.1 * t)
    assert order.reason is HedgeReason.OPEN
    assert order.target_usd == pytest.approx(HEDGE_FRACTIONS[0] * full)
    # Over a long enough time the whole hedge earns the most.
    (order,) = decide(book, {}, SECOND, 100 * breakeven_s(book))
    assert order.target_usd == pytest.approx(full)


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

    def worth(h: np.ndarray) -> tuple[float, float]:
        removed = RISK.variance(e) - BTC_HEDGE.residual_variance(e, h)
        return risk_value_usd(price, removed, t_s), costs.round_trip_usd(BTC_HEDGE.as_mapping(h))

    if orders:
        (order,) = orders
        value, cost = worth(np.array([order.target_usd]))
        assert value >= enter * cost * (1 - 1e-9)
    else:
        for x in HEDGE_FRACTIONS:
            value, cost = worth(BTC_HEDGE.optimal(e) * x)
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


def test_a_trades_gain_is_what_it_adds_to_the_value_of_all_that_was_removed() -> None:
    v = RISK.variance(eth(100_000.0))
    day = 86_400.0
    alone = risk_value_usd(1.0, v, day)
    assert RULE.gain_usd({}, {"a": 1.0}, 0.0, v, day) == pytest.approx(alone)
    # Beside a day's worth already removed, the same trade adds sqrt(2) − 1 of it: the
    # report's value, sqrt(∫ ΔV dt), is concave.
    removed = {"a": v * day / SECONDS_PER_YEAR}
    assert RULE.gain_usd(removed, {"a": 1.0}, 0.0, v, day) == pytest.approx(
        (math.sqrt(2) - 1) * alone
    )
    # Gains of successive moves add up to the gain of the whole move...
    half = RULE.gain_usd(removed, {"a": 1.0}, 0.0, v / 2, day)
    rest = RULE.gain_usd(removed, {"a": 1.0}, v / 2, v, day)
    assert half + rest == pytest.approx(RULE.gain_usd(removed, {"a": 1.0}, 0.0, v, day))
    # ...and each basket's is its share's, beside what it had removed.
    both = RULE.gain_usd({"a": 0.0, "b": 0.0}, {"a": 0.5, "b": 0.5}, 0.0, v, day)
    assert both == pytest.approx(2 * risk_value_usd(1.0, v / 2, day))


def test_a_resize_that_pays_alone_is_not_made_when_beside_what_was_removed_it_does_not() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(5_000.0), 0)
    t = 1.5 * breakeven_s(book, fraction=HEDGE_FRACTIONS[0])
    (opened,) = decide(book, {}, SECOND, t)
    held = {"BTCUSDT": opened.target_usd}
    book.report("a", 2, eth(10_000.0), 2 * SECOND)
    assert decide(book, held, 20 * SECOND, 4 * t, last_trade_ns=0)  # judged on its own
    # The variance removed since: an hour of the position held.
    e = book.netted()
    rate = RISK.variance(e) - BTC_HEDGE.residual_variance(e, np.array([opened.target_usd]))
    removed = {"a": rate * 3_600 / SECONDS_PER_YEAR}
    assert decide(book, held, 20 * SECOND, 4 * t, last_trade_ns=0, removed_usd2=removed) == []


def test_resting_costs_the_maker_fee_less_half_the_spread_on_what_fills_there() -> None:
    costs = HedgeCosts(
        fee_bps=5.0,
        impact_bps_per_musd=1.0,
        half_spread_bps={"BTCUSDT": 0.5},
        maker_fee_bps=2.0,
        passive_fill=0.75,
    )
    n = 1_000_000.0
    crossed = n * (5.0 + 0.5 + 1.0) / 1e4
    assert costs.one_way_usd("BTCUSDT", n) == pytest.approx(crossed)
    assert costs.one_way_usd("BTCUSDT", -n, passive=True) == pytest.approx(
        0.75 * n * (2.0 - 0.5) / 1e4 + 0.25 * crossed
    )
    # From flat, a move is the round trip; a move back towards flat adds nothing to the exit.
    assert costs.move_usd("BTCUSDT", 0.0, n) == pytest.approx(costs.round_trip_usd({"BTCUSDT": n}))
    assert costs.move_usd("BTCUSDT", n, n / 2) == pytest.approx(costs.one_way_usd("BTCUSDT", n / 2))


def test_a_trade_rests_first_where_time_allows_and_crosses_where_it_does_not() -> None:
    costs = HedgeCosts(fee_bps=5.0, impact_bps_per_musd=1.0, maker_fee_bps=2.0, passive_fill=0.9)
    rule = msgspec.structs.replace(RULE, rest_ns=5 * SECOND)
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    (slow,) = decide(book, {}, SECOND, 3_600.0, rule=rule, costs=costs)
    assert slow.rest_ns == 5 * SECOND
    # Risk priced so high that the rest's five seconds cost more than the fees it saves.
    eager = msgspec.structs.replace(rule, risk_price=1e6)
    (now,) = decide(book, {}, SECOND, 3_600.0, rule=eager, costs=costs)
    assert now.rest_ns == 0
    # A desk that never rests crosses.
    (plain,) = decide(book, {}, SECOND, 3_600.0, costs=costs)
    assert plain.rest_ns == 0
