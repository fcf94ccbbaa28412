"""`BasketRegistry`: which basket ids are taken in a namespace, and whose turn it is to arm."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.admission import Admission, AdmissionQueue, Limits
from actors.shells.remote import ref_result

NS = 1_000_000_000
REGISTRY_PROBE_S = 5.0  # how long the registry waits for a basket id's holder to answer


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

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, Any]] = {}  # basket id → (claim token, actor)
        self._lock = asyncio.Lock()
        self._queue = AdmissionQueue()
        self._turns: dict[str, asyncio.Event] = {}  # basket id → set when its turn comes
        self._expiry: asyncio.TimerHandle | None = None

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
