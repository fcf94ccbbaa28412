"""What several test modules share: where the recorded market data is, when to skip, and
how to wait for a condition."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from cluster.cli import default_data_dir

DATA = default_data_dir()

# Off CI a checkout without ../shared skips the replay tests; on CI (CI=true) the data must
# be there, so a missing directory fails those tests instead of hiding them.
needs_recorded_data = pytest.mark.skipif(
    not DATA.is_dir() and not os.environ.get("CI"),
    reason=f"no recorded data at {DATA} (set LEGATO_DATA_DIR)",
)


async def until(condition: Callable[[], Any], timeout: float) -> float:
    """Poll `condition` (sync or async) until it holds; seconds it took. Fails (TimeoutError)
    after `timeout`."""
    start = time.monotonic()

    async def holds() -> bool:
        result = condition()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    async def poll() -> None:
        while not await holds():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), timeout)
    return time.monotonic() - start


def eventually(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Poll `condition` until it holds or the time is up (for code outside an event loop)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
