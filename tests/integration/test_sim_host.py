"""The in-process venue in real time: ack semantics, faults, latency, streams and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from tests.support import until as wait_for_condition
from venues.errors import (
    OrderRejected,
    RateLimited,
    UnknownOrder,
    VenueUnavailable,
)
from venues.model import (
    AckKind,
    BookTicker,
    ExecutionReport,
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountReport, AccountSpec, SimExchange
from venues.sim.host import SimVenue, SimVenueClient
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.profile import Latency, Outage, VenueProfile

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]
NS_PER_MS = 1_000_000
TINY = Latency(median_ms=0.1, p99_ms=0.5)
WAIT_S = 3.0  # deadline for anything that should happen within milliseconds


def profile(**changes: Any) -> VenueProfile:
    """A venue whose every latency is a fraction of a millisecond, unless changed."""
    base: dict[str, Any] = {
        "request": TINY,
        "processing": TINY,
        "response": TINY,
        "stream_lag": TINY,
    }
    return VenueProfile(**(base | changes))


def btc(p: str) -> int:
    return int(D(p) / BTC.tick)


def order(
    coid: str,
    side: Side,
    qty: str,
    price: str | None = None,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    symbol: str = "BTCUSDT",
) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
    )


class Reader:
    """Reads a stream in the background so that a test can wait on what has arrived."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self.ended = False
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                async with self._changed:
                    self.items.append(item)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self.ended = True
                self._changed.notify_all()

    async def wait(self, done: Callable[[list[Any]], bool], timeout: float = WAIT_S) -> list[Any]:
        """The items, once `done(items)` holds; fails after `timeout` seconds."""

        async def satisfied() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: done(self.items) or self.ended)

        await asyncio.wait_for(satisfied(), timeout)
        if self.task.done() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]
        assert done(self.items), f"stream ended before the condition held: {self.items}"
        return self.items

    def reports(self, coid: str) -> list[ExecutionReport]:
        return [r for r in self.items if r.client_order_id == coid]

    async def report(
        self, coid: str, status: OrderStatus, timeout: float = WAIT_S
    ) -> ExecutionReport:
        """The first report of order `coid` in `status`, waiting for it if need be."""
        await self.wait(lambda _: any(r.status is status for r in self.reports(coid)), timeout)
        return next(r for r in self.reports(coid) if r.status is status)


async def until(condition: Callable[[], Any], timeout: float = WAIT_S) -> float:
    return await wait_for_condition(condition, timeout)


_READERS: list[Reader] = []


def read(stream: AsyncIterator[Any]) -> Reader:
    """Read `stream` in the background; the venue fixture cleans up after the test."""
    reader = Reader(stream)
    _READERS.append(reader)
    return reader


Venue = Callable[..., Awaitable[SimVenue]]


@pytest.fixture
async def make_venue() -> AsyncIterator[Venue]:
    """Start venues on a scripted book (BTC 59999.0 / 60001.0, 1 BTC each side); stop them.

    Accounts: alice and bob with 1M USDT, poor with 100 USDT.
    """
    venues: list[SimVenue] = []
    _READERS.clear()

    async def make(prof: VenueProfile, **kwargs: Any) -> SimVenue:
        market = ScriptedMarket([BTC, ETH])
        market.push(
            DepthUpdate(1, "BTCUSDT", [(btc("59999.0"), 1000)], [(btc("60001.0"), 1000)]),
            DepthUpdate(1, "ETHUSDT", [(260_000, 10_000)], [(260_001, 10_000)]),
        )
        exchange = SimExchange("simx", market)
        exchange.open_account(AccountSpec(account_id="alice", balances={"USDT": D(1_000_000)}))
        exchange.open_account(AccountSpec(account_id="bob", balances={"USDT": D(1_000_000)}))
        exchange.open_account(AccountSpec(account_id="poor", balances={"USDT": D(100)}))
        venue = SimVenue(exchange, prof, seed=11, advance_every_s=0.001, **kwargs)
        await venue.start()
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        await venue.stop()  # ends every stream, and so every reader
    for reader in _READERS:
        reader.task.cancel()  # a reader of a stream the test left open by mistake


