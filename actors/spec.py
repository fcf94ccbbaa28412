"""The basket specification: legs, execution parameters, hedge and failure policy; loaded from
TOML or built in Python, and validated against the venues' instrument rules before anything
is sent.

Two forms describe a basket (docs/basket.md is the reference):
- `BasketSpec` lists the legs (venue, symbol, side, quantity or notional in USD);
- `RebalanceSpec` gives target weights and a total in USD; `plan_rebalance` turns them into
  legs for the difference from the current positions.

`validate` checks either form and returns a `ResolvedBasket` whose legs carry concrete
quantities on their instrument's lot grid, or raises one `SpecError` listing every mistake
with its field path (`legs[2].symbol`, `params.band`, `targets.ETHUSDT`).
"""

from __future__ import annotations

import enum
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import msgspec

from venues.config import ReplayMarketConfig, SimVenueConfig, VenuesConfig
from venues.instants import parse_instant
from venues.model import Instrument, InstrumentKind, Side
from venues.sim.calibration import REPLAY_INSTRUMENTS, SYNTHETIC_INSTRUMENTS

# Client order ids are `<basket>-<leg>-<n>` (DESIGN §7): at most 36 characters from
# [A-Za-z0-9._:/-]. A spec is only valid if its longest id fits with n at its largest.
MAX_CLIENT_ORDER_ID_LEN = 36
MAX_CHILD_SEQ = 99_999
_BASKET_ID = re.compile(r"^[A-Za-z0-9._:/-]+$")
# No "-" in leg ids: then the last two "-" of a client order id split it unambiguously, and
# two baskets can never produce the same id (basket "a-b" leg "c" against basket "a" leg "b-c").
_LEG_ID = re.compile(r"^[A-Za-z0-9._:/]+$")

WEIGHT_TOLERANCE = Decimal("1e-9")
DEFAULT_BAND = 0.05
MAX_SLIPPAGE_BPS = 10_000.0  # 100 %: anything above is a typo, not a limit

Instruments = Mapping[str, Mapping[str, Instrument]]
"""Instruments by venue, then by symbol."""
Prices = Mapping[tuple[str, str], Decimal]
"""Prices (or positions) by (venue, symbol)."""


class Policy(enum.StrEnum):
    """What a basket does when a leg fails or it is cancelled (DESIGN §5.8)."""

    UNWIND = "unwind"  # reverse the filled legs back to where they started
    HEDGE_AND_HOLD = "hedge_and_hold"  # keep the hedge, leave the basket open for an operator
    COMPLETE = "complete"  # keep going on the healthy legs


class ChildStyle(enum.StrEnum):
    """How a leg slices its quantity into child orders."""

    TWAP = "twap"  # equal slices every `slice_s`, capped by participation


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
    slice_s: float = 10.0
    grace_s: float = 30.0

    @property
    def completion_band(self) -> float | None:
        """The band as a completion fraction; None when it is set in dollar risk."""
        if self.band is not None:
            return self.band
        return None if self.band_risk_usd is not None else DEFAULT_BAND

    def start_ns(self, now_ns: int) -> int:
        """The start instant in ns; "now" is `now_ns`."""
        return now_ns if self.start == "now" else int(self.start)


class HedgeSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Temporary hedges while legs lag: instruments on one venue, traded once the imbalance's
    one-day dollar risk (1σ, netted over the baskets hedging alike) passes `activation_usd`,
    resized only by changes of `hysteresis_usd`."""

    venue: str
    instruments: list[str]
    activation_usd: float = 10_000.0
    hysteresis_usd: float = 2_000.0
    enabled: bool = True


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
Hook = Callable[[Any, str], Any]


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

    def leg(self, leg_id: str) -> ResolvedLeg:
        for leg in self.legs:
            if leg.leg_id == leg_id:
                return leg
        raise KeyError(f"basket {self.basket_id} has no leg {leg_id!r}")

    def client_order_id(self, leg_id: str, n: int) -> str:
        return client_order_id(self.basket_id, leg_id, n)

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


def client_order_id(basket_id: str, leg_id: str, n: int) -> str:
    """The deterministic client order id of a leg's n-th child order (DESIGN §7)."""
    if not 0 <= n <= MAX_CHILD_SEQ:
        raise ValueError(f"child order number {n} is outside 0-{MAX_CHILD_SEQ}")
    return f"{basket_id}-{leg_id}-{n}"


