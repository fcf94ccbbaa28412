"""Binance's spot API on the simulated venue, over real sockets: `/api/v3` REST, the spot
listenKey stream, the WebSocket API's user data subscription (`/ws-api/v3`), and stock ccxt
clients (`binance`, ccxt.pro's `binance`) pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.integration.test_binance_server import (
    BTC,
    FAST,
    KEY,
    SECRET,
    TIMEOUT,
    WAIT_S,
    Client,
    _sign,
    now_ms,
    receive,
    until,
)
from venues.config import ApiCredential
from venues.errors import OrderRejected
from venues.model import RejectReason, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.server import BinanceServer
from venues.sim.server.errors import SPOT_REJECT_CODES, spot_reject_error

D = Decimal
STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]  # spot: tick 0.01, lot 0.0001, min notional 5
MAKER_KEY, MAKER_SECRET = "maker-key", "maker-secret"
# Binance's executionReport fields (each one letter) the simulator sends on every event.
EXECUTION_FIELDS = frozenset("eEscSofqpPFgCxXrilzLnNTtIwmMOZYQV")


@dataclass
class Spot:
    server: BinanceServer
    venue: SimVenue
    market: ScriptedMarket
    client: Client  # account "desk": 100,000 USDT and 10 STETH in its spot wallet
    maker: Client  # account "maker": 1,000,000 USDT and 1,000 STETH

    def trade(self, aggressor: Side, price: str, qty: str) -> None:
        """A taker from the rest of the market, down (up) to `price`."""
        self.market.push(
            TradePrint(
                self.venue.now_ns(),
                "STETHUSDT",
                aggressor,
                int(D(price) / STETH.tick),
                int(D(qty) / STETH.lot),
            )
        )

    async def order(self, client: Client | None = None, **params: Any) -> tuple[int, Any]:
        c = client or self.client
        return await c.signed("POST", "/api/v3/order", in_body=True, **params)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Spot]:
    market = ScriptedMarket([BTC, STETH])
    exchange = SimExchange("sim", market, start_ns=time.time_ns())
    exchange.open_account(
        AccountSpec(
            account_id="desk",
            balances={"USDT": D(100_000)},
            spot_balances={"USDT": D(100_000), "STETH": D(10)},
        )
    )
    exchange.open_account(
        AccountSpec(
            account_id="maker",
            balances={"USDT": D(0)},
            spot_balances={"USDT": D(1_000_000), "STETH": D(1_000)},
        )
    )
    venue = SimVenue(exchange, FAST, seed=1)
    creds = {
        KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id="desk"),
        MAKER_KEY: ApiCredential(api_key=MAKER_KEY, secret=MAKER_SECRET, account_id="maker"),
    }
    async with (
        BinanceServer(venue, creds) as server,
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
    ):
        maker = _KeyedClient(session, server.rest_url, MAKER_KEY, MAKER_SECRET)
        spot = Spot(server, venue, market, Client(session, server.rest_url), maker)
        now = venue.now_ns()
        market.push(
            DepthUpdate(now, "STETHUSDT", [(259_900, 1_000_000)], [(260_100, 1_000_000)]),
            DepthUpdate(now, "BTCUSDT", [(600_000, 1_000)], [(600_001, 1_000)]),
        )
        await until(lambda: venue.exchange.books["STETHUSDT"].best_ask() is not None)
        yield spot


class _KeyedClient(Client):
    """A raw client signing with another account's key and secret."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str, secret: str) -> None:
        super().__init__(session, base)
        self.key, self.secret = key, secret

    async def signed(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        params.setdefault("key", self.key)
        params.setdefault("secret", self.secret)
        return await super().signed(method, path, **params)


@pytest.fixture
async def spot() -> AsyncIterator[Spot]:
    async with running() as s:
        yield s


def wallet(account: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {b["asset"]: (b["free"], b["locked"]) for b in account["balances"]}


# --- public endpoints ------------------------------------------------------------------
async def test_each_api_lists_and_serves_its_own_instruments_only(spot: Spot) -> None:
    c = spot.client
    assert await c.public("/api/v3/ping") == (200, {})
    status, body = await c.public("/api/v3/time")
    assert status == 200 and abs(body["serverTime"] - now_ms()) < 1000

    status, info = await c.public("/api/v3/exchangeInfo")
    assert status == 200 and [s["symbol"] for s in info["symbols"]] == ["STETHUSDT"]
    (steth,) = info["symbols"]
    assert (steth["status"], steth["baseAsset"], steth["quoteAsset"]) == (
        "TRADING",
        "STETH",
        "USDT",
    )
    assert (steth["baseAssetPrecision"], steth["quoteAssetPrecision"]) == (8, 8)
    assert "LIMIT_MAKER" in steth["orderTypes"] and steth["isSpotTradingAllowed"] is True
    assert steth["permissionSets"] == [["SPOT"]]
    filters = {f["filterType"]: f for f in steth["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert (
        filters["NOTIONAL"]["minNotional"]
        == filters["MIN_NOTIONAL"]["minNotional"]
        == ("5.00000000")
    )
    status, one = await c.public("/api/v3/exchangeInfo", symbols='["STETHUSDT"]')
    assert status == 200 and one["symbols"] == info["symbols"]

    status, futures = await c.public("/fapi/v1/exchangeInfo")
    assert [s["symbol"] for s in futures["symbols"]] == ["BTCUSDT"]

    status, book = await c.public("/api/v3/depth", symbol="STETHUSDT", limit=5)
    assert status == 200 and set(book) == {"lastUpdateId", "bids", "asks"}
    assert book["bids"] == [["2599.00000000", "100.00000000"]]
    assert book["asks"] == [["2601.00000000", "100.00000000"]]
    status, top = await c.public("/api/v3/ticker/bookTicker", symbol="STETHUSDT")
    assert (status, top["bidPrice"], top["askQty"]) == (200, "2599.00000000", "100.00000000")
    status, every = await c.public("/api/v3/ticker/bookTicker")
    assert [t["symbol"] for t in every] == ["STETHUSDT"]

    for path in ("/api/v3/depth", "/api/v3/ticker/bookTicker", "/api/v3/exchangeInfo"):
        status, body = await c.public(path, symbol="BTCUSDT")
        assert (status, body["code"]) == (400, -1121), path
    status, body = await c.public("/fapi/v1/depth", symbol="STETHUSDT")
    assert (status, body["code"]) == (400, -1121)
    status, body = await c.public("/fapi/v1/ticker/bookTicker")
    assert [t["symbol"] for t in body] == ["BTCUSDT"]


# --- orders over REST ------------------------------------------------------------------
async def test_a_resting_buy_locks_quote_and_its_cancel_frees_it(spot: Spot) -> None:
    c = spot.client
    status, placed = await spot.order(
        symbol="STETHUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="2",
        price="2590.00",
        newClientOrderId="rest-1",
    )
    assert status == 200, placed
    assert (placed["status"], placed["fills"], placed["orderListId"]) == ("NEW", [], -1)
    assert (placed["price"], placed["origQty"], placed["type"]) == (
        "2590.00000000",
        "2.00000000",
        "LIMIT",
    )
    assert placed["transactTime"] > 0 and placed["workingTime"] >= placed["transactTime"]

    status, account = await c.signed("GET", "/api/v3/account")
    assert status == 200 and account["accountType"] == "SPOT" and account["canTrade"] is True
    assert account["commissionRates"]["taker"] == "0.00100000"
    assert wallet(account)["USDT"] == ("94820.00000000", "5180.00000000")

    status, got = await c.signed(
        "GET", "/api/v3/order", symbol="STETHUSDT", orderId=placed["orderId"]
    )
    assert status == 200 and got["clientOrderId"] == "rest-1" and got["isWorking"] is True
    status, mine = await c.signed("GET", "/api/v3/openOrders")
    assert [o["clientOrderId"] for o in mine] == ["rest-1"]

    status, canceled = await c.signed(
        "DELETE", "/api/v3/order", symbol="STETHUSDT", origClientOrderId="rest-1"
    )
    assert status == 200 and canceled["status"] == "CANCELED"
    assert canceled["origClientOrderId"] == "rest-1" and canceled["clientOrderId"] != "rest-1"
    status, account = await c.signed("GET", "/api/v3/account")
    assert wallet(account)["USDT"] == ("100000.00000000", "0.00000000")

    status, again = await c.signed(
        "DELETE", "/api/v3/order", symbol="STETHUSDT", origClientOrderId="rest-1"
    )
    assert (status, again["code"], again["msg"]) == (400, -2011, "Unknown order sent.")
    status, missing = await c.signed("GET", "/api/v3/order", symbol="STETHUSDT", orderId=999)
    assert (status, missing["code"], missing["msg"]) == (400, -2013, "Order does not exist.")


async def test_a_market_buy_answers_its_fills_with_the_commission_in_the_base_asset(
    spot: Spot,
) -> None:
    c = spot.client
    status, full = await spot.order(
        symbol="STETHUSDT", side="BUY", type="MARKET", quantity="2", newClientOrderId="mkt-1"
    )
    assert status == 200, full
    assert (full["status"], full["executedQty"], full["cummulativeQuoteQty"]) == (
        "FILLED",
        "2.00000000",
        "5202.00000000",
    )
    (fill,) = full["fills"]
    assert (fill["price"], fill["qty"], fill["commission"], fill["commissionAsset"]) == (
        "2601.00000000",
        "2.00000000",
        "0.00200000",
        "STETH",
    )
    status, account = await c.signed("GET", "/api/v3/account", omitZeroBalances="true")
    assert wallet(account) == {
        "STETH": ("11.99800000", "0.00000000"),
        "USDT": ("94798.00000000", "0.00000000"),
    }
    # The futures wallet did not move.
    status, futures = await c.signed("GET", "/fapi/v2/balance")
    assert [(b["asset"], b["balance"]) for b in futures] == [("USDT", "100000")]

    status, result = await spot.order(
        symbol="STETHUSDT", side="SELL", type="MARKET", quantity="1", newOrderRespType="RESULT"
    )
    assert status == 200 and result["status"] == "FILLED" and "fills" not in result
    status, ack = await spot.order(
        symbol="STETHUSDT", side="SELL", type="MARKET", quantity="1", newOrderRespType="ACK"
    )
    assert status == 200 and set(ack) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "transactTime",
    }

    status, trades = await c.signed("GET", "/api/v3/myTrades", symbol="STETHUSDT")
    assert status == 200 and [t["isBuyer"] for t in trades] == [True, False, False]
    first, sold = trades[0], trades[1]
    assert (first["orderId"], first["commissionAsset"], first["isMaker"]) == (
        full["orderId"],
        "STETH",
        False,
    )
    assert (sold["price"], sold["commission"], sold["commissionAsset"]) == (
        "2599.00000000",
        "2.59900000",
        "USDT",
    )
    assert trades[0]["id"] < trades[1]["id"] < trades[2]["id"]
    status, listed = await c.signed("GET", "/api/v3/allOrders", symbol="STETHUSDT")
    assert listed[0]["clientOrderId"] == "mkt-1"
    assert [o["status"] for o in listed] == ["FILLED"] * 3


async def test_a_maker_fill_is_reported_as_maker_and_pays_its_fee_in_what_it_receives(
    spot: Spot,
) -> None:
    c = spot.client
    status, placed = await spot.order(
        symbol="STETHUSDT",
        side="SELL",
        type="LIMIT_MAKER",
        quantity="3",
        price="2600.00",
        newClientOrderId="lm-1",
    )
    assert status == 200 and set(placed) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "transactTime",
    }  # LIMIT_MAKER answers ACK unless asked otherwise
    status, taken = await spot.order(
        spot.maker, symbol="STETHUSDT", side="BUY", type="MARKET", quantity="3"
    )
    assert status == 200 and taken["fills"][0]["price"] == "2600.00000000"
    status, got = await c.signed(
        "GET", "/api/v3/order", symbol="STETHUSDT", origClientOrderId="lm-1"
    )
    assert (got["status"], got["type"], got["timeInForce"]) == ("FILLED", "LIMIT_MAKER", "GTC")
    (trade,) = (await c.signed("GET", "/api/v3/myTrades", symbol="STETHUSDT"))[1]
    assert (trade["isMaker"], trade["isBuyer"], trade["commission"]) == (True, False, "7.80000000")
    (theirs,) = (await spot.maker.signed("GET", "/api/v3/myTrades", symbol="STETHUSDT"))[1]
    assert theirs["id"] == trade["id"] and theirs["isMaker"] is False
    assert theirs["commission"] == "0.00300000" and theirs["commissionAsset"] == "STETH"


async def test_refusals_are_binance_spot_codes(spot: Spot) -> None:
    c = spot.client
    base = {"symbol": "STETHUSDT", "side": "BUY"}
    limit = {"type": "LIMIT", "timeInForce": "GTC"}
    assert (await spot.order(**base, **limit, quantity="1", price="2590.00", newClientOrderId="d"))[
        0
    ] == 200
    cases: list[tuple[dict[str, str], int, str]] = [
        ({**limit, "quantity": "100", "price": "2590.00"}, -2010, "insufficient balance"),
        ({"side": "SELL", "type": "MARKET", "quantity": "11"}, -2010, "insufficient balance"),
        (
            {"type": "LIMIT_MAKER", "quantity": "1", "price": "2601.00"},
            -2010,
            "Order would immediately match and take.",
        ),
        (
            {**limit, "quantity": "1", "price": "2590.00", "newClientOrderId": "d"},
            -2010,
            "Duplicate",
        ),
        ({**limit, "quantity": "1", "price": "2590.001"}, -1013, "PRICE_FILTER"),
        ({**limit, "quantity": "1.00001", "price": "2590.00"}, -1013, "LOT_SIZE"),
        ({**limit, "quantity": "1", "price": "2590.000000001"}, -1111, "too much precision"),
        ({**limit, "quantity": "0.001", "price": "2590.00"}, -1013, "NOTIONAL"),
        ({**limit, "quantity": "1", "price": "3000.00"}, -1013, "PERCENT_PRICE_BY_SIDE"),
        ({**limit, "quantity": "0", "price": "2590.00"}, -1013, "LOT_SIZE"),
        ({"type": "LIMIT", "quantity": "1", "price": "2590.00"}, -1102, "timeInForce"),
        ({**limit, "quantity": "1"}, -1102, "price"),
        ({"type": "LIMIT", "timeInForce": "GTX", "quantity": "1", "price": "1"}, -1115, ""),
        (
            {"type": "LIMIT_MAKER", "timeInForce": "GTC", "quantity": "1", "price": "2590"},
            -1106,
            "",
        ),
        ({"type": "MARKET", "quantity": "1", "price": "2590.00"}, -1106, "price"),
        ({"type": "MARKET", "quoteOrderQty": "100"}, -1106, "quoteOrderQty"),
        ({"type": "STOP_LOSS", "quantity": "1", "stopPrice": "2500"}, -1116, ""),
        ({**limit, "quantity": "1", "price": "2590.00", "reduceOnly": "true"}, -1104, ""),
        ({"type": "MARKET", "quantity": "1", "newClientOrderId": "a b"}, -1100, "newClientOrder"),
        ({"type": "MARKET", "quantity": "1", "newOrderRespType": "ALL"}, -1136, ""),
    ]
    for params, code, words in cases:
        status, body = await spot.order(**{**base, **params})
        assert (status, body["code"]) == (400, code), (params, body)
        assert words in body["msg"], (params, body)
    status, body = await spot.order(**{**base, "symbol": "BTCUSDT"}, type="MARKET", quantity="1")
    assert (status, body["code"]) == (400, -1121)
    status, body = await c.signed(
        "POST", "/fapi/v1/order", in_body=True, **base, type="MARKET", quantity="1"
    )
    assert (status, body["code"]) == (400, -1121)  # the USD-M API does not trade spot
    status, body = await spot.order(**base, type="MARKET", quantity="1", secret="wrong")
    assert (status, body["code"]) == (400, -1022)
    status, body = await spot.order(**base, type="MARKET", quantity="1", key=None)
    assert (status, body["code"]) == (401, -2014)
    status, body = await spot.order(**base, type="MARKET", quantity="1", key="nobody")
    assert (status, body["code"]) == (401, -2015)
    # The profile's injected rejects.
    assert (await c.admin("POST", "/_sim/profile", {"reject_rate": 1.0}))[0] == 200
    status, body = await spot.order(**base, type="MARKET", quantity="1")
    assert (status, body["code"]) == (400, -2010)


def test_every_reject_reason_has_a_spot_code() -> None:
    assert set(SPOT_REJECT_CODES) == set(RejectReason)
    for reason in RejectReason:
        error = spot_reject_error(OrderRejected("why", reason=reason))
        assert error.code < 0 and error.msg.endswith("(why)")
        assert error.status == (401 if reason is RejectReason.UNKNOWN_ACCOUNT else 400)
    short = spot_reject_error(OrderRejected("no", reason=RejectReason.INSUFFICIENT_BALANCE))
    assert (short.code, short.msg) == (
        -2010,
        "Account has insufficient balance for requested action. (no)",
    )


async def test_a_test_order_is_checked_and_never_placed(spot: Spot) -> None:
    c = spot.client
    order = {"symbol": "STETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
    assert await c.signed("POST", "/api/v3/order/test", in_body=True, **order) == (200, {})
    status, rates = await c.signed(
        "POST", "/api/v3/order/test", in_body=True, **order, computeCommissionRates="true"
    )
    assert status == 200 and rates["standardCommissionForOrder"]["taker"] == "0.00100000"
    status, body = await c.signed(
        "POST", "/api/v3/order/test", in_body=True, **order | {"type": "STOP"}
    )
    assert (status, body["code"]) == (400, -1116)
    assert (await c.signed("GET", "/api/v3/allOrders", symbol="STETHUSDT"))[1] == []


async def test_cancel_open_orders_and_the_sim_order_times(spot: Spot) -> None:
    c = spot.client
    for n, price in enumerate(("2590.00", "2591.00")):
        await spot.order(
            symbol="STETHUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="1",
            price=price,
            newClientOrderId=f"oo-{n}",
        )
    status, gone = await c.signed("DELETE", "/api/v3/openOrders", symbol="STETHUSDT")
    assert status == 200 and sorted(o["origClientOrderId"] for o in gone) == ["oo-0", "oo-1"]
    assert all(o["status"] == "CANCELED" for o in gone)
    assert (await c.signed("GET", "/api/v3/openOrders", symbol="STETHUSDT"))[1] == []
    status, times = await c.admin("GET", "/_sim/orders/oo-0?symbol=STETHUSDT")
    assert status == 200 and times["status"] == "CANCELED"
    assert 0 < times["receiveNs"] <= times["acceptNs"] <= times["updateNs"]


# --- the listenKey stream --------------------------------------------------------------
async def test_the_spot_listen_key_streams_execution_reports_and_balances(spot: Spot) -> None:
    c = spot.client
    status, created = await c.send("POST", "/api/v3/userDataStream")
    assert status == 200
    key = created["listenKey"]
    futures_key = (await c.send("POST", "/fapi/v1/listenKey"))[1]["listenKey"]
    assert futures_key != key
    assert await c.send("PUT", "/api/v3/userDataStream", f"listenKey={key}") == (200, {})
    async with (
        c.session.ws_connect(f"{spot.server.ws_url}/ws/{key}") as ws,
        c.session.ws_connect(f"{spot.server.ws_url}/ws/{futures_key}") as futures,
    ):
        # 3 at 2601.00 takes 1 of the maker's ask there and rests 2.
        status, _ = await spot.order(
            spot.maker,
            symbol="STETHUSDT",
            side="SELL",
            type="LIMIT",
            timeInForce="GTC",
            quantity="1",
            price="2600.50",
        )
        assert status == 200
        status, placed = await spot.order(
            symbol="STETHUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="3",
            price="2600.50",
            newClientOrderId="ws-1",
        )
        assert (status, placed["status"]) == (200, "PARTIALLY_FILLED")
        reports = await receive(ws, lambda m: len(_reports(m, "ws-1")) >= 2)
        spot.trade(Side.SELL, "2600.50", "2")  # the market's seller fills the rest
        reports += await receive(
            ws, lambda m: any(r["X"] == "FILLED" for r in _reports(reports + m, "ws-1"))
        )
        reports += await receive(
            ws, lambda m: any(x["e"] == "outboundAccountPosition" for x in m[-1:])
        )
        # The USD-M key streams the perpetuals only: its first event is this order's.
        await c.signed(
            "POST", "/fapi/v1/order", in_body=True, symbol="BTCUSDT", side="BUY",
            type="MARKET", quantity="0.002", newClientOrderId="perp-1",
        )  # fmt: skip
        (first,) = await receive(futures, lambda m: len(m) == 1)
        assert first["e"] == "ORDER_TRADE_UPDATE" and first["o"]["c"] == "perp-1"

    mine = _reports(reports, "ws-1")
    assert [(r["x"], r["X"], r["l"], r["z"]) for r in mine] == [
        ("NEW", "NEW", "0.00000000", "0.00000000"),
        ("TRADE", "PARTIALLY_FILLED", "1.00000000", "1.00000000"),
        ("TRADE", "FILLED", "2.00000000", "3.00000000"),
    ]
    for r in mine:
        assert set(r) >= EXECUTION_FIELDS, EXECUTION_FIELDS - set(r)
        assert (r["s"], r["S"], r["o"], r["f"], r["i"]) == (
            "STETHUSDT",
            "BUY",
            "LIMIT",
            "GTC",
            placed["orderId"],
        )
    new, taken, made = mine
    assert (new["t"], new["N"], new["w"]) == (-1, None, True) and "W" in new
    assert (taken["m"], taken["n"], taken["N"], taken["L"]) == (
        False,
        "0.00100000",
        "STETH",
        "2600.50000000",
    )
    assert taken["Y"] == "2600.50000000" and taken["Z"] == "2600.50000000"
    assert (made["m"], made["n"], made["w"], made["Z"]) == (
        True,
        "0.00200000",
        False,
        "7801.50000000",
    )
    assert taken["t"] < made["t"] and new["O"] == made["O"]
    positions = [m for m in reports if m["e"] == "outboundAccountPosition"]
    assert positions and {b["a"] for b in positions[-1]["B"]} == {"STETH", "USDT"}
    final = {b["a"]: (b["f"], b["l"]) for b in positions[-1]["B"]}
    assert final == {
        "STETH": ("12.99700000", "0.00000000"),
        "USDT": ("92198.50000000", "0.00000000"),
    }

    assert await c.send("DELETE", "/api/v3/userDataStream", f"listenKey={key}") == (200, {})
    status, body = await c.send("PUT", "/api/v3/userDataStream", f"listenKey={key}")
    assert (status, body["code"]) == (400, -1125)
    status, body = await c.send("PUT", "/api/v3/userDataStream")
    assert (status, body["code"]) == (400, -1102)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await c.session.ws_connect(f"{spot.server.ws_url}/ws/{key}")


def _reports(msgs: list[dict[str, Any]], coid: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m.get("e") == "executionReport" and m["c"] == coid]


async def test_market_streams_show_a_spot_symbol_in_spot_shapes(spot: Spot) -> None:
    base = spot.server.ws_url
    async with (
        spot.client.session.ws_connect(f"{base}/ws/stethusdt@bookTicker") as tickers,
        spot.client.session.ws_connect(f"{base}/stream?streams=stethusdt@trade") as trades,
    ):
        spot.market.push(DepthUpdate(spot.venue.now_ns(), "STETHUSDT", [(259_950, 20_000)], []))
        got = await receive(tickers, lambda m: any(t["b"] == "2599.50000000" for t in m))
        assert set(got[-1]) == {"u", "s", "b", "B", "a", "A"}  # spot's has no event type
        assert (got[-1]["s"], got[-1]["B"], got[-1]["a"]) == (
            "STETHUSDT",
            "2.00000000",
            "2601.00000000",
        )
        await spot.order(symbol="STETHUSDT", side="BUY", type="MARKET", quantity="1")
        (printed, *_) = await receive(trades, bool)
        assert printed["stream"] == "stethusdt@trade"
        trade = printed["data"]
        assert (trade["e"], trade["p"], trade["q"], trade["m"], trade["M"]) == (
            "trade",
            "2601.00000000",
            "1.00000000",
            False,
            True,
        )


# --- the WebSocket API -----------------------------------------------------------------
def _subscribe(key: str = KEY, secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "timestamp": now_ms(), **extra}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    params["signature"] = _sign(secret, payload)
    return {"id": "sub-1", "method": "userDataStream.subscribe.signature", "params": params}


async def _ask(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(request))
    (answer,) = await receive(ws, lambda m: any(x.get("id") == request["id"] for x in m))
    return answer


async def test_the_websocket_api_subscribes_with_a_signature_and_pushes_events(
    spot: Spot,
) -> None:
    c = spot.client
    async with c.session.ws_connect(f"{spot.server.ws_url}/ws-api/v3") as ws:
        assert await _ask(ws, {"id": 1, "method": "ping"}) == {"id": 1, "status": 200, "result": {}}
        bad = await _ask(ws, _subscribe(secret="wrong"))
        assert (bad["status"], bad["error"]["code"]) == (400, -1022) and "result" not in bad
        stale = await _ask(ws, _subscribe() | {"id": "old"} | {"params": {"apiKey": KEY}})
        assert (stale["status"], stale["error"]["code"]) == (400, -1102)  # nor a signature
        stranger = await _ask(ws, _subscribe(key="nobody"))
        assert (stranger["status"], stranger["error"]["code"]) == (401, -2015)
        unknown = await _ask(ws, {"id": 2, "method": "order.place", "params": {}})
        assert (unknown["status"], unknown["error"]["code"]) == (400, -1020)

        ok = await _ask(ws, _subscribe(recvWindow=5000))
        assert ok == {"id": "sub-1", "status": 200, "result": {"subscriptionId": 0}}
        again = await _ask(ws, _subscribe())
        assert (again["status"], again["error"]["code"]) == (400, -2035)
        listed = await _ask(ws, {"id": 3, "method": "session.subscriptions"})
        assert listed["result"] == [{"subscriptionId": 0}]

        await spot.order(symbol="STETHUSDT", side="BUY", type="MARKET", quantity="1",
                         newClientOrderId="api-1")  # fmt: skip

        def filled_and_booked(m: list[dict[str, Any]]) -> bool:
            events = [x["event"] for x in m]
            return (
                bool(events)
                and events[-1]["e"] == "outboundAccountPosition"
                and any(e["e"] == "executionReport" and e["X"] == "FILLED" for e in events)
            )

        got = await receive(ws, filled_and_booked)
        assert all(x["subscriptionId"] == 0 for x in got)
        events = [x["event"] for x in got]
        reports = [e for e in events if e["e"] == "executionReport"]
        assert [(e["c"], e["x"], e["X"]) for e in reports] == [
            ("api-1", "NEW", "NEW"),
            ("api-1", "TRADE", "FILLED"),
        ]
        assert set(reports[-1]) >= EXECUTION_FIELDS
        booked = {b["a"]: b["f"] for b in events[-1]["B"]}
        assert booked == {"STETH": "10.99900000", "USDT": "97399.00000000"}

        done = await _ask(ws, {"id": 4, "method": "userDataStream.unsubscribe"})
        assert done == {"id": 4, "status": 200, "result": {}}
        listed = await _ask(ws, {"id": 5, "method": "session.subscriptions"})
        assert listed["result"] == []


async def test_a_user_stream_drop_closes_subscribed_websocket_api_connections(
    spot: Spot,
) -> None:
    c = spot.client
    async with c.session.ws_connect(f"{spot.server.ws_url}/ws-api/v3") as ws:
        assert (await _ask(ws, _subscribe()))["status"] == 200
        status, body = await c.admin("POST", "/_sim/streams/drop", {"streams": "user"})
        assert (status, body["closed"]) == (200, 1)
        msg = await asyncio.wait_for(ws.receive(), WAIT_S)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# --- stock clients ---------------------------------------------------------------------
def _point_at(ex: Any, spot: Spot) -> None:
    """A ccxt `binance` trading spot on the simulator: its spot roots moved, the rest on a
    path the simulator does not serve (so a call that strays fails loudly)."""
    ex.options["fetchMarkets"] = {"types": ["spot"]}
    ex.options["fetchCurrencies"] = False  # a wallet (sapi) endpoint
    ex.options["fetchMargins"] = False  # likewise
    for name in list(ex.urls["api"]):
        if isinstance(ex.urls["api"][name], str):
            ex.urls["api"][name] = f"{spot.server.rest_url}/not-spot"
    for scope in ("public", "private"):
        ex.urls["api"][scope] = f"{spot.server.rest_url}/api/v3"


async def test_stock_ccxt_binance_trades_spot_on_the_simulator(spot: Spot) -> None:
    from ccxt.async_support.binance import binance  # noqa: PLC0415
    from ccxt.base.errors import InsufficientFunds, OrderNotFound  # noqa: PLC0415

    ex = binance({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
    _point_at(ex, spot)
    try:
        markets = await ex.load_markets()
        steth = markets["STETH/USDT"]
        assert steth["spot"] and steth["precision"]["price"] == 0.01
        assert steth["limits"]["cost"]["min"] == 5

        balance = await ex.fetch_balance()
        assert (balance["USDT"]["free"], balance["STETH"]["total"]) == (100_000, 10)

        limit = await ex.create_order("STETH/USDT", "limit", "buy", 2, 2590)
        assert limit["status"] == "open" and limit["price"] == 2590
        fetched = await ex.fetch_order(limit["id"], "STETH/USDT")
        assert fetched["id"] == limit["id"] and fetched["remaining"] == 2
        assert (await ex.fetch_balance())["USDT"]["used"] == 5180
        canceled = await ex.cancel_order(limit["id"], "STETH/USDT")
        assert canceled["status"] == "canceled"

        market = await ex.create_order("STETH/USDT", "market", "buy", 1.5)
        assert market["status"] == "closed" and market["filled"] == 1.5
        assert market["fee"] == {"currency": "STETH", "cost": 0.0015}
        trades = await ex.fetch_my_trades("STETH/USDT")
        assert [(t["side"], t["amount"], t["takerOrMaker"]) for t in trades] == [
            ("buy", 1.5, "taker")
        ]
        assert trades[0]["fee"]["currency"] == "STETH" and trades[0]["order"] == market["id"]
        balance = await ex.fetch_balance()
        assert balance["STETH"]["free"] == pytest.approx(11.4985)

        with pytest.raises(OrderNotFound):
            await ex.fetch_order("123456789", "STETH/USDT")
        # ccxt picks its exception per code only for Binance's own host names; the code
        # and message are in it all the same.
        with pytest.raises(Exception, match="-2010") as short:
            await ex.create_order("STETH/USDT", "limit", "buy", 100, 2590)
        assert isinstance(short.value, InsufficientFunds) or "insufficient" in str(short.value)
    finally:
        await ex.close()


async def test_stock_ccxt_pro_binance_watches_spot_orders_over_the_websocket_api(
    spot: Spot,
) -> None:
    from ccxt.pro import binance  # noqa: PLC0415

    ex = binance({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
    _point_at(ex, spot)
    url = ex.urls["api"]["ws"]["ws-api"]["spot"] = f"{spot.server.ws_url}/ws-api/v3"

    def waiting(*hashes: str) -> bool:
        """Whether the watches are subscribed and wait for these messages."""
        client = ex.clients.get(url)
        return (
            client is not None
            and "spot" in client.subscriptions
            and "authenticate:signature:spot" not in client.futures
            and set(hashes) <= set(client.futures)
        )

    try:
        await ex.load_markets()
        orders = asyncio.create_task(ex.watch_orders("STETH/USDT"))
        balance = asyncio.create_task(ex.watch_balance())
        await until(lambda: waiting("orders:STETH/USDT", "spot:balance"))
        placed = await ex.create_order("STETH/USDT", "limit", "buy", 1, 2600.5)
        seen = await asyncio.wait_for(orders, WAIT_S)
        assert (seen[-1]["id"], seen[-1]["symbol"], seen[-1]["status"]) == (
            placed["id"],
            "STETH/USDT",
            "open",
        )
        held = await asyncio.wait_for(balance, WAIT_S)
        assert (held["USDT"]["free"], held["USDT"]["used"]) == (97_399.5, 2600.5)

        # Another account sells into the resting buy: the fill reaches both watches.
        filled = asyncio.create_task(ex.watch_orders("STETH/USDT"))
        trades = asyncio.create_task(ex.watch_my_trades("STETH/USDT"))
        await until(lambda: waiting("orders:STETH/USDT", "myTrades:STETH/USDT"))
        status, _ = await spot.order(
            spot.maker, symbol="STETHUSDT", side="SELL", type="MARKET", quantity="1"
        )
        assert status == 200
        seen = await asyncio.wait_for(filled, WAIT_S)
        assert (seen[-1]["id"], seen[-1]["status"], seen[-1]["filled"]) == (
            placed["id"],
            "closed",
            1,
        )
        (trade,) = await asyncio.wait_for(trades, WAIT_S)
        assert (trade["order"], trade["side"], trade["amount"], trade["price"]) == (
            placed["id"],
            "buy",
            1,
            2600.5,
        )
        assert trade["takerOrMaker"] == "maker" and trade["fee"]["currency"] == "STETH"
    finally:
        await ex.close()
