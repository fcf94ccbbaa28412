"""The synchronizer: keeps a basket's legs in step — leaders pause, laggards speed up, and the
leaders shrink when a laggard cannot keep up (DESIGN §5.5).

`Synchronizer.evaluate` compares the legs' completion p_i = filled_i / target_i and returns the
changes to make: an `AdjustLeg` for each leg whose mode or target changes, and a `BasketShrunk`
event when the basket is cut. It emits changes only, so calling it twice with the same inputs
emits nothing the second time. The rules, with a completion band b:

- **Pause.** A leg ahead of the slowest leg by more than b pauses. It resumes once within b/2:
  the hysteresis keeps a leader from flapping on and off at the edge while the laggard closes.
- **Catch up.** A leg behind the basket's schedule by more than b/2 goes to `CATCH_UP`; it
  returns to `NORMAL` once within b/4. Pausing wins over catching up: staying in step matters
  more than the clock, so a leg ahead of the slowest by more than b/2 does not catch up
  either (it would only run into the band and pause again); it trades at the normal pace.
- **Shrink.** A leg is *stuck* while it is blocked (slippage cap, venue down, rejected: the
  caller says so), or while it is behind the schedule by more than b and holds others back
  (some leg is ahead of it by more than b/2 — a basket that is slow as a whole is in step, and
  carries on past its horizon rather than shrinking). A leg stuck for longer than the grace
  period shrinks the basket to what the laggard can achieve, as a fraction of the original
  basket: a blocked leg, its filled fraction (the basket ends where it stands); a leg still
  trading, its filled fraction projected to the end of the horizon at its pace so far (p/s at
  schedule fraction s), but never less than the largest fraction any leg already holds — the
  leaders stop where they are and the laggard is asked to reach them, past the horizon if
  need be, rather than leave the basket out of ratio. Every leg's target becomes original ×
  fraction, snapped down to its lot, never below what it has filled: a leader already past
  the new in-ratio size (only when a blocked leg ends the basket) keeps its fills and the
  excess is reported in `BasketShrunk.excess_qty` for the failure policy to unwind or hedge
  (cutting a target never sells back). After a shrink every grace period starts again, and a
  stuck leg that can achieve no less than the current size changes nothing.

In **risk** mode the band is a dollar limit L on the imbalance risk sqrt(uᵀΣu), computed by the
caller's `risk_of(progress)`. Above L, every leg ahead of the slowest pauses and the slowest
catches up; the legs resume once the risk is under L/2. Under the limit a leg behind the
schedule by more than `catch_up_lag`, and not ahead of the slowest by more, catches up. A leg
is stuck while it is blocked, or while it is the slowest leg with the risk over the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal

import msgspec

from actors.messages import LegProgress, LegStatus
from actors.schedule import Mode
from actors.spec import DEFAULT_BAND
from venues.model import Instrument

# Leave a pause (catch-up, risk alarm) only once the gap is this fraction of what entered it.
RESUME = 0.5

_ZERO = Decimal(0)
_ONE = Decimal(1)

RiskOf = Callable[[Mapping[str, LegProgress]], float]
"""The dollar risk of the basket's imbalance, sqrt(uᵀΣu), from the legs' progress."""


class AdjustLeg(msgspec.Struct, frozen=True, kw_only=True):
    """Work leg `leg_id` in `mode`; with `target_qty`, also cut its target to that."""

    leg_id: str
    mode: Mode
    target_qty: Decimal | None
    reason: str
    ts_ns: int


class BasketShrunk(msgspec.Struct, frozen=True, kw_only=True):
    """The basket's targets were cut to stay in ratio at a smaller size."""

    fraction: float  # of the original basket now targeted
    previous_fraction: float
    reason: str
    laggards: list[str]  # the legs stuck past the grace period, the one that set the size first
    targets: dict[str, Decimal]  # every leg's target after the cut
    shortfall_qty: dict[str, Decimal]  # original target − new target, every leg
    excess_qty: dict[str, Decimal]  # filled beyond the in-ratio size (legs already past it)
    ts_ns: int


SyncEffect = AdjustLeg | BasketShrunk


