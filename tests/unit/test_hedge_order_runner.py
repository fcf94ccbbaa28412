"""`HedgeOrderRunner` on a fake clock and a scripted venue: which answer one hedge order gets
(its final report, its placing's error, None, or `HedgeOrderOpen`), when, and which cancels
and queries it sent on the way: the placing's and the stream's final reports, a resting
order's withdrawal, the wait for a final report then the query, unanswered placings and the
venue's order window, the withdrawal's backoff and deadline, `withdraw` and `stop`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from actors.hedge import HedgeOrderOpen
from actors.runners.hedge_order import (
    FINAL_WAIT_NS,
    WITHDRAW_NS,
    WITHDRAW_PAUSE_MAX_NS,
    WITHDRAW_PAUSE_NS,
    HedgeOrderAnswer,
    HedgeOrderRunner,
)
from actors.runners.port import VenueAnswer
from tests.unit.fake_port import FakeClock
from venues.errors import (
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    VenueUnavailable,
)
from venues.model import (
    AckKind,
    ExecutionReport,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
LATENCY = 5 * MS  # one way
RTT = 2 * LATENCY
END = START + 120 * SECOND  # far past every deadline of one order
VENUE = "sim"
SYMBOL = "ETHUSDT"
COID = "lgh-d1-7"
QTY = D("0.5")
REST_NS = 2 * SECOND


def at(ms: float) -> int:
    """The instant `ms` milliseconds after the start (the send)."""
    return START + int(ms * MS)


def order(tif: TimeInForce = TimeInForce.IOC) -> NewOrder:
    return NewOrder(
        client_order_id=COID,
        symbol=SYMBOL,
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=QTY,
        price=D(2000),
        time_in_force=tif,
    )


def report(
    status: OrderStatus, filled: str = "0", ack: AckKind | None = AckKind.RESULT
) -> ExecutionReport:
    return ExecutionReport(
        venue=VENUE,
        symbol=SYMBOL,
        client_order_id=COID,
        order_id="" if status is OrderStatus.PENDING_NEW else "42",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        status=status,
        quantity=QTY,
        price=D(2000),
        cum_filled=D(filled),
        avg_price=D(2000) if D(filled) else None,
        cum_fee=D(0),
        ack_kind=ack,
    )


def unknown_order() -> UnknownOrder:
    return UnknownOrder("Unknown order sent.", venue=VENUE, code=-2011)


def unavailable(message: str = "service unavailable") -> VenueUnavailable:
    return VenueUnavailable(message, venue=VENUE, code=503)


def outcome_unknown() -> OutcomeUnknown:
    return OutcomeUnknown("timeout", venue=VENUE, code=-1007, client_order_id=COID)


@dataclass(frozen=True)
class Delayed:
    """An answer that comes back `rtt_ns` after its call instead of one round trip."""

    answer: VenueAnswer
    rtt_ns: int


# What the venue answers one call: an answer, one worked out when the request reaches it
# (a callable), or one that comes back later than a round trip.
Scripted = VenueAnswer | Callable[[], VenueAnswer] | Delayed


class ScriptedVenue:
    """`VenueCalls` (place, query, cancel) with a one-way trip of `LATENCY`: each call takes
    the next answer scripted for its kind, else the kind's `always` answer; an unscripted call
    fails the test. `calls` holds the instants of each kind's calls."""

    KINDS = ("place", "query", "cancel")

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: dict[str, list[int]] = {kind: [] for kind in self.KINDS}
        self._next: dict[str, deque[Scripted]] = {kind: deque() for kind in self.KINDS}
        self._always: dict[str, Scripted] = {}

    def script(self, kind: str, *answers: Scripted) -> None:
        self._next[kind].extend(answers)

    def always(self, kind: str, answer: Scripted) -> None:
        self._always[kind] = answer

    def place(self, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None:
        self._call("place", then)

    def query(self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]) -> None:
        assert (symbol, client_order_id) == (SYMBOL, COID)
        self._call("query", then)

    def cancel(
        self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]
    ) -> None:
        assert (symbol, client_order_id) == (SYMBOL, COID)
        self._call("cancel", then)

    def trades(self, symbol: str, order_id: str, then: Callable[..., None]) -> None:
        raise AssertionError("a hedge order never asks for its trades")

    def _call(self, kind: str, then: Callable[[VenueAnswer], None]) -> None:
        now = self.clock.now_ns()
        self.calls[kind].append(now)
        if self._next[kind]:
            scripted = self._next[kind].popleft()
        elif kind in self._always:
            scripted = self._always[kind]
        else:
            raise AssertionError(f"unscripted {kind} at {now - START} ns after the send")
        rtt = RTT
        if isinstance(scripted, Delayed):
            scripted, rtt = scripted.answer, scripted.rtt_ns

        def reach() -> None:  # the venue works the answer out when the request reaches it
            answer = scripted() if callable(scripted) else scripted
            self.clock.call_at(now + rtt, lambda: then(answer))

        self.clock.call_at(now + rtt // 2, reach)


class Rig:
    """A runner for `COID` on the fake clock and the scripted venue, its answers recorded as
    (instant, answer)."""

    def __init__(self) -> None:
        self.clock = FakeClock(START)
        self.venue = ScriptedVenue(self.clock)
        self.answers: list[tuple[int, HedgeOrderAnswer]] = []
        self.runner = HedgeOrderRunner(self.clock, self.venue, VENUE, SYMBOL, COID, self._answered)

    def _answered(self, answer: HedgeOrderAnswer) -> None:
        self.answers.append((self.clock.now_ns(), answer))

    def stream(self, t_ns: int, report: ExecutionReport) -> None:
        """The account stream tells the runner of `report` at `t_ns`."""
        self.clock.call_at(t_ns, lambda: self.runner.on_report(report))

    def run(self, until: int = END) -> None:
        self.clock.run_until(until)

    def cancels(self) -> list[int]:
        return self.venue.calls["cancel"]

    def queries(self) -> list[int]:
        return self.venue.calls["query"]


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set the venue's order window (`withdrawal` reads it from `actors.hedge` at call time)."""
    return lambda ns: monkeypatch.setattr("actors.hedge.ORDER_WINDOW_NS", ns)


def test_the_module_constants_these_timings_assume() -> None:
    assert (WITHDRAW_NS, WITHDRAW_PAUSE_NS, WITHDRAW_PAUSE_MAX_NS) == (
        30 * SECOND,
        250 * MS,
        4 * SECOND,
    )
    assert FINAL_WAIT_NS == 5 * SECOND


# -- final reports ---------------------------------------------------------------------------
def test_an_ioc_filled_in_its_placings_answer_is_answered_with_that_report(rig: Rig) -> None:
    filled = report(OrderStatus.FILLED, "0.5")
    rig.venue.script("place", filled)
    rig.runner.place(order())
    rig.run(at(RTT / MS))
    assert rig.answers == [(at(10), filled)]
    assert rig.answers[0][1] is filled
    assert rig.clock.pending() == 0
    rig.run()
    assert rig.venue.calls == {"place": [START], "query": [], "cancel": []}
    assert len(rig.answers) == 1


def test_a_final_stream_report_before_the_placings_answer_is_answered_once(rig: Rig) -> None:
    streamed = report(OrderStatus.FILLED, "0.5", ack=None)
    rig.venue.script("place", report(OrderStatus.FILLED, "0.5"))
    rig.stream(at(3), streamed)
    rig.runner.place(order())
    rig.run()
    assert rig.answers == [(at(3), streamed)]
    assert rig.answers[0][1] is streamed
    assert rig.venue.calls == {"place": [START], "query": [], "cancel": []}
    assert rig.clock.pending() == 0


# -- a resting order ---------------------------------------------------------------------------
def test_a_resting_order_not_final_is_cancelled_at_its_rest_end_and_answered_the_cancels_report(
    rig: Rig,
) -> None:
    canceled = report(OrderStatus.CANCELED, "0.2")
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.script("cancel", canceled)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run()
    assert rig.cancels() == [at(2000)]
    assert rig.answers == [(at(2010), canceled)]
    assert rig.queries() == []
    assert rig.clock.pending() == 0


def test_a_resting_order_filled_on_the_stream_before_its_rest_end_is_never_cancelled(
    rig: Rig,
) -> None:
    filled = report(OrderStatus.FILLED, "0.5", ack=None)
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.stream(at(1000), filled)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run(at(1000))
    assert rig.answers == [(at(1000), filled)]
    assert rig.clock.pending() == 0  # the rest timer is gone
    rig.run()
    assert rig.cancels() == []
    assert rig.queries() == []
    assert len(rig.answers) == 1


# -- answered, not final: the wait for the final report, then the query ------------------------
def test_an_ioc_answered_open_is_queried_after_the_final_wait_and_a_final_answer_is_the_answer(
    rig: Rig,
) -> None:
    expired = report(OrderStatus.EXPIRED, "0.3")
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.script("query", expired)
    rig.runner.place(order())
    rig.run()
    assert rig.queries() == [at(5010)]  # FINAL_WAIT_NS after the placing's answer
    assert rig.answers == [(at(5020), expired)]
    assert rig.cancels() == []
    assert rig.clock.pending() == 0


@pytest.mark.parametrize(
    "queried",
    [report(OrderStatus.PARTIALLY_FILLED, "0.1"), unavailable()],
    ids=["still-open", "query-failed"],
)
def test_an_ioc_still_not_final_when_queried_is_withdrawn(rig: Rig, queried: VenueAnswer) -> None:
    canceled = report(OrderStatus.CANCELED, "0.1")
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.script("query", queried)
    rig.venue.script("cancel", canceled)
    rig.runner.place(order())
    rig.run()
    assert rig.queries() == [at(5010)]
    assert rig.cancels() == [at(5020)]
    assert rig.answers == [(at(5030), canceled)]
    assert rig.clock.pending() == 0


def test_an_ioc_answered_open_whose_final_report_streams_in_the_wait_is_never_queried(
    rig: Rig,
) -> None:
    expired = report(OrderStatus.EXPIRED, "0.3", ack=None)
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.stream(at(1000), expired)
    rig.runner.place(order())
    rig.run(at(1000))
    assert rig.answers == [(at(1000), expired)]
    assert rig.clock.pending() == 0  # the final wait's timer is gone
    rig.run()
    assert rig.queries() == []
    assert rig.cancels() == []


# -- an unanswered placing and the order window ------------------------------------------------
@pytest.mark.parametrize(
    ("window_ms", "cancels_ms", "answered_ms"),
    [
        # the window runs from the send, not from the placing's answer (10 ms later)
        (275, [10, 270], 280),
        # cancel answers at 20, 280 ms are inside the window; 790 ms is past it
        (500, [10, 270, 780], 790),
        # ... and with a 1 s window 790 ms is not: once more, past it at 1800 ms
        (1000, [10, 270, 780, 1790], 1800),
    ],
)
def test_an_unanswered_placing_answers_its_error_only_once_the_order_window_has_passed(
    rig: Rig,
    window: Callable[[int], None],
    window_ms: int,
    cancels_ms: list[int],
    answered_ms: int,
) -> None:
    window(window_ms * MS)
    lost = outcome_unknown()
    rig.venue.script("place", lost)
    rig.venue.always("cancel", unknown_order)
    rig.runner.place(order())
    rig.run()
    assert rig.cancels() == [at(ms) for ms in cancels_ms]
    assert rig.answers == [(at(answered_ms), lost)]
    assert rig.answers[0][1] is lost
    assert rig.queries() == []
    assert rig.clock.pending() == 0


def test_an_unanswered_placing_applied_late_answers_its_fill_from_the_stream(
    rig: Rig, window: Callable[[int], None]
) -> None:
    window(1 * SECOND)
    filled = report(OrderStatus.FILLED, "0.5", ack=None)
    rig.venue.script("place", outcome_unknown())
    rig.venue.always("cancel", unknown_order)  # an IOC that filled is unknown to a cancel
    rig.stream(at(600), filled)
    rig.runner.place(order())
    rig.run(at(600))
    assert rig.answers == [(at(600), filled)]
    assert rig.cancels() == [at(10), at(270)]
    assert rig.clock.pending() == 0  # the pause before the next cancel is gone
    rig.run()
    assert rig.cancels() == [at(10), at(270)]
    assert len(rig.answers) == 1


def test_an_unanswered_placing_applied_late_answers_the_cancels_fill_report(
    rig: Rig, window: Callable[[int], None]
) -> None:
    window(1 * SECOND)
    filled = report(OrderStatus.FILLED, "0.5")
    rig.venue.script("place", outcome_unknown())
    rig.venue.script("cancel", unknown_order(), filled)  # applied, then a fill won the race
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run(at(280))
    assert rig.answers == [(at(280), filled)]
    assert rig.clock.pending() == 0  # the rest timer is gone
    rig.run()
    assert rig.cancels() == [at(10), at(270)]  # withdrawn at once, not at the rest end
    assert len(rig.answers) == 1


def test_an_unknown_ack_from_the_placing_counts_as_unanswered(
    rig: Rig, window: Callable[[int], None]
) -> None:
    window(500 * MS)
    rig.venue.script("place", report(OrderStatus.PENDING_NEW, ack=AckKind.UNKNOWN))
    rig.venue.always("cancel", unknown_order)
    rig.runner.place(order())
    rig.run()
    assert rig.cancels() == [at(10), at(270), at(780)]
    [(t, answer)] = rig.answers
    assert t == at(790)
    assert isinstance(answer, OutcomeUnknown)
    assert (answer.venue, answer.client_order_id) == (VENUE, COID)
    assert rig.runner.report is None  # the placeholder report is not the order's
    assert rig.clock.pending() == 0


@pytest.mark.parametrize(
    ("queried", "answered"),
    [(report(OrderStatus.FILLED, "0.5"), "report"), (unavailable(), "placing")],
    ids=["query-answered", "query-failed"],
)
def test_an_unanswered_placing_the_stream_showed_live_is_asked_for_its_end(
    rig: Rig, window: Callable[[int], None], queried: VenueAnswer, answered: str
) -> None:
    # Its placing went unanswered, but the stream showed it resting; later the cancel finds
    # it unknown (it filled, and that report was lost): its end is asked for, not guessed.
    window(500 * MS)
    lost = outcome_unknown()
    rig.venue.script("place", lost)
    rig.venue.always("cancel", unknown_order)
    rig.venue.script("query", queried)
    rig.stream(at(5), report(OrderStatus.NEW, ack=None))
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run()
    assert rig.cancels() == [at(10), at(270), at(780)]
    assert rig.queries() == [at(790 + FINAL_WAIT_NS / MS)]
    expected = queried if answered == "report" else lost
    assert rig.answers == [(at(800 + FINAL_WAIT_NS / MS), expected)]
    assert rig.clock.pending() == 0


def test_unknown_order_is_not_believed_while_the_placing_is_unanswered(rig: Rig) -> None:
    # The rest ends (1 s) before the placing's answer comes (1.1 s): the first cancel's
    # "unknown order" may mean the order is still on its way, so it is asked again.
    canceled = report(OrderStatus.CANCELED)
    rig.venue.script("place", Delayed(report(OrderStatus.NEW, ack=AckKind.ACCEPTED), 1100 * MS))
    rig.venue.script("cancel", unknown_order(), canceled)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=1 * SECOND)
    rig.run()
    assert rig.cancels() == [at(1000), at(1260)]
    assert rig.answers == [(at(1270), canceled)]
    assert rig.clock.pending() == 0


