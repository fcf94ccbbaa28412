"""What legato's venue adapters (native Binance, ccxt) share whatever the venue's wire is.

Credentials from the environment; owned background tasks; which orders may still change; a
market order's FOK or post-only refused; a lost answer resolved by querying the client order
id, never by sending again; a user stream's bounded report queue and its resync of orders
after a reconnection; the venue clock's measurement; the spot wallet as an account.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import msgspec

from venues.client import take_samples
from venues.errors import (
    AuthError,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AccountSnapshot,
    AckKind,
    Balance,
    ExecutionReport,
    NewOrder,
    OrderType,
    RejectReason,
    TimeInForce,
    pending_report,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# How an adapter's parts start a background task their client owns (`OwnedTasks.spawn`).
Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]

_FINISHED_KEPT = 10_000
_HALF_MS_NS = 500_000
_ZERO = Decimal(0)


def insecure_url(url: str, *, websocket: bool = False) -> str | None:
    """Why `url` must not carry keys and signatures, or None when it may.

    Encrypted URLs (https, or wss for a `websocket`) may go anywhere; plain http and ws
    only to a loopback address (127.0.0.0/8, ::1, localhost), which is where the simulated
    venues listen. Credentials in the URL itself are refused: URLs are logged.
    """
    plain, secure = ("ws", "wss") if websocket else ("http", "https")
    accepted = (
        f"accepted: {secure}://HOST[:PORT][/PATH], or {plain}:// to a loopback address "
        "(127.0.0.0/8, ::1, localhost) such as a simulated venue"
    )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return f"this is not a URL (its host or port cannot be read); {accepted}"
    if parts.scheme not in (plain, secure) or not host:
        return f"{url!r} is not a {secure} URL; {accepted}"
    if parts.scheme == plain and not _loopback(host):
        return (
            f"{url!r} is plain {plain} to {host}, which is not a loopback address: {secure} "
            f"is required (keys and signatures travel over it); {accepted}"
        )
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are refused (URLs are logged)"
    return None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- credentials and background tasks --------------------------------------------------------


def credentials_from_env(
    venue: str, api_key_env: str, secret_env: str, password_env: str | None = None
) -> tuple[str, str, str | None]:
    """The API key, the secret and (for the exchanges that have one) the password, read from
    the named environment variables; AuthError naming each one that is unset or empty."""
    names = [api_key_env, secret_env] + ([password_env] if password_env else [])
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise AuthError(
            (
                f"environment variable {missing[0]} is not set or empty "
                if len(missing) == 1
                else f"environment variables {' and '.join(missing)} are not set or empty "
            )
            + f"(the API key is read from {api_key_env}, the secret from {secret_env}"
            + (f", the password from {password_env})" if password_env else ")"),
            venue=venue,
        )
    password = os.environ[password_env] if password_env else None
    return os.environ[api_key_env], os.environ[secret_env], password


class OwnedTasks:
    """The background tasks one venue client owns (STYLE §7): each named for its venue and
    held until it ends, a failure logged rather than lost, all cancelled and awaited on close.

    (The actors' `BackgroundTasks` does the same for actors; venues sit below actors.)
    """

    def __init__(self, venue: str) -> None:
        self._venue = venue
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A background task the client owns: cancelled on close, its failure logged."""
        task = asyncio.create_task(coro, name=f"{self._venue}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: background task %s failed",
                self._venue,
                task.get_name(),
                exc_info=task.exception(),
            )

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has ended."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


def reconnect_delay(attempt: int, cap_s: float) -> float:
    """How long to wait before the `attempt`-th reconnection: doubling from 0.1 s, at most
    `cap_s`."""
    return min(cap_s, 0.05 * 2 ** min(attempt, 10))


# --- orders ----------------------------------------------------------------------------------


class OrderWatch:
    """Which orders may still change: what a resync after a stream drop must ask about."""

    def __init__(self) -> None:
        # client order id -> (symbol, venue order id); the id is "" until the venue answers.
        self.unfinished: dict[str, tuple[str, str]] = {}
        self._finished: dict[str, None] = {}  # recently terminal, oldest first

    def track_inflight(self, order: NewOrder) -> bool:
        """Watch an order before its answer, so a resync while it is in flight asks for it.
        False when it was watched already (then a failure must not forget it)."""
        if order.client_order_id in self.unfinished:
            return False
        self.unfinished[order.client_order_id] = (order.symbol, "")
        return True

    def forget(self, client_order_id: str) -> None:
        """The order never reached the venue."""
        self.unfinished.pop(client_order_id, None)

    def keep_asking(self, order: NewOrder) -> None:
        """An order whose outcome stays unknown: the next resync asks for it again."""
        self.unfinished.setdefault(order.client_order_id, (order.symbol, ""))

    def observe(self, report: ExecutionReport) -> ExecutionReport:
        """Follow what a report says of its order; the report, unchanged."""
        coid = report.client_order_id
        if report.status.is_terminal:
            self.unfinished.pop(coid, None)
            self._finished[coid] = None
            if len(self._finished) > _FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
        elif coid not in self._finished:
            # An answer can arrive after the stream has already shown the order done.
            self.unfinished[coid] = (report.symbol, report.order_id)
        return report


class OrderQueries(Protocol):
    """What resolving and resynchronising ask of an adapter: its orders, by client id."""

    @property
    def venue(self) -> str: ...

    @property
    def orders(self) -> OrderWatch: ...

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport: ...

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]: ...


