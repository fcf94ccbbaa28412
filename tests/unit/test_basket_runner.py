"""The basket runner on a fake clock with scripted legs: completion, the failure policy,
the deadline, silent and lost legs, recovery, reconciliation, sequential mode, the fire lead.

No Ray, no asyncio, no real time: a hand-written `BasketPort` whose legs send snapshots on
the fake clock as their script says and answer the runner's calls a few ms later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from actors.basket import BasketCoordinator, ExposureChanged
from actors.hedge import HedgeBook, HedgeSizer
from actors.leg import Mismatch, Reconciliation
from actors.lifecycle import BasketLifecycle, BasketState
from actors.messages import LegProgress, LegStatus
from actors.protocol import HedgeStatement
from actors.report import BasketReport, CollateralReport, LegReport
from actors.runners.basket import PROBE_ATTEMPTS, BasketRunner, RunSettings
from actors.runners.leg import Unwound
from actors.schedule import Mode
from actors.spec import HedgeSpec, Policy, ResolvedBasket, ResolvedLeg, validate
from actors.sync import AdjustLeg
from tests.unit.fake_port import MS, FakeClock, FakeTimer
from tests.unit.test_basket_core import INSTRUMENTS, PRICES, RISK, START, resolved

D = Decimal
S = BasketState
NS = 1_000 * MS
FIRE = START + 50 * MS
CALL_MS = 3  # a leg's answer to a call, by default
DIED = "ActorDiedError: the actor died unexpectedly before finishing this task"
SETTINGS = RunSettings(
    tick_ns=100 * MS,
    min_overrun_s=60.0,
    unwind_deadline_s=12.5,  # not the default: the unwind window must be the settings'
    reconcile_deadline_s=7.5,
    leg_silence_ns=3 * NS,
)
# The hedge on alpha's BTC perp: no leg trades it (the eth leg is on alpha, the btc leg on beta).
HEDGE = HedgeSpec(venue="alpha", instruments=["BTCUSDT"])
HELD = "; the legs are out of step: the hedge is held for an operator"


def basket(
    policy: Policy = Policy.UNWIND, *, horizon_s: float = 300.0, grace_s: float = 30.0
) -> ResolvedBasket:
    """The core tests' basket (long 10 ETH on alpha, short 0.4 BTC on beta), hedged, under
    `policy`."""
    spec = resolved().spec
    params = msgspec.structs.replace(spec.params, horizon_s=horizon_s, grace_s=grace_s)
    spec = msgspec.structs.replace(spec, policy=policy, hedge=HEDGE, params=params)
    return validate(spec, INSTRUMENTS, prices=PRICES)


# -- the scripted legs ----------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """A snapshot the leg sends `at_ms` after it fires."""

    at_ms: int
    filled: str
    status: LegStatus = LegStatus.WORKING
    open_qty: str = "0"
    reason: str = ""


def filling(target: str, over_ms: int, *, steps: int = 4, done: bool = True) -> list[Step]:
    """`target` filled in equal parts over `over_ms`, the last snapshot DONE (or WORKING)."""
    out = []
    for k in range(1, steps + 1):
        last = k == steps and done
        qty = D(target) * k / steps
        out.append(
            Step(over_ms * k // steps, str(qty), LegStatus.DONE if last else LegStatus.WORKING)
        )
    return out


@dataclass
class Script:
    """How one fake leg behaves.

    - `steps`: its snapshots; between them it repeats its newest every `heartbeat_ms`
      while it works (a live leg's heartbeat);
    - `silent`: [from, to) ms after its fire: the leg lives but sends nothing, and a ping
      times out (a busy machine);
    - `dies_at_ms`: from then on its actor is gone: nothing sent, every call fails, and a
      ping answers `dead_ping` ("timeout", or the error of a dead actor) until recovered;
    - `pings`: answers to its pings in order, whatever its state (then as above);
    - answers to `stop`, `unwind`, `reconcile`, `recover` (None: the usual one), and how
      many ms each takes (`delay_ms`, default `CALL_MS`).
    """

    steps: list[Step]
    heartbeat_ms: int = 500
    silent: tuple[int, int] | None = None
    dies_at_ms: int | None = None
    dead_ping: str = "timeout"
    pings: list[str | None] = field(default_factory=list)
    unwind: Unwound | Exception | None = None
    reconcile: Reconciliation | Exception | None = None
    recover: Exception | None = None
    delay_ms: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A call the runner made (`kind` "call", `what` the port's method), its answer
    ("answer"), or a snapshot a leg sent it ("snapshot", `what` the leg's status)."""

    t_ns: int
    kind: str
    what: str
    leg_id: str
    detail: Any = None


class FakeLeg:
    """One leg actor as its basket sees it: snapshots on the clock, answers to calls."""

    def __init__(self, port: FakeBasketPort, leg: ResolvedLeg, script: Script) -> None:
        self.port = port
        self.leg = leg
        self.script = script
        self.seq = 0
        self.filled = D(0)
        self.open_qty = D(0)
        self.status = LegStatus.ARMED
        self.reason = ""
        self.fired_ns: int | None = None
        self.stopped = False
        self.recovered = False
        self.net: Decimal | None = None  # what it holds once unwound
        self.timers: list[FakeTimer] = []
        self.sent: list[LegProgress] = []

    # -- its state ---------------------------------------------------------------------------
    def _ms(self) -> float:
        assert self.fired_ns is not None
        return (self.port.now_ns() - self.fired_ns) / MS

    def dead(self) -> bool:
        at = self.script.dies_at_ms
        gone = at is not None and self.fired_ns is not None and self._ms() >= at
        return gone and not self.recovered

    def silent(self) -> bool:
        window = self.script.silent
        return window is not None and window[0] <= self._ms() < window[1]

    def working(self) -> bool:
        return self.status not in (LegStatus.DONE, LegStatus.FAILED) and not self.stopped

    def holds(self) -> Decimal:
        return self.filled if self.net is None else self.net

    def snapshot(self) -> LegProgress:
        self.seq += 1
        now = self.port.now_ns()
        return LegProgress(
            basket_id=self.port.basket.basket_id,
            leg_id=self.leg.leg_id,
            seq=self.seq,
            side=self.leg.side,
            target_qty=self.leg.quantity,
            filled_qty=self.filled,
            avg_price=self.leg.price if self.filled else None,
            open_qty=self.open_qty,
            status=self.status,
            ts_ns=now,
            mark_price=self.leg.price,
            fill_seen_ns=now if self.filled else None,
            first_ack=True,
            reason=self.reason,
        )

    def publish(self) -> None:
        p = self.snapshot()
        self.sent.append(p)
        self.port.deliver(p)

    # -- what it does by itself --------------------------------------------------------------
    def fire(self, at_ns: int) -> None:
        self.fired_ns = at_ns
        self.status = LegStatus.WORKING
        for step in self.script.steps:
            self._later(at_ns + step.at_ms * MS, lambda s=step: self._step(s))
        self._later(at_ns + self.script.heartbeat_ms * MS, self._heartbeat)

    def _later(self, t_ns: int, fn: Callable[[], None]) -> None:
        self.timers.append(self.port.clock.call_at(t_ns, fn))

    def _step(self, step: Step) -> None:
        if self.stopped or self.dead() or self.silent() or not self.working():
            return
        self.filled = D(step.filled)
        self.status = step.status
        self.open_qty = D(step.open_qty)
        self.reason = step.reason
        self.publish()

    def _heartbeat(self) -> None:
        # It stops with the leg, or with the basket (the runner hears nothing any more).
        if not self.working() or self.port.runner.finished:
            return
        if not (self.dead() or self.silent()):
            self.publish()
        self._later(self.port.now_ns() + self.script.heartbeat_ms * MS, self._heartbeat)

    # -- its answers -------------------------------------------------------------------------
    def stop(self) -> LegProgress | Exception:
        if self.dead():
            return RuntimeError(DIED)
        self.stopped = True
        for timer in self.timers:
            timer.cancel()
        if self.status is LegStatus.WORKING:
            self.status = LegStatus.DONE
            self.publish()
        return self.sent[-1] if self.sent else self.snapshot()

    def unwind(self) -> Unwound | Exception:
        if self.dead():
            return RuntimeError(DIED)
        u = self.script.unwind
        if u is None:
            u = Unwound(leg_id=self.leg.leg_id, left_qty=D(0), orders=1 if self.filled else 0)
        if isinstance(u, Unwound):
            self.net = u.left_qty
        return u

    def reconcile(self) -> Reconciliation | Exception:
        if self.dead():
            return RuntimeError(DIED)
        if self.script.reconcile is not None:
            return self.script.reconcile
        held = self.holds()
        return Reconciliation(
            leg_id=self.leg.leg_id,
            reconciled=True,
            orders_checked=len(self.script.steps),
            venue_filled_qty=held,
            ledger_filled_qty=held,
            ts_ns=self.port.now_ns(),
        )

    def recover(self) -> Exception | None:
        if self.script.recover is not None:
            return self.script.recover
        self.recovered = True
        return None

    def ping(self) -> str | None:
        n = sum(1 for e in self.port.calls("ping") if e.leg_id == self.leg.leg_id)
        if n <= len(self.script.pings):
            return self.script.pings[n - 1]
        if self.dead():
            return self.script.dead_ping
        return "timeout" if self.silent() else None

    def report(self) -> LegReport:
        """The leg's own report, as a live leg gives it (not reconciled: the basket says)."""
        leg = self.leg
        return LegReport(
            leg_id=leg.leg_id,
            venue=leg.venue,
            symbol=leg.symbol,
            side=leg.side,
            original_qty=leg.quantity,
            target_qty=leg.quantity,
            filled_qty=self.holds(),
            avg_price=leg.price if self.filled else None,
            fees_usd=D(0),
            status=self.status,
            reconciled=False,
            child_orders=[],
            rejects=[],
            arrival_price=leg.price,
            end_price=leg.price,
            contract_size=leg.instrument.contract_size,
        )


class FakeBasketPort:
    """A `BasketPort` on the fake clock whose legs follow their scripts; every call the
    runner makes, and every answer it gets, is in `log`."""

    def __init__(self, clock: FakeClock, basket: ResolvedBasket, scripts: dict[str, Script]):
        self.clock = clock
        self.basket = basket
        self.legs = {leg.leg_id: FakeLeg(self, leg, scripts[leg.leg_id]) for leg in basket.legs}
        self.log: list[Event] = []
        self.schedules: dict[str, int | None] = {}  # leg → the schedule start it was given
        self.samples = 0
        self._runner: BasketRunner | None = None
        self.unsettled: list[str] = []  # hedge orders that may still fill, as the desk says

    @property
    def runner(self) -> BasketRunner:
        assert self._runner is not None
        return self._runner

    # -- what a test reads -------------------------------------------------------------------
    def calls(self, what: str) -> list[Event]:
        return [e for e in self.log if e.kind == "call" and e.what == what]

    def answers(self, what: str) -> list[Event]:
        return [e for e in self.log if e.kind == "answer" and e.what == what]

    def legs_called(self, what: str) -> list[str]:
        return [e.leg_id for e in self.calls(what)]

    def index(self, kind: str, what: str, leg_id: str) -> int:
        """Where in the log the first such event is."""
        for i, e in enumerate(self.log):
            if (e.kind, e.what, e.leg_id) == (kind, what, leg_id):
                return i
        raise AssertionError(f"no {kind} {what} for {leg_id} in {self.log}")

    def deliver(self, p: LegProgress) -> None:
        self.log.append(Event(self.now_ns(), "snapshot", p.status.value, p.leg_id, p))
        self.runner.on_progress(p)

    # -- the port ----------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.clock.now_ns()

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        return self.clock.call_at(t_ns, fn, precise=precise)

    def _call(self, what: str, leg_id: str, detail: Any = None) -> None:
        self.log.append(Event(self.now_ns(), "call", what, leg_id, detail))

    def _answer(
        self,
        what: str,
        leg_id: str,
        delay_ns: int,
        answer: Callable[[], Any],
        then: Callable[[Any], None],
    ) -> None:
        """`then` gets `answer()`, as it is `delay_ns` from now."""

        def deliver() -> None:
            a = answer()
            self.log.append(Event(self.now_ns(), "answer", what, leg_id, a))
            then(a)

        self.clock.call_at(self.now_ns() + delay_ns, deliver)

    def _leg_call(self, what: str, leg_id: str, then: Callable[[Any], None], detail: Any = None):
        self._call(what, leg_id, detail)
        leg = self.legs[leg_id]
        delay = leg.script.delay_ms.get(what, CALL_MS) * MS
        self._answer(what, leg_id, delay, getattr(leg, what), then)

    def fire(self, leg_id: str, at_ns: int, schedule_ns: int | None = None) -> None:
        self._call("fire", leg_id, at_ns)
        self.schedules[leg_id] = schedule_ns
        leg = self.legs[leg_id]
        self.clock.call_at(at_ns, lambda: leg.fire(at_ns))

    def adjust(self, adj: AdjustLeg) -> None:
        self._call("adjust", adj.leg_id, adj)

    def exposure(self, e: ExposureChanged) -> None:
        self._call("exposure", "", e)

    def stop(self, leg_id: str, reason: str, then: Callable[[LegProgress | Exception], None]):
        self._leg_call("stop", leg_id, then, reason)

    def unwind(self, leg_id: str, within_ns: int, then: Callable[[Unwound | Exception], None]):
        self._leg_call("unwind", leg_id, then, within_ns)

    def reconcile(
        self, leg_id: str, within_ns: int, then: Callable[[Reconciliation | Exception], None]
    ) -> None:
        self._leg_call("reconcile", leg_id, then, within_ns)

    def recover(self, leg_id: str, then: Callable[[Exception | None], None]) -> None:
        self._leg_call("recover", leg_id, then)

    def resume(self, leg_id: str, elapsed_ns: int, then: Callable[[Exception | None], None]):
        # Recovered, the leg carries on its script from the instant it first fired.
        leg = self.legs[leg_id]

        def answer() -> Exception | None:
            error = leg.recover()
            if error is None:
                leg.fire(self.now_ns() - elapsed_ns)
            return error

        self._call("resume", leg_id, elapsed_ns)
        delay = leg.script.delay_ms.get("recover", CALL_MS) * MS
        self._answer("resume", leg_id, delay, answer, then)

    def ping(self, leg_id: str, within_ns: int, then: Callable[[str | None], None]) -> None:
        # A ping that times out answers when its window is over; any other answer at once.
        self._call("ping", leg_id, within_ns)
        answer = self.legs[leg_id].ping()
        delay = within_ns if answer == "timeout" else MS
        self._answer("ping", leg_id, delay, lambda: answer, then)

    def close_hedge(self, hold: bool, then: Callable[[HedgeStatement | Exception], None]):
        self._call("close_hedge", "", hold)
        statement = HedgeStatement(
            basket_id=self.basket.basket_id,
            orders=3,
            max_abs_position=5_000.0,
            pnl_usd=-2.5,
            fees_usd=0.75,
            held=hold,
            flat=not hold and not self.unsettled,
            reaction_ns=[4 * MS, 6 * MS],
            unsettled=list(self.unsettled),
        )
        self._answer("close_hedge", "", 2 * MS, lambda: statement, then)

    def hedge_gross_usd(self) -> float:
        return 0.0

    def sampled(self, core: BasketCoordinator, hedge_usd: float, force: bool) -> None:
        self.samples += 1


class Run:
    """A basket brought to ARMING, its runner built on the fake port and fired at `FIRE`."""

    def __init__(
        self,
        scripts: dict[str, Script],
        policy: Policy = Policy.UNWIND,
        *,
        settings: RunSettings = SETTINGS,
        horizon_s: float = 300.0,
        grace_s: float = 30.0,
        **runner_kw: Any,
    ) -> None:
        self.clock = FakeClock(START)
        self.basket = basket(policy, horizon_s=horizon_s, grace_s=grace_s)
        self.lifecycle = BasketLifecycle(self.basket.basket_id, START)
        self.lifecycle.to(S.CHECKING, START, "spec valid")
        self.lifecycle.to(S.ARMING, START, "collateral reserved")
        self.port = FakeBasketPort(self.clock, self.basket, scripts)
        self.ended: list[int] = []
        self.runner = BasketRunner(
            self.basket,
            self.lifecycle,
            self.port,
            RISK,
            settings,
            on_end=lambda: self.ended.append(self.clock.now_ns()),
            **runner_kw,
        )
        self.port._runner = self.runner
        self.runner.fire(FIRE)

    @property
    def state(self) -> BasketState:
        return self.lifecycle.state

    def states(self) -> list[BasketState]:
        return [change.state for change in self.lifecycle.history]

    def at(self, ms: int) -> None:
        """Run the basket until `ms` after its fire instant."""
        self.clock.run_until(FIRE + ms * MS)

    def until(self, cond: Callable[[], bool], within_s: float) -> None:
        self.clock.run_until(cond, limit_ns=FIRE + int(within_s * NS))

    def finish(self, within_s: float = 60.0) -> None:
        """Run until the basket has ended (raises if it has not by `within_s` after fire)."""
        self.until(lambda: self.runner.finished, within_s)
        assert self.ended == [self.runner.completed_ns], "on_end runs once, at the end"
        assert self.state.is_terminal

    def report(self, **legs: LegReport | None) -> BasketReport:
        """The runner's report from the fake legs' own (`legs`: these instead)."""
        given = {leg_id: fake.report() for leg_id, fake in self.port.legs.items()}
        given.update(legs)
        return self.runner.report(given, submitted_ns=START, collateral=CollateralReport())


def done_legs(eth_ms: int = 2_000, btc_ms: int = 3_000) -> dict[str, Script]:
    return {"eth": Script(filling("10", eth_ms)), "btc": Script(filling("0.4", btc_ms))}


# -- every leg done --------------------------------------------------------------------------


def test_every_leg_done_and_reconciled_completes_with_the_hedge_closed() -> None:
    run = Run(done_legs())
    port = run.port
    # Once the last leg is done the basket confirms with the venues; it is not complete yet.
    run.until(lambda: bool(port.calls("reconcile")), 10)
    assert run.state is S.RECONCILING
    assert not run.runner.finished
    last_done = max(e.t_ns for e in port.log if e.kind == "snapshot" and e.what == "DONE")
    assert run.runner.done_ns == last_done
    assert all(e.t_ns >= last_done for e in port.calls("reconcile"))
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    assert {e.detail for e in port.calls("reconcile")} == {7_500 * MS}
    run.finish()
    assert run.state is S.COMPLETED
    assert run.states() == [S.CHECKING, S.ARMING, S.RUNNING, S.RECONCILING, S.COMPLETED]
    assert run.runner.reason == "every leg reconciled with its venue"
    # Nothing stopped, unwound or recovered; the hedge closed after the last reconciliation.
    assert port.calls("stop") == port.calls("unwind") == port.calls("recover") == []
    assert [e.detail for e in port.calls("close_hedge")] == [False]
    assert port.calls("close_hedge")[0].t_ns >= max(e.t_ns for e in port.answers("reconcile"))

    report = run.report()
    assert report.status is S.COMPLETED
    assert [(leg.leg_id, leg.reconciled) for leg in report.legs] == [("eth", True), ("btc", True)]
    assert [leg.decision_price for leg in report.legs] == [leg.price for leg in run.basket.legs]
    assert all(leg.decision_price is not None for leg in report.legs)
    assert report.hedge is not None
    assert (report.hedge.held, report.hedge.flat_at_end, report.hedge.orders) == (False, True, 3)
    assert report.launched_ns is not None
    assert report.completed_ns == run.ended[0]
    assert report.tca is not None
    assert not any("TCA" in note for note in report.notes)


def test_a_hedge_order_that_may_still_fill_is_in_the_report() -> None:
    run = Run(done_legs())
    run.port.unsettled = ["lgh-d1-4"]
    run.until(lambda: bool(run.port.calls("reconcile")), 10)
    run.finish()
    report = run.report()
    assert report.hedge is not None
    assert (report.hedge.flat_at_end, report.hedge.unsettled) == (False, ["lgh-d1-4"])


def test_the_hedge_hears_of_an_exposure_before_the_legs_are_adjusted() -> None:
    # ETH fills at once while BTC waits: the same step moves the exposure and pauses ETH.
    scripts = {
        "eth": Script([Step(100, "5")]),
        "btc": Script([Step(100, "0")]),
    }
    run = Run(scripts)
    run.until(lambda: any(e.detail.mode is Mode.PAUSE for e in run.port.calls("adjust")), 5)
    pause = next(i for i, e in enumerate(run.port.log) if e.what == "adjust")
    before = run.port.log[:pause]
    step = [e for e in before if e.t_ns == run.port.log[pause].t_ns and e.kind == "call"]
    assert [e.what for e in step] == ["exposure"]


# -- the failure policy ----------------------------------------------------------------------


def failing_btc() -> dict[str, Script]:
    """ETH fills 4 of 10 in its first second and works on; BTC fills 0.1, then fails."""
    return {
        "eth": Script(filling("4", 1_000, done=False), delay_ms={"stop": 2}),
        "btc": Script(
            [
                Step(500, "0.1"),
                Step(1_500, "0.1", LegStatus.FAILED, reason="margin check refused the order"),
            ],
            delay_ms={"stop": 9},
        ),
    }


BTC_FAILED = "leg btc failed while running: margin check refused the order"


def test_a_failed_leg_under_unwind_stops_then_unwinds_then_reconciles_every_leg() -> None:
    run = Run(failing_btc())
    port = run.port
    run.finish()
    assert run.state is S.FAILED
    assert run.runner.reason == BTC_FAILED
    assert run.states()[2:] == [S.RUNNING, S.UNWINDING, S.RECONCILING, S.FAILED]
    assert sorted(port.legs_called("stop")) == ["btc", "eth"]
    assert {e.detail for e in port.calls("stop")} == {"stopped: " + BTC_FAILED}
    assert sorted(port.legs_called("unwind")) == ["btc", "eth"]
    assert {e.detail for e in port.calls("unwind")} == {12_500 * MS}  # the settings' window
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    # Each phase starts once every leg answered the one before.
    last_stop = max(e.t_ns for e in port.answers("stop"))
    assert min(e.t_ns for e in port.calls("unwind")) >= last_stop
    last_unwind = max(e.t_ns for e in port.answers("unwind"))
    assert min(e.t_ns for e in port.calls("reconcile")) >= last_unwind
    assert run.lifecycle.history[3].ts_ns == last_stop  # UNWINDING once the last leg stopped
    # Both legs flat: nothing out of step, the hedge is closed.
    assert [e.detail for e in port.calls("close_hedge")] == [False]
    assert port.calls("recover") == []


@pytest.mark.parametrize(
    ("leg", "answer", "left"),
    [
        (
            "eth",
            Unwound(
                leg_id="eth", left_qty=D("1.5"), orders=3, refusals=2, last_error="rate limited"
            ),
            "eth (1.5 left; last error: rate limited)",
        ),
        ("btc", RuntimeError("venue unavailable (503)"), "btc (venue unavailable (503))"),
    ],
)
def test_an_unwind_that_leaves_something_open_says_so_in_the_reason(
    leg: str, answer: Unwound | Exception, left: str
) -> None:
    scripts = failing_btc()
    scripts[leg].unwind = answer
    run = Run(scripts)
    run.finish()
    assert run.state is S.FAILED
    reason = run.runner.reason
    assert reason.startswith(f"{BTC_FAILED}; unwind incomplete on {left}")
    if isinstance(answer, Unwound):
        # 1.5 ETH still held against a flat BTC leg: the hedge stays.
        assert reason == f"{BTC_FAILED}; unwind incomplete on {left}{HELD}"
        assert [e.detail for e in run.port.calls("close_hedge")] == [True]


@pytest.mark.parametrize(
    ("btc_filled", "held"),
    [("0.1", True), ("0.4", False)],  # out of step at the end, or in step (all of it filled)
)
def test_under_complete_a_failed_leg_lets_the_others_finish(btc_filled: str, held: bool) -> None:
    scripts = {
        "eth": Script(filling("10", 4_000)),
        "btc": Script(
            [
                Step(500, btc_filled),
                Step(1_500, btc_filled, LegStatus.FAILED, reason="margin check refused the order"),
            ]
        ),
    }
    run = Run(scripts, Policy.COMPLETE)
    port = run.port
    run.at(3_000)  # BTC failed 1.5 s ago; ETH still works
    assert run.state is S.RUNNING
    assert port.legs["eth"].status is LegStatus.WORKING
    run.finish()
    eth_done = next(e.t_ns for e in port.log if e.what == "DONE" and e.leg_id == "eth")
    assert eth_done == FIRE + 4_000 * MS
    assert run.lifecycle.history[3].state is S.RECONCILING
    assert run.lifecycle.history[3].ts_ns == eth_done
    assert port.calls("stop") == port.calls("unwind") == []
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    assert run.state is S.FAILED
    assert run.runner.reason == BTC_FAILED + (HELD if held else "")
    assert [e.detail for e in port.calls("close_hedge")] == [held]
    assert BTC_FAILED + "; the other legs go on (policy complete)" in run.runner.notes


def test_under_complete_the_legs_the_synchronizer_held_are_released() -> None:
    # ETH races ahead and is paused for BTC; BTC then fails: ETH must not stay paused.
    scripts = {
        "eth": Script([Step(200, "5"), Step(4_000, "10", LegStatus.DONE)]),
        "btc": Script([Step(200, "0"), Step(1_500, "0", LegStatus.FAILED, reason="no book")]),
    }
    run = Run(scripts, Policy.COMPLETE)
    run.at(1_000)
    eth = [e.detail.mode for e in run.port.calls("adjust") if e.leg_id == "eth"]
    assert eth[-1] is Mode.PAUSE
    run.at(1_600)
    eth = [e.detail.mode for e in run.port.calls("adjust") if e.leg_id == "eth"]
    assert eth[-1] is Mode.NORMAL


@pytest.mark.parametrize(
    ("btc_filled", "held"),
    [("0.1", True), ("0.16", False)],  # ETH is 0.4 of the way: BTC behind, or in step
)
def test_a_cancel_under_hedge_and_hold_stops_the_legs_and_does_not_unwind(
    btc_filled: str, held: bool
) -> None:
    scripts = {
        "eth": Script(filling("4", 1_000, done=False)),
        "btc": Script([Step(500, btc_filled)]),
    }
    run = Run(scripts, Policy.HEDGE_AND_HOLD)
    run.clock.call_at(FIRE + 2 * NS, lambda: run.runner.cancel("cancelled by the operator"))
    run.finish()
    port = run.port
    assert run.state is S.CANCELLED
    assert sorted(port.legs_called("stop")) == ["btc", "eth"]
    assert {e.detail for e in port.calls("stop")} == {"stopped: cancelled by the operator"}
    assert all(e.t_ns >= FIRE + 2 * NS for e in port.calls("stop"))
    assert port.calls("unwind") == []
    assert S.UNWINDING not in run.states()
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    assert [e.detail for e in port.calls("close_hedge")] == [held]
    assert run.runner.reason == "cancelled by the operator" + (HELD if held else "")


# -- the deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_overrun_s", "deadline_s", "words"),
    [
        (60.0, 10 + 5 + 60, "not done 65 s after its horizon of 10 s"),  # min_overrun_s wins
        (2.0, 10 + 5 + 10, "not done 15 s after its horizon of 10 s"),  # the horizon wins
    ],
)
def test_a_basket_not_done_by_its_deadline_fails_and_applies_its_policy(
    min_overrun_s: float, deadline_s: int, words: str
) -> None:
    # Both legs stall half way, in step, and keep telling the basket so.
    scripts = {
        "eth": Script(filling("5", 1_000, done=False)),
        "btc": Script(filling("0.2", 1_000, done=False)),
    }
    settings = msgspec.structs.replace(SETTINGS, min_overrun_s=min_overrun_s)
    run = Run(scripts, settings=settings, horizon_s=10.0, grace_s=5.0)
    deadline = FIRE + deadline_s * NS
    run.clock.run_until(deadline)
    assert run.state is S.RUNNING
    assert run.port.calls("stop") == []
    run.finish(within_s=deadline_s + 1)
    first_stop = min(e.t_ns for e in run.port.calls("stop"))
    assert deadline < first_stop <= deadline + SETTINGS.tick_ns
    assert run.state is S.FAILED
    assert run.runner.reason == words
    # Policy unwind: every leg traded back.
    assert sorted(run.port.legs_called("unwind")) == ["btc", "eth"]
    assert S.UNWINDING in run.states()


