"""The basket's pure core: stale snapshots, launch, failures, the synchronizer, exposure, done."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import numpy as np
import pytest

from actors.basket import (
    HEDGE_MIN_CHANGE_USD,
    RESTING_FILLS_BASE,
    RESTING_FILLS_MAX,
    RESTING_STEP_MAX_SLICES,
    RESTING_STEP_SLICES,
    AllDone,
    BasketCoordinator,
    BasketEffect,
    ExposureChanged,
    Launched,
    LegFailed,
    resting_steps,
)
from actors.messages import LegProgress, LegStatus
from actors.risk import RiskModel
from actors.schedule import Mode
from actors.spec import (
    BasketSpec,
    ChildStyle,
    ExecutionParams,
    LegSpec,
    ResolvedBasket,
    validate,
)
from actors.sync import AdjustLeg
from venues.model import Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
MS = 1_000_000
START = 1_700_000_000_000_000_000
RISK = RiskModel.from_calibration()
INSTRUMENTS = {
    "alpha": {s: SYNTHETIC_INSTRUMENTS[s] for s in ("ETHUSDT", "BTCUSDT")},
    "beta": {s: SYNTHETIC_INSTRUMENTS[s] for s in ("BTCUSDT", "STETHUSDT")},
}
MIDS = {"ETHUSDT": D(2600), "BTCUSDT": D(60000), "STETHUSDT": D("2597.4")}
PRICES = {(v, s): MIDS[s] for v, listed in INSTRUMENTS.items() for s in listed}
BAND = 0.1


def resolved(band: float = BAND, style: ChildStyle = ChildStyle.TWAP) -> ResolvedBasket:
    """Long 10 ETH on alpha against short 0.4 BTC on beta, over 300 s in slices of 10 s."""
    spec = BasketSpec(
        basket_id="b1",
        legs=[
            LegSpec(leg_id="eth", venue="alpha", symbol="ETHUSDT", side=Side.BUY, quantity=D(10)),
            LegSpec(
                leg_id="btc", venue="beta", symbol="BTCUSDT", side=Side.SELL, quantity=D("0.4")
            ),
        ],
        params=ExecutionParams(horizon_s=300, band=band, grace_s=30, child_style=style),
    )
    return validate(spec, INSTRUMENTS, prices=PRICES)


BASKET = resolved()
LEGS = {leg.leg_id: leg for leg in BASKET.legs}


class FakeClock:
    """The basket's time axis, moved by hand (a few ms at a time: the schedule stays near 0)."""

    def __init__(self, now_ns: int = START) -> None:
        self.now_ns = now_ns

    def advance(self, ns: int = MS) -> int:
        self.now_ns += ns
        return self.now_ns


class Legs:
    """Each leg's next snapshot, with its sequence number advanced as a leg actor would."""

    def __init__(self) -> None:
        self.seq = dict.fromkeys(LEGS, 0)

    def __call__(
        self,
        leg_id: str,
        filled: str = "0",
        *,
        status: LegStatus = LegStatus.WORKING,
        open_qty: str = "0",
        seq: int | None = None,
        **kw: object,
    ) -> LegProgress:
        if seq is None:
            self.seq[leg_id] += 1
            seq = self.seq[leg_id]
        leg = LEGS[leg_id]
        return LegProgress(
            basket_id="b1",
            leg_id=leg_id,
            seq=seq,
            side=leg.side,
            target_qty=leg.quantity,
            filled_qty=D(filled),
            avg_price=None,
            open_qty=D(open_qty),
            status=status,
            ts_ns=0,
            mark_price=leg.price,
            **kw,  # type: ignore[arg-type]
        )


def of(kind: type, effects: list[BasketEffect]) -> list:
    return [e for e in effects if isinstance(e, kind)]


def coordinator(
    basket: ResolvedBasket = BASKET, **kw: object
) -> tuple[BasketCoordinator, FakeClock, Legs]:
    clock = FakeClock()
    return BasketCoordinator(basket, START, RISK, **kw), clock, Legs()  # type: ignore[arg-type]


def launched(basket: ResolvedBasket = BASKET) -> tuple[BasketCoordinator, FakeClock, Legs]:
    c, clock, legs = coordinator(basket)
    for leg in LEGS:
        c.on_progress(legs(leg, first_ack=True), clock.advance())
    assert c.launched_ns is not None
    return c, clock, legs


# -- snapshots --------------------------------------------------------------------------------


