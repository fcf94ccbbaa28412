"""`LegActor`: one per leg, on a node near its venue; the live driver of a `LegRunner`.

The shell owns what is I/O: the leg's venue connection (its client, execution-report and
market streams), the venue clock's measurement, and the snapshots' way to the basket. Every
decision (what to send and when, what an answer means, stop, unwind, reconcile, the
report) is the `LegRunner`'s (`actors.runners.leg`); the shell hands it the events and
carries out its calls.

Order-sending methods run at most once: the actor is created with `max_task_retries=0`, and
every child order has a deterministic client order id, and an order whose answer was lost is
settled by querying that id, never by sending it again.

A leg actor may be created ahead of any basket and warmed up (`connect`: the venue client
started, the venue clock measured and tracked) by the engine's warm pool; `arm` then only
does what is particular to the leg (its symbol's market stream and book).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from actors.clock import ClockEstimate, ClockOffsetEstimator
from actors.leg import Reconciliation
from actors.messages import LegProgress
from actors.protocol import ArmLeg, LegArmed, Placement, VenueEndpoint
from actors.report import LegReport
from actors.runners.journal import NO_JOURNAL
from actors.runners.leg import LegRunner, Unwound, with_extras
from actors.shells import here
from actors.shells.channel import Outbox
from actors.shells.drive import ClientCalls, LiveClock
from actors.shells.journaling import ActorJournal
from actors.shells.lease import PoolLease
from actors.shells.metrics import PUBLISH_EVERY_S, ClientCounters
from actors.shells.remote import ref_result
from actors.shells.tasks import BackgroundTasks
from actors.shells.venue import client_for
from actors.sync import AdjustLeg
from venues.client import VenueClient, take_samples
from venues.errors import VenueError
from venues.model import BookTicker, MarketTrade

__all__ = ["VENUE_TICK_NS", "LegActor"]

log = logging.getLogger(__name__)
T = TypeVar("T")

VENUE_CLOCK_PINGS = 8  # server-time exchanges when arming; the narrowest bounds the offset
VENUE_CLOCK_EVERY_S = 2.0  # then one more this often, so drift is tracked over the basket
VENUE_TICK_NS = 1_000_000  # Binance stamps times in milliseconds
BASKET_WATCH_S = 2.0  # how often a working leg checks that its basket actor lives
DELIVERY_SAMPLES = 64  # book updates whose delivery delay the leg keeps (the median is used)
_ZERO = Decimal(0)


class _Port:
    """The `LegPort` a live leg gives its runner."""

    def __init__(self, clock: LiveClock, venue: ClientCalls, progress: Outbox[LegProgress]):
        self.now_ns = clock.now_ns
        self.call_at = clock.call_at
        self.venue = venue
        self.send = progress.send


class LegActor:
    """One leg of one basket (see the module docstring)."""

    def __init__(self, venue: str, clock_offset_ns: int = 0) -> None:
        self.venue = venue
        # A test hook (DESIGN §6): a node whose clock is off by a known amount.
        self._offset = clock_offset_ns
        self._cmd: ArmLeg | None = None
        self._client: VenueClient | None = None
        self._progress: Outbox[LegProgress] | None = None  # to the basket
        self._runner: LegRunner | None = None
        self._tasks = BackgroundTasks(f"leg on {venue}")
        self._clock = LiveClock(self._tasks, self.now_ns, self._crashed)
        self._endpoint: VenueEndpoint | None = None  # what the client is connected to
        self._connection: list[asyncio.Task[None]] = []  # the connection's own tasks
        self._connecting = asyncio.Lock()
        self._taken = asyncio.Event()  # armed (or closed): no longer idle in a warm pool
        self._lease = PoolLease(self.close, f"pooled leg on {venue}")
        self._placement: Placement | None = None
        self._venue_clock = ClockOffsetEstimator(remote_resolution_ns=VENUE_TICK_NS)
        # How late the leg's book updates arrive (venue stamp → here), the newest ones.
        self._delivery: deque[int] = deque(maxlen=DELIVERY_SAMPLES)
        self._journal: ActorJournal | None = None
        self._counters = ClientCounters(venue)

    def now_ns(self) -> int:
        return time.time_ns() + self._offset

    # -- basics ------------------------------------------------------------------------------
    def ping(self) -> int:
        """This leg's clock, for the basket's offset estimate (DESIGN §6)."""
        return self.now_ns()

    def placement(self) -> Placement:
        return here()

    @property
    def _r(self) -> LegRunner:
        assert self._runner is not None, "arm() first"
        return self._runner

    def _crashed(self, error: BaseException) -> None:
        if self._runner is not None:
            self._runner.crash(error)

    # -- warm up and arm ----------------------------------------------------------------------
    async def connect(self, endpoint: VenueEndpoint) -> None:
        """Start the venue client, measure the venue clock and keep tracking it: all the
        arming that does not depend on the leg. The warm pool calls it ahead of any basket;
        `arm` calls it too, and it does nothing when already connected to `endpoint`."""
        async with self._connecting:
            if self._client is not None and self._endpoint == endpoint:
                return
            await self._disconnect()  # a venue started afresh (new epoch): a new connection
            client = client_for(endpoint, timeout_s=10.0, resolve_timeout_s=3.0)
            await client.start()
            self._client, self._endpoint = client, endpoint
            self._venue_clock = ClockOffsetEstimator(remote_resolution_ns=VENUE_TICK_NS)
            try:
                # A busy venue leaves a sample unanswered now and then: it is taken again.
                await take_samples(self._sample_venue_clock, VENUE_CLOCK_PINGS)
            except BaseException:  # not connected after all: the next call starts afresh
                await self._disconnect()
                raise
            # The basket's handle comes with `arm`, and Ray loads its class's module to
            # rebuild it: 50-100 ms of imports on a small machine, done here while idle.
            importlib.import_module("actors.shells.basket")
            self._connection = [
                self._tasks.spawn(self._track_venue_clock(), f"{self.venue}-clock"),
                # The account's order reports flow from now on (other baskets' orders on the
                # same account too): read them, or an idle connection's queue would overflow.
                self._tasks.spawn(self._follow_reports(), f"{self.venue}-reports"),
                self._tasks.spawn(self._publish_counters(), f"{self.venue}-counters"),
            ]

    async def _disconnect(self) -> None:
        for task in self._connection:
            task.cancel()
        for task in self._connection:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._connection = []
        if self._client is not None:
            self._counters.publish(self._client)  # what it counted since the last time
            await self._client.close()
        self._client, self._endpoint = None, None

    def lease(self, for_s: float) -> None:
        """The warm pool still wants this idle actor for `for_s` seconds (`PoolLease`): a
        pooled actor is detached, and one whose pool stops renewing exits by itself."""
        self._lease.renew(for_s)

    def lent(self) -> None:
        """Handed out to a basket: off the pool's lease (it may wait to be armed)."""
        self._lease.end()

    async def idle(self) -> None:
        """Returns once the leg is armed or closed. The warm pool keeps this call pending
        on every idle leg: should the actor die, the call fails at once in the pool's
        process, which then knows, without asking, not to hand the leg out."""
        await self._taken.wait()

    async def recover(
        self, cmd: ArmLeg, basket: Any, deadline_s: float, resume_after_ns: int | None = None
    ) -> None:
        """Stand in for a leg whose actor was lost: connect, and rebuild its record from the
        venue's orders under its client order ids (`LegRunner.recover`). The leg then
        stops, unwinds and reconciles like any other, and sends nothing of its own.

        `resume_after_ns`: instead, carry on the leg's schedule, which began that long
        before this call (`LegRunner.resume`): the basket goes on (policy `complete`)."""
        asked = self.now_ns()
        await self.arm(cmd, basket)
        deadline = self.now_ns() + int(deadline_s * 1e9)
        written = await self._written_ahead(cmd)
        resume = resume_after_ns is not None
        error = await self._answer(
            lambda then: self._r.recover(deadline, then, written, resume=resume)
        )
        if error is not None:
            raise error
        if resume_after_ns is not None:
            self._r.resume(asked - resume_after_ns, self._typical_rtt_ns(), self._delivery_ns())

    async def _written_ahead(self, cmd: ArmLeg) -> dict[int, int]:
        """The leg's orders the journal shows written ahead and not settled (slice number →
        when sent): the venue may never have heard of them."""
        if self._journal is None:
            return {}
        await self._journal.flush()
        orders = await self._journal.store.orders(cmd.run_id)
        return {
            o.order.n: o.order.sent_ns
            for o in orders
            if o.leg_id == cmd.leg.leg_id and not o.order.status.is_terminal
        }

    def _typical_rtt_ns(self) -> int:
        """The median round trip of this leg's own venue-clock exchanges (those of the
        clock window, refreshed every `VENUE_CLOCK_EVERY_S`): what a request to the venue
        usually takes there and back, from this process as it is now. The client's own
        figure, from its start, before any."""
        rtts = sorted(sample.rtt_ns for sample in self._venue_clock.samples)
        if rtts:
            return rtts[len(rtts) // 2]
        return (self._client.typical_rtt_ns if self._client is not None else None) or 0

    async def _sample_venue_clock(self) -> None:
        """One server-time exchange, on this leg's own clock (which may be off from true
        time on its node: the offset measured is venue − leg, whatever the node's error)."""
        assert self._client is not None
        t_send = self.now_ns()
        remote = await self._client.server_time_ns()
        self._venue_clock.add_sample(t_send, remote, self.now_ns())

    async def _publish_counters(self) -> None:
        """The venue client's reconnections and rate-limit answers, as metrics."""
        while True:
            await asyncio.sleep(PUBLISH_EVERY_S)
            self._counters.publish(self._client)

    async def _track_venue_clock(self) -> None:
        """Keep measuring the venue clock while the leg lives (DESIGN §6: continuous,
        drift-aware). A failed exchange is skipped; the venue's errors show elsewhere."""
        while True:
            await asyncio.sleep(VENUE_CLOCK_EVERY_S)
            try:
                await self._sample_venue_clock()
            except VenueError as e:
                log.debug("leg %s: venue clock sample: %s", self.venue, e)

    async def arm(self, cmd: ArmLeg, basket: Any) -> LegArmed:
        """Connect to the venue (unless warm already), follow the leg's book and trades."""
        if self._cmd is not None:
            raise RuntimeError(f"leg {self._cmd.leg.leg_id} is already armed")
        self._taken.set()
        self._lease.end()  # its basket's now (the supervisor ends it with the basket)
        self._cmd = cmd
        leg = cmd.leg
        self._progress = Outbox(basket.on_progress.remote, f"leg {leg.leg_id} progress")
        await self.connect(cmd.endpoint)
        client = self._client
        assert client is not None
        journal: ActorJournal | None = None
        if cmd.run_id and cmd.journal:
            journal = ActorJournal(
                cmd.journal, self._tasks, self._clock.run, f"leg {leg.leg_id}", cmd.audit
            )
            book, _ = await asyncio.gather(client.order_book(leg.symbol, 5), journal.open())
        else:
            book = await client.order_book(leg.symbol, 5)
        self._journal = journal
        port = _Port(self._clock, ClientCalls(client, self._clock, self._tasks), self._progress)
        self._runner = LegRunner(
            cmd,
            port,
            book=book.top(),
            ack_kind=client.ack_semantics,
            journal=journal if journal is not None else NO_JOURNAL,
        )
        self._tasks.spawn(self._follow_market(), f"{leg.leg_id}-market")
        self._tasks.spawn(self._watch_basket(basket), f"{leg.leg_id}-basket-watch")
        self._placement = here()
        await self._progress.open(cmd.progress_inbox, self._placement.node_id)
        # A first snapshot now: the handle's first call costs more than the next ones, and
        # the next one is the launch order's.
        self._runner.publish()
        return LegArmed(
            leg_id=leg.leg_id,
            placement=self._placement,
            ack_kind=client.ack_semantics,
            venue_clock_offset_ns=self._venue_clock.offset_ns,
            venue_clock_rtt_ns=self._venue_clock.best.rtt_ns,
            venue_typical_rtt_ns=self._typical_rtt_ns(),
            mid=book.mid,
        )

    async def _follow_reports(self) -> None:
        client = self._client
        assert client is not None
        while True:
            try:
                async for report in client.execution_reports():
                    # Before arming nothing is ours: the account's other orders pass by.
                    if self._runner is not None:
                        self._clock.run(lambda r=report: self._r.on_report(r))
                return
            except VenueError as e:  # the stream lost reports: settle by query, then go on
                log.warning("leg on %s: execution reports: %s", self.venue, e)
                if self._runner is not None:
                    self._clock.run(self._r.on_stream_gap)

    async def _watch_basket(self, basket: Any) -> None:
        """A leg never trades unsupervised: once its basket actor is gone (a leg from the
        warm pool is not owned by it, and would outlive it), it stops. The basket's
        recovery brings up fresh legs of its own."""
        while True:
            await asyncio.sleep(BASKET_WATCH_S)
            try:
                await asyncio.wait_for(ref_result(basket.alive.remote()), BASKET_WATCH_S * 5)
            except TimeoutError:
                continue  # busy, not gone
            except Exception as e:
                log.warning("leg on %s: its basket is gone (%r): stopping", self.venue, e)
                self._clock.run(lambda: self._r.stop("its basket actor is gone", lambda _p: None))
                return

    async def _follow_market(self) -> None:
        runner = self._r
        async for event in self._client.market_events([runner.leg.symbol]):  # type: ignore[union-attr]
            if isinstance(event, BookTicker):
                if event.ts_ns and self._venue_clock.ready:
                    # The venue stamped it: on this leg's clock, how late did it arrive?
                    stamped = event.ts_ns - self._venue_clock.offset_ns
                    self._delivery.append(self.now_ns() - stamped)
                self._clock.run(lambda e=event: runner.on_market(e, _ZERO, _ZERO))
            elif isinstance(event, MarketTrade):
                qty, notional = event.quantity, event.price * event.quantity
                self._clock.run(lambda q=qty, v=notional: runner.on_market(None, q, v))

    # -- fire and run ------------------------------------------------------------------------
    def fire(self, fire_at_ns: int, schedule_ns: int | None = None) -> None:
        """Have the first child order reach the venue at `fire_at_ns` of this leg's clock,
        then work the leg (`LegRunner.fire`, with this leg's measured round trip);
        `schedule_ns`: when the basket's schedule began, for a leg that fires late."""
        runner = self._runner
        if runner is None or self._client is None:
            raise RuntimeError("fire() needs an armed leg that has not fired yet")
        runner.fire(fire_at_ns, self._typical_rtt_ns(), self._delivery_ns(), schedule_ns)

    def _delivery_ns(self) -> int | None:
        """The median delay of the leg's book updates (venue stamp → here), None before any."""
        delivery = sorted(self._delivery)
        return delivery[len(delivery) // 2] if delivery else None

    def progress(self) -> LegProgress:
        return self._r.progress()

    # -- commands from the basket ------------------------------------------------------------
    def adjust(self, adj: AdjustLeg) -> None:
        """Obey the synchronizer (`LegRunner.adjust`)."""
        self._clock.run(lambda: self._r.adjust(adj))

    async def stop(self, reason: str = "stopped by the basket") -> LegProgress:
        """Send nothing more; wait (bounded) for the orders in flight to finish."""
        return await self._answer(lambda then: self._r.stop(reason, then))

    async def unwind(self, deadline_s: float = 30.0) -> Unwound:
        """Trade the leg's net fill back to zero (policy `unwind`) within `deadline_s`;
        what is left, and why, comes back (`LegRunner.unwind`)."""
        deadline = self.now_ns() + int(deadline_s * 1e9)
        return await self._answer(lambda then: self._r.unwind(deadline, then))

    async def reconcile(self, deadline_s: float = 30.0) -> Reconciliation:
        """Confirm every child order with the venue (DESIGN §5.7), retrying transient venue
        errors for up to `deadline_s`; the venue's figures win."""
        deadline = self.now_ns() + int(deadline_s * 1e9)
        return await self._answer(lambda then: self._r.reconcile(deadline, then))

    async def _answer(self, ask: Callable[[Callable[[T], None]], None]) -> T:
        """Ask the runner something it answers through a callback, and wait for it."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def then(value: T) -> None:
            if not done.done():
                done.set_result(value)

        self._clock.run(lambda: ask(then))
        return await done

    def report(self) -> LegReport:
        """The leg as it ended, times on this leg's clock (the basket maps them)."""
        runner = self._r
        first = runner.ledger.first
        # The venue's offset where it matters most: at the leg's first venue stamp.
        clock: ClockEstimate | None = None
        if self._venue_clock.ready:
            clock = self._venue_clock.estimate(first.sent_ns if first is not None else None)
        placement = self._placement
        return with_extras(
            runner.report(),
            node_id="" if placement is None else placement.node_id,
            node_labels={} if placement is None else placement.node_labels,
            venue_clock_offset_ns=clock.offset_ns if clock else 0,
            venue_clock_rtt_ns=self._venue_clock.best.rtt_ns if clock else None,
            venue_clock_uncertainty_ns=clock.uncertainty_ns if clock else None,
            venue_clock_drift_ppm=clock.drift_ppm if clock else None,
            venue_clock_at_ns=clock.at_ns if clock else None,
        )

    async def close(self) -> None:
        self._taken.set()
        if self._progress is not None:
            self._progress.close()
        if self._journal is not None:  # first: its commits are among the tasks cancelled next
            await self._journal.close()
        await self._tasks.cancel_all()
        if self._client is not None:
            await self._client.close()
