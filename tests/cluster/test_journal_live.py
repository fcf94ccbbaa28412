"""The journal of live baskets (DESIGN §9), held against the venues' own records: every
order a venue received is in the journal, under the run's own client order ids, with the
venue's figures; a basket whose actor is killed mid-run is taken over from the journal and
ends under its policy."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from decimal import Decimal

import msgspec
import pytest
import ray
from ray.exceptions import ActorUnavailableError

from actors.journal import SqliteJournal
from actors.journal.orders import JournaledOrder
from actors.journal.records import (
    BasketReported,
    BasketStateChanged,
    BasketSubmitted,
    ChildOrderSent,
    CollateralReleased,
    CollateralReserved,
)
from actors.lifecycle import BasketState
from actors.report import BasketReport
from actors.shells.remote import COLLATERAL_NAME, REGISTRY_NAME, basket_actor_name
from actors.spec import load_basket
from bench.faults_trials.audit import kept_fee
from cluster.engine import Engine
from tests.cluster.conftest import NAMESPACE
from tests.cluster.test_baskets import venues
from tests.support import SYNTHETIC_ETH_BASKET, eventually, filled_to_minimum
from venues.model import Side

pytestmark = pytest.mark.usefixtures("ray_session")
D = Decimal


def spec(basket_id: str, policy: str = "complete", horizon_s: float = 4) -> object:
    text = SYNTHETIC_ETH_BASKET.format(
        basket_id=basket_id, policy=policy, horizon_s=horizon_s, child_style="twap"
    )
    return load_basket(text)


def journal() -> SqliteJournal:
    return SqliteJournal(os.environ["LEGATO_JOURNAL"])


def read(run_id: str) -> tuple[list[object], list[JournaledOrder]]:
    async def go() -> tuple[list[object], list[JournaledOrder]]:
        store = journal()
        await store.open()
        try:
            records = [e.record for e in await store.records(run_id)]
            return records, await store.orders(run_id)
        finally:
            await store.close()

    return asyncio.run(go())


def holdings(engine: Engine) -> dict[str, dict[str, Decimal]]:
    """The venues' positions (beta's STETH: its spot wallet's, 100 from the start)."""
    return {v: engine.venue_stat(v, "positions") for v in engine.venues}


def answered(method: object, timeout_s: float = 60) -> object:
    """A singleton's answer once it is back (calls made while Ray restarts it fail)."""
    got: list[object] = []

    def ask() -> bool:
        try:
            got.append(ray.get(method.remote(), timeout=10))  # type: ignore[attr-defined]
        except ActorUnavailableError:
            return False
        return True

    assert eventually(ask, timeout_s=timeout_s), "the singleton did not come back"
    return got[0]


def check_against_venues(engine: Engine, orders: list[JournaledOrder], held: dict) -> None:
    """Each journaled order as its venue records it; every order a venue received is in
    the journal; the net of the journal's fills is the venues' change of position."""
    for o in orders:
        venue = engine.venue_stat(o.venue, "sim_order", o.symbol, o.order.client_order_id)
        if venue is None:  # never reached the venue: the journal must say it is not open
            assert o.order.status.is_terminal and o.order.filled_qty == 0, o
            continue
        assert (venue.status, venue.cum_filled) == (o.order.status, o.order.filled_qty), o
    for name in engine.venues:
        journaled = sum(1 for o in orders if o.venue == name)
        assert engine.venue_stat(name, "orders_received") <= journaled, name
    moved: Counter[tuple[str, str]] = Counter()
    for o in orders:
        sign = 1 if o.order.side is Side.BUY else -1
        # A fee charged in the asset traded (a spot buy's STETH) is not held.
        moved[o.venue, o.symbol] += sign * o.order.filled_qty - kept_fee(o)
    after = holdings(engine)
    for (venue, symbol), qty in moved.items():
        before = held[venue].get(symbol, D(0))
        assert after[venue].get(symbol, D(0)) - before == qty, (venue, symbol)


