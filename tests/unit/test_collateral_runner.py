"""The collateral runner on a fake clock and scripted account reads: one read per venue
shared, `fresh` reads, retries with doubling pauses, its own timeout, refusals that name the
venue, and margin never promised twice."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from actors.margin import CollateralError, Refused, Reserved
from actors.runners.collateral import (
    ACCOUNT_ATTEMPTS,
    ACCOUNT_RETRY_S,
    ACCOUNT_TIMEOUT_S,
    AccountAnswer,
    CollateralRunner,
    margin_needs,
)
from tests.unit.fake_port import FakeClock, FakeTimer
from tests.unit.test_basket_core import BASKET
from tests.unit.test_collateral_actor import need, snapshot
from venues.errors import VenueUnavailable
from venues.model import Side

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
TIMEOUT = round(ACCOUNT_TIMEOUT_S * SECOND)
RETRY = round(ACCOUNT_RETRY_S * SECOND)


class Answer(msgspec.Struct, frozen=True):
    """A read answered after `after_ms` with the account holding `usdt`."""

    after_ms: int = 10
    usdt: int = 1_000_000


class Fail(msgspec.Struct, frozen=True):
    """A read that fails after `after_ms`, as a venue that is down says so."""

    after_ms: int = 10


NEVER = None  # a read nobody ever answers

Step = Answer | Fail | None


class Venues:
    """The runner's port: the fake clock, and account reads scripted per venue. Each read
    takes the next step of its venue's script, the last step repeating; `asked` keeps when
    each read was sent, by venue."""

    def __init__(self, clock: FakeClock, **scripts: list[Step]) -> None:
        self.clock = clock
        self.scripts = scripts
        self.asked: dict[str, list[int]] = {name: [] for name in scripts}

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        return self.clock.call_at(t_ns, fn, precise=precise)

    def read_account(self, venue_name: str, then: Callable[[AccountAnswer], None]) -> None:
        asked = self.asked[venue_name]
        script = self.scripts[venue_name]
        step = script[min(len(asked), len(script) - 1)]
        asked.append(self.clock.now_ns())
        if step is None:
            return
        answer: AccountAnswer = (
            snapshot(venue_name, step.usdt)
            if isinstance(step, Answer)
            else VenueUnavailable("service unavailable", venue=venue_name, code=503)
        )
        self.clock.call_at(self.clock.now_ns() + step.after_ms * MS, lambda: then(answer))


class Collateral:
    """A runner on the fake port; each reservation's outcome is kept with when it came."""

    def __init__(self, **scripts: list[Step]) -> None:
        self.clock = FakeClock(START)
        self.venues = Venues(self.clock, **scripts)
        self.runner = CollateralRunner(self.venues)
        self.results: dict[str, tuple[int, Reserved | Refused]] = {}

    def reserve(
        self, basket_id: str, venues: list[str], fresh: dict[str, int] | None = None
    ) -> None:
        def then(result: Reserved | Refused) -> None:
            assert basket_id not in self.results, f"{basket_id} answered twice"
            self.results[basket_id] = (self.clock.now_ns(), result)

        self.runner.reserve(basket_id, [need(v) for v in venues], venues, fresh, then)

    def at(self, ms: int) -> None:
        """Run the clock to `ms` after the start."""
        self.clock.run_until(START + ms * MS)

    def settle(self) -> None:
        """Run until nothing is left to happen."""
        self.clock.run_until(lambda: self.clock.pending() == 0)

    def reads(self, venue: str) -> list[int]:
        """When each read of `venue` was sent, in ms after the start."""
        return [(t - START) // MS for t in self.venues.asked[venue]]

    def answered(self, basket_id: str) -> int:
        """When the reservation was answered, in ms after the start."""
        return (self.results[basket_id][0] - START) // MS

    def result(self, basket_id: str) -> Reserved | Refused:
        return self.results[basket_id][1]


def test_two_reservations_at_once_share_one_read_per_venue() -> None:
    c = Collateral(alpha=[Answer(after_ms=20)], beta=[Answer(after_ms=30)])
    c.reserve("b1", ["alpha", "beta"])
    c.reserve("b2", ["alpha", "beta"])
    c.settle()
    assert (c.reads("alpha"), c.reads("beta")) == ([0], [0])
    assert isinstance(c.result("b1"), Reserved) and isinstance(c.result("b2"), Reserved)
    assert c.answered("b1") == c.answered("b2") == 30  # once the slower venue answered


def test_a_reservation_joins_the_read_in_flight() -> None:
    c = Collateral(alpha=[Answer(after_ms=50)])
    assert c.runner.refresh(["alpha"]) == {"alpha": 1}
    c.at(20)
    c.reserve("b", ["alpha"])  # no `fresh`: it reads, by joining the read under way
    assert c.runner.reading == {"alpha": 1}
    c.settle()
    assert c.reads("alpha") == [0]
    assert c.answered("b") == 50
    assert isinstance(c.result("b"), Reserved)
    c.reserve("late", ["alpha"])  # after the read: a read of its own
    c.settle()
    assert c.reads("alpha") == [0, 50]


def test_fresh_skips_a_venue_read_since() -> None:
    c = Collateral(alpha=[Answer()], beta=[Answer()])
    fresh = c.runner.refresh(["alpha", "beta"])
    c.settle()
    c.reserve("b", ["alpha", "beta"], fresh)
    assert c.answered("b") == 10  # at once: no venue round trip
    assert isinstance(c.result("b"), Reserved)
    assert (c.reads("alpha"), c.reads("beta")) == ([0], [0])


def test_fresh_waits_for_the_read_still_in_flight() -> None:
    c = Collateral(alpha=[Answer(after_ms=200)], beta=[Answer()])
    fresh = c.runner.refresh(["alpha", "beta"])
    c.at(50)  # beta was read, alpha's read is still out
    c.reserve("b", ["alpha", "beta"], fresh)
    assert "b" not in c.results
    c.settle()
    assert c.answered("b") == 200
    assert isinstance(c.result("b"), Reserved)
    assert (c.reads("alpha"), c.reads("beta")) == ([0], [0])


def test_fresh_reads_again_after_a_failed_read() -> None:
    c = Collateral(alpha=[Fail()] * ACCOUNT_ATTEMPTS + [Answer()])
    fresh = c.runner.refresh(["alpha"])
    c.settle()  # the early read has given up
    assert len(c.reads("alpha")) == ACCOUNT_ATTEMPTS
    c.reserve("b", ["alpha"], fresh)
    c.settle()
    assert len(c.reads("alpha")) == ACCOUNT_ATTEMPTS + 1
    assert isinstance(c.result("b"), Reserved)


def test_an_older_read_does_not_stand_for_a_newer_one() -> None:
    c = Collateral(alpha=[Answer(after_ms=50)])
    c.reserve("a", ["alpha"])
    c.settle()  # read number 1, done
    fresh = c.runner.refresh(["alpha"])
    assert fresh == {"alpha": 2}
    c.reserve("b", ["alpha"], fresh)
    c.settle()
    assert c.reads("alpha") == [0, 50]
    assert c.answered("b") == 100


def test_a_venue_failing_every_attempt_refuses_the_basket_naming_it() -> None:
    c = Collateral(alpha=[Fail(after_ms=10)], beta=[Answer()])
    c.reserve("b", ["alpha", "beta"])
    c.settle()
    # Each failure comes 10 ms after its read; the pauses after them double: 500 ms, 1 s.
    assert (ACCOUNT_ATTEMPTS, RETRY) == (3, 500 * MS)
    assert c.reads("alpha") == [0, 10 + 500, 10 + 500 + 10 + 1_000]
    refused = c.result("b")
    assert isinstance(refused, Refused)
    assert c.answered("b") == 1530
    assert refused.unknown_venues == ["alpha"]
    assert refused.reason == (
        "basket b: collateral not reserved: venue alpha did not report its account "
        "(VenueUnavailable: [alpha] service unavailable (code 503)) in 3 attempts; nothing was "
        "reserved or sent: submit it again once the venue answers"
    )
    # All or nothing: beta, which answered, holds nothing for the basket either.
    assert c.runner.book.reservation("b") is None
    assert c.runner.book.reserved("beta") == 0


def test_a_read_that_never_answers_times_out_as_a_failed_attempt() -> None:
    c = Collateral(alpha=[NEVER, Answer()])
    c.reserve("b", ["alpha"])
    c.settle()
    # The runner's own timer ended the first try; the second came after the first pause.
    assert c.reads("alpha") == [0, (TIMEOUT + RETRY) // MS]
    assert c.answered("b") == (TIMEOUT + RETRY) // MS + 10
    assert isinstance(c.result("b"), Reserved)


def test_an_answer_after_the_timeout_is_ignored() -> None:
    late = Answer(after_ms=TIMEOUT // MS + 1_000)  # one second too late
    c = Collateral(alpha=[late, Answer(after_ms=1_000)])
    c.reserve("b", ["alpha"])
    c.at(TIMEOUT // MS + 1_000)  # the late answer has come, and counted for nothing
    assert c.reads("alpha") == [0, (TIMEOUT + RETRY) // MS]
    assert "b" not in c.results
    assert c.runner.book.available("alpha") is None
    c.settle()
    assert c.answered("b") == (TIMEOUT + RETRY) // MS + 1_000


def test_a_venue_that_never_answers_refuses_the_basket_saying_so() -> None:
    c = Collateral(alpha=[NEVER])
    c.reserve("b", ["alpha"])
    c.settle()
    refused = c.result("b")
    assert isinstance(refused, Refused)
    assert len(c.reads("alpha")) == ACCOUNT_ATTEMPTS
    assert "venue alpha did not report its account (no answer within 12 s)" in refused.reason


def test_concurrent_baskets_never_get_the_same_margin_twice() -> None:
    # Room for one need (661.65 USD with fee and buffer) and not two.
    c = Collateral(alpha=[Answer(usdt=1_000)])
    for basket_id in ("b1", "b2", "b3"):
        c.reserve(basket_id, ["alpha"])
    c.settle()
    assert c.reads("alpha") == [0]
    outcomes = [c.result(b) for b in ("b1", "b2", "b3")]
    assert [type(r) for r in outcomes] == [Reserved, Refused, Refused]
    assert c.runner.book.reserved("alpha") == D("661.65") <= c.runner.book.available("alpha")
    refused = outcomes[1]
    assert isinstance(refused, Refused)
    assert [s.venue for s in refused.shortfalls] == ["alpha"]


def test_a_malformed_need_raises_at_once_without_reading() -> None:
    c = Collateral(alpha=[Answer()])
    bad = msgspec.structs.replace(need("alpha"), qty=D(-1))
    with pytest.raises(CollateralError, match="qty must be a finite number"):
        c.runner.reserve("b", [bad], ["alpha"], None, lambda _: None)
    assert c.reads("alpha") == []


def test_margin_needs_prices_each_leg_at_its_slippage_cap() -> None:
    eth, btc = BASKET.legs  # long 10 ETH on alpha at 2600, short 0.4 BTC on beta at 60000
    assert (eth.max_slippage_bps, btc.max_slippage_bps) == (25.0, 25.0)
    needs = margin_needs(BASKET, {"alpha": 5, "beta": 10})
    assert [(n.venue, n.instrument, n.side, n.qty, n.leverage) for n in needs] == [
        ("alpha", eth.instrument, Side.BUY, D(10), 5),
        ("beta", btc.instrument, Side.SELL, D("0.4"), 10),
    ]
    # 25 bp above the checked price, a sell as much as a buy: the notional at its largest.
    assert [n.price for n in needs] == [D("2606.5"), D("60150")]
