"""The synthetic market: calibrated, reproducible prices and a ladder the book can mirror."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from venues.model import Side
from venues.sim.book import MARKET, OrderBook
from venues.sim.calibration import (
    DEFAULT_CALIBRATION,
    NS_PER_S,
    SECONDS_PER_YEAR,
    SYNTHETIC_INSTRUMENTS,
)
from venues.sim.market import DepthUpdate, MarketUpdate, TradePrint
from venues.sim.synthetic import SyntheticMarket

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = 1_767_225_600 * NS_PER_S
S = NS_PER_S
HOUR = 3600 * S
DAY = 24 * HOUR
STEP = 100_000_000
CAL = DEFAULT_CALIBRATION
NO_TRADES = msgspec.structs.replace(CAL, trades_per_s=0.0)
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
TARGET_VOL = {f.name: f.vol for f in CAL.factors}


def _factor_returns(m: SyntheticMarket, every_ns: int, count: int) -> dict[str, np.ndarray]:
    rows = [m.factor_prices(ORIGIN + k * every_ns) for k in range(count + 1)]
    return {f: np.diff(np.log([r[f] for r in rows])) for f in rows[0]}


def _apply(books: dict[str, OrderBook], update: MarketUpdate) -> None:
    """Apply one update the way the exchange does (bids before asks; prints take at a limit)."""
    book = books[update.symbol]
    if isinstance(update, DepthUpdate):
        for price, qty in update.bids:
            book.set_market_level(Side.BUY, price, qty)
        for price, qty in update.asks:
            book.set_market_level(Side.SELL, price, qty)
    elif isinstance(update, TradePrint):
        book.take(update.aggressor, update.qty, update.price, MARKET)


def _mirror(m: SyntheticMarket) -> dict[str, OrderBook]:
    return {i.symbol: OrderBook() for i in m.instruments()}


def _usd(levels: list[tuple[int, int]], mid: float, within_bp: float) -> float:
    tick, lot = float(BTC.tick), float(BTC.lot)
    return sum(
        q * lot * p * tick for p, q in levels if abs(p * tick - mid) / mid <= within_bp * 1e-4
    )


# --- prices ------------------------------------------------------------------------------
def test_vols_and_correlations_match_calibration_over_sixty_days() -> None:
    every = 300 * S
    r = _factor_returns(SyntheticMarket(3, ORIGIN), every, 60 * 288)
    per_year = SECONDS_PER_YEAR * S / every
    for f, target in TARGET_VOL.items():
        # ±20 % is the brief; 17,280 returns (120 jumps) pin the vol to ~1.5 %, so ±7 % also
        # catches jump variance that is not taken out of the diffusion.
        vol = float(np.std(r[f]) * math.sqrt(per_year))
        assert 0.93 * target < vol < 1.07 * target, (f, vol, target)
        z = (r[f] - r[f].mean()) / r[f].std()
        assert np.mean(z**4) - 3 > 1.0, f  # fat tails: jumps, not only diffusion
    for pair, target in CAL.correlations.items():
        a, b = pair.split("/")
        rho = float(np.corrcoef(r[a], r[b])[0, 1])
        assert abs(rho - target) < 0.1, (pair, rho, target)


def test_fine_grid_carries_the_diffusion_vol_inside_coarse_steps() -> None:
    r = _factor_returns(SyntheticMarket(5, ORIGIN), S, 3600)
    for f, target in TARGET_VOL.items():
        vol = float(np.std(r[f]) * math.sqrt(SECONDS_PER_YEAR))
        assert 0.8 * target < vol < 1.2 * target, (f, vol, target)


def test_same_seed_same_prices_in_separate_processes() -> None:
    times = [ORIGIN - 3 * DAY + 17, ORIGIN, ORIGIN + 123_456_789, ORIGIN + 40 * DAY + 5 * S]
    code = (
        "import json, sys\n"
        "from venues.sim.synthetic import SyntheticMarket\n"
        "m = SyntheticMarket(11, int(sys.argv[1]))\n"
        "ts = json.loads(sys.argv[2])\n"
        "syms = sorted(i.symbol for i in m.instruments())\n"
        "print(json.dumps([[m.mid(s, t) for s in syms] for t in ts]))\n"
    )

    def run(hash_seed: str) -> list[list[float]]:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        args = [sys.executable, "-c", code, str(ORIGIN), json.dumps(times)]
        out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
        return json.loads(out.stdout)

    first, second = run("1"), run("2")
    here, books = SyntheticMarket(11, ORIGIN), SYNTHETIC_INSTRUMENTS
    assert first == second == [[here.mid(s, t) for s in sorted(books)] for t in times]


def test_random_access_order_does_not_matter_and_seeds_differ() -> None:
    rng = random.Random(4)
    times = [ORIGIN + rng.randrange(-2 * DAY, 20 * DAY) for _ in range(300)]
    ordered = SyntheticMarket(9, ORIGIN)
    shuffled = SyntheticMarket(9, ORIGIN)
    expected = {t: ordered.mid("SOLUSDT", t) for t in sorted(times)}
    rng.shuffle(times)
    assert {t: shuffled.mid("SOLUSDT", t) for t in times} == expected
    other = SyntheticMarket(10, ORIGIN)
    assert all(other.mid("SOLUSDT", t) != v for t, v in expected.items() if t != ORIGIN)


def test_prices_start_at_calibration_and_are_continuous_through_the_origin() -> None:
    m = SyntheticMarket(2, ORIGIN)
    assert m.factor_prices(ORIGIN) == {f.name: f.price for f in CAL.factors}
    for s in SYNTHETIC_INSTRUMENTS:
        before, at, after = (m.mid(s, ORIGIN + d) for d in (-1000, 0, 1000))
        assert abs(before / at - 1) < 1e-5 and abs(after / at - 1) < 1e-5
        assert m.fair_price(s, ORIGIN + 5 * S) == m.mid(s, ORIGIN + 5 * S)
    assert math.isfinite(m.mid("BTCUSDT", ORIGIN - 400 * DAY))


def test_steth_basis_stays_near_its_mean_and_reverts_with_the_half_life() -> None:
    cal = msgspec.structs.replace(CAL, steth_depegs_per_year=0)
    m, every = SyntheticMarket(6, ORIGIN, calibration=cal), 300 * S
    x = np.array([m.steth_basis(ORIGIN + k * every) - cal.steth_basis_mean for k in range(17280)])
    assert abs(x.mean()) < 0.001
    assert 0.7 * CAL.steth_basis_vol < x.std() < 1.3 * CAL.steth_basis_vol
    phi = float(np.dot(x[1:], x[:-1]) / np.dot(x[:-1], x[:-1]))  # AR(1) at 5 minutes
    half_life = -math.log(2) * every / S / math.log(phi)
    assert 0.6 * CAL.steth_basis_half_life_s < half_life < 1.4 * CAL.steth_basis_half_life_s
    for t in (ORIGIN + 7 * DAY, ORIGIN + 30 * DAY):  # stETH is ETH times the basis
        assert m.mid("STETHUSDT", t) == pytest.approx(
            m.factor_prices(t)["ETH"] * m.steth_basis(t), rel=1e-12
        )


def test_depegs_drop_the_basis_and_then_mean_revert() -> None:
    cal = msgspec.structs.replace(CAL, steth_depegs_per_year=20.0)
    m = SyntheticMarket(8, ORIGIN, calibration=cal)
    x = np.array([m.steth_basis(ORIGIN + k * HOUR) - cal.steth_basis_mean for k in range(8760)])
    drops = np.flatnonzero(np.diff(x) < -0.6 * cal.steth_depeg_size)
    assert len(drops) >= 5
    isolated = drops[np.diff(np.append(drops, len(x))) > 25]  # no other depeg for a day
    assert len(isolated) >= 3
    for i in isolated:  # four half-lives later, most of the drop has gone
        assert x[i + 1] < -0.02
        assert x[i + 25] > x[i + 1] / 4 - 0.004, (i, x[i + 1], x[i + 25])


def test_index_is_its_weighted_basket() -> None:
    m = SyntheticMarket(12, ORIGIN)
    start = {f.name: f.price for f in CAL.factors}
    for t in (ORIGIN + 1, ORIGIN + 3 * HOUR + 5, ORIGIN + 9 * DAY, ORIGIN - DAY):
        f = m.factor_prices(t)
        expected = CAL.index_price * sum(w * f[k] / start[k] for k, w in CAL.index_weights.items())
        assert m.mid("IDXUSDT", t) == pytest.approx(expected, rel=1e-12)


# --- liquidity ---------------------------------------------------------------------------
def test_ladder_has_one_tick_spread_and_calibrated_depth() -> None:
    m = SyntheticMarket(1, ORIGIN)
    books = _mirror(m)
    for k in range(1, 31):
        t = ORIGIN + k * 5 * STEP  # on the step grid: the ladder is full, no prints yet
        for u in m.updates(t):
            _apply(books, u)
        for symbol, book in books.items():
            tick = float(SYNTHETIC_INSTRUMENTS[symbol].tick)
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is not None and ask is not None
            assert ask - bid == CAL.spread_ticks
            assert abs((bid + ask) / 2 * tick - m.mid(symbol, t)) <= tick / 2 + 1e-9
        book, mid = books["BTCUSDT"], m.mid("BTCUSDT", t)
        for side in Side:
            levels = book.depth(side, 1000)
            top = levels[0][1] * float(BTC.lot) * mid
            assert 0.75 * CAL.top_of_book_usd < top < 1.25 * CAL.top_of_book_usd
            assert 0.75 < _usd(levels, mid, 10) / CAL.depth_10bp_usd < 1.25
            assert 0.75 < _usd(levels, mid, 100) / CAL.depth_100bp_usd < 1.25
            assert 20 <= len(levels) <= 40
        eth = books["ETHUSDT"]
        eth_lot = float(SYNTHETIC_INSTRUMENTS["ETHUSDT"].lot)
        eth_top = eth.level_qty(Side.BUY, eth.best_bid()) * eth_lot * m.mid("ETHUSDT", t)
        assert 27_000 < eth_top < 45_000


def test_depth_updates_rebuild_exactly_the_intended_ladder() -> None:
    m = SyntheticMarket(21, ORIGIN)
    books = _mirror(m)
    t, last, rng = ORIGIN, ORIGIN - 1, random.Random(1)
    while t < ORIGIN + 20 * S:
        t += rng.randrange(1, 3 * STEP)  # irregular calls split steps between trades
        for u in m.updates(t):
            assert last <= u.ts_ns <= t
            last = u.ts_ns
            if isinstance(u, DepthUpdate):
                assert all(q >= 0 for _, q in u.bids + u.asks)
            _apply(books, u)
        for symbol, book in books.items():
            bids, asks = m.ladder(symbol)
            assert book.depth(Side.BUY, 1000) == bids
            assert book.depth(Side.SELL, 1000) == asks


def test_only_changed_levels_are_emitted() -> None:
    m = SyntheticMarket(22, ORIGIN, calibration=NO_TRADES)
    last: dict[tuple[str, Side, int], int] = {}
    emitted = 0
    for u in m.updates(ORIGIN + 30 * S):
        assert isinstance(u, DepthUpdate)
        for side, levels in ((Side.BUY, u.bids), (Side.SELL, u.asks)):
            for price, qty in levels:
                key = (u.symbol, side, price)
                assert qty != last.get(key, 0), (key, qty)
                last[key] = qty
                emitted += 1
    # Near levels follow a touch that moves most steps; deeper ones stay put.
    full_ladders = 300 * sum(q > 0 for q in last.values())
    assert emitted < 0.6 * full_ladders


def test_taken_liquidity_shows_at_the_touch_and_refills() -> None:
    m = SyntheticMarket(23, ORIGIN)
    books = _mirror(m)
    book = books["BTCUSDT"]
    t = ORIGIN + 10 * STEP
    for u in m.updates(t):
        _apply(books, u)
    bid = book.best_bid()
    assert bid is not None
    full = book.level_qty(Side.BUY, bid)
    taken = full * 9 // 10
    book.take(Side.SELL, taken, bid, "us")
    m.on_taken("BTCUSDT", Side.BUY, bid, taken, t + 1)
    touch = []
    for k in range(1, 16):  # 1.5 s: three refill half-lives
        for u in m.updates(t + k * STEP):
            _apply(books, u)
        best = book.best_bid()
        assert best is not None
        touch.append(book.level_qty(Side.BUY, best))
    assert touch[0] < full / 2
    assert touch == sorted(touch)
    assert touch[-1] > 0.85 * full
    assert book.level_qty(Side.SELL, book.best_ask()) == full  # the other side is untouched


def test_trade_prints_arrive_at_rate_and_hit_the_touch() -> None:
    m = SyntheticMarket(24, ORIGIN)
    books = _mirror(m)
    count = dict.fromkeys(books, 0)
    touch: dict[str, tuple[int, int]] = {}
    for u in m.updates(ORIGIN + 180 * S):
        if isinstance(u, TradePrint):
            count[u.symbol] += 1
            bid, ask = touch[u.symbol]
            assert u.price == (ask if u.aggressor is Side.BUY else bid)
            assert u.qty >= 1
        _apply(books, u)
        if isinstance(u, DepthUpdate):
            b = books[u.symbol]
            touch[u.symbol] = (b.best_bid(), b.best_ask())
    for symbol, n in count.items():
        base = SYNTHETIC_INSTRUMENTS[symbol].base
        expected = CAL.trades_per_s * 180 * {"BTC": 1.0, "ETH": 36 / 165}.get(base, 0.0)
        if expected:
            assert 0.8 * expected < n < 1.2 * expected, (symbol, n, expected)
        assert n > 0


def test_update_stream_is_deterministic_and_resumes_where_it_stopped() -> None:
    end = ORIGIN + 15 * S
    one = list(SyntheticMarket(30, ORIGIN).updates(end))
    stepped = SyntheticMarket(30, ORIGIN)
    pieces: list[MarketUpdate] = []
    t = ORIGIN - STEP
    while t < end:
        t = min(end, t + 37_000_000)
        pieces.extend(stepped.updates(t))
        assert list(stepped.updates(t - 1)) == []
    assert pieces == one
    assert list(SyntheticMarket(31, ORIGIN).updates(end)) != one


def test_cursor_begins_at_start_ns() -> None:
    start = ORIGIN + 5 * DAY + 123
    m = SyntheticMarket(3, ORIGIN, start_ns=start)
    first = next(iter(m.updates(start + S)))
    assert isinstance(first, DepthUpdate)
    assert start <= first.ts_ns < start + STEP
    assert list(m.updates(start)) == []
