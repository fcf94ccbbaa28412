"""The margin book: per-venue collateral need, all-or-nothing reservations and their cure.

The CollateralActor's pure core (DESIGN §4, §5.2). It knows the latest available figure of
every venue account, estimates what a basket's legs will ask of each venue, and reserves
that collateral for the basket on every venue at once or on none, so that concurrent
baskets never spend the same margin twice. A refusal carries the per-venue shortfall and
the transfers between venues that would cure it.

Collateral sits in pools, one per (venue, asset). A perpetual leg draws on the venue's
margin pool, `USD` (the margin wallet's asset, USDT on the simulated venues, counted one for
one in dollars). A spot leg draws on the venue's spot wallet, a separate account: a buy on
its quote asset (the notional and the fee), a sell on its base asset; those pools are named
`spot:<asset>` (`spot_pool`) and listed with the basket's `holdings`.

What the book does not know: the venue's own reckoning moves as orders land and fill, so
between an order reaching the venue and the basket shrinking its reservation (`adjust`)
that margin counts twice, once in the venue's lower available figure and once here. The
error is on the safe side; shells shrink a reservation as legs fill or are cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from actors.fees import USD_ASSETS
from venues.model import AccountSnapshot, Instrument, InstrumentKind, Side

USD = "USD"  # a venue's margin pool: its margin asset (USDT), counted in dollars
MARGIN_ASSET = "USDT"  # what the margin pool holds, and moves to and from the spot wallet
SPOT = "spot:"  # the prefix of a venue's spot-wallet pools


def spot_pool(asset: str) -> str:
    """The pool of `asset` in a venue's spot wallet."""
    return SPOT + asset


CENT = Decimal("0.01")
_ZERO = Decimal(0)
_BP = Decimal(10_000)

Pool = tuple[str, str]  # (venue, asset)


class CollateralError(ValueError):
    """A caller bug: a malformed need, an unknown basket. Refusals are `Refused`, not this."""


class LegNeed(msgspec.Struct, frozen=True, kw_only=True):
    """One leg as the margin book sees it.

    `price` is the worst price the leg expects to trade at (its limit, or the arrival price
    moved by the maximum slippage); the book's safety buffer covers moves beyond it before
    the orders land. `leverage` is the venue account's leverage for perpetuals (ignored for
    spot).
    """

    venue: str
    instrument: Instrument
    side: Side
    qty: Decimal
    price: Decimal
    leverage: Decimal | int = 1
    leg_id: str = ""

    @property
    def pool(self) -> Pool:
        """The pool the leg draws on: its venue's margin for a perpetual; for spot, the
        quote asset a buy pays with or the base asset a sell delivers."""
        inst = self.instrument
        if inst.kind is InstrumentKind.PERP:
            return (self.venue, USD)
        return (self.venue, spot_pool(inst.quote if self.side is Side.BUY else inst.base))


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    """Move `amount` of `asset` from one venue account to another; with `from_asset`, from
    the venue's other wallet (`spot:USDT` into the margin pool `USD`, or back)."""

    asset: str
    from_venue: str
    to_venue: str
    amount: Decimal
    from_asset: str = ""

    @property
    def message(self) -> str:
        what = fmt_amount(self.amount, self.asset)
        if self.from_asset:
            wallets = {USD: "margin wallet", spot_pool(MARGIN_ASSET): "spot wallet"}
            return (
                f"move {what} on {self.to_venue} from its {wallets[self.from_asset]} to its "
                f"{wallets[self.asset]}"
            )
        return f"move {what} from {self.from_venue} to {self.to_venue}"


class Shortfall(msgspec.Struct, frozen=True, kw_only=True):
    """Why one pool cannot hold a basket's need: `short = need − free`, with
    `free = available − reserved_by_others`."""

    venue: str
    asset: str
    need: Decimal
    available: Decimal
    reserved_by_others: Decimal
    free: Decimal
    short: Decimal

    @property
    def message(self) -> str:
        a = self.asset
        return (
            f"venue {self.venue} needs {fmt_amount(self.need, a)} but "
            f"{fmt_amount(self.available, a)} is "
            f"available ({fmt_amount(self.reserved_by_others, a)} reserved by other baskets, "
            f"{fmt_amount(self.free, a)} free): short {fmt_amount(self.short, a)}"
        )


