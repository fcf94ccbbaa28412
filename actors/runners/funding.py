"""Funding: the transfers that cure a basket's shortfall, carried out and watched (DESIGN §5.2).

When the margin book refuses a basket for a shortfall and the cluster allows routing
(`[collateral] routing = true`), the collateral runner asks the planner (`actors.routing`)
for the fewest transfers that cure it, and this module carries them out through the venues
and follows them to the end. What the basket does meanwhile is its `params.on_unfunded`:

Either way the basket holds at once what there is: all it asks of the pools that are not
short, and what the short pools have (so the transfers cure only the shortfall, and a basket
planning meanwhile does not count the same money).

- `wait`: nothing is sent; the basket stays CHECKING, showing the pending transfers and
  their ages, until the money has landed and the whole reservation is granted (`Reserved`),
  or the deadline (`params.funding_timeout_s`) passes or a transfer fails (`Refused`: the
  basket fails with nothing sent, and gives back what it held);
- `hedge`: the legs whose pools are not short start at once; the others
  (`Funding.unfunded_legs`) are armed but not fired, and the hedge desk holds the exposure
  they would have offset; once the money lands the basket's whole reservation is granted
  and the unfunded legs fire and catch up; if it never lands, the basket's failure policy
  applies.

Each transfer runs as a *move*: the planner's steps from a source pool to a short pool, one
after the other (an internal transfer, a withdrawal, another internal transfer at the
destination). A step is asked of its venue once, under a client transfer id derived from
the basket's run (`<prefix>-t<n>`); an answer that is lost is looked for, never asked again.
Its state is read back every `poll_ns` until it is final.

The book keeps what a step sends from being promised twice: from the moment the step is
asked until an account read of its source venue that started after the venue accepted it
(which shows the debit), its amount is held under `transfer:<client id>`.

The deposit of a withdrawal can show at the destination after the withdrawal reads
completed; a basket whose money has not landed is read again every `poll_ns`, and is
planned again only after `LAND_GRACE_NS` without it (so a slow deposit is not paid twice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import msgspec

from actors.margin import (
    LegNeed,
    Pool,
    Refused,
    Reserved,
    pools_of,
    split_pools,
    spot_pool,
)
from actors.report import TransferView
from actors.routing import NoRoute, Plan, RoutingRules, Step, plan_transfers
from actors.runners.port import short_error as _short
from actors.spec.model import OnUnfunded
from venues.errors import VenueUnavailable
from venues.model import TransferReceipt, TransferState, WalletKind

if TYPE_CHECKING:
    from actors.runners.collateral import CollateralRunner

NS = 1_000_000_000
POLL_NS = 1 * NS  # a pending transfer's state is read this often
LAND_GRACE_NS = 30 * NS  # every transfer done, the money not yet seen: read again, not re-plan
MAX_PLANS = 3  # plans per basket (the first, and again when the money went elsewhere)
KEPT = 1_000  # ended baskets whose transfers stay listed
FOLLOW_NS = 3_600 * NS  # a transfer still pending is followed this long past the deadline
ASKED, LET_GO = -1, -2  # a step's hold: not answered yet; given back

# A venue's answer to a transfer request or a status read: its receipt, or the error.
TransferAnswer = TransferReceipt | Exception


class FundingAsk(msgspec.Struct, frozen=True, kw_only=True):
    """What a basket allows while its collateral is routed: `mode` (its `on_unfunded`),
    how long it waits (`timeout_ns`), the prefix of its client transfer ids (its run's
    order prefix, unique forever within a journal), and the routing rules of the
    configuration it was submitted under (each basket brings its engine's: the collateral
    actor is one per namespace, and outlives engines)."""

    mode: OnUnfunded
    timeout_ns: int
    client_prefix: str
    rules: RoutingRules | None = None  # the cluster's `[collateral]` (None: no routing)


class Funding(msgspec.Struct, frozen=True, kw_only=True, tag="funding"):
    """The basket's collateral is being routed (see the module docstring).

    `reserved`: what is held already (all the pools that are not short, and what the short
    ones have; None when nothing could be); `unfunded_legs` the legs that wait for the
    money (under `hedge` the others start); `deadline_ns` when the basket stops waiting;
    `plan` the transfers in words."""

    basket_id: str
    mode: OnUnfunded
    plan: str
    transfers: list[TransferView]
    reserved: Reserved | None
    unfunded_legs: list[str]
    deadline_ns: int
    reason: str
    ts_ns: int


class FundingPort(Protocol):
    """The venues' wallets, as callbacks (the collateral runner's port has them)."""

    def send_transfer(
        self, step: Step, client_transfer_id: str, then: Callable[[TransferAnswer], None]
    ) -> None:
        """Ask `step.venue` for the step (a withdrawal asks the destination for its deposit
        address first); `then` gets the venue's receipt, or the error."""
        ...

    def transfer_status(
        self, receipt: TransferReceipt, then: Callable[[TransferAnswer], None]
    ) -> None: ...

    def transfer_changed(self, view: TransferView) -> None:
        """A transfer was asked for or changed state (for the journal)."""
        ...

    def transfer_venues(self) -> tuple[frozenset[str], frozenset[str]]:
        """The venues whose adapters can transfer between their wallets, and those that can
        withdraw to and take deposits from other venues."""
        ...


