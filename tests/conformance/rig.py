"""The conformance rig: one simulated venue with a scripted (still) book, served over real
sockets on 127.0.0.1 with Binance's APIs, and a way to make each adapter's client of it.

Every adapter runs the same contract tests (tests/conformance/test_contract.py) against the
same venue; what an adapter cannot do (an in-process client has no credentials and no
connection to lose) its rig says, and the test that needs it is skipped with that reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from venues.binance import BinanceUsdmClient
from venues.client import VenueClient
from venues.config import ApiCredential
from venues.model import InstrumentKind, NewOrder, OrderType, Side, TimeInForce
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket
from venues.sim.profile import Latency, VenueProfile
from venues.sim.server import BinanceServer

D = Decimal
KEY, SECRET, ACCOUNT = "conf-key-0001", "conf-secret-never-shown-0001", "conf"
ZERO = Latency(median_ms=0.0, p99_ms=0.0)
PROFILE = VenueProfile(
    request=ZERO, processing=ZERO, response=ZERO, stream_lag=ZERO, orders_per_minute=100_000
)
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001, min notional 100

# The still book every test starts from: a bid at 59990, 2 BTC on the ask at 60010.
BOOK = {"BTCUSDT": ([("59990.0", "2"), ("59980.0", "2")], [("60010.0", "2"), ("60020.0", "2")])}


@dataclass
class Market:
    """What a contract test trades: the symbol, its kind, and prices relative to its book."""

    symbol: str
    kind: InstrumentKind
    qty: Decimal  # a size every order of the tests may have (above the minimum notional)
    bid: Decimal  # the best bid and ask of the still book
    ask: Decimal
    ask_qty: Decimal  # what rests at the best ask
    far_bid: Decimal  # a bid far below the book: rests, never fills

    def order(
        self,
        coid: str,
        side: Side,
        price: Decimal | None,
        *,
        qty: Decimal | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
    ) -> NewOrder:
        return NewOrder(
            client_order_id=coid,
            symbol=self.symbol,
            side=side,
            type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=self.qty if qty is None else qty,
            price=price,
            time_in_force=tif,
            reduce_only=reduce_only,
        )


PERP = Market(
    symbol="BTCUSDT",
    kind=InstrumentKind.PERP,
    qty=D("0.010"),
    bid=D("59990.0"),
    ask=D("60010.0"),
    ask_qty=D("2.000"),
    far_bid=D("58000.0"),
)


@dataclass
class Rig:
    """One adapter on the conformance venue."""

    adapter: str
    market: Market
    venue: SimVenue
    server: BinanceServer
    _make: Callable[[str, str], VenueClient]
    authenticates: bool = True  # the adapter signs its requests (bad credentials are refused)
    has_connection: bool = True  # its reports come over a connection that can drop
    submitted: list[str] = field(default_factory=list)  # client ids the venue received

    def client(self, key: str = KEY, secret: str = SECRET) -> VenueClient:
        return self._make(key, secret)

    def set_profile(self, **changes: Any) -> None:
        self.venue.conditions.set_profile(msgspec.structs.replace(self.venue.profile, **changes))

    async def drop_streams(self) -> int:
        """Close the venue's user-data sockets, as a network drop would; how many."""
        async with aiohttp.ClientSession() as session:
            url = f"{self.server.rest_url}/_sim/streams/drop"
            async with session.post(url, headers={"X-MBX-APIKEY": KEY}) as answer:
                assert answer.status == 200, await answer.text()
                return int((await answer.json())["closed"])


def _venue() -> tuple[SimVenue, ScriptedMarket]:
    market = ScriptedMarket([BTC])
    for symbol, (bids, asks) in BOOK.items():
        inst = SYNTHETIC_INSTRUMENTS[symbol]
        market.push(
            DepthUpdate(
                0,
                symbol,
                bids=[(int(D(p) / inst.tick), int(D(q) / inst.lot)) for p, q in bids],
                asks=[(int(D(p) / inst.tick), int(D(q) / inst.lot)) for p, q in asks],
            )
        )
    exchange = SimExchange("conf", market, start_ns=time.time_ns())
    exchange.open_account(AccountSpec(account_id=ACCOUNT, balances={"USDT": D(1_000_000)}))
    return SimVenue(exchange, PROFILE, seed=3), market


def _count_submits(venue: SimVenue, into: list[str]) -> None:
    """Record every client order id the venue receives (a resend would show twice)."""
    submit, submit_batch = venue.submit, venue.submit_batch

    async def counting(account_id: str, order: NewOrder) -> Any:
        into.append(order.client_order_id)
        return await submit(account_id, order)

    async def counting_batch(account_id: str, orders: Any) -> Any:
        into.extend(o.client_order_id for o in orders)
        return await submit_batch(account_id, orders)

    venue.submit = counting  # type: ignore[method-assign]
    venue.submit_batch = counting_batch  # type: ignore[method-assign]


def _native_usdm(server: BinanceServer) -> Callable[[str, str], VenueClient]:
    def make(key: str, secret: str) -> VenueClient:
        return BinanceUsdmClient(
            "conf",
            rest_url=server.rest_url,
            ws_url=server.ws_url,
            api_key=key,
            secret=secret,
            account_id=ACCOUNT,
            timeout_s=3.0,
            resolve_timeout_s=0.5,
            reconnect_max_s=0.1,
            stream_connect_timeout_s=3.0,
        )

    return make


ADAPTERS = ["native-usdm", "sim-in-process"]


@contextlib.asynccontextmanager
async def rig(adapter: str) -> AsyncIterator[Rig]:
    venue, _ = _venue()
    credentials = {KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id=ACCOUNT)}
    async with BinanceServer(venue, credentials) as server:
        if adapter == "native-usdm":
            r = Rig(adapter, PERP, venue, server, _native_usdm(server))
        elif adapter == "sim-in-process":
            r = Rig(
                adapter,
                PERP,
                venue,
                server,
                lambda key, secret: venue.client(ACCOUNT),
                authenticates=False,
                has_connection=False,
            )
        else:
            raise ValueError(f"no conformance rig for adapter {adapter!r}")
        _count_submits(venue, r.submitted)
        yield r
