"""The native Binance USD-M adapter against the simulated Binance server, over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.support import until as wait_for_condition
from venues.binance import BinanceUsdmClient
from venues.client import VenueClient
from venues.config import ApiCredential
from venues.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AckKind,
    BookTicker,
    ExecutionReport,
    InstrumentKind,
    Liquidity,
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.profile import Latency, VenueProfile
from venues.sim.server import BinanceServer

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001, min notional 100
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]
ZERO = Latency(median_ms=0.0, p99_ms=0.0)
WAIT_S = 5.0  # deadline for what should happen within milliseconds
KEY, SECRET, ACCOUNT = "itest-key-0001", "itest-secret-do-not-print-0001", "acct-1"
POOR_KEY, POOR_SECRET, POOR = "itest-key-0002", "itest-secret-0002", "poor"
MAKER, TAKER = D("0.0002"), D("0.0005")


def fast(**changes: Any) -> VenueProfile:
    """A venue that answers as fast as the loop can (faults as `changes` say)."""
    base: dict[str, Any] = {
        "request": ZERO,
        "processing": ZERO,
        "response": ZERO,
        "stream_lag": ZERO,
        "orders_per_minute": 100_000,
    }
    return VenueProfile(**(base | changes))


def ticks(price: str) -> int:
    return int(D(price) / BTC.tick)


def order(
    coid: str,
    side: Side = Side.BUY,
    qty: str = "0.010",
    price: str | None = "60000.0",
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


@dataclass
class Env:
    venue: SimVenue
    market: ScriptedMarket
    server: BinanceServer
    credentials: dict[str, ApiCredential]

    def client(self, key: str = KEY, secret: str = SECRET, **kw: Any) -> BinanceUsdmClient:
        options: dict[str, Any] = {
            "account_id": ACCOUNT if key == KEY else POOR,
            "timeout_s": 3.0,
            "resolve_timeout_s": 0.5,
            "reconnect_max_s": 0.1,
            "stream_connect_timeout_s": 3.0,
        }
        return BinanceUsdmClient(
            "sim",
            rest_url=self.server.rest_url,
            ws_url=self.server.ws_url,
            api_key=key,
            secret=secret,
            **(options | kw),
        )

    def trade(self, aggressor: Side, price: str, lots: int, symbol: str = "BTCUSDT") -> None:
        """The rest of the market trades: fills our makers down to `price`."""
        self.market.push(TradePrint(self.venue.now_ns(), symbol, aggressor, ticks(price), lots))

    def set_profile(self, **changes: Any) -> None:
        self.venue.conditions.set_profile(msgspec.structs.replace(self.venue.profile, **changes))


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    market = ScriptedMarket([BTC, ETH])
    # Background liquidity two ticks-and-more away: our orders at 60000.0 are the best bid.
    market.push(
        DepthUpdate(
            0,
            "BTCUSDT",
            bids=[(ticks("59990.0"), 2000), (ticks("59980.0"), 2000)],
            asks=[(ticks("60010.0"), 2000), (ticks("60020.0"), 2000)],
        ),
        DepthUpdate(0, "ETHUSDT", bids=[(259_900, 50_000)], asks=[(260_100, 50_000)]),
    )
    exchange = SimExchange("sim", market)
    exchange.open_account(AccountSpec(account_id=ACCOUNT, balances={"USDT": D(1_000_000)}))
    exchange.open_account(AccountSpec(account_id=POOR, balances={"USDT": D(50)}))
    venue = SimVenue(exchange, fast())
    credentials = {
        KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id=ACCOUNT),
        POOR_KEY: ApiCredential(api_key=POOR_KEY, secret=POOR_SECRET, account_id=POOR),
    }
    async with BinanceServer(venue, credentials) as server:
        yield Env(venue, market, server, credentials)


class Reader:
    """Reads a stream in the background so that a test can wait on what has arrived."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[Any]) -> None:
        async for item in stream:
            async with self._changed:
                self.items.append(item)
                self._changed.notify_all()

    async def wait(self, done: Callable[[list[Any]], bool], timeout: float = WAIT_S) -> None:
        async def satisfied() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: done(self.items) or self.task.done())

        await asyncio.wait_for(satisfied(), timeout)
        if self.task.done() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]
        assert done(self.items), f"stream ended first: {self.items}"

    async def report(self, coid: str, status: OrderStatus) -> ExecutionReport:
        def seen(items: list[Any]) -> bool:
            return any(r.client_order_id == coid and r.status is status for r in items)

        await self.wait(seen)
        return next(r for r in self.items if r.client_order_id == coid and r.status is status)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(condition: Callable[[], Any], timeout: float = WAIT_S) -> float:
    return await wait_for_condition(condition, timeout)


