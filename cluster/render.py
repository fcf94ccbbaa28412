"""A basket report for people: a terminal summary, a PNG chart and a self-contained HTML page.

The summary is built once as sections of lines and tables (`sections`), which `summary`
prints as text and `html_report` lays out as HTML around the chart. Every figure comes from
the report: its legs, its timeline and its TCA (DESIGN §8); a figure the report lacks shows
as "—", so a refused basket with no legs, timeline or hedge still renders.
"""

from __future__ import annotations

import html
import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.report import BasketReport, LegReport, TransferView
from actors.tca import basket_tca

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DASH = "—"
PLAIN_WIDTH = 1000  # columns of plain text: wide enough that no table is ever cut


# -- the summary's model ---------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """Rows of cells under column names; `right` holds the numeric (right-aligned) columns.

    A table with `header=False` is a list of "name: value" pairs (its first column names).
    """

    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    right: frozenset[int] = frozenset()
    header: bool = True


@dataclass(frozen=True)
class Section:
    """A titled part of the summary: lines of text and tables, in order."""

    title: str
    items: list[str | Table] = field(default_factory=list)


def pairs(rows: Iterable[tuple[str, str]]) -> Table:
    """A table of "name  value" pairs."""
    return Table(("", ""), list(rows), header=False)


# -- numbers as text -------------------------------------------------------------------------
def _usd(x: float | Decimal | None, sign: bool = False) -> str:
    if x is None:
        return DASH
    v = float(x)
    text = f"${abs(v):,.2f}"
    if v < 0:
        return "-" + text
    return ("+" + text) if sign and v > 0 else text


def _num(x: float | Decimal | None, digits: int = 2) -> str:
    return DASH if x is None else f"{float(x):,.{digits}f}"


def _bp(x: float | None) -> str:
    return DASH if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{x:.1%}"


def _ms(ns: float | None, sign: bool = False) -> str:
    if ns is None:
        return DASH
    return f"{ns / 1e6:+.3f} ms" if sign else f"{ns / 1e6:.3f} ms"


def _qty(q: Decimal | None) -> str:
    if q is None:
        return DASH
    return f"{q.normalize():f}" if q == q.to_integral_value() else f"{q:f}"


def _price(p: float | Decimal | None) -> str:
    if p is None:
        return DASH
    v = float(p)
    return f"{v:,.2f}" if abs(v) >= 100 else f"{v:,.6g}"


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    """d[k1][k2]…, or None where any level is missing (reports only ever gain keys)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


# -- the TCA ---------------------------------------------------------------------------------
def tca_of(report: BasketReport) -> dict[str, Any]:
    """The report's TCA figures: its own, else computed now from the report (DESIGN §8)."""
    return report.tca if report.tca is not None else basket_tca(report)


# -- the sections ----------------------------------------------------------------------------
def sections(report: BasketReport) -> list[Section]:
    """The summary's sections: header, cost, legs, integrity, hedge, operations."""
    tca = tca_of(report)
    return [
        _header(report),
        _cost(tca),
        _legs(report, tca),
        _integrity(report, tca),
        _hedge(report, tca),
        _operations(report, tca),
    ]


def headline(report: BasketReport) -> str:
    """One line: the basket, its outcome, its policy and how long it took."""
    took = (
        (report.completed_ns - report.submitted_ns) / 1e9
        if report.completed_ns is not None
        else None
    )
    return (
        f"basket {report.basket_id}: {report.status.value} (policy {report.policy.value}"
        + (f", {took:.1f} s" if took is not None else "")
        + ")"
    )


def _header(report: BasketReport) -> Section:
    rows = []
    if report.launched_ns is not None:
        after = (report.launched_ns - report.submitted_ns) / 1e9
        rows.append(("launched", f"{after:.3f} s after submission (every leg acknowledged)"))
    else:
        rows.append(("launched", "never (no leg was fired, or not every leg was acknowledged)"))
    if report.completed_ns is not None:
        took = (report.completed_ns - report.submitted_ns) / 1e9
        rows.append(("ended", f"{took:.3f} s after submission"))
    if report.fraction != 1.0:
        rows.append(("size", f"{report.fraction:.1%} of the original basket (shrunk)"))
    return Section(headline(report), [report.reason or "(no reason given)", pairs(rows)])


