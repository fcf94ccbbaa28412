"""The in-process venue: a simulated exchange run in real time behind `VenueClient`.

`SimVenue` owns one `SimExchange`, advances its market on the venue clock, applies the
venue profile (latency, acknowledgement semantics, outages, injected rejects and lost
answers, rate limits: what becomes of an order is decided in `venues.sim.outcome`, which
the backtest drives too) and fans execution reports and market events out to subscribers
after the profile's stream lag. `SimVenueClient` binds it to one account. The Binance
compatible HTTP server is built on the same `SimVenue`, so both paths behave alike.

Transfers and withdrawals take the times and fates the profile's `transfers` draw; the
venue's own loop (`_run`, every few ms) advances the exchange, which ends them when their
time comes even if no order flows. A withdrawal sent is delivered by the courier of its
address's scheme (`SimVenue.couriers`): `sim-local://<venue>/<account>` credits a venue of
this process directly (`_LOCAL_VENUES`), and the HTTP server adds `sim://` (another server's
`/_sim/deposit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from decimal import Decimal
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from venues.errors import (
    InvalidRequest,
    OrderRejected,
    Unsupported,
    VenueError,
    VenueUnavailable,
)
from venues.model import (
    AccountSnapshot,
    AckKind,
    BookSnapshot,
    Capabilities,
    ExecutionReport,
    Fill,
    Instrument,
    MarketEvent,
    NewOrder,
    Position,
    RejectReason,
    TransferKind,
    TransferReceipt,
    TransferState,
    WalletKind,
)
from venues.sim.exchange import (
    AccountReport,
    SimExchange,
    TransferRecord,
    TransferRefusal,
    TransferRefused,
    Wallet,
    WithdrawalSent,
)
from venues.sim.outcome import (
    accepted_view,
    admit,
    apply_late,
    outage_refusal,
    pending_view,
    process,
    process_after_receipt,
)
from venues.sim.profile import VenueConditions, VenueProfile

# accepted_view lives in venues.sim.outcome; the servers import it from here.
__all__ = ["SimVenue", "SimVenueClient", "StreamClosed", "accepted_view"]

T = TypeVar("T")
_STREAM_QUEUE = 10_000
log = logging.getLogger(__name__)

Courier = Callable[[WithdrawalSent], Awaitable[None]]
"""Delivers a sent withdrawal to its address: raises `VenueUnavailable` when it may work
later (the destination is down: tried again), another `VenueError` when it never will."""

LOCAL_SCHEME = "sim-local"
# In-process venues by name, for `sim-local://<venue>/<account>` addresses: a withdrawal from
# one `SimVenue` to another running in the same process is credited directly. `start`
# registers a venue (unless another of its name runs already), `stop` removes it. One
# registry per process: a venue in another process (a Ray actor, a served venue) is reached
# by its server's `sim://` address instead.
_LOCAL_VENUES: dict[str, SimVenue] = {}
# A delivery that finds its destination down is tried again after 0.2, 0.4, 0.8, 1.6 s, then
# given up (logged, and kept in `SimVenue.undelivered`): what left is not given back, as a
# transaction sent on a chain is not.
DELIVERY_ATTEMPTS = 5
DELIVERY_BACKOFF_S = 0.2
_WALLET_OF = {WalletKind.SPOT: Wallet.SPOT, WalletKind.MARGIN: Wallet.FUTURES}
_KIND_OF = {wallet: kind for kind, wallet in _WALLET_OF.items()}


class _Subscription:
    """One consumer's bounded queue. Execution reports must not be lost: on overflow the
    stream ends with an error and the consumer resynchronises by query."""

    def __init__(self, lossy: bool) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue(_STREAM_QUEUE)
        self.lossy = lossy
        self.last_delivery = 0.0
        self._due: deque[object] = deque()

    def put_at(self, loop: asyncio.AbstractEventLoop, at: float, item: object) -> None:
        """Deliver `item` at loop time `at`, but never before anything queued earlier."""
        self.last_delivery = max(at, self.last_delivery)
        self._due.append(item)
        loop.call_at(self.last_delivery, self._release)

    def _release(self) -> None:
        # Timers due at the same instant may run in any order (the loop's heap is not
        # stable), so each releases the oldest item rather than its own.
        self.put(self._due.popleft())

    def put(self, item: object) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if self.lossy:  # market data: the newest matters, drop the oldest
                self.queue.get_nowait()
                self.queue.put_nowait(item)
            else:
                self.queue = asyncio.Queue(1)
                self.queue.put_nowait(
                    VenueUnavailable("execution report stream overflowed; resync by query")
                )


class StreamClosed:
    """Put on a subscription's queue when its stream ends (venue stopped, client closed)."""


