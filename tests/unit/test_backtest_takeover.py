"""A basket actor lost in the backtest (DESIGN §9): its successor takes the run over from the
venues' records, on simulated time, by the same runners as live. Checked against the
simulated venues' own records of orders and trades, not the engine's report of itself."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.backtest import BacktestSettings, ExecutionMode, check_venues, run_once
from actors.lifecycle import BasketState
from actors.report import BasketReport
from actors.spec import load_basket
from cluster.cli import main
from cluster.config import load_cluster
from tests.support import (
    SYNTHETIC_ETH_BASKET,
    filled_to_minimum,
    recording_exchanges,
    without_injected_rejects,
)
from venues.model import OrderStatus, Side, TimeInForce
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import SimExchange

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
D = Decimal
SETTINGS = BacktestSettings(takeover_ms=3_000.0, leg_start_ms=1_000.0)


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    path = without_injected_rejects("venues.toml", tmp_path_factory.mktemp("takeover"))
    cluster = load_cluster(path)
    return check_venues(cluster.venues), cluster.risk


def flat_to_minimum(leg: Any, held: Decimal) -> bool:
    """Whether the venue's trades leave the leg flat, but for what is too small to send."""
    price = leg.avg_price or D(0)
    return abs(held) * price < SYNTHETIC_INSTRUMENTS[leg.symbol].min_notional


def basket(policy: str, style: str) -> str:
    """The basket of the live take-over tests, over 8 s."""
    return SYNTHETIC_ETH_BASKET.format(
        basket_id="bt-lost", policy=policy, horizon_s=8, child_style=style
    )


def lost_run(
    venues: tuple[Any, Any], policy: str, seed: int, lost_after_s: float, style: str = "twap"
) -> tuple[BasketReport, int, dict[str, SimExchange]]:
    """The basket's report when its actor is lost `lost_after_s` after its legs fire, the
    instant of the loss, and the venues' exchanges by name."""
    config, risk = venues
    spec = load_basket(basket(policy, style))
    with recording_exchanges() as made:
        result = run_once(
            spec,
            config,
            ExecutionMode.COORDINATED,
            seed,
            risk=risk,
            settings=SETTINGS,
            lose_basket_after_s=lost_after_s,
        )
    lost_ns = result.fire_ns + int(lost_after_s * NS)
    return result.report, lost_ns, {ex.venue: ex for ex in made}


def venue_orders(ex: SimExchange, symbol: str) -> list[Any]:
    (account,) = ex._accounts
    return ex.all_orders(account, symbol)


def venue_net(ex: SimExchange, symbol: str, side: Side) -> Decimal:
    """What the venue's own trades hold of `symbol`, along `side`."""
    (account,) = ex._accounts
    trades = ex.user_trades(account, symbol)
    return sum((t.fill.quantity if t.side is side else -t.fill.quantity for t in trades), D(0))


@pytest.mark.parametrize(("seed", "lost_after_s"), [(0, 1.0), (1, 3.0), (2, 5.5)])
def test_a_lost_basket_under_policy_complete_carries_on_and_fills_every_leg(
    venues: tuple[Any, Any], seed: int, lost_after_s: float
) -> None:
    report, lost_ns, exchanges = lost_run(venues, "complete", seed, lost_after_s)
    assert report.status is BasketState.COMPLETED, report.reason
    assert any("carries on" in note for note in report.notes), report.notes
    taken = [c for c in report.history if c.reason.startswith("taken over")]
    assert len(taken) == 1 and taken[0].ts_ns >= lost_ns + int(SETTINGS.takeover_ms * 1e6)
    for leg in report.legs:
        ex = exchanges[leg.venue]
        orders = venue_orders(ex, leg.symbol)
        ids = [o.client_order_id for o in orders]
        # Every order the venue has is in the report, under an id used once, the ones the
        # lost actors sent included; the venue's trades are the leg's fill.
        assert len(set(ids)) == len(ids)
        assert set(ids) == {o.client_order_id for o in leg.child_orders}, leg.leg_id
        assert any(o.venue_receive_ns < lost_ns for o in orders), "nothing before the loss"
        assert any(o.venue_receive_ns > lost_ns for o in orders), "nothing after the loss"
        assert venue_net(ex, leg.symbol, leg.side) == leg.filled_qty, leg.leg_id
        # Nothing reached the venue while the basket had no actor: after the last orders
        # the lost legs had on their way (well within 1 s) and before its successor's legs.
        quiet = range(lost_ns + NS, lost_ns + int(SETTINGS.takeover_ms * 1e6))
        assert not [o for o in orders if o.venue_receive_ns in quiet], leg.leg_id
        # The whole target, to what the venue accepts.
        assert filled_to_minimum(leg, leg.filled_qty), (
            leg.leg_id,
            leg.target_qty,
            leg.filled_qty,
            leg.reason,
        )


