"""Listen keys and the WebSocket streams: an account's user data and public market events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from venues.errors import VenueError
from venues.model import BookTicker, ExecutionReport, MarketTrade
from venues.sim.host import StreamClosed
from venues.sim.server.errors import BinanceError, _invalid, _missing
from venues.sim.server.gateway import GATEWAY, Gateway
from venues.sim.server.render import (
    _json,
    account_update,
    book_ticker_event,
    order_update,
    trade_event,
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
    key = gw.key_of.get(cred.account_id)
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


@dataclass(frozen=True)
class Source:
    """One stream a connection carries: the venue subscription it reads, how an item
    becomes messages, and `style`, equal for every connection that renders items alike."""

    sub: Any
    render: Callable[[object, int], list[tuple[str, dict[str, Any]]]]
    style: Any


def _user_source(gw: Gateway, key: str, account: str) -> Source:
    """The account's execution reports as ORDER_TRADE_UPDATE (+ ACCOUNT_UPDATE on a fill)."""

    def render(item: object, now: int) -> list[tuple[str, dict[str, Any]]]:
        if not isinstance(item, ExecutionReport):
            return []
        inst = gw.exchange.instruments[item.symbol]
        out = [(key, order_update(item, inst, now))]
        if item.last_fill is not None:
            snap = gw.exchange.account_snapshot(account, now)
            out.append((key, account_update(snap, item.symbol, item.last_fill.ts_ns, now)))
        return out

    return Source(gw.venue.subscribe_account(account), render, ("user", key, account))


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
        out = []
        if isinstance(item, BookTicker):
            inst = gw.exchange.instruments[item.symbol]
            name = wanted.get((item.symbol, "bookTicker"))
            if name:
                update_id = gw.exchange.updates_applied
                out.append((name, book_ticker_event(item, inst, update_id, now)))
        elif isinstance(item, MarketTrade):
            inst = gw.exchange.instruments[item.symbol]
            for kind in ("trade", "aggTrade"):
                name = wanted.get((item.symbol, kind))
                if name:
                    event = trade_event(item, inst, now, aggregate=kind == "aggTrade")
                    out.append((name, event))
        return out

    symbols = sorted({s for s, _ in wanted})
    return Source(gw.venue.subscribe_market(symbols), render, tuple(sorted(wanted.items())))


async def raw_stream(request: web.Request) -> web.StreamResponse:
    """`/ws/<listenKey>` (user data) or `/ws/<symbol>@<kind>` (one market stream)."""
    gw = request.app[GATEWAY]
    name = request.match_info["stream"]
    return await _serve_ws(request, gw, [name], combined=False)


async def combined_stream(request: web.Request) -> web.StreamResponse:
    """`/stream?streams=a/b/c`: several streams, each message as {"stream", "data"};
    `listenKey=` adds the user-data stream (Binance's `/private/stream`)."""
    gw = request.app[GATEWAY]
    raw = request.query.get("streams", "")
    names = [n for n in raw.split("/") if n]
    key = request.query.get("listenKey")
    if key:
        names.append(key)
    if not names:
        raise _missing("streams")
    return await _serve_ws(request, gw, names, combined=True)


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
            account = gw.listen_keys.get(owner)
            if account is None:
                raise BinanceError(-1125, "This listenKey does not exist.")
            sources.append(_user_source(gw, owner, account))
        await ws.prepare(request)
    except BaseException:
        for source in sources:
            gw.venue.unsubscribe(source.sub)
        raise
    gw.sockets[ws] = owner
    pumps = [asyncio.create_task(_pump(ws, gw, source, combined)) for source in sources]
    try:
        async for msg in ws:  # clients have nothing to say; read to notice close and pings
            if msg.type is WSMsgType.ERROR:
                break
    finally:
        for task in pumps:
            task.cancel()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for source in sources:
            gw.venue.unsubscribe(source.sub)
        gw.sockets.pop(ws, None)
    return ws


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
