"""The warm pool: leg and basket actors created and connected ahead of the baskets that will
use them, so that a submitted basket does not wait for them (DESIGN §5.3, issue 7).

A cold basket pays for a basket actor (a new worker process: about half a second on a
small machine), a leg actor per leg (the same, in parallel), and each leg's connection to
its venue (client start and eight venue-clock exchanges: over a second to a distant venue)
before it can fire. The pool keeps, per venue, `legs_per_venue` leg actors that are already
connected and tracking their venue's clock, and `baskets` idle basket actors that have
already reached the venues and singletons once. `Engine.submit` takes from it; what it
takes is replaced in the background once the basket it went to has ended. Like a
connection pool's size, the pool's size counts the actors it lent out: a burst as large as
the pool runs without the pool starting a new process under it (each costs about a core
second, and its memory), and the pool never holds more than its size.

Pooled actors are detached: the basket an actor is lent to keeps it when the driver that
filled the pool dies (the supervisor ends it with its run). While idle, an actor lives on
its pool's lease (`actors.shells.lease`), renewed every few seconds by the control loop:
should the driver die, its idle actors exit by themselves once the lease runs out.

All Ray calls of the pool are made here, by the engine's process: a control loop on a
thread compares what the pool holds with what it should hold and creates what is missing;
it is idempotent and survives a failing step (STYLE: Ray Serve's controller). Each pooled
actor has a call pending on it (`idle`) that ends only when the actor is handed out or
dies, so a dead actor is known here without asking it, and never handed out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import ray

from actors.protocol import VenueEndpoint
from actors.shells.lease import LEASE_RENEW_SHARE, LEASE_S
from actors.shells.leg import LegActor
from actors.shells.remote import actor_options, remote

log = logging.getLogger(__name__)

BASKET = ""  # the pool key of basket actors (leg actors are keyed by their venue)
LOOP_EVERY_S = 0.1  # how often the control loop looks at the pool
# A slot taken is refilled this long after the last take: a new actor's process start costs
# about a core-second, which on a small machine would otherwise be taken from the basket
# just launched, whose legs are firing meanwhile.
REFILL_AFTER_S = 1.0
RETRY_MAX_S = 30.0  # actors that fail to warm up are replaced after a growing pause, up to this


class PoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the pool holds and has done since the engine started."""

    ready_legs: dict[str, int]  # per venue: connected leg actors ready to hand out
    warming_legs: dict[str, int]  # per venue: created, still connecting
    ready_baskets: int
    warming_baskets: int
    lent_legs: dict[str, int]  # per venue: handed out, their basket still running
    lent_baskets: int
    created: int  # actors the pool created
    handed_out: int  # actors it gave to baskets
    dead: int  # actors found dead, or failed to warm up, and never handed out


@dataclass(eq=False)
class _Member:
    key: str  # a venue name, or BASKET
    actor: Any
    warmed: Any  # ObjectRef of connect() / warm(): done when the actor is warm
    idle: Any  # ObjectRef of idle(): pending until handed out, or failed when the actor died
    ready: bool = False


@dataclass
class _Slots:
    want: int
    members: list[_Member] = field(default_factory=list)
    lent: list[Any] = field(default_factory=list)  # a basket's run ref per actor lent out
    taken_at: float = float("-inf")  # monotonic time of the newest take
    failures: int = 0  # warm-ups failed in a row
    retry_at: float = float("-inf")


