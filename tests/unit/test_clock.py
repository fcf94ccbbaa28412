"""The clock-offset estimator: injected offsets, asymmetric jitter, drift, coarse clocks."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
import pytest

from actors.clock import ClockEstimate, ClockNotSynced, ClockOffsetEstimator

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S  # absolute wall-clock ns: far beyond a float's exact integers
MIN_ONE_WAY = 100_000  # 0.1 ms


def ping(
    est: ClockOffsetEstimator,
    n: int,
    true_offset: Callable[[int], float],
    *,
    seed: int,
    period_ns: int = 100 * MS,
    resolution_ns: int = 0,
    start_ns: int = T0,
    mean_out_ns: int = 300_000,
    mean_back_ns: int = 1_000_000,
) -> list[tuple[int, float, bool]]:
    """Feed `n` exchanges: each way 0.1 ms plus an exponential delay (the return path
    slower), send times jittered within a millisecond so they do not lock to the remote's
    ticks. The remote reads `local + true_offset(local)`, truncated to `resolution_ns`.
    Returns (local midpoint, true offset there, error within uncertainty) per sample."""
    rng = random.Random(seed)
    t = start_ns
    out = []
    for _ in range(n):
        t += period_ns + rng.randrange(MS)
        d_out = MIN_ONE_WAY + int(rng.expovariate(1 / mean_out_ns))
        d_back = MIN_ONE_WAY + int(rng.expovariate(1 / mean_back_ns))
        arrive = t + d_out
        remote = arrive + round(true_offset(arrive))
        if resolution_ns:
            remote -= remote % resolution_ns
        sample = est.add_sample(t, remote, arrive + d_back)
        assert sample is not None
        mid = sample.at_ns
        truth = true_offset(mid)
        out.append((mid, truth, abs(est.offset_at(mid) - truth) <= est.uncertainty_at(mid) + 1))
    return out


def constant(offset_ns: int) -> Callable[[int], float]:
    return lambda _t: offset_ns


def drifting(offset_ns: int, ppm: float) -> Callable[[int], float]:
    return lambda t: offset_ns + ppm * 1e-6 * (t - T0)


# --- basics -----------------------------------------------------------------------------
def test_without_samples_the_offset_is_unknown_and_says_so() -> None:
    est = ClockOffsetEstimator()
    assert not est.ready
    for read in (
        lambda: est.offset_ns,
        lambda: est.uncertainty_ns,
        lambda: est.offset_at(T0),
        lambda: est.to_local(T0),
    ):
        with pytest.raises(ClockNotSynced, match="no clock sample yet"):
            read()


def test_one_sample_gives_the_midpoint_offset_within_half_the_round_trip() -> None:
    est = ClockOffsetEstimator()
    sample = est.add_sample(T0, T0 + 5 * MS + 300_000, T0 + 1 * MS)
    assert sample is not None
    assert (sample.rtt_ns, sample.at_ns) == (1 * MS, T0 + 500_000)
    assert est.offset_ns == 5 * MS - 200_000
    assert est.uncertainty_ns == 500_000
    assert est.drift_ppm is None


def test_remote_processing_does_not_count_as_round_trip() -> None:
    est = ClockOffsetEstimator()
    est.add_sample(T0, T0 + 7 * MS + 500_000, T0 + 1 * MS, remote_processing_ns=800_000)
    assert est.uncertainty_ns == 100_000  # (1 ms − 0.8 ms) / 2
    assert est.offset_ns == 7 * MS


def test_a_negative_round_trip_is_rejected_and_counted() -> None:
    est = ClockOffsetEstimator()
    assert est.add_sample(T0, T0, T0 - 1) is None
    assert est.add_sample(T0, T0, T0 + 100, remote_processing_ns=200) is None
    assert (est.rejected, est.ready) == (2, False)
    with pytest.raises(ValueError, match="remote_processing_ns must be ≥ 0"):
        est.add_sample(T0, T0, T0 + 100, remote_processing_ns=-1)


# --- injected offsets and asymmetric jitter ---------------------------------------------
@pytest.mark.parametrize("offset_ns", [5 * MS, -20 * MS, 0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_offset_converges_under_asymmetric_jitter_and_the_bound_always_holds(
    offset_ns: int, seed: int
) -> None:
    est = ClockOffsetEstimator()
    widths = []
    for n in (10, 40, 150):
        trace = ping(est, n, constant(offset_ns), seed=seed * 100 + n)
        assert all(ok for *_, ok in trace), "the true offset left the reported uncertainty"
        widths.append(est.uncertainty_ns)
    assert len(est.samples) == 200
    assert abs(est.offset_ns - offset_ns) < 0.2 * MS
    # Never worse than the minimum-round-trip sample, and narrowing as samples come in.
    assert est.uncertainty_ns <= est.best.half_width_ns
    assert widths == sorted(widths, reverse=True)
    # Two 0.1 ms one-way minimums bound it from below: the intersection approaches them.
    assert MIN_ONE_WAY <= est.uncertainty_ns < 0.15 * MS


def test_the_min_round_trip_sample_alone_would_be_biased_by_the_path_asymmetry() -> None:
    est = ClockOffsetEstimator()
    ping(est, 200, constant(5 * MS), seed=7, mean_out_ns=50_000, mean_back_ns=3 * MS)
    best = est.best
    assert abs(est.offset_ns - 5 * MS) <= abs(best.offset_ns - 5 * MS)
    assert abs(est.offset_ns - 5 * MS) <= est.uncertainty_ns <= best.half_width_ns


def test_samples_older_than_the_windows_are_dropped() -> None:
    est = ClockOffsetEstimator(window_ns=5 * S, drift_window_ns=10 * S)
    ping(est, 300, constant(1 * MS), seed=4)  # ~30 s of pings
    held = est.samples
    assert held[-1].at_ns - held[0].at_ns <= 10 * S
    assert len(held) < 110


def test_a_stepped_remote_clock_is_followed_from_the_newer_samples() -> None:
    est = ClockOffsetEstimator()
    ping(est, 100, constant(5 * MS), seed=5)
    after = est.samples[-1].at_ns
    trace = ping(est, 20, constant(15 * MS), seed=6, start_ns=after)
    assert abs(est.offset_ns - 15 * MS) < 0.3 * MS
    assert trace[-1][2]


# --- drift ------------------------------------------------------------------------------
@pytest.mark.parametrize("ppm", [50.0, -30.0])
def test_drift_is_estimated_and_offset_at_extrapolates(ppm: float) -> None:
    est = ClockOffsetEstimator(window_ns=60 * S, drift_window_ns=120 * S)
    truth = drifting(-20 * MS, ppm)
    trace = ping(est, 1_200, truth, seed=11)
    fitted = [ok for (t, _, ok) in trace if t - T0 > 40 * S]  # once three sub-windows hold
    assert all(fitted), "the true offset left the reported uncertainty after the fit"
    assert est.drift_ppm == pytest.approx(ppm, abs=2.0)
    assert abs(est.drift_ppm - ppm) <= est.drift_bound_ppm
    assert abs(est.offset_ns - truth(est.latest_ns)) < 0.2 * MS
    later = est.latest_ns + 30 * S  # 1.5 ms of drift beyond the last sample
    assert abs(est.offset_at(later) - truth(later)) < 0.3 * MS
    assert abs(est.offset_at(later) - truth(later)) <= est.uncertainty_at(later)
    assert est.uncertainty_at(later) > est.uncertainty_ns


def test_without_drift_the_fitted_drift_is_near_zero() -> None:
    est = ClockOffsetEstimator(window_ns=60 * S, drift_window_ns=120 * S)
    ping(est, 1_200, constant(3 * MS), seed=12)
    assert est.drift_ppm == pytest.approx(0.0, abs=1.0)
    assert abs(est.offset_ns - 3 * MS) < 0.1 * MS


# --- coarse remote clocks ---------------------------------------------------------------
def test_a_millisecond_remote_clock_is_centred_and_its_truncation_narrowed() -> None:
    ms_clock = ClockOffsetEstimator(remote_resolution_ns=MS)
    trace = ping(ms_clock, 400, constant(-20 * MS + 123_456), seed=21, resolution_ns=MS)
    assert all(ok for *_, ok in trace)
    error = abs(ms_clock.offset_ns - (-20 * MS + 123_456))
    # One sample can do no better than ±0.5 ms; the varying phase of 400 narrows it.
    assert ms_clock.best.half_width_ns > 0.5 * MS
    assert error <= ms_clock.uncertainty_ns < 0.3 * MS
    # Ignoring the truncation reads every stamp up to 1 ms early and overstates precision.
    naive = ClockOffsetEstimator()
    ping(naive, 400, constant(-20 * MS + 123_456), seed=21, resolution_ns=MS)
    assert abs(naive.offset_ns - (-20 * MS + 123_456)) > naive.uncertainty_ns


def test_conversions_between_local_and_remote_time() -> None:
    est = ClockOffsetEstimator(remote_resolution_ns=MS)
    est.add_sample(T0, T0 + 5 * MS, T0 + 200_000)  # remote read 5 ms, truly in [5, 6) ms
    assert est.offset_ns == 5 * MS + 400_000
    assert est.to_remote(T0 + 1 * S) == T0 + 1 * S + 5 * MS + 400_000
    # A remote reading is centred in its tick before it is mapped back.
    assert est.to_local(T0 + 1 * S + 5 * MS) == T0 + 1 * S + 100_000
    assert est.to_local(est.to_remote(T0 + S) - MS // 2) == T0 + S


def test_the_estimate_travels_as_json() -> None:
    est = ClockOffsetEstimator()
    ping(est, 20, constant(5 * MS), seed=31)
    estimate = est.estimate()
    assert estimate.samples == 20
    assert estimate.at_ns == est.latest_ns
    assert msgspec.json.decode(msgspec.json.encode(estimate), type=ClockEstimate) == estimate
