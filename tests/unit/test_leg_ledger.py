"""The leg's ledger: child orders, cumulative reports in any order, totals, reconciliation."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.leg import MAX_CONSECUTIVE_REJECTS, LegLedger, Reconciliation, requoted
from actors.messages import LegStatus
from venues.model import (
    AckKind,
    ExecutionReport,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    pending_report,
)

D = Decimal
SYMBOL = "ETHUSDT"
MS = 1_000_000


def ledger(side: Side = Side.BUY, target: str = "10") -> LegLedger:
    return LegLedger("b1", "eth", side, D(target))


def order(n: int, qty: str = "1", side: Side = Side.BUY, price: str | None = "2600") -> NewOrder:
    return NewOrder(
        client_order_id=f"b1-eth-{n}",
        symbol=SYMBOL,
        side=side,
        type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        quantity=D(qty),
        price=D(price) if price is not None else None,
    )


def report(
    sent: NewOrder,
    status: OrderStatus,
    cum: str = "0",
    avg: str | None = None,
    fee: str = "0",
    **kw: object,
) -> ExecutionReport:
    """The venue's cumulative state of `sent`."""
    return ExecutionReport(
        venue="alpha",
        symbol=sent.symbol,
        client_order_id=sent.client_order_id,
        order_id="1",
        side=sent.side,
        order_type=sent.type,
        time_in_force=TimeInForce.GTC,
        status=status,
        quantity=sent.quantity,
        price=sent.price,
        cum_filled=D(cum),
        avg_price=D(avg) if avg is not None else None,
        cum_fee=D(fee),
        **kw,  # type: ignore[arg-type]
    )


def filled(
    lg: LegLedger, n: int, qty: str, price: str, side: Side = Side.BUY, purpose: str = "slice"
) -> NewOrder:
    """Send order `n` and have the venue fill it whole at `price`."""
    o = order(n, qty, side, price)
    lg.sent(o, n, n * MS, purpose)
    lg.acked(report(o, OrderStatus.FILLED, qty, price, ack_kind=AckKind.RESULT), n * MS + 1)
    return o


# -- recording --------------------------------------------------------------------------------


def test_a_sent_order_is_recorded_as_pending_with_what_was_asked() -> None:
    lg = ledger()
    o = order(1, "2.5")
    child = lg.sent(o, 1, 100)
    assert lg.orders == {o.client_order_id: child}
    assert child.status is OrderStatus.PENDING_NEW
    assert (child.quantity, child.price, child.side, child.sent_ns) == (
        D("2.5"),
        D(2600),
        o.side,
        100,
    )
    assert child.purpose == "slice"
    assert child.filled_qty == 0 and child.ack_ns is None
    assert lg.open_qty == D("2.5")


def test_a_client_order_id_is_never_reused() -> None:
    lg = ledger()
    o = order(1)
    lg.sent(o, 1, 100)
    lg.acked(report(o, OrderStatus.FILLED, "1", "2600"), 200)
    with pytest.raises(ValueError, match="b1-eth-1"):
        lg.sent(msgspec.structs.replace(o, quantity=D(3)), 2, 300)
    # The first order's record is untouched by the refused resend.
    assert lg.orders[o.client_order_id].quantity == D(1)
    assert lg.orders[o.client_order_id].status is OrderStatus.FILLED
    assert len(lg.orders) == 1


def test_the_ack_stamps_the_first_answer_time_and_kind() -> None:
    lg = ledger()
    o = order(1)
    lg.sent(o, 1, 100)
    assert lg.acked(report(o, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED, venue_receive_ns=7), 150)
    child = lg.orders[o.client_order_id]
    assert (child.ack_ns, child.ack_kind, child.status) == (150, AckKind.ACCEPTED, OrderStatus.NEW)
    assert child.venue_receive_ns == 7
    # A repeated ack changes neither the time nor the kind.
    lg.acked(report(o, OrderStatus.NEW, ack_kind=AckKind.RESULT), 400)
    assert (child.ack_ns, child.ack_kind) == (150, AckKind.ACCEPTED)


def test_reports_of_orders_the_leg_did_not_send_are_ignored() -> None:
    lg = ledger()
    lg.sent(order(1), 1, 100)
    stranger = order(9)
    assert not lg.on_report(report(stranger, OrderStatus.FILLED, "1", "2600"), 200)
    assert not lg.acked(report(stranger, OrderStatus.FILLED, "1", "2600"), 200)
    assert list(lg.orders) == ["b1-eth-1"]
    assert lg.filled_qty == 0


