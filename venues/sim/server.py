"""One simulated venue served as the Binance USD-M futures API (REST, user and market streams).

`BinanceServer` puts a `SimVenue` behind aiohttp on 127.0.0.1: the public and signed REST
endpoints, the listenKey user-data stream and the `bookTicker`/`trade`/`aggTrade` market
streams, HMAC-SHA256 signatures and Binance's error codes, close enough that a stock client of
that API works once its base URLs point here. Every request goes through the venue, so the
venue profile applies: latency, acknowledgement semantics, stream lag, outages (HTTP 503, or
connections refused), injected rejects and lost answers (-1007). `/_sim/` (not Binance) tells
tests and TCA the venue-side times of each order and injects faults; it answers on loopback
to known API keys only. Secrets and signatures are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl

import msgspec
from aiohttp import WSMsgType, web

from venues.config import ApiCredential, profile_from
from venues.errors import OrderRejected, RateLimited, UnknownOrder, VenueError, VenueUnavailable
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookTicker,
    ExecutionReport,
    Instrument,
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
from venues.sim.exchange import CLIENT_ORDER_ID, MARGIN_ASSET, SimExchange, UserTrade
from venues.sim.host import SimVenue, StreamClosed, accepted_view

log = logging.getLogger(__name__)
T = TypeVar("T")

NS_PER_MS = 1_000_000
DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
MAX_BATCH = 5
# Stream messages rendered and encoded once for every connection that carries them: an
# account's order report goes to every client of the account (every leg on the venue), a
# book ticker to every client following the symbol. Bounded: the oldest are forgotten.
_RENDERED_MAX = 4096
MAX_PARAMS = 64
MAX_LEVERAGE = 125
MAX_PRICE = Decimal(1_000_000_000)
_REFUSE_DELAY_NS = 20_000_000
_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")  # Binance's legal range for decimals
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_EIGHT = Decimal("1e-8")
_ZERO = Decimal(0)
_TIF_IN = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.POST_ONLY,
}
_TIF_OUT = {v: k for k, v in _TIF_IN.items()}
_ALGO_TYPES = {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
# Order parameters Binance knows that the simulator does not implement: sending one is an error
# (-1106) rather than silently trading something else. `workingType`, `priceProtect` and
# `selfTradePreventionMode` only matter for the order types refused above, or name the one
# self-trade rule the simulator has (expire the taker), so they are read and ignored.
_UNSUPPORTED = ("stopPrice", "closePosition", "activationPrice", "callbackRate", "goodTillDate")
_IGNORED = ("workingType", "priceProtect", "selfTradePreventionMode", "priceMatch")
_ORDER_PARAMS = {
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "price",
    "newClientOrderId",
    "reduceOnly",
    "positionSide",
    "newOrderRespType",
    *_UNSUPPORTED,
    *_IGNORED,
}
_STREAM_KINDS = ("bookTicker", "trade", "aggTrade")
RespType = Literal["ACK", "RESULT"]


# --- errors ----------------------------------------------------------------------------
class BinanceError(Exception):
    """An answer in Binance's error shape: an HTTP status and a `{"code", "msg"}` body."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}

    def response(self) -> web.Response:
        return _json(self.body(), status=self.status, headers=self.headers)