# --- acknowledgements --------------------------------------------------------------------
async def test_result_ack_carries_the_fills(make_venue: Venue) -> None:
    venue = await make_venue(profile(ack=AckKind.RESULT))
    client = venue.client("alice")
    stream = read(client.execution_reports())
    ack = await client.place(order("r1", Side.BUY, "0.5"))
    assert ack.ack_kind is AckKind.RESULT
    assert ack.status is OrderStatus.FILLED
    assert (ack.cum_filled, ack.avg_price) == (D("0.5"), D("60001.0"))
    assert ack.cum_fee == D("0.5") * D("60001.0") * D("0.0005")
    assert ack.order_id.isdigit()
    assert ack.venue_receive_ns is not None and ack.venue_accept_ns is not None
    assert ack.venue_receive_ns <= ack.venue_accept_ns
    filled = await stream.report("r1", OrderStatus.FILLED)
    assert [r.status for r in stream.reports("r1")] == [OrderStatus.NEW, OrderStatus.FILLED]
    assert filled.cum_filled == ack.cum_filled
    assert client.ack_semantics is AckKind.RESULT


async def test_accepted_ack_shows_new_and_the_stream_brings_the_fill(make_venue: Venue) -> None:
    venue = await make_venue(profile(ack=AckKind.ACCEPTED))
    client = venue.client("alice")
    stream = read(client.execution_reports())
    ack = await client.place(order("a1", Side.BUY, "0.5"))
    assert ack.ack_kind is AckKind.ACCEPTED
    assert ack.status is OrderStatus.NEW
    assert (ack.cum_filled, ack.avg_price, ack.cum_fee, ack.last_fill) == (0, None, 0, None)
    assert ack.order_id.isdigit()
    filled = await stream.report("a1", OrderStatus.FILLED)
    assert (filled.cum_filled, filled.avg_price) == (D("0.5"), D("60001.0"))
    assert filled.order_id == ack.order_id
    assert (await client.query("BTCUSDT", "a1")).status is OrderStatus.FILLED

    # A FOK that cannot fill is still only "accepted" in the answer; the stream says EXPIRED.
    fok = await client.place(order("a2", Side.BUY, "5", "60001.0", tif=TimeInForce.FOK))
    assert (fok.status, fok.reject_reason, fok.reject_message) == (OrderStatus.NEW, None, None)
    expired = await stream.report("a2", OrderStatus.EXPIRED)
    assert expired.reject_reason is RejectReason.FOK_NOT_FILLABLE


async def test_receipt_ack_comes_first_and_a_reject_arrives_on_the_stream(
    make_venue: Venue,
) -> None:
    venue = await make_venue(profile(ack=AckKind.RECEIPT))
    poor = venue.client("poor")
    stream = read(poor.execution_reports())
    ack = await poor.place(order("big", Side.BUY, "1", "60000.0"))
    assert ack.ack_kind is AckKind.RECEIPT
    assert ack.status is OrderStatus.PENDING_NEW
    assert ack.cum_filled == 0
    assert ack.venue_receive_ns is not None
    rejected = await stream.report("big", OrderStatus.REJECTED)
    assert rejected.reject_reason is RejectReason.INSUFFICIENT_MARGIN
    assert rejected.reject_message is not None and "USDT" in rejected.reject_message
    with pytest.raises(UnknownOrder):
        await poor.query("BTCUSDT", "big")

    alice = venue.client("alice")
    stream = read(alice.execution_reports())
    ack = await alice.place(order("ok", Side.BUY, "0.2"))
    assert (ack.ack_kind, ack.status) == (AckKind.RECEIPT, OrderStatus.PENDING_NEW)
    filled = await stream.report("ok", OrderStatus.FILLED)
    assert [r.status for r in stream.reports("ok")] == [OrderStatus.NEW, OrderStatus.FILLED]
    assert filled.cum_filled == D("0.2")


# --- faults ------------------------------------------------------------------------------
async def test_unknown_outcome_that_was_applied_is_found_by_query(make_venue: Venue) -> None:
    venue = await make_venue(profile(ack=AckKind.RESULT, unknown_rate=1.0, unknown_applied=1.0))
    client = venue.client("alice")
    stream = read(client.execution_reports())
    ack = await client.place(order("u1", Side.BUY, "0.3"))
    assert (ack.ack_kind, ack.status, ack.cum_filled) == (
        AckKind.UNKNOWN,
        OrderStatus.PENDING_NEW,
        0,
    )
    found = await client.query("BTCUSDT", "u1")
    assert (found.status, found.cum_filled) == (OrderStatus.FILLED, D("0.3"))
    await stream.report("u1", OrderStatus.FILLED)
    # Sending it again cannot place it twice.
    venue.conditions.set_profile(profile(ack=AckKind.RESULT))
    with pytest.raises(OrderRejected) as info:
        await client.place(order("u1", Side.BUY, "0.3"))
    assert info.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    (position,) = await client.positions()
    assert position.quantity == D("0.3")


