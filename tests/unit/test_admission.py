"""The admission queue: at most `max_arming` baskets arm at once and, when set, at most
`max_running` arm or run; the rest wait their turn in order, and a place held past its
lease is taken back."""

from __future__ import annotations

import pytest

from actors.admission import AdmissionQueue, Limits

S = 1_000_000_000


def limits(arming: int, running: int = 0) -> Limits:
    return Limits(max_arming=arming, max_running=running, arm_lease_ns=60 * S, run_lease_ns=600 * S)


def test_at_most_max_arming_baskets_arm_and_the_rest_wait_in_order() -> None:
    q = AdmissionQueue()
    answers = [q.ask(f"b{i}", limits(2), 0) for i in range(5)]
    assert [a.admitted for a in answers] == [True, True, False, False, False]
    assert [a.ahead for a in answers[2:]] == [0, 1, 2]
    assert q.arming == ["b0", "b1"] and q.waiting == ["b2", "b3", "b4"]
    assert q.armed("b1", S) == ["b2"]  # the first in line goes, not any other
    assert q.running == ["b1"] and q.where("b4").ahead == 1
    assert q.where("b2").admitted and q.where("b2").arming == 2
    assert q.armed("b0", S) == ["b3"]
    assert q.armed("b2", S) == ["b4"]
    assert q.armed("b3", S) == [] and q.armed("b4", S) == []
    assert q.arming == [] and q.waiting == [] and len(q.running) == 5  # no running limit


def test_with_max_running_a_basket_waits_for_one_to_end() -> None:
    q = AdmissionQueue()
    for b in "abc":
        q.ask(b, limits(2, running=2), 0)
    assert q.arming == ["a", "b"] and q.waiting == ["c"]
    assert q.armed("a", S) == []  # a runs: still two places taken
    assert q.where("c").running == 1 and not q.where("c").admitted
    assert q.ended("a", 2 * S) == ["c"]
    assert q.arming == ["b", "c"] and q.running == []


def test_asking_twice_keeps_the_place_in_line() -> None:
    q = AdmissionQueue()
    for b in "abc":
        q.ask(b, limits(1), 0)
    assert q.ask("c", limits(1), 1).ahead == 1
    assert q.ask("a", limits(1), 1).admitted
    assert q.waiting == ["b", "c"]


def test_a_basket_leaving_the_line_frees_its_place() -> None:
    q = AdmissionQueue()
    for b in "abc":
        q.ask(b, limits(1), 0)
    assert q.ended("b", 0) == []  # cancelled while waiting: nobody is admitted by it
    assert q.where("c").ahead == 0
    assert q.armed("a", 0) == ["c"]


def test_a_place_held_past_its_lease_is_taken_back() -> None:
    q = AdmissionQueue()
    q.ask("dead", limits(1, running=1), 0)
    q.ask("next", limits(1, running=1), 0)
    assert q.next_expiry_ns == 60 * S
    assert q.expire(60 * S - 1) == []
    assert q.expire(60 * S) == ["next"]  # never said it armed: its turn is taken back
    assert q.armed("next", 61 * S) == []
    assert q.next_expiry_ns == 661 * S  # running now: the longer lease
    assert q.ended("dead", 62 * S) == []  # a late word from the first changes nothing
    assert q.running == ["next"]


def test_each_basket_brings_its_own_limits() -> None:
    q = AdmissionQueue()
    assert q.ask("wide", limits(3), 0).admitted
    assert q.ask("narrow", limits(1), 0).ahead == 0
    assert not q.where("narrow").admitted  # one arming already: its own limit says wait
    assert q.ask("wide2", limits(3), 0).ahead == 1  # first come, first served: behind it
    assert q.armed("wide", 0) == ["narrow", "wide2"]  # each by its own limit


@pytest.mark.parametrize(("arming", "running"), [(0, 0), (1, -1)])
def test_limits_that_admit_nobody_are_refused(arming: int, running: int) -> None:
    with pytest.raises(ValueError, match="are not accepted"):
        AdmissionQueue().ask("b", limits(arming, running), 0)
