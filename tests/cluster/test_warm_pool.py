"""The warm pool on a real local Ray: baskets run on pooled actors, the pool refills, dead
pooled actors are never handed out, shutdown ends the idle ones, and a basket id stays
unique whether its actor came from the pool or not (issue 7, DESIGN §5.3)."""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator

import msgspec
import pytest
import ray
from ray.exceptions import RayActorError

from actors.lifecycle import BasketState
from actors.spec import load_basket
from cluster.engine import Engine, EngineError, running_baskets
from cluster.pool import BASKET, LOOP_EVERY_S, REFILL_AFTER_S, WarmPool
from tests.cluster.conftest import NAMESPACE
from tests.support import eventually
from venues.config import ConfigError, VenuesConfig, parse_venues

pytestmark = pytest.mark.usefixtures("ray_session")

VENUES = """
[venues.alpha]
kind = "sim"
market = { source = "synthetic", seed = 5 }
instruments = ["ETHUSDT"]
profile = { preset = "colo", ack = "RESULT" }
[[venues.alpha.accounts]]
account_id = "desk"
api_key = "test-alpha-key"
secret = "test-alpha-secret"
balances = { USDT = 1_000_000 }
leverage = 10

[venues.beta]
kind = "sim"
market = { source = "synthetic", seed = 5 }
instruments = ["ETHUSDT"]
profile = { preset = "colo", ack = "ACCEPTED" }
[[venues.beta.accounts]]
account_id = "desk"
api_key = "test-beta-key"
secret = "test-beta-secret"
balances = { USDT = 1_000_000 }
leverage = 10
"""

# Long ETH on alpha, short ETH on beta, over a second and a half.
PAIR = """
kind = "basket"
basket_id = "{basket_id}"
policy = "unwind"
[params]
horizon_s = {horizon_s}
max_slippage_bps = 30
participation_cap = 1.0
band = 0.2
slice_s = 0.5
grace_s = 20
[[legs]]
leg_id = "long"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 3000
[[legs]]
leg_id = "short"
venue = "beta"
symbol = "ETHUSDT"
side = "SELL"
notional_usd = 3000
"""


def venues() -> VenuesConfig:
    return parse_venues(tomllib.loads(VENUES), source="test venues")


def pair(basket_id: str, horizon_s: float = 1.5) -> object:
    return load_basket(PAIR.format(basket_id=basket_id, horizon_s=horizon_s))


def dead(actor: object) -> bool:
    try:
        ray.get(actor.__ray_ready__.remote(), timeout=5)  # type: ignore[attr-defined]
    except RayActorError:
        return True
    except ray.exceptions.GetTimeoutError:
        return False
    return False


@pytest.fixture(scope="module")
def shared() -> Iterator[Engine]:
    """One engine with a warm pool for the tests that do not end it (an engine start and a
    pool fill cost seconds on a small machine)."""
    engine = Engine.start(venues(), namespace=NAMESPACE, warm_legs_per_venue=2, warm_baskets=1)
    yield engine
    engine.shutdown()


@pytest.fixture
def engine(shared: Engine) -> Engine:
    """The shared engine, its pool full again after the previous test."""
    assert shared.pool is not None and shared.pool.wait_full(60), shared.pool.stats()
    return shared


