"""The simulated order book: conservation, price-time priority, queue model and queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import count, pairwise

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from venues.model import Side
from venues.sim.book import MARKET, Match, OrderBook, RestingOrder

BUY, SELL = Side.BUY, Side.SELL
LO, HI = 96, 104  # a narrow band so random orders, levels and prints keep meeting
OWNERS = ("alice", "bob")

# A queue entry as (order id, owner, qty); background gets id None because how the book
# numbers its own liquidity is not part of its contract.
Entry = tuple[int | None, str, int]
Queues = dict[Side, dict[int, list[Entry]]]
# A match as (maker id or None, maker owner, maker side, price, qty, maker done).
MatchKey = tuple[int | None, str, Side, int, int, bool]


def _meets(side: Side, price: int, other: int) -> bool:
    """Whether an order on `side` at `price` trades with an opposite order at `other`."""
    return other <= price if side is Side.BUY else other >= price


def _match_key(m: Match) -> MatchKey:
    oid = None if m.maker_owner == MARKET else m.maker_order_id
    return (oid, m.maker_owner, m.maker_side, m.price, m.qty, m.maker_done)


def _queues(book: OrderBook) -> Queues:
    """Every level's queue in priority order.

    Queue order is what these tests are about and the book has no public query for it, so
    this one helper reads the book's private levels (after `orders()`, which queues the
    background of levels that had none); it also checks they hold what `orders()` holds,
    each order once and at its own side and price.
    """
    orders = list(book.orders())
    out: Queues = {}
    seen: list[int] = []
    for side in Side:
        out[side] = {}
        for price, queue in book._sides[side].levels.items():
            assert queue, f"empty level {side} {price} left in the book"
            for o in queue:
                assert (o.side, o.price) == (side, price), f"{o} queued at {side} {price}"
                seen.append(o.order_id)
            out[side][price] = [
                (None if o.owner == MARKET else o.order_id, o.owner, o.qty) for o in queue
            ]
    assert sorted(seen) == sorted(o.order_id for o in orders)
    return out


def _background(book: OrderBook) -> dict[tuple[Side, int], int]:
    """Background (MARKET) lots per (side, price), from `orders()`."""
    out: dict[tuple[Side, int], int] = defaultdict(int)
    for o in book.orders():
        if o.owner == MARKET:
            out[(o.side, o.price)] += o.qty
    return dict(out)


def check_book(book: OrderBook) -> None:
    """Every query agrees with a brute-force recount of `orders()`; the book is not crossed."""
    levels: dict[Side, dict[int, int]] = {BUY: defaultdict(int), SELL: defaultdict(int)}
    for o in book.orders():
        assert o.qty > 0, f"{o} rests with no quantity"
        assert book.get(o.order_id) is o
        levels[o.side][o.price] += o.qty
    bid = max(levels[BUY], default=None)
    ask = min(levels[SELL], default=None)
    assert (book.best_bid(), book.best_ask()) == (bid, ask)
    if bid is not None and ask is not None:
        assert bid < ask, f"crossed book: bid {bid} >= ask {ask}"
    assert book.total_qty() == sum(sum(lv.values()) for lv in levels.values())
    for side in Side:
        ranked = sorted(levels[side].items(), reverse=side is BUY)  # best first
        for n in range(len(ranked) + 2):
            assert book.depth(side, n) == ranked[:n]
        for price in range(LO - 2, HI + 3):
            assert book.level_qty(side, price) == levels[side].get(price, 0)
            within = sum(q for p, q in ranked if _meets(side.opposite, price, p))
            assert book.qty_within(side, price) == within, (side, price)


@dataclass
class _Slot:
    order_id: int | None
    owner: str
    qty: int


class ReferenceBook:
    """The same book as plain lists, written from the docstrings: slow, short and obvious."""

    def __init__(self) -> None:
        self.levels: dict[Side, dict[int, list[_Slot]]] = {BUY: {}, SELL: {}}

    def snapshot(self) -> Queues:
        return {
            side: {p: [(s.order_id, s.owner, s.qty) for s in q] for p, q in lv.items()}
            for side, lv in self.levels.items()
        }

    def _best_first(self, side: Side) -> list[int]:
        return sorted(self.levels[side], reverse=side is BUY)

    def _tidy(self) -> None:
        for lv in self.levels.values():
            for price in list(lv):
                lv[price] = [s for s in lv[price] if s.qty > 0]
                if not lv[price]:
                    del lv[price]

    def _fill(self, slot: _Slot, side: Side, price: int, qty: int) -> MatchKey:
        slot.qty -= qty
        return (slot.order_id, slot.owner, side, price, qty, slot.qty == 0)

    def take(
        self, side: Side, qty: int, limit: int | None, owner: str
    ) -> tuple[list[MatchKey], int]:
        makers = side.opposite
        out: list[MatchKey] = []
        left = qty
        for price in self._best_first(makers):
            if limit is not None and not _meets(side, limit, price):
                break
            for slot in self.levels[makers][price]:
                if left == 0:
                    break
                if owner != MARKET and slot.owner == owner:
                    self._tidy()
                    return out, left
                n = min(left, slot.qty)
                out.append(self._fill(slot, makers, price, n))
                left -= n
        self._tidy()
        return out, left

    def rest(self, order_id: int, owner: str, side: Side, price: int, qty: int) -> None:
        self.levels[side].setdefault(price, []).append(_Slot(order_id, owner, qty))

    def cancel(self, order_id: int) -> int | None:
        for lv in self.levels.values():
            for queue in lv.values():
                for slot in queue:
                    if slot.order_id == order_id:
                        qty, slot.qty = slot.qty, 0
                        self._tidy()
                        return qty
        return None

    def set_market_level(self, side: Side, price: int, qty: int) -> list[MatchKey]:
        makers = side.opposite
        out: list[MatchKey] = []
        if qty > 0:
            for p in self._best_first(makers):
                if not _meets(side, price, p):
                    break
                for slot in self.levels[makers][p]:
                    if slot.owner == MARKET:
                        slot.qty = 0  # stale: the market no longer shows it
                    elif qty > 0:
                        n = min(qty, slot.qty)
                        out.append(self._fill(slot, makers, p, n))
                        qty -= n
            self._tidy()
        queue = self.levels[side].setdefault(price, [])
        current = sum(s.qty for s in queue if s.owner == MARKET)
        if qty > current:
            if queue and queue[-1].owner == MARKET:
                queue[-1].qty += qty - current
            else:
                queue.append(_Slot(None, MARKET, qty - current))
        remove = max(current - qty, 0)
        for slot in reversed(queue):
            if slot.owner == MARKET and remove > 0:
                n = min(remove, slot.qty)
                slot.qty -= n
                remove -= n
        self._tidy()
        return out

    def clear_market(self, side: Side) -> None:
        for queue in self.levels[side].values():
            for slot in queue:
                if slot.owner == MARKET:
                    slot.qty = 0
        self._tidy()


SIDES = st.sampled_from(list(Side))
PRICES = st.integers(LO, HI)
QTYS = st.integers(1, 8)


class BookMachine(RuleBasedStateMachine):
    """Random sequences of exchange orders, feed updates and trade prints on one book.

    Each step is checked three ways: against `ReferenceBook` (exact queues and matches),
    against the properties of that kind of step, and by `check_book` after it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()
        self.ref = ReferenceBook()
        self.next_id = 1
        self.clock = count()
        self.arrival: dict[int, int] = {}  # order id -> when it joined its queue

    def _stamp(self) -> None:
        for o in self.book.orders():
            self.arrival.setdefault(o.order_id, next(self.clock))

    def _take(self, side: Side, qty: int, limit: int | None, owner: str) -> tuple[list[Match], int]:
        book = self.book
        before = {o.order_id: o.qty for o in book.orders()}
        total = book.total_qty()
        touch = book.best_ask() if side is BUY else book.best_bid()
        fillable = book.fillable(side, qty, limit, owner)
        assert book.total_qty() == total, "fillable() changed the book"

        matches, left = book.take(side, qty, limit, owner)
        assert [_match_key(m) for m in matches] == self.ref.take(side, qty, limit, owner)[0]

        filled = sum(m.qty for m in matches)
        assert filled + left == qty
        assert filled == fillable, f"fillable() said {fillable}, take() filled {filled}"
        assert book.total_qty() == total - filled
        # Each match comes out of exactly one maker, which loses exactly that much.
        ids = [m.maker_order_id for m in matches]
        assert len(set(ids)) == len(ids)
        for m in matches:
            assert m.qty > 0 and m.maker_side is side.opposite
            after = book.get(m.maker_order_id)
            assert (after is None) == m.maker_done
            assert before[m.maker_order_id] - m.qty == (0 if after is None else after.qty)
        assert all(m.maker_done for m in matches[:-1]), "a maker left half-filled mid-sweep"
        untouched = {i: q for i, q in before.items() if i not in ids}
        assert {o.order_id: o.qty for o in book.orders() if o.order_id in untouched} == untouched
        # Price-time priority: prices never improve, and one level fills in arrival order.
        prices = [m.price for m in matches]
        assert prices == sorted(prices, reverse=side is SELL)
        for a, b in pairwise(matches):
            if a.price == b.price:
                assert self.arrival[a.maker_order_id] < self.arrival[b.maker_order_id]
        # Never beyond the limit; the average is no better than the touch.
        if limit is not None:
            assert all(_meets(side, limit, p) for p in prices)
        if matches:
            assert touch is not None
            assert all(_meets(side, p, touch) for p in prices)
            notional = sum(m.price * m.qty for m in matches)
            assert notional >= touch * filled if side is BUY else notional <= touch * filled
        # Stopping short with liquidity in reach happens only at the taker's own order.
        if left > 0:
            queues = _queues(book)[side.opposite]
            best = book.best_ask() if side is BUY else book.best_bid()
            if best is not None and (limit is None or _meets(side, limit, best)):
                assert owner != MARKET and queues[best][0][1] == owner
        return matches, left

    @rule(owner=st.sampled_from(OWNERS), side=SIDES, price=PRICES, qty=QTYS, gtc=st.booleans())
    def limit_order(self, owner: str, side: Side, price: int, qty: int, gtc: bool) -> None:
        """As the exchange does it: match first, then rest a GTC remainder that can rest."""
        _, left = self._take(side, qty, price, owner)
        if not gtc or left == 0:
            return
        order = RestingOrder(self.next_id, owner, side, price, left)
        self.next_id += 1
        total = self.book.total_qty()
        if self.book.would_cross(side, price):  # blocked by our own order: it expires
            with pytest.raises(ValueError, match="would cross"):
                self.book.rest(order)
            assert self.book.get(order.order_id) is None
            assert self.book.total_qty() == total
            return
        self.book.rest(order)
        self.ref.rest(order.order_id, owner, side, price, left)
        assert self.book.get(order.order_id) is order
        assert self.book.total_qty() == total + left
        self._stamp()

    @rule(owner=st.sampled_from(OWNERS), side=SIDES, qty=QTYS)
    def market_order(self, owner: str, side: Side, qty: int) -> None:
        self._take(side, qty, None, owner)

    @rule(side=SIDES, qty=QTYS, limit=st.none() | PRICES)
    def trade_print(self, side: Side, qty: int, limit: int | None) -> None:
        self._take(side, qty, limit, MARKET)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        # Ids already filled or cancelled, and one never issued, are all in the draw.
        oid = data.draw(st.integers(1, self.next_id), label="order_id")
        before = self.book.get(oid)
        qty = None if before is None else before.qty
        total = self.book.total_qty()
        got = self.book.cancel(oid)
        assert self.ref.cancel(oid) == qty
        if before is None:
            assert got is None
            assert self.book.total_qty() == total
        else:
            assert got is before and got.qty == qty
            assert self.book.get(oid) is None
            assert self.book.total_qty() == total - got.qty

    @rule(side=SIDES, price=PRICES, qty=st.integers(0, 8))
    def market_level(self, side: Side, price: int, qty: int) -> None:
        book = self.book
        before = {o.order_id: o for o in book.orders()}
        was = {i: (o.owner, o.price, o.qty) for i, o in before.items()}
        background = _background(book)
        total = book.total_qty()
        crossed = (
            {
                o.price
                for o in before.values()
                if o.side is side.opposite and _meets(side, price, o.price)
            }
            if qty > 0
            else set()
        )

        matches = book.set_market_level(side, price, qty)
        assert [_match_key(m) for m in matches] == self.ref.set_market_level(side, price, qty)

        # Crossed participants fill at their own price, each once, from the new liquidity.
        filled = sum(m.qty for m in matches)
        assert filled <= qty
        ids = [m.maker_order_id for m in matches]
        assert len(set(ids)) == len(ids)
        for m in matches:
            owner, own_price, had = was[m.maker_order_id]
            assert m.maker_owner == owner != MARKET
            assert m.maker_side is side.opposite
            assert m.price == own_price and own_price in crossed
            after = book.get(m.maker_order_id)
            assert (after is None) == m.maker_done
            assert had - m.qty == (0 if after is None else after.qty)
        for i, (owner, _, had) in was.items():
            if owner != MARKET and i not in ids:
                assert book.get(i) is before[i] and before[i].qty == had
        # Background: this level holds what is left, crossed background is gone, rest as was.
        rests = qty - filled if qty - filled > 0 and not book.would_cross(side, price) else 0
        stale = sum(q for (s, p), q in background.items() if s is side.opposite and p in crossed)
        expected = {
            k: q
            for k, q in background.items()
            if not (k[0] is side.opposite and k[1] in crossed) and k != (side, price)
        }
        if rests:
            expected[(side, price)] = rests
        assert _background(book) == expected
        had_here = background.get((side, price), 0)
        assert book.total_qty() == total - filled - stale - had_here + rests
        self._stamp()

    @rule(side=SIDES, levels=st.lists(st.tuples(PRICES, st.integers(0, 8)), max_size=6))
    def market_levels(self, side: Side, levels: list[tuple[int, int]]) -> None:
        """A whole depth update: the same queues and matches as one level after another."""
        matches = self.book.set_market_levels(side, levels)
        expected = [m for price, qty in levels for m in self.ref.set_market_level(side, price, qty)]
        assert [_match_key(m) for m in matches] == expected
        self._stamp()

    @rule(
        side=SIDES,
        levels=st.lists(st.tuples(PRICES, st.integers(0, 8)), min_size=1, max_size=6),
        taker=st.sampled_from((*OWNERS, MARKET)),
        taker_side=SIDES,
        qty=QTYS,
        limit=st.none() | PRICES,
    )
    def market_levels_then_taker(
        self,
        side: Side,
        levels: list[tuple[int, int]],
        taker: str,
        taker_side: Side,
        qty: int,
        limit: int | None,
    ) -> None:
        """A taker straight after a depth update: it meets levels that never had a queue
        (the invariant's `orders()` gives every level one)."""
        book = self.book
        book.set_market_levels(side, levels)
        for price, lots in levels:
            self.ref.set_market_level(side, price, lots)
        # Read before anything lays the whole book out again (as `orders()` does).
        expected = self.ref.snapshot()
        for s in Side:
            totals = {p: sum(q for _, _, q in queue) for p, queue in expected[s].items()}
            best = max(totals, default=None) if s is BUY else min(totals, default=None)
            assert book.depth(s, 1) == ([] if best is None else [(best, totals[best])])
            for price, _ in levels:
                assert book.level_qty(s, price) == totals.get(price, 0)
        matches, left = book.take(taker_side, qty, limit, taker)
        assert [_match_key(m) for m in matches] == self.ref.take(taker_side, qty, limit, taker)[0]
        assert sum(m.qty for m in matches) + left == qty
        self._stamp()

    @rule(side=SIDES)
    def clear_market(self, side: Side) -> None:
        participants = {o.order_id: o.qty for o in self.book.orders() if o.owner != MARKET}
        self.book.clear_market(side)
        self.ref.clear_market(side)
        assert not any(s is side for s, _ in _background(self.book))
        assert {o.order_id: o.qty for o in self.book.orders() if o.owner != MARKET} == participants

    @invariant()
    def consistent(self) -> None:
        check_book(self.book)
        assert _queues(self.book) == self.ref.snapshot()


BookMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestBookMachine = BookMachine.TestCase


class DeferringBookMachine(BookMachine):
    """The same steps on a book that sets aside all background beyond its best level as
    soon as a side holds more than two: its answers must not change."""

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook(defer_after=2, keep=1)


DeferringBookMachine.TestCase.settings = BookMachine.TestCase.settings
TestDeferringBookMachine = DeferringBookMachine.TestCase


# --- examples ------------------------------------------------------------------------
def _queue(book: OrderBook, side: Side, price: int) -> list[tuple[str, int]]:
    return [(owner, qty) for _, owner, qty in _queues(book)[side].get(price, [])]


def test_cancel_of_an_unknown_or_gone_id_returns_none() -> None:
    book = OrderBook()
    book.rest(RestingOrder(1, "alice", BUY, 99, 3))
    assert book.cancel(7) is None
    got = book.cancel(1)
    assert got is not None and (got.order_id, got.qty) == (1, 3)
    assert book.cancel(1) is None
    assert book.total_qty() == 0 and book.best_bid() is None


def test_resting_a_crossing_or_empty_order_raises_and_leaves_the_book_alone() -> None:
    book = OrderBook()
    book.set_market_level(BUY, 99, 5)
    book.set_market_level(SELL, 101, 5)
    with pytest.raises(ValueError, match="would cross"):
        book.rest(RestingOrder(1, "alice", BUY, 101, 1))
    with pytest.raises(ValueError, match="would cross"):
        book.rest(RestingOrder(2, "alice", SELL, 99, 1))
    with pytest.raises(ValueError, match="qty 0"):
        book.rest(RestingOrder(3, "alice", BUY, 100, 0))
    assert (book.total_qty(), book.get(1), book.get(2), book.get(3)) == (10, None, None, None)
    book.rest(RestingOrder(4, "alice", BUY, 100, 1))
    assert (book.best_bid(), book.best_ask()) == (100, 101)


