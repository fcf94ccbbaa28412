"""The messages between actor shells: commands (imperative) and what comes back (past tense).

They live here, in an importable module, because Ray pickles them across processes
(DESIGN §9: a struct defined in `__main__` loses its fields on the way).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from actors.lifecycle import BasketState
from actors.messages import LegProgress
from actors.report import TransferView
from actors.risk import RiskSettings
from actors.routing import RoutingRules
from actors.spec import HedgeSpec, ResolvedLeg
from venues.config import VenueConfig
from venues.model import AckKind, ExecutionReport, Side


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """Where an actor runs: its Ray node and that node's labels."""

    node_id: str
    node_labels: dict[str, str]
    pid: int


class InboxAddress(msgspec.Struct, frozen=True, kw_only=True):
    """Where an actor takes events by a direct stream: a port on its node's loopback, and
    the token a connection must open with (`actors.shells.channel`)."""

    node_id: str
    port: int
    token: bytes


class VenueEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """How a leg on the venue's node reaches the venue: its configuration and, for a
    simulated venue, the URLs it is served at on that node's loopback."""

    venue: str
    config: VenueConfig
    rest_url: str | None = None  # a simulated venue's server; real venues use the config
    ws_url: str | None = None
    account_id: str | None = None
    epoch: str = ""  # changes whenever the venue (a simulated one) is started afresh
    placement: Placement | None = None


AUDIT_LEVELS = ("orders", "fills", "off")
# How long after sending an order the venue may still apply it: an order the venue does not
# know within this window may yet appear; past it, it never will (Binance: the request's 5 s
# receive window, and a second for the clocks). Legs (`ArmLeg.order_window_ns`) and hedge
# orders whose placing went unanswered both wait it out before "unknown" means "never".
ORDER_WINDOW_NS = 6_000_000_000


class AuditSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The audit log (docs/audit.md; the config's `[audit]`): `destination` a file path,
    "stderr" or "off" ("" : `audit.jsonl` in the journal's data directory, stderr when the
    journal is PostgreSQL); `level` one of `AUDIT_LEVELS`. `$LEGATO_AUDIT_LOG` and
    `$LEGATO_AUDIT_LEVEL`, where an actor runs, override both."""

    destination: str = ""
    level: str = "orders"


class ArmLeg(msgspec.Struct, frozen=True, kw_only=True):
    """Prepare to work `leg`: connect, measure the venue clock, read the book."""

    basket_id: str
    leg: ResolvedLeg
    endpoint: VenueEndpoint
    horizon_ns: int
    slice_ns: int
    participation_cap: float
    max_child_fraction: float | None
    progress_every_ns: int = 250_000_000  # a heartbeat snapshot even when nothing changes
    # The instrument's annualised volatility under the basket's risk model: with the venue's
    # round trip it sets how far a limit goes through the touch (`latency_buffer_bps`).
    vol_annual: float = 0.0
    # Worked in step with other legs (SliceScheduler(synchronized=)): the launch order is
    # one regular slice whatever the volume, and a slice the venue expired is sent again.
    synchronized: bool = False
    # The basket's inbox for this leg's progress, when it takes events by a direct stream.
    progress_inbox: InboxAddress | None = None
    # How long after sending an order the venue may still apply it (`ORDER_WINDOW_NS`).
    order_window_ns: int = ORDER_WINDOW_NS
    # The run's client order id prefix (`actors.spec.order_prefix`); "" : the basket id.
    order_prefix: str = ""
    # The run's identity in the journal ("" : not journaled, as in the backtest), and where
    # the journal lives (`actors.journal.journal_store`).
    run_id: str = ""
    journal: str = ""
    audit: AuditSettings | None = None  # the audit log's settings (None: the defaults)


class LegArmed(msgspec.Struct, frozen=True, kw_only=True):
    """A leg is connected and ready to fire."""

    leg_id: str
    placement: Placement
    ack_kind: AckKind
    venue_clock_offset_ns: int  # venue − leg
    venue_clock_rtt_ns: int | None
    venue_typical_rtt_ns: int | None  # median round trip: the leg sends this/2 before fire_at
    mid: Decimal | None


class PlaceHedge(msgspec.Struct, frozen=True, kw_only=True):
    """Trade a hedge now: an IOC through the mid, `qty` (or about `notional_usd` without it);
    or, with `rest_ns` > 0 (and a `qty`), post-only at the touch, cancelled after `rest_ns`
    if not filled by then (its final report says how much did)."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal | None
    notional_usd: float
    rest_ns: int = 0


class HedgeFill(msgspec.Struct, frozen=True, kw_only=True):
    """A hedge order as the venue finished it, with the venue actor's send time."""

    report: ExecutionReport
    sent_ns: int
    mid: float


class ExposureReport(msgspec.Struct, frozen=True, kw_only=True):
    """A basket's imbalance as factor exposures (USD), monotonic by `seq` (DESIGN §5.6)."""

    basket_id: str
    seq: int
    hedge: HedgeSpec
    venue_epoch: str
    exposure: dict[str, float]
    cause_ns: int | None  # the newest fill behind this exposure, when a leg saw it
    ts_ns: int
    risk: RiskSettings = msgspec.field(
        default_factory=RiskSettings
    )  # the model it was measured with
    # Seconds the basket expects until its legs are back in step (None: it does not say,
    # and the desk reckons from how long the imbalance has lasted; `actors.hedge.catchup_s`).
    catchup_s: float | None = None


class HedgeStatement(msgspec.Struct, frozen=True, kw_only=True):
    """What the hedge actor did for one basket."""

    basket_id: str
    orders: int
    max_abs_position: float
    pnl_usd: float
    fees_usd: float
    held: bool
    flat: bool
    reaction_ns: list[int]
    # What the hedge cost against what it removed (docs/basket.md, "Hedge"): fees and the
    # spread and impact paid against the mid, and ∫ of the variance it took off (USD²),
    # both the basket's attributed share; the value is `risk_price × sqrt(risk_removed)`.
    trading_cost_usd: float = 0.0
    risk_removed_usd2: float = 0.0
    risk_value_usd: float = 0.0
    # The desk's hedge orders that may still rest at the venue and fill (`HedgeOrderOpen`, not
    # yet seen ended), by client order id: while there are any, `flat` is not claimed.
    unsettled: list[str] = []


class BasketOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a basket actor places and drives its legs; the engine fills these in."""

    namespace: str = "legato"
    labels: dict[str, dict[str, str]] = {}  # venue → label selector; empty: run anywhere
    fire_lead_ms: float = 50.0  # fire_at this far ahead of the moment every leg is armed
    warm_fire_lead_ms: float = 15.0  # the same when every leg came warm from the pool
    arm_timeout_s: float = 60.0  # legs not armed this long after arming began: fail
    max_arming: int = 4  # baskets of the namespace arming at once; the others wait (QUEUED)
    max_running: int = 0  # baskets arming or running at once (0: no limit); the others wait
    clock_pings: int = 5
    tick_ms: float = 100.0  # the coordinator's periodic step
    unwind_deadline_s: float = 30.0
    leg_silence_s: float = 3.0  # a leg unheard of this long is pinged; no answer: it is lost
    min_overrun_s: float = 60.0  # a basket fails once past horizon + grace + max(this, horizon)
    leg_clock_offsets_ns: dict[str, int] = {}  # test hook: a leg node's clock is off by this
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)  # the config's [risk]
    routing: RoutingRules | None = None  # the config's [collateral] (None: no transfers)
    # The journal (DESIGN §9): where it lives ("" : none), and this run's identity in it and
    # the prefix of its client order ids (the engine's supervisor gives both per submission).
    journal: str = ""
    run_id: str = ""
    order_prefix: str = ""
    audit: AuditSettings = AuditSettings()  # the config's [audit]


class BasketStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A live view of a basket, for progress displays."""

    basket_id: str
    state: BasketState
    reason: str
    legs: list[LegProgress]
    schedule_progress: float
    hedge_position_usd: float
    ts_ns: int
    band: float | None = None  # the completion band: max − min leg completion allowed
    transfers: list[TransferView] = []  # asked to fund the basket (`[collateral] routing`)
