"""The backtest against the live engine: one basket, one seeded market, run both ways.

The venues' synthetic market has a fixed origin, so its prices are a function of time alone:
the backtest, with its venues started when the live ones did and its legs firing at the live
legs' fire instant, trades the same market the live legs did. What differs is when each order
reaches it: live, Ray calls, HTTP and event loops on a busy 2-core machine; in the backtest,
the venue profiles' latency draws and modelled Ray calls. Those are milliseconds to tens of
milliseconds per order, so on the happy path:

- filled quantities agree exactly (both baskets complete; quantities are on the lot grid);
- each leg's average price agrees within 3 bp: ETH's one-σ move over 100 ms is ~0.4 bp and
  the synthetic market steps every 100 ms, so an order a few ms earlier or later can meet the
  next step's price; averaged over the leg's slices that stays well inside 3 bp (a wrong
  price scale, side or slice size would be far outside);
- the shortfall agrees within 2 bp of gross notional, and its fees part within 0.2 bp (the
  same taker fee on the same notional).

Off the happy path (a reject storm, a cancel, a venue outage) the runners' decisions are
what must agree: the outcome, who failed, what was unwound, what was refused. Each scenario's
test says what it compares and how closely.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import ray

from actors.backtest import ExecutionMode, RunResult, check_venues, run_once
from actors.lifecycle import BasketState
from actors.messages import LegStatus
from actors.protocol import BasketStatus
from actors.report import BasketReport
from actors.spec import BasketSpec, load_basket
from cluster.config import ClusterConfig, parse_cluster
from cluster.engine import BasketHandle, Engine
from tests.cluster.conftest import NAMESPACE

pytestmark = pytest.mark.usefixtures("ray_session")

NS = 1_000_000_000

VENUES = """
[venues.alpha]
kind = "sim"
market = {{ source = "synthetic", seed = 5, origin = {origin} }}
instruments = ["ETHUSDT", "BTCUSDT"]
profile = {{ preset = "colo", ack = "RESULT" }}

[[venues.alpha.accounts]]
account_id = "desk"
api_key = "k"
secret = "s"

[venues.beta]
kind = "sim"
market = {{ source = "synthetic", seed = 5, origin = {origin} }}
instruments = ["ETHUSDT", "BTCUSDT"]
profile = {{ preset = "colo", ack = "ACCEPTED" }}

[[venues.beta.accounts]]
account_id = "desk"
api_key = "k"
secret = "s"
"""

BASKET = """
kind = "basket"
basket_id = "{basket_id}"
policy = "unwind"

[params]
horizon_s = 8
slice_s = 0.5
band = 0.1
participation_cap = 1.0

[[legs]]
leg_id = "eth"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
quantity = 4

[[legs]]
leg_id = "btc"
venue = "beta"
symbol = "BTCUSDT"
side = "SELL"
quantity = 0.17

[hedge]
venue = "alpha"
instruments = ["BTCUSDT"]
enabled = false
"""


def config_with(**beta_profile: Any) -> ClusterConfig:
    """The two venues on a market whose origin is 30 s ago; `beta_profile`: fields laid over
    beta's profile (a reject rate, outages)."""
    origin = time.time_ns() - 30 * NS
    raw = tomllib.loads(VENUES.format(origin=origin))
    raw["venues"]["beta"]["profile"] |= beta_profile
    return parse_cluster(raw, source="test config")


def basket(name: str) -> BasketSpec:
    """The basket, under a fresh id starting with `name`."""
    return load_basket(BASKET.format(basket_id=f"{name}-{time.time_ns() % 10**8}"))


def venue_started_ns(engine: Engine, venue: str) -> int:
    """When a live simulated venue started: the instant its profile's outages count from."""
    started = ray.get(engine.venues[venue].sim_started_ns.remote())
    assert started is not None, f"venue {venue} is not simulated"
    return started


def fired_ns(report: BasketReport) -> int:
    """The basket's fire instant: its first coordinator tick, the timeline's first point (live,
    a scheduled call: a millisecond or so late at most)."""
    assert report.timeline is not None and report.timeline.points, report.reason
    return report.timeline.points[0].ts_ns


def backtest(
    spec: BasketSpec,
    config: ClusterConfig,
    live: BasketReport,
    started_ns: int,
    cancel_after_ns: int | None = None,
) -> RunResult:
    """The backtest of `spec` with its venues started at `started_ns` and its legs firing when
    the live ones did (`cancel_after_ns`: cancelled that long after). Live, the legs fire once
    their actors are armed (seconds after the basket arrives); the backtest fires its own
    modelled lead after: a first run measures that lead, the second arrives that early."""

    def run(arrive_ns: int, cancel_at_ns: int | None = None) -> RunResult:
        return run_once(
            spec,
            check_venues(config.venues),
            ExecutionMode.COORDINATED,
            0,  # seed 0 keeps the configured market seed
            risk=config.risk,
            start_ns=started_ns,
            arrive_ns=arrive_ns,
            cancel_at_ns=cancel_at_ns,
        )

    fire = fired_ns(live)
    lead = run(live.submitted_ns).fire_ns - live.submitted_ns
    result = run(fire - lead, None if cancel_after_ns is None else fire + cancel_after_ns)
    assert result.fire_ns == fire, (result.fire_ns, fire)
    return result


