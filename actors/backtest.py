"""The discrete-event backtest: a basket through the actors' own runners on simulated time.

What runs is what the actors run (DESIGN §3): the basket's `BasketRunner` (its
`BasketCoordinator`, failure policy, reconciliation and report), each leg's `LegRunner`
(`SliceScheduler`, `LegLedger`, stop, unwind, reconcile) and the hedge desk's `DeskRunner`
(`HedgeBook`/`HedgeSizer`/`HedgeLedger`); the venues are `SimExchange`s with their market
source (synthetic or replayed) and their `VenueConditions` (latency, ack semantics,
outages, injected rejects, rate limits), deciding an order's fate by
`venues.sim.outcome` as the in-process venue does. This module is only their driver: what
the shells do with Ray and sockets is replaced by events on one simulated clock:

- every message between actors (progress, adjustments, exposure, hedge orders) takes one draw
  of `ray_call`, a Ray actor call's one-way time as measured on the development machine;
- an order takes the venue profile's request, processing and response draws, and its
  answer is what the profile's ack semantics show (RECEIPT, ACCEPTED, RESULT); execution
  reports and market data reach the legs after the profile's stream lag; a query takes
  the venue's median trip each way;
- the venues advance their market every `market_step_ms`, as the in-process venue does (a
  step with nothing due is only counted, in its place: `_Loop.every`).

Clocks are exact in a backtest: every time is on the one simulated axis, so the venues'
`clock_offset_ms` is not applied (the live engine measures and removes it, DESIGN §6). The
backtest starts flat and does not simulate the collateral actor's reservation (each
venue's exchange still checks its own margin on every order). A failed or cancelled basket
ends under its policy as a live one does: its legs stop, and under `unwind` they trade
back to flat.

Modes (the `--compare` of `legato backtest`):
- `coordinated`: legato — a synchronised launch (each leg sends half its venue's median
  round trip early), the synchronizer, and the basket's hedge;
- `independent`: every leg on its own TWAP from the same start, no synchronizer, no hedge,
  no launch compensation (how most systems execute);
- `sequential`: leg after leg in the basket's order, each over horizon / number of legs,
  the next starting when the previous is done; no synchronizer, no hedge.

One seed fixes everything: the synthetic market's seed is the venue's configured seed plus
the run's, a replayed market starts a seed-dependent stretch into its recording, and every
latency draw comes from generators seeded by the seed (and the venue's name).
"""

from __future__ import annotations

import contextlib
import enum
import gc
import heapq
import math
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from actors.basket import BasketCoordinator, ExposureChanged
from actors.hedge import hedge_limit_order
from actors.leg import Reconciliation
from actors.lifecycle import BasketLifecycle, BasketState
from actors.messages import LegProgress
from actors.protocol import (
    ArmLeg,
    ExposureReport,
    HedgeFill,
    HedgeStatement,
    PlaceHedge,
    VenueEndpoint,
)
from actors.report import BasketReport, CollateralReport
from actors.risk import RiskSettings, with_risk_betas
from actors.runners.basket import BasketRunner, RunSettings
from actors.runners.hedge import DeskRunner
from actors.runners.leg import LegRunner, Unwound
from actors.spec import BasketSpec, RebalanceSpec, ResolvedBasket, validate
from actors.sync import AdjustLeg
from venues.config import (
    ReplayMarketConfig,
    SimVenueConfig,
    SyntheticMarketConfig,
    VenuesConfig,
    build_market,
    profile_from,
)
from venues.errors import VenueError
from venues.model import (
    AckKind,
    BookTicker,
    ExecutionReport,
    Instrument,
    MarketTrade,
    NewOrder,
)
from venues.sim.exchange import AccountReport, AccountSpec, SimExchange
from venues.sim.outcome import (
    Admitted,
    apply_late,
    at_door,
    outage_refusal,
    pending_view,
    process,
    process_after_receipt,
)
from venues.sim.profile import Latency, VenueConditions

