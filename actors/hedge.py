"""Temporary hedges: the minimum-variance hedge, cluster-wide netting and P&L attribution.

`HedgeSizer` is the arithmetic (DESIGN §5.6): with hedge instruments whose factor betas are the
columns of B, the hedge that minimises the residual variance of exposure e is
h = −(BᵀΣB)⁻¹BᵀΣe, in signed dollar notionals. `HedgeBook` is the state the HedgeActor's core
holds: the newest exposure snapshot of every basket, netted into one hedge, traded with
hysteresis, and the hedge's P&L attributed back to the baskets. `HedgeRule` decides whether
a hedge trade earns its cost (docs/basket.md, "Hedge"): what the risk it removes over the
expected catch-up time adds to the value of what the hedge has removed already, priced at
`risk_price` per dollar of 1σ, against what it costs in and out, crossing or resting first
(`HedgeCosts`). `RiskRemoved` integrates the variance the hedge actually took off.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec
import numpy as np

from actors.protocol import ORDER_WINDOW_NS
from actors.risk import NS_PER_YEAR, RISK_HORIZON_S, Exposure, RiskModel
from venues.errors import OutcomeUnknown, RateLimited, VenueError, VenueUnavailable
from venues.model import Instrument, NewOrder, OrderType, Side, TimeInForce
from venues.sim.calibration import SECONDS_PER_YEAR

# Exposures below this many dollars on every factor count as flat.
_DUST_USD = 1e-9
HEDGE_ORDER_PREFIX = "lgh-"  # the client order ids of hedge orders: lgh-<desk tag>-<n>
# A resting hedge order whose time is up (or whose placing failed) is cancelled, through an
# outage, for this long, pausing from the first figure doubling to the second between tries;
# then `HedgeOrderOpen`. Live (`VenueGateway`) and in the backtest alike.
HEDGE_WITHDRAW_S = 30.0
HEDGE_WITHDRAW_PAUSE_S = 0.25
HEDGE_WITHDRAW_PAUSE_MAX_S = 4.0
# One answered `HedgeOrderOpen` is then cancelled again by its desk (`DeskPort.settle`), one
# try at a time, pausing from the first figure doubling to the second between tries, until
# the venue has it ended: its symbol is not traded until then (`DeskRunner`).
HEDGE_SETTLE_PAUSE_S = 1.0
HEDGE_SETTLE_PAUSE_MAX_S = 30.0
HEDGE_PROTECTION_BPS = Decimal(50)  # a hedge is an IOC limit this far through the mid
# Netted hedgeable risk this small next to the baskets' own (σ ratio 1e-6) splits nothing:
# the shares would be ratios of rounding errors.
_SHARE_TOL = 1e-12
# The sizes a trade may aim at, as shares of the minimum-variance hedge: the risk removed
# grows as sqrt(2x − x²) of the full hedge's, its cost as x, so part of the hedge can earn
# more than its cost where the whole does not (`HedgeBook.decide` takes the best).
HEDGE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
# A gross hedge position below a dollar is flat: lot rounding's residue, not a hedge
# (the TCA's `HEDGE_ACTIVE_USD`).
FLAT_USD = 1.0


class HedgeOrderOpen(Exception):
    """A resting hedge order that could not be cancelled: it may still rest, and fill, at
    the venue. What it left must not be crossed on a guess, nor its symbol traded until it
    is seen ended (`DeskRunner`)."""

    def __init__(self, client_order_id: str, symbol: str, seconds: float) -> None:
        super().__init__(
            f"hedge order {client_order_id} on {symbol} could not be cancelled in {seconds:.0f}"
            " s: it may still rest at the venue"
        )
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.seconds = seconds

    def __reduce__(self) -> tuple[type, tuple[str, str, float]]:
        return (HedgeOrderOpen, (self.client_order_id, self.symbol, self.seconds))


def answer_lost(venue: str, client_order_id: str) -> OutcomeUnknown:
    """What a hedge order's UNKNOWN answer (lost, and not found by the client's queries)
    is to its desk: an unanswered placing."""
    return OutcomeUnknown(
        f"hedge order {client_order_id}: its answer was lost",
        venue=venue,
        client_order_id=client_order_id,
    )


def withdrawal(failed: VenueError, resting: bool) -> tuple[bool, int | None]:
    """How a hedge order whose placing failed with `failed` is seen ended before its desk
    hears of it: (whether it is cancelled until the venue has it ended, and how long after
    its send, in ns, "unknown order" is believed; None: at once). Unanswered
    (`VenueUnavailable`, -1007 included), any order may rest at the venue or be applied late,
    up to the order window after the send; refused by a rate limit, a resting one is
    cancelled all the same; any other error is the desk's answer as it is. The live gateway
    and the backtest's port both follow it."""
    if isinstance(failed, VenueUnavailable):
        return True, ORDER_WINDOW_NS
    return resting and isinstance(failed, RateLimited), None


