"""A pure price-time-priority limit order book in integer ticks and lots.

Background liquidity (synthetic or replayed) rests in the same book as orders of the
`MARKET` owner, so our orders queue behind the liquidity that was there before them and
ahead of what arrives after — the queue model falls out of price-time priority itself.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from venues.model import Side

MARKET = ""  # owner of background liquidity: never an account, never margined


@dataclass(slots=True)
class RestingOrder:
    """An order at rest; `qty` is what remains, in lots; `price` is in ticks."""

    order_id: int
    owner: str
    side: Side
    price: int
    qty: int


@dataclass(slots=True, frozen=True)
class Match:
    """One execution: the taker traded `qty` lots at the maker's `price`."""

    maker_order_id: int
    maker_owner: str
    maker_side: Side
    price: int
    qty: int
    maker_done: bool  # the maker order has no quantity left


class _Side:
    """One side of the book: price levels, each a FIFO queue of resting orders."""

    __slots__ = ("levels", "prices", "side", "totals")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.levels: dict[int, deque[RestingOrder]] = {}
        self.totals: dict[int, int] = {}
        self.prices: list[int] = []  # ascending

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.side is Side.BUY else self.prices[0]

    def iter_prices(self) -> Iterator[int]:
        """Prices best first."""
        return reversed(self.prices) if self.side is Side.BUY else iter(self.prices)

    def queue(self, price: int) -> deque[RestingOrder]:
        q = self.levels.get(price)
        if q is None:
            q = self.levels[price] = deque()
            self.totals[price] = 0
            bisect.insort(self.prices, price)
        return q

    def drop_level(self, price: int) -> None:
        del self.levels[price]
        del self.totals[price]
        i = bisect.bisect_left(self.prices, price)
        del self.prices[i]

    def crosses(self, price: int, limit: int | None) -> bool:
        """Whether a resting price on this side is acceptable to a taker with `limit`."""
        if limit is None:
            return True
        return price >= limit if self.side is Side.BUY else price <= limit


