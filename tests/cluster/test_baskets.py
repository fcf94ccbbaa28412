"""Baskets end to end on a real local Ray: venue, leg, basket, collateral and hedge actors
against simulated venues served over the Binance USD-M API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import msgspec
import pytest
import ray

from actors.lifecycle import BasketState
from actors.messages import LegStatus
from actors.spec import Policy, SpecError, load_basket
from cluster.config import ClusterConfig, parse_cluster
from cluster.engine import BasketHandle, Engine
from tests.cluster.conftest import NAMESPACE
from tests.support import eventually
from venues.config import parse_venues
from venues.sim.calibration import SECONDS_PER_YEAR, SYNTHETIC_INSTRUMENTS

pytestmark = pytest.mark.usefixtures("ray_session")

D = Decimal

# Three venues on one synthetic market: alpha colocated (RESULT acks), beta in the region
# (ACCEPTED: fills arrive on the stream), gamma answering on receipt (RECEIPT).
VENUES = """
[venues.alpha]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = ["BTCUSDT", "ETHUSDT", "IDXUSDT"]
profile = {{ preset = "colo", ack = "RESULT", client_id_reuse = "after_close" }}
[[venues.alpha.accounts]]
account_id = "desk"
api_key = "test-alpha-key"
secret = "test-alpha-secret"
balances = {{ USDT = 2_000_000 }}
leverage = 10

[venues.beta]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = ["STETHUSDT", "ETHUSDT"]
profile = {beta_profile}
[[venues.beta.accounts]]
account_id = "desk"
api_key = "test-beta-key"
secret = "test-beta-secret"
balances = {{ USDT = 1_000_000 }}
spot_balances = {{ USDT = 1_000_000, STETH = 100 }}
leverage = 5

