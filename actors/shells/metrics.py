"""Basket, leg and hedge figures exported through Ray's metrics API (Prometheus).

Ray's metrics agent on each node serves these on its Prometheus endpoint (docs/metrics.md);
the names all start with `legato_`. Gauges follow a running basket tick by tick; the
histograms are filled from the report when a basket ends, on the same time axis as the
report itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.util import metrics

from actors.basket import BasketCoordinator
from actors.report import BasketReport

log = logging.getLogger(__name__)

# The gauges are set at most this often (seconds): Prometheus scrapes every few seconds, and
# setting six tagged gauges on every 100 ms tick cost a running basket ~5 % of its CPU.
GAUGE_EVERY_S = 1.0
# Milliseconds: from sub-millisecond colocated acks to cross-region seconds.
LATENCY_MS = [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]

_instruments: dict[str, Any] = {}


def _metric(kind: type, name: str, description: str, tags: tuple[str, ...], **kw: Any) -> Any:
    """One metric object per name for the whole process (Ray registers it once)."""
    if name not in _instruments:
        _instruments[name] = kind(name, description=description, tag_keys=tags, **kw)
    return _instruments[name]


def _gauges() -> dict[str, Any]:
    return {
        "completion": _metric(
            metrics.Gauge,
            "legato_leg_completion",
            "A leg's filled quantity over its target (0..1).",
            ("basket", "leg", "venue"),
        ),
        "skew": _metric(
            metrics.Gauge,
            "legato_basket_completion_skew",
            "Max minus min leg completion of a running basket.",
            ("basket",),
        ),
        "imbalance": _metric(
            metrics.Gauge,
            "legato_basket_imbalance_usd",
            "Net dollars a running basket's legs are out of step by (signed).",
            ("basket",),
        ),
        "hedge": _metric(
            metrics.Gauge,
            "legato_basket_hedge_usd",
            "Gross USD of the hedge desk(s) a basket is in.",
            ("basket",),
        ),
    }


def _histograms() -> dict[str, Any]:
    def hist(name: str, description: str, tags: tuple[str, ...]) -> Any:
        return _metric(metrics.Histogram, name, description, tags, boundaries=LATENCY_MS)

    return {
        "ack": hist(
            "legato_ack_latency_ms",
            "Child order sent to its ack received, by venue and ack kind (raw arrival).",
            ("venue", "ack_kind"),
        ),
        "accept": hist(
            "legato_accept_latency_ms",
            "Child order sent to the venue's accept stamp, on the basket's time axis.",
            ("venue",),
        ),
        "reaction": hist(
            "legato_hedge_reaction_ms",
            "A fill seen by a leg to the hedge order it caused being sent.",
            (),
        ),
        "launch": hist(
            "legato_launch_skew_ms",
            "First to last leg's first venue accept of a basket.",
            (),
        ),
    }


class BasketMetrics:
    """What one basket actor exports. Metric failures are logged once, never raised: a
    monitoring outage must not stop a basket."""

    def __init__(self, basket_id: str) -> None:
        self.basket_id = basket_id
        self._broken = False
        self._observed = float("-inf")  # monotonic time the gauges were last set

    def observe(self, core: BasketCoordinator, hedge_usd: float, *, force: bool = False) -> None:
        """The gauges, called on each coordinator tick; set at most every `GAUGE_EVERY_S`
        (`force`: now, as the basket's last word)."""
        now = time.monotonic()
        if self._broken or (not force and now - self._observed < GAUGE_EVERY_S):
            return
        self._observed = now
        try:
            g = _gauges()
            tags = {"basket": self.basket_id}
            for leg in core.basket.legs:
                g["completion"].set(
                    core.legs[leg.leg_id].progress,
                    tags={**tags, "leg": leg.leg_id, "venue": leg.venue},
                )
            g["skew"].set(core.completion_skew(), tags=tags)
            g["imbalance"].set(sum(core.imbalance().values()), tags=tags)
            g["hedge"].set(hedge_usd, tags=tags)
        except Exception:
            self._give_up()

    def finished(self, report: BasketReport) -> None:
        """The latency histograms, from the finished basket's report (basket axis)."""
        if self._broken:
            return
        try:
            h = _histograms()
            for leg in report.legs:
                for child in leg.child_orders:
                    if child.ack_ns is not None and child.ack_kind is not None:
                        h["ack"].observe(
                            (child.ack_ns - child.sent_ns) / 1e6,
                            tags={"venue": leg.venue, "ack_kind": child.ack_kind.value},
                        )
                    if child.venue_accept_ns is not None:
                        h["accept"].observe(
                            (child.venue_accept_ns - child.sent_ns) / 1e6,
                            tags={"venue": leg.venue},
                        )
            if report.hedge is not None:
                for ns in report.hedge.reaction_ns:
                    h["reaction"].observe(ns / 1e6)
            if report.launch_skew_ns is not None:
                h["launch"].observe(report.launch_skew_ns / 1e6)
        except Exception:
            self._give_up()

    def _give_up(self) -> None:
        self._broken = True
        log.warning(
            "basket %s: metrics export failed; no more metrics", self.basket_id, exc_info=True
        )
