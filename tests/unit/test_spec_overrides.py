"""`--set KEY=VALUE`: a basket file's fields overridden before the loader judges them."""

from __future__ import annotations

import copy
import pickle
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.spec import BasketSpec, SpecError, load_basket
from actors.spec.overrides import OverrideError, apply_overrides, load_basket_with_overrides

ROOT = Path(__file__).resolve().parents[2]
BASKET = ROOT / "examples" / "synthetic_eth_quick.toml"


def document() -> dict[str, Any]:
    """The example basket's TOML as the loader reads it (its legs: eth, steth, btc)."""
    return tomllib.loads(BASKET.read_text(encoding="utf-8"), parse_float=Decimal)


def test_a_nested_field_is_set_in_a_copy_and_the_document_is_left_alone() -> None:
    raw = document()
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["params.horizon_s=120"])
    assert out["params"]["horizon_s"] == 120
    assert raw == before
    out["legs"][0]["side"] = "SELL"  # a deep copy: nothing of it is shared with the input
    assert raw == before


def test_a_top_level_field_is_set() -> None:
    assert apply_overrides(document(), ["basket_id=other"])["basket_id"] == "other"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("120", 120),
        ("1.5", Decimal("1.5")),  # floats as Decimal, like the file's own
        ("true", True),
        ('"x"', "x"),
        ("[1, 2]", [1, 2]),
        (
            '{ venue = "alpha", instruments = ["BTCUSDT"] }',
            {"venue": "alpha", "instruments": ["BTCUSDT"]},
        ),
        ("wait", "wait"),  # not TOML: a plain string
        ("BUY", "BUY"),
        ("  120  ", 120),  # spaces around the value are not part of it
        ("", ""),
        ("1\nother = 2", "1\nother = 2"),  # not one value: it must not add a key
    ],
)
def test_a_value_is_read_as_toml_and_as_a_string_where_it_is_not(text: str, value: Any) -> None:
    out = apply_overrides(document(), [f"params.horizon_s={text}"])
    assert out["params"]["horizon_s"] == value
    assert type(out["params"]["horizon_s"]) is type(value)
    assert "other" not in out["params"] and "other" not in out


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_any_value_is_its_toml_reading_or_else_its_own_text(text: str) -> None:
    out = apply_overrides({"params": {}}, [f"params.x={text}"])["params"]
    assert list(out) == ["x"]
    try:
        expected = tomllib.loads(f"x = {text.strip()}", parse_float=Decimal)
    except tomllib.TOMLDecodeError:
        expected = {"x": text.strip()}
    if expected.keys() != {"x"}:
        expected = {"x": text.strip()}
    assert out == expected or out["x"] != out["x"]  # NaN is itself and unequal to itself


def test_a_leg_is_found_by_position_or_by_leg_id() -> None:
    by_position = apply_overrides(document(), ["legs.1.quantity=2"])
    by_id = apply_overrides(document(), ["legs.steth.quantity=2"])
    assert by_position == by_id
    assert [leg.get("quantity") for leg in by_id["legs"]] == [None, 2, None]


def test_an_item_of_a_list_of_values_is_set_by_position() -> None:
    out = apply_overrides(document(), ["hedge.instruments.0=BTCUSDT"])
    assert out["hedge"]["instruments"] == ["BTCUSDT"]


def test_overrides_apply_in_order_and_the_last_wins() -> None:
    out = apply_overrides(
        document(),
        ["params.horizon_s=60", 'legs.eth={ leg_id = "e2", venue = "beta" }', "legs.e2.side=SELL"],
    )
    assert out["params"]["horizon_s"] == 60
    assert out["legs"][0] == {"leg_id": "e2", "venue": "beta", "side": "SELL"}
    assert apply_overrides(document(), ["basket_id=a", "basket_id=b"])["basket_id"] == "b"


def test_a_key_the_file_lacks_is_added_for_the_loader_to_judge() -> None:
    out = apply_overrides({"params": {"horizon_s": 10}}, ["params.max_slippage_bps=5"])
    assert out == {"params": {"horizon_s": 10, "max_slippage_bps": 5}}


