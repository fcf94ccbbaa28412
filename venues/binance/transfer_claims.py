"""Which of a venue's transfers is which of legato's: a lost answer's transfer found again in
the venue's history, never by asking twice, even where the venue keeps no client id.

Binance's universal transfer (and ccxt's `transfer` on most exchanges) takes no client id:
its history lists each transfer by the venue's id, asset, amount, direction and time only.
A transfer whose answer was lost is therefore found by **the rule**: the oldest transfer in
the venue's history of the same asset, amount and direction (source and destination; for a
withdrawal, the address) made in the window from `CLOCK_SLACK_NS` before it was requested
(on the venue's clock, as this adapter measured it) to `window_ns` after (the request's
timeout), that this client has not already given to another of its transfers.

Its limit: the history cannot tell identical transfers apart, only count them. Two identical
transfers of this client in one window each take one of the venue's rows, oldest first, so
both are found and neither twice (this client sends its transfers one at a time, so one's lost
answer is resolved before the next is sent). An identical transfer made in the same window by
anyone else on the account (another process, the venue's web page) is indistinguishable and
may be taken for legato's; after a restart the claims of the previous run are gone, so the
same holds for the previous run's transfers. Where the venue keeps legato's id (a Binance
withdrawal's `withdrawOrderId`) the row is found by it and the rule is not needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal

import msgspec

from venues.errors import InvalidRequest, RateLimited, VenueError
from venues.model import TransferKind, TransferReceipt, TransferState

log = logging.getLogger(__name__)

# How far before our own estimate of the venue's clock at sending the venue may have stamped
# the transfer: the error of the measured clock offset, with room to spare.
CLOCK_SLACK_NS = 1_000_000_000
_KEPT = 10_000  # transfers remembered per client, oldest forgotten first


def asked(
    *,
    venue: str,
    kind: TransferKind,
    asset: str,
    amount: Decimal,
    source: str,
    destination: str,
    client_transfer_id: str,
    now_ns: int,
) -> TransferReceipt:
    """What legato asks, as a receipt: PENDING, no venue id yet, requested `now_ns` (the
    venue's clock as the adapter measured it). `InvalidRequest` for an amount that is not
    positive (nothing is sent)."""
    if amount <= 0:
        raise InvalidRequest(f"amount must be positive; got {amount} {asset}", venue=venue)
    return TransferReceipt(
        transfer_id="",
        client_transfer_id=client_transfer_id,
        kind=kind,
        venue=venue,
        asset=asset,
        amount=amount,
        source=source,
        destination=destination,
        state=TransferState.PENDING,
        requested_ns=now_ns,
    )


def same_transfer(a: TransferReceipt, b: TransferReceipt) -> bool:
    """Whether two receipts ask the same move: kind, asset, amount, source and destination."""
    return (a.kind, a.asset, a.amount, a.source, a.destination) == (
        b.kind,
        b.asset,
        b.amount,
        b.source,
        b.destination,
    )


class TransferClaims:
    """The transfers one client made, by legato's client transfer id, and which of the
    venue's transfers each one is (`find`: the rule of the module's docstring).

    `window_ns`: how long after a request the venue may still have stamped its transfer
    (the request's timeout).
    """

    def __init__(self, window_ns: int) -> None:
        self._window_ns = window_ns
        self._receipts: dict[str, TransferReceipt] = {}  # client transfer id -> last known
        self._asked: dict[str, TransferReceipt] = {}  # client transfer id -> as legato asked
        self._owner: dict[str, str] = {}  # venue transfer id -> client transfer id

    def earlier(self, asked: TransferReceipt) -> TransferReceipt | None:
        """What this client knows of an earlier transfer under `asked`'s client id (then
        nothing must be sent again); None for a new one. A client id names one transfer:
        one that asked another move raises `InvalidRequest`, naming both."""
        cid = asked.client_transfer_id
        if not cid:
            raise InvalidRequest(
                "client_transfer_id is empty: a transfer needs legato's id, by which a lost "
                "answer is found again and a retry never moves the funds twice",
                venue=asked.venue,
            )
        first = self._asked.get(cid)
        if first is None:
            return None
        if not same_transfer(first, asked):
            raise InvalidRequest(
                f"client_transfer_id {cid!r} already names {_describe(first)}; "
                f"it cannot also name {_describe(asked)}",
                venue=asked.venue,
            )
        return self._receipts[cid]

    def record(
        self, receipt: TransferReceipt, asked: TransferReceipt | None = None
    ) -> TransferReceipt:
        """Remember `receipt` (the venue's id, once known, is its transfer's); returns it.
        `asked` (by default the receipt) is what legato asked under its client id, which
        `earlier` holds a retry to: the venue's rows may state it otherwise (a withdrawal's
        amount net of its fee)."""
        cid = receipt.client_transfer_id
        if cid:
            self._asked.setdefault(cid, asked or receipt)
            self._receipts.pop(cid, None)
            self._receipts[cid] = receipt
            if len(self._receipts) > _KEPT:
                oldest = next(iter(self._receipts))
                del self._receipts[oldest]
                self._asked.pop(oldest, None)
            if receipt.transfer_id:
                self._owner[receipt.transfer_id] = cid
                if len(self._owner) > _KEPT:
                    del self._owner[next(iter(self._owner))]
        return receipt

    def find(
        self, lost: TransferReceipt, rows: Iterable[TransferReceipt], *, by_client_id: bool = False
    ) -> TransferReceipt | None:
        """The venue's transfer (one of `rows`, as the history lists them) that is `lost`'s,
        with legato's client id, recorded; None while there is none. By the client id where
        the venue keeps it (`by_client_id`: only so), by the venue's id where it is known,
        else by the rule."""
        cid = lost.client_transfer_id
        rows = list(rows)
        for r in rows:
            if cid and r.client_transfer_id == cid and r.kind is lost.kind:
                return self.record(r, lost)
        held = lost.transfer_id or self._held(cid)
        if held:
            for r in rows:
                if r.transfer_id == held:
                    return self.record(msgspec.structs.replace(r, client_transfer_id=cid), lost)
            return None
        if by_client_id:
            return None
        lo = lost.requested_ns - CLOCK_SLACK_NS
        hi = lost.requested_ns + self._window_ns + CLOCK_SLACK_NS
        free = [
            r
            for r in rows
            if not r.client_transfer_id
            and same_transfer(r, lost)
            and lo <= r.requested_ns <= hi
            and r.transfer_id
            and r.transfer_id not in self._owner
        ]
        if not free:
            return None
        first = min(free, key=lambda r: (r.requested_ns, len(r.transfer_id), r.transfer_id))
        return self.record(msgspec.structs.replace(first, client_transfer_id=cid), lost)

    def _held(self, cid: str) -> str:
        known = self._receipts.get(cid)
        return known.transfer_id if known is not None else ""


def _describe(r: TransferReceipt) -> str:
    what = "an internal transfer" if r.kind is TransferKind.INTERNAL else "a withdrawal"
    return f"{what} of {r.amount} {r.asset} from {r.source} to {r.destination}"


async def find_lost(
    claims: TransferClaims,
    lost: TransferReceipt,
    rows: Callable[[], Awaitable[Sequence[TransferReceipt]]],
    cause: VenueError,
    *,
    timeout_s: float,
    by_client_id: bool = False,
) -> TransferReceipt:
    """Learn what became of a transfer whose answer was lost, by reading the venue's history
    (`rows`) with backoff until `timeout_s` has passed (`TransferClaims.find`). Never sends it
    again: still not found, the answer is `lost` itself, PENDING with no venue id and legato's
    client id, and `transfer_status` looks again."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    log.warning(
        "%s: answer to transfer %s lost (%s); looking for it in the venue's history",
        lost.venue,
        lost.client_transfer_id,
        cause.message,
    )
    while True:
        try:
            found = claims.find(lost, await rows(), by_client_id=by_client_id)
        except RateLimited as e:
            delay = max(delay, e.retry_after_s or 0.0)
        except VenueError as e:
            log.info("%s: history read for %s failed: %s", lost.venue, lost.client_transfer_id, e)
        else:
            if found is not None:
                return found
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.5)
    log.warning(
        "%s: transfer %s not in the venue's history after %.1fs",
        lost.venue,
        lost.client_transfer_id,
        timeout_s,
    )
    return claims.record(
        msgspec.structs.replace(
            lost, reason=f"answer lost ({cause.message}); not yet in the venue's history"
        )
    )
