"""The margin book: needs, all-or-nothing reservations, refusals that say how to cure them."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.margin import (
    USD,
    CollateralError,
    LegNeed,
    MarginBook,
    Refused,
    Reserved,
    ReserveResult,
    Transfer,
    spot_pool,
)
from venues.errors import OrderRejected
from venues.model import (
    AccountSnapshot,
    Balance,
    Instrument,
    NewOrder,
    OrderType,
    RejectReason,
    Side,
)
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.market import DepthUpdate, ScriptedMarket

D = Decimal
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # perp
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]  # perp
STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]  # spot
T0 = 1_000


def book(**available: int | str) -> MarginBook:
    """A book with a 10 % buffer that knows each venue's available USD at T0."""
    b = MarginBook()
    for venue, amount in available.items():
        b.update_account(venue, D(amount), T0)
    return b


def leg(
    venue: str, inst: Instrument, side: Side, qty: str, price: str, leverage: int = 1
) -> LegNeed:
    return LegNeed(
        venue=venue, instrument=inst, side=side, qty=D(qty), price=D(price), leverage=leverage
    )


def apply(b: MarginBook, transfers: list[Transfer], now_ns: int) -> None:
    """Carry out transfers of USD as the venues would report them afterwards."""
    for t in transfers:
        b.update_account(t.from_venue, b.available(t.from_venue) - t.amount, now_ns)
        b.update_account(t.to_venue, b.available(t.to_venue) + t.amount, now_ns)


# --- needs ------------------------------------------------------------------------------
def test_perp_need_is_notional_over_leverage_plus_taker_fee_plus_buffer() -> None:
    b = MarginBook()
    # 1 BTC at 60,000 with 10x: 6,000 margin + 30 fee (5 bp of 60,000), then +10 %.
    assert b.need([leg("A", BTC, Side.BUY, "1", "60000", leverage=10)]) == {"A": D("6633.00")}
    # Short perps need the same.
    assert b.need([leg("A", BTC, Side.SELL, "1", "60000", leverage=10)]) == {"A": D("6633.00")}


def test_spot_legs_draw_on_the_spot_wallet_a_buy_its_quote_a_sell_its_base() -> None:
    b = MarginBook(buffer=D(0))
    buy = leg("B", STETH, Side.BUY, "10", "3000")
    sell = leg("B", STETH, Side.SELL, "4", "3000")
    assert b.need([buy]) == b.need([sell]) == {}  # nothing of the margin wallet
    # The full notional and the 5 bp taker fee, in the spot wallet's USDT.
    assert b.holdings_need([buy]) == {"B": {"spot:USDT": D("30015.00")}}
    assert b.holdings_need([sell]) == {"B": {"spot:STETH": D(4)}}  # its fee: from proceeds
    both = b.holdings_need([buy, sell, leg("B", BTC, Side.BUY, "1", "60000", leverage=10)])
    assert both == {"B": {"spot:USDT": D("30015.00"), "spot:STETH": D(4)}}


def test_needs_sum_per_venue_respect_contract_size_and_round_up_to_the_cent() -> None:
    b = MarginBook(buffer=D(0), taker_fee_bps=D(0))
    inverse = msgspec.structs.replace(ETH, contract_size=D(10))
    legs = [
        leg("A", BTC, Side.BUY, "0.001", "60000.1", leverage=3),  # 20.0000333… → 20.01
        leg("A", ETH, Side.SELL, "1", "3000", leverage=2),  # 1,500
        leg("C", inverse, Side.BUY, "1", "3000", leverage=10),  # 10 × 3,000 / 10
    ]
    assert b.need(legs) == {"A": D("1520.01"), "C": D("3000.00")}


@pytest.mark.parametrize(
    ("field", "bad"),
    [("qty", {"qty": D(-1)}), ("price", {"price": D(0)}), ("leverage", {"leverage": 0})],
)
def test_a_malformed_leg_is_refused_naming_the_field(field: str, bad: dict) -> None:
    good = leg("A", BTC, Side.BUY, "1", "60000", leverage=5)
    with pytest.raises(CollateralError, match=rf"leg on A BTCUSDT: {field} must be"):
        MarginBook().need([msgspec.structs.replace(good, **bad)])


