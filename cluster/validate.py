"""`legato validate`: a basket checked as the engine checks it at submission, nothing sent.

The checks are the engine's own: `actors.spec.validate` against each venue's instruments and
prices (symbol listed, lot grid, minimum notional, hedge instruments, ids, policy), then the
collateral as the collateral actor decides it: `margin_needs` on the venues' leverage, the
margin book's all-or-nothing reservation against the accounts (`MarginBook.reserve`) and,
for a short basket under `[collateral] routing`, the planner (`plan_transfers`) that says
whether transfers could cure it. What differs is where the figures come from: a simulated
venue is built in this process (its exchange, market and accounts, as `legato backtest`
builds it: no sockets, no Ray); a real venue is asked through its client's read-only calls
(listing, order book, account, positions), the client started and closed, never an order or
a transfer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal

import msgspec

from actors.margin import USD, LegNeed, MarginBook, Pool, Refused, fmt_amount, pools_of
from actors.risk import RiskSettings, with_risk_betas
from actors.routing import NoRoute, RoutingRules, plan_transfers
from actors.runners.collateral import margin_needs
from actors.spec import (
    BasketSpec,
    FieldError,
    HedgeSpec,
    OnUnfunded,
    RebalanceSpec,
    ResolvedBasket,
    Spec,
    SpecError,
    validate,
)
from venues.config import RealVenueConfig, ReplayMarketConfig, SimVenueConfig, VenuesConfig
from venues.model import AccountSnapshot, Instrument, InstrumentKind


class VenueFigures(msgspec.Struct, kw_only=True):
    """What one venue shows a basket's check: its listing, the mids of the symbols asked,
    its account, and (for a rebalance) its positions."""

    name: str
    instruments: dict[str, Instrument]
    prices: dict[str, Decimal]
    account: AccountSnapshot
    leverage: int
    positions: dict[str, Decimal] = {}
    can_transfer: bool = False
    can_withdraw: bool = False


class VenueTotals(msgspec.Struct, frozen=True, kw_only=True):
    """One venue of a checked basket: its legs, their notional, and per pool (`USD` the
    margin wallet, `spot:X` the spot wallet's X) what the basket needs and what is there."""

    venue: str
    legs: list[str]
    notional_usd: Decimal
    needs: dict[str, Decimal]
    available: dict[str, Decimal]


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A basket the engine would accept: resolved, its collateral reservable (or routable)."""

    basket: ResolvedBasket
    venues: list[VenueTotals]
    routing: str = ""  # the transfers that would fund it ("" when it needs none)


# -- which venues a basket reads --------------------------------------------------------------
def venues_of(spec: Spec, config: VenuesConfig, rules: RoutingRules | None) -> list[str]:
    """The configured venues the check must read: the legs', the hedge's and, when money may
    be withdrawn from one venue to another, every venue (each may fund the others). Every
    simulated venue is read anyway (it costs nothing here): what would cure a shortfall is
    then counted over all of them."""
    if rules is not None and rules.withdrawals:
        return sorted(config.venues)
    named: set[object] = set(config.sim_names())
    if isinstance(spec, BasketSpec):
        named |= {leg.venue for leg in spec.legs}
    elif isinstance(spec, RebalanceSpec):
        named |= {spec.venues.get(s, spec.venue) for s in spec.targets}
    if isinstance(spec.hedge, HedgeSpec):
        named.add(spec.hedge.venue)
    return sorted(n for n in named if isinstance(n, str) and n in config.venues)


def symbols_of(spec: Spec) -> dict[str, set[str]]:
    """The symbols the basket trades, by venue (their prices are what validation needs)."""
    out: dict[str, set[str]] = {}
    if isinstance(spec, BasketSpec):
        for leg in spec.legs:
            if isinstance(leg.venue, str) and isinstance(leg.symbol, str):
                out.setdefault(leg.venue, set()).add(leg.symbol)
    else:
        for symbol in spec.targets:
            venue = spec.venues.get(symbol, spec.venue)
            if isinstance(venue, str):
                out.setdefault(venue, set()).add(symbol)
    return out


# -- the check ----------------------------------------------------------------------------------
def check(
    spec: Spec,
    figures: Mapping[str, VenueFigures],
    known: Collection[str],
    rules: RoutingRules | None,
    now_ns: int,
    risk: RiskSettings | None = None,
) -> Checked:
    """`spec` against the venues' `figures` (every venue it names must be among them;
    `known`: every configured venue), as the basket actor and the collateral actor check
    it (`risk`: the configuration's risk model, which sizes a hedge's relative thresholds).
    Raises `SpecError` listing every mistake, each with its field."""
    instruments = {n: figures[n].instruments if n in figures else {} for n in known}
    prices = {(n, s): p for n, f in figures.items() for s, p in f.prices.items()}
    positions = {(n, s): q for n, f in figures.items() for s, q in f.positions.items()}
    basket = validate(spec, instruments, prices, positions, risk=risk)
    errors: list[FieldError] = []
    book = MarginBook()  # the collateral actor's own defaults: its buffer and taker fee
    for f in figures.values():
        book.update_from_snapshot(f.account, now_ns)
    needs = margin_needs(basket, {leg.venue: figures[leg.venue].leverage for leg in basket.legs})
    usd, holdings = book.need(needs), book.holdings_need(needs)
    result = book.reserve(basket.basket_id, usd, now_ns, holdings=holdings)
    routing = ""
    if isinstance(result, Refused):
        off = "[collateral] routing is off in the venues configuration"
        if rules is not None and basket.params.on_unfunded is OnUnfunded.REFUSE:
            rules = None  # the basket asks for no transfers (the collateral runner's rule)
            off = "params.on_unfunded is refuse"
        fields = _fields_by_pool(spec, basket, needs)
        wanted = pools_of(usd, holdings)
        routing = _route(result, book, wanted, figures, rules, fields, errors, off)
    if errors:
        raise SpecError(errors, basket_id=basket.basket_id)
    return Checked(basket=basket, venues=_totals(basket, book, usd, holdings), routing=routing)


def _route(
    refused: Refused,
    book: MarginBook,
    wanted: Mapping[Pool, Decimal],
    figures: Mapping[str, VenueFigures],
    rules: RoutingRules | None,
    fields: Mapping[Pool, str],
    errors: list[FieldError],
    off: str,
) -> str:
    """A refused reservation: the plan that would cure it (its words), or an error per
    short pool naming the legs' fields, what is short and why nothing can cure it."""
    for venue in refused.unknown_venues:
        errors.append(FieldError(f"venues.{venue}", "its account could not be read"))
    if rules is None:
        # What the margin book says would cure it, as the engine's refusal says it.
        why = f"{off}, so nothing moves"
        cure = ", ".join(t.message for t in refused.transfers)
        if refused.missing:
            left = ", ".join(fmt_amount(n, a) for a, n in sorted(refused.missing.items()))
            why += f"; not even every venue's free collateral would do: {left} missing overall"
        elif cure:
            why += f"; these transfers would cure it: {cure}"
        for s in refused.shortfalls:
            pool = (s.venue, s.asset)
            errors.append(FieldError(fields.get(pool, f"venues.{s.venue}"), f"{s.message}; {why}"))
        return ""
    plan = plan_transfers(
        {(s.venue, s.asset): s.short for s in refused.shortfalls},
        book.spare(refused.basket_id, wanted),
        rules,
        can_transfer={n for n, f in figures.items() if f.can_transfer},
        can_withdraw={n for n, f in figures.items() if f.can_withdraw},
    )
    if isinstance(plan, NoRoute):
        for s in refused.shortfalls:
            pool = (s.venue, s.asset)
            errors.append(
                FieldError(
                    fields.get(pool, f"venues.{s.venue}"),
                    f"{s.message}; no transfer can cure it: {plan.reason}",
                )
            )
        return ""
    return plan.message


