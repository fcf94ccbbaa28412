"""The REST endpoints of Binance's spot API (`/api/v3`): market data, orders and the account.

They serve the venue's spot instruments only (a perpetual here is -1121, as a spot symbol is
on `/fapi`), trade from each account's spot wallet, and answer in spot's shapes and codes.
Signatures, timing, latency, outages and the venue's ack semantics are the USD-M API's own
(`Gateway`).
"""

from __future__ import annotations

import secrets

import msgspec
from aiohttp import web

from venues.errors import OrderRejected, RateLimited, UnknownOrder
from venues.model import (
    Balance,
    ExecutionReport,
    Fill,
    Instrument,
    Liquidity,
    NewOrder,
    OrderType,
    Side,
    TimeInForce,
)
from venues.sim.exchange import CLIENT_ORDER_ID
from venues.sim.server.errors import (
    CLIENT_ID_RANGE,
    BinanceError,
    _illegal,
    _invalid,
    _rate_limited,
    spot_reject_error,
)
from venues.sim.server.gateway import GATEWAY, Api, Gateway
from venues.sim.server.handlers import account_orders, account_trades
from venues.sim.server.params import Params, RespType, _OrderSpec
from venues.sim.server.render import MAX_PRICE, _decimals, _json
from venues.sim.server.spot_render import (
    SPOT_ORDER_TYPES,
    _amount,
    spot_account_json,
    spot_ack_json,
    spot_book_ticker,
    spot_cancel_json,
    spot_exchange_info,
    spot_order_json,
    spot_result_json,
    spot_trade_json,
)

