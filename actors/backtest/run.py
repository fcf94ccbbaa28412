"""One basket run in the backtest: the runners' ports on simulated time, and building a run."""

from __future__ import annotations

import contextlib
import enum
import gc
import random
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from actors.backtest.collateral import BacktestCollateral
from actors.backtest.loop import Loop, LoopTimer
from actors.backtest.venue import Answer, Venue
from actors.basket import BasketCoordinator, ExposureChanged
from actors.hedge import hedge_limit_order, hedge_resting_order
from actors.leg import Reconciliation
from actors.lifecycle import BasketLifecycle, BasketState
from actors.margin import Refused, Reserved
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
from actors.routing import RoutingRules
from actors.runners.basket import BasketRunner, RunSettings
from actors.runners.collateral import CollateralRunner, margin_needs
from actors.runners.funding import Funding, FundingAsk, funding_story
from actors.runners.hedge import DeskRunner
from actors.runners.hedge_order import HedgeOrderAnswer, HedgeOrderRunner
from actors.runners.leg import LegRunner, Unwound
from actors.spec import BasketSpec, OnUnfunded, RebalanceSpec, ResolvedBasket, validate
from actors.sync import AdjustLeg
from venues.config import (
    ReplayMarketConfig,
    SimVenueConfig,
    SyntheticMarketConfig,
    VenuesConfig,
    build_market,
    profile_from,
)
from venues.errors import (
    UnknownOrder,
    VenueError,
)
from venues.model import (
    ExecutionReport,
    Instrument,
    NewOrder,
    TimeInForce,
)
from venues.sim.book import PowerQueueModel
from venues.sim.exchange import SimExchange
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
    # The simulated books' queue model (`venues.sim.book`): None, cautious (cancels from the
    # back); n, the power-law position estimate with that exponent.
    queue_power: float | None = None
    # A lost basket actor (`run_once(lose_basket_after_s=...)`): its successor takes over this
    # long after (the supervisor hears of the loss, a fresh actor reads the journal), and
    # each leg's fresh actor is up this long after it is asked for (created near its venue,
    # connected, its venue clock measured), before it asks the venue for its orders.
    takeover_ms: float = 3_000.0
    leg_start_ms: float = 1_000.0


class RunResult(msgspec.Struct, kw_only=True):
    """One basket run: its report (TCA included) and what the run cost."""

    mode: ExecutionMode
    seed: int
    report: BasketReport
    fire_ns: int
    done_ns: int | None
    market_events: int
    wall_s: float
    # Collateral routing: how long the basket waited for its funds (None: it did not),
    # orders its legs sent before the funds landed, and while deferred legs waited the
    # peak net market exposure of the basket alone and with the hedge.
    funding_s: float | None = None
    sent_unfunded: int = 0
    pending_beta_usd: float | None = None
    pending_net_beta_usd: float | None = None
    pending_net_risk_usd: float | None = None  # one-day 1σ, every factor
    market_vol_1d: float | None = None  # of the market factor (betas are to it)
    variant: str = ""  # `mode:style` when a comparison set the child style (`compare`)

    @property
    def completion_s(self) -> float | None:
        """From the launch instant to the moment every leg was done."""
        return None if self.done_ns is None else (self.done_ns - self.fire_ns) / NS

    def metrics(self) -> dict[str, float | None]:
        """The figures `legato backtest` compares across modes. Legging risk and peak
        imbalance are the TCA's on the fills' own times (the exposure held); the basket's
        view of it on its coordinator ticks is `observed_legging_risk_usd`."""
        tca = self.report.tca or {}
        gross = tca.get("gross_notional_usd") or 0.0
        fees = (tca.get("parts") or {}).get("fees_usd")
        return {
            "legging_risk_usd": tca.get("fill_legging_risk_usd"),
            "peak_imbalance_usd": tca.get("fill_peak_imbalance_usd"),
            "shortfall_bps": tca.get("shortfall_bps"),
            # The fees' part of the shortfall, apart: what a passive style saves first.
            "fees_bps": None if fees is None or gross <= 0 else fees / gross * 1e4,
            "completion_s": self.completion_s,
            "peak_beta_imbalance_usd": tca.get("peak_beta_imbalance_usd"),
            "hedge_orders": tca.get("hedge_orders"),
            "hedge_cost_usd": tca.get("hedge_cost_usd"),
            "hedge_risk_removed_usd": tca.get("hedge_risk_removed_usd"),
            "hedge_risk_value_usd": tca.get("hedge_risk_value_usd"),
            "observed_legging_risk_usd": tca.get("legging_risk_usd"),
            "funding_s": self.funding_s,
            "pending_beta_usd": self.pending_beta_usd,
            "pending_net_beta_usd": self.pending_net_beta_usd,
            "pending_net_risk_usd": self.pending_net_risk_usd,
            "pending_net_beta_risk_usd": (
                None
                if self.pending_net_beta_usd is None or self.market_vol_1d is None
                else self.pending_net_beta_usd * self.market_vol_1d
            ),
        }