# --- reference data, clock and account -------------------------------------------------


async def test_reference_data_book_and_clock(env: Env) -> None:
    async with env.client() as client:
        assert isinstance(client, VenueClient)
        insts = {i.symbol: i for i in await client.instruments()}
        assert set(insts) == {"BTCUSDT", "ETHUSDT"}
        btc = insts["BTCUSDT"]
        assert btc.kind is InstrumentKind.PERP
        assert (btc.tick, btc.lot, btc.min_notional) == (BTC.tick, BTC.lot, BTC.min_notional)
        book = await client.order_book("BTCUSDT", depth=1)
        assert book.bids == [(D("59990.0"), D("2.000"))]
        assert book.asks == [(D("60010.0"), D("2.000"))]
        # The venue's clock is this machine's: the measured offset is within the round trip.
        assert client.clock_rtt_ns is not None and client.clock_rtt_ns < 50_000_000
        assert abs(client.clock_offset_ns) <= client.clock_rtt_ns + 1_000_000
        assert abs(await client.server_time_ns() - time.time_ns()) < 1_000_000_000


def failing_clock(client: BinanceUsdmClient, fail: set[int]) -> list[int]:
    """Make the `fail`-th server-time requests (counting from 1) time out; the list counts
    every server-time request made."""
    calls: list[int] = []
    public = client._public

    async def flaky(path: str, params: dict[str, str] | None = None) -> bytes:
        if path == "/fapi/v1/time":
            calls.append(len(calls) + 1)
            if calls[-1] in fail:
                raise VenueUnavailable("GET /fapi/v1/time failed after sending (TimeoutError)")
        return await public(path, params)

    client._public = flaky  # type: ignore[method-assign]
    return calls


async def test_a_clock_sample_the_venue_does_not_answer_is_taken_again(env: Env) -> None:
    client = env.client(clock_samples=3)
    calls = failing_clock(client, fail={1, 3})
    async with client:  # start() measures the clock
        assert len(calls) == 5  # three samples, two of them taken twice
        assert client.clock_rtt_ns is not None
        assert abs(client.clock_offset_ns) <= client.clock_rtt_ns + 1_000_000


async def test_a_venue_that_answers_no_clock_sample_fails_the_start(env: Env) -> None:
    client = env.client(clock_samples=2)
    calls = failing_clock(client, fail=set(range(1, 100)))
    with pytest.raises(VenueUnavailable, match="fapi/v1/time"):
        await client.start()
    assert len(calls) == 3  # two samples to take: two failures are taken again, a third ends it


@pytest.mark.parametrize("api", ["v2", "v3"])
async def test_account_and_positions(env: Env, api: str) -> None:
    async with env.client(account_api=api) as client:
        snap = await client.account()
        assert snap.account_id == ACCOUNT and snap.margin_asset == "USDT"
        assert snap.wallet_balance == snap.available_margin == D(1_000_000)
        assert snap.positions == [] and await client.positions() == []
        filled = await client.place(order("mkt-1", qty="0.010", price=None))
        assert filled.order_id.isdigit()
        await until(lambda: env.venue.exchange.positions(ACCOUNT, env.venue.now_ns()) != [])
        [pos] = await client.positions()
        assert pos.symbol == "BTCUSDT" and pos.quantity == D("0.010")
        assert pos.entry_price == D("60010.0") and pos.leverage == 10
        snap = await client.account()
        assert [(p.symbol, p.quantity) for p in snap.positions] == [("BTCUSDT", D("0.010"))]
        assert snap.wallet_balance == D(1_000_000) - TAKER * D("60010.0") * D("0.010")
        assert snap.position_initial_margin > 0


# --- orders ----------------------------------------------------------------------------


