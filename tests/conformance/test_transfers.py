"""The venue contract's transfers (docs/venues.md "The venue contract"), run against every
adapter, and every pair of one library's adapters as one venue (`RoutedClient`), on the same
simulated venue over real sockets: a transfer between the account's spot and margin wallets,
one whose answer is lost, a withdrawal to a second venue, and what no venue offers (spot to
spot)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tests.conformance.rig import ADAPTERS, OTHER, ROUTED, Rig, rig
from tests.support import until
from venues.client import VenueClient
from venues.errors import Unsupported
from venues.model import (
    AccountSnapshot,
    InstrumentKind,
    TransferKind,
    TransferReceipt,
    TransferState,
    WalletKind,
)

WAIT_S = 10.0
D = Decimal


@pytest.fixture(params=ADAPTERS + ROUTED)
async def r(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with rig(request.param) as made:
        yield made


@pytest.fixture
async def client(r: Rig) -> AsyncIterator[VenueClient]:
    c = r.client()
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def final(client: VenueClient, receipt: TransferReceipt) -> TransferReceipt:
    """The transfer once the venue says it ended, asked by `transfer_status` until then."""
    latest = receipt

    async def ended() -> bool:
        nonlocal latest
        latest = await client.transfer_status(latest)
        return latest.state.is_final

    await until(ended, WAIT_S)
    return latest


def spot_usdt(snapshot: AccountSnapshot) -> Decimal:
    return sum((b.wallet for b in snapshot.spot_balances if b.asset == "USDT"), D(0))


async def test_a_transfer_from_spot_to_margin_completes_and_moves_the_wallets(
    r: Rig, client: VenueClient
) -> None:
    assert client.capabilities.transfers
    amount = D("250")
    wallets_before, seen_before = await r.usdt(), await client.account()
    receipt = await client.transfer("USDT", amount, WalletKind.SPOT, WalletKind.MARGIN, "t-in-1")
    assert receipt.kind is TransferKind.INTERNAL and receipt.client_transfer_id == "t-in-1"
    assert (receipt.asset, receipt.amount) == ("USDT", amount)
    assert (receipt.source, receipt.destination) == ("spot", "margin")
    done = await final(client, receipt)
    assert done.state is TransferState.COMPLETED and done.transfer_id
    assert done.client_transfer_id == "t-in-1" and done.requested_ns > 0
    spot, futures = await r.usdt()
    assert (wallets_before[0] - spot, futures - wallets_before[1]) == (amount, amount)
    seen = await client.account()  # what the adapter shows of its own wallet moved too
    if r.market.kind is InstrumentKind.PERP:
        assert seen.available_margin - seen_before.available_margin == amount
    else:
        assert spot_usdt(seen_before) - spot_usdt(seen) == amount
    back = await client.transfer("USDT", amount, WalletKind.MARGIN, WalletKind.SPOT, "t-in-2")
    assert (await final(client, back)).state is TransferState.COMPLETED
    assert await r.usdt() == wallets_before
    assert [kind for kind, _, _ in r.moves] == ["internal", "internal"]


async def test_a_transfer_whose_answer_is_lost_is_found_and_never_made_twice(
    r: Rig, client: VenueClient
) -> None:
    if not r.answers_lost_on_the_wire:
        pytest.skip(f"{r.adapter}: an in-process call has no answer to lose")
    amount = D("125")
    before = await r.usdt()
    r.lose_answers = True  # the venue makes the transfer; its answer never comes back
    receipt = await client.transfer("USDT", amount, WalletKind.SPOT, WalletKind.MARGIN, "t-lost-1")
    r.lose_answers = False
    # Found in the venue's history, or PENDING without the venue's id: transfer_status looks.
    assert receipt.client_transfer_id == "t-lost-1" and receipt.kind is TransferKind.INTERNAL
    assert receipt.transfer_id or receipt.state is TransferState.PENDING
    done = await final(client, receipt)
    assert done.state is TransferState.COMPLETED and done.transfer_id
    assert done.client_transfer_id == "t-lost-1" and done.amount == amount
    spot, futures = await r.usdt()
    assert (before[0] - spot, futures - before[1]) == (amount, amount)
    # Asked again under the same id, the adapter answers that transfer and sends nothing.
    again = await client.transfer("USDT", amount, WalletKind.SPOT, WalletKind.MARGIN, "t-lost-1")
    assert again.transfer_id == done.transfer_id
    assert r.moves == [("internal", "USDT", amount)]
    assert await r.usdt() == (spot, futures)


async def test_a_withdrawal_to_a_second_venues_deposit_address_lands_there(
    r: Rig, client: VenueClient
) -> None:
    assert client.capabilities.withdrawals
    other = r.other_client()
    await other.start()
    try:
        address = await other.deposit_address("USDT")
    finally:
        await other.close()
    amount = D("100")
    (spot_before, _), (there_before, _) = await r.usdt(), await r.usdt(r.other_venue, OTHER)
    receipt = await client.withdraw("USDT", amount, address, "w-1")
    assert receipt.kind is TransferKind.WITHDRAWAL and receipt.client_transfer_id == "w-1"
    assert (receipt.asset, receipt.amount) == ("USDT", amount)
    assert (receipt.source, receipt.destination) == ("spot", address)
    done = await final(client, receipt)
    assert done.state is TransferState.COMPLETED and done.transfer_id
    assert (await r.usdt())[0] == spot_before - amount

    async def landed() -> bool:
        return (await r.usdt(r.other_venue, OTHER))[0] == there_before + amount

    await until(landed, WAIT_S)
    assert r.moves == [("withdrawal", "USDT", amount)]


async def test_a_withdrawal_whose_answer_is_lost_is_found_by_its_client_id(
    r: Rig, client: VenueClient
) -> None:
    if not r.answers_lost_on_the_wire:
        pytest.skip(f"{r.adapter}: an in-process call has no answer to lose")
    other = r.other_client()
    await other.start()
    try:
        address = await other.deposit_address("USDT")
    finally:
        await other.close()
    r.lose_answers = True
    receipt = await client.withdraw("USDT", D("40"), address, "w-lost-1")
    r.lose_answers = False
    assert receipt.client_transfer_id == "w-lost-1"
    done = await final(client, receipt)
    assert done.state is TransferState.COMPLETED and done.transfer_id
    again = await client.withdraw("USDT", D("40"), address, "w-lost-1")
    assert again.transfer_id == done.transfer_id
    assert r.moves == [("withdrawal", "USDT", D("40"))]


async def test_a_transfer_from_spot_to_spot_is_unsupported_and_nothing_is_sent(
    r: Rig, client: VenueClient
) -> None:
    before = await r.usdt()
    with pytest.raises(Unsupported):
        await client.transfer("USDT", D("1"), WalletKind.SPOT, WalletKind.SPOT, "t-ss-1")
    assert r.moves == [] and await r.usdt() == before
