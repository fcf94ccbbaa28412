"""Binance USD-M futures wire schemas: the JSON it sends, and the signed requests it takes.

Field names follow the API reference (developers.binance.com, USDⓈ-M futures). Unknown
fields are ignored on purpose: Binance adds fields to responses without notice, and a
venue's new field must never stop legato from reading an order. Numbers that Binance sends
as strings decode straight into `Decimal`, so no float ever touches a price or quantity.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from urllib.parse import urlencode

import msgspec
from msgspec import field

# --- errors ---------------------------------------------------------------------------


class ErrorBody(msgspec.Struct, frozen=True):
    """`{"code": -1121, "msg": "Invalid symbol."}`; `code` 200 also answers cancel-all."""

    code: int
    msg: str = ""


# --- public market data ----------------------------------------------------------------


class ServerTime(msgspec.Struct, frozen=True, rename="camel"):
    server_time: int  # ms


class SymbolFilter(msgspec.Struct, frozen=True, rename="camel"):
    """One entry of a symbol's `filters`; which fields are set depends on `filterType`."""

    filter_type: str
    tick_size: Decimal | None = None  # PRICE_FILTER
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    step_size: Decimal | None = None  # LOT_SIZE, MARKET_LOT_SIZE
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    notional: Decimal | None = None  # MIN_NOTIONAL


