"""The backtest: deterministic per seed, each execution mode doing what it says, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from actors.backtest import (
    BacktestError,
    ExecutionMode,
    check_venues,
    compare,
    parse_modes,
    run_once,
)
from actors.backtest.loop import Loop
from actors.lifecycle import BasketState
from actors.spec import load_basket
from bench.bench_backtest import steady
from cluster.config import load_cluster
from venues.config import BinanceUsdmConfig

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "bench" / "scenarios"


@pytest.fixture(scope="module")
def laggard() -> tuple[object, object, object]:
    cluster = load_cluster(SCENARIOS / "laggard" / "venues_200ms.toml")
    spec = load_basket(SCENARIOS / "laggard" / "pair.toml")
    # A shorter basket keeps the tests quick; the behaviour is the same.
    params = msgspec.structs.replace(spec.params, horizon_s=12)
    legs = [msgspec.structs.replace(leg, quantity=4) for leg in spec.legs]
    spec = msgspec.structs.replace(spec, params=params, legs=legs)
    return spec, check_venues(cluster.venues), cluster.risk


def test_same_seed_same_run_to_the_last_byte(laggard) -> None:
    spec, venues, risk = laggard
    a = run_once(spec, venues, ExecutionMode.COORDINATED, 3, risk=risk)
    b = run_once(spec, venues, ExecutionMode.COORDINATED, 3, risk=risk)
    assert a.report.status is BasketState.COMPLETED
    assert a.report.to_json() == b.report.to_json()
    assert a.market_events == b.market_events > 0


def test_another_seed_is_another_market(laggard) -> None:
    spec, venues, risk = laggard
    a = run_once(spec, venues, ExecutionMode.COORDINATED, 1, risk=risk)
    b = run_once(spec, venues, ExecutionMode.COORDINATED, 2, risk=risk)
    assert [leg.avg_price for leg in a.report.legs] != [leg.avg_price for leg in b.report.legs]


def test_every_mode_fills_the_basket_and_is_reconciled(laggard) -> None:
    spec, venues, risk = laggard
    for mode in ExecutionMode:
        r = run_once(spec, venues, mode, 0, risk=risk)
        assert r.report.status is BasketState.COMPLETED, (mode, r.report.reason)
        assert all(leg.filled_qty == leg.original_qty == 4 for leg in r.report.legs)
        assert all(leg.reconciled for leg in r.report.legs)


def test_sequential_starts_each_leg_after_the_previous_one_is_done(laggard) -> None:
    spec, venues, risk = laggard
    r = run_once(spec, venues, ExecutionMode.SEQUENTIAL, 0, risk=risk)
    first, second = r.report.legs
    last_fill_of_first = max(c.venue_accept_ns for c in first.child_orders if c.filled_qty > 0)
    assert second.first_send_ns > last_fill_of_first
    # Leg after leg: the whole first leg is naked until the second starts.
    assert r.metrics()["peak_imbalance_usd"] > 0.9 * float(first.original_qty * first.avg_price)


def test_coordinated_launch_lands_the_legs_together_and_independent_does_not(laggard) -> None:
    spec, venues, risk = laggard
    coordinated = run_once(spec, venues, ExecutionMode.COORDINATED, 0, risk=risk).report
    independent = run_once(spec, venues, ExecutionMode.INDEPENDENT, 0, risk=risk).report
    # The slow venue is 100 ms away each way: sent together, the first orders land ~100 ms
    # apart; sent half a round trip early, within the latency's jitter.
    assert independent.launch_skew_ns > 50_000_000
    assert coordinated.launch_skew_ns < 40_000_000


def test_the_laggards_jitter_is_what_coordinated_legging_risk_is_left_with(laggard) -> None:
    """bench_backtest's steady sweep: the same slow venue with every trip at its median."""
    spec, venues, risk = laggard
    still = steady(venues, "slow")
    assert still.venues["slow"].profile["request"] == {"median_ms": 100, "p99_ms": 100}
    assert still.venues["fast"] == venues.venues["fast"]
    for seed in range(3):
        jittery, calm = (
            run_once(spec, check_venues(v), ExecutionMode.COORDINATED, seed, risk=risk).metrics()[
                "legging_risk_usd"
            ]
            for v in (venues, still)
        )
        assert calm < 0.8 * jittery, (seed, calm, jittery)


def test_a_preset_profile_cannot_be_made_steady(laggard) -> None:
    with pytest.raises(ValueError, match="venue fast: its profile must give request and response"):
        steady(laggard[1], "fast")


