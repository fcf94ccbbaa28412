"""Clock-offset estimation from ping exchanges: offset, its error bound, and drift.

Pure (DESIGN §3, §6): the caller pings a remote clock (a leg actor, a venue's server time),
and feeds each exchange in as local send time, remote timestamp and local receive time.
`offset = remote − local`. One exchange brackets the truth: the remote stamped its time
somewhere between our send and our receive, so the offset lies within
`t_remote − (t_send + t_recv)/2 ± rtt/2` whatever the asymmetry of the two paths. The
minimum-round-trip sample gives the narrowest such interval (DESIGN §6).

Two refinements, both strict in the same sense (the true offset stays inside the reported
uncertainty as long as the remote clock runs at a constant rate):

- **Intersection**: every sample's interval contains the truth, so their intersection does
  too. It lies inside the minimum-round-trip sample's interval, so it is never worse; it
  pairs the fastest outbound path of one sample with the fastest return of another, and
  with a coarse remote clock (Binance stamps milliseconds) it narrows the ±0.5 ms
  truncation as the phase of successive samples varies.
- **Drift**: clocks run at different rates (tens of ppm is ordinary for quartz). Over a
  longer window the estimator fits a line, offset against local time, through the
  lowest-round-trip sample of each sub-window, weighted by their precision. Every sample
  is carried to the query time along that line, its interval widened by the worst slope
  error the sub-window bounds allow, so `offset_at` extrapolates a drifting clock and its
  uncertainty still holds.

Samples that contradict the newer ones (a clock stepped by NTP, a remote restarted) end
the intersection: it runs from the newest sample back to the first one that would empty it.
"""

from __future__ import annotations

import bisect
import math

import msgspec

_SECOND = 1_000_000_000


class ClockNotSynced(RuntimeError):
    """No usable sample yet: the offset is unknown. Check `ready` first."""


class ClockSample(msgspec.Struct, frozen=True, kw_only=True):
    """One ping exchange. `at_ns` is the local midpoint of send and receive, `offset_ns`
    the offset it measured (remote truncation centred), `half_width_ns` its error bound."""

    t_send_ns: int
    t_remote_ns: int
    t_recv_ns: int
    remote_processing_ns: int
    at_ns: int
    rtt_ns: int
    offset_ns: float
    half_width_ns: float


class ClockEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """What travels with reports: the offset of the remote clock at `at_ns` (local),
    `remote = local + offset_ns` within ± `uncertainty_ns`."""

    offset_ns: int
    uncertainty_ns: int
    drift_ppm: float | None
    samples: int
    at_ns: int


class _Fit(msgspec.Struct, frozen=True):
    slope: float  # offset change per local ns
    slope_bound: float  # worst-case |slope error|, per local ns
    points: int


_NO_FIT = _Fit(0.0, 0.0, 0)


