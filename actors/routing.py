"""Collateral routing: the transfers that carry spare collateral to the pools a basket lacks.

The collateral actor's planner (DESIGN §5 step 2), a pure core: no I/O, no clock. Given how
much each short pool lacks and what every pool has to spare, `plan_transfers` returns a
`Plan` of venue requests that cures every shortfall, or a `NoRoute` saying what cannot be
found where, and why. Carrying the plan out, and waiting for it, is the caller's business.

**Pools and wallets.** Collateral sits in the margin book's pools `(venue, asset)`
(`actors.margin`). `USD` is a venue's margin (USD-M) wallet, whose asset is the rules'
`margin_asset` (USDT), counted in dollars; `spot:X` is asset X in its spot wallet. A pool
can only be fed from a pool of the same asset (nothing is converted): a venue's `USD` and
its `spot:<margin_asset>` are linked by an internal transfer (1 step); the same asset on two
venues by a withdrawal from one spot wallet to the other (withdrawals leave and deposits land
in spot wallets, as on Binance). So a `Move` is 1 to 3 `Step`s:

- same venue, spot ↔ margin: 1 internal step;
- spot on A → spot on B: 1 withdrawal;
- margin on A → spot on B, or spot on A → margin on B: 2 (an internal step and a withdrawal);
- margin on A → margin on B: 3 (A margin → A spot, A spot → B spot, B spot → B margin).

**What may be used.** `RoutingRules` (the `[collateral]` configuration) allows internal
transfers (`internal`), withdrawals between venues (`withdrawals`; off by default: they take
minutes and can stall), restricts withdrawals to ordered `(from, to)` venue pairs (`routes`;
empty means any pair), and keeps a dollar `buffer` free on each venue. What the venues'
adapters can do is passed to `plan_transfers` as arguments, not kept in the rules, because it
comes from the adapters' `Capabilities`, not from configuration: `can_transfer`, the venues
that can move money between their own wallets (`Capabilities.transfers`), and
`can_withdraw`, those that can withdraw and take deposits (`Capabilities.withdrawals`); both
ends of a withdrawal must be in it. A route through a venue that cannot is not used.

**Buffers.** A venue's buffer counts its dollar pools together (the margin wallet and every
spot stablecoin): what they have free after the plan, summed, never falls below it because of
the plan. A venue therefore gives up, over all of its dollar pools and all moves (internal
ones too: their dollars end up held for the basket), at most the sum of their free figures
less the buffer. A dollar pool with a negative figure counts in that sum (a venue already
short of its promises gives less); a pool being cured does not (its deficit is what the plan
pays). Pools of other assets (STETH) have no buffer.

**The search.** Greedy, largest shortfall first, and a source's spare once used by one move is
not offered to the next. For each short pool: a source that covers it alone with the fewest
steps, among equals one reached by internal transfers only (faster than a withdrawal), then
the smallest spare that suffices (large pools stay whole), then the venue's name
(deterministic). When no source covers it alone, it takes the most from sources in the same
order of steps and kind but largest spare first, until what is left fits one source, which
is then chosen as above. This is exact (the fewest steps) whenever each short pool can be
covered by one source; it is not a global optimum: it does not split one shortfall to spare
another, relay through a third venue when a route is not allowed, or merge the same internal
step shared by two moves. Withdrawal fees and deposit delays are not counted: a caller that
knows them adds the fee to the shortfall.

**Rounding.** Dollar pools are counted to the cent: a shortfall is rounded up and a source's
spare (and its venue's budget) down, so carrying out the plan always cures. Other assets are
moved exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import NamedTuple

import msgspec

from actors.fees import USD_ASSETS
from actors.margin import (
    CENT,
    SPOT,
    USD,
    CollateralError,
    Pool,
    ceil_to,
    floor_to,
    fmt_amount,
    pool_quantum,
)
from venues.model import TransferKind, WalletKind

_ZERO = Decimal(0)


class RoutingRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the `[collateral]` configuration lets the planner use.

    `internal`: a venue's spot wallet may fund its margin wallet and back. `withdrawals`:
    money may move between venues at all. `routes`: the `(from_venue, to_venue)` pairs a
    withdrawal may take, one way each (empty: any pair). `buffers`: dollars a venue keeps
    free over its dollar pools, by venue name. `margin_asset`: the asset of the margin
    wallets (the `USD` pools), a dollar asset.
    """

    internal: bool = True
    withdrawals: bool = False
    routes: list[tuple[str, str]] = []
    buffers: dict[str, Decimal] = {}
    margin_asset: str = "USDT"

    def __post_init__(self) -> None:
        if self.margin_asset not in USD_ASSETS:
            have = ", ".join(sorted(USD_ASSETS - {USD}))
            raise ValueError(
                f"margin_asset must be a dollar asset ({have}), got {self.margin_asset!r}"
            )
        for venue, buffer in self.buffers.items():
            if not isinstance(buffer, Decimal | int) or not Decimal(buffer).is_finite():
                raise ValueError(f"buffers[{venue!r}] must be a finite amount, got {buffer!r}")
            if buffer < 0:
                raise ValueError(f"buffers[{venue!r}] must be at least 0, got {buffer}")
        for i, route in enumerate(self.routes):
            if len(route) != 2 or not all(isinstance(v, str) and v for v in route):
                raise ValueError(
                    f"routes[{i}] must be a pair of venue names (from, to), got {route!r}"
                )

    def allows_route(self, from_venue: str, to_venue: str) -> bool:
        """Whether `routes` lets a withdrawal go from one venue to the other."""
        return not self.routes or (from_venue, to_venue) in self.routes

    def buffer(self, venue: str) -> Decimal:
        return Decimal(self.buffers.get(venue, _ZERO))


