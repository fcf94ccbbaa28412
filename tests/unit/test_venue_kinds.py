"""The venue kinds of a configuration file: `binance_spot`, `ccxt`, and a simulated venue
reached through ccxt; mistakes refused before anything starts, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from actors.shells.accounts import account_key
from venues.ccxt import CcxtClient
from venues.clients import build_ccxt_client, build_client, build_sim_client
from venues.config import BinanceSpotConfig, CcxtVenueConfig, ConfigError, parse_venues
from venues.errors import AuthError
from venues.model import InstrumentKind
from venues.routed import RoutedClient


def venues(**tables: dict[str, Any]) -> Any:
    return parse_venues({"venues": tables}, source="v.toml")


def test_a_ccxt_venue_and_a_binance_spot_venue_are_read_with_their_defaults() -> None:
    config = venues(
        okx={
            "kind": "ccxt",
            "exchange": "okx",
            "api_key_env": "OKX_KEY",
            "secret_env": "OKX_SECRET",
            "password_env": "OKX_PASS",
            "options": {"defaultType": "swap"},
        },
        spot={"kind": "binance_spot", "api_key_env": "BN_KEY", "secret_env": "BN_SECRET"},
    )
    okx, spot = config.venues["okx"], config.venues["spot"]
    assert isinstance(okx, CcxtVenueConfig) and okx.options == {"defaultType": "swap"}
    assert okx.urls.rest is None and not okx.sandbox
    assert isinstance(spot, BinanceSpotConfig) and spot.rest_url == "https://api.binance.com"


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            {"kind": "ccxt", "exchange": "binanse", "api_key_env": "K", "secret_env": "S"},
            "venues.x.exchange: unknown ccxt exchange id 'binanse'; did you mean binance",
        ),
        (
            {"kind": "ccxt", "exchange": "okx", "api_key": "inline", "secret_env": "S"},
            "venues.x.api_key: inline secrets are accepted for simulated venues only",
        ),
        (
            {
                "kind": "ccxt",
                "exchange": "okx",
                "api_key_env": "K",
                "secret_env": "S",
                "password": "inline",
            },
            "venues.x.password: inline secrets are accepted for simulated venues only",
        ),
        (
            {"kind": "ccxt", "exchange": "okx", "api_key_env": "1K", "secret_env": "S"},
            "venues.x.api_key_env: '1K' is not the name of an environment variable",
        ),
        (
            {
                "kind": "ccxt",
                "exchange": "okx",
                "api_key_env": "K",
                "secret_env": "S",
                "urls": {"rest": "http://exchange.example.com"},
            },
            "venues.x.urls.rest: 'http://exchange.example.com' is plain http",
        ),
        (
            {
                "kind": "binance_spot",
                "api_key_env": "K",
                "secret_env": "S",
                "ws_url": "ws://stream.example.com",
            },
            "venues.x.ws_url: 'ws://stream.example.com' is plain ws",
        ),
        (
            {"kind": "kraken"},
            """venues.x.kind: invalid value 'kraken'; accepted: "sim", "binance_usdm", """
            '"binance_spot" or "ccxt"',
        ),
        (
            {"kind": "sim", "adapter": "fix"},
            'venues.x.adapter: invalid enum value \'fix\'; accepted: "native" or "ccxt"',
        ),
    ],
)
def test_a_mistake_is_refused_naming_the_field(table: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        venues(x=table)
    assert error in str(refused.value)
    assert "inline" not in str(refused.value).split(":", 2)[-1].replace("inline secrets", "")


def test_a_missing_key_variable_is_named_and_nothing_is_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEGATO_T_OKX_KEY", raising=False)
    monkeypatch.setenv("LEGATO_T_OKX_SECRET", "s3cret-never-shown")
    cfg = venues(
        x={
            "kind": "ccxt",
            "exchange": "okx",
            "api_key_env": "LEGATO_T_OKX_KEY",
            "secret_env": "LEGATO_T_OKX_SECRET",
        }
    ).venues["x"]
    with pytest.raises(AuthError) as missing:
        build_ccxt_client("x", cfg)
    assert "LEGATO_T_OKX_KEY" in str(missing.value)
    assert "s3cret-never-shown" not in str(missing.value)


def test_a_ccxt_venue_builds_a_ccxt_client_with_its_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGATO_T_KEY", "k-123")
    monkeypatch.setenv("LEGATO_T_SECRET", "s-456")
    cfg = venues(
        x={
            "kind": "ccxt",
            "exchange": "binanceusdm",
            "api_key_env": "LEGATO_T_KEY",
            "secret_env": "LEGATO_T_SECRET",
            "urls": {"rest": "http://127.0.0.1:18101", "ws": "ws://127.0.0.1:18101"},
        }
    ).venues["x"]
    client = build_client("x", cfg)
    assert isinstance(client, CcxtClient) and client.venue == "x"
    assert "s-456" not in repr(client)


def test_a_simulated_venue_reached_through_ccxt_routes_perps_and_spot_to_their_exchanges() -> None:
    cfg = venues(
        beta={
            "kind": "sim",
            "adapter": "ccxt",
            "instruments": ["STETHUSDT", "ETHUSDT"],
            "accounts": [{"account_id": "desk", "api_key": "k", "secret": "s"}],
        }
    ).venues["beta"]
    client = build_sim_client("beta", cfg, rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    assert isinstance(client, RoutedClient)
    sides = client.sides
    assert set(sides) == {InstrumentKind.PERP, InstrumentKind.SPOT}
    assert all(isinstance(c, CcxtClient) for c in sides.values())
    # Only the spot side, for a venue of spot instruments only.
    spot_only = venues(
        s={
            "kind": "sim",
            "adapter": "ccxt",
            "instruments": ["STETHUSDT"],
            "accounts": [{"account_id": "desk", "api_key": "k", "secret": "s"}],
        }
    ).venues["s"]
    alone = build_sim_client(
        "s", spot_only, rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1"
    )
    assert isinstance(alone, CcxtClient)


def test_each_real_kind_is_an_account_of_its_own() -> None:
    env = {"K": "the-key"}
    usdm = venues(a={"kind": "binance_usdm", "api_key_env": "K", "secret_env": "S"}).venues["a"]
    spot = venues(a={"kind": "binance_spot", "api_key_env": "K", "secret_env": "S"}).venues["a"]
    ccxt = venues(
        a={"kind": "ccxt", "exchange": "okx", "api_key_env": "K", "secret_env": "S"}
    ).venues["a"]
    keys = [account_key(c, env) for c in (usdm, spot, ccxt)]
    assert all(keys) and len(set(keys)) == 3
    assert all("the-key" not in k for k in keys if k)
    assert account_key(ccxt, {}) is None  # no key in the environment: it cannot start
