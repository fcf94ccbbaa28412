"""`CollateralRunner`: the collateral actor's decisions, live and in the backtest alike.

The runner keeps the cluster's `MarginBook` (the core: what each venue has, what each basket
holds) and decides how its figures are kept fresh enough to promise on:

- **one read per venue at a time**: a venue's account reads are numbered as they start, and a
  reservation (or an early `refresh`) that finds a read of the venue in flight joins it
  rather than sending its own; baskets submitted together share one read per venue;
- **which venues a reservation reads**: every venue it touches, except one whose read of the
  number in `fresh` (from the basket's early `refresh`), or a newer one, succeeded: that
  figure is as new as one read when the basket was submitted, and the reservation no longer
  waits a venue round trip. A read of that number still in flight is waited for; one that
  failed stands for nothing, and the reservation reads the venue again. Without `fresh`, a
  reservation reads every venue (joining a read in flight);
- **retries**: a read that fails, or is not answered within `ACCOUNT_TIMEOUT_S` (this
  runner's own timer: an answer after it is ignored), is tried again after `ACCOUNT_RETRY_S`,
  the pause doubling after each failure, `ACCOUNT_ATTEMPTS` tries in all;
- **refusal**: a reservation with a venue whose account could not be read is refused, naming
  the venue and why, and nothing is reserved: a promise on a figure nobody could read would
  be a guess;
- **reserving**: all or nothing, in the book, whose methods are synchronous: two baskets
  answered at the same instant are served one after the other and never promised the same
  margin twice.

Its port (`CollateralPort`) gives the time, timers, and each venue's account read as a
callback. `margin_needs` says what a resolved basket asks of the book.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Protocol

from actors.margin import LegNeed, MarginBook, MarginBookSnapshot, Refused, Reserved
from actors.runners.funding import POLL_NS, Funder, Funding, FundingAsk, FundingPort
from actors.runners.port import Clock
from actors.runners.port import short_error as _short
from actors.spec import ResolvedBasket
from actors.spec.model import OnUnfunded
from venues.model import AccountSnapshot

ACCOUNT_ATTEMPTS = 3  # account reads of a venue before a reservation gives up on it
ACCOUNT_TIMEOUT_S = 12.0  # one read (the venue client's own request timeout is 10 s)
ACCOUNT_RETRY_S = 0.5  # the pause before the second read, doubling after each failure

# A venue's answer to an account read: its snapshot, or the error the read raised.
AccountAnswer = AccountSnapshot | Exception


class CollateralPort(Clock, FundingPort, Protocol):
    """The collateral runner's world: its clock, the venues' accounts and (for routing)
    their wallets' transfers."""

    def read_account(self, venue_name: str, then: Callable[[AccountAnswer], None]) -> None:
        """Ask the venue for its account; `then` gets the snapshot or the error, later (or
        never: the runner times a read out by itself)."""
        ...


def margin_needs(basket: ResolvedBasket, leverage: Mapping[str, int]) -> list[LegNeed]:
    """What each leg of `basket` asks of the margin book, on its venue's `leverage`.

    A leg is priced at the price it was checked at moved up by its slippage cap
    (`max_slippage_bps`), whatever its side: the margin grows with the notional, and a leg
    trading within its cap should not find the venue asking more than was reserved for it.
    Priced at the checked price, every leg that slipped would be short of its margin once
    its orders land; beyond the cap the book's safety buffer covers it.
    """
    needs = []
    for leg in basket.legs:
        if leg.price is None:
            raise ValueError(
                f"basket {basket.basket_id}: leg {leg.leg_id} has no price; margin needs are "
                "priced from the price the leg was checked at"
            )
        slip = Decimal(str(leg.max_slippage_bps)) / Decimal(10_000)
        needs.append(
            LegNeed(
                venue=leg.venue,
                instrument=leg.instrument,
                side=leg.side,
                qty=leg.quantity,
                price=leg.price * (1 + slip),  # the notional, and so the margin, at its largest
                leverage=leverage[leg.venue],
                leg_id=leg.leg_id,
            )
        )
    return needs


