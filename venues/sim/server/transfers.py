"""Binance's wallet endpoints (`/sapi`) on the simulated venue: universal transfers between the
spot and USD-M futures wallets, deposit addresses, withdrawals and their histories, and the
courier that delivers a withdrawal to another simulated venue's `/_sim/deposit`.

Signatures, timing, latency and outages are the other signed endpoints' (`Gateway`); when a
transfer ends and whether it fails is the venue profile's `transfers` (drawn by the
`SimVenue`). A deposit address is `sim://<host>:<port>/<account>`: the server's own bound
address, on loopback, and the account whose spot wallet it credits.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from venues.errors import VenueError, VenueUnavailable
from venues.model import TransferKind, TransferState
from venues.sim.exchange import (
    DepositRecord,
    TransferRecord,
    TransferRefusal,
    TransferRefused,
    Wallet,
    WithdrawalSent,
)
from venues.sim.host import Courier
from venues.sim.server.errors import BinanceError, _invalid
from venues.sim.server.gateway import GATEWAY, Api
from venues.sim.server.params import Params
from venues.sim.server.render import _decimals, _json, _ms, _num

SIM_SCHEME = "sim"
NETWORK = "SIM"  # the one network the simulator's coins travel on
ASSET_PRECISION = 8
DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=5)
MAX_HISTORY = 1000  # withdrawal and deposit histories: Binance's `limit` maximum
MAX_PAGE = 100  # universal transfer history: Binance's `size` maximum
_WITHDRAW_ORDER_ID = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces

# Binance's universal transfer types the simulator has: its spot ("MAIN") and USD-M futures
# wallets. Every other type (margin, coin-M, funding, ...) is refused as invalid.
TRANSFER_TYPES: dict[str, tuple[Wallet, Wallet]] = {
    "MAIN_UMFUTURE": (Wallet.SPOT, Wallet.FUTURES),
    "UMFUTURE_MAIN": (Wallet.FUTURES, Wallet.SPOT),
}
_TYPE_OF = {wallets: name for name, wallets in TRANSFER_TYPES.items()}
TRANSFER_STATUS = {
    TransferState.PENDING: "PENDING",
    TransferState.COMPLETED: "CONFIRMED",
    TransferState.FAILED: "FAILED",
}
# Binance's withdrawal status: 4 processing, 5 failure, 6 completed.
WITHDRAW_STATUS = {TransferState.PENDING: 4, TransferState.FAILED: 5, TransferState.COMPLETED: 6}
DEPOSIT_SUCCESS = 1

# The exchange's refusals as each endpoint answers them (Binance's wallet codes).
_INSUFFICIENT = "You have insufficient balance."
TRANSFER_CODES: dict[TransferRefusal, tuple[int, str]] = {
    TransferRefusal.INSUFFICIENT_FUNDS: (-5002, _INSUFFICIENT),
    TransferRefusal.INVALID_AMOUNT: (-5007, "Quantity must be greater than zero."),
    TransferRefusal.UNKNOWN_ASSET: (-5003, "You don't have this asset."),
    TransferRefusal.INVALID_WALLETS: (-4001, "Invalid operation."),
}
WITHDRAW_CODES: dict[TransferRefusal, tuple[int, str]] = {
    TransferRefusal.INSUFFICIENT_FUNDS: (-4026, _INSUFFICIENT),
    TransferRefusal.INVALID_AMOUNT: (
        -4022,
        "Not less than the minimum pick-up quantity 0.00000001.",
    ),
    TransferRefusal.UNKNOWN_ASSET: (-4018, "We don't have this asset."),
    TransferRefusal.INVALID_ADDRESS: (-4033, "Illegal address."),
    TransferRefusal.DUPLICATE_CLIENT_ID: (-4115, "withdrawOrderId is duplicated."),
}


def refusal_error(
    e: TransferRefused, codes: Mapping[TransferRefusal, tuple[int, str]]
) -> BinanceError:
    """An exchange refusal as the endpoint's Binance error; its explanation follows in ()."""
    code, msg = codes.get(e.reason, (-4001, "Invalid operation."))
    return BinanceError(code, f"{msg} ({e.message})")


