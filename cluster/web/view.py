"""What the web view shows, as JSON-ready structs built from the actors' answers (pure).

`GET /api/state` and every server-sent event carry one `DeskState`; the page draws it as it
is. The figures are the ones `legato status` prints (`cluster.present`), so the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from urllib.parse import quote

import msgspec

from actors.margin import MarginBookSnapshot, PoolState, Reserved
from actors.protocol import BasketStatus
from actors.report import TransferView
from actors.risk import imbalance_usd
from cluster.present import completion_skew, outside_band


class LegRow(msgspec.Struct, frozen=True, kw_only=True):
    """One leg: its completion, what the schedule wants of it, and its dollars out of step."""

    leg_id: str
    side: str
    status: str
    progress: float  # filled / target
    filled_qty: Decimal
    target_qty: Decimal
    open_qty: Decimal
    avg_price: Decimal | None
    mark_price: Decimal | None
    imbalance_usd: float | None  # signed, against the slowest leg; None without a mark
    blocked: bool
    reason: str


class TransferRow(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer funding a basket, with its age (to now while pending)."""

    client_transfer_id: str
    basket_id: str
    kind: str
    venue: str
    asset: str
    amount: Decimal
    source: str
    destination: str
    state: str
    final: bool
    age_s: float
    reason: str
    message: str


class BasketRow(msgspec.Struct, frozen=True, kw_only=True):
    """A basket running, arming or waiting its turn."""

    basket_id: str
    state: str
    reason: str
    queue: str  # "arming", "running", "waiting" (admission), or "" when not in the queue
    terminal: bool
    schedule_progress: float
    band: float | None  # the completion band (None: given in dollars)
    skew: float | None  # max − min leg completion
    outside_band: bool
    imbalance_usd: float | None  # Σ|u| over the legs; None without a mark on every leg
    hedge_position_usd: float
    legs: list[LegRow]
    transfers: list[TransferRow]
    ts_ns: int
    cancel_url: str


class HeldHedge(msgspec.Struct, frozen=True, kw_only=True):
    """A finished basket whose hedge the desk still holds (policy `hedge_and_hold`)."""

    basket_id: str
    desk_position_usd: float  # gross USD of the desk(s) it is in
    release_url: str


class HedgeDesk(msgspec.Struct, frozen=True, kw_only=True):
    positions: dict[str, dict[str, float]]  # USD by hedge venue, then instrument
    held: list[HeldHedge]


class Collateral(msgspec.Struct, frozen=True, kw_only=True):
    pools: list[PoolState]  # per venue and asset: available, reserved, free
    reservations: list[Reserved]  # per basket: USD needs and base holdings per venue
    ts_ns: int


class RunLink(msgspec.Struct, frozen=True, kw_only=True):
    """A run from the journal, with its report's address once it has ended."""

    run_id: str
    basket_id: str
    number: int
    state: str
    finished: bool
    created: str  # UTC, ISO 8601
    updated: str
    created_ns: int
    updated_ns: int
    report_url: str | None


class DeskState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the page shows. `problems` says which source did not answer (and the
    parts it feeds are then empty or None), rather than the whole view failing."""

    ts_ns: int
    namespace: str
    journal: str
    actions_enabled: bool
    baskets: list[BasketRow]
    waiting: list[str]  # admission queue ids with no basket status (yet)
    hedge: HedgeDesk | None
    collateral: Collateral | None
    transfers: list[TransferRow]  # every transfer not yet final, every basket's
    runs: list[RunLink]
    problems: list[str]


def cancel_url(basket_id: str) -> str:
    return f"/api/baskets/{quote(basket_id, safe='')}/cancel"


def release_url(basket_id: str) -> str:
    return f"/api/hedges/{quote(basket_id, safe='')}/release"


def report_url(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}/report.html"


def transfer_row(t: TransferView, now_ns: int) -> TransferRow:
    return TransferRow(
        client_transfer_id=t.client_transfer_id,
        basket_id=t.basket_id,
        kind=t.kind.value,
        venue=t.venue,
        asset=t.asset,
        amount=t.amount,
        source=t.source,
        destination=t.destination,
        state=t.state.value,
        final=t.state.is_final,
        age_s=round(t.age_s(now_ns), 1),
        reason=t.reason,
        message=t.message,
    )


def _imbalance(status: BasketStatus) -> dict[str, float] | None:
    marks = {leg.leg_id: leg.mark_price for leg in status.legs}
    if not status.legs or any(m is None for m in marks.values()):
        return None
    return imbalance_usd(status.legs, {k: float(v) for k, v in marks.items() if v is not None})


def basket_row(status: BasketStatus, queue: str = "") -> BasketRow:
    """A basket's row from its status, as `legato status` reads it."""
    u = _imbalance(status)
    skew = completion_skew(status)
    return BasketRow(
        basket_id=status.basket_id,
        state=status.state.value,
        reason=status.reason,
        queue=queue,
        terminal=status.state.is_terminal,
        schedule_progress=status.schedule_progress,
        band=status.band,
        skew=skew,
        outside_band=outside_band(status),
        imbalance_usd=None if u is None else sum(abs(x) for x in u.values()),
        hedge_position_usd=status.hedge_position_usd,
        legs=[
            LegRow(
                leg_id=leg.leg_id,
                side=leg.side.value,
                status=leg.status.value,
                progress=leg.progress,
                filled_qty=leg.filled_qty,
                target_qty=leg.target_qty,
                open_qty=leg.open_qty,
                avg_price=leg.avg_price,
                mark_price=leg.mark_price,
                imbalance_usd=None if u is None else u[leg.leg_id],
                blocked=leg.blocked,
                reason=leg.reason,
            )
            for leg in status.legs
        ],
        transfers=[transfer_row(t, status.ts_ns) for t in status.transfers],
        ts_ns=status.ts_ns,
        cancel_url=cancel_url(status.basket_id),
    )


def queue_of(admission: Mapping[str, Sequence[str]], basket_id: str) -> str:
    """Where `basket_id` stands in the admission queue ("" when it is not in it)."""
    for place in ("arming", "running", "waiting"):
        if basket_id in admission.get(place, ()):
            return place
    return ""


def collateral_of(snapshot: MarginBookSnapshot) -> Collateral:
    pools = sorted(snapshot.pools, key=lambda p: (p.venue, p.asset))
    reservations = sorted(snapshot.reservations, key=lambda r: r.basket_id)
    return Collateral(pools=pools, reservations=reservations, ts_ns=snapshot.ts_ns)
