"""The synchronizer: keeps a basket's legs in step — leaders pause, laggards speed up, and, as
the last resort, the basket shrinks by what a laggard cannot deliver (DESIGN §5.5).

`Synchronizer.evaluate` compares the legs' completion p_i = filled_i / target_i and returns the
changes to make: an `AdjustLeg` for each leg whose mode or target changes, and a
`BasketShrunk` or `BasketRestored` event when the basket's size changes. It emits changes
only, so calling it twice with the same inputs emits nothing the second time. The rules, with
a completion band b:

- **Pause.** A leg ahead of the slowest leg by more than b pauses. It resumes once within b/2:
  the hysteresis keeps a leader from flapping on and off at the edge while the laggard closes.
- **Catch up.** A leg behind the basket's schedule by more than b/2 goes to `CATCH_UP`; it
  returns to `NORMAL` once within b/4. Pausing wins over catching up: staying in step matters
  more than the clock, so a leg ahead of the slowest by more than b/2 does not catch up
  either (it would only run into the band and pause again); it trades at the normal pace.
- **Stuck.** A leg is *stuck* while it is blocked (slippage cap, venue down, rejected: the
  caller says so), or while it is behind the schedule by more than b and holds others back
  (some leg is ahead of it by more than b/2 — a basket that is slow as a whole is in step, and
  carries on past its horizon rather than shrinking). A leg stuck for longer than the grace
  period *limits* the basket until it can deliver its whole size again.
- **Shrink by what the laggards cannot deliver.** The basket's size f (a fraction of the
  original) is the least that a limiting leg can still deliver by the horizon, re-estimated
  at every step from why it is stuck:
  - a blocked leg delivers nothing more until it can trade again (its price comes back inside
    its cap, its venue answers): f_i = filled_i / original_i;
  - a leg still trading delivers at its achievable rate, r_i = what it filled per unit of the
    schedule since its trouble began (measured over at least one grace period; until then —
    a leg just back inside its cap — the schedule's own rate, original_i per unit), over the
    schedule still to run: f_i = min(1, (filled_i + r_i·(1 − s)) / original_i).
  f moves in steps of at least `RESIZE_STEP` of the basket, twice that to turn back (back to
  the whole size at once).
- **Reversible until the horizon.** Before the horizon a cut is *soft*: the synchronizer's
  targets (original × f, snapped down to the lot, never below filled) measure progress and
  the band, and a leg that reached its cut target pauses, but no leg's own target is cut. A
  soft cut is therefore reversible: when a limiting leg's estimate rises (its price came back,
  it trades faster) the basket's size rises with it — never above the original — and a leg
  whose estimate reaches its whole size stops limiting. A limiting leg is never paused: it
  trades (catching up while behind its original schedule) to win the size back.
- **Final at the horizon.** From the horizon on a cut is *final*: every leg's own target is
  cut (an `AdjustLeg` with `target_qty`), so that the basket ends — to the fills of a leg
  blocked for longer than the grace period, and otherwise (a leg still trading, or blocked
  only a moment) to the largest fraction any leg already holds: the leaders stop where they
  are and the laggard is asked to reach them, past the horizon if need be. A final cut only
  ever cuts, and is never restored (the legs cannot take a target back). A leader already
  past the in-ratio size keeps its fills and the excess is reported in
  `BasketShrunk.excess_qty` for the failure policy to unwind or hedge (cutting a target never
  sells back).

So a basket ends when every leg reached its (possibly restored) target, or, short of it, at the
horizon (plus the grace a newly blocked leg is given): never early because it was shrunk.

**Resting legs.** A leg whose child orders rest on the book (`passive`) fills when the market
trades into its quote, at a moment none of its partners chose, so the band alone would let a
whole quote's fill stand naked until the partners' own quotes happen to fill. Each such leg
has a *step* s (`resting`), the gap it lets stand waiting for its own quote rather than
cross: the basket gives from 0.3 to 1.5 regular slices of progress by how often the leg's
quotes fill, within b/2 (`actors.basket.resting_steps`), and changes it as the leg's
snapshots come (`set_steps`). A gap is the trailing leg's to close, so its step holds it:
- a resting leg ahead of the slowest leg by more than the slowest's step (its own, when the
  slowest does not rest) pauses (its quote is pulled) until within half that;
- a resting leg behind the leader by more than its own step goes to `CATCH_UP` until within
  s/2, and is told the leader's progress as a quantity (`AdjustLeg.reach_qty`: the leader's
  completion × its own target, on the lot grid, re-sent as the leader fills more). It
  crosses to that at once, rather than to its schedule once an interval, and keeps its
  quote resting beside the IOC (never more than its target between them).
Before these, the band's own pause applies; after them, the schedule's catch-up. A leg that
does not rest keeps the band's rules, whatever its partners do.

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
# The basket's size moves by at least this share of it (a trading laggard's estimate drifts).
RESIZE_STEP = Decimal("0.01")

_ZERO = Decimal(0)
_ONE = Decimal(1)

RiskOf = Callable[[Mapping[str, LegProgress]], float]
"""The dollar risk of the basket's imbalance, sqrt(uᵀΣu), from the legs' progress."""


class AdjustLeg(msgspec.Struct, frozen=True, kw_only=True):
    """Work leg `leg_id` in `mode`; with `target_qty`, also cut its target to that. A resting
    leg told to cross after its partners (**Resting legs**) gets `reach_qty`: the fills their
    progress calls for, which it crosses to at once."""

    leg_id: str
    mode: Mode
    target_qty: Decimal | None
    reason: str
    ts_ns: int
    reach_qty: Decimal | None = None


class BasketShrunk(msgspec.Struct, frozen=True, kw_only=True):
    """The basket's targets were cut to stay in ratio at a smaller size."""

    fraction: float  # of the original basket now targeted
    previous_fraction: float
    reason: str
    laggards: list[str]  # the legs that limit the basket, the one that set the size first
    targets: dict[str, Decimal]  # every leg's target after the cut
    shortfall_qty: dict[str, Decimal]  # original target − new target, every leg
    excess_qty: dict[str, Decimal]  # filled beyond the in-ratio size (legs already past it)
    ts_ns: int
    final: bool = False  # the legs' own targets were cut (at the horizon): not reversible