MAX_DEPTH = 5000
# Spot assets have 8 decimals (exchangeInfo's base and quote asset precision): more is -1111;
# within them, a price or quantity off the tick or lot is the filters' (-1013), as on Binance.
ASSET_PRECISION = 8
# Order parameters Binance spot knows that the simulator does not implement: sending one is
# an error (-1106) rather than silently trading something else. The self-trade prevention
# mode and strategy tags change nothing here (the engine expires the taker), so they are
# read and ignored.
_UNSUPPORTED = (
    "quoteOrderQty",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "pegPriceType",
    "pegOffsetValue",
    "pegOffsetType",
)
_IGNORED = ("selfTradePreventionMode", "strategyId", "strategyType")
_ORDER_PARAMS = {
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "price",
    "newClientOrderId",
    "newOrderRespType",
    *_UNSUPPORTED,
    *_IGNORED,
}
_CONDITIONAL = {"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
_TIF_IN = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_RESP_TYPES: dict[str, RespType] = {"ACK": "ACK", "RESULT": "RESULT", "FULL": "FULL"}


# --- public endpoints ------------------------------------------------------------------
async def spot_exchange_info_handler(request: web.Request) -> web.Response:
    """`GET /api/v3/exchangeInfo[?symbol= | ?symbols=["A","B"]]`."""
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    insts = _symbols(gw, p)
    return _json(await gw.call(lambda now: spot_exchange_info(gw.venue, insts, now)))


async def spot_depth(request: web.Request) -> web.Response:
    """`GET /api/v3/depth?symbol=&limit=` (1-5000, default 100)."""
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    limit = p.integer("limit", low=1, high=MAX_DEPTH) or 100
    snap = await gw.call(lambda now: gw.exchange.book_snapshot(inst.symbol, limit, now))
    return _json(
        {
            "lastUpdateId": gw.exchange.updates_applied,
            "bids": [[_amount(px), _amount(q)] for px, q in snap.bids],
            "asks": [[_amount(px), _amount(q)] for px, q in snap.asks],
        }
    )


async def spot_book_ticker_handler(request: web.Request) -> web.Response:
    """`GET /api/v3/ticker/bookTicker[?symbol= | ?symbols=]`: the top of one book, or of
    several or every spot book (one whose book has an empty side is left out)."""
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    insts = _symbols(gw, p)
    tops = await gw.call(lambda now: [gw.exchange.book_ticker(i.symbol) for i in insts])
    rows = [spot_book_ticker(t) for t in tops if t is not None]
    if "symbol" not in p:
        return _json(rows)
    if not rows:
        raise BinanceError(-1121, f"No book for {insts[0].symbol} yet.")
    return _json(rows[0])


def _symbols(gw: Gateway, p: Params) -> list[Instrument]:
    """The spot instruments `symbol` or `symbols` (a JSON list) name; all without either."""
    symbol = p.text("symbol")
    raw = p.text("symbols")
    if symbol is not None and raw is not None:
        raise BinanceError(-1101, "Parameter 'symbol' and 'symbols' cannot be sent together.")
    if symbol is not None:
        return [gw.instrument(symbol, Api.SPOT)]
    if raw is None:
        return gw.instruments(Api.SPOT)
    try:
        names = msgspec.json.decode(raw, type=list[str])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _invalid("symbols", 'a JSON list of symbols, e.g. ["STETHUSDT"]') from None
    if not 1 <= len(names) <= 100:
        raise _invalid("symbols", "1 to 100 symbols")
    return [gw.instrument(name, Api.SPOT) for name in names]


# --- orders ----------------------------------------------------------------------------
def spot_order_spec(gw: Gateway, p: Params) -> _OrderSpec:
    """A `NewOrder` from Binance spot order parameters, checked as Binance checks them.

    LIMIT (timeInForce GTC, IOC or FOK), MARKET by quantity, and LIMIT_MAKER (post-only:
    refused, -2010, when it would take liquidity). newOrderRespType defaults to FULL for
    LIMIT and MARKET, to ACK for LIMIT_MAKER, as on Binance.
    """
    unknown = sorted(set(p.items) - _ORDER_PARAMS)
    if unknown:
        raise BinanceError(
            -1104,
            f"Not all sent parameters were read; read '{len(p.items) - len(unknown)}' "
            f"parameter(s) but was sent '{len(p.items)}'.",
        )
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    side = p.choice(
        "side",
        {"BUY": Side.BUY, "SELL": Side.SELL},
        BinanceError(-1117, "Invalid side."),
        required=True,
    )
    kind = p.text("type", required=True)
    if kind in _CONDITIONAL:
        raise BinanceError(-1116, f"Invalid orderType. ({kind} is not simulated)")
    if kind not in SPOT_ORDER_TYPES:
        raise BinanceError(-1116, "Invalid orderType.")
    for name in _UNSUPPORTED:
        if name in p:
            raise BinanceError(-1106, f"Parameter '{name}' sent when not required. (not simulated)")
    tif_error = BinanceError(-1115, "Invalid timeInForce.")
    tif: TimeInForce | None
    if kind == "LIMIT":
        tif = p.choice("timeInForce", _TIF_IN, tif_error, required=True)
        price = p.decimal("price", required=True)
    else:
        if "timeInForce" in p:
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        if kind == "MARKET":
            if "price" in p:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            tif, price = TimeInForce.GTC, None
        else:  # LIMIT_MAKER
            tif, price = TimeInForce.POST_ONLY, p.decimal("price", required=True)
    quantity = p.decimal("quantity", required=True)
    assert quantity is not None and tif is not None and side is not None
    if _decimals(quantity) > ASSET_PRECISION:
        raise BinanceError(-1111, "Parameter 'quantity' has too much precision.")
    if quantity <= 0:
        raise BinanceError(-1013, "Filter failure: LOT_SIZE (quantity must be positive)")
    if price is not None:
        if _decimals(price) > ASSET_PRECISION:
            raise BinanceError(-1111, "Parameter 'price' has too much precision.")
        if not 0 < price <= MAX_PRICE:
            raise BinanceError(-1013, f"Filter failure: PRICE_FILTER (price {price})")
    coid = p.text("newClientOrderId") or secrets.token_urlsafe(16)
    if not CLIENT_ORDER_ID.match(coid):
        raise _illegal("newClientOrderId", CLIENT_ID_RANGE)
    default: RespType = "ACK" if kind == "LIMIT_MAKER" else "FULL"
    resp_error = BinanceError(-1136, "Invalid newOrderRespType.")
    resp = p.choice("newOrderRespType", _RESP_TYPES, resp_error) or default
    order = NewOrder(
        client_order_id=coid,
        symbol=inst.symbol,
        side=side,
        type=OrderType.MARKET if kind == "MARKET" else OrderType.LIMIT,
        quantity=quantity,
        price=price,
        time_in_force=tif,
    )
    return _OrderSpec(order, inst, resp)


async def spot_new_order(request: web.Request) -> web.Response:
    """`POST /api/v3/order`: placed through the venue profile (latency, acks, faults)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    spec = spot_order_spec(gw, p)
    try:
        report = await gw.venue.submit(cred.account_id, spec.order)
    except OrderRejected as e:
        raise spot_reject_error(e, spec.order) from None
    except RateLimited as e:
        raise _rate_limited(e, gw.venue.profile.orders_per_minute) from None
    shown = gw.answered(spec, report)
    if spec.resp == "ACK":
        return _json(spot_ack_json(shown))
    if spec.resp == "RESULT":
        return _json(spot_result_json(shown))
    return _json(spot_result_json(shown, _fills(gw, cred.account_id, shown)))


def _fills(gw: Gateway, account: str, r: ExecutionReport) -> list[Fill]:
    """The order's fills the answer `r` accounts for (its cumulative quantity's worth)."""
    if not r.order_id or not r.cum_filled:
        return []
    out: list[Fill] = []
    left = r.cum_filled
    for t in gw.exchange.user_trades(account, r.symbol):
        if str(t.order_id) == r.order_id and left > 0:
            out.append(t.fill)
            left -= t.fill.quantity
    return out


async def spot_test_order(request: web.Request) -> web.Response:
    """`POST /api/v3/order/test`: the parameters checked as a new order's, nothing placed;
    `computeCommissionRates=true` adds the account's rates."""
    gw = request.app[GATEWAY]
    _, p = await gw.signed(request, Api.SPOT)
    rates = p.boolean("computeCommissionRates")
    p.items.pop("computeCommissionRates", None)
    spot_order_spec(gw, p)
    await gw.call(lambda now: None)
    if not rates:
        return _json({})
    fees = gw.exchange.spot_fees
    maker, taker = (_amount(fees.rate(k)) for k in (Liquidity.MAKER, Liquidity.TAKER))
    zero = _amount(None)
    return _json(
        {
            "standardCommissionForOrder": {"maker": maker, "taker": taker},
            "taxCommissionForOrder": {"maker": zero, "taker": zero},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": zero,
            },
        }
    )