# -- silent and lost legs --------------------------------------------------------------------


def dying_btc(dead_ping: str = "timeout", **kw: Any) -> dict[str, Script]:
    """ETH works for 30 s; BTC fills 0.1, and its actor dies 1 s after the fire (its last
    snapshot at 500 ms)."""
    return {
        "eth": Script(filling("10", 30_000, steps=60)),
        "btc": Script([Step(500, "0.1")], dies_at_ms=1_000, dead_ping=dead_ping, **kw),
    }


@pytest.mark.parametrize(
    ("dead_ping", "pings"),
    [("timeout", PROBE_ATTEMPTS), (DIED, 1)],
)
def test_a_silent_leg_that_does_not_answer_is_lost_recovered_then_unwound(
    dead_ping: str, pings: int
) -> None:
    run = Run(dying_btc(dead_ping))
    port = run.port
    run.finish()
    # Quiet for longer than leg_silence_ns: pinged, and nobody else is.
    first_ping = port.calls("ping")[0].t_ns
    assert FIRE + 3_500 * MS < first_ping <= FIRE + 3_500 * MS + SETTINGS.tick_ns
    assert port.legs_called("ping") == ["btc"] * pings
    assert run.runner.lost == {"btc": dead_ping}
    # Lost only once the last ping came back.
    assert min(e.t_ns for e in port.calls("stop")) >= port.answers("ping")[-1].t_ns
    assert run.state is S.FAILED
    assert run.runner.reason == f"leg btc failed while running: leg actor lost ({dead_ping})"
    # The lost leg is recovered first, then unwound and reconciled like the others.
    assert port.legs_called("recover") == ["btc"]
    recovered = port.index("answer", "recover", "btc")
    assert min(port.index("call", "unwind", leg) for leg in ("eth", "btc")) > recovered
    assert sorted(port.legs_called("unwind")) == ["btc", "eth"]
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    assert port.index("call", "reconcile", "btc") > recovered
    assert all(isinstance(e.detail, Unwound) for e in port.answers("unwind"))
    note = (
        f"leg btc: its actor was lost ({dead_ping}); recovered from its venue's records of "
        "its orders"
    )
    assert note in run.report().notes


