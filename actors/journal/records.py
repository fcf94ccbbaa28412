"""The journal's record types: one tagged union of frozen structs, the facts it keeps (DESIGN §9).

A record is a past-tense fact, written once and never changed. Each belongs to one stream:
a basket run's records carry its `run_id` (`"<basket_id>#<n>"`, see `actors.journal.store`),
a hedge desk's carry its `desk_id` (stream `"@hedge/<desk_id>"`, a name no run id can take:
basket ids never contain `@` or `#`). `ts_ns` is when the fact happened, in wall-clock
nanoseconds of the actor that wrote it (for `ChildOrderSent`, the instant just before the
order left).

What the venue said is kept as the venue said it: acknowledgements and later reports embed
the `ExecutionReport` itself, so recovery replays them into a `LegLedger` unchanged.

Storage: the class name is the tag (`kind`), so a record type is never renamed; a new
optional field is compatible both ways, anything else is a schema change (a migration in
each backend, so that older code refuses the journal). Decimals are stored as strings and
come back exact; integers (ns, counts) are 64-bit.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

from actors.lifecycle import BasketState
from venues.model import (
    ExecutionReport,
    Liquidity,
    NewOrder,
    OrderType,
    Side,
    TimeInForce,
)

DESK_STREAM_PREFIX = "@hedge/"


class Purpose(enum.StrEnum):
    """Why a leg sent a child order."""

    SLICE = "slice"  # working the leg's target
    UNWIND = "unwind"  # reversing what the leg filled (failure policy `unwind`)


class ReportSource(enum.StrEnum):
    """How an execution report reached the leg."""

    STREAM = "stream"  # the venue's user-data stream
    QUERY = "query"  # an answer to a query by client order id (unknown outcomes, reconcile)
    RECOVERY = "recovery"  # a query made while rebuilding a leg after a restart


class _Record(msgspec.Struct, frozen=True, tag_field="kind", tag=True):
    """Base of every record: tagged by class name, immutable (each subclass is `kw_only`:
    the option is not inherited)."""


# -- a basket run --------------------------------------------------------------------------
class BasketSubmitted(_Record, kw_only=True):
    """A run began: the spec as submitted (its text) and which venues configuration ran it."""

    run_id: str
    basket_id: str
    spec: str  # the spec's text as the user gave it (TOML or JSON)
    spec_format: str  # "toml" or "json"
    venues_digest: str  # sha256 of the venues configuration the run was checked against
    ts_ns: int
    submitted_by: str = ""  # who or what submitted it (a driver, `legato run`, a recovery)
    # The run's client order ids start with this (`<basket_id>.<tag>`, DESIGN §7): unique
    # within the journal, and with its random tag across journals and engines.
    order_prefix: str = ""
    options: str = ""  # the `BasketOptions` it ran with (JSON), for a take-over


class BasketStateChanged(_Record, kw_only=True):
    """The run's basket moved to `state` (DESIGN §5); the store keeps the run's state with it."""

    run_id: str
    state: BasketState
    reason: str = ""
    ts_ns: int


class BasketReported(_Record, kw_only=True):
    """The run's report, as its basket actor made it when the run ended (JSON, the shape
    `legato run --json` prints): what `legato show` and `legato attach` give back."""

    run_id: str
    report: str
    ts_ns: int


class BasketResolved(_Record, kw_only=True):
    """The basket as checked against the venues (`ResolvedBasket`, JSON): the quantities,
    instruments and parameters its legs were armed with, for a recovery to rebuild them
    exactly (a spec in USD resolves to other quantities at another price)."""

    run_id: str
    resolved: str
    ts_ns: int


# -- child orders --------------------------------------------------------------------------
class ChildOrderSent(_Record, kw_only=True):
    """A child order about to be sent: written (and committed) BEFORE it leaves, so that a
    restarted leg knows every client order id it may have used and never reuses one."""

    run_id: str
    leg_id: str
    n: int  # the slice number within the leg (unwinds number on from the slices)
    client_order_id: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None  # None for a market order
    type: OrderType
    tif: TimeInForce
    reduce_only: bool = False
    purpose: Purpose = Purpose.SLICE
    mid: Decimal | None = None  # the venue's mid the leg saw when it sent the order
    ts_ns: int  # sent: just before the request left

    def new_order(self) -> NewOrder:
        """The order as it went to the venue."""
        return NewOrder(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            quantity=self.qty,
            price=self.price,
            time_in_force=self.tif,
            reduce_only=self.reduce_only,
        )


class OrderAcked(_Record, kw_only=True):
    """The venue's answer to the placement (its ack), as it gave it; `ts_ns` is when it came
    back. An ack of kind `UNKNOWN` says only that the answer was lost."""

    run_id: str
    leg_id: str
    report: ExecutionReport
    ts_ns: int

    @property
    def client_order_id(self) -> str:
        return self.report.client_order_id


class OrderReported(_Record, kw_only=True):
    """A later execution report of a child order (stream or query), as the venue gave it:
    status, cumulative fill, average price and fee, ack kind and the venue's own times."""

    run_id: str
    leg_id: str
    report: ExecutionReport
    source: ReportSource = ReportSource.STREAM
    ts_ns: int  # when the leg received it

    @property
    def client_order_id(self) -> str:
        return self.report.client_order_id


