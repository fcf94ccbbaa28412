"""Listen keys and the WebSocket streams: an account's user data and public market events.

A listen key belongs to one API: a USD-M key (`/fapi/v1/listenKey`) streams the account's
perpetual orders as `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE`, a spot key
(`/api/v3/userDataStream`) its spot orders as `executionReport` and
`outboundAccountPosition`. Market streams render each symbol as its own API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from venues.errors import VenueError
from venues.model import BookTicker, ExecutionReport, InstrumentKind, MarketTrade, OrderStatus
from venues.sim.host import StreamClosed
from venues.sim.server.errors import BinanceError, _invalid, _missing
from venues.sim.server.gateway import GATEWAY, Api, Gateway, StreamOwner
from venues.sim.server.render import (
    _json,
    account_update,
    book_ticker_event,
    order_update,
    trade_event,
)
from venues.sim.server.spot_render import (
    account_position,
    execution_report,
    spot_book_ticker_event,
    spot_trade_event,
)

_STREAM_KINDS = ("bookTicker", "trade", "aggTrade")


async def new_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    return _json({"listenKey": gw.listen_key(cred.account_id)})


async def keep_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    key = gw.key_of.get(StreamOwner(cred.account_id, Api.USDM))
    if key is None:
        raise BinanceError(
            -1125,
            "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate "
            "listenKey",
        )
    return _json({"listenKey": key})


async def close_listen_key(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred = gw.credential(request)
    await gw.call(lambda now: None)
    await gw.drop_listen_key(cred.account_id)
    return _json({})


# --- the spot API's listen keys: `listenKey` names the key to keep alive or close ---------
async def new_spot_listen_key(request: web.Request) -> web.Response:
    """`POST /api/v3/userDataStream` (API key only): the account's spot listen key."""
    gw = request.app[GATEWAY]
    cred = gw.credential(request, Api.SPOT)
    await gw.call(lambda now: None)
    return _json({"listenKey": gw.listen_key(cred.account_id, Api.SPOT)})


async def keep_spot_listen_key(request: web.Request) -> web.Response:
    """`PUT /api/v3/userDataStream?listenKey=`: keeps it alive (they do not expire here)."""
    gw = request.app[GATEWAY]
    await _spot_key_owner(request, gw)
    return _json({})


async def close_spot_listen_key(request: web.Request) -> web.Response:
    """`DELETE /api/v3/userDataStream?listenKey=`: closes it and the streams that carry it."""
    gw = request.app[GATEWAY]
    account = await _spot_key_owner(request, gw)
    await gw.drop_listen_key(account, Api.SPOT)
    return _json({})


async def _spot_key_owner(request: web.Request, gw: Gateway) -> str:
    """The account whose spot listen key the request names (-1125 for another's or none)."""
    cred = gw.credential(request, Api.SPOT)
    body = await request.post() if request.can_read_body else {}
    key = request.query.get("listenKey") or str(body.get("listenKey") or "")
    if not key:
        raise _missing("listenKey")
    await gw.call(lambda now: None)
    if gw.listen_keys.get(key) != StreamOwner(cred.account_id, Api.SPOT):
        raise BinanceError(-1125, "This listenKey does not exist.")
    return cred.account_id


@dataclass(frozen=True)
class Source:
    """One stream a connection carries: the venue subscription it reads, how an item
    becomes messages, and `style`, equal for every connection that renders items alike."""

    sub: Any
    render: Callable[[object, int], list[tuple[str, dict[str, Any]]]]
    style: Any


def _user_source(gw: Gateway, key: str, owner: StreamOwner) -> Source:
    """The account's user data on the listen key's API (`user_events`)."""

    def render(item: object, now: int) -> list[tuple[str, dict[str, Any]]]:
        return [(key, event) for event in user_events(gw, owner, item, now)]

    return Source(gw.venue.subscribe_account(owner.account), render, ("user", key, owner))


