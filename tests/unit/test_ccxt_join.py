"""`ReportJoin`: ccxt.pro's order and trade streams as one report stream, each fill shown
once with its fee, whichever stream is read first."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from venues.ccxt.join import ReportJoin
from venues.model import (
    ExecutionReport,
    Fill,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

D = Decimal


def state(filled: str, status: OrderStatus = OrderStatus.PARTIALLY_FILLED) -> ExecutionReport:
    return ExecutionReport(
        venue="v",
        symbol="BTCUSDT",
        client_order_id="b-1-1",
        order_id="1",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        status=status,
        quantity=D("0.003"),
        price=D("60000.5"),
        cum_filled=D(filled),
        avg_price=D("60000.2") if D(filled) else None,
        cum_fee=D(0),
    )


def trade(trade_id: str, qty: str, fee: str) -> Fill:
    return Fill(
        trade_id=trade_id,
        price=D("60000.1"),
        quantity=D(qty),
        fee=D(fee),
        fee_asset="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=1,
    )


def shown(reports: list[ExecutionReport]) -> list[str | None]:
    return [r.last_fill.trade_id if r.last_fill else None for r in reports]


def test_an_order_state_read_first_is_shown_again_with_each_trade() -> None:
    join = ReportJoin()
    first = join.on_order(state("0.003", OrderStatus.FILLED))
    assert shown(first) == [None] and first[0].cum_fee == 0  # no trade known yet
    one = join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))
    two = join.on_trade("BTCUSDT", "1", trade("2", "0.001", "0.03"))
    assert shown(one + two) == ["1", "2"]
    assert [r.cum_fee for r in one + two] == [D("0.06"), D("0.09")]
    assert all(r.status is OrderStatus.FILLED and r.fee_asset == "USDT" for r in one + two)


def test_trades_read_first_wait_for_a_state_that_includes_them() -> None:
    join = ReportJoin()
    assert join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06")) == []
    assert join.on_trade("BTCUSDT", "1", trade("2", "0.001", "0.03")) == []
    # ccxt folded the order's two updates into its newest: both trades come out with it.
    out = join.on_order(state("0.003", OrderStatus.FILLED))
    assert shown(out) == ["1", "2"]
    assert {r.cum_filled for r in out} == {D("0.003")} and out[-1].cum_fee == D("0.09")


def test_a_state_behind_the_trades_holds_them_back() -> None:
    join = ReportJoin()
    join.on_order(state("0"))
    assert join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06")) == []
    assert shown(join.on_order(state("0"))) == [None]  # an older state: still held
    assert shown(join.on_order(state("0.002"))) == ["1"]


def test_a_trade_is_shown_once_and_counted_once() -> None:
    join = ReportJoin()
    join.on_order(state("0.002"))
    assert shown(join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))) == ["1"]
    assert join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06")) == []
    # The venue's trade list (REST) has it too: counted once, not shown again.
    join.add_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))
    assert join.with_fees(state("0.002")).cum_fee == D("0.06")


def test_a_rest_answer_listing_a_trade_does_not_hide_it_from_the_stream() -> None:
    join = ReportJoin()
    join.add_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))  # a FULL answer's fills
    join.on_order(state("0.002"))
    assert shown(join.on_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))) == ["1"]


def test_fees_of_one_order_do_not_leak_into_another() -> None:
    join = ReportJoin()
    join.add_trade("BTCUSDT", "1", trade("1", "0.002", "0.06"))
    other = msgspec.structs.replace(state("0.001"), order_id="2")
    assert join.with_fees(other).cum_fee == 0
    assert join.complete(state("0.002")) and not join.complete(state("0.003"))


def test_an_order_the_venue_has_not_numbered_passes_through() -> None:
    join = ReportJoin()
    pending = msgspec.structs.replace(state("0"), order_id="")
    assert join.on_order(pending) == [pending]