def test_market_order_walks_the_levels_and_respects_a_limit() -> None:
    book = OrderBook()
    for price, qty in ((100, 2), (101, 3), (103, 5)):
        book.set_market_level(SELL, price, qty)
    for price, qty in ((99, 4), (97, 1)):
        book.set_market_level(BUY, price, qty)
    assert book.fillable(BUY, 7, 101, "alice") == 5

    matches, left = book.take(BUY, 7, 101, "alice")
    assert ([(m.price, m.qty) for m in matches], left) == ([(100, 2), (101, 3)], 2)
    assert book.best_ask() == 103

    matches, left = book.take(SELL, 6, None, "bob")
    assert ([(m.price, m.qty) for m in matches], left) == ([(99, 4), (97, 1)], 1)
    assert sum(m.price * m.qty for m in matches) == 493  # avg 98.6, below the 99 touch
    assert book.best_bid() is None


def test_a_participant_taker_stops_at_its_own_resting_order() -> None:
    book = OrderBook()
    book.set_market_level(SELL, 100, 3)
    book.rest(RestingOrder(1, "alice", SELL, 100, 2))
    book.set_market_level(SELL, 101, 4)
    assert book.fillable(BUY, 10, None, "alice") == 3

    matches, left = book.take(BUY, 10, None, "alice")
    assert [(m.maker_owner, m.price, m.qty) for m in matches] == [(MARKET, 100, 3)]
    assert left == 7
    assert _queue(book, SELL, 100) == [("alice", 2)]

    matches, left = book.take(BUY, 4, None, "bob")
    assert [(m.maker_owner, m.price, m.qty, m.maker_done) for m in matches] == [
        ("alice", 100, 2, True),
        (MARKET, 101, 2, False),
    ]
    assert left == 0


