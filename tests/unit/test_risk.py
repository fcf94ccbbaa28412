"""The risk model: exposures, dollar risk, imbalance against the in-step basket, legging risk."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import numpy as np
import pytest

from actors.messages import LegProgress, LegStatus
from actors.risk import (
    NS_PER_YEAR,
    SECONDS_PER_DAY,
    LeggingRiskIntegrator,
    RiskModel,
    imbalance_usd,
    in_step_reference,
)
from venues.model import Side
from venues.sim.calibration import SECONDS_PER_YEAR, SYNTHETIC_INSTRUMENTS

BTC, ETH, SOL = "BTCUSDT", "ETHUSDT", "SOLUSDT"
INST = SYNTHETIC_INSTRUMENTS
RISK = RiskModel.from_calibration()


def leg(leg_id: str, side: Side, target: str, filled: str, seq: int = 1) -> LegProgress:
    return LegProgress(
        basket_id="b1",
        leg_id=leg_id,
        seq=seq,
        side=side,
        target_qty=Decimal(target),
        filled_qty=Decimal(filled),
        avg_price=None,
        open_qty=Decimal(0),
        status=LegStatus.WORKING,
        ts_ns=0,
    )


def test_calibration_gives_the_design_vols_and_correlations() -> None:
    assert RISK.factors == ["BTC", "ETH", "SOL"]
    vols = np.sqrt(np.diag(RISK.covariance))
    assert vols == pytest.approx([0.50, 0.65, 0.80])
    assert RISK.covariance[0, 1] / (vols[0] * vols[1]) == pytest.approx(0.8)


def test_an_instruments_volatility_comes_through_its_betas() -> None:
    # BTC and ETH load one factor each: their vols are the factors'; no betas, no vol.
    for symbol in (BTC, ETH):
        (factor,) = INST[symbol].betas
        i = RISK.factors.index(factor)
        assert RISK.volatility(INST[symbol]) == pytest.approx(math.sqrt(RISK.covariance[i, i]))
    half = msgspec.structs.replace(INST[ETH], betas={f: b / 2 for f, b in INST[ETH].betas.items()})
    assert RISK.volatility(half) == pytest.approx(RISK.volatility(INST[ETH]) / 2)
    assert RISK.volatility(msgspec.structs.replace(INST[ETH], betas={})) == 0.0


def test_exposures_map_dollars_through_betas() -> None:
    e = RISK.exposures({"IDXUSDT": 1_000.0, "STETHUSDT": 100.0, BTC: -200.0}, INST)
    assert e == pytest.approx([500.0 - 200.0, 300.0 + 100.0, 200.0])
    assert RISK.vector({"ETH": 5.0}) == pytest.approx([0.0, 5.0, 0.0])
    assert RISK.as_mapping(e)["SOL"] == pytest.approx(200.0)


def test_unknown_symbol_and_unknown_factor_are_refused() -> None:
    with pytest.raises(ValueError, match="DOGEUSDT"):
        RISK.exposures({"DOGEUSDT": 1.0}, INST)
    doge = msgspec.structs.replace(INST[BTC], symbol="DOGEUSDT", betas={"DOGE": 1.0})
    with pytest.raises(ValueError, match="DOGE"):
        RISK.betas([doge])
    with pytest.raises(ValueError, match="XRP"):
        RISK.vector({"XRP": 1.0})


def test_bad_covariance_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        RiskModel(["A", "B"], np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        RiskModel(["A", "B"], np.array([[1.0, 0.5], [0.1, 1.0]]))
    with pytest.raises(ValueError, match="semi-definite"):
        RiskModel(["A", "B"], np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_dollar_risk_scales_with_the_square_root_of_time() -> None:
    e = {"BTC": 1_000_000.0}
    assert RISK.dollar_risk(e, SECONDS_PER_YEAR) == pytest.approx(500_000.0)
    assert RISK.dollar_risk(e) == pytest.approx(500_000.0 / math.sqrt(365.0))
    assert RISK.dollar_risk(e, SECONDS_PER_DAY / 4) == pytest.approx(RISK.dollar_risk(e) / 2)


def test_market_beta_of_eth_is_the_hedge_ratio() -> None:
    betas = RISK.market_betas([INST[BTC], INST[ETH], INST["IDXUSDT"]])
    idx = (0.5 * 0.25 + 0.3 * 0.8 * 0.65 * 0.5 + 0.2 * 0.7 * 0.8 * 0.5) / 0.25
    assert betas == pytest.approx([1.0, 0.8 * 0.65 / 0.5, idx])


# -- imbalance ------------------------------------------------------------------------------


def test_a_basket_in_step_has_no_imbalance() -> None:
    legs = [
        leg("a", Side.BUY, "2", "0.8"),
        leg("b", Side.SELL, "30", "12"),
        leg("c", Side.BUY, "1000", "400"),
    ]
    prices = {"a": 60_000.0, "b": 2_600.0, "c": 150.0}
    assert in_step_reference(legs) == pytest.approx(0.4)
    assert imbalance_usd(legs, prices) == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.0})
    instruments = {"a": INST[BTC], "b": INST[ETH], "c": INST[SOL]}
    assert RISK.imbalance_risk_usd(legs, prices, instruments) == pytest.approx(0.0)


def test_leaders_carry_the_imbalance_with_their_own_sign() -> None:
    # Long BTC 60 % filled, short ETH 40 % filled: the in-step basket is 40 % of each.
    legs = [leg("long", Side.BUY, "1", "0.6"), leg("short", Side.SELL, "20", "8")]
    prices = {"long": 60_000.0, "short": 2_600.0}
    u = imbalance_usd(legs, prices)
    assert u == pytest.approx({"long": 0.2 * 60_000.0, "short": 0.0})
    # The short side ahead instead: a negative dollar imbalance on it.
    legs = [leg("long", Side.BUY, "1", "0.4"), leg("short", Side.SELL, "20", "12")]
    assert imbalance_usd(legs, prices) == pytest.approx({"long": 0.0, "short": -4 * 2_600.0})


def test_a_one_legged_pair_is_a_whole_leg_of_imbalance() -> None:
    legs = [leg("long", Side.BUY, "1", "1"), leg("short", Side.SELL, "20", "0")]
    u = imbalance_usd(legs, {"long": 60_000.0, "short": 2_600.0})
    assert u == pytest.approx({"long": 60_000.0, "short": 0.0})


def test_an_explicit_reference_measures_against_it() -> None:
    legs = [leg("a", Side.BUY, "10", "6"), leg("b", Side.BUY, "10", "4")]
    u = imbalance_usd(legs, {"a": 1.0, "b": 1.0}, in_step_progress=0.5)
    assert u == pytest.approx({"a": 1.0, "b": -1.0})


def test_a_missing_price_is_named() -> None:
    with pytest.raises(ValueError, match="'b'"):
        imbalance_usd([leg("a", Side.BUY, "1", "0"), leg("b", Side.BUY, "1", "0")], {"a": 1.0})


def test_imbalance_risk_is_sqrt_u_sigma_u_with_beta_mapped_covariance() -> None:
    legs = [
        leg("btc", Side.BUY, "1", "0.5"),
        leg("idx", Side.SELL, "100", "90"),
        leg("steth", Side.BUY, "10", "2"),
    ]
    prices = {"btc": 60_000.0, "idx": 1_000.0, "steth": 2_590.0}
    instruments = {"btc": INST[BTC], "idx": INST["IDXUSDT"], "steth": INST["STETHUSDT"]}
    u = imbalance_usd(legs, prices)
    vec = np.array([u["btc"], u["idx"], u["steth"]])
    cov = RISK.instrument_covariance([INST[BTC], INST["IDXUSDT"], INST["STETHUSDT"]])
    expected = math.sqrt(vec @ cov @ vec / 365.0)
    assert RISK.imbalance_risk_usd(legs, prices, instruments) == pytest.approx(expected)
    assert expected > 0


# -- legging risk ---------------------------------------------------------------------------


def test_constant_imbalance_held_for_t_has_the_analytic_legging_risk() -> None:
    instruments = {"eth": INST[ETH], "btc": INST[BTC]}
    integ = LeggingRiskIntegrator(RISK, instruments)
    u = {"eth": 100_000.0, "btc": -40_000.0}
    t0, hold_ns = 5_000, 90 * 1_000_000_000
    integ.update(u, t0)
    vec = np.array([100_000.0, -40_000.0])
    cov = RISK.instrument_covariance([INST[ETH], INST[BTC]])
    expected = math.sqrt(vec @ cov @ vec * hold_ns / NS_PER_YEAR)
    assert integ.legging_risk_usd(t0 + hold_ns) == pytest.approx(expected)
    integ.update({}, t0 + hold_ns)  # back in step: no more risk accrues
    assert integ.legging_risk_usd(t0 + 10 * hold_ns) == pytest.approx(expected)


def test_legging_variance_adds_over_segments() -> None:
    integ = LeggingRiskIntegrator(RISK, {"eth": INST[ETH]})
    second = 1_000_000_000
    integ.update({"eth": 10_000.0}, 0)
    integ.update({"eth": 20_000.0}, 4 * second)
    integ.update({"eth": 0.0}, 5 * second)
    rate = 0.65**2 / NS_PER_YEAR
    expected = rate * (10_000.0**2 * 4 * second + 20_000.0**2 * second)
    assert integ.variance_usd2(100 * second) == pytest.approx(expected)
    # A clock that steps back adds no time and loses none.
    integ.update({"eth": 50_000.0}, 3 * second)
    assert integ.variance_usd2(5 * second) == pytest.approx(expected)


def test_peaks_are_gross_dollars_and_net_market_beta() -> None:
    integ = LeggingRiskIntegrator(RISK, {"eth": INST[ETH], "btc": INST[BTC]})
    integ.update({"eth": 100_000.0, "btc": -104_000.0}, 0)  # beta-neutral, $204k out of step
    integ.update({"eth": 50_000.0}, 10)
    assert integ.peak_dollar_imbalance_usd == pytest.approx(204_000.0)
    assert integ.peak_beta_imbalance_usd == pytest.approx(52_000.0)
    with pytest.raises(ValueError, match="sol"):
        integ.update({"sol": 1.0}, 20)


def test_observe_computes_and_records_the_imbalance() -> None:
    integ = LeggingRiskIntegrator(RISK, {"a": INST[BTC], "b": INST[ETH]})
    legs = [leg("a", Side.BUY, "1", "0.5"), leg("b", Side.SELL, "10", "2")]
    u = integ.observe(legs, {"a": 60_000.0, "b": 2_600.0}, 0)
    assert u == pytest.approx({"a": 0.3 * 60_000.0, "b": 0.0})
    assert integ.peak_dollar_imbalance_usd == pytest.approx(18_000.0)
