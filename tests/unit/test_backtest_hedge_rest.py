"""The backtest's hedge venue port rests a hedge order and withdraws it as the live gateway
does (tests/integration/test_hedge_withdraw.py): a cancel refused by an outage is asked
again until the order is gone, and one that cannot be cancelled within the deadline is
answered `HedgeOrderOpen`, the order still resting; the desk then settles it once the venue
answers again, and books what it filled meanwhile. An order whose placing went unanswered is
seen ended, past the venue's order window, before the desk hears of it: one the venue applied
late is answered with its fill. Simulated time, a scripted book."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import msgspec

from actors.backtest.loop import Loop
from actors.backtest.run import NS, _DeskPort
from actors.backtest.venue import Venue
from actors.hedge import HedgeOrderOpen
from actors.protocol import ORDER_WINDOW_NS, ExposureReport, HedgeFill, PlaceHedge
from actors.risk import RiskSettings
from actors.runners.hedge import DeskRunner
from actors.runners.hedge_order import WITHDRAW_NS
from actors.spec import HedgeSpec
from venues.errors import OutcomeUnknown
from venues.model import OrderStatus, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.profile import Latency, Outage, VenueConditions, VenueProfile

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
START = 1_767_225_600 * NS
REST_NS = NS
TRIP = Latency(median_ms=1.0, p99_ms=1.0)


def port(
    outage_s: float,
    from_s: float = 0.9,
    market: ScriptedMarket | None = None,
    **lost: object,
) -> tuple[Loop, SimExchange, _DeskPort]:
    """A hedge venue that refuses every request for `outage_s` from `from_s` after its
    start (by default just before a resting order sent at its start is to be cancelled).
    `lost`: its profile's `unknown_*` fields (answers lost)."""
    loop = Loop(START)
    market = market or ScriptedMarket([BTC])
    market.push(DepthUpdate(START - NS, "BTCUSDT", [(599_990, 1000)], [(600_010, 1000)]))
    exchange = SimExchange("alpha", market, start_ns=START)
    exchange.open_account(AccountSpec(account_id="desk", balances={"USDT": D(1_000_000)}))
    profile = VenueProfile(
        request=TRIP,
        processing=TRIP,
        response=TRIP,
        stream_lag=TRIP,
        outages=[Outage(start_s=from_s, duration_s=outage_s)],
    )
    profile = msgspec.structs.replace(profile, **lost)
    venue = Venue(loop, "alpha", exchange, VenueConditions(profile, 1, START), "desk", 5_000_000)
    venue.start({"BTCUSDT"})
    run = SimpleNamespace(loop=loop, ray_ns=lambda: 1_000_000)  # a Ray call: 1 ms
    return loop, exchange, _DeskPort(run, venue, [BTC])  # type: ignore[arg-type]


def buy(loop: Loop, desk: _DeskPort, rest_ns: int) -> list[tuple[int, object]]:
    """A hedge buy of 0.01 BTC sent now (resting `rest_ns`; 0: IOC): its answer, with when
    it came, once it has come (within a minute)."""
    answers: list[tuple[int, object]] = []
    cmd = PlaceHedge(
        client_order_id="h-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=D("0.01"),
        notional_usd=600.0,
        rest_ns=rest_ns,
    )
    desk.hedge(cmd, lambda a: answers.append((loop.now, a)))
    loop.run(lambda: bool(answers), START + 60 * NS)
    return answers


def rest(outage_s: float) -> tuple[Loop, SimExchange, list[tuple[int, object]]]:
    loop, exchange, desk = port(outage_s)
    return loop, exchange, buy(loop, desk, REST_NS)


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


