"""What a runner may ask of the world: the time, timers, messages, and venue calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from actors.messages import LegProgress
from venues.errors import VenueError
from venues.model import ExecutionReport, Fill, NewOrder

# A venue's answer to one call: its report, or the error it raised (never an exception
# thrown across the port: a driver catches what its client raises and hands it over).
VenueAnswer = ExecutionReport | VenueError


class Timer(Protocol):
    """A pending `call_at`; cancelling one that already ran does nothing."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the runner's actor sees it (its own node's clock)."""

    def now_ns(self) -> int: ...

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> Timer:
        """Run `fn` at `t_ns` (at once if that has passed). `precise`: the instant matters to
        the millisecond (a launch); a live driver may spend CPU to hit it."""
        ...


class VenueCalls(Protocol):
    """The venue, as callbacks: each call's answer comes back through `then`, later, on the
    driver's loop (live: when the request returns; backtest: after the simulated trip)."""

    def place(self, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None: ...

    def query(
        self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]
    ) -> None: ...

    def cancel(
        self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]
    ) -> None:
        """Cancel a resting order by its client order id; `then` gets the venue's report of
        it (CANCELED, or FILLED when a fill won the race) or its error (`UnknownOrder`: the
        venue does not know the order or it has already ended; ask it with `query`)."""
        ...

    def trades(
        self, symbol: str, order_id: str, then: Callable[[list[Fill] | VenueError], None]
    ) -> None:
        """The venue's trades of one order (asked only by a journaling leg: never in the
        backtest)."""
        ...


class LegPort(Clock, Protocol):
    """A leg runner's world: its clock, its venue, and its basket."""

    @property
    def venue(self) -> VenueCalls: ...

    def send(self, progress: LegProgress) -> None:
        """Tell the basket how far the leg is (a monotonic snapshot: losing one is harmless)."""
        ...


def short_error(e: BaseException) -> str:
    """An error in one line, a Ray task error's by its cause."""
    cause = getattr(e, "cause", None)
    e = cause if isinstance(cause, BaseException) else e
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__