METRICS = (  # the columns of `legato backtest`'s table, in its order
    "legging_risk_usd",
    "peak_imbalance_usd",
    "peak_beta_imbalance_usd",
    "shortfall_bps",
    "fees_bps",
    "completion_s",
    "hedge_orders",
    "hedge_cost_usd",
    "hedge_risk_removed_usd",
)


# -- the runners' ports ---------------------------------------------------------------------
class _StreamedCalls:
    """A simulated venue's calls (`VenueCalls`) for one runner, the reports its account's
    stream gives of the runner's orders to `on_stream` (set it before the first order).
    With `run`, the runner's actor can be lost (`_Run.lose_basket`): from then on its calls
    go nowhere and their answers reach nobody."""

    def __init__(self, venue: Venue, run: _Run | None = None) -> None:
        self._venue = venue
        self.on_stream: Callable[[ExecutionReport], None] | None = None
        self._run = run
        self._generation = 0 if run is None else run.generation

    @property
    def lost(self) -> bool:
        """Whether the runner's actor was lost (its calls go nowhere)."""
        return self._run is not None and self._run.generation != self._generation

    def _gate(self, fn: Callable[..., None]) -> Callable[..., None]:
        return fn if self._run is None else self._run.gate(fn)

    def place(self, order: NewOrder, then: Callable[[Answer], None]) -> None:
        on_stream = self.on_stream
        assert on_stream is not None
        if not self.lost:
            self._venue.submit(order, self._gate(then), self._gate(on_stream))

    def query(self, symbol: str, client_order_id: str, then: Callable[[Answer], None]) -> None:
        if not self.lost:
            self._venue.query(symbol, client_order_id, self._gate(then))

    def cancel(self, symbol: str, client_order_id: str, then: Callable[[Answer], None]) -> None:
        if not self.lost:
            self._venue.cancel(symbol, client_order_id, self._gate(then))


class _LegPort:
    """A `LegPort` on simulated time: the leg's venue one trip away, its basket one Ray
    call away (`_Run.to_basket`). Set `venue.on_stream` before the first order."""

    def __init__(self, run: _Run, venue: Venue) -> None:
        self.now_ns = run.loop.now_ns
        self.call_at = run.call_at
        self._to_basket = run.to_basket
        self.venue = _StreamedCalls(venue, run if run.losable else None)

    def send(self, p: LegProgress) -> None:
        if not self.venue.lost:  # a lost leg's actor sends nothing
            self._to_basket(p)


