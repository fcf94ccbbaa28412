"""The ccxt adapter's pure mappings: ccxt's order, trade, market, position and balance dicts
(shaped as ccxt 4.5 parses Binance's answers), its exceptions, each exchange's client-id
rule, and unknown exchange ids."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE

from venues.ccxt import known_exchange, parse
from venues.ccxt.rules import (
    DEFAULT_RULES,
    RULES,
    check_exchange,
    exchange_rules,
    rebase_urls,
)
from venues.client_ids import ClientIds, venue_client_id
from venues.errors import (
    AuthError,
    InvalidRequest,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AckKind,
    InstrumentKind,
    Liquidity,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

D = Decimal
T0 = 1_796_594_930_864  # ms

# --- dicts as ccxt returns them ----------------------------------------------------------------

# binanceusdm create_order, newOrderRespType RESULT: an IOC that swept two levels.
USDM_CREATED: dict[str, Any] = {
    "info": {
        "orderId": 1, "symbol": "BTCUSDT", "status": "FILLED", "clientOrderId": "b1-0-1",
        "price": "60000.5", "avgPrice": "60000.23333333", "origQty": "0.003",
        "executedQty": "0.003", "cumQty": "0.003", "cumQuote": "180.0007",
        "timeInForce": "IOC", "type": "LIMIT", "reduceOnly": False, "side": "BUY",
        "origType": "LIMIT", "updateTime": T0,
    },
    "id": "1", "clientOrderId": "b1-0-1", "timestamp": T0, "lastTradeTimestamp": T0,
    "lastUpdateTimestamp": T0, "symbol": "BTC/USDT:USDT", "type": "limit",
    "timeInForce": "IOC", "postOnly": False, "reduceOnly": False, "side": "buy",
    "price": 60000.5, "amount": 0.003, "cost": 180.0007, "average": 60000.23333333,
    "filled": 0.003, "remaining": 0.0, "status": "closed", "fee": None, "trades": [],
    "fees": [],
}  # fmt: skip

# binanceusdm fetch_order of a resting order: `time` is when it reached the book.
USDM_RESTING: dict[str, Any] = {
    "info": {
        "orderId": 7, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "r-1",
        "price": "59990.0", "avgPrice": "0", "origQty": "0.002", "executedQty": "0",
        "timeInForce": "GTX", "type": "LIMIT", "side": "SELL", "time": T0 - 5,
        "updateTime": T0 - 5,
    },
    "id": "7", "clientOrderId": "r-1", "timestamp": T0 - 5, "symbol": "BTC/USDT:USDT",
    "type": "limit", "timeInForce": "PO", "postOnly": True, "reduceOnly": True,
    "side": "sell", "price": 59990.0, "amount": 0.002, "cost": 0.0, "average": None,
    "filled": 0.0, "remaining": 0.002, "status": "open", "fee": None, "trades": [],
}  # fmt: skip


def usdm_stream_order(x: str, status: str, filled: float, t_ms: int) -> dict[str, Any]:
    """ccxt.pro's order from an ORDER_TRADE_UPDATE (`info` is the event's `o`)."""
    info = {
        "s": "BTCUSDT", "c": "b1-0-1", "S": "BUY", "o": "LIMIT", "f": "IOC", "q": "0.003",
        "p": "60000.5", "ap": "60000.23333333", "x": x, "X": status, "i": 1, "l": "0.001",
        "z": str(filled), "L": "60000.5", "T": t_ms, "t": 2, "m": False, "R": False,
        "ps": "BOTH", "N": "USDT", "n": "0.03000025",
    }  # fmt: skip
    return {
        "info": info, "symbol": "BTC/USDT:USDT", "id": "1", "clientOrderId": "b1-0-1",
        "timestamp": t_ms, "type": "limit", "timeInForce": "IOC", "postOnly": False,
        "reduceOnly": False, "side": "buy", "price": 60000.5, "amount": 0.003,
        "average": 60000.23333333 if filled else None, "filled": filled,
        "status": "closed" if status == "FILLED" else "open",
    }  # fmt: skip


# binance (spot) executionReport through ccxt.pro: O created, W working (on the book).
SPOT_STREAM_ORDER: dict[str, Any] = {
    "info": {
        "e": "executionReport", "E": T0 + 1, "s": "STETHUSDT", "c": "d-1", "S": "BUY",
        "o": "LIMIT", "f": "GTC", "q": "0.50000000", "p": "3000.00000000", "x": "TRADE",
        "X": "PARTIALLY_FILLED", "i": 1, "l": "0.20000000", "z": "0.20000000",
        "L": "3000.00000000", "n": "0.00020000", "N": "STETH", "T": T0 + 9, "t": 1,
        "m": True, "O": T0, "W": T0 + 2, "Z": "600.00000000",
    },
    "symbol": "STETH/USDT", "id": "1", "clientOrderId": "d-1", "timestamp": T0,
    "type": "limit", "timeInForce": "GTC", "postOnly": False, "reduceOnly": None,
    "side": "buy", "price": 3000.0, "amount": 0.5, "cost": 600.0, "average": 3000.0,
    "filled": 0.2, "remaining": 0.3, "status": "open",
}  # fmt: skip

# binance (spot) fetch_my_trades row: a maker fill charged in the asset received.
SPOT_TRADE: dict[str, Any] = {
    "info": {"symbol": "STETHUSDT", "id": 1, "orderId": 1, "price": "3000.00000000",
             "qty": "0.20000000", "commission": "0.00020000", "commissionAsset": "STETH",
             "time": T0 + 9, "isBuyer": True, "isMaker": True},
    "timestamp": T0 + 9, "symbol": "STETH/USDT", "id": "1", "order": "1", "type": None,
    "side": "buy", "takerOrMaker": "maker", "price": 3000.0, "amount": 0.2, "cost": 600.0,
    "fee": {"currency": "STETH", "cost": 0.0002},
    "fees": [{"currency": "STETH", "cost": 0.0002}],
}  # fmt: skip

USDM_MARKET: dict[str, Any] = {
    "id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT",
    "settle": "USDT", "type": "swap", "spot": False, "swap": True, "linear": True,
    "inverse": False, "active": True, "contractSize": 1.0,
    "precision": {"amount": 0.001, "price": 0.1, "base": 1e-08, "quote": 1e-08},
    "limits": {"amount": {"min": 0.001, "max": 1000000.0}, "cost": {"min": 100.0, "max": None},
               "price": {"min": 0.1, "max": 1000000000.0}},
}  # fmt: skip


def _ask(**changes: Any) -> NewOrder:
    base: dict[str, Any] = {
        "client_order_id": "b1-0-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "quantity": D("0.003"),
        "price": D("60000.5"),
        "time_in_force": TimeInForce.IOC,
    }
    return NewOrder(**(base | changes))


# --- numbers and orders ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.003, D("0.003")),
        (60000.23333333, D("60000.23333333")),
        (1e-08, D("1E-8")),
        (7, D(7)),
        ("0.50000000", D("0.5")),
        (None, None),
        ("garbage", None),
        (float("nan"), None),
        (True, None),
    ],
)
def test_ccxt_floats_become_the_venues_decimals(value: object, expected: Decimal | None) -> None:
    assert parse.dec(value) == expected


def test_an_ioc_result_answer_is_a_filled_report_with_legatos_ids() -> None:
    r = parse.order_report(
        USDM_CREATED,
        venue="v",
        symbol="BTCUSDT",
        client_order_id="b1-0-1",
        binance_wire=True,
        asked=_ask(),
        ack_kind=AckKind.RESULT,
    )
    assert (r.order_id, r.client_order_id, r.symbol) == ("1", "b1-0-1", "BTCUSDT")
    assert (r.status, r.time_in_force, r.order_type, r.side) == (
        OrderStatus.FILLED,
        TimeInForce.IOC,
        OrderType.LIMIT,
        Side.BUY,
    )
    assert (r.quantity, r.cum_filled, r.price) == (D("0.003"), D("0.003"), D("60000.5"))
    assert r.avg_price == D("60000.23333333") and r.ack_kind is AckKind.RESULT
    # Binance's RESULT answer has no `time`: when it reached the book is not said.
    assert r.venue_accept_ns is None and r.venue_ts_ns == T0 * 1_000_000


def test_a_resting_post_only_order_keeps_its_accept_time_and_reduce_only() -> None:
    r = parse.order_report(
        USDM_RESTING, venue="v", symbol="BTCUSDT", client_order_id="r-1", binance_wire=True
    )
    assert (r.status, r.time_in_force, r.side) == (
        OrderStatus.NEW,
        TimeInForce.POST_ONLY,
        Side.SELL,
    )
    assert r.venue_accept_ns == (T0 - 5) * 1_000_000 and r.reduce_only
    assert r.avg_price is None and r.cum_filled == 0 and r.open_qty == D("0.002")


def test_usdm_stream_times_the_accept_by_its_new_event_only() -> None:
    new = parse.order_report(
        usdm_stream_order("NEW", "NEW", 0.0, T0),
        venue="v",
        symbol="BTCUSDT",
        client_order_id="b1-0-1",
        binance_wire=True,
    )
    trade = parse.order_report(
        usdm_stream_order("TRADE", "PARTIALLY_FILLED", 0.002, T0 + 3),
        venue="v",
        symbol="BTCUSDT",
        client_order_id="b1-0-1",
        binance_wire=True,
    )
    assert new.status is OrderStatus.NEW and new.venue_accept_ns == T0 * 1_000_000
    assert trade.status is OrderStatus.PARTIALLY_FILLED and trade.venue_accept_ns is None
    assert trade.venue_ts_ns == (T0 + 3) * 1_000_000 and trade.cum_filled == D("0.002")


def test_spot_stream_says_when_the_order_reached_the_book_on_every_event() -> None:
    r = parse.order_report(
        SPOT_STREAM_ORDER,
        venue="v",
        symbol="STETHUSDT",
        client_order_id="d-1",
        binance_wire=True,
    )
    assert r.venue_accept_ns == (T0 + 2) * 1_000_000  # W, the working time
    assert r.venue_ts_ns == (T0 + 9) * 1_000_000  # T, this trade's
    assert r.status is OrderStatus.PARTIALLY_FILLED and r.reduce_only is False


def test_elsewhere_the_accept_time_is_cxxts_creation_timestamp() -> None:
    okx_like = {
        "id": "555",
        "clientOrderId": "abc",
        "symbol": "BTC/USDT:USDT",
        "timestamp": T0,
        "lastUpdateTimestamp": T0 + 7,
        "type": "limit",
        "side": "sell",
        "price": 60000.0,
        "amount": 1.0,
        "filled": 1.0,
        "average": 60000.0,
        "status": "closed",
        "info": {"ordId": "555", "cTime": str(T0)},
    }
    r = parse.order_report(okx_like, venue="v", symbol="BTC-USDT-SWAP", client_order_id="a-1-1")
    assert (r.venue_accept_ns, r.venue_ts_ns) == (T0 * 1_000_000, (T0 + 7) * 1_000_000)
    assert r.status is OrderStatus.FILLED and r.time_in_force is TimeInForce.GTC


def test_a_terse_answer_is_completed_from_what_was_asked() -> None:
    # Some venues answer a new order with its ids alone (OKX: ordId, clOrdId, sCode).
    terse = {"id": "9", "clientOrderId": "abc", "info": {"ordId": "9", "sCode": "0"}}
    r = parse.order_report(
        terse,
        venue="v",
        symbol="BTCUSDT",
        client_order_id="b1-0-1",
        asked=_ask(reduce_only=True),
        ack_kind=AckKind.ACCEPTED,
    )
    assert (r.status, r.quantity, r.price, r.side) == (
        OrderStatus.NEW,
        D("0.003"),
        D("60000.5"),
        Side.BUY,
    )
    assert (r.time_in_force, r.order_type, r.reduce_only) == (
        TimeInForce.IOC,
        OrderType.LIMIT,
        True,
    )


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("open", 0.0, OrderStatus.NEW),
        ("open", 0.001, OrderStatus.PARTIALLY_FILLED),
        ("closed", 0.003, OrderStatus.FILLED),
        ("canceled", 0.001, OrderStatus.CANCELED),
        ("expired", 0.0, OrderStatus.EXPIRED),
        ("rejected", 0.0, OrderStatus.REJECTED),
        ("PENDING_NEW", 0.0, OrderStatus.PENDING_NEW),  # ccxt passes unknown ones on as is
        (None, 0.0, OrderStatus.NEW),
    ],
)
def test_order_statuses(status: str | None, filled: float, expected: OrderStatus) -> None:
    assert parse.order_status({"status": status, "filled": filled}) is expected


def test_an_unknown_status_or_time_in_force_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="TRIGGERED_SOMEHOW"):
        parse.order_status({"status": "TRIGGERED_SOMEHOW"})
    with pytest.raises(ValueError, match="GTE_GTC"):
        parse.time_in_force({"timeInForce": "GTE_GTC"})


def test_an_order_id_of_zero_is_no_id_yet() -> None:
    assert parse.order_id_of({"id": "0"}) == "" and parse.order_id_of({"id": None}) == ""
    assert parse.order_id_of({"id": 12}) == "12"


def test_deribit_keeps_the_client_id_in_its_label() -> None:
    order = {"clientOrderId": None, "info": {"label": "bk-1-2"}}
    assert parse.client_id_of(order, "label") == "bk-1-2"
    assert parse.client_id_of(order) == ""


# --- trades ------------------------------------------------------------------------------------


def test_a_trade_is_a_fill_with_its_fee_asset_and_liquidity() -> None:
    f = parse.fill(SPOT_TRADE)
    assert (f.trade_id, f.price, f.quantity) == ("1", D("3000.0"), D("0.2"))
    assert (f.fee, f.fee_asset, f.liquidity) == (D("0.0002"), "STETH", Liquidity.MAKER)
    assert f.ts_ns == (T0 + 9) * 1_000_000


def test_a_trade_without_its_fee_field_reads_the_fees_list() -> None:
    taker = SPOT_TRADE | {"fee": None, "takerOrMaker": "taker"}
    f = parse.fill(taker)
    assert (f.fee, f.fee_asset, f.liquidity) == (D("0.0002"), "STETH", Liquidity.TAKER)


def test_fills_carried_by_a_full_answer_need_their_ids() -> None:
    answer = {
        "trades": [
            {"id": "11", "price": 3000.0, "amount": 0.5,
             "fee": {"cost": 0.0005, "currency": "STETH"}},
            {"id": None, "price": 3000.0, "amount": 0.1},
        ]
    }  # fmt: skip
    assert [f.trade_id for f in parse.order_fills(answer)] == ["11"]


# --- reference data and accounts ------------------------------------------------------------------


def test_a_linear_swap_is_a_perp_named_by_the_exchanges_id() -> None:
    inst = parse.instrument(USDM_MARKET, TICK_SIZE)
    assert inst is not None
    assert (inst.symbol, inst.base, inst.quote, inst.kind) == (
        "BTCUSDT",
        "BTC",
        "USDT",
        InstrumentKind.PERP,
    )
    assert (inst.tick, inst.lot, inst.min_notional, inst.max_qty) == (
        D("0.1"),
        D("0.001"),
        D(100),
        D(1_000_000),
    )
    assert inst.on_tick(D("60000.1")) and not inst.on_tick(D("60000.15"))


def test_contract_size_and_decimal_places_precision() -> None:
    okx_swap = USDM_MARKET | {
        "id": "BTC-USDT-SWAP",
        "contractSize": 0.01,
        "precision": {"amount": 0, "price": 1},
    }
    inst = parse.instrument(okx_swap, DECIMAL_PLACES)
    assert inst is not None
    assert (inst.tick, inst.lot, inst.contract_size) == (D("0.1"), D(1), D("0.01"))
    assert inst.notional(D(60000), D(2)) == D(1200)


def test_markets_legato_does_not_trade_are_left_out() -> None:
    inverse = USDM_MARKET | {"linear": False, "inverse": True}
    option = USDM_MARKET | {"swap": False, "option": True}
    inactive = USDM_MARKET | {"active": False}
    for market in (inverse, option, inactive):
        assert parse.instrument(market, TICK_SIZE) is None
    assert parse.instrument(USDM_MARKET, SIGNIFICANT_DIGITS) is None  # no fixed grid


def test_a_short_position_with_its_leverage_implied_by_the_margin() -> None:
    p = parse.position(
        {"symbol": "BTC/USDT:USDT", "contracts": 0.003, "side": "short", "contractSize": 1.0,
         "notional": -180.00075, "markPrice": 60000.25, "entryPrice": 60000.0,
         "unrealizedPnl": -0.00075, "initialMargin": 18.000075, "leverage": None},
        "BTCUSDT",
    )  # fmt: skip
    assert p is not None
    assert (p.quantity, p.leverage, p.initial_margin) == (D("-0.003"), 10, D("18.000075"))
    assert parse.position({"contracts": 0.0}, "BTCUSDT") is None


def test_a_spot_account_speaks_of_its_quote_asset() -> None:
    balance = {
        "info": {"balances": []},
        "free": {"STETH": 10.4995, "USDT": 98000.0, "BTC": 0.0},
        "used": {"STETH": 0.0, "USDT": 500.0, "BTC": 0.0},
        "total": {"STETH": 10.4995, "USDT": 98500.0, "BTC": 0.0},
    }
    a = parse.account(
        balance,
        [],
        venue="v",
        account_id="a",
        margin_asset="USDT",
        derivatives=False,
        binance_wire=True,
        ts_ns=5,
    )
    assert [(b.asset, b.wallet, b.available) for b in a.spot_balances] == [
        ("STETH", D("10.4995"), D("10.4995")),
        ("USDT", D("98500.0"), D("98000.0")),
    ]
    # A spot wallet is no margin wallet: nothing of its cash reads as margin.
    assert a.balances == [] and a.positions == []
    assert a.wallet_balance == a.available_margin == a.open_order_initial_margin == 0


def test_a_binance_derivatives_account_reads_its_totals() -> None:
    info = {
        "totalWalletBalance": "99999.9", "totalUnrealizedProfit": "0.5",
        "totalPositionInitialMargin": "18", "totalOpenOrderInitialMargin": "2",
        "availableBalance": "99980.4",
        "assets": [{"asset": "USDT", "walletBalance": "99999.9", "availableBalance": "99980.4"}],
    }  # fmt: skip
    a = parse.account(
        {"info": info, "total": {"USDT": 1.0}},
        [],
        venue="v",
        account_id="a",
        margin_asset="USDT",
        derivatives=True,
        binance_wire=True,
        ts_ns=5,
    )
    assert (a.wallet_balance, a.unrealized_pnl, a.available_margin) == (
        D("99999.9"),
        D("0.5"),
        D("99980.4"),
    )
    assert (a.position_initial_margin, a.open_order_initial_margin) == (D(18), D(2))


# --- market data ---------------------------------------------------------------------------------


def test_public_trades_keep_numeric_ids_and_digest_the_others() -> None:
    t = {"id": "123456", "symbol": "BTC/USDT:USDT", "side": "sell", "price": 1.5, "amount": 2.0,
         "timestamp": T0}  # fmt: skip
    m = parse.market_trade(t, venue="v", symbol="BTCUSDT")
    assert m is not None and (m.trade_id, m.aggressor) == (123456, Side.SELL)
    uuid = "9f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    a = parse.market_trade(t | {"id": uuid}, venue="v", symbol="BTCUSDT")
    b = parse.market_trade(t | {"id": uuid}, venue="v", symbol="BTCUSDT")
    assert a is not None and b is not None and a.trade_id == b.trade_id > 0
    assert parse.market_trade(t | {"side": None}, venue="v", symbol="BTCUSDT") is None


def test_a_ticker_without_both_sides_is_no_book_ticker() -> None:
    t = {"bid": 1.0, "bidVolume": 2.0, "ask": 1.1, "askVolume": 3.0, "timestamp": T0}
    bt = parse.book_ticker(t, venue="v", symbol="X", now_ns=1)
    assert bt is not None and (bt.bid, bt.ask_qty, bt.ts_ns) == (D(1), D(3), T0 * 1_000_000)
    assert parse.book_ticker(t | {"ask": None}, venue="v", symbol="X", now_ns=1) is None


# --- errors --------------------------------------------------------------------------------------


def binance_error(cls: type[ccxt.BaseError], code: int, msg: str) -> ccxt.BaseError:
    """What ccxt raises for a Binance error answer off Binance's host names."""
    return cls("binanceusdm " + json.dumps({"code": code, "msg": msg}))


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (binance_error(ccxt.ExchangeError, -2019, "Margin is insufficient."),
         RejectReason.INSUFFICIENT_MARGIN),
        (binance_error(ccxt.InvalidOrder, -5022, "Due to the order could not be executed as "
                       "maker, the Post Only order will be rejected."),
         RejectReason.POST_ONLY_WOULD_CROSS),
        (binance_error(ccxt.BadSymbol, -1121, "Invalid symbol."), RejectReason.UNKNOWN_SYMBOL),
        (binance_error(ccxt.ExchangeError, -4116, "ClientOrderId is duplicated."),
         RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        (binance_error(ccxt.BadRequest, -4164, "Order's notional must be no smaller than 100"),
         RejectReason.BELOW_MIN_NOTIONAL),
        # Spot's bare -2010 says why in words; ccxt's exact-message class says so too.
        (binance_error(ccxt.InvalidOrder, -2010, "Order would immediately match and take. (x)"),
         RejectReason.POST_ONLY_WOULD_CROSS),
        (binance_error(ccxt.OrderImmediatelyFillable, -2010,
                       "Order would immediately match and take."),
         RejectReason.POST_ONLY_WOULD_CROSS),
        (binance_error(ccxt.InvalidOrder, -2010, "Account has insufficient balance for "
                       "requested action."), RejectReason.INSUFFICIENT_MARGIN),
        (binance_error(ccxt.InvalidOrder, -2010, "NEW_ORDER_REJECTED"),
         RejectReason.VENUE_REFUSED),
    ],
)  # fmt: skip
def test_binance_refusals_map_by_code_as_the_native_adapter_maps_them(
    exc: ccxt.BaseError, reason: RejectReason
) -> None:
    err = parse.error_from_ccxt(
        exc, venue="v", binance_wire=True, mutating=True, client_order_id="c-1"
    )
    assert isinstance(err, OrderRejected) and err.reason is reason
    assert err.client_order_id == "c-1" and err.venue == "v"
    assert "{" not in err.message  # the venue's words, not ccxt's wrapping


