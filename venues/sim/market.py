"""What the simulated exchange needs from a market source, and the updates it yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import msgspec

from venues.model import Instrument, Side


# Positional and untracked by the garbage collector: a market yields thousands a second, and
# a Struct costs a fifth of a frozen dataclass to make.
class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """Set background liquidity at these levels to these quantities (0 deletes).

    Prices in ticks, quantities in lots of the instrument; levels not named are unchanged.
    """

    ts_ns: int
    symbol: str
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class TradePrint(msgspec.Struct, frozen=True, gc=False):
    """A trade by the rest of the market: a taker of `qty` lots down to `price` ticks."""

    ts_ns: int
    symbol: str
    aggressor: Side
    price: int
    qty: int


class TopOfBook(msgspec.Struct, frozen=True, gc=False):
    """A recorded best bid/ask (replay's bookTicker), kept to check the rebuilt book."""

    ts_ns: int
    symbol: str
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


MarketUpdate = DepthUpdate | TradePrint | TopOfBook


class MarketSource(Protocol):
    """A market the exchange replays into its books, in time order."""

    def instruments(self) -> list[Instrument]:
        """The instruments this source drives (their tick and lot define the units)."""
        ...

    def updates(self, until_ns: int) -> Iterator[MarketUpdate]:
        """Every update after the previous call's `until_ns`, up to and including this one."""
        ...

    def next_ns(self) -> int | None:
        """No update that changes a book comes before this time (None: none will); updates
        that change none (`TopOfBook`) may come before it. A lower bound, not a promise that
        one comes then: the exchange skips calls to `updates` before it, hundreds a second,
        and takes what waited at the next call."""
        ...

    def on_taken(self, symbol: str, side: Side, price: int, qty: int, now_ns: int) -> None:
        """Our orders took `qty` lots of background liquidity resting on `side` at `price`."""
        ...

    def fair_price(self, symbol: str, now_ns: int) -> float | None:
        """The source's own idea of the mid, if it has one (used when a book side is empty)."""
        ...


class ScriptedMarket:
    """A market that replays only what a test or tool pushes into it, in time order."""

    def __init__(self, instruments: list[Instrument]) -> None:
        self._instruments = list(instruments)
        self._pending: list[MarketUpdate] = []
        self.taken: list[tuple[str, Side, int, int, int]] = []

    def push(self, *updates: MarketUpdate) -> None:
        self._pending.extend(updates)
        self._pending.sort(key=lambda u: u.ts_ns)

    def instruments(self) -> list[Instrument]:
        return list(self._instruments)

    def updates(self, until_ns: int) -> Iterator[MarketUpdate]:
        while self._pending and self._pending[0].ts_ns <= until_ns:
            yield self._pending.pop(0)

    def next_ns(self) -> int | None:
        return self._pending[0].ts_ns if self._pending else None

    def on_taken(self, symbol: str, side: Side, price: int, qty: int, now_ns: int) -> None:
        self.taken.append((symbol, side, price, qty, now_ns))

    def fair_price(self, symbol: str, now_ns: int) -> float | None:
        return None
