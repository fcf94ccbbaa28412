"""legato's figures exported through Ray's metrics API (Prometheus; docs/metrics.md).

Ray's metrics agent on each node serves them on its Prometheus endpoint, prefixed `ray_`
(counters also get `_total`); the names here all start with `legato_`. No tag ever names a
basket, a run or an order: series must not grow with the number of baskets. Ray adds the
worker's id to every series, so a dashboard sums over it (`sum by (venue)`).

- orders, fills, rejects, unknown outcomes and cancellations are counted from the journal's
  records as the runners hand them over (`OrderMetrics`, a tap in `actors.shells.journaling`);
- reconnections and rate-limit answers from the venue clients' own counters, as deltas
  (`ClientCounters`);
- the hedge desks, the collateral book and the baskets' states are gauges their actors set
  every few seconds (`HedgeMetrics`, `CollateralMetrics`, `BasketStates`);
- the latency histograms are filled from a basket's report when it ends (`BasketMetrics`).

A failing exporter is logged once and goes quiet: monitoring never stops trading.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ray.util import metrics

from actors.journal.records import (
    ChildOrderSent,
    FillBooked,
    HedgeOrderReported,
    HedgeOrderSent,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Record,
)
from actors.lifecycle import BasketState
from actors.margin import MarginBookSnapshot
from actors.report import BasketReport
from actors.shells.audit import Sent
from venues.model import AckKind, ExecutionReport, OrderStatus, RejectReason

log = logging.getLogger(__name__)

PUBLISH_EVERY_S = 2.0  # how often actors set their gauges and publish client counters
# Milliseconds: from sub-millisecond colocated acks to cross-region seconds.
LATENCY_MS = [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
# A reject's `reason` tag: the venue's reason, or how the leg names a refusal at the door.
# Anything else is "OTHER": a tag's values must stay few.
REJECT_REASONS = frozenset(
    {r.value for r in RejectReason} | {"VENUE_UNAVAILABLE", "AUTH", "UNKNOWN_ORDER", "NOT_SENT"}
)
LIVE_STATES = [s for s in BasketState if not s.is_terminal]
_ENDED = (OrderStatus.CANCELED, OrderStatus.EXPIRED)

_instruments: dict[str, Any] = {}


def _metric(kind: type, name: str, description: str, tags: tuple[str, ...], **kw: Any) -> Any:
    """One metric object per name for the whole process (Ray registers it once)."""
    if name not in _instruments:
        _instruments[name] = kind(name, description=description, tag_keys=tags, **kw)
    return _instruments[name]


def _counter(name: str, description: str, tags: tuple[str, ...]) -> Any:
    return _metric(metrics.Counter, name, description, tags)


def _gauge(name: str, description: str, tags: tuple[str, ...]) -> Any:
    return _metric(metrics.Gauge, name, description, tags)


ORDER_TAGS = ("venue", "role")  # role: "leg" (a child order) or "hedge" (a hedge desk's)


def _order_counters() -> dict[str, Any]:
    return {
        "sent": _counter("legato_orders_sent", "Orders sent to a venue.", ORDER_TAGS),
        "fills": _counter(
            "legato_fills",
            "Fills booked: a leg's trades (one per venue trade id); a hedge order's final "
            "report with a fill.",
            ORDER_TAGS,
        ),
        "notional": _counter(
            "legato_fill_notional",
            "Quantity times price of the fills booked, in the instrument's quote currency.",
            ORDER_TAGS,
        ),
        "rejects": _counter(
            "legato_order_rejects",
            "Orders refused by the venue or turned away at its door, by reason.",
            (*ORDER_TAGS, "reason"),
        ),
        "unknown": _counter(
            "legato_order_unknown_outcomes",
            "Placements whose answer was lost (queried, never sent again).",
            ORDER_TAGS,
        ),
        "cancels": _counter(
            "legato_order_cancels",
            "Orders the venue reported cancelled or expired unfilled in part or whole (an IOC's "
            "remainder), once per order, by status.",
            (*ORDER_TAGS, "status"),
        ),
    }


def _client_counters() -> dict[str, Any]:
    return {
        "reconnects": _counter(
            "legato_venue_reconnects",
            "Re-openings of a venue's streams after a drop, by stream (user, market).",
            ("venue", "stream"),
        ),
        "rate_limited": _counter(
            "legato_venue_rate_limited",
            "Rate-limit answers from a venue (HTTP 429/418 or the venue's equivalent).",
            ("venue",),
        ),
    }


def _histograms() -> dict[str, Any]:
    def hist(name: str, description: str, tags: tuple[str, ...]) -> Any:
        return _metric(metrics.Histogram, name, description, tags, boundaries=LATENCY_MS)

    return {
        "ack": hist(
            "legato_ack_latency_ms",
            "Child order sent to its ack received, by venue and ack kind (raw arrival).",
            ("venue", "ack_kind"),
        ),
        "accept": hist(
            "legato_accept_latency_ms",
            "Child order sent to the venue's accept stamp, on the basket's time axis.",
            ("venue",),
        ),
        "reaction": hist(
            "legato_hedge_reaction_ms",
            "A fill seen by a leg to the hedge order it caused being sent.",
            (),
        ),
        "launch": hist(
            "legato_launch_skew_ms",
            "First to last leg's first venue accept of a basket.",
            (),
        ),
    }


Tags = tuple[tuple[str, str], ...]  # a series' tags, hashable


class _Exporter:
    """Logs its first failure, then exports nothing more."""

    what = "metrics"

    def __init__(self) -> None:
        self.broken = False

    def _give_up(self) -> None:
        self.broken = True
        log.warning("%s: metrics export failed; no more metrics", self.what, exc_info=True)


class _Gauges(_Exporter):
    """A gauge set in full each time: a series set before and absent now goes to 0 (a desk
    closed, a pool emptied), rather than showing its last value forever."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self._shown: dict[int, set[Tags]] = {}  # id of the gauge → the tags it was set with

    def _set(self, gauge: Any, values: Mapping[Tags, float]) -> None:
        before = self._shown.get(id(gauge), set())
        for tags, value in values.items():
            gauge.set(value, tags=dict(tags))
        for tags in before - set(values):
            gauge.set(0.0, tags=dict(tags))
        self._shown[id(gauge)] = set(values)


