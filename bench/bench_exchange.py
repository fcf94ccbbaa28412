"""Simulator speed: market events per second through the exchange core.

Replays the recorded Binance USD-M files (BTCUSDT and ETHUSDT perps) through `SimExchange`
and, as the baseline measured in the same run, through the bare replay source alone (decode
and iterate, no book). Also runs the synthetic market through the core. Prints the figures
and writes bench/results/exchange.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cluster.cli import default_data_dir
from venues.sim.exchange import SimExchange
from venues.sim.replay import ReplayMarket
from venues.sim.showcase import SHOWCASE_ORIGIN_NS
from venues.sim.synthetic import SyntheticMarket

RESULTS = Path(__file__).resolve().parent / "results"


def replay_baseline(data: Path) -> dict[str, float]:
    # Uncached, here and below: both figures include decoding the files.
    market = ReplayMarket.from_dir(data, "usdm", start_ns=SHOWCASE_ORIGIN_NS, cached=False)
    t = time.perf_counter()
    n = sum(1 for _ in market.updates(market.last_ns))
    wall = time.perf_counter() - t
    return {"events": n, "wall_s": wall, "events_per_s": n / wall}


def replay_through_core(data: Path) -> dict[str, float]:
    market = ReplayMarket.from_dir(data, "usdm", start_ns=SHOWCASE_ORIGIN_NS, cached=False)
    exchange = SimExchange("bench", market, start_ns=SHOWCASE_ORIGIN_NS)
    t = time.perf_counter()
    step = 10_000_000  # advance in 10 ms slices, as a live host does
    now = SHOWCASE_ORIGIN_NS
    while now < market.last_ns:
        now += step
        exchange.advance(now)
        exchange.drain()
    wall = time.perf_counter() - t
    n = exchange.updates_applied
    return {"events": n, "wall_s": wall, "events_per_s": n / wall}


def synthetic_through_core(seconds: float = 600.0) -> dict[str, float]:
    market = SyntheticMarket(7, SHOWCASE_ORIGIN_NS)
    exchange = SimExchange("bench", market, start_ns=SHOWCASE_ORIGIN_NS)
    t = time.perf_counter()
    for k in range(1, int(seconds * 10) + 1):
        exchange.advance(SHOWCASE_ORIGIN_NS + k * 100_000_000)
        exchange.drain()
    wall = time.perf_counter() - t
    n = exchange.updates_applied
    return {
        "simulated_s": seconds,
        "events": n,
        "wall_s": wall,
        "events_per_s": n / wall,
        "x_real_time": seconds / wall,
    }


def main() -> int:
    data = default_data_dir()
    if not data.is_dir():
        print(f"recorded data not found at {data}; set LEGATO_DATA_DIR", file=sys.stderr)
        return 1
    results = {
        "replay_decode_only": replay_baseline(data),
        "replay_through_core": replay_through_core(data),
        "synthetic_through_core": synthetic_through_core(),
    }
    base = results["replay_decode_only"]["events_per_s"]
    core = results["replay_through_core"]["events_per_s"]
    print("simulator speed (market events through the exchange core)")
    print(f"  replay, decode only (baseline): {base:12,.0f} events/s")
    print(
        f"  replay, through the core:       {core:12,.0f} events/s "
        f"({core / base:.0%} of the baseline)"
    )
    syn = results["synthetic_through_core"]
    print(
        f"  synthetic, through the core:    {syn['events_per_s']:12,.0f} events/s "
        f"({syn['x_real_time']:,.0f}x real time, 5 instruments)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exchange.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
