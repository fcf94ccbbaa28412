"""`legato history` and `legato show`: past and running basket runs, read from the journal.

Both commands only read. They never create a journal: a data directory without a journal
file is an error, not an empty journal. (Opening an existing journal of an older schema
still migrates it forward, as every open of the store does.) A PostgreSQL DSN is only ever
shown with its password masked (`actors.journal.postgres.redact_dsn`).

The journal's modules are imported when a command runs, as `cluster.cli` does for its own
commands, so that `legato --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from cluster.config import journal_location

if TYPE_CHECKING:
    from actors.journal import Entry, JournaledOrder, JournalStore, RunInfo

DEFAULT_LIMIT = 20
# As `legato`'s other commands say theirs (docs/operations.md, "Exit codes"); these only read.
_EXIT_STATUSES = "Exit status: 0 done; 2 no journal there, or no such run in it; 130 interrupted."
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")
_NS = 1_000_000_000
T = TypeVar("T")


def default_journal_location() -> str:
    """Where the journal is when `--journal` is not given: where the engine keeps it
    (`cluster.config.journal_location`)."""
    return journal_location()


class JournalLookupError(Exception):
    """What the user asked for is not in the journal (or there is no journal): one line."""


# -- what the commands print ---------------------------------------------------------------
class RunRow(msgspec.Struct, frozen=True, kw_only=True):
    """One run as `legato history` lists it (and `legato show --json` gives as `run`)."""

    run_id: str
    basket_id: str
    number: int
    state: str
    finished: bool
    created: str  # UTC, ISO 8601
    updated: str
    created_ns: int
    updated_ns: int
    legs: int | None  # from its resolved basket or its report; None before either exists
    fills: int  # trades booked
    filled_notional: Decimal  # Σ qty × price over its trades, in the quote currency
    submitted_by: str = ""
    order_prefix: str = ""


class StateRow(msgspec.Struct, frozen=True, kw_only=True):
    """A state the run moved to, when and why."""

    ts: str  # UTC, ISO 8601
    ts_ns: int
    state: str
    reason: str


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """One child order: what was sent and its latest state as the venue reported it."""

    client_order_id: str
    leg_id: str
    venue: str
    symbol: str
    side: str
    purpose: str
    qty: Decimal
    price: Decimal | None  # None: a market order
    status: str
    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    fills: int  # trades booked
    unknown: bool  # the placement's outcome is not known (it is queried, never resent)
    turned_away: bool  # refused at the venue's door (down, rate limited): not a reject
    reject: str | None
    sent: str  # UTC, ISO 8601, on the leg's clock
    sent_ns: int


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    """`legato show --json`: the run, its states, its report (as `legato run --json` writes
    it, or null before it ends) and its child orders."""

    run: RunRow
    states: list[StateRow]
    report: msgspec.Raw | None
    orders: list[OrderRow]


def utc(ts_ns: int) -> str:
    """Wall-clock ns as UTC ISO 8601 to the millisecond (`2023-11-14T22:13:20.123Z`)."""
    seconds, rest = divmod(ts_ns, _NS)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Legs(msgspec.Struct):
    """The legs of a resolved basket or a report, left undecoded: only counted."""

    legs: list[msgspec.Raw] = []


def run_row(info: RunInfo, entries: Sequence[Entry]) -> RunRow:
    """The run's row, from its identity and the records of it at hand (any kinds)."""
    from actors.journal import records as rec  # noqa: PLC0415

    legs: int | None = None
    submitted_by = order_prefix = ""
    trades: dict[tuple[str, int], rec.FillBooked] = {}
    for entry in entries:
        match entry.record:
            case rec.BasketSubmitted() as r:
                submitted_by, order_prefix = r.submitted_by, r.order_prefix
            case rec.BasketResolved(resolved=text) | rec.BasketReported(report=text):
                # The count is a convenience: an unreadable one is left out, and `legato
                # show` says what is wrong with the report.
                with contextlib.suppress(msgspec.DecodeError):
                    legs = len(msgspec.json.decode(text, type=_Legs).legs)
            case rec.FillBooked() as r:
                trades.setdefault((r.client_order_id, r.trade_id), r)  # a trade counts once
            case _:
                pass
    return RunRow(
        run_id=info.run_id,
        basket_id=info.basket_id,
        number=info.number,
        state=info.state.value,
        finished=info.finished,
        created=utc(info.created_ns),
        updated=utc(info.updated_ns),
        created_ns=info.created_ns,
        updated_ns=info.updated_ns,
        legs=legs,
        fills=len(trades),
        filled_notional=sum((t.qty * t.price for t in trades.values()), Decimal(0)),
        submitted_by=submitted_by,
        order_prefix=order_prefix,
    )


