"""Fees in the asset the venue charged them in, and what they are worth in USD.

A perpetual's commission is in its margin asset (USDT); a spot trade's is in the asset the
trader receives (the base asset on a buy, the quote on a sell) unless the account pays in a
third asset (BNB on Binance). A fee in the base asset is worth the fill's price and, besides,
is taken from what the leg holds: a spot buy of 10 STETH whose fee is 0.01 STETH holds 9.99.
A fee in an asset without a known price is kept in that asset, never added as dollars.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

# Assets a fee in is taken as dollars one for one.
USD_ASSETS = frozenset({"USD", "USDT", "USDC", "FDUSD", "BUSD", "DAI", "TUSD"})
_ZERO = Decimal(0)


class ChargedFee(msgspec.Struct, frozen=True):
    """One order's fee as charged: `amount` of `asset` ("" when the venue did not say: its
    margin or quote asset), on a fill of average `price` (quote per base)."""

    amount: Decimal
    asset: str
    price: Decimal | None


class FeeTotals(msgspec.Struct, frozen=True, kw_only=True):
    """A leg's fees: what they come to in USD, and those in assets with no price."""

    usd: Decimal = _ZERO
    unpriced: dict[str, Decimal] = {}  # asset → amount, not in `usd`


def fee_usd(
    fee: ChargedFee, base: str, quote: str, prices: Mapping[str, Decimal] | None = None
) -> Decimal | None:
    """The fee in USD, or None when its asset has no price here. `prices`: USD per unit of
    other assets (BNB, ...)."""
    asset = fee.asset or quote
    if asset == quote or asset in USD_ASSETS:
        return fee.amount  # legato's instruments are quoted in dollars (USDT)
    if asset == base:
        return None if fee.price is None else fee.amount * fee.price
    price = (prices or {}).get(asset)
    return None if price is None else fee.amount * price


def total(
    fees: Iterable[ChargedFee],
    base: str,
    quote: str,
    prices: Mapping[str, Decimal] | None = None,
) -> FeeTotals:
    usd, unpriced = _ZERO, dict[str, Decimal]()
    for fee in fees:
        if not fee.amount:
            continue
        value = fee_usd(fee, base, quote, prices)
        if value is None:
            unpriced[fee.asset] = unpriced.get(fee.asset, _ZERO) + fee.amount
        else:
            usd += value
    return FeeTotals(usd=usd, unpriced=unpriced)
