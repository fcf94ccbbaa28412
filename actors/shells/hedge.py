"""`HedgeActor`: the cluster's one hedger (named, detached, in the `legato` namespace).

Every basket with a hedge section sends its imbalance here as factor exposures, a monotonic
snapshot per change (DESIGN §5.6), by a direct stream from the same node
(`actors.shells.channel`), else by `report`. Baskets that hedge with the same instruments on
the same venue share one desk. Each desk's decisions (netting, sizing, when to trade, what
a failed order means, closing a basket) are its `DeskRunner`'s (`actors.runners.hedge`);
this shell opens the desks, reaches their venue (by a connection of its own when the venue's
actor shares this node, else through that `VenueActor`), marks them at the venue's mids, and
hands the runners the baskets' snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import msgspec
import ray
from ray.exceptions import ActorDiedError

from actors.hedge import HEDGE_ORDER_PREFIX
from actors.journal.records import HedgeOrderReported, HedgeOrderSent, HedgePosition, Record
from actors.protocol import (
    AuditSettings,
    ExposureReport,
    HedgeFill,
    HedgeStatement,
    InboxAddress,
    PlaceHedge,
    VenueEndpoint,
)
from actors.risk import RiskSettings
from actors.runners.hedge import DeskPort, DeskRunner
from actors.shells.channel import Inbox
from actors.shells.drive import LiveClock
from actors.shells.journaling import ActorJournal
from actors.shells.metrics import PUBLISH_EVERY_S, HedgeMetrics
from actors.shells.tasks import BackgroundTasks
from actors.shells.venue import VenueGateway
from actors.spec import HedgeSpec
from venues.errors import OutcomeUnknown
from venues.model import Side

log = logging.getLogger(__name__)

MARK_EVERY_S = 0.5  # how often a desk re-marks its positions at the venue's mids
T = TypeVar("T")

DeskKey = tuple[str, str, tuple[str, ...], bytes]  # venue, epoch, instruments, risk model


class Trader(Protocol):
    """How a desk reaches its venue: `VenueGateway` (its own connection, on the venue's
    node) or `_ViaVenueActor` (a Ray call to the venue's actor)."""

    async def hedge(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional: float,
        rest_ns: int = 0,
    ) -> HedgeFill | None: ...

    async def positions(self) -> dict[str, Decimal]: ...

    async def withdraw_stale(self, symbols: list[str], own_prefix: str) -> list[str]: ...

    async def settle(self, symbol: str, client_order_id: str) -> bool: ...

    async def stop(self) -> None: ...


class _ViaVenueActor:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def hedge(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional: float,
        rest_ns: int = 0,
    ) -> HedgeFill | None:
        fill: HedgeFill | None = await self.actor.hedge.remote(
            client_order_id, symbol, side, qty, notional, rest_ns
        )
        return fill

    async def positions(self) -> dict[str, Decimal]:
        held: dict[str, Decimal] = await self.actor.positions.remote()
        return held

    async def withdraw_stale(self, symbols: list[str], own_prefix: str) -> list[str]:
        cancelled: list[str] = await self.actor.withdraw_stale.remote(symbols, own_prefix)
        return cancelled

    async def settle(self, symbol: str, client_order_id: str) -> bool:
        ended: bool = await self.actor.settle.remote(symbol, client_order_id)
        return ended

    async def stop(self) -> None:
        pass


async def _trader(venue: Any, symbols: list[str], risk: RiskSettings) -> Trader:
    """A desk's own connection to its venue when the venue's actor shares this node (the
    hedge order then leaves this process: no Ray call on the fill → hedge path); else the
    venue actor, which is near the venue (DESIGN §4)."""
    endpoint: VenueEndpoint | None = await venue.endpoint.remote()
    placement = None if endpoint is None else endpoint.placement
    if endpoint is not None and placement is not None and placement.node_id == _node():
        gateway = VenueGateway(endpoint, risk)
        try:
            await gateway.start(symbols)
            return gateway
        except Exception as e:  # its credentials, say: the venue actor has them
            log.warning("hedge desk %s: own connection failed (%s)", endpoint.venue, e)
            await gateway.stop()
    return _ViaVenueActor(venue)


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


class _Desk:
    """One desk: its runner, and how it reaches its venue."""

    def __init__(
        self,
        key: DeskKey,
        venue: Any,
        trader: Trader,
        runner_of: Callable[[DeskPort], DeskRunner],
        clock: LiveClock,
        tasks: BackgroundTasks,
        desk_id: str = "",
        journal: ActorJournal | None = None,
    ) -> None:
        self.key = key
        self.desk_id = desk_id  # its stream in the journal
        self.journal = journal
        self.venue = venue
        self.trader = trader
        self._clock = clock
        self._tasks = tasks
        self.now_ns = clock.now_ns
        self.call_at = clock.call_at
        self.runner = runner_of(self)
        self.marker: asyncio.Task[None] | None = None

    @property
    def epoch(self) -> str:
        return self.key[1]

    # -- the runner's port (`DeskPort`) ----------------------------------------------------
    def hedge(self, cmd: PlaceHedge, then: Callable[[HedgeFill | Exception | None], None]) -> None:
        c = cmd
        self._record(
            HedgeOrderSent(
                desk_id=self.desk_id,
                client_order_id=c.client_order_id,
                venue=self.key[0],
                symbol=c.symbol,
                side=c.side,
                qty=c.qty,
                notional_usd=c.notional_usd,
                ts_ns=self.now_ns(),
            )
        )

        def answered(answer: HedgeFill | Exception | None) -> None:
            then(answer)  # the runner books it first: the position recorded is the new one
            if isinstance(answer, HedgeFill):
                self._record(
                    HedgeOrderReported(
                        desk_id=self.desk_id, report=answer.report, ts_ns=self.now_ns()
                    )
                )
                self._record_position(c.symbol)
            elif self.journal is not None and self.journal.opened and self.desk_id:
                reason = (
                    f"{type(answer).__name__}: {answer}"
                    if answer is not None
                    else "NOT_SENT: sized to nothing, or under the venue's minimum"
                )
                self.journal.hedge_unanswered(
                    self.desk_id,
                    c.client_order_id,
                    reason,
                    unknown=isinstance(answer, OutcomeUnknown),
                    now_ns=self.now_ns(),
                )

        self._call(
            self.trader.hedge(
                c.client_order_id, c.symbol, c.side, c.qty, c.notional_usd, c.rest_ns
            ),
            answered,
        )

    def _record(self, record: Record) -> None:
        if self.journal is not None and self.journal.opened and self.desk_id:
            self.journal.record(record)

    def _record_position(self, symbol: str) -> None:
        runner = self.runner
        shares = runner.book.sizer.shares(runner.book.baskets) or {}
        self._record(
            HedgePosition(
                desk_id=self.desk_id,
                symbol=symbol,
                qty=Decimal(repr(runner.ledger.qty.get(symbol, 0.0))),
                baskets={b: float(v) for b, v in shares.items()},
                ts_ns=self.now_ns(),
            )
        )

    def resync(self, held: dict[str, Decimal]) -> None:
        """Take the venue's positions in the desk's instruments as its own (a desk opened
        by a hedge actor that restarted inherits what its predecessor held)."""
        for i in self.runner.instruments:
            self.runner.ledger.qty[i.symbol] = float(held.get(i.symbol, 0))
            self._record_position(i.symbol)

    def positions(self, then: Callable[[dict[str, Decimal] | Exception], None]) -> None:
        def answered(held: dict[str, Decimal] | Exception) -> None:
            then(held)  # the runner books it first: the positions recorded are the new ones
            if not isinstance(held, Exception):  # a read-back after an error, or a settle
                for i in self.runner.instruments:
                    self._record_position(i.symbol)

        self._call(self.trader.positions(), answered)

    def settle(
        self, symbol: str, client_order_id: str, then: Callable[[bool | Exception], None]
    ) -> None:
        def answered(answer: bool | Exception) -> None:
            if answer is True:  # its `HedgeOrderOpen` was logged as an error: so is its end
                log.warning(
                    "hedge desk %s: hedge order %s (%s) is ended at the venue; its position "
                    "is read back",
                    self.key[0],
                    client_order_id,
                    symbol,
                )
            then(answer)

        self._call(self.trader.settle(symbol, client_order_id), answered)

    def _call(self, call: Awaitable[T], then: Callable[[T | Exception], None]) -> None:
        async def go() -> None:
            try:
                answer: T | Exception = await call
            except Exception as e:
                log.warning("hedge desk %s: %s", self.key[0], e)
                answer = e
            self._clock.run(lambda: then(answer))

        self._tasks.spawn(go(), f"desk-{self.key[0]}")


def _desk_key(spec: HedgeSpec, epoch: str, risk: RiskSettings) -> DeskKey:
    # Baskets net in one desk only when they value risk alike: same venue, venue
    # incarnation, instruments and risk model.
    return (spec.venue, epoch, tuple(sorted(spec.instruments)), msgspec.json.encode(risk))


class HedgeActor:
    """The cluster's hedger (see the module docstring)."""

    def __init__(self, journal: str = "", audit: AuditSettings | None = None) -> None:
        """`journal`: where the journal lives ("" : none); `audit`: the audit log's
        settings (the config's `[audit]`). The actor is restarted when it dies
        (`singleton_options`); a desk the new one opens starts from the venue's positions
        in its instruments, so that a hedge held before is carried on (netted, and traded
        back as its baskets close), never forgotten nor doubled."""
        self._desks: dict[DeskKey, _Desk] = {}
        self._tasks = BackgroundTasks("hedge actor")
        self._clock = LiveClock(self._tasks, time.time_ns, self._crashed)
        self.journal = (
            ActorJournal(journal, self._tasks, self._clock.run, "hedge", audit) if journal else None
        )
        self._metrics = HedgeMetrics()
        self._publishing: asyncio.Task[None] | None = None
        self._journal_opened: asyncio.Future[None] | None = None
        # Exposures from baskets on this node stream in here (`actors.shells.channel`).
        self._inbox = Inbox(ExposureReport, self._streamed, "hedge desk")
        # Hedge client order ids must never repeat on a venue: this actor's own tag, and
        # each desk's number, go into every one.
        self._tag = uuid.uuid4().hex[:8]
        self._opened = 0  # desks opened (retired ones too): their numbers never repeat

    def _crashed(self, error: BaseException) -> None:
        log.error("hedge actor: a desk's step failed: %r", error)

    async def _open_journal(self) -> None:
        if self.journal is None:
            return
        if self._journal_opened is None:
            self._journal_opened = asyncio.ensure_future(self.journal.open())
        try:
            await asyncio.shield(self._journal_opened)
        except Exception as e:  # hedging goes on without its records, said loudly
            log.error("hedge actor: the journal cannot be opened: %s", e)

    async def _desk(self, spec: HedgeSpec, epoch: str, venue: Any, risk: RiskSettings) -> _Desk:
        key = _desk_key(spec, epoch, risk)
        desk = self._desks.get(key)
        if desk is None:
            listed = await venue.instruments.remote()
            instruments = [listed[s] for s in key[2]]
            trader = await _trader(venue, [i.symbol for i in instruments], risk)
            desk = self._desks.get(key)
            if desk is not None:  # another basket's call opened it meanwhile
                await trader.stop()
                return desk
            # Numbered after the awaits, so that two desks opened at once differ.
            tag = f"{self._tag}{self._opened}"
            self._opened += 1

            def runner_of(port: DeskPort) -> DeskRunner:
                return DeskRunner(port, instruments, tag, risk)

            await self._open_journal()
            desk = _Desk(
                key,
                venue,
                trader,
                runner_of,
                self._clock,
                self._tasks,
                desk_id=f"{key[0]}-{tag}",
                journal=self.journal,
            )
            # Resting orders a lost hedge actor's desk left at the venue could still fill
            # beside this one's: cancelled before the positions are read.
            symbols = [i.symbol for i in instruments]
            try:
                stale = await trader.withdraw_stale(symbols, HEDGE_ORDER_PREFIX + self._tag)
            except Exception as e:
                log.error("hedge desk %s: resting orders left by an earlier desk: %s", key[0], e)
            else:
                if stale:
                    log.warning(
                        "hedge desk %s: cancelled %d resting order(s) an earlier desk left: %s",
                        key[0],
                        len(stale),
                        ", ".join(stale),
                    )
            # What the venue's account holds in the desk's instruments is the desk's: a
            # restarted hedge actor's desks carry on what the lost one's held.
            try:
                held = await trader.positions()
            except Exception as e:
                log.warning("hedge desk %s: positions at opening: %s", key[0], e)
            else:
                if any(held.get(i.symbol, 0) for i in instruments):
                    log.warning("hedge desk %s: opens holding %s", key[0], held)
                desk.resync(held)
            if self._desks.get(key) is not None:  # opened meanwhile by another call
                await trader.stop()
                return self._desks[key]
            self._desks[key] = desk
            desk.marker = self._tasks.spawn(self._mark_loop(desk), f"mark-{key[0]}")
            if self._publishing is None:
                self._publishing = self._tasks.spawn(self._publish(), "hedge-metrics")
        return desk

    async def _publish(self) -> None:
        """The desks' gauges, every `PUBLISH_EVERY_S` (a closed desk's go to 0)."""
        while True:
            self._metrics.publish((d.key[0], d.runner.ledger) for d in self._desks.values())
            await asyncio.sleep(PUBLISH_EVERY_S)

    async def _mark_loop(self, desk: _Desk) -> None:
        while True:
            try:
                # Asked of the venue actor even when the desk trades by its own connection:
                # the answer also says the venue still runs.
                mids = await desk.venue.mids.remote([i.symbol for i in desk.runner.instruments])
                desk.runner.mark({s: float(m) for s, m in mids.items()})
            except ActorDiedError:  # the venue is gone (its engine stopped): so is the desk
                # Float dust below half a lot is no position (`DeskRunner.flat`).
                half_lot = {s: lot / 2 for s, lot in desk.runner.lots.items()}
                held = {
                    s: q
                    for s, q in desk.runner.ledger.qty.items()
                    if q and abs(q) >= half_lot.get(s, 0.0)
                }
                if held:  # never silently: what it held stays in the journal and the log
                    for symbol in held:
                        desk._record_position(symbol)
                    log.error(
                        "hedge desk %s: its venue actor is gone while it holds %s; desk "
                        "closed, the position is the venue's (a desk opened on it later "
                        "takes it over)",
                        desk.key[0],
                        held,
                    )
                else:
                    log.info("hedge desk %s: its venue actor is gone; desk closed", desk.key[0])
                self._desks.pop(desk.key, None)
                desk.runner.stop()
                await desk.trader.stop()
                return
            except Exception as e:  # the venue actor is busy or failing: keep the last marks
                log.warning("hedge desk %s: marking failed: %s", desk.key[0], e)
            await asyncio.sleep(MARK_EVERY_S)

    # -- from the baskets --------------------------------------------------------------------
    async def connect(
        self, spec: HedgeSpec, epoch: str, venue: Any, risk: RiskSettings
    ) -> InboxAddress:
        """Open the desk a basket will hedge with; return where its exposure may stream
        (from the same node; from elsewhere it comes by `report`)."""
        await self._desk(spec, epoch, venue, risk)
        return await self._inbox.start(_node())

    async def report(self, r: ExposureReport, venue: Any) -> None:
        """Take a basket's exposure snapshot and trade the desk towards its new target."""
        desk = await self._desk(r.hedge, r.venue_epoch, venue, r.risk)
        self._clock.run(lambda: desk.runner.on_exposure(r))

    def _streamed(self, r: ExposureReport) -> None:
        desk = self._desks.get(_desk_key(r.hedge, r.venue_epoch, r.risk))
        # `connect` opens the desk first; only one whose venue actor died is closed since.
        if desk is None:
            log.error("hedge: an exposure of basket %s for no open desk", r.basket_id)
            return
        self._clock.run(lambda: desk.runner.on_exposure(r))

    async def close(
        self,
        basket_id: str,
        spec: HedgeSpec,
        epoch: str,
        venue: Any,
        hold: bool = False,
        risk: RiskSettings | None = None,
    ) -> HedgeStatement:
        """The basket is finished: leave the netting (unless `hold`), let the desk trade what
        that changes, and say what the hedge did for the basket (`DeskRunner.close`)."""
        risk = risk or RiskSettings()
        desk = await self._desk(spec, epoch, venue, risk)
        done: asyncio.Future[HedgeStatement] = asyncio.get_running_loop().create_future()

        def then(statement: HedgeStatement) -> None:
            if not done.done():
                done.set_result(statement)

        self._clock.run(lambda: desk.runner.close(basket_id, spec, risk, hold, then))
        return await done

    async def release(self, basket_id: str) -> list[HedgeStatement]:
        """An operator lets go of a basket's held hedge (policy `hedge_and_hold`): its
        exposure leaves every desk it is in, which trade accordingly."""
        out = []
        for desk in list(self._desks.values()):
            stats = desk.runner.baskets.get(basket_id)
            if stats is None or stats.spec is None or basket_id not in desk.runner.book.baskets:
                continue
            out.append(
                await self.close(basket_id, stats.spec, desk.epoch, desk.venue, risk=stats.risk)
            )
        return out

    def positions(self) -> dict[str, dict[str, float]]:
        """Every desk's positions in USD, by hedge venue/instrument."""
        out: dict[str, dict[str, float]] = {}
        for desk in self._desks.values():
            out.setdefault(desk.key[0], {}).update(desk.runner.ledger.positions_usd())
        return out

    def routes(self) -> dict[str, str]:
        """How each desk reaches its venue: "own connection" (the venue's actor shares
        this node) or "venue actor" (a Ray call to it), by venue and instruments."""
        return {
            f"{desk.key[0]} {','.join(desk.key[2])}": "own connection"
            if isinstance(desk.trader, VenueGateway)
            else "venue actor"
            for desk in self._desks.values()
        }

    def held(self) -> dict[str, float]:
        """The finished baskets whose hedge is held (policy `hedge_and_hold`), each with the
        gross USD position of the desk(s) holding it: what `release` would let go of."""
        out: dict[str, float] = {}
        for desk in self._desks.values():
            for basket_id in desk.runner.held():
                out[basket_id] = out.get(basket_id, 0.0) + desk.runner.ledger.gross_usd()
        return out

    def position_of(self, basket_id: str) -> float:
        """Gross USD hedge position of the desk(s) a basket is in (0 when in none)."""
        return sum(
            desk.runner.ledger.gross_usd()
            for desk in self._desks.values()
            if basket_id in desk.runner.book.baskets
        )
