"""The aiohttp application serving one simulated venue as Binance's USD-M futures and spot APIs.

`BinanceServer` puts a `SimVenue` behind aiohttp on 127.0.0.1: the public and signed REST
endpoints of both APIs (`/fapi` for the perpetuals, `/api/v3` for the spot instruments, each
serving its own only), the listenKey user-data streams, the spot WebSocket API's user data
subscription (`/ws-api/v3`) and the `bookTicker`/`trade`/`aggTrade` market streams,
HMAC-SHA256 signatures and Binance's error codes, close enough that a stock client of either
API works once its base URLs point here. The wallet endpoints (`/sapi`: universal transfers
between the spot and futures wallets, deposit addresses, withdrawals and their histories)
move money between the two wallets and, by `sim://` addresses, to other simulated venues.
Every request goes through the venue, so the venue profile applies: latency,
acknowledgement semantics, stream lag, outages (HTTP 503, or connections refused), injected
rejects and lost answers (-1007). `/_sim/` (not Binance) tells tests and TCA the venue-side
times of each order, injects faults (outages, dropped streams) and takes deposits from other
simulated venues; it answers on loopback only (to known API keys, but for deposits). Secrets
and signatures are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web

from venues.config import ApiCredential
from venues.errors import OrderRejected, RateLimited, UnknownOrder, VenueUnavailable
from venues.sim.host import SimVenue
from venues.sim.server.errors import BinanceError, _rate_limited, _unavailable, reject_error
from venues.sim.server.gateway import GATEWAY, Gateway
from venues.sim.server.handlers import (
    account_v2,
    account_v3,
    all_orders,
    balance_v2,
    batch_orders,
    book_ticker,
    cancel_all,
    cancel_order,
    change_leverage,
    depth,
    get_exchange_info,
    leverage_bracket,
    new_order,
    open_orders,
    ping,
    position_risk_v2,
    position_risk_v3,
    query_order,
    server_time,
    user_trades,
)
from venues.sim.server.spot_handlers import (
    spot_account,
    spot_all_orders,
    spot_book_ticker_handler,
    spot_cancel_open_orders,
    spot_cancel_order,
    spot_depth,
    spot_exchange_info_handler,
    spot_my_trades,
    spot_new_order,
    spot_open_orders,
    spot_query_order,
    spot_test_order,
)
from venues.sim.server.streamdrop import sim_drop_streams
from venues.sim.server.streams import (
    bare_stream,
    close_listen_key,
    close_spot_listen_key,
    combined_stream,
    keep_listen_key,
    keep_spot_listen_key,
    new_listen_key,
    new_spot_listen_key,
    private_stream,
    raw_stream,
)
from venues.sim.server.testapi import (
    sim_deposit,
    sim_end_transfer,
    sim_get_profile,
    sim_order,
    sim_set_profile,
    sim_start_outage,
    sim_stop_outage,
)
from venues.sim.server.transfers import (
    DELIVERY_TIMEOUT,
    SIM_SCHEME,
    deposit_address,
    deposit_history,
    http_courier,
    new_transfer,
    transfer_history,
    withdraw,
    withdraw_history,
)
from venues.sim.server.wsapi import ws_api

log = logging.getLogger(__name__)


@web.middleware
async def _binance_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure as a Binance error body; never a traceback on the wire."""
    gw = request.app[GATEWAY]
    admin = request.path.startswith("/_sim/")
    try:
        if not admin and gw.venue.conditions.outage(gw.venue.now_ns()) is not None:
            raise VenueUnavailable("venue outage", venue=gw.venue.name)
        return await handler(request)
    except BinanceError as e:
        return e.response()
    except VenueUnavailable:
        if gw.venue.conditions.outage(gw.venue.now_ns()) == "refuse" and request.transport:
            request.transport.abort()  # connection reset: the closest a request gets to refused
        return _unavailable().response()
    except RateLimited as e:
        return _rate_limited(e, gw.venue.profile.orders_per_minute).response()
    except OrderRejected as e:
        return reject_error(e).response()
    except UnknownOrder:
        return BinanceError(-2013, "Order does not exist.").response()
    except web.HTTPException as e:
        if e.status in (404, 405):
            return BinanceError(
                -5000, f"Path {request.path}, Method {request.method} is invalid", 404
            ).response()
        if e.status == 413:
            return BinanceError(
                -1101, "Too many parameters sent for this endpoint.", 413
            ).response()
        return BinanceError(-1000, e.reason or "Bad request.", e.status).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return BinanceError(
            -1000, "An unknown error occured while processing the request.", 500
        ).response()


