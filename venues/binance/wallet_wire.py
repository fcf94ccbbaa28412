"""Binance wallet (sapi) wire schemas: the JSON of the universal transfer and the capital
(deposit and withdrawal) endpoints, on the spot API's host.

Field names follow Binance's wallet API reference. As for the trading APIs (`wire`), unknown
fields are ignored on purpose and amounts sent as strings decode straight into `Decimal`. The
error body is `wire.ErrorBody`, decoded by `wire.ERROR`.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

# --- universal transfer (/sapi/v1/asset/transfer) ---------------------------------------


class TransferAnswer(msgspec.Struct, frozen=True, rename="camel"):
    """POST /sapi/v1/asset/transfer: the venue's id of the transfer, nothing more."""

    tran_id: int


class TransferRow(msgspec.Struct, frozen=True, rename="camel"):
    """One transfer of GET /sapi/v1/asset/transfer's `rows`."""

    asset: str
    amount: Decimal
    type: str  # MAIN_UMFUTURE, UMFUTURE_MAIN, ...
    status: str  # PENDING, CONFIRMED, FAILED
    tran_id: int
    timestamp: int  # ms, when the venue took it


class TransferHistory(msgspec.Struct, frozen=True):
    """GET /sapi/v1/asset/transfer: one page of transfers of one type, newest first."""

    total: int = 0
    rows: list[TransferRow] = []


# --- capital (/sapi/v1/capital) -----------------------------------------------------------


class DepositAddress(msgspec.Struct, frozen=True):
    """GET /sapi/v1/capital/deposit/address."""

    address: str
    coin: str = ""
    tag: str = ""  # a memo the sender must add (XRP, ...); "" for most coins
    url: str = ""


class WithdrawAnswer(msgspec.Struct, frozen=True):
    """POST /sapi/v1/capital/withdraw/apply: the venue's id of the withdrawal."""

    id: str


class WithdrawalRow(msgspec.Struct, frozen=True, rename="camel"):
    """One withdrawal of GET /sapi/v1/capital/withdraw/history.

    `status`: 0 email sent, 1 cancelled, 2 awaiting approval, 3 rejected, 4 processing,
    5 failure, 6 completed. `applyTime` and `completeTime` are "YYYY-MM-DD HH:MM:SS" in UTC.
    """

    id: str
    amount: Decimal
    coin: str
    status: int
    address: str | None = None
    apply_time: str | None = None
    transaction_fee: Decimal | None = None
    tx_id: str | None = None
    network: str | None = None
    transfer_type: int | None = None  # 1: to another account at the venue, 0: on chain
    withdraw_order_id: str | None = None  # absent when it was made without one
    info: str | None = None  # why it failed, when it did
    confirm_no: int | None = None
    wallet_type: int | None = None  # 0: spot wallet, 1: funding wallet
    complete_time: str | int | None = None


# --- decoders, built once ---------------------------------------------------------------

TRANSFER_ANSWER = msgspec.json.Decoder(TransferAnswer)
TRANSFER_HISTORY = msgspec.json.Decoder(TransferHistory)
DEPOSIT_ADDRESS = msgspec.json.Decoder(DepositAddress)
WITHDRAW_ANSWER = msgspec.json.Decoder(WithdrawAnswer)
WITHDRAWALS = msgspec.json.Decoder(list[WithdrawalRow])
