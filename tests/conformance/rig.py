"""The conformance rig: one simulated venue with a scripted (still) book, served over real
sockets on 127.0.0.1 with Binance's APIs, and a way to make each adapter's client of it.

Every adapter runs the same contract tests (tests/conformance/test_contract.py and
test_transfers.py) against the same venue; what an adapter cannot do (an in-process client
has no credentials and no connection to lose) its rig says, and the test that needs it is
skipped with that reason. A second venue (its own server, one account) is what withdrawals
are sent to.
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

from venues.binance import BinanceSpotClient, BinanceUsdmClient
from venues.client import VenueClient
from venues.config import ApiCredential
from venues.model import InstrumentKind, NewOrder, OrderType, Side, TimeInForce
from venues.routed import RoutedClient
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import DepthUpdate, ScriptedMarket, TradePrint
from venues.sim.profile import Latency, TransferProfile, VenueProfile
from venues.sim.server import BinanceServer
from venues.sim.server.errors import BinanceError

D = Decimal
KEY, SECRET, ACCOUNT = "conf-key-0001", "conf-secret-never-shown-0001", "conf"
# The second venue, which withdrawals go to: its own server, one account.
OTHER_KEY, OTHER_SECRET, OTHER = "conf-key-0002", "conf-secret-never-shown-0002", "conf-b"
ZERO = Latency(median_ms=0.0, p99_ms=0.0)
PROFILE = VenueProfile(
    request=ZERO,
    processing=ZERO,
    response=ZERO,
    stream_lag=ZERO,
    orders_per_minute=100_000,
    # Quick transfers: a test waits for them to complete.
    transfers=TransferProfile(internal_s=0.1, withdrawal_s=0.2),
)
BTC = SYNTHETIC_INSTRUMENTS["BTCUSDT"]  # tick 0.1, lot 0.001, min notional 100
STETH = SYNTHETIC_INSTRUMENTS["STETHUSDT"]  # spot: tick 0.01, lot 0.0001

# The still books every test starts from: a bid and, one spread above, 2 on the ask.
BOOK = {
    "BTCUSDT": ([("59990.0", "2"), ("59980.0", "2")], [("60010.0", "2"), ("60020.0", "2")]),
    "STETHUSDT": ([("2990.00", "2"), ("2989.00", "2")], [("2991.00", "2"), ("2992.00", "2")]),
}


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
    lot: Decimal  # the quantity step
    tick: Decimal  # the price step

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
    lot=BTC.lot,
    tick=BTC.tick,
)


SPOT = Market(
    symbol="STETHUSDT",
    kind=InstrumentKind.SPOT,
    qty=D("0.5000"),
    bid=D("2990.00"),
    ask=D("2991.00"),
    ask_qty=D("2.0000"),
    far_bid=D("2900.00"),
    lot=STETH.lot,
    tick=STETH.tick,
)


@dataclass
class Rig:
    """One adapter on the conformance venue."""

    adapter: str
    market: Market
    venue: SimVenue
    server: BinanceServer
    _make: Callable[[str, str], VenueClient]
    _make_other: Callable[[], VenueClient]  # the same adapter, at the second venue
    other_venue: SimVenue
    scripted: ScriptedMarket | None = None  # the venue's market: tests move it
    authenticates: bool = True  # the adapter signs its requests (bad credentials are refused)
    has_connection: bool = True  # its reports come over a connection that can drop
    submitted: list[str] = field(default_factory=list)  # client ids the venue received
    # Transfers and withdrawals the venue made: (kind, asset, amount) each.
    moves: list[tuple[str, str, Decimal]] = field(default_factory=list)
    lose_answers: bool = False  # the venue makes each transfer, then its answer is lost
    answers_lost_on_the_wire: bool = True  # a lost answer is an answer, over a connection

    def client(self, key: str = KEY, secret: str = SECRET) -> VenueClient:
        return self._make(key, secret)

    def other_client(self) -> VenueClient:
        """A client of the same adapter for the second venue's account."""
        return self._make_other()

    async def usdt(self, venue: SimVenue | None = None, account: str = ACCOUNT) -> tuple[D, D]:
        """(spot wallet, futures wallet) USDT of an account, as the venue holds them."""
        v = venue or self.venue
        snap = await v.call(lambda now: v.exchange.account_snapshot(account, now))
        spot = sum((b.wallet for b in snap.spot_balances if b.asset == "USDT"), D(0))
        return spot, snap.wallet_balance

    def set_profile(self, **changes: Any) -> None:
        self.venue.conditions.set_profile(msgspec.structs.replace(self.venue.profile, **changes))

    def move_book(self, bid: Decimal, ask: Decimal, qty: Decimal) -> None:
        """The rest of the market moves the touch of the rig's symbol from the still book's
        to `bid`/`ask` (the levels below stay)."""
        inst = self.venue.exchange.instruments[self.market.symbol]
        m = self.market
        assert self.scripted is not None

        def units(price: Decimal, size: Decimal) -> tuple[int, int]:
            return int(price / inst.tick), int(size / inst.lot)

        self.scripted.push(
            DepthUpdate(
                self.venue.now_ns(),
                inst.symbol,
                bids=[units(m.bid, Decimal(0)), units(bid, qty)],
                asks=[units(m.ask, Decimal(0)), units(ask, qty)],
            )
        )

    def print_trade(self, aggressor: Side, price: Decimal, qty: Decimal) -> None:
        """A trade between two others at `price`."""
        inst = self.venue.exchange.instruments[self.market.symbol]
        assert self.scripted is not None
        self.scripted.push(
            TradePrint(
                self.venue.now_ns(),
                inst.symbol,
                aggressor,
                int(price / inst.tick),
                int(qty / inst.lot),
            )
        )

    async def drop_streams(self) -> int:
        """Close the venue's user-data sockets, as a network drop would; how many."""
        async with aiohttp.ClientSession() as session:
            url = f"{self.server.rest_url}/_sim/streams/drop"
            async with session.post(url, headers={"X-MBX-APIKEY": KEY}) as answer:
                assert answer.status == 200, await answer.text()
                return int((await answer.json())["closed"])


