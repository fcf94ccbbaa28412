"""Hedge sizing against the closed form, netting across baskets, hysteresis and attribution."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.hedge import HedgeBook, HedgeOrder, HedgeReason, HedgeSizer
from actors.risk import RiskModel
from venues.model import Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

INST = SYNTHETIC_INSTRUMENTS
RISK = RiskModel.from_calibration()
BTC_HEDGE = HedgeSizer(RISK, [INST["BTCUSDT"]])
PERPS = HedgeSizer(RISK, [INST["BTCUSDT"], INST["ETHUSDT"], INST["SOLUSDT"]])
RHO, SIGMA_BTC, SIGMA_ETH = 0.8, 0.50, 0.65
SECOND = 1_000_000_000


def eth(usd: float) -> np.ndarray:
    return RISK.vector({"ETH": usd})


# -- sizing -----------------------------------------------------------------------------------


def test_one_instrument_matches_the_closed_form() -> None:
    e = eth(1_000_000.0)
    h = BTC_HEDGE.optimal(e)
    assert h == pytest.approx([-RHO * SIGMA_ETH / SIGMA_BTC * 1_000_000.0])
    unhedged = RISK.variance(e)
    assert BTC_HEDGE.residual_variance(e, h) == pytest.approx((1 - RHO**2) * unhedged)
    assert BTC_HEDGE.residual_variance(e, np.zeros(1)) == pytest.approx(unhedged)


def test_an_exposure_the_hedges_span_is_hedged_away() -> None:
    e = RISK.vector({"BTC": 300_000.0, "ETH": -120_000.0, "SOL": 50_000.0})
    h = PERPS.optimal(e)
    assert h == pytest.approx([-300_000.0, 120_000.0, -50_000.0])
    assert PERPS.residual_variance(e, h) == pytest.approx(0.0, abs=1e-3)
    # The index perp is spanned by its constituents: hedged with them at its weights.
    e_idx = RISK.exposures({"IDXUSDT": 1_000_000.0}, INST)
    assert PERPS.optimal(e_idx) == pytest.approx([-500_000.0, -300_000.0, -200_000.0])


def test_dependent_hedge_instruments_fall_back_to_least_squares() -> None:
    # Index perp next to all its constituents: BᵀΣB is singular.
    sizer = HedgeSizer(RISK, [*(INST[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "IDXUSDT"))])
    assert not sizer.full_rank
    e = RISK.vector({"BTC": 300_000.0, "ETH": -120_000.0, "SOL": 50_000.0})
    h = sizer.optimal(e)
    assert np.all(np.isfinite(h))
    assert sizer.residual_variance(e, h) == pytest.approx(0.0, abs=1e-3)
    # The same BTC perp on two venues: the hedge splits evenly (least gross notional).
    other = msgspec.structs.replace(INST["BTCUSDT"], symbol="BTCUSDT_B")
    twin = HedgeSizer(RISK, [INST["BTCUSDT"], other])
    assert twin.optimal(eth(1_000_000.0)) == pytest.approx([-520_000.0, -520_000.0])


def test_the_sizer_refuses_no_instruments_and_duplicates() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HedgeSizer(RISK, [])
    with pytest.raises(ValueError, match="duplicate"):
        HedgeSizer(RISK, [INST["BTCUSDT"], INST["BTCUSDT"]])


def test_beta_neutral_synthetic_eth_basket_has_less_risk_than_unhedged() -> None:
    # Long $1M ETH perp and $1M stETH; the BTC short sized by the hedge ratio.
    legs = {"ETHUSDT": 1_000_000.0, "STETHUSDT": 1_000_000.0}
    unhedged = RISK.exposures(legs, INST)
    (btc,) = BTC_HEDGE.optimal(unhedged)
    assert btc == pytest.approx(-2 * 1.04 * 1_000_000.0)
    basket = RISK.exposures({**legs, "BTCUSDT": btc}, INST)
    assert RISK.dollar_risk(basket) < RISK.dollar_risk(unhedged)
    assert RISK.dollar_risk(basket) / RISK.dollar_risk(unhedged) == pytest.approx(
        math.sqrt(1 - RHO**2)
    )
    insts = [INST[s] for s in ("ETHUSDT", "STETHUSDT", "BTCUSDT")]
    market = RISK.market_betas(insts) @ np.array([1_000_000.0, 1_000_000.0, btc])
    assert market == pytest.approx(0.0, abs=1e-6)


hedge_sets = st.sets(st.sampled_from(sorted(INST)), min_size=1).map(
    lambda symbols: HedgeSizer(RISK, [INST[s] for s in sorted(symbols)])
)
exposures = st.lists(
    st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False), min_size=3, max_size=3
).map(np.array)


@settings(max_examples=200, deadline=None)
@given(sizer=hedge_sets, e=exposures, k=st.floats(-100.0, 100.0, allow_nan=False))
def test_the_optimal_hedge_never_adds_risk_and_scales_linearly(
    sizer: HedgeSizer, e: np.ndarray, k: float
) -> None:
    h = sizer.optimal(e)
    unhedged = RISK.variance(e)
    assert sizer.residual_variance(e, h) <= unhedged * (1 + 1e-9) + 1e-6
    scale = 1.0 + float(np.abs(h).max())
    np.testing.assert_allclose(
        sizer.optimal(k * e), k * h, rtol=1e-9, atol=1e-9 * abs(k) * scale + 1e-12
    )


# -- netting, hysteresis, activation -----------------------------------------------------------


def test_opposite_imbalances_net_to_no_hedge() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(500_000.0), 0)
    book.report("b", 1, eth(-500_000.0), 0)
    assert book.netted() == pytest.approx([0.0, 0.0, 0.0])
    assert book.target() == {"BTCUSDT": 0.0}
    assert book.orders({}, 1, activation_usd=0.0, hysteresis_usd=0.0) == []


def test_same_sign_imbalances_are_hedged_on_their_sum() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, {"ETH": 300_000.0}, 0)
    book.report("b", 1, {"ETH": 200_000.0}, 0)
    assert book.target()["BTCUSDT"] == pytest.approx(-1.04 * 500_000.0)
    (order,) = book.orders({}, 7, activation_usd=0.0, hysteresis_usd=1_000.0)
    assert order.symbol == "BTCUSDT"
    assert order.side is Side.SELL
    assert order.notional_usd == pytest.approx(520_000.0)
    assert order.reason is HedgeReason.OPEN
    assert order.ts_ns == 7
    assert msgspec.json.decode(msgspec.json.encode(order), type=HedgeOrder) == order


def test_hysteresis_holds_small_changes_and_trades_large_ones() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(500_000.0), 0)
    held = {"BTCUSDT": -520_000.0}
    book.report("a", 2, eth(510_000.0), 1)  # target moves by $10.4k
    assert book.orders(held, 1, activation_usd=0.0, hysteresis_usd=25_000.0) == []
    book.report("a", 3, eth(600_000.0), 2)  # target moves by $104k
    (order,) = book.orders(held, 2, activation_usd=0.0, hysteresis_usd=25_000.0)
    assert order.side is Side.SELL
    assert order.notional_usd == pytest.approx(104_000.0)
    assert order.target_usd == pytest.approx(-624_000.0)
    assert order.reason is HedgeReason.ADJUST


def test_no_hedge_below_the_activation_threshold() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    daily = 100_000.0 * SIGMA_ETH / math.sqrt(365.0)  # ≈ $3.4k
    assert book.netted_risk_usd() == pytest.approx(daily)
    assert book.orders({}, 1, activation_usd=5_000.0, hysteresis_usd=1_000.0) == []
    (order,) = book.orders({}, 1, activation_usd=3_000.0, hysteresis_usd=1_000.0)
    assert order.reason is HedgeReason.OPEN
    # Risk falls below the threshold: the hedge unwinds, once the unwind beats the hysteresis.
    book.report("a", 2, eth(50_000.0), 2)
    (unwind,) = book.orders({"BTCUSDT": -104_000.0}, 3, 3_000.0, 1_000.0)
    assert unwind.reason is HedgeReason.UNWIND
    assert unwind.side is Side.BUY
    assert unwind.notional_usd == pytest.approx(104_000.0)
    assert book.orders({"BTCUSDT": -800.0}, 3, 3_000.0, 1_000.0) == []


def test_with_no_basket_left_the_hedge_goes_flat_whatever_the_hysteresis() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    book.close("a", 1)
    (order,) = book.orders({"BTCUSDT": -800.0, "XRPUSDT": 5.0}, 2, 0.0, 1_000.0)
    assert order.reason is HedgeReason.UNWIND
    assert order.notional_usd == pytest.approx(800.0)
    assert book.orders({}, 3, 0.0, 1_000.0) == []


# -- monotonic snapshots -----------------------------------------------------------------------


def test_an_old_snapshot_is_ignored_and_a_duplicate_is_harmless() -> None:
    book = HedgeBook(BTC_HEDGE)
    assert book.report("a", 2, eth(200_000.0), 0)
    assert not book.report("a", 1, eth(900_000.0), 1)  # reordered: older
    assert not book.report("a", 2, eth(200_000.0), 2)  # repeated
    assert book.netted() == pytest.approx(eth(200_000.0))


def test_zero_exposure_or_close_removes_a_basket() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(200_000.0), 0)
    book.report("b", 1, eth(100_000.0), 0)
    assert book.report("a", 2, eth(0.0), 1)
    assert set(book.baskets) == {"b"}
    assert not book.report("a", 1, eth(200_000.0), 2)  # a late older snapshot stays out
    assert book.report("a", 3, eth(50_000.0), 3)  # a newer one brings it back
    book.close("b", 4)
    assert not book.report("b", 9, eth(100_000.0), 5)  # closed for good
    assert set(book.baskets) == {"a"}
    assert book.netted() == pytest.approx(eth(50_000.0))


# -- attribution -------------------------------------------------------------------------------


def test_attribution_splits_identical_baskets_evenly() -> None:
    split = BTC_HEDGE.attribute(-1_000.0, {"a": eth(100_000.0), "b": eth(100_000.0)})
    assert split == pytest.approx({"a": -500.0, "b": -500.0})


def test_a_basket_without_exposure_gets_nothing() -> None:
    split = PERPS.attribute(600.0, {"a": RISK.vector({"BTC": 1e5, "SOL": -3e4}), "b": eth(0.0)})
    assert split == pytest.approx({"a": 600.0, "b": 0.0})


def test_opposite_baskets_are_charged_what_their_own_hedge_would_make() -> None:
    # One hedge instrument: the hedge's P&L is its notional times BTC's return.
    exposures = {"a": eth(1_000_000.0), "b": eth(-400_000.0)}
    shares = BTC_HEDGE.shares(exposures)
    assert shares == pytest.approx({"a": 10 / 6, "b": -4 / 6})
    btc_return = 0.01
    pnl = float(BTC_HEDGE.optimal(sum(exposures.values()))[0]) * btc_return
    split = BTC_HEDGE.attribute(pnl, exposures)
    assert sum(split.values()) == pytest.approx(pnl)
    for b, e in exposures.items():
        assert split[b] == pytest.approx(float(BTC_HEDGE.optimal(e)[0]) * btc_return)


def test_attribution_over_several_factors_sums_to_the_pnl() -> None:
    exposures = {
        "a": RISK.vector({"BTC": 2e5, "ETH": 1e5}),
        "b": RISK.vector({"ETH": -3e5, "SOL": 4e4}),
        "c": RISK.exposures({"IDXUSDT": 5e5}, INST),
    }
    split = BTC_HEDGE.attribute(-1234.5, exposures)
    assert sum(split.values()) == pytest.approx(-1234.5)
    assert BTC_HEDGE.attribute(10.0, {"a": eth(1e5), "b": eth(-1e5)}) == {}


def test_accrued_pnl_follows_the_shares_in_force_over_time() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(100_000.0), 0)
    book.report("b", 1, eth(100_000.0), 10 * SECOND)  # a alone for 10 s, then half each
    split = book.accrue(-400.0, 20 * SECOND)
    assert split == pytest.approx({"a": -300.0, "b": -100.0})
    split = book.accrue(-100.0, 30 * SECOND)
    assert split == pytest.approx({"a": -50.0, "b": -50.0})
    assert book.attributed_usd == pytest.approx({"a": -350.0, "b": -150.0})


def test_pnl_after_the_baskets_left_goes_to_those_the_hedge_last_served() -> None:
    book = HedgeBook(BTC_HEDGE)
    assert book.accrue(5.0, 0) == {}
    assert book.unattributed_usd == pytest.approx(5.0)
    book.report("a", 1, eth(300_000.0), 0)
    book.report("b", 1, eth(100_000.0), 0)
    book.accrue(0.0, SECOND)
    book.close("a", SECOND)
    book.close("b", SECOND)
    split = book.accrue(-8.0, 2 * SECOND)  # the unwind's fee
    assert split == pytest.approx({"a": -6.0, "b": -2.0})
    # Zero elapsed time: the shares in force now decide.
    book.report("c", 1, eth(100_000.0), 3 * SECOND)
    assert book.accrue(1.0, 3 * SECOND) == pytest.approx({"c": 1.0})


def test_baskets_leaving_one_by_one_leave_the_tail_to_the_last() -> None:
    book = HedgeBook(BTC_HEDGE)
    book.report("a", 1, eth(300_000.0), 0)
    book.report("b", 1, eth(100_000.0), 0)
    book.close("a", SECOND)
    book.accrue(0.0, 2 * SECOND)
    book.close("b", 2 * SECOND)
    assert book.accrue(-8.0, 3 * SECOND) == pytest.approx({"b": -8.0})