def test_binance_lost_answers_and_other_codes() -> None:
    lost = binance_error(ccxt.RequestTimeout, -1007, "Timeout waiting for response from backend")
    assert isinstance(
        parse.error_from_ccxt(lost, venue="v", binance_wire=True, mutating=True), OutcomeUnknown
    )
    read = parse.error_from_ccxt(lost, venue="v", binance_wire=True, mutating=False)
    assert type(read) is VenueUnavailable  # a read: just ask again
    outage = binance_error(ccxt.ExchangeError, -1001, "Internal error; unable to process")
    refused = parse.error_from_ccxt(outage, venue="v", binance_wire=True, mutating=True)
    assert type(refused) is VenueUnavailable  # refused before processing: nothing happened
    bad_key = binance_error(ccxt.AuthenticationError, -2015, "Invalid API-key, IP, or permissions")
    assert isinstance(parse.error_from_ccxt(bad_key, venue="v", binance_wire=True), AuthError)
    unknown = binance_error(ccxt.OrderNotFound, -2013, "Order does not exist.")
    assert isinstance(parse.error_from_ccxt(unknown, venue="v", binance_wire=True), UnknownOrder)
    limited = ccxt.DDoSProtection(
        'binanceusdm 429 Too Many Requests {"code":-1015,"msg":"Too many new orders"}'
    )
    err = parse.error_from_ccxt(
        limited, venue="v", binance_wire=True, http_status=429, retry_after_s=7.0
    )
    assert isinstance(err, RateLimited) and err.retry_after_s == 7.0 and err.code == -1015
    stale = binance_error(ccxt.InvalidNonce, -1021, "Timestamp outside of the recvWindow.")
    err = parse.error_from_ccxt(stale, venue="v", binance_wire=True)
    assert isinstance(err, AuthError) and parse.stale_clock(err, stale)


