"""Trials 7 and 8: a basket's driver killed (7), and the whole local engine with it (8),
on `ray start` clusters of the trials' own.

Both trials trade on venues served by `legato venues up` (two USD-M simulators, alpha and
gamma), which the engine reaches as it reaches real venues (`kind = "binance_usdm"`, keys
from the environment), and which are read back the same way, over their public API
(`VenueRecords`). They are outside Ray for a reason in each trial: in 8 they must outlive
the engine; in 7 they are the same for the driver, for `legato attach` and for the audit,
which runs in this process, not in the trial's cluster (a process joins one Ray, and this
one's is the suite's own local Ray). Each run is then held, by `audit`'s one audit of a
run, against the journal (`LEGATO_JOURNAL`, SQLite) and those records.

7. One cluster for the whole trial, two runs at a time: each driver, `legato run` or a
   driver script written at run time (`Engine.start`, `submit`, `result` as in the
   README), is SIGKILLed with its process group once the journal says its basket runs;
   `legato attach RUN --json F` must exit 0 with the report, which the journal must have
   once.
8. Per run a fresh cluster and a fresh journal (each recovery judged on its own run): a
   driver submits (policy unwind, complete, hedge_and_hold in turn; the hold's hedge
   never trades), once fills are at the venues every process of the cluster and the
   driver are SIGKILLed, and `legato recover` on a second fresh cluster must carry the
   run to its end and name it; under unwind every leg is back to flat at the venues.

Every process is started in a session of its own and stopped by that session's pids
(never `ray stop`, which would stop every Ray on the machine); the temporary directory
(journals, Ray's temp dirs, logs) goes with the trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from actors.journal import journal_store
from actors.journal.records import BasketReported
from actors.lifecycle import BasketState
from actors.report import load_report
from bench.faults_trials.audit import RunAudit
from bench.faults_trials.audit import _audit as audit_run  # a run's audit, venues given
from bench.faults_trials.trials import (
    MISSED,
    Case,
    Judge,
    Settings,
    all_reconciled,
    applied,
    batch_gaps,
    bound,
    count,
    flat_under_unwind,
    invariants,
)
from bench.faults_trials.world import IDLE_HEDGE_USD, Run
from bench.sessions import free_port, stop_sessions
from venues.binance.client import BinanceUsdmClient
from venues.errors import UnknownOrder
from venues.model import ExecutionReport

S = BasketState
D = Decimal
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv's `legato`, `ray` and python
RUN_BOUND_S = 180.0  # a trial 8 run (two clusters, a driver, a recovery) past this failed
ORPHAN_BOUND_S = 150.0  # a trial 7 run (driver to attached report) past this failed
START_BOUND_S = 120.0  # `ray start`, `legato venues up`
RUNNING_BOUND_S = 90.0  # a driver's basket seen RUNNING in the journal
FILL_BOUND_S = 60.0  # a fill of a running basket seen at the venues
POLL_S = 0.2
RUN_ID = re.compile(r"\brun (\S+#\d+)")


# -- the venues -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimVenue:
    """One venue of `legato venues up`: its port and the keys of its one account (inline
    in the simulator's config, from the environment in the engine's)."""

    name: str
    port: int
    symbols: tuple[str, ...]
    preset: str  # the simulator's latency preset; every venue answers with the result

    @property
    def api_key(self) -> str:
        return f"faults-{self.name}-key"

    @property
    def secret(self) -> str:
        return f"faults-{self.name}-secret"

    @property
    def key_env(self) -> str:
        return f"FAULTS_{self.name.upper()}_KEY"

    @property
    def secret_env(self) -> str:
        return f"FAULTS_{self.name.upper()}_SECRET"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sim_toml(self) -> str:
        quoted = ", ".join(f'"{s}"' for s in self.symbols)
        return f"""
[venues.{self.name}]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = [{quoted}]
port = {self.port}
profile = {{ preset = "{self.preset}", ack = "RESULT", client_id_reuse = "after_close" }}
[[venues.{self.name}.accounts]]
account_id = "desk"
api_key = "{self.api_key}"
secret = "{self.secret}"
balances = {{ USDT = 2_000_000 }}
leverage = 10
"""

    def remote_toml(self) -> str:
        return f"""
