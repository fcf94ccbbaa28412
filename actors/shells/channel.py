"""The event path between actors on one node: a direct loopback stream, with the Ray call as
its fallback (DESIGN §4: events behind a small channel interface).

Events (a leg's progress to its basket, a basket's exposure to the hedge desk) are monotonic
snapshots, so they may take any path: the receiver keeps the highest sequence. A Ray actor call
costs several thread hand-offs in each process: one event between two idle actors takes 2.4 ms
that way and 0.3 ms as a loopback frame (`bench_launch`), and on a busy machine each Ray hop of
the fill → hedge path cost 6–13 ms. So a receiver serves an
`Inbox` on 127.0.0.1, and a sender on the same node writes length-prefixed msgpack frames to it.
A sender on another node, or whose stream fails, makes the Ray call instead: nothing is lost
that the call would have carried. Control (arm, adjust, reconcile) and every final report stay
on Ray calls.

A connection must open with the inbox's token (handed over by Ray, never by the socket), so no
other local process can feed an actor events. The sender watches its stream for the inbox's
end (the receiver closed it, or died): from then on its events are Ray calls, so a receiver
that comes back, as a restarted actor, still hears them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from actors.protocol import InboxAddress

log = logging.getLogger(__name__)

T = TypeVar("T")

_LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 20  # one snapshot is a few hundred bytes; anything this big is not ours
MAX_BUFFERED = 1 << 20  # a receiver this far behind is stuck: the sender falls back to Ray
TOKEN_BYTES = 16
CLOSE_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 5.0


class Inbox(Generic[T]):
    """The receiving end: a loopback server that decodes each frame as `kind` and hands it
    to `deliver`, in the order each sender wrote them."""

    def __init__(self, kind: type[T], deliver: Callable[[T], None], name: str) -> None:
        self.name = name
        self._decoder = msgspec.msgpack.Decoder(kind)
        self._deliver = deliver
        self._token = secrets.token_bytes(TOKEN_BYTES)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self, node_id: str) -> InboxAddress:
        """Serve on 127.0.0.1 (an ephemeral port); idempotent. Returns how to reach it."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return InboxAddress(node_id=node_id, port=port, token=self._token)

    async def close(self) -> None:
        """Stop serving and end every connection (their readers see the end of stream)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in self._connections.values():
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=CLOSE_TIMEOUT_S)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            token = await reader.readexactly(TOKEN_BYTES)
            if not secrets.compare_digest(token, self._token):
                log.warning("%s: a connection without the inbox's token, closed", self.name)
                return
            while True:
                (n,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                if n > MAX_FRAME:
                    log.warning("%s: a frame of %d bytes, connection closed", self.name, n)
                    return
                try:
                    msg = self._decoder.decode(await reader.readexactly(n))
                except msgspec.DecodeError as e:
                    log.warning("%s: an undecodable frame, skipped: %s", self.name, e)
                    continue
                try:
                    self._deliver(msg)
                except Exception:  # one bad event must not end the stream
                    log.exception("%s: delivering an event", self.name)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the sender went away
        finally:
            self._connections.pop(task, None)
            writer.close()


class Outbox(Generic[T]):
    """The sending end: `send` writes to the inbox's stream when it is open, and otherwise
    makes the Ray call `fallback` (the inbox on another node, not yet connected, or the
    stream broken: then for good, with one warning)."""

    def __init__(self, fallback: Callable[[T], object], name: str) -> None:
        self.name = name
        self._fallback = fallback
        self._encoder = msgspec.msgpack.Encoder()
        self._writer: asyncio.StreamWriter | None = None
        self._watch: asyncio.Task[None] | None = None
        self.direct = 0  # events sent down the stream
        self.called = 0  # events sent by the Ray call

    async def open(self, address: InboxAddress | None, node_id: str) -> bool:
        """Connect when the inbox is on this node; True when events will go direct."""
        if address is None or address.node_id != node_id:
            return False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", address.port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as e:
            log.warning("%s: no direct stream (%s); events go by Ray calls", self.name, e)
            return False
        writer.write(address.token)
        self._writer = writer
        self._watch = asyncio.create_task(self._watch_for_end(reader))
        return True

    async def _watch_for_end(self, reader: asyncio.StreamReader) -> None:
        # The inbox never writes: anything read is its end (it closed, or its actor died).
        # Without this, the sender would learn of it only when a write failed, a frame or
        # two later, and those frames would be lost.
        with contextlib.suppress(Exception):
            await reader.read(1)
        self._broken("the receiver closed the stream")

    @property
    def is_direct(self) -> bool:
        return self._writer is not None

    def send(self, msg: T) -> None:
        writer = self._writer
        if writer is not None:
            if writer.transport.is_closing():
                self._broken("the stream closed")
            elif writer.transport.get_write_buffer_size() >= MAX_BUFFERED:
                self._broken("its receiver is not reading")
            else:
                frame = self._encoder.encode(msg)
                writer.write(_LENGTH.pack(len(frame)) + frame)
                self.direct += 1
                return
        self.called += 1
        self._fallback(msg)

    def _broken(self, reason: str) -> None:
        if self._writer is None:
            return
        log.warning("%s: %s; events go by Ray calls from now on", self.name, reason)
        self.close()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
