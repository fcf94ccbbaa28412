"""Binance's spot WebSocket API (`/ws-api/v3`) as far as the user data stream goes.

A connection subscribes to an account's events with a signed request
(`userDataStream.subscribe.signature`) and receives them on the same socket, each as
`{"subscriptionId": n, "event": {...}}`: the `executionReport` and `outboundAccountPosition`
events of the account's spot orders. That is what ccxt.pro's `binance` sends and reads for
`watch_orders`, `watch_my_trades` and `watch_balance` on spot. Requests and answers are
Binance's envelope (`{"id", "method", "params"}`; `{"id", "status", "result" | "error"}`);
each request goes through the venue profile as a REST request does. Trading over the
socket (`order.place`, ...) is not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from venues.errors import VenueError
from venues.sim.host import StreamClosed, _Subscription
from venues.sim.server.errors import BinanceError, _invalid, _unavailable
from venues.sim.server.gateway import (
    GATEWAY,
    WS_API_USER,
    Api,
    Gateway,
    StreamOwner,
    check_signature,
)
from venues.sim.server.params import Params, sign
from venues.sim.server.render import _ms
from venues.sim.server.streams import user_events

log = logging.getLogger(__name__)

MAX_REQUEST_CHARS = 65_536  # a request is a few hundred characters; bounded before decoding
MAX_SUBSCRIPTIONS = 1_000  # active on one connection, as Binance allows


class _Request(msgspec.Struct, frozen=True):
    method: str
    id: int | str | None = None
    params: dict[str, Any] = {}


@dataclass
class _Subscribed:
    account: str
    sub: _Subscription
    pump: asyncio.Task[None]


@dataclass
class WsApiSession:
    """One `/ws-api/v3` connection: its subscriptions, and one writer at a time."""

    gw: Gateway
    ws: web.WebSocketResponse
    subscriptions: dict[int, _Subscribed] = field(default_factory=dict)
    next_id: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_str(msgspec.json.encode(payload).decode())

    async def answer(self, text: str) -> None:
        """Answer one request frame: its result, or its error in Binance's envelope."""
        request_id: int | str | None = None
        try:
            if len(text) > MAX_REQUEST_CHARS:
                raise BinanceError(-1101, f"Request longer than {MAX_REQUEST_CHARS} characters.")
            try:
                req = msgspec.json.decode(text, type=_Request)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
                raise BinanceError(
                    -1102, f"Malformed request: a JSON object with 'method' was expected ({e})."
                ) from None
            request_id = req.id
            handler = _METHODS.get(req.method.removeprefix("v3/"))
            if handler is None:
                raise BinanceError(-1020, f"This operation is not supported. ({req.method})")
            result = await handler(self, _params(req.params))
        except BinanceError as e:
            await self.send({"id": request_id, "status": e.status, "error": e.body()})
            return
        except VenueError:  # an outage: the request found the venue down
            error = _unavailable()
            await self.send({"id": request_id, "status": error.status, "error": error.body()})
            return
        except Exception:  # a bug answers this request with a 500, not the connection
            log.exception("unexpected error answering a WebSocket API request")
            error = BinanceError(-1000, "An unknown error occured while processing the request.")
            await self.send({"id": request_id, "status": 500, "error": error.body()})
            return
        await self.send({"id": request_id, "status": 200, "result": result})

    # --- subscriptions -----------------------------------------------------------------
    def subscribe(self, account: str) -> int:
        if any(s.account == account for s in self.subscriptions.values()):
            raise BinanceError(-2035, "User Data Stream subscription already active.")
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise BinanceError(-1100, f"At most {MAX_SUBSCRIPTIONS} subscriptions at once.")
        number = self.next_id
        self.next_id += 1
        sub = self.gw.venue.subscribe_account(account)
        pump = asyncio.create_task(self._pump(number, account, sub), name=f"ws-api-{number}")
        self.subscriptions[number] = _Subscribed(account, sub, pump)
        self.gw.sockets[self.ws] = WS_API_USER
        return number

    async def unsubscribe(self, number: int) -> None:
        gone = self.subscriptions.pop(number, None)
        if gone is None:
            return
        self.gw.venue.unsubscribe(gone.sub)
        if gone.pump is not asyncio.current_task():
            gone.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await gone.pump
        if not self.subscriptions and self.ws in self.gw.sockets:
            self.gw.sockets[self.ws] = None

    async def close(self) -> None:
        for number in list(self.subscriptions):
            await self.unsubscribe(number)

    async def _pump(self, number: int, account: str, sub: _Subscription) -> None:
        """The account's events, each in the subscription's envelope, in order."""
        owner = StreamOwner(account, Api.SPOT)
        while True:
            item = await sub.queue.get()
            now = self.gw.venue.now_ns()
            try:
                if isinstance(item, VenueError):  # the stream overflowed: resync by query
                    ended = {"e": "eventStreamTerminated", "E": _ms(now)}
                    await self.send({"subscriptionId": number, "event": ended})
                    await self.unsubscribe(number)
                    return
                if isinstance(item, StreamClosed):
                    await self.ws.close(code=1001, message=b"venue stopped")
                    return
                for event in user_events(self.gw, owner, item, now):
                    await self.send({"subscriptionId": number, "event": event})
            except ConnectionError:  # the client went away; the reader side cleans up
                return


