"""The simulated book's queue model: where the market's cancels fall relative to a resting
order (cautious: behind it; power-law: split by position), a resting order filled only once
the queue ahead of it is gone, and adverse selection on synthetic and replayed markets."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from cluster.config import load_cluster
from tests.support import DATA, needs_recorded_data
from venues.config import ReplayMarketConfig, SimVenueConfig, build_market
from venues.model import Liquidity, NewOrder, OrderStatus, OrderType, Side, TimeInForce
from venues.sim.book import MARKET, OrderBook, PowerQueueModel, RestingOrder
from venues.sim.exchange import AccountReport, AccountSpec, SimExchange

D = Decimal
BID = 1000
OURS = 1


def level(model: PowerQueueModel | None, ahead: int, behind: int) -> OrderBook:
    """A bid level of `ahead` background lots, our order of 5 lots, then `behind` lots."""
    book = OrderBook(queue_model=model)
    book.set_market_level(Side.SELL, BID + 10, 50)
    book.set_market_level(Side.BUY, BID, ahead)
    book.rest(RestingOrder(OURS, "acct", Side.BUY, BID, 5))
    book.set_market_level(Side.BUY, BID, ahead + behind)
    return book


def lots_ahead(book: OrderBook) -> int:
    """Sell lots a market taker needs before it reaches our order (our place in the queue)."""
    for n in range(0, 1_000):
        probe = _copy(book)
        matches, _ = probe.take(Side.SELL, n + 1, BID, MARKET)
        if any(m.maker_order_id == OURS for m in matches):
            return n
    raise AssertionError("never reached")


def _copy(book: OrderBook) -> OrderBook:
    import copy  # noqa: PLC0415

    return copy.deepcopy(book)


def test_the_cautious_model_takes_every_cancel_from_behind_our_order() -> None:
    book = level(None, ahead=10, behind=10)
    book.set_market_level(Side.BUY, BID, 14)  # 6 lots cancelled
    assert lots_ahead(book) == 10
    book.set_market_level(Side.BUY, BID, 6)  # 8 more: 4 behind, then 4 from ahead
    assert lots_ahead(book) == 6


def test_the_power_law_splits_a_cancel_by_our_place_in_the_queue() -> None:
    model = PowerQueueModel(3.0)
    assert model.ahead_share(10, 10) == 0.5
    assert model.ahead_share(1, 9) == pytest.approx(1 / 730)  # near the front: behind us
    assert model.ahead_share(9, 1) == pytest.approx(729 / 730)  # near the back: ahead
    book = level(model, ahead=10, behind=10)
    book.set_market_level(Side.BUY, BID, 14)  # 6 cancelled: half of them ahead
    assert lots_ahead(book) == 7
    assert book.level_qty(Side.BUY, BID) == 14 + 5


def test_fractions_of_a_lot_carry_so_the_split_adds_up() -> None:
    book = level(PowerQueueModel(3.0), ahead=10, behind=10)
    # One lot at a time: the expected share ahead goes 0.5, then grows as ahead shrinks
    # less than behind; over ten single-lot cancels the lots taken ahead are the sum of
    # those shares, rounded down, never a lot per cancel (all) or none (cautious).
    for total in range(19, 9, -1):
        book.set_market_level(Side.BUY, BID, total)
    ahead = lots_ahead(book)
    assert 3 <= ahead <= 7
    assert book.level_qty(Side.BUY, BID) == 10 + 5


@pytest.mark.parametrize("model", [None, PowerQueueModel(3.0)])
def test_a_resting_order_fills_only_once_the_queue_ahead_has_traded(
    model: PowerQueueModel | None,
) -> None:
    book = level(model, ahead=10, behind=10)
    matches, _ = book.take(Side.SELL, 10, BID, MARKET)
    assert all(m.maker_order_id != OURS for m in matches)
    matches, _ = book.take(Side.SELL, 1, BID, MARKET)
    assert [m.maker_order_id for m in matches] == [OURS]


@pytest.mark.parametrize("seed", range(5))
def test_a_book_with_no_participant_order_is_the_same_under_either_model(seed: int) -> None:
    rng = random.Random(seed)
    cautious, power = OrderBook(), OrderBook(queue_model=PowerQueueModel(3.0))
    for _ in range(2_000):
        if rng.random() < 0.1:
            taker, qty = rng.choice([Side.BUY, Side.SELL]), rng.randint(1, 20)
            assert cautious.take(taker, qty, None, MARKET) == power.take(taker, qty, None, MARKET)
            continue
        side = rng.choice([Side.BUY, Side.SELL])
        price = BID - rng.randint(0, 10) if side is Side.BUY else BID + 1 + rng.randint(0, 10)
        qty = rng.randint(0, 30)
        assert cautious.set_market_level(side, price, qty) == power.set_market_level(
            side, price, qty
        )
    for side in (Side.BUY, Side.SELL):
        assert cautious.depth(side, 50) == power.depth(side, 50)


# --- adverse selection on both market sources ------------------------------------------
def _exchange(cfg: SimVenueConfig, model: PowerQueueModel | None) -> SimExchange:
    start = 1_767_225_600 * 1_000_000_000
    market = build_market(cfg, start, origin_ns=start)
    exchange = SimExchange("v", market, start_ns=start, queue_model=model)
    exchange.open_account(
        AccountSpec(
            account_id="a",
            balances={"USDT": D(10_000_000)},
            spot_balances={"USDT": D(10_000_000)},
        )
    )
    return exchange


def _rest_bids_and_watch(exchange: SimExchange, symbol: str, n: int) -> list[float]:
    """Post `n` bids at the touch a second apart, each for one lot and cancelled after 20 s
    if not filled; for each that fills (as a maker), the mid 1 s after the fill less the bid
    price, in ticks (negative: the price went on through the bid)."""
    inst = exchange.instruments[symbol]
    t = exchange.now_ns + 10 * 1_000_000_000
    after: list[float] = []
    for i in range(n):
        exchange.advance(t)
        exchange.drain()
        top = exchange.book_snapshot(symbol, 1, t)
        if not top.bids or not top.asks:
            t += 1_000_000_000
            continue
        price = top.bids[0][0]
        assert price is not None
        coid = f"q{i}"
        exchange.place(
            "a",
            NewOrder(
                client_order_id=coid,
                symbol=symbol,
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=_min_qty(inst.lot, inst.min_notional, price),
                price=price,
                time_in_force=TimeInForce.POST_ONLY,
            ),
            t,
        )
        filled_at = None
        for step in range(1, 2_001):
            now = t + step * 10_000_000
            exchange.advance(now)
            for event in exchange.drain():
                if (
                    isinstance(event, AccountReport)
                    and event.report.client_order_id == coid
                    and event.report.status is OrderStatus.FILLED
                ):
                    assert event.report.last_fill is not None
                    assert event.report.last_fill.liquidity is Liquidity.MAKER
                    filled_at = now
            if filled_at is not None:
                break
        if filled_at is None:
            exchange.cancel("a", symbol, coid, t + 20 * 1_000_000_000)
        else:
            exchange.advance(filled_at + 1_000_000_000)
            exchange.drain()
            mid = exchange.book_snapshot(symbol, 1, filled_at + 1_000_000_000).mid
            assert mid is not None
            after.append(float((mid - price) / inst.tick))
        t = max(exchange.now_ns, t) + 1_000_000_000
    return after


def _min_qty(lot: Decimal, min_notional: Decimal, price: Decimal) -> Decimal:
    n = max(1, math.ceil(min_notional / (price * lot)))
    return lot * n


@pytest.mark.parametrize("model", [None, PowerQueueModel(3.0)])
def test_a_resting_bid_fills_as_the_synthetic_price_moves_through_it(
    model: PowerQueueModel | None,
) -> None:
    cfg = load_cluster("cluster/examples/venues.toml").venues.venues["alpha"]
    assert isinstance(cfg, SimVenueConfig)
    after = _rest_bids_and_watch(_exchange(cfg, model), "ETHUSDT", 40)
    assert len(after) >= 10, f"only {len(after)} of 40 bids filled"
    # Adverse selection: a bid fills when the market sells through it, so the mid just
    # after a fill is below the bid on average (a fill at random would be above it).
    assert sum(after) / len(after) < 0, after


@needs_recorded_data
@pytest.mark.parametrize("model", [None, PowerQueueModel(3.0)])
def test_a_resting_bid_fills_as_the_replayed_price_moves_through_it(
    model: PowerQueueModel | None,
) -> None:
    cfg = SimVenueConfig(
        market=ReplayMarketConfig(kind="usdm", dir=str(DATA)), instruments=["ETHUSDT"]
    )
    after = _rest_bids_and_watch(_exchange(cfg, model), "ETHUSDT", 40)
    assert len(after) >= 10, f"only {len(after)} of 40 bids filled"
    assert sum(after) / len(after) < 0, after
