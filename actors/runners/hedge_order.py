"""One hedge order from its send to its end: the same code live (`VenueGateway.hedge`) and
in the backtest (its desk's port), each driving it through a clock and its venue's calls.

A desk must not hear of a hedge order while the order may still fill: it would book a fill
that is not final, or cross what it takes an ended order to have left and double the hedge.
So the runner answers with the order's final report, or with an error once the order is
known to have ended, or with `HedgeOrderOpen` when it may still rest:

- a final report, from the placing's answer or the account's stream, whichever comes
  first, is the answer;
- a resting order (`rest_ns` > 0) not final `rest_ns` after its send is withdrawn, and so
  is an order still not final `FINAL_WAIT_NS` after an answer that was not (a venue that
  acknowledges first and streams the result), once the venue has been asked for it;
- an order whose placing failed is withdrawn when `actors.hedge.withdrawal` says so (an
  unanswered placing; a resting order refused by a rate limit), and the desk then hears the
  error, or the venue's final report of an order that ended meanwhile (one the venue
  applied late, say; one the stream showed live is asked for its end); any other error is
  the answer at once;
- withdrawing: one cancel at a time, until the venue has the order ended (the cancel's
  report, or "unknown order": gone, or never placed), pausing `WITHDRAW_PAUSE_NS` between
  tries, doubling up to `WITHDRAW_PAUSE_MAX_NS`, for `WITHDRAW_NS` at most: past it, the
  answer is `HedgeOrderOpen`, and the desk settles the order later (`DeskRunner`). While the
  placing is unanswered, and after an unanswered one until the venue's order window has
  passed since the send, "unknown order" is not believed: the venue may still apply it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from actors.hedge import (
    HEDGE_WITHDRAW_PAUSE_MAX_S,
    HEDGE_WITHDRAW_PAUSE_S,
    HEDGE_WITHDRAW_S,
    HedgeOrderOpen,
    answer_lost,
    withdrawal,
)
from actors.runners.port import Clock, Timer, VenueAnswer, VenueCalls
from venues.errors import UnknownOrder, VenueError
from venues.model import AckKind, ExecutionReport, NewOrder

log = logging.getLogger(__name__)

NS = 1_000_000_000
WITHDRAW_NS = int(HEDGE_WITHDRAW_S * NS)
WITHDRAW_PAUSE_NS = int(HEDGE_WITHDRAW_PAUSE_S * NS)
WITHDRAW_PAUSE_MAX_NS = int(HEDGE_WITHDRAW_PAUSE_MAX_S * NS)
# An order answered but not final waits this long for its final report on the stream before
# the venue is asked for it.
FINAL_WAIT_NS = 5 * NS

# The answer: the order's final report, or the error once it is known ended (or may rest:
# `HedgeOrderOpen`); None: withdrawn on its own (`withdraw`), its final report unknown.
HedgeOrderAnswer = ExecutionReport | Exception | None


class HedgeOrderRunner:
    """One hedge order (see the module docstring). `then` gets the answer, once; feed it the
    account stream's reports of the order (`on_report`)."""

    def __init__(
        self,
        clock: Clock,
        venue: VenueCalls,
        venue_name: str,
        symbol: str,
        client_order_id: str,
        then: Callable[[HedgeOrderAnswer], None],
    ) -> None:
        self.clock = clock
        self.venue = venue
        self.venue_name = venue_name
        self.symbol = symbol
        self.client_order_id = client_order_id
        self._then = then
        self.report: ExecutionReport | None = None  # the newest the venue gave of it
        self.done = False
        self._sent_ns = clock.now_ns()
        self._answered = True  # the placing's answer came (or nothing was placed)
        self._resting = False
        self._withdrawing = False
        self._timer: Timer | None = None
        self._cause: Exception | None = None  # the placing's error, the answer once ended
        self._last_error: Exception | None = None  # the newest cancel's error
        self._unknown_until: int | None = None  # "unknown order" believed from then on
        self._deadline_ns = 0
        self._pause_ns = WITHDRAW_PAUSE_NS

    # -- entry points -----------------------------------------------------------------------
    def place(self, order: NewOrder, rest_ns: int = 0) -> None:
        """Send `order`; resting (`rest_ns` > 0), withdraw it that long after if not final."""
        self._sent_ns = self.clock.now_ns()
        self._answered = False
        self._resting = rest_ns > 0
        self.venue.place(order, self._placed)
        if self._resting:
            self._timer = self.clock.call_at(self._sent_ns + rest_ns, self._rested)

    def withdraw(self) -> None:
        """Withdraw an order placed before (one a desk that is gone left resting)."""
        self._start_withdrawal()

    def on_report(self, report: ExecutionReport) -> None:
        """A report of the order from the account's stream."""
        self._remember(report)
        if not self.done and report.status.is_terminal:
            self._finish(report)

    def stop(self) -> None:
        """Nothing more happens (its driver is going away)."""
        self.done = True
        self._cancel_timer()

    # -- the placing ------------------------------------------------------------------------
    def _placed(self, answer: VenueAnswer) -> None:
        self._answered = True
        if self.done:
            return
        if not isinstance(answer, VenueError) and answer.ack_kind is AckKind.UNKNOWN:
            answer = answer_lost(self.venue_name, self.client_order_id)
        if isinstance(answer, VenueError):
            withdraw, window_ns = withdrawal(answer, self._resting)
            if not withdraw:
                self._finish(answer)
                return
            self._cause = answer
            if window_ns is not None:
                self._unknown_until = self._sent_ns + window_ns
            if not self._withdrawing:
                self._cancel_timer()
                self._start_withdrawal()
            return
        self._remember(answer)
        if answer.status.is_terminal:
            self._finish(answer)
        elif not self._resting and not self._withdrawing:
            self._timer = self.clock.call_at(self.clock.now_ns() + FINAL_WAIT_NS, self._late)

    def _rested(self) -> None:
        self._timer = None
        if not self.done and not self._withdrawing:
            self._start_withdrawal()

    def _late(self) -> None:
        """Answered, not final, and nothing final came down the stream: ask the venue."""
        self._timer = None
        if not self.done:
            self.venue.query(self.symbol, self.client_order_id, self._queried)

    def _queried(self, answer: VenueAnswer) -> None:
        if self.done:
            return
        if isinstance(answer, ExecutionReport):
            self._remember(answer)
            if answer.status.is_terminal:
                self._finish(answer)
                return
        if not self._withdrawing:  # still open, or the venue could not say: withdraw it
            self._start_withdrawal()

    # -- the withdrawal ---------------------------------------------------------------------
    def _start_withdrawal(self) -> None:
        self._withdrawing = True
        self._deadline_ns = self.clock.now_ns() + WITHDRAW_NS
        self._cancel_once()

    def _cancel_once(self) -> None:
        self._timer = None
        if not self.done:
            self.venue.cancel(self.symbol, self.client_order_id, self._cancelled)

    def _cancelled(self, answer: VenueAnswer) -> None:
        if self.done:
            return
        if isinstance(answer, ExecutionReport):
            self._remember(answer)
            self._ended()
            return
        if isinstance(answer, UnknownOrder) and self._believe_unknown():
            self._ended()
            return
        if not isinstance(answer, UnknownOrder):
            self._last_error = answer
        now = self.clock.now_ns()
        left = self._deadline_ns - now
        if left <= 0:
            log.error(
                "hedge order %s (%s) could not be cancelled in %.0f s: it may still rest",
                self.client_order_id,
                self.symbol,
                WITHDRAW_NS / NS,
            )
            open_ = HedgeOrderOpen(self.client_order_id, self.symbol, WITHDRAW_NS / NS)
            open_.__cause__ = self._last_error or self._cause
            self._finish(open_)
            return
        self._timer = self.clock.call_at(now + min(self._pause_ns, left), self._cancel_once)
        self._pause_ns = min(2 * self._pause_ns, WITHDRAW_PAUSE_MAX_NS)

    def _believe_unknown(self) -> bool:
        """Whether "unknown order" means the order has ended: not while the placing is
        unanswered (the order may be on its way), nor after an unanswered placing before the
        venue's order window is over (`withdrawal`)."""
        if not self._answered:
            return False
        return self._unknown_until is None or self.clock.now_ns() >= self._unknown_until

    def _ended(self) -> None:
        """The venue has the order ended: its final report is the answer. Without it, an
        order the venue reported live (its answer was not final, or its placing went
        unanswered and the stream showed it) ended on its own, its final report not yet
        here: the venue is asked for it after the wait for the stream. One never seen is
        answered with its placing's error, or None when it was only withdrawn."""
        report = self.report
        if report is not None and report.status.is_terminal:
            self._finish(report)
        elif report is not None:
            self._timer = self.clock.call_at(self.clock.now_ns() + FINAL_WAIT_NS, self._last)
        else:
            self._finish(self._cause)  # None: withdrawn, never seen, nothing known to fill

    def _last(self) -> None:
        self._timer = None
        if not self.done:
            self.venue.query(self.symbol, self.client_order_id, self._final_query)

    def _final_query(self, answer: VenueAnswer) -> None:
        """The last word: the venue's report of the order, else the placing's error (or the
        query's, when the placing was answered)."""
        if self.done:
            return
        if isinstance(answer, ExecutionReport):
            self._remember(answer)
            self._finish(self.report)
        else:
            self._finish(self._cause or answer)

    # -- common -----------------------------------------------------------------------------
    def _remember(self, report: ExecutionReport) -> None:
        if self.report is None or report.cum_filled >= self.report.cum_filled:
            self.report = report

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, answer: HedgeOrderAnswer) -> None:
        self.done = True
        self._cancel_timer()
        self._then(answer)
