"""Transfers in the simulated exchange core: internal transfers between an account's spot and
futures wallets, withdrawals, deposits, and the transfer profile's seeded fates."""

from __future__ import annotations

import math
import tomllib
from decimal import Decimal

import msgspec
import pytest

from tests.unit.test_exchange import BTC, STETH, depth, new
from venues.config import ConfigError, parse_venues, profile_from
from venues.model import OrderStatus, Side, TransferKind, TransferState
from venues.sim.exchange import (
    AccountSpec,
    SimExchange,
    TransferRefusal,
    TransferRefused,
    UnknownTransfer,
    Wallet,
    WithdrawalSent,
)
from venues.sim.market import ScriptedMarket
from venues.sim.profile import TransferProfile, VenueConditions, VenueProfile

D = Decimal
START = 10
S = 1_000_000_000  # ns


def make() -> SimExchange:
    """Account "alice": 1,000 USDT in the futures wallet; 500 USDT and 2 STETH in spot."""
    market = ScriptedMarket([BTC, STETH])
    market.push(
        depth(1, "BTCUSDT", bids=[("59999.0", "1")], asks=[("60001.0", "1")]),
        depth(1, "STETHUSDT", bids=[("2599.00", "100")], asks=[("2601.00", "100")]),
    )
    ex = SimExchange("sim", market)
    ex.open_account(
        AccountSpec(
            account_id="alice",
            balances={"USDT": D(1000)},
            spot_balances={"USDT": D(500), "STETH": D(2)},
        )
    )
    ex.advance(START)
    ex.drain()
    return ex


def wallets(ex: SimExchange) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]:
    """(the futures wallet's USDT, the spot wallet as {asset: (free, locked)})."""
    snap = ex.account_snapshot("alice", ex.now_ns)
    spot = {b.asset: (b.available, b.wallet - b.available) for b in snap.spot_balances}
    return snap.wallet_balance, spot


def test_an_internal_transfer_leaves_at_once_and_arrives_when_its_time_comes() -> None:
    ex = make()
    t = ex.transfer(
        "alice",
        "USDT",
        D(300),
        Wallet.FUTURES,
        Wallet.SPOT,
        START,
        complete_at_ns=5 * S,
        fails=False,
    )
    assert (t.kind, t.state, t.requested_ns) == (
        TransferKind.INTERNAL,
        TransferState.PENDING,
        START,
    )
    futures, spot = wallets(ex)
    assert (futures, spot["USDT"]) == (D(700), (D(500), 0))  # debited, not yet credited

    ex.advance(5 * S - 1)
    assert ex.transfers("alice", transfer_id=t.transfer_id)[0].state is TransferState.PENDING
    ex.advance(5 * S)
    (done,) = ex.transfers("alice", transfer_id=t.transfer_id)
    assert (done.state, done.updated_ns) == (TransferState.COMPLETED, 5 * S)
    futures, spot = wallets(ex)
    assert (futures, spot["USDT"]) == (D(700), (D(800), 0))
    assert ex.drain() == []  # an internal transfer tells no one: it is read back


def test_spot_usdt_moved_to_futures_becomes_margin() -> None:
    ex = make()
    ex.transfer(
        "alice",
        "USDT",
        D(500),
        Wallet.SPOT,
        Wallet.FUTURES,
        START,
        complete_at_ns=START,
        fails=False,
    )
    ex.advance(START + 1)
    snap = ex.account_snapshot("alice", ex.now_ns)
    assert (snap.wallet_balance, snap.available_margin) == (D(1500), D(1500))


def test_a_failed_transfer_gives_the_amount_back_to_where_it_left() -> None:
    ex = make()
    t = ex.transfer(
        "alice",
        "USDT",
        D(200),
        Wallet.SPOT,
        Wallet.FUTURES,
        START,
        complete_at_ns=2 * S,
        fails=True,
    )
    assert wallets(ex)[1]["USDT"] == (D(300), 0)
    ex.advance(2 * S)
    (failed,) = ex.transfers("alice", transfer_id=t.transfer_id)
    assert failed.state is TransferState.FAILED
    futures, spot = wallets(ex)
    assert (futures, spot["USDT"]) == (D(1000), (D(500), 0))


