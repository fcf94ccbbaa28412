"""The hedge desk's runner on a fake clock and a scripted hedge venue: the catch-up time it
expects, resting orders and what they leave crossed, orders that may still rest settled
before their symbol trades again, and a ledger that stays the venue's."""

from __future__ import annotations

import itertools
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
    Instrument,
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
    `rests` says (in turn, the last repeating); one left `still_open` rests on (`resting`)
    until `fill_resting` fills the rest of it or a `settle` cancels it. The venue's positions
    (`holding`) are the truth; `readable`: whether positions can be read back;
    `cancellable`: whether a `settle` gets through (else the venue is down to it)."""

    def __init__(self, clock: FakeClock, rests: list[Rest] | None = None) -> None:
        self.clock = clock
        self.rests = rests or [Rest()]
        self.sent: list[tuple[int, PlaceHedge]] = []
        self.holding: dict[str, Decimal] = {}
        self.readable = True
        self.cancellable = True
        self.resting: dict[str, tuple[PlaceHedge, Decimal]] = {}  # client order id → left
        self.settles: list[tuple[int, str]] = []
        self.trip_ns = 10 * MS

    @property
    def held(self) -> Decimal:
        return self.holding.get("IDXUSDT", D(0))

    def fill_resting(self, client_order_id: str) -> None:
        """The rest of an order still resting fills."""
        cmd, left = self.resting.pop(client_order_id)
        self.holding[cmd.symbol] = self.holding.get(cmd.symbol, D(0)) + cmd.side.sign * left

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
            self.holding[cmd.symbol] = self.holding.get(cmd.symbol, D(0)) + cmd.side.sign * filled
            if cmd.rest_ns > 0 and rest.still_open:
                assert cmd.qty is not None
                self.resting[cmd.client_order_id] = (cmd, cmd.qty - filled)
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
            dict(self.holding)
            if self.readable
            else VenueUnavailable("service unavailable", venue="alpha", code=503)
        )
        self.clock.call_at(self.clock.now_ns() + 2 * self.trip_ns, lambda: then(answer))

    def settle(
        self, symbol: str, client_order_id: str, then: Callable[[bool | Exception], None]
    ) -> None:
        self.settles.append((self.clock.now_ns(), client_order_id))

        def cancel() -> None:
            if not self.cancellable:
                then(VenueUnavailable("service unavailable", venue="alpha", code=503))
                return
            self.resting.pop(client_order_id, None)  # cancelled, or already gone
            then(True)

        self.clock.call_at(self.clock.now_ns() + 2 * self.trip_ns, cancel)


def desk(
    rests: list[Rest] | None = None, instruments: list[Instrument] | None = None
) -> tuple[FakeClock, Venue, DeskRunner]:
    clock = FakeClock(START)
    venue = Venue(clock, rests)
    instruments = instruments or [IDX]
    runner = DeskRunner(venue, instruments, "t", RiskSettings())
    runner.mark({i.symbol: MID for i in instruments})
    return clock, venue, runner


def report(
    runner: DeskRunner,
    seq: int,
    btc_usd: float,
    catchup_s: float | None = 3_600.0,
    spec: HedgeSpec = SPEC,
    eth_usd: float = 0.0,
) -> None:
    runner.on_exposure(
        ExposureReport(
            basket_id="b",
            seq=seq,
            hedge=spec,
            venue_epoch="",
            exposure={"BTC": btc_usd, "ETH": eth_usd} if eth_usd else {"BTC": btc_usd},
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


def test_an_order_that_may_still_rest_holds_its_symbol_until_it_is_settled_and_booked() -> None:
    clock, venue, runner = lasting([Rest(share=0.3, still_open=True), Rest(share=1.0)])
    venue.cancellable = False  # the outage goes on
    sent_ns, rested = venue.sent[0]
    assert rested.qty is not None
    coid = rested.client_order_id
    clock.run_until(lambda: bool(runner.unsettled), limit_ns=sent_ns + 6 * SECOND)
    open_ns = clock.now_ns()
    assert runner.unsettled == {coid: "IDXUSDT"}
    statement = runner.statement("b", held=False)
    assert statement.unsettled == [coid] and not statement.flat
    # It fills in full at the venue meanwhile; and a larger imbalance would be hedged more.
    venue.fill_resting(coid)
    assert venue.held == -rested.qty
    report(runner, 2, 400_000.0, spec=msgspec.structs.replace(SPEC, risk_price=0.3))
    # Tried again and again, one try at a time: the first a second after the positions were
    # read back, then pausing 2, 4, 8, 16 s and at most 30 s (each try's answer a round
    # trip away); and not one order in the symbol meanwhile.
    clock.run_until(lambda: len(venue.settles) == 7, limit_ns=open_ns + 130 * SECOND)
    times = [t for t, _ in venue.settles]
    assert {c for _, c in venue.settles} == {coid}
    trip = 2 * venue.trip_ns
    assert times[0] == open_ns + trip + SECOND
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [trip + p * SECOND for p in (2, 4, 8, 16, 30, 30)]
    assert len(venue.sent) == 1
    # What it had filled when answered; not what it filled since.
    assert runner.ledger.qty["IDXUSDT"] == float(-IDX.snap_qty(rested.qty * D("0.3")))
    # The venue answers again: the order is ended, what it filled booked, and only then is
    # the symbol traded again.
    venue.cancellable = True
    clock.run_until(lambda: not runner.unsettled, limit_ns=clock.now_ns() + 31 * SECOND)
    settled_ns = clock.now_ns()
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))
    assert runner.statement("b", held=False).unsettled == []
    clock.run_until(lambda: len(venue.sent) == 2, limit_ns=settled_ns + 600 * SECOND)
    again_ns, again = venue.sent[1]
    assert again.symbol == "IDXUSDT" and again.side is Side.SELL and again_ns >= settled_ns
    tries = len(venue.settles)
    clock.run_until(lambda: not runner.trading, limit_ns=again_ns + 10 * SECOND)
    assert len(venue.settles) == tries  # settled: no more tries
    assert runner.ledger.qty["IDXUSDT"] == pytest.approx(float(venue.held))


def test_a_symbol_held_for_an_unsettled_order_leaves_the_others_traded() -> None:
    btc, eth = SYNTHETIC_INSTRUMENTS["BTCUSDT"], SYNTHETIC_INSTRUMENTS["ETHUSDT"]
    clock, venue, runner = desk([Rest(share=0.3, still_open=True), Rest(share=1.0)], [btc, eth])
    venue.cancellable = False
    spec = msgspec.structs.replace(SPEC, risk_price=0.3)
    report(runner, 1, 200_000.0, spec=spec, eth_usd=150_000.0)
    clock.run_until(lambda: len(venue.sent) == 2, limit_ns=at(200))
    assert [c.symbol for _, c in venue.sent] == ["BTCUSDT", "ETHUSDT"]
    assert list(runner.unsettled.values()) == ["BTCUSDT"]
    # Both imbalances grow: the desk hedges more ETH, and no BTC while its order may fill.
    report(runner, 2, 400_000.0, spec=spec, eth_usd=300_000.0)
    clock.run_until(lambda: len(venue.sent) == 3, limit_ns=clock.now_ns() + 300 * SECOND)
    clock.run_until(clock.now_ns() + 300 * SECOND)
    assert [c.symbol for _, c in venue.sent[2:]] == ["ETHUSDT"]
    assert runner.ledger.qty["ETHUSDT"] == pytest.approx(float(venue.holding["ETHUSDT"]))


def test_a_closed_desk_tries_no_more_to_settle() -> None:
    clock, venue, runner = lasting([Rest(share=0.3, still_open=True)])
    venue.cancellable = False
    clock.run_until(lambda: len(venue.settles) == 2, limit_ns=at(300))
    runner.stop()
    clock.run_until(clock.now_ns() + 120 * SECOND)
    assert len(venue.settles) == 2
    assert list(runner.unsettled) == [venue.sent[0][1].client_order_id]


def test_a_hedge_under_half_a_lot_is_not_sent() -> None:
    # With no hysteresis, an imbalance of a few dimes calls for a hedge that rounds to no
    # lot at all: nothing goes to the venue, round after round (no round trip for nothing).
    clock, venue, runner = desk()
    eager = msgspec.structs.replace(SPEC, risk_price=1e6)
    lot_usd = float(IDX.lot) * MID
    report(runner, 1, 0.4 * lot_usd, spec=eager)
    clock.run_until(at(60))
    assert venue.sent == []
    assert not runner.trading and runner.baskets["b"].orders == 0
    # Grown to a few lots' worth, it is hedged.
    report(runner, 2, 2 * lot_usd, spec=eager)
    clock.run_until(lambda: bool(venue.sent), limit_ns=at(65))
    (_, cmd), *_ = venue.sent
    assert cmd.qty is not None and cmd.qty >= IDX.lot
