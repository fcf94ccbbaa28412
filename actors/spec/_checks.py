"""Helpers the loader, the validator and the rebalance planner share: shown values, lookups."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.spec.model import (
    ACTIVATION_USD,
    HYSTERESIS_USD,
    FieldError,
    HedgeSpec,
    Instruments,
    Prices,
)
from venues.model import Instrument


def _venue(
    venue: object, at: str, instruments: Instruments, errors: list[FieldError]
) -> Mapping[str, Instrument] | None:
    """The instruments a venue lists, or None after recording that the venue is unknown."""
    if isinstance(venue, str) and venue in instruments:
        return instruments[venue]
    known = ", ".join(sorted(instruments)) or "none"
    errors.append(FieldError(at, f"{_show(venue)} is not a known venue; known venues: {known}"))
    return None


def _instrument(
    venue: object,
    symbol: object,
    venue_path: str,
    symbol_path: str,
    instruments: Instruments,
    errors: list[FieldError],
) -> Instrument | None:
    listed = _venue(venue, venue_path, instruments, errors)
    if listed is None:
        return None
    inst = listed.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        errors.append(
            FieldError(
                symbol_path,
                f"{_show(symbol)} is not listed on venue {venue}; {venue} lists "
                f"{', '.join(sorted(listed)) or 'nothing'}",
            )
        )
    return inst


def _price(prices: Prices | None, venue: str, symbol: str) -> Decimal | None:
    if prices is None:
        return None
    price = prices.get((venue, symbol))
    if price is None:
        return None
    try:
        return price if isinstance(price, Decimal) else Decimal(str(price))
    except InvalidOperation:
        return Decimal("NaN")


def _decimal(value: object, at: str, errors: list[FieldError]) -> Decimal | None:
    """A Decimal from a Python-built field (Decimal, int or a decimal string)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            pass
    errors.append(FieldError(at, f"{_show(value)} is not a number"))
    return None


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def _type_name(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _choices(type_: Any) -> str:
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return ", ".join(str(m.value) for m in type_)
    return ""


# --- the hedge's decision parameters -------------------------------------------------------
# name → (lowest, highest, whether the lowest is allowed, what the field is)
_HEDGE_FIGURES: dict[str, tuple[float, float, bool, str]] = {
    "activation_share": (0.0, 1.0, False, "a share of the basket's gross one-day risk"),
    "hysteresis_share": (0.0, 1.0, True, "a share of the basket's gross notional"),
    "risk_price": (0.0, 1e6, False, "USD of cost per USD of 1σ risk removed"),
    "enter_ratio": (0.0, 1e6, False, "a value / cost ratio"),
    "exit_ratio": (0.0, 1e6, True, "a value / cost ratio"),
    "min_hold_s": (0.0, 86_400.0, True, "seconds"),
    "fee_bps": (0.0, 1_000.0, True, "basis points"),
    "impact_bps_per_musd": (0.0, 10_000.0, True, "basis points per $1M"),
    "maker_fee_bps": (-1_000.0, 1_000.0, True, "basis points (negative: a rebate)"),
    "rest_s": (0.0, 3_600.0, True, "seconds"),
}


def check_hedge_decision(hedge: HedgeSpec, errors: list[FieldError]) -> None:
    """`[hedge]`'s relative thresholds and decision parameters: each within its range,
    `exit_ratio` <= `enter_ratio` (else the hedge would leave as soon as it entered), and
    a share given instead of, not beside, its dollar figure."""
    good: dict[str, float] = {}
    for name, (low, high, low_ok, what) in _HEDGE_FIGURES.items():
        value = getattr(hedge, name, None)
        if value is None:
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        figure = float(value) if ok else math.nan
        if (
            not math.isfinite(figure)
            or not (low <= figure <= high)
            or (figure == low and not low_ok)
        ):
            lower = f"{low:g} {'<=' if low_ok else '<'}"
            errors.append(
                FieldError(
                    f"hedge.{name}",
                    f"{_show(value)} is not accepted; accepted: {what}, {lower} {name} <= {high:g}",
                )
            )
        else:
            good[name] = figure
    enter, leave = good.get("enter_ratio"), good.get("exit_ratio")
    if enter is not None and leave is not None and leave > enter:
        errors.append(
            FieldError(
                "hedge.exit_ratio",
                f"{_show(leave)} is above hedge.enter_ratio ({_show(enter)}); accepted: "
                "exit_ratio <= enter_ratio, so that a hedge does not leave as soon as it enters",
            )
        )
    for share, usd, default in (
        ("activation_share", "activation_usd", ACTIVATION_USD),
        ("hysteresis_share", "hysteresis_usd", HYSTERESIS_USD),
    ):
        if getattr(hedge, share, None) is not None and getattr(hedge, usd, default) != default:
            errors.append(
                FieldError(
                    f"hedge.{share}",
                    f"given beside hedge.{usd} ({_show(getattr(hedge, usd))}); accepted: one "
                    f"of them, the share relative to the basket or the figure in USD",
                )
            )
