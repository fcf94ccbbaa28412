"""The risk model: factor exposures, dollar risk, a basket's imbalance and its legging risk.

Units. Exposures are signed dollars per risk factor (`e = Σ betas × dollars`). The covariance
is of annualised factor log returns, so `eᵀΣe` is a variance in USD² per year; a dollar risk
over a horizon of `t` seconds is `sqrt(eᵀΣe · t / SECONDS_PER_YEAR)` (square-root-of-time, no
drift). The default horizon is one day, the desk's usual "1σ daily" figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import numpy as np

from actors.messages import LegProgress
from venues.model import Instrument
from venues.sim.calibration import (
    DEFAULT_CALIBRATION,
    NS_PER_S,
    SECONDS_PER_YEAR,
    SYNTHETIC_INSTRUMENTS,
    Calibration,
    exposure,
    factor_covariance,
)

SECONDS_PER_DAY = 86_400.0
RISK_HORIZON_S = SECONDS_PER_DAY
NS_PER_YEAR = SECONDS_PER_YEAR * NS_PER_S

Exposure = np.ndarray | Mapping[str, float]
"""Factor dollar exposures: a vector over `RiskModel.factors`, or a mapping factor → USD."""


class RiskModel:
    """Factor betas and the factor covariance; answers "how much can this position lose?"."""

    def __init__(self, factors: Sequence[str], covariance: np.ndarray) -> None:
        cov = np.asarray(covariance, dtype=float)
        n = len(factors)
        if len(set(factors)) != n:
            raise ValueError(f"factors: names must be unique, got {list(factors)}")
        if cov.shape != (n, n):
            raise ValueError(f"covariance: shape {cov.shape} does not match {n} factors")
        if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T):
            raise ValueError("covariance: must be finite and symmetric")
        if n and np.linalg.eigvalsh(cov).min() < -1e-12 * max(1.0, float(np.abs(cov).max())):
            raise ValueError("covariance: must be positive semi-definite")
        self.factors: list[str] = list(factors)
        self.covariance: np.ndarray = cov
        self._index = {f: i for i, f in enumerate(self.factors)}

    @classmethod
    def from_calibration(cls, cal: Calibration = DEFAULT_CALIBRATION) -> RiskModel:
        """The model the synthetic market is built on (DESIGN §10)."""
        names, cov = factor_covariance(cal)
        return cls(names, cov)

    # -- exposures -----------------------------------------------------------------------

    def vector(self, e: Exposure) -> np.ndarray:
        """`e` as a vector over `factors`; a mapping may omit factors (zero exposure)."""
        if isinstance(e, Mapping):
            out = np.zeros(len(self.factors))
            for name, usd in e.items():
                if name not in self._index:
                    raise ValueError(
                        f"exposure: unknown factor {name!r}; the model knows {self.factors}"
                    )
                out[self._index[name]] = usd
            return out
        out = np.asarray(e, dtype=float)
        if out.shape != (len(self.factors),):
            raise ValueError(
                f"exposure: shape {out.shape} does not match the factors {self.factors}"
            )
        return out

    def as_mapping(self, e: np.ndarray) -> dict[str, float]:
        """A factor vector as factor → USD (the form that travels in messages)."""
        return {f: float(x) for f, x in zip(self.factors, e, strict=True)}

    def betas(self, instruments: Iterable[Instrument]) -> np.ndarray:
        """The instruments' betas as columns: a (factors × instruments) matrix B."""
        cols = []
        for inst in instruments:
            unknown = sorted(set(inst.betas) - set(self._index))
            if unknown:
                # Dropping a factor would silently understate the risk.
                raise ValueError(
                    f"instrument {inst.symbol}: betas on unknown factors {unknown}; "
                    f"the model knows {self.factors}"
                )
            cols.append(exposure(inst, self.factors))
        if not cols:
            return np.zeros((len(self.factors), 0))
        return np.column_stack(cols)

    def exposures(
        self, positions_usd: Mapping[str, float], instruments: Mapping[str, Instrument]
    ) -> np.ndarray:
        """Factor dollar exposures `e = B · dollars` of signed positions keyed by symbol."""
        return self._mapped(positions_usd, instruments, "positions: no instrument definition for")

    def instrument_covariance(self, instruments: Sequence[Instrument]) -> np.ndarray:
        """Σ_instr = B Σ_f Bᵀ: the annualised covariance of the instruments' returns."""
        b = self.betas(instruments)
        return b.T @ self.covariance @ b

    def volatility(self, instrument: Instrument) -> float:
        """The instrument's annualised volatility (0 for one without factor betas)."""
        if not instrument.betas:
            return 0.0
        return math.sqrt(max(float(self.instrument_covariance([instrument])[0, 0]), 0.0))

    def market_betas(
        self, instruments: Sequence[Instrument], market: str | None = None
    ) -> np.ndarray:
        """Each instrument's regression beta to the `market` factor (default: the first).

        β = cov(r_i, r_m) / var(r_m); an ETH perp has ρσ_ETH/σ_BTC = 1.04 to BTC, the same
        ratio that makes a long ETH / short BTC pair beta-neutral.
        """
        m = self._index[market or self.factors[0]]
        b = self.betas(instruments)
        return (b.T @ self.covariance[:, m]) / self.covariance[m, m]

    # -- risk ----------------------------------------------------------------------------

    def variance(self, e: Exposure) -> float:
        """eᵀΣe in USD² per year."""
        v = self.vector(e)
        return max(0.0, float(v @ self.covariance @ v))

    def dollar_risk(self, e: Exposure, horizon_s: float = RISK_HORIZON_S) -> float:
        """One standard deviation of the P&L of exposure `e` over `horizon_s`, in USD."""
        return math.sqrt(self.variance(e) * horizon_s / SECONDS_PER_YEAR)

    def imbalance_risk_usd(
        self,
        legs: Sequence[LegProgress],
        prices: Mapping[str, float],
        instruments: Mapping[str, Instrument],
        in_step_progress: float | None = None,
        horizon_s: float = RISK_HORIZON_S,
    ) -> float:
        """sqrt(uᵀ Σ_instr u) over `horizon_s`: the dollar risk of being out of step.

        `instruments` maps leg id → the leg's instrument; Σ_instr = B Σ_f Bᵀ, so this is the
        dollar risk of the imbalance's factor exposure `Bu`.
        """
        u = imbalance_usd(legs, prices, in_step_progress)
        return self.dollar_risk(self.leg_exposures(u, instruments), horizon_s)

    def leg_exposures(
        self, u: Mapping[str, float], instruments: Mapping[str, Instrument]
    ) -> np.ndarray:
        """Factor exposures of per-leg dollars `u` (leg id → USD), given each leg's instrument."""
        return self._mapped(u, instruments, "imbalance: no instrument given for legs")

    def _mapped(
        self, dollars: Mapping[str, float], instruments: Mapping[str, Instrument], missing_msg: str
    ) -> np.ndarray:
        """`B · dollars` for dollars and instruments under the same keys (symbols or leg ids)."""
        missing = sorted(set(dollars) - set(instruments))
        if missing:
            raise ValueError(f"{missing_msg} {missing}")
        keys = list(dollars)
        b = self.betas(instruments[k] for k in keys)
        return b @ np.array([dollars[k] for k in keys], dtype=float)


class RiskSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The risk model as a configuration gives it (`[risk]`, docs/deploy.md).

    `factors` maps each factor to its annualised volatility, `correlations` pairs of them
    ("BTC/ETH") to a correlation (unlisted pairs: 0), and `betas` instrument symbols to
    their factor betas (beyond the default: an instrument whose base asset is a factor has
    beta 1.0 on it). The defaults are the calibration of DESIGN §10.
    """

    factors: dict[str, float] = msgspec.field(
        default_factory=lambda: {f.name: f.vol for f in DEFAULT_CALIBRATION.factors}
    )
    correlations: dict[str, float] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_CALIBRATION.correlations)
    )
    betas: dict[str, dict[str, float]] = {}

    def problems(self) -> list[tuple[str, str]]:
        """Every mistake as (field path, what is wrong and what is accepted)."""
        out: list[tuple[str, str]] = []
        if not self.factors:
            out.append(("factors", "empty; name at least one factor, e.g. BTC = 0.5"))
        for name, vol in self.factors.items():
            if not (math.isfinite(vol) and vol > 0):
                out.append((f"factors.{name}", f"{vol} is not an annual volatility > 0"))
        for pair, rho in self.correlations.items():
            a, sep, b = pair.partition("/")
            if not sep or a not in self.factors or b not in self.factors or a == b:
                out.append(
                    (
                        f'correlations."{pair}"',
                        f"expected two different factors as 'A/B', from {sorted(self.factors)}",
                    )
                )
            elif not (math.isfinite(rho) and -1 <= rho <= 1):
                out.append((f'correlations."{pair}"', f"{rho} is not a correlation in [-1, 1]"))
        for symbol, betas in self.betas.items():
            for factor, beta in betas.items():
                if factor not in self.factors:
                    out.append(
                        (
                            f"betas.{symbol}.{factor}",
                            f"unknown factor; the model has {sorted(self.factors)}",
                        )
                    )
                elif not math.isfinite(beta):
                    out.append((f"betas.{symbol}.{factor}", f"{beta} is not a number"))
        if not out:
            try:
                self.model()
            except ValueError as e:
                out.append(("correlations", f"the matrix they make is not valid: {e}"))
        return out

    def model(self) -> RiskModel:
        names = list(self.factors)
        vols = np.array([self.factors[n] for n in names], dtype=float)
        corr = np.eye(len(names))
        for pair, rho in self.correlations.items():
            a, _, b = pair.partition("/")
            i, j = names.index(a), names.index(b)
            corr[i, j] = corr[j, i] = rho
        return RiskModel(names, corr * np.outer(vols, vols))


def with_risk_betas(
    inst: Instrument,
    factors: Sequence[str],
    known: Mapping[str, Instrument] = SYNTHETIC_INSTRUMENTS,
    configured: Mapping[str, Mapping[str, float]] | None = None,
) -> Instrument:
    """`inst` as a venue lists it (its trading rules, no betas) with its factor betas.

    An instrument that already has betas keeps them; else the betas `configured` for its
    symbol (`[risk.betas]`), else those of the same symbol in `known` (stETH is ETH 1.0,
    the index perp its weights); otherwise an instrument whose base asset is a factor is
    1.0 on it. Anything else keeps no betas, and so counts as no risk: the caller says so
    rather than guess.
    """
    if inst.betas:
        return inst
    if configured and inst.symbol in configured:
        betas = dict(configured[inst.symbol])
    elif inst.symbol in known and known[inst.symbol].betas:
        betas = dict(known[inst.symbol].betas)
    elif inst.base in factors:
        betas = {inst.base: 1.0}
    else:
        return inst
    return msgspec.structs.replace(inst, betas=betas)


# -- imbalance --------------------------------------------------------------------------------


def in_step_reference(legs: Sequence[LegProgress]) -> float:
    """The basket's in-step completion p*: the progress of its slowest leg.

    Every leg filled up to `p* × target` is the basket as designed, at a smaller size, whatever
    happens next; only the excess over it is exposure nobody asked for. It is what the
    synchronizer's shrink would keep, what an unwind must undo, and what a hedge must cover
    (a one-legged pair is a full leg of risk, not half a leg long on each side as a mean
    reference would say). With this reference every leg's imbalance has the leg's own sign.
    """
    if not legs:
        return 1.0
    return min(leg.progress for leg in legs)


def imbalance_usd(
    legs: Sequence[LegProgress],
    prices: Mapping[str, float],
    in_step_progress: float | None = None,
) -> dict[str, float]:
    """Per-leg imbalance u_i = (held_i − p*·target_i) × side × price, in signed USD (held:
    filled less fees taken in the leg's own asset, `LegProgress.held_qty`).

    `prices` maps leg id → dollars per unit of the leg's quantity. p* defaults to the slowest
    leg's progress (`in_step_reference`); pass another reference, e.g. the schedule's, to measure
    against it instead. A basket whose legs all have the same progress has u = 0.
    """
    p = in_step_reference(legs) if in_step_progress is None else in_step_progress
    u: dict[str, float] = {}
    for leg in legs:
        if leg.leg_id not in prices:
            raise ValueError(f"prices: no price for leg {leg.leg_id!r}")
        excess = float(leg.held_qty) - p * float(leg.target_qty)
        u[leg.leg_id] = excess * leg.side.sign * float(prices[leg.leg_id])
    return u


class LeggingRiskIntegrator:
    """Legging risk sqrt(∫ uᵀΣu dt) of one basket, with its peak dollar and beta imbalance.

    Snapshots of the imbalance arrive at irregular times; each holds until the next
    (piecewise constant). Time is in ns and the covariance annual, so ∫ is in USD²
    and `legging_risk_usd` is the standard deviation of the P&L the imbalance exposed the
    basket to (DESIGN §8).

    Peak dollar imbalance is the largest gross out-of-step notional Σ|u_i|; peak beta
    imbalance the largest net market exposure |Σ β_i u_i|, β_i the leg's beta to the market
    factor (`RiskModel.market_betas`): the two figures a desk reads as "dollar-neutral" and
    "beta-neutral".
    """

    def __init__(
        self,
        risk: RiskModel,
        instruments: Mapping[str, Instrument],
        market: str | None = None,
    ) -> None:
        self._risk = risk
        self._legs = list(instruments)
        self._pos = {leg: i for i, leg in enumerate(self._legs)}
        insts = [instruments[leg] for leg in self._legs]
        self._cov = risk.instrument_covariance(insts)
        self._beta = risk.market_betas(insts, market)
        self._rate = 0.0  # uᵀΣu of the snapshot in force, USD² per year
        self._since_ns: int | None = None
        self._integral = 0.0  # USD²
        self.peak_dollar_imbalance_usd = 0.0
        self.peak_beta_imbalance_usd = 0.0

    def update(self, u: Mapping[str, float], now_ns: int) -> None:
        """The imbalance is `u` (leg id → USD; absent legs 0) from `now_ns` on."""
        unknown = sorted(set(u) - set(self._pos))
        if unknown:
            raise ValueError(f"imbalance: unknown legs {unknown}; the basket has {self._legs}")
        self._integral = self._accrued(now_ns)
        if self._since_ns is None or now_ns > self._since_ns:
            self._since_ns = now_ns  # a clock that steps back adds no time
        vec = np.zeros(len(self._legs))
        for leg, usd in u.items():
            vec[self._pos[leg]] = usd
        self._rate = max(0.0, float(vec @ self._cov @ vec))
        self.peak_dollar_imbalance_usd = max(
            self.peak_dollar_imbalance_usd, float(np.abs(vec).sum())
        )
        self.peak_beta_imbalance_usd = max(
            self.peak_beta_imbalance_usd, abs(float(self._beta @ vec))
        )

    def observe(
        self,
        legs: Sequence[LegProgress],
        prices: Mapping[str, float],
        now_ns: int,
        in_step_progress: float | None = None,
    ) -> dict[str, float]:
        """Compute the imbalance of `legs` (`imbalance_usd`), record it, and return it."""
        u = imbalance_usd(legs, prices, in_step_progress)
        self.update(u, now_ns)
        return u

    def variance_usd2(self, now_ns: int) -> float:
        """∫ uᵀΣu dt up to `now_ns`, in USD²."""
        return self._accrued(now_ns)

    def legging_risk_usd(self, now_ns: int) -> float:
        """sqrt(∫ uᵀΣu dt) up to `now_ns`, with the latest imbalance held until then."""
        return math.sqrt(self._accrued(now_ns))

    def _accrued(self, now_ns: int) -> float:
        if self._since_ns is None or now_ns <= self._since_ns:
            return self._integral
        return self._integral + self._rate * (now_ns - self._since_ns) / NS_PER_YEAR


# -- a basket's scale ---------------------------------------------------------------------------

# Up to this many legs the largest imbalance is found by trying every set of filled legs;
# beyond, `max_imbalance_risk_usd` gives the gross risk, which bounds it from above.
_EXACT_IMBALANCE_LEGS = 12


def gross_risk_usd(
    risk: RiskModel,
    notionals_usd: Sequence[float],
    instruments: Sequence[Instrument],
    horizon_s: float = RISK_HORIZON_S,
) -> float:
    """Σ_i |N_i|·σ_i over `horizon_s`: the legs' stand-alone dollar risks, added up.

    No netting and no correlation: what the basket would risk if each leg stood alone. By
    the triangle inequality no imbalance of the basket (each leg between none and all of
    its notional) has more risk, so a share of it is a threshold on the basket's own scale.
    """
    scale = math.sqrt(horizon_s / SECONDS_PER_YEAR)
    return scale * sum(
        abs(n) * risk.volatility(i) for n, i in zip(notionals_usd, instruments, strict=True)
    )


def max_imbalance_risk_usd(
    risk: RiskModel,
    signed_notionals_usd: Sequence[float],
    instruments: Sequence[Instrument],
    horizon_s: float = RISK_HORIZON_S,
) -> float:
    """The largest dollar risk an imbalance of the basket can carry over `horizon_s`.

    An imbalance holds each leg between none and all of its signed notional; its variance
    is convex in the fills, so the largest is at a corner: some legs wholly filled, the
    others not at all (a pair with one leg done). Every corner is tried up to
    `_EXACT_IMBALANCE_LEGS` legs; beyond, the gross risk (`gross_risk_usd`) bounds it.
    """
    n = len(instruments)
    if n > _EXACT_IMBALANCE_LEGS:
        return gross_risk_usd(risk, signed_notionals_usd, instruments, horizon_s)
    cov = risk.instrument_covariance(instruments)
    v = np.asarray(signed_notionals_usd, dtype=float)
    best = 0.0
    for mask in range(1, 1 << n):
        u = np.array([v[i] if mask >> i & 1 else 0.0 for i in range(n)])
        best = max(best, float(u @ cov @ u))
    return math.sqrt(best * horizon_s / SECONDS_PER_YEAR)
