"""What several test modules share: where the recorded market data is, and when to skip."""

from __future__ import annotations

import os

import pytest

from cluster.cli import default_data_dir

DATA = default_data_dir()

# Off CI a checkout without ../shared skips the replay tests; on CI (CI=true) the data must
# be there, so a missing directory fails those tests instead of hiding them.
needs_recorded_data = pytest.mark.skipif(
    not DATA.is_dir() and not os.environ.get("CI"),
    reason=f"no recorded data at {DATA} (set LEGATO_DATA_DIR)",
)
