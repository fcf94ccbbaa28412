"""`POST /_sim/streams/drop`: a network drop of a venue's WebSocket streams, on demand."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import msgspec
from aiohttp import web

from venues.sim.server.gateway import GATEWAY
from venues.sim.server.render import _json
from venues.sim.server.testapi import _admin, _admin_body

# Sent in the close frame: a real drop sends none, but the clients read no code, only that
# the socket ended; this one says why in the venue's and the client's logs.
DROP_CODE = 1001
DROP_REASON = b"stream dropped (simulated)"


class _DropRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # "user": the user-data streams (a connection carrying a listen key, market streams
    # beside it or not, and a WebSocket API connection subscribed to an account); "all":
    # every WebSocket, the market streams too.
    streams: Literal["user", "all"] = "user"


async def sim_drop_streams(request: web.Request) -> web.Response:
    """Close the venue's user-data WebSockets now (`{"streams": "all"}`: every WebSocket),
    as a network drop would. Their clients reconnect; what the venue published meanwhile
    reaches them only through their own resync. Answers `{"closed": n}`."""
    gw = request.app[GATEWAY]
    _admin(request)
    raw = await request.read()
    body = await _admin_body(request, _DropRequest) if raw.strip() else _DropRequest()
    doomed = [
        ws
        for ws, listen_key in list(gw.sockets.items())
        if body.streams == "all" or listen_key is not None
    ]

    async def drop(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(Exception):  # one that is gone already is dropped too
            await ws.close(code=DROP_CODE, message=DROP_REASON)

    # At once, not one after the other: each close waits for its client's answer.
    await asyncio.gather(*(drop(ws) for ws in doomed))
    return _json({"closed": len(doomed)})
