"""Binance USD-M wire → venue vocabulary: payloads, exact decimals, errors and signing."""

from __future__ import annotations

import pickle
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from venues.binance import parse, wire
from venues.binance.client import BinanceUsdmClient
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
    BookTicker,
    InstrumentKind,
    Liquidity,
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

D = Decimal
V = "binance-sim"

# --- samples shaped like the API reference's examples (USDⓈ-M futures) ------------------

ACK = b"""{"clientOrderId":"b1-btc-1","cumQty":"0","cumQuote":"0","executedQty":"0",
"orderId":22542179,"avgPrice":"0.00000","origQty":"0.010","price":"61234.50",
"reduceOnly":false,"side":"BUY","positionSide":"BOTH","status":"NEW","stopPrice":"0",
"closePosition":false,"symbol":"BTCUSDT","timeInForce":"GTX","type":"LIMIT",
"origType":"LIMIT","updateTime":1566818724722,"workingType":"CONTRACT_PRICE",
"priceProtect":false,"priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0}"""

RESULT_MARKET = b"""{"clientOrderId":"b1-eth-7","cumQty":"0.300","cumQuote":"780.903",
"executedQty":"0.300","orderId":8389765,"avgPrice":"2603.01","origQty":"0.300","price":"0",
"reduceOnly":false,"side":"SELL","positionSide":"BOTH","status":"FILLED","stopPrice":"0",
"closePosition":false,"symbol":"ETHUSDT","timeInForce":"GTC","type":"MARKET",
"origType":"MARKET","updateTime":1700000000123,"priceMatch":"NONE"}"""

QUERY = b"""{"avgPrice":"61230.10000","clientOrderId":"b1-btc-2","cumQuote":"367.3806",
"executedQty":"0.006","orderId":1917641,"origQty":"0.010","origType":"LIMIT",
"price":"61240.00","reduceOnly":true,"side":"SELL","positionSide":"BOTH",
"status":"PARTIALLY_FILLED","stopPrice":"0","closePosition":false,"symbol":"BTCUSDT",
"time":1579276756075,"timeInForce":"IOC","type":"LIMIT","updateTime":1579276756999,
"workingType":"CONTRACT_PRICE","priceProtect":false}"""


def otu(
    x: str,
    status: str,
    *,
    lq: str = "0",
    z: str = "0",
    lp: str = "0",
    t: int = 0,
    n: str | None = None,
    m: bool = False,
    f: str = "GTC",
    er: str = "0",
) -> bytes:
    commission = f',"N":"USDT","n":"{n}"' if n is not None else ""
    return (
        '{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{'
        '"s":"BTCUSDT","c":"b1-btc-3","S":"BUY","o":"LIMIT","f":"' + f + '","q":"0.010",'
        '"p":"61000.0","ap":"' + ("61000.00000" if z != "0" else "0") + '","sp":"0",'
        '"x":"' + x + '","X":"' + status + '","i":8886774,"l":"' + lq + '","z":"' + z + '",'
        '"L":"' + lp + '"' + commission + ',"T":1568879465650,"t":' + str(t) + ","
        '"b":"0","a":"0","m":' + ("true" if m else "false") + ',"R":false,"wt":"CONTRACT_PRICE",'
        '"ot":"LIMIT","ps":"BOTH","cp":false,"rp":"0","pP":false,"si":0,"ss":0,'
        '"V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"' + er + '"}}'
    ).encode()


EXCHANGE_INFO = b"""{"timezone":"UTC","serverTime":1565613908500,"rateLimits":[],
"exchangeFilters":[],"assets":[{"asset":"USDT","marginAvailable":true}],"symbols":[
{"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL","deliveryDate":4133404800000,
"onboardDate":1569398400000,"status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",
"marginAsset":"USDT","pricePrecision":2,"quantityPrecision":3,"filters":[
{"filterType":"PRICE_FILTER","minPrice":"556.80","maxPrice":"4529764","tickSize":"0.10"},
{"filterType":"LOT_SIZE","maxQty":"1000","minQty":"0.001","stepSize":"0.001"},
{"filterType":"MARKET_LOT_SIZE","maxQty":"120","minQty":"0.001","stepSize":"0.001"},
{"filterType":"MAX_NUM_ORDERS","limit":200},
{"filterType":"MIN_NOTIONAL","notional":"100"},
{"filterType":"PERCENT_PRICE","multiplierUp":"1.0500","multiplierDown":"0.9500",
"multiplierDecimal":"4"}],
"orderTypes":["LIMIT","MARKET","STOP"],"timeInForce":["GTC","IOC","FOK","GTX"]},
{"symbol":"OLDUSDT","pair":"OLDUSDT","contractType":"PERPETUAL","status":"SETTLING",
"baseAsset":"OLD","quoteAsset":"USDT","marginAsset":"USDT","filters":[
{"filterType":"PRICE_FILTER","tickSize":"0.0001"},
{"filterType":"LOT_SIZE","stepSize":"1","maxQty":"10"}]}]}"""

