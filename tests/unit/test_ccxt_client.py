"""`CcxtClient` without a network: what it refuses to build, what it declares, the orders it
refuses before sending, how a batch answer is matched to its orders, and market events from
a hand-written stand-in for ccxt.pro's watches."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support import until as wait_until
from tests.unit.test_ccxt_mapping import USDM_MARKET
from venues.ccxt import CcxtClient
from venues.errors import AuthError, OrderRejected
from venues.model import (
    AckKind,
    BookTicker,
    InstrumentKind,
    MarketTrade,
    NewOrder,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

D = Decimal
KEY, SECRET = "unit-key-000111", "unit-secret-000222"


def client(exchange: str = "binanceusdm", **kw: Any) -> CcxtClient:
    return CcxtClient("v", exchange, api_key=KEY, secret=SECRET, **kw)


def with_markets(c: CcxtClient, *markets: dict[str, Any]) -> CcxtClient:
    """The client as if `start()` had loaded these markets."""
    c.exchange.markets = {m["symbol"]: m for m in markets}
    c._index(c.exchange.markets)
    return c


def new(coid: str, **changes: Any) -> NewOrder:
    base: dict[str, Any] = {
        "client_order_id": coid,
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "quantity": D("0.002"),
        "price": D("60000.0"),
    }
    return NewOrder(**(base | changes))


def test_what_it_refuses_to_build() -> None:
    with pytest.raises(ValueError, match="did you mean"):
        client("binanceusd")
    with pytest.raises(AuthError, match="API key and secret"):
        CcxtClient("v", "okx", api_key="", secret=SECRET)
    with pytest.raises(ValueError, match=r"urls\.rest: .*not a loopback address"):
        client(urls={"rest": "http://fapi.binance.com"})
    with pytest.raises(ValueError, match="unknown key 'api'"):
        client(urls={"api": "http://127.0.0.1:1"})


def test_secrets_stay_out_of_repr_and_pickles() -> None:
    c = client(password="unit-pass-000333")
    assert SECRET not in repr(c) and KEY not in repr(c) and "unit-pass" not in repr(c)
    assert "binanceusdm" in repr(c)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(c)


def test_urls_move_ccxts_roots_for_a_simulator() -> None:
    c = client(urls={"rest": "http://127.0.0.1:8", "ws": "ws://127.0.0.1:8"})
    api = c.exchange.urls["api"]
    assert api["fapiPrivate"] == "http://127.0.0.1:8/fapi/v1"
    assert api["ws"]["linear"] == "ws://127.0.0.1:8/ws"


@pytest.mark.parametrize(
    ("exchange", "kinds", "batch", "reduce_only", "fok"),
    [
        ("binanceusdm", {InstrumentKind.PERP}, 5, True, True),
        ("binance", {InstrumentKind.SPOT}, 1, False, True),  # createOrders is contracts-only
        ("okx", {InstrumentKind.SPOT}, 20, False, True),  # ccxt's defaultType: spot
        ("hyperliquid", {InstrumentKind.PERP}, 1000, True, False),  # no FOK there
    ],
)
def test_capabilities_come_from_ccxt(
    exchange: str, kinds: set[InstrumentKind], batch: int, reduce_only: bool, fok: bool
) -> None:
    caps = client(exchange).capabilities
    assert caps.instrument_kinds == kinds and caps.batch_size == batch
    assert caps.reduce_only is reduce_only and caps.post_only
    assert (TimeInForce.FOK in caps.time_in_force) is fok


def test_the_ack_semantics_and_the_client_id_rule_follow_the_exchange() -> None:
    assert client("binanceusdm").ack_semantics is AckKind.RESULT
    assert client("okx").ack_semantics is AckKind.ACCEPTED
    assert client("okx", ack_semantics=AckKind.RECEIPT).ack_semantics is AckKind.RECEIPT
    assert client("okx").capabilities.client_ids.max_len == 32


def test_orders_ccxt_would_change_are_refused_before_sending() -> None:
    c = with_markets(client(), USDM_MARKET)
    inst = c._instruments["BTCUSDT"]
    refused = {
        "off-tick": (new("a", price=D("60000.05")), RejectReason.PRICE_OFF_TICK),
        "off-lot": (new("b", quantity=D("0.0025")), RejectReason.QTY_OFF_LOT),
        "market FOK": (
            new("c", type=OrderType.MARKET, price=None, time_in_force=TimeInForce.FOK),
            RejectReason.INVALID_PRICE,
        ),
    }
    for what, (order, reason) in refused.items():
        with pytest.raises(OrderRejected) as info:
            c._order_args(order, inst)
        assert info.value.reason is reason, what
        assert info.value.client_order_id == order.client_order_id
    symbol, kind, side, amount, price, params = c._order_args(
        new("d", time_in_force=TimeInForce.POST_ONLY, reduce_only=True), inst
    )
    assert (symbol, kind, side, amount, price) == ("BTC/USDT:USDT", "limit", "buy", 0.002, 60000.0)
    assert params == {"clientOrderId": "d", "postOnly": True, "reduceOnly": True}


def test_okx_is_sent_a_digest_and_reports_map_it_back() -> None:
    okx_market = USDM_MARKET | {"id": "BTC-USDT-SWAP", "symbol": "BTC/USDT:USDT"}
    c = with_markets(client("okx"), okx_market)
    order = new("bsk-1-leg:0/7", symbol="BTC-USDT-SWAP")
    *_, params = c._order_args(order, c._instruments["BTC-USDT-SWAP"])
    sent = params["clientOrderId"]
    assert sent.isalnum() and len(sent) == 32
    answer = {"id": "9", "clientOrderId": sent, "symbol": "BTC/USDT:USDT", "side": "buy",
              "type": "limit", "amount": 0.002, "price": 60000.0, "filled": 0.0,
              "status": "open"}  # fmt: skip
    report = c.report(answer)
    assert report is not None and report.client_order_id == "bsk-1-leg:0/7"
    assert report.symbol == "BTC-USDT-SWAP"


def test_a_batch_answer_is_matched_to_its_orders_by_client_id() -> None:
    c = with_markets(client(), USDM_MARKET)
    orders = [new("o-1"), new("o-2"), new("o-3"), new("o-4")]

    def placed(coid: str) -> dict[str, Any]:
        return {"id": coid[-1], "clientOrderId": coid, "timestamp": 5}

    def refusal(code: int) -> dict[str, Any]:
        return {"id": None, "clientOrderId": None, "timestamp": None,
                "info": {"code": code, "msg": "x"}}  # fmt: skip

    # As ccxt hands it over: sorted by time, the refusals (no time) first, in their order.
    raw = [refusal(-2019), refusal(-4164), placed("o-3"), placed("o-1")]
    paired = c._pair_items(orders, raw)
    assert [p.get("clientOrderId") or p["info"]["code"] for p in paired] == [
        "o-1",
        -2019,
        "o-3",
        -4164,
    ]


class StubWatches:
    """ccxt.pro's market watches, each answering what a test pushes, then waiting."""

    def __init__(self) -> None:
        self.tops: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.prints: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self.asked: list[tuple[str, list[str]]] = []

    async def watch_bids_asks(self, symbols: list[str]) -> dict[str, Any]:
        self.asked.append(("tops", symbols))
        return await self.tops.get()

    async def watch_trades_for_symbols(self, symbols: list[str]) -> list[dict[str, Any]]:
        self.asked.append(("trades", symbols))
        return await self.prints.get()