[venues.gamma]
kind = "sim"
market = {{ source = "synthetic", seed = 7 }}
instruments = ["BTCUSDT", "SOLUSDT"]
[venues.gamma.profile]
preset = "same_region"
ack = "RECEIPT"
reject_rate = {gamma_rejects}
client_id_reuse = "after_close"
[[venues.gamma.accounts]]
account_id = "desk"
api_key = "test-gamma-key"
secret = "test-gamma-secret"
balances = {{ USDT = {gamma_usdt} }}
leverage = 3
"""

# The synthetic ETH basket of examples/synthetic_eth.toml, a hundred times smaller and
# over seconds instead of minutes: long ETH perp on alpha and stETH on beta, short BTC on
# gamma, beta-neutral (1.04 dollars of BTC per dollar of ETH).
SYNTH_ETH = """
kind = "basket"
basket_id = "{basket_id}"
policy = "{policy}"
[params]
horizon_s = 4
max_slippage_bps = 25
participation_cap = 1.0
band = 0.05
slice_s = 0.5
grace_s = 20
[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
notional_usd = 9000
[[legs]]
leg_id = "steth"
venue = "beta"
symbol = "STETHUSDT"
side = "BUY"
notional_usd = {steth_usd}
max_slippage_bps = 40
[[legs]]
leg_id = "btc"
venue = "gamma"
symbol = "BTCUSDT"
side = "SELL"
notional_usd = {btc_usd}
[hedge]
venue = "alpha"
instruments = ["IDXUSDT"]
activation_usd = {activation}
hysteresis_usd = 20
risk_price = {risk_price}
"""

# Every simulated venue of the cluster tests refuses a client order id only while an order
# with it is open, as Binance does (not forever, the simulator's default).
BETA = '{ preset = "same_region", client_id_reuse = "after_close" }'


def venues(
    *, beta_profile: str = BETA, gamma_rejects: float = 0.0, gamma_usdt: int = 500_000
) -> object:
    text = VENUES.format(
        beta_profile=beta_profile, gamma_rejects=gamma_rejects, gamma_usdt=gamma_usdt
    )
    import tomllib  # noqa: PLC0415

    return parse_venues(tomllib.loads(text), source="test venues")


def with_tables(tables: str) -> ClusterConfig:
    """The test venues plus cluster tables ([hedge], [risk], [engine])."""
    import textwrap  # noqa: PLC0415
    import tomllib  # noqa: PLC0415

    text = VENUES.format(beta_profile=BETA, gamma_rejects=0.0, gamma_usdt=500_000)
    return parse_cluster(tomllib.loads(textwrap.dedent(tables) + text), source="test config")


EAGER_RISK_PRICE = 1e6  # USD of hedging cost worth paying per USD of 1σ risk removed


def synth_eth(
    basket_id: str,
    *,
    policy: str = "hedge_and_hold",
    steth_usd: int = 1000,
    activation: float = 10_000,
    eager: bool = False,
) -> object:
    """The basket; `eager`: a hedge whose desk prices risk far above what hedging costs, so
    that it trades on this small basket's imbalance (docs/basket.md#hedge)."""
    eth_usd = 9000 + steth_usd  # ETH exposure of the two long legs
    text = SYNTH_ETH.format(
        basket_id=basket_id,
        policy=policy,
        steth_usd=steth_usd,
        btc_usd=round(eth_usd * 1.04),
        activation=activation,
        risk_price=EAGER_RISK_PRICE if eager else 1.0,
    )
    return load_basket(text)


@pytest.fixture
def make_engine() -> Iterator[object]:
    started: list[Engine] = []

    def make(config: object) -> Engine:
        engine = Engine.start(config, namespace=NAMESPACE)  # type: ignore[arg-type]
        started.append(engine)
        return engine

    yield make
    for engine in started:
        engine.shutdown()


TCA_KEYS = (
    "gross_notional_usd",
    "shortfall_usd",
    "shortfall_bps",
    "launch_skew_ns",
    "max_completion_skew",
    "time_outside_band_s",
    "peak_imbalance_usd",
    "legging_risk_usd",
    "hedge_cost_usd",
    "hedge_reaction_ns",
)


def spot_flat(beta: dict[str, Decimal]) -> bool:
    """beta's spot wallet holds its 100 STETH again, to within one lot: an unwind gives back
    what the basket bought less the fee charged in STETH, on the venue's lot grid."""
    return abs(beta.get("STETHUSDT", D(100)) - 100) < SYNTHETIC_INSTRUMENTS["STETHUSDT"].lot


def positions(engine: Engine) -> dict[str, dict[str, Decimal]]:
    return {v: engine.venue_stat(v, "positions") for v in engine.venues}


def watch(handle: BasketHandle, timeout: float = 90.0) -> list[object]:
    """Every status snapshot until the basket ends (bounded in time)."""
    return list(handle.progress(every_s=0.1, timeout=timeout))


def wait_until_filling(handle: BasketHandle) -> None:
    """Block until the basket runs and some leg has a fill (bounded: 60 s)."""
    filling = next(
        (
            s
            for s in handle.progress(every_s=0.05, timeout=60)
            if s.state is BasketState.RUNNING and any(leg.filled_qty > 0 for leg in s.legs)
        ),
        None,
    )
    assert filling is not None, "the basket never started filling"


def test_synthetic_eth_basket_completes_with_every_leg_reconciled(make_engine) -> None:
    engine = make_engine(venues())
    handle = engine.submit(synth_eth("t-synth"))
    report = handle.result(timeout=120)

    assert report.status is BasketState.COMPLETED, report.reason
    assert report.launched_ns is not None and report.submitted_ns < report.launched_ns
    assert report.completed_ns is not None and report.launched_ns < report.completed_ns
    legs = {leg.leg_id: leg for leg in report.legs}
    assert set(legs) == {"eth", "steth", "btc"}
    for leg in legs.values():
        assert leg.reconciled and leg.status is LegStatus.RECONCILED, leg
        assert not leg.mismatches
        # Filled to the target, short of it by less than one minimum order (dust).
        assert 0 <= leg.target_qty - leg.filled_qty < leg.target_qty * D("0.01"), leg
        # The filled quantity is the sum of the child orders the venue confirmed.
        assert leg.filled_qty == sum(c.filled_qty for c in leg.child_orders)
        assert leg.child_orders and leg.first_send_ns is not None
        assert leg.first_venue_accept_ns is not None
    assert {leg.ack_kind.value for leg in legs.values()} == {"RESULT", "ACCEPTED", "RECEIPT"}
    # The venues' own records: fresh accounts, so the positions are the basket's fills.
    held = positions(engine)
    assert held["alpha"]["ETHUSDT"] == legs["eth"].filled_qty
    # Spot: 100 held before, and the fee charged in the STETH bought is not held.
    steth = legs["steth"]
    assert steth.fee_qty > 0
    assert held["beta"]["STETHUSDT"] == 100 + steth.filled_qty - steth.fee_qty
    assert held["gamma"]["BTCUSDT"] == -legs["btc"].filled_qty
    # Margin on the perpetuals' venues; beta's spot leg from its spot wallet's USDT.
    collateral = report.collateral
    assert collateral.released and set(collateral.reserved) == {"alpha", "gamma"}
    assert set(collateral.holdings) == {"beta"} and set(collateral.holdings["beta"]) == {
        "spot:USDT"
    }
    assert report.policy is Policy.HEDGE_AND_HOLD
    # The report is JSON with the keys other tools read.
    doc = msgspec.json.decode(report.to_json())
    for key in ("basket_id", "status", "policy", "submitted_ns", "launched_ns", "completed_ns"):
        assert key in doc
    for key in ("leg_id", "target_qty", "filled_qty", "avg_price", "reconciled", "node_id"):
        assert key in doc["legs"][0]
    assert {"orders", "max_abs_position", "pnl_usd", "fees_usd"} <= set(doc["hedge"])
    # The cost analysis, for the basket, from its own fills and path.
    tca = doc["tca"]
    for key in TCA_KEYS:
        assert key in tca, key
    assert tca["gross_notional_usd"] == pytest.approx(
        sum(float(leg.original_qty * leg.decision_price) for leg in report.legs), rel=1e-9
    )
    parts = tca["parts"]
    assert tca["shortfall_usd"] == pytest.approx(sum(parts.values()), abs=1e-6)
    for leg in tca["legs"]:
        s = leg["shortfall"]
        assert s["total_usd"] == pytest.approx(
            s["delay_usd"] + s["execution_usd"] + s["opportunity_usd"] + s["fees_usd"], abs=1e-9
        )
    # Every child order is an IOC taking liquidity: the fees are the 5 bp taker fee on the
    # gross notional, whatever the market did (its moves can make the total less, or even
    # negative, when prices went our way).
    fees_bps = parts["fees_usd"] / tca["gross_notional_usd"] * 1e4
    assert 4.5 < fees_bps < 5.5
    assert report.timeline is not None and len(report.timeline.points) > 10
    assert report.timeline.legs == ["eth", "steth", "btc"]


def test_hedge_engages_while_a_slow_thin_leg_lags_and_is_flat_at_completion(
    make_engine,
) -> None:
    # beta is a cross-region venue (150-250 ms) and stETH's book is thin: its leg lags.
    engine = make_engine(
        venues(beta_profile='{ preset = "cross_region", client_id_reuse = "after_close" }')
    )
    handle = engine.submit(synth_eth("t-hedge", steth_usd=3000, activation=5, eager=True))
    seen = watch(handle)
    report = handle.result(timeout=60)

    assert report.status is BasketState.COMPLETED, report.reason
    hedged_while_lagging = [
        s
        for s in seen
        if s.hedge_position_usd > 0
        and s.state is BasketState.RUNNING
        and {leg.leg_id: leg.progress for leg in s.legs}["steth"]
        < max(leg.progress for leg in s.legs)
    ]
    assert hedged_while_lagging, "the hedge never held a position while stETH lagged"
    assert report.hedge is not None
    assert report.hedge.orders > 0 and report.hedge.max_abs_position > 0
    assert report.hedge.flat_at_end
    assert report.hedge.reaction_ns and all(r > 0 for r in report.hedge.reaction_ns)
    # Flat at the venue too: the hedge instrument's position is gone.
    assert positions(engine)["alpha"].get("IDXUSDT", D(0)) == 0
    # One machine: the desk trades by its own connection, not through the venue's actor.
    assert ray.get(engine.hedger.routes.remote()) == {"alpha IDXUSDT": "own connection"}
    # Once the venues stop with their engine, the desk (and its connection) is retired.
    hedger = engine.hedger
    engine.shutdown()
    assert eventually(lambda: ray.get(hedger.routes.remote()) == {}, timeout_s=15.0)


def test_rebalance_60_40_ends_within_one_percent_of_its_weights(make_engine) -> None:
    # The configuration's [hedge] and [risk] apply to a basket that names no hedge.
    config = with_tables(
        """
        [hedge]
        venue = "alpha"
        instruments = ["IDXUSDT"]
        activation_usd = 50_000
        [risk.factors]
        BTC = 0.4
        ETH = 0.6
        SOL = 0.8
        """
    )
    engine = make_engine(config)
    spec = load_basket(
        """
        kind = "rebalance"
        basket_id = "t-rebal"
        venue = "alpha"
        total_usd = 50_000
        [targets]
        BTCUSDT = 0.6
        ETHUSDT = 0.4
        [params]
        horizon_s = 3
        slice_s = 0.5
        participation_cap = 1.0
        band = 0.05
        """
    )
    handle = engine.submit(spec)
    assert handle.basket.hedge == config.hedge  # the default hedge, as validated
    report = handle.result(timeout=120)
    assert report.status is BasketState.COMPLETED, report.reason
    assert report.hedge is not None and report.hedge.instruments == ["IDXUSDT"]
    # The legs' risk figures come from the configured model: BTC at 40 % a year.
    assert report.timeline is not None
    btc = report.timeline.legs.index(next(leg.leg_id for leg in report.legs if "BTC" in leg.symbol))
    per_year = report.timeline.covariance_per_s[btc][btc] * SECONDS_PER_YEAR
    assert per_year == pytest.approx(0.4**2)

    held = positions(engine)["alpha"]
    mids = engine.venue_stat("alpha", "mids", ["BTCUSDT", "ETHUSDT"])
    value = {s: held[s] * mids[s] for s in ("BTCUSDT", "ETHUSDT")}
    total = sum(value.values())
    assert abs(total - 50_000) / 50_000 < D("0.01"), value
    assert abs(value["BTCUSDT"] / total - D("0.6")) < D("0.01"), value
    assert abs(value["ETHUSDT"] / total - D("0.4")) < D("0.01"), value


def test_leg_rejected_at_launch_under_unwind_leaves_every_venue_flat(make_engine) -> None:
    # gamma refuses every order: the BTC leg's first order is rejected (on the stream,
    # gamma acks on receipt) while the other legs' first orders may already have filled.
    engine = make_engine(venues(gamma_rejects=1.0))
    report = engine.submit(synth_eth("t-reject", policy="unwind")).result(timeout=120)

    assert report.status is BasketState.FAILED
    assert "btc" in report.reason and "rejected" in report.reason, report.reason
    states = [change.state for change in report.history]
    assert BasketState.UNWINDING in states and BasketState.RECONCILING in states
    btc = next(leg for leg in report.legs if leg.leg_id == "btc")
    assert btc.rejects and btc.filled_qty == 0
    held = positions(engine)
    assert all(q == 0 for q in held["alpha"].values()), held
    assert spot_flat(held["beta"]), held
    assert all(q == 0 for q in held["gamma"].values()), held
    for leg in report.legs:
        # What each leg holds is back to nothing; a spot leg charged its fee in what it
        # bought can give back only whole lots of the rest, so dust under a lot may stay.
        held = leg.filled_qty - leg.fee_qty
        lot = SYNTHETIC_INSTRUMENTS[leg.symbol].lot
        assert (held == 0 if leg.fee_qty == 0 else 0 <= held < lot) and leg.reconciled, leg


def test_insufficient_collateral_rejects_the_basket_before_any_order(make_engine) -> None:
    engine = make_engine(venues(gamma_usdt=100))
    report = engine.submit(synth_eth("t-collateral")).result(timeout=60)

    assert report.status is BasketState.FAILED
    assert "gamma" in report.reason and "short" in report.reason, report.reason
    assert report.collateral.refused and "gamma" in report.collateral.refused[0]
    assert report.launched_ns is None and report.legs == []
    assert {v: engine.venue_stat(v, "orders_received") for v in engine.venues} == {
        "alpha": 0,
        "beta": 0,
        "gamma": 0,
    }


def test_a_bad_basket_is_refused_in_the_driver_with_every_mistake(make_engine) -> None:
    engine = make_engine(venues())
    spec = msgspec.structs.replace(
        synth_eth("t-bad"),
        legs=[
            msgspec.structs.replace(leg, symbol="DOGEUSDT") if leg.leg_id == "eth" else leg
            for leg in synth_eth("t-bad").legs
        ],
    )
    with pytest.raises(SpecError) as info:
        engine.submit(spec)
    assert any(e.path == "legs[0].symbol" for e in info.value.errors), info.value
    assert "DOGEUSDT" in str(info.value)
    assert engine.venue_stat("alpha", "orders_received") == 0


def test_cancelling_a_running_basket_stops_it_and_unwinds(make_engine) -> None:
    engine = make_engine(venues())
    spec = synth_eth("t-cancel", policy="unwind")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, horizon_s=30, grace_s=60)
    )
    handle = engine.submit(spec)
    wait_until_filling(handle)
    handle.cancel()
    report = handle.result(timeout=120)

    assert report.status is BasketState.CANCELLED, report.reason
    assert sum(leg.unwound_qty for leg in report.legs) > 0
    held = positions(engine)
    assert all(q == 0 for q in held["alpha"].values()), held
    assert spot_flat(held["beta"]), held
    assert all(q == 0 for q in held["gamma"].values()), held


