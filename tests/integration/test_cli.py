"""The `legato` command: help everywhere, results on success, one clear line on a mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def legato(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("demo",),
        ("run",),
        ("status",),
        ("cancel",),
        ("venues",),
        ("venues", "simulate"),
        ("venues", "up"),
    ],
)
def test_every_command_has_help(args: tuple[str, ...]) -> None:
    done = legato(*args, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: legato" in done.stdout


def test_simulate_prints_measurements_beside_targets(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    done = legato("venues", "simulate", "--seconds", "20", "--seed", "3", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "BTCUSDT" in done.stdout and "realised vol" in done.stdout
    assert "correlation of 1 s returns" in done.stdout
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("venues", "simulate", "--seconds", "-5"), "must be positive"),
        (("venues", "simulate", "--seconds", "lots"), "expected a number"),
        (("venues", "simulate", "--replay", "/no/such/dir"), "is not a directory"),
        (("venues", "up", "/no/such/venues.toml"), "no such venues configuration file"),
        (("run", "/no/such/basket.toml"), "cannot read /no/such/basket.toml"),
        (("run", "examples/pair_cross_venue.toml", "--venues", "/no/such/v.toml"), "no such"),
        (("run", "examples/venues.toml"), "invalid basket"),  # a venues file is no basket
        (("status", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("cancel", "b1", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("status", "--address", "nowhere"), "not a Ray cluster address"),
        (("run", "examples/pair_cross_venue.toml", "--address", "127.0.0.1:1"), "nothing answers"),
    ],
)
def test_mistakes_give_one_line_and_no_traceback(args: tuple[str, ...], message: str) -> None:
    done = legato(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