[venues.{self.name}]
kind = "binance_usdm"
api_key_env = "{self.key_env}"
secret_env = "{self.secret_env}"
rest_url = "{self.url}"
ws_url = "ws://127.0.0.1:{self.port}"
ack = "RESULT"
"""


def sim_venues() -> dict[str, SimVenue]:
    """Alpha colocated (its index perp for the hedge of policy hedge_and_hold), gamma in the
    region; both answer with the order's result, as the cluster tests have them."""
    return {
        "alpha": SimVenue("alpha", free_port(), ("BTCUSDT", "ETHUSDT", "IDXUSDT"), "colo"),
        "gamma": SimVenue("gamma", free_port(), ("BTCUSDT", "ETHUSDT"), "same_region"),
    }


# Long ETH perp on alpha, short BTC perp on gamma (the pair of the survival tests).
PAIR = """
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
leg_id = "btc"
venue = "gamma"
symbol = "BTCUSDT"
side = "SELL"
notional_usd = 9000
"""
# Policy hedge_and_hold holds only with an enabled [hedge]: one that never trades (hedge
# orders are not journaled yet: they would move alpha's position past the journal's).
IDLE_HEDGE = f"""
[hedge]
venue = "alpha"
instruments = ["IDXUSDT"]
activation_usd = {IDLE_HEDGE_USD:.0f}
hysteresis_usd = 20
"""


def pair(basket_id: str, policy: str, horizon_s: float) -> str:
    text = PAIR.format(basket_id=basket_id, policy=policy, horizon_s=horizon_s)
    return text + (IDLE_HEDGE if policy == "hedge_and_hold" else "")


# README's driver script, as a user would write it: submit, say the run, wait on the report.
DRIVER_SCRIPT = '''\
"""A driver of the fault suite's trial 7 (written by bench/faults_trials/processes.py)."""

import sys

from cluster import Engine

basket, venues, address = sys.argv[1:4]
with Engine.start(venues, address=address) as engine:
    handle = engine.submit(basket, submitted_by="bench/faults driver script")
    print(f"driver script: run {handle.run_id}", flush=True)
    report = handle.result(timeout=300)
    print(report.status, report.reason, flush=True)
'''


class VenueRecords:
    """The venues' own records, read over their public API as an operator reads a real
    venue's: an order by client order id (the newest under it) and its trades, and the
    account's positions. What `audit` asks a run's orders of."""

    def __init__(self, venues: Mapping[str, SimVenue], parallel: int = 8) -> None:
        self.clients = {
            v.name: BinanceUsdmClient(
                v.name,
                rest_url=v.url,
                ws_url=v.url.replace("http://", "ws://", 1),  # REST only: never opened
                api_key=v.api_key,
                secret=v.secret,
            )
            for v in venues.values()
        }
        self.gate = asyncio.Semaphore(parallel)

    async def __aenter__(self) -> VenueRecords:
        return self  # REST only: no clock sync, no user-data stream

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            await client.close()

    async def order(
        self, venue: str, symbol: str, coid: str
    ) -> tuple[ExecutionReport | None, dict[str, Decimal]]:
        """The venue's report of the order (None: it knows no such order) and its trades
        (trade id → quantity; ids are strings, as the venue contract has them)."""
        client = self.clients[venue]
        async with self.gate:
            try:
                report = await client.query(symbol, coid)
            except UnknownOrder:
                return None, {}
            trades = await client.user_trades(symbol, report.order_id)
        return report, {str(t.id): t.qty for t in trades}

    async def positions(self) -> dict[tuple[str, str], Decimal]:
        held = {}
        for venue, client in self.clients.items():
            for p in await client.positions():
                held[venue, p.symbol] = p.quantity
        return held


def venue_positions(venues: Mapping[str, SimVenue]) -> dict[tuple[str, str], Decimal]:
    async def read() -> dict[tuple[str, str], Decimal]:
        async with VenueRecords(venues) as records:
            return await records.positions()

    return asyncio.run(read())