def test_a_desk_settles_an_order_left_resting_by_an_outage_and_books_what_it_filled() -> None:
    # The desk rests a sell 10 s in (its imbalance has lasted long enough); the venue is
    # down from just before its cancel for 40 s, longer than the withdrawal's deadline; a
    # buyer takes the ask, the desk's order with it, while it is still down.
    market = ScriptedMarket([BTC])
    market.push(
        TradePrint(START + 45 * NS, "BTCUSDT", Side.BUY, 600_010, 5_000),
        DepthUpdate(START + 46 * NS, "BTCUSDT", [], [(600_010, 1000)]),
    )
    loop, exchange, desk = port(outage_s=40.0, from_s=10.5, market=market)
    runner = DeskRunner(desk, [BTC], "bt", RiskSettings())
    runner.mark({"BTCUSDT": 60_000.0})
    spec = HedgeSpec(
        venue="alpha",
        instruments=["BTCUSDT"],
        activation_usd=0.0,
        hysteresis_usd=100.0,
        min_hold_s=0.0,
        rest_s=1.0,
        risk_price=1.0,
    )
    runner.on_exposure(
        ExposureReport(
            basket_id="b",
            seq=1,
            hedge=spec,
            venue_epoch="",
            exposure={"BTC": 20_000.0},
            cause_ns=None,
            ts_ns=loop.now,
            catchup_s=3_600.0,
        )
    )
    loop.run(lambda: bool(runner.unsettled), START + 60 * NS)
    (coid,) = runner.unsettled
    assert START + 40 * NS < loop.now < START + 45 * NS  # answered `HedgeOrderOpen`
    (resting,) = exchange.open_orders("desk", "BTCUSDT")
    assert resting.client_order_id == coid and resting.side is Side.SELL
    assert runner.ledger.qty["BTCUSDT"] == 0.0
    loop.run(lambda: not runner.unsettled, START + 120 * NS)
    # Settled by the first try after the outage: the fourth, the tries 1, 2, 4 and 8 s apart.
    assert START + 50.5 * NS < loop.now < START + 59 * NS
    (held,) = exchange.positions("desk", loop.now)
    assert held.quantity == -resting.quantity
    assert runner.ledger.qty["BTCUSDT"] == float(held.quantity)
    # The hedge it wanted is what the order left: not sent a second time.
    loop.run(lambda: False, START + 120 * NS)
    assert runner.n == 1 and runner.statement("b", held=False).unsettled == []


LATE = Latency(median_ms=2_000.0, p99_ms=2_000.0)  # a lost order applied 2 s after receipt


def cross_unanswered(
    applied: bool, rest_ns: int = 0, delay: Latency | None = LATE
) -> tuple[Loop, SimExchange, list[tuple[int, object]]]:
    """A hedge buy (IOC, or resting `rest_ns`) whose answer the venue loses; `applied`: it
    places the order all the same, `delay` after receipt (Binance's -1007, the order applied
    within its window; None: at once)."""
    loop, exchange, desk = port(
        0.0,
        unknown_rate=1.0,
        unknown_applied=1.0 if applied else 0.0,
        unknown_apply_delay=delay,
    )
    return loop, exchange, buy(loop, desk, rest_ns)


def test_an_unanswered_order_applied_late_is_answered_with_its_fill() -> None:
    _, exchange, answers = cross_unanswered(applied=True)
    ((t, fill),) = answers
    # Not the lost answer: the desk gets the fill, which a read-back of the positions made
    # when the answer was lost would have missed (the order was placed 2 s later).
    assert isinstance(fill, HedgeFill)
    assert fill.report.status is OrderStatus.FILLED and fill.report.cum_filled == D("0.01")
    assert START + 2 * NS < t < START + 3 * NS
    (held,) = exchange.positions("desk", t)
    assert held.quantity == D("0.01")


def test_an_unanswered_order_the_venue_never_placed_is_reported_once_its_window_passed() -> None:
    _, exchange, answers = cross_unanswered(applied=False)
    ((t, error),) = answers
    # Unknown to the venue from the first cancel on, but only past the order window does
    # that say it never will be placed: the desk reads the positions back after it.
    assert isinstance(error, OutcomeUnknown)
    assert START + ORDER_WINDOW_NS <= t < START + ORDER_WINDOW_NS + 5 * NS
    assert exchange.positions("desk", t) == []


def test_a_resting_order_whose_answer_was_lost_is_cancelled_and_answered_with_its_end() -> None:
    # Placed at once, its answer lost: it rests at the bid. Cancelled before the desk hears of
    # it, which hears what the venue says of it (nothing filled), as live.
    _, exchange, answers = cross_unanswered(applied=True, rest_ns=REST_NS, delay=None)
    ((t, fill),) = answers
    assert isinstance(fill, HedgeFill)
    assert fill.report.status is OrderStatus.CANCELED and fill.report.cum_filled == 0
    assert t < START + NS  # the first cancel ended it, long before its rest was over
    assert exchange.open_orders("desk", "BTCUSDT") == []
