"""Every Ray actor legato creates: the one place for `ray.remote`, actor options and names.

An actor class is made remote here (`remote`), created with one of the option sets below,
and found again by one of these names. The shells and `cluster/` create actors only through
this module, so what an actor may do on failure (restarts, retries) is read in one place:
every actor is created with `max_task_retries=0` (its methods send orders: a retry could
send one twice) and `num_cpus=0` (it waits on venues and calls, it does not compute).
"""

from __future__ import annotations

import functools
from typing import Any

import ray

NAMESPACE = "legato"
COLLATERAL_NAME = "legato-collateral"
HEDGE_NAME = "legato-hedge"
REGISTRY_NAME = "legato-registry"  # the basket registry singleton of a namespace
_CONCURRENCY = 1000  # async actors: calls waiting on venues overlap


def venue_actor_name(venue: str) -> str:
    return f"legato-venue-{venue}"


def basket_actor_name(basket_id: str) -> str:
    return f"legato-basket-{basket_id}"


def leg_actor_name(basket_id: str, leg_id: str) -> str:
    return f"legato-leg-{basket_id}-{leg_id}"


@functools.cache
def remote(cls: type) -> Any:
    """`cls` as a Ray actor class (made once per process)."""
    return ray.remote(cls)


def actor_options(
    namespace: str, selector: dict[str, str] | None = None, *, name: str | None = None
) -> dict[str, Any]:
    """How every basket, leg and venue actor is created: no CPU, never restarted nor
    retried (its methods send orders), and, given a label selector, near its venue."""
    opts: dict[str, Any] = {
        "namespace": namespace,
        "num_cpus": 0,
        "max_restarts": 0,
        "max_task_retries": 0,
        "max_concurrency": _CONCURRENCY,
    }
    if name is not None:
        opts["name"] = name
    if selector:
        opts["label_selector"] = dict(selector)
    return opts


def singleton_options(namespace: str, name: str) -> dict[str, Any]:
    """How a cluster singleton (collateral, hedge, supervisor) is created: named, detached
    (it outlives the driver that started it), the existing one taken if it runs, and
    restarted whenever it dies (it rebuilds itself from the journal; its calls are still
    never retried: a restart answers the calls in flight with an error)."""
    return {
        **actor_options(namespace, name=name),
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
    }


def basket_actor_options(namespace: str, basket_id: str) -> dict[str, Any]:
    """How a basket actor is created for its basket: named after it (`legato attach` and
    `legato cancel` find it so; a second live basket of one id cannot be made) and
    detached: it belongs to the cluster, not to the driver that submitted it, and runs on
    when that driver dies (DESIGN §9). The supervisor ends it once its report is
    journaled. Never restarted: a lost one is taken over from the journal instead."""
    return {
        **actor_options(namespace, name=basket_actor_name(basket_id)),
        "lifetime": "detached",
    }


async def ref_result(ref: Any) -> Any:
    """An ObjectRef (or any awaitable) as a coroutine, so that `asyncio.wait_for` can bound it."""
    return await ref


def kill(actors: list[Any]) -> None:
    """Stop these actors for good (never restarted); one already gone is no error."""
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            continue