DEPTH = b"""{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,
"bids":[["61000.10","1.204"],["61000.00","0.5"],["60999.90","3"]],
"asks":[["61000.20","0.010"],["61000.30","2.000"]]}"""

ACCOUNT_V2 = b"""{"feeTier":0,"canTrade":true,"canDeposit":true,"canWithdraw":true,
"updateTime":0,"multiAssetsMargin":false,"tradeGroupId":-1,
"totalInitialMargin":"612.34500000","totalMaintMargin":"24.49380000",
"totalWalletBalance":"100000.00000000","totalUnrealizedProfit":"12.30000000",
"totalMarginBalance":"100012.30000000","totalPositionInitialMargin":"612.34500000",
"totalOpenOrderInitialMargin":"61.00000000","totalCrossWalletBalance":"100000.00000000",
"totalCrossUnPnl":"12.30000000","availableBalance":"99338.95500000",
"maxWithdrawAmount":"99338.95500000","assets":[{"asset":"USDT",
"walletBalance":"100000.00000000","unrealizedProfit":"12.30000000",
"marginBalance":"100012.30000000","maintMargin":"24.49380000",
"initialMargin":"673.34500000","positionInitialMargin":"612.34500000",
"openOrderInitialMargin":"61.00000000","crossWalletBalance":"100000.00000000",
"crossUnPnl":"12.30000000","availableBalance":"99338.95500000",
"maxWithdrawAmount":"99338.95500000","marginAvailable":true,"updateTime":1625474304765}],
"positions":[]}"""

POSITION_RISK_V2 = b"""[{"entryPrice":"61111.1","breakEvenPrice":"61141.6","marginType":"cross",
"isAutoAddMargin":"false","isolatedMargin":"0.00000000","leverage":"10",
"liquidationPrice":"0","markPrice":"61234.50000000","maxNotionalValue":"20000000",
"positionAmt":"0.100","notional":"6123.45000000","isolatedWallet":"0","symbol":"BTCUSDT",
"unRealizedProfit":"12.34000000","positionSide":"BOTH","updateTime":1655217461579},
{"entryPrice":"0.0","breakEvenPrice":"0.0","marginType":"cross","isAutoAddMargin":"false",
"isolatedMargin":"0","leverage":"20","liquidationPrice":"0","markPrice":"2600.00",
"maxNotionalValue":"1000000","positionAmt":"0.000","notional":"0","isolatedWallet":"0",
"symbol":"ETHUSDT","unRealizedProfit":"0.00000000","positionSide":"BOTH","updateTime":0}]"""

POSITION_RISK_V3 = b"""[{"symbol":"ETHUSDT","positionSide":"BOTH","positionAmt":"-2.500",
"entryPrice":"2610.00","breakEvenPrice":"2608.7","markPrice":"2600.00000000",
"unRealizedProfit":"25.00000000","liquidationPrice":"0","isolatedMargin":"0",
"notional":"-6500.00000000","marginAsset":"USDT","isolatedWallet":"0",
"initialMargin":"325.00000000","maintMargin":"32.5","positionInitialMargin":"325.00000000",
"openOrderInitialMargin":"0","adl":2,"bidNotional":"0","askNotional":"0",
"updateTime":1720736417660}]"""


def order(**changes: object) -> NewOrder:
    base: dict[str, object] = {
        "client_order_id": "b1-btc-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "quantity": D("0.0100"),
        "price": D("61234.50"),
    }
    return NewOrder(**(base | changes))  # type: ignore[arg-type]


