"""Fuzzing the simulated venue's Binance USD-M REST API over a real socket: random and mutated
requests (parameters in Unicode digits, huge, empty, of the wrong kind; `batchOrders` nested
deep or long; good and bad signatures) never get a 5xx, and every refusal is Binance's
`{"code", "msg"}` error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_binance_server import KEY, SECRET, Sim, _sign, now_ms, running

PARAMS = [
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "price",
    "newClientOrderId",
    "reduceOnly",
    "positionSide",
    "newOrderRespType",
    "stopPrice",
    "closePosition",
    "orderId",
    "origClientOrderId",
    "limit",
    "startTime",
    "endTime",
    "fromId",
    "leverage",
    "batchOrders",
    "recvWindow",
    "workingType",
]
GOOD = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.002",
    "price": "59990.0",
}
NUMERIC = {"quantity", "price", "stopPrice", "orderId", "limit", "startTime", "endTime"}
NUMERIC |= {"fromId", "leverage", "recvWindow"}
NUMBERS = st.sampled_from(
    [
        "²",
        "١٢",
        "٣.٥",
        "１０",
        "12\n",
        "1_0",
        "+1",
        "1e5",
        "NaN",
        "-0",
        "0x10",
        "9" * 40,
        "0",
        "-1",
        "5",
        "20",
        "125",
        "126",
        "0.002",
        "60000.0",
        "0.00000000000000000000001",
    ]
)
NASTY_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "²",
            "١٢",
            "٣.٥",
            "12\n",
            " 1",
            "1_000",
            "+1",
            "1e5",
            "NaN",
            "Infinity",
            "-0",
            "0x10",
            "9" * 40,
            "-" + "9" * 19,
            "0.00000000000000000000001",
            "BTCUSDT",
            "ETHUSDT",
            "BUY",
            "SELL",
            "LIMIT",
            "MARKET",
            "GTC",
            "IOC",
            "true",
            "RESULT",
            "10",
            "\x00",
            "é" * 50,
        ]
    ),
    st.text(max_size=30),
    st.integers().map(str),
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def batch_orders(draw: st.DrawFn) -> str:
    """The `batchOrders` parameter: orders with mutated values, or JSON nested deep or long."""
    shape = draw(st.sampled_from(["orders", "deep-list", "deep-object", "long", "junk"]))
    # Deeper than the recursion limit, even the one hypothesis raises while a test runs.
    depth = draw(st.sampled_from([2, 3, 8, 9, 100, 1_000, 10_000, 40_000]) | st.integers(2, 40_000))
    if shape == "deep-list":
        return "[" * depth + "]" * depth
    if shape == "deep-object":
        return "[" + '{"a":' * depth + "1" + "}" * depth + "]"
    if shape == "long":
        return json.dumps([GOOD] * draw(st.integers(1, 200)))
    if shape == "junk":
        return draw(NASTY_TEXT)
    orders = draw(
        st.lists(
            st.dictionaries(st.sampled_from(PARAMS) | NASTY_TEXT, JSON_VALUE, max_size=4).map(
                lambda changes: GOOD | changes
            ),
            max_size=6,
        )
    )
    return json.dumps(orders)


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, str]]) -> tuple[str, str, str, str]:
    """(method, path, query, body) of a request: mostly signed right, with mutated params."""
    # The endpoints that read numbers and JSON from their parameters come up more often.
    busy = [r for r in routes if r[1] in ("/fapi/v1/order", "/fapi/v1/batchOrders")]
    method, path = draw(st.sampled_from(routes + busy * 4 + [("POST", "/fapi/v1/leverage")] * 4))
    params: dict[str, str] = dict(draw(st.sampled_from([{}, GOOD])))
    if path == "/fapi/v1/batchOrders":
        params = {"batchOrders": draw(batch_orders())} if draw(st.integers(0, 4)) else params
    elif path == "/fapi/v1/leverage":
        params = {"symbol": "BTCUSDT", "leverage": draw(NUMBERS)}
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(PARAMS) | NASTY_TEXT)
        params[name] = draw(NUMBERS if name in NUMERIC else NASTY_TEXT)
    signing = draw(st.sampled_from(["signed"] * 6 + ["bad", "none"]))
    if signing != "none":
        good = draw(st.integers(0, 5))
        params["timestamp"] = str(now_ms()) if good else draw(NUMBERS | NASTY_TEXT)
    query = urlencode(params)
    if signing == "signed":
        query += f"&signature={_sign(SECRET, query)}"
    elif signing == "bad":
        query += "&" + urlencode({"signature": draw(NASTY_TEXT)})
    # A request line longer than the HTTP server reads (8 kB) is refused before it reaches
    # the venue, as any web server does: a long batch goes in the body, as clients send it.
    in_body = method != "GET" and (len(query) > 4_000 or draw(st.booleans()))
    return (method, path, "", query) if in_body else (method, path, query, "")


@dataclass
class Remote:
    """The server in a thread of its own: hypothesis drives plain (sync) test functions."""

    loop: asyncio.AbstractEventLoop
    sim: Sim

    def send(self, method: str, path: str, query: str, body: str) -> tuple[int, str]:
        async def go() -> tuple[int, str]:
            url = yarl.URL(f"{self.sim.server.rest_url}{path}?{query}", encoded=True)
            headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
            data = body.encode() if body else None
            async with self.sim.client.session.request(
                method, url, data=data, headers=headers
            ) as resp:
                return resp.status, await resp.text()

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout=10)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-server", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()
    try:
        sim = asyncio.run_coroutine_threadsafe(stack.enter_async_context(running()), loop).result(
            timeout=30
        )
        yield Remote(loop, sim)
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def binance_routes(sim: Sim) -> list[tuple[str, str]]:
    """Every Binance REST endpoint the server has (not its `/_sim/` API, not the streams)."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in sim.server.app.router.routes()
            if route.method in ("GET", "POST", "PUT", "DELETE")
            and route.resource is not None
            and route.resource.canonical.startswith("/fapi/")
        }
    )


def test_fuzzed_requests_get_binance_answers_and_never_a_5xx(remote: Remote) -> None:
    routes = binance_routes(remote.sim)
    assert ("POST", "/fapi/v1/batchOrders") in routes and ("POST", "/fapi/v1/leverage") in routes

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests(routes))
    def answered(request: tuple[str, str, str, str]) -> None:
        status, text = remote.send(*request)
        assert status < 500, (request, status, text)
        assert "Traceback" not in text
        body: Any = json.loads(text)
        if status >= 400:
            assert isinstance(body, dict) and set(body) == {"code", "msg"}, body
            assert isinstance(body["code"], int) and body["code"] < 0, body
            assert isinstance(body["msg"], str) and body["msg"], body
        elif request[1] == "/fapi/v1/batchOrders":
            assert isinstance(body, list)
            for item in body:
                assert "orderId" in item or set(item) == {"code", "msg"}, item

    answered()
    # Still serving.
    assert remote.send("GET", "/fapi/v1/ping", "", "") == (200, "{}")
