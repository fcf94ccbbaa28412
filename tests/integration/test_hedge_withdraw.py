"""A resting hedge order is seen ended before the desk is answered (`VenueGateway.hedge`):
its cancel is asked again through an outage, an order whose placing went unanswered is
withdrawn too (and not believed gone before the venue's order window has passed: the venue
may apply it late, and its fill is then the answer), and one that cannot be cancelled is
reported as possibly still resting (`HedgeOrderOpen`) rather than taken for ended, and
settled later by one cancel at a time (`VenueGateway.settle`); an order acknowledged before
its match whose result never comes down the stream is asked for. The venue is the in-process
simulator in real time; its cancels and placings fail as a venue's would during an outage."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

import actors.hedge as hedge_rules
import actors.shells.venue as venue_shell
from actors.hedge import HedgeOrderOpen
from actors.protocol import VenueEndpoint
from actors.risk import RiskSettings
from actors.runners import hedge_order
from actors.shells.venue import VenueGateway
from venues.config import parse_venues
from venues.errors import OutcomeUnknown, VenueUnavailable
from venues.model import ExecutionReport, NewOrder, OrderStatus, OrderType, Side, TimeInForce
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue, SimVenueClient
from venues.sim.market import DepthUpdate, ScriptedMarket
from venues.sim.profile import Latency, VenueProfile

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
TINY = Latency(median_ms=0.1, p99_ms=0.5)
REST_NS = 50_000_000  # the order rests 50 ms: nothing trades in the scripted book
CONFIG = parse_venues(
    {"venues": {"simx": {"kind": "sim", "market": {"source": "synthetic", "seed": 1}}}},
    source="test",
).venues["simx"]


class Outage(SimVenueClient):
    """The account's client, its first `cancels_failing` cancels (every one: -1) and its
    placings (`place_unanswered`: applied, the answer lost) failing as in an outage.
    `applied_after_s`: a placing's answer is lost at once and the venue applies the order
    that much later, as Binance may within its receive window (-1007); `inf`: never."""

    def __init__(
        self,
        venue: SimVenue,
        cancels_failing: int,
        place_unanswered: bool,
        applied_after_s: float | None = None,
    ) -> None:
        super().__init__(venue, "desk")
        self.cancels_failing = cancels_failing
        self.place_unanswered = place_unanswered
        self.applied_after_s = applied_after_s
        self.cancels = 0
        self.queries = 0
        self.silent_stream = False  # the account stream delivers nothing
        self.late: list[asyncio.Task[ExecutionReport]] = []

    async def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        if self.silent_stream:
            await asyncio.Event().wait()  # connected, and never a report
        async for report in super().execution_reports():
            yield report

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        self.queries += 1
        return await super().query(symbol, client_order_id)

    async def place(self, order: NewOrder) -> ExecutionReport:
        if self.applied_after_s is not None:
            if math.isfinite(self.applied_after_s):
                self.late.append(asyncio.create_task(self._apply_later(order)))
            raise OutcomeUnknown("the answer was lost", venue="simx")
        report = await super().place(order)
        if self.place_unanswered:
            raise OutcomeUnknown("the answer was lost", venue="simx")
        return report

    async def _apply_later(self, order: NewOrder) -> ExecutionReport:
        assert self.applied_after_s is not None
        await asyncio.sleep(self.applied_after_s)  # the venue's own delay, not the test's
        return await super().place(order)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        self.cancels += 1
        if self.cancels_failing < 0 or self.cancels <= self.cancels_failing:
            raise VenueUnavailable("service unavailable", venue="simx", code=503)
        return await super().cancel(symbol, client_order_id)


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    market = ScriptedMarket([BTC])
    market.push(DepthUpdate(1, "BTCUSDT", [(599_990, 1000)], [(600_010, 1000)]))
    exchange = SimExchange("simx", market)
    exchange.open_account(AccountSpec(account_id="desk", balances={"USDT": D(1_000_000)}))
    tiny = VenueProfile(request=TINY, processing=TINY, response=TINY, stream_lag=TINY)
    sim = SimVenue(exchange, tiny, seed=5, advance_every_s=0.001)
    await sim.start()
    yield sim
    await sim.stop()


async def gateway(
    venue: SimVenue,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cancels_failing: int = 0,
    lost: bool = False,
    applied_after_s: float | None = None,
    silent_stream: bool = False,
) -> tuple[VenueGateway, Outage]:
    client = Outage(venue, cancels_failing, lost, applied_after_s)
    client.silent_stream = silent_stream
    monkeypatch.setattr(venue_shell, "client_for", lambda endpoint, **options: client)
    g = VenueGateway(VenueEndpoint(venue="simx", config=CONFIG), RiskSettings())
    await g.start(["BTCUSDT"])
    return g, client


async def open_orders(venue: SimVenue) -> list[ExecutionReport]:
    return await venue.client("desk").open_orders("BTCUSDT")


async def test_a_cancel_refused_by_an_outage_is_asked_again_until_the_order_is_gone(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, client = await gateway(venue, monkeypatch, cancels_failing=2)
    try:
        fill = await g.hedge("h-1", "BTCUSDT", Side.BUY, D("0.01"), 600.0, rest_ns=REST_NS)
    finally:
        await g.stop()
    assert fill is not None
    assert fill.report.status is OrderStatus.CANCELED and fill.report.cum_filled == 0
    assert fill.report.price == D("59999.0")  # it rested at the bid
    assert client.cancels == 3
    assert await open_orders(venue) == []


async def test_a_resting_order_whose_placing_went_unanswered_is_withdrawn_before_the_answer(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, client = await gateway(venue, monkeypatch, lost=True)
    try:
        fill = await g.hedge("h-2", "BTCUSDT", Side.SELL, D("0.01"), 600.0, rest_ns=REST_NS)
    finally:
        await g.stop()
    # It had reached the venue and rested there: cancelled before the desk hears of it, and
    # the desk hears what the venue says of it (nothing filled), not the lost answer.
    assert fill is not None
    assert fill.report.status is OrderStatus.CANCELED and fill.report.cum_filled == 0
    assert client.cancels == 1
    assert await open_orders(venue) == []


async def test_an_accepted_order_whose_result_never_streams_is_asked_for_after_the_wait(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The venue acknowledges the IOC before matching it (ACCEPTED: the answer says NEW); its
    # fill would come down the account stream, which is silent: the venue is asked.
    monkeypatch.setattr(hedge_order, "FINAL_WAIT_NS", 200_000_000)
    g, client = await gateway(venue, monkeypatch, silent_stream=True)
    sent = time.monotonic()
    try:
        fill = await asyncio.wait_for(g.hedge("h-7", "BTCUSDT", Side.BUY, D("0.01"), 600.0), 10)
    finally:
        await g.stop()
    assert fill is not None
    assert fill.report.status is OrderStatus.FILLED and fill.report.cum_filled == D("0.01")
    assert time.monotonic() - sent >= 0.2
    assert client.queries == 1 and client.cancels == 0


WINDOW_NS = 1_000_000_000  # the venue's order window (`actors.hedge.withdrawal`), shortened


async def test_an_order_the_venue_applies_after_losing_its_answer_is_answered_with_its_fill(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An IOC buy, its answer lost, placed 0.3 s later: a read-back of the positions when the
    # answer was lost would have found nothing, and its fill would have gone unbooked.
    monkeypatch.setattr(hedge_rules, "ORDER_WINDOW_NS", WINDOW_NS)
    g, client = await gateway(venue, monkeypatch, applied_after_s=0.3)
    sent = time.monotonic()
    try:
        fill = await g.hedge("h-5", "BTCUSDT", Side.BUY, D("0.01"), 600.0)
    finally:
        await g.stop()
    assert fill is not None
    assert fill.report.status is OrderStatus.FILLED and fill.report.cum_filled == D("0.01")
    assert time.monotonic() - sent >= 0.3
    assert client.cancels >= 1  # asked while the venue did not know it yet
    (position,) = await venue.client("desk").positions()
    assert position.quantity == D("0.01")


async def test_an_unanswered_order_the_venue_never_places_is_reported_after_its_window(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hedge_rules, "ORDER_WINDOW_NS", WINDOW_NS)
    g, client = await gateway(venue, monkeypatch, applied_after_s=math.inf)
    sent = time.monotonic()
    try:
        with pytest.raises(OutcomeUnknown):
            await g.hedge("h-6", "BTCUSDT", Side.BUY, D("0.01"), 600.0)
    finally:
        await g.stop()
    # "Unknown" from the first cancel on, believed only once the window had passed.
    assert time.monotonic() - sent >= WINDOW_NS / 1e9
    assert client.cancels >= 2
    assert await venue.client("desk").positions() == []


async def test_an_order_that_cannot_be_cancelled_is_reported_as_possibly_resting(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hedge_order, "WITHDRAW_NS", 600_000_000)
    g, client = await gateway(venue, monkeypatch, cancels_failing=-1)
    try:
        with pytest.raises(HedgeOrderOpen, match=r"h-3 on BTCUSDT .* may still rest"):
            await g.hedge("h-3", "BTCUSDT", Side.BUY, D("0.01"), 600.0, rest_ns=REST_NS)
    finally:
        await g.stop()
    # Asked again, with pauses, for the whole deadline; and it is indeed still there.
    assert 2 <= client.cancels <= 5
    (still,) = await open_orders(venue)
    assert still.client_order_id == "h-3"


async def test_an_order_that_may_still_rest_is_settled_once_the_venue_answers_again(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hedge_order, "WITHDRAW_NS", 300_000_000)
    g, client = await gateway(venue, monkeypatch, cancels_failing=-1)
    try:
        with pytest.raises(HedgeOrderOpen):
            await g.hedge("h-4", "BTCUSDT", Side.BUY, D("0.01"), 600.0, rest_ns=REST_NS)
        # The venue still down: one try, its error, and the order rests on.
        tried = client.cancels
        with pytest.raises(VenueUnavailable):
            await g.settle("BTCUSDT", "h-4")
        assert client.cancels == tried + 1
        assert [r.client_order_id for r in await open_orders(venue)] == ["h-4"]
        # Back: the order is cancelled, and ended it stays ended; one never placed is too.
        client.cancels_failing = 0
        assert await g.settle("BTCUSDT", "h-4") is True
        assert await open_orders(venue) == []
        assert await g.settle("BTCUSDT", "h-4") is True
        assert await g.settle("BTCUSDT", "h-never") is True
        assert client.cancels == tried + 4
    finally:
        await g.stop()
    report = await venue.client("desk").query("BTCUSDT", "h-4")
    assert report.status is OrderStatus.CANCELED and report.cum_filled == 0


async def test_resting_orders_a_lost_desk_left_are_cancelled_and_no_others(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hedge actor that died left a resting hedge order; the new one's desk, opening, finds
    # it beside one of its own and a leg's order, on the same account.
    other = venue.client("desk")
    for coid in ("lgh-dead01-4", "lgh-live0-1", "lg-b1-eth-7"):
        await other.place(
            NewOrder(
                client_order_id=coid,
                symbol="BTCUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=D("0.01"),
                price=D("59000.0"),
                time_in_force=TimeInForce.GTC,
            )
        )
    g, client = await gateway(venue, monkeypatch, cancels_failing=1)
    try:
        assert await g.withdraw_stale(["BTCUSDT"], "lgh-live") == ["lgh-dead01-4"]
    finally:
        await g.stop()
    assert client.cancels == 2  # the first refused by the outage, asked again
    assert sorted(r.client_order_id for r in await open_orders(venue)) == [
        "lg-b1-eth-7",
        "lgh-live0-1",
    ]
