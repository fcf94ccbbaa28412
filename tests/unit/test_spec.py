"""The basket specification: loading, validation with every error at once, rebalance legs."""

from __future__ import annotations

import math
import re
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.spec import (
    DEFAULT_BAND,
    MAX_CHILD_SEQ,
    MAX_CLIENT_ORDER_ID_LEN,
    MAX_LEGS,
    MAX_START_NS,
    RUN_TAG_ROOM,
    BasketSpec,
    ExecutionParams,
    FieldError,
    HedgeSpec,
    LegSpec,
    Policy,
    RebalanceSpec,
    SpecError,
    client_order_id,
    dump_basket,
    load_basket,
    new_nonce,
    order_prefix,
    parse_basket,
    parse_start,
    plan_rebalance,
    rebalance_legs,
    validate,
    venue_instruments,
)
from venues.config import load_venues
from venues.model import Side
from venues.sim.calibration import exposure, factor_covariance

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INSTRUMENTS = venue_instruments(load_venues(EXAMPLES / "venues.toml"))
MIDS = {
    "BTCUSDT": Decimal("60000"),
    "ETHUSDT": Decimal("2600"),
    "SOLUSDT": Decimal("150"),
    "STETHUSDT": Decimal("2597.4"),
    "IDXUSDT": Decimal("1000"),
}
PRICES = {(v, s): MIDS[s] for v, listed in INSTRUMENTS.items() for s in listed}
D = Decimal


def basket(**changes: Any) -> BasketSpec:
    """A valid basket: ETH long on alpha, stETH long on beta, BTC short on gamma."""
    spec = BasketSpec(
        basket_id="b1",
        legs=[
            LegSpec(leg_id="eth", venue="alpha", symbol="ETHUSDT", side=Side.BUY, quantity=D(10)),
            LegSpec(
                leg_id="steth",
                venue="beta",
                symbol="STETHUSDT",
                side=Side.BUY,
                notional_usd=D(5000),
                max_slippage_bps=40.0,
            ),
            LegSpec(
                leg_id="btc", venue="gamma", symbol="BTCUSDT", side=Side.SELL, notional_usd=D(32000)
            ),
        ],
        params=ExecutionParams(horizon_s=300),
        hedge=HedgeSpec(venue="alpha", instruments=["IDXUSDT"]),
        policy=Policy.HEDGE_AND_HOLD,
    )
    return msgspec.structs.replace(spec, **changes)


def leg(i: int, **changes: Any) -> list[LegSpec]:
    """The default legs with leg i changed."""
    legs = list(basket().legs)
    legs[i] = msgspec.structs.replace(legs[i], **changes)
    return legs


def params(**changes: Any) -> ExecutionParams:
    return msgspec.structs.replace(ExecutionParams(horizon_s=300), **changes)


def rebalance(**changes: Any) -> RebalanceSpec:
    spec = RebalanceSpec(
        basket_id="r1",
        venue="alpha",
        targets={"BTCUSDT": D("0.6"), "ETHUSDT": D("0.4")},
        total_usd=D(1_000_000),
        params=ExecutionParams(horizon_s=600),
    )
    return msgspec.structs.replace(spec, **changes)


def errors_of(spec: BasketSpec | RebalanceSpec, **kw: Any) -> list[FieldError]:
    kw.setdefault("prices", PRICES)
    with pytest.raises(SpecError) as info:
        validate(spec, INSTRUMENTS, **kw)
    assert str(info.value).count("\n") == len(info.value.errors)  # one line per error
    return info.value.errors


def error_at(spec: BasketSpec | RebalanceSpec, path: str, *fragments: str, **kw: Any) -> str:
    """The message of the one error at `path`, checked to contain every fragment."""
    errors = errors_of(spec, **kw)
    found = [e.message for e in errors if e.path == path]
    assert found, f"no error at {path}; got {errors}"
    assert len(found) == 1, found
    for fragment in fragments:
        assert fragment in found[0], f"{fragment!r} not in {found[0]!r}"
    return found[0]


# --- a valid basket ----------------------------------------------------------------------
def test_valid_basket_resolves_to_lot_snapped_quantities() -> None:
    resolved = validate(basket(), INSTRUMENTS, PRICES)
    eth, steth, btc = resolved.legs
    assert (eth.quantity, eth.side, eth.instrument.symbol) == (D(10), Side.BUY, "ETHUSDT")
    # 5000 / 2597.4 = 1.92500… and 32000 / 60000 = 0.53333…, both snapped down to the lot.
    assert steth.quantity == D("1.9250")
    assert btc.quantity == D("0.533")
    for r in resolved.legs:
        assert r.instrument.on_lot(r.quantity)
        assert r.price == PRICES[r.venue, r.symbol]
    assert (steth.max_slippage_bps, btc.max_slippage_bps) == (40.0, 25.0)
    assert resolved.policy is Policy.HEDGE_AND_HOLD
    assert [i.symbol for i in resolved.hedge_instruments] == ["IDXUSDT"]
    assert resolved.gross_usd == sum(r.quantity * r.price for r in resolved.legs)
    assert resolved.leg("btc") is btc
    assert resolved.params.completion_band == DEFAULT_BAND


