"""The bounds of a spec's values, checked without the venues: before anything starts.

`check_bounds` is what `load_basket` runs on every file it reads; `validate` runs the same
checks field by field (with the venues' own checks beside them) for specs built in Python.
The bounds themselves are `actors.spec.model`'s `MIN_*`/`MAX_*` constants.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from decimal import Decimal

from actors.spec._checks import _choices, _decimal, _show, _type_name, check_hedge_decision
from actors.spec.model import (
    DEFAULT_BAND,
    MAX_AMOUNT,
    MAX_FUNDING_TIMEOUT_S,
    MAX_GRACE_S,
    MAX_HEDGE_INSTRUMENTS,
    MAX_HORIZON_S,
    MAX_LEGS,
    MAX_SLICES,
    MAX_SLIPPAGE_BPS,
    MAX_START_NS,
    MIN_HORIZON_S,
    MIN_SLICE_S,
    BasketSpec,
    ChildStyle,
    ExecutionParams,
    FieldError,
    HedgeSpec,
    OnUnfunded,
    Spec,
)

QUANTITY = "a quantity in base units"
USD = "a USD amount"
_MAX_USD = float(MAX_AMOUNT)
_MAX_SHOWN = f"{MAX_AMOUNT:,}"


def check_bounds(spec: Spec) -> list[FieldError]:
    """Every value of `spec` outside its bounds, each with its path (docs/basket.md, Limits)."""
    errors: list[FieldError] = []
    if isinstance(spec, BasketSpec):
        if count(spec.legs, "legs", MAX_LEGS, errors):
            for i, leg in enumerate(spec.legs):
                at = f"legs[{i}]"
                if leg.quantity is not None:
                    amount(leg.quantity, f"{at}.quantity", QUANTITY, errors)
                if leg.notional_usd is not None:
                    amount(leg.notional_usd, f"{at}.notional_usd", USD, errors)
                slippage(leg.max_slippage_bps, f"{at}.max_slippage_bps", errors, optional=True)
                if leg.child_style is not None:
                    child_style(leg.child_style, f"{at}.child_style", errors)
    else:
        amount(spec.total_usd, "total_usd", USD, errors)
        if count(spec.targets, "targets", MAX_LEGS, errors):
            for symbol, raw in spec.targets.items():
                weight(raw, f"targets.{symbol}", errors)
    check_params(spec.params, errors)
    if isinstance(spec.hedge, HedgeSpec):
        check_hedge_values(spec.hedge, errors)
    return errors


# --- one value -------------------------------------------------------------------------
def count(items: Sized, at: str, most: int, errors: list[FieldError]) -> bool:
    """True when `items` has at most `most` entries; else records the error."""
    if len(items) <= most:
        return True
    errors.append(FieldError(at, f"{len(items)} entries; accepted: at most {most}"))
    return False


def amount(value: object, at: str, what: str, errors: list[FieldError]) -> Decimal | None:
    """A quantity or a USD amount: finite, > 0 and at most `MAX_AMOUNT`."""
    number = _decimal(value, at, errors)
    if number is None:
        return None
    if not number.is_finite() or not 0 < number <= MAX_AMOUNT:
        errors.append(FieldError(at, f"{_show(number)} is not {what} > 0 and <= {_MAX_SHOWN}"))
        return None
    return number


def weight(value: object, at: str, errors: list[FieldError]) -> Decimal | None:
    """A rebalance target weight, from 0 (close the position) to 1."""
    number = _decimal(value, at, errors)
    if number is None:
        return None
    if not number.is_finite() or not 0 <= number <= 1:
        errors.append(
            FieldError(at, f"{_show(number)} is not a weight; accepted: 0 <= weight <= 1")
        )
        return None
    return number


def number(value: object, at: str, errors: list[FieldError], accepted: str) -> float | None:
    """A finite float from a numeric field, or None after recording the error."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            result = float(value)
        except (ValueError, OverflowError):  # a signalling NaN; an int beyond any float
            result = math.nan
        if math.isfinite(result):
            return result
    errors.append(FieldError(at, f"{_show(value)} is not a finite number; accepted: {accepted}"))
    return None