# --- signing ---------------------------------------------------------------------------


def test_signature_matches_the_reference_example() -> None:
    # The HMAC-SHA256 example of the API reference's "SIGNED Endpoint Examples".
    secret = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    payload = wire.encode_params(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "price": "9000",
            "timeInForce": "GTC",
            "recvWindow": "5000",
            "timestamp": "1591702613943",
        }
    )
    assert payload == (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    assert (
        wire.sign(secret, payload)
        == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )


# --- requests --------------------------------------------------------------------------


def test_post_only_goes_out_as_gtx_with_exact_decimals() -> None:
    params = parse.order_params(order(time_in_force=TimeInForce.POST_ONLY), "ACK")
    assert params == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.01",  # "0.0100" would break Binance's precision rule (-1111)
        "newClientOrderId": "b1-btc-1",
        "price": "61234.5",
        "timeInForce": "GTX",
        "newOrderRespType": "ACK",
    }


def test_market_order_sends_no_price_and_reduce_only_as_text() -> None:
    params = parse.order_params(
        order(type=OrderType.MARKET, price=None, reduce_only=True, quantity=D("2E+1"))
    )
    assert "price" not in params and "timeInForce" not in params
    assert params["reduceOnly"] == "true"
    assert params["quantity"] == "20"


@pytest.mark.parametrize("tif", [TimeInForce.FOK, TimeInForce.POST_ONLY])
def test_market_fok_or_post_only_is_refused_before_sending(tif: TimeInForce) -> None:
    with pytest.raises(OrderRejected) as info:
        parse.order_params(order(type=OrderType.MARKET, price=None, time_in_force=tif))
    assert info.value.reason is RejectReason.INVALID_PRICE
    assert info.value.client_order_id == "b1-btc-1"
    ioc = parse.order_params(
        order(type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC)
    )
    assert "timeInForce" not in ioc  # a market order is immediate-or-cancel by nature


@pytest.mark.parametrize("tif", list(TimeInForce))
def test_time_in_force_round_trips(tif: TimeInForce) -> None:
    assert parse.tif_from_wire(parse.tif_to_wire(tif)) is tif
    assert (parse.tif_to_wire(tif) == "GTX") == (tif is TimeInForce.POST_ONLY)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=D("1e-12"), places=12))
def test_decimal_text_is_exact_and_plain(value: Decimal) -> None:
    text = parse.decimal_str(value)
    assert D(text) == value
    assert "E" not in text and "e" not in text
    assert not ("." in text and text.endswith("0"))


# --- orders ----------------------------------------------------------------------------


def test_ack_answer_parses_to_an_accepted_report() -> None:
    r = parse.order_report(wire.ORDER.decode(ACK), V, ack_kind=AckKind.ACCEPTED)
    assert r.status is OrderStatus.NEW
    assert r.ack_kind is AckKind.ACCEPTED
    assert r.time_in_force is TimeInForce.POST_ONLY
    assert r.quantity == D("0.010") and str(r.price) == "61234.50"
    assert r.cum_filled == 0 and r.avg_price is None
    assert r.venue_ts_ns == 1566818724722 * 1_000_000
    assert r.venue_accept_ns == r.venue_ts_ns  # a NEW answer: accepted at its update time
    assert r.order_id == "22542179" and r.client_order_id == "b1-btc-1"


def test_result_answer_of_a_market_order_is_filled() -> None:
    r = parse.order_report(wire.ORDER.decode(RESULT_MARKET), V, ack_kind=AckKind.RESULT)
    assert r.status is OrderStatus.FILLED and r.order_type is OrderType.MARKET
    assert r.price is None  # Binance writes "0" for a market order's price
    assert r.cum_filled == D("0.300") and r.avg_price == D("2603.01")
    assert r.side is Side.SELL and r.open_qty == 0
    assert r.venue_accept_ns is None  # a RESULT answer's time is its last fill's


