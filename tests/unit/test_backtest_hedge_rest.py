"""The backtest's hedge venue port rests a hedge order and withdraws it as the live gateway
does (tests/integration/test_hedge_withdraw.py): a cancel refused by an outage is asked
again until the order is gone, and one that cannot be cancelled within the deadline is
answered `HedgeOrderOpen`, the order still resting. Simulated time, a scripted book."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from actors.backtest.loop import Loop
from actors.backtest.run import NS, WITHDRAW_NS, _DeskPort
from actors.backtest.venue import Venue
from actors.hedge import HedgeOrderOpen
from actors.protocol import HedgeFill, PlaceHedge
from venues.model import OrderStatus, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.market import DepthUpdate, ScriptedMarket
from venues.sim.profile import Latency, Outage, VenueConditions, VenueProfile

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
START = 1_767_225_600 * NS
REST_NS = NS
TRIP = Latency(median_ms=1.0, p99_ms=1.0)


def port(outage_s: float) -> tuple[Loop, SimExchange, _DeskPort]:
    """A hedge venue that refuses every request for `outage_s` from 0.9 s after its start,
    just before a resting order sent at its start is to be cancelled."""
    loop = Loop(START)
    market = ScriptedMarket([BTC])
    market.push(DepthUpdate(START - NS, "BTCUSDT", [(599_990, 1000)], [(600_010, 1000)]))
    exchange = SimExchange("alpha", market, start_ns=START)
    exchange.open_account(AccountSpec(account_id="desk", balances={"USDT": D(1_000_000)}))
    profile = VenueProfile(
        request=TRIP,
        processing=TRIP,
        response=TRIP,
        stream_lag=TRIP,
        outages=[Outage(start_s=0.9, duration_s=outage_s)],
    )
    venue = Venue(loop, "alpha", exchange, VenueConditions(profile, 1, START), "desk", 5_000_000)
    venue.start({"BTCUSDT"})
    run = SimpleNamespace(loop=loop, ray_ns=lambda: 1_000_000)  # a Ray call: 1 ms
    return loop, exchange, _DeskPort(run, venue, [BTC])  # type: ignore[arg-type]


def rest(outage_s: float) -> tuple[Loop, SimExchange, list[tuple[int, object]]]:
    loop, exchange, desk = port(outage_s)
    answers: list[tuple[int, object]] = []
    cmd = PlaceHedge(
        client_order_id="h-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=D("0.01"),
        notional_usd=600.0,
        rest_ns=REST_NS,
    )
    desk.hedge(cmd, lambda a: answers.append((loop.now, a)))
    loop.run(lambda: bool(answers), START + 60 * NS)
    return loop, exchange, answers


def test_a_cancel_refused_by_an_outage_is_asked_again_until_the_order_is_gone() -> None:
    _, exchange, answers = rest(outage_s=3.0)
    ((t, fill),) = answers
    assert isinstance(fill, HedgeFill)
    assert fill.report.status is OrderStatus.CANCELED and fill.report.price == D("59999.0")
    assert t >= START + int(3.9 * NS)  # not before the venue answered again
    assert t < START + int(3.9 * NS) + 5 * NS  # pauses of at most 4 s between tries
    assert exchange.open_orders("desk", "BTCUSDT") == []


def test_an_order_that_cannot_be_cancelled_is_answered_as_possibly_resting() -> None:
    _, exchange, answers = rest(outage_s=40.0)
    ((t, error),) = answers
    assert isinstance(error, HedgeOrderOpen) and error.client_order_id == "h-1"
    assert START + REST_NS + WITHDRAW_NS <= t < START + REST_NS + WITHDRAW_NS + 5 * NS
    (still,) = exchange.open_orders("desk", "BTCUSDT")
    assert still.client_order_id == "h-1"
