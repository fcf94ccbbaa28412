"""`/_sim/`: what tests and TCA need that Binance does not have (order times, faults, profile,
deposits from other simulated venues, ending a stalled transfer)."""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal
from typing import Any, Literal, TypeVar

import msgspec
from aiohttp import web

from venues.config import ApiCredential, profile_from
from venues.errors import UnknownOrder
from venues.sim.exchange import TransferRefused, UnknownTransfer
from venues.sim.server.errors import BinanceError, _bad_key, _invalid
from venues.sim.server.gateway import GATEWAY
from venues.sim.server.render import _json, _num

T = TypeVar("T")

_REFUSE_DELAY_NS = 20_000_000


MAX_OUTAGE_S = 86_400.0  # a day: longer is no outage a test needs
_ASSET = re.compile(r"[A-Z0-9]{1,20}")
_TX_ID = re.compile(r"[\x21-\x7e]{1,128}")


class _OutageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    duration_s: float
    mode: Literal["503", "refuse"] = "503"


class _DepositRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    account: str
    asset: str
    amount: Decimal
    txId: str  # the wire's name
    address: str = ""
    network: str = ""


class _EndTransferRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outcome: Literal["COMPLETED", "FAILED"] = "COMPLETED"


def _admin(request: web.Request) -> ApiCredential:
    _loopback(request)
    return request.app[GATEWAY].credential(request)


def _loopback(request: web.Request) -> None:
    """-2015 unless the request came from this machine."""
    remote = request.remote or ""
    try:
        loopback = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise _bad_key()


async def _admin_body(request: web.Request, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise BinanceError(-1130, f"Data sent is not valid. ({e})") from None
    except RecursionError:  # msgspec's answer to JSON nested past its depth
        raise BinanceError(-1130, "Data sent is not valid. (nested too deeply)") from None


async def sim_order(request: web.Request) -> web.Response:
    """`GET /_sim/orders/<clientOrderId>[?symbol=]`: the venue-side times of an order (ns),
    on either API's instruments."""
    gw = request.app[GATEWAY]
    cred = _admin(request)
    coid = request.match_info["client_order_id"]
    symbol = request.query.get("symbol")
    if symbol and symbol not in gw.exchange.instruments:
        raise BinanceError(-1121, "Invalid symbol.")
    symbols = [symbol] if symbol else list(gw.exchange.instruments)  # spot and perpetual
    for s in symbols:
        try:
            r = gw.exchange.query(cred.account_id, s, coid)
        except UnknownOrder:
            continue
        fills = [
            {
                "tradeId": int(t.fill.trade_id),
                "price": _num(t.fill.price),
                "qty": _num(t.fill.quantity),
                "liquidity": t.fill.liquidity.value,
                "tsNs": t.fill.ts_ns,
            }
            for t in gw.exchange.user_trades(cred.account_id, s)
            if str(t.order_id) == r.order_id
        ]
        return _json(
            {
                "clientOrderId": r.client_order_id,
                "orderId": int(r.order_id),
                "symbol": r.symbol,
                "status": r.status.value,
                "receiveNs": r.venue_receive_ns,
                "acceptNs": r.venue_accept_ns,
                "updateNs": r.venue_ts_ns,
                "fills": fills,
            }
        )
    raise BinanceError(-2013, "Order does not exist.")


async def sim_start_outage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    body = await _admin_body(request, _OutageRequest)
    if not (math.isfinite(body.duration_s) and 0 < body.duration_s <= MAX_OUTAGE_S):
        raise _invalid("duration_s", f"a positive number of seconds, at most {MAX_OUTAGE_S:g}")
    start = gw.venue.now_ns()
    if body.mode == "refuse":
        start += _REFUSE_DELAY_NS  # the listener closes once this answer is out
    gw.venue.conditions.start_outage(start, body.duration_s, body.mode)
    end = start + int(body.duration_s * 1e9)
    return _json({"mode": body.mode, "startNs": start, "endNs": end})


async def sim_stop_outage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    gw.venue.conditions.stop_outage()
    return _json({})


async def sim_get_profile(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _admin(request)
    return _json(msgspec.to_builtins(gw.venue.profile))


async def sim_set_profile(request: web.Request) -> web.Response:
    """`POST /_sim/profile`: with `preset`, that preset and the given `VenueProfile` fields;
    without, the current profile with the given fields changed."""
    gw = request.app[GATEWAY]
    _admin(request)
    body = await _admin_body(request, dict[str, Any])
    if "preset" not in body:
        body = msgspec.to_builtins(gw.venue.profile) | body
    try:
        profile = profile_from(body)
    except ValueError as e:
        raise BinanceError(-1130, f"Data sent for the profile is not valid. ({e})") from None
    gw.venue.conditions.set_profile(profile)
    return _json(msgspec.to_builtins(profile))


async def sim_deposit(request: web.Request) -> web.Response:
    """`POST /_sim/deposit` `{"account", "asset", "amount", "txId", "address", "network"}`: a
    withdrawal from another simulated venue arriving; credits the account's spot wallet once
    per `txId` (a repeat answers the deposit it made). Loopback only, and no API key: the
    sending venue holds none of this one's, the address names the account. An outage refuses
    it as it refuses Binance's endpoints, and the sender tries again."""
    gw = request.app[GATEWAY]
    _loopback(request)
    body = await _admin_body(request, _DepositRequest)
    if not _ASSET.fullmatch(body.asset):
        raise _invalid("asset", "1-20 of A-Z and 0-9")
    if not _TX_ID.fullmatch(body.txId):
        raise _invalid("txId", "1-128 printable ASCII characters, no spaces")
    if not gw.exchange.has_account(body.account):
        raise _invalid("account", f"no account {body.account!r} on {gw.venue.name}")
    try:
        deposit = await gw.call(
            lambda now: gw.exchange.credit_deposit(
                body.account,
                body.asset,
                body.amount,
                body.txId,
                now,
                address=body.address,
                network=body.network,
            )
        )
    except TransferRefused as e:
        raise BinanceError(-1130, f"Data sent is not valid. ({e.message})") from None
    return _json(
        {
            "id": deposit.deposit_id,
            "account": deposit.account_id,
            "asset": deposit.asset,
            "amount": _num(deposit.amount),
            "txId": deposit.tx_id,
            "creditedNs": deposit.credited_ns,
        }
    )


async def sim_end_transfer(request: web.Request) -> web.Response:
    """`POST /_sim/transfers/<id>` `{"outcome": "COMPLETED" | "FAILED"}`: end one of the key
    holder's pending transfers or withdrawals now (a stalled one never ends by itself)."""
    gw = request.app[GATEWAY]
    cred = _admin(request)
    raw = request.match_info["transfer_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _invalid("transfer id", "a number")
    body = await _admin_body(request, _EndTransferRequest)
    try:
        record = await gw.call(
            lambda now: gw.exchange.end_transfer(
                cred.account_id, int(raw), now, fails=body.outcome == "FAILED"
            )
        )
    except UnknownTransfer:
        raise BinanceError(-4029, "The withdrawal record does not exist.") from None
    except TransferRefused as e:
        raise BinanceError(-1130, f"Data sent is not valid. ({e.message})") from None
    return _json(
        {
            "id": record.transfer_id,
            "kind": record.kind.value,
            "state": record.state.value,
            "updatedNs": record.updated_ns,
        }
    )
