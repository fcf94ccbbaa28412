"""What becomes of an order at a simulated venue: refused, answered, lost, applied now or late."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from actors.backtest.loop import Loop
from actors.backtest.venue import Venue
from venues.errors import OrderRejected, RateLimited, UnknownOrder, VenueUnavailable
from venues.model import (
    AckKind,
    ExecutionReport,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountReport, AccountSpec, SimExchange
from venues.sim.market import DepthUpdate, ScriptedMarket
from venues.sim.outcome import (
    Admitted,
    accepted_view,
    admit,
    answer_view,
    apply,
    apply_late,
    at_door,
    pending_view,
    process,
    process_after_receipt,
)
from venues.sim.profile import Latency, Outage, VenueConditions, VenueProfile

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001
MS = 1_000_000
S = 1_000_000_000
T0 = 100 * S  # when each order of these tests reaches the venue
SEED = 5


def conditions(**profile: Any) -> VenueConditions:
    """A venue started at 0 with this profile, seeded."""
    return VenueConditions(VenueProfile(**profile), SEED, started_ns=0)


def exchange() -> SimExchange:
    """BTC at 59999.0 / 60001.0, 1 BTC each side; alice has 1M USDT, poor 100 USDT."""
    market = ScriptedMarket([BTC])
    market.push(DepthUpdate(1, "BTCUSDT", [(599_990, 1000)], [(600_010, 1000)]))
    ex = SimExchange("simx", market)
    ex.open_account(AccountSpec(account_id="alice", balances={"USDT": D(1_000_000)}))
    ex.open_account(AccountSpec(account_id="poor", balances={"USDT": D(100)}))
    return ex


def buy(coid: str, qty: str = "0.5", price: str | None = None) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
    )


def admitted(c: VenueConditions) -> Admitted:
    fate = admit(c, "simx", T0)
    assert isinstance(fate, Admitted)
    return fate


# --- at the door -------------------------------------------------------------------------
def test_an_order_in_an_outage_is_refused_with_a_503() -> None:
    c = conditions(outages=(Outage(start_s=90, duration_s=20),))
    refused = at_door(c, "simx", T0)
    assert isinstance(refused, VenueUnavailable)
    assert (refused.code, refused.venue) == (503, "simx")
    assert refused.message == "venue simx is in an outage: it answered 503"
    refusing = conditions(outages=(Outage(start_s=90, duration_s=20, mode="refuse"),))
    assert "refused the connection" in at_door(refusing, "simx", T0).message  # type: ignore[union-attr]
    assert isinstance(at_door(c, "simx", 110 * S), Admitted)  # the window is over


def test_an_order_refused_in_an_outage_does_not_count_against_the_rate_limit() -> None:
    c = conditions(orders_per_minute=1, outages=(Outage(start_s=90, duration_s=20),))
    assert isinstance(at_door(c, "simx", T0), VenueUnavailable)
    assert isinstance(at_door(c, "simx", 110 * S), Admitted)


def test_an_order_over_the_rate_limit_is_refused_with_when_to_retry() -> None:
    c = conditions(orders_per_minute=2)
    assert isinstance(at_door(c, "simx", T0), Admitted)
    assert isinstance(at_door(c, "simx", T0 + 1 * S), Admitted)
    limited = at_door(c, "simx", T0 + 10 * S)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after_s == pytest.approx(50.0)
    assert limited.message == "order rate limit of 2/min reached on simx"
    assert isinstance(at_door(c, "simx", T0 + 60 * S), Admitted)  # the first has left the window


# --- answers -----------------------------------------------------------------------------
def test_a_receipt_venue_answers_pending_at_once_and_says_when_it_received_the_order() -> None:
    fate = admitted(conditions(ack=AckKind.RECEIPT))
    assert fate.answered_at_receipt and not fate.lost
    answer = pending_view("simx", buy("r1"), AckKind.RECEIPT, T0)
    assert (answer.ack_kind, answer.status, answer.order_id) == (
        AckKind.RECEIPT,
        OrderStatus.PENDING_NEW,
        "",
    )
    assert (answer.venue_receive_ns, answer.venue_ts_ns, answer.cum_filled) == (T0, T0, 0)


def test_a_receipt_venue_whose_answer_is_lost_does_not_answer_at_receipt() -> None:
    fate = admitted(conditions(ack=AckKind.RECEIPT, unknown_rate=1.0))
    assert fate.lost and not fate.answered_at_receipt


def test_a_result_answer_carries_the_fills_and_an_accepted_one_only_the_acceptance() -> None:
    ex = exchange()
    result = process(conditions(ack=AckKind.RESULT), ex, "alice", buy("a"), T0, T0 + MS, Admitted())
    assert isinstance(result, ExecutionReport)
    assert (result.ack_kind, result.status, result.cum_filled) == (
        AckKind.RESULT,
        OrderStatus.FILLED,
        D("0.5"),
    )
    accepted = process(
        conditions(ack=AckKind.ACCEPTED), ex, "alice", buy("b"), T0, T0 + MS, Admitted()
    )
    assert isinstance(accepted, ExecutionReport)
    assert (accepted.ack_kind, accepted.status, accepted.cum_filled, accepted.avg_price) == (
        AckKind.ACCEPTED,
        OrderStatus.NEW,
        0,
        None,
    )
    assert ex.query("alice", "BTCUSDT", "b").status is OrderStatus.FILLED  # filled all the same


def test_the_answer_views_keep_the_order_and_change_only_what_the_answer_shows() -> None:
    final = exchange().place("alice", buy("v"), T0 + MS, receive_ns=T0)
    assert answer_view(AckKind.RESULT, final) == msgspec.structs.replace(
        final, ack_kind=AckKind.RESULT
    )
    assert answer_view(AckKind.ACCEPTED, final) == accepted_view(final)
    assert accepted_view(final).order_id == final.order_id != ""


def test_a_venue_that_refuses_the_order_answers_with_the_reject() -> None:
    ex = exchange()
    answer = process(conditions(), ex, "poor", buy("big", "1", "60000.0"), T0, T0 + MS, Admitted())
    assert isinstance(answer, OrderRejected)
    assert answer.reason is RejectReason.INSUFFICIENT_MARGIN


def test_an_injected_reject_leaves_the_exchange_untouched() -> None:
    ex = exchange()
    rejected = apply(conditions(reject_rate=1.0), ex, "alice", buy("x"), T0, T0 + MS)
    assert isinstance(rejected, OrderRejected)
    assert (rejected.reason, rejected.venue, rejected.client_order_id) == (
        RejectReason.INJECTED,
        "simx",
        "x",
    )
    with pytest.raises(UnknownOrder):
        ex.query("alice", "BTCUSDT", "x")


def test_a_receipt_venue_publishes_a_reject_on_the_stream() -> None:
    ex = exchange()
    ex.drain()
    process_after_receipt(conditions(), ex, "poor", buy("big", "1", "60000.0"), T0, T0 + 2 * MS)
    reports = [e.report for e in ex.drain() if isinstance(e, AccountReport)]
    assert [(r.client_order_id, r.status, r.reject_reason, r.ack_kind) for r in reports] == [
        ("big", OrderStatus.REJECTED, RejectReason.INSUFFICIENT_MARGIN, AckKind.RECEIPT)
    ]
    assert (reports[0].venue_receive_ns, reports[0].venue_ts_ns) == (T0, T0 + 2 * MS)
    assert reports[0].reject_message is not None and "USDT" in reports[0].reject_message


# --- lost answers ------------------------------------------------------------------------
def test_a_lost_order_that_is_not_applied_never_reaches_the_exchange() -> None:
    c = conditions(ack=AckKind.RESULT, unknown_rate=1.0, unknown_applied=0.0)
    fate = admitted(c)
    assert (fate.lost, fate.applied, fate.apply_after_ns) == (True, False, None)
    ex = exchange()
    ex.drain()
    answer = process(c, ex, "alice", buy("u"), T0, T0 + MS, fate)
    assert isinstance(answer, ExecutionReport)
    assert (answer.ack_kind, answer.status, answer.venue_receive_ns) == (
        AckKind.UNKNOWN,
        OrderStatus.PENDING_NEW,
        None,
    )
    assert ex.drain() == []
    with pytest.raises(UnknownOrder):
        ex.query("alice", "BTCUSDT", "u")


def test_a_lost_order_that_is_applied_is_placed_but_answered_unknown_even_when_refused() -> None:
    c = conditions(ack=AckKind.RESULT, unknown_rate=1.0, unknown_applied=1.0)
    fate = admitted(c)
    assert (fate.lost, fate.applied, fate.apply_after_ns) == (True, True, None)
    ex = exchange()
    answer = process(c, ex, "alice", buy("u"), T0, T0 + MS, fate)
    assert (answer.ack_kind, answer.status) == (AckKind.UNKNOWN, OrderStatus.PENDING_NEW)
    assert ex.query("alice", "BTCUSDT", "u").status is OrderStatus.FILLED
    refused = process(c, ex, "poor", buy("big", "1", "60000.0"), T0, T0 + MS, fate)
    assert refused.ack_kind is AckKind.UNKNOWN  # not an OrderRejected: that answer was lost


def test_a_lost_order_applied_late_is_placed_only_once_its_delay_is_over() -> None:
    delay = Latency(median_ms=300, p99_ms=300)
    c = conditions(unknown_rate=1.0, unknown_applied=1.0, unknown_apply_delay=delay)
    fate = admitted(c)
    assert fate.apply_after_ns == 300 * MS and not fate.applied_when_processed
    ex = exchange()
    answer = process(c, ex, "alice", buy("late"), T0, T0 + MS, fate)
    assert answer.ack_kind is AckKind.UNKNOWN
    with pytest.raises(UnknownOrder):  # what a query in between says: -2013
        ex.query("alice", "BTCUSDT", "late")
    apply_late(c, ex, "alice", buy("late"), T0, T0 + fate.apply_after_ns)
    found = ex.query("alice", "BTCUSDT", "late")
    assert (found.status, found.venue_receive_ns) == (OrderStatus.FILLED, T0)


def test_the_apply_delay_is_drawn_only_for_a_lost_applied_order_of_a_profile_that_has_one() -> None:
    delay = Latency(median_ms=200, p99_ms=900)

    def next_draw_after_admit(**profile: Any) -> tuple[int | None, int]:
        c = conditions(**profile)
        return admitted(c).apply_after_ns, c.latency_ns("request")

    unset, _ = next_draw_after_admit(unknown_rate=1.0, unknown_applied=1.0)
    drawn, after_drawing = next_draw_after_admit(
        unknown_rate=1.0, unknown_applied=1.0, unknown_apply_delay=delay
    )
    assert unset is None and drawn is not None and drawn > 0
    # Where it does not apply, the seed's draws are the same as without it.
    for profile in (
        {"unknown_rate": 0.0},
        {"unknown_rate": 1.0, "unknown_applied": 0.0},
    ):
        without = next_draw_after_admit(**profile)
        assert next_draw_after_admit(**profile, unknown_apply_delay=delay) == without
        assert without[0] is None
    assert after_drawing != next_draw_after_admit(unknown_rate=1.0, unknown_applied=1.0)[1]


def test_the_backtest_venue_applies_a_lost_order_late_too() -> None:
    delay = Latency(median_ms=300, p99_ms=300)
    tiny = Latency(median_ms=0.1, p99_ms=0.5)
    c = VenueConditions(
        VenueProfile(
            request=tiny,
            processing=tiny,
            response=tiny,
            stream_lag=tiny,
            unknown_rate=1.0,
            unknown_applied=1.0,
            unknown_apply_delay=delay,
        ),
        SEED,
        started_ns=0,
    )
    loop = Loop(T0)
    venue = Venue(loop, "simx", exchange(), c, "alice", 5 * MS)
    answers: list[object] = []
    reports: list[ExecutionReport] = []
    venue.submit(buy("late"), answers.append, reports.append)
    loop.run(lambda: bool(answers), T0 + 100 * MS)
    (answer,) = answers
    assert isinstance(answer, ExecutionReport) and answer.ack_kind is AckKind.UNKNOWN
    early: list[object] = []
    venue.query("BTCUSDT", "late", early.append)
    loop.run(lambda: bool(early), T0 + 200 * MS)
    assert isinstance(early[0], UnknownOrder)
    loop.run(lambda: bool(reports) and reports[-1].status.is_terminal, T0 + 400 * MS)
    later: list[object] = []
    venue.query("BTCUSDT", "late", later.append)
    loop.run(lambda: bool(later), T0 + 500 * MS)
    found = later[0]
    assert isinstance(found, ExecutionReport) and found.status is OrderStatus.FILLED
    assert T0 + 300 * MS <= found.venue_accept_ns < T0 + 301 * MS  # type: ignore[operator]
    assert reports[-1].status is OrderStatus.FILLED