def _missing(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def _invalid(name: str, detail: str = "") -> BinanceError:
    extra = f" ({detail})" if detail else ""
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.{extra}")


def _bad_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def _unavailable() -> BinanceError:
    return BinanceError(
        -1001, "Internal error; unable to process your request. Please try again.", 503
    )


def _outcome_unknown() -> BinanceError:
    return BinanceError(
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
        503,
    )


def _rate_limited(e: RateLimited, limit: int) -> BinanceError:
    retry = max(1, math.ceil(e.retry_after_s or 1))
    return BinanceError(
        -1015,
        f"Too many new orders; current limit is {limit} orders per MINUTE.",
        429,
        {"Retry-After": str(retry)},
    )


# Every reason the exchange refuses an order, as Binance's code and message. INVALID_PRICE is
# decided by `reject_error` from the order: a limit price outside the band around the mark is
# Binance's PERCENT_PRICE pair -4016/-4024; a market order with no book to price it is -1112.
REJECT_CODES: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    RejectReason.INVALID_QUANTITY: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.INVALID_PRICE: (-4016, "Price is higher than mark price multiplier cap."),
    RejectReason.PRICE_OFF_TICK: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.QTY_OFF_LOT: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.BELOW_MIN_NOTIONAL: (
        -4164,
        "Order's notional must be no smaller than {min_notional} (unless you choose reduce only).",
    ),
    RejectReason.INSUFFICIENT_MARGIN: (-2019, "Margin is insufficient."),
    RejectReason.POST_ONLY_WOULD_CROSS: (
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    RejectReason.FOK_NOT_FILLABLE: (
        -5021,
        "Due to the order could not be filled immediately, the FOK order has been rejected.",
    ),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
    RejectReason.INVALID_CLIENT_ORDER_ID: (-4015, "Client order id is not valid."),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: (-2022, "ReduceOnly Order is rejected."),
    RejectReason.UNKNOWN_ACCOUNT: (-2015, "Invalid API-key, IP, or permissions for action."),
    RejectReason.VENUE_REFUSED: (-2010, "NEW_ORDER_REJECTED"),
    RejectReason.INJECTED: (-2010, "NEW_ORDER_REJECTED"),
}


def reject_error(
    e: OrderRejected,
    order: NewOrder | None = None,
    inst: Instrument | None = None,
    mark: Decimal | None = None,
) -> BinanceError:
    """The Binance error for an exchange refusal; the exchange's explanation follows in ()."""
    code, msg = REJECT_CODES[e.reason]
    if e.reason is RejectReason.INVALID_PRICE and order is not None:
        if order.price is None:
            code, msg = -1112, "No orders on book for symbol."
        elif mark is not None and order.price < mark:
            code, msg = -4024, "Price is lower than mark price multiplier floor."
    if "{min_notional}" in msg:
        msg = msg.format(min_notional=_num(inst.min_notional) if inst else "the minimum")
    status = 401 if code == -2015 else 400
    return BinanceError(code, f"{msg} ({e.message})" if e.message else msg, status)


# --- wire formats ----------------------------------------------------------------------
def _json(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _ms(ns: int | None) -> int:
    return (ns or 0) // NS_PER_MS


def _num(x: Decimal | int) -> str:
    """A decimal as Binance prints it: plain notation, at most 8 decimals."""
    x = Decimal(x)
    if x.as_tuple().exponent < -8:  # type: ignore[operator]
        x = x.quantize(_EIGHT)
    return format(x.normalize() if x else _ZERO, "f")


def _fixed(x: Decimal | None, step: Decimal) -> str:
    """A price or quantity with as many decimals as the instrument's tick or lot."""
    if x is None:
        return "0"
    return format(x.quantize(step.normalize()) if _decimals(step) else x, "f")


def _decimals(x: Decimal) -> int:
    exponent = x.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def exchange_info(venue: SimVenue, now_ns: int) -> dict[str, Any]:
    """`GET /fapi/v1/exchangeInfo` for the venue's instruments."""
    band = venue.exchange.price_band
    symbols = []
    for inst in venue.exchange.instruments.values():
        entry: dict[str, Any] = {"symbol": inst.symbol, "pair": inst.symbol}
        if inst.kind is InstrumentKind.PERP:
            entry |= {"contractType": "PERPETUAL", "deliveryDate": 4133404800000}
        entry |= {
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": inst.base,
            "quoteAsset": inst.quote,
            "marginAsset": MARGIN_ASSET,
            "pricePrecision": _decimals(inst.tick),
            "quantityPrecision": _decimals(inst.lot),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN" if inst.kind is InstrumentKind.PERP else "SPOT",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": _num(band),
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _num(inst.tick),
                    "maxPrice": _num(MAX_PRICE),
                    "tickSize": _num(inst.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _num(inst.lot),
                    "maxQty": _num(inst.max_qty),
                    "stepSize": _num(inst.lot),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": _num(inst.lot),
                    "maxQty": _num(inst.max_qty),
                    "stepSize": _num(inst.lot),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": _num(inst.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": f"{1 + band:.4f}",
                    "multiplierDown": f"{1 - band:.4f}",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        symbols.append(entry)
    return {
        "timezone": "UTC",
        "serverTime": _ms(now_ns),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": venue.profile.orders_per_minute,
            },
        ],
        "exchangeFilters": [],
        "assets": [{"asset": MARGIN_ASSET, "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def order_json(r: ExecutionReport, inst: Instrument, *, query: bool = False) -> dict[str, Any]:
    """An order as Binance answers a new order, a cancel (`query=False`) or a query."""
    cum = r.cum_filled
    avg = r.avg_price or _ZERO
    out: dict[str, Any] = {
        "orderId": r.order_id,
        "symbol": r.symbol,
        "status": r.status.value,
        "clientOrderId": r.client_order_id,
        "price": _fixed(r.price, inst.tick),
        "avgPrice": _num(avg),
        "origQty": _fixed(r.quantity, inst.lot),
        "executedQty": _fixed(cum, inst.lot),
        "cumQty": _fixed(cum, inst.lot),
        "cumQuote": _num(avg * cum * inst.contract_size),
        "timeInForce": _TIF_OUT[r.time_in_force],
        "type": r.order_type.value,
        "reduceOnly": r.reduce_only,
        "closePosition": False,
        "side": r.side.value,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": r.order_type.value,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_TAKER",
        "goodTillDate": 0,
        "updateTime": _ms(r.venue_ts_ns),
    }
    if query:
        out["time"] = _ms(r.venue_receive_ns or r.venue_ts_ns)
    return out


def order_update(r: ExecutionReport, inst: Instrument, now_ns: int) -> dict[str, Any]:
    """An `ORDER_TRADE_UPDATE` user-stream event."""
    f = r.last_fill
    if f is not None:
        execution = "TRADE"
    elif r.status in (OrderStatus.NEW, OrderStatus.PENDING_NEW):
        execution = "NEW"
    else:
        execution = r.status.value  # CANCELED, EXPIRED, REJECTED (the last is not Binance's)
    o: dict[str, Any] = {
        "s": r.symbol,
        "c": r.client_order_id,
        "S": r.side.value,
        "o": r.order_type.value,
        "f": _TIF_OUT[r.time_in_force],
        "q": _fixed(r.quantity, inst.lot),
        "p": _fixed(r.price, inst.tick),
        "ap": _num(r.avg_price or _ZERO),
        "sp": "0",
        "x": execution,
        "X": r.status.value,
        "i": r.order_id,
        "l": _fixed(f.quantity if f else _ZERO, inst.lot),
        "z": _fixed(r.cum_filled, inst.lot),
        "L": _fixed(f.price, inst.tick) if f else "0",
        "T": _ms(f.ts_ns if f else r.venue_ts_ns),
        "t": f.trade_id if f else 0,
        "b": "0",
        "a": "0",
        "m": f is not None and f.liquidity is Liquidity.MAKER,
        "R": r.reduce_only,
        "wt": "CONTRACT_PRICE",
        "ot": r.order_type.value,
        "ps": "BOTH",
        "cp": False,
        "rp": "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_TAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if f is not None:
        o["N"] = f.fee_asset
        o["n"] = _num(f.fee)
    return {"e": "ORDER_TRADE_UPDATE", "E": _ms(now_ns), "T": o["T"], "o": o}


def account_update(
    snap: AccountSnapshot, symbol: str, trade_ns: int, now_ns: int
) -> dict[str, Any]:
    """An `ACCOUNT_UPDATE` user-stream event after a fill in `symbol` (reason ORDER)."""
    positions = [
        {
            "s": p.symbol,
            "pa": _num(p.quantity),
            "ep": _num(p.entry_price),
            "bep": _num(p.entry_price),
            "cr": "0",
            "up": _num(p.unrealized_pnl),
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
        }
        for p in snap.positions
        if p.symbol == symbol
    ]
    balances = [
        {"a": b.asset, "wb": _num(b.wallet), "cw": _num(b.wallet), "bc": "0"} for b in snap.balances
    ]
    return {
        "e": "ACCOUNT_UPDATE",
        "E": _ms(now_ns),
        "T": _ms(trade_ns),
        "a": {"m": "ORDER", "B": balances, "P": positions},
    }


def book_ticker_event(
    t: BookTicker, inst: Instrument, update_id: int, now_ns: int
) -> dict[str, Any]:
    return {
        "e": "bookTicker",
        "u": update_id,
        "s": t.symbol,
        "b": _fixed(t.bid, inst.tick),
        "B": _fixed(t.bid_qty, inst.lot),
        "a": _fixed(t.ask, inst.tick),
        "A": _fixed(t.ask_qty, inst.lot),
        "T": _ms(t.ts_ns),
        "E": _ms(now_ns),
    }


def trade_event(
    t: MarketTrade, inst: Instrument, now_ns: int, *, aggregate: bool = False
) -> dict[str, Any]:
    common = {
        "E": _ms(now_ns),
        "T": _ms(t.ts_ns),
        "s": t.symbol,
        "p": _fixed(t.price, inst.tick),
        "q": _fixed(t.quantity, inst.lot),
        "m": t.aggressor is Side.SELL,  # the buyer was the maker: the taker sold
    }
    if aggregate:
        return {"e": "aggTrade", "a": t.trade_id, "f": t.trade_id, "l": t.trade_id} | common
    return {"e": "trade", "t": t.trade_id, "X": "MARKET"} | common


def user_trade_json(t: UserTrade, inst: Instrument) -> dict[str, Any]:
    f = t.fill
    return {
        "buyer": t.side is Side.BUY,
        "commission": _num(f.fee),
        "commissionAsset": f.fee_asset,
        "id": f.trade_id,
        "maker": f.liquidity is Liquidity.MAKER,
        "orderId": t.order_id,
        "price": _fixed(f.price, inst.tick),
        "qty": _fixed(f.quantity, inst.lot),
        "quoteQty": _num(f.price * f.quantity * inst.contract_size),
        "realizedPnl": "0",  # the simulator books realised P&L per position, not per fill
        "side": t.side.value,
        "positionSide": "BOTH",
        "symbol": t.symbol,
        "time": _ms(f.ts_ns),
    }


# --- parameters ------------------------------------------------------------------------
class Params:
    """A request's parameters with Binance's checks: each getter raises `BinanceError`."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self.items = dict(items)

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.items.get(name)
        if value is None or value == "":
            if required:
                raise _missing(name)
            if value == "":
                raise BinanceError(-1105, f"Parameter '{name}' was empty.")
            return None
        return value

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _DECIMAL.match(value):
            raise _illegal(name, r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
        return Decimal(value)

    def integer(
        self, name: str, *, required: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _INTEGER.match(value) or not -(2**63) <= int(value) < 2**63:
            raise _illegal(name, "^-?[0-9]{1,19}$")
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _invalid(name, f"expected {low}-{high}, got {number}")
        return number

    def choice(
        self, name: str, choices: Mapping[str, T], error: BinanceError, *, required: bool = False
    ) -> T | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if value not in choices:
            raise error
        return choices[value]

    def boolean(self, name: str) -> bool:
        value = self.text(name)
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            raise _invalid(name, "expected true or false")
        return value.lower() == "true"


def _pairs(raw: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except ValueError:
        raise BinanceError(-1101, f"Too many parameters sent for this endpoint ({what}).") from None


def _merge(query: list[tuple[str, str]], body: list[tuple[str, str]]) -> dict[str, str]:
    """Query and body parameters; a name sent in both takes the query's value (Binance)."""
    out: dict[str, str] = {}
    for source in (body, query):
        seen: set[str] = set()
        for k, v in source:
            if k in seen:
                raise BinanceError(-1101, "Duplicate values for a parameter detected.")
            seen.add(k)
            out[k] = v
    return out


def _without_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if not p.startswith("signature="))


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature (lowercase hex) of `payload` (query + body)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class _OrderSpec:
    order: NewOrder
    inst: Instrument
    resp: RespType


# --- the gateway -----------------------------------------------------------------------
@dataclass
class Gateway:
    """What the handlers share: the venue, the keys, the listen keys and the open sockets."""

    venue: SimVenue
    credentials: dict[str, ApiCredential]
    listen_keys: dict[str, str] = field(default_factory=dict)  # listen key -> account
    key_of: dict[str, str] = field(default_factory=dict)  # account -> listen key
    sockets: dict[web.WebSocketResponse, str | None] = field(default_factory=dict)
    # (id of the item, the stream's rendering, combined) -> (the item, its encoded messages)
    rendered: OrderedDict[tuple[int, Any, bool], tuple[object, list[str]]] = field(
        default_factory=OrderedDict
    )

    @property
    def exchange(self) -> SimExchange:
        return self.venue.exchange

    def messages(self, item: object, source: Source, combined: bool) -> list[str]:
        """The stream messages of `item` as `source` renders them, encoded: computed for
        the first connection that sends them, reused by the others (the same item object
        goes to every subscriber; the entry keeps it alive, so its id is not reused)."""
        key = (id(item), source.style, combined)
        hit = self.rendered.get(key)
        if hit is not None and hit[0] is item:
            return hit[1]
        texts = [
            msgspec.json.encode(
                {"stream": stream, "data": payload} if combined else payload
            ).decode()
            for stream, payload in source.render(item, self.venue.now_ns())
        ]
        self.rendered[key] = (item, texts)
        if len(self.rendered) > _RENDERED_MAX:
            self.rendered.popitem(last=False)
        return texts

    # --- authentication ----------------------------------------------------------------
    def credential(self, request: web.Request) -> ApiCredential:
        key = request.headers.get("X-MBX-APIKEY", "")
        cred = self.credentials.get(key)
        if cred is None:
            raise _bad_key()
        return cred

    async def signed(self, request: web.Request) -> tuple[ApiCredential, Params]:
        """Check the API key, timestamp, recvWindow and HMAC signature; the parameters."""
        cred = self.credential(request)
        raw_query = request.raw_path.partition("?")[2]
        raw_body = ""
        if request.method != "GET" and request.can_read_body:
            try:
                raw_body = (await request.read()).decode()
            except UnicodeDecodeError:
                raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
        params = Params(_merge(_pairs(raw_query, "query"), _pairs(raw_body, "body")))
        signature = params.text("signature", required=True)
        timestamp = params.integer("timestamp", required=True)
        window = params.integer("recvWindow") or DEFAULT_RECV_WINDOW_MS
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise _invalid("recvWindow", f"at most {MAX_RECV_WINDOW_MS} ms")
        now_ms = _ms(self.venue.now_ns())
        assert timestamp is not None and signature is not None
        if timestamp >= now_ms + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now_ms - timestamp > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        expected = sign(cred.secret, _without_signature(raw_query) + _without_signature(raw_body))
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        for name in ("signature", "timestamp", "recvWindow"):
            params.items.pop(name, None)
        return cred, params

    def instrument(self, symbol: str | None) -> Instrument:
        if symbol is None:
            raise _missing("symbol")
        inst = self.exchange.instruments.get(symbol)
        if inst is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return inst

    def optional_symbol(self, params: Params) -> str | None:
        """The request's `symbol` if it names one (checked: -1121 if unknown), else None."""
        symbol = params.text("symbol")
        if symbol is not None:
            self.instrument(symbol)
        return symbol

    # --- venue calls -------------------------------------------------------------------
    async def call(self, fn: Callable[[int], T]) -> T:
        """A non-order request through the venue profile (latency, outages)."""
        return await self.venue.call(fn)

    def lookup(
        self, account: str, inst: Instrument, params: Params
    ) -> Callable[[int], ExecutionReport]:
        """A venue call that finds the order named by orderId or origClientOrderId."""
        order_id = params.integer("orderId")
        coid = params.text("origClientOrderId")
        if order_id is None and coid is None:
            raise BinanceError(
                -1102,
                "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
            )

        def find(now: int) -> ExecutionReport:
            if order_id is not None:
                r = self.exchange.query_by_id(account, inst.symbol, order_id)
                if coid is not None and r.client_order_id != coid:
                    raise UnknownOrder("orderId and origClientOrderId name different orders")
                return r
            assert coid is not None
            return self.exchange.query(account, inst.symbol, coid)

        return find

    # --- orders ------------------------------------------------------------------------
    def order_spec(self, p: Params) -> _OrderSpec:
        """A `NewOrder` from Binance order parameters, checked as Binance checks them."""
        unknown = sorted(set(p.items) - _ORDER_PARAMS)
        if unknown:
            raise BinanceError(
                -1104,
                f"Not all sent parameters were read; read '{len(p.items) - len(unknown)}' "
                f"parameter(s) but was sent '{len(p.items)}'.",
            )
        inst = self.instrument(p.text("symbol", required=True))
        side = p.choice(
            "side",
            {"BUY": Side.BUY, "SELL": Side.SELL},
            BinanceError(-1117, "Invalid side."),
            required=True,
        )
        kind = p.text("type", required=True)
        if kind in _ALGO_TYPES:
            raise BinanceError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        order_type = OrderType(kind)
        for name in _UNSUPPORTED:
            if name in p and not (name == "closePosition" and p.text(name) == "false"):
                raise BinanceError(-1106, f"Parameter '{name}' sent when not required.")
        tif_error = BinanceError(-1115, "Invalid timeInForce.")
        if order_type is OrderType.LIMIT:
            tif = p.choice("timeInForce", _TIF_IN, tif_error, required=True)
            price = p.decimal("price", required=True)
        else:
            # A market order's timeInForce means nothing: clients that send GTC are let be.
            p.choice("timeInForce", _TIF_IN, tif_error)
            tif = TimeInForce.GTC
            if "price" in p:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            price = None
        quantity = p.decimal("quantity", required=True)
        assert quantity is not None and tif is not None and side is not None
        precision = BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if _decimals(quantity) > _decimals(inst.lot):
            raise precision
        if quantity <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")
        if price is not None:
            if _decimals(price) > _decimals(inst.tick):
                raise precision
            if price <= 0:
                raise BinanceError(-4001, "Price less than 0.")
            if price > MAX_PRICE:
                raise BinanceError(-4002, "Price greater than max price.")
        coid = p.text("newClientOrderId") or secrets.token_urlsafe(16)
        if not CLIENT_ORDER_ID.match(coid):
            raise BinanceError(
                -4015, "Client order id is not valid. (1-36 characters of [.A-Z:/a-z0-9_-])"
            )
        position_side = p.text("positionSide") or "BOTH"
        if position_side in ("LONG", "SHORT"):
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        if position_side != "BOTH":
            raise BinanceError(-4060, "Invalid position side.")
        resp_types: dict[str, RespType] = {"ACK": "ACK", "RESULT": "RESULT"}
        resp_error = BinanceError(-1136, "Invalid newOrderRespType.")
        resp = p.choice("newOrderRespType", resp_types, resp_error) or "ACK"
        order = NewOrder(
            client_order_id=coid,
            symbol=inst.symbol,
            side=side,
            type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=tif,
            reduce_only=p.boolean("reduceOnly"),
        )
        return _OrderSpec(order, inst, resp)

    def answer(self, spec: _OrderSpec, r: ExecutionReport) -> dict[str, Any]:
        """The HTTP answer to a placed order, as its ack kind and newOrderRespType allow.

        A RESULT venue answers RESULT requests with the order after matching, and ACK
        requests with the order as accepted; an ACCEPTED venue answers NEW either way (the
        match is not known yet); a RECEIPT venue answers PENDING_NEW with orderId 0.
        """
        if r.ack_kind is AckKind.UNKNOWN:
            raise _outcome_unknown()
        if r.ack_kind is AckKind.RESULT and spec.resp == "ACK":
            r = accepted_view(r)
        return order_json(r, spec.inst)

    def rejected(self, e: OrderRejected, spec: _OrderSpec) -> BinanceError:
        mark = None
        if e.reason is RejectReason.INVALID_PRICE:
            mark = self.exchange.mark_price(spec.inst.symbol)
        return reject_error(e, spec.order, spec.inst, mark)

    # --- streams -----------------------------------------------------------------------
    def listen_key(self, account: str) -> str:
        key = self.key_of.get(account)
        if key is None:
            key = secrets.token_hex(32)
            self.key_of[account] = key
            self.listen_keys[key] = account
        return key

    async def drop_listen_key(self, account: str) -> None:
        key = self.key_of.pop(account, None)
        if key is None:
            return
        self.listen_keys.pop(key, None)
        for ws, owner in list(self.sockets.items()):
            if owner == key:
                await ws.close(code=1000, message=b"listenKey closed")

    async def close_sockets(self, code: int, why: str) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=code, message=why.encode())


GATEWAY = web.AppKey("gateway", Gateway)


# --- public endpoints ------------------------------------------------------------------
async def ping(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    await gw.call(lambda now: None)
    return _json({})


async def server_time(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    now = await gw.call(lambda now: now)
    return _json({"serverTime": _ms(now)})


async def get_exchange_info(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return _json(await gw.call(lambda now: exchange_info(gw.venue, now)))


async def depth(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    inst = gw.instrument(p.text("symbol", required=True))
    limit = p.integer("limit")
    limit = 500 if limit is None else limit
    if not 1 <= limit <= 1000:
        raise BinanceError(-4021, f"'{limit}' is not valid depth limit.")
    snap = await gw.call(lambda now: gw.exchange.book_snapshot(inst.symbol, limit, now))
    return _json(
        {
            "lastUpdateId": gw.exchange.updates_applied,
            "E": _ms(gw.venue.now_ns()),
            "T": _ms(snap.ts_ns),
            "bids": [[_fixed(px, inst.tick), _fixed(q, inst.lot)] for px, q in snap.bids],
            "asks": [[_fixed(px, inst.tick), _fixed(q, inst.lot)] for px, q in snap.asks],
        }
    )


# --- orders ----------------------------------------------------------------------------
async def new_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    spec = gw.order_spec(p)
    try:
        report = await gw.venue.submit(cred.account_id, spec.order)
    except OrderRejected as e:
        raise gw.rejected(e, spec) from None
    except RateLimited as e:
        raise _rate_limited(e, gw.venue.profile.orders_per_minute) from None
    return _json(gw.answer(spec, report))


async def batch_orders(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    raw = p.text("batchOrders", required=True)
    assert raw is not None
    try:
        items = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise _invalid("batchOrders", "not a JSON list of order objects") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid("batchOrders", "not a JSON list of order objects")
    if not 1 <= len(items) <= MAX_BATCH:
        raise BinanceError(-4082, f"Invalid number of batch place orders: {len(items)}")
    specs: list[_OrderSpec | BinanceError] = []
    for item in items:
        try:
            specs.append(gw.order_spec(Params(_stringify(item))))
        except BinanceError as e:
            specs.append(e)
    valid = [s for s in specs if isinstance(s, _OrderSpec)]
    results = iter(
        await gw.venue.submit_batch(cred.account_id, [s.order for s in valid]) if valid else []
    )
    out: list[dict[str, Any]] = []
    for spec in specs:
        if isinstance(spec, BinanceError):
            out.append(spec.body())
            continue
        result = next(results)
        try:
            if isinstance(result, OrderRejected):
                raise gw.rejected(result, spec)
            if isinstance(result, RateLimited):
                raise _rate_limited(result, gw.venue.profile.orders_per_minute)
            if isinstance(result, VenueError):
                raise _unavailable()
            out.append(gw.answer(spec, result))
        except BinanceError as e:
            out.append(e.body())
    return _json(out)


def _stringify(item: Mapping[str, Any]) -> dict[str, str]:
    """A batch item's values as the strings a form would carry (JSON numbers, bools too)."""
    out: dict[str, str] = {}
    for k, v in item.items():
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[str(k)] = str(v)
        elif v is not None:
            raise _invalid(str(k), "expected a string or a number")
    return out


async def query_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    find = gw.lookup(cred.account_id, inst, p)
    try:
        report = await gw.call(find)
    except UnknownOrder:
        raise BinanceError(-2013, "Order does not exist.") from None
    return _json(order_json(report, inst, query=True))


async def cancel_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    find = gw.lookup(cred.account_id, inst, p)

    def cancel(now: int) -> ExecutionReport:
        r = find(now)
        return gw.exchange.cancel(cred.account_id, inst.symbol, r.client_order_id, now)

    try:
        report = await gw.call(cancel)
    except UnknownOrder:
        raise BinanceError(-2011, "Unknown order sent.") from None
    return _json(order_json(report, inst))


async def open_orders(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    reports = await gw.call(lambda now: gw.exchange.open_orders(cred.account_id, symbol))
    insts = gw.exchange.instruments
    return _json([order_json(r, insts[r.symbol], query=True) for r in reports])


async def cancel_all(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    await gw.call(lambda now: gw.exchange.cancel_all(cred.account_id, inst.symbol, now))
    return _json({"code": 200, "msg": "The operation of cancel all open order is done."})


async def user_trades(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    order_id = p.integer("orderId")
    start = p.integer("startTime")
    end = p.integer("endTime")
    from_id = p.integer("fromId")
    limit = p.integer("limit", low=1, high=1000) or 500
    trades = await gw.call(lambda now: gw.exchange.user_trades(cred.account_id, inst.symbol))
    picked = [
        t
        for t in trades
        if (order_id is None or t.order_id == order_id)
        and (start is None or _ms(t.fill.ts_ns) >= start)
        and (end is None or _ms(t.fill.ts_ns) <= end)
        and (from_id is None or t.fill.trade_id >= from_id)
    ]
    picked = picked[:limit] if from_id is not None else picked[-limit:]
    return _json([user_trade_json(t, inst) for t in picked])


# --- account ---------------------------------------------------------------------------
async def _account_state(gw: Gateway, account: str) -> tuple[AccountSnapshot, set[str]]:
    def read(now: int) -> tuple[AccountSnapshot, set[str]]:
        snap = gw.exchange.account_snapshot(account, now)
        return snap, {r.symbol for r in gw.exchange.open_orders(account)}

    return await gw.call(read)


def _assets(snap: AccountSnapshot) -> list[dict[str, Any]]:
    out = []
    for b in snap.balances:
        margin = b.asset == snap.margin_asset
        upnl = snap.unrealized_pnl if margin else _ZERO
        pim = snap.position_initial_margin if margin else _ZERO
        oim = snap.open_order_initial_margin if margin else _ZERO
        out.append(
            {
                "asset": b.asset,
                "walletBalance": _num(b.wallet),
                "unrealizedProfit": _num(upnl),
                "marginBalance": _num(b.wallet + upnl),
                "maintMargin": "0",
                "initialMargin": _num(pim + oim),
                "positionInitialMargin": _num(pim),
                "openOrderInitialMargin": _num(oim),
                "crossWalletBalance": _num(b.wallet),
                "crossUnPnl": _num(upnl),
                "availableBalance": _num(b.available),
                "maxWithdrawAmount": _num(max(b.available, _ZERO)),
                "marginAvailable": margin,
                "updateTime": _ms(snap.ts_ns),
            }
        )
    return out


def _totals(snap: AccountSnapshot) -> dict[str, Any]:
    return {
        "totalInitialMargin": _num(snap.position_initial_margin + snap.open_order_initial_margin),
        "totalMaintMargin": "0",
        "totalWalletBalance": _num(snap.wallet_balance),
        "totalUnrealizedProfit": _num(snap.unrealized_pnl),
        "totalMarginBalance": _num(snap.wallet_balance + snap.unrealized_pnl),
        "totalPositionInitialMargin": _num(snap.position_initial_margin),
        "totalOpenOrderInitialMargin": _num(snap.open_order_initial_margin),
        "totalCrossWalletBalance": _num(snap.wallet_balance),
        "totalCrossUnPnl": _num(snap.unrealized_pnl),
        "availableBalance": _num(snap.available_margin),
        "maxWithdrawAmount": _num(max(snap.available_margin, _ZERO)),
    }


def _position_rows(
    gw: Gateway, snap: AccountSnapshot, symbol: str | None
) -> Iterator[tuple[Instrument, Any]]:
    held = {p.symbol: p for p in snap.positions}
    for inst in gw.exchange.instruments.values():
        if symbol is None or inst.symbol == symbol:
            yield inst, held.get(inst.symbol)


def _leverage(gw: Gateway, account: str) -> int:
    # SimExchange has no public accessor for an account's leverage yet.
    return gw.exchange.leverage(account)


async def account_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    lev = _leverage(gw, cred.account_id)
    positions = []
    for inst, p in _position_rows(gw, snap, None):
        positions.append(
            {
                "symbol": inst.symbol,
                "initialMargin": _num(p.initial_margin if p else _ZERO),
                "maintMargin": "0",
                "unrealizedProfit": _num(p.unrealized_pnl if p else _ZERO),
                "positionInitialMargin": _num(p.initial_margin if p else _ZERO),
                "openOrderInitialMargin": "0",
                "leverage": str(lev),
                "isolated": False,
                "entryPrice": _num(p.entry_price if p else _ZERO),
                "breakEvenPrice": _num(p.entry_price if p else _ZERO),
                "maxNotional": "1000000000",
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": "BOTH",
                "positionAmt": _num(p.quantity if p else _ZERO),
                "updateTime": _ms(snap.ts_ns),
            }
        )
    head = {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }
    return _json(head | _totals(snap) | {"assets": _assets(snap), "positions": positions})


async def account_v3(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    positions = [
        {
            "symbol": p.symbol,
            "positionSide": "BOTH",
            "positionAmt": _num(p.quantity),
            "unrealizedProfit": _num(p.unrealized_pnl),
            "isolatedMargin": "0",
            "notional": _num(p.quantity * p.mark_price),
            "isolatedWallet": "0",
            "initialMargin": _num(p.initial_margin),
            "maintMargin": "0",
            "updateTime": _ms(snap.ts_ns),
        }
        for p in snap.positions
        if p.quantity != 0
    ]
    return _json(_totals(snap) | {"assets": _assets(snap), "positions": positions})


async def position_risk_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    snap, _open = await _account_state(gw, cred.account_id)
    lev = _leverage(gw, cred.account_id)
    rows = []
    for inst, pos in _position_rows(gw, snap, symbol):
        mark = pos.mark_price if pos else (gw.exchange.mark_price(inst.symbol) or _ZERO)
        qty = pos.quantity if pos else _ZERO
        rows.append(
            {
                "symbol": inst.symbol,
                "positionAmt": _num(qty),
                "entryPrice": _num(pos.entry_price if pos else _ZERO),
                "breakEvenPrice": _num(pos.entry_price if pos else _ZERO),
                "markPrice": _num(mark),
                "unRealizedProfit": _num(pos.unrealized_pnl if pos else _ZERO),
                "liquidationPrice": "0",
                "leverage": str(lev),
                "maxNotionalValue": "1000000000",
                "marginType": "cross",
                "isolatedMargin": "0.00000000",
                "isAutoAddMargin": "false",
                "positionSide": "BOTH",
                "notional": _num(qty * mark),
                "isolatedWallet": "0",
                "updateTime": _ms(snap.ts_ns),
            }
        )
    return _json(rows)


async def position_risk_v3(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    snap, open_symbols = await _account_state(gw, cred.account_id)
    rows = []
    for inst, pos in _position_rows(gw, snap, symbol):
        qty = pos.quantity if pos else _ZERO
        if qty == 0 and inst.symbol not in open_symbols:
            continue  # V3 lists symbols with a position or open orders only
        mark = pos.mark_price if pos else (gw.exchange.mark_price(inst.symbol) or _ZERO)
        im = pos.initial_margin if pos else _ZERO
        rows.append(
            {
                "symbol": inst.symbol,
                "positionSide": "BOTH",
                "positionAmt": _num(qty),
                "entryPrice": _num(pos.entry_price if pos else _ZERO),
                "breakEvenPrice": _num(pos.entry_price if pos else _ZERO),
                "markPrice": _num(mark),
                "unRealizedProfit": _num(pos.unrealized_pnl if pos else _ZERO),
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": _num(qty * mark),
                "marginAsset": MARGIN_ASSET,
                "isolatedWallet": "0",
                "initialMargin": _num(im),
                "maintMargin": "0",
                "positionInitialMargin": _num(im),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": _ms(snap.ts_ns),
            }
        )
    return _json(rows)


async def balance_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    return _json(
        [
            {
                "accountAlias": cred.account_id,
                "asset": a["asset"],
                "balance": a["walletBalance"],
                "crossWalletBalance": a["crossWalletBalance"],
                "crossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"],
                "maxWithdrawAmount": a["maxWithdrawAmount"],
                "marginAvailable": a["marginAvailable"],
                "updateTime": a["updateTime"],
            }
            for a in _assets(snap)
        ]
    )


async def leverage_bracket(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    await gw.call(lambda now: None)
    rows = [
        {
            "symbol": inst.symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": MAX_LEVERAGE,
                    "notionalCap": 1_000_000_000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0.0,
                }
            ],
        }
        for inst in gw.exchange.instruments.values()
        if symbol is None or inst.symbol == symbol
    ]
    return _json(rows[0] if symbol is not None else rows)


async def change_leverage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    value = p.text("leverage", required=True)
    assert value is not None
    if not value.isdigit() or not 1 <= int(value) <= MAX_LEVERAGE:
        raise BinanceError(-4028, f"Leverage {value} is not valid")
    lev = int(value)
    # The simulator's leverage is per account: setting it for one symbol sets it for all.
    await gw.call(lambda now: gw.exchange.set_leverage(cred.account_id, lev))
    return _json({"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.symbol})


# --- listen keys and streams -----------------------------------------------------------
async def new_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    return _json({"listenKey": gw.listen_key(cred.account_id)})


async def keep_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    key = gw.key_of.get(cred.account_id)
    if key is None:
        raise BinanceError(
            -1125,
            "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate "
            "listenKey",
        )
    return _json({"listenKey": key})


async def close_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    await gw.drop_listen_key(cred.account_id)
    return _json({})


@dataclass(frozen=True)
class Source:
    """One stream a connection carries: the venue subscription it reads, how an item
    becomes messages, and `style`, equal for every connection that renders items alike."""

    sub: Any
    render: Callable[[object, int], list[tuple[str, dict[str, Any]]]]
    style: Any


def _user_source(gw: Gateway, key: str, account: str) -> Source:
    """The account's execution reports as ORDER_TRADE_UPDATE (+ ACCOUNT_UPDATE on a fill)."""

    def render(item: object, now: int) -> list[tuple[str, dict[str, Any]]]:
        if not isinstance(item, ExecutionReport):
            return []
        inst = gw.exchange.instruments[item.symbol]
        out = [(key, order_update(item, inst, now))]
        if item.last_fill is not None:
            snap = gw.exchange.account_snapshot(account, now)
            out.append((key, account_update(snap, item.symbol, item.last_fill.ts_ns, now)))
        return out

    return Source(gw.venue.subscribe_account(account), render, ("user", key, account))


def _market_source(gw: Gateway, streams: Sequence[str]) -> Source:
    """Public events of the symbols named by `<symbol>@<kind>` streams."""
    wanted: dict[tuple[str, str], str] = {}
    for name in streams:
        symbol, _, kind = name.partition("@")
        inst = gw.exchange.instruments.get(symbol.upper())
        if inst is None:
            raise BinanceError(-1121, f"Invalid symbol. (stream {name})")
        if kind not in _STREAM_KINDS:
            raise _invalid("streams", f"{name}: this venue streams {', '.join(_STREAM_KINDS)}")
        wanted[(inst.symbol, kind)] = name

    def render(item: object, now: int) -> list[tuple[str, dict[str, Any]]]:
        out = []
        if isinstance(item, BookTicker):
            inst = gw.exchange.instruments[item.symbol]
            name = wanted.get((item.symbol, "bookTicker"))
            if name:
                update_id = gw.exchange.updates_applied
                out.append((name, book_ticker_event(item, inst, update_id, now)))
        elif isinstance(item, MarketTrade):
            inst = gw.exchange.instruments[item.symbol]
            for kind in ("trade", "aggTrade"):
                name = wanted.get((item.symbol, kind))
                if name:
                    event = trade_event(item, inst, now, aggregate=kind == "aggTrade")
                    out.append((name, event))
        return out

    symbols = sorted({s for s, _ in wanted})
    return Source(gw.venue.subscribe_market(symbols), render, tuple(sorted(wanted.items())))


async def raw_stream(request: web.Request) -> web.StreamResponse:
    """`/ws/<listenKey>` (user data) or `/ws/<symbol>@<kind>` (one market stream)."""
    gw = request.app[GATEWAY]
    name = request.match_info["stream"]
    return await _serve_ws(request, gw, [name], combined=False)


async def combined_stream(request: web.Request) -> web.StreamResponse:
    """`/stream?streams=a/b/c`: several streams, each message as {"stream", "data"}."""
    gw = request.app[GATEWAY]
    raw = request.query.get("streams", "")
    names = [n for n in raw.split("/") if n]
    if not names:
        raise _missing("streams")
    return await _serve_ws(request, gw, names, combined=True)


async def _serve_ws(
    request: web.Request, gw: Gateway, names: Sequence[str], *, combined: bool
) -> web.StreamResponse:
    user_keys = [n for n in names if "@" not in n]
    market = [n for n in names if "@" in n]
    if len(user_keys) > 1:
        raise _invalid("streams", "one listenKey per connection")
    owner: str | None = None
    sources: list[Source] = []
    ws = web.WebSocketResponse(autoping=True)
    try:
        if market:
            sources.append(_market_source(gw, market))
        if user_keys:
            owner = user_keys[0]
            account = gw.listen_keys.get(owner)
            if account is None:
                raise BinanceError(-1125, "This listenKey does not exist.")
            sources.append(_user_source(gw, owner, account))
        await ws.prepare(request)
    except BaseException:
        for source in sources:
            gw.venue.unsubscribe(source.sub)
        raise
    gw.sockets[ws] = owner
    pumps = [asyncio.create_task(_pump(ws, gw, source, combined)) for source in sources]
    try:
        async for msg in ws:  # clients have nothing to say; read to notice close and pings
            if msg.type is WSMsgType.ERROR:
                break
    finally:
        for task in pumps:
            task.cancel()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for source in sources:
            gw.venue.unsubscribe(source.sub)
        gw.sockets.pop(ws, None)
    return ws


async def _pump(ws: web.WebSocketResponse, gw: Gateway, source: Source, combined: bool) -> None:
    while True:
        item = await source.sub.queue.get()
        if isinstance(item, VenueError):  # the stream overflowed: the client resyncs
            await ws.close(code=1011, message=b"stream overflowed; resync by query")
            return
        if isinstance(item, StreamClosed):
            await ws.close(code=1001, message=b"venue stopped")
            return
        try:
            for text in gw.messages(item, source, combined):
                await ws.send_str(text)
        except ConnectionError:  # the client went away; the reader side cleans up
            await ws.close()
            return


# --- /_sim/: what tests and TCA need that Binance does not have ------------------------
class _OutageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    duration_s: float
    mode: Literal["503", "refuse"] = "503"


def _admin(request: web.Request) -> ApiCredential:
    gw = request.app[GATEWAY]
    remote = request.remote or ""
    try:
        loopback = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise _bad_key()
    return gw.credential(request)


async def _admin_body(request: web.Request, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise BinanceError(-1130, f"Data sent is not valid. ({e})") from None


async def sim_order(request: web.Request) -> web.Response:
    """`GET /_sim/orders/<clientOrderId>[?symbol=]`: the venue-side times of an order (ns)."""
    gw = request.app[GATEWAY]
    cred = _admin(request)
    coid = request.match_info["client_order_id"]
    symbol = request.query.get("symbol")
    symbols = [gw.instrument(symbol).symbol] if symbol else list(gw.exchange.instruments)
    for s in symbols:
        try:
            r = gw.exchange.query(cred.account_id, s, coid)
        except UnknownOrder:
            continue
        fills = [
            {
                "tradeId": t.fill.trade_id,
                "price": _num(t.fill.price),
                "qty": _num(t.fill.quantity),
                "liquidity": t.fill.liquidity.value,
                "tsNs": t.fill.ts_ns,
            }
            for t in gw.exchange.user_trades(cred.account_id, s)
            if t.order_id == r.order_id
        ]
        return _json(
            {
                "clientOrderId": r.client_order_id,
                "orderId": r.order_id,
                "symbol": r.symbol,
                "status": r.status.value,
                "receiveNs": r.venue_receive_ns,
                "acceptNs": r.venue_accept_ns,
                "updateNs": r.venue_ts_ns,
                "fills": fills,
            }
        )
    raise BinanceError(-2013, "Order does not exist.")


async def sim_start_outage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    body = await _admin_body(request, _OutageRequest)
    if not (math.isfinite(body.duration_s) and body.duration_s > 0):
        raise _invalid("duration_s", "a positive number of seconds")
    start = gw.venue.now_ns()
    if body.mode == "refuse":
        start += _REFUSE_DELAY_NS  # the listener closes once this answer is out
    gw.venue.conditions.start_outage(start, body.duration_s, body.mode)
    end = start + int(body.duration_s * 1e9)
    return _json({"mode": body.mode, "startNs": start, "endNs": end})


async def sim_stop_outage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    gw.venue.conditions.stop_outage()
    return _json({})


async def sim_get_profile(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    return _json(msgspec.to_builtins(gw.venue.profile))


async def sim_set_profile(request: web.Request) -> web.Response:
    """`POST /_sim/profile`: with `preset`, that preset and the given `VenueProfile` fields;
    without, the current profile with the given fields changed."""
    gw = request.app[GATEWAY]
    _admin(request)
    body = await _admin_body(request, dict[str, Any])
    if "preset" not in body:
        body = msgspec.to_builtins(gw.venue.profile) | body
    try:
        profile = profile_from(body)
    except ValueError as e:
        raise BinanceError(-1130, f"Data sent for the profile is not valid. ({e})") from None
    gw.venue.conditions.set_profile(profile)
    return _json(msgspec.to_builtins(profile))


# --- the application -------------------------------------------------------------------
@web.middleware
async def _binance_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure as a Binance error body; never a traceback on the wire."""
    gw = request.app[GATEWAY]
    admin = request.path.startswith("/_sim/")
    try:
        if not admin and gw.venue.conditions.outage(gw.venue.now_ns()) is not None:
            raise VenueUnavailable("venue outage", venue=gw.venue.name)
        return await handler(request)
    except BinanceError as e:
        return e.response()
    except VenueUnavailable:
        if gw.venue.conditions.outage(gw.venue.now_ns()) == "refuse" and request.transport:
            request.transport.abort()  # connection reset: the closest a request gets to refused
        return _unavailable().response()
    except RateLimited as e:
        return _rate_limited(e, gw.venue.profile.orders_per_minute).response()
    except OrderRejected as e:
        return reject_error(e).response()
    except UnknownOrder:
        return BinanceError(-2013, "Order does not exist.").response()
    except web.HTTPException as e:
        if e.status in (404, 405):
            return BinanceError(
                -5000, f"Path {request.path}, Method {request.method} is invalid", 404
            ).response()
        if e.status == 413:
            return BinanceError(
                -1101, "Too many parameters sent for this endpoint.", 413
            ).response()
        return BinanceError(-1000, e.reason or "Bad request.", e.status).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return BinanceError(
            -1000, "An unknown error occured while processing the request.", 500
        ).response()


async def _venue_ctx(app: web.Application) -> AsyncIterator[None]:
    """The venue runs (market, timers, streams) for as long as the application does."""
    gw = app[GATEWAY]
    await gw.venue.start()
    yield
    await gw.venue.stop()


async def _close_sockets(app: web.Application) -> None:
    await app[GATEWAY].close_sockets(1001, "server stopping")


def make_app(venue: SimVenue, credentials: Mapping[str, ApiCredential]) -> web.Application:
    """The aiohttp application serving `venue` to the holders of `credentials`."""
    app = web.Application(middlewares=[_binance_errors])
    app[GATEWAY] = Gateway(venue, dict(credentials))
    app.cleanup_ctx.append(_venue_ctx)
    app.on_shutdown.append(_close_sockets)
    r = app.router
    r.add_get("/fapi/v1/ping", ping)
    r.add_get("/fapi/v1/time", server_time)
    r.add_get("/fapi/v1/exchangeInfo", get_exchange_info)
    r.add_get("/fapi/v1/depth", depth)
    r.add_post("/fapi/v1/order", new_order)
    r.add_get("/fapi/v1/order", query_order)
    r.add_delete("/fapi/v1/order", cancel_order)
    r.add_post("/fapi/v1/batchOrders", batch_orders)
    r.add_get("/fapi/v1/openOrders", open_orders)
    r.add_delete("/fapi/v1/allOpenOrders", cancel_all)
    r.add_get("/fapi/v1/userTrades", user_trades)
    r.add_get("/fapi/v2/account", account_v2)
    r.add_get("/fapi/v3/account", account_v3)
    r.add_get("/fapi/v2/positionRisk", position_risk_v2)
    r.add_get("/fapi/v3/positionRisk", position_risk_v3)
    r.add_get("/fapi/v2/balance", balance_v2)
    r.add_get("/fapi/v1/leverageBracket", leverage_bracket)
    r.add_post("/fapi/v1/leverage", change_leverage)
    r.add_post("/fapi/v1/listenKey", new_listen_key)
    r.add_put("/fapi/v1/listenKey", keep_listen_key)
    r.add_delete("/fapi/v1/listenKey", close_listen_key)
    r.add_get("/ws/{stream}", raw_stream)
    r.add_get("/stream", combined_stream)
    r.add_get("/_sim/orders/{client_order_id}", sim_order)
    r.add_post("/_sim/outage", sim_start_outage)
    r.add_delete("/_sim/outage", sim_stop_outage)
    r.add_get("/_sim/profile", sim_get_profile)
    r.add_post("/_sim/profile", sim_set_profile)
    return app


class BinanceServer:
    """A simulated venue on `host:port` (0: any free port) as the Binance USD-M API.

    Starting the server starts the venue; stopping it stops the venue. An outage in mode
    "refuse" closes the listening socket and every connection for its duration; any outage
    closes the open streams when it starts (clients reconnect and resynchronise).
    """

    def __init__(
        self,
        venue: SimVenue,
        credentials: Mapping[str, ApiCredential],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        for key, cred in credentials.items():
            if key != cred.api_key:
                raise ValueError(f"credentials must be keyed by their API key ({cred.account_id})")
            if not venue.exchange.has_account(cred.account_id):
                raise ValueError(
                    f"API key for account {cred.account_id!r}: no such account on {venue.name}"
                )
        self.venue = venue
        self.host = host
        self.port = port
        self.app = make_app(venue, credentials)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        self.port = int(self._runner.addresses[0][1])
        self._watcher = asyncio.create_task(
            self._watch_outages(), name=f"outages-{self.venue.name}"
        )
        log.info("venue %s serves the Binance USD-M API at %s", self.venue.name, self.rest_url)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> BinanceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _watch_outages(self) -> None:
        """Follow the venue's outages: close streams when one starts; in "refuse" mode close
        the listener and every connection, and listen again on the same port after it."""
        gw = self.app[GATEWAY]
        down: str | None = None
        while True:
            try:
                mode = self.venue.conditions.outage(self.venue.now_ns())
                if mode != down:
                    if mode is not None:
                        await gw.close_sockets(1012, "venue outage")
                    if mode == "refuse":
                        await self._refuse()
                    elif down == "refuse":
                        await self._listen()
                    down = mode
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad step must not end the watch
                log.exception("outage watcher of %s", self.venue.name)
            await asyncio.sleep(0.005)

    async def _refuse(self) -> None:
        assert self._runner is not None
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for conn in list(server.connections if server else ()):
            conn.force_close()

    async def _listen(self) -> None:
        assert self._runner is not None
        if self._site is None:
            self._site = web.TCPSite(self._runner, self.host, self.port)
            await self._site.start()