def _cost(tca: dict[str, Any]) -> Section:
    gross = _get(tca, "gross_notional_usd")
    parts = _get(tca, "parts") or {}
    right = frozenset({1, 2})
    rows = [
        ("shortfall", _num(_get(tca, "shortfall_usd")), _bp(_get(tca, "shortfall_bps"))),
        *(
            (
                f"  {name}",
                _num(parts.get(f"{name}_usd")),
                _bp(_bps(parts.get(f"{name}_usd"), gross)),
            )
            for name in ("delay", "execution", "opportunity", "fees")
        ),
        ("hedge", _num(_get(tca, "hedge_cost_usd")), _bp(_get(tca, "hedge_cost_bps"))),
        ("total", _num(_get(tca, "total_cost_usd")), _bp(_get(tca, "total_cost_bps"))),
    ]
    items: list[str | Table] = [
        f"positive is a cost; bp of gross notional {_usd(gross)}",
        Table(("", "USD", "bp"), rows, right),
    ]
    if unpriced := _get(tca, "unpriced_legs"):
        items.append(f"left out (no decision price): {', '.join(unpriced)}")
    return Section("cost", items)


def _bps(usd: float | None, gross: float | None) -> float | None:
    if usd is None or not gross:
        return None
    return usd / gross * 1e4


def _tca_legs(tca: dict[str, Any]) -> dict[str, dict[str, Any]]:
    legs = _get(tca, "legs") or []
    return {leg["leg_id"]: leg for leg in legs if isinstance(leg, dict) and "leg_id" in leg}


def _legs(report: BasketReport, tca: dict[str, Any]) -> Section:
    if not report.legs:
        return Section("legs", ["no leg was started"])
    by_id = _tca_legs(tca)
    rows = []
    for leg in report.legs:
        t = by_id.get(leg.leg_id, {})
        vwap = t.get("fill_vwap", leg.avg_price)
        arrival = t.get("arrival_price", leg.arrival_price)
        rows.append(
            (
                leg.leg_id,
                leg.venue,
                leg.side.value.lower(),
                f"{_qty(leg.filled_qty)}/{_qty(leg.target_qty)}",
                _price(vwap),
                _price(arrival),
                _bp(_get(t, "shortfall", "total_bps")),
                _bp(t.get("slippage_vs_market_vwap_bps")),
                _fees(leg),
                leg.ack_kind.value if leg.ack_kind is not None else DASH,
                leg.status.value.lower(),
                "yes" if leg.reconciled else "NO",
            )
        )
    columns = (
        "leg",
        "venue",
        "side",
        "filled/target",
        "fill VWAP",
        "arrival",
        "shortfall bp",
        "vs mkt VWAP bp",
        "fees USD",
        "ack",
        "status",
        "reconciled",
    )
    return Section("legs", [Table(columns, rows, frozenset({3, 4, 5, 6, 7, 8}))])


def _fees(leg: LegReport) -> str:
    """The leg's fees in USD, and after them any it paid in an asset with no price."""
    other = " ".join(f"+{amount} {asset}" for asset, amount in sorted(leg.fees_unpriced.items()))
    return f"{_num(leg.fees_usd)} {other}" if other else _num(leg.fees_usd)


