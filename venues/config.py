"""The venues configuration: which venues exist, and how each simulated one is built.

`legato venues up CONFIG.toml` reads it, and the cluster configuration embeds the same
`[venues.<name>]` tables (other top-level tables of the file are left to it). Secrets come
from environment variables (`*_env`), or inline for simulated venues only; they are resolved
when a venue is built, never printed, and never part of an error message.

It is long (about 850 lines) because every field's check and error message stands beside
the field it checks; split by section, each check would be read away from its field. The
clients a configuration's venues are reached through are made in `venues.clients`.
"""

from __future__ import annotations

import math
import os
import re
import time
import tomllib
import zlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from venues.adapter_kit import insecure_url
from venues.instants import parse_instant
from venues.model import Instrument
from venues.sim.calibration import (
    DEFAULT_CALIBRATION,
    REPLAY_INSTRUMENTS,
    SYNTHETIC_INSTRUMENTS,
)
from venues.sim.exchange import AccountSpec, SimExchange
from venues.sim.host import SimVenue
from venues.sim.market import MarketSource
from venues.sim.profile import PRESETS, ClientIdReuse, Latency, VenueProfile

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECRET_FIELDS = ("api_key", "secret")
_REAL_SECRET_FIELDS = (*_SECRET_FIELDS, "password")  # OKX's passphrase and the like
_REAL_KINDS = ("binance_usdm", "binance_spot", "ccxt")
MAX_LEVERAGE = 125

# --- the bounds of every value (docs/venues.md, "Limits") -------------------------------
MAX_CONFIG_CHARS = 1_000_000  # a configuration file; a real one is a few kB
MAX_SEED = 2**63 - 1
MAX_DEPTH_SCALE = 100.0  # times the calibrated book depth
MAX_REPLAY_SPEED = 1_000.0  # times real time
MAX_LATENCY_MS = 60_000.0  # every latency of a profile: a minute
MAX_CLOCK_OFFSET_MS = 3_600_000.0  # a venue clock an hour off either way
MAX_OUTAGES = 100
MAX_OUTAGE_S = 7 * 86_400.0  # an outage's start and duration, seconds after the venue starts
MAX_ORDERS_PER_MINUTE = 1_000_000
MAX_BALANCE = Decimal(10) ** 12  # of each asset of an account
_MAX_ORIGIN_NS = 4_102_444_800 * 10**9  # 2100-01-01T00:00:00Z
# An account id, an asset, an environment variable's name and a node label (Ray's `key=value`).
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")
_ASSET = re.compile(r"[A-Z0-9]{1,20}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NODE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,252}=[A-Za-z0-9._-]{0,63}")
# The schemes of a real venue's URLs, plain (to a loopback address only) and encrypted.
_SCHEMES = {"rest_url": ("http", "https"), "sapi_url": ("http", "https")} | {
    f: ("ws", "wss") for f in ("ws_url", "user_ws_url", "public_ws_url", "market_ws_url")
}
_SYNTHETIC_STEP_NS = 100_000_000
_TAGS = {
    "kind": '"sim", "binance_usdm", "binance_spot" or "ccxt"',
    "source": '"synthetic" or "replay"',
    "adapter": '"native" or "ccxt"',
}


class ConfigError(ValueError):
    """A configuration mistake; the message names the file, the field path and what is accepted."""