class Wallet(NamedTuple):
    """One wallet of an account at a venue."""

    venue: str
    kind: WalletKind


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One request to one venue: move `amount` of `asset` from a wallet to another.

    Internal: between `venue`'s own spot and margin wallets. Withdrawal: asked of `venue`,
    from its spot wallet to the spot wallet of `destination.venue`.
    """

    kind: TransferKind
    venue: str
    asset: str
    amount: Decimal
    source: Wallet
    destination: Wallet

    @property
    def message(self) -> str:
        amount = fmt_amount(self.amount, self.asset)
        if self.kind is TransferKind.INTERNAL:
            return (
                f"move {amount} on {self.venue} from its {self.source.kind} wallet "
                f"to its {self.destination.kind} wallet"
            )
        return (
            f"withdraw {amount} from {self.source.venue}'s {self.source.kind} wallet "
            f"to {self.destination.venue}'s {self.destination.kind} wallet"
        )


class Move(msgspec.Struct, frozen=True, kw_only=True):
    """`amount` of `asset` carried from the pool `source` to the short pool `target`, by
    `steps` carried out in order (each waits for the one before it to land)."""

    source: Pool
    target: Pool
    asset: str
    amount: Decimal
    steps: list[Step]

    @property
    def message(self) -> str:
        return ", then ".join(s.message for s in self.steps)


class Plan(msgspec.Struct, frozen=True, kw_only=True, tag="plan"):
    """Moves that, carried out, cure every shortfall they were planned for (none: nothing
    was short). Moves are independent of one another; a move's steps are in order."""

    moves: list[Move]

    @property
    def steps(self) -> list[Step]:
        return [s for m in self.moves for s in m.steps]

    @property
    def transfers(self) -> int:
        """The number of venue requests (steps)."""
        return sum(len(m.steps) for m in self.moves)

    @property
    def drawn(self) -> dict[Pool, Decimal]:
        """What the plan takes from each source pool: subtract it from `free` before
        planning for another basket, so two plans never spend the same spare."""
        out: dict[Pool, Decimal] = {}
        for m in self.moves:
            out[m.source] = out.get(m.source, _ZERO) + m.amount
        return out

    @property
    def delivered(self) -> dict[Pool, Decimal]:
        """What the plan brings to each short pool."""
        out: dict[Pool, Decimal] = {}
        for m in self.moves:
            out[m.target] = out.get(m.target, _ZERO) + m.amount
        return out

    @property
    def message(self) -> str:
        return "; ".join(m.message for m in self.moves) or "nothing to move"


