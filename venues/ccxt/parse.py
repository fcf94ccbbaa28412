"""ccxt's unified dicts (orders, trades, markets, balances, positions, tickers, transfers and
withdrawals) and exceptions as legato's venue vocabulary; pure, no I/O.

ccxt hands numbers over as floats: each becomes the `Decimal` of its shortest repr, which is
the venue's decimal string for every price and quantity of up to 15 significant digits. Venue
times (ms) become integer ns and stay on the venue's clock. Where ccxt keeps the venue's raw
answer (`info`) and the venue speaks Binance's wire, its accept and match times are read from
there, as the native adapter reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import ccxt
import msgspec
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from venues.adapter_kit import spot_account
from venues.binance import parse as binance
from venues.binance import wallet_parse, wallet_wire
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
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
    TransferKind,
    TransferReceipt,
    TransferState,
    WalletKind,
)

NS_PER_MS = 1_000_000
_ZERO = Decimal(0)

Order = Mapping[str, Any]  # a ccxt order structure
Trade = Mapping[str, Any]  # a ccxt trade structure


def dec(value: object) -> Decimal | None:
    """A ccxt number (float, int or numeric string) as a Decimal; None for None or junk."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        # repr is the shortest string that reads back as the same float: "0.003", not the
        # binary expansion Decimal(0.003) would give.
        out = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return None
    return out if out.is_finite() else None


def ms_to_ns(ms: object) -> int | None:
    """Epoch milliseconds (int, float or numeric string) as integer ns; None if absent."""
    value = dec(ms)
    return None if value is None else int(value * NS_PER_MS)


# --- orders ------------------------------------------------------------------------------

_STATUS = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TIF = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "PO": TimeInForce.POST_ONLY,
    "GTX": TimeInForce.POST_ONLY,  # Binance's spelling, when ccxt passes it on
    "GTD": TimeInForce.GTC,  # rests like GTC until its date; legato never sends it
}


def order_status(order: Order) -> OrderStatus:
    """legato's status for a ccxt order. ccxt folds NEW and PARTIALLY_FILLED into "open"
    (told apart here by the filled amount) and passes statuses it does not know on as the
    venue wrote them (the simulator's PENDING_NEW)."""
    raw = order.get("status")
    filled = dec(order.get("filled")) or _ZERO
    match raw:
        case None | "open":
            # No status: an answer that only names the order (the venue took it).
            return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        case "closed":
            return OrderStatus.FILLED
        case str() if raw.lower() in _STATUS:
            return _STATUS[raw.lower()]
        case str() if raw.upper() in OrderStatus.__members__:
            return OrderStatus(raw.upper())
    raise ValueError(f"unknown ccxt order status {raw!r}")


def time_in_force(order: Order) -> TimeInForce:
    if order.get("postOnly"):
        return TimeInForce.POST_ONLY
    tif = order.get("timeInForce")
    if tif is None:
        return TimeInForce.GTC
    try:
        return _TIF[str(tif).upper()]
    except KeyError:
        raise ValueError(f"unknown ccxt timeInForce {tif!r}") from None


def order_type(order: Order) -> OrderType:
    # legato sends only limit and market orders; one placed elsewhere on the account (a stop)
    # is shown by how it executes once triggered, as the native adapter shows it.
    return OrderType.MARKET if "market" in str(order.get("type") or "").lower() else OrderType.LIMIT


def side(text: object) -> Side:
    if isinstance(text, str) and text.upper() in ("BUY", "SELL"):
        return Side(text.upper())
    raise ValueError(f"unknown ccxt side {text!r}")