def test_notional_leg_is_converted_at_the_given_price() -> None:
    legs = leg(0, quantity=None, notional_usd=D(10_000))
    at_2600 = validate(basket(legs=legs), INSTRUMENTS, PRICES).legs[0]
    assert at_2600.quantity == D("3.846")  # 3.84615… down to the 0.001 lot
    assert at_2600.notional_usd == D("9999.6000")
    prices = {**PRICES, ("alpha", "ETHUSDT"): D("2000")}
    assert validate(basket(legs=legs), INSTRUMENTS, prices).legs[0].quantity == D(5)


def test_quantity_legs_validate_without_prices() -> None:
    spec = basket(legs=[basket().legs[0]])
    resolved = validate(spec, INSTRUMENTS)
    assert resolved.legs[0].quantity == D(10)
    assert resolved.legs[0].notional_usd is None and resolved.gross_usd is None


# --- each validation error ---------------------------------------------------------------
def test_unknown_venue_lists_the_known_ones() -> None:
    error_at(basket(legs=leg(1, venue="delta")), "legs[1].venue", "'delta'", "alpha, beta, gamma")


def test_unknown_symbol_lists_what_the_venue_has() -> None:
    error_at(
        basket(legs=leg(1, symbol="SOLUSDT")),
        "legs[1].symbol",
        "'SOLUSDT'",
        "venue beta",
        "ETHUSDT, STETHUSDT",
    )


@pytest.mark.parametrize("value", [D(0), D(-1), D("NaN"), D("Infinity")])
def test_non_positive_or_non_finite_quantity(value: Decimal) -> None:
    error_at(basket(legs=leg(0, quantity=value)), "legs[0].quantity", str(value), "> 0")


@pytest.mark.parametrize("value", [D(0), D(-5000), D("-Infinity"), D("NaN")])
def test_non_positive_or_non_finite_notional(value: Decimal) -> None:
    error_at(basket(legs=leg(1, notional_usd=value)), "legs[1].notional_usd", str(value), "USD")


def test_both_quantity_and_notional() -> None:
    error_at(basket(legs=leg(0, notional_usd=D(100))), "legs[0]", "exactly one", "not both")


def test_neither_quantity_nor_notional() -> None:
    error_at(basket(legs=leg(0, quantity=None)), "legs[0]", "exactly one", "neither")


def test_duplicate_leg_ids() -> None:
    error_at(basket(legs=leg(2, leg_id="eth")), "legs[2].leg_id", "'eth'", "legs[0]", "unique")


def test_two_legs_on_one_instrument_and_venue() -> None:
    legs = leg(1, venue="alpha", symbol="ETHUSDT", notional_usd=D(5000))
    error_at(basket(legs=legs), "legs[1].symbol", "alpha/ETHUSDT", "legs[0]", "merge")


def test_quantity_off_lot_names_the_nearest_multiples() -> None:
    error_at(
        basket(legs=leg(0, quantity=D("10.0005"))),
        "legs[0].quantity",
        "10.0005",
        "lot 0.001",
        "10.000 or 10.001",
    )


def test_quantity_below_min_notional() -> None:
    # 0.001 BTC at 60,000 is $60; BTCUSDT's minimum notional is $100.
    error_at(
        basket(legs=leg(2, notional_usd=None, quantity=D("0.001"))),
        "legs[2].quantity",
        "0.001",
        "60.00 USD",
        "minimum notional",
        "at least 100 USD",
    )


def test_notional_below_min_notional_after_rounding() -> None:
    # $110 is above the $100 minimum, but it is 0.00183 BTC: one lot, $60, once snapped.
    error_at(
        basket(legs=leg(2, notional_usd=D(110))),
        "legs[2].notional_usd",
        "110 USD",
        "0.001 on the lot",
        "at least 100 USD",
    )


def test_notional_below_one_lot() -> None:
    error_at(
        basket(legs=leg(2, notional_usd=D(50))),
        "legs[2].notional_usd",
        "less than one lot",
        "at least 60",
    )


def test_notional_leg_needs_a_price() -> None:
    error_at(basket(), "legs[1].notional_usd", "no price", "beta/STETHUSDT", prices={})


def test_non_positive_price() -> None:
    prices = {**PRICES, ("gamma", "BTCUSDT"): D(0)}
    error_at(basket(), "legs[2].notional_usd", "price", "not > 0", prices=prices)


@pytest.mark.parametrize("basket_id", ["", "has space", "é", "x#1"])
def test_bad_basket_id(basket_id: str) -> None:
    error_at(basket(basket_id=basket_id), "basket_id", repr(basket_id), "A-Z a-z 0-9 . _ : / -")


def test_basket_and_leg_ids_use_the_client_order_id_alphabet() -> None:
    spec = basket(basket_id="Desk_1.a:b/c-d", legs=leg(0, leg_id="E_t.h:1"))
    assert validate(spec, INSTRUMENTS, PRICES).legs[0].leg_id == "E_t.h:1"