class NoRoute(msgspec.Struct, frozen=True, kw_only=True, tag="no_route"):
    """Not every shortfall can be cured with what may be used: `missing` is what cannot be
    found for each such pool, `reason` says where it would have come from and what stood in
    the way. Nothing should be moved for a basket that gets this."""

    missing: dict[Pool, Decimal]
    reason: str


RoutingResult = Plan | NoRoute


def plan_transfers(
    shortfalls: Mapping[Pool, Decimal],
    free: Mapping[Pool, Decimal],
    rules: RoutingRules,
    *,
    can_transfer: Collection[str],
    can_withdraw: Collection[str],
) -> RoutingResult:
    """The fewest transfers (greedily, see the module) that cure every shortfall.

    `shortfalls`: what each short pool lacks (≥ 0; 0 is ignored). `free`: what each pool has
    to spare now, after what is reserved and what this basket itself will hold there (may be
    negative; a pool not listed has 0). `can_transfer` / `can_withdraw`: venues whose adapters
    can move money between their own wallets / withdraw and take deposits. Raises
    `CollateralError` (a `ValueError`) for a malformed pool or amount.
    """
    shorts = {
        pool: _snap(amount, pool[1], ceil_to)
        for pool, amount in _amounts(shortfalls, "shortfalls").items()
        if amount > 0
    }
    figures = _amounts(free, "free", signed=True)
    for name, venues in (("can_transfer", can_transfer), ("can_withdraw", can_withdraw)):
        if isinstance(venues, str):
            raise CollateralError(f"{name} must be a set of venue names, got the string {venues!r}")
    planner = _Planner(shorts, figures, rules, frozenset(can_transfer), frozenset(can_withdraw))
    moves: list[Move] = []
    missing: dict[Pool, Decimal] = {}
    reasons: list[str] = []
    for target in sorted(shorts, key=lambda p: (-shorts[p], p)):
        found, left = planner.cure(target, shorts[target])
        moves += found
        if left > 0:
            missing[target] = left
            reasons.append(planner.explain(target, shorts[target], found, left))
    if missing:
        return NoRoute(missing=missing, reason=" ".join(reasons))
    return Plan(moves=moves)


# --- internals ---------------------------------------------------------------------------
class _Hop(NamedTuple):
    kind: TransferKind
    venue: str
    source: Wallet
    destination: Wallet


