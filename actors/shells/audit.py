"""The audit log: a JSON line per order sent, answer received and fill booked (docs/audit.md).

It is a tap on the journal's choke point (`actors.shells.journaling`): every record of a
leg's or a hedge desk's orders passes through `AuditLog.write` as the runner hands it over,
before the journal's writer sees it, so a slow database never delays a line. Each line is
appended whole, in one `write` on a descriptor opened with `O_APPEND`: the legs, baskets and
hedge desks of every process on a machine share one file without interleaving.

No line holds a secret: the records hold none, and the venue's free text (reasons and
messages) is scrubbed of anything that looks like a signature, key or token.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from actors.journal.records import (
    ChildOrderSent,
    FillBooked,
    HedgeOrderReported,
    HedgeOrderSent,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderReported,
    Record,
)
from actors.protocol import AUDIT_LEVELS, AuditSettings
from venues.model import ExecutionReport

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"  # in the journal's data directory, by default
STDERR = "stderr"
OFF = "off"
ENV_DESTINATION = "LEGATO_AUDIT_LOG"
ENV_LEVEL = "LEGATO_AUDIT_LEVEL"
_POSTGRES = ("postgres://", "postgresql://")
# What an order was, remembered by client order id for the answers that do not repeat it.
# A leg sends a few thousand orders at most; the bound only guards a long-lived hedge actor.
MAX_REMEMBERED = 100_000
# Anything in a venue's free text that looks like a credential (a signed query, a header).
_SECRET = re.compile(
    r"(?i)\b(signature|api[-_]?key|secret|token|listen[-_]?key|x-mbx-apikey|passphrase|password)"
    r"([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;\"'}]+)"
)
_encoder = msgspec.json.Encoder(decimal_format="string")


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """What an order was, as the record of its sending said."""

    role: str  # "leg" or "hedge"
    venue: str
    symbol: str
    side: str
    run_id: str = ""
    leg_id: str = ""
    desk_id: str = ""


class SentOrders:
    """The orders this process sent, by client order id (the oldest forgotten first)."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._orders: OrderedDict[str, Sent] = OrderedDict()
        self._limit = limit

    def take(self, record: Record) -> Sent | None:
        """Remember `record` if it sends an order; the order it is about, if known."""
        match record:
            case ChildOrderSent():
                sent = Sent(
                    role="leg",
                    venue=record.venue,
                    symbol=record.symbol,
                    side=record.side.value,
                    run_id=record.run_id,
                    leg_id=record.leg_id,
                )
                self._remember(record.client_order_id, sent)
                return sent
            case HedgeOrderSent():
                sent = Sent(
                    role="hedge",
                    venue=record.venue,
                    symbol=record.symbol,
                    side=record.side.value,
                    desk_id=record.desk_id,
                )
                self._remember(record.client_order_id, sent)
                return sent
            case OrderAcked() | OrderReported() | HedgeOrderReported():
                return self._orders.get(record.report.client_order_id)
            case FillBooked() | OrderRejected() | OrderOutcomeUnknown():
                return self._orders.get(record.client_order_id)
            case _:
                return None

    def get(self, client_order_id: str) -> Sent | None:
        return self._orders.get(client_order_id)

    def _remember(self, coid: str, sent: Sent) -> None:
        self._orders[coid] = sent
        self._orders.move_to_end(coid)
        while len(self._orders) > self._limit:
            self._orders.popitem(last=False)


# -- the lines ---------------------------------------------------------------------------------
def iso_utc(ts_ns: int) -> str:
    """`ts_ns` as UTC ISO 8601 with nanoseconds ("2026-01-02T03:04:05.123456789Z")."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"


def scrub(text: str) -> str:
    """`text` with anything that looks like a credential replaced by `<redacted>`."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


def _basket_of(run_id: str) -> str:
    return run_id.rpartition("#")[0] or run_id


def _head(event: str, ts_ns: int, role: str, sent: Sent | None, **ids: str) -> dict[str, Any]:
    run_id = ids.get("run_id") or (sent.run_id if sent else "")
    line: dict[str, Any] = {"ts": iso_utc(ts_ns), "ts_ns": ts_ns, "event": event, "role": role}
    if role == "hedge":
        line["desk_id"] = ids.get("desk_id") or (sent.desk_id if sent else "")
    else:
        line["run_id"] = run_id
        line["basket_id"] = _basket_of(run_id)
        line["leg_id"] = ids.get("leg_id") or (sent.leg_id if sent else "")
    if sent is not None:
        line |= {"venue": sent.venue, "symbol": sent.symbol, "side": sent.side}
    return line