class HedgeReason(enum.StrEnum):
    OPEN = "OPEN"  # from flat
    ADJUST = "ADJUST"  # resize (or flip) an open hedge
    UNWIND = "UNWIND"  # back to flat


class HedgeOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Trade `notional_usd` (positive) of `symbol` towards a hedge position of `target_usd`:
    at once through the mid, or (`rest_ns` > 0) resting post-only at the touch that long
    first, what remains then crossed."""

    symbol: str
    side: Side
    notional_usd: float
    target_usd: float  # the signed position the order aims at
    reason: HedgeReason
    ts_ns: int
    rest_ns: int = 0


class HedgeCosts(msgspec.Struct, frozen=True, kw_only=True):
    """What one hedge trade costs, in USD, by how it trades.

    Crossing (an IOC through the mid): fee + half spread + impact, in bp of its notional,
    `half_spread_bps` per symbol (the desk's estimate from the book, `DeskRunner`) and impact
    linear in size, `impact_bps_per_musd` per $1M traded. Resting first (`passive`): a share
    `passive_fill` of it fills at the touch, paying `maker_fee_bps` and earning the half
    spread, and the rest is crossed as above.
    """

    fee_bps: float
    impact_bps_per_musd: float
    half_spread_bps: dict[str, float] = {}
    maker_fee_bps: float = 0.0
    passive_fill: float = 0.0  # the expected share of a resting order that fills

    def one_way_usd(self, symbol: str, notional_usd: float, passive: bool = False) -> float:
        """The expected cost of trading `notional_usd` (either side) of `symbol` once."""
        n = abs(notional_usd)
        half = self.half_spread_bps.get(symbol, 0.0)
        crossed = n * (self.fee_bps + half + self.impact_bps_per_musd * n / 1e6) / 10_000
        if not passive:
            return crossed
        rested = n * (self.maker_fee_bps - half) / 10_000
        return self.passive_fill * rested + (1.0 - self.passive_fill) * crossed

    def round_trip_usd(self, positions: Mapping[str, float], passive: bool = False) -> float:
        """Into `positions` (symbol → signed USD) from flat, and out again."""
        return sum(2 * self.one_way_usd(s, x, passive) for s, x in positions.items())

    def move_usd(
        self,
        symbol: str,
        current_usd: float,
        target_usd: float,
        passive: bool = False,
        passive_out: bool = False,
    ) -> float:
        """From `current_usd` to `target_usd`: the trade, and what it adds to the way out
        (at `passive_out`); from flat, the round trip."""
        trade = self.one_way_usd(symbol, target_usd - current_usd, passive)
        out = self.one_way_usd(symbol, target_usd, passive_out)
        return trade + max(0.0, out - self.one_way_usd(symbol, current_usd, passive_out))


def risk_value_usd(risk_price: float, removed_variance: float, seconds: float) -> float:
    """risk_price × sqrt(ΔV × T / 1 year): what removing ΔV (USD² a year) for `seconds` is
    worth, in USD. Nothing when ΔV ≤ 0 (a trade that adds risk removes none)."""
    if removed_variance <= 0.0 or seconds <= 0.0:
        return 0.0
    return risk_price * math.sqrt(removed_variance * seconds / SECONDS_PER_YEAR)


class HedgeRule(msgspec.Struct, frozen=True, kw_only=True):
    """When a hedge trade earns its cost (docs/basket.md, "Hedge").

    What the hedge is worth to a basket is risk_price × sqrt(R / 1 year), R = ∫ ΔV dt the
    variance it removed (USD² a year × time, `RiskRemoved`): concave, so a trade is valued
    by what it adds to that, given what is removed already (`gain_usd`), over the expected
    catch-up time T (less `rest_ns` for a trade that rests first):
    - enter or resize when the gain ≥ enter_ratio × the trade's cost (the trade, and what it
      adds to the way out; from flat, the round trip), by the cheaper way to trade;
    - leave when the position's own value, risk_price × sqrt(ΔV_held · T / 1 year), falls
      below exit_ratio × its round trip;
    - a position is held `min_hold_ns` before it is traded again;
    - `rest_ns` > 0: a trade may rest post-only at the touch that long before crossing what
      remains, when T is longer; exits always rest first while a basket is hedged.
    """

    risk_price: float = 1.0
    enter_ratio: float = 1.0
    exit_ratio: float = 0.5
    min_hold_ns: int = 10_000_000_000
    rest_ns: int = 0

    def gain_usd(
        self,
        removed_usd2: Mapping[str, float],
        shares: Mapping[str, float],
        from_variance: float,
        to_variance: float,
        seconds: float,
    ) -> float:
        """What moving the variance removed from `from_variance` to `to_variance` (USD² a
        year) for `seconds` adds to the baskets' values: Σ_b risk_price × (sqrt(R_b +
        s_b·ΔV_to·T) − sqrt(R_b + s_b·ΔV_from·T)) / sqrt(1 year), R_b what basket b has had
        removed (`removed_usd2`) and s_b its share of the hedge; without shares, one pool."""
        if seconds <= 0.0:
            return 0.0
        pools = dict(shares) or {"": 1.0}
        years = seconds / SECONDS_PER_YEAR
        total = 0.0
        for b, share in pools.items():
            r = removed_usd2.get(b, 0.0) if b else sum(removed_usd2.values())
            r = max(0.0, r)
            after = math.sqrt(max(0.0, r + share * to_variance * years))
            total += after - math.sqrt(max(0.0, r + share * from_variance * years))
        return self.risk_price * total


class HedgeSizer:
    """The minimum-variance hedge of factor exposures with a fixed set of hedge instruments."""

    def __init__(self, risk: RiskModel, hedge_instruments: Sequence[Instrument]) -> None:
        if not hedge_instruments:
            raise ValueError("hedge_instruments: at least one instrument is needed")
        symbols = [i.symbol for i in hedge_instruments]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"hedge_instruments: duplicate symbols in {symbols}")
        self.risk = risk
        self.symbols: list[str] = symbols
        self.betas: np.ndarray = risk.betas(hedge_instruments)  # B: factors × instruments
        self._sigma_b = risk.covariance @ self.betas  # ΣB
        self._gram = self.betas.T @ self._sigma_b  # BᵀΣB
        # Instruments with linearly dependent betas (BTC perps on two venues, or the index perp
        # next to all its constituents) make BᵀΣB singular: every solution of the normal
        # equations hedges equally well, and lstsq picks the one of least gross notional.
        self.full_rank = bool(np.linalg.matrix_rank(self._gram) == len(symbols))

    def optimal(self, e: Exposure) -> np.ndarray:
        """h = −(BᵀΣB)⁻¹BᵀΣe: signed dollar notionals per hedge instrument (order of `symbols`)."""
        rhs = -(self._sigma_b.T @ self.risk.vector(e))
        if self.full_rank:
            return np.linalg.solve(self._gram, rhs)
        return np.linalg.lstsq(self._gram, rhs, rcond=None)[0]

    def offset(self, h: np.ndarray) -> np.ndarray:
        """The factor exposure Bh that hedge `h` adds."""
        return self.betas @ np.asarray(h, dtype=float)

    def residual_variance(self, e: Exposure, h: np.ndarray) -> float:
        """(e + Bh)ᵀΣ(e + Bh) in USD² per year: what is left after hedging `e` with `h`."""
        return self.risk.variance(self.risk.vector(e) + self.offset(h))

    def as_mapping(self, h: np.ndarray) -> dict[str, float]:
        return {s: float(x) for s, x in zip(self.symbols, h, strict=True)}

    def shares(
        self, exposures: Mapping[str, Exposure], h: np.ndarray | None = None
    ) -> dict[str, float]:
        """Each basket's share of hedge `h` (default: the optimal hedge of their sum).

        share_b = e_bᵀΣBh / e_totᵀΣBh: the covariance of basket b's exposure P&L with the
        hedge's P&L over that of the total (an Euler allocation), so the shares sum to 1.
        With the optimal hedge it is b's contribution to the hedged (projected) variance.
        Shares are signed: a basket whose exposure opposes the net gets a negative share, so
        with one hedge instrument every basket is charged exactly the P&L its own stand-alone
        hedge would have made, and a basket that offset another is credited for it rather than
        riding free. Empty when there is nothing the hedge offsets.
        """
        vecs = {b: self.risk.vector(e) for b, e in exposures.items()}
        if not vecs:
            return {}
        total = sum(vecs.values())
        g = self._sigma_b @ (self.optimal(total) if h is None else np.asarray(h, dtype=float))
        contrib = {b: -float(v @ g) for b, v in vecs.items()}
        denom = sum(contrib.values())
        gross = sum(
            math.sqrt(max(0.0, -float(v @ self._sigma_b @ self.optimal(v)))) for v in vecs.values()
        )
        if denom <= _SHARE_TOL * gross * gross or denom <= 0.0:
            return {}
        return {b: c / denom for b, c in contrib.items()}

    def attribute(
        self, pnl_usd: float, exposures: Mapping[str, Exposure], h: np.ndarray | None = None
    ) -> dict[str, float]:
        """Split `pnl_usd` of the hedge across baskets by `shares`; empty if nothing to split."""
        return {b: pnl_usd * s for b, s in self.shares(exposures, h).items()}


class HedgeBook:
    """The cluster-wide hedge: newest exposure per basket, netted, sized, traded, attributed.

    Baskets report cumulative snapshots of their factor exposure; the book keeps the highest
    `seq` per basket, so lost, repeated or reordered deliveries are harmless. A basket that
    reports zero exposure leaves the netting (a later, higher `seq` may bring it back); one
    that is closed leaves for good.
    """

    def __init__(self, sizer: HedgeSizer, risk_horizon_s: float = RISK_HORIZON_S) -> None:
        self.sizer = sizer
        self.risk_horizon_s = risk_horizon_s
        self._exposures: dict[str, np.ndarray] = {}
        self._seq: dict[str, int] = {}
        self._closed: set[str] = set()
        # Attribution: shares in force since `_shares_ns`, ∫ share dt since the last accrual,
        # and the last shares that were in force for a positive time.
        self._shares: dict[str, float] = {}
        self._last_shares: dict[str, float] = {}
        self._shares_ns: int | None = None
        self._weight: dict[str, float] = {}
        self.attributed_usd: dict[str, float] = {}
        self.unattributed_usd = 0.0

    # -- snapshots -----------------------------------------------------------------------

    def report(self, basket_id: str, seq: int, exposure_e: Exposure, now_ns: int) -> bool:
        """Take basket `basket_id`'s exposure snapshot `seq`; False if stale or closed."""
        if basket_id in self._closed or seq <= self._seq.get(basket_id, -1):
            return False
        e = self.sizer.risk.vector(exposure_e)
        self._seq[basket_id] = seq
        self._advance(now_ns)
        if np.all(np.abs(e) < _DUST_USD):
            self._exposures.pop(basket_id, None)
        else:
            self._exposures[basket_id] = e.copy()
        self._reshare()
        return True

    def close(self, basket_id: str, now_ns: int) -> None:
        """The basket is finished: drop its exposure and ignore whatever it sends later."""
        self._advance(now_ns)
        self._closed.add(basket_id)
        self._exposures.pop(basket_id, None)
        self._reshare()

    @property
    def baskets(self) -> dict[str, np.ndarray]:
        """The exposure of every basket in the netting."""
        return {b: e.copy() for b, e in self._exposures.items()}

    def netted(self) -> np.ndarray:
        """The sum of every basket's factor exposure."""
        return sum(self._exposures.values(), np.zeros(len(self.sizer.risk.factors)))

    def netted_risk_usd(self) -> float:
        """The dollar risk of the netted exposure over `risk_horizon_s`, unhedged."""
        return self.sizer.risk.dollar_risk(self.netted(), self.risk_horizon_s)

    # -- the hedge -----------------------------------------------------------------------

    def target(self, activation_usd: float = 0.0) -> dict[str, float]:
        """The hedge (symbol → signed USD) of the netted exposure; flat below `activation_usd`.

        `activation_usd` is compared with `netted_risk_usd()`: a dollar risk over the book's
        horizon, not a notional.
        """
        if not self._exposures or self.netted_risk_usd() < activation_usd:
            return dict.fromkeys(self.sizer.symbols, 0.0)
        return self.sizer.as_mapping(self.sizer.optimal(self.netted()))

    def orders(
        self,
        current_positions_usd: Mapping[str, float],
        now_ns: int,
        activation_usd: float,
        hysteresis_usd: float,
    ) -> list[HedgeOrder]:
        """The trades that move the hedge from `current_positions_usd` to `target`.

        An instrument trades only when |target − current| exceeds `hysteresis_usd`, unwinds
        included, so a hedge does not churn on every small change. One exception: with no
        basket left in the book the hedge goes flat whatever the hysteresis, since a hedge
        with nothing to offset is pure risk. Positions in other symbols are not the book's.
        """
        target = self.target(activation_usd)
        nothing_to_hedge = not self._exposures
        out = []
        for symbol in self.sizer.symbols:
            current = float(current_positions_usd.get(symbol, 0.0))
            delta = target[symbol] - current
            if abs(delta) <= _DUST_USD:
                continue
            if abs(delta) <= hysteresis_usd and not nothing_to_hedge:
                continue
            if target[symbol] == 0.0:
                reason = HedgeReason.UNWIND
            elif current == 0.0:
                reason = HedgeReason.OPEN
            else:
                reason = HedgeReason.ADJUST
            out.append(
                HedgeOrder(
                    symbol=symbol,
                    side=Side.BUY if delta > 0 else Side.SELL,
                    notional_usd=abs(delta),
                    target_usd=target[symbol],
                    reason=reason,
                    ts_ns=now_ns,
                )
            )
        return out

    def variance(self, basket_id: str) -> float:
        """The variance (USD² a year) of one basket's own exposure; 0 when not in the netting."""
        e = self._exposures.get(basket_id)
        return 0.0 if e is None else self.sizer.risk.variance(e)

    def has(self, basket_id: str) -> bool:
        """The basket is in the netting (it reported an exposure, and is not flat)."""
        return basket_id in self._exposures

    def catchup_s(self, seconds: Mapping[str, float]) -> float:
        """The netting's expected catch-up time: each basket's (`seconds`, by basket; absent:
        0) weighted by the variance of its own exposure."""
        risk = self.sizer.risk
        weights = {b: risk.variance(e) for b, e in self._exposures.items()}
        total = sum(weights.values())
        if total <= 0.0:
            return 0.0
        return sum(w * seconds.get(b, 0.0) for b, w in weights.items()) / total

    def decide(
        self,
        current_positions_usd: Mapping[str, float],
        now_ns: int,
        *,
        activation_usd: float,
        hysteresis_usd: float,
        rule: HedgeRule,
        costs: HedgeCosts,
        catchup_s: float,
        last_trade_ns: int | None,
        removed_usd2: Mapping[str, float] | None = None,
    ) -> list[HedgeOrder]:
        """The trades that earn their cost (`HedgeRule`), towards `target(activation_usd)`.

        A move (from flat: an entry) is made when what it adds to the baskets' values over
        `catchup_s`, given what the hedge has removed for them already (`removed_usd2`, by
        basket), covers `enter_ratio` times its cost, by the better of crossing now and
        resting first (`HedgeRule.rest_ns`, when `catchup_s` is longer). Hedged, and held
        `min_hold_ns` since `last_trade_ns`: leave when what the position removes is worth
        less than `exit_ratio` round trips; an instrument trades only by more than
        `hysteresis_usd`. With no basket left the hedge goes flat at once (`orders`).
        """
        if not self._exposures:
            return self.orders(current_positions_usd, now_ns, activation_usd, hysteresis_usd)
        symbols = self.sizer.symbols
        cur = np.array([float(current_positions_usd.get(s, 0.0)) for s in symbols])
        target_map = self.target(activation_usd)
        tgt = np.array([target_map[s] for s in symbols])
        e = self.netted()
        v_none = self.sizer.risk.variance(e)
        v_cur = self.sizer.residual_variance(e, cur)
        hedged = float(np.abs(cur).sum()) >= FLAT_USD
        rests = rule.rest_ns > 0
        if not hedged and not np.any(tgt):
            return []
        if hedged:
            if last_trade_ns is not None and now_ns - last_trade_ns < rule.min_hold_ns:
                return []
            held = dict(zip(symbols, cur.tolist(), strict=True))
            keep = risk_value_usd(rule.risk_price, v_none - v_cur, catchup_s)
            if keep < rule.exit_ratio * costs.round_trip_usd(held, rests):
                return self._moves(cur, np.zeros(len(symbols)), now_ns, 0.0, rule.rest_ns)
        shares = self.shares_in_force()
        removed = removed_usd2 or {}
        best: tuple[float, np.ndarray, int] | None = None  # (value − cost, positions, rest)
        for fraction in HEDGE_FRACTIONS:
            to = tgt * fraction
            v_to = self.sizer.residual_variance(e, to)
            for rest_ns in (0, rule.rest_ns) if rests else (0,):
                seconds = catchup_s - rest_ns / 1e9
                if rest_ns and seconds <= rest_ns / 1e9:
                    continue  # no time to rest: the hedge is wanted now
                value = rule.gain_usd(removed, shares, v_none - v_cur, v_none - v_to, seconds)
                cost = sum(
                    costs.move_usd(s, c, t, rest_ns > 0, rests)
                    for s, c, t in zip(symbols, cur.tolist(), to.tolist(), strict=True)
                )
                if value <= 0.0 or value < rule.enter_ratio * cost:
                    continue
                if best is None or value - cost > best[0]:
                    best = (value - cost, to, rest_ns)
        if best is None:
            return []
        return self._moves(cur, best[1], now_ns, hysteresis_usd, best[2])

    def _moves(
        self, cur: np.ndarray, tgt: np.ndarray, now_ns: int, hysteresis_usd: float, rest_ns: int
    ) -> list[HedgeOrder]:
        """Orders from positions `cur` to `tgt` (by `sizer.symbols`), each instrument's only
        when it moves by more than `hysteresis_usd`; to flat, always."""
        out = []
        for symbol, c, t in zip(self.sizer.symbols, cur.tolist(), tgt.tolist(), strict=True):
            delta = t - c
            if abs(delta) <= _DUST_USD or (abs(delta) <= hysteresis_usd and t != 0.0):
                continue
            if t == 0.0:
                reason = HedgeReason.UNWIND
            elif abs(c) < FLAT_USD:
                reason = HedgeReason.OPEN
            else:
                reason = HedgeReason.ADJUST
            out.append(
                HedgeOrder(
                    symbol=symbol,
                    side=Side.BUY if delta > 0 else Side.SELL,
                    notional_usd=abs(delta),
                    target_usd=t,
                    reason=reason,
                    ts_ns=now_ns,
                    rest_ns=rest_ns,
                )
            )
        return out

    def shares_in_force(self) -> dict[str, float]:
        """The baskets' shares of the hedge now, else those it last served."""
        return dict(self._shares or self._last_shares)

    # -- attribution ---------------------------------------------------------------------

    def accrue(self, pnl_usd: float, now_ns: int) -> dict[str, float]:
        """Attribute the hedge P&L (fees included) made since the previous accrual.

        Exposures change at reports while P&L is marked whenever the shell marks it, so the
        split uses each basket's share averaged over the period, weighted by time. That is
        exact when the shell accrues at every report (before passing the report in), and a
        time-weighted approximation otherwise. P&L over a period of no length goes by the
        shares in force now; P&L earned while no basket was in force (the tail of an unwind)
        goes by the last shares that were in force for some time, the baskets the hedge last
        served (baskets closing at one instant keep their joint shares); with none ever, it is
        kept in `unattributed_usd`.
        """
        self._advance(now_ns)
        covered = sum(self._weight.values())
        if covered > 0.0:
            split = {b: pnl_usd * w / covered for b, w in self._weight.items()}
        elif self._shares:
            split = {b: pnl_usd * s for b, s in self._shares.items()}
        elif self._last_shares:
            split = {b: pnl_usd * s for b, s in self._last_shares.items()}
        else:
            split = {}
            self.unattributed_usd += pnl_usd
        self._weight = {}
        for b, usd in split.items():
            self.attributed_usd[b] = self.attributed_usd.get(b, 0.0) + usd
        return split

    def _advance(self, now_ns: int) -> None:
        if self._shares_ns is not None and now_ns > self._shares_ns:
            dt = float(now_ns - self._shares_ns)
            for b, s in self._shares.items():
                self._weight[b] = self._weight.get(b, 0.0) + s * dt
            if self._shares:
                self._last_shares = self._shares
        if self._shares_ns is None or now_ns > self._shares_ns:
            self._shares_ns = now_ns  # a clock that steps back adds no time

    def _reshare(self) -> None:
        self._shares = self.sizer.shares(self._exposures)
        if self._shares and not self._last_shares:
            self._last_shares = self._shares