def test_a_stale_snapshot_is_ignored() -> None:
    c, clock, legs = coordinator()
    newer = legs("eth", "3", seq=5)
    c.on_progress(newer, clock.advance())
    for seq in (4, 5):
        assert c.on_progress(legs("eth", "1", seq=seq), clock.advance()) == []
        assert c.legs["eth"] is newer
    assert c.on_progress(legs("eth", "4", seq=6), clock.advance()) != []
    assert c.legs["eth"].filled_qty == D(4)


def test_a_snapshot_of_a_leg_not_in_the_basket_is_ignored() -> None:
    c, clock, legs = coordinator()
    stranger = msgspec.structs.replace(legs("eth", "3"), leg_id="sol")
    assert c.on_progress(stranger, clock.advance()) == []
    assert set(c.legs) == {"eth", "btc"}


def test_launched_once_every_leg_has_its_first_ack() -> None:
    c, clock, legs = coordinator()
    assert of(Launched, c.on_progress(legs("eth", first_ack=True), clock.advance())) == []
    assert of(Launched, c.on_progress(legs("btc"), clock.advance())) == []
    t = clock.advance()
    assert of(Launched, c.on_progress(legs("btc", first_ack=True), t)) == [Launched(ts_ns=t)]
    assert c.launched_ns == t
    for leg in LEGS:
        assert of(Launched, c.on_progress(legs(leg, "1", first_ack=True), clock.advance())) == []
    assert of(Launched, c.tick(clock.advance())) == []


# -- failures ---------------------------------------------------------------------------------


def test_a_leg_failing_before_launch_fails_at_launch() -> None:
    c, clock, legs = coordinator()
    c.on_progress(legs("eth", first_ack=True), clock.advance())
    t = clock.advance()
    effects = c.on_progress(legs("btc", status=LegStatus.FAILED, reason="first order rejected"), t)
    assert of(LegFailed, effects) == [
        LegFailed(leg_id="btc", reason="first order rejected", at_launch=True, ts_ns=t)
    ]
    # Reported once, however many failed snapshots follow.
    again = c.on_progress(legs("btc", status=LegStatus.FAILED, reason="x"), clock.advance())
    assert of(LegFailed, again) == []


def test_a_leg_failing_after_launch_is_not_at_launch() -> None:
    c, clock, legs = launched()
    t = clock.advance()
    effects = c.on_progress(legs("eth", "2", status=LegStatus.FAILED, first_ack=True), t)
    assert of(LegFailed, effects) == [
        LegFailed(leg_id="eth", reason="failed", at_launch=False, ts_ns=t)
    ]


# -- synchronizer -----------------------------------------------------------------------------


def test_a_leg_ahead_by_more_than_the_band_pauses() -> None:
    c, clock, legs = launched()
    c.on_progress(legs("btc", "0.16", first_ack=True), clock.advance())  # 0.4 of the way
    # ETH 0.5 of the way: within the band, and BTC resumes.
    effects = c.on_progress(legs("eth", "5", first_ack=True), clock.advance())
    assert [(a.leg_id, a.mode) for a in of(AdjustLeg, effects)] == [("btc", Mode.NORMAL)]
    t = clock.advance()
    effects = c.on_progress(legs("eth", "5.1", first_ack=True), t)  # 0.51 − 0.4 > 0.1
    pauses = of(AdjustLeg, effects)
    assert [(a.leg_id, a.mode, a.target_qty, a.ts_ns) for a in pauses] == [
        ("eth", Mode.PAUSE, None, t)
    ]
    # The synchronizer emits changes only.
    assert of(AdjustLeg, c.tick(clock.advance())) == []


def test_after_stop_synchronizing_a_leader_is_not_paused() -> None:
    c, clock, legs = launched()
    assert c.stop_synchronizing(clock.advance()) == []  # nobody was held
    effects = c.on_progress(legs("eth", "8", first_ack=True), clock.advance())
    assert of(AdjustLeg, effects) == []
    assert of(AdjustLeg, c.tick(clock.advance())) == []


def test_stopping_the_synchronizer_releases_the_legs_it_held() -> None:
    # A leader paused for a laggard that then fails (policy `complete`) must not stay paused.
    c, clock, legs = launched()
    c.on_progress(legs("btc", "0", first_ack=True), clock.advance())
    paused = of(AdjustLeg, c.on_progress(legs("eth", "5", first_ack=True), clock.advance()))
    assert [(a.leg_id, a.mode) for a in paused] == [("eth", Mode.PAUSE)]
    c.on_progress(legs("btc", status=LegStatus.FAILED), clock.advance())
    t = clock.advance()
    released = c.stop_synchronizing(t)
    assert [(a.leg_id, a.mode, a.ts_ns) for a in released] == [("eth", Mode.NORMAL, t)]
    assert of(AdjustLeg, c.tick(clock.advance())) == []


