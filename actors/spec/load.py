"""Reading and writing basket specification files: TOML to structs and back."""

from __future__ import annotations

import json
import math
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.spec._checks import _choices, _show, _type_name
from actors.spec.bounds import check_bounds
from actors.spec.model import (
    MAX_START_NS,
    BasketSpec,
    ExecutionParams,
    FieldError,
    HedgeSpec,
    LegSpec,
    RebalanceSpec,
    Spec,
    SpecError,
)
from venues.instants import parse_instant

Hook = Callable[[Any, str], Any]

MAX_SPEC_CHARS = 1_000_000  # a basket of MAX_LEGS legs is a few kB


# --- loading ---------------------------------------------------------------------------
def parse_start(value: object) -> int | Literal["now"]:
    """A start time as legato keeps it: "now", or ns since the epoch (`parse_instant`), from
    1970 to 2099 (`MAX_START_NS`); ValueError names the value and what is accepted."""
    try:
        ns = parse_instant(value, keyword="now", what="a start time")
    except OverflowError:  # a date-time whose offset takes it out of datetime's years 1-9999
        ns = -1
    if ns is not None and not 0 <= ns < MAX_START_NS:
        raise ValueError(
            f'{_show(value)} is not a start time from 1970 to 2099; accepted: "now", a '
            'date-time from "1970-01-01T00:00:00Z" to "2099-12-31T23:59:59Z", or ns since the '
            f"epoch from 0 to {MAX_START_NS - 1}"
        )
    return "now" if ns is None else ns


def load_basket(source: Path | str) -> BasketSpec | RebalanceSpec:
    """A basket from a TOML file (a `Path`, or a `str` naming a `.toml` file) or TOML text.

    `kind = "basket"` or `"rebalance"`; without it, the form is inferred from `legs` or
    `targets`. Raises `SpecError` listing every field of the wrong type, unknown, missing
    or outside its bounds (`check_bounds`, docs/basket.md "Limits"), before anything starts;
    `validate` checks the rest against the venues.
    """
    name: str | None = None
    if isinstance(source, Path) or ("\n" not in source and source.strip().endswith(".toml")):
        path = Path(source)
        name = str(path)
        try:
            with path.open(encoding="utf-8") as f:
                text = f.read(MAX_SPEC_CHARS + 1)  # bounded: a path may name a device
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            error = FieldError("", f"cannot read {path}: {why or e}")
            raise SpecError([error], source=name) from None
    else:
        text = source
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError(
            [FieldError("", f"longer than {MAX_SPEC_CHARS:,} characters; a basket is far less")],
            source=name,
        )
    try:
        data = tomllib.loads(text, parse_float=Decimal)  # exact decimals for quantities
    except tomllib.TOMLDecodeError as e:
        raise SpecError([FieldError("", f"not valid TOML: {e}")], source=name) from None
    except RecursionError:
        raise SpecError(
            [FieldError("", "not valid TOML here: arrays or tables nested too deeply")],
            source=name,
        ) from None
    return parse_basket(data, source=name)


def parse_basket(data: Mapping[str, Any], *, source: str | None = None) -> Spec:
    """A basket from already-parsed TOML (or JSON) data; see `load_basket`."""
    if not isinstance(data, Mapping):
        error = FieldError("", f"expected a table of a basket's fields, got {_type_name(data)}")
        raise SpecError([error], source=source)
    errors: list[FieldError] = []
    kind = data.get("kind")
    if kind is None:
        if "legs" in data and "targets" not in data:
            kind = "basket"
        elif "targets" in data and "legs" not in data:
            kind = "rebalance"
    cls: type[BasketSpec] | type[RebalanceSpec]
    if kind == "basket":
        cls = BasketSpec
    elif kind == "rebalance":
        cls = RebalanceSpec
    else:
        shown = "missing" if kind is None else _show(kind)
        raise SpecError(
            [
                FieldError(
                    "kind",
                    f'{shown}; accepted: "basket" (a [[legs]] list) or "rebalance" '
                    "(a [targets] table); without kind, exactly one of legs or targets",
                )
            ],
            source=source,
        )
    body = {k: v for k, v in data.items() if k != "kind"}
    start: Hook = lambda raw, at: _start(raw, at, errors)  # noqa: E731
    nested: dict[str, Hook] = {
        "params": lambda raw, at: _convert(ExecutionParams, raw, at, errors, {"start": start}),
        "hedge": lambda raw, at: _convert(HedgeSpec, raw, at, errors),
        "legs": lambda raw, at: _convert_legs(raw, at, errors),
    }
    spec = _convert(cls, body, "", errors, nested)
    if errors or spec is None:
        raise SpecError(errors, source=source)
    # The values' bounds need no venue: a file beyond them is refused before anything starts.
    errors = check_bounds(spec)
    if errors:
        raise SpecError(errors, source=source, basket_id=spec.basket_id)
    return spec