def slippage(
    value: object, at: str, errors: list[FieldError], *, optional: bool = False
) -> float | None:
    if value is None and optional:
        return None
    bps = number(value, at, errors, f"basis points within (0, {MAX_SLIPPAGE_BPS:g}]")
    if bps is not None and not 0 < bps <= MAX_SLIPPAGE_BPS:
        errors.append(
            FieldError(
                at,
                f"{_show(bps)} bp is outside (0, {MAX_SLIPPAGE_BPS:g}]; the largest distance "
                "from the arrival price a child order may trade at, e.g. 25",
            )
        )
        return None
    return bps


def child_style(value: object, at: str, errors: list[FieldError]) -> None:
    """A child style: one of `ChildStyle`'s values."""
    if value not in tuple(ChildStyle):
        errors.append(
            FieldError(at, f"{_show(value)} is not accepted; accepted: {_choices(ChildStyle)}")
        )


def usd(value: object, at: str, errors: list[FieldError], *, zero: bool) -> float | None:
    """A USD figure of the params or the hedge: finite, >= 0 (`zero`) or > 0, <= 1e12."""
    accepted = f"USD {'>=' if zero else '>'} 0 and <= {_MAX_SHOWN}"
    figure = number(value, at, errors, accepted)
    if figure is None:
        return None
    if figure < 0 or (figure == 0 and not zero):
        what = "is negative; USD >= 0" if zero else "is not a positive USD amount"
        errors.append(FieldError(at, f"{_show(figure)} {what}"))
        return None
    if figure > _MAX_USD:
        errors.append(FieldError(at, f"{_show(figure)} USD is too much; accepted: {accepted}"))
        return None
    return figure


# --- the sections ----------------------------------------------------------------------
def check_params(params: object, errors: list[FieldError]) -> None:
    """`[params]`: every figure within its bounds, the slices within the horizon."""
    if not isinstance(params, ExecutionParams):
        errors.append(FieldError("params", f"expected ExecutionParams, got {_type_name(params)}"))
        return
    at = "params"
    _check_start(params.start, errors)
    horizon = number(
        params.horizon_s,
        f"{at}.horizon_s",
        errors,
        f"seconds from {MIN_HORIZON_S:g} to {MAX_HORIZON_S:g} (7 days)",
    )
    if horizon is not None and not MIN_HORIZON_S <= horizon <= MAX_HORIZON_S:
        errors.append(
            FieldError(
                f"{at}.horizon_s",
                f"{_show(horizon)} s is outside {MIN_HORIZON_S:g}-{MAX_HORIZON_S:g} s; "
                f"accepted: a schedule from 1 s to 7 days",
            )
        )
        horizon = None
    slippage(params.max_slippage_bps, f"{at}.max_slippage_bps", errors)
    cap = number(params.participation_cap, f"{at}.participation_cap", errors, "within (0, 1]")
    if cap is not None and not 0 < cap <= 1:
        errors.append(
            FieldError(
                f"{at}.participation_cap",
                f"{_show(cap)} is outside (0, 1]; the largest share of the venue's traded "
                "volume a leg may take, e.g. 0.1",
            )
        )
    if params.band is not None and params.band_risk_usd is not None:
        errors.append(
            FieldError(
                f"{at}.band",
                "give either band (a completion fraction) or band_risk_usd (a dollar-risk "
                "limit), not both",
            )
        )
    if params.band is not None:
        band = number(params.band, f"{at}.band", errors, "within (0, 1)")
        if band is not None and not 0 < band < 1:
            errors.append(
                FieldError(
                    f"{at}.band",
                    f"{_show(band)} is outside (0, 1); a completion fraction such as "
                    f"{DEFAULT_BAND}",
                )
            )
    if params.band_risk_usd is not None:
        usd(params.band_risk_usd, f"{at}.band_risk_usd", errors, zero=False)
    child_style(params.child_style, f"{at}.child_style", errors)
    if params.pov_rate is not None:
        pov = number(params.pov_rate, f"{at}.pov_rate", errors, "within (0, participation_cap]")
        top = cap if cap is not None and 0 < cap <= 1 else 1.0
        if pov is not None and not 0 < pov <= top:
            errors.append(
                FieldError(
                    f"{at}.pov_rate",
                    f"{_show(pov)} is outside (0, {_show(top)}]; the share of the venue's "
                    "traded volume a `pov` leg aims at, at most participation_cap, e.g. 0.05",
                )
            )
    _check_slice(params.slice_s, horizon, errors)
    grace = number(params.grace_s, f"{at}.grace_s", errors, f"seconds from 0 to {MAX_GRACE_S:g}")
    if grace is not None and grace < 0:
        errors.append(FieldError(f"{at}.grace_s", f"{_show(grace)} is negative; seconds >= 0"))
    elif grace is not None and grace > MAX_GRACE_S:
        errors.append(
            FieldError(
                f"{at}.grace_s",
                f"{_show(grace)} s is more than {MAX_GRACE_S:g} s; accepted: seconds from 0 "
                "to 86400 (a day)",
            )
        )

    if params.on_unfunded not in tuple(OnUnfunded):
        errors.append(
            FieldError(
                f"{at}.on_unfunded",
                f"{_show(params.on_unfunded)} is not accepted; accepted: {_choices(OnUnfunded)}",
            )
        )
    timeout = number(
        params.funding_timeout_s,
        f"{at}.funding_timeout_s",
        errors,
        f"seconds from 1 to {MAX_FUNDING_TIMEOUT_S:g}",
    )
    if timeout is not None and not 1 <= timeout <= MAX_FUNDING_TIMEOUT_S:
        errors.append(
            FieldError(
                f"{at}.funding_timeout_s",
                f"{_show(timeout)} is not accepted; accepted: seconds from 1 to "
                f"{MAX_FUNDING_TIMEOUT_S:g} (a day)",
            )
        )