def test_complete_policy_keeps_the_healthy_legs_going_and_holds_the_hedge(make_engine) -> None:
    # gamma refuses every order: under `complete` the ETH and stETH legs still finish, which
    # leaves the basket long ETH with no BTC short: the hedge keeps it covered.
    engine = make_engine(venues(gamma_rejects=1.0))
    spec = synth_eth("t-complete", policy="complete", activation=5, eager=True)
    report = engine.submit(spec).result(timeout=120)

    assert report.status is BasketState.FAILED
    assert "btc" in report.reason and "held" in report.reason, report.reason
    legs = {leg.leg_id: leg for leg in report.legs}
    assert legs["btc"].filled_qty == 0 and legs["btc"].rejects
    for leg_id in ("eth", "steth"):
        leg = legs[leg_id]
        assert leg.reconciled and leg.target_qty - leg.filled_qty < leg.target_qty * D("0.01")
    assert report.hedge is not None and report.hedge.held and not report.hedge.flat_at_end
    assert positions(engine)["alpha"].get("IDXUSDT", D(0)) != 0
    # The operator lets go: the hedge is traded away.
    (statement,) = engine.release_hedge("t-complete")
    assert statement.flat and not statement.held
    assert positions(engine)["alpha"].get("IDXUSDT", D(0)) == 0