def _fields_by_pool(
    spec: Spec, basket: ResolvedBasket, needs: Sequence[LegNeed]
) -> dict[Pool, str]:
    """The spec's fields that size the legs drawing on each pool ("legs[2].notional_usd",
    "targets.BTCUSDT"), for errors about that pool."""
    where: dict[str, str] = {}
    if isinstance(spec, BasketSpec):
        for i, leg in enumerate(spec.legs):
            field = "quantity" if leg.quantity is not None else "notional_usd"
            where[str(leg.leg_id)] = f"legs[{i}].{field}"
    else:
        where = {leg.leg_id: f"targets.{leg.symbol}" for leg in basket.legs}
    out: dict[Pool, list[str]] = {}
    for need in needs:
        out.setdefault(need.pool, []).append(where.get(need.leg_id, need.leg_id))
    return {pool: ", ".join(paths) for pool, paths in out.items()}


def _totals(
    basket: ResolvedBasket,
    book: MarginBook,
    usd: Mapping[str, Decimal],
    holdings: Mapping[str, Mapping[str, Decimal]],
) -> list[VenueTotals]:
    out = []
    for venue in sorted({leg.venue for leg in basket.legs}):
        legs = [leg for leg in basket.legs if leg.venue == venue]
        needs = ({USD: usd[venue]} if venue in usd else {}) | dict(holdings.get(venue, {}))
        out.append(
            VenueTotals(
                venue=venue,
                legs=[leg.leg_id for leg in legs],
                notional_usd=sum(
                    (leg.instrument.notional(leg.price, leg.quantity) for leg in legs if leg.price),
                    Decimal(0),
                ),
                needs=needs,
                available={a: book.available(venue, a) or Decimal(0) for a in needs},
            )
        )
    return out


