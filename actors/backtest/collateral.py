"""The collateral runner's port in the backtest: the venues' accounts and wallets on
simulated time.

The basket's collateral is reserved as live (`CollateralRunner`, the same margin book and
the same routing), against the simulated exchanges' own accounts. Account reads answer at
once: live they take a venue round trip before the basket arms, which the backtest leaves
out so that a basket that needs no transfer fires at the instant it did before collateral
was checked here (the scenario figures stay comparable). Transfers take what the venue's
profile draws (`VenueProfile.transfers`: seconds inside a venue, minutes between venues,
a chance to stall or fail) and their answers a venue round trip; a withdrawal is delivered
to the venue its `sim-local://<venue>/<account>` address names when the exchange sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from actors.backtest.loop import Loop, LoopTimer
from actors.backtest.venue import Venue
from actors.report import TransferView
from actors.routing import Step
from actors.runners.collateral import AccountAnswer
from actors.runners.funding import TransferAnswer
from venues.errors import VenueError
from venues.model import TransferKind, TransferReceipt, WalletKind
from venues.sim.exchange import Wallet, WithdrawalSent
from venues.sim.host import LOCAL_SCHEME, parse_local_address, transfer_receipt

_WALLET = {WalletKind.MARGIN: Wallet.FUTURES, WalletKind.SPOT: Wallet.SPOT}


class BacktestCollateral:
    """`CollateralPort` over the backtest's venues (see the module docstring)."""

    def __init__(self, loop: Loop, venues: Mapping[str, Venue]) -> None:
        self.loop = loop
        self.venues = dict(venues)
        self.views: dict[str, TransferView] = {}  # client transfer id → its newest view
        for venue in self.venues.values():
            venue.on_withdrawal = self._deliver

    # -- the clock ---------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.loop.now

    def call_at(self, t_ns: int, fn: Callable[[], None], *, precise: bool = False) -> LoopTimer:
        return self.loop.call_at(t_ns, fn)

    # -- accounts ----------------------------------------------------------------------------
    def read_account(self, venue_name: str, then: Callable[[AccountAnswer], None]) -> None:
        venue = self.venues[venue_name]
        then(venue.exchange.account_snapshot(venue.account_id, self.loop.now))

    # -- wallets -----------------------------------------------------------------------------
    def send_transfer(
        self, step: Step, client_transfer_id: str, then: Callable[[TransferAnswer], None]
    ) -> None:
        venue = self.venues[step.venue]
        now = self.loop.now
        delay_ns, fails = venue.conditions.transfer_fate(step.kind)
        complete_at = None if delay_ns is None else now + delay_ns
        answer: TransferAnswer
        try:
            if step.kind is TransferKind.INTERNAL:
                record = venue.exchange.transfer(
                    venue.account_id,
                    step.asset,
                    step.amount,
                    _WALLET[step.source.kind],
                    _WALLET[step.destination.kind],
                    now,
                    complete_at_ns=complete_at,
                    fails=fails,
                    client_id=client_transfer_id,
                )
            else:
                to = self.venues[step.destination.venue]
                address = f"{LOCAL_SCHEME}://{to.name}/{to.account_id}"
                record = venue.exchange.withdraw(
                    venue.account_id,
                    step.asset,
                    step.amount,
                    address,
                    client_transfer_id,
                    now,
                    complete_at_ns=complete_at,
                    fails=fails,
                )
            answer = transfer_receipt(venue.name, record)
        except VenueError as e:
            answer = e
        self.loop.after(venue.typical_rtt_ns, then, answer)

    def transfer_status(
        self, receipt: TransferReceipt, then: Callable[[TransferAnswer], None]
    ) -> None:
        venue = self.venues[receipt.venue]
        found = venue.exchange.transfers(
            venue.account_id,
            receipt.kind,
            client_id=receipt.client_transfer_id or None,
            transfer_id=int(receipt.transfer_id) if receipt.transfer_id else None,
        )
        answer: TransferAnswer = (
            transfer_receipt(venue.name, found[-1])
            if found
            else VenueError(f"no transfer {receipt.client_transfer_id}", venue=venue.name)
        )
        self.loop.after(venue.typical_rtt_ns, then, answer)

    def transfer_changed(self, view: TransferView) -> None:
        self.views[view.client_transfer_id] = view

    def transfer_venues(self) -> tuple[frozenset[str], frozenset[str]]:
        names = frozenset(self.venues)
        return names, names

    def _deliver(self, sent: WithdrawalSent) -> None:
        """A withdrawal left its venue: the deposit lands at the venue it names, after
        that venue's stream delay."""
        name, account = parse_local_address(sent.address)
        to = self.venues[name]

        def land() -> None:
            to.exchange.credit_deposit(
                account, sent.asset, sent.amount, sent.tx_id, self.loop.now, address=sent.address
            )

        self.loop.after(to.stream_delay(), land)