def test_a_lost_leg_actor_fails_the_basket_and_every_leg_unwinds_its_own_too(make_engine) -> None:
    import ray  # noqa: PLC0415

    engine = make_engine(venues())
    spec = synth_eth("t-lost", policy="unwind")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, horizon_s=30, grace_s=60)
    )
    handle = engine.submit(spec)
    wait_until_filling(handle)
    ray.kill(ray.get_actor("legato-leg-t-lost-steth", namespace=NAMESPACE), no_restart=True)
    report = handle.result(timeout=120)

    assert report.status is BasketState.FAILED
    assert "steth" in report.reason and "lost" in report.reason, report.reason
    legs = {leg.leg_id: leg for leg in report.legs}
    assert set(legs) == {"eth", "steth", "btc"}
    # The lost leg was brought up afresh from its venue's records of its orders: its fills
    # were unwound and reconciled like the others'.
    steth = legs["steth"]
    assert steth.status is LegStatus.FAILED and steth.reconciled, steth.reason
    assert steth.child_orders and steth.unwound_qty > 0
    assert any("recovered" in note for note in report.notes), report.notes
    # Back where they were, by the venues' own figures (beta's account holds 100 stETH
    # from the start, and shows it as a position once the symbol has traded).
    held = positions(engine)
    assert held["alpha"] == held["gamma"] == {}, held
    assert spot_flat(held["beta"]), held