def audit(
    journal: Path, venues: Mapping[str, SimVenue], run_ids: list[str]
) -> tuple[dict[str, RunAudit], dict[str, int]]:
    """Each run held against the journal and the venues' records, and how many reports
    the journal has of it. (`audit.audit_runs` asks the venues through an engine in this
    process's Ray; these venues are asked over their API, by `audit`'s same audit.)"""

    async def go() -> tuple[dict[str, RunAudit], dict[str, int]]:
        store = journal_store(str(journal))
        await store.open()
        try:
            async with VenueRecords(venues) as records:
                audits = await asyncio.gather(*(audit_run(store, records, r) for r in run_ids))
            reported = {r: len(await store.records(r, [BasketReported])) for r in run_ids}
        finally:
            await store.close()
        return {a.run_id: a for a in audits}, reported

    return asyncio.run(go())


def journal_state(journal: Path, run_id: str) -> BasketState | None:
    async def read() -> BasketState | None:
        store = journal_store(str(journal))
        await store.open()
        try:
            info = await store.run(run_id)
        finally:
            await store.close()
        return None if info is None else info.state

    return asyncio.run(read())


def wait_running(journal: Path, run_id: str, deadline: float) -> BasketState | None:
    """The run's journaled state once it is RUNNING or has ended (None: neither by then)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the journal busy, or not made yet: not yet
            state = journal_state(journal, run_id)
            if state is S.RUNNING or (state is not None and state.is_terminal):
                return state
        time.sleep(POLL_S)  # polling the journal, bounded
    return None


# -- processes, in sessions of their own ------------------------------------------------------
@dataclass
class Spawned:
    """A process of the trial's, its output in a log file (never a pipe it could fill)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def run_id(self, deadline: float) -> str:
        """The run id the process prints when it has submitted (`… run <id> …`)."""
        while time.monotonic() < deadline:
            found = RUN_ID.search(self.output())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(POLL_S)  # polling its log, bounded
        tail = self.output()[-1500:]
        raise RuntimeError(f"no run id printed (exit {self.proc.poll()}): {tail}")

    def finish(self, deadline: float) -> int | None:
        """Its exit status, or None if it has not ended by the deadline."""
        try:
            return self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None


class Site:
    """A trial's own corner of this machine: a temporary directory, the environment its
    commands run in, and the session of every process it started (stopped on exit)."""

    def __init__(self, prefix: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: Ray's sockets
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env |= {
            "RAY_AUTH_MODE": "token",
            "RAY_TMPDIR": str(self.tmp),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "LEGATO_JOURNAL": str(self.tmp / "journal"),
        }
        self.env = env
        self.sessions: list[int] = []
        self.spawned: list[Spawned] = []

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        left = stop_sessions(self.sessions)
        if left:
            print(f"    processes that would not stop: {left}", flush=True)
        for s in self.spawned:  # reaped: no zombie of ours left behind
            s.proc.poll()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def spawn(self, args: list[str], log: str, env: Mapping[str, str] | None = None) -> Spawned:
        path = self.tmp / log
        with path.open("wb") as out:
            proc = subprocess.Popen(
                args,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.tmp,
            )
        self.sessions.append(proc.pid)
        self.spawned.append(Spawned(proc, path))
        return self.spawned[-1]

    def legato(self, *args: str, log: str, env: Mapping[str, str] | None = None) -> Spawned:
        return self.spawn([str(BIN / "legato"), *args], log, env)

    def start_ray(self, name: str) -> tuple[str, int]:
        """A one-node Ray cluster in a temp dir of its own: its GCS address and session."""
        gcs = free_port()
        # Every agent port of its own: the defaults may be held by another Ray here.
        ports = [
            f"--{p}={free_port()}"
            for p in (
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "metrics-export-port",
                "runtime-env-agent-port",
            )
        ]
        temp = self.tmp / name
        temp.mkdir()
        started = self.spawn(
            [
                str(BIN / "ray"), "start", "--head", "--port", str(gcs),
                "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                "--object-store-memory", str(200 * 1024**2),
                "--include-dashboard", "false", "--disable-usage-stats",
                "--temp-dir", str(temp), *ports,
            ],
            f"{name}.log",
        )  # fmt: skip
        status = started.finish(time.monotonic() + START_BOUND_S)
        if status != 0:
            raise RuntimeError(f"ray start ({name}) exit {status}: {started.output()[-1500:]}")
        return f"127.0.0.1:{gcs}", started.proc.pid

    def serve_venues(self, venues: Mapping[str, SimVenue]) -> Path:
        """`legato venues up` on the venues (running once each answers a ping); the
        configuration that reaches them as real venues are reached."""
        sims = self.write("sims.toml", "".join(v.sim_toml() for v in venues.values()))
        up = self.legato("venues", "up", str(sims), log="venues.log")
        deadline = time.monotonic() + START_BOUND_S
        for v in venues.values():
            while not _answers(f"{v.url}/fapi/v1/ping"):
                if up.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"legato venues up: {v.name} not up: {up.output()[-1500:]}")
                time.sleep(POLL_S)  # polling the venue, bounded
        for v in venues.values():
            self.env[v.key_env], self.env[v.secret_env] = v.api_key, v.secret
        return self.write("remote.toml", "".join(v.remote_toml() for v in venues.values()))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


