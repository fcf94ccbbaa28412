"""What the commands print through rich: plain lines off a terminal, colour and a live block on
one; `legato backtest`'s exit status; the exit statuses every command's help states."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from actors.backtest import METRICS, results_table
from cluster import present, render
from cluster.cli import EXIT_STATUSES, build_parser, main
from cluster.journal_cli import history_text
from tests.unit.test_render import completed_report, status

ROOT = Path(__file__).resolve().parents[2]
ESC = "\x1b["


def test_the_summary_is_plain_text_with_its_tables_aligned() -> None:
    text = render.summary(completed_report())
    assert ESC not in text
    assert not any(c in text for c in "┏┃━│─┌")  # no box drawing: grep reads every line
    legs = [line for line in text.splitlines() if line.startswith(("  eth ", "  steth ", "  btc "))]
    assert len(legs) >= 3
    assert all(line == line.rstrip() for line in text.splitlines())


def test_a_table_cell_is_shown_as_it_is_never_as_markup() -> None:
    table = render.Table(("a", "b"), [("[bold]x[/bold]", "1"), ("y", "22")], right=frozenset({1}))
    assert render.text_table(table) == [
        "  a                b",
        "  [bold]x[/bold]   1",
        "  y               22",
    ]


def test_the_backtest_table_is_markdown_without_escape_codes() -> None:
    figures = {"mean": 1.5, "p95": 2.0}
    doc = {
        "modes": {
            "coordinated": {**{k: figures for k in METRICS}, "completed": 2, "runs": 3,
                            "failures": ["leg btc rejected"]},
            "sequential": {**{k: {"mean": None} for k in METRICS}, "completed": 3, "runs": 3},
        }
    }  # fmt: skip
    text = results_table(doc)
    lines = text.splitlines()
    assert lines[0].startswith("| mode ") and "| completed |" in lines[0]
    assert set(lines[1]) <= {"|", "-", ":"}
    assert lines[2].startswith("| coordinated |") and "1.50 / 2.00" in lines[2]
    assert lines[2].rstrip().endswith("2/3 |") and lines[3].rstrip().endswith("3/3 |")
    assert len({len(line) for line in lines[:4]}) == 1  # the columns line up
    assert "coordinated: leg btc rejected" in text and ESC not in text


def test_history_is_a_plain_table() -> None:
    row = msgspec.json.decode(
        msgspec.json.encode(
            {
                "run_id": "b#1", "basket_id": "b", "number": 1, "state": "COMPLETED",
                "finished": True, "created": "2024-01-01T00:00:00.000Z",
                "updated": "2024-01-01T00:01:00.000Z", "created_ns": 0, "updated_ns": 1,
                "legs": 3, "fills": 12, "filled_notional": "1234.5",
            }
        ),
        type=present.RunRow,
    )  # fmt: skip
    lines = history_text([row]).splitlines()
    assert lines[0].split()[:2] == ["run", "state"]
    assert lines[1].split()[:2] == ["b#1", "COMPLETED"] and lines[1].endswith("1,234.50")
    assert ESC not in "\n".join(lines)


def test_the_live_block_has_colour_on_a_terminal_and_the_same_figures_without() -> None:
    s = status({"eth": 0.60, "steth": 0.50, "btc": 0.49})

    def draw(terminal: bool) -> str:
        out = io.StringIO()
        console = Console(
            file=out,
            width=120,
            force_terminal=terminal,
            color_system="standard" if terminal else None,
        )
        console.print(present.status_view(s))
        return out.getvalue()

    coloured, plain = draw(True), draw(False)
    assert ESC in coloured and ESC not in plain
    lines = plain.splitlines()
    assert lines[0].split()[:2] == ["b-live", "RUNNING"] and "OUTSIDE THE BAND" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["eth", "steth", "btc"]
    assert "|" in lines[2] and "50.0%" in lines[2]  # the schedule's mark where steth lags


def test_status_json_encodes_the_baskets_and_the_runs() -> None:
    view = present.StatusView(
        namespace="legato",
        running=[status({"eth": 0.5})],
        queued=[],
        admission={"arming": [], "running": ["b-live"], "waiting": []},
        recent=[],
        journal="/tmp/j",
    )
    doc = msgspec.json.decode(msgspec.json.encode(view))
    assert doc["running"][0]["basket_id"] == "b-live"
    assert doc["running"][0]["legs"][0]["leg_id"] == "eth"
    assert set(doc) == {
        "namespace", "running", "queued", "admission", "recent", "journal", "journal_error"
    }  # fmt: skip


def test_every_commands_help_states_the_exit_statuses() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():  # type: ignore[union-attr]
        if name in ("history", "show", "web"):
            continue  # registered by their own modules
        assert (cmd.description or "").endswith(EXIT_STATUSES), name


def test_backtest_exits_1_naming_the_seeds_and_modes_that_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = ROOT / "tests" / "data" / "broken" / "unfundable.toml"
    rc = main(
        ["backtest", str(broken), "--seeds", "2", "--compare", "coordinated,sequential", "--quiet"]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "4 run(s) did not complete:" in out
    for seed in (0, 1):
        for mode in ("coordinated", "sequential"):
            assert f"seed {seed} {mode}: FAILED: " in out


def test_backtest_exits_0_when_every_run_completes(capsys: pytest.CaptureFixture[str]) -> None:
    basket = ROOT / "examples" / "synthetic_eth_quick.toml"
    assert main(["backtest", str(basket), "--seeds", "1", "--compare", "coordinated"]) == 0
    assert "did not complete" not in capsys.readouterr().out
