"""Binance's error answers: `BinanceError`, its usual causes, and the code for each refusal."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from venues.errors import OrderRejected, RateLimited
from venues.model import Instrument, NewOrder, RejectReason
from venues.sim.server.render import _json, _num


class BinanceError(Exception):
    """An answer in Binance's error shape: an HTTP status and a `{"code", "msg"}` body."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}

    def response(self) -> web.Response:
        return _json(self.body(), status=self.status, headers=self.headers)


def _missing(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def _invalid(name: str, detail: str = "") -> BinanceError:
    extra = f" ({detail})" if detail else ""
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.{extra}")


def _bad_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def _bad_key_format() -> BinanceError:
    """Spot's answer to a request without an API key."""
    return BinanceError(-2014, "API-key format invalid.", 401)


def _unavailable() -> BinanceError:
    return BinanceError(
        -1001, "Internal error; unable to process your request. Please try again.", 503
    )


def _outcome_unknown() -> BinanceError:
    return BinanceError(
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
        503,
    )


def _rate_limited(e: RateLimited, limit: int) -> BinanceError:
    retry = max(1, math.ceil(e.retry_after_s or 1))
    return BinanceError(
        -1015,
        f"Too many new orders; current limit is {limit} orders per MINUTE.",
        429,
        {"Retry-After": str(retry)},
    )


# Every reason the exchange refuses an order, as Binance's code and message. INVALID_PRICE is
# decided by `reject_error` from the order: a limit price outside the band around the mark is
# Binance's PERCENT_PRICE pair -4016/-4024; a market order with no book to price it is -1112.
REJECT_CODES: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    RejectReason.INVALID_QUANTITY: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.INVALID_PRICE: (-4016, "Price is higher than mark price multiplier cap."),
    RejectReason.PRICE_OFF_TICK: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.QTY_OFF_LOT: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.BELOW_MIN_NOTIONAL: (
        -4164,
        "Order's notional must be no smaller than {min_notional} (unless you choose reduce only).",
    ),
    RejectReason.INSUFFICIENT_MARGIN: (-2019, "Margin is insufficient."),
    RejectReason.INSUFFICIENT_BALANCE: (-2019, "Margin is insufficient."),  # a spot reason
    RejectReason.POST_ONLY_WOULD_CROSS: (
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    RejectReason.FOK_NOT_FILLABLE: (
        -5021,
        "Due to the order could not be filled immediately, the FOK order has been rejected.",
    ),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
    RejectReason.INVALID_CLIENT_ORDER_ID: (-4015, "Client order id is not valid."),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: (-2022, "ReduceOnly Order is rejected."),
    RejectReason.UNKNOWN_ACCOUNT: (-2015, "Invalid API-key, IP, or permissions for action."),
    RejectReason.VENUE_REFUSED: (-2010, "NEW_ORDER_REJECTED"),
    RejectReason.INJECTED: (-2010, "NEW_ORDER_REJECTED"),
}


def reject_error(
    e: OrderRejected,
    order: NewOrder | None = None,
    inst: Instrument | None = None,
    mark: Decimal | None = None,
) -> BinanceError:
    """The Binance error for an exchange refusal; the exchange's explanation follows in ()."""
    code, msg = REJECT_CODES[e.reason]
    if e.reason is RejectReason.INVALID_PRICE and order is not None:
        if order.price is None:
            code, msg = -1112, "No orders on book for symbol."
        elif mark is not None and order.price < mark:
            code, msg = -4024, "Price is lower than mark price multiplier floor."
    if "{min_notional}" in msg:
        msg = msg.format(min_notional=_num(inst.min_notional) if inst else "the minimum")
    status = 401 if code == -2015 else 400
    return BinanceError(code, f"{msg} ({e.message})" if e.message else msg, status)


# Binance's legal range for a client order id, as its -1100 message names it.
CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")
_REFUSED = (-2010, "NEW_ORDER_REJECTED")

# The same refusals as Binance's spot API gives them: filters are -1013 and name the filter,
# what the account cannot pay or the order would do is -2010 with a reason.
SPOT_REJECT_CODES: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    RejectReason.INVALID_QUANTITY: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.INVALID_PRICE: (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    RejectReason.PRICE_OFF_TICK: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.QTY_OFF_LOT: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.BELOW_MIN_NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
    RejectReason.INSUFFICIENT_MARGIN: _INSUFFICIENT,
    RejectReason.INSUFFICIENT_BALANCE: _INSUFFICIENT,
    RejectReason.POST_ONLY_WOULD_CROSS: (-2010, "Order would immediately match and take."),
    RejectReason.FOK_NOT_FILLABLE: _REFUSED,
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-2010, "Duplicate order sent."),
    RejectReason.INVALID_CLIENT_ORDER_ID: (
        -1100,
        _illegal("newClientOrderId", CLIENT_ID_RANGE).msg,
    ),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: _REFUSED,
    RejectReason.UNKNOWN_ACCOUNT: (-2015, "Invalid API-key, IP, or permissions for action."),
    RejectReason.VENUE_REFUSED: _REFUSED,
    RejectReason.INJECTED: _REFUSED,
}


def spot_reject_error(e: OrderRejected, order: NewOrder | None = None) -> BinanceError:
    """The spot API's error for an exchange refusal; the exchange's explanation follows in ()."""
    code, msg = SPOT_REJECT_CODES[e.reason]
    if e.reason is RejectReason.INVALID_PRICE and order is not None and order.price is None:
        code, msg = -1112, "No orders on book for symbol."
    status = 401 if code == -2015 else 400
    return BinanceError(code, f"{msg} ({e.message})" if e.message else msg, status)
