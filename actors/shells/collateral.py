"""`CollateralActor`: the cluster's one margin book (named, detached, in the `legato` namespace).

Before a basket sends anything it asks here for collateral on every venue it touches; the
actor refreshes those venues' account figures and reserves all or nothing in its
`MarginBook` (DESIGN §4, §5.2), so that two baskets asking at once are never promised the
same margin twice.

Baskets submitted together ask together, and share one account read per venue. A venue
whose account cannot be read (down, or too busy to answer) is asked again a few times; if
it still does not answer, the basket is refused, saying so, and nothing is reserved.

A basket asks for its reads early: `refresh` starts them (or joins the ones in flight) while
the basket is still being checked, and answers at once with each read's number. Its
`reserve` then passes those numbers as `fresh`, and a venue read since needs no read of its
own: the reservation no longer waits a venue round trip.

Those decisions are the `CollateralRunner`'s (`actors.runners.collateral`); this shell gives
it the time, timers, and the venues' accounts (`account` of the VenueActors the baskets
pass), and answers the baskets' calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from actors.journal import split_run_id
from actors.journal.records import CollateralReleased, CollateralReserved, TransferRecorded
from actors.margin import LegNeed, MarginBookSnapshot, Refused, Reserved
from actors.routing import Step
from actors.runners.collateral import AccountAnswer, CollateralRunner
from actors.runners.funding import Funding, FundingAsk, TransferAnswer, TransferView
from actors.shells.drive import LiveClock
from actors.shells.journaling import ActorJournal
from actors.shells.metrics import PUBLISH_EVERY_S, CollateralMetrics
from actors.shells.tasks import BackgroundTasks
from venues.model import TransferKind, TransferReceipt

log = logging.getLogger(__name__)


class CollateralActor:
    """The margin book behind a Ray actor (see the module docstring)."""

    def __init__(self, journal: str = "") -> None:
        """`journal`: where the journal lives ("" : none). The actor is restarted when it
        dies (`singleton_options`); the new one holds again every reservation the journal
        shows for runs not yet finished, and releases those of runs that ended."""
        self._tasks = BackgroundTasks("collateral actor")
        self._clock = LiveClock(self._tasks, time.time_ns, self._crashed)
        self.now_ns = self._clock.now_ns
        self.call_at = self._clock.call_at
        self._venues: dict[str, Any] = {}  # venue name → its VenueActor, as last passed
        self._caps: dict[str, tuple[bool, bool]] = {}  # venue → (transfers, withdrawals)
        self._waiting: set[asyncio.Future[Reserved | Refused]] = set()  # reservations
        self.runner = CollateralRunner(self)
        self.book = self.runner.book
        self._runs: dict[str, str] = {}  # basket id → its run id, while it holds collateral
        self.journal = (
            ActorJournal(journal, self._tasks, self._clock.run, "collateral") if journal else None
        )
        self._rebuilt: asyncio.Future[None] | None = None
        self.restored: list[str] = []  # runs whose reservation the journal gave back
        self._metrics = CollateralMetrics()
        self._publishing: asyncio.Task[None] | None = None

    def _crashed(self, error: BaseException) -> None:
        # A runner step failed (a bug): no reservation waiting for it is left waiting forever.
        log.error("collateral actor: a step failed: %r", error)
        for done in self._waiting:
            if not done.done():
                done.set_exception(error)

    # -- the runner's port (`CollateralPort`) ------------------------------------------------
    def read_account(self, venue_name: str, then: Callable[[AccountAnswer], None]) -> None:
        venue = self._venues[venue_name]

        async def go() -> None:
            try:
                answer: AccountAnswer = await venue.account.remote()
            except Exception as e:  # the venue's error, or its actor's death
                answer = e
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"account-{venue_name}")

    def send_transfer(
        self, step: Step, client_transfer_id: str, then: Callable[[TransferAnswer], None]
    ) -> None:
        venue = self._venues[step.venue]

        async def go() -> None:
            try:
                answer: TransferAnswer
                if step.kind is TransferKind.INTERNAL:
                    answer = await venue.transfer.remote(
                        step.asset,
                        step.amount,
                        step.source.kind,
                        step.destination.kind,
                        client_transfer_id,
                    )
                else:
                    to = self._venues[step.destination.venue]
                    address = await to.deposit_address.remote(step.asset)
                    answer = await venue.withdraw.remote(
                        step.asset, step.amount, address, client_transfer_id
                    )
            except Exception as e:  # the venue's error, or its actor's death
                answer = e
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"transfer-{client_transfer_id}")

    def transfer_status(
        self, receipt: TransferReceipt, then: Callable[[TransferAnswer], None]
    ) -> None:
        venue = self._venues[receipt.venue]

        async def go() -> None:
            try:
                answer: TransferAnswer = await venue.transfer_status.remote(receipt)
            except Exception as e:
                answer = e
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"transfer-status-{receipt.client_transfer_id}")

    def transfer_changed(self, view: TransferView) -> None:
        run_id = self._runs.get(view.basket_id, "")
        log.info("collateral actor: %s (basket %s)", view.message, view.basket_id)
        if run_id:
            self._record(transfer_record(run_id, view, self.now_ns()))

    def transfer_venues(self) -> tuple[frozenset[str], frozenset[str]]:
        return (
            frozenset(n for n, (t, _) in self._caps.items() if t),
            frozenset(n for n, (_, w) in self._caps.items() if w),
        )

    # -- from the baskets --------------------------------------------------------------------
    async def refresh(self, venues: Mapping[str, Any]) -> dict[str, int]:
        """Start reading the accounts of `venues` (name → VenueActor), joining any read in
        flight, and answer at once: each venue's read number, for `reserve(fresh=...)`."""
        self._venues.update(venues)
        self._start_metrics()
        return self.runner.refresh(venues)

    async def reserve(
        self,
        basket_id: str,
        needs: list[LegNeed],
        venues: Mapping[str, Any],
        fresh: Mapping[str, int] | None = None,
        run_id: str = "",
        funding: FundingAsk | None = None,
        every: Mapping[str, Any] | None = None,
    ) -> Reserved | Refused | Funding:
        """Refresh the account of every venue in `venues` (name → VenueActor) and reserve
        what `needs` ask, on every venue or on none. `Refused` when the shortfall is real,
        and when a venue's account could not be read (its `unknown_venues`).

        `fresh`: read numbers from `refresh`; a venue whose read of that number (or a
        newer one) succeeded is not read again.

        `funding`: the basket's `on_unfunded` and deadline; with routing on, a shortfall is
        answered `Funding` (the transfers under way) and `funded` tells how it ends.
        `every`: all the cluster's venues (name → VenueActor), where money may come from."""
        self._venues.update(every or {})
        self._venues.update(venues)
        await self._rebuild()
        if funding is not None and funding.rules is not None:
            await self._read_caps(self._venues)
        if run_id:
            self._runs[basket_id] = run_id  # the run asking: its transfers are journaled under it
        done: asyncio.Future[Reserved | Refused | Funding] = (
            asyncio.get_running_loop().create_future()
        )

        def then(result: Reserved | Refused | Funding) -> None:
            if isinstance(result, Funding) and result.reserved is not None:
                result_reserved: Reserved | Refused = result.reserved
                if self.journal is not None and self.journal.opened and run_id:
                    self._tasks.spawn(
                        self._journal_reserved(result_reserved, run_id, done, answer=result),
                        "reserved",
                    )
                    return
            if isinstance(result, Reserved) and run_id:
                self._runs[basket_id] = run_id
                if self.journal is not None and self.journal.opened:
                    # Durable before the basket hears of it: a restarted actor holds it again.
                    self._tasks.spawn(self._journal_reserved(result, run_id, done), "reserved")
                    return
            if not done.done():
                done.set_result(result)

        self._waiting.add(done)
        try:
            # Not through the clock's guard: a malformed need raises here, to the caller.
            self.runner.reserve(basket_id, needs, venues, fresh, then, funding=funding)
            result = await done
            held = self.runner.book.reservation(basket_id)
            if isinstance(result, Refused) and held is None and self._runs.get(basket_id) == run_id:
                self._runs.pop(basket_id, None)
            return result
        finally:
            self._waiting.discard(done)

    async def _read_caps(self, venues: Mapping[str, Any]) -> None:
        """What each venue's adapter can move (asked once per venue)."""
        for name in sorted(set(venues) - set(self._caps)):
            try:
                self._caps[name] = tuple(await venues[name].can_transfer.remote())  # type: ignore[assignment]
            except Exception as e:
                log.warning("collateral actor: venue %s: transfers unknown (%s)", name, e)

    async def funded(self, basket_id: str) -> Reserved | Refused:
        """The outcome of the basket's funding, once it is known: `Reserved` (all of it is
        held now; journaled before the answer) or `Refused` (a transfer failed, or the
        deadline passed)."""
        await self._rebuild()
        done: asyncio.Future[Reserved | Refused] = asyncio.get_running_loop().create_future()

        def then(result: Reserved | Refused) -> None:
            if not done.done():
                done.set_result(result)

        if not self.runner.funded(basket_id, then):
            return Refused(
                basket_id=basket_id,
                reason=f"basket {basket_id}: no funding under way (the collateral actor may "
                "have restarted); submit it again",
                ts_ns=self.now_ns(),
            )
        self._waiting.add(done)  # type: ignore[arg-type]
        try:
            result = await done
        finally:
            self._waiting.discard(done)  # type: ignore[arg-type]
        run_id = self._runs.get(basket_id, "")
        journal = self.journal
        if isinstance(result, Reserved) and run_id and journal is not None and journal.opened:
            relay: asyncio.Future[Reserved | Refused | Funding] = (
                asyncio.get_running_loop().create_future()
            )
            await self._journal_reserved(result, run_id, relay)
            answer = await relay
            assert not isinstance(answer, Funding)
            return answer
        return result

    async def transfers(self, basket_id: str = "") -> list[TransferView]:
        """The transfers asked for a basket (every basket's with no id), as they stand."""
        if basket_id:
            return self.runner.funder.transfers(basket_id)
        return self.runner.funder.all_transfers()

    async def _journal_reserved(
        self,
        result: Reserved,
        run_id: str,
        done: asyncio.Future[Reserved | Refused | Funding],
        answer: Funding | None = None,
    ) -> None:
        """Commit the reservation to the journal, then answer it; a reservation the journal
        cannot keep is given back and refused (nothing is sent for its basket)."""
        assert self.journal is not None
        record = CollateralReserved(
            run_id=run_id,
            needs=dict(result.needs),
            holdings={v: dict(h) for v, h in result.holdings.items()},
            ts_ns=result.reserved_ns,
        )
        outcome: Reserved | Refused | Funding = result if answer is None else answer
        try:
            await self.journal.durable(record)
        except Exception as e:
            self.runner.release(result.basket_id)
            self._runs.pop(result.basket_id, None)
            outcome = Refused(
                basket_id=result.basket_id,
                reason=f"the journal cannot record the reservation: {e}",
                ts_ns=self.now_ns(),
            )
        if not done.done():
            done.set_result(outcome)

    async def release(self, basket_id: str, reason: str = "") -> Reserved | None:
        """Give back what the basket holds (harmless if it holds nothing)."""
        await self._rebuild()
        held = self.runner.release(basket_id)
        run_id = self._runs.pop(basket_id, "")
        if held is not None and run_id:
            self._record(
                CollateralReleased(
                    run_id=run_id,
                    needs=dict(held.needs),
                    holdings={v: dict(h) for v, h in held.holdings.items()},
                    reason=reason,
                    ts_ns=self.now_ns(),
                )
            )
        return held

    async def snapshot(self) -> MarginBookSnapshot:
        await self._rebuild()
        return self.runner.snapshot()

    async def restored_runs(self) -> list[str]:
        """The runs whose reservation this actor held again from the journal at its start."""
        await self._rebuild()
        return list(self.restored)

    # -- metrics -----------------------------------------------------------------------------
    def _start_metrics(self) -> None:
        if self._publishing is None:
            self._publishing = self._tasks.spawn(self._publish(), "collateral-metrics")

    async def _publish(self) -> None:
        """The margin book's gauges, every `PUBLISH_EVERY_S`."""
        while True:
            self._metrics.publish(self.runner.snapshot())
            await asyncio.sleep(PUBLISH_EVERY_S)

    # -- the journal -------------------------------------------------------------------------
    def _record(self, record: CollateralReserved | CollateralReleased | TransferRecorded) -> None:
        if self.journal is not None and self.journal.opened:
            self.journal.record(record)

    async def _rebuild(self) -> None:
        """Once, before the first call is answered: open the journal and hold again what
        the runs still unfinished held (the actor may be a restart)."""
        self._start_metrics()
        if self.journal is None:
            return
        if self._rebuilt is None:
            self._rebuilt = asyncio.ensure_future(self._restore())
        await asyncio.shield(self._rebuilt)

    async def _restore(self) -> None:
        journal = self.journal
        assert journal is not None
        await journal.open()
        held: dict[str, CollateralReserved] = {}
        for record in await journal.read_all([CollateralReserved, CollateralReleased]):
            if isinstance(record, CollateralReserved):
                held[record.run_id] = record
            else:
                held.pop(record.run_id, None)
        for run_id, r in held.items():
            basket_id, _ = split_run_id(run_id)
            info = await journal.run_info(run_id)
            if info is None or info.finished:
                # Its run ended (its basket's release was lost with the old actor).
                self._record(
                    CollateralReleased(
                        run_id=run_id,
                        needs=dict(r.needs),
                        holdings=r.holdings,
                        reason="its run had ended when the collateral actor restarted",
                        ts_ns=self.now_ns(),
                    )
                )
                continue
            self.book.restore(
                Reserved(
                    basket_id=basket_id, needs=r.needs, holdings=r.holdings, reserved_ns=r.ts_ns
                )
            )
            self._runs[basket_id] = run_id
            self.restored.append(run_id)
        if self.restored:
            log.warning("collateral actor: holding again the reservations of %s", self.restored)


def transfer_record(run_id: str, view: TransferView, now_ns: int) -> TransferRecorded:
    """The journal's record of a transfer as it stands."""
    return TransferRecorded(
        run_id=run_id,
        client_transfer_id=view.client_transfer_id,
        transfer_kind=view.kind.value,
        venue=view.venue,
        asset=view.asset,
        amount=view.amount,
        source=view.source,
        destination=view.destination,
        state=view.state.value,
        requested_ns=view.requested_ns,
        updated_ns=view.updated_ns,
        venue_transfer_id=view.venue_transfer_id,
        reason=view.reason,
        ts_ns=now_ns,
    )
