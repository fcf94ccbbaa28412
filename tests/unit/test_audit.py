"""The audit log: one JSON line per order record, what each line says, where it goes and
what it never holds (a secret)."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from actors.journal.records import (
    BasketStateChanged,
    ChildOrderSent,
    CollateralReserved,
    FillBooked,
    HedgeOrderReported,
    HedgeOrderSent,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Purpose,
    Record,
    ReportSource,
)
from actors.lifecycle import BasketState
from actors.protocol import AuditSettings
from actors.shells import audit as a
from venues.model import (
    AckKind,
    ExecutionReport,
    Liquidity,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
RUN = "eth-pair#3"
COID = "eth-pair.ab.long.0"


def report(status: OrderStatus, filled: str = "0", **kw: object) -> ExecutionReport:
    return ExecutionReport(
        venue="alpha",
        symbol="ETHUSDT",
        client_order_id=kw.pop("coid", COID),  # type: ignore[arg-type]
        order_id="9001",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        status=status,
        quantity=Decimal("1.5"),
        price=Decimal("3000.1"),
        cum_filled=Decimal(filled),
        avg_price=Decimal("3000") if filled != "0" else None,
        cum_fee=Decimal("0.9"),
        fee_asset="USDT",
        **kw,  # type: ignore[arg-type]
    )


def sent(coid: str = COID) -> ChildOrderSent:
    return ChildOrderSent(
        run_id=RUN,
        leg_id="long",
        n=0,
        client_order_id=coid,
        venue="alpha",
        symbol="ETHUSDT",
        side=Side.BUY,
        qty=Decimal("1.5"),
        price=Decimal("3000.1"),
        type=OrderType.LIMIT,
        tif=TimeInForce.IOC,
        purpose=Purpose.SLICE,
        ts_ns=T0,
    )


def fill(coid: str = COID, trade: str = "t1") -> FillBooked:
    return FillBooked(
        run_id=RUN,
        leg_id="long",
        client_order_id=coid,
        venue="alpha",
        symbol="ETHUSDT",
        trade_id=trade,
        qty=Decimal("1.5"),
        price=Decimal("3000"),
        fee=Decimal("0.9"),
        fee_asset="USDT",
        liquidity=Liquidity.TAKER,
        venue_ts_ns=T0 + 3,
        ts_ns=T0 + 4,
    )


def hedge_sent() -> HedgeOrderSent:
    return HedgeOrderSent(
        desk_id="alpha-ab12",
        client_order_id="h.ab12.1",
        venue="alpha",
        symbol="IDXUSDT",
        side=Side.SELL,
        qty=None,
        notional_usd=12_000.0,
        ts_ns=T0,
    )


def hedge_reported(filled: str) -> HedgeOrderReported:
    r = report(
        OrderStatus.FILLED if filled != "0" else OrderStatus.EXPIRED, filled, coid="h.ab12.1"
    )
    return HedgeOrderReported(desk_id="alpha-ab12", report=r, ts_ns=T0 + 9)


def lines_of(*records: Record) -> list[dict]:
    orders = a.SentOrders()
    out = []
    for r in records:
        for line in a.audit_lines(r, orders.take(r)):
            out.append(json.loads(a.encode_line(line)))
    return out


def test_an_order_sent_says_who_sent_what_where() -> None:
    [line] = lines_of(sent())
    assert line == {
        "ts": "2026-01-01T00:00:00.000000000Z",
        "ts_ns": T0,
        "event": "order_sent",
        "role": "leg",
        "run_id": RUN,
        "basket_id": "eth-pair",
        "leg_id": "long",
        "venue": "alpha",
        "symbol": "ETHUSDT",
        "side": "BUY",
        "client_order_id": COID,
        "quantity": "1.5",
        "price": "3000.1",
        "type": "LIMIT",
        "tif": "IOC",
        "reduce_only": False,
        "purpose": "slice",
    }


def test_an_ack_and_a_later_report_carry_the_venues_figures() -> None:
    ack = OrderAcked(
        run_id=RUN,
        leg_id="long",
        report=report(OrderStatus.NEW, ack_kind=AckKind.ACCEPTED),
        ts_ns=T0 + 1,
    )
    later = OrderReported(
        run_id=RUN,
        leg_id="long",
        report=report(OrderStatus.FILLED, "1.5"),
        source=ReportSource.STREAM,
        ts_ns=T0 + 2,
    )
    _, acked, reported = lines_of(sent(), ack, later)
    assert acked["event"] == "order_acked"
    assert (acked["status"], acked["ack_kind"], acked["order_id"]) == ("NEW", "ACCEPTED", "9001")
    assert acked["filled_qty"] == "0" and "avg_price" not in acked  # none yet: left out
    assert reported["event"] == "order_reported"
    assert (reported["status"], reported["filled_qty"], reported["avg_price"]) == (
        "FILLED",
        "1.5",
        "3000",
    )
    assert reported["source"] == "stream"
    assert {acked["basket_id"], reported["leg_id"], reported["client_order_id"]} == {
        "eth-pair",
        "long",
        COID,
    }


def test_a_fill_line_has_the_trade_its_price_and_fee() -> None:
    _, line = lines_of(sent(), fill())
    assert line["event"] == "fill"
    assert line["side"] == "BUY"  # from the order sent: the fill record does not repeat it
    assert (line["fill_qty"], line["fill_price"], line["fee"], line["fee_asset"]) == (
        "1.5",
        "3000",
        "0.9",
        "USDT",
    )
    assert (line["trade_id"], line["liquidity"]) == ("t1", "TAKER")


def test_a_refusal_and_a_lost_answer_name_the_order_and_why() -> None:
    rejected = OrderRejected(
        run_id=RUN,
        leg_id="long",
        client_order_id=COID,
        reason="INSUFFICIENT_MARGIN: margin is insufficient",
        ts_ns=T0 + 1,
    )
    unknown = OrderOutcomeUnknown(
        run_id=RUN, leg_id="long", client_order_id="eth-pair.ab.long.1", reason="timeout", ts_ns=T0
    )
    _, r, u = lines_of(sent(), rejected, unknown)
    assert (r["event"], r["reason"], r["turned_away"], r["venue"]) == (
        "order_rejected",
        "INSUFFICIENT_MARGIN: margin is insufficient",
        False,
        "alpha",
    )
    assert (u["event"], u["client_order_id"], u["reason"]) == (
        "order_unknown",
        "eth-pair.ab.long.1",
        "timeout",
    )
    assert "venue" not in u  # an order this process never saw sent: nothing made up


def test_a_venue_rejection_in_a_report_says_the_reason() -> None:
    ack = OrderAcked(
        run_id=RUN,
        leg_id="long",
        report=report(
            OrderStatus.REJECTED,
            reject_reason=RejectReason.BELOW_MIN_NOTIONAL,
            reject_message="notional 4 < 5",
        ),
        ts_ns=T0,
    )
    [line] = lines_of(ack)
    assert (line["status"], line["reason"], line["message"]) == (
        "REJECTED",
        "BELOW_MIN_NOTIONAL",
        "notional 4 < 5",
    )


def test_a_hedge_order_its_report_and_its_fill() -> None:
    s, reported, filled = lines_of(hedge_sent(), hedge_reported("2"))
    assert (s["event"], s["role"], s["desk_id"], s["notional_usd"]) == (
        "order_sent",
        "hedge",
        "alpha-ab12",
        12_000.0,
    )
    assert "quantity" not in s and "run_id" not in s  # sized at the venue; no basket's own
    assert (reported["event"], reported["status"]) == ("order_reported", "FILLED")
    assert (filled["event"], filled["fill_qty"], filled["fill_price"], filled["side"]) == (
        "fill",
        "2",
        "3000",
        "BUY",
    )
    [_, expired] = lines_of(hedge_sent(), hedge_reported("0"))
    assert expired["status"] == "EXPIRED"  # and no fill line


def test_records_about_no_order_write_nothing() -> None:
    assert (
        lines_of(
            BasketStateChanged(run_id=RUN, state=BasketState.RUNNING, ts_ns=T0),
            CollateralReserved(run_id=RUN, needs={"alpha": Decimal(5)}, ts_ns=T0),
        )
        == []
    )


@pytest.mark.parametrize(
    "text",
    [
        "GET /fapi/v1/order?symbol=ETHUSDT&timestamp=1&signature=abcdef0123 failed",
        "headers {'X-MBX-APIKEY': 'k3y'}",
        "apiKey=k3y&secret=s3cr3t",
        "listenKey: L1sT3n",
    ],
)
def test_free_text_is_scrubbed_of_anything_like_a_credential(text: str) -> None:
    rejected = OrderRejected(
        run_id=RUN, leg_id="long", client_order_id=COID, reason=f"VENUE: {text}", ts_ns=T0
    )
    [line] = lines_of(rejected)
    for secret in ("abcdef0123", "k3y", "s3cr3t", "L1sT3n"):
        assert secret not in a.encode_line(line).decode()
    assert "<redacted>" in line["reason"]


def test_the_level_fills_writes_fills_only(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = a.AuditLog(a.AuditTarget(destination=str(path), level="fills"), "test")
    orders = a.SentOrders()
    for r in (sent(), fill(), hedge_sent(), hedge_reported("2")):
        log.write(r, orders.take(r))
    log.close()
    events = [json.loads(x)["event"] for x in path.read_text().splitlines()]
    assert events == ["fill", "fill"]


def test_processes_appending_to_one_file_never_split_a_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    target = a.AuditTarget(destination=str(path), level="orders")
    pids = []
    for child in range(4):
        pid = os.fork()
        if pid == 0:  # each child its own descriptor, as each Ray worker has
            log = a.AuditLog(target, f"child {child}")
            for n in range(200):
                log.write(sent(f"{COID}.{child}.{n}"), None)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    assert len({json.loads(x)["client_order_id"] for x in lines}) == 800


def test_a_log_that_cannot_be_written_says_so_once_and_never_raises(tmp_path, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log = a.AuditLog(a.AuditTarget(destination=str(blocker / "audit.jsonl"), level="orders"), "t")
    log.write(sent(), None)
    log.write(fill(), None)
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_the_default_is_a_file_beside_the_embedded_journal_else_stderr() -> None:
    resolved = a.resolve_audit(None, "/data/legato/journal", env={})
    assert resolved == a.AuditTarget(destination="/data/legato/journal/audit.jsonl", level="orders")
    pg = a.resolve_audit(None, "postgresql://u@db/legato", env={})
    assert pg.destination == "stderr"
    assert a.resolve_audit(None, "", env={}).destination == "stderr"


def test_the_environment_overrides_the_configuration() -> None:
    configured = AuditSettings(destination="/var/log/legato.jsonl", level="orders")
    env = {a.ENV_DESTINATION: "stderr", a.ENV_LEVEL: "FILLS"}
    assert a.resolve_audit(configured, "/j", env=env) == a.AuditTarget(
        destination="stderr", level="fills"
    )
    assert a.resolve_audit(configured, "/j", env={}).destination == "/var/log/legato.jsonl"
    off = a.resolve_audit(configured, "/j", env={a.ENV_DESTINATION: "off"})
    assert off.off


def test_a_misspelt_level_in_the_environment_keeps_the_configured_one(caplog) -> None:
    configured = AuditSettings(level="fills")
    resolved = a.resolve_audit(configured, "/j", env={a.ENV_LEVEL: "everything"})
    assert resolved.level == "fills"
    assert "LEGATO_AUDIT_LEVEL" in caplog.text
