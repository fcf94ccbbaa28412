"""The collateral actor's reservation path, its venues stubbed: one account read per venue
for reservations that arrive together, a venue that fails a read is asked again, and one
that never answers refuses the basket, saying so, with nothing reserved."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from actors.margin import LegNeed, Refused, Reserved
from actors.runners import collateral as rc
from actors.shells import collateral as c
from venues.errors import VenueUnavailable
from venues.model import AccountSnapshot, Balance, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]


def snapshot(venue: str, usdt: int = 1_000_000) -> AccountSnapshot:
    return AccountSnapshot(
        venue=venue,
        account_id="desk",
        balances=[Balance(asset="USDT", wallet=D(usdt), available=D(usdt))],
        positions=[],
        margin_asset="USDT",
        wallet_balance=D(usdt),
        unrealized_pnl=D(0),
        position_initial_margin=D(0),
        open_order_initial_margin=D(0),
        available_margin=D(usdt),
        ts_ns=0,
    )


class Method:
    """`actor.account` as the shell calls it: `.remote()` gives an awaitable."""

    def __init__(self, venue: StubVenue) -> None:
        self.venue = venue

    def remote(self) -> asyncio.Future[AccountSnapshot]:
        return asyncio.ensure_future(self.venue.read())


class StubVenue:
    """A venue actor whose account read fails `failures` times, then answers."""

    def __init__(self, name: str, failures: int = 0, delay_s: float = 0.01) -> None:
        self.name = name
        self.failures = failures
        self.delay_s = delay_s
        self.reads = 0
        self.account = Method(self)

    async def read(self) -> AccountSnapshot:
        self.reads += 1
        await asyncio.sleep(self.delay_s)
        if self.reads <= self.failures:
            raise VenueUnavailable(
                "GET /fapi/v2/account failed after sending (TimeoutError)", venue=self.name
            )
        return snapshot(self.name)


def need(venue: str) -> LegNeed:
    return LegNeed(venue=venue, instrument=ETH, side=Side.BUY, qty=D(1), price=D(3000), leverage=5)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "ACCOUNT_RETRY_S", 0.01)


async def reads_over(actor: c.CollateralActor) -> None:
    """Wait until no account read is in flight."""
    for _ in range(1000):
        if not actor.runner.reading:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"reads still in flight: {actor.runner.reading}")


async def test_reservations_arriving_together_share_one_account_read() -> None:
    actor = c.CollateralActor()
    alpha, beta = StubVenue("alpha", delay_s=0.05), StubVenue("beta", delay_s=0.05)
    venues = {"alpha": alpha, "beta": beta}
    results = await asyncio.gather(
        *(actor.reserve(f"b{i}", [need("alpha"), need("beta")], venues) for i in range(10))
    )
    assert all(isinstance(r, Reserved) for r in results)
    assert (alpha.reads, beta.reads) == (1, 1)
    await actor.reserve("late", [need("alpha")], venues)  # after the read: a fresh one
    assert alpha.reads == 2


async def test_a_venue_that_fails_a_read_is_asked_again() -> None:
    actor = c.CollateralActor()
    venues = {"alpha": StubVenue("alpha", failures=rc.ACCOUNT_ATTEMPTS - 1)}
    result = await actor.reserve("b", [need("alpha")], venues)
    assert isinstance(result, Reserved), result


async def test_a_venue_that_never_answers_refuses_the_basket_saying_so() -> None:
    actor = c.CollateralActor()
    alpha, beta = StubVenue("alpha", failures=99), StubVenue("beta")
    result = await actor.reserve("b", [need("alpha"), need("beta")], {"alpha": alpha, "beta": beta})
    assert isinstance(result, Refused)
    assert result.unknown_venues == ["alpha"]
    assert alpha.reads == rc.ACCOUNT_ATTEMPTS
    assert "venue alpha did not report its account" in result.reason
    assert "VenueUnavailable" in result.reason and "nothing was reserved" in result.reason
    # All or nothing: beta, which answered, holds nothing for the basket either.
    assert actor.book.reservation("b") is None
    assert actor.book.reserved("beta") == 0


async def test_a_basket_that_asked_early_reserves_on_that_read_without_another() -> None:
    actor = c.CollateralActor()
    alpha, beta = StubVenue("alpha"), StubVenue("beta")
    venues = {"alpha": alpha, "beta": beta}
    numbers = await actor.refresh(venues)
    await reads_over(actor)  # read while the basket was checked
    result = await actor.reserve("b", [need("alpha"), need("beta")], venues, numbers)
    assert isinstance(result, Reserved), result
    assert (alpha.reads, beta.reads) == (1, 1)
    # Without the numbers a reservation reads again: the early read was the basket's.
    await actor.reserve("c", [need("alpha")], {"alpha": alpha})
    assert alpha.reads == 2


async def test_a_reservation_waits_for_the_early_read_still_in_flight() -> None:
    actor = c.CollateralActor()
    alpha = StubVenue("alpha", delay_s=0.2)
    numbers = await actor.refresh({"alpha": alpha})
    result = await actor.reserve("b", [need("alpha")], {"alpha": alpha}, numbers)
    assert isinstance(result, Reserved), result
    assert alpha.reads == 1
    # The figure it reserved on is that read's: the book knows the account.
    assert actor.book.available("alpha") == 1_000_000


async def test_an_early_read_that_failed_is_read_again_by_the_reservation() -> None:
    actor = c.CollateralActor()
    alpha = StubVenue("alpha", failures=rc.ACCOUNT_ATTEMPTS)  # the early read's every attempt
    numbers = await actor.refresh({"alpha": alpha})
    await reads_over(actor)  # the early read has given up
    assert alpha.reads == rc.ACCOUNT_ATTEMPTS
    result = await actor.reserve("b", [need("alpha")], {"alpha": alpha}, numbers)
    assert isinstance(result, Reserved), result
    assert alpha.reads == rc.ACCOUNT_ATTEMPTS + 1


async def test_an_older_read_does_not_stand_for_a_newer_one() -> None:
    actor = c.CollateralActor()
    alpha = StubVenue("alpha", delay_s=0.05)
    await actor.reserve("a", [need("alpha")], {"alpha": alpha})  # read number 1, done
    numbers = await actor.refresh({"alpha": alpha})  # read number 2, in flight
    assert numbers == {"alpha": 2}
    await actor.reserve("b", [need("alpha")], {"alpha": alpha}, numbers)
    assert alpha.reads == 2
