"""The hedge actor's desk journals the desk's positions after every read-back of the
venue's (after an order that failed, and once an order that may still rest is settled),
not only after its own fills: the journal's `HedgePosition` is the ledger the desk trades
on. The desk's shell on a live event loop, its venue a stub that fails every order."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from actors.journal.records import HedgeOrderSent, HedgePosition, Record
from actors.protocol import ExposureReport, HedgeFill
from actors.risk import RiskSettings
from actors.runners.hedge import DeskRunner
from actors.shells.drive import LiveClock
from actors.shells.hedge import _Desk
from actors.shells.tasks import BackgroundTasks
from actors.spec import HedgeSpec
from venues.errors import OutcomeUnknown
from venues.model import Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

IDX = SYNTHETIC_INSTRUMENTS["IDXUSDT"]
HELD = Decimal("-0.37")  # what the venue holds after the order whose answer was lost
SPEC = HedgeSpec(
    venue="alpha",
    instruments=["IDXUSDT"],
    activation_usd=0.0,
    hysteresis_usd=0.0,
    min_hold_s=0.0,
    risk_price=1e6,  # it crosses at once
)


class Journal:
    """What the desk's shell asks of its journal, kept."""

    opened = True

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.unanswered: list[str] = []

    def record(self, record: Record) -> None:
        self.records.append(record)

    def hedge_unanswered(
        self, desk_id: str, client_order_id: str, reason: str, **_: object
    ) -> None:
        self.unanswered.append(client_order_id)


class LostAnswers:
    """A hedge venue that loses every order's answer; its positions say what it holds."""

    def __init__(self) -> None:
        self.read_backs = 0

    async def hedge(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional: float,
        rest_ns: int = 0,
    ) -> HedgeFill | None:
        raise OutcomeUnknown("the answer was lost", venue="alpha")

    async def positions(self) -> dict[str, Decimal]:
        self.read_backs += 1
        return {"IDXUSDT": HELD}


async def test_a_read_back_after_a_failed_order_is_journaled_as_the_desks_position() -> None:
    tasks = BackgroundTasks("test desk")
    failures: list[BaseException] = []
    clock = LiveClock(tasks, time.time_ns, failures.append)
    journal, venue = Journal(), LostAnswers()
    desk = _Desk(
        ("alpha", "", ("IDXUSDT",), b""),
        None,
        venue,  # type: ignore[arg-type]
        lambda port: DeskRunner(port, [IDX], "t", RiskSettings()),
        clock,
        tasks,
        desk_id="desk-1",
        journal=journal,  # type: ignore[arg-type]
    )
    desk.runner.mark({"IDXUSDT": 1_000.0})
    desk.runner.on_exposure(
        ExposureReport(
            basket_id="b",
            seq=1,
            hedge=SPEC,
            venue_epoch="",
            exposure={"BTC": 50_000.0},
            cause_ns=None,
            ts_ns=time.time_ns(),
            catchup_s=3_600.0,
        )
    )
    deadline = time.monotonic() + 10
    while not any(isinstance(r, HedgePosition) for r in journal.records):
        assert time.monotonic() < deadline, journal.records
        await asyncio.sleep(0.01)
    await tasks.cancel_all()
    assert failures == []
    sent = [r for r in journal.records if isinstance(r, HedgeOrderSent)]
    assert sent and journal.unanswered == [sent[0].client_order_id]
    assert venue.read_backs >= 1
    (position, *_) = [r for r in journal.records if isinstance(r, HedgePosition)]
    assert position.desk_id == "desk-1" and position.symbol == "IDXUSDT"
    assert position.qty == HELD
    assert desk.runner.ledger.qty["IDXUSDT"] == float(HELD)