@pytest.mark.parametrize(("busy_until_ms", "pings"), [(5_000, 1), (8_000, 2)])
def test_a_leg_that_sends_a_snapshot_while_it_is_probed_is_not_lost(
    busy_until_ms: int, pings: int
) -> None:
    # BTC's machine is busy from 0.6 s: every ping times out (the first goes out at 3.6 s
    # and times out at 6.6 s, the second at 9.6 s), but its snapshots come through again
    # while the first (or the second) ping is still out.
    scripts = {
        "eth": Script(filling("10", 12_000)),
        "btc": Script(
            filling("0.4", 12_000),
            silent=(600, busy_until_ms),
            pings=["timeout"] * PROBE_ATTEMPTS,
        ),
    }
    run = Run(scripts)
    run.finish()
    assert run.port.legs_called("ping") == ["btc"] * pings
    assert run.runner.lost == {}
    assert run.port.calls("recover") == []
    assert run.state is S.COMPLETED


def test_legs_are_never_probed_when_leg_silence_is_zero() -> None:
    settings = msgspec.structs.replace(SETTINGS, leg_silence_ns=0)
    scripts = {
        "eth": Script(filling("10", 8_000)),
        "btc": Script(filling("0.4", 8_000), silent=(600, 6_000)),
    }
    run = Run(scripts, settings=settings)
    run.finish()
    assert run.port.calls("ping") == []
    assert run.state is S.COMPLETED


