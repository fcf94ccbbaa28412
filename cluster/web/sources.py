"""Every Ray call and journal read of the web view, each bounded by a timeout.

The server asks `DeskReader` and never Ray or the journal directly (the one layer where they
are called, as Ray Serve's controller keeps its own). A source that does not answer in time
becomes a line in `DeskState.problems`; the rest of the view is still drawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import ray

from actors.journal.records import BasketReported
from actors.protocol import BasketStatus, HedgeStatement
from actors.report import load_report
from actors.shells.remote import COLLATERAL_NAME, HEDGE_NAME, REGISTRY_NAME, ref_result
from cluster.journal_cli import JournalLookupError, existing_store, utc, where
from cluster.web import view

if TYPE_CHECKING:
    from actors.journal import JournalStore, RunInfo
    from actors.lifecycle import BasketState

log = logging.getLogger(__name__)
T = TypeVar("T")

CALL_TIMEOUT_S = 3.0  # one actor's answer; a slow one must not hold up the page
RUNS_LIMIT = 50  # past runs shown, the newest
RUNS_EVERY_S = 5.0  # how often the journal is read again while nothing ends


class SourceError(Exception):
    """A source did not answer (in time, or at all): one line for the page."""


class NotFound(LookupError):
    """What a request names does not exist (a basket not running, a run not journaled)."""


class DeskReader:
    """Reads the desk of one namespace: its baskets, hedge desk, collateral and journal.

    `journal` overrides where the registry says the journal is. Lives on one event loop."""

    def __init__(
        self, namespace: str, *, journal: str | None = None, timeout_s: float = CALL_TIMEOUT_S
    ) -> None:
        self.namespace = namespace
        self.timeout_s = timeout_s
        self._journal_override = journal
        self._location: str | None = journal
        self._actors: dict[str, Any] = {}
        self._store: JournalStore | None = None
        self._runs: list[RunInfo] = []
        self._runs_read_at = 0.0
        self._runs_problem = ""
        self._last_running: frozenset[str] = frozenset()
        self._reports: dict[str, str] = {}  # run id → its HTML (a finished run's is final)

    # -- the actors ------------------------------------------------------------------------
    async def _actor(self, name: str) -> Any:
        actor = self._actors.get(name)
        if actor is None:
            try:
                actor = await asyncio.to_thread(ray.get_actor, name, namespace=self.namespace)
            except ValueError:
                raise SourceError(
                    f"{name}: no such actor in namespace {self.namespace!r} (no engine has "
                    "started there)"
                ) from None
            self._actors[name] = actor
        return actor

    async def _ask(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(ref_result(call), self.timeout_s)
        except TimeoutError:
            raise SourceError(f"{what}: no answer within {self.timeout_s:g} s") from None
        except ray.exceptions.RayError as e:
            raise SourceError(f"{what}: {type(e).__name__}") from None

    async def _singleton(self, name: str, method: str, *args: Any) -> Any:
        actor = await self._actor(name)
        try:
            return await self._ask(f"{name}.{method}", getattr(actor, method).remote(*args))
        except SourceError:
            self._actors.pop(name, None)  # look it up again next time (it may have restarted)
            raise

    async def running(self) -> dict[str, Any]:
        """The live basket actors by basket id (the registry's list)."""
        return await self._singleton(REGISTRY_NAME, "running")

    async def journal_location(self) -> str:
        if self._location is None:
            self._location = await self._singleton(REGISTRY_NAME, "journal_location")
        return self._location

    async def _statuses(self, actors: dict[str, Any]) -> list[BasketStatus]:
        async def one(basket_id: str, actor: Any) -> BasketStatus | None:
            try:
                return await self._ask(f"basket {basket_id}", actor.status.remote())
            except SourceError:  # it ended between the listing and the call
                return None

        got = await asyncio.gather(*(one(b, a) for b, a in sorted(actors.items())))
        return [s for s in got if s is not None]

    # -- the whole view --------------------------------------------------------------------
    async def state(self, *, actions_enabled: bool) -> view.DeskState:
        """One snapshot of everything the page shows."""
        problems: list[str] = []

        async def attempt(call: Awaitable[T], default: T) -> T:
            try:
                return await call
            except SourceError as e:
                problems.append(str(e))
                return default

        running, admission = await asyncio.gather(
            attempt(self.running(), {}),
            attempt(self._singleton(REGISTRY_NAME, "admission_queue"), {}),
        )
        statuses = await self._statuses(running)
        snapshot, transfers, positions, held_usd = await asyncio.gather(
            attempt(self._singleton(COLLATERAL_NAME, "snapshot"), None),
            attempt(self._singleton(COLLATERAL_NAME, "transfers"), None),
            attempt(self._singleton(HEDGE_NAME, "positions"), None),
            attempt(self._singleton(HEDGE_NAME, "held"), None),
        )
        ended = self._last_running - running.keys()
        self._last_running = frozenset(running)
        runs = await self._recent_runs(force=bool(ended))
        if self._runs_problem:
            problems.append(self._runs_problem)
        held = [
            view.HeldHedge(
                basket_id=basket_id,
                desk_position_usd=float(usd),
                release_url=view.release_url(basket_id),
            )
            for basket_id, usd in sorted((held_usd or {}).items())
        ]
        now = time.time_ns()
        shown = {s.basket_id for s in statuses}
        queue = admission if isinstance(admission, dict) else {}
        return view.DeskState(
            ts_ns=now,
            namespace=self.namespace,
            journal=where(self._location) if self._location else "",
            actions_enabled=actions_enabled,
            baskets=[view.basket_row(s, view.queue_of(queue, s.basket_id)) for s in statuses],
            waiting=[b for b in queue.get("waiting", []) if b not in shown],
            hedge=None if positions is None else view.HedgeDesk(positions=positions, held=held),
            collateral=None if snapshot is None else view.collateral_of(snapshot),
            transfers=[view.transfer_row(t, now) for t in transfers or [] if not t.state.is_final],
            runs=[run_link(r) for r in runs],
            problems=problems,
        )

    # -- the journal -----------------------------------------------------------------------
    async def _opened_store(self) -> JournalStore:
        if self._store is None:
            try:
                location = await self.journal_location()
            except SourceError as e:
                raise JournalLookupError(f"journal: {e}") from None
            if not location:
                raise JournalLookupError("this engine keeps no journal: no past runs to show")
            store = existing_store(location)
            await store.open()
            self._store = store
        return self._store

    async def _recent_runs(self, *, force: bool = False) -> list[RunInfo]:
        """The recent runs, read again when due (or `force`d)."""
        if not force and time.monotonic() - self._runs_read_at < RUNS_EVERY_S:
            return self._runs
        self._runs_read_at = time.monotonic()
        try:
            runs = await self.runs()
        except (JournalLookupError, OSError, msgspec.DecodeError) as e:
            self._runs_problem = f"journal: {e}"
        except Exception as e:  # a JournalError, or the store's driver failing
            self._runs_problem = f"journal: {type(e).__name__}: {e}"
            await self._drop_store()
        else:
            self._runs_problem = ""
            self._runs = runs
        return self._runs

    async def runs(self, limit: int = RUNS_LIMIT) -> list[RunInfo]:
        """The newest `limit` runs of the journal, newest first."""
        store = await self._opened_store()
        runs = await asyncio.wait_for(store.runs(), self.timeout_s)
        runs.sort(key=lambda r: (r.created_ns, r.basket_id, r.number), reverse=True)
        return runs[:limit]

    async def report_html(self, run_id: str) -> str:
        """The run's report as an HTML page (`cluster.render.html_report`)."""
        if run_id in self._reports:
            return self._reports[run_id]
        store = await self._opened_store()
        info = await store.run(run_id)
        if info is None:
            raise NotFound(f"no run {run_id!r} in the journal; GET /api/runs lists them")
        entries = await store.records(run_id, (BasketReported,))
        if not entries:
            raise NotFound(f"run {run_id!r} has no report yet: it is {info.state.value}")
        record = entries[-1].record
        assert isinstance(record, BasketReported)
        page = await asyncio.to_thread(_render, record.report)
        if info.finished:
            while len(self._reports) >= 32:
                self._reports.pop(next(iter(self._reports)))
            self._reports[run_id] = page
        return page

    async def _drop_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                await store.close()
        if self._journal_override is None:
            self._location = None  # ask the registry again: the engine may have restarted

    # -- the actions -----------------------------------------------------------------------
    async def cancel(self, basket_id: str, reason: str) -> BasketState:
        """Ask a running basket to cancel; the state it was in."""
        actor = (await self.running()).get(basket_id)
        if actor is None:
            raise NotFound(f"no basket {basket_id!r} is running in namespace {self.namespace!r}")
        return await self._ask(f"basket {basket_id}", actor.cancel.remote(reason))

    async def release(self, basket_id: str) -> list[HedgeStatement]:
        """Let go of a basket's held hedge; what the desk did, per desk it was in."""
        actor = await self._actor(HEDGE_NAME)
        # Releasing trades: it may take longer than a read.
        call = actor.release.remote(basket_id)
        self._runs_read_at = 0.0  # the run it ends shows at the next reading
        try:
            return await asyncio.wait_for(ref_result(call), max(self.timeout_s, 30.0))
        except TimeoutError:
            raise SourceError(f"{HEDGE_NAME}.release: no answer within 30 s") from None
        except ray.exceptions.RayError as e:
            raise SourceError(f"{HEDGE_NAME}.release: {type(e).__name__}") from None

    async def close(self) -> None:
        await self._drop_store()


def _render(report_json: str) -> str:
    from cluster.render import html_report  # noqa: PLC0415 -- numpy and matplotlib, when asked

    return html_report(load_report(report_json))


def run_link(info: RunInfo) -> view.RunLink:
    return view.RunLink(
        run_id=info.run_id,
        basket_id=info.basket_id,
        number=info.number,
        state=info.state.value,
        finished=info.finished,
        created=utc(info.created_ns),
        updated=utc(info.updated_ns),
        created_ns=info.created_ns,
        updated_ns=info.updated_ns,
        report_url=view.report_url(info.run_id) if info.finished else None,
    )