# --- instruments from a venues configuration -------------------------------------------
def venue_instruments(config: VenuesConfig) -> dict[str, dict[str, Instrument]]:
    """{venue: {symbol: Instrument}} for the simulated venues of a configuration.

    Real venues (`binance_usdm`) are left out: their instruments come from the venue itself
    (`VenueClient.instruments()`) once connected.
    """
    out: dict[str, dict[str, Instrument]] = {}
    for name, cfg in config.venues.items():
        if not isinstance(cfg, SimVenueConfig):
            continue
        market = cfg.market
        catalogue = (
            REPLAY_INSTRUMENTS[market.kind]
            if isinstance(market, ReplayMarketConfig)
            else SYNTHETIC_INSTRUMENTS
        )
        symbols = cfg.instruments or list(catalogue)
        out[name] = {s: catalogue[s] for s in symbols}
    return out


# --- loading ---------------------------------------------------------------------------
def parse_start(value: object) -> int | Literal["now"]:
    """A start time as legato keeps it: "now", or ns since the epoch (`parse_instant`)."""
    ns = parse_instant(value, keyword="now", what="a start time")
    return "now" if ns is None else ns


def load_basket(source: Path | str) -> BasketSpec | RebalanceSpec:
    """A basket from a TOML file (a `Path`, or a `str` naming a `.toml` file) or TOML text.

    `kind = "basket"` or `"rebalance"`; without it, the form is inferred from `legs` or
    `targets`. Raises `SpecError` listing every field of the wrong type, unknown or missing;
    `validate` checks the values.
    """
    name: str | None = None
    if isinstance(source, Path) or ("\n" not in source and source.strip().endswith(".toml")):
        path = Path(source)
        name = str(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise SpecError(
                [FieldError("", f"cannot read {path}: {e.strerror or e}")], source=name
            ) from None
    else:
        text = source
    try:
        data = tomllib.loads(text, parse_float=Decimal)  # exact decimals for quantities
    except tomllib.TOMLDecodeError as e:
        raise SpecError([FieldError("", f"not valid TOML: {e}")], source=name) from None
    return parse_basket(data, source=name)


def parse_basket(data: Mapping[str, Any], *, source: str | None = None) -> Spec:
    """A basket from already-parsed TOML (or JSON) data; see `load_basket`."""
    errors: list[FieldError] = []
    kind = data.get("kind")
    if kind is None:
        if "legs" in data and "targets" not in data:
            kind = "basket"
        elif "targets" in data and "legs" not in data:
            kind = "rebalance"
    cls: type[BasketSpec] | type[RebalanceSpec]
    if kind == "basket":
        cls = BasketSpec
    elif kind == "rebalance":
        cls = RebalanceSpec
    else:
        shown = "missing" if kind is None else _show(kind)
        raise SpecError(
            [
                FieldError(
                    "kind",
                    f'{shown}; accepted: "basket" (a [[legs]] list) or "rebalance" '
                    "(a [targets] table); without kind, exactly one of legs or targets",
                )
            ],
            source=source,
        )
    body = {k: v for k, v in data.items() if k != "kind"}
    start: Hook = lambda raw, at: _start(raw, at, errors)  # noqa: E731
    nested: dict[str, Hook] = {
        "params": lambda raw, at: _convert(ExecutionParams, raw, at, errors, {"start": start}),
        "hedge": lambda raw, at: _convert(HedgeSpec, raw, at, errors),
        "legs": lambda raw, at: _convert_legs(raw, at, errors),
    }
    fields = _convert(cls, body, "", errors, nested)
    if errors or fields is None:
        raise SpecError(errors, source=source)
    return fields


def _start(raw: Any, at: str, errors: list[FieldError]) -> Any:
    try:
        return parse_start(raw)
    except ValueError as e:
        errors.append(FieldError(at, str(e)))
        return None


def _convert_legs(raw: Any, at: str, errors: list[FieldError]) -> list[LegSpec] | None:
    if not isinstance(raw, list):
        errors.append(FieldError(at, f"expected a list of [[legs]] tables, got {_type_name(raw)}"))
        return None
    legs = [_convert(LegSpec, item, f"{at}[{i}]", errors) for i, item in enumerate(raw)]
    return None if any(leg is None for leg in legs) else legs  # type: ignore[return-value]


def _convert(
    cls: type[Any],
    raw: Any,
    at: str,
    errors: list[FieldError],
    nested: Mapping[str, Hook] | None = None,
) -> Any:
    """`cls` from a table, one field at a time so that every bad field is reported."""
    if not isinstance(raw, Mapping):
        errors.append(FieldError(at, f"expected a table, got {_type_name(raw)}"))
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    accepted = ", ".join(fields)
    values: dict[str, Any] = {}
    ok = True
    for key, value in raw.items():
        path = _join(at, key)
        field = fields.get(key)
        if field is None:
            errors.append(FieldError(path, f"unknown field; accepted here: {accepted}"))
            ok = False
            continue
        hook = (nested or {}).get(key)
        if hook is not None:
            # A hook records its own errors and returns None for a value it refused.
            values[field.name] = converted = hook(value, path)
            ok = ok and converted is not None
            continue
        try:
            values[field.name] = msgspec.convert(value, field.type)
        except msgspec.ValidationError as e:
            errors.append(FieldError(path, _type_message(e, value, field.type)))
            ok = False
    for key, field in fields.items():
        if field.required and key not in raw:
            errors.append(FieldError(_join(at, key), "required field is missing"))
            ok = False
    return cls(**values) if ok else None


def _type_message(error: msgspec.ValidationError, value: object, type_: Any) -> str:
    message = str(error).partition(" - at `")[0].replace("`", "")
    choices = _choices(type_)
    if message.startswith("Invalid enum value") or (choices and "Expected" in message):
        return f"{_show(value)} is not accepted; accepted: {choices}"
    if message.startswith("Expected"):
        message = "expected" + message.removeprefix("Expected").replace(" | null", "")
        message = message.replace("decimal", "a number").replace("float", "a number")
    return f"{message} ({_show(value)})"


def _choices(type_: Any) -> str:
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return ", ".join(str(m.value) for m in type_)
    return ""


# --- dumping ---------------------------------------------------------------------------
def dump_basket(spec: Spec) -> str:
    """The spec as TOML text that `load_basket` reads back to an equal spec."""
    data = msgspec.to_builtins(spec, builtin_types=(Decimal,))
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        if not table:
            continue  # an empty table reads back as its default (venues = {})
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None
            ]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float) and not _finite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# --- validation ------------------------------------------------------------------------
