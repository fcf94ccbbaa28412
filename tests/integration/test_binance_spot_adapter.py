"""The native Binance spot adapter against the simulated venue's spot API, over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.integration.test_binance_adapter import Reader, _answers, count_submits, fast, until
from venues.binance import BinanceSpotClient
from venues.client import VenueClient
from venues.config import ApiCredential
from venues.errors import AuthError, OrderRejected, UnknownOrder, VenueUnavailable
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
from venues.sim.calibration import REPLAY_INSTRUMENTS, SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.server import BinanceServer

D = Decimal
BTC = REPLAY_INSTRUMENTS["spot"]["BTCUSDT"]  # spot: tick 0.01, lot 0.00001, min notional 5
ETH_PERP = SYNTHETIC_INSTRUMENTS["ETHUSDT"]  # a perpetual: not on the spot API
KEY, SECRET, ACCOUNT = "spot-key-0001", "spot-secret-do-not-print-0001", "desk"
POOR_KEY, POOR_SECRET, POOR = "spot-key-0002", "spot-secret-0002", "poor"
FEE = D("0.001")  # the simulator's spot fee, maker and taker, in the asset received
USDT, HELD_BTC = D(100_000), D(1)


def ticks(price: str) -> int:
    return int(D(price) / BTC.tick)


def lots(qty: str) -> int:
    return int(D(qty) / BTC.lot)


def order(
    coid: str,
    side: Side = Side.BUY,
    qty: str = "0.01",
    price: str | None = "60000.00",
    *,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=side,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
    )


@dataclass
class Env:
    venue: SimVenue
    market: ScriptedMarket
    server: BinanceServer

    def client(self, key: str = KEY, secret: str = SECRET, **kw: Any) -> BinanceSpotClient:
        options: dict[str, Any] = {
            "account_id": ACCOUNT if key == KEY else POOR,
            "timeout_s": 3.0,
            "resolve_timeout_s": 0.5,
            "reconnect_max_s": 0.1,
            "stream_connect_timeout_s": 3.0,
        }
        return BinanceSpotClient(
            "spot",
            rest_url=self.server.rest_url,
            ws_url=self.server.ws_url,
            api_key=key,
            secret=secret,
            **(options | kw),
        )

    def trade(self, aggressor: Side, price: str, qty: str) -> None:
        """The rest of the market trades: fills our makers down to `price`."""
        self.market.push(
            TradePrint(self.venue.now_ns(), "BTCUSDT", aggressor, ticks(price), lots(qty))
        )

    def held(self, asset: str) -> tuple[Decimal, Decimal]:
        """The account's (free, locked) of `asset` at the venue, read off its own books."""
        for b in self.venue.exchange.spot_wallet(ACCOUNT):
            if b.asset == asset:
                return b.available, b.wallet - b.available
        return D(0), D(0)

    def set_profile(self, **changes: Any) -> None:
        self.venue.conditions.set_profile(msgspec.structs.replace(self.venue.profile, **changes))

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{self.server.rest_url}{path}", json=body or {}, headers={"X-MBX-APIKEY": KEY}
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    market = ScriptedMarket([BTC, ETH_PERP])
    # Background liquidity: our bids at 60000.00 are the best; the ask is 60010.00.
    market.push(
        DepthUpdate(
            0,
            "BTCUSDT",
            bids=[(ticks("59990.00"), lots("2")), (ticks("59980.00"), lots("2"))],
            asks=[(ticks("60010.00"), lots("2")), (ticks("60020.00"), lots("2"))],
        ),
        DepthUpdate(0, "ETHUSDT", bids=[(259_900, 50_000)], asks=[(260_100, 50_000)]),
    )
    exchange = SimExchange("spot", market)
    exchange.open_account(
        AccountSpec(account_id=ACCOUNT, balances={}, spot_balances={"USDT": USDT, "BTC": HELD_BTC})
    )
    exchange.open_account(AccountSpec(account_id=POOR, balances={}, spot_balances={"USDT": D(50)}))
    venue = SimVenue(exchange, fast())
    credentials = {
        KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id=ACCOUNT),
        POOR_KEY: ApiCredential(api_key=POOR_KEY, secret=POOR_SECRET, account_id=POOR),
    }
    async with BinanceServer(venue, credentials) as server:
        yield Env(venue, market, server)