class _Step:
    """One step of a move, as it goes."""

    def __init__(self, step: Step, client_id: str) -> None:
        self.step = step
        self.client_id = client_id
        self.receipt: TransferReceipt | None = None
        self.state = TransferState.PENDING
        self.asked = False
        self.requested_ns = 0
        self.updated_ns = 0
        self.reason = ""
        # The hold on the source: ASKED until the venue's receipt, then the number of the
        # newest read of the source started by then (reads numbered above it show the
        # debit, and let it go), then LET_GO.
        self.accepted_after_read = ASKED


class _Move:
    def __init__(self, steps: list[_Step]) -> None:
        self.steps = steps
        self.at = 0  # the step under way

    @property
    def done(self) -> bool:
        return self.at >= len(self.steps)


class _Basket:
    """One basket's funding: its needs, its moves, and who waits for the outcome."""

    def __init__(
        self,
        basket_id: str,
        needs: Sequence[LegNeed],
        usd: Mapping[str, Decimal],
        holdings: Mapping[str, Mapping[str, Decimal]],
        ask: FundingAsk,
        deadline_ns: int,
    ) -> None:
        self.basket_id = basket_id
        self.needs = list(needs)
        self.usd = dict(usd)
        self.holdings = {v: dict(h) for v, h in holdings.items()}
        self.ask = ask
        self.deadline_ns = deadline_ns
        self.moves: list[_Move] = []
        self.plans = 0
        self.result: Reserved | Refused | None = None
        self.waiters: list[Callable[[Reserved | Refused], None]] = []
        self.landed_ns: int | None = None  # every move done since
        self.polling = False
        self.numbered = 0

    @property
    def steps(self) -> list[_Step]:
        return [s for m in self.moves for s in m.steps]

    @property
    def venues(self) -> list[str]:
        return sorted({n.venue for n in self.needs})


