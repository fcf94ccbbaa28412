"""Venue clients from the venues configuration: the adapter each configured venue is reached
through (native Binance USD-M or spot, ccxt, or, for a simulated venue, the one its
`adapter` names over the APIs it serves). Keys are read from the environment here, when a
client is made, never when the configuration is read.
"""

from __future__ import annotations

from typing import Any

from venues.binance.client import BinanceUsdmClient
from venues.binance.spot_client import BinanceSpotClient
from venues.client import VenueClient
from venues.config import (
    ApiCredential,
    BinanceSpotConfig,
    BinanceUsdmConfig,
    CcxtVenueConfig,
    ConfigError,
    RealVenueConfig,
    SimVenueConfig,
    check_binance_config,
    check_ccxt_config,
    market_catalogue,
    profile_from,
    sim_credentials,
)
from venues.model import AckKind, InstrumentKind
from venues.routed import RoutedClient


def build_binance_client(name: str, cfg: BinanceUsdmConfig, **options: Any) -> BinanceUsdmClient:
    """The native adapter for a configured Binance USD-M venue, keys read from the environment.

    Raises `AuthError` naming the missing environment variable (never a value), and
    `ConfigError` for a URL `check_venue_url` refuses. `options` pass through to
    `BinanceUsdmClient` (timeouts, account id, ...). The wallet API (transfers and
    withdrawals) is the configuration's `sapi_url`, Binance's spot host by default.
    """
    check_binance_config(f"venues.{name}", cfg)
    result = AckKind.RESULT if cfg.ack == "RESULT" else AckKind.ACCEPTED
    return BinanceUsdmClient.from_env(
        name,
        rest_url=cfg.rest_url,
        ws_url=cfg.ws_url,
        api_key_env=cfg.api_key_env,
        secret_env=cfg.secret_env,
        user_ws_url=cfg.user_ws_url,
        public_ws_url=cfg.public_ws_url,
        market_ws_url=cfg.market_ws_url,
        ack_semantics=result,
        resp_type="RESULT" if result is AckKind.RESULT else "ACK",
        **({"sapi_url": cfg.sapi_url} | options),
    )


def build_binance_spot_client(name: str, cfg: BinanceSpotConfig, **options: Any) -> VenueClient:
    """The native adapter for a configured Binance spot account, keys read from the
    environment (`AuthError` naming a missing variable, never a value)."""
    check_binance_config(f"venues.{name}", cfg)
    result = cfg.ack == "RESULT"
    return BinanceSpotClient.from_env(
        name,
        rest_url=cfg.rest_url,
        ws_url=cfg.ws_url,
        api_key_env=cfg.api_key_env,
        secret_env=cfg.secret_env,
        market_ws_url=cfg.market_ws_url,
        resp_type="FULL" if result else "ACK",
        **options,
    )


def build_ccxt_client(name: str, cfg: CcxtVenueConfig, **options: Any) -> VenueClient:
    """The ccxt adapter for a configured exchange, keys read from the environment."""
    from venues.ccxt import CcxtClient  # noqa: PLC0415 (ccxt loads slowly)

    check_ccxt_config(f"venues.{name}", cfg)
    urls = {k: v for k, v in (("rest", cfg.urls.rest), ("ws", cfg.urls.ws)) if v is not None}
    return CcxtClient.from_env(
        name,
        cfg.exchange,
        api_key_env=cfg.api_key_env,
        secret_env=cfg.secret_env,
        password_env=cfg.password_env,
        sandbox=cfg.sandbox,
        urls=urls or None,
        options=dict(cfg.options) or None,
        **options,
    )


def build_client(name: str, cfg: RealVenueConfig, **options: Any) -> VenueClient:
    """The adapter for a configured real venue (`options`: timeouts, account id, ...)."""
    if isinstance(cfg, BinanceUsdmConfig):
        return build_binance_client(name, cfg, **options)
    if isinstance(cfg, BinanceSpotConfig):
        return build_binance_spot_client(name, cfg, **options)
    return build_ccxt_client(name, cfg, **options)


