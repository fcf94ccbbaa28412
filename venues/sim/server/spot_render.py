"""Venue objects as JSON in Binance spot wire shapes: REST answers and user-stream events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from venues.model import (
    Balance,
    BookTicker,
    ExecutionReport,
    Fill,
    Instrument,
    Liquidity,
    MarketTrade,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from venues.sim.exchange import FeeSchedule, UserTrade
from venues.sim.host import SimVenue
from venues.sim.server.render import MAX_PRICE, _ms, _wire_id

# Spot prints every price, quantity and amount with 8 decimals ("0.10264410").
_EIGHT = Decimal("1e-8")
_ZERO = Decimal(0)
_STP = "NONE"  # the self-trade prevention the account is set to (the engine expires the taker)
_NO_LIST = -1  # orderListId of an order that is in no order list
SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]


def _amount(x: Decimal | None) -> str:
    """An amount as Binance spot prints it: plain notation, 8 decimals."""
    return format((x or _ZERO).quantize(_EIGHT), "f")


def spot_type(r: ExecutionReport) -> str:
    """The order's spot type: a post-only limit is LIMIT_MAKER."""
    if r.time_in_force is TimeInForce.POST_ONLY:
        return "LIMIT_MAKER"
    return r.order_type.value


def _tif(r: ExecutionReport) -> str:
    # LIMIT_MAKER and MARKET orders show GTC, as Binance shows them.
    if r.time_in_force is TimeInForce.POST_ONLY or r.order_type is OrderType.MARKET:
        return TimeInForce.GTC.value
    return r.time_in_force.value


def _cum_quote(r: ExecutionReport) -> Decimal:
    return (r.avg_price or _ZERO) * r.cum_filled


def _working(r: ExecutionReport) -> bool:
    """Whether the order rests on the book (Binance's isWorking / `w`)."""
    return r.order_type is OrderType.LIMIT and r.status in (
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
    )


def _working_ms(r: ExecutionReport) -> int:
    return _ms(r.venue_accept_ns or r.venue_receive_ns or r.venue_ts_ns)


