"""Baskets outlive what runs them (DESIGN §9), on Ray clusters of this test's own.

- A driver (`legato run`) SIGKILLed mid-basket: the basket runs on under the cluster's
  supervisor, and `legato attach` gets its report.
- The whole engine killed mid-basket (every Ray process), the venues running on outside it
  (`legato venues up`, reached over the Binance API as real venues are): `legato recover`
  on a fresh cluster takes the run over from the journal, finds its orders at the venues
  by their client order ids and unwinds it (policy `unwind`); the venues' own records,
  read with a client of their API, say every leg is back to flat and no id was used twice.

The Ray processes are started in sessions of their own and stopped by those sessions'
pids (never `ray stop`); the venues' process likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from actors.journal import JournaledOrder, SqliteJournal
from actors.journal.records import BasketReported, ChildOrderSent
from actors.lifecycle import BasketState
from actors.report import load_report
from bench.sessions import free_port, stop_sessions
from tests.cluster.test_ray_job import BIN, ROOT
from venues.binance.client import BinanceUsdmClient

D = Decimal
KEYS = {
    "alpha": ("SURV_ALPHA_KEY", "surv-alpha-key", "SURV_ALPHA_SECRET", "surv-alpha-secret"),
    "gamma": ("SURV_GAMMA_KEY", "surv-gamma-key", "SURV_GAMMA_SECRET", "surv-gamma-secret"),
}

SIM_VENUES = """
[venues.alpha]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = ["BTCUSDT", "ETHUSDT"]
port = {alpha_port}
profile = {{ preset = "colo", ack = "RESULT", client_id_reuse = "after_close" }}
[[venues.alpha.accounts]]
account_id = "desk"
api_key = "surv-alpha-key"
secret = "surv-alpha-secret"
balances = {{ USDT = 2_000_000 }}
leverage = 10

[venues.gamma]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = ["BTCUSDT", "ETHUSDT"]
port = {gamma_port}
profile = {{ preset = "same_region", ack = "RESULT", client_id_reuse = "after_close" }}
[[venues.gamma.accounts]]
account_id = "desk"
api_key = "surv-gamma-key"
secret = "surv-gamma-secret"
balances = {{ USDT = 2_000_000 }}
leverage = 10
"""

# The same venues, as an engine reaches real ones: over their API, keys from the environment.
REMOTE_VENUES = """
[venues.alpha]
kind = "binance_usdm"
api_key_env = "SURV_ALPHA_KEY"
secret_env = "SURV_ALPHA_SECRET"
rest_url = "http://127.0.0.1:{alpha_port}"
ws_url = "ws://127.0.0.1:{alpha_port}"
ack = "RESULT"

