"""What a runner tells the journal, and how: the records of a leg's orders (DESIGN §9).

A runner does not write to a database: it hands records to its port's `Journal`, which a
live driver backs with a `JournalWriter` (batched, off the event loop) and the backtest
with `NO_JOURNAL`. Two calls:

- `record(r)`: taken now, written with the next batch. Nothing waits on it: acks, reports
  and fills are recorded on the fill → hedge path without a database round trip.
- `record_durably(r, then)`: `then(None)` once `r` is committed, or `then(error)` when it
  cannot be; the write-ahead of a child order, sent only after `then(None)`.

`LegJournal` turns a leg's events into records, so that `LegRunner` says what happened in
one line each.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from actors.journal.records import (
    ChildOrderSent,
    FillBooked,
    LegReconciled,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Purpose,
    Record,
    ReportSource,
)
from actors.leg import Reconciliation
from venues.model import ExecutionReport, Fill, NewOrder


class Journal(Protocol):
    """Where a runner's records go (see the module docstring)."""

    def record(self, record: Record) -> None: ...

    def record_durably(self, record: Record, then: Callable[[Exception | None], None]) -> None:
        """Commit `record`; `then` runs later, on the driver's loop (or at once when there is
        nothing to commit to)."""
        ...


class _NoJournal:
    """No journal (the backtest; a live basket run without one): nothing is kept, and a
    write-ahead is at once as good as done."""

    def record(self, record: Record) -> None:
        return None

    def record_durably(self, record: Record, then: Callable[[Exception | None], None]) -> None:
        then(None)


NO_JOURNAL: Journal = _NoJournal()


class LegJournal:
    """One leg's records, in the words of the leg runner."""

    def __init__(self, journal: Journal, run_id: str, leg_id: str, venue: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self.leg_id = leg_id
        self.venue = venue
        self.on = bool(run_id)  # a run without an identity (the backtest) keeps no record
        self._booked: dict[str, dict[int, Decimal]] = {}  # client order id → trade id → qty

    def sent(
        self,
        order: NewOrder,
        n: int,
        purpose: str,
        mid: Decimal | None,
        now_ns: int,
        then: Callable[[Exception | None], None] | None,
    ) -> None:
        """`order` is about to leave. With `then`, it leaves once the record is committed
        (the write-ahead); without, the record goes with the next batch."""
        if not self.on:
            if then is not None:
                then(None)
            return
        record = ChildOrderSent(
            run_id=self.run_id,
            leg_id=self.leg_id,
            n=n,
            client_order_id=order.client_order_id,
            venue=self.venue,
            symbol=order.symbol,
            side=order.side,
            qty=order.quantity,
            price=order.price,
            type=order.type,
            tif=order.time_in_force,
            reduce_only=order.reduce_only,
            purpose=Purpose(purpose),
            mid=mid,
            ts_ns=now_ns,
        )
        if then is None:
            self.journal.record(record)
        else:
            self.journal.record_durably(record, then)

    def acked(self, report: ExecutionReport, now_ns: int) -> None:
        if self.on:
            self.journal.record(
                OrderAcked(run_id=self.run_id, leg_id=self.leg_id, report=report, ts_ns=now_ns)
            )
            self._fill(report, now_ns)

    def reported(self, report: ExecutionReport, source: ReportSource, now_ns: int) -> None:
        if self.on:
            self.journal.record(
                OrderReported(
                    run_id=self.run_id,
                    leg_id=self.leg_id,
                    report=report,
                    source=source,
                    ts_ns=now_ns,
                )
            )
            self._fill(report, now_ns)

    def booked_qty(self, coid: str) -> Decimal:
        """What the trades journaled for an order add up to."""
        return sum(self._booked.get(coid, {}).values(), Decimal(0))

    def trades(self, report: ExecutionReport, fills: list[Fill], now_ns: int) -> None:
        """The order's trades as the venue lists them: those not yet journaled are."""
        for fill in fills:
            self._book(report, fill, now_ns)

    def _fill(self, report: ExecutionReport, now_ns: int) -> None:
        if report.last_fill is not None:
            self._book(report, report.last_fill, now_ns)

    def _book(self, report: ExecutionReport, fill: Fill, now_ns: int) -> None:
        trades = self._booked.setdefault(report.client_order_id, {})
        if fill.trade_id in trades:
            return  # the ack and the stream both carry it: one record
        trades[fill.trade_id] = fill.quantity
        self.journal.record(
            FillBooked(
                run_id=self.run_id,
                leg_id=self.leg_id,
                client_order_id=report.client_order_id,
                venue=self.venue,
                symbol=report.symbol,
                trade_id=fill.trade_id,
                qty=fill.quantity,
                price=fill.price,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                liquidity=fill.liquidity,
                venue_ts_ns=fill.ts_ns,
                ts_ns=now_ns,
            )
        )

    def refused(self, coid: str, reason: str, now_ns: int, *, turned_away: bool = False) -> None:
        if self.on:
            self.journal.record(
                OrderRejected(
                    run_id=self.run_id,
                    leg_id=self.leg_id,
                    client_order_id=coid,
                    reason=reason,
                    turned_away=turned_away,
                    ts_ns=now_ns,
                )
            )

    def unknown(self, coid: str, reason: str, now_ns: int) -> None:
        if self.on:
            self.journal.record(
                OrderOutcomeUnknown(
                    run_id=self.run_id,
                    leg_id=self.leg_id,
                    client_order_id=coid,
                    reason=reason,
                    ts_ns=now_ns,
                )
            )

    def reconciled(self, r: Reconciliation) -> None:
        if self.on:
            self.journal.record(
                LegReconciled(
                    run_id=self.run_id,
                    leg_id=self.leg_id,
                    reconciled=r.reconciled,
                    orders_checked=r.orders_checked,
                    venue_filled_qty=r.venue_filled_qty,
                    ledger_filled_qty=r.ledger_filled_qty,
                    mismatches=[
                        f"{m.client_order_id}: {m.field} ours={m.ours} venue={m.venue}"
                        for m in r.mismatches
                    ],
                    still_open=list(r.still_open),
                    missing=list(r.missing),
                    error=r.error,
                    ts_ns=r.ts_ns,
                )
            )