def test_bad_leg_id() -> None:
    error_at(basket(legs=leg(0, leg_id="e-th")), "legs[0].leg_id", "'e-th'", "no '-'")


def test_client_order_ids_must_fit_36_characters() -> None:
    # The basket id and the longest leg id ("steth") share 36 - len("--99999") - the run's
    # tag (".", 2 digits of run number, 4 of nonce) = 22 characters.
    longest = "steth"
    room = MAX_CLIENT_ORDER_ID_LEN - len(f"--{MAX_CHILD_SEQ}") - RUN_TAG_ROOM - len(longest)
    ok = "b" * room
    prefix = order_prefix(ok, 1295, new_nonce(), longest)
    assert len(client_order_id(prefix, longest, MAX_CHILD_SEQ)) == MAX_CLIENT_ORDER_ID_LEN
    validate(basket(basket_id=ok), INSTRUMENTS, PRICES)
    message = error_at(basket(basket_id=ok + "x"), "basket_id", "37 characters", "at most 36")
    assert "may use 22 characters" in message


def test_client_order_id_numbering() -> None:
    assert client_order_id("b", "l", 0) == "b-l-0"
    with pytest.raises(ValueError, match="0-99999"):
        client_order_id("b", "l", MAX_CHILD_SEQ + 1)


@pytest.mark.parametrize("band", [0.0, 1.0, 1.5, -0.1])
def test_band_outside_0_1(band: float) -> None:
    error_at(basket(params=params(band=band)), "params.band", "outside (0, 1)")


def test_band_and_band_risk_usd_together() -> None:
    spec = basket(params=params(band=0.1, band_risk_usd=500.0))
    error_at(spec, "params.band", "either band", "not both")


def test_band_risk_usd_must_be_positive() -> None:
    error_at(basket(params=params(band_risk_usd=0.0)), "params.band_risk_usd", "positive")
    risk = validate(basket(params=params(band_risk_usd=500.0)), INSTRUMENTS, PRICES).params
    assert risk.completion_band is None and risk.band_risk_usd == 500.0


@pytest.mark.parametrize("cap", [0.0, -0.1, 1.01, math.nan])
def test_participation_outside_0_1(cap: float) -> None:
    error_at(basket(params=params(participation_cap=cap)), "params.participation_cap", "(0, 1]")


def test_participation_of_one_is_accepted() -> None:
    validate(basket(params=params(participation_cap=1.0)), INSTRUMENTS, PRICES)


@pytest.mark.parametrize("horizon", [0.0, -5.0, 0.5, 604_801.0, 1e300, math.inf, math.nan])
def test_horizon_is_from_a_second_to_a_week(horizon: float) -> None:
    error_at(basket(params=params(horizon_s=horizon)), "params.horizon_s", "1", "604800")
    validate(basket(params=params(horizon_s=604_800.0, slice_s=600.0)), INSTRUMENTS, PRICES)


def test_slice_longer_than_horizon() -> None:
    error_at(basket(params=params(slice_s=600.0)), "params.slice_s", "longer than the horizon")


def test_negative_grace() -> None:
    error_at(basket(params=params(grace_s=-1.0)), "params.grace_s", "-1", "negative")


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"slice_s": 1e-10}, ("1e-10 s is shorter than 10 ms", "0.01 <= slice_s <= horizon_s")),
        ({"slice_s": 0.0}, ("0 is not > 0 seconds",)),
        ({"slice_s": math.nan}, ("nan is not a finite number",)),
        # 100,000 slices of a leg would run out of client order ids (n <= 99,999) mid-basket.
        (
            {"horizon_s": 100_000.0, "slice_s": 1.0},
            ("100000 slices", "at most 10000 slices per leg", "slice_s >= 10 s"),
        ),
    ],
)
def test_slices_are_from_10_ms_and_at_most_10000_per_leg(
    changes: dict[str, float], fragments: tuple[str, ...]
) -> None:
    error_at(basket(params=params(**changes)), "params.slice_s", *fragments)
    just = params(horizon_s=100_000.0, slice_s=10.0)  # exactly 10,000 slices
    validate(basket(params=just), INSTRUMENTS, PRICES)


def test_grace_is_at_most_a_day() -> None:
    error_at(basket(params=params(grace_s=86_401.0)), "params.grace_s", "86401", "a day")
    validate(basket(params=params(grace_s=86_400.0)), INSTRUMENTS, PRICES)


@pytest.mark.parametrize(
    ("leg_changes", "path"),
    [
        ({"quantity": D("1e25")}, "legs[0].quantity"),  # was decimal.InvalidOperation
        ({"quantity": D("sNaN")}, "legs[0].quantity"),
        ({"quantity": D("1000000000000.001")}, "legs[0].quantity"),
    ],
)
def test_quantities_are_finite_positive_and_at_most_a_trillion(
    leg_changes: dict[str, Decimal], path: str
) -> None:
    error_at(basket(legs=leg(0, **leg_changes)), path, "> 0 and <= 1,000,000,000,000")