def _check_start(start: object, errors: list[FieldError]) -> None:
    at = "params.start"
    if not (start == "now" or (isinstance(start, int) and not isinstance(start, bool))):
        errors.append(
            FieldError(
                at,
                f'{_show(start)} is not accepted; accepted: "now" or ns since the epoch '
                "(parse_start converts an ISO-8601 date-time)",
            )
        )
    elif isinstance(start, int) and start < 0:
        errors.append(FieldError(at, f"{start} is negative; ns since the epoch >= 0"))
    elif isinstance(start, int) and start >= MAX_START_NS:
        errors.append(
            FieldError(
                at,
                f"{start} is in the year 2100 or later; accepted: ns since the epoch below "
                f"{MAX_START_NS} (2100-01-01T00:00:00Z)",
            )
        )


def _check_slice(value: object, horizon: float | None, errors: list[FieldError]) -> None:
    at = "params.slice_s"
    slice_s = number(value, at, errors, f"seconds from {MIN_SLICE_S:g} to horizon_s")
    if slice_s is None:
        return
    if slice_s < MIN_SLICE_S:
        shown = "is not > 0 seconds" if slice_s <= 0 else "s is shorter than 10 ms"
        errors.append(
            FieldError(
                at,
                f"{_show(slice_s)} {shown}; accepted: {MIN_SLICE_S:g} <= slice_s <= horizon_s",
            )
        )
    elif horizon is not None and slice_s > horizon:
        errors.append(
            FieldError(
                at,
                f"{_show(slice_s)} s is longer than the horizon ({_show(horizon)} s); "
                f"accepted: {MIN_SLICE_S:g} <= slice_s <= horizon_s",
            )
        )
    elif horizon is not None and (slices := math.ceil(horizon / slice_s)) > MAX_SLICES:
        errors.append(
            FieldError(
                at,
                f"{_show(slice_s)} s cuts the {_show(horizon)} s horizon into {slices} slices; "
                f"accepted: at most {MAX_SLICES} slices per leg, slice_s >= "
                f"{_show(horizon / MAX_SLICES)} s",
            )
        )


def check_hedge_values(hedge: HedgeSpec, errors: list[FieldError]) -> None:
    """`[hedge]`: its thresholds and how many instruments it lists."""
    for name in ("activation_usd", "hysteresis_usd"):
        usd(getattr(hedge, name), f"hedge.{name}", errors, zero=True)
    count(hedge.instruments, "hedge.instruments", MAX_HEDGE_INSTRUMENTS, errors)
    check_hedge_decision(hedge, errors)  # the relative thresholds and the decision rule
