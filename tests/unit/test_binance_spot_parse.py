"""Binance spot wire → venue vocabulary: documented payloads, fees in the asset charged,
errors, order parameters, and the client's local refusals."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from venues.adapter_kit import insecure_url
from venues.binance import BinanceSpotClient, parse, spot_parse, spot_wire, wire
from venues.binance.market_stream import spot_market_reader
from venues.binance.user_stream import SpotEvents, StreamEnd
from venues.client import VenueClient
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
    BINANCE_CLIENT_IDS,
    AckKind,
    BookTicker,
    ExecutionReport,
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
V = "spot-sim"
LOCAL = {"rest_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1"}

# --- samples shaped like the spot API reference's examples ------------------------------

ACK = b"""{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,
"clientOrderId":"b1-btc-1","transactTime":1507725176595}"""

RESULT = b"""{"symbol":"BTCUSDT","orderId":29,"orderListId":-1,"clientOrderId":"b1-btc-2",
"transactTime":1507725176600,"price":"0.00000000","origQty":"0.30000000",
"executedQty":"0.30000000","origQuoteOrderQty":"0.00000000",
"cummulativeQuoteQty":"18003.00000000","status":"FILLED","timeInForce":"GTC",
"type":"MARKET","side":"SELL","workingTime":1507725176600,"selfTradePreventionMode":"NONE"}"""

# A market buy that takes three levels; its commission is charged in the base asset.
FULL = b"""{"symbol":"BTCUSDT","orderId":30,"orderListId":-1,"clientOrderId":"b1-btc-3",
"transactTime":1507725176610,"price":"0.00000000","origQty":"0.40000000",
"executedQty":"0.40000000","origQuoteOrderQty":"0.00000000",
"cummulativeQuoteQty":"24003.00000000","status":"FILLED","timeInForce":"GTC",
"type":"MARKET","side":"BUY","workingTime":1507725176610,"selfTradePreventionMode":"NONE",
"fills":[
{"price":"60000.00000000","qty":"0.10000000","commission":"0.00010000",
"commissionAsset":"BTC","tradeId":56},
{"price":"60010.00000000","qty":"0.20000000","commission":"0.00020000",
"commissionAsset":"BTC","tradeId":57},
{"price":"59990.00000000","qty":"0.10000000","commission":"0.00010000",
"commissionAsset":"BTC","tradeId":58}]}"""

QUERY = b"""{"symbol":"ETHUSDT","orderId":1,"orderListId":-1,"clientOrderId":"b1-eth-1",
"price":"2500.00000000","origQty":"2.00000000","executedQty":"0.50000000",
"cummulativeQuoteQty":"1250.00000000","status":"PARTIALLY_FILLED","timeInForce":"IOC",
"type":"LIMIT","side":"BUY","stopPrice":"0.00000000","icebergQty":"0.00000000",
"time":1499827319559,"updateTime":1499827319600,"isWorking":true,
"workingTime":1499827319559,"origQuoteOrderQty":"0.00000000",
"selfTradePreventionMode":"NONE"}"""

MAKER_QUERY = QUERY.replace(b'"type":"LIMIT"', b'"type":"LIMIT_MAKER"').replace(
    b'"timeInForce":"IOC"', b'"timeInForce":"GTC"'
)

# A cancel names the order by origClientOrderId: clientOrderId is the cancel's own.
CANCELED = b"""{"symbol":"ETHUSDT","origClientOrderId":"b1-eth-1","orderId":1,
"orderListId":-1,"clientOrderId":"cancelMyOrder1","transactTime":1684804350068,
"price":"2500.00000000","origQty":"2.00000000","executedQty":"0.50000000",
"cummulativeQuoteQty":"1250.00000000","status":"CANCELED","timeInForce":"GTC",
"type":"LIMIT","side":"BUY","selfTradePreventionMode":"NONE"}"""

CANCEL_ALL = (
    b"["
    + CANCELED
    + b""",{"orderListId":1929,"contingencyType":"OCO","listStatusType":"ALL_DONE",
"listOrderStatus":"ALL_DONE","listClientOrderId":"2inzWQdDvZLHbbAmAozX2N",
"transactionTime":1585230948299,"symbol":"ETHUSDT","orders":[],"orderReports":[
{"symbol":"ETHUSDT","origClientOrderId":"oco-stop","orderId":20,"orderListId":1929,
"clientOrderId":"cancel-oco","transactTime":1585230948299,"price":"2400.00000000",
"origQty":"1.00000000","executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000",
"status":"CANCELED","timeInForce":"GTC","type":"STOP_LOSS_LIMIT","side":"SELL",
"stopPrice":"2390.00000000"},
{"symbol":"ETHUSDT","origClientOrderId":"oco-limit","orderId":21,"orderListId":1929,
"clientOrderId":"cancel-oco","transactTime":1585230948299,"price":"2700.00000000",
"origQty":"1.00000000","executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000",
"status":"CANCELED","timeInForce":"GTC","type":"LIMIT_MAKER","side":"SELL"}]}]"""
)

MY_TRADES = b"""[{"symbol":"BTCUSDT","id":28457,"orderId":100234,"orderListId":-1,
"price":"60000.00000000","qty":"0.01000000","quoteQty":"600.00000000",
"commission":"0.00001000","commissionAsset":"BTC","time":1499865549590,"isBuyer":true,
"isMaker":true,"isBestMatch":true},
{"symbol":"BTCUSDT","id":28458,"orderId":100235,"orderListId":-1,
"price":"60010.00000000","qty":"0.02000000","quoteQty":"1200.20000000",
"commission":"1.20020000","commissionAsset":"USDT","time":1499865549600,"isBuyer":false,
"isMaker":false,"isBestMatch":true}]"""

ACCOUNT = b"""{"makerCommission":10,"takerCommission":10,"buyerCommission":0,
"sellerCommission":0,"commissionRates":{"maker":"0.00100000","taker":"0.00100000",
"buyer":"0.00000000","seller":"0.00000000"},"canTrade":true,"canWithdraw":true,
"canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,"preventSor":false,
"updateTime":123456789,"accountType":"SPOT","balances":[
{"asset":"BTC","free":"4723846.89208129","locked":"0.00000000"},
{"asset":"LTC","free":"0.00000000","locked":"0.00000000"},
{"asset":"USDT","free":"9400.50000000","locked":"600.00000000"},
{"asset":"ETH","free":"0.00000000","locked":"1.50000000"}],
"permissions":["SPOT"],"uid":354937868}"""

EXCHANGE_INFO = b"""{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],
"exchangeFilters":[],"symbols":[
{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,
"quoteAsset":"USDT","quotePrecision":8,"quoteAssetPrecision":8,
"orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"],
"icebergAllowed":true,"ocoAllowed":true,"isSpotTradingAllowed":true,
"isMarginTradingAllowed":true,"filters":[
{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000",
"tickSize":"0.01000000"},
{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000",
"stepSize":"0.00001000"},
{"filterType":"ICEBERG_PARTS","limit":10},
{"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"83.5","stepSize":"0"},
{"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,
"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5},
{"filterType":"MAX_NUM_ORDERS","maxNumOrders":200}],"permissions":[],
"permissionSets":[["SPOT","MARGIN"]],"defaultSelfTradePreventionMode":"EXPIRE_MAKER"},
{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC",
"isSpotTradingAllowed":true,"filters":[
{"filterType":"PRICE_FILTER","minPrice":"0.00001","maxPrice":"922327","tickSize":"0.00001"},
{"filterType":"LOT_SIZE","minQty":"0.0001","maxQty":"100000","stepSize":"0.0001"},
{"filterType":"MIN_NOTIONAL","minNotional":"0.0001","applyToMarket":true,
"avgPriceMins":5}]},
{"symbol":"OLDBTC","status":"BREAK","baseAsset":"OLD","quoteAsset":"BTC","filters":[]},
{"symbol":"MRGUSDT","status":"TRADING","baseAsset":"MRG","quoteAsset":"USDT",
"isSpotTradingAllowed":false,"filters":[]},
{"symbol":"ODDUSDT","status":"TRADING","baseAsset":"ODD","quoteAsset":"USDT",
"filters":[{"filterType":"LOT_SIZE","stepSize":"1","minQty":"1","maxQty":"10"}]}]}"""


def er(
    x: str,
    status: str,
    *,
    c: str = "b1-btc-9",
    orig: str = "",
    o: str = "LIMIT",
    f: str = "GTC",
    q: str = "0.03000000",
    p: str = "60000.00000000",
    lq: str = "0.00000000",
    z: str = "0.00000000",
    lp: str = "0.00000000",
    quote: str = "0.00000000",
    n: str = "0",
    asset: str | None = None,
    t: int = -1,
    m: bool = False,
    side: str = "BUY",
    r: str = "NONE",
) -> bytes:
    """An executionReport event with the fields the user-data stream reference lists."""
    return json.dumps(
        {
            "e": "executionReport",
            "E": 1499405658658,
            "s": "BTCUSDT",
            "c": c,
            "S": side,
            "o": o,
            "f": f,
            "q": q,
            "p": p,
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": orig,
            "x": x,
            "X": status,
            "r": r,
            "i": 4293153,
            "l": lq,
            "z": z,
            "L": lp,
            "n": n,
            "N": asset,
            "T": 1499405658657,
            "t": t,
            "I": 8641984,
            "w": status in ("NEW", "PARTIALLY_FILLED"),
            "m": m,
            "M": False,
            "O": 1499405658650,
            "Z": quote,
            "Y": "0.00000000",
            "Q": "0.00000000",
            "W": 1499405658650,
            "V": "NONE",
        }
    ).encode()


def order(
    coid: str = "b1-btc-1",
    *,
    side: Side = Side.BUY,
    qty: str = "0.0100",
    price: str | None = "60000.50",
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=side,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
    )


# --- requests ------------------------------------------------------------------------------


def test_limit_order_parameters_are_exact_and_name_the_answer_wanted() -> None:
    assert spot_parse.order_params(order(), "ACK") == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "price": "60000.5",
        "quantity": "0.01",
        "newClientOrderId": "b1-btc-1",
        "newOrderRespType": "ACK",
    }


def test_post_only_is_a_limit_maker_order_without_time_in_force() -> None:
    params = spot_parse.order_params(order(tif=TimeInForce.POST_ONLY), "FULL")
    assert params["type"] == "LIMIT_MAKER" and "timeInForce" not in params
    assert params["price"] == "60000.5" and params["newOrderRespType"] == "FULL"


def test_market_order_sends_neither_price_nor_time_in_force() -> None:
    params = spot_parse.order_params(order(price=None, tif=TimeInForce.IOC), "RESULT")
    assert params["type"] == "MARKET"
    assert "price" not in params and "timeInForce" not in params


@pytest.mark.parametrize("tif", [TimeInForce.FOK, TimeInForce.POST_ONLY])
def test_market_fok_or_post_only_is_refused_before_sending(tif: TimeInForce) -> None:
    with pytest.raises(OrderRejected) as info:
        spot_parse.order_params(order(price=None, tif=tif), "ACK")
    assert info.value.reason is RejectReason.INVALID_PRICE
    assert info.value.client_order_id == "b1-btc-1"


def test_reduce_only_is_refused_with_a_reason_that_says_spot_has_none() -> None:
    with pytest.raises(OrderRejected) as info:
        spot_parse.order_params(order(reduce_only=True), "ACK")
    assert info.value.reason is RejectReason.VENUE_REFUSED
    assert "reduce-only" in info.value.message and "nothing was sent" in info.value.message


# --- order answers ---------------------------------------------------------------------------


def test_ack_answer_says_only_that_the_order_was_taken() -> None:
    ack = spot_wire.ORDER_ACK.decode(ACK)
    r = spot_parse.ack_report(order(), ack, V, AckKind.ACCEPTED)
    assert r.status is OrderStatus.NEW and r.ack_kind is AckKind.ACCEPTED
    assert r.order_id == "28" and r.client_order_id == "b1-btc-1"
    assert r.venue_accept_ns == r.venue_ts_ns == 1507725176595_000_000
    assert r.quantity == D("0.0100") and r.price == D("60000.50") and r.cum_filled == 0
    receipt = spot_parse.ack_report(order(), ack, V, AckKind.RECEIPT)
    assert receipt.status is OrderStatus.PENDING_NEW and receipt.order_id == "28"
    assert receipt.venue_accept_ns is None
    assert receipt.venue_receive_ns == 1507725176595_000_000


def test_result_answer_of_a_market_sell_is_filled_with_its_average() -> None:
    r = spot_parse.order_report(spot_wire.ORDER.decode(RESULT), V, ack_kind=AckKind.RESULT)
    assert r.status is OrderStatus.FILLED and r.order_type is OrderType.MARKET
    assert r.price is None and r.cum_filled == D("0.3") and r.open_qty == 0
    assert r.avg_price == D("60010")  # 18003 / 0.3, exactly
    assert r.venue_accept_ns == 1507725176600_000_000 and r.cum_fee == 0


def test_full_answer_lists_taker_fills_with_the_base_asset_fee() -> None:
    answer = spot_wire.ORDER.decode(FULL)
    fills = spot_parse.answer_fills(answer)
    assert [f.trade_id for f in fills] == ["56", "57", "58"]
    assert all(f.liquidity is Liquidity.TAKER and f.fee_asset == "BTC" for f in fills)
    assert sum(f.quantity for f in fills) == D("0.4")
    ledger = parse.FeeLedger()
    for f in fills:
        ledger.add("BTCUSDT", "30", f.trade_id, f.quantity, f.fee, f.fee_asset)
    r = spot_parse.order_report(
        answer,
        V,
        ack_kind=AckKind.RESULT,
        cum_fee=ledger.fee("BTCUSDT", "30"),
        fee_asset=ledger.fee_asset("BTCUSDT", "30"),
    )
    assert r.cum_fee == D("0.0004") and r.fee_asset == "BTC"
    assert r.avg_price == D("60007.5")


def test_query_answer_keeps_creation_time_and_time_in_force() -> None:
    r = spot_parse.order_report(spot_wire.ORDER.decode(QUERY), V)
    assert r.status is OrderStatus.PARTIALLY_FILLED and r.time_in_force is TimeInForce.IOC
    assert r.venue_accept_ns == 1499827319559_000_000
    assert r.venue_ts_ns == 1499827319600_000_000
    assert r.open_qty == D("1.5") and r.avg_price == D("2500")
    maker = spot_parse.order_report(spot_wire.ORDER.decode(MAKER_QUERY), V)
    assert maker.order_type is OrderType.LIMIT and maker.time_in_force is TimeInForce.POST_ONLY


def test_cancel_answer_is_named_by_the_original_client_order_id() -> None:
    r = spot_parse.order_report(spot_wire.ORDER.decode(CANCELED), V)
    assert r.client_order_id == "b1-eth-1" and r.status is OrderStatus.CANCELED
    assert r.venue_accept_ns is None  # transactTime is the cancel's, not the order's
    assert r.venue_ts_ns == 1684804350068_000_000 and r.cum_filled == D("0.5")


def test_cancel_all_answer_holds_orders_and_order_lists() -> None:
    items = spot_wire.CANCELED.decode(CANCEL_ALL)
    orders = [o for item in items for o in spot_wire.canceled_orders(item)]
    reports = [spot_parse.order_report(o, V) for o in orders]
    assert [r.client_order_id for r in reports] == ["b1-eth-1", "oco-stop", "oco-limit"]
    assert all(r.status is OrderStatus.CANCELED for r in reports)
    assert reports[2].time_in_force is TimeInForce.POST_ONLY


def test_my_trades_are_fills_with_string_ids_and_the_asset_charged() -> None:
    maker, taker = (spot_parse.my_trade_fill(t) for t in spot_wire.MY_TRADES.decode(MY_TRADES))
    assert maker.trade_id == "28457" and maker.liquidity is Liquidity.MAKER
    assert maker.fee == D("0.00001") and maker.fee_asset == "BTC"
    assert taker.liquidity is Liquidity.TAKER and taker.fee_asset == "USDT"
    assert taker.ts_ns == 1499865549600_000_000 and taker.price == D("60010")


# --- the user-data stream ----------------------------------------------------------------------


def read_all(events: list[bytes]) -> tuple[list[ExecutionReport], parse.FeeLedger]:
    ledger = parse.FeeLedger()
    reader = SpotEvents(V, ledger)
    out = []
    for raw in events:
        r = reader(raw)
        assert isinstance(r, ExecutionReport)
        out.append(r)
    return out, ledger


def test_a_buy_filled_in_two_trades_pays_its_fee_in_the_base_asset() -> None:
    trade = {"x": "TRADE", "lp": "60000.00000000", "asset": "BTC"}
    events = [
        er("NEW", "NEW"),
        er(
            **trade,  # type: ignore[arg-type]
            status="PARTIALLY_FILLED",
            lq="0.01000000",
            z="0.01000000",
            quote="600.00000000",
            n="0.00001000",
            t=11,
            m=True,
        ),
        er(
            **trade,  # type: ignore[arg-type]
            status="PARTIALLY_FILLED",
            lq="0.01000000",
            z="0.01000000",
            quote="600.00000000",
            n="0.00001000",
            t=11,
            m=True,
        ),  # the same trade delivered twice
        er(
            **trade,  # type: ignore[arg-type]
            status="FILLED",
            lq="0.02000000",
            z="0.03000000",
            quote="1800.00000000",
            n="0.00002000",
            t=12,
        ),
    ]
    (new, part, dup, filled), ledger = read_all(events)
    assert new.status is OrderStatus.NEW and new.last_fill is None
    assert new.venue_accept_ns == 1499405658650_000_000 and new.fee_asset == ""
    assert part.last_fill is not None and part.last_fill.liquidity is Liquidity.MAKER
    assert part.last_fill.fee_asset == "BTC" and part.last_fill.ts_ns == 1499405658657_000_000
    assert part.cum_fee == dup.cum_fee == D("0.00001") and part.fee_asset == "BTC"
    assert filled.status is OrderStatus.FILLED and filled.cum_filled == D("0.03")
    assert filled.cum_fee == D("0.00003") and filled.fee_asset == "BTC"
    assert filled.avg_price == D("60000")
    assert filled.last_fill is not None and filled.last_fill.liquidity is Liquidity.TAKER
    assert ledger.complete(filled)


def test_a_sell_pays_in_the_quote_and_a_cancel_names_the_original_order() -> None:
    (sold, canceled), _ = read_all(
        [
            er(
                "TRADE",
                "PARTIALLY_FILLED",
                side="SELL",
                lq="0.01000000",
                z="0.01000000",
                lp="61000.00000000",
                quote="610.00000000",
                n="0.61000000",
                asset="USDT",
                t=21,
            ),
            er(
                "CANCELED",
                "CANCELED",
                c="web_cancel_7f3a",
                orig="b1-btc-9",
                side="SELL",
                z="0.01000000",
                quote="610.00000000",
            ),
        ]
    )
    assert sold.fee_asset == "USDT" and sold.cum_fee == D("0.61")
    assert canceled.client_order_id == "b1-btc-9" and canceled.status is OrderStatus.CANCELED
    assert canceled.cum_fee == D("0.61") and canceled.open_qty == 0
    assert canceled.venue_accept_ns is None


def test_expired_fok_limit_maker_and_rejected_events() -> None:
    (fok, maker, rejected), _ = read_all(
        [
            er("EXPIRED", "EXPIRED", f="FOK"),
            er("NEW", "NEW", o="LIMIT_MAKER"),
            er("REJECTED", "REJECTED", r="INSUFFICIENT_BALANCES"),
        ]
    )
    assert fok.status is OrderStatus.EXPIRED and fok.reject_reason is RejectReason.FOK_NOT_FILLABLE
    assert maker.time_in_force is TimeInForce.POST_ONLY and maker.order_type is OrderType.LIMIT
    assert rejected.reject_reason is RejectReason.VENUE_REFUSED
    assert rejected.reject_message == "INSUFFICIENT_BALANCES"


def test_account_events_and_the_end_of_the_stream() -> None:
    reader = SpotEvents(V, parse.FeeLedger())
    position = (
        b'{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,'
        b'"B":[{"a":"ETH","f":"10000.000000","l":"0.000000"},'
        b'{"a":"USDT","f":"90.5","l":"9.5"}]}'
    )
    assert reader(position) is None
    assert reader.balances["USDT"].wallet == D("100.0")
    assert reader.balances["USDT"].available == D("90.5")
    balance = b'{"e":"balanceUpdate","E":1573200697110,"a":"BTC","d":"100.00000000","T":1}'
    assert reader(balance) is None
    list_status = b'{"e":"listStatus","E":1564035303637,"s":"ETHBTC","g":2}'
    assert reader(list_status) is None  # an event legato does not read
    assert reader(b'{"e":"executionReport","E":1}') is None  # malformed: logged, not fatal
    assert reader(er("NEW", "NO_SUCH_STATUS")) is None
    expired = b'{"e":"listenKeyExpired","E":1576653824250,"listenKey":"k"}'
    assert reader(expired) is StreamEnd.REOPEN
    assert reader(b'{"e":"eventStreamTerminated","E":1728973001334}') is StreamEnd.REOPEN


def test_fees_charged_in_two_assets_are_never_added_together() -> None:
    ledger = parse.FeeLedger()
    ledger.add("BTCUSDT", "7", "1", D("0.01"), D("0.0001"), "BNB")
    ledger.add("BTCUSDT", "7", "2", D("0.01"), D("0.00001"), "BTC")  # BNB ran out
    assert ledger.fee_asset("BTCUSDT", "7") == "BNB" and ledger.mixed("BTCUSDT", "7")
    assert ledger.fee("BTCUSDT", "7") == D("0.0001")
    assert ledger.filled("BTCUSDT", "7") == D("0.02")
    ledger.add("BTCUSDT", "7", "1", D("0.01"), D("0.0001"))  # a source that names no asset
    assert ledger.fee_asset("BTCUSDT", "7") == "BNB" and ledger.fee("BTCUSDT", "7") == D("0.0001")


@given(
    st.lists(
        st.tuples(st.integers(1, 1000), st.integers(0, 1000)), min_size=1, max_size=12
    ).flatmap(
        lambda trades: st.tuples(
            st.just(trades),
            st.lists(st.integers(0, len(trades) - 1), max_size=12),
        )
    )
)
def test_repeated_trade_events_never_count_a_fee_twice(
    case: tuple[list[tuple[int, int]], list[int]],
) -> None:
    trades, repeats = case
    events: list[bytes] = []
    filled = D(0)
    for i, (lots, fee) in enumerate(trades):
        filled += D(lots) / 1000
        events.append(
            er(
                "TRADE",
                "PARTIALLY_FILLED",
                q="1000",
                lq=str(D(lots) / 1000),
                z=str(filled),
                lp="60000",
                quote=str(filled * 60000),
                n=str(D(fee) / 10**8),
                asset="BTC",
                t=i,
            )
        )
    events += [events[i] for i in repeats]  # late and repeated deliveries
    reports, _ = read_all(events)
    expected = sum((D(fee) / 10**8 for _, fee in trades), D(0))
    assert reports[len(trades) - 1].cum_fee == expected
    assert all(r.cum_fee == expected for r in reports[len(trades) :])


# --- reference data and account -----------------------------------------------------------


def test_exchange_info_gives_spot_instruments_from_filters() -> None:
    insts, problems = spot_parse.instruments(spot_wire.EXCHANGE_INFO.decode(EXCHANGE_INFO))
    btc, eth = insts
    assert btc.kind is InstrumentKind.SPOT and (btc.base, btc.quote) == ("BTC", "USDT")
    assert (btc.tick, btc.lot, btc.min_notional) == (D("0.01"), D("0.00001"), D(5))
    assert btc.max_qty == D(9000)
    assert (eth.tick, eth.lot, eth.min_notional) == (D("0.00001"), D("0.0001"), D("0.0001"))
    # Not trading (BREAK) or not spot are left out quietly; an unreadable one is said.
    assert problems == ["exchangeInfo symbol ODDUSDT has no PRICE_FILTER tickSize"]


def test_depth_and_book_ticker_are_stamped_with_the_venue_time_given() -> None:
    depth = wire.DEPTH.decode(
        b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],'
        b'"asks":[["4.00000200","12.00000000"],["4.1","1"]]}'
    )
    book = spot_parse.book(depth, V, "BNBBTC", 1, ts_ns=42)
    assert book.bids == [(D("4"), D("431"))] and book.asks == [(D("4.000002"), D("12"))]
    assert book.ts_ns == 42
    ticker = spot_wire.BOOK_TICKER.decode(
        b'{"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000",'
        b'"askPrice":"4.00000200","askQty":"9.00000000"}'
    )
    top = spot_parse.book_ticker(ticker, V, 7)
    assert (top.bid, top.ask, top.ask_qty, top.ts_ns) == (D(4), D("4.000002"), D(9), 7)


def test_account_is_a_spot_wallet_with_no_positions_and_no_margin() -> None:
    snap = spot_parse.account(
        spot_wire.ACCOUNT.decode(ACCOUNT), venue=V, account_id="desk", quote="USDT", ts_ns=5
    )
    balances = {b.asset: (b.wallet, b.available) for b in snap.spot_balances}
    assert balances == {
        "BTC": (D("4723846.89208129"), D("4723846.89208129")),
        "USDT": (D("10000.5"), D("9400.5")),
        "ETH": (D("1.5"), D(0)),  # held by an open sell, none of it free
    }  # LTC at zero is left out
    assert snap.positions == [] and snap.balances == [] and snap.margin_asset == "USDT"
    # No margin wallet: nothing of the spot wallet's cash reads as margin.
    assert snap.wallet_balance == snap.available_margin == snap.open_order_initial_margin == 0
    assert snap.unrealized_pnl == snap.position_initial_margin == 0
    assert (snap.account_id, snap.ts_ns) == ("desk", 5)


def test_market_streams_become_market_events() -> None:
    read = spot_market_reader(V, lambda: 99)
    ticker = read(
        b'{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT",'
        b'"b":"60000.01","B":"31.21","a":"60000.02","A":"40.66"}}'
    )
    assert isinstance(ticker, BookTicker)
    assert (ticker.bid, ticker.ask_qty, ticker.ts_ns) == (D("60000.01"), D("40.66"), 99)
    trade = read(
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT",'
        b'"t":12345,"p":"60000.5","q":"0.002","T":1672515782134,"m":true,"M":true}}'
    )
    assert isinstance(trade, MarketTrade)
    assert trade.aggressor is Side.SELL and trade.ts_ns == 1672515782134_000_000
    assert read(b'{"stream":"btcusdt@depth","data":{}}') is None
    assert read(b"not json") is None


# --- errors -----------------------------------------------------------------------------------


def spot_error(status: int, body: dict[str, Any] | bytes) -> VenueError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse.error_from_response(
        status,
        raw,
        venue=V,
        mutating=True,
        client_order_id="b1-btc-9",
        retry_after_s=3.0,
        reject_reason=spot_parse.reject_reason,
    )


@pytest.mark.parametrize(
    ("status", "code", "msg", "kind", "reason"),
    [
        (
            400,
            -2010,
            "Account has insufficient balance for requested action.",
            OrderRejected,
            RejectReason.INSUFFICIENT_BALANCE,
        ),
        (
            400,
            -2010,
            "Order would immediately match and take.",
            OrderRejected,
            RejectReason.POST_ONLY_WOULD_CROSS,
        ),
        (
            400,
            -2010,
            "Duplicate order sent.",
            OrderRejected,
            RejectReason.DUPLICATE_CLIENT_ORDER_ID,
        ),
        (400, -2010, "Market is closed.", OrderRejected, RejectReason.UNKNOWN_SYMBOL),
        (400, -2010, "NEW_ORDER_REJECTED", OrderRejected, RejectReason.VENUE_REFUSED),
        (400, -1121, "Invalid symbol.", OrderRejected, RejectReason.UNKNOWN_SYMBOL),
        (400, -1013, "Filter failure: PRICE_FILTER", OrderRejected, RejectReason.PRICE_OFF_TICK),
        (400, -1013, "Filter failure: LOT_SIZE", OrderRejected, RejectReason.QTY_OFF_LOT),
        (400, -1013, "Filter failure: NOTIONAL", OrderRejected, RejectReason.BELOW_MIN_NOTIONAL),
        (
            400,
            -1013,
            "Filter failure: MIN_NOTIONAL",
            OrderRejected,
            RejectReason.BELOW_MIN_NOTIONAL,
        ),
        (
            400,
            -1013,
            "Filter failure: PERCENT_PRICE_BY_SIDE",
            OrderRejected,
            RejectReason.INVALID_PRICE,
        ),
        (400, -1013, "Filter failure: MAX_NUM_ORDERS", OrderRejected, RejectReason.VENUE_REFUSED),
        (
            400,
            -1111,
            "Parameter 'quantity' has too much precision.",
            OrderRejected,
            RejectReason.QTY_OFF_LOT,
        ),
        (400, -2011, "Unknown order sent.", UnknownOrder, None),
        (400, -2013, "Order does not exist.", UnknownOrder, None),
        (401, -2014, "API-key format invalid.", AuthError, None),
        (401, -2015, "Invalid API-key, IP, or permissions for action.", AuthError, None),
        (400, -1022, "Signature for this request is not valid.", AuthError, None),
        (400, -1021, "Timestamp for this request is outside of the recvWindow.", AuthError, None),
        (429, -1003, "Too much request weight used.", RateLimited, None),
        (418, -1003, "Way too much request weight used; IP banned.", RateLimited, None),
        (429, -1015, "Too many new orders.", RateLimited, None),
        (503, -1007, "Timeout waiting for response from backend server.", OutcomeUnknown, None),
        (503, -1001, "Internal error; unable to process your request.", VenueUnavailable, None),
        (400, -1102, "Mandatory parameter 'side' was not sent.", InvalidRequest, None),
    ],
)
def test_spot_error_codes(
    status: int, code: int, msg: str, kind: type[VenueError], reason: RejectReason | None
) -> None:
    err = spot_error(status, {"code": code, "msg": msg})
    assert type(err) is kind, err
    assert err.code == code and err.venue == V
    if reason is not None:
        assert isinstance(err, OrderRejected)
        assert err.reason is reason and err.client_order_id == "b1-btc-9"
    if isinstance(err, RateLimited):
        assert err.retry_after_s == 3.0


def test_spot_and_usdm_read_the_same_code_their_own_way() -> None:
    body = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    usdm = parse.error_from_response(400, json.dumps(body).encode(), venue=V)
    assert isinstance(usdm, OrderRejected) and usdm.reason is RejectReason.VENUE_REFUSED
    assert spot_error(400, body).reason is RejectReason.INSUFFICIENT_BALANCE  # type: ignore[attr-defined]
    assert isinstance(spot_error(502, b"<html>bad gateway</html>"), OutcomeUnknown)


# --- the client, without a venue ---------------------------------------------------------------

SECRET = "s3cr3t-never-shown-0123456789abcdef"


def client(**kw: Any) -> BinanceSpotClient:
    return BinanceSpotClient(V, **(LOCAL | {"api_key": "key-abcdef", "secret": SECRET} | kw))


def test_client_is_a_venue_client_with_spot_capabilities() -> None:
    c = client()
    assert isinstance(c, VenueClient)
    caps = c.capabilities
    assert caps.instrument_kinds == frozenset({InstrumentKind.SPOT})
    assert caps.post_only and not caps.reduce_only and caps.batch_size == 1
    assert caps.client_ids == BINANCE_CLIENT_IDS
    assert caps.missing(kind=InstrumentKind.PERP, reduce_only=True) == [
        "perp instruments (it trades: spot)",
        "reduce-only orders",
    ]


@pytest.mark.parametrize(
    ("resp_type", "ack"),
    [("ACK", AckKind.ACCEPTED), ("RESULT", AckKind.RESULT), ("FULL", AckKind.RESULT)],
)
def test_the_answer_asked_for_decides_the_declared_ack(resp_type: str, ack: AckKind) -> None:
    c = client(resp_type=resp_type)
    assert c.ack_semantics is ack and c.capabilities.ack_semantics is ack
    receipt = client(resp_type=resp_type, ack_semantics=AckKind.RECEIPT)
    assert receipt.ack_semantics is (AckKind.RECEIPT if resp_type == "ACK" else AckKind.RESULT)
    with pytest.raises(ValueError, match="resp_type"):
        client(resp_type="NONE")


def test_client_repr_and_errors_do_not_show_the_secret() -> None:
    c = client()
    assert SECRET not in repr(c) and "key-abcdef" not in repr(c)
    assert SECRET not in repr(vars(c))
    with pytest.raises(TypeError):
        pickle.dumps(c._secret)
    with pytest.raises(AuthError):
        client(secret="")


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGATO_SPOT_KEY", "key-abcdef")
    monkeypatch.setenv("LEGATO_SPOT_SECRET", SECRET)
    monkeypatch.delenv("LEGATO_SPOT_MISSING", raising=False)
    c = BinanceSpotClient.from_env(
        V, LOCAL["rest_url"], LOCAL["ws_url"], "LEGATO_SPOT_KEY", "LEGATO_SPOT_SECRET"
    )
    assert isinstance(c, BinanceSpotClient) and c.venue == V
    with pytest.raises(AuthError) as info:
        BinanceSpotClient.from_env(
            V, LOCAL["rest_url"], LOCAL["ws_url"], "LEGATO_SPOT_KEY", "LEGATO_SPOT_MISSING"
        )
    assert "LEGATO_SPOT_MISSING" in str(info.value)
    assert SECRET not in str(info.value) and "key-abcdef" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("rest_url", "http://api.binance.com"),
        ("ws_url", "ws://stream.binance.com:9443"),
        ("market_ws_url", "ws://10.0.0.7:9443"),
        ("rest_url", "wss://api.binance.com"),
        ("rest_url", "https://user:pw@api.binance.com"),
    ],
)
def test_keys_travel_only_over_tls_to_a_real_host(field: str, url: str) -> None:
    with pytest.raises(ValueError, match=field) as info:
        client(**{field: url})
    assert "pw" not in str(info.value)


def test_tls_or_loopback_urls_are_accepted() -> None:
    for url in (
        "https://api.binance.com",
        "http://127.0.0.1:8080",
        "http://localhost",
        "http://[::1]:9",
    ):
        assert insecure_url(url) is None, url
    assert insecure_url("wss://stream.binance.com:9443", websocket=True) is None
    client(rest_url="https://api.binance.com", ws_url="wss://stream.binance.com:9443")


async def test_a_reduce_only_order_is_refused_before_anything_is_sent() -> None:
    c = client()  # nothing listens on port 1: a request would fail as unavailable
    try:
        with pytest.raises(OrderRejected) as info:
            await c.place(order(reduce_only=True))
        assert info.value.venue == V and info.value.reason is RejectReason.VENUE_REFUSED
        [answer] = await c.place_batch([order("b1-btc-2", reduce_only=True)])
        assert isinstance(answer, OrderRejected)
        assert await c.positions() == []
        assert c._rest.orders.unfinished == {}  # never watched: it never left
    finally:
        await c.close()


async def test_client_reads_user_events_into_reports() -> None:
    c = client()
    fill = er(
        "TRADE",
        "FILLED",
        lq="0.03000000",
        z="0.03000000",
        lp="60000.00000000",
        quote="1800.00000000",
        n="0.00003000",
        asset="BTC",
        t=5,
    )
    assert c._on_user_message(er("NEW", "NEW"))
    assert c._on_user_message(fill)
    assert c._on_user_message(fill)  # delivered twice: the fee counts once
    assert c._on_user_message(
        b'{"e":"outboundAccountPosition","E":1,"u":1,"B":[{"a":"BTC","f":"0.02997","l":"0"}]}'
    )
    assert not c._on_user_message(b'{"e":"listenKeyExpired","E":1,"listenKey":"k"}')
    assert c.stream_balances["BTC"].available == D("0.02997")
    stream = c.execution_reports()
    new, filled, again = [await anext(stream) for _ in range(3)]
    assert new.status is OrderStatus.NEW
    assert filled.status is OrderStatus.FILLED and filled.cum_fee == again.cum_fee == D("0.00003")
    assert filled.fee_asset == "BTC"
    await c.close()
    assert [r async for r in stream] == []


def test_wire_ignores_fields_binance_adds() -> None:
    raw = json.loads(QUERY)
    raw["someFieldAddedLater"] = {"nested": [1, 2]}
    r = spot_parse.order_report(spot_wire.ORDER.decode(json.dumps(raw)), V)
    assert r.client_order_id == "b1-eth-1"
    with pytest.raises(msgspec.ValidationError):
        spot_wire.ORDER.decode(b'{"symbol":"BTCUSDT"}')
