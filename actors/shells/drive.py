"""The live driver of a runner's port: asyncio timers, and a `VenueClient` as callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from actors.runners.port import Timer, VenueAnswer
from actors.shells.tasks import BackgroundTasks
from venues.client import VenueClient
from venues.errors import OutcomeUnknown, VenueError, VenueUnavailable
from venues.model import Fill, NewOrder

log = logging.getLogger(__name__)

# The last 5 ms before a precise instant are waited out without the event loop's timer
# (late by up to a millisecond): a blocking sleep to SPIN_TAIL_NS before it, then a spin. A
# spin of the whole 5 ms would, with eight legs on two cores, keep each other's processes
# off the cores at the very instant they must send.
SPIN_NS = 5_000_000
SPIN_TAIL_NS = 150_000


async def wait_until(t_ns: int, now_ns: Callable[[], int] = time.time_ns) -> None:
    """Return at `t_ns` of the clock `now_ns`: asleep on the event loop until `SPIN_NS`
    before it, then blocking the loop in the kernel's sleep until `SPIN_TAIL_NS` before, and
    spinning out the rest. The loop's timer alone is late by up to a millisecond, which
    would show as launch skew."""
    while (left := t_ns - now_ns()) > SPIN_NS:
        await asyncio.sleep((left - SPIN_NS) / 1e9)
    if (left := t_ns - now_ns() - SPIN_TAIL_NS) > 0:
        time.sleep(left / 1e9)  # blocks the loop: it has nothing more urgent now
    while now_ns() < t_ns:
        pass


class _TaskTimer:
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()


class LiveClock:
    """A runner's clock on this event loop: `now_ns` (the node's clock plus a test offset)
    and timers. `guard` is told of any exception a callback raises (a bug): the runner
    stops rather than leave its actor silent."""

    def __init__(
        self,
        tasks: BackgroundTasks,
        now_ns: Callable[[], int],
        guard: Callable[[BaseException], None],
    ) -> None:
        self._tasks = tasks
        self.now_ns = now_ns
        self._guard = guard

    def run(self, fn: Callable[[], None]) -> None:
        """Call `fn` now, passing what it raises to the guard."""
        try:
            fn()
        except Exception as e:
            log.exception("runner callback failed")
            self._guard(e)

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> Timer:
        if precise:
            return _TaskTimer(self._tasks.spawn(self._precisely(t_ns, fn), "precise-timer"))
        loop = asyncio.get_running_loop()
        delay = (t_ns - self.now_ns()) / 1e9
        if delay <= 0:
            return loop.call_soon(self.run, fn)
        return loop.call_later(delay, self.run, fn)

    async def _precisely(self, t_ns: int, fn: Callable[[], None]) -> None:
        await wait_until(t_ns, self.now_ns)
        self.run(fn)


class ClientCalls:
    """A `VenueClient` as the callback-style `VenueCalls` a runner uses: each call runs as
    an owned task, and its answer (a report, or the `VenueError` it raised) goes to `then`
    on this loop."""

    def __init__(self, client: VenueClient, clock: LiveClock, tasks: BackgroundTasks) -> None:
        self._client = client
        self._clock = clock
        self._tasks = tasks

    def place(self, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None:
        coid = order.client_order_id
        # An error the client did not map (a bug, a broken connection mid-request) leaves the
        # order's fate unknown: it is queried, never sent again.
        self._call(self._client.place(order), then, f"place-{coid}", OutcomeUnknown)

    def query(self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]) -> None:
        call = self._client.query(symbol, client_order_id)
        self._call(call, then, f"query-{client_order_id}", VenueUnavailable)

    def cancel(
        self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]
    ) -> None:
        # An error the client did not map leaves the order's fate open: the runner queries it
        # (and cancels again if it still rests), never takes it as cancelled.
        call = self._client.cancel(symbol, client_order_id)
        self._call(call, then, f"cancel-{client_order_id}", VenueUnavailable)

    def trades(
        self, symbol: str, order_id: str, then: Callable[[list[Fill] | VenueError], None]
    ) -> None:
        call = self._client.trades(symbol, order_id)
        self._call(call, then, f"trades-{order_id}", VenueUnavailable)  # type: ignore[arg-type]

    def _call(
        self,
        call: Awaitable[VenueAnswer],
        then: Callable[[VenueAnswer], None],
        name: str,
        unmapped: type[VenueError],
    ) -> None:
        async def go() -> None:
            try:
                answer: VenueAnswer = await call
            except VenueError as e:
                answer = e
            except Exception as e:
                log.exception("%s: unexpected error from the venue client", name)
                answer = unmapped(f"{name}: {e!r}", venue=getattr(self._client, "venue", ""))
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), name)