def venue_times(order: Order, *, binance_wire: bool) -> tuple[int | None, int]:
    """(venue accept ns, venue ns of this state) of an order, both on the venue's clock.

    Binance's raw fields say when the order reached the book: USD-M's stream gives the
    transaction time `T` of its NEW event, spot's the working time `W` (else the creation
    time `O`) on every event; REST answers `time`/`workingTime`, or `updateTime` while
    nothing has happened to a NEW order since. Elsewhere the accept time is ccxt's
    `timestamp` (when the venue created the order) and the state's time its last update.
    """
    info = order.get("info")
    info = info if isinstance(info, Mapping) else {}
    if binance_wire:
        if "x" in info and "X" in info:  # a user-data stream event
            event = ms_to_ns(info.get("T")) or ms_to_ns(info.get("E")) or 0
            if "ps" in info:  # USD-M: only the NEW event says when it was accepted
                return (event if info.get("x") == "NEW" else None), event
            return ms_to_ns(info.get("W")) or ms_to_ns(info.get("O")), event
        status, filled = info.get("status"), dec(info.get("executedQty")) or _ZERO
        accept = ms_to_ns(info.get("workingTime")) or ms_to_ns(info.get("time"))
        if accept is None and status == "NEW" and filled == 0:
            accept = ms_to_ns(info.get("updateTime")) or ms_to_ns(info.get("transactTime"))
        last = (
            ms_to_ns(info.get("updateTime"))
            or ms_to_ns(info.get("transactTime"))
            or ms_to_ns(info.get("time"))
        )
        return accept, last or 0
    created = ms_to_ns(order.get("timestamp"))
    last = ms_to_ns(order.get("lastUpdateTimestamp")) or ms_to_ns(order.get("lastTradeTimestamp"))
    return created, last or created or 0


def client_id_of(order: Order, id_field: str | None = None) -> str:
    """The client order id a ccxt order carries ("" when it carries none)."""
    cid = order.get("clientOrderId")
    if not cid and id_field:
        info = order.get("info")
        cid = info.get(id_field) if isinstance(info, Mapping) else None
    return str(cid) if cid else ""


def order_id_of(order: Order) -> str:
    """The venue's order id as a string; "" until it has given one (Binance's 0: a receipt)."""
    oid = order.get("id")
    return "" if oid in (None, "", 0, "0") else str(oid)


def order_report(
    order: Order,
    *,
    venue: str,
    symbol: str,
    client_order_id: str,
    binance_wire: bool = False,
    asked: NewOrder | None = None,
    ack_kind: AckKind | None = None,
    cum_fee: Decimal = _ZERO,
    fee_asset: str = "",
) -> ExecutionReport:
    """A ccxt order as an execution report. `symbol` and `client_order_id` are legato's (the
    caller maps them back from the venue's); `asked` fills in what a terse answer leaves out
    (some venues answer a new order with its ids alone). ccxt's order fee is not read: the
    caller sums the fills (`cum_fee`), which every venue lists alike."""
    status = order_status(order)
    filled = dec(order.get("filled")) or _ZERO
    amount = dec(order.get("amount"))
    if amount is None:
        amount = asked.quantity if asked is not None else filled
    kind = order_type(order) if order.get("type") or asked is None else asked.type
    price = dec(order.get("price"))
    if price is None and asked is not None:
        price = asked.price
    avg = dec(order.get("average"))
    if (avg is None or avg <= 0) and filled > 0:
        cost = dec(order.get("cost"))
        avg = cost / filled if cost else None
    tif = (
        time_in_force(order)
        if order.get("timeInForce") is not None or order.get("postOnly") or asked is None
        else asked.time_in_force
    )
    accept, last = venue_times(order, binance_wire=binance_wire)
    reduce_only = order.get("reduceOnly")
    return ExecutionReport(
        venue=venue,
        symbol=symbol,
        client_order_id=client_order_id,
        order_id=order_id_of(order),
        side=side(order.get("side") or (asked.side.value if asked else None)),
        order_type=kind,
        time_in_force=tif,
        status=status,
        quantity=amount,
        price=price if kind is OrderType.LIMIT and price and price > 0 else None,
        cum_filled=filled,
        avg_price=avg if filled > 0 and avg and avg > 0 else None,
        cum_fee=cum_fee,
        ack_kind=ack_kind,
        venue_accept_ns=accept,
        venue_ts_ns=last,
        reduce_only=bool(reduce_only)
        if reduce_only is not None
        else bool(asked and asked.reduce_only),
        fee_asset=fee_asset,
    )


def fill(trade: Trade) -> Fill:
    """One of the account's trades (ccxt's `fetch_my_trades`/`watch_my_trades`) as a fill."""
    fee = trade.get("fee")
    if not isinstance(fee, Mapping) or fee.get("cost") is None:
        fees = [f for f in trade.get("fees") or () if isinstance(f, Mapping)]
        fee = fees[0] if fees else {}
    taker_or_maker = trade.get("takerOrMaker")
    return Fill(
        trade_id=str(trade.get("id")),
        price=dec(trade.get("price")) or _ZERO,
        quantity=dec(trade.get("amount")) or _ZERO,
        fee=dec(fee.get("cost")) or _ZERO,
        fee_asset=str(fee.get("currency") or ""),
        liquidity=Liquidity.MAKER if taker_or_maker == "maker" else Liquidity.TAKER,
        ts_ns=ms_to_ns(trade.get("timestamp")) or 0,
    )


