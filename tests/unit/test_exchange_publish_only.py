"""An exchange that publishes only some symbols' market data, and lets the others' books wait,
answers exactly as one that publishes everything (`SimExchange.publish_only`)."""

from __future__ import annotations

from decimal import Decimal

from venues.model import BookTicker, MarketTrade, NewOrder, OrderType, Side, TimeInForce
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.synthetic import SyntheticMarket

MS = 1_000_000
ORIGIN = 1_767_225_600 * 1_000_000_000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def _exchange(publish: list[str] | None) -> SimExchange:
    insts = [SYNTHETIC_INSTRUMENTS[s] for s in SYMBOLS]
    ex = SimExchange("alpha", SyntheticMarket(4, ORIGIN, instruments=insts), start_ns=ORIGIN)
    ex.open_account(AccountSpec(account_id="desk", balances={"USDT": Decimal(1_000_000)}))
    if publish is not None:
        ex.publish_only(publish)
    return ex


def _books(ex: SimExchange) -> dict[str, tuple[list, list]]:
    return {s: (b.depth(Side.BUY, 1_000), b.depth(Side.SELL, 1_000)) for s, b in ex.books.items()}


def test_a_waiting_book_answers_as_one_kept_up_to_date() -> None:
    full, only = _exchange(None), _exchange(["ETHUSDT"])
    filled = 0
    for t in range(ORIGIN, ORIGIN + 20_000 * MS, 5 * MS):
        full.advance(t)
        only.advance(t)
        # The same market data for the published symbol, none for the others.
        published = [e for e in full.drain() if e.symbol == "ETHUSDT"]
        assert only.drain() == published
        if t % (1_000 * MS) == 0:  # now and then an order on a symbol that waited so far
            btc = SYNTHETIC_INSTRUMENTS["BTCUSDT"]
            order = NewOrder(
                client_order_id=f"o{t}",
                symbol="BTCUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("0.01"),
                price=btc.snap_price(only.mark_price("BTCUSDT") * Decimal("1.001")),
                time_in_force=TimeInForce.IOC,
            )
            report = only.place("desk", order, t)
            assert report == full.place("desk", order, t)
            filled += report.cum_filled > 0
            full.drain()
            only.drain()
    assert filled > 10
    assert only.updates_applied == full.updates_applied
    assert _books(only) == _books(full)
    assert only.mark_price("SOLUSDT") == full.mark_price("SOLUSDT")


def test_market_data_of_a_symbol_not_published_is_never_made() -> None:
    only = _exchange(["ETHUSDT"])
    only.advance(ORIGIN + 5_000 * MS)
    events = only.drain()
    assert events and all(isinstance(e, BookTicker | MarketTrade) for e in events)
    assert {e.symbol for e in events} == {"ETHUSDT"}