class ApiCredential(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An API key, its HMAC secret and the venue account it trades for."""

    api_key: str
    secret: str
    account_id: str

    def __repr__(self) -> str:
        return (
            f"ApiCredential(api_key={self.api_key!r}, secret=<hidden>, "
            f"account_id={self.account_id!r})"
        )


class SyntheticMarketConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="synthetic",
    tag_field="source",
):
    """Correlated synthetic prices, a pure function of (seed, origin, time): venues that share
    the seed and origin agree on prices without talking to each other."""

    seed: int = 7
    # "start": the instant the venues of one configuration start together (they share it);
    # or a fixed ISO-8601 date-time (TOML date-time or string) or ns since the epoch. Prices
    # equal the calibration's at the origin; the path is built from it, so a fixed origin
    # long ago costs start-up time.
    # (msgspec cannot hold a date-time and a string in one union: checked by `_origin_ns`.)
    origin: Any = "start"
    # Every book's depth (touch, 10 bp, 100 bp) times this: 0.05 is a thin book, 1.0 the
    # calibration (DESIGN §10). Prices do not depend on it.
    depth_scale: float = 1.0

    def origin_ns(self, start_ns: int) -> int:
        """The origin in ns; `start_ns` is the shared start instant used for "start"."""
        value = _origin_ns(self.origin)
        return start_ns if value is None else value


def _origin_ns(origin: object) -> int | None:
    """A configured origin in ns, None for "start"; ValueError saying what is accepted."""
    try:
        ns = parse_instant(origin, keyword="start", what="an origin")
    except OverflowError:  # a date-time whose offset takes it out of datetime's years 1-9999
        ns = -1
    if ns is not None and not 0 <= ns < _MAX_ORIGIN_NS:
        shown = origin.isoformat() if hasattr(origin, "isoformat") else repr(origin)
        raise ValueError(
            f'{shown} is not an origin from 1970 to 2099; accepted: "start", a date-time from '
            '"1970-01-01T00:00:00Z" to "2099-12-31T23:59:59Z", or ns since the epoch from 0 '
            f"to {_MAX_ORIGIN_NS - 1}"
        )
    return ns


class ReplayMarketConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="replay",
    tag_field="source",
):
    """Recorded Binance streams (`<kind>_<symbol>_*.gz` in `dir`) replayed from venue start."""

    dir: str  # relative paths are taken from the config file's folder
    kind: Literal["usdm", "spot"] = "usdm"
    speed: float = 1.0


MarketConfig = SyntheticMarketConfig | ReplayMarketConfig


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One venue account: its API credentials (inline or from the environment) and funding:
    `balances` is its USD-M futures wallet (USDT is the margin), `spot_balances` its spot
    wallet (empty unless given), kept apart as Binance keeps them."""

    account_id: str
    api_key: str | None = None
    api_key_env: str | None = None
    secret: str | None = None
    secret_env: str | None = None
    balances: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"USDT": Decimal(1_000_000)}
    )
    leverage: int = 10
    spot_balances: dict[str, Decimal] = {}

    def spec(self) -> AccountSpec:
        """The account to open on the simulated exchange."""
        return AccountSpec(
            account_id=self.account_id,
            balances=dict(self.balances),
            leverage=self.leverage,
            spot_balances=dict(self.spot_balances),
        )

    def __repr__(self) -> str:
        return f"AccountConfig(account_id={self.account_id!r}, ...)"


class SimVenueConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="sim",
    tag_field="kind",
):
    """A simulated venue served over Binance's USD-M API (its perpetuals) and spot API (its
    spot instruments). `adapter` is how legs reach it: legato's native Binance clients, or
    the ccxt adapter (ccxt's `binanceusdm` and `binance`), as a long-tail exchange is."""

    market: MarketConfig = SyntheticMarketConfig()
    instruments: list[str] | None = None  # default: every instrument of the market source
    profile: str | dict[str, Any] = "same_region"  # a preset, or a table of VenueProfile fields
    accounts: list[AccountConfig] = []
    port: int = 0  # 0: any free port
    node_label: str | None = None  # default `venue=<name>`
    adapter: Literal["native", "ccxt"] = "native"


class BinanceUsdmConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="binance_usdm",
    tag_field="kind",
):
    """A real Binance USD-M futures account; keys only ever come from the environment."""

    api_key_env: str
    secret_env: str
    rest_url: str = "https://fapi.binance.com"
    ws_url: str = "wss://fstream.binance.com"
    # Binance now also serves the user stream under /private and market data under
    # /public and /market; set these to use those roots (default: ws_url for all).
    user_ws_url: str | None = None
    public_ws_url: str | None = None
    market_ws_url: str | None = None
    ack: Literal["ACCEPTED", "RESULT"] = "ACCEPTED"  # newOrderRespType ACK or RESULT
    node_label: str | None = None
    # The account's wallet API (transfers, withdrawals): Binance serves it on the spot host;
    # a testnet's or another deployment's spot host goes here.
    sapi_url: str = "https://api.binance.com"


class BinanceSpotConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="binance_spot",
    tag_field="kind",
):
    """A real Binance spot account (its own wallet, beside a USD-M one); keys only ever come
    from the environment."""

    api_key_env: str
    secret_env: str
    rest_url: str = "https://api.binance.com"
    ws_url: str = "wss://stream.binance.com:9443"
    market_ws_url: str | None = None
    ack: Literal["ACCEPTED", "RESULT"] = "ACCEPTED"  # newOrderRespType ACK or FULL
    node_label: str | None = None


class CcxtUrls(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Roots that replace the exchange's own (a simulated venue's, a proxy's)."""

    rest: str | None = None
    ws: str | None = None


class CcxtVenueConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="ccxt",
    tag_field="kind",
):
    """Any exchange ccxt.pro supports (docs/ccxt.md); keys only ever come from the
    environment (`password_env`: OKX's passphrase and the like)."""

    exchange: str
    api_key_env: str
    secret_env: str
    password_env: str | None = None
    sandbox: bool = False
    urls: CcxtUrls = CcxtUrls()
    options: dict[str, Any] = {}  # ccxt's own `options` for the exchange
    node_label: str | None = None


VenueConfig = SimVenueConfig | BinanceUsdmConfig | BinanceSpotConfig | CcxtVenueConfig
RealVenueConfig = BinanceUsdmConfig | BinanceSpotConfig | CcxtVenueConfig


class VenuesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every venue of a configuration file, by name."""

    venues: dict[str, VenueConfig]

    def node_label(self, name: str) -> str:
        """The Ray node label (`key=value`) of the nodes near this venue."""
        return self.venues[name].node_label or f"venue={name}"

    def sim_names(self) -> list[str]:
        return [n for n, v in self.venues.items() if isinstance(v, SimVenueConfig)]


# --- loading ---------------------------------------------------------------------------
def load_venues(path: str | Path) -> VenuesConfig:
    """Read and check the `[venues.<name>]` tables of a TOML file.

    Raises `ConfigError` naming the file, the field path and what would be accepted.
    Relative replay directories are resolved against the file's folder.
    """
    path = Path(path)
    return parse_venues(
        read_config(path, "no such venues configuration file"),
        source=str(path),
        base_dir=path.parent,
    )


def read_config(path: Path, missing: str) -> dict[str, Any]:
    """The TOML of a configuration file; `ConfigError` (naming the file, with `missing` for a
    file that is not there) for one that cannot be read, is too long or is not TOML."""
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read(MAX_CONFIG_CHARS + 1)  # bounded: a path may name a device
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read it (not UTF-8 text)") from None
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{path}: longer than {MAX_CONFIG_CHARS:,} characters")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: not valid TOML here: arrays or tables nested too deeply"
        ) from None


def parse_venues(
    data: Mapping[str, Any], *, source: str = "<config>", base_dir: Path | None = None
) -> VenuesConfig:
    """Check already-parsed TOML data (what `load_venues` does after reading the file)."""
    raw = data.get("venues") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{source}: venues: no venues; expected one [venues.<name>] table per venue, "
            'e.g. [venues.alpha] with kind = "sim"'
        )
    for name, venue in raw.items():
        _check_name(source, name)
        if isinstance(venue, Mapping) and venue.get("kind") in _REAL_KINDS:
            for key in _REAL_SECRET_FIELDS:
                if key in venue:
                    raise ConfigError(
                        f"{source}: venues.{name}.{key}: inline secrets are accepted for "
                        f"simulated venues only; set {key}_env to the name of an environment "
                        "variable that holds it"
                    )
    venues: dict[str, VenueConfig] = {}
    for name, table in raw.items():
        # One venue at a time, so that an error's path names the venue (msgspec shows a
        # dict key as `[...]`).
        try:
            venue: VenueConfig = msgspec.convert(table, VenueConfig)  # type: ignore[arg-type]
        except msgspec.ValidationError as e:
            raise ConfigError(_rephrase(source, e, ["venues", name], table)) from None
        except (ValueError, ArithmeticError):  # a signalling NaN where a float goes
            raise ConfigError(f"{source}: venues.{name}: a value is not a number here") from None
        if isinstance(venue, SimVenueConfig):
            venue = _check_sim(source, name, venue, base_dir)
        elif isinstance(venue, CcxtVenueConfig):
            check_ccxt_config(f"{source}: venues.{name}", venue)
        else:
            check_binance_config(f"{source}: venues.{name}", venue)
        _check_node_label(f"{source}: venues.{name}", venue.node_label)
        venues[name] = venue
    ports: dict[int, str] = {}
    for name, venue in venues.items():
        if isinstance(venue, SimVenueConfig) and venue.port:
            other = ports.setdefault(venue.port, name)
            if other != name:
                raise ConfigError(
                    f"{source}: venues.{name}.port: {venue.port} is also venues.{other}.port; "
                    "each venue needs its own port (0: any free port)"
                )
    return VenuesConfig(venues=venues)


def _check_name(source: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{source}: venues.{name}: a venue name is 1-64 characters from [A-Za-z0-9_-]"
        )


def _check_sim(
    source: str, name: str, cfg: SimVenueConfig, base_dir: Path | None
) -> SimVenueConfig:
    where = f"{source}: venues.{name}"
    market = cfg.market
    if isinstance(market, ReplayMarketConfig):
        directory = Path(market.dir)
        if not directory.is_absolute() and base_dir is not None:
            directory = (base_dir / directory).resolve()
        if not directory.is_dir():
            raise ConfigError(f"{where}.market.dir: {directory} is not a directory")
        if not 0 < market.speed <= MAX_REPLAY_SPEED:
            raise ConfigError(
                f"{where}.market.speed: {market.speed:g} is not accepted; accepted: more than 0 "
                f"and at most {MAX_REPLAY_SPEED:g} times real time"
            )
        market = msgspec.structs.replace(market, dir=str(directory))
    else:
        try:
            _origin_ns(market.origin)
        except ValueError as e:
            raise ConfigError(f"{where}.market.origin: {e}") from None
    if not isinstance(market, ReplayMarketConfig) and not 0 <= market.seed <= MAX_SEED:
        raise ConfigError(
            f"{where}.market.seed: {market.seed} is not accepted; accepted: 0 to {MAX_SEED}"
        )
    if not isinstance(market, ReplayMarketConfig) and not 0 < market.depth_scale <= MAX_DEPTH_SCALE:
        raise ConfigError(
            f"{where}.market.depth_scale: must be within (0, {MAX_DEPTH_SCALE:g}] (1.0: the "
            f"calibrated depth), got {market.depth_scale}"
        )
    catalogue = market_catalogue(market)
    for i, symbol in enumerate(cfg.instruments or ()):
        if symbol not in catalogue:
            raise ConfigError(
                f"{where}.instruments[{i}]: unknown instrument {symbol!r}; this market "
                f"source has {', '.join(sorted(catalogue))}"
            )
    if cfg.instruments is not None and not cfg.instruments:
        raise ConfigError(f"{where}.instruments: list at least one instrument, or leave it out")
    try:
        profile_from(cfg.profile)
    except ValueError as e:
        raise ConfigError(f"{where}.profile{_profile_error(e, cfg.profile)}") from None
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"{where}.port: must be within 0-65535 (0: any free port)")
    seen: set[str] = set()
    for i, acct in enumerate(cfg.accounts):
        at = f"{where}.accounts[{i}]"
        if not _ACCOUNT_ID.fullmatch(acct.account_id):
            raise ConfigError(
                f"{at}.account_id: {acct.account_id!r} is not accepted; accepted: 1-64 "
                "characters from A-Z a-z 0-9 . _ : @ -"
            )
        if acct.account_id in seen:
            raise ConfigError(f"{at}.account_id: {acct.account_id!r} is listed twice")
        seen.add(acct.account_id)
        for key in _SECRET_FIELDS:
            inline, env = getattr(acct, key), getattr(acct, f"{key}_env")
            if (inline is None) == (env is None):
                raise ConfigError(
                    f"{at}: give exactly one of {key} (inline, simulator only) or {key}_env "
                    "(the name of an environment variable)"
                )
            if inline is not None and not inline:
                raise ConfigError(f"{at}.{key}: empty; accepted: 1 or more characters")
            _check_env_name(f"{at}.{key}_env", env)
        if not 1 <= acct.leverage <= MAX_LEVERAGE:
            raise ConfigError(f"{at}.leverage: must be within 1-{MAX_LEVERAGE}")
        for wallet in ("balances", "spot_balances"):
            for asset, amount in getattr(acct, wallet).items():
                if not _ASSET.fullmatch(asset):
                    raise ConfigError(
                        f"{at}.{wallet}.{asset}: not an asset; accepted: 1-20 characters from "
                        "A-Z 0-9, e.g. USDT"
                    )
                if not amount.is_finite() or not 0 <= amount <= MAX_BALANCE:
                    raise ConfigError(
                        f"{at}.{wallet}.{asset}: {amount} is not accepted; accepted: a number "
                        f"from 0 to {MAX_BALANCE:,}"
                    )
    return msgspec.structs.replace(cfg, market=market)


def _check_env_name(at: str, name: str | None) -> None:
    if name is not None and not _ENV_NAME.fullmatch(name):
        raise ConfigError(
            f"{at}: {name!r} is not the name of an environment variable; accepted: 1-128 "
            "characters from A-Z a-z 0-9 _, not starting with a digit"
        )


def _check_node_label(where: str, label: str | None) -> None:
    if label is not None and not _NODE_LABEL.fullmatch(label):
        raise ConfigError(
            f"{where}.node_label: {label!r} is not a Ray node label; accepted: key=value, "
            "e.g. venue=binance (key: A-Z a-z 0-9 . _ / -, value: A-Z a-z 0-9 . _ -)"
        )


def check_ccxt_config(where: str, cfg: CcxtVenueConfig) -> None:
    """An exchange ccxt.pro knows, its environment variable names, and its URL overrides."""
    from venues.ccxt.rules import check_exchange  # noqa: PLC0415 (ccxt loads slowly)

    try:
        check_exchange(cfg.exchange)
    except ValueError as e:
        raise ConfigError(f"{where}.exchange: {e}") from None
    _check_env_name(f"{where}.api_key_env", cfg.api_key_env)
    _check_env_name(f"{where}.secret_env", cfg.secret_env)
    _check_env_name(f"{where}.password_env", cfg.password_env)
    for field, url in (("rest_url", cfg.urls.rest), ("ws_url", cfg.urls.ws)):
        if url is not None:
            problem = check_venue_url(field, url)
            if problem:
                key = "rest" if field == "rest_url" else "ws"
                raise ConfigError(f"{where}.urls.{key}: {problem}")


def check_binance_config(where: str, cfg: BinanceUsdmConfig | BinanceSpotConfig) -> None:
    """A real venue: its environment variable names, and its URLs (`check_venue_url`)."""
    _check_env_name(f"{where}.api_key_env", cfg.api_key_env)
    _check_env_name(f"{where}.secret_env", cfg.secret_env)
    for name in _SCHEMES:
        url = getattr(cfg, name, None)
        if url is not None:
            problem = check_venue_url(name, url)
            if problem:
                raise ConfigError(f"{where}.{name}: {problem}")


def check_venue_url(field: str, url: str) -> str | None:
    """What is wrong with a real venue's URL for `field` (rest_url, ws_url, ...), or None:
    the adapters' own rule (`venues.adapter_kit.insecure_url`: encrypted, or plain to a
    loopback address only; no credentials in it)."""
    return insecure_url(url, websocket=_SCHEMES[field][0] == "ws")


def market_catalogue(market: MarketConfig) -> dict[str, Instrument]:
    if isinstance(market, ReplayMarketConfig):
        return REPLAY_INSTRUMENTS[market.kind]
    return SYNTHETIC_INSTRUMENTS


def _rephrase(
    source: str, error: msgspec.ValidationError, prefix: list[str | int], raw: Any
) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.port`" for venue `a` as "FILE:
    venues.a.port: expected int, got str", with the accepted field names for an unknown
    field and the accepted tags for `kind` and `source`."""
    text = str(error)
    message, _, at = text.partition(" - at `")
    parts = _path_parts(at.rstrip("`")) if at else []
    parts = _name_keys(parts, raw)
    message = message.replace("`", "")
    field = re.match(r"Object contains unknown field (\S+)", message)
    if field:
        parts.append(field.group(1))
        accepted = _accepted_fields(VenueConfig, parts[:-1], raw)  # type: ignore[arg-type]
        message = "unknown field"
        if accepted:
            message += f"; accepted here: {', '.join(accepted)}"
    elif message.startswith(("Expected", "Invalid")):
        message = message[0].lower() + message[1:]
    missing = re.match(r"Object missing required field (\S+)", message)
    if missing:
        parts.append(missing.group(1))
        message = "required field is missing"
    if message.startswith(("invalid value", "invalid enum value")) or missing:
        tags = _TAGS.get(str(parts[-1])) if parts else None
        if tags:
            message += f"; accepted: {tags}"
    return f"{source}: {_dotted([*prefix, *parts])}: {message}"