# -- orders: a tap on the journal ----------------------------------------------------------
def reject_reason(text: str) -> str:
    """The reason tag of a recorded refusal ("REASON: message")."""
    head = text.partition(":")[0].strip().upper().replace(" ", "_")
    return head if head in REJECT_REASONS else "OTHER"


class OrderMetrics(_Exporter):
    """Counts each order record as the journal takes it (`count`); `sent` is what the order
    was (its venue, for the records that do not repeat it)."""

    what = "order metrics"

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.what = f"{owner}: order metrics"
        self._ended: set[str] = set()  # orders whose refusal or cancellation was counted

    def count(self, record: Record, sent: Sent | None) -> None:
        if self.broken:
            return
        try:
            self._count(record, sent)
        except Exception:
            self._give_up()

    def _count(self, record: Record, sent: Sent | None) -> None:
        match record:
            case ChildOrderSent():
                self._inc("sent", record.venue, "leg")
            case HedgeOrderSent():
                self._inc("sent", record.venue, "hedge")
            case FillBooked():
                self._inc("fills", record.venue, "leg")
                self._inc("notional", record.venue, "leg", float(record.qty * record.price))
            case OrderAcked():
                if record.report.ack_kind is AckKind.UNKNOWN:
                    self._inc("unknown", record.report.venue, "leg")
                self._ending(record.report, "leg")
            case OrderReported():
                self._ending(record.report, "leg")
            case HedgeOrderReported():
                report = record.report
                if report.cum_filled > 0:
                    notional = float(report.cum_filled * (report.avg_price or Decimal(0)))
                    self._inc("fills", report.venue, "hedge")
                    self._inc("notional", report.venue, "hedge", notional)
                self._ending(report, "hedge")
            case OrderRejected():
                if record.client_order_id not in self._ended:
                    self._ended.add(record.client_order_id)
                    venue = sent.venue if sent else ""
                    self._inc("rejects", venue, "leg", reason=reject_reason(record.reason))
            case OrderOutcomeUnknown():
                self._inc("unknown", sent.venue if sent else "", "leg")
            case _:
                pass

    def hedge_unanswered(self, sent: Sent | None, unknown: bool, reason: str) -> None:
        """A hedge order that failed without a report (`actors.shells.hedge`)."""
        if self.broken:
            return
        try:
            venue = sent.venue if sent else ""
            if unknown:
                self._inc("unknown", venue, "hedge")
            else:
                self._inc("rejects", venue, "hedge", reason=reject_reason(reason))
        except Exception:
            self._give_up()

    def _ending(self, r: ExecutionReport, role: str) -> None:
        """A refusal or cancellation reported, counted once per order (a RECEIPT ack's
        order is refused later, by a report; an ack and the stream may both say so)."""
        coid = r.client_order_id
        if coid in self._ended:
            return
        if r.status is OrderStatus.REJECTED:
            self._ended.add(coid)
            reason = r.reject_reason.value if r.reject_reason else "VENUE_REFUSED"
            self._inc("rejects", r.venue, role, reason=reason)
        elif r.status in _ENDED:
            self._ended.add(coid)
            self._inc("cancels", r.venue, role, status=r.status.value)

    def _inc(self, name: str, venue: str, role: str, value: float = 1.0, **more: str) -> None:
        _order_counters()[name].inc(value, tags={"venue": venue, "role": role, **more})