class RiskRemoved:
    """∫ (V(e) − V(e + Bh)) dt: the variance the hedge took off the netted exposure, in USD².

    The rate (USD² a year) holds from one `update` to the next (piecewise constant, like
    `LeggingRiskIntegrator`); it is negative while a hedge adds risk (its baskets caught up
    before it was unwound), and so is charged for it. Each basket gets the rate × its share
    of the hedge (`HedgeBook.shares_in_force`) for the time the share held.
    """

    def __init__(self) -> None:
        self.total_usd2 = 0.0
        self.by_basket: dict[str, float] = {}
        self._rate = 0.0
        self._shares: dict[str, float] = {}
        self._since_ns: int | None = None

    def update(self, rate: float, shares: Mapping[str, float], now_ns: int) -> None:
        """From `now_ns` on the hedge removes `rate` USD² a year, split by `shares`."""
        self.accrue(now_ns)
        self._rate = rate
        self._shares = dict(shares)

    def accrue(self, now_ns: int) -> None:
        if self._since_ns is not None and now_ns > self._since_ns and self._rate != 0.0:
            got = self._rate * (now_ns - self._since_ns) / NS_PER_YEAR
            self.total_usd2 += got
            for b, share in self._shares.items():
                self.by_basket[b] = self.by_basket.get(b, 0.0) + got * share
        if self._since_ns is None or now_ns > self._since_ns:
            self._since_ns = now_ns  # a clock that steps back adds no time


