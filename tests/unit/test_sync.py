"""The synchronizer: leaders pause, laggards catch up, leaders shrink after the grace period."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec
import pytest

from actors.messages import LegProgress, LegStatus
from actors.schedule import Hold, Mode, SliceScheduler, scheduled_fraction
from actors.sync import AdjustLeg, BasketShrunk, Synchronizer
from venues.model import BookTicker, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
SECOND = 1_000_000_000
GRACE = 30 * SECOND
INST = {
    "eth": SYNTHETIC_INSTRUMENTS["ETHUSDT"],
    "btc": SYNTHETIC_INSTRUMENTS["BTCUSDT"],
    "steth": SYNTHETIC_INSTRUMENTS["STETHUSDT"],
}
TARGETS = {"eth": D(10), "btc": D(1), "steth": D(20)}
SIDES = {"eth": Side.BUY, "btc": Side.SELL, "steth": Side.BUY}


def sync(band: float = 0.1, legs: tuple[str, ...] = ("eth", "btc"), **kw: object) -> Synchronizer:
    return Synchronizer(
        {leg: TARGETS[leg] for leg in legs},
        {leg: INST[leg] for leg in legs},
        band,
        GRACE,
        **kw,  # type: ignore[arg-type]
    )


def progress(
    targets: Mapping[str, Decimal] = TARGETS,
    status: Mapping[str, LegStatus] | None = None,
    **fractions: float,
) -> dict[str, LegProgress]:
    """Snapshots with each leg at a completion fraction of its (original) target."""
    return {
        leg: LegProgress(
            basket_id="b1",
            leg_id=leg,
            seq=1,
            side=SIDES[leg],
            target_qty=targets[leg],
            filled_qty=INST[leg].snap_qty(TARGETS[leg] * D(str(p))),
            avg_price=None,
            open_qty=D(0),
            status=(status or {}).get(leg, LegStatus.WORKING),
            ts_ns=0,
        )
        for leg, p in fractions.items()
    }


def adjustments(effects: list) -> dict[str, AdjustLeg]:
    return {e.leg_id: e for e in effects if isinstance(e, AdjustLeg)}


def shrunk(effects: list) -> BasketShrunk | None:
    events = [e for e in effects if isinstance(e, BasketShrunk)]
    assert len(events) <= 1
    return events[0] if events else None


# -- pause and catch up -----------------------------------------------------------------------


def test_a_leader_beyond_the_band_pauses() -> None:
    s = sync(band=0.1)
    effects = s.evaluate(progress(eth=0.5, btc=0.38), 0.4, 0)
    assert [(e.leg_id, e.mode, e.target_qty) for e in effects] == [("eth", Mode.PAUSE, None)]
    assert "btc" in effects[0].reason


def test_a_leader_within_the_band_carries_on() -> None:
    assert sync(band=0.1).evaluate(progress(eth=0.45, btc=0.38), 0.4, 0) == []


def test_a_laggard_behind_the_schedule_by_half_the_band_catches_up() -> None:
    effects = sync(band=0.1).evaluate(progress(eth=0.47, btc=0.38), 0.5, 0)
    assert [(e.leg_id, e.mode) for e in effects] == [("btc", Mode.CATCH_UP)]
    assert "schedule" in effects[0].reason


def test_pausing_outranks_catching_up() -> None:
    # Both legs are behind the schedule; the leader still waits for the laggard.
    modes = adjustments(sync(band=0.1).evaluate(progress(eth=0.5, btc=0.3), 0.8, 0))
    assert modes["eth"].mode is Mode.PAUSE and modes["btc"].mode is Mode.CATCH_UP


def test_only_changes_are_emitted() -> None:
    s = sync(band=0.1)
    snaps = progress(eth=0.5, btc=0.3)
    assert len(s.evaluate(snaps, 0.5, 0)) == 2
    assert s.evaluate(snaps, 0.5, 0) == []
    assert s.evaluate(snaps, 0.5, SECOND) == []  # nothing changed but the time, within grace


def test_legs_resume_normal_when_back_in_band() -> None:
    s = sync(band=0.1)
    s.evaluate(progress(eth=0.5, btc=0.3), 0.5, 0)
    assert s.modes == {"eth": Mode.PAUSE, "btc": Mode.CATCH_UP}
    # Closing in, but not yet halfway into the band: no flapping at its edge.
    assert s.evaluate(progress(eth=0.5, btc=0.43), 0.5, SECOND) == []
    effects = adjustments(s.evaluate(progress(eth=0.5, btc=0.47), 0.48, 2 * SECOND))
    assert {leg: e.mode for leg, e in effects.items()} == {"eth": Mode.NORMAL, "btc": Mode.NORMAL}
    assert all(e.target_qty is None for e in effects.values())


def test_a_finished_leg_is_left_alone() -> None:
    s = sync(band=0.1)
    assert s.evaluate(progress(eth=1.0, btc=1.0), 1.0, 0) == []


# -- shrink -----------------------------------------------------------------------------------


def test_the_leaders_shrink_after_the_grace_period_and_not_before() -> None:
    s = sync(band=0.1)
    snaps = progress(eth=0.5, btc=0.3)  # btc 0.3 behind the schedule at 0.6; eth waits
    s.evaluate(snaps, 0.6, 0)
    assert s.evaluate(snaps, 0.6, GRACE) == []  # exactly the grace period: not longer
    effects = s.evaluate(snaps, 0.6, GRACE + 1)
    event = shrunk(effects)
    assert event is not None
    # btc trades at half the schedule's pace: it can reach half the basket by the end.
    assert event.fraction == pytest.approx(0.5) and event.previous_fraction == 1.0
    assert event.laggards == ["btc"]
    assert event.targets == {"eth": D(5), "btc": D("0.5")}
    assert event.shortfall_qty == {"eth": D(5), "btc": D("0.5")}
    assert event.excess_qty == {}
    cuts = adjustments(effects)
    assert cuts["eth"].target_qty == D(5) and cuts["btc"].target_qty == D("0.5")
    assert cuts["btc"].mode is Mode.NORMAL  # 0.3 of 0.5 is on the schedule again
    assert s.targets == {"eth": D(5), "btc": D("0.5")}
    # Idempotent: the same inputs again change nothing.
    assert s.evaluate(progress(s.targets, eth=0.5, btc=0.3), 0.6, GRACE + 1) == []


def test_a_laggard_that_recovers_within_the_grace_period_starts_the_clock_again() -> None:
    s = sync(band=0.1)
    s.evaluate(progress(eth=0.5, btc=0.3), 0.6, 0)
    s.evaluate(progress(eth=0.5, btc=0.45), 0.6, GRACE // 2)  # only 0.15 behind, but...
    s.evaluate(progress(eth=0.5, btc=0.46), 0.5, GRACE // 2 + 1)  # ...now within the band
    assert shrunk(s.evaluate(progress(eth=0.5, btc=0.3), 0.6, GRACE + 1)) is None
    assert shrunk(s.evaluate(progress(eth=0.5, btc=0.3), 0.6, 2 * GRACE + 2)) is not None


def test_a_basket_slow_as_a_whole_does_not_shrink() -> None:
    s = sync(band=0.1)
    snaps = progress(eth=0.3, btc=0.28)  # both far behind the schedule, in step together
    effects = s.evaluate(snaps, 0.6, 0)
    assert {e.mode for e in effects} == {Mode.CATCH_UP}
    assert s.evaluate(snaps, 0.6, 10 * GRACE) == []


def test_a_blocked_laggard_shrinks_the_basket_to_its_fills_after_grace() -> None:
    s = sync(band=0.1, legs=("eth", "btc", "steth"))
    snaps = progress(eth=0.3, btc=0.3, steth=0.2)
    blocked = {"steth": True}
    s.evaluate(snaps, 0.25, 0, blocked)  # steth is not even behind the schedule
    assert shrunk(s.evaluate(snaps, 0.25, GRACE, blocked)) is None
    event = shrunk(s.evaluate(snaps, 0.25, GRACE + 1, blocked))
    assert event is not None
    assert event.fraction == pytest.approx(0.2)
    assert "steth blocked" in event.reason
    assert event.targets == {"eth": D(3), "btc": D("0.3"), "steth": D(4)}
    # The leaders are past the in-ratio size: they keep their fills and the excess is reported.
    assert event.excess_qty == {"eth": D(1), "btc": D("0.1")}
    assert event.shortfall_qty["steth"] == D(16)


def test_a_failed_leg_counts_as_blocked() -> None:
    s = sync(band=0.1)
    snaps = progress(status={"btc": LegStatus.FAILED}, eth=0.3, btc=0.2)
    s.evaluate(snaps, 0.25, 0)
    event = shrunk(s.evaluate(snaps, 0.25, GRACE + 1))
    assert event is not None and event.targets["btc"] == D("0.2")


def test_a_shrink_keeps_the_basket_in_ratio() -> None:
    s = sync(band=0.1, legs=("eth", "btc", "steth"))
    # A blocked leader: the others can still reach its fraction, so the basket ends in ratio.
    snaps = progress(eth=0.25, btc=0.2, steth=0.3)
    s.evaluate(snaps, 0.3, 0, {"steth": True})
    event = shrunk(s.evaluate(snaps, 0.3, GRACE + 1, {"steth": True}))
    assert event is not None and event.excess_qty == {}
    ratios = {leg: t / TARGETS[leg] for leg, t in event.targets.items()}
    assert set(ratios.values()) == {D("0.3")}
    # Once every leg fills its new target, every leg is complete and the same share of the
    # original basket: p equal (1.0) against the cut targets, and 0.3 against the original.
    done = progress(s.targets, eth=0.3, btc=0.3, steth=0.3)
    assert {leg: snap.progress for leg, snap in done.items()} == dict.fromkeys(TARGETS, 1.0)
    assert s.evaluate(done, 0.9, 2 * GRACE, {"steth": True}) == []


def test_a_slow_laggard_shrinks_the_basket_to_its_pace_in_ratio() -> None:
    s = sync(band=0.1, legs=("eth", "btc", "steth"))
    snaps = progress(eth=0.18, btc=0.1, steth=0.19)  # btc at 0.1 with the schedule at 0.25
    s.evaluate(snaps, 0.25, 0)
    event = shrunk(s.evaluate(snaps, 0.25, GRACE + 1))
    assert event is not None and event.fraction == pytest.approx(0.4)
    assert {leg: t / TARGETS[leg] for leg, t in event.targets.items()} == dict.fromkeys(
        TARGETS, D("0.4")
    )
    # The laggard's cut target puts it back on the schedule.
    assert s.progress_of("btc", D("0.1")) == pytest.approx(0.25)


def test_a_shrink_never_cuts_below_what_a_leader_holds() -> None:
    s = sync(band=0.1)
    snaps = progress(eth=0.55, btc=0.3)  # btc's pace reaches 0.5, but eth already has 0.55
    s.evaluate(snaps, 0.6, 0)
    event = shrunk(s.evaluate(snaps, 0.6, GRACE + 1))
    assert event is not None
    # Cutting to 0.5 would strand eth's extra 0.05 for good: btc is asked to reach 0.55.
    assert event.fraction == pytest.approx(0.55)
    assert event.targets == {"eth": D("5.5"), "btc": D("0.55")}
    assert event.excess_qty == {}


def test_a_blocked_laggard_cuts_below_the_leaders_and_reports_their_excess() -> None:
    s = sync(band=0.1)
    snaps = progress(eth=0.55, btc=0.3)
    s.evaluate(snaps, 0.6, 0, {"btc": True})
    event = shrunk(s.evaluate(snaps, 0.6, GRACE + 1, {"btc": True}))
    assert event is not None
    assert event.targets == {"eth": D("5.5"), "btc": D("0.3")}  # never below eth's fills
    assert event.excess_qty == {"eth": D("2.5")}


def test_cut_targets_snap_down_to_the_lot() -> None:
    s = Synchronizer(
        {"eth": D("10.007"), "btc": D("1.003")}, {"eth": INST["eth"], "btc": INST["btc"]}, 0.1, 0
    )
    zero = progress(eth=0.0, btc=0.0)
    snaps = {
        "eth": msgspec.structs.replace(zero["eth"], filled_qty=D(1)),
        "btc": msgspec.structs.replace(zero["btc"], filled_qty=D("0.123")),
    }
    s.evaluate(snaps, 0.2, 0, {"btc": True})
    event = shrunk(s.evaluate(snaps, 0.2, 1, {"btc": True}))
    assert event is not None
    assert event.targets["btc"] == D("0.123")
    assert event.targets["eth"] == INST["eth"].snap_qty(D("10.007") * D("0.123") / D("1.003"))
    assert all(INST[leg].on_lot(t) for leg, t in event.targets.items())


def test_a_second_shrink_needs_a_second_grace_period() -> None:
    s = sync(band=0.1)
    s.evaluate(progress(eth=0.5, btc=0.3), 0.6, 0)
    assert shrunk(s.evaluate(progress(eth=0.5, btc=0.3), 0.6, GRACE + 1)) is not None
    # btc (target now 0.5) stalls and is blocked: another grace period before the next cut.
    snaps = progress(s.targets, eth=0.5, btc=0.35)
    s.evaluate(snaps, 0.8, GRACE + 2, {"btc": True})
    assert shrunk(s.evaluate(snaps, 0.8, 2 * GRACE + 2, {"btc": True})) is None
    event = shrunk(s.evaluate(snaps, 0.8, 2 * GRACE + 3, {"btc": True}))
    assert event is not None
    assert event.previous_fraction == pytest.approx(0.5)
    assert event.fraction == pytest.approx(0.35)
    assert event.targets["btc"] == D("0.35")


# -- the risk band ----------------------------------------------------------------------------


def test_risk_band_pauses_leaders_and_speeds_the_slowest_above_the_limit() -> None:
    risk = {"usd": 0.0}
    s = sync(band=None, risk_limit_usd=1_000.0, risk_of=lambda _: risk["usd"])
    snaps = progress(eth=0.5, btc=0.3)  # btc on the schedule; no completion band to break
    assert s.evaluate(snaps, 0.3, 0) == []
    risk["usd"] = 1_500.0
    effects = adjustments(s.evaluate(snaps, 0.3, SECOND))
    assert effects["eth"].mode is Mode.PAUSE and effects["btc"].mode is Mode.CATCH_UP
    assert "$1,500" in effects["eth"].reason
    risk["usd"] = 700.0  # under the limit, above half of it: hold on
    assert s.evaluate(snaps, 0.3, 2 * SECOND) == []
    risk["usd"] = 400.0
    effects = adjustments(s.evaluate(snaps, 0.3, 3 * SECOND))
    assert {leg: e.mode for leg, e in effects.items()} == {"eth": Mode.NORMAL, "btc": Mode.NORMAL}


def test_risk_band_shrinks_when_the_slowest_cannot_bring_the_risk_down() -> None:
    s = sync(band=None, risk_limit_usd=1_000.0, risk_of=lambda _: 2_000.0)
    snaps = progress(eth=0.5, btc=0.3)
    s.evaluate(snaps, 0.6, 0)
    assert shrunk(s.evaluate(snaps, 0.6, GRACE)) is None
    event = shrunk(s.evaluate(snaps, 0.6, GRACE + 1))
    assert event is not None and event.laggards == ["btc"]
    assert event.fraction == pytest.approx(0.5)


def test_configuration_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="band"):
        Synchronizer({"eth": D(1)}, {"eth": INST["eth"]}, 1.5, GRACE)
    with pytest.raises(ValueError, match="exactly one"):
        Synchronizer({"eth": D(1)}, {"eth": INST["eth"]}, 0.1, GRACE, risk_limit_usd=10.0)
    with pytest.raises(ValueError, match="risk_of"):
        Synchronizer({"eth": D(1)}, {"eth": INST["eth"]}, None, GRACE, risk_limit_usd=10.0)
    with pytest.raises(ValueError, match="instruments"):
        Synchronizer({"eth": D(1)}, {}, 0.1, GRACE)


# -- the two cores together -------------------------------------------------------------------


def test_a_thin_leg_holds_the_basket_in_step_and_shrinks_it_in_ratio() -> None:
    """Three legs on a fake clock; steth's book refills only 0.25 stETH between slices."""
    horizon, slice_ns = 300 * SECOND, 10 * SECOND
    books = {
        "eth": BookTicker(venue="a", symbol="ETHUSDT", bid=D("2000.00"), bid_qty=D(50),
                          ask=D("2000.01"), ask_qty=D(50), ts_ns=0),
        "btc": BookTicker(venue="b", symbol="BTCUSDT", bid=D("100000.0"), bid_qty=D(5),
                          ask=D("100000.1"), ask_qty=D(5), ts_ns=0),
        "steth": BookTicker(venue="c", symbol="STETHUSDT", bid=D("1998.00"), bid_qty=D(50),
                            ask=D("1998.01"), ask_qty=D(50), ts_ns=0),
    }  # fmt: skip
    liquidity = {"eth": D(1000), "btc": D(1000), "steth": D("0.25")}  # per slice interval
    legs = ("eth", "btc", "steth")
    scheds = {
        leg: SliceScheduler(
            "b1",
            leg,
            INST[leg],
            SIDES[leg],
            TARGETS[leg],
            0,
            horizon,
            slice_ns,
            25.0,
            0.5,
            max_child_fraction=0.05,
        )
        for leg in legs
    }
    s = sync(band=0.1, legs=legs)
    filled = dict.fromkeys(legs, D(0))
    max_skew = 0.0
    events: list[BasketShrunk] = []
    for step in range(int(2 * horizon / slice_ns)):
        now = step * slice_ns
        snaps = {
            leg: LegProgress(basket_id="b1", leg_id=leg, seq=step, side=SIDES[leg],
                             target_qty=scheds[leg].target_qty, filled_qty=filled[leg],
                             avg_price=None, open_qty=D(0), status=LegStatus.WORKING, ts_ns=now)
            for leg in legs
        }  # fmt: skip
        frac = float(scheduled_fraction(now, 0, horizon))
        effects = s.evaluate(snaps, frac, now, {leg: scheds[leg].blocked for leg in legs})
        for effect in effects:
            if isinstance(effect, BasketShrunk):
                events.append(effect)
            elif effect.target_qty is not None:
                scheds[effect.leg_id].shrink(effect.target_qty, filled[effect.leg_id])
        for leg in legs:
            child = scheds[leg].next_slice(now, filled[leg], books[leg], D(1000), s.modes[leg])
            if child is not None:
                filled[leg] += min(child.order.quantity, liquidity[leg])
        p = [float(filled[leg] / TARGETS[leg]) for leg in legs]
        max_skew = max(max_skew, max(p) - min(p))
        if now == horizon:
            assert all(scheds[leg].hold is Hold.DONE for leg in legs)
    assert events, "the thin leg should have shrunk the basket"
    assert max_skew <= 0.1 + 0.05  # the band, plus at most one child order past it
    # stETH's 0.25 a slice over 30 slices is 7.5 of 20: the whole basket ends at 37.5 %.
    assert {filled[leg] / TARGETS[leg] for leg in legs} == {D("0.375")}
    assert filled == s.targets
