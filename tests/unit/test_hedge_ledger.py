"""The hedge's positions and P&L from fills and marks; instruments given their risk betas."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.hedge import HedgeLedger
from actors.risk import RiskModel, with_risk_betas
from venues.model import Instrument, InstrumentKind, Side
from venues.sim.calibration import SYNTHETIC_INSTRUMENTS

RISK = RiskModel.from_calibration()
FACTORS = RISK.factors


def as_listed(symbol: str, **changes: object) -> Instrument:
    """A catalogue instrument as a venue lists it: its trading rules, no betas."""
    return msgspec.structs.replace(SYNTHETIC_INSTRUMENTS[symbol], betas={}, **changes)


# -- HedgeLedger ------------------------------------------------------------------------------


def test_a_bought_position_is_marked_at_the_mid_less_fees() -> None:
    book = HedgeLedger({"BTCUSDT": 1.0})
    book.fill("BTCUSDT", Side.BUY, 2.0, 100.0, fee_usd=0.5)
    book.mark({"BTCUSDT": 110.0})
    assert book.qty == {"BTCUSDT": 2.0}
    assert book.positions_usd() == {"BTCUSDT": pytest.approx(220.0)}
    assert book.gross_usd() == pytest.approx(220.0)
    assert book.pnl_usd() == pytest.approx(20.0 - 0.5)
    assert book.fees_usd == pytest.approx(0.5)


def test_a_position_read_back_is_booked_at_the_mid_so_the_pnl_does_not_jump() -> None:
    # 2 bought at 100, then the venue holds 5 (an order filled whose answer was lost): the 3
    # more are priced at the latest mid, 120 (a contract of 10), so the P&L at that instant
    # stays what it was; it moves with the price from then on.
    book = HedgeLedger({"ETHUSD_PERP": 10.0})
    book.fill("ETHUSD_PERP", Side.BUY, 2.0, 100.0, fee_usd=1.0)
    book.mark({"ETHUSD_PERP": 120.0})
    before = book.pnl_usd()
    assert before == pytest.approx(2 * 20 * 10 - 1.0)
    book.resync("ETHUSD_PERP", 5.0)
    assert book.qty == {"ETHUSD_PERP": 5.0}
    assert book.pnl_usd() == pytest.approx(before)
    book.mark({"ETHUSD_PERP": 121.0})
    assert book.pnl_usd() == pytest.approx(before + 5 * 1.0 * 10)
    # Sold back to 1 at the venue: the 4 leave at the mid too.
    book.resync("ETHUSD_PERP", 1.0)
    assert book.pnl_usd() == pytest.approx(before + 5 * 1.0 * 10)


def test_a_position_read_back_before_any_mark_costs_nothing() -> None:
    book = HedgeLedger({"BTCUSDT": 1.0})
    book.resync("BTCUSDT", 0.5)
    assert book.qty == {"BTCUSDT": 0.5}
    assert book.cash_usd == 0.0
    book.mark({"BTCUSDT": 100.0})
    assert book.pnl_usd() == pytest.approx(50.0)


def test_a_short_gains_when_the_price_falls() -> None:
    book = HedgeLedger({"ETHUSDT": 1.0, "BTCUSDT": 1.0})
    book.fill("ETHUSDT", Side.SELL, 3.0, 2000.0, fee_usd=1.0)
    book.mark({"ETHUSDT": 1900.0})
    assert book.positions_usd() == {
        "ETHUSDT": pytest.approx(-5700.0),
        "BTCUSDT": pytest.approx(0.0),
    }
    assert book.gross_usd() == pytest.approx(5700.0)
    assert book.pnl_usd() == pytest.approx(300.0 - 1.0)


def test_a_round_trip_leaves_the_price_difference_less_fees() -> None:
    book = HedgeLedger({"ETHUSDT": 1.0})
    book.fill("ETHUSDT", Side.BUY, 1.5, 2000.0, fee_usd=0.3)
    book.fill("ETHUSDT", Side.SELL, 1.5, 2100.0, fee_usd=0.4)
    book.mark({"ETHUSDT": 5000.0})  # flat: the mark no longer matters
    assert book.qty["ETHUSDT"] == pytest.approx(0.0)
    assert book.gross_usd() == pytest.approx(0.0)
    assert book.pnl_usd() == pytest.approx(150.0 - 0.7)
    assert book.fees_usd == pytest.approx(0.7)


def test_the_contract_size_scales_dollars_not_quantity() -> None:
    book = HedgeLedger({"IDXUSDT": 0.1})
    book.fill("IDXUSDT", Side.BUY, 2.0, 100.0, fee_usd=0.0)
    book.mark({"IDXUSDT": 110.0})
    assert book.qty["IDXUSDT"] == pytest.approx(2.0)
    assert book.positions_usd() == {"IDXUSDT": pytest.approx(22.0)}
    assert book.pnl_usd() == pytest.approx(2.0)
    assert book.cash_usd == pytest.approx(-20.0)


def test_unaccrued_hands_over_each_increment_once() -> None:
    book = HedgeLedger({"BTCUSDT": 1.0})
    book.fill("BTCUSDT", Side.BUY, 2.0, 100.0, fee_usd=0.5)
    book.mark({"BTCUSDT": 100.0})
    assert book.unaccrued_usd() == pytest.approx(-0.5)
    assert book.unaccrued_usd() == pytest.approx(0.0)
    book.mark({"BTCUSDT": 110.0})
    assert book.unaccrued_usd() == pytest.approx(20.0)
    book.mark({"BTCUSDT": 105.0})
    assert book.unaccrued_usd() == pytest.approx(-10.0)


_FILLS = st.lists(
    st.tuples(
        st.sampled_from(["BTCUSDT", "IDXUSDT"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.floats(min_value=0.001, max_value=10.0),
        st.floats(min_value=1.0, max_value=1000.0),  # fill price, and the mark after it
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=12,
)


@given(_FILLS)
def test_the_increments_add_up_to_the_total_pnl(
    fills: list[tuple[str, Side, float, float, float]],
) -> None:
    book = HedgeLedger({"BTCUSDT": 1.0, "IDXUSDT": 0.1})
    handed = 0.0
    for symbol, side, qty, price, fee in fills:
        book.fill(symbol, side, qty, price, fee)
        handed += book.unaccrued_usd()
        book.mark({symbol: price * 1.01})
        handed += book.unaccrued_usd()
        assert handed == pytest.approx(book.pnl_usd(), abs=1e-6)


# -- with_risk_betas --------------------------------------------------------------------------


def test_a_listed_instrument_takes_the_catalogue_betas() -> None:
    steth = with_risk_betas(as_listed("STETHUSDT"), FACTORS)
    assert steth.betas == {"ETH": 1.0}
    idx = with_risk_betas(as_listed("IDXUSDT"), FACTORS)
    assert idx.betas == {"BTC": 0.5, "ETH": 0.3, "SOL": 0.2}


def test_the_venue_trading_rules_are_kept() -> None:
    listed = as_listed("STETHUSDT", tick=Decimal("0.1"), lot=Decimal("0.01"))
    steth = with_risk_betas(listed, FACTORS)
    assert (steth.tick, steth.lot) == (Decimal("0.1"), Decimal("0.01"))
    assert steth == msgspec.structs.replace(listed, betas={"ETH": 1.0})


def test_the_catalogue_betas_are_copied_not_shared() -> None:
    idx = with_risk_betas(as_listed("IDXUSDT"), FACTORS)
    idx.betas["BTC"] = 9.0
    assert SYNTHETIC_INSTRUMENTS["IDXUSDT"].betas["BTC"] == 0.5


def test_an_unknown_symbol_on_a_factor_base_is_one_on_that_factor() -> None:
    eth_usdc = Instrument(
        symbol="ETHUSDC",
        base="ETH",
        quote="USDC",
        kind=InstrumentKind.PERP,
        tick=Decimal("0.01"),
        lot=Decimal("0.001"),
    )
    assert with_risk_betas(eth_usdc, FACTORS).betas == {"ETH": 1.0}
    sol_usdc = msgspec.structs.replace(eth_usdc, symbol="SOLUSDC", base="SOL")
    assert with_risk_betas(sol_usdc, FACTORS).betas == {"SOL": 1.0}
    # The factor list decides: without SOL among the factors, a SOL perp keeps no betas.
    assert with_risk_betas(sol_usdc, ["BTC", "ETH"]).betas == {}


def test_an_instrument_with_betas_keeps_them() -> None:
    custom = msgspec.structs.replace(SYNTHETIC_INSTRUMENTS["STETHUSDT"], betas={"ETH": 0.97})
    assert with_risk_betas(custom, FACTORS) is custom
    assert with_risk_betas(custom, FACTORS).betas == {"ETH": 0.97}


def test_an_unknown_base_stays_without_betas() -> None:
    doge = Instrument(
        symbol="DOGEUSDT",
        base="DOGE",
        quote="USDT",
        kind=InstrumentKind.PERP,
        tick=Decimal("0.00001"),
        lot=Decimal("1"),
    )
    assert with_risk_betas(doge, FACTORS) == doge
    assert with_risk_betas(doge, FACTORS).betas == {}


def test_the_known_catalogue_can_be_given() -> None:
    known = {"STETHUSDT": msgspec.structs.replace(as_listed("STETHUSDT"), betas={"ETH": 0.9})}
    assert with_risk_betas(as_listed("STETHUSDT"), FACTORS, known).betas == {"ETH": 0.9}
    # Not in the given catalogue, and STETH is no factor.
    assert with_risk_betas(as_listed("STETHUSDT"), FACTORS, {}).betas == {}