class Funder:
    """Every basket's funding in the cluster (see the module docstring); a part of the
    `CollateralRunner`, whose book, reads and port it uses."""

    def __init__(self, runner: CollateralRunner, *, poll_ns: int = POLL_NS) -> None:
        self.runner = runner
        self.poll_ns = poll_ns
        self._baskets: dict[str, _Basket] = {}
        self._ended: list[_Basket] = []  # baskets released, oldest first

    @property
    def port(self) -> FundingPort:
        return self.runner.port  # type: ignore[return-value]

    # -- from the collateral runner -----------------------------------------------------------
    def fund(
        self,
        basket_id: str,
        needs: Sequence[LegNeed],
        refused: Refused,
        ask: FundingAsk,
        then: Callable[[Reserved | Refused | Funding], None],
    ) -> None:
        """The book refused `needs` with `refused`: plan the transfers that cure it and
        start them (`Funding`), or refuse, saying why no transfer can."""
        _, can_withdraw = self.port.transfer_venues()
        touched = {n.venue for n in needs}
        assert ask.rules is not None, "routing asked without rules"
        others = sorted(set(can_withdraw) - touched) if ask.rules.withdrawals else []
        if not others:
            self._fund(basket_id, needs, refused, ask, then)
            return
        # Money may come from venues the basket does not trade on: their figures first.
        waiting = set(others)

        def read(name: str, why: str | None) -> None:
            waiting.discard(name)
            if not waiting:
                self._fund(basket_id, needs, refused, ask, then)

        for name in others:
            self.runner.join_read(name, lambda why, name=name: read(name, why))

    def _fund(
        self,
        basket_id: str,
        needs: Sequence[LegNeed],
        refused: Refused,
        ask: FundingAsk,
        then: Callable[[Reserved | Refused | Funding], None],
    ) -> None:
        book = self.runner.book
        now = self.runner.port.now_ns()
        usd = book.need(needs)
        holdings = book.holdings_need(needs)
        b = _Basket(basket_id, needs, usd, holdings, ask, now + ask.timeout_ns)
        plan = self._plan(b, refused)
        if isinstance(plan, NoRoute):
            then(_refused(refused, f"{refused.reason}; no transfer can cure it: {plan.reason}"))
            return
        self._baskets[basket_id] = b
        # Held at once: all the basket asks where there is enough, and what there is of
        # the short pools, so that the transfers need cure only the shortfall (another
        # basket planning meanwhile does not count the same money in).
        short = _short_pools(refused)
        unfunded = sorted({n.leg_id for n in needs if n.pool in short})
        wanted = pools_of(usd, holdings)
        spare = book.spare(basket_id)
        now_held = {
            pool: max(min(amount, spare.get(pool, amount)), Decimal(0)) if pool in short else amount
            for pool, amount in wanted.items()
        }
        usd_now, holdings_now = split_pools(now_held)
        got = book.reserve(basket_id, usd_now, now, holdings=holdings_now)
        partial = got if isinstance(got, Reserved) else None
        if partial is None:
            unfunded = sorted(n.leg_id for n in needs)  # nothing held: every leg waits
        self._start(b, plan)
        self.runner.port.call_at(b.deadline_ns, lambda: self._deadline(b))
        then(
            Funding(
                basket_id=basket_id,
                mode=ask.mode,
                plan=plan.message,
                transfers=self.transfers(basket_id),
                reserved=partial,
                unfunded_legs=unfunded,
                deadline_ns=b.deadline_ns,
                reason=f"basket {basket_id}: {refused.reason.split(': ', 1)[-1]}; "
                f"routing: {plan.message}",
                ts_ns=now,
            )
        )

    def funded(self, basket_id: str, then: Callable[[Reserved | Refused], None]) -> bool:
        """`then` gets the outcome of the basket's funding (at once if it is known); False
        when the basket has no funding under way."""
        b = self._baskets.get(basket_id)
        if b is None:
            return False
        if b.result is not None:
            then(b.result)
        else:
            b.waiters.append(then)
        return True

    def transfers(self, basket_id: str) -> list[TransferView]:
        b = self._baskets.get(basket_id)
        return [] if b is None else [self._view(b, s) for s in b.steps if s.asked]

    def all_transfers(self) -> list[TransferView]:
        return [v for basket_id in sorted(self._baskets) for v in self.transfers(basket_id)]

    def release(self, basket_id: str) -> None:
        """The basket ended: its funding is over (transfers under way still run to their
        end at the venues, followed and journaled; their holds go with the reads that show
        them). The newest `KEPT` ended baskets stay listed for reports."""
        b = self._baskets.get(basket_id)
        if b is None:
            return
        if b.result is None:
            self._end(b, self._refusal(b, "the basket ended while its transfers were pending"))
        for s in b.steps:
            if s.asked and s.accepted_after_read == ASKED:
                # The venue never said it has it: no longer held back here (if it did take
                # it, its account figures show the debit at the next read).
                self._let_go(s)
        self._ended.append(b)
        while len(self._ended) > KEPT:
            gone = self._ended.pop(0)
            current = self._baskets.get(gone.basket_id) is gone  # not a later run's
            if current and all(s.state.is_final for s in gone.steps if s.asked):
                del self._baskets[gone.basket_id]

    def read_done(self, venue: str, number: int) -> None:
        """An account read of `venue` numbered `number` succeeded: the holds of transfers
        it shows are let go."""
        book = self.runner.book
        for b in self._baskets.values():
            for s in b.steps:
                if s.asked and s.step.venue == venue and 0 <= s.accepted_after_read < number:
                    book.release(_hold_id(s.client_id))
                    s.accepted_after_read = LET_GO

    def holds_waiting(self, venue: str) -> bool:
        """A step's hold on `venue` waits for a read not yet started."""
        started = self.runner.started(venue)
        return any(
            s.step.venue == venue and s.accepted_after_read >= started
            for b in self._baskets.values()
            for s in b.steps
        )

    # -- planning -----------------------------------------------------------------------------
    def _plan(self, b: _Basket, refused: Refused) -> Plan | NoRoute:
        b.plans += 1
        book = self.runner.book
        shortfalls = {(s.venue, s.asset): s.short for s in refused.shortfalls}
        wanted = pools_of(b.usd, b.holdings)
        free = book.spare(b.basket_id, wanted)
        can_transfer, can_withdraw = self.port.transfer_venues()
        assert b.ask.rules is not None
        return plan_transfers(
            shortfalls,
            free,
            b.ask.rules,
            can_transfer=can_transfer,
            can_withdraw=can_withdraw,
        )

    def _start(self, b: _Basket, plan: Plan) -> None:
        for move in plan.moves:
            steps = []
            for step in move.steps:
                b.numbered += 1
                steps.append(_Step(step, f"{b.ask.client_prefix}-t{b.numbered}"))
            m = _Move(steps)
            b.moves.append(m)
            self._ask(b, m)
        self._poll_later(b)

    # -- the steps ----------------------------------------------------------------------------
    def _ask(self, b: _Basket, m: _Move) -> None:
        s = m.steps[m.at]
        now = self.runner.port.now_ns()
        step = s.step
        if m.at > 0:
            # A later step of a move sends what the one before delivered: that money was
            # held at its origin, and the book may not show it here yet.
            s.asked = True
            s.requested_ns = s.updated_ns = now
            s.accepted_after_read = LET_GO
            self.port.transfer_changed(self._view(b, s))
            self.port.send_transfer(step, s.client_id, lambda a: self._answered(b, m, s, a))
            return
        held = self.runner.book.reserve(
            _hold_id(s.client_id),
            {step.venue: step.amount} if _wallet(step.source) is WalletKind.MARGIN else {},
            now,
            holdings=(
                {step.venue: {spot_pool(step.asset): step.amount}}
                if _wallet(step.source) is WalletKind.SPOT
                else None
            ),
        )
        s.asked = True
        s.requested_ns = s.updated_ns = now
        if isinstance(held, Refused):
            self._step_ended(b, s, TransferState.FAILED, f"its source is short now: {held.reason}")
            return
        self.port.transfer_changed(self._view(b, s))
        self.port.send_transfer(step, s.client_id, lambda a: self._answered(b, m, s, a))

    def _answered(self, b: _Basket, m: _Move, s: _Step, answer: TransferAnswer) -> None:
        now = self.runner.port.now_ns()
        if isinstance(answer, Exception):
            if _lost(answer):
                # The venue may have taken it: found by its client id on the next poll.
                s.receipt = _unknown_receipt(s, now)
                s.reason = f"answer lost ({_short(answer)}); looked for by its client id"
                self.port.transfer_changed(self._view(b, s))
                return
            if m.at > 0 and b.result is None and now < b.deadline_ns:
                # What the step before delivered may not be credited yet: asked again, under
                # the same client id (a venue that took the first keeps it).
                s.reason = f"asked again in {self.poll_ns / NS:g} s: {_short(answer)}"
                self.port.transfer_changed(self._view(b, s))
                self.runner.port.call_at(now + self.poll_ns, lambda: self._ask_again(b, m, s))
                return
            self._let_go(s)
            self._step_ended(b, s, TransferState.FAILED, _short(answer))
            return
        self._update(b, m, s, answer)

    def _ask_again(self, b: _Basket, m: _Move, s: _Step) -> None:
        if b.result is None and not s.state.is_final:
            self.port.send_transfer(s.step, s.client_id, lambda a: self._answered(b, m, s, a))

    def _let_go(self, s: _Step) -> None:
        self.runner.book.release(_hold_id(s.client_id))
        s.accepted_after_read = LET_GO

    def _update(self, b: _Basket, m: _Move, s: _Step, receipt: TransferReceipt) -> None:
        s.receipt = receipt
        if receipt.transfer_id and s.accepted_after_read == ASKED:
            # The venue has it (and has debited the source): the first read of the source
            # started from now on shows it, and lets the hold go.
            s.accepted_after_read = self.runner.started(s.step.venue)
            self.runner.refresh([s.step.venue])
        if receipt.state is TransferState.FAILED:
            self._let_go(s)  # the venue gave it back
        if receipt.state is TransferState.PENDING:
            return
        self._step_ended(b, s, receipt.state, receipt.reason)
        if receipt.state is TransferState.COMPLETED and b.result is None:
            m.at += 1
            if not m.done:
                self._ask(b, m)
            elif all(x.done for x in b.moves):
                b.landed_ns = self.runner.port.now_ns()
                self._try_reserve(b)

    def _step_ended(self, b: _Basket, s: _Step, state: TransferState, reason: str) -> None:
        s.state = state
        s.reason = reason
        s.updated_ns = self.runner.port.now_ns()
        self.port.transfer_changed(self._view(b, s))
        if state is TransferState.FAILED and b.result is None:
            self._end(b, self._refusal(b, f"transfer {s.client_id} failed: {reason or 'failed'}"))

    def _poll_later(self, b: _Basket) -> None:
        if b.polling:
            return
        b.polling = True

        def poll() -> None:
            b.polling = False
            self._poll(b)

        self.runner.port.call_at(self.runner.port.now_ns() + self.poll_ns, poll)

    def _poll(self, b: _Basket) -> None:
        """Read the state of every step under way; keep at it while any is pending (after
        the basket's funding ended too, so the record of each transfer ends, for up to
        `FOLLOW_NS` past its deadline)."""
        pending = False
        if b.result is not None and self.runner.port.now_ns() > b.deadline_ns + FOLLOW_NS:
            return  # followed long enough past its deadline; the journal has it as last seen
        for m in b.moves:
            if m.done:
                continue
            s = m.steps[m.at]
            if not s.asked or s.state.is_final or s.receipt is None:
                continue
            pending = True

            def read(answer: TransferAnswer, m: _Move = m, s: _Step = s) -> None:
                if not isinstance(answer, Exception) and not s.state.is_final:
                    self._update(b, m, s, answer)  # an error: asked again on the next poll

            self.port.transfer_status(s.receipt, read)
        if b.result is None and b.landed_ns is not None:
            self._try_reserve(b)
            pending = True
        if pending:
            self._poll_later(b)

    # -- the outcome --------------------------------------------------------------------------
    def _try_reserve(self, b: _Basket) -> None:
        """Every move is done: read the basket's venues again and reserve it whole."""
        runner = self.runner

        def decided(result: Reserved | Refused | Funding) -> None:
            if b.result is not None:
                return
            if isinstance(result, Reserved):
                self._end(b, result)
                return
            if isinstance(result, Funding):  # not asked of the reservation below
                return
            now = runner.port.now_ns()
            assert b.landed_ns is not None
            if now - b.landed_ns < LAND_GRACE_NS or result.unknown_venues:
                self._poll_later(b)  # the deposit may not show yet
                return
            if b.plans >= MAX_PLANS:
                why = f"{result.reason}; still short after {b.plans} plans"
                self._end(b, _refused(result, why))
                return
            plan = self._plan(b, result)
            if isinstance(plan, NoRoute):
                self._end(
                    b, _refused(result, f"{result.reason}; no transfer can cure it: {plan.reason}")
                )
                return
            b.landed_ns = None
            self._start(b, plan)

        runner.reserve(b.basket_id, b.needs, b.venues, None, decided)

    def _deadline(self, b: _Basket) -> None:
        if b.result is not None:
            return
        now = self.runner.port.now_ns()
        pending = [self._view(b, s) for s in b.steps if s.asked and not s.state.is_final]
        what = "; ".join(f"{v.message} for {v.age_s(now):.0f} s" for v in pending)
        timeout_s = b.ask.timeout_ns / NS
        why = f"funding not done within params.funding_timeout_s = {timeout_s:g} s"
        self._end(b, self._refusal(b, f"{why}: {what}" if what else why))

    def _refusal(self, b: _Basket, why: str) -> Refused:
        """The basket's funding ended without its collateral, `why`, now."""
        now = self.runner.port.now_ns()
        return Refused(basket_id=b.basket_id, reason=f"basket {b.basket_id}: {why}", ts_ns=now)

    def _end(self, b: _Basket, result: Reserved | Refused) -> None:
        b.result = result
        waiters, b.waiters = b.waiters, []
        for then in waiters:
            then(result)

    def _view(self, b: _Basket, s: _Step) -> TransferView:
        step = s.step
        return TransferView(
            client_transfer_id=s.client_id,
            basket_id=b.basket_id,
            kind=step.kind,
            venue=step.venue,
            asset=step.asset,
            amount=step.amount,
            source=_where(step.source),
            destination=_where(step.destination),
            state=s.state,
            requested_ns=s.requested_ns,
            updated_ns=s.updated_ns,
            venue_transfer_id=s.receipt.transfer_id if s.receipt is not None else "",
            reason=s.reason,
        )