def _venue(name: str = "conf", account: str = ACCOUNT) -> tuple[SimVenue, ScriptedMarket]:
    market = ScriptedMarket([BTC, STETH])
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
    exchange = SimExchange(name, market, start_ns=time.time_ns())
    exchange.open_account(
        AccountSpec(
            account_id=account,
            balances={"USDT": D(1_000_000)},
            spot_balances={"USDT": D(1_000_000), "STETH": D(100)},
        )
    )
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


def _script_moves(venue: SimVenue, r: Rig) -> None:
    """Record every transfer and withdrawal the venue makes (a second one would show), and
    while `r.lose_answers` is set, lose its answer after making it: Binance's -1007, as the
    venue answers an order whose answer it lost."""
    start_transfer, start_withdrawal = venue.start_transfer, venue.start_withdrawal

    def made(kind: str, record: Any) -> Any:
        r.moves.append((kind, record.asset, record.amount))
        if r.lose_answers:
            raise BinanceError(
                -1007,
                "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
                503,
            )
        return record

    def transfer(*args: Any, **kwargs: Any) -> Any:
        return made("internal", start_transfer(*args, **kwargs))

    def withdrawal(*args: Any, **kwargs: Any) -> Any:
        return made("withdrawal", start_withdrawal(*args, **kwargs))

    venue.start_transfer = transfer  # type: ignore[method-assign]
    venue.start_withdrawal = withdrawal  # type: ignore[method-assign]


def _native_usdm(
    server: BinanceServer, account: str = ACCOUNT
) -> Callable[[str, str], VenueClient]:
    def make(key: str, secret: str) -> VenueClient:
        return BinanceUsdmClient(
            server.venue.name,
            rest_url=server.rest_url,
            ws_url=server.ws_url,
            api_key=key,
            secret=secret,
            account_id=account,
            sapi_url=server.rest_url,
            timeout_s=3.0,
            resolve_timeout_s=0.5,
            reconnect_max_s=0.1,
            stream_connect_timeout_s=3.0,
        )

    return make