class _Planner:
    """One call's working state: what each source and each venue's budget still has."""

    def __init__(
        self,
        shorts: Mapping[Pool, Decimal],
        free: Mapping[Pool, Decimal],
        rules: RoutingRules,
        can_transfer: frozenset[str],
        can_withdraw: frozenset[str],
    ) -> None:
        self.rules = rules
        self.can_transfer = can_transfer
        self.can_withdraw = can_withdraw
        sources = {p: n for p, n in free.items() if p not in shorts}
        # What each pool can give, and each venue's dollar pools together above its buffer.
        floored = {p: _snap(n, p[1], floor_to) for p, n in sources.items()}
        self.spare = {p: n for p, n in floored.items() if n > 0}
        self.dollars: dict[str, Decimal] = {}
        for (venue, asset), n in sources.items():
            if _is_dollar(asset):
                self.dollars[venue] = self.dollars.get(venue, _ZERO) + n
        self.budget = {
            v: _snap(self.dollars.get(v, _ZERO) - rules.buffer(v), USD, floor_to)
            for v in {p[0] for p in self.spare}
        }
        self.initial = dict(self.spare)
        self.fed: dict[Pool, list[Pool]] = {}  # source → the short pools it was drawn for

    def available(self, source: Pool) -> Decimal:
        spare = self.spare.get(source, _ZERO)
        if _is_dollar(source[1]):
            spare = min(spare, self.budget.get(source[0], _ZERO))
        return max(spare, _ZERO)

    def cure(self, target: Pool, short: Decimal) -> tuple[list[Move], Decimal]:
        """Moves toward `target` and what is still missing there after them."""
        paths = {
            src: path
            for src in self.spare
            if self._token(src) == self._token(target)
            and not isinstance(path := self.path(src, target), str)
        }
        # Fewest steps first, then internal transfers only before a withdrawal.
        rank = {
            src: (len(hops), sum(h.kind is TransferKind.WITHDRAWAL for h in hops))
            for src, hops in paths.items()
        }
        moves: list[Move] = []
        left = short
        while left > 0:
            offers = {src: n for src in paths if (n := self.available(src)) > 0}
            if not offers:
                break
            covering = [src for src, n in offers.items() if n >= left]
            if covering:
                src = min(covering, key=lambda s: (rank[s], offers[s], s))
            else:
                src = min(offers, key=lambda s: (rank[s], -offers[s], s))
            amount = min(left, offers[src])
            moves.append(self._take(src, target, amount, paths[src]))
            left -= amount
        return moves, left

    def path(self, source: Pool, target: Pool) -> list[_Hop] | str:
        """The hops from one pool to the other (of the same asset), or why there are none."""
        a, b = source[0], target[0]
        ka, kb = _wallet_kind(source[1]), _wallet_kind(target[1])
        if a == b:
            return self._internal_blocked(a) or [_Hop(TransferKind.INTERNAL, a, *_ends(a, ka, kb))]
        rules = self.rules
        if not rules.withdrawals:
            return "moving money between venues is off ([collateral] withdrawals)"
        if not rules.allows_route(a, b):
            return f"the route {a} → {b} is not in [collateral] routes"
        for venue in (a, b):
            if venue not in self.can_withdraw:
                return f"{venue}'s adapter cannot withdraw or take deposits"
        hops: list[_Hop] = []
        if ka is WalletKind.MARGIN:
            if why := self._internal_blocked(a):
                return why
            hops.append(_Hop(TransferKind.INTERNAL, a, *_ends(a, ka, WalletKind.SPOT)))
        hops.append(
            _Hop(
                TransferKind.WITHDRAWAL,
                a,
                Wallet(a, WalletKind.SPOT),
                Wallet(b, WalletKind.SPOT),
            )
        )
        if kb is WalletKind.MARGIN:
            if why := self._internal_blocked(b):
                return why
            hops.append(_Hop(TransferKind.INTERNAL, b, *_ends(b, WalletKind.SPOT, kb)))
        return hops

    def explain(self, target: Pool, short: Decimal, found: list[Move], left: Decimal) -> str:
        """Why `left` of `target`'s shortfall cannot be found, source by source."""
        token = self._token(target)
        head = f"{_where(target)} is short {fmt_amount(short, token)}; "
        if found:
            got = ", ".join(f"{fmt_amount(m.amount, token)} from {_where(m.source)}" for m in found)
            head += f"{got} can be found, {fmt_amount(left, token)} cannot: "
        else:
            head += f"{fmt_amount(left, token)} cannot be found: "
        used = {m.source for m in found}
        why: list[str] = []
        for src in sorted(self.initial):
            if self._token(src) != token:
                continue
            if src in used:
                if self.spare[src] > 0:  # its venue's budget ran out first
                    why.append(f"{_where(src)} gives no more: {self._held_back(src)}")
                continue
            path = self.path(src, target)
            cause = path if isinstance(path, str) else self._held_back(src)
            why.append(f"{_where(src)} ({fmt_amount(self.initial[src], token)} spare): {cause}")
        if not why:
            why.append(f"no other pool has any {token} to spare")
        return head + "; ".join(why) + "."

    def _held_back(self, source: Pool) -> str:
        """Why a source that could reach a pool offers nothing more."""
        if self.spare[source] == 0:
            return f"already drawn for {_listing(self.fed[source])}"
        venue = source[0]
        buffer = (
            f"{venue} keeps a buffer of {fmt_amount(self.rules.buffer(venue), USD)} "
            f"(its dollar pools have {fmt_amount(self.dollars[venue], USD)} free together)"
        )
        fed = [
            p
            for src, pools in sorted(self.fed.items())
            if src[0] == venue and _is_dollar(src[1])
            for p in pools
        ]
        if fed:
            return f"{buffer} and its dollars above it are drawn for {_listing(fed)}"
        return buffer

    def _take(self, source: Pool, target: Pool, amount: Decimal, hops: list[_Hop]) -> Move:
        self.spare[source] -= amount
        if _is_dollar(source[1]):
            self.budget[source[0]] -= amount
        fed = self.fed.setdefault(source, [])
        if target not in fed:
            fed.append(target)
        asset = self._token(source)
        steps = [
            Step(
                kind=h.kind,
                venue=h.venue,
                asset=asset,
                amount=amount,
                source=h.source,
                destination=h.destination,
            )
            for h in hops
        ]
        return Move(source=source, target=target, asset=asset, amount=amount, steps=steps)

    def _internal_blocked(self, venue: str) -> str | None:
        if not self.rules.internal:
            return "transfers between a venue's own wallets are off ([collateral] internal)"
        if venue not in self.can_transfer:
            return f"{venue}'s adapter cannot transfer between its wallets"
        return None

    def _token(self, pool: Pool) -> str:
        """The asset a pool's wallet holds."""
        asset = pool[1]
        return self.rules.margin_asset if asset == USD else asset.removeprefix(SPOT)


