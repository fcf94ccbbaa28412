"""What the handlers share: the venue, the API keys, listen keys and open sockets."""

from __future__ import annotations

import contextlib
import enum
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web

from venues.config import ApiCredential
from venues.errors import OrderRejected, UnknownOrder
from venues.model import (
    AckKind,
    ExecutionReport,
    Instrument,
    InstrumentKind,
    NewOrder,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from venues.sim.exchange import CLIENT_ORDER_ID, SimExchange
from venues.sim.host import SimVenue, accepted_view
from venues.sim.server.errors import (
    BinanceError,
    _bad_key,
    _bad_key_format,
    _invalid,
    _missing,
    _outcome_unknown,
    reject_error,
)
from venues.sim.server.params import (
    Params,
    RespType,
    _merge,
    _OrderSpec,
    _pairs,
    _without_signature,
    sign,
)
from venues.sim.server.render import _TIF_IN, MAX_PRICE, _decimals, _ms, order_json

if TYPE_CHECKING:
    from venues.sim.server.streams import Source

T = TypeVar("T")

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
# Stream messages rendered and encoded once for every connection that carries them: an
# account's order report goes to every client of the account (every leg on the venue), a
# book ticker to every client following the symbol. Bounded: the oldest are forgotten.
_RENDERED_MAX = 4096
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


class Api(enum.StrEnum):
    """The two Binance APIs the server speaks; each serves its own instruments only."""

    USDM = "usdm"  # /fapi: USD-M futures, the perpetuals
    SPOT = "spot"  # /api/v3 and /ws-api/v3: spot

    @property
    def kind(self) -> InstrumentKind:
        return InstrumentKind.PERP if self is Api.USDM else InstrumentKind.SPOT


@dataclass(frozen=True, slots=True)
class StreamOwner:
    """Whose user data a listen key (or a WebSocket API subscription) streams, and in which
    API's events."""

    account: str
    api: Api


# What `Gateway.sockets` holds for a WebSocket API connection subscribed to user data (a
# listen key's streams hold the key): a drop of the user streams closes it too.
WS_API_USER = "ws-api"


@dataclass
class Gateway:
    """What the handlers share: the venue, the keys, the listen keys and the open sockets."""

    venue: SimVenue
    credentials: dict[str, ApiCredential]
    listen_keys: dict[str, StreamOwner] = field(default_factory=dict)
    key_of: dict[StreamOwner, str] = field(default_factory=dict)  # the reverse
    # Every open WebSocket, with the listen key it streams (or WS_API_USER, or None).
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
    def credential(self, request: web.Request, api: Api = Api.USDM) -> ApiCredential:
        """The holder of the request's API key (spot tells a missing key apart: -2014)."""
        key = request.headers.get("X-MBX-APIKEY", "")
        return self.key_holder(key, api)

    def key_holder(self, key: str, api: Api = Api.USDM) -> ApiCredential:
        if not key and api is Api.SPOT:
            raise _bad_key_format()
        cred = self.credentials.get(key)
        if cred is None:
            raise _bad_key()
        return cred

    def check_time(self, timestamp: int, window: int | None) -> None:
        """Binance's timing rule: `timestamp` within `recvWindow` (default 5 s, at most 60 s)
        before the venue clock, and less than 1 s after it."""
        window = window or DEFAULT_RECV_WINDOW_MS
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise _invalid("recvWindow", f"at most {MAX_RECV_WINDOW_MS} ms")
        now_ms = _ms(self.venue.now_ns())
        if timestamp >= now_ms + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now_ms - timestamp > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    async def signed(
        self, request: web.Request, api: Api = Api.USDM
    ) -> tuple[ApiCredential, Params]:
        """Check the API key, timestamp, recvWindow and HMAC signature; the parameters."""
        cred = self.credential(request, api)
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
        assert timestamp is not None and signature is not None
        self.check_time(timestamp, params.integer("recvWindow"))
        expected = sign(cred.secret, _without_signature(raw_query) + _without_signature(raw_body))
        check_signature(expected, signature)
        for name in ("signature", "timestamp", "recvWindow"):
            params.items.pop(name, None)
        return cred, params

    def instrument(self, symbol: str | None, api: Api = Api.USDM) -> Instrument:
        """The instrument `symbol` names on `api` (-1121 for one the API does not serve)."""
        if symbol is None:
            raise _missing("symbol")
        inst = self.exchange.instruments.get(symbol)
        if inst is None or inst.kind is not api.kind:
            raise BinanceError(-1121, "Invalid symbol.")
        return inst

    def instruments(self, api: Api) -> list[Instrument]:
        """The instruments `api` serves, in the venue's order."""
        return [i for i in self.exchange.instruments.values() if i.kind is api.kind]

    def optional_symbol(self, params: Params, api: Api = Api.USDM) -> str | None:
        """The request's `symbol` if it names one (checked: -1121 if unknown), else None."""
        symbol = params.text("symbol")
        if symbol is not None:
            self.instrument(symbol, api)
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
        """The HTTP answer to a placed order (USD-M), as `answered` says."""
        return order_json(self.answered(spec, r), spec.inst)

    def answered(self, spec: _OrderSpec, r: ExecutionReport) -> ExecutionReport:
        """The order as the answer to placing it shows it: its ack kind and newOrderRespType
        decide what is known when the answer leaves.

        A RESULT venue answers RESULT (and FULL) requests with the order after matching, and
        ACK requests with the order as accepted; an ACCEPTED venue answers NEW either way
        (the match is not known yet); a RECEIPT venue answers PENDING_NEW with orderId 0. A
        lost answer is -1007.
        """
        if r.ack_kind is AckKind.UNKNOWN:
            raise _outcome_unknown()
        if r.ack_kind is AckKind.RESULT and spec.resp == "ACK":
            r = accepted_view(r)
        return r

    def rejected(self, e: OrderRejected, spec: _OrderSpec) -> BinanceError:
        mark = None
        if e.reason is RejectReason.INVALID_PRICE:
            mark = self.exchange.mark_price(spec.inst.symbol)
        return reject_error(e, spec.order, spec.inst, mark)

    # --- streams -----------------------------------------------------------------------
    def listen_key(self, account: str, api: Api = Api.USDM) -> str:
        """The account's listen key on `api` (one each; made on first use)."""
        owner = StreamOwner(account, api)
        key = self.key_of.get(owner)
        if key is None:
            key = secrets.token_hex(32)
            self.key_of[owner] = key
            self.listen_keys[key] = owner
        return key

    async def drop_listen_key(self, account: str, api: Api = Api.USDM) -> None:
        """Forget the account's listen key on `api` and close the streams that carry it."""
        key = self.key_of.pop(StreamOwner(account, api), None)
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


def check_signature(expected: str, signature: str) -> None:
    """-1022 unless `signature` is `expected` (hex, either case)."""
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise BinanceError(-1022, "Signature for this request is not valid.")