class _DeskPort:
    """A `DeskPort` on simulated time: the hedge actor asks the hedge venue's actor to
    trade (one Ray call), which sends an IOC through the mid (or rests a post-only order at
    the touch, cancelling it after `PlaceHedge.rest_ns`), sees it to its end as live (the
    same `HedgeOrderRunner`) and hands the final fill back (another)."""

    def __init__(self, run: _Run, venue: Venue, instruments: list[Instrument]) -> None:
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
        book = self.venue.exchange.book_snapshot(cmd.symbol, 1, self.loop.now)
        bid, ask, mid = book.best_bid, book.best_ask, book.mid
        inst = self.instruments[cmd.symbol]
        new = None
        if cmd.rest_ns > 0 and cmd.qty is not None and bid is not None and ask is not None:
            new = hedge_resting_order(cmd.client_order_id, inst, cmd.side, cmd.qty, bid, ask)
        elif mid is not None:
            new = hedge_limit_order(
                cmd.client_order_id, inst, cmd.side, cmd.qty, cmd.notional_usd, mid
            )
        if new is None or mid is None:
            self.loop.after(back(), then, None)
            return
        sent = self.loop.now

        def answered(answer: HedgeOrderAnswer) -> None:
            """The desk's answer, a Ray call back: the order's final report as a fill."""
            if isinstance(answer, ExecutionReport):
                answer = HedgeFill(report=answer, sent_ns=sent, mid=float(mid))
            self.loop.after(back(), then, answer)

        calls = _StreamedCalls(self.venue)
        runner = HedgeOrderRunner(
            self.loop, calls, self.venue.name, cmd.symbol, cmd.client_order_id, answered
        )
        calls.on_stream = runner.on_report
        runner.place(new, cmd.rest_ns if new.time_in_force is TimeInForce.POST_ONLY else 0)

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        self.venue.positions(then)

    def settle(
        self, symbol: str, client_order_id: str, then: Callable[[bool | Exception], None]
    ) -> None:
        """One try at cancelling an order that may still rest, as the live gateway's
        `settle`: a Ray call to the venue's actor, one cancel, the answer back."""
        back = self.run.ray_ns

        def answered(answer: Answer) -> None:
            ended = not isinstance(answer, VenueError) or isinstance(answer, UnknownOrder)
            self.loop.after(back(), then, True if ended else answer)

        self.loop.after(self.run.ray_ns(), self.venue.cancel, symbol, client_order_id, answered)


def _gone(leg_id: str) -> str:
    return f"leg {leg_id}: its actor died with the basket's"


