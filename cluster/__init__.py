"""The cluster layer: the `Engine` driver API, placement on labelled nodes, the CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["BasketHandle", "Engine", "EngineError"]


def __getattr__(name: str) -> Any:
    # Ray loads only when the engine is used: `legato --help` and the venue commands stay fast.
    if name in __all__:
        from cluster import engine  # noqa: PLC0415

        return getattr(engine, name)
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")
