"""`--set KEY=VALUE`: command-line overrides of a basket file's fields, before it is parsed."""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.spec._checks import _show
from actors.spec.load import MAX_SPEC_CHARS, load_basket, parse_basket
from actors.spec.model import FieldError, Spec, SpecError

# The field that names an item of a list of tables (`legs.eth.quantity`), as LegSpec has it.
ITEM_ID_FIELD = "leg_id"


class OverrideError(SpecError):
    """A `--set` that cannot be applied; its message is one line naming the override."""

    def __init__(self, override: str, message: str) -> None:
        self.override = override
        self.message = message
        shown = override if override.isprintable() else repr(override)  # one line, always
        super().__init__([FieldError(f"--set {shown}", message)])
        self.args = (f"--set {shown}: {message}",)  # not SpecError's list of errors

    def __reduce__(self) -> tuple[Any, ...]:
        return (OverrideError, (self.override, self.message))


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the TOML document `raw` with each `KEY=VALUE` of `overrides` set, in order.

    KEY is a dotted path: `params.horizon_s`, `basket_id`, `hedge.activation_usd`; an item
    of a list by its position (`legs.0.quantity`) or, in a list of tables, by its `leg_id`
    (`legs.eth.quantity`). VALUE is read as a TOML value (`120`, `1.5`, `true`, `"x"`,
    `[1, 2]`, `{venue = "alpha"}`), its floats as `Decimal` like the file's own, and is a
    plain string where it is not TOML (`wait`). Every step but the last must exist in the
    document; the last may be a new key, which the loader then accepts or refuses as it
    would in the file. Raises `OverrideError` naming the override and what is accepted.
    """
    doc = copy.deepcopy(raw)
    for override in overrides:
        key, value = _split(override)
        steps = key.split(".")
        node: Any = doc
        for i, step in enumerate(steps[:-1]):
            node = _child(node, step, steps[:i], override)
        _set(node, steps[-1], steps[:-1], value, override)
    return doc


def load_basket_with_overrides(path: Path, overrides: Sequence[str]) -> Spec:
    """`load_basket(path)` with `overrides` (`apply_overrides`) set in its TOML first, so
    that the loader's validation judges the result; a refused result names the overrides."""
    if not overrides:
        return load_basket(path)
    raw = _read_toml(path)
    if raw is None:
        # Unreadable, too long or not TOML: the loader names what is wrong, as without --set.
        load_basket(path)
        raise SpecError([FieldError("", "changed while it was read")], source=str(path))
    data = apply_overrides(raw, overrides)
    try:
        return parse_basket(data, source=str(path))
    except SpecError as e:
        source = f"{path} with --set {' '.join(overrides)}"
        raise SpecError(e.errors, source=source, basket_id=e.basket_id) from None


def _read_toml(path: Path) -> dict[str, Any] | None:
    """The file's TOML as `load_basket` reads it, or None where `load_basket` would refuse."""
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read(MAX_SPEC_CHARS + 1)
        if len(text) > MAX_SPEC_CHARS:
            return None
        return tomllib.loads(text, parse_float=Decimal)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return None


def _split(override: str) -> tuple[str, Any]:
    key, eq, text = override.partition("=")
    key = key.strip()
    if not eq:
        raise OverrideError(override, "expected KEY=VALUE, e.g. params.horizon_s=120")
    if not key:
        raise OverrideError(override, "empty key; expected a dotted path, e.g. params.horizon_s")
    if "" in (step.strip() for step in key.split(".")):
        raise OverrideError(
            override, f"empty step in key {key!r}; expected a dotted path, e.g. legs.0.quantity"
        )
    return key, _value(text.strip())


def _value(text: str) -> Any:
    """`text` as a TOML value; itself, a string, where it is not one."""
    try:
        parsed = tomllib.loads(f"value = {text}", parse_float=Decimal)
    except (tomllib.TOMLDecodeError, RecursionError):
        return text
    # A newline in the text could smuggle in more keys: then the text is not one value.
    return parsed["value"] if parsed.keys() == {"value"} else text


def _child(node: Any, step: str, at: list[str], override: str) -> Any:
    """What `step` leads to from `node`, the value at path `at`."""
    if isinstance(node, dict):
        if step not in node:
            raise OverrideError(override, _unknown_key(step, node, at))
        return node[step]
    if isinstance(node, list):
        return node[_index(node, step, at, override)]
    raise OverrideError(override, _not_a_table(node, step, at))


def _set(node: Any, step: str, at: list[str], value: Any, override: str) -> None:
    if isinstance(node, dict):
        node[step] = value  # a new key too: the loader accepts or refuses it
    elif isinstance(node, list):
        node[_index(node, step, at, override)] = value
    else:
        raise OverrideError(override, _not_a_table(node, step, at))


def _index(items: list[Any], step: str, at: list[str], override: str) -> int:
    """The position `step` names in `items`: a number, or an item's `leg_id`."""
    where = _path(at)
    ids = [str(item.get(ITEM_ID_FIELD)) for item in items if isinstance(item, dict)]
    accepted = f"an index from 0 to {len(items) - 1}" if items else "none (it is empty)"
    if ids:
        accepted += f" or a {ITEM_ID_FIELD}: {', '.join(ids)}"
    if step.isdigit():
        if int(step) < len(items):
            return int(step)
        n = len(items)
        message = f"index {step} is out of range: {where} has {n} item{'' if n == 1 else 's'}"
        raise OverrideError(override, f"{message}; accepted: {accepted}")
    found = [
        i
        for i, item in enumerate(items)
        if isinstance(item, dict) and item.get(ITEM_ID_FIELD) == step
    ]
    if len(found) == 1:
        return found[0]
    if found:
        message = f"{len(found)} items of {where} have {ITEM_ID_FIELD} {step!r}"
        raise OverrideError(override, f"{message}; use an index: {', '.join(map(str, found))}")
    close = difflib.get_close_matches(step, ids)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise OverrideError(override, f"no item {step!r} in {where}{hint}; accepted: {accepted}")


def _unknown_key(step: str, table: dict[str, Any], at: list[str]) -> str:
    where = f"in {_path(at)}" if at else "at the top level"
    keys = sorted(table)
    close = difflib.get_close_matches(step, keys)
    hint = f"closest: {', '.join(close)}" if close else "no close match"
    return (
        f"unknown key {step!r} {where} ({hint}); keys there: {', '.join(keys) or 'none'}. "
        f"A table the file lacks is set whole, e.g. {_path([*at, step])}={{...}}"
    )


def _not_a_table(value: Any, step: str | None, at: list[str]) -> str:
    into = f"; cannot go on to {step!r}" if step is not None else ""
    return f"{_path(at)} is {_show(value)}, not a table or a list{into}"


def _path(at: list[str]) -> str:
    return ".".join(at) or "the document"
