"""The child-order scheduler: one leg's TWAP slices, capped by participation and by slippage.

`SliceScheduler` is the pure core a leg actor asks, at each slice instant, "what do I send
now?" (DESIGN §5.5). It answers with one `SendChildOrder` or with None, and says why in
`hold`. The decisions, in one place:

- **Schedule.** TWAP on a grid of `slice_ns` from `start_ns`: the cumulative target by time t
  is target × (t − start)/horizon, clamped to [0, 1] (`scheduled_qty`). The slice sent in
  interval k aims at the schedule at the *end* of that interval, so the first slice goes out
  at the start instant instead of waiting a whole interval; the quantity is that aim minus
  what is filled and what is still open. One child order per interval (and the resends of
  a synchronized leg, below): after a send the next one is due at the next grid point
  (`next_due_ns`); a call that sends nothing does not use up its interval, so the shell may
  ask again (on a book update, a mode change).
- **Order type.** Every `twap` child order is a LIMIT **IOC**. A slice is one decision at one price:
  it trades what the book offers up to its limit and the rest expires, so nothing rests at a
  stale price (a resting order could outlive the slippage cap, the synchronizer's pause or a
  shrink), there is no cancel/replace to track, and the open quantity returns to zero with
  the venue's answer. What expires is carried to the next slice by the schedule itself. The
  price of this choice is the taker fee on every fill (5 bp against 2 bp maker, §10): a
  basket is paying to stay in step, which is the point of legato.
- **Price.** `NORMAL` crosses the spread to the far touch (a buy's limit is the best ask, a
  sell's the best bid): it takes what is displayed at the touch and no more. `CATCH_UP`
  walks the book up to the slippage cap: the limit is the cap price itself, so the order
  sweeps as deep as the leg's limit allows (filling at the book's prices, never worse).
- **Latency buffer.** A leg's book is as old as its venue's one-way trip when its order
  arrives, so a limit at the far touch misses whenever the touch moved meanwhile (an IOC then
  expires unfilled and the leg falls behind its partners). `latency_buffer_bps` moves a
  `NORMAL` limit that far through the touch (`LATENCY_SIGMAS` standard deviations of the
  price over the trip, `latency_buffer_bps()`); the order still fills at the book's prices.
- **Slippage cap.** The arrival price is the mid at the leg's first send (DESIGN §8). No
  limit price is ever beyond arrival × (1 ± max_slippage_bps/1e4) (above for a buy, below
  for a sell); the cap is snapped to the tick passively so it stays inside. If the touch is
  already beyond the cap nothing is sent and the leg reports itself blocked
  (`Hold.SLIPPAGE_CAP`; `blocked` is what the synchronizer reads).
- **Participation.** A slice is at most `participation_cap` × the market volume traded since
  the previous child order (the volume keeps adding up while nothing is sent, so a skipped
  slice is made up later within the same share). Floor, so a quiet market still trades:
  in `NORMAL` one minimum order (one lot, or the lots that reach the minimum notional); in
  `CATCH_UP` a regular TWAP slice (target × slice/horizon). A leg that falls behind in a
  quiet market is put in `CATCH_UP` by the synchronizer and then keeps the TWAP pace
  whatever the volume: holding the basket in step outranks the participation share.
- **Catch-up size.** `NORMAL` trades at the TWAP pace: at most `NORMAL_MAX_SLICES` regular
  slices per interval (this one and one carried), so a small shortfall (a partial fill) is
  made up at once but a large one is not: a leader resuming after a pause does not leap to
  the schedule past the laggard it waited for. Making up a large deficit is `CATCH_UP`'s job,
  which the synchronizer gives to the legs that hold the basket back: it aims one interval
  further ahead (the schedule at the end of the next interval). In either mode no child
  order exceeds `max_child_fraction` of the target when one is given: the basket passes half
  its band, so that no single order can carry a liquid leg out of the band before the
  synchronizer has seen it (a whole basket behind the schedule catches up in steps it can
  check, not in one leap of its most liquid leg).
- **Legs in step.** A leg of a basket the synchronizer keeps in step (`synchronized`) sends
  its slices at the same venue instants as its partners, and a slice one leg misses while
  the others fill is naked exposure until it is made up. So such a leg, unlike a lone TWAP:
  - *launches in ratio*: its first child order is one regular slice whatever the volume
    seen so far (the participation floor of `CATCH_UP`). The volume since arming depends on
    how early the leg starts (its venue's head start), and a launch sized by it would leave
    the legs out of ratio for the first seconds;
  - *sends a missed slice again at once*: when the interval's IOC expired unfilled or
    partly filled at the venue (`missed_qty`, never a refusal: that order never reached the
    book), the rest goes again in the same interval, up to `MAX_RESENDS` times, as soon as
    the leg holds a newer book than the one the miss was priced on (`Hold.MISSED` until
    then). It is not capped by participation again: that share already allowed it. Waiting
    for the next interval instead held the partners' fills naked for a whole slice.
- **Modes.** `PAUSE` sends nothing; `STOP` sends nothing ever again (it latches: the shell
  cancels what is still open).
- **Rounding.** Quantities snap *down* to the lot (never trade more than asked); a slice
  below one minimum order is not sent and carries to the next (`Hold.BELOW_MINIMUM`). When
  what remains of the whole leg is below one minimum order the leg is done (`Hold.DONE`):
  that dust can never be sent.
- **Child styles** (`style`; docs/basket.md, "Child styles"). All of the above is `twap`.
  `passive` keeps one post-only quote (`_rest`): one tick inside a spread of two ticks or
  more, else at the touch, never past the cap, for the schedule `QUOTE_AHEAD_SLICES`
  intervals ahead (`synchronized`: at most `SYNCHRONIZED_QUOTE_SLICES` regular slices, what
  stands naked while the partners follow its fill); it is replaced (`CancelChildOrder`, then
  a new quote once the cancel is answered) when the touch leaves it or its size no longer
  fits, never within `REQUOTE_MIN_NS` of its placement; a quote refused as crossing goes
  again on a newer book (`refused`). Behind the schedule by more than `catch_up_lag` of the
  target, or in `CATCH_UP`, it crosses (`_cross`: an IOC at the cap, one per interval)
  beside its quote, which keeps resting: the IOC is never more than the target leaves beside
  it, and only a quote that holds all that is left is cancelled to make room. Told its
  partners' progress (`reach_qty`, the synchronizer's **Resting legs**), it crosses to that
  at once instead (`_follow`, and `follow_now` while its own orders are on their way: up to
  1 + `MAX_RESENDS` IOCs in an interval, what is in flight counted as filled) and not to
  the schedule. `PAUSE`, `STOP` and a finished target pull the
  quote. `pov` sends one IOC per interval of `pov_rate` × the volume since the last child,
  at the `NORMAL` price, and works as `twap`'s `CATCH_UP` when behind. Both styles leave
  `twap`'s path untouched.
- **Ids.** The n-th child order's id is `<basket>-<leg>-<n>` (DESIGN §7, `client_order_id`),
  n counting sent orders from `next_n`; same inputs, same orders.
"""

