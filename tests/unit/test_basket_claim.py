"""A basket actor claims its id while it checks its spec (the engine sends the run right
behind the check): the claim decides first, a registry that does not answer fails the
check in bounded time, and a run whose claim is refused ends without reserving or arming.
The registry, collateral and validation are stubbed; no Ray."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.lifecycle import BasketState
from actors.shells import basket as b
from actors.spec import FieldError, ResolvedBasket, SpecError, load_basket

SPEC = """
kind = "basket"
basket_id = "t-claim"
[params]
horizon_s = 2
[[legs]]
leg_id = "long"
venue = "alpha"
symbol = "ETHUSDT"
side = "BUY"
quantity = 1
"""


class Method:
    """`actor.method` as the shell calls it: `.remote(...)` gives an awaitable."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        self.calls.append(args)
        return asyncio.ensure_future(self.fn(*args))


class Registry:
    """A basket registry that answers a claim with `free` after `delay_s` (None: never)."""

    def __init__(self, free: bool, delay_s: float | None = 0.0) -> None:
        async def claim(basket_id: str, token: str, actor: Any) -> bool:
            if delay_s is None:
                await asyncio.Event().wait()
            await asyncio.sleep(delay_s or 0)
            return free

        async def turn(*_: Any) -> None:
            raise AssertionError("a basket without its id asked for a turn to arm")

        self.claim = Method(claim)
        self.queue_to_arm = Method(turn)


class Collateral:
    def __init__(self) -> None:
        async def reserve(*_: Any) -> None:
            raise AssertionError("a basket without its id reserved collateral")

        self.reserve = Method(reserve)


def actor(registry: Registry, validation: Any) -> b.BasketActor:
    a = b.BasketActor(load_basket(SPEC), {}, {}, Collateral(), None, registry=registry)
    a._validate = validation  # type: ignore[method-assign]
    return a


async def valid() -> ResolvedBasket:
    await asyncio.sleep(0.01)
    return "resolved"  # type: ignore[return-value]  # stands in: only passed through


async def invalid() -> ResolvedBasket:
    await asyncio.sleep(0.01)
    raise SpecError([FieldError("legs[0].symbol", "not listed on alpha")])


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(b, "_this_actor", lambda: "this actor")


async def test_the_id_is_claimed_while_the_spec_is_checked() -> None:
    registry = Registry(free=True, delay_s=0.005)
    a = actor(registry, valid)
    assert await a.prepare("tok") == "resolved"
    assert registry.claim.calls == [("t-claim", "tok", "this actor")]
    # Without a token (a caller that claimed the id itself) nothing is claimed.
    registry = Registry(free=True)
    assert await actor(registry, valid).prepare() == "resolved"
    assert registry.claim.calls == []


async def test_an_id_held_elsewhere_fails_the_check_before_any_spec_mistake() -> None:
    with pytest.raises(b.IdTaken, match="'t-claim' is still running"):
        await actor(Registry(free=False, delay_s=0.05), invalid).prepare("tok")
    # Held, the id lets the spec's own mistakes through.
    with pytest.raises(SpecError, match=r"legs\[0\]\.symbol"):
        await actor(Registry(free=True), invalid).prepare("tok")


async def test_a_registry_that_does_not_answer_fails_the_check_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(b, "CLAIM_TIMEOUT_S", 0.05)
    with pytest.raises(b.RegistryUnavailable, match=r"did not answer within 0\.05 s"):
        await asyncio.wait_for(actor(Registry(free=True, delay_s=None), valid).prepare("t"), 5)


async def test_a_run_whose_claim_is_refused_ends_having_reserved_and_armed_nothing() -> None:
    registry = Registry(free=False)
    a = actor(registry, valid)
    # The engine's order: the check, then the run right behind it, both with the token.
    checked = asyncio.ensure_future(a.prepare("tok"))
    report = await asyncio.wait_for(a.run({}, "tok"), 10)
    with pytest.raises(b.IdTaken):
        await checked
    assert report.status is BasketState.FAILED
    assert report.reason.startswith("basket_id: 't-claim' is still running"), report.reason
    assert len(registry.claim.calls) == 1  # one claim, shared by the check and the run
    assert registry.queue_to_arm.calls == [] and a.collateral.reserve.calls == []
