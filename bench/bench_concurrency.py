"""Concurrent baskets on one machine: 1, 5, 10 and 20 three-leg baskets at once (issue 7).

One engine (a local Ray with `num_cpus=2`, its own even when someone else's Ray runs on the
machine) on `examples/venues.toml` (alpha colocated, beta in the region, gamma
cross-region) runs, size after size, N copies of `examples/synthetic_eth_quick.toml` (three
legs, one on each venue, and its hedge, so the cluster's hedge desk nets the N baskets) over
a 10 s horizon, all submitted at once (one thread per basket, so no basket waits on
another's validation). The 1-basket size is the baseline, measured in the same run. Per size:

- **completion**: baskets COMPLETED out of N (the reasons of the others); per basket the
  time from `Engine.submit` to the report's `completed_ns` (driver and basket actors share
  this machine's wall clock); the wall time from the first submit to the last report; the
  most baskets running (launched, not yet completed) at one instant, which says how
  concurrent the size really was; and where a basket's time goes, phase by phase, from the
  report's state history (`PHASES`).
- **event latency**, two events, p50/p99/max pooled over the N baskets:
  (a) *fill → hedge*: from a leg learning of a fill to the hedge desk sending the hedge
  order that the fill's imbalance caused (`BasketReport.hedge.reaction_ns`);
  (b) *order ack*: child-order send → its acknowledgement reaching the leg, per venue and
  ack kind (the raw samples behind `report.tca["ack_latency_ns"]`, from
  `actors.tca.ack_latencies`), beside the worst single basket's p99 from the TCA.
  The venues' own simulated latencies are part of (b) (colo 1–3 ms, region ~10 ms,
  cross-region ~200 ms) and the simulated venues run on the same two cores: what load adds
  shows as the rise over the 1-basket baseline.
- **memory**: the peak, while the size runs, of the memory of every process of this Ray
  session (the driver and its descendants: GCS, raylet, agents, the worker of every actor),
  read from /proc (only ever read): summed RSS every 0.25 s (it counts shared pages in every
  process that maps them), and summed PSS (shared pages split between their sharers: the
  session's real footprint) and USS (private pages) every 2 s or more (reading smaps costs
  ~2 ms a process; the sweeps are kept under 5 % of a core). Beside it the idle engine
  before the first basket, so the cost per basket shows.
- **CPU**: the session's CPU time by kind of process (worker start-up, leg, basket, venue,
  hedge actors, raylet, ...) and the cores the session and the whole machine kept busy;
  other people's runs on the machine show as the difference.

Between sizes the bench waits (bounded) until the previous baskets' actor processes are gone,
so each size's memory is its own. Every wait is bounded. Writes
bench/results/concurrency.{json,md} and exits non-zero when any basket fails to complete.
`--sizes 1 5` runs other sizes, `--horizon` another horizon, `--start-in S` starts every
basket of a size at one instant S seconds after the first submit, `--arm-timeout S` gives the
legs longer to arm, `--warm N` gives the engine a warm pool of N basket actors and N leg
actors per venue (filled before the first size and again before each size, outside its
measurements: the idle engine's memory then includes the pool), `--max-arming K` lets K
baskets arm at once and `--max-running K` arm or run at once (default: the config's),
`--out NAME` writes bench/results/NAME.*.
Takes about 5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import ray

from actors.lifecycle import BasketState
from actors.protocol import BasketOptions
from actors.report import BasketReport
from actors.spec import BasketSpec, load_basket
from actors.tca import ack_latencies
from bench.common import ROOT, stats, table, write
from cluster.config import load_cluster
from cluster.engine import Engine

SIZES = (1, 5, 10, 20)
HORIZON_S = 10.0
NAMESPACE = "legato-bench-concurrency"
RSS_EVERY_S = 0.25
PSS_EVERY_S = 2.0
PSS_MAX_LOAD = 0.05  # of one core: the PSS sampler backs off to stay under this
# A basket fails itself once past arming + horizon + grace + max(min_overrun, horizon), then
# unwinds or reconciles (each leg call bounded by a minute): its report comes by then plus
# this slack, which only catches a basket that hangs.
END_SLACK_S = 90.0
CANCEL_WAIT_S = 30.0  # for the report of a basket cancelled at the bound
GONE_TIMEOUT_S = 60.0  # for the previous size's actor processes to exit
POOL_FILL_TIMEOUT_S = 600.0  # for the warm pool to be full (a large pool on two cores: minutes)
MS = 1e6
MIB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
BASKET_ACTORS = ("ray::BasketActor", "ray::LegActor")
WORKER_START = "worker start-up"  # a worker process before it takes on its actor
CPU_COLUMNS = 8  # kinds of process shown in the CPU table; the rest add up in "other"


# -- the session's memory ---------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, int]]:
    """Every process's parent and CPU time so far (user + system, in clock ticks)."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: the fields after its last ')'
        # start at the state (field 3); ppid is field 4, utime and stime fields 14 and 15.
        f = stat[stat.rindex(b")") + 2 :].split()
        out[int(entry.name)] = (int(f[1]), int(f[11]) + int(f[12]))
    return out


