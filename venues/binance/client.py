"""`BinanceUsdmClient`: legato's native client of the Binance USD-M futures API (aiohttp I/O).

The same code talks to the simulated venue server and to the real venue: only the base URLs
and the credentials change. The client is the `VenueClient` façade over three parts that
share one `aiohttp.ClientSession`: `rest` (signing, timeouts, the venue's clock, every REST
call, UNKNOWN outcomes resolved by querying the client order id, never by sending again),
`user_stream` (the listenKey user-data stream, which reconnects after a drop and
re-synchronises the orders it may have missed) and `market_stream` (book tickers, trades).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, Literal, TypeVar

import aiohttp

from venues.binance import parse, wire
from venues.binance.market_stream import MarketStreams
from venues.binance.rest import BATCH_MAX, BinanceRest, PublicGet, RespType, Secret
from venues.binance.user_stream import UserStream
from venues.errors import AuthError, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    Capabilities,
    ExecutionReport,
    Fill,
    Instrument,
    InstrumentKind,
    MarketEvent,
    NewOrder,
    Position,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class BinanceUsdmClient:
    """`VenueClient` over the Binance USD-M futures REST API and its user-data stream.

    `ack_semantics` is what the venue's answer to a new order means (DESIGN §6): Binance's
    ACK answers after the risk checks (ACCEPTED); with `resp_type="RESULT"` the answer waits
    for the match and every ack is RESULT. Use as an async context manager, or call
    `start()` and `close()`: `start()` measures the venue clock and opens the user-data
    stream, so no execution report is missed from then on.

    The real venue (never used by tests) is `rest_url="https://fapi.binance.com"` with
    `user_ws_url="wss://fstream.binance.com/private"`, `public_ws_url=".../public"`,
    `market_ws_url=".../market"` and `trade_stream="aggTrade"` (the trade stream USD-M
    documents). The simulator serves everything from `ws_url`.
    """

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        ws_url: str,
        api_key: str,
        secret: str,
        ack_semantics: AckKind = AckKind.ACCEPTED,
        resp_type: RespType = "ACK",
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        account_id: str = "",
        account_api: Literal["v2", "v3"] = "v2",
        user_ws_url: str | None = None,
        market_ws_url: str | None = None,
        public_ws_url: str | None = None,
        trade_stream: Literal["trade", "aggTrade"] = "trade",
        time_sync: bool = True,
        clock_samples: int = 5,
        resolve_timeout_s: float = 3.0,
        keepalive_s: float = 30 * 60.0,
        reconnect_max_s: float = 5.0,
        ws_heartbeat_s: float = 20.0,
        stream_connect_timeout_s: float = 5.0,
        report_queue: int = 10_000,
    ) -> None:
        if resp_type not in ("ACK", "RESULT"):
            raise ValueError(f"resp_type must be 'ACK' or 'RESULT', got {resp_type!r}")
        if account_api not in ("v2", "v3"):
            raise ValueError(f"account_api must be 'v2' or 'v3', got {account_api!r}")
        if trade_stream not in ("trade", "aggTrade"):
            raise ValueError(f"trade_stream must be 'trade' or 'aggTrade', got {trade_stream!r}")
        if not api_key or not secret:
            raise AuthError("an API key and secret are required", venue=venue)
        self._venue = venue
        self._ws_url = ws_url.rstrip("/")
        self._secret = Secret(secret)
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rest = BinanceRest(
            venue,
            rest_url=rest_url.rstrip("/"),
            api_key=api_key,
            secret=self._secret,
            declared_ack=AckKind.RESULT if resp_type == "RESULT" else ack_semantics,
            resp_type=resp_type,
            recv_window_ms=recv_window_ms,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
            account_id=account_id,
            account_api=account_api,
            time_sync=time_sync,
            clock_samples=max(1, clock_samples),
            resolve_timeout_s=resolve_timeout_s,
        )
        # Binance now splits its streams: user data under /private, book tickers under
        # /public, trades under /market. The simulator serves them all from one root.
        self._user = UserStream(
            venue,
            self._rest,
            ws_url=(user_ws_url or ws_url).rstrip("/"),
            spawn=self._spawn,
            keepalive_s=keepalive_s,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=ws_heartbeat_s,
            connect_timeout_s=stream_connect_timeout_s,
            queue_size=report_queue,
        )
        self._market = MarketStreams(
            venue,
            self._rest,
            public_ws_url=(public_ws_url or market_ws_url or ws_url).rstrip("/"),
            market_ws_url=(market_ws_url or ws_url).rstrip("/"),
            trade_stream=trade_stream,
            spawn=self._spawn,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=ws_heartbeat_s,
        )

    @classmethod
    def from_env(
        cls,
        venue: str,
        rest_url: str,
        ws_url: str,
        api_key_env: str,
        secret_env: str,
        **kwargs: Any,
    ) -> BinanceUsdmClient:
        """A client whose credentials come from two environment variables."""
        missing = [name for name in (api_key_env, secret_env) if not os.environ.get(name)]
        if missing:
            raise AuthError(
                f"environment variable {' and '.join(missing)} is not set or empty "
                f"(the API key is read from {api_key_env}, the secret from {secret_env})",
                venue=venue,
            )
        return cls(
            venue,
            rest_url=rest_url,
            ws_url=ws_url,
            api_key=os.environ[api_key_env],
            secret=os.environ[secret_env],
            **kwargs,
        )

    def __repr__(self) -> str:
        api_key = self._rest.api_key
        key = f"{api_key[:4]}…" if len(api_key) > 4 else "…"
        return (
            f"BinanceUsdmClient(venue={self._venue!r}, rest_url={self._rest.rest_url!r}, "
            f"ws_url={self._ws_url!r}, api_key={key!r})"
        )

    # --- VenueClient: identity ---------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @property
    def ack_semantics(self) -> AckKind:
        return self._rest.declared_ack

    @property
    def capabilities(self) -> Capabilities:
        """Binance USD-M: perpetuals, GTX post-only, reduce-only, batches of 5."""
        return Capabilities(
            instrument_kinds=frozenset({InstrumentKind.PERP}),
            ack_semantics=self._rest.declared_ack,
            batch_size=BATCH_MAX,
        )

    @property
    def clock_offset_ns(self) -> int:
        """Venue clock minus local wall clock, from the minimum-round-trip sample."""
        return self._rest.offset_ns

    @property
    def clock_rtt_ns(self) -> int | None:
        """Round trip of the sample the offset came from (its error is at most half)."""
        return self._rest.rtt_ns

    @property
    def typical_rtt_ns(self) -> int | None:
        """The median round trip of the last clock measurement: what a request usually
        takes there and back (the minimum is what it takes at best)."""
        return self._rest.rtt_median_ns

    @property
    def stream_connected(self) -> bool:
        return self._user.connected

    @property
    def reconnects(self) -> int:
        """User-data stream reconnection attempts."""
        return self._user.reconnects

    @property
    def resyncs(self) -> int:
        """Completed re-synchronisations of open orders."""
        return self._user.resyncs

    @property
    def keepalives(self) -> int:
        """listenKey keepalives the venue accepted."""
        return self._user.keepalives

    def venue_now_ns(self) -> int:
        """The venue's clock now, as estimated from the local clock and the offset."""
        return self._rest.venue_now_ns()

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Measure the venue clock and open the user-data stream (waits until connected)."""
        if self._started:
            return
        self._started = True
        try:
            if self._rest.time_sync:
                await self.sync_clock()
            await self._user.open()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every background task, end the streams and release the session."""
        if self._rest.closed:
            return
        self._rest.closed = True  # first: no request starts and no stream reconnects
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self._market.close()
        # The listenKey is left to expire rather than deleted: Binance keeps one per account,
        # and other clients of the same account (other legs) may be reading it.
        await self._rest.close_session()
        self._user.end()

    async def __aenter__(self) -> BinanceUsdmClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A background task the client owns: cancelled on close, its failure logged."""
        task = asyncio.create_task(coro, name=f"{self._venue}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: background task %s failed",
                self._venue,
                task.get_name(),
                exc_info=task.exception(),
            )

    # --- clock and reference data ----------------------------------------------------------
    async def sync_clock(self, samples: int | None = None) -> int:
        """Measure the venue clock against the local one (the minimum-round-trip sample of
        `samples`); returns the offset in ns."""
        return await self._rest.sync_clock(samples)

    async def server_time_ns(self) -> int:
        return await self._rest.server_time_ns()

    async def instruments(self) -> list[Instrument]:
        return await self._rest.instruments()

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        return await self._rest.order_book(symbol, depth)

    # --- orders ----------------------------------------------------------------------------
    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id."""
        return await self._rest.place(order)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Send orders in /batchOrders requests of up to 5; each succeeds or fails alone."""
        return await self._rest.place_batch(orders)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """Cancel one order. A cancel is idempotent: on OutcomeUnknown, send it again."""
        return await self._rest.cancel(symbol, client_order_id)

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards."""
        return await self._rest.cancel_all(symbol)

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """The order's state now, by client order id, fees included."""
        return await self._rest.query(symbol, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        return await self._rest.open_orders(symbol)

    async def user_trades(self, symbol: str, order_id: str | None = None) -> list[wire.UserTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        return await self._rest.user_trades(symbol, order_id)

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order, from /userTrades."""
        return [parse.user_trade_fill(t) for t in await self._rest.user_trades(symbol, order_id)]

    # --- account ---------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """Collateral and margin (/fapi/v2 or v3/account) with positions (positionRisk)."""
        return await self._rest.account()

    async def positions(self) -> list[Position]:
        return await self._rest.positions()

    # --- streams ---------------------------------------------------------------------------
    def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """Reports from the user-data stream (and resyncs); one consumer per client."""
        return self._user.reports()

    async def wait_stream_connected(self, timeout_s: float) -> None:
        """Wait until the user-data stream is connected (for callers that need it up)."""
        await self._user.wait_connected(timeout_s)

    async def drop_user_stream(self) -> None:
        """Close the user-data connection as a network drop would (it reconnects)."""
        await self._user.drop()

    def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        """Book tickers and trades of `symbols` over combined streams (one connection per
        base URL); each reconnects after a drop. Market data is lossy by nature: nothing
        missed is replayed, and a slow reader loses the oldest events first."""
        return self._market.events(symbols)

    # --- seams the tests reach through ---------------------------------------------------
    @property
    def _public(self) -> PublicGet:
        """The unsigned GET of market data and the clock (tests make it fail)."""
        return self._rest.public

    @_public.setter
    def _public(self, get: PublicGet) -> None:
        self._rest.public = get  # type: ignore[method-assign]

    @property
    def _overflowed(self) -> bool:
        """The report queue overflowed and the consumer has yet to be told."""
        return self._user.overflowed

    def _on_user_message(self, data: bytes | str) -> bool:
        """Handle one user-data event as if it came over the stream."""
        return self._user.on_message(data)
