"""The simulated exchange core: books, orders, wallets, margin and transfers; pure and
time-agnostic.

Every call takes `now_ns` (venue time) and first brings the market up to it; nothing here
reads a clock, sleeps or does I/O. What happens is returned and also queued on an outbox of
`AccountReport`s, public market events and `WithdrawalSent`s, which a host (asyncio, HTTP
server, backtest) drains and delivers with whatever latency its venue profile says.

Each account has two wallets, kept apart as Binance keeps them: the USD-M futures wallet
(USDT margin, leverage, positions) that perpetuals trade from, and the spot wallet (each
asset free and locked) that spot instruments trade from. USDT moves between them by internal
transfer; withdrawals leave from the spot wallet and deposits land in it. When a transfer
ends, and whether it fails, is the host's to say (`complete_at_ns`, `fails`): the core only
carries it out when `advance` reaches that time.

It is long (about 1,400 lines) because the books, the orders, the accounts' wallets and the
transfers between them change together: one matching engine, whose parts share its state.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from venues.errors import OrderRejected, UnknownOrder, VenueError
from venues.model import (
    AccountSnapshot,
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
    TransferKind,
    TransferState,
)
from venues.sim.book import MARKET, Match, OrderBook, PowerQueueModel, RestingOrder
from venues.sim.market import DepthUpdate, MarketSource, MarketUpdate, TopOfBook, TradePrint
from venues.sim.profile import ClientIdReuse

MARGIN_ASSET = "USDT"
CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's rule
_ZERO = Decimal(0)
_AVG_QUANTUM = Decimal("1e-8")
# Spot commissions are charged to the asset's precision (Binance: 8 decimals).
_FEE_QUANTUM = Decimal("1e-8")
_MAX_WAITING = 10_000  # market updates a book that waits holds at most (`publish_only`)


class Wallet(enum.StrEnum):
    """An account's two wallets, kept apart as Binance keeps them."""

    FUTURES = "futures"  # USD-M: USDT margin, leverage, positions (perpetuals)
    SPOT = "spot"  # each asset free and locked (spot instruments)


class FeeSchedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Maker and taker fees in basis points of notional (Binance USD-M regular tier)."""

    maker_bps: float = 2.0
    taker_bps: float = 5.0

    def rate(self, liquidity: Liquidity) -> Decimal:
        bps = self.maker_bps if liquidity is Liquidity.MAKER else self.taker_bps
        return Decimal(str(bps)) / Decimal(10_000)


# Binance spot's regular tier: 0.1 % maker and taker, paid in the asset received (no BNB).
SPOT_FEES = FeeSchedule(maker_bps=10.0, taker_bps=10.0)


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An account to open: its USD-M futures wallet (`balances`: USDT is the margin; other
    assets are held there but are never margin), its leverage, and its spot wallet
    (`spot_balances`, by asset; empty by default)."""

    account_id: str
    balances: dict[str, Decimal]
    leverage: int = 10
    spot_balances: dict[str, Decimal] = {}


class AccountReport(msgspec.Struct, frozen=True, kw_only=True):
    """An execution report addressed to the account that owns the order."""

    account_id: str
    report: ExecutionReport


class TransferRefusal(enum.StrEnum):
    """Why the exchange refused a transfer, a withdrawal or a deposit; nothing moved."""

    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_ASSET = "UNKNOWN_ASSET"
    INVALID_AMOUNT = "INVALID_AMOUNT"  # not positive, or more than 8 decimals
    # Spot to spot, or an asset other than USDT to or from the futures wallet.
    INVALID_WALLETS = "INVALID_WALLETS"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"  # Binance refuses a repeated withdrawOrderId
    CONFLICTING_DEPOSIT = "CONFLICTING_DEPOSIT"  # a tx id seen before, with other contents
    NOT_PENDING = "NOT_PENDING"  # ending a transfer that already ended


class TransferRefused(VenueError):
    """The exchange refused to move money (`reason`); no wallet changed."""

    def __init__(self, message: str, *, reason: TransferRefusal, venue: str = "") -> None:
        super().__init__(message, venue=venue)
        self.reason = reason


class UnknownTransfer(VenueError):
    """The venue has no transfer by that id (or client id) for this account."""


class IllegalTransferMove(RuntimeError):
    """A transfer state change the table does not allow; always a bug in the caller."""

    def __init__(self, transfer_id: int, current: TransferState, target: TransferState) -> None:
        allowed = ", ".join(sorted(_TRANSFER_MOVES[current])) or "none (final)"
        super().__init__(
            f"transfer {transfer_id}: illegal move {current.value} -> {target.value}; "
            f"from {current.value} the allowed states are {allowed}"
        )


_TRANSFER_MOVES: dict[TransferState, frozenset[TransferState]] = {
    # A transfer ends once: credited (a withdrawal: sent), or failed and given back. A stalled
    # one stays PENDING until its time comes or someone ends it (`end_transfer`).
    TransferState.PENDING: frozenset({TransferState.COMPLETED, TransferState.FAILED}),
    TransferState.COMPLETED: frozenset(),
    TransferState.FAILED: frozenset(),
}


class TransferRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer or a withdrawal as the exchange keeps it.

    An internal transfer moves `asset` from the `source` wallet to the wallet `destination`
    names (a `Wallet` value); a withdrawal leaves the spot wallet for the address
    `destination`, and gets its `tx_id` once sent. The amount left `source` when it was
    asked (`requested_ns`); `updated_ns` is when the state last changed (venue ns).
    """

    transfer_id: int
    kind: TransferKind
    account_id: str
    asset: str
    amount: Decimal
    source: Wallet
    destination: str
    state: TransferState
    requested_ns: int
    updated_ns: int
    client_id: str = ""
    network: str = ""
    tx_id: str = ""


class DepositRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A deposit credited to an account's spot wallet (one per `tx_id`)."""

    deposit_id: int
    account_id: str
    asset: str
    amount: Decimal
    tx_id: str
    address: str
    network: str
    credited_ns: int


class WithdrawalSent(msgspec.Struct, frozen=True, kw_only=True):
    """A withdrawal left the venue (drained with the other events): the host delivers
    `amount` of `asset` to `address`, whose venue credits it once per `tx_id`."""

    venue: str
    account_id: str
    transfer_id: int
    client_id: str
    asset: str
    amount: Decimal
    address: str
    network: str
    tx_id: str
    sent_ns: int


@dataclass(slots=True)
class _Transfer:
    transfer_id: int
    kind: TransferKind
    account: str
    asset: str
    amount: Decimal
    source: Wallet
    destination: str
    client_id: str
    network: str
    requested_ns: int
    complete_at_ns: int | None  # None: stalled until someone ends it
    fails: bool
    state: TransferState = TransferState.PENDING
    updated_ns: int = 0
    tx_id: str = ""


@dataclass(slots=True)
class _Order:
    order_id: int
    account: str
    req: NewOrder
    inst: Instrument
    receive_ns: int
    accept_ns: int
    status: OrderStatus = OrderStatus.NEW
    cum_lots: int = 0
    notional: Decimal = _ZERO  # sum of price × quantity filled
    fee: Decimal = _ZERO
    ts_ns: int = 0
    last_fill: Fill | None = None
    reason: RejectReason | None = None
    message: str | None = None
    locked: Decimal = _ZERO  # spot: what the order still holds of its lock asset

    @property
    def lots(self) -> int:
        return int(self.req.quantity / self.inst.lot)

    @property
    def open_lots(self) -> int:
        return 0 if self.status.is_terminal else self.lots - self.cum_lots