class HedgeLedger:
    """The hedge's positions and P&L per instrument, from its fills and the latest mids.

    P&L = Σ position × mid + cash, where cash is what the fills paid or received less fees:
    the figure `HedgeBook.accrue` splits between baskets, marked whenever exposures change.
    """

    def __init__(self, contract_sizes: Mapping[str, float]) -> None:
        self.contract_sizes = dict(contract_sizes)
        self.qty: dict[str, float] = dict.fromkeys(contract_sizes, 0.0)
        self.mids: dict[str, float] = {}
        self.cash_usd = 0.0
        self.fees_usd = 0.0
        self.orders = 0
        self._accrued_usd = 0.0  # P&L already handed to `HedgeBook.accrue`

    def fill(self, symbol: str, side: Side, qty: float, price: float, fee_usd: float) -> None:
        """Record a hedge fill of `qty` base units at `price`."""
        size = self.contract_sizes[symbol]
        self.qty[symbol] += side.sign * qty
        self.cash_usd -= side.sign * qty * price * size + fee_usd
        self.fees_usd += fee_usd

    def resync(self, symbol: str, qty: float) -> None:
        """The venue holds `qty` of `symbol` (read back after an error). The difference
        from the ledger's is fills the desk never saw answered (an order whose answer was
        lost, one that filled after it could not be cancelled): their prices are unknown, so
        they are booked at the latest mid, and the P&L does not jump by their whole value.
        Without a mid they are booked at no cost (the position's value counts from the first
        mark)."""
        delta = qty - self.qty[symbol]
        self.qty[symbol] = qty
        mid = self.mids.get(symbol)
        if delta and mid is not None:
            self.cash_usd -= delta * mid * self.contract_sizes[symbol]

    def mark(self, mids: Mapping[str, float]) -> None:
        self.mids.update(mids)

    def positions_usd(self) -> dict[str, float]:
        """Signed dollar position per instrument at the latest mids."""
        return {s: q * self.mids.get(s, 0.0) * self.contract_sizes[s] for s, q in self.qty.items()}

    def gross_usd(self) -> float:
        return sum(abs(v) for v in self.positions_usd().values())

    def pnl_usd(self) -> float:
        return sum(self.positions_usd().values()) + self.cash_usd

    def unaccrued_usd(self) -> float:
        """P&L made since the last call (what to pass to `HedgeBook.accrue` now)."""
        total = self.pnl_usd()
        delta, self._accrued_usd = total - self._accrued_usd, total
        return delta


