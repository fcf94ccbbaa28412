"""`BasketActor`: one per basket; owns its life from validation to the report (DESIGN §5).

validate → reserve collateral → create and arm the leg actors (pinned near their venues)
→ fire every leg at one instant of its own clock → run the `BasketCoordinator` on the legs'
progress (synchronizer, hedge exposure) → reconcile every leg with its venue → release the
collateral → `BasketReport`. A failure or a cancel applies the basket's policy on the way.

From the fire instant on, the decisions are the `BasketRunner`'s (`actors.runners.basket`);
this shell gives it its port (the `BasketPort` methods below: Ray calls to the legs and the
hedge actor). It is long (about 1,000 lines) because checking, the collateral, the turn to
arm and arming are a sequence of Ray calls made here in order, each with its own timeouts
and its diagnostics; the backtest starts a basket armed, so none of it needs a runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from typing import Any

import msgspec
import ray
from ray.exceptions import ActorUnavailableError

from actors.admission import Admission, Limits, waiting_reason
from actors.basket import (
    BasketCoordinator,
    ExposureChanged,
)
from actors.clock import ClockOffsetEstimator, remote_to_local
from actors.journal import JournalError
from actors.journal.records import BasketReported, BasketResolved, BasketStateChanged
from actors.lifecycle import BasketLifecycle, BasketState, StateChanged
from actors.margin import Refused, Reserved
from actors.messages import LegProgress
from actors.protocol import (
    ArmLeg,
    BasketOptions,
    BasketStatus,
    ExposureReport,
    InboxAddress,
    LegArmed,
    VenueEndpoint,
)
from actors.report import (
    BasketReport,
    CollateralReport,
    LegReport,
    TransferView,
)
from actors.risk import RiskModel
from actors.runners.basket import BasketRunner, RunSettings
from actors.runners.collateral import margin_needs
from actors.runners.funding import Funding, FundingAsk, funding_story
from actors.shells.channel import Inbox, Outbox
from actors.shells.drive import LiveClock
from actors.shells.journaling import ActorJournal
from actors.shells.lease import PoolLease
from actors.shells.leg import VENUE_TICK_NS, LegActor
from actors.shells.metrics import BasketMetrics
from actors.shells.remote import actor_options, kill, leg_actor_name, ref_result, remote
from actors.shells.tasks import BackgroundTasks
from actors.spec import (
    BasketSpec,
    OnUnfunded,
    RebalanceSpec,
    ResolvedBasket,
    SpecError,
    validate,
)
from actors.sync import AdjustLeg
from venues.model import Instrument

log = logging.getLogger(__name__)

NS = 1_000_000_000
S = BasketState
LEG_CALL_TIMEOUT_S = 60.0  # reconcile, report and close of a leg: past this it is lost
CLOCK_EVERY_S = 1.0  # while running, each leg's clock is pinged again this often
HEDGE_POLL_EVERY_S = 0.5  # while running, the hedge desk's position is asked this often
LEASE_SLACK_S = 30.0  # a turn to arm (a place to run) is taken back this long past its end
REGISTRY_PROBE_S = 5.0  # how long a basket waits for the registry to answer
RECONCILE_DEADLINE_S = 30.0  # a leg's reconciliation retries its venue's errors this long
ENDING_TIMEOUT_S = 120.0  # after a bug, how long the runner gets to apply the policy
RELEASE_RETRY_S = 60.0  # how long a release waits out a restarting collateral actor


class BasketActor:
    """One basket (see the module docstring)."""

    # Set once the actor has its basket (at creation, or by `assign` from the warm pool).
    basket_id: str
    submitted_ns: int
    lifecycle: BasketLifecycle
    risk: RiskModel
    metrics: BasketMetrics
    _tasks: BackgroundTasks

    def __init__(
        self,
        spec: BasketSpec | RebalanceSpec | None,
        venues: dict[str, Any],
        endpoints: dict[str, VenueEndpoint],
        collateral: Any,
        hedger: Any,
        options: BasketOptions | None = None,
        registry: Any = None,
    ) -> None:
        """A basket actor for `spec`; or, with `spec=None`, one the engine's warm pool keeps
        idle until `assign` gives it a basket. `registry`: the namespace's `BasketRegistry`,
        which takes the baskets' turns to arm (None: the basket arms at once)."""
        self.venues = venues
        self.endpoints = endpoints
        self.collateral = collateral
        self.hedger = hedger
        self.registry = registry
        self.options = options or BasketOptions()
        self.reason = ""
        self.resolved: ResolvedBasket | None = None
        self.runner: BasketRunner | None = None  # from the fire instant on
        self.legs: dict[str, Any] = {}
        self.armed: dict[str, LegArmed] = {}
        self.clocks: dict[str, ClockOffsetEstimator] = {}
        self.reserved: Reserved | None = None
        self.refused: Refused | None = None
        self.funding: Funding | None = None  # the transfers that cure a shortfall, if any
        self.funded_ns: int | None = None  # when they had (the whole reservation held)
        self._transfers: list[TransferView] = []  # as the collateral actor last listed them
        self._deferred: set[str] = set()  # legs that wait for their funding (hedged)
        self.released = False
        self.notes: list[str] = []  # the shell's own (collateral, legs that gave no report)
        self.completed_ns: int | None = None
        self._wake = asyncio.Event()
        self._assigned = asyncio.Event()
        self._lease = PoolLease(self._close_idle, "pooled basket actor")
        self._ended = asyncio.Event()  # the runner finished the basket
        self._cancel: str | None = None
        self._hedge_position = 0.0
        self._prepared: asyncio.Task[ResolvedBasket] | None = None
        self._pinging: set[str] = set()
        self._recovered: set[str] = set()  # lost legs brought up afresh (`recover`)
        self._held_adjusts: dict[str, AdjustLeg] = {}  # for legs not yet brought up
        self._clock_due = 0.0  # monotonic time of the next round of leg clock pings
        self._hedge_poll: asyncio.Task[None] | None = None
        self._hedge_poll_due = 0.0  # monotonic time of the next hedge position poll
        self._in_line = False  # asked the registry for a turn to arm, not yet given back
        self._admitted = False  # has (or had) a place with the registry, not yet given back
        self._arming: dict[str, str] = {}  # leg id → how far its arming got (`_arm`)
        self._warm: dict[str, Any] = {}  # leg id → a warm leg actor from the pool, until armed
        self._from_pool: set[str] = set()  # the legs that run on warm leg actors
        self._leverage: dict[str, int] = {}  # per venue, read when validating
        # The collateral actor's account reads this basket started while it was checked
        # (`CollateralActor.refresh`): an ObjectRef of their numbers, for the reservation.
        self._account_reads: Any = None
        self._listed: tuple[dict[str, dict[str, Instrument]], dict[str, int]] | None = None
        # The event path (`actors.shells.channel`): the legs' progress comes in by a direct
        # stream when they share this node; the exposure goes out to the hedge desk so.
        self._progress_inbox: Inbox[LegProgress] | None = None
        self._exposure: Outbox[ExposureReport] | None = None
        self._spec: BasketSpec | RebalanceSpec | None = None
        self.run_id = ""
        self.journal: ActorJournal | None = None  # when the run has an identity
        self._journal_opened: asyncio.Future[None] | None = None
        self._early_states: list[StateChanged] = []  # before the journal opened
        self._outcome: asyncio.Future[BasketReport] | None = None  # made on the actor's loop
        if spec is not None:
            self._assign(spec, self.options)

    def _assign(self, spec: BasketSpec | RebalanceSpec, options: BasketOptions) -> None:
        self._spec = spec
        self.basket_id = spec.basket_id
        self.options = options
        self.submitted_ns = time.time_ns()
        self.lifecycle = BasketLifecycle(self.basket_id, self.submitted_ns)
        self.risk = options.risk.model()
        self._tasks = BackgroundTasks(f"basket {self.basket_id}")
        self._clock = LiveClock(self._tasks, time.time_ns, self._crashed)
        self.metrics = BasketMetrics(self.basket_id)
        self.run_id = options.run_id
        if options.run_id and options.journal:
            self.journal = ActorJournal(
                options.journal,
                self._tasks,
                self._clock.run,
                f"basket {self.run_id}",
                options.audit,
            )
            self.lifecycle.on_change = self._record_state
        self._assigned.set()
        self._lease.end()  # the cluster's now (its supervisor ends it with its run)

    @property
    def spec(self) -> BasketSpec | RebalanceSpec:
        if self._spec is None:
            raise RuntimeError("this basket actor has no basket yet: assign() one first")
        return self._spec

    # -- a warm pool's basket actor ----------------------------------------------------------
    async def warm(self) -> None:
        """Open the Ray connections a basket needs first (venues, collateral, hedge, the
        registry) and read the venues' listings, so that a basket given to this actor later
        does not pay for them. A venue actor's listing is read once, when it starts, and
        this actor lives within the engine that started them."""
        calls = [self.collateral.snapshot.remote(), self.hedger.position_of.remote("")]
        if self.registry is not None:
            calls.append(self.registry.admission_queue.remote())
        listed, *_ = await asyncio.gather(self._listings(), *calls)
        self._listed = listed

    async def _listings(self) -> tuple[dict[str, dict[str, Instrument]], dict[str, int]]:
        """Each venue's instruments and account leverage."""
        names = list(self.venues)
        listed, leverage = await asyncio.gather(
            asyncio.gather(*(self.venues[v].instruments.remote() for v in names)),
            asyncio.gather(*(self.venues[v].leverage.remote() for v in names)),
        )
        return dict(zip(names, listed, strict=True)), dict(zip(names, leverage, strict=True))

    def lease(self, for_s: float) -> None:
        """The warm pool still wants this idle actor for `for_s` seconds (`PoolLease`): a
        pooled actor is detached, and one whose pool stops renewing exits by itself."""
        self._lease.renew(for_s)

    async def _close_idle(self) -> None:
        """An idle actor whose lease ran out holds nothing but Ray handles."""

    async def idle(self) -> None:
        """Returns once the actor has a basket. The warm pool keeps this call pending on
        every idle basket actor: should the actor die, the call fails at once in the
        pool's process, which then knows not to hand it out."""
        await self._assigned.wait()

    async def assign(
        self, spec: BasketSpec | RebalanceSpec, options: BasketOptions | None = None
    ) -> ResolvedBasket:
        """Take on `spec` (an idle actor from the warm pool) and `prepare` it, in one call;
        then `run` as for an actor created for it."""
        if self._spec is not None:
            raise RuntimeError(f"this basket actor already runs basket {self.basket_id}")
        self._assign(spec, options or self.options)
        return await self.prepare()

    def alive(self) -> str:
        """The basket this actor runs ("" when idle): for the basket registry."""
        return "" if self._spec is None else self.basket_id

    def run_id_of(self) -> str:
        """The run this actor carries ("" when idle or not journaled): for the supervisor."""
        return "" if self._spec is None else self.run_id

    # -- the driver's calls ------------------------------------------------------------------
    async def prepare(self) -> ResolvedBasket:
        """Validate the spec against the venues' instruments and prices (DESIGN §5.1).

        Raises `SpecError` listing every mistake; nothing is ever sent for such a basket.
        """
        if self._prepared is None:
            self._prepared = asyncio.ensure_future(self._validate())
        return await asyncio.shield(self._prepared)

    async def run(self, legs: dict[str, Any] | None = None) -> BasketReport:
        """Execute the basket to its end and return the report; never raises for a basket
        that fails (the report says why), only for a bug.

        `legs`: warm leg actors from the engine's pool, by leg id (connected to their
        venue already); the other legs get leg actors created for them."""
        self._warm = dict(legs or {})
        try:
            await self._life()
        except Exception as e:  # a bug: still apply the policy and say so in the report
            log.exception("basket %s: unexpected error", self.basket_id)
            if self.runner is not None:
                self._crashed(e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), ENDING_TIMEOUT_S)
            await self._stop_legs()
            self._finish(S.FAILED, f"internal error: {e!r}")
        finally:
            self._leave_line()
            self._end_place()
            await self._release()
            # Warm legs the basket never got to arm sent nothing: they go with it.
            kill(list(self._warm.values()))
            await self._close_legs()
            await self._tasks.cancel_all()  # probes, clock pings, hedge polls: all moot now
            await self._close_channels()
        return self._ended_with(await self._report())

    def _ended_with(self, report: BasketReport) -> BasketReport:
        outcome = self._outcome_future()
        if not outcome.done():
            outcome.set_result(report)
        return report

    def _outcome_future(self) -> asyncio.Future[BasketReport]:
        if self._outcome is None:
            self._outcome = asyncio.get_running_loop().create_future()
        return self._outcome

    async def outcome(self) -> BasketReport:
        """The report, once the basket has ended (`run` or `take_over`): for a supervisor
        that restarted and finds this actor still at work."""
        return await asyncio.shield(self._outcome_future())

    async def take_over(self) -> BasketReport:
        """Carry this run on after its basket actor was lost (DESIGN §9; the supervisor
        calls it on a fresh actor): its journal says what was resolved and how far it got;
        every leg is brought up afresh from its venue's records of the run's client order
        ids, the policy applies (`unwind`: traded back to flat), every leg is reconciled,
        the dead actor's collateral is released and its hedge handed back or held, and the
        report is journaled like any other."""
        journal = self.journal
        if journal is None:
            raise RuntimeError(f"basket {self.basket_id}: a take-over needs the run's journal")
        try:
            await self._open_journal()
            records = await journal.read(self.run_id)
            history = [
                StateChanged(
                    basket_id=self.basket_id,
                    previous=S.PENDING,
                    state=r.state,
                    reason=r.reason,
                    ts_ns=r.ts_ns,
                )
                for r in records
                if isinstance(r, BasketStateChanged)
            ]
            resolved = next(
                (
                    msgspec.json.decode(r.resolved, type=ResolvedBasket)
                    for r in records
                    if isinstance(r, BasketResolved)
                ),
                None,
            )
            if resolved is None:  # lost before its check was journaled: checked again
                resolved = await self.prepare()
            self.resolved = resolved
            fired = [
                r.ts_ns
                for r in records
                if isinstance(r, BasketStateChanged) and r.state is S.RUNNING
            ]
            lost_in = history[-1].state.value if history else "PENDING"
            self.lifecycle.take_over(
                history, time.time_ns(), f"taken over after the basket actor was lost in {lost_in}"
            )
            # Its reservation (held under the basket id) is released at the end, as ever.
            self.reserved = Reserved(basket_id=self.basket_id, needs={}, reserved_ns=0)
            node = ray.get_runtime_context().get_node_id()
            await self._open_exposure(resolved, node)
            self.runner = self._new_runner(resolved)
            reason = f"the basket actor was lost (in {lost_in}); taken over from the journal"
            runner = self.runner
            self._clock.run(lambda: runner.take_over(fired[0] if fired else None, reason))
            await self._ended.wait()
            self.completed_ns = runner.completed_ns
            self.reason = runner.reason
        except Exception as e:
            log.exception("basket %s: take-over failed", self.run_id)
            self.notes.append(f"take-over failed: {_short(e)}")
            if not self.lifecycle.state.is_terminal:
                self.lifecycle.end(S.FAILED, time.time_ns(), f"take-over failed: {_short(e)}")
        finally:
            await self._release()
            await self._close_legs()
            await self._tasks.cancel_all()
            await self._close_channels()
        return self._ended_with(await self._report())

    def cancel(self, reason: str = "cancelled by the user") -> BasketState:
        """Stop the basket: no new child orders; the policy decides what happens to fills."""
        if not self.lifecycle.state.is_terminal and self._cancel is None:
            self._cancel = reason
            self._wake.set()
            if self.runner is not None:
                self._clock.run(lambda: self._r.cancel(reason))
        return self.lifecycle.state

    async def status(self) -> BasketStatus:
        core = self.core
        basket = self.resolved
        if basket is not None and basket.hedge is not None and basket.hedge.enabled:
            with contextlib.suppress(Exception):
                self._hedge_position = await self.hedger.position_of.remote(self.basket_id)
        now = time.time_ns()
        reason = self.reason if self.runner is None else self.runner.reason
        transfers: list[TransferView] = []
        if self.funding is not None:
            unsettled = not self._transfers or any(not t.state.is_final for t in self._transfers)
            if unsettled and not self.lifecycle.state.is_terminal:  # asked until each ends
                with contextlib.suppress(Exception):
                    self._transfers = await asyncio.wait_for(
                        ref_result(self.collateral.transfers.remote(self.basket_id)), 2.0
                    )
            transfers = self._transfers or list(self.funding.transfers)
            pending = [t for t in transfers if not t.state.is_final]
            if pending and self.funded_ns is None:
                what = "; ".join(f"{t.message} for {t.age_s(now):.0f} s" for t in pending)
                reason = f"{reason} — pending: {what}"
        return BasketStatus(
            basket_id=self.basket_id,
            state=self.lifecycle.state,
            reason=reason,
            transfers=transfers,
            legs=[] if core is None else list(core.legs.values()),
            schedule_progress=0.0 if core is None else core.schedule_progress(now),
            hedge_position_usd=self._hedge_position,
            ts_ns=now,
            band=None if basket is None else basket.params.completion_band,
        )

    def on_progress(self, p: LegProgress) -> None:
        """A leg's snapshot; its times are mapped onto the basket's clock here."""
        runner = self.runner
        if runner is None:
            return
        mapped = msgspec.structs.replace(
            p,
            ts_ns=self._from_leg(p.leg_id, p.ts_ns),
            fill_seen_ns=None
            if p.fill_seen_ns is None
            else self._from_leg(p.leg_id, p.fill_seen_ns),
        )
        self._clock.run(lambda: runner.on_progress(mapped))

    # -- the life ----------------------------------------------------------------------------
    def _to(self, state: BasketState, reason: str) -> None:
        self.lifecycle.to(state, time.time_ns(), reason)
        self.reason = reason
        log.info("basket %s: %s (%s)", self.basket_id, state.value, reason)

    def _finish(self, state: BasketState, reason: str) -> None:
        if self.lifecycle.end(state, time.time_ns(), reason):
            self.reason = reason
            log.info("basket %s: %s (%s)", self.basket_id, state.value, reason)
            self.completed_ns = time.time_ns()

    async def _life(self) -> None:
        self._to(S.CHECKING, "validating and reserving collateral")
        try:
            await self._open_journal()
        except JournalError as e:
            self._finish(S.FAILED, f"the journal at this engine's location: {e}; nothing was sent")
            return
        try:
            basket = await self.prepare()
        except SpecError as e:
            self._finish(S.FAILED, str(e))
            return
        if self._cancel is not None:
            self._finish(S.CANCELLED, self._cancel)
            return
        # The turn to arm is asked for while the collateral is reserved: neither needs the
        # other, and each is a few milliseconds of round trips.
        reserving = self._tasks.spawn(self._reserve(basket), "reserve")
        admission = await self._queue_to_arm(basket)
        # A basket whose every leg came warm from the pool arms them while its collateral
        # is reserved (when its turn to arm has come): arming sends nothing (it opens the
        # leg's market stream, reads its book and measures its clock), and takes about as
        # long as the reservation.
        warm = bool(self._warm) and set(self._warm) == {leg.leg_id for leg in basket.legs}
        early = warm and admission.admitted
        arming = self._tasks.spawn(self._arm(basket), "arm") if early else None
        if not await reserving:
            if arming is not None:
                arming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await arming
                self._abandon_legs()
            return
        if not admission.admitted:
            self._to(S.QUEUED, waiting_reason(admission))
            if not await self._await_turn():
                self._finish(S.CANCELLED, self._cancel or "cancelled while queued")
                return
        self._to(S.ARMING, "creating and arming the leg actors")
        failed = await (arming if arming is not None else self._arm(basket))
        if failed is not None:
            self._finish(S.FAILED, failed)
            return
        if self._cancel is not None:
            self._finish(S.CANCELLED, self._cancel)
            return
        await self._fire(basket)
        self._leave_line()  # fired: the next basket's turn (a failure gives it in `run`)
        await self._ended.wait()
        self.completed_ns = self._r.completed_ns
        self.reason = self._r.reason

    # -- the turn to arm ---------------------------------------------------------------------
    async def _queue_to_arm(self, basket: ResolvedBasket) -> Admission:
        """Ask the registry for a turn to arm (at most `max_arming` baskets arm at once,
        and `max_running` arm or run). Without a registry, or when it does not answer, the
        basket arms at once: the queue spares a busy machine, it must never stop a basket."""
        opts = self.options
        now = Admission(admitted=True, arming=0, running=0, ahead=0)
        if self.registry is None:
            return now
        params = basket.params
        # A place is held until the basket ends: its start, horizon, grace and overrun,
        # then stopping, unwinding and reconciling (each bounded).
        clock = time.time_ns()
        start_s = max(0.0, (params.start_ns(clock) - clock) / NS)
        run_s = (
            start_s
            + params.horizon_s
            + params.grace_s
            + max(opts.min_overrun_s, params.horizon_s)
            + opts.unwind_deadline_s
            + 3 * LEG_CALL_TIMEOUT_S
        )
        limits = Limits(
            max_arming=opts.max_arming,
            max_running=opts.max_running,
            arm_lease_ns=int((opts.arm_timeout_s + LEASE_SLACK_S) * NS),
            run_lease_ns=int((run_s + LEASE_SLACK_S) * NS),
        )
        self._in_line = self._admitted = True
        try:
            return await asyncio.wait_for(
                ref_result(self.registry.queue_to_arm.remote(self.basket_id, limits)),
                REGISTRY_PROBE_S,
            )
        except Exception as e:
            log.warning("basket %s: no turn to arm from the registry (%s)", self.basket_id, e)
            return now

    async def _await_turn(self) -> bool:
        """Wait in line until the basket's turn to arm (True), or a cancel (False)."""
        assert self.registry is not None
        turn = asyncio.ensure_future(ref_result(self.registry.await_turn.remote(self.basket_id)))
        try:
            while self._cancel is None:
                self._wake.clear()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({turn, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if turn.done():
                    if turn.exception() is not None:  # the registry is gone: arm anyway
                        log.warning("basket %s: waiting to arm: %s", self.basket_id, turn)
                    return True
            return False
        finally:
            turn.cancel()

    def _leave_line(self) -> None:
        """Give back the turn to arm (once; harmless without one): the next basket's."""
        if self._in_line and self.registry is not None:
            self._in_line = False
            with contextlib.suppress(Exception):
                self.registry.armed.remote(self.basket_id)

    def _end_place(self) -> None:
        """The basket is over: give back its place (or its place in line)."""
        if self._admitted and self.registry is not None:
            self._admitted = False
            with contextlib.suppress(Exception):
                self.registry.ended.remote(self.basket_id)

    async def _validate(self) -> ResolvedBasket:
        spec = self.spec
        # The accounts' leverage comes along (the reservation needs it): one trip, not two;
        # none for a warm basket actor, which read both ahead.
        instruments, self._leverage = self._listed or await self._listings()
        wanted: dict[str, set[str]] = {}
        if isinstance(spec, BasketSpec):
            for leg in spec.legs:
                wanted.setdefault(leg.venue, set()).add(leg.symbol)
        else:
            for symbol in spec.targets:
                venue = spec.venues.get(symbol, spec.venue)
                if venue is not None:
                    wanted.setdefault(venue, set()).add(symbol)
        wanted = {
            v: {s for s in syms if s in instruments.get(v, {})}
            for v, syms in wanted.items()
            if v in self.venues
        }
        names = sorted(wanted)
        asked = [self.venues[v].mids.remote(sorted(wanted[v])) for v in names]
        # The reservation will need these venues' accounts: their reads start now, while
        # the basket is checked, rather than after.
        self._account_reads = self.collateral.refresh.remote({v: self.venues[v] for v in names})
        mids = await asyncio.gather(*asked)
        prices = {(v, s): p for v, m in zip(names, mids, strict=True) for s, p in m.items()}
        positions: dict[tuple[str, str], Decimal] = {}
        if isinstance(spec, RebalanceSpec):
            held = await asyncio.gather(*(self.venues[v].positions.remote() for v in names))
            positions = {(v, s): q for v, h in zip(names, held, strict=True) for s, q in h.items()}
        resolved = validate(spec, instruments, prices, positions, risk=self.options.risk)
        self.resolved = resolved
        if self.journal is not None:
            await self._open_journal()
            self.journal.record(
                BasketResolved(
                    run_id=self.run_id,
                    resolved=msgspec.json.encode(resolved).decode(),
                    ts_ns=time.time_ns(),
                )
            )
        return resolved

    async def _reserve(self, basket: ResolvedBasket) -> bool:
        leverage = {leg.venue: self._leverage[leg.venue] for leg in basket.legs}
        needs = margin_needs(basket, leverage)
        venues = {v: self.venues[v] for v in leverage}
        fresh = None
        if self._account_reads is not None:
            try:
                fresh = await self._account_reads
            except Exception as e:  # the reservation reads the accounts itself
                log.warning("basket %s: early account reads: %s", self.basket_id, _short(e))
        params = basket.params
        ask = FundingAsk(
            mode=params.on_unfunded,
            timeout_ns=int(params.funding_timeout_s * NS),
            client_prefix=self.options.order_prefix or self.basket_id,
            rules=self.options.routing,
        )
        result = await self.collateral.reserve.remote(
            self.basket_id, needs, venues, fresh, run_id=self.run_id, funding=ask, every=self.venues
        )
        if isinstance(result, Funding):
            self.funding = result
            if result.mode is OnUnfunded.HEDGE and result.reserved is not None:
                # The funded legs start; the others wait for the money, hedged (`_funded`).
                self.reserved = result.reserved
                self._deferred = set(result.unfunded_legs)
                self.reason = f"legs {', '.join(result.unfunded_legs)} wait for {result.plan}"
                log.info("basket %s: %s", self.basket_id, self.reason)
                return True
            self.reserved = result.reserved  # given back if the money never comes
            self.reason = f"waiting for collateral: {result.plan} (nothing is sent meanwhile)"
            log.info("basket %s: %s", self.basket_id, self.reason)
            try:
                result = await self._await_funding()
            except Exception as e:  # the collateral actor is gone: its funding with it
                result = _not_funded(self.basket_id, e)
            if result is None:
                self._finish(S.CANCELLED, self._cancel or "cancelled while waiting for funds")
                return False
        if self.funding is not None and isinstance(result, Reserved):
            self.funded_ns = time.time_ns()
        if isinstance(result, Refused):
            self.refused = result
            reason = result.reason
            if self.funding is not None:
                reason += "; nothing was sent"
            self._finish(S.FAILED, reason)
            return False
        self.reserved = result
        return True

    async def _await_funding(self) -> Reserved | Refused | None:
        """The outcome of the basket's funding (None: cancelled while waiting; the
        transfers under way still end at their venues, and are journaled)."""
        outcome = asyncio.ensure_future(ref_result(self.collateral.funded.remote(self.basket_id)))
        try:
            while self._cancel is None:
                self._wake.clear()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({outcome, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if outcome.done():
                    return outcome.result()
            return None
        finally:
            outcome.cancel()

    async def _funded(self) -> None:
        """Under `on_unfunded = "hedge"`: once the deferred legs' money lands they fire;
        if it never does, they fail and the basket's policy applies."""
        try:
            result = await self._await_funding()
        except Exception as e:  # the collateral actor is gone: the legs cannot be funded
            result = None if self._cancel is not None else _not_funded(self.basket_id, e)
        if result is None:
            return
        if isinstance(result, Refused):
            self.refused = result
            self._clock.run(lambda: self._r.unfunded(result.reason))
            return
        self.reserved = result
        self.funded_ns = time.time_ns()
        lead = int(self.options.fire_lead_ms * 1e6)
        self._clock.run(lambda: self._r.fund(time.time_ns() + lead))

    def _arm_command(
        self, basket: ResolvedBasket, leg_id: str, inbox: InboxAddress | None
    ) -> ArmLeg:
        params = basket.params
        band = params.completion_band
        leg = basket.styled(basket.leg(leg_id))  # with its child style and pov rate
        return ArmLeg(
            basket_id=basket.basket_id,
            leg=leg,
            endpoint=self.endpoints[leg.venue],
            horizon_ns=int(params.horizon_s * NS),
            slice_ns=int(min(params.slice_s, params.horizon_s) * NS),
            participation_cap=params.participation_cap,
            vol_annual=self.risk.volatility(leg.instrument),
            synchronized=True,  # kept in step with its partners by this basket
            max_child_fraction=None
            if band is None
            else max(band / 2, params.slice_s / params.horizon_s),
            progress_inbox=inbox,
            order_prefix=self.options.order_prefix,
            run_id=self.options.run_id,
            journal=self.options.journal,
            audit=self.options.audit,
        )

    async def _arm(self, basket: ResolvedBasket) -> str | None:
        """Create (or take the pool's) leg actors and arm them, measuring their clocks;
        None once every leg is armed, else why not (they are abandoned: nothing was sent)."""
        opts = self.options
        for leg in basket.legs:
            warm = self._warm.pop(leg.leg_id, None)
            if warm is not None:
                self.legs[leg.leg_id] = warm
                self._from_pool.add(leg.leg_id)
                continue
            actor_opts = actor_options(
                opts.namespace,
                opts.labels.get(leg.venue),
                name=leg_actor_name(basket.basket_id, leg.leg_id),
            )
            self.legs[leg.leg_id] = (
                remote(LegActor)
                .options(**actor_opts)
                .remote(leg.venue, opts.leg_clock_offsets_ns.get(leg.leg_id, 0))
            )

        async def arm_one(leg_id: str) -> LegArmed:
            cmd = self._arm_command(basket, leg_id, inbox)
            actor = self.legs[leg_id]
            if leg_id in self._from_pool:  # connected already: arming is a book request
                stage[leg_id] = "started"
                armed = await self._armed(leg_id, actor.arm.remote(cmd, myself))
            else:
                # A cold leg answers its first call once Ray has started its process.
                started = actor.ping.remote()
                arm = actor.arm.remote(cmd, myself)
                await started
                stage[leg_id] = "started"
                armed = await self._armed(leg_id, arm)
            if armed.placement.node_id == node and not opts.leg_clock_offsets_ns.get(leg_id):
                self._same_clock(leg_id)
            else:
                # After arming, so that these pings and the leg's own exchanges with its
                # venue's clock do not share its event loop and widen each other's trips.
                await self._measure_clock(leg_id)
            return armed

        myself = ray.get_runtime_context().current_actor
        node = ray.get_runtime_context().get_node_id()
        self._progress_inbox = Inbox(LegProgress, self.on_progress, f"basket {self.basket_id}")
        inbox: InboxAddress | None = None
        try:
            inbox = await self._progress_inbox.start(node)
        except OSError as e:  # no loopback port: the legs' progress comes by Ray calls
            log.warning("basket %s: no event inbox: %s", self.basket_id, e)
        ids = list(self.legs)
        stage = self._arming
        stage.update(dict.fromkeys(ids, "created"))
        try:
            armed, _ = await asyncio.wait_for(
                asyncio.gather(
                    asyncio.gather(*(arm_one(i) for i in ids)), self._open_exposure(basket, node)
                ),
                opts.arm_timeout_s,
            )
        except TimeoutError:
            self._abandon_legs()
            return self._not_armed(basket)
        except Exception as e:
            self._abandon_legs()
            return f"a leg could not be armed: {_short(e)}; nothing was sent"
        self.armed = dict(zip(ids, armed, strict=True))
        return None

    async def _open_exposure(self, basket: ResolvedBasket, node: str) -> None:
        """Open the basket's desk with the hedge actor, and its direct stream there when the
        hedge actor shares this node (else each exposure is a Ray call)."""
        hedge = basket.hedge
        if hedge is None or not hedge.enabled:
            return
        venue = self.venues[hedge.venue]
        self._exposure = Outbox(
            lambda r: self.hedger.report.remote(r, venue), f"basket {self.basket_id} exposure"
        )
        try:
            inbox = await self.hedger.connect.remote(
                hedge, self.endpoints[hedge.venue].epoch, venue, self.options.risk
            )
        except Exception as e:  # the desk opens on the first report instead
            log.warning("basket %s: hedge desk: %s", self.basket_id, _short(e))
            return
        await self._exposure.open(inbox, node)

    async def _close_channels(self) -> None:
        if self._exposure is not None:
            self._exposure.close()
        if self._progress_inbox is not None:
            await self._progress_inbox.close()

    async def _armed(self, leg_id: str, arm: Any) -> LegArmed:
        armed = await arm
        self._arming[leg_id] = "armed"
        return armed

    def _not_armed(self, basket: ResolvedBasket) -> str:
        """Why the legs did not all arm in time, by how far each got."""
        opts = self.options
        stage = self._arming
        by: dict[str, list[str]] = {}
        for leg in basket.legs:
            by.setdefault(stage.get(leg.leg_id, "created"), []).append(
                f"{leg.leg_id} on {leg.venue}"
            )
        parts = []
        if by.get("created"):
            labels = {
                f"{k}={v}"
                for leg in basket.legs
                if stage.get(leg.leg_id, "created") == "created"
                for k, v in (opts.labels.get(leg.venue) or {}).items()
            }
            where = (
                f"no node with label {', '.join(sorted(labels))} took it"
                if labels
                else "Ray had not started its worker process (a busy machine)"
            )
            parts.append(f"{', '.join(by['created'])} not started: {where}")
        if by.get("started"):
            parts.append(
                f"{', '.join(by['started'])} started but not armed: its venue connection or "
                "venue-clock measurement had not finished (a slow venue or a busy machine)"
            )
        if by.get("armed"):
            parts.append(f"{', '.join(by['armed'])} armed, its clock still being measured")
        return (
            f"legs not armed within {opts.arm_timeout_s:g} s of the start of arming: "
            f"{'; '.join(parts)}; nothing was sent"
        )

    def _abandon_legs(self) -> None:
        """Legs that never armed sent nothing: stop them (some may never have been placed
        on a node) rather than wait on them."""
        kill(list(self.legs.values()))
        self.legs = {}

    def _same_clock(self, leg_id: str) -> None:
        """A leg on this basket's node reads the same system clock: its offset is 0 exactly,
        recorded as an exchange with no round trip, where pings through Ray (1-5 ms there
        and back on a busy node) would only bound it to within half their round trip, and
        take several of them. The background pings go on: drift, should there be any,
        still shows."""
        now = time.time_ns()
        self.clocks.setdefault(leg_id, ClockOffsetEstimator()).add_sample(now, now, now)

    async def _measure_clock(self, leg_id: str, pings: int | None = None) -> None:
        """Ping a leg's clock; the minimum round trip bounds the offset (DESIGN §6)."""
        est = self.clocks.setdefault(leg_id, ClockOffsetEstimator())
        for _ in range(max(1, pings or self.options.clock_pings)):
            t_send = time.time_ns()
            remote = await self.legs[leg_id].ping.remote()
            est.add_sample(t_send, remote, time.time_ns())

    def _track_clocks(self) -> None:
        """One more ping per leg, in the background, so offsets and drift stay measured
        while the basket runs (a leg whose ping fails is the silence check's business)."""
        for leg_id in self.legs:
            if leg_id in self._pinging:
                continue
            self._pinging.add(leg_id)
            task = self._tasks.spawn(self._ping_clock(leg_id), f"ping-{leg_id}")
            task.add_done_callback(lambda t, leg=leg_id: self._pinging.discard(leg))

    async def _ping_clock(self, leg_id: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._measure_clock(leg_id, pings=1), LEG_CALL_TIMEOUT_S)

    def _from_leg(self, leg_id: str, t_leg_ns: int) -> int:
        """A leg-clock time on the basket's axis."""
        est = self.clocks.get(leg_id)
        return est.to_local(t_leg_ns) if est is not None and est.ready else t_leg_ns

    def _to_leg(self, leg_id: str, t_ns: int) -> int:
        est = self.clocks.get(leg_id)
        return est.to_remote(t_ns) if est is not None and est.ready else t_ns

    async def _fire(self, basket: ResolvedBasket) -> None:
        """Hand the basket to its runner and fire every leg at one instant."""
        # A leg on this node has an exact clock sample (no round trip): it adds nothing here.
        worst_rtt = max((c.best.rtt_ns for c in self.clocks.values() if c.ready), default=0)
        # The floor covers the one fire call to each leg (a Ray call: ~0.7 ms at p50, 2-5
        # ms at p99 here) at the leg's busiest moment. A leg created for this basket has
        # just started: its process, venue client, streams and clock exchanges all began
        # within the last second or so, and their work can still hold up its event loop
        # when the call lands (measured on a loaded 2-core machine: once ~40 ms late):
        # 50 ms. A warm leg's process and connection have been idle for seconds, arming it
        # only opened its market stream (measured: the call lands 0.4-2 ms after it is
        # made, and every fire call of a warm basket was back within 6 ms on a busy 2-core
        # machine, yet at 10 ms two legs' first orders landed 6 ms apart on average, against
        # 1-3 ms at 15 or 20 ms): 15 ms.
        warm = bool(self.armed) and self._from_pool == set(self.armed)
        floor = self.options.warm_fire_lead_ms if warm else self.options.fire_lead_ms
        rtts = [a.venue_typical_rtt_ns or 0 for a in self.armed.values()]
        lead = BasketRunner.fire_lead_ns(int(floor * 1e6), worst_rtt, rtts)
        now = time.time_ns()
        fire_at = max(now + lead, basket.params.start_ns(now))
        self.runner = self._new_runner(basket)
        self._clock.run(lambda: self._r.fire(fire_at))
        if self._deferred:
            self._tasks.spawn(self._funded(), "funded")

    def _new_runner(self, basket: ResolvedBasket) -> BasketRunner:
        opts = self.options
        return BasketRunner(
            basket,
            self.lifecycle,
            self,
            self.risk,
            RunSettings(
                tick_ns=int(opts.tick_ms * 1e6),
                min_overrun_s=opts.min_overrun_s,
                unwind_deadline_s=opts.unwind_deadline_s,
                reconcile_deadline_s=RECONCILE_DEADLINE_S,
                leg_silence_ns=int(opts.leg_silence_s * NS),
            ),
            on_end=self._ended.set,
            deferred=self._deferred,
        )

    @property
    def _r(self) -> BasketRunner:
        assert self.runner is not None, "fired first"
        return self.runner

    @property
    def core(self) -> BasketCoordinator | None:
        return None if self.runner is None else self.runner.core

    def _crashed(self, error: BaseException) -> None:
        """A bug in a step of the runner: the basket fails (its policy applies) and says so."""
        if self.runner is not None and not self.runner.ending:
            self.runner.failure = self.runner.failure or f"internal error: {error!r}"
            self._clock.run(lambda: self._r.cancel("internal error"))

    # -- the runner's port (`BasketPort`) --------------------------------------------------
    def now_ns(self) -> int:
        return time.time_ns()

    def call_at(self, t_ns: int, fn: Any, *, precise: bool = False) -> Any:
        return self._clock.call_at(t_ns, fn, precise=precise)

    def fire(self, leg_id: str, at_ns: int, schedule_ns: int | None = None) -> None:
        since = None if schedule_ns is None else self._to_leg(leg_id, schedule_ns)
        ref = self.legs[leg_id].fire.remote(self._to_leg(leg_id, at_ns), since)
        self._tasks.spawn(ref_result(ref), f"fire-{leg_id}")  # a failure is logged; probes see it

    def adjust(self, adj: AdjustLeg) -> None:
        actor = self.legs.get(adj.leg_id)
        if actor is None:  # still being brought up (a take-over): it gets the newest later
            self._held_adjusts[adj.leg_id] = adj
            return
        actor.adjust.remote(adj)

    def exposure(self, e: ExposureChanged) -> None:
        basket = self.resolved
        if basket is None or basket.hedge is None or not basket.hedge.enabled:
            return
        assert self._exposure is not None  # opened when arming
        report = ExposureReport(
            basket_id=self.basket_id,
            seq=e.seq,
            hedge=basket.hedge,
            venue_epoch=self.endpoints[basket.hedge.venue].epoch,
            exposure=e.exposure,
            cause_ns=e.cause_ns,
            catchup_s=e.catchup_s,
            ts_ns=e.ts_ns,
            risk=self.options.risk,
        )
        self._exposure.send(report)

    def stop(self, leg_id: str, reason: str, then: Any) -> None:
        self._leg_call(leg_id, "stop", then, reason)

    def unwind(self, leg_id: str, within_ns: int, then: Any) -> None:
        self._leg_call(leg_id, "unwind", then, within_ns / NS, slack_s=within_ns / NS)

    def reconcile(self, leg_id: str, within_ns: int, then: Any) -> None:
        self._leg_call(leg_id, "reconcile", then, within_ns / NS, slack_s=within_ns / NS)

    def ping(self, leg_id: str, within_ns: int, then: Any) -> None:
        async def go() -> None:
            answer: str | None = None
            try:
                leg = self.legs[leg_id]
                await asyncio.wait_for(ref_result(leg.ping.remote()), within_ns / NS)
            except TimeoutError:
                answer = "timeout"
            except Exception as e:  # the actor (or its node) is gone
                answer = _short(e) or type(e).__name__
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"probe-{leg_id}")

    def recover(self, leg_id: str, then: Any, resume_after_ns: int | None = None) -> None:
        """A fresh leg actor for a lost leg, near its venue, rebuilt from the venue's
        records of the leg's client order ids (`LegActor.recover`); with
        `resume_after_ns`, one that then carries on the leg's schedule."""
        basket = self._r.basket
        leg = basket.leg(leg_id)
        opts = self.options
        actor = (
            remote(LegActor)
            .options(**actor_options(opts.namespace, opts.labels.get(leg.venue)))
            .remote(leg.venue)
        )
        cmd = self._arm_command(basket, leg_id, None)

        async def go() -> None:
            answer: Exception | None = None
            try:
                myself = ray.get_runtime_context().current_actor
                await asyncio.wait_for(
                    ref_result(
                        actor.recover.remote(cmd, myself, RECONCILE_DEADLINE_S, resume_after_ns)
                    ),
                    LEG_CALL_TIMEOUT_S,
                )
                kill([self.legs[leg_id]] if leg_id in self.legs else [])
                self.legs[leg_id] = actor
                held = self._held_adjusts.pop(leg_id, None)
                if held is not None:
                    actor.adjust.remote(held)
                self._recovered.add(leg_id)
                self.clocks.pop(leg_id, None)
                await self._measure_clock(leg_id)
            except Exception as e:
                answer = e
                kill([actor])
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"recover-{leg_id}")

    def resume(self, leg_id: str, elapsed_ns: int, then: Any) -> None:
        self.recover(leg_id, then, resume_after_ns=elapsed_ns)

    def close_hedge(self, hold: bool, then: Any) -> None:
        basket = self._r.basket
        hedge = basket.hedge
        assert hedge is not None
        ref = self.hedger.close.remote(
            self.basket_id,
            hedge,
            self.endpoints[hedge.venue].epoch,
            self.venues[hedge.venue],
            hold,
            self.options.risk,
        )
        self._answer(ref, then, "close-hedge", LEG_CALL_TIMEOUT_S)

    def hedge_gross_usd(self) -> float:
        return self._hedge_position

    def sampled(self, core: BasketCoordinator, hedge_usd: float, force: bool) -> None:
        """Every tick: now and then the legs' clocks and the hedge desk's position, in the
        background (a busy hedge must not slow the ticks)."""
        if force:
            return
        now = time.monotonic()
        if now >= self._clock_due:
            self._clock_due = now + CLOCK_EVERY_S
            self._track_clocks()
        basket = self.resolved
        hedged = basket is not None and basket.hedge is not None and basket.hedge.enabled
        # The desk's position changes when it trades, a few times a second at most: asked
        # on every tick, twenty baskets kept the hedge actor answering 200 calls a second.
        if hedged and self._hedge_poll is None and now >= self._hedge_poll_due:
            self._hedge_poll_due = now + HEDGE_POLL_EVERY_S
            self._hedge_poll = self._tasks.spawn(self._poll_hedge(), "hedge-poll")

    def _leg_call(
        self, leg_id: str, method: str, then: Any, *args: Any, slack_s: float = 0.0
    ) -> None:
        """A call to a leg, bounded: past `LEG_CALL_TIMEOUT_S` (plus the time the call is
        given to work, `slack_s`) the leg is taken for lost and `then` gets the error."""
        actor = self.legs.get(leg_id)
        if actor is None:  # taken over: the leg's actor went with the lost basket actor
            self._clock.call_at(0, lambda: then(RuntimeError(f"leg {leg_id} has no actor")))
            return
        ref = getattr(actor, method).remote(*args)
        self._answer(ref, then, f"{method}-{leg_id}", LEG_CALL_TIMEOUT_S + slack_s)

    def _answer(self, ref: Any, then: Any, name: str, timeout_s: float) -> None:
        """Await a Ray call in the background; its answer (or error) goes to `then`."""

        async def go() -> None:
            try:
                answer = await asyncio.wait_for(ref_result(ref), timeout_s)
            except Exception as e:
                answer = e
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), name)

    async def _poll_hedge(self) -> None:
        try:
            self._hedge_position = await asyncio.wait_for(
                self.hedger.position_of.remote(self.basket_id), LEG_CALL_TIMEOUT_S
            )
        except Exception as e:
            log.debug("basket %s: hedge position: %s", self.basket_id, _short(e))
        finally:
            self._hedge_poll = None

    async def _stop_legs(self) -> None:
        if self.legs:
            await asyncio.gather(
                *(leg.stop.remote() for leg in self.legs.values()), return_exceptions=True
            )

    async def _release(self) -> None:
        """Give the collateral back; a collateral actor that is restarting is asked again
        (for up to `RELEASE_RETRY_S`: it holds the reservation again from the journal)."""
        if self.reserved is None or self.released:
            return
        deadline = time.monotonic() + RELEASE_RETRY_S
        wait = 0.1
        while True:
            try:
                await self.collateral.release.remote(self.basket_id, self.lifecycle.state.value)
                self.released = True
                return
            except ActorUnavailableError as e:
                if time.monotonic() + wait > deadline:
                    self.notes.append(f"collateral: release failed: {_short(e)}")
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)
            except Exception as e:
                self.notes.append(f"collateral: release failed: {_short(e)}")
                return

    async def _close_legs(self) -> None:
        if self.legs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(leg.close.remote() for leg in self.legs.values()),
                        return_exceptions=True,
                    ),
                    LEG_CALL_TIMEOUT_S,
                )

    # -- the report --------------------------------------------------------------------------
    async def _report(self) -> BasketReport:
        basket = self.resolved
        legs: dict[str, LegReport | None] = {}
        notes: list[str] = []
        if self.legs:
            got = await asyncio.gather(
                *(
                    asyncio.wait_for(ref_result(leg.report.remote()), LEG_CALL_TIMEOUT_S)
                    for leg in self.legs.values()
                ),
                return_exceptions=True,
            )
            for leg_id, r in zip(self.legs, got, strict=True):
                if isinstance(r, LegReport):
                    legs[leg_id] = self._on_basket_axis(leg_id, r)
                else:
                    notes.append(f"leg {leg_id}: no report: {_short(r)}")
                    legs[leg_id] = None
        kill(list(self.legs.values()))
        collateral = CollateralReport(released=self.released)
        if self.reserved is not None:
            collateral.reserved = dict(self.reserved.needs)
            collateral.holdings = {v: dict(h) for v, h in self.reserved.holdings.items()}
        if self.refused is not None:
            collateral.refused = [s.message for s in self.refused.shortfalls]
            collateral.refused += [
                f"venue {v}: no account figure" for v in self.refused.unknown_venues
            ]
        if self.funding is not None:
            why_not = self.refused.reason if self.refused is not None else ""
            collateral.funding = funding_story(self.funding, self.funded_ns, why_not)
            try:
                collateral.transfers = await asyncio.wait_for(
                    ref_result(self.collateral.transfers.remote(self.basket_id)),
                    LEG_CALL_TIMEOUT_S,
                )
            except Exception as e:  # the transfers as the basket last heard of them
                notes.append(f"transfers: the collateral actor did not list them: {_short(e)}")
                collateral.transfers = list(self.funding.transfers)
        venue_nodes = {
            v: {"node_id": e.placement.node_id, **e.placement.node_labels}
            for v, e in self.endpoints.items()
            if e.placement is not None and (basket is None or v in _venues_of(basket))
        }
        if self.runner is not None:
            report = self.runner.report(
                legs,
                submitted_ns=self.submitted_ns,
                collateral=collateral,
                venue_nodes=venue_nodes,
                notes=[*self.notes, *notes],
            )
        else:  # it ended before firing: nothing was sent
            report = BasketReport(
                basket_id=self.basket_id,
                status=self.lifecycle.state,
                policy=basket.policy if basket is not None else self.spec.policy,
                reason=self.reason,
                submitted_ns=self.submitted_ns,
                launched_ns=None,
                completed_ns=self.completed_ns,
                legs=[],
                hedge=None,
                collateral=collateral,
                fraction=1.0,
                venue_nodes=venue_nodes,
                history=list(self.lifecycle.history),
                notes=[*(basket.notes if basket is not None else []), *self.notes, *notes],
            )
        self.metrics.finished(report)
        await self._journal_report(report)
        return report

    # -- the journal -------------------------------------------------------------------------
    async def _open_journal(self) -> None:
        """Open the run's journal (once) and write the states it missed."""
        journal = self.journal
        if journal is None:
            return
        if self._journal_opened is None:
            self._journal_opened = asyncio.ensure_future(journal.open())
        await asyncio.shield(self._journal_opened)
        for change in self._early_states:
            self._record_state(change)
        self._early_states.clear()

    def _record_state(self, change: StateChanged) -> None:
        if self.journal is not None and self.journal.opened:
            self.journal.record(
                BasketStateChanged(
                    run_id=self.run_id, state=change.state, reason=change.reason, ts_ns=change.ts_ns
                )
            )
        elif self.journal is not None:
            self._early_states.append(change)

    async def _journal_report(self, report: BasketReport) -> None:
        """The report goes into the journal, committed, before anyone is given it; then
        the journal is closed (every record of this actor written, or said not to be)."""
        journal = self.journal
        if journal is None:
            return
        try:
            await self._open_journal()
            await journal.durable(
                BasketReported(
                    run_id=self.run_id,
                    report=msgspec.json.encode(report).decode(),
                    ts_ns=time.time_ns(),
                )
            )
        except Exception as e:
            log.error("basket %s: the report could not be journaled: %s", self.run_id, e)
        finally:
            await journal.close()

    def _on_basket_axis(self, leg_id: str, r: LegReport) -> LegReport:
        """Map a leg's times (leg clock) and its venue's (venue clock) onto the basket's,
        each through the offset measured nearest it, drift included (DESIGN §6)."""
        est = self.clocks.get(leg_id)

        def leg_time(t: int | None) -> int | None:
            return None if t is None else self._from_leg(leg_id, t)

        def venue_time(t: int | None) -> int | None:
            if t is None:
                return None
            on_leg = remote_to_local(
                t,
                r.venue_clock_offset_ns,
                r.venue_clock_at_ns if r.venue_clock_at_ns is not None else t,
                r.venue_clock_drift_ppm,
                VENUE_TICK_NS,
            )
            return self._from_leg(leg_id, on_leg)

        for child in r.child_orders:
            child.sent_ns = self._from_leg(leg_id, child.sent_ns)
            child.ack_ns = leg_time(child.ack_ns)
            child.venue_receive_ns = venue_time(child.venue_receive_ns)
            child.venue_accept_ns = venue_time(child.venue_accept_ns)
            child.fill_marks = [(venue_time(t) or t, q) for t, q in child.fill_marks]
        r.first_send_ns = leg_time(r.first_send_ns)
        r.first_ack_ns = leg_time(r.first_ack_ns)
        r.first_venue_accept_ns = venue_time(r.first_venue_accept_ns)
        if est is not None and est.ready:
            launched = self.runner.launched_ns if self.runner is not None else None
            at = launched or est.latest_ns
            r.clock_offset_ns = est.offset_at(at)
            r.clock_uncertainty_ns = est.uncertainty_at(at)
        return r


def _venues_of(basket: ResolvedBasket) -> set[str]:
    hedge = {basket.hedge.venue} if basket.hedge is not None else set()
    return {leg.venue for leg in basket.legs} | hedge


def _not_funded(basket_id: str, e: BaseException) -> Refused:
    return Refused(
        basket_id=basket_id,
        reason=f"the collateral actor did not say whether the funds landed: {_short(e)}",
        ts_ns=time.time_ns(),
    )


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__
