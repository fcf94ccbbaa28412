"""Binance USD-M wire objects to legato's venue vocabulary, and back; pure, no I/O.

Every venue time stays on the venue's clock and becomes integer nanoseconds (ms × 10⁶);
every price, quantity and fee stays a `Decimal` exactly as Binance wrote it. The spot
adapter (`spot_parse`) shares these conventions, the fee ledger and the error mapping,
giving the latter its own reading of the codes whose meaning differs (`reject_reason`).

It is long (about 700 lines) because it holds one small pure function per wire object, in
both directions; they share their number and time conventions and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from venues.adapter_kit import check_market_tif
from venues.binance import wire
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
    AccountSnapshot,
    AckKind,
    Balance,
    BookSnapshot,
    BookTicker,
    ExecutionReport,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)

NS_PER_MS = 1_000_000
_ZERO = Decimal(0)
MARGIN_ASSET = "USDT"


def ms_to_ns(ms: int) -> int:
    return ms * NS_PER_MS


def decimal_str(value: Decimal) -> str:
    """A price or quantity as Binance wants it: plain digits, no exponent, no trailing zeros.

    Trailing zeros matter: "0.0010" has more decimals than a 0.001 step allows and Binance
    answers -1111 (precision) to it.
    """
    text = format(value, "f")  # normalize() would round to the context's 28 digits
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# --- enums -----------------------------------------------------------------------------

_TIF_TO_WIRE = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.POST_ONLY: "GTX",  # Binance: Good Till Crossing, i.e. post-only
}
_TIF_FROM_WIRE = {v: k for k, v in _TIF_TO_WIRE.items()} | {
    "GTD": TimeInForce.GTC,  # good-till-date rests like GTC until its date; legato never sends it
}

_STATUS_FROM_WIRE = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # expired by self-trade prevention
    # Not a Binance status: the simulator answers it on a RECEIPT venue, before the checks.
    "PENDING_NEW": OrderStatus.PENDING_NEW,
    "NEW_INSURANCE": OrderStatus.NEW,  # liquidation orders taken over by the insurance fund
    "NEW_ADL": OrderStatus.NEW,
}

# Why an order expired (`er` of ORDER_TRADE_UPDATE).
_EXPIRY_REASONS = {
    "1": "expired by self-trade prevention",
    "2": "IOC order could not be filled completely; the rest was canceled",
    "3": "IOC order stopped by self-trade prevention; the rest was canceled",
    "4": "canceled by a higher-priority reduce-only order",
    "5": "expired when the account was liquidated",
    "6": "GTE condition no longer satisfied",
    "7": "symbol delisted",
    "8": "initial order expired after its stop order triggered",
    "9": "market order could not be filled completely; the rest was canceled",
}


def tif_to_wire(tif: TimeInForce) -> str:
    return _TIF_TO_WIRE[tif]


def tif_from_wire(text: str) -> TimeInForce:
    try:
        return _TIF_FROM_WIRE[text]
    except KeyError:
        raise ValueError(f"unknown Binance timeInForce {text!r}") from None


def status_from_wire(text: str) -> OrderStatus:
    try:
        return _STATUS_FROM_WIRE[text]
    except KeyError:
        raise ValueError(f"unknown Binance order status {text!r}") from None


def order_type_from_wire(text: str) -> OrderType:
    # legato sends only LIMIT and MARKET. An order placed elsewhere on the account (a stop,
    # a take-profit) is shown by how it executes once triggered.
    return OrderType.MARKET if "MARKET" in text else OrderType.LIMIT


def side_from_wire(text: str) -> Side:
    return Side(text)


# --- requests --------------------------------------------------------------------------


def order_params(order: NewOrder, resp_type: str | None = None) -> dict[str, str]:
    """The parameters of POST /fapi/v1/order (and of one /batchOrders item) for `order`.

    Raises `OrderRejected` for an order Binance would carry out differently than asked.
    """
    params = {
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": decimal_str(order.quantity),
        "newClientOrderId": order.client_order_id,
    }
    if order.type is OrderType.LIMIT:
        if order.price is None:
            raise ValueError(f"limit order {order.client_order_id!r} needs a price")
        params["price"] = decimal_str(order.price)
        params["timeInForce"] = tif_to_wire(order.time_in_force)
    else:
        check_market_tif(order)  # refused here, as the exchange core refuses it
    if order.reduce_only:
        params["reduceOnly"] = "true"
    if resp_type is not None:
        params["newOrderRespType"] = resp_type
    return params


# --- orders ----------------------------------------------------------------------------


def order_report(
    o: wire.OrderResponse,
    venue: str,
    *,
    ack_kind: AckKind | None = None,
    cum_fee: Decimal = _ZERO,
) -> ExecutionReport:
    """An order as a REST answer states it. Binance's REST orders carry no fees: the
    caller passes what it has learned from the account's trades."""
    order_type = order_type_from_wire(o.orig_type or o.type)
    status = status_from_wire(o.status)
    filled = o.executed_qty
    avg: Decimal | None = None
    if filled > 0:
        avg = o.avg_price if o.avg_price > 0 else o.cum_quote / filled
    accept: int | None = None
    if o.time is not None:
        accept = ms_to_ns(o.time)
    elif status is OrderStatus.NEW and filled == 0 and o.update_time:
        accept = ms_to_ns(o.update_time)  # nothing has happened to it since it was accepted
    return ExecutionReport(
        venue=venue,
        symbol=o.symbol,
        client_order_id=o.client_order_id,
        order_id=str(o.order_id),
        side=side_from_wire(o.side),
        order_type=order_type,
        time_in_force=tif_from_wire(o.time_in_force),
        status=status,
        quantity=o.orig_qty,
        price=o.price if order_type is OrderType.LIMIT and o.price > 0 else None,
        cum_filled=filled,
        avg_price=avg,
        cum_fee=cum_fee,
        ack_kind=ack_kind,
        venue_accept_ns=accept,
        venue_ts_ns=ms_to_ns(o.update_time or o.time or 0),
        reduce_only=o.reduce_only,
    )