def test_usd_amounts_are_at_most_a_trillion() -> None:
    too_much = D("1e13")
    error_at(basket(legs=leg(1, notional_usd=too_much)), "legs[1].notional_usd", "1E+13")
    error_at(rebalance(total_usd=too_much), "total_usd", "<= 1,000,000,000,000")
    risk = params(band_risk_usd=1e13)
    error_at(basket(params=risk), "params.band_risk_usd", "1e+13", "<= 1,000,000,000,000")
    hedge = msgspec.structs.replace(basket().hedge, activation_usd=math.inf)
    error_at(basket(hedge=hedge), "hedge.activation_usd", "inf", "<= 1,000,000,000,000")


def test_weights_are_each_at_most_one() -> None:
    spec = rebalance(targets={"BTCUSDT": D("1.5"), "ETHUSDT": D("-0.5")})
    error_at(spec, "targets.BTCUSDT", "1.5", "0 <= weight <= 1")


def test_counts_are_bounded() -> None:
    legs = [
        LegSpec(leg_id=f"l{i}", venue="alpha", symbol="BTCUSDT", side=Side.BUY, quantity=D(1))
        for i in range(MAX_LEGS + 1)
    ]
    error_at(basket(legs=legs, hedge=None, policy=Policy.UNWIND), "legs", "101 entries")
    targets = {f"S{i}": D(0) for i in range(MAX_LEGS + 1)}
    error_at(rebalance(targets=targets), "targets", "at most 100")
    hedge = HedgeSpec(venue="alpha", instruments=["IDXUSDT"] * 11)
    error_at(basket(hedge=hedge), "hedge.instruments", "11 entries", "at most 10")


@pytest.mark.parametrize("bps", [0.0, -3.0, 20_000.0])
def test_slippage_limits(bps: float) -> None:
    error_at(basket(params=params(max_slippage_bps=bps)), "params.max_slippage_bps", "(0, 10000]")
    error_at(basket(legs=leg(0, max_slippage_bps=bps)), "legs[0].max_slippage_bps", "(0, 10000]")


def test_start_must_be_now_or_ns() -> None:
    error_at(basket(params=params(start="tomorrow")), "params.start", "'tomorrow'", '"now"')
    error_at(basket(params=params(start=-1)), "params.start", "ns since the epoch")
    error_at(basket(params=params(start=MAX_START_NS)), "params.start", "2100-01-01T00:00:00Z")
    at = validate(basket(params=params(start=5)), INSTRUMENTS, PRICES).params
    assert at.start_ns(now_ns=1) == 5
    assert params().start_ns(now_ns=7) == 7


def test_unknown_hedge_venue() -> None:
    spec = basket(hedge=HedgeSpec(venue="omega", instruments=["IDXUSDT"]))
    error_at(spec, "hedge.venue", "'omega'", "alpha, beta, gamma")


def test_unknown_hedge_instrument() -> None:
    spec = basket(hedge=HedgeSpec(venue="alpha", instruments=["IDXUSDT", "SOLUSDT"]))
    error_at(spec, "hedge.instruments[1]", "'SOLUSDT'", "BTCUSDT, ETHUSDT, IDXUSDT")


def test_hedge_instrument_must_be_a_perp_and_not_a_leg() -> None:
    spot = basket(hedge=HedgeSpec(venue="beta", instruments=["STETHUSDT"]))
    error_at(spot, "hedge.instruments[0]", "spot", "perpetuals")
    on_leg = basket(hedge=HedgeSpec(venue="alpha", instruments=["ETHUSDT"]))
    error_at(on_leg, "hedge.instruments[0]", "alpha/ETHUSDT", "legs[0]")


def test_hedge_instruments_must_not_be_empty() -> None:
    error_at(basket(hedge=HedgeSpec(venue="alpha", instruments=[])), "hedge.instruments", "empty")


@pytest.mark.parametrize("field", ["activation_usd", "hysteresis_usd"])
def test_negative_hedge_thresholds(field: str) -> None:
    hedge = msgspec.structs.replace(basket().hedge, **{field: -1.0})
    error_at(basket(hedge=hedge), f"hedge.{field}", "-1", "negative")


def test_hedge_and_hold_needs_an_enabled_hedge() -> None:
    error_at(basket(hedge=None), "policy", "hedge_and_hold", "[hedge]")
    disabled = HedgeSpec(venue="alpha", instruments=["IDXUSDT"], enabled=False)
    error_at(basket(hedge=disabled), "policy", "hedge_and_hold")
    assert validate(basket(hedge=None, policy=Policy.UNWIND), INSTRUMENTS, PRICES).hedge is None


def test_python_built_bad_enums() -> None:
    error_at(basket(legs=leg(0, side="buy")), "legs[0].side", "'buy'", "BUY, SELL")
    error_at(basket(policy="yolo"), "policy", "'yolo'", "unwind, hedge_and_hold, complete")
    error_at(basket(params=params(child_style="vwap")), "params.child_style", "'vwap'", "twap")


