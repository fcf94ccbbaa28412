"""Helpers the loader, the validator and the rebalance planner share: shown values, lookups."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.spec.model import FieldError, Instruments, Prices
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