async def test_unknown_outcome_that_was_not_applied_is_not_found(make_venue: Venue) -> None:
    venue = await make_venue(profile(ack=AckKind.ACCEPTED, unknown_rate=1.0, unknown_applied=0.0))
    client = venue.client("alice")
    ack = await client.place(order("u2", Side.BUY, "0.3"))
    assert (ack.ack_kind, ack.status) == (AckKind.UNKNOWN, OrderStatus.PENDING_NEW)
    with pytest.raises(UnknownOrder):
        await client.query("BTCUSDT", "u2")
    assert await client.positions() == []
    assert await client.open_orders() == []
    # Now it is safe to send again, and it is placed once.
    venue.conditions.set_profile(profile(ack=AckKind.RESULT))
    again = await client.place(order("u2", Side.BUY, "0.3"))
    assert again.status is OrderStatus.FILLED
    (position,) = await client.positions()
    assert position.quantity == D("0.3")


async def test_a_lost_answer_hides_a_reject_too(make_venue: Venue) -> None:
    """The answer is lost whatever it said: the client learns the outcome only by query."""
    venue = await make_venue(profile(ack=AckKind.RESULT, unknown_rate=1.0, unknown_applied=1.0))
    poor = venue.client("poor")
    ack = await poor.place(order("lost", Side.BUY, "1", "60000.0"))
    assert (ack.ack_kind, ack.status) == (AckKind.UNKNOWN, OrderStatus.PENDING_NEW)
    with pytest.raises(UnknownOrder):
        await poor.query("BTCUSDT", "lost")


async def test_forced_outage_refuses_requests_then_service_resumes(make_venue: Venue) -> None:
    venue = await make_venue(profile())
    client = venue.client("alice")
    venue.conditions.start_outage(venue.now_ns(), 0.15)
    with pytest.raises(VenueUnavailable) as info:
        await client.place(order("o1", Side.BUY, "0.1"))
    assert info.value.code == 503
    assert "outage" in info.value.message
    with pytest.raises(VenueUnavailable):
        await client.account()
    with pytest.raises(VenueUnavailable):
        await client.place_batch([order("o2", Side.BUY, "0.1")])

    async def up() -> bool:
        try:
            await client.server_time_ns()
        except VenueUnavailable:
            return False
        return True

    assert await until(up) >= 0.05
    assert (await client.place(order("o3", Side.BUY, "0.1"))).order_id.isdigit()
    assert [o.client_order_id for o in await client.open_orders()] == []
    with pytest.raises(UnknownOrder):
        await client.query("BTCUSDT", "o1")


async def test_profile_outage_window_and_manual_stop(make_venue: Venue) -> None:
    venue = await make_venue(profile(outages=(Outage(start_s=0.0, duration_s=0.2, mode="refuse"),)))
    client = venue.client("alice")
    with pytest.raises(VenueUnavailable, match="refused"):
        await client.order_book("BTCUSDT")

    async def up() -> bool:
        try:
            await client.order_book("BTCUSDT")
        except VenueUnavailable:
            return False
        return True

    await until(up)
    venue.conditions.start_outage(venue.now_ns(), 60.0)
    assert not await up()
    venue.conditions.stop_outage()
    assert await up()


async def test_rate_limit_answers_with_retry_after(make_venue: Venue) -> None:
    venue = await make_venue(profile(orders_per_minute=3))
    client = venue.client("alice")
    for k in range(2):
        await client.place(order(f"l{k}", Side.BUY, "0.1", "59000.0"))
    results = await client.place_batch(
        [order("l2", Side.BUY, "0.1", "59000.0"), order("l3", Side.BUY, "0.1", "59000.0")]
    )
    assert sum(isinstance(r, ExecutionReport) for r in results) == 1
    (limited,) = [r for r in results if isinstance(r, RateLimited)]
    assert limited.retry_after_s is not None and 59.0 < limited.retry_after_s <= 60.0
    with pytest.raises(RateLimited) as info:
        await client.place(order("l4", Side.BUY, "0.1", "59000.0"))
    assert info.value.retry_after_s is not None and 59.0 < info.value.retry_after_s <= 60.0
    assert "3/min" in info.value.message
    assert len(await client.open_orders()) == 3  # queries are not orders


