"""A `binance_usdm` venue of the config reaches its endpoint through the native adapter,
with keys from the environment: the same path a real Binance account takes."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from venues.clients import build_binance_client
from venues.config import BinanceUsdmConfig, load_venues
from venues.errors import AuthError
from venues.model import AckKind, NewOrder, OrderStatus, OrderType, Side
from venues.sim.up import serve

SIM = """
[venues.sim]
kind = "sim"
instruments = ["ETHUSDT"]
profile = { preset = "colo", ack = "RESULT" }
[[venues.sim.accounts]]
account_id = "desk"
api_key = "cfg-test-key"
secret = "cfg-test-secret-never-shown"
balances = { USDT = 1_000_000 }
"""


def _real(url: str) -> str:
    ws = url.replace("http://", "ws://")
    return f"""
[venues.live]
kind = "binance_usdm"
rest_url = "{url}"
ws_url = "{ws}"
api_key_env = "LEGATO_TEST_KEY"
secret_env = "LEGATO_TEST_SECRET"
ack = "RESULT"
"""


async def test_binance_usdm_venue_from_config_trades_through_the_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim_path = tmp_path / "sim.toml"
    sim_path.write_text(SIM)
    async with serve(load_venues(sim_path)) as servers:
        url = servers["sim"].rest_url
        live_path = tmp_path / "live.toml"
        live_path.write_text(_real(url))
        cfg = load_venues(live_path).venues["live"]
        assert isinstance(cfg, BinanceUsdmConfig)
        monkeypatch.setenv("LEGATO_TEST_KEY", "cfg-test-key")
        monkeypatch.setenv("LEGATO_TEST_SECRET", "cfg-test-secret-never-shown")
        client = build_binance_client("live", cfg, account_id="desk", timeout_s=3.0)
        async with client:
            assert client.ack_semantics is AckKind.RESULT
            book = await client.order_book("ETHUSDT", 5)
            assert book.best_ask is not None
            ack = await asyncio.wait_for(
                client.place(
                    NewOrder(
                        client_order_id="cfg-1",
                        symbol="ETHUSDT",
                        side=Side.BUY,
                        type=OrderType.MARKET,
                        quantity=Decimal("0.5"),
                    )
                ),
                5,
            )
            assert ack.status is OrderStatus.FILLED and ack.cum_filled == Decimal("0.5")
            positions = {p.symbol: p.quantity for p in await client.positions()}
            assert positions["ETHUSDT"] == Decimal("0.5")
            assert "never-shown" not in repr(client)


def test_missing_environment_variable_is_named_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "live.toml"
    path.write_text(_real("http://127.0.0.1:9"))
    cfg = load_venues(path).venues["live"]
    assert isinstance(cfg, BinanceUsdmConfig)
    monkeypatch.setenv("LEGATO_TEST_KEY", "present-key-value")
    monkeypatch.delenv("LEGATO_TEST_SECRET", raising=False)
    with pytest.raises(AuthError) as info:
        build_binance_client("live", cfg)
    assert "LEGATO_TEST_SECRET" in str(info.value)
    assert "present-key-value" not in str(info.value)
