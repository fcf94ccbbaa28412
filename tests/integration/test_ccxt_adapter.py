"""The ccxt adapter against the simulated Binance venue over real sockets: USD-M through ccxt's
`binanceusdm`, spot (STETHUSDT) through ccxt's `binance`; the same semantics as the native
adapter (client ids, unknown outcomes resolved by query, errors, the report stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.test_binance_adapter import Reader
from tests.integration.test_binance_server import ACCOUNT, KEY, SECRET, Sim, running
from tests.support import until as wait_for_condition
from venues.ccxt import CcxtClient
from venues.client import VenueClient
from venues.config import ApiCredential
from venues.errors import AuthError, OrderRejected, RateLimited, UnknownOrder, VenueUnavailable
from venues.model import (
    AckKind,
    ExecutionReport,
    InstrumentKind,
    Liquidity,
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
WAIT_S = 5.0  # deadline for what should happen within milliseconds
ZERO = Latency(median_ms=0.0, p99_ms=0.0)
# The venue's default fees (FeeSchedule): 2 bps maker, 5 bps taker, in USDT on perpetuals.
MAKER, TAKER = D("0.0002"), D("0.0005")
SPOT_FEE = D("0.001")  # 10 bps, in the asset received


async def until(condition: Any, timeout: float = WAIT_S) -> float:
    return await wait_for_condition(condition, timeout)


def usdm(sim: Sim, key: str = KEY, secret: str = SECRET, **kw: Any) -> CcxtClient:
    options: dict[str, Any] = {
        "account_id": ACCOUNT,
        "timeout_s": 3.0,
        "resolve_timeout_s": 1.0,
        "reconnect_max_s": 0.1,
        "stream_connect_timeout_s": 3.0,
    }
    return CcxtClient(
        "sim",
        "binanceusdm",
        api_key=key,
        secret=secret,
        urls={"rest": sim.server.rest_url, "ws": sim.server.ws_url},
        **(options | kw),
    )


def order(
    coid: str,
    side: Side = Side.BUY,
    qty: str = "0.002",
    price: str | None = "59990.0",
    *,
    tif: TimeInForce = TimeInForce.GTC,
    symbol: str = "BTCUSDT",
    reduce_only: bool = False,
) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
    )


async def set_profile(sim: Sim, **changes: Any) -> None:
    status, body = await sim.client.admin("POST", "/_sim/profile", changes)
    assert status == 200, body


def orders_sent(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The client order ids of every order the venue is asked to place, in order."""
    sent: list[str] = []
    submit = sim.venue.submit

    async def counting(account_id: str, o: NewOrder) -> ExecutionReport:
        sent.append(o.client_order_id)
        return await submit(account_id, o)

    monkeypatch.setattr(sim.venue, "submit", counting)
    return sent


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    # Books: BTCUSDT bid 60000.0 x 1, asks 60000.1 x 0.002 and 60000.5 x 1.
    async with running() as s:
        yield s


# --- USD-M through ccxt's binanceusdm ------------------------------------------------------


async def test_start_reads_markets_clock_and_capabilities(sim: Sim) -> None:
    async with usdm(sim) as client:
        assert isinstance(client, VenueClient)
        insts = {i.symbol: i for i in await client.instruments()}
        assert set(insts) == {"BTCUSDT", "ETHUSDT", "TSTUSDT"}
        btc = insts["BTCUSDT"]
        assert (btc.kind, btc.tick, btc.lot, btc.min_notional) == (
            InstrumentKind.PERP,
            D("0.1"),
            D("0.001"),
            D(100),
        )
        assert insts["TSTUSDT"].tick == D("0.05")  # not a power of ten: kept exactly
        caps = client.capabilities
        assert caps.instrument_kinds == {InstrumentKind.PERP} and caps.batch_size == 5
        assert caps.post_only and caps.reduce_only and caps.ack_semantics is AckKind.RESULT
        assert caps.client_ids.accepts("bsk-leg-1")
        assert client.typical_rtt_ns is not None and client.typical_rtt_ns > 0
        assert client.clock_rtt_ns is not None
        # The venue's clock is this machine's: the measured offset is within the round trip.
        assert abs(client.clock_offset_ns) <= client.clock_rtt_ns + 1_000_000
        assert abs(await client.server_time_ns() - client.venue_now_ns()) < 1_000_000_000
        book = await client.order_book("BTCUSDT", depth=2)
        assert book.bids[0] == (D("60000.0"), D(1)) and book.asks[0] == (D("60000.1"), D("0.002"))
        assert client.stream_connected


