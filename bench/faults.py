"""The fault suite: baskets on simulated venues over real sockets while their actors die,
their venues lose answers, streams and whole minutes, each run then held against the
venues' own records and the journal (never against the engine's report).

Trials (each bounded in runs and in wall time; `--quick`: 2 runs per trial and case):

1. a leg actor killed at a random moment (30 runs; policies complete, unwind, hold);
2. the basket actor killed at a random moment (20 runs on SQLite, 20 on PostgreSQL:
   a throwaway server from Debian's `initdb`, skipped, saying so, when there is none);
3. 20 % of order answers lost on every venue, the orders applied late (30 runs);
4. every venue's user-data streams dropped every 2-3 s (`POST /_sim/streams/drop`; 10);
5. a venue down 1, 5 and 20 s (and 40 s, past the 30 s unwind deadline, 3 runs) just as
   its baskets are cancelled under policy unwind (10 runs each);
6. the collateral and the hedge singletons killed mid-basket (10 runs each);
7. the driver (`legato run`, or a driver script) SIGKILLed mid-basket, the report then got
   with `legato attach` (10 runs, 2 at a time, on one `ray start` cluster);
8. the whole local engine (every Ray process of a `ray start` cluster, and the driver)
   SIGKILLed mid-basket, then `legato recover` on a fresh cluster (10 runs; policies
   unwind, complete, hedge_and_hold).

Trials 1-6 each run on an engine of their own (their own Ray namespace and journal, in a
temporary directory or the throwaway PostgreSQL) in this process's own local Ray
(2 CPUs), a few baskets at once. Trials 7 and 8 run `legato` and `ray start` as separate
processes (their own clusters, SQLite journals and temporary directory) against venues
served by `legato venues up`, which they read back over the venues' API. Prints the
table and writes bench/results/faults.json and faults.md.

    .venv/bin/python -m bench.faults --quick
    .venv/bin/python -m bench.faults --trials 1,3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from bench.common import table, write
from bench.faults_trials.trials import TRIALS, Case, Settings, applied
from bench.pgserver import PostgresMissing, temporary_postgres

NAMESPACE = "legato-faults"


@contextlib.contextmanager
def postgres_if_needed(wanted: bool) -> Iterator[tuple[str | None, str]]:
    """(DSN, "") of a throwaway PostgreSQL, or (None, why not)."""
    if not wanted:
        yield None, "trial 2 not run"
        return
    try:
        with temporary_postgres() as server:
            yield server.dsn(), ""
    except PostgresMissing as e:
        print(f"PostgreSQL skipped: {e}", file=sys.stderr, flush=True)
        yield None, str(e)


def report(cases: list[Case], settings: Settings, wall_s: float) -> tuple[dict[str, Any], str]:
    header = [
        "trial",
        "runs",
        "ended",
        "dup ids",
        "unjournaled",
        "fill gaps",
        "trades not booked",
        "position gaps",
        "leaked",
        "legs reconciled",
        "figure",
        "wall s",
        "pass",
    ]
    rows = []
    for c in cases:
        n = c.counts()
        verdict = "skipped" if c.skipped else ("yes" if c.passed else "NO")
        rows.append(
            [
                c.name,
                f"{n['faulted']}/{c.wanted}"
                + (f" (+{n['runs'] - n['faulted']} missed)" if n["runs"] > n["faulted"] else ""),
                n["ended"],
                n["duplicate_ids"],
                n["unjournaled"],
                n["fill_gaps"],
                f"{n['trades_not_booked']}/{n['trades_at_venue']}",
                f"{n['batch_problems']}+{n['trade_gaps']}",
                n["leaked"],
                f"{n['legs_reconciled']}/{n['legs']}",
                c.skipped or c.figure,
                round(c.wall_s, 1),
                verdict,
            ]
        )
    mode = "quick (2 runs per case)" if settings.quick else "full"
    lines = [
        "# Fault suite",
        "",
        f"Mode: {mode}; {settings.per_batch} baskets at once; seed {settings.seed}; "
        f"total wall time {wall_s:.0f} s. Every figure is read from the venues' own records "
        "and the journal; the engine's report gives only the final state.",
        "",
        table(header, rows),
        "",
        "Columns: *dup ids*: client order ids written ahead twice (a recovery re-recording "
        "an order it adopted from its venue aside), refused by a venue as duplicates, or "
        "naming a second order at the venue, and orders a venue received beyond those the "
        "journal wrote ahead for the batch; *unjournaled*: orders a "
        "venue knows under a run's prefix that the journal does not; *fill gaps*: orders "
        "whose filled quantity the journal has otherwise than the venue; *trades not booked*: "
        "venue trades with no `FillBooked` in the journal, of all the runs' venue trades; "
        "*position gaps*: per batch and venue symbol, a venue's change of position that "
        "differs from the net of the journal's orders' fills + from the net of its booked "
        "trades (judged in trials 1 and 4, whose figures are about booked fills; shown in "
        "the others); *leaked*: reservations never released.",
    ]
    failing = [c for c in cases if not c.passed and not c.skipped]
    if failing:
        lines += ["", "## Failures", ""]
        for c in failing:
            lines.append(f"### {c.name}")
            if c.cut_short:
                lines.append(f"- {c.cut_short}")
            shown = c.trade_gaps if c.trade_level else []
            for f in c.failures + c.batch_problems + shown + c.excess:
                lines.append(f"- {f}")
            for r in c.runs:
                if r.failures:
                    lines.append(
                        f"- `{r.run_id or r.basket_id}` ({r.policy}; {r.fault or 'no fault'}; "
                        f"ended {r.status or '–'}: {r.reason[:300]}): " + " | ".join(r.failures)
                    )
            lines.append("")
    notes = observations(cases)
    if notes:
        lines += ["", "## Observations (not judged)", "", *notes]
    doc = {
        "quick": settings.quick,
        "per_batch": settings.per_batch,
        "seed": settings.seed,
        "wall_s": round(wall_s, 1),
        "passed": all(c.passed or c.skipped for c in cases),
        "cases": [c.as_dict() for c in cases],
    }
    return doc, "\n".join(lines)


LAG_S = 30.0  # a report journaled this long after its run ended is worth a look


def observations(cases: list[Case]) -> list[str]:
    """What the runs showed beyond their trials' figures."""
    out = []
    for c in cases:
        if c.skipped:
            continue
        missing = sum(a.trades_not_booked for a in c.audits.values())
        if missing and not c.trade_level:
            out.append(
                f"- {c.name}: {missing} venue trades have no `FillBooked` in the journal "
                f"(order fills agree); per batch: {'; '.join(c.trade_gaps) or 'no gap'}"
            )
        for r in c.runs:
            a = c.audits.get(r.run_id)
            if a is not None and a.report_lag_s is not None and a.report_lag_s > LAG_S:
                out.append(
                    f"- {c.name}: `{r.run_id}` ended {a.state.value if a.state else '?'} but its "
                    f"report was journaled {a.report_lag_s:.0f} s later"
                )
        missed = [r.run_id for r in c.runs if not applied(r)]
        if missed:
            out.append(f"- {c.name}: the basket ended before its fault in {missed}")
        for line in c.extra.get("desk_vs_venue", []):
            out.append(f"- {c.name}: {line}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs per trial and case")
    parser.add_argument(
        "--trials", default=",".join(TRIALS), help="which trials, e.g. 1,3 (default: all)"
    )
    parser.add_argument("--per-batch", type=int, default=3, help="baskets run at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--bound-s", type=float, default=None, help="each case's wall-time bound, in seconds"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="write nothing to bench/results (print)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--outages",
        default=None,
        help="trial 5's outages in seconds, e.g. 1,40 (default 1,5,20 and, in full, 40)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep each trial's SQLite journal under DIR"
    )
    args = parser.parse_args()
    chosen = [t.strip() for t in args.trials.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TRIALS]
    if unknown:
        parser.error(f"--trials: unknown {unknown}; the trials are {', '.join(TRIALS)}")
    try:
        outages = tuple(float(x) for x in args.outages.split(",")) if args.outages else None
    except ValueError:
        parser.error(f"--outages: {args.outages!r} is not a list of seconds, e.g. 1,5,20")
    logging.basicConfig(level=logging.WARNING)
    t0 = time.monotonic()
    # A local Ray of this process's own ("local": never a cluster RAY_ADDRESS names), its
    # actors' logs kept out of the table (they are in Ray's session directory).
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace=NAMESPACE,
        log_to_driver=False,
    )
    cases: list[Case] = []
    try:
        with postgres_if_needed("2" in chosen) as (dsn, missing):
            settings = Settings(
                quick=args.quick,
                per_batch=max(1, args.per_batch),
                seed=args.seed,
                bound_s=args.bound_s,
                postgres=dsn,
                postgres_missing=missing,
                keep=args.keep,
                outages_s=outages,
            )
            for name in chosen:
                print(f"\n=== trial {name} ===", flush=True)
                cases += TRIALS[name](settings)
    finally:
        ray.shutdown()
    doc, markdown = report(cases, settings, time.monotonic() - t0)
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.no_write:
        print(markdown, flush=True)
    else:
        write("faults", doc, markdown)
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
