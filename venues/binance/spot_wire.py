"""Binance spot wire schemas: the JSON /api/v3 and the spot user-data stream send.

Field names follow Binance's spot API reference (including its spelling
`cummulativeQuoteQty`). As for USD-M (`wire`), unknown fields are ignored on purpose and
numbers sent as strings decode straight into `Decimal`. The error body, the server time,
the depth and the listenKey answers have the same shape as USD-M's and are decoded by
`wire`'s decoders.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from msgspec import field

from venues.binance import wire

_ZERO = Decimal(0)

# --- reference data --------------------------------------------------------------------


class SymbolFilter(msgspec.Struct, frozen=True, rename="camel"):
    """One entry of a spot symbol's `filters`; which fields are set depends on `filterType`."""

    filter_type: str
    tick_size: Decimal | None = None  # PRICE_FILTER
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    step_size: Decimal | None = None  # LOT_SIZE, MARKET_LOT_SIZE
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None  # NOTIONAL, and the older MIN_NOTIONAL
    max_notional: Decimal | None = None  # NOTIONAL


class SymbolInfo(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    filters: list[SymbolFilter] = []
    order_types: list[str] = []
    is_spot_trading_allowed: bool = True


class ExchangeInfo(msgspec.Struct, frozen=True, rename="camel"):
    symbols: list[SymbolInfo]
    server_time: int = 0


class BookTicker(msgspec.Struct, frozen=True, rename="camel"):
    """GET /api/v3/ticker/bookTicker for one symbol (no timestamp: spot sends none)."""

    symbol: str
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal


# --- orders ----------------------------------------------------------------------------


class OrderAck(msgspec.Struct, frozen=True, rename="camel"):
    """The ACK answer to a new order: the venue took it, nothing more is said yet."""

    symbol: str
    order_id: int
    client_order_id: str
    transact_time: int  # ms
    order_list_id: int = -1


class AnswerFill(msgspec.Struct, frozen=True, rename="camel"):
    """One trade in the FULL answer to a new order (it matched on arrival: a taker)."""

    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int = -1


class Order(msgspec.Struct, frozen=True, rename="camel"):
    """An order as the RESULT and FULL answers to a new order, GET and DELETE /order,
    /openOrders and DELETE /openOrders state it.

    A cancel answer's `clientOrderId` is the cancel request's own id; the order's is then
    `origClientOrderId`. `transactTime` comes with new-order and cancel answers (the time
    of that request), `time` (creation) and `updateTime` with queries.
    """

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    status: str
    orig_qty: Decimal
    price: Decimal = _ZERO
    executed_qty: Decimal = _ZERO
    cummulative_quote_qty: Decimal = _ZERO
    time_in_force: str = "GTC"
    orig_client_order_id: str = ""
    transact_time: int | None = None  # ms
    time: int | None = None  # ms, creation
    update_time: int | None = None  # ms
    working_time: int | None = None  # ms; -1 while the order is not on the book
    fills: list[AnswerFill] = []  # FULL answers only


class OrderList(msgspec.Struct, frozen=True, rename="camel"):
    """An order list (OCO, OTO, ...) among DELETE /openOrders' answers: its orders' reports."""

    order_list_id: int
    order_reports: list[Order] = []


class MyTrade(msgspec.Struct, frozen=True, rename="camel"):
    """One fill of one of the account's orders (GET /api/v3/myTrades)."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int  # ms
    is_buyer: bool
    is_maker: bool
    quote_qty: Decimal = _ZERO


# --- account ---------------------------------------------------------------------------


class AssetBalance(msgspec.Struct, frozen=True):
    asset: str
    free: Decimal
    locked: Decimal


class Account(msgspec.Struct, frozen=True, rename="camel"):
    """GET /api/v3/account: every asset's free and locked amounts."""

    balances: list[AssetBalance]
    update_time: int = 0  # ms, the last change
    can_trade: bool = True
    account_type: str = "SPOT"


# --- user data stream ------------------------------------------------------------------


class ExecutionReportEvent(msgspec.Struct, frozen=True, tag_field="e", tag="executionReport"):
    """An order update. On a cancel, `c` is the cancel request's id and `C` the order's."""

    event_time: int = field(name="E")  # ms
    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: Decimal = field(name="q")
    price: Decimal = field(name="p")
    execution_type: str = field(name="x")  # NEW, TRADE, CANCELED, EXPIRED, REJECTED, ...
    status: str = field(name="X")
    order_id: int = field(name="i")
    last_qty: Decimal = field(name="l")
    cum_qty: Decimal = field(name="z")
    last_price: Decimal = field(name="L")
    transaction_time: int = field(name="T")  # ms
    orig_client_order_id: str = field(name="C", default="")
    reject_reason: str = field(name="r", default="NONE")
    commission: Decimal = field(name="n", default=_ZERO)
    commission_asset: str | None = field(name="N", default=None)  # only when charged
    trade_id: int = field(name="t", default=-1)
    on_book: bool = field(name="w", default=False)
    maker: bool = field(name="m", default=False)
    created: int = field(name="O", default=0)  # ms
    cum_quote: Decimal = field(name="Z", default=_ZERO)
    working_time: int | None = field(name="W", default=None)  # ms, once on the book


class AccountPositionBalance(msgspec.Struct, frozen=True):
    asset: str = field(name="a")
    free: Decimal = field(name="f")
    locked: Decimal = field(name="l")


class OutboundAccountPosition(
    msgspec.Struct, frozen=True, tag_field="e", tag="outboundAccountPosition"
):
    """The assets an event changed, with their new free and locked amounts."""

    event_time: int = field(name="E")  # ms
    last_update: int = field(name="u", default=0)  # ms
    balances: list[AccountPositionBalance] = field(name="B", default_factory=list)


class BalanceUpdate(msgspec.Struct, frozen=True, tag_field="e", tag="balanceUpdate"):
    """A deposit, withdrawal or transfer between wallets."""

    event_time: int = field(name="E")
    asset: str = field(name="a")
    delta: Decimal = field(name="d")
    clear_time: int = field(name="T", default=0)


class EventStreamTerminated(
    msgspec.Struct, frozen=True, tag_field="e", tag="eventStreamTerminated"
):
    event_time: int = field(name="E", default=0)


UserEvent = (
    ExecutionReportEvent
    | OutboundAccountPosition
    | BalanceUpdate
    | wire.ListenKeyExpired
    | EventStreamTerminated
)

# --- market streams --------------------------------------------------------------------


class BookTickerEvent(msgspec.Struct, frozen=True):
    """`<symbol>@bookTicker`: spot's carries neither an event type nor a time."""

    symbol: str = field(name="s")
    bid: Decimal = field(name="b")
    bid_qty: Decimal = field(name="B")
    ask: Decimal = field(name="a")
    ask_qty: Decimal = field(name="A")
    update_id: int = field(name="u", default=0)
    event_time: int = field(name="E", default=0)  # not sent by spot; kept if a server sends it
    transaction_time: int = field(name="T", default=0)


class TradeEvent(msgspec.Struct, frozen=True):
    """`<symbol>@trade`."""

    symbol: str = field(name="s")
    trade_id: int = field(name="t")
    price: Decimal = field(name="p")
    quantity: Decimal = field(name="q")
    buyer_is_maker: bool = field(name="m")
    trade_time: int = field(name="T", default=0)
    event_time: int = field(name="E", default=0)


class StreamEnvelope(msgspec.Struct, frozen=True):
    """A combined-stream message; `data` is read by the stream's name."""

    stream: str
    data: msgspec.Raw


# --- decoders, built once --------------------------------------------------------------

EXCHANGE_INFO = msgspec.json.Decoder(ExchangeInfo)
BOOK_TICKER = msgspec.json.Decoder(BookTicker)
ORDER_ACK = msgspec.json.Decoder(OrderAck)
ORDER = msgspec.json.Decoder(Order)
ORDERS = msgspec.json.Decoder(list[Order])
CANCELED = msgspec.json.Decoder(list[msgspec.Raw])  # each item an order or an order list
MY_TRADES = msgspec.json.Decoder(list[MyTrade])
ACCOUNT = msgspec.json.Decoder(Account)
USER_EVENT = msgspec.json.Decoder(UserEvent)
MARKET = msgspec.json.Decoder(StreamEnvelope)
MARKET_BOOK_TICKER = msgspec.json.Decoder(BookTickerEvent)
MARKET_TRADE = msgspec.json.Decoder(TradeEvent)
_ORDER_LIST = msgspec.json.Decoder(OrderList)


class _CanceledHead(msgspec.Struct, frozen=True, rename="camel"):
    order_reports: list[msgspec.Raw] | None = None


_CANCELED_HEAD = msgspec.json.Decoder(_CanceledHead)


def canceled_orders(item: msgspec.Raw) -> list[Order]:
    """One entry of DELETE /openOrders' answer: a canceled order, or an order list's."""
    if _CANCELED_HEAD.decode(item).order_reports is not None:
        return _ORDER_LIST.decode(item).order_reports
    return [ORDER.decode(item)]