def user_trade_fill(t: wire.UserTrade) -> Fill:
    """One row of /userTrades as a fill."""
    return Fill(
        trade_id=str(t.id),
        price=t.price,
        quantity=t.qty,
        fee=t.commission,
        fee_asset=t.commission_asset,
        liquidity=Liquidity.MAKER if t.maker else Liquidity.TAKER,
        ts_ns=ms_to_ns(t.time),
    )


def stream_fill(o: wire.OrderUpdate) -> Fill | None:
    """The execution an ORDER_TRADE_UPDATE reports, if it reports one."""
    if o.execution_type != "TRADE" or o.last_qty <= 0:
        return None
    return Fill(
        trade_id=str(o.trade_id),
        price=o.last_price,
        quantity=o.last_qty,
        fee=o.commission if o.commission is not None else _ZERO,
        fee_asset=o.commission_asset or MARGIN_ASSET,
        liquidity=Liquidity.MAKER if o.maker else Liquidity.TAKER,
        ts_ns=ms_to_ns(o.trade_time),
    )


def stream_report(
    event: wire.OrderTradeUpdate, venue: str, *, cum_fee: Decimal = _ZERO, fee_asset: str = ""
) -> ExecutionReport:
    """An ORDER_TRADE_UPDATE as an execution report (the caller sums the fees per order:
    the event carries only this trade's commission)."""
    o = event.order
    order_type = order_type_from_wire(o.orig_type or o.type)
    status = status_from_wire(o.status)
    tif = tif_from_wire(o.time_in_force)
    reason: RejectReason | None = None
    message: str | None = None
    if status is OrderStatus.EXPIRED:
        message = _EXPIRY_REASONS.get(o.expiry_reason)
        if tif is TimeInForce.FOK and o.cum_qty == 0:
            reason = RejectReason.FOK_NOT_FILLABLE
    return ExecutionReport(
        venue=venue,
        symbol=o.symbol,
        client_order_id=o.client_order_id,
        order_id=str(o.order_id),
        side=side_from_wire(o.side),
        order_type=order_type,
        time_in_force=tif,
        status=status,
        quantity=o.quantity,
        price=o.price if order_type is OrderType.LIMIT and o.price > 0 else None,
        cum_filled=o.cum_qty,
        avg_price=o.avg_price if o.cum_qty > 0 and o.avg_price > 0 else None,
        cum_fee=cum_fee,
        fee_asset=fee_asset,
        last_fill=stream_fill(o),
        reject_reason=reason,
        reject_message=message,
        venue_accept_ns=ms_to_ns(o.trade_time) if o.execution_type == "NEW" else None,
        venue_ts_ns=ms_to_ns(o.trade_time or event.transaction_time),
        reduce_only=o.reduce_only,
    )


