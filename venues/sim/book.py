"""A pure price-time-priority limit order book in integer ticks and lots.

Background liquidity (synthetic or replayed) rests in the same book as orders of the
`MARKET` owner, so our orders queue behind the liquidity that was there before them and
ahead of what arrives after, and a resting order fills only once what is ahead of it at its
level has traded or gone.

**The queue model** says what a market source's *decrease* at a level takes: a depth update
only gives a level's new total, not whose orders left, so where a cancel falls relative to
our order must be assumed (a trade print always eats the front: price-time priority).

- `CAUTIOUS` (the default, `queue_model=None`): every decrease comes from the back, behind
  our order; only trades move us up. It never fills a resting order early, so a passive
  style's figures are a lower bound, whatever the source's cancel pattern.
- `PowerQueueModel(n)`: the probabilistic position estimate of hftbacktest's
  `ProbQueueModel` with its power-law function: a decrease of `d` lots at a level where
  `a` background lots are ahead of our first order and `b` behind takes
  `d · aⁿ / (aⁿ + bⁿ)` from ahead and the rest from behind (the expected split, with the
  fraction of a lot carried to the next decrease so that it adds up exactly). Near the
  front (a ≪ b) cancels are mostly behind us, near the back mostly ahead; n = 3 is
  hftbacktest's usual choice.

Both apply to synthetic and replayed markets alike (each sets levels through
`set_market_level`), and only to levels where a participant order rests: a book without
one behaves the same whichever model it has. Adverse selection is in the book either way:
a resting bid that the market's asks move onto (a depth update on the other side at or
through its price) trades with them at the bid's price (`set_market_level`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

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


class Match(NamedTuple):
    """One execution: the taker traded `qty` lots at the maker's `price`.

    A named tuple: immutable, and made for every trade print of a backtest's market, three
    times faster than a frozen dataclass."""

    maker_order_id: int
    maker_owner: str
    maker_side: Side
    price: int
    qty: int
    maker_done: bool  # the maker order has no quantity left


class _Side:
    """One side of the book: price levels, each a FIFO queue of resting orders.

    Two economies for background liquidity, which a recorded futures book updates
    thousands of times a second, mostly far from the touch where no order goes:

    - a level that only ever held background has no queue: its total is one background
      order, made into a `RestingOrder` only when something needs it as one (a taker
      reaches it, an order joins it, `orders()`);
    - background levels behind the `edge` (the best `keep` levels when it was set, see
      `OrderBook`) wait in `far`, a plain dict, outside the sorted levels. Whatever looks
      past the edge (a best price with nothing left before it, a walk down the book, a
      crossing price) brings them in first, so no query sees the difference.
    """

    __slots__ = ("edge", "far", "keys", "levels", "side", "sign", "totals")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.sign = side.sign
        self.levels: dict[int, deque[RestingOrder]] = {}  # the levels with a queue
        self.totals: dict[int, int] = {}  # every level's lots, but those in `far`
        # The prices as sign × price, ascending: the best is last on both sides. The book
        # changes most near its touch, and a level added or removed there moves the fewest
        # list entries.
        self.keys: list[int] = []
        # Background levels whose key is below `edge` and that have no entry in `totals`;
        # `best` and `iter_prices` bring them in once no key is left at or above the edge.
        self.far: dict[int, int] = {}
        self.edge: float = -math.inf

    def best(self) -> int | None:
        keys = self.keys
        if self.far and (not keys or keys[-1] < self.edge):
            self.reveal()
        return keys[-1] * self.sign if keys else None

    def iter_prices(self) -> Iterator[int]:
        """Prices best first (the levels beyond the edge come in once it is reached)."""
        keys, sign = self.keys, self.sign
        i = len(keys) - 1
        while i >= 0 and keys[i] >= self.edge:
            yield keys[i] * sign
            i -= 1
        if self.far:
            last = keys[i + 1] if i + 1 < len(keys) else None
            self.reveal()
            i = (len(keys) if last is None else bisect.bisect_left(keys, last)) - 1
        while i >= 0:
            yield keys[i] * sign
            i -= 1

    def crossed(self, price: int) -> list[int]:
        """Prices, best first, that a taker on the other side with limit `price` reaches."""
        sign, keys = self.sign, self.keys
        if self.far and price * sign < self.edge:
            self.reveal()
        return [k * sign for k in reversed(keys[bisect.bisect_left(keys, price * sign) :])]

    def defer(self, keep: int) -> None:
        """Background levels beyond the best `keep` levels wait in `far` from now on."""
        keys = self.keys
        if len(keys) <= keep or keys[-keep] <= self.edge:
            return
        edge = keys[-keep]
        cut = len(keys) - keep
        sign, levels, totals, far = self.sign, self.levels, self.totals, self.far
        kept = []  # levels with a queue (orders in them) stay in the book proper
        for k in keys[:cut]:
            price = k * sign
            if price in levels:
                kept.append(k)
            else:
                far[price] = totals.pop(price)
        keys[:cut] = kept
        self.edge = edge

    def reveal(self) -> None:
        """Every level waiting beyond the edge into the book proper; no edge until the next
        `defer`."""
        if self.far:
            self.totals.update(self.far)
            self.keys.extend(p * self.sign for p in self.far)
            self.keys.sort()
            self.far.clear()
        self.edge = -math.inf

    def promote(self, price: int) -> None:
        """One level waiting beyond the edge (if it is) into the book proper."""
        lots = self.far.pop(price, None)
        if lots is not None:
            self.totals[price] = lots
            bisect.insort(self.keys, price * self.sign)

    def drop_level(self, price: int) -> None:
        self.levels.pop(price, None)
        del self.totals[price]
        del self.keys[bisect.bisect_left(self.keys, price * self.sign)]

    def crosses(self, price: int, limit: int | None) -> bool:
        """Whether a resting price on this side is acceptable to a taker with `limit`."""
        if limit is None:
            return True
        return price >= limit if self.side is Side.BUY else price <= limit


class PowerQueueModel(NamedTuple):
    """hftbacktest's power-law queue position estimate (module docstring)."""

    n: float = 3.0

    def ahead_share(self, ahead: int, behind: int) -> float:
        """The share of a decrease taken from the `ahead` lots before our order."""
        if ahead <= 0:
            return 0.0
        if behind <= 0:
            return 1.0
        a, b = float(ahead) ** self.n, float(behind) ** self.n
        return a / (a + b)