def wait_until(handle: BasketHandle, holds: Callable[[BasketStatus], bool], what: str) -> None:
    """Block until a snapshot of the running basket satisfies `holds` (bounded: 60 s)."""
    seen = next(
        (
            s
            for s in handle.progress(every_s=0.05, timeout=60)
            if s.state is BasketState.RUNNING and holds(s)
        ),
        None,
    )
    assert seen is not None, f"the basket never {what}"


def no_leg_open(report: BasketReport) -> bool:
    """Every leg reconciled with its venue and none of its orders still working."""
    return all(
        leg.reconciled and all(c.status.is_terminal and not c.unknown for c in leg.child_orders)
        for leg in report.legs
    )


def test_backtest_agrees_with_the_live_engine_on_the_same_market() -> None:
    config = config_with()
    spec = basket("agree")
    with Engine.start(config, namespace=NAMESPACE) as engine:
        started = venue_started_ns(engine, "beta")
        live = engine.submit(spec).result(timeout=120)
    assert live.status is BasketState.COMPLETED, live.reason
    sim = backtest(spec, config, live, started).report
    assert sim.status is BasketState.COMPLETED, sim.reason
    for a, b in zip(live.legs, sim.legs, strict=True):
        assert a.leg_id == b.leg_id
        assert a.filled_qty == b.filled_qty == a.original_qty
        gap_bps = abs(float(a.avg_price) / float(b.avg_price) - 1) * 1e4
        assert gap_bps < 3.0, (a.leg_id, a.avg_price, b.avg_price)
    assert live.tca is not None and sim.tca is not None
    assert abs(live.tca["shortfall_bps"] - sim.tca["shortfall_bps"]) < 2.0
    fees = [t["parts"]["fees_usd"] / t["gross_notional_usd"] * 1e4 for t in (live.tca, sim.tca)]
    assert abs(fees[0] - fees[1]) < 0.2


def test_a_reject_storm_fails_the_basket_at_launch_and_unwinds_it_both_ways() -> None:
    """beta refuses every order (`reject_rate = 1.0`): the btc leg's first order is refused,
    the basket FAILS at launch naming it, and under `unwind` the eth leg trades its launch
    slice back.

    Compared exactly, with no tolerance: the status, the failed leg and the reason's words
    up to the venue's message (live it comes through the Binance wire, which adds its own
    error code), each leg's net filled quantity (0), and that no leg is left open. None of
    these depends on a price or on when an order landed, only on the runners' decisions.
    What eth unwound is not compared: its launch slice, an IOC, may miss the touch live when
    it lands late on a loaded machine (then there is nothing to unwind); in the backtest it
    fills, and is traded back.
    """
    config = config_with(reject_rate=1.0)
    spec = basket("storm")
    with Engine.start(config, namespace=NAMESPACE) as engine:
        started = venue_started_ns(engine, "beta")
        live = engine.submit(spec).result(timeout=120)
        held = {v: engine.venue_stat(v, "positions") for v in engine.venues}
    sim = backtest(spec, config, live, started).report

    assert all(q == 0 for positions in held.values() for q in positions.values()), held
    # Live ids carry the run's tag (`<basket>.<tag>-…`), the backtest's the bare basket id.
    refused = re.compile(
        rf"leg btc failed at launch: first order {re.escape(spec.basket_id)}(\.[0-9a-z]+)?"
        r"-btc-0 rejected: "
    )
    for report in (live, sim):
        assert report.status is BasketState.FAILED, report.reason
        assert refused.match(report.reason), report.reason
        assert "rejected by beta (injected reject)" in report.reason, report.reason
        legs = {leg.leg_id: leg for leg in report.legs}
        assert legs["btc"].status is LegStatus.FAILED and legs["btc"].rejects, legs["btc"]
        assert legs["eth"].status is LegStatus.RECONCILED, legs["eth"]
        assert no_leg_open(report), report.legs
    for a, b in zip(live.legs, sim.legs, strict=True):
        assert (a.leg_id, a.status) == (b.leg_id, b.status)
        assert a.filled_qty == b.filled_qty == 0, (a.leg_id, a.filled_qty, b.filled_qty)
    assert sim.legs[0].unwound_qty > 0, sim.legs[0]  # eth's launch slice filled, went back


