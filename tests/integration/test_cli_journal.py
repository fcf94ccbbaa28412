"""`legato history` and `legato show` on a real SQLite journal: the runs newest first, a run's
states, report and orders as text and JSON, and one clear line (exit 2) for an unknown id, a
missing journal, a newer schema or an unreachable server, whose password never shows."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from actors.journal import SqliteJournal
from actors.journal.records import (
    BasketReported,
    BasketResolved,
    BasketStateChanged,
    BasketSubmitted,
    ChildOrderSent,
    FillBooked,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Purpose,
    Record,
)
from actors.journal.sqlite import FILENAME, MIGRATIONS
from actors.lifecycle import BasketState
from actors.report import load_report
from cluster import render
from cluster.journal_cli import add_journal_commands, default_journal_location, utc
from tests.unit.test_render import completed_report
from venues.model import (
    AckKind,
    ExecutionReport,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

D = Decimal
S = 1_000_000_000
T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123Z, every digit significant
DONE = "b-render#1"  # completed, with orders, trades and its report
OTHER = "b-other#1"  # failed before sending anything; no report
LIVE = "b-render#2"  # running: one order refused, one with an unknown outcome
PREFIX = "b-render.k3f9"  # the client order ids of basket b-render start with it
ROOT = Path(__file__).resolve().parents[2]


# -- the journal ---------------------------------------------------------------------------
def execution(
    coid: str, venue: str, symbol: str, side: Side, qty: str, price: str, **state: object
) -> ExecutionReport:
    fields: dict[str, object] = {
        "status": OrderStatus.NEW,
        "cum_filled": D(0),
        "avg_price": None,
        "cum_fee": D(0),
        "ack_kind": AckKind.RESULT,
        **state,
    }
    return ExecutionReport(
        venue=venue,
        symbol=symbol,
        client_order_id=coid,
        order_id=str(hash(coid) & 0xFFFF_FFFF),
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        quantity=D(qty),
        price=D(price),
        venue_ts_ns=T0,
        **fields,  # type: ignore[arg-type]
    )


def child(
    run_id: str, leg: str, n: int, venue: str, symbol: str, side: Side, qty: str, price: str
) -> ChildOrderSent:
    return ChildOrderSent(
        run_id=run_id,
        leg_id=leg,
        n=n,
        client_order_id=f"{PREFIX}.{run_id[-1]}.{leg}.{n}",
        venue=venue,
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=D(price),
        type=OrderType.LIMIT,
        tif=TimeInForce.IOC,
        purpose=Purpose.SLICE,
        ts_ns=T0 + 2 * S + n,
    )


def filled(
    sent: ChildOrderSent, trades: Sequence[tuple[str, str]], fee: str, ts_ns: int
) -> list[Record]:
    """The ack, a trade per (qty, price), and the final report of a fully filled order."""
    common = (sent.client_order_id, sent.venue, sent.symbol, sent.side, str(sent.qty))
    price = str(sent.price)
    notional = sum(D(q) * D(p) for q, p in trades)
    records: list[Record] = [
        OrderAcked(run_id=sent.run_id, leg_id=sent.leg_id, report=execution(*common, price),
                   ts_ns=ts_ns),
    ]  # fmt: skip
    for i, (q, p) in enumerate(trades):
        records.append(
            FillBooked(
                run_id=sent.run_id,
                leg_id=sent.leg_id,
                client_order_id=sent.client_order_id,
                venue=sent.venue,
                symbol=sent.symbol,
                trade_id=str(1000 + i),
                qty=D(q),
                price=D(p),
                fee=D(fee) / len(trades),
                fee_asset="USDT",
                liquidity=Liquidity.TAKER,
                venue_ts_ns=ts_ns + i,
                ts_ns=ts_ns + i,
            )
        )
    final = execution(
        *common,
        price,
        status=OrderStatus.FILLED,
        cum_filled=sent.qty,
        avg_price=notional / sent.qty,
        cum_fee=D(fee),
    )
    records.append(OrderReported(run_id=sent.run_id, leg_id=sent.leg_id, report=final,
                                 ts_ns=ts_ns + 10))  # fmt: skip
    return records


def states(run_id: str, start_ns: int, *moves: tuple[BasketState, str]) -> list[Record]:
    return [
        BasketStateChanged(run_id=run_id, state=state, reason=why, ts_ns=start_ns + i * S)
        for i, (state, why) in enumerate(moves, start=1)
    ]


def submitted(run_id: str, ts_ns: int) -> BasketSubmitted:
    basket_id = run_id.partition("#")[0]
    return BasketSubmitted(
        run_id=run_id,
        basket_id=basket_id,
        spec=f'basket_id = "{basket_id}"\n',
        spec_format="toml",
        venues_digest="ab" * 32,
        ts_ns=ts_ns,
        submitted_by="legato run",
        order_prefix=f"{basket_id}.k3f9",
    )


ETH = ("eth", 1, "alpha", "ETHUSDT", Side.BUY, "10", "2502.5")
BTC = ("btc", 1, "gamma", "BTCUSDT", Side.SELL, "0.75", "61990")
ETH_TRADES = [("6", "2501.0"), ("4", "2502.25")]
BTC_TRADES = [("0.75", "61990")]
NOTIONAL = D("6") * D("2501.0") + D("4") * D("2502.25") + D("0.75") * D("61990")


async def write_journal(data_dir: Path) -> None:
    store = SqliteJournal(data_dir)
    await store.open()
    try:
        assert await store.new_run("b-render", ts_ns=T0) == DONE
        assert await store.new_run("b-other", ts_ns=T0 + 30 * S) == OTHER
        assert await store.new_run("b-render", ts_ns=T0 + 60 * S) == LIVE
        eth, btc = child(DONE, *ETH), child(DONE, *BTC)
        eth_filled = filled(eth, ETH_TRADES, "5.0", T0 + 5 * S)
        await store.append(
            [
                submitted(DONE, T0),
                *states(
                    DONE,
                    T0,
                    (BasketState.CHECKING, "spec valid"),
                    (BasketState.ARMING, "collateral held"),
                    (BasketState.RUNNING, "every leg armed"),
                ),
                eth,
                btc,
                *eth_filled,
                eth_filled[1],  # its first trade booked again (stream, then a query): counts once
                *filled(btc, BTC_TRADES, "9.3", T0 + 6 * S),
                *states(
                    DONE,
                    T0 + 10 * S,
                    (BasketState.RECONCILING, "every leg filled"),
                    (BasketState.COMPLETED, "every leg filled and reconciled"),
                ),
                BasketReported(
                    run_id=DONE,
                    report=msgspec.json.encode(completed_report()).decode(),
                    ts_ns=T0 + 13 * S,
                ),
            ]
        )
        await store.append(
            [
                submitted(OTHER, T0 + 30 * S),
                *states(OTHER, T0 + 30 * S, (BasketState.FAILED, "collateral refused on gamma")),
            ]
        )
        refused, lost = child(LIVE, *ETH), child(LIVE, "eth", 2, *ETH[2:])
        await store.append(
            [
                submitted(LIVE, T0 + 60 * S),
                # A `ResolvedBasket` as JSON; `history` only counts its legs.
                BasketResolved(
                    run_id=LIVE,
                    resolved='{"basket_id": "b-render", "legs": [{"leg_id": "eth"}, {}]}',
                    ts_ns=T0 + 60 * S + 1,
                ),
                *states(
                    LIVE,
                    T0 + 60 * S,
                    (BasketState.CHECKING, "spec valid"),
                    (BasketState.ARMING, "collateral held"),
                    (BasketState.RUNNING, "every leg armed"),
                ),
                refused,
                OrderRejected(
                    run_id=LIVE,
                    leg_id="eth",
                    client_order_id=refused.client_order_id,
                    reason="INSUFFICIENT_MARGIN: margin is insufficient",
                    ts_ns=T0 + 65 * S,
                ),
                lost,
                OrderOutcomeUnknown(
                    run_id=LIVE,
                    leg_id="eth",
                    client_order_id=lost.client_order_id,
                    reason="timed out",
                    ts_ns=T0 + 66 * S,
                ),
            ]
        )
    finally:
        await store.close()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("journal")
    asyncio.run(write_journal(data_dir))
    return data_dir


# -- the command ---------------------------------------------------------------------------
def legato(*argv: str) -> int:
    """The commands under a `legato` parser of their own (`cluster.cli` does not register
    them yet), run as `cluster.cli.main` runs a command: `args.func(args)`."""
    parser = argparse.ArgumentParser(prog="legato")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_journal_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert legato(*argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


def failure(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a failing command prints; it exits with status 2 and prints nothing else."""
    assert legato(*argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("legato: error: ") and err.count("\n") == 1, err
    return err


# -- history -------------------------------------------------------------------------------
def test_history_lists_runs_newest_first_with_their_times_legs_and_trades(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("history", "--journal", str(journal)) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].split()[:2] == ["run", "state"]
    assert [line.split()[0] for line in lines[1:]] == [LIVE, OTHER, DONE]
    done = lines[3].split()
    assert done[:3] == [DONE, "COMPLETED", "2023-11-14T22:13:20.123Z"]
    assert done[3] == utc(T0 + 12 * S)  # its last state change
    assert done[4:] == ["3", "3", f"{NOTIONAL:,.2f}"]
    assert lines[1].split()[1] == "RUNNING" and lines[1].split()[4:] == ["2", "0", "0.00"]
    assert lines[2].split()[4:] == ["—", "0", "0.00"]  # failed before it was resolved


def test_history_json_is_an_array_of_runs(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = run_json(capsys, "history", "--journal", str(journal))

    assert isinstance(runs, list)
    assert [r["run_id"] for r in runs] == [LIVE, OTHER, DONE]
    done = runs[2]
    assert done["basket_id"] == "b-render" and done["number"] == 1
    assert done["state"] == "COMPLETED" and done["finished"] is True
    assert done["created"] == "2023-11-14T22:13:20.123Z" and done["created_ns"] == T0
    assert done["updated_ns"] == T0 + 12 * S
    assert done["legs"] == 3  # from its report
    assert done["fills"] == 3
    assert D(done["filled_notional"]) == NOTIONAL
    assert done["submitted_by"] == "legato run" and done["order_prefix"] == PREFIX
    assert runs[0]["finished"] is False and runs[0]["legs"] == 2  # from its resolved basket
    assert runs[1]["legs"] is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--unfinished",), [LIVE]),
        (("--basket", "b-render"), [LIVE, DONE]),
        (("--basket", "b-other"), [OTHER]),
        (("--limit", "2"), [LIVE, OTHER]),
        (("--basket", "b-render", "--limit", "1"), [LIVE]),
        (("--basket", "nobody"), []),
    ],
)
def test_history_filters(
    journal: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], expected: list
) -> None:
    runs = run_json(capsys, "history", "--journal", str(journal), *options)
    assert [r["run_id"] for r in runs] == expected  # type: ignore[union-attr]