def test_a_stalled_transfer_never_ends_by_itself_but_can_be_ended() -> None:
    ex = make()
    t = ex.transfer(
        "alice",
        "USDT",
        D(100),
        Wallet.FUTURES,
        Wallet.SPOT,
        START,
        complete_at_ns=None,
        fails=False,
    )
    ex.advance(10**6 * S)  # eleven days on
    assert ex.transfers("alice")[0].state is TransferState.PENDING
    assert ex.quiet_until() == math.inf  # nothing due: a host may sleep
    ended = ex.end_transfer("alice", t.transfer_id, 10**6 * S + 1)
    assert (ended.state, ended.updated_ns) == (TransferState.COMPLETED, 10**6 * S + 1)
    assert wallets(ex)[1]["USDT"] == (D(600), 0)
    with pytest.raises(TransferRefused) as again:
        ex.end_transfer("alice", t.transfer_id, 10**6 * S + 2, fails=True)
    assert again.value.reason is TransferRefusal.NOT_PENDING
    with pytest.raises(UnknownTransfer):
        ex.end_transfer("alice", 999, 10**6 * S + 2)


def test_a_pending_transfer_is_when_the_exchange_is_next_busy() -> None:
    ex = make()
    ex.transfer(
        "alice",
        "USDT",
        D(1),
        Wallet.FUTURES,
        Wallet.SPOT,
        START,
        complete_at_ns=7 * S,
        fails=False,
    )
    assert ex.quiet_until() == 7 * S


@pytest.mark.parametrize(
    ("source", "amount", "why"),
    [
        (Wallet.FUTURES, D("1000.00000001"), "futures wallet has 1000 USDT free"),
        (Wallet.SPOT, D("500.5"), "spot wallet has 500 USDT free"),
    ],
)
def test_a_transfer_larger_than_what_is_free_is_refused_and_changes_nothing(
    source: Wallet, amount: Decimal, why: str
) -> None:
    ex = make()
    before = wallets(ex)
    destination = Wallet.SPOT if source is Wallet.FUTURES else Wallet.FUTURES
    with pytest.raises(TransferRefused, match=why) as refused:
        ex.transfer(
            "alice", "USDT", amount, source, destination, START, complete_at_ns=S, fails=False
        )
    assert refused.value.reason is TransferRefusal.INSUFFICIENT_FUNDS
    assert wallets(ex) == before and ex.transfers("alice") == []


def test_what_open_orders_hold_cannot_be_transferred() -> None:
    ex = make()
    # A resting spot buy locks 0.2 × 2,500 of the spot USDT; a resting perp buy holds margin.
    ex.place("alice", new("bid", Side.BUY, "0.2", "2500.00", symbol="STETHUSDT"), START)
    r = ex.place("alice", new("perp", Side.BUY, "0.1", "59000.0"), START)
    assert r.status is OrderStatus.NEW
    with pytest.raises(TransferRefused, match="spot wallet has 0 USDT free"):
        ex.transfer(
            "alice",
            "USDT",
            D(1),
            Wallet.SPOT,
            Wallet.FUTURES,
            START,
            complete_at_ns=S,
            fails=False,
        )
    available = ex.account_snapshot("alice", START).available_margin
    assert available == D(1000) - D(590)  # 5,900 of notional at 10x
    with pytest.raises(TransferRefused, match="futures wallet has 410 USDT free"):
        ex.transfer(
            "alice",
            "USDT",
            D(411),
            Wallet.FUTURES,
            Wallet.SPOT,
            START,
            complete_at_ns=S,
            fails=False,
        )


@pytest.mark.parametrize(
    ("asset", "source", "destination", "amount", "reason"),
    [
        ("USDT", Wallet.SPOT, Wallet.SPOT, D(1), TransferRefusal.INVALID_WALLETS),
        ("STETH", Wallet.SPOT, Wallet.FUTURES, D(1), TransferRefusal.INVALID_WALLETS),
        ("USDT", Wallet.SPOT, Wallet.FUTURES, D(0), TransferRefusal.INVALID_AMOUNT),
        ("USDT", Wallet.SPOT, Wallet.FUTURES, D(-5), TransferRefusal.INVALID_AMOUNT),
        ("USDT", Wallet.SPOT, Wallet.FUTURES, D("1e-9"), TransferRefusal.INVALID_AMOUNT),
        ("USDT", Wallet.SPOT, Wallet.FUTURES, D("NaN"), TransferRefusal.INVALID_AMOUNT),
    ],
)
def test_transfers_that_mean_nothing_are_refused(
    asset: str, source: Wallet, destination: Wallet, amount: Decimal, reason: TransferRefusal
) -> None:
    ex = make()
    before = wallets(ex)
    with pytest.raises(TransferRefused) as refused:
        ex.transfer(
            "alice", asset, amount, source, destination, START, complete_at_ns=S, fails=False
        )
    assert refused.value.reason is reason
    assert wallets(ex) == before