def _integrity(report: BasketReport, tca: dict[str, Any]) -> Section:
    launch = _get(tca, "launch_skew_ns")
    raw = _get(tca, "raw_ack_skew_ns")
    launch = report.launch_skew_ns if launch is None else launch
    raw = report.raw_ack_skew_ns if raw is None else raw
    band = report.timeline.band if report.timeline is not None else None
    outside = _get(tca, "time_outside_band_s")
    rows = [
        ("launch skew", f"{_ms(launch)} (first to last leg's first order, venue accept time)"),
        ("raw ack skew", f"{_ms(raw)} (first to last leg's first ack arrival)"),
    ]
    if launch is not None and raw is not None:
        rows.append(
            (
                "phantom asynchrony",
                f"{_ms(raw - launch)} (raw − launch skew: ack kinds and network, not launch)",
            )
        )
    rows += [
        (
            "max completion skew",
            f"{_pct(_get(tca, 'max_completion_skew'))} (max − min leg completion; band "
            + (f"{band:.1%})" if band is not None else "none)"),
        ),
        (
            "time outside band",
            "no band" if outside is None and band is None else f"{_num(outside, 1)} s",
        ),
    ]
    for name, key, meaning in (
        ("peak imbalance", "peak_imbalance_usd", "Σ|u|: dollars out of step"),
        ("peak net imbalance", "peak_net_imbalance_usd", "|Σu|"),
        ("peak beta imbalance", "peak_beta_imbalance_usd", "|Σβu|: market exposure"),
    ):
        rows.append((name, f"{_usd(_get(tca, key))} ({meaning})"))
    rows.append(("legging risk", f"{_usd(_get(tca, 'legging_risk_usd'))} (sqrt ∫uᵀΣu dt)"))
    return Section("integrity", [pairs(rows)])


def _latency(p: dict[str, Any] | None) -> tuple[str, str, str]:
    return (
        _ms(_get(p, "p50")),
        _ms(_get(p, "p99")),
        str(_get(p, "n") if _get(p, "n") is not None else DASH),
    )


def _hedge(report: BasketReport, tca: dict[str, Any]) -> Section:
    h = report.hedge
    if h is None and not _get(tca, "hedge_orders"):
        return Section("hedge", ["no hedge"])
    rows = []
    if h is not None:
        rows.append(("on", f"{h.venue} {', '.join(h.instruments)}"))
    orders = _get(tca, "hedge_orders")
    rows += [
        ("orders", str(orders if orders is not None else h.orders if h is not None else DASH)),
        ("activations", str(_get(tca, "hedge_activations") or 0)),
    ]
    if h is not None:
        rows.append(("max position", _usd(h.max_abs_position) + " gross"))
    cost = f"{_usd(_get(tca, 'hedge_cost_usd'))} ({_bp(_get(tca, 'hedge_cost_bps'))} bp)"
    if h is not None:
        cost += f": the basket's share of the hedge's loss, fees {_usd(h.fees_usd)} included"
    rows.append(("cost", cost))
    if h is not None and (h.trading_cost_usd or h.risk_removed_usd2):
        # What the hedge's decision rule weighed (docs/basket.md#hedge): what its trades
        # paid against the mid, beside the risk they took off the basket and its value.
        rows.append(
            (
                "earned",
                f"trading cost {_usd(h.trading_cost_usd)} against risk removed "
                f"{_usd(h.risk_removed_usd)} (√∫ΔV), valued {_usd(h.risk_value_usd)}",
            )
        )
    p50, p99, n = _latency(_get(tca, "hedge_reaction_ns"))
    rows.append(("reaction", f"p50 {p50}, p99 {p99} (n={n}; fill seen by a leg → hedge sent)"))
    if h is not None:
        end = "held for an operator" if h.held else "flat" if h.flat_at_end else "NOT flat"
        if h.unsettled:
            end += f"; orders that may still fill: {', '.join(h.unsettled)}"
        rows.append(("at the end", end))
    return Section("hedge", [pairs(rows)])


def _clock_row(leg: LegReport) -> tuple[str, ...]:
    venue_unc = leg.venue_clock_uncertainty_ns
    return (
        leg.leg_id,
        leg.venue,
        _ms(leg.clock_offset_ns, sign=True),
        _ms(leg.clock_uncertainty_ns),
        _ms(leg.venue_clock_offset_ns, sign=True),
        _ms(venue_unc),
        _ms(leg.venue_clock_rtt_ns),
    )