def test_query_answer_keeps_creation_time_and_reduce_only() -> None:
    r = parse.order_report(wire.ORDER.decode(QUERY), V, cum_fee=D("0.18369030"))
    assert r.status is OrderStatus.PARTIALLY_FILLED
    assert r.venue_accept_ns == 1579276756075_000_000
    assert r.venue_ts_ns == 1579276756999_000_000
    assert r.reduce_only and r.time_in_force is TimeInForce.IOC
    assert r.open_qty == D("0.004")
    assert r.cum_fee == D("0.18369030") and r.ack_kind is None


def test_average_price_falls_back_to_quote_over_quantity() -> None:
    raw = RESULT_MARKET.replace(b'"avgPrice":"2603.01"', b'"avgPrice":"0"')
    r = parse.order_report(wire.ORDER.decode(raw), V)
    assert r.avg_price == D("780.903") / D("0.300")


def test_stream_events_track_partial_fills_with_exact_fees() -> None:
    ledger = parse.FeeLedger()
    reports = []
    events = [
        otu("NEW", "NEW"),
        otu(
            "TRADE",
            "PARTIALLY_FILLED",
            lq="0.004",
            z="0.004",
            lp="61000.0",
            t=11,
            n="0.0488",
            m=True,
        ),
        otu(
            "TRADE",
            "PARTIALLY_FILLED",
            lq="0.004",
            z="0.004",
            lp="61000.0",
            t=11,
            n="0.0488",
            m=True,
        ),  # the same trade delivered twice
        otu("TRADE", "FILLED", lq="0.006", z="0.010", lp="61000.0", t=12, n="0.183", m=False),
    ]
    for raw in events:
        ev = wire.USER_EVENT.decode(raw)
        assert isinstance(ev, wire.OrderTradeUpdate)
        fill = parse.stream_fill(ev.order)
        if fill is not None:
            ledger.add(
                ev.order.symbol, str(ev.order.order_id), fill.trade_id, fill.quantity, fill.fee
            )
        reports.append(
            parse.stream_report(ev, V, cum_fee=ledger.fee(ev.order.symbol, str(ev.order.order_id)))
        )
    new, part, dup, filled = reports
    assert new.status is OrderStatus.NEW and new.last_fill is None
    assert new.venue_accept_ns == 1568879465650_000_000
    assert part.last_fill is not None and part.last_fill.liquidity is Liquidity.MAKER
    assert part.last_fill.ts_ns == 1568879465650_000_000
    assert part.cum_fee == dup.cum_fee == D("0.0488")
    assert filled.status is OrderStatus.FILLED and filled.cum_filled == D("0.010")
    assert filled.cum_fee == D("0.2318")  # exact: 0.0488 + 0.183
    assert filled.last_fill is not None and filled.last_fill.liquidity is Liquidity.TAKER
    assert filled.avg_price == D("61000.00000")
    assert ledger.complete(filled)


def test_expired_fok_and_post_only_in_stream() -> None:
    ev = wire.USER_EVENT.decode(otu("EXPIRED", "EXPIRED", f="FOK", er="2"))
    r = parse.stream_report(ev, V)  # type: ignore[arg-type]
    assert r.status is OrderStatus.EXPIRED
    assert r.reject_reason is RejectReason.FOK_NOT_FILLABLE
    assert r.reject_message and "IOC" in r.reject_message
    ev = wire.USER_EVENT.decode(otu("NEW", "NEW", f="GTX"))
    assert parse.stream_report(ev, V).time_in_force is TimeInForce.POST_ONLY  # type: ignore[arg-type]


def test_other_user_events_decode() -> None:
    expired = wire.USER_EVENT.decode(b'{"e":"listenKeyExpired","E":1736996475556,"listenKey":"k"}')
    assert isinstance(expired, wire.ListenKeyExpired)
    update = wire.USER_EVENT.decode(
        b'{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,"a":{"m":"ORDER",'
        b'"B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"0"}],'
        b'"P":[{"s":"BTCUSDT","pa":"0.100","ep":"61111.1","bep":"0","cr":"0","up":"12.34",'
        b'"mt":"cross","iw":"0","ps":"BOTH"}]}}'
    )
    assert isinstance(update, wire.AccountUpdate)
    assert update.data.balances[0].wallet_balance == D("122624.12345678")
    with pytest.raises(msgspec.ValidationError):
        wire.USER_EVENT.decode(b'{"e":"TRADE_LITE","E":1}')
    assert wire.EVENT_HEAD.decode(b'{"e":"TRADE_LITE","E":1}').e == "TRADE_LITE"