async def test_an_ioc_sweeps_two_levels_and_is_read_back_by_client_id(sim: Sim) -> None:
    async with usdm(sim) as client:
        ack = await client.place(order("io-1", qty="0.003", price="60000.5", tif=TimeInForce.IOC))
        assert ack.ack_kind is AckKind.RESULT and ack.status is OrderStatus.FILLED
        assert ack.client_order_id == "io-1" and ack.order_id.isdigit()
        assert ack.cum_filled == D("0.003") and ack.avg_price is not None
        fills = await client.trades("BTCUSDT", ack.order_id)
        assert [(f.price, f.quantity, f.liquidity) for f in fills] == [
            (D("60000.1"), D("0.002"), Liquidity.TAKER),
            (D("60000.5"), D("0.001"), Liquidity.TAKER),
        ]
        assert all(isinstance(f.trade_id, str) and f.fee_asset == "USDT" for f in fills)
        assert [f.fee for f in fills] == [TAKER * f.price * f.quantity for f in fills]
        queried = await client.query("BTCUSDT", "io-1")
        assert queried.status is OrderStatus.FILLED and queried.order_id == ack.order_id
        assert queried.cum_fee == sum((f.fee for f in fills), D(0))
        assert queried.fee_asset == "USDT" and queried.venue_accept_ns is not None


async def test_limit_orders_rest_are_listed_and_cancelled_by_client_id(sim: Sim) -> None:
    async with usdm(sim) as client:
        ack = await client.place(order("lim-1"))
        assert ack.status is OrderStatus.NEW and ack.price == D("59990.0")
        assert [r.client_order_id for r in await client.open_orders()] == ["lim-1"]
        assert await client.open_orders("ETHUSDT") == []
        queried = await client.query("BTCUSDT", "lim-1")
        assert queried.status is OrderStatus.NEW and queried.venue_accept_ns is not None
        canceled = await client.cancel("BTCUSDT", "lim-1")
        assert canceled.status is OrderStatus.CANCELED and canceled.client_order_id == "lim-1"
        assert await client.open_orders() == []
        with pytest.raises(UnknownOrder):
            await client.cancel("BTCUSDT", "lim-1")
        with pytest.raises(UnknownOrder):
            await client.query("BTCUSDT", "never-sent")
        for i in range(2):
            await client.place(order(f"all-{i}", price=f"5999{i}.0"))
        done = await client.cancel_all("BTCUSDT")
        assert {(r.client_order_id, r.status) for r in done} == {
            ("all-0", OrderStatus.CANCELED),
            ("all-1", OrderStatus.CANCELED),
        }


async def test_post_only_refusal_and_other_refusals(sim: Sim) -> None:
    async with usdm(sim) as client:
        resting = await client.place(order("po-1", tif=TimeInForce.POST_ONLY))
        assert resting.status is OrderStatus.NEW
        assert resting.time_in_force is TimeInForce.POST_ONLY
        with pytest.raises(OrderRejected) as info:
            await client.place(order("po-2", price="60000.1", tif=TimeInForce.POST_ONLY))
        assert info.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
        assert info.value.code == -5022 and info.value.client_order_id == "po-2"
        with pytest.raises(OrderRejected) as info:
            await client.place(order("big-1", qty="20", price="60000.0"))
        assert info.value.reason is RejectReason.INSUFFICIENT_MARGIN and info.value.code == -2019
        with pytest.raises(OrderRejected) as info:
            await client.place(order("po-1"))  # the id of an order that exists
        assert info.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        # Refused before sending what ccxt would round or the venue would run otherwise.
        for bad, reason in (
            (order("x-1", price="59990.05"), RejectReason.PRICE_OFF_TICK),
            (order("x-2", qty="0.0025"), RejectReason.QTY_OFF_LOT),
            (order("x-3", price=None, tif=TimeInForce.FOK), RejectReason.INVALID_PRICE),
            (order("x-4", symbol="DOGEUSDT"), RejectReason.UNKNOWN_SYMBOL),
        ):
            with pytest.raises(OrderRejected) as info:
                await client.place(bad)
            assert info.value.reason is reason, bad
            assert info.value.client_order_id == bad.client_order_id
        assert [r.client_order_id for r in await client.open_orders()] == ["po-1"]