def check_market_tif(order: NewOrder, venue: str = "") -> None:
    """Refuse (OrderRejected) a market order that is FOK or post-only: venues ignore a
    market order's time in force, so sent, it would run as a plain market order."""
    if order.type is OrderType.MARKET and order.time_in_force in (
        TimeInForce.FOK,
        TimeInForce.POST_ONLY,
    ):
        raise OrderRejected(
            f"time in force {order.time_in_force.value} needs a limit order",
            reason=RejectReason.INVALID_PRICE,
            venue=venue,
            client_order_id=order.client_order_id,
        )


async def resolve_by_query(
    api: OrderQueries, order: NewOrder, cause: OutcomeUnknown, *, timeout_s: float
) -> ExecutionReport:
    """Learn what became of an order whose answer was lost, by asking for its client order
    id with backoff until `timeout_s` has passed. Never sends the order again: still
    unresolved, the answer is UNKNOWN and the next resync asks for the order again."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    log.warning(
        "%s: outcome of order %s unknown (%s); querying it",
        api.venue,
        order.client_order_id,
        cause.message,
    )
    while True:
        try:
            report = await api.query(order.symbol, order.client_order_id)
        except UnknownOrder:
            pass  # not there (yet): the venue may still be processing it
        except RateLimited as e:
            delay = max(delay, e.retry_after_s or 0.0)
        except VenueError as e:
            log.info("%s: query of %s failed: %s", api.venue, order.client_order_id, e)
        else:
            # The answer now comes from a query, after any match: a RESULT.
            return msgspec.structs.replace(report, ack_kind=AckKind.RESULT)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.5)
    log.warning(
        "%s: order %s still unresolved after %.1fs", api.venue, order.client_order_id, timeout_s
    )
    api.orders.keep_asking(order)
    return pending_report(order, api.venue, AckKind.UNKNOWN)


async def batch_failed(
    api: OrderQueries,
    orders: Sequence[NewOrder],
    watched: Sequence[bool],
    err: VenueError,
    *,
    resolve_timeout_s: float,
) -> list[ExecutionReport | VenueError]:
    """What became of each order of a batch whose request failed as a whole. Its answer
    lost (`OutcomeUnknown`), each order is resolved by query, never sent again; refused,
    each fails with `err`, and one `watched` only for this batch is forgotten."""
    if isinstance(err, OutcomeUnknown):
        return list(
            await asyncio.gather(
                *(resolve_by_query(api, o, err, timeout_s=resolve_timeout_s) for o in orders)
            )
        )
    for o, w in zip(orders, watched, strict=True):
        if w:
            api.orders.forget(o.client_order_id)
    return [err] * len(orders)


async def query_each(
    api: OrderQueries, symbol: str, reports: Sequence[ExecutionReport]
) -> list[ExecutionReport]:
    """The state now of each order in `reports` (all asked at once, by client order id);
    an order the venue no longer knows is left out."""
    after = await asyncio.gather(
        *(api.query(symbol, r.client_order_id) for r in reports), return_exceptions=True
    )
    out = []
    for r in after:
        if isinstance(r, UnknownOrder):
            continue
        if isinstance(r, BaseException):
            raise r
        out.append(r)
    return out


# --- user streams ----------------------------------------------------------------------------


class ReportQueue:
    """The bounded queue between a user stream and its one consumer.

    A consumer too slow for it is told by a `VenueUnavailable` on its stream (then it
    resynchronises by query), never by a report silently dropped.
    """

    def __init__(self, venue: str, size: int) -> None:
        self._venue = venue
        # None ends the consumer's stream (the client closed).
        self._reports: asyncio.Queue[ExecutionReport | VenueError | None] = asyncio.Queue(size)
        self.overflowed = False  # and the consumer has yet to be told

    def put(self, report: ExecutionReport) -> None:
        if self.overflowed:
            return  # the consumer has yet to see the overflow; it will resync by query
        try:
            self._reports.put_nowait(report)
        except asyncio.QueueFull:
            # Never drop a report silently: end the consumer's stream with an error instead.
            while not self._reports.empty():
                self._reports.get_nowait()
            self._reports.put_nowait(
                VenueUnavailable(
                    "execution report queue overflowed; resynchronise by query",
                    venue=self._venue,
                )
            )
            self.overflowed = True

    def end(self) -> None:
        """The client closed: the consumer's stream ends once it has read what is queued."""
        with contextlib.suppress(asyncio.QueueFull):
            self._reports.put_nowait(None)

    async def reports(self, closed: Callable[[], bool]) -> AsyncIterator[ExecutionReport]:
        """The queued reports until the client is `closed()` and nothing is left."""
        while True:
            if closed() and self._reports.empty():
                return
            item = await self._reports.get()
            if item is None:
                return
            if isinstance(item, VenueError):
                self.overflowed = False
                raise item
            yield item


