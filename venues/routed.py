"""`RoutedClient`: one venue reached through two APIs, its derivatives and its spot side.

A venue such as Binance (and the simulator, which serves both of Binance's APIs on one
port) keeps a USD-M futures wallet and a spot wallet behind two APIs. legato treats it as
one venue: this client routes each call by the instrument's kind to the adapter of that API,
and merges what both say (instruments, open orders, execution reports; the account's margin
wallet from the derivatives side and `spot_balances` from the spot side). Transfers and
withdrawals are the account's, whichever API trades: they go to the spot side (whose host
holds Binance's wallet API), or to the only side there is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import TypeVar

from venues.client import VenueClient
from venues.errors import VenueError
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
    TransferReceipt,
    WalletKind,
)

T = TypeVar("T")


class RoutedClient:
    """`VenueClient` over one adapter per instrument kind of one venue."""

    def __init__(self, venue: str, sides: dict[InstrumentKind, VenueClient]) -> None:
        if not sides:
            raise ValueError(f"venue {venue}: a routed client needs at least one adapter")
        self._venue = venue
        self._sides = dict(sides)
        self._kind_of: dict[str, InstrumentKind] = {}

    # --- identity and capabilities -------------------------------------------------------
    @property
    def venue(self) -> str:
        return self._venue

    @property
    def sides(self) -> dict[InstrumentKind, VenueClient]:
        return dict(self._sides)

    @property
    def ack_semantics(self) -> AckKind:
        """The derivatives side's, when there is one (legs read their own side's acks)."""
        return self._main.ack_semantics

    @property
    def capabilities(self) -> Capabilities:
        """What every side can do together: the kinds of all, the features of each (a
        feature is offered when the side of the instrument has it: see `capabilities_for`)."""
        caps = [c.capabilities for c in self._sides.values()]
        main = self._main.capabilities
        return Capabilities(
            instrument_kinds=frozenset().union(*(c.instrument_kinds for c in caps)),
            ack_semantics=main.ack_semantics,
            order_types=frozenset().union(*(c.order_types for c in caps)),
            time_in_force=frozenset().union(*(c.time_in_force for c in caps)),
            post_only=any(c.post_only for c in caps),
            reduce_only=any(c.reduce_only for c in caps),
            batch_size=min(c.batch_size for c in caps),
            transfers=self._wallets.capabilities.transfers,
            withdrawals=self._wallets.capabilities.withdrawals,
            client_ids=main.client_ids,
        )

    def capabilities_for(self, symbol: str) -> Capabilities:
        return self._side(symbol).capabilities

    @property
    def typical_rtt_ns(self) -> int | None:
        rtts = [c.typical_rtt_ns for c in self._sides.values() if c.typical_rtt_ns is not None]
        return max(rtts) if rtts else None

    @property
    def _main(self) -> VenueClient:
        return self._sides.get(InstrumentKind.PERP) or next(iter(self._sides.values()))

    @property
    def _wallets(self) -> VenueClient:
        """The side transfers and withdrawals go through: the spot side, else the only one."""
        return self._sides.get(InstrumentKind.SPOT) or self._main

    def _side(self, symbol: str) -> VenueClient:
        kind = self._kind_of.get(symbol)
        if kind is None:
            raise VenueError(
                f"{symbol} is not listed on {self._venue} (listed: "
                f"{', '.join(sorted(self._kind_of)) or 'nothing; call start() first'})",
                venue=self._venue,
            )
        return self._sides[kind]

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await asyncio.gather(*(c.start() for c in self._sides.values()))
            await self.instruments()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._sides.values()), return_exceptions=True)

    # --- market and orders ---------------------------------------------------------------
    async def instruments(self) -> list[Instrument]:
        """Each side's instruments of its own kind (a side listing others leaves them)."""
        listed: list[Instrument] = []
        for kind, client in self._sides.items():
            mine = [i for i in await client.instruments() if i.kind is kind]
            self._kind_of.update((i.symbol, kind) for i in mine)
            listed += mine
        return listed

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        return await self._side(symbol).order_book(symbol, depth)

    async def place(self, order: NewOrder) -> ExecutionReport:
        return await self._side(order.symbol).place(order)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        """Each side's orders in its own batches; the answers in the order asked."""
        by_side: dict[InstrumentKind, list[int]] = {}
        answers: list[ExecutionReport | VenueError | None] = [None] * len(orders)
        for i, order in enumerate(orders):
            try:
                kind = self._kind_of[order.symbol]
            except KeyError:
                answers[i] = VenueError(
                    f"{order.symbol} is not listed on {self._venue}", venue=self._venue
                )
                continue
            by_side.setdefault(kind, []).append(i)

        async def side(kind: InstrumentKind, indices: list[int]) -> None:
            got = await self._sides[kind].place_batch([orders[i] for i in indices])
            for i, answer in zip(indices, got, strict=True):
                answers[i] = answer

        await asyncio.gather(*(side(k, ix) for k, ix in by_side.items()))
        return [a for a in answers if a is not None]

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._side(symbol).cancel(symbol, client_order_id)

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        return await self._side(symbol).cancel_all(symbol)

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._side(symbol).query(symbol, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        if symbol is not None:
            return await self._side(symbol).open_orders(symbol)
        lists = await asyncio.gather(*(c.open_orders(None) for c in self._sides.values()))
        return [r for rows in lists for r in rows]

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        return await self._side(symbol).trades(symbol, order_id)

    # --- account -------------------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """The derivatives side's margin wallet, with the spot side's wallet as
        `spot_balances`."""
        main = self._sides.get(InstrumentKind.PERP)
        spot = self._sides.get(InstrumentKind.SPOT)
        snaps = await asyncio.gather(*(c.account() for c in (main, spot) if c is not None))
        if main is None or spot is None:
            return snaps[0]
        margin, wallet = snaps
        return AccountSnapshot(
            venue=self._venue,
            account_id=margin.account_id,
            balances=margin.balances,
            positions=margin.positions,
            margin_asset=margin.margin_asset,
            wallet_balance=margin.wallet_balance,
            unrealized_pnl=margin.unrealized_pnl,
            position_initial_margin=margin.position_initial_margin,
            open_order_initial_margin=margin.open_order_initial_margin,
            available_margin=margin.available_margin,
            ts_ns=max(margin.ts_ns, wallet.ts_ns),
            spot_balances=wallet.spot_balances,
        )

    async def positions(self) -> list[Position]:
        main = self._sides.get(InstrumentKind.PERP)
        return [] if main is None else await main.positions()

    async def server_time_ns(self) -> int:
        return await self._main.server_time_ns()

    # --- transfers (the account's, through the spot side) ----------------------------------
    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        return await self._wallets.transfer(asset, amount, source, destination, client_transfer_id)

    async def deposit_address(self, asset: str) -> str:
        return await self._wallets.deposit_address(asset)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        return await self._wallets.withdraw(asset, amount, address, client_transfer_id)

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        return await self._wallets.transfer_status(receipt)

    # --- streams -------------------------------------------------------------------------
    def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """Every side's reports as they come; a side's stream error ends this one with it."""
        return _merged([c.execution_reports() for c in self._sides.values()])

    def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        by_side: dict[InstrumentKind, list[str]] = {}
        for s in symbols:
            kind = self._kind_of.get(s)
            if kind is None:
                raise VenueError(f"{s} is not listed on {self._venue}", venue=self._venue)
            by_side.setdefault(kind, []).append(s)
        return _merged([self._sides[k].market_events(mine) for k, mine in by_side.items()])


async def _merged(streams: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """The items of several streams as each arrives; ends when all have ended, and raises
    the first error any of them raises."""
    queue: asyncio.Queue[tuple[T | None, BaseException | None, bool]] = asyncio.Queue()

    async def pump(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                queue.put_nowait((item, None, False))
            queue.put_nowait((None, None, True))
        except Exception as e:  # handed to the reader, which raises it
            queue.put_nowait((None, e, True))

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    ended = 0
    try:
        while ended < len(tasks):
            item, error, done = await queue.get()
            if error is not None:
                raise error
            if done:
                ended += 1
            else:
                yield item  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
