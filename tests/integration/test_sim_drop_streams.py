"""`POST /_sim/streams/drop` over real sockets: the simulated venue drops its user-data
streams on demand, the market streams stay up (unless asked), and legato's Binance client
reconnects and learns, by its resync, what the venue published while it was away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import aiohttp

from tests.integration.test_binance_server import (
    ACCOUNT,
    KEY,
    SECRET,
    WAIT_S,
    Sim,
    receive,
    running,
    until,
)
from venues.binance import BinanceUsdmClient
from venues.model import (
    AckKind,
    ExecutionReport,
    NewOrder,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from venues.sim.server.gateway import GATEWAY
from venues.sim.server.streamdrop import DROP_CODE

D = Decimal


@asynccontextmanager
async def connected(sim: Sim) -> AsyncIterator[tuple[BinanceUsdmClient, list[ExecutionReport]]]:
    """legato's client of the venue, its user-data stream up, and the reports it streams."""
    client = BinanceUsdmClient(
        "sim",
        rest_url=sim.server.rest_url,
        ws_url=sim.server.ws_url,
        api_key=KEY,
        secret=SECRET,
        account_id=ACCOUNT,
        ack_semantics=AckKind.RESULT,
        timeout_s=3.0,
        reconnect_max_s=0.5,
    )
    await client.start()
    reports: list[ExecutionReport] = []

    async def read() -> None:
        async for r in client.execution_reports():
            reports.append(r)

    reader = asyncio.create_task(read())
    try:
        await client.wait_stream_connected(WAIT_S)
        yield client, reports
    finally:
        reader.cancel()
        await client.close()


def resting_bid(coid: str) -> NewOrder:
    """0.002 BTC bid at 59990.0, under the book's 1 BTC at 60000.0: it rests."""
    return NewOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=D("0.002"),
        price=D("59990.0"),
        time_in_force=TimeInForce.GTC,
    )


async def test_a_drop_closes_the_user_stream_and_the_client_resyncs_what_it_missed() -> None:
    async with running() as sim, connected(sim) as (client, reports):
        placed = await client.place(resting_bid("drop-1"))
        assert placed.status is OrderStatus.NEW
        market_url = f"{sim.server.ws_url}/ws/btcusdt@bookTicker"
        async with sim.client.session.ws_connect(market_url) as market:
            status, body = await sim.client.admin("POST", "/_sim/streams/drop")
            assert (status, body) == (200, {"closed": 1})  # the client's one user stream

            # While the client is away the bid fills: the venue tells no one.
            sim.trade("BTCUSDT", Side.SELL, "59990.0", "1.002")
            await until(
                lambda: (
                    sim.venue.exchange.query(ACCOUNT, "BTCUSDT", "drop-1").status
                    is OrderStatus.FILLED
                )
            )
            assert not any(sim.server.app[GATEWAY].sockets.values()), "a user stream was up"
            await until(lambda: client.reconnects >= 1 and client.stream_connected)
            await until(lambda: client.resyncs >= 1)

            def filled() -> bool:
                return any(
                    r.client_order_id == "drop-1" and r.status is OrderStatus.FILLED
                    for r in reports
                )

            await until(filled)
            (final,) = [r for r in reports if r.status is OrderStatus.FILLED]
            assert final.cum_filled == D("0.002")
            # The market stream beside it was not dropped: it carries the book's next change.
            sim.book("BTCUSDT", [("60000.0", "2")], [])
            await receive(market, lambda got: any(t["B"] == "2.000" for t in got))

        # The stream is the client's again: a new order's report arrives on it.
        await client.place(resting_bid("drop-2"))
        await until(lambda: any(r.client_order_id == "drop-2" for r in reports))


async def test_all_drops_the_market_streams_too() -> None:
    async with running() as sim, connected(sim):
        market_url = f"{sim.server.ws_url}/ws/btcusdt@bookTicker"
        async with sim.client.session.ws_connect(market_url) as market:
            status, body = await sim.client.admin("POST", "/_sim/streams/drop", {"streams": "all"})
            assert (status, body) == (200, {"closed": 2})
            closed = await asyncio.wait_for(market.receive(), WAIT_S)
            assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, DROP_CODE)


async def test_the_drop_is_for_known_keys_with_a_valid_body() -> None:
    async with running() as sim:
        status, body = await sim.client.send("POST", "/_sim/streams/drop", key=None)
        assert (status, body["code"]) == (401, -2015)
        status, body = await sim.client.admin("POST", "/_sim/streams/drop", {"streams": "some"})
        assert (status, body["code"]) == (400, -1130)
        assert "streams" in body["msg"]
        # Nothing connected: nothing to drop, and no error.
        assert await sim.client.admin("POST", "/_sim/streams/drop") == (200, {"closed": 0})