def test_stream_reports_after_the_ack_accumulate_fills() -> None:
    lg = ledger()
    o = order(1, "4")
    lg.sent(o, 1, 100)
    lg.acked(report(o, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 110)
    assert lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2600", "0.5"), 120)
    assert lg.last_fill_seen_ns == 120
    assert lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "3", "2601", "1.5"), 130)
    child = lg.orders[o.client_order_id]
    assert child.status is OrderStatus.PARTIALLY_FILLED
    assert (child.filled_qty, child.avg_price, child.fee) == (D(3), D(2601), D("1.5"))
    assert child.open_qty == D(1)
    assert lg.open_qty == D(1)
    assert lg.fees == D("1.5")
    assert lg.last_fill_seen_ns == 130
    # The same report again changes nothing.
    assert not lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "3", "2601", "1.5"), 140)
    assert lg.last_fill_seen_ns == 130


def test_each_newer_fill_is_marked_with_the_venue_time_it_happened() -> None:
    lg = ledger()
    o = order(1, "4")
    lg.sent(o, 1, 100)
    lg.acked(report(o, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED, venue_ts_ns=105), 110)
    lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2600", venue_ts_ns=500), 520)
    # The same fill again, and an older one arriving late, mark nothing.
    lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2600", venue_ts_ns=500), 530)
    lg.on_report(report(o, OrderStatus.FILLED, "4", "2601", venue_ts_ns=900), 920)
    lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "3", "2601", venue_ts_ns=700), 930)
    assert lg.orders[o.client_order_id].fill_marks == [(500, D(1)), (900, D(4))]


def quote(n: int) -> NewOrder:
    return msgspec.structs.replace(order(n, "1"), time_in_force=TimeInForce.POST_ONLY)


def test_a_quote_refused_after_a_receipt_with_no_reason_is_priced_again_within_a_bound() -> None:
    # A venue that answers on receipt refuses later on its stream, and Binance's stream says
    # no more than REJECTED: an unfilled quote is taken for one that would have crossed.
    lg = ledger()
    for n in range(MAX_CONSECUTIVE_REJECTS):
        q = quote(n)
        lg.sent(q, n, 100 * n)
        lg.acked(report(q, OrderStatus.PENDING_NEW, ack_kind=AckKind.RECEIPT), 100 * n + 1)
        lg.on_report(report(q, OrderStatus.REJECTED), 100 * n + 2)
        assert requoted(lg.orders[q.client_order_id])
        if n < MAX_CONSECUTIVE_REJECTS - 1:
            assert lg.give_up_reason() is None, n  # the first order too
            assert lg.quote_refused
    # Believed no further: that many in a row is a refusal of the leg's quotes.
    reason = lg.give_up_reason()
    assert reason is not None and "quotes in a row refused with no reason" in reason