def _venue(usdt: Decimal, leverage: int) -> SimExchange:
    """A simulated venue with BTC perp around 60,000 and stETH spot around 2,600."""
    market = ScriptedMarket([BTC, STETH])
    bids, asks = [(599_990, 5_000)], [(600_010, 5_000)]  # BTC ticks of 0.1, lots of 0.001
    market.push(DepthUpdate(1, "BTCUSDT", bids, asks))
    market.push(DepthUpdate(1, "STETHUSDT", [(259_900, 1_000_000)], [(260_100, 1_000_000)]))
    ex = SimExchange("sim", market)
    ex.open_account(AccountSpec(account_id="a", balances={"USDT": usdt}, leverage=leverage))
    ex.advance(10)
    return ex


@pytest.mark.parametrize(
    ("inst", "side", "qty", "price", "leverage"),
    [
        (BTC, Side.BUY, "0.5", "60001.0", 1),  # crosses: fills at once
        (BTC, Side.SELL, "0.5", "59999.0", 10),
        (BTC, Side.BUY, "2", "59000.0", 20),  # rests
        (BTC, Side.SELL, "1.234", "61000.0", 125),
    ],
)
def test_need_without_buffer_is_at_least_what_the_simulated_venue_demands(
    inst: Instrument, side: Side, qty: str, price: str, leverage: int
) -> None:
    need = MarginBook(buffer=D(0)).need([leg("sim", inst, side, qty, price, leverage)])["sim"]
    order = NewOrder(
        client_order_id="c1",
        symbol=inst.symbol,
        side=side,
        type=OrderType.LIMIT,
        quantity=D(qty),
        price=D(price),
    )
    _venue(need, leverage).place("a", order, 20)  # exactly our need is enough
    with pytest.raises(OrderRejected) as short:  # and it is not wildly more than needed
        _venue(need * D("0.999"), leverage).place("a", order, 20)
    assert short.value.reason is RejectReason.INSUFFICIENT_MARGIN


# --- all or nothing ---------------------------------------------------------------------
def test_one_venue_short_reserves_nothing_anywhere_and_names_venue_and_shortfall() -> None:
    b = book(A=10_000, B=1_000, C=500)
    result = b.reserve("bk1", {"A": D(5_000), "B": D(2_000)}, T0)
    assert isinstance(result, Refused)
    assert b.reserved("A") == b.reserved("B") == 0
    assert b.reservation("bk1") is None
    [gap] = result.shortfalls
    assert (gap.venue, gap.need, gap.available, gap.free, gap.short) == (
        "B",
        D(2_000),
        D(1_000),
        D(1_000),
        D(1_000),
    )
    assert "venue B needs 2,000.00 USD but 1,000.00 USD is available" in result.reason
    assert "short 1,000.00 USD" in result.reason
    # A has 5,000 to spare beyond its own need: one transfer cures B.
    assert result.transfers == [Transfer(asset=USD, from_venue="A", to_venue="B", amount=D(1_000))]
    assert "cure: move 1,000.00 USD from A to B" in result.reason
    assert result.missing_usd == 0


def test_margin_promised_to_another_basket_is_not_free() -> None:
    b = book(A=10_000)
    assert isinstance(b.reserve("bk1", {"A": D(6_000)}, T0), Reserved)
    refused = b.reserve("bk2", {"A": D(5_000)}, T0)
    assert isinstance(refused, Refused)
    [gap] = refused.shortfalls
    assert (gap.reserved_by_others, gap.free, gap.short) == (D(6_000), D(4_000), D(1_000))
    assert "6,000.00 USD reserved by other baskets" in refused.reason
    assert (b.reserved("A"), b.free("A")) == (D(6_000), D(4_000))
    b.release("bk1")
    assert isinstance(b.reserve("bk2", {"A": D(5_000)}, T0), Reserved)


