"""The embedded journal: SQLite in WAL mode in a data directory, off the caller's event loop.

One connection, used only by one worker thread (a single-thread executor), so the callers'
loops never wait on the disk and every statement of the store runs in order. WAL lets
readers in other processes (`legato history` while a basket runs) read while it writes;
`synchronous=NORMAL` makes a commit durable against a crash of the process (what recovery
is about) but not against a power cut, where the last commits before it may be lost
(`synchronous="FULL"` adds an fsync per commit: see `bench/bench_journal.py` for its cost).
Several processes may share one journal file: writes take SQLite's write lock
(`BEGIN IMMEDIATE`) and wait for it up to `busy_timeout_s`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from actors.journal.orders import JournaledOrder, fold_orders
from actors.journal.records import ORDER_KINDS, Entry, Record, decode
from actors.journal.store import (
    JournalError,
    Migrations,
    RunId,
    RunInfo,
    check_basket_id,
    check_version,
    ids_as_text,
    kind_names,
    make_run_id,
    rows_of,
)
from actors.lifecycle import BasketState

FILENAME = "journal.sqlite3"
SYNCHRONOUS = ("NORMAL", "FULL")

# MIGRATIONS[v - 1] takes a journal from version v - 1 to v (see actors.journal.store).
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            basket_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL,
            finished INTEGER NOT NULL DEFAULT 0,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            UNIQUE (basket_id, number)
        )""",
        "CREATE INDEX runs_unfinished ON runs (finished, created_ns)",
        # The last run number each basket id was given: never goes down, so an identity
        # is never given twice.
        "CREATE TABLE run_numbers (basket_id TEXT PRIMARY KEY, last INTEGER NOT NULL)",
        # AUTOINCREMENT: a sequence number is never reused, even after the newest rows go.
        """CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL,
            kind TEXT NOT NULL,
            ts_ns INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX records_stream ON records (stream, seq)",
        "CREATE INDEX records_kind ON records (kind, seq)",
    ],
    # 2: `BasketReported` and `BasketResolved`; a run's records of one kind (its report,
    # its spec) are read without a scan of its stream.
    ["CREATE INDEX records_stream_kind ON records (stream, kind, seq)"],
    # 3: order and trade ids are strings (`store.ids_as_text`, registered on the connection).
    [
        "UPDATE records SET body = legato_ids_as_text(body) "
        "WHERE body LIKE '%\"order_id\":%' OR body LIKE '%\"trade_id\":%'"
    ],
]

_RUN_COLUMNS = "run_id, basket_id, number, state, created_ns, updated_ns"
T = TypeVar("T")


class SqliteJournal:
    """A `JournalStore` in `<data_dir>/journal.sqlite3` (the directory is created if missing).

    `migrations` replaces the schema's migrations (tools and tests of the migration rules).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        filename: str = FILENAME,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = 10.0,
        migrations: Migrations | None = None,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise JournalError(
                f"synchronous {synchronous!r} is not accepted; accepted: {', '.join(SYNCHRONOUS)}"
            )
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / filename
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = busy_timeout_s
        self.migrations: Migrations = MIGRATIONS if migrations is None else migrations
        self.version = 0  # the schema version found or reached at open
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SqliteJournal({str(self.path)!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")
        try:
            await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        try:
            await self._call(self._close)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    def _open(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(
                f"cannot create the journal's data directory {self.data_dir}: "
                f"{e.strerror or e}; set a writable one"
            ) from None
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=self.busy_timeout_s, check_same_thread=True
            )
        except sqlite3.Error as e:
            raise JournalError(f"cannot open the journal {self.path}: {e}") from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(
                    f"the journal {self.path} cannot use WAL mode (SQLite kept {mode!r}); "
                    "put the data directory on a local filesystem"
                )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self.version = self._migrate(conn)
        except sqlite3.Error as e:
            conn.close()
            raise JournalError(f"cannot open the journal {self.path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> int:
        conn.create_function("legato_ids_as_text", 1, ids_as_text, deterministic=True)
        with _transaction(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS journal_schema "
                "(version INTEGER NOT NULL, applied_ns INTEGER NOT NULL)"
            )
            found = conn.execute("SELECT coalesce(max(version), 0) FROM journal_schema")
            version = int(found.fetchone()[0])
            check_version(str(self.path), version, self.migrations)
            for v in range(version + 1, len(self.migrations) + 1):
                for step in self.migrations[v - 1]:
                    conn.execute(step)
                conn.execute("INSERT INTO journal_schema VALUES (?, ?)", (v, time.time_ns()))
        return len(self.migrations)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise JournalError(f"the journal {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"the journal {self.path} is not open")
        return self._conn

    # -- writing -----------------------------------------------------------------------------
    async def append(self, records: Sequence[Record]) -> None:
        if records:
            await self._call(self._append, list(records))

    def _append(self, records: list[Record]) -> None:
        rows, changes = rows_of(records)
        conn = self._db()
        with self._errors("append to"), _transaction(conn):
            conn.executemany(
                "INSERT INTO records (stream, kind, ts_ns, body) VALUES (?, ?, ?, ?)", rows
            )
            if changes:
                conn.executemany(
                    "UPDATE runs SET state = ?, finished = ?, updated_ns = ? WHERE run_id = ?",
                    changes,
                )

    async def new_run(self, basket_id: str, *, ts_ns: int | None = None) -> RunId:
        check_basket_id(basket_id)
        ts = time.time_ns() if ts_ns is None else ts_ns
        return await self._call(self._new_run, basket_id, ts)

    def _new_run(self, basket_id: str, ts_ns: int) -> RunId:
        conn = self._db()
        with self._errors("start a run in"), _transaction(conn):
            number = conn.execute(
                "INSERT INTO run_numbers (basket_id, last) VALUES (?, 1) "
                "ON CONFLICT (basket_id) DO UPDATE SET last = last + 1 RETURNING last",
                (basket_id,),
            ).fetchone()[0]
            run_id = make_run_id(basket_id, number)
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, finished) VALUES (?, ?, ?, ?, ?, ?, 0)",
                (run_id, basket_id, number, BasketState.PENDING.value, ts_ns, ts_ns),
            )
        return run_id

    # -- reading -----------------------------------------------------------------------------
    async def runs(
        self, basket_id: str | None = None, *, unfinished_only: bool = False
    ) -> list[RunInfo]:
        where, args = [], []
        if basket_id is not None:
            where.append("basket_id = ?")
            args.append(basket_id)
        if unfinished_only:
            where.append("finished = 0")
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ns, basket_id, number"
        return [_run_info(row) for row in await self._call(self._fetch, sql, args)]

    async def run(self, run_id: str) -> RunInfo | None:
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?"
        rows = await self._call(self._fetch, sql, [run_id])
        return _run_info(rows[0]) if rows else None

    async def latest_run(self, basket_id: str) -> RunInfo | None:
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE basket_id = ? ORDER BY number DESC LIMIT 1"
        rows = await self._call(self._fetch, sql, [basket_id])
        return _run_info(rows[0]) if rows else None

    async def records(
        self,
        run_id: str | None,
        kinds: Iterable[type[Record]] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Entry]:
        sql, args = "SELECT seq, body FROM records WHERE seq > ?", [after_seq]
        if run_id is not None:
            sql += " AND stream = ?"
            args.append(run_id)
        names = kind_names(kinds)
        if names is not None:
            if not names:
                return []
            sql += f" AND kind IN ({', '.join('?' * len(names))})"
            args.extend(names)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = await self._call(self._fetch, sql, args)
        return [Entry(seq, decode(body)) for seq, body in rows]

    async def orders(self, run_id: str) -> list[JournaledOrder]:
        return fold_orders(await self.records(run_id, ORDER_KINDS))

    def _fetch(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        conn = self._db()
        with self._errors("read"):
            return conn.execute(sql, args).fetchall()

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return _errors(f"cannot {doing} the journal {self.path}")


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """SQLite's errors as `JournalError`s that say what failed and name the journal's file."""
    try:
        yield
    except sqlite3.Error as e:
        raise JournalError(f"{what}: {e}") from e


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock, at once) … COMMIT, or ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, basket_id, number, state, created_ns, updated_ns = row
    return RunInfo(
        run_id=RunId(run_id),
        basket_id=basket_id,
        number=number,
        state=BasketState(state),
        created_ns=created_ns,
        updated_ns=updated_ns,
    )
