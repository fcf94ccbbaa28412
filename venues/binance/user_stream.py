"""The Binance USD-M listenKey user-data stream: kept connected, read into execution reports.

The listen key alone lets anyone read the account's orders, so it never appears in a log
line, an exception message or a repr: what is logged is the URL with the key as `***`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from venues.binance import parse, wire
from venues.binance.rest import BinanceRest
from venues.errors import UnknownOrder, VenueError, VenueUnavailable
from venues.model import ExecutionReport

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
HIDDEN = "***"


def redacted(text: str, listen_key: str | None) -> str:
    """`text` with the listen key in it replaced by `***`."""
    return text.replace(listen_key, HIDDEN) if listen_key else text


class UserStream:
    """One account's user-data stream: one connection kept up (listenKey, connect, keep
    alive, reconnect after a drop), its order updates emitted as `ExecutionReport`s, and
    after each reconnection the orders that may have moved meanwhile read again by REST.

    A consumer too slow for the bounded queue is told so by a `VenueUnavailable` on its
    stream (then it resynchronises by query), never by a report silently dropped.
    """

    def __init__(
        self,
        venue: str,
        rest: BinanceRest,
        *,
        ws_url: str,
        spawn: Spawn,
        keepalive_s: float,
        reconnect_max_s: float,
        heartbeat_s: float,
        connect_timeout_s: float,
        queue_size: int,
    ) -> None:
        self._venue = venue
        self._rest = rest
        self._ws_url = ws_url
        self._spawn = spawn
        self._keepalive_s = keepalive_s
        self._reconnect_max_s = reconnect_max_s
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s

        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        # None ends the consumer's stream (the client closed).
        self._reports: asyncio.Queue[ExecutionReport | VenueError | None] = asyncio.Queue(
            queue_size
        )
        self.overflowed = False

        self.reconnects = 0  # reconnection attempts
        self.resyncs = 0  # completed re-synchronisations of open orders
        self.keepalives = 0  # listenKey keepalives the venue accepted

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def shown_url(self) -> str:
        """The stream's URL as logs show it: with the listen key hidden."""
        return f"{self._ws_url}/ws/{HIDDEN}"

    async def open(self) -> None:
        """Create the listenKey and connect; returns once connected. The key is created
        here rather than in the background so that bad credentials fail now."""
        key = await self._rest.listen_key("POST")
        self.ensure(key)
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout_s)
        except TimeoutError:
            raise VenueUnavailable(
                f"user-data stream did not connect within {self._connect_timeout_s}s",
                venue=self._venue,
            ) from None

    def ensure(self, key: str | None = None) -> None:
        """Start the connection unless it runs already (or the client closed)."""
        if self._task is None and not self._rest.closed:
            self._task = self._spawn(self._run(key), "user-stream")

    async def wait_connected(self, timeout_s: float) -> None:
        self.ensure()
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def drop(self) -> None:
        """Close the connection as a network drop would (it reconnects)."""
        if self._ws is not None:
            await self._ws.close()

    def end(self) -> None:
        """The client closed: the consumer's stream ends once it has read what is queued."""
        self._connected.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._reports.put_nowait(None)

    async def reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the stream (and resyncs); one consumer per client."""
        self.ensure()
        while True:
            if self._rest.closed and self._reports.empty():
                return
            item = await self._reports.get()
            if item is None:
                return
            if isinstance(item, VenueError):
                self.overflowed = False
                raise item
            yield item

    # --- the connection --------------------------------------------------------------------
    async def _run(self, key: str | None) -> None:
        """Keep one user-data connection up: listenKey, connect, read; after a drop, back off
        and reconnect, then re-synchronise the orders that may have moved meanwhile."""
        attempt = 0
        first = True
        while not self._rest.closed:
            try:
                if key is None:
                    key = await self._rest.listen_key("POST")
                url = URL(f"{self._ws_url}/ws/{key}")
                async with self._rest.http().ws_connect(
                    url, heartbeat=self._heartbeat_s, decode_text=False
                ) as ws:
                    log.debug("%s: user-data stream connected to %s", self._venue, self.shown_url)
                    resync = not first or bool(self._rest.orders.unfinished)
                    first, attempt = False, 0
                    await self._read(ws, resync=resync)
            except asyncio.CancelledError:
                raise
            except (VenueError, aiohttp.ClientError, TimeoutError, OSError) as e:
                if not self._rest.closed:
                    # A failed handshake's error names the URL, and so the key.
                    log.warning(
                        "%s: user-data stream %s: %s",
                        self._venue,
                        self.shown_url,
                        redacted(str(e), key),
                    )
            except Exception as e:  # a bug must not end the stream for good: log, reconnect
                log.error(
                    "%s: user-data stream %s failed\n%s",
                    self._venue,
                    self.shown_url,
                    redacted("".join(traceback.format_exception(e)), key),
                )
            key = None  # ask again: the venue returns the account's key, or a new one
            if self._rest.closed:
                return
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(min(self._reconnect_max_s, 0.05 * 2 ** min(attempt, 10)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, *, resync: bool) -> None:
        self._ws = ws
        self._connected.set()
        # Connected before the snapshot: whatever changes after it arrives on this socket.
        helpers = [self._spawn(self._keepalive(ws), "keepalive")]
        if resync:
            helpers.append(self._spawn(self._resync(), "resync"))
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                    if not self.on_message(msg.data):
                        break  # listenKey expired: reconnect with a new one
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.warning("%s: user-data stream error: %s", self._venue, ws.exception())
                    break
        finally:
            self._connected.clear()
            self._ws = None
            for t in helpers:
                t.cancel()

    async def _keepalive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """PUT the listenKey on a timer; a key the venue forgot (-1125) means reconnect."""
        while True:
            await asyncio.sleep(self._keepalive_s)
            try:
                await self._rest.listen_key("PUT")
                self.keepalives += 1
            except VenueError as e:
                log.warning("%s: listenKey keepalive failed: %s", self._venue, e)
                if e.code == parse.INVALID_LISTEN_KEY:
                    await ws.close()
                    return

    # --- events ----------------------------------------------------------------------------
    def on_message(self, data: bytes | str) -> bool:
        """Handle one user-data event; False when the stream must be reopened."""
        try:
            event = wire.USER_EVENT.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            try:
                kind = wire.EVENT_HEAD.decode(data).e
            except (msgspec.DecodeError, msgspec.ValidationError):
                kind = ""
            if kind in ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "listenKeyExpired"):
                log.error("%s: malformed %s event: %s", self._venue, kind, e)
            return True  # an event legato does not read (TRADE_LITE, MARGIN_CALL, ...)
        match event:
            case wire.OrderTradeUpdate():
                o = event.order
                fees, order_id = self._rest.fees, str(o.order_id)
                try:
                    fill = parse.stream_fill(o)
                    if fill is not None:
                        fees.add(o.symbol, order_id, fill.trade_id, fill.quantity, fill.fee)
                    report = parse.stream_report(
                        event, self._venue, cum_fee=fees.fee(o.symbol, order_id)
                    )
                except ValueError as e:  # a status or time in force legato does not know
                    log.error(
                        "%s: cannot read order update of %s: %s", self._venue, o.client_order_id, e
                    )
                    return True
                self._emit(self._rest.orders.observe(report))
            case wire.AccountUpdate():
                pass  # balances and positions are read on demand (account, positions)
            case wire.ListenKeyExpired():
                log.warning("%s: listenKey expired; reconnecting", self._venue)
                return False
        return True

    async def _resync(self) -> None:
        """Emit the current state of every order that may have moved while disconnected:
        the open orders, and each order open before the drop. Retried until it succeeds
        or the connection drops again; cumulative fields make repeats harmless."""
        delay = 0.05
        while True:
            try:
                await self._resync_once()
            except VenueError as e:
                log.warning("%s: resync failed (%s); retrying", self._venue, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max_s)
            else:
                self.resyncs += 1
                return

    async def _resync_once(self) -> None:
        orders = self._rest.orders
        before = dict(orders.unfinished)
        current = await self._rest.open_orders()
        seen = {r.client_order_id for r in current}
        for r in current:
            self._emit(r)

        async def settle(coid: str, symbol: str) -> None:
            try:
                self._emit(await self._rest.query(symbol, coid))
            except UnknownOrder:
                orders.forget(coid)  # never reached the venue

        await asyncio.gather(*(settle(c, s) for c, (s, _) in before.items() if c not in seen))

    def _emit(self, report: ExecutionReport) -> None:
        if self.overflowed:
            return  # the consumer has yet to see the overflow; it will resync by query
        try:
            self._reports.put_nowait(report)
        except asyncio.QueueFull:
            # Never drop a report silently: end the consumer's stream with an error instead.
            while not self._reports.empty():
                self._reports.get_nowait()
            self._reports.put_nowait(
                VenueUnavailable(
                    "execution report queue overflowed; resynchronise by query",
                    venue=self._venue,
                )
            )
            self.overflowed = True
