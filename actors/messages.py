"""Snapshots that travel between actors: monotonic, cumulative, safe to lose or repeat.

Each carries a sequence number and cumulative fields (DESIGN §4): a receiver keeps the
snapshot with the highest `seq` per sender and ignores the rest, so a lost, duplicated or
reordered delivery is harmless.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import TypeVar

import msgspec

from venues.model import Side


class LegStatus(enum.StrEnum):
    IDLE = "IDLE"  # created, not armed
    ARMED = "ARMED"  # first child order prepared, waiting for fire_at
    WORKING = "WORKING"  # sending child orders
    PAUSED = "PAUSED"  # held back by the synchronizer
    DONE = "DONE"  # target reached (or cut) and no order open
    RECONCILED = "RECONCILED"  # venue confirmed every child order and the position
    FAILED = "FAILED"


class LegProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A leg's cumulative state, sent by its leg actor whenever it changes."""

    basket_id: str
    leg_id: str
    seq: int
    side: Side
    target_qty: Decimal  # may shrink when the synchronizer cuts the leaders
    filled_qty: Decimal
    avg_price: Decimal | None
    open_qty: Decimal  # quantity in child orders resting or in flight
    status: LegStatus
    ts_ns: int  # when the leg took the snapshot, on the leg's clock
    mark_price: Decimal | None = None  # the leg's latest mid, to value its imbalance
    fill_seen_ns: int | None = None  # when the leg last learned of a fill (leg clock)
    first_ack: bool = False  # the leg's first child order has been acknowledged
    blocked: bool = False  # the leg wants to trade and cannot (slippage cap, no book, venue)
    reason: str = ""  # why the leg is blocked or failed
    # Fees taken in the leg's own asset, along its side (a spot buy's commission in the bought
    # asset): the leg holds `filled_qty - fee_qty` (`held_qty`).
    fee_qty: Decimal = Decimal(0)
    # `passive`: the fills of its post-only quotes, and how long they have rested (ns, leg
    # clock), both cumulative: how often its quotes fill (`actors.basket.resting_steps`).
    maker_fills: int = 0
    quoted_ns: int = 0

    @property
    def held_qty(self) -> Decimal:
        """What the leg's fills left it holding, along its side, after fees in its asset."""
        return self.filled_qty - self.fee_qty

    @property
    def progress(self) -> float:
        """Completion fraction p = filled / target (DESIGN §5.5)."""
        if self.target_qty <= 0:
            return 1.0
        return float(self.filled_qty / self.target_qty)


Snapshot = TypeVar("Snapshot", bound=LegProgress)


def newest(current: Snapshot | None, incoming: Snapshot) -> Snapshot:
    """The snapshot to keep: the one with the higher sequence number."""
    if current is None or incoming.seq > current.seq:
        return incoming
    return current