async def test_a_batch_places_each_order_alone(sim: Sim) -> None:
    async with usdm(sim) as client:
        answers = await client.place_batch(
            [
                order("b-1"),
                order("b-2", qty="20", price="60000.0"),  # more than the margin allows
                order("b-3", price="59990.05"),  # off the tick: refused before sending
                order("b-4", price="59980.0"),
            ]
        )
        assert [type(a).__name__ for a in answers] == [
            "ExecutionReport",
            "OrderRejected",
            "OrderRejected",
            "ExecutionReport",
        ]
        assert isinstance(answers[1], OrderRejected)
        assert answers[1].reason is RejectReason.INSUFFICIENT_MARGIN
        assert isinstance(answers[2], OrderRejected)
        assert answers[2].reason is RejectReason.PRICE_OFF_TICK
        assert {r.client_order_id for r in await client.open_orders()} == {"b-1", "b-4"}


async def test_account_and_positions(sim: Sim) -> None:
    async with usdm(sim) as client:
        snap = await client.account()
        assert snap.account_id == ACCOUNT and snap.margin_asset == "USDT"
        assert snap.wallet_balance == snap.available_margin == D(100_000)
        assert snap.positions == [] and await client.positions() == []
        await client.place(order("m-1", qty="0.002", price=None))  # takes 60000.1
        [pos] = await client.positions()
        assert (pos.symbol, pos.quantity, pos.entry_price) == ("BTCUSDT", D("0.002"), D("60000.1"))
        assert pos.leverage == 10 and pos.initial_margin > 0
        snap = await client.account()
        assert [(p.symbol, p.quantity) for p in snap.positions] == [("BTCUSDT", D("0.002"))]
        assert snap.wallet_balance == D(100_000) - TAKER * D("60000.1") * D("0.002")
        assert snap.position_initial_margin == pos.initial_margin
        closing = await client.place(order("m-2", Side.SELL, price=None, reduce_only=True))
        assert closing.status is OrderStatus.FILLED and closing.reduce_only
        assert await client.positions() == []


async def test_the_stream_shows_each_fill_with_its_fee_and_liquidity(sim: Sim) -> None:
    async with usdm(sim) as client:
        reader = Reader(client.execution_reports())
        # A taker sweeping two levels: two trades, each shown once, fees adding up.
        await client.place(order("tk-1", qty="0.003", price="60000.5", tif=TimeInForce.IOC))

        def fills_of(coid: str) -> list[ExecutionReport]:
            return [r for r in reader.items if r.client_order_id == coid and r.last_fill]

        await reader.wait(lambda _: len(fills_of("tk-1")) == 2)
        shown = fills_of("tk-1")
        assert [r.last_fill.liquidity for r in shown if r.last_fill] == [Liquidity.TAKER] * 2
        assert [r.last_fill.price for r in shown if r.last_fill] == [D("60000.1"), D("60000.5")]
        assert len({r.last_fill.trade_id for r in shown if r.last_fill}) == 2
        assert shown[-1].status is OrderStatus.FILLED
        assert shown[-1].cum_fee == sum((r.last_fill.fee for r in shown if r.last_fill), D(0))
        # A maker: a sell resting at the best ask now, taken by the rest of the market.
        await client.place(order("mk-1", Side.SELL, qty="0.002", price="60000.3"))
        new = await reader.report("mk-1", OrderStatus.NEW)
        assert new.venue_accept_ns is not None and new.last_fill is None
        sim.trade("BTCUSDT", Side.BUY, "60000.3", "0.002")
        made = await reader.report("mk-1", OrderStatus.FILLED)
        assert made.last_fill is not None and made.last_fill.liquidity is Liquidity.MAKER
        assert made.last_fill.price == D("60000.3") and made.last_fill.quantity == D("0.002")
        assert made.cum_fee == made.last_fill.fee == MAKER * D("60000.3") * D("0.002")
        assert made.fee_asset == "USDT" and made.last_fill.trade_id.isdigit()
        await reader.stop()