@pytest.mark.parametrize("policy", list(Policy))
def test_a_recovery_that_fails_is_noted_and_the_basket_still_ends(policy: Policy) -> None:
    run = Run(dying_btc(DIED, recover=RuntimeError("venue unavailable (503)")), policy)
    run.finish(within_s=120)
    assert run.port.legs_called("recover") == ["btc"]
    report = run.report(btc=None)  # the lost leg gave no report: its last snapshot stands in
    assert "leg btc: could not be recovered: venue unavailable (503)" in report.notes
    assert run.state is S.FAILED
    assert "leg btc failed while running: leg actor lost" in run.runner.reason
    btc = report.legs[1]
    assert (btc.leg_id, btc.reconciled, btc.filled_qty) == ("btc", False, D("0.1"))
    if policy is Policy.UNWIND:
        assert f"unwind incomplete on btc ({DIED})" in run.runner.reason


# -- reconciliation --------------------------------------------------------------------------


def test_a_reconciliation_that_disagrees_fails_the_basket() -> None:
    scripts = done_legs()
    scripts["btc"].reconcile = Reconciliation(
        leg_id="btc",
        reconciled=False,
        orders_checked=4,
        venue_filled_qty=D("0.4"),
        ledger_filled_qty=D("0.4"),
        mismatches=[Mismatch(client_order_id="b1-btc-3", field="fee", ours="0.1", venue="0.2")],
    )
    run = Run(scripts)
    run.finish()
    assert run.state is S.FAILED
    assert run.runner.reason == (
        "the venues disagree with the legs' records: leg btc: b1-btc-3 fee ours 0.1 venue 0.2"
    )
    report = run.report()
    assert [leg.reconciled for leg in report.legs] == [True, False]


