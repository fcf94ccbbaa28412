"""`CollateralActor`: the cluster's one margin book (named, detached, in the `legato` namespace).

Before a basket sends anything it asks here for collateral on every venue it touches; the
actor refreshes those venues' account figures and reserves all or nothing in its
`MarginBook` (DESIGN §4, §5.2). The book's methods are synchronous, so two baskets asking at
once are served one after the other and never promised the same margin twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from actors.margin import LegNeed, MarginBook, MarginBookSnapshot, Refused, Reserved


class CollateralActor:
    """The margin book behind a Ray actor (see the module docstring)."""

    def __init__(self) -> None:
        self.book = MarginBook()

    async def reserve(
        self,
        basket_id: str,
        needs: list[LegNeed],
        venues: Mapping[str, Any],
    ) -> Reserved | Refused:
        """Refresh the account of every venue in `venues` (name → VenueActor) and reserve
        what `needs` ask, on every venue or on none."""
        names = sorted(venues)
        snapshots = await asyncio.gather(*(venues[n].account.remote() for n in names))
        now = time.time_ns()
        for snapshot in snapshots:
            self.book.update_from_snapshot(snapshot, now)
        return self.book.reserve_legs(basket_id, needs, now)

    def release(self, basket_id: str) -> Reserved | None:
        """Give back what the basket holds (harmless if it holds nothing)."""
        return self.book.release(basket_id)

    def snapshot(self) -> MarginBookSnapshot:
        return self.book.snapshot(time.time_ns())
