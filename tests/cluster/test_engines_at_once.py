"""Engines of one namespace started at the same moment (two `legato run` at once on a
fresh cluster): both start, on the same venue actors, and neither fails for a name the
other took a moment before."""

from __future__ import annotations

import threading

import pytest

from cluster.engine import Engine
from tests.cluster.test_baskets import venues

pytestmark = pytest.mark.usefixtures("ray_session")


def test_two_engines_started_at_once_share_their_venues() -> None:
    namespace = "legato-test-at-once"
    config = venues()
    started: list[Engine] = []
    failed: list[BaseException] = []
    go = threading.Barrier(2)

    def start() -> None:
        go.wait(timeout=30)
        try:
            started.append(Engine.start(config, namespace=namespace))
        except BaseException as e:  # the test says which, below
            failed.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    try:
        assert not failed, failed
        assert len(started) == 2
        first, second = started
        assert set(first.venues) == set(second.venues) == set(config.venues)
        for name in config.venues:
            # One actor per venue name, whichever engine created it.
            assert first.venues[name]._actor_id == second.venues[name]._actor_id, name
    finally:
        for engine in started:
            engine.shutdown()
