"""What becomes of an order that reaches a simulated venue: the decisions its drivers share."""

from __future__ import annotations

import msgspec

from venues.errors import OrderRejected, RateLimited, VenueError, VenueUnavailable
from venues.model import AckKind, ExecutionReport, NewOrder, OrderStatus, RejectReason
from venues.model import pending_report as _pending_report
from venues.sim.exchange import SimExchange
from venues.sim.profile import VenueConditions

# The in-process venue (real time, asyncio sleeps) and the backtest (discrete events on a
# simulated clock) both drive these functions, waiting the profile's latencies between the
# steps as their clock does: request, then `at_door`; processing, then `process` (or, for a
# RECEIPT venue, the answer at once and `process_after_receipt` later); response, then the
# answer reaches the client. Every seeded draw happens in here or in the latencies the
# drivers draw, in the order those steps run, so a backtest seed replays exactly.


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """An order the venue took in, and what its profile decided becomes of it.

    `answered_at_receipt`: a RECEIPT venue answers before its checks, and the outcome follows
    on the stream. `lost`: the answer never reaches the client (ack UNKNOWN). `applied`: the
    venue places the order all the same (always true unless lost). `apply_after_ns`: for a
    lost-but-applied order under the profile's `unknown_apply_delay`, how long after receipt
    it is placed; None: when it is processed.
    """

    answered_at_receipt: bool = False
    lost: bool = False
    applied: bool = True
    apply_after_ns: int | None = None

    @property
    def applied_when_processed(self) -> bool:
        """Whether processing places the order (rather than nothing, or a later step)."""
        return self.applied and self.apply_after_ns is None


def outage_refusal(conditions: VenueConditions, venue: str, now_ns: int) -> VenueUnavailable | None:
    """The answer to any request reaching the venue at `now_ns` in an outage; None when up."""
    mode = conditions.outage(now_ns)
    if mode is None:
        return None
    kind = "refused the connection" if mode == "refuse" else "answered 503"
    return VenueUnavailable(f"venue {venue} is in an outage: it {kind}", venue=venue, code=503)


def admit(conditions: VenueConditions, venue: str, received_ns: int) -> Admitted | RateLimited:
    """Count one order received at `received_ns` against the rate limit and, if it is within
    it, draw its fate: the answer lost or not, the order applied or not, and when."""
    retry = conditions.rate_limited(received_ns)
    if retry is not None:
        return RateLimited(
            f"order rate limit of {conditions.profile.orders_per_minute}/min reached on {venue}",
            venue=venue,
            retry_after_s=retry,
        )
    lost, applied = conditions.inject_unknown()
    return Admitted(
        answered_at_receipt=conditions.profile.ack is AckKind.RECEIPT and not lost,
        lost=lost,
        applied=applied,
        apply_after_ns=conditions.unknown_apply_delay_ns() if lost and applied else None,
    )


def at_door(conditions: VenueConditions, venue: str, received_ns: int) -> Admitted | VenueError:
    """A single order's fate as it reaches the venue: refused (outage, then rate limit) or
    admitted. A batch is one request: its outage check is the request's, its orders' rate
    limit their own (`outage_refusal`, then `admit` for each)."""
    refusal = outage_refusal(conditions, venue, received_ns)
    return refusal if refusal is not None else admit(conditions, venue, received_ns)


def apply(
    conditions: VenueConditions,
    exchange: SimExchange,
    account_id: str,
    order: NewOrder,
    received_ns: int,
    now_ns: int,
) -> ExecutionReport | OrderRejected:
    """Place an admitted order on the exchange at `now_ns`, under the profile's rule for a
    reused client order id: its state afterwards, or its reject (the profile's injected
    reject is drawn first, and leaves the exchange untouched)."""
    if conditions.inject_reject():
        return OrderRejected(
            f"order {order.client_order_id} rejected by {exchange.venue} (injected reject)",
            reason=RejectReason.INJECTED,
            venue=exchange.venue,
            client_order_id=order.client_order_id,
        )
    try:
        return exchange.place(
            account_id,
            order,
            now_ns,
            receive_ns=received_ns,
            client_id_reuse=conditions.profile.client_id_reuse,
        )
    except OrderRejected as e:
        return e


