"""What `legato run`, `legato demo` and `legato status` show while a basket runs.

On a terminal, `status_view` is redrawn in place by rich (`rich.live.Live`); elsewhere (a
pipe, Ray job logs) `status_line` is printed every few seconds and `status_lines` once: plain
text, no escape codes. The report at the end is `cluster.render`'s business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from actors.protocol import BasketStatus
from cluster.journal_cli import RunRow

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from actors.messages import LegProgress

BAR = 24


class StatusView(msgspec.Struct, frozen=True, kw_only=True):
    """`legato status --json`: the baskets of a namespace now, and the runs that ended last.

    `running`: every live basket not waiting in line (any state from CHECKING to
    RECONCILING, or just ended), as `BasketStatus`; `queued`: those waiting for their turn to
    arm, first in line first; `admission`: the registry's line by basket id (`arming`,
    `running`, `waiting`); `recent`: the runs that finished last, newest first, as `legato
    history --json` lists them (empty, with `journal_error` saying why, when the journal
    cannot be read).
    """

    namespace: str
    running: list[BasketStatus]
    queued: list[BasketStatus]
    admission: dict[str, list[str]]
    recent: list[RunRow]
    journal: str
    journal_error: str | None = None


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
    if resized(status):
        lines.append(f"  {status.reason}")
    # The transfers that fund it (`[collateral] routing`), each with its age while pending.
    lines += [
        f"  transfer {t.message}"
        + ("" if t.state.is_final else f" for {t.age_s(status.ts_ns):.0f} s")
        for t in status.transfers
    ]
    return lines


def resized(status: BasketStatus) -> bool:
    """The basket runs at another size than it was given: its reason says to what and why
    ("shrunk to 62 %: btc at its slippage cap since 371 s")."""
    return status.reason.startswith(("shrunk", "restored"))


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
    if resized(status):
        words.append(f"reason={status.reason!r}")
    return " ".join(words)


# -- on a terminal ------------------------------------------------------------------------------
_STATE_STYLE = {"COMPLETED": "bold green", "FAILED": "bold red", "CANCELLED": "bold yellow"}


def status_view(status: BasketStatus) -> RenderableType:
    """The block of `status_lines` as a rich renderable for a live display: the same
    figures, the legs' bars filled in green, the schedule's mark in yellow, and the band in
    red when the legs are outside it."""
    from rich.console import Group  # noqa: PLC0415 (rich loads on first use)
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    state = status.state.value
    head = Text.assemble(
        (status.basket_id, "bold"),
        "  ",
        (f"{state:<11}", _STATE_STYLE.get(state, "cyan")),
        f" schedule {status.schedule_progress:6.1%}  ",
        (_band_text(status), "bold red" if outside_band(status) else ""),
        f"  hedge ${status.hedge_position_usd:,.0f}",
    )
    legs = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    for justify in ("left", "left", "right", "left", "left"):
        legs.add_column(justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for leg in status.legs:
        legs.add_row(
            Text(f"  {leg.leg_id}"),
            _bar_text(leg.progress, status.schedule_progress),
            Text(f"{leg.progress:.1%}"),
            Text(f"{leg.filled_qty}/{leg.target_qty} {leg.side.value.lower()}"),
            Text(
                leg.status.value.lower()
                + (f"  ({leg.reason})" if leg.blocked and leg.reason else ""),
                style="red" if leg.blocked else "",
            ),
        )
    # The lines under the legs (a resized basket's reason, the transfers), as plain text.
    rest = [Text(line) for line in status_lines(status)[1 + len(status.legs) :]]
    return Group(head, legs, *rest)


def _bar_text(progress: float, schedule: float) -> Text:
    """A leg's bar: done in green, to do dimmed, and a yellow `|` where the schedule says
    the leg should be (when that is ahead of it)."""
    from rich.text import Text  # noqa: PLC0415

    cells = bar(progress)
    full = cells.count("█")
    at = min(BAR - 1, int(schedule * BAR)) if 0 < schedule < 1 else -1
    text = Text()
    text.append(cells[:full], style="green")
    for i in range(full, BAR):
        text.append("|" if i == at else "·", style="bold yellow" if i == at else "dim")
    return text
