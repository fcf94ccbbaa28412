"""The backtest's results pinned down: fixed seeds and every execution mode on four scenarios,
three of them also with child styles whose orders rest in the book (`passive`, `pov`), give
exactly the results recorded in tests/data/backtest_golden.json.

A run's digest is the sha256 of what it did, field by field: every child order (client id,
side, quantity, price, times, status, fill, fee), every fill the simulated exchanges booked
(the hedge's included), the basket's outcome and path (status, size, its timeline), its
figures (`RunResult.metrics`: legging risk, shortfall, completion, hedge cost, ...) and the
market events it consumed. Named fields, not whole reports: a field added to the report
changes no digest, a changed result does. Floats keep 10 significant digits (`_stable`): one
numpy build sums in another order than the next, in the last bit, and that is no change.
A change that makes the backtest faster must leave every digest as it was; a change meant to
alter results regenerates the file, on purpose:

    .venv/bin/python -m tests.unit.test_backtest_golden
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors.backtest import ExecutionMode, RunResult, check_venues, run_once
from actors.spec.overrides import load_basket_with_overrides
from cluster.config import load_cluster
from tests.support import recording_exchanges
from venues.sim.exchange import SimExchange

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "backtest_golden.json"
DATA = ROOT.parent / "shared" / "data" / "binance-20240808"
SCENARIOS = ROOT / "bench" / "scenarios"
SEEDS = range(4)
FLOAT_DIGITS = 10  # significant digits a float keeps in a digest (`_stable`)
# name → (basket, venues, seeds, with the configuration's collateral routing, `--set` overrides)
CASES: dict[str, tuple[Path, Path, range, bool, tuple[str, ...]]] = {
    "quick_demo": (
        ROOT / "examples" / "synthetic_eth_quick.toml",
        ROOT / "examples" / "venues.toml",
        SEEDS,
        False,
        (),
    ),
    "laggard_200ms": (
        SCENARIOS / "laggard" / "pair.toml",
        SCENARIOS / "laggard" / "venues_200ms.toml",
        SEEDS,
        False,
        (),
    ),
    "spot_perp_replay": (
        SCENARIOS / "spot_perp_replay" / "basis.toml",
        SCENARIOS / "spot_perp_replay" / "venues.toml",
        range(2),
        False,
        (),
    ),
    "routing_stall": (
        SCENARIOS / "routing_stall" / "basket.toml",
        SCENARIOS / "routing_stall" / "venues.toml",
        range(2),
        True,
        (),
    ),
    # The child styles whose orders rest in the books, so that every market update meets them.
    "quick_demo_passive": (
        ROOT / "examples" / "synthetic_eth_quick.toml",
        ROOT / "examples" / "venues.toml",
        range(2),
        False,
        ("params.child_style=passive",),
    ),
    "laggard_200ms_pov": (
        SCENARIOS / "laggard" / "pair.toml",
        SCENARIOS / "laggard" / "venues_200ms.toml",
        range(1),
        False,
        ("params.child_style=pov",),
    ),
    "spot_perp_replay_passive": (
        SCENARIOS / "spot_perp_replay" / "basis.toml",
        SCENARIOS / "spot_perp_replay" / "venues.toml",
        range(1),
        False,
        ("params.child_style=passive",),
    ),
}


_CHILD = (
    "client_order_id", "n", "side", "quantity", "price", "purpose", "sent_ns", "ack_ns",
    "venue_receive_ns", "venue_accept_ns", "status", "filled_qty", "avg_price", "fee",
    "fee_asset", "reject",
)  # fmt: skip
_FILL = ("trade_id", "price", "quantity", "fee", "fee_asset", "liquidity", "ts_ns")
_METRICS = (
    "legging_risk_usd", "peak_imbalance_usd", "shortfall_bps", "completion_s", "hedge_cost_usd",
    "observed_legging_risk_usd", "funding_s", "pending_beta_usd", "pending_net_beta_usd",
    "pending_net_risk_usd",
)  # fmt: skip


def _fields(obj: Any, names: tuple[str, ...]) -> list[Any]:
    return [str(getattr(obj, name)) for name in names]


def _fills(exchanges: list[SimExchange]) -> list[Any]:
    out = []
    for ex in exchanges:
        for account in sorted(ex._accounts):
            for symbol in sorted(ex.instruments):
                for t in ex.user_trades(account, symbol):
                    out.append(
                        [
                            ex.venue,
                            account,
                            t.symbol,
                            t.order_id,
                            t.client_order_id,
                            str(t.side),
                            *_fields(t.fill, _FILL),
                        ]
                    )
    return out


def _stable(value: Any) -> Any:
    """`value` with every float to `FLOAT_DIGITS` significant digits: a figure summed by
    numpy (legging risk, the timeline's imbalances) may differ in its last bit from one numpy
    build to another (its SIMD kernels add in a different order), which is no change of
    result; the backtest's decisions are in the exact fields (prices, quantities, times)."""
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stable(v) for v in value]
    return value