# -- judging ----------------------------------------------------------------------------------
def judge_batch(
    case: Case,
    runs: list[Run],
    journal: Path,
    venues: Mapping[str, SimVenue],
    before: dict[tuple[str, str], Decimal],
    judge: Judge,
) -> None:
    """Audit the batch's runs, hold each to `judge`, and the batch as a whole to the
    venues' change of position (the net of the journal's fills, and of its booked trades)."""
    ids = [r.run_id for r in runs if r.run_id]
    try:
        audits, reported = audit(journal, venues, ids) if ids else ({}, {})
        after = venue_positions(venues)
    except Exception as e:
        case.failures.append(f"batch of {ids}: the audit failed: {type(e).__name__}: {e}")
        case.runs += runs
        return
    case.audits.update(audits)
    gaps, trade_gaps, _ = batch_gaps(
        [audits[i] for i in ids], before, after, {}, {}, (), count_orders=False
    )
    case.batch_problems += gaps
    case.trade_gaps += trade_gaps
    for run in runs:
        a = audits.get(run.run_id)
        if a is None:
            run.failures.append(run.error or "never submitted")
            continue
        run.audit = a.summary()
        run.failures += judge(run, a)
        if reported.get(run.run_id) != 1:
            run.failures.append(f"the journal has {reported.get(run.run_id)} reports of it, not 1")
        if case.trade_level and a.trades_missing:
            run.failures.append(f"venue trades not booked: {a.trades_missing}")
    case.runs += runs


def progress(case: Case, t0: float) -> None:
    failing = sum(1 for r in case.runs if r.failures)
    print(
        f"  {case.name}: {len(case.runs)}/{case.wanted} runs, {failing} failing, "
        f"{time.monotonic() - t0:.0f} s",
        flush=True,
    )


def spread(values: list[float]) -> str:
    if not values:
        return "none timed"
    return f"median {statistics.median(values):.0f} s, max {max(values):.0f} s"


# -- 7. the driver SIGKILLed ------------------------------------------------------------------
DRIVERS = ("legato run", "driver script")
ORPHAN_HORIZON_S = 8.0