def _report(line: dict[str, Any], r: ExecutionReport) -> dict[str, Any]:
    line |= {
        "venue": r.venue,
        "symbol": r.symbol,
        "side": r.side.value,
        "client_order_id": r.client_order_id,
        "order_id": r.order_id,
        "status": r.status.value,
        "quantity": r.quantity,
        "price": r.price,
        "filled_qty": r.cum_filled,
        "avg_price": r.avg_price,
        "fee": r.cum_fee,
        "fee_asset": r.fee_asset or None,
        "ack_kind": r.ack_kind.value if r.ack_kind is not None else None,
    }
    if r.reject_reason is not None:
        line["reason"] = r.reject_reason.value
    if r.reject_message:
        line["message"] = scrub(r.reject_message)
    return line


def audit_lines(record: Record, sent: Sent | None) -> list[dict[str, Any]]:
    """The audit lines of `record` (none for records about no order); `sent` is what the
    order was, for the answers that do not say."""
    match record:
        case ChildOrderSent():
            r = record
            return [
                _head("order_sent", r.ts_ns, "leg", sent, run_id=r.run_id, leg_id=r.leg_id)
                | {
                    "venue": r.venue,
                    "symbol": r.symbol,
                    "side": r.side.value,
                    "client_order_id": r.client_order_id,
                    "quantity": r.qty,
                    "price": r.price,
                    "type": r.type.value,
                    "tif": r.tif.value,
                    "reduce_only": r.reduce_only,
                    "purpose": r.purpose.value,
                }
            ]
        case OrderAcked():
            head = _head("order_acked", record.ts_ns, "leg", sent, run_id=record.run_id)
            return [_report(head | {"leg_id": record.leg_id}, record.report)]
        case OrderReported():
            head = _head("order_reported", record.ts_ns, "leg", sent, run_id=record.run_id)
            line = _report(head | {"leg_id": record.leg_id}, record.report)
            return [line | {"source": record.source.value}]
        case FillBooked():
            r = record
            return [
                _head("fill", r.ts_ns, "leg", sent, run_id=r.run_id, leg_id=r.leg_id)
                | {
                    "venue": r.venue,
                    "symbol": r.symbol,
                    "client_order_id": r.client_order_id,
                    "trade_id": r.trade_id,
                    "fill_qty": r.qty,
                    "fill_price": r.price,
                    "fee": r.fee,
                    "fee_asset": r.fee_asset,
                    "liquidity": r.liquidity.value,
                    "venue_ts_ns": r.venue_ts_ns,
                }
            ]
        case OrderRejected():
            r = record
            return [
                _head("order_rejected", r.ts_ns, "leg", sent, run_id=r.run_id, leg_id=r.leg_id)
                | {
                    "client_order_id": r.client_order_id,
                    "reason": scrub(r.reason),
                    "turned_away": r.turned_away,
                }
            ]
        case OrderOutcomeUnknown():
            r = record
            return [
                _head("order_unknown", r.ts_ns, "leg", sent, run_id=r.run_id, leg_id=r.leg_id)
                | {"client_order_id": r.client_order_id, "reason": scrub(r.reason)}
            ]
        case HedgeOrderSent():
            r = record
            return [
                _head("order_sent", r.ts_ns, "hedge", sent, desk_id=r.desk_id)
                | {
                    "venue": r.venue,
                    "symbol": r.symbol,
                    "side": r.side.value,
                    "client_order_id": r.client_order_id,
                    "quantity": r.qty,
                    "notional_usd": r.notional_usd,
                }
            ]
        case HedgeOrderReported():
            report = record.report
            head = _head("order_reported", record.ts_ns, "hedge", sent, desk_id=record.desk_id)
            lines = [_report(head, report)]
            if report.cum_filled > 0:  # a hedge order's fills are booked from its final report
                fill = _head("fill", record.ts_ns, "hedge", sent, desk_id=record.desk_id)
                lines.append(
                    fill
                    | {
                        "venue": report.venue,
                        "symbol": report.symbol,
                        "side": report.side.value,
                        "client_order_id": report.client_order_id,
                        "order_id": report.order_id,
                        "fill_qty": report.cum_filled,
                        "fill_price": report.avg_price,
                        "fee": report.cum_fee,
                        "fee_asset": report.fee_asset or None,
                    }
                )
            return lines
        case _:
            return []


