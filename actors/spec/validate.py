"""Validation of a basket specification against the venues' instruments, before anything is sent.

`validate` checks either form and returns a `ResolvedBasket` whose legs carry concrete
quantities on their instrument's lot grid, or raises one `SpecError` listing every mistake
with its field path (`legs[2].symbol`, `params.band`, `targets.ETHUSDT`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from actors.risk import (
    RiskModel,
    RiskSettings,
    gross_risk_usd,
    max_imbalance_risk_usd,
    with_risk_betas,
)
from actors.spec._checks import (
    _choices,
    _instrument,
    _price,
    _show,
    _type_name,
    _venue,
)
from actors.spec.bounds import (
    QUANTITY,
    USD,
    amount,
    check_hedge_values,
    check_params,
    count,
    slippage,
)
from actors.spec.model import (
    MAX_CHILD_SEQ,
    MAX_CLIENT_ORDER_ID_LEN,
    MAX_LEGS,
    RUN_TAG_ROOM,
    BasketSpec,
    ExecutionParams,
    FieldError,
    HedgeSpec,
    Instruments,
    LegSpec,
    Policy,
    Prices,
    ResolvedBasket,
    ResolvedLeg,
    Spec,
    SpecError,
    client_order_id,
)
from actors.spec.rebalance import _plan, _rebalance_leg_id
from venues.config import ReplayMarketConfig, SimVenueConfig, VenuesConfig
from venues.model import Instrument, InstrumentKind, Side
from venues.sim.calibration import REPLAY_INSTRUMENTS, SYNTHETIC_INSTRUMENTS

# The characters of a client order id (model.MAX_CLIENT_ORDER_ID_LEN).
_BASKET_ID = re.compile(r"^[A-Za-z0-9._:/-]+$")
# No "-" in leg ids: then the last two "-" of a client order id split it unambiguously, and
# two baskets can never produce the same id (basket "a-b" leg "c" against basket "a" leg "b-c").
_LEG_ID = re.compile(r"^[A-Za-z0-9._:/]+$")


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


# --- validation ------------------------------------------------------------------------
def validate(
    spec: Spec,
    instruments: Instruments,
    prices: Prices | None = None,
    positions: Prices | None = None,
    *,
    risk: RiskSettings | None = None,
) -> ResolvedBasket:
    """Check a spec against the venues' instruments and resolve its legs.

    `prices` by (venue, symbol) turn notionals into quantities and check minimum
    notionals; without them a notional leg or a rebalance cannot be resolved (an error),
    and quantity legs skip the minimum-notional check. `positions` (signed base units by
    (venue, symbol), default flat) are what a rebalance trades from.

    The hedge's thresholds are set against the basket, under the risk model `risk` (default:
    the calibration of DESIGN §10): shares become dollars, and a threshold that no imbalance
    of this basket could reach is a warning (`ResolvedBasket.warnings`, also in `notes`).

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
        elif count(legs, "legs", MAX_LEGS, errors):
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
    check_params(spec.params, errors)
    hedge_instruments = _check_hedge(spec, instruments, errors)
    policy = _check_policy(spec, errors)
    warnings: list[FieldError] = []
    hedge = spec.hedge
    if isinstance(hedge, HedgeSpec) and not errors:
        hedge = _hedge_for_basket(hedge, resolved, risk, errors, warnings)
    if errors:
        raise SpecError(errors, basket_id=basket_id if isinstance(basket_id, str) else None)
    assert params is not None and policy is not None
    return ResolvedBasket(
        basket_id=basket_id,
        legs=resolved,
        params=params,
        policy=policy,
        hedge=hedge,
        hedge_instruments=hedge_instruments,
        spec=spec,
        notes=[*notes, *(f"warning: {w}" for w in warnings)],
        warnings=warnings,
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
    # Every run's ids carry its tag (`order_prefix`): room for it is kept here.
    example = client_order_id(f"{basket_id}.{'x' * (RUN_TAG_ROOM - 1)}", longest, MAX_CHILD_SEQ)
    if len(example) > MAX_CLIENT_ORDER_ID_LEN:
        room = MAX_CLIENT_ORDER_ID_LEN - len(f"--{MAX_CHILD_SEQ}") - RUN_TAG_ROOM
        errors.append(
            FieldError(
                "basket_id",
                f"client order ids would reach {len(example)} characters ({example!r}); "
                f"venues accept at most {MAX_CLIENT_ORDER_ID_LEN}: basket id and longest leg "
                f"id together may use {room} characters, these use "
                f"{len(basket_id)} + {len(longest)}",
            )
        )


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
        limit = slippage(leg.max_slippage_bps, f"{at}.max_slippage_bps", errors, optional=True)
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
                max_slippage_bps=limit if limit is not None else params.max_slippage_bps,
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
    given = amount(raw, f"{at}.{field}", QUANTITY if given_qty else USD, errors)
    if given is None or inst is None:
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
        qty = given
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
                    f"no price for {where} to turn {_show(given)} USD into a quantity; "
                    "validate needs prices for notional legs",
                )
            )
            return None
        qty = inst.snap_qty(given / (price * inst.contract_size))
        if qty <= 0:
            errors.append(
                FieldError(
                    f"{at}.notional_usd",
                    f"{_show(given)} USD is less than one lot of {where} "
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
                else f"{_show(given)} USD ({_show(qty)} on the lot, {usd} USD)"
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


def _check_hedge(
    spec: Spec, instruments: Instruments, errors: list[FieldError]
) -> list[Instrument]:
    hedge = spec.hedge
    if hedge is None:
        return []
    if not isinstance(hedge, HedgeSpec):
        errors.append(FieldError("hedge", f"expected HedgeSpec, got {_type_name(hedge)}"))
        return []
    check_hedge_values(hedge, errors)  # the decision rule's figures too
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


def _hedge_for_basket(
    hedge: HedgeSpec,
    legs: Sequence[ResolvedLeg],
    risk: RiskSettings | None,
    errors: list[FieldError],
    warnings: list[FieldError],
) -> HedgeSpec:
    """The hedge with its thresholds in dollars for this basket, and a warning for each that
    the basket's own imbalance cannot reach (docs/basket.md, "Hedge")."""
    shares = hedge.activation_share is not None or hedge.hysteresis_share is not None
    unpriced = [leg.leg_id for leg in legs if leg.notional_usd is None]
    if unpriced:
        if shares:
            errors.append(
                FieldError(
                    "hedge.activation_share"
                    if hedge.activation_share is not None
                    else "hedge.hysteresis_share",
                    f"no price for legs {', '.join(unpriced)}: a share of the basket needs "
                    "every leg priced; give the threshold in USD instead",
                )
            )
        return hedge
    model = risk.model() if risk is not None else RiskModel.from_calibration()
    configured = risk.betas if risk is not None else None
    instruments = [
        with_risk_betas(leg.instrument, model.factors, configured=configured) for leg in legs
    ]
    notionals = [float(leg.notional_usd or 0) for leg in legs]
    signed = [leg.side.sign * n for leg, n in zip(legs, notionals, strict=True)]
    try:
        gross_risk = gross_risk_usd(model, notionals, instruments)
        reach = max_imbalance_risk_usd(model, signed, instruments)
    except ValueError:
        return hedge  # an instrument the model cannot value: the desk says so when it trades
    gross = sum(notionals)
    activation = (
        hedge.activation_usd
        if hedge.activation_share is None
        else hedge.activation_share * gross_risk
    )
    hysteresis = (
        hedge.hysteresis_usd if hedge.hysteresis_share is None else hedge.hysteresis_share * gross
    )
    if hedge.enabled and activation > reach:
        field = "activation_share" if hedge.activation_share is not None else "activation_usd"
        warnings.append(
            FieldError(
                f"hedge.{field}",
                f"the hedge activates at ${activation:,.2f} of one-day risk, and the largest "
                f"imbalance this basket can carry has ${reach:,.2f} (its gross one-day risk: "
                f"${gross_risk:,.2f}): its own imbalance never engages the hedge; e.g. "
                f"activation_share = 0.05 (${0.05 * gross_risk:,.2f})",
            )
        )
    if hedge.enabled and hysteresis >= gross:
        field = "hysteresis_share" if hedge.hysteresis_share is not None else "hysteresis_usd"
        warnings.append(
            FieldError(
                f"hedge.{field}",
                f"the hedge trades only by more than ${hysteresis:,.2f}, the basket's whole "
                f"gross notional (${gross:,.2f}): no hedge of this basket is that large; e.g. "
                f"hysteresis_share = 0.01 (${0.01 * gross:,.2f})",
            )
        )
    return hedge.with_thresholds(activation, hysteresis)
