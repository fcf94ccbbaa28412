"""`ReportJoin`: ccxt's two private streams (order updates, the account's trades) as legato's
execution reports: cumulative state from the orders, each fill once with its fee; pure.

ccxt.pro keeps one entry per order and hands over the newest: two updates of an order that
arrive together (an IOC sweeping two levels) come out as one, and the first trade's details
would be lost. Its trade stream keeps every trade, with fee, fee asset and maker/taker. So a
report's state comes from the order stream and its `last_fill` from the trade stream: a trade
is shown as soon as an order state that includes it is known (held until then), and every
report carries the order's fees as the sum of its trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from venues.binance.parse import FeeLedger
from venues.model import ExecutionReport, Fill

_KEPT = 50_000  # orders followed at once (the oldest are forgotten first)

Key = tuple[str, str]  # (symbol, venue order id)


@dataclass
class _Followed:
    latest: ExecutionReport | None = None  # the order's most advanced known state
    pending: list[Fill] = field(default_factory=list)  # trades ahead of any known state
    shown: set[str] = field(default_factory=set)  # trade ids already given as a last_fill
    fee_asset: str = ""


class ReportJoin:
    """Joins order states and trades into reports; `fees` is the per-order fee ledger that
    REST answers are completed from too."""

    def __init__(self, kept: int = _KEPT) -> None:
        self.fees = FeeLedger(max_orders=kept)
        self._orders: dict[Key, _Followed] = {}
        self._kept = kept

    def _followed(self, key: Key) -> _Followed:
        followed = self._orders.get(key)
        if followed is None:
            if len(self._orders) >= self._kept:
                del self._orders[next(iter(self._orders))]
            followed = self._orders[key] = _Followed()
        return followed

    def add_trade(self, symbol: str, order_id: str, fill: Fill) -> None:
        """A trade of the order as a REST answer lists it: counted in its fees, not shown."""
        self.fees.add(symbol, order_id, fill.trade_id, fill.quantity, fill.fee)
        followed = self._followed((symbol, order_id))
        followed.fee_asset = followed.fee_asset or fill.fee_asset

    def complete(self, report: ExecutionReport) -> bool:
        """Whether every trade up to the report's fill is in the ledger."""
        return self.fees.complete(report)

    def with_fees(self, report: ExecutionReport) -> ExecutionReport:
        """The report with the order's fees as its trades add up (and their asset)."""
        if not report.order_id:
            return report
        fee = self.fees.fee(report.symbol, report.order_id)
        followed = self._orders.get((report.symbol, report.order_id))
        asset = followed.fee_asset if followed is not None else ""
        if fee == report.cum_fee and (asset == report.fee_asset or not asset):
            return report
        return msgspec.structs.replace(report, cum_fee=fee, fee_asset=asset or report.fee_asset)

    def on_order(self, report: ExecutionReport) -> list[ExecutionReport]:
        """An order's state (from the stream, or a REST read while resynchronising): the
        reports to emit, one per held trade the state now includes, else the state alone."""
        if not report.order_id:
            return [report]
        key = (report.symbol, report.order_id)
        followed = self._followed(key)
        latest = followed.latest
        if latest is None or report.cum_filled >= latest.cum_filled:
            followed.latest = report
        report = self.with_fees(report)
        if followed.pending and report.cum_filled >= self.fees.filled(*key):
            held, followed.pending = followed.pending, []
            followed.shown.update(f.trade_id for f in held)
            return [msgspec.structs.replace(report, last_fill=f) for f in held]
        return [report]

    def on_trade(self, symbol: str, order_id: str, fill: Fill) -> list[ExecutionReport]:
        """One of the account's trades from the stream: the report that shows it, once its
        order's state includes it (held until then); nothing for a trade shown already."""
        key = (symbol, order_id)
        self.add_trade(symbol, order_id, fill)
        followed = self._followed(key)
        if fill.trade_id in followed.shown or any(
            f.trade_id == fill.trade_id for f in followed.pending
        ):
            return []
        latest = followed.latest
        if latest is None or latest.cum_filled < self.fees.filled(*key):
            followed.pending.append(fill)
            return []
        followed.shown.add(fill.trade_id)
        return [msgspec.structs.replace(self.with_fees(latest), last_fill=fill)]

    def forget(self, symbol: str, order_id: str) -> None:
        self._orders.pop((symbol, order_id), None)
        self.fees.forget(symbol, order_id)