def test_a_leg_whose_reconcile_call_fails_is_not_confirmed() -> None:
    scripts = done_legs()
    scripts["btc"].reconcile = RuntimeError("venue unavailable (503)")
    run = Run(scripts)
    run.finish()
    assert run.state is S.FAILED
    why = "reconciliation failed: venue unavailable (503)"
    assert run.runner.reason == (
        f"the venues disagree with the legs' records: leg btc: not confirmed with its venue ({why})"
    )
    assert f"leg btc: {why}" in run.runner.notes
    assert [leg.reconciled for leg in run.report().legs] == [True, False]


def test_a_reconciliation_that_finds_the_legs_out_of_step_holds_the_hedge() -> None:
    # BTC said it sold 0.4; its venue says 0.3: the basket is $6,500 long ETH, unhedged.
    scripts = done_legs()
    scripts["btc"].reconcile = Reconciliation(
        leg_id="btc",
        reconciled=False,
        orders_checked=4,
        venue_filled_qty=D("0.3"),
        ledger_filled_qty=D("0.4"),
        mismatches=[
            Mismatch(client_order_id="b1-btc-3", field="filled_qty", ours="0.1", venue="0")
        ],
    )
    run = Run(scripts)
    run.finish()
    assert run.state is S.FAILED
    assert [e.detail for e in run.port.calls("close_hedge")] == [True]