def test_an_unknown_or_stale_venue_cannot_be_promised() -> None:
    b = MarginBook(max_age_ns=1_000)
    b.update_account("A", D(10_000), T0)
    unknown = b.reserve("bk1", {"A": D(1), "Z": D(1)}, T0)
    assert isinstance(unknown, Refused)
    assert unknown.unknown_venues == ["Z"]
    assert "venue Z has no account figure" in unknown.reason
    stale = b.reserve("bk1", {"A": D(1)}, T0 + 1_001)
    assert isinstance(stale, Refused)
    assert stale.unknown_venues == ["A"]
    assert b.reserved("A") == 0
    b.update_account("A", D(10_000), T0 + 1_001)
    assert isinstance(b.reserve("bk1", {"A": D(1)}, T0 + 1_001), Reserved)


def test_a_late_account_figure_does_not_roll_the_book_back() -> None:
    b = book(A=10_000)
    assert b.update_account("A", D(2_000), T0 + 5)
    assert not b.update_account("A", D(9_999), T0 + 1)
    assert b.available("A") == D(2_000)


# --- cures ------------------------------------------------------------------------------
def test_transfers_cure_several_shortfalls_exactly() -> None:
    b = book(A=20_000, B=1_000, C=3_000, D=9_000)
    needs = {"A": D("2000"), "B": D("4000.004"), "C": D("6500")}
    refused = b.reserve("bk1", needs, T0)
    assert isinstance(refused, Refused)
    assert {s.venue: s.short for s in refused.shortfalls} == {
        "B": D("3000.004"),
        "C": D(3_500),
    }
    # Largest shortfall first, each from the smallest single surplus that covers it.
    assert refused.transfers == [
        Transfer(asset=USD, from_venue="D", to_venue="C", amount=D(3_500)),
        Transfer(asset=USD, from_venue="D", to_venue="B", amount=D("3000.01")),
    ]
    apply(b, refused.transfers, T0 + 1)
    assert isinstance(b.reserve("bk1", needs, T0 + 1), Reserved)
    assert b.free("B") >= 0 and b.free("C") == 0


def test_a_shortfall_no_single_venue_covers_is_split_over_the_largest_surpluses() -> None:
    b = book(A=3_000, B=2_500, C=100)
    refused = b.reserve("bk1", {"C": D(5_000)}, T0)
    assert isinstance(refused, Refused)
    assert [(t.from_venue, t.amount) for t in refused.transfers] == [
        ("A", D(3_000)),
        ("B", D(1_900)),
    ]
    apply(b, refused.transfers, T0 + 1)
    assert isinstance(b.reserve("bk1", {"C": D(5_000)}, T0 + 1), Reserved)


def test_when_free_margin_everywhere_is_not_enough_the_refusal_says_how_much_is_missing() -> None:
    b = book(A=1_000, B=500, C=0)
    b.reserve("other", {"A": D(400)}, T0)
    refused = b.reserve("bk1", {"B": D(300), "C": D(2_000)}, T0)
    assert isinstance(refused, Refused)
    # Spare: A 600 (1,000 − 400 held by `other`), B 200 (500 − its own 300).
    assert sum(t.amount for t in refused.transfers) == D(800)
    assert refused.missing_usd == D(1_200)
    assert "missing overall: 1,200.00 USD" in refused.reason