async def resync_orders(
    api: OrderQueries,
    emit: Callable[[ExecutionReport], None],
    *,
    retry_max_s: float,
    closed: Callable[[], bool],
) -> bool:
    """Emit the current state of every order that may have moved while a stream was down:
    the open orders, and each order open before the drop (one the venue does not know never
    reached it, and is forgotten). Retried, backing off up to `retry_max_s`, until it
    succeeds (True) or the client is `closed()` (False); cumulative fields make repeats
    harmless."""
    delay = 0.05
    while not closed():
        try:
            await _resync_once(api, emit)
        except VenueError as e:
            log.warning("%s: resync failed (%s); retrying", api.venue, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)
        else:
            return True
    return False


async def _resync_once(api: OrderQueries, emit: Callable[[ExecutionReport], None]) -> None:
    orders = api.orders
    before = dict(orders.unfinished)
    current = await api.open_orders()
    seen = {r.client_order_id for r in current}
    for r in current:
        emit(r)

    async def settle(coid: str, symbol: str) -> None:
        try:
            emit(await api.query(symbol, coid))
        except UnknownOrder:
            orders.forget(coid)  # never reached the venue

    await asyncio.gather(*(settle(c, s) for c, (s, _) in before.items() if c not in seen))


# --- the venue's clock -----------------------------------------------------------------------


class ClockReading(msgspec.Struct, frozen=True, kw_only=True):
    """A venue clock measured against the local one."""

    offset_ns: int  # venue clock minus local wall clock, from the minimum-round-trip sample
    rtt_ns: int  # that sample's round trip (the offset's error is at most half of it)
    rtt_median_ns: int  # what a request usually takes there and back


async def measure_clock(
    venue: str,
    fetch: Callable[[], Awaitable[R]],
    server_ms: Callable[[R], int],
    samples: int,
) -> ClockReading:
    """Measure a venue's clock: `fetch` asks for its time, `server_ms` reads it (epoch ms)
    from the answer. The minimum-round-trip sample of `samples` is kept: offset = server −
    (send + receive) / 2. A sample the venue does not answer (a busy venue times out now and
    then) is taken again (`take_samples`); only a venue that answers none fails."""
    best: tuple[int, int] | None = None
    rtts: list[int] = []

    async def sample() -> None:
        nonlocal best
        sent_wall = time.time_ns()
        sent = time.monotonic_ns()
        answer = await fetch()
        rtt = time.monotonic_ns() - sent
        # The venue truncates to the millisecond: its true time is half a ms later on average.
        offset = server_ms(answer) * 1_000_000 + _HALF_MS_NS - (sent_wall + rtt // 2)
        rtts.append(rtt)
        if best is None or rtt < best[1]:
            best = (offset, rtt)

    await take_samples(sample, samples)
    assert best is not None
    log.info(
        "%s: venue clock offset %.3f ms (round trip %.3f ms)",
        venue,
        best[0] / 1e6,
        best[1] / 1e6,
    )
    return ClockReading(
        offset_ns=best[0], rtt_ns=best[1], rtt_median_ns=sorted(rtts)[len(rtts) // 2]
    )


# --- accounts --------------------------------------------------------------------------------


def spot_account(
    *, venue: str, account_id: str, quote: str, assets: list[Balance], ts_ns: int
) -> AccountSnapshot:
    """A spot wallet as an account snapshot: its `assets` in `spot_balances`. A spot account
    has no margin wallet and no positions: `balances` is empty and the margin figures are
    zero (`margin_asset` names the quote asset buys spend), so nothing mistakes the spot
    wallet's cash for margin."""
    return AccountSnapshot(
        venue=venue,
        account_id=account_id,
        balances=[],
        positions=[],
        margin_asset=quote,
        wallet_balance=_ZERO,
        unrealized_pnl=_ZERO,
        position_initial_margin=_ZERO,
        open_order_initial_margin=_ZERO,
        available_margin=_ZERO,
        ts_ns=ts_ns,
        spot_balances=assets,
    )