def test_under_complete_a_lost_leg_with_an_order_open_does_not_hold_the_basket_running() -> None:
    # BTC's actor dies with an order of 0.1 open (its last snapshot) and is found lost at
    # 3.6 s; ETH is done at 8 s. The basket should end then, on the lost leg.
    scripts = {
        "eth": Script(filling("10", 8_000)),
        "btc": Script([Step(500, "0.1", open_qty="0.1")], dies_at_ms=1_000, dead_ping=DIED),
    }
    run = Run(scripts, Policy.COMPLETE)
    run.finish(within_s=700)
    assert run.runner.lost == {"btc": DIED}
    ended = run.lifecycle.history[3]
    assert ended.state is S.RECONCILING
    assert ended.ts_ns <= FIRE + 8_000 * MS + SETTINGS.tick_ns
    assert run.runner.reason.startswith("leg btc failed while running: leg actor lost")


def test_a_leg_whose_stop_finds_its_actor_gone_is_recovered_before_it_is_unwound() -> None:
    # BTC's actor dies at 1 s; the basket is cancelled at 2 s, before a probe could find
    # it (its first ping would go out at 3.6 s). Its stop answers the dead actor's error.
    run = Run(dying_btc(DIED))
    run.clock.call_at(FIRE + 2 * NS, lambda: run.runner.cancel("cancelled by the operator"))
    run.finish()
    port = run.port
    stopped = {e.leg_id: e.detail for e in port.answers("stop")}
    assert isinstance(stopped["btc"], Exception)
    assert port.legs_called("recover") == ["btc"]
    assert port.index("call", "unwind", "btc") > port.index("answer", "recover", "btc")
    assert run.state is S.CANCELLED
    assert "unwind incomplete" not in run.runner.reason


