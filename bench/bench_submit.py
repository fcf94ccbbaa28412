"""Submit → first child order at the venue, with a warm pool against cold actors (issue 7).

One local Ray (2 CPUs) and two engines on it in one namespace, sharing its venues and
singletons: one with a warm pool (`warm_legs_per_venue=1`, `warm_baskets=1`), one without.
The venues are `examples/venues.toml` made colocated (`bench_basket.colocated`: every venue
at colo latency, its ack semantics kept, no faults); the basket is a two-leg ETH pair (long
on alpha, short on beta; hedge disabled, 2 s horizon). Baskets alternate between the two
engines, one at a time, so that whatever else the machine does falls on both alike; before
each one the warm pool is full again (its refill would otherwise compete for the CPU).

Per basket, from the driver's `time.time_ns()` just before `engine.submit(...)`:
- **first child order at the venue**: the earliest first-order accept time of its legs,
  read from the simulated exchange's own ns clock (`VenueActor.sim_order_times`; a sim
  venue's clock is the host's plus its profile's `clock_offset_ms`, 0 here);
- the breakdown: `submit()` returned (checked, running), the basket actor began its run,
  collateral reserved (warm legs arm meanwhile, cold legs are created after it), every leg
  armed and `fire_at` chosen, and the last leg's first order at the venue (so the launch
  skew at the venues as well).

Each engine runs one basket first, unmeasured: the first calls between its singletons and
its venues are paid once per engine, whatever the mode. Writes bench/results/submit.json
and submit.md (p50, p99, mean per mode); exits non-zero if a basket does not complete.
`--baskets N` per mode (default 10).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import ray

from actors.lifecycle import BasketState
from actors.report import BasketReport
from actors.spec import load_basket
from bench.bench_basket import colocated
from bench.common import stats, table, write
from cluster.engine import Engine
from venues.config import load_venues

ROOT = Path(__file__).resolve().parents[1]
MODES = ("warm", "cold")
NAMESPACE = "legato-bench-submit"
MS = 1e6

PAIR = """
kind = "basket"
basket_id = "{basket_id}"
policy = "unwind"
[params]
horizon_s = 2
max_slippage_bps = 30
participation_cap = 1.0
band = 0.2
slice_s = 0.5
grace_s = 20
[[legs]]
leg_id = "long"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 3000
[[legs]]
leg_id = "short"
venue = "beta"
symbol = "ETHUSDT"
side = "SELL"
notional_usd = 3000
[hedge]
venue = "alpha"
instruments = ["IDXUSDT"]
enabled = false
"""

# The figures per basket, in ms from just before submit(), in the order they happen.
FIGURES = {
    "submit_returned": "submit() returned",
    "run_started": "basket actor began its run",
    "reserved": "collateral reserved, arming",
    "fired": "legs armed, fire_at chosen",
    "first_order_at_venue": "first child order at the venue",
    "last_leg_at_venue": "last leg's first order at the venue",
}


def timings(engine: Engine, report: BasketReport, t0: int, returned: int) -> dict[str, float]:
    """One basket's figures (see FIGURES); the venue times from the simulators' records."""
    accepts = []
    for leg in report.legs:
        first = min(leg.child_orders, key=lambda c: c.n)
        _, accept = engine.venue_stat(
            leg.venue, "sim_order_times", leg.symbol, first.client_order_id
        )
        if accept is None:
            raise RuntimeError(f"{report.basket_id}: leg {leg.leg_id}: no accept time")
        accepts.append(accept)
    entered = {change.state: change.ts_ns for change in report.history}
    return {
        "submit_returned": (returned - t0) / MS,
        "run_started": (entered[BasketState.CHECKING] - t0) / MS,
        "reserved": (entered[BasketState.ARMING] - t0) / MS,
        "fired": (entered[BasketState.RUNNING] - t0) / MS,
        "first_order_at_venue": (min(accepts) - t0) / MS,
        "last_leg_at_venue": (max(accepts) - t0) / MS,
    }


def run_one(engine: Engine, mode: str, i: int) -> tuple[BasketReport, dict[str, float], bool]:
    if engine.pool is not None and not engine.pool.wait_full(120):
        raise RuntimeError(f"the warm pool did not fill within 120 s: {engine.pool.stats()}")
    spec = load_basket(PAIR.format(basket_id=f"submit-{mode}-{i + 1}"))
    t0 = time.time_ns()
    handle = engine.submit(spec)
    returned = time.time_ns()
    report = handle.result(timeout=120)
    warm = handle.warm_basket and len(handle.warm_legs) == len(report.legs)
    if report.status is not BasketState.COMPLETED:
        return report, {}, warm
    return report, timings(engine, report, t0, returned), warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baskets", type=int, default=10, help="baskets per mode")
    args = parser.parse_args()
    venues = colocated(load_venues(ROOT / "examples" / "venues.toml"))
    # Other work on the machine shows in every figure here: the load says how much there was.
    load = {"start": os.getloadavg()[0]}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.monotonic()
    figures: dict[str, dict[str, list[float]]] = {m: {k: [] for k in FIGURES} for m in MODES}
    failed: list[str] = []
    not_warm = 0
    engines: dict[str, Engine] = {}
    try:
        # The first engine starts the venues (and stops them last); the second joins them.
        engines["warm"] = Engine.start(
            venues, namespace=NAMESPACE, warm_legs_per_venue=1, warm_baskets=1
        )
        engines["cold"] = Engine.start(venues, namespace=NAMESPACE)
        # One basket per engine first, not measured: the first calls between the engine's
        # singletons and venues (connections, first code paths) are paid once per engine,
        # whichever the mode, and would only show as one outlier in each.
        for mode in MODES:
            report, _, _ = run_one(engines[mode], mode, -1)
            if report.status is not BasketState.COMPLETED:
                failed.append(f"{report.basket_id}: {report.status.value}: {report.reason}")
        for i in range(args.baskets):
            for mode in MODES:
                report, got, warm = run_one(engines[mode], mode, i)
                if report.status is not BasketState.COMPLETED:
                    failed.append(f"{report.basket_id}: {report.status.value}: {report.reason}")
                    continue
                not_warm += mode == "warm" and not warm
                for key, value in got.items():
                    figures[mode][key].append(value)
                print(
                    f"  {mode} {i}: first order at the venue "
                    f"{got['first_order_at_venue']:8.1f} ms after submit",
                    flush=True,
                )
    finally:
        for engine in reversed(engines.values()):
            engine.shutdown()
        ray.shutdown()
    elapsed = time.monotonic() - started
    load["end"] = os.getloadavg()[0]

    results: dict[str, Any] = {
        "baskets_per_mode": args.baskets,
        "venues": "examples/venues.toml, every venue colocated",
        "basket": "ETH pair, long alpha / short beta, 2 s horizon, hedge disabled",
        "pool": {"warm_legs_per_venue": 1, "warm_baskets": 1},
        "warm_baskets_not_fully_warm": not_warm,
        "failed": failed,
        "elapsed_s": round(elapsed, 1),
        "load_average_1min": load,
        "ms_after_submit": {m: {k: stats(v) for k, v in figures[m].items()} for m in MODES},
    }
    rows = []
    for key, label in FIGURES.items():
        w = results["ms_after_submit"]["warm"][key]
        c = results["ms_after_submit"]["cold"][key]
        rows.append([label, w["p50"], w["p99"], w["mean"], c["p50"], c["p99"], c["mean"]])
    header = ["ms after submit", "warm p50", "warm p99", "warm mean"]
    header += ["cold p50", "cold p99", "cold mean"]
    markdown = (
        f"Submit → first child order at the venue, {args.baskets} baskets per mode, "
        f"alternating (warm pool: 1 leg actor per venue and 1 basket actor; cold: actors "
        f"created per basket); {results['basket']}, on {results['venues']} "
        f"({elapsed:.0f} s; load average {load['start']:.1f} at the start, "
        f"{load['end']:.1f} at the end).\n\n" + table(header, rows)
    )
    write("submit", results, markdown)
    for line in failed:
        print(f"not completed: {line}", file=sys.stderr)
    if not_warm:
        print(f"{not_warm} warm baskets did not get every actor from the pool", file=sys.stderr)
    return 1 if failed or not_warm else 0


if __name__ == "__main__":
    sys.exit(main())
