"""The routing-stall scenario live on Ray (bench/scenarios/routing_stall, its stall cut to
15 s and its horizon to 15 s): gamma's margin cannot carry the BTC short, its spot wallet can,
and the collateral actor moves the money through the simulated venue's Binance wallet API
over real sockets. Two baskets at once, one waiting and one hedging; both complete with
every leg reconciled and the transfer in the report and the journal, and the venue's own
transfer history agrees."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec
import pytest

from actors.journal.records import TransferRecorded
from actors.journal.sqlite import SqliteJournal
from actors.lifecycle import BasketState
from actors.messages import LegStatus
from actors.spec import OnUnfunded, load_basket
from cluster.engine import Engine
from tests.cluster.conftest import NAMESPACE
from venues.model import TransferKind, TransferState

pytestmark = pytest.mark.usefixtures("ray_session")

SCENARIO = Path(__file__).resolve().parents[2] / "bench" / "scenarios" / "routing_stall"
STALL_S = 15  # longer than arming two baskets' legs takes on a busy 2-core machine


def scenario(tmp_path: Path) -> tuple[Path, Path]:
    venues = tmp_path / "venues.toml"
    venues.write_text(
        (SCENARIO / "venues.toml").read_text().replace("stall_s = 60", f"stall_s = {STALL_S}")
    )
    basket = (SCENARIO / "basket.toml").read_text()
    basket = basket.replace("horizon_s = 120", "horizon_s = 15").replace(
        "slice_s = 2", "slice_s = 0.5"
    )
    path = tmp_path / "basket.toml"
    path.write_text(basket)
    return venues, path


def records(run_id: str) -> list[object]:
    async def go() -> list[object]:
        store = SqliteJournal(os.environ["LEGATO_JOURNAL"])
        await store.open()
        try:
            return [e.record for e in await store.records(run_id)]
        finally:
            await store.close()

    return asyncio.run(go())


def test_a_waiting_and_a_hedging_basket_are_funded_by_a_transfer_and_complete(
    tmp_path: Path,
) -> None:
    venues, basket = scenario(tmp_path)
    spec = load_basket(basket)
    waiting = msgspec.structs.replace(spec, basket_id="route-wait")
    hedging = msgspec.structs.replace(
        spec,
        basket_id="route-hedge",
        params=msgspec.structs.replace(spec.params, on_unfunded=OnUnfunded.HEDGE),
    )
    with Engine.start(venues, namespace=NAMESPACE) as engine:
        h_wait = engine.submit(waiting)
        h_hedge = engine.submit(hedging)
        # While the transfer stalls, the waiting basket is CHECKING and shows it pending.
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:
            status = h_wait.status()
            if status.transfers and status.state is BasketState.CHECKING:
                seen = status
                break
            time.sleep(0.2)
        assert seen is not None, "the waiting basket never showed its pending transfer"
        assert seen.transfers[0].state is TransferState.PENDING
        assert "pending" in seen.reason and "gamma/spot → gamma/margin" in seen.reason
        r_wait = h_wait.result(timeout=180)
        r_hedge = h_hedge.result(timeout=180)
        wallet = engine.venue_stat("gamma", "account")

    for report in (r_wait, r_hedge):
        assert report.status is BasketState.COMPLETED, report.reason
        for leg in report.legs:
            assert leg.reconciled and leg.status is LegStatus.RECONCILED, leg.reason
        assert len(report.collateral.transfers) == 1, report.collateral.transfers
        (t,) = report.collateral.transfers
        assert (t.kind, t.source, t.destination) == (
            TransferKind.INTERNAL,
            "gamma/spot",
            "gamma/margin",
        )
        assert t.state is TransferState.COMPLETED and t.venue_transfer_id
        assert STALL_S - 0.5 <= t.age_s(t.updated_ns) < STALL_S + 10
    # The waiting basket sent nothing before its money landed ...
    (t_wait,) = r_wait.collateral.transfers
    first = min(leg.first_send_ns for leg in r_wait.legs if leg.first_send_ns is not None)
    assert first >= t_wait.updated_ns
    assert "waited" in r_wait.collateral.funding
    # ... the hedging one started ETH and stETH at once, BTC once funded.
    (t_hedge,) = r_hedge.collateral.transfers
    legs = {leg.leg_id: leg for leg in r_hedge.legs}
    assert legs["eth"].first_send_ns is not None and legs["btc"].first_send_ns is not None
    assert legs["eth"].first_send_ns < t_hedge.updated_ns <= legs["btc"].first_send_ns
    assert legs["steth"].first_send_ns is not None
    assert legs["steth"].first_send_ns < t_hedge.updated_ns
    assert "started" in r_hedge.collateral.funding
    # The venue's own figures: both transfers reached gamma's margin wallet.
    moved = t_wait.amount + t_hedge.amount
    assert wallet.wallet_balance >= moved + 1_000 - 50  # less fees and P&L of the BTC short
    # The journal has every transfer's life, pending then completed.
    for handle, t in ((h_wait, t_wait), (h_hedge, t_hedge)):
        states = [
            r.state
            for r in records(handle.run_id)
            if isinstance(r, TransferRecorded) and r.client_transfer_id == t.client_transfer_id
        ]
        assert states[0] == "pending" and states[-1] == "completed"
