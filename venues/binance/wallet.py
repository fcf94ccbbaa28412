"""The wallet side of a Binance account (sapi, on the spot API's host): transfers between its
spot and USD-M margin wallets, deposit addresses, withdrawals, and what became of each.

Both Binance clients (USD-M and spot) reach the same account's wallets through this, on the
spot host (`https://api.binance.com`; the simulator serves it on its one port), signed on the
clock the client measured. A lost answer is never resolved by asking again: a universal
transfer (no client id at Binance) is found in the transfer history by the rule of
`venues.binance.transfer_claims`; a withdrawal by its `withdrawOrderId`, legato's client
transfer id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from venues.binance import wallet_parse, wallet_wire
from venues.binance.parse import NS_PER_MS
from venues.binance.transfer_claims import CLOCK_SLACK_NS, TransferClaims, asked, find_lost
from venues.binance.transport import BinanceTransport
from venues.errors import InvalidRequest, OutcomeUnknown
from venues.model import TransferKind, TransferReceipt, WalletKind

_TRANSFER_PATH = "/sapi/v1/asset/transfer"
_PAGE = 100  # Binance lists at most 100 transfers per page
_PAGES_MAX = 10


class BinanceWallet:
    """One account's wallets at a Binance venue, through `api` (a transport on the spot host).

    Its transfers and withdrawals go one at a time, so a lost answer is resolved before the
    next one is sent (the rule that finds it counts identical transfers). `window_ns`: how
    long after a request the venue may still have taken it (the request timeout).
    """

    def __init__(self, api: BinanceTransport, *, resolve_timeout_s: float, window_ns: int) -> None:
        self.api = api
        self._resolve_timeout_s = resolve_timeout_s
        self._claims = TransferClaims(window_ns)
        self._window_ns = window_ns
        self._one_at_a_time = asyncio.Lock()

    @property
    def venue(self) -> str:
        return self.api.venue

    async def close(self) -> None:
        self.api.closed = True
        await self.api.close_session()

    def _asked(
        self,
        kind: TransferKind,
        asset: str,
        amount: Decimal,
        source: str,
        destination: str,
        client_transfer_id: str,
    ) -> TransferReceipt:
        return asked(
            venue=self.venue,
            kind=kind,
            asset=asset,
            amount=amount,
            source=source,
            destination=destination,
            client_transfer_id=client_transfer_id,
            now_ns=self.api.venue_now_ns(),
        )

    # --- internal transfers --------------------------------------------------------------
    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        """Move `amount` of `asset` between the spot and the USD-M margin wallet (universal
        transfer). The answer carries only the venue's id: PENDING until `transfer_status`
        reads the history. A lost answer is looked for in the history, never sent again;
        a client id already used answers what became of that transfer."""
        kind = wallet_parse.transfer_type(source, destination, self.venue)
        async with self._one_at_a_time:
            asked = self._asked(
                TransferKind.INTERNAL,
                asset,
                amount,
                WalletKind(source).value,
                WalletKind(destination).value,
                client_transfer_id,
            )
            earlier = self._claims.earlier(asked)
            if earlier is not None:
                return await self._status(earlier)
            try:
                body = await self.api.call(
                    "POST",
                    _TRANSFER_PATH,
                    wallet_parse.transfer_params(asset, amount, kind),
                    mutating=True,
                    client_order_id=client_transfer_id,
                )
            except OutcomeUnknown as e:
                self._claims.record(asked)  # a retry under this id must not send it again
                return await find_lost(
                    self._claims,
                    asked,
                    lambda: self._transfer_rows(kind, asked.requested_ns),
                    e,
                    timeout_s=self._resolve_timeout_s,
                )
            answer = self.api.decode(wallet_wire.TRANSFER_ANSWER, body, "asset transfer")
            return self._claims.record(wallet_parse.answered(asked, str(answer.tran_id)))

    async def _transfer_rows(self, kind: str, requested_ns: int) -> list[TransferReceipt]:
        """The transfers of one type in the window a transfer requested at `requested_ns`
        can have been taken in (every page of it)."""
        start_ms = (requested_ns - CLOCK_SLACK_NS) // NS_PER_MS
        end_ms = (requested_ns + self._window_ns + CLOCK_SLACK_NS) // NS_PER_MS
        out: list[TransferReceipt] = []
        seen = 0
        for page in range(1, _PAGES_MAX + 1):
            params = wallet_parse.history_params(kind, start_ms, end_ms, page, _PAGE)
            body = await self.api.call("GET", _TRANSFER_PATH, params)
            history = self.api.decode(wallet_wire.TRANSFER_HISTORY, body, "transfer history")
            seen += len(history.rows)
            out += [
                r
                for r in (wallet_parse.transfer_receipt(x, self.venue) for x in history.rows)
                if r is not None
            ]
            if not history.rows or seen >= history.total:
                break
        return out

    # --- deposits and withdrawals ----------------------------------------------------------
    async def deposit_address(self, asset: str) -> str:
        """The spot wallet's address for `asset` on the coin's default network."""
        body = await self.api.call("GET", "/sapi/v1/capital/deposit/address", {"coin": asset})
        answer = self.api.decode(wallet_wire.DEPOSIT_ADDRESS, body, "deposit address")
        return wallet_parse.deposit_address(answer, asset, self.venue)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        """Send `amount` of `asset` from the spot wallet to `address`, under
        `withdrawOrderId` = `client_transfer_id`. A withdrawal the history already holds
        under that id (made before a restart) is answered, not made again; a lost answer is
        looked for by that id in the history, never sent again."""
        if not address:
            raise InvalidRequest("a withdrawal needs an address", venue=self.venue)
        async with self._one_at_a_time:
            asked = self._asked(
                TransferKind.WITHDRAWAL,
                asset,
                amount,
                WalletKind.SPOT.value,
                address,
                client_transfer_id,
            )
            earlier = self._claims.earlier(asked)
            if earlier is not None:
                return await self._status(earlier)
            # Binance keeps the client id: a withdrawal made before a restart is found by it.
            made = self._claims.find(asked, await self._withdrawal_rows(asked), by_client_id=True)
            if made is not None:
                return made
            try:
                body = await self.api.call(
                    "POST",
                    "/sapi/v1/capital/withdraw/apply",
                    wallet_parse.withdraw_params(asset, amount, address, client_transfer_id),
                    mutating=True,
                    client_order_id=client_transfer_id,
                )
            except OutcomeUnknown as e:
                self._claims.record(asked)
                return await find_lost(
                    self._claims,
                    asked,
                    lambda: self._withdrawal_rows(asked),
                    e,
                    timeout_s=self._resolve_timeout_s,
                    by_client_id=True,
                )
            answer = self.api.decode(wallet_wire.WITHDRAW_ANSWER, body, "withdraw")
            return self._claims.record(wallet_parse.answered(asked, answer.id))

    async def _withdrawal_rows(self, asked: TransferReceipt) -> list[TransferReceipt]:
        start_ms = (asked.requested_ns - CLOCK_SLACK_NS) // NS_PER_MS
        params = wallet_parse.withdrawal_query(
            asked.asset, asked.client_transfer_id, start_ms=start_ms
        )
        body = await self.api.call("GET", "/sapi/v1/capital/withdraw/history", params)
        rows = self.api.decode(wallet_wire.WITHDRAWALS, body, "withdraw history")
        return [wallet_parse.withdrawal_receipt(r, self.venue) for r in rows]

    # --- following a transfer ------------------------------------------------------------
    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        """The transfer's state now, from the venue's history: by its id, or for a lost
        answer (no id) by legato's client id (a withdrawal) or the rule (a transfer). Not
        (yet) in the history, the receipt comes back as it was."""
        async with self._one_at_a_time:
            return await self._status(receipt)

    async def _status(self, receipt: TransferReceipt) -> TransferReceipt:
        rows: Sequence[TransferReceipt]
        if receipt.kind is TransferKind.WITHDRAWAL:
            rows = await self._withdrawal_rows(receipt)
            found = self._claims.find(receipt, rows, by_client_id=not receipt.transfer_id)
        else:
            kind = wallet_parse.transfer_type(
                WalletKind(receipt.source), WalletKind(receipt.destination), self.venue
            )
            rows = await self._transfer_rows(kind, receipt.requested_ns)
            found = self._claims.find(receipt, rows)
        return receipt if found is None else found