async def test_an_unknown_outcome_is_resolved_by_query_never_by_resending(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = orders_sent(sim, monkeypatch)
    async with usdm(sim, resolve_timeout_s=0.0) as client:
        # The answer is lost, and the venue applies the order only 0.3 s later: the one
        # query the client makes at once finds nothing.
        await set_profile(
            sim,
            unknown_rate=1.0,
            unknown_applied=1.0,
            unknown_apply_delay={"median_ms": 300.0, "p99_ms": 300.0},
        )
        report = await client.place(order("u-1"))
        assert report.ack_kind is AckKind.UNKNOWN and report.status is OrderStatus.PENDING_NEW
        assert report.order_id == "" and report.client_order_id == "u-1"

        async def found() -> bool:
            try:
                return (await client.query("BTCUSDT", "u-1")).status is OrderStatus.NEW
            except UnknownOrder:
                return False

        await until(found)
        assert sent == ["u-1"]  # resolved by query, never sent again
    # With time to resolve, the answer is the order as the query finds it.
    async with usdm(sim, resolve_timeout_s=2.0) as client:
        await set_profile(sim, unknown_rate=1.0, unknown_applied=1.0, unknown_apply_delay=None)
        report = await client.place(order("u-2", price="59980.0"))
        assert report.ack_kind is AckKind.RESULT and report.status is OrderStatus.NEW
        assert sent == ["u-1", "u-2"]
        await set_profile(sim, unknown_applied=0.0)  # lost before it was applied
        lost = await client.place(order("u-3", price="59970.0"))
        assert lost.ack_kind is AckKind.UNKNOWN and sent == ["u-1", "u-2", "u-3"]
        with pytest.raises(UnknownOrder):
            await client.query("BTCUSDT", "u-3")


async def test_the_stream_reconnects_and_resyncs_what_it_missed(sim: Sim) -> None:
    async with usdm(sim) as client:
        reader = Reader(client.execution_reports())
        await client.place(order("g-1", Side.SELL, price="60000.3"))
        await reader.report("g-1", OrderStatus.NEW)
        # The venue goes down: it closes the streams and refuses to reconnect...
        sim.venue.conditions.start_outage(sim.venue.now_ns(), 30.0)
        await until(lambda: not client.stream_connected)
        # ...while the order fills.
        sim.trade("BTCUSDT", Side.BUY, "60000.3", "0.004")
        ex = sim.venue.exchange
        await until(lambda: ex.query(ACCOUNT, "BTCUSDT", "g-1").status is OrderStatus.FILLED)
        assert not any(r.status is OrderStatus.FILLED for r in reader.items)
        sim.venue.conditions.stop_outage()
        filled = await reader.report("g-1", OrderStatus.FILLED)  # from the resync
        assert filled.cum_filled == D("0.002") and filled.cum_fee == MAKER * D("60000.3") * D(
            "0.002"
        )
        assert client.reconnects >= 1 and client.resyncs >= 1
        # Dropped from this side (a network drop): it reconnects and streams again.
        await until(lambda: client.stream_connected)
        await client.drop_streams()
        await until(lambda: client.reconnects >= 2 and client.stream_connected)
        await client.place(order("g-2"))
        await reader.report("g-2", OrderStatus.NEW)
        await reader.stop()


async def test_rate_limit_says_when_to_come_back(sim: Sim) -> None:
    async with usdm(sim) as client:
        await set_profile(sim, orders_per_minute=2)
        for i in range(2):
            await client.place(order(f"rl-{i}"))
        with pytest.raises(RateLimited) as info:
            await client.place(order("rl-2"))
        assert info.value.code == -1015
        assert info.value.retry_after_s is not None and 0 < info.value.retry_after_s <= 60


async def test_an_outage_refuses_for_certain(sim: Sim) -> None:
    async with usdm(sim) as client:
        status, _ = await sim.client.admin("POST", "/_sim/outage", {"duration_s": 30})
        assert status == 200
        with pytest.raises(VenueUnavailable) as info:
            await client.place(order("out-1"))
        assert type(info.value) is VenueUnavailable  # refused (-1001), not "unknown"
        await sim.client.admin("DELETE", "/_sim/outage")
        with pytest.raises(UnknownOrder):
            await client.query("BTCUSDT", "out-1")  # it was never placed


async def test_bad_credentials_are_auth_errors_and_secrets_stay_hidden(
    sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    stranger = usdm(sim, key="nobody-key-123", secret="nobody-secret-456")
    with pytest.raises(AuthError) as info:
        await stranger.start()
    assert info.value.code == -2015 and "nobody-secret-456" not in str(info.value)
    assert stranger.closed
    wrong_secret = usdm(sim, secret="not-the-secret-789")
    with pytest.raises(AuthError) as info:
        await wrong_secret.start()  # public calls work, the first signed one does not
    assert info.value.code == -1022
    assert "nobody-secret-456" not in repr(stranger) and "nobody-key-123" not in repr(stranger)
    assert "not-the-secret-789" not in repr(wrong_secret)
    logged = caplog.text
    assert "nobody-secret-456" not in logged and "not-the-secret-789" not in logged
    assert "nobody-key-123" not in logged


async def test_a_full_report_queue_ends_the_stream_with_an_error(sim: Sim) -> None:
    async with usdm(sim, report_queue=2) as client:
        for i in range(3):
            await client.place(order(f"q-{i}", price=f"5998{i}.0"))
        await until(lambda: client._user.overflowed)
        stream = client.execution_reports()
        with pytest.raises(VenueUnavailable, match="overflowed"):
            await anext(stream)
        # Reading resumes with what comes next; the missed state is read by query.
        assert {r.client_order_id for r in await client.open_orders()} == {"q-0", "q-1", "q-2"}
        await client.cancel("BTCUSDT", "q-0")
        reader = Reader(client.execution_reports())
        await reader.report("q-0", OrderStatus.CANCELED)
        await reader.stop()


async def test_close_ends_the_stream_and_every_task(sim: Sim) -> None:
    client = usdm(sim)
    await client.start()
    reports = Reader(client.execution_reports())
    await client.close()
    await asyncio.wait_for(reports.task, WAIT_S)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("sim-")]
    assert left == [] and not client.stream_connected
    with pytest.raises(VenueUnavailable):
        await client.server_time_ns()


# --- spot through ccxt's binance ---------------------------------------------------------------

STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]  # tick 0.01, lot 0.0001, min notional 5
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
SPOT_KEY, SPOT_SECRET, SPOT_ACCOUNT = "spot-key-0001", "spot-secret-0001", "spot-desk"