# -- the venue clients' own counters --------------------------------------------------------
class ClientCounters(_Exporter):
    """A venue client's reconnection and rate-limit counters, published as the increase
    since the last call (the client counts from its start; a new client starts afresh)."""

    FIELDS = (("reconnects", "user"), ("market_reconnects", "market"), ("rate_limited", ""))

    def __init__(self, venue: str) -> None:
        super().__init__()
        self.venue = venue
        self.what = f"venue {venue}: client counters"
        self._client_id = 0
        self._seen: dict[str, int] = {}

    def publish(self, client: Any) -> None:
        if self.broken or client is None:
            return
        try:
            if id(client) != self._client_id:
                self._client_id, self._seen = id(client), {}
            c = _client_counters()
            for attr, stream in self.FIELDS:
                now = getattr(client, attr, None)
                if not isinstance(now, int):
                    continue
                delta = now - self._seen.get(attr, 0)
                self._seen[attr] = now
                if delta <= 0:
                    continue
                if stream:
                    c["reconnects"].inc(delta, tags={"venue": self.venue, "stream": stream})
                else:
                    c["rate_limited"].inc(delta, tags={"venue": self.venue})
        except Exception:
            self._give_up()


# -- gauges of the singletons ---------------------------------------------------------------
class HedgeMetrics(_Gauges):
    """The hedge desks' positions (USD, per venue and instrument), and per venue their fees
    and P&L (marked at the venue's mids; its negative is what hedging cost)."""

    def __init__(self) -> None:
        super().__init__("hedge actor")

    def publish(self, desks: Iterable[tuple[str, Any]]) -> None:
        """`desks`: (venue, `HedgeLedger`) of every open desk."""
        if self.broken:
            return
        try:
            position: dict[Tags, float] = Counter()
            fees: dict[Tags, float] = Counter()
            pnl: dict[Tags, float] = Counter()
            for venue, ledger in desks:
                for symbol, usd in ledger.positions_usd().items():
                    position[(("venue", venue), ("symbol", symbol))] += usd
                fees[(("venue", venue),)] += ledger.fees_usd
                pnl[(("venue", venue),)] += ledger.pnl_usd()
            self._set(
                _gauge(
                    "legato_hedge_position_usd",
                    "A hedge desk's signed position at the venue's mid, USD.",
                    ("venue", "symbol"),
                ),
                position,
            )
            self._set(
                _gauge(
                    "legato_hedge_fees_usd",
                    "Fees the open hedge desks paid, USD.",
                    ("venue",),
                ),
                fees,
            )
            self._set(
                _gauge(
                    "legato_hedge_pnl_usd",
                    "The open hedge desks' P&L, fees included, marked at the mids, USD "
                    "(negative: what hedging cost).",
                    ("venue",),
                ),
                pnl,
            )
        except Exception:
            self._give_up()


