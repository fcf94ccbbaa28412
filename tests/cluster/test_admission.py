"""Baskets take turns on a real local Ray: with `max_arming = 1` no two baskets arm at once,
with `max_running = 1` none arms before the one running has ended; the others wait in QUEUED
with nothing sent, and a queued basket can be cancelled (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import msgspec
import pytest
import ray

from actors.admission import Limits
from actors.lifecycle import BasketState
from actors.report import BasketReport
from cluster.config import EngineSettings
from cluster.engine import Engine
from tests.cluster.conftest import NAMESPACE
from tests.cluster.test_warm_pool import eventually, pair, venues

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """An engine whose baskets arm one at a time (cold actors: arming takes seconds)."""
    options = msgspec.structs.replace(
        EngineSettings().basket_options(), namespace=NAMESPACE, max_arming=1
    )
    engine = Engine.start(venues(), namespace=NAMESPACE, basket_options=options)
    yield engine
    engine.shutdown()


EMPTY = {"arming": [], "running": [], "waiting": []}


def hold_the_turn(engine: Engine, basket_id: str) -> None:
    """Take the one turn to arm, as a basket arming elsewhere in the namespace would."""
    limits = Limits(max_arming=1, arm_lease_ns=60 * 10**9, run_lease_ns=60 * 10**9)
    assert ray.get(engine.registry.queue_to_arm.remote(basket_id, limits)).admitted


def queue(engine: Engine) -> dict[str, list[str]]:
    return ray.get(engine.registry.admission_queue.remote())


def entered(report: BasketReport, state: BasketState) -> int | None:
    return next((c.ts_ns for c in report.history if c.state is state), None)


def test_baskets_beyond_max_arming_wait_their_turn_and_all_complete(engine: Engine) -> None:
    # The one turn is taken (as by a basket arming elsewhere): every basket queues.
    blocker = "t-turn-blocker"
    hold_the_turn(engine, blocker)
    with ThreadPoolExecutor(3) as pool:
        handles = list(pool.map(engine.submit, [pair(f"t-turn-{i}") for i in range(3)]))
    assert eventually(lambda: all(h.status().state is BasketState.QUEUED for h in handles), 60)
    ray.get(engine.registry.ended.remote(blocker))
    reports = [h.result(timeout=120) for h in handles]

    for r in reports:
        assert r.status is BasketState.COMPLETED, r.reason
        why = next(c.reason for c in r.history if c.state is BasketState.QUEUED)
        assert "waiting for a turn to arm" in why and "at most 1 at once" in why, why
    # One at a time: the stretches from ARMING to RUNNING never overlap.
    spans = sorted(
        (entered(r, BasketState.ARMING), entered(r, BasketState.RUNNING)) for r in reports
    )
    for (_, done), (start, _) in pairwise(spans):
        assert done is not None and start is not None and done <= start, spans
    assert queue(engine) == EMPTY


def test_a_queued_basket_can_be_cancelled_and_sends_nothing(engine: Engine) -> None:
    blocker = "t-turn-blocker-2"
    hold_the_turn(engine, blocker)
    waiting = engine.submit(pair("t-turn-waiting"))
    assert eventually(lambda: waiting.status().state is BasketState.QUEUED, 60)
    waiting.cancel("changed my mind")
    report = waiting.result(timeout=60)

    assert report.status is BasketState.CANCELLED and "changed my mind" in report.reason
    assert [c.state for c in report.history][-2:] == [BasketState.QUEUED, BasketState.CANCELLED]
    assert all(not leg.child_orders for leg in report.legs)
    assert report.collateral.released
    # It left the line: once the turn is free, the next basket arms at once.
    assert eventually(lambda: queue(engine) == {**EMPTY, "arming": [blocker]})
    ray.get(engine.registry.ended.remote(blocker))
    after = engine.submit(pair("t-turn-after"))
    report = after.result(timeout=60)
    assert report.status is BasketState.COMPLETED, report.reason
    assert entered(report, BasketState.QUEUED) is None


def test_with_max_running_a_basket_arms_once_the_one_running_has_ended(engine: Engine) -> None:
    options = msgspec.structs.replace(engine.basket_options, max_arming=4, max_running=1)
    # The first runs long enough that the second is submitted (seconds on a busy machine)
    # while it still runs: a second submitted after the first has ended would not queue.
    first = engine.submit(pair("t-run-first", horizon_s=10), options=options)
    assert eventually(lambda: first.status().state is BasketState.RUNNING, 60)
    second = engine.submit(pair("t-run-second"), options=options)
    assert eventually(lambda: second.status().state is BasketState.QUEUED, 60)
    assert "at most 1)" in second.status().reason

    done, report = first.result(timeout=60), second.result(timeout=60)
    assert done.status is BasketState.COMPLETED, done.reason
    assert report.status is BasketState.COMPLETED, report.reason
    assert done.completed_ns is not None
    armed_at = entered(report, BasketState.ARMING)
    assert armed_at is not None and armed_at >= done.completed_ns
    assert eventually(lambda: queue(engine) == EMPTY, 10)
