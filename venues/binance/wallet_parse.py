"""Binance wallet (sapi) objects to legato's transfer receipts, and back; pure, no I/O.

The universal transfer moves an asset between one account's wallets; legato uses two of its
types: `MAIN_UMFUTURE` (the spot wallet to the USD-M margin wallet) and `UMFUTURE_MAIN` (back).
A withdrawal leaves the spot wallet for an address and carries legato's client transfer id as
its `withdrawOrderId`. Times stay on the venue's clock as integer ns; amounts stay `Decimal`.
"""

from __future__ import annotations

import calendar
import time
from decimal import Decimal

import msgspec

from venues.binance import wallet_wire
from venues.binance.parse import decimal_str, ms_to_ns
from venues.errors import Unsupported
from venues.model import RejectReason, TransferKind, TransferReceipt, TransferState, WalletKind

# --- universal transfer -------------------------------------------------------------------

TO_MARGIN = "MAIN_UMFUTURE"  # spot wallet -> USD-M futures wallet
TO_SPOT = "UMFUTURE_MAIN"  # USD-M futures wallet -> spot wallet
_TYPE_OF: dict[tuple[WalletKind, WalletKind], str] = {
    (WalletKind.SPOT, WalletKind.MARGIN): TO_MARGIN,
    (WalletKind.MARGIN, WalletKind.SPOT): TO_SPOT,
}
_WALLETS_OF = {kind: wallets for wallets, kind in _TYPE_OF.items()}

_TRANSFER_STATES = {
    "PENDING": TransferState.PENDING,
    "CONFIRMED": TransferState.COMPLETED,
    "FAILED": TransferState.FAILED,
}


def transfer_type(source: WalletKind, destination: WalletKind, venue: str = "") -> str:
    """The universal transfer type for a move between the two wallets legato knows;
    `Unsupported` (nothing sent) for any other."""
    kind = _TYPE_OF.get((WalletKind(source), WalletKind(destination)))
    if kind is None:
        raise Unsupported(
            f"Binance cannot move funds from the {source} wallet to the {destination} wallet: "
            "a transfer goes from spot to margin (USD-M) or from margin to spot",
            venue=venue,
        )
    return kind


def transfer_params(asset: str, amount: Decimal, kind: str) -> dict[str, str]:
    """The parameters of POST /sapi/v1/asset/transfer."""
    return {"type": kind, "asset": asset, "amount": decimal_str(amount)}


def history_params(kind: str, start_ms: int, end_ms: int, page: int, size: int) -> dict[str, str]:
    """The parameters of GET /sapi/v1/asset/transfer: one page of one type's transfers in a
    window (Binance answers the newest first; `current` counts pages from 1)."""
    return {
        "type": kind,
        "startTime": str(start_ms),
        "endTime": str(end_ms),
        "current": str(page),
        "size": str(size),
    }


def transfer_state(status: str) -> TransferState:
    """A universal transfer's status: PENDING, CONFIRMED (credited) or FAILED; a status
    Binance may add later reads as PENDING, so nothing is taken for final that is not."""
    return _TRANSFER_STATES.get(status, TransferState.PENDING)


def transfer_receipt(row: wallet_wire.TransferRow, venue: str) -> TransferReceipt | None:
    """One row of the transfer history as a receipt (no client id: Binance keeps none);
    None for a type legato does not make."""
    wallets = _WALLETS_OF.get(row.type)
    if wallets is None:
        return None
    state = transfer_state(row.status)
    if row.status not in _TRANSFER_STATES:
        reason = f"unknown transfer status {row.status!r}"
    elif state is TransferState.FAILED:
        reason = "the venue failed the transfer (it says no more); nothing moved"
    else:
        reason = ""
    return TransferReceipt(
        transfer_id=str(row.tran_id),
        kind=TransferKind.INTERNAL,
        venue=venue,
        asset=row.asset,
        amount=row.amount,
        source=wallets[0].value,
        destination=wallets[1].value,
        state=state,
        requested_ns=ms_to_ns(row.timestamp),
        reason=reason,
    )


def answered(asked: TransferReceipt, venue_id: str) -> TransferReceipt:
    """What an answer that carries only the venue's id says: the transfer was taken, under that
    id; its state comes from the history (`transfer_status`)."""
    return msgspec.structs.replace(asked, transfer_id=venue_id)


# --- capital: deposits and withdrawals ----------------------------------------------------

