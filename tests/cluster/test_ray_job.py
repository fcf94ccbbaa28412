"""A basket submitted as a Ray job to a real multi-process cluster on this machine.

`ray start --head` and two `ray start --address` workers, each labelled with a venue, token
authentication on, all on 127.0.0.1 in their own temp dir; then `ray job submit --working-dir
. -- legato run …`, as docs/deploy.md tells a user to. The Ray processes are started in their
own sessions and stopped by those sessions' pids, never with `ray stop` (which would stop
every Ray on the machine, this test session's included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.lifecycle import BasketState
from actors.report import load_report
from bench.sessions import free_port, stop_sessions

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VENUES = ("alpha", "beta", "gamma")


class RayCluster:
    def __init__(self, env: dict[str, str], dashboard: str, gcs: str, tmp: Path) -> None:
        self.env = env
        self.dashboard = dashboard
        self.gcs = gcs
        self.tmp = tmp

    def legato(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "legato"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="lgj", dir="/tmp"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {
        "RAY_TMPDIR": str(tmp),
        "RAY_AUTH_MODE": "token",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    gcs, dash = free_port(), free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    commands = [
        [
            "--head",
            "--port",
            str(gcs),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dash),
            "--labels",
            f"venue={VENUES[0]}",
        ],
        *(["--address", f"127.0.0.1:{gcs}", "--labels", f"venue={v}"] for v in VENUES[1:]),
    ]
    sids: list[int] = []
    try:
        for args in commands:
            # Every agent port of its own: the defaults (52365, …) may be held by another Ray
            # on this machine, such as this test session's, and an agent that cannot bind
            # leaves the job server with nobody to run jobs.
            ports = [
                f"--{name}={free_port()}"
                for name in (
                    "dashboard-agent-listen-port",
                    "dashboard-agent-grpc-port",
                    "metrics-export-port",
                    "runtime-env-agent-port",
                )
            ]
            proc = subprocess.Popen(
                [str(BIN / "ray"), "start", *args, *common, *ports],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            sids.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"ray start {' '.join(args)} failed:\n{out[-3000:]}"
        yield RayCluster(env, f"http://127.0.0.1:{dash}", f"127.0.0.1:{gcs}", tmp)
    finally:
        stop_sessions(sids)
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_basket_submitted_as_a_ray_job_completes_with_legs_on_their_venue_nodes(
    ray_cluster: RayCluster,
) -> None:
    report_path = ray_cluster.tmp / "report.json"
    submit = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        ray_cluster.dashboard,
        "--working-dir",
        str(ROOT),
        "--",
        "legato",
        "run",
        "examples/synthetic_eth_quick.toml",
        "--json",
        str(report_path),
        "--every",
        "2",
    ]
    # The job server answers before its agent is up on a busy machine: until then it
    # refuses submissions (nothing is created), so asking again is safe. Bounded.
    deadline = time.monotonic() + 90
    while True:
        done = subprocess.run(
            submit,
            env=ray_cluster.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        log = done.stdout + done.stderr
        if "No available agent to submit job" not in log or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # between bounded retries of a refused submission
    assert done.returncode == 0, f"the job failed:\n{log[-4000:]}"
    assert "synth-eth-quick RUNNING" in log  # progress lines in the job's log
    assert "basket synth-eth-quick: COMPLETED" in log
    report = load_report(report_path)
    assert report.status is BasketState.COMPLETED
    assert {leg.venue for leg in report.legs} == set(VENUES)
    for leg in report.legs:
        assert leg.node_labels.get("venue") == leg.venue, (leg.leg_id, leg.node_labels)
        assert leg.reconciled
    assert len({leg.node_id for leg in report.legs}) == 3
    # The simulated venues ran on their labelled nodes too, each next to its legs.
    for venue, node in report.venue_nodes.items():
        assert node.get("venue") == venue, (venue, node)
    assert {leg.node_id for leg in report.legs} == {
        report.venue_nodes[leg.venue]["node_id"] for leg in report.legs
    }


def test_status_and_cancel_reach_the_cluster(ray_cluster: RayCluster) -> None:
    done = ray_cluster.legato("status", "--address", ray_cluster.gcs)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no basket running" in done.stdout
    done = ray_cluster.legato("cancel", "nope", "--address", ray_cluster.gcs)
    assert done.returncode == 2
    assert "no basket 'nope' is running" in done.stderr
    assert "Traceback" not in done.stderr