def hedge_quantity(
    order: HedgeOrder, lot: Decimal, held_qty: float, mid: float | None, contract_size: float
) -> Decimal | None:
    """A hedge order's size in base units, to the nearest lot; an unwind to flat closes the
    held position exactly. None without a mid (the venue sizes it from `notional_usd` then)."""
    if order.target_usd == 0.0:
        return Decimal(str(abs(held_qty))).quantize(lot)
    if not mid:
        return None
    raw = order.notional_usd / (mid * contract_size)
    return (Decimal(str(raw)) / lot).to_integral_value() * lot


def hedge_limit_order(
    client_order_id: str,
    inst: Instrument,
    side: Side,
    qty: Decimal | None,
    notional_usd: float,
    mid: Decimal,
) -> NewOrder | None:
    """The hedge trade as the venue gets it: an IOC limit `HEDGE_PROTECTION_BPS` through the
    mid, `qty` (or about `notional_usd` at the mid) on the lot grid. None when it rounds to
    nothing or under the venue's minimum notional."""
    if qty is None:
        qty = Decimal(str(notional_usd)) / (mid * inst.contract_size)
    qty = inst.snap_qty(qty)
    if qty <= 0 or inst.notional(mid, qty) < inst.min_notional:
        return None
    away = HEDGE_PROTECTION_BPS / Decimal(10_000)
    raw = mid * (1 + away) if side is Side.BUY else mid * (1 - away)
    return NewOrder(
        client_order_id=client_order_id,
        symbol=inst.symbol,
        side=side,
        type=OrderType.LIMIT,
        quantity=qty,
        price=inst.snap_price_passive(raw, side),
        time_in_force=TimeInForce.IOC,
    )


def hedge_resting_order(
    client_order_id: str, inst: Instrument, side: Side, qty: Decimal, bid: Decimal, ask: Decimal
) -> NewOrder | None:
    """The hedge trade resting first (`HedgeOrder.rest_ns`): post-only at the touch on its
    own side (the bid to buy, the ask to sell), `qty` on the lot grid. None when it rounds
    to nothing or under the venue's minimum notional."""
    price = bid if side is Side.BUY else ask
    qty = inst.snap_qty(qty)
    if qty <= 0 or price <= 0 or inst.notional(price, qty) < inst.min_notional:
        return None
    return NewOrder(
        client_order_id=client_order_id,
        symbol=inst.symbol,
        side=side,
        type=OrderType.LIMIT,
        quantity=qty,
        price=price,
        time_in_force=TimeInForce.POST_ONLY,
    )
