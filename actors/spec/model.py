"""What a basket is: the structs of its specification, their errors and the resolved basket.

Two forms describe a basket (docs/basket.md is the reference):
- `BasketSpec` lists the legs (venue, symbol, side, quantity or notional in USD);
- `RebalanceSpec` gives target weights and a total in USD; `plan_rebalance` turns them into
  legs for the difference from the current positions.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import msgspec

from venues.model import Instrument, Side

# Client order ids are `<basket>.<tag>-<leg>-<n>` (DESIGN §7): at most 36 characters from
# [A-Za-z0-9._:/-]. `<basket>.<tag>` is the run's order prefix (`order_prefix`): the tag
# is the run's number in base 36 and RUN_NONCE_LEN random characters, so a basket run
# twice, or on two engines with two journals, never repeats an id. A spec is only valid if
# its longest id fits with n at its largest and a tag of RUN_TAG_ROOM characters.
MAX_CLIENT_ORDER_ID_LEN = 36
MAX_CHILD_SEQ = 99_999
RUN_NONCE_LEN = 4
RUN_TAG_ROOM = 1 + 2 + RUN_NONCE_LEN  # ".", the number (below 1,296: 2 digits), the nonce
# What the basket id and the longest leg id may use together: 22 characters.
ID_ROOM = MAX_CLIENT_ORDER_ID_LEN - len(f"--{MAX_CHILD_SEQ}") - RUN_TAG_ROOM
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

DEFAULT_BAND = 0.05
ACTIVATION_USD = 10_000.0  # `HedgeSpec.activation_usd` when neither it nor a share is given
HYSTERESIS_USD = 2_000.0

# --- the bounds of every value (docs/basket.md, "Limits") -------------------------------
# `load_basket` refuses a file with a value outside them before anything starts, and
# `validate` checks them again for specs built in Python.
MIN_HORIZON_S = 1.0
MAX_HORIZON_S = 7 * 86_400.0  # a week: a longer schedule is a typo, or a job for a person
MIN_SLICE_S = 0.01  # 10 ms, about the round trip to a venue in the same region
# Slices per leg, ceil(horizon_s / slice_s). A leg numbers its child orders 0-MAX_CHILD_SEQ
# in their client order ids, and one slice may take up to 3 orders (a missed one is sent
# again twice) besides the catch-up of the grace, an overrun as long as the horizon and an
# unwind: 10,000 slices leave that room, where 99,999 would run out mid-basket.
MAX_SLICES = 10_000
MAX_SLIPPAGE_BPS = 10_000.0  # 100 %: anything above is a typo, not a limit
MAX_GRACE_S = 86_400.0  # a day
MAX_FUNDING_TIMEOUT_S = 86_400.0  # a day: withdrawals between venues take minutes, not days
MAX_AMOUNT = Decimal(10) ** 12  # quantities (base units) and USD amounts: finite, > 0, <= this
MAX_LEGS = 100  # legs of a basket, or targets of a rebalance
MAX_HEDGE_INSTRUMENTS = 10
MAX_START_NS = 4_102_444_800 * 10**9  # 2100-01-01T00:00:00Z: a start is from 1970 to 2099

Instruments = Mapping[str, Mapping[str, Instrument]]
"""Instruments by venue, then by symbol."""
Prices = Mapping[tuple[str, str], Decimal]
"""Prices (or positions) by (venue, symbol)."""


class Policy(enum.StrEnum):
    """What a basket does when a leg fails or it is cancelled (DESIGN §5.8)."""

    UNWIND = "unwind"  # reverse the filled legs back to where they started
    HEDGE_AND_HOLD = "hedge_and_hold"  # keep the hedge, leave the basket open for an operator
    COMPLETE = "complete"  # keep going on the healthy legs


class OnUnfunded(enum.StrEnum):
    """What a basket does while a transfer cures a venue's shortfall (DESIGN §5.2)."""

    WAIT = "wait"  # stay CHECKING, send nothing, until every leg is funded or the deadline
    HEDGE = "hedge"  # start the funded legs; the hedge holds what the unfunded ones offset
    REFUSE = "refuse"  # no transfers: refused with the shortfall, as without routing