def build_sim_client(
    name: str,
    cfg: SimVenueConfig,
    *,
    rest_url: str,
    ws_url: str,
    account_id: str | None = None,
    **options: Any,
) -> VenueClient:
    """The native adapter for a simulated venue served at `rest_url`/`ws_url`, logged in as
    `account_id` (default: the venue's first account), acks as its profile declares.

    The simulator serves a venue's perpetuals on Binance's USD-M API and its spot
    instruments on the spot API: a venue of one kind gets that API's client, a venue of both
    (or of perpetuals whose account holds a spot wallet, `spot_balances`) a `RoutedClient`
    over the two. The same client code a real Binance account uses; only
    the URLs and keys differ. Raises `ConfigError` for an unknown account or a missing
    credential variable.
    """
    credentials = {c.account_id: c for c in sim_credentials(name, cfg).values()}
    if not credentials:
        raise ConfigError(f"venues.{name}.accounts: no account to trade from")
    account = account_id or cfg.accounts[0].account_id
    if account not in credentials:
        raise ConfigError(
            f"venues.{name}.accounts: no account {account!r}; accounts: {', '.join(credentials)}"
        )
    cred = credentials[account]
    ack = profile_from(cfg.profile).ack
    catalogue = market_catalogue(cfg.market)
    kinds = {catalogue[s].kind for s in cfg.instruments or catalogue}
    if any(a.account_id == account and a.spot_balances for a in cfg.accounts):
        # A spot wallet to read and move money from (collateral routing), on a venue that
        # may list no spot instrument: the spot API's client beside the perpetuals'.
        kinds.add(InstrumentKind.SPOT)
    if cfg.adapter == "ccxt":
        sides = _sim_ccxt_sides(name, kinds, cred, account, ack, rest_url, ws_url, options)
    else:
        sides = _sim_native_sides(name, kinds, cred, account, ack, rest_url, ws_url, options)
    if len(sides) == 1:
        return next(iter(sides.values()))
    return RoutedClient(name, sides)


def _sim_native_sides(
    name: str,
    kinds: set[InstrumentKind],
    cred: ApiCredential,
    account: str,
    ack: AckKind,
    rest_url: str,
    ws_url: str,
    options: dict[str, Any],
) -> dict[InstrumentKind, VenueClient]:
    """legato's native Binance clients of a simulated venue: USD-M and spot."""
    sides: dict[InstrumentKind, VenueClient] = {}
    if InstrumentKind.PERP in kinds:
        sides[InstrumentKind.PERP] = BinanceUsdmClient(
            name,
            rest_url=rest_url,
            ws_url=ws_url,
            api_key=cred.api_key,
            secret=cred.secret,
            ack_semantics=ack,
            resp_type="RESULT" if ack is AckKind.RESULT else "ACK",
            account_id=account,
            # The wallet API (sapi) lives on Binance's spot host; the simulator serves it too.
            sapi_url=rest_url,
            **options,
        )
    if InstrumentKind.SPOT in kinds:
        sides[InstrumentKind.SPOT] = BinanceSpotClient(
            name,
            rest_url=rest_url,
            ws_url=ws_url,
            api_key=cred.api_key,
            secret=cred.secret,
            # FULL: the answer after the match, with each fill's fee and its asset.
            resp_type="FULL" if ack is AckKind.RESULT else "ACK",
            ack_semantics=ack,
            account_id=account,
            **options,
        )
    return sides


def _sim_ccxt_sides(
    name: str,
    kinds: set[InstrumentKind],
    cred: ApiCredential,
    account: str,
    ack: AckKind,
    rest_url: str,
    ws_url: str,
    options: dict[str, Any],
) -> dict[InstrumentKind, VenueClient]:
    """ccxt's Binance exchanges pointed at a simulated venue: `binanceusdm` for its
    perpetuals, `binance` for its spot instruments."""
    from venues.ccxt import CcxtClient  # noqa: PLC0415 (ccxt loads slowly)

    exchanges = {InstrumentKind.PERP: "binanceusdm", InstrumentKind.SPOT: "binance"}
    return {
        kind: CcxtClient(
            name,
            exchanges[kind],
            api_key=cred.api_key,
            secret=cred.secret,
            urls={"rest": rest_url, "ws": ws_url},
            ack_semantics=ack,
            account_id=account,
            **options,
        )
        for kind in sorted(kinds)
    }
