"""What `legato run` and `legato demo` print: live progress and the report's summary."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from actors.messages import LegProgress
from actors.report import BasketReport
from actors.shells.basket import BasketStatus

BAR = 24


def bar(fraction: float, width: int = BAR) -> str:
    """A text progress bar of `width` cells for a fraction in [0, 1]."""
    f = min(max(fraction, 0.0), 1.0)
    full = round(f * width)
    return "█" * full + "·" * (width - full)


def _leg_line(leg: LegProgress, schedule: float) -> str:
    mark = "|" if 0 < schedule < 1 else " "
    cells = list(bar(leg.progress))
    at = min(BAR - 1, int(schedule * BAR))
    if mark == "|" and cells[at] == "·":
        cells[at] = mark  # where the schedule says the leg should be
    status = leg.status.value.lower()
    return (
        f"  {leg.leg_id:<8} {''.join(cells)} {leg.progress:6.1%}  "
        f"{leg.filled_qty}/{leg.target_qty} {leg.side.value.lower()}  {status}"
        + (f"  ({leg.reason})" if leg.blocked and leg.reason else "")
    )


def status_lines(status: BasketStatus) -> list[str]:
    """A block of lines: the basket's state and schedule, a bar per leg, the hedge."""
    head = (
        f"{status.basket_id}  {status.state.value:<11} schedule {status.schedule_progress:6.1%}"
        f"  hedge ${status.hedge_position_usd:,.0f}"
    )
    return [head] + [_leg_line(leg, status.schedule_progress) for leg in status.legs]


def status_line(status: BasketStatus) -> str:
    """One plain line (for logs and Ray job output, where a terminal cannot redraw)."""
    legs = " ".join(f"{leg.leg_id}={leg.progress:.1%}" for leg in status.legs)
    return (
        f"{status.basket_id} {status.state.value} schedule={status.schedule_progress:.1%} "
        f"{legs} hedge_usd={status.hedge_position_usd:.0f}"
    )


def _ms(ns: int | None) -> str:
    return "—" if ns is None else f"{ns / 1e6:.2f} ms"


def _qty(q: Decimal | None) -> str:
    if q is None:
        return "—"
    return f"{q.normalize():f}" if q == q.to_integral_value() else f"{q:f}"


def _price(p: Decimal | None) -> str:
    return "—" if p is None else f"{p:.2f}"


def summary(report: BasketReport) -> str:
    """The report as a terminal summary: outcome, legs, launch, hedge, collateral, notes."""
    took = (
        (report.completed_ns - report.submitted_ns) / 1e9
        if report.completed_ns is not None
        else None
    )
    lines = [
        f"basket {report.basket_id}: {report.status.value} "
        f"(policy {report.policy.value}" + (f", {took:.1f} s" if took is not None else "") + ")",
        f"  {report.reason}",
        "",
        f"  {'leg':<8} {'venue':<8} {'side':<5} {'filled':>12} {'target':>12} "
        f"{'avg price':>11} {'fees':>8}  {'ack':<9} {'status':<11} reconciled",
    ]
    for leg in report.legs:
        lines.append(
            f"  {leg.leg_id:<8} {leg.venue:<8} {leg.side.value:<5} {_qty(leg.filled_qty):>12} "
            f"{_qty(leg.target_qty):>12} {_price(leg.avg_price):>11} "
            f"{float(leg.fees_usd):>8.2f}  {(leg.ack_kind.value if leg.ack_kind else '—'):<9} "
            f"{leg.status.value:<11} {'yes' if leg.reconciled else 'NO'}"
        )
    if not report.legs:
        lines.append("  (no leg was started)")
    lines += [
        "",
        f"  launch skew (venue accept times) {_ms(report.launch_skew_ns)};"
        f" raw ack arrival skew {_ms(report.raw_ack_skew_ns)}",
    ]
    if report.hedge is not None:
        h = report.hedge
        lines.append(
            f"  hedge on {h.venue} {','.join(h.instruments)}: {h.orders} orders, "
            f"max ${h.max_abs_position:,.0f}, P&L ${h.pnl_usd:,.2f} "
            f"(fees ${h.fees_usd:,.2f}), "
            + ("held for an operator" if h.held else "flat" if h.flat_at_end else "NOT flat")
        )
    c = report.collateral
    if c.reserved:
        held = ", ".join(f"{v} ${float(a):,.0f}" for v, a in sorted(c.reserved.items()))
        lines.append(f"  collateral {held}; {'released' if c.released else 'NOT released'}")
    lines += _notes(report.notes)
    return "\n".join(lines)


def _notes(notes: Iterable[str]) -> list[str]:
    return [f"  note: {n}" for n in notes]