class ChildStyle(enum.StrEnum):
    """How a leg slices its quantity into child orders (docs/basket.md, "Child styles")."""

    TWAP = "twap"  # equal IOC slices every `slice_s`, capped by participation
    PASSIVE = "passive"  # rests post-only at or inside the touch; crosses only to catch up
    POV = "pov"  # IOC children of `pov_rate` × the venue's traded volume since the last one


# --- the specification -----------------------------------------------------------------
class LegSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One leg: buy or sell `quantity` (base units) or `notional_usd` of a symbol on a venue."""

    leg_id: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal | None = None
    notional_usd: Decimal | None = None
    max_slippage_bps: float | None = None  # default: the basket's params.max_slippage_bps
    child_style: ChildStyle | None = None  # default: the basket's params.child_style


class ExecutionParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The execution parameters every leg of a basket shares.

    `start` is "now" or ns since the epoch (UTC), like every timestamp of legato; the TOML
    loader also takes an ISO-8601 date-time with a zone (`parse_start`). The band is either
    a completion fraction (`band`) or a dollar-risk limit on sqrt(uᵀΣu) (`band_risk_usd`);
    with neither, the band is `DEFAULT_BAND`.
    """

    horizon_s: float
    start: int | Literal["now"] = "now"
    max_slippage_bps: float = 25.0
    participation_cap: float = 0.1
    band: float | None = None
    band_risk_usd: float | None = None
    child_style: ChildStyle = ChildStyle.TWAP
    # `pov`: the share of the venue's traded volume each leg aims at, at most
    # `participation_cap` (None: half of it).
    pov_rate: float | None = None
    slice_s: float = 10.0
    grace_s: float = 30.0
    on_unfunded: OnUnfunded = OnUnfunded.WAIT
    funding_timeout_s: float = 900.0  # how long transfers may take before the basket fails

    @property
    def completion_band(self) -> float | None:
        """The band as a completion fraction; None when it is set in dollar risk."""
        if self.band is not None:
            return self.band
        return None if self.band_risk_usd is not None else DEFAULT_BAND

    def start_ns(self, now_ns: int) -> int:
        """The start instant in ns; "now" is `now_ns`."""
        return now_ns if self.start == "now" else int(self.start)

    @property
    def pov_share(self) -> float:
        """The `pov` style's share of traded volume: `pov_rate`, or half the cap."""
        return self.pov_rate if self.pov_rate is not None else self.participation_cap / 2


class HedgeSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Temporary hedges while legs lag: instruments on one venue (docs/basket.md, "Hedge").

    Thresholds. The hedge is considered once the imbalance's one-day dollar risk (1σ, netted
    over the baskets hedging alike) passes the activation, and an instrument trades only by
    more than the hysteresis (USD notional). Each is given in dollars (`activation_usd`,
    `hysteresis_usd`) or relative to the basket (`activation_share` of its gross one-day risk
    Σ|N_i|σ_i, `hysteresis_share` of its gross notional Σ|N_i|); a share, when given, sets
    the figure and the dollar field is then left out. Validation turns shares into dollars.

    The decision rule. Past the activation, the desk trades only when what the risk a trade
    removes over the expected catch-up time T adds to the hedge's value,
    `risk_price × sqrt(∫ ΔV dt / 1 year)` with what it removed already, is at least
    `enter_ratio` × what the trade costs in and out (fees at `fee_bps`, half the spread,
    impact at `impact_bps_per_musd` per $1M traded), ΔV the residual variance it takes off
    (USD² a year); it aims at the share of the minimum-variance hedge that earns most. It
    keeps a hedge while `risk_price × sqrt(ΔV_held × T / 1 year)` stays above `exit_ratio`
    round trips, and holds any position at least `min_hold_s` before trading it again
    (unless no basket is left). A trade may rest post-only at the touch for `rest_s` first
    (paying `maker_fee_bps` on what fills there) and cross what remains, when T allows and
    that is expected to earn more.
    """

    venue: str
    instruments: list[str]
    activation_usd: float = ACTIVATION_USD
    hysteresis_usd: float = HYSTERESIS_USD
    activation_share: float | None = None  # of the basket's gross one-day risk
    hysteresis_share: float | None = None  # of the basket's gross notional
    enabled: bool = True
    risk_price: float = 1.0  # USD of cost worth paying per USD of 1σ P&L removed over T
    enter_ratio: float = 1.0  # trade when value / cost reaches this
    exit_ratio: float = 0.5  # unwind when the position's value / cost falls below this
    min_hold_s: float = 10.0
    fee_bps: float = 5.0  # the hedge venue's taker fee (DESIGN §10)
    impact_bps_per_musd: float = 1.0  # linear impact per $1M of a hedge trade
    maker_fee_bps: float = 2.0  # the hedge venue's maker fee: what a resting order pays
    rest_s: float = 5.0  # rest post-only this long before crossing, time allowing (0: never)

    def with_thresholds(self, activation_usd: float, hysteresis_usd: float) -> HedgeSpec:
        """This hedge with its thresholds in dollars, its shares resolved away."""
        return msgspec.structs.replace(
            self,
            activation_usd=activation_usd,
            hysteresis_usd=hysteresis_usd,
            activation_share=None,
            hysteresis_share=None,
        )


class BasketSpec(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="basket",
    tag_field="kind",
):
    """A basket given leg by leg."""

    basket_id: str
    legs: list[LegSpec]
    params: ExecutionParams
    hedge: HedgeSpec | None = None
    policy: Policy = Policy.UNWIND


class RebalanceSpec(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="rebalance",
    tag_field="kind",
):
    """A basket given as target weights of `total_usd`, traded from the current positions.

    Each symbol trades on `venues[symbol]`, or on `venue` when it has no entry there. Only
    the symbols of `targets` are touched; a weight of 0 closes a position.
    """

    basket_id: str
    targets: dict[str, Decimal]
    total_usd: Decimal
    params: ExecutionParams
    venue: str | None = None
    venues: dict[str, str] = {}
    hedge: HedgeSpec | None = None
    policy: Policy = Policy.UNWIND


Spec = BasketSpec | RebalanceSpec


# --- errors ----------------------------------------------------------------------------
class FieldError(msgspec.Struct, frozen=True):
    """One mistake: the field's path and what is wrong with it (value and what is accepted)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """A basket specification that cannot be executed; `.errors` lists every mistake."""

    def __init__(
        self,
        errors: Sequence[FieldError],
        *,
        source: str | None = None,
        basket_id: str | None = None,
    ) -> None:
        self.errors = list(errors)
        self.source = source
        self.basket_id = basket_id
        n = len(self.errors)
        head = f"{source}: " if source else ""
        what = f"basket {basket_id!r}" if isinstance(basket_id, str) else "basket"
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{head}invalid {what}, {n} error{'' if n == 1 else 's'}:\n{lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (Ray) whole, with its field errors, not as one string.
        return (_spec_error, (self.errors, self.source, self.basket_id))


def _spec_error(errors: list[FieldError], source: str | None, basket_id: str | None) -> SpecError:
    return SpecError(errors, source=source, basket_id=basket_id)


# --- the resolved basket ---------------------------------------------------------------
class ResolvedLeg(msgspec.Struct, frozen=True, kw_only=True):
    """A validated leg: a concrete quantity on the lot grid, with its instrument's rules."""

    leg_id: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal
    instrument: Instrument
    price: Decimal | None  # the price the leg was checked (and a notional converted) at
    max_slippage_bps: float  # the leg's own limit, or the basket's
    # The leg's own child style, or the basket's, and the `pov` share (`ResolvedBasket.styled`
    # fills them in from the spec).
    child_style: ChildStyle = ChildStyle.TWAP
    pov_rate: float = 0.0

    @property
    def notional_usd(self) -> Decimal | None:
        if self.price is None:
            return None
        return self.instrument.notional(self.price, self.quantity)


class ResolvedBasket(msgspec.Struct, frozen=True, kw_only=True):
    """A basket that passed validation: what the basket actor executes."""

    basket_id: str
    legs: list[ResolvedLeg]
    params: ExecutionParams
    policy: Policy
    hedge: HedgeSpec | None
    hedge_instruments: list[Instrument]
    spec: BasketSpec | RebalanceSpec  # as submitted
    notes: list[str] = []  # e.g. rebalance targets left alone because the trade is too small
    # What is legal but probably not meant (a hedge threshold the basket can never reach):
    # the basket runs, and the warnings are shown beside it. Each is also in `notes`.
    warnings: list[FieldError] = []

    def styled(self, leg: ResolvedLeg) -> ResolvedLeg:
        """`leg` with its child style resolved: its own (`LegSpec.child_style`), else the
        basket's `params.child_style`; and the `pov` share of the params."""
        style = self.params.child_style
        if isinstance(self.spec, BasketSpec):
            for given in self.spec.legs:
                if given.leg_id == leg.leg_id and given.child_style is not None:
                    style = given.child_style
        return msgspec.structs.replace(
            leg, child_style=ChildStyle(style), pov_rate=self.params.pov_share
        )

    def leg(self, leg_id: str) -> ResolvedLeg:
        for leg in self.legs:
            if leg.leg_id == leg_id:
                return leg
        raise KeyError(f"basket {self.basket_id} has no leg {leg_id!r}")

    @property
    def gross_usd(self) -> Decimal | None:
        """Sum of the legs' notionals, if every leg was checked at a price."""
        total = Decimal(0)
        for leg in self.legs:
            notional = leg.notional_usd
            if notional is None:
                return None
            total += notional
        return total


def client_order_id(prefix: str, leg_id: str, n: int) -> str:
    """The deterministic client order id of a leg's n-th child order (DESIGN §7); `prefix`
    is the run's `order_prefix` (the bare basket id in the backtest, which sends nothing)."""
    if not 0 <= n <= MAX_CHILD_SEQ:
        raise ValueError(f"child order number {n} is outside 0-{MAX_CHILD_SEQ}")
    return f"{prefix}-{leg_id}-{n}"


def base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"base36: {n} is negative")
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = _BASE36[d] + digits
        if n == 0:
            return digits