def test_batch_answer_items_are_orders_or_errors() -> None:
    raw = wire.BATCH.decode(b"[" + ACK + b',{"code":-2019,"msg":"Margin is insufficient."}]')
    first, second = (wire.batch_item(x) for x in raw)
    assert isinstance(first, wire.OrderResponse) and first.order_id == 22542179
    assert second == wire.ErrorBody(code=-2019, msg="Margin is insufficient.")


def test_fee_ledger_knows_when_it_is_incomplete() -> None:
    ledger = parse.FeeLedger(max_orders=2)
    r = parse.order_report(wire.ORDER.decode(QUERY), V)
    assert not ledger.complete(r)
    ledger.add("BTCUSDT", "1917641", "1", D("0.006"), D("0.1836903"))
    assert ledger.complete(r) and ledger.fee("BTCUSDT", "1917641") == D("0.1836903")
    ledger.add("BTCUSDT", "2", "2", D("1"), D("1"))
    ledger.add("BTCUSDT", "3", "3", D("1"), D("1"))  # bounded: the oldest order is forgotten
    assert ledger.fee("BTCUSDT", "1917641") == 0


# --- reference data and account ----------------------------------------------------------


def test_exchange_info_gives_instruments_from_filters() -> None:
    insts = parse.instruments(wire.EXCHANGE_INFO.decode(EXCHANGE_INFO))
    assert [i.symbol for i in insts] == ["BTCUSDT"]  # OLDUSDT is not trading
    btc = insts[0]
    assert btc.kind is InstrumentKind.PERP and (btc.base, btc.quote) == ("BTC", "USDT")
    assert btc.tick == D("0.1") and btc.lot == D("0.001")
    assert btc.min_notional == D("100") and btc.max_qty == D("1000")
    assert btc.on_tick(D("61000.3")) and not btc.on_tick(D("61000.35"))


def test_depth_becomes_a_book_snapshot() -> None:
    book = parse.book(wire.DEPTH.decode(DEPTH), V, "BTCUSDT", 2)
    assert book.bids == [(D("61000.10"), D("1.204")), (D("61000.00"), D("0.5"))]
    assert book.best_ask == D("61000.20") and book.mid == D("61000.15")
    assert book.ts_ns == 1589436922959_000_000
    assert [parse.depth_limit(d) for d in (1, 5, 6, 20, 21, 5000)] == [5, 5, 10, 20, 50, 1000]


def test_account_v2_with_position_risk() -> None:
    snap = parse.account(
        wire.ACCOUNT.decode(ACCOUNT_V2),
        wire.POSITIONS.decode(POSITION_RISK_V2),
        venue=V,
        account_id="acct-1",
        ts_ns=42,
    )
    assert snap.wallet_balance == D("100000.00000000")
    assert snap.available_margin == D("99338.95500000")
    assert snap.position_initial_margin == D("612.34500000")
    assert snap.open_order_initial_margin == D("61.00000000")
    assert snap.balances[0].asset == "USDT" and snap.ts_ns == 42
    [pos] = snap.positions  # the flat ETHUSDT row is left out
    assert pos.symbol == "BTCUSDT" and pos.quantity == D("0.100") and pos.leverage == 10
    assert pos.initial_margin == D("612.345")  # notional / leverage
    assert pos.mark_price == D("61234.50000000") and pos.unrealized_pnl == D("12.34000000")


def test_position_risk_v3_implies_leverage_from_margin() -> None:
    [pos] = parse.positions(wire.POSITIONS.decode(POSITION_RISK_V3))
    assert pos.quantity == D("-2.500") and pos.initial_margin == D("325.00000000")
    assert pos.leverage == 20


