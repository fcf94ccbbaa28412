"""A live actor's journal: the runners' `Journal` on a `JournalWriter` (DESIGN §9).

Every actor that records (a basket, its legs, the collateral and hedge singletons, the
supervisor) opens the store itself, where the engine says the journal lives (a data
directory: SQLite in WAL mode, which several processes of one machine share; a
PostgreSQL DSN for a multi-node cluster). Records are taken on the actor's event loop
without I/O; the writer commits them in batches.

When the writer's buffer is full (`JournalBackpressure`), a plain record waits in this
actor's backlog and is handed over as soon as the writer has room: it is late, never
lost. A write-ahead (`record_durably`) refuses at once while the backlog is not empty, so
that an order is never sent ahead of records the journal has not yet taken. A writer that
stopped for good (its store unreachable past its retries) refuses every write-ahead, so
no more orders go out; plain records are logged and kept in memory (`unsaved`).

Every record is also tapped as it is taken, before the writer sees it: counted for the
metrics (`actors.shells.metrics.OrderMetrics`) and written to the audit log
(`actors.shells.audit`), so neither waits on the database. A write-ahead is tapped once the
writer accepted it: an order the journal refuses is never sent, nor counted as sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from actors.journal import (
    JournalBackpressure,
    JournalError,
    JournalStore,
    JournalWriter,
    RunInfo,
    journal_store,
)
from actors.journal.records import Record
from actors.protocol import AuditSettings
from actors.shells.audit import AuditLog, SentOrders, hedge_unanswered_line, resolve_audit
from actors.shells.metrics import OrderMetrics
from actors.shells.tasks import BackgroundTasks

log = logging.getLogger(__name__)
BACKLOG_RETRY_S = 0.05
CLOSE_TIMEOUT_S = 30.0


class ActorJournal:
    """The journal at `location` for one actor (see the module docstring). `run` calls
    `then` on the actor's loop the way its runner's other callbacks are called; `audit`
    says where the audit log goes (None: its defaults, `resolve_audit`)."""

    def __init__(
        self,
        location: str,
        tasks: BackgroundTasks,
        run: Callable[[Callable[[], None]], None],
        owner: str,
        audit: AuditSettings | None = None,
    ) -> None:
        self.location = location
        self.owner = owner
        self.orders = SentOrders()
        self.metrics = OrderMetrics(owner)
        self.audit = AuditLog(resolve_audit(audit, location), owner)
        self._tasks = tasks
        self._run = run
        self._writer: JournalWriter | None = None
        self._backlog: deque[Record] = deque()
        self._draining = False
        self._lost: list[Record] = []  # taken after the writer stopped for good

    async def open(self) -> None:
        """Open the store (creating and migrating it if needed) and start the writer."""
        if self._writer is not None:
            return
        store = journal_store(self.location)
        try:
            await store.open()
        except JournalError:
            raise
        except Exception as e:
            raise JournalError(f"the journal cannot be opened: {type(e).__name__}: {e}") from None
        writer = JournalWriter(store, timeout_s=CLOSE_TIMEOUT_S)
        await writer.start()
        self._writer = writer

    @property
    def opened(self) -> bool:
        return self._writer is not None

    @property
    def store(self) -> JournalStore:
        """The store, for reads and run identities (open it first)."""
        if self._writer is None:
            raise JournalError("the journal is not open")
        return self._writer.store

    async def read(self, stream: str, kinds: list[type[Record]] | None = None) -> list[Record]:
        """A stream's records (after everything this actor wrote is committed)."""
        writer = self._writer
        if writer is None:
            raise JournalError("the journal is not open")
        await writer.flush()
        return [e.record for e in await writer.store.records(stream, kinds)]

    async def read_all(self, kinds: list[type[Record]]) -> list[Record]:
        """Every stream's records of `kinds`, in order."""
        writer = self._writer
        if writer is None:
            raise JournalError("the journal is not open")
        await writer.flush()
        return [e.record for e in await writer.store.records(None, kinds)]

    async def run_info(self, run_id: str) -> RunInfo | None:
        writer = self._writer
        if writer is None:
            raise JournalError("the journal is not open")
        return await writer.store.run(run_id)

    # -- the runners' `Journal` ------------------------------------------------------------
    def record(self, record: Record) -> None:
        self._tap(record)
        if self._backlog:
            self._backlog.append(record)  # behind the ones already waiting: order is kept
            return
        self._offer(record)

    def record_durably(self, record: Record, then: Callable[[Exception | None], None]) -> None:
        writer = self._writer
        if writer is None:
            self.orders.take(record)  # what the refusal that follows is about
            self._run(lambda: then(JournalError("the journal is not open")))
            return
        if self._backlog:
            self.orders.take(record)
            waiting = len(self._backlog)
            self._run(lambda: then(JournalBackpressure(f"{waiting} records wait for the journal")))
            return
        try:
            writer.write(record)
        except JournalError as e:
            self.orders.take(record)
            refused: Exception = e
            self._run(lambda: then(refused))
            return
        self._tap(record)

        async def commit() -> None:
            try:
                await writer.flush()
            except JournalError as e:
                failed: Exception = e
                self._run(lambda: then(failed))
                return
            self._run(lambda: then(None))

        self._tasks.spawn(commit(), f"{self.owner}-journal-commit")

    async def durable(self, record: Record) -> None:
        """Write `record` and wait for its commit (for shells, outside a runner)."""
        failure: list[Exception | None] = []
        done = asyncio.Event()

        def then(error: Exception | None) -> None:
            failure.append(error)
            done.set()

        self.record_durably(record, then)
        await done.wait()
        if failure[0] is not None:
            raise failure[0]

    # -- the tap ---------------------------------------------------------------------------
    def _tap(self, record: Record) -> None:
        sent = self.orders.take(record)
        self.audit.write(record, sent)
        self.metrics.count(record, sent)

    def hedge_unanswered(
        self, desk_id: str, client_order_id: str, reason: str, *, unknown: bool, now_ns: int
    ) -> None:
        """A hedge order that ended without a report (refused, lost, or sized to nothing):
        the journal keeps no record of it, the audit log and the metrics do."""
        sent = self.orders.get(client_order_id)
        line = hedge_unanswered_line(desk_id, client_order_id, sent, reason, unknown, now_ns)
        self.audit.write_line(line)
        self.metrics.hedge_unanswered(sent, unknown, reason)

    # -- the backlog -----------------------------------------------------------------------
    def _offer(self, record: Record) -> None:
        writer = self._writer
        if writer is None:
            self._lost.append(record)
            log.error("%s: journal not open; record kept in memory: %s", self.owner, record)
            return
        try:
            writer.write(record)
        except JournalBackpressure:
            self._backlog.append(record)
            if not self._draining:
                self._draining = True
                self._tasks.spawn(self._drain(), f"{self.owner}-journal-backlog")
        except JournalError as e:
            self._lost.append(record)
            log.error("%s: the journal refused a record (%s); kept in memory", self.owner, e)

    async def _drain(self) -> None:
        try:
            while self._backlog:
                await asyncio.sleep(BACKLOG_RETRY_S)
                while self._backlog:
                    record = self._backlog[0]
                    try:
                        assert self._writer is not None
                        self._writer.write(record)
                    except JournalBackpressure:
                        break
                    except JournalError as e:
                        self._lost.extend(self._backlog)
                        self._backlog.clear()
                        log.error("%s: the journal stopped: %s", self.owner, e)
                        return
                    self._backlog.popleft()
        finally:
            self._draining = False

    def unsaved(self) -> list[Record]:
        """Records not (yet) in the journal: the backlog, the writer's buffer, and any the
        journal refused."""
        pending = self._writer.unsaved() if self._writer is not None else []
        return [*self._lost, *pending, *self._backlog]

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.flush()

    async def close(self) -> None:
        """Write what is waiting (within `CLOSE_TIMEOUT_S`), then close the store."""
        self.audit.close()
        writer = self._writer
        if writer is None:
            return
        deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT_S
        while self._backlog and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(BACKLOG_RETRY_S)
        try:
            await writer.close()
        except JournalError as e:
            unsaved = len(self.unsaved())
            log.error("%s: closing the journal: %s (%d records unsaved)", self.owner, e, unsaved)
        finally:
            self._writer = None
            await writer.store.close()
