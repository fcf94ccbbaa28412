"""The journal on PostgreSQL, for a multi-node cluster, through asyncpg.

Why asyncpg (over psycopg 3, also installable here): it is asyncio-native and self-contained
(no libpq on the nodes: its wheels carry the whole protocol), it speaks PostgreSQL's binary
protocol, and its `executemany` pipelines a batch in one round trip, which is what the
journal's batched appends need; it is maintained by MagicStack and is the common driver of
the asyncio ecosystem. psycopg 3 would have served too (its async API needs libpq or its
`binary` wheel), but it brings nothing the journal uses that asyncpg lacks.

Everything lives in one schema (`legato` unless told), so several journals can share a
database. Appends take a transaction-scoped advisory lock of the schema: sequence numbers
are then given in commit order, so a reader that asks for records `after_seq` of the last
one it saw can never miss one committed late with a lower number (identity columns alone
do not promise that under concurrent writers).

Secrets: the DSN's password never appears in an error or a log line; messages name the
server through `redact_dsn` and every driver message is scrubbed of the password.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from actors.journal.dsn import redact_dsn, scrub, secrets_of
from actors.journal.orders import JournaledOrder, fold_orders
from actors.journal.records import ORDER_KINDS, Entry, Record, decode
from actors.journal.store import (
    JournalError,
    Migrations,
    RunId,
    RunInfo,
    check_basket_id,
    check_version,
    kind_names,
    make_run_id,
    rows_of,
)
from actors.lifecycle import BasketState

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "legato"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# MIGRATIONS[v - 1] takes a journal from version v - 1 to v (see actors.journal.store);
# `{s}` is the journal's schema, quoted.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE {s}.runs (
            run_id TEXT PRIMARY KEY,
            basket_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL,
            finished BOOLEAN NOT NULL DEFAULT FALSE,
            created_ns BIGINT NOT NULL,
            updated_ns BIGINT NOT NULL,
            UNIQUE (basket_id, number)
        )""",
        "CREATE INDEX runs_unfinished ON {s}.runs (finished, created_ns)",
        # The last run number each basket id was given: never goes down, so an identity
        # is never given twice.
        "CREATE TABLE {s}.run_numbers (basket_id TEXT PRIMARY KEY, last INTEGER NOT NULL)",
        # Text, not jsonb: jsonb refuses the NUL character that JSON text may carry escaped.
        """CREATE TABLE {s}.records (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream TEXT NOT NULL,
            kind TEXT NOT NULL,
            ts_ns BIGINT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX records_stream ON {s}.records (stream, seq)",
        "CREATE INDEX records_kind ON {s}.records (kind, seq)",
    ],
    # 2: `BasketReported` and `BasketResolved`; a run's records of one kind (its report,
    # its spec) are read without a scan of its stream.
    ["CREATE INDEX records_stream_kind ON {s}.records (stream, kind, seq)"],
    # 3: order and trade ids are strings (as `store.ids_as_text` does; braces doubled for
    # `format`).
    [
        "UPDATE {s}.records SET body = regexp_replace("
        "regexp_replace(body, '\"order_id\":0(?=[,}}])', '\"order_id\":\"\"', 'g'), "
        "'\"(order_id|trade_id)\":(-?[0-9]+)(?=[,}}])', '\"\\1\":\"\\2\"', 'g') "
        "WHERE body LIKE '%\"order_id\":%' OR body LIKE '%\"trade_id\":%'"
    ],
]

_RUN_COLUMNS = "run_id, basket_id, number, state, created_ns, updated_ns"


class PostgresJournal:
    """A `JournalStore` in schema `schema` of the database at `dsn`.

    `migrations` replaces the schema's migrations (tools and tests of the migration rules).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        max_connections: int = 4,
        connect_timeout_s: float = 10.0,
        command_timeout_s: float = 30.0,
        migrations: Migrations | None = None,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise JournalError(
                f"schema {schema!r} is not accepted; accepted: a lower-case SQL name "
                "(a-z, 0-9, _; at most 63 characters, not starting with a digit)"
            )
        self._dsn = dsn
        self._secrets = secrets_of(dsn)
        self.where = f"{redact_dsn(dsn)} (schema {schema})"
        self.schema = schema
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.migrations: Migrations = MIGRATIONS if migrations is None else migrations
        self.version = 0  # the schema version found or reached at open
        self._s = f'"{schema}"'
        # One lock per schema: appends (and migrations) in one schema run one at a time.
        digest = hashlib.sha256(f"legato-journal:{schema}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresJournal({self.where!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        failure: str | None = None
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self.max_connections,
                timeout=self.connect_timeout_s,
                command_timeout=self.command_timeout_s,
                server_settings={"application_name": "legato-journal"},
            )
        except Exception as e:  # the driver's errors vary; each is reported, scrubbed
            failure = self._scrub(f"{type(e).__name__}: {e}")
        if failure is not None:
            # Raised outside the `except`, so no traceback carries the driver's own message.
            log.warning("journal: cannot connect to %s: %s", self.where, failure)
            raise JournalError(f"cannot connect to the journal at {self.where}: {failure}")
        try:
            self.version = await self._migrate(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self, pool: asyncpg.Pool) -> int:
        s = self._s
        async with self._conn("migrate", pool) as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.journal_schema "
                "(version INTEGER NOT NULL, applied_ns BIGINT NOT NULL)"
            )
            found = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {s}.journal_schema")
            version = int(found)
            check_version(self.where, version, self.migrations)
            for v in range(version + 1, len(self.migrations) + 1):
                for step in self.migrations[v - 1]:
                    await conn.execute(step.format(s=s))
                await conn.execute(
                    f"INSERT INTO {s}.journal_schema VALUES ($1, $2)", v, time.time_ns()
                )
        return len(self.migrations)

    # -- writing -----------------------------------------------------------------------------
    async def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        s = self._s
        rows, changes = rows_of(records)
        async with self._conn("append to") as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
            await conn.executemany(
                f"INSERT INTO {s}.records (stream, kind, ts_ns, body) VALUES ($1, $2, $3, $4)",
                rows,
            )
            if changes:
                await conn.executemany(
                    f"UPDATE {s}.runs SET state = $1, finished = $2, updated_ns = $3 "
                    "WHERE run_id = $4",
                    changes,
                )

    async def new_run(self, basket_id: str, *, ts_ns: int | None = None) -> RunId:
        check_basket_id(basket_id)
        ts = time.time_ns() if ts_ns is None else ts_ns
        s = self._s
        async with self._conn("start a run in") as conn, conn.transaction():
            # The upsert locks the basket's row: concurrent runs of one basket get
            # consecutive numbers, on any node.
            number = await conn.fetchval(
                f"INSERT INTO {s}.run_numbers AS n (basket_id, last) VALUES ($1, 1) "
                "ON CONFLICT (basket_id) DO UPDATE SET last = n.last + 1 RETURNING last",
                basket_id,
            )
            run_id = make_run_id(basket_id, number)
            await conn.execute(
                f"INSERT INTO {s}.runs ({_RUN_COLUMNS}, finished) "
                "VALUES ($1, $2, $3, $4, $5, $6, FALSE)",
                run_id,
                basket_id,
                number,
                BasketState.PENDING.value,
                ts,
                ts,
            )
        return run_id

    # -- reading -----------------------------------------------------------------------------
    async def runs(
        self, basket_id: str | None = None, *, unfinished_only: bool = False
    ) -> list[RunInfo]:
        where: list[str] = []
        args: list[object] = []
        if basket_id is not None:
            args.append(basket_id)
            where.append(f"basket_id = ${len(args)}")
        if unfinished_only:
            where.append("NOT finished")
        sql = f"SELECT {_RUN_COLUMNS} FROM {self._s}.runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ns, basket_id, number"
        return [_run_info(row) for row in await self._fetch(sql, *args)]

    async def run(self, run_id: str) -> RunInfo | None:
        sql = f"SELECT {_RUN_COLUMNS} FROM {self._s}.runs WHERE run_id = $1"
        rows = await self._fetch(sql, run_id)
        return _run_info(rows[0]) if rows else None

    async def latest_run(self, basket_id: str) -> RunInfo | None:
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM {self._s}.runs WHERE basket_id = $1 "
            "ORDER BY number DESC LIMIT 1"
        )
        rows = await self._fetch(sql, basket_id)
        return _run_info(rows[0]) if rows else None

    async def records(
        self,
        run_id: str | None,
        kinds: Iterable[type[Record]] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Entry]:
        args: list[object] = [after_seq]
        sql = f"SELECT seq, body FROM {self._s}.records WHERE seq > $1"
        if run_id is not None:
            args.append(run_id)
            sql += f" AND stream = ${len(args)}"
        names = kind_names(kinds)
        if names is not None:
            if not names:
                return []
            args.append(names)
            sql += f" AND kind = ANY(${len(args)}::text[])"
        sql += " ORDER BY seq"
        if limit is not None:
            args.append(limit)
            sql += f" LIMIT ${len(args)}"
        return [Entry(seq, decode(body)) for seq, body in await self._fetch(sql, *args)]

    async def orders(self, run_id: str) -> list[JournaledOrder]:
        return fold_orders(await self.records(run_id, ORDER_KINDS))

    # -- connections and errors --------------------------------------------------------------
    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        async with self._conn("read") as conn:
            return await conn.fetch(sql, *args)

    def _conn(self, doing: str, pool: asyncpg.Pool | None = None) -> _Acquired:
        pool = pool or self._pool
        if pool is None:
            raise JournalError(f"the journal at {self.where} is not open")
        return _Acquired(pool, f"cannot {doing} the journal at {self.where}", self._scrub)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)


class _Acquired:
    """A pooled connection for one `async with`; the driver's errors come out as
    `JournalError`s saying what failed, scrubbed of the password."""

    def __init__(self, pool: asyncpg.Pool, what: str, scrub: Any) -> None:
        self._acquire = pool.acquire()
        self._what = what
        self._scrub = scrub

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._acquire.__aenter__()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            raise JournalError(self._scrub(f"{self._what}: {type(e).__name__}: {e}")) from None

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        await self._acquire.__aexit__(kind, error, tb)
        if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
            raise JournalError(self._scrub(f"{self._what}: {type(error).__name__}: {error}"))


def _run_info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=RunId(row["run_id"]),
        basket_id=row["basket_id"],
        number=row["number"],
        state=BasketState(row["state"]),
        created_ns=row["created_ns"],
        updated_ns=row["updated_ns"],
    )