# -- other placing errors ----------------------------------------------------------------------
@pytest.mark.parametrize("rest_ns", [0, REST_NS], ids=["ioc", "resting"])
def test_a_rejected_placing_is_answered_at_once_and_never_cancelled(rig: Rig, rest_ns: int) -> None:
    rejected = OrderRejected(
        "would cross", reason=RejectReason.POST_ONLY_WOULD_CROSS, venue=VENUE, code=-5022
    )
    rig.venue.script("place", rejected)
    rig.runner.place(order(TimeInForce.POST_ONLY if rest_ns else TimeInForce.IOC), rest_ns)
    rig.run(at(10))
    assert rig.answers == [(at(10), rejected)]
    assert rig.clock.pending() == 0
    rig.run()
    assert rig.venue.calls == {"place": [START], "query": [], "cancel": []}


def test_a_rate_limited_resting_order_is_withdrawn_before_its_error_is_answered(
    rig: Rig,
) -> None:
    limited = RateLimited("too many requests", venue=VENUE, code=429, retry_after_s=1.0)
    rig.venue.script("place", limited)
    rig.venue.script("cancel", unknown_order())  # believed at once: no order window
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run(at(20))
    assert rig.answers == [(at(20), limited)]
    assert rig.clock.pending() == 0  # the rest timer is gone
    rig.run()
    assert rig.cancels() == [at(10)]
    assert len(rig.answers) == 1


