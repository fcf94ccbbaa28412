"""`BasketRegistry`: the supervisor of a namespace's baskets (DESIGN §9): which basket ids
are taken, whose turn it is to arm, every run's identity, and who carries a basket on
when its actor is lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
import ray
from ray.exceptions import RayActorError

from actors.admission import Admission, AdmissionQueue, Limits
from actors.journal import JournalError, split_run_id
from actors.journal.records import BasketReported, BasketStateChanged, BasketSubmitted
from actors.lifecycle import BasketState
from actors.protocol import BasketOptions
from actors.report import BasketReport
from actors.shells.journaling import ActorJournal
from actors.shells.metrics import PUBLISH_EVERY_S, BasketStates
from actors.shells.remote import (
    COLLATERAL_NAME,
    HEDGE_NAME,
    NAMESPACE,
    basket_actor_name,
    basket_actor_options,
    kill,
    ref_result,
    remote,
    venue_actor_name,
)
from actors.shells.tasks import BackgroundTasks
from actors.spec import load_basket, new_nonce, order_prefix

log = logging.getLogger(__name__)

NS = 1_000_000_000
REGISTRY_PROBE_S = 5.0  # how long the registry waits for a basket id's holder to answer
TAKE_OVER_ATTEMPTS = 3  # fresh actors a lost basket is given before it is left to an operator
# A run opened by a driver still submitting it is the driver's until it calls `supervise`
# (or `abandon_run`): no recovery touches it this long after `open_run` (the engine gives a
# submission 60 s per step: checking the basket, claiming its id). Past it, the driver is
# taken for dead and the run for unfinished.
OPENING_GRACE_S = 180.0


class RunNotFound(LookupError):
    """No run of that identity (or basket id) in the journal."""


class BasketRegistry:
    """Which basket ids are taken in a namespace, and by which basket actor (a named,
    detached singleton, `REGISTRY_NAME`); and which baskets may arm now.

    A basket id starts every client order id, so two live baskets must never share one.
    The actor's name used to say so, but an actor from the warm pool was created before its
    basket was known and has no name to tell; every submission claims its id here instead.
    A claim is refused while the holder lives; a holder that died (its driver gone with it)
    is found out when someone else claims the id.

    Every basket also asks here for its turn to arm (`AdmissionQueue`): at most its
    engine's `max_arming` baskets of the namespace arm at once (and `max_running` arm or
    run), the others wait in line (QUEUED).
    """

    def __init__(self, journal: str = "", namespace: str = NAMESPACE) -> None:
        """`journal`: where the journal lives ("" : none: runs have no identity and a lost
        basket cannot be taken over). The actor is restarted when it dies
        (`singleton_options`); the new one adopts the baskets still at work and takes over
        those whose actor is gone (`recover`)."""
        self.namespace = namespace
        self.location = journal
        self._tasks = BackgroundTasks("supervisor")
        self.journal = ActorJournal(journal, self._tasks, _call, "supervisor") if journal else None
        self._opened: asyncio.Future[None] | None = None
        self._watched: dict[str, asyncio.Future[BasketReport]] = {}  # run id → its report
        self._engine: dict[str, Any] = {}  # the latest engine's handles (`configure`)
        self.taken_over: list[str] = []  # runs carried on by a fresh actor, oldest first
        self._restarted = _reconstructed()
        self._held: dict[str, tuple[str, Any]] = {}  # basket id → (claim token, actor)
        self._opening: dict[str, float] = {}  # run id → monotonic time of its `open_run`
        self._lock = asyncio.Lock()
        self._queue = AdmissionQueue()
        self._turns: dict[str, asyncio.Event] = {}  # basket id → set when its turn comes
        self._expiry: asyncio.TimerHandle | None = None
        self._states = BasketStates()
        self._publishing: asyncio.Task[None] | None = None

    # -- the turn to arm ---------------------------------------------------------------------
    async def queue_to_arm(self, basket_id: str, limits: Limits) -> Admission:
        """Ask for a turn to arm: admitted now, or the place in line (then `await_turn`).
        The turn is held until `armed`, the place until `ended` (each within its lease)."""
        answer = self._queue.ask(basket_id, limits, time.time_ns())
        self._on_queue_change()
        return answer

    async def await_turn(self, basket_id: str) -> Admission:
        """Returns when the basket's turn to arm has come (at once if it has, or if the
        basket is not in line)."""
        while basket_id in self._queue.waiting:
            turn = self._turns.setdefault(basket_id, asyncio.Event())
            await turn.wait()
        self._turns.pop(basket_id, None)
        return self._queue.where(basket_id)

    async def armed(self, basket_id: str) -> None:
        """The basket armed, or failed to: the next one's turn to arm."""
        self._queue.armed(basket_id, time.time_ns())
        self._on_queue_change()

    async def ended(self, basket_id: str) -> None:
        """The basket ended (or left the line): its place goes to the next."""
        self._queue.ended(basket_id, time.time_ns())
        waiting = self._turns.pop(basket_id, None)
        if waiting is not None:  # left the line: its `await_turn` returns
            waiting.set()
        self._on_queue_change()

    def admission_queue(self) -> dict[str, list[str]]:
        """The baskets arming, running and waiting, in order (for tools and tests)."""
        q = self._queue
        return {"arming": q.arming, "running": q.running, "waiting": q.waiting}

    def _on_queue_change(self) -> None:
        for basket_id in self._queue.arming + self._queue.running:  # wake their `await_turn`
            if basket_id in self._turns:
                self._turns[basket_id].set()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        expiry = self._queue.next_expiry_ns
        if expiry is not None and self._queue.waiting:
            delay = max(0.0, (expiry - time.time_ns()) / NS)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self._queue.expire(time.time_ns())
        self._on_queue_change()

    async def claim(self, basket_id: str, token: str, actor: Any) -> bool:
        """Take `basket_id` for `actor` (`token` identifies this claim); False while another
        live basket actor holds it."""
        async with self._lock:  # two claims of one id must not both see the holder dead
            held = self._held.get(basket_id)
            if held is not None and held[0] != token and await _alive(held[1]):
                return False
            self._held[basket_id] = (token, actor)
            return True

    def release(self, basket_id: str, token: str) -> None:
        """Give the id back (only the claim that holds it can)."""
        held = self._held.get(basket_id)
        if held is not None and held[0] == token:
            del self._held[basket_id]

    async def running(self) -> dict[str, Any]:
        """The live basket actors by basket id (for `legato status` and `cancel`)."""
        held = dict(self._held)
        alive = await asyncio.gather(*(_alive(actor) for _, actor in held.values()))
        out = {}
        for (basket_id, claim), up in zip(held.items(), alive, strict=True):
            if up:
                out[basket_id] = claim[1]
            elif self._held.get(basket_id) == claim:  # dead, and not claimed anew meanwhile
                del self._held[basket_id]
        return out

    # -- run identities ----------------------------------------------------------------------
    async def open_run(
        self,
        basket_id: str,
        spec_text: str,
        longest_leg_id: str,
        options: BasketOptions,
        venues_digest: str = "",
        submitted_by: str = "",
    ) -> tuple[str, str]:
        """A new run of `basket_id`: its identity (`"<basket_id>#<n>"`, never given before in
        this journal) and its client order id prefix, with the spec journaled (committed)
        before either is handed out. Without a journal: no identity, and a prefix made
        unique by its random tag alone."""
        if self.journal is None:
            return "", order_prefix(basket_id, 0, new_nonce(), longest_leg_id)
        await self._open()
        store = self.journal.store
        run_id = await store.new_run(basket_id)
        _, number = split_run_id(run_id)
        prefix = order_prefix(basket_id, number, new_nonce(), longest_leg_id)
        await self.journal.durable(
            BasketSubmitted(
                run_id=run_id,
                basket_id=basket_id,
                spec=spec_text,
                spec_format="toml",
                venues_digest=venues_digest,
                ts_ns=time.time_ns(),
                submitted_by=submitted_by,
                order_prefix=prefix,
                options=msgspec.json.encode(options).decode(),
            )
        )
        self._opening[run_id] = time.monotonic()
        return run_id, prefix

    def journal_location(self) -> str:
        """Where this namespace's journal lives (one per namespace)."""
        return self.location

    async def abandon_run(self, run_id: str, reason: str) -> None:
        """A run that never started (its submission failed): FAILED in the journal, so that
        no recovery takes it for unfinished."""
        if self.journal is None or not run_id:
            return
        self._opening.pop(run_id, None)
        await self._open()
        await self.journal.durable(
            BasketStateChanged(
                run_id=run_id, state=BasketState.FAILED, reason=reason, ts_ns=time.time_ns()
            )
        )

    async def _open(self) -> None:
        if self.journal is None:
            raise JournalError("this engine has no journal")
        if self._opened is None:
            self._opened = asyncio.ensure_future(self.journal.open())
        await asyncio.shield(self._opened)
        if self._publishing is None:
            self._publishing = self._tasks.spawn(self._publish_states(), "basket-states")

    async def _publish_states(self) -> None:
        """`legato_baskets{state}`, every `PUBLISH_EVERY_S`: the journal's state of every run
        this supervisor carries or a driver is submitting (a restarted supervisor carries
        on the same runs, so the figure survives it)."""
        store = self.journal.store  # type: ignore[union-attr]
        while True:
            try:
                ours = self._opening.keys() | {r for r, f in self._watched.items() if not f.done()}
                runs = await store.runs(unfinished_only=True) if ours else []
                self._states.publish(i.state for i in runs if i.run_id in ours)
            except JournalError as e:
                log.warning("supervisor: basket states for the metrics: %s", e)
            await asyncio.sleep(PUBLISH_EVERY_S)

    def configure(
        self,
        venues: dict[str, Any],
        endpoints: dict[str, Any],
        collateral: Any,
        hedger: Any,
    ) -> None:
        """The engine's venue actors, their endpoints and the singletons, for take-overs
        (a supervisor that restarted finds them by name)."""
        self._engine = {
            "venues": dict(venues),
            "endpoints": dict(endpoints),
            "collateral": collateral,
            "hedger": hedger,
        }

    # -- supervision -------------------------------------------------------------------------
    async def supervise(self, run_id: str, actor: Any, legs: dict[str, Any]) -> BasketReport:
        """Run the basket on `actor` to its end and return its report. The supervisor owns
        the run from here: a driver that dies does not stop it, and when the actor is lost
        the basket is taken over (`take_over`) from the journal."""
        await self._after_restart()
        self._opening.pop(run_id, None)
        if run_id and run_id in self._watched:
            return await asyncio.shield(self._watched[run_id])
        watch = self._tasks.spawn(
            self._watch(run_id, actor, actor.run.remote(legs), list(legs.values())), run_id
        )
        if run_id:
            self._watched[run_id] = watch
        return await asyncio.shield(watch)

    async def follow(self, run: str) -> BasketReport:
        """The report of `run` (a run id, or a basket id: its latest run), once it has
        ended: from the basket at work, or from the journal. A run the journal shows
        unfinished that nobody carries on is taken over first."""
        await self._after_restart()
        run_id = await self.resolve(run)
        await self._while_opening(run_id)
        watched = self._watched.get(run_id)
        if watched is not None:
            return await asyncio.shield(watched)
        store = self.journal.store  # type: ignore[union-attr]
        info = await store.run(run_id)
        if info is not None and info.finished:
            return await self._journaled_report(run_id)
        self._recover_run(run_id)
        return await asyncio.shield(self._watched[run_id])

    async def resolve(self, run: str) -> str:
        """A run id from a run id or a basket id (its latest run); `RunNotFound` if none."""
        await self._open()
        store = self.journal.store  # type: ignore[union-attr]
        if "#" in run:
            if await store.run(run) is None:
                raise RunNotFound(f"no run {run!r} in the journal; `legato history` lists them")
            return run
        latest = await store.latest_run(run)
        if latest is None:
            raise RunNotFound(
                f"basket {run!r} never ran with this journal; `legato history` lists the runs"
            )
        return latest.run_id

    async def recover(self) -> list[str]:
        """Every run of this namespace the journal shows unfinished and nobody watches:
        adopted when its basket actor still works, else taken over. Returns their ids. A
        run a driver is still submitting (opened, not yet supervised, within
        `OPENING_GRACE_S`) is left to it."""
        if self.journal is None:
            return []
        await self._open()
        found = []
        now = time.monotonic()
        for info in await self.journal.store.runs(unfinished_only=True):
            if info.run_id in self._watched or not await self._ours(info.run_id):
                continue
            opened = self._opening.get(info.run_id)
            if opened is not None and now - opened < OPENING_GRACE_S:
                continue  # a driver is submitting it: `supervise` comes next
            self._opening.pop(info.run_id, None)
            self._recover_run(info.run_id)
            found.append(info.run_id)
        return found

    async def _while_opening(self, run_id: str) -> None:
        """Wait while a driver is still submitting `run_id` (until it is supervised, or
        abandoned, or `OPENING_GRACE_S` has passed)."""
        while run_id in self._opening and run_id not in self._watched:
            if time.monotonic() - self._opening[run_id] >= OPENING_GRACE_S:
                return
            await asyncio.sleep(0.1)

    async def watching(self) -> list[str]:
        """The runs this supervisor carries on now."""
        return [r for r, f in self._watched.items() if not f.done()]

    async def _after_restart(self) -> None:
        if self._restarted:
            self._restarted = False
            found = await self.recover()
            log.warning("supervisor restarted: carrying on %s", found or "no run")

    async def _ours(self, run_id: str) -> bool:
        submitted = await self._submitted(run_id)
        if submitted is None:
            return False
        options = _options(submitted)
        return options.namespace == self.namespace

    def _recover_run(self, run_id: str) -> None:
        self._watched[run_id] = self._tasks.spawn(self._adopt_or_take_over(run_id), run_id)

    async def _adopt_or_take_over(self, run_id: str) -> BasketReport:
        basket_id, _ = split_run_id(run_id)
        try:
            actor = ray.get_actor(basket_actor_name(basket_id), namespace=self.namespace)
        except ValueError:
            actor = None
        if actor is not None:
            try:
                busy = await asyncio.wait_for(
                    ref_result(actor.run_id_of.remote()), REGISTRY_PROBE_S
                )
            except Exception:
                busy = ""
            if busy == run_id:  # still at work: followed, not replaced
                self._held.setdefault(basket_id, (run_id, actor))
                return await self._watch(run_id, actor, actor.outcome.remote())
        return await self._take_over(run_id, "its basket actor is gone")

    async def _watch(
        self, run_id: str, actor: Any, ref: Any, pooled: list[Any] | None = None
    ) -> BasketReport:
        """`pooled`: the warm pool's leg actors the run was lent (detached, so not ended
        with their basket actor): ended with the run, or when its actor is lost (a
        take-over brings up legs of its own)."""
        try:
            report = await ref
        except BaseException as e:
            kill(pooled or [])  # before a take-over brings up legs of its own
            if not isinstance(e, RayActorError) or not run_id or self.journal is None:
                raise
            log.warning("run %s: its basket actor was lost (%s): taking over", run_id, e)
            return await self._take_over(run_id, "its basket actor was lost")
        # Its name, its memory: the report is in the journal.
        kill([actor, *(pooled or [])])
        self._states.ended(report.status)
        return report

    async def _take_over(self, run_id: str, why: str) -> BasketReport:
        """A fresh basket actor carries `run_id` on from the journal (`BasketActor.take_over`);
        one that is lost in turn is replaced, up to `TAKE_OVER_ATTEMPTS` times."""
        # Imported here: the basket actor's module is large, and only take-overs need it.
        from actors.shells.basket import BasketActor  # noqa: PLC0415

        submitted = await self._submitted(run_id)
        if submitted is None:
            raise RunNotFound(f"run {run_id}: the journal has no spec for it")
        spec = load_basket(submitted.spec)
        options = msgspec.structs.replace(
            _options(submitted),
            run_id=run_id,
            order_prefix=submitted.order_prefix,
            journal=self.location,
            namespace=self.namespace,
        )
        last: Exception | None = None
        for attempt in range(1, TAKE_OVER_ATTEMPTS + 1):
            handles = await self._handles(spec_venues(spec))
            actor = (
                remote(BasketActor)
                .options(**basket_actor_options(self.namespace, spec.basket_id))
                .remote(
                    spec,
                    handles["venues"],
                    handles["endpoints"],
                    handles["collateral"],
                    handles["hedger"],
                    options,
                    ray.get_runtime_context().current_actor,
                )
            )
            self._held[spec.basket_id] = (run_id, actor)
            self.taken_over.append(run_id)
            log.warning("run %s: taken over (%s), attempt %d", run_id, why, attempt)
            try:
                report = await actor.take_over.remote()
            except RayActorError as e:
                last = e
                continue
            kill([actor])
            return report
        raise RuntimeError(
            f"run {run_id}: {TAKE_OVER_ATTEMPTS} take-overs were lost in turn; last: {last}"
        )

    async def _handles(self, venues: set[str]) -> dict[str, Any]:
        """The engine's handles (as configured, or found by name after a restart)."""
        engine = self._engine
        if engine and venues <= set(engine["venues"]):
            return engine
        found = {v: ray.get_actor(venue_actor_name(v), namespace=self.namespace) for v in venues}
        endpoints = dict(
            zip(
                found,
                await asyncio.gather(*(a.start.remote() for a in found.values())),
                strict=True,
            )
        )
        return {
            "venues": found,
            "endpoints": endpoints,
            "collateral": ray.get_actor(COLLATERAL_NAME, namespace=self.namespace),
            "hedger": ray.get_actor(HEDGE_NAME, namespace=self.namespace),
        }

    async def _submitted(self, run_id: str) -> BasketSubmitted | None:
        await self._open()
        records = await self.journal.store.records(run_id, [BasketSubmitted])  # type: ignore[union-attr]
        return next((e.record for e in records if isinstance(e.record, BasketSubmitted)), None)

    async def _journaled_report(self, run_id: str) -> BasketReport:
        records = await self.journal.store.records(run_id, [BasketReported])  # type: ignore[union-attr]
        if not records:
            raise RunNotFound(f"run {run_id} ended without a report in the journal")
        body = records[-1].record.report  # type: ignore[union-attr]
        return msgspec.json.decode(body, type=BasketReport)


