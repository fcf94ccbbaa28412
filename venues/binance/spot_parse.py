"""Binance spot wire objects to legato's venue vocabulary, and back; pure, no I/O.

The conventions are USD-M's (`parse`): venue times stay on the venue's clock as integer ns,
prices, quantities and fees stay `Decimal` as Binance wrote them. What spot does its own way:
post-only is an order type (LIMIT_MAKER) rather than a time in force; a cancel names the
order by `origClientOrderId` (its `clientOrderId` is the cancel's own); fees are charged in
the asset received (the base asset on a buy) unless the account pays them in BNB; and the
account is a wallet of assets, free and locked, with no positions and no margin.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from venues.adapter_kit import check_market_tif, spot_account
from venues.binance import parse, spot_wire
from venues.binance.parse import decimal_str, ms_to_ns
from venues.errors import OrderRejected
from venues.model import (
    AccountSnapshot,
    AckKind,
    Balance,
    BookTicker,
    ExecutionReport,
    Fill,
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
    pending_report,
)

_ZERO = Decimal(0)
book = parse.book  # a depth answer reads alike on both APIs (spot's has no time)
LIMIT_MAKER = "LIMIT_MAKER"  # Binance spot's post-only order type
# Spot order types that execute as market orders once triggered.
_MARKET_TYPES = frozenset({"MARKET", "STOP_LOSS", "TAKE_PROFIT"})


# --- requests --------------------------------------------------------------------------


def order_params(order: NewOrder, resp_type: str) -> dict[str, str]:
    """The parameters of POST /api/v3/order for `order`.

    Raises `OrderRejected` for an order Binance spot cannot carry out as asked: a
    reduce-only order (spot has none), a market order that is FOK or post-only.
    """
    if order.reduce_only:
        raise OrderRejected(
            f"order {order.client_order_id!r} is reduce-only, and Binance spot has no "
            "reduce-only orders (its capabilities say reduce_only=False); nothing was sent",
            reason=RejectReason.VENUE_REFUSED,
            client_order_id=order.client_order_id,
        )
    params = {"symbol": order.symbol, "side": order.side.value}
    if order.type is OrderType.LIMIT:
        if order.price is None:
            raise ValueError(f"limit order {order.client_order_id!r} needs a price")
        if order.time_in_force is TimeInForce.POST_ONLY:
            params["type"] = LIMIT_MAKER  # takes no timeInForce
        else:
            params["type"] = "LIMIT"
            params["timeInForce"] = order.time_in_force.value
        params["price"] = decimal_str(order.price)
    else:
        check_market_tif(order)
        params["type"] = "MARKET"  # takes no timeInForce: it never rests
    params["quantity"] = decimal_str(order.quantity)
    params["newClientOrderId"] = order.client_order_id
    params["newOrderRespType"] = resp_type
    return params


# --- orders ----------------------------------------------------------------------------


def order_type_from_wire(text: str) -> OrderType:
    # legato sends LIMIT, LIMIT_MAKER and MARKET; an order placed elsewhere on the account
    # (a stop, a take-profit) is shown by how it executes once triggered.
    return OrderType.MARKET if text in _MARKET_TYPES else OrderType.LIMIT


def tif_from_wire(order_type: str, tif: str) -> TimeInForce:
    # A LIMIT_MAKER order reads back with timeInForce GTC: its type says it is post-only.
    return TimeInForce.POST_ONLY if order_type == LIMIT_MAKER else parse.tif_from_wire(tif)


def ack_report(
    order: NewOrder, ack: spot_wire.OrderAck, venue: str, ack_kind: AckKind
) -> ExecutionReport:
    """What an ACK answer says: the venue took the order (its id, its time) and nothing of
    what became of it; that comes on the stream. On a venue declared RECEIPT (the
    simulator's), the order is still pending its checks."""
    pending = pending_report(order, venue, ack_kind, venue_ts_ns=ms_to_ns(ack.transact_time))
    if ack_kind is AckKind.RECEIPT:
        return msgspec.structs.replace(
            pending, order_id=str(ack.order_id), venue_receive_ns=pending.venue_ts_ns
        )
    return msgspec.structs.replace(
        pending,
        order_id=str(ack.order_id),
        status=OrderStatus.NEW,
        venue_accept_ns=pending.venue_ts_ns,
    )


def order_report(
    o: spot_wire.Order,
    venue: str,
    *,
    ack_kind: AckKind | None = None,
    cum_fee: Decimal = _ZERO,
    fee_asset: str = "",
) -> ExecutionReport:
    """An order as a REST answer states it. Its fees are the caller's to give: only a FULL
    answer lists them (`answer_fills`), and only for the trades it made on arrival."""
    order_type = order_type_from_wire(o.type)
    status = parse.status_from_wire(o.status)
    filled = o.executed_qty
    canceled = bool(o.orig_client_order_id)
    accept: int | None = None
    if o.time is not None:
        accept = ms_to_ns(o.time)
    elif o.transact_time is not None and not canceled:
        accept = ms_to_ns(o.transact_time)  # a new-order answer: the time it was taken
    return ExecutionReport(
        venue=venue,
        symbol=o.symbol,
        client_order_id=o.orig_client_order_id or o.client_order_id,
        order_id=str(o.order_id),
        side=Side(o.side),
        order_type=order_type,
        time_in_force=tif_from_wire(o.type, o.time_in_force),
        status=status,
        quantity=o.orig_qty,
        price=o.price if order_type is OrderType.LIMIT and o.price > 0 else None,
        cum_filled=filled,
        avg_price=o.cummulative_quote_qty / filled if filled > 0 else None,
        cum_fee=cum_fee,
        fee_asset=fee_asset,
        ack_kind=ack_kind,
        venue_accept_ns=accept,
        venue_ts_ns=ms_to_ns(o.update_time or o.transact_time or o.time or 0),
    )


def answer_fills(o: spot_wire.Order) -> list[Fill]:
    """The trades a FULL answer lists: made as the order arrived, so each a taker's."""
    ts = ms_to_ns(o.transact_time or 0)
    return [
        Fill(
            trade_id=str(f.trade_id),
            price=f.price,
            quantity=f.qty,
            fee=f.commission,
            fee_asset=f.commission_asset,
            liquidity=Liquidity.TAKER,
            ts_ns=ts,
        )
        for f in o.fills
    ]


# USD-M's `parse.user_trade_fill` reads another schema (`maker`, not `isMaker`).
def my_trade_fill(t: spot_wire.MyTrade) -> Fill:
    """One row of /myTrades as a fill."""
    return Fill(
        trade_id=str(t.id),
        price=t.price,
        quantity=t.qty,
        fee=t.commission,
        fee_asset=t.commission_asset,
        liquidity=Liquidity.MAKER if t.is_maker else Liquidity.TAKER,
        ts_ns=ms_to_ns(t.time),
    )


# Not USD-M's `parse.stream_fill`: a spot fee's asset is unknown ("") until one is charged.
def stream_fill(e: spot_wire.ExecutionReportEvent) -> Fill | None:
    """The execution an executionReport reports, if it reports one."""
    if e.execution_type != "TRADE" or e.last_qty <= 0:
        return None
    return Fill(
        trade_id=str(e.trade_id),
        price=e.last_price,
        quantity=e.last_qty,
        fee=e.commission,
        fee_asset=e.commission_asset or "",
        liquidity=Liquidity.MAKER if e.maker else Liquidity.TAKER,
        ts_ns=ms_to_ns(e.transaction_time),
    )


def stream_report(
    e: spot_wire.ExecutionReportEvent,
    venue: str,
    *,
    cum_fee: Decimal = _ZERO,
    fee_asset: str = "",
) -> ExecutionReport:
    """An executionReport as an execution report (the caller sums the fees per order: the
    event carries only this trade's commission)."""
    order_type = order_type_from_wire(e.type)
    status = parse.status_from_wire(e.status)
    tif = tif_from_wire(e.type, e.time_in_force)
    reason: RejectReason | None = None
    message: str | None = None
    if e.execution_type == "REJECTED" or status is OrderStatus.REJECTED:
        reason = RejectReason.VENUE_REFUSED
        message = e.reject_reason if e.reject_reason != "NONE" else None
    elif status is OrderStatus.EXPIRED:
        if e.status == "EXPIRED_IN_MATCH" or e.execution_type == "TRADE_PREVENTION":
            message = "expired by self-trade prevention"
        elif tif is TimeInForce.FOK and e.cum_qty == 0:
            reason = RejectReason.FOK_NOT_FILLABLE
    return ExecutionReport(
        venue=venue,
        symbol=e.symbol,
        client_order_id=e.orig_client_order_id or e.client_order_id,
        order_id=str(e.order_id),
        side=Side(e.side),
        order_type=order_type,
        time_in_force=tif,
        status=status,
        quantity=e.quantity,
        price=e.price if order_type is OrderType.LIMIT and e.price > 0 else None,
        cum_filled=e.cum_qty,
        avg_price=e.cum_quote / e.cum_qty if e.cum_qty > 0 and e.cum_quote > 0 else None,
        cum_fee=cum_fee,
        fee_asset=fee_asset,
        last_fill=stream_fill(e),
        reject_reason=reason,
        reject_message=message,
        venue_accept_ns=ms_to_ns(e.created or e.transaction_time)
        if e.execution_type == "NEW"
        else None,
        venue_ts_ns=ms_to_ns(e.transaction_time or e.event_time),
    )


# --- instruments, books, accounts ------------------------------------------------------


def instrument(s: spot_wire.SymbolInfo) -> Instrument:
    """A spot symbol's rules: tick from PRICE_FILTER, lot and max quantity from LOT_SIZE,
    minimum notional from NOTIONAL (or the older MIN_NOTIONAL)."""
    by_type = {f.filter_type: f for f in s.filters}
    price_filter = by_type.get("PRICE_FILTER")
    lot = by_type.get("LOT_SIZE")
    if price_filter is None or not price_filter.tick_size:
        raise ValueError(f"exchangeInfo symbol {s.symbol} has no PRICE_FILTER tickSize")
    if lot is None or not lot.step_size:
        raise ValueError(f"exchangeInfo symbol {s.symbol} has no LOT_SIZE stepSize")
    kwargs: dict[str, Decimal] = {}
    for name in ("NOTIONAL", "MIN_NOTIONAL"):
        notional = by_type.get(name)
        if notional is not None and notional.min_notional is not None:
            kwargs["min_notional"] = notional.min_notional
            break
    if lot.max_qty:
        kwargs["max_qty"] = lot.max_qty
    return Instrument(
        symbol=s.symbol,
        base=s.base_asset,
        quote=s.quote_asset,
        kind=InstrumentKind.SPOT,
        tick=price_filter.tick_size.normalize(),
        lot=lot.step_size.normalize(),
        **kwargs,
    )


def instruments(info: spot_wire.ExchangeInfo) -> tuple[list[Instrument], list[str]]:
    """The symbols open for spot trading, and why each other listed one was left out when
    its rules cannot be read (a symbol with no tick or lot cannot take an order)."""
    out: list[Instrument] = []
    problems: list[str] = []
    for s in info.symbols:
        if s.status != "TRADING" or not s.is_spot_trading_allowed:
            continue
        try:
            out.append(instrument(s))
        except ValueError as e:
            problems.append(str(e))
    return out, problems


def book_ticker(t: spot_wire.BookTicker, venue: str, ts_ns: int) -> BookTicker:
    """A bookTicker answer (no time of its own: the caller's venue time)."""
    return BookTicker(
        venue=venue,
        symbol=t.symbol,
        bid=t.bid_price,
        bid_qty=t.bid_qty,
        ask=t.ask_price,
        ask_qty=t.ask_qty,
        ts_ns=ts_ns,
    )


def account(
    a: spot_wire.Account, *, venue: str, account_id: str, quote: str, ts_ns: int
) -> AccountSnapshot:
    """A spot wallet as an account snapshot: every asset held in `spot_balances` (wallet:
    free + locked; available: free). A spot account has no margin wallet and no positions:
    `balances` is empty and the margin figures are zero (`margin_asset` names the quote asset
    buys spend), so nothing mistakes the spot wallet's cash for margin.
    """
    wallet = [
        Balance(asset=b.asset, wallet=b.free + b.locked, available=b.free)
        for b in a.balances
        if b.free or b.locked
    ]
    return spot_account(venue=venue, account_id=account_id, quote=quote, assets=wallet, ts_ns=ts_ns)


def market_book_ticker(t: spot_wire.BookTickerEvent, venue: str, ts_ns: int) -> BookTicker:
    """A `@bookTicker` event; spot's carries no time, so the caller gives the venue time."""
    return BookTicker(
        venue=venue,
        symbol=t.symbol,
        bid=t.bid,
        bid_qty=t.bid_qty,
        ask=t.ask,
        ask_qty=t.ask_qty,
        ts_ns=ms_to_ns(t.transaction_time or t.event_time) or ts_ns,
    )


def market_trade(t: spot_wire.TradeEvent, venue: str) -> MarketTrade:
    return MarketTrade(
        venue=venue,
        symbol=t.symbol,
        trade_id=t.trade_id,
        price=t.price,
        quantity=t.quantity,
        # The buyer made the market: the seller took it.
        aggressor=Side.SELL if t.buyer_is_maker else Side.BUY,
        ts_ns=ms_to_ns(t.trade_time or t.event_time),
    )


# --- errors ----------------------------------------------------------------------------

# Codes whose meaning is the same whatever the message.
REJECT_REASONS: dict[int, RejectReason] = {
    -1121: RejectReason.UNKNOWN_SYMBOL,
    -1122: RejectReason.UNKNOWN_SYMBOL,  # symbol not trading
    -1115: RejectReason.INVALID_PRICE,  # a timeInForce the order type cannot take
}

# -2010 (NEW_ORDER_REJECTED) says what the matching engine refused only in its message.
_NEW_ORDER_REFUSALS: tuple[tuple[str, RejectReason], ...] = (
    ("insufficient balance", RejectReason.INSUFFICIENT_BALANCE),
    ("immediately match and take", RejectReason.POST_ONLY_WOULD_CROSS),
    ("duplicate order", RejectReason.DUPLICATE_CLIENT_ORDER_ID),
    ("market is closed", RejectReason.UNKNOWN_SYMBOL),
    ("price * qty is zero", RejectReason.BELOW_MIN_NOTIONAL),
)

# -1013 filter failures spot has and USD-M has not: limits on the account, not the order.
_ACCOUNT_FILTERS = ("max_num_orders", "max_num_algo_orders", "max_position", "iceberg_parts")


def reject_reason(code: int, msg: str) -> RejectReason | None:
    """Which order refusal a Binance spot error code (and its message) means; None when
    the code is no refusal."""
    text = msg.lower()
    if code == -2010:
        for hint, reason in _NEW_ORDER_REFUSALS:
            if hint in text:
                return reason
        return RejectReason.VENUE_REFUSED
    if code == -1013 and any(f in text for f in _ACCOUNT_FILTERS):
        return RejectReason.VENUE_REFUSED
    reason = REJECT_REASONS.get(code)
    if reason is None and code in (-1013, -1111):
        reason = parse.filter_reason(code, msg)
    return reason
