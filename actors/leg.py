"""One leg's child orders and fills, as the leg actor knows them and as its venue confirms them.

`LegLedger` is the leg actor's pure record (DESIGN §3): every child order sent, every
answer and stream report about it (cumulative fields, so the newest report of an order
replaces the older ones whatever the order they arrive in), and the leg's totals: filled
quantity, average price, fees, open quantity, rejects. `reconcile` compares that record
with what the venue answers to a query of every client order id (DESIGN §5.7).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec

from actors.fees import ChargedFee, FeeTotals
from actors.fees import total as fee_total
from actors.messages import LegProgress, LegStatus
from venues.model import (
    AckKind,
    ExecutionReport,
    NewOrder,
    OrderStatus,
    RejectReason,
    Side,
    TimeInForce,
)

_ZERO = Decimal(0)
MAX_CONSECUTIVE_REJECTS = 5  # after this many refusals in a row a leg gives up (FAILED)
POST_ONLY_REFUSAL = RejectReason.POST_ONLY_WOULD_CROSS.value  # how such a refusal starts
_UNEXPLAINED = f"{OrderStatus.REJECTED.value}: "  # a refusal the venue gave no reason for

# How far along an order is: a report never moves an order back down this scale.
_RANK = {
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.NEW: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELED: 3,
    OrderStatus.REJECTED: 3,
    OrderStatus.EXPIRED: 3,
}


class ChildOrder(msgspec.Struct, kw_only=True):
    """One child order: what was sent, when, and the newest state the venue gave for it.

    Times: `sent_ns` and `ack_ns` on the leg's clock; `venue_receive_ns` and
    `venue_accept_ns` on the venue's clock, as the venue stamped them.
    """

    client_order_id: str
    n: int
    side: Side
    quantity: Decimal
    price: Decimal | None
    purpose: str  # "slice" or "unwind"
    sent_ns: int
    ack_ns: int | None = None
    ack_kind: AckKind | None = None
    venue_receive_ns: int | None = None
    venue_accept_ns: int | None = None
    status: OrderStatus = OrderStatus.PENDING_NEW
    filled_qty: Decimal = _ZERO
    avg_price: Decimal | None = None
    fee: Decimal = _ZERO
    fee_asset: str = ""  # what `fee` is counted in ("": the instrument's quote asset)
    reject: str | None = None  # "REASON: message" when the venue refused it
    turned_away: bool = False  # refused at the door (venue down, rate limit): not a reject
    unknown: bool = False  # the outcome is not known yet (query it; never resend)
    mid: Decimal | None = None  # the venue's mid when the order was sent (spread paid)
    # (venue time of a fill, cumulative quantity after it), as the fills were reported: a
    # resting order fills long after its accept time, and the exposure dates from its fills.
    fill_marks: list[tuple[int, Decimal]] = []
    post_only: bool = False  # a `passive` quote (TimeInForce.POST_ONLY)

    @property
    def open_qty(self) -> Decimal:
        if self.status.is_terminal:
            return _ZERO
        return self.quantity - self.filled_qty

    @property
    def notional(self) -> Decimal:
        return self.filled_qty * self.avg_price if self.avg_price is not None else _ZERO


def requoted(child: ChildOrder) -> bool:
    """A post-only quote the venue refused because it would have crossed the book: the
    leg prices a new one (`passive`), it is no refusal of the leg's orders. A venue that
    answers on receipt and refuses later on its stream may not say why (Binance's
    ORDER_TRADE_UPDATE has no field for it); such a quote, unfilled, is taken for one that
    would have crossed, the likeliest reason by far, and `LegLedger.give_up_reason` bounds
    how many in a row it believes that of."""
    if child.reject is None:
        return False
    if child.reject.startswith(POST_ONLY_REFUSAL):
        return True
    return _unexplained_quote_refusal(child)


def _unexplained_quote_refusal(child: ChildOrder) -> bool:
    return (
        child.post_only
        and child.ack_kind is AckKind.RECEIPT
        and child.filled_qty == 0
        and child.reject is not None
        and child.reject.startswith(_UNEXPLAINED)
    )


class Mismatch(msgspec.Struct, frozen=True, kw_only=True):
    """An order on which the leg's record and the venue disagree."""

    client_order_id: str
    field: str
    ours: str
    venue: str


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    """The result of checking every child order with the venue."""

    leg_id: str
    reconciled: bool
    orders_checked: int
    venue_filled_qty: Decimal  # slices minus unwinds, signed along the leg's side
    ledger_filled_qty: Decimal
    mismatches: list[Mismatch] = []
    still_open: list[str] = []  # orders the venue still works (the leg is not finished)
    missing: list[str] = []  # ids the venue does not know: never reached it
    ts_ns: int = 0
    error: str = ""  # why the venue could not be asked (then nothing above is the venue's)