def test_history_says_when_nothing_matches(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("history", "--journal", str(journal), "--basket", "nobody") == 0
    assert capsys.readouterr().out == f"no runs of basket 'nobody' in the journal at {journal}\n"


def test_history_reads_the_journal_named_by_the_environment(
    journal: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGATO_JOURNAL", str(journal))
    runs = run_json(capsys, "history", "--limit", "1")
    assert [r["run_id"] for r in runs] == [LIVE]  # type: ignore[union-attr]


def test_history_refuses_a_limit_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        legato("history", "--limit", "0")
    assert exit_.value.code == 2
    assert "--limit: must be positive, got 0" in capsys.readouterr().err


# -- show ----------------------------------------------------------------------------------
def test_show_prints_the_states_the_report_and_a_count_of_orders(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("show", DONE, "--journal", str(journal)) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()

    assert lines[0] == f"run {DONE}: COMPLETED"
    assert "  submitted by  legato run" in lines and f"  order prefix  {PREFIX}" in lines
    states = lines[lines.index("states") + 1 : lines.index("states") + 6]
    assert [s.split(maxsplit=2) for s in states] == [
        [utc(T0 + S), "CHECKING", "spec valid"],
        [utc(T0 + 2 * S), "ARMING", "collateral held"],
        [utc(T0 + 3 * S), "RUNNING", "every leg armed"],
        [utc(T0 + 11 * S), "RECONCILING", "every leg filled"],
        [utc(T0 + 12 * S), "COMPLETED", "every leg filled and reconciled"],
    ]
    assert render.summary(completed_report()) in text
    assert lines[-1] == "2 child order(s); `--orders` lists them"


def test_show_orders_lists_each_child_order(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("show", DONE, "--journal", str(journal), "--orders") == 0
    lines = capsys.readouterr().out.splitlines()

    at = lines.index("orders (2)")
    assert re.split(r"\s{2,}", lines[at + 1].strip()) == [
        "client order id", "leg", "venue", "side", "qty", "price", "status", "filled",
        "avg price", "fee", "fills",
    ]  # fmt: skip
    assert lines[at + 2].split() == [
        f"{PREFIX}.1.eth.1", "eth", "alpha", "BUY", "10", "2502.5", "FILLED", "10",
        "2,501.50", "5", "2",
    ]  # fmt: skip
    assert lines[at + 3].split() == [
        f"{PREFIX}.1.btc.1", "btc", "gamma", "SELL", "0.75", "61990", "FILLED", "0.75",
        "61,990.00", "9.3", "1",
    ]  # fmt: skip


def test_show_json_is_the_run_its_states_its_report_and_its_orders(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_json(capsys, "show", DONE, "--journal", str(journal))

    assert isinstance(doc, dict) and set(doc) == {"run", "states", "report", "orders"}
    assert doc["run"]["run_id"] == DONE and doc["run"]["state"] == "COMPLETED"
    assert [s["state"] for s in doc["states"]] == [
        "CHECKING",
        "ARMING",
        "RUNNING",
        "RECONCILING",
        "COMPLETED",
    ]
    assert doc["states"][-1] == {
        "ts": utc(T0 + 12 * S),
        "ts_ns": T0 + 12 * S,
        "state": "COMPLETED",
        "reason": "every leg filled and reconciled",
    }
    # The report as the basket made it: `legato run --json`'s shape, read back whole.
    assert load_report(json.dumps(doc["report"])) == completed_report()

    eth, btc = doc["orders"]
    assert eth["client_order_id"] == f"{PREFIX}.1.eth.1" and btc["leg_id"] == "btc"
    assert (eth["venue"], eth["symbol"], eth["side"]) == ("alpha", "ETHUSDT", "BUY")
    assert (eth["status"], D(eth["filled_qty"]), D(eth["avg_price"])) == (
        "FILLED",
        D(10),
        D("2501.5"),
    )
    assert (D(eth["qty"]), D(eth["price"]), D(eth["fee"]), eth["fills"]) == (
        D(10),
        D("2502.5"),
        D("5.0"),
        2,
    )
    assert (btc["side"], D(btc["filled_qty"]), btc["fills"]) == ("SELL", D("0.75"), 1)
    assert eth["sent_ns"] == T0 + 2 * S + 1 and eth["sent"] == utc(T0 + 2 * S + 1)


def test_a_basket_id_shows_its_latest_run(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_json(capsys, "show", "b-render", "--journal", str(journal))

    assert isinstance(doc, dict)
    assert doc["run"]["run_id"] == LIVE and doc["run"]["state"] == "RUNNING"
    assert doc["report"] is None
    refused, lost = doc["orders"]
    assert refused["status"] == "REJECTED"
    assert refused["reject"] == "INSUFFICIENT_MARGIN: margin is insufficient"
    assert lost["unknown"] is True and lost["reject"] is None and lost["fills"] == 0


def test_a_running_run_has_no_report_yet_and_says_why_orders_failed(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("show", "b-render", "--journal", str(journal), "--orders") == 0
    text = capsys.readouterr().out

    assert text.startswith(f"run {LIVE}: RUNNING\n")
    assert "report\n  none yet: the run is RUNNING" in text
    assert f"  {PREFIX}.2.eth.1: INSUFFICIENT_MARGIN: margin is insufficient" in text
    lost = next(x for x in text.splitlines() if x.startswith(f"  {PREFIX}.2.eth.2 "))
    assert "(outcome unknown)" in lost


def test_a_finished_run_without_a_report_says_so(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert legato("show", OTHER, "--journal", str(journal)) == 0
    text = capsys.readouterr().out
    assert "FAILED  collateral refused on gamma" in text
    assert "report\n  none recorded" in text


# -- failures ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ident", "named"),
    [("b-render#9", "no run 'b-render#9'"), ("nobody", "no run of basket 'nobody'")],
)
def test_an_unknown_id_is_one_line_naming_it_and_how_to_list_runs(
    journal: Path, capsys: pytest.CaptureFixture[str], ident: str, named: str
) -> None:
    err = failure(capsys, "show", ident, "--journal", str(journal))
    assert named in err and str(journal) in err
    assert "`legato history` lists the runs" in err


@pytest.mark.parametrize("command", [("history",), ("show", "b-render")])
def test_a_missing_journal_is_reported_and_never_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    absent, empty = tmp_path / "absent", tmp_path / "empty"
    empty.mkdir()
    for where in (absent, empty):
        err = failure(capsys, *command, "--journal", str(where))
        assert f"no journal at {where} (no {FILENAME} there)" in err
    assert not absent.exists()
    assert list(empty.iterdir()) == []


def test_a_journal_of_a_newer_schema_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = SqliteJournal(tmp_path, migrations=[*MIGRATIONS, ["CREATE TABLE later (x INTEGER)"]])
    asyncio.run(newer.open())
    asyncio.run(newer.close())

    err = failure(capsys, "history", "--journal", str(tmp_path))
    assert f"has schema version {len(MIGRATIONS) + 1}" in err
    assert "upgrade legato" in err


# A process of its own: what reaches stderr there is all a user sees (no test logging
# capture hides a second line or a traceback).
LEGATO = """import argparse, sys
from cluster.journal_cli import add_journal_commands
parser = argparse.ArgumentParser(prog="legato")
add_journal_commands(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


@pytest.mark.parametrize(
    ("journal_at", "said"),
    [
        # Port 1 on the loopback: nothing listens, the connection is refused at once.
        (
            "postgresql://legato:s3cret-pw@127.0.0.1:1/journal",
            "cannot connect to the journal at postgresql://legato:***@127.0.0.1:1/journal",
        ),
        ("{tmp}/absent", "no journal at {tmp}/absent"),
        ("{journal}", "no run of basket 'nobody' in the journal at {journal}"),
    ],
)
def test_a_failure_is_one_line_on_stderr_and_never_shows_a_password(
    journal: Path, tmp_path: Path, journal_at: str, said: str
) -> None:
    places = {"tmp": tmp_path, "journal": journal}
    done = subprocess.run(
        [sys.executable, "-c", LEGATO, "show", "nobody", "--journal", journal_at.format(**places)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"legato: error: {said.format(**places)}")
    assert done.stderr.count("\n") == 1, done.stderr
    assert "s3cret-pw" not in done.stderr


@pytest.mark.parametrize("command", ["history", "show"])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        legato(command, "--help")
    assert exit_.value.code == 0
    assert f"usage: legato {command}" in capsys.readouterr().out


# -- where the journal is ------------------------------------------------------------------
def test_the_default_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("LEGATO_JOURNAL", "LEGATO_DATA_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_journal_location() == str(tmp_path / ".local" / "share" / "legato" / "journal")
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert default_journal_location() == "/xdg/legato/journal"
    # The recorded market data's directory is not the journal's.
    monkeypatch.setenv("LEGATO_DATA_DIR", "/data")
    assert default_journal_location() == "/xdg/legato/journal"
    monkeypatch.setenv("LEGATO_JOURNAL", "/srv/legato")
    assert default_journal_location() == "/srv/legato"
    monkeypatch.setenv("LEGATO_JOURNAL", "postgresql://db/journal")
    assert default_journal_location() == "postgresql://db/journal"


def test_times_are_utc_to_the_millisecond_never_rounded_up() -> None:
    assert utc(T0) == "2023-11-14T22:13:20.123Z"
    assert utc(1_700_000_000_999_999_999) == "2023-11-14T22:13:20.999Z"


def test_the_journals_file_stands_for_its_directory(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = run_json(capsys, "history", "--journal", str(journal / FILENAME), "--limit", "1")
    assert [r["run_id"] for r in runs] == [LIVE]  # type: ignore[union-attr]
