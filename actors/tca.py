"""Basket-aware TCA: what a basket cost, leg by leg, and how well its legs held together.

Pure functions of a `BasketReport` (DESIGN §8): no clock, no I/O. `basket_tca` gives the
JSON-ready document stored in `BasketReport.tca`; the helpers it is built from (`shortfall`,
`leg_shortfall`, `legging_risk_usd`, `percentiles`, …) serve the tests and the backtest too.

Conventions. Costs are positive (a cost is money lost against the decision price). Dollars are
floats: analytics, not orders (STYLE §5). Basis points are over the **gross** notional
Σ Q·P_d·c, never the net one, which a hedged basket can bring to ~0.

Implementation shortfall of one leg (side s = ±1, contract size c, decision price P_d, arrival
P_a, target Q, net filled q, end mid P_end), worked from the child orders, each of its own side
σ = ±1, filled q_c at p_c:

    delay       = s·q·(P_a − P_d)·c
    execution   = Σ σ_c·q_c·(p_c − P_a)·c
    opportunity = s·(Q − q)·(P_end − P_d)·c
    fees        = Σ fee_c

with q = s·Σ σ_c·q_c, so an unwind (a child of the opposite side) reduces what was bought and
its price counts in the execution cost. The parts add up to the paper-portfolio shortfall
Σ σ_c·q_c·(p_c − P_d)·c + s·(Q − q)·(P_end − P_d)·c + fees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Any

import msgspec
import numpy as np

from actors.fees import ChargedFee
from actors.fees import total as fee_total
from actors.report import BasketReport, LegReport, Timeline, TimelinePoint
from venues.model import Side
from venues.sim.calibration import NS_PER_S

BP = 1e4
_ZERO = Decimal(0)
HEDGE_ACTIVE_USD = 1.0  # below a dollar the hedge is flat: residue of lot rounding, not a hedge


class Fill(msgspec.Struct, frozen=True, array_like=True):
    """One child order's fill: signed quantity (+ bought, − sold) at its average price."""

    qty: float
    price: float


class Shortfall(msgspec.Struct, frozen=True, kw_only=True):
    """One leg's (or a basket's) implementation shortfall in USD, in its four parts."""

    delay_usd: float = 0.0
    execution_usd: float = 0.0
    opportunity_usd: float = 0.0
    fees_usd: float = 0.0
    notional_usd: float = 0.0  # Q·P_d·c: what the bp are of

    @property
    def total_usd(self) -> float:
        return self.delay_usd + self.execution_usd + self.opportunity_usd + self.fees_usd

    @property
    def total_bps(self) -> float | None:
        return _bps(self.total_usd, self.notional_usd)

    def __add__(self, other: Shortfall) -> Shortfall:
        return Shortfall(
            delay_usd=self.delay_usd + other.delay_usd,
            execution_usd=self.execution_usd + other.execution_usd,
            opportunity_usd=self.opportunity_usd + other.opportunity_usd,
            fees_usd=self.fees_usd + other.fees_usd,
            notional_usd=self.notional_usd + other.notional_usd,
        )

    def parts(self) -> dict[str, float]:
        return {
            "delay_usd": self.delay_usd,
            "execution_usd": self.execution_usd,
            "opportunity_usd": self.opportunity_usd,
            "fees_usd": self.fees_usd,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.parts(), "total_usd": self.total_usd, "total_bps": self.total_bps}


# -- implementation shortfall -----------------------------------------------------------------


def shortfall(
    *,
    side: Side,
    target_qty: float,
    fills: Sequence[Fill],
    decision_price: float,
    arrival_price: float | None = None,
    end_price: float | None = None,
    fees_usd: float = 0.0,
    contract_size: float = 1.0,
) -> Shortfall:
    """The implementation shortfall of one order (see the module docstring).

    `arrival_price` defaults to the decision price (no delay measured); `end_price` as in
    `valuation_price`.
    """
    s = side.sign
    c = contract_size
    p_d = decision_price
    p_a = p_d if arrival_price is None else arrival_price
    end_price = valuation_price(end_price, fills, p_d)
    bought = math.fsum(f.qty for f in fills)  # signed: + along BUY
    q = s * bought
    return Shortfall(
        delay_usd=bought * (p_a - p_d) * c,
        execution_usd=math.fsum(f.qty * (f.price - p_a) for f in fills) * c,
        opportunity_usd=s * (target_qty - q) * (end_price - p_d) * c,
        fees_usd=fees_usd,
        notional_usd=abs(target_qty * p_d * c),
    )


