"""The running basket's coordination: the pure core a basket actor feeds with leg progress.

`BasketCoordinator` takes each leg's newest `LegProgress` (times already on the basket's
axis) and the current time, and returns what to do (DESIGN §5.4–§5.6): adjust legs (the
synchronizer), tell the hedge about a changed imbalance, note the launch, report a failed
leg, and say when every leg is done. The live basket actor and the backtest drive the same
object; neither sleeps, reads a clock nor does I/O in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec
import numpy as np

from actors.messages import LegProgress, LegStatus, newest
from actors.risk import LeggingRiskIntegrator, RiskModel, imbalance_usd
from actors.schedule import Mode, scheduled_fraction
from actors.spec import ChildStyle, ResolvedBasket
from actors.sync import AdjustLeg, BasketRestored, BasketShrunk, Synchronizer

NS_PER_S = 1_000_000_000
HEDGE_MIN_CHANGE_USD = 1.0  # an exposure change smaller than this on every factor is not news


class Launched(msgspec.Struct, frozen=True, kw_only=True):
    """Every leg's first child order has been acknowledged."""

    ts_ns: int


class LegFailed(msgspec.Struct, frozen=True, kw_only=True):
    """A leg cannot go on; `at_launch` when the basket had not launched yet."""

    leg_id: str
    reason: str
    at_launch: bool
    ts_ns: int


class ExposureChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The basket's imbalance, as factor exposures in USD, moved materially."""

    seq: int
    exposure: dict[str, float]
    imbalance_usd: dict[str, float]  # per leg, signed
    cause_ns: int | None  # the newest fill behind it, when a leg saw it (basket axis)
    ts_ns: int
    # How long the imbalance is expected to last (`BasketCoordinator.catchup_s`): what the
    # hedge weighs the risk it would remove over against what hedging costs.
    catchup_s: float | None = None


class AllDone(msgspec.Struct, frozen=True, kw_only=True):
    """Every leg reached its (possibly cut) target or stopped, with nothing open."""

    ts_ns: int


BasketEffect = (
    AdjustLeg | BasketShrunk | BasketRestored | Launched | LegFailed | ExposureChanged | AllDone
)

# A resting leg's step (`Synchronizer`'s **Resting legs**, `resting_steps`), in regular
# slices of progress. The base is less than its largest quote (`SYNCHRONIZED_QUOTE_SLICES`,
# half a slice), so that a quote filled whole is followed at once: measured on the 200 ms
# laggard pair (bench_styles), quotes of two slices and a step of one left a whole slice
# naked until the next interval. A leg whose quotes fill `RESTING_FILLS_BASE` times a slice
# or less keeps it; from there the step widens to the ceiling, reached at
# `RESTING_FILLS_MAX` fills a slice (bench_styles, seeds 1 and 2: the synthetic ETH legs'
# quotes fill 11 to 24 times a slice, the laggard pair's 1 to 2.4 times).
RESTING_STEP_SLICES = 0.3
RESTING_STEP_MAX_SLICES = 1.5
RESTING_FILLS_BASE = 3.0
RESTING_FILLS_MAX = 9.0
_FINISHED = frozenset({LegStatus.DONE, LegStatus.RECONCILED, LegStatus.FAILED})


def resting_steps(
    basket: ResolvedBasket, legs: Mapping[str, LegProgress] | None = None
) -> dict[str, float]:
    """The step of each leg whose child orders rest (`passive`), as a completion share (a
    regular slice is slice_s / horizon_s of it): from `RESTING_STEP_SLICES` slices up to
    `RESTING_STEP_MAX_SLICES` by how often the leg's own quotes have filled so far (its
    snapshot in `legs`; without one, the base), and never more than half the band.

    Crossing a gap costs the taker fee and the spread on it whatever its size; waiting for
    the quote costs the gap's risk until the quote fills, and a quote that fills often
    closes a gap soon, in pieces. So the step follows n, the quote's fills per slice it
    rested: n = maker_fills / (quoted_s / slice_s + 1) (the snapshot's `maker_fills` and
    `quoted_ns`; the slice added so that a leg that has hardly quoted counts as slow), and

        step = base + (ceiling − base) × clamp((n − n0) / (n1 − n0), 0, 1) slices,

    with n0 = `RESTING_FILLS_BASE` and n1 = `RESTING_FILLS_MAX`. A quote filled three times a
    slice or less leaves a gap standing a third of a slice or more between its fills, and a
    gap beyond the base is crossed at once; one filled nine times a slice or more lets a gap
    of the ceiling wait for it."""
    params = basket.params
    slice_share = params.slice_s / params.horizon_s
    band = params.completion_band
    out: dict[str, float] = {}
    for leg in basket.legs:
        if basket.styled(leg).child_style is not ChildStyle.PASSIVE:
            continue
        slices = RESTING_STEP_SLICES
        p = (legs or {}).get(leg.leg_id)
        if p is not None and p.maker_fills > 0:
            often = p.maker_fills / (p.quoted_ns / NS_PER_S / params.slice_s + 1)
            share = (often - RESTING_FILLS_BASE) / (RESTING_FILLS_MAX - RESTING_FILLS_BASE)
            slices += (RESTING_STEP_MAX_SLICES - RESTING_STEP_SLICES) * min(max(share, 0.0), 1.0)
        step = slices * slice_share
        if band is not None:
            step = min(step, band / 2)
        out[leg.leg_id] = min(max(step, 1e-6), 0.5)
    return out