def _start(raw: Any, at: str, errors: list[FieldError]) -> Any:
    try:
        return parse_start(raw)
    except ValueError as e:
        errors.append(FieldError(at, str(e)))
        return None


def _convert_legs(raw: Any, at: str, errors: list[FieldError]) -> list[LegSpec] | None:
    if not isinstance(raw, list):
        errors.append(FieldError(at, f"expected a list of [[legs]] tables, got {_type_name(raw)}"))
        return None
    legs = [_convert(LegSpec, item, f"{at}[{i}]", errors) for i, item in enumerate(raw)]
    return None if any(leg is None for leg in legs) else legs  # type: ignore[return-value]


def _convert(
    cls: type[Any],
    raw: Any,
    at: str,
    errors: list[FieldError],
    nested: Mapping[str, Hook] | None = None,
) -> Any:
    """`cls` from a table, one field at a time so that every bad field is reported."""
    if not isinstance(raw, Mapping):
        errors.append(FieldError(at, f"expected a table, got {_type_name(raw)}"))
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    accepted = ", ".join(fields)
    values: dict[str, Any] = {}
    ok = True
    for key, value in raw.items():
        path = _join(at, key)
        field = fields.get(key)
        if field is None:
            errors.append(FieldError(path, f"unknown field; accepted here: {accepted}"))
            ok = False
            continue
        hook = (nested or {}).get(key)
        if hook is not None:
            # A hook records its own errors and returns None for a value it refused.
            values[field.name] = converted = hook(value, path)
            ok = ok and converted is not None
            continue
        try:
            values[field.name] = msgspec.convert(value, field.type)
        except msgspec.ValidationError as e:
            errors.append(FieldError(path, _type_message(e, value, field.type)))
            ok = False
        except (ValueError, ArithmeticError):  # e.g. a signalling NaN where a float goes
            errors.append(FieldError(path, f"{_show(value)} is not a number accepted here"))
            ok = False
    for key, field in fields.items():
        if field.required and key not in raw:
            errors.append(FieldError(_join(at, key), "required field is missing"))
            ok = False
    return cls(**values) if ok else None


def _type_message(error: msgspec.ValidationError, value: object, type_: Any) -> str:
    message = str(error).partition(" - at `")[0].replace("`", "")
    # An optional enum (a leg's own `child_style`) offers the enum's values.
    choices = _choices(type_) or next((c for c in map(_choices, typing.get_args(type_)) if c), "")
    if message.startswith("Invalid enum value") or (choices and "Expected" in message):
        return f"{_show(value)} is not accepted; accepted: {choices}"
    if message.startswith("Expected"):
        message = "expected" + message.removeprefix("Expected").replace(" | null", "")
        message = message.replace("decimal", "a number").replace("float", "a number")
    return f"{message} ({_show(value)})"


# --- dumping ---------------------------------------------------------------------------
def dump_basket(spec: Spec) -> str:
    """The spec as TOML text that `load_basket` reads back to an equal spec."""
    data = msgspec.to_builtins(spec, builtin_types=(Decimal,))
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        if not table:
            continue  # an empty table reads back as its default (venues = {})
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None
            ]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float) and not _finite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _finite(value: int | float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _join(at: str, key: object) -> str:
    return f"{at}.{key}" if at else str(key)