def validate(
    spec: Spec,
    instruments: Instruments,
    prices: Prices | None = None,
    positions: Prices | None = None,
) -> ResolvedBasket:
    """Check a spec against the venues' instruments and resolve its legs.

    `prices` by (venue, symbol) turn notionals into quantities and check minimum
    notionals; without them a notional leg or a rebalance cannot be resolved (an error),
    and quantity legs skip the minimum-notional check. `positions` (signed base units by
    (venue, symbol), default flat) are what a rebalance trades from.

    Raises `SpecError` listing every mistake with its field path.
    """
    errors: list[FieldError] = []
    notes: list[str] = []
    basket_id = spec.basket_id
    _check_basket_id(basket_id, errors)
    params = spec.params if isinstance(spec.params, ExecutionParams) else None
    resolved: list[ResolvedLeg] = []
    leg_ids: list[str] = []
    if isinstance(spec, BasketSpec):
        legs = spec.legs
        if not legs:
            errors.append(FieldError("legs", "no legs; a basket needs at least one"))
        paths = [f"legs[{i}]" for i in range(len(legs))]
        resolved = _check_legs(legs, paths, instruments, prices, params, errors)
        leg_ids = [str(leg.leg_id) for leg in legs]
    else:
        plan = _plan(spec, instruments, prices, positions or {}, errors)
        if plan is not None:
            notes = plan.notes
            if not plan.legs and not errors:
                errors.append(
                    FieldError(
                        "targets",
                        "nothing to trade: every position is already within its lot or "
                        "minimum notional of its target",
                    )
                )
            paths = [f"targets.{leg.symbol}" for leg in plan.legs]
            resolved = _check_legs(plan.legs, paths, instruments, prices, params, errors)
        leg_ids = [_rebalance_leg_id(s) for s in spec.targets]
    _check_id_length(basket_id, leg_ids, errors)
    _check_params(spec.params, errors)
    hedge_instruments = _check_hedge(spec, instruments, errors)
    policy = _check_policy(spec, errors)
    if errors:
        raise SpecError(errors, basket_id=basket_id if isinstance(basket_id, str) else None)
    assert params is not None and policy is not None
    return ResolvedBasket(
        basket_id=basket_id,
        legs=resolved,
        params=params,
        policy=policy,
        hedge=spec.hedge,
        hedge_instruments=hedge_instruments,
        spec=spec,
        notes=notes,
    )