def test_a_withdrawal_leaves_the_spot_wallet_and_is_sent_when_its_time_comes() -> None:
    ex = make()
    w = ex.withdraw(
        "alice",
        "STETH",
        D("1.5"),
        "sim://127.0.0.1:9/bob",
        "w-1",
        START,
        complete_at_ns=3 * S,
        fails=False,
        network="SIM",
    )
    assert (w.kind, w.state, w.source, w.destination, w.client_id) == (
        TransferKind.WITHDRAWAL,
        TransferState.PENDING,
        Wallet.SPOT,
        "sim://127.0.0.1:9/bob",
        "w-1",
    )
    assert wallets(ex)[1]["STETH"] == (D("0.5"), 0)
    ex.advance(3 * S)
    (sent,) = [e for e in ex.drain() if isinstance(e, WithdrawalSent)]
    assert sent == WithdrawalSent(
        venue="sim",
        account_id="alice",
        transfer_id=w.transfer_id,
        client_id="w-1",
        asset="STETH",
        amount=D("1.5"),
        address="sim://127.0.0.1:9/bob",
        network="SIM",
        tx_id=sent.tx_id,
        sent_ns=3 * S,
    )
    (done,) = ex.transfers("alice", TransferKind.WITHDRAWAL, client_id="w-1")
    assert (done.state, done.tx_id) == (TransferState.COMPLETED, sent.tx_id)
    assert sent.tx_id  # what the receiving venue credits it under
    assert wallets(ex)[1]["STETH"] == (D("0.5"), 0)  # gone for good


def test_a_failed_withdrawal_is_given_back_and_sends_nothing() -> None:
    ex = make()
    ex.withdraw(
        "alice",
        "USDT",
        D(100),
        "sim://127.0.0.1:9/bob",
        "w-1",
        START,
        complete_at_ns=S,
        fails=True,
    )
    ex.advance(S)
    assert [e for e in ex.drain() if isinstance(e, WithdrawalSent)] == []
    assert ex.transfers("alice")[0].state is TransferState.FAILED
    assert wallets(ex)[1]["USDT"] == (D(500), 0)


def test_a_repeated_withdrawal_client_id_is_refused_and_debits_nothing() -> None:
    ex = make()
    ex.withdraw(
        "alice",
        "USDT",
        D(100),
        "sim://127.0.0.1:9/bob",
        "w-1",
        START,
        complete_at_ns=S,
        fails=False,
    )
    with pytest.raises(TransferRefused, match="'w-1' already names withdrawal 1") as again:
        ex.withdraw(
            "alice",
            "USDT",
            D(100),
            "sim://127.0.0.1:9/bob",
            "w-1",
            START,
            complete_at_ns=S,
            fails=False,
        )
    assert again.value.reason is TransferRefusal.DUPLICATE_CLIENT_ID
    assert wallets(ex)[1]["USDT"] == (D(400), 0)
    # Without a client id, nothing names it: two are two withdrawals.
    for _ in range(2):
        ex.withdraw(
            "alice",
            "USDT",
            D(1),
            "sim://127.0.0.1:9/bob",
            "",
            START,
            complete_at_ns=S,
            fails=False,
        )
    assert len(ex.transfers("alice", TransferKind.WITHDRAWAL)) == 3


def test_a_withdrawal_of_more_than_is_free_or_of_an_unknown_asset_is_refused() -> None:
    ex = make()
    with pytest.raises(TransferRefused) as short:
        ex.withdraw("alice", "STETH", D(3), "x", "a", START, complete_at_ns=S, fails=False)
    assert short.value.reason is TransferRefusal.INSUFFICIENT_FUNDS
    with pytest.raises(TransferRefused) as unknown:
        ex.withdraw("alice", "DOGE", D(1), "x", "b", START, complete_at_ns=S, fails=False)
    assert unknown.value.reason is TransferRefusal.UNKNOWN_ASSET
    assert ex.transfers("alice") == []
    # The refused ids were never used: they may name a withdrawal now.
    ex.withdraw("alice", "STETH", D(1), "x", "a", START, complete_at_ns=S, fails=False)


def test_a_deposit_is_credited_to_the_spot_wallet_once_per_tx_id() -> None:
    ex = make()
    first = ex.credit_deposit("alice", "SOL", D(7), "tx-1", START, address="sim-local://sim/alice")
    again = ex.credit_deposit("alice", "SOL", D(7), "tx-1", START + 5)
    assert again == first and first.credited_ns == START
    assert wallets(ex)[1]["SOL"] == (D(7), 0)
    with pytest.raises(TransferRefused) as conflict:
        ex.credit_deposit("alice", "SOL", D(8), "tx-1", START + 6)
    assert conflict.value.reason is TransferRefusal.CONFLICTING_DEPOSIT
    ex.credit_deposit("alice", "SOL", D(1), "tx-2", START + 7)
    assert [d.tx_id for d in ex.deposits("alice")] == ["tx-1", "tx-2"]
    assert wallets(ex)[1]["SOL"] == (D(8), 0)
    with pytest.raises(TransferRefused) as nobody:
        ex.credit_deposit("bob", "SOL", D(1), "tx-3", START)
    assert nobody.value.reason is TransferRefusal.UNKNOWN_ACCOUNT