def test_a_failed_leg_stops_the_synchronizer() -> None:
    c, clock, legs = launched()
    c.on_progress(legs("btc", status=LegStatus.FAILED), clock.advance())
    assert of(AdjustLeg, c.on_progress(legs("eth", "8"), clock.advance())) == []


# -- resting legs (passive) ------------------------------------------------------------------

PASSIVE = resolved(style=ChildStyle.PASSIVE)
SLICE = 10 / 300  # one regular slice of progress
SECOND = 1_000_000_000


def quoting(fills: int, slices: float) -> dict[str, object]:
    """A passive leg's snapshot fields: `fills` of its quotes over `slices` of quoting."""
    return {"maker_fills": fills, "quoted_ns": int(slices * 10 * SECOND)}


def test_a_resting_leg_starts_at_the_base_step_and_widens_as_its_quotes_fill_often() -> None:
    legs = Legs()
    base = RESTING_STEP_SLICES * SLICE
    assert resting_steps(PASSIVE) == {"eth": pytest.approx(base), "btc": pytest.approx(base)}
    assert resting_steps(BASKET) == {}  # twap legs do not rest
    # 20 fills over 19 slices quoted (a slice added: a leg that hardly quoted counts as
    # slow): once a slice, too seldom to widen.
    slow = legs("eth", **quoting(20, 19))
    # 60 fills over 9 slices: 6 a slice, halfway from the base's fills to the ceiling's.
    fast = legs("btc", **quoting(60, 9))
    assert (RESTING_FILLS_BASE + RESTING_FILLS_MAX) / 2 == 6
    steps = resting_steps(PASSIVE, {"eth": slow, "btc": fast})
    wide = (RESTING_STEP_SLICES + RESTING_STEP_MAX_SLICES) / 2
    assert steps == {"eth": pytest.approx(base), "btc": pytest.approx(wide * SLICE)}
    # Never past the ceiling, nor half the band.
    steady = legs("btc", **quoting(200, 9))
    assert resting_steps(PASSIVE, {"btc": steady})["btc"] == pytest.approx(
        RESTING_STEP_MAX_SLICES * SLICE
    )
    assert resting_steps(resolved(band=0.04, style=ChildStyle.PASSIVE), {"btc": steady}) == {
        "eth": pytest.approx(base),
        "btc": pytest.approx(0.02),
    }


@pytest.mark.parametrize(("fills", "crosses"), [(20, True), (200, False)])
def test_a_leg_whose_quotes_fill_often_waits_for_them_where_a_slow_one_crosses(
    fills: int, crosses: bool
) -> None:
    # btc leads eth by 0.6 of a slice: past the base step, inside a fast quote's step.
    c, clock, legs = launched(PASSIVE)
    c.on_progress(legs("btc", "0.08", first_ack=True), clock.advance())
    c.on_progress(legs("eth", "2", first_ack=True, **quoting(fills, 19)), clock.advance())
    assert c.sync.modes == {"eth": Mode.NORMAL, "btc": Mode.NORMAL}  # both at 20 %
    effects = c.on_progress(legs("btc", "0.088", first_ack=True), clock.advance())
    modes = {a.leg_id: (a.mode, a.reach_qty) for a in of(AdjustLeg, effects)}
    if crosses:
        # eth crosses to btc's 22 %; btc's quote is pulled meanwhile (eth's step holds it).
        assert modes == {"eth": (Mode.CATCH_UP, D("2.2")), "btc": (Mode.PAUSE, None)}
    else:
        assert modes == {}


# -- exposure ---------------------------------------------------------------------------------


def exposure_of(c: BasketCoordinator) -> dict[str, float]:
    return RISK.as_mapping(RISK.leg_exposures(c.imbalance(), c.instruments))


def test_a_long_eth_leg_ahead_of_a_flat_btc_short_is_long_eth_exposure() -> None:
    c, clock, legs = launched()
    t = clock.advance()
    changes = of(ExposureChanged, c.on_progress(legs("eth", "3", fill_seen_ns=t - 5), t))
    assert len(changes) == 1
    change = changes[0]
    assert change.exposure == exposure_of(c)
    assert change.exposure["ETH"] == pytest.approx(3 * 2600.0)
    assert change.exposure["BTC"] == 0.0  # the in-step basket is empty: BTC adds nothing
    assert change.exposure["SOL"] == 0.0
    assert change.imbalance_usd == pytest.approx({"eth": 3 * 2600.0, "btc": 0.0})
    assert change.ts_ns == t