def _check_basket_id(basket_id: object, errors: list[FieldError]) -> None:
    if not isinstance(basket_id, str) or not _BASKET_ID.match(basket_id):
        errors.append(
            FieldError(
                "basket_id",
                f"{_show(basket_id)} is not a basket id; accepted: 1 or more characters "
                "from A-Z a-z 0-9 . _ : / - (it starts every client order id)",
            )
        )


def _check_id_length(basket_id: object, leg_ids: Sequence[str], errors: list[FieldError]) -> None:
    if not isinstance(basket_id, str) or not leg_ids:
        return
    longest = max(leg_ids, key=len)
    example = client_order_id(basket_id, longest, MAX_CHILD_SEQ)
    if len(example) > MAX_CLIENT_ORDER_ID_LEN:
        room = MAX_CLIENT_ORDER_ID_LEN - len(f"--{MAX_CHILD_SEQ}")
        errors.append(
            FieldError(
                "basket_id",
                f"client order ids would reach {len(example)} characters ({example!r}); "
                f"venues accept at most {MAX_CLIENT_ORDER_ID_LEN}: basket id and longest leg "
                f"id together may use {room} characters, these use "
                f"{len(basket_id)} + {len(longest)}",
            )
        )


def _check_params(params: object, errors: list[FieldError]) -> None:
    if not isinstance(params, ExecutionParams):
        errors.append(FieldError("params", f"expected ExecutionParams, got {_type_name(params)}"))
        return
    at = "params"
    start = params.start
    if not (start == "now" or (isinstance(start, int) and not isinstance(start, bool))):
        errors.append(
            FieldError(
                f"{at}.start",
                f'{_show(start)} is not accepted; accepted: "now" or ns since the epoch '
                "(parse_start converts an ISO-8601 date-time)",
            )
        )
    elif isinstance(start, int) and start < 0:
        errors.append(FieldError(f"{at}.start", f"{start} is negative; ns since the epoch >= 0"))
    horizon = _number(params.horizon_s, f"{at}.horizon_s", errors, "a number of seconds > 0")
    if horizon is not None and horizon <= 0:
        errors.append(FieldError(f"{at}.horizon_s", f"{_show(horizon)} is not > 0 seconds"))
    _slippage(params.max_slippage_bps, f"{at}.max_slippage_bps", errors)
    cap = _number(params.participation_cap, f"{at}.participation_cap", errors, "within (0, 1]")
    if cap is not None and not 0 < cap <= 1:
        errors.append(
            FieldError(
                f"{at}.participation_cap",
                f"{_show(cap)} is outside (0, 1]; the largest share of the venue's traded "
                "volume a leg may take, e.g. 0.1",
            )
        )
    if params.band is not None and params.band_risk_usd is not None:
        errors.append(
            FieldError(
                f"{at}.band",
                "give either band (a completion fraction) or band_risk_usd (a dollar-risk "
                "limit), not both",
            )
        )
    if params.band is not None:
        band = _number(params.band, f"{at}.band", errors, "within (0, 1)")
        if band is not None and not 0 < band < 1:
            errors.append(
                FieldError(
                    f"{at}.band",
                    f"{_show(band)} is outside (0, 1); a completion fraction such as "
                    f"{DEFAULT_BAND}",
                )
            )
    if params.band_risk_usd is not None:
        risk = _number(params.band_risk_usd, f"{at}.band_risk_usd", errors, "USD > 0")
        if risk is not None and risk <= 0:
            errors.append(
                FieldError(f"{at}.band_risk_usd", f"{_show(risk)} is not a positive USD amount")
            )
    if params.child_style not in tuple(ChildStyle):
        errors.append(
            FieldError(
                f"{at}.child_style",
                f"{_show(params.child_style)} is not accepted; accepted: {_choices(ChildStyle)}",
            )
        )
    slice_s = _number(params.slice_s, f"{at}.slice_s", errors, "seconds > 0")
    if slice_s is not None:
        if slice_s <= 0:
            errors.append(FieldError(f"{at}.slice_s", f"{_show(slice_s)} is not > 0 seconds"))
        elif horizon is not None and horizon > 0 and slice_s > horizon:
            errors.append(
                FieldError(
                    f"{at}.slice_s",
                    f"{_show(slice_s)} s is longer than the horizon ({_show(horizon)} s); "
                    "accepted: 0 < slice_s <= horizon_s",
                )
            )
    grace = _number(params.grace_s, f"{at}.grace_s", errors, "seconds >= 0")
    if grace is not None and grace < 0:
        errors.append(FieldError(f"{at}.grace_s", f"{_show(grace)} is negative; seconds >= 0"))


