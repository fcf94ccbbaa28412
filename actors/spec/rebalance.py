"""Rebalance planning: target weights of a USD total, less the current positions, as legs."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from actors.spec._checks import _decimal, _instrument, _price, _show, _venue
from actors.spec.bounds import USD, amount, count, weight
from actors.spec.model import (
    MAX_LEGS,
    FieldError,
    Instruments,
    LegSpec,
    Prices,
    RebalanceSpec,
    SpecError,
)
from venues.model import Instrument, Side

WEIGHT_TOLERANCE = Decimal("1e-9")


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
    total = amount(spec.total_usd, "total_usd", USD, errors)
    if not spec.targets:
        errors.append(FieldError("targets", "empty; give a weight per symbol, e.g. BTCUSDT = 0.6"))
        return None
    if not count(spec.targets, "targets", MAX_LEGS, errors):
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
        share = weight(raw, at, errors)
        if share is not None:
            weights[symbol] = share
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