def test_a_probe_that_ends_during_reconciliation_does_not_turn_a_cancel_into_a_failure() -> None:
    # BTC's actor dies at 1 s; its first ping goes out at 3.6 s; the basket is cancelled at
    # 5 s (hedge_and_hold: no unwind) and ETH takes 10 s to reconcile. The third ping
    # times out at 12.6 s, while the basket reconciles.
    scripts = {
        "eth": Script(filling("4", 1_000, done=False), delay_ms={"reconcile": 10_000}),
        "btc": Script([Step(500, "0.1")], dies_at_ms=1_000),
    }
    run = Run(scripts, Policy.HEDGE_AND_HOLD)
    run.clock.call_at(FIRE + 5 * NS, lambda: run.runner.cancel("cancelled by the operator"))
    run.finish()
    assert run.state is S.CANCELLED
    assert run.port.legs_called("recover") == ["btc"]


# -- sequential mode -------------------------------------------------------------------------


def test_sequential_mode_fires_the_next_leg_once_the_previous_is_done() -> None:
    run = Run(done_legs(eth_ms=2_000, btc_ms=2_000), synchronize=False, sequential=True)
    port = run.port
    run.at(1_999)
    assert [(e.leg_id, e.detail) for e in port.calls("fire")] == [("eth", FIRE)]
    run.at(2_000)
    eth_done = FIRE + 2_000 * MS
    assert [(e.leg_id, e.detail) for e in port.calls("fire")] == [("eth", FIRE), ("btc", eth_done)]
    run.finish()
    assert run.state is S.COMPLETED
    assert len(port.calls("fire")) == 2
    btc_done = next(e.t_ns for e in port.log if e.what == "DONE" and e.leg_id == "btc")
    assert btc_done == eth_done + 2_000 * MS


# -- the fire lead ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("floor_ms", "worst_clock_rtt_ms", "venue_rtts_ms", "lead_ms"),
    [
        (50, 5, [], 50),  # the floor
        (50, 5, [10, 30], 50 + 15),  # + half the largest venue round trip
        (50, 20, [30, 10], 80 + 15),  # 4 × the worst clock round trip when larger
        (15, 3, [2], 15 + 1),
    ],
)
def test_the_fire_lead(
    floor_ms: int, worst_clock_rtt_ms: int, venue_rtts_ms: list[int], lead_ms: int
) -> None:
    lead = BasketRunner.fire_lead_ns(
        floor_ms * MS, worst_clock_rtt_ms * MS, [rtt * MS for rtt in venue_rtts_ms]
    )
    assert lead == lead_ms * MS


@pytest.mark.parametrize("policy", [Policy.COMPLETE, Policy.UNWIND])
def test_a_leg_lost_while_reconciling_is_recovered_and_reconciled_again(policy: Policy) -> None:
    scripts = done_legs()
    # BTC's last snapshot (DONE) is at 3 s; its actor dies just after, before its answer.
    scripts["btc"] = Script(filling("0.4", 3_000), dies_at_ms=3_001)
    run = Run(scripts, policy)
    run.finish(within_s=120)
    port = run.port
    assert port.legs_called("recover") == ["btc"]
    assert port.legs_called("reconcile").count("btc") == 2  # lost, recovered, asked again
    assert "leg btc: its actor was lost while reconciling" in " ".join(run.runner.notes)
    # Every leg done, then every leg reconciled: the basket completes whatever the policy,
    # and nothing is unwound (only a failed or cancelled basket unwinds).
    assert run.state is S.COMPLETED, run.runner.reason
    assert port.calls("unwind") == []


# -- a take-over -------------------------------------------------------------------------------


def taken_over(scripts: dict[str, Script], policy: Policy, lost_at_ms: int) -> Run:
    """A run whose basket actor was lost `lost_at_ms` after its fire: a fresh runner on the
    same (fake) venues carries it on from the journal's fire instant."""
    run = Run.__new__(Run)
    run.clock = FakeClock(FIRE + lost_at_ms * MS)
    run.basket = basket(policy, horizon_s=300.0, grace_s=30.0)
    run.lifecycle = BasketLifecycle(run.basket.basket_id, START)
    run.lifecycle.take_over([], run.clock.now_ns(), "taken over")
    run.port = FakeBasketPort(run.clock, run.basket, scripts)
    run.ended = []
    run.runner = BasketRunner(
        run.basket,
        run.lifecycle,
        run.port,
        RISK,
        SETTINGS,
        on_end=lambda: run.ended.append(run.clock.now_ns()),
    )
    run.port._runner = run.runner
    run.runner.take_over(FIRE, "the basket actor was lost (in RUNNING)")
    return run


def test_a_basket_taken_over_under_policy_complete_carries_on_and_completes() -> None:
    run = taken_over(done_legs(eth_ms=4_000, btc_ms=6_000), Policy.COMPLETE, lost_at_ms=2_500)
    run.finish()
    port = run.port
    # Every leg brought up from its venue and carrying on its schedule from the fire.
    assert sorted(port.legs_called("resume")) == ["btc", "eth"]
    assert {e.detail for e in port.calls("resume")} == {2_500 * MS}
    assert port.calls("recover") == [] and port.calls("unwind") == []
    assert run.state is S.COMPLETED, run.runner.reason
    assert sorted(port.legs_called("reconcile")) == ["btc", "eth"]
    assert any("carries on" in note for note in run.report().notes)