def test_the_comparison_document_has_every_figure_per_mode(laggard) -> None:
    spec, venues, risk = laggard
    doc = compare(spec, venues, [ExecutionMode.COORDINATED, ExecutionMode.SEQUENTIAL], 2, risk=risk)
    assert doc["seeds"] == 2
    assert set(doc["modes"]) == {"coordinated", "sequential"}
    for mode in doc["modes"].values():
        for key in ("legging_risk_usd", "peak_imbalance_usd", "shortfall_bps", "completion_s"):
            assert set(mode[key]) >= {"mean", "p50", "p95"}
            assert mode[key]["n"] == 2
        assert mode["hedge_cost_usd"]["mean"] == 0.0  # the pair has no hedge
    seq, coord = doc["modes"]["sequential"], doc["modes"]["coordinated"]
    assert seq["legging_risk_usd"]["mean"] > 10 * coord["legging_risk_usd"]["mean"]
    assert doc["events_per_s"] > 0


def test_runs_spread_over_processes_give_the_same_document(laggard) -> None:
    spec, venues, risk = laggard
    modes = [ExecutionMode.COORDINATED, ExecutionMode.INDEPENDENT]
    seen: list[tuple[str, int]] = []
    alone = compare(spec, venues, modes, 2, risk=risk)
    spread = compare(
        spec,
        venues,
        modes,
        2,
        risk=risk,
        jobs=2,
        progress=lambda r: seen.append((r.variant, r.seed)),
    )
    assert sorted(seen) == sorted((m.value, s) for m in modes for s in range(2))
    # The same figures; only what the runs cost differs (each process its own clock).
    for doc in (alone, spread):
        for key in ("wall_s", "events_per_s"):
            doc.pop(key)
    assert spread == alone
    assert alone["modes"]["coordinated"]["runs"] == 2


def test_a_hedged_basket_hedges_only_when_coordinated() -> None:
    cluster = load_cluster(ROOT / "examples" / "venues.toml")
    spec = load_basket(ROOT / "examples" / "synthetic_eth_quick.toml")
    spec = msgspec.structs.replace(spec, params=msgspec.structs.replace(spec.params, horizon_s=6))
    # A desk that prices risk far above what hedging costs: this basket's imbalance is then
    # worth hedging (at the default price it is not: docs/basket.md#hedge).
    assert spec.hedge is not None
    eager = msgspec.structs.replace(spec.hedge, risk_price=1e6)
    spec = msgspec.structs.replace(spec, hedge=eager)
    venues = check_venues(cluster.venues)
    hedged = run_once(spec, venues, ExecutionMode.COORDINATED, 0, risk=cluster.risk).report
    plain = run_once(spec, venues, ExecutionMode.INDEPENDENT, 0, risk=cluster.risk).report
    assert hedged.hedge is not None and hedged.hedge.orders > 0
    assert hedged.hedge.flat_at_end
    assert plain.hedge is not None and plain.hedge.orders == 0


def test_unknown_modes_are_named_with_what_is_accepted() -> None:
    with pytest.raises(BacktestError, match=r"'fast'.*coordinated, independent, sequential"):
        parse_modes("coordinated,fast")
    assert parse_modes("independent, coordinated,independent") == [
        ExecutionMode.INDEPENDENT,
        ExecutionMode.COORDINATED,
    ]


def test_a_real_venue_cannot_be_backtested() -> None:
    cluster = load_cluster(SCENARIOS / "laggard" / "venues_10ms.toml")
    real = BinanceUsdmConfig(api_key_env="NO_KEY", secret_env="NO_SECRET")
    config = msgspec.structs.replace(cluster.venues, venues={"real": real})
    with pytest.raises(BacktestError, match=r"venues\.real: .*simulated venues only"):
        check_venues(config)


def test_a_basket_longer_than_the_recording_is_refused(laggard) -> None:
    cluster = load_cluster(SCENARIOS / "spot_perp_replay" / "venues.toml")
    spec = load_basket(SCENARIOS / "spot_perp_replay" / "basis.toml")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, horizon_s=3600)
    )
    with pytest.raises(BacktestError, match=r"params\.horizon_s: 3600 s needs a recording"):
        run_once(spec, check_venues(cluster.venues), ExecutionMode.COORDINATED, 0)


class _Stepper:
    """A periodic task for the loop test: busy at some steps, stopped after `last_ns`."""

    def __init__(self, loop: Loop, name: str, busy: set[int], last_ns: int, log: list) -> None:
        self.loop, self.name, self.busy, self.last_ns, self.log = loop, name, busy, last_ns, log

    def idle(self, t_ns: int) -> bool:
        return t_ns <= self.last_ns and t_ns not in self.busy

    def step(self) -> bool:
        now = self.loop.now
        if now > self.last_ns:
            return False
        self.log.append((now, self.name))
        # What a busy step does: schedule events, some of them tied with later steps.
        self.loop.after(5 * (now % 3), self.log.append, (now, f"{self.name} made at"))
        return True

    def rescheduling(self) -> None:
        """The same task as an event that reschedules itself at the end of each run."""
        if self.loop.now > self.last_ns:
            return
        if not self.idle(self.loop.now):
            self.step()
        self.loop.after(5, self.rescheduling)