def test_no_legs() -> None:
    error_at(basket(legs=[]), "legs", "at least one")


# --- every error at once -----------------------------------------------------------------
def test_every_error_is_collected_with_its_path() -> None:
    spec = basket(
        basket_id="bad id",
        legs=[
            LegSpec(leg_id="a", venue="delta", symbol="X", side=Side.BUY, quantity=D(1)),
            LegSpec(leg_id="a", venue="alpha", symbol="ETHUSDT", side=Side.BUY, quantity=D(-2)),
            LegSpec(leg_id="c", venue="beta", symbol="ETHUSDT", side=Side.SELL),
        ],
        params=params(band=2.0, participation_cap=3.0, horizon_s=-1.0),
        hedge=HedgeSpec(venue="alpha", instruments=["NOPE"], activation_usd=-1.0),
    )
    errors = errors_of(spec)
    paths = [e.path for e in errors]
    assert paths == [
        "basket_id",
        "legs[0].venue",
        "legs[1].leg_id",
        "legs[1].quantity",
        "legs[2]",
        "params.horizon_s",
        "params.participation_cap",
        "params.band",
        "hedge.activation_usd",
        "hedge.instruments[0]",
    ]
    with pytest.raises(SpecError) as info:
        validate(spec, INSTRUMENTS, PRICES)
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    assert text.startswith("invalid basket 'bad id', 10 errors:")
    assert all(f"  {e.path}: {e.message}" in text for e in errors)


# --- rebalance -----------------------------------------------------------------------------
def weights_after(
    spec: RebalanceSpec, positions: dict[tuple[str, str], Decimal], legs: list[LegSpec]
) -> dict[str, float]:
    held = dict(positions)
    for lg in legs:
        key = (lg.venue, lg.symbol)
        assert lg.quantity is not None
        held[key] = held.get(key, D(0)) + lg.side.sign * lg.quantity
    values = {
        s: held.get((spec.venues.get(s, spec.venue), s), D(0)) * MIDS[s] for s in spec.targets
    }
    return {s: float(v / spec.total_usd) for s, v in values.items()}


def test_rebalance_60_40_of_1m_from_flat() -> None:
    spec = rebalance()
    legs = rebalance_legs(spec, PRICES, {}, INSTRUMENTS)
    assert [(lg.leg_id, lg.side, lg.quantity) for lg in legs] == [
        ("BTCUSDT", Side.BUY, D(10)),
        ("ETHUSDT", Side.BUY, D("153.846")),
    ]
    for symbol, weight in weights_after(spec, {}, legs).items():
        assert weight == pytest.approx(float(spec.targets[symbol]), rel=0.01)
    resolved = validate(spec, INSTRUMENTS, PRICES)
    assert [r.quantity for r in resolved.legs] == [D(10), D("153.846")]
    assert abs(resolved.gross_usd - spec.total_usd) < D(1_000)


def test_rebalance_trades_only_the_difference_from_positions() -> None:
    spec = rebalance()
    positions = {
        ("alpha", "BTCUSDT"): D(4),
        ("alpha", "ETHUSDT"): D(200),
        ("beta", "ETHUSDT"): D(9),
    }
    plan = plan_rebalance(spec, PRICES, positions, INSTRUMENTS)
    assert [(lg.symbol, lg.side, lg.quantity) for lg in plan.legs] == [
        ("BTCUSDT", Side.BUY, D(6)),
        ("ETHUSDT", Side.SELL, D("46.153")),  # 200 - 153.846…, snapped down: never overshoot
    ]
    assert plan.target_qty["BTCUSDT"] == D(10)
    for symbol, weight in weights_after(spec, positions, plan.legs).items():
        assert weight == pytest.approx(float(spec.targets[symbol]), rel=0.01)


def test_rebalance_leaves_small_differences_alone_with_a_note() -> None:
    positions = {("alpha", "BTCUSDT"): D("9.999"), ("alpha", "ETHUSDT"): D(0)}
    resolved = validate(rebalance(), INSTRUMENTS, PRICES, positions)
    assert [r.symbol for r in resolved.legs] == ["ETHUSDT"]
    assert len(resolved.notes) == 1
    assert resolved.notes[0].startswith("targets.BTCUSDT: left as is")
    assert "minimum notional 100 USD" in resolved.notes[0]


def test_rebalance_already_at_target() -> None:
    positions = {("alpha", "BTCUSDT"): D(10), ("alpha", "ETHUSDT"): D("153.846")}
    error_at(rebalance(), "targets", "nothing to trade", positions=positions)


def test_weights_not_summing_to_one_say_the_sum() -> None:
    spec = rebalance(targets={"BTCUSDT": D("0.6"), "ETHUSDT": D("0.3")})
    error_at(spec, "targets", "sum to 0.9", "1E-9")
    # Within the tolerance is fine.
    close = rebalance(targets={"BTCUSDT": D("0.6"), "ETHUSDT": D("0.4000000000001")})
    validate(close, INSTRUMENTS, PRICES)


