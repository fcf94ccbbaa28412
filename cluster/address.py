"""A Ray cluster's address, checked before anything imports Ray (a mistyped address is
refused in a moment, not after Ray's import and its minutes of retries)."""

from __future__ import annotations

import os
import socket
import sys


class AddressError(RuntimeError):
    """Nothing usable at a cluster address; the message says what and what is accepted."""


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail at once, saying so, when nothing listens at a cluster address (`host:port` or
    `ray://host:port`); Ray itself would keep retrying for minutes. "auto" is left to Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise AddressError(
            f"address: {address!r} is not a Ray cluster address; accepted: host:port, "
            "ray://host:port or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise AddressError(
            f"cannot connect to the Ray cluster at {address}: nothing answers there "
            f"({e.strerror or e}); is `ray start --head` running?"
        ) from None


def join(address: str | None, *, none_given: str) -> None:
    """Join the Ray cluster at `address` (else $RAY_ADDRESS), checking the address before
    Ray is imported (about 2 s): a command's mistake is told at once. A process already
    connected (a driver script, a test) keeps its cluster. `none_given`: what to say when
    there is no address at all. Raises `AddressError`."""
    loaded = sys.modules.get("ray")
    if loaded is not None and loaded.is_initialized():
        return
    where = address or os.environ.get("RAY_ADDRESS")
    if not where:
        raise AddressError(none_given)
    check_reachable(where)
    import ray  # noqa: PLC0415

    try:
        ray.init(address=where, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError) as e:
        raise AddressError(f"cannot connect to the Ray cluster at {where}: {e}") from None