async def test_market_events_from_ccxts_watches() -> None:
    c = with_markets(client(), USDM_MARKET)
    stub = StubWatches()
    c.exchange.watch_bids_asks = stub.watch_bids_asks
    c.exchange.watch_trades_for_symbols = stub.watch_trades_for_symbols
    got: list[Any] = []

    async def read() -> None:
        async for event in c.market_events(["BTCUSDT"]):
            got.append(event)

    reader = asyncio.create_task(read())
    unified = "BTC/USDT:USDT"
    stub.tops.put_nowait(
        {unified: {"symbol": unified, "bid": 60000.0, "bidVolume": 1.0, "ask": 60000.1,
                   "askVolume": 0.002, "timestamp": 1_000}}
    )  # fmt: skip
    stub.prints.put_nowait(
        [{"id": "77", "symbol": unified, "side": "buy", "price": 60000.1, "amount": 0.002,
          "timestamp": 1_001},
         {"id": "78", "symbol": "ETH/USDT:USDT", "side": "buy", "price": 1.0, "amount": 1.0}]
    )  # fmt: skip
    await until(lambda: len(got) >= 2)
    tops = [e for e in got if isinstance(e, BookTicker)]
    prints = [e for e in got if isinstance(e, MarketTrade)]
    assert [(t.symbol, t.bid, t.ask_qty, t.ts_ns) for t in tops] == [
        ("BTCUSDT", D("60000.0"), D("0.002"), 1_000_000_000)
    ]
    assert [(p.trade_id, p.aggressor, p.quantity) for p in prints] == [(77, Side.BUY, D("0.002"))]
    assert ("tops", [unified]) in stub.asked and ("trades", [unified]) in stub.asked
    await c.close()  # the stream ends with the client
    await asyncio.wait_for(reader, 2.0)


async def test_a_failing_watch_is_called_again() -> None:
    c = with_markets(client(reconnect_max_s=0.01), USDM_MARKET)
    calls = 0

    async def flaky(symbols: list[str]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("connection reset")
        await asyncio.Event().wait()
        return {}

    async def quiet(symbols: list[str]) -> list[dict[str, Any]]:
        await asyncio.Event().wait()
        return []

    c.exchange.watch_bids_asks = flaky
    c.exchange.watch_trades_for_symbols = quiet
    stream = c.market_events(["BTCUSDT"])
    reader = asyncio.create_task(anext(stream, None))
    await until(lambda: calls >= 3)
    assert c.market_reconnects == 2
    await c.close()
    assert await asyncio.wait_for(reader, 2.0) is None


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    await wait_until(condition, timeout)