def test_negative_weight() -> None:
    spec = rebalance(targets={"BTCUSDT": D("1.2"), "ETHUSDT": D("-0.2")})
    error_at(spec, "targets.ETHUSDT", "-0.2", "0 <= weight <= 1")


def test_rebalance_venue_errors() -> None:
    error_at(rebalance(venue="delta"), "venue", "'delta'", "alpha, beta, gamma")
    targets = {"BTCUSDT": D("0.5"), "SOLUSDT": D("0.5")}
    error_at(rebalance(targets=targets), "targets.SOLUSDT", "not listed on venue alpha")
    error_at(rebalance(venue=None), "targets.BTCUSDT", "no venue", "venues.BTCUSDT")
    error_at(rebalance(venues={"ETHUSDT": "nowhere"}), "venues.ETHUSDT", "'nowhere'")
    error_at(rebalance(venues={"SOLUSDT": "gamma"}), "venues.SOLUSDT", "no target weight")


def test_rebalance_per_symbol_venue() -> None:
    spec = rebalance(venues={"ETHUSDT": "beta"})
    assert [r.venue for r in validate(spec, INSTRUMENTS, PRICES).legs] == ["alpha", "beta"]


@pytest.mark.parametrize("total", [D(0), D(-1), D("Infinity")])
def test_rebalance_total_must_be_positive(total: Decimal) -> None:
    error_at(rebalance(total_usd=total), "total_usd", "USD amount > 0")


def test_rebalance_needs_prices() -> None:
    error_at(rebalance(), "targets", "no prices", prices=None)
    error_at(rebalance(), "targets.ETHUSDT", "no usable price", prices={("alpha", "BTCUSDT"): 1})
    with pytest.raises(SpecError):
        plan_rebalance(rebalance(), {}, {}, INSTRUMENTS)


# --- loading -------------------------------------------------------------------------------
EXAMPLE_FILES = sorted(
    p
    for p in EXAMPLES.glob("*.toml")
    if re.search(r'^kind = "(basket|rebalance)"', p.read_text(), re.M)
)


def test_the_four_examples_are_there() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {
        "synthetic_eth.toml",
        "rebalance_btc_eth.toml",
        "pair_cross_venue.toml",
        "index_btc_eth_sol.toml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates_against_the_example_venues(path: Path) -> None:
    spec = load_basket(path)
    resolved = validate(spec, INSTRUMENTS, PRICES)
    assert resolved.legs
    assert load_basket(dump_basket(spec)) == spec


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_docs_show_every_example_as_it_is(path: Path) -> None:
    docs = (ROOT / "docs" / "basket.md").read_text()
    assert f"```toml\n{path.read_text()}```" in docs


DOC_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "basket.md").read_text(), re.S)


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_docs_python_runs(index: int, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(DOC_BLOCKS[index], f"docs/basket.md[{index}]", "exec"), {})
    assert capsys.readouterr().out.strip()


def test_synthetic_eth_is_beta_neutral() -> None:
    """Its BTC short is the one that minimises the basket's variance under the calibration."""
    resolved = validate(load_basket(EXAMPLES / "synthetic_eth.toml"), INSTRUMENTS, PRICES)
    names, cov = factor_covariance()
    e = sum(
        (
            exposure(r.instrument, names) * float(r.notional_usd) * r.side.sign
            for r in resolved.legs
            if r.symbol != "BTCUSDT"
        ),
        np.zeros(len(names)),
    )
    btc = resolved.leg("btc")
    b = exposure(btc.instrument, names)
    best = -(b @ cov @ e) / (b @ cov @ b)  # dollars of BTC (negative: a short)
    assert float(btc.notional_usd) * btc.side.sign == pytest.approx(best, rel=0.01)
    assert 100_000 <= resolved.gross_usd <= 300_000


def test_load_from_text_path_and_str_path(tmp_path: Path) -> None:
    text = (EXAMPLES / "pair_cross_venue.toml").read_text()
    from_text = load_basket(text)
    assert isinstance(from_text, BasketSpec)
    assert load_basket(str(EXAMPLES / "pair_cross_venue.toml")) == from_text
    assert from_text.legs[0].quantity == D(20) and from_text.legs[0].side is Side.BUY
    missing = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match="cannot read"):
        load_basket(missing)


def test_kind_is_inferred_or_refused() -> None:
    legs = 'basket_id = "b"\n[params]\nhorizon_s = 60\n[[legs]]\nleg_id = "x"\nvenue = "alpha"\n'
    legs += 'symbol = "BTCUSDT"\nside = "BUY"\nquantity = 1\n'
    assert isinstance(load_basket(legs), BasketSpec)
    targets = 'basket_id = "r"\ntotal_usd = 10\nvenue = "alpha"\n[params]\nhorizon_s = 60\n'
    targets += "[targets]\nBTCUSDT = 1\n"
    assert isinstance(load_basket(targets), RebalanceSpec)
    with pytest.raises(SpecError) as info:
        load_basket('kind = "portfolio"\nbasket_id = "b"\n')
    assert info.value.errors[0].path == "kind"
    assert '"basket"' in info.value.errors[0].message
    assert "'portfolio'" in info.value.errors[0].message


