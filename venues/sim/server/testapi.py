"""`/_sim/`: what tests and TCA need that Binance does not have (order times, faults, profile)."""

from __future__ import annotations

import ipaddress
import math
from typing import Any, Literal, TypeVar

import msgspec
from aiohttp import web

from venues.config import ApiCredential, profile_from
from venues.errors import UnknownOrder
from venues.sim.server.errors import BinanceError, _bad_key, _invalid
from venues.sim.server.gateway import GATEWAY
from venues.sim.server.render import _json, _num

T = TypeVar("T")

_REFUSE_DELAY_NS = 20_000_000


MAX_OUTAGE_S = 86_400.0  # a day: longer is no outage a test needs


class _OutageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    duration_s: float
    mode: Literal["503", "refuse"] = "503"


def _admin(request: web.Request) -> ApiCredential:
    gw = request.app[GATEWAY]
    remote = request.remote or ""
    try:
        loopback = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise _bad_key()
    return gw.credential(request)


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
