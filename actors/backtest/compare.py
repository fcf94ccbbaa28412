"""Comparing execution modes over seeds: the document and table of `legato backtest`.

`--compare` takes modes, and modes with a child style: `coordinated:passive` runs the basket
with `params.child_style = "passive"` (a leg's own `child_style` still wins); a bare mode runs
the basket's own style. Each is one row of the table, named as given."""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, NamedTuple

import msgspec
import numpy as np

from actors.backtest.run import (
    METRICS,
    BacktestError,
    BacktestSettings,
    ExecutionMode,
    RunResult,
    run_once,
)
from actors.lifecycle import BasketState
from actors.risk import RiskSettings
from actors.routing import RoutingRules
from actors.spec import BasketSpec, ChildStyle, RebalanceSpec
from venues.config import (
    VenuesConfig,
)


class Variant(NamedTuple):
    """A mode run with the basket's child style set to `style`."""

    mode: ExecutionMode
    style: ChildStyle

    @property
    def value(self) -> str:
        """Its name in the document and the table: `mode:style`."""
        return f"{self.mode.value}:{self.style.value}"


Run = ExecutionMode | Variant


def _styled(spec: BasketSpec | RebalanceSpec, run: Run) -> BasketSpec | RebalanceSpec:
    if isinstance(run, ExecutionMode):
        return spec
    params = msgspec.structs.replace(spec.params, child_style=run.style)
    return msgspec.structs.replace(spec, params=params)


