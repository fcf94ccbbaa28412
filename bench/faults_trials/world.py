"""What every fault trial stands on: its venues, its baskets, the engine it runs them on,
and each run as the driver saw it (the fault done to it, its report's final state)."""

from __future__ import annotations

import contextlib
import copy
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ray

from actors.lifecycle import BasketState
from actors.shells.remote import COLLATERAL_NAME, HEDGE_NAME, REGISTRY_NAME
from actors.spec import BasketSpec, load_basket
from cluster.engine import BasketHandle, Engine
from venues.config import VenuesConfig, parse_venues

RESULT_TIMEOUT_S = 240.0  # a run not ended this long after its fault is counted as not ended

# Three venues on one synthetic market, as the cluster tests have them: alpha colocated
# (RESULT acks), beta in the region (ACCEPTED: fills arrive on the stream; stETH spot, 100
# held), gamma answering on receipt (RECEIPT). The keys are the simulator's only.
_VENUES: dict[str, dict[str, Any]] = {
    "alpha": {
        "kind": "sim",
        "market": {"source": "synthetic", "seed": 7},
        "instruments": ["BTCUSDT", "ETHUSDT", "IDXUSDT"],
        "profile": {"preset": "colo", "ack": "RESULT", "client_id_reuse": "after_close"},
        "accounts": [
            {
                "account_id": "desk",
                "api_key": "faults-alpha-key",
                "secret": "faults-alpha-secret",
                "balances": {"USDT": 2_000_000},
                "leverage": 10,
            }
        ],
    },
    "beta": {
        "kind": "sim",
        "market": {"source": "synthetic", "seed": 7},
        "instruments": ["STETHUSDT", "ETHUSDT"],
        "profile": {"preset": "same_region", "client_id_reuse": "after_close"},
        "accounts": [
            {
                "account_id": "desk",
                "api_key": "faults-beta-key",
                "secret": "faults-beta-secret",
                "balances": {"USDT": 1_000_000},
                "spot_balances": {"USDT": 1_000_000, "STETH": 100},
                "leverage": 5,
            }
        ],
    },
    "gamma": {
        "kind": "sim",
        "market": {"source": "synthetic", "seed": 7},
        "instruments": ["BTCUSDT", "SOLUSDT"],
        "profile": {"preset": "same_region", "ack": "RECEIPT", "client_id_reuse": "after_close"},
        "accounts": [
            {
                "account_id": "desk",
                "api_key": "faults-gamma-key",
                "secret": "faults-gamma-secret",
                "balances": {"USDT": 500_000},
                "leverage": 3,
            }
        ],
    },
}
SPOT_HELD = {("beta", "STETHUSDT"): Decimal(100)}  # beta's spot wallet at the start


def venues(profiles: Mapping[str, Mapping[str, Any]] | None = None) -> VenuesConfig:
    """The three venues, each profile changed by `profiles[venue]` (profile fields)."""
    data = copy.deepcopy(_VENUES)
    for name, changes in (profiles or {}).items():
        data[name]["profile"] = {**data[name]["profile"], **changes}
    return parse_venues({"venues": data}, source="bench/faults venues")


# The synthetic ETH basket of the cluster tests: long ETH perp on alpha and stETH on beta,
# short BTC on gamma, beta-neutral; a hedge on alpha's index perp when `hedged`.
_BASKET = """
kind = "basket"
basket_id = "{basket_id}"
policy = "{policy}"
[params]
horizon_s = {horizon_s}
max_slippage_bps = 25
participation_cap = 1.0
band = 0.05
slice_s = 0.5
grace_s = 20
[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 9000
[[legs]]
leg_id = "steth"
venue = "beta"
symbol = "STETHUSDT"
side = "BUY"
notional_usd = {steth_usd}
max_slippage_bps = 40
[[legs]]
leg_id = "btc"
venue = "gamma"
symbol = "BTCUSDT"
side = "SELL"
notional_usd = {btc_usd}
"""
_HEDGE = """
[hedge]
venue = "alpha"
instruments = ["IDXUSDT"]
activation_usd = {activation_usd}
hysteresis_usd = 20
"""
# A hedge that never trades: what policy hedge_and_hold needs to hold (an enabled [hedge]),
# without hedge orders, which the journal does not keep yet, at the venue.
IDLE_HEDGE_USD = 1e9


def basket(
    basket_id: str,
    *,
    policy: str = "complete",
    horizon_s: float = 6.0,
    hedged: bool = False,
    hedge_usd: float | None = None,
) -> BasketSpec:
    """The basket under `basket_id`; `hedged`: with a bigger stETH leg and a hedge that
    engages at $5 of risk, so that the hedge desk trades while it lags; `hedge_usd`: a
    hedge section that engages at that risk, stETH as usual."""
    steth = 3000 if hedged else 1000
    if hedged:
        hedge_usd = 5.0
    text = _BASKET.format(
        basket_id=basket_id,
        policy=policy,
        horizon_s=horizon_s,
        steth_usd=steth,
        btc_usd=round((9000 + steth) * 1.04),
    )
    hedge = "" if hedge_usd is None else _HEDGE.format(activation_usd=hedge_usd)
    spec = load_basket(text + hedge)
    assert isinstance(spec, BasketSpec)
    return spec


