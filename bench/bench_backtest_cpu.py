"""Backtest speed per CPU second: market events over the process's own CPU time.

Wall-clock events per second (`bench_backtest`) move with whatever else the machine runs;
the CPU time of this process moves much less, so two commits can be compared on a busy
2-core machine. Run it with each commit's interpreter, alternating:

    /path/to/checkout/.venv/bin/python bench/bench_backtest_cpu.py [--seeds 4] [--rounds 2]

It runs a basket in every execution mode over `--seeds` seeds, `--rounds` times, and prints
and writes (bench/results/backtest_cpu.json) the market events per CPU second of each round.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from actors.backtest import ExecutionMode, run_once
from actors.spec import load_basket
from venues.config import load_venues

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "quick_demo": ("examples/synthetic_eth_quick.toml", "examples/venues.toml"),
    "laggard_200ms": (
        "bench/scenarios/laggard/pair.toml",
        "bench/scenarios/laggard/venues_200ms.toml",
    ),
}


def one_round(basket: str, venues: str, seeds: int) -> dict[str, float]:
    spec, config = load_basket(ROOT / basket), load_venues(ROOT / venues)
    events, cpu = 0, 0.0
    for seed in range(seeds):
        for mode in ExecutionMode:
            start = time.process_time()
            result = run_once(spec, config, mode, seed)
            cpu += time.process_time() - start
            events += result.market_events
    return {"events": events, "cpu_s": cpu, "events_per_cpu_s": events / cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/backtest_cpu.json")
    args = parser.parse_args()
    doc: dict[str, list[dict[str, float]]] = {}
    for name, (basket, venues) in CASES.items():
        doc[name] = [one_round(basket, venues, args.seeds) for _ in range(args.rounds)]
        rates = ", ".join(f"{r['events_per_cpu_s']:,.0f}" for r in doc[name])
        print(f"{name:14} events per CPU second: {rates} ({args.seeds} seeds x 3 modes)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seeds": args.seeds, "cases": doc}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