class Reserved(msgspec.Struct, frozen=True, kw_only=True, tag="reserved"):
    """Collateral held for a basket: `needs` in USD per venue, `holdings` of base assets
    per venue (spot sells), both as currently held."""

    basket_id: str
    needs: dict[str, Decimal]
    holdings: dict[str, dict[str, Decimal]] = {}
    reserved_ns: int

    def total(self, asset: str = USD) -> Decimal:
        """What the reservation holds of `asset` over every venue."""
        if asset == USD:
            return sum(self.needs.values(), _ZERO)
        return sum((h.get(asset, _ZERO) for h in self.holdings.values()), _ZERO)


class Refused(msgspec.Struct, frozen=True, kw_only=True, tag="refused"):
    """Nothing was reserved (and a reservation the basket already held is unchanged).

    `shortfalls` name each pool that cannot hold its need; `transfers` would cure them,
    fewest first (one per short pool when a single venue can cover it); `missing` is what
    no transfer can find, per asset, when the free collateral everywhere is not enough;
    `unknown_venues` have no account figure, or one older than the book's `max_age_ns`,
    so nothing can be promised on them until they are refreshed. `reason` says it all in
    one sentence. A refusal for another cause (the journal, a transfer that failed) names
    none of them.
    """

    basket_id: str
    shortfalls: list[Shortfall] = []
    transfers: list[Transfer] = []
    missing: dict[str, Decimal] = {}
    unknown_venues: list[str] = []
    reason: str
    ts_ns: int

    @property
    def missing_usd(self) -> Decimal:
        return self.missing.get(USD, _ZERO)


ReserveResult = Reserved | Refused


class PoolState(msgspec.Struct, frozen=True, kw_only=True):
    """One pool in a `MarginBookSnapshot`. `free` is negative when the venue's figure
    fell below what is already promised (a loss, a withdrawal): nothing more is granted
    there until it recovers."""

    venue: str
    asset: str
    available: Decimal
    reserved: Decimal
    free: Decimal
    updated_ns: int


class MarginBookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every pool and every reservation, for reports, checkpoints and dashboards."""

    pools: list[PoolState]
    reservations: list[Reserved]
    ts_ns: int


class MarginBook:
    """Per-venue collateral: what is available, what is promised to which basket.

    `buffer` inflates every need for the price moves that happen before the orders land
    (0.10 = 10 %); `taker_fee_bps` is the fee assumed on the whole notional (every child
    order may take); `max_age_ns`, when set, refuses to promise collateral on a venue
    whose last account figure is older than that.
    """

    def __init__(
        self,
        *,
        buffer: Decimal = Decimal("0.10"),
        taker_fee_bps: Decimal = Decimal(5),
        max_age_ns: int | None = None,
    ) -> None:
        if buffer < 0:
            raise CollateralError(f"buffer must be at least 0, got {buffer}")
        if taker_fee_bps < 0:
            raise CollateralError(f"taker_fee_bps must be at least 0, got {taker_fee_bps}")
        self.buffer = Decimal(buffer)
        self.taker_rate = Decimal(taker_fee_bps) / _BP
        self.max_age_ns = max_age_ns
        self._available: dict[Pool, Decimal] = {}
        self._updated_ns: dict[Pool, int] = {}  # when each pool's figure was last known
        self._snapshot_ns: dict[str, int] = {}  # when each venue last listed all its assets
        self._holds: dict[str, dict[Pool, Decimal]] = {}
        self._results: dict[str, Reserved] = {}

    # --- what the venues have ----------------------------------------------------------
    def update_account(
        self, venue: str, available_usd: Decimal, now_ns: int, *, asset: str = USD
    ) -> bool:
        """Record a venue's latest available figure for `asset` (USD margin by default).

        A figure older than the one already held is ignored (returns False), so a late
        account reply cannot roll the book back.
        """
        pool = (venue, asset)
        if now_ns < self._updated_ns.get(pool, now_ns):
            return False
        self._available[pool] = Decimal(available_usd)
        self._updated_ns[pool] = now_ns
        return True

    def update_from_snapshot(self, snapshot: AccountSnapshot, now_ns: int) -> bool:
        """Record a venue's `AccountSnapshot`: its available margin and its spot wallet.

        Spot assets the snapshot does not list are known to be at zero there.
        """
        venue = snapshot.venue
        if now_ns < self._snapshot_ns.get(venue, now_ns):
            return False
        self._snapshot_ns[venue] = now_ns
        figures = {USD: snapshot.available_margin}
        figures |= {spot_pool(b.asset): b.available for b in snapshot.spot_balances}
        for v, asset in list(self._available):
            if v == venue and asset not in figures:
                figures[asset] = _ZERO
        for asset, amount in figures.items():
            self._available[(venue, asset)] = amount
            self._updated_ns[(venue, asset)] = now_ns
        return True

    # --- what a basket needs -----------------------------------------------------------
    def need(self, legs: Sequence[LegNeed]) -> dict[str, Decimal]:
        """Initial margin in USD per venue (perpetuals), with fees and the buffer, rounded
        up to a cent: |qty|·price·contract_size/leverage plus the taker fee on the notional,
        assuming every leg grows its position (the venue asks less of a leg that closes one,
        never more). Spot legs draw on the spot wallet instead (`holdings_need`).
        """
        out: dict[str, Decimal] = {}
        for leg in legs:
            notional = self._notional(leg)
            if leg.instrument.kind is not InstrumentKind.PERP:
                continue
            margin = notional / Decimal(leg.leverage)
            raw = (margin + notional * self.taker_rate) * (1 + self.buffer)
            out[leg.venue] = out.get(leg.venue, _ZERO) + raw
        return {v: ceil_to(n, CENT) for v, n in out.items() if n > 0}

    def holdings_need(self, legs: Sequence[LegNeed]) -> dict[str, dict[str, Decimal]]:
        """Spot-wallet pools per venue: a buy's quote asset (the notional plus the taker fee,
        with the buffer, rounded up to a cent), a sell's base asset (no buffer: the price
        does not move it; its fee comes out of what it receives)."""
        out: dict[str, dict[str, Decimal]] = {}
        for leg in legs:
            notional = self._notional(leg)
            inst = leg.instrument
            if inst.kind is not InstrumentKind.SPOT or leg.qty <= 0:
                continue
            per = out.setdefault(leg.venue, {})
            if leg.side is Side.BUY:
                pool = spot_pool(inst.quote)
                cost = (notional + notional * self.taker_rate) * (1 + self.buffer)
                per[pool] = per.get(pool, _ZERO) + cost
            else:
                pool = spot_pool(inst.base)
                per[pool] = per.get(pool, _ZERO) + leg.qty * inst.contract_size
        return {
            venue: {p: ceil_to(n, pool_quantum(p)) for p, n in per.items()}
            for venue, per in out.items()
        }

    # --- promises ----------------------------------------------------------------------
    def reserve(
        self,
        basket_id: str,
        needs: Mapping[str, Decimal],
        now_ns: int,
        *,
        holdings: Mapping[str, Mapping[str, Decimal]] | None = None,
    ) -> ReserveResult:
        """Hold `needs` (USD per venue) and `holdings` (base asset per venue) for a basket,
        on every venue or on none.

        Declarative and idempotent: the basket's reservation becomes exactly what is asked.
        Asking again for what it already holds returns the same `Reserved`; asking for
        something else re-sizes it: pools where it asks for no more than it holds are
        granted as they are (as `adjust` grants a shrink), the others are checked against
        what the other baskets hold, and a refusal leaves the old reservation as it was.
        """
        wanted = pools_of(needs, holdings)
        current = self._results.get(basket_id)
        if current is not None and self._holds[basket_id] == wanted:
            return current
        shortfalls: list[Shortfall] = []
        unknown: set[str] = set()
        own = self._holds.get(basket_id, {})
        for pool, amount in wanted.items():
            if amount <= own.get(pool, _ZERO):
                continue  # not more than the basket already holds there: nothing to check
            if not self._known(pool, now_ns):
                unknown.add(pool[0])
                continue
            gap = self._shortfall(basket_id, pool, amount)
            if gap is not None:
                shortfalls.append(gap)
        if shortfalls or unknown:
            return self._refuse(basket_id, wanted, shortfalls, sorted(unknown), now_ns)
        reserved_ns = current.reserved_ns if current is not None else now_ns
        return self._hold(basket_id, wanted, reserved_ns)

    def reserve_legs(self, basket_id: str, legs: Sequence[LegNeed], now_ns: int) -> ReserveResult:
        """`reserve` what `need` and `holdings_need` say the legs require."""
        return self.reserve(basket_id, self.need(legs), now_ns, holdings=self.holdings_need(legs))

    def adjust(
        self,
        basket_id: str,
        venue: str,
        new_need: Decimal,
        *,
        asset: str = USD,
        now_ns: int | None = None,
    ) -> ReserveResult:
        """Set what a basket holds on one pool: shrink as legs fill or are cut (always
        granted), or grow (granted only if the pool's free collateral covers the growth;
        otherwise `Refused` and nothing changes). `now_ns` enables the staleness check
        on growth.
        """
        if basket_id not in self._holds:
            raise CollateralError(
                f"basket {basket_id} holds no reservation to adjust (never reserved, or "
                f"released); reserve it first"
            )
        new_need = _amount(new_need, f"adjust({basket_id!r}, {venue!r}) new_need")
        pool = (venue, asset)
        held = self._holds[basket_id]
        if new_need == held.get(pool, _ZERO):
            return self._results[basket_id]
        wanted = {p: n for p, n in held.items() if p != pool}
        if new_need > 0:
            wanted[pool] = new_need
        if new_need > held.get(pool, _ZERO):
            ts = now_ns if now_ns is not None else self._seen(pool) or 0
            if not self._known(pool, ts):
                return self._refuse(basket_id, wanted, [], [venue], ts)
            gap = self._shortfall(basket_id, pool, new_need)
            if gap is not None:
                return self._refuse(basket_id, wanted, [gap], [], ts)
        return self._hold(basket_id, wanted, self._results[basket_id].reserved_ns)

    def release(self, basket_id: str) -> Reserved | None:
        """Give back everything a basket holds; returns what it held (None if nothing:
        releasing twice, or a basket that was never granted, is harmless)."""
        self._holds.pop(basket_id, None)
        return self._results.pop(basket_id, None)

    def restore(self, reserved: Reserved) -> None:
        """Hold again what a journaled reservation held (the collateral actor restarted):
        as granted then, checked against the venues' figures by the next reservation."""
        wanted: dict[Pool, Decimal] = {(v, USD): amount for v, amount in reserved.needs.items()}
        for venue, assets in reserved.holdings.items():
            wanted.update({(venue, asset): amount for asset, amount in assets.items()})
        self._hold(reserved.basket_id, wanted, reserved.reserved_ns)

    # --- views -------------------------------------------------------------------------
    def reservation(self, basket_id: str) -> Reserved | None:
        return self._results.get(basket_id)

    def available(self, venue: str, asset: str = USD) -> Decimal | None:
        """The venue's last available figure (None if it never reported one)."""
        if self._seen((venue, asset)) is None:
            return None
        return self._available.get((venue, asset), _ZERO)

    def reserved(self, venue: str, asset: str = USD, *, excluding: str | None = None) -> Decimal:
        """What all baskets (but `excluding`) hold on a pool."""
        pool = (venue, asset)
        return sum((h.get(pool, _ZERO) for b, h in self._holds.items() if b != excluding), _ZERO)

    def spare(
        self, basket_id: str, wanted: Mapping[Pool, Decimal] | None = None
    ) -> dict[Pool, Decimal]:
        """Every known pool's collateral left for `basket_id` to move elsewhere: available
        less what the other baskets hold and what the basket itself wants there (`wanted`).
        Negative where the pool is already short."""
        wanted = wanted or {}
        pools = set(self._available) | set(wanted)
        return {
            (v, a): self._available.get((v, a), _ZERO)
            - self.reserved(v, a, excluding=basket_id)
            - wanted.get((v, a), _ZERO)
            for v, a in pools
        }

    def free(self, venue: str, asset: str = USD) -> Decimal:
        """Available minus reserved; negative when the venue fell below its promises."""
        return (self.available(venue, asset) or _ZERO) - self.reserved(venue, asset)

    def snapshot(self, now_ns: int) -> MarginBookSnapshot:
        held = {p for h in self._holds.values() for p in h}
        pools = sorted(set(self._available) | held)
        return MarginBookSnapshot(
            pools=[
                PoolState(
                    venue=v,
                    asset=a,
                    available=self.available(v, a) or _ZERO,
                    reserved=self.reserved(v, a),
                    free=self.free(v, a),
                    updated_ns=self._seen((v, a)) or 0,
                )
                for v, a in pools
            ],
            reservations=[self._results[b] for b in sorted(self._results)],
            ts_ns=now_ns,
        )

    # --- internals ---------------------------------------------------------------------
    def _notional(self, leg: LegNeed) -> Decimal:
        where = f"leg on {leg.venue} {leg.instrument.symbol}"
        if not leg.qty.is_finite() or leg.qty < 0:
            raise CollateralError(f"{where}: qty must be a finite number ≥ 0, got {leg.qty}")
        if not leg.price.is_finite() or leg.price <= 0:
            raise CollateralError(f"{where}: price must be a finite number > 0, got {leg.price}")
        if leg.instrument.kind is InstrumentKind.PERP and not Decimal(leg.leverage) >= 1:
            raise CollateralError(f"{where}: leverage must be at least 1, got {leg.leverage}")
        return leg.instrument.notional(leg.price, abs(leg.qty))

    def _seen(self, pool: Pool) -> int | None:
        """When the pool's figure was last known: its own update, or for a base asset
        never listed, the venue's last full snapshot (which says it holds none)."""
        seen = self._updated_ns.get(pool)
        if seen is None and pool[1] != USD:
            seen = self._snapshot_ns.get(pool[0])
        return seen

    def _known(self, pool: Pool, now_ns: int) -> bool:
        seen = self._seen(pool)
        if seen is None:
            return False
        return self.max_age_ns is None or now_ns - seen <= self.max_age_ns

    def _shortfall(self, basket_id: str, pool: Pool, amount: Decimal) -> Shortfall | None:
        venue, asset = pool
        available = self._available.get(pool, _ZERO)
        others = self.reserved(venue, asset, excluding=basket_id)
        free = available - others
        if free >= amount:
            return None
        return Shortfall(
            venue=venue,
            asset=asset,
            need=amount,
            available=available,
            reserved_by_others=others,
            free=free,
            short=amount - free,
        )

    def _hold(self, basket_id: str, wanted: dict[Pool, Decimal], reserved_ns: int) -> Reserved:
        needs, holdings = split_pools(wanted)
        result = Reserved(
            basket_id=basket_id, needs=needs, holdings=holdings, reserved_ns=reserved_ns
        )
        self._holds[basket_id] = dict(wanted)
        self._results[basket_id] = result
        return result

    def _refuse(
        self,
        basket_id: str,
        wanted: Mapping[Pool, Decimal],
        shortfalls: list[Shortfall],
        unknown: list[str],
        now_ns: int,
    ) -> Refused:
        transfers, missing = self._cure(basket_id, wanted, shortfalls, now_ns)
        parts = [s.message for s in shortfalls]
        parts += [
            f"venue {v} has no account figure"
            + ("" if self.max_age_ns is None else f" younger than {self.max_age_ns / 1e9:g} s")
            + "; refresh it"
            for v in unknown
        ]
        reason = f"basket {basket_id}: collateral refused: " + "; ".join(parts)
        if transfers:
            reason += "; cure: " + ", ".join(t.message for t in transfers)
        if missing:
            reason += "; missing overall: " + ", ".join(
                fmt_amount(n, a) for a, n in sorted(missing.items())
            )
        return Refused(
            basket_id=basket_id,
            shortfalls=shortfalls,
            transfers=transfers,
            missing=missing,
            unknown_venues=unknown,
            reason=reason,
            ts_ns=now_ns,
        )

    def _cure_inside(
        self,
        basket_id: str,
        wanted: Mapping[Pool, Decimal],
        shortfalls: Iterable[Shortfall],
        now_ns: int,
        transfers: list[Transfer],
    ) -> list[Shortfall]:
        """First, each short pool from its venue's other wallet (spot ↔ margin: seconds at
        the venue, no withdrawal); what that leaves short goes to `_cure`'s transfers
        between venues."""
        left: list[Shortfall] = []
        for s in shortfalls:
            link = _linked(s.asset)
            short = ceil_to(s.short, CENT)
            if link is not None and self._known((s.venue, link), now_ns):
                pool = (s.venue, link)
                spare = floor_to(
                    self._available.get(pool, _ZERO)
                    - self.reserved(s.venue, link, excluding=basket_id)
                    - wanted.get(pool, _ZERO),
                    CENT,
                )
                move = min(short, spare)
                if move > 0:
                    transfers.append(
                        Transfer(
                            asset=s.asset,
                            from_venue=s.venue,
                            to_venue=s.venue,
                            amount=move,
                            from_asset=link,
                        )
                    )
                    short -= move
            if short > 0:
                left.append(msgspec.structs.replace(s, short=short))
        return left

    def _cure(
        self,
        basket_id: str,
        wanted: Mapping[Pool, Decimal],
        shortfalls: Iterable[Shortfall],
        now_ns: int,
    ) -> tuple[list[Transfer], dict[str, Decimal]]:
        """Transfers from pools with spare collateral to the short ones, per asset.

        Greedy: the largest shortfall first, each from the smallest single surplus that
        covers it (one transfer), else from the largest surpluses in turn. Finding the true
        minimum number of transfers is a subset-sum problem; this reaches one transfer per
        short pool whenever any single venue can cover it. Dollar amounts are rounded up
        to the cent on the short side and down on the surplus side, so applying the
        transfers always cures.
        """
        transfers: list[Transfer] = []
        missing: dict[str, Decimal] = {}
        by_asset: dict[str, list[Shortfall]] = {}
        for s in self._cure_inside(basket_id, wanted, shortfalls, now_ns, transfers):
            by_asset.setdefault(s.asset, []).append(s)
        for asset, shorts in sorted(by_asset.items()):
            quantum = pool_quantum(asset)
            surplus: dict[str, Decimal] = {}
            for venue, a in self._available:
                if a != asset or not self._known((venue, a), now_ns):
                    continue
                spare = (
                    self._available[(venue, a)]
                    - self.reserved(venue, asset, excluding=basket_id)
                    - wanted.get((venue, asset), _ZERO)
                )
                spare = floor_to(spare, quantum)
                if spare > 0:
                    surplus[venue] = spare
            gap = _ZERO
            for s in sorted(shorts, key=lambda s: (-s.short, s.venue)):
                left = ceil_to(s.short, quantum)
                fits = [v for v, n in surplus.items() if n >= left]
                if fits:
                    sources = [min(fits, key=lambda v: (surplus[v], v))]
                else:
                    sources = sorted(surplus, key=lambda v: (-surplus[v], v))
                for src in sources:
                    move = min(left, surplus[src])
                    transfers.append(
                        Transfer(asset=asset, from_venue=src, to_venue=s.venue, amount=move)
                    )
                    surplus[src] -= move
                    if surplus[src] == 0:
                        del surplus[src]
                    left -= move
                    if left == 0:
                        break
                gap += left
            if gap > 0:
                missing[asset] = gap
        return transfers, missing


