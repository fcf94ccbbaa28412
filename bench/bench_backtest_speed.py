"""The backtest's speed per CPU second, beside what only producing its market events costs.

Market events are the updates the venues' market sources yielded (`RunResult.market_events`).
One run of this measures, in this process's CPU time (`time.process_time`, which moves much
less than wall time on a busy machine):

- synthetic: every execution mode over `--seeds` seeds of the quick demo basket
  (examples/synthetic_eth_quick.toml) and the 200 ms laggard pair, whole backtests;
- replay: the same over the spot-vs-perp basket on the recorded Binance files, after one
  untimed run that decodes the files (a backtest decodes them once per process);
- the baselines, with no engine at all: the synthetic markets of the quick demo's venues
  stepped at the backtest's 5 ms (`SyntheticMarket.updates`), the recorded files decoded
  from gzip (uncached) and their decoded chunks replayed (`ReplayMarket.updates`).

Each figure is the best of `--rounds` rounds (the least disturbed: other work on the machine
only ever slows a round). It prints them side by side with the targets and writes
bench/results/backtest_speed.json;
`--profile` also writes the top of a cProfile of the timed runs to
bench/results/backtest_profile_after.txt (or the path given).

    .venv/bin/python -m bench.bench_backtest_speed [--seeds 3] [--rounds 3] [--profile [PATH]]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from actors.backtest import ExecutionMode, check_venues, run_once
from actors.spec import load_basket
from cluster.config import load_cluster
from venues.config import SimVenueConfig, SyntheticMarketConfig, build_market
from venues.sim.replay import ReplayMarket

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCENARIOS = ROOT / "bench" / "scenarios"
DATA = ROOT.parent / "shared" / "data" / "binance-20240808"
TARGETS = {"synthetic": 100_000, "replay": 150_000}
SYNTHETIC = {
    "quick_demo": (ROOT / "examples/synthetic_eth_quick.toml", ROOT / "examples/venues.toml"),
    "laggard_200ms": (SCENARIOS / "laggard/pair.toml", SCENARIOS / "laggard/venues_200ms.toml"),
}
REPLAY = (SCENARIOS / "spot_perp_replay/basis.toml", SCENARIOS / "spot_perp_replay/venues.toml")
STEP_NS = 5_000_000  # the backtest's market step
SYNTHETIC_SPAN_S = 300  # simulated seconds each market steps through in its baseline


def _load(basket: Path, venues: Path) -> tuple[Any, Any, Any]:
    cluster = load_cluster(venues)
    spec = load_basket(basket)
    if getattr(spec, "hedge", None) is None and cluster.hedge is not None:
        spec = msgspec.structs.replace(spec, hedge=cluster.hedge)
    return spec, check_venues(cluster.venues), cluster.risk


def backtests(cases: list[tuple[Path, Path]], seeds: int) -> dict[str, float]:
    """Market events per CPU second over every mode and seed of `cases`."""
    events, cpu = 0, 0.0
    for basket, venues in cases:
        spec, config, risk = _load(basket, venues)
        for seed in range(seeds):
            for mode in ExecutionMode:
                start = time.process_time()
                result = run_once(spec, config, mode, seed, risk=risk)
                cpu += time.process_time() - start
                events += result.market_events
    return {"events": events, "cpu_s": cpu, "events_per_s": events / cpu}


def synthetic_baseline() -> dict[str, float]:
    """The quick demo venues' synthetic markets alone, stepped as the backtest steps them."""
    _, config, _ = _load(*SYNTHETIC["quick_demo"])
    for cfg in config.venues.values():  # untimed: what a first market imports (numpy.random)
        assert isinstance(cfg, SimVenueConfig)
        build_market(cfg, 0, origin_ns=0)
    events, cpu = 0, 0.0
    for cfg in config.venues.values():
        assert isinstance(cfg, SimVenueConfig) and isinstance(cfg.market, SyntheticMarketConfig)
        start = time.process_time()
        market = build_market(cfg, 0, origin_ns=0)
        for t in range(0, SYNTHETIC_SPAN_S * 1_000_000_000, STEP_NS):
            for _ in market.updates(t):
                events += 1
        cpu += time.process_time() - start
    return {"events": events, "cpu_s": cpu, "events_per_s": events / cpu}