async def _venue_ctx(app: web.Application) -> AsyncIterator[None]:
    """The venue runs (market, timers, streams) for as long as the application does, and
    delivers its withdrawals to `sim://` addresses (other servers' `/_sim/deposit`) over one
    HTTP session, closed after the venue stops (which ends the deliveries under way)."""
    gw = app[GATEWAY]
    async with aiohttp.ClientSession(timeout=DELIVERY_TIMEOUT) as session:
        gw.venue.couriers[SIM_SCHEME] = http_courier(session)
        await gw.venue.start()
        yield
        await gw.venue.stop()
        gw.venue.couriers.pop(SIM_SCHEME, None)


async def _close_sockets(app: web.Application) -> None:
    await app[GATEWAY].close_sockets(1001, "server stopping")


def make_app(venue: SimVenue, credentials: Mapping[str, ApiCredential]) -> web.Application:
    """The aiohttp application serving `venue` to the holders of `credentials`."""
    app = web.Application(middlewares=[_binance_errors])
    app[GATEWAY] = Gateway(venue, dict(credentials))
    app.cleanup_ctx.append(_venue_ctx)
    app.on_shutdown.append(_close_sockets)
    r = app.router
    r.add_get("/fapi/v1/ping", ping)
    r.add_get("/fapi/v1/time", server_time)
    r.add_get("/fapi/v1/exchangeInfo", get_exchange_info)
    r.add_get("/fapi/v1/depth", depth)
    r.add_get("/fapi/v1/ticker/bookTicker", book_ticker)
    r.add_post("/fapi/v1/order", new_order)
    r.add_get("/fapi/v1/order", query_order)
    r.add_delete("/fapi/v1/order", cancel_order)
    r.add_post("/fapi/v1/batchOrders", batch_orders)
    r.add_get("/fapi/v1/openOrders", open_orders)
    r.add_get("/fapi/v1/allOrders", all_orders)
    r.add_delete("/fapi/v1/allOpenOrders", cancel_all)
    r.add_get("/fapi/v1/userTrades", user_trades)
    r.add_get("/fapi/v2/account", account_v2)
    r.add_get("/fapi/v3/account", account_v3)
    r.add_get("/fapi/v2/positionRisk", position_risk_v2)
    r.add_get("/fapi/v3/positionRisk", position_risk_v3)
    r.add_get("/fapi/v2/balance", balance_v2)
    r.add_get("/fapi/v3/balance", balance_v2)  # the same rows as v2
    r.add_get("/fapi/v1/leverageBracket", leverage_bracket)
    r.add_post("/fapi/v1/leverage", change_leverage)
    r.add_post("/fapi/v1/listenKey", new_listen_key)
    r.add_put("/fapi/v1/listenKey", keep_listen_key)
    r.add_delete("/fapi/v1/listenKey", close_listen_key)
    # Binance's spot API: the venue's spot instruments, traded from the spot wallet.
    r.add_get("/api/v3/ping", ping)
    r.add_get("/api/v3/time", server_time)
    r.add_get("/api/v3/exchangeInfo", spot_exchange_info_handler)
    r.add_get("/api/v3/depth", spot_depth)
    r.add_get("/api/v3/ticker/bookTicker", spot_book_ticker_handler)
    r.add_post("/api/v3/order", spot_new_order)
    r.add_post("/api/v3/order/test", spot_test_order)
    r.add_get("/api/v3/order", spot_query_order)
    r.add_delete("/api/v3/order", spot_cancel_order)
    r.add_get("/api/v3/openOrders", spot_open_orders)
    r.add_delete("/api/v3/openOrders", spot_cancel_open_orders)
    r.add_get("/api/v3/allOrders", spot_all_orders)
    r.add_get("/api/v3/account", spot_account)
    r.add_get("/api/v3/myTrades", spot_my_trades)
    r.add_post("/api/v3/userDataStream", new_spot_listen_key)
    r.add_put("/api/v3/userDataStream", keep_spot_listen_key)
    r.add_delete("/api/v3/userDataStream", close_spot_listen_key)
    # Binance's wallet endpoints: between the spot and futures wallets, and to other venues.
    r.add_post("/sapi/v1/asset/transfer", new_transfer)
    r.add_get("/sapi/v1/asset/transfer", transfer_history)
    r.add_get("/sapi/v1/capital/deposit/address", deposit_address)
    r.add_post("/sapi/v1/capital/withdraw/apply", withdraw)
    r.add_get("/sapi/v1/capital/withdraw/history", withdraw_history)
    r.add_get("/sapi/v1/capital/deposit/hisrec", deposit_history)
    r.add_get("/ws-api/v3", ws_api)
    r.add_get("/ws", bare_stream)  # streams subscribed by message
    r.add_get("/ws/{stream}", raw_stream)
    r.add_get("/stream", combined_stream)
    # Binance's current USD-M roots: public (book tickers, depth), market (trades) and
    # private (user data); each serves every stream here.
    for root in ("/public", "/market", "/private"):
        if root != "/private":  # /private/ws is the user stream (below)
            r.add_get(f"{root}/ws", bare_stream)
        r.add_get(f"{root}/ws/{{stream}}", raw_stream)
        r.add_get(f"{root}/stream", combined_stream)
    r.add_get("/private/ws", private_stream)
    r.add_get("/_sim/orders/{client_order_id}", sim_order)
    r.add_post("/_sim/outage", sim_start_outage)
    r.add_delete("/_sim/outage", sim_stop_outage)
    r.add_get("/_sim/profile", sim_get_profile)
    r.add_post("/_sim/profile", sim_set_profile)
    r.add_post("/_sim/streams/drop", sim_drop_streams)
    r.add_post("/_sim/deposit", sim_deposit)
    r.add_post("/_sim/transfers/{transfer_id}", sim_end_transfer)
    return app