def state_rows(entries: Sequence[Entry]) -> list[StateRow]:
    """The run's state changes, in order."""
    from actors.journal.records import BasketStateChanged  # noqa: PLC0415

    return [
        StateRow(ts=utc(r.ts_ns), ts_ns=r.ts_ns, state=r.state.value, reason=r.reason)
        for e in entries
        if isinstance(r := e.record, BasketStateChanged)
    ]


def order_rows(orders: Sequence[JournaledOrder]) -> list[OrderRow]:
    """The run's child orders, in send order."""
    return [
        OrderRow(
            client_order_id=o.order.client_order_id,
            leg_id=o.leg_id,
            venue=o.venue,
            symbol=o.symbol,
            side=o.order.side.value,
            purpose=o.order.purpose,
            qty=o.order.quantity,
            price=o.order.price,
            status=o.order.status.value,
            filled_qty=o.order.filled_qty,
            avg_price=o.order.avg_price,
            fee=o.order.fee,
            fills=len(o.fills),
            unknown=o.order.unknown,
            turned_away=o.order.turned_away,
            reject=o.order.reject,
            sent=utc(o.order.sent_ns),
            sent_ns=o.order.sent_ns,
        )
        for o in orders
    ]


# -- reading the journal -------------------------------------------------------------------
def where(location: str) -> str:
    """The location as it may be shown: a DSN with its password masked."""
    if location.startswith(_POSTGRES_SCHEMES):
        try:
            from actors.journal.postgres import redact_dsn  # noqa: PLC0415
        except ImportError:  # no asyncpg: show nothing of the DSN rather than risk a secret
            return "the PostgreSQL journal"
        return redact_dsn(location)
    return location


def existing_store(location: str) -> JournalStore:
    """The store at `location`, refusing a directory that holds no journal (opening one
    would create it)."""
    from actors.journal import journal_store  # noqa: PLC0415
    from actors.journal.sqlite import FILENAME  # noqa: PLC0415

    if location.startswith(_POSTGRES_SCHEMES):
        try:
            return journal_store(location)
        except ImportError:
            raise JournalLookupError(
                "reading a PostgreSQL journal needs asyncpg: install legato's `postgres` extra"
            ) from None
    path = Path(location).expanduser()
    if path.name == FILENAME and path.is_file():  # the journal's file: its directory meant
        path = path.parent
    if not (path / FILENAME).is_file():
        raise JournalLookupError(
            f"no journal at {path} (no {FILENAME} there); give --journal DIR or set "
            "LEGATO_JOURNAL to where the engine keeps it"
        )
    return journal_store(path)


async def _reading(location: str, read: Callable[[JournalStore], Awaitable[T]]) -> T:
    """`read` on the opened store at `location`; the store is closed after."""
    store = existing_store(location)
    await store.open()
    try:
        return await read(store)
    except msgspec.DecodeError as e:
        raise JournalLookupError(
            f"the journal at {where(location)} holds a record this legato cannot read "
            f"({e}); a newer legato may have written it"
        ) from None
    finally:
        await store.close()


async def _history(store: JournalStore, args: argparse.Namespace) -> list[RunRow]:
    runs = await store.runs(args.basket, unfinished_only=args.unfinished)
    runs.sort(key=lambda r: (r.created_ns, r.basket_id, r.number), reverse=True)
    return await _rows(store, runs[: args.limit])


async def _recent(store: JournalStore, limit: int) -> list[RunRow]:
    runs = [r for r in await store.runs(None, unfinished_only=False) if r.finished]
    runs.sort(key=lambda r: (r.updated_ns, r.basket_id, r.number), reverse=True)
    return await _rows(store, runs[:limit])


async def _rows(store: JournalStore, runs: Sequence[RunInfo]) -> list[RunRow]:
    from actors.journal.records import (  # noqa: PLC0415
        BasketReported,
        BasketResolved,
        BasketSubmitted,
        FillBooked,
    )

    kinds = (BasketSubmitted, BasketResolved, BasketReported, FillBooked)
    return [run_row(info, await store.records(info.run_id, kinds)) for info in runs]


