"""The basket's and the leg's state machines: one table of legal transitions each (DESIGN §5)."""

from __future__ import annotations

import enum
from collections.abc import Callable

import msgspec

from actors.messages import LegStatus


class BasketState(enum.StrEnum):
    PENDING = "PENDING"  # submitted, not yet validated
    CHECKING = "CHECKING"  # spec valid; collateral being reserved on every venue
    QUEUED = "QUEUED"  # collateral held; waiting for its turn to arm (engine `max_arming`)
    ARMING = "ARMING"  # collateral held; leg actors being created and armed
    RUNNING = "RUNNING"  # fired: legs working, synchronizer and hedge active
    UNWINDING = "UNWINDING"  # reversing filled legs back to flat (policy `unwind`)
    RECONCILING = "RECONCILING"  # every leg confirming its orders and fills with its venue
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({BasketState.COMPLETED, BasketState.FAILED, BasketState.CANCELLED})

S = BasketState
TRANSITIONS: dict[BasketState, frozenset[BasketState]] = {
    # Before anything is sent, any trouble ends the basket at once: nothing to undo.
    S.PENDING: frozenset({S.CHECKING, S.FAILED, S.CANCELLED}),
    S.CHECKING: frozenset({S.ARMING, S.QUEUED, S.FAILED, S.CANCELLED}),
    # Too many baskets arming at once: in line, still with nothing sent.
    S.QUEUED: frozenset({S.ARMING, S.FAILED, S.CANCELLED}),
    # Arming sends nothing either; a leg that cannot be armed fails the basket cleanly.
    S.ARMING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    # Running ends in reconciliation whatever happened (done, cancelled under `complete` or
    # `hedge_and_hold`, a failure under `complete`), or unwinds first under `unwind`.
    S.RUNNING: frozenset({S.RECONCILING, S.UNWINDING}),
    S.UNWINDING: frozenset({S.RECONCILING}),
    # Reconciliation decides the outcome; a venue that disagrees fails the basket.
    S.RECONCILING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the table does not allow; always a bug in the caller."""

    def __init__(self, basket_id: str, current: BasketState, target: BasketState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (terminal)"
        super().__init__(
            f"basket {basket_id}: illegal transition {current.value} -> {target.value}; "
            f"from {current.value} the allowed states are {allowed}"
        )
        self.current = current
        self.target = target


class StateChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A basket moved from one state to another, and why."""

    basket_id: str
    previous: BasketState
    state: BasketState
    reason: str
    ts_ns: int


class BasketLifecycle:
    """A basket's current state and the history of how it got there."""

    def __init__(self, basket_id: str, now_ns: int) -> None:
        self.basket_id = basket_id
        self.state = BasketState.PENDING
        self.entered_ns = now_ns
        self.history: list[StateChanged] = []
        # Told of every move (the basket actor journals them), after it is made.
        self.on_change: Callable[[StateChanged], None] | None = None

    def can(self, target: BasketState) -> bool:
        return target in TRANSITIONS[self.state]

    def end(self, target: BasketState, now_ns: int, reason: str) -> list[StateChanged]:
        """Move to the terminal `target` (nothing once the basket has ended): from RUNNING
        or UNWINDING the way to an end goes through reconciliation, said so."""
        if self.state.is_terminal:
            return []
        moves = []
        if not self.can(target):
            moves.append(self.to(BasketState.RECONCILING, now_ns, "ending: " + reason))
        moves.append(self.to(target, now_ns, reason))
        return moves

    def take_over(self, history: list[StateChanged], now_ns: int, reason: str) -> StateChanged:
        """A basket carried on by a fresh actor after its own was lost (DESIGN §9): the
        history the journal kept, then RUNNING again whatever state it was lost in (the
        way to its end is the policy's, from the top: stop, unwind, reconcile)."""
        self.history = list(history)
        event = StateChanged(
            basket_id=self.basket_id,
            previous=history[-1].state if history else self.state,
            state=BasketState.RUNNING,
            reason=reason,
            ts_ns=now_ns,
        )
        self.state = BasketState.RUNNING
        self.entered_ns = now_ns
        self.history.append(event)
        if self.on_change is not None:
            self.on_change(event)
        return event

    def to(self, target: BasketState, now_ns: int, reason: str) -> StateChanged:
        """Move to `target`; raises `IllegalTransition` naming both states if not allowed."""
        if target not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.basket_id, self.state, target)
        event = StateChanged(
            basket_id=self.basket_id, previous=self.state, state=target, reason=reason, ts_ns=now_ns
        )
        self.state = target
        self.entered_ns = now_ns
        self.history.append(event)
        if self.on_change is not None:
            self.on_change(event)
        return event


# -- a leg ----------------------------------------------------------------------------------
L = LegStatus
LEG_TRANSITIONS: dict[LegStatus, frozenset[LegStatus]] = {
    L.IDLE: frozenset({L.ARMED, L.FAILED}),
    # A leg stopped before its fire time (the basket cancelled while arming) is done with
    # nothing sent.
    L.ARMED: frozenset({L.WORKING, L.DONE, L.FAILED}),
    L.WORKING: frozenset({L.PAUSED, L.DONE, L.FAILED}),
    L.PAUSED: frozenset({L.WORKING, L.DONE, L.FAILED}),
    # A done leg may still fail: a refusal that arrives on the stream after its last order
    # (a RECEIPT venue answers before its checks) counts as one answered at once.
    L.DONE: frozenset({L.RECONCILED, L.FAILED}),
    L.RECONCILED: frozenset(),
    # A failed leg stays failed; it is still unwound and reconciled, under its status.
    L.FAILED: frozenset(),
}


class IllegalLegTransition(RuntimeError):
    """A leg move the table does not allow; always a bug in the caller."""

    def __init__(self, leg_id: str, current: LegStatus, target: LegStatus) -> None:
        allowed = ", ".join(sorted(LEG_TRANSITIONS[current])) or "none (terminal)"
        super().__init__(
            f"leg {leg_id}: illegal transition {current.value} -> {target.value}; "
            f"from {current.value} the allowed states are {allowed}"
        )


def leg_transition(leg_id: str, current: LegStatus, target: LegStatus) -> LegStatus:
    """`target` if the table allows the move from `current` (staying put always is);
    raises `IllegalLegTransition` naming both otherwise."""
    if target is not current and target not in LEG_TRANSITIONS[current]:
        raise IllegalLegTransition(leg_id, current, target)
    return target
