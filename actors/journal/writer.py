"""Writing to the journal without a database round trip on the hot path: a bounded buffer,
flushed in batches by one background task.

`write(record)` is synchronous: it puts the record in memory and returns at once; a task
appends what has gathered in one transaction while the next batch gathers (group commit),
so a burst of fills costs one commit, not one per fill. `durable(record)` is the same write
and then waits until its batch is committed: the write-ahead of a child order, for a caller
that must not send before the record is on disk. `flush()` waits for everything written
before it; `close()` flushes, then stops the task.

When the buffer is full, `write` raises `JournalBackpressure`. It never drops a record:
a journal with a hole lies (a child order sent without its record could be sent again
after a crash, a fill missing from it would be missing from the recovered basket). It
never blocks either: the caller is on its event loop, often on the launch path. Raising
tells the caller at once that the journal is not keeping up, so it can stop sending
orders it could not record. The bound counts every record not yet committed, the batch
in flight included.

A failed append is retried with backoff (the store may be restarting) for up to
`retry_for_s`; after that the writer stops, and every call raises with the cause. A record
that no store can hold (`JournalRecordError`) stops it at once.
Unwritten records stay available (`unsaved()`). A retry after an append whose commit the
store could not confirm may write that batch twice: readers take each child order's
first `ChildOrderSent` and count a trade once per trade id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from actors.journal.records import Record
from actors.journal.store import JournalError, JournalRecordError, JournalStore

log = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.01
_MAX_BACKOFF_S = 1.0


class JournalBackpressure(JournalError):
    """The writer's buffer is full: the record was not taken (nor anything dropped)."""


class JournalWriter:
    """Batched, ordered appends to `store` from one event loop.

    `max_pending`: records held before `write` refuses more; `max_batch`: most records in
    one append; `timeout_s`: how long `durable`, `flush` and `close` wait for a commit.
    """

    def __init__(
        self,
        store: JournalStore,
        *,
        max_pending: int = 10_000,
        max_batch: int = 512,
        timeout_s: float = 30.0,
        retry_for_s: float = 60.0,
    ) -> None:
        if max_pending < 1 or max_batch < 1:
            raise ValueError(
                f"max_pending and max_batch must be at least 1, got {max_pending}, {max_batch}"
            )
        self.store = store
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.batches = 0  # appends committed
        self.last_error: str | None = None  # the latest failed append, even if retried since
        self._pending: deque[Record] = deque()  # not yet committed, oldest first
        self._written = 0  # records taken since start
        self._committed = 0  # of those, committed
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: JournalError | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the flushing task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="journal-writer")

    async def close(self) -> None:
        """Write everything taken so far, then stop. Raises if that cannot be done in
        `timeout_s` (the unwritten records stay in `unsaved()`)."""
        task = self._task
        if task is None or self._closing:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except TimeoutError:
            task.cancel()
            raise JournalError(
                f"the journal writer could not write {len(self._pending)} records within "
                f"{self.timeout_s} s of closing; last error: {self.last_error}"
            ) from None
        if self._failure is not None:
            raise self._failure

    async def __aenter__(self) -> JournalWriter:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- writing -----------------------------------------------------------------------------
    def write(self, record: Record) -> None:
        """Take `record` for the next batch and return at once (no I/O)."""
        if self._failure is not None:
            raise self._failure
        if self._task is None or self._closing:
            raise JournalError("the journal writer is not running (start it; or it was closed)")
        if len(self._pending) >= self.max_pending:
            raise JournalBackpressure(
                f"the journal writer holds {len(self._pending)} records not yet written (its "
                f"max_pending): the store is not keeping up (last error: {self.last_error}); "
                "the record was not taken and nothing was dropped"
            )
        self._pending.append(record)
        self._written += 1
        self._wake.set()

    async def durable(self, record: Record) -> None:
        """Write `record` and return once it is committed (with every record before it)."""
        self.write(record)
        await self._until(self._written, "commit a durable record")

    async def flush(self) -> None:
        """Return once every record written before this call is committed."""
        await self._until(self._written, "flush")

    @property
    def pending(self) -> int:
        """Records taken and not yet committed."""
        return len(self._pending)

    def unsaved(self) -> list[Record]:
        """The records not yet committed, oldest first."""
        return list(self._pending)

    # -- the flushing task -------------------------------------------------------------------
    async def _until(self, target: int, doing: str) -> None:
        if self._committed >= target:
            return
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        try:
            # On a timeout (or the caller's cancel) the future is cancelled: the flushing
            # task then passes it by.
            await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise JournalError(
                f"the journal writer could not {doing} within {self.timeout_s} s "
                f"({len(self._pending)} records waiting; last error: {self.last_error})"
            ) from None

    async def _run(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = [self._pending[i] for i in range(min(len(self._pending), self.max_batch))]
                await self._append(batch)
                for _ in batch:  # taken off only once committed: the bound counts them
                    self._pending.popleft()
                self._committed += len(batch)
                self.batches += 1
                self._release()
        except asyncio.CancelledError:
            self._fail(JournalError("the journal writer was cancelled"))
            raise
        except JournalError as e:
            self._fail(e)
        except Exception as e:  # a defect: still, every waiter learns of it
            log.exception("journal writer failed")
            self._fail(JournalError(f"the journal writer failed: {type(e).__name__}: {e}"))

    async def _append(self, batch: list[Record]) -> None:
        """Append `batch`, retrying with backoff for up to `retry_for_s`."""
        deadline = time.monotonic() + self.retry_for_s
        delay = _FIRST_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.store.append(batch)
                return
            except JournalRecordError:
                raise  # the batch holds a record no store can take: the writer stops now
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                if time.monotonic() + delay > deadline:
                    raise JournalError(
                        f"the journal writer stopped: {attempt} attempts to append "
                        f"{len(batch)} records failed over {self.retry_for_s} s; "
                        f"last error: {self.last_error}"
                    ) from None
                log.warning("journal append failed (attempt %d), retrying: %s", attempt, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _release(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._committed:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)

    def _fail(self, error: JournalError) -> None:
        self._failure = error
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)
