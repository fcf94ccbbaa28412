"""The hedge's thresholds against the basket: shares, their checks, and the warnings."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from actors.risk import RiskModel, gross_risk_usd, max_imbalance_risk_usd
from actors.spec import HedgeSpec, validate
from tests.unit.test_spec import INSTRUMENTS, PRICES, basket, error_at

DAY = 1 / math.sqrt(365.0)


def hedge(**changes: Any) -> HedgeSpec:
    return msgspec.structs.replace(HedgeSpec(venue="alpha", instruments=["IDXUSDT"]), **changes)


def resolved(**changes: Any):
    return validate(basket(hedge=hedge(**changes)), INSTRUMENTS, PRICES)


def test_the_gross_risk_adds_each_legs_own_risk() -> None:
    # The default basket: $26k ETH, $5k stETH (both 65 %), $32k BTC (50 %).
    r = resolved()
    notionals = [float(leg.notional_usd or 0) for leg in r.legs]
    expected = DAY * (0.65 * (notionals[0] + notionals[1]) + 0.5 * notionals[2])
    got = gross_risk_usd(RiskModel.from_calibration(), notionals, [x.instrument for x in r.legs])
    assert got == pytest.approx(expected)


def test_the_largest_imbalance_is_a_side_filled_alone() -> None:
    r = resolved()
    signed = [leg.side.sign * float(leg.notional_usd or 0) for leg in r.legs]
    reach = max_imbalance_risk_usd(
        RiskModel.from_calibration(), signed, [x.instrument for x in r.legs]
    )
    # Both ETH longs filled, the BTC short not: $31k of ETH at 65 %.
    assert reach == pytest.approx(DAY * 0.65 * (signed[0] + signed[1]), rel=1e-6)
    assert reach <= gross_risk_usd(
        RiskModel.from_calibration(), signed, [x.instrument for x in r.legs]
    )


def test_a_share_becomes_dollars_against_the_basket() -> None:
    r = resolved(activation_share=0.05, hysteresis_share=0.01)
    notionals = [float(leg.notional_usd or 0) for leg in r.legs]
    gross_risk = DAY * (0.65 * (notionals[0] + notionals[1]) + 0.5 * notionals[2])
    assert r.hedge is not None
    assert r.hedge.activation_usd == pytest.approx(0.05 * gross_risk)
    assert r.hedge.hysteresis_usd == pytest.approx(0.01 * sum(notionals))
    assert r.hedge.activation_share is None  # resolved away; the spec keeps it
    assert r.spec.hedge is not None and r.spec.hedge.activation_share == 0.05
    assert r.warnings == []


def test_an_activation_no_imbalance_of_the_basket_reaches_is_a_warning() -> None:
    r = resolved(activation_usd=10_000.0)  # the basket's worst imbalance has ~$1k
    (w,) = r.warnings
    assert w.path == "hedge.activation_usd"
    assert "never engages" in w.message and "activation_share" in w.message
    assert any(n.startswith("warning: hedge.activation_usd") for n in r.notes)
    off = basket(hedge=hedge(activation_usd=10_000.0, enabled=False), policy="unwind")
    assert validate(off, INSTRUMENTS, PRICES).warnings == []


def test_a_hysteresis_beyond_the_whole_basket_is_a_warning() -> None:
    (w,) = resolved(activation_usd=100.0, hysteresis_usd=1e9).warnings
    assert w.path == "hedge.hysteresis_usd"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("activation_share", 0.0, "0 < activation_share <= 1"),
        ("activation_share", 1.5, "0 < activation_share <= 1"),
        ("hysteresis_share", -0.1, "0 <= hysteresis_share <= 1"),
        ("risk_price", 0.0, "USD of cost per USD"),
        ("enter_ratio", math.inf, "a value / cost ratio"),
        ("min_hold_s", -1.0, "seconds"),
        ("fee_bps", math.nan, "basis points"),
        ("maker_fee_bps", -2_000.0, "a rebate"),
        ("rest_s", -1.0, "0 <= rest_s <= 3600"),
    ],
)
def test_a_decision_figure_out_of_range_names_the_field_and_the_range(
    field: str, value: float, fragment: str
) -> None:
    error_at(basket(hedge=hedge(**{field: value})), f"hedge.{field}", fragment)


def test_leaving_above_entering_is_refused() -> None:
    error_at(basket(hedge=hedge(enter_ratio=1.0, exit_ratio=2.0)), "hedge.exit_ratio", "<= enter")


def test_a_share_beside_its_dollar_figure_is_refused() -> None:
    error_at(
        basket(hedge=hedge(activation_share=0.05, activation_usd=500.0)),
        "hedge.activation_share",
        "one of them",
    )
