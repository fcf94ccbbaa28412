"""The signed REST transport every Binance API shares: one session, signing, the venue clock.

Spot (/api/v3) and USD-M futures (/fapi) sign, time and fail alike: HMAC-SHA256 over the
query string, `timestamp` and `recvWindow` on the venue's clock, `X-MBX-APIKEY`, and JSON
errors `{"code": ..., "msg": ...}` with 418/429 for rate limits. What differs between them
(paths, the meaning of a few codes) is given to `BinanceTransport` by the API built on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import msgspec
from yarl import URL

from venues.adapter_kit import measure_clock
from venues.binance import parse, wire
from venues.errors import AuthError, OutcomeUnknown, RateLimited, VenueError, VenueUnavailable
from venues.model import RejectReason

T = TypeVar("T")
RejectReasonOf = Callable[[int, str], RejectReason | None]
PublicGet = Callable[[str, dict[str, str] | None], Awaitable[bytes]]


class Secret:
    """An API secret that signs and never shows itself (repr, logs, pickles)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.encode()

    def sign(self, payload: str) -> str:
        return wire.sign(self._value, payload)

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> Any:
        raise TypeError("an API secret cannot be pickled")


class BinanceTransport:
    """One account's signed requests to one Binance API, and the venue's clock.

    `time_path` is the API's server-time endpoint; `reject_reason` tells which order
    refusal a code (and its message) means in this API. `closed` is set by the client
    that owns this when it closes: from then on no request starts and no stream reconnects.
    `clock`: another API's transport of the same account whose measured venue clock this one
    signs with (Binance keeps one clock: the wallet API on the spot host signs on the clock
    the USD-M client measured); by default this one measures its own.
    """

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        api_key: str,
        secret: Secret,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        time_sync: bool,
        clock_samples: int,
        time_path: str,
        reject_reason: RejectReasonOf,
        clock: BinanceTransport | None = None,
    ) -> None:
        self.venue = venue
        self.rest_url = rest_url
        self.api_key = api_key
        self._secret = secret
        self._recv_window_ms = recv_window_ms
        self._timeout = timeout
        self.time_sync = time_sync
        self._clock_samples = clock_samples
        self._time_path = time_path
        self._reject_reason = reject_reason

        self.closed = False
        self._session: aiohttp.ClientSession | None = None
        self.rate_limited = 0  # rate-limit answers (418/429 or a rate-limit code), for metrics

        self.offset_ns = 0
        self.rtt_ns: int | None = None
        self.rtt_median_ns: int | None = None
        self._clock_epoch = 0
        self._clock_lock = asyncio.Lock()
        self._clock: BinanceTransport = clock or self

    # --- transport -----------------------------------------------------------------------
    def http(self) -> aiohttp.ClientSession:
        """The one session of this account (REST and WebSockets alike), opened on first use."""
        if self._session is None:
            if self.closed:
                raise VenueUnavailable("client is closed", venue=self.venue)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60.0),
            )
        return self._session

    async def close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timestamp_ms(self) -> int:
        return self.venue_now_ns() // parse.NS_PER_MS

    async def send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        signed: bool = True,
        api_key: bool = True,
        mutating: bool = False,
        client_order_id: str | None = None,
    ) -> bytes:
        """One request; the body of a 2xx answer, else the mapped `VenueError`."""
        query = dict(params or {})
        if signed:
            query["recvWindow"] = str(self._recv_window_ms)
            query["timestamp"] = str(self._timestamp_ms())
        payload = wire.encode_params(query)
        if signed:
            payload = f"{payload}&signature={self._secret.sign(payload)}"
        headers = {"X-MBX-APIKEY": self.api_key} if api_key or signed else {}
        data: bytes | None = None
        if method in ("POST", "PUT"):
            url = URL(self.rest_url + path)
            if payload:
                data = payload.encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            # Sent exactly as signed: yarl must not re-encode the query.
            url = URL(f"{self.rest_url}{path}{'?' + payload if payload else ''}", encoded=True)
        try:
            async with self.http().request(method, url, data=data, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            # The request never left: nothing can have happened at the venue.
            raise VenueUnavailable(
                f"cannot connect to {self.rest_url} ({type(e).__name__})", venue=self.venue
            ) from e
        except (TimeoutError, aiohttp.ClientError) as e:
            what = f"{method} {path} failed after sending ({type(e).__name__})"
            if mutating:
                raise OutcomeUnknown(
                    f"{what}; execution status unknown",
                    venue=self.venue,
                    client_order_id=client_order_id,
                ) from e
            raise VenueUnavailable(what, venue=self.venue) from e
        if 200 <= status < 300:
            return body
        error = parse.error_from_response(
            status,
            body,
            venue=self.venue,
            mutating=mutating,
            client_order_id=client_order_id,
            retry_after_s=parse.retry_after(retry_after),
            reject_reason=self._reject_reason,
        )
        if isinstance(error, RateLimited):
            self.rate_limited += 1
        raise error

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        mutating: bool = False,
        client_order_id: str | None = None,
    ) -> bytes:
        """A signed request; a stale timestamp (-1021) re-measures the clock and retries
        once, which is safe: Binance refuses such a request before looking at it."""
        clock = self._clock
        epoch = clock._clock_epoch
        try:
            return await self.send(
                method, path, params, mutating=mutating, client_order_id=client_order_id
            )
        except AuthError as e:
            if e.code != parse.STALE_TIMESTAMP or not clock.time_sync:
                raise
        await clock._resync_clock(epoch)
        return await self.send(
            method, path, params, mutating=mutating, client_order_id=client_order_id
        )

    async def public(self, path: str, params: dict[str, str] | None = None) -> bytes:
        """An unsigned GET without the API key (market data, the clock)."""
        return await self.send("GET", path, params, signed=False, api_key=False)

    def decode(self, decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
        try:
            return decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise VenueError(f"unexpected answer to {what}: {e}", venue=self.venue) from e

    # --- clock ---------------------------------------------------------------------------
    async def sync_clock(self, samples: int | None = None) -> int:
        """Measure the venue clock against the local one (`measure_clock`: the minimum
        round trip of `samples` server-time requests). Returns the offset in ns."""
        reading = await measure_clock(
            self.venue,
            lambda: self.public(self._time_path),
            lambda body: self.decode(wire.SERVER_TIME, body, self._time_path).server_time,
            samples or self._clock_samples,
        )
        self.offset_ns, self.rtt_ns = reading.offset_ns, reading.rtt_ns
        self.rtt_median_ns = reading.rtt_median_ns
        self._clock_epoch += 1
        return self.offset_ns

    async def _resync_clock(self, epoch: int) -> None:
        async with self._clock_lock:
            if self._clock_epoch == epoch:  # nobody re-measured since the request was signed
                await self.sync_clock()

    async def server_time_ns(self) -> int:
        body = await self.public(self._time_path)
        return parse.ms_to_ns(self.decode(wire.SERVER_TIME, body, self._time_path).server_time)

    def venue_now_ns(self) -> int:
        return time.time_ns() + self._clock.offset_ns