def trial_driver_kill(settings: Settings) -> list[Case]:
    rng = random.Random(settings.seed + 70)
    case = Case("7", "SIGKILL the driver", "", count(settings, 10), bound(settings, 900))
    case.trade_level = True  # the basket itself was never touched: every fill is booked
    per_batch = min(2, settings.per_batch)
    t0 = time.monotonic()
    deadline = t0 + case.bound_s

    def judge(run: Run, a: RunAudit) -> list[str]:
        return invariants(run, a) + all_reconciled(run, a)

    try:
        with Site("lgf7") as site:
            venues = sim_venues()
            remote = site.serve_venues(venues)
            gcs, _ = site.start_ray("ray")
            script = site.write("driver.py", DRIVER_SCRIPT)
            journal = Path(site.env["LEGATO_JOURNAL"])
            # The drivers of a batch start at the same moment: their engines race for the
            # venue actors' names, and each engine's start recovers unfinished runs while
            # the other's submission is under way (runs it must leave to their driver).

            def orphan(job: tuple[int, random.Random]) -> Run:
                n, run_rng = job
                run = Run(case.trial, case.label, f"f7-{n}", "complete")
                driver = DRIVERS[n % len(DRIVERS)]
                spec = site.write(
                    f"{run.basket_id}.toml", pair(run.basket_id, run.policy, ORPHAN_HORIZON_S)
                )
                if driver == "legato run":
                    args = [str(BIN / "legato"), "run", str(spec), "--venues", str(remote)]
                    args += ["--address", gcs, "--every", "1"]
                else:
                    args = [sys.executable, str(script), str(spec), str(remote), gcs]
                _orphan(site, run, driver, args, gcs, journal, run_rng)
                return run

            made, longest = 0, 0.0
            most = case.wanted + (case.wanted + 1) // 2  # runs that ended first are made up
            while case.faulted() < case.wanted and made < most:
                if time.monotonic() + longest > deadline:
                    case.cut_short = (
                        f"stopped by its wall-time bound of {case.bound_s:g} s after "
                        f"{case.faulted()} of {case.wanted} runs"
                    )
                    break
                b0 = time.monotonic()
                k = min(per_batch, case.wanted - case.faulted(), most - made)
                before = venue_positions(venues)
                jobs = [(n, random.Random(rng.random())) for n in range(made, made + k)]
                with ThreadPoolExecutor(max_workers=k) as pool:
                    runs = list(pool.map(orphan, jobs))
                made += k
                judge_batch(case, runs, journal, venues, before, judge)
                longest = max(longest, time.monotonic() - b0)
                progress(case, t0)
    except Exception as e:
        case.failures.append(f"the trial could not go on: {type(e).__name__}: {e}")
    case.wall_s = time.monotonic() - t0
    _figure_orphans(case)
    return [case]


def _orphan(
    site: Site,
    run: Run,
    driver: str,
    args: list[str],
    gcs: str,
    journal: Path,
    rng: random.Random,
) -> None:
    """One run of trial 7: the driver started, SIGKILLed with its process group once its
    basket runs, and the report got with `legato attach`."""
    run.measured["driver"] = driver
    t0 = time.monotonic()
    deadline = t0 + ORPHAN_BOUND_S
    try:
        proc = site.spawn(args, f"{run.basket_id}-driver.log")
        run.run_id = proc.run_id(deadline)
        run.measured["submitted_s"] = round(time.monotonic() - t0, 1)
        state = wait_running(journal, run.run_id, deadline)
        if state is None:
            run.error = f"not RUNNING in the journal within {ORPHAN_BOUND_S:g} s"
            return
        at = rng.uniform(0.0, 0.5 * ORPHAN_HORIZON_S)
        time.sleep(at)  # the kill's moment, drawn
        state = journal_state(journal, run.run_id)
        if state is None or state.is_terminal:
            run.fault = f"{MISSED} the basket had ended ({state}) before its driver was killed"
            return
        os.killpg(proc.proc.pid, signal.SIGKILL)  # the driver and anything it started
        run.fault = f"SIGKILLed its driver ({driver}) {at:.1f} s into running"
        proc.proc.wait(timeout=30)
        report_path = site.tmp / f"{run.basket_id}-report.json"
        attached = site.legato(
            "attach", run.run_id, "--address", gcs, "--no-progress", "--json", str(report_path),
            log=f"{run.basket_id}-attach.log",
        )  # fmt: skip
        a0 = time.monotonic()
        status = attached.finish(deadline)
        run.measured["attach_s"] = round(time.monotonic() - a0, 1)
        if status is None:
            run.failures.append(f"legato attach did not end within the run's {ORPHAN_BOUND_S:g} s")
            stop_sessions([attached.proc.pid])
            return
        if status != 0 or not report_path.exists():
            tail = attached.output().strip().splitlines()[-3:]
            run.failures.append(f"legato attach exit {status}: {' | '.join(tail)}")
        if report_path.exists():
            report = load_report(report_path)
            run.status, run.reason = report.status.value, report.reason
    except Exception as e:
        run.error = f"{type(e).__name__}: {e}"
    finally:
        run.seconds = time.monotonic() - t0