# -- one run -------------------------------------------------------------------------------
class _Run:
    """One basket, one mode, one seed, from acceptance to its report: the driver of its
    `BasketRunner`, its `LegRunner`s and its hedge `DeskRunner` on simulated time."""

    def __init__(
        self,
        basket: ResolvedBasket,
        venues: dict[str, Venue],
        loop: Loop,
        mode: ExecutionMode,
        seed: int,
        risk_settings: RiskSettings,
        settings: BacktestSettings,
        configs: Mapping[str, SimVenueConfig],
        lifecycle: BasketLifecycle | None = None,
        deferred: Collection[str] = (),
        collateral: CollateralReport | None = None,
        losable: bool = False,
    ) -> None:
        """`lifecycle`: the basket's, when it was checked before (its collateral waited
        for); `deferred`: legs that wait for their funding (`BasketRunner.fund`);
        `losable`: the basket's actor may be lost (`lose_basket`)."""
        self.basket = basket
        self.venues = venues
        self.loop = loop
        self.now_ns = loop.now_ns
        # The actors' generation: a lost basket actor takes its legs' with it, and what any
        # of them had under way (timers, calls, answers, messages) comes to nothing.
        self.losable = losable
        self.generation = 0
        self._gone: set[str] = set()  # legs whose actors were lost and not brought up again
        self.call_at = self._gated_call_at if losable else loop.call_at
        self.mode = mode
        self.risk_settings = risk_settings
        self.settings = settings
        self._rng = random.Random(seed * 7_919 + 1)
        self.accepted_ns = loop.now
        if lifecycle is None:
            lifecycle = BasketLifecycle(basket.basket_id, loop.now)
            lifecycle.to(BasketState.CHECKING, loop.now, "validated against the venues' books")
        else:
            self.accepted_ns = lifecycle.history[0].ts_ns
        lifecycle.to(BasketState.ARMING, loop.now, "legs armed (simulated)")
        self.collateral = collateral or CollateralReport()
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
        self._delivery: dict[str, int] = {}
        self._arm: dict[str, ArmLeg] = {}
        for leg in basket.legs:
            venue = venues[leg.venue]
            self._arm[leg.leg_id] = ArmLeg(
                basket_id=basket.basket_id,
                leg=basket.styled(leg),
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
            self.legs[leg.leg_id] = self._new_leg(leg.leg_id)
            # What a leg actor measures: the venue's median round trip, and how late its
            # book arrives (the venue's stream lag, then the trip back).
            self._rtt[leg.leg_id] = venue.typical_rtt_ns
            self._delivery[leg.leg_id] = venue.typical_delivery_ns
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
        # The market betas of the legs and the hedge instruments, for `sampled`.
        legs = [leg.instrument for leg in basket.legs]
        self._leg_beta = dict(
            zip([leg.leg_id for leg in basket.legs], risk.market_betas(legs).tolist(), strict=True)
        )
        hedges = basket.hedge_instruments if hedged else []
        self._hedge_beta = (
            dict(zip([i.symbol for i in hedges], risk.market_betas(hedges).tolist(), strict=True))
            if hedges
            else {}
        )
        self.pending_beta_usd = 0.0
        self.pending_net_beta_usd = 0.0
        self.pending_net_risk_usd = 0.0
        self._risk = risk
        self._instruments = {leg.leg_id: leg.instrument for leg in basket.legs}
        self._hedges = {i.symbol: i for i in hedges}
        m = risk.factors[0]
        self.market_vol_1d = risk.dollar_risk({m: 1.0})  # per dollar of market exposure
        self._new_runner = lambda lifecycle: BasketRunner(
            basket,
            lifecycle,
            self,
            risk,
            run_settings,
            hedge=hedged,
            synchronize=coordinated,
            sequential=mode is ExecutionMode.SEQUENTIAL,
            deferred=deferred,
        )
        self.runner = self._new_runner(lifecycle)
        # The basket's fire call reaches each leg well inside the lead; a leg whose venue is
        # far sends one one-way trip early when it is kept in step.
        rtts = list(self._rtt.values()) if coordinated else []
        self.lead_ns = BasketRunner.fire_lead_ns(int(settings.fire_lead_ms * MS), 0, rtts)
        self.fire_ns = loop.now + self.lead_ns

    def _new_leg(self, leg_id: str) -> LegRunner:
        """A leg's runner, armed as a leg actor is: with the book read from the venue, its
        stream's first ticker a stream delivery away (from a distant venue, after the fire
        time), listening to its symbol's market data."""
        cmd = self._arm[leg_id]
        leg = cmd.leg
        venue = self.venues[leg.venue]
        port = _LegPort(self, venue)
        book = venue.exchange.book_snapshot(leg.symbol, 1, self.loop.now).top()
        runner = LegRunner(cmd, port, book=book, ack_kind=venue.profile.ack)
        port.venue.on_stream = runner.on_report
        venue.listen(leg.symbol, runner)
        return runner

    def ray_ns(self) -> int:
        return self.settings.ray_call.sample_ns(self._rng)

    # -- a lost basket actor ---------------------------------------------------------------
    def gate(self, fn: Callable[..., None]) -> Callable[..., None]:
        """`fn`, to run only if the actors of this generation still live when it comes due
        (any call: a lost actor neither acts nor hears)."""
        if not self.losable:
            return fn
        generation = self.generation

        def gated(*args: Any) -> None:
            if self.generation == generation:
                fn(*args)

        return gated

    def _leg(self, leg_id: str, then: Callable[[Any], None]) -> LegRunner | None:
        """The leg's runner; None when its actor was lost, and `then` gets the error a call
        to a dead actor gets, one Ray call later."""
        if leg_id not in self._gone:
            return self.legs[leg_id]
        self.loop.after(self.ray_ns(), self.gate(then), RuntimeError(_gone(leg_id)))
        return None

    def _gated_call_at(
        self, t_ns: int, fn: Callable[[], None], *, precise: bool = False
    ) -> LoopTimer:
        return self.loop.call_at(t_ns, self.gate(fn))

    def lose_basket(self, at_ns: int) -> None:
        """The basket's actor dies at `at_ns`, and its legs' actors with it (Ray kills the
        actors an actor owns); the supervisor has a successor take the run over
        (`BasketRunner.take_over`), as live (DESIGN §9): each leg is brought up afresh from
        its venue's records and, under policy `complete`, carries on its schedule."""
        if not self.losable:
            raise BacktestError("lose_basket: the run was not built to lose its basket actor")
        self.loop.at(at_ns, self._lose)

    def _lose(self) -> None:
        runner = self.runner
        if runner.finished:
            return
        self.generation += 1
        self._gone = set(self.legs)
        lost = list(self.legs.values())
        for venue in self.venues.values():
            for listening in venue.listeners.values():
                listening[:] = [leg for leg in listening if leg not in lost]
        history = list(runner.lifecycle.history)
        lost_in = runner.lifecycle.state.value
        takeover = int(self.settings.takeover_ms * MS)
        self.loop.after(takeover, self._take_over, history, lost_in)

    def _take_over(self, history: list[Any], lost_in: str) -> None:
        now = self.loop.now
        lifecycle = BasketLifecycle(self.basket.basket_id, self.accepted_ns)
        why = f"taken over after the basket actor was lost in {lost_in}"
        lifecycle.take_over(history, now, why)
        self.runner = self._new_runner(lifecycle)
        fired = [c.ts_ns for c in history if c.state is BasketState.RUNNING]
        reason = f"the basket actor was lost (in {lost_in}); taken over from the journal"
        self.runner.take_over(fired[0] if fired else None, reason)

    def _bring_up(
        self, leg_id: str, elapsed_ns: int | None, then: Callable[[Exception | None], None]
    ) -> None:
        """A fresh leg actor for a lost one, rebuilt from its venue's records of the leg's
        client order ids (`LegRunner.recover`); with `elapsed_ns`, one that then carries on
        the schedule that began that long before it was asked for."""
        if not self.losable:
            then(RuntimeError("a simulated leg is never lost"))
            return
        asked = self.loop.now
        answer = self.gate(then)

        def up() -> None:
            runner = self.legs[leg_id] = self._new_leg(leg_id)
            self._gone.discard(leg_id)
            deadline = self.loop.now + int(self.runner.settings.reconcile_deadline_s * NS)

            def recovered(error: Exception | None) -> None:
                # The account's stream now tells this leg of the orders it adopted (one
                # still resting fills on), as a fresh leg actor's own stream would.
                stream = self.venues[runner.leg.venue].stream
                for client_order_id in runner.ledger.orders:
                    stream[client_order_id] = self.gate(runner.on_report)
                if error is None and elapsed_ns is not None:
                    runner.resume(asked - elapsed_ns, self._rtt[leg_id], self._delivery[leg_id])
                self.loop.after(self.ray_ns(), answer, error)

            runner.recover(deadline, recovered, resume=elapsed_ns is not None)

        self.loop.after(self.ray_ns() + int(self.settings.leg_start_ms * MS), self.gate(up))

    @property
    def finished(self) -> bool:
        return self.runner.finished

    def start(self) -> None:
        self.runner.fire(self.fire_ns)

    def to_basket(self, p: LegProgress) -> None:
        self.loop.after(self.ray_ns(), self.gate(self.runner.on_progress), p)

    # -- the `BasketPort` ------------------------------------------------------------------
    def fire(self, leg_id: str, at_ns: int, schedule_ns: int | None = None) -> None:
        if leg_id not in self._gone:
            self.legs[leg_id].fire(at_ns, self._rtt[leg_id], self._delivery[leg_id], schedule_ns)

    def adjust(self, adj: AdjustLeg) -> None:
        if adj.leg_id not in self._gone:
            self.loop.after(self.ray_ns(), self.gate(self.legs[adj.leg_id].adjust), adj)

    def exposure(self, e: ExposureChanged) -> None:
        self.loop.after(self.ray_ns(), self.gate(self._to_desk), e)

    def stop(self, leg_id: str, reason: str, then: Callable[[LegProgress | Exception], None]):
        if (leg := self._leg(leg_id, then)) is not None:
            leg.stop(reason, then)

    def unwind(self, leg_id: str, within_ns: int, then: Callable[[Unwound | Exception], None]):
        if (leg := self._leg(leg_id, then)) is not None:
            leg.unwind(self.loop.now + within_ns, then)

    def reconcile(
        self, leg_id: str, within_ns: int, then: Callable[[Reconciliation | Exception], None]
    ) -> None:
        if (leg := self._leg(leg_id, then)) is not None:
            leg.reconcile(self.loop.now + within_ns, then)

    def recover(self, leg_id: str, then: Callable[[Exception | None], None]) -> None:
        self._bring_up(leg_id, None, then)

    def resume(
        self, leg_id: str, elapsed_ns: int, then: Callable[[Exception | None], None]
    ) -> None:
        self._bring_up(leg_id, elapsed_ns, then)

    def ping(self, leg_id: str, within_ns: int, then: Callable[[str | None], None]) -> None:
        if leg_id in self._gone:
            self.loop.after(self.ray_ns(), self.gate(then), _gone(leg_id))
        else:
            then(None)

    def close_hedge(self, hold: bool, then: Callable[[HedgeStatement | Exception], None]):
        desk, port, hedge = self.desk, self._desk_port, self.basket.hedge
        assert desk is not None and port is not None and hedge is not None
        desk.mark(port.mids())
        desk.close(self.basket.basket_id, hedge, self.risk_settings, hold, self.gate(then))

    def hedge_gross_usd(self) -> float:
        return self.desk.ledger.gross_usd() if self.desk is not None else 0.0

    def sampled(self, core: BasketCoordinator, hedge_usd: float, force: bool) -> None:
        """While legs wait for their funding: the basket's net market (beta) exposure,
        on its own and with the hedge desk's position, each tick (the scenario figures of
        `bench/scenarios/routing_stall`)."""
        if not self.runner.deferred:
            return
        u = core.imbalance()
        basket_beta = sum(self._leg_beta[leg] * usd for leg, usd in u.items())
        hedge_beta = 0.0
        if self.desk is not None:
            held = self.desk.ledger.positions_usd()
            hedge_beta = sum(self._hedge_beta.get(sym, 0.0) * usd for sym, usd in held.items())
        self.pending_beta_usd = max(self.pending_beta_usd, abs(basket_beta))
        self.pending_net_beta_usd = max(self.pending_net_beta_usd, abs(basket_beta + hedge_beta))
        # The one-day 1σ risk left over, as the hedge desk reckons it against its activation
        # and hysteresis: every factor of the imbalance and the hedge, not only the market.
        e = self._risk.leg_exposures(u, self._instruments)
        if self.desk is not None:
            e = e + self._risk.exposures(self.desk.ledger.positions_usd(), self._hedges)
        self.pending_net_risk_usd = max(self.pending_net_risk_usd, self._risk.dollar_risk(e))

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
            catchup_s=e.catchup_s,
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
            legs, submitted_ns=self.accepted_ns, collateral=self.collateral, notes=notes
        )


