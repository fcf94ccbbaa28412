"""The simulator's showcase: run a market through the exchange core and measure it."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from venues.model import Side
from venues.sim.calibration import (
    DEFAULT_CALIBRATION,
    NS_PER_S,
    SECONDS_PER_YEAR,
    Calibration,
    exposure,
    factor_covariance,
)
from venues.sim.exchange import SimExchange
from venues.sim.market import MarketSource
from venues.sim.replay import ReplayMarket
from venues.sim.synthetic import SyntheticMarket

# The showcase's synthetic run starts here; any fixed instant would do.
SHOWCASE_ORIGIN_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
_STEP_NS = 100_000_000


@dataclass(slots=True)
class InstrumentStats:
    symbol: str
    realised_vol: float
    median_spread_ticks: float
    median_top_usd: float
    samples: int
    target_vol: float | None = None
    target_top_usd: float | None = None


@dataclass(slots=True)
class ShowcaseResult:
    source: str
    seconds: float
    wall_s: float
    updates: int
    instruments: list[InstrumentStats]
    correlations: dict[str, tuple[float, float | None]] = field(default_factory=dict)

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.wall_s if self.wall_s > 0 else float("inf")


def run(
    market: MarketSource,
    *,
    seconds: float,
    start_ns: int,
    source: str,
    calibration: Calibration = DEFAULT_CALIBRATION,
    sample_every_s: float = 1.0,
) -> ShowcaseResult:
    """Advance an exchange on `market` for `seconds` of simulated time, as fast as it goes,
    sampling each book's mid, spread and touch size every `sample_every_s`."""
    exchange = SimExchange("showcase", market, start_ns=start_ns)
    symbols = list(exchange.instruments)
    mids: dict[str, list[float]] = {s: [] for s in symbols}
    spreads: dict[str, list[float]] = {s: [] for s in symbols}
    tops: dict[str, list[float]] = {s: [] for s in symbols}
    sample_ns = int(sample_every_s * NS_PER_S)
    steps = int(seconds * NS_PER_S) // _STEP_NS
    next_sample = start_ns
    wall = time.perf_counter()
    for k in range(1, steps + 1):
        now = start_ns + k * _STEP_NS
        exchange.advance(now)
        exchange.drain()
        if now < next_sample:
            continue
        next_sample += sample_ns
        for s in symbols:
            book = exchange.books[s]
            bid, ask = book.best_bid(), book.best_ask()
            if bid is None or ask is None:
                mids[s].append(math.nan)
                continue
            inst = exchange.instruments[s]
            tick, lot = float(inst.tick), float(inst.lot)
            mids[s].append((bid + ask) / 2 * tick)
            spreads[s].append(ask - bid)
            top = (book.level_qty(Side.BUY, bid) + book.level_qty(Side.SELL, ask)) / 2
            tops[s].append(top * lot * (bid + ask) / 2 * tick)
    wall = time.perf_counter() - wall

    per_year = SECONDS_PER_YEAR / sample_every_s
    names, cov = factor_covariance(calibration)
    expo = {s: exposure(exchange.instruments[s], names) for s in symbols}
    target_vol = {s: float(np.sqrt(expo[s] @ cov @ expo[s])) for s in symbols}
    target_top = {"BTC": calibration.top_of_book_usd, "ETH": calibration.eth_top_of_book_usd}
    returns: dict[str, np.ndarray] = {}
    stats = []
    for s in symbols:
        r = np.diff(np.log(np.asarray(mids[s])))
        returns[s] = r
        ok = r[np.isfinite(r)]
        inst = exchange.instruments[s]
        stats.append(
            InstrumentStats(
                symbol=s,
                realised_vol=float(np.std(ok) * math.sqrt(per_year)) if ok.size > 1 else math.nan,
                median_spread_ticks=statistics.median(spreads[s]) if spreads[s] else math.nan,
                median_top_usd=statistics.median(tops[s]) if tops[s] else math.nan,
                samples=int(ok.size),
                target_vol=target_vol[s] or None,
                target_top_usd=target_top.get(inst.base) if inst.kind.value == "perp" else None,
            )
        )
    corr: dict[str, tuple[float, float | None]] = {}
    for i, a in enumerate(symbols):
        for b in symbols[i + 1 :]:
            ra, rb = returns[a], returns[b]
            ok = np.isfinite(ra) & np.isfinite(rb)
            if ok.sum() < 3:
                continue
            denom = target_vol[a] * target_vol[b]
            target = float(expo[a] @ cov @ expo[b] / denom) if denom else None
            corr[f"{a}/{b}"] = (float(np.corrcoef(ra[ok], rb[ok])[0, 1]), target)
    return ShowcaseResult(
        source=source,
        seconds=seconds,
        wall_s=wall,
        updates=exchange.updates_applied,
        instruments=stats,
        correlations=corr,
    )


def synthetic(seconds: float, seed: int) -> ShowcaseResult:
    """The synthetic market of `seed` for `seconds` of simulated time."""
    market = SyntheticMarket(seed, SHOWCASE_ORIGIN_NS)
    return run(
        market, seconds=seconds, start_ns=SHOWCASE_ORIGIN_NS, source=f"synthetic (seed {seed})"
    )


def replay(seconds: float, directory: Path, kind: str = "usdm") -> ShowcaseResult:
    """The recorded market in `directory` (`usdm` or `spot` files), at most `seconds` of it."""
    market = ReplayMarket.from_dir(directory, kind, start_ns=SHOWCASE_ORIGIN_NS)
    span = (market.last_ns - SHOWCASE_ORIGIN_NS) / NS_PER_S
    return run(
        market,
        seconds=min(seconds, span),
        start_ns=SHOWCASE_ORIGIN_NS,
        source=f"replay of {directory} ({kind})",
    )


def _pct(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x * 100:.1f}%"


def _usd(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"${x / 1e3:,.0f}k" if x < 1e6 else f"${x / 1e6:,.2f}M"


def format_result(r: ShowcaseResult) -> str:
    """A plain-text table of what was measured beside the calibration targets."""
    lines = [
        f"market: {r.source}; {r.seconds:,.0f} s simulated in {r.wall_s:.2f} s wall "
        f"({r.seconds / r.wall_s if r.wall_s else float('inf'):,.0f}x real time, "
        f"{r.updates_per_s:,.0f} market updates/s through the exchange core)",
        "",
        f"{'instrument':<11} {'realised vol':>12} {'target':>7} {'spread (ticks)':>15} "
        f"{'top of book':>12} {'target':>9}",
        f"{'':<11} {'':>12} {'':>7} {'median':>15} {'median':>12}",
    ]
    for s in r.instruments:
        lines.append(
            f"{s.symbol:<11} {_pct(s.realised_vol):>12} {_pct(s.target_vol):>7} "
            f"{s.median_spread_ticks:>15.1f} {_usd(s.median_top_usd):>12} "
            f"{_usd(s.target_top_usd):>9}"
        )
    if r.correlations:
        lines.append("")
        lines.append("correlation of 1 s returns (target from the calibration):")
        for pair, (value, target) in r.correlations.items():
            t = "—" if target is None else f"{target:.2f}"
            lines.append(f"  {pair:<18} {value:6.2f}  ({t})")
    return "\n".join(lines)
