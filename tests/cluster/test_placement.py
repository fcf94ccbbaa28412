"""Placement on a multi-node cluster: each venue actor and each leg actor runs on a node labelled
with its venue, and a venue no node is labelled for stops `Engine.start` at once (DESIGN §4, §9).

A `ray.cluster_utils.Cluster` cannot share a process with the session's local Ray (conftest), so
the cluster lives in a child Python process, which writes what it saw as JSON for the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec
import pytest

from actors.lifecycle import BasketState
from actors.protocol import Placement
from actors.report import BasketReport
from tests.cluster.test_baskets import BETA
from tests.cluster.test_baskets import VENUES as BASKET_VENUES

# The child's whole life: a head node and one labelled 1-CPU node per venue, Ray started and
# stopped, a basket run. Normally ~25 s on 2 cores.
CHILD_TIMEOUT_S = 150
UNLABELLED_WITHIN_S = 10.0
ROOT = Path(__file__).resolve().parents[2]

VENUE_NAMES = ("alpha", "beta", "gamma")

# The three venues of test_baskets, each with its own node here.
VENUES = BASKET_VENUES.format(beta_profile=BETA, gamma_rejects=0.0, gamma_usdt=500_000)

# The same venues and one more that no node of the child's cluster is labelled for.
UNLABELLED = (
    VENUES
    + """
[venues.delta]
kind = "sim"
market = { source = "synthetic", seed = 7 }
instruments = ["BTCUSDT"]
profile = "same_region"
[[venues.delta.accounts]]
account_id = "desk"
api_key = "test-delta-key"
secret = "test-delta-secret"
balances = { USDT = 500_000 }
leverage = 3
"""
)

# One leg per venue, small and short.
BASKET = """
kind = "basket"
basket_id = "placement"
policy = "unwind"
[params]
horizon_s = 2
max_slippage_bps = 25
participation_cap = 1.0
band = 0.05
slice_s = 0.5
grace_s = 10
[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 9000
[[legs]]
leg_id = "steth"
venue = "beta"
symbol = "STETHUSDT"
side = "BUY"
notional_usd = 1000
max_slippage_bps = 40
[[legs]]
leg_id = "btc"
venue = "gamma"
symbol = "BTCUSDT"
side = "SELL"
notional_usd = 10400
"""

CHILD = """
import sys
import time
import traceback
from pathlib import Path

import msgspec
import ray
from ray.cluster_utils import Cluster

from cluster.engine import Engine

here, venues = Path(sys.argv[1]), sys.argv[2:]
out = {"errors": []}
t0 = time.monotonic()


def step(what):
    print(f"[{time.monotonic() - t0:5.1f} s] {what}", flush=True)


cluster = None
try:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for venue in venues:
        cluster.add_node(num_cpus=1, labels={"venue": venue}, wait=False)
    cluster.wait_for_nodes(timeout=60)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    step("cluster up")

    started = time.monotonic()
    try:
        Engine.start(here / "unlabelled.toml").shutdown()
    except Exception as e:
        out["unlabelled_error"] = f"{type(e).__name__}: {e}"
    out["unlabelled_s"] = time.monotonic() - started
    step(f"unlabelled venue: {out.get('unlabelled_error', 'accepted')}")

    engine = Engine.start(here / "venues.toml")
    try:
        step("engine up")
        out["venues"] = {v: e.placement for v, e in engine.endpoints.items()}
        out["report"] = engine.submit(here / "basket.toml").result(timeout=60)
        step("basket done")
    finally:
        engine.shutdown()
except BaseException:
    out["errors"].append(traceback.format_exc())
finally:
    try:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        step("cluster down")
    finally:
        (here / "out.json").write_bytes(msgspec.json.encode(out))
"""


class ChildRun(msgspec.Struct, kw_only=True):
    """What the child process saw."""

    errors: list[str]
    venues: dict[str, Placement | None] = {}
    report: BasketReport | None = None
    unlabelled_error: str | None = None
    unlabelled_s: float | None = None
    log: str = ""  # the tail of the child's stdout and stderr, for failure messages


def _tail(text: str, chars: int = 4000) -> str:
    return text[-chars:]


def _why(run: ChildRun) -> str:
    return "\n".join([*run.errors, "--- the child's output, last part:", run.log])


@pytest.fixture(scope="module")
def child_run(tmp_path_factory: pytest.TempPathFactory) -> ChildRun:
    work = tmp_path_factory.mktemp("placement")
    (work / "venues.toml").write_text(VENUES)
    (work / "unlabelled.toml").write_text(UNLABELLED)
    (work / "basket.toml").write_text(BASKET)
    (work / "child.py").write_text(CHILD)
    # Ray's socket paths must stay short, and the child's cluster must not become the
    # "current cluster" that a bare `ray.init()` elsewhere on this machine would join.
    ray_tmp = tempfile.mkdtemp(prefix="lgt-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = ray_tmp
    # The child, and the Ray workers its nodes start, import this checkout of the project.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [sys.executable, str(work / "child.py"), str(work), *VENUE_NAMES],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = child.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the child's own session; Ray's daemons follow it
        log, _ = child.communicate()
        pytest.fail(f"the cluster child ran over {CHILD_TIMEOUT_S} s:\n{_tail(log)}")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = work / "out.json"
    if not out.exists():
        pytest.fail(f"the cluster child exited {child.returncode} without a result:\n{_tail(log)}")
    run = msgspec.json.decode(out.read_bytes(), type=ChildRun)
    return msgspec.structs.replace(run, log=_tail(log))


def test_each_leg_runs_on_its_venues_node(child_run: ChildRun) -> None:
    run = child_run
    report = run.report
    assert report is not None, _why(run)
    assert report.status is BasketState.COMPLETED, f"{report.reason}\n{_why(run)}"
    assert sorted(leg.venue for leg in report.legs) == sorted(VENUE_NAMES)
    where = {leg.venue: (leg.leg_id, leg.node_id, leg.node_labels) for leg in report.legs}
    for venue, (leg_id, node_id, labels) in where.items():
        assert node_id, f"leg {leg_id} reported no node"
        assert labels.get("venue") == venue, f"leg {leg_id} on {venue} ran on {labels}: {where}"
    assert len({node_id for _, node_id, _ in where.values()}) == len(VENUE_NAMES), where


def test_each_venue_actor_runs_on_its_venues_node(child_run: ChildRun) -> None:
    run = child_run
    assert sorted(run.venues) == sorted(VENUE_NAMES), _why(run)
    for venue, placement in run.venues.items():
        assert placement is not None, f"venue {venue} reported no placement"
        assert placement.node_labels.get("venue") == venue, f"{venue}: {placement}"
    assert len({p.node_id for p in run.venues.values() if p}) == len(VENUE_NAMES), run.venues


def test_a_venue_no_node_is_labelled_for_fails_start_at_once(child_run: ChildRun) -> None:
    run = child_run
    error = run.unlabelled_error
    assert error is not None, "Engine.start took a venue no node is labelled for\n" + _why(run)
    assert error.startswith("EngineError: "), error
    assert "delta" in error, error
    assert "venue=delta" in error, error
    assert run.unlabelled_s is not None
    assert run.unlabelled_s < UNLABELLED_WITHIN_S, error