def _operations(report: BasketReport, tca: dict[str, Any]) -> Section:
    items: list[str | Table] = []
    if report.legs:
        items.append(
            Table(
                ("clock", "venue", "leg − basket", "±", "venue − leg", "±", "venue RTT"),
                [_clock_row(leg) for leg in report.legs],
                frozenset({2, 3, 4, 5, 6}),
            )
        )
    ack = _get(tca, "ack_latency_ns") or {}
    accept = _get(tca, "accept_latency_ns") or {}
    rows = []
    for venue in sorted(set(ack) | set(accept)):
        if venue in accept:
            rows.append((venue, "send → venue accept", *_latency(accept[venue])))
        for kind, p in sorted((ack.get(venue) or {}).items()):
            rows.append((venue, f"send → {kind} ack arrival", *_latency(p)))
    if rows:
        items.append(Table(("latency", "event", "p50", "p99", "n"), rows, frozenset({2, 3, 4})))
    c = report.collateral
    facts = []
    if c.reserved or c.holdings:
        # Margin in dollars per venue, then the spot wallets' pools (a spot leg's quote or
        # base asset), each in its own asset.
        held = [f"{v} {_usd(a)}" for v, a in sorted(c.reserved.items())]
        held += [
            f"{v} {amount.normalize():f} {pool.removeprefix('spot:')} (spot)"
            for v, pools in sorted(c.holdings.items())
            for pool, amount in sorted(pools.items())
        ]
        state = "released" if c.released else "NOT released"
        facts.append(("collateral", f"{', '.join(held)}; {state}"))
    facts += [("refused", r) for r in c.refused]
    if c.funding:
        facts.append(("funding", c.funding))
    if c.transfers:
        items.append(
            Table(
                ("transfer", "kind", "amount", "from → to", "state", "took", "venue id"),
                [_transfer_row(t) for t in c.transfers],
                frozenset({2, 5}),
            )
        )
    rejects = [(leg.leg_id, len(leg.rejects)) for leg in report.legs if leg.rejects]
    total = sum(n for _, n in rejects)
    facts.append(
        (
            "rejects",
            str(total) + (f" ({', '.join(f'{i} {n}' for i, n in rejects)})" if total else ""),
        )
    )
    mismatches = sum(len(leg.mismatches) for leg in report.legs)
    if mismatches:
        facts.append(("mismatches", f"{mismatches} (orders where the venue and the leg disagree)"))
    facts += [("note", n) for n in report.notes]
    items.append(pairs(facts))
    return Section("operations", items)


def _transfer_row(t: TransferView) -> tuple[str, ...]:
    took = f"{t.age_s(t.updated_ns):.1f} s" if t.state.is_final else "still pending"
    state = t.state.value + (f" ({t.reason})" if t.reason else "")
    return (
        t.client_transfer_id,
        t.kind.value,
        f"{t.amount.normalize():f} {t.asset}",
        f"{t.source} → {t.destination}",
        state,
        took,
        t.venue_transfer_id or "–",
    )


# -- as text ---------------------------------------------------------------------------------
def summary(report: BasketReport) -> str:
    """The report as a terminal summary, one block per section."""
    blocks = []
    for s in sections(report):
        lines = [s.title]
        for item in s.items:
            if isinstance(item, Table):
                lines += text_table(item)
            else:
                lines.append(f"  {item}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def text_table(t: Table, indent: str = "  ") -> list[str]:
    """The table as plain lines (rich lays it out): columns two spaces apart, numeric ones
    right-aligned, no colour and no box, so that logs and `grep` read it as they read any
    line. Empty without rows or header."""
    from rich.table import Table as RichTable  # noqa: PLC0415 (rich loads on first use)
    from rich.text import Text  # noqa: PLC0415

    if not t.rows and not t.header:
        return []
    table = RichTable(box=None, show_header=t.header, pad_edge=False, padding=(0, 1))
    for i, name in enumerate(t.columns):
        table.add_column(name, justify="right" if i in t.right else "left", no_wrap=True)
    for row in t.rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: a "[x]" in a cell is no markup
    return [indent + line for line in plain_lines(table)]


def plain_lines(renderable: object, width: int = PLAIN_WIDTH) -> list[str]:
    """What rich draws of `renderable` as plain text: no escape codes, a fixed width (a
    generous one: tables are as wide as their cells), trailing spaces and the blank lines
    around it removed."""
    from rich.console import Console  # noqa: PLC0415

    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=False,
        force_jupyter=False,
        color_system=None,
        no_color=True,
        highlight=False,
        markup=False,
        emoji=False,
        legacy_windows=False,
    )
    console.print(renderable)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


