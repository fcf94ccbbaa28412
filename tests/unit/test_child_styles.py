"""Child styles on the leg runner, a fake clock and a venue that rests post-only orders:
`passive` rests, re-quotes at a bounded rate, crosses to catch up, pulls its quote when
paused, prices a refused quote again, and cancels and reconciles its quote when stopped;
`pov` sizes its children from the volume it saw."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise

import msgspec
import pytest

from actors.messages import LegStatus
from actors.protocol import ArmLeg, VenueEndpoint
from actors.runners.leg import LegRunner
from actors.runners.port import VenueAnswer
from actors.schedule import REQUOTE_MIN_NS, Mode
from actors.spec import ChildStyle, ResolvedLeg
from actors.sync import AdjustLeg
from tests.unit.fake_port import FakeClock, FakePort, FakeVenue, Sent
from venues.config import SimVenueConfig
from venues.errors import OrderRejected, UnknownOrder
from venues.model import (
    AckKind,
    BookTicker,
    ExecutionReport,
    Fill,
    Liquidity,
    NewOrder,
    OrderStatus,
    RejectReason,
    Side,
    TimeInForce,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
FIRE_AT = START + 100 * MS
LATENCY = 5 * MS
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]  # tick 0.01, lot 0.001, min notional 20
TARGET = D("1.0")  # over 100 s in 10 s slices


def book(bid: str, ask: str, t: int) -> BookTicker:
    return BookTicker(
        venue="sim", symbol="ETHUSDT", bid=D(bid), bid_qty=D(5), ask=D(ask), ask_qty=D(5), ts_ns=t
    )


class RestingVenue(FakeVenue):
    """`FakeVenue` with a book: an IOC fills in full at its limit; a post-only order that
    would cross `book` is refused (`POST_ONLY_WOULD_CROSS`), else it rests until the test
    fills it (`fill`) or the runner cancels it (`cancel`; `UnknownOrder` once it ended)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, latency_ns=LATENCY)
        self.book = book("2000.00", "2000.10", START)
        self.cancels: list[tuple[int, str]] = []  # (time the venue took it, client order id)

    def _apply(self, order: NewOrder, received_ns: int) -> ExecutionReport:
        if order.time_in_force is not TimeInForce.POST_ONLY:
            return super()._apply(order, received_ns)
        assert order.price is not None
        crosses = (
            order.price >= self.book.ask
            if order.side is Side.BUY
            else order.price <= (self.book.bid)
        )
        if crosses:
            raise OrderRejected(
                "post-only would cross",
                reason=RejectReason.POST_ONLY_WOULD_CROSS,
                venue=self.name,
                client_order_id=order.client_order_id,
            )
        now = self.clock.now_ns()
        report = ExecutionReport(
            venue=self.name,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            order_id=len(self.orders) + 1,
            side=order.side,
            order_type=order.type,
            time_in_force=order.time_in_force,
            status=OrderStatus.NEW,
            quantity=order.quantity,
            price=order.price,
            cum_filled=D(0),
            avg_price=None,
            cum_fee=D(0),
            venue_receive_ns=received_ns,
            venue_accept_ns=now,
            venue_ts_ns=now,
        )
        self.orders[order.client_order_id] = report
        return report

    def _receive(self, index: int, order: NewOrder, then: Callable[[VenueAnswer], None]) -> None:
        try:
            super()._receive(index, order, then)
        except OrderRejected as refusal:
            self._reply(then, refusal)

    def fill(self, coid: str, qty: Decimal) -> None:
        """The market trades `qty` of the resting order `coid` at its price (as a maker)."""
        r = self.orders[coid]
        assert r.price is not None
        cum = r.cum_filled + qty
        now = self.clock.now_ns()
        r = msgspec.structs.replace(
            r,
            status=OrderStatus.FILLED if cum >= r.quantity else OrderStatus.PARTIALLY_FILLED,
            cum_filled=cum,
            avg_price=r.price,
            last_fill=Fill(
                trade_id=now,
                price=r.price,
                quantity=qty,
                fee=D(0),
                fee_asset="USDT",
                liquidity=Liquidity.MAKER,
                ts_ns=now,
            ),
            venue_ts_ns=now,
        )
        self.orders[coid] = r
        stream = self.stream
        if stream is not None:
            self._later(self.stream_lag_ns, lambda: stream(r))

    def cancel(
        self, symbol: str, client_order_id: str, then: Callable[[VenueAnswer], None]
    ) -> None:
        def arrive() -> None:
            self.cancels.append((self.clock.now_ns(), client_order_id))
            r = self.orders.get(client_order_id)
            if r is None or r.status.is_terminal:
                self._reply(then, UnknownOrder("Unknown order sent.", venue=self.name, code=-2011))
                return
            r = msgspec.structs.replace(r, status=OrderStatus.CANCELED, last_fill=None)
            self.orders[client_order_id] = r
            self._reply(then, r)

        self._later(self.latency_ns, arrive)

    def resting(self) -> list[ExecutionReport]:
        return [r for r in self.orders.values() if not r.status.is_terminal]


