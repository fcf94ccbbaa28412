"""The REST side of the Binance USD-M adapter: every /fapi call, on the shared transport.

Every request goes through `BinanceTransport.send`: signed with the secret and the venue's
clock, under explicit timeouts, its failures mapped to the `venues.errors` family. An order
whose answer is lost is resolved by querying its client order id, never by sending it again.
Cancelling, querying and listing orders are `OrderApi`'s, on this API's paths and answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import aiohttp
import msgspec

from venues.adapter_kit import OrderWatch, batch_failed, query_each
from venues.binance import parse, wire
from venues.binance.orders import OrderApi
from venues.binance.transport import PublicGet, Secret
from venues.errors import OrderRejected, OutcomeUnknown, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    ExecutionReport,
    Fill,
    Instrument,
    NewOrder,
    Position,
)

__all__ = ["BATCH_MAX", "BinanceRest", "OrderWatch", "PublicGet", "RespType", "Secret"]

RespType = Literal["ACK", "RESULT"]
BATCH_MAX = 5  # Binance takes at most 5 orders per /batchOrders


class BinanceRest(OrderApi):
    """One account's REST API at a Binance USD-M venue: every call.

    `orders` and `fees` are shared with the user-data stream, which observes the same
    orders and adds the fills it sees.
    """

    _order_path = "/fapi/v1/order"
    _open_orders_path = "/fapi/v1/openOrders"

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        api_key: str,
        secret: Secret,
        declared_ack: AckKind,
        resp_type: RespType,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        account_id: str,
        account_api: Literal["v2", "v3"],
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
            time_path="/fapi/v1/time",
            reject_reason=parse.reject_reason,
        )
        self._resp_type = resp_type
        self._account_id = account_id
        self._account_api = account_api

    # --- listen key ----------------------------------------------------------------------
    async def listen_key(self, method: Literal["POST", "PUT"]) -> str:
        """Create (POST) or keep alive (PUT) the account's listenKey; needs the API key only."""
        body = await self.send(method, "/fapi/v1/listenKey", signed=False, api_key=True)
        return self.decode(wire.LISTEN_KEY, body, "listenKey").listen_key

    # --- reference data ------------------------------------------------------------------
    async def instruments(self) -> list[Instrument]:
        body = await self.public("/fapi/v1/exchangeInfo")
        insts = parse.instruments(self.decode(wire.EXCHANGE_INFO, body, "exchangeInfo"))
        self._instruments = {i.symbol: i for i in insts}
        return insts

    async def order_book(self, symbol: str, depth: int) -> BookSnapshot:
        limit = parse.depth_limit(depth)
        body = await self.public("/fapi/v1/depth", {"symbol": symbol, "limit": str(limit)})
        return parse.book(self.decode(wire.DEPTH, body, "depth"), self.venue, symbol, depth)

    # --- orders --------------------------------------------------------------------------
    async def place(self, order: NewOrder) -> ExecutionReport:
        """Send one order. A lost answer is resolved by querying its client order id."""
        try:
            params = parse.order_params(order, self._resp_type)
        except OrderRejected as e:
            e.venue = self.venue
            raise

        def read(body: bytes) -> ExecutionReport:
            answer = self.decode(wire.ORDER, body, "new order")
            return parse.order_report(answer, self.venue, ack_kind=self.declared_ack)

        return await self._submit(order, self._order_path, params, read)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Send orders in /batchOrders requests of up to 5; each succeeds or fails alone."""
        chunks = [orders[i : i + BATCH_MAX] for i in range(0, len(orders), BATCH_MAX)]
        answers = await asyncio.gather(*(self._place_chunk(c) for c in chunks))
        return [a for chunk in answers for a in chunk]

    async def _place_chunk(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        answers: list[ExecutionReport | VenueError | None] = [None] * len(orders)
        chunk: list[NewOrder] = []
        items: list[dict[str, str]] = []
        at: list[int] = []
        for i, o in enumerate(orders):
            try:
                items.append(parse.order_params(o, self._resp_type))
            except OrderRejected as e:
                e.venue = self.venue
                answers[i] = e
            else:
                chunk.append(o)
                at.append(i)
        if chunk:
            for i, answer in zip(at, await self._send_chunk(chunk, items), strict=True):
                answers[i] = answer
        return [a for a in answers if a is not None]

    async def _send_chunk(
        self, chunk: Sequence[NewOrder], items: list[dict[str, str]]
    ) -> list[ExecutionReport | VenueError]:
        params = {"batchOrders": wire.ENCODER.encode(items).decode()}
        added = [self.orders.track_inflight(o) for o in chunk]
        try:
            body = await self.call("POST", "/fapi/v1/batchOrders", params, mutating=True)
        except VenueError as e:
            return await batch_failed(
                self, chunk, added, e, resolve_timeout_s=self._resolve_timeout_s
            )
        raw = self.decode(wire.BATCH, body, "batchOrders")
        if len(raw) != len(chunk):
            raise VenueError(
                f"batchOrders answered {len(raw)} items for {len(chunk)} orders",
                venue=self.venue,
            )

        async def one(o: NewOrder, item: msgspec.Raw, a: bool) -> ExecutionReport | VenueError:
            try:
                answer = wire.batch_item(item)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                return VenueError(f"unexpected batchOrders item: {e}", venue=self.venue)
            if isinstance(answer, wire.ErrorBody):
                err = parse.error_from_code(
                    answer.code,
                    answer.msg,
                    venue=self.venue,
                    mutating=True,
                    client_order_id=o.client_order_id,
                )
                if isinstance(err, OutcomeUnknown):
                    return await self._resolve(o, err)
                if a:
                    self.orders.forget(o.client_order_id)
                if isinstance(err, OrderRejected):
                    return await self._refined(err, o)
                return err
            report = parse.order_report(answer, self.venue, ack_kind=self.declared_ack)
            return self.orders.observe(self._with_known_fees(report))

        return list(
            await asyncio.gather(
                *(one(o, item, a) for o, item, a in zip(chunk, raw, added, strict=True))
            )
        )

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order on `symbol`; the state of each afterwards.

        Binance's DELETE /allOpenOrders answers only "done", so the orders open before it
        are queried after it (fills that raced the cancel included).
        """
        before = await self.open_orders(symbol)
        await self.call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}, mutating=True)
        return await query_each(self, symbol, before)

    def _read_order(self, body: bytes, what: str) -> ExecutionReport:
        return parse.order_report(self.decode(wire.ORDER, body, what), self.venue)

    def _read_orders(self, body: bytes, what: str) -> list[ExecutionReport]:
        return [parse.order_report(o, self.venue) for o in self.decode(wire.ORDERS, body, what)]

    async def user_trades(self, symbol: str, order_id: str | None = None) -> list[wire.UserTrade]:
        """The account's fills on `symbol` (of one order when `order_id` is given)."""
        params = {"symbol": symbol}
        if order_id is not None:
            params["orderId"] = order_id
        body = await self.call("GET", "/fapi/v1/userTrades", params)
        trades = self.decode(wire.USER_TRADES, body, "userTrades")
        return [t for t in trades if order_id is None or str(t.order_id) == order_id]

    async def order_fills(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order, from /userTrades."""
        return [parse.user_trade_fill(t) for t in await self.user_trades(symbol, order_id)]

    # --- account -------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """Collateral and margin (/fapi/v2 or v3/account) with positions (positionRisk)."""
        acct_body, pos_body = await asyncio.gather(
            self.call("GET", f"/fapi/{self._account_api}/account"),
            self.call("GET", f"/fapi/{self._account_api}/positionRisk"),
        )
        return parse.account(
            self.decode(wire.ACCOUNT, acct_body, "account"),
            self.decode(wire.POSITIONS, pos_body, "positionRisk"),
            venue=self.venue,
            account_id=self._account_id,
            ts_ns=self.venue_now_ns(),
        )

    async def positions(self) -> list[Position]:
        body = await self.call("GET", f"/fapi/{self._account_api}/positionRisk")
        return parse.positions(self.decode(wire.POSITIONS, body, "positionRisk"))