from __future__ import annotations

import enum
import math
from decimal import ROUND_UP, Decimal

import msgspec

from actors.spec import MAX_CHILD_SEQ, MAX_CLIENT_ORDER_ID_LEN, ChildStyle, client_order_id
from venues.model import BookTicker, Instrument, NewOrder, OrderType, Side, TimeInForce

_ZERO = Decimal(0)
_BPS = Decimal(10_000)
NORMAL_MAX_SLICES = 2  # regular TWAP slices a NORMAL child order may carry
LATENCY_SIGMAS = 2.0  # a NORMAL limit allows this many σ of price move over the venue trip
MAX_RESENDS = 2  # `synchronized`: times one interval's missed slice is sent again
REQUOTE_MIN_NS = 1_000_000_000  # `passive`: a quote rests this long before it is replaced
QUOTE_AHEAD_SLICES = 2  # `passive`: a quote covers the schedule this many intervals ahead
SYNCHRONIZED_QUOTE_SLICES = Decimal("0.5")  # `passive` kept in step: the most a quote holds
DEFAULT_CATCH_UP_LAG = 0.025  # behind the schedule by more than this share: cross (band/2)
_SECONDS_PER_YEAR = 365.0 * 24 * 3600


def latency_buffer_bps(vol_annual: float, one_way_ns: int) -> float:
    """`LATENCY_SIGMAS` standard deviations of a price of annual volatility `vol_annual` over
    `one_way_ns`, in bp: how far a limit goes through the touch so that the touch's move while
    the order travels does not leave it unfilled."""
    if vol_annual <= 0 or one_way_ns <= 0:
        return 0.0
    return LATENCY_SIGMAS * vol_annual * math.sqrt(one_way_ns / 1e9 / _SECONDS_PER_YEAR) * 1e4


class Mode(enum.StrEnum):
    """How a leg works its quantity; set by the synchronizer (DESIGN §5.5)."""

    NORMAL = "NORMAL"  # on the schedule: one slice per interval at the far touch
    CATCH_UP = "CATCH_UP"  # behind: an interval ahead, at least a full slice, priced to the cap
    PAUSE = "PAUSE"  # ahead of the basket: no new child orders
    STOP = "STOP"  # finished or cancelled: no child order ever again


