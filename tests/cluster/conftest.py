"""Cluster tests: one local Ray instance for the whole session (DESIGN §9, STYLE §9).

Every test starts its own simulated venues through an `Engine` (fresh books and accounts),
in one shared namespace whose singletons outlive the engines, as they would on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

NAMESPACE = "legato-test"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