NS = 1_000_000_000
MS = 1_000_000
_ZERO = Decimal(0)
SIM_EPOCH_NS = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z: synthetic runs start here
SYNTHETIC_WARMUP_NS = 1 * NS  # the synthetic venues run this long before the basket arrives
REPLAY_WARMUP_NS = 10 * NS  # a replayed book is rebuilt from its snapshot within seconds
REPLAY_STRIDE_NS = 37 * NS  # seed s starts s strides into the recording (wrapping round)
# Past its deadline a basket stops (10 s), unwinds (30 s) and reconciles (30 s) at most: the
# simulation gives it that, and a minute more, before it ends the run.
END_LIMIT_NS = 130 * NS


class ExecutionMode(enum.StrEnum):
    """How the backtest executes the basket (module docstring)."""

    COORDINATED = "coordinated"
    INDEPENDENT = "independent"
    SEQUENTIAL = "sequential"


class BacktestError(ValueError):
    """A backtest that cannot run as asked; the message names the input and what is accepted."""


class BacktestSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's figures the backtest plays by (defaults: the engine's own)."""

    tick_ms: float = 100.0  # the basket's coordination step (engine `tick_ms`)
    fire_lead_ms: float = 50.0  # legs fire this far after the basket is accepted
    progress_every_ms: float = 250.0  # a leg's heartbeat snapshot
    market_step_ms: float = 5.0  # venues advance their market this often
    ray_call: Latency = Latency(median_ms=0.7, p99_ms=3.0)  # one actor call, one way
    min_overrun_s: float = 60.0  # engine `min_overrun_s`: a basket this late past horizon fails


class RunResult(msgspec.Struct, kw_only=True):
    """One basket run: its report (TCA included) and what the run cost."""

    mode: ExecutionMode
    seed: int
    report: BasketReport
    fire_ns: int
    done_ns: int | None
    market_events: int
    wall_s: float

    @property
    def completion_s(self) -> float | None:
        """From the launch instant to the moment every leg was done."""
        return None if self.done_ns is None else (self.done_ns - self.fire_ns) / NS

    def metrics(self) -> dict[str, float | None]:
        """The figures `legato backtest` compares across modes. Legging risk and peak
        imbalance are the TCA's on the fills' own times (the exposure held); the basket's
        view of it on its coordinator ticks is `observed_legging_risk_usd`."""
        tca = self.report.tca or {}
        return {
            "legging_risk_usd": tca.get("fill_legging_risk_usd"),
            "peak_imbalance_usd": tca.get("fill_peak_imbalance_usd"),
            "shortfall_bps": tca.get("shortfall_bps"),
            "completion_s": self.completion_s,
            "hedge_cost_usd": tca.get("hedge_cost_usd"),
            "observed_legging_risk_usd": tca.get("legging_risk_usd"),
        }


METRICS = (
    "legging_risk_usd",
    "peak_imbalance_usd",
    "shortfall_bps",
    "completion_s",
    "hedge_cost_usd",
)


# -- the simulated clock -------------------------------------------------------------------
class _Periodic(Protocol):
    """Work the loop runs every period (a venue's market step)."""

    def idle(self, t_ns: int) -> bool:
        """Whether a run at `t_ns` would do nothing at all (as things stand)."""
        ...

    def step(self) -> bool:
        """One run at the loop's time; False stops it (no more runs)."""
        ...


class _Timer:
    """A runner's timer on the loop: cancelled, it does nothing when its time comes."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn: Callable[[], None] | None = fn

    def cancel(self) -> None:
        self._fn = None

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


class _Loop:
    """Events in time order; ties in the order they were scheduled.

    A periodic task (`every`) keeps the order of an event that reschedules itself at the
    end of each run, without a heap entry per run: a venue steps every 5 ms, and most of
    its steps find nothing to do.
    """

    def __init__(self, now_ns: int) -> None:
        self.now = now_ns
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._n = 0
        self._tasks: list[list[Any]] = []  # heap of [next run's time, its number, period, task]

    def at(self, t_ns: int, fn: Callable[..., None], *args: Any) -> None:
        self._n += 1
        heapq.heappush(self._heap, (max(t_ns, self.now), self._n, fn, args))

    # The `Clock` a runner's port needs (`actors.runners.port`).
    def now_ns(self) -> int:
        return self.now

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> _Timer:
        timer = _Timer(fn)
        self.at(t_ns, timer)
        return timer

    def after(self, dt_ns: int, fn: Callable[..., None], *args: Any) -> None:
        # `at(now + dt_ns)` written out: tens of thousands of calls a run.
        self._n += 1
        heapq.heappush(self._heap, (self.now + max(dt_ns, 0), self._n, fn, args))

    def every(self, period_ns: int, task: _Periodic) -> None:
        """Run `task` now and every `period_ns` after, until a run returns False: in the
        order, and numbering later events, exactly as `at(now, f)` with `f` ending in
        `after(period_ns, f)` would. A run that `task.idle` says would do nothing is only
        counted, not made."""
        self._n += 1
        heapq.heappush(self._tasks, [self.now, self._n, period_ns, task])

    def run(self, done: Callable[[], bool], until_ns: int) -> None:
        heap, tasks, pop = self._heap, self._tasks, heapq.heappop
        while (heap or tasks) and not done():
            if tasks:
                first = tasks[0]
                t = first[0]
                if not heap or t < heap[0][0] or (t == heap[0][0] and first[1] < heap[0][1]):
                    if t > until_ns:
                        self.now = until_ns
                        return
                    self.now = t
                    task = first[3]
                    if not task.idle(t) and not task.step():
                        pop(tasks)
                        continue
                    self._n += 1  # where the run would have rescheduled itself
                    first[0], first[1] = t + first[2], self._n
                    heapq.heapreplace(tasks, first)
                    continue
            t, _, fn, args = pop(heap)
            if t > until_ns:
                self.now = until_ns
                return
            self.now = t
            fn(*args)


# -- a venue -------------------------------------------------------------------------------
Answer = ExecutionReport | VenueError


class _Venue:
    """One simulated venue: its exchange, its profile in motion, and its subscribers."""

    def __init__(
        self,
        loop: _Loop,
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

    def start(self) -> None:
        self.loop.every(self.step_ns, self)

    def idle(self, t_ns: int) -> bool:
        """Whether the step at `t_ns` has nothing to apply or deliver (most steps of a
        replay, nearly all of a synthetic market); known without asking the exchange again
        until something uses it."""
        if not self.running:
            return False
        if self._stale:
            self._quiet, self._stale = self._exchange.quiet_until(), False
        return t_ns < self._quiet

    def step(self) -> bool:
        """The market step: advance the exchange to now and deliver what it did."""
        if not self.running:
            return False
        self.exchange.advance(self.loop.now)
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
        market: dict[str, list[Any]] = {}
        for event in events:
            if isinstance(event, AccountReport):
                handler = self.stream.get(event.report.client_order_id)
                if handler is not None:
                    self._account_due = max(self._account_due, now + self.stream_delay())
                    self.loop.at(self._account_due, handler, event.report)
            elif isinstance(event, BookTicker):
                market.setdefault(event.symbol, [None, _ZERO, _ZERO])[0] = event
            elif isinstance(event, MarketTrade):
                entry = market.setdefault(event.symbol, [None, _ZERO, _ZERO])
                entry[1] += event.quantity
                entry[2] += event.quantity * event.price
        for symbol, (ticker, qty, notional) in market.items():
            legs = self.listeners.get(symbol)
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
        """Ask for an order by its client order id; `then` gets the report or the error. A
        query takes the venue's median trip each way (no draw: the seeded latencies of the
        orders stay where they were)."""
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
                    answer = self.exchange.query(self.account_id, symbol, client_order_id)
                except VenueError as e:
                    answer = e
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


# -- the runners' ports ---------------------------------------------------------------------
class _LegPort:
    """A `LegPort` on simulated time: the leg's venue one trip away, its basket one Ray
    call away (`_Run.to_basket`). Set `runner` before the first order."""

    def __init__(self, run: _Run, venue: _Venue) -> None:
        self.loop = run.loop
        self.now_ns = run.loop.now_ns
        self.call_at = run.loop.call_at
        self.send = run.to_basket
        self._venue = venue
        self.runner: LegRunner | None = None

    @property
    def venue(self) -> _LegPort:
        return self

    def place(self, order: NewOrder, then: Callable[[Answer], None]) -> None:
        runner = self.runner
        assert runner is not None
        self._venue.submit(order, then, runner.on_report)

    def query(self, symbol: str, client_order_id: str, then: Callable[[Answer], None]) -> None:
        self._venue.query(symbol, client_order_id, then)


class _DeskPort:
    """A `DeskPort` on simulated time: the hedge actor asks the hedge venue's actor to
    trade (one Ray call), which sends an IOC through the mid and hands the final fill back
    (another)."""

    def __init__(self, run: _Run, venue: _Venue, instruments: list[Instrument]) -> None:
        self.run = run
        self.loop = run.loop
        self.now_ns = run.loop.now_ns
        self.call_at = run.loop.call_at
        self.venue = venue
        self.instruments = {i.symbol: i for i in instruments}

    def mids(self) -> dict[str, float]:
        out = {}
        for symbol in self.instruments:
            mid = self.venue.mid(symbol)
            if mid is not None:
                out[symbol] = float(mid)
        return out

    def hedge(self, cmd: PlaceHedge, then: Callable[[HedgeFill | Exception | None], None]) -> None:
        self.loop.after(self.run.ray_ns(), self._trade, cmd, then)

    def _trade(self, cmd: PlaceHedge, then: Callable[[HedgeFill | Exception | None], None]) -> None:
        back = self.run.ray_ns
        mid = self.venue.mid(cmd.symbol)
        inst = self.instruments[cmd.symbol]
        new = (
            None
            if mid is None
            else hedge_limit_order(
                cmd.client_order_id, inst, cmd.side, cmd.qty, cmd.notional_usd, mid
            )
        )
        if new is None or mid is None:
            self.loop.after(back(), then, None)
            return
        sent = self.loop.now
        finished = [False]

        def final(report: ExecutionReport) -> None:
            if finished[0] or not report.status.is_terminal:
                return
            finished[0] = True
            self.loop.after(back(), then, HedgeFill(report=report, sent_ns=sent, mid=float(mid)))

        def answered(answer: Answer) -> None:
            if isinstance(answer, VenueError):
                finished[0] = True
                self.loop.after(back(), then, answer)
            elif answer.status.is_terminal and answer.ack_kind is AckKind.RESULT:
                final(answer)

        self.venue.submit(new, answered, final)

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        self.venue.positions(then)


# -- one run -------------------------------------------------------------------------------
class _Run:
    """One basket, one mode, one seed, from acceptance to its report: the driver of its
    `BasketRunner`, its `LegRunner`s and its hedge `DeskRunner` on simulated time."""

    def __init__(
        self,
        basket: ResolvedBasket,
        venues: dict[str, _Venue],
        loop: _Loop,
        mode: ExecutionMode,
        seed: int,
        risk_settings: RiskSettings,
        settings: BacktestSettings,
        configs: Mapping[str, SimVenueConfig],
    ) -> None:
        self.basket = basket
        self.venues = venues
        self.loop = loop
        self.now_ns = loop.now_ns
        self.call_at = loop.call_at
        self.mode = mode
        self.risk_settings = risk_settings
        self.settings = settings
        self._rng = random.Random(seed * 7_919 + 1)
        self.accepted_ns = loop.now
        lifecycle = BasketLifecycle(basket.basket_id, loop.now)
        lifecycle.to(BasketState.CHECKING, loop.now, "validated against the venues' books")
        lifecycle.to(BasketState.ARMING, loop.now, "legs armed (simulated)")
        params = basket.params
        coordinated = mode is ExecutionMode.COORDINATED
        hedged = coordinated and basket.hedge is not None and basket.hedge.enabled
        n = len(basket.legs)
        horizon_ns = int(params.horizon_s * NS)
        leg_horizon_ns = horizon_ns // n if mode is ExecutionMode.SEQUENTIAL else horizon_ns
        slice_ns = int(min(params.slice_s, params.horizon_s) * NS)
        band = params.completion_band
        risk = risk_settings.model()
        self.legs: dict[str, LegRunner] = {}
        self._rtt: dict[str, int] = {}
        for leg in basket.legs:
            venue = venues[leg.venue]
            cmd = ArmLeg(
                basket_id=basket.basket_id,
                leg=leg,
                endpoint=VenueEndpoint(venue=leg.venue, config=configs[leg.venue]),
                horizon_ns=leg_horizon_ns,
                slice_ns=min(slice_ns, leg_horizon_ns),
                participation_cap=params.participation_cap,
                max_child_fraction=(
                    max(band / 2, params.slice_s / params.horizon_s)
                    if coordinated and band is not None
                    else None
                ),
                progress_every_ns=int(settings.progress_every_ms * MS),
                vol_annual=risk.volatility(leg.instrument),
                synchronized=coordinated,
            )
            port = _LegPort(self, venue)
            # Armed as a leg actor is: with the book read from the venue, its stream's first
            # ticker a stream delivery away (from a distant venue, after the fire time).
            book = venue.exchange.book_snapshot(leg.symbol, 1, loop.now).top()
            runner = port.runner = LegRunner(cmd, port, book=book, ack_kind=venue.profile.ack)
            venue.listeners.setdefault(leg.symbol, []).append(runner)
            self.legs[leg.leg_id] = runner
            self._rtt[leg.leg_id] = venue.typical_rtt_ns
        self.desk: DeskRunner | None = None
        self._desk_port: _DeskPort | None = None
        if hedged and basket.hedge is not None:
            self._desk_port = _DeskPort(self, venues[basket.hedge.venue], basket.hedge_instruments)
            self.desk = DeskRunner(self._desk_port, basket.hedge_instruments, "bt", risk_settings)
        run_settings = RunSettings(
            tick_ns=int(settings.tick_ms * MS),
            min_overrun_s=settings.min_overrun_s,
            leg_silence_ns=0,  # a simulated leg never goes quiet
        )
        self.runner = BasketRunner(
            basket,
            lifecycle,
            self,
            risk,
            run_settings,
            hedge=hedged,
            synchronize=coordinated,
            sequential=mode is ExecutionMode.SEQUENTIAL,
        )
        # The basket's fire call reaches each leg well inside the lead; a leg whose venue is
        # far sends one one-way trip early when it is kept in step.
        rtts = list(self._rtt.values()) if coordinated else []
        lead = BasketRunner.fire_lead_ns(int(settings.fire_lead_ms * MS), 0, rtts)
        self.fire_ns = loop.now + lead
        overrun = max(settings.min_overrun_s, params.horizon_s)
        self.deadline_ns = self.fire_ns + int((params.horizon_s + params.grace_s + overrun) * NS)

    def ray_ns(self) -> int:
        return self.settings.ray_call.sample_ns(self._rng)

    @property
    def finished(self) -> bool:
        return self.runner.finished

    def start(self) -> None:
        self.runner.fire(self.fire_ns)

    def to_basket(self, p: LegProgress) -> None:
        self.loop.after(self.ray_ns(), self.runner.on_progress, p)

    # -- the `BasketPort` ------------------------------------------------------------------
    def fire(self, leg_id: str, at_ns: int) -> None:
        self.legs[leg_id].fire(at_ns, self._rtt[leg_id])

    def adjust(self, adj: AdjustLeg) -> None:
        self.loop.after(self.ray_ns(), self.legs[adj.leg_id].adjust, adj)

    def exposure(self, e: ExposureChanged) -> None:
        self.loop.after(self.ray_ns(), self._to_desk, e)

    def stop(self, leg_id: str, reason: str, then: Callable[[LegProgress | Exception], None]):
        self.legs[leg_id].stop(reason, then)

    def unwind(self, leg_id: str, within_ns: int, then: Callable[[Unwound | Exception], None]):
        self.legs[leg_id].unwind(self.loop.now + within_ns, then)

    def reconcile(
        self, leg_id: str, within_ns: int, then: Callable[[Reconciliation | Exception], None]
    ) -> None:
        self.legs[leg_id].reconcile(self.loop.now + within_ns, then)

    def recover(self, leg_id: str, then: Callable[[Exception | None], None]) -> None:
        then(RuntimeError("a simulated leg is never lost"))

    def ping(self, leg_id: str, within_ns: int, then: Callable[[str | None], None]) -> None:
        then(None)

    def close_hedge(self, hold: bool, then: Callable[[HedgeStatement | Exception], None]):
        desk, port, hedge = self.desk, self._desk_port, self.basket.hedge
        assert desk is not None and port is not None and hedge is not None
        desk.mark(port.mids())
        desk.close(self.basket.basket_id, hedge, self.risk_settings, hold, then)

    def hedge_gross_usd(self) -> float:
        return self.desk.ledger.gross_usd() if self.desk is not None else 0.0

    def sampled(self, core: BasketCoordinator, hedge_usd: float, force: bool) -> None:
        pass

    def _to_desk(self, e: ExposureChanged) -> None:
        desk, port, hedge = self.desk, self._desk_port, self.basket.hedge
        assert desk is not None and port is not None and hedge is not None
        desk.mark(port.mids())
        report = ExposureReport(
            basket_id=self.basket.basket_id,
            seq=e.seq,
            hedge=hedge,
            venue_epoch="",
            exposure=e.exposure,
            cause_ns=e.cause_ns,
            ts_ns=e.ts_ns,
            risk=self.risk_settings,
        )
        desk.on_exposure(report)

    # -- the report ------------------------------------------------------------------------
    def report(self) -> BasketReport:
        legs = {leg_id: leg.report() for leg_id, leg in self.legs.items()}
        notes = []
        if not self.runner.finished:
            notes.append("the simulation's time limit ended the run")
        return self.runner.report(
            legs, submitted_ns=self.accepted_ns, collateral=CollateralReport(), notes=notes
        )


# -- building a run ------------------------------------------------------------------------
def check_venues(config: VenuesConfig, replay: Path | None = None) -> VenuesConfig:
    """The venues as the backtest runs them: simulated only; with `replay`, every venue
    replays that directory (a replay venue keeps its kind, a synthetic one becomes USD-M)."""
    venues: dict[str, Any] = {}
    for name, cfg in config.venues.items():
        if not isinstance(cfg, SimVenueConfig):
            raise BacktestError(
                f"venues.{name}: kind {getattr(cfg, 'kind', type(cfg).__name__)!r}; the backtest "
                'runs simulated venues only (kind = "sim")'
            )
        if not cfg.accounts:
            raise BacktestError(f"venues.{name}.accounts: no account to trade from")
        if replay is not None:
            kind = cfg.market.kind if isinstance(cfg.market, ReplayMarketConfig) else "usdm"
            market = ReplayMarketConfig(dir=str(replay), kind=kind)
            venues[name] = msgspec.structs.replace(cfg, market=market)
        else:
            venues[name] = cfg
    return msgspec.structs.replace(config, venues=venues)


def _seeded(cfg: SimVenueConfig, seed: int) -> SimVenueConfig:
    market = cfg.market
    if isinstance(market, SyntheticMarketConfig):
        return msgspec.structs.replace(
            cfg, market=msgspec.structs.replace(market, seed=market.seed + seed)
        )
    return cfg


def _build_venues(
    config: VenuesConfig, seed: int, loop: _Loop, settings: BacktestSettings, horizon_s: float
) -> tuple[dict[str, _Venue], int]:
    """Every venue at `loop.now`, and the instant the basket arrives."""
    start = loop.now
    venues: dict[str, _Venue] = {}
    spans: list[int] = []
    for name, raw in config.venues.items():
        assert isinstance(raw, SimVenueConfig)
        cfg = _seeded(raw, seed)
        try:
            market = build_market(cfg, start, origin_ns=start)
        except (ValueError, OSError) as e:
            raise BacktestError(f"venues.{name}.market: {e}") from None
        if isinstance(cfg.market, ReplayMarketConfig):
            spans.append(market.duration_ns)  # type: ignore[attr-defined]
        exchange = SimExchange(name, market, start_ns=start)
        for acct in cfg.accounts:
            exchange.open_account(
                AccountSpec(
                    account_id=acct.account_id, balances=dict(acct.balances), leverage=acct.leverage
                )
            )
        conditions = VenueConditions(
            profile_from(cfg.profile), zlib.crc32(name.encode()) + seed * 1_000_003, start
        )
        venues[name] = _Venue(
            loop,
            name,
            exchange,
            conditions,
            cfg.accounts[0].account_id,
            int(settings.market_step_ms * MS),
        )
    if not spans:
        # The synthetic market moves on a grid of steps; where the basket's slice grid falls
        # on it is the seed's too, so no run has every slice land just after a step.
        phase = (seed * 37_000_000 + 13_000_000) % 100_000_000
        return venues, start + SYNTHETIC_WARMUP_NS + phase
    # A replayed market: each seed starts its own stretch of the recording, leaving room for
    # the basket to run past its horizon.
    usable = min(spans) - REPLAY_WARMUP_NS - int(2 * horizon_s * NS)
    if usable <= 0:
        raise BacktestError(
            f"params.horizon_s: {horizon_s:g} s needs a recording of at least "
            f"{(REPLAY_WARMUP_NS / NS + 2 * horizon_s):g} s; the replay holds "
            f"{min(spans) / NS:.0f} s"
        )
    return venues, start + REPLAY_WARMUP_NS + (seed * REPLAY_STRIDE_NS) % usable


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a while: a run makes hundreds of thousands of
    short-lived objects, so the collector would sweep the process's whole heap (all the runs
    before, in a benchmark) again and again while freeing almost nothing refcounting does not.
    The cycles a run leaves are collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_collector_paused()
def run_once(
    spec: BasketSpec | RebalanceSpec,
    config: VenuesConfig,
    mode: ExecutionMode,
    seed: int,
    *,
    risk: RiskSettings | None = None,
    settings: BacktestSettings | None = None,
    start_ns: int | None = None,
    arrive_ns: int | None = None,
    cancel_at_ns: int | None = None,
) -> RunResult:
    """Run `spec` once on `config`'s simulated venues (see `check_venues`) in `mode`.

    `start_ns` is when the venues start (default `SIM_EPOCH_NS`), `arrive_ns` when the basket
    is accepted (default: the seed's instant after the warm-up): together with a synthetic
    market of fixed origin they replay a live run's market exactly. `cancel_at_ns`: the user
    cancels the basket at that instant (simulated time), as `legato cancel` would live.

    Raises `SpecError` for a basket the venues refuse (nothing runs), `BacktestError` for
    venues the backtest cannot simulate.
    """
    settings = settings or BacktestSettings()
    risk = risk or RiskSettings()
    wall = time.perf_counter()
    loop = _Loop(SIM_EPOCH_NS if start_ns is None else start_ns)
    horizon_s = getattr(spec.params, "horizon_s", 0.0)
    venues, accepted = _build_venues(config, seed, loop, settings, horizon_s)
    if arrive_ns is not None:
        if arrive_ns < loop.now:
            raise BacktestError(f"arrive_ns: {arrive_ns} is before the venues start ({loop.now})")
        accepted = arrive_ns
    factors = list(risk.factors)
    instruments: dict[str, dict[str, Instrument]] = {}
    prices: dict[tuple[str, str], Decimal] = {}
    for name, venue in venues.items():
        venue.exchange.advance(accepted)
        venue.exchange.drain()
        listed = venue.exchange.instruments.values()
        instruments[name] = {
            i.symbol: with_risk_betas(i, factors, configured=risk.betas) for i in listed
        }
        for symbol in instruments[name]:
            mid = venue.exchange.book_snapshot(symbol, 1, accepted).mid
            if mid is not None:
                prices[(name, symbol)] = mid
    basket = validate(spec, instruments, prices, {})
    loop.now = accepted
    for venue in venues.values():
        venue.start()
    configs = {name: cfg for name, cfg in config.venues.items() if isinstance(cfg, SimVenueConfig)}
    run = _Run(basket, venues, loop, mode, seed, risk, settings, configs)
    run.start()
    if cancel_at_ns is not None:
        loop.at(cancel_at_ns, run.runner.cancel, "cancelled by the user")
    loop.run(lambda: run.finished, run.deadline_ns + END_LIMIT_NS)
    events = sum(v.exchange.updates_applied for v in venues.values())
    report = run.report()
    return RunResult(
        mode=mode,
        seed=seed,
        report=report,
        fire_ns=run.fire_ns,
        done_ns=run.runner.done_ns,
        market_events=events,
        wall_s=time.perf_counter() - wall,
    )


def summarize(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """{mean, p50, p95, n} of the values that exist."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"mean": None, "p50": None, "p95": None, "n": 0}
    a = np.asarray(xs, dtype=float)
    return {
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "n": len(xs),
    }


def compare(
    spec: BasketSpec | RebalanceSpec,
    config: VenuesConfig,
    modes: Sequence[ExecutionMode],
    seeds: int,
    *,
    risk: RiskSettings | None = None,
    settings: BacktestSettings | None = None,
    progress: Callable[[RunResult], None] | None = None,
) -> dict[str, Any]:
    """Every mode over seeds 0..seeds−1: the JSON document of `legato backtest`."""
    if seeds < 1:
        raise BacktestError(f"seeds: {seeds}; at least 1")
    if not modes:
        raise BacktestError("compare: no mode; give one or more of " + _mode_names())
    runs: dict[ExecutionMode, list[RunResult]] = {m: [] for m in modes}
    for seed in range(seeds):
        for mode in modes:
            r = run_once(spec, config, mode, seed, risk=risk, settings=settings)
            runs[mode].append(r)
            if progress is not None:
                progress(r)
    all_runs = [r for rs in runs.values() for r in rs]
    events = sum(r.market_events for r in all_runs)
    wall = sum(r.wall_s for r in all_runs)
    out: dict[str, Any] = {"basket_id": spec.basket_id, "seeds": seeds, "modes": {}}
    for mode, rs in runs.items():
        metrics = [r.metrics() for r in rs]
        entry: dict[str, Any] = {k: summarize([m[k] for m in metrics]) for k in metrics[0]}
        entry["completed"] = sum(r.report.status is BasketState.COMPLETED for r in rs)
        entry["runs"] = len(rs)
        failures = sorted(
            {r.report.reason for r in rs if r.report.status is not BasketState.COMPLETED}
        )
        entry["failures"] = failures
        out["modes"][mode.value] = entry
    out["market_events"] = events
    out["wall_s"] = wall
    out["events_per_s"] = events / wall if wall > 0 else None
    return out


def parse_modes(text: str) -> list[ExecutionMode]:
    """`coordinated,independent,sequential` → modes; BacktestError naming what is accepted."""
    out: list[ExecutionMode] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            mode = ExecutionMode(part)
        except ValueError:
            raise BacktestError(
                f"--compare: unknown mode {part!r}; accepted: {_mode_names()}"
            ) from None
        if mode not in out:
            out.append(mode)
    if not out:
        raise BacktestError(f"--compare: no mode; accepted: {_mode_names()}")
    return out


def _mode_names() -> str:
    return ", ".join(m.value for m in ExecutionMode)


def results_table(doc: Mapping[str, Any]) -> str:
    """The comparison as a markdown table: each figure's mean and p95 per mode."""
    header = (
        "| mode | legging risk $ (mean / p95) | peak imbalance $ | shortfall bp "
        "| completion s | hedge cost $ | completed |"
    )
    lines = [header, "|" + "---|" * 7]
    for mode, m in doc["modes"].items():
        cells = [mode]
        for key in METRICS:
            s = m[key]
            # + 0.0: a cost of -0.0 (no hedge) reads as 0.00
            cells.append(
                "–" if s["mean"] is None else f"{s['mean'] + 0.0:,.2f} / {s['p95'] + 0.0:,.2f}"
            )
        cells.append(f"{m['completed']}/{m['runs']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