async def _alive(actor: Any) -> bool:
    """Does the actor answer? One that does not within the time is taken as alive: a busy
    basket must not lose its id to a newcomer."""
    try:
        await asyncio.wait_for(ref_result(actor.alive.remote()), REGISTRY_PROBE_S)
    except TimeoutError:
        return True
    except Exception:  # the actor died (RayActorError), or it is no basket actor at all
        return False
    return True


def _call(fn: Callable[[], None]) -> None:
    fn()


def _reconstructed() -> bool:
    """Is this actor a restart of one that died? (False outside an actor.)"""
    if not ray.is_initialized():
        return False
    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # not in an actor (unit tests)
        return False


def _options(submitted: BasketSubmitted) -> BasketOptions:
    if not submitted.options:
        return BasketOptions()
    return msgspec.json.decode(submitted.options, type=BasketOptions)


def spec_venues(spec: Any) -> set[str]:
    """The venues a run's spec trades on (legs, targets and its hedge)."""
    venues: set[str] = set()
    for leg in getattr(spec, "legs", []) or []:
        venues.add(leg.venue)
    if getattr(spec, "targets", None):
        venues.update(v for v in spec.venues.values())
        if spec.venue is not None:
            venues.add(spec.venue)
    if spec.hedge is not None:
        venues.add(spec.hedge.venue)
    return venues