async def test_place_query_open_orders_cancel(env: Env) -> None:
    async with env.client() as client:
        ack = await client.place(order("o-1"))
        assert ack.ack_kind is AckKind.ACCEPTED and ack.status is OrderStatus.NEW
        assert ack.order_id.isdigit() and ack.price == D("60000.0") and ack.quantity == D("0.010")
        assert ack.venue_accept_ns is not None
        assert abs(ack.venue_accept_ns - client.venue_now_ns()) < 1_000_000_000
        assert [r.client_order_id for r in await client.open_orders()] == ["o-1"]
        assert [r.client_order_id for r in await client.open_orders("ETHUSDT")] == []
        queried = await client.query("BTCUSDT", "o-1")
        assert queried.status is OrderStatus.NEW and queried.order_id == ack.order_id
        canceled = await client.cancel("BTCUSDT", "o-1")
        assert canceled.status is OrderStatus.CANCELED and canceled.open_qty == 0
        assert await client.open_orders() == []
        with pytest.raises(UnknownOrder) as info:
            await client.cancel("BTCUSDT", "o-1")
        assert info.value.code == -2011
        with pytest.raises(UnknownOrder) as info:
            await client.query("BTCUSDT", "never-sent")
        assert info.value.code == -2013
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-2", price="60010.0", tif=TimeInForce.POST_ONLY))
        assert rejected.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
        assert rejected.value.code == -5022 and rejected.value.client_order_id == "o-2"
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-3", price="60000.05"))
        assert rejected.value.reason is RejectReason.PRICE_OFF_TICK  # -1111, refined
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-1"))  # the id of an order that exists
        assert rejected.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID


async def test_partial_fills_arrive_on_the_stream(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.execution_reports())
        await client.place(order("p-1"))
        await reader.report("p-1", OrderStatus.NEW)
        env.trade(Side.SELL, "60000.0", 4)
        part = await reader.report("p-1", OrderStatus.PARTIALLY_FILLED)
        assert part.cum_filled == D("0.004") and part.open_qty == D("0.006")
        assert part.last_fill is not None and part.last_fill.liquidity is Liquidity.MAKER
        assert part.last_fill.quantity == D("0.004") and part.last_fill.price == D("60000.0")
        assert part.cum_fee == MAKER * D("60000.0") * D("0.004")
        env.trade(Side.SELL, "60000.0", 6)
        done = await reader.report("p-1", OrderStatus.FILLED)
        assert done.cum_filled == D("0.010") and done.avg_price == D("60000.0")
        assert done.cum_fee == D("0.12")  # exact: 0.0002 × 60000 × 0.010
        assert (await client.query("BTCUSDT", "p-1")).cum_fee == D("0.12")
        await reader.stop()
    # A client that saw none of it reads the fees from the account's trades.
    async with env.client() as fresh:
        again = await fresh.query("BTCUSDT", "p-1")
        assert again.status is OrderStatus.FILLED and again.cum_fee == D("0.12")


async def test_result_acks_carry_the_match(env: Env) -> None:
    async with env.client(resp_type="RESULT") as client:
        assert client.ack_semantics is AckKind.RESULT
        env.set_profile(ack=AckKind.RESULT)
        market = await client.place(order("r-1", qty="0.005", price=None))
        assert market.ack_kind is AckKind.RESULT and market.status is OrderStatus.FILLED
        assert market.avg_price == D("60010.0") and market.price is None
        ioc = await client.place(order("r-2", price="59000.0", tif=TimeInForce.IOC))
        assert ioc.status is OrderStatus.EXPIRED and ioc.cum_filled == 0
        queried = await client.query("BTCUSDT", "r-1")
        assert queried.cum_fee == TAKER * D("60010.0") * D("0.005")