def _name_keys(parts: list[str | int], raw: Any) -> list[str | int]:
    """Replace msgspec's `[...]` (some key of a table) with the first key whose value does
    not fit; good enough to point at the line to fix."""
    out: list[str | int] = []
    node = raw
    for part in parts:
        p = part
        if p == "..." and isinstance(node, Mapping) and node:
            bad = [k for k, v in node.items() if not isinstance(v, int | float | Decimal)]
            p = bad[0] if bad else next(iter(node))
        out.append(p)
        node = (
            node.get(p)
            if isinstance(node, Mapping)
            else (
                node[p] if isinstance(node, list) and isinstance(p, int) and p < len(node) else None
            )
        )
    return out


def _path_parts(path: str) -> list[str | int]:
    """`$.venues.a.accounts[0].x` as ["venues", "a", "accounts", 0, "x"]."""
    out: list[str | int] = []
    for token in re.findall(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]", path.removeprefix("$")):
        key, index = token
        out.append(key if key else (int(index) if index.isdigit() else index))
    return out


def _dotted(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _accepted_fields(root: type, parts: Sequence[str | int], raw: Any) -> list[str]:
    """The field names of the struct at `parts` (walking the types alongside the raw data)."""
    info: mi.Type = mi.type_info(root)
    node: Any = raw
    for part in [*parts, None]:
        while isinstance(info, mi.UnionType):
            info = _pick(info, node)
        if isinstance(info, mi.StructType):
            if part is None:
                return [f.encode_name for f in info.fields]
            info = next((f.type for f in info.fields if f.encode_name == part), mi.AnyType())
        elif isinstance(info, mi.DictType):
            info = info.value_type
        elif isinstance(info, mi.ListType):
            info = info.item_type
        else:
            return []
        node = (
            node.get(part)
            if isinstance(node, Mapping)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
    return []


def _pick(union: mi.UnionType, node: Any) -> mi.Type:
    """The member of a union the raw value was meant as (tagged structs by their tag)."""
    for t in union.types:
        if (
            isinstance(t, mi.StructType)
            and isinstance(node, Mapping)
            and (t.tag is None or node.get(t.tag_field) == t.tag)
        ):
            return t
    structs = [t for t in union.types if isinstance(t, mi.StructType)]
    return structs[0] if structs and isinstance(node, Mapping) else mi.AnyType()


# --- profiles --------------------------------------------------------------------------
def profile_from(spec: str | Mapping[str, Any]) -> VenueProfile:
    """A venue profile from a preset name, or a table of `VenueProfile` fields on top of an
    optional `preset` (e.g. `{preset = "colo", ack = "ACCEPTED"}`).

    Raises ValueError (a `msgspec.ValidationError` for a bad field) naming what is accepted.
    """
    if isinstance(spec, str):
        return _preset(spec)
    table = dict(spec)
    name = table.pop("preset", None)
    if name is not None and not isinstance(name, str):
        raise msgspec.ValidationError("Expected `str` - at `$.preset`")
    base = _preset(name) if name is not None else VenueProfile()
    profile = msgspec.convert(msgspec.to_builtins(base) | table, VenueProfile)
    _check_profile(profile)
    return profile


def _check_profile(profile: VenueProfile) -> None:
    """The bounds of a profile's figures (`MAX_LATENCY_MS`, `MAX_CLOCK_OFFSET_MS`, ...), as a
    `msgspec.ValidationError` at the field's path like msgspec's own."""

    def refuse(path: str, value: object, accepted: str) -> None:
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        raise msgspec.ValidationError(
            f"{shown} is not accepted; accepted: {accepted} - at `$.{path}`"
        )

    for name in sorted(_LATENCY_FIELDS):
        latency = getattr(profile, name)
        for part in ("median_ms", "p99_ms") if latency is not None else ():
            value = getattr(latency, part)
            if not (math.isfinite(value) and 0 <= value <= MAX_LATENCY_MS):
                refuse(f"{name}.{part}", value, f"0 to {MAX_LATENCY_MS:,.0f} ms (a minute)")
    offset = profile.clock_offset_ms
    if not (math.isfinite(offset) and abs(offset) <= MAX_CLOCK_OFFSET_MS):
        refuse(
            "clock_offset_ms",
            offset,
            f"-{MAX_CLOCK_OFFSET_MS:,.0f} to {MAX_CLOCK_OFFSET_MS:,.0f} ms (an hour)",
        )
    if not 1 <= profile.orders_per_minute <= MAX_ORDERS_PER_MINUTE:
        refuse("orders_per_minute", profile.orders_per_minute, f"1 to {MAX_ORDERS_PER_MINUTE:,}")
    if len(profile.outages) > MAX_OUTAGES:
        refuse("outages", f"{len(profile.outages)} outages", f"at most {MAX_OUTAGES}")
    for i, outage in enumerate(profile.outages):
        for part in ("start_s", "duration_s"):
            value = getattr(outage, part)
            if not (math.isfinite(value) and 0 <= value <= MAX_OUTAGE_S):
                refuse(f"outages[{i}].{part}", value, f"0 to {MAX_OUTAGE_S:,.0f} s (7 days)")
        if outage.mode not in ("503", "refuse"):
            refuse(f"outages[{i}].mode", outage.mode, '"503" or "refuse"')


def _preset(name: str) -> VenueProfile:
    profile = PRESETS.get(name)
    if profile is None:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return profile


def _profile_error(e: ValueError, spec: str | Mapping[str, Any]) -> str:
    """A bad profile as ".field.path: what is wrong, and what would be accepted"."""
    message, _, at = str(e).partition(" - at `")
    message = message.replace("`", "")
    parts = _path_parts(at.rstrip("`")) if at else []
    raw = spec if isinstance(spec, Mapping) else {}
    field = re.match(r"Object contains unknown field (\S+)", message)
    missing = re.match(r"Object missing required field (\S+)", message)
    if field:
        accepted = _accepted_fields(VenueProfile, parts, raw)
        if not parts:  # the profile's own table takes a preset too
            accepted = ["preset", *accepted]
        message = "unknown field" + (f"; accepted here: {', '.join(accepted)}" if accepted else "")
        parts.append(field.group(1))
    elif missing:
        parts.append(missing.group(1))
        message = "required field is missing"
    elif parts and parts[-1] in _LATENCY_FIELDS and message.startswith("Expected"):
        got = message.rpartition(", got ")[2]
        message = f"expected a latency table {{ median_ms = ..., p99_ms = ... }}, got {got}"
    elif message.startswith(("Expected", "Invalid")):
        message = message[0].lower() + message[1:]
    choices = _PROFILE_CHOICES.get(str(parts[-1])) if parts else None
    if choices and ("nvalid enum value" in message or message.startswith("expected")):
        message += "; accepted: " + ", ".join(f'"{c}"' for c in choices[:-1])
        message += f' or "{choices[-1]}"'
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return f"{path}: {message}"


# The profile's fields that take a `Latency` (a table of median_ms and p99_ms).
_LATENCY_FIELDS = frozenset(
    f.name
    for f in mi.type_info(VenueProfile).fields  # type: ignore[attr-defined]
    if any(
        isinstance(t, mi.StructType) and t.cls is Latency
        for t in (f.type.types if isinstance(f.type, mi.UnionType) else (f.type,))
    )
)


# What the profile's fields that take one of a few names accept.
_PROFILE_CHOICES: dict[str, tuple[str, ...]] = {
    "ack": ("RECEIPT", "ACCEPTED", "RESULT"),  # UNKNOWN is an answer's kind, not a venue's
    "client_id_reuse": tuple(ClientIdReuse),
}


# --- building --------------------------------------------------------------------------
def sim_credentials(name: str, cfg: SimVenueConfig) -> dict[str, ApiCredential]:
    """The venue's API credentials by API key, secrets resolved from the environment."""
    out: dict[str, ApiCredential] = {}
    for i, acct in enumerate(cfg.accounts):
        at = f"venues.{name}.accounts[{i}]"
        key = _secret(acct.api_key, acct.api_key_env, f"{at}.api_key_env")
        secret = _secret(acct.secret, acct.secret_env, f"{at}.secret_env")
        if key in out:
            raise ConfigError(f"{at}: its API key is already used by another account")
        out[key] = ApiCredential(api_key=key, secret=secret, account_id=acct.account_id)
    return out


def _secret(inline: str | None, env: str | None, where: str) -> str:
    if inline is not None:
        return inline
    assert env is not None
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"{where}: environment variable {env} is not set")
    return value


def build_market(cfg: SimVenueConfig, start_ns: int, origin_ns: int | None = None) -> MarketSource:
    """The venue's market source, its timeline starting at `start_ns` (venue time).

    `origin_ns` is the shared start of the venues built together, for a synthetic market
    whose origin is "start" (default: `start_ns`).
    """
    from venues.sim.replay import ReplayMarket  # noqa: PLC0415 (replay's decoders load on use)
    from venues.sim.synthetic import SyntheticMarket  # noqa: PLC0415

    market = cfg.market
    catalogue = market_catalogue(market)
    symbols = cfg.instruments or list(catalogue)
    if isinstance(market, ReplayMarketConfig):
        return ReplayMarket.from_dir(
            Path(market.dir), market.kind, start_ns, symbols=symbols, speed=market.speed
        )
    # The synthetic market moves on a grid of steps; starting it one step early gives the
    # venue a full book from its first request.
    cal = DEFAULT_CALIBRATION
    if market.depth_scale != 1.0:
        x = market.depth_scale
        cal = msgspec.structs.replace(
            cal,
            top_of_book_usd=cal.top_of_book_usd * x,
            eth_top_of_book_usd=cal.eth_top_of_book_usd * x,
            depth_10bp_usd=cal.depth_10bp_usd * x,
            depth_100bp_usd=cal.depth_100bp_usd * x,
        )
    return SyntheticMarket(
        market.seed,
        market.origin_ns(start_ns if origin_ns is None else origin_ns),
        instruments=[catalogue[s] for s in symbols],
        start_ns=start_ns - _SYNTHETIC_STEP_NS,
        step_ns=_SYNTHETIC_STEP_NS,
        calibration=cal,
    )


def build_sim_venue(
    name: str, cfg: SimVenueConfig, *, clock: Any = time.time_ns, origin_ns: int | None = None
) -> SimVenue:
    """A `SimVenue` for a configured simulated venue: exchange, market, accounts, profile.

    Venues built together should share `origin_ns` (the instant they start) so that
    synthetic markets with origin "start" agree on prices.

    Not started: `BinanceServer` (or `async with`) starts it.
    """
    profile = profile_from(cfg.profile)
    start = clock() + int(profile.clock_offset_ms * 1_000_000)
    market = build_market(cfg, start, origin_ns)
    exchange = SimExchange(name, market, start_ns=start)
    for acct in cfg.accounts:
        exchange.open_account(acct.spec())
    # The profile's draws are seeded by the venue's name: reruns behave alike.
    return SimVenue(exchange, profile, seed=zlib.crc32(name.encode()), clock=clock)