# Binance's withdrawal statuses: 0 email sent, 1 cancelled, 2 awaiting approval, 3 rejected,
# 4 processing, 5 failure, 6 completed.
_WITHDRAWAL_STATES: dict[int, tuple[TransferState, str]] = {
    0: (TransferState.PENDING, "email sent"),
    1: (TransferState.FAILED, "cancelled"),
    2: (TransferState.PENDING, "awaiting approval"),
    3: (TransferState.FAILED, "rejected"),
    4: (TransferState.PENDING, "processing"),
    5: (TransferState.FAILED, "failure"),
    6: (TransferState.COMPLETED, "completed"),
}


def withdraw_params(
    asset: str, amount: Decimal, address: str, client_transfer_id: str
) -> dict[str, str]:
    """The parameters of POST /sapi/v1/capital/withdraw/apply (the coin's default network)."""
    return {
        "coin": asset,
        "address": address,
        "amount": decimal_str(amount),
        "withdrawOrderId": client_transfer_id,
    }


def withdrawal_query(
    asset: str, client_transfer_id: str, *, start_ms: int | None = None, end_ms: int | None = None
) -> dict[str, str]:
    """The parameters of GET /sapi/v1/capital/withdraw/history for one coin: by legato's
    client transfer id (Binance then looks back 7 days), or in a window."""
    params = {"coin": asset}
    if client_transfer_id:
        params["withdrawOrderId"] = client_transfer_id
    else:
        if start_ms is not None:
            params["startTime"] = str(start_ms)
        if end_ms is not None:
            params["endTime"] = str(end_ms)
    return params


def utc_ns(text: str | int | None) -> int:
    """A wallet time as integer ns: "YYYY-MM-DD HH:MM:SS" in UTC (or epoch ms); 0 when the
    venue gives none."""
    if text is None or text == "":
        return 0
    if isinstance(text, int):
        return ms_to_ns(text)
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")) * 1_000_000_000
    except ValueError:
        return 0


def withdrawal_receipt(row: wallet_wire.WithdrawalRow, venue: str) -> TransferReceipt:
    """One row of the withdrawal history as a receipt: pending while Binance has not sent it
    (email sent, awaiting approval, processing), completed once sent, failed (with why) when
    cancelled, rejected or failed."""
    state, said = _WITHDRAWAL_STATES.get(
        row.status, (TransferState.PENDING, f"unknown withdrawal status {row.status}")
    )
    reason = ""
    if state is TransferState.FAILED:
        reason = f"{said}: {row.info}" if row.info else said
    elif row.status not in _WITHDRAWAL_STATES:
        reason = said
    updated = utc_ns(row.complete_time) if state is TransferState.COMPLETED else 0
    return TransferReceipt(
        transfer_id=row.id,
        client_transfer_id=row.withdraw_order_id or "",
        kind=TransferKind.WITHDRAWAL,
        venue=venue,
        asset=row.coin,
        amount=row.amount,
        source=WalletKind.SPOT.value,
        destination=row.address or "",
        state=state,
        requested_ns=utc_ns(row.apply_time),
        updated_ns=updated,
        reason=reason,
    )


def deposit_address(answer: wallet_wire.DepositAddress, asset: str, venue: str = "") -> str:
    """The address another venue sends `asset` to; `Unsupported` for one that also needs a
    memo (tag): legato's withdrawals carry none, and a deposit without it would be lost."""
    if answer.tag:
        raise Unsupported(
            f"deposits of {asset} need a memo (tag) besides the address, and legato's "
            "withdrawals carry none",
            venue=venue,
        )
    if not answer.address:
        raise Unsupported(f"the venue gave no deposit address for {asset}", venue=venue)
    return answer.address


# --- errors -------------------------------------------------------------------------------

# The wallet's codes for "the wallet lacks the funds": -3041 (margin) "Balance is not enough",
# -4025 "The number of hold asset is less than zero", -4026 "You have insufficient balance"
# (withdrawals), -5002 "You have insufficient balance", -5003 "You don't have this asset",
# -5013 "Asset transfer failed: insufficient balance".
INSUFFICIENT_CODES = frozenset({-3041, -4025, -4026, -5002, -5003, -5013})
# Refusals of what was asked rather than of how: -4006 "Support main account only", -4019
# "Current asset is not open for withdrawal", -5011 "future account not exists".
REFUSED_CODES = frozenset({-4006, -4019, -5011})
_INSUFFICIENT_WORDS = ("insufficient", "not enough")


def reject_reason(code: int, msg: str) -> RejectReason | None:
    """Which refusal a wallet error code means (the transfer or withdrawal was not made);
    None when the code is no refusal (then its range decides: -11xx and -40xx are invalid
    requests)."""
    if code in INSUFFICIENT_CODES or any(w in msg.lower() for w in _INSUFFICIENT_WORDS):
        return RejectReason.INSUFFICIENT_BALANCE
    if code in REFUSED_CODES:
        return RejectReason.VENUE_REFUSED
    return None
