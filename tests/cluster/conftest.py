"""Cluster tests: one local Ray instance for the whole session (DESIGN §9, STYLE §9).

Every test starts its own simulated venues through an `Engine` (fresh books and accounts),
in one shared namespace whose singletons outlive the engines, as they would on a cluster.
A basket a test leaves running (it failed, or timed out waiting) is cancelled when the
test ends, so that its venues, kept up for it, do not fail the tests after it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest
import ray

NAMESPACE = "legato-test"
LEFTOVER_WAIT_S = 60.0


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _no_basket_outlives_its_test() -> Iterator[None]:
    yield
    runs = _runs_at_work() if ray.is_initialized() else []
    if not runs:
        return
    from cluster.engine import running_baskets  # noqa: PLC0415

    warnings.warn(
        f"runs still at work when their test ended, cancelled: {', '.join(runs)}", stacklevel=1
    )
    for actor in running_baskets(NAMESPACE).values():
        try:  # a basket that has ended answers with its state and does nothing
            ray.get(actor.cancel.remote("the test that started it ended"), timeout=10)
        except Exception:  # it ended between the lookup and the call
            continue
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while time.monotonic() < deadline and _runs_at_work():
        time.sleep(0.1)  # polling the supervisor for their ends, bounded


def _runs_at_work() -> list[str]:
    """The runs the test namespace's supervisor carries on ([] without one)."""
    from actors.shells.remote import REGISTRY_NAME  # noqa: PLC0415

    try:
        supervisor = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        return list(ray.get(supervisor.watching.remote(), timeout=10))
    except Exception:  # no engine ran in this namespace, or this Ray is not the session's
        return []
