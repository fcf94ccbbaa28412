"""`DeskRunner`: one hedge desk's decisions, live and in the backtest alike.

A desk is one hedge venue and instrument set, shared by the baskets that hedge with it and
value risk alike. Its cores net their exposures and size the minimum-variance hedge
(`HedgeBook`, `HedgeSizer`) and keep its positions and P&L (`HedgeLedger`); the runner
decides the rest:

- **when to trade**: on every new exposure snapshot (a stale or repeated one changes
  nothing) and on a timer while a basket is in the netting (`RECHECK_NS`), in bounded
  rounds (`HEDGE_ROUNDS`) while newer snapshots keep arriving, one order at a time, with
  the activation, hysteresis and decision rule of the most sensitive basket in the
  netting, and only a trade that earns its cost (`HedgeRule`): what the risk it removes
  over the expected catch-up time adds to what the hedge removed for those baskets
  already, against fees, half the spread and impact;
- **how to trade**: through the mid at once, or, when the catch-up time allows and it pays
  better, resting post-only at the touch for `rest_ns` first and crossing what remains
  then; the share of a resting order that fills is learnt from the desk's own;
- **the expected catch-up time** of each basket: a held basket's is a day (an operator
  must act); else how long its imbalance has lasted at about its present size (since its
  variance was last below half the present one: an imbalance that has lasted t is expected
  to last about t more, and one that has just jumped is new); at most what the basket
  reports (`ExposureReport.catchup_s`, a figure from its plan: a funding timeout, the
  horizon left and the grace, the schedule's pace, which a stall that clears overstates);
- **what a trade cost and what it removed**: fees and the spread and impact paid against
  the mid, and ∫ of the variance the hedge took off (`RiskRemoved`), per basket by share;
- **what an order's failure means**: it may have filled all the same, so the positions are
  read back from the venue before the desk goes on; a resting order that could not be
  cancelled (`HedgeOrderOpen`) may yet fill, so its symbol is held, traded no more, while
  the desk tries to see it ended (`DeskPort.settle`, paced `HEDGE_SETTLE_PAUSE_S` doubling
  to `HEDGE_SETTLE_PAUSE_MAX_S`), then reads that position back and trades it again;
- **who an order served**: every basket in the netting (or just closed) shares its fees by
  its share of the risk, and the newest fill behind a basket's exposure times the
  reaction (fill seen → hedge order sent);
- **closing a basket**: it leaves the netting (unless its hedge is held), the desk trades
  what that changes, and the basket's `HedgeStatement` waits for that (bounded by
  `CLOSE_TIMEOUT_NS`).

Its port gives the time, timers, and the hedge venue as three callbacks (`DeskPort`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Protocol

import msgspec
import numpy as np

from actors.hedge import (
    HEDGE_ORDER_PREFIX,
    HEDGE_SETTLE_PAUSE_MAX_S,
    HEDGE_SETTLE_PAUSE_S,
    HedgeBook,
    HedgeCosts,
    HedgeLedger,
    HedgeOrder,
    HedgeOrderOpen,
    HedgeRule,
    HedgeSizer,
    RiskRemoved,
    hedge_quantity,
)
from actors.protocol import ExposureReport, HedgeFill, HedgeStatement, PlaceHedge
from actors.risk import RISK_HORIZON_S, RiskSettings
from actors.runners.port import Clock, Timer
from actors.spec import HedgeSpec
from venues.model import Instrument

HEDGE_ROUNDS = 20  # re-evaluations per trading burst, while newer exposures keep arriving
# What the desk expects of a resting hedge order before it has rested any: half of it filled.
# Each order it rests counts as one more observation (the prior weighs two).
PRIOR_REST_FILL = 0.5
PRIOR_REST_ORDERS = 2.0
CLOSE_TIMEOUT_NS = 15_000_000_000  # how long closing a basket waits for the trades it causes
# How often the desk looks again while a basket is in the netting and nothing is reported:
# a catch-up time reckoned from the imbalance's age grows without any new exposure.
RECHECK_NS = 1_000_000_000
# The pauses between tries at settling an order that may still rest (`HedgeOrderOpen`).
SETTLE_PAUSE_NS = int(HEDGE_SETTLE_PAUSE_S * 1e9)
SETTLE_PAUSE_MAX_NS = int(HEDGE_SETTLE_PAUSE_MAX_S * 1e9)


class DeskPort(Clock, Protocol):
    """A desk's world: its clock, and its hedge venue."""

    def hedge(self, cmd: PlaceHedge, then: Callable[[HedgeFill | Exception | None], None]) -> None:
        """Trade `cmd` now; `then` gets the final fill, None when the size rounds to
        nothing, or the error."""
        ...

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        """The venue's positions of the desk's account, by symbol."""
        ...

    def settle(
        self, symbol: str, client_order_id: str, then: Callable[[bool | Exception], None]
    ) -> None:
        """One try at cancelling a hedge order that may still rest (`HedgeOrderOpen`), by
        its client order id: `then(True)` once the venue has it ended (the cancel accepted,
        or `UnknownOrder`: gone, or never placed), else the error (it could not tell)."""
        ...