def _check_policy(spec: Spec, errors: list[FieldError]) -> Policy | None:
    try:
        policy = Policy(spec.policy)
    except ValueError:
        accepted = _choices(Policy)
        errors.append(
            FieldError("policy", f"{_show(spec.policy)} is not accepted; accepted: {accepted}")
        )
        return None
    hedge = spec.hedge
    if policy is Policy.HEDGE_AND_HOLD and (not isinstance(hedge, HedgeSpec) or not hedge.enabled):
        # The basket must never be left one-legged without a hedge or an unwind (DESIGN §5.8).
        errors.append(
            FieldError(
                "policy",
                "hedge_and_hold needs an enabled [hedge] section to hold; add one, or choose "
                "unwind or complete",
            )
        )
    return policy


def _check_legs(
    legs: Sequence[LegSpec],
    paths: Sequence[str],
    instruments: Instruments,
    prices: Prices | None,
    params: ExecutionParams | None,
    errors: list[FieldError],
) -> list[ResolvedLeg]:
    resolved: list[ResolvedLeg] = []
    seen_ids: dict[str, str] = {}
    seen_instruments: dict[tuple[str, str], str] = {}
    for leg, at in zip(legs, paths, strict=True):
        if not isinstance(leg, LegSpec):
            errors.append(FieldError(at, f"expected LegSpec, got {_type_name(leg)}"))
            continue
        leg_id = leg.leg_id
        if not isinstance(leg_id, str) or not _LEG_ID.match(leg_id):
            errors.append(
                FieldError(
                    f"{at}.leg_id",
                    f"{_show(leg_id)} is not a leg id; accepted: 1 or more characters from "
                    "A-Z a-z 0-9 . _ : / (no '-': it separates the parts of client order ids)",
                )
            )
        elif leg_id in seen_ids:
            errors.append(
                FieldError(
                    f"{at}.leg_id",
                    f"{leg_id!r} is also {seen_ids[leg_id]}.leg_id; leg ids must be unique",
                )
            )
        else:
            seen_ids[leg_id] = at
        inst = _instrument(
            leg.venue, leg.symbol, f"{at}.venue", f"{at}.symbol", instruments, errors
        )
        if inst is not None:
            key = (leg.venue, leg.symbol)
            if key in seen_instruments:
                errors.append(
                    FieldError(
                        f"{at}.symbol",
                        f"{leg.venue}/{leg.symbol} is also traded by {seen_instruments[key]}; "
                        "one leg per instrument and venue: merge them",
                    )
                )
            seen_instruments.setdefault(key, at)
        side: Side | None = None
        try:
            side = Side(leg.side)
        except ValueError:
            errors.append(
                FieldError(f"{at}.side", f"{_show(leg.side)} is not a side; accepted: BUY, SELL")
            )
        slippage = _slippage(leg.max_slippage_bps, f"{at}.max_slippage_bps", errors, optional=True)
        quantity = _leg_quantity(leg, at, inst, prices, errors)
        if inst is None or side is None or quantity is None or params is None:
            continue
        price = _price(prices, leg.venue, leg.symbol)
        resolved.append(
            ResolvedLeg(
                leg_id=leg_id,
                venue=leg.venue,
                symbol=leg.symbol,
                side=side,
                quantity=quantity,
                instrument=inst,
                price=price,
                max_slippage_bps=slippage if slippage is not None else params.max_slippage_bps,
            )
        )
    return resolved