@pytest.mark.parametrize(
    ("exc", "expected", "reason"),
    [
        (ccxt.InsufficientFunds("okx {}"), OrderRejected, RejectReason.INSUFFICIENT_MARGIN),
        (ccxt.OrderImmediatelyFillable("x"), OrderRejected, RejectReason.POST_ONLY_WOULD_CROSS),
        (ccxt.OrderNotFillable("x"), OrderRejected, RejectReason.FOK_NOT_FILLABLE),
        (ccxt.DuplicateOrderId("x"), OrderRejected, RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        (ccxt.BadSymbol("x"), OrderRejected, RejectReason.UNKNOWN_SYMBOL),
        (ccxt.InvalidOrder("reduce-only order would increase"), OrderRejected,
         RejectReason.REDUCE_ONLY_WOULD_INCREASE),
        (ccxt.InvalidOrder("something else"), OrderRejected, RejectReason.VENUE_REFUSED),
        (ccxt.OrderNotFound("x"), UnknownOrder, None),
        (ccxt.AuthenticationError("x"), AuthError, None),
        (ccxt.PermissionDenied("x"), AuthError, None),
        (ccxt.RateLimitExceeded("x"), RateLimited, None),
        (ccxt.OnMaintenance("x"), VenueUnavailable, None),
        (ccxt.BadRequest("x"), InvalidRequest, None),
        (ccxt.ExchangeError("x"), VenueError, None),
    ],
)  # fmt: skip
def test_other_exchanges_map_by_ccxts_class(
    exc: ccxt.BaseError, expected: type[VenueError], reason: RejectReason | None
) -> None:
    err = parse.error_from_ccxt(exc, venue="v", mutating=True)
    assert type(err) is expected
    if reason is not None:
        assert isinstance(err, OrderRejected) and err.reason is reason


def test_an_answer_lost_after_sending_is_unknown_one_never_sent_is_not() -> None:
    for lost in (ccxt.RequestTimeout("okx POST"), ccxt.ExchangeNotAvailable("okx POST")):
        assert isinstance(parse.error_from_ccxt(lost, venue="v", mutating=True), OutcomeUnknown)
        assert type(parse.error_from_ccxt(lost, venue="v")) is VenueUnavailable
    refused = ccxt.ExchangeNotAvailable("okx POST")
    refused.__cause__ = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError(111, "refused"),
    )
    assert type(parse.error_from_ccxt(refused, venue="v", mutating=True)) is VenueUnavailable
    # A 4xx answer is a refusal whatever ccxt's class; a 5xx may have been carried out.
    err = parse.error_from_ccxt(
        ccxt.ExchangeNotAvailable("x"), venue="v", mutating=True, http_status=403
    )
    assert type(err) is VenueUnavailable
    err = parse.error_from_ccxt(
        ccxt.ExchangeNotAvailable("x"), venue="v", mutating=True, http_status=502
    )
    assert isinstance(err, OutcomeUnknown)


