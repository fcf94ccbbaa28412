"""The hedge desk's runner on a fake clock and a scripted hedge venue: the catch-up time it
expects, resting orders and what they leave crossed, and a ledger that stays the venue's."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from actors.hedge import HedgeOrderOpen
from actors.protocol import ExposureReport, HedgeFill, PlaceHedge
from actors.risk import RISK_HORIZON_S, RiskSettings
from actors.runners.hedge import PRIOR_REST_FILL, DeskRunner
from actors.spec import HedgeSpec
from tests.unit.fake_port import FakeClock, FakeTimer
from venues.errors import OutcomeUnknown, VenueUnavailable
from venues.model import (
    ExecutionReport,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
IDX = SYNTHETIC_INSTRUMENTS["IDXUSDT"]
MID = 1_000.0
# A desk that hedges a lasting imbalance and rests its orders 5 s first where time allows.
SPEC = HedgeSpec(
    venue="alpha",
    instruments=["IDXUSDT"],
    activation_usd=0.0,
    hysteresis_usd=0.0,
    min_hold_s=0.0,
    rest_s=5.0,
)


class Rest(msgspec.Struct, frozen=True):
    """A resting order that fills `share` of its quantity at its price and is cancelled at
    the end of its rest (`error`: the cancel's answer never comes; the desk hears this;
    `still_open`: it could not be cancelled at all, `HedgeOrderOpen`)."""

    share: float = 0.0
    error: bool = False
    still_open: bool = False


class Venue:
    """The desk's port: the fake clock and a hedge venue one `trip_ns` away each way. A
    crossing order fills in full at the mid ± half a tick; a resting one as its `Rest` of
    `rests` says (in turn, the last repeating). The venue's positions are the truth;
    `readable`: whether positions can be read back."""

    def __init__(self, clock: FakeClock, rests: list[Rest] | None = None) -> None:
        self.clock = clock
        self.rests = rests or [Rest()]
        self.sent: list[tuple[int, PlaceHedge]] = []
        self.held = D(0)
        self.readable = True
        self.trip_ns = 10 * MS

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        return self.clock.call_at(t_ns, fn, precise=precise)

    def hedge(self, cmd: PlaceHedge, then: Callable[[HedgeFill | Exception | None], None]) -> None:
        sent = self.clock.now_ns()
        resting = sum(1 for _, c in self.sent if c.rest_ns > 0)
        self.sent.append((sent, cmd))
        assert cmd.qty is not None
        if cmd.rest_ns > 0:
            rest = self.rests[min(resting, len(self.rests) - 1)]
            filled = IDX.snap_qty(cmd.qty * D(repr(rest.share)))
            price = D(repr(MID)) + (IDX.tick / 2 if cmd.side is Side.SELL else -IDX.tick / 2)
            status = OrderStatus.CANCELED if filled < cmd.qty else OrderStatus.FILLED
            tif, done_ns = TimeInForce.POST_ONLY, sent + cmd.rest_ns
        else:
            filled, status = cmd.qty, OrderStatus.FILLED
            price = D(repr(MID)) + (IDX.tick / 2 if cmd.side is Side.BUY else -IDX.tick / 2)
            tif, done_ns = TimeInForce.IOC, sent + self.trip_ns

        def done() -> None:
            self.held += cmd.side.sign * filled
            if cmd.rest_ns > 0 and rest.still_open:
                then(HedgeOrderOpen(cmd.client_order_id, cmd.symbol, 30.0))
                return
            if cmd.rest_ns > 0 and rest.error:
                then(OutcomeUnknown("the cancel went unanswered", venue="alpha"))
                return
            report = ExecutionReport(
                venue="alpha",
                symbol=cmd.symbol,
                client_order_id=cmd.client_order_id,
                order_id="1",
                side=cmd.side,
                order_type=OrderType.LIMIT,
                time_in_force=tif,
                status=status,
                quantity=cmd.qty,  # type: ignore[arg-type]
                price=price,
                cum_filled=filled,
                avg_price=price if filled > 0 else None,
                cum_fee=D(0),
            )
            then(HedgeFill(report=report, sent_ns=sent, mid=MID))

        self.clock.call_at(done_ns + self.trip_ns, done)

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        answer: dict[str, Decimal] | Exception = (
            {"IDXUSDT": self.held}
            if self.readable
            else VenueUnavailable("service unavailable", venue="alpha", code=503)
        )
        self.clock.call_at(self.clock.now_ns() + 2 * self.trip_ns, lambda: then(answer))


def desk(rests: list[Rest] | None = None) -> tuple[FakeClock, Venue, DeskRunner]:
    clock = FakeClock(START)
    venue = Venue(clock, rests)
    runner = DeskRunner(venue, [IDX], "t", RiskSettings())
    runner.mark({"IDXUSDT": MID})
    return clock, venue, runner


def report(
    runner: DeskRunner,
    seq: int,
    btc_usd: float,
    catchup_s: float | None = 3_600.0,
    spec: HedgeSpec = SPEC,
) -> None:
    runner.on_exposure(
        ExposureReport(
            basket_id="b",
            seq=seq,
            hedge=spec,
            venue_epoch="",
            exposure={"BTC": btc_usd},
            cause_ns=None,
            ts_ns=runner.port.now_ns(),
            catchup_s=catchup_s,
        )
    )


def at(seconds: float) -> int:
    return START + round(seconds * SECOND)


def test_the_catch_up_time_is_how_long_the_imbalance_has_been_its_size() -> None:
    clock, _, runner = desk()
    priceless = msgspec.structs.replace(SPEC, risk_price=1e-9)  # it never trades here
    report(runner, 1, 10_000.0, catchup_s=300.0, spec=priceless)
    clock.run_until(at(10))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(10.0)
    # Smaller, it is the same imbalance catching up; its age goes on.
    report(runner, 2, 8_000.0, catchup_s=300.0, spec=priceless)
    clock.run_until(at(20))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(20.0)
    # Twice the size (four times the variance): a new one, however long the basket says.
    report(runner, 3, 16_000.0, catchup_s=300.0, spec=priceless)
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(0.0)
    clock.run_until(at(23))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(3.0)
    # Back to a little above the first: at about its size since the start.
    report(runner, 4, 9_000.0, catchup_s=300.0, spec=priceless)
    clock.run_until(at(25))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(25.0)
    # Three times that: a new one, from the end of the last level below half its variance.
    report(runner, 5, 27_000.0, catchup_s=300.0, spec=priceless)
    clock.run_until(at(26))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(1.0)
    # What the basket expects bounds it.
    clock.run_until(at(30))
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(5.0)
    report(runner, 6, 27_000.0, catchup_s=1.5, spec=priceless)
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(1.5)


def test_a_basket_whose_hedge_is_held_is_expected_to_wait_a_day() -> None:
    clock, _, runner = desk()
    report(runner, 1, 10_000.0, spec=msgspec.structs.replace(SPEC, risk_price=1e-9))
    runner.close("b", SPEC, RiskSettings(), hold=True, then=lambda _s: None)
    assert runner.catchup_s(clock.now_ns()) == pytest.approx(RISK_HORIZON_S)


def test_a_momentary_jump_is_not_hedged_however_long_it_is_said_to_last() -> None:
    # A small imbalance for ten minutes, expected to clear in 10 s, then twenty times it
    # for 20 ms at the horizon's end, reported with the horizon's grace as its catch-up time
    # (synthetic_eth, seed 7). Risk is priced so that a hedge pays after some 40 s.
    clock, venue, runner = desk()
    spec = msgspec.structs.replace(SPEC, risk_price=0.5)
    report(runner, 1, 1_000.0, catchup_s=10.0, spec=spec)
    clock.run_until(at(600))
    report(runner, 2, 20_000.0, catchup_s=140.0, spec=spec)
    clock.run_until(at(600.02))
    report(runner, 3, 0.0, catchup_s=0.0, spec=spec)
    clock.run_until(at(610))
    assert venue.sent == []
    # The same jump, lasting: hedged once it has lasted long enough.
    report(runner, 4, 20_000.0, catchup_s=140.0, spec=spec)
    clock.run_until(lambda: bool(venue.sent), limit_ns=at(700))


def lasting(rests: list[Rest], price: float = 0.3) -> tuple[FakeClock, Venue, DeskRunner]:
    """A $200k BTC imbalance that lasts: the desk enters after about a minute and a half,
    resting first."""
    clock, venue, runner = desk(rests)
    report(runner, 1, 200_000.0, spec=msgspec.structs.replace(SPEC, risk_price=price))
    clock.run_until(lambda: bool(venue.sent), limit_ns=at(200))
    return clock, venue, runner


def test_a_resting_order_half_filled_has_the_rest_crossed_and_books_the_venues() -> None:
    clock, venue, runner = lasting([Rest(share=0.4)])
    sent_ns, rested = venue.sent[0]
    assert rested.rest_ns == 5 * SECOND and rested.side is Side.SELL
    assert rested.qty is not None
    clock.run_until(lambda: len(venue.sent) == 2, limit_ns=sent_ns + 6 * SECOND)
    crossed_ns, crossed = venue.sent[1]
    assert crossed.rest_ns == 0 and crossed.side is Side.SELL
    assert crossed_ns >= sent_ns + rested.rest_ns  # only once the rest is over
    assert crossed.qty == rested.qty - IDX.snap_qty(rested.qty * D("0.4"))
    clock.run_until(lambda: not runner.trading, limit_ns=crossed_ns + SECOND)
    assert venue.held == -rested.qty
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))
    stats = runner.baskets["b"]
    assert stats.orders == 2
    # What rests is expected to fill as the desk's own did (the prior weighing two orders).
    assert runner.costs().passive_fill == pytest.approx((0.4 + 2 * PRIOR_REST_FILL) / 3, rel=1e-3)


def test_a_resting_order_that_fills_in_full_leaves_nothing_to_cross() -> None:
    clock, venue, runner = lasting([Rest(share=1.0)])
    clock.run_until(lambda: not runner.trading, limit_ns=at(200))
    assert [c.rest_ns > 0 for _, c in venue.sent] == [True]
    assert venue.held != 0
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))
    assert runner.costs().passive_fill == pytest.approx((1.0 + 2 * PRIOR_REST_FILL) / 3)


def test_a_resting_order_that_fails_is_read_back_and_only_what_it_left_is_crossed() -> None:
    clock, venue, runner = lasting([Rest(share=0.3, error=True)])
    _, rested = venue.sent[0]
    assert rested.qty is not None
    clock.run_until(lambda: not runner.trading, limit_ns=at(200))
    (_, crossed) = venue.sent[1]
    assert crossed.rest_ns == 0
    assert crossed.qty == rested.qty - IDX.snap_qty(rested.qty * D("0.3"))
    assert venue.held == -rested.qty
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))


def test_when_the_positions_cannot_be_read_back_nothing_is_crossed_on_a_guess() -> None:
    clock, venue, runner = desk([Rest(share=0.3, error=True)])
    venue.readable = False
    report(runner, 1, 200_000.0, spec=msgspec.structs.replace(SPEC, risk_price=0.3))
    clock.run_until(lambda: bool(venue.sent), limit_ns=at(200))
    first_ns = venue.sent[0][0]
    clock.run_until(first_ns + 6 * SECOND)
    assert [c.rest_ns > 0 for _, c in venue.sent] == [True]


def test_an_order_that_may_still_rest_has_nothing_crossed_beside_it() -> None:
    # Its cancel never went through: what it leaves is not known, whatever the positions say.
    clock, venue, runner = lasting([Rest(share=0.3, still_open=True)])
    first_ns = venue.sent[0][0]
    clock.run_until(lambda: not runner.trading, limit_ns=first_ns + 6 * SECOND)
    assert [c.rest_ns > 0 for _, c in venue.sent] == [True]
    # The positions were read back all the same: the ledger holds what the venue does.
    assert venue.held != 0
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))


def test_an_eager_desk_crosses_at_once() -> None:
    clock, venue, runner = desk()
    report(runner, 1, 200_000.0, spec=msgspec.structs.replace(SPEC, risk_price=1e6))
    clock.run_until(lambda: bool(venue.sent), limit_ns=at(5))
    assert venue.sent[0][1].rest_ns == 0