def order_fills(order: Order) -> list[Fill]:
    """The trades an order answer carries with their ids (Binance spot's FULL answer)."""
    return [fill(t) for t in order.get("trades") or () if isinstance(t, Mapping) and t.get("id")]


# --- reference data ------------------------------------------------------------------------


def instrument_kind(market: Mapping[str, Any]) -> InstrumentKind | None:
    """spot, or perp for a linear swap; None for what legato does not trade (inverse swaps,
    dated futures, options)."""
    if market.get("spot"):
        return InstrumentKind.SPOT
    if market.get("swap") and market.get("linear"):
        return InstrumentKind.PERP
    return None


def step(value: object, precision_mode: int) -> Decimal | None:
    """A ccxt precision as the step of the grid: itself under TICK_SIZE, 10^-n for n decimal
    places; None where ccxt counts significant digits (no fixed grid)."""
    number = dec(value)
    if number is None:
        return None
    if precision_mode == TICK_SIZE:
        return number.normalize() if number > 0 else None
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    return None


def instrument(market: Mapping[str, Any], precision_mode: int) -> Instrument | None:
    """A ccxt market as an instrument named by the exchange's own id (BTCUSDT); None for a
    market legato cannot trade (kind, no fixed grid, inactive)."""
    kind = instrument_kind(market)
    if kind is None or market.get("active") is False:
        return None
    precision = market.get("precision") or {}
    tick = step(precision.get("price"), precision_mode)
    lot = step(precision.get("amount"), precision_mode)
    if tick is None or lot is None:
        return None
    limits = market.get("limits") or {}
    extra: dict[str, Decimal] = {}
    min_cost = dec((limits.get("cost") or {}).get("min"))
    if min_cost is not None:
        extra["min_notional"] = min_cost
    max_qty = dec((limits.get("amount") or {}).get("max"))
    if max_qty is not None:
        extra["max_qty"] = max_qty
    size = dec(market.get("contractSize"))
    if kind is InstrumentKind.PERP and size is not None:
        extra["contract_size"] = size
    return Instrument(
        symbol=str(market["id"]),
        base=str(market.get("base") or ""),
        quote=str(market.get("quote") or ""),
        kind=kind,
        tick=tick,
        lot=lot,
        **extra,
    )


def book(
    ob: Mapping[str, Any], *, venue: str, symbol: str, depth: int, now_ns: int
) -> BookSnapshot:
    def levels(side: Iterable[Any]) -> list[tuple[Decimal, Decimal]]:
        out = []
        for level in list(side)[:depth]:
            price, qty = dec(level[0]), dec(level[1])
            if price is not None and qty is not None:
                out.append((price, qty))
        return out

    return BookSnapshot(
        venue=venue,
        symbol=symbol,
        bids=levels(ob.get("bids") or ()),
        asks=levels(ob.get("asks") or ()),
        ts_ns=ms_to_ns(ob.get("timestamp")) or now_ns,
    )


# --- accounts ------------------------------------------------------------------------------


def position(p: Mapping[str, Any], symbol: str) -> Position | None:
    """A ccxt position (contracts and side) as a signed one; None when flat. The leverage is
    implied by the notional and the initial margin when the venue does not state it (Binance's
    v3 positionRisk), as in the native adapter."""
    contracts = dec(p.get("contracts")) or _ZERO
    if contracts == 0:
        return None
    qty = -abs(contracts) if p.get("side") == "short" else abs(contracts)
    mark = dec(p.get("markPrice")) or _ZERO
    size = dec(p.get("contractSize")) or Decimal(1)
    notional = abs(dec(p.get("notional")) or qty * mark * size)
    im = dec(p.get("initialMargin"))
    stated = dec(p.get("leverage"))
    if stated is not None and stated > 0:
        leverage = int(stated)
        if im is None:
            im = notional / stated
    elif im is not None and im > 0:
        leverage = int((notional / im).to_integral_value())
    else:
        leverage = 1  # nothing says, and nothing depends on it
    return Position(
        symbol=symbol,
        quantity=qty,
        entry_price=dec(p.get("entryPrice")) or _ZERO,
        mark_price=mark,
        unrealized_pnl=dec(p.get("unrealizedPnl")) or _ZERO,
        initial_margin=im if im is not None else _ZERO,
        leverage=max(1, leverage),
    )


