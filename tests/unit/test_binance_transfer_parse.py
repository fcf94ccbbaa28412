"""Binance's wallet API (sapi) → transfer receipts: documented payloads of the universal
transfer and the capital endpoints, their errors, and the rule that finds a transfer whose
answer was lost in the venue's history."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import ccxt
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from venues.binance import parse, wallet_parse, wallet_wire
from venues.binance.transfer_claims import CLOCK_SLACK_NS, TransferClaims, find_lost
from venues.ccxt import parse as ccxt_parse
from venues.errors import InvalidRequest, OrderRejected, OutcomeUnknown, Unsupported
from venues.model import RejectReason, TransferKind, TransferReceipt, TransferState, WalletKind

D = Decimal
S = 1_000_000_000
VENUE = "bn"


def body(x: Any) -> bytes:
    return json.dumps(x).encode()


# --- recorded shapes (Binance's wallet API reference) -------------------------------------

TRANSFER_HISTORY = {
    "total": 3,
    "rows": [
        {
            "asset": "USDT",
            "amount": "1",
            "type": "MAIN_UMFUTURE",
            "status": "CONFIRMED",
            "tranId": 11415955596,
            "timestamp": 1544433328000,
        },
        {
            "asset": "USDT",
            "amount": "2.5",
            "type": "UMFUTURE_MAIN",
            "status": "PENDING",
            "tranId": 11366865406,
            "timestamp": 1544433325000,
        },
        {
            "asset": "USDT",
            "amount": "3",
            "type": "MAIN_MARGIN",  # a cross-margin transfer legato never makes
            "status": "FAILED",
            "tranId": 11366865400,
            "timestamp": 1544433320000,
        },
    ],
}

WITHDRAWAL = {
    "id": "b6ae22b3aa844210a7041aee7589627c",
    "amount": "8.91000000",
    "transactionFee": "0.004",
    "coin": "USDT",
    "status": 6,
    "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
    "txId": "0xb5ef8c13b968a406cc62a93a8bd80f9e9a906ef1b3fcf20a2e48573c17659268",
    "applyTime": "2019-10-12 11:12:02",
    "network": "ETH",
    "transferType": 0,
    "withdrawOrderId": "WITHDRAWtest123",
    "info": "",
    "confirmNo": 3,
    "walletType": 1,
    "txKey": "",
    "completeTime": "2023-03-23 16:52:41",
}


def test_the_transfer_answer_carries_the_venues_id_and_nothing_of_the_state() -> None:
    answer = wallet_wire.TRANSFER_ANSWER.decode(body({"tranId": 13526853623}))
    asked = receipt(transfer_id="", requested_ns=7)
    got = wallet_parse.answered(asked, str(answer.tran_id))
    assert (got.transfer_id, got.state, got.requested_ns) == ("13526853623", asked.state, 7)


def test_history_rows_read_as_receipts_with_their_wallets_state_and_time() -> None:
    history = wallet_wire.TRANSFER_HISTORY.decode(body(TRANSFER_HISTORY))
    got = [wallet_parse.transfer_receipt(r, VENUE) for r in history.rows]
    first, second, other = got
    assert first is not None and second is not None
    assert (first.source, first.destination, first.state) == (
        "spot",
        "margin",
        TransferState.COMPLETED,
    )
    assert (first.transfer_id, first.amount, first.requested_ns) == (
        "11415955596",
        D(1),
        1544433328000 * 1_000_000,
    )
    assert first.client_transfer_id == "" and first.kind is TransferKind.INTERNAL
    assert (second.source, second.destination, second.state) == (
        "margin",
        "spot",
        TransferState.PENDING,
    )
    assert second.amount == D("2.5")
    assert other is None  # not one of legato's types


def test_an_unknown_transfer_status_is_never_taken_for_final() -> None:
    row = wallet_wire.TransferRow(
        asset="USDT", amount=D(1), type="MAIN_UMFUTURE", status="QUEUED", tran_id=1, timestamp=1
    )
    got = wallet_parse.transfer_receipt(row, VENUE)
    assert got is not None and got.state is TransferState.PENDING and "QUEUED" in got.reason


def test_spot_to_margin_and_back_are_the_two_types_and_anything_else_is_unsupported() -> None:
    assert wallet_parse.transfer_type(WalletKind.SPOT, WalletKind.MARGIN) == "MAIN_UMFUTURE"
    assert wallet_parse.transfer_type(WalletKind.MARGIN, WalletKind.SPOT) == "UMFUTURE_MAIN"
    for a, b in ((WalletKind.SPOT, WalletKind.SPOT), (WalletKind.MARGIN, WalletKind.MARGIN)):
        with pytest.raises(Unsupported, match=f"from the {a} wallet to the {b} wallet"):
            wallet_parse.transfer_type(a, b, VENUE)


@given(
    st.decimals(min_value=D("0.00000001"), max_value=D("1e9"), places=8, allow_nan=False).filter(
        lambda d: d > 0
    )
)
def test_an_amount_is_sent_exactly_as_asked(amount: Decimal) -> None:
    sent = wallet_parse.transfer_params("USDT", amount, "MAIN_UMFUTURE")["amount"]
    assert D(sent) == amount and "E" not in sent.upper()
    assert D(wallet_parse.withdraw_params("USDT", amount, "addr", "w-1")["amount"]) == amount


def test_a_withdrawal_row_reads_with_legatos_id_its_times_and_state() -> None:
    rows = wallet_wire.WITHDRAWALS.decode(body([WITHDRAWAL]))
    got = wallet_parse.withdrawal_receipt(rows[0], VENUE)
    assert got.kind is TransferKind.WITHDRAWAL and got.state is TransferState.COMPLETED
    assert (got.transfer_id, got.client_transfer_id) == (WITHDRAWAL["id"], "WITHDRAWtest123")
    assert (got.source, got.destination, got.asset, got.amount) == (
        "spot",
        WITHDRAWAL["address"],
        "USDT",
        D("8.91"),
    )
    assert got.requested_ns == 1570878722 * S  # 2019-10-12 11:12:02 UTC
    assert got.updated_ns == 1679590361 * S  # 2023-03-23 16:52:41 UTC
    assert got.reason == ""


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        (0, TransferState.PENDING, ""),
        (2, TransferState.PENDING, ""),
        (4, TransferState.PENDING, ""),
        (6, TransferState.COMPLETED, ""),
        (1, TransferState.FAILED, "cancelled"),
        (3, TransferState.FAILED, "rejected: The address is not valid."),
        (5, TransferState.FAILED, "failure: The address is not valid."),
        (9, TransferState.PENDING, "unknown withdrawal status 9"),
    ],
)
def test_withdrawal_statuses_map_to_pending_completed_or_failed_with_why(
    status: int, state: TransferState, reason: str
) -> None:
    info = "" if status == 1 else "The address is not valid."
    row = msgspec.convert(
        WITHDRAWAL | {"status": status, "info": info, "completeTime": None},
        wallet_wire.WithdrawalRow,
    )
    got = wallet_parse.withdrawal_receipt(row, VENUE)
    assert (got.state, got.reason, got.updated_ns) == (state, reason, 0)


def test_a_withdrawal_row_without_the_optional_fields_still_reads() -> None:
    row = wallet_wire.WITHDRAWALS.decode(
        body([{"id": "7", "amount": "1", "coin": "BTC", "status": 4, "txId": None}])
    )[0]
    got = wallet_parse.withdrawal_receipt(row, VENUE)
    assert (got.client_transfer_id, got.destination, got.requested_ns) == ("", "", 0)


def test_the_withdrawal_query_is_by_legatos_id_or_by_a_window() -> None:
    assert wallet_parse.withdrawal_query("USDT", "w-1", start_ms=5) == {
        "coin": "USDT",
        "withdrawOrderId": "w-1",
    }
    assert wallet_parse.withdrawal_query("USDT", "", start_ms=5) == {
        "coin": "USDT",
        "startTime": "5",
    }


def test_a_deposit_address_needing_a_memo_is_unsupported() -> None:
    plain = wallet_wire.DEPOSIT_ADDRESS.decode(
        body({"address": "1HPn8Rx2y6nNSfagQBKy27GB99Vbzg89wv", "coin": "BTC", "tag": "", "url": ""})
    )
    assert wallet_parse.deposit_address(plain, "BTC") == "1HPn8Rx2y6nNSfagQBKy27GB99Vbzg89wv"
    tagged = wallet_wire.DEPOSIT_ADDRESS.decode(
        body({"address": "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "coin": "XRP", "tag": "108618262"})
    )
    with pytest.raises(Unsupported, match="memo"):
        wallet_parse.deposit_address(tagged, "XRP")


def test_utc_times_read_as_ns_and_a_missing_one_as_zero() -> None:
    assert wallet_parse.utc_ns("1970-01-01 00:00:01") == S
    assert wallet_parse.utc_ns(1500) == 1500 * 1_000_000
    assert wallet_parse.utc_ns("") == wallet_parse.utc_ns(None) == wallet_parse.utc_ns("soon") == 0


# --- errors -------------------------------------------------------------------------------


def wallet_error(code: int, msg: str, status: int = 400, mutating: bool = True) -> Exception:
    return parse.error_from_response(
        status,
        body({"code": code, "msg": msg}),
        venue=VENUE,
        mutating=mutating,
        client_order_id="t-1",
        reject_reason=wallet_parse.reject_reason,
    )


@pytest.mark.parametrize(
    ("code", "msg"),
    [
        (-5002, "You have insufficient balance."),
        (-4026, "You have insufficient balance."),
        (-5013, "Asset transfer failed: insufficient balance"),
        (-3041, "Balance is not enough"),
        (-5003, "You don't have this asset."),
    ],
)
def test_a_lack_of_funds_is_a_refusal_for_insufficient_balance(code: int, msg: str) -> None:
    err = wallet_error(code, msg)
    assert isinstance(err, OrderRejected) and err.reason is RejectReason.INSUFFICIENT_BALANCE
    assert (err.code, err.client_order_id, err.venue) == (code, "t-1", VENUE)


def test_other_wallet_errors_are_invalid_requests_or_lost_answers() -> None:
    assert isinstance(wallet_error(-4033, "Illegal address."), InvalidRequest)
    assert isinstance(wallet_error(-1111, "Precision is over the maximum"), InvalidRequest)
    assert isinstance(wallet_error(-4001, "Invalid operation."), InvalidRequest)
    refused = wallet_error(-4019, "Current asset is not open for withdrawal.")
    assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.VENUE_REFUSED
    assert isinstance(wallet_error(-1007, "Timeout waiting ...", 503), OutcomeUnknown)
    assert isinstance(
        parse.error_from_response(
            502,
            b"Bad Gateway",
            venue=VENUE,
            mutating=True,
            reject_reason=wallet_parse.reject_reason,
        ),
        OutcomeUnknown,
    )


# --- the rule that finds a lost answer's transfer ------------------------------------------

T0 = 1_700_000_000 * S
WINDOW = 3 * S


def receipt(**changes: Any) -> TransferReceipt:
    base = TransferReceipt(
        transfer_id="",
        client_transfer_id="t-1",
        kind=TransferKind.INTERNAL,
        venue=VENUE,
        asset="USDT",
        amount=D(100),
        source="spot",
        destination="margin",
        state=TransferState.PENDING,
        requested_ns=T0,
    )
    return msgspec.structs.replace(base, **changes)


def row(tran_id: int, at_ns: int, **changes: Any) -> TransferReceipt:
    return receipt(
        transfer_id=str(tran_id),
        client_transfer_id="",
        state=TransferState.COMPLETED,
        requested_ns=at_ns,
        **changes,
    )


def test_a_lost_transfer_is_the_oldest_identical_row_of_its_window() -> None:
    claims = TransferClaims(WINDOW)
    rows = [
        row(1, T0 - CLOCK_SLACK_NS - 1),  # before the window: someone's earlier transfer
        row(2, T0 + S, amount=D(99)),  # another amount
        row(3, T0 + S, destination="spot", source="margin"),  # the other direction
        row(5, T0 + 2 * S),
        row(4, T0 + S),
        row(6, T0 + WINDOW + CLOCK_SLACK_NS + 1),  # after it: sent later
    ]
    found = claims.find(receipt(), rows)
    assert found is not None and found.transfer_id == "4" and found.client_transfer_id == "t-1"
    assert found.state is TransferState.COMPLETED


def test_two_identical_lost_transfers_each_take_one_row_oldest_first() -> None:
    claims = TransferClaims(WINDOW)
    rows = [row(8, T0 + 2 * S), row(7, T0 + S)]
    first = claims.find(receipt(client_transfer_id="a"), rows)
    second = claims.find(receipt(client_transfer_id="b", requested_ns=T0 + S // 2), rows)
    assert first is not None and second is not None
    assert (first.transfer_id, second.transfer_id) == ("7", "8")
    # Each keeps its own when asked again; a third finds none left.
    again = claims.find(receipt(client_transfer_id="a"), rows)
    assert again is not None and again.transfer_id == "7"
    assert claims.find(receipt(client_transfer_id="c"), rows) is None


def test_a_row_whose_answer_came_is_never_taken_for_a_lost_one() -> None:
    claims = TransferClaims(WINDOW)
    claims.record(receipt(client_transfer_id="answered", transfer_id="7"))
    assert claims.find(receipt(client_transfer_id="lost"), [row(7, T0 + S)]) is None
    found = claims.find(receipt(client_transfer_id="lost"), [row(7, T0 + S), row(9, T0 + S)])
    assert found is not None and found.transfer_id == "9"


def test_a_known_transfer_is_found_by_its_id_and_a_venue_kept_client_id_by_that() -> None:
    claims = TransferClaims(WINDOW)
    by_id = claims.find(receipt(transfer_id="3"), [row(2, T0), row(3, T0 + 10 * S)])
    assert by_id is not None and by_id.transfer_id == "3"  # outside the window: the id decides
    wd = receipt(kind=TransferKind.WITHDRAWAL, destination="addr", client_transfer_id="w-1")
    kept = msgspec.structs.replace(row(11, T0), kind=TransferKind.WITHDRAWAL, destination="addr")
    mine = msgspec.structs.replace(kept, transfer_id="12", client_transfer_id="w-1")
    found = claims.find(wd, [kept, mine], by_client_id=True)
    assert found is not None and found.transfer_id == "12"


def test_by_client_id_alone_an_unnamed_row_is_never_taken() -> None:
    claims = TransferClaims(WINDOW)
    wd = receipt(kind=TransferKind.WITHDRAWAL, destination="addr", client_transfer_id="w-1")
    unnamed = msgspec.structs.replace(row(11, T0), kind=TransferKind.WITHDRAWAL, destination="addr")
    assert claims.find(wd, [unnamed], by_client_id=True) is None
    assert claims.find(wd, [unnamed]) is not None  # where the venue keeps none, the rule


def test_a_client_id_names_one_transfer() -> None:
    claims = TransferClaims(WINDOW)
    assert claims.earlier(receipt()) is None
    claims.record(receipt(transfer_id="5"))
    known = claims.earlier(receipt(requested_ns=T0 + 9 * S))
    assert known is not None and known.transfer_id == "5"
    with pytest.raises(
        InvalidRequest, match="already names an internal transfer of 100 USDT from spot to margin"
    ):
        claims.earlier(receipt(amount=D(101)))
    with pytest.raises(InvalidRequest, match="client_transfer_id is empty"):
        claims.earlier(receipt(client_transfer_id=""))


def test_a_retry_is_held_to_what_was_asked_not_to_how_the_venue_states_it() -> None:
    claims = TransferClaims(WINDOW)
    asked = receipt(kind=TransferKind.WITHDRAWAL, destination="addr", client_transfer_id="w-1")
    net = msgspec.structs.replace(
        asked, transfer_id="12", amount=D("99.5"), state=TransferState.COMPLETED
    )
    claims.record(asked)
    claims.record(net)
    known = claims.earlier(asked)
    assert known is not None and known.amount == D("99.5")


# --- the same wire through ccxt -----------------------------------------------------------


def test_ccxts_binance_rows_read_as_the_native_adapter_reads_them() -> None:
    raw = TRANSFER_HISTORY["rows"][0]
    entry = {"id": "11415955596", "status": "ok", "amount": 1.0, "info": raw}
    got = ccxt_parse.transfer_row(entry, venue=VENUE, wallets={}, account_id=str, binance_wire=True)
    native = wallet_parse.transfer_receipt(
        msgspec.convert(raw, wallet_wire.TransferRow, strict=False), VENUE
    )
    assert got == native
    wd = ccxt_parse.withdrawal_row(
        {"id": WITHDRAWAL["id"], "info": WITHDRAWAL},
        venue=VENUE,
        id_field="withdrawOrderId",
        binance_wire=True,
    )
    assert wd is not None and (wd.client_transfer_id, wd.state) == (
        "WITHDRAWtest123",
        TransferState.COMPLETED,
    )


def test_ccxts_unified_rows_read_by_the_exchanges_account_names() -> None:
    ids = {"funding": "6", "trading": "18"}  # OKX's accounts, as ccxt names and numbers them
    entry = {
        "id": "t9",
        "currency": "USDT",
        "amount": 12.5,
        "fromAccount": "funding",
        "toAccount": "trading",
        "status": "ok",
        "timestamp": 1_700_000_000_000,
    }
    got = ccxt_parse.transfer_row(
        entry,
        venue=VENUE,
        wallets={"6": WalletKind.SPOT, "18": WalletKind.MARGIN},
        account_id=lambda name: ids.get(str(name), str(name)),
        binance_wire=False,
    )
    assert got is not None
    assert (got.source, got.destination, got.amount, got.state) == (
        "spot",
        "margin",
        D("12.5"),
        TransferState.COMPLETED,
    )
    assert got.requested_ns == 1_700_000_000_000 * 1_000_000
    elsewhere = entry | {"toAccount": "earn"}
    assert (
        ccxt_parse.transfer_row(
            elsewhere, venue=VENUE, wallets={}, account_id=str, binance_wire=False
        )
        is None
    )
    assert [ccxt_parse.transfer_state(s) for s in ("ok", "pending", "canceled", None, "??")] == [
        TransferState.COMPLETED,
        TransferState.PENDING,
        TransferState.FAILED,
        TransferState.PENDING,
        TransferState.PENDING,
    ]


def test_a_wallet_call_refused_by_ccxt_for_lack_of_funds_is_insufficient_balance() -> None:
    on_binance = ccxt_parse.error_from_ccxt(
        ccxt.InsufficientFunds('binanceusdm {"code":-5002,"msg":"You have insufficient balance."}'),
        venue=VENUE,
        binance_wire=True,
        mutating=True,
        wallet=True,
    )
    elsewhere = ccxt_parse.error_from_ccxt(
        ccxt.InsufficientFunds("okx insufficient"), venue=VENUE, mutating=True, wallet=True
    )
    for err in (on_binance, elsewhere):
        assert isinstance(err, OrderRejected)
        assert err.reason is RejectReason.INSUFFICIENT_BALANCE


async def test_a_lost_answer_not_yet_in_the_history_is_pending_without_the_venues_id() -> None:
    claims = TransferClaims(WINDOW)
    lost = receipt(client_transfer_id="t-late")
    listed: list[TransferReceipt] = []
    reads = 0

    async def history() -> list[TransferReceipt]:
        nonlocal reads
        reads += 1
        return listed

    cause = OutcomeUnknown("Timeout waiting for response", venue=VENUE, code=-1007)
    pending = await find_lost(claims, lost, history, cause, timeout_s=0.05)
    assert (pending.state, pending.transfer_id, pending.client_transfer_id) == (
        TransferState.PENDING,
        "",
        "t-late",
    )
    assert "answer lost" in pending.reason and reads >= 2
    # The retry under the same id is held to it; once the row shows, it is found by the rule.
    assert claims.earlier(lost) == pending
    listed.append(row(41, T0 + S))
    found = await find_lost(claims, pending, history, cause, timeout_s=0.05)
    assert (found.transfer_id, found.state, found.reason) == ("41", TransferState.COMPLETED, "")