# --- public ----------------------------------------------------------------------------
def spot_exchange_info(venue: SimVenue, insts: list[Instrument], now_ns: int) -> dict[str, Any]:
    """`GET /api/v3/exchangeInfo` for the venue's spot instruments `insts`."""
    band = f"{1 + venue.exchange.price_band:.4f}", f"{1 - venue.exchange.price_band:.4f}"
    symbols = [
        {
            "symbol": inst.symbol,
            "status": "TRADING",
            "baseAsset": inst.base,
            "baseAssetPrecision": 8,
            "quoteAsset": inst.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": SPOT_ORDER_TYPES,
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": False,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _amount(inst.tick),
                    "maxPrice": _amount(MAX_PRICE),
                    "tickSize": _amount(inst.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _amount(inst.lot),
                    "maxQty": _amount(inst.max_qty),
                    "stepSize": _amount(inst.lot),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": _amount(_ZERO),
                    "maxQty": _amount(inst.max_qty),
                    "stepSize": _amount(_ZERO),
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": band[0],
                    "bidMultiplierDown": band[1],
                    "askMultiplierUp": band[0],
                    "askMultiplierDown": band[1],
                    "avgPriceMins": 0,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _amount(inst.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": _amount(MAX_PRICE),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 0,
                },
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": _amount(inst.min_notional),
                    "applyToMarket": True,
                    "avgPriceMins": 0,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": _STP,
            "allowedSelfTradePreventionModes": [_STP],
        }
        for inst in insts
    ]
    return {
        "timezone": "UTC",
        "serverTime": _ms(now_ns),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": venue.profile.orders_per_minute,
            },
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def spot_book_ticker(t: BookTicker) -> dict[str, Any]:
    """One row of `GET /api/v3/ticker/bookTicker`."""
    return {
        "symbol": t.symbol,
        "bidPrice": _amount(t.bid),
        "bidQty": _amount(t.bid_qty),
        "askPrice": _amount(t.ask),
        "askQty": _amount(t.ask_qty),
    }


def spot_book_ticker_event(t: BookTicker, update_id: int) -> dict[str, Any]:
    """The spot `<symbol>@bookTicker` stream event (it has no event type or times)."""
    return {
        "u": update_id,
        "s": t.symbol,
        "b": _amount(t.bid),
        "B": _amount(t.bid_qty),
        "a": _amount(t.ask),
        "A": _amount(t.ask_qty),
    }


def spot_trade_event(t: MarketTrade, now_ns: int, *, aggregate: bool = False) -> dict[str, Any]:
    """The spot `<symbol>@trade` or `@aggTrade` stream event."""
    common = {
        "E": _ms(now_ns),
        "s": t.symbol,
        "p": _amount(t.price),
        "q": _amount(t.quantity),
        "T": _ms(t.ts_ns),
        "m": t.aggressor is Side.SELL,  # the buyer was the maker: the taker sold
        "M": True,
    }
    if aggregate:
        return {"e": "aggTrade", "a": t.trade_id, "f": t.trade_id, "l": t.trade_id} | common
    return {"e": "trade", "t": t.trade_id} | common


# --- orders ----------------------------------------------------------------------------
def spot_ack_json(r: ExecutionReport) -> dict[str, Any]:
    """The answer to a new order with `newOrderRespType=ACK`."""
    return {
        "symbol": r.symbol,
        "orderId": _wire_id(r.order_id),
        "orderListId": _NO_LIST,
        "clientOrderId": r.client_order_id,
        "transactTime": _ms(r.venue_receive_ns or r.venue_ts_ns),
    }


def spot_result_json(r: ExecutionReport, fills: list[Fill] | None = None) -> dict[str, Any]:
    """The answer to a new order with `RESULT`, and with `FULL` when `fills` are given."""
    out = spot_ack_json(r) | {
        "price": _amount(r.price),
        "origQty": _amount(r.quantity),
        "executedQty": _amount(r.cum_filled),
        "origQuoteOrderQty": _amount(_ZERO),
        "cummulativeQuoteQty": _amount(_cum_quote(r)),
        "status": r.status.value,
        "timeInForce": _tif(r),
        "type": spot_type(r),
        "side": r.side.value,
        "workingTime": _working_ms(r),
        "selfTradePreventionMode": _STP,
    }
    if fills is not None:
        out["fills"] = [
            {
                "price": _amount(f.price),
                "qty": _amount(f.quantity),
                "commission": _amount(f.fee),
                "commissionAsset": f.fee_asset,
                "tradeId": int(f.trade_id),
            }
            for f in fills
        ]
    return out


def spot_order_json(r: ExecutionReport) -> dict[str, Any]:
    """An order as `GET /api/v3/order`, `openOrders` and `allOrders` show it."""
    return {
        "symbol": r.symbol,
        "orderId": _wire_id(r.order_id),
        "orderListId": _NO_LIST,
        "clientOrderId": r.client_order_id,
        "price": _amount(r.price),
        "origQty": _amount(r.quantity),
        "executedQty": _amount(r.cum_filled),
        "cummulativeQuoteQty": _amount(_cum_quote(r)),
        "status": r.status.value,
        "timeInForce": _tif(r),
        "type": spot_type(r),
        "side": r.side.value,
        "stopPrice": _amount(_ZERO),
        "icebergQty": _amount(_ZERO),
        "time": _ms(r.venue_receive_ns or r.venue_ts_ns),
        "updateTime": _ms(r.venue_ts_ns),
        "isWorking": _working(r),
        "workingTime": _working_ms(r),
        "origQuoteOrderQty": _amount(_ZERO),
        "selfTradePreventionMode": _STP,
    }


def spot_cancel_json(r: ExecutionReport, cancel_id: str, now_ns: int) -> dict[str, Any]:
    """The answer to `DELETE /api/v3/order`: the order, named by the cancel's own id."""
    return {
        "symbol": r.symbol,
        "origClientOrderId": r.client_order_id,
        "orderId": _wire_id(r.order_id),
        "orderListId": _NO_LIST,
        "clientOrderId": cancel_id,
        "transactTime": _ms(now_ns),
        "price": _amount(r.price),
        "origQty": _amount(r.quantity),
        "executedQty": _amount(r.cum_filled),
        "origQuoteOrderQty": _amount(_ZERO),
        "cummulativeQuoteQty": _amount(_cum_quote(r)),
        "status": r.status.value,
        "timeInForce": _tif(r),
        "type": spot_type(r),
        "side": r.side.value,
        "selfTradePreventionMode": _STP,
    }


def spot_trade_json(t: UserTrade) -> dict[str, Any]:
    """One row of `GET /api/v3/myTrades`."""
    f = t.fill
    return {
        "symbol": t.symbol,
        "id": int(f.trade_id),
        "orderId": t.order_id,
        "orderListId": _NO_LIST,
        "price": _amount(f.price),
        "qty": _amount(f.quantity),
        "quoteQty": _amount(f.price * f.quantity),
        "commission": _amount(f.fee),
        "commissionAsset": f.fee_asset,
        "time": _ms(f.ts_ns),
        "isBuyer": t.side is Side.BUY,
        "isMaker": f.liquidity is Liquidity.MAKER,
        "isBestMatch": True,
    }


# --- the account -----------------------------------------------------------------------
def spot_account_json(
    wallet: list[Balance], fees: FeeSchedule, now_ns: int, *, omit_zero: bool = False
) -> dict[str, Any]:
    """`GET /api/v3/account`: the spot wallet, free and locked per asset."""
    maker, taker = fees.rate(Liquidity.MAKER), fees.rate(Liquidity.TAKER)
    return {
        # The integer commissions are in basis points.
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": _amount(maker),
            "taker": _amount(taker),
            "buyer": _amount(_ZERO),
            "seller": _amount(_ZERO),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": _ms(now_ns),
        "accountType": "SPOT",
        "balances": [
            {
                "asset": b.asset,
                "free": _amount(b.available),
                "locked": _amount(b.wallet - b.available),
            }
            for b in wallet
            if not (omit_zero and b.wallet == 0)
        ],
        "permissions": ["SPOT"],
        "uid": 0,
    }


# --- the user data stream --------------------------------------------------------------
def execution_report(r: ExecutionReport, now_ns: int) -> dict[str, Any]:
    """An `executionReport` user-stream event."""
    f = r.last_fill
    if f is not None:
        execution = "TRADE"
    elif r.status in (OrderStatus.NEW, OrderStatus.PENDING_NEW):
        execution = "NEW"
    else:
        execution = r.status.value  # CANCELED, EXPIRED, REJECTED
    event: dict[str, Any] = {
        "e": "executionReport",
        "E": _ms(now_ns),
        "s": r.symbol,
        "c": r.client_order_id,
        "S": r.side.value,
        "o": spot_type(r),
        "f": _tif(r),
        "q": _amount(r.quantity),
        "p": _amount(r.price),
        "P": _amount(_ZERO),
        "F": _amount(_ZERO),
        "g": _NO_LIST,
        "C": r.client_order_id if r.status is OrderStatus.CANCELED else "",
        "x": execution,
        "X": r.status.value,
        "r": "NONE" if r.status is not OrderStatus.REJECTED else "OTHER",
        "i": _wire_id(r.order_id),
        "l": _amount(f.quantity if f else _ZERO),
        "z": _amount(r.cum_filled),
        "L": _amount(f.price if f else _ZERO),
        "n": _amount(f.fee) if f else "0",
        "N": f.fee_asset if f else None,
        "T": _ms(f.ts_ns if f else r.venue_ts_ns),
        "t": int(f.trade_id) if f else -1,
        "I": 0,
        "w": _working(r),
        "m": f is not None and f.liquidity is Liquidity.MAKER,
        "M": False,
        "O": _ms(r.venue_receive_ns or r.venue_ts_ns),
        "Z": _amount(_cum_quote(r)),
        "Y": _amount(f.price * f.quantity if f else _ZERO),
        "Q": _amount(_ZERO),
        "V": _STP,
    }
    if _working(r) or (f is not None and f.liquidity is Liquidity.MAKER):
        event["W"] = _working_ms(r)  # only for an order that reached the book
    return event


def account_position(wallet: list[Balance], update_ns: int, now_ns: int) -> dict[str, Any]:
    """An `outboundAccountPosition` event: these assets of the spot wallet, free and locked."""
    return {
        "e": "outboundAccountPosition",
        "E": _ms(now_ns),
        "u": _ms(update_ns),
        "B": [
            {"a": b.asset, "f": _amount(b.available), "l": _amount(b.wallet - b.available)}
            for b in wallet
        ],
    }