[venues.gamma]
kind = "binance_usdm"
api_key_env = "SURV_GAMMA_KEY"
secret_env = "SURV_GAMMA_SECRET"
rest_url = "http://127.0.0.1:{gamma_port}"
ws_url = "ws://127.0.0.1:{gamma_port}"
ack = "RESULT"
"""

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


class Place:
    """A directory, an environment and the processes one test started (stopped by pid)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lgs", dir="/tmp"))  # short: Ray's sockets
        self.journal = self.tmp / "journal"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env |= {
            "RAY_AUTH_MODE": "token",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "LEGATO_JOURNAL": str(self.journal),
        }
        for var, value, secret_var, secret in KEYS.values():
            env[var], env[secret_var] = value, secret
        self.env = env
        self.sessions: list[int] = []
        self.gcs = ""

    def start_ray(self, name: str) -> str:
        """A one-node Ray cluster in a temp dir of its own; its GCS address."""
        gcs = free_port()
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
        proc = subprocess.Popen(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--port",
                str(gcs),
                "--node-ip-address",
                "127.0.0.1",
                "--num-cpus",
                "2",
                "--include-dashboard",
                "false",
                "--disable-usage-stats",
                "--temp-dir",
                str(temp),
                *ports,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"ray start failed:\n{out[-3000:]}"
        self.gcs = f"127.0.0.1:{gcs}"
        return self.gcs

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [str(BIN / "legato"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.sessions.append(proc.pid)
        return proc

    def legato(self, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "legato"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path


@pytest.fixture
def place(monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    p = Place()
    for var, value, secret_var, secret in KEYS.values():  # for this process's own clients
        monkeypatch.setenv(var, value)
        monkeypatch.setenv(secret_var, secret)
    try:
        yield p
    finally:
        stop_sessions(p.sessions)
        import shutil  # noqa: PLC0415

        shutil.rmtree(p.tmp, ignore_errors=True)


def read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> list[str]:
    """The process's output lines up to the first holding `marker` (bounded in time). Read
    from its pipe's descriptor, unbuffered: a buffered reader would hold lines that
    `select` no longer sees."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    text = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        text += chunk.decode(errors="replace")
        if marker in text:
            upto = text[: text.index(marker)]
            return [*upto.splitlines(), marker]
    raise AssertionError(f"no {marker!r} within {timeout_s} s; output:\n{text}")


def run_id_of(lines: list[str]) -> str:
    for line in lines:
        if line.startswith("legato: run "):
            return line.split()[2]
    raise AssertionError("no run id printed:\n" + "\n".join(lines))


def journal_records(place: Place, run_id: str) -> tuple[object, list[object]]:
    async def go() -> tuple[object, list[object]]:
        store = SqliteJournal(place.journal)
        await store.open()
        try:
            return await store.run(run_id), [e.record for e in await store.records(run_id)]
        finally:
            await store.close()

    return asyncio.run(go())


def journal_orders(place: Place, run_id: str) -> list[JournaledOrder]:
    async def go() -> list[JournaledOrder]:
        store = SqliteJournal(place.journal)
        await store.open()
        try:
            return await store.orders(run_id)
        finally:
            await store.close()

    return asyncio.run(go())


def test_a_killed_driver_leaves_its_basket_running_and_attach_gets_the_report(
    place: Place,
) -> None:
    from tests.cluster.test_baskets import BETA, VENUES  # noqa: PLC0415

    gcs = place.start_ray("ray")
    venues = place.write(
        "venues.toml", VENUES.format(beta_profile=BETA, gamma_rejects=0.0, gamma_usdt=500_000)
    )
    basket = place.write(
        "basket.toml", PAIR.format(basket_id="t-orphan", policy="complete", horizon_s=8)
    )
    driver = place.spawn(
        "run", str(basket), "--venues", str(venues), "--address", gcs, "--every", "1"
    )
    lines = read_until(driver, "t-orphan RUNNING", timeout_s=120)
    run_id = run_id_of(lines)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and anything it started
    driver.wait(timeout=30)

    report_path = place.tmp / "report.json"
    attached = place.legato(
        "attach", run_id, "--address", gcs, "--no-progress", "--json", str(report_path)
    )
    assert attached.returncode == 0, attached.stdout + attached.stderr
    report = load_report(report_path)
    assert report.status is BasketState.COMPLETED, report.reason
    info, records = journal_records(place, run_id)
    assert info.state is BasketState.COMPLETED  # type: ignore[attr-defined]
    assert sum(isinstance(r, BasketReported) for r in records) == 1


def test_an_engine_killed_mid_basket_is_recovered_from_the_journal_and_unwound(
    place: Place,
) -> None:
    ports = {"alpha_port": free_port(), "gamma_port": free_port()}
    sims = place.write("sims.toml", SIM_VENUES.format(**ports))
    remote = place.write("remote.toml", REMOTE_VENUES.format(**ports))
    basket = place.write(
        "basket.toml", PAIR.format(basket_id="t-phoenix", policy="unwind", horizon_s=12)
    )
    up = place.spawn("venues", "up", str(sims))
    read_until(up, str(ports["gamma_port"]), timeout_s=60)

    first = place.start_ray("ray1")
    driver = place.spawn(
        "run", str(basket), "--venues", str(remote), "--address", first, "--every", "1"
    )
    lines = read_until(driver, "t-phoenix RUNNING", timeout_s=120)
    run_id = run_id_of(lines)
    # Some slices in (fills at the venues themselves), the whole engine goes: every Ray
    # process, and the driver.
    assert eventually_filled(ports), "no fill reached the venues"
    ray_sessions = place.sessions[1:2]  # the first cluster's `ray start` session
    stop_sessions([*ray_sessions, driver.pid])
    held = asyncio.run(venue_positions(ports))
    assert any(q != 0 for q in held.values()), held

    second = place.start_ray("ray2")
    recovered = place.legato("recover", "--venues", str(remote), "--address", second)
    out = recovered.stdout + recovered.stderr
    assert run_id in out and "FAILED" in out, out
    info, records = journal_records(place, run_id)
    assert info.finished  # type: ignore[attr-defined]
    # The venues' own records: every leg back to flat (to a lot), no id sent twice.
    flat = asyncio.run(venue_positions(ports))
    assert all(abs(q) < D("0.01") for q in flat.values()), flat
    # Every order the venue holds for the run is journaled with the venue's own figures
    # (a take-over adopting an order writes its record again: it counts once).
    orders = journal_orders(place, run_id)
    assert orders
    at_venue = asyncio.run(venue_orders(ports, [o.order.client_order_id for o in orders]))
    for o in orders:
        venue = at_venue.get(o.order.client_order_id)
        if venue is None:
            assert o.order.filled_qty == 0, o
            continue
        assert venue.cum_filled == o.order.filled_qty, (o, venue)  # type: ignore[attr-defined]
    sent = [r.client_order_id for r in records if isinstance(r, ChildOrderSent)]
    assert set(sent) == {o.order.client_order_id for o in orders}


def _client(venue: str, port: int) -> BinanceUsdmClient:
    var, _, secret_var, _ = KEYS[venue]
    url = f"127.0.0.1:{port}"
    return BinanceUsdmClient.from_env(venue, f"http://{url}", f"ws://{url}", var, secret_var)


async def venue_positions(ports: dict[str, int]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for venue, key in (("alpha", "alpha_port"), ("gamma", "gamma_port")):
        async with _client(venue, ports[key]) as client:
            for p in await client.positions():
                out[f"{venue}/{p.symbol}"] = p.quantity
    return out


async def venue_orders(ports: dict[str, int], coids: list[str]) -> dict[str, object]:
    found: dict[str, object] = {}
    for venue, key, symbol, leg in (
        ("alpha", "alpha_port", "ETHUSDT", "-eth-"),
        ("gamma", "gamma_port", "BTCUSDT", "-btc-"),
    ):
        async with _client(venue, ports[key]) as client:
            for coid in coids:
                if leg in coid:
                    with contextlib.suppress(Exception):
                        found[coid] = await client.query(symbol, coid)
    return found


def eventually_filled(ports: dict[str, int]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        held = asyncio.run(venue_positions(ports))
        if any(q != 0 for q in held.values()):
            return True
        time.sleep(0.2)  # polling the venues' records, bounded
    return False
