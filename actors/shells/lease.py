"""The lease of an idle actor of the warm pool (DESIGN §9: the pool belongs to the cluster).

A pooled actor is detached, so that the basket it is lent to keeps it when the driver that
filled the pool dies. While it waits to be lent, nothing but its pool wants it: the pool
renews its lease every few seconds, and an actor whose lease ran out (its pool's driver is
gone) closes its connections and exits by itself. Once lent, it belongs to its basket (the
supervisor ends it with the basket) and the lease is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import ray

log = logging.getLogger(__name__)

# A lease runs `LEASE_S`, renewed every `LEASE_RENEW_SHARE` of it: a busy machine may miss
# a few renewals without losing its idle actors.
LEASE_S = 30.0
LEASE_RENEW_SHARE = 1 / 6


class PoolLease:
    """An idle pooled actor's lease (see the module docstring). `close` runs once the
    lease has run out, then `exit` ends the actor (Ray's `exit_actor`)."""

    def __init__(
        self,
        close: Callable[[], Awaitable[None]],
        owner: str,
        exit: Callable[[], object] = ray.actor.exit_actor,
    ) -> None:
        self._close = close
        self._exit = exit
        self._owner = owner
        self._until = 0.0  # monotonic
        self._over = False  # lent: the actor is its basket's now
        self._watch_task: asyncio.Task[None] | None = None  # not the actor's: its close
        # cancels the actor's own tasks, and must not cancel the watch that called it

    def renew(self, for_s: float) -> None:
        """The pool still wants this actor for `for_s` seconds more."""
        if self._over:
            return
        self._until = max(self._until, time.monotonic() + for_s)
        if self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    def end(self) -> None:
        """Lent to a basket: the actor no longer lives on its pool's lease."""
        self._over = True

    @property
    def over(self) -> bool:
        return self._over

    async def _watch(self) -> None:
        while not self._over:
            left = self._until - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
                continue
            log.warning("%s: its pool's lease ran out (its driver is gone): exiting", self._owner)
            try:
                await self._close()
            finally:
                self._exit()
            return
