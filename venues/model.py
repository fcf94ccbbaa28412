"""The venue vocabulary: instruments, orders, execution reports, accounts and market data."""

from __future__ import annotations

import enum
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import msgspec


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class InstrumentKind(enum.StrEnum):
    SPOT = "spot"
    PERP = "perp"


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"  # Binance spells it GTX; the adapter translates


class OrderStatus(enum.StrEnum):
    PENDING_NEW = "PENDING_NEW"  # received, not yet through risk checks (RECEIPT acks)
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"  # IOC/FOK/market remainder that found no liquidity

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class AckKind(enum.StrEnum):
    """When a venue's answer to a new order arrives (DESIGN §6)."""

    RECEIPT = "RECEIPT"  # before risk checks (FIX PendingNew)
    ACCEPTED = "ACCEPTED"  # after risk checks, before matching (Binance ACK)
    RESULT = "RESULT"  # after matching (Binance RESULT)
    UNKNOWN = "UNKNOWN"  # timeout or 5xx: the order may still have been applied


class Liquidity(enum.StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class RejectReason(enum.StrEnum):
    """Why a venue refused an order; each maps to a Binance error code in the server."""

    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    QTY_OFF_LOT = "QTY_OFF_LOT"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"  # spot: the wallet lacks the asset to pay
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    VENUE_REFUSED = "VENUE_REFUSED"  # a refusal the venue gives no finer reason for
    INJECTED = "INJECTED"  # the simulated venue profile's reject injection


class ClientIdRule(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue accepts as a client order id: at most `max_len` characters, each in
    `alphabet`, after a fixed `prefix` the venue requires (Hyperliquid's "0x"). legato's ids
    the rule refuses are mapped to a digest in `digest_alphabet` (see `venues.client_ids`)."""

    max_len: int
    alphabet: str
    prefix: str = ""
    digest_alphabet: str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def accepts(self, client_order_id: str) -> bool:
        body = client_order_id.removeprefix(self.prefix)
        return (
            client_order_id.startswith(self.prefix)
            and 0 < len(client_order_id) <= self.max_len
            and all(c in self.alphabet for c in body)
        )


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Binance (spot and USD-M): 1-36 characters of [.A-Z:/a-z0-9_-].
BINANCE_CLIENT_IDS = ClientIdRule(max_len=36, alphabet=_ALNUM + "._:/-")


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What an adapter can do at its venue: checked against a basket's legs before anything
    is sent (a leg on a spot instrument needs `spot`, a reduce-only unwind `reduce_only`)."""

    instrument_kinds: frozenset[InstrumentKind]
    ack_semantics: AckKind
    order_types: frozenset[OrderType] = frozenset({OrderType.MARKET, OrderType.LIMIT})
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    post_only: bool = True
    reduce_only: bool = True
    batch_size: int = 1  # orders in one batch request; 1: no batch endpoint
    transfers: bool = False  # between the venue's own wallets (`VenueClient.transfer`)
    withdrawals: bool = False  # to another venue (`withdraw`, `deposit_address`)
    client_ids: ClientIdRule = BINANCE_CLIENT_IDS

    def missing(
        self,
        *,
        kind: InstrumentKind | None = None,
        post_only: bool = False,
        reduce_only: bool = False,
    ) -> list[str]:
        """What of the asked this venue cannot do, each said plainly (empty: all of it)."""
        out: list[str] = []
        if kind is not None and kind not in self.instrument_kinds:
            have = ", ".join(sorted(k.value for k in self.instrument_kinds))
            out.append(f"{kind.value} instruments (it trades: {have})")
        if post_only and not self.post_only:
            out.append("post-only orders")
        if reduce_only and not self.reduce_only:
            out.append("reduce-only orders")
        return out


class WalletKind(enum.StrEnum):
    """An account's wallets at one venue, kept apart as Binance keeps them."""

    SPOT = "spot"  # each asset free and locked; withdrawals leave and deposits land here
    MARGIN = "margin"  # the derivatives (USD-M) wallet: margin, positions


class TransferKind(enum.StrEnum):
    INTERNAL = "internal"  # between one venue's own wallets (Binance's universal transfer)
    WITHDRAWAL = "withdrawal"  # out of one venue to an address at another


class TransferState(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"  # internal: credited; withdrawal: sent (the deposit follows)
    FAILED = "failed"  # nothing moved (a failed withdrawal is given back to the wallet)

    @property
    def is_final(self) -> bool:
        return self is not TransferState.PENDING


class TransferReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer as the venue reports it.

    `transfer_id` is the venue's id (Binance's `tranId`, a withdrawal's `id`);
    `client_transfer_id` legato's (a withdrawal's `withdrawOrderId`; "" where the venue keeps
    none, as for Binance's universal transfer). An internal transfer moves `asset` from the
    `source` wallet to the `destination` wallet (`WalletKind` values); a withdrawal from
    the spot wallet (`source` "spot") to the address `destination`. Times are the venue's
    (ns; `updated_ns` when the state last changed, 0 when the venue does not say).
    """

    transfer_id: str
    client_transfer_id: str = ""
    kind: TransferKind
    venue: str
    asset: str
    amount: Decimal
    source: str
    destination: str
    state: TransferState
    requested_ns: int
    updated_ns: int = 0
    reason: str = ""


def _snap(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tradable symbol and its venue rules.

    `betas` maps risk factors to this instrument's exposure per unit of dollar value
    (stETH has ETH 1.0; the index perp has its basket weights).
    """

    symbol: str
    base: str
    quote: str
    kind: InstrumentKind
    tick: Decimal
    lot: Decimal
    min_notional: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)
    max_qty: Decimal = Decimal(1_000_000)
    betas: dict[str, float] = {}

    def snap_price(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """Round a price onto the tick grid."""
        return _snap(price, self.tick, rounding)

    def snap_price_passive(self, price: Decimal, side: Side) -> Decimal:
        """Round a limit price to the tick that is no more aggressive than asked."""
        return _snap(price, self.tick, ROUND_DOWN if side is Side.BUY else ROUND_UP)

    def snap_qty(self, qty: Decimal) -> Decimal:
        """Round a quantity down onto the lot grid (never trade more than asked)."""
        return _snap(qty, self.lot, ROUND_DOWN)

    def on_tick(self, price: Decimal) -> bool:
        return price % self.tick == 0

    def on_lot(self, qty: Decimal) -> bool:
        return qty % self.lot == 0

    def notional(self, price: Decimal, qty: Decimal) -> Decimal:
        return price * qty * self.contract_size


class NewOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A request to place one order. Prices and quantities are on the instrument's grid."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of an order against another; `trade_id` is the venue's, as a string
    (numbers on Binance, UUIDs on others)."""

    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    ts_ns: int


class ExecutionReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue says about an order: its state after an event, with cumulative fields.

    Venue timestamps are the venue's own clock (ns); map them to local time with the
    measured venue clock offset. `venue_receive_ns` is when the venue got the request,
    `venue_accept_ns` when it passed risk checks and reached the book.
    """

    venue: str
    symbol: str
    client_order_id: str
    order_id: str  # the venue's own id, as a string; "" until the venue has given one
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    quantity: Decimal
    price: Decimal | None
    cum_filled: Decimal
    avg_price: Decimal | None
    cum_fee: Decimal
    ack_kind: AckKind | None = None
    last_fill: Fill | None = None
    reject_reason: RejectReason | None = None
    reject_message: str | None = None
    venue_receive_ns: int | None = None
    venue_accept_ns: int | None = None
    venue_ts_ns: int = 0
    reduce_only: bool = False
    # The asset `cum_fee` is counted in; "" when the venue did not say (then it is the
    # instrument's margin or quote asset). A spot buy's fee is often in the base asset.
    fee_asset: str = ""

    @property
    def open_qty(self) -> Decimal:
        if self.status.is_terminal:
            return Decimal(0)
        return self.quantity - self.cum_filled


def pending_report(
    order: NewOrder,
    venue: str,
    ack_kind: AckKind,
    *,
    venue_receive_ns: int | None = None,
    venue_ts_ns: int = 0,
) -> ExecutionReport:
    """What is known of an order whose outcome no answer has carried yet: only what was asked.

    Used for RECEIPT acks (the venue answered before its checks) and UNKNOWN outcomes (the
    answer was lost): status PENDING_NEW, no order id (""), nothing filled.
    """
    zero = order.quantity * 0
    return ExecutionReport(
        venue=venue,
        symbol=order.symbol,
        client_order_id=order.client_order_id,
        order_id="",
        side=order.side,
        order_type=order.type,
        time_in_force=order.time_in_force,
        status=OrderStatus.PENDING_NEW,
        quantity=order.quantity,
        price=order.price,
        cum_filled=zero,
        avg_price=None,
        cum_fee=zero,
        ack_kind=ack_kind,
        venue_receive_ns=venue_receive_ns,
        venue_ts_ns=venue_ts_ns,
        reduce_only=order.reduce_only,
    )


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    wallet: Decimal  # deposited collateral plus realised P&L minus fees
    available: Decimal  # what new orders can still use


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A perpetual position (signed quantity) or a spot holding."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    initial_margin: Decimal
    leverage: int


class AccountSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An account's collateral, margin use and positions at one venue instant.

    `balances` and the margin figures are the derivatives (margin) wallet's; `spot_balances`
    the spot wallet's, a separate account on the venue (Binance's spot and USD-M wallets).
    A spot-only adapter has no margin wallet: empty `balances`, margin figures zero.
    """

    venue: str
    account_id: str
    balances: list[Balance]
    positions: list[Position]
    margin_asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    available_margin: Decimal
    ts_ns: int
    spot_balances: list[Balance] = []


class BookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Aggregated price levels, best first: `bids`/`asks` are (price, quantity) pairs."""

    venue: str
    symbol: str
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    ts_ns: int

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0][0] if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2

    def top(self) -> BookTicker | None:
        """The top of this book as a `BookTicker`; None unless both sides have a level."""
        if not self.bids or not self.asks:
            return None
        (bid, bid_qty), (ask, ask_qty) = self.bids[0], self.asks[0]
        return BookTicker(
            venue=self.venue,
            symbol=self.symbol,
            bid=bid,
            bid_qty=bid_qty,
            ask=ask,
            ask_qty=ask_qty,
            ts_ns=self.ts_ns,
        )


class BookTicker(msgspec.Struct, frozen=True, kw_only=True, tag="book_ticker"):
    """Top of book at one instant."""

    venue: str
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    ts_ns: int


class MarketTrade(msgspec.Struct, frozen=True, kw_only=True, tag="trade"):
    """A public trade print; `aggressor` is the taker's side."""

    venue: str
    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    aggressor: Side
    ts_ns: int


MarketEvent = BookTicker | MarketTrade
