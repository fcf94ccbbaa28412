"""The REST side of the Binance spot adapter: every /api/v3 call, on the shared transport.

Signing, the venue's clock, timeouts and error mapping are `BinanceTransport`'s; watching
orders, fees per order, resolving lost answers by query, and cancelling, querying and
listing orders (on this API's paths and answers) are `OrderApi`'s. What is
spot's own: LIMIT_MAKER for post-only, no reduce-only and no batch endpoint, the ACK
answer that carries only the order's id, cancel-all answering with every canceled order,
and an account of asset balances with no positions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

import aiohttp
import msgspec

from venues.binance import parse, spot_parse, spot_wire, wire
from venues.binance.orders import OrderApi
from venues.binance.transport import Secret
from venues.errors import OrderRejected, UnknownOrder, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    BookTicker,
    ExecutionReport,
    Fill,
    Instrument,
    NewOrder,
)

log = logging.getLogger(__name__)

SpotRespType = Literal["ACK", "RESULT", "FULL"]
_LISTEN_KEY_PATH = "/api/v3/userDataStream"
_TRADES_MAX = 1000  # Binance lists at most 1000 trades per /myTrades request


class BinanceSpotRest(OrderApi):
    """One account's REST API at a Binance spot venue: every call.

    `resp_type` is the `newOrderRespType` sent with every order: ACK answers once the
    venue has taken the order, RESULT once it has matched, FULL with the trades it made
    (their fees go straight into the fee ledger).
    """

    _order_path = "/api/v3/order"
    _open_orders_path = "/api/v3/openOrders"

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        api_key: str,
        secret: Secret,
        declared_ack: AckKind,
        resp_type: SpotRespType,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        account_id: str,
        quote_asset: str,
        time_sync: bool,
        clock_samples: int,
        resolve_timeout_s: float,
    ) -> None:
        super().__init__(
            venue,
            rest_url=rest_url,
            api_key=api_key,
            secret=secret,
            declared_ack=declared_ack,
            recv_window_ms=recv_window_ms,
            timeout=timeout,
            time_sync=time_sync,
            clock_samples=clock_samples,
            resolve_timeout_s=resolve_timeout_s,
            time_path="/api/v3/time",
            reject_reason=spot_parse.reject_reason,
        )
        self._resp_type = resp_type
        self._account_id = account_id
        self._quote_asset = quote_asset
        self._listen_key: str | None = None  # the last one the venue gave

    # --- listen key ----------------------------------------------------------------------
    async def listen_key(self, method: Literal["POST", "PUT"]) -> str:
        """Create (POST) the account's listenKey, or keep the last one alive (PUT); needs
        the API key only. Spot answers a keepalive with `{}`: the key kept is returned."""
        if method == "POST" or self._listen_key is None:
            body = await self.send("POST", _LISTEN_KEY_PATH, signed=False, api_key=True)
            self._listen_key = self.decode(wire.LISTEN_KEY, body, "listenKey").listen_key
            return self._listen_key
        key = self._listen_key
        await self.send("PUT", _LISTEN_KEY_PATH, {"listenKey": key}, signed=False, api_key=True)
        return key

    async def close_listen_key(self) -> None:
        """Delete the listenKey (DELETE): the venue ends the user-data stream of every
        client of this account that reads it."""
        if self._listen_key is not None:
            key, self._listen_key = self._listen_key, None
            await self.send(
                "DELETE", _LISTEN_KEY_PATH, {"listenKey": key}, signed=False, api_key=True
            )

    # --- reference data ------------------------------------------------------------------
    async def instruments(self) -> list[Instrument]:
        body = await self.public("/api/v3/exchangeInfo")
        info = self.decode(spot_wire.EXCHANGE_INFO, body, "exchangeInfo")
        insts, problems = spot_parse.instruments(info)
        if problems:
            log.warning(
                "%s: %d symbol(s) left out of the instruments: %s",
                self.venue,
                len(problems),
                "; ".join(problems[:5]),
            )
        self._instruments = {i.symbol: i for i in insts}
        return insts

    async def order_book(self, symbol: str, depth: int) -> BookSnapshot:
        limit = parse.depth_limit(depth)
        body = await self.public("/api/v3/depth", {"symbol": symbol, "limit": str(limit)})
        depth_answer = self.decode(wire.DEPTH, body, "depth")
        return parse.book(depth_answer, self.venue, symbol, depth, self.venue_now_ns())

    async def book_ticker(self, symbol: str) -> BookTicker:
        body = await self.public("/api/v3/ticker/bookTicker", {"symbol": symbol})
        answer = self.decode(spot_wire.BOOK_TICKER, body, "bookTicker")
        return spot_parse.book_ticker(answer, self.venue, self.venue_now_ns())

    # --- orders --------------------------------------------------------------------------
    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id; a
        reduce-only order is refused here, before anything is sent."""
        try:
            params = spot_parse.order_params(order, self._resp_type)
        except OrderRejected as e:
            e.venue = self.venue
            raise

        def read(body: bytes) -> ExecutionReport:
            if self._resp_type == "ACK":
                ack = self.decode(spot_wire.ORDER_ACK, body, "new order")
                return spot_parse.ack_report(order, ack, self.venue, self.declared_ack)
            answer = self.decode(spot_wire.ORDER, body, "new order")
            order_id = str(answer.order_id)
            for f in spot_parse.answer_fills(answer):
                self.fees.add(answer.symbol, order_id, f.trade_id, f.quantity, f.fee, f.fee_asset)
            return spot_parse.order_report(answer, self.venue, ack_kind=self.declared_ack)

        return await self._submit(order, self._order_path, params, read)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Binance spot has no batch endpoint: each order is its own request (all sent at
        once), and each succeeds or fails alone."""

        async def one(order: NewOrder) -> ExecutionReport | VenueError:
            try:
                return await self.place(order)
            except VenueError as e:
                return e

        return list(await asyncio.gather(*(one(o) for o in orders)))

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards, as spot's
        DELETE /openOrders answers it. With none open the venue answers "Unknown order"."""
        try:
            body = await self.call(
                "DELETE", self._open_orders_path, {"symbol": symbol}, mutating=True
            )
        except UnknownOrder:
            return []
        items = self.decode(spot_wire.CANCELED, body, "cancel all")
        try:
            answers = [o for item in items for o in spot_wire.canceled_orders(item)]
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise VenueError(f"unexpected answer to cancel all: {e}", venue=self.venue) from e
        reports = await asyncio.gather(
            *(self._with_fees(spot_parse.order_report(o, self.venue)) for o in answers)
        )
        return [self.orders.observe(r) for r in reports]

    def _read_order(self, body: bytes, what: str) -> ExecutionReport:
        return spot_parse.order_report(self.decode(spot_wire.ORDER, body, what), self.venue)

    def _read_orders(self, body: bytes, what: str) -> list[ExecutionReport]:
        orders = self.decode(spot_wire.ORDERS, body, what)
        return [spot_parse.order_report(o, self.venue) for o in orders]

    # As USD-M's `user_trades`, but spot's schema, and the most trades a page holds.
    async def my_trades(self, symbol: str, order_id: str | None = None) -> list[spot_wire.MyTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        params = {"symbol": symbol, "limit": str(_TRADES_MAX)}
        if order_id is not None:
            params["orderId"] = order_id
        body = await self.call("GET", "/api/v3/myTrades", params)
        trades = self.decode(spot_wire.MY_TRADES, body, "myTrades")
        return [t for t in trades if order_id is None or str(t.order_id) == order_id]

    async def order_fills(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order, from /myTrades."""
        return [spot_parse.my_trade_fill(t) for t in await self.my_trades(symbol, order_id)]

    # --- account -------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """The spot wallet (/api/v3/account): each asset's free and locked amounts."""
        body = await self.call("GET", "/api/v3/account")
        return spot_parse.account(
            self.decode(spot_wire.ACCOUNT, body, "account"),
            venue=self.venue,
            account_id=self._account_id,
            quote=self._quote_asset,
            ts_ns=self.venue_now_ns(),
        )
