"""`CollateralActor`: the cluster's one margin book (named, detached, in the `legato` namespace).

Before a basket sends anything it asks here for collateral on every venue it touches; the
actor refreshes those venues' account figures and reserves all or nothing in its
`MarginBook` (DESIGN §4, §5.2). The book's methods are synchronous, so two baskets asking at
once are served one after the other and never promised the same margin twice.

Baskets submitted together ask together: one account read per venue is in flight at a time,
and every reservation that arrives meanwhile waits for that read rather than sending its
own. A venue whose account cannot be read (down, or too busy to answer) is asked again a
few times; if it still does not answer, the basket is refused, saying so, and nothing is
reserved: a promise on a figure nobody could read would be a guess.

A basket asks for its reads early: `refresh` starts them (or joins the ones in flight) while
the basket is still being checked, and answers at once with each read's number. Its
`reserve` then passes those numbers as `fresh`, and a venue whose account was read since
needs no read of its own: the figure is as new as one read when the basket was submitted,
and the reservation no longer waits a venue round trip. Without `fresh`, a reservation
reads every venue (joining a read in flight) as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from actors.margin import LegNeed, MarginBook, MarginBookSnapshot, Refused, Reserved

ACCOUNT_ATTEMPTS = 3  # account reads of a venue before a reservation gives up on it
ACCOUNT_TIMEOUT_S = 12.0  # one read (the venue client's own request timeout is 10 s)
ACCOUNT_RETRY_S = 0.5  # the pause before the second read, doubling after each failure


class CollateralActor:
    """The margin book behind a Ray actor (see the module docstring)."""

    def __init__(self) -> None:
        self.book = MarginBook()
        self._reading: dict[str, asyncio.Future[str | None]] = {}  # venue → the read in flight
        # Reads are numbered per venue as they start; `_read_ok` is the number of the newest
        # read that succeeded (its figures are the book's).
        self._started: dict[str, int] = {}
        self._read_ok: dict[str, int] = {}

    async def refresh(self, venues: Mapping[str, Any]) -> dict[str, int]:
        """Start reading the accounts of `venues` (name → VenueActor), joining any read in
        flight, and answer at once: each venue's read number, for `reserve(fresh=...)`."""
        numbers = {}
        for name in sorted(venues):
            self._start_read(name, venues[name])
            numbers[name] = self._started[name]
        return numbers

    async def reserve(
        self,
        basket_id: str,
        needs: list[LegNeed],
        venues: Mapping[str, Any],
        fresh: Mapping[str, int] | None = None,
    ) -> Reserved | Refused:
        """Refresh the account of every venue in `venues` (name → VenueActor) and reserve
        what `needs` ask, on every venue or on none. `Refused` when the shortfall is real,
        and when a venue's account could not be read (its `unknown_venues`).

        `fresh`: read numbers from `refresh`; a venue whose read of that number (or a
        newer one) succeeded is not read again."""
        fresh = fresh or {}
        # A venue read since the basket asked (`refresh`) needs no read of its own.
        stale = [n for n in sorted(venues) if n not in fresh or self._read_ok.get(n, 0) < fresh[n]]
        failures = await asyncio.gather(*(self._refresh(n, venues[n]) for n in stale))
        unread = {n: why for n, why in zip(stale, failures, strict=True) if why is not None}
        now = time.time_ns()
        if unread:
            what = "; ".join(
                f"venue {n} did not report its account ({why}) in {ACCOUNT_ATTEMPTS} attempts"
                for n, why in sorted(unread.items())
            )
            return Refused(
                basket_id=basket_id,
                shortfalls=[],
                transfers=[],
                missing={},
                unknown_venues=sorted(unread),
                reason=f"basket {basket_id}: collateral not reserved: {what}; nothing was "
                "reserved or sent: submit it again once the venue answers",
                ts_ns=now,
            )
        return self.book.reserve_legs(basket_id, needs, now)

    async def _refresh(self, name: str, venue: Any) -> str | None:
        """The venue's account read into the book: None, or why it could not be read.
        Joins the read already in flight for the venue, if there is one."""
        return await asyncio.shield(self._start_read(name, venue))

    def _start_read(self, name: str, venue: Any) -> asyncio.Future[str | None]:
        """The venue's read in flight, started now if there is none."""
        reading = self._reading.get(name)
        if reading is None:
            number = self._started[name] = self._started.get(name, 0) + 1
            reading = asyncio.ensure_future(self._read(name, venue, number))
            self._reading[name] = reading
            reading.add_done_callback(lambda _: self._reading.pop(name, None))
        return reading

    async def _read(self, name: str, venue: Any, number: int) -> str | None:
        pause = ACCOUNT_RETRY_S
        why = ""
        for attempt in range(ACCOUNT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
            try:
                snapshot = await asyncio.wait_for(_ref(venue.account.remote()), ACCOUNT_TIMEOUT_S)
            except TimeoutError:
                why = f"no answer within {ACCOUNT_TIMEOUT_S:g} s"
            except Exception as e:  # the venue's error (or its actor's death), said plainly
                why = _short(e)
            else:
                self.book.update_from_snapshot(snapshot, time.time_ns())
                self._read_ok[name] = max(self._read_ok.get(name, 0), number)
                return None
        return why

    def release(self, basket_id: str) -> Reserved | None:
        """Give back what the basket holds (harmless if it holds nothing)."""
        return self.book.release(basket_id)

    def snapshot(self) -> MarginBookSnapshot:
        return self.book.snapshot(time.time_ns())


async def _ref(ref: Any) -> Any:
    """An ObjectRef (or any awaitable) as a coroutine, for `asyncio.wait_for`."""
    return await ref


def _short(e: BaseException) -> str:
    """An error in one line, a Ray task error's by its cause."""
    cause = getattr(e, "cause", None)
    e = cause if isinstance(cause, BaseException) else e
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__