# -- reading the venues ---------------------------------------------------------------------
def read_venues(
    config: VenuesConfig,
    names: Sequence[str],
    wanted: Mapping[str, set[str]],
    risk: RiskSettings,
    *,
    positions: bool,
    now_ns: int | None = None,
) -> tuple[dict[str, VenueFigures], list[FieldError]]:
    """Each venue of `names` read: a simulated one in this process, a real one through its
    client (read-only calls). A venue that cannot be read is an error naming it and why
    (missing credentials included), never a traceback."""
    now = time.time_ns() if now_ns is None else now_ns
    figures: dict[str, VenueFigures] = {}
    errors: list[FieldError] = []
    real: dict[str, RealVenueConfig] = {}
    for name in names:
        cfg = config.venues[name]
        if isinstance(cfg, SimVenueConfig):
            got = _sim_figures(name, cfg, now, risk, errors)
            if got is not None:
                figures[name] = got
        else:
            real[name] = cfg
    if real:
        read = asyncio.run(_read_real(real, wanted, risk, positions))
        for name, answer in read.items():
            if isinstance(answer, FieldError):
                errors.append(answer)
            else:
                figures[name] = answer
    return figures, errors


def _sim_figures(
    name: str, cfg: SimVenueConfig, now_ns: int, risk: RiskSettings, errors: list[FieldError]
) -> VenueFigures | None:
    """A simulated venue built here, as `legato backtest` builds it, after its warm-up."""
    from actors.backtest.run import REPLAY_WARMUP_NS, SYNTHETIC_WARMUP_NS  # noqa: PLC0415
    from venues.config import build_market  # noqa: PLC0415
    from venues.sim.exchange import SimExchange  # noqa: PLC0415

    if not cfg.accounts:
        errors.append(FieldError(f"venues.{name}.accounts", "no account to trade from"))
        return None
    try:
        market = build_market(cfg, now_ns, origin_ns=now_ns)
    except (ValueError, OSError) as e:
        errors.append(FieldError(f"venues.{name}.market", str(e)))
        return None
    exchange = SimExchange(name, market, start_ns=now_ns)
    for acct in cfg.accounts:
        exchange.open_account(acct.spec())
    replay = isinstance(cfg.market, ReplayMarketConfig)
    at = now_ns + (REPLAY_WARMUP_NS if replay else SYNTHETIC_WARMUP_NS)
    exchange.advance(at)
    exchange.drain()
    account_id = cfg.accounts[0].account_id
    factors = list(risk.factors)
    listed = {
        i.symbol: with_risk_betas(i, factors, configured=risk.betas)
        for i in exchange.instruments.values()
    }
    prices = {}
    for symbol in listed:
        mid = exchange.book_snapshot(symbol, 1, at).mid
        if mid is not None:
            prices[symbol] = mid
    account = exchange.account_snapshot(account_id, at)
    held = {p.symbol: p.quantity for p in exchange.positions(account_id, at)}
    return VenueFigures(
        name=name,
        instruments=listed,
        prices=prices,
        account=account,
        leverage=exchange.leverage(account_id),
        positions=held | _spot_holdings(listed, account),
        can_transfer=True,  # the simulator serves the wallet API to either adapter
        can_withdraw=True,
    )


