"""Request parameters as Binance reads and checks them, and its HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeVar
from urllib.parse import parse_qsl

from venues.model import Instrument, NewOrder
from venues.sim.server.errors import BinanceError, _illegal, _invalid, _missing

T = TypeVar("T")

MAX_PARAMS = 64
# Binance's legal ranges, in ASCII digits: `str.isdigit()` takes "²" (which `int()` then
# refuses), `int()` and `Decimal()` take "١٢" and "12\n", and `$` matches before a trailing
# newline, so a value must match whole (`fullmatch`).
_DECIMAL = re.compile(r"([0-9]{1,20})(\.[0-9]{1,20})?")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
RespType = Literal["ACK", "RESULT", "FULL"]  # FULL: spot only, RESULT with the fills


class Params:
    """A request's parameters with Binance's checks: each getter raises `BinanceError`."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self.items = dict(items)

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.items.get(name)
        if value is None or value == "":
            if required:
                raise _missing(name)
            if value == "":
                raise BinanceError(-1105, f"Parameter '{name}' was empty.")
            return None
        return value

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _DECIMAL.fullmatch(value):
            raise _illegal(name, r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
        return Decimal(value)

    def integer(
        self, name: str, *, required: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
            raise _illegal(name, "^-?[0-9]{1,19}$")
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _invalid(name, f"expected {low}-{high}, got {number}")
        return number

    def choice(
        self, name: str, choices: Mapping[str, T], error: BinanceError, *, required: bool = False
    ) -> T | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if value not in choices:
            raise error
        return choices[value]

    def boolean(self, name: str) -> bool:
        value = self.text(name)
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            raise _invalid(name, "expected true or false")
        return value.lower() == "true"


def _pairs(raw: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except ValueError:
        raise BinanceError(-1101, f"Too many parameters sent for this endpoint ({what}).") from None


def _merge(query: list[tuple[str, str]], body: list[tuple[str, str]]) -> dict[str, str]:
    """Query and body parameters; a name sent in both takes the query's value (Binance)."""
    out: dict[str, str] = {}
    for source in (body, query):
        seen: set[str] = set()
        for k, v in source:
            if k in seen:
                raise BinanceError(-1101, "Duplicate values for a parameter detected.")
            seen.add(k)
            out[k] = v
    return out


def _without_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if not p.startswith("signature="))


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature (lowercase hex) of `payload` (query + body)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class _OrderSpec:
    order: NewOrder
    inst: Instrument
    resp: RespType
