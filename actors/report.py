"""The basket report: what happened to a basket, leg by leg, as one JSON document.

Other tools read these keys (the TCA report, dashboards, a desk's own scripts), so they only
ever grow. Every timestamp is integer ns on the basket actor's clock (the basket's time axis);
a leg's venue times are mapped onto it through the leg's measured clock offsets, which the
report carries (DESIGN §6).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from actors.basket import BasketCoordinator
from actors.leg import ChildOrder, Mismatch
from actors.lifecycle import BasketState, StateChanged
from actors.messages import LegStatus
from actors.spec import Policy
from venues.model import AckKind, Side, TransferKind, TransferState
from venues.sim.calibration import SECONDS_PER_YEAR


class LegReport(msgspec.Struct, kw_only=True):
    """One leg at the end of the basket."""

    leg_id: str
    venue: str
    symbol: str
    side: Side
    original_qty: Decimal  # as the basket was accepted
    target_qty: Decimal  # after any shrink
    filled_qty: Decimal  # net of any unwind, as the venue confirmed it
    avg_price: Decimal | None  # of the leg's own slices
    fees_usd: Decimal  # fees in USD: those charged in another asset valued (`actors.fees`)
    status: LegStatus
    reconciled: bool
    child_orders: list[ChildOrder]  # their times mapped onto the basket axis, like all here
    rejects: list[str]
    mismatches: list[Mismatch] = []
    node_id: str = ""
    node_labels: dict[str, str] = {}
    arrival_price: Decimal | None = None  # mid at the leg's first send
    first_send_ns: int | None = None  # basket axis
    first_ack_ns: int | None = None  # basket axis: when the leg got the first answer
    first_venue_accept_ns: int | None = None  # basket axis: the venue's accept stamp, mapped
    ack_kind: AckKind | None = None  # the venue's declared semantics
    clock_offset_ns: int = 0  # leg clock − basket clock
    clock_uncertainty_ns: int = 0
    venue_clock_offset_ns: int = 0  # venue clock − leg clock
    venue_clock_rtt_ns: int | None = None
    unwound_qty: Decimal = Decimal(0)
    reason: str = ""
    contract_size: Decimal = Decimal(1)  # USD value of one unit is price × this
    decision_price: Decimal | None = None  # mid when the basket was accepted (DESIGN §8)
    end_price: Decimal | None = None  # mid when the leg's report was taken
    market_vwap: Decimal | None = None  # of the venue's public trades over the leg's life
    market_volume: Decimal = Decimal(0)  # the quantity those trades add up to
    venue_clock_uncertainty_ns: int | None = None  # ± on venue_clock_offset_ns
    venue_clock_drift_ppm: float | None = None  # fitted once the samples span enough time
    venue_clock_at_ns: int | None = None  # leg clock: where venue_clock_offset_ns holds
    fees_unpriced: dict[str, Decimal] = {}  # fees in assets with no price: not in fees_usd
    fee_qty: Decimal = Decimal(0)  # fees taken in the leg's own asset, along its side
    base_asset: str = ""
    quote_asset: str = ""


class HedgeReport(msgspec.Struct, kw_only=True):
    """The cluster hedge as it concerned this basket."""

    venue: str
    instruments: list[str]
    orders: int = 0  # hedge orders traded while the basket was in the netting
    max_abs_position: float = 0.0  # USD, largest gross hedge position held meanwhile
    pnl_usd: float = 0.0  # the basket's attributed share, fees included
    fees_usd: float = 0.0  # the basket's attributed share of the hedge's fees
    held: bool = False  # the basket still has exposure in the netting (hedge_and_hold)
    flat_at_end: bool = True  # the hedge book was flat when the basket closed
    # Hedge orders that could not be cancelled and may still fill (`HedgeOrderOpen`), by
    # client order id, as the basket closed: the desk trades their symbols again only once
    # it has seen them ended and read its position back (docs/basket.md, "Hedge").
    unsettled: list[str] = []
    reaction_ns: list[int] = []  # fill seen by a leg → hedge order sent, per hedge order
    # The hedge's cost beside the risk it removed (docs/basket.md, "Hedge"), the basket's
    # attributed share of each: fees with the spread and impact paid against the mid, and
    # ∫ of the variance it took off the netted exposure (USD²); `risk_removed_usd` is its
    # square root, and `risk_value_usd` what the decision rule prices it at.
    trading_cost_usd: float = 0.0
    risk_removed_usd2: float = 0.0
    risk_value_usd: float = 0.0

    @property
    def risk_removed_usd(self) -> float:
        """sqrt(∫ ΔV dt): the standard deviation of P&L the hedge took off, in USD."""
        return max(self.risk_removed_usd2, 0.0) ** 0.5


class TimelinePoint(msgspec.Struct, frozen=True, array_like=True):
    """The basket at one instant of its run; lists follow `Timeline.legs`."""

    ts_ns: int  # basket axis
    schedule: float  # fraction of the basket the schedule called for by now
    progress: list[float]  # each leg's filled / target
    imbalance_usd: list[float]  # each leg's signed dollars out of step (DESIGN §5.5)
    hedge_usd: float  # gross USD of the hedge desk(s) the basket is in, last known


class Timeline(msgspec.Struct, kw_only=True):
    """The basket's path, sampled on the coordinator's ticks, with what it takes to value it.

    `covariance_per_s` is the covariance of the legs' returns per second (legs' order), so
    `uᵀ Σ u · dt` is the variance in USD² that an imbalance u held for dt seconds exposes
    the basket to; `betas` are the legs' market (first factor) betas. Long runs are thinned
    to at most `MAX_TIMELINE_POINTS` evenly spaced points.
    """

    legs: list[str]
    band: float | None  # the completion band, when the basket has one
    betas: list[float] = []
    covariance_per_s: list[list[float]] = []
    points: list[TimelinePoint] = []


MAX_TIMELINE_POINTS = 4_000


class TimelineRecorder:
    """Samples a running basket into its `Timeline`, thinning long runs.

    Past `max_points`, every other point is dropped and the spacing between kept points
    doubles, so a basket of any length keeps an evenly spaced path of bounded size.
    """

    def __init__(self, max_points: int = MAX_TIMELINE_POINTS) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be ≥ 2, got {max_points}")
        self.max_points = max_points
        self.timeline: Timeline | None = None
        self._spacing_ns = 0

    def start(self, core: BasketCoordinator) -> None:
        """Begin the path of a basket about to run (its legs, band and risk figures)."""
        instruments = [leg.instrument for leg in core.basket.legs]
        cov = core.risk.instrument_covariance(instruments) / SECONDS_PER_YEAR
        self.timeline = Timeline(
            legs=[leg.leg_id for leg in core.basket.legs],
            band=core.basket.params.completion_band,
            betas=[float(b) for b in core.risk.market_betas(instruments)],
            covariance_per_s=cov.tolist(),
        )

    def add(
        self, core: BasketCoordinator, now_ns: int, hedge_usd: float, *, force: bool = False
    ) -> None:
        """A point for `now_ns`, unless it is closer than the spacing to the last one
        (`force`: keep it anyway, as the path's last point)."""
        tl = self.timeline
        if tl is None:
            self.start(core)
            tl = self.timeline
            assert tl is not None
        points = tl.points
        if points and not force and now_ns - points[-1].ts_ns < self._spacing_ns:
            return
        u = core.imbalance()
        points.append(
            TimelinePoint(
                ts_ns=now_ns,
                schedule=core.schedule_progress(now_ns),
                progress=[core.legs[leg].progress for leg in tl.legs],
                imbalance_usd=[u.get(leg, 0.0) for leg in tl.legs],
                hedge_usd=hedge_usd,
            )
        )
        if len(points) > self.max_points:
            del points[1::2]
            self._spacing_ns = max(2 * self._spacing_ns, points[1].ts_ns - points[0].ts_ns)


class TransferView(msgspec.Struct, frozen=True, kw_only=True):
    """One transfer step as the basket, the journal and the report see it.

    `source` and `destination` are `venue/wallet` (`alpha/spot`, `gamma/margin`);
    `requested_ns`/`updated_ns` on the collateral actor's clock; `venue_transfer_id` the
    venue's id once known."""

    client_transfer_id: str
    basket_id: str
    kind: TransferKind
    venue: str
    asset: str
    amount: Decimal
    source: str
    destination: str
    state: TransferState
    requested_ns: int
    updated_ns: int
    venue_transfer_id: str = ""
    reason: str = ""

    def age_s(self, now_ns: int) -> float:
        end = self.updated_ns if self.state.is_final else now_ns
        return max(0.0, (end - self.requested_ns) / 1e9)

    @property
    def message(self) -> str:
        what = f"{self.amount.normalize():f} {self.asset} {self.source} → {self.destination}"
        return f"{self.kind.value} {self.client_transfer_id} {what}: {self.state.value}"


class CollateralReport(msgspec.Struct, kw_only=True):
    """What the collateral actor held for the basket, and the transfers that funded it."""

    reserved: dict[str, Decimal] = {}  # USD per venue
    holdings: dict[str, dict[str, Decimal]] = {}  # base asset per venue (spot sells)
    released: bool = False
    refused: list[str] = []  # the shortfalls, when the basket was refused
    transfers: list[TransferView] = []  # asked to cure a shortfall (`[collateral] routing`)
    funding: str = ""  # what the basket did while they were under way


class BasketReport(msgspec.Struct, kw_only=True):
    """The whole basket: its outcome, every leg, the hedge, the collateral and the costs."""

    basket_id: str
    status: BasketState
    policy: Policy
    reason: str
    submitted_ns: int
    launched_ns: int | None
    completed_ns: int | None
    legs: list[LegReport]
    hedge: HedgeReport | None
    collateral: CollateralReport
    tca: dict[str, Any] | None = None  # filled in by the TCA (DESIGN §8)
    fraction: float = 1.0  # of the original basket targeted at the end (shrinks cut it)
    # Why it ended smaller than ordered: the final fraction, the leg that limited it, why and
    # since when on the basket's clock ("shrunk to 62 %: btc at its slippage cap since
    # 371 s (final at 600 s)"); "" at its whole size. Every change of size is in `notes`.
    shrink: str = ""
    launch_skew_ns: int | None = None  # first to last leg's venue accept, basket axis
    raw_ack_skew_ns: int | None = None  # first to last leg's ack arrival: not comparable
    venue_nodes: dict[str, dict[str, str]] = {}  # venue → labels of the node its actor ran on
    timeline: Timeline | None = None
    history: list[StateChanged] = []
    notes: list[str] = []

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(msgspec.json.format(self.to_json(), indent=2))


def load_report(data: bytes | str | Path) -> BasketReport:
    """A report from its JSON (bytes, text or a file path)."""
    if isinstance(data, Path):
        data = data.read_bytes()
    return msgspec.json.decode(data, type=BasketReport)