@dataclass
class Spot:
    server: BinanceServer
    venue: SimVenue
    market: ScriptedMarket

    def client(self, key: str = SPOT_KEY, **kw: Any) -> CcxtClient:
        options: dict[str, Any] = {
            "account_id": SPOT_ACCOUNT,
            "timeout_s": 3.0,
            "resolve_timeout_s": 1.0,
            "reconnect_max_s": 0.1,
        }
        return CcxtClient(
            "spot-sim",
            "binance",
            api_key=key,
            secret=SPOT_SECRET,
            urls={"rest": self.server.rest_url, "ws": self.server.ws_url},
            **(options | kw),
        )

    def trade(self, aggressor: Side, price: str, qty: str) -> None:
        self.market.push(
            TradePrint(
                self.venue.now_ns(),
                "STETHUSDT",
                aggressor,
                int(D(price) / STETH.tick),
                int(D(qty) / STETH.lot),
            )
        )


@pytest.fixture
async def spot() -> AsyncIterator[Spot]:
    market = ScriptedMarket([BTC, STETH])
    market.push(
        DepthUpdate(0, "STETHUSDT", bids=[(299_000, 100_000)], asks=[(300_000, 100_000)])
    )  # 2990.00 x 10 / 3000.00 x 10
    exchange = SimExchange("spot-sim", market)
    exchange.open_account(
        AccountSpec(
            account_id=SPOT_ACCOUNT,
            balances={"USDT": D(1_000)},
            spot_balances={"USDT": D(100_000), "STETH": D(10)},
        )
    )
    profile = VenueProfile(
        ack=AckKind.RESULT, request=ZERO, processing=ZERO, response=ZERO, stream_lag=ZERO
    )
    venue = SimVenue(exchange, profile, seed=1)
    creds = {SPOT_KEY: ApiCredential(api_key=SPOT_KEY, secret=SPOT_SECRET, account_id=SPOT_ACCOUNT)}
    async with BinanceServer(venue, creds) as server:
        routes = {getattr(r.resource, "canonical", "") for r in server.app.router.routes()}
        if "/api/v3/order" not in routes:
            pytest.skip("the simulator does not serve Binance's spot API (/api/v3) yet")
        yield Spot(server, venue, market)


