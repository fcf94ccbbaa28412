"""The Ray actor shells: thin wrappers that feed messages and time to the pure cores and carry
out their effects. The only modules of `actors/` that import Ray (DESIGN §2)."""

from __future__ import annotations

import os

import ray

from actors.protocol import Placement


def here() -> Placement:
    """The Ray node this process runs on, and its labels."""
    ctx = ray.get_runtime_context()
    labels = {
        k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in ctx.get_node_labels().items()
    }
    return Placement(node_id=ctx.get_node_id(), node_labels=labels, pid=os.getpid())