def _spot_holdings(
    listed: Mapping[str, Instrument], account: AccountSnapshot
) -> dict[str, Decimal]:
    """A spot instrument's position: its base asset in the spot wallet (as the venue actor
    reports it)."""
    wallet = {b.asset: b.wallet for b in account.spot_balances}
    return {
        i.symbol: wallet[i.base]
        for i in listed.values()
        if i.kind is InstrumentKind.SPOT and i.base in wallet
    }


async def _read_real(
    configs: Mapping[str, RealVenueConfig],
    wanted: Mapping[str, set[str]],
    risk: RiskSettings,
    positions: bool,
) -> dict[str, VenueFigures | FieldError]:
    names = list(configs)
    answers = await asyncio.gather(
        *(_real_figures(n, configs[n], wanted.get(n, set()), risk, positions) for n in names)
    )
    return dict(zip(names, answers, strict=True))


async def _real_figures(
    name: str,
    cfg: RealVenueConfig,
    symbols: set[str],
    risk: RiskSettings,
    positions: bool,
) -> VenueFigures | FieldError:
    """A real venue through its client: listing, the order books of `symbols`, the account
    (and positions). Only reads; the client is closed after."""
    from venues.clients import build_client  # noqa: PLC0415
    from venues.config import ConfigError  # noqa: PLC0415
    from venues.errors import AuthError, VenueError  # noqa: PLC0415

    at = f"venues.{name}"
    try:
        client = build_client(name, cfg, timeout_s=10.0)
    except AuthError as e:  # names the missing environment variable, never a value
        return FieldError(at, f"no credentials to read it with: {e}")
    except ConfigError as e:
        return FieldError("", str(e))
    try:
        await client.start()
        factors = list(risk.factors)
        listed = {
            i.symbol: with_risk_betas(i, factors, configured=risk.betas)
            for i in await client.instruments()
        }
        prices = {}
        for symbol in sorted(s for s in symbols if s in listed):
            mid = (await client.order_book(symbol, 5)).mid
            if mid is not None:
                prices[symbol] = mid
        account = await client.account()
        held: dict[str, Decimal] = {}
        if positions:
            held = {p.symbol: p.quantity for p in await client.positions()}
            held |= _spot_holdings(listed, account)
        caps = client.capabilities
    except AuthError as e:
        return FieldError(at, f"the venue refused the credentials: {e}")
    except (VenueError, OSError, TimeoutError) as e:
        return FieldError(at, f"could not be read: {type(e).__name__}: {e}")
    finally:
        await client.close()
    return VenueFigures(
        name=name,
        instruments=listed,
        prices=prices,
        account=account,
        leverage=1,  # as the venue actor: a real account's leverage is not known, 1 is safest
        positions=held,
        can_transfer=caps.transfers,
        can_withdraw=caps.withdrawals,
    )
