"""`HedgeActor`: the cluster's one hedger (named, detached, in the `legato` namespace).

Every basket with a hedge section sends its imbalance here as factor exposures, a monotonic
snapshot per change (DESIGN §5.6), by a direct stream from the same node
(`actors.shells.channel`), else by `report`. Baskets that hedge with the same instruments on
the same venue share one desk: a `HedgeBook` nets their exposures, sizes the minimum-variance
hedge, trades it with hysteresis (by a connection of its own when the venue's actor shares
this node, else through that `VenueActor`), and attributes its P&L back to the baskets; a
`HedgeLedger` keeps its positions and P&L. A basket that closes leaves the netting, and a
desk with no basket left goes flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import ray
from ray.exceptions import ActorDiedError

from actors.hedge import HedgeBook, HedgeLedger, HedgeOrder, HedgeSizer, hedge_quantity
from actors.protocol import ExposureReport, HedgeFill, HedgeStatement, InboxAddress, VenueEndpoint
from actors.risk import RiskSettings
from actors.shells.channel import Inbox
from actors.shells.venue import VenueGateway
from actors.spec import HedgeSpec
from venues.model import Instrument, Side

log = logging.getLogger(__name__)

MARK_EVERY_S = 0.5  # how often a desk re-marks its positions at the venue's mids
CLOSE_TIMEOUT_S = 15.0  # how long closing a basket waits for the hedge trades it causes

DeskKey = tuple[str, str, tuple[str, ...], bytes]  # venue, epoch, instruments, risk model


class _BasketStats(msgspec.Struct, kw_only=True):
    orders: int = 0
    max_abs_position: float = 0.0
    fees_usd: float = 0.0
    reaction_ns: list[int] = []
    # The fill behind the newest report, while that report is what the desk trades on: a
    # hedge order then answers that fill. A report that brings no newer fill (a price move)
    # clears it, so an order it causes is not timed from an older fill.
    pending_cause_ns: int | None = None
    seen_cause_ns: int = 0  # the newest fill any report carried
    spec: HedgeSpec | None = None
    risk: RiskSettings | None = None
    closed: bool = False


class Trader(Protocol):
    """How a desk reaches its venue: `VenueGateway` (its own connection, on the venue's
    node) or `_ViaVenueActor` (a Ray call to the venue's actor)."""

    async def hedge(
        self, client_order_id: str, symbol: str, side: Side, qty: Decimal | None, notional: float
    ) -> HedgeFill | None: ...

    async def positions(self) -> dict[str, Decimal]: ...

    async def stop(self) -> None: ...


class _ViaVenueActor:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def hedge(
        self, client_order_id: str, symbol: str, side: Side, qty: Decimal | None, notional: float
    ) -> HedgeFill | None:
        fill: HedgeFill | None = await self.actor.hedge.remote(
            client_order_id, symbol, side, qty, notional
        )
        return fill

    async def positions(self) -> dict[str, Decimal]:
        held: dict[str, Decimal] = await self.actor.positions.remote()
        return held

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
    """One hedge venue and instrument set, shared by the baskets that hedge with it."""

    def __init__(
        self,
        key: DeskKey,
        venue: Any,
        trader: Trader,
        instruments: list[Instrument],
        tag: str,
        risk: RiskSettings,
    ) -> None:
        self.key = key
        self.tag = tag
        self.venue = venue
        self.trader = trader
        self.instruments = instruments
        self.book = HedgeBook(HedgeSizer(risk.model(), instruments))
        self.ledger = HedgeLedger({i.symbol: float(i.contract_size) for i in instruments})
        self.stats: dict[str, _BasketStats] = {}
        self.lots = {i.symbol: float(i.lot) for i in instruments}
        self.closing: set[str] = set()  # closed baskets whose unwind trades are under way
        self.n = 0
        self.dirty = False
        self.trading: asyncio.Task[None] | None = None
        self.marker: asyncio.Task[None] | None = None

    @property
    def epoch(self) -> str:
        return self.key[1]

    def active(self) -> list[str]:
        """The baskets a trade now serves: those in the netting, and those just closed."""
        return [b for b, s in self.stats.items() if not s.closed or b in self.closing]

    def limits(self) -> tuple[float, float]:
        """Activation and hysteresis: the most sensitive of the baskets in the netting."""
        specs = [s.spec for b, s in self.stats.items() if s.spec is not None and not s.closed]
        if not specs:
            return (0.0, 0.0)
        return (min(s.activation_usd for s in specs), min(s.hysteresis_usd for s in specs))

    def quantity(self, order: HedgeOrder) -> Decimal | None:
        """The order's size in base units, to the nearest lot; an unwind to flat closes the
        position exactly. None before the first mark (the venue actor sizes it then)."""
        symbol = order.symbol
        return hedge_quantity(
            order,
            Decimal(str(self.lots[symbol])),
            self.ledger.qty[symbol],
            self.ledger.mids.get(symbol),
            self.ledger.contract_sizes[symbol],
        )

    def flat(self) -> bool:
        return all(abs(q) < self.lots[s] / 2 for s, q in self.ledger.qty.items())


def _desk_key(spec: HedgeSpec, epoch: str, risk: RiskSettings) -> DeskKey:
    # Baskets net in one desk only when they value risk alike: same venue, venue
    # incarnation, instruments and risk model.
    return (spec.venue, epoch, tuple(sorted(spec.instruments)), msgspec.json.encode(risk))


class HedgeActor:
    """The cluster's hedger (see the module docstring)."""

    def __init__(self) -> None:
        self._desks: dict[DeskKey, _Desk] = {}
        # Exposures from baskets on this node stream in here (`actors.shells.channel`).
        self._inbox = Inbox(ExposureReport, self._streamed, "hedge desk")
        # Hedge client order ids must never repeat on a venue: this actor's own tag, and
        # each desk's number, go into every one.
        self._tag = uuid.uuid4().hex[:8]
        self._opened = 0  # desks opened (retired ones too): their numbers never repeat

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
            desk = self._desks[key] = _Desk(key, venue, trader, instruments, tag, risk)
            desk.marker = asyncio.create_task(self._mark_loop(desk))
        return desk

    async def _mark_loop(self, desk: _Desk) -> None:
        while True:
            try:
                # Asked of the venue actor even when the desk trades by its own connection:
                # the answer also says the venue still runs.
                mids = await desk.venue.mids.remote([i.symbol for i in desk.instruments])
                desk.ledger.mark({s: float(m) for s, m in mids.items()})
            except ActorDiedError:  # the venue is gone (its engine stopped): so is the desk
                log.info("hedge desk %s: its venue actor is gone; desk closed", desk.key[0])
                self._desks.pop(desk.key, None)
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
        self._take(await self._desk(r.hedge, r.venue_epoch, venue, r.risk), r)

    def _streamed(self, r: ExposureReport) -> None:
        desk = self._desks.get(_desk_key(r.hedge, r.venue_epoch, r.risk))
        # `connect` opens the desk first; only one whose venue actor died is closed since.
        if desk is None:
            log.error("hedge: an exposure of basket %s for no open desk", r.basket_id)
            return
        self._take(desk, r)

    def _take(self, desk: _Desk, r: ExposureReport) -> None:
        now = time.time_ns()
        desk.book.accrue(desk.ledger.unaccrued_usd(), now)
        if not desk.book.report(r.basket_id, r.seq, r.exposure, now):
            return  # stale, repeated or from a closed basket
        stats = desk.stats.setdefault(r.basket_id, _BasketStats())
        stats.spec = r.hedge
        stats.risk = r.risk
        if r.cause_ns is not None and r.cause_ns > stats.seen_cause_ns:
            stats.pending_cause_ns = stats.seen_cause_ns = r.cause_ns
        else:
            stats.pending_cause_ns = None
        self._kick(desk)

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
        that changes, and say what the hedge did for the basket."""
        risk = risk or RiskSettings()
        desk = await self._desk(spec, epoch, venue, risk)
        stats = desk.stats.setdefault(basket_id, _BasketStats(spec=spec, risk=risk))
        if not hold:
            now = time.time_ns()
            desk.book.accrue(desk.ledger.unaccrued_usd(), now)
            desk.book.close(basket_id, now)
            stats.closed = True
            desk.closing.add(basket_id)
            self._kick(desk)
            await self._quiet(desk)
            desk.closing.discard(basket_id)
            desk.book.accrue(desk.ledger.unaccrued_usd(), time.time_ns())
        return HedgeStatement(
            basket_id=basket_id,
            orders=stats.orders,
            max_abs_position=stats.max_abs_position,
            pnl_usd=desk.book.attributed_usd.get(basket_id, 0.0),
            fees_usd=stats.fees_usd,
            held=hold,
            flat=desk.flat(),
            reaction_ns=list(stats.reaction_ns),
        )

    async def release(self, basket_id: str) -> list[HedgeStatement]:
        """An operator lets go of a basket's held hedge (policy `hedge_and_hold`): its
        exposure leaves every desk it is in, which trade accordingly."""
        out = []
        for desk in list(self._desks.values()):
            stats = desk.stats.get(basket_id)
            if stats is None or stats.spec is None or basket_id not in desk.book.baskets:
                continue
            out.append(
                await self.close(basket_id, stats.spec, desk.epoch, desk.venue, risk=stats.risk)
            )
        return out

    def positions(self) -> dict[str, dict[str, float]]:
        """Every desk's positions in USD, by hedge venue/instrument."""
        out: dict[str, dict[str, float]] = {}
        for desk in self._desks.values():
            out.setdefault(desk.key[0], {}).update(desk.ledger.positions_usd())
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

    def position_of(self, basket_id: str) -> float:
        """Gross USD hedge position of the desk(s) a basket is in (0 when in none)."""
        return sum(
            desk.ledger.gross_usd()
            for desk in self._desks.values()
            if basket_id in desk.book.baskets
        )

    # -- trading -----------------------------------------------------------------------------
    def _kick(self, desk: _Desk) -> None:
        if desk.trading is not None and not desk.trading.done():
            desk.dirty = True
            return
        desk.trading = asyncio.create_task(self._trade(desk))

    async def _quiet(self, desk: _Desk) -> None:
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while desk.trading is not None and not desk.trading.done():
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("hedge desk %s: still trading after %ss", desk.key[0], CLOSE_TIMEOUT_S)
                return
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(desk.trading), left)

    async def _trade(self, desk: _Desk) -> None:
        for _ in range(20):  # bounded: each round trades what the newest exposures ask
            desk.dirty = False
            activation, hysteresis = desk.limits()
            orders = desk.book.orders(
                desk.ledger.positions_usd(), time.time_ns(), activation, hysteresis
            )
            for order in orders:
                try:
                    await self._execute(desk, order)
                except Exception as e:
                    # The order may have filled all the same: take the positions from the
                    # venue (the hedge instruments are the desk's own there) before going on.
                    log.warning("hedge desk %s: order failed: %s; resyncing", desk.key[0], e)
                    await self._resync(desk)
            if not desk.dirty:
                return

    async def _resync(self, desk: _Desk) -> None:
        try:
            held = await desk.trader.positions()
        except Exception as e:
            log.warning("hedge desk %s: cannot read positions: %s", desk.key[0], e)
            return
        for i in desk.instruments:
            desk.ledger.qty[i.symbol] = float(held.get(i.symbol, 0))

    async def _execute(self, desk: _Desk, order: HedgeOrder) -> None:
        coid = f"lgh-{desk.tag}-{desk.n}"
        desk.n += 1
        involved = desk.active()
        # The fills this order answers are those known before it leaves, not any that a
        # report brings while it is on its way.
        causes = {b: desk.stats[b].pending_cause_ns for b in involved}
        fill = await desk.trader.hedge(
            coid, order.symbol, order.side, desk.quantity(order), order.notional_usd
        )
        if fill is None:
            return
        r = fill.report
        qty = float(r.cum_filled)
        fee = float(r.cum_fee)
        if qty > 0 and r.avg_price is not None:
            desk.ledger.fill(order.symbol, order.side, qty, float(r.avg_price), fee)
        desk.ledger.mark({order.symbol: fill.mid})
        shares = desk.book.sizer.shares(desk.book.baskets) or {
            b: 1.0 / len(involved) for b in involved
        }
        gross = desk.ledger.gross_usd()
        for b in involved:
            stats = desk.stats[b]
            stats.orders += 1
            stats.fees_usd += fee * shares.get(b, 0.0)
            stats.max_abs_position = max(stats.max_abs_position, gross)
            cause = causes[b]
            if cause is not None:
                stats.reaction_ns.append(fill.sent_ns - cause)
                if stats.pending_cause_ns == cause:
                    stats.pending_cause_ns = None
