"""`VenueActor`: one per venue, on a node near it; serves a simulated venue and is the
cluster's account-level gateway to any venue (balances, positions, quotes, hedge orders).

Leg actors do not trade through it: each opens its own connection to the venue from the
same node (DESIGN §4). Nor does a hedge desk on the venue actor's node: it opens a
`VenueGateway` of its own, the connection this actor keeps. For a simulated venue the actor
runs the Binance-compatible server on that node's loopback, so the legs pinned next to it
reach it as they would reach a real venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from actors.hedge import HEDGE_ORDER_PREFIX, hedge_limit_order, hedge_resting_order
from actors.protocol import HedgeFill, Placement, VenueEndpoint
from actors.risk import RiskSettings, with_risk_betas
from actors.runners.hedge_order import HedgeOrderAnswer, HedgeOrderRunner
from actors.shells import here
from actors.shells.drive import ClientCalls, LiveClock
from actors.shells.metrics import PUBLISH_EVERY_S, ClientCounters
from actors.shells.tasks import BackgroundTasks
from venues.client import VenueClient
from venues.clients import build_client, build_sim_client
from venues.config import SimVenueConfig, VenueConfig, build_sim_venue, sim_credentials
from venues.errors import (
    UnknownOrder,
    VenueError,
)
from venues.model import (
    AccountSnapshot,
    BookTicker,
    ExecutionReport,
    Instrument,
    InstrumentKind,
    Position,
    Side,
    TransferReceipt,
    WalletKind,
)

if TYPE_CHECKING:
    from venues.sim.server import BinanceServer

log = logging.getLogger(__name__)


def client_for(endpoint: VenueEndpoint, **options: object) -> VenueClient:
    """A venue client for `endpoint`, from the node the caller runs on."""
    cfg = endpoint.config
    if isinstance(cfg, SimVenueConfig):
        if endpoint.rest_url is None or endpoint.ws_url is None:
            raise ValueError(f"venue {endpoint.venue}: the simulated venue is not served yet")
        return build_sim_client(
            endpoint.venue,
            cfg,
            rest_url=endpoint.rest_url,
            ws_url=endpoint.ws_url,
            account_id=endpoint.account_id,
            **options,
        )
    return build_client(endpoint.venue, cfg, **options)


class VenueGateway:
    """A connection to a venue's account from this process: its listing (with risk betas),
    the newest top of book of the symbols it follows, every report of the account's orders,
    and hedge orders. The venue actor keeps one; so does a hedge desk on the venue's node."""

    def __init__(self, endpoint: VenueEndpoint, risk: RiskSettings) -> None:
        self.name = endpoint.venue
        self.endpoint = endpoint
        self.risk = risk
        self.instruments: dict[str, Instrument] = {}
        self._client: VenueClient | None = None
        self._tops: dict[str, BookTicker] = {}
        # The hedge orders being seen through, by client order id (`_see_through`).
        self._orders: dict[str, tuple[HedgeOrderRunner, LiveClock]] = {}
        self._tasks = BackgroundTasks(f"venue {self.name}")
        self._counters = ClientCounters(self.name)

    async def start(self, symbols: list[str] | None = None) -> None:
        """Connect, read the listing, and follow the account's reports and the market of
        `symbols` (every listed one when None)."""
        client = client_for(self.endpoint, timeout_s=10.0)
        await client.start()
        self._client = client
        # The venue lists trading rules; the risk model knows what each instrument is.
        factors = list(self.risk.factors)
        listed = [
            with_risk_betas(i, factors, configured=self.risk.betas)
            for i in await client.instruments()
        ]
        self.instruments = {i.symbol: i for i in listed}
        unknown = [i.symbol for i in listed if not i.betas]
        if unknown:
            log.warning("%s: no risk factor known for %s", self.name, ", ".join(unknown))
        self._tasks.spawn(self._follow_reports(), f"{self.name}-reports")
        followed = list(self.instruments) if symbols is None else symbols
        self._tasks.spawn(self._follow_market(followed), f"{self.name}-market")
        self._tasks.spawn(self._publish_counters(), f"{self.name}-counters")

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._client is not None:
            self._counters.publish(self._client)
            await self._client.close()

    async def _publish_counters(self) -> None:
        """The client's reconnections and rate-limit answers, as metrics."""
        while True:
            await asyncio.sleep(PUBLISH_EVERY_S)
            self._counters.publish(self._client)

    async def _follow_reports(self) -> None:
        while True:
            try:
                async for report in self.client.execution_reports():
                    self._remember(report)
                return
            except VenueError as e:
                log.warning("%s: execution reports: %s", self.name, e)
                await asyncio.sleep(0.1)

    async def _follow_market(self, symbols: list[str]) -> None:
        async for event in self.client.market_events(symbols):
            if isinstance(event, BookTicker):
                self._tops[event.symbol] = event

    def _remember(self, report: ExecutionReport) -> None:
        """A report of one of the account's orders: to its runner, when one follows it."""
        following = self._orders.get(report.client_order_id)
        if following is not None:
            runner, clock = following
            clock.run(lambda: runner.on_report(report))

    @property
    def client(self) -> VenueClient:
        if self._client is None:
            raise RuntimeError(f"venue {self.name}: start() first")
        return self._client

    async def quotes(self, symbols: list[str]) -> dict[str, BookTicker]:
        """The newest top of book of each symbol (asked of the venue when not yet streamed)."""
        out: dict[str, BookTicker] = {}
        for symbol in symbols:
            top = self._tops.get(symbol)
            if top is None:
                top = (await self.client.order_book(symbol, 5)).top()
                if top is None:
                    continue
            out[symbol] = top
        return out

    async def mids(self, symbols: list[str]) -> dict[str, Decimal]:
        return {s: (t.bid + t.ask) / 2 for s, t in (await self.quotes(symbols)).items()}

    async def positions(self) -> dict[str, Decimal]:
        """Signed position per symbol (perps) or holding (spot: the base asset's balance in
        the spot wallet, for each spot instrument listed)."""
        positions: list[Position] = await self.client.positions()
        out = {p.symbol: p.quantity for p in positions}
        spot = [i for i in self.instruments.values() if i.kind is InstrumentKind.SPOT]
        if spot:
            wallet = {b.asset: b.wallet for b in (await self.client.account()).spot_balances}
            out |= {i.symbol: wallet[i.base] for i in spot if i.base in wallet}
        return out

    async def hedge(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional_usd: float,
        rest_ns: int = 0,
    ) -> HedgeFill | None:
        """Trade `qty` of `symbol` now (or, without it, about `notional_usd` at the newest
        mid): an IOC limit `HEDGE_PROTECTION_BPS` through the mid; with `rest_ns` > 0 (and a
        `qty`), post-only at the touch, withdrawn after `rest_ns` unless it ended before.
        Answers once the order has ended (`HedgeOrderRunner`: its final report as a fill, or
        the error; `HedgeOrderOpen` when it may still rest). None when the size rounds to
        nothing or under the venue's minimum."""
        inst = self.instruments[symbol]
        top = (await self.quotes([symbol]))[symbol]
        mid = (top.bid + top.ask) / 2
        resting = rest_ns > 0 and qty is not None
        if resting and qty is not None:
            order = hedge_resting_order(client_order_id, inst, side, qty, top.bid, top.ask)
        else:
            order = hedge_limit_order(client_order_id, inst, side, qty, notional_usd, mid)
        if order is None:
            return None
        sent_ns = time.time_ns()
        answer = await self._see_through(
            symbol, client_order_id, lambda runner: runner.place(order, rest_ns if resting else 0)
        )
        if isinstance(answer, Exception):
            raise answer
        assert answer is not None  # a placed order's answer is a report or an error
        return HedgeFill(report=answer, sent_ns=sent_ns, mid=float(mid))

    async def withdraw_stale(self, symbols: list[str], own_prefix: str) -> list[str]:
        """Cancel the hedge orders (client order ids `HEDGE_ORDER_PREFIX`…) still open in
        `symbols` that are not `own_prefix`'s: resting orders a hedge desk that is gone (a
        hedge actor that died, or was restarted) left at the venue, which could still fill
        beside the new desk's. Each is withdrawn as a hedge order is (`HedgeOrderRunner`);
        the ids cancelled. Raises `HedgeOrderOpen` for one that cannot be."""
        stale: list[tuple[str, str]] = []
        for symbol in symbols:
            for report in await self.client.open_orders(symbol):
                coid = report.client_order_id
                if coid.startswith(HEDGE_ORDER_PREFIX) and not coid.startswith(own_prefix):
                    stale.append((symbol, coid))
        for symbol, coid in stale:
            answer = await self._see_through(symbol, coid, HedgeOrderRunner.withdraw)
            if isinstance(answer, Exception):
                raise answer
        return [coid for _, coid in stale]

    async def _see_through(
        self,
        symbol: str,
        client_order_id: str,
        start: Callable[[HedgeOrderRunner], None],
    ) -> HedgeOrderAnswer:
        """Run one hedge order's `HedgeOrderRunner` (`start` sets it going) on this loop,
        the account stream's reports of it passed on, until it answers."""
        answered: asyncio.Future[HedgeOrderAnswer] = asyncio.get_running_loop().create_future()

        def then(answer: HedgeOrderAnswer) -> None:
            if not answered.done():
                answered.set_result(answer)

        clock = LiveClock(self._tasks, time.monotonic_ns, then)  # a bug's error: the answer
        runner = HedgeOrderRunner(
            clock,
            ClientCalls(self.client, clock, self._tasks),
            self.name,
            symbol,
            client_order_id,
            then,
        )
        self._orders[client_order_id] = (runner, clock)
        try:
            clock.run(lambda: start(runner))
            return await answered
        finally:
            runner.stop()
            self._orders.pop(client_order_id, None)

    async def settle(self, symbol: str, client_order_id: str) -> bool:
        """One try at cancelling a hedge order that may still rest (`HedgeOrderOpen`): True
        once the venue has it ended (the cancel accepted, or `UnknownOrder`: gone, or never
        placed; such an order was sent longer ago than the venue's order window); raises the
        `VenueError` when it could not tell."""
        with contextlib.suppress(UnknownOrder):
            self._remember(await self.client.cancel(symbol, client_order_id))
        return True


