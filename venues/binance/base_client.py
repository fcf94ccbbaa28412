"""What legato's Binance clients (spot and USD-M) share: the `VenueClient` façade's lifecycle,
its owned background tasks, and the calls that read the same whichever API is behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, Self

import aiohttp

from venues.adapter_kit import OwnedTasks, credentials_from_env, insecure_url
from venues.binance import wallet_parse
from venues.binance.market_stream import MarketStreams
from venues.binance.orders import OrderApi
from venues.binance.transport import BinanceTransport, PublicGet, Secret
from venues.binance.user_stream import UserStream
from venues.binance.wallet import BinanceWallet
from venues.errors import AuthError, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    ExecutionReport,
    Fill,
    Instrument,
    MarketEvent,
    NewOrder,
    TransferReceipt,
    WalletKind,
)

BINANCE_SAPI_URL = "https://api.binance.com"  # the wallet API (sapi) lives on the spot host


def check_urls(rest_url: str, ws_urls: dict[str, str | None], sapi_url: str | None = None) -> None:
    """Refuse (ValueError, naming the parameter) a URL keys and signatures must not travel
    over: plain http or ws to a host that is not a loopback address (`insecure_url`)."""
    rest = [("rest_url", rest_url)] + ([("sapi_url", sapi_url)] if sapi_url else [])
    problems = [(name, insecure_url(url)) for name, url in rest] + [
        (name, insecure_url(url, websocket=True)) for name, url in ws_urls.items() if url
    ]
    for name, problem in problems:
        if problem is not None:
            raise ValueError(f"{name}: {problem}")


class BinanceClientBase:
    """The parts of a Binance `VenueClient` that do not depend on the API: lifecycle (start
    measures the clock and opens the user-data stream; close stops every owned task and
    the session), the clock, and the calls each API's REST side answers alike.

    A subclass builds `_rest` (its API), then `_user` and `_market`, which start their
    background tasks with `_tasks.spawn`, and the wallet (`_open_wallet`): transfers and
    withdrawals go through the wallet API (sapi) on the spot host whichever API trades.
    """

    _rest: OrderApi
    _user: UserStream
    _market: MarketStreams
    _wallet: BinanceWallet

    def __init__(self, venue: str, *, ws_url: str, api_key: str, secret: str) -> None:
        if not api_key or not secret:
            raise AuthError("an API key and secret are required", venue=venue)
        self._venue = venue
        self._ws_url = ws_url.rstrip("/")
        self._secret = Secret(secret)
        self._started = False
        self._tasks = OwnedTasks(venue)

    @classmethod
    def from_env(
        cls,
        venue: str,
        rest_url: str,
        ws_url: str,
        api_key_env: str,
        secret_env: str,
        **kwargs: Any,
    ) -> Self:
        """A client whose credentials come from two environment variables."""
        api_key, secret, _ = credentials_from_env(venue, api_key_env, secret_env)
        return cls(
            venue, rest_url=rest_url, ws_url=ws_url, api_key=api_key, secret=secret, **kwargs
        )

    def __repr__(self) -> str:
        api_key = self._rest.api_key
        key = f"{api_key[:4]}…" if len(api_key) > 4 else "…"
        return (
            f"{type(self).__name__}(venue={self._venue!r}, rest_url={self._rest.rest_url!r}, "
            f"ws_url={self._ws_url!r}, api_key={key!r})"
        )

    def _open_wallet(
        self,
        sapi_url: str,
        *,
        api_key: str,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        resolve_timeout_s: float,
    ) -> None:
        """The account's wallet API at `sapi_url`, signed on the clock `_rest` measures."""
        api = BinanceTransport(
            self._venue,
            rest_url=sapi_url.rstrip("/"),
            api_key=api_key,
            secret=self._secret,
            recv_window_ms=recv_window_ms,
            timeout=timeout,
            time_sync=self._rest.time_sync,
            clock_samples=1,
            time_path="/api/v3/time",
            reject_reason=wallet_parse.reject_reason,
            clock=self._rest,
        )
        window_ns = int((timeout.total or 10.0) * 1e9)
        self._wallet = BinanceWallet(api, resolve_timeout_s=resolve_timeout_s, window_ns=window_ns)

    # --- VenueClient: identity ---------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @property
    def ack_semantics(self) -> AckKind:
        return self._rest.declared_ack

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
    def rate_limited(self) -> int:
        """Rate-limit answers to this client's requests."""
        return self._rest.rate_limited

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
        self._wallet.api.closed = True
        await self._tasks.cancel_all()
        await self._market.close()
        # The listenKey is left to expire rather than deleted: Binance keeps one per account,
        # and other clients of the same account (other legs) may be reading it.
        await self._rest.close_session()
        await self._wallet.close()
        self._user.end()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        """Send several orders; each succeeds or fails alone."""
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

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order (by the venue's order id), from the account's trades."""
        return await self._rest.order_fills(symbol, order_id)

    # --- account ---------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        return await self._rest.account()

    # --- transfers -------------------------------------------------------------------------
    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        """Move `amount` of `asset` between this account's spot and USD-M margin wallets
        (Binance's universal transfer: MAIN_UMFUTURE, UMFUTURE_MAIN); `Unsupported` for any
        other pair. A lost answer is found in the transfer history, never sent again."""
        return await self._wallet.transfer(asset, amount, source, destination, client_transfer_id)

    async def deposit_address(self, asset: str) -> str:
        return await self._wallet.deposit_address(asset)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        """Withdraw from the spot wallet to `address`, `withdrawOrderId` = client id."""
        return await self._wallet.withdraw(asset, amount, address, client_transfer_id)

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        return await self._wallet.transfer_status(receipt)

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