def balances(balance: Mapping[str, Any]) -> list[Balance]:
    """Every asset of a ccxt balance that holds something (total and free)."""
    total = balance.get("total") or {}
    free = balance.get("free") or {}
    out = []
    for asset, amount in total.items():
        wallet = dec(amount) or _ZERO
        available = dec(free.get(asset)) or _ZERO
        if wallet != 0 or available != 0:
            out.append(Balance(asset=str(asset), wallet=wallet, available=available))
    return out


def account(
    balance: Mapping[str, Any],
    positions: list[Position],
    *,
    venue: str,
    account_id: str,
    margin_asset: str,
    derivatives: bool,
    binance_wire: bool,
    ts_ns: int,
) -> AccountSnapshot:
    """An account at one venue instant.

    Derivatives on Binance's wire read the totals of its account answer, as the native
    adapter does. Elsewhere the margin asset's total is the wallet, its free part what new
    orders can use, the positions' margins their sum, and what else is in use the open
    orders' margin. A spot account has no margin wallet and no positions: its assets are
    `spot_balances`, its margin figures zero.
    """
    info = balance.get("info")
    if derivatives and binance_wire and isinstance(info, Mapping) and "assets" in info:
        rows = [
            Balance(
                asset=str(a.get("asset")),
                wallet=dec(a.get("walletBalance")) or _ZERO,
                available=dec(a.get("availableBalance")) or _ZERO,
            )
            for a in info.get("assets") or ()
            if isinstance(a, Mapping)
        ]
        return AccountSnapshot(
            venue=venue,
            account_id=account_id,
            balances=rows,
            positions=positions,
            margin_asset=margin_asset,
            wallet_balance=dec(info.get("totalWalletBalance")) or _ZERO,
            unrealized_pnl=dec(info.get("totalUnrealizedProfit")) or _ZERO,
            position_initial_margin=dec(info.get("totalPositionInitialMargin")) or _ZERO,
            open_order_initial_margin=dec(info.get("totalOpenOrderInitialMargin")) or _ZERO,
            available_margin=dec(info.get("availableBalance")) or _ZERO,
            ts_ns=ts_ns,
        )
    if not derivatives:
        return spot_account(
            venue=venue,
            account_id=account_id,
            quote=margin_asset,
            assets=balances(balance),
            ts_ns=ts_ns,
        )
    total = dec((balance.get("total") or {}).get(margin_asset)) or _ZERO
    free = dec((balance.get("free") or {}).get(margin_asset)) or _ZERO
    used = dec((balance.get("used") or {}).get(margin_asset))
    if used is None:
        used = total - free
    position_im = sum((p.initial_margin for p in positions), _ZERO)
    return AccountSnapshot(
        venue=venue,
        account_id=account_id,
        balances=balances(balance),
        positions=positions,
        margin_asset=margin_asset,
        wallet_balance=total,
        unrealized_pnl=sum((p.unrealized_pnl for p in positions), _ZERO),
        position_initial_margin=position_im,
        open_order_initial_margin=max(_ZERO, used - position_im),
        available_margin=free,
        ts_ns=ts_ns,
    )


# --- market data ---------------------------------------------------------------------------


def book_ticker(t: Mapping[str, Any], *, venue: str, symbol: str, now_ns: int) -> BookTicker | None:
    """A ccxt ticker's top of book; None unless it has both sides."""
    bid, ask = dec(t.get("bid")), dec(t.get("ask"))
    if bid is None or ask is None:
        return None
    return BookTicker(
        venue=venue,
        symbol=symbol,
        bid=bid,
        bid_qty=dec(t.get("bidVolume")) or _ZERO,
        ask=ask,
        ask_qty=dec(t.get("askVolume")) or _ZERO,
        ts_ns=ms_to_ns(t.get("timestamp")) or now_ns,
    )


def trade_number(trade_id: object) -> int:
    """A public trade's id as the integer `MarketTrade` keeps: itself when numeric, else a
    stable 63-bit digest of it (UUID ids)."""
    text = str(trade_id)
    if text.isdigit():
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest()) >> 1