def funding_story(f: Funding, funded_ns: int | None, why_not: str = "") -> str:
    """What a basket did while its collateral was routed, in one line, for its report:
    `funded_ns` when the whole reservation was held (None: never), `why_not` the refusal."""
    waited = None if funded_ns is None else f"{(funded_ns - f.ts_ns) / NS:.1f} s"
    if f.mode is OnUnfunded.HEDGE and f.reserved is not None:
        legs = ", ".join(f.unfunded_legs)
        if waited is None:
            because = f" ({why_not})" if why_not else ""
            return (
                f"legs {legs} were never funded{because}; the others ran, hedged, under the "
                "basket's policy"
            )
        return (
            f"legs {legs} started {waited} after the others, once funded; the hedge held the "
            "exposure they would have offset meanwhile"
        )
    if waited is None:
        return "waited in CHECKING for the transfers, which did not land; nothing was sent"
    return f"waited {waited} in CHECKING for the transfers; nothing was sent meanwhile"


def _short_pools(refused: Refused) -> set[Pool]:
    return {(s.venue, s.asset) for s in refused.shortfalls}


def _hold_id(client_id: str) -> str:
    return f"transfer:{client_id}"


def _wallet(end: tuple[str, WalletKind]) -> WalletKind:
    return end[1]


def _where(end: tuple[str, WalletKind]) -> str:
    return f"{end[0]}/{end[1].value}"


def _lost(e: Exception) -> bool:
    return isinstance(e, VenueUnavailable | TimeoutError)


def _unknown_receipt(s: _Step, now: int) -> TransferReceipt:
    step = s.step
    return TransferReceipt(
        transfer_id="",
        client_transfer_id=s.client_id,
        kind=step.kind,
        venue=step.venue,
        asset=step.asset,
        amount=step.amount,
        source=_wallet(step.source).value,
        destination=_where(step.destination),
        state=TransferState.PENDING,
        requested_ns=now,
    )


def _refused(refused: Refused, reason: str) -> Refused:
    return msgspec.structs.replace(refused, reason=reason)