def _figure_orphans(case: Case) -> None:
    by = Counter(f"{r.measured.get('driver')}→{r.status or 'none'}" for r in case.runs)
    attached = sum(1 for r in case.runs if r.status and not any("attach" in f for f in r.failures))
    attach_s = [r.measured["attach_s"] for r in case.runs if "attach_s" in r.measured]
    missed = sum(1 for r in case.runs if not applied(r))
    case.extra.update(outcomes=dict(sorted(by.items())), attach_s=attach_s, faults_missed=missed)
    case.figure = (
        f"attach got the report {attached}/{len(case.runs)} ({spread(attach_s)}); "
        + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
        + (f"; {missed} ended before the kill" if missed else "")
    )


# -- 8. the whole local engine killed, and started again --------------------------------------
POLICIES = ("unwind", "complete", "hedge_and_hold")
CRASH_HORIZON_S = 12.0


def trial_engine_kill(settings: Settings) -> list[Case]:
    rng = random.Random(settings.seed + 80)
    full_s = 10 * RUN_BOUND_S
    case = Case(
        "8", "kill the whole local engine and start again", "", count(settings, 10),
        bound(settings, full_s),
    )  # fmt: skip
    t0 = time.monotonic()
    deadline = t0 + case.bound_s

    def judge(run: Run, a: RunAudit) -> list[str]:
        return invariants(run, a) + flat_under_unwind(run, a) + all_reconciled(run, a)

    try:
        with Site("lgf8") as site:
            venues = sim_venues()
            remote = site.serve_venues(venues)
            made, longest = 0, 0.0
            most = case.wanted + (case.wanted + 1) // 2
            while case.faulted() < case.wanted and made < most:
                if time.monotonic() + longest > deadline:
                    case.cut_short = (
                        f"stopped by its wall-time bound of {case.bound_s:g} s after "
                        f"{case.faulted()} of {case.wanted} runs"
                    )
                    break
                r0 = time.monotonic()
                run = Run(case.trial, case.label, f"f8-{made}", POLICIES[made % len(POLICIES)])
                journal = site.tmp / f"journal-{made}"
                made += 1
                before = venue_positions(venues)
                _crash_and_recover(site, run, remote, venues, journal, before, rng)
                judge_batch(case, [run], journal, venues, before, judge)
                longest = max(longest, time.monotonic() - r0)
                progress(case, t0)
    except Exception as e:
        case.failures.append(f"the trial could not go on: {type(e).__name__}: {e}")
    case.wall_s = time.monotonic() - t0
    _figure_recoveries(case)
    return [case]


