"""Binance public market data (spot and USD-M): book tickers and trades over combined streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

import aiohttp
import msgspec
from yarl import URL

from venues.adapter_kit import Spawn, reconnect_delay
from venues.binance import parse, spot_parse, spot_wire, wire
from venues.binance.transport import BinanceTransport
from venues.errors import VenueError
from venues.model import MarketEvent

log = logging.getLogger(__name__)

# One combined-stream message read: a market event, or None for a stream legato does not read.
MarketReader = Callable[[bytes | str], MarketEvent | None]


def usdm_market_reader(venue: str) -> MarketReader:
    """Reads USD-M combined-stream messages (bookTicker, trade, aggTrade)."""

    def read(data: bytes | str) -> MarketEvent | None:
        try:
            envelope = wire.MARKET.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return parse.market_event(envelope.data, venue)

    return read


def spot_market_reader(venue: str, now_ns: Callable[[], int]) -> MarketReader:
    """Reads spot combined-stream messages (`@bookTicker`, `@trade`). Spot's book ticker
    carries no time: it is stamped with `now_ns()`, the venue's clock as estimated here."""

    def read(data: bytes | str) -> MarketEvent | None:
        try:
            envelope = spot_wire.MARKET.decode(data)
            kind = envelope.stream.rpartition("@")[2]
            if kind == "bookTicker":
                ticker = spot_wire.MARKET_BOOK_TICKER.decode(envelope.data)
                return spot_parse.market_book_ticker(ticker, venue, now_ns())
            if kind == "trade":
                return spot_parse.market_trade(spot_wire.MARKET_TRADE.decode(envelope.data), venue)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        return None

    return read


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
        rest: BinanceTransport,
        *,
        public_ws_url: str,
        market_ws_url: str,
        trade_stream: Literal["trade", "aggTrade"],
        read: MarketReader,
        spawn: Spawn,
        reconnect_max_s: float,
        heartbeat_s: float,
    ) -> None:
        self._venue = venue
        self._rest = rest
        self._public_ws_url = public_ws_url
        self._market_ws_url = market_ws_url
        self._trade_stream = trade_stream
        self._read = read
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
                            event = self._read(msg.data)
                            if event is not None:  # else a stream legato does not read
                                yield event
                    finally:
                        self._sockets.discard(ws)
            except (VenueError, aiohttp.ClientError, TimeoutError, OSError) as e:
                if not self._rest.closed:
                    log.warning("%s: market stream: %s", self._venue, e)
            if self._rest.closed:
                return
            attempt += 1
            await asyncio.sleep(reconnect_delay(attempt, self._reconnect_max_s))