class FeeLedger:
    """Commissions per order, by trade id, from the stream and from the account's trades.

    Binance reports a commission per trade and never per order, so the cumulative fee of
    an order is this ledger's sum; a trade seen twice counts once. An order's fee asset is
    the one its trades were charged in (a spot buy's is often the base asset); a trade
    charged in another asset (the account's BNB ran out mid-order) is kept apart: the
    cumulative fee never adds two assets together. A trade whose asset is not known ("")
    counts in the order's asset.
    """

    def __init__(self, max_orders: int = 50_000) -> None:
        self._trades: dict[tuple[str, str], dict[str, tuple[Decimal, Decimal, str]]] = {}
        self._max_orders = max_orders

    def add(
        self,
        symbol: str,
        order_id: str,
        trade_id: str,
        qty: Decimal,
        fee: Decimal,
        asset: str = "",
    ) -> None:
        key = (symbol, order_id)
        if key not in self._trades and len(self._trades) >= self._max_orders:
            # Bounded: the oldest order is forgotten; asked again, its fees come from
            # the account's trades.
            del self._trades[next(iter(self._trades))]
        trades = self._trades.setdefault(key, {})
        if not asset and trade_id in trades:
            asset = trades[trade_id][2]  # a source that does not name the asset keeps it
        trades[trade_id] = (qty, fee, asset)

    def add_fill(self, report: ExecutionReport) -> None:
        f = report.last_fill
        if f is not None:
            self.add(report.symbol, report.order_id, f.trade_id, f.quantity, f.fee, f.fee_asset)

    def fee_asset(self, symbol: str, order_id: str) -> str:
        """The asset the order's fees are charged in ("" when no trade has said)."""
        for _, _, asset in self._trades.get((symbol, order_id), {}).values():
            if asset:
                return asset
        return ""

    def fee(self, symbol: str, order_id: str) -> Decimal:
        """The order's cumulative fee, in its `fee_asset`."""
        trades = self._trades.get((symbol, order_id))
        if not trades:
            return _ZERO
        asset = self.fee_asset(symbol, order_id)
        return sum((fee for _, fee, a in trades.values() if a in ("", asset)), _ZERO)

    def mixed(self, symbol: str, order_id: str) -> bool:
        """Whether the order's trades were charged in more than one asset."""
        trades = self._trades.get((symbol, order_id), {})
        return len({a for _, _, a in trades.values() if a}) > 1

    def filled(self, symbol: str, order_id: str) -> Decimal:
        trades = self._trades.get((symbol, order_id))
        return sum((qty for qty, _, _ in trades.values()), _ZERO) if trades else _ZERO

    def complete(self, report: ExecutionReport) -> bool:
        """Whether the ledger has every trade of the order up to the report's fill."""
        return self.filled(report.symbol, report.order_id) >= report.cum_filled

    def forget(self, symbol: str, order_id: str) -> None:
        self._trades.pop((symbol, order_id), None)


# --- instruments, books, accounts ------------------------------------------------------


def instrument(s: wire.SymbolInfo) -> Instrument:
    """A symbol's rules from its exchangeInfo filters (tick, lot, min notional, max qty)."""
    by_type = {f.filter_type: f for f in s.filters}
    price_filter = by_type.get("PRICE_FILTER")
    lot = by_type.get("LOT_SIZE")
    if price_filter is None or price_filter.tick_size is None:
        raise ValueError(f"exchangeInfo symbol {s.symbol} has no PRICE_FILTER tickSize")
    if lot is None or lot.step_size is None:
        raise ValueError(f"exchangeInfo symbol {s.symbol} has no LOT_SIZE stepSize")
    notional = by_type.get("MIN_NOTIONAL")
    kwargs: dict[str, Decimal] = {}
    if notional is not None and notional.notional is not None:
        kwargs["min_notional"] = notional.notional
    if lot.max_qty is not None:
        kwargs["max_qty"] = lot.max_qty
    if s.contract_size is not None:
        kwargs["contract_size"] = s.contract_size
    # Every USD-M symbol is a futures contract; a listing without a contract type (the
    # simulator's spot symbols) is a spot market.
    kind = InstrumentKind.PERP if s.contract_type not in ("", "SPOT") else InstrumentKind.SPOT
    return Instrument(
        symbol=s.symbol,
        base=s.base_asset,
        quote=s.quote_asset,
        kind=kind,
        tick=price_filter.tick_size.normalize(),
        lot=lot.step_size.normalize(),
        **kwargs,
    )


