"""What several test modules share: where the recorded market data is, when to skip, how to
wait for a condition, the example venues without injected rejects, the synthetic ETH basket,
what counts as a leg filled to what its venue accepts, and the backtest's exchanges recorded."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cluster.cli import default_data_dir
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import SimExchange

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


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def without_injected_rejects(example: str, directory: Path) -> Path:
    """`examples/<example>` written into `directory` but for gamma's 1 % injected rejects:
    a refused first order fails a basket, and a test about something else must not hang
    on that draw."""
    text = (EXAMPLES / example).read_text()
    assert "reject_rate = 0.01" in text, f"examples/{example} no longer injects rejects"
    path = directory / example
    path.write_text(text.replace("reject_rate = 0.01", "reject_rate = 0.0"))
    return path


# The synthetic ETH basket without a hedge (every order a venue receives is a child order),
# on venues alpha (ETHUSDT), beta (STETHUSDT) and gamma (BTCUSDT), as the example venues and
# the cluster tests' name them.
SYNTHETIC_ETH_BASKET = """
kind = "basket"
basket_id = "{basket_id}"
policy = "{policy}"
[params]
horizon_s = {horizon_s}
max_slippage_bps = 25
participation_cap = 1.0
band = 0.05
slice_s = 0.5
grace_s = 20
child_style = "{child_style}"
[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 9000
[[legs]]
leg_id = "steth"
venue = "beta"
symbol = "STETHUSDT"
side = "BUY"
notional_usd = 1000
max_slippage_bps = 40
[[legs]]
leg_id = "btc"
venue = "gamma"
symbol = "BTCUSDT"
side = "SELL"
notional_usd = 10400
"""


def filled_to_minimum(leg: Any, held: Decimal) -> bool:
    """Whether `held` is what the leg's target asks, to within what its venue accepts: a
    residue under the instrument's minimum notional cannot be sent (20 USD for ETHUSDT, 100
    for BTCUSDT; 1 % over it for a last limit up to 40 bp off the average price)."""
    residue = leg.target_qty - held
    minimum = SYNTHETIC_INSTRUMENTS[leg.symbol].min_notional * Decimal("1.01")
    return leg.avg_price is not None and Decimal(0) <= residue * leg.avg_price < minimum


@contextlib.contextmanager
def recording_exchanges() -> Iterator[list[SimExchange]]:
    """Every exchange the backtest makes inside the block, in the list it yields, so that
    their own records (orders, trades) can be read after the run."""
    import actors.backtest.run as backtest_run  # noqa: PLC0415

    made: list[SimExchange] = []

    class Recording(SimExchange):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backtest_run, "SimExchange", Recording)
        yield made
