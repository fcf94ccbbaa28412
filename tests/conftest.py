"""The whole suite: a journal of its own (DESIGN §9), never the user's.

Engines, the `legato` command and the actors they start find the journal through
`$LEGATO_JOURNAL` (`cluster.config.journal_location`); it is set here, before any test
runs, to a directory of this session that is removed at its end. Ray's workers, started by
the session's `ray.init`, inherit it; so do the subprocesses of the CLI tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_DATA_DIR = tempfile.mkdtemp(prefix="legato-test-journal-")
os.environ["LEGATO_JOURNAL"] = _DATA_DIR


# Tests that start Ray: one unit of work, run in one process in order when the suite runs
# in several (`make test`: `-n 2 --dist loadgroup`); beside them the rest take the other
# process, module by module. Two Rays starting at once on a 2-core machine starve the
# baskets of both. (xdist's own `xdist_group` marks do not group under pytest 9.2: it
# renames the items' node ids, which pytest 9.2 no longer lets it do; hence this scheduler.)
RAY_GROUP = "ray"
_STARTS_RAY = ("tests/cluster/", "tests/integration/test_docs.py::test_readme_example_runs")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415

    class RayApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return RAY_GROUP if nodeid.startswith(_STARTS_RAY) else super()._split_scope(nodeid)

    return RayApart(config, log)


@pytest.fixture(scope="session", autouse=True)
def _session_journal() -> Iterator[str]:
    yield _DATA_DIR
    shutil.rmtree(_DATA_DIR, ignore_errors=True)
