"""An idle pooled actor lives on its pool's lease: renewed, it stays; lent, it stays; left
without renewal, it closes and exits once the lease runs out."""

from __future__ import annotations

import asyncio
import time

from actors.shells.lease import PoolLease

LEASE_S = 0.3


class Watched:
    """A lease whose close and exit are recorded instead of ending a Ray actor."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.lease = PoolLease(self.close, "test actor", exit=self.exit)

    async def close(self) -> None:
        self.events.append(("close", time.monotonic()))

    def exit(self) -> None:
        self.events.append(("exit", time.monotonic()))


async def until(condition, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_a_lease_left_to_run_out_closes_then_exits_once_and_no_sooner() -> None:
    async def go() -> Watched:
        w = Watched()
        start = time.monotonic()
        w.lease.renew(LEASE_S)
        assert await until(lambda: len(w.events) == 2, 5)
        assert [e for e, _ in w.events] == ["close", "exit"]
        assert w.events[0][1] - start >= LEASE_S
        return w

    asyncio.run(go())


def test_renewals_keep_the_actor_and_the_last_one_counts() -> None:
    async def go() -> None:
        w = Watched()
        start = time.monotonic()
        last = start
        for _ in range(7):  # renewed for twice the lease's length
            last = time.monotonic()
            w.lease.renew(LEASE_S)
            await asyncio.sleep(LEASE_S / 3)  # the pool's renewal rhythm
        assert w.events == []
        assert await until(lambda: len(w.events) == 2, 5)
        assert w.events[0][1] >= last + LEASE_S > start + 2 * LEASE_S

    asyncio.run(go())


def test_a_lent_actor_is_off_its_lease_for_good() -> None:
    async def go() -> None:
        w = Watched()
        w.lease.renew(LEASE_S)
        w.lease.end()
        w.lease.renew(LEASE_S)  # a renewal in flight when it was lent changes nothing
        assert not await until(lambda: bool(w.events), 3 * LEASE_S)
        assert w.lease.over

    asyncio.run(go())