def arm(style: ChildStyle, **kw: object) -> ArmLeg:
    leg = ResolvedLeg(
        leg_id="eth",
        venue="sim",
        symbol="ETHUSDT",
        side=Side.BUY,
        quantity=TARGET,
        instrument=ETH,
        price=D(2000),
        max_slippage_bps=50.0,
        child_style=style,
        pov_rate=0.1,
    )
    fields: dict[str, object] = {
        "basket_id": "b1",
        "leg": leg,
        "endpoint": VenueEndpoint(venue="sim", config=SimVenueConfig()),
        "horizon_ns": 100 * SECOND,
        "slice_ns": 10 * SECOND,
        "participation_cap": 0.2,
        "max_child_fraction": 0.05,
        "synchronized": True,
    }
    fields.update(kw)
    return ArmLeg(**fields)  # type: ignore[arg-type]


class Leg:
    """A runner on the fake clock and the resting venue; the market's book is `venue.book`,
    delivered every 100 ms with `volume` ETH traded. After every event: no client order id
    went out twice, never more than one quote rests, and the venue never holds more than
    the target."""

    def __init__(self, style: ChildStyle = ChildStyle.PASSIVE, **kw: object) -> None:
        self.clock = FakeClock(START)
        self.venue = RestingVenue(self.clock)
        self.port = FakePort(self.clock, self.venue)
        self.runner = LegRunner(
            arm(style, **kw), self.port, book=self.venue.book, ack_kind=AckKind.RESULT
        )
        self.venue.stream = self.runner.on_report
        self.volume = D("0.5")
        self.move: Callable[[int], None] | None = None  # the test's market, run every tick
        self.clock.watchers.append(self._invariants)
        self.clock.call_at(START, self._tick)

    def _tick(self) -> None:
        now = self.clock.now_ns()
        if self.move is not None:
            self.move(now)
        self.runner.on_market(self.venue.book, self.volume, self.volume * self.venue.book.bid)
        if now < FIRE_AT + 200 * SECOND:
            self.clock.call_at(now + 100 * MS, self._tick)

    def _invariants(self) -> None:
        ids = [s.order.client_order_id for s in self.venue.sent]
        assert len(set(ids)) == len(ids), f"a client order id was sent twice: {ids}"
        assert len(self.venue.resting()) <= 1, f"two quotes rest: {self.venue.resting()}"
        assert self.venue.position <= TARGET, f"overfilled: {self.venue.position}"

    def sent(self, tif: TimeInForce) -> list[Sent]:
        return [s for s in self.venue.sent if s.order.time_in_force is tif]

    def run(self, until: int) -> None:
        self.clock.run_until(until)


def test_a_passive_leg_rests_a_post_only_quote_one_tick_inside_a_wide_spread() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + 1 * SECOND)
    quotes = leg.sent(TimeInForce.POST_ONLY)
    assert len(quotes) == 1 and not leg.sent(TimeInForce.IOC)
    assert quotes[0].order.price == D("2000.01")  # the bid 2000.00 and one tick
    # It covers the schedule two intervals ahead: 20 % of the target.
    assert quotes[0].order.quantity == D("0.050")  # capped at max_child_fraction 5 %
    assert leg.runner.ledger.open_qty == D("0.050")
    assert leg.runner.status is LegStatus.WORKING


