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

from actors.backtest.compare import compare, parse_modes, results_table, summarize
from actors.backtest.run import (
    METRICS,
    SIM_EPOCH_NS,
    BacktestError,
    BacktestSettings,
    ExecutionMode,
    RunResult,
    check_venues,
    run_once,
)

__all__ = [
    "METRICS",
    "SIM_EPOCH_NS",
    "BacktestError",
    "BacktestSettings",
    "ExecutionMode",
    "RunResult",
    "check_venues",
    "compare",
    "parse_modes",
    "results_table",
    "run_once",
    "summarize",
]