async def test_injected_rejects(make_venue: Venue) -> None:
    venue = await make_venue(profile(reject_rate=1.0))
    client = venue.client("alice")
    with pytest.raises(OrderRejected) as info:
        await client.place(order("x1", Side.BUY, "0.1"))
    assert info.value.reason is RejectReason.INJECTED
    assert info.value.client_order_id == "x1"
    with pytest.raises(UnknownOrder):
        await client.query("BTCUSDT", "x1")
    assert await client.positions() == []


# --- latency and clocks ------------------------------------------------------------------
async def test_latency_is_applied_to_answers_and_refusals(make_venue: Venue) -> None:
    fixed = profile(
        ack=AckKind.RESULT,
        request=Latency(median_ms=20.0, p99_ms=20.0),
        processing=Latency(median_ms=1.0, p99_ms=1.0),
        response=Latency(median_ms=20.0, p99_ms=20.0),
    )
    venue = await make_venue(fixed)
    client = venue.client("alice")
    floor = 0.041

    async def timed(call: Awaitable[Any]) -> tuple[float, Any]:
        """Seconds a call took, and its result or the error it raised."""
        start = time.monotonic()
        try:
            result = await call
        except Exception as e:
            result = e
        return time.monotonic() - start, result

    sent = time.time_ns()
    took, ack = await timed(client.place(order("t1", Side.BUY, "0.1")))
    assert floor <= took < 1.0
    assert ack.status is OrderStatus.FILLED
    assert ack.venue_receive_ns - sent >= 20 * NS_PER_MS
    assert ack.venue_accept_ns - ack.venue_receive_ns >= 1 * NS_PER_MS

    took, refused = await timed(client.place(order("t2", Side.BUY, "0.1", "1.0")))
    assert isinstance(refused, OrderRejected)
    assert floor <= took < 1.0, "a refusal travels back to the client too"

    took, book = await timed(client.order_book("BTCUSDT"))
    assert floor <= took < 1.0
    assert book.best_ask == D("60001.0")

    took, missing = await timed(client.query("BTCUSDT", "nope"))
    assert isinstance(missing, UnknownOrder)
    assert floor <= took < 1.0

    took, _ = await timed(client.place_batch([order("t3", Side.BUY, "0.1")]))
    assert floor <= took < 1.0


async def test_venue_clock_offset_shows_in_server_time(make_venue: Venue) -> None:
    venue = await make_venue(profile(clock_offset_ms=-20.0))
    client = venue.client("alice")
    best = None
    for _ in range(5):  # keep the sample with the smallest round trip, as a clock sync would
        t0 = time.time_ns()
        server = await client.server_time_ns()
        t1 = time.time_ns()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, server - (t0 + t1) // 2)
    assert best is not None
    rtt, offset = best
    assert abs(offset - (-20 * NS_PER_MS)) <= rtt // 2 + 2 * NS_PER_MS
    ack = await client.place(order("c1", Side.BUY, "0.1"))
    assert ack.venue_receive_ns is not None
    assert ack.venue_receive_ns < time.time_ns() - 15 * NS_PER_MS


# --- batches -----------------------------------------------------------------------------
async def test_batch_item_fails_alone(make_venue: Venue) -> None:
    venue = await make_venue(profile(ack=AckKind.RESULT))
    client = venue.client("alice")
    results = await client.place_batch(
        [
            order("b1", Side.BUY, "0.1", "59000.0"),
            order("b2", Side.BUY, "0.1", "59000.05"),  # off tick
            order("b3", Side.BUY, "0.2"),
        ]
    )
    assert len(results) == 3
    first, bad, third = results
    assert isinstance(first, ExecutionReport) and first.status is OrderStatus.NEW
    assert isinstance(bad, OrderRejected) and bad.reason is RejectReason.PRICE_OFF_TICK
    assert bad.client_order_id == "b2"
    assert isinstance(third, ExecutionReport) and third.status is OrderStatus.FILLED
    assert [o.client_order_id for o in await client.open_orders("BTCUSDT")] == ["b1"]
    with pytest.raises(UnknownOrder):
        await client.query("BTCUSDT", "b2")


