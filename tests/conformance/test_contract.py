"""The venue contract (DESIGN §7, docs/venues.md "The venue contract"), run against every
adapter on the same simulated venue over real sockets: what legato's actors rely on of any
`VenueClient`, whichever exchange and library is behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tests.conformance.rig import ADAPTERS, KEY, SECRET, Rig, rig
from tests.support import until
from venues.client import VenueClient
from venues.errors import AuthError, OrderRejected, RateLimited, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookTicker,
    ExecutionReport,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    MarketTrade,
    OrderStatus,
    RejectReason,
    Side,
    TimeInForce,
)

WAIT_S = 10.0


@pytest.fixture(params=ADAPTERS)
async def r(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with rig(request.param) as made:
        yield made


@pytest.fixture
async def client(r: Rig) -> AsyncIterator[VenueClient]:
    c = r.client()
    await c.start()
    try:
        yield c
    finally:
        await c.close()


class Stream:
    """A client's execution reports as they arrive."""

    def __init__(self) -> None:
        self.items: list[ExecutionReport] = []

    async def follow(self, client: VenueClient) -> None:
        async for report in client.execution_reports():
            self.items.append(report)

    def saw(self, coid: str, status: OrderStatus) -> bool:
        return any(x.client_order_id == coid and x.status is status for x in self.items)


@pytest.fixture
async def stream(client: VenueClient) -> AsyncIterator[Stream]:
    s = Stream()
    task = asyncio.create_task(s.follow(client))
    try:
        yield s
    finally:
        task.cancel()


async def test_it_is_a_venue_client_that_lists_its_market_and_says_what_it_can_do(
    r: Rig, client: VenueClient
) -> None:
    assert isinstance(client, VenueClient)
    listed = {i.symbol: i for i in await client.instruments()}
    assert listed[r.market.symbol].kind is r.market.kind
    caps = client.capabilities
    assert r.market.kind in caps.instrument_kinds
    assert caps.ack_semantics is client.ack_semantics is not AckKind.UNKNOWN
    assert caps.batch_size >= 1
    assert caps.client_ids.accepts(r.market.symbol.lower() + "-eth-1")
    assert client.typical_rtt_ns is not None and client.typical_rtt_ns >= 0
    book = await client.order_book(r.market.symbol, 5)
    assert (book.best_bid, book.best_ask) == (r.market.bid, r.market.ask)


async def test_an_ioc_that_crosses_fills_and_query_trades_and_stream_agree(
    r: Rig, client: VenueClient, stream: Stream
) -> None:
    m = r.market
    answer = await client.place(m.order("c-ioc-1", Side.BUY, m.ask, tif=TimeInForce.IOC))
    assert answer.client_order_id == "c-ioc-1" and answer.ack_kind is not AckKind.UNKNOWN
    await until(lambda: stream.saw("c-ioc-1", OrderStatus.FILLED), WAIT_S)
    done = await client.query(m.symbol, "c-ioc-1")
    assert (done.status, done.cum_filled, done.avg_price) == (OrderStatus.FILLED, m.qty, m.ask)
    assert isinstance(done.order_id, str) and done.order_id
    fills = await client.trades(m.symbol, done.order_id)
    assert sum(f.quantity for f in fills) == m.qty
    assert all(isinstance(f.trade_id, str) and f.trade_id for f in fills)
    assert all(f.liquidity is Liquidity.TAKER and f.fee > 0 and f.fee_asset for f in fills)
    assert sum(f.fee for f in fills) == done.cum_fee


