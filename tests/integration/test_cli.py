"""The `legato` command: help everywhere, results on success, one clear line on a mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import render
from tests.unit.test_render import PNG_MAGIC, completed_report

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
        ("release-hedge",),
        ("validate",),
        ("backtest",),
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
        (("release-hedge", "b1", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("status", "--recent", "-1"), "must be 0 or more"),
        (("validate", "examples/venues.toml"), "invalid basket"),  # a venues file is no basket
        (("status", "--address", "nowhere"), "not a Ray cluster address"),
        (("run", "examples/pair_cross_venue.toml", "--address", "127.0.0.1:1"), "nothing answers"),
    ],
)
def test_mistakes_give_one_line_and_no_traceback(args: tuple[str, ...], message: str) -> None:
    done = legato(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _refused_before_ray(*args: str) -> tuple[list[str], str]:
    """`legato ARGS` in a fresh interpreter: its exit status and whether Ray was imported
    (printed), and what it said on stderr."""
    probe = (
        "import sys\n"
        "from cluster.cli import main\n"
        f"code = main({list(args)!r})\n"
        "print(code, 'ray' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    return done.stdout.split(), done.stderr


def test_a_basket_that_fails_its_checks_is_refused_before_ray_is_loaded(tmp_path: Path) -> None:
    """`legato run` checks the basket first: a mistake costs no Ray import (seconds)."""
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "examples" / "synthetic_eth_quick.toml").read_text() + "\nbogus = 1\n")
    out, err = _refused_before_ray("run", str(bad), "--no-progress")
    assert out == ["2", "False"], (out, err)
    assert "bogus" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("status",), "no cluster to ask"),
        (("cancel", "b1", "--address", "nowhere"), "not a Ray cluster address"),
        (("attach", "b1", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("release-hedge", "b1", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("web", "--address", "127.0.0.1:1"), "nothing answers there"),
        (("web",), "no cluster to show"),
    ],
)
def test_a_cluster_command_refuses_a_bad_address_before_ray_is_loaded(
    args: tuple[str, ...], message: str
) -> None:
    """The commands that ask a cluster check its address first: a typo costs no Ray import."""
    out, err = _refused_before_ray(*args)
    assert out == ["2", "False"], (out, err)
    assert message in err and "Traceback" not in err


def test_report_has_help_and_run_and_demo_offer_the_chart() -> None:
    done = legato("report", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: legato report" in done.stdout
    for command in ("run", "demo"):
        done = legato(command, "--help")
        assert "--png PATH" in done.stdout and "--html PATH" in done.stdout


def test_report_prints_the_summary_and_writes_png_and_html(tmp_path: Path) -> None:
    report = completed_report()
    path = tmp_path / "report.json"
    report.write(path)
    png, page = tmp_path / "chart.png", tmp_path / "report.html"
    done = legato("report", str(path), "--png", str(png), "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert render.summary(report) in done.stdout
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert "<svg" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b'{"basket_id": "b1"}', "is not a basket report: Object missing required field"),
        (b"not json", "is not a basket report: JSON is malformed"),
        (b"[1, 2]", "is not a basket report: Expected `object`, got `array`"),
    ],
)
def test_report_of_a_missing_or_foreign_file_is_one_line(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_bytes(content)
    done = legato("report", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(path) in line and message in line


BASKET = ROOT / "examples" / "synthetic_eth_quick.toml"
VENUES = ROOT / "examples" / "venues.toml"
LIVE = '\n[venues.live]\nkind = "binance_usdm"\napi_key_env = "K"\nsecret_env = "S"\n'


# Found by fuzzing the loaders: each was accepted and failed at run time, or printed a
# traceback. Now `legato run` refuses it before anything starts, in one error that names the
# field, the value and what is accepted.
@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            BASKET,
            "[params]\n",
            "[params]\nstart = 0001-01-01T00:00:00+01:00\n",  # was an OverflowError traceback
            "params.start: 0001-01-01T00:00:00+01:00 is not a start time from 1970 to 2099",
        ),
        (
            BASKET,
            "notional_usd = 9_000",
            "quantity = 1e25",  # was decimal.InvalidOperation
            "legs[0].quantity: 1E+25 is not a quantity in base units > 0 and <= 1,000,000,000,000",
        ),
        (BASKET, "notional_usd = 9_000", 'quantity = "sNaN"', "legs[0].quantity: sNaN is not"),
        (BASKET, "horizon_s = 15", "horizon_s = 1e300", "params.horizon_s: 1e+300 s is outside"),
        (BASKET, "slice_s = 0.5 ", "slice_s = 1e-10", "params.slice_s: 1e-10 s is shorter than"),
        (
            BASKET,
            "horizon_s = 15",
            "horizon_s = 200_000",
            "params.slice_s: 0.5 s cuts the 200000 s horizon into 400000 slices",
        ),
        (BASKET, "grace_s = 30", "grace_s = " + "[" * 5_000, "nested too deeply"),
        (
            VENUES,
            "reject_rate = 0.01",
            "clock_offset_ms = inf",
            "venues.gamma.profile.clock_offset_ms: inf is not accepted",
        ),
        (
            VENUES,
            "reject_rate = 0.01",
            "request = { median_ms = inf, p99_ms = inf }",
            "venues.gamma.profile.request.median_ms: inf is not accepted",
        ),
        (VENUES, "tick_ms = 100 ", "tick_ms = 1e-300 ", "engine.tick_ms: 1e-300 is not accepted"),
        (VENUES, 'namespace = "legato"', 'namespace = ""', "engine.namespace: '' is not accepted"),
        (
            VENUES,
            "[venues.alpha]\n",
            f'{LIVE}rest_url = "http://fapi.binance.com"\n[venues.alpha]\n',
            "venues.live.rest_url: 'http://fapi.binance.com' is plain http",
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_values_beyond_their_bounds_are_one_error_before_anything_starts(
    tmp_path: Path, file: Path, old: str, new: str, message: str
) -> None:
    text = file.read_text()
    assert old in text
    bad = tmp_path / file.name
    bad.write_text(text.replace(old, new, 1))
    basket, venues = (bad, VENUES) if file == BASKET else (BASKET, bad)
    # An address where nothing answers: were the file accepted, the run would fail there.
    done = legato("run", str(basket), "--venues", str(venues), "--address", "127.0.0.1:1")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"legato: error: {bad}: ")
    assert message in done.stderr
    assert "nothing answers" not in done.stderr
