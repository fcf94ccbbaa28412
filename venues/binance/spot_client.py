"""`BinanceSpotClient`: legato's native client of the Binance spot API (aiohttp I/O).

The same code talks to the simulated venue's spot API and to the real venue: only the base
URLs and the credentials change. Like the USD-M client it is the `VenueClient` façade over
one REST side (`spot_rest`: signing, the venue's clock, every /api/v3 call, lost answers
resolved by query, never by sending again), the listenKey user-data stream (reconnects
after a drop and re-synchronises the orders it may have missed) and the market streams.
"""

from __future__ import annotations

import aiohttp

from venues.binance import spot_wire
from venues.binance.base_client import BinanceClientBase, check_urls
from venues.binance.market_stream import MarketStreams, spot_market_reader
from venues.binance.spot_rest import BinanceSpotRest, SpotRespType
from venues.binance.user_stream import SpotEvents, UserStream
from venues.model import (
    BINANCE_CLIENT_IDS,
    AckKind,
    Balance,
    BookTicker,
    Capabilities,
    InstrumentKind,
    OrderType,
    Position,
)

_ACK_OF: dict[str, AckKind] = {"ACK": AckKind.ACCEPTED, "RESULT": AckKind.RESULT}


class BinanceSpotClient(BinanceClientBase):
    """`VenueClient` over the Binance spot REST API (/api/v3) and its user-data stream.

    `resp_type` is the `newOrderRespType` of every order, and says what its answer means
    (DESIGN §6): "ACK" answers once the venue has taken the order (ACCEPTED), "RESULT"
    and "FULL" once it has matched (RESULT; FULL also lists the trades, with their fees).
    `ack_semantics` overrides what an ACK means for a venue that answers before its checks
    (a simulated RECEIPT venue). Use as an async context manager, or `start()`/`close()`.

    Binance spot has no reduce-only orders (refused here, before anything is sent) and no
    batch endpoint (`place_batch` sends each order alone). Post-only is LIMIT_MAKER. Fees
    are charged in the asset received (the base asset on a buy) unless the account pays in
    BNB: every report keeps the asset (`fee_asset`). The account has no positions and no
    margin: `account()` describes the wallet in `quote_asset` terms (see
    `spot_parse.account`).

    The real venue (never used by tests) is `rest_url="https://api.binance.com"` with
    `ws_url="wss://stream.binance.com:9443"`. The simulator serves both from one root.
    Transfers and withdrawals go through the wallet API (sapi) on the same host: `sapi_url`
    defaults to `rest_url`.
    """

    _rest: BinanceSpotRest

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        ws_url: str,
        api_key: str,
        secret: str,
        resp_type: SpotRespType = "ACK",
        ack_semantics: AckKind | None = None,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        account_id: str = "",
        quote_asset: str = "USDT",
        market_ws_url: str | None = None,
        time_sync: bool = True,
        clock_samples: int = 5,
        resolve_timeout_s: float = 3.0,
        keepalive_s: float = 30 * 60.0,
        reconnect_max_s: float = 5.0,
        ws_heartbeat_s: float = 20.0,
        stream_connect_timeout_s: float = 5.0,
        report_queue: int = 10_000,
        sapi_url: str | None = None,
    ) -> None:
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise ValueError(f"resp_type must be 'ACK', 'RESULT' or 'FULL', got {resp_type!r}")
        declared = _ACK_OF.get(resp_type, AckKind.RESULT)
        if ack_semantics is not None and resp_type == "ACK":
            declared = ack_semantics
        check_urls(rest_url, {"ws_url": ws_url, "market_ws_url": market_ws_url}, sapi_url)
        super().__init__(venue, ws_url=ws_url, api_key=api_key, secret=secret)
        self._rest = BinanceSpotRest(
            venue,
            rest_url=rest_url.rstrip("/"),
            api_key=api_key,
            secret=self._secret,
            declared_ack=declared,
            resp_type=resp_type,
            recv_window_ms=recv_window_ms,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
            account_id=account_id,
            quote_asset=quote_asset,
            time_sync=time_sync,
            clock_samples=max(1, clock_samples),
            resolve_timeout_s=resolve_timeout_s,
        )
        self._open_wallet(
            sapi_url or rest_url,
            api_key=api_key,
            recv_window_ms=recv_window_ms,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
            resolve_timeout_s=resolve_timeout_s,
        )
        self._events = SpotEvents(venue, self._rest.fees)
        self._user = UserStream(
            venue,
            self._rest,
            ws_url=self._ws_url,
            read_event=self._events,
            spawn=self._tasks.spawn,
            keepalive_s=keepalive_s,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=ws_heartbeat_s,
            connect_timeout_s=stream_connect_timeout_s,
            queue_size=report_queue,
        )
        market = (market_ws_url or ws_url).rstrip("/")
        self._market = MarketStreams(
            venue,
            self._rest,
            public_ws_url=market,
            market_ws_url=market,
            trade_stream="trade",
            read=spot_market_reader(venue, self._rest.venue_now_ns),
            spawn=self._tasks.spawn,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=ws_heartbeat_s,
        )

    # --- VenueClient: what spot says its own way ------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """Binance spot: spot instruments, LIMIT_MAKER post-only, no reduce-only, no batch;
        transfers between the account's spot and margin wallets, withdrawals (sapi)."""
        return Capabilities(
            instrument_kinds=frozenset({InstrumentKind.SPOT}),
            ack_semantics=self._rest.declared_ack,
            order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
            post_only=True,
            reduce_only=False,
            batch_size=1,
            transfers=True,
            withdrawals=True,
            client_ids=BINANCE_CLIENT_IDS,
        )

    async def positions(self) -> list[Position]:
        """A spot account holds assets, not positions: always empty (see `account()`)."""
        return []

    async def my_trades(self, symbol: str, order_id: str | None = None) -> list[spot_wire.MyTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        return await self._rest.my_trades(symbol, order_id)

    async def book_ticker(self, symbol: str) -> BookTicker:
        """The top of `symbol`'s book now (GET /api/v3/ticker/bookTicker)."""
        return await self._rest.book_ticker(symbol)

    @property
    def stream_balances(self) -> dict[str, Balance]:
        """Each asset's balance as the user-data stream last pushed it
        (outboundAccountPosition); only assets that changed since the stream opened."""
        return dict(self._events.balances)