def test_secrets_and_signatures_never_reach_a_message() -> None:
    exc = ccxt.RequestTimeout(
        "okx GET https://x/api?apiKey=KEY-123456&signature=abcdef0123 secret-xyz-9876 timed out"
    )
    err = parse.error_from_ccxt(exc, venue="v", secrets=("KEY-123456", "secret-xyz-9876"))
    text = str(err)
    assert "KEY-123456" not in text and "secret-xyz-9876" not in text and "abcdef0123" not in text
    assert "timed out" in text


# --- client ids, exchange ids, urls --------------------------------------------------------------

LEGATO_ID = "bskt.7-leg:2/x-000123"  # legato's alphabet: letters, digits and . _ : / -


def test_binance_and_deribit_take_legatos_ids_as_they_are() -> None:
    for exchange in ("binance", "binanceusdm", "deribit"):
        assert venue_client_id(LEGATO_ID, exchange_rules(exchange).client_ids) == LEGATO_ID


@pytest.mark.parametrize(
    ("exchange", "pattern"),
    [
        ("okx", r"[A-Za-z0-9]{32}"),
        ("bybit", r"[A-Za-z0-9_-]{36}"),
        ("hyperliquid", r"0x[0-9a-f]{32}"),
        ("kraken", r"[A-Za-z0-9]{32}"),  # no row: the conservative default
    ],
)
def test_other_exchanges_get_a_deterministic_digest_mapped_back(
    exchange: str, pattern: str
) -> None:
    rule = exchange_rules(exchange).client_ids
    ids = ClientIds(rule)
    venue_id = ids.to_venue(LEGATO_ID)
    assert venue_id != LEGATO_ID and rule.accepts(venue_id)
    assert re.fullmatch(pattern, venue_id)
    assert venue_client_id(LEGATO_ID, rule) == venue_id  # a restarted leg reaches it again
    assert ids.from_venue(venue_id) == LEGATO_ID
    assert ids.from_venue("someone-elses") == "someone-elses"