def test_a_rate_limited_ioc_is_answered_at_once(rig: Rig) -> None:
    limited = RateLimited("too many requests", venue=VENUE, code=429, retry_after_s=1.0)
    rig.venue.script("place", limited)
    rig.runner.place(order())
    rig.run()
    assert rig.answers == [(at(10), limited)]
    assert rig.venue.calls == {"place": [START], "query": [], "cancel": []}


# -- the withdrawal's backoff and deadline ----------------------------------------------------
def test_cancels_failing_past_the_withdraw_deadline_answer_hedge_order_open(rig: Rig) -> None:
    errors: list[VenueUnavailable] = []

    def failing_cancel() -> VenueUnavailable:
        errors.append(unavailable(f"cancel {len(errors) + 1} failed"))
        return errors[-1]

    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.always("cancel", failing_cancel)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=1 * SECOND)
    rig.run()
    # From the rest end (1 s), each cancel a round trip (10 ms) after the last plus a pause
    # of 0.25, 0.5, 1, 2 then 4 s; the last one sent at the deadline (1 s + 30 s).
    assert rig.cancels() == [
        at(ms)
        for ms in (1000, 1260, 1770, 2780, 4790, 8800, 12810, 16820, 20830, 24840, 28850, 31000)
    ]
    [(t, answer)] = rig.answers
    assert t == at(31010)
    assert isinstance(answer, HedgeOrderOpen)
    assert (answer.client_order_id, answer.symbol, answer.seconds) == (COID, SYMBOL, 30.0)
    assert len(errors) == 12
    assert answer.__cause__ is errors[-1]
    assert rig.clock.pending() == 0


