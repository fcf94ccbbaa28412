"""The supervisor's run identities, outside Ray: every submission a run of its own, its
spec journaled before its identity is handed out, a run that never started marked so, and
a run still being submitted left to its driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.journal import SqliteJournal
from actors.journal.records import BasketStateChanged, BasketSubmitted
from actors.lifecycle import BasketState
from actors.protocol import BasketOptions
from actors.shells import registry
from actors.shells.registry import BasketRegistry
from actors.spec import ID_ROOM, client_order_id

SPEC = 'kind = "basket"\nbasket_id = "b1"\n'


async def test_each_submission_is_a_run_of_its_own_with_its_own_order_ids(tmp_path: Path) -> None:
    supervisor = BasketRegistry(journal=str(tmp_path), namespace="ns")
    longest = "x" * (ID_ROOM - 2)
    first = await supervisor.open_run("b1", SPEC, longest, BasketOptions(namespace="ns"))
    second = await supervisor.open_run("b1", SPEC, longest, BasketOptions(namespace="ns"))
    assert (first[0], second[0]) == ("b1#1", "b1#2")
    assert first[1] != second[1] and first[1].startswith("b1.1") and second[1].startswith("b1.2")
    # The longest id the spec may have still fits the venues' 36 characters.
    assert len(client_order_id(second[1], longest, 99_999)) <= 36
    await supervisor.abandon_run("b1#2", "a basket of this id is still running")
    await supervisor.journal.close()  # type: ignore[union-attr]

    store = SqliteJournal(tmp_path)
    await store.open()
    try:
        (submitted,) = [e.record for e in await store.records("b1#1", [BasketSubmitted])]
        assert submitted.spec == SPEC and submitted.order_prefix == first[1]
        assert '"namespace":"ns"' in submitted.options
        assert (await store.run("b1#1")).state is BasketState.PENDING  # type: ignore[union-attr]
        abandoned = await store.run("b1#2")
        assert abandoned is not None and abandoned.finished
        (change,) = [e.record for e in await store.records("b1#2", [BasketStateChanged])]
        assert change.state is BasketState.FAILED and "still running" in change.reason
    finally:
        await store.close()


async def test_without_a_journal_a_run_has_no_identity_but_a_prefix_of_its_own() -> None:
    supervisor = BasketRegistry()
    a = await supervisor.open_run("b1", SPEC, "leg", BasketOptions())
    b = await supervisor.open_run("b1", SPEC, "leg", BasketOptions())
    assert a[0] == b[0] == "" and a[1].startswith("b1.0") and a[1] != b[1]


async def test_a_run_a_driver_is_still_submitting_is_left_to_it_until_its_grace_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another driver's engine starting (and recovering) while this run is being submitted
    # must not take it: the submitting driver is about to hand it to `supervise`.
    supervisor = BasketRegistry(journal=str(tmp_path), namespace="ns")
    carried_on: list[str] = []
    monkeypatch.setattr(supervisor, "_recover_run", carried_on.append)
    run_id, _ = await supervisor.open_run("b1", SPEC, "leg", BasketOptions(namespace="ns"))
    assert await supervisor.recover() == [] and carried_on == []
    # The driver never came back: past the grace the run is taken for unfinished.
    supervisor._opening[run_id] -= registry.OPENING_GRACE_S
    assert await supervisor.recover() == [run_id] == carried_on
    await supervisor.journal.close()  # type: ignore[union-attr]


async def test_an_abandoned_run_is_no_longer_waited_for(tmp_path: Path) -> None:
    supervisor = BasketRegistry(journal=str(tmp_path), namespace="ns")
    run_id, _ = await supervisor.open_run("b1", SPEC, "leg", BasketOptions(namespace="ns"))
    await supervisor.abandon_run(run_id, "its actor did not answer")
    assert run_id not in supervisor._opening
    assert await supervisor.recover() == []  # finished in the journal: nothing to carry on
    await supervisor.journal.close()  # type: ignore[union-attr]
