"""The child-order scheduler: TWAP slices, participation, snapping, ids and the slippage cap."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.schedule import (
    MAX_RESENDS,
    Hold,
    Mode,
    SendChildOrder,
    SliceScheduler,
    scheduled_fraction,
)
from actors.spec import MAX_CLIENT_ORDER_ID_LEN
from venues.model import BookTicker, Instrument, OrderType, Side, TimeInForce
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

D = Decimal
SECOND = 1_000_000_000
ETH = SYNTHETIC_INSTRUMENTS["ETHUSDT"]  # tick 0.01, lot 0.001, min notional 20
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001, min notional 100
FLOOD = D(1_000_000)  # market volume that never binds the participation cap
ZERO = D(0)


def book(bid: str | Decimal, ask: str | Decimal, inst: Instrument = ETH) -> BookTicker:
    return BookTicker(
        venue="sim", symbol=inst.symbol, bid=D(bid), bid_qty=D(5), ask=D(ask), ask_qty=D(5), ts_ns=0
    )


ETH_BOOK = book("2000.00", "2000.01")


def scheduler(
    side: Side = Side.BUY,
    target: str = "1",
    *,
    inst: Instrument = ETH,
    horizon_s: int = 100,
    slice_s: int = 10,
    bps: float = 25.0,
    cap: float = 0.1,
    synchronized: bool = False,
) -> SliceScheduler:
    return SliceScheduler(
        "b1",
        "eth",
        inst,
        side,
        D(target),
        0,
        horizon_s * SECOND,
        slice_s * SECOND,
        bps,
        cap,
        synchronized=synchronized,
    )


def at(s: float) -> int:
    return int(s * SECOND)


# -- the TWAP schedule ------------------------------------------------------------------------


def test_cumulative_schedule_is_linear_in_time_and_clamped() -> None:
    sched = scheduler(target="1")
    assert sched.scheduled_qty(-at(5)) == 0
    assert sched.scheduled_qty(0) == 0
    assert sched.scheduled_qty(at(25)) == D("0.25")
    assert sched.scheduled_qty(at(100)) == 1
    assert sched.scheduled_qty(at(500)) == 1
    assert scheduled_fraction(at(40), 0, at(100)) == D("0.4")


def test_slices_follow_the_schedule_one_per_interval_from_the_start() -> None:
    sched = scheduler(target="1")
    filled = ZERO
    for k in range(10):
        now = at(10 * k)
        child = sched.next_slice(now, filled, ETH_BOOK, FLOOD, Mode.NORMAL)
        assert child is not None, (k, sched.hold)
        # Slice k brings the leg to the schedule at the end of its interval.
        assert child.order.quantity == D("0.1")
        filled += child.order.quantity
        assert filled == sched.scheduled_qty(now + at(10))
        assert sched.next_due_ns == now + at(10)
        # Within the interval nothing more is due, even when behind.
        assert sched.next_slice(now + at(5), ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is None
        assert sched.hold is Hold.NOT_DUE
    assert sched.next_slice(at(100), filled, ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.DONE


def test_nothing_before_the_start() -> None:
    sched = SliceScheduler("b1", "eth", ETH, Side.BUY, D(1), at(10), at(100), at(10), 25.0, 0.1)
    assert sched.next_slice(at(9), ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.NOT_STARTED
    assert sched.next_slice(at(10), ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None


def test_what_did_not_fill_is_carried_to_the_next_slice() -> None:
    sched = scheduler(target="1")
    first = sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    assert first is not None and first.order.quantity == D("0.1")
    # The IOC took 0.04 and the rest expired: slice 1 aims at 0.2 cumulative.
    second = sched.next_slice(at(10), D("0.04"), ETH_BOOK, FLOOD, Mode.NORMAL)
    assert second is not None and second.order.quantity == D("0.16")


def test_open_quantity_counts_against_the_slice() -> None:
    sched = scheduler(target="1")
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None
    child = sched.next_slice(at(10), D("0.05"), ETH_BOOK, FLOOD, Mode.NORMAL, open_qty=D("0.05"))
    assert child is not None and child.order.quantity == D("0.1")


def test_ahead_of_the_schedule_sends_nothing() -> None:
    sched = scheduler(target="1")
    assert sched.next_slice(at(10), D("0.5"), ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.AHEAD
    assert not sched.blocked


# -- participation ----------------------------------------------------------------------------


def test_participation_caps_the_slice_at_a_share_of_traded_volume() -> None:
    sched = scheduler(target="1", cap=0.1)
    child = sched.next_slice(0, ZERO, ETH_BOOK, D("0.5"), Mode.NORMAL)
    assert child is not None
    assert child.order.quantity == D("0.05")  # 10 % of 0.5, under the 0.1 TWAP slice


@given(
    volume=st.decimals(min_value=0, max_value=50, places=3),
    cap=st.sampled_from([0.01, 0.05, 0.1, 0.25, 1.0]),
)
@settings(max_examples=200, deadline=None)
def test_a_normal_slice_never_exceeds_the_cap_or_the_minimum_order(
    volume: Decimal, cap: float
) -> None:
    sched = scheduler(target="10", cap=cap)
    child = sched.next_slice(0, ZERO, ETH_BOOK, volume, Mode.NORMAL)
    assert child is not None
    bound = max(D(str(cap)) * volume, sched.min_order_qty(child.order.price or ZERO))
    assert child.order.quantity <= bound
    assert child.order.quantity <= D(1)  # never more than the TWAP slice


def test_a_quiet_market_still_trades_one_minimum_order_and_catch_up_a_full_slice() -> None:
    normal = scheduler(target="1").next_slice(0, ZERO, ETH_BOOK, ZERO, Mode.NORMAL)
    assert normal is not None
    assert normal.order.quantity == D("0.010")  # $20 minimum notional at 2000.01, on the lot
    catch_up = scheduler(target="1").next_slice(0, ZERO, ETH_BOOK, ZERO, Mode.CATCH_UP)
    assert catch_up is not None
    assert catch_up.order.quantity == D("0.1")  # a regular TWAP slice whatever the volume


def test_volume_adds_up_while_nothing_is_sent() -> None:
    sched = scheduler(target="1", cap=0.1)
    assert sched.next_slice(0, ZERO, ETH_BOOK, D("0.3"), Mode.PAUSE) is None
    child = sched.next_slice(0, ZERO, ETH_BOOK, D("0.2"), Mode.NORMAL)
    assert child is not None and child.order.quantity == D("0.05")
    # A send starts the count again.
    again = sched.next_slice(at(10), D("0.05"), ETH_BOOK, D("0.3"), Mode.NORMAL)
    assert again is not None and again.order.quantity == D("0.03")


# -- snapping ---------------------------------------------------------------------------------


def test_quantity_snaps_down_to_the_lot() -> None:
    child = scheduler(target="10").next_slice(0, ZERO, ETH_BOOK, D("1.23456"), Mode.NORMAL)
    assert child is not None
    assert child.order.quantity == D("0.123")  # 0.123456 rounded down
    assert ETH.on_lot(child.order.quantity)


def test_normal_crosses_to_the_far_touch_with_an_ioc_limit() -> None:
    buy = scheduler(Side.BUY).next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    sell = scheduler(Side.SELL).next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    assert buy is not None and sell is not None
    assert buy.order.price == D("2000.01") and sell.order.price == D("2000.00")
    for child in (buy, sell):
        assert child.order.type is OrderType.LIMIT
        assert child.order.time_in_force is TimeInForce.IOC
        assert child.order.symbol == "ETHUSDT"
    assert buy.order.side is Side.BUY and sell.order.side is Side.SELL


def test_the_slippage_cap_snaps_passively_to_the_tick() -> None:
    btc_book = book("100000.0", "100000.1", BTC)  # mid 100000.05
    buy = scheduler(Side.BUY, inst=BTC, bps=10).next_slice(0, ZERO, btc_book, FLOOD, Mode.CATCH_UP)
    sell = scheduler(Side.SELL, inst=BTC, bps=10).next_slice(
        0, ZERO, btc_book, FLOOD, Mode.CATCH_UP
    )
    assert buy is not None and sell is not None
    assert buy.arrival_price == sell.arrival_price == D("100000.05")
    # 100000.05 × 1.001 = 100100.05005 rounds down; × 0.999 = 99900.04995 rounds up.
    assert buy.order.price == buy.price_cap == D("100100.0")
    assert sell.order.price == sell.price_cap == D("99900.1")
    assert BTC.on_tick(buy.order.price) and BTC.on_tick(sell.order.price)


# -- client order ids -------------------------------------------------------------------------


def _run(seed_volume: str) -> list[SendChildOrder]:
    sched = scheduler(target="1")
    out, filled = [], ZERO
    for k in range(10):
        mode = Mode.CATCH_UP if k % 3 == 2 else Mode.NORMAL
        child = sched.next_slice(at(10 * k), filled, ETH_BOOK, D(seed_volume), mode)
        if child is not None:
            out.append(child)
            filled += child.order.quantity / 2  # half of every IOC fills
    return out


def test_client_order_ids_are_deterministic_short_and_increasing() -> None:
    first, second = _run("0.7"), _run("0.7")
    assert first == second  # same inputs, same orders
    ids = [c.order.client_order_id for c in first]
    assert ids == [f"b1-eth-{n}" for n in range(len(first))]
    assert [c.n for c in first] == sorted({c.n for c in first})
    assert all(len(i) <= MAX_CLIENT_ORDER_ID_LEN for i in ids)


def test_a_restarted_leg_continues_its_numbering_and_arrival() -> None:
    sched = SliceScheduler(
        "b1", "eth", ETH, Side.BUY, D(1), 0, at(100), at(10), 25.0, 0.1,
        arrival_price=D("1999"), next_n=7,
    )  # fmt: skip
    child = sched.next_slice(at(30), D("0.3"), ETH_BOOK, FLOOD, Mode.NORMAL)
    assert child is not None
    assert child.order.client_order_id == "b1-eth-7"
    assert child.arrival_price == D("1999")


def test_ids_that_could_outgrow_36_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="36"):
        SliceScheduler("b" * 30, "eth", ETH, Side.BUY, D(1), 0, at(100), at(10), 25.0, 0.1)


# -- the slippage cap -------------------------------------------------------------------------

TICKS = st.integers(min_value=150_000, max_value=250_000)  # ETH bids in cents: $1500–$2500


@given(
    side=st.sampled_from(Side),
    bps=st.sampled_from([0.0, 1.0, 5.0, 25.0, 100.0, 500.0]),
    first=st.tuples(TICKS, st.integers(1, 40)),
    moves=st.lists(
        st.tuples(
            st.integers(-3_000, 3_000),  # bid move from the first bid, in ticks
            st.integers(1, 40),  # spread in ticks
            st.sampled_from([Mode.NORMAL, Mode.CATCH_UP]),
        ),
        min_size=1,
        max_size=12,
    ),
)
@settings(max_examples=300, deadline=None)
def test_no_limit_price_is_ever_beyond_the_slippage_cap(
    side: Side,
    bps: float,
    first: tuple[int, int],
    moves: list[tuple[int, int, Mode]],
) -> None:
    sched = scheduler(side, target="5", bps=bps, horizon_s=120, slice_s=10)
    bid0, spread0 = first
    tick = ETH.tick
    books = [(book(bid0 * tick, (bid0 + spread0) * tick), Mode.NORMAL)] + [
        (book((bid0 + m) * tick, (bid0 + m + s) * tick), mode) for m, s, mode in moves
    ]
    fixed: Decimal | None = None
    for k, (top, mode) in enumerate(books):
        child = sched.next_slice(at(10 * k), ZERO, top, FLOOD, mode)
        arrival = sched.arrival_price
        if arrival is None:
            # Never sent: this book's own touch is beyond the cap from its mid (a wide spread).
            assert child is None and sched.hold is Hold.SLIPPAGE_CAP
            continue
        if fixed is None:
            assert child is not None and arrival == (top.bid + top.ask) / 2
            fixed = arrival
        assert arrival == fixed  # the arrival is the mid at the first send, then fixed
        limit = arrival * (1 + side.sign * D(str(bps)) / 10_000)
        touch = top.ask if side is Side.BUY else top.bid
        if (touch > limit) if side is Side.BUY else (touch < limit):
            assert child is None
            assert sched.hold is Hold.SLIPPAGE_CAP and sched.blocked
            continue
        assert child is not None, sched.hold
        price = child.order.price
        assert price is not None and ETH.on_tick(price) and ETH.on_lot(child.order.quantity)
        if mode is Mode.NORMAL:
            assert price == touch
        if side is Side.BUY:
            assert touch <= price <= child.price_cap <= limit
        else:
            assert touch >= price >= child.price_cap >= limit


def test_a_touch_beyond_the_cap_blocks_until_it_comes_back() -> None:
    sched = scheduler(Side.BUY, target="1", bps=10)
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None  # arrival 2000.005
    away = book("2003.00", "2003.01")  # 15 bp above arrival
    assert sched.next_slice(at(10), D("0.1"), away, FLOOD, Mode.CATCH_UP) is None
    assert sched.hold is Hold.SLIPPAGE_CAP and sched.blocked
    back = book("2001.00", "2001.01")
    child = sched.next_slice(at(11), D("0.1"), back, FLOOD, Mode.CATCH_UP)
    assert child is not None and not sched.blocked
    assert child.order.price == D("2002.00")  # 2000.005 × 1.001 = 2002.005005, rounded down


def test_no_book_blocks() -> None:
    sched = scheduler()
    assert sched.next_slice(0, ZERO, None, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.NO_BOOK and sched.blocked


# -- modes ------------------------------------------------------------------------------------


def test_catch_up_is_larger_and_more_aggressive_than_normal() -> None:
    # Behind: 0.1 filled at 30 s, with the schedule at 0.3 (0.4 by the interval's end).
    normal = scheduler(target="1").next_slice(at(30), D("0.1"), ETH_BOOK, FLOOD, Mode.NORMAL)
    catch_up = scheduler(target="1").next_slice(at(30), D("0.1"), ETH_BOOK, FLOOD, Mode.CATCH_UP)
    assert normal is not None and catch_up is not None
    assert normal.order.quantity == D("0.2")  # the TWAP pace: this slice and one carried
    assert catch_up.order.quantity == D("0.4")  # the whole deficit, one interval ahead
    assert normal.order.price is not None and catch_up.order.price is not None
    assert catch_up.order.price > normal.order.price
    assert catch_up.order.price == catch_up.price_cap


def test_no_child_order_exceeds_the_largest_step() -> None:
    sched = SliceScheduler(
        "b1", "eth", ETH, Side.BUY, D(10), 0, at(100), at(10), 25.0, 0.1,
        max_child_fraction=0.05,
    )  # fmt: skip
    child = sched.next_slice(at(50), ZERO, ETH_BOOK, FLOOD, Mode.CATCH_UP)
    assert child is not None and child.order.quantity == D("0.5")  # not the 7 it is behind
    # ...but never below one minimum order, or a small leg could never trade at all.
    small = SliceScheduler(
        "b1", "eth", ETH, Side.BUY, D("0.1"), 0, at(100), at(10), 25.0, 0.1,
        max_child_fraction=0.05,
    )  # fmt: skip
    child = small.next_slice(at(50), ZERO, ETH_BOOK, FLOOD, Mode.CATCH_UP)
    assert child is not None and child.order.quantity == D("0.010")


def test_pause_sends_nothing_and_uses_no_number() -> None:
    sched = scheduler()
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.PAUSE) is None
    assert sched.hold is Hold.PAUSED and not sched.blocked
    child = sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    assert child is not None and child.n == 0


def test_stop_latches() -> None:
    sched = scheduler()
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.STOP) is None
    assert sched.hold is Hold.STOPPED and sched.stopped
    assert sched.next_slice(at(10), ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.STOPPED


def test_a_slice_below_the_minimum_order_is_carried() -> None:
    sched = scheduler(target="0.05")  # 0.005 a slice, the minimum order is 0.010
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.BELOW_MINIMUM and not sched.blocked
    child = sched.next_slice(at(10), ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    assert child is not None and child.order.quantity == D("0.010") and child.n == 0


def test_dust_below_the_minimum_order_ends_the_leg() -> None:
    sched = scheduler(target="1")
    assert sched.next_slice(at(95), D("0.995"), ETH_BOOK, FLOOD, Mode.CATCH_UP) is None
    assert sched.hold is Hold.DONE


# -- shrink -----------------------------------------------------------------------------------


def test_shrink_cuts_the_target_on_the_lot_never_below_filled() -> None:
    sched = scheduler(target="1")
    assert sched.next_slice(at(20), D("0.3"), ETH_BOOK, FLOOD, Mode.NORMAL) is None  # ahead
    assert sched.shrink(D("0.55555")) == D("0.555")
    assert sched.shrink(D("0.2")) == D("0.3")  # not below the 0.3 filled
    assert sched.target_qty == D("0.3")
    with pytest.raises(ValueError, match="only cuts"):
        sched.shrink(D("0.4"))
    assert sched.next_slice(at(30), D("0.3"), ETH_BOOK, FLOOD, Mode.CATCH_UP) is None
    assert sched.hold is Hold.DONE


def test_the_schedule_follows_the_cut_target() -> None:
    sched = scheduler(target="1")
    sched.shrink(D("0.5"), filled_qty=D("0.16"))
    child = sched.next_slice(at(40), D("0.16"), ETH_BOOK, FLOOD, Mode.NORMAL)
    assert child is not None
    assert child.order.quantity == D("0.09")  # 0.5 × 50 % − 0.16


# -- legs in step -----------------------------------------------------------------------------


def test_a_synchronized_leg_launches_with_a_full_slice_whatever_the_volume() -> None:
    lone = scheduler(target="1").next_slice(0, ZERO, ETH_BOOK, ZERO, Mode.NORMAL)
    assert lone is not None and lone.order.quantity == D("0.010")  # one minimum order
    sched = scheduler(target="1", synchronized=True)
    launch = sched.next_slice(0, ZERO, ETH_BOOK, ZERO, Mode.NORMAL)
    assert launch is not None and launch.order.quantity == D("0.1")  # one regular slice
    # Only the launch: later slices take their share of the volume again.
    later = sched.next_slice(at(10), D("0.1"), ETH_BOOK, D("0.2"), Mode.NORMAL)
    assert later is not None and later.order.quantity == D("0.02")


def test_a_restarted_synchronized_leg_does_not_launch_again() -> None:
    sched = SliceScheduler(
        "b1", "eth", ETH, Side.BUY, D(1), 0, at(100), at(10), 25.0, 0.1,
        arrival_price=D("2000"), next_n=3, synchronized=True,
    )  # fmt: skip
    child = sched.next_slice(at(30), D("0.3"), ETH_BOOK, ZERO, Mode.NORMAL)
    assert child is not None and child.order.quantity == D("0.010")


def test_a_synchronized_leg_sends_a_missed_slice_again_on_the_next_book() -> None:
    sched = scheduler(target="1", synchronized=True)
    first = sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL)
    assert first is not None and first.order.quantity == D("0.1")
    # The IOC took 0.04 and the rest expired; the answer came before the book that moved.
    missed = D("0.06")
    assert sched.next_slice(at(0.001), D("0.04"), ETH_BOOK, ZERO, Mode.NORMAL, ZERO, missed) is None
    assert sched.hold is Hold.MISSED
    assert not sched.blocked
    moved = book("2000.50", "2000.51")
    again = sched.next_slice(at(0.002), D("0.04"), moved, ZERO, Mode.NORMAL, ZERO, missed)
    assert again is not None
    # The rest, at the new touch, not capped by participation (no volume since the send).
    assert again.order.quantity == missed
    assert again.order.price == D("2000.51")
    assert again.n == first.n + 1
    # The interval's slot is still the one the first order used.
    assert sched.next_due_ns == at(10)


def test_a_missed_slice_is_sent_again_only_when_it_is_over_and_only_so_often() -> None:
    sched = scheduler(target="1", synchronized=True)
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None
    books = [book(f"20{k:02d}.00", f"20{k:02d}.01") for k in range(1, 10)]
    # Something still open (the venue has not ended the order): nothing yet.
    assert sched.next_slice(1, ZERO, books[0], ZERO, Mode.NORMAL, D("0.1"), D("0.1")) is None
    assert sched.hold is Hold.NOT_DUE
    sent = 0
    for k, b in enumerate(books, start=2):
        child = sched.next_slice(k, ZERO, b, ZERO, Mode.NORMAL, ZERO, D("0.1"))
        if child is not None:
            sent += 1
    assert sent == MAX_RESENDS
    assert sched.hold is Hold.NOT_DUE
    # The next interval's slice carries what is still missing, and may be resent again.
    nxt = sched.next_slice(at(10), ZERO, books[0], FLOOD, Mode.NORMAL, ZERO, D("0.1"))
    assert nxt is not None and nxt.order.quantity == D("0.2")
    assert sched.next_slice(at(10) + 1, ZERO, books[1], ZERO, Mode.NORMAL, ZERO, D("0.2"))


def test_a_missed_slice_is_not_resent_by_a_lone_leg_nor_while_paused() -> None:
    lone = scheduler(target="1")
    assert lone.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None
    moved = book("2001.00", "2001.01")
    assert lone.next_slice(1, ZERO, moved, ZERO, Mode.NORMAL, ZERO, D("0.1")) is None
    assert lone.hold is Hold.NOT_DUE
    sched = scheduler(target="1", synchronized=True)
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None
    assert sched.next_slice(1, ZERO, moved, ZERO, Mode.PAUSE, ZERO, D("0.1")) is None
    assert sched.hold is Hold.PAUSED


def test_a_resend_never_goes_past_the_cut_target_nor_beyond_the_cap() -> None:
    sched = scheduler(target="1", synchronized=True)
    assert sched.next_slice(0, ZERO, ETH_BOOK, FLOOD, Mode.NORMAL) is not None
    sched.shrink(D("0.05"), filled_qty=D("0.02"))
    moved = book("2001.00", "2001.01")
    child = sched.next_slice(1, D("0.02"), moved, ZERO, Mode.CATCH_UP, ZERO, D("0.08"))
    assert child is not None
    assert child.order.quantity == D("0.03")
    assert child.order.price == child.price_cap  # priced as its mode prices
    beyond = book("2010.00", "2010.01")  # more than 25 bp above the 2000.005 arrival
    assert sched.next_slice(2, D("0.02"), beyond, ZERO, Mode.NORMAL, ZERO, D("0.03")) is None
    assert sched.hold is Hold.SLIPPAGE_CAP


def test_slices_capped_at_one_regular_slice_still_end_on_the_target() -> None:
    # 4 over 12 slices is 0.3333… a slice, snapped down to 0.333 by the lot and capped there
    # (max_child_fraction = 1/12): the lot rounding must not strand 0.004 of dust at the end.
    sched = SliceScheduler(
        "b1", "eth", ETH, Side.BUY, D(4), 0, at(12), at(1), 25.0, 1.0,
        max_child_fraction=1 / 12, synchronized=True,
    )  # fmt: skip
    filled = ZERO
    for k in range(14):
        child = sched.next_slice(at(k), filled, ETH_BOOK, FLOOD, Mode.NORMAL)
        if child is not None:
            assert child.order.quantity <= D("0.333") + sched.min_order_qty(D(2000))
            filled += child.order.quantity
    assert filled == 4
    assert sched.next_slice(at(14), filled, ETH_BOOK, FLOOD, Mode.NORMAL) is None
    assert sched.hold is Hold.DONE
