"""Fuzzing the basket and configuration loaders: the example files with values mutated (huge,
tiny, NaN, infinite, negative, of the wrong type, in Unicode digits, nested deep) or their
text damaged. Whatever comes in, the loaders (and `validate` after them) answer with their
own error, naming the field, or a spec that is within every bound: never another exception.
"""

from __future__ import annotations

import math
import re
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.spec import SpecError, load_basket, parse_basket, validate, venue_instruments
from actors.spec.bounds import check_bounds
from cluster.config import load_cluster, parse_cluster
from venues.config import ConfigError, load_venues

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BASKETS = [
    (EXAMPLES / name).read_text()
    for name in (
        "synthetic_eth.toml",
        "synthetic_eth_quick.toml",
        "pair_cross_venue.toml",
        "rebalance_btc_eth.toml",
        "index_btc_eth_sol.toml",
    )
]
CONFIG = (EXAMPLES / "venues.toml").read_text()
INSTRUMENTS = venue_instruments(load_venues(EXAMPLES / "venues.toml"))
MIDS = {
    "BTCUSDT": Decimal("60000"),
    "ETHUSDT": Decimal("2600"),
    "SOLUSDT": Decimal("150"),
    "STETHUSDT": Decimal("2597.4"),
    "IDXUSDT": Decimal("1000"),
}
PRICES = {(v, s): MIDS[s] for v, listed in INSTRUMENTS.items() for s in listed}
SOURCE = "c.toml"
# A configuration error names the file, then a field under one of the file's tables.
NAMES_A_FIELD = re.compile(rf"{re.escape(SOURCE)}: (venues|engine|hedge|risk)\b[^:\n]*: \S")
# Deeper than the recursion limit, even the one hypothesis raises while a test runs.
DEEP = 5_000
# A warning (numpy's overflow in the risk model, say) is a value that got too far: an error.
pytestmark = pytest.mark.filterwarnings("error")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- values ----------------------------------------------------------------------------
def _deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


NASTY = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            1,
            2**63,
            -(2**63) - 1,
            10**30,
            0.0,
            -0.0,
            1e300,
            -1e300,
            1e-300,
            1e-10,
            math.inf,
            -math.inf,
            math.nan,
            Decimal("1e25"),
            Decimal("1e-30"),
            Decimal("-5"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("0.1234567890123456789012345678901234567890"),
            True,
            "",
            "²",
            "١٢",
            "12\n",
            "now",
            "start",
            "x" * 300,
            "\x00",
            "2025-06-01T12:00:00Z",
            "0001-01-01T00:00:00+01:00",
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-1))),
            datetime(1969, 12, 31, tzinfo=UTC),
            datetime(2025, 6, 1, tzinfo=UTC),
            [],
            {},
            [1, "a"],
            {"a": 1},
            _deep(60),
            None,
        ]
    ),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=20),
)


def _paths(data: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in nested tables and lists: where a mutation may land."""
    out = [at] if at else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*at, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*at, i))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _set(data[head], rest, value)}
    copy = list(data)
    copy[head] = _set(copy[head], rest, value)
    return copy


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A document with one to three of its values replaced by nasty ones."""
    data = draw(st.sampled_from(documents))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        data = _set(data, path, draw(NASTY))
    return data


def toml(data: dict[str, Any]) -> str | None:
    """TOML for `data` (every table inline); None when a value has no TOML form."""
    try:
        return "".join(f"{_string(str(k))} = {_value(v)}\n" for k, v in data.items())
    except ValueError:
        return None


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        if v.is_snan():
            raise ValueError("no TOML form")
        return "nan" if v.is_nan() else ("inf" if v > 0 else "-inf") if v.is_infinite() else str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_string(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    raise ValueError("no TOML form")  # None


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


@st.composite
def damaged(draw: st.DrawFn, texts: list[str]) -> str:
    """A document's text cut, spliced with junk, or nested far too deep."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        junk = draw(
            st.one_of(
                st.text(max_size=12),
                st.sampled_from(
                    [
                        f"\nnested = {'[' * DEEP}{']' * DEEP}\n",
                        f"\nnested = {'{a = ' * DEEP}1{'}' * DEEP}\n",
                        "[" * DEEP,
                        "= 1e99999",
                        '"\\u0000"',
                        "²",
                    ]
                ),
            )
        )
        text = text[:i] + junk + text[j:]
    return text


# --- baskets ---------------------------------------------------------------------------
BASKET_DATA = [tomllib.loads(t, parse_float=Decimal) for t in BASKETS]


def check_basket(load: Any, *, fields: bool) -> None:
    """`load()` gives a spec within its bounds that `validate` resolves or refuses, or
    raises `SpecError` whose every error names a field (`fields`: a damaged text may be
    refused as a whole, "not valid TOML")."""
    try:
        spec = load()
        assert check_bounds(spec) == []
        validate(spec, INSTRUMENTS, PRICES)
    except SpecError as e:
        assert e.errors
        for error in e.errors:
            assert error.path or not fields, error
            assert error.message and "Traceback" not in error.message


@FUZZ
@given(mutated(BASKET_DATA))
def test_mutated_baskets_load_or_name_the_field(data: dict[str, Any]) -> None:
    check_basket(lambda: parse_basket(data), fields=True)
    text = toml(data)
    if text is not None:
        check_basket(lambda: load_basket(text), fields=True)


@FUZZ
@given(damaged(BASKETS))
def test_damaged_basket_text_is_a_spec_error(text: str) -> None:
    check_basket(lambda: load_basket(text), fields=False)


# --- venue and cluster configurations --------------------------------------------------
CONFIG_DATA = [tomllib.loads(CONFIG)]


def check_config(load: Any, *, fields: bool, source: str = SOURCE) -> None:
    """`load()` gives a configuration or raises `ConfigError` naming the file and (`fields`:
    a damaged text may be refused as a whole, "not valid TOML") the field."""
    try:
        load()
    except ConfigError as e:
        message = str(e)
        assert "Traceback" not in message
        assert message.startswith(f"{source}: "), message
        if fields:
            assert NAMES_A_FIELD.match(message), message


@FUZZ
@given(mutated(CONFIG_DATA))
def test_mutated_configs_load_or_name_the_field(data: dict[str, Any]) -> None:
    check_config(lambda: parse_cluster(data, source=SOURCE), fields=True)
    text = toml(data)
    if text is not None:
        check_config(lambda: parse_cluster(tomllib.loads(text), source=SOURCE), fields=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=damaged([CONFIG]))
def test_damaged_config_text_is_a_config_error(text: str, scratch: Path) -> None:
    path = scratch / "c.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: not UTF-8
    check_config(lambda: load_cluster(path), fields=False, source=str(path))
    check_config(lambda: load_venues(path), fields=False, source=str(path))