async def spot_query_order(request: web.Request) -> web.Response:
    """`GET /api/v3/order?symbol=&orderId= | origClientOrderId=` (-2013 if unknown)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    find = gw.lookup(cred.account_id, inst, p)
    try:
        report = await gw.call(find)
    except UnknownOrder:
        raise BinanceError(-2013, "Order does not exist.") from None
    return _json(spot_order_json(report))


async def spot_cancel_order(request: web.Request) -> web.Response:
    """`DELETE /api/v3/order` (-2011 for an unknown or finished order); `newClientOrderId`
    names the cancel (generated without it)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    cancel_id = p.text("newClientOrderId") or secrets.token_urlsafe(16)
    find = gw.lookup(cred.account_id, inst, p)

    def cancel(now: int) -> tuple[ExecutionReport, int]:
        r = find(now)
        # By its exchange id: a reused client order id may name a newer order.
        return gw.exchange.cancel_by_id(cred.account_id, inst.symbol, int(r.order_id), now), now

    try:
        report, now = await gw.call(cancel)
    except UnknownOrder:
        raise BinanceError(-2011, "Unknown order sent.") from None
    return _json(spot_cancel_json(report, cancel_id, now))


async def spot_open_orders(request: web.Request) -> web.Response:
    """`GET /api/v3/openOrders[?symbol=]`: the account's open spot orders."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    symbol = gw.optional_symbol(p, Api.SPOT)
    reports = await gw.call(lambda now: gw.exchange.open_orders(cred.account_id, symbol))
    spot = {i.symbol for i in gw.instruments(Api.SPOT)}
    return _json([spot_order_json(r) for r in reports if r.symbol in spot])


async def spot_cancel_open_orders(request: web.Request) -> web.Response:
    """`DELETE /api/v3/openOrders?symbol=`: cancels them all; each as a cancel answers."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)

    def cancel(now: int) -> tuple[list[ExecutionReport], int]:
        return gw.exchange.cancel_all(cred.account_id, inst.symbol, now), now

    reports, now = await gw.call(cancel)
    return _json([spot_cancel_json(r, secrets.token_urlsafe(16), now) for r in reports])


async def spot_all_orders(request: web.Request) -> web.Response:
    """`GET /api/v3/allOrders?symbol=`: open and ended, oldest first (`account_orders`)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    return _json([spot_order_json(r) for r in await account_orders(gw, cred.account_id, inst, p)])


async def spot_my_trades(request: web.Request) -> web.Response:
    """`GET /api/v3/myTrades?symbol=`: the account's fills (`account_trades`)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    inst = gw.instrument(p.text("symbol", required=True), Api.SPOT)
    return _json([spot_trade_json(t) for t in await account_trades(gw, cred.account_id, inst, p)])


# --- the account -----------------------------------------------------------------------
async def spot_account(request: web.Request) -> web.Response:
    """`GET /api/v3/account[?omitZeroBalances=true]`: the spot wallet."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    omit = p.boolean("omitZeroBalances")

    def read(now: int) -> tuple[list[Balance], int]:
        return gw.exchange.spot_wallet(cred.account_id), now

    wallet, now = await gw.call(read)
    return _json(spot_account_json(wallet, gw.exchange.spot_fees, now, omit_zero=omit))
