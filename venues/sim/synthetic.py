"""A synthetic market: correlated jump-diffusion prices as a pure function of (seed, time)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from venues.model import Instrument, Side
from venues.sim.calibration import (
    DEFAULT_CALIBRATION,
    NS_PER_S,
    SECONDS_PER_YEAR,
    SYNTHETIC_INSTRUMENTS,
    Calibration,
)
from venues.sim.market import DepthUpdate, MarketUpdate, TradePrint

# Prices live on a fixed 100 ms grid (linear in between), whatever `step_ns` the cursor uses,
# so sources with different steps still agree. Coarse steps of 1 min come in chunks of 1 day.
FINE_NS = 100_000_000
FINE_PER_COARSE = 600
COARSE_PER_CHUNK = 1440
_FINE_YEARS = FINE_NS / NS_PER_S / SECONDS_PER_YEAR
_COARSE_YEARS = _FINE_YEARS * FINE_PER_COARSE

# Book size (touch, depth and trade rate) relative to BTCUSDT, by base asset: ETH's ~$36k touch
# is DESIGN §10; SOL, stETH spot and the index perp are assumed thinner.
SIZE_SCALE: dict[str, float] = {
    "BTC": 1.0,
    "ETH": 36_000.0 / 165_000.0,
    "SOL": 0.10,
    "STETH": 0.02,
    "IDX": 0.05,
}
_NEAR_LEVELS = 5  # consecutive ticks from the touch, moving with it
_BAND_LEVELS = 3  # levels per deeper band; bands double their spacing and sit on a fixed grid
_TRADE_MEDIAN = 0.01  # median trade size, as a fraction of the touch
_TRADE_SIGMA = 1.2  # lognormal spread of trade sizes
_AGGRESSOR_BIAS = 0.15  # extra chance that a taker trades in the direction the mid moves
_TAG_COARSE, _TAG_FINE, _TAG_TRADES = 1, 2, 3
_CACHED_STEPS = 256  # coarse steps of fine prices kept (30 kB each)
_TRADE_CHUNK = 600  # cursor steps whose trades are drawn at once, from (seed, symbol, chunk)
_CACHED_LADDERS = 512  # touches per side whose full ladder is kept (~3 kB each)
_CACHED_SHAPES = 8  # book shapes whose ladders are kept (`_shared_ladders`)

_Ladders = dict[Side, dict[int, tuple[list[int], dict[int, int]]]]
_LADDERS: dict[tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]], _Ladders] = {}


def _shared_ladders(bands: list[tuple[int, int, int]], profile: list[int]) -> _Ladders:
    """The full ladders by side and touch of every book of this shape, in this process.

    A ladder is a pure function of the shape and the touch, and never changed once made
    (`SyntheticMarket._consume` changes a copy): the venues of a backtest that list the same
    instrument share them, and so do the runs of one seed in every execution mode.
    """
    key = (tuple(bands), tuple(profile))
    ladders = _LADDERS.get(key)
    if ladders is None:
        if len(_LADDERS) >= _CACHED_SHAPES:
            del _LADDERS[next(iter(_LADDERS))]  # the oldest shape
        ladders = _LADDERS[key] = {Side.BUY: {}, Side.SELL: {}}
    return ladders


class _Paths:
    """Log-price factors and the stETH basis deviation as a pure function of (seed, time).

    Column i < n is factor i's log price relative to its starting price; column n is the
    basis minus its mean. Time runs both ways from the origin: direction 1 is an independent
    copy going back in time, so any instant is defined.
    """

    def __init__(self, seed: int, cal: Calibration) -> None:
        names = [f.name for f in cal.factors]
        n = len(names)
        vol = np.array([f.vol for f in cal.factors])
        corr = np.eye(n)
        for pair, rho in cal.correlations.items():
            a, b = (names.index(x) for x in pair.split("/"))
            corr[a, b] = corr[b, a] = rho
        # Common jumps scale with each factor's vol; their covariance is taken out of the
        # diffusion so that the total covariance is exactly the calibrated one.
        self.beta = vol / vol[0]
        self.jump_rate = cal.jumps_per_day * 365.0  # per year
        cov = corr * np.outer(vol, vol)
        cov -= self.jump_rate * cal.jump_vol**2 * np.outer(self.beta, self.beta)
        try:
            self.chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"jumps ({cal.jumps_per_day}/day of {cal.jump_vol}) exceed the calibrated "
                f"covariance; lower jumps_per_day or jump_vol"
            ) from None
        # Drift that makes each price (not log price) a martingale, jumps included.
        comp = np.exp(0.5 * (cal.jump_vol * self.beta) ** 2) - 1.0
        self.drift = -0.5 * np.diag(cov) - self.jump_rate * comp
        kappa = math.log(2.0) / cal.steth_basis_half_life_s
        self.ou_a = math.exp(-kappa * FINE_PER_COARSE * FINE_NS / NS_PER_S)
        self.ou_sd = cal.steth_basis_vol * math.sqrt(1.0 - self.ou_a**2)
        # Inside a coarse step the basis is bridged as a Brownian motion with the OU's
        # diffusion coefficient (error of order kappa x 1 min, 0.3 % at a 6 h half-life).
        self.ou_fine = cal.steth_basis_vol * math.sqrt(2.0 * kappa * FINE_NS / NS_PER_S)
        self.seed, self.cal, self.n = seed, cal, n
        self._chunks: tuple[list, list] = ([], [])  # per direction, in order from the origin

    def _chunk(self, d: int, c: int) -> tuple[np.ndarray, dict[int, list]]:
        chunks = self._chunks[d]
        while len(chunks) <= c:  # a chunk starts where the previous one ended
            start = chunks[-1][0][-1] if chunks else np.zeros(self.n + 1)
            chunks.append(self._make_chunk(d, len(chunks), start))
        return chunks[c]

    def _make_chunk(self, d: int, c: int, start: np.ndarray) -> tuple[np.ndarray, dict]:
        n, cal, size = self.n, self.cal, COARSE_PER_CHUNK
        rng = np.random.default_rng([self.seed, _TAG_COARSE, d, c])
        steps = np.zeros((size, n + 1))
        steps[:, :n] = rng.standard_normal((size, n)) @ self.chol.T * math.sqrt(_COARSE_YEARS)
        steps[:, :n] += self.drift * _COARSE_YEARS
        noise = rng.standard_normal(size) * self.ou_sd
        common = rng.poisson(self.jump_rate * _COARSE_YEARS, size)
        depegs = rng.poisson(cal.steth_depegs_per_year * _COARSE_YEARS, size)
        jumps: dict[int, list[tuple[int, np.ndarray]]] = {}
        for k in np.repeat(np.arange(size), common).tolist():  # a few a day
            vec = np.zeros(n + 1)
            vec[:n] = self.beta * cal.jump_vol * rng.standard_normal()
            jumps.setdefault(k, []).append((int(rng.integers(1, FINE_PER_COARSE + 1)), vec))
        for k in np.repeat(np.arange(size), depegs).tolist():
            vec = np.zeros(n + 1)
            vec[n] = -cal.steth_depeg_size  # a depeg is a drop that then mean-reverts
            jumps.setdefault(k, []).append((int(rng.integers(1, FINE_PER_COARSE + 1)), vec))
        for k, js in jumps.items():
            steps[k] += sum(v for _, v in js)
        levels = np.empty((size + 1, n + 1))
        levels[0] = start
        levels[1:, :n] = start[:n] + np.cumsum(steps[:, :n], axis=0)
        x, a = float(start[n]), self.ou_a
        for k, (e, j) in enumerate(zip(noise.tolist(), steps[:, n].tolist(), strict=True)):
            x = a * x + e + j  # exact OU step; a depeg lands undecayed at the step's end
            levels[k + 1, n] = x
        return levels, jumps

    def fine(self, d: int, k: int) -> np.ndarray:
        """State on the fine grid over coarse step k: a Brownian bridge between its ends."""
        n, m = self.n, FINE_PER_COARSE
        c, kk = divmod(k, COARSE_PER_CHUNK)
        levels, jumps = self._chunk(d, c)
        jump_path = np.zeros((m + 1, n + 1))
        for off, vec in jumps.get(kk, ()):
            jump_path[off:] += vec
        rng = np.random.default_rng([self.seed, _TAG_FINE, d, k])
        w = np.zeros((m + 1, n + 1))
        w[1:, :n] = np.cumsum(rng.standard_normal((m, n)) @ self.chol.T, axis=0)
        w[1:, :n] *= math.sqrt(_FINE_YEARS)
        w[1:, n] = np.cumsum(rng.standard_normal(m)) * self.ou_fine
        tau = (np.arange(m + 1) / m)[:, None]
        x0, x1 = levels[kk], levels[kk + 1] - jump_path[-1]
        return x0 + w + tau * (x1 - x0 - w[-1]) + jump_path


def _profile(cal: Calibration, inst: Instrument, price: float) -> tuple[list, list[int]]:
    """Ladder bands (first distance from the touch, spacing, levels) in ticks, and lots per slot.

    Cumulative depth from the mid is log-log interpolated through the touch, 10 bp and 100 bp
    targets (extrapolated beyond 100 bp); each band level gets an equal share of its band.
    """
    tick, lot = float(inst.tick), float(inst.lot)
    scale = SIZE_SCALE[inst.base]
    per_bp = price * 1e-4 / tick
    half = cal.spread_ticks / 2
    xs = np.log([half / per_bp, 10.0, 100.0])
    ys = np.log([cal.top_of_book_usd, cal.depth_10bp_usd, cal.depth_100bp_usd]) + math.log(scale)
    slope = (ys[2] - ys[1]) / (xs[2] - xs[1])

    def cum(dist: int) -> float:
        lx = math.log((dist + half) / per_bp)
        ly = np.interp(lx, xs, ys) if lx <= xs[2] else ys[2] + slope * (lx - xs[2])
        return math.exp(ly)

    bands = [(0, 1, _NEAR_LEVELS)]
    lo, g = _NEAR_LEVELS, 2
    while lo - 1 < 100 * per_bp:
        bands.append((lo, g, _BAND_LEVELS))
        lo, g = lo + g * _BAND_LEVELS, g * 2
    usd = [cum(0)] + [cum(dist) - cum(dist - 1) for dist in range(1, _NEAR_LEVELS)]
    for lo, g, n in bands[1:]:
        usd += [(cum(lo + n * g - 1) - cum(lo - 1)) / n] * n
    return bands, [max(1, round(u / (price * lot))) for u in usd]


@dataclass(slots=True)
class _Book:
    """One instrument's background ladder: its shape, and what the exchange's book shows."""

    symbol: str
    col: int
    tick: float
    key: int  # stable across processes, unlike hash()
    bands: list[tuple[int, int, int]]
    profile: list[int]
    trade_rate: float  # per second
    trade_median: float  # lots
    spread: int
    bid: int | None = None
    mid: float = math.nan  # at the last step (`_trades` reads it)
    dirty: bool = False
    shown: dict[Side, dict[int, int]] = field(default_factory=lambda: {Side.BUY: {}, Side.SELL: {}})
    slots: dict[Side, list[int]] = field(default_factory=lambda: {Side.BUY: [], Side.SELL: []})
    depleted: dict[Side, list[float]] = field(default_factory=dict)
    trades: tuple[int, tuple[list, ...]] | None = None  # (chunk, its draws)
    # The full ladder (nothing depleted) of each touch, kept: a step moves the touch back
    # and forth over a few ticks, and building the ladder was a third of what a step cost.
    # Shared with every book of the same shape (`_shared_ladders`).
    ladders: _Ladders = field(default_factory=lambda: {Side.BUY: {}, Side.SELL: {}})
    # The touch whose full ladder `shown` is: that very dict, shared (`_consume` copies it
    # before changing it); None when `shown` is a ladder of its own.
    base: dict[Side, int | None] = field(default_factory=lambda: {Side.BUY: None, Side.SELL: None})

    def ladder(self, side: Side, touch: int) -> tuple[list[int], dict[int, int]]:
        """The level prices best first, and the full ladder (nothing depleted) of `touch`."""
        ladders = self.ladders[side]
        entry = ladders.get(touch)
        if entry is None:
            if len(ladders) >= _CACHED_LADDERS:
                ladders.clear()
            prices = self.prices(side, touch)
            full = {p: q for p, q in zip(prices, self.profile, strict=True) if q >= 1}
            entry = ladders[touch] = (prices, full)
        return entry

    def prices(self, side: Side, touch: int) -> list[int]:
        """Level prices best first: near levels follow the touch, deeper ones a fixed grid."""
        out: list[int] = []
        for lo, g, n in self.bands:
            if side is Side.BUY:
                top = (touch - lo) // g * g
                out.extend(range(top, top - n * g, -g))
            else:
                bottom = -(-(touch + lo) // g) * g
                out.extend(range(bottom, bottom + n * g, g))
        return out


_ts_ns = attrgetter("ts_ns")


def _diff(shown: dict[int, int], target: dict[int, int]) -> list[tuple[int, int]]:
    """The levels that take `shown` to `target`: changed or new ones, then removed ones."""
    diff = [(p, q) for p, q in target.items() if shown.get(p) != q]
    diff += [(p, 0) for p in shown if p not in target]
    return diff


class SyntheticMarket:
    """Synthetic prices and background liquidity for SYNTHETIC_INSTRUMENTS (DESIGN §7, §10).

    Prices are a pure function of (seed, origin_ns, time), so every process agrees on them;
    liquidity also depends on what our orders took (`on_taken`), prices never do.
    """

    def __init__(
        self,
        seed: int,
        origin_ns: int,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        instruments: Sequence[Instrument] | None = None,
        step_ns: int = 100_000_000,
        start_ns: int | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if step_ns <= 0:
            raise ValueError(f"step_ns must be positive, got {step_ns}")
        cal = calibration
        self.seed, self.origin_ns, self.step_ns, self.calibration = seed, origin_ns, step_ns, cal
        self._paths = _Paths(seed, cal)
        names = [f.name for f in cal.factors]
        n = len(names)
        self._p0 = np.array([f.price for f in cal.factors])
        self._eth = names.index("ETH")
        self._weights = np.array([cal.index_weights.get(x, 0.0) for x in names])
        self._col = {x: i for i, x in enumerate(names)} | {"STETH": n + 1, "IDX": n + 2}
        self._cache: dict[tuple[int, int], np.ndarray] = {}  # plain dict: the market pickles
        insts = SYNTHETIC_INSTRUMENTS.values() if instruments is None else instruments
        self._instruments = list(insts)
        start_prices = self._prices(0, 0)[0]
        self._books: dict[str, _Book] = {}
        for inst in self._instruments:
            if inst.base not in self._col or inst.base not in SIZE_SCALE:
                raise ValueError(
                    f"instrument {inst.symbol} has base {inst.base!r}; a synthetic market "
                    f"drives {sorted(set(self._col) & set(SIZE_SCALE))}"
                )
            col = self._col[inst.base]
            bands, profile = _profile(cal, inst, float(start_prices[col]))
            self._books[inst.symbol] = _Book(
                inst.symbol, col, float(inst.tick), zlib.crc32(inst.symbol.encode()), bands,
                profile, cal.trades_per_s * SIZE_SCALE[inst.base], _TRADE_MEDIAN * profile[0],
                cal.spread_ticks, ladders=_shared_ladders(bands, profile),
            )  # fmt: skip
        self._decay = 0.5 ** (step_ns / NS_PER_S / cal.refill_half_life_s)
        start = origin_ns if start_ns is None else start_ns
        self._next = -(-(start - origin_ns) // step_ns)  # first grid step at or after start
        self._next_ns = origin_ns + self._next * step_ns  # and its time
        self._pending: list[TradePrint] = []
        self._pi = 0

    # --- prices --------------------------------------------------------------------
    def _prices(self, d: int, k: int) -> np.ndarray:
        """Columns: factor prices, basis, STETH, IDX over coarse step k (fine grid)."""
        x = self._paths.fine(d, k)
        n = self._paths.n
        rel = np.exp(x[:, :n])
        out = np.empty((len(x), n + 3))
        out[:, :n] = self._p0 * rel
        out[:, n] = self.calibration.steth_basis_mean + x[:, n]
        out[:, n + 1] = out[:, self._eth] * out[:, n]
        out[:, n + 2] = self.calibration.index_price * (rel @ self._weights)
        return out

    def _value(self, col: int, t_ns: int) -> float:
        e, d = t_ns - self.origin_ns, 0
        if e < 0:
            e, d = -e, 1
        i, r = divmod(e, FINE_NS)
        k, j = divmod(i, FINE_PER_COARSE)
        a = self._cache.get((d, k))
        if a is None:
            a = self._cache[d, k] = self._prices(d, k)
            if len(self._cache) > _CACHED_STEPS:  # oldest first: sequential use never misses
                del self._cache[next(iter(self._cache))]
        v = a.item(j, col)
        if r:
            v += (a.item(j + 1, col) - v) * (r / FINE_NS)
        return v

    def mid(self, symbol: str, t_ns: int) -> float:
        """The instrument's fair mid at `t_ns` (100 ms grid, linear in between)."""
        book = self._books.get(symbol)
        if book is None:
            raise ValueError(f"unknown symbol {symbol!r}; this market drives {list(self._books)}")
        return self._value(book.col, t_ns)

    def factor_prices(self, t_ns: int) -> dict[str, float]:
        """Each risk factor's price at `t_ns`."""
        return {f.name: self._value(i, t_ns) for i, f in enumerate(self.calibration.factors)}

    def steth_basis(self, t_ns: int) -> float:
        """The stETH/ETH price ratio at `t_ns`."""
        return self._value(self._paths.n, t_ns)

    # --- MarketSource --------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return list(self._instruments)

    def fair_price(self, symbol: str, now_ns: int) -> float | None:
        return self.mid(symbol, now_ns)

    def ladder(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Background (price, lots) levels best first, as the book should now show them."""
        shown = self._books[symbol].shown
        return sorted(shown[Side.BUY].items(), reverse=True), sorted(shown[Side.SELL].items())

    def on_taken(self, symbol: str, side: Side, price: int, qty: int, now_ns: int) -> None:
        """Our orders took background liquidity: the ladder shows the hole until it refills."""
        book = self._books.get(symbol)
        if book is None or not book.slots[side]:
            return
        self._consume(book, side, price, qty)
        # Depletion is kept by distance from the touch (slot) and refills from there.
        slots = book.slots[side]
        slot = min(range(len(slots)), key=lambda i: abs(slots[i] - price))
        dep = book.depleted.setdefault(side, [0.0] * len(slots))
        dep[slot] = min(book.profile[slot], dep[slot] + qty)

    def _consume(self, book: _Book, side: Side, price: int, qty: int) -> None:
        shown = book.shown[side]
        if book.base[side] is not None:  # the cached full ladder itself: change a copy
            shown = book.shown[side] = dict(shown)
            book.base[side] = None
        left = shown.get(price, 0) - qty
        if left > 0:
            shown[price] = left
        else:
            shown.pop(price, None)
        book.dirty = True

    def updates(self, until_ns: int) -> Iterator[MarketUpdate]:
        """Trade prints and ladder diffs after the last call, up to and including `until_ns`.

        Consume the iterator fully: the source's idea of the book advances as it yields.
        """
        while True:
            while self._pi < len(self._pending) and self._pending[self._pi].ts_ns <= until_ns:
                tp = self._pending[self._pi]
                self._pi += 1
                hit = self._books[tp.symbol]
                self._consume(hit, tp.aggressor.opposite, tp.price, tp.qty)
                yield tp
            t = self._next_ns
            if t > until_ns:
                return
            for book in self._books.values():
                update = self._step(book, t)
                if update is not None:
                    yield update
            self._pending, self._pi = self._trades(self._next, t), 0
            self._next += 1
            self._next_ns = t + self.step_ns

    def next_ns(self) -> int | None:
        """The next trade print's or grid step's time (a step's ladder may not move)."""
        if self._pi < len(self._pending):
            return min(self._pending[self._pi].ts_ns, self._next_ns)
        return self._next_ns

    def _step(self, book: _Book, t: int) -> DepthUpdate | None:
        book.mid = mid = self._value(book.col, t)
        bid = math.floor(mid / book.tick - book.spread / 2 + 0.5)
        if bid == book.bid and not book.dirty:
            return None
        book.bid = bid
        book.dirty = False
        out: list[list[tuple[int, int]]] = []
        for side, touch in ((Side.BUY, bid), (Side.SELL, bid + book.spread)):
            prices, full = book.ladder(side, touch)
            book.slots[side] = prices
            shown = book.shown[side]
            dep = book.depleted.get(side)
            if dep is not None:
                decay = self._decay
                dep[:] = [y if (y := x * decay) >= 0.5 else 0.0 for x in dep]
                if any(dep):
                    book.dirty = True  # keep refilling next step
                    levels = zip(prices, book.profile, dep, strict=True)
                    target = {p: q for p, full_q, x in levels if (q := round(full_q - x)) >= 1}
                    out.append(_diff(shown, target))
                    book.shown[side], book.base[side] = target, None
                    continue
                del book.depleted[side]  # refilled: the full ladder again
            # `shown` the very ladder of this touch: nothing to send.
            out.append([] if book.base[side] == touch else _diff(shown, full))
            book.shown[side], book.base[side] = full, touch
        if not out[0] and not out[1]:
            return None
        return DepthUpdate(t, book.symbol, out[0], out[1])

    def _trades(self, n: int, t: int) -> list[TradePrint]:
        """The rest of the market's trades inside step n, (t, t + step_ns), at the touch."""
        c, i = divmod(n, _TRADE_CHUNK)
        out: list[TradePrint] = []
        books = 0  # that have trades in the step
        buy, sell = Side.BUY, Side.SELL
        for book in self._books.values():
            trades = book.trades
            if trades is None or trades[0] != c:
                trades = book.trades = (c, self._trade_chunk(book, c))
            starts, offs, sizes, sides = trades[1]
            a, b = starts[i], starts[i + 1]
            if a == b:
                continue
            books += 1
            # Takers lean towards the way the mid goes over the step (`_step` left it at t).
            move = self._value(book.col, t + self.step_ns) - book.mid
            p_buy = 0.5 + _AGGRESSOR_BIAS * ((move > 0) - (move < 0))
            symbol, bid = book.symbol, book.bid
            assert bid is not None
            ask = bid + book.spread
            for off, q, u in zip(offs[a:b], sizes[a:b], sides[a:b], strict=True):
                if u < p_buy:
                    out.append(TradePrint(t + off, symbol, buy, ask, q))
                else:
                    out.append(TradePrint(t + off, symbol, sell, bid, q))
        if books > 1:  # each book's are in time order already; ties stay in book order
            out.sort(key=_ts_ns)
        return out

    def _trade_chunk(self, book: _Book, c: int) -> tuple[list[int], ...]:
        """Trade counts, times, sizes and side draws for one symbol's chunk of steps."""
        rng = np.random.default_rng([self.seed, _TAG_TRADES, book.key, int(c < 0), abs(c)])
        m = _TRADE_CHUNK
        counts = rng.poisson(book.trade_rate * self.step_ns / NS_PER_S, m)
        total = int(counts.sum())
        step_of = np.repeat(np.arange(m), counts)
        u = np.sort(step_of + rng.random(total)) - step_of  # Poisson times, in order per step
        offs = 1 + (u * (self.step_ns - 1)).astype(np.int64)
        sizes = np.rint(book.trade_median * np.exp(_TRADE_SIGMA * rng.standard_normal(total)))
        starts = np.concatenate([[0], np.cumsum(counts)])
        sides = rng.random(total)
        return (starts.tolist(), offs.tolist(), np.maximum(sizes, 1).astype(np.int64).tolist(),
                sides.tolist())  # fmt: skip
