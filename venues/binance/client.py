"""`BinanceUsdmClient`: legato's native client of the Binance USD-M futures API (aiohttp I/O).

The same code talks to the simulated venue server and to the real venue: only the base URLs
and the credentials change. The client is the `VenueClient` façade over three parts that
share one `aiohttp.ClientSession`: `rest` (signing, timeouts, the venue's clock, every REST
call, UNKNOWN outcomes resolved by querying the client order id, never by sending again),
`user_stream` (the listenKey user-data stream, which reconnects after a drop and
re-synchronises the orders it may have missed) and `market_stream` (book tickers, trades).
What it shares with the spot client is `BinanceClientBase`'s.
"""

from __future__ import annotations

from typing import Literal

import aiohttp

from venues.binance import wire
from venues.binance.base_client import BINANCE_SAPI_URL, BinanceClientBase, check_urls
from venues.binance.market_stream import MarketStreams, usdm_market_reader
from venues.binance.rest import BATCH_MAX, BinanceRest, RespType
from venues.binance.user_stream import UsdmEvents, UserStream
from venues.model import (
    AckKind,
    Capabilities,
    InstrumentKind,
    Position,
)


class BinanceUsdmClient(BinanceClientBase):
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

    Transfers and withdrawals go through Binance's wallet API (sapi), which lives on the spot
    host, not on fapi: `sapi_url` (Binance's spot host by default; the simulator serves it on
    its one port, so there `sapi_url` is the simulator's `rest_url`).
    """

    _rest: BinanceRest

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
        sapi_url: str = BINANCE_SAPI_URL,
    ) -> None:
        if resp_type not in ("ACK", "RESULT"):
            raise ValueError(f"resp_type must be 'ACK' or 'RESULT', got {resp_type!r}")
        if account_api not in ("v2", "v3"):
            raise ValueError(f"account_api must be 'v2' or 'v3', got {account_api!r}")
        if trade_stream not in ("trade", "aggTrade"):
            raise ValueError(f"trade_stream must be 'trade' or 'aggTrade', got {trade_stream!r}")
        check_urls(
            rest_url,
            {
                "ws_url": ws_url,
                "user_ws_url": user_ws_url,
                "market_ws_url": market_ws_url,
                "public_ws_url": public_ws_url,
            },
            sapi_url,
        )
        super().__init__(venue, ws_url=ws_url, api_key=api_key, secret=secret)
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
        self._open_wallet(
            sapi_url,
            api_key=api_key,
            recv_window_ms=recv_window_ms,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
            resolve_timeout_s=resolve_timeout_s,
        )
        # Binance now splits its streams: user data under /private, book tickers under
        # /public, trades under /market. The simulator serves them all from one root.
        self._user = UserStream(
            venue,
            self._rest,
            ws_url=(user_ws_url or ws_url).rstrip("/"),
            read_event=UsdmEvents(venue, self._rest.fees),
            spawn=self._tasks.spawn,
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
            read=usdm_market_reader(venue),
            spawn=self._tasks.spawn,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=ws_heartbeat_s,
        )

    # --- VenueClient: what USD-M says its own way ----------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """Binance USD-M: perpetuals, GTX post-only, reduce-only, batches of 5; transfers
        between the account's spot and margin wallets, withdrawals (sapi)."""
        return Capabilities(
            instrument_kinds=frozenset({InstrumentKind.PERP}),
            ack_semantics=self._rest.declared_ack,
            batch_size=BATCH_MAX,
            transfers=True,
            withdrawals=True,
        )

    async def user_trades(self, symbol: str, order_id: str | None = None) -> list[wire.UserTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        return await self._rest.user_trades(symbol, order_id)

    async def positions(self) -> list[Position]:
        return await self._rest.positions()