def test_market_streams_become_market_events() -> None:
    ticker = wire.MARKET.decode(
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,'
        b'"E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"61000.10","B":"31.21",'
        b'"a":"61000.20","A":"40.66"}}'
    )
    ev = parse.market_event(ticker.data, V)
    assert isinstance(ev, BookTicker)
    assert (ev.bid, ev.ask, ev.ask_qty) == (D("61000.10"), D("61000.20"), D("40.66"))
    assert ev.ts_ns == 1568014460891_000_000
    trade = wire.MARKET.decode(
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":123456789,"T":123456785,'
        b'"s":"BTCUSDT","t":5933014,"p":"61000.1","q":"0.250","X":"MARKET","m":true}}'
    )
    ev = parse.market_event(trade.data, V)
    assert isinstance(ev, MarketTrade)
    assert ev.aggressor is Side.SELL and ev.trade_id == 5933014 and ev.quantity == D("0.250")
    agg = wire.MARKET.decode(
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BTCUSDT",'
        b'"a":5933014,"p":"61000.2","q":"1.5","nq":"1.5","f":100,"l":105,"T":123456785,'
        b'"m":false}}'
    )
    ev = parse.market_event(agg.data, V)
    assert isinstance(ev, MarketTrade) and ev.aggressor is Side.BUY


# --- errors ----------------------------------------------------------------------------


def body(code: int, msg: str) -> bytes:
    return msgspec.json.encode({"code": code, "msg": msg})


ERRORS: list[tuple[int, bytes, bool, type[VenueError], RejectReason | None]] = [
    (
        400,
        body(-1021, "Timestamp for this request is outside of the recvWindow."),
        True,
        AuthError,
        None,
    ),
    (400, body(-1022, "Signature for this request is not valid."), False, AuthError, None),
    (401, body(-2014, "API-key format invalid."), False, AuthError, None),
    (401, body(-2015, "Invalid API-key, IP, or permissions for action."), True, AuthError, None),
    (429, body(-1003, "Too many requests."), False, RateLimited, None),
    (418, b"", False, RateLimited, None),
    (
        400,
        body(-2019, "Margin is insufficient."),
        True,
        OrderRejected,
        RejectReason.INSUFFICIENT_MARGIN,
    ),
    (
        400,
        body(-1013, "Filter failure: PRICE_FILTER"),
        True,
        OrderRejected,
        RejectReason.PRICE_OFF_TICK,
    ),
    (400, body(-1013, "Filter failure: LOT_SIZE"), True, OrderRejected, RejectReason.QTY_OFF_LOT),
    (
        400,
        body(-1013, "Filter failure: MIN_NOTIONAL"),
        True,
        OrderRejected,
        RejectReason.BELOW_MIN_NOTIONAL,
    ),
    (
        400,
        body(-4164, "Order's notional must be no smaller than 100"),
        True,
        OrderRejected,
        RejectReason.BELOW_MIN_NOTIONAL,
    ),
    (
        400,
        body(-1111, "Precision is over the maximum defined for this asset."),
        True,
        OrderRejected,
        RejectReason.QTY_OFF_LOT,
    ),
    (
        400,
        body(-4014, "Price not increased by tick size."),
        True,
        OrderRejected,
        RejectReason.PRICE_OFF_TICK,
    ),
    (
        400,
        body(-4023, "Qty not increased by step size."),
        True,
        OrderRejected,
        RejectReason.QTY_OFF_LOT,
    ),
    (
        400,
        body(-4116, "ClientOrderId is duplicated."),
        True,
        OrderRejected,
        RejectReason.DUPLICATE_CLIENT_ORDER_ID,
    ),
    (
        400,
        body(
            -5022,
            "Due to the order could not be executed as maker, the Post Only order "
            "will be rejected.",
        ),
        True,
        OrderRejected,
        RejectReason.POST_ONLY_WOULD_CROSS,
    ),
    (
        400,
        body(
            -5021,
            "Due to the order could not be filled immediately, the FOK order has been rejected.",
        ),
        True,
        OrderRejected,
        RejectReason.FOK_NOT_FILLABLE,
    ),
    (
        400,
        body(-4024, "Price is lower than mark price multiplier floor."),
        True,
        OrderRejected,
        RejectReason.INVALID_PRICE,
    ),
    (400, body(-1121, "Invalid symbol."), True, OrderRejected, RejectReason.UNKNOWN_SYMBOL),
    (400, body(-2011, "Unknown order sent."), True, UnknownOrder, None),
    (400, body(-2013, "Order does not exist."), False, UnknownOrder, None),
    (400, body(-1102, "Mandatory parameter 'quantity' was not sent."), True, InvalidRequest, None),
    (
        503,
        body(
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        ),
        True,
        OutcomeUnknown,
        None,
    ),
    (
        503,
        body(-1007, "Timeout waiting for response from backend server."),
        False,
        VenueUnavailable,
        None,
    ),
    (500, b"<html>Internal Server Error</html>", True, OutcomeUnknown, None),
    (502, b"Bad Gateway", False, VenueUnavailable, None),
    (
        503,
        body(-1001, "Internal error; unable to process your request. Please try again."),
        True,
        VenueUnavailable,
        None,
    ),
    (503, b'{"code":-1000,"msg":"Service Unavailable."}', True, VenueUnavailable, None),
    (408, b"", True, OutcomeUnknown, None),
]