def instruments(info: wire.ExchangeInfo) -> list[Instrument]:
    """The symbols open for trading."""
    return [instrument(s) for s in info.symbols if s.status == "TRADING"]


DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def depth_limit(depth: int) -> int:
    """The smallest depth Binance serves that holds `depth` levels."""
    for limit in DEPTH_LIMITS:
        if limit >= depth:
            return limit
    return DEPTH_LIMITS[-1]


def book(d: wire.Depth, venue: str, symbol: str, depth: int, ts_ns: int = 0) -> BookSnapshot:
    """A depth answer (USD-M's and spot's alike). Spot's carries no time: `ts_ns`, the venue
    time the caller read it at, stands in."""
    return BookSnapshot(
        venue=venue,
        symbol=symbol,
        bids=[(p, q) for p, q in d.bids[:depth]],
        asks=[(p, q) for p, q in d.asks[:depth]],
        ts_ns=ms_to_ns(d.transaction_time or d.event_time) or ts_ns,
    )


def position(p: wire.PositionRisk) -> Position:
    """One positionRisk row. v2 gives the leverage, v3 the initial margin: the other is
    implied by the notional at mark."""
    notional = abs(p.notional) if p.notional else abs(p.position_amt * p.mark_price)
    im = p.initial_margin if p.initial_margin is not None else p.position_initial_margin
    if p.leverage is not None and p.leverage > 0:
        leverage = int(p.leverage)
        if im is None:
            im = notional / p.leverage
    elif im is not None and im > 0:
        leverage = int((notional / im).to_integral_value())
    else:
        leverage = 1  # flat position on v3: nothing says, and nothing depends on it
    return Position(
        symbol=p.symbol,
        quantity=p.position_amt,
        entry_price=p.entry_price,
        mark_price=p.mark_price,
        unrealized_pnl=p.un_realized_profit,
        initial_margin=im if im is not None else _ZERO,
        leverage=leverage,
    )


def positions(rows: list[wire.PositionRisk]) -> list[Position]:
    """Open positions only: v2 lists every symbol of the venue, mostly flat."""
    return [position(p) for p in rows if p.position_amt != 0]


def account(
    a: wire.AccountInfo,
    rows: list[wire.PositionRisk],
    *,
    venue: str,
    account_id: str,
    ts_ns: int,
) -> AccountSnapshot:
    """The account at one venue instant. Binance's account answer has no timestamp of its
    own, so the caller gives the venue time it was read at."""
    balances = [
        Balance(asset=x.asset, wallet=x.wallet_balance, available=x.available_balance)
        for x in a.assets
    ]
    return AccountSnapshot(
        venue=venue,
        account_id=account_id,
        balances=balances,
        positions=positions(rows),
        margin_asset=MARGIN_ASSET,
        wallet_balance=a.total_wallet_balance,
        unrealized_pnl=a.total_unrealized_profit,
        position_initial_margin=a.total_position_initial_margin,
        open_order_initial_margin=a.total_open_order_initial_margin,
        available_margin=a.available_balance,
        ts_ns=ts_ns,
    )


def market_event(payload: wire.MarketPayload, venue: str) -> MarketEvent:
    match payload:
        case wire.BookTickerEvent():
            return BookTicker(
                venue=venue,
                symbol=payload.symbol,
                bid=payload.bid,
                bid_qty=payload.bid_qty,
                ask=payload.ask,
                ask_qty=payload.ask_qty,
                ts_ns=ms_to_ns(payload.transaction_time or payload.event_time),
            )
        case wire.TradeEvent() | wire.AggTradeEvent():
            trade_id = payload.trade_id if isinstance(payload, wire.TradeEvent) else payload.agg_id
            return MarketTrade(
                venue=venue,
                symbol=payload.symbol,
                trade_id=trade_id,
                price=payload.price,
                quantity=payload.quantity,
                # The buyer made the market: the seller took it.
                aggressor=Side.SELL if payload.buyer_is_maker else Side.BUY,
                ts_ns=ms_to_ns(payload.trade_time or payload.event_time),
            )


# --- errors ----------------------------------------------------------------------------

