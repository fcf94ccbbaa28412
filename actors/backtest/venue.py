"""One simulated venue in the backtest: its exchange, its profile in motion, its subscribers."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from actors.backtest.loop import Loop
from actors.runners.leg import LegRunner
from venues.errors import VenueError
from venues.model import (
    AckKind,
    BookTicker,
    ExecutionReport,
    MarketTrade,
    NewOrder,
)
from venues.sim.exchange import AccountReport, SimExchange, WithdrawalSent
from venues.sim.outcome import (
    Admitted,
    apply_late,
    at_door,
    outage_refusal,
    pending_view,
    process,
    process_after_receipt,
)
from venues.sim.profile import VenueConditions

MS = 1_000_000
_ZERO = Decimal(0)

Answer = ExecutionReport | VenueError


class Venue:
    """One simulated venue: its exchange, its profile in motion, and its subscribers."""

    def __init__(
        self,
        loop: Loop,
        name: str,
        exchange: SimExchange,
        conditions: VenueConditions,
        account_id: str,
        step_ns: int,
    ) -> None:
        self.loop = loop
        self.name = name
        self._exchange = exchange
        self._quiet = -math.inf  # no step is idle before this (see `idle`)
        self._stale = True
        self.conditions = conditions
        self.profile = conditions.profile
        self.account_id = account_id
        self.step_ns = step_ns
        self.stream: dict[str, Callable[[ExecutionReport], None]] = {}  # client order id →
        self.listeners: dict[str, list[LegRunner]] = {}
        self._account_due = 0
        self._market_due: dict[str, int] = {}
        self.running = True
        # Where a withdrawal that left this venue goes (the collateral port delivers it).
        self.on_withdrawal: Callable[[WithdrawalSent], None] | None = None

    @property
    def typical_delivery_ns(self) -> int:
        """The median delay from an event at the venue to its delivery on a stream."""
        p = self.profile
        return int((p.stream_lag.median_ms + p.response.median_ms) * MS)

    @property
    def typical_rtt_ns(self) -> int:
        """The median round trip of an order request, as a leg would measure it."""
        p = self.profile
        return int((p.request.median_ms + p.response.median_ms) * MS)

    def latency(self, which: str) -> int:
        return self.conditions.latency_ns(which)

    def stream_delay(self) -> int:
        """From an event at the venue to its delivery on a stream (`VenueProfile`)."""
        return self.conditions.stream_delay_ns()

    @property
    def exchange(self) -> SimExchange:
        """The venue's exchange. Whoever uses it may change what the next step finds."""
        self._stale = True
        return self._exchange

    def start(self, listened: Collection[str]) -> None:
        """Step the market from now on. `listened`: the symbols whose market data some leg
        will listen to; the rest would be dropped at delivery (`dispatch`), so the exchange
        need not make it (most of a backtest's market events)."""
        self._exchange.publish_only(listened)
        self.loop.every(self.step_ns, self)

    def listen(self, symbol: str, leg: LegRunner) -> None:
        """`leg` gets `symbol`'s market data from now on (one step's book ticker and trades)."""
        publish = self._exchange.publish
        if publish is not None and symbol not in publish:
            raise ValueError(
                f"{self.name}: {symbol} is not among the symbols listened to ({publish})"
            )
        self.listeners.setdefault(symbol, []).append(leg)

    def idle(self, t_ns: int) -> bool:
        """Whether the step at `t_ns` has nothing to apply or deliver (most steps of a
        replay, nearly all of a synthetic market); known without asking the exchange again
        until something uses it."""
        if self._stale or not self.running:
            return t_ns < self.quiet_until()
        return t_ns < self._quiet  # asked every turn of the loop: the common case first

    def quiet_until(self) -> float:
        """Every step before this time is idle, as things stand (`idle`)."""
        if not self.running:
            return -math.inf
        if self._stale:
            self._quiet, self._stale = self._exchange.quiet_until(), False
        return self._quiet

    def step(self) -> bool:
        """The market step: advance the exchange to now and deliver what it did."""
        if not self.running:
            return False
        self._stale = True  # `exchange`, written out: once a step
        self._exchange.advance(self.loop.now)
        self.dispatch()
        return True

    def mid(self, symbol: str) -> Decimal | None:
        return self.exchange.book_snapshot(symbol, 1, self.loop.now).mid

    def dispatch(self) -> None:
        """Deliver what the exchange did: reports to their order's owner, market data to
        the legs of its symbol (one book ticker and the trades' sum per step), each stream
        in order after its stream lag."""
        events = self.exchange.drain()
        if not events:
            return
        now = self.loop.now
        listeners = self.listeners
        market: dict[str, list[Any]] = {}
        # Every market event passes here: dispatch on the exact type (the events are final
        # structs), and add up trades only for a symbol some leg listens to.
        for event in events:
            kind = type(event)
            if kind is MarketTrade:
                if event.symbol in listeners:
                    entry = market.setdefault(event.symbol, [None, _ZERO, _ZERO])
                    entry[1] += event.quantity
                    entry[2] += event.quantity * event.price
            elif kind is BookTicker:
                if event.symbol in listeners:
                    market.setdefault(event.symbol, [None, _ZERO, _ZERO])[0] = event
            elif kind is AccountReport:
                handler = self.stream.get(event.report.client_order_id)
                if handler is not None:
                    self._account_due = max(self._account_due, now + self.stream_delay())
                    self.loop.at(self._account_due, handler, event.report)
            elif kind is WithdrawalSent and self.on_withdrawal is not None:
                self.on_withdrawal(event)
        for symbol, (ticker, qty, notional) in market.items():
            legs = listeners.get(symbol)
            if not legs:
                continue
            due = max(self._market_due.get(symbol, 0), now + self.stream_delay())
            self._market_due[symbol] = due
            for leg in legs:
                self.loop.at(due, leg.on_market, ticker, qty, notional)

    # -- orders ----------------------------------------------------------------------------
    def submit(
        self,
        order: NewOrder,
        on_answer: Callable[[Answer], None],
        on_stream: Callable[[ExecutionReport], None],
    ) -> None:
        """Send `order` (it leaves now); `on_answer` gets the venue's answer or its refusal,
        `on_stream` every execution report of it."""
        self.stream[order.client_order_id] = on_stream
        self.loop.after(self.latency("request"), self._arrive, order, on_answer)

    def query(self, symbol: str, client_order_id: str, then: Callable[[Answer], None]) -> None:
        """Ask for an order by its client order id; `then` gets the report or the error."""
        self._median_trip(
            lambda: self.exchange.query(self.account_id, symbol, client_order_id), then
        )

    def cancel(self, symbol: str, client_order_id: str, then: Callable[[Answer], None]) -> None:
        """Cancel an order by its client order id; `then` gets its report (CANCELED) or the
        error (`UnknownOrder` when it has already ended)."""
        self._median_trip(
            lambda: self.exchange.cancel(self.account_id, symbol, client_order_id, self.loop.now),
            then,
            dispatch=True,  # the cancel's own report goes down the user stream too
        )

    def _median_trip(
        self, call: Callable[[], Answer], then: Callable[[Answer], None], *, dispatch: bool = False
    ) -> None:
        """`call` at the venue, the venue's median trip each way (no draw: the seeded
        latencies of the orders stay where they were); `then` gets its answer, or the
        refusal of an outage, or the `VenueError` it raised."""
        p = self.profile
        there = int(p.request.median_ms * MS)
        back = int(p.response.median_ms * MS)

        def arrive() -> None:
            answer: Answer
            refusal = outage_refusal(self.conditions, self.name, self.loop.now)
            if refusal is not None:
                answer = refusal
            else:
                try:
                    answer = call()
                except VenueError as e:
                    answer = e
                if dispatch:
                    self.dispatch()
            self.loop.after(back, then, answer)

        self.loop.after(there, arrive)

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        """The account's positions by symbol, a median round trip away."""
        p = self.profile
        rtt = int((p.request.median_ms + p.response.median_ms) * MS)
        held = {
            pos.symbol: pos.quantity
            for pos in self.exchange.positions(self.account_id, self.loop.now)
        }
        self.loop.after(rtt, then, held)

    def _respond(self, on_answer: Callable[[Answer], None], answer: Answer) -> None:
        self.loop.after(self.latency("response"), on_answer, answer)

    def _arrive(self, order: NewOrder, on_answer: Callable[[Answer], None]) -> None:
        received = self.loop.now
        admitted = at_door(self.conditions, self.name, received)
        if isinstance(admitted, VenueError):
            self._respond(on_answer, admitted)
            return
        if admitted.answered_at_receipt:
            self.loop.after(self.latency("processing"), self._process_later, order, received)
            self._respond(on_answer, pending_view(self.name, order, AckKind.RECEIPT, received))
            return
        if admitted.apply_after_ns is not None:
            self.loop.at(received + admitted.apply_after_ns, self._apply_late, order, received)
        processing = self.latency("processing")
        self.loop.after(processing, self._process, order, received, on_answer, admitted)

    def _process(
        self,
        order: NewOrder,
        received: int,
        on_answer: Callable[[Answer], None],
        admitted: Admitted,
    ) -> None:
        c, now = self.conditions, self.loop.now
        answer = process(c, self.exchange, self.account_id, order, received, now, admitted)
        # Deliver only after placing an order: between steps the outbox may hold market data
        # (a book snapshot advances the exchange) that the next step delivers, and delivering
        # it here instead would move the seeded stream-delay draws.
        if admitted.applied_when_processed:
            self.dispatch()
        self._respond(on_answer, answer)

    def _process_later(self, order: NewOrder, received: int) -> None:
        process_after_receipt(
            self.conditions, self.exchange, self.account_id, order, received, self.loop.now
        )
        self.dispatch()

    def _apply_late(self, order: NewOrder, received: int) -> None:
        apply_late(self.conditions, self.exchange, self.account_id, order, received, self.loop.now)
        self.dispatch()