def test_transfers_are_listed_by_kind_id_and_client_id() -> None:
    ex = make()
    a = ex.transfer(
        "alice",
        "USDT",
        D(1),
        Wallet.SPOT,
        Wallet.FUTURES,
        START,
        complete_at_ns=S,
        fails=False,
        client_id="t-1",
    )
    b = ex.withdraw("alice", "USDT", D(1), "x", "w-1", START, complete_at_ns=S, fails=False)
    assert [t.transfer_id for t in ex.transfers("alice")] == [a.transfer_id, b.transfer_id]
    assert ex.transfers("alice", TransferKind.INTERNAL) == [a]
    assert ex.transfers("alice", client_id="w-1") == [b]
    assert ex.transfers("alice", transfer_id=a.transfer_id) == [a]
    with pytest.raises(TransferRefused, match="already names internal"):
        ex.transfer(
            "alice",
            "USDT",
            D(1),
            Wallet.SPOT,
            Wallet.FUTURES,
            START,
            complete_at_ns=S,
            fails=False,
            client_id="t-1",
        )


# --- the transfer profile ---------------------------------------------------------------
def test_the_transfer_profile_draws_each_fate_from_the_seed() -> None:
    profile = VenueProfile(
        transfers=TransferProfile(internal_s=2, stall_rate=0.3, stall_s=60, fail_rate=0.2)
    )

    def fates(seed: int) -> list[tuple[int | None, bool]]:
        conditions = VenueConditions(profile, seed, 0)
        return [conditions.transfer_fate(TransferKind.INTERNAL) for _ in range(200)]

    drawn = fates(3)
    assert drawn == fates(3) and drawn != fates(4)
    delays = {d for d, _ in drawn}
    assert delays == {2 * S, 60 * S}
    assert 20 < sum(d == 60 * S for d, _ in drawn) < 100
    assert 10 < sum(f for _, f in drawn) < 70


def test_without_stalls_a_transfer_takes_its_kinds_delay_and_never_fails() -> None:
    conditions = VenueConditions(VenueProfile(), 1, 0)
    assert conditions.transfer_fate(TransferKind.INTERNAL) == (S, False)
    assert conditions.transfer_fate(TransferKind.WITHDRAWAL) == (120 * S, False)


def test_a_stall_of_inf_never_completes() -> None:
    stalls = VenueProfile(transfers=TransferProfile(stall_rate=1.0, stall_s=math.inf))
    assert VenueConditions(stalls, 1, 0).transfer_fate(TransferKind.WITHDRAWAL) == (None, False)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stall_rate": 1.5}, "stall_rate must be a share within [0, 1], got 1.5"),
        ({"fail_rate": -0.1}, "fail_rate must be a share within [0, 1], got -0.1"),
        ({"fail_rate": math.nan}, "fail_rate must be a share within [0, 1], got nan"),
        ({"internal_s": -1.0}, "internal_s must be a finite number of seconds >= 0, got -1.0"),
        ({"withdrawal_s": math.inf}, "withdrawal_s must be a finite number of seconds >= 0"),
        ({"stall_s": -2.0}, "stall_s must be a number of seconds >= 0, or inf"),
    ],
)
def test_a_bad_transfer_profile_names_the_field_and_what_is_accepted(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TransferProfile(**fields)
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\.transfers`"):
        profile_from({"transfers": fields})


def test_a_venues_toml_sets_the_transfer_profile() -> None:
    config = parse_venues(
        tomllib.loads(
            """
[venues.alpha]
kind = "sim"
profile = { transfers = { stall_rate = 1.0, stall_s = 60 } }

[venues.beta]
kind = "sim"
profile = { preset = "colo", transfers = { withdrawal_s = 5, stall_s = inf } }
"""
        )
    )
    alpha = profile_from(config.venues["alpha"].profile).transfers
    assert alpha == TransferProfile(stall_rate=1.0, stall_s=60.0)
    beta = profile_from(config.venues["beta"].profile).transfers
    assert (beta.withdrawal_s, beta.stall_s, beta.internal_s) == (5.0, math.inf, 1.0)
    gamma = '[venues.gamma]\nkind = "sim"\nprofile = {{ transfers = {{ {} }} }}'
    with pytest.raises(ConfigError, match=r"venues\.gamma\.profile\.transfers: stall_rate must"):
        parse_venues(tomllib.loads(gamma.format("stall_rate = 2")))
    with pytest.raises(ConfigError, match=r"profile\.transfers\.stall: unknown field"):
        parse_venues(tomllib.loads(gamma.format("stall = 2")))