def seen(reader: Reader, coid: str, status: OrderStatus) -> bool:
    return any(r.client_order_id == coid and r.status is status for r in reader.items)


# --- reference data, clock and account -------------------------------------------------------


async def test_reference_data_book_and_clock(env: Env) -> None:
    async with env.client() as client:
        assert isinstance(client, VenueClient)
        [btc] = await client.instruments()  # the perpetual is not on the spot API
        assert btc.symbol == "BTCUSDT" and btc.kind is InstrumentKind.SPOT
        assert (btc.tick, btc.lot, btc.min_notional) == (BTC.tick, BTC.lot, BTC.min_notional)
        book = await client.order_book("BTCUSDT", depth=1)
        assert book.bids == [(D("59990"), D("2"))] and book.asks == [(D("60010"), D("2"))]
        assert abs(book.ts_ns - client.venue_now_ns()) < 1_000_000_000
        top = await client.book_ticker("BTCUSDT")
        assert (top.bid, top.ask) == (D("59990"), D("60010"))
        assert client.typical_rtt_ns is not None and client.clock_rtt_ns is not None
        assert client.clock_rtt_ns <= client.typical_rtt_ns < 1_000_000_000
        assert abs(client.clock_offset_ns) <= client.clock_rtt_ns + 1_000_000
        assert abs(await client.server_time_ns() - time.time_ns()) < 1_000_000_000


async def test_the_account_is_a_wallet_with_no_positions(env: Env) -> None:
    async with env.client() as client:
        snap = await client.account()
        assert snap.account_id == ACCOUNT and snap.margin_asset == "USDT"
        assert {b.asset: b.available for b in snap.spot_balances} == {
            "USDT": USDT,
            "BTC": HELD_BTC,
        }
        assert snap.balances == [] and snap.available_margin == 0  # no margin wallet
        assert snap.positions == [] and await client.positions() == []
        # A resting bid locks what it would pay: it is no longer available.
        await client.place(order("a-1", qty="0.1", price="59000.00"))
        snap = await client.account()
        usdt = next(b for b in snap.spot_balances if b.asset == "USDT")
        assert (usdt.wallet, usdt.available) == (USDT, USDT - D(5900))


# --- orders -------------------------------------------------------------------------------------


async def test_place_query_open_orders_cancel(env: Env) -> None:
    async with env.client() as client:
        ack = await client.place(order("o-1"))
        assert ack.ack_kind is AckKind.ACCEPTED and ack.status is OrderStatus.NEW
        assert ack.order_id.isdigit() and ack.price == D("60000") and ack.quantity == D("0.01")
        assert ack.venue_accept_ns is not None
        assert abs(ack.venue_accept_ns - client.venue_now_ns()) < 1_000_000_000
        assert [r.client_order_id for r in await client.open_orders()] == ["o-1"]
        queried = await client.query("BTCUSDT", "o-1")
        assert queried.status is OrderStatus.NEW and queried.order_id == ack.order_id
        canceled = await client.cancel("BTCUSDT", "o-1")
        assert canceled.client_order_id == "o-1"  # not the cancel request's own id
        assert canceled.status is OrderStatus.CANCELED and canceled.open_qty == 0
        assert await client.open_orders() == []
        with pytest.raises(UnknownOrder) as info:
            await client.cancel("BTCUSDT", "o-1")
        assert info.value.code == -2011
        with pytest.raises(UnknownOrder) as info:
            await client.query("BTCUSDT", "never-sent")
        assert info.value.code == -2013
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-1"))  # the id of an order that exists
        assert rejected.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-2", qty="0.000015"))
        assert rejected.value.reason is RejectReason.QTY_OFF_LOT  # -1111, refined
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("o-3", qty="0.00001"))  # 0.60 USDT: under 5
        assert rejected.value.reason is RejectReason.BELOW_MIN_NOTIONAL