async def test_batch_with_bad_items(env: Env) -> None:
    async with env.client() as client:
        orders = [order(f"b-{i}", price="59000.0", qty="0.002") for i in range(7)]
        orders[2] = order("b-2", price="59000.0", qty="0.0015")  # off the 0.001 lot
        orders[6] = order("b-6", qty="0.002", price=None, tif=TimeInForce.FOK)  # market FOK
        answers = await client.place_batch(orders)  # two requests: 5 and 2 orders
        assert len(answers) == 7
        for i, a in enumerate(answers):
            if i == 2:
                assert isinstance(a, OrderRejected) and a.reason is RejectReason.QTY_OFF_LOT
                assert a.client_order_id == "b-2" and a.code == -1111
            elif i == 6:
                assert isinstance(a, OrderRejected) and a.reason is RejectReason.INVALID_PRICE
            else:
                assert isinstance(a, ExecutionReport), a
                assert a.status is OrderStatus.NEW and a.client_order_id == f"b-{i}"
        opened = {r.client_order_id for r in await client.open_orders("BTCUSDT")}
        assert opened == {"b-0", "b-1", "b-3", "b-4", "b-5"}
        canceled = await client.cancel_all("BTCUSDT")
        assert {r.client_order_id for r in canceled} == opened
        assert all(r.status is OrderStatus.CANCELED for r in canceled)
        assert await client.open_orders() == []


# --- refusals ------------------------------------------------------------------------------


async def test_bad_credentials_are_auth_errors(env: Env) -> None:
    async with env.client(secret="not-the-secret") as client:  # the listenKey needs no signature
        with pytest.raises(AuthError) as info:
            await client.account()
        assert info.value.code == -1022
        assert "not-the-secret" not in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(AuthError) as info:
        async with env.client(key="no-such-key"):
            pass
    assert info.value.code == -2015


async def test_stale_timestamp(env: Env) -> None:
    async with env.client() as synced, env.client(time_sync=False) as unsynced:
        env.set_profile(clock_offset_ms=30_000.0)  # the venue's clock jumps 30 s ahead
        with pytest.raises(AuthError) as info:
            await unsynced.account()
        assert info.value.code == -1021
        # A client that tracks the venue clock re-measures it and retries, once.
        snap = await synced.account()
        assert snap.wallet_balance == D(1_000_000)
        assert abs(synced.clock_offset_ns - 30_000_000_000) < 50_000_000


async def test_insufficient_margin(env: Env) -> None:
    async with env.client(key=POOR_KEY, secret=POOR_SECRET) as client:
        with pytest.raises(OrderRejected) as info:
            await client.place(order("m-1", qty="0.010"))  # 600 USDT at 10x: 60 > 50
        assert info.value.reason is RejectReason.INSUFFICIENT_MARGIN
        assert info.value.code == -2019 and info.value.client_order_id == "m-1"


async def test_order_rate_limit(env: Env) -> None:
    async with env.client() as client:
        env.set_profile(orders_per_minute=2)
        for i in range(2):
            await client.place(order(f"l-{i}", price="59000.0", qty="0.002"))
        with pytest.raises(RateLimited) as info:
            await client.place(order("l-2", price="59000.0", qty="0.002"))
        assert info.value.code == -1015
        assert info.value.retry_after_s is not None and 0 < info.value.retry_after_s <= 60


async def test_outage_then_recovery(env: Env) -> None:
    async with env.client() as client, aiohttp.ClientSession() as admin:
        async with admin.post(
            f"{env.server.rest_url}/_sim/outage",
            json={"duration_s": 0.4},
            headers={"X-MBX-APIKEY": KEY},
        ) as resp:
            assert resp.status == 200
        with pytest.raises(VenueUnavailable) as info:
            await client.place(order("u-1"))
        assert type(info.value) is VenueUnavailable  # refused for certain, not "unknown"
        await until(lambda: _answers(client.server_time_ns()))
        with pytest.raises(UnknownOrder):
            await client.query("BTCUSDT", "u-1")  # it was never placed
        assert (await client.place(order("u-1"))).status is OrderStatus.NEW
        # Connections refused: the request never leaves.
        env.venue.conditions.start_outage(env.venue.now_ns(), 0.4, mode="refuse")
        await until(lambda: not client.stream_connected)
        with pytest.raises(VenueUnavailable):
            await client.open_orders()
        await until(lambda: _answers(client.open_orders()))
        await until(lambda: client.stream_connected)


async def _answers(call: Awaitable[Any]) -> bool:
    try:
        await call
    except VenueError:
        return False
    return True


# --- UNKNOWN outcomes ------------------------------------------------------------------------


