"""One venue account, one collateral book: which namespace trades each real venue account.

Each namespace has its own collateral actor, whose book knows only its own reservations. Two
namespaces trading one real account (the same exchange, the same API key) would each
promise the account's free margin whole. So an engine claims, for its namespace, the real
accounts of its venues in a cluster-wide registry (`AccountClaims`, named
`legato-accounts` in the namespace `legato-cluster`) before anything trades; a second
namespace's claim on an account held by a namespace still running is refused, naming it.
A claim lapses when the venue actor that made it is gone (that namespace's engines and
baskets have ended). Simulated venues are their namespace's own processes: never shared,
never claimed.

An account is named by a digest of its exchange, its REST root and its API key: the key
itself never leaves the engine's process (nor appears in an answer or a log).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from actors.shells.remote import ref_result
from venues.config import BinanceSpotConfig, BinanceUsdmConfig, CcxtVenueConfig, VenueConfig

ACCOUNTS_NAMESPACE = "legato-cluster"
ACCOUNTS_NAME = "legato-accounts"
ALIVE_TIMEOUT_S = 5.0  # a holder's venue actor that does not answer this long is taken as gone


def account_key(cfg: VenueConfig, env: Mapping[str, str] = os.environ) -> str | None:
    """The account a venue configuration trades, as a digest (None: a simulated venue, or
    one whose key is not in `env`: it cannot start, and says so elsewhere). A Binance spot
    wallet and a USD-M wallet under one key are two accounts (two collateral books)."""
    if isinstance(cfg, BinanceUsdmConfig):
        kind, root = "binance_usdm", cfg.rest_url
    elif isinstance(cfg, BinanceSpotConfig):
        kind, root = "binance_spot", cfg.rest_url
    elif isinstance(cfg, CcxtVenueConfig):
        kind, root = f"ccxt-{cfg.exchange}", cfg.urls.rest or ("sandbox" if cfg.sandbox else "")
    else:
        return None
    key = env.get(cfg.api_key_env)
    if not key:
        return None
    digest = hashlib.sha256(f"{kind}\n{root.rstrip('/')}\n{key}".encode())
    return f"{kind}:{digest.hexdigest()[:24]}"


class Claims:
    """Which namespace holds each account (the logic of `AccountClaims`, outside Ray).
    `alive(holder)` answers whether the venue actor that made a claim still runs."""

    def __init__(self, alive: Callable[[Any], Awaitable[bool]]) -> None:
        self._alive = alive
        self._held: dict[str, tuple[str, Any]] = {}  # account → (namespace, venue actor)

    async def claim(
        self, namespace: str, accounts: Mapping[str, str], holders: Mapping[str, Any]
    ) -> dict[str, str]:
        """Claim `accounts` (venue name → account key) for `namespace`, each made by the
        venue actor `holders[name]`: all of them, or none. Returns the venues refused,
        each with the namespace that holds its account (empty: claimed). Not to be called
        twice at once (`AccountClaims` holds a lock around it)."""
        refused: dict[str, str] = {}
        for venue, account in accounts.items():
            held = self._held.get(account)
            if held is None or held[0] == namespace:
                continue
            if await self._alive(held[1]):
                refused[venue] = held[0]
            elif self._held.get(account) == held:  # its namespace ended: the claim lapsed
                del self._held[account]
        if refused:
            return refused
        for venue, account in accounts.items():
            self._held[account] = (namespace, holders[venue])
        return {}

    def held(self) -> dict[str, str]:
        """Account → the namespace holding it."""
        return {account: ns for account, (ns, _) in self._held.items()}


async def _answers(venue_actor: Any) -> bool:
    try:
        await asyncio.wait_for(ref_result(venue_actor.config_digest.remote()), ALIVE_TIMEOUT_S)
    except TimeoutError:
        return True  # busy, not gone: the claim stands
    except Exception:  # the actor is dead (its namespace's engines and baskets ended)
        return False
    return True


class AccountClaims:
    """The cluster's registry of claimed accounts (see the module docstring). Restarted
    when it dies: engines claim again at their next start (their venues' claims are
    renewed by every `Engine.start` of the namespace)."""

    def __init__(self) -> None:
        self._claims = Claims(_answers)
        self._lock = asyncio.Lock()  # one claim at a time: all-or-none across accounts

    async def claim(
        self, namespace: str, accounts: dict[str, str], holders: dict[str, Any]
    ) -> dict[str, str]:
        async with self._lock:
            return await self._claims.claim(namespace, accounts, holders)

    def held(self) -> dict[str, str]:
        return self._claims.held()