async def test_post_only_rests_as_limit_maker_or_is_refused_when_it_would_take(env: Env) -> None:
    async with env.client() as client:
        with pytest.raises(OrderRejected) as rejected:
            await client.place(order("m-1", price="60010.00", tif=TimeInForce.POST_ONLY))
        assert rejected.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
        assert rejected.value.code == -2010 and rejected.value.client_order_id == "m-1"
        resting = await client.place(order("m-2", price="60000.00", tif=TimeInForce.POST_ONLY))
        assert resting.status is OrderStatus.NEW
        queried = await client.query("BTCUSDT", "m-2")
        assert queried.time_in_force is TimeInForce.POST_ONLY
        assert queried.order_type is OrderType.LIMIT


async def test_reduce_only_is_refused_and_nothing_reaches_the_venue(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_submits(env, monkeypatch)  # type: ignore[arg-type]
    async with env.client() as client:
        with pytest.raises(OrderRejected, match="reduce-only"):
            await client.place(order("r-1", Side.SELL, reduce_only=True))
        assert sent == [] and await client.open_orders() == []


async def test_insufficient_balance(env: Env) -> None:
    async with env.client(key=POOR_KEY, secret=POOR_SECRET) as client:
        with pytest.raises(OrderRejected) as info:
            await client.place(order("i-1"))  # 600 USDT wanted, 50 held
        assert info.value.reason is RejectReason.INSUFFICIENT_BALANCE
        assert info.value.code == -2010 and info.value.client_order_id == "i-1"
        with pytest.raises(OrderRejected) as info:
            await client.place(order("i-2", Side.SELL, price="61000.00"))  # no BTC held
        assert info.value.reason is RejectReason.INSUFFICIENT_BALANCE


async def test_a_full_answer_carries_the_fills_and_the_fee_in_the_base_asset(env: Env) -> None:
    async with env.client(resp_type="FULL") as client:
        assert client.ack_semantics is AckKind.RESULT
        env.set_profile(ack=AckKind.RESULT)
        bought = await client.place(order("f-1", qty="0.01", price=None))
        assert bought.ack_kind is AckKind.RESULT and bought.status is OrderStatus.FILLED
        assert bought.avg_price == D("60010") and bought.price is None
        assert bought.cum_fee == D("0.00001") and bought.fee_asset == "BTC"  # 0.1 % of 0.01
        [fill] = await client.trades("BTCUSDT", bought.order_id)
        assert fill.trade_id.isdigit() and fill.liquidity is Liquidity.TAKER
        assert (fill.fee, fill.fee_asset, fill.price) == (D("0.00001"), "BTC", D("60010"))
        sold = await client.place(order("f-2", Side.SELL, qty="0.01", price=None))
        assert sold.cum_fee == D("0.5999") and sold.fee_asset == "USDT"  # 0.1 % of 599.90
        ioc = await client.place(order("f-3", price="59000.00", tif=TimeInForce.IOC))
        assert ioc.status is OrderStatus.EXPIRED and ioc.cum_filled == 0
    # A client that saw none of it reads the fees from the account's trades.
    async with env.client() as fresh:
        again = await fresh.query("BTCUSDT", "f-1")
        assert again.cum_fee == D("0.00001") and again.fee_asset == "BTC"
        snap = await fresh.account()
        held = {b.asset: b.wallet for b in snap.spot_balances}
        assert held["BTC"] == HELD_BTC + D("0.01") - D("0.00001") - D("0.01")
        assert held["USDT"] == USDT - D("600.10") + D("599.90") - D("0.5999")


async def test_result_answers_need_the_trades_for_their_fee(env: Env) -> None:
    async with env.client(resp_type="RESULT") as client:
        env.set_profile(ack=AckKind.RESULT)
        bought = await client.place(order("q-1", qty="0.02", price=None))
        assert bought.status is OrderStatus.FILLED and bought.cum_fee == 0  # not said yet
        queried = await client.query("BTCUSDT", "q-1")
        assert queried.cum_fee == D("0.00002") and queried.fee_asset == "BTC"


async def test_fills_arrive_on_the_stream_with_the_asset_charged(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.execution_reports())
        await client.place(order("s-1", qty="0.01"))
        await reader.report("s-1", OrderStatus.NEW)
        env.trade(Side.SELL, "60000.00", "0.004")
        part = await reader.report("s-1", OrderStatus.PARTIALLY_FILLED)
        assert part.cum_filled == D("0.004") and part.open_qty == D("0.006")
        assert part.last_fill is not None and part.last_fill.liquidity is Liquidity.MAKER
        assert part.last_fill.fee_asset == "BTC" and part.cum_fee == D("0.000004")
        env.trade(Side.SELL, "60000.00", "0.006")
        done = await reader.report("s-1", OrderStatus.FILLED)
        assert done.cum_filled == D("0.01") and done.avg_price == D("60000")
        assert done.cum_fee == D("0.00001") and done.fee_asset == "BTC"
        # The stream's wallet updates follow: the bought BTC, less its fee, is free.
        await until(lambda: client.stream_balances.get("BTC") is not None)
        await until(
            lambda: client.stream_balances["BTC"].available == HELD_BTC + D("0.01") - D("0.00001")
        )
        assert env.held("USDT") == (USDT - D(600), D(0))
        await reader.stop()


async def test_cancel_all_answers_every_order_it_canceled(env: Env) -> None:
    async with env.client() as client:
        assert await client.cancel_all("BTCUSDT") == []  # nothing open
        batch = [order(f"b-{i}", qty="0.001", price="59000.00") for i in range(4)]
        batch[2] = order("b-2", qty="0.0000015", price="59000.00")  # off the lot
        batch[3] = order("b-3", Side.SELL, qty="0.001", price="61000.00", reduce_only=True)
        answers = await client.place_batch(batch)  # no batch endpoint: one by one
        assert [type(a) for a in answers] == [
            ExecutionReport,
            ExecutionReport,
            OrderRejected,
            OrderRejected,
        ]
        assert isinstance(answers[2], OrderRejected)
        assert answers[2].reason is RejectReason.QTY_OFF_LOT
        opened = {r.client_order_id for r in await client.open_orders("BTCUSDT")}
        assert opened == {"b-0", "b-1"}
        canceled = await client.cancel_all("BTCUSDT")
        assert {r.client_order_id for r in canceled} == opened
        assert all(r.status is OrderStatus.CANCELED for r in canceled)
        assert await client.open_orders() == []
        snap = await client.account()  # what the bids locked is free again
        usdt = next(b for b in snap.spot_balances if b.asset == "USDT")
        assert usdt.available == usdt.wallet == USDT


# --- refusals -----------------------------------------------------------------------------------


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


async def test_unknown_outcome_resolved_without_a_duplicate(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_submits(env, monkeypatch)  # type: ignore[arg-type]
    async with env.client() as client:
        env.set_profile(unknown_rate=1.0, unknown_applied=1.0)  # applied, answer lost (-1007)
        report = await client.place(order("x-1"))
        assert report.ack_kind is AckKind.RESULT and report.status is OrderStatus.NEW
        assert report.order_id.isdigit() and report.client_order_id == "x-1"
        assert sent == ["x-1"]  # resolved by query, never sent again


# --- streams ------------------------------------------------------------------------------------


async def test_a_fill_while_the_stream_is_down_arrives_by_the_resync(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.execution_reports())
        await client.place(order("g-1", qty="0.01"))
        await reader.report("g-1", OrderStatus.NEW)
        # The venue goes down: it closes the stream, and the client cannot reconnect...
        env.venue.conditions.start_outage(env.venue.now_ns(), 30.0)
        await until(lambda: not client.stream_connected)
        # ...while the order fills.
        env.trade(Side.SELL, "60000.00", "0.01")
        exchange = env.venue.exchange
        await until(lambda: exchange.query(ACCOUNT, "BTCUSDT", "g-1").status is OrderStatus.FILLED)
        assert not seen(reader, "g-1", OrderStatus.FILLED)
        env.venue.conditions.stop_outage()
        filled = await reader.report("g-1", OrderStatus.FILLED)  # from the resync
        assert filled.cum_filled == D("0.01") and filled.cum_fee == D("0.00001")
        assert filled.fee_asset == "BTC"
        assert client.reconnects >= 1 and client.resyncs >= 1
        await reader.stop()


async def test_a_dropped_stream_reconnects_and_resyncs(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.execution_reports())
        await client.place(order("d-1", price="59000.00"))
        await reader.report("d-1", OrderStatus.NEW)
        resyncs = client.resyncs
        assert await env.admin("/_sim/streams/drop") == {"closed": 1}
        await until(lambda: client.reconnects >= 1 and client.resyncs > resyncs)
        await until(lambda: client.stream_connected)
        await client.place(order("d-2", price="59000.00"))
        await reader.report("d-2", OrderStatus.NEW)  # the stream carries reports again
        await client.cancel("BTCUSDT", "d-1")
        await reader.report("d-1", OrderStatus.CANCELED)
        await reader.stop()


async def test_keepalive_and_a_deleted_listen_key(env: Env) -> None:
    async with env.client(keepalive_s=0.02) as client:
        reader = Reader(client.execution_reports())
        await until(lambda: client.keepalives >= 2)  # PUT with the key: the venue knew it
        assert client.reconnects == 0
        # The key is closed (DELETE): the venue ends the stream, the client takes a new key.
        await client._rest.close_listen_key()
        await until(lambda: client.reconnects >= 1 and client.stream_connected)
        await client.place(order("k-1", price="59000.00"))
        await reader.report("k-1", OrderStatus.NEW)
        await reader.stop()


async def test_market_events(env: Env) -> None:
    async with env.client() as client:
        reader = Reader(client.market_events(["BTCUSDT"]))
        depth = lots("2")

        async def ticker_seen() -> bool:
            # Until the stream is subscribed, updates go unseen: keep moving the book.
            nonlocal depth
            depth += 1
            env.market.push(
                DepthUpdate(
                    env.venue.now_ns(), "BTCUSDT", bids=[(ticks("59990.00"), depth)], asks=[]
                )
            )
            await asyncio.sleep(0.01)
            return any(isinstance(e, BookTicker) for e in reader.items)

        await until(ticker_seen)
        ticker = next(e for e in reader.items if isinstance(e, BookTicker))
        assert ticker.bid == D("59990") and ticker.ask == D("60010") and ticker.ts_ns > 0
        env.trade(Side.BUY, "60010.00", "0.003")
        await reader.wait(lambda items: any(isinstance(e, MarketTrade) for e in items))
        trade = next(e for e in reader.items if isinstance(e, MarketTrade))
        assert trade.aggressor is Side.BUY and trade.price == D("60010")
        assert trade.quantity == D("0.003") and trade.venue == "spot"
        await reader.stop()


async def test_close_ends_streams_and_tasks(env: Env) -> None:
    client = env.client()
    await client.start()
    reports = Reader(client.execution_reports())
    market = Reader(client.market_events(["BTCUSDT"]))
    await until(lambda: client.stream_connected)
    await client.close()
    await asyncio.wait_for(asyncio.gather(reports.task, market.task), 5.0)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("spot-")]
    assert left == [] and not client.stream_connected
    with pytest.raises(VenueUnavailable):
        await client.server_time_ns()


async def test_from_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGATO_SPOT_ITEST_KEY", KEY)
    monkeypatch.setenv("LEGATO_SPOT_ITEST_SECRET", SECRET)
    client = BinanceSpotClient.from_env(
        "spot",
        env.server.rest_url,
        env.server.ws_url,
        "LEGATO_SPOT_ITEST_KEY",
        "LEGATO_SPOT_ITEST_SECRET",
        account_id=ACCOUNT,
    )
    async with client:
        wallet = (await client.account()).spot_balances
        assert next(b.available for b in wallet if b.asset == "USDT") == USDT
        assert await _answers(client.open_orders())
    assert SECRET not in repr(client)
