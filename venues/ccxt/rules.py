"""What legato must know of an exchange that ccxt does not say: its client-order-id rule, how an
order is found again by that id, when its answer to a new order arrives, what it calls the
accounts legato moves funds between, how a withdrawal carries legato's id; and which ids exist.

One `ExchangeRules` per ccxt exchange id (`RULES`); an id without a row gets `DEFAULT_RULES`,
the conservative choice (32 alphanumerics, ccxt's unified `clientOrderId` parameter, ACCEPTED
acks, no transfers). Everything else (instrument kinds, post-only, batch size, whether it can
transfer and withdraw at all) is read from ccxt's `has`, `features` and markets by the client.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import ccxt.pro
import msgspec

from venues.model import BINANCE_CLIENT_IDS, AckKind, ClientIdRule

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789abcdef"
# legato's own alphabet (`<prefix>-<leg>-<n>`): kept as it is wherever a venue takes it.
LEGATO_ALPHABET = _ALNUM + "._:/-"


class ExchangeRules(msgspec.Struct, frozen=True, kw_only=True):
    """How legato talks to one exchange through ccxt, beyond what ccxt declares.

    `create_param` carries the client id on `create_order`; `query_param` finds an order by
    it on `fetch_order` and `cancel_order` (None: the exchange has no such query through ccxt,
    and the order is looked for among the open, then the closed orders); `query_extra` goes
    with it. `id_field` is the raw field holding the client id when ccxt's unified
    `clientOrderId` stays empty. `binance_wire`: the exchange answers in Binance's shapes
    (`{"code", "msg"}` errors, the raw order fields that carry its accept and match times),
    read as the native adapter reads them. `trades_param`: `fetch_my_trades` narrows to one
    order with it.

    `wallets`: the exchange's account (ccxt's `fromAccount`/`toAccount` name) for each of
    legato's wallets (`WalletKind` values): `spot`, where deposits land and withdrawals leave,
    and `margin`, where derivatives are margined; no row, no transfers. `withdraw_id_param`:
    the withdrawal parameter (and raw history field) that carries legato's client transfer
    id, by which a lost answer is found; None where ccxt documents none (then the history is
    searched by asset, amount, address and time, as for a transfer).
    """

    client_ids: ClientIdRule
    ack: AckKind = AckKind.ACCEPTED
    create_param: str = "clientOrderId"
    query_param: str | None = "clientOrderId"
    query_extra: dict[str, Any] = {}
    id_field: str | None = None
    binance_wire: bool = False
    trades_param: str | None = None
    defaults: dict[str, Any] = {}  # ccxt options the adapter sets unless the caller does
    wallets: dict[str, str] = {}
    withdraw_id_param: str | None = None


# 1-32 alphanumerics: OKX's rule, and the default for an exchange without a row here (most
# take at least that much).
ALNUM_32 = ClientIdRule(max_len=32, alphabet=_ALNUM)

_BINANCE = {
    "client_ids": BINANCE_CLIENT_IDS,
    # ccxt asks Binance for the order after matching: newOrderRespType RESULT on futures,
    # FULL on spot.
    "ack": AckKind.RESULT,
    "query_param": "origClientOrderId",
    "binance_wire": True,
    "trades_param": "orderId",
    # The universal transfer's MAIN (spot) and UMFUTURE (USD-M) wallets, by ccxt's names.
    "wallets": {"spot": "spot", "margin": "linear"},
    "withdraw_id_param": "withdrawOrderId",
    # Currencies and margin pairs come from wallet and margin endpoints (sapi) that need more
    # than trading rights; legato reads none of it. Open orders of every symbol at once are
    # what a resync needs. ccxt.pro would read the positions whenever the order stream opens:
    # legato reads them when it asks.
    "defaults": {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "watchPositions": {"fetchPositionsSnapshot": False},
    },
}

RULES: dict[str, ExchangeRules] = {
    "binance": ExchangeRules(
        **_BINANCE
        | {
            "defaults": _BINANCE["defaults"]
            | {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot"}
        }
    ),
    "binanceusdm": ExchangeRules(**_BINANCE),
    "okx": ExchangeRules(
        client_ids=ALNUM_32,
        query_param="clOrdId",
        # One unified trading account holds spot and derivatives; deposits land in, and
        # withdrawals leave from, the funding account.
        wallets={"spot": "funding", "margin": "trading"},
        withdraw_id_param="clientId",
    ),
    "bybit": ExchangeRules(
        client_ids=ClientIdRule(max_len=36, alphabet=_ALNUM + "_-"),
        query_param="orderLinkId",
        # ccxt refuses Bybit's fetch_order unless told that it only reaches the last 500
        # orders of the account: legato queries its recent orders only.
        query_extra={"acknowledged": True},
        # A unified trading account (UTA) trades spot and derivatives; deposits and
        # withdrawals go through the funding account. (A classic account's would be
        # "spot" and "contract".)
        wallets={"spot": "funding", "margin": "unified"},
    ),
    "hyperliquid": ExchangeRules(
        client_ids=ClientIdRule(
            max_len=34, alphabet=_HEX, prefix="0x", digest_alphabet=_HEX
        ),  # a 128-bit hex "cloid"
        ack=AckKind.RESULT,  # its answer says whether the order rests or filled
        wallets={"spot": "spot", "margin": "swap"},  # its spot and perp ledgers
    ),
    "deribit": ExchangeRules(
        client_ids=ClientIdRule(max_len=64, alphabet=LEGATO_ALPHABET),
        ack=AckKind.RESULT,
        create_param="label",
        query_param=None,
        id_field="label",
    ),
}
DEFAULT_RULES = ExchangeRules(client_ids=ALNUM_32)


def known_exchange(exchange_id: str) -> bool:
    """Whether ccxt.pro (REST and WebSocket) implements `exchange_id`."""
    return exchange_id in ccxt.pro.exchanges


def check_exchange(exchange_id: str) -> None:
    """Raise ValueError naming `exchange_id` and its close matches unless ccxt.pro has it."""
    if known_exchange(exchange_id):
        return
    if exchange_id in ccxt.exchanges:
        raise ValueError(
            f"ccxt exchange {exchange_id!r} has no ccxt.pro (WebSocket) implementation; the "
            "ccxt adapter needs one for its execution-report stream"
        )
    close = difflib.get_close_matches(exchange_id.lower(), ccxt.pro.exchanges, n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown ccxt exchange id {exchange_id!r}{hint} (ccxt.pro knows "
        f"{len(ccxt.pro.exchanges)} exchanges: see ccxt.pro.exchanges)"
    )


def exchange_rules(exchange_id: str) -> ExchangeRules:
    """The rules for `exchange_id` (ValueError for an id ccxt.pro does not know)."""
    check_exchange(exchange_id)
    return RULES.get(exchange_id, DEFAULT_RULES)


URL_ROOTS = ("rest", "ws")


def rebase_urls(api: Mapping[str, Any], roots: Mapping[str, str]) -> dict[str, Any]:
    """ccxt's `urls["api"]` with every URL moved onto new roots: `rest` takes the http(s)
    entries, `ws` the ws(s) ones. Each keeps its path under the new root, so
    `https://fapi.binance.com/fapi/v1` becomes `<rest>/fapi/v1` and
    `wss://fstream.binance.com/ws` becomes `<ws>/ws`: the simulators serve the venue's own
    paths. A root not given leaves its entries alone."""
    unknown = sorted(set(roots) - set(URL_ROOTS))
    if unknown:
        raise ValueError(
            f"urls: unknown key {unknown[0]!r}; accepted: rest (http(s) root), ws (ws(s) root)"
        )

    def move(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: move(v) for k, v in node.items()}
        if not isinstance(node, str) or "://" not in node:
            return node
        old = urlsplit(node)
        root = roots.get("ws" if old.scheme in ("ws", "wss") else "rest")
        if root is None:
            return node
        new = urlsplit(root)
        path = new.path.rstrip("/") + old.path
        return urlunsplit((new.scheme, new.netloc, path, old.query, old.fragment))

    return move(api)
