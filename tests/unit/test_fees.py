"""Fees in the asset the venue charged them in: valued in USD where a price is known, taken
from what a spot leg holds when charged in its own asset, never added as dollars otherwise."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from actors.fees import ChargedFee, fee_usd, total
from actors.messages import LegProgress, LegStatus
from actors.risk import imbalance_usd
from tests.unit.test_leg_ledger import ledger, order, report
from venues.model import AckKind, OrderStatus, Side

D = Decimal


def test_a_fee_in_the_quote_or_a_dollar_asset_is_dollars() -> None:
    assert fee_usd(ChargedFee(D("1.5"), "USDT", D("3000")), "STETH", "USDT") == D("1.5")
    assert fee_usd(ChargedFee(D("1.5"), "", D("3000")), "STETH", "USDT") == D("1.5")
    assert fee_usd(ChargedFee(D("1.5"), "USDC", None), "BTC", "USDT") == D("1.5")


def test_a_fee_in_the_base_asset_is_worth_the_fills_price() -> None:
    assert fee_usd(ChargedFee(D("0.01"), "STETH", D("2990")), "STETH", "USDT") == D("29.90")
    assert fee_usd(ChargedFee(D("0.01"), "STETH", None), "STETH", "USDT") is None


def test_a_fee_in_a_third_asset_needs_its_price_and_is_otherwise_kept_apart() -> None:
    bnb = ChargedFee(D("0.02"), "BNB", D("2990"))
    assert fee_usd(bnb, "STETH", "USDT") is None
    assert fee_usd(bnb, "STETH", "USDT", {"BNB": D("600")}) == D("12.00")
    totals = total([bnb, ChargedFee(D("3"), "USDT", None), bnb], "STETH", "USDT")
    assert totals.usd == D("3") and totals.unpriced == {"BNB": D("0.04")}


def test_a_spot_buy_whose_fee_is_in_the_bought_asset_holds_less_than_it_filled() -> None:
    lg = ledger(Side.BUY, "10")
    o = order(1, "4", Side.BUY, "2990")
    lg.sent(o, 1, 1)
    lg.acked(
        report(
            o, OrderStatus.FILLED, "4", "2990", "0.004", ack_kind=AckKind.RESULT, fee_asset="STETH"
        ),
        2,
    )
    assert lg.fee_qty("STETH") == D("0.004")
    assert lg.fee_qty("ETH") == 0  # another base: the fee is not in the leg's asset
    fees = lg.fee_totals("STETH", "USDT")
    assert fees.usd == D("0.004") * D("2990") and fees.unpriced == {}
    snap = lg.progress(LegStatus.WORKING, 3, D("2990"), base="STETH")
    assert (snap.filled_qty, snap.held_qty) == (D("4"), D("3.996"))


def test_a_sell_legs_fee_in_its_own_asset_adds_to_what_it_gave_up() -> None:
    lg = ledger(Side.SELL, "10")
    o = order(1, "4", Side.SELL, "2990")
    lg.sent(o, 1, 1)
    lg.acked(
        report(
            o, OrderStatus.FILLED, "4", "2990", "0.004", ack_kind=AckKind.RESULT, fee_asset="STETH"
        ),
        2,
    )
    assert lg.fee_qty("STETH") == D("-0.004")
    assert lg.progress(LegStatus.WORKING, 3, None, base="STETH").held_qty == D("4.004")


def snapshot(leg_id: str, side: Side, filled: str, fee_qty: str = "0") -> LegProgress:
    return LegProgress(
        basket_id="b",
        leg_id=leg_id,
        seq=1,
        side=side,
        target_qty=D("10"),
        filled_qty=D(filled),
        avg_price=None,
        open_qty=D(0),
        status=LegStatus.WORKING,
        ts_ns=0,
        fee_qty=D(fee_qty),
    )


def test_the_imbalance_counts_what_a_leg_holds_not_what_it_filled() -> None:
    prices = {"eth": 3000.0, "steth": 2990.0}
    legs = [snapshot("eth", Side.SELL, "10"), snapshot("steth", Side.BUY, "10", "0.01")]
    u = imbalance_usd(legs, prices, in_step_progress=1.0)
    assert u["eth"] == 0.0
    assert abs(u["steth"] - (-0.01 * 2990.0)) < 1e-9  # short of its design by the fee


def test_the_shortfall_counts_a_base_asset_fee_at_its_fills_price() -> None:
    from actors.tca import leg_fees_usd, leg_shortfall  # noqa: PLC0415
    from tests.unit.test_tca import child, leg  # noqa: PLC0415

    bought = msgspec.structs.replace(child(1, Side.BUY, "10", "100", fee="0.01"), fee_asset="STETH")
    spot = msgspec.structs.replace(
        leg(Side.BUY, "10", [bought], leg_id="steth", filled="10", avg="100"),
        base_asset="STETH",
        quote_asset="USDT",
    )
    assert leg_fees_usd(spot) == 1.0  # 0.01 STETH at 100, not 0.01 dollars
    assert leg_shortfall(spot).fees_usd == 1.0
    bnb = msgspec.structs.replace(bought, fee_asset="BNB")
    unpriced = msgspec.structs.replace(spot, child_orders=[bnb])
    assert leg_fees_usd(unpriced) == 0.0  # no BNB price: not counted as dollars