class ClockOffsetEstimator:
    """The offset between a local and a remote clock, from timed ping exchanges.

    `window_ns` bounds the samples the offset is taken from; `drift_window_ns` (longer)
    those the drift is fitted over, in `sub_windows` equal slices, needing at least
    `min_fit_points` non-empty slices before a drift is estimated (until then drift is
    taken as zero, and an uncertainty is only as good as that assumption).
    `remote_resolution_ns` is the remote clock's tick when it truncates (1 ms for Binance):
    readings are centred in their tick and the uncertainty widened by half a tick.

    With no accepted sample, `offset_ns`, `uncertainty_ns`, `offset_at` and the
    conversions raise `ClockNotSynced`; `ready` says whether they will.
    """

    def __init__(
        self,
        *,
        window_ns: int = 60 * _SECOND,
        drift_window_ns: int = 600 * _SECOND,
        sub_windows: int = 8,
        min_fit_points: int = 3,
        remote_resolution_ns: int = 0,
        max_samples: int = 100_000,
    ) -> None:
        if window_ns <= 0 or drift_window_ns <= 0:
            raise ValueError(
                f"windows must be positive, got window_ns={window_ns}, "
                f"drift_window_ns={drift_window_ns}"
            )
        if sub_windows < 2 or not 2 <= min_fit_points <= sub_windows:
            raise ValueError(
                f"need 2 ≤ min_fit_points ≤ sub_windows, got min_fit_points={min_fit_points}, "
                f"sub_windows={sub_windows}"
            )
        if remote_resolution_ns < 0:
            raise ValueError(f"remote_resolution_ns must be ≥ 0, got {remote_resolution_ns}")
        if max_samples < 1:
            raise ValueError(f"max_samples must be ≥ 1, got {max_samples}")
        self.window_ns = window_ns
        self.drift_window_ns = drift_window_ns
        self.sub_windows = sub_windows
        self.min_fit_points = min_fit_points
        self.remote_resolution_ns = remote_resolution_ns
        self.max_samples = max_samples
        self.rejected = 0
        self._samples: list[ClockSample] = []  # ordered by at_ns
        self._fit: _Fit | None = None
        self._cache: dict[int, tuple[float, float]] = {}

    # --- input ---------------------------------------------------------------------
    def add_sample(
        self,
        t_send_ns: int,
        t_remote_ns: int,
        t_recv_ns: int,
        *,
        remote_processing_ns: int = 0,
    ) -> ClockSample | None:
        """Record one exchange; returns the sample, or None if it was rejected.

        `t_send_ns`/`t_recv_ns` are local, `t_remote_ns` the remote's reading, taken (as
        in NTP, `(t2 + t3)/2`) in the middle of `remote_processing_ns` spent there, which
        does not count as round trip. A negative round trip (a local clock that stepped
        back mid-exchange, or processing longer than the exchange) is rejected and counted
        in `rejected`.
        """
        if remote_processing_ns < 0:
            raise ValueError(f"remote_processing_ns must be ≥ 0, got {remote_processing_ns}")
        rtt = t_recv_ns - t_send_ns - remote_processing_ns
        if rtt < 0:
            self.rejected += 1
            return None
        res = self.remote_resolution_ns
        # Integer arithmetic first: absolute ns times do not fit a float's mantissa.
        twice_offset = 2 * t_remote_ns + res - t_send_ns - t_recv_ns
        sample = ClockSample(
            t_send_ns=t_send_ns,
            t_remote_ns=t_remote_ns,
            t_recv_ns=t_recv_ns,
            remote_processing_ns=remote_processing_ns,
            at_ns=(t_send_ns + t_recv_ns) // 2,
            rtt_ns=rtt,
            offset_ns=twice_offset / 2,
            half_width_ns=(rtt + res) / 2,
        )
        bisect.insort(self._samples, sample, key=lambda s: s.at_ns)
        horizon = self._samples[-1].at_ns - max(self.window_ns, self.drift_window_ns)
        cut = bisect.bisect_left(self._samples, horizon, key=lambda s: s.at_ns)
        cut = max(cut, len(self._samples) - self.max_samples)
        if cut > 0:
            del self._samples[:cut]
        self._fit = None
        self._cache.clear()
        return sample

    # --- estimates -----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self._samples)

    @property
    def samples(self) -> tuple[ClockSample, ...]:
        """The samples held (within the longer of the two windows), oldest first."""
        return tuple(self._samples)

    @property
    def latest_ns(self) -> int:
        """The local time of the newest sample: where `offset_ns` is evaluated."""
        return self._require()[-1].at_ns

    @property
    def best(self) -> ClockSample:
        """The minimum-round-trip sample of the offset window."""
        return min(self._recent(), key=lambda s: (s.half_width_ns, -s.at_ns))

    @property
    def offset_ns(self) -> int:
        """The remote clock's offset at the newest sample: `remote = local + offset`."""
        return self.offset_at(self.latest_ns)

    @property
    def uncertainty_ns(self) -> int:
        """Bound on |estimated − true offset| at the newest sample (rounded up)."""
        return self.uncertainty_at(self.latest_ns)

    @property
    def drift_ppm(self) -> float | None:
        """Remote rate minus local rate in parts per million; None until fitted."""
        fit = self._drift()
        return fit.slope * 1e6 if fit.points else None

    @property
    def drift_bound_ppm(self) -> float | None:
        """Worst-case error of `drift_ppm`, from the fitted samples' bounds."""
        fit = self._drift()
        return fit.slope_bound * 1e6 if fit.points else None

    def offset_at(self, t_ns: int) -> int:
        """The offset at local time `t_ns`, extrapolated along the drift."""
        return round(self._interval(t_ns)[0])

    def uncertainty_at(self, t_ns: int) -> int:
        return math.ceil(self._interval(t_ns)[1])

    def to_remote(self, t_local_ns: int) -> int:
        """The remote clock's reading at local time `t_local_ns`."""
        return t_local_ns + self.offset_at(t_local_ns)

    def to_local(self, t_remote_ns: int) -> int:
        """The local time of a reading of the remote clock (centred in its tick)."""
        remote = t_remote_ns + self.remote_resolution_ns // 2
        guess = remote - self.offset_ns
        # One more step settles it: the offset changes by drift × offset, far below 1 ns.
        return remote - self.offset_at(guess)

    def estimate(self, t_ns: int | None = None) -> ClockEstimate:
        """The offset, its bound and the drift at `t_ns` (default: the newest sample)."""
        at = self.latest_ns if t_ns is None else t_ns
        return ClockEstimate(
            offset_ns=self.offset_at(at),
            uncertainty_ns=self.uncertainty_at(at),
            drift_ppm=self.drift_ppm,
            samples=len(self._samples),
            at_ns=at,
        )

    # --- internals -----------------------------------------------------------------
    def _require(self) -> list[ClockSample]:
        if not self._samples:
            raise ClockNotSynced(
                "no clock sample yet: the remote clock's offset is unknown until one ping "
                "exchange has been added"
            )
        return self._samples

    def _recent(self) -> list[ClockSample]:
        samples = self._require()
        start = bisect.bisect_left(
            samples, samples[-1].at_ns - self.window_ns, key=lambda s: s.at_ns
        )
        return samples[start:]

    def _interval(self, t_ns: int) -> tuple[float, float]:
        """(centre, half width) of the offset at `t_ns`, from the recent samples."""
        hit = self._cache.get(t_ns)
        if hit is None:
            hit = _intersect(self._recent(), t_ns, self._drift())
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[t_ns] = hit
        return hit

    def _drift(self) -> _Fit:
        """The drift line, refined: first through each sub-window's lowest-round-trip
        sample; then, `_REFINE` times, through each sub-window's intersection carried
        along the previous line, which narrows the points and so the slope bound."""
        if self._fit is not None:
            return self._fit
        samples = self._require()
        end = samples[-1].at_ns
        start = end - self.drift_window_ns
        slice_ns = self.drift_window_ns / self.sub_windows
        groups: dict[int, list[ClockSample]] = {}
        for s in samples[bisect.bisect_left(samples, start, key=lambda s: s.at_ns) :]:
            k = min(int((s.at_ns - start) // slice_ns), self.sub_windows - 1)
            groups.setdefault(k, []).append(s)
        if len(groups) < self.min_fit_points:
            self._fit = _NO_FIT
            return self._fit
        anchors = [min(g, key=lambda s: s.half_width_ns) for g in groups.values()]
        fit = _fit_line([(a.at_ns, a.offset_ns, a.half_width_ns) for a in anchors], end)
        for _ in range(_REFINE):
            if not fit.points:
                break
            points = [
                (a.at_ns, *_intersect(g, a.at_ns, fit))
                for a, g in zip(anchors, groups.values(), strict=True)
            ]
            refined = _fit_line(points, end)
            if refined.slope_bound >= fit.slope_bound:
                break
            fit = refined
        self._fit = fit
        return fit


_REFINE = 2


def _intersect(samples: list[ClockSample], t_ns: int, fit: _Fit) -> tuple[float, float]:
    """(centre, half width) of the intersection of the samples' intervals, each carried to
    `t_ns` along the drift and widened by its bound; newest first, stopping at the first
    sample that contradicts the ones after it."""
    lo, hi = -math.inf, math.inf
    for s in reversed(samples):
        dt = t_ns - s.at_ns
        centre = s.offset_ns + fit.slope * dt
        width = s.half_width_ns + fit.slope_bound * abs(dt)
        new_lo, new_hi = max(lo, centre - width), min(hi, centre + width)
        if new_lo > new_hi:
            break
        lo, hi = new_lo, new_hi
    return (lo + hi) / 2, (hi - lo) / 2


def _fit_line(points: list[tuple[int, float, float]], ref_ns: int) -> _Fit:
    """Weighted least-squares slope through (local time, offset, error bound) points, with
    its worst-case error: the slope is Σ cᵢ·yᵢ, so an error of at most uᵢ in each point
    moves it by at most Σ |cᵢ|·uᵢ."""
    xs = [float(t - ref_ns) for t, _, _ in points]
    ys = [y for _, y, _ in points]
    us = [max(u, 1.0) for _, _, u in points]
    ws = [1.0 / (u * u) for u in us]
    sw = sum(ws)
    x_bar = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
    sxx = sum(w * (x - x_bar) ** 2 for w, x in zip(ws, xs, strict=True))
    if sxx <= 0:
        return _NO_FIT
    cs = [w * (x - x_bar) / sxx for w, x in zip(ws, xs, strict=True)]
    slope = sum(c * y for c, y in zip(cs, ys, strict=True))
    bound = sum(abs(c) * u for c, u in zip(cs, us, strict=True))
    return _Fit(slope, bound, len(points))


def remote_to_local(
    t_remote_ns: int,
    offset_ns: int,
    at_ns: int,
    drift_ppm: float | None = None,
    resolution_ns: int = 0,
) -> int:
    """Local time of a remote clock reading, from a reported `ClockEstimate`'s figures:
    `remote = local + offset_ns + drift·(local − at_ns)`; a reading truncated to
    `resolution_ns` is centred in its tick (as the estimator centred its samples)."""
    remote = t_remote_ns + resolution_ns // 2
    slope = (drift_ppm or 0.0) * 1e-6
    # local = remote − offset − slope·(local − at); solved exactly for local, with the
    # large absolute times kept in integers (a float loses ~256 ns at today's epoch).
    plain = remote - offset_ns
    return plain - round(slope * (plain - at_ns) / (1 + slope))