async def test_spot_orders_fills_and_account(spot: Spot) -> None:
    async with spot.client() as client:
        [inst] = await client.instruments()
        assert (inst.symbol, inst.kind, inst.tick, inst.lot) == (
            "STETHUSDT",
            InstrumentKind.SPOT,
            D("0.01"),
            D("0.0001"),
        )
        caps = client.capabilities
        assert caps.instrument_kinds == {InstrumentKind.SPOT} and not caps.reduce_only
        assert caps.batch_size == 1 and caps.post_only
        reader = Reader(client.execution_reports())
        ack = await client.place(
            order("s-1", qty="0.5", price="3000.00", tif=TimeInForce.IOC, symbol="STETHUSDT")
        )
        assert ack.status is OrderStatus.FILLED and ack.ack_kind is AckKind.RESULT
        # A spot buy pays its fee in the asset received.
        assert ack.cum_fee == SPOT_FEE * D("0.5") and ack.fee_asset == "STETH"
        shown = await reader.report("s-1", OrderStatus.FILLED)
        await reader.wait(lambda items: any(r.last_fill for r in items))
        fill = next(r.last_fill for r in reader.items if r.last_fill)
        assert fill.liquidity is Liquidity.TAKER and fill.fee_asset == "STETH"
        assert shown.venue_accept_ns is not None
        [listed] = await client.trades("STETHUSDT", ack.order_id)
        assert listed.trade_id == fill.trade_id and listed.fee == SPOT_FEE * D("0.5")
        queried = await client.query("STETHUSDT", "s-1")
        assert queried.cum_fee == SPOT_FEE * D("0.5") and queried.order_id == ack.order_id
        # Resting as the best ask, then taken by the market: a maker fill.
        await client.place(order("s-2", Side.SELL, "1.0", "2999.00", symbol="STETHUSDT"))
        spot.trade(Side.BUY, "2999.00", "1.0")
        made = await reader.report("s-2", OrderStatus.FILLED)
        assert made.last_fill is not None and made.last_fill.liquidity is Liquidity.MAKER
        assert made.fee_asset == "USDT"  # a sell receives USDT
        with pytest.raises(OrderRejected) as info:
            await client.place(
                order("s-3", price="3000.00", tif=TimeInForce.POST_ONLY, symbol="STETHUSDT")
            )
        assert info.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
        with pytest.raises(OrderRejected) as info:
            await client.place(order("s-4", qty="1000", price="2990.00", symbol="STETHUSDT"))
        assert info.value.reason is RejectReason.INSUFFICIENT_MARGIN
        with pytest.raises(OrderRejected) as info:
            await client.place(order("s-5", Side.SELL, "0.1", None, symbol="STETHUSDT",
                                     reduce_only=True))  # fmt: skip
        assert info.value.reason is RejectReason.VENUE_REFUSED  # no reduce-only on spot
        rest = await client.place(order("s-6", qty="0.1", price="2980.00", symbol="STETHUSDT"))
        assert rest.status is OrderStatus.NEW
        assert (await client.cancel("STETHUSDT", "s-6")).status is OrderStatus.CANCELED
        snap = await client.account()
        held = {b.asset: b.wallet for b in snap.spot_balances}
        assert held["STETH"] == D(10) + D("0.5") - SPOT_FEE * D("0.5") - D(1)
        assert snap.positions == [] and await client.positions() == []
        assert snap.margin_asset == "USDT" and snap.balances == [] and snap.wallet_balance == 0
        await reader.stop()


async def test_spot_unknown_outcome_and_bad_credentials(
    spot: Spot, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    submit = spot.venue.submit

    async def counting(account_id: str, o: NewOrder) -> ExecutionReport:
        sent.append(o.client_order_id)
        return await submit(account_id, o)

    monkeypatch.setattr(spot.venue, "submit", counting)
    async with spot.client() as client:
        spot.venue.conditions.set_profile(
            VenueProfile(
                ack=AckKind.RESULT,
                request=ZERO,
                processing=ZERO,
                response=ZERO,
                stream_lag=ZERO,
                unknown_rate=1.0,
            )
        )
        report = await client.place(order("su-1", qty="0.1", price="2980.00", symbol="STETHUSDT"))
        assert report.ack_kind is AckKind.RESULT and report.status is OrderStatus.NEW
        assert sent == ["su-1"]
    stranger = spot.client(key="nobody-key-123")
    with pytest.raises(AuthError):
        await stranger.start()  # the user stream's subscription is signed with the key
