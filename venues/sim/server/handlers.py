"""The REST endpoints of the Binance USD-M API: market data, orders and the account.

They serve the venue's perpetuals only; its spot instruments are the spot API's
(`venues.sim.server.spot_handlers`), and a spot symbol here is -1121 as on Binance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from aiohttp import web

from venues.errors import OrderRejected, RateLimited, UnknownOrder, VenueError
from venues.model import AccountSnapshot, BookTicker, ExecutionReport, Instrument
from venues.sim.exchange import MARGIN_ASSET, UserTrade
from venues.sim.server.errors import (
    BinanceError,
    _invalid,
    _rate_limited,
    _unavailable,
)
from venues.sim.server.gateway import GATEWAY, Api, Gateway
from venues.sim.server.params import Params, _OrderSpec
from venues.sim.server.render import (
    _ZERO,
    _assets,
    _fixed,
    _json,
    _ms,
    _num,
    _totals,
    exchange_info,
    order_json,
    user_trade_json,
)

MAX_BATCH = 5
MAX_LEVERAGE = 125
# `batchOrders` is a JSON list of flat objects: 5 orders of every parameter are under 2 kB,
# and their nesting is 2 (a nested value, at 3, is that order's own error). Bounded before
# decoding: JSON nested about a thousand deep exhausts the decoder's recursion.
MAX_BATCH_CHARS = 16_384
MAX_BATCH_DEPTH = 8


# --- public endpoints ------------------------------------------------------------------
async def ping(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    await gw.call(lambda now: None)
    return _json({})


async def server_time(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    now = await gw.call(lambda now: now)
    return _json({"serverTime": _ms(now)})


async def get_exchange_info(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return _json(await gw.call(lambda now: exchange_info(gw.venue, now)))


async def depth(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    inst = gw.instrument(p.text("symbol", required=True))
    limit = p.integer("limit")
    limit = 500 if limit is None else limit
    if not 1 <= limit <= 1000:
        raise BinanceError(-4021, f"'{limit}' is not valid depth limit.")
    snap = await gw.call(lambda now: gw.exchange.book_snapshot(inst.symbol, limit, now))
    return _json(
        {
            "lastUpdateId": gw.exchange.updates_applied,
            "E": _ms(gw.venue.now_ns()),
            "T": _ms(snap.ts_ns),
            "bids": [[_fixed(px, inst.tick), _fixed(q, inst.lot)] for px, q in snap.bids],
            "asks": [[_fixed(px, inst.tick), _fixed(q, inst.lot)] for px, q in snap.asks],
        }
    )


async def book_ticker(request: web.Request) -> web.Response:
    """`GET /fapi/v1/ticker/bookTicker[?symbol=]`: the top of one book, or of every book
    (a symbol whose book has an empty side is left out of the list)."""
    gw = request.app[GATEWAY]
    p = Params(dict(request.query))
    symbol = gw.optional_symbol(p)
    symbols = [symbol] if symbol is not None else [i.symbol for i in gw.instruments(Api.USDM)]

    def read(now: int) -> list[tuple[Instrument, BookTicker | None]]:
        return [(gw.exchange.instruments[s], gw.exchange.book_ticker(s)) for s in symbols]

    now_ms = _ms(gw.venue.now_ns())
    rows = [
        {
            "symbol": inst.symbol,
            "bidPrice": _fixed(t.bid, inst.tick),
            "bidQty": _fixed(t.bid_qty, inst.lot),
            "askPrice": _fixed(t.ask, inst.tick),
            "askQty": _fixed(t.ask_qty, inst.lot),
            "time": _ms(t.ts_ns) or now_ms,
            "lastUpdateId": gw.exchange.updates_applied,
        }
        for inst, t in await gw.call(read)
        if t is not None
    ]
    if symbol is None:
        return _json(rows)
    if not rows:
        raise BinanceError(-1121, f"No book for {symbol} yet.")
    return _json(rows[0])


# --- orders ----------------------------------------------------------------------------
async def new_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    spec = gw.order_spec(p)
    try:
        report = await gw.venue.submit(cred.account_id, spec.order)
    except OrderRejected as e:
        raise gw.rejected(e, spec) from None
    except RateLimited as e:
        raise _rate_limited(e, gw.venue.profile.orders_per_minute) from None
    return _json(gw.answer(spec, report))


async def batch_orders(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    raw = p.text("batchOrders", required=True)
    assert raw is not None
    if len(raw) > MAX_BATCH_CHARS:
        raise _invalid("batchOrders", f"longer than {MAX_BATCH_CHARS} characters")
    if _nesting(raw) > MAX_BATCH_DEPTH:
        raise _invalid("batchOrders", f"JSON nested deeper than {MAX_BATCH_DEPTH}")
    try:
        items = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise _invalid("batchOrders", "not a JSON list of order objects") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid("batchOrders", "not a JSON list of order objects")
    if not 1 <= len(items) <= MAX_BATCH:
        raise BinanceError(-4082, f"Invalid number of batch place orders: {len(items)}")
    specs: list[_OrderSpec | BinanceError] = []
    for item in items:
        try:
            specs.append(gw.order_spec(Params(_stringify(item))))
        except BinanceError as e:
            specs.append(e)
    valid = [s for s in specs if isinstance(s, _OrderSpec)]
    results = iter(
        await gw.venue.submit_batch(cred.account_id, [s.order for s in valid]) if valid else []
    )
    out: list[dict[str, Any]] = []
    for spec in specs:
        if isinstance(spec, BinanceError):
            out.append(spec.body())
            continue
        result = next(results)
        try:
            if isinstance(result, OrderRejected):
                raise gw.rejected(result, spec)
            if isinstance(result, RateLimited):
                raise _rate_limited(result, gw.venue.profile.orders_per_minute)
            if isinstance(result, VenueError):
                raise _unavailable()
            out.append(gw.answer(spec, result))
        except BinanceError as e:
            out.append(e.body())
    return _json(out)


def _nesting(text: str) -> int:
    """How deep the JSON text's arrays and objects nest (brackets inside strings aside)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _stringify(item: Mapping[str, Any]) -> dict[str, str]:
    """A batch item's values as the strings a form would carry (JSON numbers, bools too)."""
    out: dict[str, str] = {}
    for k, v in item.items():
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[str(k)] = str(v)
        elif v is not None:
            raise _invalid(str(k), "expected a string or a number")
    return out