def _crash_and_recover(
    site: Site,
    run: Run,
    remote: Path,
    venues: Mapping[str, SimVenue],
    journal: Path,
    before: dict[tuple[str, str], Decimal],
    rng: random.Random,
) -> None:
    """One run of trial 8: a fresh cluster and a driver; once fills are at the venues,
    every process of both SIGKILLed; a second fresh cluster and `legato recover`."""
    t0 = time.monotonic()
    deadline = t0 + RUN_BOUND_S
    env = {"LEGATO_JOURNAL": str(journal)}
    n = run.basket_id.rpartition("-")[2]
    try:
        gcs, first = site.start_ray(f"r{n}a")
        spec = site.write(f"{run.basket_id}.toml", pair(run.basket_id, run.policy, CRASH_HORIZON_S))
        driver = site.legato(
            "run", str(spec), "--venues", str(remote), "--address", gcs, "--every", "1",
            log=f"{run.basket_id}-driver.log", env=env,
        )  # fmt: skip
        run.run_id = driver.run_id(deadline)
        state = wait_running(journal, run.run_id, min(deadline, time.monotonic() + RUNNING_BOUND_S))
        if state is None:
            run.error = "not RUNNING in the journal in time"
            stop_sessions([first, driver.proc.pid])
            return
        running = time.monotonic()
        filled = _first_fill(venues, before, min(deadline, running + FILL_BOUND_S))
        time.sleep(rng.uniform(0.0, 4.0))  # the kill's moment, drawn: fills in, legs open
        state = journal_state(journal, run.run_id)
        if state is None or state.is_terminal:
            run.fault = f"{MISSED} the basket had ended ({state}) before the engine was killed"
            stop_sessions([first, driver.proc.pid])
            return
        if not filled:
            run.error = f"running, yet no fill at the venues within {FILL_BOUND_S:g} s"
            stop_sessions([first, driver.proc.pid])
            return
        at = time.monotonic() - running
        left = stop_sessions([first, driver.proc.pid], (signal.SIGKILL,))
        if left:
            run.failures.append(f"processes of the killed engine still alive: {left}")
        run.fault = f"every Ray process and the driver SIGKILLed {at:.1f} s into running"
        moved = {
            f"{v}/{s}": f"{q - before.get((v, s), D(0)):+f}"
            for (v, s), q in venue_positions(venues).items()
            if q != before.get((v, s), D(0))
        }
        run.measured.update(killed_at_s=round(at, 1), held_at_kill=moved)
        second_gcs, second = site.start_ray(f"r{n}b")
        r0 = time.monotonic()
        recover = site.legato(
            "recover", "--venues", str(remote), "--address", second_gcs,
            log=f"{run.basket_id}-recover.log", env=env,
        )  # fmt: skip
        status = recover.finish(deadline)
        run.measured["recover_s"] = round(time.monotonic() - r0, 1)
        if status is None:
            run.failures.append(f"legato recover did not end within the run's {RUN_BOUND_S:g} s")
        else:
            _read_recovery(run, status, recover.output())
        stop_sessions([second, recover.proc.pid])
    except Exception as e:
        run.error = f"{type(e).__name__}: {e}"
    finally:
        run.seconds = time.monotonic() - t0


def _first_fill(
    venues: Mapping[str, SimVenue], before: dict[tuple[str, str], Decimal], deadline: float
) -> bool:
    """Wait until a position at the venues has moved from `before` (a fill is there)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            held = venue_positions(venues)
            if any(q != before.get(k, D(0)) for k, q in held.items()):
                return True
        time.sleep(POLL_S)  # polling the venues' positions, bounded
    return False


def _read_recovery(run: Run, status: int, output: str) -> None:
    """What `legato recover` said: it names the run and the state it ended in, and exits
    as documented (0 only if every run it carried on completed)."""
    said = re.search(rf"^{re.escape(run.run_id)}: ([A-Z_]+): (.*)$", output, re.MULTILINE)
    if said is None:
        tail = " | ".join(output.strip().splitlines()[-3:])
        run.failures.append(f"legato recover (exit {status}) did not name the run: {tail}")
        return
    run.status, run.reason = said.group(1), said.group(2)
    expected = 0 if run.status == S.COMPLETED.value else 1
    if status != expected:
        run.failures.append(f"legato recover exit {status} for a run that ended {run.status}")
    if "Traceback" in output:
        run.failures.append("legato recover printed a traceback")


def _figure_recoveries(case: Case) -> None:
    by = Counter(f"{r.policy}→{r.status or 'none'}" for r in case.runs)
    named = sum(1 for r in case.runs if r.status)
    unwinds = [r for r in case.runs if r.policy == "unwind" and r.run_id in case.audits]
    flat = sum(1 for r in unwinds if not case.audits[r.run_id].open_legs())
    recover_s = [r.measured["recover_s"] for r in case.runs if "recover_s" in r.measured]
    missed = sum(1 for r in case.runs if not applied(r))
    case.extra.update(outcomes=dict(sorted(by.items())), recover_s=recover_s, faults_missed=missed)
    case.figure = (
        f"recover named the run {named}/{len(case.runs)} ({spread(recover_s)}); "
        f"unwind flat {flat}/{len(unwinds)}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
        + (f"; {missed} ended before the kill" if missed else "")
    )
