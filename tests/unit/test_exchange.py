"""The simulated exchange core: validation, matching, accounts, margin and its outbox."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from venues.errors import OrderRejected, UnknownOrder
from venues.model import (
    BookTicker,
    ExecutionReport,
    Instrument,
    Liquidity,
    MarketTrade,
    NewOrder,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from venues.sim.book import MARKET
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountReport, AccountSpec, SimExchange
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001, min notional 100
STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]  # spot, tick 0.01, lot 0.0001
INSTRUMENTS = {i.symbol: i for i in (BTC, STETH)}
MAKER = D("0.0002")
TAKER = D("0.0005")
START = 10  # the instant every test starts at; the scripted book is in place by then


def ticks(inst: Instrument, price: str | Decimal) -> int:
    return int(D(price) / inst.tick)


def lots(inst: Instrument, qty: str | Decimal) -> int:
    return int(D(qty) / inst.lot)


def depth(ts_ns: int, symbol: str, bids=(), asks=()) -> DepthUpdate:
    """A depth update written in prices and quantities rather than ticks and lots."""
    inst = INSTRUMENTS[symbol]
    return DepthUpdate(
        ts_ns,
        symbol,
        [(ticks(inst, p), lots(inst, q)) for p, q in bids],
        [(ticks(inst, p), lots(inst, q)) for p, q in asks],
    )


def new(
    coid: str,
    side: Side,
    qty: str,
    price: str | None = None,
    *,
    symbol: str = "BTCUSDT",
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
) -> NewOrder:
    return NewOrder(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
    )


def make_exchange() -> tuple[SimExchange, ScriptedMarket]:
    """BTC perp 59999/60001 (mid 60000) and stETH spot 2599/2601 (mid 2600); three accounts."""
    market = ScriptedMarket([BTC, STETH])
    market.push(
        depth(
            1,
            "BTCUSDT",
            bids=[("59999.0", "1"), ("59998.0", "2"), ("59990.0", "5")],
            asks=[("60001.0", "0.5"), ("60002.0", "0.5"), ("60010.0", "5")],
        ),
        depth(1, "STETHUSDT", bids=[("2599.00", "100")], asks=[("2601.00", "100")]),
    )
    ex = SimExchange("sim", market)
    ex.open_account(AccountSpec(account_id="alice", balances={"USDT": D(100_000)}))
    ex.open_account(AccountSpec(account_id="bob", balances={"USDT": D(100_000)}))
    ex.open_account(
        AccountSpec(
            account_id="poor",
            balances={"USDT": D(1_000)},
            leverage=10,
            spot_balances={"USDT": D(1_000), "STETH": D(2)},
        )
    )
    ex.advance(START)
    ex.drain()
    return ex, market


@pytest.fixture
def ex() -> SimExchange:
    return make_exchange()[0]


def reports(events: list, account: str | None = None) -> list[ExecutionReport]:
    return [
        e.report
        for e in events
        if isinstance(e, AccountReport) and (account is None or e.account_id == account)
    ]


def state(ex: SimExchange, account: str) -> tuple:
    """Everything a refused order must leave as it was."""
    return (
        ex.account_snapshot(account, START),
        ex.open_orders(account),
        {
            s: (b.total_qty(), b.depth(Side.BUY, 50), b.depth(Side.SELL, 50))
            for s, b in ex.books.items()
        },
        {s: ex.user_trades(account, s) for s in ex.instruments},
    )


# --- rejections ------------------------------------------------------------------------
REJECTIONS = [
    # (id, account, order, reason, words the message must contain)
    (
        "insufficient-margin",
        "poor",
        new("m1", Side.BUY, "1", "60000.0"),
        RejectReason.INSUFFICIENT_MARGIN,
        ["USDT", "1000", "available"],
    ),
    (
        "unknown-symbol",
        "alice",
        new("m1", Side.BUY, "1", "1.0", symbol="XRPUSDT"),
        RejectReason.UNKNOWN_SYMBOL,
        ["XRPUSDT", "BTCUSDT", "STETHUSDT"],
    ),
    (
        "price-off-tick",
        "alice",
        new("m1", Side.BUY, "0.1", "59999.95"),
        RejectReason.PRICE_OFF_TICK,
        ["59999.95", "tick", "0.1"],
    ),
    (
        "qty-off-lot",
        "alice",
        new("m1", Side.BUY, "0.0015", "59999.0"),
        RejectReason.QTY_OFF_LOT,
        ["0.0015", "lot", "0.001"],
    ),
    (
        "below-min-notional",
        "alice",
        new("m1", Side.BUY, "0.001", "59999.0"),
        RejectReason.BELOW_MIN_NOTIONAL,
        ["59.999", "minimum", "100"],
    ),
    (
        "market-below-min-notional",
        "alice",
        new("m1", Side.BUY, "0.001"),
        RejectReason.BELOW_MIN_NOTIONAL,
        ["60.001", "100"],
    ),
    (
        "post-only-would-cross",
        "alice",
        new("m1", Side.BUY, "0.1", "60001.0", tif=TimeInForce.POST_ONLY),
        RejectReason.POST_ONLY_WOULD_CROSS,
        ["60001.0", "best ask", "below"],
    ),
    (
        "invalid-client-order-id-chars",
        "alice",
        new("bad id!", Side.BUY, "0.1", "59999.0"),
        RejectReason.INVALID_CLIENT_ORDER_ID,
        ["'bad id!'", "36", "A-Za-z0-9"],
    ),
    (
        "invalid-client-order-id-long",
        "alice",
        new("x" * 37, Side.BUY, "0.1", "59999.0"),
        RejectReason.INVALID_CLIENT_ORDER_ID,
        ["x" * 37, "36"],
    ),
    (
        "invalid-client-order-id-empty",
        "alice",
        new("", Side.BUY, "0.1", "59999.0"),
        RejectReason.INVALID_CLIENT_ORDER_ID,
        ["''", "1-36"],
    ),
    *(
        (
            f"quantity-{q}",
            "alice",
            new("m1", Side.BUY, q, "59999.0"),
            RejectReason.INVALID_QUANTITY,
            [q, "positive"],
        )
        for q in ("0", "-0.1", "NaN", "Infinity", "-Infinity", "sNaN")
    ),
    (
        "quantity-above-max",
        "alice",
        new("m1", Side.BUY, "2000000", "59999.0"),
        RejectReason.INVALID_QUANTITY,
        ["2000000", "at most", "1000000"],
    ),
    (
        "limit-without-price",
        "alice",
        NewOrder(
            client_order_id="m1",
            symbol="BTCUSDT",
            side=Side.BUY,
            type=OrderType.LIMIT,
            quantity=D("0.1"),
        ),
        RejectReason.INVALID_PRICE,
        ["None", "positive price"],
    ),
    (
        "limit-negative-price",
        "alice",
        new("m1", Side.BUY, "0.1", "-5"),
        RejectReason.INVALID_PRICE,
        ["-5", "positive price"],
    ),
    (
        "price-above-band",
        "alice",
        new("m1", Side.SELL, "0.1", "63001.0"),
        RejectReason.INVALID_PRICE,
        ["63001.0", "band", "57000.00-63000.00", "60000"],
    ),
    (
        "price-below-band",
        "alice",
        new("m1", Side.BUY, "0.1", "56999.9"),
        RejectReason.INVALID_PRICE,
        ["56999.9", "57000.00-63000.00"],
    ),
    (
        "market-fok",
        "alice",
        new("m1", Side.BUY, "0.1", tif=TimeInForce.FOK),
        RejectReason.INVALID_PRICE,
        ["FOK", "limit"],
    ),
    (
        "reduce-only-when-flat",
        "alice",
        new("m1", Side.SELL, "0.1", "60001.0", reduce_only=True),
        RejectReason.REDUCE_ONLY_WOULD_INCREASE,
        ["reduce-only", "SELL", "0.1", "position 0"],
    ),
    (
        "spot-sell-without-holding",
        "alice",
        new("m1", Side.SELL, "1", "2601.00", symbol="STETHUSDT"),
        RejectReason.INSUFFICIENT_BALANCE,
        ["STETH", "1", "spot wallet", "0 STETH free"],
    ),
    (
        "spot-sell-beyond-holding",
        "poor",
        new("m1", Side.SELL, "2.5", symbol="STETHUSDT"),
        RejectReason.INSUFFICIENT_BALANCE,
        ["2.5", "STETH", "2 STETH free"],
    ),
    (
        "spot-buy-beyond-cash",
        "poor",
        new("m1", Side.BUY, "0.5", symbol="STETHUSDT"),
        RejectReason.INSUFFICIENT_BALANCE,
        ["1300.5", "USDT", "1000 USDT free"],
    ),
]


@pytest.mark.parametrize(
    ("account", "order", "reason", "words"),
    [r[1:] for r in REJECTIONS],
    ids=[r[0] for r in REJECTIONS],
)
def test_rejection_names_value_and_leaves_everything_untouched(
    ex: SimExchange, account: str, order: NewOrder, reason: RejectReason, words: list[str]
) -> None:
    before = state(ex, account)
    with pytest.raises(OrderRejected) as info:
        ex.place(account, order, START)
    err = info.value
    assert err.reason is reason
    assert err.venue == "sim"
    assert err.client_order_id == order.client_order_id
    for word in words:
        assert word in err.message, f"{word!r} missing from {err.message!r}"
    assert state(ex, account) == before
    assert ex.drain() == []
    if order.client_order_id:
        with pytest.raises(UnknownOrder):
            ex.query(account, "BTCUSDT", order.client_order_id)


def test_duplicate_client_order_id_is_refused_and_the_first_order_stands(ex: SimExchange) -> None:
    first = ex.place("alice", new("dup", Side.BUY, "0.1", "59990.0"), START)
    ex.drain()
    before = state(ex, "alice")
    with pytest.raises(OrderRejected) as info:
        ex.place("alice", new("dup", Side.SELL, "0.2", "60010.0"), START)
    assert info.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert "'dup'" in info.value.message
    assert state(ex, "alice") == before
    assert ex.drain() == []
    assert ex.query("alice", "BTCUSDT", "dup") == first
    # Finished orders keep their id too; another account may use the same id.
    ex.cancel("alice", "BTCUSDT", "dup", START)
    with pytest.raises(OrderRejected) as again:
        ex.place("alice", new("dup", Side.BUY, "0.1", "59990.0"), START)
    assert again.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert ex.place("bob", new("dup", Side.BUY, "0.1", "59990.0"), START).status is OrderStatus.NEW


def test_unknown_account_is_refused(ex: SimExchange) -> None:
    before = state(ex, "alice")
    with pytest.raises(OrderRejected) as info:
        ex.place("mallory", new("m1", Side.BUY, "0.1", "59999.0"), START)
    assert info.value.reason is RejectReason.UNKNOWN_ACCOUNT
    assert "'mallory'" in info.value.message
    assert state(ex, "alice") == before
    assert ex.drain() == []
    with pytest.raises(OrderRejected) as snap:
        ex.account_snapshot("mallory", START)
    assert snap.value.reason is RejectReason.UNKNOWN_ACCOUNT


def test_reduce_only_larger_than_the_position_or_same_side_is_refused(ex: SimExchange) -> None:
    ex.place("alice", new("open", Side.BUY, "0.3"), START)
    before = state(ex, "alice")
    for order in (
        new("r1", Side.BUY, "0.1", "59999.0", reduce_only=True),  # would grow the long
        new("r2", Side.SELL, "0.4", "60001.0", reduce_only=True),  # would flip it
    ):
        with pytest.raises(OrderRejected) as info:
            ex.place("alice", order, START)
        assert info.value.reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
        assert "position 0.300" in info.value.message
    assert state(ex, "alice") == before
    assert ex.place("alice", new("r3", Side.SELL, "0.3", reduce_only=True), START).status is (
        OrderStatus.FILLED
    )


def test_margin_check_counts_resting_orders_that_already_close_the_position(
    ex: SimExchange,
) -> None:
    """A second closing order would grow the position once the first fills: it needs margin."""
    ex.place("poor", new("long", Side.BUY, "0.15"), START)  # IM 900 of 1000
    ex.place("poor", new("close", Side.SELL, "0.15", "60100.0"), START)
    before = state(ex, "poor")
    with pytest.raises(OrderRejected) as info:
        ex.place("poor", new("again", Side.SELL, "0.15", "60100.0"), START)
    assert info.value.reason is RejectReason.INSUFFICIENT_MARGIN
    assert state(ex, "poor") == before
    assert ex.account_snapshot("poor", START).available_margin > 0


# --- matching ----------------------------------------------------------------------------
def test_market_order_walks_levels_at_taker_fees(ex: SimExchange) -> None:
    market = ex.market
    assert isinstance(market, ScriptedMarket)
    r = ex.place("alice", new("mkt", Side.BUY, "0.8"), START)
    assert r.status is OrderStatus.FILLED
    assert r.cum_filled == D("0.8")
    notional = D("0.5") * D("60001.0") + D("0.3") * D("60002.0")
    assert r.avg_price == notional / D("0.8") == D("60001.375")
    assert r.cum_fee == notional * TAKER
    assert r.last_fill is not None and r.last_fill.liquidity is Liquidity.TAKER
    (pos,) = [p for p in ex.positions("alice", START) if p.symbol == "BTCUSDT"]
    assert pos.quantity == D("0.8")
    assert pos.entry_price == D("60001.375")
    assert ex.account_snapshot("alice", START).wallet_balance == D(100_000) - notional * TAKER
    # The background liquidity we took is reported to the market source.
    assert market.taken == [
        ("BTCUSDT", Side.SELL, ticks(BTC, "60001.0"), 500, START),
        ("BTCUSDT", Side.SELL, ticks(BTC, "60002.0"), 300, START),
    ]
    assert ex.books["BTCUSDT"].depth(Side.SELL, 1) == [(ticks(BTC, "60002.0"), 200)]


def test_market_order_beyond_the_book_expires_its_remainder(ex: SimExchange) -> None:
    r = ex.place("alice", new("big", Side.SELL, "9"), START)
    assert r.status is OrderStatus.EXPIRED
    assert r.cum_filled == D("8")
    assert ex.books["BTCUSDT"].best_bid() is None
    assert ex.open_orders("alice") == []


def test_limit_rests_then_fills_as_maker_on_trade_print_and_crossing_depth() -> None:
    ex, market = make_exchange()
    r = ex.place("alice", new("bid", Side.BUY, "1", "60000.0"), START)
    assert r.status is OrderStatus.NEW and r.cum_filled == 0
    assert [o.client_order_id for o in ex.open_orders("alice")] == ["bid"]
    assert ex.books["BTCUSDT"].best_bid() == ticks(BTC, "60000.0")
    ex.drain()

    # Someone sells 0.4 down to 60000.0: our bid is first in line at that price.
    market.push(TradePrint(20, "BTCUSDT", Side.SELL, ticks(BTC, "60000.0"), 400))
    ex.advance(20)
    (tape,) = [e for e in ex.drain() if isinstance(e, MarketTrade)]
    assert (tape.price, tape.quantity, tape.aggressor, tape.ts_ns) == (
        D("60000.0"),
        D("0.4"),
        Side.SELL,
        20,
    )
    q = ex.query("alice", "BTCUSDT", "bid")
    assert q.status is OrderStatus.PARTIALLY_FILLED
    assert q.cum_filled == D("0.4")
    assert q.last_fill is not None
    assert q.last_fill.liquidity is Liquidity.MAKER
    assert q.last_fill.fee == D("0.4") * D("60000.0") * MAKER
    assert q.venue_ts_ns == 20

    # Asks move down through our bid: the rest fills at our price, as maker.
    market.push(depth(30, "BTCUSDT", asks=[("59999.5", "2")]))
    ex.advance(30)
    q = ex.query("alice", "BTCUSDT", "bid")
    assert q.status is OrderStatus.FILLED
    assert q.cum_filled == D("1")
    assert q.avg_price == D("60000.0")
    assert q.cum_fee == D("60000.0") * MAKER
    assert q.last_fill is not None
    assert q.last_fill.liquidity is Liquidity.MAKER
    assert q.last_fill.quantity == D("0.6")
    assert ex.open_orders("alice") == []
    # What the crossing depth had left rests as the new best ask.
    assert ex.books["BTCUSDT"].depth(Side.SELL, 1) == [(ticks(BTC, "59999.5"), 1400)]
    events = ex.drain()
    prints = [e for e in events if isinstance(e, MarketTrade)]
    assert [(p.price, p.quantity, p.aggressor) for p in prints] == [
        (D("60000.0"), D("0.6"), Side.SELL)
    ]
    assert str(prints[0].trade_id) == q.last_fill.trade_id


def test_ioc_fills_what_it_can_and_expires_the_rest(ex: SimExchange) -> None:
    r = ex.place("alice", new("ioc", Side.BUY, "0.7", "60001.0", tif=TimeInForce.IOC), START)
    assert r.status is OrderStatus.EXPIRED
    assert r.cum_filled == D("0.5")
    assert r.avg_price == D("60001.0")
    assert ex.open_orders("alice") == []
    assert ex.books["BTCUSDT"].best_ask() == ticks(BTC, "60002.0")


def test_fok_is_all_or_nothing(ex: SimExchange) -> None:
    before = state(ex, "alice")
    r = ex.place("alice", new("fok1", Side.BUY, "1.1", "60002.0", tif=TimeInForce.FOK), START)
    assert r.status is OrderStatus.EXPIRED
    assert r.reject_reason is RejectReason.FOK_NOT_FILLABLE
    assert r.cum_filled == 0
    assert r.avg_price is None
    after = state(ex, "alice")
    assert after[0] == before[0]  # wallet, margin, positions
    assert after[2] == before[2]  # books
    assert ex.user_trades("alice", "BTCUSDT") == []
    assert not [e for e in ex.drain() if isinstance(e, MarketTrade)]

    r = ex.place("alice", new("fok2", Side.BUY, "1", "60002.0", tif=TimeInForce.FOK), START)
    assert r.status is OrderStatus.FILLED
    assert r.cum_filled == D("1")
    assert r.avg_price == D("60001.5")


def test_post_only_rests_as_maker(ex: SimExchange) -> None:
    r = ex.place("alice", new("po", Side.SELL, "0.2", "60000.5", tif=TimeInForce.POST_ONLY), START)
    assert r.status is OrderStatus.NEW
    assert ex.books["BTCUSDT"].best_ask() == ticks(BTC, "60000.5")


def test_self_trade_is_prevented_but_two_accounts_trade(ex: SimExchange) -> None:
    ask = ex.place("alice", new("ask", Side.SELL, "0.3", "60000.5"), START)
    ex.drain()
    own = ex.place("alice", new("own", Side.BUY, "0.2"), START)
    assert own.status is OrderStatus.EXPIRED
    assert own.cum_filled == 0
    assert own.reject_message is not None and "self-trade" in own.reject_message
    assert ex.query("alice", "BTCUSDT", "ask") == ask  # the maker is untouched
    assert not [e for e in ex.drain() if isinstance(e, MarketTrade)]

    taker = ex.place("bob", new("take", Side.BUY, "0.2"), START)
    assert taker.status is OrderStatus.FILLED
    assert taker.avg_price == D("60000.5")
    maker = ex.query("alice", "BTCUSDT", "ask")
    assert maker.status is OrderStatus.PARTIALLY_FILLED
    assert maker.cum_filled == D("0.2")
    assert taker.last_fill is not None and maker.last_fill is not None
    assert taker.last_fill.trade_id == maker.last_fill.trade_id
    assert taker.last_fill.liquidity is Liquidity.TAKER
    assert maker.last_fill.liquidity is Liquidity.MAKER
    assert taker.last_fill.fee == D("0.2") * D("60000.5") * TAKER
    assert maker.last_fill.fee == D("0.2") * D("60000.5") * MAKER
    (bob_trade,) = ex.user_trades("bob", "BTCUSDT")
    assert (bob_trade.client_order_id, bob_trade.side) == ("take", Side.BUY)
    (alice_trade,) = ex.user_trades("alice", "BTCUSDT")
    assert (alice_trade.client_order_id, alice_trade.side) == ("ask", Side.SELL)
    assert alice_trade.fill.trade_id == bob_trade.fill.trade_id
    positions = {a: ex.positions(a, START)[0].quantity for a in ("alice", "bob")}
    assert positions == {"alice": D("-0.2"), "bob": D("0.2")}
    (print_,) = [e for e in ex.drain() if isinstance(e, MarketTrade)]
    assert (str(print_.trade_id), print_.aggressor, print_.quantity) == (
        taker.last_fill.trade_id,
        Side.BUY,
        D("0.2"),
    )


def test_self_trade_prevention_stops_a_limit_after_what_it_could_trade(ex: SimExchange) -> None:
    ex.place("alice", new("ask", Side.SELL, "0.3", "60001.5"), START)
    r = ex.place("alice", new("sweep", Side.BUY, "1", "60002.0"), START)
    assert r.status is OrderStatus.EXPIRED
    assert r.cum_filled == D("0.5")  # the 60001.0 level, then our own ask stops it
    assert [o.client_order_id for o in ex.open_orders("alice")] == ["ask"]


def test_cancel_query_and_open_orders(ex: SimExchange) -> None:
    a = ex.place("alice", new("a", Side.BUY, "0.1", "59990.0"), START)
    b = ex.place("alice", new("b", Side.SELL, "0.1", "60010.0"), START)
    ex.place("bob", new("a", Side.BUY, "0.1", "59991.0"), START)
    assert [o.client_order_id for o in ex.open_orders("alice")] == ["a", "b"]
    assert [o.client_order_id for o in ex.open_orders("alice", "BTCUSDT")] == ["a", "b"]
    assert ex.open_orders("alice", "STETHUSDT") == []
    assert ex.query("alice", "BTCUSDT", "a") == a
    assert ex.query_by_id("alice", "BTCUSDT", int(b.order_id)) == b
    assert ex.query("bob", "BTCUSDT", "a").price == D("59991.0")

    total = ex.books["BTCUSDT"].total_qty()
    c = ex.cancel("alice", "BTCUSDT", "a", START)
    assert c.status is OrderStatus.CANCELED
    assert c.order_id == a.order_id
    assert ex.books["BTCUSDT"].total_qty() == total - 100
    assert ex.query("alice", "BTCUSDT", "a").status is OrderStatus.CANCELED
    assert [o.client_order_id for o in ex.open_orders("alice")] == ["b"]

    with pytest.raises(UnknownOrder, match="already CANCELED"):
        ex.cancel("alice", "BTCUSDT", "a", START)
    with pytest.raises(UnknownOrder, match="'nope'"):
        ex.cancel("alice", "BTCUSDT", "nope", START)
    with pytest.raises(UnknownOrder):
        ex.query("alice", "BTCUSDT", "nope")
    with pytest.raises(UnknownOrder):
        ex.query("alice", "STETHUSDT", "b")  # wrong symbol
    with pytest.raises(UnknownOrder):
        ex.query_by_id("bob", "BTCUSDT", int(b.order_id))  # another account's order
    with pytest.raises(UnknownOrder):
        ex.query_by_id("alice", "BTCUSDT", 999)

    filled = ex.place("alice", new("f", Side.BUY, "0.1"), START)
    assert filled.status is OrderStatus.FILLED
    with pytest.raises(UnknownOrder, match="already FILLED"):
        ex.cancel("alice", "BTCUSDT", "f", START)

    done = ex.cancel_all("alice", "BTCUSDT", START)
    assert [(r.client_order_id, r.status) for r in done] == [("b", OrderStatus.CANCELED)]
    assert ex.open_orders("alice") == []
    assert [o.client_order_id for o in ex.open_orders("bob")] == ["a"]
    assert [t.client_order_id for t in ex.user_trades("alice", "BTCUSDT")] == ["f"]
    assert ex.user_trades("alice", "STETHUSDT") == []


# --- account arithmetic ------------------------------------------------------------------
def move_btc(market: ScriptedMarket, ex: SimExchange, ts: int, bid: str, ask: str) -> None:
    """Replace the BTC background book by one level each side at `bid`/`ask`."""
    book = ex.books["BTCUSDT"]
    clear_bids = [(BTC.tick * p, D(0)) for p, _ in book.depth(Side.BUY, 100)]
    clear_asks = [(BTC.tick * p, D(0)) for p, _ in book.depth(Side.SELL, 100)]
    market.push(
        depth(ts, "BTCUSDT", bids=clear_bids, asks=clear_asks),
        depth(ts, "BTCUSDT", bids=[(bid, "10")], asks=[(ask, "10")]),
    )
    ex.advance(ts)


def test_perp_partial_close_realises_pnl_and_a_flip_reopens_at_the_fill() -> None:
    ex, market = make_exchange()
    ex.place("alice", new("buy", Side.BUY, "0.5"), START)  # 0.5 @ 60001.0
    fee1 = D("0.5") * D("60001.0") * TAKER
    move_btc(market, ex, 20, "61000.0", "61002.0")

    ex.place("alice", new("sell1", Side.SELL, "0.2"), 20)  # 0.2 @ 61000.0
    fee2 = D("0.2") * D("61000.0") * TAKER
    snap = ex.account_snapshot("alice", 20)
    realised = D("0.2") * (D("61000.0") - D("60001.0"))
    assert snap.wallet_balance == D(100_000) + realised - fee1 - fee2
    (pos,) = snap.positions
    assert (pos.quantity, pos.entry_price) == (D("0.3"), D("60001.0"))
    assert pos.mark_price == D("61001.0")
    assert pos.unrealized_pnl == D("0.3") * (D("61001.0") - D("60001.0"))
    assert pos.initial_margin == D("0.3") * D("61001.0") / 10

    ex.place("alice", new("sell2", Side.SELL, "0.5"), 20)  # closes 0.3, opens 0.2 short
    fee3 = D("0.5") * D("61000.0") * TAKER
    snap = ex.account_snapshot("alice", 20)
    realised += D("0.3") * (D("61000.0") - D("60001.0"))
    assert snap.wallet_balance == D(100_000) + realised - fee1 - fee2 - fee3
    (pos,) = snap.positions
    assert (pos.quantity, pos.entry_price) == (D("-0.2"), D("61000.0"))
    assert pos.unrealized_pnl == D("-0.2") * (D("61001.0") - D("61000.0"))

    # Short covered at a loss.
    move_btc(market, ex, 30, "61499.0", "61500.0")
    ex.place("alice", new("cover", Side.BUY, "0.2"), 30)  # 0.2 @ 61500.0
    fee4 = D("0.2") * D("61500.0") * TAKER
    realised += D("0.2") * (D("61000.0") - D("61500.0"))
    snap = ex.account_snapshot("alice", 30)
    assert snap.wallet_balance == D(100_000) + realised - fee1 - fee2 - fee3 - fee4
    assert snap.unrealized_pnl == 0
    assert snap.position_initial_margin == 0
    assert snap.available_margin == snap.wallet_balance
    assert snap.positions[0].quantity == 0


def test_available_margin_counts_only_open_orders_that_grow_the_position() -> None:
    ex, market = make_exchange()
    ex.place("alice", new("buy", Side.BUY, "0.6", "60002.0"), START)  # 0.5 @ 60001, 0.1 @ 60002
    entry = (D("0.5") * D("60001.0") + D("0.1") * D("60002.0")) / D("0.6")
    move_btc(market, ex, 20, "61000.0", "61002.0")
    ex.place("alice", new("ask", Side.SELL, "1", "61010.0"), 20)  # 0.6 closes, 0.4 grows
    ex.place("alice", new("bid", Side.BUY, "0.1", "60990.0"), 20)  # all of it grows
    ex.place("alice", new("ro", Side.SELL, "0.1", "61020.0", reduce_only=True), 20)  # none
    snap = ex.account_snapshot("alice", 20)
    mark = D("61001.0")
    assert snap.unrealized_pnl == D("0.6") * (mark - entry)
    assert snap.position_initial_margin == D("0.6") * mark / 10
    assert snap.open_order_initial_margin == (
        D("61010.0") * D("0.4") / 10 + D("60990.0") * D("0.1") / 10
    )
    assert snap.available_margin == (
        snap.wallet_balance
        + snap.unrealized_pnl
        - snap.position_initial_margin
        - snap.open_order_initial_margin
    )
    (usdt,) = [b for b in snap.balances if b.asset == "USDT"]
    assert usdt.available == snap.available_margin


def test_leverage_scales_initial_margin(ex: SimExchange) -> None:
    ex.place("alice", new("buy", Side.BUY, "0.5"), START)
    mark = (D("59999.0") + D("60002.0")) / 2
    assert ex.account_snapshot("alice", START).position_initial_margin == D("0.5") * mark / 10
    ex.set_leverage("alice", 5)
    assert ex.account_snapshot("alice", START).position_initial_margin == D("0.5") * mark / 5
    with pytest.raises(ValueError, match="leverage"):
        ex.set_leverage("alice", 0)


# --- outbox ------------------------------------------------------------------------------
def test_outbox_reports_each_order_in_order_then_prints_and_tickers(ex: SimExchange) -> None:
    ex.place("alice", new("ask", Side.SELL, "0.2", "60000.5"), START)
    ex.place("bob", new("sweep", Side.BUY, "0.8"), START)  # 0.2 alice, 0.5 @ 60001, 0.1 @ 60002
    events = ex.drain()
    bob = reports(events, "bob")
    assert [r.status for r in bob] == [
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert [r.cum_filled for r in bob] == [D(0), D("0.2"), D("0.7"), D("0.8")]
    assert [r.last_fill.quantity for r in bob[1:] if r.last_fill] == [D("0.2"), D("0.5"), D("0.1")]
    assert bob[-1].cum_fee == sum((r.last_fill.fee for r in bob[1:] if r.last_fill), D(0))
    alice = reports(events, "alice")
    assert [(r.status, r.cum_filled) for r in alice] == [
        (OrderStatus.NEW, D(0)),
        (OrderStatus.FILLED, D("0.2")),
    ]
    prints = [e for e in events if isinstance(e, MarketTrade)]
    assert [(p.price, p.quantity, p.aggressor) for p in prints] == [
        (D("60000.5"), D("0.2"), Side.BUY),
        (D("60001.0"), D("0.5"), Side.BUY),
        (D("60002.0"), D("0.1"), Side.BUY),
    ]
    fills = [r.last_fill.trade_id for r in bob[1:] if r.last_fill]
    assert [str(p.trade_id) for p in prints] == fills
    # Each print follows the reports of the fills it records.
    index = {id(e): i for i, e in enumerate(events)}
    for p in prints:
        (fill_report,) = [
            e
            for e in events
            if isinstance(e, AccountReport)
            and e.account_id == "bob"
            and e.report.last_fill is not None
            and e.report.last_fill.trade_id == str(p.trade_id)
        ]
        assert index[id(fill_report)] < index[id(p)]
    # The sweep moved the best ask: a ticker says so.
    tickers = [e for e in events if isinstance(e, BookTicker)]
    assert tickers, "an order that changed the top of book produced no BookTicker"
    assert (tickers[-1].bid, tickers[-1].ask, tickers[-1].ask_qty) == (
        D("59999.0"),
        D("60002.0"),
        D("0.4"),
    )
    assert events.index(tickers[-1]) == len(events) - 1


def test_resting_inside_the_spread_and_cancelling_publish_the_top_of_book(ex: SimExchange) -> None:
    ex.place("alice", new("bid", Side.BUY, "0.3", "60000.0"), START)
    (ticker,) = [e for e in ex.drain() if isinstance(e, BookTicker)]
    assert (ticker.bid, ticker.bid_qty) == (D("60000.0"), D("0.3"))
    ex.cancel("alice", "BTCUSDT", "bid", START)
    (ticker,) = [e for e in ex.drain() if isinstance(e, BookTicker)]
    assert (ticker.bid, ticker.bid_qty) == (D("59999.0"), D("1"))
    # An order away from the touch changes no ticker.
    ex.place("alice", new("deep", Side.BUY, "0.3", "59000.0"), START)
    assert not [e for e in ex.drain() if isinstance(e, BookTicker)]


def test_market_updates_publish_tickers_and_prints() -> None:
    ex, market = make_exchange()
    market.push(
        depth(20, "BTCUSDT", bids=[("59999.5", "0.7")]),
        TradePrint(25, "BTCUSDT", Side.BUY, ticks(BTC, "60001.0"), 200),
    )
    ex.advance(30)
    events = ex.drain()
    assert [type(e) for e in events] == [MarketTrade, BookTicker]
    trade, ticker = events
    assert isinstance(trade, MarketTrade) and isinstance(ticker, BookTicker)
    assert (trade.price, trade.quantity, trade.aggressor, trade.ts_ns) == (
        D("60001.0"),
        D("0.2"),
        Side.BUY,
        25,
    )
    assert (ticker.bid, ticker.bid_qty, ticker.ask, ticker.ask_qty, ticker.ts_ns) == (
        D("59999.5"),
        D("0.7"),
        D("60001.0"),
        D("0.3"),
        30,
    )
    assert ex.updates_applied == 4  # two at start, two here
    book = ex.book_snapshot("BTCUSDT", 2, 30)
    assert book.bids == [(D("59999.5"), D("0.7")), (D("59999.0"), D("1"))]
    assert book.mid == D("60000.25")


# --- conservation, over random order flow ------------------------------------------------
ACCOUNTS = ("alice", "bob", "carol")

OPS = {
    "place": st.tuples(
        st.just("place"),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(Side),
        st.integers(2, 400),  # lots of 0.001
        # Ticks from 60000.0, or None (about one in four) for a market order.
        st.integers(-8, 8).map(lambda k: None if abs(k) > 6 else k),
        st.sampled_from(TimeInForce),
        st.integers(0, 9).map(lambda k: k == 9),  # reduce only, now and then
    ),
    "cancel": st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 50)),
    "depth": st.tuples(
        st.just("depth"), st.sampled_from(Side), st.integers(-12, 12), st.integers(0, 800)
    ),
    "trade": st.tuples(
        st.just("trade"), st.sampled_from(Side), st.integers(-12, 12), st.integers(1, 800)
    ),
}
random_op = st.sampled_from(["place"] * 4 + ["cancel", "depth", "trade"]).flatmap(OPS.__getitem__)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(random_op, min_size=15, max_size=50))
def test_random_order_flow_conserves_quantity_and_money(ops: list[tuple]) -> None:
    market = ScriptedMarket([BTC])
    mid = ticks(BTC, "60000.0")
    # Deep far levels keep both sides of the book, and so the mark, in place.
    market.push(DepthUpdate(1, "BTCUSDT", [(mid - 400, 100_000)], [(mid + 400, 100_000)]))
    ex = SimExchange("sim", market)
    initial = {"alice": D(5_000), "bob": D(20_000), "carol": D(200_000)}
    for a, cash in initial.items():
        ex.open_account(AccountSpec(account_id=a, balances={"USDT": cash}, leverage=5))
    now = 2
    ex.advance(now)
    events: list = ex.drain()
    placed: dict[str, list[str]] = defaultdict(list)

    for n, op in enumerate(ops):
        now += 1
        match op:
            case ("place", account, side, qty, offset, tif, reduce_only):
                limit = None if offset is None else BTC.tick * (mid + offset)
                if limit is None and tif in (TimeInForce.FOK, TimeInForce.POST_ONLY):
                    tif = TimeInForce.IOC
                order = NewOrder(
                    client_order_id=f"o{n}",
                    symbol="BTCUSDT",
                    side=side,
                    type=OrderType.MARKET if limit is None else OrderType.LIMIT,
                    quantity=BTC.lot * qty,
                    price=limit,
                    time_in_force=tif,
                    reduce_only=reduce_only,
                )
                ex.advance(now)
                before = (ex.account_snapshot(account, now), ex.books["BTCUSDT"].total_qty())
                try:
                    ex.place(account, order, now)
                    placed[account].append(order.client_order_id)
                except OrderRejected:
                    assert (ex.account_snapshot(account, now), ex.books["BTCUSDT"].total_qty()) == (
                        before
                    )
            case ("cancel", account, k):
                mine = ex.open_orders(account)
                if mine:
                    ex.cancel(account, "BTCUSDT", mine[k % len(mine)].client_order_id, now)
            case ("depth", side, offset, qty):
                market.push(
                    DepthUpdate(
                        now,
                        "BTCUSDT",
                        *(
                            ([(mid + offset, qty)], [])
                            if side is Side.BUY
                            else ([], [(mid + offset, qty)])
                        ),
                    )
                )
            case ("trade", side, offset, qty):
                market.push(TradePrint(now, "BTCUSDT", side, mid + offset, qty))
        ex.advance(now)
        events.extend(ex.drain())

    book = ex.books["BTCUSDT"]
    mark = ex.mark_price("BTCUSDT")
    assert mark is not None
    # Every trade between two accounts: one maker, one taker, same price and quantity.
    by_trade: dict[int, list] = defaultdict(list)
    for a in ACCOUNTS:
        for t in ex.user_trades(a, "BTCUSDT"):
            by_trade[t.fill.trade_id].append(t)
    for fills in by_trade.values():
        assert len(fills) <= 2
        if len(fills) == 2:
            x, y = fills
            assert {x.side, y.side} == {Side.BUY, Side.SELL}
            assert {x.fill.liquidity, y.fill.liquidity} == {Liquidity.MAKER, Liquidity.TAKER}
            assert (x.fill.price, x.fill.quantity) == (y.fill.price, y.fill.quantity)
    prints = {str(e.trade_id): e for e in events if isinstance(e, MarketTrade)}
    total_change = D(0)
    for a in ACCOUNTS:
        snap = ex.account_snapshot(a, now)
        trades = ex.user_trades(a, "BTCUSDT")
        fees = sum((t.fill.fee for t in trades), D(0))
        position = sum((t.side.sign * t.fill.quantity for t in trades), D(0))
        pnl = sum((t.side.sign * t.fill.quantity * (mark - t.fill.price) for t in trades), D(0))
        # Mark-to-market: wallet + uPnL moved by exactly −fees + what each fill made at the mark.
        change = snap.wallet_balance + snap.unrealized_pnl - initial[a]
        assert abs(change - (pnl - fees)) < D("1e-12"), (a, change, pnl - fees)
        total_change += change
        assert sum((p.quantity for p in snap.positions), D(0)) == position
        assert snap.available_margin == (
            snap.wallet_balance
            + snap.unrealized_pnl
            - snap.position_initial_margin
            - snap.open_order_initial_margin
        )
        # Each order: its cumulative fields are the sum of its fills, and the book holds its rest.
        for coid in placed[a]:
            r = ex.query(a, "BTCUSDT", coid)
            own = [t.fill for t in trades if t.client_order_id == coid]
            assert r.cum_filled == sum((f.quantity for f in own), D(0))
            assert r.cum_fee == sum((f.fee for f in own), D(0))
            resting = book.get(int(r.order_id))
            if r.status.is_terminal:
                assert resting is None
            else:
                assert resting is not None and BTC.lot * resting.qty == r.quantity - r.cum_filled
        # Its stream: NEW first, cumulative fields never fall, one terminal report, last.
        per_order: dict[str, list[ExecutionReport]] = defaultdict(list)
        for r in reports(events, a):
            per_order[r.client_order_id].append(r)
        assert set(per_order) == set(placed[a])
        for coid, seq in per_order.items():
            assert seq[0].status is OrderStatus.NEW
            assert all(x.cum_filled <= y.cum_filled for x, y in pairwise(seq))
            terminal = [r for r in seq if r.status.is_terminal]
            assert len(terminal) <= 1 and (not terminal or terminal[0] is seq[-1])
            assert seq[-1] == ex.query(a, "BTCUSDT", coid)
        # Every fill is on the tape under its trade id, at its price and quantity.
        for t in trades:
            p = prints.get(t.fill.trade_id)
            if p is not None:
                assert (p.price, p.quantity) == (t.fill.price, t.fill.quantity)
    # Across accounts, trades with each other cancel out: only fees and fills against the
    # background market move the total.
    market_fills = [
        t
        for a in ACCOUNTS
        for t in ex.user_trades(a, "BTCUSDT")
        if len(by_trade[t.fill.trade_id]) == 1
    ]
    all_fees = sum((t.fill.fee for a in ACCOUNTS for t in ex.user_trades(a, "BTCUSDT")), D(0))
    vs_market = sum(
        (t.side.sign * t.fill.quantity * (mark - t.fill.price) for t in market_fills), D(0)
    )
    assert abs(total_change - (vs_market - all_fees)) < D("1e-12")
    participant = sum((o.qty for o in book.orders() if o.owner != MARKET), 0)
    assert participant == sum(
        lots(BTC, r.quantity - r.cum_filled) for a in ACCOUNTS for r in ex.open_orders(a)
    )