class LegLedger:
    """Child orders of one leg and what they add up to."""

    def __init__(self, basket_id: str, leg_id: str, side: Side, target_qty: Decimal) -> None:
        self.basket_id = basket_id
        self.leg_id = leg_id
        self.side = side
        self.target_qty = target_qty
        self.orders: dict[str, ChildOrder] = {}
        self.seq = 0
        self.last_fill_seen_ns: int | None = None  # when a fill last became known (leg clock)
        self._newest_slice: ChildOrder | None = None
        self._first: ChildOrder | None = None  # `first`, kept as orders are recorded
        # The totals below, until an order changes: a leg asks for them on every step and
        # snapshot, and adding up every child order each time was a tenth of a backtest.
        # Every change to an order goes through a method here, which empties it first.
        self._totals: dict[str, Decimal | None] = {}
        # `passive`: how long its quotes have rested (leg clock), the quotes that ended
        # added up and the working ones by when they were first known to work.
        self._rested_ns = 0
        self._resting_since: dict[str, int] = {}
        self.maker_fills = 0  # fills of its quotes, as reported (one report: one fill)

    # -- recording ---------------------------------------------------------------------------
    def sent(
        self,
        order: NewOrder,
        n: int,
        now_ns: int,
        purpose: str = "slice",
        mid: Decimal | None = None,
    ) -> ChildOrder:
        """Record `order` as sent at `now_ns` (before the request goes out), with the mid
        the leg saw then."""
        self._totals.clear()
        if order.client_order_id in self.orders:
            raise ValueError(
                f"client order id {order.client_order_id} was already sent; an id is never reused"
            )
        child = ChildOrder(
            client_order_id=order.client_order_id,
            n=n,
            side=order.side,
            quantity=order.quantity,
            price=order.price,
            purpose=purpose,
            sent_ns=now_ns,
            mid=mid,
            post_only=order.time_in_force is TimeInForce.POST_ONLY,
        )
        self.orders[order.client_order_id] = child
        if purpose == "slice" and (self._first is None or n < self._first.n):
            self._first = child
        if purpose == "slice" and (self._newest_slice is None or n > self._newest_slice.n):
            self._newest_slice = child
        return child

    def acked(self, report: ExecutionReport, now_ns: int) -> bool:
        """The venue's answer to the placement (its ack); True if anything changed."""
        self._totals.clear()
        child = self.orders.get(report.client_order_id)
        if child is None:
            return False
        if report.ack_kind is AckKind.UNKNOWN:
            # No answer is not an acknowledgement: the order may never have reached the venue.
            child.unknown = True
            return False
        if child.ack_ns is None:
            child.ack_ns = now_ns
            child.ack_kind = report.ack_kind
        return self.on_report(report, now_ns)

    def on_report(self, report: ExecutionReport, now_ns: int) -> bool:
        """Take a report (ack, stream or query) about one of our orders; True if it changed
        the order. Reports of other orders are ignored (returns False)."""
        self._totals.clear()
        child = self.orders.get(report.client_order_id)
        if child is None:
            return False
        if report.ack_kind is AckKind.UNKNOWN:
            child.unknown = True
            return False
        before = (child.status, child.filled_qty, child.fee)
        if report.venue_receive_ns is not None:
            child.venue_receive_ns = child.venue_receive_ns or report.venue_receive_ns
        if report.venue_accept_ns is not None:
            child.venue_accept_ns = child.venue_accept_ns or report.venue_accept_ns
        newer_fill = report.cum_filled > child.filled_qty
        if newer_fill:
            child.filled_qty = report.cum_filled
            child.avg_price = report.avg_price
            self.last_fill_seen_ns = now_ns
            at = report.last_fill.ts_ns if report.last_fill is not None else report.venue_ts_ns
            if at:
                child.fill_marks.append((at, report.cum_filled))
            if child.post_only:
                self.maker_fills += 1
        child.fee = max(child.fee, report.cum_fee)
        fill = report.last_fill
        child.fee_asset = report.fee_asset or (fill.fee_asset if fill else "") or child.fee_asset
        if _RANK[report.status] > _RANK[child.status] or (
            newer_fill and not child.status.is_terminal
        ):
            child.status = report.status
        if report.status is OrderStatus.REJECTED and child.reject is None:
            reason = report.reject_reason.value if report.reject_reason else "REJECTED"
            child.reject = f"{reason}: {report.reject_message or 'refused by the venue'}"
        child.unknown = False
        if child.post_only:
            self._rests(child, now_ns)
        return (child.status, child.filled_qty, child.fee) != before

    def _rests(self, quote: ChildOrder, now_ns: int) -> None:
        """A quote rests from the first report of it working to the first that ends it."""
        since = self._resting_since.get(quote.client_order_id)
        if not quote.status.is_terminal:
            if since is None:
                self._resting_since[quote.client_order_id] = now_ns
        elif since is not None:
            self._rested_ns += max(now_ns - since, 0)
            del self._resting_since[quote.client_order_id]

    def refused(
        self, client_order_id: str, reason: str, now_ns: int, *, turned_away: bool = False
    ) -> None:
        """The placement failed with an error: the order never worked. `turned_away`: the
        venue was down or rate-limited us, which says nothing about the order itself."""
        self._totals.clear()
        child = self.orders[client_order_id]
        child.ack_ns = child.ack_ns or now_ns
        child.status = OrderStatus.REJECTED
        child.reject = reason
        child.turned_away = turned_away
        child.unknown = False
        if child.post_only:
            self._rests(child, now_ns)

    def unknown(self, client_order_id: str) -> None:
        """The placement's outcome could not be learned: it may or may not be working."""
        self._totals.clear()
        self.orders[client_order_id].unknown = True

    # -- totals ------------------------------------------------------------------------------
    def _signed(self, child: ChildOrder) -> Decimal:
        return child.filled_qty if child.side is self.side else -child.filled_qty

    @property
    def filled_qty(self) -> Decimal:
        """Net filled along the leg's side: slices minus what an unwind sold back."""
        got = self._totals.get("filled")
        if got is None:
            got = self._totals["filled"] = sum(
                (self._signed(c) for c in self.orders.values()), _ZERO
            )
        return got

    @property
    def slice_filled_qty(self) -> Decimal:
        """Filled by the leg's own slices (before any unwind)."""
        return sum(
            (c.filled_qty for c in self.orders.values() if c.purpose == "slice"),
            _ZERO,
        )

    def quoted_ns(self, now_ns: int) -> int:
        """How long the leg's quotes have rested on the book, up to `now_ns` (leg clock):
        from the first report of each working to the first that ended it."""
        return self._rested_ns + sum(max(now_ns - t, 0) for t in self._resting_since.values())

    @property
    def avg_price(self) -> Decimal | None:
        """Volume-weighted price of the slices' fills."""
        totals = self._totals
        if "avg_price" not in totals:
            totals["avg_price"] = self._avg_price()
        return totals["avg_price"]

    def _avg_price(self) -> Decimal | None:
        slices = [c for c in self.orders.values() if c.purpose == "slice" and c.filled_qty > 0]
        qty = sum((c.filled_qty for c in slices), _ZERO)
        if qty <= 0:
            return None
        return sum((c.notional for c in slices), _ZERO) / qty

    @property
    def open_qty(self) -> Decimal:
        """Quantity still working or in flight (an order of unknown outcome counts whole)."""
        got = self._totals.get("open")
        if got is None:
            got = self._totals["open"] = sum(
                (
                    c.quantity - c.filled_qty if c.unknown else c.open_qty
                    for c in self.orders.values()
                ),
                _ZERO,
            )
        return got

    @property
    def missed_qty(self) -> Decimal:
        """What the newest slice left unfilled when the venue ended it at the book (an IOC
        that expired, or a cancel). Zero while it works or is unknown, when it filled, and
        when it was refused (`REJECTED`): that order never reached the book, and sending it
        again would only repeat the refusal."""
        newest = self._newest_slice
        if newest is None or newest.status not in (OrderStatus.EXPIRED, OrderStatus.CANCELED):
            return _ZERO
        return newest.quantity - newest.filled_qty

    @property
    def quote_refused(self) -> bool:
        """The newest slice was a post-only quote the venue refused as crossing (`passive`
        prices the next one on a newer book)."""
        newest = self._newest_slice
        return newest is not None and requoted(newest)

    @property
    def fees(self) -> Decimal:
        """The fees' amounts added up, whatever their assets (see `fee_totals`)."""
        return sum((c.fee for c in self.orders.values()), _ZERO)

    def fee_totals(
        self, base: str, quote: str, prices: Mapping[str, Decimal] | None = None
    ) -> FeeTotals:
        """The fees in USD, and those in assets with no price (`actors.fees`)."""
        charged = (ChargedFee(c.fee, c.fee_asset, c.avg_price) for c in self.orders.values())
        return fee_total(charged, base, quote, prices)

    def fee_qty(self, base: str) -> Decimal:
        """Fees the venue took in the leg's own (base) asset, along the leg's side: what the
        leg holds is `filled_qty` minus this (a spot buy whose fee is in the bought asset)."""
        taken = sum((c.fee for c in self.orders.values() if c.fee_asset == base), _ZERO)
        return taken if self.side is Side.BUY else -taken

    @property
    def rejects(self) -> list[str]:
        return [f"{c.client_order_id} {c.reject}" for c in self.orders.values() if c.reject]

    def give_up_reason(self) -> str | None:
        """Why the leg must stop sending, from its refusals: its first order refused, or the
        last `MAX_CONSECUTIVE_REJECTS` in a row (refusals that arrive on the stream, after
        later orders went out, count too). None while the leg may go on. Orders a venue
        turned away while down or rate-limiting are no refusals of the leg's orders: an
        outage blocks the leg, and the basket's grace and deadline decide about it."""
        first = self.first
        if first is not None and first.reject is not None and not requoted(first):
            return f"first order {first.client_order_id} rejected: {first.reject}"
        slices = sorted(self.orders.values(), key=lambda c: c.n)[-MAX_CONSECUTIVE_REJECTS:]
        if len(slices) == MAX_CONSECUTIVE_REJECTS and all(
            _unexplained_quote_refusal(c) for c in slices
        ):
            return (
                f"{MAX_CONSECUTIVE_REJECTS} quotes in a row refused with no reason given: "
                f"{slices[-1].reject}"
            )
        # A post-only quote refused because it would cross is re-quoted: no fault of the leg.
        judged = [c for c in self.orders.values() if not c.turned_away and not requoted(c)]
        latest = sorted(judged, key=lambda c: c.n)[-MAX_CONSECUTIVE_REJECTS:]
        if len(latest) == MAX_CONSECUTIVE_REJECTS and all(c.reject is not None for c in latest):
            return f"{MAX_CONSECUTIVE_REJECTS} orders in a row rejected: {latest[-1].reject}"
        return None

    @property
    def first(self) -> ChildOrder | None:
        """The first slice sent (the launch order): the lowest `n` of the slices, the one
        recorded first among equals (kept by `sent`: every send and snapshot asks)."""
        return self._first

    def progress(
        self,
        status: LegStatus,
        now_ns: int,
        mark: Decimal | None,
        *,
        blocked: bool = False,
        reason: str = "",
        base: str = "",
    ) -> LegProgress:
        """The next monotonic snapshot of this leg (sequence number advanced)."""
        self.seq += 1
        first = self.first
        return LegProgress(
            basket_id=self.basket_id,
            leg_id=self.leg_id,
            seq=self.seq,
            side=self.side,
            target_qty=self.target_qty,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            open_qty=self.open_qty,
            status=status,
            ts_ns=now_ns,
            mark_price=mark,
            fill_seen_ns=self.last_fill_seen_ns,
            first_ack=first is not None and first.ack_ns is not None,
            blocked=blocked,
            reason=reason,
            fee_qty=self.fee_qty(base) if base else _ZERO,
            maker_fills=self.maker_fills,
            quoted_ns=self.quoted_ns(now_ns),
        )

    # -- reconciliation ----------------------------------------------------------------------
    def reconcile(
        self, venue: Mapping[str, ExecutionReport | None], now_ns: int, *, adopt: bool = True
    ) -> Reconciliation:
        """Compare every child order with the venue's answer to its query (None: the venue
        does not know the id). Reconciled when every order is terminal at the venue and
        agrees with the record on status and filled quantity; the venue's figures then
        replace the record's (the venue is the source of truth). With `adopt=False` the record
        is left as it is, so that a later look can still tell a real disagreement from a
        report that was on its way."""
        self._totals.clear()
        mismatches: list[Mismatch] = []
        still_open: list[str] = []
        missing: list[str] = []
        venue_filled = _ZERO
        for coid, child in self.orders.items():
            answer = venue.get(coid)
            if answer is None:
                if child.filled_qty > 0 or (
                    not child.status.is_terminal and child.status is not OrderStatus.PENDING_NEW
                ):
                    mismatches.append(
                        Mismatch(
                            client_order_id=coid,
                            field="exists",
                            ours=f"{child.status.value} filled {child.filled_qty}",
                            venue="unknown order",
                        )
                    )
                missing.append(coid)
                if not child.status.is_terminal:
                    child.status = OrderStatus.REJECTED
                    child.reject = child.reject or "UNKNOWN_ORDER: never reached the venue"
                child.unknown = False
                continue
            if not answer.status.is_terminal:
                still_open.append(coid)
            if answer.cum_filled != child.filled_qty:
                mismatches.append(
                    Mismatch(
                        client_order_id=coid,
                        field="filled_qty",
                        ours=str(child.filled_qty),
                        venue=str(answer.cum_filled),
                    )
                )
            elif answer.status.is_terminal and answer.status != child.status:
                mismatches.append(
                    Mismatch(
                        client_order_id=coid,
                        field="status",
                        ours=child.status.value,
                        venue=answer.status.value,
                    )
                )
            signed = answer.cum_filled if child.side is self.side else -answer.cum_filled
            venue_filled += signed
        ledger_filled = self.filled_qty
        if not adopt:  # a first look: the record may still catch up on its own (stream lag)
            venue = {}
        # The venue is the source of truth: take its figures for every order it knows.
        for coid, answer in venue.items():
            if answer is not None and coid in self.orders:
                self.on_report(answer, now_ns)
                child = self.orders[coid]
                child.filled_qty = answer.cum_filled
                child.avg_price = answer.avg_price
                child.status = answer.status
        self._totals.clear()
        return Reconciliation(
            leg_id=self.leg_id,
            reconciled=not mismatches and not still_open,
            orders_checked=len(self.orders),
            venue_filled_qty=venue_filled,
            ledger_filled_qty=ledger_filled,
            mismatches=mismatches,
            still_open=still_open,
            missing=missing,
            ts_ns=now_ns,
        )