def test_market_level_changes_keep_our_place_in_the_queue() -> None:
    book = OrderBook()
    book.set_market_level(BUY, 100, 5)
    book.rest(RestingOrder(1, "alice", BUY, 100, 2))
    book.set_market_level(BUY, 100, 8)  # 3 more arrive behind alice
    assert _queue(book, BUY, 100) == [(MARKET, 5), ("alice", 2), (MARKET, 3)]
    assert book.level_qty(BUY, 100) == 10

    book.set_market_level(BUY, 100, 6)  # cancels come off the back first
    assert _queue(book, BUY, 100) == [(MARKET, 5), ("alice", 2), (MARKET, 1)]
    book.set_market_level(BUY, 100, 3)
    assert _queue(book, BUY, 100) == [(MARKET, 3), ("alice", 2)]

    matches, _ = book.take(SELL, 4, 100, MARKET)  # a trade print eats the front
    assert [(m.maker_owner, m.qty, m.maker_done) for m in matches] == [
        (MARKET, 3, True),
        ("alice", 1, False),
    ]
    assert _queue(book, BUY, 100) == [("alice", 1)]


def test_more_background_merges_into_a_last_market_entry_else_queues_behind() -> None:
    book = OrderBook()
    book.set_market_level(SELL, 101, 2)
    [first] = book.orders()
    book.set_market_level(SELL, 101, 5)
    assert [(o.order_id, o.qty) for o in book.orders()] == [(first.order_id, 5)]

    book.rest(RestingOrder(1, "bob", SELL, 101, 1))
    book.set_market_level(SELL, 101, 7)
    assert _queue(book, SELL, 101) == [(MARKET, 5), ("bob", 1), (MARKET, 2)]
    assert len({o.order_id for o in book.orders()}) == 3