def market_trade(t: Mapping[str, Any], *, venue: str, symbol: str) -> MarketTrade | None:
    """A ccxt public trade; `side` there is the taker's. None without a side or an id."""
    try:
        aggressor = side(t.get("side"))
    except ValueError:
        return None
    price, qty = dec(t.get("price")), dec(t.get("amount"))
    if t.get("id") is None or price is None or qty is None:
        return None
    return MarketTrade(
        venue=venue,
        symbol=symbol,
        trade_id=trade_number(t["id"]),
        price=price,
        quantity=qty,
        aggressor=aggressor,
        ts_ns=ms_to_ns(t.get("timestamp")) or 0,
    )


# --- transfers and withdrawals -------------------------------------------------------------

Entry = Mapping[str, Any]  # a ccxt transfer or transaction structure

_TRANSFER_STATES = {
    "ok": TransferState.COMPLETED,
    "confirmed": TransferState.COMPLETED,
    "pending": TransferState.PENDING,
    "failed": TransferState.FAILED,
    "canceled": TransferState.FAILED,
    "cancelled": TransferState.FAILED,
    "rejected": TransferState.FAILED,
}


def transfer_state(status: object) -> TransferState:
    """ccxt's status of a transfer or a transaction ("ok", "pending", "failed", "canceled",
    or the venue's own word where ccxt keeps it); none or an unknown one reads as PENDING,
    so nothing is taken for final that is not."""
    return _TRANSFER_STATES.get(str(status or "").lower(), TransferState.PENDING)


def _info(entry: Entry) -> Mapping[str, Any]:
    info = entry.get("info")
    return info if isinstance(info, Mapping) else {}


def answered(entry: Entry, asked: TransferReceipt) -> TransferReceipt:
    """What ccxt's answer to `transfer` or `withdraw` says of the transfer legato asked: the
    venue's id and, where the answer has one, its state and time."""
    ts = ms_to_ns(entry.get("timestamp"))
    return msgspec.structs.replace(
        asked,
        transfer_id=str(entry.get("id") or ""),
        state=transfer_state(entry.get("status")),
        requested_ns=ts or asked.requested_ns,
    )


def transfer_row(
    entry: Entry,
    *,
    venue: str,
    wallets: Mapping[str, WalletKind],
    account_id: Any,
    binance_wire: bool,
) -> TransferReceipt | None:
    """One transfer of ccxt's `fetch_transfers` as a receipt; None for one between accounts
    legato does not move funds between. `wallets` maps the exchange's account ids to
    legato's wallets, `account_id` gives the id of one of ccxt's account names. Binance's
    rows are read from the venue's answer, as the native adapter reads them."""
    if binance_wire:
        try:
            row = msgspec.convert(_info(entry), wallet_wire.TransferRow, strict=False)
        except msgspec.ValidationError:
            return None
        return wallet_parse.transfer_receipt(row, venue)
    source = wallets.get(account_id(entry.get("fromAccount")))
    destination = wallets.get(account_id(entry.get("toAccount")))
    amount = dec(entry.get("amount"))
    if source is None or destination is None or amount is None:
        return None
    return TransferReceipt(
        transfer_id=str(entry.get("id") or ""),
        kind=TransferKind.INTERNAL,
        venue=venue,
        asset=str(entry.get("currency") or ""),
        amount=amount,
        source=source.value,
        destination=destination.value,
        state=transfer_state(entry.get("status")),
        requested_ns=ms_to_ns(entry.get("timestamp")) or 0,
    )


def withdrawal_row(
    entry: Entry, *, venue: str, id_field: str | None, binance_wire: bool
) -> TransferReceipt | None:
    """One withdrawal of ccxt's `fetch_withdrawals` as a receipt, legato's client id from the
    raw field `id_field` (Binance's `withdrawOrderId`); Binance's rows are read from the
    venue's answer, as the native adapter reads them (the reason of a failure included)."""
    info = _info(entry)
    if binance_wire:
        try:
            row = msgspec.convert(info, wallet_wire.WithdrawalRow, strict=False)
        except msgspec.ValidationError:
            return None
        return wallet_parse.withdrawal_receipt(row, venue)
    amount = dec(entry.get("amount"))
    if amount is None:
        return None
    state = transfer_state(entry.get("status"))
    return TransferReceipt(
        transfer_id=str(entry.get("id") or ""),
        client_transfer_id=str(info.get(id_field) or "") if id_field else "",
        kind=TransferKind.WITHDRAWAL,
        venue=venue,
        asset=str(entry.get("currency") or ""),
        amount=amount,
        source=WalletKind.SPOT.value,
        destination=str(entry.get("address") or entry.get("addressTo") or ""),
        state=state,
        requested_ns=ms_to_ns(entry.get("timestamp")) or 0,
        updated_ns=ms_to_ns(entry.get("updated")) or 0,
        reason=str(entry.get("status")) if state is TransferState.FAILED else "",
    )


