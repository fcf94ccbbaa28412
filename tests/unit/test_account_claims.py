"""One venue account, one collateral book: a namespace claims the real accounts of its
venues, a second namespace is refused an account a live one holds, and a claim lapses
with the venue actor that made it."""

from __future__ import annotations

from typing import Any

from actors.shells.accounts import Claims, account_key
from venues.config import BinanceUsdmConfig, SimVenueConfig

ENV = {"DESK_KEY": "k-123", "OTHER_KEY": "k-456"}


def usdm(key_env: str = "DESK_KEY", url: str = "https://fapi.binance.com") -> BinanceUsdmConfig:
    return BinanceUsdmConfig(api_key_env=key_env, secret_env="DESK_SECRET", rest_url=url)


def test_an_account_is_its_exchange_its_root_and_its_key_never_the_key_itself() -> None:
    key = account_key(usdm(), ENV)
    assert key is not None and key.startswith("binance_usdm:") and "k-123" not in key
    assert account_key(usdm(url="https://fapi.binance.com/"), ENV) == key  # same root
    assert account_key(usdm(key_env="OTHER_KEY"), ENV) != key
    assert account_key(usdm(url="https://testnet.binancefuture.com"), ENV) != key
    assert account_key(usdm(key_env="MISSING"), ENV) is None  # it cannot start anyway
    assert account_key(SimVenueConfig(instruments=["BTCUSDT"]), ENV) is None  # never shared


class Holders:
    """Venue actors as the claims see them: alive until `gone`."""

    def __init__(self) -> None:
        self.gone: set[str] = set()
        self.asked: list[str] = []

    async def alive(self, holder: Any) -> bool:
        self.asked.append(holder)
        return holder not in self.gone


async def test_a_second_namespace_is_refused_a_live_ones_account_all_or_none() -> None:
    h = Holders()
    claims = Claims(h.alive)
    assert await claims.claim("ns-a", {"alpha": "acct-1"}, {"alpha": "a-alpha"}) == {}
    # ns-b asks for that account and a free one: refused for the first, given neither.
    refused = await claims.claim(
        "ns-b", {"beta": "acct-1", "gamma": "acct-2"}, {"beta": "b-beta", "gamma": "b-gamma"}
    )
    assert refused == {"beta": "ns-a"}
    assert claims.held() == {"acct-1": "ns-a"}
    # Its own namespace claims it again (another engine of ns-a) without asking anyone.
    h.asked.clear()
    assert await claims.claim("ns-a", {"alpha": "acct-1"}, {"alpha": "a-alpha-2"}) == {}
    assert h.asked == []


async def test_a_claim_lapses_with_the_venue_actor_that_made_it() -> None:
    h = Holders()
    claims = Claims(h.alive)
    await claims.claim("ns-a", {"alpha": "acct-1"}, {"alpha": "a-alpha"})
    h.gone.add("a-alpha")  # ns-a's engines and baskets ended: its venue actor is gone
    assert await claims.claim("ns-b", {"beta": "acct-1"}, {"beta": "b-beta"}) == {}
    assert claims.held() == {"acct-1": "ns-b"}
