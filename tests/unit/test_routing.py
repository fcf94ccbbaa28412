"""Collateral routing: the fewest transfers that cure a basket's short pools, or why none can."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.margin import USD, CollateralError, Pool, spot_pool
from actors.routing import (
    NoRoute,
    Plan,
    RoutingResult,
    RoutingRules,
    Step,
    Wallet,
    plan_transfers,
)
from venues.model import TransferKind, WalletKind

D = Decimal
VENUES = ("alpha", "beta", "gamma", "delta")
ALL = frozenset(VENUES)
USDT = spot_pool("USDT")
STETH = spot_pool("STETH")
OPEN = RoutingRules(withdrawals=True)  # everything allowed, no buffers

Balances = dict[tuple[str, WalletKind, str], Decimal]


def plan(
    shortfalls: Mapping[Pool, Decimal | int | str],
    free: Mapping[Pool, Decimal | int | str],
    rules: RoutingRules = OPEN,
    *,
    can_transfer: frozenset[str] = ALL,
    can_withdraw: frozenset[str] = ALL,
) -> RoutingResult:
    return plan_transfers(
        {p: D(n) for p, n in shortfalls.items()},
        {p: D(n) for p, n in free.items()},
        rules,
        can_transfer=can_transfer,
        can_withdraw=can_withdraw,
    )


def cured(*args: Any, **kwargs: Any) -> Plan:
    result = plan(*args, **kwargs)
    assert isinstance(result, Plan), result
    return result


def refused(*args: Any, **kwargs: Any) -> NoRoute:
    result = plan(*args, **kwargs)
    assert isinstance(result, NoRoute), result
    return result


def wallet_of(pool: Pool, margin_asset: str = "USDT") -> tuple[str, WalletKind, str]:
    venue, asset = pool
    if asset == USD:
        return venue, WalletKind.MARGIN, margin_asset
    return venue, WalletKind.SPOT, asset.removeprefix("spot:")


def carry_out(free: Mapping[Pool, Decimal], steps: list[Step]) -> dict[Pool, Decimal]:
    """Apply the steps, in order, to wallets holding `free`; return every pool afterwards.

    Checks what a venue checks: a step names the wallets of its own kind and venue, and no
    wallet pays more than it holds at that moment beyond what it held at the start (a wallet
    already below zero cannot pay at all).
    """
    balances: Balances = {wallet_of(p): D(n) for p, n in free.items()}
    start = dict(balances)
    for step in steps:
        src = (step.source.venue, step.source.kind, step.asset)
        dst = (step.destination.venue, step.destination.kind, step.asset)
        if step.kind is TransferKind.INTERNAL:
            assert step.source.venue == step.destination.venue == step.venue
            assert step.source.kind != step.destination.kind
        else:
            assert step.source.kind is step.destination.kind is WalletKind.SPOT
            assert step.source.venue == step.venue != step.destination.venue
        assert step.amount > 0
        balances[src] = balances.get(src, D(0)) - step.amount
        assert balances[src] >= min(start.get(src, D(0)), D(0)), f"{step.message} overdraws"
        balances[dst] = balances.get(dst, D(0)) + step.amount
    pools: dict[Pool, Decimal] = {}
    for (venue, kind, asset), n in balances.items():
        pools[(venue, USD if kind is WalletKind.MARGIN else spot_pool(asset))] = n
    return pools


def assert_cures(
    result: Plan,
    shortfalls: Mapping[Pool, Decimal | int | str],
    free: Mapping[Pool, Decimal | int | str],
    rules: RoutingRules = OPEN,
) -> dict[Pool, Decimal]:
    """Carrying out the plan brings every short pool its shortfall, takes no source below
    zero, and leaves every venue that gave dollars its buffer."""
    before = {p: D(n) for p, n in free.items()}
    after = carry_out(before, result.steps)
    for pool, short in shortfalls.items():
        assert after.get(pool, D(0)) - before.get(pool, D(0)) >= D(short), pool
    for pool, n in after.items():
        if pool not in shortfalls and n < before.get(pool, D(0)):
            assert n >= 0, f"{pool} taken below zero: {n}"
    for venue in {v for v, _ in after}:
        dollars = [
            p
            for p in after
            if p[0] == venue and p not in shortfalls and p[1] in (USD, USDT, spot_pool("USDC"))
        ]
        gave = sum(before.get(p, D(0)) - after[p] for p in dollars)
        if gave > 0:
            kept = sum(after[p] for p in dollars)
            assert kept >= rules.buffer(venue), f"{venue} kept {kept}, below its buffer"
    return after


def kinds(result: Plan) -> list[tuple[TransferKind, str]]:
    return [(s.kind, s.venue) for s in result.steps]


# --- cures -------------------------------------------------------------------------------
def test_a_venue_short_on_margin_is_cured_from_its_own_spot_wallet_in_one_internal_step() -> None:
    shortfalls = {("gamma", USD): "1200"}
    free = {("gamma", USD): "-1200", ("gamma", USDT): "5000", ("alpha", USD): "9000"}
    result = cured(shortfalls, free)
    assert result.steps == [
        Step(
            kind=TransferKind.INTERNAL,
            venue="gamma",
            asset="USDT",
            amount=D("1200"),
            source=Wallet("gamma", WalletKind.SPOT),
            destination=Wallet("gamma", WalletKind.MARGIN),
        )
    ]
    assert result.transfers == 1
    assert result.message == "move 1,200.00 USDT on gamma from its spot wallet to its margin wallet"
    assert_cures(result, shortfalls, free)


def test_a_spot_asset_moves_between_venues_by_one_withdrawal_when_allowed() -> None:
    shortfalls = {("beta", STETH): "2.5"}
    free = {("alpha", STETH): "10", ("alpha", USD): "50000"}
    result = cured(shortfalls, free)
    assert kinds(result) == [(TransferKind.WITHDRAWAL, "alpha")]
    (move,) = result.moves
    assert (move.source, move.target, move.asset, move.amount) == (
        ("alpha", STETH),
        ("beta", STETH),
        "STETH",
        D("2.5"),
    )
    assert "withdraw 2.5 STETH from alpha's spot wallet to beta's spot wallet" in result.message
    assert_cures(result, shortfalls, free)


def test_margin_to_another_venues_margin_takes_three_steps_through_both_spot_wallets() -> None:
    shortfalls = {("beta", USD): "500"}
    free = {("alpha", USD): "3000"}
    result = cured(shortfalls, free)
    spot_a, spot_b = Wallet("alpha", WalletKind.SPOT), Wallet("beta", WalletKind.SPOT)
    assert [(s.kind, s.venue, s.source, s.destination) for s in result.steps] == [
        (TransferKind.INTERNAL, "alpha", Wallet("alpha", WalletKind.MARGIN), spot_a),
        (TransferKind.WITHDRAWAL, "alpha", spot_a, spot_b),
        (TransferKind.INTERNAL, "beta", spot_b, Wallet("beta", WalletKind.MARGIN)),
    ]
    assert all(s.amount == D("500") and s.asset == "USDT" for s in result.steps)
    assert result.transfers == 3
    assert_cures(result, shortfalls, free)


def test_the_margin_asset_is_the_rules_one() -> None:
    rules = RoutingRules(withdrawals=True, margin_asset="USDC")
    shortfalls = {("beta", USD): "100"}
    # USDT on beta's spot wallet is not the margin asset: only alpha's USDC can feed beta.
    free = {("beta", USDT): "1000", ("alpha", spot_pool("USDC")): "1000"}
    result = cured(shortfalls, free, rules)
    assert [s.asset for s in result.steps] == ["USDC", "USDC"]
    assert kinds(result) == [(TransferKind.WITHDRAWAL, "alpha"), (TransferKind.INTERNAL, "beta")]


def test_nothing_short_is_an_empty_plan() -> None:
    result = cured({("beta", USD): "0"}, {("alpha", USD): "10"})
    assert result.moves == [] and result.transfers == 0
    assert result.message == "nothing to move"


# --- refusals ----------------------------------------------------------------------------
def test_with_nothing_spare_anywhere_the_refusal_names_the_pool_and_the_amount() -> None:
    result = refused({("gamma", USD): "1200"}, {("gamma", USD): "-1200", ("alpha", USD): "0"})
    assert result.missing == {("gamma", USD): D("1200")}
    assert "gamma's margin wallet is short 1,200.00 USDT" in result.reason
    assert "no other pool has any USDT to spare" in result.reason


def test_with_withdrawals_off_another_venues_surplus_is_not_used() -> None:
    shortfalls = {("beta", USD): "500"}
    free = {("alpha", USD): "3000"}
    result = refused(shortfalls, free, RoutingRules())  # withdrawals are off by default
    assert result.missing == {("beta", USD): D("500")}
    assert "alpha's margin wallet (3,000.00 USDT spare)" in result.reason
    assert "withdrawals" in result.reason
    assert isinstance(plan(shortfalls, free, RoutingRules(withdrawals=True)), Plan)


def test_withdrawals_take_only_the_configured_routes_each_one_way() -> None:
    free = {("alpha", USDT): "3000"}
    rules = RoutingRules(withdrawals=True, routes=[("alpha", "gamma"), ("beta", "alpha")])
    assert isinstance(plan({("gamma", USDT): "100"}, free, rules), Plan)
    result = refused({("beta", USDT): "100"}, free, rules)
    assert result.missing == {("beta", USDT): D("100")}
    assert "the route alpha → beta is not in [collateral] routes" in result.reason


def test_a_venue_whose_adapter_cannot_transfer_is_no_route() -> None:
    shortfalls = {("beta", USD): "100"}
    free = {("beta", USDT): "1000"}
    result = refused(shortfalls, free, can_transfer=frozenset({"alpha"}))
    assert "beta's adapter cannot transfer between its wallets" in result.reason
    # The same refusal when the configuration forbids internal transfers.
    result = refused(shortfalls, free, RoutingRules(internal=False))
    assert "[collateral] internal" in result.reason
    assert isinstance(plan(shortfalls, free, can_transfer=frozenset({"beta"})), Plan)
    # A margin wallet's dollars need their own venue to move them to its spot wallet first.
    result = refused(
        {("beta", USDT): "100"}, {("alpha", USD): "1000"}, can_transfer=ALL - {"alpha"}
    )
    assert "alpha's adapter cannot transfer between its wallets" in result.reason
    # A withdrawal landing in beta's spot wallet still needs beta to move it to margin.
    result = refused(shortfalls, {("alpha", USDT): "1000"}, can_transfer=frozenset({"alpha"}))
    assert "beta's adapter cannot transfer between its wallets" in result.reason


def test_a_venue_whose_adapter_cannot_withdraw_or_take_deposits_is_no_route() -> None:
    shortfalls = {("beta", USDT): "100"}
    free = {("alpha", USDT): "1000"}
    sender = refused(shortfalls, free, can_withdraw=frozenset({"beta"}))
    assert "alpha's adapter cannot withdraw or take deposits" in sender.reason
    receiver = refused(shortfalls, free, can_withdraw=frozenset({"alpha"}))
    assert "beta's adapter cannot withdraw or take deposits" in receiver.reason


def test_a_refused_basket_says_what_was_found_and_what_is_missing() -> None:
    result = refused({("beta", USDT): "1000"}, {("alpha", USDT): "600"})
    assert result.missing == {("beta", USDT): D("400.00")}
    assert "600.00 USDT from alpha's spot USDT can be found, 400.00 USDT cannot" in result.reason


# --- buffers -----------------------------------------------------------------------------
def test_a_source_keeps_its_buffer() -> None:
    rules = RoutingRules(withdrawals=True, buffers={"alpha": D(1000)})
    free = {("alpha", USDT): "1300"}
    shortfalls = {("beta", USDT): "300"}
    assert_cures(cured(shortfalls, free, rules), shortfalls, free, rules)
    result = refused({("beta", USDT): "300.01"}, free, rules)
    assert result.missing == {("beta", USDT): D("0.01")}
    assert "alpha keeps a buffer of 1,000.00 USD" in result.reason


def test_a_cure_that_would_need_a_buffer_is_split_elsewhere() -> None:
    rules = RoutingRules(withdrawals=True, buffers={"alpha": D(1000)})
    shortfalls = {("beta", USDT): "400"}
    free = {("alpha", USDT): "1300", ("gamma", USDT): "250"}
    result = cured(shortfalls, free, rules)
    assert result.drawn == {("alpha", USDT): D("300.00"), ("gamma", USDT): D("100.00")}
    assert_cures(result, shortfalls, free, rules)


def test_a_buffer_counts_the_venues_margin_and_spot_dollars_together() -> None:
    rules = RoutingRules(withdrawals=True, buffers={"alpha": D(1000)})
    free = {("alpha", USDT): "600", ("alpha", USD): "600"}
    # Either pool alone is above the buffer; together they hold 1,200, so 200 can go.
    result = refused({("beta", USDT): "300"}, free, rules)
    assert result.missing == {("beta", USDT): D("100.00")}
    assert sum(cured({("beta", USDT): "200"}, free, rules).drawn.values()) == D(200)


def test_a_pool_below_its_promises_holds_back_the_venues_other_dollars() -> None:
    free = {("alpha", USD): "-500", ("alpha", USDT): "800"}
    result = cured({("beta", USDT): "300"}, free)
    assert result.drawn == {("alpha", USDT): D("300.00")}
    assert refused({("beta", USDT): "301"}, free).missing == {("beta", USDT): D("1.00")}


def test_the_deficit_being_cured_does_not_count_against_its_venues_dollars() -> None:
    shortfalls = {("gamma", USD): "1200"}
    free = {("gamma", USD): "-1200", ("gamma", USDT): "1500"}
    assert cured(shortfalls, free).drawn == {("gamma", USDT): D("1200")}


# --- rounding ----------------------------------------------------------------------------
def test_dollar_shortfalls_round_up_and_surpluses_down_to_the_cent() -> None:
    shortfalls = {("beta", USD): "100.011"}
    result = refused(shortfalls, {("beta", USDT): "100.019"})
    # 100.02 needed, 100.01 spare (not 100.019): one cent short.
    assert result.missing == {("beta", USD): D("0.01")}
    free = {("beta", USDT): "100.019", ("gamma", USDT): "0.019"}
    result = cured(shortfalls, free)
    assert result.drawn == {("beta", USDT): D("100.01"), ("gamma", USDT): D("0.01")}
    assert all(s.amount == s.amount.quantize(D("0.01")) for s in result.steps)
    assert_cures(result, shortfalls, free)
    # Each pool is rounded down, not only the venue's dollars together (100.028 → 100.02).
    result = refused(
        {("beta", USDT): "100.02"}, {("alpha", USD): "100.019", ("alpha", USDT): "0.009"}
    )
    assert result.missing == {("beta", USDT): D("0.01")}


def test_amounts_reach_the_venue_written_in_cents() -> None:
    result = cured({("beta", USD): D("2.5E+3")}, {("beta", USDT): D("1E+4")})
    assert str(result.steps[0].amount) == "2500.00"


def test_other_assets_move_exactly() -> None:
    shortfalls = {("beta", STETH): "0.123456789"}
    free = {("alpha", STETH): "0.2"}
    result = cured(shortfalls, free)
    assert result.moves[0].amount == D("0.123456789")


# --- preferences -------------------------------------------------------------------------
def test_the_fewest_steps_win_over_a_smaller_surplus() -> None:
    shortfalls = {("beta", USD): "500"}
    free = {("alpha", USD): "600", ("alpha", USDT): "800", ("beta", USDT): "900"}
    result = cured(shortfalls, free)
    assert result.drawn == {("beta", USDT): D("500")}  # beta's own spot wallet: 1 step
    assert result.transfers == 1
    del free[("beta", USDT)]
    result = cured(shortfalls, free)
    assert result.drawn == {("alpha", USDT): D("500")}  # 2 steps, not alpha's margin's 3
    assert result.transfers == 2


def test_among_equal_steps_an_internal_transfer_wins_over_a_withdrawal() -> None:
    # gamma's margin is larger than alpha's spot, but gamma's is on the same venue.
    result = cured({("gamma", USDT): "100"}, {("gamma", USD): "1000", ("alpha", USDT): "150"})
    assert kinds(result) == [(TransferKind.INTERNAL, "gamma")]


def test_among_equals_the_smallest_surplus_that_suffices_then_the_venue_name() -> None:
    short = {("gamma", USDT): "100"}
    result = cured(short, {("alpha", USDT): "5000", ("delta", USDT): "150"})
    assert result.drawn == {("delta", USDT): D("100")}
    result = cured(short, {("delta", USDT): "150", ("beta", USDT): "150"})
    assert result.drawn == {("beta", USDT): D("100")}


def test_one_source_that_covers_beats_splitting() -> None:
    free = {("alpha", USDT): "600", ("beta", USDT): "600", ("delta", USDT): "5000"}
    result = cured({("gamma", USDT): "1000"}, free)
    assert result.drawn == {("delta", USDT): D("1000")}


def test_a_split_takes_the_largest_first_and_the_rest_from_the_smallest_that_fits() -> None:
    free = {("alpha", USDT): "600", ("beta", USDT): "700", ("delta", USDT): "450"}
    result = cured({("gamma", USDT): "1100"}, free)
    assert result.drawn == {("beta", USDT): D("700"), ("delta", USDT): D("400")}


def test_the_same_inputs_in_any_order_give_the_same_plan() -> None:
    shortfalls = [(("beta", USD), "700"), (("gamma", USDT), "300"), (("delta", STETH), "1")]
    free = [
        (("alpha", USD), "900"),
        (("alpha", USDT), "300"),
        (("gamma", USD), "300"),
        (("beta", STETH), "1"),
        (("alpha", STETH), "1"),
    ]
    plans = {
        msgspec.json.encode(plan(dict(s), dict(f)))
        for s in itertools.permutations(shortfalls)
        for f in itertools.permutations(free)
    }
    assert len(plans) == 1


# --- competition -------------------------------------------------------------------------
def test_two_short_pools_in_one_call_do_not_spend_one_source_twice() -> None:
    shortfalls = {("beta", USD): "800", ("gamma", USD): "500"}
    free = {("alpha", USD): "1000"}
    result = refused(shortfalls, free)
    # The larger is served first; the other gets what is left.
    assert result.missing == {("gamma", USD): D("300.00")}
    assert "200.00 USDT from alpha's margin wallet can be found, 300.00 USDT cannot" in (
        result.reason
    )
    free[("delta", USD)] = D(500)
    result = cured(shortfalls, free)
    assert result.drawn == {("alpha", USD): D("800"), ("delta", USD): D("500")}
    assert_cures(result, shortfalls, free)


def test_a_drained_source_is_named_as_drawn_for_the_other_pool() -> None:
    result = refused({("beta", USDT): "800", ("gamma", USDT): "500"}, {("alpha", USDT): "800"})
    assert result.missing == {("gamma", USDT): D("500")}
    assert "alpha's spot USDT (800.00 USDT spare): already drawn for beta's spot USDT" in (
        result.reason
    )


def test_a_second_basket_plans_on_what_the_first_left() -> None:
    free = {("alpha", USDT): D(1000), ("beta", USDT): D(400)}
    first = cured({("gamma", USDT): "700"}, free)
    assert first.drawn == {("alpha", USDT): D("700")}
    # On the whole of `free`, alpha alone would serve the second basket too.
    assert cured({("delta", USDT): "500"}, free).drawn == {("alpha", USDT): D("500")}
    left = dict(free)
    for pool, amount in first.drawn.items():
        left[pool] -= amount
    second = cured({("delta", USDT): "500"}, left)
    assert second.drawn == {("beta", USDT): D("400"), ("alpha", USDT): D("100")}
    third = refused({("delta", USDT): "800"}, left)
    assert third.missing == {("delta", USDT): D("100.00")}


# --- validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shortfalls", "free", "words"),
    [
        ({("beta", USD): D(-1)}, {}, "shortfalls[('beta', 'USD')] must be at least 0"),
        ({("beta", USD): D("NaN")}, {}, "shortfalls[('beta', 'USD')] must be a finite"),
        ({("beta", USD): 1.5}, {}, "shortfalls[('beta', 'USD')] must be a Decimal"),
        ({("beta", "USDT"): D(1)}, {}, "shortfalls: ('beta', 'USDT') is not a pool"),
        ({("beta", "spot:"): D(1)}, {}, "is not a pool"),
        ({}, {("alpha", USD): D("Infinity")}, "free[('alpha', 'USD')] must be a finite"),
        ({}, {"alpha": D(1)}, "free: 'alpha' is not a pool"),
    ],
)
def test_malformed_input_is_refused_naming_the_field(
    shortfalls: dict[object, object], free: dict[object, object], words: str
) -> None:
    with pytest.raises(CollateralError, match=re.escape(words)):
        plan_transfers(shortfalls, free, OPEN, can_transfer=ALL, can_withdraw=ALL)  # type: ignore[arg-type]


def test_a_venue_set_given_as_one_string_is_refused() -> None:
    with pytest.raises(CollateralError, match="can_withdraw must be a set of venue names"):
        plan_transfers({}, {}, OPEN, can_transfer=ALL, can_withdraw="alpha")


def test_a_negative_free_figure_is_allowed() -> None:
    assert isinstance(plan({}, {("alpha", USD): "-5"}), Plan)


def test_bad_rules_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=re.escape("buffers['alpha'] must be at least 0")):
        RoutingRules(buffers={"alpha": D(-1)})
    with pytest.raises(ValueError, match="margin_asset must be a dollar asset"):
        RoutingRules(margin_asset="BTC")
    with pytest.raises(ValueError, match=re.escape("routes[0] must be a pair")):
        RoutingRules(routes=[("alpha", "")])
    with pytest.raises(msgspec.ValidationError, match="withdraw"):
        msgspec.convert({"withdraw": True}, RoutingRules)  # a misspelt key
    with pytest.raises(msgspec.ValidationError, match="buffers"):
        msgspec.convert({"buffers": {"alpha": "-5"}}, RoutingRules, strict=False)
    rules = msgspec.convert(
        {"withdrawals": True, "routes": [["alpha", "beta"]], "buffers": {"alpha": "100"}},
        RoutingRules,
        strict=False,
    )
    assert rules.allows_route("alpha", "beta") and not rules.allows_route("beta", "alpha")
    assert rules.buffer("alpha") == D(100)


# --- properties --------------------------------------------------------------------------
_POOLS = [(v, a) for v in VENUES[:3] for a in (USD, USDT, STETH)]
_cents = st.integers(-50_000, 500_000).map(lambda n: D(n) / 100)
_some_venues = st.frozensets(st.sampled_from(VENUES[:3]))


@st.composite
def _cases(draw: st.DrawFn) -> tuple[dict[Pool, Decimal], dict[Pool, Decimal], RoutingRules]:
    short_pools = draw(st.lists(st.sampled_from(_POOLS), unique=True, max_size=3))
    shortfalls = {p: draw(st.integers(1, 300_000).map(lambda n: D(n) / 1000)) for p in short_pools}
    free = {p: draw(_cents) for p in _POOLS if p not in shortfalls and draw(st.booleans())}
    for p, n in shortfalls.items():
        free[p] = -n  # a short pool's free figure is its deficit
    venue_pairs = [(a, b) for a in VENUES[:3] for b in VENUES[:3] if a != b]
    rules = RoutingRules(
        internal=draw(st.booleans()),
        withdrawals=draw(st.booleans()),
        routes=draw(st.lists(st.sampled_from(venue_pairs), unique=True, max_size=4)),
        buffers=draw(st.dictionaries(st.sampled_from(VENUES[:3]), _cents.map(abs), max_size=3)),
    )
    return shortfalls, free, rules


@settings(max_examples=300, deadline=None)
@given(case=_cases(), can_transfer=_some_venues, can_withdraw=_some_venues)
def test_a_plan_always_cures_and_never_takes_a_source_below_zero_or_its_buffer(
    case: tuple[dict[Pool, Decimal], dict[Pool, Decimal], RoutingRules],
    can_transfer: frozenset[str],
    can_withdraw: frozenset[str],
) -> None:
    shortfalls, free, rules = case
    result = plan_transfers(
        shortfalls, free, rules, can_transfer=can_transfer, can_withdraw=can_withdraw
    )
    match result:
        case Plan():
            assert_cures(result, shortfalls, free, rules)
            assert result.transfers == len(result.steps) <= 3 * len(result.moves)
        case NoRoute():
            assert result.missing and set(result.missing) <= set(shortfalls)
            assert all(0 < n <= shortfalls[p] + D("0.01") for p, n in result.missing.items())
            assert result.reason


@settings(max_examples=200, deadline=None)
@given(case=_cases())
def test_with_everything_allowed_enough_spare_of_an_asset_always_cures(
    case: tuple[dict[Pool, Decimal], dict[Pool, Decimal], RoutingRules],
) -> None:
    shortfalls, free, _ = case
    free = {p: (n if p in shortfalls else abs(n)) for p, n in free.items()}
    result = plan_transfers(shortfalls, free, OPEN, can_transfer=ALL, can_withdraw=ALL)
    tokens = {USD: "USDT", USDT: "USDT", STETH: "STETH"}
    need: dict[str, Decimal] = {}
    have: dict[str, Decimal] = {}
    for (_, asset), n in shortfalls.items():
        # What the planner asks for: dollars rounded up to the cent.
        asked = n if asset == STETH else (n * 100).to_integral_value(ROUND_CEILING) / 100
        need[tokens[asset]] = need.get(tokens[asset], D(0)) + asked
    for pool, n in free.items():
        if pool not in shortfalls:
            have[tokens[pool[1]]] = have.get(tokens[pool[1]], D(0)) + n
    enough = all(have.get(t, D(0)) >= n for t, n in need.items())
    assert isinstance(result, Plan) == enough, result