def _digest(result: RunResult, fills: list[Any]) -> dict[str, Any]:
    report, metrics = result.report, result.metrics()
    timeline = report.timeline
    whole = {
        "status": str(report.status),
        "reason": report.reason,
        "fraction": report.fraction,
        "launched_ns": report.launched_ns,
        "completed_ns": report.completed_ns,
        "legs": [
            [
                leg.leg_id,
                str(leg.status),
                str(leg.target_qty),
                str(leg.filled_qty),
                str(leg.avg_price),
                [_fields(o, _CHILD) for o in leg.child_orders],
            ]
            for leg in report.legs
        ],
        "hedge": None
        if report.hedge is None
        else [report.hedge.orders, report.hedge.pnl_usd, report.hedge.max_abs_position],
        "timeline": None
        if timeline is None
        else [
            [p.ts_ns, p.schedule, p.progress, p.imbalance_usd, p.hedge_usd] for p in timeline.points
        ],
        "metrics": [metrics.get(name) for name in _METRICS],
        "fills": fills,
        "market_events": result.market_events,
        "fire_ns": result.fire_ns,
        "done_ns": result.done_ns,
        "sent_unfunded": result.sent_unfunded,
    }
    blob = json.dumps(_stable(whole), sort_keys=True, separators=(",", ":"), default=str)
    tca = report.tca or {}
    return _stable(
        {
            "sha256": hashlib.sha256(blob.encode()).hexdigest(),
            # A few readable figures, so a mismatch says roughly what moved.
            "status": str(report.status),
            "child_orders": sum(len(leg.child_orders) for leg in report.legs),
            "fills": len(fills),
            "market_events": result.market_events,
            "shortfall_bps": tca.get("shortfall_bps"),
            "legging_risk_usd": tca.get("fill_legging_risk_usd"),
            "completion_s": result.completion_s,
            "hedge_orders": report.hedge.orders if report.hedge else None,
        }
    )


def run_case(name: str, seed: int, mode: ExecutionMode) -> dict[str, Any]:
    """The digest of one run of case `name`."""
    basket, venues, _, routed, overrides = CASES[name]
    cluster = load_cluster(venues)
    spec = load_basket_with_overrides(basket, overrides)
    if getattr(spec, "hedge", None) is None and cluster.hedge is not None:
        spec = msgspec.structs.replace(spec, hedge=cluster.hedge)
    with recording_exchanges() as made:
        result = run_once(
            spec,
            check_venues(cluster.venues),
            mode,
            seed,
            risk=cluster.risk,
            routing=cluster.collateral.rules() if routed else None,
        )
    return _digest(result, _fills(made))


def _runs() -> list[tuple[str, int, ExecutionMode]]:
    return [
        (name, seed, mode)
        for name, (_, _, seeds, _, _) in CASES.items()
        for seed in seeds
        for mode in ExecutionMode
    ]


def _key(name: str, seed: int, mode: ExecutionMode) -> str:
    return f"{name}/{seed}/{mode}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_the_backtest_gives_the_recorded_results(name: str) -> None:
    if name.startswith("spot_perp_replay") and not DATA.is_dir():
        pytest.skip(f"no recorded data at {DATA}")
    golden = json.loads(GOLDEN.read_text())["runs"]
    for case, seed, mode in _runs():
        if case != name:
            continue
        key = _key(case, seed, mode)
        assert run_case(case, seed, mode) == golden[key], key


def main() -> int:
    runs = {_key(*r): run_case(*r) for r in _runs()}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    print(f"{len(runs)} runs written to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