class BasketCoordinator:
    """One running basket's rules (see the module docstring)."""

    def __init__(
        self,
        basket: ResolvedBasket,
        start_ns: int,
        risk: RiskModel,
        *,
        hedge: bool = True,
        synchronize: bool = True,
        exposure_seq_from: int = 0,
    ) -> None:
        """`hedge`: report exposure changes; `synchronize`: run the synchronizer (without it
        every leg keeps its own pace, as the backtest's `independent` and `sequential` modes
        execute); `exposure_seq_from`: the exposure reports are numbered after it (a
        successor's must outrank every one its lost predecessor sent: the hedge desk drops
        a report numbered at or below the last it took)."""
        params = basket.params
        self.basket = basket
        self.start_ns = start_ns
        self.horizon_ns = int(params.horizon_s * NS_PER_S)
        self.risk = risk
        self.hedge = hedge
        self.instruments = {leg.leg_id: leg.instrument for leg in basket.legs}
        self.legs: dict[str, LegProgress] = {
            leg.leg_id: LegProgress(
                basket_id=basket.basket_id,
                leg_id=leg.leg_id,
                seq=0,
                side=leg.side,
                target_qty=leg.quantity,
                filled_qty=Decimal(0),
                avg_price=None,
                open_qty=Decimal(0),
                status=LegStatus.IDLE,
                ts_ns=start_ns,
                mark_price=leg.price,
            )
            for leg in basket.legs
        }
        band = params.completion_band
        self.sync = Synchronizer(
            {leg.leg_id: leg.quantity for leg in basket.legs},
            self.instruments,
            band,
            int(params.grace_s * NS_PER_S),
            risk_limit_usd=params.band_risk_usd if band is None else None,
            risk_of=self._risk_of if band is None else None,
            start_ns=start_ns,
            resting=resting_steps(basket),
        )
        self.synchronizing = synchronize
        self.integrator = LeggingRiskIntegrator(risk, self.instruments)
        self.launched_ns: int | None = None
        self.failed: dict[str, str] = {}
        self.done_ns: int | None = None
        self.shrinks: list[BasketShrunk | BasketRestored] = []  # every change of its size
        # Legs not started yet: their collateral is being routed (`params.on_unfunded =
        # "hedge"`); the hedge holds the exposure they would offset until they start.
        self.deferred: set[str] = set()
        self._exposure_seq = exposure_seq_from
        self._last_exposure: np.ndarray | None = None

    # -- inputs ------------------------------------------------------------------------------
    def on_progress(self, p: LegProgress, now_ns: int) -> list[BasketEffect]:
        """Take a leg's snapshot (stale ones are ignored) and decide what follows."""
        if p.leg_id not in self.legs:
            return []
        kept = newest(self.legs[p.leg_id], p)
        if kept is not p:
            return []
        self.legs[p.leg_id] = p
        effects: list[BasketEffect] = []
        if p.status is LegStatus.FAILED and p.leg_id not in self.failed:
            self.failed[p.leg_id] = p.reason or "failed"
            effects.append(
                LegFailed(
                    leg_id=p.leg_id,
                    reason=self.failed[p.leg_id],
                    at_launch=self.launched_ns is None,
                    ts_ns=now_ns,
                )
            )
        started = [leg for leg_id, leg in self.legs.items() if leg_id not in self.deferred]
        if self.launched_ns is None and started and all(leg.first_ack for leg in started):
            self.launched_ns = now_ns
            effects.append(Launched(ts_ns=now_ns))
        return effects + self.tick(now_ns)

    def tick(self, now_ns: int) -> list[BasketEffect]:
        """The periodic step: synchronize, re-measure the imbalance, check completion."""
        effects: list[BasketEffect] = []
        if self.synchronizing and not self.failed:
            if self.sync.resting:
                self.sync.set_steps(resting_steps(self.basket, self.legs))
            blocked = {leg: p.blocked for leg, p in self.legs.items()}
            for effect in self.sync.evaluate(
                self.legs, self.schedule_progress(now_ns), now_ns, blocked, self.deferred
            ):
                if isinstance(effect, BasketShrunk | BasketRestored):
                    self.shrinks.append(effect)
                effects.append(effect)
        exposure = self._exposure(now_ns)
        if exposure is not None:
            effects.append(exposure)
        finished = all(p.status in _FINISHED and p.open_qty <= 0 for p in self.legs.values())
        if self.done_ns is None and finished:
            self.done_ns = now_ns
            effects.append(AllDone(ts_ns=now_ns))
        return effects

    def stop_synchronizing(self, now_ns: int) -> list[AdjustLeg]:
        """Policy `complete` after a failure: the healthy legs go on at their own pace.

        Returns the adjustments that release the legs the synchronizer was holding (paused
        or catching up): with no synchronizer left nobody else would."""
        self.synchronizing = False
        out = []
        for leg, mode in self.sync.modes.items():
            if mode is not Mode.NORMAL and leg not in self.failed:
                self.sync.modes[leg] = Mode.NORMAL
                out.append(
                    AdjustLeg(
                        leg_id=leg,
                        mode=Mode.NORMAL,
                        target_qty=None,
                        reason="the synchronizer stopped: a leg failed (policy complete)",
                        ts_ns=now_ns,
                    )
                )
        return out

    # -- views -------------------------------------------------------------------------------
    def schedule_progress(self, now_ns: int) -> float:
        return float(scheduled_fraction(now_ns, self.start_ns, self.horizon_ns))

    def prices(self) -> dict[str, float]:
        """Dollars per unit of each leg: its mark, else its fill price, else its check price."""
        out: dict[str, float] = {}
        for leg in self.basket.legs:
            p = self.legs[leg.leg_id]
            price = p.mark_price or p.avg_price or leg.price or Decimal(0)
            out[leg.leg_id] = float(price * leg.instrument.contract_size)
        return out

    def imbalance(self) -> dict[str, float]:
        return imbalance_usd(list(self.legs.values()), self.prices())

    def completion_skew(self) -> float:
        p = [leg.progress for leg in self.legs.values()]
        return max(p) - min(p)

    def _risk_of(self, progress: object) -> float:
        return self.risk.imbalance_risk_usd(
            list(self.legs.values()), self.prices(), self.instruments
        )

    def _exposure(self, now_ns: int) -> ExposureChanged | None:
        u = self.imbalance()
        self.integrator.update(u, now_ns)
        if not self.hedge:
            return None
        e = self.risk.leg_exposures(u, self.instruments)
        last = self._last_exposure
        # The array's own `all`: numpy's `np.all` wrapper cost more than the test, every tick.
        if last is not None and (np.abs(e - last) < HEDGE_MIN_CHANGE_USD).all():
            return None
        self._last_exposure = e
        self._exposure_seq += 1
        seen = [p.fill_seen_ns for p in self.legs.values() if p.fill_seen_ns is not None]
        return ExposureChanged(
            seq=self._exposure_seq,
            exposure=self.risk.as_mapping(e),
            imbalance_usd=u,
            cause_ns=max(seen) if seen else None,
            ts_ns=now_ns,
            catchup_s=self.catchup_s(now_ns),
        )

    def catchup_s(self, now_ns: int) -> float:
        """Seconds the imbalance is expected to last: a leg waiting for its collateral, up
        to the funding timeout; a blocked leg (its slippage cap, its venue), the horizon
        left and the grace after it; otherwise the time the schedule takes to cover the
        legs' completion skew, at which pace the laggard closes it."""
        params = self.basket.params
        if self.deferred:
            return float(params.funding_timeout_s)
        if any(p.blocked for p in self.legs.values()):
            left_ns = self.start_ns + self.horizon_ns - now_ns
            return max(0.0, left_ns / NS_PER_S) + float(params.grace_s)
        return self.completion_skew() * float(params.horizon_s)
