"""The journal: the durable record of every basket run, its orders, hedges and collateral.

`records` holds the record types; `store` the `JournalStore` interface that both backends
implement, `sqlite` (the embedded default) and `postgres` (a multi-node cluster; it needs
the `postgres` extra); `writer` the batching `JournalWriter` that keeps the database off
the hot path. `journal_store(location)` picks the backend from where the journal lives.
"""

from __future__ import annotations

from pathlib import Path

from actors.journal.orders import JournaledOrder
from actors.journal.records import RECORD_TYPES, Entry, Record
from actors.journal.sqlite import SqliteJournal
from actors.journal.store import (
    SCHEMA_VERSION,
    JournalError,
    JournalRecordError,
    JournalStore,
    JournalVersionError,
    RunId,
    RunInfo,
    split_run_id,
)
from actors.journal.writer import JournalBackpressure, JournalWriter

__all__ = [
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "Entry",
    "JournalBackpressure",
    "JournalError",
    "JournalRecordError",
    "JournalStore",
    "JournalVersionError",
    "JournalWriter",
    "JournaledOrder",
    "Record",
    "RunId",
    "RunInfo",
    "SqliteJournal",
    "journal_store",
    "split_run_id",
]

_POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def journal_store(location: str | Path) -> JournalStore:
    """The store at `location`: a PostgreSQL DSN (`postgresql://…`), or a data directory for
    the embedded SQLite journal."""
    if isinstance(location, str) and location.startswith(_POSTGRES_SCHEMES):
        # Imported here: asyncpg is an optional dependency (the `postgres` extra).
        from actors.journal.postgres import PostgresJournal  # noqa: PLC0415

        return PostgresJournal(location)
    return SqliteJournal(location)