def test_a_quote_the_touch_leaves_is_replaced_no_sooner_than_the_requote_bound() -> None:
    leg = Leg()

    def rising(now: int) -> None:  # the bid rises a tick every 100 ms
        ticks = max(0, (now - FIRE_AT) // (100 * MS))
        bid = D("2000.00") + D("0.01") * ticks
        leg.venue.book = book(str(bid), str(bid + D("0.10")), now)

    leg.move = rising
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + 5 * SECOND)
    quotes = leg.sent(TimeInForce.POST_ONLY)
    assert len(quotes) >= 3, "the quote follows the bid"
    gaps = [b.t_ns - a.t_ns for a, b in pairwise(quotes)]
    assert min(gaps) >= REQUOTE_MIN_NS, gaps
    # Each replacement went after its predecessor's cancel was confirmed (one quote at most),
    # and each was priced off the newest bid it had.
    cancelled = {coid for _, coid in leg.venue.cancels}
    assert all(q.order.client_order_id in cancelled for q in quotes[:-1])
    assert quotes[-1].order.price > quotes[0].order.price


def test_a_passive_leg_behind_its_schedule_crosses_at_the_cap_beside_its_quote() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    # Nothing ever fills the quote: by 2.5 % of the horizon past half the band (the lag is
    # max_child_fraction, 5 %) the leg is behind and crosses.
    leg.run(FIRE_AT + 12 * SECOND)
    iocs = leg.sent(TimeInForce.IOC)
    assert iocs, "the leg never crossed"
    first = iocs[0]
    assert first.t_ns >= FIRE_AT + 5 * SECOND  # behind by more than 5 % of 100 s
    cap = ETH.snap_price_passive(D("2000.05") * (1 + D(50) / D(10_000)), Side.BUY)
    assert first.order.price == cap
    # The quote was not pulled to cross: it still rests, as a maker, beside the IOC (the
    # invariants check that quote and IOC together never exceed the target).
    quote = leg.sent(TimeInForce.POST_ONLY)[0].order.client_order_id
    assert quote not in {coid for t, coid in leg.venue.cancels if t < first.t_ns}


def test_a_passive_leg_whose_quote_holds_all_that_is_left_cancels_it_to_cross() -> None:
    # One regular slice (0.1) fills first; the quote then covers every remaining lot.
    leg = Leg(max_child_fraction=1.0)
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    quote = leg.sent(TimeInForce.POST_ONLY)[0]
    leg.runner.adjust(
        AdjustLeg(
            leg_id="eth",
            mode=Mode.CATCH_UP,
            target_qty=D(str(quote.order.quantity)),
            reason="cut",
            ts_ns=leg.clock.now_ns(),
        )
    )
    leg.run(FIRE_AT + 3 * SECOND)
    iocs = leg.sent(TimeInForce.IOC)
    assert iocs, "the leg never crossed"
    cancel_at = next(t for t, coid in leg.venue.cancels if coid == quote.order.client_order_id)
    assert cancel_at < iocs[0].t_ns


def test_a_passive_leg_told_its_partners_reach_crosses_to_it_at_once() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    assert not leg.sent(TimeInForce.IOC)
    told = leg.clock.now_ns()
    leg.runner.adjust(
        AdjustLeg(
            leg_id="eth",
            mode=Mode.CATCH_UP,
            target_qty=None,
            reason="crossing: btc ahead",
            ts_ns=told,
            reach_qty=D("0.120"),
        )
    )
    leg.run(told + 100 * MS)
    iocs = leg.sent(TimeInForce.IOC)
    # IOCs at once, for what the partner leads by (the reach, not the schedule's slice), in
    # orders of the basket's child cap (5 %, 0.050), each after the previous one's answer.
    assert iocs and iocs[0].t_ns - told < 5 * MS
    assert [s.order.quantity for s in iocs] == [D("0.050"), D("0.050"), D("0.020")]
    # Reached: nothing more crosses while the reach stands, whatever the mode says.
    leg.run(told + 5 * SECOND)
    assert sum(s.order.quantity for s in leg.sent(TimeInForce.IOC)) == D("0.120")


def test_the_synchronizer_speeding_a_passive_leg_up_makes_it_cross_at_once() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    assert not leg.sent(TimeInForce.IOC)
    leg.runner.adjust(
        AdjustLeg(
            leg_id="eth", mode=Mode.CATCH_UP, target_qty=None, reason="t", ts_ns=leg.clock.now_ns()
        )
    )
    leg.run(FIRE_AT + 2 * SECOND)
    assert leg.sent(TimeInForce.IOC), "a leg told to catch up crosses"