class _Read:
    """One venue's account read in flight: its number, its tries so far, and the
    reservations waiting for it (each told None, or why it failed)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.tries = 0
        self.waiting: list[Callable[[str | None], None]] = []


class CollateralRunner:
    """The cluster's margin book and the account reads behind it (see the module
    docstring)."""

    def __init__(
        self,
        port: CollateralPort,
        book: MarginBook | None = None,
        *,
        poll_ns: int = POLL_NS,
    ) -> None:
        """A short basket is refused (with the transfers that would cure it, in words),
        unless it asks for routing (`reserve(funding=...)` with the rules of its
        configuration's `[collateral]`)."""
        self.port = port
        self.book = MarginBook() if book is None else book
        self.funder = Funder(self, poll_ns=poll_ns)
        self._reading: dict[str, _Read] = {}  # venue → the read in flight
        # Reads are numbered per venue as they start; `_read_ok` is the number of the newest
        # read that succeeded (its figures are the book's).
        self._started: dict[str, int] = {}
        self._read_ok: dict[str, int] = {}

    def started(self, venue: str) -> int:
        """The number of the newest account read of `venue` started (0: none yet)."""
        return self._started.get(venue, 0)

    @property
    def reading(self) -> dict[str, int]:
        """The reads in flight: venue → read number."""
        return {name: read.number for name, read in self._reading.items()}

    # -- from the baskets --------------------------------------------------------------------
    def refresh(self, venue_names: Iterable[str]) -> dict[str, int]:
        """Start reading the accounts of `venue_names`, joining any read in flight; each
        venue's read number, for `reserve(fresh=...)`."""
        return {name: self._join(name) for name in sorted(set(venue_names))}

    def reserve(
        self,
        basket_id: str,
        needs: Sequence[LegNeed],
        venue_names: Iterable[str],
        fresh: Mapping[str, int] | None,
        then: Callable[[Reserved | Refused | Funding], None],
        *,
        funding: FundingAsk | None = None,
    ) -> None:
        """Read the account of every venue in `venue_names` (but those `fresh` says were
        read since) and reserve what `needs` ask, on every venue or on none; `then` gets the
        outcome. `Refused` when the shortfall is real, and when a venue's account could not
        be read (its `unknown_venues`). A malformed need raises `CollateralError` at once:
        that is the caller's bug, not a refusal.

        With `funding` (the basket's `on_unfunded` other than `refuse`) and routing on, a
        shortfall is answered `Funding` instead: the transfers that cure it are under way,
        and `funded` tells the outcome (`actors.runners.funding`)."""
        usd = self.book.need(needs)
        holdings = self.book.holdings_need(needs)
        fresh = fresh or {}
        stale = [
            n
            for n in sorted(set(venue_names))
            if n not in fresh or self._read_ok.get(n, 0) < fresh[n]
        ]
        unread: dict[str, str] = {}
        waiting = set(stale)

        def decide() -> None:
            now = self.port.now_ns()
            if unread:
                then(_unread(basket_id, unread, now))
                return
            result = self.book.reserve(basket_id, usd, now, holdings=holdings)
            if (
                isinstance(result, Refused)
                and funding is not None
                and funding.rules is not None
                and funding.mode is not OnUnfunded.REFUSE
                and result.shortfalls
                and not result.unknown_venues
            ):
                self.funder.fund(basket_id, needs, result, funding, then)
                return
            then(result)

        def read(name: str, why: str | None) -> None:
            if why is not None:
                unread[name] = why
            waiting.discard(name)
            if not waiting:
                decide()

        if not stale:
            decide()
            return
        for name in stale:
            self._join(name, partial(read, name))

    def funded(self, basket_id: str, then: Callable[[Reserved | Refused], None]) -> bool:
        """`then` gets the outcome of the basket's funding (`Reserved`: all of it is held
        now; `Refused`: the transfers failed or the deadline passed); False when it has no
        funding under way."""
        return self.funder.funded(basket_id, then)

    def release(self, basket_id: str) -> Reserved | None:
        """Give back what the basket holds (harmless if it holds nothing)."""
        self.funder.release(basket_id)
        return self.book.release(basket_id)

    def snapshot(self) -> MarginBookSnapshot:
        return self.book.snapshot(self.port.now_ns())

    # -- the reads ---------------------------------------------------------------------------
    def join_read(self, name: str, then: Callable[[str | None], None]) -> int:
        """Read the venue's account (joining a read in flight); `then` is told None, or why
        the read failed."""
        return self._join(name, then)

    def _join(self, name: str, waiter: Callable[[str | None], None] | None = None) -> int:
        """The number of the venue's read in flight, started now if there is none; `waiter`
        is told how it ended."""
        read = self._reading.get(name)
        new = read is None
        if read is None:
            number = self._started[name] = self._started.get(name, 0) + 1
            read = self._reading[name] = _Read(number)
        if waiter is not None:
            read.waiting.append(waiter)
        if new:
            self._ask(name, read)
        return read.number

    def _ask(self, name: str, read: _Read) -> None:
        """One try at the venue's account, bounded by this runner's own timer."""
        read.tries += 1
        over = False

        def answered(answer: AccountAnswer | None) -> None:
            nonlocal over
            if over:
                return  # an answer after the timeout: the try is over, its outcome counted
            over = True
            timer.cancel()
            self._tried(name, read, answer)

        timer = self.port.call_at(
            self.port.now_ns() + _ns(ACCOUNT_TIMEOUT_S), lambda: answered(None)
        )
        self.port.read_account(name, answered)

    def _tried(self, name: str, read: _Read, answer: AccountAnswer | None) -> None:
        """A try's outcome (None: no answer in time): the read succeeds, is tried again
        after a pause, or gives up."""
        if answer is None or isinstance(answer, TimeoutError):
            # A TimeoutError the read raised itself is worded as one the runner timed out,
            # as the actor always worded it.
            why = f"no answer within {ACCOUNT_TIMEOUT_S:g} s"
        elif isinstance(answer, Exception):  # the venue's error (or its actor's death)
            why = _short(answer)
        else:
            self.book.update_from_snapshot(answer, self.port.now_ns())
            self._read_ok[name] = max(self._read_ok.get(name, 0), read.number)
            self.funder.read_done(name, read.number)
            self._done(name, read, None)
            return
        if read.tries >= ACCOUNT_ATTEMPTS:
            self._done(name, read, why)
            return
        pause = _ns(ACCOUNT_RETRY_S) * 2 ** (read.tries - 1)
        self.port.call_at(self.port.now_ns() + pause, lambda: self._ask(name, read))

    def _done(self, name: str, read: _Read, why: str | None) -> None:
        del self._reading[name]  # a reservation from now on starts a read of its own
        for waiter in read.waiting:
            waiter(why)
        if self.funder.holds_waiting(name):
            self._join(name)  # a transfer's debit shows only in a read started after it


def _unread(basket_id: str, unread: Mapping[str, str], now_ns: int) -> Refused:
    """The refusal of a basket whose venues in `unread` (→ why) could not be read."""
    what = "; ".join(
        f"venue {n} did not report its account ({why}) in {ACCOUNT_ATTEMPTS} attempts"
        for n, why in sorted(unread.items())
    )
    return Refused(
        basket_id=basket_id,
        unknown_venues=sorted(unread),
        reason=f"basket {basket_id}: collateral not reserved: {what}; nothing was "
        "reserved or sent: submit it again once the venue answers",
        ts_ns=now_ns,
    )


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