def test_a_cancelled_basket_unwinds_to_flat_both_ways() -> None:
    """The user cancels a few slices in: live through the engine's handle once eth has filled
    four slices (1.5 s after the fire), in the backtest at the same instant after its fire.
    Under `unwind` both end CANCELLED, every leg traded back to flat and reconciled.

    Compared exactly: the status and reason, each leg's net filled quantity (0), and that
    no leg is left open. What each leg unwound (the slices it filled before the cancel)
    agrees within one slice: the cancel comes a status poll (50 ms) or so after the fourth
    slice, 450 ms before the fifth, so the same slices precede it both ways; but a live
    slice landing late on a loaded machine may miss the touch and be sent again later,
    which can leave one slice on the other side of the cancel. A cancel at a wrong instant
    (a second off is two slices) would be outside.
    """
    config = config_with()
    spec = basket("cancel")
    with Engine.start(config, namespace=NAMESPACE) as engine:
        started = venue_started_ns(engine, "beta")
        handle = engine.submit(spec)
        wait_until(
            handle,
            lambda s: any(p.leg_id == "eth" and p.filled_qty >= 1 for p in s.legs),
            "filled four slices of eth",
        )
        handle.cancel()
        live = handle.result(timeout=120)
        held = {v: engine.venue_stat(v, "positions") for v in engine.venues}
    assert live.status is BasketState.CANCELLED, live.reason
    # The run ended when the cancel came: its timeline's last point.
    assert live.timeline is not None
    cancelled_after = live.timeline.points[-1].ts_ns - fired_ns(live)
    sim = backtest(spec, config, live, started, cancel_after_ns=cancelled_after).report

    assert all(q == 0 for positions in held.values() for q in positions.values()), held
    for report in (live, sim):
        assert report.status is BasketState.CANCELLED, report.reason
        assert report.reason == "cancelled by the user", report.reason
        assert no_leg_open(report), report.legs
    for a, b in zip(live.legs, sim.legs, strict=True):
        assert a.leg_id == b.leg_id
        assert a.filled_qty == b.filled_qty == 0, (a.leg_id, a.filled_qty, b.filled_qty)
        one_slice = b.child_orders[0].quantity
        assert abs(a.unwound_qty - b.unwound_qty) <= one_slice, (a.unwound_qty, b.unwound_qty)
        assert b.unwound_qty > 0, b
        assert a.status is b.status is LegStatus.RECONCILED


def test_a_venue_outage_blocks_its_leg_and_both_ways_end_alike() -> None:
    """beta is down (HTTP 503) for 2 s, 2.75 s into the basket's 8 s horizon. The btc leg's
    orders meanwhile are turned away (not rejects: an outage says nothing of the order, so
    they do not count towards giving up); the synchronizer holds eth back; once beta is back
    both legs catch up and the basket COMPLETES.

    An outage counts from its venue's start, which live is the engine's: the live basket is
    given a start instant 15 s after beta started (its leg actors are armed by then even on
    a cold start on a loaded machine: ~3 s warm, 8-12 s cold under load), and the backtest's
    venues start when the live ones did. Compared: the status (exactly); filled quantities
    (exactly: both complete, on the lot grid); the refused orders: on beta only, all turned
    away, each sent inside the outage (or up to 100 ms before it, a loaded machine's
    latency, reaching beta inside it), and due at the same points of the slice schedule
    both ways (the window's edges are 250 ms from the slices' 500 ms grid, far beyond the
    milliseconds by which a live order is late; points, not client order ids: a live slice
    that lands late may miss the touch and be sent again, which numbers the later orders
    one higher).
    """
    start_after_s, down_after_s, down_for_s = 15.0, 17.75, 2.0
    config = config_with(outages=[{"start_s": down_after_s, "duration_s": down_for_s}])
    spec = basket("outage")
    with Engine.start(config, namespace=NAMESPACE) as engine:
        started = venue_started_ns(engine, "beta")
        params = msgspec.structs.replace(spec.params, start=started + int(start_after_s * NS))
        spec = msgspec.structs.replace(spec, params=params)
        live = engine.submit(spec).result(timeout=120)
    fire = fired_ns(live)
    down = (started + int(down_after_s * NS), started + int((down_after_s + down_for_s) * NS))
    assert fire < down[0] - NS, (
        f"the legs fired {(fire - started) / NS:.1f} s after beta started: too late for its "
        f"outage at {down_after_s} s to fall inside the horizon"
    )
    sim = backtest(spec, config, live, started).report

    slice_ns = int(spec.params.slice_s * NS)
    due: list[set[int]] = []
    for report in (live, sim):
        assert report.status is BasketState.COMPLETED, report.reason
        legs = {leg.leg_id: leg for leg in report.legs}
        assert not legs["eth"].rejects, legs["eth"].rejects
        turned = [c for c in legs["btc"].child_orders if c.reject is not None]
        assert turned, "no order of the btc leg met the outage"
        for c in turned:
            assert c.turned_away and c.reject.startswith("VENUE_UNAVAILABLE"), c
            assert down[0] - 100_000_000 <= c.sent_ns < down[1], (c, down)
        due.append({round((c.sent_ns - fire) / slice_ns) for c in turned})
    assert due[0] == due[1], due
    for a, b in zip(live.legs, sim.legs, strict=True):
        assert a.leg_id == b.leg_id
        assert a.filled_qty == b.filled_qty == a.original_qty, (a.leg_id, a.filled_qty)