def _wallet_kind(asset: str) -> WalletKind:
    return WalletKind.MARGIN if asset == USD else WalletKind.SPOT


def _ends(venue: str, source: WalletKind, destination: WalletKind) -> tuple[Wallet, Wallet]:
    return Wallet(venue, source), Wallet(venue, destination)


def _snap(
    value: Decimal, asset: str, rounding: Callable[[Decimal, Decimal | None], Decimal]
) -> Decimal:
    """`value` rounded (`ceil_to`, `floor_to`) onto the pool's quantum, written with exactly
    its places (2,500.00, never 2.5E+3: the amounts go to venues)."""
    quantum = pool_quantum(asset)
    return value if quantum is None else rounding(value, quantum).quantize(quantum)


def _is_dollar(asset: str) -> bool:
    return pool_quantum(asset) == CENT


def _where(pool: Pool) -> str:
    venue, asset = pool
    if asset == USD:
        return f"{venue}'s margin wallet"
    return f"{venue}'s spot {asset.removeprefix(SPOT)}"


def _listing(pools: list[Pool]) -> str:
    return ", ".join(_where(p) for p in dict.fromkeys(pools))


def _amounts(
    values: Mapping[Pool, Decimal], field: str, *, signed: bool = False
) -> dict[Pool, Decimal]:
    """Check every pool and amount of an argument, naming the bad one."""
    out: dict[Pool, Decimal] = {}
    for pool, value in values.items():
        where = f"{field}[{pool!r}]"
        if not (
            isinstance(pool, tuple)
            and len(pool) == 2
            and all(isinstance(p, str) and p for p in pool)
            and (pool[1] == USD or (pool[1].startswith(SPOT) and len(pool[1]) > len(SPOT)))
        ):
            raise CollateralError(
                f"{field}: {pool!r} is not a pool; expected (venue, {USD!r} or 'spot:<asset>')"
            )
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise CollateralError(f"{where} must be a Decimal amount, got {value!r}")
        amount = Decimal(value)
        if not amount.is_finite():
            raise CollateralError(f"{where} must be a finite amount, got {value}")
        if not signed and amount < 0:
            raise CollateralError(f"{where} must be at least 0, got {value}")
        out[pool] = amount
    return out
