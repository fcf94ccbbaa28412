"""The Binance listenKey user-data stream (spot and USD-M): kept connected, read into reports.

The listen key alone lets anyone read the account's orders, so it never appears in a log
line, an exception message or a repr: what is logged is the URL with the key as `***`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import aiohttp
import msgspec
from yarl import URL

from venues.adapter_kit import ReportQueue, Spawn, reconnect_delay, resync_orders
from venues.binance import parse, spot_parse, spot_wire, wire
from venues.binance.orders import OrderApi
from venues.errors import VenueError, VenueUnavailable
from venues.model import Balance, ExecutionReport

log = logging.getLogger(__name__)

T = TypeVar("T")
HIDDEN = "***"


class StreamEnd(enum.Enum):
    """The venue ended the stream (its listenKey expired): reconnect with a new key."""

    REOPEN = "REOPEN"


# One user-data message read: an order's new state, nothing legato reads, or the end.
EventReader = Callable[[bytes | str], ExecutionReport | StreamEnd | None]


def redacted(text: str, listen_key: str | None) -> str:
    """`text` with the listen key in it replaced by `***`."""
    return text.replace(listen_key, HIDDEN) if listen_key else text


def _decoded(
    decoder: msgspec.json.Decoder[T], data: bytes | str, venue: str, kinds: tuple[str, ...]
) -> T | None:
    """One user-data event, or None for one legato does not read; an event of the `kinds`
    it reads that does not decode is logged."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        try:
            kind = wire.EVENT_HEAD.decode(data).e
        except (msgspec.DecodeError, msgspec.ValidationError):
            kind = ""
        if kind in kinds:
            log.error("%s: malformed %s event: %s", venue, kind, e)
        return None


class UsdmEvents:
    """Reads USD-M user-data events: ORDER_TRADE_UPDATE into reports (the fill added to
    the fee ledger first), ACCOUNT_UPDATE passed over, listenKeyExpired ends the stream."""

    def __init__(self, venue: str, fees: parse.FeeLedger) -> None:
        self._venue = venue
        self._fees = fees

    def __call__(self, data: bytes | str) -> ExecutionReport | StreamEnd | None:
        read = ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "listenKeyExpired")
        event = _decoded(wire.USER_EVENT, data, self._venue, read)
        match event:
            case None:
                return None  # an event legato does not read (TRADE_LITE, MARGIN_CALL, ...)
            case wire.OrderTradeUpdate():
                o = event.order
                order_id = str(o.order_id)
                try:
                    fill = parse.stream_fill(o)
                    if fill is not None:
                        self._fees.add(
                            o.symbol,
                            order_id,
                            fill.trade_id,
                            fill.quantity,
                            fill.fee,
                            fill.fee_asset,
                        )
                    return parse.stream_report(
                        event,
                        self._venue,
                        cum_fee=self._fees.fee(o.symbol, order_id),
                        fee_asset=self._fees.fee_asset(o.symbol, order_id),
                    )
                except ValueError as e:  # a status or time in force legato does not know
                    log.error(
                        "%s: cannot read order update of %s: %s", self._venue, o.client_order_id, e
                    )
                    return None
            case wire.AccountUpdate():
                return None  # balances and positions are read on demand (account, positions)
            case wire.ListenKeyExpired():
                return StreamEnd.REOPEN


class SpotEvents:
    """Reads spot user-data events: executionReport into reports (its fill, with the asset
    its fee was charged in, added to the fee ledger first); outboundAccountPosition keeps
    `balances` as the venue last pushed them; listenKeyExpired and eventStreamTerminated
    end the stream."""

    def __init__(self, venue: str, fees: parse.FeeLedger) -> None:
        self._venue = venue
        self._fees = fees
        self.balances: dict[str, Balance] = {}  # by asset: bounded by the assets there are

    def __call__(self, data: bytes | str) -> ExecutionReport | StreamEnd | None:
        read = ("executionReport", "outboundAccountPosition", "listenKeyExpired")
        event = _decoded(spot_wire.USER_EVENT, data, self._venue, read)
        match event:
            case None:
                return None  # an event legato does not read (listStatus, externalLockUpdate, ...)
            case spot_wire.ExecutionReportEvent():
                return self._order_update(event)
            case spot_wire.OutboundAccountPosition():
                for b in event.balances:
                    self.balances[b.asset] = Balance(
                        asset=b.asset, wallet=b.free + b.locked, available=b.free
                    )
                return None
            case spot_wire.BalanceUpdate():
                return None  # a deposit or transfer: outboundAccountPosition follows it
            case wire.ListenKeyExpired() | spot_wire.EventStreamTerminated():
                return StreamEnd.REOPEN

    def _order_update(self, e: spot_wire.ExecutionReportEvent) -> ExecutionReport | None:
        order_id = str(e.order_id)
        try:
            fill = spot_parse.stream_fill(e)
            if fill is not None:
                fees = self._fees
                fees.add(e.symbol, order_id, fill.trade_id, fill.quantity, fill.fee, fill.fee_asset)
                if fees.mixed(e.symbol, order_id):
                    log.warning(
                        "%s: order %s pays fees in more than one asset; its cumulative fee "
                        "counts those in %s only",
                        self._venue,
                        e.client_order_id,
                        fees.fee_asset(e.symbol, order_id),
                    )
            return spot_parse.stream_report(
                e,
                self._venue,
                cum_fee=self._fees.fee(e.symbol, order_id),
                fee_asset=self._fees.fee_asset(e.symbol, order_id),
            )
        except ValueError as err:  # a status or time in force legato does not know
            log.error("%s: cannot read order update of %s: %s", self._venue, e.client_order_id, err)
            return None


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
        rest: OrderApi,
        *,
        ws_url: str,
        read_event: EventReader,
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
        self._read_event = read_event
        self._spawn = spawn
        self._keepalive_s = keepalive_s
        self._reconnect_max_s = reconnect_max_s
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s

        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._reports = ReportQueue(venue, queue_size)

        self.reconnects = 0  # reconnection attempts
        self.resyncs = 0  # completed re-synchronisations of open orders
        self.keepalives = 0  # listenKey keepalives the venue accepted

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def overflowed(self) -> bool:
        """The report queue overflowed and the consumer has yet to be told."""
        return self._reports.overflowed

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
        self._reports.end()

    async def reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the stream (and resyncs); one consumer per client."""
        self.ensure()
        async for report in self._reports.reports(lambda: self._rest.closed):
            yield report

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
            await asyncio.sleep(reconnect_delay(attempt, self._reconnect_max_s))

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
        match self._read_event(data):
            case StreamEnd.REOPEN:
                log.warning("%s: listenKey expired; reconnecting", self._venue)
                return False
            case ExecutionReport() as report:
                self._reports.put(self._rest.orders.observe(report))
        return True

    async def _resync(self) -> None:
        """Emit the current state of every order that may have moved while disconnected
        (`resync_orders`); this task is cancelled if the connection drops again first."""
        if await resync_orders(
            self._rest,
            self._reports.put,
            retry_max_s=self._reconnect_max_s,
            closed=lambda: self._rest.closed,
        ):
            self.resyncs += 1
