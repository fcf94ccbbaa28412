"""A run's child orders read back from its records, through the leg's own ledger.

The journal does not keep a second copy of the rules that turn reports into an order's
state: its records are replayed into a `LegLedger` per leg, exactly as the leg booked them
live (a late, older report never moves an order back; an unknown outcome stays unknown
until a report settles it). Both stores answer `orders(run_id)` with `fold_orders`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from actors.journal.records import (
    ChildOrderSent,
    Entry,
    FillBooked,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Purpose,
)
from actors.leg import ChildOrder, LegLedger


class JournaledOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One child order as the journal knows it: where it went, its latest state (`order`,
    as the leg's ledger books it), and its trades."""

    run_id: str
    leg_id: str
    venue: str
    symbol: str
    sent_seq: int  # the sequence number of its `ChildOrderSent`
    order: ChildOrder
    fills: list[FillBooked] = []


def fold_orders(entries: Iterable[Entry]) -> list[JournaledOrder]:
    """The child orders in `entries` (records of one run, in sequence order), in send order."""
    ledgers: dict[str, LegLedger] = {}
    sent: dict[str, tuple[int, ChildOrderSent]] = {}
    fills: dict[str, list[FillBooked]] = {}
    for entry in entries:
        match entry.record:
            case ChildOrderSent() as r:
                if r.client_order_id in sent:
                    continue  # an id is sent once; a repeated write-ahead adds nothing
                ledger = ledgers.get(r.leg_id)
                if ledger is None:
                    ledger = LegLedger(r.run_id, r.leg_id, r.side, Decimal(0))
                    ledgers[r.leg_id] = ledger
                ledger.sent(r.new_order(), r.n, r.ts_ns, Purpose(r.purpose).value, mid=r.mid)
                sent[r.client_order_id] = (entry.seq, r)
            case OrderAcked() as r if r.leg_id in ledgers:
                ledgers[r.leg_id].acked(r.report, r.ts_ns)
            case OrderReported() as r if r.leg_id in ledgers:
                ledgers[r.leg_id].on_report(r.report, r.ts_ns)
            case OrderRejected() as r if r.client_order_id in sent:
                ledger = ledgers[sent[r.client_order_id][1].leg_id]
                ledger.refused(r.client_order_id, r.reason, r.ts_ns, turned_away=r.turned_away)
            case OrderOutcomeUnknown() as r if r.client_order_id in sent:
                ledgers[sent[r.client_order_id][1].leg_id].unknown(r.client_order_id)
            case FillBooked() as r:
                trades = fills.setdefault(r.client_order_id, [])
                if all(t.trade_id != r.trade_id for t in trades):  # a trade counts once
                    trades.append(r)
            case _:
                pass  # not about a child order, or about one this run never sent
    return [
        JournaledOrder(
            run_id=r.run_id,
            leg_id=r.leg_id,
            venue=r.venue,
            symbol=r.symbol,
            sent_seq=seq,
            order=ledgers[r.leg_id].orders[coid],
            fills=fills.get(coid, []),
        )
        for coid, (seq, r) in sorted(sent.items(), key=lambda item: item[1][0])
    ]
