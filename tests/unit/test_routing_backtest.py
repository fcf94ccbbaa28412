"""The routing-stall scenario (bench/scenarios/routing_stall) in the backtest: gamma's margin
cannot carry the BTC short, its spot wallet can, and the transfer between them stalls for
60 s. `wait` sends nothing until the money lands; `hedge` starts ETH and stETH at once with
the hedge holding their exposure, BTC once funded; `refuse` (as without routing) is refused
with nothing sent. Every figure is read from the simulated venues' records and the run's
own orders, not from a summary."""

from __future__ import annotations

from pathlib import Path

import msgspec

from actors.backtest import ExecutionMode, check_venues, run_once
from actors.backtest.run import RunResult
from actors.lifecycle import BasketState
from actors.spec import OnUnfunded, load_basket
from cluster.config import load_cluster
from venues.model import TransferKind, TransferState

SCENARIO = Path(__file__).resolve().parents[2] / "bench" / "scenarios" / "routing_stall"
STALL_S = 60.0
# A desk that prices risk far above what hedging costs: it holds whatever the funded legs
# carry (at the scenario's own price it hedges only what earns its cost: docs/basket.md).
EAGER_RISK_PRICE = 1e6


def run(mode: OnUnfunded, *, routing: bool = True, risk_price: float | None = None) -> RunResult:
    cluster = load_cluster(SCENARIO / "venues.toml")
    spec = load_basket(SCENARIO / "basket.toml")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, on_unfunded=mode)
    )
    if risk_price is not None:
        assert spec.hedge is not None
        hedge = msgspec.structs.replace(spec.hedge, risk_price=risk_price)
        spec = msgspec.structs.replace(spec, hedge=hedge)
    return run_once(
        spec,
        check_venues(cluster.venues),
        ExecutionMode.COORDINATED,
        0,
        risk=cluster.risk,
        routing=cluster.collateral.rules() if routing else None,
    )


def first_send_ns(r: RunResult, legs: set[str] | None = None) -> int:
    return min(
        o.sent_ns
        for leg in r.report.legs
        if legs is None or leg.leg_id in legs
        for o in leg.child_orders
    )


def test_wait_sends_nothing_until_the_stalled_transfer_lands_then_completes() -> None:
    r = run(OnUnfunded.WAIT)
    report = r.report
    assert report.status is BasketState.COMPLETED, report.reason
    (t,) = report.collateral.transfers
    assert (t.kind, t.venue, t.source, t.destination) == (
        TransferKind.INTERNAL,
        "gamma",
        "gamma/spot",
        "gamma/margin",
    )
    assert t.state is TransferState.COMPLETED
    landed = t.updated_ns  # when the collateral runner saw it completed (polled each second)
    assert STALL_S <= t.age_s(landed) < STALL_S + 2
    assert first_send_ns(r) >= landed, "an order went out before the money landed"
    assert r.sent_unfunded == 0
    assert r.funding_s is not None and STALL_S <= r.funding_s < STALL_S + 5
    states = [c.state for c in report.history]
    assert states[:2] == [BasketState.CHECKING, BasketState.ARMING]
    assert "waited" in report.collateral.funding
    assert report.collateral.reserved["gamma"] > 1_000  # more than gamma's margin held before


def test_hedge_starts_the_funded_legs_and_the_hedge_holds_the_beta_while_btc_waits() -> None:
    r = run(OnUnfunded.HEDGE, risk_price=EAGER_RISK_PRICE)
    report = r.report
    assert report.status is BasketState.COMPLETED, report.reason
    (t,) = report.collateral.transfers
    landed = t.updated_ns
    # ETH and stETH went at once; BTC only once funded.
    assert first_send_ns(r, {"eth", "steth"}) < landed - 50 * 1_000_000_000
    assert first_send_ns(r, {"btc"}) >= landed
    assert r.sent_unfunded == 0
    # While BTC waited, the basket alone carried thousands of dollars of market beta; with
    # the hedge the net stayed inside the hedge's hysteresis (one-day 1σ dollars).
    m = r.metrics()
    hedge = load_basket(SCENARIO / "basket.toml").hedge
    assert hedge is not None
    hysteresis = hedge.hysteresis_usd
    assert r.pending_beta_usd is not None and r.pending_beta_usd > 3_000
    assert r.pending_net_beta_usd is not None and r.pending_net_beta_usd < r.pending_beta_usd / 5
    assert m["pending_net_beta_risk_usd"] is not None
    assert m["pending_net_beta_risk_usd"] <= hysteresis
    assert report.hedge is not None and report.hedge.orders > 0
    assert "started" in report.collateral.funding


