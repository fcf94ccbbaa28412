"""Venue profiles: latency, acknowledgement semantics, rejects, outages, rate limits and
transfers."""

from __future__ import annotations

import math
import random
from collections import deque
from enum import StrEnum

import msgspec

from venues.model import AckKind, TransferKind

NS_PER_MS = 1_000_000
_Z99 = 2.326347874  # standard normal 99th percentile


MAX_APPLY_DELAY_NS = 5_000_000_000  # Binance's default recvWindow: 5 s


class Latency(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A log-normal latency given by its median and 99th percentile, in milliseconds."""

    median_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        if not (self.median_ms >= 0 and self.p99_ms >= self.median_ms):
            raise ValueError(
                f"latency needs 0 <= median_ms <= p99_ms, got median_ms={self.median_ms}, "
                f"p99_ms={self.p99_ms}"
            )

    def sample_ns(self, rng: random.Random) -> int:
        if self.median_ms == 0:
            return 0
        sigma = math.log(self.p99_ms / self.median_ms) / _Z99 if self.p99_ms > 0 else 0.0
        return int(self.median_ms * math.exp(sigma * rng.gauss(0.0, 1.0)) * NS_PER_MS)


class Outage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A window, in seconds after the venue starts, when it refuses every request."""

    start_s: float
    duration_s: float
    mode: str = "503"  # "503": answers HTTP 503; "refuse": connections are refused


class ClientIdReuse(StrEnum):
    """When a venue takes a client order id it has seen on the account as a new order's."""

    NEVER = "never"  # never again: the simulator's default
    # Once the order that has it is terminal (FILLED, CANCELED, EXPIRED, REJECTED): Binance
    # USD-M's rule. The id then names the newest order that has it.
    AFTER_CLOSE = "after_close"


class TransferProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long a venue takes to move money, and how often it goes wrong (seconds, shares).

    An internal transfer (between an account's spot and futures wallets) completes
    `internal_s` after it was asked, a withdrawal is sent `withdrawal_s` after; a share
    `stall_rate` of either stalls and takes `stall_s` instead (`inf`: it never completes by
    itself), and a share `fail_rate` fails when its time comes (the amount goes back to the
    wallet it left).
    """

    internal_s: float = 1.0
    withdrawal_s: float = 120.0
    stall_rate: float = 0.0
    stall_s: float = 600.0
    fail_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("stall_rate", "fail_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ValueError(f"{name} must be a share within [0, 1], got {value}")
        for name in ("internal_s", "withdrawal_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")
        if not self.stall_s >= 0:
            raise ValueError(
                f"stall_s must be a number of seconds >= 0, or inf (a stalled transfer never "
                f"completes by itself), got {self.stall_s}"
            )

    def delay_s(self, kind: TransferKind) -> float:
        """How long a transfer of `kind` that does not stall takes."""
        return self.internal_s if kind is TransferKind.INTERNAL else self.withdrawal_s


class VenueProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a venue behaves on the wire. Presets: `colo`, `same_region`, `cross_region`.

    `request` is client → venue one way, `processing` venue receive → accept (risk checks
    and matching), `response` venue → client one way, `stream_lag` the venue's own delay
    from an event to its publication on the streams (execution reports, market data). A
    published event then travels to the client as an answer does: it is delivered
    `stream_lag` + `response` after it happened, so a distant venue's streams are as far
    away as its answers.

    `unknown_apply_delay`: when set, an order whose answer is lost but which the venue still
    applies (`unknown_rate`, `unknown_applied`) is applied only this long after it was
    received (one draw per such order), as a venue that timed out (Binance -1007) may still
    do: until then a query finds no such order (-2013). None: it is applied when processed.

    `client_id_reuse`: whether a client order id used before on the account may name a new
    order (`ClientIdReuse`); a refused one is a duplicate (-4116).

    `transfers`: the delays, stalls and failures of transfers and withdrawals
    (`TransferProfile`).
    """

    ack: AckKind = AckKind.ACCEPTED
    request: Latency = Latency(median_ms=4.0, p99_ms=15.0)
    processing: Latency = Latency(median_ms=1.0, p99_ms=8.0)
    response: Latency = Latency(median_ms=4.0, p99_ms=15.0)
    stream_lag: Latency = Latency(median_ms=3.0, p99_ms=20.0)
    reject_rate: float = 0.0  # share of new orders refused with reason INJECTED
    unknown_rate: float = 0.0  # share of new orders whose answer is lost (UNKNOWN)
    unknown_applied: float = 1.0  # of those, the share the venue still applied
    unknown_apply_delay: Latency | None = None  # and when, after receipt (None: when processed)
    outages: tuple[Outage, ...] = ()
    orders_per_minute: int = 1200  # Binance USD-M default order rate limit
    clock_offset_ms: float = 0.0  # the venue's clock minus true time, to test clock sync
    client_id_reuse: ClientIdReuse = ClientIdReuse.NEVER
    transfers: TransferProfile = TransferProfile()

    def __post_init__(self) -> None:
        for name in ("reject_rate", "unknown_rate", "unknown_applied"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.orders_per_minute <= 0:
            raise ValueError(f"orders_per_minute must be positive, got {self.orders_per_minute}")

    def typical_rtt_ns(self) -> int:
        """A request's median round trip: the request and response medians."""
        return int((self.request.median_ms + self.response.median_ms) * NS_PER_MS)


PRESETS: dict[str, VenueProfile] = {
    # Ack within 1–3 ms (DESIGN §10: colocated).
    "colo": VenueProfile(
        ack=AckKind.RESULT,
        request=Latency(median_ms=0.4, p99_ms=1.0),
        processing=Latency(median_ms=0.5, p99_ms=1.5),
        response=Latency(median_ms=0.4, p99_ms=1.0),
        stream_lag=Latency(median_ms=0.5, p99_ms=2.0),
    ),
    # Same cloud region: 8–15 ms median ack, p99 ~50 ms.
    "same_region": VenueProfile(
        ack=AckKind.ACCEPTED,
        request=Latency(median_ms=5.0, p99_ms=20.0),
        processing=Latency(median_ms=1.0, p99_ms=8.0),
        response=Latency(median_ms=5.0, p99_ms=20.0),
        stream_lag=Latency(median_ms=3.0, p99_ms=20.0),
    ),
    # Another continent: 150–250 ms ack.
    "cross_region": VenueProfile(
        ack=AckKind.ACCEPTED,
        request=Latency(median_ms=90.0, p99_ms=120.0),
        processing=Latency(median_ms=1.0, p99_ms=8.0),
        response=Latency(median_ms=90.0, p99_ms=120.0),
        stream_lag=Latency(median_ms=5.0, p99_ms=30.0),
    ),
}


def preset(name: str) -> VenueProfile:
    """A named profile; the error lists the names there are."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown venue profile preset {name!r}; known presets: {', '.join(sorted(PRESETS))}"
        ) from None


class VenueConditions:
    """A profile in motion: seeded draws of latency and faults, outages and rate limits.

    Pure apart from its own seeded random state: every decision takes `now_ns` (venue time
    since the venue started, for outages) and no clock is read.
    """

    def __init__(self, profile: VenueProfile, seed: int, started_ns: int) -> None:
        self.profile = profile
        self.started_ns = started_ns
        self._rng = random.Random(seed)
        self._sent: deque[int] = deque()
        self._forced_outage: tuple[int, int, str] | None = None

    def set_profile(self, profile: VenueProfile) -> None:
        self.profile = profile

    def latency_ns(self, which: str) -> int:
        """A draw of `request`, `processing`, `response` or `stream_lag` latency."""
        lat: Latency = getattr(self.profile, which)
        return lat.sample_ns(self._rng)

    def stream_delay_ns(self) -> int:
        """A draw of an event's delay to its delivery on a stream: the venue's stream lag,
        then the trip to the client."""
        return self.latency_ns("stream_lag") + self.latency_ns("response")

    def start_outage(self, now_ns: int, duration_s: float, mode: str = "503") -> None:
        """Start an outage now (fault injection from tests and the admin API)."""
        self._forced_outage = (now_ns, now_ns + int(duration_s * 1e9), mode)

    def stop_outage(self) -> None:
        self._forced_outage = None

    def outage(self, now_ns: int) -> str | None:
        """The outage mode in force at `now_ns`, or None when the venue is up."""
        if self._forced_outage is not None:
            start, end, mode = self._forced_outage
            if start <= now_ns < end:
                return mode
        since_s = (now_ns - self.started_ns) / 1e9
        for o in self.profile.outages:
            if o.start_s <= since_s < o.start_s + o.duration_s:
                return o.mode
        return None

    def rate_limited(self, now_ns: int) -> float | None:
        """Count one order; seconds to wait if the per-minute limit is already spent."""
        window = 60 * 1_000_000_000
        while self._sent and self._sent[0] <= now_ns - window:
            self._sent.popleft()
        if len(self._sent) >= self.profile.orders_per_minute:
            return (self._sent[0] + window - now_ns) / 1e9
        self._sent.append(now_ns)
        return None

    def inject_reject(self) -> bool:
        return self.profile.reject_rate > 0 and self._rng.random() < self.profile.reject_rate

    def inject_unknown(self) -> tuple[bool, bool]:
        """(answer lost, order still applied) for one new order."""
        if self.profile.unknown_rate <= 0 or self._rng.random() >= self.profile.unknown_rate:
            return False, True
        return True, self._rng.random() < self.profile.unknown_applied

    def unknown_apply_delay_ns(self) -> int | None:
        """How long after receipt a lost-but-applied order is applied; None (and no draw,
        so that the seeds of profiles without it are unchanged): when it is processed."""
        delay = self.profile.unknown_apply_delay
        if delay is None:
            return None
        # Binance applies an order within its request's receive window or never (it refuses
        # one that reaches its engine later): the draw's tail stops there.
        return min(delay.sample_ns(self._rng), MAX_APPLY_DELAY_NS)

    def transfer_fate(self, kind: TransferKind) -> tuple[int | None, bool]:
        """(how long after it is asked a transfer of `kind` ends, in ns, or None if it stalls
        for ever; whether it then fails), drawn from the profile's `transfers`. A rate of 0
        draws nothing, so the seeds of profiles without stalls or failures are unchanged."""
        t = self.profile.transfers
        delay_s = t.delay_s(kind)
        if t.stall_rate > 0 and self._rng.random() < t.stall_rate:
            delay_s = t.stall_s
        fails = t.fail_rate > 0 and self._rng.random() < t.fail_rate
        delay_ns = delay_s * 1e9
        if math.isinf(delay_ns):  # `inf`, or so many seconds that it is the same
            return None, fails
        return int(delay_ns), fails