def test_unknown_order_within_the_order_window_is_never_believed_up_to_the_deadline(
    rig: Rig, window: Callable[[int], None]
) -> None:
    window(60 * SECOND)  # longer than the withdrawal: every "unknown order" is disbelieved
    lost = outcome_unknown()
    rig.venue.script("place", lost)
    rig.venue.always("cancel", unknown_order)
    rig.runner.place(order())
    rig.run()
    assert rig.cancels()[:5] == [at(10), at(270), at(780), at(1790), at(3800)]
    assert rig.cancels()[-1] == at(10) + WITHDRAW_NS
    assert len(rig.cancels()) == 12
    [(t, answer)] = rig.answers
    assert t == at(30020)
    assert isinstance(answer, HedgeOrderOpen)
    assert answer.__cause__ is lost  # no cancel failed: the placing's error
    assert rig.clock.pending() == 0


# -- withdraw() ---------------------------------------------------------------------------------
def test_withdraw_answers_the_cancels_report(rig: Rig) -> None:
    canceled = report(OrderStatus.CANCELED, "0.2")
    rig.venue.script("cancel", canceled)
    rig.runner.withdraw()
    rig.run()
    assert rig.venue.calls == {"place": [], "query": [], "cancel": [START]}
    assert rig.answers == [(at(10), canceled)]
    assert rig.clock.pending() == 0


