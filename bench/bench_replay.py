"""Replay throughput: recorded Binance lines decoded, updates yielded, and books rebuilt."""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from venues.model import Side
from venues.sim.book import OrderBook
from venues.sim.market import DepthUpdate
from venues.sim.replay import ReplayMarket

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance-20240808"
RESULTS = ROOT / "bench" / "results" / "replay.json"
REPEAT = 3  # best of: the figures are throughput, the fastest run is the least disturbed


def _best(run: Callable[[], int]) -> tuple[float, int]:
    """Fastest wall time of `run` over REPEAT runs, and what it counted."""
    best, count = float("inf"), 0
    for _ in range(REPEAT):
        t = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - t)
    return best, count


def _decode(market: ReplayMarket) -> int:
    """Decode every line into records, yielding nothing to a consumer."""
    return sum(1 for _ in market.records())


def _yield(market: ReplayMarket) -> int:
    """Yield every update, as the exchange's `advance` pulls them."""
    return sum(1 for _ in market.updates(market.last_ns))


def _rebuild(market: ReplayMarket) -> int:
    """Yield every update and apply every DepthUpdate to its symbol's OrderBook."""
    books = {i.symbol: OrderBook() for i in market.instruments()}
    n = 0
    for update in market.updates(market.last_ns):
        n += 1
        if type(update) is DepthUpdate:
            book = books[update.symbol]
            book.set_market_levels(Side.BUY, update.bids)
            book.set_market_levels(Side.SELL, update.asks)
    return n


def measure(directory: Path, kind: str) -> dict[str, object]:
    """Throughput of one venue kind's recordings, all symbols merged."""

    def fresh() -> ReplayMarket:
        # Uncached: every figure includes decoding the files (a backtest decodes them once
        # per process and replays its later runs from the decoded chunks).
        return ReplayMarket.from_dir(directory, kind, start_ns=0, cached=False)  # type: ignore[arg-type]

    market = fresh()
    files = sorted(directory.glob(f"{kind}_*.gz"))
    lines = 0
    for path in files:
        with gzip.open(path, "rb") as f:
            lines += sum(1 for _ in f)
    decode_s, records = _best(lambda: _decode(fresh()))
    updates_s, updates = _best(lambda: _yield(fresh()))
    rebuild_s, _ = _best(lambda: _rebuild(fresh()))
    recorded_s = market.duration_ns / 1e9
    return {
        "kind": kind,
        "symbols": [i.symbol for i in market.instruments()],
        "lines": lines,
        "updates": updates,
        "records": records,
        "recorded_s": round(recorded_s, 3),
        "decode_lines_per_s": round(lines / decode_s),
        "updates_per_s": round(updates / updates_s),
        "rebuild_lines_per_s": round(lines / rebuild_s),
        "rebuild_x_real_time": round(recorded_s / rebuild_s, 1),
        "wall_s": {"decode": decode_s, "updates": updates_s, "rebuild": rebuild_s},
    }


def main(argv: list[str]) -> None:
    directory = Path(argv[0]) if argv else DATA
    results = [measure(directory, kind) for kind in ("usdm", "spot")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"bench": "replay", "python": sys.version.split()[0], "results": results}, indent=2
        )
        + "\n"
    )
    for r in results:
        print(
            f"replay {r['kind']} {'+'.join(r['symbols'])}: {r['lines']:,} lines, "
            f"{r['recorded_s']:.0f} s recorded | decode {r['decode_lines_per_s']:,} lines/s | "
            f"yield {r['updates_per_s']:,} updates/s | with books rebuilt "
            f"{r['rebuild_lines_per_s']:,} lines/s ({r['rebuild_x_real_time']:.0f}x real time)"
        )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