def replay_baselines() -> dict[str, dict[str, float]]:
    """The recorded BTC files (spot and USD-M): decoded from gzip, and replayed decoded."""
    decode, replay = {"events": 0, "cpu_s": 0.0}, {"events": 0, "cpu_s": 0.0}
    for kind in ("spot", "usdm"):
        start = time.process_time()
        market = ReplayMarket.from_dir(DATA, kind, 0, symbols=["BTCUSDT"], cached=False)
        decode["events"] += sum(1 for _ in market.records())
        decode["cpu_s"] += time.process_time() - start
        # Decoded once for the process (the timed backtests did it), as a later run finds it.
        market = ReplayMarket.from_dir(DATA, kind, 0, symbols=["BTCUSDT"])
        sum(1 for _ in market.records())
        market = ReplayMarket.from_dir(DATA, kind, 0, symbols=["BTCUSDT"])
        start = time.process_time()
        replay["events"] += sum(1 for _ in market.updates(market.last_ns))
        replay["cpu_s"] += time.process_time() - start
    for d in (decode, replay):
        d["events_per_s"] = d["events"] / d["cpu_s"]
    return {"decode": decode, "replay_decoded": replay}


def _profile_text(profile: cProfile.Profile, title: str) -> str:
    buf = io.StringIO()
    buf.write(f"{title}\n\n")
    stats = pstats.Stats(profile, stream=buf)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    return buf.getvalue().replace(str(ROOT) + "/", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile",
        nargs="?",
        type=Path,
        const=RESULTS / "backtest_profile_after.txt",
        default=None,
        help="also write the top of a cProfile of the timed runs here",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "backtest_speed.json")
    args = parser.parse_args()
    replay = DATA.is_dir()
    if replay:  # the untimed run that decodes the files once for the process
        spec, config, risk = _load(*REPLAY)
        run_once(spec, config, ExecutionMode.COORDINATED, 0, risk=risk)

    def best(rounds: list[dict[str, float]]) -> dict[str, float]:
        return max(rounds, key=lambda r: r["events_per_s"])

    doc: dict[str, Any] = {
        "seeds": args.seeds,
        "rounds": args.rounds,
        "unit": "market events per CPU second of this process, best round",
        "load_1min": os.getloadavg()[0],
        "targets": TARGETS,
    }
    figures: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):  # interleaved, so a busy spell hits every figure alike
        figures.setdefault("synthetic", []).append(backtests(list(SYNTHETIC.values()), args.seeds))
        figures.setdefault("synthetic_baseline", []).append(synthetic_baseline())
        if replay:
            figures.setdefault("replay", []).append(backtests([REPLAY], args.seeds))
            for k, v in replay_baselines().items():
                figures.setdefault(f"replay_baseline_{k}", []).append(v)
    doc |= {name: best(rounds) for name, rounds in figures.items()}
    rows = [
        ("backtest, synthetic (quick demo + laggard 200 ms)", "synthetic", TARGETS["synthetic"]),
        ("  baseline: synthetic markets stepped alone", "synthetic_baseline", None),
        ("backtest, replay (spot vs perp, decoded once)", "replay", TARGETS["replay"]),
        ("  baseline: decode the gzip files", "replay_baseline_decode", None),
        ("  baseline: replay the decoded files", "replay_baseline_replay_decoded", None),
    ]
    print(
        f"events per CPU second ({args.seeds} seeds x 3 modes, best of {args.rounds}; "
        f"load {doc['load_1min']:.1f})"
    )
    for label, key, target in rows:
        if key in doc:
            aim = f"   target {target:>9,}" if target else ""
            print(f"  {label:52} {doc[key]['events_per_s']:>11,.0f}{aim}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    if args.profile is not None:
        profile = cProfile.Profile()
        profile.enable()
        backtests(list(SYNTHETIC.values()), 1)
        if replay:
            backtests([REPLAY], 1)
        profile.disable()
        title = "cProfile of one seed x 3 modes of each backtest above (synthetic, then replay)"
        args.profile.write_text(_profile_text(profile, title))
        print(f"profile written to {args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
