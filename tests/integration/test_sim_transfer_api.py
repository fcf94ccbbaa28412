"""Transfers on the simulated venue, over real sockets: Binance's wallet endpoints (`/sapi`)
for universal transfers between the spot and USD-M wallets, deposit addresses, withdrawals
delivered from one simulated server to another, their histories, a stock ccxt `binance`
client, and the in-process venue's transfer methods."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.integration.test_binance_server import (
    BTC,
    FAST,
    KEY,
    SECRET,
    TIMEOUT,
    Client,
    until,
)
from venues.config import ApiCredential
from venues.errors import InvalidRequest, OrderRejected, Unsupported
from venues.model import RejectReason, TransferKind, TransferState, WalletKind
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import ScriptedMarket
from venues.sim.profile import TransferProfile, VenueProfile
from venues.sim.server import BinanceServer

D = Decimal
STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]
S = 1_000_000_000
WAIT_S = 5.0  # deadline for what the transfer profile says takes well under a second
# Internal transfers and withdrawals take 0.3 s unless a test says otherwise.
QUICK = msgspec.structs.replace(FAST, transfers=TransferProfile(internal_s=0.3, withdrawal_s=0.3))


@dataclass
class Served:
    server: BinanceServer
    venue: SimVenue
    client: Client  # account "desk": 1,000 USDT of futures margin; 500 USDT and 2 STETH spot

    async def spot(self) -> dict[str, tuple[Decimal, Decimal]]:
        """The spot wallet over the wire, {asset: (free, locked)}."""
        status, body = await self.client.signed("GET", "/api/v3/account")
        assert status == 200, body
        return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in body["balances"]}

    async def futures_usdt(self) -> Decimal:
        status, body = await self.client.signed("GET", "/fapi/v2/balance")
        assert status == 200, body
        (usdt,) = [b for b in body if b["asset"] == "USDT"]
        return D(usdt["balance"])

    async def sapi(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        return await self.client.signed(
            method, f"/sapi/v1/{path}", in_body=method == "POST", **params
        )


@contextlib.asynccontextmanager
async def serving(
    session: aiohttp.ClientSession, name: str, profile: VenueProfile = QUICK
) -> AsyncIterator[Served]:
    exchange = SimExchange(name, ScriptedMarket([BTC, STETH]), start_ns=time.time_ns())
    exchange.open_account(
        AccountSpec(
            account_id="desk",
            balances={"USDT": D(1000)},
            spot_balances={"USDT": D(500), "STETH": D(2)},
        )
    )
    venue = SimVenue(exchange, profile, seed=1)
    creds = {KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id="desk")}
    async with BinanceServer(venue, creds) as server:
        yield Served(server, venue, Client(session, server.rest_url))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        yield s


@pytest.fixture
async def alpha(session: aiohttp.ClientSession) -> AsyncIterator[Served]:
    async with serving(session, "alpha") as served:
        yield served


@pytest.fixture
async def beta(session: aiohttp.ClientSession) -> AsyncIterator[Served]:
    async with serving(session, "beta") as served:
        yield served


async def transfer_rows(venue: Served, kind: str = "MAIN_UMFUTURE") -> list[dict[str, Any]]:
    status, body = await venue.sapi("GET", "asset/transfer", type=kind)
    assert status == 200, body
    return body["rows"]


# --- universal transfers ---------------------------------------------------------------
async def test_an_internal_transfer_leaves_at_once_and_arrives_after_its_delay(
    alpha: Served,
) -> None:
    status, body = await alpha.sapi(
        "POST", "asset/transfer", type="MAIN_UMFUTURE", asset="USDT", amount="120.5"
    )
    assert status == 200 and set(body) == {"tranId"} and isinstance(body["tranId"], int)
    tran_id = body["tranId"]
    assert (await alpha.spot())["USDT"] == (D("379.5"), 0)  # debited at once
    (row,) = await transfer_rows(alpha)
    assert row == {
        "asset": "USDT",
        "amount": "120.5",
        "type": "MAIN_UMFUTURE",
        "status": "PENDING",
        "tranId": tran_id,
        "timestamp": row["timestamp"],
    }
    assert abs(row["timestamp"] - time.time_ns() // 1_000_000) < 2_000
    assert await alpha.futures_usdt() == D(1000)  # not there yet

    async def confirmed() -> bool:
        return (await transfer_rows(alpha))[0]["status"] == "CONFIRMED"

    await until(confirmed, WAIT_S)
    assert await alpha.futures_usdt() == D("1120.5")
    (record,) = alpha.venue.exchange.transfers("desk")
    assert record.updated_ns - record.requested_ns == int(0.3 * S)  # the profile's delay

    # Back the other way: listed under its own type only, newest first.
    status, back = await alpha.sapi(
        "POST", "asset/transfer", type="UMFUTURE_MAIN", asset="USDT", amount="20"
    )
    assert status == 200
    assert [r["tranId"] for r in await transfer_rows(alpha, "UMFUTURE_MAIN")] == [back["tranId"]]
    assert [r["tranId"] for r in await transfer_rows(alpha)] == [tran_id]
    status, paged = await alpha.sapi("GET", "asset/transfer", type="MAIN_UMFUTURE", current=2)
    assert (status, paged) == (200, {"total": 1, "rows": []})


async def test_a_stalled_transfer_stays_pending_until_it_is_ended(alpha: Served) -> None:
    status, body = await alpha.client.admin(
        "POST", "/_sim/profile", {"transfers": {"internal_s": 0.05, "stall_rate": 1.0}}
    )
    assert status == 200 and body["transfers"]["stall_s"] == 600.0
    status, body = await alpha.sapi(
        "POST", "asset/transfer", type="UMFUTURE_MAIN", asset="USDT", amount="100"
    )
    assert status == 200
    (record,) = alpha.venue.exchange.transfers("desk")
    # Well past the time an unstalled transfer would take, it still waits.
    await until(lambda: alpha.venue.exchange.now_ns > record.requested_ns + int(0.2 * S), WAIT_S)
    assert [r["status"] for r in await transfer_rows(alpha, "UMFUTURE_MAIN")] == ["PENDING"]
    assert (await alpha.futures_usdt(), (await alpha.spot())["USDT"]) == (D(900), (D(500), 0))

    status, ended = await alpha.client.admin(
        "POST", f"/_sim/transfers/{body['tranId']}", {"outcome": "COMPLETED"}
    )
    assert (status, ended["state"]) == (200, "completed")
    assert [r["status"] for r in await transfer_rows(alpha, "UMFUTURE_MAIN")] == ["CONFIRMED"]
    assert (await alpha.spot())["USDT"] == (D(600), 0)
    status, again = await alpha.client.admin("POST", f"/_sim/transfers/{body['tranId']}", {})
    assert status == 400 and "already ended completed" in again["msg"]


async def test_a_failed_transfer_is_given_back(alpha: Served) -> None:
    await alpha.client.admin(
        "POST", "/_sim/profile", {"transfers": {"internal_s": 0.05, "fail_rate": 1.0}}
    )
    status, _ = await alpha.sapi(
        "POST", "asset/transfer", type="MAIN_UMFUTURE", asset="USDT", amount="50"
    )
    assert status == 200

    async def failed() -> bool:
        return (await transfer_rows(alpha))[0]["status"] == "FAILED"

    await until(failed, WAIT_S)
    assert ((await alpha.spot())["USDT"], await alpha.futures_usdt()) == ((D(500), 0), D(1000))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "500.01"}, -5002),
        ({"type": "UMFUTURE_MAIN", "asset": "USDT", "amount": "1000.01"}, -5002),
        ({"type": "MAIN_MARGIN", "asset": "USDT", "amount": "1"}, -1130),
        ({"type": "nonsense", "asset": "USDT", "amount": "1"}, -1130),
        ({"asset": "USDT", "amount": "1"}, -1102),
        ({"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "0"}, -5007),
        ({"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "abc"}, -1100),
        ({"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "1.000000001"}, -1111),
        ({"type": "MAIN_UMFUTURE", "asset": "DOGE", "amount": "1"}, -5003),
        ({"type": "MAIN_UMFUTURE", "asset": "STETH", "amount": "1"}, -4001),
    ],
)
async def test_a_refused_transfer_is_a_binance_error_and_moves_nothing(
    alpha: Served, params: dict[str, str], code: int
) -> None:
    status, body = await alpha.sapi("POST", "asset/transfer", **params)
    assert (status, body["code"]) == (400, code), body
    assert ((await alpha.spot())["USDT"], await alpha.futures_usdt()) == ((D(500), 0), D(1000))
    assert alpha.venue.exchange.transfers("desk") == []


async def test_the_wallet_endpoints_are_signed(alpha: Served) -> None:
    status, body = await alpha.client.signed(
        "GET", "/sapi/v1/capital/deposit/address", coin="USDT", secret="wrong"
    )
    assert (status, body["code"]) == (400, -1022)
    status, body = await alpha.client.signed(
        "GET", "/sapi/v1/capital/deposit/address", coin="USDT", key=None
    )
    assert (status, body["code"]) == (401, -2014)


# --- withdrawals and deposits ----------------------------------------------------------
async def test_a_withdrawal_is_delivered_to_another_servers_spot_wallet(
    alpha: Served, beta: Served
) -> None:
    status, addr = await beta.sapi("GET", "capital/deposit/address", coin="USDT")
    assert status == 200
    assert addr == {
        "address": f"sim://127.0.0.1:{beta.server.port}/desk",
        "coin": "USDT",
        "tag": "",
        "url": "",
    }
    status, body = await alpha.sapi(
        "POST",
        "capital/withdraw/apply",
        coin="USDT",
        address=addr["address"],
        amount="125.25",
        withdrawOrderId="legato-w-1",
        network="SIM",
    )
    assert status == 200 and set(body) == {"id"} and isinstance(body["id"], str)
    assert (await alpha.spot())["USDT"] == (D("374.75"), 0)  # debited at once

    status, (pending,) = await alpha.sapi("GET", "capital/withdraw/history", coin="USDT")
    assert (status, pending["status"], pending["txId"], pending["completeTime"]) == (200, 4, "", "")

    async def arrived() -> bool:
        status, rows = await beta.sapi("GET", "capital/deposit/hisrec")
        return status == 200 and len(rows) == 1

    await until(arrived, WAIT_S)
    assert (await beta.spot())["USDT"] == (D("625.25"), 0)
    status, (sent,) = await alpha.sapi(
        "GET", "capital/withdraw/history", withdrawOrderId="legato-w-1"
    )
    assert status == 200
    assert sent == {
        "id": body["id"],
        "amount": "125.25",
        "transactionFee": "0",
        "coin": "USDT",
        "status": 6,
        "address": addr["address"],
        "txId": sent["txId"],
        "applyTime": sent["applyTime"],
        "network": "SIM",
        "transferType": 0,
        "withdrawOrderId": "legato-w-1",
        "info": "",
        "confirmNo": 1,
        "walletType": 0,
        "completeTime": sent["completeTime"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", sent["applyTime"])
    assert sent["completeTime"] >= sent["applyTime"] and sent["txId"]
    status, (deposit,) = await beta.sapi("GET", "capital/deposit/hisrec", coin="USDT")
    assert status == 200
    assert deposit == {
        "id": deposit["id"],
        "amount": "125.25",
        "coin": "USDT",
        "network": "SIM",
        "status": 1,
        "address": addr["address"],
        "addressTag": "",
        "txId": sent["txId"],
        "insertTime": deposit["insertTime"],
        "transferType": 0,
        "confirmTimes": "1/1",
        "unlockConfirm": 0,
        "walletType": 0,
    }
    assert abs(deposit["insertTime"] - time.time_ns() // 1_000_000) < 5_000
    # Filters: another coin, or another status, lists nothing.
    assert (await alpha.sapi("GET", "capital/withdraw/history", coin="STETH"))[1] == []
    assert (await alpha.sapi("GET", "capital/withdraw/history", status=4))[1] == []


async def test_a_delivery_to_a_server_that_is_down_is_tried_again(
    alpha: Served, beta: Served
) -> None:
    _, addr = await beta.sapi("GET", "capital/deposit/address", coin="STETH")
    status, _ = await beta.client.admin(
        "POST", "/_sim/outage", {"duration_s": 0.6, "mode": "refuse"}
    )
    assert status == 200
    await alpha.client.admin("POST", "/_sim/profile", {"transfers": {"withdrawal_s": 0.05}})
    status, _ = await alpha.sapi(
        "POST", "capital/withdraw/apply", coin="STETH", address=addr["address"], amount="0.5"
    )
    assert status == 200
    await until(lambda: beta.venue.exchange.deposits("desk"), WAIT_S)
    (deposit,) = beta.venue.exchange.deposits("desk")
    (withdrawal,) = alpha.venue.exchange.transfers("desk", TransferKind.WITHDRAWAL)
    assert deposit.credited_ns > withdrawal.updated_ns + int(0.3 * S)  # after the outage
    assert (await beta.spot())["STETH"] == (D("2.5"), 0)
    assert alpha.venue.undelivered == []


async def test_a_deposit_is_credited_once_per_tx_id(beta: Served) -> None:
    deposit = {"account": "desk", "asset": "USDT", "amount": "7", "txId": "tx-1"}
    first = await beta.client.send(
        "POST", "/_sim/deposit", body=msgspec.json.encode(deposit), key=None
    )
    again = await beta.client.send(
        "POST", "/_sim/deposit", body=msgspec.json.encode(deposit), key=None
    )
    assert first[0] == again[0] == 200 and first[1]["id"] == again[1]["id"]
    assert (await beta.spot())["USDT"] == (D(507), 0)
    other = deposit | {"account": "nobody", "txId": "tx-2"}
    status, body = await beta.client.send(
        "POST", "/_sim/deposit", body=msgspec.json.encode(other), key=None
    )
    assert (status, body["code"]) == (400, -1130)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"amount": "500.01"}, -4026),
        ({"coin": "DOGE"}, -4018),
        ({"amount": "0"}, -4022),
        ({"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, -4033),
        ({"address": "sim://10.1.2.3:8080/desk"}, -4033),
        ({"address": "sim://127.0.0.1/desk"}, -4033),
        ({"address": "sim://127.0.0.1:8080/"}, -4033),
        ({"network": "ETH"}, -1130),
        ({"walletType": "1"}, -1130),
        ({"withdrawOrderId": "has space"}, -1130),
    ],
)
async def test_a_refused_withdrawal_is_a_binance_error_and_debits_nothing(
    alpha: Served, params: dict[str, str], code: int
) -> None:
    request = {"coin": "USDT", "address": "sim://127.0.0.1:9/desk", "amount": "1"} | params
    status, body = await alpha.sapi("POST", "capital/withdraw/apply", **request)
    assert (status, body["code"]) == (400, code), body
    assert (await alpha.spot())["USDT"] == (D(500), 0)
    assert alpha.venue.exchange.transfers("desk") == []


async def test_a_repeated_withdraw_order_id_is_refused(alpha: Served) -> None:
    request = {"coin": "USDT", "address": "sim://127.0.0.1:9/desk", "amount": "1"}
    status, _ = await alpha.sapi("POST", "capital/withdraw/apply", withdrawOrderId="w", **request)
    assert status == 200
    status, body = await alpha.sapi(
        "POST", "capital/withdraw/apply", withdrawOrderId="w", **request
    )
    assert (status, body["code"]) == (400, -4115)
    assert (await alpha.spot())["USDT"] == (D(499), 0)


# --- a stock client --------------------------------------------------------------------
def _point_at(ex: Any, served: Served) -> None:
    """A ccxt `binance` on the simulator: spot and the wallet (`sapi`) roots moved, the rest
    on a path the simulator does not serve (so a call that strays fails loudly)."""
    ex.options["fetchMarkets"] = {"types": ["spot"]}
    ex.options["fetchCurrencies"] = False
    ex.options["fetchMargins"] = False
    for name in list(ex.urls["api"]):
        if isinstance(ex.urls["api"][name], str):
            ex.urls["api"][name] = f"{served.server.rest_url}/not-spot"
    for scope in ("public", "private"):
        ex.urls["api"][scope] = f"{served.server.rest_url}/api/v3"
    ex.urls["api"]["sapi"] = f"{served.server.rest_url}/sapi/v1"


async def test_stock_ccxt_binance_transfers_and_withdraws_on_the_simulator(
    alpha: Served, beta: Served
) -> None:
    from ccxt.async_support.binance import binance  # noqa: PLC0415

    sender = binance({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
    receiver = binance({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
    _point_at(sender, alpha)
    _point_at(receiver, beta)
    try:
        # ccxt 4.5 names the USD-M wallet "linear" (or "swap"); "future" is no longer one
        # of its accounts (it would ask for an isolated-margin transfer, refused: -1130).
        moved = await sender.transfer("USDT", 10, "spot", "linear")
        assert moved["id"] == str(alpha.venue.exchange.transfers("desk")[0].transfer_id)
        assert (await alpha.spot())["USDT"] == (D(490), 0)
        await until(lambda: alpha.venue.exchange.transfers("desk")[0].state.is_final, WAIT_S)
        assert await alpha.futures_usdt() == D(1010)

        address = await receiver.fetch_deposit_address("USDT")
        assert address["address"] == f"sim://127.0.0.1:{beta.server.port}/desk"
        sent = await sender.withdraw("USDT", 5, address["address"])
        (withdrawal,) = alpha.venue.exchange.transfers("desk", TransferKind.WITHDRAWAL)
        assert sent["id"] == str(withdrawal.transfer_id)
        await until(lambda: beta.venue.exchange.deposits("desk"), WAIT_S)
        assert (await beta.spot())["USDT"] == (D(505), 0)
        (listed,) = await sender.fetch_withdrawals("USDT")
        assert (listed["id"], listed["status"], listed["amount"]) == (sent["id"], "ok", 5)
        (received,) = await receiver.fetch_deposits("USDT")
        assert (received["status"], received["amount"], received["txid"]) == (
            "ok",
            5,
            listed["txid"],
        )
    finally:
        await sender.close()
        await receiver.close()


# --- the in-process venue --------------------------------------------------------------
@contextlib.asynccontextmanager
async def in_process(name: str) -> AsyncIterator[SimVenue]:
    exchange = SimExchange(name, ScriptedMarket([BTC, STETH]), start_ns=time.time_ns())
    exchange.open_account(
        AccountSpec(account_id="desk", balances={"USDT": D(1000)}, spot_balances={"USDT": D(500)})
    )
    async with SimVenue(exchange, QUICK, seed=1) as venue:
        yield venue


async def test_the_in_process_venue_transfers_and_withdraws_to_another() -> None:
    async with in_process("alpha") as alpha, in_process("beta") as beta:
        a, b = alpha.client("desk"), beta.client("desk")
        caps = a.capabilities
        assert caps.transfers and caps.withdrawals

        receipt = await a.transfer("USDT", D(100), WalletKind.MARGIN, WalletKind.SPOT, "t-1")
        assert (receipt.kind, receipt.state, receipt.source, receipt.destination) == (
            TransferKind.INTERNAL,
            TransferState.PENDING,
            "margin",
            "spot",
        )

        async def completed(r: Any) -> bool:
            return (await a.transfer_status(r)).state is TransferState.COMPLETED

        await until(lambda: completed(receipt), WAIT_S)
        lost = msgspec.structs.replace(receipt, transfer_id="")  # found by its client id
        assert (await a.transfer_status(lost)).transfer_id == receipt.transfer_id
        assert (await a.account()).wallet_balance == D(900)

        address = await b.deposit_address("USDT")
        assert address == "sim-local://beta/desk"
        sent = await a.withdraw("USDT", D(250), address, "w-1")
        assert (sent.kind, sent.destination, sent.client_transfer_id) == (
            TransferKind.WITHDRAWAL,
            address,
            "w-1",
        )
        await until(lambda: completed(sent), WAIT_S)
        await until(lambda: beta.exchange.deposits("desk"), WAIT_S)
        spot = {x.asset: x.available for x in (await b.account()).spot_balances}
        assert spot["USDT"] == D(750)

        # Asked again under its client id (a lost answer's retry), the same withdrawal; under
        # it for something else, a refusal.
        same = await a.withdraw("USDT", D(250), address, "w-1")
        assert same.transfer_id == sent.transfer_id
        assert len(alpha.exchange.transfers("desk", TransferKind.WITHDRAWAL)) == 1
        with pytest.raises(InvalidRequest, match="'w-1' already names withdrawal"):
            await a.withdraw("USDT", D(1), address, "w-1")

        # Refusals are the contract's errors, as the HTTP adapters raise them.
        with pytest.raises(Unsupported):
            await a.transfer("USDT", D(1), WalletKind.SPOT, WalletKind.SPOT, "t-2")
        with pytest.raises(Unsupported, match="only USDT"):
            await a.transfer("STETH", D(1), WalletKind.SPOT, WalletKind.MARGIN, "t-3")
        with pytest.raises(OrderRejected) as short:
            await a.transfer("USDT", D(10_000), WalletKind.SPOT, WalletKind.MARGIN, "t-4")
        assert short.value.reason is RejectReason.INSUFFICIENT_BALANCE
        with pytest.raises(InvalidRequest, match="no account of a venue running"):
            await a.withdraw("USDT", D(1), "sim-local://gamma/desk", "w-2")
        with pytest.raises(InvalidRequest, match="it delivers to sim-local://"):
            await a.withdraw("USDT", D(1), "sim://127.0.0.1:9/desk", "w-3")  # no HTTP courier
        with pytest.raises(InvalidRequest, match="unknown asset"):
            await b.deposit_address("DOGE")
        unknown = msgspec.structs.replace(sent, transfer_id="999")
        assert await a.transfer_status(unknown) == unknown  # not the venue's: as it was


async def test_a_second_in_process_venue_of_the_same_name_has_no_local_address() -> None:
    async with in_process("twin") as first, in_process("twin") as second:
        assert await first.client("desk").deposit_address("USDT") == "sim-local://twin/desk"
        with pytest.raises(Unsupported, match="another venue named 'twin'"):
            await second.client("desk").deposit_address("USDT")
