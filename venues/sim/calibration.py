"""Defaults for the synthetic market (DESIGN §10), with where each figure comes from."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import msgspec
import numpy as np

from venues.model import Instrument, InstrumentKind

NS_PER_S = 1_000_000_000
SECONDS_PER_YEAR = 365.0 * 24 * 3600


class FactorSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One risk factor: starting price and annualised volatility (jumps included)."""

    name: str
    price: float
    vol: float


class Calibration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the synthetic market is shaped to."""

    # 2024–25 realised figures (DESIGN §10).
    factors: tuple[FactorSpec, ...] = (
        FactorSpec(name="BTC", price=60_000.0, vol=0.50),
        FactorSpec(name="ETH", price=2_600.0, vol=0.65),
        FactorSpec(name="SOL", price=150.0, vol=0.80),
    )
    correlations: dict[str, float] = msgspec.field(
        default_factory=lambda: {"BTC/ETH": 0.8, "ETH/SOL": 0.7, "BTC/SOL": 0.7}
    )
    # Common jumps: rare market-wide moves; their variance is part of each factor's vol.
    jumps_per_day: float = 2.0
    jump_vol: float = 0.006  # standard deviation of one common jump's log size (per unit beta)
    # stETH/ETH basis: Ornstein–Uhlenbeck around 0.999 with rare depegs (June 2022: 0.94).
    steth_basis_mean: float = 0.999
    steth_basis_vol: float = 0.002  # stationary standard deviation of the basis
    steth_basis_half_life_s: float = 6 * 3600.0
    steth_depegs_per_year: float = 0.5
    steth_depeg_size: float = 0.03
    # Index perp: dollar weights of the BTC/ETH/SOL basket the temporary hedges use.
    index_weights: dict[str, float] = msgspec.field(
        default_factory=lambda: {"BTC": 0.5, "ETH": 0.3, "SOL": 0.2}
    )
    index_price: float = 1_000.0
    # Book shape, from the recorded data in shared/data and public depth studies.
    spread_ticks: int = 1
    top_of_book_usd: float = 165_000.0  # BTC perp ~2.7 BTC at the touch
    eth_top_of_book_usd: float = 36_000.0  # ETH perp, recorded data
    depth_10bp_usd: float = 3_500_000.0  # BTC perp, each side
    depth_100bp_usd: float = 16_000_000.0
    trades_per_s: float = 62.0  # BTC perp; other instruments scale with their depth
    refill_half_life_s: float = 0.5  # background liquidity refills after being taken
    # Fees: Binance USD-M regular tier.
    maker_fee_bps: float = 2.0
    taker_fee_bps: float = 5.0


DEFAULT_CALIBRATION = Calibration()


def factor_covariance(cal: Calibration = DEFAULT_CALIBRATION) -> tuple[list[str], np.ndarray]:
    """The factors' names and their annualised covariance of log returns (jumps included)."""
    names = [f.name for f in cal.factors]
    vols = np.array([f.vol for f in cal.factors])
    corr = np.eye(len(names))
    for pair, rho in cal.correlations.items():
        a, b = pair.split("/")
        i, j = names.index(a), names.index(b)
        corr[i, j] = corr[j, i] = rho
    return names, corr * np.outer(vols, vols)


def exposure(inst: Instrument, names: list[str]) -> np.ndarray:
    """An instrument's betas as a vector over the factors `names`."""
    return np.array([inst.betas.get(n, 0.0) for n in names])


def _instrument(
    kind: InstrumentKind,
    symbol: str,
    base: str,
    tick: str,
    lot: str,
    min_notional: str,
    betas: dict[str, float],
) -> Instrument:
    return Instrument(
        symbol=symbol,
        base=base,
        quote="USDT",
        kind=kind,
        tick=Decimal(tick),
        lot=Decimal(lot),
        min_notional=Decimal(min_notional),
        betas=betas,
    )


_perp = partial(_instrument, InstrumentKind.PERP)
_spot = partial(_instrument, InstrumentKind.SPOT)


# Tick, lot and minimum notional as Binance lists them (USD-M futures and spot).
SYNTHETIC_INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        _perp("BTCUSDT", "BTC", "0.1", "0.001", "100", {"BTC": 1.0}),
        _perp("ETHUSDT", "ETH", "0.01", "0.001", "20", {"ETH": 1.0}),
        _perp("SOLUSDT", "SOL", "0.01", "1", "5", {"SOL": 1.0}),
        _spot("STETHUSDT", "STETH", "0.01", "0.0001", "5", {"ETH": 1.0}),
        _perp("IDXUSDT", "IDX", "0.01", "0.01", "5", {"BTC": 0.5, "ETH": 0.3, "SOL": 0.2}),
    )
}

REPLAY_INSTRUMENTS: dict[str, dict[str, Instrument]] = {
    "usdm": {
        "BTCUSDT": _perp("BTCUSDT", "BTC", "0.1", "0.001", "100", {"BTC": 1.0}),
        "ETHUSDT": _perp("ETHUSDT", "ETH", "0.01", "0.001", "20", {"ETH": 1.0}),
    },
    "spot": {
        "BTCUSDT": _spot("BTCUSDT", "BTC", "0.01", "0.00001", "5", {"BTC": 1.0}),
        "ETHUSDT": _spot("ETHUSDT", "ETH", "0.01", "0.0001", "5", {"ETH": 1.0}),
    },
}
