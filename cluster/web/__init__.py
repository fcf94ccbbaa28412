"""The live web view of a namespace's desk (docs/web.md): `legato web`, `legato demo --web`.

Importing this package is cheap: the server (aiohttp, Ray) loads when it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cluster.web.cli import add_web_command
from cluster.web.security import WebError

if TYPE_CHECKING:
    from cluster.web.server import RunningWeb, serve_in_thread

__all__ = ["RunningWeb", "WebError", "add_web_command", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in ("RunningWeb", "serve_in_thread"):
        from cluster.web import server  # noqa: PLC0415

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
