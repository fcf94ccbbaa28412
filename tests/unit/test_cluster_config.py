"""The cluster configuration: the venues file plus `[engine]`, `[hedge]` and `[risk]`, every
mistake named."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from actors.protocol import AuditSettings
from actors.risk import RiskSettings, with_risk_betas
from cluster.config import ClusterConfig, EngineSettings, load_cluster, parse_cluster
from venues.config import ConfigError
from venues.model import Instrument, InstrumentKind

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


def test_max_arming_is_a_whole_number_of_baskets_from_one() -> None:
    assert parse("[engine]\nmax_arming = 2\n").engine.basket_options().max_arming == 2
    with pytest.raises(
        ConfigError,
        match=re.escape("engine.max_arming: 0 is not accepted; accepted: a whole number from 1 to"),
    ):
        parse("[engine]\nmax_arming = 0\n")
    with pytest.raises(ConfigError, match=re.escape("engine.max_arming: expected int")):
        parse("[engine]\nmax_arming = 1.5\n")


def test_max_running_is_off_by_default_and_never_negative() -> None:
    assert EngineSettings().max_running == 0
    assert parse("[engine]\nmax_running = 8\n").engine.basket_options().max_running == 8
    with pytest.raises(
        ConfigError,
        match=re.escape("engine.max_running: -1 is not accepted; accepted: a whole number from 0"),
    ):
        parse("[engine]\nmax_running = -1\n")


def test_without_an_engine_table_the_defaults_apply() -> None:
    assert parse("").engine == EngineSettings()


def test_the_warm_pool_is_off_unless_sized() -> None:
    assert EngineSettings().warm_legs_per_venue == 0 and EngineSettings().warm_baskets == 0
    config = parse("[engine]\nwarm_legs_per_venue = 2\nwarm_baskets = 3\nwarm_fire_lead_ms = 15\n")
    assert config.engine.warm_legs_per_venue == 2 and config.engine.warm_baskets == 3
    # The warm legs' fire lead travels to the baskets; the cold one stays as it was.
    options = config.engine.basket_options()
    assert options.warm_fire_lead_ms == 15 and options.fire_lead_ms == 50


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[hedging]\nvol = 1\n", "c.toml: hedging: unknown table or key; accepted at the top"),
        ("[risk]\nvol = 1\n", "c.toml: risk.vol: unknown field; accepted here: factors,"),
        (
            "[risk.factors]\nBTC = -0.5\n",
            "risk.factors.BTC: -0.5 is not accepted; accepted: an annual volatility from 0.001 to "
            "10 (0.1 % to 1,000 % a year)",
        ),
        ("[risk.factors]\nBTC = 1e300\n", "risk.factors.BTC: 1e+300 is not accepted"),
        ("[risk.factors]\nBTC = nan\n", "risk.factors.BTC: nan is not accepted"),
        ("[risk.betas]\nX = { BTC = 1e300 }\n", "risk.betas.X.BTC: 1e+300 is not accepted"),
        ('[risk.factors]\nBTC = "high"\n', "risk.factors: each value: expected float, got str"),
        (
            '[risk.correlations]\n"BTC/XRP" = 0.5\n',
            "risk.correlations.\"BTC/XRP\": expected two different factors as 'A/B', from",
        ),
        ('[risk.correlations]\n"BTC/ETH" = 1.5\n', "1.5 is not a correlation in [-1, 1]"),
        (
            '[risk.correlations]\n"BTC/ETH" = 0.99\n"ETH/SOL" = 0.99\n"BTC/SOL" = -0.99\n',
            "risk.correlations: the matrix they make is not valid",
        ),
        ("[risk.betas]\nX = { DOGE = 1.0 }\n", "risk.betas.X.DOGE: unknown factor; the model has"),
        ('[hedge]\nvenue = "zeta"\ninstruments = ["IDXUSDT"]\n', "hedge.venue: 'zeta' is not a"),
        ('[hedge]\nvenue = "alpha"\n', "c.toml: hedge.instruments: required, and missing"),
        ('[hedge]\nvenue = "alpha"\ninstruments = []\n', "hedge.instruments: empty"),
        (
            '[hedge]\nvenue = "alpha"\ninstruments = ["I"]\nactivation_usd = -5\n',
            "hedge.activation_usd: -5 is negative; USD >= 0",
        ),
        ('[hedge]\nvenue = "alpha"\ninstruments = ["I"]\nsize = 1\n', "hedge.size: unknown"),
        ("[engine]\nfire_lead = 5\n", "c.toml: engine.fire_lead: unknown field; accepted here:"),
        ('[engine]\nplacement = "near"\n', "engine.placement: invalid enum value 'near'"),
        ('[engine]\ntick_ms = "fast"\n', "engine.tick_ms: expected float, got str"),
        (
            "[engine]\narm_timeout_s = -1\n",
            "engine.arm_timeout_s: -1 is not accepted; accepted: from 0.1 to 3,600 s (an hour)",
        ),
        ('engine = "yes"\n', "engine: expected a table [engine], got str"),
        (
            "[engine]\nwarm_baskets = -1\n",
            "c.toml: engine.warm_baskets: -1 is not accepted; a whole number from 0 (no warm "
            "pool) to 100",
        ),
        ("[engine]\nwarm_legs_per_venue = 101\n", "engine.warm_legs_per_venue: 101 is not"),
        (
            "[engine]\nwarm_legs_per_venue = 1.5\n",
            "engine.warm_legs_per_venue: expected int, got float; accepted: a whole number "
            "from 0 to 100",
        ),
        ("[engine]\nwarm_baskets = true\n", "engine.warm_baskets: expected int, got bool"),
        ("[engine]\nwarm_fire_lead_ms = 0\n", "engine.warm_fire_lead_ms: 0 is not accepted"),
    ],
)
def test_mistakes_name_the_file_the_field_and_what_is_accepted(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    assert message in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_cluster(tmp_path / "none.toml")


def test_the_example_names_a_default_hedge_and_spells_out_the_default_risk_model() -> None:
    config = load_cluster(ROOT / "examples" / "venues.toml")
    assert config.hedge is not None and config.hedge.venue == "alpha"
    assert config.hedge.instruments == ["IDXUSDT"]
    assert config.risk.factors == RiskSettings().factors
    assert config.risk.correlations == RiskSettings().correlations
    assert config.risk.betas["IDXUSDT"] == {"BTC": 0.5, "ETH": 0.3, "SOL": 0.2}


def test_a_risk_table_becomes_the_model_the_baskets_and_venues_use() -> None:
    config = parse(
        '[risk.factors]\nBTC = 0.4\nETH = 0.8\n[risk.correlations]\n"BTC/ETH" = 0.5\n'
        "[risk.betas]\nSTETHUSDT = { ETH = 0.9 }\n"
    )
    model = config.risk.model()
    assert model.factors == ["BTC", "ETH"]
    assert model.covariance[0, 0] == pytest.approx(0.4**2)
    assert model.covariance[0, 1] == pytest.approx(0.5 * 0.4 * 0.8)
    listed = Instrument(
        symbol="STETHUSDT",
        base="STETH",
        quote="USDT",
        kind=InstrumentKind.SPOT,
        tick=Decimal("0.01"),
        lot=Decimal("0.0001"),
    )
    # The configured beta wins over the built-in 1.0 for stETH.
    assert with_risk_betas(listed, model.factors, configured=config.risk.betas).betas == {
        "ETH": 0.9
    }
    assert parse("").risk == RiskSettings() and parse("").hedge is None


# Each found by fuzzing: accepted, then wrong only once a basket ran.
@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            "tick_ms = 1e-300",
            "engine.tick_ms: 1e-300 is not accepted; accepted: from 1 to 60,000 ms",
        ),
        ("tick_ms = inf", "engine.tick_ms: inf is not accepted"),
        ("fire_lead_ms = nan", "engine.fire_lead_ms: nan is not accepted; accepted: from 1 to"),
        ("arm_timeout_s = 1e300", "engine.arm_timeout_s: 1e+300 is not accepted"),
        ("unwind_deadline_s = 86401", "accepted: from 0.1 to 86,400 s (a day)"),
        ("leg_silence_s = 0", "engine.leg_silence_s: 0 is not accepted"),
        ("min_overrun_s = -inf", "engine.min_overrun_s: -inf is not accepted"),
        ("max_arming = 1001", "engine.max_arming: 1001 is not accepted; accepted: a whole number"),
        ("max_running = 100000000000", "engine.max_running: 100000000000 is not accepted"),
        ('namespace = ""', "engine.namespace: '' is not accepted; accepted: a Ray namespace of"),
        ('namespace = " "', "engine.namespace: ' ' is not accepted"),
        ('namespace = "_ray_internal_x"', "engine.namespace: '_ray_internal_x' is not accepted"),
        (f'namespace = "{"n" * 65}"', "1-64 characters"),
    ],
)
def test_engine_figures_have_bounds_with_units(engine: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(f"[engine]\n{engine}\n")
    assert str(info.value).startswith("c.toml: engine.") and message in str(info.value)


def test_the_bounds_take_the_defaults_and_their_ends() -> None:
    ends = 'tick_ms = 1\nfire_lead_ms = 60000\nmax_running = 10000\nnamespace = "desk-1.a_b"\n'
    assert parse(f"[engine]\n{ends}").engine.tick_ms == 1


def test_a_default_hedge_has_the_bounds_of_a_baskets_hedge() -> None:
    with pytest.raises(ConfigError, match=r"hedge\.hysteresis_usd: 1e\+13 USD is too much"):
        parse('[hedge]\nvenue = "alpha"\ninstruments = ["I"]\nhysteresis_usd = 1e13\n')


def test_a_config_nested_too_deep_or_too_long_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("x = " + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML here: .* nested too deeply"):
        load_cluster(path)
    path.write_text("# " + "x" * 1_000_000 + "\n")
    with pytest.raises(ConfigError, match=r"c\.toml: longer than 1,000,000 characters"):
        load_cluster(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"c\.toml: cannot read it"):
        load_cluster(path)


def test_the_audit_log_defaults_to_every_order_beside_the_journal() -> None:
    config = parse("")
    assert isinstance(config, ClusterConfig)
    assert config.audit == AuditSettings(destination="", level="orders")


def test_an_audit_file_is_made_absolute_from_the_configuration_files_directory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "venues.toml"
    path.write_text(VENUE + '[audit]\ndestination = "logs/audit.jsonl"\nlevel = "fills"\n')
    config = load_cluster(path)
    assert config.audit == AuditSettings(
        destination=str(tmp_path / "logs" / "audit.jsonl"), level="fills"
    )
    for target in ("stderr", "off"):
        kept = parse(f'[audit]\ndestination = "{target}"\n')
        assert isinstance(kept, ClusterConfig) and kept.audit.destination == target


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[audit]\nlevel = "all"\n',
            "c.toml: audit.level: 'all' is not accepted; accepted: \"orders\" (every order "
            'sent, every answer and report, every fill); "fills" (fills only); "off" (nothing)',
        ),
        ("[audit]\nlevel = 3\n", "audit.level: expected str, got int"),
        ('[audit]\nfile = "a.jsonl"\n', "c.toml: audit.file: unknown field; accepted here:"),
        (
            '[audit]\ndestination = "logs/"\n',
            "audit.destination: 'logs/' is not accepted; accepted: a file path",
        ),
        ('audit = "stderr"\n', "audit: expected a table [audit], got str"),
    ],
)
def test_audit_mistakes_name_the_field_and_what_is_accepted(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    assert message in str(info.value)