async def test_an_ioc_larger_than_the_touch_fills_what_is_there_and_expires_the_rest(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    big = m.ask_qty * 2
    await client.place(m.order("c-part-1", Side.BUY, m.ask, qty=big, tif=TimeInForce.IOC))
    done = await client.query(m.symbol, "c-part-1")
    assert done.status is OrderStatus.EXPIRED
    assert (done.cum_filled, done.quantity, done.open_qty) == (m.ask_qty, big, 0)


async def test_a_resting_order_is_listed_queried_and_cancelled_by_its_client_id(
    r: Rig, client: VenueClient, stream: Stream
) -> None:
    m = r.market
    placed = await client.place(m.order("c-rest-1", Side.BUY, m.far_bid))
    assert placed.status in (OrderStatus.NEW, OrderStatus.PENDING_NEW)
    await until(lambda: stream.saw("c-rest-1", OrderStatus.NEW), WAIT_S)
    assert [o.client_order_id for o in await client.open_orders(m.symbol)] == ["c-rest-1"]
    cancelled = await client.cancel(m.symbol, "c-rest-1")
    assert cancelled.status is OrderStatus.CANCELED and cancelled.cum_filled == 0
    assert (await client.query(m.symbol, "c-rest-1")).status is OrderStatus.CANCELED
    assert await client.open_orders(m.symbol) == []
    await until(lambda: stream.saw("c-rest-1", OrderStatus.CANCELED), WAIT_S)


async def test_a_post_only_order_that_would_cross_is_refused_and_one_that_rests_is_not(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    assert client.capabilities.post_only
    crossing = m.order("c-po-1", Side.BUY, m.ask, tif=TimeInForce.POST_ONLY)
    try:
        answer = await client.place(crossing)
    except OrderRejected as e:
        assert e.reason is RejectReason.POST_ONLY_WOULD_CROSS
    else:  # refused after acceptance (Binance USD-M's GTX expires it): nothing filled
        done = await client.query(m.symbol, "c-po-1")
        assert done.status in (OrderStatus.REJECTED, OrderStatus.EXPIRED), answer
        assert done.cum_filled == 0
    resting = await client.place(m.order("c-po-2", Side.BUY, m.bid, tif=TimeInForce.POST_ONLY))
    assert resting.status in (OrderStatus.NEW, OrderStatus.PENDING_NEW)
    assert (await client.query(m.symbol, "c-po-2")).status is OrderStatus.NEW


async def test_a_batchs_orders_succeed_or_fail_each_on_its_own(r: Rig, client: VenueClient) -> None:
    m = r.market
    off_lot = m.qty + m.lot / 2  # not on the lot grid
    orders = [
        m.order("c-bat-1", Side.BUY, m.far_bid),
        m.order("c-bat-2", Side.BUY, m.far_bid, qty=off_lot),
        m.order("c-bat-3", Side.BUY, m.far_bid),
    ]
    first, second, third = await client.place_batch(orders)
    assert isinstance(first, ExecutionReport) and first.client_order_id == "c-bat-1"
    assert isinstance(second, VenueError)
    assert isinstance(third, ExecutionReport) and third.client_order_id == "c-bat-3"
    listed = sorted(o.client_order_id for o in await client.open_orders(m.symbol))
    assert listed == ["c-bat-1", "c-bat-3"]


async def test_reduce_only_is_refused_where_it_would_grow_the_position_or_is_not_offered(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    order = m.order("c-ro-1", Side.SELL, m.bid, tif=TimeInForce.IOC, reduce_only=True)
    if not client.capabilities.reduce_only:
        with pytest.raises(VenueError, match="reduce-only"):
            await client.place(order)
        assert "c-ro-1" not in r.submitted  # refused before anything was sent
        return
    try:
        answer = await client.place(order)  # no position: selling would open a short
    except OrderRejected as e:
        assert e.reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    else:
        assert answer.status is OrderStatus.REJECTED and answer.cum_filled == 0
    assert await client.positions() == [] or all(p.quantity == 0 for p in await client.positions())


async def test_an_order_whose_answer_is_lost_is_resolved_by_query_never_sent_again(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    r.set_profile(unknown_rate=1.0, unknown_applied=1.0)  # applied, the answer lost
    answer = await client.place(m.order("c-unk-1", Side.BUY, m.far_bid))
    assert answer.ack_kind is AckKind.UNKNOWN or answer.status is OrderStatus.NEW
    r.set_profile(unknown_rate=0.0)
    found = await client.query(m.symbol, "c-unk-1")
    assert found.status is OrderStatus.NEW and found.client_order_id == "c-unk-1"
    assert r.submitted.count("c-unk-1") == 1


async def test_the_stream_comes_back_after_a_drop_and_misses_nothing(
    r: Rig, client: VenueClient, stream: Stream
) -> None:
    if not r.has_connection:
        pytest.skip(f"{r.adapter}: its reports come over no connection that could drop")
    m = r.market
    await client.place(m.order("c-drop-1", Side.BUY, m.far_bid))
    await until(lambda: stream.saw("c-drop-1", OrderStatus.NEW), WAIT_S)
    assert await r.drop_streams() >= 1
    # Cancelled while the stream may be down: the report comes by the stream or its resync.
    r.venue.exchange.cancel("conf", m.symbol, "c-drop-1", r.venue.now_ns())
    await until(lambda: stream.saw("c-drop-1", OrderStatus.CANCELED), WAIT_S)
    await client.place(m.order("c-drop-2", Side.BUY, m.ask, tif=TimeInForce.IOC))
    await until(lambda: stream.saw("c-drop-2", OrderStatus.FILLED), WAIT_S)


async def test_positions_and_collateral_follow_the_fills(r: Rig, client: VenueClient) -> None:
    m = r.market
    before = await client.account()
    await client.place(m.order("c-pos-1", Side.BUY, m.ask, tif=TimeInForce.IOC))
    done = await client.query(m.symbol, "c-pos-1")
    assert done.status is OrderStatus.FILLED
    after = await client.account()
    if m.kind is InstrumentKind.PERP:
        held = {p.symbol: p.quantity for p in await client.positions()}
        assert held[m.symbol] == m.qty
        assert after.position_initial_margin > before.position_initial_margin
        assert after.wallet_balance == before.wallet_balance - done.cum_fee
    else:  # a spot wallet: the asset bought, less a fee charged in it; the quote paid
        assert await client.positions() == []
        base = m.symbol.removesuffix("USDT")

        def wallet(snapshot: AccountSnapshot, asset: str) -> Decimal:
            return sum((b.wallet for b in snapshot.spot_balances if b.asset == asset), Decimal(0))

        fee_in_base = done.cum_fee if done.fee_asset == base else Decimal(0)
        assert wallet(after, base) - wallet(before, base) == m.qty - fee_in_base
        assert wallet(before, "USDT") - wallet(after, "USDT") >= m.qty * m.ask
        assert after.balances == [] and after.available_margin == 0


async def test_bad_credentials_are_an_auth_error_that_never_shows_the_secret(r: Rig) -> None:
    if not r.authenticates:
        pytest.skip(f"{r.adapter}: an in-process client has no credentials")
    wrong = "wrong-secret-" + SECRET[::-1]
    c = r.client(KEY, wrong)
    try:
        with pytest.raises(AuthError) as refused:
            await c.start()
            await c.account()
        assert wrong not in str(refused.value) and wrong not in repr(c)
    finally:
        await c.close()
    assert r.submitted == []


async def test_past_the_order_rate_limit_the_venue_answers_rate_limited(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    r.set_profile(orders_per_minute=2)
    await client.place(m.order("c-rate-1", Side.BUY, m.far_bid))
    await client.place(m.order("c-rate-2", Side.BUY, m.far_bid))
    with pytest.raises(RateLimited) as limited:
        await client.place(m.order("c-rate-3", Side.BUY, m.far_bid))
    assert limited.value.retry_after_s is None or limited.value.retry_after_s > 0
    assert [o.client_order_id for o in await client.open_orders(m.symbol)] == [
        "c-rate-1",
        "c-rate-2",
    ]


async def test_market_events_carry_the_touch_and_the_trades_of_the_symbol(
    r: Rig, client: VenueClient
) -> None:
    m = r.market
    events: list[MarketEvent] = []

    async def follow() -> None:
        async for event in client.market_events([m.symbol]):
            events.append(event)

    task = asyncio.create_task(follow())
    try:
        # Until the subscription is live, a move may go unseen: move the book until one shows.
        bid, ask = m.bid - m.tick, m.ask - m.tick

        def moved() -> bool:
            r.move_book(bid, ask, m.ask_qty)
            return any(isinstance(e, BookTicker) and (e.bid, e.ask) == (bid, ask) for e in events)

        await until(moved, WAIT_S)
        r.print_trade(Side.SELL, bid, m.qty)
        await until(lambda: any(isinstance(e, MarketTrade) for e in events), WAIT_S)
        trade = next(e for e in events if isinstance(e, MarketTrade))
        assert (trade.symbol, trade.price, trade.aggressor) == (m.symbol, bid, Side.SELL)
        assert all(e.symbol == m.symbol for e in events)
    finally:
        task.cancel()