@dataclass(slots=True)
class _Position:
    qty: Decimal = _ZERO  # signed
    entry: Decimal = _ZERO  # average entry


@dataclass(slots=True)
class _Asset:
    """One asset of a spot wallet: free to use, and locked by open orders."""

    free: Decimal = _ZERO
    locked: Decimal = _ZERO


@dataclass(slots=True)
class _Account:
    account_id: str
    wallet: Decimal  # futures margin asset: deposits + realised P&L − fees
    leverage: int
    # The futures wallet's other assets: held and listed, never margin (single-asset mode).
    futures_assets: dict[str, Decimal] = field(default_factory=dict)
    spot: dict[str, _Asset] = field(default_factory=dict)
    positions: dict[str, _Position] = field(default_factory=dict)  # perpetuals
    trades: list[tuple[str, int, str, Side, Fill]] = field(default_factory=list)

    def asset(self, name: str) -> _Asset:
        """The spot wallet's entry for `name` (made empty on first use)."""
        entry = self.spot.get(name)
        if entry is None:
            entry = self.spot[name] = _Asset()
        return entry


@dataclass(slots=True, frozen=True)
class UserTrade:
    """One of an account's fills, with the order it belongs to (Binance userTrades)."""

    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    fill: Fill


class SimExchange:
    """One simulated venue: its instruments' books, its accounts, and its market source."""

    def __init__(
        self,
        venue: str,
        market: MarketSource,
        *,
        instruments: Sequence[Instrument] | None = None,
        fees: FeeSchedule | None = None,
        spot_fees: FeeSchedule | None = None,
        price_band: float = 0.05,
        start_ns: int = 0,
        queue_model: PowerQueueModel | None = None,
    ) -> None:
        """`queue_model`: where the market's cancels fall relative to our resting orders
        (`venues.sim.book`; None: the cautious model, from the back)."""
        self.venue = venue
        self.market = market
        self.fees = fees or FeeSchedule()  # perpetuals, in USDT
        self.spot_fees = spot_fees or SPOT_FEES  # spot, in the asset received
        self.price_band = Decimal(str(price_band))
        insts = list(instruments) if instruments is not None else market.instruments()
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in insts}
        self._books: dict[str, OrderBook] = {
            s: OrderBook(queue_model=queue_model) for s in self.instruments
        }
        self.now_ns = start_ns
        self._accounts: dict[str, _Account] = {}
        self._orders: dict[int, _Order] = {}
        self._by_client: dict[tuple[str, str], int] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._outbox: list[AccountReport | MarketEvent | WithdrawalSent] = []
        self._transfers: dict[int, _Transfer] = {}
        self._pending_transfers: dict[int, _Transfer] = {}
        self._transfer_by_client: dict[tuple[str, TransferKind, str], int] = {}
        self._next_transfer_id = 1
        self._deposits: dict[str, DepositRecord] = {}  # by tx id
        self._last_trade: dict[str, Decimal] = {}
        self.updates_applied = 0
        # The symbols whose public market data (trade prints, book tickers) goes out on the
        # outbox; None: every symbol (`publish_only`).
        self.publish: Container[str] | None = None
        # The market's updates not yet applied to a book, by symbol: the books that wait
        # (`publish_only`).
        self._waiting: dict[str, list[MarketUpdate]] = {}

    # --- accounts ------------------------------------------------------------------
    def open_account(self, spec: AccountSpec) -> None:
        if spec.account_id in self._accounts:
            raise ValueError(f"account {spec.account_id!r} already exists on {self.venue}")
        if spec.leverage < 1:
            raise ValueError(f"leverage must be at least 1, got {spec.leverage}")
        for wallet, amounts in (("balances", spec.balances), ("spot_balances", spec.spot_balances)):
            for asset, amount in amounts.items():
                if not Decimal(amount).is_finite() or amount < 0:
                    raise ValueError(
                        f"account {spec.account_id!r}: {wallet}[{asset!r}] must be a finite "
                        f"amount of at least 0, got {amount}"
                    )
        balances = dict(spec.balances)
        acct = _Account(spec.account_id, Decimal(balances.pop(MARGIN_ASSET, _ZERO)), spec.leverage)
        acct.futures_assets = {a: Decimal(q) for a, q in balances.items()}
        acct.spot = {a: _Asset(free=Decimal(q)) for a, q in spec.spot_balances.items()}
        self._accounts[spec.account_id] = acct

    def has_account(self, account_id: str) -> bool:
        return account_id in self._accounts

    def set_leverage(self, account_id: str, leverage: int) -> None:
        if leverage < 1:
            raise ValueError(f"leverage must be at least 1, got {leverage}")
        self._account(account_id).leverage = leverage

    def leverage(self, account_id: str) -> int:
        """The account's leverage (one for all its perpetuals)."""
        return self._account(account_id).leverage

    def deposit(
        self, account_id: str, asset: str, amount: Decimal, wallet: Wallet = Wallet.FUTURES
    ) -> None:
        """Credit `amount` of `asset` to one of the account's wallets."""
        acct = self._account(account_id)
        if wallet is Wallet.SPOT:
            acct.asset(asset).free += amount
        elif asset == MARGIN_ASSET:
            acct.wallet += amount
        else:
            acct.futures_assets[asset] = acct.futures_assets.get(asset, _ZERO) + amount

    # --- market --------------------------------------------------------------------
    def publish_only(self, symbols: Collection[str]) -> None:
        """Make public market data (trade prints, book tickers) of `symbols` only: a host
        that delivers only some symbols' market data says which, and the rest is never made
        (most of a backtest's market events).

        The books of the other symbols then wait: the market's updates queue for them until
        something reads the book (an order, a snapshot, a mark price), which applies them
        first, in order. While no order of ours rests in a book, nothing outside it depends
        on when its background changes are applied (no fills, no prints, no tickers), so
        waiting moves the work, or saves it, without changing what it does; a symbol an
        order is placed on stops waiting.
        """
        self.publish = frozenset(symbols)
        self._waiting = {s: [] for s in self._books if s not in self.publish}

    @property
    def books(self) -> dict[str, OrderBook]:
        """Every instrument's book, as the market has made it by now."""
        for symbol in self._waiting:
            self._book(symbol)
        return self._books

    def _book(self, symbol: str) -> OrderBook:
        """`symbol`'s book, with the market's updates that waited for it applied."""
        book = self._books[symbol]
        waited = self._waiting.get(symbol)
        if waited:
            self._waiting[symbol] = []
            # No order of ours rests in a waiting book: the matches are all background, and
            # nothing but the book changes (their trade ids were taken as they came).
            for update in waited:
                if type(update) is DepthUpdate:
                    book.set_market_levels(Side.BUY, update.bids)
                    book.set_market_levels(Side.SELL, update.asks)
                else:
                    assert type(update) is TradePrint
                    book.take(update.aggressor, update.qty, update.price, MARKET)
        return book

    def advance(self, now_ns: int) -> None:
        """Replay the market up to `now_ns`, filling our resting orders it reaches, and end
        the transfers due by then."""
        if self._pending_transfers:
            self._settle_transfers(now_ns)
        if now_ns <= self.now_ns:
            return
        due = self.market.next_ns()
        if due is None or due > now_ns:  # nothing to apply: most calls, at a 5 ms cadence
            self.now_ns = now_ns
            return
        books, instruments, last_trade = self._books, self.instruments, self._last_trade
        emit, publish, waiting = self._outbox.append, self.publish, self._waiting
        buy, sell = Side.BUY, Side.SELL
        # Ordered, unlike a set of strings (hashed differently in every process): tickers go
        # out in the order their symbols were first touched, so a backtest replays exactly.
        touched: dict[str, None] = {}
        n = 0
        # The backtest's hottest loop (every market event passes here): dispatch on the exact
        # type rather than `match` (updates are final structs), and locals for what it reads.
        for update in self.market.updates(now_ns):
            n += 1
            kind = type(update)
            if kind is TopOfBook:
                continue  # recorded top of book: the rebuilt book is the venue's truth
            symbol = update.symbol
            book = books.get(symbol)
            if book is None:
                continue
            waited = waiting.get(symbol)
            if waited is not None:  # a book that waits (`publish_only`)
                waited.append(update)
                if kind is TradePrint:
                    last_trade[symbol] = instruments[symbol].tick * update.price
                    self._next_trade_id += 1  # the print's trade id, made or not
                if len(waited) >= _MAX_WAITING:
                    self._book(symbol)
                continue
            if kind is DepthUpdate:
                if matches := book.set_market_levels(buy, update.bids):
                    self._maker_fills(symbol, matches, update.ts_ns)
                if matches := book.set_market_levels(sell, update.asks):
                    self._maker_fills(symbol, matches, update.ts_ns)
            elif kind is TradePrint:
                aggressor, ticks = update.aggressor, update.price
                matches, _ = book.take(aggressor, update.qty, ticks, MARKET)
                if matches:
                    self._maker_fills(symbol, matches, update.ts_ns, public=False)
                inst = instruments[symbol]
                price = last_trade[symbol] = inst.tick * ticks
                self._next_trade_id += 1
                if publish is None or symbol in publish:
                    emit(
                        MarketTrade(
                            venue=self.venue,
                            symbol=symbol,
                            trade_id=self._next_trade_id - 1,
                            price=price,
                            quantity=inst.lot * update.qty,
                            aggressor=aggressor,
                            ts_ns=update.ts_ns,
                        )
                    )
            else:
                continue
            if publish is None or symbol in publish:
                touched[symbol] = None
        self.updates_applied += n
        self.now_ns = now_ns
        for symbol in touched:
            ticker = self._ticker(symbol)
            if ticker is not None:
                self._outbox.append(ticker)

    def _maker_fills(
        self, symbol: str, matches: list[Match], ts_ns: int, *, public: bool = True
    ) -> None:
        """Fill participant makers that the market's own liquidity or trades reached.

        `public` prints the trade on the tape; a recorded trade print is already there.
        """
        inst = self.instruments[symbol]
        for m in matches:
            if m.maker_owner == MARKET:
                continue
            tid = self._trade_id()
            self._fill(self._orders[m.maker_order_id], m.price, m.qty, Liquidity.MAKER, ts_ns, tid)
            if public and self._publishes(symbol):
                self._outbox.append(
                    MarketTrade(
                        venue=self.venue,
                        symbol=symbol,
                        trade_id=tid,
                        price=inst.tick * m.price,
                        quantity=inst.lot * m.qty,
                        aggressor=m.maker_side.opposite,
                        ts_ns=ts_ns,
                    )
                )

    def mark_price(self, symbol: str) -> Decimal | None:
        """Mid of the book, else the source's fair price, else the last trade."""
        book = self._book(symbol)
        inst = self.instruments[symbol]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            return inst.tick * (bid + ask) / 2
        fair = self.market.fair_price(symbol, self.now_ns)
        if fair is not None:
            return inst.snap_price(Decimal(str(fair)))
        return self._last_trade.get(symbol)

    def book_snapshot(self, symbol: str, depth: int, now_ns: int) -> BookSnapshot:
        inst = self._instrument(symbol)
        self.advance(now_ns)
        book = self._book(symbol)
        return BookSnapshot(
            venue=self.venue,
            symbol=symbol,
            ts_ns=self.now_ns,
            bids=[(inst.tick * p, inst.lot * q) for p, q in book.depth(Side.BUY, depth)],
            asks=[(inst.tick * p, inst.lot * q) for p, q in book.depth(Side.SELL, depth)],
        )

    def _ticker(self, symbol: str) -> BookTicker | None:
        bid, bid_qty, ask, ask_qty = self._book(symbol).top()
        if bid is None or ask is None:
            return None
        inst = self.instruments[symbol]
        return BookTicker(
            venue=self.venue,
            symbol=symbol,
            bid=inst.tick * bid,
            bid_qty=inst.lot * bid_qty,
            ask=inst.tick * ask,
            ask_qty=inst.lot * ask_qty,
            ts_ns=self.now_ns,
        )

    def _top(self, symbol: str) -> tuple[int | None, int, int | None, int]:
        return self._book(symbol).top()

    def _publish_top(self, symbol: str, before: tuple[int | None, int, int | None, int]) -> None:
        """Our own orders move the top of book too: publish it when they did."""
        if self._publishes(symbol) and self._top(symbol) != before:
            ticker = self._ticker(symbol)
            if ticker is not None:
                self._outbox.append(ticker)

    def _publishes(self, symbol: str) -> bool:
        """Whether `symbol`'s public market data goes out (`publish`)."""
        return self.publish is None or symbol in self.publish

    def notify(self, account_id: str, report: ExecutionReport) -> None:
        """Queue a report a host made itself (a reject after a RECEIPT ack)."""
        self._outbox.append(AccountReport(account_id=account_id, report=report))

    def drain(self) -> list[AccountReport | MarketEvent | WithdrawalSent]:
        """Everything that happened since the last drain, in order."""
        out, self._outbox = self._outbox, []
        return out

    def quiet_until(self) -> float:
        """Before this time `advance` would apply nothing and `drain` return nothing, as
        things stand (-inf: there is something to drain). A host that polls every few ms can
        skip both until then; the exchange's `now_ns` lags meanwhile, but every call that
        reads it advances first."""
        if self._outbox:
            return -math.inf
        due = self.market.next_ns()
        if self._pending_transfers:  # seldom: a list made on every call cost more than this
            ends = [
                t.complete_at_ns
                for t in self._pending_transfers.values()
                if t.complete_at_ns is not None
            ]
            if ends and (due is None or min(ends) < due):
                due = min(ends)
        return math.inf if due is None else due

    # --- orders --------------------------------------------------------------------
    def place(
        self,
        account_id: str,
        order: NewOrder,
        now_ns: int,
        receive_ns: int | None = None,
        *,
        client_id_reuse: ClientIdReuse = ClientIdReuse.NEVER,
    ) -> ExecutionReport:
        """Validate, risk-check and match one new order; returns its state afterwards.

        A refused order raises `OrderRejected` and leaves the account and books untouched.
        `receive_ns` is when the request reached the venue (defaults to `now_ns`);
        `client_id_reuse` whether a client order id used before may name this order (a
        reused id names the new order from then on). A spot order locks what it may spend
        in the spot wallet (the quote asset for a buy, the base for a sell) until it ends.
        """
        self.advance(now_ns)
        acct = self._account(account_id)
        inst, lock = self._check(acct, order, client_id_reuse)
        o = _Order(
            self._next_order_id,
            account_id,
            order,
            inst,
            receive_ns if receive_ns is not None else now_ns,
            now_ns,
            ts_ns=now_ns,
        )
        self._next_order_id += 1
        self._orders[o.order_id] = o
        self._by_client[(account_id, order.client_order_id)] = o.order_id
        if lock:
            held = acct.asset(_lock_asset(inst, order.side))
            held.free -= lock
            held.locked += lock
            o.locked = lock
        # An order of ours may rest in this book from now on: it waits no more (`publish_only`).
        self._book(order.symbol)
        self._waiting.pop(order.symbol, None)
        top = self._top(order.symbol)
        self._emit(o)
        self._execute(o, now_ns)
        self._publish_top(order.symbol, top)
        return self._report(o)

    def _execute(self, o: _Order, now_ns: int) -> None:
        req, inst, book = o.req, o.inst, self._book(o.req.symbol)
        limit = None if req.type is OrderType.MARKET else int(req.price / inst.tick)
        lots = o.lots
        if (
            req.time_in_force is TimeInForce.FOK
            and book.fillable(req.side, lots, limit, o.account) < lots
        ):
            self._finish(
                o,
                OrderStatus.EXPIRED,
                now_ns,
                RejectReason.FOK_NOT_FILLABLE,
                "fill-or-kill order could not be filled in full at once",
            )
            return
        matches, left = book.take(req.side, lots, limit, o.account)
        for m in matches:
            tid = self._trade_id()
            if m.maker_owner == MARKET:
                self.market.on_taken(req.symbol, m.maker_side, m.price, m.qty, now_ns)
            else:
                self._fill(
                    self._orders[m.maker_order_id], m.price, m.qty, Liquidity.MAKER, now_ns, tid
                )
            self._fill(o, m.price, m.qty, Liquidity.TAKER, now_ns, tid)
            if self._publishes(req.symbol):
                self._outbox.append(
                    MarketTrade(
                        venue=self.venue,
                        symbol=req.symbol,
                        trade_id=tid,
                        price=inst.tick * m.price,
                        quantity=inst.lot * m.qty,
                        aggressor=req.side,
                        ts_ns=now_ns,
                    )
                )
        if left == 0:
            return
        opposite = book.best_ask() if req.side is Side.BUY else book.best_bid()
        # take() stops early only at this account's own order: self-trade prevention.
        blocked = opposite is not None and (limit is None or book.would_cross(req.side, limit))
        if blocked:
            self._finish(
                o,
                OrderStatus.EXPIRED,
                now_ns,
                None,
                "self-trade prevented: the rest would trade with this account's own resting order",
            )
        elif req.type is OrderType.MARKET or req.time_in_force in (
            TimeInForce.IOC,
            TimeInForce.FOK,
        ):
            self._finish(
                o, OrderStatus.EXPIRED, now_ns, None, "no more liquidity within the order's limit"
            )
        else:
            assert limit is not None
            book.rest(RestingOrder(o.order_id, o.account, req.side, limit, left))

    def cancel(
        self, account_id: str, symbol: str, client_order_id: str, now_ns: int
    ) -> ExecutionReport:
        """Cancel the order by that client order id (the newest that has it); raises
        `UnknownOrder` if there is none, or it is no longer open."""
        self.advance(now_ns)
        return self._cancel(self._lookup(account_id, symbol, client_order_id), now_ns)

    def cancel_by_id(
        self, account_id: str, symbol: str, order_id: int, now_ns: int
    ) -> ExecutionReport:
        """Cancel the order by that exchange order id, as `cancel` does."""
        self.advance(now_ns)
        return self._cancel(self._lookup_by_id(account_id, symbol, order_id), now_ns)

    def _cancel(self, o: _Order, now_ns: int) -> ExecutionReport:
        if o.status.is_terminal:
            raise UnknownOrder(
                f"order {o.req.client_order_id!r} is already {o.status.value}; nothing to cancel",
                venue=self.venue,
            )
        symbol = o.req.symbol
        top = self._top(symbol)
        self._book(symbol).cancel(o.order_id)
        self._finish(o, OrderStatus.CANCELED, now_ns, None, None)
        self._publish_top(symbol, top)
        return self._report(o)

    def cancel_all(self, account_id: str, symbol: str, now_ns: int) -> list[ExecutionReport]:
        self.advance(now_ns)
        self._instrument(symbol)
        self._account(account_id)
        return [self._cancel(o, now_ns) for o in self._open(account_id) if o.req.symbol == symbol]

    def query(self, account_id: str, symbol: str, client_order_id: str) -> ExecutionReport:
        """The state of the order by that client order id (the newest that has it); raises
        `UnknownOrder` if the venue never saw it."""
        return self._report(self._lookup(account_id, symbol, client_order_id))

    def query_by_id(self, account_id: str, symbol: str, order_id: int) -> ExecutionReport:
        return self._report(self._lookup_by_id(account_id, symbol, order_id))

    def open_orders(self, account_id: str, symbol: str | None = None) -> list[ExecutionReport]:
        self._account(account_id)
        return [
            self._report(o)
            for o in self._orders.values()
            if o.account == account_id
            and not o.status.is_terminal
            and (symbol is None or o.req.symbol == symbol)
        ]

    def all_orders(self, account_id: str, symbol: str) -> list[ExecutionReport]:
        """Every order of the account on `symbol`, open and ended, oldest first."""
        self._account(account_id)
        return [
            self._report(o)
            for _, o in sorted(self._orders.items())
            if o.account == account_id and o.req.symbol == symbol
        ]

    def book_ticker(self, symbol: str) -> BookTicker | None:
        """The top of `symbol`'s book now (None while a side is empty)."""
        self._instrument(symbol)
        return self._ticker(symbol)

    def user_trades(self, account_id: str, symbol: str) -> list[UserTrade]:
        acct = self._account(account_id)
        return [
            UserTrade(s, oid, coid, side, f) for s, oid, coid, side, f in acct.trades if s == symbol
        ]

    # --- validation and risk -------------------------------------------------------
    def _check(
        self, acct: _Account, order: NewOrder, client_id_reuse: ClientIdReuse
    ) -> tuple[Instrument, Decimal]:
        """The order's instrument and, for a spot order, what it must lock in the spot
        wallet; `OrderRejected` at the first rule it breaks."""

        def reject(reason: RejectReason, message: str) -> OrderRejected:
            return OrderRejected(
                message, reason=reason, venue=self.venue, client_order_id=order.client_order_id
            )

        inst = self.instruments.get(order.symbol)
        if inst is None:
            raise reject(
                RejectReason.UNKNOWN_SYMBOL,
                f"unknown symbol {order.symbol!r}; this venue lists "
                f"{', '.join(sorted(self.instruments))}",
            )
        if not CLIENT_ORDER_ID.match(order.client_order_id):
            raise reject(
                RejectReason.INVALID_CLIENT_ORDER_ID,
                f"client order id {order.client_order_id!r} must be 1-36 characters "
                "from [A-Za-z0-9._:/-]",
            )
        prior = self._by_client.get((acct.account_id, order.client_order_id))
        if prior is not None and not (
            client_id_reuse is ClientIdReuse.AFTER_CLOSE and self._orders[prior].status.is_terminal
        ):
            raise reject(
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                f"client order id {order.client_order_id!r} was already used",
            )
        qty = order.quantity
        if not qty.is_finite() or qty <= 0 or qty > inst.max_qty:
            raise reject(
                RejectReason.INVALID_QUANTITY,
                f"quantity {qty} must be positive and at most {inst.max_qty}",
            )
        if not inst.on_lot(qty):
            raise reject(
                RejectReason.QTY_OFF_LOT,
                f"quantity {qty} is not a multiple of the lot size {inst.lot}",
            )
        if order.reduce_only and inst.kind is InstrumentKind.SPOT:
            raise reject(
                RejectReason.VENUE_REFUSED,
                f"reduce-only is for perpetuals: {order.symbol} is spot, which has no position "
                "to reduce (sell the asset instead)",
            )
        if order.type is OrderType.LIMIT:
            if order.price is None or not order.price.is_finite() or order.price <= 0:
                raise reject(
                    RejectReason.INVALID_PRICE,
                    f"a limit order needs a positive price, got {order.price}",
                )
            if not inst.on_tick(order.price):
                raise reject(
                    RejectReason.PRICE_OFF_TICK,
                    f"price {order.price} is not a multiple of the tick size {inst.tick}",
                )
        elif order.time_in_force in (TimeInForce.POST_ONLY, TimeInForce.FOK):
            raise reject(
                RejectReason.INVALID_PRICE,
                f"time in force {order.time_in_force.value} needs a limit order",
            )
        mark = self.mark_price(order.symbol)
        book = self._book(order.symbol)
        if order.type is OrderType.LIMIT:
            assert order.price is not None
            price = order.price
            if mark is not None:
                low, high = mark * (1 - self.price_band), mark * (1 + self.price_band)
                if not low <= price <= high:
                    raise reject(
                        RejectReason.INVALID_PRICE,
                        f"price {price} is outside the band {low:.2f}-{high:.2f} "
                        f"({self.price_band * 100}% around mark {mark})",
                    )
            if order.time_in_force is TimeInForce.POST_ONLY and book.would_cross(
                order.side, int(price / inst.tick)
            ):
                best = book.best_ask() if order.side is Side.BUY else book.best_bid()
                assert best is not None
                touch, where = ("ask", "below") if order.side is Side.BUY else ("bid", "above")
                raise reject(
                    RejectReason.POST_ONLY_WOULD_CROSS,
                    f"post-only {order.side.value} at {price} would take liquidity: the best "
                    f"{touch} is {inst.tick * best}; a post-only {order.side.value} must be "
                    f"priced {where} it",
                )
        else:
            price = self._walk_price(inst, order.side, qty) or mark
            if price is None:
                raise reject(
                    RejectReason.INVALID_PRICE, f"no price for {order.symbol}: the book is empty"
                )
        notional = inst.notional(price, qty)
        if notional < inst.min_notional:
            raise reject(
                RejectReason.BELOW_MIN_NOTIONAL,
                f"notional {notional:.4f} is below the minimum {inst.min_notional} "
                f"for {order.symbol}",
            )
        if inst.kind is InstrumentKind.SPOT:
            lock = self._spot_lock(inst, order, price, qty)
            asset = _lock_asset(inst, order.side)
            free = acct.spot[asset].free if asset in acct.spot else _ZERO
            if lock > free:
                raise reject(
                    RejectReason.INSUFFICIENT_BALANCE,
                    f"a spot {order.side.value} of {qty} {order.symbol} needs {_plain(lock)} "
                    f"{asset} but the spot wallet has {_plain(free)} {asset} free",
                )
            return inst, lock
        need, have = self._margin_need(acct, inst, order, price, qty)
        if need > have:
            raise reject(
                RejectReason.INSUFFICIENT_MARGIN,
                f"order needs {need:.2f} {MARGIN_ASSET} of margin but {have:.2f} is available",
            )
        return inst, _ZERO

    def _walk_price(self, inst: Instrument, side: Side, qty: Decimal) -> Decimal | None:
        """The worst price a market order of `qty` would reach on the current book."""
        levels = self._book(inst.symbol).depth(side.opposite, 10_000)
        left = int(qty / inst.lot)
        for price, lots in levels:
            left -= lots
            if left <= 0:
                return inst.tick * price
        return inst.tick * levels[-1][0] if levels else None

    def _spot_lock(
        self, inst: Instrument, order: NewOrder, price: Decimal, qty: Decimal
    ) -> Decimal:
        """What a spot order holds of the wallet while it lives: the base asset it sells; the
        quote asset a limit buy pays at its price; for a market buy, what walking the book
        costs now (the remainder the book cannot fill at its worst price)."""
        if order.side is Side.SELL:
            return qty
        if order.type is OrderType.LIMIT:
            return inst.notional(price, qty)
        cost, left = _ZERO, int(qty / inst.lot)
        for ticks, lots in self._book(inst.symbol).depth(Side.SELL, 10_000):
            take = min(left, lots)
            cost += inst.notional(inst.tick * ticks, inst.lot * take)
            left -= take
            if left == 0:
                return cost
        return cost + inst.notional(price, inst.lot * left)

    def _margin_need(
        self, acct: _Account, inst: Instrument, order: NewOrder, price: Decimal, qty: Decimal
    ) -> tuple[Decimal, Decimal]:
        """(margin this perpetual order needs, margin the account has available), USDT."""
        taker = self.fees.rate(Liquidity.TAKER)
        pos = acct.positions.get(inst.symbol, _Position()).qty
        signed = qty * order.side.sign
        if order.reduce_only:
            if pos == 0 or (pos > 0) == (signed > 0) or abs(signed) > abs(pos):
                raise OrderRejected(
                    f"reduce-only {order.side.value} {qty} would not reduce the position {pos}",
                    reason=RejectReason.REDUCE_ONLY_WOULD_INCREASE,
                    venue=self.venue,
                    client_order_id=order.client_order_id,
                )
            return _ZERO, self._available(acct)
        # Resting orders on the same side close the position first (as `_open_order_margin`
        # counts them): only what they leave of it offsets this order.
        closes = max(_ZERO, -pos) if order.side is Side.BUY else max(_ZERO, pos)
        resting = sum(
            (
                o.inst.lot * o.open_lots
                for o in self._open(acct.account_id)
                if o.req.symbol == inst.symbol
                and o.req.side is order.side
                and not o.req.reduce_only
            ),
            _ZERO,
        )
        increase = max(_ZERO, qty - max(_ZERO, closes - resting))
        need = inst.notional(price, increase) / acct.leverage + inst.notional(price, qty) * taker
        return need, self._available(acct)

    def _open(self, account_id: str) -> list[_Order]:
        return [
            o for o in self._orders.values() if o.account == account_id and not o.status.is_terminal
        ]

    def _open_order_margin(self, acct: _Account) -> Decimal:
        """Margin held for resting perpetual orders: 1/leverage of the part of each side's
        open quantity that would grow the position rather than close it. (Spot orders hold
        the spot wallet instead: their lock.)"""
        total = _ZERO
        sides: dict[tuple[str, Side], tuple[Decimal, Decimal]] = {}
        for o in self._open(acct.account_id):
            if o.req.price is None or o.req.reduce_only or o.inst.kind is InstrumentKind.SPOT:
                continue
            qty = o.inst.lot * o.open_lots
            notional = o.inst.notional(o.req.price, qty)
            q, n = sides.get((o.inst.symbol, o.req.side), (_ZERO, _ZERO))
            sides[(o.inst.symbol, o.req.side)] = (q + qty, n + notional)
        for (symbol, side), (qty, notional) in sides.items():
            pos = acct.positions.get(symbol, _Position()).qty
            closes = max(_ZERO, -pos) if side is Side.BUY else max(_ZERO, pos)
            growing = max(_ZERO, qty - closes)
            total += notional * growing / qty / acct.leverage
        return total

    def _perp_figures(self, acct: _Account) -> tuple[Decimal, Decimal]:
        """(unrealised P&L, position initial margin) over the account's perps."""
        upnl = im = _ZERO
        for symbol, p in acct.positions.items():
            inst = self.instruments[symbol]
            if inst.kind is not InstrumentKind.PERP or p.qty == 0:
                continue
            mark = self.mark_price(symbol) or p.entry
            upnl += p.qty * (mark - p.entry) * inst.contract_size
            im += abs(p.qty) * mark * inst.contract_size / acct.leverage
        return upnl, im

    def _available(self, acct: _Account) -> Decimal:
        upnl, im = self._perp_figures(acct)
        return acct.wallet + upnl - im - self._open_order_margin(acct)

    # --- fills and reports ---------------------------------------------------------
    def _fill(
        self,
        o: _Order,
        price_ticks: int,
        lots: int,
        liquidity: Liquidity,
        ts_ns: int,
        trade_id: int,
    ) -> None:
        inst = o.inst
        price, qty = inst.tick * price_ticks, inst.lot * lots
        o.cum_lots += lots
        o.notional += price * qty
        o.ts_ns = ts_ns
        o.status = OrderStatus.FILLED if o.cum_lots == o.lots else OrderStatus.PARTIALLY_FILLED
        acct = self._accounts[o.account]
        if inst.kind is InstrumentKind.SPOT:
            fee, fee_asset = self._settle_spot(acct, o, price, qty, liquidity)
        else:
            fee, fee_asset = inst.notional(price, qty) * self.fees.rate(liquidity), MARGIN_ASSET
            acct.wallet -= fee
            self._book_position(acct, inst, o.req.side, price, qty)
        o.fee += fee
        fill = Fill(
            trade_id=str(trade_id),
            price=price,
            quantity=qty,
            fee=fee,
            fee_asset=fee_asset,
            liquidity=liquidity,
            ts_ns=ts_ns,
        )
        o.last_fill = fill
        acct.trades.append((inst.symbol, o.order_id, o.req.client_order_id, o.req.side, fill))
        self._emit(o)

    def _settle_spot(
        self, acct: _Account, o: _Order, price: Decimal, qty: Decimal, liquidity: Liquidity
    ) -> tuple[Decimal, str]:
        """Move a spot fill between the wallet's assets: what is paid comes out of the order's
        lock, what is received arrives free less the commission, which is charged in it (as
        Binance does when BNB does not pay). The fee and its asset."""
        inst = o.inst
        rate = self.spot_fees.rate(liquidity)
        quote = inst.notional(price, qty)
        if o.req.side is Side.BUY:
            paid, got, got_asset = quote, qty, inst.base
        else:
            paid, got, got_asset = qty, quote, inst.quote
        fee = (got * rate).quantize(_FEE_QUANTUM)
        held = acct.asset(_lock_asset(inst, o.req.side))
        held.locked -= paid
        o.locked -= paid
        assert o.locked >= 0, f"order {o.order_id} spent more than it locked"
        acct.asset(got_asset).free += got - fee
        self._release(acct, o, o.locked - self._lock_needed(o))
        return fee, got_asset

    def _lock_needed(self, o: _Order) -> Decimal:
        """What a spot order must still lock: nothing once it ended; the base it still
        sells; the quote a limit buy still pays at its own price (a fill at a better price
        frees the difference); a market buy keeps its lock until it ends."""
        if o.status.is_terminal:
            return _ZERO
        rest = o.inst.lot * o.open_lots
        if o.req.side is Side.SELL:
            return rest
        if o.req.price is not None:
            return o.inst.notional(o.req.price, rest)
        return o.locked

    def _release(self, acct: _Account, o: _Order, amount: Decimal) -> None:
        """Give back `amount` of what the order locks to the free part of its asset."""
        if amount <= 0:
            return
        held = acct.asset(_lock_asset(o.inst, o.req.side))
        held.locked -= amount
        held.free += amount
        o.locked -= amount

    def _book_position(
        self, acct: _Account, inst: Instrument, side: Side, price: Decimal, qty: Decimal
    ) -> None:
        pos = acct.positions.setdefault(inst.symbol, _Position())
        signed = side.sign * qty
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = pos.qty + signed
            pos.entry = (abs(pos.qty) * pos.entry + qty * price) / abs(total)
            pos.qty = total
            return
        closing = min(qty, abs(pos.qty))
        direction = 1 if pos.qty > 0 else -1
        acct.wallet += closing * (price - pos.entry) * direction * inst.contract_size
        pos.qty += signed
        if pos.qty == 0:
            pos.entry = _ZERO
        elif (pos.qty > 0) != (direction > 0):
            pos.entry = price  # flipped: the rest opened at this price

    def _finish(
        self,
        o: _Order,
        status: OrderStatus,
        now_ns: int,
        reason: RejectReason | None,
        message: str | None,
    ) -> None:
        o.status = status
        o.ts_ns = now_ns
        o.reason = reason
        o.message = message
        o.last_fill = None
        self._release(self._accounts[o.account], o, o.locked)
        self._emit(o)

    def _emit(self, o: _Order) -> None:
        self._outbox.append(AccountReport(account_id=o.account, report=self._report(o)))

    def _report(self, o: _Order) -> ExecutionReport:
        inst = o.inst
        cum = inst.lot * o.cum_lots
        return ExecutionReport(
            venue=self.venue,
            symbol=inst.symbol,
            client_order_id=o.req.client_order_id,
            order_id=str(o.order_id),
            side=o.req.side,
            order_type=o.req.type,
            time_in_force=o.req.time_in_force,
            status=o.status,
            quantity=o.req.quantity,
            price=o.req.price,
            cum_filled=cum,
            avg_price=(o.notional / cum).quantize(_AVG_QUANTUM) if cum else None,
            cum_fee=o.fee,
            last_fill=o.last_fill,
            reject_reason=o.reason,
            reject_message=o.message,
            venue_receive_ns=o.receive_ns,
            venue_accept_ns=o.accept_ns,
            venue_ts_ns=o.ts_ns,
            reduce_only=o.req.reduce_only,
            # A spot order pays its fee in what it receives; a perpetual's is in USDT.
            fee_asset=_lock_asset(inst, o.req.side.opposite)
            if inst.kind is InstrumentKind.SPOT
            else "",
        )

    def _trade_id(self) -> int:
        self._next_trade_id += 1
        return self._next_trade_id - 1

    # --- transfers, withdrawals and deposits --------------------------------------
    def transfer(
        self,
        account_id: str,
        asset: str,
        amount: Decimal,
        source: Wallet,
        destination: Wallet,
        now_ns: int,
        *,
        complete_at_ns: int | None,
        fails: bool,
        client_id: str = "",
    ) -> TransferRecord:
        """Move USDT between the account's spot and futures wallets.

        The amount leaves `source` at once (what is free there: for the futures wallet, its
        available margin but never unrealised profit); it reaches `destination` when
        `advance` passes `complete_at_ns` (COMPLETED), or goes back to `source` then if
        `fails` (FAILED); `complete_at_ns=None` stalls it until `end_transfer`. A refusal
        (`TransferRefused`) changes nothing. `client_id` (optional) may name one transfer of
        the account only.
        """
        self.advance(now_ns)
        acct = self._transfer_account(account_id)
        if source is destination:
            raise self._refuse(
                TransferRefusal.INVALID_WALLETS,
                f"a transfer moves between the spot and futures wallets; from {source.value} "
                f"to {destination.value} moves nothing",
            )
        if asset != MARGIN_ASSET:
            raise self._refuse(
                TransferRefusal.INVALID_WALLETS,
                f"only {MARGIN_ASSET} (the futures wallet's margin) moves to and from the "
                f"futures wallet; got {asset!r}",
            )
        self._check_amount(amount)
        self._check_client_id(acct, TransferKind.INTERNAL, client_id)
        have = self._transferable(acct, source, asset)
        if amount > have:
            raise self._refuse(
                TransferRefusal.INSUFFICIENT_FUNDS,
                f"the {source.value} wallet has {_plain(have)} {asset} free to transfer; "
                f"{_plain(amount)} was asked",
            )
        self._debit(acct, source, asset, amount)
        t = self._open_transfer(
            TransferKind.INTERNAL,
            acct,
            asset,
            amount,
            source,
            destination.value,
            client_id,
            "",
            now_ns,
            complete_at_ns,
            fails,
        )
        return self._transfer_record(t)

    def withdraw(
        self,
        account_id: str,
        asset: str,
        amount: Decimal,
        address: str,
        client_id: str,
        now_ns: int,
        *,
        complete_at_ns: int | None,
        fails: bool,
        network: str = "",
    ) -> TransferRecord:
        """Send `amount` of `asset` from the spot wallet to `address` (whose form the host
        checks: it delivers there).

        The free amount is debited at once; when `advance` passes `complete_at_ns` the
        withdrawal is sent (COMPLETED, and a `WithdrawalSent` is queued for the host to
        deliver), or given back to the spot wallet if `fails` (FAILED). A `client_id` the
        account used before for a withdrawal is refused, as Binance refuses a repeated
        withdrawOrderId ("" names none).
        """
        self.advance(now_ns)
        acct = self._transfer_account(account_id)
        self._check_asset(asset)
        if not address:
            raise self._refuse(TransferRefusal.INVALID_ADDRESS, "a withdrawal needs an address")
        self._check_amount(amount)
        self._check_client_id(acct, TransferKind.WITHDRAWAL, client_id)
        have = self._transferable(acct, Wallet.SPOT, asset)
        if amount > have:
            raise self._refuse(
                TransferRefusal.INSUFFICIENT_FUNDS,
                f"the spot wallet has {_plain(have)} {asset} free; {_plain(amount)} was asked",
            )
        self._debit(acct, Wallet.SPOT, asset, amount)
        t = self._open_transfer(
            TransferKind.WITHDRAWAL,
            acct,
            asset,
            amount,
            Wallet.SPOT,
            address,
            client_id,
            network,
            now_ns,
            complete_at_ns,
            fails,
        )
        return self._transfer_record(t)

    def end_transfer(
        self, account_id: str, transfer_id: int, now_ns: int, *, fails: bool = False
    ) -> TransferRecord:
        """End a pending transfer now (a stalled one: its time never comes by itself), as it
        would have ended: COMPLETED, or FAILED and given back if `fails`."""
        self.advance(now_ns)
        t = self._find_transfer(account_id, transfer_id)
        if t.state.is_final:
            raise self._refuse(
                TransferRefusal.NOT_PENDING,
                f"transfer {transfer_id} already ended {t.state.value}; only a pending one can "
                "be ended",
            )
        self._end(t, TransferState.FAILED if fails else TransferState.COMPLETED, now_ns)
        return self._transfer_record(t)

    def credit_deposit(
        self,
        account_id: str,
        asset: str,
        amount: Decimal,
        tx_id: str,
        now_ns: int,
        *,
        address: str = "",
        network: str = "",
    ) -> DepositRecord:
        """Credit a deposit that reached the account to its spot wallet, once per `tx_id`: a
        delivery repeated after a lost answer finds the deposit it made and credits nothing
        (a tx id seen with other contents is refused)."""
        self.advance(now_ns)
        self._transfer_account(account_id)
        seen = self._deposits.get(tx_id)
        if seen is not None:
            if (seen.account_id, seen.asset, seen.amount) != (account_id, asset, amount):
                raise self._refuse(
                    TransferRefusal.CONFLICTING_DEPOSIT,
                    f"tx {tx_id!r} was credited before as {_plain(seen.amount)} {seen.asset} "
                    f"to {seen.account_id!r}",
                )
            return seen
        if not tx_id:
            raise self._refuse(TransferRefusal.CONFLICTING_DEPOSIT, "a deposit needs a tx id")
        self._check_amount(amount)
        self.deposit(account_id, asset, amount, Wallet.SPOT)
        record = DepositRecord(
            deposit_id=len(self._deposits) + 1,
            account_id=account_id,
            asset=asset,
            amount=amount,
            tx_id=tx_id,
            address=address,
            network=network,
            credited_ns=now_ns,
        )
        self._deposits[tx_id] = record
        return record

    def transfers(
        self,
        account_id: str,
        kind: TransferKind | None = None,
        *,
        transfer_id: int | None = None,
        client_id: str | None = None,
    ) -> list[TransferRecord]:
        """The account's transfers and withdrawals, oldest first: of one `kind`, by id, by
        client id, as asked."""
        self._transfer_account(account_id)
        return [
            self._transfer_record(t)
            for t in self._transfers.values()
            if t.account == account_id
            and (kind is None or t.kind is kind)
            and (transfer_id is None or t.transfer_id == transfer_id)
            and (client_id is None or t.client_id == client_id)
        ]

    def deposits(self, account_id: str) -> list[DepositRecord]:
        """The deposits credited to the account, oldest first."""
        self._transfer_account(account_id)
        return [d for d in self._deposits.values() if d.account_id == account_id]

    def assets(self) -> set[str]:
        """The assets this venue knows: USDT, both assets of every instrument, and any an
        account holds."""
        known = {MARGIN_ASSET}
        for inst in self.instruments.values():
            known |= {inst.base, inst.quote}
        for acct in self._accounts.values():
            known |= set(acct.spot) | set(acct.futures_assets)
        return known

    def _settle_transfers(self, now_ns: int) -> None:
        """End every pending transfer whose time has come, in the order of their times."""
        due = sorted(
            (
                t
                for t in self._pending_transfers.values()
                if t.complete_at_ns is not None and t.complete_at_ns <= now_ns
            ),
            key=lambda t: (t.complete_at_ns, t.transfer_id),
        )
        for t in due:
            assert t.complete_at_ns is not None
            self._end(
                t, TransferState.FAILED if t.fails else TransferState.COMPLETED, t.complete_at_ns
            )

    def _end(self, t: _Transfer, state: TransferState, at_ns: int) -> None:
        if state not in _TRANSFER_MOVES[t.state]:
            raise IllegalTransferMove(t.transfer_id, t.state, state)
        t.state, t.updated_ns = state, at_ns
        del self._pending_transfers[t.transfer_id]
        if state is TransferState.FAILED:
            self.deposit(t.account, t.asset, t.amount, t.source)  # given back
        elif t.kind is TransferKind.INTERNAL:
            self.deposit(t.account, t.asset, t.amount, Wallet(t.destination))
        else:
            t.tx_id = f"{self.venue}-withdrawal-{t.transfer_id}"
            self._outbox.append(
                WithdrawalSent(
                    venue=self.venue,
                    account_id=t.account,
                    transfer_id=t.transfer_id,
                    client_id=t.client_id,
                    asset=t.asset,
                    amount=t.amount,
                    address=t.destination,
                    network=t.network,
                    tx_id=t.tx_id,
                    sent_ns=at_ns,
                )
            )

    def _open_transfer(
        self,
        kind: TransferKind,
        acct: _Account,
        asset: str,
        amount: Decimal,
        source: Wallet,
        destination: str,
        client_id: str,
        network: str,
        now_ns: int,
        complete_at_ns: int | None,
        fails: bool,
    ) -> _Transfer:
        t = _Transfer(
            self._next_transfer_id,
            kind,
            acct.account_id,
            asset,
            amount,
            source,
            destination,
            client_id,
            network,
            now_ns,
            complete_at_ns,
            fails,
            updated_ns=now_ns,
        )
        self._next_transfer_id += 1
        self._transfers[t.transfer_id] = self._pending_transfers[t.transfer_id] = t
        if client_id:
            self._transfer_by_client[(acct.account_id, kind, client_id)] = t.transfer_id
        return t

    def _transferable(self, acct: _Account, wallet: Wallet, asset: str) -> Decimal:
        """What of `asset` may leave `wallet`: the spot wallet's free amount (not what open
        orders lock); from the futures wallet its available margin, but never more than the
        wallet itself (unrealised profit is not transferable, as on Binance)."""
        if wallet is Wallet.SPOT:
            held = acct.spot.get(asset)
            return held.free if held is not None else _ZERO
        return max(_ZERO, min(self._available(acct), acct.wallet))

    def _debit(self, acct: _Account, wallet: Wallet, asset: str, amount: Decimal) -> None:
        if wallet is Wallet.SPOT:
            acct.asset(asset).free -= amount
        else:
            acct.wallet -= amount

    def _check_amount(self, amount: Decimal) -> None:
        if not (amount.is_finite() and amount > 0 and amount % _FEE_QUANTUM == 0):
            raise self._refuse(
                TransferRefusal.INVALID_AMOUNT,
                f"amount {amount} must be positive, with at most 8 decimals",
            )

    def _check_asset(self, asset: str) -> None:
        if asset not in self.assets():
            raise self._refuse(
                TransferRefusal.UNKNOWN_ASSET,
                f"unknown asset {asset!r}; this venue knows {', '.join(sorted(self.assets()))}",
            )

    def _check_client_id(self, acct: _Account, kind: TransferKind, client_id: str) -> None:
        prior = self._transfer_by_client.get((acct.account_id, kind, client_id))
        if client_id and prior is not None:
            raise self._refuse(
                TransferRefusal.DUPLICATE_CLIENT_ID,
                f"client id {client_id!r} already names {kind.value} {prior} of this account",
            )

    def _transfer_account(self, account_id: str) -> _Account:
        acct = self._accounts.get(account_id)
        if acct is None:
            raise self._refuse(TransferRefusal.UNKNOWN_ACCOUNT, f"unknown account {account_id!r}")
        return acct

    def _find_transfer(self, account_id: str, transfer_id: int) -> _Transfer:
        t = self._transfers.get(transfer_id)
        if t is None or t.account != account_id:
            raise UnknownTransfer(
                f"no transfer {transfer_id} for account {account_id!r}", venue=self.venue
            )
        return t

    def _refuse(self, reason: TransferRefusal, message: str) -> TransferRefused:
        return TransferRefused(message, reason=reason, venue=self.venue)

    def _transfer_record(self, t: _Transfer) -> TransferRecord:
        return TransferRecord(
            transfer_id=t.transfer_id,
            kind=t.kind,
            account_id=t.account,
            asset=t.asset,
            amount=t.amount,
            source=t.source,
            destination=t.destination,
            state=t.state,
            requested_ns=t.requested_ns,
            updated_ns=t.updated_ns,
            client_id=t.client_id,
            network=t.network,
            tx_id=t.tx_id,
        )

    # --- account views -------------------------------------------------------------
    def account_snapshot(self, account_id: str, now_ns: int) -> AccountSnapshot:
        """Both of the account's wallets: `balances`, the margin figures and `positions` are
        the USD-M futures wallet's (its assets other than USDT are listed with nothing
        available: they are never margin); `spot_balances` is the spot wallet
        (`spot_wallet`)."""
        self.advance(now_ns)
        acct = self._account(account_id)
        upnl, im = self._perp_figures(acct)
        order_margin = self._open_order_margin(acct)
        available = acct.wallet + upnl - im - order_margin
        balances = [Balance(asset=MARGIN_ASSET, wallet=acct.wallet, available=available)]
        balances += [
            Balance(asset=asset, wallet=held, available=_ZERO)
            for asset, held in sorted(acct.futures_assets.items())
        ]
        return AccountSnapshot(
            venue=self.venue,
            account_id=account_id,
            balances=balances,
            positions=self.positions(account_id, now_ns),
            margin_asset=MARGIN_ASSET,
            wallet_balance=acct.wallet,
            unrealized_pnl=upnl,
            position_initial_margin=im,
            open_order_initial_margin=order_margin,
            available_margin=available,
            ts_ns=self.now_ns,
            spot_balances=self.spot_wallet(account_id),
        )

    def spot_wallet(self, account_id: str) -> list[Balance]:
        """The account's spot wallet by asset, `wallet` free plus locked and `available`
        free: every asset it holds, and the two assets of every spot instrument."""
        acct = self._account(account_id)
        assets = set(acct.spot)
        for inst in self.instruments.values():
            if inst.kind is InstrumentKind.SPOT:
                assets |= {inst.base, inst.quote}
        out = []
        for name in sorted(assets):
            held = acct.spot.get(name, _Asset())
            out.append(Balance(asset=name, wallet=held.free + held.locked, available=held.free))
        return out

    def positions(self, account_id: str, now_ns: int) -> list[Position]:
        """The account's perpetual positions (spot has none: its holdings are the wallet)."""
        self.advance(now_ns)
        acct = self._account(account_id)
        out = []
        for symbol, p in sorted(acct.positions.items()):
            inst = self.instruments[symbol]
            mark = self.mark_price(symbol) or p.entry
            out.append(
                Position(
                    symbol=symbol,
                    quantity=p.qty,
                    entry_price=p.entry,
                    mark_price=mark,
                    unrealized_pnl=p.qty * (mark - p.entry) * inst.contract_size,
                    initial_margin=abs(p.qty) * mark * inst.contract_size / acct.leverage,
                    leverage=acct.leverage,
                )
            )
        return out

    # --- lookups -------------------------------------------------------------------
    def _account(self, account_id: str) -> _Account:
        acct = self._accounts.get(account_id)
        if acct is None:
            raise OrderRejected(
                f"unknown account {account_id!r}",
                reason=RejectReason.UNKNOWN_ACCOUNT,
                venue=self.venue,
            )
        return acct

    def _instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise OrderRejected(
                f"unknown symbol {symbol!r}; this venue lists "
                f"{', '.join(sorted(self.instruments))}",
                reason=RejectReason.UNKNOWN_SYMBOL,
                venue=self.venue,
            )
        return inst

    def _lookup(self, account_id: str, symbol: str, client_order_id: str) -> _Order:
        self._account(account_id)
        self._instrument(symbol)
        oid = self._by_client.get((account_id, client_order_id))
        if oid is None or self._orders[oid].req.symbol != symbol:
            raise UnknownOrder(
                f"no order {client_order_id!r} on {symbol} for this account", venue=self.venue
            )
        return self._orders[oid]

    def _lookup_by_id(self, account_id: str, symbol: str, order_id: int) -> _Order:
        o = self._orders.get(order_id)
        if o is None or o.account != account_id or o.req.symbol != symbol:
            raise UnknownOrder(
                f"no order {order_id} on {symbol} for this account", venue=self.venue
            )
        return o


def _lock_asset(inst: Instrument, side: Side) -> str:
    """The asset a spot order locks and pays with: the quote to buy, the base to sell."""
    return inst.quote if side is Side.BUY else inst.base


def _plain(x: Decimal) -> str:
    """A decimal without trailing zeros or an exponent, for messages."""
    return format(x.normalize(), "f") if x else "0"
