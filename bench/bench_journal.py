"""What the journal costs on SQLite (WAL), through `JournalWriter` (issue 21).

Three figures per `synchronous` setting (NORMAL, the default: durable against a crash of
the process; FULL: against a power cut too, one fsync per commit):
- **durable**: one task awaiting `writer.durable(record)` after another, as a leg that
  must not send a child order before its record is committed: commits per second and the
  latency of each (p50, p99);
- **durable ×8**: eight such tasks at once (eight legs in one process): their records share
  commits (group commit), so the rate grows while the latency stays about one commit;
- **batched**: `writer.write(record)` as fast as one task can call it, yielding to the loop
  every 100 records, then `flush()`: records per second end to end, and the cost of one
  `write` call (the hot path's only cost) at p50 and p99.
Each phase runs for `--seconds` (default 1) on a fresh journal in a temp dir. Prints a
table and writes bench/results/journal.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.journal import JournalBackpressure, JournalWriter, SqliteJournal
from actors.journal.records import ChildOrderSent, Purpose
from bench.common import RESULTS, machine, machine_line, stats, table
from venues.model import OrderType, Side, TimeInForce

US = 1e3  # ns per µs
CHUNK = 100  # records written between two yields to the loop (batched phase)
TASKS = 8


def record(run_id: str, n: int) -> ChildOrderSent:
    """A child order's write-ahead, as a leg writes it."""
    return ChildOrderSent(
        run_id=run_id,
        leg_id="eth",
        n=n,
        client_order_id=f"bench-eth-{n}",
        venue="alpha",
        symbol="ETHUSDT",
        side=Side.BUY,
        qty=Decimal("0.125"),
        price=Decimal("3012.34"),
        type=OrderType.LIMIT,
        tif=TimeInForce.IOC,
        purpose=Purpose.SLICE,
        mid=Decimal("3012.335"),
        ts_ns=time.time_ns(),
    )


async def durable(writer: JournalWriter, run_id: str, seconds: float, tasks: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(10**9))

    async def one() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter_ns()
            await writer.durable(record(run_id, next(counter)))
            latencies.append((time.perf_counter_ns() - t) / US)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(tasks)))
    wall = time.perf_counter() - start
    return {"appends_per_s": len(latencies) / wall, "latency_us": stats(latencies)}


async def batched(writer: JournalWriter, run_id: str, seconds: float) -> dict:
    calls: list[float] = []
    n = refused = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for _ in range(CHUNK):
            r = record(run_id, n)
            t = time.perf_counter_ns()
            try:
                writer.write(r)
            except JournalBackpressure:
                refused += 1
                await writer.flush()
                continue
            calls.append(float(time.perf_counter_ns() - t))
            n += 1
        await asyncio.sleep(0)
    await writer.flush()
    wall = time.perf_counter() - start
    return {
        "records_per_s": n / wall,
        "records": n,
        "batches": writer.batches,
        "write_call_ns": stats(calls),
        "backpressure": refused,
    }


async def measure(synchronous: str, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="legato-bench-journal-") as tmp:
        for phase in ("durable", "durable_x8", "batched"):
            store = SqliteJournal(Path(tmp) / phase, synchronous=synchronous)
            await store.open()
            try:
                run_id = await store.new_run("bench")
                async with JournalWriter(store) as writer:
                    if phase == "batched":
                        out[phase] = await batched(writer, run_id, seconds)
                    else:
                        tasks = TASKS if phase == "durable_x8" else 1
                        out[phase] = await durable(writer, run_id, seconds, tasks)
                        out[phase]["batches"] = writer.batches
                stored = len(await store.records(run_id))
                expected = out[phase].get("records") or out[phase]["latency_us"]["n"]
                if stored != expected:
                    raise SystemExit(f"{phase}: {stored} records stored, {expected} written")
            finally:
                await store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per phase (default 1)")
    args = parser.parse_args()
    results = {s: asyncio.run(measure(s, args.seconds)) for s in ("NORMAL", "FULL")}

    rows = []
    for sync, r in results.items():
        for phase in ("durable", "durable_x8"):
            lat = r[phase]["latency_us"]
            rows.append([sync, phase, r[phase]["appends_per_s"], lat["p50"], lat["p99"]])
        b = r["batched"]
        rows.append(
            [sync, "batched (write + flush)", b["records_per_s"], None, None],
        )
        calls = b["write_call_ns"]
        rows.append([sync, "write() call, µs", None, calls["p50"] / US, calls["p99"] / US])
    text = table(["synchronous", "what", "per s", "p50 µs", "p99 µs"], rows)
    m = machine()
    doc = {
        "bench": "journal",
        "backend": "sqlite (WAL)",
        "seconds_per_phase": args.seconds,
        "results": results,
        "machine": m,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "journal.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{text}\n\nMachine: {machine_line(m)}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