async def query_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    find = gw.lookup(cred.account_id, inst, p)
    try:
        report = await gw.call(find)
    except UnknownOrder:
        raise BinanceError(-2013, "Order does not exist.") from None
    return _json(order_json(report, inst, query=True))


async def cancel_order(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    find = gw.lookup(cred.account_id, inst, p)

    def cancel(now: int) -> ExecutionReport:
        r = find(now)
        # By its exchange id: a reused client order id may name a newer order.
        return gw.exchange.cancel_by_id(cred.account_id, inst.symbol, int(r.order_id), now)

    try:
        report = await gw.call(cancel)
    except UnknownOrder:
        raise BinanceError(-2011, "Unknown order sent.") from None
    return _json(order_json(report, inst))


async def open_orders(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    reports = await gw.call(lambda now: gw.exchange.open_orders(cred.account_id, symbol))
    insts = {i.symbol: i for i in gw.instruments(Api.USDM)}
    return _json([order_json(r, insts[r.symbol], query=True) for r in reports if r.symbol in insts])


async def all_orders(request: web.Request) -> web.Response:
    """`GET /fapi/v1/allOrders`: the account's orders on a symbol, open and ended, oldest
    first: from `orderId` on (else the newest `limit`), within `startTime`-`endTime`
    (their creation, ms)."""
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    picked = await account_orders(gw, cred.account_id, inst, p)
    return _json([order_json(r, inst, query=True) for r in picked])


async def account_orders(
    gw: Gateway, account: str, inst: Instrument, p: Params
) -> list[ExecutionReport]:
    """The orders an `allOrders` request picks: the account's on the symbol, open and
    ended, oldest first: from `orderId` on (else the newest `limit`), within
    `startTime`-`endTime` (their creation, ms)."""
    from_id = p.integer("orderId")
    start = p.integer("startTime")
    end = p.integer("endTime")
    limit = p.integer("limit", low=1, high=1000) or 500
    reports = await gw.call(lambda now: gw.exchange.all_orders(account, inst.symbol))

    def created_ms(r: ExecutionReport) -> int:
        return _ms(r.venue_receive_ns or r.venue_ts_ns)

    picked = [
        r
        for r in reports
        if (from_id is None or int(r.order_id) >= from_id)
        and (start is None or created_ms(r) >= start)
        and (end is None or created_ms(r) <= end)
    ]
    return picked[:limit] if from_id is not None else picked[-limit:]


async def cancel_all(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    await gw.call(lambda now: gw.exchange.cancel_all(cred.account_id, inst.symbol, now))
    return _json({"code": 200, "msg": "The operation of cancel all open order is done."})


async def user_trades(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    picked = await account_trades(gw, cred.account_id, inst, p)
    return _json([user_trade_json(t, inst) for t in picked])


async def account_trades(gw: Gateway, account: str, inst: Instrument, p: Params) -> list[UserTrade]:
    """The fills a `userTrades` (`myTrades`) request picks: the account's on the symbol,
    of one `orderId`, within `startTime`-`endTime`, from `fromId` on (else the newest
    `limit`), oldest first."""
    order_id = p.integer("orderId")
    start = p.integer("startTime")
    end = p.integer("endTime")
    from_id = p.integer("fromId")
    limit = p.integer("limit", low=1, high=1000) or 500
    trades = await gw.call(lambda now: gw.exchange.user_trades(account, inst.symbol))
    picked = [
        t
        for t in trades
        if (order_id is None or t.order_id == order_id)
        and (start is None or _ms(t.fill.ts_ns) >= start)
        and (end is None or _ms(t.fill.ts_ns) <= end)
        and (from_id is None or int(t.fill.trade_id) >= from_id)
    ]
    return picked[:limit] if from_id is not None else picked[-limit:]


# --- account ---------------------------------------------------------------------------
async def _account_state(gw: Gateway, account: str) -> tuple[AccountSnapshot, set[str]]:
    def read(now: int) -> tuple[AccountSnapshot, set[str]]:
        snap = gw.exchange.account_snapshot(account, now)
        return snap, {r.symbol for r in gw.exchange.open_orders(account)}

    return await gw.call(read)


def _position_rows(
    gw: Gateway, snap: AccountSnapshot, symbol: str | None
) -> Iterator[tuple[Instrument, Any]]:
    held = {p.symbol: p for p in snap.positions}
    for inst in gw.instruments(Api.USDM):
        if symbol is None or inst.symbol == symbol:
            yield inst, held.get(inst.symbol)


def _leverage(gw: Gateway, account: str) -> int:
    # SimExchange has no public accessor for an account's leverage yet.
    return gw.exchange.leverage(account)


async def account_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    lev = _leverage(gw, cred.account_id)
    positions = []
    for inst, p in _position_rows(gw, snap, None):
        positions.append(
            {
                "symbol": inst.symbol,
                "initialMargin": _num(p.initial_margin if p else _ZERO),
                "maintMargin": "0",
                "unrealizedProfit": _num(p.unrealized_pnl if p else _ZERO),
                "positionInitialMargin": _num(p.initial_margin if p else _ZERO),
                "openOrderInitialMargin": "0",
                "leverage": str(lev),
                "isolated": False,
                "entryPrice": _num(p.entry_price if p else _ZERO),
                "breakEvenPrice": _num(p.entry_price if p else _ZERO),
                "maxNotional": "1000000000",
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": "BOTH",
                "positionAmt": _num(p.quantity if p else _ZERO),
                "updateTime": _ms(snap.ts_ns),
            }
        )
    head = {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }
    return _json(head | _totals(snap) | {"assets": _assets(snap), "positions": positions})


async def account_v3(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    positions = [
        {
            "symbol": p.symbol,
            "positionSide": "BOTH",
            "positionAmt": _num(p.quantity),
            "unrealizedProfit": _num(p.unrealized_pnl),
            "isolatedMargin": "0",
            "notional": _num(p.quantity * p.mark_price),
            "isolatedWallet": "0",
            "initialMargin": _num(p.initial_margin),
            "maintMargin": "0",
            "updateTime": _ms(snap.ts_ns),
        }
        for p in snap.positions
        if p.quantity != 0
    ]
    return _json(_totals(snap) | {"assets": _assets(snap), "positions": positions})


async def position_risk_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    snap, _open = await _account_state(gw, cred.account_id)
    lev = _leverage(gw, cred.account_id)
    rows = []
    for inst, pos in _position_rows(gw, snap, symbol):
        mark = pos.mark_price if pos else (gw.exchange.mark_price(inst.symbol) or _ZERO)
        qty = pos.quantity if pos else _ZERO
        rows.append(
            {
                "symbol": inst.symbol,
                "positionAmt": _num(qty),
                "entryPrice": _num(pos.entry_price if pos else _ZERO),
                "breakEvenPrice": _num(pos.entry_price if pos else _ZERO),
                "markPrice": _num(mark),
                "unRealizedProfit": _num(pos.unrealized_pnl if pos else _ZERO),
                "liquidationPrice": "0",
                "leverage": str(lev),
                "maxNotionalValue": "1000000000",
                "marginType": "cross",
                "isolatedMargin": "0.00000000",
                "isAutoAddMargin": "false",
                "positionSide": "BOTH",
                "notional": _num(qty * mark),
                "isolatedWallet": "0",
                "updateTime": _ms(snap.ts_ns),
            }
        )
    return _json(rows)


async def position_risk_v3(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    snap, open_symbols = await _account_state(gw, cred.account_id)
    rows = []
    for inst, pos in _position_rows(gw, snap, symbol):
        qty = pos.quantity if pos else _ZERO
        if qty == 0 and inst.symbol not in open_symbols:
            continue  # V3 lists symbols with a position or open orders only
        mark = pos.mark_price if pos else (gw.exchange.mark_price(inst.symbol) or _ZERO)
        im = pos.initial_margin if pos else _ZERO
        rows.append(
            {
                "symbol": inst.symbol,
                "positionSide": "BOTH",
                "positionAmt": _num(qty),
                "entryPrice": _num(pos.entry_price if pos else _ZERO),
                "breakEvenPrice": _num(pos.entry_price if pos else _ZERO),
                "markPrice": _num(mark),
                "unRealizedProfit": _num(pos.unrealized_pnl if pos else _ZERO),
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": _num(qty * mark),
                "marginAsset": MARGIN_ASSET,
                "isolatedWallet": "0",
                "initialMargin": _num(im),
                "maintMargin": "0",
                "positionInitialMargin": _num(im),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": _ms(snap.ts_ns),
            }
        )
    return _json(rows)


async def balance_v2(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, _ = await gw.signed(request)
    snap, _open = await _account_state(gw, cred.account_id)
    return _json(
        [
            {
                "accountAlias": cred.account_id,
                "asset": a["asset"],
                "balance": a["walletBalance"],
                "crossWalletBalance": a["crossWalletBalance"],
                "crossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"],
                "maxWithdrawAmount": a["maxWithdrawAmount"],
                "marginAvailable": a["marginAvailable"],
                "updateTime": a["updateTime"],
            }
            for a in _assets(snap)
        ]
    )


async def leverage_bracket(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    _, p = await gw.signed(request)
    symbol = gw.optional_symbol(p)
    await gw.call(lambda now: None)
    rows = [
        {
            "symbol": inst.symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": MAX_LEVERAGE,
                    "notionalCap": 1_000_000_000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0.0,
                }
            ],
        }
        for inst in gw.instruments(Api.USDM)
        if symbol is None or inst.symbol == symbol
    ]
    return _json(rows[0] if symbol is not None else rows)


async def change_leverage(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    cred, p = await gw.signed(request)
    inst = gw.instrument(p.text("symbol", required=True))
    lev = p.integer("leverage", required=True)  # ASCII digits: -1100 names the parameter
    assert lev is not None
    if not 1 <= lev <= MAX_LEVERAGE:
        raise BinanceError(-4028, f"Leverage {lev} is not valid")
    # The simulator's leverage is per account: setting it for one symbol sets it for all.
    await gw.call(lambda now: gw.exchange.set_leverage(cred.account_id, lev))
    return _json({"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.symbol})