class WarmPool:
    """Warm leg actors per venue and idle basket actors for one engine (see the module
    docstring). `make_basket` creates an idle basket actor (the engine knows its
    arguments); leg actors are created here, on their venue's label when it has one."""

    def __init__(
        self,
        *,
        legs_per_venue: int,
        baskets: int,
        namespace: str,
        labels: dict[str, dict[str, str]],
        endpoints: dict[str, VenueEndpoint],
        make_basket: Callable[[], Any],
        lease_s: float = LEASE_S,
    ) -> None:
        """`lease_s`: how long an idle actor outlives its pool's last renewal (renewed
        every `lease_s / 6`)."""
        self.namespace = namespace
        self.lease_s = lease_s
        self.labels = labels
        self.endpoints = endpoints
        self._make_basket = make_basket
        self._slots: dict[str, _Slots] = {v: _Slots(legs_per_venue) for v in endpoints}
        self._slots[BASKET] = _Slots(baskets)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._created = 0
        self._handed_out = 0
        self._dead = 0
        self._renewed = float("-inf")  # monotonic time of the last lease renewal
        self._thread = threading.Thread(target=self._loop, name="legato-warm-pool", daemon=True)
        self._step()  # the first actors are on their way before start() returns
        self._thread.start()

    # -- taking ------------------------------------------------------------------------------
    def take_basket(self) -> Any | None:
        """An idle basket actor, or None (none ready: the caller creates one)."""
        member = self._take(BASKET)
        return None if member is None else member.actor

    def take_legs(self, venues: dict[str, str]) -> dict[str, Any]:
        """A connected leg actor for each leg (leg id → venue) whose venue has one ready;
        the legs left out get actors of their own."""
        out: dict[str, Any] = {}
        for leg_id, venue in venues.items():
            member = self._take(venue)
            if member is not None:
                out[leg_id] = member.actor
        return out

    def _take(self, key: str) -> _Member | None:
        with self._lock:
            slots = self._slots.get(key)
            if slots is None:
                return None
            self._reap(key, slots)
            member = next((m for m in slots.members if m.ready), None)
            if member is None:
                return None
            slots.members.remove(member)
            if key != BASKET:  # a basket actor leaves the lease when it is assigned
                member.actor.lent.remote()
            slots.taken_at = time.monotonic()
            self._handed_out += 1
            return member

    def lend(self, run: Any, keys: list[str]) -> None:
        """The actors just taken for `keys` (a venue per leg, `BASKET`) went to the basket
        whose `run` ref this is: they count against the pool's size until it ends."""
        with self._lock:
            for key in keys:
                slots = self._slots.get(key)
                if slots is not None:
                    slots.lent.append(run)

    # -- state -------------------------------------------------------------------------------
    def stats(self) -> PoolStats:
        with self._lock:
            for key, slots in self._slots.items():
                self._reap(key, slots)
            legs = {k: s for k, s in self._slots.items() if k != BASKET}
            baskets = self._slots[BASKET]
            return PoolStats(
                ready_legs={v: sum(m.ready for m in s.members) for v, s in legs.items()},
                warming_legs={v: sum(not m.ready for m in s.members) for v, s in legs.items()},
                ready_baskets=sum(m.ready for m in baskets.members),
                warming_baskets=sum(not m.ready for m in baskets.members),
                lent_legs={v: len(s.lent) for v, s in legs.items()},
                lent_baskets=len(baskets.lent),
                created=self._created,
                handed_out=self._handed_out,
                dead=self._dead,
            )

    def idle_actors(self, key: str) -> list[Any]:
        """The ready actors of a venue's legs (or, with `BASKET`, the idle basket actors)."""
        with self._lock:
            slots = self._slots.get(key)
            return [] if slots is None else [m.actor for m in slots.members if m.ready]

    def full(self) -> bool:
        """Is every slot filled with a ready actor?"""
        with self._lock:
            for key, slots in self._slots.items():
                self._reap(key, slots)
            return all(sum(m.ready for m in s.members) >= s.want for s in self._slots.values())

    def wait_full(self, timeout_s: float) -> bool:
        """Wait (bounded) until every slot holds a ready actor; False if the time ran out."""
        deadline = time.monotonic() + timeout_s
        while not self.full():
            if time.monotonic() > deadline:
                return False
            time.sleep(LOOP_EVERY_S)
        return True

    # -- the control loop ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(LOOP_EVERY_S):
            if not ray.is_initialized():  # Ray went down under us (the process is ending)
                return
            try:
                self._step()
            except Exception:  # one bad step must not end the loop (nor the engine)
                log.exception("warm pool: a step failed; trying again")

    def _step(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            now = time.monotonic()
            renew = now - self._renewed >= self.lease_s * LEASE_RENEW_SHARE
            for key, slots in self._slots.items():
                self._reap(key, slots)
                if renew:
                    for m in slots.members:
                        m.actor.lease.remote(self.lease_s)
                if now < max(slots.retry_at, slots.taken_at + REFILL_AFTER_S):
                    continue
                for _ in range(slots.want - len(slots.members) - len(slots.lent)):
                    slots.members.append(self._create(key))
                    self._created += 1
            if renew:
                self._renewed = now

    def _reap(self, key: str, slots: _Slots) -> None:
        """Drop the members that died; mark those whose warm-up finished as ready (or drop
        them if it failed); free the places of lent actors whose basket ended. Local checks
        only: `ray.wait` with a zero timeout asks nobody."""
        if slots.lent:
            runs = list(dict.fromkeys(slots.lent))  # a basket with two legs on a venue: twice
            ended, _ = ray.wait(runs, num_returns=len(runs), timeout=0, fetch_local=False)
            if ended:
                over = set(ended)
                slots.lent = [run for run in slots.lent if run not in over]
        if not slots.members:
            return
        idle = [m.idle for m in slots.members]
        ended, _ = ray.wait(idle, num_returns=len(idle), timeout=0, fetch_local=False)
        gone = {id(m) for m in slots.members if m.idle in ended}
        warming = [m.warmed for m in slots.members if not m.ready and id(m) not in gone]
        warmed, _ = ray.wait(warming, num_returns=len(warming), timeout=0) if warming else ([], [])
        for m in slots.members:
            if id(m) in gone or m.warmed not in warmed:
                continue
            try:
                ray.get(m.warmed, timeout=0)
            except Exception as e:
                log.warning("warm pool: a %s actor failed to warm up: %s", _what(key), e)
                gone.add(id(m))
                slots.failures += 1
                slots.retry_at = time.monotonic() + min(
                    RETRY_MAX_S, 0.5 * 2 ** min(slots.failures, 10)
                )
                continue
            m.ready = True
            slots.failures = 0
        if gone:
            dead = [m for m in slots.members if id(m) in gone]
            slots.members = [m for m in slots.members if id(m) not in gone]
            self._dead += len(dead)
            _kill([m.actor for m in dead])

    def _create(self, key: str) -> _Member:
        """A new pooled actor: detached (it may outlive this driver, lent to a basket) and
        on the pool's lease from its first call."""
        if key == BASKET:
            actor = self._make_basket()
            actor.lease.remote(self.lease_s)
            return _Member(key, actor, actor.warm.remote(), actor.idle.remote())
        actor = (
            remote(LegActor)
            .options(**pooled_options(self.namespace, self.labels.get(key)))
            .remote(key)
        )
        actor.lease.remote(self.lease_s)
        return _Member(key, actor, actor.connect.remote(self.endpoints[key]), actor.idle.remote())

    # -- stop --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the loop and end every actor the pool still holds (none was handed out)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._lock:
            held = [m.actor for s in self._slots.values() for m in s.members]
            for slots in self._slots.values():
                slots.members = []
        _kill(held)


def pooled_options(namespace: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    """How a pooled actor is created: as any of its kind (`actor_options`), and detached."""
    return {**actor_options(namespace, selector), "lifetime": "detached"}


def _what(key: str) -> str:
    return "basket" if key == BASKET else f"{key} leg"


def _kill(actors: list[Any]) -> None:
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
