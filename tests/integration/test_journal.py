"""The journal's store, one suite on both backends: SQLite (WAL) in a temp dir, and a real
PostgreSQL server that this module starts for the session (Debian's package, listening on
127.0.0.1 only, in a temp dir) and stops by its pid. No mock database: where PostgreSQL is
not installed, the Postgres half fails, saying what is missing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import sqlite3
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.journal import (
    SCHEMA_VERSION,
    JournalBackpressure,
    JournalError,
    JournalRecordError,
    JournalStore,
    JournalVersionError,
    JournalWriter,
    journal_store,
    split_run_id,
)
from actors.journal import postgres as pg_backend
from actors.journal import sqlite as sqlite_backend
from actors.journal.postgres import PostgresJournal, redact_dsn
from actors.journal.records import (
    RECORD_TYPES,
    BasketReported,
    BasketResolved,
    BasketStateChanged,
    BasketSubmitted,
    ChildOrderSent,
    CollateralReleased,
    CollateralReserved,
    FillBooked,
    HedgeOrderReported,
    HedgeOrderSent,
    HedgePosition,
    LegReconciled,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Purpose,
    Record,
    ReportSource,
    TransferRecorded,
    desk_stream,
)
from actors.journal.sqlite import SqliteJournal
from actors.lifecycle import BasketState
from bench.pgserver import DATABASE, USER, PgServer, PostgresMissing, temporary_postgres
from bench.sessions import free_port
from tests.support import until
from venues.model import (
    AckKind,
    ExecutionReport,
    Fill,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

D = Decimal
WAIT_S = 10.0
T0 = 1_700_000_000_123_456_789  # a wall-clock ns time with every digit significant
PG_USER, PG_DB = USER, DATABASE


# -- a real PostgreSQL server for the session ----------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    try:
        with temporary_postgres() as server:
            yield server
    except PostgresMissing as e:
        pytest.fail(f"PostgreSQL: {e}")


# -- the two backends ----------------------------------------------------------------------
class Backend:
    """Makes stores on one journal location (each `make` is a separate connection)."""

    def __init__(
        self,
        name: str,
        make: Callable[..., JournalStore],
        rewrite: Callable[[str], Awaitable[None]],
    ) -> None:
        self.name = name
        self._make = make
        # Runs `UPDATE records SET body = <expression of body>` on the journal's own table,
        # outside the store (to make a journal as older code wrote it).
        self.rewrite = rewrite

    def make(self, **kw: Any) -> JournalStore:
        return self._make(**kw)

    async def opened(self, **kw: Any) -> JournalStore:
        store = self.make(**kw)
        await store.open()
        return store


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        data = tmp_path / "data"

        async def rewrite_sqlite(expression: str) -> None:
            with contextlib.closing(sqlite3.connect(data / sqlite_backend.FILENAME)) as conn:
                conn.execute(f"UPDATE records SET body = {expression}")
                conn.commit()

        return Backend("sqlite", lambda **kw: SqliteJournal(data, **kw), rewrite_sqlite)
    server: PgServer = request.getfixturevalue("postgres_server")
    schema = f"t_{uuid.uuid4().hex[:16]}"  # a journal of its own per test

    async def rewrite_postgres(expression: str) -> None:
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute(f"UPDATE {schema}.records SET body = {expression}")
        finally:
            await conn.close()

    return Backend(
        "postgres",
        lambda **kw: PostgresJournal(server.dsn(), schema=schema, **kw),
        rewrite_postgres,
    )


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[JournalStore]:
    s = await backend.opened()
    try:
        yield s
    finally:
        await s.close()


class GatedStore:
    """A real store whose appends wait for `gate`: a commit that has not happened yet."""

    def __init__(self, inner: JournalStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.calls = 0
        self.committed = 0

    async def append(self, records: Sequence[Record]) -> None:
        self.calls += 1
        await self.gate.wait()
        await self.inner.append(records)
        self.committed += len(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- records -------------------------------------------------------------------------------
def report(
    coid: str,
    status: OrderStatus,
    filled: str,
    *,
    ack: AckKind | None = None,
    fee: str = "0",
    fill: Fill | None = None,
) -> ExecutionReport:
    return ExecutionReport(
        venue="alpha",
        symbol="ETHUSDT",
        client_order_id=coid,
        order_id="9000000000001",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        status=status,
        quantity=D("1.5"),
        price=D("3000.01"),
        cum_filled=D(filled),
        avg_price=D("3000.005") if D(filled) else None,
        cum_fee=D(fee),
        ack_kind=ack,
        last_fill=fill,
        venue_receive_ns=T0 + 1,
        venue_accept_ns=T0 + 2,
        venue_ts_ns=T0 + 3,
    )


def sent(run_id: str, coid: str, n: int, *, leg: str = "eth", qty: str = "1.5") -> ChildOrderSent:
    return ChildOrderSent(
        run_id=run_id,
        leg_id=leg,
        n=n,
        client_order_id=coid,
        venue="alpha",
        symbol="ETHUSDT",
        side=Side.BUY,
        qty=D(qty),
        price=D("3000.01"),
        type=OrderType.LIMIT,
        tif=TimeInForce.IOC,
        purpose=Purpose.SLICE,
        mid=D("3000.005"),
        ts_ns=T0 + n,
    )


def one_of_each(run_id: str, desk: str = "desk-1") -> list[Record]:
    """A record of every kind, with values that a lossy store would change."""
    tiny, huge = D("0.000000000000000012345678901234567890"), D("123456789012345678901234.5")
    fill = Fill(
        trade_id=str(2**62),
        price=D("3000.01"),
        quantity=D("0.75"),
        fee=D("0.001125007500"),
        fee_asset="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=T0 + 7,
    )
    return [
        BasketSubmitted(
            run_id=run_id,
            basket_id=split_run_id(run_id)[0],
            spec='basket_id = "demo"\n[[legs]]\nquantity = "1.5"  # ünïcödé\n',
            spec_format="toml",
            venues_digest="ab" * 32,
            ts_ns=T0,
        ),
        BasketStateChanged(run_id=run_id, state=BasketState.RUNNING, reason="fired", ts_ns=T0),
        BasketResolved(run_id=run_id, resolved='{"basket_id": "demo", "legs": []}', ts_ns=T0),
        BasketReported(run_id=run_id, report='{"basket_id": "demo", "status": "FAILED"}', ts_ns=T0),
        sent(run_id, "demo-eth-0", 0),
        OrderAcked(
            run_id=run_id,
            leg_id="eth",
            report=report("demo-eth-0", OrderStatus.NEW, "0", ack=AckKind.ACCEPTED),
            ts_ns=T0 + 5,
        ),
        OrderReported(
            run_id=run_id,
            leg_id="eth",
            report=report(
                "demo-eth-0", OrderStatus.PARTIALLY_FILLED, "0.75", fee="0.0011", fill=fill
            ),
            source=ReportSource.STREAM,
            ts_ns=T0 + 8,
        ),
        FillBooked(
            run_id=run_id,
            leg_id="eth",
            client_order_id="demo-eth-0",
            venue="alpha",
            symbol="ETHUSDT",
            trade_id=str(2**62),
            qty=tiny,
            price=huge,
            fee=D("-0.0001"),  # a maker rebate
            fee_asset="USDT",
            liquidity=Liquidity.MAKER,
            venue_ts_ns=2**63 - 1,
            ts_ns=-(2**63),
        ),
        OrderRejected(
            run_id=run_id,
            leg_id="eth",
            client_order_id="demo-eth-1",
            reason="INSUFFICIENT_MARGIN: margin is insufficient",
            ts_ns=T0 + 9,
        ),
        OrderOutcomeUnknown(
            run_id=run_id, leg_id="eth", client_order_id="demo-eth-2", reason="-1007", ts_ns=T0
        ),
        LegReconciled(
            run_id=run_id,
            leg_id="eth",
            reconciled=False,
            orders_checked=3,
            venue_filled_qty=D("0.75"),
            ledger_filled_qty=D("0.7500"),
            mismatches=["demo-eth-0: filled ours=0.7500 venue=0.75"],
            still_open=["demo-eth-2"],
            ts_ns=T0 + 10,
        ),
        HedgeOrderSent(
            desk_id=desk,
            client_order_id="hedge-1",
            venue="gamma",
            symbol="BTCUSDT",
            side=Side.SELL,
            qty=None,
            notional_usd=12_345.678901234,
            ts_ns=T0 + 11,
        ),
        HedgeOrderReported(
            desk_id=desk, report=report("hedge-1", OrderStatus.FILLED, "1.5"), ts_ns=T0 + 12
        ),
        HedgePosition(
            desk_id=desk, symbol="BTCUSDT", qty=D("-0.123"), baskets={run_id: -0.5}, ts_ns=T0
        ),
        CollateralReserved(
            run_id=run_id,
            needs={"alpha": D("1234.56"), "beta": huge},
            holdings={"beta": {"ETH": tiny}},
            ts_ns=T0 + 13,
        ),
        CollateralReleased(
            run_id=run_id, needs={"alpha": D("1234.56")}, reason="completed", ts_ns=T0 + 14
        ),
        TransferRecorded(
            run_id=run_id,
            client_transfer_id="demo.1abc-t1",
            transfer_kind="internal",
            venue="gamma",
            asset="USDT",
            amount=D("2821.24"),
            source="gamma/spot",
            destination="gamma/margin",
            state="completed",
            requested_ns=T0 + 15,
            updated_ns=T0 + 60_000_000_015,
            venue_transfer_id="17",
            ts_ns=T0 + 16,
        ),
    ]


# -- the suite -----------------------------------------------------------------------------
async def test_every_record_kind_comes_back_exactly(store: JournalStore) -> None:
    run_id = await store.new_run("demo")
    records = one_of_each(run_id)
    assert {type(r) for r in records} == set(RECORD_TYPES), "a record kind is not covered"
    await store.append(records)

    back = [e.record for e in await store.records(None)]
    assert back == records
    # Equal is not enough for money: the digits and the exponent must survive.
    fill = next(r for r in back if isinstance(r, FillBooked))
    assert str(fill.qty) == "1.2345678901234567890E-17"
    assert str(fill.price) == "123456789012345678901234.5"
    assert (fill.venue_ts_ns, fill.ts_ns) == (2**63 - 1, -(2**63))
    reconciled = next(r for r in back if isinstance(r, LegReconciled))
    assert str(reconciled.ledger_filled_qty) == "0.7500"
    # A run's stream and a desk's stream are read apart.
    run_part = [e.record for e in await store.records(run_id)]
    desk_part = [e.record for e in await store.records(desk_stream("desk-1"))]
    assert run_part + desk_part == [r for r in records if r in run_part] + desk_part
    assert {type(r) for r in desk_part} == {HedgeOrderSent, HedgeOrderReported, HedgePosition}
    only = await store.records(run_id, kinds=[FillBooked, BasketStateChanged])
    assert [type(e.record) for e in only] == [BasketStateChanged, FillBooked]


async def test_sequence_numbers_strictly_increase(store: JournalStore) -> None:
    a, b = await store.new_run("a"), await store.new_run("b")
    for i in range(5):
        await store.append(
            [
                sent(a, f"a-eth-{i}", i),
                sent(b, f"b-eth-{i}", i),
                sent(a, f"a-btc-{i}", i, leg="btc"),
            ]
        )
    every = await store.records(None)
    seqs = [e.seq for e in every]
    assert len(seqs) == 15 and all(x < y for x, y in itertools.pairwise(seqs))
    assert [e.record.client_order_id for e in every[:3]] == ["a-eth-0", "b-eth-0", "a-btc-0"]
    # A stream's records are the store's, in the same order; `after_seq` resumes a reader.
    of_a = await store.records(a)
    assert [e for e in every if e.record.run_id == a] == of_a
    middle = seqs[6]
    assert await store.records(None, after_seq=middle) == [e for e in every if e.seq > middle]
    assert (
        await store.records(a, after_seq=middle, limit=2) == [e for e in of_a if e.seq > middle][:2]
    )
    # The numbers go on growing after a reopen.
    await store.close()
    await store.open()
    await store.append([sent(b, "b-eth-99", 99)])
    assert (await store.records(b))[-1].seq > seqs[-1]


async def test_run_identities_are_never_given_twice(backend: Backend) -> None:
    first = await backend.opened()
    other = await backend.opened()  # a second connection to the same journal
    try:
        given_ids = [await first.new_run("demo-eth") for _ in range(30)]
        given_ids += await asyncio.gather(*(s.new_run("demo-eth") for s in [first, other] * 10))
        given_ids.append(await first.new_run("demo-btc"))
    finally:
        await first.close()
        await other.close()
    assert len(set(given_ids)) == len(given_ids) == 51
    numbers = sorted(split_run_id(r)[1] for r in given_ids if r.startswith("demo-eth#"))
    assert numbers == list(range(1, 51))
    assert given_ids[0] == "demo-eth#1" and given_ids[-1] == "demo-btc#1"

    reopened = await backend.opened()
    try:
        assert await reopened.new_run("demo-eth") == "demo-eth#51"
        with pytest.raises(JournalError, match="basket_id 'a#b'"):
            await reopened.new_run("a#b")
    finally:
        await reopened.close()


async def test_unfinished_runs_and_the_latest_run(store: JournalStore) -> None:
    done, running, failed = [await store.new_run("demo") for _ in range(3)]
    other = await store.new_run("other")
    await store.append(
        [
            BasketStateChanged(run_id=done, state=BasketState.RUNNING, ts_ns=T0),
            BasketStateChanged(run_id=done, state=BasketState.COMPLETED, ts_ns=T0 + 1),
            BasketStateChanged(run_id=running, state=BasketState.RUNNING, ts_ns=T0 + 2),
            BasketStateChanged(run_id=failed, state=BasketState.FAILED, reason="x", ts_ns=T0),
        ]
    )
    unfinished = await store.runs(unfinished_only=True)
    assert [(r.run_id, r.state) for r in unfinished] == [
        (running, BasketState.RUNNING),
        (other, BasketState.PENDING),  # created, never submitted: recovery must see it
    ]
    assert [r.run_id for r in await store.runs("demo")] == [done, running, failed]
    assert [r.run_id for r in await store.runs("demo", unfinished_only=True)] == [running]
    latest = await store.latest_run("demo")
    assert latest is not None and latest.run_id == failed and latest.finished
    assert latest.updated_ns == T0 and latest.number == 3
    assert await store.latest_run("never") is None
    assert await store.run(running) == unfinished[0]
    assert await store.run("never#1") is None


async def test_orders_come_back_with_their_latest_state(store: JournalStore) -> None:
    run = await store.new_run("demo")
    f1 = Fill(
        trade_id="1",
        price=D("3000"),
        quantity=D("1"),
        fee=D("0.15"),
        fee_asset="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=T0,
    )
    f2 = msgspec.structs.replace(f1, trade_id="2", quantity=D("0.5"), liquidity=Liquidity.MAKER)

    def booked(f: Fill) -> FillBooked:
        return FillBooked(
            run_id=run,
            leg_id="eth",
            client_order_id="o-0",
            venue="alpha",
            symbol="ETHUSDT",
            trade_id=f.trade_id,
            qty=f.quantity,
            price=f.price,
            fee=f.fee,
            fee_asset="USDT",
            liquidity=f.liquidity,
            venue_ts_ns=T0,
            ts_ns=T0,
        )

    await store.append(
        [
            sent(run, "o-0", 0),
            sent(run, "o-1", 1),
            sent(run, "o-2", 2, leg="btc"),
            OrderAcked(
                run_id=run,
                leg_id="eth",
                ts_ns=T0 + 10,
                report=report("o-0", OrderStatus.NEW, "0", ack=AckKind.ACCEPTED),
            ),
            OrderReported(
                run_id=run,
                leg_id="eth",
                ts_ns=T0 + 11,
                report=report("o-0", OrderStatus.PARTIALLY_FILLED, "1", fee="0.15"),
            ),
            booked(f1),
            OrderReported(
                run_id=run,
                leg_id="eth",
                ts_ns=T0 + 12,
                report=report("o-0", OrderStatus.FILLED, "1.5", fee="0.2"),
            ),
            booked(f2),
            booked(f2),  # the same trade written twice (a retried batch) counts once
            # A late, older report never moves the order back.
            OrderReported(
                run_id=run,
                leg_id="eth",
                ts_ns=T0 + 13,
                source=ReportSource.QUERY,
                report=report("o-0", OrderStatus.PARTIALLY_FILLED, "1", fee="0.15"),
            ),
            OrderRejected(
                run_id=run,
                leg_id="eth",
                client_order_id="o-1",
                ts_ns=T0 + 14,
                reason="VENUE_UNAVAILABLE: 503",
                turned_away=True,
            ),
            OrderOutcomeUnknown(run_id=run, leg_id="btc", client_order_id="o-2", ts_ns=T0 + 15),
            sent(run, "o-0", 0),  # a repeated write-ahead adds no second order
        ]
    )
    orders = await store.orders(run)
    assert [(o.order.client_order_id, o.leg_id) for o in orders] == [
        ("o-0", "eth"),
        ("o-1", "eth"),
        ("o-2", "btc"),
    ]
    filled, refused, unknown = (o.order for o in orders)
    assert (filled.status, filled.filled_qty, filled.fee) == (
        OrderStatus.FILLED,
        D("1.5"),
        D("0.2"),
    )
    assert (filled.ack_kind, filled.ack_ns, filled.sent_ns) == (AckKind.ACCEPTED, T0 + 10, T0)
    assert filled.venue_accept_ns == T0 + 2 and filled.mid == D("3000.005")
    assert [f.trade_id for f in orders[0].fills] == ["1", "2"]
    assert (refused.status, refused.turned_away) == (OrderStatus.REJECTED, True)
    assert refused.reject == "VENUE_UNAVAILABLE: 503"
    assert unknown.unknown and unknown.status is OrderStatus.PENDING_NEW
    assert orders[0].sent_seq < orders[1].sent_seq < orders[2].sent_seq
    assert await store.orders(await store.new_run("empty")) == []


async def test_an_empty_journal_gets_the_current_schema(backend: Backend) -> None:
    assert len(sqlite_backend.MIGRATIONS) == len(pg_backend.MIGRATIONS) == SCHEMA_VERSION
    store = await backend.opened()
    try:
        assert store.version == SCHEMA_VERSION  # type: ignore[attr-defined]
        assert await store.runs() == [] and await store.records(None) == []
    finally:
        await store.close()


async def test_migrations_apply_in_order_and_a_newer_journal_is_refused(backend: Backend) -> None:
    v1 = list(backend.make().migrations)[:1]  # type: ignore[attr-defined]
    table = "{s}.extra" if backend.name == "postgres" else "extra"
    v2 = [
        *v1,
        [
            f"CREATE TABLE {table} (x INTEGER NOT NULL)",
            f"INSERT INTO {table} VALUES (1)",
            f"INSERT INTO {table} SELECT max(x) + 1 FROM {table}",  # needs the step before
        ],
    ]
    old = await backend.opened(migrations=v1)
    run = await old.new_run("demo")
    await old.append([sent(run, "o-0", 0)])
    await old.close()

    new = await backend.opened(migrations=v2)  # v1 → v2, keeping what v1 wrote
    try:
        assert new.version == 2  # type: ignore[attr-defined]
        assert [e.record.client_order_id for e in await new.records(run)] == ["o-0"]
    finally:
        await new.close()
    again = await backend.opened(migrations=v2)  # nothing left to apply: opens as it is
    await again.close()

    with pytest.raises(JournalVersionError) as refused:
        await backend.opened(migrations=v1)
    message = str(refused.value)
    assert "schema version 2" in message and "versions up to 1" in message
    assert (refused.value.found, refused.value.known) == (2, 1)


async def test_a_writers_batches_all_land_after_flush(backend: Backend) -> None:
    store = await backend.opened()
    run = await store.new_run("demo")
    records = [sent(run, f"o-{i}", i) for i in range(2_000)]
    try:
        async with JournalWriter(store, max_batch=100, max_pending=5_000) as writer:
            for i, r in enumerate(records):
                writer.write(r)
                if i % 250 == 0:
                    await asyncio.sleep(0)  # let the flusher take what has gathered
            await writer.flush()
            assert writer.pending == 0
            assert [e.record for e in await store.records(run)] == records
            assert 20 <= writer.batches < len(records)  # batched, at most max_batch each
    finally:
        await store.close()


async def test_durable_returns_only_after_the_commit(backend: Backend) -> None:
    store = await backend.opened()
    gated = GatedStore(store)
    run = await store.new_run("demo")
    record = sent(run, "o-0", 0)
    try:
        async with JournalWriter(gated) as writer:  # type: ignore[arg-type]
            durable = asyncio.create_task(writer.durable(record))
            await until(lambda: gated.calls == 1, WAIT_S)
            done_early = durable.done()
            gated.gate.set()
            assert not done_early, "durable returned before its batch was committed"
            await asyncio.wait_for(durable, WAIT_S)
            assert gated.committed == 1
            # Committed means another connection reads it.
            reader = await backend.opened()
            try:
                assert [e.record for e in await reader.records(run)] == [record]
            finally:
                await reader.close()
    finally:
        await store.close()


async def test_a_full_writer_refuses_a_record_and_drops_nothing(backend: Backend) -> None:
    store = await backend.opened()
    gated = GatedStore(store)
    run = await store.new_run("demo")
    records = [sent(run, f"o-{i}", i) for i in range(4)]
    try:
        writer = JournalWriter(gated, max_pending=3)  # type: ignore[arg-type]
        await writer.start()
        writer.write(records[0])
        await until(lambda: gated.calls == 1, WAIT_S)  # in flight, not committed: still counted
        writer.write(records[1])
        writer.write(records[2])
        with pytest.raises(JournalBackpressure, match="3 records not yet written"):
            writer.write(records[3])
        assert writer.unsaved() == records[:3]
        gated.gate.set()
        await writer.flush()
        writer.write(records[3])  # room again
        await writer.close()
        assert [e.record for e in await store.records(run)] == records
    finally:
        await store.close()


async def test_concurrent_writers_interleave_without_loss(backend: Backend) -> None:
    store = await backend.opened()
    runs = [await store.new_run("demo") for _ in range(3)]
    per_task = 300

    async def produce(writer: JournalWriter, run: str) -> None:
        for i in range(per_task):
            if i % 50 == 49:
                await writer.durable(sent(run, f"{run}-{i}", i))
            else:
                writer.write(sent(run, f"{run}-{i}", i))
            await asyncio.sleep(0)  # yield: the tasks' writes interleave

    try:
        async with (
            JournalWriter(store, max_batch=64) as one,
            JournalWriter(store, max_batch=64) as two,
        ):
            await asyncio.gather(
                produce(one, runs[0]), produce(one, runs[1]), produce(two, runs[2])
            )
        every = await store.records(None)
        assert len(every) == 3 * per_task
        for run in runs:  # every task's records, each once, in the order it wrote them
            ns = [e.record.n for e in every if e.record.run_id == run]
            assert ns == list(range(per_task))
        owners = [e.record.run_id for e in every]
        switches = sum(a != b for a, b in itertools.pairwise(owners))
        assert switches > 3, "the writers did not interleave"
    finally:
        await store.close()


async def test_a_writer_whose_store_keeps_failing_stops_and_says_why(tmp_path: Path) -> None:
    class Broken:
        calls = 0

        async def append(self, records: Sequence[Record]) -> None:
            Broken.calls += 1
            raise JournalError("disk I/O error")

    writer = JournalWriter(Broken(), retry_for_s=0.05, timeout_s=WAIT_S)  # type: ignore[arg-type]
    await writer.start()
    record = sent("demo#1", "o-0", 0)
    with pytest.raises(JournalError, match="disk I/O error"):
        await writer.durable(record)
    assert Broken.calls > 1  # retried before giving up
    with pytest.raises(JournalError, match="stopped"):
        writer.write(record)
    assert writer.unsaved() == [record]
    with pytest.raises(JournalError):
        await writer.close()


async def test_a_stream_name_that_cannot_be_stored_is_refused(store: JournalStore) -> None:
    run = await store.new_run("demo")
    good = sent(run, "o-0", 0)
    with pytest.raises(JournalError, match=r"ChildOrderSent: its run or desk id .* cannot name"):
        await store.append([good, sent("demo\x00#1", "o-1", 1)])
    with pytest.raises(JournalRecordError, match="cannot name a stream"):
        await store.append([sent("\ud800#1", "o-1", 1)])  # a lone surrogate
    with pytest.raises(JournalError, match="basket_id"):
        await store.new_run("demo\x00")
    assert await store.records(None) == []  # the whole append was refused


async def test_a_record_no_store_can_hold_stops_a_writer_at_once(store: JournalStore) -> None:
    writer = JournalWriter(store, retry_for_s=WAIT_S * 10)
    await writer.start()
    with pytest.raises(JournalRecordError, match="cannot name a stream"):
        await writer.durable(sent("bad\x00#1", "o-0", 0))  # no minute of retries first
    with pytest.raises(JournalRecordError):
        writer.write(sent("demo#1", "o-1", 1))
    with pytest.raises(JournalRecordError):
        await writer.close()


async def test_a_data_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = SqliteJournal(blocker / "journal")
    with pytest.raises(JournalError, match=f"data directory {blocker / 'journal'}"):
        await store.open()
    assert isinstance(journal_store(tmp_path / "j"), SqliteJournal)
    assert isinstance(journal_store("postgresql://u@127.0.0.1/db"), PostgresJournal)


async def test_sqlite_uses_wal_and_keeps_the_loop_free(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / "j")
    await store.open()
    run = await store.new_run("demo")
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        for _ in range(100_000):
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    # A big append runs in the store's thread: the loop goes on meanwhile.
    await store.append([sent(run, f"o-{i}", i) for i in range(20_000)])
    beat.cancel()
    await store.close()
    assert ticks > 10, "the event loop was blocked by the disk"
    conn = sqlite3.connect(tmp_path / "j" / "journal.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_the_password_never_appears_in_a_connection_error(
    postgres_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    real = postgres_server.password
    wrong = "Wr0ng-" + secrets.token_urlsafe(12)
    closed_port = free_port()
    attempts = [
        postgres_server.dsn(password=wrong),  # refused by the server
        postgres_server.dsn(port=closed_port),  # nothing listens there
        f"postgresql://{PG_USER}@127.0.0.1:{closed_port}/{PG_DB}?password={real}",
        f"postgresql://{PG_USER}:{real}@127.0.0.1:{postgres_server.port}/no_such_db",
        f"host=127.0.0.1 port={closed_port} user={PG_USER} password={real}",
        # The password again where the server will quote it back (a database's name).
        f"postgresql://{PG_USER}:{real}@127.0.0.1:{postgres_server.port}/{real}",
    ]
    messages = []
    for dsn in attempts:
        store = PostgresJournal(dsn, connect_timeout_s=5.0)
        with pytest.raises(JournalError) as failed:
            await store.open()
        messages.append(str(failed.value))
        shown = "".join(traceback.format_exception(failed.value)) + repr(store)
        for secret in (real, wrong):
            assert secret not in shown, f"the password leaked: {shown}"
        assert "cannot connect to the journal at " in str(failed.value)
    assert "password authentication failed" in messages[0]
    assert f"{PG_USER}:***@127.0.0.1" in messages[0]
    assert "password=***" in messages[2] and "password=***" in messages[4]
    assert 'database "***" does not exist' in messages[5]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert real not in logged and wrong not in logged
    assert redact_dsn(postgres_server.dsn()) == (
        f"postgresql://{PG_USER}:***@127.0.0.1:{postgres_server.port}/{PG_DB}"
    )


# -- any records come back equal and in order ----------------------------------------------
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# A stream's name is any text but NUL (which the stores refuse: see the test below).
_STREAM_IDS = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=12
)


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of a msgspec type, as a store must keep them."""
    match t:
        case mi.StrType():
            return st.text(max_size=12)
        case mi.IntType():
            return _INT64
        case mi.FloatType():
            return st.floats(allow_nan=False, allow_infinity=False)
        case mi.BoolType():
            return st.booleans()
        case mi.DecimalType():
            return st.decimals(allow_nan=False, allow_infinity=False)
        case mi.NoneType():
            return st.none()
        case mi.EnumType():
            return st.sampled_from(list(t.cls))
        case mi.UnionType():
            return st.one_of([_strategy(x) for x in t.types])
        case mi.ListType():
            return st.lists(_strategy(t.item_type), max_size=3)
        case mi.DictType():
            return st.dictionaries(_strategy(t.key_type), _strategy(t.value_type), max_size=3)
        case mi.StructType():
            fields = {
                f.name: _STREAM_IDS if f.name in ("run_id", "desk_id") else _strategy(f.type)
                for f in t.fields
            }
            return st.fixed_dictionaries(fields).map(lambda kw, cls=t.cls: cls(**kw))
    raise AssertionError(f"no strategy for {t}")