def test_quotes_count_their_fills_and_the_time_they_rested() -> None:
    # What the basket widens a passive leg's step by (`actors.basket.resting_steps`).
    lg = ledger()
    q = quote(1)
    lg.sent(q, 1, 100)
    assert lg.quoted_ns(150) == 0  # on its way: not resting yet
    lg.acked(report(q, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 200)
    assert lg.quoted_ns(260) == 60
    lg.on_report(report(q, OrderStatus.PARTIALLY_FILLED, "0.5", "2600"), 300)
    lg.on_report(report(q, OrderStatus.PARTIALLY_FILLED, "0.5", "2600"), 310)  # again: no fill
    lg.on_report(report(q, OrderStatus.CANCELED, "0.5", "2600"), 400)
    assert lg.quoted_ns(1_000) == 200  # from its ack to its cancel
    # An IOC's fill is no quote's, and it rests for no time.
    filled(lg, 2, "1", "2601")
    p = lg.progress(LegStatus.WORKING, 1_000, None)
    assert (p.maker_fills, p.quoted_ns) == (1, 200)
    # A second quote, refused at once, never rested; a third is resting now.
    for n, answer in ((3, OrderStatus.REJECTED), (4, OrderStatus.NEW)):
        q = quote(n)
        lg.sent(q, n, 2_000)
        lg.acked(report(q, answer, ack_kind=AckKind.ACCEPTED), 2_100)
    assert lg.quoted_ns(2_500) == 600


def test_an_ioc_or_a_quote_acked_otherwise_refused_with_no_reason_is_a_refusal() -> None:
    ioc = ledger()
    o = order(0)
    ioc.sent(o, 0, 100)
    ioc.acked(report(o, OrderStatus.PENDING_NEW, ack_kind=AckKind.RECEIPT), 101)
    ioc.on_report(report(o, OrderStatus.REJECTED), 102)
    assert not requoted(ioc.orders[o.client_order_id])
    assert "first order" in (ioc.give_up_reason() or "")
    lg = ledger()
    q = quote(0)
    lg.sent(q, 0, 100)
    lg.acked(report(q, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 101)
    lg.on_report(report(q, OrderStatus.REJECTED), 102)  # it was on the book: not a crossing
    assert not requoted(lg.orders[q.client_order_id])
    assert "first order" in (lg.give_up_reason() or "")


def test_a_late_older_report_never_moves_an_order_back() -> None:
    lg = ledger()
    o = order(1, "4")
    lg.sent(o, 1, 100)
    # The stream's FILLED overtakes the placement's answer and an older partial fill.
    assert lg.on_report(report(o, OrderStatus.FILLED, "4", "2602", "2"), 120)
    assert not lg.acked(report(o, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 130)
    assert not lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2600", "0.5"), 140)
    child = lg.orders[o.client_order_id]
    assert child.status is OrderStatus.FILLED
    assert (child.filled_qty, child.avg_price, child.fee) == (D(4), D(2602), D(2))
    assert child.ack_ns == 130  # the ack still says when the placement's answer arrived
    assert lg.last_fill_seen_ns == 120
    assert lg.open_qty == 0


def test_a_fill_report_before_the_cancel_that_ended_it_keeps_the_cancel() -> None:
    lg = ledger()
    o = order(1, "4")
    lg.sent(o, 1, 100)
    lg.on_report(report(o, OrderStatus.CANCELED, "2", "2600"), 120)
    lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "2", "2600"), 130)
    child = lg.orders[o.client_order_id]
    assert child.status is OrderStatus.CANCELED
    assert child.filled_qty == D(2)
    assert child.open_qty == 0


# How far along an order is, as the ledger must never undo it.
_PROGRESS = {OrderStatus.PENDING_NEW: 0, OrderStatus.NEW: 1, OrderStatus.PARTIALLY_FILLED: 2}


@st.composite
def report_history(draw: st.DrawFn) -> tuple[NewOrder, list[ExecutionReport]]:
    """One order's reports as the venue emitted them: NEW, partial fills, a final state."""
    qty = draw(st.integers(min_value=2, max_value=20))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=qty - 1), max_size=5)))
    ending = draw(st.sampled_from([OrderStatus.FILLED, OrderStatus.CANCELED, None]))
    o = order(1, str(qty))
    history = [report(o, OrderStatus.NEW)]
    for cum in cuts:
        history.append(report(o, OrderStatus.PARTIALLY_FILLED, str(cum), str(2600 + cum), str(cum)))
    if ending is OrderStatus.FILLED:
        history.append(report(o, ending, str(qty), str(2600 + qty), str(qty)))
    elif ending is OrderStatus.CANCELED:
        last = history[-1]
        history.append(msgspec.structs.replace(last, status=OrderStatus.CANCELED))
    return o, history


def _rank(status: OrderStatus) -> int:
    return 3 if status.is_terminal else _PROGRESS[status]


@given(report_history(), st.data())
def test_reports_in_any_order_end_at_the_newest_and_never_go_back(
    case: tuple[NewOrder, list[ExecutionReport]], data: st.DataObject
) -> None:
    o, history = case
    arrival = data.draw(st.permutations(history))
    lg = ledger()
    lg.sent(o, 1, 0)
    child = lg.orders[o.client_order_id]
    rank, cum, fee = 0, D(0), D(0)
    for t, r in enumerate(arrival, start=1):
        lg.on_report(r, t)
        assert _rank(child.status) >= rank
        assert child.filled_qty >= cum
        assert child.fee >= fee
        rank, cum, fee = _rank(child.status), child.filled_qty, child.fee
    newest = history[-1]
    assert child.status is newest.status
    assert child.filled_qty == newest.cum_filled
    assert child.avg_price == newest.avg_price
    assert child.fee == newest.cum_fee
    assert lg.open_qty == newest.open_qty