def deposit_address(entry: Entry, asset: str, venue: str) -> str:
    """The address of ccxt's `fetch_deposit_address`; `Unsupported` for one that also needs
    a memo (tag), which legato's withdrawals do not carry."""
    return wallet_parse.deposit_address(
        wallet_wire.DepositAddress(
            address=str(entry.get("address") or ""), tag=str(entry.get("tag") or "")
        ),
        asset,
        venue,
    )


# --- errors --------------------------------------------------------------------------------

_REDACTED = "***"
_SIGNED = re.compile(r"(?i)\b(signature|sign|apikey|api_key|x-mbx-apikey|passphrase)=([^&\s\"']+)")
_BODY = re.compile(r"\{.*\}", re.DOTALL)

# Words a venue's refusal uses, for a refusal ccxt has no finer class for.
_HINTS: tuple[tuple[tuple[str, ...], RejectReason], ...] = (
    (
        ("post only", "post-only", "postonly", "immediately match", "would take"),
        RejectReason.POST_ONLY_WOULD_CROSS,
    ),
    (("reduce only", "reduce-only", "reduceonly"), RejectReason.REDUCE_ONLY_WOULD_INCREASE),
    (("notional", "min cost", "minimum cost", "order cost"), RejectReason.BELOW_MIN_NOTIONAL),
    (("insufficient", "margin", "balance"), RejectReason.INSUFFICIENT_MARGIN),
    (("duplicate", "duplicated"), RejectReason.DUPLICATE_CLIENT_ORDER_ID),
    (("client order id", "clientorderid", "clordid"), RejectReason.INVALID_CLIENT_ORDER_ID),
    (("tick", "price_filter", "price precision"), RejectReason.PRICE_OFF_TICK),
    (("lot", "step", "amount precision"), RejectReason.QTY_OFF_LOT),
    (("price",), RejectReason.INVALID_PRICE),
    (("amount", "quantity", "size", "qty"), RejectReason.INVALID_QUANTITY),
)
_BY_CLASS: tuple[tuple[type[ccxt.BaseError], RejectReason], ...] = (
    (ccxt.InsufficientFunds, RejectReason.INSUFFICIENT_MARGIN),
    (ccxt.OrderImmediatelyFillable, RejectReason.POST_ONLY_WOULD_CROSS),
    (ccxt.OrderNotFillable, RejectReason.FOK_NOT_FILLABLE),
    (ccxt.DuplicateOrderId, RejectReason.DUPLICATE_CLIENT_ORDER_ID),
    (ccxt.BadSymbol, RejectReason.UNKNOWN_SYMBOL),
)