def test_bybit_takes_an_id_of_its_alphabet_unchanged() -> None:
    assert venue_client_id("b1-leg_2-7", exchange_rules("bybit").client_ids) == "b1-leg_2-7"


def test_the_rules_table_and_query_parameters() -> None:
    assert exchange_rules("kraken") is DEFAULT_RULES
    assert RULES["binanceusdm"].query_param == "origClientOrderId"
    assert RULES["okx"].query_param == "clOrdId"
    assert RULES["bybit"].query_param == "orderLinkId"
    assert RULES["deribit"].query_param is None and RULES["deribit"].create_param == "label"


def test_unknown_exchange_ids_are_named_with_close_matches() -> None:
    assert known_exchange("binanceusdm") and not known_exchange("binanceusd")
    with pytest.raises(ValueError, match=r"'binanceusd'.*did you mean .*binanceusdm"):
        check_exchange("binanceusd")
    with pytest.raises(ValueError, match="'nosuchexchange'"):
        check_exchange("nosuchexchange")
    rest_only = next(e for e in ccxt.exchanges if e not in ccxt.pro.exchanges)
    with pytest.raises(ValueError, match=r"no ccxt\.pro"):
        check_exchange(rest_only)


def test_urls_move_onto_new_roots_keeping_their_paths() -> None:
    api = {
        "fapiPublic": "https://fapi.binance.com/fapi/v1",
        "public": "https://api.binance.com/api/v3",
        "ws": {"linear": "wss://fstream.binance.com/ws", "ws-api": {"spot": "wss://ws-api.binance.com:443/ws-api/v3"}},
        "rest": "https://{hostname}",
    }  # fmt: skip
    moved = rebase_urls(api, {"rest": "http://127.0.0.1:9", "ws": "ws://127.0.0.1:9/"})
    assert moved["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
    assert moved["public"] == "http://127.0.0.1:9/api/v3"
    assert moved["ws"]["linear"] == "ws://127.0.0.1:9/ws"
    assert moved["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:9/ws-api/v3"
    assert moved["rest"] == "http://127.0.0.1:9"
    assert rebase_urls(api, {"ws": "ws://h"})["public"] == api["public"]
    with pytest.raises(ValueError, match="unknown key 'api'"):
        rebase_urls(api, {"api": "http://h"})