def leg_fills(leg: LegReport) -> list[Fill]:
    """The leg's fills, child by child in the order they were sent, signed by the child's side.

    A leg whose child orders are not known (its actor was lost; the report carries its last
    snapshot) counts its net filled quantity as one fill at its average price.
    """
    if not leg.child_orders:
        if leg.filled_qty and leg.avg_price is not None:
            return [Fill(leg.side.sign * float(leg.filled_qty), float(leg.avg_price))]
        return []
    return [
        Fill(c.side.sign * float(c.filled_qty), float(c.avg_price))
        for c in sorted(leg.child_orders, key=lambda c: c.n)
        if c.filled_qty > 0 and c.avg_price is not None
    ]


def leg_fees_usd(leg: LegReport) -> float:
    """The fees of the leg's child orders in USD (a fee in the base asset at its fill's price;
    one in an asset with no price is left out, and listed in `fees_unpriced`), else (no child
    carries one) the leg's own total."""
    charged = [ChargedFee(c.fee, c.fee_asset, c.avg_price) for c in leg.child_orders if c.fee]
    if not charged:
        return float(leg.fees_usd)
    return float(fee_total(charged, leg.base_asset, leg.quote_asset or "USDT").usd)


def leg_shortfall(leg: LegReport) -> Shortfall:
    """The leg's implementation shortfall; all zeros when it has no decision price (a basket
    refused before validation never had one, so there is nothing to measure against)."""
    if leg.decision_price is None:
        return Shortfall()
    fills = leg_fills(leg)
    return shortfall(
        side=leg.side,
        target_qty=float(leg.original_qty),  # a shrink's unfilled part is opportunity cost
        fills=fills,
        decision_price=float(leg.decision_price),
        arrival_price=_float(leg.arrival_price),
        end_price=_float(leg.end_price),
        fees_usd=leg_fees_usd(leg),
        contract_size=float(leg.contract_size),
    )


def valuation_price(end: float | None, fills: Sequence[Fill], decision: float) -> float:
    """The price the unfilled rest is valued at: the end mid, else the last fill's price, else
    the decision price (then no opportunity cost can be measured)."""
    if end is not None:
        return end
    return fills[-1].price if fills else decision


def fill_vwap(leg: LegReport) -> float | None:
    """Volume-weighted price of the leg's own slices (unwinds excluded)."""
    slices = [
        (float(c.filled_qty), float(c.avg_price))
        for c in leg.child_orders
        if c.purpose == "slice" and c.filled_qty > 0 and c.avg_price is not None
    ]
    qty = math.fsum(q for q, _ in slices)
    if qty <= 0:
        return None
    return math.fsum(q * p for q, p in slices) / qty


def spread_paid_usd(leg: LegReport) -> float:
    """Σ q·|p − mid|·c over the child orders that recorded the mid they were sent at."""
    c = float(leg.contract_size)
    return math.fsum(
        float(ch.filled_qty) * abs(float(ch.avg_price) - float(ch.mid)) * c
        for ch in leg.child_orders
        if ch.filled_qty > 0 and ch.avg_price is not None and ch.mid is not None
    )


def slippage_bps(side: Side, price: float | None, benchmark: float | None) -> float | None:
    """Signed slippage of `price` against `benchmark` in bp; positive = worse than it."""
    if price is None or benchmark is None or benchmark == 0:
        return None
    return side.sign * (price - benchmark) / benchmark * BP


# -- the basket's path ------------------------------------------------------------------------


def _points(timeline: Timeline | None) -> list[TimelinePoint]:
    """The timeline's points in time order, each checked to have one value per leg."""
    if timeline is None:
        return []
    n = len(timeline.legs)
    for p in timeline.points:
        if len(p.progress) != n or len(p.imbalance_usd) != n:
            raise ValueError(
                f"timeline: point at {p.ts_ns} ns has {len(p.progress)} progress and "
                f"{len(p.imbalance_usd)} imbalance values; the timeline has {n} legs"
            )
    return sorted(timeline.points, key=lambda p: p.ts_ns)