def test_a_run_is_journaled_under_its_own_identity_and_agrees_with_the_venues() -> None:
    with Engine.start(venues(), namespace=NAMESPACE) as engine:
        held = holdings(engine)
        first = engine.submit(spec("t-jrn"))
        report = first.result(timeout=120)
        assert report.status is BasketState.COMPLETED, report.reason
        # The same basket again is a new run, with client order ids of its own.
        second = engine.submit(spec("t-jrn"))
        assert second.result(timeout=120).status is BasketState.COMPLETED
        records, orders = read(first.run_id)
        _, orders2 = read(second.run_id)
        # The venues' own records: each order, what the venues received, the positions.
        check_against_venues(engine, orders + orders2, held)
    basket_id, n1 = first.run_id.split("#")
    assert basket_id == "t-jrn" and second.run_id == f"t-jrn#{int(n1) + 1}"
    (submitted,) = [r for r in records if isinstance(r, BasketSubmitted)]
    assert load_basket(submitted.spec) == spec("t-jrn")
    assert submitted.order_prefix.startswith("t-jrn.")
    coids = [o.order.client_order_id for o in orders]
    assert coids and all(c.startswith(submitted.order_prefix + "-") for c in coids)
    assert not {o.order.client_order_id for o in orders2} & set(coids)
    # The run's states, its collateral held and given back, its report: all journaled.
    states = [r.state for r in records if isinstance(r, BasketStateChanged)]
    assert states[0] is BasketState.CHECKING and states[-1] is BasketState.COMPLETED
    assert any(isinstance(r, CollateralReserved) for r in records)
    assert any(isinstance(r, CollateralReleased) for r in records)
    (reported,) = [r for r in records if isinstance(r, BasketReported)]
    assert msgspec.json.decode(reported.report, type=BasketReport).status is report.status
    # Every order written ahead of its answer, once.
    sent = [r.client_order_id for r in records if isinstance(r, ChildOrderSent)]
    assert sorted(set(sent)) == sorted(coids)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_basket_whose_actor_is_killed_mid_run_is_taken_over_and_unwound(seed: int) -> None:
    rng = random.Random(seed)
    with Engine.start(venues(), namespace=NAMESPACE) as engine:
        held = holdings(engine)
        handle = engine.submit(spec(f"t-take{seed}", policy="unwind", horizon_s=8))
        assert eventually(
            lambda: (
                handle.status().state is BasketState.RUNNING
                and any(leg.filled_qty > 0 for leg in handle.status().legs)
            ),
            timeout_s=60,
        ), "the basket never started filling"
        # Somewhere in its first seconds of filling, the basket's actor dies outright.
        deadline = rng.uniform(0.0, 2.0)
        eventually(lambda: False, timeout_s=deadline)
        actor = ray.get_actor(basket_actor_name(handle.basket_id), namespace=NAMESPACE)
        ray.kill(actor, no_restart=True)
        report = handle.result(timeout=180)
        records, orders = read(handle.run_id)
        check_against_venues(engine, orders, held)
        after = holdings(engine)
    assert report.status is BasketState.FAILED, report.reason
    assert "taken over" in report.reason
    # Policy unwind: every venue back where it began (to the lot: dust may stay).
    for venue, positions in after.items():
        for symbol, qty in positions.items():
            assert abs(qty - held[venue].get(symbol, D(0))) < D("0.01"), (venue, symbol, qty)
    # No client order id was used twice, across the lost actor and its successor.
    sent = [r.client_order_id for r in records if isinstance(r, ChildOrderSent)]
    assert len({o.order.client_order_id for o in orders}) == len(orders)
    assert set(sent) == {o.order.client_order_id for o in orders}
    states = [r.state for r in records if isinstance(r, BasketStateChanged)]
    assert BasketState.UNWINDING in states and states[-1] is BasketState.FAILED
    assert any(isinstance(r, CollateralReleased) for r in records)


def test_a_basket_whose_actor_is_killed_under_policy_complete_carries_on_and_completes() -> None:
    with Engine.start(venues(), namespace=NAMESPACE) as engine:
        held = holdings(engine)
        handle = engine.submit(spec("t-carry", policy="complete", horizon_s=8))
        assert eventually(
            lambda: (
                handle.status().state is BasketState.RUNNING
                and any(leg.filled_qty > 0 for leg in handle.status().legs)
            ),
            timeout_s=60,
        ), "the basket never started filling"
        actor = ray.get_actor(basket_actor_name(handle.basket_id), namespace=NAMESPACE)
        ray.kill(actor, no_restart=True)
        report = handle.result(timeout=180)
        records, orders = read(handle.run_id)
        check_against_venues(engine, orders, held)
    assert report.status is BasketState.COMPLETED, report.reason
    assert any("carries on" in note for note in report.notes), report.notes
    # Every leg filled its target across the lost actors and their successors, to what its
    # venue accepts (`filled_to_minimum`), under ids used once.
    for leg in report.legs:
        why = (leg.leg_id, leg.original_qty, leg.target_qty, leg.filled_qty, leg.reason)
        assert filled_to_minimum(leg, leg.filled_qty), (*why, report.reason)
    sent = [r.client_order_id for r in records if isinstance(r, ChildOrderSent)]
    assert len({o.order.client_order_id for o in orders}) == len(orders)
    assert set(sent) == {o.order.client_order_id for o in orders}
    assert sum(isinstance(r, BasketReported) for r in records) == 1


def test_a_supervisor_that_dies_mid_run_is_restarted_and_adopts_the_run() -> None:
    with Engine.start(venues(), namespace=NAMESPACE) as engine:
        handle = engine.submit(spec("t-sup", horizon_s=6))
        assert eventually(lambda: handle.status().state is BasketState.RUNNING, timeout_s=60)
        supervisor = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        ray.kill(supervisor, no_restart=False)  # Ray restarts it
        # The waiting handle asks the new supervisor, which finds the basket still at work.
        report = handle.result(timeout=180)
        watched = ray.get(supervisor.watching.remote(), timeout=30)
    assert report.status is BasketState.COMPLETED, report.reason
    assert "taken over" not in report.reason and handle.run_id not in watched
    records, _ = read(handle.run_id)
    assert sum(isinstance(r, BasketReported) for r in records) == 1


def test_a_collateral_actor_that_dies_holds_the_running_baskets_reservations_again() -> None:
    with Engine.start(venues(), namespace=NAMESPACE) as engine:
        handle = engine.submit(spec("t-coll", horizon_s=6))
        assert eventually(lambda: handle.status().state is BasketState.RUNNING, timeout_s=60)
        collateral = ray.get_actor(COLLATERAL_NAME, namespace=NAMESPACE)
        before = ray.get(collateral.snapshot.remote(), timeout=30)
        ray.kill(collateral, no_restart=False)
        # The kill takes effect a moment later: until then the old actor may still answer
        # (it restored nothing). The restarted one must hold the running basket's again.
        restored = eventually(
            lambda: handle.run_id in answered(collateral.restored_runs),  # type: ignore[operator]
            timeout_s=60,
        )
        after = answered(collateral.snapshot)
        report = handle.result(timeout=180)
        released = ray.get(collateral.snapshot.remote(), timeout=30)
    assert restored, "the restarted collateral actor never held the reservation again"
    mine = [r for r in before.reservations if r.basket_id == "t-coll"]
    assert mine and [r for r in after.reservations if r.basket_id == "t-coll"] == mine
    assert report.status is BasketState.COMPLETED, report.reason
    assert not [r for r in released.reservations if r.basket_id == "t-coll"]
