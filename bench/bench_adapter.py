"""Adapter latency on loopback: the native Binance client and the ccxt adapter against one
simulated server.

With a zero-latency venue profile, measures through `BinanceUsdmClient` and, in the same run
against the same `BinanceServer`, through `CcxtClient` (ccxt.pro's `binanceusdm`): the order
round trip (place → ack) and place → first user-stream event for that order, next to a bare
aiohttp GET /fapi/v1/ping on the same event loop (the floor of one HTTP round trip here) and
a signed order query through each adapter (the same path without the order). Client and
server share one loop and one core, so every figure holds both sides' work. Each order is
canceled after its stream event, untimed: the simulated exchange's margin check grows with
the number of resting orders, which is not what this measures. Prints p50/p99 and writes
bench/results/adapter.json (the native adapter's figures at the top level, the ccxt
adapter's under "ccxt").
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import numpy as np

from venues.binance import BinanceUsdmClient
from venues.ccxt import CcxtClient
from venues.config import ApiCredential
from venues.model import ExecutionReport, NewOrder, OrderType, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket
from venues.sim.profile import Latency, VenueProfile
from venues.sim.server import BinanceServer

RESULTS = Path(__file__).resolve().parent / "results"
ORDERS = 300
WARMUP = 20
ZERO = Latency(median_ms=0.0, p99_ms=0.0)
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
KEY, SECRET, ACCOUNT = "bench-key", "bench-secret", "bench"


def _venue() -> SimVenue:
    market = ScriptedMarket([BTC])
    # A two-sided book around 60,000 so that orders far below it rest untouched.
    market.push(
        DepthUpdate(
            0,
            "BTCUSDT",
            bids=[(599_990 - 10 * i, 5_000) for i in range(5)],
            asks=[(600_010 + 10 * i, 5_000) for i in range(5)],
        )
    )
    exchange = SimExchange("bench", market)
    exchange.open_account(AccountSpec(account_id=ACCOUNT, balances={"USDT": Decimal(10**8)}))
    profile = VenueProfile(
        request=ZERO, processing=ZERO, response=ZERO, stream_lag=ZERO, orders_per_minute=100_000
    )
    return SimVenue(exchange, profile)


def _stats(samples_ns: list[int]) -> dict[str, float]:
    us = np.asarray(samples_ns, dtype=float) / 1e3
    return {
        "n": len(us),
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
        "max_us": float(us.max()),
    }


async def _orders(client: BinanceUsdmClient | CcxtClient, prefix: str) -> dict[str, Any]:
    """place → ack, place → first stream event, and a signed query, per order."""
    first_event: dict[str, asyncio.Future[int]] = {}

    async def read() -> None:
        async for r in client.execution_reports():
            fut = first_event.get(r.client_order_id)
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter_ns())

    reader = asyncio.create_task(read())
    query: list[int] = []
    ack: list[int] = []
    stream: list[int] = []
    loop = asyncio.get_running_loop()
    try:
        for i in range(WARMUP + ORDERS):
            coid = f"{prefix}-{i}"
            first_event[coid] = loop.create_future()
            order = NewOrder(
                client_order_id=coid,
                symbol="BTCUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("0.002"),
                price=Decimal("59000.0") + i % 100,
            )
            t0 = time.perf_counter_ns()
            report: ExecutionReport = await client.place(order)
            t1 = time.perf_counter_ns()
            t2 = await asyncio.wait_for(first_event[coid], 5.0)
            assert report.order_id.isdigit(), report
            t3 = time.perf_counter_ns()
            await client.query("BTCUSDT", coid)
            t4 = time.perf_counter_ns()
            await client.cancel("BTCUSDT", coid)
            if i >= WARMUP:
                ack.append(t1 - t0)
                stream.append(t2 - t0)
                query.append(t4 - t3)
    finally:
        reader.cancel()
    return {
        "signed_query": _stats(query),
        "place_to_ack": _stats(ack),
        "place_to_first_stream_event": _stats(stream),
    }


async def _run() -> dict[str, object]:
    venue = _venue()
    creds = {KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id=ACCOUNT)}
    async with (
        BinanceServer(venue, creds) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as bare,
    ):
        ping: list[int] = []
        for i in range(WARMUP + ORDERS):
            t0 = time.perf_counter_ns()
            async with bare.get(f"{server.rest_url}/fapi/v1/ping") as resp:
                await resp.read()
            if i >= WARMUP:
                ping.append(time.perf_counter_ns() - t0)
        async with BinanceUsdmClient(
            "bench", rest_url=server.rest_url, ws_url=server.ws_url, api_key=KEY, secret=SECRET
        ) as native:
            native_figures = await _orders(native, "bench")
        async with CcxtClient(
            "bench",
            "binanceusdm",
            api_key=KEY,
            secret=SECRET,
            urls={"rest": server.rest_url, "ws": server.ws_url},
            account_id=ACCOUNT,
        ) as through_ccxt:
            ccxt_figures = await _orders(through_ccxt, "ccxt")
    return {
        "orders": ORDERS,
        "profile": "zero latency (request, processing, response, stream lag all 0)",
        "bare_ping": _stats(ping),
        **native_figures,
        "ccxt": ccxt_figures | {"exchange": "binanceusdm", "version": ccxt.__version__},
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "machine": platform.machine(),
    }


def main() -> int:
    results = asyncio.run(_run())
    print(f"adapters on loopback, {ORDERS} orders each, zero-latency venue profile")
    through_ccxt = results["ccxt"]
    assert isinstance(through_ccxt, dict)
    for source, name, label in (
        (results, "bare_ping", "bare aiohttp GET /fapi/v1/ping"),
        (results, "signed_query", "signed GET /fapi/v1/order (native)"),
        (results, "place_to_ack", "place -> ack (BinanceUsdmClient)"),
        (results, "place_to_first_stream_event", "place -> first user-stream event"),
        (through_ccxt, "signed_query", "signed query (CcxtClient)"),
        (through_ccxt, "place_to_ack", "place -> ack (CcxtClient)"),
        (through_ccxt, "place_to_first_stream_event", "place -> first stream event (ccxt)"),
    ):
        s = source[name]
        assert isinstance(s, dict)
        print(f"  {label:38s} p50 {s['p50_us']:8.0f} us   p99 {s['p99_us']:8.0f} us")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adapter.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