def _params(raw: dict[str, Any]) -> Params:
    """A request's params as the strings a query string would carry them in."""
    out: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        elif value is not None:
            raise _invalid(name, "expected a string or a number")
    return Params(out)


def _payload(p: Params) -> str:
    """What a WebSocket API request signs: every param but the signature, sorted by name,
    as `name=value` pairs joined by `&`."""
    return "&".join(f"{k}={v}" for k, v in sorted(p.items.items()) if k != "signature")


# --- methods ---------------------------------------------------------------------------
Method = Callable[[WsApiSession, Params], Awaitable[Any]]


async def _ping(session: WsApiSession, p: Params) -> dict[str, Any]:
    await session.gw.call(lambda now: None)
    return {}


async def _time(session: WsApiSession, p: Params) -> dict[str, Any]:
    now = await session.gw.call(lambda now: now)
    return {"serverTime": _ms(now)}


async def _subscribe_signature(session: WsApiSession, p: Params) -> dict[str, Any]:
    """`userDataStream.subscribe.signature`: `apiKey`, `timestamp`, optional `recvWindow`,
    `signature` (HMAC-SHA256 of the sorted params); answers the new `subscriptionId`."""
    gw = session.gw
    key = p.text("apiKey", required=True)
    signature = p.text("signature", required=True)
    timestamp = p.integer("timestamp", required=True)
    assert key is not None and signature is not None and timestamp is not None
    cred = gw.key_holder(key, Api.SPOT)
    gw.check_time(timestamp, p.integer("recvWindow"))
    check_signature(sign(cred.secret, _payload(p)), signature)
    await gw.call(lambda now: None)
    return {"subscriptionId": session.subscribe(cred.account_id)}


async def _unsubscribe(session: WsApiSession, p: Params) -> dict[str, Any]:
    """`userDataStream.unsubscribe`: one `subscriptionId`, or every subscription."""
    number = p.integer("subscriptionId")
    await session.gw.call(lambda now: None)
    if number is None:
        await session.close()
    elif number in session.subscriptions:
        await session.unsubscribe(number)
    else:
        raise BinanceError(-2036, "User Data Stream subscription not active.")
    return {}


async def _subscriptions(session: WsApiSession, p: Params) -> list[dict[str, Any]]:
    """`session.subscriptions`: the connection's active subscriptions."""
    await session.gw.call(lambda now: None)
    return [{"subscriptionId": n} for n in sorted(session.subscriptions)]


async def _start(session: WsApiSession, p: Params) -> dict[str, Any]:
    """`userDataStream.start` (Binance deprecates it): the account's spot listen key."""
    cred = session.gw.key_holder(p.text("apiKey") or "", Api.SPOT)
    await session.gw.call(lambda now: None)
    return {"listenKey": session.gw.listen_key(cred.account_id, Api.SPOT)}


async def _listen_key_owner(session: WsApiSession, p: Params) -> str:
    gw = session.gw
    cred = gw.key_holder(p.text("apiKey") or "", Api.SPOT)
    key = p.text("listenKey", required=True)
    await gw.call(lambda now: None)
    if key is None or gw.listen_keys.get(key) != StreamOwner(cred.account_id, Api.SPOT):
        raise BinanceError(-1125, "This listenKey does not exist.")
    return cred.account_id


async def _keep(session: WsApiSession, p: Params) -> dict[str, Any]:
    """`userDataStream.ping`: listen keys do not expire here; the key is checked."""
    await _listen_key_owner(session, p)
    return {}


async def _stop(session: WsApiSession, p: Params) -> dict[str, Any]:
    """`userDataStream.stop`: closes the listen key and the streams that carry it."""
    account = await _listen_key_owner(session, p)
    await session.gw.drop_listen_key(account, Api.SPOT)
    return {}


_METHODS: dict[str, Method] = {
    "ping": _ping,
    "time": _time,
    "userDataStream.subscribe.signature": _subscribe_signature,
    "userDataStream.unsubscribe": _unsubscribe,
    "session.subscriptions": _subscriptions,
    "userDataStream.start": _start,
    "userDataStream.ping": _keep,
    "userDataStream.stop": _stop,
}


async def ws_api(request: web.Request) -> web.StreamResponse:
    """`/ws-api/v3`: requests in text frames, answers and subscribed events back."""
    gw = request.app[GATEWAY]
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    session = WsApiSession(gw, ws)
    gw.sockets[ws] = None
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await session.answer(msg.data)
            elif msg.type is WSMsgType.BINARY:
                error = BinanceError(-1102, "Requests are JSON in text frames.")
                await session.send({"id": None, "status": 400, "error": error.body()})
            elif msg.type is WSMsgType.ERROR:
                break
    finally:
        await session.close()
        gw.sockets.pop(ws, None)
    return ws