class Hold(enum.StrEnum):
    """Why the scheduler sent nothing."""

    STOPPED = "STOPPED"
    DONE = "DONE"  # target filled, or what remains is below one minimum order
    PAUSED = "PAUSED"
    NOT_STARTED = "NOT_STARTED"  # before start_ns
    NOT_DUE = "NOT_DUE"  # this interval's child order is already out
    AHEAD = "AHEAD"  # filled plus open already meet the schedule
    NO_BOOK = "NO_BOOK"  # no usable two-sided top of book
    SLIPPAGE_CAP = "SLIPPAGE_CAP"  # the touch is beyond the slippage cap from arrival
    BELOW_MINIMUM = "BELOW_MINIMUM"  # this slice is under one lot or the minimum notional
    MISSED = "MISSED"  # this interval's IOC missed (a quote was refused): again on a new book
    RESTING = "RESTING"  # `passive`: the quote rests where it should
    REQUOTE_WAIT = "REQUOTE_WAIT"  # `passive`: the quote is stale; replaced once it may be
    WAITING = "WAITING"  # an order's outcome is awaited before anything more is sent

    @property
    def blocks(self) -> bool:
        """True when the leg wants to trade and cannot (the synchronizer's `blocked`)."""
        return self in _BLOCKING


_BLOCKING = frozenset({Hold.NO_BOOK, Hold.SLIPPAGE_CAP})


class _Priced(msgspec.Struct, frozen=True, kw_only=True):
    """A child order's prices (arrival, slippage cap, limit) and the book they come from."""

    book: BookTicker
    arrival: Decimal
    cap: Decimal
    limit: Decimal


class SendChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Send `order`, the leg's n-th child order; the shell places it as it stands."""

    leg_id: str
    n: int
    order: NewOrder
    mode: Mode
    arrival_price: Decimal  # mid at the leg's first send
    price_cap: Decimal  # the furthest limit the slippage cap allows, on the tick grid
    ts_ns: int


class CancelChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Cancel the leg's resting child order `client_order_id` (`passive`: a re-quote, a
    pull while paused or done, a cross to catch up); the shell reconciles its fate."""

    leg_id: str
    client_order_id: str
    reason: str
    ts_ns: int


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """The leg's resting post-only child order, as the leg's record has it."""

    client_order_id: str
    price: Decimal
    open_qty: Decimal  # what is left of it to fill
    placed_ns: int  # when it was sent (the re-quote bound counts from here)
    working: bool = True  # the venue acknowledged it (False: its outcome is unknown)


def scheduled_fraction(now_ns: int, start_ns: int, horizon_ns: int) -> Decimal:
    """The TWAP schedule's completion fraction at `now_ns`: (now − start)/horizon in [0, 1]."""
    if now_ns <= start_ns:
        return _ZERO
    if now_ns >= start_ns + horizon_ns:
        return Decimal(1)
    return Decimal(now_ns - start_ns) / Decimal(horizon_ns)