class FillBooked(_Record, kw_only=True):
    """One trade of a child order (per venue trade id), with its fee and liquidity."""

    run_id: str
    leg_id: str
    client_order_id: str
    venue: str
    symbol: str
    trade_id: str  # the venue's, as a string (journals before schema 3 held numbers)
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity  # maker or taker
    venue_ts_ns: int  # the trade's time on the venue's clock
    ts_ns: int


class OrderRejected(_Record, kw_only=True):
    """The placement failed: refused by the venue, or turned away at its door (down, rate
    limited: `turned_away`, which says nothing about the order). Nothing is working."""

    run_id: str
    leg_id: str
    client_order_id: str
    reason: str  # "REASON: message", as the leg records it
    turned_away: bool = False
    ts_ns: int


class OrderOutcomeUnknown(_Record, kw_only=True):
    """No answer to the placement: the order may or may not be working. It is queried, never
    sent again."""

    run_id: str
    leg_id: str
    client_order_id: str
    reason: str = ""
    ts_ns: int


class LegReconciled(_Record, kw_only=True):
    """A leg checked every child order with its venue (DESIGN §5.7)."""

    run_id: str
    leg_id: str
    reconciled: bool
    orders_checked: int
    venue_filled_qty: Decimal  # slices minus unwinds, signed along the leg's side
    ledger_filled_qty: Decimal
    mismatches: list[str] = []  # "client order id: field ours=… venue=…"
    still_open: list[str] = []
    missing: list[str] = []
    error: str = ""  # why the venue could not be asked
    ts_ns: int


# -- the hedge desk ------------------------------------------------------------------------
class HedgeOrderSent(_Record, kw_only=True):
    """A hedge desk's order, about to be sent (write-ahead, like `ChildOrderSent`)."""

    desk_id: str
    client_order_id: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal | None  # None: about `notional_usd` at the venue's price
    notional_usd: float
    ts_ns: int


class HedgeOrderReported(_Record, kw_only=True):
    """How the venue finished a hedge order, as it reported it."""

    desk_id: str
    report: ExecutionReport
    ts_ns: int


class HedgePosition(_Record, kw_only=True):
    """A hedge desk's position in one instrument after a trade or a resync with the venue."""

    desk_id: str
    symbol: str
    qty: Decimal  # signed: long positive
    baskets: dict[str, float] = {}  # the share of the hedge each run caused (USD), by run id
    ts_ns: int


# -- collateral ----------------------------------------------------------------------------
class CollateralReserved(_Record, kw_only=True):
    """Collateral held for a run, as now held (a later reservation replaces it): USD margin
    per venue, and base assets per venue for spot sells."""

    run_id: str
    needs: dict[str, Decimal]
    holdings: dict[str, dict[str, Decimal]] = {}
    ts_ns: int


class CollateralReleased(_Record, kw_only=True):
    """A run's collateral went back to the venues' free pools (what had been held)."""

    run_id: str
    needs: dict[str, Decimal] = {}
    holdings: dict[str, dict[str, Decimal]] = {}
    reason: str = ""
    ts_ns: int


class TransferRecorded(_Record, kw_only=True):
    """A transfer asked for a run's collateral, as asked or as it changed state (the newest
    of one `client_transfer_id` is its state): who asked (the run), what moved where, and
    the venue's id and reason as reported."""

    run_id: str
    client_transfer_id: str
    transfer_kind: str  # venues.model.TransferKind
    venue: str
    asset: str
    amount: Decimal
    source: str  # venue/wallet
    destination: str  # venue/wallet
    state: str  # venues.model.TransferState
    requested_ns: int
    updated_ns: int
    venue_transfer_id: str = ""
    reason: str = ""
    ts_ns: int


Record = (
    BasketSubmitted
    | BasketStateChanged
    | BasketResolved
    | BasketReported
    | ChildOrderSent
    | OrderAcked
    | OrderReported
    | FillBooked
    | OrderRejected
    | OrderOutcomeUnknown
    | LegReconciled
    | HedgeOrderSent
    | HedgeOrderReported
    | HedgePosition
    | CollateralReserved
    | CollateralReleased
    | TransferRecorded
)
RECORD_TYPES: tuple[type[Record], ...] = Record.__args__  # type: ignore[attr-defined]
ORDER_KINDS: tuple[type[Record], ...] = (
    ChildOrderSent,
    OrderAcked,
    OrderReported,
    FillBooked,
    OrderRejected,
    OrderOutcomeUnknown,
)


def kind_of(record_type: type[Record]) -> str:
    """The tag a record type is stored under."""
    return record_type.__struct_config__.tag  # type: ignore[return-value]


def desk_stream(desk_id: str) -> str:
    """The stream a hedge desk's records belong to."""
    return f"{DESK_STREAM_PREFIX}{desk_id}"


def stream_of(record: Record) -> str:
    """The stream (a run id, or a desk's stream) `record` belongs to."""
    if isinstance(record, HedgeOrderSent | HedgeOrderReported | HedgePosition):
        return desk_stream(record.desk_id)
    return record.run_id


class Entry(msgspec.Struct, frozen=True):
    """A record as journaled: its sequence number in the store, and the record."""

    seq: int
    record: Record


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


def encode(record: Record) -> str:
    """A record as stored: JSON text with its `kind` tag (decimals as strings)."""
    return _encoder.encode(record).decode()


def decode(body: bytes | str) -> Record:
    """A stored record back (raises `msgspec.ValidationError` naming the bad field)."""
    return _decoder.decode(body)