def test_spot_sells_reserve_the_base_asset_and_a_shortfall_is_cured_in_that_asset() -> None:
    b = MarginBook()
    for venue, steth in (("A", D(1)), ("B", D(10))):
        snapshot = AccountSnapshot(
            venue=venue,
            account_id="x",
            balances=[Balance(asset="USDT", wallet=D(5_000), available=D(5_000))],
            positions=[],
            margin_asset="USDT",
            wallet_balance=D(5_000),
            unrealized_pnl=D(0),
            position_initial_margin=D(0),
            open_order_initial_margin=D(0),
            available_margin=D(5_000),
            ts_ns=T0,
            spot_balances=[
                Balance(asset="USDT", wallet=D(100), available=D(100)),
                Balance(asset="STETH", wallet=steth, available=steth),
            ],
        )
        b.update_from_snapshot(snapshot, T0)
    legs = [leg("A", STETH, Side.SELL, "3", "2600")]
    refused = b.reserve_legs("bk1", legs, T0)
    assert isinstance(refused, Refused)
    [gap] = refused.shortfalls
    assert (gap.venue, gap.asset, gap.short) == ("A", "spot:STETH", D(2))
    assert "venue A needs 3 STETH (spot wallet) but 1 STETH (spot wallet) is" in refused.reason
    assert refused.transfers == [
        Transfer(asset="spot:STETH", from_venue="B", to_venue="A", amount=D(2))
    ]
    b.update_account("A", D(3), T0 + 1, asset="spot:STETH")
    granted = b.reserve_legs("bk1", legs, T0 + 1)
    assert isinstance(granted, Reserved)
    assert granted.holdings == {"A": {"spot:STETH": D(3)}} and granted.needs == {}
    assert b.free("A", "spot:STETH") == 0
    # The margin wallet's USDT is not the spot wallet's: a spot buy needs the latter.
    buy = b.reserve_legs("bk3", [leg("B", STETH, Side.BUY, "1", "2600")], T0 + 1)
    assert isinstance(buy, Refused)
    assert [(g.asset, g.short) for g in buy.shortfalls] == [("spot:USDT", D("2761.43"))]
    assert "2,861.43 USDT (spot wallet)" in buy.reason
    # A venue whose snapshot lists no stETH holds none: a short, not an unknown.
    b.update_from_snapshot(
        msgspec.structs.replace(snapshot, venue="C", spot_balances=[], ts_ns=T0 + 1), T0 + 1
    )
    on_c = b.reserve_legs("bk2", [leg("C", STETH, Side.SELL, "1", "2600")], T0 + 1)
    assert isinstance(on_c, Refused)
    assert (on_c.unknown_venues, [(g.venue, g.asset, g.short) for g in on_c.shortfalls]) == (
        [],
        [("C", "spot:STETH", D(1))],
    )
    assert on_c.transfers == [
        Transfer(asset="spot:STETH", from_venue="B", to_venue="C", amount=D(1))
    ]


# --- idempotence and adjustment ---------------------------------------------------------
def test_reserving_again_returns_the_same_reservation_not_a_double() -> None:
    b = book(A=10_000, B=10_000)
    first = b.reserve("bk1", {"A": D(6_000), "B": D(1)}, T0)
    again = b.reserve("bk1", {"B": D("1.00"), "A": D(6_000), "C": D(0)}, T0 + 50)
    assert isinstance(first, Reserved)
    assert again is first
    assert b.reserved("A") == D(6_000)


def test_reserving_other_needs_resizes_and_a_refused_resize_keeps_the_old_one() -> None:
    b = book(A=10_000)
    b.reserve("bk1", {"A": D(6_000)}, T0)
    grown = b.reserve("bk1", {"A": D(9_000)}, T0 + 1)  # its own 6,000 does not count against it
    assert isinstance(grown, Reserved)
    assert (grown.needs, grown.reserved_ns) == ({"A": D(9_000)}, T0)
    assert isinstance(b.reserve("bk1", {"A": D(11_000)}, T0 + 2), Refused)
    assert b.reservation("bk1") == grown
    assert b.reserved("A") == D(9_000)


def test_a_resize_that_shrinks_an_over_promised_pool_is_granted() -> None:
    b = book(A=10_000, B=10_000)
    b.reserve("bk1", {"A": D(6_000), "B": D(6_000)}, T0)
    b.update_account("A", D(1_000), T0 + 1)  # A lost money: 6,000 promised, 1,000 there
    assert isinstance(b.reserve("bk1", {"A": D(5_000), "B": D(6_000)}, T0 + 1), Reserved)
    refused = b.reserve("bk1", {"A": D(5_000), "B": D(10_001)}, T0 + 1)
    assert isinstance(refused, Refused)
    assert [s.venue for s in refused.shortfalls] == ["B"]


def test_release_is_idempotent() -> None:
    b = book(A=10_000)
    held = b.reserve("bk1", {"A": D(6_000)}, T0)
    assert b.release("bk1") == held
    assert b.release("bk1") is None
    assert b.release("never") is None
    assert b.free("A") == D(10_000)