class CollateralMetrics(_Gauges):
    """The margin book: available, reserved and free per venue and asset, and how many
    baskets hold collateral on each venue."""

    def __init__(self) -> None:
        super().__init__("collateral actor")

    def publish(self, snapshot: MarginBookSnapshot) -> None:
        if self.broken:
            return
        try:
            figures: dict[str, dict[Tags, float]] = {"available": {}, "reserved": {}, "free": {}}
            for pool in snapshot.pools:
                tags = (("venue", pool.venue), ("asset", pool.asset))
                figures["available"][tags] = float(pool.available)
                figures["reserved"][tags] = float(pool.reserved)
                figures["free"][tags] = float(pool.free)
            for kind, values in figures.items():
                self._set(
                    _gauge(
                        f"legato_collateral_{kind}",
                        f"Collateral {kind} in the margin book, per venue and asset "
                        "(USD margin pools: asset USD).",
                        ("venue", "asset"),
                    ),
                    values,
                )
            held: dict[Tags, float] = Counter()
            for r in snapshot.reservations:
                for venue in {*r.needs, *r.holdings}:
                    held[(("venue", venue),)] += 1
            self._set(
                _gauge(
                    "legato_collateral_reservations",
                    "Baskets holding collateral on a venue.",
                    ("venue",),
                ),
                held,
            )
        except Exception:
            self._give_up()


class BasketStates(_Gauges):
    """The namespace's live baskets by state (the supervisor's, from the journal), and the
    runs that ended, by how."""

    def __init__(self) -> None:
        super().__init__("supervisor")

    def publish(self, states: Iterable[BasketState]) -> None:
        if self.broken:
            return
        try:
            counts = Counter(states)
            gauge = _gauge(
                "legato_baskets",
                "Baskets of the namespace not yet ended, by state.",
                ("state",),
            )
            for state in LIVE_STATES:  # every state, 0 included: a panel never goes blank
                gauge.set(float(counts.get(state, 0)), tags={"state": state.value})
        except Exception:
            self._give_up()

    def ended(self, state: BasketState) -> None:
        if self.broken:
            return
        try:
            _counter(
                "legato_baskets_ended",
                "Basket runs that ended, by final state.",
                ("state",),
            ).inc(1.0, tags={"state": state.value})
        except Exception:
            self._give_up()


# -- a basket's latencies -------------------------------------------------------------------
class BasketMetrics(_Exporter):
    """The latency histograms of one basket, from its report when it ends."""

    def __init__(self, basket_id: str) -> None:
        super().__init__()
        self.what = f"basket {basket_id}"

    def finished(self, report: BasketReport) -> None:
        """The latency histograms, from the finished basket's report (basket axis)."""
        if self.broken:
            return
        try:
            h = _histograms()
            for leg in report.legs:
                for child in leg.child_orders:
                    if child.ack_ns is not None and child.ack_kind is not None:
                        h["ack"].observe(
                            (child.ack_ns - child.sent_ns) / 1e6,
                            tags={"venue": leg.venue, "ack_kind": child.ack_kind.value},
                        )
                    if child.venue_accept_ns is not None:
                        h["accept"].observe(
                            (child.venue_accept_ns - child.sent_ns) / 1e6,
                            tags={"venue": leg.venue},
                        )
            if report.hedge is not None:
                for ns in report.hedge.reaction_ns:
                    h["reaction"].observe(ns / 1e6)
            if report.launch_skew_ns is not None:
                h["launch"].observe(report.launch_skew_ns / 1e6)
        except Exception:
            self._give_up()