class SimVenue:
    """One simulated venue served in real time on this event loop."""

    def __init__(
        self,
        exchange: SimExchange,
        profile: VenueProfile | None = None,
        *,
        seed: int = 0,
        advance_every_s: float = 0.005,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.exchange = exchange
        self._clock = clock
        profile = profile or VenueProfile()
        started = clock() + int(profile.clock_offset_ms * 1_000_000)
        self.conditions = VenueConditions(profile, seed, started)
        self._advance_every_s = advance_every_s
        self._accounts: dict[str, list[_Subscription]] = {}
        self._market: dict[str, list[_Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[object]] = set()
        self.orders_received = 0  # order requests that reached the venue, rejected included
        # How a sent withdrawal reaches its address, by the address's scheme.
        self.couriers: dict[str, Courier] = {LOCAL_SCHEME: self._deliver_local}
        self.undelivered: list[WithdrawalSent] = []  # given up after DELIVERY_ATTEMPTS

    @property
    def name(self) -> str:
        return self.exchange.venue

    @property
    def profile(self) -> VenueProfile:
        return self.conditions.profile

    def now_ns(self) -> int:
        """The venue's own clock: true time plus the profile's injected offset."""
        return self._clock() + int(self.conditions.profile.clock_offset_ms * 1_000_000)

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"venue-{self.name}")
            _LOCAL_VENUES.setdefault(self.name, self)

    async def stop(self) -> None:
        if _LOCAL_VENUES.get(self.name) is self:
            del _LOCAL_VENUES[self.name]
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        self._task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for subs in (*self._accounts.values(), *self._market.values()):
            for sub in subs:
                sub.put(StreamClosed())

    async def __aenter__(self) -> SimVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            self.exchange.advance(self.now_ns())
            self._dispatch()
            await asyncio.sleep(self._advance_every_s)

    def client(self, account_id: str) -> SimVenueClient:
        """A `VenueClient` for one account of this venue."""
        if not self.exchange.has_account(account_id):
            raise OrderRejected(
                f"unknown account {account_id!r} on {self.name}",
                reason=RejectReason.UNKNOWN_ACCOUNT,
                venue=self.name,
            )
        return SimVenueClient(self, account_id)

    # --- streams -------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Deliver what the exchange did, each stream in order, after its stream lag."""
        events = self.exchange.drain()
        if not events:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for event in events:
            if isinstance(event, WithdrawalSent):
                self._spawn(self._deliver(event))
                continue
            if isinstance(event, AccountReport):
                subs = self._accounts.get(event.account_id, ())
                item: object = event.report
            else:
                subs = self._market.get(event.symbol, ())
                item = event
            for sub in subs:
                sub.put_at(loop, now + self.conditions.stream_delay_ns() / 1e9, item)

    def subscribe_account(self, account_id: str) -> _Subscription:
        sub = _Subscription(lossy=False)
        self._accounts.setdefault(account_id, []).append(sub)
        return sub

    def subscribe_market(self, symbols: Sequence[str]) -> _Subscription:
        sub = _Subscription(lossy=True)
        for s in symbols:
            self._market.setdefault(s, []).append(sub)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        for table in (self._accounts, self._market):
            for subs in table.values():
                if sub in subs:
                    subs.remove(sub)

    # --- requests ------------------------------------------------------------------
    async def _sleep_ns(self, ns: int) -> None:
        if ns > 0:
            await asyncio.sleep(ns / 1e9)

    async def _arrive(self) -> int:
        """Carry a request to the venue; its receive time, or an error if the venue is down."""
        await self._sleep_ns(self.conditions.latency_ns("request"))
        received = self.now_ns()
        refusal = outage_refusal(self.conditions, self.name, received)
        if refusal is not None:
            await self._sleep_ns(self.conditions.latency_ns("response"))
            raise refusal
        return received

    async def call(self, fn: Callable[[int], T]) -> T:
        """Run one non-order request through the profile's latencies."""
        await self._arrive()
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        try:
            result = fn(self.now_ns())
        except VenueError as e:
            error: VenueError | None = e
        else:
            error = None
        finally:
            self._dispatch()
        await self._sleep_ns(self.conditions.latency_ns("response"))  # refusals travel too
        if error is not None:
            raise error
        return result

    async def submit(self, account_id: str, order: NewOrder) -> ExecutionReport:
        """Place one order, answering as the venue's ack semantics say (DESIGN §6)."""
        received = await self._arrive()
        return await self._submit_received(account_id, order, received)

    async def submit_batch(
        self, account_id: str, orders: Sequence[NewOrder]
    ) -> list[ExecutionReport | VenueError]:
        """Place several orders in one request; each succeeds or fails on its own."""
        received = await self._arrive()
        results = await asyncio.gather(
            *(self._submit_received(account_id, o, received) for o in orders),
            return_exceptions=True,
        )
        out: list[ExecutionReport | VenueError] = []
        for r in results:
            if isinstance(r, ExecutionReport | VenueError):
                out.append(r)
            else:
                raise r  # a bug, not a venue answer
        return out

    async def _submit_received(
        self, account_id: str, order: NewOrder, received: int
    ) -> ExecutionReport:
        """One order of a request that reached the venue, through `venues.sim.outcome`."""
        self.orders_received += 1
        admitted = admit(self.conditions, self.name, received)
        if isinstance(admitted, VenueError):
            await self._sleep_ns(self.conditions.latency_ns("response"))
            raise admitted
        if admitted.answered_at_receipt:
            self._spawn(self._process_later(account_id, order, received))
            await self._sleep_ns(self.conditions.latency_ns("response"))
            return pending_view(self.name, order, AckKind.RECEIPT, received)
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        try:
            answer = process(
                self.conditions, self.exchange, account_id, order, received, self.now_ns(), admitted
            )
        finally:
            self._dispatch()
        if admitted.apply_after_ns is not None:
            self._spawn(self._apply_late(account_id, order, received, admitted.apply_after_ns))
        await self._sleep_ns(self.conditions.latency_ns("response"))  # refusals travel too
        if isinstance(answer, VenueError):
            raise answer
        return answer

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run `work` in the background, owned by the venue (cancelled when it stops)."""
        task: asyncio.Task[object] = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _process_later(self, account_id: str, order: NewOrder, received: int) -> None:
        await self._sleep_ns(self.conditions.latency_ns("processing"))
        try:
            process_after_receipt(
                self.conditions, self.exchange, account_id, order, received, self.now_ns()
            )
        finally:
            self._dispatch()

    # --- transfers -----------------------------------------------------------------
    def start_transfer(
        self,
        account_id: str,
        asset: str,
        amount: Decimal,
        source: Wallet,
        destination: Wallet,
        now_ns: int,
        client_id: str = "",
    ) -> TransferRecord:
        """An internal transfer, its delay and fate drawn from the profile (`transfer_fate`)."""
        delay, fails = self.conditions.transfer_fate(TransferKind.INTERNAL)
        return self.exchange.transfer(
            account_id,
            asset,
            amount,
            source,
            destination,
            now_ns,
            complete_at_ns=None if delay is None else now_ns + delay,
            fails=fails,
            client_id=client_id,
        )

    def start_withdrawal(
        self,
        account_id: str,
        asset: str,
        amount: Decimal,
        address: str,
        client_id: str,
        now_ns: int,
        network: str = "",
    ) -> TransferRecord:
        """A withdrawal to `address`, its delay and fate drawn from the profile; refused
        (`INVALID_ADDRESS`) unless a courier here delivers to the address's scheme, and for a
        `sim-local://` address unless that venue runs in this process with that account."""
        scheme = urlsplit(address).scheme
        if scheme not in self.couriers:
            accepted = ", ".join(f"{s}://" for s in sorted(self.couriers))
            raise TransferRefused(
                f"venue {self.name} cannot deliver to {address!r}; it delivers to {accepted}",
                reason=TransferRefusal.INVALID_ADDRESS,
                venue=self.name,
            )
        if scheme == LOCAL_SCHEME:
            venue_name, account = parse_local_address(address)
            dest = _LOCAL_VENUES.get(venue_name)
            if dest is None or not dest.exchange.has_account(account):
                raise TransferRefused(
                    f"{address!r} names no account of a venue running in this process",
                    reason=TransferRefusal.INVALID_ADDRESS,
                    venue=self.name,
                )
        delay, fails = self.conditions.transfer_fate(TransferKind.WITHDRAWAL)
        return self.exchange.withdraw(
            account_id,
            asset,
            amount,
            address,
            client_id,
            now_ns,
            complete_at_ns=None if delay is None else now_ns + delay,
            fails=fails,
            network=network,
        )

    def local_address(self, account_id: str) -> str:
        """The `sim-local://` address that credits `account_id`'s spot wallet here."""
        return f"{LOCAL_SCHEME}://{self.name}/{account_id}"

    async def _deliver(self, sent: WithdrawalSent) -> None:
        """Deliver a sent withdrawal by its address's courier, trying again (bounded) while
        the destination is down."""
        courier = self.couriers.get(urlsplit(sent.address).scheme)
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                if courier is None:
                    raise VenueError(f"no courier delivers to {sent.address!r}", venue=self.name)
                await courier(sent)
                return
            except VenueUnavailable as e:
                if attempt < DELIVERY_ATTEMPTS:
                    pause = DELIVERY_BACKOFF_S * 2 ** (attempt - 1)
                    log.warning(
                        "venue %s: withdrawal %s to %s not delivered (%s); again in %.1f s",
                        self.name,
                        sent.tx_id,
                        sent.address,
                        e,
                        pause,
                    )
                    await asyncio.sleep(pause)
                    continue
                why = str(e)
            except VenueError as e:
                why = str(e)
            except Exception as e:  # a courier's bug: never the venue's loop
                log.exception("venue %s: courier of %s failed", self.name, sent.address)
                why = repr(e)
            break
        self.undelivered.append(sent)
        log.error(
            "venue %s: withdrawal %s of %s %s to %s given up after %d attempt(s): %s",
            self.name,
            sent.tx_id,
            sent.amount,
            sent.asset,
            sent.address,
            attempt,
            why,
        )

    async def _deliver_local(self, sent: WithdrawalSent) -> None:
        """Credit a `sim-local://` address's account at a venue of this process."""
        venue_name, account = parse_local_address(sent.address)
        dest = _LOCAL_VENUES.get(venue_name)
        if dest is None:
            raise VenueUnavailable(f"no venue {venue_name!r} runs in this process")
        dest.exchange.credit_deposit(
            account,
            sent.asset,
            sent.amount,
            sent.tx_id,
            dest.now_ns(),
            address=sent.address,
            network=sent.network,
        )

    async def _apply_late(
        self, account_id: str, order: NewOrder, received: int, after_ns: int
    ) -> None:
        await self._sleep_ns(received + after_ns - self.now_ns())
        try:
            apply_late(self.conditions, self.exchange, account_id, order, received, self.now_ns())
        finally:
            self._dispatch()


def parse_local_address(address: str) -> tuple[str, str]:
    """(venue name, account id) of a `sim-local://<venue>/<account>` address; a
    `TransferRefused` (`INVALID_ADDRESS`) for anything else."""
    parts = urlsplit(address)
    account = unquote(parts.path[1:])
    if parts.scheme != LOCAL_SCHEME or not parts.netloc or not account or "/" in account:
        raise TransferRefused(
            f"{address!r} is not a {LOCAL_SCHEME}://<venue>/<account> address",
            reason=TransferRefusal.INVALID_ADDRESS,
        )
    return parts.netloc, account


def transfer_receipt(venue: str, record: TransferRecord) -> TransferReceipt:
    """A transfer as the `VenueClient` contract reports it: wallets as `WalletKind` values
    (the futures wallet is MARGIN), a withdrawal's destination its address."""
    internal = record.kind is TransferKind.INTERNAL
    failed = record.state is TransferState.FAILED
    return TransferReceipt(
        transfer_id=str(record.transfer_id),
        client_transfer_id=record.client_id,
        kind=record.kind,
        venue=venue,
        asset=record.asset,
        amount=record.amount,
        source=_KIND_OF[record.source].value,
        destination=_KIND_OF[Wallet(record.destination)].value if internal else record.destination,
        state=record.state,
        requested_ns=record.requested_ns,
        updated_ns=record.updated_ns,
        reason="the venue failed it; the amount is back in the wallet it left" if failed else "",
    )


def contract_error(e: TransferRefused) -> VenueError:
    """An exchange refusal of a transfer as the `VenueClient` contract raises it, as the HTTP
    adapters do: lack of funds is `OrderRejected` (`INSUFFICIENT_BALANCE`), a move the venue
    cannot make (an asset other than USDT to or from the margin wallet) `Unsupported`, the
    rest `InvalidRequest`; nothing moved either way."""
    match e.reason:
        case TransferRefusal.INSUFFICIENT_FUNDS:
            return OrderRejected(e.message, reason=RejectReason.INSUFFICIENT_BALANCE, venue=e.venue)
        case TransferRefusal.UNKNOWN_ACCOUNT:
            return OrderRejected(e.message, reason=RejectReason.UNKNOWN_ACCOUNT, venue=e.venue)
        case TransferRefusal.INVALID_WALLETS:
            return Unsupported(e.message, venue=e.venue)
        case _:
            return InvalidRequest(e.message, venue=e.venue)


class SimVenueClient:
    """`VenueClient` for one account of an in-process `SimVenue`."""

    def __init__(self, venue: SimVenue, account_id: str) -> None:
        self._venue = venue
        self._account = account_id
        # Subscribed from the start, like a user-data stream opened on connect, so no
        # report is missed between a place() and the first read of the stream.
        self._reports = venue.subscribe_account(account_id)
        self._subs: list[_Subscription] = [self._reports]

    @property
    def venue(self) -> str:
        return self._venue.name

    @property
    def ack_semantics(self) -> AckKind:
        return self._venue.profile.ack

    @property
    def capabilities(self) -> Capabilities:
        kinds = {i.kind for i in self._venue.exchange.instruments.values()}
        return Capabilities(
            instrument_kinds=frozenset(kinds),
            ack_semantics=self.ack_semantics,
            batch_size=5,
            transfers=True,
            withdrawals=True,
        )

    @property
    def typical_rtt_ns(self) -> int | None:
        """The profile's median request and answer latencies: the in-process venue has no
        network to measure."""
        return self._venue.profile.typical_rtt_ns()

    async def start(self) -> None:
        """Nothing to connect: the stream is subscribed from the client's creation."""

    async def trades(self, symbol: str, order_id: str) -> list[Fill]:
        rows = await self._venue.call(
            lambda now: self._venue.exchange.user_trades(self._account, symbol)
        )
        return [t.fill for t in rows if str(t.order_id) == order_id]

    async def instruments(self) -> list[Instrument]:
        return await self._venue.call(lambda now: list(self._venue.exchange.instruments.values()))

    async def order_book(self, symbol: str, depth: int = 20) -> BookSnapshot:
        return await self._venue.call(
            lambda now: self._venue.exchange.book_snapshot(symbol, depth, now)
        )

    async def place(self, order: NewOrder) -> ExecutionReport:
        return await self._venue.submit(self._account, order)

    async def place_batch(self, orders: Sequence[NewOrder]) -> list[ExecutionReport | VenueError]:
        return await self._venue.submit_batch(self._account, orders)

    async def cancel(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._venue.call(
            lambda now: self._venue.exchange.cancel(self._account, symbol, client_order_id, now)
        )

    async def cancel_all(self, symbol: str) -> list[ExecutionReport]:
        return await self._venue.call(
            lambda now: self._venue.exchange.cancel_all(self._account, symbol, now)
        )

    async def query(self, symbol: str, client_order_id: str) -> ExecutionReport:
        return await self._venue.call(
            lambda now: self._venue.exchange.query(self._account, symbol, client_order_id)
        )

    async def open_orders(self, symbol: str | None = None) -> list[ExecutionReport]:
        return await self._venue.call(
            lambda now: self._venue.exchange.open_orders(self._account, symbol)
        )

    async def account(self) -> AccountSnapshot:
        """Both wallets: the futures wallet's margin, and the spot wallet's assets."""
        return await self._venue.call(
            lambda now: self._venue.exchange.account_snapshot(self._account, now)
        )

    async def positions(self) -> list[Position]:
        return await self._venue.call(
            lambda now: self._venue.exchange.positions(self._account, now)
        )

    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        """USDT between the spot and margin (futures) wallets; PENDING until the profile's
        `transfers.internal_s` has passed. Asked again under a `client_transfer_id` it has
        seen, it answers that transfer and moves nothing (as the HTTP adapters do)."""
        venue = self._venue
        if source is destination:
            raise Unsupported(
                f"a transfer from the {source.value} wallet to itself: the venue moves money "
                "between the spot and margin wallets only",
                venue=venue.name,
            )

        def start(now: int) -> TransferRecord:
            seen = self._seen(TransferKind.INTERNAL, client_transfer_id, asset, amount)
            if seen is not None:
                return seen
            return venue.start_transfer(
                self._account,
                asset,
                amount,
                _WALLET_OF[source],
                _WALLET_OF[destination],
                now,
                client_transfer_id,
            )

        try:
            return transfer_receipt(self.venue, await venue.call(start))
        except TransferRefused as e:
            raise contract_error(e) from None

    async def deposit_address(self, asset: str) -> str:
        """`sim-local://<venue>/<account>`: what another in-process venue withdraws to."""
        venue = self._venue
        running = _LOCAL_VENUES.get(venue.name)
        if running is not None and running is not venue:
            raise Unsupported(
                f"another venue named {venue.name!r} runs in this process: a sim-local address "
                "names venues by name, so this one has none",
                venue=venue.name,
            )

        def address(now: int) -> str:
            if asset not in venue.exchange.assets():
                raise InvalidRequest(f"unknown asset {asset!r}", venue=venue.name)
            return venue.local_address(self._account)

        return await venue.call(address)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        """From the spot wallet to `address` (an in-process venue's `deposit_address`). Asked
        again under a `client_transfer_id` it has seen, it answers that withdrawal and sends
        nothing (the venue itself refuses a repeated id, as Binance does)."""
        venue = self._venue

        def start(now: int) -> TransferRecord:
            seen = self._seen(TransferKind.WITHDRAWAL, client_transfer_id, asset, amount)
            if seen is not None:
                return seen
            return venue.start_withdrawal(
                self._account, asset, amount, address, client_transfer_id, now
            )

        try:
            return transfer_receipt(self.venue, await venue.call(start))
        except TransferRefused as e:
            raise contract_error(e) from None

    def _seen(
        self, kind: TransferKind, client_id: str, asset: str, amount: Decimal
    ) -> TransferRecord | None:
        """The transfer of `kind` this account made under `client_id` before, if any; one
        of another asset or amount is a `TransferRefused` (the id names something else)."""
        if not client_id:
            return None
        found = self._venue.exchange.transfers(self._account, kind, client_id=client_id)
        if not found:
            return None
        prior = found[-1]
        if (prior.asset, prior.amount) != (asset, amount):
            raise TransferRefused(
                f"client id {client_id!r} already names {kind.value} {prior.transfer_id} of "
                f"{prior.amount} {prior.asset}",
                reason=TransferRefusal.DUPLICATE_CLIENT_ID,
                venue=self._venue.name,
            )
        return prior

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        """By the receipt's venue id; without one (a lost answer), by its client id. One the
        venue does not have comes back as it was (as the HTTP adapters answer)."""
        venue = self._venue

        def find(now: int) -> TransferRecord | None:
            if receipt.transfer_id:
                found = (
                    venue.exchange.transfers(
                        self._account, receipt.kind, transfer_id=int(receipt.transfer_id)
                    )
                    if receipt.transfer_id.isascii() and receipt.transfer_id.isdigit()
                    else []
                )
            elif receipt.client_transfer_id:
                found = venue.exchange.transfers(
                    self._account, receipt.kind, client_id=receipt.client_transfer_id
                )
            else:
                found = []
            return found[-1] if found else None

        record = await venue.call(find)
        return receipt if record is None else transfer_receipt(self.venue, record)

    async def server_time_ns(self) -> int:
        return await self._venue.call(lambda now: now)

    async def execution_reports(self) -> AsyncIterator[ExecutionReport]:
        """This account's reports since the client was made; one consumer per client."""
        while True:
            item = await self._reports.queue.get()
            if isinstance(item, StreamClosed):
                return
            if isinstance(item, VenueError):
                raise item
            assert isinstance(item, ExecutionReport)
            yield item

    async def market_events(self, symbols: Sequence[str]) -> AsyncIterator[MarketEvent]:
        sub = self._venue.subscribe_market(symbols)
        self._subs.append(sub)
        try:
            while True:
                item = await sub.queue.get()
                if isinstance(item, StreamClosed):
                    return
                yield item  # type: ignore[misc]
        finally:
            self._venue.unsubscribe(sub)

    async def close(self) -> None:
        for sub in self._subs:
            sub.put(StreamClosed())
            self._venue.unsubscribe(sub)
        self._subs.clear()
