"""The backtest's simulated clock: events in time order, runner timers, periodic steps."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol


class Periodic(Protocol):
    """Work the loop runs every period (a venue's market step)."""

    def idle(self, t_ns: int) -> bool:
        """Whether a run at `t_ns` would do nothing at all (as things stand)."""
        ...

    def step(self) -> bool:
        """One run at the loop's time; False stops it (no more runs)."""
        ...


class QuietPeriodic(Periodic, Protocol):
    """A periodic task that can also say how long it stays idle, so the loop can count its
    idle runs in bulk (`Loop._skip_idle`)."""

    def quiet_until(self) -> float:
        """Every run before this time would do nothing (as things stand)."""
        ...


class LoopTimer:
    """A runner's timer on the loop: cancelled, it does nothing when its time comes."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn: Callable[[], None] | None = fn

    def cancel(self) -> None:
        self._fn = None

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


class Loop:
    """Events in time order; ties in the order they were scheduled.

    A periodic task (`every`) keeps the order of an event that reschedules itself at the
    end of each run, without a heap entry per run: a venue steps every 5 ms, and most of
    its steps find nothing to do.
    """

    def __init__(self, now_ns: int) -> None:
        self.now = now_ns
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._n = 0
        # A heap of [next run's time, its number, period, task, its `quiet_until` or None].
        self._tasks: list[list[Any]] = []

    def at(self, t_ns: int, fn: Callable[..., None], *args: Any) -> None:
        self._n += 1
        heapq.heappush(self._heap, (max(t_ns, self.now), self._n, fn, args))

    # The `Clock` a runner's port needs (`actors.runners.port`).
    def now_ns(self) -> int:
        return self.now

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> LoopTimer:
        timer = LoopTimer(fn)
        self.at(t_ns, timer)
        return timer

    def after(self, dt_ns: int, fn: Callable[..., None], *args: Any) -> None:
        # `at(now + dt_ns)` written out: tens of thousands of calls a run.
        self._n += 1
        heapq.heappush(self._heap, (self.now + max(dt_ns, 0), self._n, fn, args))

    def every(self, period_ns: int, task: Periodic) -> None:
        """Run `task` now and every `period_ns` after, until a run returns False: in the
        order, and numbering later events, exactly as `at(now, f)` with `f` ending in
        `after(period_ns, f)` would. A run that `task.idle` says would do nothing is only
        counted, not made."""
        self._n += 1
        quiet = getattr(task, "quiet_until", None)  # a `QuietPeriodic`'s runs can be skipped
        heapq.heappush(self._tasks, [self.now, self._n, period_ns, task, quiet])

    def run(self, done: Callable[[], bool], until_ns: int) -> None:
        heap, tasks, pop = self._heap, self._tasks, heapq.heappop
        while (heap or tasks) and not done():
            if tasks:
                first = tasks[0]
                t = first[0]
                if not heap or t < heap[0][0] or (t == heap[0][0] and first[1] < heap[0][1]):
                    if t > until_ns:
                        self.now = until_ns
                        return
                    self.now = t
                    quiet = first[4]
                    if quiet is not None:  # one call tells whether it is idle and for how long
                        q = quiet()
                        idle = t < q
                        if idle and q >= t + 2 * first[2] and self._skip_idle(t, until_ns):
                            continue
                    else:
                        idle = first[3].idle(t)
                    if not idle and not first[3].step():
                        pop(tasks)
                        continue
                    self._n += 1  # where the run would have rescheduled itself
                    first[0], first[1] = t + first[2], self._n
                    heapq.heapreplace(tasks, first)
                    continue
            t, _, fn, args = pop(heap)
            if t > until_ns:
                self.now = until_ns
                return
            self.now = t
            fn(*args)

    def _skip_idle(self, t: int, until_ns: int) -> bool:
        """Count in one go the runs of the periodic tasks that would all be idle, as `run`
        would one by one (`run` asks once the first task is idle for two runs or more).
        Most of a backtest's loop turns were such runs: several venues stepping every 5 ms
        with nothing due. Only when every task is due at `t` with the same period (the
        venues of a backtest): then, slot after slot, each reschedules in the order of its
        number, and nothing else happens until the first slot that is not idle or that an
        event reaches, so the numbers are known without the turns."""
        tasks, heap = self._tasks, self._heap
        period = tasks[0][2]
        end = until_ns + 1  # runs after `until_ns` are never made
        if heap:
            end = min(end, heap[0][0])  # an event at a slot's time may come between tasks
        for entry in tasks:
            quiet = entry[4]
            if entry[0] != t or entry[2] != period or quiet is None:
                return False
            end = min(end, quiet())
        if end <= t:
            return False
        slots = -(-(end - t) // period)  # the idle slots from t on: t + i * period < end
        if slots < 2:
            return False
        k = len(tasks)
        tasks.sort(key=lambda e: e[1])  # their order in each slot, kept slot after slot
        last = self._n + (slots - 1) * k  # the numbers given out in the last slot follow
        for j, entry in enumerate(tasks, 1):
            entry[0], entry[1] = t + slots * period, last + j
        self._n = last + k
        return True