def user_events(gw: Gateway, owner: StreamOwner, item: object, now: int) -> list[dict[str, Any]]:
    """What an account's user stream on `owner.api` says of `item`: nothing unless it is an
    execution report of an instrument that API serves. USD-M: `ORDER_TRADE_UPDATE`, and
    after a fill `ACCOUNT_UPDATE`. Spot: `executionReport`, then `outboundAccountPosition`
    with the symbol's two assets whenever the event moved the wallet (placed, filled,
    ended)."""
    if not isinstance(item, ExecutionReport):
        return []
    inst = gw.exchange.instruments[item.symbol]
    if inst.kind is not owner.api.kind:
        return []
    if owner.api is Api.USDM:
        out = [order_update(item, inst, now)]
        if item.last_fill is not None:
            snap = gw.exchange.account_snapshot(owner.account, now)
            out.append(account_update(snap, item.symbol, item.last_fill.ts_ns, now))
        return out
    out = [execution_report(item, now)]
    if item.status not in (OrderStatus.PENDING_NEW, OrderStatus.REJECTED):
        wallet = [
            b for b in gw.exchange.spot_wallet(owner.account) if b.asset in (inst.base, inst.quote)
        ]
        out.append(account_position(wallet, item.venue_ts_ns, now))
    return out


def _market_source(gw: Gateway, streams: Sequence[str]) -> Source:
    """Public events of the symbols named by `<symbol>@<kind>` streams."""
    wanted: dict[tuple[str, str], str] = {}
    for name in streams:
        symbol, _, kind = name.partition("@")
        inst = gw.exchange.instruments.get(symbol.upper())
        if inst is None:
            raise BinanceError(-1121, f"Invalid symbol. (stream {name})")
        if kind not in _STREAM_KINDS:
            raise _invalid("streams", f"{name}: this venue streams {', '.join(_STREAM_KINDS)}")
        wanted[(inst.symbol, kind)] = name

    def render(item: object, now: int) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if isinstance(item, BookTicker):
            inst = gw.exchange.instruments[item.symbol]
            name = wanted.get((item.symbol, "bookTicker"))
            if name:
                update_id = gw.exchange.updates_applied
                if inst.kind is InstrumentKind.SPOT:
                    out.append((name, spot_book_ticker_event(item, update_id)))
                else:
                    out.append((name, book_ticker_event(item, inst, update_id, now)))
        elif isinstance(item, MarketTrade):
            inst = gw.exchange.instruments[item.symbol]
            for kind in ("trade", "aggTrade"):
                name = wanted.get((item.symbol, kind))
                if name and inst.kind is InstrumentKind.SPOT:
                    out.append((name, spot_trade_event(item, now, aggregate=kind == "aggTrade")))
                elif name:
                    out.append((name, trade_event(item, inst, now, aggregate=kind == "aggTrade")))
        return out

    symbols = sorted({s for s, _ in wanted})
    return Source(gw.venue.subscribe_market(symbols), render, tuple(sorted(wanted.items())))


async def raw_stream(request: web.Request) -> web.StreamResponse:
    """`/ws/<listenKey>` (user data) or `/ws/<symbol>@<kind>` (one market stream). A number
    names no stream (ccxt.pro numbers its connections `/ws/0`, `/ws/1`, …): the connection
    subscribes by message, as on `/ws`."""
    gw = request.app[GATEWAY]
    name = request.match_info["stream"]
    names = [] if name.isdigit() else [name]
    return await _serve_ws(request, gw, names, combined=False)


async def combined_stream(request: web.Request) -> web.StreamResponse:
    """`/stream?streams=a/b/c`: several streams, each message as {"stream", "data"};
    `listenKey=` adds the user-data stream (Binance's `/private/stream`)."""
    gw = request.app[GATEWAY]
    raw = request.query.get("streams", "")
    names = [n for n in raw.split("/") if n]
    key = request.query.get("listenKey")
    if key:
        names.append(key)
    # None at all: the client subscribes by message (`SUBSCRIBE`), as on `/ws`.
    return await _serve_ws(request, gw, names, combined=True)


async def bare_stream(request: web.Request) -> web.StreamResponse:
    """`/ws`: no stream yet; the client subscribes by message (what ccxt.pro does)."""
    return await _serve_ws(request, request.app[GATEWAY], [], combined=False)


async def private_stream(request: web.Request) -> web.StreamResponse:
    """`/private/ws?listenKey=…`: the user-data stream on Binance's current USD-M route (what
    ccxt.pro's `watch_orders` opens); other query parameters (`events=`) are ignored."""
    gw = request.app[GATEWAY]
    key = request.query.get("listenKey")
    if not key:
        raise _missing("listenKey")
    return await _serve_ws(request, gw, [key], combined=False)


