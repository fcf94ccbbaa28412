"""The backtest against the live engine: one basket, one seeded market, run both ways.

The venues' synthetic market has a fixed origin, so its prices are a function of time alone:
the backtest, started at the live run's instants, trades the same market the live legs did.
What differs is when each order reaches it: live, Ray calls, HTTP and event loops on a busy
2-core machine; in the backtest, the venue profiles' latency draws and modelled Ray calls.
Those are milliseconds to tens of milliseconds per order, so:

- filled quantities agree exactly (both baskets complete; quantities are on the lot grid);
- each leg's average price agrees within 3 bp: ETH's one-σ move over 100 ms is ~0.4 bp and
  the synthetic market steps every 100 ms, so an order a few ms earlier or later can meet the
  next step's price; averaged over the leg's slices that stays well inside 3 bp (a wrong
  price scale, side or slice size would be far outside);
- the shortfall agrees within 2 bp of gross notional, and its fees part within 0.2 bp (the
  same taker fee on the same notional).
"""

from __future__ import annotations

import time
import tomllib

import pytest

from actors.backtest import ExecutionMode, check_venues, run_once
from actors.lifecycle import BasketState
from actors.spec import load_basket
from cluster.config import parse_cluster
from cluster.engine import Engine
from tests.cluster.conftest import NAMESPACE

pytestmark = pytest.mark.usefixtures("ray_session")

VENUES = """
[venues.alpha]
kind = "sim"
market = {{ source = "synthetic", seed = 5, origin = {origin} }}
instruments = ["ETHUSDT", "BTCUSDT"]
profile = {{ preset = "colo", ack = "RESULT" }}

[[venues.alpha.accounts]]
account_id = "desk"
api_key = "k"
secret = "s"

[venues.beta]
kind = "sim"
market = {{ source = "synthetic", seed = 5, origin = {origin} }}
instruments = ["ETHUSDT", "BTCUSDT"]
profile = {{ preset = "colo", ack = "ACCEPTED" }}

[[venues.beta.accounts]]
account_id = "desk"
api_key = "k"
secret = "s"
"""

BASKET = """
kind = "basket"
basket_id = "{basket_id}"
policy = "unwind"

[params]
horizon_s = 8
slice_s = 0.5
band = 0.1
participation_cap = 1.0

[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
quantity = 4

[[legs]]
leg_id = "btc"
venue = "beta"
symbol = "BTCUSDT"
side = "SELL"
quantity = 0.17

[hedge]
venue = "alpha"
instruments = ["BTCUSDT"]
enabled = false
"""


def test_backtest_agrees_with_the_live_engine_on_the_same_market() -> None:
    origin = time.time_ns() - 30 * 1_000_000_000
    config = parse_cluster(tomllib.loads(VENUES.format(origin=origin)), source="test config")
    spec = load_basket(BASKET.format(basket_id=f"agree-{time.time_ns() % 10**8}"))
    engine = Engine.start(config, namespace=NAMESPACE)
    try:
        live = engine.submit(spec).result(timeout=120)
    finally:
        engine.shutdown()
    assert live.status is BasketState.COMPLETED, live.reason
    # The backtest at the live run's instants (seed 0 keeps the configured market seed).
    start = min(h.ts_ns for h in live.history) - 2_000_000_000
    sim = run_once(
        spec,
        check_venues(config.venues),
        ExecutionMode.COORDINATED,
        0,
        risk=config.risk,
        start_ns=start,
        arrive_ns=live.submitted_ns,
    ).report
    assert sim.status is BasketState.COMPLETED, sim.reason
    for a, b in zip(live.legs, sim.legs, strict=True):
        assert a.leg_id == b.leg_id
        assert a.filled_qty == b.filled_qty == a.original_qty
        gap_bps = abs(float(a.avg_price) / float(b.avg_price) - 1) * 1e4
        assert gap_bps < 3.0, (a.leg_id, a.avg_price, b.avg_price)
    assert live.tca is not None and sim.tca is not None
    assert abs(live.tca["shortfall_bps"] - sim.tca["shortfall_bps"]) < 2.0
    fees = [t["parts"]["fees_usd"] / t["gross_notional_usd"] * 1e4 for t in (live.tca, sim.tca)]
    assert abs(fees[0] - fees[1]) < 0.2