class Synchronizer:
    """The basket's rules for keeping its legs in step (see the module docstring)."""

    def __init__(
        self,
        targets: Mapping[str, Decimal],
        instruments: Mapping[str, Instrument],
        band: float | None,
        grace_ns: int,
        *,
        risk_limit_usd: float | None = None,
        risk_of: RiskOf | None = None,
        catch_up_lag: float | None = None,
    ) -> None:
        """Give `band` (a completion fraction), or `risk_limit_usd` with `risk_of`.

        `catch_up_lag` is how far behind the schedule a leg may fall before it catches up:
        b/2 by default in band mode, `DEFAULT_BAND`/2 in risk mode.
        """
        if not targets:
            raise ValueError("targets: a basket needs at least one leg")
        missing = sorted(set(targets) - set(instruments))
        if missing:
            raise ValueError(f"instruments: no instrument for legs {missing}")
        for leg, qty in targets.items():
            if qty < 0:
                raise ValueError(f"targets[{leg!r}]: {qty} is negative")
        if (band is None) == (risk_limit_usd is None):
            raise ValueError("band, risk_limit_usd: give exactly one of them")
        if band is not None and not 0 < band < 1:
            raise ValueError(f"band: {band} is outside (0, 1); a completion fraction")
        if risk_limit_usd is not None:
            if not risk_limit_usd > 0:
                raise ValueError(f"risk_limit_usd: {risk_limit_usd} must be positive")
            if risk_of is None:
                raise ValueError("risk_of: the risk band needs a function for the imbalance risk")
        if grace_ns < 0:
            raise ValueError(f"grace_ns: {grace_ns} must be 0 or more")
        self.band = band
        self.grace_ns = grace_ns
        self.risk_limit_usd = risk_limit_usd
        self._risk_of = risk_of
        if catch_up_lag is None:
            catch_up_lag = (band if band is not None else DEFAULT_BAND) / 2
        self.catch_up_lag = catch_up_lag
        self.instruments = dict(instruments)
        self.original: dict[str, Decimal] = dict(targets)
        self.targets: dict[str, Decimal] = dict(targets)
        self.fraction = _ONE  # of the original basket
        self.modes: dict[str, Mode] = dict.fromkeys(targets, Mode.NORMAL)
        self.risk_over = False  # risk mode: the alarm is on (until the risk is under L/2)
        self._stuck_since: dict[str, int] = {}

    # -- the control step ------------------------------------------------------------------
    def evaluate(
        self,
        progress: Mapping[str, LegProgress],
        schedule_progress: float,
        now_ns: int,
        blocked: Mapping[str, bool] | None = None,
        deferred: Collection[str] = (),
    ) -> list[SyncEffect]:
        """The changes to make now, given each leg's newest snapshot.

        `schedule_progress` is the basket's scheduled completion fraction at `now_ns`
        (`actors.schedule.scheduled_fraction`); `blocked` flags legs that cannot progress.
        A leg without a snapshot counts as nothing filled; a `FAILED` leg as blocked.
        `deferred` legs have not started (their collateral is still being routed; the hedge
        holds what they would offset): they neither hold the others back nor shrink the
        basket, and are not adjusted until they start.
        """
        s = min(max(float(schedule_progress), 0.0), 1.0)
        every = {
            leg: progress[leg].filled_qty if leg in progress else _ZERO for leg in self.targets
        }
        filled = {leg: q for leg, q in every.items() if leg not in deferred}
        if not filled:
            return []
        stopped = {
            leg
            for leg in self.targets
            if (blocked or {}).get(leg, False)
            or (leg in progress and progress[leg].status is LegStatus.FAILED)
        }
        risk = None
        if self._risk_of is not None and self.risk_limit_usd is not None:
            risk = self._risk_of(progress)
            limit = self.risk_limit_usd
            self.risk_over = risk > limit or (self.risk_over and risk > limit * RESUME)

        desired = self._desired(filled, s, risk)
        stuck = self._stuck(filled, s, stopped, desired)
        for leg in list(self._stuck_since):
            if leg not in stuck:
                del self._stuck_since[leg]
        for leg in stuck:
            self._stuck_since.setdefault(leg, now_ns)
        overdue = {
            leg: why
            for leg, why in stuck.items()
            if now_ns - self._stuck_since[leg] > self.grace_ns
        }

        prior = dict(self.targets)
        shrunk = self._shrink(overdue, every, s, stopped, now_ns) if overdue else None
        if shrunk is not None:
            self._stuck_since.clear()
            desired = self._desired(filled, s, risk)

        effects: list[SyncEffect] = []
        for leg, (mode, why) in desired.items():
            cut = self.targets[leg] != prior[leg]
            if mode is self.modes[leg] and not cut:
                continue
            self.modes[leg] = mode
            effects.append(
                AdjustLeg(
                    leg_id=leg,
                    mode=mode,
                    target_qty=self.targets[leg] if cut else None,
                    reason=f"{shrunk.reason}; {why}" if cut and shrunk is not None else why,
                    ts_ns=now_ns,
                )
            )
        if shrunk is not None:
            effects.append(shrunk)
        return effects

    # -- the rules -------------------------------------------------------------------------
    def progress_of(self, leg: str, filled: Decimal) -> float:
        """p = filled / target against the current (possibly cut) target; 1 when empty."""
        target = self.targets[leg]
        return 1.0 if target <= 0 else float(filled / target)

    def _desired(
        self, filled: Mapping[str, Decimal], s: float, risk: float | None
    ) -> dict[str, tuple[Mode, str]]:
        p = {leg: self.progress_of(leg, q) for leg, q in filled.items()}
        slowest = min(p, key=lambda leg: p[leg])
        p_min = p[slowest]
        out: dict[str, tuple[Mode, str]] = {}
        for leg, p_i in p.items():
            current = self.modes[leg]
            if filled[leg] >= self.targets[leg]:
                out[leg] = (current, "done")  # a finished leg sends nothing whatever its mode
                continue
            lead, behind = p_i - p_min, s - p_i
            if risk is not None:
                if self.risk_over:
                    limits = (
                        f"imbalance risk ${risk:,.0f} over the ${self.risk_limit_usd:,.0f} limit"
                    )
                    if p_i <= p_min:
                        out[leg] = (Mode.CATCH_UP, f"{limits}; the slowest leg")
                    else:
                        out[leg] = (Mode.PAUSE, f"{limits}; ahead of {slowest} by {lead:.4f}")
                    continue
            elif self.band is not None:
                b = self.band
                if lead > b or (current is Mode.PAUSE and lead > b * RESUME):
                    out[leg] = (
                        Mode.PAUSE,
                        f"ahead of the slowest leg {slowest} by {lead:.4f} (band {b})",
                    )
                    continue
            lag = self.catch_up_lag
            laggard = lead <= lag
            if laggard and (behind > lag or (current is Mode.CATCH_UP and behind > lag * RESUME)):
                out[leg] = (Mode.CATCH_UP, f"behind the schedule by {behind:.4f} (lag {lag})")
            else:
                out[leg] = (Mode.NORMAL, "in step")
        return out

    def _stuck(
        self,
        filled: Mapping[str, Decimal],
        s: float,
        stopped: set[str],
        desired: Mapping[str, tuple[Mode, str]],
    ) -> dict[str, str]:
        """The legs that cannot keep up now, and why."""
        p = {leg: self.progress_of(leg, q) for leg, q in filled.items()}
        p_min, p_max = min(p.values()), max(p.values())
        out: dict[str, str] = {}
        for leg, p_i in p.items():
            if filled[leg] >= self.targets[leg]:
                continue
            if leg in stopped:
                out[leg] = "blocked"
            elif self.band is not None:
                b = self.band
                if desired[leg][0] is not Mode.PAUSE and s - p_i > b and p_max - p_i > b / 2:
                    out[leg] = f"behind the schedule by {s - p_i:.4f} (band {b})"
            elif self.risk_over and p_i <= p_min:
                out[leg] = "the slowest leg with the imbalance risk over the limit"
        return out

    def _shrink(
        self,
        overdue: Mapping[str, str],
        filled: Mapping[str, Decimal],
        s: float,
        stopped: set[str],
        now_ns: int,
    ) -> BasketShrunk | None:
        """Cut every target to the fraction the worst stuck leg can achieve, if that cuts."""
        # What the legs already hold: a leg still trading is never asked to stop short of it,
        # since cutting below the leaders' fills would only leave the basket further out of
        # ratio (the leaders cannot give back what they bought).
        held = max(
            (filled[leg] / original for leg, original in self.original.items() if original > 0),
            default=_ZERO,
        )
        achievable: dict[str, Decimal] = {}
        for leg in overdue:
            if leg in stopped or s <= 0:
                # A blocked leg achieves what it has; the basket ends where it stands.
                achievable[leg] = filled[leg] / self.original[leg]
            else:
                pace = filled[leg] / self.targets[leg] / Decimal(str(s))
                achievable[leg] = max(self.fraction * min(pace, _ONE), held)
        worst = min(achievable, key=lambda leg: achievable[leg])
        fraction = min(achievable[worst], self.fraction)
        if fraction >= self.fraction:
            return None
        targets: dict[str, Decimal] = {}
        excess: dict[str, Decimal] = {}
        for leg, original in self.original.items():
            in_ratio = self.instruments[leg].snap_qty(original * fraction)
            if filled[leg] > in_ratio:
                excess[leg] = filled[leg] - in_ratio
            targets[leg] = min(max(in_ratio, filled[leg]), self.targets[leg])
        if targets == self.targets:
            return None
        laggards = sorted(overdue, key=lambda leg: (achievable[leg], leg))
        why = "; ".join(f"{leg} {overdue[leg]}" for leg in laggards)
        grace_s = self.grace_ns / 1e9
        event = BasketShrunk(
            fraction=float(fraction),
            previous_fraction=float(self.fraction),
            reason=f"basket shrunk to {float(fraction):.4f}: {why} for over {grace_s:g} s",
            laggards=laggards,
            targets=targets,
            shortfall_qty={leg: self.original[leg] - t for leg, t in targets.items()},
            excess_qty=excess,
            ts_ns=now_ns,
        )
        self.targets = targets
        self.fraction = fraction
        return event