async def _serve_ws(
    request: web.Request, gw: Gateway, names: Sequence[str], *, combined: bool
) -> web.StreamResponse:
    user_keys = [n for n in names if "@" not in n]
    market = [n for n in names if "@" in n]
    if len(user_keys) > 1:
        raise _invalid("streams", "one listenKey per connection")
    owner: str | None = None
    sources: list[Source] = []
    ws = web.WebSocketResponse(autoping=True)
    try:
        if market:
            sources.append(_market_source(gw, market))
        if user_keys:
            owner = user_keys[0]
            holder = gw.listen_keys.get(owner)
            if holder is None:
                raise BinanceError(-1125, "This listenKey does not exist.")
            sources.append(_user_source(gw, owner, holder))
        await ws.prepare(request)
    except BaseException:
        for source in sources:
            gw.venue.unsubscribe(source.sub)
        raise
    gw.sockets[ws] = owner
    pumps = [asyncio.create_task(_pump(ws, gw, source, combined)) for source in sources]
    live = _Live(ws, gw, combined, set(market))
    try:
        async for msg in ws:  # requests to (un)subscribe; reading also notices close and pings
            if msg.type is WSMsgType.ERROR:
                break
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(live.answer(msg.data))
    finally:
        for task in [*pumps, *live.pumps.values()]:
            task.cancel()
        for task in [*pumps, *live.pumps.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for source in [*sources, *live.sources.values()]:
            gw.venue.unsubscribe(source.sub)
        gw.sockets.pop(ws, None)
    return ws


class _Live:
    """A connection's market streams subscribed by message, as Binance's streams take them:
    `{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...],
    "id": n}`, answered `{"result": ..., "id": n}` or `{"error": {code, msg}, "id": n}`."""

    def __init__(
        self, ws: web.WebSocketResponse, gw: Gateway, combined: bool, opened: set[str]
    ) -> None:
        self.ws, self.gw, self.combined = ws, gw, combined
        self.opened = opened  # streams named in the URL (not unsubscribable here)
        self.sources: dict[str, Source] = {}
        self.pumps: dict[str, asyncio.Task[None]] = {}

    def answer(self, text: str) -> str:
        try:
            request = json.loads(text)
        except ValueError as e:
            return json.dumps({"error": {"code": 3, "msg": f"Invalid JSON: {e}"}, "id": None})
        if not isinstance(request, dict):
            return self._error(None, 2, "Invalid request: expected an object")
        rid, method, params = request.get("id"), request.get("method"), request.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return self._error(rid, 2, "Invalid request: params must be a list of stream names")
        if method == "SUBSCRIBE":
            return self._subscribe(rid, params)
        if method == "UNSUBSCRIBE":
            for name in params:
                self._drop(name)
            return json.dumps({"result": None, "id": rid})
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(self.opened | set(self.sources)), "id": rid})
        return self._error(rid, 2, f"Invalid request: unknown method {method!r}")

    def _subscribe(self, rid: object, names: list[str]) -> str:
        if any("@" not in n for n in names):
            return self._error(rid, 2, "Invalid request: subscribe to <symbol>@<kind> streams")
        made: dict[str, Source] = {}
        try:
            for name in names:
                if name not in self.sources and name not in self.opened and name not in made:
                    made[name] = _market_source(self.gw, [name])
        except BinanceError as e:
            for source in made.values():
                self.gw.venue.unsubscribe(source.sub)
            return self._error(rid, 2, f"Invalid request: {e.msg}")
        for name, source in made.items():
            self.sources[name] = source
            self.pumps[name] = asyncio.create_task(_pump(self.ws, self.gw, source, self.combined))
        return json.dumps({"result": None, "id": rid})

    def _drop(self, name: str) -> None:
        source, task = self.sources.pop(name, None), self.pumps.pop(name, None)
        if task is not None:
            task.cancel()
        if source is not None:
            self.gw.venue.unsubscribe(source.sub)

    @staticmethod
    def _error(rid: object, code: int, msg: str) -> str:
        return json.dumps({"error": {"code": code, "msg": msg}, "id": rid})


async def _pump(ws: web.WebSocketResponse, gw: Gateway, source: Source, combined: bool) -> None:
    while True:
        item = await source.sub.queue.get()
        if isinstance(item, VenueError):  # the stream overflowed: the client resyncs
            await ws.close(code=1011, message=b"stream overflowed; resync by query")
            return
        if isinstance(item, StreamClosed):
            await ws.close(code=1001, message=b"venue stopped")
            return
        try:
            for text in gw.messages(item, source, combined):
                await ws.send_str(text)
        except ConnectionError:  # the client went away; the reader side cleans up
            await ws.close()
            return