def _leg_quantity(
    leg: LegSpec,
    at: str,
    inst: Instrument | None,
    prices: Prices | None,
    errors: list[FieldError],
) -> Decimal | None:
    """The leg's quantity on the lot grid, or None after recording why there is none."""
    given_qty, given_notional = leg.quantity is not None, leg.notional_usd is not None
    if given_qty == given_notional:
        errors.append(
            FieldError(
                at,
                "give exactly one of quantity (base units) or notional_usd, "
                + ("not both" if given_qty else "neither is set"),
            )
        )
        return None
    field = "quantity" if given_qty else "notional_usd"
    raw = leg.quantity if given_qty else leg.notional_usd
    amount = _decimal(raw, f"{at}.{field}", errors)
    if amount is None:
        return None
    if not amount.is_finite() or amount <= 0:
        what = "a quantity in base units" if given_qty else "a USD amount"
        errors.append(FieldError(f"{at}.{field}", f"{_show(amount)} is not {what} > 0"))
        return None
    if inst is None:
        return None
    price = _price(prices, leg.venue, leg.symbol)
    if price is not None and (not price.is_finite() or price <= 0):
        errors.append(
            FieldError(
                f"{at}.{field}",
                f"the price given for {leg.venue}/{leg.symbol} ({_show(price)}) is not > 0",
            )
        )
        return None
    where = f"{leg.venue}/{leg.symbol}"
    if given_qty:
        qty = amount
        if not inst.on_lot(qty):
            below = inst.snap_qty(qty)
            near = [v for v in (below, below + inst.lot) if v > 0]
            errors.append(
                FieldError(
                    f"{at}.quantity",
                    f"{_show(qty)} is off the lot grid of {where} (lot {_show(inst.lot)}); "
                    f"accepted: a multiple of the lot, e.g. {' or '.join(map(_show, near))}",
                )
            )
            return None
    else:
        if price is None:
            errors.append(
                FieldError(
                    f"{at}.notional_usd",
                    f"no price for {where} to turn {_show(amount)} USD into a quantity; "
                    "validate needs prices for notional legs",
                )
            )
            return None
        qty = inst.snap_qty(amount / (price * inst.contract_size))
        if qty <= 0:
            errors.append(
                FieldError(
                    f"{at}.notional_usd",
                    f"{_show(amount)} USD is less than one lot of {where} "
                    f"({_show(inst.lot)} at {_show(price)}); accepted: at least "
                    f"{_show(inst.notional(price, inst.lot))} USD",
                )
            )
            return None
    if price is not None:
        notional = inst.notional(price, qty)
        if notional < inst.min_notional:
            usd = _show(notional.quantize(Decimal("0.01")))
            what = (
                f"{_show(qty)} ({usd} USD)"
                if given_qty
                else f"{_show(amount)} USD ({_show(qty)} on the lot, {usd} USD)"
            )
            errors.append(
                FieldError(
                    f"{at}.{field}",
                    f"{what} is below the minimum notional of {where}; accepted: at least "
                    f"{_show(inst.min_notional)} USD at {_show(price)}",
                )
            )
            return None
    return qty


def _venue(
    venue: object, at: str, instruments: Instruments, errors: list[FieldError]
) -> Mapping[str, Instrument] | None:
    """The instruments a venue lists, or None after recording that the venue is unknown."""
    if isinstance(venue, str) and venue in instruments:
        return instruments[venue]
    known = ", ".join(sorted(instruments)) or "none"
    errors.append(FieldError(at, f"{_show(venue)} is not a known venue; known venues: {known}"))
    return None


def _instrument(
    venue: object,
    symbol: object,
    venue_path: str,
    symbol_path: str,
    instruments: Instruments,
    errors: list[FieldError],
) -> Instrument | None:
    listed = _venue(venue, venue_path, instruments, errors)
    if listed is None:
        return None
    inst = listed.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        errors.append(
            FieldError(
                symbol_path,
                f"{_show(symbol)} is not listed on venue {venue}; {venue} lists "
                f"{', '.join(sorted(listed)) or 'nothing'}",
            )
        )
    return inst