def summarize(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """{mean, p50, p95, max, n} of the values that exist."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"mean": None, "p50": None, "p95": None, "max": None, "n": 0}
    a = np.asarray(xs, dtype=float)
    return {
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "n": len(xs),
    }


def compare(
    spec: BasketSpec | RebalanceSpec,
    config: VenuesConfig,
    modes: Sequence[Run],
    seeds: int,
    *,
    risk: RiskSettings | None = None,
    settings: BacktestSettings | None = None,
    progress: Callable[[RunResult], None] | None = None,
    routing: RoutingRules | None = None,
    jobs: int = 1,
    lose_basket_after_s: float | None = None,
) -> dict[str, Any]:
    """Every mode (or mode and child style, `Variant`) over seeds 0..seeds−1: the JSON
    document of `legato backtest`. `jobs` > 1 runs that many at once, each in a process of
    its own: every run depends on its seed alone, so the document is the same (`progress`
    then sees the runs as they end, in no set order). `lose_basket_after_s`: every run loses
    its basket actor that long after the legs fire (`run_once`)."""
    if seeds < 1:
        raise BacktestError(f"seeds: {seeds}; at least 1")
    if jobs < 1:
        raise BacktestError(f"jobs: {jobs}; at least 1")
    if not modes:
        raise BacktestError("compare: no mode; give one or more of " + _mode_names())
    runs: dict[Run, list[RunResult]] = {m: [] for m in modes}
    specs = {m: _styled(spec, m) for m in modes}
    work = [(seed, run) for seed in range(seeds) for run in modes]

    options: dict[str, Any] = {
        "risk": risk,
        "settings": settings,
        "routing": routing,
        "lose_basket_after_s": lose_basket_after_s,
    }

    def mode_of(run: Run) -> ExecutionMode:
        return run if isinstance(run, ExecutionMode) else run.mode

    if jobs == 1 or len(work) == 1:
        for seed, run in work:
            r = run_once(specs[run], config, mode_of(run), seed, **options)
            _ran(runs, run, r, progress)
    else:
        # Processes started afresh (not forked): a caller may hold threads, or Ray.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(work)), mp_context=context) as pool:
            futures = {
                pool.submit(run_once, specs[run], config, mode_of(run), seed, **options): run
                for seed, run in work
            }
            for future in as_completed(futures):
                _ran(runs, futures[future], future.result(), progress)
        for rs in runs.values():
            rs.sort(key=lambda r: r.seed)
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
        entry["sent_unfunded"] = sum(r.sent_unfunded for r in rs)
        out["modes"][mode.value] = entry
    out["market_events"] = events
    out["wall_s"] = wall
    out["events_per_s"] = events / wall if wall > 0 else None
    return out


def _ran(
    runs: dict[Run, list[RunResult]],
    run: Run,
    r: RunResult,
    progress: Callable[[RunResult], None] | None,
) -> None:
    r.variant = run.value
    runs[run].append(r)
    if progress is not None:
        progress(r)


def parse_modes(text: str) -> list[Run]:
    """`coordinated,independent:passive,…` → modes, each perhaps with a child style
    (`mode:style`); BacktestError naming what is accepted."""
    out: list[Run] = []
    for part in (p.strip() for p in text.split(",")):
        name, colon, style_name = part.partition(":")
        try:
            mode = ExecutionMode(name.strip())
        except ValueError:
            raise BacktestError(
                f"--compare: unknown mode {name.strip()!r} in {part!r}; accepted: "
                f"{_mode_names()}, each optionally as mode:style"
            ) from None
        run: Run = mode
        if colon:
            try:
                run = Variant(mode, ChildStyle(style_name.strip()))
            except ValueError:
                styles = ", ".join(s.value for s in ChildStyle)
                raise BacktestError(
                    f"--compare: unknown child style {style_name.strip()!r} in {part!r}; "
                    f"accepted: {styles}"
                ) from None
        if run not in out:
            out.append(run)
    if not out:
        raise BacktestError(f"--compare: no mode; accepted: {_mode_names()}")
    return out


def _mode_names() -> str:
    return ", ".join(m.value for m in ExecutionMode)


def results_table(doc: Mapping[str, Any]) -> str:
    """The comparison as markdown tables (rich lays them out, plain text, no colour): each
    figure's mean and p95 per mode; the funding figures when a run waited for transfers;
    the first reasons of the runs that did not complete."""
    rows = []
    for mode, m in doc["modes"].items():
        cells = [mode]
        for key in METRICS:
            cells.append(_mean_p95(m[key]))
        cells.append(f"{m['completed']}/{m['runs']}")
        rows.append(cells)
    blocks = [
        _markdown(
            [
                "mode",
                "legging risk $ (mean / p95)",
                "peak imbalance $",
                "peak beta imbalance $",
                "shortfall bp",
                "of which fees bp",
                "completion s",
                "hedge orders",
                "hedge cost $",
                "hedge risk removed $",
                "completed",
            ],
            rows,
        )
    ]
    funded = [
        (mode, m)
        for mode, m in doc["modes"].items()
        if m.get("funding_s", {}).get("mean") is not None
    ]
    if funded:
        rows = []
        for mode, m in funded:
            beta, net = m["pending_beta_usd"]["max"], m["pending_net_beta_usd"]["max"]
            beta_risk = m["pending_net_beta_risk_usd"]["max"]
            betas = "–" if beta is None else f"{beta:,.0f} / {net:,.0f} (${beta_risk:,.2f})"
            left = m["pending_net_risk_usd"]["max"]
            rows.append(
                [
                    mode,
                    _mean_p95(m["funding_s"]),
                    str(m["sent_unfunded"]),
                    betas,
                    "–" if left is None else f"{left:,.2f}",
                ]
            )
        blocks.append(
            _markdown(
                [
                    "mode",
                    "waited for funds s",
                    "orders sent unfunded",
                    "peak beta imbalance while pending $ (basket / net of hedge, its 1-day risk)",
                    "peak 1-day risk left, every factor $",
                ],
                rows,
            )
        )
    text = "\n\n".join(blocks)
    for mode, m in doc["modes"].items():
        for reason in m.get("failures", [])[:3]:
            text += f"\n\n{mode}: {reason}"
    return text


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table drawn by rich as plain text: the mode's column left, figures right."""
    from rich.box import MARKDOWN  # noqa: PLC0415 (rich loads on first use)
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    table = Table(box=MARKDOWN, show_edge=True, pad_edge=True, padding=(0, 1))
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out = io.StringIO()
    console = Console(
        file=out,
        width=1000,
        force_terminal=False,
        color_system=None,
        no_color=True,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())


def _mean_p95(s: Mapping[str, Any]) -> str:
    return "–" if s["mean"] is None else f"{s['mean'] + 0.0:,.2f} / {s['p95'] + 0.0:,.2f}"