def test_adjust_shrinks_always_grows_only_into_free_margin() -> None:
    b = book(A=10_000, B=3_000)
    b.reserve("bk1", {"A": D(6_000), "B": D(2_000)}, T0)
    b.reserve("bk2", {"A": D(3_000)}, T0)
    b.update_account("A", D(5_000), T0 + 1)  # a loss: A is now over-promised
    assert b.free("A") == D(-4_000)
    shrunk = b.adjust("bk1", "A", D(2_500))  # shrinking is granted even so
    assert isinstance(shrunk, Reserved)
    assert shrunk.needs == {"A": D(2_500), "B": D(2_000)}
    refused = b.adjust("bk1", "B", D(3_500), now_ns=T0 + 1)
    assert isinstance(refused, Refused)
    assert "venue B needs 3,500.00 USD but 3,000.00 USD is available" in refused.reason
    assert b.reservation("bk1") == shrunk
    assert isinstance(b.adjust("bk1", "B", D(3_000)), Reserved)
    gone = b.adjust("bk1", "B", D(0))
    assert isinstance(gone, Reserved)
    assert gone.needs == {"A": D(2_500)}
    assert b.reserved("B") == 0
    with pytest.raises(CollateralError, match="basket nope holds no reservation"):
        b.adjust("nope", "A", D(1))


def test_results_and_snapshot_travel_as_json() -> None:
    b = book(A=100, B=10_000)
    b.reserve("bk1", {"B": D(50)}, T0)
    refused = b.reserve("bk2", {"A": D(500)}, T0)
    decoder = msgspec.json.Decoder(ReserveResult)
    assert decoder.decode(msgspec.json.encode(refused)) == refused
    assert decoder.decode(msgspec.json.encode(b.reservation("bk1"))) == b.reservation("bk1")
    snap = b.snapshot(T0)
    assert [(p.venue, p.reserved, p.free) for p in snap.pools] == [
        ("A", D(0), D(100)),
        ("B", D(50), D(9_950)),
    ]
    assert [r.basket_id for r in snap.reservations] == ["bk1"]
    msgspec.json.encode(snap)


# --- concurrent baskets -----------------------------------------------------------------
def test_interleaved_baskets_never_spend_the_same_margin_twice() -> None:
    b = book(A=10_000, B=10_000)
    assert isinstance(b.reserve("x", {"A": D(4_000), "B": D(4_000)}, T0), Reserved)
    assert isinstance(b.reserve("y", {"A": D(4_000), "B": D(7_000)}, T0), Refused)
    assert isinstance(b.reserve("z", {"A": D(6_000)}, T0), Reserved)
    assert isinstance(b.reserve("y", {"A": D(1), "B": D(1)}, T0), Refused)  # A is full
    b.adjust("x", "A", D(3_000))  # a leg filled: 1,000 comes back
    assert isinstance(b.reserve("y", {"A": D(1_000), "B": D(6_000)}, T0), Reserved)
    assert (b.reserved("A"), b.reserved("B")) == (D(10_000), D(10_000))
    b.release("x")
    b.release("x")
    assert (b.free("A"), b.free("B")) == (D(3_000), D(4_000))


VENUES = ("A", "B", "C")
BASKETS = ("b1", "b2", "b3", "b4")
amounts = st.integers(min_value=0, max_value=6_000).map(D)
needs_st = st.dictionaries(st.sampled_from(VENUES), amounts, min_size=1, max_size=3)


