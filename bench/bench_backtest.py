"""The backtest comparison on bench/scenarios/, and the backtest's speed on the replay files.

For each scenario, `legato backtest`'s comparison (actors.backtest.compare) of coordinated,
independent and sequential execution over SEEDS seeds; the laggard sweep runs the same pair
with its slow venue at 10, 50, 200 and 500 ms, and again, coordinated and independent only,
with that venue *steady*: its request and response trips at their median every time. The
difference between the two ratios is what the slow venue's jitter costs: coordinated legs
aim each slice at the slow venue's median trip, and no schedule can aim one order's trip
more closely than its spread.

Speed: market events (the updates the venues' market sources yielded, docs/backtest.md) per
second of wall time, over every run of the spot-vs-perp replay (the recorded Binance files)
and over every run of the synthetic scenarios, with decode-only throughput of the same files
(uncached, from the gzip files to records) as the baseline in the same run.

Writes bench/results/backtest.json and backtest.md. `--seeds N` (default 20; 10 for the
longer scenarios).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from actors.backtest import ExecutionMode, check_venues, compare
from actors.spec import load_basket
from bench.common import ROOT, table, write
from cluster.config import load_cluster
from venues.config import VenuesConfig
from venues.sim.replay import ReplayMarket

SCENARIOS = ROOT / "bench" / "scenarios"
MODES = list(ExecutionMode)
SWEEP_MS = (10, 50, 200, 500)
LAGGARD = "slow"  # the sweep's slow venue (bench/scenarios/laggard/venues_*ms.toml)
PAIR_MODES = [ExecutionMode.COORDINATED, ExecutionMode.INDEPENDENT]


def steady(venues: VenuesConfig, name: str) -> VenuesConfig:
    """`venues` with venue `name`'s request and response trips at their median every time
    (p99 = median): its delay without its jitter."""
    cfg = venues.venues[name]
    profile = cfg.profile
    trips = ("request", "response")
    if not isinstance(profile, dict) or not all(isinstance(profile.get(t), dict) for t in trips):
        raise ValueError(
            f"venue {name}: its profile must give request and response latencies as tables "
            f"(median_ms, p99_ms), not {profile!r}"
        )
    fixed = dict(profile)
    for trip in trips:
        median = profile[trip]["median_ms"]
        fixed[trip] = {"median_ms": median, "p99_ms": median}
    table_ = {**venues.venues, name: msgspec.structs.replace(cfg, profile=fixed)}
    return msgspec.structs.replace(venues, venues=table_)


def run(
    basket: Path,
    venues: Path,
    seeds: int,
    modes: list[ExecutionMode] = MODES,
    steady_venue: str | None = None,
) -> dict[str, Any]:
    cluster = load_cluster(venues)
    spec = load_basket(basket)
    if spec.hedge is None and cluster.hedge is not None:
        spec = msgspec.structs.replace(spec, hedge=cluster.hedge)
    config = cluster.venues if steady_venue is None else steady(cluster.venues, steady_venue)
    t = time.monotonic()
    doc = compare(spec, check_venues(config), modes, seeds, risk=cluster.risk)
    what = "" if steady_venue is None else f" ({steady_venue} steady)"
    print(f"  {basket.relative_to(ROOT)}{what}: {time.monotonic() - t:.0f} s", flush=True)
    return doc


def decode_rate(directory: Path) -> float:
    """Decode-only replay throughput (records/s) of both kinds' BTC files: the floor of any
    replay consumer."""
    n, t = 0, time.perf_counter()
    for kind in ("spot", "usdm"):
        market = ReplayMarket.from_dir(directory, kind, 0, symbols=["BTCUSDT"], cached=False)
        n += sum(1 for _ in market.records())
    return n / (time.perf_counter() - t)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    seeds, few = args.seeds, max(2, args.seeds // 2)
    results: dict[str, Any] = {"seeds": seeds, "scenarios": {}}
    lag = SCENARIOS / "laggard"
    steady_sweep: dict[int, dict[str, Any]] = {}
    for ms in SWEEP_MS:
        results["scenarios"][f"laggard_{ms}ms"] = run(
            lag / "pair.toml", lag / f"venues_{ms}ms.toml", seeds
        )
        steady_sweep[ms] = run(
            lag / "pair.toml", lag / f"venues_{ms}ms.toml", seeds, PAIR_MODES, LAGGARD
        )
    others = {
        "thin_book": ("thin_book/pair.toml", "thin_book/venues.toml", seeds),
        "outage": ("outage/pair.toml", "outage/venues.toml", seeds),
        "rebalance_60_40": ("rebalance_60_40/rebalance.toml", "rebalance_60_40/venues.toml", few),
        "spot_perp_replay": ("spot_perp_replay/basis.toml", "spot_perp_replay/venues.toml", few),
    }
    for name, (basket, venues, n) in others.items():
        results["scenarios"][name] = run(SCENARIOS / basket, SCENARIOS / venues, n)
    replay = results["scenarios"]["spot_perp_replay"]
    data = Path(
        load_cluster(SCENARIOS / "spot_perp_replay/venues.toml").venues.venues["spot"].market.dir
    )
    synthetic = [d for name, d in results["scenarios"].items() if name != "spot_perp_replay"]
    synthetic_events = sum(d["market_events"] for d in synthetic)
    results["speed"] = {
        "events_per_s": replay["events_per_s"],
        "market_events": replay["market_events"],
        "synthetic_events_per_s": synthetic_events / sum(d["wall_s"] for d in synthetic),
        "synthetic_market_events": synthetic_events,
        "decode_only_records_per_s": decode_rate(data),
    }
    rows = []
    for name, doc in results["scenarios"].items():
        for mode, m in doc["modes"].items():
            rows.append(
                [
                    name,
                    mode,
                    m["legging_risk_usd"]["mean"],
                    m["legging_risk_usd"]["p95"],
                    m["peak_imbalance_usd"]["mean"],
                    m["shortfall_bps"]["mean"],
                    m["completion_s"]["mean"],
                    m["hedge_cost_usd"]["mean"],
                    f"{m['completed']}/{m['runs']}",
                ]
            )

    def mean(doc: dict[str, Any], mode: str, figure: str = "legging_risk_usd") -> float:
        return float(doc["modes"][mode][figure]["mean"])

    ratio_rows = []
    for ms in SWEEP_MS:
        doc, still = results["scenarios"][f"laggard_{ms}ms"], steady_sweep[ms]
        ratio_rows.append(
            [
                f"{ms} ms",
                mean(doc, "coordinated") / mean(doc, "independent"),
                mean(doc, "coordinated", "shortfall_bps")
                - mean(doc, "independent", "shortfall_bps"),
                mean(still, "coordinated") / mean(still, "independent"),
                mean(still, "coordinated"),
                mean(still, "independent"),
            ]
        )
    results["laggard_ratios"] = {
        r[0]: {
            "risk_ratio": r[1],
            "extra_shortfall_bps": r[2],
            "steady_risk_ratio": r[3],
            "steady_coordinated_risk_usd": r[4],
            "steady_independent_risk_usd": r[5],
        }
        for r in ratio_rows
    }
    md = "\n\n".join(
        [
            "### Backtest: execution modes per scenario (means over seeds; legging risk also p95)",
            table(
                [
                    "scenario",
                    "mode",
                    "legging risk $",
                    "p95",
                    "peak imbalance $",
                    "shortfall bp",
                    "completion s",
                    "hedge cost $",
                    "completed",
                ],
                rows,
            ),
            "### Laggard sweep: coordinated against independent",
            table(
                [
                    "laggard round trip",
                    "legging risk ratio",
                    "extra shortfall bp",
                    "ratio, laggard steady",
                    "coordinated $, steady",
                    "independent $, steady",
                ],
                ratio_rows,
            ),
            "*Steady*: the slow venue's request and response trips at their median every time "
            "(no jitter), coordinated and independent over the same seeds. The gap between "
            "the two ratios is the jitter's: coordinated legs aim each slice at the slow "
            "venue's median trip, and one order's trip cannot be aimed more closely.",
            "### Backtest speed (market events per second of wall time)",
            table(
                ["figure", "events/s"],
                [
                    ["backtest, spot-vs-perp replay (all runs)", results["speed"]["events_per_s"]],
                    [
                        "backtest, synthetic scenarios (all runs)",
                        results["speed"]["synthetic_events_per_s"],
                    ],
                    [
                        "baseline: decode only, same files",
                        results["speed"]["decode_only_records_per_s"],
                    ],
                ],
            ),
        ]
    )
    write("backtest", results, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
