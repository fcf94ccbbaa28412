"""`legato backtest --set`: the override reaches the run and is shown; a bad one is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
BASKET = ROOT / "examples" / "synthetic_eth_quick.toml"  # horizon_s = 15
SHORT = ("--seeds", "1", "--compare", "coordinated", "--quiet")


def test_backtest_runs_the_overridden_basket_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bt.json"
    code = main(
        ["backtest", str(BASKET), *SHORT, "--json", str(out), "--set", "params.horizon_s=5"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "\noverrides: params.horizon_s=5\n" in printed
    doc = json.loads(out.read_text())
    assert doc["overrides"] == ["params.horizon_s=5"]
    # The file's 15 s schedule would take over 15 s; the override's 5 s one does not.
    assert doc["modes"]["coordinated"]["completion_s"]["mean"] < 10


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("params.horizon_s", "--set params.horizon_s: expected KEY=VALUE"),
        ("legs.eht.quantity=2", "--set legs.eht.quantity=2: no item 'eht' in legs (closest: eth)"),
        ("parms.horizon_s=5", "unknown key 'parms' at the top level (closest: params)"),
    ],
)
def test_a_bad_set_is_one_line_and_exit_status_2(
    override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["backtest", str(BASKET), *SHORT, "--set", override])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("legato: error: ") and message in line
    assert "overrides:" not in captured.out and "legging risk" not in captured.out


def test_a_field_the_basket_does_not_have_is_refused_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["backtest", str(BASKET), *SHORT, "--set", "params.horizon_seconds=5"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert f"{BASKET} with --set params.horizon_seconds=5" in err
    assert "params.horizon_seconds: unknown field" in err


def test_run_refuses_a_bad_set_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    # An address where nothing answers: had the override passed, the error would be that.
    code = main(["run", str(BASKET), "--address", "127.0.0.1:1", "--set", "legs.3.side=BUY"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "legato: error: --set legs.3.side=BUY: index 3 is out of range: legs has 3 items; "
        "accepted: an index from 0 to 2 or a leg_id: eth, steth, btc\n"
    )


@pytest.mark.parametrize("command", ["run", "backtest", "demo"])
def test_every_command_that_loads_a_basket_takes_set_repeated(command: str) -> None:
    basket = [] if command == "demo" else [str(BASKET)]
    args = build_parser().parse_args(
        [command, *basket, "--set", "params.horizon_s=5", "--set", "basket_id=x"]
    )
    assert args.overrides == ["params.horizon_s=5", "basket_id=x"]
    assert build_parser().parse_args([command, *basket]).overrides is None