class OrderBook:
    """Price-time-priority book for one instrument.

    The book never holds a crossed state: `take` matches before anything rests, and
    `set_market_level` fills crossed participant orders before the liquidity rests.

    `defer_after`, `keep`: once a side holds more than `defer_after` levels, background
    beyond its best `keep` levels waits outside the sorted levels (`_Side`); it changes
    what the book costs, not what it does.
    """

    def __init__(
        self,
        *,
        defer_after: int = 512,
        keep: int = 128,
        queue_model: PowerQueueModel | None = None,
    ) -> None:
        if not 0 < keep <= defer_after:
            raise ValueError(f"need 0 < keep <= defer_after, got {keep} and {defer_after}")
        self._sides = {Side.BUY: _Side(Side.BUY), Side.SELL: _Side(Side.SELL)}
        self._orders: dict[int, RestingOrder] = {}
        self._market_ids = -1  # background liquidity takes negative ids
        self._defer_after, self._keep = defer_after, keep
        self.queue_model = queue_model  # None: cautious (module docstring)
        self._carry: dict[int, float] = {}  # a lot's fraction owed ahead of an order

    # --- queries -------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return self._sides[Side.BUY].best()

    def best_ask(self) -> int | None:
        return self._sides[Side.SELL].best()

    def top(self) -> tuple[int | None, int, int | None, int]:
        """Best bid, its lots, best ask, its lots (None and 0 for an empty side): what a
        book ticker shows, in one call (a backtest asks after every market step)."""
        buy, sell = self._sides[Side.BUY], self._sides[Side.SELL]
        bid, ask = buy.best(), sell.best()
        return (
            bid,
            0 if bid is None else buy.totals.get(bid) or buy.far.get(bid, 0),
            ask,
            0 if ask is None else sell.totals.get(ask) or sell.far.get(ask, 0),
        )

    def level_qty(self, side: Side, price: int) -> int:
        s = self._sides[side]
        lots = s.totals.get(price)
        return s.far.get(price, 0) if lots is None else lots

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
        """Every resting order, background included (each level's background queued)."""
        for s in self._sides.values():
            s.reveal()
            for price in s.totals:
                self._queue(s, price)
        return iter(self._orders.values())

    def total_qty(self) -> int:
        return sum(sum(s.totals.values()) + sum(s.far.values()) for s in self._sides.values())

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
            queue = s.levels.get(price)
            if queue is None:  # background alone
                got += s.totals[price]
                continue
            for o in queue:
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
        while left > 0:
            price = book_side.best()
            if price is None or not book_side.crosses(price, limit):
                break
            queue = book_side.levels.get(price)
            if queue is None:  # background alone: one order, never made into one
                lots = book_side.totals[price]
                traded = min(left, lots)
                left -= traded
                self._market_ids -= 1
                done = traded == lots
                matches.append(Match(self._market_ids, MARKET, book_side.side, price, traded, done))
                if done:
                    book_side.drop_level(price)
                else:
                    book_side.totals[price] = lots - traded
                continue
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
        self._queue(s, order.price).append(order)
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
            # Every crossed level is visited, even once the new liquidity is spent on
            # participants: the background there is stale all the same.
            for level in opposite.crossed(price):
                matches.extend(self._clear_crossed_level(opposite, level, side, qty, matches))
            qty -= sum(m.qty for m in matches)
            if qty <= 0 or self.would_cross(side, price):
                return matches
        s = self._sides[side]
        s.promote(price)
        queue = self._queue(s, price) if price in s.totals else None
        current = s.totals.get(price, 0) - self._participant_qty(queue)
        if qty == current:
            return matches
        if qty > current:
            add = qty - current
            queue = self._queue(s, price)
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
        if self.queue_model is not None:
            remove -= self._cut_ahead(s, price, queue, remove)
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

    def set_market_levels(self, side: Side, levels: Iterable[tuple[int, int]]) -> list[Match]:
        """`set_market_level` for each (price, qty) in turn; the matches of all of them.

        A depth update is mostly levels that hold background alone and cross nothing: those
        are set in place here (replay and synthetic markets send thousands a second), the
        rest go through `set_market_level`.
        """
        s = self._sides[side]
        if len(s.keys) > self._defer_after:
            s.defer(self._keep)
        queues, totals, keys, sign, orders = s.levels, s.totals, s.keys, s.sign, self._orders
        far, edge = s.far, s.edge
        opposite = self._sides[side.opposite]
        lo, hi = self._crossing(side, opposite)
        out: list[Match] = []
        for price, qty in levels:
            # Beyond the edge it waits. (It cannot cross: the edge is behind this side's best,
            # and the book is never crossed.)
            if price * sign < edge and price not in totals:
                if qty > 0:
                    far[price] = qty
                else:
                    far.pop(price, None)
                continue
            if qty > 0 and lo <= price <= hi:
                crossed = opposite.crossed(price)
                if price in queues or any(p in opposite.levels for p in crossed):
                    out += self.set_market_level(side, price, qty)
                else:
                    # Stale background alone on the other side, and no queue here: what
                    # `set_market_level` does (drop it, set this level), with this level
                    # kept as background alone rather than made one background order.
                    for p in crossed:
                        opposite.drop_level(p)
                    if price not in totals:
                        bisect.insort(keys, price * sign)
                    totals[price] = qty
                lo, hi = self._crossing(side, opposite)
                edge = s.edge
                continue
            queue = queues.get(price)
            if queue is None:  # background alone, or no level
                if qty > 0:
                    if totals.get(price) is None:
                        bisect.insort(keys, price * sign)
                    totals[price] = qty
                elif price in totals:
                    del totals[price]
                    del keys[bisect.bisect_left(keys, price * sign)]
            elif len(queue) == 1 and (o := queue[0]).owner == MARKET:
                if qty > 0:
                    o.qty = totals[price] = qty
                else:
                    del orders[o.order_id], queues[price], totals[price]
                    del keys[bisect.bisect_left(keys, price * sign)]
            else:
                out += self.set_market_level(side, price, qty)
                lo, hi = self._crossing(side, opposite)
                edge = s.edge
        return out

    @staticmethod
    def _crossing(side: Side, opposite: _Side) -> tuple[float, float]:
        """The prices at which liquidity on `side` would cross the opposite side's best."""
        best = opposite.best()
        if best is None:
            return math.inf, -math.inf
        return (best, math.inf) if side is Side.BUY else (-math.inf, best)

    def _cut_ahead(self, s: _Side, price: int, queue: deque[RestingOrder], remove: int) -> int:
        """`queue_model`: take the part of a decrease of `remove` lots the model puts ahead
        of the level's first participant order from the background there (the nearest
        first); returns the lots taken. The rest is taken from the back."""
        ahead = 0
        first = None
        for o in queue:
            if o.owner != MARKET:
                first = o
                break
            ahead += o.qty
        if first is None or ahead == 0:
            return 0
        behind = sum(o.qty for o in queue if o.owner == MARKET) - ahead
        assert self.queue_model is not None
        owed = remove * self.queue_model.ahead_share(ahead, behind) + self._carry.get(
            first.order_id, 0.0
        )
        cut = min(int(owed), remove, ahead)
        self._carry[first.order_id] = owed - cut if cut < ahead else 0.0
        left = cut
        for o in reversed(list(itertools.takewhile(lambda o: o.owner == MARKET, queue))):
            if left == 0:
                break
            take = min(left, o.qty)
            o.qty -= take
            left -= take
            s.totals[price] -= take
            if o.qty == 0:
                queue.remove(o)
                del self._orders[o.order_id]
        return cut

    def _clear_crossed_level(
        self, opposite: _Side, price: int, taker_side: Side, qty: int, done: list[Match]
    ) -> list[Match]:
        """At one crossed level: drop stale background, fill participants from `qty`."""
        budget = qty - sum(m.qty for m in done)
        queue = opposite.levels.get(price)
        if queue is None:  # background alone: stale, gone
            opposite.drop_level(price)
            return []
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

    def _queue(self, s: _Side, price: int) -> deque[RestingOrder]:
        """The level's queue, made if the level has none: background alone becomes one
        background order, and a new level an empty queue."""
        queue = s.levels.get(price)
        if queue is not None:
            return queue
        s.promote(price)
        queue = s.levels[price] = deque()
        lots = s.totals.get(price)
        if lots is None:
            s.totals[price] = 0
            bisect.insort(s.keys, price * s.sign)
        else:
            self._market_ids -= 1
            o = RestingOrder(self._market_ids, MARKET, s.side, price, lots)
            queue.append(o)
            self._orders[o.order_id] = o
        return queue

    @staticmethod
    def _participant_qty(queue: deque[RestingOrder] | None) -> int:
        if not queue:
            return 0
        return sum(o.qty for o in queue if o.owner != MARKET)

    def clear_market(self, side: Side) -> None:
        """Remove all background liquidity on one side (before a full snapshot)."""
        s = self._sides[side]
        for price in list(s.iter_prices()):
            current = s.totals[price] - self._participant_qty(s.levels.get(price))
            if current:
                self.set_market_level(side, price, 0)