def _native_spot(
    server: BinanceServer, account: str = ACCOUNT
) -> Callable[[str, str], VenueClient]:
    def make(key: str, secret: str) -> VenueClient:
        return BinanceSpotClient(
            server.venue.name,
            rest_url=server.rest_url,
            ws_url=server.ws_url,
            api_key=key,
            secret=secret,
            account_id=account,
            timeout_s=3.0,
            resolve_timeout_s=0.5,
            reconnect_max_s=0.1,
            stream_connect_timeout_s=3.0,
        )

    return make


def _ccxt(
    server: BinanceServer, exchange: str, account: str = ACCOUNT
) -> Callable[[str, str], VenueClient]:
    from venues.ccxt import CcxtClient  # noqa: PLC0415 (ccxt loads slowly)

    def make(key: str, secret: str) -> VenueClient:
        return CcxtClient(
            server.venue.name,
            exchange,
            api_key=key,
            secret=secret,
            urls={"rest": server.rest_url, "ws": server.ws_url},
            account_id=account,
            timeout_s=3.0,
            resolve_timeout_s=0.5,
            reconnect_max_s=0.1,
            stream_connect_timeout_s=3.0,
        )

    return make


# Every adapter × the simulated API it speaks: (market, how its client is made).
ADAPTERS = [
    "native-usdm",
    "native-spot",
    "ccxt-binanceusdm",
    "ccxt-binance-spot",
    "sim-in-process",
]
# Each pair of one library's adapters as one venue (`RoutedClient`: the USD-M side and the
# spot side), for what is the account's rather than one API's: transfers and withdrawals.
ROUTED = ["native-routed", "ccxt-routed"]


def _routed(
    perp: Callable[[BinanceServer, str], Callable[[str, str], VenueClient]],
    spot: Callable[[BinanceServer, str], Callable[[str, str], VenueClient]],
) -> Callable[[BinanceServer, str], Callable[[str, str], VenueClient]]:
    def on(server: BinanceServer, account: str) -> Callable[[str, str], VenueClient]:
        make_perp, make_spot = perp(server, account), spot(server, account)

        def make(key: str, secret: str) -> VenueClient:
            sides = {
                InstrumentKind.PERP: make_perp(key, secret),
                InstrumentKind.SPOT: make_spot(key, secret),
            }
            return RoutedClient(server.venue.name, sides)

        return make

    return on


@contextlib.asynccontextmanager
async def rig(adapter: str) -> AsyncIterator[Rig]:
    venue, scripted = _venue()
    other, _ = _venue(OTHER, OTHER)
    credentials = {KEY: ApiCredential(api_key=KEY, secret=SECRET, account_id=ACCOUNT)}
    other_credentials = {
        OTHER_KEY: ApiCredential(api_key=OTHER_KEY, secret=OTHER_SECRET, account_id=OTHER)
    }
    async with (
        BinanceServer(venue, credentials) as server,
        BinanceServer(other, other_credentials) as second,
    ):
        makers: dict[str, Callable[[BinanceServer, str], Callable[[str, str], VenueClient]]] = {
            "native-usdm": _native_usdm,
            "native-spot": _native_spot,
            "ccxt-binanceusdm": lambda s, a: _ccxt(s, "binanceusdm", a),
            "ccxt-binance-spot": lambda s, a: _ccxt(s, "binance", a),
        }
        makers["native-routed"] = _routed(_native_usdm, _native_spot)
        makers["ccxt-routed"] = _routed(makers["ccxt-binanceusdm"], makers["ccxt-binance-spot"])
        market = SPOT if adapter in ("native-spot", "ccxt-binance-spot") else PERP
        if adapter in makers:
            make_other = makers[adapter](second, OTHER)
            r = Rig(
                adapter,
                market,
                venue,
                server,
                makers[adapter](server, ACCOUNT),
                lambda: make_other(OTHER_KEY, OTHER_SECRET),
                other,
            )
        elif adapter == "sim-in-process":
            r = Rig(
                adapter,
                PERP,
                venue,
                server,
                lambda key, secret: venue.client(ACCOUNT),
                lambda: other.client(OTHER),
                other,
                authenticates=False,
                has_connection=False,
                answers_lost_on_the_wire=False,
            )
        else:
            raise ValueError(f"no conformance rig for adapter {adapter!r}")
        r.scripted = scripted
        _count_submits(venue, r.submitted)
        _script_moves(venue, r)
        yield r