def test_a_real_venue_without_its_keys_is_refused_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tomllib  # noqa: PLC0415

    from cluster.engine import EngineError  # noqa: PLC0415

    # The venue's actor reads the keys where it runs: neither variable is set there.
    monkeypatch.delenv("LEGATO_TEST_MISSING_KEY", raising=False)
    config = parse_venues(
        tomllib.loads(
            """
            [venues.live]
            kind = "binance_usdm"
            rest_url = "http://127.0.0.1:9"
            ws_url = "ws://127.0.0.1:9"
            api_key_env = "LEGATO_TEST_MISSING_KEY"
            secret_env = "LEGATO_TEST_MISSING_SECRET"
            """
        ),
        source="test",
    )
    with pytest.raises(EngineError) as info:
        Engine.start(config, namespace=NAMESPACE)
    message = str(info.value)
    assert "live" in message and "LEGATO_TEST_MISSING_KEY" in message
    assert "Traceback" not in message


def test_a_passive_basket_rests_quotes_live_and_ends_reconciled(make_engine) -> None:
    """`passive` on the live actors: post-only quotes rest on the venues over their APIs, the
    quotes the legs replace or pull are cancelled there, and the basket completes with every
    leg reconciled to the venues' own positions and no order left open."""
    engine = make_engine(venues())
    spec = synth_eth("t-passive")
    spec = msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, child_style="passive")
    )
    report = engine.submit(spec).result(timeout=120)

    assert report.status is BasketState.COMPLETED, report.reason
    legs = {leg.leg_id: leg for leg in report.legs}
    held = positions(engine)
    assert held["alpha"]["ETHUSDT"] == legs["eth"].filled_qty
    assert held["gamma"]["BTCUSDT"] == -legs["btc"].filled_qty
    for leg in legs.values():
        assert leg.reconciled and not leg.mismatches, leg
        assert 0 <= leg.target_qty - leg.filled_qty < leg.target_qty * D("0.01"), leg
        assert all(c.status.is_terminal for c in leg.child_orders), "an order was left open"
        for c in leg.child_orders:
            if c.filled_qty > 0:
                # Each fill dated on the basket's axis, no earlier than the order was sent.
                assert c.fill_marks and c.fill_marks[-1][1] == c.filled_qty, c
                assert all(t >= c.sent_ns for t, _ in c.fill_marks), c
    quotes = [c for leg in legs.values() for c in leg.child_orders if c.status.value == "CANCELED"]
    assert quotes, "no quote was ever replaced or pulled"
    # Some fills were a maker's: below the 5 bp taker fee on the gross notional.
    tca = report.tca
    assert tca is not None
    assert tca["parts"]["fees_usd"] / tca["gross_notional_usd"] * 1e4 < 4.9
