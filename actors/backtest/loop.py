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
        self._tasks: list[list[Any]] = []  # heap of [next run's time, its number, period, task]

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
        heapq.heappush(self._tasks, [self.now, self._n, period_ns, task])

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
                    task = first[3]
                    if not task.idle(t) and not task.step():
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