def test_withdraw_of_an_order_the_venue_does_not_know_answers_none(rig: Rig) -> None:
    rig.venue.script("cancel", unknown_order())
    rig.runner.withdraw()
    rig.run()
    assert rig.venue.calls == {"place": [], "query": [], "cancel": [START]}
    assert rig.answers == [(at(10), None)]
    assert rig.clock.pending() == 0


def test_withdraw_tries_again_after_a_pause_when_a_cancel_fails(rig: Rig) -> None:
    canceled = report(OrderStatus.CANCELED)
    rig.venue.script("cancel", unavailable(), unavailable(), canceled)
    rig.runner.withdraw()
    rig.run()
    assert rig.cancels() == [at(0), at(260), at(770)]
    assert rig.answers == [(at(780), canceled)]


# -- withdrawn, ended, its final report not yet seen -------------------------------------------
def test_a_withdrawn_order_unknown_to_the_venue_is_queried_after_the_final_wait(
    rig: Rig,
) -> None:
    # The cancel at the rest end finds it gone, its last known report NEW: it ended on its own
    # and its final report is awaited from the stream, then asked for.
    filled = report(OrderStatus.FILLED, "0.5")
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.script("cancel", unknown_order())
    rig.venue.script("query", filled)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=1 * SECOND)
    rig.run()
    assert rig.cancels() == [at(1000)]
    assert rig.queries() == [at(6010)]
    assert rig.answers == [(at(6020), filled)]
    assert rig.clock.pending() == 0