_any_record = _strategy(mi.type_info(Record))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(_any_record, min_size=1, max_size=12), cut=st.integers(0, 12))
async def test_any_records_come_back_equal_and_in_order(
    store: JournalStore, records: list[Record], cut: int
) -> None:
    last = (await store.records(None))[-1:]
    after = last[0].seq if last else 0
    await store.append(records[:cut])
    await store.append(records[cut:])
    back = await store.records(None, after_seq=after)
    assert [e.record for e in back] == records
    assert all(x.seq < y.seq for x, y in itertools.pairwise(back))


async def test_a_journal_of_the_first_schema_is_migrated_to_this_one(backend: Backend) -> None:
    shipped = list(backend.make().migrations)  # type: ignore[attr-defined]
    old = await backend.opened(migrations=shipped[:1])
    run = await old.new_run("demo")
    await old.append([sent(run, "o-0", 0)])
    await old.close()
    new = await backend.opened()
    try:
        assert new.version == SCHEMA_VERSION == len(shipped)  # type: ignore[attr-defined]
        assert [e.record.client_order_id for e in await new.records(run)] == ["o-0"]
        assert (await new.new_run("demo")).endswith("#2")
    finally:
        await new.close()


async def test_a_journal_of_schema_2_gets_its_order_and_trade_ids_as_strings(
    backend: Backend,
) -> None:
    shipped = list(backend.make().migrations)  # type: ignore[attr-defined]
    old = await backend.opened(migrations=shipped[:2])
    run = await old.new_run("ids")
    fill = Fill(
        trade_id="77",
        price=D("3000.01"),
        quantity=D("0.5"),
        fee=D("0.6"),
        fee_asset="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=T0,
    )
    filled = report("o-1", OrderStatus.PARTIALLY_FILLED, "0.5", fill=fill)
    pending = msgspec.structs.replace(
        report("o-2", OrderStatus.PENDING_NEW, "0", ack=AckKind.UNKNOWN), order_id=""
    )
    records: list[Record] = [
        OrderAcked(run_id=run, leg_id="eth", report=filled, ts_ns=T0),
        OrderAcked(run_id=run, leg_id="eth", report=pending, ts_ns=T0),
        FillBooked(
            run_id=run,
            leg_id="eth",
            client_order_id="o-1",
            venue="alpha",
            symbol="ETHUSDT",
            trade_id="77",
            qty=D("0.5"),
            price=D("3000.01"),
            fee=D("0.6"),
            fee_asset="USDT",
            liquidity=Liquidity.TAKER,
            venue_ts_ns=T0,
            ts_ns=T0,
        ),
    ]
    await old.append(records)
    await old.close()
    # As schema 2 wrote them: Binance's numbers, 0 for an order id not yet known.
    await backend.rewrite(
        'replace(replace(replace(body, \'"order_id":"9000000000001"\', '
        '\'"order_id":9000000000001\'), \'"trade_id":"77"\', \'"trade_id":77\'), '
        '\'"order_id":""\', \'"order_id":0\')'
    )
    unmigrated = await backend.opened(migrations=shipped[:2])
    try:
        with pytest.raises(msgspec.ValidationError):  # what this code cannot read as it was
            await unmigrated.records(run)
    finally:
        await unmigrated.close()
    new = await backend.opened()
    try:
        assert [e.record for e in await new.records(run)] == records
    finally:
        await new.close()
