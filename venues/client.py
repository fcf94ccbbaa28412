"""The `VenueClient` protocol: what legato needs from any venue, simulated or real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable

from venues.errors import VenueError, VenueUnavailable
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    Capabilities,
    ExecutionReport,
    Fill,
    Instrument,
    MarketEvent,
    NewOrder,
    Position,
    TransferReceipt,
    WalletKind,
)


@runtime_checkable
class VenueClient(Protocol):
    """An async connection to one account at one venue.

    `place` answers with the venue's acknowledgement, whose `ack_kind` is the venue's
    declared `ack_semantics` (or UNKNOWN when the outcome could not be learned: resolve it
    with `query`, never by sending again). Fills arrive on `execution_reports()`; every
    report carries cumulative fields, so a late or repeated report is harmless.

    Client order ids are legato's (`<prefix>-<leg>-<n>`) both ways: an adapter whose venue
    has another rule maps them (`venues.client_ids`). Order and trade ids are strings.
    """

    @property
    def venue(self) -> str: ...

    @property
    def ack_semantics(self) -> AckKind: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def typical_rtt_ns(self) -> int | None:
        """The median request round trip measured at `start` (None before)."""
        ...

    async def start(self) -> None:
        """Measure the venue's clock and open the execution-report stream."""
        ...

    async def instruments(self) -> list[Instrument]: ...

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot: ...

    async def place(self, order: NewOrder) -> ExecutionReport: ...

    async def place_batch(
        self, orders: Sequence[NewOrder]
    ) -> list[ExecutionReport | VenueError]: ...

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport: ...

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]: ...

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport: ...

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]: ...

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        """Every fill of one order (by the venue's order id), with fee, fee asset and
        maker/taker, as the venue lists them."""
        ...

    async def account(self) -> AccountSnapshot: ...

    async def positions(self) -> list[Position]: ...

    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        """Move `amount` of `asset` between this account's own wallets (`capabilities.
        transfers`). The answer may say PENDING; `transfer_status` follows it. An adapter
        whose venue keeps no client id for transfers finds a lost answer's transfer in the
        venue's history, never by asking twice. `Unsupported` where the venue cannot."""
        ...

    async def deposit_address(self, asset: str) -> str:
        """Where another venue sends `asset` to credit this account's spot wallet
        (`capabilities.withdrawals`)."""
        ...

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        """Send `amount` of `asset` from the spot wallet to `address` (another venue's
        `deposit_address`), under `client_transfer_id`, by which a lost answer is found
        again (`capabilities.withdrawals`)."""
        ...

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        """The transfer's state now, as the venue reports it (by its id, or for a lost
        answer by its client id)."""
        ...

    async def server_time_ns(self) -> int: ...

    def execution_reports(self) -> AsyncIterator[ExecutionReport]: ...

    def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]: ...

    async def close(self) -> None: ...


async def take_samples(sample: Callable[[], Awaitable[object]], wanted: int) -> int:
    """Await `sample()` until it has succeeded `wanted` times (clock exchanges with a
    venue). A `VenueUnavailable` (a busy venue's timeout) is taken again, up to `wanted`
    failures in all; past that the samples taken do, and with none the last error is
    raised. Returns how many succeeded."""
    taken = failed = 0
    while taken < wanted:
        try:
            await sample()
        except VenueUnavailable:
            failed += 1
            if failed > wanted:
                if taken:
                    break
                raise
            continue
        taken += 1
    return taken
