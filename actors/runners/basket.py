"""`BasketRunner`: a basket's decisions from its fire instant to its report.

The basket's core, `BasketCoordinator`, keeps the legs in step and says when the imbalance
moved, a leg failed, or every leg is done. The runner decides the rest of the basket's run,
live and in the backtest alike:

- **fire**: the instant every leg sends its first order (`fire_at`: far enough ahead that
  every leg hears of it in time, and that a leg on a distant venue can still send one
  one-way trip early), and the order legs start in (all at once, or one after the other in
  the backtest's `sequential` mode);
- **the run**: the coordinator on every snapshot and every tick, the timeline, the
  deadline (horizon + grace + the larger of `min_overrun_s` and the horizon: a basket in
  step but slow as a whole fails there), and silent legs: one unheard of for
  `leg_silence_ns` is pinged, and one that does not answer `PROBE_ATTEMPTS` pings (or whose
  actor is gone) is lost;
- **the failure policy** (DESIGN §5.8): a failed leg under `complete` lets the others go
  on; otherwise, and on a cancel, every leg stops, and under `unwind` every leg (a lost one
  too, through a leg recovered from its venue's records) is traded back to flat;
- **the end**: every leg reconciled with its venue; the hedge closed, or held when the
  legs are out of step; the outcome (COMPLETED only when every leg is reconciled), in the
  lifecycle's table;
- **the report**: the legs' reports (on the basket's clock), the hedge, the skews, the
  TCA.

It reaches the world through its `BasketPort`: time and timers, and calls to its legs and
to the hedge desk, each answered through a callback.

It runs past 600 lines because the end of a basket (policy, recovery, reconciliation,
hedge, outcome) is one sequence of callbacks over one state, and reads best in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from actors.basket import AllDone, BasketCoordinator, ExposureChanged, Launched, LegFailed
from actors.leg import Reconciliation
from actors.lifecycle import BasketLifecycle, BasketState
from actors.messages import LegProgress, LegStatus
from actors.protocol import HedgeStatement
from actors.report import (
    BasketReport,
    CollateralReport,
    HedgeReport,
    LegReport,
    TimelineRecorder,
)
from actors.risk import RiskModel
from actors.runners.leg import Unwound
from actors.runners.port import Clock
from actors.spec import Policy, ResolvedBasket
from actors.sync import AdjustLeg, BasketRestored, BasketShrunk
from actors.tca import basket_tca

log = logging.getLogger(__name__)
NS = 1_000_000_000
S = BasketState
PROBE_ATTEMPTS = 3  # pings, each `leg_silence_ns` long, a quiet leg gets before it is lost


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's figures a basket runs by (`BasketOptions` live, `BacktestSettings`)."""

    tick_ns: int = 100_000_000  # the coordinator's periodic step
    min_overrun_s: float = 60.0
    unwind_deadline_s: float = 30.0
    reconcile_deadline_s: float = 30.0
    leg_silence_ns: int = 3 * NS  # 0: legs are never probed (the backtest's never go quiet)


# What a leg call answers, or the error that stood in for its answer (a lost actor).
Answer = Any


class BasketPort(Clock, Protocol):
    """A basket runner's world: its legs, its hedge desk, and time. A driver answers every
    call, in time: with the error that stood in for the answer when there was none (the
    live shell bounds each leg call, and a lost actor's call fails at once)."""

    def fire(self, leg_id: str, at_ns: int, schedule_ns: int | None = None) -> None:
        """Have the leg send its first order at `at_ns` (basket clock); `schedule_ns`: the
        schedule began then, before (a leg fired late, whose collateral was being moved)."""
        ...

    def adjust(self, adj: AdjustLeg) -> None: ...

    def exposure(self, e: ExposureChanged) -> None:
        """The basket's imbalance, for the hedge desk."""
        ...

    def stop(self, leg_id: str, reason: str, then: Callable[[LegProgress | Exception], None]):
        """Stop the leg; `then` gets its last snapshot (or the error of a lost leg)."""
        ...

    def unwind(self, leg_id: str, within_ns: int, then: Callable[[Unwound | Exception], None]):
        """Trade the leg back to flat within `within_ns`; `then` gets what is left."""
        ...

    def reconcile(
        self, leg_id: str, within_ns: int, then: Callable[[Reconciliation | Exception], None]
    ) -> None: ...

    def recover(self, leg_id: str, then: Callable[[Exception | None], None]) -> None:
        """Bring up a leg afresh from its venue's records of its client order ids (its actor
        was lost): its later calls go to the recovered leg. `then` gets None, or why not."""
        ...

    def resume(
        self, leg_id: str, elapsed_ns: int, then: Callable[[Exception | None], None]
    ) -> None:
        """Like `recover`, then have the leg carry on its schedule, which began `elapsed_ns`
        ago (a taken-over basket that goes on). `then` gets None, or why not."""
        ...

    def ping(self, leg_id: str, within_ns: int, then: Callable[[str | None], None]) -> None:
        """Ask whether the leg lives: `then` gets None (it answered), "timeout", or the
        error that says it is gone."""
        ...

    def close_hedge(self, hold: bool, then: Callable[[HedgeStatement | Exception], None]):
        """Leave the hedge desk (unless `hold`): `then` gets the desk's statement."""
        ...

    def hedge_gross_usd(self) -> float:
        """The hedge desk's gross position as last known."""
        ...

    def sampled(self, core: BasketCoordinator, hedge_usd: float, force: bool) -> None:
        """The basket's state was sampled (metrics)."""
        ...


