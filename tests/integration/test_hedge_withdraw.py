"""A resting hedge order is seen ended before the desk is answered (`VenueGateway.hedge`):
its cancel is asked again through an outage, an order whose placing went unanswered is
withdrawn too, and one that cannot be cancelled is reported as possibly still resting
(`HedgeOrderOpen`) rather than taken for ended, and settled later by one cancel at a time
(`VenueGateway.settle`). The venue is the in-process simulator in real time; its cancels and
placings fail as a venue's would during an outage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

import actors.shells.venue as venue_shell
from actors.hedge import HedgeOrderOpen
from actors.protocol import VenueEndpoint
from actors.risk import RiskSettings
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
    placings (`place_unanswered`: applied, the answer lost) failing as in an outage."""

    def __init__(self, venue: SimVenue, cancels_failing: int, place_unanswered: bool) -> None:
        super().__init__(venue, "desk")
        self.cancels_failing = cancels_failing
        self.place_unanswered = place_unanswered
        self.cancels = 0

    async def place(self, order: NewOrder) -> ExecutionReport:
        report = await super().place(order)
        if self.place_unanswered:
            raise OutcomeUnknown("the answer was lost", venue="simx")
        return report

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
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch, *, cancels_failing: int = 0, lost=False
) -> tuple[VenueGateway, Outage]:
    client = Outage(venue, cancels_failing, lost)
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


async def test_a_resting_order_whose_placing_went_unanswered_is_withdrawn_before_the_error(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, client = await gateway(venue, monkeypatch, lost=True)
    try:
        with pytest.raises(OutcomeUnknown):
            await g.hedge("h-2", "BTCUSDT", Side.SELL, D("0.01"), 600.0, rest_ns=REST_NS)
    finally:
        await g.stop()
    # It had reached the venue and rested there: cancelled before the desk hears of it.
    assert client.cancels == 1
    assert await open_orders(venue) == []


async def test_an_order_that_cannot_be_cancelled_is_reported_as_possibly_resting(
    venue: SimVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(venue_shell, "HEDGE_WITHDRAW_S", 0.6)
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
    monkeypatch.setattr(venue_shell, "HEDGE_WITHDRAW_S", 0.3)
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
