"""Binance's current USD-M routes on the simulated venue, over real sockets: the book
ticker, `/fapi/v3/balance`, `allOrders`, and the streams under `/public`, `/market` and
`/private` (ccxt.pro's `watch_orders` opens `/private/ws?listenKey=…`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.test_binance_server import (
    KEY,
    SECRET,
    WAIT_S,
    Sim,
    order_updates,
    receive,
    running,
)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running() as s:
        yield s


async def test_the_book_ticker_of_one_symbol_and_of_every_one(sim: Sim) -> None:
    status, one = await sim.client.public("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")
    assert status == 200
    assert (one["symbol"], one["bidPrice"], one["bidQty"]) == ("BTCUSDT", "60000.0", "1.000")
    assert (one["askPrice"], one["askQty"]) == ("60000.1", "0.002")
    assert one["time"] > 0 and "lastUpdateId" in one
    status, every = await sim.client.public("/fapi/v1/ticker/bookTicker")
    assert status == 200
    assert {t["symbol"] for t in every} == {"BTCUSDT", "ETHUSDT", "TSTUSDT"}
    status, unknown = await sim.client.public("/fapi/v1/ticker/bookTicker", symbol="NOPEUSDT")
    assert (status, unknown["code"]) == (400, -1121)


async def test_balance_v3_answers_as_v2(sim: Sim) -> None:
    v2 = await sim.client.signed("GET", "/fapi/v2/balance")
    v3 = await sim.client.signed("GET", "/fapi/v3/balance")

    def rows(answer: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in row.items() if k != "updateTime"} for row in answer]

    assert v2[0] == v3[0] == 200 and rows(v2[1]) == rows(v3[1])
    assert any(b["asset"] == "USDT" and b["balance"].startswith("100000") for b in v3[1])


async def test_all_orders_lists_open_and_ended_orders_oldest_first(sim: Sim) -> None:
    c = sim.client
    btc = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}
    limit = {"type": "LIMIT", "price": "59990.0", "timeInForce": "GTC"}
    resting = (await c.order(**btc, **limit, newClientOrderId="rest-1"))[1]
    filled = (await c.order(**btc, type="MARKET", newClientOrderId="take-1"))[1]
    await c.order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.01")  # not BTC's
    status, listed = await c.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
    assert status == 200
    assert [(o["clientOrderId"], o["status"]) for o in listed] == [
        ("rest-1", "NEW"),
        ("take-1", "FILLED"),
    ]
    assert listed[1]["executedQty"] == "0.002" and listed[0]["time"] <= listed[1]["time"]
    # From an order id on; the newest `limit`.
    since = (await c.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT",
                            orderId=filled["orderId"]))[1]  # fmt: skip
    assert [o["orderId"] for o in since] == [filled["orderId"]]
    newest = (await c.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT", limit=1))[1]
    assert [o["orderId"] for o in newest] == [filled["orderId"]]
    assert resting["orderId"] < filled["orderId"]
    status, missing = await c.signed("GET", "/fapi/v1/allOrders")
    assert (status, missing["code"]) == (400, -1102)  # symbol is required


async def test_user_data_on_the_private_route_and_market_data_on_public_and_market(
    sim: Sim,
) -> None:
    c = sim.client
    key = (await c.send("POST", "/fapi/v1/listenKey"))[1]["listenKey"]
    base = sim.server.ws_url
    async with (
        c.session.ws_connect(f"{base}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE")
        as private,
        c.session.ws_connect(f"{base}/public/stream?streams=btcusdt@bookTicker") as public,
        c.session.ws_connect(f"{base}/market/ws/btcusdt@trade") as market,
    ):  # fmt: skip
        sim.book("BTCUSDT", [("60000.0", "3")], [])
        tickers = await receive(public, lambda m: any(t["data"]["B"] == "3.000" for t in m))
        assert tickers[-1]["stream"] == "btcusdt@bookTicker"
        await c.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002",
                      newClientOrderId="priv-1")  # fmt: skip
        got = await receive(private, lambda m: bool(order_updates(m, "priv-1")))
        assert order_updates(got, "priv-1")[-1]["X"] in ("NEW", "FILLED")
        trades = await receive(market, lambda m: any(t.get("e") == "trade" for t in m))
        assert trades[-1]["s"] == "BTCUSDT"
    status, body = await c.public("/private/ws")
    assert (status, body["code"]) == (400, -1102)  # no listenKey


async def test_stock_ccxt_pro_watches_orders_on_the_private_route(sim: Sim) -> None:
    from ccxt.pro import binanceusdm  # noqa: PLC0415

    ex = binanceusdm({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
    ex.options["fetchCurrencies"] = False
    for name in list(ex.urls["api"]):
        if isinstance(ex.urls["api"][name], str):
            ex.urls["api"][name] = f"{sim.server.rest_url}/not-usdm"
    for version in ("v1", "v2", "v3"):
        suffix = "" if version == "v1" else version.upper()
        for scope in ("fapiPublic", "fapiPrivate"):
            ex.urls["api"][scope + suffix] = f"{sim.server.rest_url}/fapi/{version}"
    ex.urls["api"]["ws"]["linear"] = f"{sim.server.ws_url}/ws"  # ccxt.pro adds /private
    try:
        await ex.load_markets()
        watching = asyncio.create_task(ex.watch_orders("BTC/USDT:USDT"))
        await asyncio.sleep(0)  # the watch subscribes first
        deadline = asyncio.get_running_loop().time() + WAIT_S
        placed = None
        while not watching.done():
            assert asyncio.get_running_loop().time() < deadline, "watch_orders saw nothing"
            if placed is None:
                placed = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
            await asyncio.wait({watching}, timeout=0.2)
        orders = watching.result()
        assert placed is not None and orders
        assert orders[-1]["id"] == placed["id"] and orders[-1]["symbol"] == "BTC/USDT:USDT"
    finally:
        await ex.close()


async def test_what_is_not_served_is_answered_404(sim: Sim) -> None:
    for path in ("/fapi/v1/ticker/24hr", "/fapi/v1/premiumIndex", "/sapi/v1/capital/config/getall"):
        status, _ = await sim.client.public(path)
        assert status == 404, path