# --- addresses ---------------------------------------------------------------------------
def parse_sim_address(address: str) -> tuple[str, int, str]:
    """(host, port, account) of a `sim://<host>:<port>/<account>` address on a loopback host;
    ValueError, saying what is accepted, for anything else."""
    accepted = "sim://<loopback host>:<port>/<account>"
    try:
        parts = urlsplit(address)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise ValueError(f"{address!r} is not an address; accepted: {accepted}") from None
    account = unquote(parts.path[1:])
    if (
        parts.scheme != SIM_SCHEME
        or port is None
        or not account
        or "/" in account
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"{address!r} is not a simulator address; accepted: {accepted}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{address!r} is not on a loopback host; accepted: {accepted}")
    return host, port, account


def _own_address(request: web.Request, account: str) -> str:
    """The `sim://` address of `account` at the host and port this request reached."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise VenueUnavailable("the connection closed")
    host, port = sockname[0], sockname[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{SIM_SCHEME}://{shown}:{port}/{account}"


def http_courier(session: aiohttp.ClientSession) -> Courier:
    """Delivers a withdrawal to a `sim://` address: `POST /_sim/deposit` at that server."""

    async def deliver(sent: WithdrawalSent) -> None:
        try:
            host, port, account = parse_sim_address(sent.address)
        except ValueError as e:
            raise VenueError(str(e)) from None
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/_sim/deposit"
        body = {
            "account": account,
            "asset": sent.asset,
            "amount": str(sent.amount),
            "txId": sent.tx_id,
            "address": sent.address,
            "network": sent.network,
        }
        try:
            async with session.post(url, json=body) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise VenueUnavailable(f"{url} unreachable: {e!r}") from None
        if status >= 500 or status == 429:
            raise VenueUnavailable(f"{url} answered {status}: {text[:200]}")
        if status != 200:
            raise VenueError(f"{url} refused the deposit ({status}): {text[:200]}")

    return deliver


# --- universal transfers -----------------------------------------------------------------
async def new_transfer(request: web.Request) -> web.Response:
    """`POST /sapi/v1/asset/transfer`: `type` (`MAIN_UMFUTURE`, `UMFUTURE_MAIN`), `asset`,
    `amount` → `{"tranId"}`; the amount leaves at once and arrives after the profile's
    `transfers.internal_s` (PENDING until then)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    source, destination = _transfer_type(p)
    asset = p.text("asset", required=True)
    assert asset is not None
    amount = _amount(p, TRANSFER_CODES)
    if asset not in gw.exchange.assets():
        code, msg = TRANSFER_CODES[TransferRefusal.UNKNOWN_ASSET]
        raise BinanceError(code, msg)
    try:
        record = await gw.call(
            lambda now: gw.venue.start_transfer(
                cred.account_id, asset, amount, source, destination, now
            )
        )
    except TransferRefused as e:
        raise refusal_error(e, TRANSFER_CODES) from None
    return _json({"tranId": record.transfer_id})


