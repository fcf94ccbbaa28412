"""The cluster configuration: the venues file plus `[engine]`, every mistake named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cluster.config import EngineSettings, load_cluster, parse_cluster
from venues.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
VENUE = """
[venues.alpha]
kind = "sim"
instruments = ["ETHUSDT"]
[[venues.alpha.accounts]]
account_id = "desk"
api_key = "k"
secret = "s"
"""


def parse(extra: str) -> object:
    # Top-level keys first: after a [table] header a key belongs to that table.
    head, tables = ("", extra) if extra.startswith("[") else (extra, "")
    return parse_cluster(tomllib.loads(head + VENUE + tables), source="c.toml")


def test_the_example_file_loads_with_its_engine_settings(tmp_path: Path) -> None:
    example = ROOT / "examples" / "venues.toml"
    config = load_cluster(example)
    assert set(config.venues.venues) == {"alpha", "beta", "gamma"}
    assert config.engine == EngineSettings()  # the example spells out the defaults
    # ...and they are read from it: change one in a copy and the configuration follows.
    copy = tmp_path / "venues.toml"
    copy.write_text(example.read_text().replace("tick_ms = 100", "tick_ms = 250"))
    assert load_cluster(copy).engine.tick_ms == 250


def test_engine_settings_become_the_baskets_options() -> None:
    config = parse('[engine]\nnamespace = "desk1"\nplacement = "labels"\narm_timeout_s = 5\n')
    assert config.engine.namespace == "desk1" and config.engine.placement == "labels"
    options = config.engine.basket_options()
    assert options.arm_timeout_s == 5 and options.namespace == "desk1"


def test_without_an_engine_table_the_defaults_apply() -> None:
    assert parse("").engine == EngineSettings()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[risk]\nvol = 1\n", "c.toml: risk: unknown table or key; accepted at the top level"),
        ("[engine]\nfire_lead = 5\n", "c.toml: engine.fire_lead: unknown field; accepted here:"),
        ('[engine]\nplacement = "near"\n', "engine.placement: invalid enum value 'near'"),
        ('[engine]\ntick_ms = "fast"\n', "engine.tick_ms: expected float, got str"),
        ("[engine]\narm_timeout_s = -1\n", "engine.arm_timeout_s: -1.0 is not a number > 0"),
        ('engine = "yes"\n', "engine: expected a table [engine], got str"),
    ],
)
def test_mistakes_name_the_file_the_field_and_what_is_accepted(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    assert message in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_cluster(tmp_path / "none.toml")