def process(
    conditions: VenueConditions,
    exchange: SimExchange,
    account_id: str,
    order: NewOrder,
    received_ns: int,
    now_ns: int,
    admitted: Admitted,
) -> ExecutionReport | OrderRejected:
    """Process an order not answered at receipt: place it if it is applied now, and return
    the answer that reaches the client (a reject is an answer too)."""
    outcome = None
    if admitted.applied_when_processed:
        outcome = apply(conditions, exchange, account_id, order, received_ns, now_ns)
    if admitted.lost or outcome is None:  # whatever the answer said, reject included
        return pending_view(exchange.venue, order, AckKind.UNKNOWN, received_ns)
    if isinstance(outcome, OrderRejected):
        return outcome
    return answer_view(conditions.profile.ack, outcome)


def process_after_receipt(
    conditions: VenueConditions,
    exchange: SimExchange,
    account_id: str,
    order: NewOrder,
    received_ns: int,
    now_ns: int,
) -> None:
    """Process an order a RECEIPT venue has answered: place it, or publish its reject on the
    account's stream, the only way the client can learn of it."""
    outcome = apply(conditions, exchange, account_id, order, received_ns, now_ns)
    if isinstance(outcome, OrderRejected):
        rejected = rejected_after_receipt(exchange.venue, order, received_ns, outcome, now_ns)
        exchange.notify(account_id, rejected)


def apply_late(
    conditions: VenueConditions,
    exchange: SimExchange,
    account_id: str,
    order: NewOrder,
    received_ns: int,
    now_ns: int,
) -> None:
    """Apply a lost-but-applied order once its `apply_after_ns` is over. A reject leaves no
    trace, as with any order whose answer was lost: the client finds no such order."""
    apply(conditions, exchange, account_id, order, received_ns, now_ns)


def answer_view(ack: AckKind, final: ExecutionReport) -> ExecutionReport:
    """The answer to a placed order under the venue's ack semantics (DESIGN §6): RESULT shows
    the order after the match, ACCEPTED as it passed the risk checks."""
    if ack is AckKind.RESULT:
        return msgspec.structs.replace(final, ack_kind=AckKind.RESULT)
    return accepted_view(final)


def accepted_view(r: ExecutionReport) -> ExecutionReport:
    """The order as it stood when it passed the risk checks: what an ACCEPTED answer shows."""
    return msgspec.structs.replace(
        r,
        ack_kind=AckKind.ACCEPTED,
        status=OrderStatus.NEW,
        cum_filled=r.cum_filled * 0,
        avg_price=None,
        cum_fee=r.cum_fee * 0,
        last_fill=None,
        reject_reason=None,
        reject_message=None,
        venue_ts_ns=r.venue_accept_ns or r.venue_ts_ns,
    )


def pending_view(venue: str, order: NewOrder, ack: AckKind, received_ns: int) -> ExecutionReport:
    """An answer that carries no outcome (RECEIPT, or UNKNOWN when lost), as this venue knows
    the order: it received it at `received_ns` (and a RECEIPT says so)."""
    return _pending_report(
        order,
        venue,
        ack,
        venue_receive_ns=received_ns if ack is AckKind.RECEIPT else None,
        venue_ts_ns=received_ns,
    )


def rejected_after_receipt(
    venue: str, order: NewOrder, received_ns: int, error: OrderRejected, now_ns: int
) -> ExecutionReport:
    """The REJECTED report a RECEIPT venue publishes when its checks refuse the order."""
    return msgspec.structs.replace(
        pending_view(venue, order, AckKind.RECEIPT, received_ns),
        status=OrderStatus.REJECTED,
        reject_reason=error.reason,
        reject_message=error.message,
        venue_ts_ns=now_ns,
    )