def test_a_short_btc_leg_ahead_is_short_btc_exposure() -> None:
    c, clock, legs = launched()
    change = of(ExposureChanged, c.on_progress(legs("btc", "0.1"), clock.advance()))[-1]
    assert change.exposure["BTC"] == pytest.approx(-0.1 * 60000.0)
    assert change.exposure["ETH"] == 0.0
    assert change.exposure == exposure_of(c)


def test_exposure_changes_are_news_only_past_the_minimum_change() -> None:
    c, clock, legs = launched()
    first = of(ExposureChanged, c.on_progress(legs("eth", "3"), clock.advance()))
    assert len(first) == 1
    # The same fill again, then less than HEDGE_MIN_CHANGE_USD of ETH more: no news.
    small = HEDGE_MIN_CHANGE_USD * 0.9 / 2600
    assert of(ExposureChanged, c.on_progress(legs("eth", "3"), clock.advance())) == []
    assert (
        of(ExposureChanged, c.on_progress(legs("eth", f"{3 + small:.6f}"), clock.advance())) == []
    )
    assert of(ExposureChanged, c.tick(clock.advance())) == []
    later = of(ExposureChanged, c.on_progress(legs("eth", "3.5"), clock.advance()))
    assert len(later) == 1
    assert later[0].seq > first[0].seq
    assert later[0].exposure["ETH"] == pytest.approx(3.5 * 2600.0)


def test_exposure_sequence_numbers_increase() -> None:
    c, clock, legs = launched()
    seqs = []
    for filled in ("1", "2", "3", "0.5"):
        for change in of(ExposureChanged, c.on_progress(legs("eth", filled), clock.advance())):
            seqs.append(change.seq)
    assert len(seqs) == 4
    assert seqs == sorted(set(seqs))


def test_the_cause_is_the_newest_fill_any_leg_saw() -> None:
    for first, second in (("eth", "btc"), ("btc", "eth")):
        c, clock, legs = launched()
        t = clock.advance()
        filled = {"eth": "5", "btc": "0.05"}
        c.on_progress(legs(first, filled[first], fill_seen_ns=t), t)
        # The second leg's snapshot arrives last, but its fill is older.
        effects = c.on_progress(legs(second, filled[second], fill_seen_ns=t - 7), clock.advance())
        assert [e.cause_ns for e in of(ExposureChanged, effects)] == [t]


def test_no_fill_seen_means_no_cause() -> None:
    c, clock, _ = coordinator()
    changes = of(ExposureChanged, c.tick(clock.advance()))
    assert [e.cause_ns for e in changes] == [None]
    assert np.allclose(list(changes[0].exposure.values()), 0.0)


def test_without_a_hedge_exposure_is_never_reported() -> None:
    c, clock, legs = coordinator(hedge=False)
    effects = c.tick(clock.advance())
    for leg in LEGS:
        effects += c.on_progress(legs(leg, first_ack=True), clock.advance())
    effects += c.on_progress(legs("eth", "6", fill_seen_ns=1), clock.advance())
    effects += c.tick(clock.advance())
    assert of(ExposureChanged, effects) == []
    assert of(Launched, effects) != []  # the rest of the core still runs


# -- completion -------------------------------------------------------------------------------


def test_all_done_once_every_leg_is_done_with_nothing_open() -> None:
    c, clock, legs = launched()
    c.on_progress(legs("eth", "10", status=LegStatus.DONE), clock.advance())
    # BTC says DONE, but an order of it is still in flight.
    effects = c.on_progress(
        legs("btc", "0.3", status=LegStatus.DONE, open_qty="0.1"), clock.advance()
    )
    assert of(AllDone, effects) == []
    assert c.done_ns is None
    assert (
        of(AllDone, c.on_progress(legs("btc", "0.4", status=LegStatus.WORKING), clock.advance()))
        == []
    )
    t = clock.advance()
    assert of(AllDone, c.on_progress(legs("btc", "0.4", status=LegStatus.DONE), t)) == [
        AllDone(ts_ns=t)
    ]
    assert c.done_ns == t
    assert of(AllDone, c.tick(clock.advance())) == []
    assert (
        of(AllDone, c.on_progress(legs("btc", "0.4", status=LegStatus.RECONCILED), clock.advance()))
        == []
    )