def _steps(timeline: Timeline | None) -> list[tuple[TimelinePoint, float]]:
    """Each point but the last with how long (s) it held: the timeline is a left-continuous
    step function, a point's state lasting until the next point."""
    pts = _points(timeline)
    return [(a, (b.ts_ns - a.ts_ns) / NS_PER_S) for a, b in pairwise(pts)]


def legging_risk_usd(timeline: Timeline | None) -> float | None:
    """sqrt(∫ uᵀΣu dt): the standard deviation of the P&L the imbalance path exposed the basket
    to, each imbalance held until the next point, Σ per second. None when the imbalance moved
    but the timeline carries no covariance to value it with."""
    steps = _steps(timeline)
    if not steps:
        return 0.0
    assert timeline is not None
    u = np.array([p.imbalance_usd for p, _ in steps], dtype=float)
    dt = np.array([d for _, d in steps])
    if not timeline.covariance_per_s:
        return 0.0 if not u.any() else None
    n = len(timeline.legs)
    cov = np.asarray(timeline.covariance_per_s, dtype=float)
    if cov.shape != (n, n):
        raise ValueError(
            f"timeline.covariance_per_s: shape {cov.shape}, expected ({n}, {n}) for the legs "
            f"{timeline.legs}"
        )
    # uᵀΣu of a PSD Σ is ≥ 0; clamp the rounding of a nearly singular one, as the integrator does.
    rate = np.maximum(np.einsum("ki,ij,kj->k", u, cov, u), 0.0)
    return math.sqrt(float(rate @ dt))


def fill_path_risk(report: BasketReport) -> dict[str, float | None]:
    """Legging risk and peak gross imbalance on the fills' own times: the exposure the basket
    actually held, rather than the basket's view of it on its ticks (the timeline).

    Each child order's fills count from the venue times they were reported with
    (`ChildOrder.fill_marks`: a resting quote fills long after its accept), and what no mark
    dates from its venue accept time (an IOC fills as it is accepted; else its ack, else its
    send), on the basket axis. u_i is leg
    i's fills beyond the slowest leg's completion, valued at the decision price; held until
    the next fill, and the last until the basket's last timeline point. Σ per second is the
    timeline's. None without a timeline covariance to value it with.
    """
    tl = report.timeline
    if tl is None or not tl.covariance_per_s:
        return {"legging_risk_usd": None, "peak_imbalance_usd": None}
    legs = {leg.leg_id: leg for leg in report.legs}
    if any(leg_id not in legs for leg_id in tl.legs):
        return {"legging_risk_usd": None, "peak_imbalance_usd": None}
    ordered = [legs[leg_id] for leg_id in tl.legs]
    target = np.array([float(leg.original_qty) for leg in ordered])
    value = np.array(
        [
            leg.side.sign
            * float((leg.decision_price or leg.avg_price or Decimal(0)) * leg.contract_size)
            for leg in ordered
        ]
    )
    events: list[tuple[int, int, float]] = []
    for i, leg in enumerate(ordered):
        for c in leg.child_orders:
            if c.filled_qty <= 0:
                continue
            sign = 1.0 if c.side is leg.side else -1.0
            dated = _ZERO
            for t, cum in c.fill_marks:
                if cum > dated:
                    events.append((t, i, sign * float(min(cum, c.filled_qty) - dated)))
                    dated = min(cum, c.filled_qty)
            if c.filled_qty > dated:
                t = c.venue_accept_ns or c.ack_ns or c.sent_ns
                events.append((t, i, sign * float(c.filled_qty - dated)))
    if not events:
        return {"legging_risk_usd": 0.0, "peak_imbalance_usd": 0.0}
    events.sort()
    cov = np.asarray(tl.covariance_per_s, dtype=float)
    end = max(events[-1][0], tl.points[-1].ts_ns if tl.points else events[-1][0])
    filled = np.zeros(len(ordered))
    safe = np.where(target > 0, target, 1.0)
    variance = 0.0
    peak = 0.0
    k = 0
    while k < len(events):
        t = events[k][0]
        while k < len(events) and events[k][0] == t:  # fills at one instant move together
            filled[events[k][1]] += events[k][2]
            k += 1
        progress = np.where(target > 0, filled / safe, np.inf)
        slowest = float(progress.min()) if np.isfinite(progress).any() else 0.0
        u = (filled - slowest * target) * value
        peak = max(peak, float(np.abs(u).sum()))
        until = events[k][0] if k < len(events) else end
        variance += max(float(u @ cov @ u), 0.0) * (until - t) / 1e9
    return {"legging_risk_usd": math.sqrt(variance), "peak_imbalance_usd": peak}