# --- streams -----------------------------------------------------------------------------
async def test_stream_keeps_each_accounts_order_despite_random_lag(make_venue: Venue) -> None:
    lagging = profile(ack=AckKind.RESULT, stream_lag=Latency(median_ms=0.5, p99_ms=25.0))
    venue = await make_venue(lagging)
    # What the exchange emitted, in order: the stream must deliver exactly this.
    emitted: list[Any] = []
    drain = venue.exchange.drain

    def recording_drain() -> list[Any]:
        out = drain()
        emitted.extend(out)
        return out

    venue.exchange.drain = recording_drain  # type: ignore[method-assign]
    alice, bob = venue.client("alice"), venue.client("bob")
    stream = read(alice.execution_reports())
    asks = [
        order(f"s{k}-{j}", Side.SELL, "0.05", f"60000.{k}") for k in range(1, 10) for j in range(3)
    ]
    bids = [order(f"b{k}", Side.BUY, "0.05", f"59999.{k}") for k in range(1, 6)]
    await asyncio.gather(*(alice.place(o) for o in asks + bids))
    await bob.place(order("sweep", Side.BUY, "1.5"))  # fills all of alice's asks at once
    await asyncio.gather(*(alice.cancel("BTCUSDT", o.client_order_id) for o in bids))
    await alice.place(order("last", Side.SELL, "0.2"))
    expected = [
        e.report for e in emitted if isinstance(e, AccountReport) and e.account_id == "alice"
    ]
    assert len(expected) == 32 + 27 + 5 + 2
    got = await stream.wait(lambda items: len(items) >= len(expected))
    assert got == expected
    per_order: dict[str, list[ExecutionReport]] = defaultdict(list)
    for r in got:
        per_order[r.client_order_id].append(r)
    for coid, seq in per_order.items():
        assert seq[0].status is OrderStatus.NEW, coid
        assert all(a.cum_filled <= b.cum_filled for a, b in pairwise(seq)), coid
        assert seq[-1].status.is_terminal, coid


async def test_stream_events_travel_back_as_answers_do(make_venue: Venue) -> None:
    # A venue 30 ms away delivers its streams 30 ms late too: an execution report, emitted
    # when the order is accepted, reaches the client its stream lag and the trip back later.
    def fixed(ms: float) -> Latency:
        return Latency(median_ms=ms, p99_ms=ms)

    distant = profile(
        ack=AckKind.RESULT,
        request=fixed(20.0),
        processing=fixed(1.0),
        response=fixed(30.0),
        stream_lag=fixed(2.0),
    )
    venue = await make_venue(distant)
    client = venue.client("alice")
    reports = client.execution_reports()
    sent = time.monotonic()
    placing = asyncio.ensure_future(client.place(order("d1", Side.BUY, "0.1")))
    first = await asyncio.wait_for(anext(reports), WAIT_S)
    arrived_s = time.monotonic() - sent
    ack = await placing
    assert first.client_order_id == "d1" and ack.status is OrderStatus.FILLED
    # Sent, 20 ms there, 1 ms to accept, 2 ms stream lag, 30 ms back: 53 ms at the least.
    assert arrived_s >= 0.053, arrived_s


async def test_market_events_deliver_tickers_and_trades_for_subscribed_symbols(
    make_venue: Venue,
) -> None:
    venue = await make_venue(profile())
    market = venue.exchange.market
    assert isinstance(market, ScriptedMarket)
    client = venue.client("alice")
    events = read(client.market_events(["BTCUSDT"]))
    # The generator subscribes when it first runs; wait for that rather than guessing.
    await until(lambda: venue._market.get("BTCUSDT"))

    market.push(DepthUpdate(1, "ETHUSDT", [(259_990, 5)], []))
    market.push(DepthUpdate(1, "BTCUSDT", [(btc("60000.0"), 300)], []))
    tickers = await events.wait(lambda xs: any(isinstance(x, BookTicker) for x in xs))
    ticker = next(x for x in tickers if isinstance(x, BookTicker))
    assert (ticker.symbol, ticker.bid, ticker.bid_qty, ticker.ask) == (
        "BTCUSDT",
        D("60000.0"),
        D("0.3"),
        D("60001.0"),
    )
    market.push(TradePrint(1, "BTCUSDT", Side.SELL, btc("60000.0"), 100))
    items = await events.wait(lambda xs: any(isinstance(x, MarketTrade) for x in xs))
    trade = next(x for x in items if isinstance(x, MarketTrade))
    assert (trade.symbol, trade.price, trade.quantity, trade.aggressor) == (
        "BTCUSDT",
        D("60000.0"),
        D("0.1"),
        Side.SELL,
    )
    # Our own order that improves the bid is on the ticker too.
    await client.place(order("inside", Side.BUY, "0.4", "60000.5"))
    items = await events.wait(
        lambda xs: any(isinstance(x, BookTicker) and x.bid == D("60000.5") for x in xs)
    )
    assert all(x.symbol == "BTCUSDT" for x in items)


