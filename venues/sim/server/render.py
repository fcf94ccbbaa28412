"""Venue objects as JSON in Binance USD-M wire shapes: REST answers and stream events."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from venues.model import (
    AccountSnapshot,
    BookTicker,
    ExecutionReport,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarketTrade,
    OrderStatus,
    Side,
    TimeInForce,
)
from venues.sim.exchange import MARGIN_ASSET, UserTrade
from venues.sim.host import SimVenue

NS_PER_MS = 1_000_000
MAX_PRICE = Decimal(1_000_000_000)
_EIGHT = Decimal("1e-8")
_ZERO = Decimal(0)
_TIF_IN = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.POST_ONLY,
}
_TIF_OUT = {v: k for k, v in _TIF_IN.items()}


def _json(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _wire_id(order_id: str) -> int:
    """An order id as Binance sends it (a number; 0 before the venue gave one)."""
    return int(order_id) if order_id else 0


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
    """`GET /fapi/v1/exchangeInfo` for the venue's perpetuals (spot is /api/v3's)."""
    band = venue.exchange.price_band
    symbols = []
    for inst in venue.exchange.instruments.values():
        if inst.kind is not InstrumentKind.PERP:
            continue
        entry: dict[str, Any] = {
            "symbol": inst.symbol,
            "pair": inst.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
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
            "underlyingType": "COIN",
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
        "orderId": _wire_id(r.order_id),
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
        "i": _wire_id(r.order_id),
        "l": _fixed(f.quantity if f else _ZERO, inst.lot),
        "z": _fixed(r.cum_filled, inst.lot),
        "L": _fixed(f.price, inst.tick) if f else "0",
        "T": _ms(f.ts_ns if f else r.venue_ts_ns),
        "t": int(f.trade_id) if f else 0,
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
        "id": int(f.trade_id),
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