class BinanceServer:
    """A simulated venue on `host:port` (0: any free port) as Binance's USD-M and spot APIs.

    Starting the server starts the venue; stopping it stops the venue. An outage in mode
    "refuse" closes the listening socket and every connection for its duration; any outage
    closes the open streams when it starts (clients reconnect and resynchronise).
    """

    def __init__(
        self,
        venue: SimVenue,
        credentials: Mapping[str, ApiCredential],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        for key, cred in credentials.items():
            if key != cred.api_key:
                raise ValueError(f"credentials must be keyed by their API key ({cred.account_id})")
            if not venue.exchange.has_account(cred.account_id):
                raise ValueError(
                    f"API key for account {cred.account_id!r}: no such account on {venue.name}"
                )
        self.venue = venue
        self.host = host
        self.port = port
        self.app = make_app(venue, credentials)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        self.port = int(self._runner.addresses[0][1])
        self._watcher = asyncio.create_task(
            self._watch_outages(), name=f"outages-{self.venue.name}"
        )
        log.info(
            "venue %s serves Binance's USD-M and spot APIs at %s", self.venue.name, self.rest_url
        )

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> BinanceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _watch_outages(self) -> None:
        """Follow the venue's outages: close streams when one starts; in "refuse" mode close
        the listener and every connection, and listen again on the same port after it."""
        gw = self.app[GATEWAY]
        down: str | None = None
        while True:
            try:
                mode = self.venue.conditions.outage(self.venue.now_ns())
                if mode != down:
                    if mode is not None:
                        await gw.close_sockets(1012, "venue outage")
                    if mode == "refuse":
                        await self._refuse()
                    elif down == "refuse":
                        await self._listen()
                    down = mode
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad step must not end the watch
                log.exception("outage watcher of %s", self.venue.name)
            await asyncio.sleep(0.005)

    async def _refuse(self) -> None:
        assert self._runner is not None
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for conn in list(server.connections if server else ()):
            conn.force_close()

    async def _listen(self) -> None:
        assert self._runner is not None
        if self._site is None:
            self._site = web.TCPSite(self._runner, self.host, self.port)
            await self._site.start()