def session_pids(root: int, procs: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """`root` and all its descendants. A driver that starts its own Ray is the parent of the
    GCS and the raylet, and the raylet of every worker and agent: this is the session."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in (procs if procs is not None else _processes()).items():
        kids.setdefault(ppid, []).append(pid)
    out = [root]
    for pid in out:  # grows as it goes: a breadth-first walk
        out.extend(kids.get(pid, ()))
    return out


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]  # idle + iowait
    return sum(f) - idle, sum(f)


def _title(pid: int) -> str:
    """A process's title (Ray workers set theirs to `ray::<ActorClass>...`); "" once gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _kind(pid: int) -> str:
    """What a session process is: `ray::LegActor` (a worker, by its actor class),
    `WORKER_START` (a worker starting up), `raylet`, `gcs_server`, `dashboard.py`, ..."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    if args[0].startswith("ray::"):
        kind = args[0].split(".", 1)[0].strip()
        return WORKER_START if kind == "ray::IDLE" else kind
    name = Path(args[0]).name
    if name.startswith("python"):
        scripts = [Path(a).name for a in args[1:] if a.endswith(".py")]
        name = scripts[0] if scripts else name
    # A worker process is `default_worker.py` until it titles itself.
    return WORKER_START if name == "default_worker.py" else name


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_uss(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    kb = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        kb[key] = int(rest.split()[0])
    return kb.get("Pss", 0) * 1024, (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) * 1024


@dataclass
class Window:
    """What the session used over a stretch of the run: its peak summed memory (bytes), its
    CPU time by kind of process, and the whole machine's CPU time."""

    rss: int = 0
    pss: int = 0
    uss: int = 0
    processes: int = 0
    samples: int = 0
    pss_samples: int = 0
    cpu_ticks: dict[str, int] = field(default_factory=dict)  # by `_kind`
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    machine_start: tuple[int, int] = field(default_factory=machine_busy_ticks)
    machine_end: tuple[int, int] | None = None

    def figures(self) -> dict[str, Any]:
        wall = (self.ended or time.monotonic()) - self.started
        cpu = {k: t * TICK_S for k, t in sorted(self.cpu_ticks.items(), key=lambda kv: -kv[1])}
        machine = None
        if self.machine_end is not None:
            busy = self.machine_end[0] - self.machine_start[0]
            total = self.machine_end[1] - self.machine_start[1]
            machine = busy / total * (os.cpu_count() or 1) if total else None
        return {
            "rss_mib": self.rss / MIB,
            "pss_mib": self.pss / MIB,
            "uss_mib": self.uss / MIB,
            "processes": self.processes,
            "samples": self.samples,
            "pss_samples": self.pss_samples,
            "wall_s": wall,
            # Cores in use on average: the session's own, and the whole machine's (other
            # people's runs included), out of os.cpu_count().
            "session_cores": sum(cpu.values()) / wall if wall > 0 else None,
            "machine_cores": machine,
            "session_cpu_s": cpu,
        }


class SessionMonitor:
    """Samples the session's processes in a background thread (it only ever reads /proc)
    and adds them up into the current `Window`."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.current = Window()
        self.pss_cost_s = 0.0  # of the last PSS sweep
        self._ticks: dict[int, int] = {}  # every session process's CPU ticks when last seen
        self._primed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-monitor", daemon=True)

    def __enter__(self) -> SessionMonitor:
        self.sample(pss=False)  # from here on, CPU time counts
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        """The session over the `with` block: a full sweep at its start and end, samples
        between."""
        with self._lock:
            self.current = Window()
            w = self.current
        self.sample(pss=True)
        try:
            yield w
        finally:
            self.sample(pss=True)
            w.ended = time.monotonic()
            w.machine_end = machine_busy_ticks()
            with self._lock:
                self.current = Window()  # samples after the block no longer count in it

    def sample(self, pss: bool) -> None:
        procs = _processes()
        pids = session_pids(self.root, procs)
        rss = sum(_rss(p) for p in pids)
        pss_sum = uss_sum = 0
        if pss:
            t0 = time.perf_counter()
            for p in pids:
                a, b = _pss_uss(p)
                pss_sum += a
                uss_sum += b
            self.pss_cost_s = time.perf_counter() - t0
        with self._lock:
            w = self.current
            w.samples += 1
            w.rss = max(w.rss, rss)
            w.processes = max(w.processes, len(pids))
            if pss:
                w.pss_samples += 1
                w.pss = max(w.pss, pss_sum)
                w.uss = max(w.uss, uss_sum)
            ticks = {p: procs[p][1] for p in pids if p in procs}
            for p, t in ticks.items():
                # A process born since the last sample brings all its CPU time (a worker's
                # start costs a second or two); one that exited since loses at most one
                # interval's worth.
                spent = t - self._ticks.get(p, 0 if self._primed else t)
                if spent:
                    kind = "driver" if p == self.root else _kind(p)
                    w.cpu_ticks[kind] = w.cpu_ticks.get(kind, 0) + spent
            self._ticks = ticks
            self._primed = True

    def _run(self) -> None:
        next_pss = 0.0
        while not self._stop.wait(RSS_EVERY_S):
            now = time.monotonic()
            due = now >= next_pss
            try:
                self.sample(pss=due)
            except Exception as e:  # a sampler that dies silently would report a low peak
                print(f"session monitor: {e!r}", file=sys.stderr, flush=True)
                continue
            if due:
                # Reading smaps walks every page table: keep the sweeps under PSS_MAX_LOAD.
                next_pss = now + max(PSS_EVERY_S, self.pss_cost_s / PSS_MAX_LOAD)


def basket_processes(root: int) -> int:
    """How many basket and leg actor processes the session has."""
    return sum(_title(p).startswith(BASKET_ACTORS) for p in session_pids(root))


def wait_actors_gone(root: int, idle: int, timeout_s: float) -> tuple[float, int]:
    """Wait until the session has no more basket and leg actor processes than the idle
    engine had (none, unless a warm pool keeps some): (seconds waited, how many were left
    over at the deadline)."""
    t0 = time.monotonic()
    while True:
        extra = basket_processes(root) - idle
        waited = time.monotonic() - t0
        if extra <= 0 or waited > timeout_s:
            return waited, max(extra, 0)
        time.sleep(0.2)


# -- the baskets ------------------------------------------------------------------------------


def basket_spec(basket_id: str, horizon_s: float, start: int | Literal["now"]) -> BasketSpec:
    """The quick synthetic ETH basket under another id, over `horizon_s` from `start`, its
    hedge kept."""
    spec = load_basket(ROOT / "examples" / "synthetic_eth_quick.toml")
    assert isinstance(spec, BasketSpec)
    params = msgspec.structs.replace(spec.params, horizon_s=horizon_s, start=start)
    return msgspec.structs.replace(spec, basket_id=basket_id, params=params)


@dataclass
class Outcome:
    """One basket of a size: when it was submitted and what came of it."""

    basket_id: str
    submit_ns: int
    report: BasketReport | None = None
    error: str = ""  # the submit failed, or no report came

    @property
    def completed(self) -> bool:
        return self.report is not None and self.report.status is BasketState.COMPLETED

    @property
    def why(self) -> str:
        if self.report is None:
            return self.error
        return f"{self.report.status.value}: {self.report.reason}"


@dataclass
class SizeRun:
    n: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    submit_s: float = 0.0  # first submit called → last submit returned
    orders: dict[str, int] = field(default_factory=dict)  # per venue, received in this size


def submit_one(engine: Engine, spec: BasketSpec) -> tuple[Outcome, Any]:
    outcome = Outcome(spec.basket_id, time.time_ns())
    try:
        return outcome, engine.submit(spec)
    except Exception as e:  # a refused or unplaceable basket is a result of this size
        outcome.error = f"submit failed: {type(e).__name__}: {e}"
        return outcome, None


def run_size(
    engine: Engine, n: int, horizon_s: float, start_in_s: float | None, options: BasketOptions
) -> SizeRun:
    """N baskets at once, each to its report (or to the bound); with `start_in_s`, every
    basket's schedule starts at one instant that far after the first submit."""
    run = SizeRun(n)
    before = {v: engine.venue_stat(v, "orders_received") for v in engine.venues}
    t0 = time.monotonic()
    start: int | Literal["now"] = "now"
    if start_in_s is not None:
        start = time.time_ns() + int(start_in_s * 1e9)
    specs = [basket_spec(f"conc{n}-{i}", horizon_s, start) for i in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        submitted = list(pool.map(lambda spec: submit_one(engine, spec), specs))
    run.submit_s = time.monotonic() - t0
    lifetime = (
        options.arm_timeout_s
        + (start_in_s or 0.0)
        + horizon_s
        + specs[0].params.grace_s
        + max(options.min_overrun_s, horizon_s)
    )
    deadline = time.monotonic() + lifetime + END_SLACK_S
    for outcome, handle in submitted:
        run.outcomes.append(outcome)
        if handle is None:
            continue
        try:
            outcome.report = handle.result(timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            handle.cancel("bench bound reached")
            try:
                outcome.report = handle.result(timeout=CANCEL_WAIT_S)
            except TimeoutError:
                outcome.error = f"no report within {deadline - t0 + CANCEL_WAIT_S:.0f} s"
        except Exception as e:  # the basket actor died: a result, not a crash of the bench
            outcome.error = f"no report: {type(e).__name__}: {e}"
    run.wall_s = time.monotonic() - t0
    after = {v: engine.venue_stat(v, "orders_received") for v in engine.venues}
    run.orders = {v: after[v] - before[v] for v in after}
    return run


# -- the figures ------------------------------------------------------------------------------


def dist(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p99, max, mean and n."""
    return {**stats(values), "max": max(values) if values else None}


def peak_running(reports: Iterable[BasketReport]) -> int:
    """The most baskets launched and not yet completed at one instant."""
    edges = sorted(
        e
        for r in reports
        if r.launched_ns is not None and r.completed_ns is not None
        for e in ((r.launched_ns, 1), (r.completed_ns, -1))
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


# A basket's life in phases, each from one event to another: "submit" (the driver called
# Engine.submit), a state entered (DESIGN §5, from the report's history), or "launched".
PHASES: dict[str, tuple[str, str, str]] = {
    "start": ("submit", "CHECKING", "the basket actor's process started, the spec validated"),
    "collateral": ("CHECKING", "QUEUED", "collateral reserved on every venue"),
    "queue": ("QUEUED", "ARMING", "waiting for a turn to arm (`max_arming`); 0 if none"),
    "arm": ("ARMING", "RUNNING", "leg actors started and armed, clocks measured, fired"),
    "launch": ("RUNNING", "launched", "every leg's first order acknowledged"),
    "run": ("RUNNING", "RECONCILING", "the schedule (start, horizon) and its tail"),
    "reconcile": ("RECONCILING", "COMPLETED", "every child order confirmed, hedge closed"),
}


def phases(submit_ns: int, report: BasketReport) -> dict[str, float]:
    """Seconds spent in each of `PHASES` by one basket."""
    at: dict[str, int] = {"submit": submit_ns}
    for change in report.history:
        at.setdefault(change.state.value, change.ts_ns)
    if report.launched_ns is not None:
        at["launched"] = report.launched_ns
    if "ARMING" in at:  # a basket that did not wait for its turn queued for no time
        at.setdefault("QUEUED", at["ARMING"])
    return {
        name: (at[b] - at[a]) / 1e9 for name, (a, b, _) in PHASES.items() if a in at and b in at
    }


def figures(run: SizeRun, used: Window, idle: Window) -> dict[str, Any]:
    reports = [o.report for o in run.outcomes if o.report is not None]
    done = [(o.submit_ns, o.report) for o in run.outcomes if o.completed and o.report]
    completion = [(r.completed_ns - t) / 1e9 for t, r in done if r.completed_ns]
    launch = [(r.launched_ns - t) / 1e9 for t, r in done if r.launched_ns]
    spans = [phases(t, r) for t, r in done]
    reactions = [ns / MS for r in reports if r.hedge is not None for ns in r.hedge.reaction_ns]
    acks: dict[str, list[float]] = {}
    worst: dict[str, float] = {}
    for r in reports:
        for venue, kinds in ack_latencies(r.legs).items():
            for kind, values in kinds.items():
                acks.setdefault(f"{venue} {kind}", []).extend(v / MS for v in values)
        for venue, kinds in ((r.tca or {}).get("ack_latency_ns") or {}).items():
            for kind, p in kinds.items():
                if p.get("p99") is not None:
                    key = f"{venue} {kind}"
                    worst[key] = max(worst.get(key, 0.0), p["p99"] / MS)
    return {
        "baskets": run.n,
        "completed": sum(o.completed for o in run.outcomes),
        "failures": {o.basket_id: o.why for o in run.outcomes if not o.completed},
        "submit_s": run.submit_s,
        "wall_s": run.wall_s,
        "peak_running": peak_running(reports),
        "completion_s": dist(completion),
        "launch_s": dist(launch),
        "phases_s": {k: dist([p[k] for p in spans if k in p]) for k in PHASES},
        "fill_to_hedge_ms": dist(reactions),
        "ack_ms": {
            k: {**dist(v), "worst_basket_p99": worst.get(k)} for k, v in sorted(acks.items())
        },
        "orders": run.orders,
        "memory": used.figures(),
        "memory_over_idle_mib": {
            "pss": (used.pss - idle.pss) / MIB,
            "pss_per_basket": (used.pss - idle.pss) / MIB / run.n,
            "rss": (used.rss - idle.rss) / MIB,
        },
    }


def markdown(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    idle = results["idle_memory"]
    head = (
        f"## Concurrent 3-leg baskets on one machine (`bench_concurrency`)\n\n"
        f"`examples/synthetic_eth_quick.toml` over {results['horizon_s']:g} s on "
        f"`examples/venues.toml`, N baskets submitted at once into one engine (local Ray, "
        f"num_cpus=2); the 1-basket row is the baseline. Warm pool: "
        + (
            f"{results['warm']} basket actors and {results['warm']} leg actors per venue, "
            "full before each size"
            if results.get("warm")
            else "none (every basket starts its own actors)"
        )
        + f"; at most {results.get('max_arming', '–')} baskets arming at once, "
        + (
            f"{results['max_running']} arming or running"
            if results.get("max_running")
            else "no limit on those running"
        )
        + "; arm timeout "
        f"{results['arm_timeout_s']:g} s. Run took {results['run_s']:.0f} s."
    )
    main = table(
        [
            "N",
            "completed",
            "peak running",
            "submit→completed p50 / p99 / max s",
            "wall s",
            "fill→hedge p50 / p99 ms (n)",
            "peak PSS MiB",
            "PSS over idle per basket MiB",
            "peak RSS MiB",
            "processes",
            "cores busy: session / machine",
        ],
        [
            [
                s["baskets"],
                f"{s['completed']}/{s['baskets']}",
                s["peak_running"],
                _dist(s["completion_s"], "p50", "p99", "max"),
                s["wall_s"],
                f"{_dist(s['fill_to_hedge_ms'], 'p50', 'p99')} ({s['fill_to_hedge_ms']['n']})",
                s["memory"]["pss_mib"],
                s["memory_over_idle_mib"]["pss_per_basket"],
                s["memory"]["rss_mib"],
                s["memory"]["processes"],
                f"{_f(s['memory']['session_cores'])} / {_f(s['memory']['machine_cores'])}",
            ]
            for s in sizes
        ],
    )
    spans = table(
        ["N", *(f"{k} p50 / max s" for k in PHASES)],
        [[s["baskets"], *(_dist(s["phases_s"][k], "p50", "max") for k in PHASES)] for s in sizes],
    )
    kinds = sorted({k for s in sizes for k in s["ack_ms"]})
    acks = table(
        ["N", *(f"{k} p50 / p99 ms" for k in kinds)],
        [[s["baskets"], *(_dist(s["ack_ms"].get(k), "p50", "p99") for k in kinds)] for s in sizes],
    )
    totals: dict[str, float] = {}
    for s in sizes:
        for k, v in s["memory"]["session_cpu_s"].items():
            totals[k] = totals.get(k, 0.0) + v
    top = sorted(totals, key=lambda k: -totals[k])[:CPU_COLUMNS]
    cpu = table(
        ["N", *top, "other"],
        [
            [
                s["baskets"],
                *(s["memory"]["session_cpu_s"].get(k) for k in top),
                sum(v for k, v in s["memory"]["session_cpu_s"].items() if k not in top),
            ]
            for s in sizes
        ],
    )
    failures = [
        f"- N={s['baskets']} {basket}: {why}"
        for s in sizes
        for basket, why in s["failures"].items()
    ]
    notes = [
        f"Idle engine (venues and singletons up, no basket): PSS {idle['pss_mib']:,.0f} MiB, "
        f"RSS {idle['rss_mib']:,.0f} MiB in {idle['processes']} processes.",
        "Memory: every process of the Ray session (driver, GCS, raylet, agents, actor "
        "workers), from /proc; PSS splits shared pages between their sharers (the real "
        "total), RSS counts them in every process. Cores busy: the session's CPU time, and "
        "the whole machine's (other runs included), over the wall time of the size.",
        "Event latency: fill→hedge is a leg learning of a fill → the hedge desk sending the "
        "hedge order it caused (`BasketReport.hedge.reaction_ns`); ack is a child order's "
        "send → its acknowledgement at the leg, per venue and ack kind (the samples of "
        "`tca.ack_latency_ns`), the venues' simulated latencies included; both pooled over "
        "the N baskets.",
        "Phases: "
        + "; ".join(f"{k}: {a} → {b}, {what}" for k, (a, b, what) in PHASES.items())
        + ".",
    ]
    parts = [
        head,
        main,
        "Where a basket's time goes (completed baskets):",
        spans,
        "Order acknowledgement latency per venue and ack kind:",
        acks,
        "CPU seconds the session spent, by kind of process (worker start-up: a new worker "
        "process until it takes on its actor, whose own imports count under the actor):",
        cpu,
        "\n\n".join(notes),
    ]
    if failures:
        parts += ["Baskets that did not complete:", "\n".join(failures)]
    return "\n\n".join(parts)


def _dist(d: dict[str, Any] | None, *keys: str) -> str:
    return " / ".join(_f(None if d is None else d[k]) for k in keys)


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def print_size(s: dict[str, Any]) -> None:
    c, m = s["completion_s"], s["memory"]
    print(
        f"  N={s['baskets']:2d}: {s['completed']}/{s['baskets']} completed, peak running "
        f"{s['peak_running']}, submit→completed p50 {_f(c['p50'])} s max {_f(c['max'])} s, "
        f"wall {s['wall_s']:.1f} s, fill→hedge p99 {_f(s['fill_to_hedge_ms']['p99'])} ms, "
        f"peak PSS {m['pss_mib']:,.0f} MiB (RSS {m['rss_mib']:,.0f} MiB, "
        f"{m['processes']} processes), cores busy {_f(m['session_cores'])} of the session, "
        f"{_f(m['machine_cores'])} of the machine, orders {s['orders']}",
        flush=True,
    )
    top = list(m["session_cpu_s"].items())[:6]
    print("    CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in top), flush=True)
    print(
        "    phases p50/max s: "
        + ", ".join(f"{k} {_dist(s['phases_s'][k], 'p50', 'max')}" for k in PHASES),
        flush=True,
    )
    for basket, why in s["failures"].items():
        print(f"    {basket}: {why}", flush=True)


def wait_pool_full(engine: Engine) -> float:
    """Wait (bounded) until the engine's warm pool, if it has one, is full; seconds waited."""
    t0 = time.monotonic()
    if engine.pool is not None and not engine.pool.wait_full(POOL_FILL_TIMEOUT_S):
        print(f"  warm pool not full after {POOL_FILL_TIMEOUT_S:g} s: {engine.pool.stats()}")
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--horizon", type=float, default=HORIZON_S, help="seconds")
    parser.add_argument(
        "--start-in",
        type=float,
        default=None,
        help="seconds: every basket of a size starts its schedule at one instant this long "
        "after the first submit (default: each as soon as it is armed)",
    )
    parser.add_argument(
        "--arm-timeout",
        type=float,
        default=None,
        help="seconds a basket waits for its legs to arm (default: the config's [engine])",
    )
    parser.add_argument(
        "--warm",
        type=int,
        default=0,
        help="a warm pool of this many basket actors and leg actors per venue (default: none)",
    )
    parser.add_argument(
        "--max-arming",
        type=int,
        default=None,
        help="baskets arming at once (default: the config's [engine])",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        default=None,
        help="baskets arming or running at once, 0: no limit (default: the config's [engine])",
    )
    parser.add_argument("--out", default="concurrency", help="bench/results/<OUT>.{json,md}")
    args = parser.parse_args()
    config = load_cluster(ROOT / "examples" / "venues.toml")
    options = msgspec.structs.replace(config.engine.basket_options(), risk=config.risk)
    if args.arm_timeout is not None:
        options = msgspec.structs.replace(options, arm_timeout_s=args.arm_timeout)
    if args.max_arming is not None:
        options = msgspec.structs.replace(options, max_arming=args.max_arming)
    if args.max_running is not None:
        options = msgspec.structs.replace(options, max_running=args.max_running)
    t0 = time.monotonic()
    # A Ray of our own, always: with address=None ray.init would join a cluster that someone
    # else on this machine started with `ray start`, and the memory would be theirs too.
    ray.init(
        address="local",
        namespace=NAMESPACE,
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=True,
    )
    root = os.getpid()
    sizes: list[dict[str, Any]] = []
    try:
        with (
            SessionMonitor(root) as monitor,
            Engine.start(
                config,
                namespace=NAMESPACE,
                num_cpus=2,
                basket_options=options,
                warm_legs_per_venue=args.warm,
                warm_baskets=args.warm,
            ) as engine,
        ):
            fill_s = wait_pool_full(engine)
            if engine.pool is not None:
                print(f"warm pool full after {fill_s:.0f} s: {engine.pool.stats()}", flush=True)
            with monitor.window() as idle:
                time.sleep(1.0)  # a few samples of the idle engine
            idle_actors = basket_processes(root)
            print(
                f"idle engine: PSS {idle.pss / MIB:,.0f} MiB, RSS {idle.rss / MIB:,.0f} MiB, "
                f"{idle.processes} processes",
                flush=True,
            )
            for n in args.sizes:
                waited, left = wait_actors_gone(root, idle_actors, GONE_TIMEOUT_S)
                if left:
                    print(f"  {left} actor processes of the previous size still up", flush=True)
                wait_pool_full(engine)
                with monitor.window() as used:
                    run = run_size(engine, n, args.horizon, args.start_in, options)
                s = figures(run, used, idle)
                s["previous_actors_gone_s"] = waited
                s["previous_actors_left"] = left
                sizes.append(s)
                print_size(s)
    finally:
        ray.shutdown()
    results = {
        "horizon_s": args.horizon,
        "start_in_s": args.start_in,
        "arm_timeout_s": options.arm_timeout_s,
        "max_arming": options.max_arming,
        "max_running": options.max_running,
        "warm": args.warm,
        "venues": "examples/venues.toml",
        "basket": "examples/synthetic_eth_quick.toml",
        "run_s": time.monotonic() - t0,
        "memory_source": "/proc of the driver and its descendants: RSS (statm) every 0.25 s, "
        "PSS and USS (smaps_rollup) every 2 s or more",
        "idle_memory": idle.figures(),
        "sizes": sizes,
    }
    write(args.out, results, markdown(results))
    return 0 if all(s["completed"] == s["baskets"] for s in sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
