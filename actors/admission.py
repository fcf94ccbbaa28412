"""`AdmissionQueue`: which baskets may arm now, the others in line (issue 7).

Arming is a basket's costliest moment for the machine it runs on: a cold leg actor is a new
worker process (about a core-second), and each leg connects to its venue and measures its
clock. Twenty baskets arming at once on two cores each take minutes, and each one's
`arm_timeout_s` runs out before its own legs had a turn. And a running basket keeps costing
(its actors' event loops, market data, snapshots): more baskets running than the machine
can carry all slow down together, until their orders time out. So at most `max_arming`
baskets arm at once and, when `max_running` is set, at most that many are armed or arming;
the rest wait in line, in the order they asked, and each one's arm timeout starts when its
turn comes. A basket that dies holding a place loses it once its lease runs out.
"""

from __future__ import annotations

import msgspec


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What a basket's engine allows, and how long a basket may hold its place."""

    max_arming: int  # baskets arming at once
    max_running: int = 0  # baskets arming or running at once; 0: no limit
    arm_lease_ns: int  # an arming basket that has not said `armed` by then loses its turn
    run_lease_ns: int  # a running basket that has not said `ended` by then loses its place


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a basket asking to arm: admitted now, or how it stands in line."""

    admitted: bool
    arming: int  # baskets arming now (this one included once admitted)
    running: int  # baskets armed and not yet ended
    ahead: int  # baskets in line before this one (0 once admitted)
    limits: Limits | None = None  # the basket's own (None: it never asked)


class _Place(msgspec.Struct, kw_only=True):
    limits: Limits
    arming: bool
    until_ns: int  # the lease's end


class AdmissionQueue:
    """Baskets arming and running within their limits, the others first come, first served.

    Each basket brings its own limits (its engine's `max_arming`, `max_running`): the first
    in line goes when the baskets arming number fewer than its `max_arming` and, with a
    `max_running`, the baskets arming or running fewer than that. A place is a lease: held
    past it (the basket died, or hangs), it is taken back.
    """

    def __init__(self) -> None:
        self._in: dict[str, _Place] = {}  # admitted: arming, or armed and running
        self._waiting: dict[str, Limits] = {}  # in line, in order

    def ask(self, basket_id: str, limits: Limits, now_ns: int) -> Admission:
        """A basket asks to arm; asking again while in line (or admitted) changes nothing."""
        if limits.max_arming < 1 or limits.max_running < 0:
            raise ValueError(
                f"limits: max_arming {limits.max_arming} and max_running {limits.max_running} "
                "are not accepted; at least 1 basket must arm, and max_running is 0 (no "
                "limit) or more"
            )
        self.expire(now_ns)
        if basket_id not in self._in and basket_id not in self._waiting:
            self._waiting[basket_id] = limits
            self._admit(now_ns)
        return self.where(basket_id)

    def where(self, basket_id: str) -> Admission:
        """How the basket stands now (one that never asked: not admitted, 0 ahead)."""
        arming = sum(p.arming for p in self._in.values())
        running = len(self._in) - arming
        place = self._in.get(basket_id)
        if place is not None:
            return Admission(
                admitted=True, arming=arming, running=running, ahead=0, limits=place.limits
            )
        limits = self._waiting.get(basket_id)
        ahead = list(self._waiting).index(basket_id) if limits is not None else 0
        return Admission(admitted=False, arming=arming, running=running, ahead=ahead, limits=limits)

    def armed(self, basket_id: str, now_ns: int) -> list[str]:
        """The basket armed (or gave up arming): the next one may arm. Its place while it
        runs counts against `max_running` until `ended`. Returns the baskets admitted."""
        place = self._in.get(basket_id)
        if place is not None and place.arming:
            place.arming = False
            place.until_ns = now_ns + place.limits.run_lease_ns
        return self._admit(now_ns)

    def ended(self, basket_id: str, now_ns: int) -> list[str]:
        """The basket ended, or left the line: its place goes to the next. Harmless for a
        basket that holds nothing. Returns the baskets admitted."""
        self._in.pop(basket_id, None)
        self._waiting.pop(basket_id, None)
        return self._admit(now_ns)

    def expire(self, now_ns: int) -> list[str]:
        """Take back the places held past their lease; returns the baskets admitted."""
        for basket_id in [b for b, p in self._in.items() if p.until_ns <= now_ns]:
            del self._in[basket_id]
        return self._admit(now_ns)

    @property
    def arming(self) -> list[str]:
        return [b for b, p in self._in.items() if p.arming]

    @property
    def running(self) -> list[str]:
        return [b for b, p in self._in.items() if not p.arming]

    @property
    def waiting(self) -> list[str]:
        return list(self._waiting)

    @property
    def next_expiry_ns(self) -> int | None:
        """When the earliest lease runs out (None: nobody admitted)."""
        return min((p.until_ns for p in self._in.values()), default=None)

    def _admit(self, now_ns: int) -> list[str]:
        admitted = []
        while self._waiting:
            basket_id, limits = next(iter(self._waiting.items()))
            arming = sum(p.arming for p in self._in.values())
            if arming >= limits.max_arming:
                break
            if limits.max_running and len(self._in) >= limits.max_running:
                break
            del self._waiting[basket_id]
            self._in[basket_id] = _Place(
                limits=limits, arming=True, until_ns=now_ns + limits.arm_lease_ns
            )
            admitted.append(basket_id)
        return admitted


def waiting_reason(a: Admission) -> str:
    """What a QUEUED basket waits for, in words."""
    limits = a.limits
    assert limits is not None
    running = (
        f", {a.arming + a.running} arming or running (at most {limits.max_running})"
        if limits.max_running
        else ""
    )
    return (
        f"waiting for a turn to arm: {a.arming} baskets arming (at most {limits.max_arming} "
        f"at once){running}, {a.ahead} ahead of this one"
    )
