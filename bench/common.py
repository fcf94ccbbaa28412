"""What every benchmark shares: the machine it ran on, percentiles, and its results written
as JSON plus a markdown table in bench/results/."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data" / "binance-20240808"


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model, cores, memory, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line(m: dict[str, Any] | None = None) -> str:
    m = m or machine()
    return f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}"


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, None for no values (JSON null, never NaN)."""
    return float(np.percentile(values, q)) if len(values) else None


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """{p50, p99, mean, n} of `values`."""
    return {
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "mean": float(np.mean(values)) if len(values) else None,
        "n": len(values),
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats with two decimals, None as a dash."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write(name: str, results: dict[str, Any], markdown: str) -> None:
    """bench/results/<name>.json (with the machine) and <name>.md (the table, the machine
    under it); the markdown is printed too."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    m = machine()
    doc = {"bench": name, **results, "machine": m}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = f"{markdown.rstrip()}\n\nMachine: {machine_line(m)}.\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text, flush=True)
