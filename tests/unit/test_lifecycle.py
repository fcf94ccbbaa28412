"""The basket and leg state machines: every legal move works, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from actors.lifecycle import (
    LEG_TRANSITIONS,
    TRANSITIONS,
    BasketLifecycle,
    BasketState,
    IllegalLegTransition,
    IllegalTransition,
    leg_transition,
)
from actors.messages import LegStatus

S = BasketState
LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a, b in itertools.product(S, S) if b not in TRANSITIONS[a]]


def _at(state: BasketState) -> BasketLifecycle:
    """A lifecycle driven to `state` along legal moves (breadth-first path from PENDING)."""
    paths = {S.PENDING: [S.PENDING]}
    frontier = [S.PENDING]
    while frontier:
        nxt = []
        for s in frontier:
            for t in sorted(TRANSITIONS[s]):
                if t not in paths:
                    paths[t] = [*paths[s], t]
                    nxt.append(t)
        frontier = nxt
    life = BasketLifecycle("b1", 0)
    for i, s in enumerate(paths[state][1:], start=1):
        life.to(s, i, "test")
    return life


def test_every_state_is_reachable_and_has_a_row() -> None:
    assert set(TRANSITIONS) == set(S)
    for s in S:
        assert _at(s).state is s


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_transition(current: BasketState, target: BasketState) -> None:
    life = _at(current)
    event = life.to(target, 1_000, "because")
    assert life.state is target
    assert (event.previous, event.state, event.reason, event.ts_ns) == (
        current,
        target,
        "because",
        1_000,
    )
    assert life.history[-1] == event
    assert life.entered_ns == 1_000


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transition_raises_naming_both_states(
    current: BasketState, target: BasketState
) -> None:
    life = _at(current)
    before = list(life.history)
    with pytest.raises(IllegalTransition) as info:
        life.to(target, 1_000, "nope")
    message = str(info.value)
    assert f"{current.value} -> {target.value}" in message
    assert "b1" in message
    assert life.state is current and life.history == before


def test_terminal_states_have_no_exit_and_everything_can_end() -> None:
    terminal = {s for s in S if s.is_terminal}
    assert terminal == {S.COMPLETED, S.FAILED, S.CANCELLED}
    for s in terminal:
        assert not TRANSITIONS[s]
    # From every live state some path leads to a terminal state: no basket can get stuck.
    for s in set(S) - terminal:
        seen, stack = set(), [s]
        while stack:
            x = stack.pop()
            seen.add(x)
            stack.extend(t for t in TRANSITIONS[x] if t not in seen)
        assert seen & terminal, f"{s} cannot reach an end"


def test_once_orders_may_exist_the_basket_must_reconcile() -> None:
    # DESIGN §5.7: complete only when reconciled — no path from RUNNING skips RECONCILING.
    for end in (S.COMPLETED, S.FAILED, S.CANCELLED):
        assert end not in TRANSITIONS[S.RUNNING]
        assert end not in TRANSITIONS[S.UNWINDING]


def test_a_queued_basket_has_sent_nothing_and_can_still_end_cleanly() -> None:
    # A basket waits in QUEUED with its collateral held and no leg armed: it goes on to
    # arm, or ends at once (a cancel, a failure) with nothing to reconcile.
    assert TRANSITIONS[S.QUEUED] == {S.ARMING, S.FAILED, S.CANCELLED}
    assert S.QUEUED in TRANSITIONS[S.CHECKING] and S.ARMING in TRANSITIONS[S.CHECKING]
    assert not any(S.QUEUED in TRANSITIONS[s] for s in S if s is not S.CHECKING)


# -- a leg ----------------------------------------------------------------------------------
L = LegStatus
LEG_LEGAL = [(a, b) for a, targets in LEG_TRANSITIONS.items() for b in sorted(targets)]
LEG_ILLEGAL = [
    (a, b) for a, b in itertools.product(L, L) if b not in LEG_TRANSITIONS[a] and a is not b
]


def test_every_leg_status_has_a_row() -> None:
    assert set(LEG_TRANSITIONS) == set(L)


@pytest.mark.parametrize(("a", "b"), LEG_LEGAL)
def test_a_legal_leg_move_is_taken(a: LegStatus, b: LegStatus) -> None:
    assert leg_transition("l1", a, b) is b


@pytest.mark.parametrize("a", list(L))
def test_a_leg_may_always_stay_where_it_is(a: LegStatus) -> None:
    assert leg_transition("l1", a, a) is a


@pytest.mark.parametrize(("a", "b"), LEG_ILLEGAL)
def test_an_illegal_leg_move_raises_naming_both_states(a: LegStatus, b: LegStatus) -> None:
    with pytest.raises(IllegalLegTransition, match=f"{a.value} -> {b.value}"):
        leg_transition("l1", a, b)


def test_a_reconciled_or_failed_leg_goes_nowhere() -> None:
    assert not LEG_TRANSITIONS[L.RECONCILED]
    assert not LEG_TRANSITIONS[L.FAILED]


def test_ending_a_running_basket_goes_through_reconciliation_and_says_so() -> None:
    life = _at(S.RUNNING)
    moves = life.end(S.FAILED, 99, "leg btc failed")
    assert [m.state for m in moves] == [S.RECONCILING, S.FAILED]
    assert moves[0].reason == "ending: leg btc failed"
    assert life.end(S.CANCELLED, 100, "too late") == []  # ended already: nothing moves
    assert life.state is S.FAILED


def test_ending_before_anything_was_sent_goes_straight_to_the_end() -> None:
    life = _at(S.CHECKING)
    assert [m.state for m in life.end(S.CANCELLED, 5, "cancelled")] == [S.CANCELLED]