def test_a_passive_leg_kept_in_step_quotes_half_a_slice_and_a_lone_one_two_slices() -> None:
    # Target 1.0 over ten 10 s slices: a regular slice is 0.1. With no child cap to hide it,
    # a lone leg quotes the schedule two intervals ahead; one kept in step by its partners'
    # fills quotes half a slice, what stands naked while they follow it.
    sizes = {}
    for synchronized in (False, True):
        leg = Leg(max_child_fraction=1.0, synchronized=synchronized)
        leg.runner.fire(FIRE_AT, 2 * LATENCY)
        leg.run(FIRE_AT + SECOND)
        sizes[synchronized] = [q.order.quantity for q in leg.sent(TimeInForce.POST_ONLY)]
    assert sizes == {False: [D("0.200")], True: [D("0.050")]}


def test_a_follow_does_not_wait_for_the_answer_of_a_quote_on_its_way() -> None:
    leg = Leg()
    leg.venue.latency_ns = 100 * MS  # a far venue: a quote's answer takes 200 ms
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + 20 * MS)
    quote = leg.sent(TimeInForce.POST_ONLY)
    assert quote and leg.runner.ledger.orders[quote[0].order.client_order_id].ack_ns is None
    told = leg.clock.now_ns()
    leg.runner.adjust(
        AdjustLeg(
            leg_id="eth",
            mode=Mode.CATCH_UP,
            target_qty=None,
            reason="crossing: btc ahead",
            ts_ns=told,
            reach_qty=D("0.040"),
        )
    )
    leg.run(told + 10 * MS)
    iocs = leg.sent(TimeInForce.IOC)
    assert [(s.order.quantity, s.t_ns == told) for s in iocs] == [(D("0.040"), True)]
    # Nothing more while the reach stands: what is on its way counts as filled.
    leg.run(told + 150 * MS)
    assert len(leg.sent(TimeInForce.IOC)) == 1


def test_a_paused_passive_leg_pulls_its_quote_and_quotes_again_when_resumed() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    quote = leg.sent(TimeInForce.POST_ONLY)[0].order.client_order_id
    pause = AdjustLeg(
        leg_id="eth", mode=Mode.PAUSE, target_qty=None, reason="t", ts_ns=leg.clock.now_ns()
    )
    leg.runner.adjust(pause)
    leg.run(FIRE_AT + 3 * SECOND)
    assert leg.venue.orders[quote].status is OrderStatus.CANCELED
    assert len(leg.sent(TimeInForce.POST_ONLY)) == 1 and not leg.venue.resting()
    assert leg.runner.status is LegStatus.PAUSED
    resume = AdjustLeg(
        leg_id="eth", mode=Mode.NORMAL, target_qty=None, reason="t", ts_ns=leg.clock.now_ns()
    )
    leg.runner.adjust(resume)
    leg.run(FIRE_AT + 4 * SECOND)
    assert len(leg.venue.resting()) == 1


def test_a_leader_cut_to_a_smaller_target_shrinks_its_quote() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    first = leg.sent(TimeInForce.POST_ONLY)[0].order
    leg.venue.fill(first.client_order_id, D("0.010"))
    leg.run(FIRE_AT + 1500 * MS)
    cut = AdjustLeg(
        leg_id="eth", mode=Mode.NORMAL, target_qty=D("0.030"), reason="t", ts_ns=leg.clock.now_ns()
    )
    leg.runner.adjust(cut)
    leg.run(FIRE_AT + 3 * SECOND)
    assert leg.venue.orders[first.client_order_id].status is OrderStatus.CANCELED
    resting = leg.venue.resting()
    # A new quote for the cut target's schedule: 20 % of 0.030 is below one minimum order
    # (0.010 ETH at $2000), and the 0.020 left allows no more than the schedule.
    assert len(resting) == 1 and resting[0].quantity == D("0.010")


def test_a_post_only_refusal_is_priced_again_on_a_newer_book_not_counted_as_a_reject() -> None:
    leg = Leg()
    # The ask falls onto the quote's price while it travels: refused as crossing, six times.
    refusals = [0]

    def narrowing(now: int) -> None:
        if refusals[0] < 6:
            leg.venue.book = book("2000.00", "2000.01", now)
        else:
            leg.venue.book = book("2000.00", "2000.10", now)

    original = leg.venue._apply

    def apply(order: NewOrder, received_ns: int) -> ExecutionReport:
        if order.time_in_force is TimeInForce.POST_ONLY and refusals[0] < 6:
            refusals[0] += 1
            leg.venue.book = book(str(order.price - D("0.01")), str(order.price), received_ns)
        return original(order, received_ns)

    leg.venue._apply = apply  # type: ignore[method-assign]
    leg.move = narrowing
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + 3 * SECOND)
    assert refusals[0] == 6  # more than MAX_CONSECUTIVE_REJECTS in a row
    assert leg.runner.status is LegStatus.WORKING, leg.runner.reason
    assert len(leg.venue.resting()) == 1
    quotes = leg.sent(TimeInForce.POST_ONLY)
    # Never twice on one book: each re-quote waited for the next market tick.
    gaps = [b.t_ns - a.t_ns for a, b in pairwise(quotes)]
    assert min(gaps) >= 2 * LATENCY


