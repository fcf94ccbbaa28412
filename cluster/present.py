"""What `legato run`, `legato demo` and `legato status` show while a basket runs.

The report at the end is `cluster.render`'s business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.messages import LegProgress
    from actors.protocol import BasketStatus

BAR = 24


def bar(fraction: float, width: int = BAR) -> str:
    """A text progress bar of `width` cells for a fraction in [0, 1]."""
    f = min(max(fraction, 0.0), 1.0)
    full = round(f * width)
    return "█" * full + "·" * (width - full)


def completion_skew(status: BasketStatus) -> float | None:
    """max − min of the legs' completion now (None without legs): what the band bounds."""
    progress = [leg.progress for leg in status.legs]
    return max(progress) - min(progress) if progress else None


def outside_band(status: BasketStatus) -> bool:
    """The legs are further apart than the band allows."""
    skew = completion_skew(status)
    return skew is not None and status.band is not None and skew > status.band


def _band_text(status: BasketStatus) -> str:
    skew = completion_skew(status)
    if skew is None:
        return "skew —"
    if status.band is None:
        return f"skew {skew:.1%} (band in dollars)"
    return f"skew {skew:.1%} / band {status.band:.1%}" + (
        "  OUTSIDE THE BAND" if outside_band(status) else ""
    )


def _leg_line(leg: LegProgress, schedule: float, width: int) -> str:
    mark = "|" if 0 < schedule < 1 else " "
    cells = list(bar(leg.progress))
    at = min(BAR - 1, int(schedule * BAR))
    if mark == "|" and cells[at] == "·":
        cells[at] = mark  # where the schedule says the leg should be
    status = leg.status.value.lower()
    return (
        f"  {leg.leg_id:<{width}} {''.join(cells)} {leg.progress:6.1%}  "
        f"{leg.filled_qty}/{leg.target_qty} {leg.side.value.lower()}  {status}"
        + (f"  ({leg.reason})" if leg.blocked and leg.reason else "")
    )


def status_lines(status: BasketStatus) -> list[str]:
    """A block of lines: the basket's state, schedule, completion skew against the band and
    hedge position, then a bar per leg with the schedule's mark (`|`)."""
    head = (
        f"{status.basket_id}  {status.state.value:<11} schedule {status.schedule_progress:6.1%}"
        f"  {_band_text(status)}  hedge ${status.hedge_position_usd:,.0f}"
    )
    width = max([8, *(len(leg.leg_id) for leg in status.legs)])
    lines = [head] + [_leg_line(leg, status.schedule_progress, width) for leg in status.legs]
    # The transfers that fund it (`[collateral] routing`), each with its age while pending.
    lines += [
        f"  transfer {t.message}"
        + ("" if t.state.is_final else f" for {t.age_s(status.ts_ns):.0f} s")
        for t in status.transfers
    ]
    return lines


def status_line(status: BasketStatus) -> str:
    """One plain line (for logs and Ray job output, where a terminal cannot redraw)."""
    skew = completion_skew(status)
    words = [
        status.basket_id,
        status.state.value,
        f"schedule={status.schedule_progress:.1%}",
        *(f"{leg.leg_id}={leg.progress:.1%}" for leg in status.legs),
        f"skew={'—' if skew is None else f'{skew:.1%}'}",
        f"band={'—' if status.band is None else f'{status.band:.1%}'}",
        f"hedge_usd={status.hedge_position_usd:.0f}",
    ]
    if outside_band(status):
        words.append("OUTSIDE_BAND")
    pending = [t for t in status.transfers if not t.state.is_final]
    if pending:
        oldest = max(t.age_s(status.ts_ns) for t in pending)
        words.append(f"transfers_pending={len(pending)} oldest_s={oldest:.0f}")
    return " ".join(words)