def test_a_crossing_market_level_fills_participants_at_their_own_price() -> None:
    def book_with_asks() -> OrderBook:
        book = OrderBook()
        book.set_market_level(SELL, 101, 5)
        book.rest(RestingOrder(1, "alice", SELL, 101, 2))
        book.rest(RestingOrder(2, "bob", SELL, 102, 3))
        book.set_market_level(SELL, 103, 4)
        book.set_market_level(BUY, 99, 6)
        return book

    book = book_with_asks()
    assert book.set_market_level(BUY, 102, 4) == [
        Match(1, "alice", SELL, 101, 2, True),
        Match(2, "bob", SELL, 102, 2, False),
    ]
    # The new bid is spent on our orders, so none of it rests; stale background at 101 went.
    assert (book.best_bid(), book.best_ask()) == (99, 102)
    assert _queue(book, SELL, 102) == [("bob", 1)]
    assert book.level_qty(SELL, 103) == 4

    book = book_with_asks()
    assert [(m.maker_order_id, m.price, m.qty) for m in book.set_market_level(BUY, 102, 10)] == [
        (1, 101, 2),
        (2, 102, 3),
    ]
    assert (book.best_bid(), book.best_ask()) == (102, 103)
    assert _queue(book, BUY, 102) == [(MARKET, 5)]
    assert book.total_qty() == 5 + 4 + 6


