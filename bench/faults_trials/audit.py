"""A run held against the source of truth: the journal's records, and each venue's own
record of every order under the run's client order id prefix (never the engine's report).

For each run: its state in the journal; client order ids written ahead twice; orders the
venue knows under the run's prefix that the journal does not; each journaled order's
filled quantity against the venue's, and each venue trade against the journal's booked
trades; per leg what the venue filled (slices, unwinds, the net); what each leg's latest
reconciliation said; and whether each reservation of collateral was given back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from actors.journal import JournaledOrder, journal_store
from actors.journal.records import (
    BasketReported,
    BasketResolved,
    BasketStateChanged,
    BasketSubmitted,
    ChildOrderSent,
    CollateralReleased,
    CollateralReserved,
    LegReconciled,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    ReportSource,
)
from actors.lifecycle import BasketState
from actors.spec import ResolvedBasket, load_basket
from actors.spec.model import client_order_id
from cluster.engine import Engine
from venues.config import SimVenueConfig
from venues.model import AckKind, ExecutionReport, Instrument, Side

D = Decimal
PROBE_BEYOND = 8  # child order numbers past a leg's last journaled one asked of its venue
_PARALLEL = 16  # venue questions in flight at once
_HTTP = aiohttp.ClientTimeout(total=10)


QUOTE = "USDT"  # every instrument of the fault world is quoted in it


def kept_fee(o: JournaledOrder) -> Decimal:
    """Fees charged in the traded asset itself (a spot buy's): the venue's holding moves by
    the fills less this."""
    return sum((t.fee for t in o.fills if o.symbol == t.fee_asset + QUOTE), Decimal(0))


@dataclass
class LegFigures:
    """One leg by its venue's records: what its slices and unwinds filled, and the net."""

    venue: str
    symbol: str
    side: Side
    target: Decimal  # as resolved (journal)
    price: Decimal | None
    instrument: Instrument | None
    sliced: Decimal = field(default_factory=Decimal)  # filled by orders on the leg's side
    unwound: Decimal = field(default_factory=Decimal)  # filled by orders on the other side
    reconciled: bool | None = None  # its latest LegReconciled (None: none written)

    @property
    def net(self) -> Decimal:
        return self.sliced - self.unwound

    def flat(self) -> bool:
        """Back where it began, to the lot: a residue under one lot, or too small to trade
        (under the venue's minimum notional), is dust."""
        net = abs(self.net)
        if net == 0:
            return True
        inst = self.instrument
        if inst is None:
            return False
        if net <= inst.lot:
            return True
        return self.price is not None and net * self.price < inst.min_notional


@dataclass
class RunAudit:
    """What the journal and the venues show of one run."""

    run_id: str
    state: BasketState | None = None  # the journal's
    states: list[str] = field(default_factory=list)  # every state change journaled
    orders: int = 0  # journaled child orders
    # A client order id written ahead more than once, not by a recovery adopting the order
    # from its venue (which records it again, by design); refused by a venue as a duplicate;
    # or naming at the venue an order the journal never heard of (a second order under it).
    written_twice: list[str] = field(default_factory=list)
    refused_as_duplicate: list[str] = field(default_factory=list)
    second_orders: list[str] = field(default_factory=list)
    re_recorded: int = 0  # ids written again by a recovery that adopted them (by design)
    unknown_outcomes: int = 0  # orders whose outcome reached the leg as unknown
    report_lag_s: float | None = None  # from the journaled end to the journaled report
    unjournaled: list[str] = field(default_factory=list)  # at the venue, not in the journal
    fill_gaps: list[str] = field(default_factory=list)  # venue cum_filled != journal filled
    status_gaps: list[str] = field(default_factory=list)  # venue status != journal status
    trades_missing: list[str] = field(default_factory=list)  # venue trades not booked
    trades_not_booked: int = 0
    trades_at_venue: int = 0
    legs: dict[str, LegFigures] = field(default_factory=dict)
    leaked: list[str] = field(default_factory=list)  # reservations never released
    reserved: int = 0  # CollateralReserved records
    # Net filled per (venue, symbol), signed (long positive): by the journal's orders, and
    # by the trades it booked.
    journal_moved: Counter[tuple[str, str]] = field(default_factory=Counter)
    booked_moved: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_venue_sent: Counter[str] = field(default_factory=Counter)  # journaled coids per venue
    problems: list[str] = field(default_factory=list)  # what the audit could not read

    @property
    def terminal(self) -> bool:
        return self.state is not None and self.state.is_terminal

    @property
    def duplicates(self) -> int:
        return len(self.written_twice) + len(self.refused_as_duplicate) + len(self.second_orders)

    def unreconciled(self) -> list[str]:
        return [leg for leg, f in self.legs.items() if f.reconciled is not True]

    def open_legs(self) -> list[str]:
        return [f"{leg} ({f.net:+f} {f.symbol})" for leg, f in self.legs.items() if not f.flat()]

    def overfilled(self) -> list[str]:
        return [
            f"{leg}: venue filled {f.sliced} of a target of {f.target}"
            for leg, f in self.legs.items()
            if f.sliced > f.target
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "journal_state": None if self.state is None else self.state.value,
            "states": self.states,
            "orders": self.orders,
            "written_twice": self.written_twice,
            "refused_as_duplicate": self.refused_as_duplicate,
            "second_orders": self.second_orders,
            "re_recorded_by_recovery": self.re_recorded,
            "unknown_outcomes": self.unknown_outcomes,
            "report_lag_s": self.report_lag_s,
            "unjournaled": self.unjournaled,
            "fill_gaps": self.fill_gaps,
            "status_gaps": self.status_gaps,
            "trades_at_venue": self.trades_at_venue,
            "trades_missing": self.trades_missing,
            "trades_not_booked": self.trades_not_booked,
            "leaked": self.leaked,
            "legs": {
                leg: {
                    "venue": f.venue,
                    "symbol": f.symbol,
                    "target": str(f.target),
                    "sliced": str(f.sliced),
                    "unwound": str(f.unwound),
                    "net": str(f.net),
                    "flat": f.flat(),
                    "reconciled": f.reconciled,
                }
                for leg, f in self.legs.items()
            },
            "problems": self.problems,
        }


class _Venues:
    """The venues' own records of orders: the venue actor's record of an order (its newest
    under that client order id) and, from the simulated venue's admin API, its trades."""

    def __init__(self, engine: Engine, session: aiohttp.ClientSession) -> None:
        self.engine = engine
        self.session = session
        self.gate = asyncio.Semaphore(_PARALLEL)
        self.keys: dict[str, str] = {}
        for name, cfg in engine.config.venues.items():
            if isinstance(cfg, SimVenueConfig) and cfg.accounts:
                self.keys[name] = cfg.accounts[0].api_key

    async def order(
        self, venue: str, symbol: str, coid: str
    ) -> tuple[ExecutionReport | None, dict[str, Decimal]]:
        """The venue's report of the order (None: it knows no such order) and its trades
        (trade id → quantity; ids are strings, as the venue contract has them)."""
        async with self.gate:
            report = await self.engine.venues[venue].sim_order.remote(symbol, coid)
            if report is None:
                return None, {}
            url = f"{self.engine.endpoints[venue].rest_url}/_sim/orders/{coid}"
            headers = {"X-MBX-APIKEY": self.keys[venue]}
            async with self.session.get(url, params={"symbol": symbol}, headers=headers) as r:
                body = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{venue} /_sim/orders/{coid}: {r.status} {body}")
            # Of this order (its exchange id): a reused client order id names the newest.
            if str(body.get("orderId")) != report.order_id:
                raise RuntimeError(f"{venue} {coid}: the admin API names another order")
            return report, {str(t["tradeId"]): D(t["qty"]) for t in body["fills"]}


async def audit_runs(engine: Engine, journal: str, run_ids: Sequence[str]) -> dict[str, RunAudit]:
    """Every run of `run_ids` held against its journal and its venues."""
    store = journal_store(journal)
    await store.open()
    try:
        async with aiohttp.ClientSession(timeout=_HTTP) as session:
            venues = _Venues(engine, session)
            audits = await asyncio.gather(*(_audit(store, venues, r) for r in run_ids))
    finally:
        await store.close()
    return {a.run_id: a for a in audits}


async def _audit(store: Any, venues: _Venues, run_id: str) -> RunAudit:
    a = RunAudit(run_id=run_id)
    info = await store.run(run_id)
    a.state = None if info is None else info.state
    entries = await store.records(run_id)
    records = [e.record for e in entries]
    a.states = [r.state.value for r in records if isinstance(r, BasketStateChanged)]
    ended = [r.ts_ns for r in records if isinstance(r, BasketStateChanged) and r.state.is_terminal]
    reported = [r.ts_ns for r in records if isinstance(r, BasketReported)]
    if ended and reported:
        a.report_lag_s = round((reported[-1] - ended[0]) / 1e9, 2)

    # Collateral: every reservation given back later.
    last_reserved = max(
        (e.seq for e in entries if isinstance(e.record, CollateralReserved)), default=0
    )
    a.reserved = sum(1 for r in records if isinstance(r, CollateralReserved))
    released = [e.seq for e in entries if isinstance(e.record, CollateralReleased)]
    if last_reserved and not any(seq > last_reserved for seq in released):
        a.leaked.append(f"{run_id}: reserved (seq {last_reserved}) and never released")

    # The legs: as resolved (or, lost before that was journaled, as submitted).
    submitted = next((r for r in records if isinstance(r, BasketSubmitted)), None)
    resolved = next(
        (
            msgspec.json.decode(r.resolved, type=ResolvedBasket)
            for r in records
            if isinstance(r, BasketResolved)
        ),
        None,
    )
    if resolved is not None:
        for leg in resolved.legs:
            a.legs[leg.leg_id] = LegFigures(
                leg.venue, leg.symbol, leg.side, leg.quantity, leg.price, leg.instrument
            )
    elif submitted is not None:
        spec = load_basket(submitted.spec)
        for s in getattr(spec, "legs", []):
            a.legs[s.leg_id] = LegFigures(s.venue, s.symbol, s.side, D(0), None, None)
    for r in records:
        if isinstance(r, LegReconciled) and r.leg_id in a.legs:
            a.legs[r.leg_id].reconciled = r.reconciled  # the latest stands

    sent = [r for r in records if isinstance(r, ChildOrderSent)]
    counts = Counter(r.client_order_id for r in sent)
    adopted = {
        r.client_order_id
        for r in records
        if isinstance(r, OrderReported) and r.source is ReportSource.RECOVERY
    }
    twice = {c for c, n in counts.items() if n > 1}
    a.written_twice = sorted(twice - adopted)
    a.re_recorded = len(twice & adopted)
    a.refused_as_duplicate = sorted(
        r.client_order_id
        for r in records
        if isinstance(r, OrderRejected) and "DUPLICATE" in r.reason.upper()
    )
    a.unknown_outcomes = len(
        {r.client_order_id for r in records if isinstance(r, OrderOutcomeUnknown)}
        | {
            r.client_order_id
            for r in records
            if isinstance(r, OrderAcked) and r.report.ack_kind is AckKind.UNKNOWN
        }
    )
    # The venue's order ids the journal heard of, per client order id.
    heard: dict[str, set[str]] = {}
    for r in records:
        if isinstance(r, OrderAcked | OrderReported) and r.report.order_id:
            heard.setdefault(r.report.client_order_id, set()).add(r.report.order_id)
    orders = await store.orders(run_id)
    a.orders = len(orders)
    journaled = {o.order.client_order_id: o for o in orders}
    for o in orders:
        a.per_venue_sent[o.venue] += 1
        sign = 1 if o.order.side is Side.BUY else -1
        kept = kept_fee(o)
        a.journal_moved[o.venue, o.symbol] += sign * o.order.filled_qty - kept
        for t in o.fills:
            a.booked_moved[o.venue, o.symbol] += sign * t.qty
        a.booked_moved[o.venue, o.symbol] -= kept

    # Every order the venue may know under the run's prefix: the journaled ones, and the
    # numbers past each leg's last journaled one.
    prefix = submitted.order_prefix if submitted is not None else ""
    asked: list[tuple[str, str, str, str, bool]] = []  # leg, venue, symbol, coid, journaled
    for o in orders:
        asked.append((o.leg_id, o.venue, o.symbol, o.order.client_order_id, True))
    if prefix:
        for leg_id, leg in a.legs.items():
            last = max((r.n for r in sent if r.leg_id == leg_id), default=-1)
            for n in range(last + 1 + PROBE_BEYOND):
                coid = client_order_id(prefix, leg_id, n)
                if coid not in journaled:
                    asked.append((leg_id, leg.venue, leg.symbol, coid, False))
    else:
        a.problems.append("no order prefix journaled: orders past the journal not asked")

    async def ask(item: tuple[str, str, str, str, bool]) -> None:
        leg_id, venue, symbol, coid, known = item
        try:
            report, trades = await venues.order(venue, symbol, coid)
        except Exception as e:
            a.problems.append(f"{coid}: the venue could not be asked ({type(e).__name__}: {e})")
            return
        if report is None:
            if known:
                o = journaled[coid].order
                if o.filled_qty != 0 or not o.status.is_terminal:
                    a.fill_gaps.append(
                        f"{coid}: unknown to the venue, the journal says "
                        f"{o.status.value} filled {o.filled_qty}"
                    )
            return
        if not known:
            a.unjournaled.append(f"{coid} ({report.status.value}, filled {report.cum_filled})")
        else:
            o = journaled[coid].order
            if heard.get(coid) and report.order_id not in heard[coid]:
                a.second_orders.append(
                    f"{coid}: the venue's order {report.order_id} under it, the journal's "
                    f"{sorted(heard[coid])}"
                )
            if report.cum_filled != o.filled_qty:
                a.fill_gaps.append(
                    f"{coid}: venue filled {report.cum_filled}, journal {o.filled_qty}"
                )
            if report.status != o.status:
                a.status_gaps.append(
                    f"{coid}: venue {report.status.value}, journal {o.status.value}"
                )
            booked = {t.trade_id for t in journaled[coid].fills}
            missing = sorted(set(trades) - booked)
            if missing:
                a.trades_not_booked += len(missing)
                a.trades_missing.append(
                    f"{coid}: {len(missing)} of {len(trades)} venue trades not booked"
                )
        a.trades_at_venue += len(trades)
        leg = a.legs.get(leg_id)
        if leg is not None:
            if report.side is leg.side:
                leg.sliced += report.cum_filled
            else:
                leg.unwound += report.cum_filled

    await asyncio.gather(*(ask(item) for item in asked))
    for items in (
        a.unjournaled,
        a.fill_gaps,
        a.status_gaps,
        a.trades_missing,
        a.second_orders,
        a.problems,
    ):
        items.sort()
    return a