AUTH_CODES = frozenset({-1002, -1021, -1022, -1099, -2014, -2015, -2017})
RATE_LIMIT_CODES = frozenset({-1003, -1015})
OUTCOME_UNKNOWN_CODES = frozenset({-1006, -1007})  # "execution status unknown"
UNAVAILABLE_CODES = frozenset({-1001, -1008, -1016})  # refused before processing: retry
UNKNOWN_ORDER_CODES = frozenset({-2011, -2013})
INVALID_LISTEN_KEY = -1125
STALE_TIMESTAMP = -1021
BAD_PRECISION = -1111

REJECT_REASONS: dict[int, RejectReason] = {
    -1121: RejectReason.UNKNOWN_SYMBOL,
    -1122: RejectReason.UNKNOWN_SYMBOL,  # symbol not trading
    # A generic refusal. The simulator uses it for its injected rejects; the model has no
    # reason for "the venue said no" that is not injected (see the adapter's report).
    -2010: RejectReason.VENUE_REFUSED,
    -2018: RejectReason.INSUFFICIENT_MARGIN,
    -2019: RejectReason.INSUFFICIENT_MARGIN,
    -2028: RejectReason.INSUFFICIENT_MARGIN,
    -4050: RejectReason.INSUFFICIENT_MARGIN,
    -4051: RejectReason.INSUFFICIENT_MARGIN,
    -2022: RejectReason.REDUCE_ONLY_WOULD_INCREASE,
    -2024: RejectReason.REDUCE_ONLY_WOULD_INCREASE,
    -4118: RejectReason.REDUCE_ONLY_WOULD_INCREASE,
    -1115: RejectReason.INVALID_PRICE,  # timeInForce the order type cannot take
    -4001: RejectReason.INVALID_PRICE,
    -4002: RejectReason.INVALID_PRICE,
    -4013: RejectReason.INVALID_PRICE,
    -4016: RejectReason.INVALID_PRICE,  # above the mark-price band
    -4024: RejectReason.INVALID_PRICE,  # below the mark-price band
    -4131: RejectReason.INVALID_PRICE,  # PERCENT_PRICE: counterparty too far from mark
    -4003: RejectReason.INVALID_QUANTITY,
    -4004: RejectReason.INVALID_QUANTITY,
    -4005: RejectReason.INVALID_QUANTITY,
    -4014: RejectReason.PRICE_OFF_TICK,
    -4023: RejectReason.QTY_OFF_LOT,
    -4015: RejectReason.INVALID_CLIENT_ORDER_ID,
    -4116: RejectReason.DUPLICATE_CLIENT_ORDER_ID,
    -4164: RejectReason.BELOW_MIN_NOTIONAL,
    -5021: RejectReason.FOK_NOT_FILLABLE,
    -5022: RejectReason.POST_ONLY_WOULD_CROSS,
}

# -1013 (filter failure) and -1111 (precision) name the failing filter only in the message.
_FILTER_HINTS: tuple[tuple[str, RejectReason], ...] = (
    ("min_notional", RejectReason.BELOW_MIN_NOTIONAL),
    ("notional", RejectReason.BELOW_MIN_NOTIONAL),
    ("percent_price", RejectReason.INVALID_PRICE),
    ("price_filter", RejectReason.PRICE_OFF_TICK),
    ("tick", RejectReason.PRICE_OFF_TICK),
    ("lot_size", RejectReason.QTY_OFF_LOT),
    ("step", RejectReason.QTY_OFF_LOT),
    ("margin", RejectReason.INSUFFICIENT_MARGIN),
    ("client order id", RejectReason.INVALID_CLIENT_ORDER_ID),
    ("clientorderid", RejectReason.INVALID_CLIENT_ORDER_ID),
    ("post-only", RejectReason.POST_ONLY_WOULD_CROSS),
    ("post only", RejectReason.POST_ONLY_WOULD_CROSS),
)


def filter_reason(code: int, msg: str) -> RejectReason:
    """Which rule a -1013 filter failure or a -1111 precision error broke."""
    text = msg.lower()
    for hint, reason in _FILTER_HINTS:
        if hint in text:
            return reason
    if "price" in text:
        return RejectReason.PRICE_OFF_TICK if code == -1111 else RejectReason.INVALID_PRICE
    if code == -1111:
        return RejectReason.QTY_OFF_LOT  # precision errors are mostly about the quantity
    return RejectReason.INVALID_QUANTITY