def test_a_withdrawn_order_whose_final_report_streams_in_the_wait_is_never_queried(
    rig: Rig,
) -> None:
    filled = report(OrderStatus.FILLED, "0.5", ack=None)
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.script("cancel", unknown_order())
    rig.stream(at(3000), filled)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=1 * SECOND)
    rig.run()
    assert rig.cancels() == [at(1000)]
    assert rig.queries() == []
    assert rig.answers == [(at(3000), filled)]
    assert rig.clock.pending() == 0


# -- stop() -------------------------------------------------------------------------------------
def test_stop_while_resting_answers_nothing_and_leaves_no_timer(rig: Rig) -> None:
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.runner.place(order(TimeInForce.GTC), rest_ns=REST_NS)
    rig.run(at(500))
    rig.runner.stop()
    assert rig.clock.pending() == 0
    rig.stream(at(600), report(OrderStatus.FILLED, "0.5", ack=None))
    rig.run()
    assert rig.answers == []
    assert rig.cancels() == []


def test_stop_while_withdrawing_answers_nothing_and_leaves_no_timer(rig: Rig) -> None:
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.venue.always("cancel", unavailable)
    rig.runner.place(order(TimeInForce.GTC), rest_ns=1 * SECOND)
    rig.run(at(1100))  # the first cancel failed at 1010 ms; the next is due at 1260 ms
    rig.runner.stop()
    assert rig.clock.pending() == 0
    rig.run()
    assert rig.cancels() == [at(1000)]
    assert rig.answers == []


def test_stop_before_the_placings_answer_ignores_it(rig: Rig) -> None:
    rig.venue.script("place", report(OrderStatus.NEW, ack=AckKind.ACCEPTED))
    rig.runner.place(order())
    rig.run(at(5))
    rig.runner.stop()
    rig.run()
    assert rig.answers == []
    assert rig.venue.calls == {"place": [START], "query": [], "cancel": []}
    assert rig.clock.pending() == 0