async def test_close_ends_the_clients_streams(make_venue: Venue) -> None:
    venue = await make_venue(profile())
    client: SimVenueClient = venue.client("alice")
    reports = read(client.execution_reports())
    events = read(client.market_events(["BTCUSDT"]))
    await until(lambda: venue._market.get("BTCUSDT"))
    await client.close()
    await asyncio.wait_for(asyncio.gather(reports.task, events.task), WAIT_S)
    assert reports.ended and events.ended
    assert not venue._market.get("BTCUSDT")
    # The venue itself carries on for other clients.
    assert (await venue.client("bob").place(order("after", Side.BUY, "0.1"))).order_id.isdigit()


async def test_stop_cancels_the_venues_tasks_and_ends_streams(make_venue: Venue) -> None:
    slow = profile(ack=AckKind.RECEIPT, processing=Latency(median_ms=5_000.0, p99_ms=5_000.0))
    before = asyncio.all_tasks()
    venue = await make_venue(slow)
    client = venue.client("alice")
    reports = read(client.execution_reports())
    ack = await client.place(order("slow", Side.BUY, "0.1"))
    assert ack.status is OrderStatus.PENDING_NEW
    started = time.monotonic()
    await venue.stop()
    assert time.monotonic() - started < 1.0
    await asyncio.wait_for(reports.task, WAIT_S)
    assert reports.ended
    assert reports.items == []  # the order never got past its receipt
    left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert left == set()


async def test_client_for_an_unknown_account_is_refused(make_venue: Venue) -> None:
    venue = await make_venue(profile())
    with pytest.raises(OrderRejected) as info:
        venue.client("mallory")
    assert info.value.reason is RejectReason.UNKNOWN_ACCOUNT


# --- unknown outcomes applied late -------------------------------------------------------
async def test_an_unknown_outcome_applied_late_is_found_only_after_its_delay(
    make_venue: Venue,
) -> None:
    """As a venue that timed out may do (-1007): a query first finds no order (-2013), a
    later one finds it."""
    delay = Latency(median_ms=300.0, p99_ms=300.0)
    venue = await make_venue(
        profile(
            ack=AckKind.RESULT, unknown_rate=1.0, unknown_applied=1.0, unknown_apply_delay=delay
        )
    )
    client = venue.client("alice")
    stream = read(client.execution_reports())
    sent = time.monotonic()
    ack = await client.place(order("late", Side.BUY, "0.3"))
    assert (ack.ack_kind, ack.status) == (AckKind.UNKNOWN, OrderStatus.PENDING_NEW)
    with pytest.raises(UnknownOrder):
        await client.query("BTCUSDT", "late")

    async def found() -> ExecutionReport | None:
        try:
            return await client.query("BTCUSDT", "late")
        except UnknownOrder:
            return None

    await until(found)
    assert time.monotonic() - sent >= 0.29  # not before the delay
    report = await found()
    assert report is not None and (report.status, report.cum_filled) == (
        OrderStatus.FILLED,
        D("0.3"),
    )
    assert report.venue_accept_ns - report.venue_receive_ns >= 300 * NS_PER_MS  # type: ignore[operator]
    await stream.report("late", OrderStatus.FILLED)
    (position,) = await client.positions()
    assert position.quantity == D("0.3")


async def test_stop_cancels_an_order_waiting_to_be_applied_late(make_venue: Venue) -> None:
    delay = Latency(median_ms=5_000.0, p99_ms=5_000.0)
    before = asyncio.all_tasks()
    venue = await make_venue(
        profile(unknown_rate=1.0, unknown_applied=1.0, unknown_apply_delay=delay)
    )
    client = venue.client("alice")
    ack = await client.place(order("never", Side.BUY, "0.1"))
    assert ack.ack_kind is AckKind.UNKNOWN
    await venue.stop()
    left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert left == set()
    with pytest.raises(UnknownOrder):
        venue.exchange.query("alice", "BTCUSDT", "never")
