"""The journal store's interface, what both backends share, and how their schemas evolve.

A `JournalStore` keeps records (`actors.journal.records`) in append-only streams, one per
basket run (and one per hedge desk), numbered by one sequence per store that only grows,
and a table of runs. Two backends implement it and pass one test suite: SQLite in WAL
mode (`actors.journal.sqlite`, the embedded default) and PostgreSQL
(`actors.journal.postgres`, a multi-node cluster).

Run identities: `new_run(basket_id)` hands out `"<basket_id>#<n>"` with `n` one more than
any run of that basket the journal ever held, so the same basket file run twice is two
runs, and an identity is never given twice within a journal (basket ids never contain
`#`, so the identity splits back into its parts).

Schema: each backend lists its migrations, `MIGRATIONS[v - 1]` being the SQL steps that
take a journal from version `v - 1` to `v`. `open()` applies the missing ones in order, in
one transaction under the store's write lock, and records each in `journal_schema`; a
journal whose version is newer than the code's refuses to open (`JournalVersionError`),
because older code would misread what a newer one wrote. Migrations only ever go forward.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NewType, Protocol, runtime_checkable

import msgspec

from actors.journal.orders import JournaledOrder
from actors.journal.records import BasketStateChanged, Entry, Record, encode, kind_of, stream_of
from actors.lifecycle import BasketState

RunId = NewType("RunId", str)
RUN_SEPARATOR = "#"
SCHEMA_VERSION = 3  # the version this code writes; both backends define this many migrations

# Schema 3: venues' order and trade ids are strings (they were numbers, Binance's). A record
# body's `"order_id":123` becomes `"order_id":"123"` and an unknown order id (0) becomes "".
# Record bodies are msgspec's compact JSON, so the keys appear exactly so. The SQLite
# migration calls `ids_as_text`; PostgreSQL's does the same with regexp_replace.
_ZERO_ORDER_ID = re.compile(r'"order_id":0(?=[,}])')
_NUMERIC_ID = re.compile(r'"(order_id|trade_id)":(-?[0-9]+)(?=[,}])')


def ids_as_text(body: str) -> str:
    """A record body of schema 2 with its order and trade ids as schema 3 has them."""
    return _NUMERIC_ID.sub(r'"\1":"\2"', _ZERO_ORDER_ID.sub('"order_id":""', body))


Migrations = Sequence[Sequence[str]]


class JournalError(Exception):
    """The journal cannot do what was asked (its store is unreachable, misconfigured, …)."""


class JournalRecordError(JournalError):
    """A record that no store can hold (a defect of its writer): retrying cannot help."""


class JournalVersionError(JournalError):
    """The journal was written by newer code than this one (its schema is ahead)."""

    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(
            f"the journal at {where} has schema version {found}, but this legato knows "
            f"versions up to {known}: it was written by a newer legato; upgrade legato "
            "to open it (the journal is left unchanged)"
        )
        self.found = found
        self.known = known


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One basket run as the journal knows it: its identity and its latest state."""

    run_id: RunId
    basket_id: str
    number: int
    state: BasketState
    created_ns: int
    updated_ns: int

    @property
    def finished(self) -> bool:
        return self.state.is_terminal


@runtime_checkable
class JournalStore(Protocol):
    """Where the journal lives. Every method is a coroutine; none blocks the caller's loop."""

    async def open(self) -> None:
        """Connect, create what is missing, apply migrations (refusing a newer schema)."""
        ...

    async def close(self) -> None:
        """Release connections and threads; idempotent."""
        ...

    async def append(self, records: Sequence[Record]) -> None:
        """Write `records` in one transaction, in order; each gets the next sequence number.
        A `BasketStateChanged` also moves its run's state, in the same transaction."""
        ...

    async def new_run(self, basket_id: str, *, ts_ns: int | None = None) -> RunId:
        """A new run of `basket_id`, with an identity never given before in this journal."""
        ...

    async def runs(
        self, basket_id: str | None = None, *, unfinished_only: bool = False
    ) -> list[RunInfo]:
        """Runs (of one basket, or all), oldest first; only those not in a terminal state
        when `unfinished_only`."""
        ...

    async def run(self, run_id: str) -> RunInfo | None:
        """One run, or None if the journal has no such run."""
        ...

    async def latest_run(self, basket_id: str) -> RunInfo | None:
        """The newest run of `basket_id`, or None if it never ran."""
        ...

    async def records(
        self,
        run_id: str | None,
        kinds: Iterable[type[Record]] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Entry]:
        """A stream's records (a run id or a desk's stream; None: every stream) with a
        sequence number above `after_seq`, of the given kinds (None: all), in order."""
        ...

    async def orders(self, run_id: str) -> list[JournaledOrder]:
        """The run's child orders, each with its latest state as reported, in send order."""
        ...


# -- what both backends share --------------------------------------------------------------
def check_basket_id(basket_id: str) -> None:
    """Refuse a basket id that cannot start a run identity."""
    if (
        not isinstance(basket_id, str)
        or not basket_id
        or RUN_SEPARATOR in basket_id
        or "\x00" in basket_id
    ):
        raise JournalError(
            f"basket_id {basket_id!r} cannot start a run identity; accepted: a non-empty "
            f"string without {RUN_SEPARATOR!r} (which separates a run's number from it) "
            "or NUL characters"
        )


def make_run_id(basket_id: str, number: int) -> RunId:
    """The identity of run `number` of `basket_id`."""
    check_basket_id(basket_id)
    return RunId(f"{basket_id}{RUN_SEPARATOR}{number}")


def split_run_id(run_id: str) -> tuple[str, int]:
    """(basket_id, number) of a run identity."""
    basket_id, sep, number = run_id.rpartition(RUN_SEPARATOR)
    if not sep or not basket_id or not number.isdigit():
        raise JournalError(
            f"run id {run_id!r} is not a run identity; expected '<basket_id>#<number>'"
        )
    return basket_id, int(number)


def kind_names(kinds: Iterable[type[Record]] | None) -> list[str] | None:
    """The stored tags of `kinds` (None stays None: every kind)."""
    return None if kinds is None else [kind_of(k) for k in kinds]


def rows_of(records: Sequence[Record]) -> tuple[list[tuple[str, str, int, str]], list[tuple]]:
    """What an append writes: a (stream, kind, ts_ns, body) row per record, and a
    (state, finished, ts_ns, run_id) update of its run per state change, both in order.
    Raises `JournalRecordError` for a record no store could hold."""
    rows = [_row(r) for r in records]
    states = [(BasketState(r.state), r) for r in records if isinstance(r, BasketStateChanged)]
    updates = [(s.value, s.is_terminal, r.ts_ns, r.run_id) for s, r in states]
    return rows, updates


def _row(record: Record) -> tuple[str, str, int, str]:
    kind = kind_of(type(record))
    stream = stream_of(record)
    if not stream or "\x00" in stream or not _encodable(stream):
        raise JournalRecordError(
            f"{kind}: its run or desk id {stream!r} cannot name a stream; accepted: a "
            "non-empty string without NUL characters (PostgreSQL's text cannot hold them)"
        )
    try:
        body = encode(record)
    except (msgspec.EncodeError, TypeError, ValueError) as e:
        raise JournalRecordError(f"{kind} cannot be stored: {e}") from None
    return stream, kind, record.ts_ns, body


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_version(where: str, found: int, migrations: Migrations) -> None:
    """Refuse a journal whose schema is newer than `migrations` reach."""
    if found > len(migrations):
        raise JournalVersionError(where, found, len(migrations))