class BasketHedge(msgspec.Struct, kw_only=True):
    """What a desk did for one basket."""

    orders: int = 0
    max_abs_position: float = 0.0
    fees_usd: float = 0.0
    reaction_ns: list[int] = []
    # The fill behind the newest report, while that report is what the desk trades on: a
    # hedge order then answers that fill. A report that brings no newer fill (a price move)
    # clears it, so an order it causes is not timed from an older fill.
    pending_cause_ns: int | None = None
    seen_cause_ns: int = 0  # the newest fill any report carried
    spec: HedgeSpec | None = None
    risk: RiskSettings | None = None
    closed: bool = False
    held: bool = False  # finished, its exposure kept in the netting until released
    trading_cost_usd: float = 0.0  # its share of fees, spread and impact against the mid
    catchup_s: float | None = None  # as its newest report gave it
    since_ns: int | None = None  # when its current imbalance began (it entered the netting)
    # Its imbalance's variance (USD² a year) since its last report, and the earlier levels
    # as (when each ended, its variance), only those below every later one: the newest
    # below half the present variance ends the time the imbalance has been at its size.
    variance: float = 0.0
    levels: list[tuple[int, float]] = []


class DeskRunner:
    """One hedge desk (see the module docstring). `tag` goes into every client order id:
    unique per desk, so that hedge ids never repeat on a venue."""

    def __init__(
        self, port: DeskPort, instruments: list[Instrument], tag: str, risk: RiskSettings
    ) -> None:
        self.port = port
        self.tag = tag
        self.instruments = instruments
        self.book = HedgeBook(HedgeSizer(risk.model(), instruments))
        self.ledger = HedgeLedger({i.symbol: float(i.contract_size) for i in instruments})
        self.baskets: dict[str, BasketHedge] = {}
        self.lots = {i.symbol: float(i.lot) for i in instruments}
        self._lot = {i.symbol: i.lot for i in instruments}
        self.closing: set[str] = set()  # closed baskets whose unwind trades are under way
        self.n = 0  # hedge orders sent (numbers their client order ids)
        self.removed = RiskRemoved()
        self.last_trade_ns: int | None = None
        self._ticks = {i.symbol: float(i.tick) for i in instruments}
        self._slip: dict[str, tuple[float, float]] = {}  # symbol → (USD paid vs mid, notional)
        self._rested: list[float] = []  # the share of each resting order that filled
        self._recheck_ns: int | None = None  # the pending re-evaluation
        self.trading = False
        self._dirty = False
        self._idle: list[Callable[[], None]] = []  # waiting for the trading to stop
        # Orders answered `HedgeOrderOpen` (client order id → symbol): they may still rest
        # and fill, so their symbols are not traded until each is settled (`_settle`).
        self.unsettled: dict[str, str] = {}
        self._settling: dict[str, Timer] = {}  # the next try at settling each
        self.stopped = False

    # -- inputs ------------------------------------------------------------------------------
    def mark(self, mids: dict[str, float]) -> None:
        """The venue's newest mids of the hedge instruments."""
        self.ledger.mark(mids)

    def on_exposure(self, r: ExposureReport) -> None:
        """A basket's exposure snapshot: trade the desk towards its new target."""
        now = self.port.now_ns()
        self.book.accrue(self.ledger.unaccrued_usd(), now)
        if not self.book.report(r.basket_id, r.seq, r.exposure, now):
            return  # stale, repeated or from a closed basket
        stats = self.baskets.setdefault(r.basket_id, BasketHedge())
        stats.spec = r.hedge
        stats.risk = r.risk
        stats.catchup_s = r.catchup_s
        if not self.book.has(r.basket_id):
            stats.since_ns = None
        elif stats.since_ns is None:
            stats.since_ns, stats.levels = now, []
        else:  # the level the report ends
            while stats.levels and stats.levels[-1][1] >= stats.variance:
                stats.levels.pop()
            stats.levels.append((now, stats.variance))
        stats.variance = self.book.variance(r.basket_id)
        self._measure(now)
        if r.cause_ns is not None and r.cause_ns > stats.seen_cause_ns:
            stats.pending_cause_ns = stats.seen_cause_ns = r.cause_ns
        else:
            stats.pending_cause_ns = None
        self._kick()

    def close(
        self,
        basket_id: str,
        spec: HedgeSpec,
        risk: RiskSettings,
        hold: bool,
        then: Callable[[HedgeStatement], None],
    ) -> None:
        """The basket is finished: leave the netting (unless `hold`), let the desk trade what
        that changes (bounded by `CLOSE_TIMEOUT_NS`), then `then` gets its statement."""
        stats = self.baskets.setdefault(basket_id, BasketHedge(spec=spec, risk=risk))
        stats.held = hold
        if hold:
            then(self.statement(basket_id, held=True))
            return
        now = self.port.now_ns()
        self.book.accrue(self.ledger.unaccrued_usd(), now)
        self.book.close(basket_id, now)
        self._measure(now)
        stats.closed = True
        self.closing.add(basket_id)
        self._kick()

        def quiet() -> None:
            self.closing.discard(basket_id)
            self.book.accrue(self.ledger.unaccrued_usd(), self.port.now_ns())
            then(self.statement(basket_id, held=False))

        self._when_idle(quiet, self.port.now_ns() + CLOSE_TIMEOUT_NS)

    # -- what it holds -----------------------------------------------------------------------
    def statement(self, basket_id: str, *, held: bool) -> HedgeStatement:
        stats = self.baskets.get(basket_id) or BasketHedge()
        self.removed.accrue(self.port.now_ns())
        removed = self.removed.by_basket.get(basket_id, 0.0)
        price = stats.spec.risk_price if stats.spec is not None else HedgeRule().risk_price
        return HedgeStatement(
            basket_id=basket_id,
            orders=stats.orders,
            max_abs_position=stats.max_abs_position,
            pnl_usd=self.book.attributed_usd.get(basket_id, 0.0),
            fees_usd=stats.fees_usd,
            held=held,
            flat=self.flat(),
            reaction_ns=list(stats.reaction_ns),
            trading_cost_usd=stats.trading_cost_usd,
            risk_removed_usd2=removed,
            risk_value_usd=price * math.sqrt(max(removed, 0.0)),
            unsettled=list(self.unsettled),
        )

    def held(self) -> list[str]:
        """The finished baskets whose hedge this desk holds (until released)."""
        return [b for b, stats in self.baskets.items() if stats.held and b in self.book.baskets]

    def flat(self) -> bool:
        """No position, and no order that may still fill (`unsettled`)."""
        return not self.unsettled and all(
            abs(q) < self.lots[s] / 2 for s, q in self.ledger.qty.items()
        )

    def stop(self) -> None:
        """The desk is closed: no more tries at settling its orders (they stay `unsettled`)."""
        self.stopped = True
        for timer in self._settling.values():
            timer.cancel()
        self._settling.clear()

    def active(self) -> list[str]:
        """The baskets a trade now serves: those in the netting, and those just closed."""
        return [b for b, s in self.baskets.items() if not s.closed or b in self.closing]

    def limits(self) -> tuple[float, float]:
        """Activation and hysteresis: the most sensitive of the baskets in the netting."""
        specs = [s.spec for s in self.baskets.values() if s.spec is not None and not s.closed]
        if not specs:
            return (0.0, 0.0)
        return (min(s.activation_usd for s in specs), min(s.hysteresis_usd for s in specs))

    def rule(self) -> HedgeRule:
        """The decision rule of the baskets in the netting: the most ready to hedge of
        theirs (the highest risk price, the lowest ratios and hold)."""
        specs = [s.spec for s in self.baskets.values() if s.spec is not None and not s.closed]
        if not specs:
            return HedgeRule()
        return HedgeRule(
            risk_price=max(s.risk_price for s in specs),
            enter_ratio=min(s.enter_ratio for s in specs),
            exit_ratio=min(s.exit_ratio for s in specs),
            min_hold_ns=int(min(s.min_hold_s for s in specs) * 1e9),
            rest_ns=int(min(s.rest_s for s in specs) * 1e9),
        )

    def costs(self) -> HedgeCosts:
        """The cost model: the highest fees and impact the baskets state, half the spread
        per instrument: one tick at the mid (DESIGN §10: perps trade a tick wide), or what
        the desk's crossing fills paid against the mid on average, if more; and the share of
        a resting order that fills, from the desk's own (`PRIOR_REST_FILL` before any)."""
        specs = [s.spec for s in self.baskets.values() if s.spec is not None]
        half: dict[str, float] = {}
        for symbol, tick in self._ticks.items():
            mid = self.ledger.mids.get(symbol)
            bps = tick / 2 / mid * 10_000 if mid else 0.0
            paid, notional = self._slip.get(symbol, (0.0, 0.0))
            if notional > 0:
                bps = max(bps, paid / notional * 10_000)
            half[symbol] = bps
        fill = (sum(self._rested) + PRIOR_REST_FILL * PRIOR_REST_ORDERS) / (
            len(self._rested) + PRIOR_REST_ORDERS
        )
        return HedgeCosts(
            fee_bps=max((s.fee_bps for s in specs), default=0.0),
            impact_bps_per_musd=max((s.impact_bps_per_musd for s in specs), default=0.0),
            half_spread_bps=half,
            maker_fee_bps=max((s.maker_fee_bps for s in specs), default=0.0),
            passive_fill=fill,
        )

    def catchup_s(self, now_ns: int) -> float:
        """The netting's expected catch-up time (see the module docstring)."""
        seconds: dict[str, float] = {}
        for b, stats in self.baskets.items():
            if stats.held:
                seconds[b] = RISK_HORIZON_S
            elif stats.since_ns is not None:
                began = stats.since_ns
                for ended, variance in reversed(stats.levels):
                    if variance < stats.variance / 2:
                        began = ended
                        break
                lasted = max(0.0, (now_ns - began) / 1e9)
                bound = math.inf if stats.catchup_s is None else stats.catchup_s
                seconds[b] = min(lasted, bound)
        return self.book.catchup_s(seconds)

    def quantity(self, order: HedgeOrder) -> Decimal | None:
        """The order's size in base units, to the nearest lot; an unwind to flat closes the
        position exactly. None before the first mark (the venue side sizes it then)."""
        symbol = order.symbol
        return hedge_quantity(
            order,
            self._lot[symbol],
            self.ledger.qty[symbol],
            self.ledger.mids.get(symbol),
            self.ledger.contract_sizes[symbol],
        )

    # -- trading -----------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.trading:
            self._dirty = True
            return
        self.trading = True
        self._round(0)

    def _round(self, k: int) -> None:
        self._dirty = False
        activation, hysteresis = self.limits()
        now = self.port.now_ns()
        self.removed.accrue(now)
        orders = self.book.decide(
            self.ledger.positions_usd(),
            now,
            activation_usd=activation,
            hysteresis_usd=hysteresis,
            rule=self.rule(),
            costs=self.costs(),
            catchup_s=self.catchup_s(now),
            last_trade_ns=self.last_trade_ns,
            removed_usd2=self.removed.by_basket,
        )
        self._next(orders, k)

    def _measure(self, now_ns: int) -> None:
        """The variance the hedge takes off from now on: V(e) − V(e + Bh) of the netting."""
        book = self.book
        held = self.ledger.positions_usd()
        h = np.array([held.get(s, 0.0) for s in book.sizer.symbols])
        e = book.netted()
        rate = book.sizer.risk.variance(e) - book.sizer.residual_variance(e, h)
        self.removed.update(rate, book.shares_in_force(), now_ns)

    def _recheck(self) -> None:
        """Look again later while a basket is in the netting (see `RECHECK_NS`)."""
        if not self.book.baskets or self._recheck_ns is not None:
            return
        at = self.port.now_ns() + RECHECK_NS
        self._recheck_ns = at

        def again() -> None:
            if self._recheck_ns == at:
                self._recheck_ns = None
                self._kick()

        self.port.call_at(at, again)

    def _next(self, orders: list[HedgeOrder], k: int) -> None:
        if self.unsettled:  # a symbol whose order may still fill waits for it (`_settle`)
            held = set(self.unsettled.values())
            orders = [o for o in orders if o.symbol not in held]
        if orders:
            self._execute(orders[0], orders[1:], k)
            return
        if self._dirty and k + 1 < HEDGE_ROUNDS:
            self._round(k + 1)
            return
        self.trading = False
        self._recheck()
        waiting, self._idle = self._idle, []
        for fn in waiting:
            fn()

    def _when_idle(self, fn: Callable[[], None], deadline_ns: int) -> None:
        """Call `fn` once the desk stops trading, or at `deadline_ns`, whichever is first."""
        called = [False]

        def once() -> None:
            if not called[0]:
                called[0] = True
                fn()

        if not self.trading:
            once()
            return
        self._idle.append(once)
        self.port.call_at(deadline_ns, once)

    def _execute(self, order: HedgeOrder, later: list[HedgeOrder], k: int) -> None:
        qty = self.quantity(order)
        if qty is not None and qty <= 0:  # under half a lot at the mid: nothing to send
            self._next(later, k)
            return
        if order.rest_ns > 0 and qty is not None:
            before = self.ledger.qty[order.symbol]  # the position as the resting order leaves

            def rested(known: bool) -> None:
                # Positions that could not be read back say nothing of what the resting
                # order did: crossing its size again could double it. The next round sees.
                if known:
                    self._cross_rest(order, qty, before, later, k)
                else:
                    self._next(later, k)

            self._send(order, qty, order.rest_ns, rested)
        else:
            self._send(order, qty, 0, lambda _known: self._next(later, k))

    def _cross_rest(
        self, order: HedgeOrder, qty: Decimal, before: float, later: list[HedgeOrder], k: int
    ) -> None:
        """A resting order of `qty` ended (filled, cancelled or failed, the ledger then
        resynced from the venue), the position `before` it left: cross what it left."""
        symbol = order.symbol
        if order.target_usd == 0.0:
            left = self.quantity(order)  # to flat exactly, whatever filled
        else:
            moved = order.side.sign * (self.ledger.qty[symbol] - before)
            left = qty - Decimal(repr(max(0.0, moved))).quantize(self._lot[symbol])
        if left is None or left < self._lot[symbol]:
            self._next(later, k)
            return
        cross = msgspec.structs.replace(order, rest_ns=0)
        self._send(cross, left, 0, lambda _known: self._next(later, k))

    def _send(
        self,
        order: HedgeOrder,
        qty: Decimal | None,
        rest_ns: int,
        then: Callable[[bool], None],
    ) -> None:
        """Send one hedge order of `qty` (resting `rest_ns` first), book its fill, then
        `then(known)`; after an error, the venue's positions first (`known`: the ledger
        holds what the venue does)."""
        coid = f"{HEDGE_ORDER_PREFIX}{self.tag}-{self.n}"
        self.n += 1
        involved = self.active()
        # The fills this order answers are those known before it leaves, not any that a
        # report brings while it is on its way.
        causes = {b: self.baskets[b].pending_cause_ns for b in involved}

        def answered(fill: HedgeFill | Exception | None) -> None:
            if isinstance(fill, Exception):
                # It may have filled all the same: the venue's positions before going on.
                # A resting order that may still rest (`HedgeOrderOpen`) may fill later:
                # positions read now say nothing of what it will leave, so nothing is known,
                # and its symbol waits until it is seen ended.
                still_open = isinstance(fill, HedgeOrderOpen)
                if still_open:
                    self.unsettled[coid] = order.symbol

                def resynced(known: bool) -> None:
                    if still_open:  # after this read-back, whose answer could be the older
                        self._settle_later(coid, SETTLE_PAUSE_NS)
                    then(known and not still_open)

                self.port.positions(lambda held: self._resynced(held, resynced))
                return
            if fill is not None:
                self._filled(order, fill, involved, causes, rest_ns > 0)
            then(True)

        cmd = PlaceHedge(
            client_order_id=coid,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            notional_usd=order.notional_usd,
            rest_ns=rest_ns,
        )
        self.port.hedge(cmd, answered)

    def _filled(
        self,
        order: HedgeOrder,
        fill: HedgeFill,
        involved: list[str],
        causes: dict[str, int | None],
        rested: bool,
    ) -> None:
        r = fill.report
        qty = float(r.cum_filled)
        fee = float(r.cum_fee)
        paid = fee
        if rested and r.quantity > 0:
            self._rested.append(min(1.0, qty / float(r.quantity)))
        if qty > 0 and r.avg_price is not None:
            price = float(r.avg_price)
            self.ledger.fill(order.symbol, order.side, qty, price, fee)
            size = self.ledger.contract_sizes[order.symbol]
            slip = order.side.sign * (price - fill.mid) * qty * size
            if not rested:  # what crossing pays against the mid (`costs`)
                before = self._slip.get(order.symbol, (0.0, 0.0))
                self._slip[order.symbol] = (before[0] + slip, before[1] + fill.mid * qty * size)
            paid += slip
            self.last_trade_ns = self.port.now_ns()
        self.ledger.mark({order.symbol: fill.mid})
        self._measure(self.port.now_ns())
        shares = self.book.sizer.shares(self.book.baskets) or {
            b: 1.0 / len(involved) for b in involved
        }
        gross = self.ledger.gross_usd()
        for b in involved:
            stats = self.baskets[b]
            stats.orders += 1
            stats.fees_usd += fee * shares.get(b, 0.0)
            stats.trading_cost_usd += paid * shares.get(b, 0.0)
            stats.max_abs_position = max(stats.max_abs_position, gross)
            cause = causes[b]
            if cause is not None:
                stats.reaction_ns.append(fill.sent_ns - cause)
                if stats.pending_cause_ns == cause:
                    stats.pending_cause_ns = None

    def _settle_later(self, coid: str, pause_ns: int) -> None:
        if not self.stopped:
            at = self.port.now_ns() + pause_ns
            self._settling[coid] = self.port.call_at(at, lambda: self._settle(coid, pause_ns))

    def _settle(self, coid: str, pause_ns: int) -> None:
        """One try at seeing an order that may still rest ended (`DeskPort.settle`). Once it
        is, the venue's position in its symbol is read back and booked (what the order
        filled meanwhile), and only then is the symbol traded again; until then, tried again
        after a pause that doubles up to `SETTLE_PAUSE_MAX_NS`."""
        self._settling.pop(coid, None)
        symbol = self.unsettled.get(coid)
        if self.stopped or symbol is None:
            return
        again = min(2 * pause_ns, SETTLE_PAUSE_MAX_NS)

        def booked(known: bool) -> None:
            if self.stopped:
                return
            if not known:  # ended, but its fills not read: cancelling again says ended again
                self._settle_later(coid, again)
                return
            del self.unsettled[coid]
            self._kick()

        def ended(answer: bool | Exception) -> None:
            if self.stopped:
                return
            if answer is not True:
                self._settle_later(coid, again)
                return
            # Only its own symbol: another order may be on its way, its fill not booked yet.
            self.port.positions(lambda held: self._resynced(held, booked, (symbol,)))

        self.port.settle(symbol, coid, ended)

    def _resynced(
        self,
        held: dict[str, Decimal] | Exception,
        then: Callable[[bool], None],
        symbols: Collection[str] | None = None,
    ) -> None:
        """Take the venue's positions (in `symbols` only, when given) as the ledger's, then
        `then(known)`."""
        known = not isinstance(held, Exception)
        if known:
            for i in self.instruments:
                if symbols is None or i.symbol in symbols:
                    self.ledger.resync(i.symbol, float(held.get(i.symbol, 0)))
            self.last_trade_ns = self.port.now_ns()
            self._measure(self.port.now_ns())
        then(known)