def test_a_basket_runs_on_the_pooled_actors_and_the_pool_refills(engine: Engine) -> None:
    pool = engine.pool
    assert pool is not None
    before = pool.stats()
    (basket_actor,) = pool.idle_actors(BASKET)
    alpha_legs, beta_legs = pool.idle_actors("alpha"), pool.idle_actors("beta")

    handle = engine.submit(pair("t-warm"))
    assert handle.warm_basket and handle.actor == basket_actor
    assert set(handle.warm_legs) == {"long", "short"}
    assert handle.warm_legs["long"] in alpha_legs and handle.warm_legs["short"] in beta_legs
    assert "t-warm" in running_baskets(NAMESPACE)  # found although the actor has no name
    report = handle.result(timeout=60)

    assert report.status is BasketState.COMPLETED, report.reason
    for leg in report.legs:
        assert leg.reconciled and leg.first_venue_accept_ns is not None, leg
        # The venue clock the warm leg measured before the basket existed maps its times.
        assert leg.venue_clock_uncertainty_ns is not None
    after = pool.stats()
    assert after.handed_out - before.handed_out == 3 and after.dead == before.dead
    # What was taken is replaced, in the background, by new actors.
    assert pool.wait_full(60), pool.stats()
    assert pool.stats().created - before.created == 3
    assert basket_actor not in pool.idle_actors(BASKET)
    assert handle.warm_legs["long"] not in pool.idle_actors("alpha")
    # What the basket ran on ended with it.
    used = [basket_actor, *handle.warm_legs.values()]
    assert eventually(lambda: all(dead(a) for a in used), 30)


def test_what_the_pool_lent_counts_against_its_size_until_the_basket_ends(
    engine: Engine,
) -> None:
    pool = engine.pool
    assert pool is not None
    before = pool.stats()
    handle = engine.submit(pair("t-lent", horizon_s=5))
    assert handle.warm_basket and set(handle.warm_legs) == {"long", "short"}
    lent = pool.stats()
    assert (lent.lent_baskets, lent.lent_legs) == (1, {"alpha": 1, "beta": 1})
    # Past the refill delay, while the basket runs, no process is started to replace what
    # it took: a burst as large as the pool gets the machine to itself.
    assert eventually(lambda: handle.status().state is BasketState.RUNNING, 30)
    time.sleep(REFILL_AFTER_S + 5 * LOOP_EVERY_S)
    assert handle.status().state is BasketState.RUNNING
    during = pool.stats()
    assert during.created == before.created, during
    assert (during.ready_baskets, during.ready_legs) == (0, {"alpha": 1, "beta": 1})
    assert handle.result(timeout=60).status is BasketState.COMPLETED
    # Its basket over, the places are free: the pool fills them again.
    assert pool.wait_full(60), pool.stats()
    after = pool.stats()
    assert after.created - before.created == 3
    assert (after.lent_baskets, after.lent_legs) == (0, {"alpha": 0, "beta": 0})


def test_a_dead_pooled_actor_is_never_handed_out(engine: Engine) -> None:
    pool = engine.pool
    assert pool is not None
    before = pool.stats()
    (basket_actor,) = pool.idle_actors(BASKET)
    doomed_leg = pool.idle_actors("alpha")[0]
    ray.kill(basket_actor, no_restart=True)
    ray.kill(doomed_leg, no_restart=True)
    assert eventually(lambda: pool.stats().dead - before.dead == 2, 30), pool.stats()
    assert doomed_leg not in pool.idle_actors("alpha")

    handle = engine.submit(pair("t-dead"))
    assert handle.actor != basket_actor
    assert handle.warm_legs["long"] != doomed_leg and "short" in handle.warm_legs
    report = handle.result(timeout=60)
    assert report.status is BasketState.COMPLETED, report.reason


def test_warm_legs_of_a_basket_refused_collateral_send_nothing_and_end(engine: Engine) -> None:
    # Warm legs arm while the collateral is reserved: a refusal must still send nothing.
    spec = pair("t-broke")
    spec = msgspec.structs.replace(
        spec, legs=[msgspec.structs.replace(leg, notional_usd=50_000_000) for leg in spec.legs]
    )
    sent_before = {v: engine.venue_stat(v, "orders_received") for v in ("alpha", "beta")}
    handle = engine.submit(spec)
    assert set(handle.warm_legs) == {"long", "short"}
    report = handle.result(timeout=60)

    assert report.status is BasketState.FAILED and report.collateral.refused, report.reason
    assert {v: engine.venue_stat(v, "orders_received") for v in ("alpha", "beta")} == sent_before
    assert eventually(lambda: all(dead(a) for a in handle.warm_legs.values()), 30)


