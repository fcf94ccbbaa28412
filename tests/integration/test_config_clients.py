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
from venues.model import (
    AckKind,
    NewOrder,
    OrderStatus,
    OrderType,
    Side,
    TransferState,
    WalletKind,
)
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


async def test_a_configured_sapi_url_carries_the_accounts_transfers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wallet API lives on Binance's spot host; a configured `sapi_url` points it
    # elsewhere (a testnet, or here the simulator), and a transfer goes there.
    sim_path = tmp_path / "sim.toml"
    sim_path.write_text(SIM + "spot_balances = { USDT = 1_000 }\n")
    async with serve(load_venues(sim_path)) as servers:
        url = servers["sim"].rest_url
        live_path = tmp_path / "live.toml"
        live_path.write_text(
            _real(url).replace('ack = "RESULT"', f'ack = "RESULT"\nsapi_url = "{url}"')
        )
        cfg = load_venues(live_path).venues["live"]
        assert isinstance(cfg, BinanceUsdmConfig) and cfg.sapi_url == url
        monkeypatch.setenv("LEGATO_TEST_KEY", "cfg-test-key")
        monkeypatch.setenv("LEGATO_TEST_SECRET", "cfg-test-secret-never-shown")
        client = build_binance_client("live", cfg, account_id="desk", timeout_s=3.0)
        async with client:
            before = (await client.account()).available_margin
            receipt = await client.transfer(
                "USDT", Decimal(250), WalletKind.SPOT, WalletKind.MARGIN, "cfg-t1"
            )
            deadline = asyncio.get_running_loop().time() + 10
            while receipt.state is TransferState.PENDING:
                assert asyncio.get_running_loop().time() < deadline, "transfer never ended"
                await asyncio.sleep(0.1)
                receipt = await client.transfer_status(receipt)
            assert receipt.state is TransferState.COMPLETED
            assert (await client.account()).available_margin == before + 250