_SHORTEST_SECRET = 6  # shorter "secrets" (a test's "s") would redact every word


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets or any signed query value in it."""
    for secret in secrets:
        if len(secret) >= _SHORTEST_SECRET:
            text = text.replace(secret, _REDACTED)
    return _SIGNED.sub(lambda m: f"{m.group(1)}={_REDACTED}", text)


def binance_error_body(message: str) -> tuple[int, str] | None:
    """The `{"code", "msg"}` a ccxt message about a Binance answer carries, if any."""
    found = _BODY.search(message)
    if found is None:
        return None
    try:
        body = json.loads(found.group(0))
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        return None
    return body["code"], str(body.get("msg") or "")


def hinted_reason(message: str) -> RejectReason:
    text = message.lower()
    for words, reason in _HINTS:
        if any(w in text for w in words):
            return reason
    return RejectReason.VENUE_REFUSED


def _class_reason(exc: BaseException) -> RejectReason | None:
    for cls, reason in _BY_CLASS:
        if isinstance(exc, cls):
            return reason
    return None


def _never_sent(exc: BaseException) -> bool:
    """Whether the request failed before it left (no connection): nothing can have happened."""
    cause = exc.__cause__
    return isinstance(
        cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | socket.gaierror
    )


def error_from_ccxt(
    exc: BaseException,
    *,
    venue: str,
    binance_wire: bool = False,
    mutating: bool = False,
    client_order_id: str | None = None,
    http_status: int | None = None,
    retry_after_s: float | None = None,
    secrets: Iterable[str] = (),
    wallet: bool = False,
) -> VenueError:
    """The legato exception for what ccxt raised (or an I/O error that escaped it).

    A Binance-wire answer is mapped by its error code exactly as the native adapter maps it
    (ccxt picks its own class by code only on Binance's host names). Otherwise by ccxt's
    class: a lost answer to a request that changes state is `OutcomeUnknown` (resolve it by
    the client order id, never by sending again), one that never left is `VenueUnavailable`.
    `http_status` and `retry_after_s` are the answer's, when known. Messages never carry
    the secrets, nor a signed query's values. `wallet`: the call moved funds (a transfer, a
    withdrawal): Binance's codes are read as its wallet API means them, and a lack of funds
    is the wallet's balance, not margin.
    """
    message = redact(str(exc), secrets) or type(exc).__name__
    if binance_wire:
        body = binance_error_body(message)
        if body is not None and body[0] < 0:
            err = binance.error_from_code(
                body[0],
                redact(body[1], secrets),
                venue=venue,
                status=http_status or 400,
                mutating=mutating,
                client_order_id=client_order_id,
                retry_after_s=retry_after_s,
                reject_reason=wallet_parse.reject_reason if wallet else binance.reject_reason,
            )
            if wallet:
                return err
            if isinstance(err, OrderRejected) and err.reason is RejectReason.VENUE_REFUSED:
                # -2010 is a bare "refused" whose message (or ccxt's class, chosen by it) says
                # why on spot: "Order would immediately match and take.", "insufficient
                # balance".
                reason = _class_reason(exc) or hinted_reason(err.message)
                if reason is not RejectReason.VENUE_REFUSED:
                    err = OrderRejected(
                        err.message,
                        reason=reason,
                        venue=venue,
                        code=err.code,
                        client_order_id=client_order_id,
                    )
            return err
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection) or http_status in (418, 429):
        return RateLimited(message, venue=venue, retry_after_s=retry_after_s)
    if isinstance(exc, ccxt.InvalidNonce | ccxt.AuthenticationError):
        return AuthError(message, venue=venue)
    if isinstance(exc, ccxt.OrderNotFound):
        return UnknownOrder(message, venue=venue)
    reason = _class_reason(exc)
    if wallet and isinstance(exc, ccxt.InsufficientFunds):
        reason = RejectReason.INSUFFICIENT_BALANCE
    if reason is None and isinstance(exc, ccxt.InvalidOrder | ccxt.OperationRejected):
        reason = hinted_reason(message)
    if reason is not None:
        return OrderRejected(message, reason=reason, venue=venue, client_order_id=client_order_id)
    if isinstance(exc, ccxt.OnMaintenance):
        return VenueUnavailable(message, venue=venue)
    lost = isinstance(
        exc,
        ccxt.NetworkError | ccxt.BadResponse | TimeoutError | OSError | aiohttp.ClientError,
    )
    if lost:
        # A 4xx answer is a refusal (but 408: the venue gave up waiting, maybe after acting).
        refused = _never_sent(exc) or (
            http_status is not None and 400 <= http_status < 500 and http_status != 408
        )
        if mutating and not refused:
            return OutcomeUnknown(
                f"{message}; execution status unknown",
                venue=venue,
                client_order_id=client_order_id,
            )
        return VenueUnavailable(message, venue=venue)
    if isinstance(exc, ccxt.BadRequest | ccxt.ArgumentsRequired | ccxt.NotSupported):
        return InvalidRequest(message, venue=venue)
    return VenueError(message, venue=venue)


def stale_clock(err: VenueError, exc: BaseException) -> bool:
    """The venue refused a request for its timestamp: re-measure the clock and send it again
    (safe: such a request is refused before it is looked at)."""
    return err.code == binance.STALE_TIMESTAMP or isinstance(exc, ccxt.InvalidNonce)