@pytest.mark.parametrize("race", [False, True])
def test_a_stopped_passive_leg_cancels_its_quote_and_reconciles_its_fate(race: bool) -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + SECOND)
    quote = leg.sent(TimeInForce.POST_ONLY)[0].order
    if race:  # the market fills the quote while the cancel travels: the venue knows it ended
        leg.clock.call_at(
            leg.clock.now_ns() + 2 * MS,
            lambda: leg.venue.fill(quote.client_order_id, quote.quantity),
        )
    done: list[object] = []
    leg.runner.stop("basket cancelled", done.append)
    leg.clock.run_until(lambda: bool(done), FIRE_AT + 20 * SECOND)
    assert leg.runner.status is LegStatus.DONE
    assert leg.venue.cancels and leg.venue.cancels[0][1] == quote.client_order_id
    recs = []
    leg.runner.reconcile(leg.clock.now_ns() + 30 * SECOND, recs.append)
    leg.clock.run_until(lambda: bool(recs), FIRE_AT + 60 * SECOND)
    rec = recs[0]
    assert rec.reconciled and not rec.still_open, rec
    expected = quote.quantity if race else D(0)
    assert leg.runner.ledger.filled_qty == expected == leg.venue.position
    assert leg.runner.status is LegStatus.RECONCILED


def test_a_passive_leg_works_its_whole_target_by_the_horizon() -> None:
    leg = Leg()
    leg.runner.fire(FIRE_AT, 2 * LATENCY)

    def maker_flow(now: int) -> None:  # every second the market takes half the resting quote
        if (now - FIRE_AT) % SECOND == 0:
            for r in leg.venue.resting():
                half = ETH.snap_qty((r.quantity - r.cum_filled) / 2)
                if half > 0:
                    leg.venue.fill(r.client_order_id, half)

    leg.move = maker_flow
    leg.clock.run_until(lambda: leg.runner.status is LegStatus.DONE, FIRE_AT + 150 * SECOND)
    # Done to within one minimum order (partial maker fills can leave dust no venue takes).
    filled = leg.runner.ledger.filled_qty
    assert filled == leg.venue.position and TARGET - D("0.010") < filled <= TARGET
    assert not leg.venue.resting()
    maker = sum(
        r.cum_filled for r in leg.venue.orders.values() if r.time_in_force is TimeInForce.POST_ONLY
    )
    assert maker > TARGET / 2, "most of it rested and filled as a maker"


def test_a_pov_leg_sizes_each_child_from_the_volume_since_the_last() -> None:
    leg = Leg(ChildStyle.POV)
    leg.volume = D("0.2")  # 2 ETH a second traded: 20 ETH an interval, 10 % of it is 2
    leg.runner.fire(FIRE_AT, 2 * LATENCY)
    leg.run(FIRE_AT + 25 * SECOND)
    sizes = [s.order.quantity for s in leg.sent(TimeInForce.IOC)]
    assert not leg.sent(TimeInForce.POST_ONLY)
    # The launch slice and then one child per interval, each pov_rate × the volume seen
    # (capped at max_child_fraction 5 %).
    # The launch: 10 % of the 0.2 ETH traded before it.
    assert sizes == [D("0.020"), D("0.050"), D("0.050")], sizes
    # A quiet market over a long horizon (never behind the schedule): 0.4 ETH an interval.
    leg2 = Leg(ChildStyle.POV, horizon_ns=1_000 * SECOND)
    leg2.volume = D("0.004")
    leg2.runner.fire(FIRE_AT, 2 * LATENCY)
    leg2.run(FIRE_AT + 25 * SECOND)
    sizes = [s.order.quantity for s in leg2.sent(TimeInForce.IOC)]
    assert D("0.040") in sizes[1:], sizes