def test_a_crossing_market_level_removes_all_crossed_background() -> None:
    book = OrderBook()
    book.rest(RestingOrder(1, "alice", SELL, 101, 10))
    book.set_market_level(SELL, 102, 5)
    book.set_market_level(SELL, 104, 5)
    # The market now bids 102: its own asks at 102 are gone, even though alice's order
    # soaks up the whole bid before the book gets there.
    assert book.set_market_level(BUY, 102, 4) == [Match(1, "alice", SELL, 101, 4, False)]
    assert book.depth(SELL, 5) == [(101, 6), (104, 5)]
    assert book.best_bid() is None
    book.cancel(1)
    assert book.best_ask() == 104


def test_clear_market_keeps_participants() -> None:
    book = OrderBook()
    book.set_market_level(BUY, 99, 4)
    book.rest(RestingOrder(1, "alice", BUY, 99, 2))
    book.set_market_level(BUY, 99, 7)
    book.set_market_level(BUY, 98, 3)
    book.clear_market(BUY)
    assert book.depth(BUY, 5) == [(99, 2)]
    assert _queue(book, BUY, 99) == [("alice", 2)]


def test_checker_sees_a_broken_book() -> None:
    book = OrderBook()
    book.set_market_level(BUY, 99, 4)
    book.set_market_level(SELL, 101, 4)
    check_book(book)
    book._sides[BUY].totals[99] += 1  # a level total out of step with its orders
    with pytest.raises(AssertionError):
        check_book(book)
    book._sides[BUY].totals[99] -= 1
    book._sides[SELL].levels[101][0].price = 100  # an order filed under the wrong level
    with pytest.raises(AssertionError):
        _queues(book)