def test_the_key_is_stripped_of_spaces() -> None:
    assert apply_overrides(document(), [" params.horizon_s = 7 "])["params"]["horizon_s"] == 7


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("params.horizon_s", ["--set params.horizon_s:", "expected KEY=VALUE"]),
        ("=120", ["--set =120:", "empty key"]),
        ("  =120", ["empty key"]),
        ("params..horizon_s=1", ["empty step in key 'params..horizon_s'"]),
        (".horizon_s=1", ["empty step"]),
        (
            "legs.3.quantity=2",
            ["index 3 is out of range: legs has 3 items", "0 to 2", "eth, steth, btc"],
        ),
        ("hedge.instruments.1=X", ["index 1 is out of range: hedge.instruments has 1 item;"]),
        (
            "params.horizon_s.x=1",
            ["params.horizon_s is 15, not a table or a list; cannot go on to 'x'"],
        ),
        ("basket_id.x=1", ["basket_id is 'synth-eth-quick', not a table or a list"]),
        (
            "parms.horizon_s=120",
            ["unknown key 'parms' at the top level (closest: params)", "keys there: basket_id"],
        ),
        ("hedge.venue.x=1", ["hedge.venue is 'alpha', not a table"]),
        (
            "legs.eht.quantity=2",
            ["no item 'eht' in legs (closest: eth)", "a leg_id: eth, steth, btc"],
        ),
        ("legs.zzz.quantity=2", ["no item 'zzz' in legs;", "0 to 2"]),
        ("hedge.instruments.first=X", ["no item 'first' in hedge.instruments"]),
        ("legs.-1.quantity=2", ["no item '-1' in legs"]),
    ],
)
def test_a_bad_override_is_one_line_naming_it_and_what_is_accepted(
    override: str, fragments: list[str]
) -> None:
    with pytest.raises(OverrideError) as caught:
        apply_overrides(document(), [override])
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_an_unknown_key_deeper_down_names_its_path_and_the_closest_keys_there() -> None:
    raw = {"params": {"inner": {"horizon_s": 1, "grace_s": 2}}}
    with pytest.raises(OverrideError) as caught:
        apply_overrides(raw, ["params.inner.horizon.x=1"])
    message = str(caught.value)
    assert "unknown key 'horizon' in params.inner (closest: horizon_s)" in message
    assert "keys there: grace_s, horizon_s" in message


def test_two_legs_of_one_id_are_refused_rather_than_guessed() -> None:
    raw = {"legs": [{"leg_id": "a"}, {"leg_id": "a"}]}
    with pytest.raises(OverrideError, match="2 items of legs have leg_id 'a'; use an index: 0, 1"):
        apply_overrides(raw, ["legs.a.quantity=1"])


def test_an_override_error_is_a_spec_error_and_crosses_processes_whole() -> None:
    with pytest.raises(SpecError) as caught:
        apply_overrides(document(), ["nothing"])
    error = caught.value
    assert isinstance(error, OverrideError)
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, OverrideError) and str(again) == str(error)
    assert str(OverrideError("a\nb", "bad")).count("\n") == 0


# --- loading a file with overrides ----------------------------------------------------------
def test_the_override_reaches_the_spec() -> None:
    spec = load_basket_with_overrides(
        BASKET, ["params.horizon_s=120", "legs.btc.max_slippage_bps=12.5", "policy=unwind"]
    )
    assert isinstance(spec, BasketSpec)
    assert spec.params.horizon_s == 120.0
    assert spec.legs[2].max_slippage_bps == 12.5
    assert spec.policy == "unwind"


def test_without_overrides_the_file_loads_as_it_is() -> None:
    assert load_basket_with_overrides(BASKET, []) == load_basket(BASKET)


def test_a_field_the_schema_does_not_know_is_refused_by_the_loader_by_name() -> None:
    with pytest.raises(SpecError) as caught:
        load_basket_with_overrides(BASKET, ["params.horizon_seconds=120"])
    (error,) = caught.value.errors
    assert error.path == "params.horizon_seconds"
    assert "unknown field" in error.message and "horizon_s" in error.message
    assert str(caught.value).startswith(f"{BASKET} with --set params.horizon_seconds=120: ")


def test_an_overridden_value_is_held_to_the_bounds_of_the_file() -> None:
    with pytest.raises(SpecError) as caught:
        load_basket_with_overrides(BASKET, ["params.horizon_s=-1"])
    (error,) = caught.value.errors
    assert error.path == "params.horizon_s" and "-1" in error.message


def test_an_override_is_applied_before_validation_so_it_can_mend_a_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BASKET.read_text().replace("horizon_s = 15", "horizon_s = 1e300"))
    with pytest.raises(SpecError, match=r"params\.horizon_s"):
        load_basket(bad)
    assert load_basket_with_overrides(bad, ["params.horizon_s=20"]).params.horizon_s == 20.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("kind = ", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_a_file_the_loader_cannot_read_gives_its_own_error(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "basket.toml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(SpecError, match=message) as caught:
        load_basket_with_overrides(path, ["params.horizon_s=120"])
    assert not isinstance(caught.value, OverrideError)