class BasketRunner:
    """One basket from its fire instant to its report (see the module docstring).
    `lifecycle` comes in ARMING (the driver checked, reserved and armed)."""

    def __init__(
        self,
        basket: ResolvedBasket,
        lifecycle: BasketLifecycle,
        port: BasketPort,
        risk: RiskModel,
        settings: RunSettings,
        *,
        hedge: bool | None = None,
        synchronize: bool = True,
        sequential: bool = False,
        on_end: Callable[[], None] | None = None,
        deferred: Collection[str] = (),
    ) -> None:
        """`deferred`: legs armed but not fired until `fund` (their collateral is being
        routed, `params.on_unfunded = "hedge"`); `unfunded` fails them."""
        self.basket = basket
        self.lifecycle = lifecycle
        self.port = port
        self.risk = risk
        self.settings = settings
        self.hedged = basket.hedge is not None and basket.hedge.enabled if hedge is None else hedge
        self.synchronize = synchronize
        self.sequential = sequential
        self.on_end = on_end
        self.core: BasketCoordinator | None = None
        self.timeline = TimelineRecorder()
        self.notes: list[str] = list(basket.notes)
        self.reason = ""
        self.fire_ns: int | None = None
        self.launched_ns: int | None = None
        self.done_ns: int | None = None  # every leg done (before reconciliation)
        self.completed_ns: int | None = None
        self.deadline_ns = 0
        self.failure: str | None = None
        self.failure_soft: str | None = None  # a leg failed under policy `complete`
        self.cancelled: str | None = None
        self.ending = False
        self.finished = False
        self.reconciliations: dict[str, Reconciliation] = {}
        self.unreconciled: dict[str, str] = {}  # leg id → why it could not be reconciled
        self.lost: dict[str, str] = {}  # leg id → why its actor was taken for lost
        self.unrecovered: set[str] = set()  # lost legs that could not be brought up afresh
        self.hedge_statement: HedgeStatement | None = None
        self._queue: list[str] = []  # sequential: legs still to start
        self._heard: dict[str, int] = {}  # leg → basket time of its newest snapshot
        self._probing: set[str] = set()
        self._tick_timer: Any = None
        self._leg_ids = [leg.leg_id for leg in basket.legs]
        self._stuck = ""  # what an unwind left open, in words
        self._resuming = False  # a take-over's legs are being brought up to carry on
        self._end_held = False  # the basket's end waits for them
        # Legs armed but not fired: their collateral is still being routed (`fund`).
        self.deferred: set[str] = set(deferred)
        self.funded_ns: int | None = None

    # -- fire ------------------------------------------------------------------------------
    @staticmethod
    def fire_lead_ns(floor_ns: int, worst_clock_rtt_ns: int, venue_rtts_ns: Sequence[int]) -> int:
        """How far ahead of now the legs fire: the floor (the one fire call to each leg at
        its busiest moment), raised on a loaded node by the measured round trips of the legs'
        clock pings (`4 ×` the worst), plus the largest head start (half a venue's round
        trip, `LegRunner.fire`)."""
        head_start = max((rtt // 2 for rtt in venue_rtts_ns), default=0)
        return max(floor_ns, 4 * worst_clock_rtt_ns) + head_start

    def fire(self, fire_at_ns: int) -> None:
        """RUNNING: every leg sends its first order at `fire_at_ns` (one after the other in
        sequential mode)."""
        basket = self.basket
        self.fire_ns = fire_at_ns
        self.core = BasketCoordinator(
            basket, fire_at_ns, self.risk, hedge=self.hedged, synchronize=self.synchronize
        )
        self.timeline.start(self.core)
        params = basket.params
        overrun_s = max(self.settings.min_overrun_s, params.horizon_s)
        self.deadline_ns = fire_at_ns + int((params.horizon_s + params.grace_s + overrun_s) * NS)
        self._to(S.RUNNING, f"fired: every leg sends at {fire_at_ns} (basket clock)")
        now = self.port.now_ns()
        for leg in basket.legs:
            self._heard[leg.leg_id] = now
        self.core.deferred = set(self.deferred)
        if self.sequential:
            self._queue = [leg.leg_id for leg in basket.legs]
            self._start_next(fire_at_ns)
        else:
            for leg in basket.legs:
                if leg.leg_id not in self.deferred:
                    self.port.fire(leg.leg_id, fire_at_ns)
        self._tick_timer = self.port.call_at(fire_at_ns, self._tick)

    # -- legs whose collateral is being routed (`params.on_unfunded = "hedge"`) ---------------
    def fund(self, fire_at_ns: int) -> None:
        """The deferred legs' collateral has landed: they fire at `fire_at_ns` on the
        basket's schedule (begun at its fire), behind it, and catch up; the synchronizer
        keeps the others in step with them from now on. The basket's deadline moves by as
        long as they waited."""
        core = self.core
        legs = sorted(self.deferred)
        self.deferred.clear()
        if core is None or self.finished or not legs:
            return
        core.deferred.clear()
        if self.fire_ns is not None:
            self.deadline_ns += max(0, fire_at_ns - self.fire_ns)
        self.funded_ns = fire_at_ns
        self.notes.append(f"legs {', '.join(legs)} funded: they fire and catch up")
        for leg_id in legs:
            if not self.ending:
                # On the basket's schedule, begun at its fire: behind it, the leg catches up.
                self.port.fire(leg_id, fire_at_ns, self.fire_ns)

    def unfunded(self, reason: str) -> None:
        """The deferred legs' collateral will not come: each fails (never having sent an
        order), and the basket's failure policy applies."""
        core = self.core
        legs = sorted(self.deferred)
        self.deferred.clear()
        if core is None or self.finished or not legs:
            return
        core.deferred.clear()
        now = self.port.now_ns()
        for leg_id in legs:
            last = core.legs[leg_id]
            failed = msgspec.structs.replace(
                last,
                seq=last.seq + 1,
                status=LegStatus.FAILED,
                reason=f"not funded: {reason}",
                ts_ns=now,
            )
            self.on_progress(failed)

    def take_over(self, fire_at_ns: int | None, reason: str) -> None:
        """Carry on a basket whose actor was lost (DESIGN §9), from a fresh runner; its
        legs' actors went with the basket's, so each is brought up from its venue's
        records. Under policy `complete`, a basket that had fired goes on (within its
        horizon and grace): every leg carries on its schedule from where the venue's
        records leave it (`resume`), kept in step as before, and ends like any other.
        Otherwise, and under any other policy, the loss is
        the basket's failure (`reason`): `unwind` trades every leg back to flat,
        `hedge_and_hold` keeps the hedge; then every leg is reconciled.
        `fire_at_ns`: the journal's fire instant (None: it never fired; the legs are
        still asked, as a fire may have gone out before it was recorded). `lifecycle`
        comes in RUNNING (`BasketLifecycle.take_over`)."""
        basket = self.basket
        fire_at = fire_at_ns if fire_at_ns is not None else self.port.now_ns()
        self.fire_ns = fire_at
        # Its exposure reports are numbered from the take-over instant (ns): past every one
        # the lost actor sent (a count), and those of an earlier successor, so the hedge
        # desk takes them rather than dropping them as stale.
        self.core = BasketCoordinator(
            basket,
            fire_at,
            self.risk,
            hedge=self.hedged,
            synchronize=self.synchronize,
            exposure_seq_from=self.port.now_ns(),
        )
        self.timeline.start(self.core)
        params = basket.params
        in_time = self.port.now_ns() < fire_at + int((params.horizon_s + params.grace_s) * NS)
        if basket.policy is Policy.COMPLETE and fire_at_ns is not None and not self.sequential:
            if in_time:
                self._resume(fire_at, reason)
                return
            reason += "; past its horizon and grace, it does not carry on"
        self.failure = reason  # the cause, whatever the legs' failures say next
        for leg in basket.legs:
            self.leg_lost(leg.leg_id, "the basket actor was lost")
        self._fail(reason)

    def _resume(self, fire_at: int, reason: str) -> None:
        """Policy `complete` after a take-over: every leg recovered and carrying on its
        schedule; one that cannot be is lost (the others go on, as under `complete`)."""
        params = self.basket.params
        overrun_s = max(self.settings.min_overrun_s, params.horizon_s)
        self.deadline_ns = fire_at + int((params.horizon_s + params.grace_s + overrun_s) * NS)
        now = self.port.now_ns()
        self.notes.append(f"{reason}; every leg carries on from its venue's records")
        for leg_id in self._leg_ids:
            self._heard[leg_id] = now

        def resumed(answers: dict[str, Answer]) -> None:
            self._resuming = False
            later = self.port.now_ns()
            for leg_id, error in answers.items():
                self._heard[leg_id] = later
                if error is not None:
                    self.leg_lost(leg_id, f"could not carry on after the take-over: {error}")
            if self._end_held:
                self._end()
            elif not self.ending:
                self._tick_timer = self.port.call_at(later, self._tick)

        # Until every leg has answered, the basket's end (a cancel, every leg done) waits:
        # a leg still being brought up cannot be stopped, and must not be recovered twice.
        self._resuming = True
        self._each(
            lambda leg_id, then: self.port.resume(leg_id, now - fire_at, then),
            resumed,
        )

    def _start_next(self, at_ns: int) -> None:
        if self._queue:
            self.port.fire(self._queue.pop(0), at_ns)

    # -- the run ---------------------------------------------------------------------------
    def on_progress(self, p: LegProgress) -> None:
        """A leg's snapshot, its times already on the basket's clock."""
        core = self.core
        if core is None or self.finished:
            return
        now = self.port.now_ns()
        self._heard[p.leg_id] = now
        before = core.legs[p.leg_id].status
        self._apply(core.on_progress(p, now))
        if (
            self.sequential
            and core.legs[p.leg_id].status is LegStatus.DONE
            and before is not LegStatus.DONE
            and not self.ending
        ):
            self._start_next(now)

    def cancel(self, reason: str) -> None:
        """Stop the basket: no new child orders; the policy decides what happens to fills."""
        if self.cancelled is None and not self.ending and not self.finished:
            self.cancelled = reason
            if self.core is not None:
                self._end()

    def _tick(self) -> None:
        if self.ending or self.core is None:
            return
        core = self.core
        now = self.port.now_ns()
        self._apply(core.tick(now))
        self._sample(now)
        if self.ending:
            return
        if now > self.deadline_ns:
            params = self.basket.params
            overrun_s = max(self.settings.min_overrun_s, params.horizon_s)
            self._fail(
                f"not done {overrun_s + params.grace_s:g} s after its horizon of "
                f"{params.horizon_s:g} s"
            )
            return
        self._check_silence(now)
        self._tick_timer = self.port.call_at(now + self.settings.tick_ns, self._tick)

    def _sample(self, now: int, force: bool = False) -> None:
        assert self.core is not None
        hedge = self.port.hedge_gross_usd()
        self.timeline.add(self.core, now, hedge, force=force)
        self.port.sampled(self.core, hedge, force)

    def _apply(self, effects: Sequence[object]) -> None:
        # The hedge hears first: every call made before its own (the legs' adjustments)
        # would delay it, and the exposure is what is at risk meanwhile.
        for effect in sorted(effects, key=lambda e: not isinstance(e, ExposureChanged)):
            match effect:
                case AdjustLeg():
                    self.port.adjust(effect)
                case BasketShrunk() | BasketRestored():
                    # The basket's size changed: what the status line says while it runs.
                    self.notes.append(effect.reason)
                    if not self.ending:
                        self.reason = effect.reason
                case Launched():
                    self.launched_ns = effect.ts_ns
                case LegFailed():
                    self._on_leg_failed(effect)
                case ExposureChanged():
                    if self.hedged:
                        self.port.exposure(effect)
                case AllDone():
                    if not self.ending:
                        self.done_ns = effect.ts_ns
                        self._end()
                case _:
                    raise AssertionError(f"unexpected effect {effect!r}")

    def _on_leg_failed(self, event: LegFailed) -> None:
        assert self.core is not None
        what = "at launch" if event.at_launch else "while running"
        reason = f"leg {event.leg_id} failed {what}: {event.reason}"
        if self.ending:
            # The basket's end is under way and its outcome decided by what started it; what
            # the leg left is reconciled (and, lost, recovered) like any other's.
            self.notes.append(reason.replace(" while running", " while the basket was ending"))
            return
        if self.basket.policy is Policy.COMPLETE:
            self.notes.append(reason + "; the other legs go on (policy complete)")
            self.failure_soft = self.failure_soft or reason
            self._apply(self.core.stop_synchronizing(self.port.now_ns()))
            return
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._end()

    # -- silent legs -------------------------------------------------------------------------
    def _check_silence(self, now: int) -> None:
        """Ping the legs that have gone quiet; one that does not answer is lost."""
        silence = self.settings.leg_silence_ns
        core = self.core
        if silence <= 0 or core is None:
            return
        for leg_id, last in core.legs.items():
            quiet = now - self._heard.get(leg_id, now)
            finished = last.status in (LegStatus.DONE, LegStatus.FAILED)
            if quiet > silence and not finished and leg_id not in self._probing:
                self._probing.add(leg_id)
                self._probe(leg_id, self.port.now_ns(), 0)

    def _probe(self, leg_id: str, asked_ns: int, attempt: int) -> None:
        # A dead actor fails the ping at once; one that is slow to answer is most often a
        # busy machine's: it is asked again before it is taken for lost (a snapshot
        # meanwhile says it lives).
        def answered(error: str | None) -> None:
            if error is None:  # it answered: heard of, like a snapshot
                self._heard[leg_id] = max(self._heard.get(leg_id, 0), self.port.now_ns())
            if error is None or self._heard.get(leg_id, 0) > asked_ns:
                self._probing.discard(leg_id)
                return
            if error == "timeout" and attempt + 1 < PROBE_ATTEMPTS:
                self._probe(leg_id, asked_ns, attempt + 1)
                return
            self._probing.discard(leg_id)
            self.leg_lost(leg_id, error)

        self.port.ping(leg_id, self.settings.leg_silence_ns, answered)

    def leg_lost(self, leg_id: str, why: str) -> None:
        """The leg's actor (or its node) is gone: the leg fails as its last snapshot left
        it, and its fills are dealt with at the end (recovered from its venue)."""
        core = self.core
        if core is None or leg_id in self.lost or self.finished:
            return
        self.lost[leg_id] = why
        last = core.legs[leg_id]
        now = self.port.now_ns()
        # Nothing it had open will be finished by it: the venue's records say what became of
        # those orders, once the leg is recovered.
        lost = msgspec.structs.replace(
            last,
            seq=last.seq + 1,
            status=LegStatus.FAILED,
            open_qty=Decimal(0),
            blocked=True,
            reason=f"leg actor lost ({why})",
            ts_ns=now,
        )
        self._apply(core.on_progress(lost, now))

    # -- the end ---------------------------------------------------------------------------
    def _end(self) -> None:
        """Every leg done, a failure, or a cancel: the policy, then reconciliation."""
        if self.ending:
            return
        if self._resuming:
            self._end_held = True
            return
        self.ending = True
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self._sample(self.port.now_ns(), force=True)  # the path's last point
        if self.failure is None and self.cancelled is None:
            self._to(S.RECONCILING, "every leg done; confirming with the venues")
            self._recover_lost(self._reconcile_all)
            return
        reason = self.failure or self.cancelled or ""
        self._each(
            lambda leg_id, then: self.port.stop(leg_id, "stopped: " + reason, then),
            lambda answers: self._after_stop(reason, answers),
        )

    def _after_stop(self, reason: str, answers: dict[str, Answer]) -> None:
        # A leg whose stop could not reach it (its actor is gone) is lost: it is recovered
        # from its venue before it is unwound or reconciled.
        for leg_id, answer in answers.items():
            if isinstance(answer, Exception):
                self.leg_lost(leg_id, _short(answer))
        if self.basket.policy is not Policy.UNWIND:
            self._to(S.RECONCILING, f"{reason}; confirming with the venues")
            self._recover_lost(self._reconcile_all)
            return
        self._to(S.UNWINDING, f"{reason}; unwinding every filled leg (policy unwind)")
        within = int(self.settings.unwind_deadline_s * NS)

        def unwound(answers: dict[str, Answer]) -> None:
            stuck = []
            for leg_id, u in answers.items():
                if isinstance(u, Exception):
                    stuck.append(f"{leg_id} ({_short(u)})")
                elif isinstance(u, Unwound) and not u.flat:
                    stuck.append(f"{leg_id} ({u.describe()})")
            if stuck:
                self._stuck = f"; unwind incomplete on {', '.join(stuck)}"
            self._to(S.RECONCILING, f"{reason}{self._stuck}; confirming with the venues")
            self._reconcile_all()

        self._recover_lost(
            lambda: self._each(lambda leg_id, then: self.port.unwind(leg_id, within, then), unwound)
        )

    def _recover_lost(self, then: Callable[[], None]) -> None:
        """Bring the lost legs up afresh from their venues' records, so that their fills
        are unwound, hedged and reconciled like any other leg's."""
        lost = [leg_id for leg_id in self._leg_ids if leg_id in self.lost]
        if not lost:
            then()
            return

        def recovered(answers: dict[str, Answer]) -> None:
            for leg_id, error in answers.items():
                if error is None:
                    self.notes.append(
                        f"leg {leg_id}: its actor was lost ({self.lost[leg_id]}); recovered "
                        "from its venue's records of its orders"
                    )
                else:
                    self.unrecovered.add(leg_id)
                    self.notes.append(f"leg {leg_id}: could not be recovered: {_short(error)}")
            then()

        self._each(self.port.recover, recovered, only=lost)

    def _reconcile_all(self, only: Sequence[str] | None = None, again: bool = False) -> None:
        """Reconcile every leg (or `only` these). A leg whose actor is lost meanwhile is
        brought up afresh from its venue's records, unwound when the policy says so, and
        reconciled once more (`again`); lost a second time, it is reported unreconciled."""
        within = int(self.settings.reconcile_deadline_s * NS)

        def reconciled(answers: dict[str, Answer]) -> None:
            lost = []
            for leg_id, r in answers.items():
                if isinstance(r, Reconciliation):
                    self.reconciliations[leg_id] = r
                    self.unreconciled.pop(leg_id, None)
                    if r.error:
                        self.unreconciled[leg_id] = r.error
                    continue
                why = f"reconciliation failed: {_short(r)}"
                self.unreconciled[leg_id] = why
                if again or leg_id in self.unrecovered:
                    self.notes.append(f"leg {leg_id}: {why}")
                else:
                    lost.append(leg_id)
            if lost:
                self._recover_again(lost, answers)
                return
            self._close_hedge()

        self._each(
            lambda leg_id, then: self.port.reconcile(leg_id, within, then), reconciled, only=only
        )

    def _recover_again(self, lost: list[str], answers: dict[str, Answer]) -> None:
        """Legs lost while reconciling: recovered, unwound under `unwind` (when the basket
        failed or was cancelled), then reconciled again."""
        for leg_id in lost:
            why = _short(answers[leg_id])
            if leg_id in self.lost:
                self.lost[leg_id] = why
            else:
                self.leg_lost(leg_id, why)
        unwinding = self.basket.policy is Policy.UNWIND and (
            self.failure is not None or self.cancelled is not None
        )
        within = int(self.settings.unwind_deadline_s * NS)

        def recovered(got: dict[str, Answer]) -> None:
            for leg_id, error in got.items():
                if error is not None:
                    self.unrecovered.add(leg_id)
                self.notes.append(
                    f"leg {leg_id}: its actor was lost while reconciling ({self.lost[leg_id]}); "
                    + (
                        "recovered from its venue's records"
                        if error is None
                        else f"could not be recovered: {_short(error)}"
                    )
                )
            if unwinding:
                self._each(
                    lambda leg_id, then: self.port.unwind(leg_id, within, then),
                    lambda _u: self._reconcile_all(lost, again=True),
                    only=lost,
                )
            else:
                self._reconcile_all(lost, again=True)

        self._each(self.port.recover, recovered, only=lost)

    def _close_hedge(self) -> None:
        # Whatever the policy, a basket that does not complete keeps its hedge while the
        # legs are out of step by the venues' own figures (DESIGN §5.8).
        completes = (
            self.failure is None
            and self.cancelled is None
            and self.failure_soft is None
            and self._all_reconciled()
        )
        hold = not completes and self._imbalanced()
        if not self.hedged or self.core is None:
            self._conclude(hold=False)
            return

        def closed(st: HedgeStatement | Exception) -> None:
            if isinstance(st, HedgeStatement):
                self.hedge_statement = st
            else:
                self.notes.append(f"hedge: closing failed: {_short(st)}")
            self._conclude(hold)

        self.port.close_hedge(hold, closed)

    def _imbalanced(self) -> bool:
        """Are the legs out of step by more than a dollar, by the venues' own figures where
        the legs were reconciled (their last snapshots may still be on their way)?"""
        core = self.core
        if core is None:
            return False
        for leg_id, r in self.reconciliations.items():
            if not r.error:
                core.legs[leg_id] = msgspec.structs.replace(
                    core.legs[leg_id], filled_qty=r.venue_filled_qty
                )
        return any(abs(u) > 1.0 for u in core.imbalance().values())

    def _conclude(self, hold: bool) -> None:
        held = "; the legs are out of step: the hedge is held for an operator" if hold else ""
        if self.failure is not None:
            self._finish(S.FAILED, self.failure + self._stuck + held)
        elif self.cancelled is not None:
            self._finish(S.CANCELLED, self.cancelled + self._stuck + held)
        elif self.failure_soft is not None:
            self._finish(S.FAILED, self.failure_soft + held)
        elif self._all_reconciled():
            shrunk = self._shrunk()
            done = "every leg reconciled with its venue"
            self._finish(S.COMPLETED, f"{done}; {shrunk}" if shrunk else done)
        else:
            self._finish(S.FAILED, self._disagreement())

    def _shrunk(self) -> str:
        """Why the basket ends smaller than ordered: its size, the leg, why and since when
        ("shrunk to 62 %: btc at its slippage cap since 371 s"); "" at its whole size."""
        core = self.core
        return core.sync.reason if core is not None and core.sync.fraction < 1 else ""

    def _all_reconciled(self) -> bool:
        legs = self._leg_ids
        return all(
            leg_id in self.reconciliations and self.reconciliations[leg_id].reconciled
            for leg_id in legs
        )

    def _disagreement(self) -> str:
        parts = []
        for leg_id, r in self.reconciliations.items():
            if not r.reconciled and not r.error:
                what = [
                    f"{m.client_order_id} {m.field} ours {m.ours} venue {m.venue}"
                    for m in r.mismatches
                ]
                what += [f"{c} still open" for c in r.still_open]
                parts.append(f"leg {leg_id}: " + "; ".join(what))
        for leg_id, why in self.unreconciled.items():
            parts.append(f"leg {leg_id}: not confirmed with its venue ({why})")
        return "the venues disagree with the legs' records: " + " | ".join(parts)

    def _to(self, state: BasketState, reason: str) -> None:
        self.lifecycle.to(state, self.port.now_ns(), reason)
        self.reason = reason
        log.info("basket %s: %s (%s)", self.basket.basket_id, state.value, reason)

    def _finish(self, state: BasketState, reason: str) -> None:
        if not self.lifecycle.end(state, self.port.now_ns(), reason):
            return
        self.reason = reason
        log.info("basket %s: %s (%s)", self.basket.basket_id, state.value, reason)
        self.completed_ns = self.port.now_ns()
        self.finished = True
        if self.on_end is not None:
            self.on_end()

    def _each(
        self,
        call: Callable[[str, Callable[[Answer], None]], None],
        then: Callable[[dict[str, Answer]], None],
        only: Sequence[str] | None = None,
    ) -> None:
        """`call` every leg (or `only` these) at once; `then` once all have answered, with
        the answers in the basket's leg order."""
        legs = list(only if only is not None else self._leg_ids)
        answers: dict[str, Answer] = {}
        if not legs:
            then({})
            return

        def answered(leg_id: str, answer: Answer) -> None:
            if leg_id in answers:
                return
            answers[leg_id] = answer
            if len(answers) == len(legs):
                then({i: answers[i] for i in legs})

        for leg_id in legs:
            call(leg_id, lambda a, i=leg_id: answered(i, a))

    # -- the report ------------------------------------------------------------------------
    def report(
        self,
        legs: Mapping[str, LegReport | None],
        *,
        submitted_ns: int,
        collateral: CollateralReport,
        venue_nodes: dict[str, dict[str, str]] | None = None,
        notes: Sequence[str] = (),
    ) -> BasketReport:
        """The basket's report from its legs' (None for a leg that gave none: its last
        snapshot stands in)."""
        basket = self.basket
        out: list[LegReport] = []
        for leg in basket.legs:
            r = legs.get(leg.leg_id)
            r = self._last_known(leg.leg_id) if r is None else r
            reconciled = self.reconciliations.get(leg.leg_id)
            out.append(
                msgspec.structs.replace(
                    r,
                    decision_price=leg.price,
                    reconciled=reconciled is not None and reconciled.reconciled,
                )
            )
        accepts = [leg.first_venue_accept_ns for leg in out if leg.first_venue_accept_ns]
        acks = [leg.first_ack_ns for leg in out if leg.first_ack_ns]
        full = len(out) > 1 and len(accepts) == len(out)
        hedge = None
        if basket.hedge is not None:
            hedge = HedgeReport(
                venue=basket.hedge.venue, instruments=list(basket.hedge.instruments)
            )
            st = self.hedge_statement
            if st is None:
                hedge.flat_at_end = not self.hedged  # not known: say so rather than claim it
            else:
                hedge.orders = st.orders
                hedge.max_abs_position = st.max_abs_position
                hedge.pnl_usd = st.pnl_usd
                hedge.fees_usd = st.fees_usd
                hedge.held = st.held
                hedge.flat_at_end = st.flat
                hedge.unsettled = list(st.unsettled)
                hedge.reaction_ns = list(st.reaction_ns)
                hedge.trading_cost_usd = st.trading_cost_usd
                hedge.risk_removed_usd2 = st.risk_removed_usd2
                hedge.risk_value_usd = st.risk_value_usd
        report = BasketReport(
            basket_id=basket.basket_id,
            status=self.lifecycle.state,
            policy=basket.policy,
            reason=self.reason,
            submitted_ns=submitted_ns,
            launched_ns=self.launched_ns,
            completed_ns=self.completed_ns,
            legs=out,
            hedge=hedge,
            collateral=collateral,
            fraction=1.0 if self.core is None else float(self.core.sync.fraction),
            shrink=self._shrunk(),
            launch_skew_ns=(max(accepts) - min(accepts)) if full else None,
            raw_ack_skew_ns=(max(acks) - min(acks)) if len(acks) == len(out) > 1 else None,
            venue_nodes=venue_nodes or {},
            history=list(self.lifecycle.history),
            notes=[*self.notes, *notes],
            timeline=self.timeline.timeline,
        )
        try:
            report.tca = basket_tca(report)
        except Exception as e:  # the analysis must never cost the user the report itself
            report.notes.append(f"TCA could not be computed: {e!r}")
        return report

    def _last_known(self, leg_id: str) -> LegReport:
        """A leg with no report, as its last snapshot showed it: not reconciled, its orders
        at the venue."""
        leg = self.basket.leg(leg_id)
        last = self.core.legs[leg_id] if self.core is not None else None
        return LegReport(
            leg_id=leg_id,
            venue=leg.venue,
            symbol=leg.symbol,
            side=leg.side,
            original_qty=leg.quantity,
            target_qty=leg.quantity if last is None else last.target_qty,
            filled_qty=Decimal(0) if last is None else last.filled_qty,
            avg_price=None if last is None else last.avg_price,
            fees_usd=Decimal(0),
            status=LegStatus.FAILED,
            reconciled=False,
            child_orders=[],
            rejects=[],
            reason=(last.reason if last is not None and last.reason else "leg actor lost")
            + "; figures from its last snapshot, its orders are at the venue",
            contract_size=leg.instrument.contract_size,
            decision_price=leg.price,
            end_price=None if last is None else last.mark_price,
        )


def _short(e: BaseException | object) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__
