"""What every Binance order API of legato shares above the transport: which orders may still
change, fees per order, unknown outcomes resolved by query (never by sending again), and the
calls both APIs make alike (cancel, query and list orders by their client ids)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import aiohttp
import msgspec

from venues.adapter_kit import OrderWatch, resolve_by_query
from venues.binance import parse
from venues.binance.transport import BinanceTransport, RejectReasonOf, Secret
from venues.errors import OrderRejected, OutcomeUnknown, VenueError
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    ExecutionReport,
    Fill,
    Instrument,
    NewOrder,
)


class OrderApi(BinanceTransport, abc.ABC):
    """One account's orders at one Binance API: the transport, plus what both APIs do the
    same way with the answers.

    `orders` and `fees` are shared with the user-data stream, which observes the same
    orders and adds the fills it sees. An API built on this names its order endpoints
    (`_order_path`, `_open_orders_path`), reads its order answers (`_read_order`,
    `_read_orders`), lists an order's fills (`order_fills`), reads the instruments, keeps
    its listenKey, and says everything else a `VenueClient` asks of an account.
    """

    _order_path: ClassVar[str]  # new order, query and cancel one (by client order id)
    _open_orders_path: ClassVar[str]

    def __init__(
        self,
        venue: str,
        *,
        rest_url: str,
        api_key: str,
        secret: Secret,
        declared_ack: AckKind,
        recv_window_ms: int,
        timeout: aiohttp.ClientTimeout,
        time_sync: bool,
        clock_samples: int,
        resolve_timeout_s: float,
        time_path: str,
        reject_reason: RejectReasonOf,
    ) -> None:
        super().__init__(
            venue,
            rest_url=rest_url,
            api_key=api_key,
            secret=secret,
            recv_window_ms=recv_window_ms,
            timeout=timeout,
            time_sync=time_sync,
            clock_samples=clock_samples,
            time_path=time_path,
            reject_reason=reject_reason,
        )
        self.declared_ack = declared_ack
        self._resolve_timeout_s = resolve_timeout_s
        self.orders = OrderWatch()
        self.fees = parse.FeeLedger()
        self._instruments: dict[str, Instrument] = {}  # as last read, to explain rejects

    # --- what each API says its own way ----------------------------------------------------
    @abc.abstractmethod
    async def listen_key(self, method: Literal["POST", "PUT"]) -> str:
        """Create (POST) or keep alive (PUT) the account's listenKey."""

    @abc.abstractmethod
    async def instruments(self) -> list[Instrument]: ...

    @abc.abstractmethod
    async def order_book(self, symbol: str, depth: int) -> BookSnapshot: ...

    @abc.abstractmethod
    async def place(self, order: NewOrder) -> ExecutionReport: ...

    @abc.abstractmethod
    async def place_batch(
        self, orders: Sequence[NewOrder]
    ) -> list[ExecutionReport | VenueError]: ...

    @abc.abstractmethod
    async def cancel_all(self, symbol: str) -> list[ExecutionReport]: ...

    @abc.abstractmethod
    def _read_order(self, body: bytes, what: str) -> ExecutionReport:
        """The report of an answer stating one order (a query's, a cancel's), without fees;
        `what` names the request in a decoding error."""

    @abc.abstractmethod
    def _read_orders(self, body: bytes, what: str) -> list[ExecutionReport]:
        """The reports of an answer listing orders, without fees."""

    @abc.abstractmethod
    async def order_fills(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order (by the venue's order id), as the account's trades list."""

    @abc.abstractmethod
    async def account(self) -> AccountSnapshot: ...

    # --- calls both APIs make alike ------------------------------------------------------
    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """Cancel one order. A cancel is idempotent: on OutcomeUnknown, send it again."""
        body = await self.call(
            "DELETE",
            self._order_path,
            {"symbol": symbol, "origClientOrderId": client_order_id},
            mutating=True,
            client_order_id=client_order_id,
        )
        return self.orders.observe(await self._with_fees(self._read_order(body, "cancel")))

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        """The order's state now, by client order id, fees included."""
        body = await self.call(
            "GET", self._order_path, {"symbol": symbol, "origClientOrderId": client_order_id}
        )
        return self.orders.observe(await self._with_fees(self._read_order(body, "query order")))

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        body = await self.call("GET", self._open_orders_path, {"symbol": symbol} if symbol else {})
        reports = await asyncio.gather(
            *(self._with_fees(r) for r in self._read_orders(body, "openOrders"))
        )
        return [self.orders.observe(r) for r in reports]

    # --- shared semantics ----------------------------------------------------------------
    async def _submit(
        self,
        order: NewOrder,
        path: str,
        params: dict[str, str],
        read: Callable[[bytes], ExecutionReport],
    ) -> ExecutionReport:
        """POST one order and `read` the answer into a report. The order is watched from
        before it is sent, so a resync while it is in flight asks for it; a lost answer is
        resolved by query, and a refusal is made as precise as the instrument allows."""
        added = self.orders.track_inflight(order)
        try:
            body = await self.call(
                "POST", path, params, mutating=True, client_order_id=order.client_order_id
            )
        except OutcomeUnknown as e:
            return await self._resolve(order, e)
        except VenueError as e:
            if added:
                self.orders.forget(order.client_order_id)
            if isinstance(e, OrderRejected):
                raise await self._refined(e, order) from None
            raise
        return self.orders.observe(self._with_known_fees(read(body)))

    async def _refined(self, err: OrderRejected, order: NewOrder) -> OrderRejected:
        """A precision error (-1111) does not say whether the price or the quantity broke
        it; the instrument's tick and lot do."""
        if err.code != parse.BAD_PRECISION:
            return err
        if order.symbol not in self._instruments:
            with contextlib.suppress(VenueError):
                await self.instruments()
        inst = self._instruments.get(order.symbol)
        reason = parse.precision_reason(order, inst) if inst is not None else None
        if reason is None or reason is err.reason:
            return err
        return OrderRejected(
            err.message,
            reason=reason,
            venue=err.venue,
            code=err.code,
            client_order_id=err.client_order_id,
        )

    async def _resolve(self, order: NewOrder, cause: OutcomeUnknown) -> ExecutionReport:
        """Learn what became of an order whose answer was lost, by query; never by sending
        it again (`resolve_by_query`)."""
        return await resolve_by_query(self, order, cause, timeout_s=self._resolve_timeout_s)

    def _with_known_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with the cumulative fee (and its asset) the ledger holds."""
        fee = self.fees.fee(report.symbol, report.order_id)
        asset = self.fees.fee_asset(report.symbol, report.order_id) or report.fee_asset
        if fee == report.cum_fee and asset == report.fee_asset:
            return report
        return msgspec.structs.replace(report, cum_fee=fee, fee_asset=asset)

    async def _with_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with its cumulative fee; REST orders carry none, so the fills the
        stream has not shown are read from the account's trades."""
        if report.cum_filled > 0 and not self.fees.complete(report):
            for f in await self.order_fills(report.symbol, report.order_id):
                self.fees.add(
                    report.symbol, report.order_id, f.trade_id, f.quantity, f.fee, f.fee_asset
                )
        return self._with_known_fees(report)
