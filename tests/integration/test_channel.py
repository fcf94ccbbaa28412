"""The direct event stream between actors on one node (`actors.shells.channel`), over real
sockets on 127.0.0.1: delivery in order, the token, and the fall back to the Ray call."""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal

import msgspec
import pytest

from actors.messages import LegProgress, LegStatus
from actors.protocol import InboxAddress
from actors.shells.channel import MAX_FRAME, Inbox, Outbox
from tests.support import until
from venues.model import Side

WAIT_S = 5.0
NODE = "node-a"


def progress(seq: int, filled: str = "0") -> LegProgress:
    return LegProgress(
        basket_id="b",
        leg_id="eth",
        seq=seq,
        side=Side.BUY,
        target_qty=Decimal("10"),
        filled_qty=Decimal(filled),
        avg_price=None,
        open_qty=Decimal(0),
        status=LegStatus.WORKING,
        ts_ns=seq,
        fill_seen_ns=1_700_000_000_000_000_000 + seq,
    )


class Pair:
    """An inbox and an outbox to it; what each end received."""

    def __init__(self) -> None:
        self.received: list[LegProgress] = []
        self.called: list[LegProgress] = []
        self.inbox = Inbox(LegProgress, self.received.append, "test inbox")
        self.outbox = Outbox(self.called.append, "test outbox")

    async def open(self, node: str = NODE) -> InboxAddress:
        address = await self.inbox.start(NODE)
        await self.outbox.open(address, node)
        return address

    async def close(self) -> None:
        self.outbox.close()
        await self.inbox.close()


async def test_events_stream_in_order_and_intact() -> None:
    pair = Pair()
    await pair.open()
    try:
        assert pair.outbox.is_direct
        sent = [progress(i, str(i)) for i in range(1, 201)]
        for p in sent:
            pair.outbox.send(p)
        await until(lambda: len(pair.received) == len(sent), WAIT_S)
        assert pair.received == sent  # every field decoded as it was sent, in order
        assert pair.called == []
        assert (pair.outbox.direct, pair.outbox.called) == (200, 0)
    finally:
        await pair.close()


async def test_an_inbox_on_another_node_is_reached_by_the_call() -> None:
    pair = Pair()
    await pair.open(node="node-b")
    try:
        assert not pair.outbox.is_direct
        pair.outbox.send(progress(1))
        assert pair.called == [progress(1)]
        assert pair.received == []
    finally:
        await pair.close()


async def test_a_connection_without_the_token_is_refused_and_the_sender_falls_back() -> None:
    pair = Pair()
    address = await pair.inbox.start(NODE)
    forged = msgspec.structs.replace(address, token=b"\0" * len(address.token))
    try:
        await pair.outbox.open(forged, NODE)
        pair.outbox.send(progress(1))
        # The inbox closes the stream; the outbox sees it and makes calls instead.
        await until(lambda: not pair.outbox.is_direct, WAIT_S)
        pair.outbox.send(progress(2))
        assert progress(2) in pair.called
        assert pair.received == []
    finally:
        await pair.close()


async def test_when_the_receiver_closes_later_events_go_by_the_call() -> None:
    pair = Pair()
    await pair.open()
    try:
        pair.outbox.send(progress(1))
        await until(lambda: len(pair.received) == 1, WAIT_S)
        await pair.inbox.close()
        await until(lambda: not pair.outbox.is_direct, WAIT_S)
        pair.outbox.send(progress(2))
        assert pair.called == [progress(2)]
    finally:
        await pair.close()


async def test_a_bad_frame_is_skipped_and_an_oversized_one_ends_the_connection() -> None:
    pair = Pair()
    address = await pair.inbox.start(NODE)
    _, writer = await asyncio.open_connection("127.0.0.1", address.port)
    try:
        writer.write(address.token)
        junk = b"\xc1not msgpack"
        good = msgspec.msgpack.encode(progress(7))
        writer.write(struct.pack(">I", len(junk)) + junk + struct.pack(">I", len(good)) + good)
        await until(lambda: pair.received == [progress(7)], WAIT_S)
        writer.write(struct.pack(">I", MAX_FRAME + 1))
        await until(lambda: writer.transport.is_closing() or not pair.inbox._connections, WAIT_S)
        assert pair.received == [progress(7)]
    finally:
        writer.close()
        await pair.close()


async def test_a_failing_receiver_does_not_end_the_stream() -> None:
    seen: list[int] = []

    def deliver(p: LegProgress) -> None:
        if p.seq == 2:
            raise RuntimeError("a bug in the receiver")
        seen.append(p.seq)

    inbox = Inbox(LegProgress, deliver, "test inbox")
    outbox = Outbox(lambda p: pytest.fail("no call expected"), "test outbox")
    await outbox.open(await inbox.start(NODE), NODE)
    try:
        for seq in (1, 2, 3):
            outbox.send(progress(seq))
        await until(lambda: seen == [1, 3], WAIT_S)
    finally:
        outbox.close()
        await inbox.close()