def test_an_unknown_outcome_counts_whole_until_a_report_settles_it() -> None:
    lg = ledger()
    o = order(1, "3")
    lg.sent(o, 1, 100)
    lg.on_report(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2600"), 110)
    lg.unknown(o.client_order_id)
    child = lg.orders[o.client_order_id]
    assert child.unknown
    assert lg.open_qty == D(2)
    # An UNKNOWN answer marks the order unknown and changes nothing else.
    o2 = order(2, "5")
    lg.sent(o2, 2, 120)
    assert not lg.acked(pending_report(o2, "alpha", AckKind.UNKNOWN), 130)
    assert lg.orders[o2.client_order_id].unknown
    assert lg.orders[o2.client_order_id].status is OrderStatus.PENDING_NEW
    assert lg.open_qty == D(7)
    # A report settles the doubt.
    lg.on_report(report(o, OrderStatus.CANCELED, "1", "2600"), 140)
    assert not child.unknown
    assert lg.open_qty == D(5)


def test_an_unknown_terminal_order_still_counts_as_open() -> None:
    lg = ledger()
    o = order(1, "3")
    lg.sent(o, 1, 100)
    lg.on_report(report(o, OrderStatus.CANCELED, "1", "2600"), 110)
    assert lg.open_qty == 0
    lg.unknown(o.client_order_id)
    assert lg.open_qty == D(2)


# -- totals -----------------------------------------------------------------------------------


def test_filled_qty_is_net_of_unwinds_and_avg_price_is_over_slices_only() -> None:
    lg = ledger(Side.BUY, "10")
    filled(lg, 1, "2", "100")
    filled(lg, 2, "3", "110")
    assert lg.filled_qty == D(5)
    assert lg.avg_price == D(106)  # (2×100 + 3×110) / 5
    filled(lg, 3, "4", "90", side=Side.SELL, purpose="unwind")
    assert lg.filled_qty == D(1)
    assert lg.slice_filled_qty == D(5)
    assert lg.avg_price == D(106)  # the unwind's price is not the leg's


def test_a_sell_leg_counts_its_sells_as_filled_and_its_buy_backs_against() -> None:
    lg = ledger(Side.SELL, "10")
    filled(lg, 1, "4", "100", side=Side.SELL)
    filled(lg, 2, "1", "101", side=Side.BUY, purpose="unwind")
    assert lg.filled_qty == D(3)
    assert lg.avg_price == D(100)


def test_avg_price_is_none_before_any_fill() -> None:
    lg = ledger()
    lg.sent(order(1), 1, 100)
    assert lg.avg_price is None
    filled(lg, 2, "2", "95", side=Side.SELL, purpose="unwind")
    assert lg.avg_price is None  # an unwind fill alone is no price for the leg


def test_open_qty_sums_what_is_resting_and_in_flight() -> None:
    lg = ledger()
    a, b, c = order(1, "2"), order(2, "3"), order(3, "4")
    for n, o in enumerate((a, b, c), start=1):
        lg.sent(o, n, n)
    lg.on_report(report(a, OrderStatus.PARTIALLY_FILLED, "0.5", "2600"), 10)
    lg.on_report(report(b, OrderStatus.FILLED, "3", "2600"), 11)
    assert lg.open_qty == D("1.5") + D(4)
    lg.on_report(report(c, OrderStatus.EXPIRED, "1", "2600"), 12)
    assert lg.open_qty == D("1.5")


def test_a_refused_placement_is_a_reject_and_nothing_open() -> None:
    lg = ledger()
    o = order(1, "2")
    lg.sent(o, 1, 100)
    lg.unknown(o.client_order_id)
    lg.refused(o.client_order_id, "VENUE_UNAVAILABLE: 503", 150)
    child = lg.orders[o.client_order_id]
    assert child.status is OrderStatus.REJECTED
    assert child.ack_ns == 150
    assert not child.unknown
    assert lg.open_qty == 0
    assert lg.rejects == ["b1-eth-1 VENUE_UNAVAILABLE: 503"]


def test_missed_qty_is_what_the_newest_slice_left_at_the_book() -> None:
    lg = ledger()
    assert lg.missed_qty == 0
    a = order(1, "1")
    lg.sent(a, 1, 1)
    assert lg.missed_qty == 0  # still working
    lg.on_report(report(a, OrderStatus.EXPIRED, "0.3", "2600"), 2)
    assert lg.missed_qty == D("0.7")  # an IOC that took 0.3 and expired
    # An unwind is not a slice: it changes nothing.
    lg.sent(order(2, "0.1", Side.SELL), 2, 3, "unwind")
    assert lg.missed_qty == D("0.7")
    # The newest slice counts: filled whole, nothing missed.
    filled(lg, 3, "0.7", "2601")
    assert lg.missed_qty == 0
    # A cancel at the venue is a miss too.
    c = order(4, "0.5")
    lg.sent(c, 4, 5)
    lg.on_report(report(c, OrderStatus.CANCELED), 6)
    assert lg.missed_qty == D("0.5")


def test_a_refused_or_unknown_slice_is_not_missed() -> None:
    lg = ledger()
    a = order(1, "1")
    lg.sent(a, 1, 1)
    lg.refused(a.client_order_id, "VENUE_UNAVAILABLE: 503", 2)
    assert lg.missed_qty == 0  # never reached the book
    b = order(2, "1")
    lg.sent(b, 2, 3)
    lg.on_report(report(b, OrderStatus.REJECTED, reject_reason=RejectReason.INSUFFICIENT_MARGIN), 4)
    assert lg.missed_qty == 0
    c = order(3, "1")
    lg.sent(c, 3, 5)
    lg.unknown(c.client_order_id)
    assert lg.missed_qty == 0


def test_rejects_name_the_order_and_the_venue_reason() -> None:
    lg = ledger()
    a, b, c = order(1), order(2), order(3)
    for n, o in enumerate((a, b, c), start=1):
        lg.sent(o, n, n)
    lg.acked(
        report(
            a,
            OrderStatus.REJECTED,
            reject_reason=RejectReason.INSUFFICIENT_MARGIN,
            reject_message="margin is insufficient",
        ),
        10,
    )
    lg.on_report(report(b, OrderStatus.REJECTED), 11)
    lg.on_report(report(c, OrderStatus.FILLED, "1", "2600"), 12)
    assert lg.rejects == [
        "b1-eth-1 INSUFFICIENT_MARGIN: margin is insufficient",
        "b1-eth-2 REJECTED: refused by the venue",
    ]


# -- progress ---------------------------------------------------------------------------------


def test_progress_snapshots_are_numbered_and_carry_the_totals() -> None:
    lg = ledger(Side.BUY, "10")
    first = lg.progress(LegStatus.ARMED, 50, None)
    assert first.seq == 1
    assert not first.first_ack
    o = order(1, "4")
    lg.sent(o, 1, 100)
    assert not lg.progress(LegStatus.WORKING, 101, D(2600)).first_ack
    lg.acked(report(o, OrderStatus.PARTIALLY_FILLED, "1", "2599", ack_kind=AckKind.RESULT), 120)
    p = lg.progress(LegStatus.WORKING, 130, D("2600.5"), blocked=True, reason="slippage cap")
    assert p.seq == 3
    assert p.first_ack
    assert (p.blocked, p.reason) == (True, "slippage cap")
    assert (p.basket_id, p.leg_id, p.side, p.target_qty) == ("b1", "eth", Side.BUY, D(10))
    assert (p.filled_qty, p.avg_price, p.open_qty) == (D(1), D(2599), D(3))
    assert (p.status, p.ts_ns, p.mark_price, p.fill_seen_ns) == (
        LegStatus.WORKING,
        130,
        D("2600.5"),
        120,
    )
    again = lg.progress(LegStatus.WORKING, 140, None)
    assert again.seq == 4
    assert not again.blocked and again.reason == ""


def test_first_ack_is_about_the_first_slice_not_a_later_one() -> None:
    lg = ledger()
    first, second = order(1), order(2)
    lg.sent(first, 1, 100)
    lg.sent(second, 2, 101)
    lg.acked(report(second, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 110)
    assert not lg.progress(LegStatus.WORKING, 111, None).first_ack
    lg.acked(report(first, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 120)
    assert lg.progress(LegStatus.WORKING, 121, None).first_ack


# -- reconciliation ---------------------------------------------------------------------------


def test_agreeing_answers_reconcile() -> None:
    lg = ledger(Side.BUY, "5")
    a = filled(lg, 1, "2", "100")
    b = filled(lg, 2, "3", "110")
    u = filled(lg, 3, "1", "105", side=Side.SELL, purpose="unwind")
    venue = {
        a.client_order_id: report(a, OrderStatus.FILLED, "2", "100"),
        b.client_order_id: report(b, OrderStatus.FILLED, "3", "110"),
        u.client_order_id: report(u, OrderStatus.FILLED, "1", "105"),
    }
    rec = lg.reconcile(venue, 999)
    assert rec == Reconciliation(
        leg_id="eth",
        reconciled=True,
        orders_checked=3,
        venue_filled_qty=D(4),
        ledger_filled_qty=D(4),
        ts_ns=999,
    )


def test_a_fill_quantity_mismatch_is_named_and_the_venue_figures_are_taken() -> None:
    lg = ledger(Side.BUY, "5")
    a = filled(lg, 1, "2", "100")
    b = order(2, "3")
    lg.sent(b, 2, 200)
    lg.acked(report(b, OrderStatus.PARTIALLY_FILLED, "1", "110", "0.1"), 210)
    venue = {
        a.client_order_id: report(a, OrderStatus.FILLED, "2", "100"),
        # A fill and a cancel the stream lost.
        b.client_order_id: report(b, OrderStatus.CANCELED, "2", "108", "0.2"),
    }
    rec = lg.reconcile(venue, 999)
    assert not rec.reconciled
    assert [(m.client_order_id, m.field, m.ours, m.venue) for m in rec.mismatches] == [
        (b.client_order_id, "filled_qty", "1", "2")
    ]
    assert (rec.ledger_filled_qty, rec.venue_filled_qty) == (D(3), D(4))
    assert rec.still_open == [] and rec.missing == []
    child = lg.orders[b.client_order_id]
    assert (child.status, child.filled_qty, child.avg_price, child.fee) == (
        OrderStatus.CANCELED,
        D(2),
        D(108),
        D("0.2"),
    )
    assert lg.filled_qty == D(4)
    assert lg.avg_price == (D(200) + D(216)) / D(4)


def test_the_venue_figures_win_even_when_they_are_lower() -> None:
    lg = ledger()
    o = order(1, "2")
    lg.sent(o, 1, 100)
    lg.on_report(report(o, OrderStatus.FILLED, "2", "100"), 110)  # a report in error
    rec = lg.reconcile({o.client_order_id: report(o, OrderStatus.CANCELED, "1", "101")}, 999)
    assert [(m.field, m.ours, m.venue) for m in rec.mismatches] == [("filled_qty", "2", "1")]
    child = lg.orders[o.client_order_id]
    assert (child.status, child.filled_qty, child.avg_price) == (
        OrderStatus.CANCELED,
        D(1),
        D(101),
    )
    assert lg.filled_qty == D(1)


def test_a_terminal_status_mismatch_is_named() -> None:
    lg = ledger()
    o = order(1, "2")
    lg.sent(o, 1, 100)
    lg.acked(report(o, OrderStatus.PARTIALLY_FILLED, "1", "100"), 110)
    lg.on_report(report(o, OrderStatus.CANCELED, "1", "100"), 120)
    rec = lg.reconcile({o.client_order_id: report(o, OrderStatus.EXPIRED, "1", "100")}, 999)
    assert not rec.reconciled
    assert [(m.field, m.ours, m.venue) for m in rec.mismatches] == [
        ("status", "CANCELED", "EXPIRED")
    ]
    assert lg.orders[o.client_order_id].status is OrderStatus.EXPIRED


def test_an_order_still_open_at_the_venue_is_not_reconciled() -> None:
    lg = ledger()
    a = filled(lg, 1, "2", "100")
    b = order(2, "3")
    lg.sent(b, 2, 200)
    lg.acked(report(b, OrderStatus.NEW, ack_kind=AckKind.ACCEPTED), 210)
    venue = {
        a.client_order_id: report(a, OrderStatus.FILLED, "2", "100"),
        b.client_order_id: report(b, OrderStatus.NEW),
    }
    rec = lg.reconcile(venue, 999)
    assert not rec.reconciled
    assert rec.still_open == [b.client_order_id]
    assert rec.mismatches == []
    assert lg.open_qty == D(3)


def test_an_id_the_venue_does_not_know_never_reached_it() -> None:
    lg = ledger()
    a = filled(lg, 1, "2", "100")
    lost = order(2, "3")
    lg.sent(lost, 2, 200)
    lg.unknown(lost.client_order_id)  # the placement timed out
    refused = order(3, "1")
    lg.sent(refused, 3, 300)
    lg.refused(refused.client_order_id, "VENUE_UNAVAILABLE: 503", 310)
    venue = {
        a.client_order_id: report(a, OrderStatus.FILLED, "2", "100"),
        lost.client_order_id: None,
        refused.client_order_id: None,
    }
    rec = lg.reconcile(venue, 999)
    assert rec.reconciled
    assert rec.missing == [lost.client_order_id, refused.client_order_id]
    assert rec.mismatches == []
    child = lg.orders[lost.client_order_id]
    assert child.status is OrderStatus.REJECTED
    assert not child.unknown
    assert child.reject is not None and child.reject.startswith("UNKNOWN_ORDER")
    assert lg.orders[refused.client_order_id].reject == "VENUE_UNAVAILABLE: 503"
    assert lg.open_qty == 0
    assert (rec.venue_filled_qty, rec.ledger_filled_qty) == (D(2), D(2))


def test_an_unknown_id_we_thought_filled_is_a_mismatch() -> None:
    lg = ledger()
    a = filled(lg, 1, "2", "100")
    rec = lg.reconcile({a.client_order_id: None}, 999)
    assert not rec.reconciled
    assert rec.missing == [a.client_order_id]
    assert [(m.client_order_id, m.field) for m in rec.mismatches] == [(a.client_order_id, "exists")]
    assert "2" in rec.mismatches[0].ours
    assert rec.mismatches[0].venue == "unknown order"
    assert (rec.venue_filled_qty, rec.ledger_filled_qty) == (D(0), D(2))


def test_a_lost_answer_is_not_an_acknowledgement() -> None:
    # The venue's answer never came (UNKNOWN): the order may not have reached it, so the leg
    # is not acknowledged and cannot count towards the basket's launch.
    lg = ledger()
    o = order(1)
    lg.sent(o, 1, 100)
    assert lg.acked(pending_report(o, "alpha", AckKind.UNKNOWN), 200) is False
    child = lg.orders[o.client_order_id]
    assert child.unknown and child.ack_ns is None and child.ack_kind is None
    assert lg.progress(LegStatus.WORKING, 201, None).first_ack is False
    assert lg.open_qty == D(1)


def test_a_first_look_that_disagrees_leaves_the_record_to_catch_up() -> None:
    # adopt=False (the leg's first looks): a disagreement is reported and the record kept,
    # so that a second look still sees it; only the final look adopts the venue's figures.
    lg = ledger()
    o = order(1, qty="2")
    lg.sent(o, 1, 100)
    lg.acked(report(o, OrderStatus.FILLED, "1", "2600", ack_kind=AckKind.RESULT), 200)
    venue = {o.client_order_id: report(o, OrderStatus.FILLED, "2", "2600")}
    first = lg.reconcile(venue, 300, adopt=False)
    assert not first.reconciled and lg.filled_qty == D(1)
    again = lg.reconcile(venue, 400, adopt=False)
    assert not again.reconciled and [m.field for m in again.mismatches] == ["filled_qty"]
    final = lg.reconcile(venue, 500)
    assert not final.reconciled and lg.filled_qty == D(2)


def test_a_leg_gives_up_on_its_first_refusal_or_on_five_in_a_row() -> None:
    first_refused = ledger()
    first_refused.sent(order(0), 0, 1)
    first_refused.sent(order(1), 1, 2)
    assert first_refused.give_up_reason() is None
    first_refused.refused("b1-eth-0", "INSUFFICIENT_MARGIN: no margin", 3)
    assert first_refused.give_up_reason() == (
        "first order b1-eth-0 rejected: INSUFFICIENT_MARGIN: no margin"
    )

    streak = ledger()
    filled(streak, 0, "1", "2600")
    for n in range(1, 6):
        streak.sent(order(n), n, n * MS)
    for n in range(1, 5):
        streak.refused(f"b1-eth-{n}", "INJECTED: no", 8 * MS)
    assert streak.give_up_reason() is None  # four in a row after a fill: go on
    streak.refused("b1-eth-5", "INJECTED: last", 9 * MS)
    assert streak.give_up_reason() == "5 orders in a row rejected: INJECTED: last"