def order_prefix(basket_id: str, run_number: int, nonce: str, longest_leg_id: str) -> str:
    """The client order id prefix of run `run_number` of `basket_id`: `<basket>.<tag>`,
    the tag being the run number in base 36 and then `nonce` (random, from `new_nonce`).

    Within one journal the number alone makes the prefix unique (a basket id's runs are
    numbered once); the nonce separates journals (two engines, two namespaces), by chance:
    one in 36**RUN_NONCE_LEN (1.7 million) for two runs with equal ids and numbers. Past
    run 1,295 the number takes 3 digits; the nonce then gives up what the longest id
    lacks, and never the number."""
    tag = base36(run_number) + nonce
    longest = len(client_order_id(f"{basket_id}.{tag}", longest_leg_id, MAX_CHILD_SEQ))
    over = longest - MAX_CLIENT_ORDER_ID_LEN
    if over > 0:
        if over > len(nonce):
            raise ValueError(
                f"basket_id: run {run_number} of {basket_id!r} does not fit the venues' "
                f"{MAX_CLIENT_ORDER_ID_LEN}-character client order ids; shorten the basket "
                "or leg ids"
            )
        tag = tag[: len(tag) - over]
    return f"{basket_id}.{tag}"


def new_nonce() -> str:
    """RUN_NONCE_LEN random base-36 characters (for `order_prefix`)."""
    return "".join(secrets.choice(_BASE36) for _ in range(RUN_NONCE_LEN))