def peak_imbalances(timeline: Timeline | None) -> dict[str, float | None]:
    """The largest gross, net and beta-weighted imbalance the basket reached, in USD.

    Gross Σ|u_i| is what `LeggingRiskIntegrator` reports as the peak dollar imbalance (the
    dollars out of step); net |Σ u_i| is how far from dollar-neutral; beta |Σ β_i u_i| how far
    from market-neutral (None without betas). The last point counts: it was reached.
    """
    if timeline is None:
        return {"gross": 0.0, "net": 0.0, "beta": None}
    points = _points(timeline)
    betas = timeline.betas
    if betas and len(betas) != len(timeline.legs):
        raise ValueError(f"timeline.betas: {len(betas)} values for {len(timeline.legs)} legs")
    if not points:
        return {"gross": 0.0, "net": 0.0, "beta": 0.0 if betas else None}
    u = np.array([p.imbalance_usd for p in points], dtype=float)
    return {
        "gross": float(np.abs(u).sum(axis=1).max()),
        "net": float(np.abs(u.sum(axis=1)).max()),
        "beta": float(np.abs(u @ np.asarray(betas, dtype=float)).max()) if betas else None,
    }


def completion_skew(timeline: Timeline | None) -> dict[str, float | None]:
    """The largest `max_i p_i − min_i p_i` reached, and the seconds the skew spent over the
    band (None when the basket has no band)."""
    skew = max((_skew(p) for p in _points(timeline)), default=0.0)
    band = None if timeline is None else timeline.band
    outside: float | None = None
    if band is not None:
        outside = math.fsum(dt for p, dt in _steps(timeline) if _skew(p) > band)
    return {"max": skew, "outside_band_s": outside}


def _skew(p: TimelinePoint) -> float:
    return max(p.progress) - min(p.progress) if p.progress else 0.0


def hedge_activations(timeline: Timeline | None) -> int:
    """How often the hedge went from flat (< $1) to on (≥ $1) between two points.

    The first point is not an edge: the desk may already have been hedging other baskets.
    """
    pts = _points(timeline)
    return sum(1 for a, b in pairwise(pts) if a.hedge_usd < HEDGE_ACTIVE_USD <= b.hedge_usd)


# -- latencies --------------------------------------------------------------------------------


def percentiles(values: Iterable[float]) -> dict[str, int | None]:
    """p50 and p99 (linear interpolation, rounded to whole ns) and the sample count."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return {"p50": None, "p99": None, "n": 0}
    p50, p99 = np.percentile(arr, [50, 99], method="linear")
    return {"p50": round(float(p50)), "p99": round(float(p99)), "n": int(arr.size)}


def ack_latencies(legs: Sequence[LegReport]) -> dict[str, dict[str, list[int]]]:
    """Raw ack latencies (ack arrival − send) per venue and ack kind, in ns.

    A placement that failed with an error has an `ack_ns` but no ack kind: it was not a
    venue's acknowledgement, so it is left out.
    """
    out: dict[str, dict[str, list[int]]] = {}
    for leg in legs:
        for c in leg.child_orders:
            if c.ack_ns is not None and c.ack_kind is not None:
                by_kind = out.setdefault(leg.venue, {})
                by_kind.setdefault(c.ack_kind.value, []).append(c.ack_ns - c.sent_ns)
    return out


def accept_latencies(legs: Sequence[LegReport]) -> dict[str, list[int]]:
    """Venue-accept latencies (venue accept − send, both on the basket axis) per venue, in ns:
    the event that is comparable across venues whatever their ack semantics (DESIGN §6)."""
    out: dict[str, list[int]] = {}
    for leg in legs:
        for c in leg.child_orders:
            if c.venue_accept_ns is not None:
                out.setdefault(leg.venue, []).append(c.venue_accept_ns - c.sent_ns)
    return out


# -- the basket -------------------------------------------------------------------------------


def leg_tca(leg: LegReport) -> dict[str, Any]:
    """One leg's entry in `basket_tca(...)["legs"]`."""
    sf = leg_shortfall(leg)
    vwap = fill_vwap(leg)
    market = _float(leg.market_vwap)
    fills = leg_fills(leg)
    return {
        "leg_id": leg.leg_id,
        "venue": leg.venue,
        "symbol": leg.symbol,
        "side": leg.side.value,
        "target_qty": float(leg.original_qty),  # Q of the shortfall: as the basket was accepted
        "final_target_qty": float(leg.target_qty),  # after any shrink
        "filled_qty": leg.side.sign * math.fsum(f.qty for f in fills),
        "decision_price": _float(leg.decision_price),
        "arrival_price": _float(leg.arrival_price),
        "fill_vwap": vwap,
        "end_price": (
            _float(leg.end_price)
            if leg.decision_price is None
            else valuation_price(_float(leg.end_price), fills, float(leg.decision_price))
        ),
        "market_vwap": market,
        "slippage_vs_market_vwap_bps": slippage_bps(leg.side, vwap, market),
        "spread_paid_usd": spread_paid_usd(leg),
        "notional_usd": sf.notional_usd,
        "shortfall": sf.to_dict(),
    }