class VenueActor:
    """The venue's gateway on its node (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config: VenueConfig,
        origin_ns: int | None = None,
        risk: RiskSettings | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.origin_ns = origin_ns
        self.risk = risk or RiskSettings()
        self.epoch = uuid.uuid4().hex[:12]
        self._server: BinanceServer | None = None
        self._gateway: VenueGateway | None = None
        self._endpoint: VenueEndpoint | None = None
        self._started = asyncio.Lock()

    def config_digest(self) -> str:
        """A digest of the configuration this actor serves (an engine that finds the actor
        running checks it is the one it would start)."""
        return hashlib.sha256(msgspec.json.encode(self.config)).hexdigest()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> VenueEndpoint:
        """Serve the venue (simulated) and connect; idempotent. Returns how to reach it."""
        async with self._started:
            if self._endpoint is not None:
                return self._endpoint
            cfg = self.config
            if isinstance(cfg, SimVenueConfig):
                # Imported here: leg actors import this module for `client_for`, and the
                # server (aiohttp's web side) is ~50 ms and some MB they do not need.
                from venues.sim.server import BinanceServer  # noqa: PLC0415

                venue = build_sim_venue(self.name, cfg, origin_ns=self.origin_ns)
                # Port 0: several venues (and several clusters) share a machine; legs learn
                # the port from the endpoint. `port` in the file is for `legato venues up`.
                server = BinanceServer(venue, sim_credentials(self.name, cfg), port=0)
                await server.start()
                self._server = server
                endpoint = VenueEndpoint(
                    venue=self.name,
                    config=cfg,
                    rest_url=server.rest_url,
                    ws_url=server.ws_url,
                    account_id=cfg.accounts[0].account_id if cfg.accounts else None,
                    epoch=self.epoch,
                    placement=here(),
                )
            else:
                endpoint = VenueEndpoint(
                    venue=self.name, config=cfg, epoch=self.epoch, placement=here()
                )
            gateway = VenueGateway(endpoint, self.risk)
            await gateway.start()
            self._gateway = gateway
            self._endpoint = endpoint
            return endpoint

    async def stop(self) -> None:
        if self._gateway is not None:
            await self._gateway.stop()
        if self._server is not None:
            await self._server.stop()

    @property
    def gateway(self) -> VenueGateway:
        if self._gateway is None:
            raise RuntimeError(f"venue {self.name}: start() first")
        return self._gateway

    # -- queries -----------------------------------------------------------------------------
    def endpoint(self) -> VenueEndpoint | None:
        return self._endpoint

    def placement(self) -> Placement:
        return here()

    def instruments(self) -> dict[str, Instrument]:
        return dict(self.gateway.instruments) if self._gateway is not None else {}

    async def quotes(self, symbols: list[str]) -> dict[str, BookTicker]:
        return await self.gateway.quotes(symbols)

    async def mids(self, symbols: list[str]) -> dict[str, Decimal]:
        return await self.gateway.mids(symbols)

    async def account(self) -> AccountSnapshot:
        return await self.gateway.client.account()

    async def positions(self) -> dict[str, Decimal]:
        return await self.gateway.positions()

    async def withdraw_stale(self, symbols: list[str], own_prefix: str) -> list[str]:
        """`VenueGateway.withdraw_stale`, for a hedge desk on another node."""
        return await self.gateway.withdraw_stale(symbols, own_prefix)

    async def settle(self, symbol: str, client_order_id: str) -> bool:
        """`VenueGateway.settle`, for a hedge desk on another node."""
        return await self.gateway.settle(symbol, client_order_id)

    # -- the wallets (collateral routing) ----------------------------------------------------
    def can_transfer(self) -> tuple[bool, bool]:
        """Whether the adapter moves money between this account's wallets, and to and from
        other venues."""
        caps = self.gateway.client.capabilities
        return caps.transfers, caps.withdrawals

    async def transfer(
        self,
        asset: str,
        amount: Decimal,
        source: WalletKind,
        destination: WalletKind,
        client_transfer_id: str,
    ) -> TransferReceipt:
        return await self.gateway.client.transfer(
            asset, amount, source, destination, client_transfer_id
        )

    async def deposit_address(self, asset: str) -> str:
        return await self.gateway.client.deposit_address(asset)

    async def withdraw(
        self, asset: str, amount: Decimal, address: str, client_transfer_id: str
    ) -> TransferReceipt:
        return await self.gateway.client.withdraw(asset, amount, address, client_transfer_id)

    async def transfer_status(self, receipt: TransferReceipt) -> TransferReceipt:
        return await self.gateway.client.transfer_status(receipt)

    def leverage(self) -> int:
        """The account leverage the venue was configured with (1 when unknown: safest)."""
        cfg = self.config
        if isinstance(cfg, SimVenueConfig) and cfg.accounts:
            return cfg.accounts[0].leverage
        return 1

    def sim_started_ns(self) -> int | None:
        """When a simulated venue started on its own clock: the instant its profile's
        outages count from (None for a real venue)."""
        return self._server.venue.conditions.started_ns if self._server is not None else None

    def orders_received(self) -> int:
        """Order requests the simulated venue has received (-1: not a simulated venue)."""
        return self._server.venue.orders_received if self._server is not None else -1

    def sim_order_times(self, symbol: str, client_order_id: str) -> tuple[int | None, int | None]:
        """A simulated venue's own ns receive and accept times of an order (the wire carries
        milliseconds); (None, None) for a real venue or an unknown order."""
        if self._server is None or self._endpoint is None or self._endpoint.account_id is None:
            return (None, None)
        try:
            r = self._server.venue.exchange.query(
                self._endpoint.account_id, symbol, client_order_id
            )
        except VenueError:
            return (None, None)
        return (r.venue_receive_ns, r.venue_accept_ns)

    def sim_order(self, symbol: str, client_order_id: str) -> ExecutionReport | None:
        """A simulated venue's own record of an order (its newest under that id), as it
        would answer a query; None for a real venue or an order it does not know. What
        tests and the fault suite hold the journal against."""
        if self._server is None or self._endpoint is None or self._endpoint.account_id is None:
            return None
        try:
            return self._server.venue.exchange.query(
                self._endpoint.account_id, symbol, client_order_id
            )
        except VenueError:
            return None

    # -- hedge orders ------------------------------------------------------------------------
    async def hedge(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional_usd: float,
        rest_ns: int = 0,
    ) -> HedgeFill | None:
        """`VenueGateway.hedge`, for a hedge desk on another node."""
        return await self.gateway.hedge(client_order_id, symbol, side, qty, notional_usd, rest_ns)