def test_at_the_scenarios_own_risk_price_the_hedge_costs_less_than_the_risk_it_removes() -> None:
    # Issue 25: a stall of a minute on a $10k basket is worth hedging only in part, resting
    # rather than crossing; the whole hedge through the mid cost twice what it removed.
    r = run(OnUnfunded.HEDGE)
    hedge = r.report.hedge
    assert hedge is not None and hedge.orders > 0
    assert 0.0 < hedge.trading_cost_usd < hedge.risk_value_usd


def test_without_routing_or_with_refuse_the_basket_is_refused_and_nothing_is_sent() -> None:
    for r in (run(OnUnfunded.REFUSE), run(OnUnfunded.WAIT, routing=False)):
        report = r.report
        assert report.status is BasketState.FAILED
        assert "collateral refused" in report.reason and "gamma" in report.reason
        assert report.legs == [] and report.collateral.transfers == []
        assert r.market_events == 0


def test_a_transfer_that_stalls_past_the_deadline_fails_the_waiting_basket_with_nothing_sent():
    cluster = load_cluster(SCENARIO / "venues.toml")
    spec = load_basket(SCENARIO / "basket.toml")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, funding_timeout_s=30)
    )
    r = run_once(
        spec,
        check_venues(cluster.venues),
        ExecutionMode.COORDINATED,
        0,
        risk=cluster.risk,
        routing=cluster.collateral.rules(),
    )
    assert r.report.status is BasketState.FAILED
    assert "funding_timeout_s = 30 s" in r.report.reason
    assert r.report.legs == []
    (t,) = r.report.collateral.transfers
    assert t.state is TransferState.PENDING


def test_a_withdrawal_from_another_venue_funds_the_short_one_when_the_routes_allow_it(
    tmp_path: Path,
) -> None:
    # gamma holds nothing in its spot wallet now: the money comes from beta's, by a
    # withdrawal that lands in gamma's spot wallet, then a transfer into its margin.
    text = (SCENARIO / "venues.toml").read_text()
    text = text.replace("spot_balances = { USDT = 20_000 }\n", "")
    text = text.replace(
        "internal = true     # a venue's spot wallet may fund its margin wallet",
        'internal = true\nwithdrawals = true\nroutes = ["beta -> gamma"]',
    )
    text = text.replace(
        "transfers = { internal_s = 1, stall_rate = 1.0, stall_s = 60 }",
        "transfers = { internal_s = 1 }",
    )
    text = text.replace(
        'profile = { preset = "same_region" }',
        'profile = { preset = "same_region", transfers = { withdrawal_s = 20 } }',
    )
    venues = tmp_path / "venues.toml"
    venues.write_text(text)
    cluster = load_cluster(venues)
    spec = load_basket(SCENARIO / "basket.toml")
    r = run_once(
        spec,
        check_venues(cluster.venues),
        ExecutionMode.COORDINATED,
        0,
        risk=cluster.risk,
        routing=cluster.collateral.rules(),
    )
    report = r.report
    assert report.status is BasketState.COMPLETED, report.reason
    withdrawal, internal = report.collateral.transfers
    assert (withdrawal.kind, withdrawal.source, withdrawal.destination) == (
        TransferKind.WITHDRAWAL,
        "beta/spot",
        "gamma/spot",
    )
    assert (internal.kind, internal.source, internal.destination) == (
        TransferKind.INTERNAL,
        "gamma/spot",
        "gamma/margin",
    )
    assert withdrawal.state is internal.state is TransferState.COMPLETED
    assert internal.requested_ns >= withdrawal.updated_ns  # one after the other
    assert 20 <= withdrawal.age_s(withdrawal.updated_ns) < 23
    assert r.sent_unfunded == 0 and first_send_ns(r) >= internal.updated_ns
