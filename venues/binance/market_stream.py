"""Binance USD-M public market data: book tickers and trades over combined WebSocket streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Literal

import aiohttp
import msgspec
from yarl import URL

from venues.binance import parse, wire
from venues.binance.rest import BinanceRest
from venues.errors import VenueError
from venues.model import MarketEvent

log = logging.getLogger(__name__)


class MarketStreams:
    """Book tickers and trades of any symbols, one connection per base URL, each
    reconnecting after a drop. Market data is lossy by nature: nothing missed is replayed,
    and a slow reader loses the oldest events first.

    Binance serves book tickers under `public_ws_url` and trades under `market_ws_url`
    (the simulator serves both from one root).
    """

    def __init__(
        self,
        venue: str,
        rest: BinanceRest,
        *,
        public_ws_url: str,
        market_ws_url: str,
        trade_stream: Literal["trade", "aggTrade"],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        reconnect_max_s: float,
        heartbeat_s: float,
    ) -> None:
        self._venue = venue
        self._rest = rest
        self._public_ws_url = public_ws_url
        self._market_ws_url = market_ws_url
        self._trade_stream = trade_stream
        self._spawn = spawn
        self._reconnect_max_s = reconnect_max_s
        self._heartbeat_s = heartbeat_s
        self._sockets: set[aiohttp.ClientWebSocketResponse] = set()

    async def events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        """Book tickers and trades of `symbols`; ends when the client closes."""
        groups: dict[str, list[str]] = {}
        for s in symbols:
            groups.setdefault(self._public_ws_url, []).append(f"{s.lower()}@bookTicker")
            groups.setdefault(self._market_ws_url, []).append(f"{s.lower()}@{self._trade_stream}")
        urls = [
            URL(f"{base}/stream?streams={'/'.join(names)}", encoded=True)
            for base, names in groups.items()
        ]
        if len(urls) == 1:
            async for event in self._connection(urls[0]):
                yield event
            return
        queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue(10_000)  # None: closed

        async def pump(url: URL) -> None:
            try:
                async for event in self._connection(url):
                    if queue.full():
                        queue.get_nowait()
                    queue.put_nowait(event)
            finally:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)

        pumps = [self._spawn(pump(url), "market-stream") for url in urls]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return  # the client closed
                yield item
        finally:
            for t in pumps:
                t.cancel()

    async def close(self) -> None:
        """Close every open connection (their readers have been cancelled)."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    async def _connection(self, url: URL) -> AsyncIterator[MarketEvent]:
        attempt = 0
        while not self._rest.closed:
            try:
                async with self._rest.http().ws_connect(
                    url, heartbeat=self._heartbeat_s, decode_text=False
                ) as ws:
                    self._sockets.add(ws)
                    attempt = 0
                    try:
                        async for msg in ws:
                            if msg.type is not aiohttp.WSMsgType.TEXT and (
                                msg.type is not aiohttp.WSMsgType.BINARY
                            ):
                                break
                            try:
                                envelope = wire.MARKET.decode(msg.data)
                            except (msgspec.DecodeError, msgspec.ValidationError):
                                continue  # a stream legato does not read
                            yield parse.market_event(envelope.data, self._venue)
                    finally:
                        self._sockets.discard(ws)
            except (VenueError, aiohttp.ClientError, TimeoutError, OSError) as e:
                if not self._rest.closed:
                    log.warning("%s: market stream: %s", self._venue, e)
            if self._rest.closed:
                return
            attempt += 1
            await asyncio.sleep(min(self._reconnect_max_s, 0.05 * 2 ** min(attempt, 10)))