def test_loader_collects_type_unknown_and_missing_fields() -> None:
    text = """
kind = "basket"
basket_id = 7
polcy = "unwind"
[params]
horizon_s = "long"
start = 2025-06-01T12:00:00
[[legs]]
leg_id = "a"
venue = "alpha"
symbol = "BTCUSDT"
side = "buy"
quantity = true
[[legs]]
leg_id = "b"
"""
    with pytest.raises(SpecError) as info:
        load_basket(text)
    got = {e.path: e.message for e in info.value.errors}
    assert got["basket_id"] == "expected str, got int (7)"
    assert got["polcy"].startswith("unknown field; accepted here: basket_id, legs, params")
    assert got["params.horizon_s"] == "expected a number, got str ('long')"
    assert "no time zone" in got["params.start"]
    assert got["legs[0].side"] == "'buy' is not accepted; accepted: BUY, SELL"
    assert got["legs[0].quantity"] == "expected a number, got bool (True)"
    assert got["legs[1].venue"] == "required field is missing"
    assert len(got) == 9  # legs[1] also misses symbol and side


def test_not_toml() -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        load_basket("kind = \n")
    # Nested past the TOML reader's recursion: still a SpecError, not a RecursionError.
    with pytest.raises(SpecError, match="nested too deeply"):
        load_basket("x = " + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(SpecError, match="longer than 1,000,000 characters"):
        load_basket("# " + "x" * 1_000_000 + "\n")
    with pytest.raises(SpecError, match="expected a table of a basket's fields, got a list"):
        parse_basket([1, 2])  # type: ignore[arg-type]


# Each found by fuzzing: the file loaded (or crashed), and failed hours later at run time.
FOUND_BY_FUZZING = [
    ("horizon_s = 15", "horizon_s = 1e300", "params.horizon_s", "1e+300 s is outside 1-604800"),
    ("slice_s = 0.5 ", "slice_s = 1e-10", "params.slice_s", "shorter than 10 ms"),
    ("notional_usd = 9_000", "quantity = 1e25", "legs[0].quantity", "1E+25 is not a quantity"),
    ("notional_usd = 9_000", 'quantity = "sNaN"', "legs[0].quantity", "sNaN is not a quantity"),
    ("horizon_s = 15", "horizon_s = nan", "params.horizon_s", "nan is not a finite number"),
    (
        "[params]\n",
        "[params]\nstart = 0001-01-01T00:00:00+01:00\n",  # was OverflowError
        "params.start",
        "0001-01-01T00:00:00+01:00 is not a start time from 1970 to 2099",
    ),
    (
        "[params]\n",
        "[params]\nstart = 9999-12-31T23:00:00-01:00\n",
        "params.start",
        "is not a start time from 1970 to 2099",
    ),
]


@pytest.mark.parametrize(("old", "new", "path", "message"), FOUND_BY_FUZZING)
def test_the_loader_refuses_values_beyond_their_bounds(
    old: str, new: str, path: str, message: str
) -> None:
    text = (EXAMPLES / "synthetic_eth_quick.toml").read_text()
    assert old in text
    with pytest.raises(SpecError) as info:
        load_basket(text.replace(old, new, 1))  # before any venue is known
    (error,) = info.value.errors
    assert error.path == path and message in error.message, error


def test_parse_basket_takes_a_signalling_nan_where_a_float_goes() -> None:
    data = tomllib.loads((EXAMPLES / "pair_cross_venue.toml").read_text(), parse_float=D)
    data["params"]["horizon_s"] = D("sNaN")  # was ValueError from msgspec.convert
    with pytest.raises(SpecError) as info:
        parse_basket(data)
    assert [(e.path, e.message) for e in info.value.errors] == [
        ("params.horizon_s", "sNaN is not a number accepted here")
    ]


def test_toml_numbers_are_exact_decimals() -> None:
    spec = load_basket(dump_basket(basket()).replace("quantity = 10", "quantity = 0.1"))
    assert spec.legs[0].quantity == D("0.1")


def test_toml_round_trip_with_every_field_set() -> None:
    spec = basket(
        params=ExecutionParams(
            horizon_s=120.5,
            start=1_750_000_000_000_000_000,
            max_slippage_bps=12.5,
            participation_cap=0.25,
            band_risk_usd=750.0,
            slice_s=2.5,
            grace_s=0.0,
        ),
        hedge=HedgeSpec(
            venue="alpha",
            instruments=["IDXUSDT", "BTCUSDT"],
            activation_usd=1.5,
            hysteresis_usd=0.0,
            enabled=False,
        ),
        policy=Policy.COMPLETE,
    )
    assert load_basket(dump_basket(spec)) == spec
    reb = rebalance(venues={"ETHUSDT": "beta"}, hedge=basket().hedge)
    assert load_basket(dump_basket(reb)) == reb
    assert msgspec.json.decode(msgspec.json.encode(reb), type=BasketSpec | RebalanceSpec) == reb


def test_parse_start() -> None:
    assert parse_start("now") == "now"
    assert parse_start(0) == 0
    expected = int(datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert parse_start("2025-06-01T12:00:00Z") == expected
    assert parse_start("2025-06-01T14:00:00+02:00") == expected
    assert parse_start(datetime(2025, 6, 1, 12, 0, 0, 500, tzinfo=UTC)) == expected + 500_000
    for bad, fragment in [
        ("2025-06-01T12:00:00", "no time zone"),
        ("soon", "ISO-8601"),
        (-1, "before the epoch"),
        (True, "not a start time"),
        ("0001-01-01T00:00:00+01:00", "from 1970 to 2099"),
        ("1969-12-31T23:59:59Z", "from 1970 to 2099"),
        (MAX_START_NS, "from 1970 to 2099"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            parse_start(bad)
    text = dump_basket(basket()).replace('start = "now"', "start = 2025-06-01T12:00:00Z")
    assert load_basket(text).params.start == expected


def test_venue_instruments_follow_the_config() -> None:
    assert {v: sorted(s) for v, s in INSTRUMENTS.items()} == {
        "alpha": ["BTCUSDT", "ETHUSDT", "IDXUSDT"],
        "beta": ["ETHUSDT", "STETHUSDT"],
        "gamma": ["BTCUSDT", "SOLUSDT"],
    }


# --- property: snapping never trades more than asked --------------------------------------
LEG_SYMBOLS = [
    ("alpha", "BTCUSDT"),
    ("alpha", "ETHUSDT"),
    ("beta", "STETHUSDT"),
    ("gamma", "SOLUSDT"),
]


@given(
    where=st.sampled_from(LEG_SYMBOLS),
    notional=st.decimals(min_value=1, max_value=10_000_000, places=2),
    price=st.decimals(min_value=D("0.01"), max_value=200_000, places=2),
)
def test_notional_snaps_down_onto_the_lot(
    where: tuple[str, str], notional: Decimal, price: Decimal
) -> None:
    venue, symbol = where
    inst = INSTRUMENTS[venue][symbol]
    spec = basket(
        legs=[
            LegSpec(leg_id="x", venue=venue, symbol=symbol, side=Side.BUY, notional_usd=notional)
        ],
        hedge=None,
        policy=Policy.UNWIND,
    )
    exact = notional / price
    try:
        qty = validate(spec, INSTRUMENTS, {where: price}).legs[0].quantity
    except SpecError as e:
        # Only a leg too small for the instrument is refused.
        assert inst.snap_qty(exact) * price < inst.min_notional, e
        return
    assert inst.on_lot(qty)
    assert qty <= exact
    assert exact - qty < inst.lot


@given(
    where=st.sampled_from(LEG_SYMBOLS),
    quantity=st.decimals(min_value=D("0.0001"), max_value=1000, places=4),
)
def test_given_quantities_resolve_as_given_or_name_a_lot_multiple_below(
    where: tuple[str, str], quantity: Decimal
) -> None:
    venue, symbol = where
    inst = INSTRUMENTS[venue][symbol]
    spec = basket(
        legs=[LegSpec(leg_id="x", venue=venue, symbol=symbol, side=Side.SELL, quantity=quantity)],
        hedge=None,
        policy=Policy.UNWIND,
    )
    try:
        qty = validate(spec, INSTRUMENTS).legs[0].quantity
    except SpecError as e:
        assert not inst.on_lot(quantity)
        below = inst.snap_qty(quantity)
        assert below <= quantity and inst.on_lot(below)
        if below > 0:
            assert f"e.g. {below} or" in e.errors[0].message
        return
    assert qty == quantity and inst.on_lot(qty)


def test_order_prefix_separates_runs_and_fits_the_venues_ids():
    assert order_prefix("b1", 1, "k3x9", "btc") == "b1.1k3x9"
    assert client_order_id(order_prefix("b1", 1, "k3x9", "btc"), "btc", 7) == "b1.1k3x9-btc-7"
    # Within a journal the run number alone separates runs, whatever the nonce.
    prefixes = {order_prefix("b1", n, "0000", "btc") for n in range(1, 3000)}
    assert len(prefixes) == 2999
    # The longest basket + leg ids a spec may have still fit at run 1,295 ...
    basket, leg = "b" * 12, "l" * 10
    assert len(client_order_id(order_prefix(basket, 1295, "zzzz", leg), leg, MAX_CHILD_SEQ)) == 36
    # ... and past it the nonce gives way, never the number.
    long_run = order_prefix(basket, 46_655, "zzzz", leg)  # "zzz" in base 36
    assert long_run == f"{basket}.zzzzzz"
    assert len(client_order_id(long_run, leg, MAX_CHILD_SEQ)) == MAX_CLIENT_ORDER_ID_LEN
    with pytest.raises(ValueError, match="basket_id: run"):
        order_prefix(basket, 36**8, "zzzz", leg)