def _check_hedge(
    spec: Spec, instruments: Instruments, errors: list[FieldError]
) -> list[Instrument]:
    hedge = spec.hedge
    if hedge is None:
        return []
    if not isinstance(hedge, HedgeSpec):
        errors.append(FieldError("hedge", f"expected HedgeSpec, got {_type_name(hedge)}"))
        return []
    for name in ("activation_usd", "hysteresis_usd"):
        value = _number(getattr(hedge, name), f"hedge.{name}", errors, "USD >= 0")
        if value is not None and value < 0:
            errors.append(FieldError(f"hedge.{name}", f"{_show(value)} is negative; USD >= 0"))
    if not hedge.instruments:
        errors.append(FieldError("hedge.instruments", 'empty; list at least one, e.g. ["IDXUSDT"]'))
        return []
    if _venue(hedge.venue, "hedge.venue", instruments, errors) is None:
        return []
    legs = _traded(spec)
    out: list[Instrument] = []
    for i, symbol in enumerate(hedge.instruments):
        at = f"hedge.instruments[{i}]"
        inst = _instrument(hedge.venue, symbol, "hedge.venue", at, instruments, errors)
        if inst is None:
            continue
        if inst in out:
            errors.append(FieldError(at, f"{symbol!r} is listed twice"))
        elif inst.kind is not InstrumentKind.PERP:
            errors.append(
                FieldError(
                    at,
                    f"{symbol} on {hedge.venue} is {inst.kind.value}; a hedge must go short as "
                    "well as long: accepted: perpetuals",
                )
            )
        elif (hedge.venue, symbol) in legs:
            errors.append(
                FieldError(
                    at,
                    f"{hedge.venue}/{symbol} is also traded by {legs[hedge.venue, symbol]}; a "
                    "hedge on a leg's own instrument would mix with the leg's position",
                )
            )
        else:
            out.append(inst)
    return out


def _traded(spec: Spec) -> dict[tuple[str, str], str]:
    """The (venue, symbol) pairs the basket's legs trade, with the field that names each."""
    if isinstance(spec, BasketSpec):
        return {(leg.venue, leg.symbol): f"legs[{i}]" for i, leg in enumerate(spec.legs)}
    return {(v, s): f"targets.{s}" for s in spec.targets if (v := spec.venues.get(s, spec.venue))}


# --- rebalance -------------------------------------------------------------------------
class RebalancePlan(msgspec.Struct, frozen=True, kw_only=True):
    """The legs that move the current positions to the targets, and the targets left alone."""

    legs: list[LegSpec]
    target_qty: dict[str, Decimal]  # by symbol, in base units, before snapping to the lot
    notes: list[str] = []


def plan_rebalance(
    spec: RebalanceSpec,
    prices: Prices,
    positions: Prices,
    instruments: Instruments,
) -> RebalancePlan:
    """Target weights × total → target positions → legs for the difference.

    Each symbol's target is `weight × total_usd / price`; its leg trades the difference from
    the current position (signed base units by (venue, symbol), absent = flat), snapped down
    to the lot, so a position never overshoots its target. A difference below the
    instrument's minimum notional is left alone, with a note. Leg ids are the symbols.
    Raises `SpecError` if the spec's targets, venues or prices do not allow a plan.
    """
    errors: list[FieldError] = []
    plan = _plan(spec, instruments, prices, positions, errors)
    if errors or plan is None:
        raise SpecError(errors, basket_id=spec.basket_id)
    return plan


def rebalance_legs(
    spec: RebalanceSpec,
    prices: Prices,
    positions: Prices,
    instruments: Instruments,
) -> list[LegSpec]:
    """The legs of `plan_rebalance` (its notes say which targets were left alone)."""
    return plan_rebalance(spec, prices, positions, instruments).legs