class ConcurrentBaskets(RuleBasedStateMachine):
    """Several baskets reserve, resize, adjust and release against moving account figures.

    At every step: the book's totals equal the sum of the granted reservations; a step that
    raised what is promised on a pool left it within what the venue said was available; a
    refused reservation changed nothing anywhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self.book = MarginBook()
        self.now = T0
        self.avail = {v: D(10_000) for v in VENUES}
        for v, a in self.avail.items():
            self.book.update_account(v, a, self.now)
        self.model: dict[str, dict[str, Decimal]] = {}

    def _totals(self) -> dict[str, Decimal]:
        return {v: sum((m.get(v, D(0)) for m in self.model.values()), D(0)) for v in VENUES}

    def _check(self, before: dict[str, Decimal]) -> None:
        after = self._totals()
        for v in VENUES:
            assert self.book.reserved(v) == after[v]
            if after[v] > before[v]:
                assert after[v] <= self.avail[v], f"{v} over-promised"

    @rule(basket=st.sampled_from(BASKETS), needs=needs_st)
    def reserve(self, basket: str, needs: dict[str, Decimal]) -> None:
        before = self._totals()
        result = self.book.reserve(basket, needs, self.now)
        if isinstance(result, Reserved):
            self.model[basket] = {v: n for v, n in needs.items() if n > 0}
            assert result.needs == self.model[basket]
        else:
            assert result.shortfalls
            for gap in result.shortfalls:
                others = before[gap.venue] - self.model.get(basket, {}).get(gap.venue, D(0))
                assert gap.need > self.avail[gap.venue] - others
        self._check(before)

    @rule(basket=st.sampled_from(BASKETS))
    def release(self, basket: str) -> None:
        before = self._totals()
        self.book.release(basket)
        self.model.pop(basket, None)
        self._check(before)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), amount=amounts)
    def adjust(self, data: st.DataObject, amount: Decimal) -> None:
        basket = data.draw(st.sampled_from(sorted(self.model)))
        venue = data.draw(st.sampled_from(VENUES))
        before = self._totals()
        result = self.book.adjust(basket, venue, amount, now_ns=self.now)
        if isinstance(result, Reserved):
            held = self.model[basket]
            if amount > 0:
                held[venue] = amount
            else:
                held.pop(venue, None)
            assert result.needs == held
        else:
            assert amount > held_amount(self.model, basket, venue)
        self._check(before)

    @rule(venue=st.sampled_from(VENUES), amount=st.integers(0, 15_000).map(D))
    def venue_reports(self, venue: str, amount: Decimal) -> None:
        self.now += 1
        self.avail[venue] = amount
        self.book.update_account(venue, amount, self.now)

    @rule(basket=st.sampled_from(BASKETS), needs=needs_st)
    def refused_cure_works(self, basket: str, needs: dict[str, Decimal]) -> None:
        """On a copy of the state: applying the suggested transfers makes the reservation fit
        whenever nothing is missing."""
        result = self.book.reserve(basket, needs, self.now)
        if isinstance(result, Reserved):
            self.model[basket] = {v: n for v, n in needs.items() if n > 0}
            return
        if result.missing or result.unknown_venues:
            return
        shadow = MarginBook()  # the same promises, made before the venues' latest figures
        for v in VENUES:
            shadow.update_account(v, D(10**9), 0)
        for b, held in self.model.items():
            assert isinstance(shadow.reserve(b, held, 0), Reserved)
        for v in VENUES:
            shadow.update_account(v, self.avail[v], self.now)
        apply(shadow, result.transfers, self.now + 1)
        assert isinstance(shadow.reserve(basket, needs, self.now + 1), Reserved)

    @invariant()
    def book_matches_model(self) -> None:
        for v in VENUES:
            assert self.book.reserved(v) == self._totals()[v]
        assert {b: r.needs for b, r in ((b, self.book.reservation(b)) for b in self.model)} == (
            self.model
        )


def held_amount(model: dict[str, dict[str, Decimal]], basket: str, venue: str) -> Decimal:
    return model.get(basket, {}).get(venue, D(0))


ConcurrentBaskets.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_concurrent_baskets = ConcurrentBaskets.TestCase


def test_a_short_margin_pool_is_cured_first_from_its_own_venues_spot_wallet() -> None:
    # gamma's spot wallet holds USDT: moving it to its margin is one transfer at the venue,
    # before any withdrawal from A; what it cannot cover comes from A.
    b = book(A=50_000, gamma=1_000)
    b.update_account("gamma", D(2_000), T0, asset=spot_pool("USDT"))
    refused = b.reserve("bk1", {"gamma": D(4_000)}, T0)
    assert isinstance(refused, Refused)
    assert refused.transfers == [
        Transfer(
            asset=USD,
            from_venue="gamma",
            to_venue="gamma",
            amount=D(2_000),
            from_asset=spot_pool("USDT"),
        ),
        Transfer(asset=USD, from_venue="A", to_venue="gamma", amount=D(1_000)),
    ]
    assert (
        "cure: move 2,000.00 USD on gamma from its spot wallet to its margin wallet, "
        "move 1,000.00 USD from A to gamma" in refused.reason
    )
