"""The seed's basket on three adapter kinds (`examples/venues_adapters.toml`): the ETH perp
through the native USD-M client, the stETH spot leg through ccxt's `binance`, the BTC short
through ccxt's `binanceusdm`, on simulated venues the engine starts itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.lifecycle import BasketState
from actors.messages import LegStatus
from cluster.engine import Engine
from tests.cluster.conftest import NAMESPACE
from tests.support import without_injected_rejects
from venues.ccxt import CcxtClient
from venues.clients import build_sim_client
from venues.config import SimVenueConfig, load_venues
from venues.model import AckKind, InstrumentKind

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "venues_adapters.toml"
BASKET = ROOT / "examples" / "synthetic_eth_quick.toml"


def test_the_example_reaches_beta_and_gamma_through_ccxt() -> None:
    config = load_venues(EXAMPLE)
    kinds = {}
    for name in ("alpha", "beta", "gamma"):
        cfg = config.venues[name]
        assert isinstance(cfg, SimVenueConfig)
        client = build_sim_client(
            name, cfg, rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1"
        )
        kinds[name] = type(client).__name__, getattr(client, "sides", None)
    assert kinds["alpha"][0] == "BinanceUsdmClient"  # perps only: the native USD-M client
    beta_sides = kinds["beta"][1]
    assert beta_sides is not None and isinstance(beta_sides[InstrumentKind.SPOT], CcxtClient)
    assert kinds["gamma"][0] == "CcxtClient"


def test_the_seeds_basket_completes_on_three_adapter_kinds(tmp_path: Path) -> None:
    venues = without_injected_rejects("venues_adapters.toml", tmp_path)
    with Engine.start(venues, namespace=NAMESPACE) as engine:
        report = engine.submit(BASKET).result(timeout=240)
    assert report.status is BasketState.COMPLETED, report.reason
    legs = {leg.leg_id: leg for leg in report.legs}
    assert {leg.venue for leg in legs.values()} == {"alpha", "beta", "gamma"}
    for leg in legs.values():
        assert leg.reconciled and leg.status is LegStatus.RECONCILED, leg.reason
        assert leg.filled_qty > 0 and leg.first_ack_ns is not None
        assert leg.first_send_ns is not None and leg.first_ack_ns > leg.first_send_ns
    # Each venue's acknowledgement semantics, whichever adapter carried it.
    acks = {leg.venue: leg.ack_kind for leg in legs.values()}
    assert acks == {"alpha": AckKind.RESULT, "beta": AckKind.ACCEPTED, "gamma": AckKind.RECEIPT}
    # The spot leg paid its fee in the stETH it bought, and holds that much less.
    assert legs["steth"].fee_qty > 0 and legs["steth"].fees_unpriced == {}