# -- building a run ------------------------------------------------------------------------
class _Funds:
    """The basket's collateral in the backtest: reserved as live (the collateral runner
    on the simulated accounts, `BacktestCollateral`), and, short with routing on, the
    transfers waited for (`wait`: before anything is armed) or the unfunded legs deferred
    until they land (`hedge`)."""

    def __init__(
        self,
        basket: ResolvedBasket,
        venues: dict[str, Venue],
        loop: Loop,
        routing: RoutingRules | None,
    ) -> None:
        self.basket = basket
        self.loop = loop
        self.port = BacktestCollateral(loop, venues)
        self.runner = CollateralRunner(self.port)
        self.routing = routing
        self.lifecycle = BasketLifecycle(basket.basket_id, loop.now)
        self.lifecycle.to(BasketState.CHECKING, loop.now, "validated against the venues' books")
        self.report = CollateralReport()
        self.deferred: list[str] = []
        self.funding: Funding | None = None
        self.funded_ns: int | None = None  # when the whole reservation was held
        self.why_not = ""  # why it never was
        leverage = {name: v.exchange.leverage(v.account_id) for name, v in venues.items()}
        self.needs = margin_needs(basket, leverage)

    def reserve(self) -> bool:
        """Reserve the basket's collateral, waiting for its transfers under `wait`; False
        when it is refused (nothing is sent)."""
        basket, loop = self.basket, self.loop
        params = basket.params
        ask = FundingAsk(
            mode=params.on_unfunded,
            timeout_ns=int(params.funding_timeout_s * NS),
            client_prefix=basket.basket_id,
            rules=self.routing,
        )
        got: list[Reserved | Refused | Funding] = []
        names = sorted({leg.venue for leg in basket.legs})
        self.runner.reserve(basket.basket_id, self.needs, names, None, got.append, funding=ask)
        loop.run(lambda: bool(got), loop.now + END_LIMIT_NS)
        result = got[0] if got else None
        if isinstance(result, Funding):
            self.funding = result
            if result.mode is OnUnfunded.HEDGE and result.reserved is not None:
                self.deferred = list(result.unfunded_legs)
                self._held(result.reserved)
                return True
            landed: list[Reserved | Refused] = []
            self.runner.funded(basket.basket_id, landed.append)
            loop.run(lambda: bool(landed), result.deadline_ns + END_LIMIT_NS)
            result = landed[0] if landed else None
            if isinstance(result, Reserved):
                self.funded_ns = loop.now
        if not isinstance(result, Reserved):
            why = result.reason if result is not None else "the collateral was never answered"
            self.why_not = why
            if result is not None:
                self.report.refused = [s.message for s in result.shortfalls]
            self.lifecycle.end(BasketState.FAILED, loop.now, why)
            self.finish()
            return False
        self._held(result)
        return True

    def follow(self, run: _Run) -> None:
        """Under `hedge`: fire the deferred legs once their money lands, or fail them."""
        if not self.deferred:
            return

        def landed(result: Reserved | Refused) -> None:
            if isinstance(result, Reserved):
                self.funded_ns = self.loop.now
                self._held(result)
                run.runner.fund(self.loop.now + run.lead_ns)
            else:
                self.why_not = result.reason
                run.runner.unfunded(result.reason)

        self.runner.funded(self.basket.basket_id, landed)

    def finish(self) -> None:
        """The transfers and what the basket did meanwhile, into its report."""
        self.report.transfers = sorted(
            self.port.views.values(), key=lambda v: (v.requested_ns, v.client_transfer_id)
        )
        if self.funding is not None:
            self.report.funding = funding_story(self.funding, self.funded_ns, self.why_not)

    @property
    def waited_s(self) -> float | None:
        f = self.funding
        if f is None:
            return None
        end = self.funded_ns if self.funded_ns is not None else self.loop.now
        return (end - f.ts_ns) / NS

    def sent_before(self, report: BasketReport) -> int:
        """Child orders sent before the funds landed: under `wait` none of any leg, under
        `hedge` none of a deferred leg (0 when nothing was routed)."""
        if self.funding is None:
            return 0
        landed = self.funded_ns if self.funded_ns is not None else self.loop.now
        legs = set(self.deferred) if self.deferred else {leg.leg_id for leg in report.legs}
        return sum(
            1
            for leg in report.legs
            if leg.leg_id in legs
            for o in leg.child_orders
            if o.sent_ns < landed
        )

    def _held(self, reserved: Reserved) -> None:
        self.report.reserved = dict(reserved.needs)
        self.report.holdings = {v: dict(h) for v, h in reserved.holdings.items()}

    def refused_result(self, mode: ExecutionMode, seed: int, wall: float) -> RunResult:
        """The run of a basket refused at its check: nothing was sent."""
        basket, lc = self.basket, self.lifecycle
        last = lc.history[-1]
        report = BasketReport(
            basket_id=basket.basket_id,
            status=lc.state,
            policy=basket.policy,
            reason=last.reason,
            submitted_ns=lc.history[0].ts_ns,
            launched_ns=None,
            completed_ns=last.ts_ns,
            legs=[],
            hedge=None,
            collateral=self.report,
            history=list(lc.history),
            notes=list(basket.notes),
        )
        return RunResult(
            mode=mode,
            seed=seed,
            report=report,
            fire_ns=last.ts_ns,
            done_ns=None,
            market_events=0,
            wall_s=time.perf_counter() - wall,
        )


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
    config: VenuesConfig, seed: int, loop: Loop, settings: BacktestSettings, horizon_s: float
) -> tuple[dict[str, Venue], int]:
    """Every venue at `loop.now`, and the instant the basket arrives."""
    start = loop.now
    venues: dict[str, Venue] = {}
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
        queue = None if settings.queue_power is None else PowerQueueModel(settings.queue_power)
        exchange = SimExchange(name, market, start_ns=start, queue_model=queue)
        for acct in cfg.accounts:
            exchange.open_account(acct.spec())
        conditions = VenueConditions(
            profile_from(cfg.profile), zlib.crc32(name.encode()) + seed * 1_000_003, start
        )
        venues[name] = Venue(
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


def _run_to_end(loop: Loop, run: _Run) -> None:
    """The loop until the basket ends or its time limit passes, for a run that may lose its
    basket actor: a successor that carries the basket on has a later deadline
    (`BasketRunner.take_over`), and the loop runs on to it; one that fails it has none of
    its own, and the first one's stands."""
    first = run.runner.deadline_ns

    def limit() -> int:
        return max(first, run.runner.deadline_ns) + END_LIMIT_NS

    def ended_or_moved(until: int) -> Callable[[], bool]:
        return lambda: run.finished or limit() != until

    while True:
        until = limit()
        loop.run(ended_or_moved(until), until)
        if run.finished or loop.now >= until or limit() == until:
            return


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
    lose_basket_after_s: float | None = None,
    routing: RoutingRules | None = None,
) -> RunResult:
    """Run `spec` once on `config`'s simulated venues (see `check_venues`) in `mode`.

    `start_ns` is when the venues start (default `SIM_EPOCH_NS`), `arrive_ns` when the basket
    is accepted (default: the seed's instant after the warm-up): together with a synthetic
    market of fixed origin they replay a live run's market exactly. `cancel_at_ns`: the user
    cancels the basket at that instant (simulated time), as `legato cancel` would live.
    `lose_basket_after_s`: the basket's actor dies that long after the legs fire, its legs'
    with it, and a successor takes the run over (`_Run.lose_basket`;
    `BacktestSettings.takeover_ms`), as the supervisor has one do live.
    `routing`: the configuration's `[collateral]` rules; the basket's collateral is reserved
    as live, on the simulated accounts, and a shortfall routed (`_Funds`).

    Raises `SpecError` for a basket the venues refuse (nothing runs), `BacktestError` for
    venues the backtest cannot simulate.
    """
    settings = settings or BacktestSettings()
    risk = risk or RiskSettings()
    if lose_basket_after_s is not None and not lose_basket_after_s >= 0:
        raise BacktestError(
            f"lose_basket_after_s: {lose_basket_after_s}; seconds after the legs fire, 0 or more"
        )
    wall = time.perf_counter()
    loop = Loop(SIM_EPOCH_NS if start_ns is None else start_ns)
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
    basket = validate(spec, instruments, prices, {}, risk=risk)
    loop.now = accepted
    for name, venue in venues.items():
        venue.start({leg.symbol for leg in basket.legs if leg.venue == name})
    configs = {name: cfg for name, cfg in config.venues.items() if isinstance(cfg, SimVenueConfig)}
    funds = _Funds(basket, venues, loop, routing)
    if not funds.reserve():
        return funds.refused_result(mode, seed, wall)
    run = _Run(
        basket,
        venues,
        loop,
        mode,
        seed,
        risk,
        settings,
        configs,
        lifecycle=funds.lifecycle,
        deferred=funds.deferred,
        collateral=funds.report,
        losable=lose_basket_after_s is not None,
    )
    funds.follow(run)
    run.start()
    if cancel_at_ns is not None:
        loop.at(cancel_at_ns, lambda: run.runner.cancel("cancelled by the user"))
    if lose_basket_after_s is not None:
        run.lose_basket(run.fire_ns + int(lose_basket_after_s * NS))
        _run_to_end(loop, run)
    else:
        loop.run(lambda: run.finished, run.runner.deadline_ns + END_LIMIT_NS)
    events = sum(v.exchange.updates_applied for v in venues.values())
    funds.finish()
    report = run.report()
    return RunResult(
        mode=mode,
        seed=seed,
        report=report,
        fire_ns=run.fire_ns,
        done_ns=run.runner.done_ns,
        market_events=events,
        wall_s=time.perf_counter() - wall,
        funding_s=funds.waited_s,
        sent_unfunded=funds.sent_before(report),
        pending_beta_usd=run.pending_beta_usd if funds.deferred else None,
        pending_net_beta_usd=run.pending_net_beta_usd if funds.deferred else None,
        pending_net_risk_usd=run.pending_net_risk_usd if funds.deferred else None,
        market_vol_1d=run.market_vol_1d,
    )
