"""Spot in the simulated exchange: the spot wallet, its locks, fills and fees, apart from
the USD-M futures wallet."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_exchange import BTC, STETH, depth, lots, new, ticks
from venues.errors import OrderRejected
from venues.model import Liquidity, OrderStatus, RejectReason, Side, TimeInForce
from venues.sim.exchange import SPOT_FEES, AccountSpec, SimExchange, Wallet
from venues.sim.market import ScriptedMarket, TradePrint

D = Decimal
FEE = D("0.001")  # Binance spot's regular tier, maker and taker alike
START = 10


def spot(ex: SimExchange, account: str) -> dict[str, tuple[Decimal, Decimal]]:
    """The spot wallet as {asset: (free, locked)}."""
    return {
        b.asset: (b.available, b.wallet - b.available)
        for b in ex.account_snapshot(account, ex.now_ns).spot_balances
    }


def make(**spot_wallets: dict[str, str]) -> tuple[SimExchange, ScriptedMarket]:
    """stETH spot 2599/2601 (100 a side) and BTC perp 59999/60001; one account per wallet
    given, each with 100,000 USDT in its futures wallet."""
    market = ScriptedMarket([BTC, STETH])
    market.push(
        depth(1, "BTCUSDT", bids=[("59999.0", "1")], asks=[("60001.0", "1")]),
        depth(1, "STETHUSDT", bids=[("2599.00", "100")], asks=[("2601.00", "100")]),
    )
    ex = SimExchange("sim", market)
    for account, wallet in spot_wallets.items():
        ex.open_account(
            AccountSpec(
                account_id=account,
                balances={"USDT": D(100_000)},
                spot_balances={a: D(q) for a, q in wallet.items()},
            )
        )
    ex.advance(START)
    ex.drain()
    return ex, market


def test_the_spot_fees_are_binance_spot_regular_tier() -> None:
    assert SPOT_FEES.rate(Liquidity.MAKER) == SPOT_FEES.rate(Liquidity.TAKER) == FEE


def test_a_resting_buy_locks_its_price_times_quantity_of_quote_and_a_cancel_frees_it() -> None:
    ex, _ = make(alice={"USDT": "10000"})
    r = ex.place("alice", new("bid", Side.BUY, "2", "2590.00", symbol="STETHUSDT"), START)
    assert r.status is OrderStatus.NEW
    assert spot(ex, "alice")["USDT"] == (D("4820.00"), D("5180.00"))
    assert spot(ex, "alice")["STETH"] == (0, 0)
    ex.cancel("alice", "STETHUSDT", "bid", START)
    assert spot(ex, "alice")["USDT"] == (D(10_000), 0)


def test_a_market_buy_pays_the_quote_and_its_fee_is_charged_in_the_base_it_receives() -> None:
    ex, _ = make(alice={"USDT": "10000"})
    r = ex.place("alice", new("buy", Side.BUY, "2", symbol="STETHUSDT"), START)
    assert (r.status, r.cum_filled, r.avg_price) == (OrderStatus.FILLED, D(2), D("2601.00"))
    fill = r.last_fill
    assert fill is not None and fill.liquidity is Liquidity.TAKER
    assert (fill.fee, fill.fee_asset) == (D("0.002"), "STETH")  # 0.1 % of the 2 received
    assert (r.cum_fee, r.fee_asset) == (D("0.002"), "STETH")
    assert spot(ex, "alice")["USDT"] == (D(10_000) - D("5202.00"), 0)
    assert spot(ex, "alice")["STETH"] == (D("1.998"), 0)


def test_a_sell_locks_the_base_and_its_fill_pays_the_quote_less_the_fee_in_quote() -> None:
    ex, market = make(alice={"STETH": "3"})
    ex.place("alice", new("ask", Side.SELL, "2", "2600.00", symbol="STETHUSDT"), START)
    assert spot(ex, "alice")["STETH"] == (D(1), D(2))
    # Someone buys 1.5 up to 2600: our ask is first in line there, and fills as maker.
    market.push(TradePrint(20, "STETHUSDT", Side.BUY, ticks(STETH, "2600.00"), 15_000))
    ex.advance(20)
    q = ex.query("alice", "STETHUSDT", "ask")
    assert (q.status, q.cum_filled) == (OrderStatus.PARTIALLY_FILLED, D("1.5"))
    assert q.last_fill is not None and q.last_fill.liquidity is Liquidity.MAKER
    assert (q.last_fill.fee, q.last_fill.fee_asset) == (D("3.9"), "USDT")  # 0.1 % of 3,900
    assert spot(ex, "alice")["STETH"] == (D(1), D("0.5"))
    assert spot(ex, "alice")["USDT"] == (D("3896.1"), 0)


def test_a_limit_buy_filled_below_its_price_frees_the_difference_at_once() -> None:
    ex, _ = make(alice={"USDT": "300000"})
    # 2 at up to 2610: 100 rest at 2601, so it all fills there; 9 a unit comes back.
    r = ex.place("alice", new("buy", Side.BUY, "2", "2610.00", symbol="STETHUSDT"), START)
    assert r.status is OrderStatus.FILLED and r.avg_price == D("2601.00")
    assert spot(ex, "alice")["USDT"] == (D(300_000) - D("5202.00"), 0)
    # Partly filled: 98 left at 2601 fill, 2 rest, locked at the order's own price.
    ex.place("alice", new("sweep", Side.BUY, "100", "2605.00", symbol="STETHUSDT"), START)
    paid = D("5202.00") + D(98) * D("2601.00")
    assert spot(ex, "alice")["USDT"] == (D(300_000) - paid - D("5210.00"), D("5210.00"))


def test_what_an_ioc_or_a_market_order_cannot_fill_is_released_when_it_expires() -> None:
    ex, _ = make(alice={"USDT": "1000000", "STETH": "500"})
    ioc = ex.place(
        "alice",
        new("ioc", Side.BUY, "150", "2601.00", symbol="STETHUSDT", tif=TimeInForce.IOC),
        START,
    )
    assert (ioc.status, ioc.cum_filled) == (OrderStatus.EXPIRED, D(100))
    assert spot(ex, "alice")["USDT"] == (D(1_000_000) - D(100) * D("2601.00"), 0)
    sold = ex.place("alice", new("dump", Side.SELL, "300", symbol="STETHUSDT"), START)
    assert (sold.status, sold.cum_filled) == (OrderStatus.EXPIRED, D(100))
    assert spot(ex, "alice")["STETH"] == (D(500) + D("99.9") - D(100), 0)


@pytest.mark.parametrize(
    ("wallet", "order", "words"),
    [
        ({}, new("s", Side.SELL, "1", "2601.00", symbol="STETHUSDT"), ["1 STETH", "0 STETH"]),
        (
            {"USDT": "5000"},
            new("b", Side.BUY, "2", "2600.00", symbol="STETHUSDT"),
            ["5200 USDT", "5000 USDT free"],
        ),
        (  # a market buy needs what walking the book costs: 2 at 2601
            {"USDT": "5201.99"},
            new("m", Side.BUY, "2", symbol="STETHUSDT"),
            ["5202 USDT", "5201.99 USDT free"],
        ),
        ({"STETH": "1.9999"}, new("s", Side.SELL, "2", symbol="STETHUSDT"), ["1.9999 STETH"]),
    ],
)
def test_an_order_the_spot_wallet_cannot_pay_for_is_refused_and_changes_nothing(
    wallet: dict[str, str], order, words: list[str]
) -> None:
    ex, _ = make(alice=wallet)
    before = (ex.account_snapshot("alice", START), ex.books["STETHUSDT"].total_qty())
    with pytest.raises(OrderRejected) as info:
        ex.place("alice", order, START)
    assert info.value.reason is RejectReason.INSUFFICIENT_BALANCE
    for word in words:
        assert word in info.value.message, info.value.message
    assert (ex.account_snapshot("alice", START), ex.books["STETHUSDT"].total_qty()) == before
    assert ex.drain() == []


def test_what_open_orders_lock_is_not_free_for_the_next_one() -> None:
    ex, _ = make(alice={"USDT": "6000", "STETH": "2"})
    ex.place("alice", new("a1", Side.SELL, "1.5", "2605.00", symbol="STETHUSDT"), START)
    with pytest.raises(OrderRejected) as info:
        ex.place("alice", new("a2", Side.SELL, "1", "2606.00", symbol="STETHUSDT"), START)
    assert info.value.reason is RejectReason.INSUFFICIENT_BALANCE
    ex.place("alice", new("b1", Side.BUY, "2", "2590.00", symbol="STETHUSDT"), START)
    with pytest.raises(OrderRejected):
        ex.place("alice", new("b2", Side.BUY, "1", "2590.00", symbol="STETHUSDT"), START)
    ex.cancel("alice", "STETHUSDT", "a1", START)
    ex.place("alice", new("a3", Side.SELL, "2", "2606.00", symbol="STETHUSDT"), START)
    assert spot(ex, "alice")["STETH"] == (0, D(2))


def test_a_post_only_order_that_would_take_is_refused_and_locks_nothing() -> None:
    ex, _ = make(alice={"USDT": "10000"})
    crossing = new("pm", Side.BUY, "1", "2601.00", symbol="STETHUSDT", tif=TimeInForce.POST_ONLY)
    with pytest.raises(OrderRejected) as info:
        ex.place("alice", crossing, START)
    assert info.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
    assert spot(ex, "alice")["USDT"] == (D(10_000), 0)
    maker = new("pm2", Side.BUY, "1", "2600.00", symbol="STETHUSDT", tif=TimeInForce.POST_ONLY)
    assert ex.place("alice", maker, START).status is OrderStatus.NEW
    assert spot(ex, "alice")["USDT"] == (D(7_400), D(2_600))


def test_a_reduce_only_spot_order_is_refused_spot_has_no_position() -> None:
    ex, _ = make(alice={"STETH": "5"})
    order = new("ro", Side.SELL, "1", symbol="STETHUSDT", reduce_only=True)
    with pytest.raises(OrderRejected) as info:
        ex.place("alice", order, START)
    assert info.value.reason is RejectReason.VENUE_REFUSED
    assert "reduce-only is for perpetuals" in info.value.message
    assert spot(ex, "alice")["STETH"] == (D(5), 0)


def test_spot_trades_from_the_spot_wallet_only_and_has_no_positions_or_margin() -> None:
    ex, _ = make(alice={"USDT": "10000"})
    futures = ex.account_snapshot("alice", START)
    ex.place("alice", new("b", Side.BUY, "1", symbol="STETHUSDT"), START)
    ex.place("alice", new("r", Side.BUY, "1", "2590.00", symbol="STETHUSDT"), START)
    after = ex.account_snapshot("alice", START)
    assert after.balances == futures.balances and after.available_margin == D(100_000)
    assert after.open_order_initial_margin == 0 and after.positions == []
    assert ex.positions("alice", START) == []
    # The futures wallet's 100,000 USDT do not pay for spot.
    ex, _ = make(bob={})
    with pytest.raises(OrderRejected) as info:
        ex.place("bob", new("b", Side.BUY, "1", symbol="STETHUSDT"), START)
    assert info.value.reason is RejectReason.INSUFFICIENT_BALANCE
    # And the spot wallet's do not margin a perpetual.
    ex, _ = make(carol={"USDT": "1000000"})
    ex.deposit("carol", "USDT", D(-100_000))
    with pytest.raises(OrderRejected) as info:
        ex.place("carol", new("p", Side.BUY, "1", "60001.0"), START)
    assert info.value.reason is RejectReason.INSUFFICIENT_MARGIN


def test_a_deposit_reaches_the_wallet_it_names() -> None:
    ex, _ = make(alice={})
    ex.deposit("alice", "STETH", D(5), Wallet.SPOT)
    ex.deposit("alice", "USDT", D(1), Wallet.SPOT)
    ex.deposit("alice", "USDT", D(7))
    assert spot(ex, "alice")["STETH"] == (D(5), 0) and spot(ex, "alice")["USDT"] == (D(1), 0)
    assert ex.account_snapshot("alice", START).wallet_balance == D(100_007)


def test_the_spot_wallet_lists_the_spot_instruments_assets_even_at_zero() -> None:
    ex, _ = make(alice={"DOGE": "3"})
    assert [(b.asset, b.wallet) for b in ex.account_snapshot("alice", START).spot_balances] == [
        ("DOGE", D(3)),
        ("STETH", D(0)),
        ("USDT", D(0)),
    ]


def test_a_negative_or_infinite_opening_balance_is_refused() -> None:
    ex, _ = make()
    for field, amounts in (("spot_balances", {"USDT": D(-1)}), ("balances", {"X": D("inf")})):
        spec = {"balances": {"USDT": D(1)}, field: amounts}
        with pytest.raises(ValueError, match=rf"{field}\['"):
            ex.open_account(AccountSpec(account_id="z", **spec))  # type: ignore[arg-type]


def test_two_accounts_trading_with_each_other_conserve_every_asset() -> None:
    ex, market = make(alice={"USDT": "50000", "STETH": "10"}, bob={"USDT": "40000", "STETH": "4"})
    accounts = ["alice", "bob"]
    before = _totals(ex, accounts)
    ex.place("alice", new("a1", Side.SELL, "3", "2600.00", symbol="STETHUSDT"), START)
    ex.place("bob", new("b1", Side.BUY, "2", "2600.00", symbol="STETHUSDT"), START)  # bob takes
    ex.place("bob", new("b2", Side.BUY, "4", "2599.50", symbol="STETHUSDT"), START)  # rests
    # Alice sells 4 to bob's bid and 1 to the market's at 2599.
    ex.place("alice", new("a2", Side.SELL, "5", symbol="STETHUSDT"), START)
    # The market buys alice's last 1 at 2600.
    market.push(TradePrint(20, "STETHUSDT", Side.BUY, ticks(STETH, "2600.00"), lots(STETH, "1")))
    ex.advance(20)
    assert ex.query("alice", "STETHUSDT", "a1").status is OrderStatus.FILLED
    outside = _outside(ex, accounts)
    assert outside == {"STETH": D(-2), "USDT": D(2599) + D(2600)}
    _assert_conserved(ex, accounts, before, outside)
    # Every fill paid 0.1 % of what it received.
    for t in ex.user_trades("alice", "STETHUSDT") + ex.user_trades("bob", "STETHUSDT"):
        got = t.fill.quantity if t.side is Side.BUY else t.fill.quantity * t.fill.price
        assert t.fill.fee == got * FEE
        assert t.fill.fee_asset == ("STETH" if t.side is Side.BUY else "USDT")


def _totals(ex: SimExchange, accounts: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for a in accounts:
        for asset, (free, locked) in spot(ex, a).items():
            out[asset] += free + locked
    return out


def _assert_conserved(
    ex: SimExchange,
    accounts: list[str],
    before: dict[str, Decimal],
    outside: dict[str, Decimal],
) -> None:
    """Every asset the accounts held is still theirs, paid as fees, or traded with the
    rest of the market (`outside`: what the accounts got from it, net); locks are what
    the open orders need, and nothing is negative."""
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for a in accounts:
        for t in ex.user_trades(a, "STETHUSDT"):
            fees[t.fill.fee_asset] += t.fill.fee
    after = _totals(ex, accounts)
    for asset in set(before) | set(after):
        assert after[asset] + fees[asset] == before[asset] + outside.get(asset, 0), asset
    for a in accounts:
        wallet = spot(ex, a)
        need: dict[str, Decimal] = defaultdict(Decimal)
        for o in ex.open_orders(a):
            if o.side is Side.SELL:
                need["STETH"] += o.open_qty
            else:
                assert o.price is not None
                need["USDT"] += o.open_qty * o.price
        for asset, (free, locked) in wallet.items():
            assert free >= 0 and locked == need[asset], (a, asset, wallet)


def _outside(ex: SimExchange, accounts: list[str]) -> dict[str, Decimal]:
    """What the accounts traded with the rest of the market, net, by asset: every fill but
    those whose other side is one of them too (a trade id they share)."""
    fills = [t for a in accounts for t in ex.user_trades(a, "STETHUSDT")]
    shared = Counter(t.fill.trade_id for t in fills)
    out: dict[str, Decimal] = defaultdict(Decimal)
    for t in fills:
        if shared[t.fill.trade_id] == 1:
            out["STETH"] += t.side.sign * t.fill.quantity
            out["USDT"] -= t.side.sign * t.fill.quantity * t.fill.price
    return dict(out)


_SPOT_OP = st.one_of(
    st.tuples(
        st.just("place"),
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(list(Side)),
        st.integers(1, 40_000),  # lots of 0.0001
        st.one_of(st.none(), st.integers(-30, 30)),  # ticks from 2600.00; None: market
        st.sampled_from(list(TimeInForce)),
    ),
    st.tuples(st.just("cancel"), st.sampled_from(["alice", "bob"]), st.integers(0, 20)),
    st.tuples(st.just("trade"), st.sampled_from(list(Side)), st.integers(-30, 30)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SPOT_OP, min_size=10, max_size=40))
def test_random_spot_flow_conserves_every_asset_and_locks_what_open_orders_need(ops) -> None:
    ex, market = make(alice={"USDT": "20000", "STETH": "8"}, bob={"USDT": "30000", "STETH": "3"})
    before = _totals(ex, ["alice", "bob"])
    mid = ticks(STETH, "2600.00")
    now = START
    for n, op in enumerate(ops):
        now += 1
        match op:
            case ("place", account, side, qty, offset, tif):
                price = None if offset is None else STETH.tick * (mid + offset)
                if price is None and tif in (TimeInForce.FOK, TimeInForce.POST_ONLY):
                    tif = TimeInForce.IOC
                order = new(
                    f"o{n}",
                    side,
                    str(STETH.lot * qty),
                    None if price is None else str(price),
                    symbol="STETHUSDT",
                    tif=tif,
                )
                ex.advance(now)
                untouched = (ex.account_snapshot(account, now), ex.books["STETHUSDT"].total_qty())
                try:
                    ex.place(account, order, now)
                except OrderRejected:
                    assert (
                        ex.account_snapshot(account, now),
                        ex.books["STETHUSDT"].total_qty(),
                    ) == untouched
            case ("cancel", account, k):
                mine = ex.open_orders(account, "STETHUSDT")
                if mine:
                    ex.cancel(account, "STETHUSDT", mine[k % len(mine)].client_order_id, now)
            case ("trade", side, offset):
                market.push(TradePrint(now, "STETHUSDT", side, mid + offset, 5_000))
                ex.advance(now)
    _assert_conserved(ex, ["alice", "bob"], before, _outside(ex, ["alice", "bob"]))