def _plan(
    spec: RebalanceSpec,
    instruments: Instruments,
    prices: Prices | None,
    positions: Prices,
    errors: list[FieldError],
) -> RebalancePlan | None:
    n_errors = len(errors)
    total = _decimal(spec.total_usd, "total_usd", errors)
    if total is not None and (not total.is_finite() or total <= 0):
        errors.append(FieldError("total_usd", f"{_show(total)} is not a USD amount > 0"))
        total = None
    if not spec.targets:
        errors.append(FieldError("targets", "empty; give a weight per symbol, e.g. BTCUSDT = 0.6"))
        return None
    default_ok = spec.venue is None or _venue(spec.venue, "venue", instruments, errors) is not None
    for symbol in spec.venues:
        if symbol not in spec.targets:
            errors.append(
                FieldError(
                    f"venues.{symbol}",
                    f"{symbol!r} has no target weight; accepted: symbols of targets "
                    f"({', '.join(spec.targets)})",
                )
            )
    weights: dict[str, Decimal] = {}
    chosen: dict[str, tuple[str, Instrument]] = {}
    for symbol, raw in spec.targets.items():
        at = f"targets.{symbol}"
        weight = _decimal(raw, at, errors)
        if weight is not None and (not weight.is_finite() or weight < 0):
            errors.append(
                FieldError(at, f"{_show(weight)} is not a weight; accepted: 0 <= weight <= 1")
            )
            weight = None
        if weight is not None:
            weights[symbol] = weight
        venue = spec.venues.get(symbol, spec.venue)
        if venue is None:
            errors.append(FieldError(at, f"no venue for {symbol}: set venue, or venues.{symbol}"))
            continue
        if symbol in spec.venues:
            inst = _instrument(venue, symbol, f"venues.{symbol}", at, instruments, errors)
        elif default_ok:
            inst = _instrument(venue, symbol, "venue", at, instruments, errors)
        else:
            inst = None
        if inst is not None:
            chosen[symbol] = (venue, inst)
    if len(weights) == len(spec.targets):
        total_weight = sum(weights.values(), Decimal(0))
        if abs(total_weight - 1) > WEIGHT_TOLERANCE:
            errors.append(
                FieldError(
                    "targets",
                    f"the weights sum to {_show(total_weight)}; accepted: a sum of 1 "
                    f"(within {WEIGHT_TOLERANCE})",
                )
            )
    if prices is None:
        errors.append(
            FieldError("targets", "no prices: a rebalance needs a price for every target")
        )
        return None
    legs: list[LegSpec] = []
    targets: dict[str, Decimal] = {}
    notes: list[str] = []
    for symbol, (venue, inst) in chosen.items():
        at = f"targets.{symbol}"
        price = _price(prices, venue, symbol)
        if price is None or not price.is_finite() or price <= 0:
            errors.append(
                FieldError(
                    at,
                    f"no usable price for {venue}/{symbol} ({_show(price)}); accepted: a "
                    "price > 0 in prices",
                )
            )
            continue
        if total is None or symbol not in weights:
            continue
        current = _decimal(positions.get((venue, symbol), Decimal(0)), at, errors)
        if current is None:
            continue
        target = weights[symbol] * total / (price * inst.contract_size)
        targets[symbol] = target
        diff = target - current
        qty = inst.snap_qty(abs(diff))
        notional = inst.notional(price, qty)
        if qty <= 0 or notional < inst.min_notional:
            if diff:
                notes.append(
                    f"{at}: left as is: the difference {_show(diff.normalize())} "
                    f"({_show(inst.notional(price, abs(diff)).quantize(Decimal('0.01')))} USD) "
                    f"is below one lot or the minimum notional {_show(inst.min_notional)} USD"
                )
            continue
        legs.append(
            LegSpec(
                leg_id=_rebalance_leg_id(symbol),
                venue=venue,
                symbol=symbol,
                side=Side.BUY if diff > 0 else Side.SELL,
                quantity=qty,
            )
        )
    if len(errors) > n_errors:
        return None
    return RebalancePlan(legs=legs, target_qty=targets, notes=notes)


def _rebalance_leg_id(symbol: str) -> str:
    """A rebalance leg is named after its symbol, without the "-" some venues use."""
    return symbol.replace("-", "")


# --- small helpers ---------------------------------------------------------------------
def _price(prices: Prices | None, venue: str, symbol: str) -> Decimal | None:
    if prices is None:
        return None
    price = prices.get((venue, symbol))
    if price is None:
        return None
    try:
        return price if isinstance(price, Decimal) else Decimal(str(price))
    except InvalidOperation:
        return Decimal("NaN")


def _decimal(value: object, at: str, errors: list[FieldError]) -> Decimal | None:
    """A Decimal from a Python-built field (Decimal, int or a decimal string)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            pass
    errors.append(FieldError(at, f"{_show(value)} is not a number"))
    return None


def _number(value: object, at: str, errors: list[FieldError], accepted: str) -> float | None:
    """A finite float from a numeric field, or None after recording the error."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    errors.append(FieldError(at, f"{_show(value)} is not a finite number; accepted: {accepted}"))
    return None


def _slippage(
    value: object, at: str, errors: list[FieldError], *, optional: bool = False
) -> float | None:
    if value is None and optional:
        return None
    bps = _number(value, at, errors, f"basis points within (0, {MAX_SLIPPAGE_BPS:g}]")
    if bps is not None and not 0 < bps <= MAX_SLIPPAGE_BPS:
        errors.append(
            FieldError(
                at,
                f"{_show(bps)} bp is outside (0, {MAX_SLIPPAGE_BPS:g}]; the largest distance "
                "from the arrival price a child order may trade at, e.g. 25",
            )
        )
        return None
    return bps


def _finite(value: int | float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def _type_name(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _join(at: str, key: object) -> str:
    return f"{at}.{key}" if at else str(key)