def test_a_lost_basket_under_policy_unwind_fails_and_trades_every_leg_back(
    venues: tuple[Any, Any],
) -> None:
    report, _, exchanges = lost_run(venues, "unwind", 3, 3.0)
    assert report.status is BasketState.FAILED
    assert "lost" in report.reason, report.reason
    for leg in report.legs:
        ex = exchanges[leg.venue]
        held = venue_net(ex, leg.symbol, leg.side)
        ids = [o.client_order_id for o in venue_orders(ex, leg.symbol)]
        assert set(ids) == {o.client_order_id for o in leg.child_orders}, leg.leg_id
        assert any(o.purpose == "unwind" for o in leg.child_orders), leg.leg_id
        assert flat_to_minimum(leg, held), (leg.leg_id, held)


def test_a_run_that_loses_nothing_is_the_run_without_the_loss_machinery(
    venues: tuple[Any, Any],
) -> None:
    """A loss scheduled after the basket ended changes nothing of the run."""
    config, risk = venues
    spec = load_basket(basket("complete", "twap"))
    plain = run_once(spec, config, ExecutionMode.COORDINATED, 4, risk=risk)
    assert plain.done_ns is not None
    late = run_once(
        spec,
        config,
        ExecutionMode.COORDINATED,
        4,
        risk=risk,
        lose_basket_after_s=3_600.0,
    )
    assert late.report.status is plain.report.status
    assert [leg.child_orders for leg in late.report.legs] == [
        leg.child_orders for leg in plain.report.legs
    ]


@pytest.mark.parametrize("policy", ["complete", "unwind"])
@pytest.mark.parametrize(("seed", "lost_after_s"), [(9, 1.5), (4, 4.0)])
def test_a_quote_the_lost_actor_left_resting_is_pulled_by_its_successor(
    venues: tuple[Any, Any], policy: str, seed: int, lost_after_s: float
) -> None:
    """A passive leg's quote rests at the venue when its actor is lost: the successor's leg
    takes it as its own quote and pulls it (a stop, an unwind, before reconciling) or
    replaces it (carrying on). Left resting, it held up the unwind ("unwind incomplete")
    and a leg carrying on never finished, and it outlived the basket at the venue."""
    report, lost_ns, exchanges = lost_run(venues, policy, seed, lost_after_s, style="passive")
    taken_over = lost_ns + int(SETTINGS.takeover_ms * 1e6)
    pulled = []
    for leg in report.legs:
        ex = exchanges[leg.venue]
        (account,) = ex._accounts
        assert ex.open_orders(account, leg.symbol) == [], f"{leg.leg_id}: left resting"
        pulled += [
            o.client_order_id
            for o in venue_orders(ex, leg.symbol)
            if o.time_in_force is TimeInForce.POST_ONLY
            and o.venue_receive_ns < lost_ns
            and o.status is OrderStatus.CANCELED
            and o.venue_ts_ns > taken_over
        ]
        held = venue_net(ex, leg.symbol, leg.side)
        assert held == leg.filled_qty, leg.leg_id
        if policy == "complete":
            assert filled_to_minimum(leg, held), (leg.leg_id, leg.target_qty, held)
        else:
            assert flat_to_minimum(leg, held), (leg.leg_id, held)
    assert pulled, "no quote rested at the loss: the case does not test the successor's pull"
    want = BasketState.COMPLETED if policy == "complete" else BasketState.FAILED
    assert report.status is want, report.reason
    assert "incomplete" not in report.reason, report.reason


QUICK = ROOT / "examples" / "synthetic_eth_quick.toml"  # policy hedge_and_hold, hedged
ONE_RUN = ("--seeds", "1", "--compare", "coordinated", "--quiet")


@pytest.mark.parametrize(
    ("policy", "code", "ends"), [("hedge_and_hold", 1, "FAILED"), ("complete", 0, None)]
)
def test_legato_backtest_loses_the_basket_actor_when_asked(
    policy: str, code: int, ends: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backtest", str(QUICK), *ONE_RUN, "--lose-basket-after", "3", "--set"]
    assert main([*args, f"policy={policy}"]) == code
    out = capsys.readouterr().out
    assert "the basket actor is lost 3 s after the legs fire" in out
    if ends is None:
        assert "did not complete" not in out
    else:  # the loss is the basket's failure under any policy but complete
        assert f"seed 0 coordinated: {ends}: the basket actor was lost (in RUNNING)" in out


def test_a_negative_loss_instant_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["backtest", str(QUICK), *ONE_RUN, "--lose-basket-after", "-1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "--lose-basket-after: must be 0 or more, got -1" in err and "Traceback" not in err