class OrderBook:
    """Price-time-priority book for one instrument.

    The book never holds a crossed state: `take` matches before anything rests, and
    `set_market_level` fills crossed participant orders before the liquidity rests.
    """

    def __init__(self) -> None:
        self._sides = {Side.BUY: _Side(Side.BUY), Side.SELL: _Side(Side.SELL)}
        self._orders: dict[int, RestingOrder] = {}
        self._market_ids = -1  # background liquidity takes negative ids

    # --- queries -------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return self._sides[Side.BUY].best()

    def best_ask(self) -> int | None:
        return self._sides[Side.SELL].best()

    def level_qty(self, side: Side, price: int) -> int:
        return self._sides[side].totals.get(price, 0)

    def depth(self, side: Side, levels: int) -> list[tuple[int, int]]:
        """Aggregated (price, qty) levels, best first."""
        s = self._sides[side]
        out: list[tuple[int, int]] = []
        for price in s.iter_prices():
            if len(out) >= levels:
                break
            out.append((price, s.totals[price]))
        return out

    def qty_within(self, side: Side, limit: int) -> int:
        """Resting quantity on `side` at prices no worse than `limit` for a taker."""
        s = self._sides[side]
        total = 0
        for price in s.iter_prices():
            if not s.crosses(price, limit):
                break
            total += s.totals[price]
        return total

    def get(self, order_id: int) -> RestingOrder | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterator[RestingOrder]:
        return iter(self._orders.values())

    def total_qty(self) -> int:
        return sum(sum(s.totals.values()) for s in self._sides.values())

    def would_cross(self, side: Side, price: int) -> bool:
        """Whether a limit order at `price` would take liquidity at once."""
        best = self._sides[side.opposite].best()
        if best is None:
            return False
        return price >= best if side is Side.BUY else price <= best

    def fillable(self, side: Side, qty: int, limit: int | None, owner: str) -> int:
        """How much of `qty` a taker could fill now (for FOK), honouring self-trade rules."""
        s = self._sides[side.opposite]
        got = 0
        for price in s.iter_prices():
            if got >= qty or not s.crosses(price, limit):
                break
            for o in s.levels[price]:
                if owner != MARKET and o.owner == owner:
                    return got
                got += o.qty
                if got >= qty:
                    break
        return min(got, qty)

    # --- mutations -----------------------------------------------------------------
    def take(self, side: Side, qty: int, limit: int | None, owner: str) -> tuple[list[Match], int]:
        """Match a taker of `qty` lots against the opposite side, best price first.

        Returns the matches and the quantity left unfilled. A participant taker stops at
        its own resting order (self-trade prevention: the taker's remainder expires).
        """
        book_side = self._sides[side.opposite]
        matches: list[Match] = []
        left = qty
        while left > 0 and book_side.prices:
            price = book_side.best()
            assert price is not None
            if not book_side.crosses(price, limit):
                break
            queue = book_side.levels[price]
            while left > 0 and queue:
                maker = queue[0]
                if owner != MARKET and maker.owner == owner:
                    return matches, left
                traded = min(left, maker.qty)
                maker.qty -= traded
                left -= traded
                book_side.totals[price] -= traded
                done = maker.qty == 0
                if done:
                    queue.popleft()
                    del self._orders[maker.order_id]
                matches.append(Match(maker.order_id, maker.owner, maker.side, price, traded, done))
            if not queue:
                book_side.drop_level(price)
        return matches, left

    def rest(self, order: RestingOrder) -> None:
        """Put an order at the back of its price level. It must not cross the book."""
        if order.qty <= 0:
            raise ValueError(f"cannot rest order {order.order_id} with qty {order.qty}")
        if self.would_cross(order.side, order.price):
            raise ValueError(
                f"order {order.order_id} at {order.price} would cross the book; match it first"
            )
        s = self._sides[order.side]
        s.queue(order.price).append(order)
        s.totals[order.price] += order.qty
        self._orders[order.order_id] = order

    def cancel(self, order_id: int) -> RestingOrder | None:
        """Remove a resting order; returns it, or None if it is not in the book."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        s = self._sides[order.side]
        queue = s.levels[order.price]
        queue.remove(order)
        s.totals[order.price] -= order.qty
        if not queue:
            s.drop_level(order.price)
        return order

    def set_market_level(self, side: Side, price: int, qty: int) -> list[Match]:
        """Set the background liquidity at one level to `qty` lots.

        More liquidity joins the back of the queue; less is taken from the back first (a
        cautious queue model: our place only improves when trades eat what is ahead).
        Background liquidity on the other side that this level crosses is stale and
        removed; participant orders it crosses trade with it at their own price.
        """
        matches: list[Match] = []
        if qty > 0:
            opposite = self._sides[side.opposite]
            # Prices are sorted: the crossed ones are a slice, found by bisection (this runs
            # for every level of every market update, so no scan of the whole side).
            if side is Side.BUY:
                crossed = opposite.prices[: bisect.bisect_right(opposite.prices, price)]
            else:
                crossed = opposite.prices[bisect.bisect_left(opposite.prices, price) :][::-1]
            # Every crossed level is visited, even once the new liquidity is spent on
            # participants: the background there is stale all the same.
            for level in crossed:
                matches.extend(self._clear_crossed_level(opposite, level, side, qty, matches))
            qty -= sum(m.qty for m in matches)
            if qty <= 0 or self.would_cross(side, price):
                return matches
        s = self._sides[side]
        queue = s.levels.get(price)
        current = s.totals.get(price, 0) - self._participant_qty(queue)
        if qty == current:
            return matches
        if qty > current:
            add = qty - current
            queue = s.queue(price)
            if queue and queue[-1].owner == MARKET:
                queue[-1].qty += add
            else:
                self._market_ids -= 1
                o = RestingOrder(self._market_ids, MARKET, side, price, add)
                queue.append(o)
                self._orders[o.order_id] = o
            s.totals[price] += add
            return matches
        assert queue is not None
        remove = current - qty
        for o in reversed(list(queue)):
            if remove == 0:
                break
            if o.owner != MARKET:
                continue
            cut = min(remove, o.qty)
            o.qty -= cut
            remove -= cut
            s.totals[price] -= cut
            if o.qty == 0:
                queue.remove(o)
                del self._orders[o.order_id]
        if not queue:
            s.drop_level(price)
        return matches

    def _clear_crossed_level(
        self, opposite: _Side, price: int, taker_side: Side, qty: int, done: list[Match]
    ) -> list[Match]:
        """At one crossed level: drop stale background, fill participants from `qty`."""
        budget = qty - sum(m.qty for m in done)
        queue = opposite.levels[price]
        out: list[Match] = []
        for o in list(queue):
            if o.owner == MARKET:
                queue.remove(o)
                opposite.totals[price] -= o.qty
                del self._orders[o.order_id]
                continue
            if budget <= 0:
                continue
            traded = min(budget, o.qty)
            o.qty -= traded
            budget -= traded
            opposite.totals[price] -= traded
            finished = o.qty == 0
            if finished:
                queue.remove(o)
                del self._orders[o.order_id]
            out.append(Match(o.order_id, o.owner, o.side, price, traded, finished))
        if not queue:
            opposite.drop_level(price)
        return out

    @staticmethod
    def _participant_qty(queue: deque[RestingOrder] | None) -> int:
        if not queue:
            return 0
        return sum(o.qty for o in queue if o.owner != MARKET)

    def clear_market(self, side: Side) -> None:
        """Remove all background liquidity on one side (before a full snapshot)."""
        s = self._sides[side]
        for price in list(s.prices):
            current = s.totals[price] - self._participant_qty(s.levels[price])
            if current:
                self.set_market_level(side, price, 0)