class BasketRestored(msgspec.Struct, frozen=True, kw_only=True):
    """A soft cut was (partly) undone: a limiting leg can deliver more again."""

    fraction: float  # of the original basket now targeted (1.0: the whole basket)
    previous_fraction: float
    reason: str
    laggards: list[str]  # the legs that still limit it
    targets: dict[str, Decimal]
    ts_ns: int


SyncEffect = AdjustLeg | BasketShrunk | BasketRestored


class _Trouble(msgspec.Struct, kw_only=True):
    """Why a leg is stuck, since when, and what it had filled when its trouble began."""

    blocked: bool
    why: str  # "at its slippage cap", "behind the schedule", …
    since_ns: int  # stuck since (the grace period runs from here)
    window_ns: int  # this kind of trouble (blocked, or trading slowly) since
    window_s: float  # the schedule's fraction then
    window_filled: Decimal


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
        start_ns: int = 0,
        resting: Mapping[str, float] | None = None,
    ) -> None:
        """Give `band` (a completion fraction), or `risk_limit_usd` with `risk_of`.

        `catch_up_lag` is how far behind the schedule a leg may fall before it catches up:
        b/2 by default in band mode, `DEFAULT_BAND`/2 in risk mode. `start_ns`: the basket's
        start, the zero of the times its reasons give ("since 371 s"). `resting`: the legs
        whose child orders rest on the book (`passive`), each with its step tolerance
        (**Resting legs** in the module docstring).
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
        _check_steps(resting or {}, targets, "a leg of the basket")
        self.band = band
        self.grace_ns = grace_ns
        self.start_ns = start_ns
        self.risk_limit_usd = risk_limit_usd
        self._risk_of = risk_of
        if catch_up_lag is None:
            catch_up_lag = (band if band is not None else DEFAULT_BAND) / 2
        self.catch_up_lag = catch_up_lag
        self.resting: dict[str, float] = dict(resting or {})
        self._reach_told: dict[str, Decimal | None] = dict.fromkeys(targets)
        self._crossing: set[str] = set()  # resting legs crossing after their partners, now
        self.instruments = dict(instruments)
        self.original: dict[str, Decimal] = dict(targets)
        # In-ratio targets at the basket's current size (soft cuts included): the band's.
        self.targets: dict[str, Decimal] = dict(targets)
        # The legs' own targets: cut only by a final cut, and never raised again.
        self.committed: dict[str, Decimal] = dict(targets)
        self._told: dict[str, Decimal] = dict(targets)  # what each leg was last told
        self.fraction = _ONE  # of the original basket now targeted
        self.final_fraction = _ONE  # no soft size may exceed the last final cut
        self.reason = ""  # why the basket is smaller than ordered ("" at its whole size)
        self.modes: dict[str, Mode] = dict.fromkeys(targets, Mode.NORMAL)
        self.risk_over = False  # risk mode: the alarm is on (until the risk is under L/2)
        self.limiting: dict[str, _Trouble] = {}  # stuck past the grace period
        self._stuck: dict[str, _Trouble] = {}  # stuck, within the grace period
        self._last_down = True  # the basket's size last moved down (or never moved)

    def set_steps(self, steps: Mapping[str, float]) -> None:
        """Change resting legs' steps (`resting`: the legs given at construction only)."""
        _check_steps(steps, self.resting, "a resting leg")
        self.resting.update(steps)

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
            leg: _trouble(progress.get(leg))
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
        self._track(self._stuck_now(filled, s, stopped, desired), stopped, every, s, now_ns)
        resized = self._resize(every, s, stopped, now_ns)
        if resized is not None:
            desired = self._desired(filled, s, risk)

        effects: list[SyncEffect] = []
        for leg, (mode, why) in desired.items():
            cut = self.committed[leg] < self._told[leg]
            reach = self._reach_of(leg, mode, filled)
            if mode is self.modes[leg] and not cut and reach == self._reach_told[leg]:
                continue
            self.modes[leg] = mode
            self._reach_told[leg] = reach
            if cut:
                self._told[leg] = self.committed[leg]
            effects.append(
                AdjustLeg(
                    leg_id=leg,
                    mode=mode,
                    target_qty=self.committed[leg] if cut else None,
                    reason=f"{self.reason}; {why}" if cut and self.reason else why,
                    ts_ns=now_ns,
                    reach_qty=reach,
                )
            )
        if resized is not None:
            effects.append(resized)
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
        self._crossing = set()
        slowest = min(p, key=lambda leg: p[leg])
        p_min = p[slowest]
        leader = max(p, key=lambda leg: p[leg])
        p_max = p[leader]
        lag = self.catch_up_lag
        out: dict[str, tuple[Mode, str]] = {}
        for leg, p_i in p.items():
            current = self.modes[leg]
            if filled[leg] >= self.committed[leg]:
                out[leg] = (current, "done")  # a finished leg sends nothing whatever its mode
                continue
            if leg in self.limiting:
                # It sets the basket's size: it trades to win size back, never held.
                original = self.original[leg]
                behind = s - (float(filled[leg] / original) if original > 0 else 1.0)
                if behind > lag or (current is Mode.CATCH_UP and behind > lag * RESUME):
                    out[leg] = (Mode.CATCH_UP, f"limits the basket's size: {self.reason}")
                else:
                    out[leg] = (Mode.NORMAL, f"limits the basket's size: {self.reason}")
                continue
            if filled[leg] >= self.targets[leg]:
                # At the basket's (soft) cut size: held there, its own target untouched, so
                # that the size can be restored.
                out[leg] = (Mode.PAUSE, f"held at the basket's size: {self.reason}")
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
            if leg in self.resting:
                step = self._in_step(leg, current, lead, p_max - p_i, slowest, leader)
                if step is not None:
                    out[leg] = step
                    if step[0] is Mode.CATCH_UP:
                        self._crossing.add(leg)
                    continue
            laggard = lead <= lag
            if laggard and (behind > lag or (current is Mode.CATCH_UP and behind > lag * RESUME)):
                out[leg] = (Mode.CATCH_UP, f"behind the schedule by {behind:.4f} (lag {lag})")
            else:
                out[leg] = (Mode.NORMAL, "in step")
        return out

    def _reach_of(self, leg: str, mode: Mode, filled: Mapping[str, Decimal]) -> Decimal | None:
        """What a resting leg crossing after its partners must fill to stand with the leader:
        the leader's progress × its own target, on the lot grid (None for any other leg)."""
        if mode is not Mode.CATCH_UP or leg not in self._crossing:
            return None
        lead = max(self.progress_of(other, q) for other, q in filled.items())
        want = Decimal(str(min(lead, 1.0))) * self.targets[leg]
        return self.instruments[leg].snap_qty(min(want, self.committed[leg]))

    def _in_step(
        self, leg: str, current: Mode, lead: float, gap: float, slowest: str, leader: str
    ) -> tuple[Mode, str] | None:
        """A resting leg's mode by its partners' fills (**Resting legs**), or None to go by
        the schedule: its quote pulled while it leads the slowest leg by more than the
        slowest leg's step (its own, when the slowest does not rest), and crossing while the
        leader leads it by more than its own step, each left at `RESUME` × the step."""
        held = self.resting.get(slowest, self.resting[leg])
        if lead > held or (current is Mode.PAUSE and lead > held * RESUME):
            return (
                Mode.PAUSE,
                f"quote pulled: ahead of {slowest} by {lead:.4f} (step {held:.4f})",
            )
        tol = self.resting[leg]
        if gap > tol or (current is Mode.CATCH_UP and gap > tol * RESUME):
            return (Mode.CATCH_UP, f"crossing: {leader} ahead by {gap:.4f} (step {tol:.4f})")
        return None

    def _stuck_now(
        self,
        filled: Mapping[str, Decimal],
        s: float,
        stopped: Mapping[str, str],
        desired: Mapping[str, tuple[Mode, str]],
    ) -> dict[str, str]:
        """The legs, not yet limiting the basket, that cannot keep up now, and why."""
        p = {leg: self.progress_of(leg, q) for leg, q in filled.items()}
        p_min, p_max = min(p.values()), max(p.values())
        out: dict[str, str] = {}
        for leg, p_i in p.items():
            if filled[leg] >= self.targets[leg] or leg in self.limiting:
                continue
            if leg in stopped:
                out[leg] = stopped[leg]
            elif self.band is not None:
                b = self.band
                if desired[leg][0] is not Mode.PAUSE and s - p_i > b and p_max - p_i > b / 2:
                    out[leg] = "behind the schedule"
            elif self.risk_over and p_i <= p_min:
                out[leg] = "the slowest leg with the imbalance risk over the limit"
        return out

    def _track(
        self,
        stuck: Mapping[str, str],
        stopped: Mapping[str, str],
        every: Mapping[str, Decimal],
        s: float,
        now_ns: int,
    ) -> None:
        """Start, carry on or end each leg's trouble; a leg stuck past the grace period
        limits the basket. A limiting leg's rate is measured afresh when its trouble changes
        kind (blocked, or trading slowly)."""
        for leg in list(self._stuck):
            if leg not in stuck:
                del self._stuck[leg]
        for leg, why in stuck.items():
            t = self._stuck.get(leg)
            if t is None:
                t = self._stuck[leg] = _Trouble(
                    blocked=leg in stopped,
                    why=why,
                    since_ns=now_ns,
                    window_ns=now_ns,
                    window_s=s,
                    window_filled=every[leg],
                )
            else:
                _carry_on(t, leg in stopped, why, every[leg], s, now_ns)
            if now_ns - t.since_ns > self.grace_ns:
                self.limiting[leg] = self._stuck.pop(leg)
        for leg, t in self.limiting.items():
            blocked = leg in stopped
            if blocked:
                why = stopped[leg]
            elif not t.blocked:
                why = t.why
            elif self.band is not None:
                why = "behind the schedule"
            else:
                why = "the slowest leg with the imbalance risk over the limit"
            _carry_on(t, blocked, why, every[leg], s, now_ns)

    def _reach(self, leg: str, t: _Trouble, filled: Decimal, s: float, now_ns: int) -> Decimal:
        """The fraction of its original size the leg can still deliver by the horizon."""
        original = self.original[leg]
        if original <= 0:
            return _ONE
        have = filled / original
        if t.blocked or s >= 1:
            return have  # nothing more until it can trade again (or no time is left)
        span = Decimal(repr(s - t.window_s))
        if now_ns - t.window_ns >= self.grace_ns and span > 0:
            rate = (filled - t.window_filled) / span  # what it achieved since its trouble began
        else:
            rate = original  # not measured yet (it just came back): the schedule's rate
        return min(_ONE, (filled + rate * Decimal(repr(1 - s))) / original)

    def _resize(
        self,
        every: Mapping[str, Decimal],
        s: float,
        stopped: Mapping[str, str],
        now_ns: int,
    ) -> BasketShrunk | BasketRestored | None:
        """Set the basket's size to what its limiting legs can deliver (module docstring)."""
        reach = {
            leg: self._reach(leg, t, every[leg], s, now_ns) for leg, t in self.limiting.items()
        }
        freed = sorted(
            leg for leg, r in reach.items() if r >= 1 or every[leg] >= self.committed[leg]
        )
        for leg in freed:
            del self.limiting[leg]
            del reach[leg]
        if s >= 1 and reach:
            cut = self._cut_for_good(every, reach, now_ns)
            if cut is not None or self.final_fraction < 1:
                return cut
            reach = dict.fromkeys(reach, _ONE)  # a leader holds it all: the laggard follows
        fraction = min(min(reach.values(), default=_ONE), self.final_fraction)
        # A trading laggard's estimate wobbles with its slices: a move back the other way
        # needs twice the step, so that the size does not saw up and down.
        step = abs(fraction - self.fraction)
        down = fraction < self.fraction
        least = RESIZE_STEP if down == self._last_down else 2 * RESIZE_STEP
        if fraction == self.fraction or (fraction < self.final_fraction and step < least):
            return None
        self._last_down = down
        laggards = sorted(reach, key=lambda leg: (reach[leg], leg))
        previous = self.fraction
        excess = self._set_size(fraction, every, final=False)
        if fraction < previous:
            self.reason = f"shrunk to {_pct(fraction)}: {self._why(laggards, reach)}"
            return self._shrunk(fraction, previous, laggards, excess, now_ns, final=False)
        at = (now_ns - self.start_ns) / 1e9
        if laggards:
            why = self._why(laggards, reach)
        else:
            whose = "its" if len(freed) == 1 else "their"
            why = f"{', '.join(freed)} can deliver {whose} whole size again at {at:.0f} s"
        reason = f"restored to {_pct(fraction)}: {why}"
        self.reason = "" if fraction >= 1 else reason
        return BasketRestored(
            fraction=float(fraction),
            previous_fraction=float(previous),
            reason=reason,
            laggards=laggards,
            targets=dict(self.targets),
            ts_ns=now_ns,
        )

    def _cut_for_good(
        self, every: Mapping[str, Decimal], reach: Mapping[str, Decimal], now_ns: int
    ) -> BasketShrunk | None:
        """The horizon: cut the legs' own targets so that the basket ends."""
        # A leg still trading is never asked to stop short of what a leader holds: cutting
        # below the leaders' fills would only leave the basket further out of ratio (they
        # cannot give back what they bought). A leg blocked past the grace ends it as it is.
        held = max(
            (every[leg] / original for leg, original in self.original.items() if original > 0),
            default=_ZERO,
        )
        ends: dict[str, Decimal] = {}
        for leg, r in reach.items():
            t = self.limiting[leg]
            ends[leg] = r if t.blocked and now_ns - t.window_ns > self.grace_ns else max(r, held)
        fraction = min(*ends.values(), self.final_fraction)
        if fraction >= self.final_fraction:
            return None  # no further cut (at the whole size: the laggard reaches the leaders)
        previous = self.fraction
        excess = self._set_size(fraction, every, final=True)
        laggards = sorted(ends, key=lambda leg: (ends[leg], leg))
        at = (now_ns - self.start_ns) / 1e9
        self.reason = (
            f"shrunk to {_pct(fraction)}: {self._why(laggards, ends, final=True)} "
            f"(final at {at:.0f} s)"
        )
        return self._shrunk(fraction, previous, laggards, excess, now_ns, final=True)

    def _set_size(
        self, fraction: Decimal, every: Mapping[str, Decimal], *, final: bool
    ) -> dict[str, Decimal]:
        """Every leg's target at `fraction` of the original (snapped down, never below its
        fills nor above its own target); a final size also cuts the legs' own targets.
        Returns the legs' fills beyond the in-ratio size."""
        excess: dict[str, Decimal] = {}
        for leg, original in self.original.items():
            in_ratio = self.instruments[leg].snap_qty(original * fraction)
            if every[leg] > in_ratio:
                excess[leg] = every[leg] - in_ratio
            target = min(max(in_ratio, every[leg]), self.committed[leg])
            self.targets[leg] = target
            if final:
                self.committed[leg] = min(target, self.committed[leg])
        self.fraction = fraction
        if final:
            self.final_fraction = fraction
        return excess

    def _shrunk(
        self,
        fraction: Decimal,
        previous: Decimal,
        laggards: list[str],
        excess: dict[str, Decimal],
        now_ns: int,
        *,
        final: bool,
    ) -> BasketShrunk:
        """The event of a cut to `fraction` (from `previous`), with the reason just set."""
        return BasketShrunk(
            fraction=float(fraction),
            previous_fraction=float(previous),
            reason=self.reason,
            laggards=laggards,
            targets=dict(self.targets),
            shortfall_qty={leg: self.original[leg] - t for leg, t in self.targets.items()},
            excess_qty=excess,
            ts_ns=now_ns,
            final=final,
        )

    def _why(self, legs: list[str], reach: Mapping[str, Decimal], *, final: bool = False) -> str:
        """Each limiting leg, why and since when; a trading one with its estimate (`final`:
        with what it is asked to reach)."""
        parts = []
        for leg in legs:
            t = self.limiting[leg]
            since = f"since {(t.window_ns - self.start_ns) / 1e9:.0f} s"
            if t.blocked:
                parts.append(f"{leg} {t.why} {since}")
            elif final:
                parts.append(f"{leg} {t.why} {since}, to reach {_pct(reach[leg])} past the horizon")
            else:
                parts.append(f"{leg} {t.why} {since}, on pace for {_pct(reach[leg])}")
        return "; ".join(parts)