def basket_tca(report: BasketReport) -> dict[str, Any]:
    """The basket's TCA document (DESIGN §8), JSON-ready, for `BasketReport.tca`."""
    legs = [leg_tca(leg) for leg in report.legs]
    total = sum((leg_shortfall(leg) for leg in report.legs), Shortfall())
    gross = total.notional_usd
    hedge = report.hedge
    hedge_cost = -hedge.pnl_usd if hedge is not None else 0.0
    peaks = peak_imbalances(report.timeline)
    fills = fill_path_risk(report)
    skew = completion_skew(report.timeline)
    acks = ack_latencies(report.legs)
    accepts = accept_latencies(report.legs)
    return {
        "gross_notional_usd": gross,
        "shortfall_usd": total.total_usd,
        "shortfall_bps": total.total_bps,
        "parts": total.parts(),
        "hedge_cost_usd": hedge_cost,
        "hedge_cost_bps": _bps(hedge_cost, gross),
        "total_cost_usd": total.total_usd + hedge_cost,
        "total_cost_bps": _bps(total.total_usd + hedge_cost, gross),
        "unpriced_legs": [leg.leg_id for leg in report.legs if leg.decision_price is None],
        "launch_skew_ns": report.launch_skew_ns,
        "raw_ack_skew_ns": report.raw_ack_skew_ns,
        "max_completion_skew": skew["max"],
        "time_outside_band_s": skew["outside_band_s"],
        "peak_imbalance_usd": peaks["gross"],
        "peak_net_imbalance_usd": peaks["net"],
        "peak_beta_imbalance_usd": peaks["beta"],
        "fill_legging_risk_usd": fills["legging_risk_usd"],
        "fill_peak_imbalance_usd": fills["peak_imbalance_usd"],
        "legging_risk_usd": legging_risk_usd(report.timeline),
        "hedge_activations": hedge_activations(report.timeline),
        "hedge_orders": hedge.orders if hedge is not None else 0,
        # What the hedge cost in trading (fees, spread and impact against the mid) beside
        # the risk it removed, sqrt(∫ ΔV dt), and that risk's value (docs/basket.md, Hedge).
        "hedge_trading_cost_usd": hedge.trading_cost_usd if hedge is not None else 0.0,
        "hedge_risk_removed_usd": hedge.risk_removed_usd if hedge is not None else 0.0,
        "hedge_risk_value_usd": hedge.risk_value_usd if hedge is not None else 0.0,
        "hedge_reaction_ns": percentiles(hedge.reaction_ns if hedge is not None else []),
        "ack_latency_ns": {
            venue: {kind: percentiles(v) for kind, v in sorted(kinds.items())}
            for venue, kinds in sorted(acks.items())
        },
        "accept_latency_ns": {venue: percentiles(v) for venue, v in sorted(accepts.items())},
        "legs": legs,
    }


def _bps(usd: float, notional: float) -> float | None:
    return usd / notional * BP if notional else None


def _float(x: Decimal | None) -> float | None:
    return None if x is None else float(x)