def recent_runs(location: str, limit: int) -> list[RunRow]:
    """The `limit` runs that finished last, newest first (`legato status`). Raises
    `JournalLookupError` when there is no journal at `location`, `JournalError` when it
    cannot be read."""
    return asyncio.run(_reading(location, lambda store: _recent(store, limit)))


async def _show(store: JournalStore, ident: str, location: str) -> RunView:
    from actors.journal.orders import fold_orders  # noqa: PLC0415
    from actors.journal.records import BasketReported  # noqa: PLC0415
    from actors.journal.store import RUN_SEPARATOR  # noqa: PLC0415

    if RUN_SEPARATOR in ident:
        info = await store.run(ident)
        what = f"no run {ident!r}"
    else:
        info = await store.latest_run(ident)
        what = f"no run of basket {ident!r}"
    if info is None:
        raise JournalLookupError(
            f"{what} in the journal at {where(location)}; `legato history` lists the runs"
        )
    entries = await store.records(info.run_id)
    reports = [e.record.report for e in entries if isinstance(e.record, BasketReported)]
    report = None
    if reports:
        try:
            msgspec.json.decode(reports[-1])  # JSON it must be, to be passed on as it is
        except msgspec.DecodeError as e:
            raise JournalLookupError(
                f"the report of run {info.run_id!r} in the journal at {where(location)} is "
                f"not JSON ({e})"
            ) from None
        report = msgspec.Raw(reports[-1].encode())
    return RunView(
        run=run_row(info, entries),
        states=state_rows(entries),
        report=report,
        orders=order_rows(fold_orders(entries)),
    )


# -- as text -------------------------------------------------------------------------------
def history_text(rows: Sequence[RunRow]) -> str:
    """`legato history`'s table."""
    from cluster.render import DASH, Table, _num, text_table  # noqa: PLC0415

    table = Table(
        ("run", "state", "created (UTC)", "updated (UTC)", "legs", "fills", "filled notional"),
        [
            (
                r.run_id,
                r.state,
                r.created,
                r.updated,
                DASH if r.legs is None else str(r.legs),
                str(r.fills),
                _num(r.filled_notional),
            )
            for r in rows
        ],
        right=frozenset({4, 5, 6}),
    )
    return "\n".join(line.removeprefix("  ") for line in text_table(table))


def show_text(view: RunView, with_orders: bool) -> str:
    """`legato show`: the run, its states, its report's summary and (asked) its orders."""
    from actors.report import load_report  # noqa: PLC0415
    from cluster.render import DASH, Table, _num, pairs, summary, text_table  # noqa: PLC0415

    run = view.run
    facts = [
        ("basket", run.basket_id),
        ("created", run.created),
        ("updated", run.updated),
        ("legs", DASH if run.legs is None else str(run.legs)),
        ("filled", f"{_num(run.filled_notional)} in {run.fills} trade(s) (Σ qty × price)"),
    ]
    facts += [("submitted by", run.submitted_by)] if run.submitted_by else []
    facts += [("order prefix", run.order_prefix)] if run.order_prefix else []
    blocks = ["\n".join([f"run {run.run_id}: {run.state}", *text_table(pairs(facts))])]

    states = Table(("", "", ""), [(s.ts, s.state, s.reason) for s in view.states], header=False)
    blocks.append("\n".join(["states", *(text_table(states) or ["  (none recorded)"])]))

    if view.report is not None:
        try:
            blocks.append(summary(load_report(bytes(view.report))))
        except msgspec.DecodeError as e:
            blocks.append(f"report\n  recorded, but this legato cannot read it ({e})")
    elif run.finished:
        blocks.append("report\n  none recorded")
    else:
        blocks.append(f"report\n  none yet: the run is {run.state}")

    if with_orders:
        blocks.append(orders_text(view.orders))
    else:
        blocks.append(f"{len(view.orders)} child order(s); `--orders` lists them")
    return "\n\n".join(blocks)


def orders_text(orders: Sequence[OrderRow]) -> str:
    """The child orders table, and why any order was refused or is unknown."""
    from cluster.render import DASH, Table, _price, _qty, text_table  # noqa: PLC0415

    def status(o: OrderRow) -> str:
        if o.unknown:
            return f"{o.status} (outcome unknown)"
        return f"{o.status} (turned away)" if o.turned_away else o.status

    table = Table(
        (
            "client order id",
            "leg",
            "venue",
            "side",
            "qty",
            "price",
            "status",
            "filled",
            "avg price",
            "fee",
            "fills",
        ),
        [
            (
                o.client_order_id,
                o.leg_id,
                o.venue,
                o.side,
                _qty(o.qty),
                "market" if o.price is None else _qty(o.price),
                status(o),
                _qty(o.filled_qty),
                DASH if o.avg_price is None else _price(o.avg_price),
                _qty(o.fee),
                str(o.fills),
            )
            for o in orders
        ],
        right=frozenset({4, 5, 7, 8, 9, 10}),
    )
    lines = [f"orders ({len(orders)})", *(text_table(table) if orders else ["  (none sent)"])]
    lines += [f"  {o.client_order_id}: {o.reject}" for o in orders if o.reject]
    return "\n".join(lines)