def test_a_running_basket_id_is_refused_whether_its_actor_is_pooled_or_not(
    engine: Engine,
) -> None:
    handle = engine.submit(pair("t-twice", horizon_s=3))
    assert handle.warm_basket
    # The pool has no basket actor left: the second one gets a named one of its own.
    with pytest.raises(EngineError, match="'t-twice' is still running"):
        engine.submit(pair("t-twice"))
    assert "t-twice" in running_baskets(NAMESPACE)
    assert handle.result(timeout=60).status is BasketState.COMPLETED
    # Once its report is collected the id is free again (on venues that have not seen its
    # client order ids).
    assert eventually(lambda: "t-twice" not in running_baskets(NAMESPACE), 10)


def test_shutdown_leaves_no_pooled_actor_alive() -> None:
    engine = Engine.start(venues(), namespace=NAMESPACE, warm_legs_per_venue=1, warm_baskets=1)
    try:
        assert engine.pool is not None and engine.pool.wait_full(60), engine.pool.stats()
        pooled = [a for key in (BASKET, "alpha", "beta") for a in engine.pool.idle_actors(key)]
        assert len(pooled) == 3
    finally:
        engine.shutdown()
    assert eventually(lambda: all(dead(a) for a in pooled), 30)
    assert engine.pool.stats().ready_legs == {"alpha": 0, "beta": 0}


def test_idle_pooled_actors_outlive_their_pool_only_by_its_lease_and_lent_ones_stay(
    engine: Engine,
) -> None:
    # A pool of the engine's venues with a short lease; its driver "dies": the control
    # loop stops without ending what it holds, as when the driver's process is killed.
    lease_s = 2.0
    pool = WarmPool(
        legs_per_venue=2,
        baskets=0,
        namespace=NAMESPACE,
        labels={},
        endpoints=engine.endpoints,
        make_basket=lambda: None,
        lease_s=lease_s,
    )
    try:
        assert pool.wait_full(60), pool.stats()
        lent = pool.take_legs({"long": "alpha"})["long"]
        idle = pool.idle_actors("alpha") + pool.idle_actors("beta")
        assert len(idle) == 3
        # Renewed, the idle actors live well past one lease (the length is what is tested).
        time.sleep(2 * lease_s)
        assert not any(dead(a) for a in idle)
        pool._stop.set()
        pool._thread.join(timeout=10)
        # No more renewals: every idle actor exits by itself; the one lent to a basket is
        # the basket's (detached, off the lease) and stays.
        assert eventually(lambda: all(dead(a) for a in idle), 6 * lease_s)
        assert not dead(lent)
    finally:
        ray.kill(lent, no_restart=True)
        pool.shutdown()


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"warm_baskets": -1}, "Engine.start: warm_baskets: -1 is not accepted; a whole number"),
        ({"warm_legs_per_venue": 1.5}, "warm_legs_per_venue: 1.5 is not accepted"),
        ({"warm_legs_per_venue": 101}, "from 0 (no warm pool) to 100"),
    ],
)
def test_bad_pool_sizes_are_refused_before_anything_starts(sizes, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Engine.start(venues(), namespace=NAMESPACE, **sizes)


def test_legato_status_and_cancel_reach_a_basket_on_a_pooled_actor(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse  # noqa: PLC0415

    from cluster import cli  # noqa: PLC0415

    monkeypatch.setattr(cli, "_connect", lambda address: None)  # this process has Ray already
    handle = engine.submit(pair("t-cli", horizon_s=30))
    assert handle.warm_basket  # an actor without a name: found through the registry
    assert cli.main(["status", "--namespace", NAMESPACE]) == 0
    assert "t-cli" in capsys.readouterr().out
    assert cli.main(["cancel", "t-cli", "--namespace", NAMESPACE]) == 0
    assert "basket t-cli: cancel requested" in capsys.readouterr().out
    report = handle.result(timeout=60)
    assert report.status is BasketState.CANCELLED, report.reason

    with pytest.raises(cli.UserError, match="no basket 'nowhere' is running"):
        cli.cmd_cancel(argparse.Namespace(address=None, namespace=NAMESPACE, basket_id="nowhere"))
