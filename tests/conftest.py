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


@pytest.fixture(scope="session", autouse=True)
def _session_journal() -> Iterator[str]:
    yield _DATA_DIR
    shutil.rmtree(_DATA_DIR, ignore_errors=True)