def _print_json(payload: object) -> None:
    print(msgspec.json.format(msgspec.json.encode(payload), indent=2).decode())


# -- the commands --------------------------------------------------------------------------
def _run_command(work: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a command's coroutine; a lookup that fails, or a journal that cannot be read,
    is one line on stderr and exit status 2, never a traceback."""
    from actors.journal import JournalError  # noqa: PLC0415

    # The stores log their failures too (for a long-running engine); here the one line below
    # says it, so without logging configured Python's last-resort handler must not repeat it.
    journal_log = logging.getLogger("actors.journal")
    if not journal_log.handlers:
        journal_log.addHandler(logging.NullHandler())
    try:
        asyncio.run(work())
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        with contextlib.suppress(OSError, ValueError):  # and nothing at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (JournalLookupError, JournalError, OSError) as e:
        # JournalError covers JournalVersionError (a newer schema); a PostgreSQL store's
        # messages are scrubbed of the DSN's password.
        print(f"legato: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """`legato history`: runs, newest first."""
    location = args.journal or default_journal_location()

    async def work() -> None:
        rows = await _reading(location, lambda store: _history(store, args))
        if args.json:
            _print_json(rows)
        elif rows:
            print(history_text(rows))
        else:
            which = " unfinished" if args.unfinished else ""
            of = f" of basket {args.basket!r}" if args.basket else ""
            print(f"no{which} runs{of} in the journal at {where(location)}")

    return _run_command(work)


def cmd_show(args: argparse.Namespace) -> int:
    """`legato show`: one run, its states, report and orders."""
    location = args.journal or default_journal_location()

    async def work() -> None:
        view = await _reading(location, lambda store: _show(store, args.id, location))
        if args.json:
            _print_json(view)
        else:
            print(show_text(view, args.orders))

    return _run_command(work)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _journal_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--journal",
        metavar="LOC",
        help="the journal: a data directory (SQLite) or a postgresql:// DSN (default: "
        "$LEGATO_JOURNAL, else $XDG_DATA_HOME/legato/journal or "
        "~/.local/share/legato/journal)",
    )


def add_journal_commands(sub: argparse._SubParsersAction) -> None:
    """Register `history` and `show` on the `legato` command's subparsers."""
    history = sub.add_parser(
        "history",
        help="list past and running basket runs from the journal",
        description="List the basket runs the journal holds, newest first: run id, state, "
        "when it was created and last changed (UTC), its legs, and its trades and their "
        "notional (Σ qty × price, in the quote currency). Reads only; never creates a journal. "
        + _EXIT_STATUSES,
    )
    _journal_option(history)
    history.add_argument("--basket", metavar="BASKET_ID", help="only the runs of this basket")
    history.add_argument(
        "--unfinished", action="store_true", help="only runs not yet in a final state"
    )
    history.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N runs, the newest (default {DEFAULT_LIMIT})",
    )
    history.add_argument("--json", action="store_true", help="print a JSON array of the runs")
    history.set_defaults(func=cmd_history)

    show = sub.add_parser(
        "show",
        help="show one basket run from the journal: states, report, child orders",
        description="Show a run: its state changes (with times and reasons), its report's "
        "summary once it has ended (docs/report.md), and a count of its child orders "
        "(--orders lists them). ID is a run id (basket#3) or a basket id (its latest run). "
        "--json prints one object {run, states, report, orders}, the orders always included. "
        + _EXIT_STATUSES,
    )
    show.add_argument("id", metavar="ID", help="a run id (basket#3) or a basket id (latest run)")
    _journal_option(show)
    show.add_argument(
        "--orders",
        action="store_true",
        help="list the child orders: id, leg, venue, side, qty, price, status, filled, "
        "avg price, fee and trades",
    )
    show.add_argument("--json", action="store_true", help="print the run as one JSON object")
    show.set_defaults(func=cmd_show)