def hedge_unanswered_line(
    desk_id: str, client_order_id: str, sent: Sent | None, reason: str, unknown: bool, ts_ns: int
) -> dict[str, Any]:
    """A hedge order the venue gave no report of: refused, lost, or never sent (sized to
    nothing): the journal has no record of that answer."""
    event = "order_unknown" if unknown else "order_rejected"
    return _head(event, ts_ns, "hedge", sent, desk_id=desk_id) | {
        "client_order_id": client_order_id,
        "reason": scrub(reason),
    }


def encode_line(line: dict[str, Any]) -> bytes:
    """One line: JSON without the empty fields, decimals as exact strings, then a newline."""
    return _encoder.encode({k: v for k, v in line.items() if v is not None}) + b"\n"


# -- where the lines go ------------------------------------------------------------------------
class AuditTarget(msgspec.Struct, frozen=True, kw_only=True):
    """The audit log as resolved where an actor runs: `destination` a file path, "stderr"
    or "off"; `level` one of `AUDIT_LEVELS`."""

    destination: str
    level: str

    @property
    def off(self) -> bool:
        return OFF in (self.level, self.destination)


def resolve_audit(
    settings: AuditSettings | None, journal: str, env: dict[str, str] | None = None
) -> AuditTarget:
    """The audit log's destination and level: `$LEGATO_AUDIT_LOG` / `$LEGATO_AUDIT_LEVEL`,
    else `settings`, else `audit.jsonl` in the journal's data directory (stderr when the
    journal is PostgreSQL or there is none) at level "orders". A level the environment
    misspells is logged and the configured one kept: the audit log never stops trading."""
    env = dict(os.environ) if env is None else env
    settings = settings or AuditSettings()
    level = env.get(ENV_LEVEL, "").strip().lower() or settings.level
    if level not in AUDIT_LEVELS:
        log.error(
            "%s=%r is not accepted (accepted: %s); using %r",
            ENV_LEVEL,
            level,
            ", ".join(AUDIT_LEVELS),
            settings.level,
        )
        level = settings.level if settings.level in AUDIT_LEVELS else "orders"
    destination = env.get(ENV_DESTINATION, "").strip() or settings.destination
    if not destination:
        if journal and not journal.startswith(_POSTGRES):
            destination = str(Path(journal) / AUDIT_FILE)
        else:
            destination = STDERR
    return AuditTarget(destination=destination, level=level)


class AuditLog:
    """Where one actor appends its audit lines (see the module docstring). A failure to
    write is logged once and the log goes quiet: it never stops trading."""

    def __init__(self, target: AuditTarget, owner: str) -> None:
        self.target = target
        self.owner = owner
        self._fd: int | None = None
        self._broken = target.off

    def write(self, record: Record, sent: Sent | None) -> None:
        """The lines of `record` the level asks for."""
        if self._broken:
            return
        try:
            lines = audit_lines(record, sent)
            if self.target.level == "fills":
                lines = [line for line in lines if line["event"] == "fill"]
            for line in lines:
                self._append(encode_line(line))
        except Exception:
            self._give_up()

    def write_line(self, line: dict[str, Any]) -> None:
        """A line made elsewhere (`hedge_unanswered_line`)."""
        if self._broken or self.target.level != "orders":
            return
        try:
            self._append(encode_line(line))
        except Exception:
            self._give_up()

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            if self.target.destination == STDERR:
                self._fd = sys.stderr.fileno()
            else:
                path = Path(self.target.destination).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # One call per line: with O_APPEND the kernel places each whole at the file's end.
        os.write(self._fd, data)

    def _give_up(self) -> None:
        self._broken = True
        log.error(
            "%s: the audit log (%s) cannot be written; no more audit lines",
            self.owner,
            self.target.destination,
            exc_info=True,
        )

    def close(self) -> None:
        if self._fd is not None and self.target.destination != STDERR:
            os.close(self._fd)
        self._fd = None