def _linked(pool_asset: str) -> str | None:
    """A venue's other wallet that an internal transfer reaches from this pool: the margin
    pool and the spot wallet's margin asset, each the other's."""
    return {USD: spot_pool(MARGIN_ASSET), spot_pool(MARGIN_ASSET): USD}.get(pool_asset)


def split_pools(
    pools: Mapping[Pool, Decimal],
) -> tuple[dict[str, Decimal], dict[str, dict[str, Decimal]]]:
    """Pools as `reserve` takes them: USD margin per venue, spot-wallet pools per venue
    (`pools_of` the other way)."""
    needs: dict[str, Decimal] = {}
    holdings: dict[str, dict[str, Decimal]] = {}
    for (venue, asset), amount in sorted(pools.items()):
        if asset == USD:
            needs[venue] = amount
        else:
            holdings.setdefault(venue, {})[asset] = amount
    return needs, holdings


def pools_of(
    needs: Mapping[str, Decimal], holdings: Mapping[str, Mapping[str, Decimal]] | None
) -> dict[Pool, Decimal]:
    out: dict[Pool, Decimal] = {}
    for venue, value in needs.items():
        amount = _amount(value, f"needs[{venue!r}]")
        if amount > 0:
            out[(venue, USD)] = amount
    for venue, assets in (holdings or {}).items():
        for asset, value in assets.items():
            amount = _amount(value, f"holdings[{venue!r}][{asset!r}]")
            if amount > 0:
                out[(venue, asset)] = amount
    return out


def _amount(value: Decimal | int | str, field: str) -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise CollateralError(f"{field} must be a finite amount ≥ 0, got {value}")
    return amount


def ceil_to(value: Decimal, quantum: Decimal | None) -> Decimal:
    if quantum is None:
        return value
    return (value / quantum).to_integral_value(rounding=ROUND_CEILING) * quantum


def floor_to(value: Decimal, quantum: Decimal | None) -> Decimal:
    if quantum is None:
        return value
    return (value / quantum).to_integral_value(rounding=ROUND_FLOOR) * quantum


def pool_quantum(pool_asset: str) -> Decimal | None:
    """Dollar pools are counted to the cent; others exactly."""
    asset = pool_asset.removeprefix(SPOT)
    return CENT if asset == USD or asset in USD_ASSETS else None


def fmt_amount(amount: Decimal, asset: str) -> str:
    if asset == USD:
        return f"{amount:,.2f} USD"
    wallet = " (spot wallet)" if asset.startswith(SPOT) else ""
    asset = asset.removeprefix(SPOT)
    if asset in USD_ASSETS:
        return f"{amount:,.2f} {asset}{wallet}"
    return f"{amount.normalize():f} {asset}{wallet}"