class SliceScheduler:
    """One leg's child orders: TWAP slices, a participation cap, never beyond max slippage."""

    def __init__(
        self,
        basket_id: str,
        leg_id: str,
        instrument: Instrument,
        side: Side,
        target_qty: Decimal,
        start_ns: int,
        horizon_ns: int,
        slice_ns: int,
        max_slippage_bps: float,
        participation_cap: float,
        *,
        max_child_fraction: float | None = None,
        arrival_price: Decimal | None = None,
        next_n: int = 0,
        latency_buffer_bps: float = 0.0,
        synchronized: bool = False,
        style: ChildStyle = ChildStyle.TWAP,
        pov_rate: float = 0.0,
        catch_up_lag: float = DEFAULT_CATCH_UP_LAG,
    ) -> None:
        """`max_child_fraction` bounds each child order to that share of the target (the
        basket passes band/2); `arrival_price` and `next_n` restore a restarted leg;
        `synchronized` marks a leg of a basket kept in step (the module docstring's
        **Legs in step**: a launch slice in ratio, a missed slice sent again at once).
        `style` is the child style (**Child styles**); `pov_rate` the `pov` share of traded
        volume; `catch_up_lag` how far behind the schedule (a share of the target) a
        `passive` or `pov` leg crosses on its own."""
        if target_qty < 0:
            raise ValueError(f"target_qty: {target_qty} is negative; a leg trades 0 or more")
        if horizon_ns <= 0:
            raise ValueError(f"horizon_ns: {horizon_ns} must be positive")
        if not 0 < slice_ns <= horizon_ns:
            raise ValueError(f"slice_ns: {slice_ns} must be in (0, horizon_ns={horizon_ns}]")
        if not max_slippage_bps >= 0:
            raise ValueError(f"max_slippage_bps: {max_slippage_bps} must be 0 or more")
        if not 0 < participation_cap <= 1:
            raise ValueError(f"participation_cap: {participation_cap} must be in (0, 1]")
        if not latency_buffer_bps >= 0:
            raise ValueError(f"latency_buffer_bps: {latency_buffer_bps} must be 0 or more")
        if max_child_fraction is not None and not 0 < max_child_fraction <= 1:
            raise ValueError(f"max_child_fraction: {max_child_fraction} must be in (0, 1]")
        if style is ChildStyle.POV and not 0 < pov_rate <= participation_cap:
            raise ValueError(
                f"pov_rate: {pov_rate} must be in (0, participation_cap={participation_cap}]"
            )
        if not 0 < catch_up_lag <= 1:
            raise ValueError(f"catch_up_lag: {catch_up_lag} must be in (0, 1]")
        longest = client_order_id(basket_id, leg_id, MAX_CHILD_SEQ)
        if len(longest) > MAX_CLIENT_ORDER_ID_LEN:
            raise ValueError(
                f"basket_id/leg_id: client order ids would reach {len(longest)} characters "
                f"({longest!r}); venues accept at most {MAX_CLIENT_ORDER_ID_LEN}"
            )
        self.basket_id = basket_id
        self.leg_id = leg_id
        self.instrument = instrument
        self.side = side
        self.target_qty = target_qty
        self.start_ns = start_ns
        self.horizon_ns = horizon_ns
        self.slice_ns = slice_ns
        self.max_slippage_bps = max_slippage_bps
        self.participation_cap = participation_cap
        self.max_child_fraction = max_child_fraction
        self.arrival_price = arrival_price
        self.next_n = next_n
        self.synchronized = synchronized
        self.hold: Hold | None = None  # why the last call sent nothing; None after a send
        self._slippage = Decimal(str(max_slippage_bps)) / _BPS
        self._participation = Decimal(str(participation_cap))
        self._buffer = Decimal(str(latency_buffer_bps)) / _BPS
        self._max_child = None if max_child_fraction is None else Decimal(str(max_child_fraction))
        self._next_due_ns = start_ns
        self._volume = _ZERO  # market volume since the last child order
        self._filled = _ZERO
        self._stopped = False
        self._priced_on: BookTicker | None = None  # the book the last child order was priced on
        self._resends = 0  # missed slices sent again in this interval
        self.style = ChildStyle(style)
        self._pov = Decimal(str(pov_rate))
        self._lag = Decimal(str(catch_up_lag))
        self._next_cross_ns = start_ns  # `passive`: one cross per interval on its own,
        self._follows = (-1, 0)  # and after its partners (interval, crosses), 1 + MAX_RESENDS
        # `passive`: the fills its partners call for (`AdjustLeg.reach_qty`), while crossing.
        self.reach_qty: Decimal | None = None
        # `passive`: when the decision can next change on the clock alone (None: the grid).
        self.wake_ns: int | None = None

    # -- queries ---------------------------------------------------------------------------
    @property
    def blocked(self) -> bool:
        """The leg wants to trade and cannot (no book, or the touch is beyond the cap)."""
        return self.hold is not None and self.hold.blocks

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def next_due_ns(self) -> int:
        """The earliest instant the next child order may go (the shell's timer)."""
        return self._next_due_ns

    def scheduled_qty(self, now_ns: int) -> Decimal:
        """The TWAP cumulative target at `now_ns`: target × (now − start)/horizon, clamped."""
        return self.target_qty * scheduled_fraction(now_ns, self.start_ns, self.horizon_ns)

    def price_cap(self, arrival: Decimal) -> Decimal:
        """The furthest limit price allowed from `arrival`, snapped to the tick inside the cap."""
        if self.side is Side.BUY:
            cap = arrival * (1 + self._slippage)
        else:
            # A cap of 100 % or more would allow a sell at zero; one tick is the lowest price.
            cap = max(arrival * (1 - self._slippage), self.instrument.tick)
        return self.instrument.snap_price_passive(cap, self.side)

    def min_order_qty(self, price: Decimal) -> Decimal:
        """The smallest quantity a venue accepts at `price`: one lot, or the minimum notional."""
        inst = self.instrument
        qty = inst.lot
        if inst.min_notional > 0 and price > 0:
            need = inst.min_notional / (price * inst.contract_size)
            qty = max(qty, (need / inst.lot).to_integral_value(rounding=ROUND_UP) * inst.lot)
        return qty

    # -- commands --------------------------------------------------------------------------
    def next_slice(
        self,
        now_ns: int,
        filled_qty: Decimal,
        book: BookTicker | None,
        traded_volume_since_last: Decimal,
        mode: Mode,
        open_qty: Decimal = _ZERO,
        missed_qty: Decimal = _ZERO,
        quote: Quote | None = None,
        refused: bool = False,
    ) -> SendChildOrder | CancelChildOrder | None:
        """The child order to send (or, `passive`, the quote to cancel) now, or None (and
        `hold` says why).

        `traded_volume_since_last` is the market volume printed since the previous call;
        `open_qty` is what is still resting or in flight from earlier child orders (the
        quote's included); `missed_qty` what the newest child order left unfilled when the
        venue ended it without refusing it (`LegLedger.missed_qty`: an IOC that expired at
        the book); `quote` the leg's resting post-only order, `refused` whether the last one was
        refused as crossing (`passive`: the next goes on a newer book).
        """
        self._volume += traded_volume_since_last
        self._filled = filled_qty
        if mode is Mode.STOP:
            self._stopped = True
        self.wake_ns = None
        hold_or_order: Hold | SendChildOrder | CancelChildOrder
        if self.style is ChildStyle.PASSIVE:
            hold_or_order = self._decide_passive(
                now_ns, filled_qty, open_qty, book, mode, quote, refused
            )
        elif self.style is ChildStyle.POV:
            hold_or_order = self._decide_pov(now_ns, filled_qty, open_qty, book, mode)
        else:
            hold_or_order = self._decide(now_ns, filled_qty, open_qty, missed_qty, book, mode)
        if isinstance(hold_or_order, Hold):
            self.hold = hold_or_order
            return None
        self.hold = None
        return hold_or_order

    def shrink(self, new_target: Decimal, filled_qty: Decimal | None = None) -> Decimal:
        """Cut the target (snapped down to the lot, never below filled); returns the new one.

        `filled_qty` defaults to the filled quantity of the last `next_slice` call. A fill of
        an order still in flight may still land beyond the cut target.
        """
        if new_target > self.target_qty:
            raise ValueError(
                f"new_target: {new_target} is above the current target {self.target_qty}; "
                "shrink only cuts"
            )
        filled = self._filled if filled_qty is None else filled_qty
        self._filled = filled
        cut = max(self.instrument.snap_qty(new_target), filled)
        self.target_qty = min(cut, self.target_qty)
        return self.target_qty

    # -- the decision ----------------------------------------------------------------------
    def _child_qty(self, want: Decimal, remaining: Decimal, min_qty: Decimal) -> Decimal:
        """`want` as one child order of a passive or pov leg: at most the basket's child cap
        (never below one minimum order) and what remains, all of it when less than one
        minimum would be left, on the lot grid."""
        if self._max_child is not None:
            want = min(want, max(self._max_child * self.target_qty, min_qty))
        want = min(want, remaining)
        if remaining - want < min_qty:
            want = remaining
        return self.instrument.snap_qty(want)

    def _before_any(self, now_ns: int, filled: Decimal, mode: Mode) -> Hold | None:
        """What holds a leg whatever its style: stopped, done, paused, not started yet."""
        if self._stopped:
            return Hold.STOPPED
        if filled >= self.target_qty:
            return Hold.DONE
        if mode is Mode.PAUSE:
            return Hold.PAUSED
        if now_ns < self.start_ns:
            return Hold.NOT_STARTED
        return None

    def _decide(
        self,
        now_ns: int,
        filled: Decimal,
        open_qty: Decimal,
        missed_qty: Decimal,
        book: BookTicker | None,
        mode: Mode,
    ) -> Hold | SendChildOrder:
        if (hold := self._before_any(now_ns, filled, mode)) is not None:
            return hold
        if now_ns < self._next_due_ns:
            resend = self.synchronized and missed_qty > 0 and open_qty <= 0
            if not resend or self._resends >= MAX_RESENDS:
                return Hold.NOT_DUE
            return self._resend(now_ns, filled, missed_qty, book, mode)
        interval = (now_ns - self.start_ns) // self.slice_ns
        interval_end = self.start_ns + (interval + 1) * self.slice_ns
        catch_up = mode is Mode.CATCH_UP
        aim = self.scheduled_qty(interval_end + (self.slice_ns if catch_up else 0))
        regular = self.target_qty * self.slice_ns / self.horizon_ns
        remaining = self.target_qty - filled - open_qty
        deficit = aim - filled - open_qty
        if remaining <= 0 or deficit <= 0:
            return Hold.AHEAD
        priced = self._price(book, mode)
        if isinstance(priced, Hold):
            return priced
        min_qty = self.min_order_qty(priced.limit)
        if remaining < min_qty:
            # Dust that can never be sent ends the leg; with orders out, wait for them.
            return Hold.DONE if open_qty <= 0 else Hold.AHEAD
        step = deficit if catch_up else NORMAL_MAX_SLICES * regular
        if self._max_child is not None:
            step = min(step, self._max_child * self.target_qty)
        # The step limits never hold a leg below one minimum order: it could never trade.
        want = min(deficit, max(step, min_qty))
        if remaining - want < min_qty:
            # Nor leave it less than one: that dust could never be sent (lot rounding of
            # slices capped at one regular slice adds up to it by the end).
            want = remaining
        launch = self.synchronized and self.arrival_price is None
        floor = max(min_qty, regular) if catch_up or launch else min_qty
        allowed = max(self._participation * self._volume, floor)
        qty = self.instrument.snap_qty(min(want, allowed))
        if qty < min_qty:
            return Hold.BELOW_MINIMUM
        self._volume = _ZERO
        self._next_due_ns = interval_end
        self._resends = 0
        return self._order(now_ns, qty, priced, mode)

    def _resend(
        self,
        now_ns: int,
        filled: Decimal,
        missed: Decimal,
        book: BookTicker | None,
        mode: Mode,
    ) -> Hold | SendChildOrder:
        """The missed part of this interval's slice again, priced on a newer book than the
        one it missed at (the venue's answer can come before the book that shows why it
        missed, and the same price would miss again). The participation share already
        allowed the quantity (it did not trade), so it is not capped again."""
        if book is not None and book == self._priced_on:
            return Hold.MISSED
        priced = self._price(book, mode)
        if isinstance(priced, Hold):
            return priced
        qty = self.instrument.snap_qty(min(missed, self.target_qty - filled))
        if qty < self.min_order_qty(priced.limit):
            return Hold.NOT_DUE  # too small to send again: the next slice carries it
        self._resends += 1
        return self._order(now_ns, qty, priced, mode)

    def _price(self, book: BookTicker | None, mode: Mode) -> Hold | _Priced:
        """The prices of a child order sent now, or why none can be priced."""
        if book is None or book.bid <= 0 or book.ask <= 0:
            return Hold.NO_BOOK
        arrival = (
            self.arrival_price if self.arrival_price is not None else (book.bid + book.ask) / 2
        )
        cap = self.price_cap(arrival)
        buy = self.side is Side.BUY
        touch = book.ask if buy else book.bid
        if (touch > cap) if buy else (touch < cap):
            return Hold.SLIPPAGE_CAP
        if mode is Mode.CATCH_UP:
            return _Priced(book=book, arrival=arrival, cap=cap, limit=cap)
        through = touch * (1 + self._buffer) if buy else touch * (1 - self._buffer)
        through = min(through, cap) if buy else max(through, cap)
        limit = self.instrument.snap_price_passive(through, self.side)
        return _Priced(book=book, arrival=arrival, cap=cap, limit=limit)

    def _order(
        self,
        now_ns: int,
        qty: Decimal,
        priced: _Priced,
        mode: Mode,
        tif: TimeInForce = TimeInForce.IOC,
    ) -> SendChildOrder:
        n = self.next_n
        order = NewOrder(
            client_order_id=client_order_id(self.basket_id, self.leg_id, n),
            symbol=self.instrument.symbol,
            side=self.side,
            type=OrderType.LIMIT,
            quantity=qty,
            price=priced.limit,
            time_in_force=tif,
        )
        self.arrival_price = priced.arrival
        self._priced_on = priced.book
        self.next_n = n + 1
        return SendChildOrder(
            leg_id=self.leg_id,
            n=n,
            order=order,
            mode=mode,
            arrival_price=priced.arrival,
            price_cap=priced.cap,
            ts_ns=now_ns,
        )

    # -- passive and pov -------------------------------------------------------------------
    def _behind(self, now_ns: int, filled: Decimal, mode: Mode) -> bool:
        """Whether a `passive` or `pov` leg crosses to catch up: the synchronizer says so
        (`CATCH_UP`), or it is behind the schedule by more than `catch_up_lag`."""
        return mode is Mode.CATCH_UP or self.scheduled_qty(now_ns) - filled > (
            self._lag * self.target_qty
        )

    def _decide_passive(
        self,
        now_ns: int,
        filled: Decimal,
        open_qty: Decimal,
        book: BookTicker | None,
        mode: Mode,
        quote: Quote | None,
        refused: bool,
    ) -> Hold | SendChildOrder | CancelChildOrder:
        """`passive` (module docstring, **Child styles**)."""
        if self._stopped or filled >= self.target_qty or mode is Mode.PAUSE:
            hold = (
                Hold.STOPPED
                if self._stopped
                else Hold.DONE
                if filled >= self.target_qty
                else Hold.PAUSED
            )
            return hold if quote is None else self._cancel(now_ns, quote, hold.value.lower())
        if now_ns < self.start_ns:
            return Hold.NOT_STARTED
        resting = quote.open_qty if quote is not None else _ZERO
        elsewhere = open_qty - resting
        told = mode is Mode.CATCH_UP and self.reach_qty is not None
        if told:
            # Told to follow its partners, it does not wait for the answers of what is out:
            # what is in flight counts as filled and the quote as resting in full.
            crossing = self._price(book, Mode.CATCH_UP)
            if not isinstance(crossing, Hold):
                follow = self._follow(now_ns, filled, crossing, resting, elsewhere)
                if follow is not None:
                    return follow
        if elsewhere > 0 or (quote is not None and not quote.working):
            return Hold.WAITING  # an IOC or an order of unknown outcome is out: its answer first
        interval = (now_ns - self.start_ns) // self.slice_ns
        interval_end = self.start_ns + (interval + 1) * self.slice_ns
        remaining = self.target_qty - filled
        if self._behind(now_ns, filled, mode):
            crossing = self._price(book, Mode.CATCH_UP)
            if not isinstance(crossing, Hold):
                if quote is not None and remaining - resting < self.min_order_qty(crossing.limit):
                    # The quote holds all that is left: only without it is there room to cross.
                    return self._cancel(now_ns, quote, "crossing to catch up")
                # Told to stand with its partners (followed above), it crosses to the
                # schedule only when behind it on its own: a follow puts it level with a
                # leader that may be ahead of the schedule.
                if now_ns >= self._next_cross_ns and (
                    not told or self._behind(now_ns, filled, Mode.NORMAL)
                ):
                    return self._cross(now_ns, filled, interval_end, crossing, mode, resting)
                if quote is None and not told:
                    self.wake_ns = self._next_cross_ns
                    return Hold.NOT_DUE
            elif quote is not None:
                return crossing  # cannot cross (no book, the cap): the quote stays
        return self._rest(now_ns, filled, remaining, interval_end, book, quote, refused)

    def follow_now(
        self,
        now_ns: int,
        filled_qty: Decimal,
        open_qty: Decimal,
        book: BookTicker | None,
        quote: Quote | None,
    ) -> SendChildOrder | None:
        """The IOC a `passive` leg told its partners' progress (`reach_qty`) sends at once,
        while its own orders are still on their way (a placement's or a cancel's answer not
        in): what `next_slice` would follow with, and nothing else (None otherwise)."""
        if self.style is not ChildStyle.PASSIVE or self.reach_qty is None or self._stopped:
            return None
        if now_ns < self.start_ns or filled_qty >= self.target_qty:
            return None
        crossing = self._price(book, Mode.CATCH_UP)
        if isinstance(crossing, Hold):
            return None
        resting = quote.open_qty if quote is not None else _ZERO
        return self._follow(now_ns, filled_qty, crossing, resting, open_qty - resting)

    def _follow(
        self, now_ns: int, filled: Decimal, priced: _Priced, resting: Decimal, flying: Decimal
    ) -> SendChildOrder | None:
        """Told to cross after its partners (`reach_qty`, in `CATCH_UP`): an IOC at the cap
        for what they lead it by beyond what is `flying` (IOCs not yet answered, counted as
        filled), at once rather than once per interval (up to 1 + `MAX_RESENDS` in one),
        never past the target beside them and the `resting` quote."""
        assert self.reach_qty is not None
        interval = (now_ns - self.start_ns) // self.slice_ns
        if self._follows >= (interval, 1 + MAX_RESENDS):
            return None
        min_qty = self.min_order_qty(priced.limit)
        need = self.reach_qty - filled - flying
        room = self.target_qty - filled - flying - resting
        if need < min_qty or room < min_qty:
            return None
        qty = self._child_qty(need, room, min_qty)
        if qty < min_qty:
            return None
        k = self._follows[1] + 1 if self._follows[0] == interval else 1
        self._follows = (interval, k)
        return self._order(now_ns, qty, priced, Mode.CATCH_UP)

    def _cross(
        self,
        now_ns: int,
        filled: Decimal,
        interval_end: int,
        priced: _Priced,
        mode: Mode,
        resting: Decimal = _ZERO,
    ) -> Hold | SendChildOrder:
        """An IOC at the slippage cap for the deficit: to the schedule at the end of this
        interval (one further in `CATCH_UP`, as `twap`), at least one regular slice, at
        most `max_child_fraction` of the target, and beside a `resting` quote never more
        than the target leaves room for (the quote stays: it may still fill as a maker)."""
        catch_up = mode is Mode.CATCH_UP
        aim = self.scheduled_qty(interval_end + (self.slice_ns if catch_up else 0))
        remaining = self.target_qty - filled - resting
        min_qty = self.min_order_qty(priced.limit)
        if remaining < min_qty:
            return Hold.DONE
        regular = self.target_qty * self.slice_ns / self.horizon_ns
        want = max(aim - filled, regular, min_qty)
        qty = self._child_qty(want, remaining, min_qty)
        if qty < min_qty:
            return Hold.BELOW_MINIMUM
        self._volume = _ZERO
        self._next_cross_ns = interval_end
        return self._order(now_ns, qty, priced, Mode.CATCH_UP)

    def _rest(
        self,
        now_ns: int,
        filled: Decimal,
        remaining: Decimal,
        interval_end: int,
        book: BookTicker | None,
        quote: Quote | None,
        refused: bool,
    ) -> Hold | SendChildOrder | CancelChildOrder:
        """Keep one post-only quote at or inside the touch for the schedule
        `QUOTE_AHEAD_SLICES` intervals ahead; replace it when it is stale, at most once per
        `REQUOTE_MIN_NS`."""
        priced = self._quote_price(book, quote)
        if isinstance(priced, Hold):
            return priced
        min_qty = self.min_order_qty(priced.limit)
        if remaining < min_qty:
            return Hold.DONE if quote is None else self._cancel(now_ns, quote, "dust")
        aim = self.scheduled_qty(interval_end + (QUOTE_AHEAD_SLICES - 1) * self.slice_ns)
        want = max(aim - filled, min_qty)
        if self.synchronized:
            # Its partners follow each of its fills (the synchronizer's **Resting legs**):
            # the smaller the quote, the smaller what stands naked while they do.
            regular = self.target_qty * self.slice_ns / self.horizon_ns
            want = max(min(want, SYNCHRONIZED_QUOTE_SLICES * regular), min_qty)
        qty = self._child_qty(want, remaining, min_qty)
        if quote is not None:
            stale = quote.price != priced.limit or quote.open_qty > qty or 2 * quote.open_qty < qty
            if not stale:
                return Hold.RESTING
            due = quote.placed_ns + REQUOTE_MIN_NS
            if now_ns < due:
                self.wake_ns = due
                return Hold.REQUOTE_WAIT
            return self._cancel(now_ns, quote, "re-quote")
        if refused and book is not None and book == self._priced_on:
            return Hold.MISSED  # refused as crossing on this book: a newer one first
        if qty < min_qty:
            return Hold.BELOW_MINIMUM
        return self._order(now_ns, qty, priced, Mode.NORMAL, TimeInForce.POST_ONLY)

    def _quote_price(self, book: BookTicker | None, quote: Quote | None) -> Hold | _Priced:
        """A quote's price: inside the spread by one tick when it is two ticks or wider,
        else at the touch (a quote that is the touch itself stays), never beyond the cap."""
        if book is None or book.bid <= 0 or book.ask <= 0 or book.bid >= book.ask:
            return Hold.NO_BOOK
        arrival = (
            self.arrival_price if self.arrival_price is not None else (book.bid + book.ask) / 2
        )
        cap = self.price_cap(arrival)
        tick = self.instrument.tick
        wide = book.ask - book.bid >= 2 * tick
        if self.side is Side.BUY:
            near = book.bid
            price = near if quote is not None and quote.price == near else near + tick * wide
            price = min(price, cap)
        else:
            near = book.ask
            price = near if quote is not None and quote.price == near else near - tick * wide
            price = max(price, cap)
        return _Priced(book=book, arrival=arrival, cap=cap, limit=price)

    def _cancel(self, now_ns: int, quote: Quote, reason: str) -> CancelChildOrder:
        return CancelChildOrder(
            leg_id=self.leg_id,
            client_order_id=quote.client_order_id,
            reason=reason,
            ts_ns=now_ns,
        )

    def _decide_pov(
        self,
        now_ns: int,
        filled: Decimal,
        open_qty: Decimal,
        book: BookTicker | None,
        mode: Mode,
    ) -> Hold | SendChildOrder:
        """`pov` (module docstring, **Child styles**)."""
        if (hold := self._before_any(now_ns, filled, mode)) is not None:
            return hold
        if self._behind(now_ns, filled, mode):
            return self._decide(now_ns, filled, open_qty, _ZERO, book, Mode.CATCH_UP)
        if now_ns < self._next_due_ns:
            return Hold.NOT_DUE
        if open_qty > 0:
            return Hold.WAITING
        priced = self._price(book, Mode.NORMAL)
        if isinstance(priced, Hold):
            return priced
        remaining = self.target_qty - filled
        min_qty = self.min_order_qty(priced.limit)
        if remaining < min_qty:
            return Hold.DONE
        want = self._pov * self._volume
        qty = self._child_qty(want, remaining, min_qty)
        if qty < min_qty:
            return Hold.BELOW_MINIMUM  # the volume adds up until it reaches one order
        interval = (now_ns - self.start_ns) // self.slice_ns
        self._volume = _ZERO
        self._next_due_ns = self.start_ns + (interval + 1) * self.slice_ns
        return self._order(now_ns, qty, priced, Mode.NORMAL)