def test_a_successors_exposure_reports_outrank_every_one_the_lost_actor_sent() -> None:
    """The hedge desk keeps the highest report number per basket and drops the rest as
    stale: a successor numbering its reports from 1 again went unheard for as long as its
    predecessor had reported, the desk hedging the lost actor's last exposure meanwhile."""
    run = taken_over(done_legs(eth_ms=4_000, btc_ms=6_000), Policy.COMPLETE, lost_at_ms=2_500)
    run.finish()
    sent = [e.detail for e in run.port.calls("exposure")]
    assert sent, "the successor reported no exposure"
    book = HedgeBook(HedgeSizer(RISK, run.basket.hedge_instruments))
    basket_id = run.basket.basket_id
    # The lost actor's last report: a long run of them (10 a second for almost 3 hours).
    assert book.report(basket_id, 100_000, sent[0].exposure, 0)
    assert [book.report(basket_id, e.seq, e.exposure, 0) for e in sent] == [True] * len(sent)


def test_a_leg_that_cannot_carry_on_after_a_take_over_is_lost_and_the_others_go_on() -> None:
    scripts = done_legs(eth_ms=4_000, btc_ms=6_000)
    scripts["btc"] = Script(filling("0.4", 6_000), recover=RuntimeError("venue unreachable"))
    run = taken_over(scripts, Policy.COMPLETE, lost_at_ms=2_500)
    run.finish()
    assert run.runner.lost.keys() == {"btc"}
    assert "could not carry on" in run.runner.lost["btc"]
    assert run.port.legs["eth"].status is LegStatus.DONE  # the healthy leg went on
    assert run.state is S.FAILED


@pytest.mark.parametrize("policy", [Policy.UNWIND, Policy.HEDGE_AND_HOLD])
def test_a_basket_taken_over_under_another_policy_fails_and_applies_it(policy: Policy) -> None:
    run = taken_over(done_legs(eth_ms=4_000, btc_ms=6_000), policy, lost_at_ms=2_500)
    run.finish()
    port = run.port
    assert port.calls("resume") == []
    assert sorted(port.legs_called("recover")) == ["btc", "eth"]
    assert run.state is S.FAILED and "taken over" not in run.runner.reason
    assert "the basket actor was lost" in run.runner.reason
    unwound = sorted(port.legs_called("unwind"))
    assert unwound == (["btc", "eth"] if policy is Policy.UNWIND else [])


def test_a_cancel_while_a_take_over_brings_its_legs_up_waits_for_them_then_stops_them() -> None:
    scripts = {
        "eth": Script(filling("10", 8_000), delay_ms={"recover": 2_000}),
        "btc": Script(filling("0.4", 8_000), delay_ms={"recover": 1_000}),
    }
    run = taken_over(scripts, Policy.COMPLETE, lost_at_ms=2_500)
    run.at(3_000)
    run.runner.cancel("cancelled by the user")
    assert run.port.calls("stop") == []  # eth is still being brought up
    run.finish()
    port = run.port
    last_up = max(e.t_ns for e in port.answers("resume"))
    assert sorted(port.legs_called("stop")) == ["btc", "eth"]
    assert min(e.t_ns for e in port.calls("stop")) >= last_up
    assert port.calls("recover") == [] and run.runner.lost == {}
    assert run.state is S.CANCELLED


def test_a_basket_taken_over_past_its_horizon_and_grace_does_not_carry_on() -> None:
    # Horizon 300 s, grace 30 s: taken over 400 s after its fire (the machine was down).
    run = taken_over(done_legs(eth_ms=4_000, btc_ms=6_000), Policy.COMPLETE, lost_at_ms=400_000)
    run.until(lambda: run.runner.finished, 500.0)
    port = run.port
    assert port.calls("resume") == []
    assert sorted(port.legs_called("recover")) == ["btc", "eth"]
    assert run.state is S.FAILED and "does not carry on" in run.runner.reason


# -- legs whose collateral is being routed (`params.on_unfunded = "hedge"`) ------------------


def test_a_deferred_leg_is_not_fired_and_holds_no_leader_back_while_the_hedge_covers_it() -> None:
    run = Run(
        {"eth": Script(filling("10", 4_000)), "btc": Script(filling("0.4", 2_000))},
        deferred={"btc"},
    )
    port = run.port
    run.at(3_000)
    assert port.legs_called("fire") == ["eth"]
    # eth ran on alone, never paused for the leg that has not started ...
    assert not [
        e for e in port.calls("adjust") if e.leg_id == "eth" and e.detail.mode.value == "PAUSE"
    ]
    assert run.runner.core is not None and run.runner.core.legs["eth"].filled_qty > D("5")
    # ... and its exposure went to the hedge, as the whole of eth's fills.
    last = port.calls("exposure")[-1].detail
    assert last.imbalance_usd["btc"] == 0 and last.imbalance_usd["eth"] > 0
    assert not run.runner.finished


def test_a_funded_leg_fires_late_and_the_basket_completes_with_its_deadline_moved() -> None:
    run = Run(
        {"eth": Script(filling("10", 2_000)), "btc": Script(filling("0.4", 2_000))},
        deferred={"btc"},
    )
    port = run.port
    deadline = run.runner.deadline_ns
    run.at(5_000)
    assert port.legs_called("fire") == ["eth"]
    run.runner.fund(FIRE + 5_000 * MS)
    assert port.legs_called("fire") == ["eth", "btc"]
    assert port.calls("fire")[-1].detail == FIRE + 5_000 * MS
    assert port.schedules == {"eth": None, "btc": FIRE}  # btc joins the basket's schedule
    assert run.runner.deadline_ns == deadline + 5_000 * MS
    run.finish()
    assert run.state is S.COMPLETED
    assert any("funded" in note for note in run.report().notes)


def test_a_leg_never_funded_fails_and_the_policy_unwinds_the_others() -> None:
    run = Run(
        {"eth": Script(filling("10", 2_000)), "btc": Script(filling("0.4", 2_000))},
        deferred={"btc"},
    )
    port = run.port
    run.at(3_000)
    run.runner.unfunded("transfer b.r1-t1 failed: rejected")
    run.finish()
    assert run.state is S.FAILED
    assert "leg btc failed" in run.runner.reason and "not funded" in run.runner.reason
    assert "eth" in port.legs_called("unwind")
    assert port.legs_called("fire") == ["eth"]