async def transfer_history(request: web.Request) -> web.Response:
    """`GET /sapi/v1/asset/transfer?type=` (optional `startTime`, `endTime`, `current`,
    `size`): `{"total", "rows"}` of that type, newest first."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    wallets = _transfer_type(p)
    since, until = _window(p)
    page = p.integer("current", low=1, high=10**6) or 1
    size = p.integer("size", low=1, high=MAX_PAGE) or 10
    records = await gw.call(
        lambda now: gw.exchange.transfers(cred.account_id, TransferKind.INTERNAL)
    )
    rows = [
        _transfer_json(r)
        for r in _newest_first(records, since, until)
        if (r.source, Wallet(r.destination)) == wallets
    ]
    return _json({"total": len(rows), "rows": rows[(page - 1) * size : page * size]})


def _transfer_type(p: Params) -> tuple[Wallet, Wallet]:
    accepted = ", ".join(TRANSFER_TYPES)
    wallets = p.choice(
        "type",
        TRANSFER_TYPES,
        _invalid("type", f"the simulator has {accepted}"),
        required=True,
    )
    assert wallets is not None
    return wallets


def _transfer_json(r: TransferRecord) -> dict[str, Any]:
    return {
        "asset": r.asset,
        "amount": _num(r.amount),
        "type": _TYPE_OF[(r.source, Wallet(r.destination))],
        "status": TRANSFER_STATUS[r.state],
        "tranId": r.transfer_id,
        "timestamp": _ms(r.requested_ns),
    }


# --- deposits and withdrawals ------------------------------------------------------------
async def deposit_address(request: web.Request) -> web.Response:
    """`GET /sapi/v1/capital/deposit/address?coin=` (optional `network`): this server's
    `sim://` address for the account, which another simulated venue withdraws to."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    coin = _coin(p)
    _network(p)
    address = _own_address(request, cred.account_id)
    if coin not in gw.exchange.assets():
        code, msg = WITHDRAW_CODES[TransferRefusal.UNKNOWN_ASSET]
        raise BinanceError(code, msg)
    await gw.call(lambda now: None)
    return _json({"address": address, "coin": coin, "tag": "", "url": ""})


async def withdraw(request: web.Request) -> web.Response:
    """`POST /sapi/v1/capital/withdraw/apply`: `coin`, `address` (a `sim://` address on a
    loopback host), `amount`, optional `withdrawOrderId` (refused if used before), `network`
    → `{"id"}`; the amount leaves the spot wallet at once and is sent after the profile's
    `transfers.withdrawal_s`."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    coin = _coin(p)
    address = p.text("address", required=True)
    assert address is not None
    amount = _amount(p, WITHDRAW_CODES)
    network = _network(p)
    client_id = p.text("withdrawOrderId") or ""
    if client_id and not _WITHDRAW_ORDER_ID.fullmatch(client_id):
        raise _invalid("withdrawOrderId", "1-64 printable ASCII characters, no spaces")
    if p.integer("walletType") not in (None, 0):
        raise _invalid("walletType", "0 (the spot wallet); the simulator has no funding wallet")
    try:
        parse_sim_address(address)
    except ValueError as e:
        code, msg = WITHDRAW_CODES[TransferRefusal.INVALID_ADDRESS]
        raise BinanceError(code, f"{msg} ({e})") from None
    try:
        record = await gw.call(
            lambda now: gw.venue.start_withdrawal(
                cred.account_id, coin, amount, address, client_id, now, network
            )
        )
    except TransferRefused as e:
        raise refusal_error(e, WITHDRAW_CODES) from None
    return _json({"id": str(record.transfer_id)})


async def withdraw_history(request: web.Request) -> web.Response:
    """`GET /sapi/v1/capital/withdraw/history` (optional `coin`, `withdrawOrderId`, `status`,
    `startTime`, `endTime`, `offset`, `limit`): newest first."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    coin = p.text("coin")
    client_id = p.text("withdrawOrderId")
    status = p.integer("status", low=0, high=6)
    since, until = _window(p)
    offset, limit = _slice(p)
    records = await gw.call(
        lambda now: gw.exchange.transfers(
            cred.account_id, TransferKind.WITHDRAWAL, client_id=client_id
        )
    )
    rows = [
        _withdrawal_json(r)
        for r in _newest_first(records, since, until)
        if (coin is None or r.asset == coin)
        and (status is None or WITHDRAW_STATUS[r.state] == status)
    ]
    return _json(rows[offset : offset + limit])


