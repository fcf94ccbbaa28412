"""Launch skew and fill → hedge latency of the synthetic ETH basket on a local Ray.

Runs `examples/synthetic_eth.toml` scaled down (a tenth of the size, seconds instead of
minutes, a hedge that engages at $5 of daily risk) against the venues of
`examples/venues.toml` (alpha colocated, beta in the region, gamma cross-region), several
times in one engine. Per basket:

- launch skew: first to last leg's first-order accept time *at the venue*, read from the
  simulated exchanges' own nanosecond clocks (the Binance wire carries milliseconds), so
  the figure has no clock-estimation error in it; beside it the skew of the legs' send
  times and of the acks' arrival (which the venues' latencies spread);
- fill → hedge: from the moment a leg learned of a fill to the moment the venue actor sent
  the hedge order it caused (`BasketReport.hedge.reaction_ns`).

Prints p50/p99 and writes bench/results/basket.json. `--baskets N` (default 10); `--colo`
puts every venue at colocated latency (each keeping its ack semantics), as legs pinned next
to their venues would see them, and writes bench/results/basket_colo.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

from actors.lifecycle import BasketState
from actors.spec import load_basket
from cluster.engine import Engine
from venues.config import SimVenueConfig, VenuesConfig, load_venues, profile_from

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def scaled_spec(basket_id: str) -> object:
    spec = load_basket(ROOT / "examples" / "synthetic_eth.toml")
    legs = [msgspec.structs.replace(leg, notional_usd=leg.notional_usd / 10) for leg in spec.legs]
    params = msgspec.structs.replace(
        spec.params, horizon_s=6.0, slice_s=0.5, participation_cap=1.0, grace_s=30.0
    )
    hedge = msgspec.structs.replace(spec.hedge, activation_usd=5.0, hysteresis_usd=20.0)
    return msgspec.structs.replace(spec, basket_id=basket_id, legs=legs, params=params, hedge=hedge)


def colocated(config: VenuesConfig) -> VenuesConfig:
    """Every simulated venue at colocated latency, its ack semantics kept, no injected faults."""
    venues = {}
    for name, cfg in config.venues.items():
        if isinstance(cfg, SimVenueConfig):
            ack = profile_from(cfg.profile).ack.value
            venues[name] = msgspec.structs.replace(cfg, profile={"preset": "colo", "ack": ack})
        else:
            venues[name] = cfg
    return msgspec.structs.replace(config, venues=venues)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baskets", type=int, default=10)
    parser.add_argument("--colo", action="store_true", help="every venue at colo latency")
    args = parser.parse_args()
    venues = load_venues(ROOT / "examples" / "venues.toml")
    if args.colo:
        venues = colocated(venues)
    skews, send_skews, ack_skews, reactions = [], [], [], []
    outcomes: dict[str, int] = {}
    t0 = time.monotonic()
    with Engine.start(venues, num_cpus=2) as engine:
        for i in range(args.baskets):
            report = engine.submit(scaled_spec(f"bench-synth-{i}")).result(timeout=180)
            outcomes[report.status.value] = outcomes.get(report.status.value, 0) + 1
            if report.status is not BasketState.COMPLETED:
                print(f"  basket {i}: {report.status.value}: {report.reason}", flush=True)
            firsts = [
                (leg, min(leg.child_orders, key=lambda c: c.n))
                for leg in report.legs
                if leg.child_orders
            ]
            accepts = [
                engine.venue_stat(leg.venue, "sim_order_times", leg.symbol, c.client_order_id)[1]
                for leg, c in firsts
            ]
            if len(accepts) == 3 and all(a is not None for a in accepts):
                skews.append((max(accepts) - min(accepts)) / 1e6)
                sends = [c.sent_ns for _, c in firsts]
                send_skews.append((max(sends) - min(sends)) / 1e6)
            if report.raw_ack_skew_ns is not None:
                ack_skews.append(report.raw_ack_skew_ns / 1e6)
            if report.hedge is not None:
                reactions.extend(r / 1e6 for r in report.hedge.reaction_ns)
    elapsed = time.monotonic() - t0

    def line(label: str, values: list[float]) -> dict[str, float]:
        p50, p99 = pct(values, 50), pct(values, 99)
        print(f"  {label:44s} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   n {len(values)}")
        return {"p50_ms": p50, "p99_ms": p99, "n": len(values)}

    where = "examples/venues.toml" + (", every venue colocated" if args.colo else "")
    print(f"synthetic ETH basket x{args.baskets} on {where} ({elapsed:.0f} s)")
    results = {
        "baskets": args.baskets,
        "venues": where,
        "outcomes": outcomes,
        "launch_skew_venue_accept": line("launch skew, venue accept (true ns clocks)", skews),
        "launch_skew_send": line("first-order send times across legs", send_skews),
        "launch_skew_raw_ack": line("raw ack arrival across legs", ack_skews),
        "fill_to_hedge_sent": line("fill seen by a leg -> hedge order sent", reactions),
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    name = "basket_colo.json" if args.colo else "basket.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if outcomes.get("COMPLETED", 0) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