class SymbolInfo(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str = ""
    contract_type: str = ""  # PERPETUAL, CURRENT_QUARTER, ...
    contract_size: Decimal | None = None  # not sent by USD-M (linear, size 1)
    filters: list[SymbolFilter] = []
    order_types: list[str] = []


class ExchangeInfo(msgspec.Struct, frozen=True, rename="camel"):
    symbols: list[SymbolInfo]
    server_time: int = 0


class Depth(msgspec.Struct, frozen=True):
    last_update_id: int = field(name="lastUpdateId", default=0)
    event_time: int = field(name="E", default=0)  # ms
    transaction_time: int = field(name="T", default=0)  # ms
    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []


# --- orders ----------------------------------------------------------------------------


class OrderResponse(msgspec.Struct, frozen=True, rename="camel"):
    """An order as POST/GET/DELETE /fapi/v1/order and /openOrders return it.

    The ACK and RESULT answers to a new order have the same shape; ACK is sent before the
    match, so its fill fields are still zero. `time` (creation) comes only with queries.
    """

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    status: str
    orig_qty: Decimal
    price: Decimal = Decimal(0)
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    time_in_force: str = "GTC"
    reduce_only: bool = False
    orig_type: str = ""
    position_side: str = "BOTH"
    update_time: int = 0  # ms
    time: int | None = None  # ms, creation


class UserTrade(msgspec.Struct, frozen=True, rename="camel"):
    """One fill of one of the account's orders (GET /fapi/v1/userTrades)."""

    symbol: str
    id: int
    order_id: int
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time: int  # ms
    realized_pnl: Decimal = Decimal(0)


# --- account ---------------------------------------------------------------------------


class AccountAsset(msgspec.Struct, frozen=True, rename="camel"):
    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
    unrealized_profit: Decimal = Decimal(0)
    margin_balance: Decimal = Decimal(0)
    update_time: int = 0


class AccountInfo(msgspec.Struct, frozen=True, rename="camel"):
    """GET /fapi/v2/account and /fapi/v3/account (single-asset mode figures are USDT)."""

    total_wallet_balance: Decimal
    total_unrealized_profit: Decimal
    total_position_initial_margin: Decimal
    total_open_order_initial_margin: Decimal
    available_balance: Decimal
    assets: list[AccountAsset] = []
    total_initial_margin: Decimal = Decimal(0)
    total_margin_balance: Decimal = Decimal(0)


class PositionRisk(msgspec.Struct, frozen=True, rename="camel"):
    """GET /fapi/v2/positionRisk (has `leverage`) or /fapi/v3 (has `initialMargin`)."""

    symbol: str
    position_amt: Decimal
    entry_price: Decimal
    mark_price: Decimal
    un_realized_profit: Decimal
    notional: Decimal = Decimal(0)
    leverage: Decimal | None = None  # v2
    initial_margin: Decimal | None = None  # v3
    position_initial_margin: Decimal | None = None  # v3
    position_side: str = "BOTH"
    margin_asset: str = "USDT"
    update_time: int = 0


class ListenKey(msgspec.Struct, frozen=True, rename="camel"):
    listen_key: str


# --- user data stream ------------------------------------------------------------------


class OrderUpdate(msgspec.Struct, frozen=True):
    """The `o` object of ORDER_TRADE_UPDATE."""

    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: Decimal = field(name="q")
    price: Decimal = field(name="p")
    avg_price: Decimal = field(name="ap")
    execution_type: str = field(name="x")  # NEW, TRADE, CANCELED, EXPIRED, AMENDMENT, ...
    status: str = field(name="X")
    order_id: int = field(name="i")
    last_qty: Decimal = field(name="l")
    cum_qty: Decimal = field(name="z")
    last_price: Decimal = field(name="L")
    trade_time: int = field(name="T")  # ms
    trade_id: int = field(name="t", default=0)
    commission_asset: str | None = field(name="N", default=None)  # only when charged
    commission: Decimal | None = field(name="n", default=None)
    maker: bool = field(name="m", default=False)
    reduce_only: bool = field(name="R", default=False)
    orig_type: str = field(name="ot", default="")
    position_side: str = field(name="ps", default="BOTH")
    realized_profit: Decimal = field(name="rp", default=Decimal(0))
    expiry_reason: str = field(name="er", default="0")


class OrderTradeUpdate(msgspec.Struct, frozen=True, tag_field="e", tag="ORDER_TRADE_UPDATE"):
    event_time: int = field(name="E")  # ms
    transaction_time: int = field(name="T")  # ms
    order: OrderUpdate = field(name="o")


class BalanceUpdate(msgspec.Struct, frozen=True):
    asset: str = field(name="a")
    wallet_balance: Decimal = field(name="wb")
    cross_wallet_balance: Decimal = field(name="cw", default=Decimal(0))
    balance_change: Decimal = field(name="bc", default=Decimal(0))


class PositionUpdate(msgspec.Struct, frozen=True):
    symbol: str = field(name="s")
    amount: Decimal = field(name="pa")
    entry_price: Decimal = field(name="ep")
    unrealized_pnl: Decimal = field(name="up", default=Decimal(0))
    position_side: str = field(name="ps", default="BOTH")


class AccountUpdateData(msgspec.Struct, frozen=True):
    reason: str = field(name="m", default="")
    balances: list[BalanceUpdate] = field(name="B", default_factory=list)
    positions: list[PositionUpdate] = field(name="P", default_factory=list)


class AccountUpdate(msgspec.Struct, frozen=True, tag_field="e", tag="ACCOUNT_UPDATE"):
    event_time: int = field(name="E")
    transaction_time: int = field(name="T", default=0)
    data: AccountUpdateData = field(name="a", default_factory=AccountUpdateData)


class ListenKeyExpired(msgspec.Struct, frozen=True, tag_field="e", tag="listenKeyExpired"):
    event_time: int = field(name="E")
    listen_key: str = field(name="listenKey", default="")


UserEvent = OrderTradeUpdate | AccountUpdate | ListenKeyExpired


class EventHead(msgspec.Struct, frozen=True):
    """Just the event type, to tell an event we do not read from a malformed one."""

    e: str = ""


# --- market streams --------------------------------------------------------------------


class BookTickerEvent(msgspec.Struct, frozen=True, tag_field="e", tag="bookTicker"):
    symbol: str = field(name="s")
    bid: Decimal = field(name="b")
    bid_qty: Decimal = field(name="B")
    ask: Decimal = field(name="a")
    ask_qty: Decimal = field(name="A")
    update_id: int = field(name="u", default=0)
    event_time: int = field(name="E", default=0)
    transaction_time: int = field(name="T", default=0)


class TradeEvent(msgspec.Struct, frozen=True, tag_field="e", tag="trade"):
    symbol: str = field(name="s")
    trade_id: int = field(name="t")
    price: Decimal = field(name="p")
    quantity: Decimal = field(name="q")
    buyer_is_maker: bool = field(name="m")
    trade_time: int = field(name="T", default=0)
    event_time: int = field(name="E", default=0)


class AggTradeEvent(msgspec.Struct, frozen=True, tag_field="e", tag="aggTrade"):
    symbol: str = field(name="s")
    agg_id: int = field(name="a")
    price: Decimal = field(name="p")
    quantity: Decimal = field(name="q")
    buyer_is_maker: bool = field(name="m")
    trade_time: int = field(name="T", default=0)
    event_time: int = field(name="E", default=0)


MarketPayload = BookTickerEvent | TradeEvent | AggTradeEvent


class StreamEnvelope(msgspec.Struct, frozen=True):
    """A combined-stream message: `{"stream": "btcusdt@bookTicker", "data": {...}}`."""

    stream: str
    data: MarketPayload


# --- decoders, built once --------------------------------------------------------------

ERROR = msgspec.json.Decoder(ErrorBody)
SERVER_TIME = msgspec.json.Decoder(ServerTime)
EXCHANGE_INFO = msgspec.json.Decoder(ExchangeInfo)
DEPTH = msgspec.json.Decoder(Depth)
ORDER = msgspec.json.Decoder(OrderResponse)
ORDERS = msgspec.json.Decoder(list[OrderResponse])
BATCH = msgspec.json.Decoder(list[msgspec.Raw])  # each item an order or an error
USER_TRADES = msgspec.json.Decoder(list[UserTrade])
ACCOUNT = msgspec.json.Decoder(AccountInfo)
POSITIONS = msgspec.json.Decoder(list[PositionRisk])
LISTEN_KEY = msgspec.json.Decoder(ListenKey)
USER_EVENT = msgspec.json.Decoder(UserEvent)
EVENT_HEAD = msgspec.json.Decoder(EventHead)
MARKET = msgspec.json.Decoder(StreamEnvelope)
ENCODER = msgspec.json.Encoder()


class _BatchHead(msgspec.Struct, frozen=True, rename="camel"):
    order_id: int | None = None
    code: int | None = None


_BATCH_HEAD = msgspec.json.Decoder(_BatchHead)


def batch_item(item: msgspec.Raw) -> OrderResponse | ErrorBody:
    """One entry of a /batchOrders answer: an order, or the error that refused it."""
    if _BATCH_HEAD.decode(item).order_id is not None:
        return ORDER.decode(item)
    return ERROR.decode(item)


# --- signed requests -------------------------------------------------------------------


def encode_params(params: dict[str, str]) -> str:
    """The query string (or form body) exactly as sent, in insertion order."""
    return urlencode(params)


def sign(secret: bytes, payload: str) -> str:
    """HMAC-SHA256 of `totalParams` (query string then body), hex, as Binance wants it."""
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