def _check_steps(steps: Mapping[str, float], legs: Collection[str], what: str) -> None:
    for leg, tol in steps.items():
        if leg not in legs:
            raise ValueError(f"resting: {leg!r} is not {what}")
        if not 0 < tol < 1:
            raise ValueError(f"resting[{leg!r}]: {tol} is outside (0, 1); a completion share")


def _carry_on(t: _Trouble, blocked: bool, why: str, filled: Decimal, s: float, now: int) -> None:
    """A leg's trouble goes on; a new kind of it (blocked ⇄ trading) restarts its window."""
    t.why = why
    if blocked != t.blocked:
        t.blocked = blocked
        t.window_ns, t.window_s, t.window_filled = now, s, filled


def _trouble(p: LegProgress | None) -> str:
    """Why a blocked leg cannot trade, in a few words, from its snapshot."""
    reason = p.reason if p is not None else ""
    if p is not None and p.status is LegStatus.FAILED:
        return f"failed ({reason})" if reason else "failed"
    if "slippage cap" in reason:
        return "at its slippage cap"
    return f"blocked ({reason})" if reason else "blocked"


def _pct(fraction: Decimal) -> str:
    """62 %, 61.6 %: a share of the basket, to a tenth of a percent."""
    text = f"{float(fraction) * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text} %"