# -- the chart -------------------------------------------------------------------------------
def _matrix(rows: Sequence[Sequence[float]], width: int) -> np.ndarray:
    """Rows of floats as an (n × width) array, NaN where a row is short."""
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        k = min(len(r), width)
        out[i, :k] = r[:k]
    return out


def figure(report: BasketReport) -> Figure:
    """The basket's path: leg completion with schedule and band, imbalance, hedge position.

    Three panels share the time axis (seconds since launch, or since submission for a basket
    that never launched). The band is shaded as a corridor of half-width band/2 around the
    mid-range of the legs' completion, (max + min)/2, so a leg leaves the corridor exactly
    when the completion skew max − min exceeds the band; those stretches are tinted red.
    """
    # Imported here so that a summary (the end of every `legato run`) never pays for it.
    from matplotlib.figure import Figure  # noqa: PLC0415

    tl = report.timeline
    if tl is None or not tl.points:
        fig = Figure(figsize=(10, 2.5))
        fig.text(
            0.5,
            0.5,
            f"{headline(report)}\n\nno timeline in this report",
            ha="center",
            va="center",
            fontsize=12,
        )
        return fig

    points = tl.points
    origin = report.launched_ns if report.launched_ns is not None else report.submitted_ns
    since = "launch" if report.launched_ns is not None else "submission"
    t = np.array([(p.ts_ns - origin) / 1e9 for p in points])
    n_legs = len(tl.legs)
    progress = _matrix([p.progress for p in points], n_legs) * 100
    imbalance = _matrix([p.imbalance_usd for p in points], n_legs)
    schedule = np.array([p.schedule for p in points]) * 100
    hedge = np.array([p.hedge_usd for p in points])
    colors = [f"C{i % 10}" for i in range(n_legs)]
    # Each point holds until the next, as the TCA integrates the path: draw steps.
    steps: dict[str, Any] = {"drawstyle": "steps-post", "linewidth": 1.6}
    thin = {**steps, "linewidth": 1.0}

    fig = Figure(figsize=(11, 9), layout="constrained")
    ax_p, ax_u, ax_h = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.4]})
    fig.suptitle(headline(report))

    if n_legs and tl.band is not None:
        with warnings.catch_warnings():  # a point without any leg's figure stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            hi = np.nanmax(progress, axis=1)
            lo = np.nanmin(progress, axis=1)
        mid = (hi + lo) / 2
        half = tl.band * 100 / 2
        ax_p.fill_between(
            t,
            mid - half,
            mid + half,
            step="post",
            color="0.6",
            alpha=0.3,
            linewidth=0,
            label=f"band {tl.band:.1%} (±{tl.band / 2:.1%} around the legs' mid-range)",
        )
        outside = (hi - lo) > tl.band * 100 + 1e-9
        if outside.any():
            ax_p.fill_between(
                t,
                0,
                1,
                where=outside,
                step="post",
                transform=ax_p.get_xaxis_transform(),
                color="red",
                alpha=0.12,
                linewidth=0,
                label="skew outside the band",
            )
    for i, leg in enumerate(tl.legs):
        ax_p.plot(t, progress[:, i], color=colors[i], label=leg, **steps)
    ax_p.plot(t, schedule, color="black", linestyle="--", linewidth=1.2, label="schedule")
    ax_p.set_ylabel("completion (%)")
    ax_p.set_ylim(bottom=-2)
    ax_p.legend(loc="upper left", fontsize=8, framealpha=0.85)
    ax_p.grid(alpha=0.3)

    for i, leg in enumerate(tl.legs):
        ax_u.plot(t, imbalance[:, i], color=colors[i], alpha=0.8, label=leg, **thin)
    if n_legs:
        ax_u.plot(t, np.nansum(imbalance, axis=1), color="black", label="net Σu", **steps)
    ax_u.axhline(0, color="0.4", linewidth=0.8)
    ax_u.set_ylabel("imbalance u (USD)")
    ax_u.legend(loc="upper left", fontsize=8, framealpha=0.85)
    ax_u.grid(alpha=0.3)

    ax_h.plot(t, hedge, color="C9", **steps)
    ax_h.fill_between(t, 0, hedge, step="post", color="C9", alpha=0.2, linewidth=0)
    ax_h.set_ylabel("hedge (gross USD)")
    ax_h.set_xlabel(f"seconds since {since}")
    ax_h.grid(alpha=0.3)
    if report.hedge is None and not hedge.any():
        ax_h.text(0.5, 0.5, "no hedge", transform=ax_h.transAxes, ha="center", va="center")
    return fig