def count_submits(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    submit = env.venue.submit

    async def counting(account_id: str, o: NewOrder) -> ExecutionReport:
        sent.append(o.client_order_id)
        return await submit(account_id, o)

    monkeypatch.setattr(env.venue, "submit", counting)
    return sent


async def test_unknown_outcome_resolved_without_a_duplicate(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_submits(env, monkeypatch)
    async with env.client() as client:
        env.set_profile(unknown_rate=1.0, unknown_applied=1.0)  # applied, answer lost (-1007)
        report = await client.place(order("x-1"))
        assert report.ack_kind is AckKind.RESULT and report.status is OrderStatus.NEW
        assert report.order_id.isdigit() and report.client_order_id == "x-1"
        assert sent == ["x-1"]  # resolved by query, never sent again
        held = [r for r in env.venue.exchange.open_orders(ACCOUNT) if r.client_order_id == "x-1"]
        assert len(held) == 1 and held[0].order_id == report.order_id


async def test_unknown_outcome_not_applied_stays_unknown(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_submits(env, monkeypatch)
    async with env.client(resolve_timeout_s=0.3) as client:
        env.set_profile(unknown_rate=1.0, unknown_applied=0.0)  # lost before it was applied
        report = await client.place(order("x-2"))
        assert report.ack_kind is AckKind.UNKNOWN and report.status is OrderStatus.PENDING_NEW
        assert report.order_id == ""
        assert sent == ["x-2"]
        with pytest.raises(UnknownOrder):
            env.venue.exchange.query(ACCOUNT, "BTCUSDT", "x-2")


# --- streams ---------------------------------------------------------------------------------


async def test_stream_reconnects_and_resyncs_fills_from_the_gap(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.execution_reports())
        await client.place(order("g-1"))
        await reader.report("g-1", OrderStatus.NEW)
        # The venue goes down: it closes the stream, and the client cannot reconnect...
        env.venue.conditions.start_outage(env.venue.now_ns(), 30.0)
        await until(lambda: not client.stream_connected)
        # ...while the order fills.
        env.trade(Side.SELL, "60000.0", 10)
        exchange = env.venue.exchange
        await until(lambda: exchange.query(ACCOUNT, "BTCUSDT", "g-1").status is OrderStatus.FILLED)
        assert not any(r.status is OrderStatus.FILLED for r in reader.items)
        env.venue.conditions.stop_outage()
        filled = await reader.report("g-1", OrderStatus.FILLED)  # from the resync
        assert filled.cum_filled == D("0.010") and filled.cum_fee == D("0.12")
        assert client.reconnects >= 1 and client.resyncs >= 1
        # Dropped from this side too (a network drop): it reconnects and streams again.
        await until(lambda: client.stream_connected)
        await client.drop_user_stream()
        await until(lambda: client.stream_connected)
        await client.place(order("g-2", price="59000.0"))
        await reader.report("g-2", OrderStatus.NEW)
        await reader.stop()


async def test_keepalive_and_a_deleted_listen_key(env: Env) -> None:
    async with env.client(keepalive_s=0.02) as client, aiohttp.ClientSession() as other:
        reader = Reader(client.execution_reports())
        await until(lambda: client.keepalives >= 2)
        assert client.reconnects == 0
        # Another client of the account closes the listenKey: the venue drops the stream.
        async with other.delete(
            f"{env.server.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY}
        ) as resp:
            assert resp.status == 200
        await until(lambda: client.reconnects >= 1 and client.stream_connected)
        await client.place(order("k-1", price="59000.0"))
        await reader.report("k-1", OrderStatus.NEW)
        await reader.stop()


async def test_a_full_report_queue_ends_the_stream_with_an_error(env: Env) -> None:
    async with env.client(report_queue=2) as client:
        for i in range(3):
            await client.place(order(f"q-{i}", price="59000.0", qty="0.002"))
        await until(lambda: client._overflowed)
        stream = client.execution_reports()
        with pytest.raises(VenueUnavailable, match="overflowed"):
            await anext(stream)
        # Reading resumes with what comes next; the missed state is read by query.
        assert {r.client_order_id for r in await client.open_orders()} == {"q-0", "q-1", "q-2"}
        await client.cancel("BTCUSDT", "q-0")
        reader = Reader(client.execution_reports())
        await reader.report("q-0", OrderStatus.CANCELED)
        await reader.stop()


async def test_market_events(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.market_events(["BTCUSDT"]))
        lots = 2000

        async def ticker_seen() -> bool:
            # Until the stream is subscribed, updates go unseen: keep moving the book.
            nonlocal lots
            lots += 1
            env.market.push(
                DepthUpdate(env.venue.now_ns(), "BTCUSDT", bids=[(ticks("59990.0"), lots)], asks=[])
            )
            await asyncio.sleep(0.01)
            return any(isinstance(e, BookTicker) for e in reader.items)

        await until(ticker_seen)
        ticker = next(e for e in reader.items if isinstance(e, BookTicker))
        assert ticker.bid == D("59990.0") and ticker.ask == D("60010.0")
        env.trade(Side.BUY, "60010.0", 3)
        await reader.wait(lambda items: any(isinstance(e, MarketTrade) for e in items))
        trade = next(e for e in reader.items if isinstance(e, MarketTrade))
        assert trade.aggressor is Side.BUY and trade.price == D("60010.0")
        assert trade.quantity == D("0.003") and trade.venue == "sim"
        await reader.stop()


async def test_market_events_from_split_endpoints(env: Env) -> None:
    # Binance serves book tickers and trades from different roots (/public, /market): here
    # a second server of the same venue plays the second root.
    async with (
        BinanceServer(env.venue, env.credentials) as other,
        env.client(public_ws_url=other.ws_url, trade_stream="aggTrade") as client,
    ):
        reader = Reader(client.market_events(["ETHUSDT"]))

        async def both_seen() -> bool:
            env.market.push(
                DepthUpdate(env.venue.now_ns(), "ETHUSDT", bids=[(259_950, 1_000)], asks=[])
            )
            env.market.push(TradePrint(env.venue.now_ns(), "ETHUSDT", Side.SELL, 259_950, 1))
            await asyncio.sleep(0.01)
            kinds = {type(e) for e in reader.items}
            return kinds == {BookTicker, MarketTrade}

        await until(both_seen)
        await client.close()
        await asyncio.wait_for(reader.task, WAIT_S)  # the merged stream ends with the client


async def test_close_ends_streams_and_tasks(env: Env) -> None:
    client = env.client()
    await client.start()
    reports = Reader(client.execution_reports())
    market = Reader(client.market_events(["ETHUSDT"]))
    await until(lambda: client.stream_connected)
    await client.close()
    await asyncio.wait_for(asyncio.gather(reports.task, market.task), WAIT_S)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("sim-")]
    assert left == [] and not client.stream_connected
    with pytest.raises(VenueUnavailable):
        await client.server_time_ns()


async def test_from_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGATO_ITEST_KEY", KEY)
    monkeypatch.setenv("LEGATO_ITEST_SECRET", SECRET)
    client = BinanceUsdmClient.from_env(
        "sim", env.server.rest_url, env.server.ws_url, "LEGATO_ITEST_KEY", "LEGATO_ITEST_SECRET"
    )
    async with client:
        assert (await client.account()).wallet_balance == D(1_000_000)
    assert SECRET not in repr(client)


async def test_the_listen_key_never_reaches_a_log_line(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client = env.client()
    keys: list[str] = []
    create = client._rest.listen_key

    async def forgotten_first(method: Any) -> str:
        # The venue forgets the first key before the stream connects with it: the handshake
        # fails, and its error names the URL, key included.
        key = await create(method)
        keys.append(key)
        if len(keys) == 1:
            async with (
                aiohttp.ClientSession() as other,
                other.delete(
                    f"{env.server.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY}
                ) as resp,
            ):
                assert resp.status == 200
        return key

    client._rest.listen_key = forgotten_first  # type: ignore[method-assign]
    async with client:
        await client.drop_user_stream()
        await until(lambda: client.reconnects >= 2 and client.stream_connected)
        assert not any(k in repr(client) for k in keys)
    assert len(set(keys)) >= 2  # the forgotten key and the one the stream connected with
    failed = [r for r in caplog.records if r.levelname == "WARNING" and "user-data" in r.msg]
    assert failed, "the failed handshake was not logged"
    assert [r.getMessage() for r in caplog.records if any(k in r.getMessage() for k in keys)] == []