@pytest.mark.parametrize(("status", "raw", "mutating", "kind", "reason"), ERRORS)
def test_error_mapping(
    status: int,
    raw: bytes,
    mutating: bool,
    kind: type[VenueError],
    reason: RejectReason | None,
) -> None:
    err = parse.error_from_response(
        status, raw, venue=V, mutating=mutating, client_order_id="b1-btc-9", retry_after_s=3.0
    )
    assert type(err) is kind, err
    assert err.venue == V
    if reason is not None:
        assert isinstance(err, OrderRejected)
        assert err.reason is reason and err.client_order_id == "b1-btc-9"
    if isinstance(err, RateLimited):
        assert err.retry_after_s == 3.0
    if isinstance(err, OutcomeUnknown):
        assert err.client_order_id == "b1-btc-9"
    if raw.startswith(b"{"):
        assert err.code == msgspec.json.decode(raw)["code"]


def test_retry_after_header() -> None:
    assert parse.retry_after("7") == 7.0
    assert parse.retry_after(None) is None and parse.retry_after("soon") is None


# --- credentials stay hidden -----------------------------------------------------------

SECRET = "s3cr3t-never-shown-0123456789abcdef"


def test_client_repr_and_errors_do_not_show_the_secret() -> None:
    client = BinanceUsdmClient(
        V,
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        api_key="key-abcdef",
        secret=SECRET,
    )
    assert SECRET not in repr(client) and "key-abcdef" not in repr(client)
    assert SECRET not in repr(vars(client))
    with pytest.raises(TypeError):
        pickle.dumps(client._secret)


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGATO_TEST_KEY", "key-abcdef")
    monkeypatch.setenv("LEGATO_TEST_SECRET", SECRET)
    monkeypatch.delenv("LEGATO_TEST_MISSING", raising=False)
    client = BinanceUsdmClient.from_env(
        V, "http://127.0.0.1:1", "ws://127.0.0.1:1", "LEGATO_TEST_KEY", "LEGATO_TEST_SECRET"
    )
    assert client.venue == V
    with pytest.raises(AuthError) as info:
        BinanceUsdmClient.from_env(
            V, "http://127.0.0.1:1", "ws://127.0.0.1:1", "LEGATO_TEST_KEY", "LEGATO_TEST_MISSING"
        )
    assert "LEGATO_TEST_MISSING" in str(info.value)
    assert SECRET not in str(info.value) and "key-abcdef" not in str(info.value)


async def test_client_reads_user_events_into_reports() -> None:
    client = BinanceUsdmClient(
        V, rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1", api_key="k", secret="s"
    )
    assert client._on_user_message(otu("NEW", "NEW"))
    trade = otu("TRADE", "FILLED", lq="0.010", z="0.010", lp="61000.0", t=5, n="0.122")
    assert client._on_user_message(trade)
    assert client._on_user_message(trade)  # delivered twice: the fee counts once
    assert client._on_user_message(b'{"e":"TRADE_LITE","E":1}')  # read past
    assert client._on_user_message(otu("NEW", "NO_SUCH_STATUS"))  # logged, not fatal
    assert not client._on_user_message(b'{"e":"listenKeyExpired","E":1,"listenKey":"k"}')
    stream = client.execution_reports()
    new, filled, again = [await anext(stream) for _ in range(3)]
    assert new.status is OrderStatus.NEW
    assert filled.status is OrderStatus.FILLED and filled.cum_fee == again.cum_fee == D("0.122")
    await client.close()
    assert [r async for r in stream] == []