async def deposit_history(request: web.Request) -> web.Response:
    """`GET /sapi/v1/capital/deposit/hisrec` (optional `coin`, `status`, `txId`,
    `startTime`, `endTime`, `offset`, `limit`): newest first; every deposit is credited
    (status 1)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request, Api.SPOT)
    coin = p.text("coin")
    status = p.integer("status", low=0, high=8)
    tx_id = p.text("txId")
    since, until = _window(p)
    offset, limit = _slice(p)
    deposits = await gw.call(lambda now: gw.exchange.deposits(cred.account_id))
    rows = [
        _deposit_json(d)
        for d in sorted(deposits, key=lambda d: d.deposit_id, reverse=True)
        if (coin is None or d.asset == coin)
        and (status is None or status == DEPOSIT_SUCCESS)
        and (tx_id is None or d.tx_id == tx_id)
        and _within(d.credited_ns, since, until)
    ]
    return _json(rows[offset : offset + limit])


def _withdrawal_json(r: TransferRecord) -> dict[str, Any]:
    return {
        "id": str(r.transfer_id),
        "amount": _num(r.amount),
        "transactionFee": "0",
        "coin": r.asset,
        "status": WITHDRAW_STATUS[r.state],
        "address": r.destination,
        "txId": r.tx_id,
        "applyTime": _utc(r.requested_ns),
        "network": r.network or NETWORK,
        "transferType": 0,
        "withdrawOrderId": r.client_id,
        "info": "",
        "confirmNo": 1 if r.state is TransferState.COMPLETED else 0,
        "walletType": 0,
        "completeTime": _utc(r.updated_ns) if r.state is TransferState.COMPLETED else "",
    }


def _deposit_json(d: DepositRecord) -> dict[str, Any]:
    return {
        "id": str(d.deposit_id),
        "amount": _num(d.amount),
        "coin": d.asset,
        "network": d.network or NETWORK,
        "status": DEPOSIT_SUCCESS,
        "address": d.address,
        "addressTag": "",
        "txId": d.tx_id,
        "insertTime": _ms(d.credited_ns),
        "transferType": 0,
        "confirmTimes": "1/1",
        "unlockConfirm": 0,
        "walletType": 0,
    }


# --- parameters --------------------------------------------------------------------------
def _coin(p: Params) -> str:
    coin = p.text("coin", required=True)
    assert coin is not None
    return coin


def _network(p: Params) -> str:
    network = p.text("network")
    if network not in (None, NETWORK):
        raise _invalid("network", f"the simulator's coins travel on {NETWORK} only")
    return NETWORK


def _amount(p: Params, codes: Mapping[TransferRefusal, tuple[int, str]]) -> Decimal:
    amount = p.decimal("amount", required=True)
    assert amount is not None
    if _decimals(amount) > ASSET_PRECISION:
        raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    if amount <= 0:
        code, msg = codes[TransferRefusal.INVALID_AMOUNT]
        raise BinanceError(code, msg)
    return amount


def _window(p: Params) -> tuple[int | None, int | None]:
    """`startTime` and `endTime` (ms), as given."""
    return p.integer("startTime", low=0), p.integer("endTime", low=0)


def _slice(p: Params) -> tuple[int, int]:
    offset = p.integer("offset", low=0, high=10**9) or 0
    limit = p.integer("limit", low=1, high=MAX_HISTORY) or MAX_HISTORY
    return offset, limit


def _within(ts_ns: int, since: int | None, until: int | None) -> bool:
    ms = _ms(ts_ns)
    return (since is None or ms >= since) and (until is None or ms <= until)


def _newest_first(
    records: Iterable[TransferRecord], since: int | None, until: int | None
) -> list[TransferRecord]:
    return sorted(
        (r for r in records if _within(r.requested_ns, since, until)),
        key=lambda r: r.transfer_id,
        reverse=True,
    )


def _utc(ns: int) -> str:
    """Binance's wallet times: "YYYY-MM-DD HH:MM:SS", UTC."""
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
