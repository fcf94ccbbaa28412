"""The wheel a user installs: it carries what `legato demo` and `legato run` need, and no test
tooling among its requirements (issue 24, "an install that works outside the checkout").

The whole path, a fresh virtual environment outside the checkout that installs the wheel and
runs `legato demo`, is `make wheel-demo` (docs/operations.md); it installs Ray and its
dependencies, too long for every test run. Here the wheel is built and installed without its
dependencies into a directory outside the checkout, and run from there on this environment's
dependencies: what the wheel itself holds is what is tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "cluster" / "examples").glob("*.toml"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    (built,) = out.glob("legato-*.whl")
    yield built


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        text = z.read(meta).decode()
    return [
        line.partition(":")[2].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def test_the_wheel_carries_the_examples_and_the_web_page(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert EXAMPLES, "no example files found in cluster/examples"
    missing = [n for n in EXAMPLES if f"cluster/examples/{n}" not in names]
    assert not missing, f"examples missing from the wheel: {missing}"
    assert "cluster/web/static/index.html" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_pytest_is_required_only_by_the_dev_extra(wheel: Path) -> None:
    requires = _requirements(wheel)
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("ray") for r in runtime), runtime  # the metadata was read
    assert not [r for r in runtime if r.startswith("pytest")], runtime
    assert [r for r in requires if r.startswith("pytest") and 'extra == "dev"' in r]


def test_an_installed_wheel_runs_from_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import cluster.cli as c; print(c.__file__); print(c.DEMO_VENUES)"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(site), where  # the wheel's code, not the checkout's
    assert Path(where[1]).is_relative_to(site) and Path(where[1]).is_file(), where

    # The demo's basket on the packaged venues (their default), on simulated time: the
    # installed package finds both without a checkout.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cluster.cli",
            "backtest",
            str(Path(where[1]).with_name("synthetic_eth_quick.toml")),
            "--seeds",
            "1",
            "--compare",
            "coordinated",
            "--quiet",
        ],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "coordinated" in done.stdout
