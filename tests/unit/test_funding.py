"""Collateral routing in the collateral runner, on a fake clock and scripted venues whose
wallets move money with a delay: a short basket waits (`wait`) or starts its funded legs
(`hedge`) while a transfer cures the shortfall; a transfer that stalls past the deadline or
fails refuses it; what a transfer sends is never promised twice; a lost answer is looked
for, never asked again; without routing the basket is refused as before."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from actors.margin import USD, Refused, Reserved, spot_pool
from actors.routing import RoutingRules, Step
from actors.runners.collateral import AccountAnswer, CollateralRunner
from actors.runners.funding import (
    LAND_GRACE_NS,
    Funding,
    FundingAsk,
    TransferAnswer,
    TransferView,
)
from actors.spec import OnUnfunded
from tests.unit.fake_port import FakeClock, FakeTimer
from tests.unit.test_collateral_actor import need
from venues.errors import InvalidRequest, VenueUnavailable
from venues.model import (
    AccountSnapshot,
    Balance,
    TransferKind,
    TransferReceipt,
    TransferState,
    WalletKind,
)

D = Decimal
MS = 1_000_000
SECOND = 1_000 * MS
START = 1_700_000_000 * SECOND
READ_MS = 10
ASK = FundingAsk(mode=OnUnfunded.WAIT, timeout_ns=300 * SECOND, client_prefix="b1.r1")
# One ETH perp leg at 3,000 on 5x: about 660 USD of margin with fees and the book's buffer.
NEED = 660


class Wallets:
    """Scripted venues: each has a margin wallet (USDT) and a spot wallet, read back as
    account snapshots after READ_MS; a transfer debits its source at once and credits its
    destination `delay_s` later (never, when `stall`; given back, when `fail`)."""

    def __init__(self, clock: FakeClock, **venues: tuple[int, int]) -> None:
        self.clock = clock
        self.margin = {v: D(m) for v, (m, _) in venues.items()}
        self.spot = {v: D(s) for v, (_, s) in venues.items()}
        self.delay_s = 60.0
        self.stall = False
        self.fail = False
        self.lose_answer = False
        self.sent: list[str] = []  # client transfer ids, as the venues received them
        self.receipts: dict[str, TransferReceipt] = {}
        self.views: list[TransferView] = []
        self.withdrawals = True

    # -- the port ------------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.clock.now_ns()

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> FakeTimer:
        return self.clock.call_at(t_ns, fn, precise=precise)

    def read_account(self, venue_name: str, then: Callable[[AccountAnswer], None]) -> None:
        snap = AccountSnapshot(
            venue=venue_name,
            account_id="desk",
            balances=[],
            positions=[],
            margin_asset="USDT",
            wallet_balance=self.margin[venue_name],
            unrealized_pnl=D(0),
            position_initial_margin=D(0),
            open_order_initial_margin=D(0),
            available_margin=self.margin[venue_name],
            spot_balances=[
                Balance(asset="USDT", wallet=self.spot[venue_name], available=self.spot[venue_name])
            ],
            ts_ns=0,
        )
        self.clock.call_at(self.clock.now_ns() + READ_MS * MS, lambda: then(snap))

    def send_transfer(
        self, step: Step, client_transfer_id: str, then: Callable[[TransferAnswer], None]
    ) -> None:
        self.sent.append(client_transfer_id)
        now = self.clock.now_ns()
        src = self.margin if step.source.kind is WalletKind.MARGIN else self.spot
        if src[step.source.venue] < step.amount:
            error = InvalidRequest("insufficient balance", venue=step.venue, code=-5002)
            self.clock.call_at(now + READ_MS * MS, lambda: then(error))
            return
        src[step.source.venue] -= step.amount
        receipt = TransferReceipt(
            transfer_id=f"T{len(self.sent)}",
            client_transfer_id=client_transfer_id,
            kind=step.kind,
            venue=step.venue,
            asset=step.asset,
            amount=step.amount,
            source=step.source.kind.value,
            destination=step.destination.kind.value,
            state=TransferState.PENDING,
            requested_ns=now,
        )
        self.receipts[client_transfer_id] = receipt
        if not self.stall:
            self.clock.call_at(
                now + round(self.delay_s * SECOND), lambda: self._land(step, client_transfer_id)
            )
        answer: TransferAnswer = receipt
        if self.lose_answer:
            answer = VenueUnavailable("timed out", venue=step.venue)
        self.clock.call_at(now + READ_MS * MS, lambda: then(answer))

    def _land(self, step: Step, cid: str) -> None:
        if self.fail:
            src = self.margin if step.source.kind is WalletKind.MARGIN else self.spot
            src[step.source.venue] += step.amount
            state = TransferState.FAILED
        else:
            dst = self.margin if step.destination.kind is WalletKind.MARGIN else self.spot
            dst[step.destination.venue] += step.amount
            state = TransferState.COMPLETED
        r = self.receipts[cid]
        self.receipts[cid] = msgspec.structs.replace(
            r, state=state, updated_ns=self.clock.now_ns(), reason="rejected" if self.fail else ""
        )

    def transfer_status(
        self, receipt: TransferReceipt, then: Callable[[TransferAnswer], None]
    ) -> None:
        now = self.clock.now_ns()
        found = self.receipts[receipt.client_transfer_id]
        self.clock.call_at(now + READ_MS * MS, lambda: then(found))

    def transfer_changed(self, view: TransferView) -> None:
        self.views.append(view)

    def transfer_venues(self) -> tuple[frozenset[str], frozenset[str]]:
        names = frozenset(self.margin)
        return names, names if self.withdrawals else frozenset()


ROUTING = RoutingRules()


class World:
    def __init__(self, rules: RoutingRules | None = ROUTING, **venues: tuple[int, int]):
        self.clock = FakeClock(START)
        self.wallets = Wallets(self.clock, **venues)
        self.runner = CollateralRunner(self.wallets)
        self.rules = rules
        self.results: dict[str, list[tuple[int, Reserved | Refused | Funding]]] = {}

    def reserve(self, basket_id: str, venues: list[str], ask: FundingAsk | None = ASK) -> None:
        def then(result: Reserved | Refused | Funding) -> None:
            self.results.setdefault(basket_id, []).append((self.ms(), result))

        needs = [msgspec.structs.replace(need(v), leg_id=f"leg-{v}") for v in venues]
        if ask is not None:
            ask = msgspec.structs.replace(ask, rules=self.rules)
        self.runner.reserve(basket_id, needs, venues, None, then, funding=ask)

    def wait_funded(self, basket_id: str) -> None:
        def then(result: Reserved | Refused) -> None:
            self.results.setdefault(basket_id, []).append((self.ms(), result))

        assert self.runner.funded(basket_id, then)

    def ms(self) -> int:
        return (self.clock.now_ns() - START) // MS

    def at_s(self, s: float) -> None:
        self.clock.run_until(START + round(s * SECOND))

    def last(self, basket_id: str) -> Reserved | Refused | Funding:
        return self.results[basket_id][-1][1]

    def states(self) -> list[tuple[str, TransferState]]:
        return [(v.client_transfer_id, v.state) for v in self.wallets.views]


def test_a_basket_short_on_margin_waits_for_an_internal_transfer_and_nothing_is_held_meanwhile():
    w = World(gamma=(100, 5_000))
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    funding = w.last("b1")
    assert isinstance(funding, Funding)
    # What gamma's margin has is held at once; the transfer brings only the shortfall.
    assert funding.reserved is not None and funding.reserved.needs == {"gamma": D(100)}
    assert funding.unfunded_legs == ["leg-gamma"]
    (view,) = funding.transfers
    assert view.kind is TransferKind.INTERNAL and view.source == "gamma/spot"
    assert view.destination == "gamma/margin" and view.asset == "USDT"
    assert D(NEED) - 100 <= view.amount <= D(NEED)  # the shortfall, to the cent
    w.wait_funded("b1")
    w.at_s(59)
    assert len(w.results["b1"]) == 1, "funded before the transfer landed"
    w.at_s(70)
    when, result = w.results["b1"][-1]
    assert isinstance(result, Reserved)
    assert 60_000 <= when < 62_000
    assert result.needs["gamma"] <= w.wallets.margin["gamma"]
    assert w.states() == [("b1.r1-t1", TransferState.PENDING)] * 1 + [
        ("b1.r1-t1", TransferState.COMPLETED)
    ]
    assert w.wallets.sent == ["b1.r1-t1"]


def test_under_hedge_the_funded_legs_are_held_at_once_and_the_unfunded_ones_named():
    w = World(alpha=(1_000_000, 0), gamma=(100, 5_000))
    w.reserve("b1", ["alpha", "gamma"], msgspec.structs.replace(ASK, mode=OnUnfunded.HEDGE))
    w.at_s(1)
    funding = w.last("b1")
    assert isinstance(funding, Funding)
    assert funding.unfunded_legs == ["leg-gamma"]
    assert funding.reserved is not None and set(funding.reserved.needs) == {"alpha", "gamma"}
    assert funding.reserved.needs["gamma"] == D(100)  # what gamma has; alpha all it asks
    assert w.runner.book.reserved("alpha") == funding.reserved.needs["alpha"]
    w.wait_funded("b1")
    w.at_s(65)
    result = w.last("b1")
    assert isinstance(result, Reserved) and set(result.needs) == {"alpha", "gamma"}


def test_a_transfer_stalled_past_the_deadline_refuses_the_basket_naming_it_and_its_age():
    w = World(gamma=(100, 5_000))
    w.wallets.stall = True
    ask = msgspec.structs.replace(ASK, timeout_ns=120 * SECOND)
    w.reserve("b1", ["gamma"], ask)
    w.at_s(1)
    w.wait_funded("b1")
    w.at_s(119)
    assert len(w.results["b1"]) == 1
    w.at_s(121)
    result = w.last("b1")
    assert isinstance(result, Refused)
    assert "funding_timeout_s = 120 s" in result.reason
    assert "b1.r1-t1" in result.reason and "pending for 120 s" in result.reason
    w.runner.release("b1")  # the basket gives back what it held, as it ends
    assert w.runner.book.reservation("b1") is None


def test_a_failed_transfer_refuses_the_basket_and_the_money_is_free_again():
    w = World(gamma=(100, 5_000))
    w.wallets.fail = True
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    w.wait_funded("b1")
    w.at_s(70)
    result = w.last("b1")
    assert isinstance(result, Refused) and "b1.r1-t1 failed: rejected" in result.reason
    assert w.states()[-1] == ("b1.r1-t1", TransferState.FAILED)
    assert not [r for r in w.runner.book.snapshot(0).reservations if r.basket_id != "b1"]


def test_what_a_transfer_sends_is_not_promised_to_another_basket_while_it_is_under_way():
    # gamma's spot wallet funds b1's margin; b2, a spot buyer on gamma, must not be
    # promised the same USDT before the venue's figures show it gone.
    w = World(gamma=(100, 700))
    w.reserve("b1", ["gamma"])
    w.at_s(0.005)  # b1's read is in flight
    held = w.runner.book.reserve(
        "b2", {}, w.clock.now_ns(), holdings={"gamma": {spot_pool("USDT"): D(600)}}
    )
    assert isinstance(held, Refused), "a pool with no figure yet is not promised"
    w.at_s(0.05)  # b1's transfer is asked: its amount is held on the source
    assert isinstance(w.last("b1"), Funding)
    moving = w.last("b1").transfers[0].amount  # type: ignore[union-attr]
    spare = w.runner.book.free("gamma", spot_pool("USDT"))
    assert spare <= D(700) - moving
    w.at_s(2)  # a read after the venue accepted it shows the debit; the hold is gone
    assert w.runner.book.available("gamma", spot_pool("USDT")) == D(700) - moving
    assert not [
        r for r in w.runner.book.snapshot(0).reservations if r.basket_id.startswith("transfer:")
    ]
    assert w.runner.book.free("gamma", spot_pool("USDT")) == D(700) - moving


def test_a_lost_answer_is_looked_for_by_its_client_id_and_never_sent_again():
    w = World(gamma=(100, 5_000))
    w.wallets.lose_answer = True
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    w.wait_funded("b1")
    w.at_s(70)
    assert isinstance(w.last("b1"), Reserved)
    assert w.wallets.sent == ["b1.r1-t1"]


def test_without_routing_a_short_basket_is_refused_with_the_cure_in_words():
    w = World(rules=None, gamma=(100, 5_000))
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    result = w.last("b1")
    assert isinstance(result, Refused)
    assert result.shortfalls[0].venue == "gamma" and result.shortfalls[0].asset == USD
    assert w.wallets.sent == []


def test_on_unfunded_refuse_is_refused_even_with_routing():
    w = World(gamma=(100, 5_000))
    w.reserve("b1", ["gamma"], msgspec.structs.replace(ASK, mode=OnUnfunded.REFUSE))
    w.at_s(1)
    assert isinstance(w.last("b1"), Refused)
    assert w.wallets.sent == []


def test_no_spare_money_anywhere_is_refused_saying_no_transfer_can_cure_it():
    w = World(alpha=(50, 0), gamma=(100, 20))
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    result = w.last("b1")
    assert isinstance(result, Refused)
    assert "no transfer can cure it" in result.reason
    assert w.wallets.sent == []


def test_a_withdrawal_between_venues_cures_a_venue_with_nothing_of_its_own():
    rules = RoutingRules(withdrawals=True, routes=[("alpha", "gamma")])
    w = World(rules=rules, alpha=(0, 50_000), gamma=(0, 0))
    w.wallets.delay_s = 5.0
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    funding = w.last("b1")
    assert isinstance(funding, Funding)
    assert [t.kind for t in funding.transfers] == [TransferKind.WITHDRAWAL]
    w.wait_funded("b1")
    w.at_s(30)
    result = w.last("b1")
    assert isinstance(result, Reserved)
    # The withdrawal, then the internal transfer at gamma into its margin wallet.
    assert [v.kind for v in w.wallets.views if v.state is TransferState.PENDING] == [
        TransferKind.WITHDRAWAL,
        TransferKind.INTERNAL,
    ]
    assert w.wallets.sent == ["b1.r1-t1", "b1.r1-t2"]


def test_a_release_while_transfers_are_pending_ends_the_funding():
    w = World(gamma=(100, 5_000))
    w.wallets.stall = True
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    w.wait_funded("b1")
    w.runner.release("b1")
    result = w.last("b1")
    assert isinstance(result, Refused) and "ended while its transfers were pending" in result.reason


@pytest.mark.parametrize("late_s", [5, 20])
def test_money_that_shows_late_is_read_again_not_moved_twice(late_s: int) -> None:
    w = World(gamma=(100, 5_000))
    w.wallets.delay_s = 10.0
    w.reserve("b1", ["gamma"])
    w.at_s(1)
    w.wait_funded("b1")
    # The venue says COMPLETED at 10 s, but the money shows in the margin only later.
    real_land = w.wallets._land

    def land_late(step: Step, cid: str) -> None:
        amount = step.amount
        w.wallets.margin[step.destination.venue] -= amount  # credited below, later
        real_land(step, cid)
        w.clock.call_at(
            w.clock.now_ns() + late_s * SECOND,
            lambda: w.wallets.margin.__setitem__("gamma", w.wallets.margin["gamma"] + amount),
        )

    w.wallets._land = land_late  # type: ignore[method-assign]
    assert late_s * SECOND < LAND_GRACE_NS
    w.at_s(10 + late_s + 5)
    assert isinstance(w.last("b1"), Reserved)
    assert w.wallets.sent == ["b1.r1-t1"]


def test_two_baskets_short_on_one_pool_each_bring_their_own_shortfall():
    # gamma's 1,000 of margin is the first basket's; the second must move all it needs.
    w = World(gamma=(1_000, 50_000))
    w.reserve("b1", ["gamma", "gamma"])
    w.at_s(0.5)
    w.reserve("b2", ["gamma", "gamma"])
    w.at_s(1)
    f1, f2 = w.last("b1"), w.last("b2")
    assert isinstance(f1, Funding) and isinstance(f2, Funding)
    need = 2 * NEED
    assert f1.transfers[0].amount < need - 900
    assert f2.transfers[0].amount > need - 5  # none of gamma's margin was left for it
    w.wait_funded("b1")
    w.wait_funded("b2")
    w.at_s(70)
    r1, r2 = w.last("b1"), w.last("b2")
    assert isinstance(r1, Reserved) and isinstance(r2, Reserved)
    assert r1.needs["gamma"] + r2.needs["gamma"] <= w.wallets.margin["gamma"]
    assert len(w.wallets.sent) == 2


def test_a_transfer_the_venue_never_confirmed_holds_nothing_once_its_basket_has_ended():
    w = World(gamma=(100, 5_000))
    w.wallets.stall = True
    w.wallets.lose_answer = True

    def never_found(receipt: TransferReceipt, then: Callable[[TransferAnswer], None]) -> None:
        then(VenueUnavailable("timed out", venue="gamma"))

    w.wallets.transfer_status = never_found  # type: ignore[method-assign]
    w.reserve("b1", ["gamma"])
    w.at_s(5)
    held = [r.basket_id for r in w.runner.book.snapshot(0).reservations]
    assert "transfer:b1.r1-t1" in held
    w.runner.release("b1")
    assert [r.basket_id for r in w.runner.book.snapshot(0).reservations] == []