def wait_for(condition: Callable[[], Any], timeout_s: float, every_s: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # an actor between lives: not yet
            if condition():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


@dataclass
class Run:
    """One basket run of a trial, as its driver saw it."""

    trial: str
    case: str
    basket_id: str
    policy: str
    run_id: str = ""
    fault: str = ""  # what was done to it, and when
    status: str = ""  # the report's final state (read only from the report)
    reason: str = ""
    seconds: float = 0.0  # submission to report
    error: str = ""  # the driver's own trouble (no report in time, refused at submission)
    failures: list[str] = field(default_factory=list)  # the figures it fails, said plainly
    audit: dict[str, Any] = field(default_factory=dict)  # what the journal and venues showed
    measured: dict[str, Any] = field(default_factory=dict)  # what its injector measured

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "run_id": self.run_id,
            "policy": self.policy,
            "fault": self.fault,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "failures": self.failures,
            "measured": self.measured,
            "audit": self.audit,
        }


class Driver:
    """What an injector may do to its run: the run's handle and record, the engine, a
    seeded random source, and a stop flag set when the batch is over."""

    def __init__(self, stage: Stage, handle: BasketHandle, run: Run, rng: random.Random) -> None:
        self.stage = stage
        self.handle = handle
        self.run = run
        self.rng = rng

    def state(self) -> BasketState | None:
        try:
            return self.handle.status().state
        except Exception:  # taken over, between actors
            return None

    def wait_state(self, wanted: set[BasketState], timeout_s: float = 90.0) -> BasketState | None:
        """Wait until the basket reaches one of `wanted` (or any terminal state)."""
        seen: list[BasketState] = []

        def reached() -> bool:
            s = self.state()
            if s is not None:
                seen.append(s)
            return s is not None and (s in wanted or s.is_terminal)

        wait_for(reached, timeout_s)
        return seen[-1] if seen else None

    def filling(self, timeout_s: float = 90.0) -> bool:
        """Wait until the basket runs and a leg has a fill."""

        def started() -> bool:
            s = self.handle.status()
            return s.state.is_terminal or (
                s.state is BasketState.RUNNING and any(leg.filled_qty > 0 for leg in s.legs)
            )

        return wait_for(started, timeout_s)


Injector = Callable[[Driver], None]


class Stage:
    """The engine of one trial: its own namespace (its singletons bind one journal) and
    journal, torn down with every actor it started."""

    def __init__(self, trial: str, config: VenuesConfig, journal: str) -> None:
        self.trial = trial
        self.config = config
        self.journal = journal
        self.namespace = f"faults-{trial}-{uuid.uuid4().hex[:6]}"
        self.engine: Engine | None = None

    def __enter__(self) -> Stage:
        self.engine = Engine.start(self.config, namespace=self.namespace, journal=self.journal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine is not None:
            self.engine.shutdown()
        # The namespace's singletons are detached: they go with their trial.
        for name in (REGISTRY_NAME, COLLATERAL_NAME, HEDGE_NAME):
            with contextlib.suppress(Exception):
                ray.kill(ray.get_actor(name, namespace=self.namespace), no_restart=True)

    @property
    def e(self) -> Engine:
        assert self.engine is not None, "the stage is not started"
        return self.engine

    def positions(self) -> dict[tuple[str, str], Decimal]:
        """Every venue's positions (holdings on spot), the spot holdings shown or not."""
        held = dict(SPOT_HELD)
        for venue in self.e.venues:
            for symbol, qty in self.e.venue_stat(venue, "positions").items():
                held[venue, symbol] = Decimal(qty)
        return held

    def orders_received(self) -> dict[str, int]:
        return {v: int(self.e.venue_stat(v, "orders_received")) for v in self.e.venues}

    def run_batch(
        self,
        trial: str,
        jobs: list[tuple[Run, BasketSpec, Injector | None]],
        rng: random.Random,
        *,
        alongside: Callable[[list[Driver], threading.Event], None] | None = None,
    ) -> list[Run]:
        """Submit every job's basket at once, run each job's injector against its basket
        (and `alongside`, against all of them) in threads, and wait for every report."""
        drivers: list[tuple[Driver, Injector | None, float]] = []
        for run, spec, inject in jobs:
            t0 = time.monotonic()
            try:
                handle = self.e.submit(spec, submitted_by=f"bench/faults {trial}")
            except Exception as e:
                run.error = f"not submitted: {e}"
                continue
            run.run_id = handle.run_id
            drivers.append((Driver(self, handle, run, random.Random(rng.random())), inject, t0))
        done = threading.Event()
        with ThreadPoolExecutor(max_workers=len(drivers) + 1) as pool:
            side = None
            if alongside is not None and drivers:
                side = pool.submit(alongside, [d for d, _, _ in drivers], done)
            futures = [pool.submit(_drive, d, inject, t0) for d, inject, t0 in drivers]
            for f in futures:
                f.result()
            done.set()
            if side is not None:
                side.result()
        return [run for run, _, _ in jobs]


def _drive(d: Driver, inject: Injector | None, t0: float) -> None:
    run = d.run
    try:
        if inject is not None:
            inject(d)
    except Exception as e:
        run.error = f"fault injection failed: {type(e).__name__}: {e}"
    try:
        report = d.handle.result(timeout=RESULT_TIMEOUT_S)
        run.status = report.status.value
        run.reason = report.reason
        said = [report.reason, *report.notes]
        run.measured["taken_over"] = any("taken over" in line for line in said)
    except Exception as e:
        run.error = (run.error + "; " if run.error else "") + f"no report: {e}"
    run.seconds = time.monotonic() - t0