def _places(x: Decimal) -> int:
    exponent = x.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def precision_reason(order: NewOrder, inst: Instrument) -> RejectReason | None:
    """Which of an order's numbers has more decimals (or is off the grid) than its
    instrument allows; None when neither does."""
    if order.price is not None and (
        _places(order.price) > _places(inst.tick) or not inst.on_tick(order.price)
    ):
        return RejectReason.PRICE_OFF_TICK
    if _places(order.quantity) > _places(inst.lot) or not inst.on_lot(order.quantity):
        return RejectReason.QTY_OFF_LOT
    return None


def reject_reason(code: int, msg: str) -> RejectReason | None:
    """Which order refusal a USD-M error code means (None: the code is no refusal)."""
    reason = REJECT_REASONS.get(code)
    if reason is None and code in (-1013, -1111):
        reason = filter_reason(code, msg)
    return reason


def error_from_code(
    code: int,
    msg: str,
    *,
    venue: str,
    status: int = 400,
    mutating: bool = False,
    client_order_id: str | None = None,
    retry_after_s: float | None = None,
    reject_reason: Callable[[int, str], RejectReason | None] = reject_reason,
) -> VenueError:
    """The legato exception for a Binance error code (see the module's tables); which
    refusal a code means is the API's `reject_reason` (USD-M's by default)."""
    text = msg or f"Binance error {code}"
    if code in AUTH_CODES:
        return AuthError(text, venue=venue, code=code)
    if code in RATE_LIMIT_CODES or status in (418, 429):
        return RateLimited(text, venue=venue, code=code, retry_after_s=retry_after_s)
    if code in OUTCOME_UNKNOWN_CODES:
        if mutating:
            return OutcomeUnknown(text, venue=venue, code=code, client_order_id=client_order_id)
        return VenueUnavailable(text, venue=venue, code=code)  # a read: just ask again
    if code in UNAVAILABLE_CODES:
        return VenueUnavailable(text, venue=venue, code=code)
    if code in UNKNOWN_ORDER_CODES:
        return UnknownOrder(text, venue=venue, code=code)
    reason = reject_reason(code, msg)
    if reason is not None:
        return OrderRejected(
            text, reason=reason, venue=venue, code=code, client_order_id=client_order_id
        )
    if -1199 <= code <= -1100 or -4099 <= code <= -4000:
        return InvalidRequest(text, venue=venue, code=code)
    if status >= 500:
        return _server_error(status, text, venue, mutating, client_order_id, code)
    return VenueError(text, venue=venue, code=code)


def _server_error(
    status: int,
    text: str,
    venue: str,
    mutating: bool,
    client_order_id: str | None,
    code: int | None,
) -> VenueError:
    # Binance's 503 "Service Unavailable." is a certain failure; any other 5xx (and 408) on
    # a request that changes state may have been carried out.
    certain_failure = status == 503 and "service unavailable" in text.lower()
    if mutating and not certain_failure:
        return OutcomeUnknown(
            f"{text} (HTTP {status}; execution status unknown)",
            venue=venue,
            code=code,
            client_order_id=client_order_id,
        )
    return VenueUnavailable(f"{text} (HTTP {status})", venue=venue, code=code)


def error_from_response(
    status: int,
    body: bytes,
    *,
    venue: str,
    mutating: bool = False,
    client_order_id: str | None = None,
    retry_after_s: float | None = None,
    reject_reason: Callable[[int, str], RejectReason | None] = reject_reason,
) -> VenueError:
    """The legato exception for a non-2xx answer: by its JSON error code when it has one,
    else by its HTTP status."""
    try:
        err: wire.ErrorBody | None = wire.ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        err = None
    if status in (418, 429):
        code = err.code if err is not None else None
        msg = err.msg if err is not None else f"rate limited (HTTP {status})"
        return RateLimited(msg, venue=venue, code=code, retry_after_s=retry_after_s)
    if err is not None and err.code < 0:
        return error_from_code(
            err.code,
            err.msg,
            venue=venue,
            status=status,
            mutating=mutating,
            client_order_id=client_order_id,
            retry_after_s=retry_after_s,
            reject_reason=reject_reason,
        )
    snippet = body[:200].decode(errors="replace").strip() or "no body"
    if status >= 500 or status == 408:
        return _server_error(status, snippet, venue, mutating, client_order_id, None)
    if status in (401, 403):
        return AuthError(f"HTTP {status}: {snippet}", venue=venue)
    if status == 404:
        return InvalidRequest(f"HTTP 404 (no such endpoint): {snippet}", venue=venue)
    return VenueError(f"HTTP {status}: {snippet}", venue=venue)


def retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header (Binance sends whole seconds)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None