@pytest.mark.parametrize("seed", range(10))
def test_a_periodic_task_keeps_the_order_of_an_event_rescheduling_itself(seed: int) -> None:
    """`Loop.every` skips the idle runs of a venue's step, and every event still runs in
    the order (ties included) it would with the step an event rescheduling itself."""
    rng = random.Random(seed)

    def simulate(periodic: bool) -> list:
        loop, log = Loop(0), []
        steppers = [
            _Stepper(loop, name, {5 * rng_k for rng_k in busy}, 600, log)
            for name, busy in (("a", busy_a), ("b", busy_b))
        ]
        for s in steppers:
            if periodic:
                loop.every(5, s)
            else:
                loop.at(0, s.rescheduling)
        for t, k in events:  # other events, many of them on the steps' 5 ns grid
            loop.at(t, log.append, (t, f"event {k}"))
        loop.run(lambda: len(log) > 400, 1_000)
        return log

    busy_a = set(rng.sample(range(121), 30))
    busy_b = set(rng.sample(range(121), 30))
    events = [(rng.randrange(0, 200) * rng.choice((1, 5)), k) for k in range(60)]
    assert simulate(periodic=True) == simulate(periodic=False)


def test_modes_can_carry_a_child_style_and_each_is_a_row() -> None:
    from actors.backtest.compare import Variant  # noqa: PLC0415
    from actors.spec import ChildStyle  # noqa: PLC0415

    assert parse_modes("coordinated:twap, coordinated:passive,independent") == [
        Variant(ExecutionMode.COORDINATED, ChildStyle.TWAP),
        Variant(ExecutionMode.COORDINATED, ChildStyle.PASSIVE),
        ExecutionMode.INDEPENDENT,
    ]
    with pytest.raises(BacktestError, match=r"'maker'.*twap, passive, pov"):
        parse_modes("coordinated:maker")


@pytest.mark.parametrize("style", ["passive", "pov"])
def test_every_child_style_completes_the_basket_reconciled(laggard, style: str) -> None:
    from actors.backtest.compare import Variant  # noqa: PLC0415
    from actors.spec import ChildStyle  # noqa: PLC0415

    spec, venues, risk = laggard
    runs = [ExecutionMode.COORDINATED, Variant(ExecutionMode.COORDINATED, ChildStyle(style))]
    doc = compare(spec, venues, runs, 1, risk=risk)
    assert set(doc["modes"]) == {"coordinated", f"coordinated:{style}"}
    assert doc["modes"][f"coordinated:{style}"]["completed"] == 1
    styled = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, child_style=style)
    )
    r = run_once(styled, venues, ExecutionMode.COORDINATED, 0, risk=risk)
    assert r.report.status is BasketState.COMPLETED, r.report.reason
    assert all(leg.reconciled for leg in r.report.legs)
    for leg in r.report.legs:
        assert all(c.status.is_terminal for c in leg.child_orders), "an order was left open"


def test_passive_legs_kept_in_step_by_fills_complete_and_stay_in_step() -> None:
    """The quick demo's three legs (5 % band, 0.5 s slices) in `passive`: each partner fill
    beyond half a slice is followed at once by the others (docs/basket.md, "Child styles"),
    so every run completes, and over the same seeds the legs spend no more time outside the
    band, and carry no more legging risk on their fills, than in `twap`."""
    cluster = load_cluster(ROOT / "examples" / "venues.toml")
    spec = load_basket(ROOT / "examples" / "synthetic_eth_quick.toml")
    passive = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, child_style="passive")
    )
    venues = check_venues(cluster.venues)
    totals = {style: {"risk": 0.0, "outside": 0.0} for style in ("twap", "passive")}
    for seed in range(3):
        for style, s in (("twap", spec), ("passive", passive)):
            r = run_once(s, venues, ExecutionMode.COORDINATED, seed, risk=cluster.risk)
            assert r.report.status is BasketState.COMPLETED, (style, seed, r.report.reason)
            totals[style]["risk"] += r.metrics()["legging_risk_usd"]
            totals[style]["outside"] += r.report.tca["time_outside_band_s"]
    assert totals["passive"]["risk"] <= totals["twap"]["risk"], totals
    assert totals["passive"]["outside"] <= totals["twap"]["outside"], totals