def chart_png(report: BasketReport, path: str | Path) -> None:
    """Write the chart as a PNG."""
    figure(report).savefig(Path(path), format="png", dpi=100)


def chart_svg(report: BasketReport) -> str:
    """The chart as an `<svg>` element to inline in HTML (no XML prolog, no metadata)."""
    from matplotlib import rc_context  # noqa: PLC0415 -- see `figure`

    buf = io.StringIO()
    # Text as paths, so the page needs no fonts; a fixed salt keeps ids stable between runs.
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "legato"}):
        figure(report).savefig(
            buf,
            format="svg",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    text = buf.getvalue()
    return text[text.index("<svg") :]


# -- as HTML ---------------------------------------------------------------------------------
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; }
h1 { font-size: 1.35em; } h2 { font-size: 1.1em; margin-top: 1.6em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.2em 0.7em; text-align: left; border-bottom: 1px solid #eee;
         vertical-align: top; }
th { background: #f4f4f4; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.pairs td:first-child { color: #555; white-space: nowrap; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
p.none { color: #777; font-style: italic; }
"""


def html_report(report: BasketReport) -> str:
    """The report as one HTML page: the chart inline as SVG, the summary's sections as tables.

    Self-contained: styles in the page, no scripts, nothing fetched from elsewhere.
    """
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(f'legato basket {report.basket_id}')}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    for i, s in enumerate(sections(report)):
        parts.append(f"<h1>{e(s.title)}</h1>" if i == 0 else f"<h2>{e(s.title)}</h2>")
        for item in s.items:
            parts.append(_html_table(item) if isinstance(item, Table) else f"<p>{e(item)}</p>")
        if i == 0:
            if report.timeline is not None and report.timeline.points:
                parts.append(f"<figure>{chart_svg(report)}</figure>")
            else:
                parts.append('<p class="none">no timeline in this report: no chart</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(t: Table) -> str:
    e = html.escape

    def cls(i: int) -> str:
        return ' class="n"' if i in t.right else ""

    out = ['<table class="pairs">' if not t.header else "<table>"]
    if t.header:
        out.append(
            "<tr>" + "".join(f"<th{cls(i)}>{e(c)}</th>" for i, c in enumerate(t.columns)) + "</tr>"
        )
    for row in t.rows:
        out.append(
            "<tr>" + "".join(f"<td{cls(i)}>{e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def write_html(report: BasketReport, path: str | Path) -> None:
    """Write `html_report(report)` to a file."""
    Path(path).write_text(html_report(report), encoding="utf-8")
