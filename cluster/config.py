"""The cluster configuration: the venues file, plus the engine's settings, the default
hedge and the risk model.

One TOML file serves `legato venues up` (which reads its `[venues.<name>]` tables) and the
engine (which also reads `[engine]`, `[hedge]`, `[risk]`, `[collateral]` and `[audit]`). Any
other top-level table is a mistake and is named as one. docs/deploy.md documents the
settings; docs/audit.md the audit log.
"""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.protocol import AUDIT_LEVELS, AuditSettings, BasketOptions
from actors.risk import RiskSettings
from actors.routing import RoutingRules
from actors.spec import FieldError, HedgeSpec
from actors.spec.bounds import check_hedge_values
from venues.config import ConfigError, VenuesConfig, parse_venues, read_config

MAX_BUFFER_USD = 10**12  # a buffer is kept free: a trillion dollars is every real account

TABLES = ("venues", "engine", "hedge", "risk", "collateral", "audit")
# `[audit] level`: what each level writes (docs/audit.md).
AUDIT_MEANING = {
    "orders": "every order sent, every answer and report, every fill",
    "fills": "fills only",
    "off": "nothing",
}
AUDIT_TARGETS = ("stderr", "off")  # or a file path


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[engine]`: where the engine's actors live and how baskets are driven.

    Each figure's accepted range is in `ENGINE_BOUNDS`, below (docs/venues.md, "Limits").
    """

    namespace: str = "legato"  # the Ray namespace of the singletons and named actors (NAMESPACE)
    placement: Literal["auto", "labels", "anywhere"] = "auto"
    fire_lead_ms: float = 50.0  # how far ahead of arming the legs fire, at least
    warm_fire_lead_ms: float = 15.0  # the same when every leg comes from the warm pool
    arm_timeout_s: float = 60.0  # legs not armed this long after arming began: fail, nothing sent
    max_arming: int = 4  # baskets arming at once in the namespace; the others wait (QUEUED)
    max_running: int = 0  # baskets arming or running at once (0: no limit); the others wait
    tick_ms: float = 100.0  # the basket's periodic coordination step
    unwind_deadline_s: float = 30.0  # how long policy `unwind` keeps trying
    leg_silence_s: float = 3.0  # a leg unheard of this long is pinged; no answer: lost
    min_overrun_s: float = 60.0  # how long past horizon + grace a basket may run on
    # The warm pool (docs/deploy.md): actors kept ready for the next baskets. 0: cold.
    warm_legs_per_venue: int = 0  # connected leg actors per venue
    warm_baskets: int = 0  # idle basket actors
    # The journal (DESIGN §9; docs/deploy.md "Durability and recovery"): a directory (the
    # embedded SQLite journal) or a PostgreSQL DSN. "": $LEGATO_JOURNAL, else
    # $XDG_DATA_HOME/legato/journal (~/.local/share/legato/journal).
    journal: str = ""

    def basket_options(self) -> BasketOptions:
        return BasketOptions(
            namespace=self.namespace,
            fire_lead_ms=self.fire_lead_ms,
            warm_fire_lead_ms=self.warm_fire_lead_ms,
            arm_timeout_s=self.arm_timeout_s,
            max_arming=self.max_arming,
            max_running=self.max_running,
            tick_ms=self.tick_ms,
            unwind_deadline_s=self.unwind_deadline_s,
            leg_silence_s=self.leg_silence_s,
            min_overrun_s=self.min_overrun_s,
        )


POOL_FIELDS = ("warm_legs_per_venue", "warm_baskets")
MAX_WARM = 100  # per venue, or baskets: beyond it a typo (each actor holds 50-90 MB)

# The figures of `[engine]`: (lowest, highest, unit, a note on the range). Beyond them a
# value is a typo that would show only once a basket runs (a tick of 1e-300 ms spins the
# basket actor, an infinite timeout never fires).
ENGINE_BOUNDS: dict[str, tuple[float, float, str, str]] = {
    "fire_lead_ms": (1, 60_000, "ms", "a minute"),
    "warm_fire_lead_ms": (1, 60_000, "ms", "a minute"),
    "arm_timeout_s": (0.1, 3_600, "s", "an hour"),
    "max_arming": (1, 1_000, "baskets", ""),
    "max_running": (0, 10_000, "baskets", "0: no limit"),
    "tick_ms": (1, 60_000, "ms", "a minute"),
    "unwind_deadline_s": (0.1, 86_400, "s", "a day"),
    "leg_silence_s": (0.1, 3_600, "s", "an hour"),
    "min_overrun_s": (0.1, 86_400, "s", "a day"),
} | {name: (0, MAX_WARM, "actors", "0: no warm pool") for name in POOL_FIELDS}
# `[risk]`: annualised factor volatilities (0.1 % to 1,000 % a year) and factor betas. Checked
# before `RiskSettings.problems()`, which builds the covariance from them (1e300 overflows).
VOL_RANGE = (0.001, 10.0)
MAX_BETA = 10.0
# A Ray namespace: Ray takes any non-empty string; legato's is also a word of the command line
# (`legato status --namespace`) and a prefix of its actors' names.
NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_pool(settings: EngineSettings, where: str) -> None:
    """The warm pool's sizes are whole numbers from 0 to `MAX_WARM`; `ConfigError` names the
    field (after `where`) and what is accepted."""
    for name in POOL_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WARM:
            raise ConfigError(
                f"{where}{name}: {value!r} is not accepted; a whole number from 0 (no warm "
                f"pool) to {MAX_WARM}"
            )


def journal_location(configured: str = "") -> str:
    """Where the journal lives: `configured` (`[engine] journal`), else `$LEGATO_JOURNAL`,
    else `$XDG_DATA_HOME/legato/journal`, else `~/.local/share/legato/journal`. A
    directory is made absolute: actors on this machine open the same one whatever their
    working directory. (`$LEGATO_DATA_DIR` is the recorded market data, not this.)"""
    location = configured or os.environ.get("LEGATO_JOURNAL")
    if not location:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        location = str(Path(base) / "legato" / "journal")
    if location.startswith(("postgres://", "postgresql://")):
        return location
    return str(Path(location).expanduser().absolute())


def check_engine(settings: EngineSettings, where: str) -> None:
    """Every `[engine]` value within its bounds (`ENGINE_BOUNDS`, `NAMESPACE`); `ConfigError`
    names the field (after `where`), the value and the range accepted, with its unit."""
    if "\x00" in settings.journal or len(settings.journal) > 4096:
        raise ConfigError(
            f"{where}journal: not accepted; accepted: a data directory or a "
            "postgresql:// DSN, at most 4,096 characters, without NUL"
        )
    namespace = settings.namespace
    if not NAMESPACE.fullmatch(namespace) or namespace.startswith("_ray"):
        raise ConfigError(
            f"{where}namespace: {namespace!r} is not accepted; accepted: a Ray namespace of "
            "1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    check_pool(settings, where)
    for name, (low, high, unit, meaning) in ENGINE_BOUNDS.items():
        value = getattr(settings, name)
        if name in POOL_FIELDS:
            continue
        if not (math.isfinite(value) and low <= value <= high):
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            whole = "a whole number " if isinstance(value, int) else ""
            note = f" ({meaning})" if meaning else ""
            raise ConfigError(
                f"{where}{name}: {shown} is not accepted; accepted: {whole}from {low:g} to "
                f"{high:,} {unit}{note}"
            )


class CollateralSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[collateral]`: whether and how collateral is routed to cure a basket's shortfall.

    `routing` off (the default): a short basket is refused, naming the transfers that would
    cure it. On: the collateral actor plans and carries them out (`actors.routing`,
    `actors.runners.funding`), and the basket waits or hedges (`params.on_unfunded`).
    `internal`: a venue's spot wallet may fund its margin wallet and back; `withdrawals`:
    money may move between venues; `routes`: which venue may fund which by withdrawal
    (`"alpha -> gamma"`; empty: any); `buffers`: dollars each venue keeps free when it is a
    source."""

    routing: bool = False
    internal: bool = True
    withdrawals: bool = False
    routes: list[str] = []
    buffers: dict[str, Decimal] = {}

    def rules(self) -> RoutingRules | None:
        """The planner's rules (None when routing is off)."""
        if not self.routing:
            return None
        pairs = [_route(r) for r in self.routes]
        return RoutingRules(
            internal=self.internal,
            withdrawals=self.withdrawals,
            routes=[p for p in pairs if p is not None],
            buffers=dict(self.buffers),
        )


def _route(text: str) -> tuple[str, str] | None:
    left, arrow, right = text.partition("->")
    if not arrow or not left.strip() or not right.strip():
        return None
    return left.strip(), right.strip()


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True):
    venues: VenuesConfig
    engine: EngineSettings = EngineSettings()
    hedge: HedgeSpec | None = None  # for baskets that name no [hedge] of their own
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)
    collateral: CollateralSettings = CollateralSettings()
    audit: AuditSettings = AuditSettings()
    source: str = "<config>"


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read a configuration file; `ConfigError` names the file, the field and what is
    accepted."""
    path = Path(path)
    data = read_config(path, "no such configuration file")
    return parse_cluster(data, source=str(path), base_dir=path.parent)


def parse_cluster(
    data: dict[str, Any], *, source: str = "<config>", base_dir: Path | None = None
) -> ClusterConfig:
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ConfigError(
            f"{source}: {unknown[0]}: unknown table or key; accepted at the top level: "
            f"{', '.join(f'[{t}]' for t in TABLES)}"
        )
    venues = parse_venues(data, source=source, base_dir=base_dir)
    raw = data.get("engine", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: engine: expected a table [engine], got {type(raw).__name__}")
    try:
        engine = msgspec.convert(raw, EngineSettings)
    except msgspec.ValidationError as e:
        raise ConfigError(_explain(source, e)) from None
    except (ValueError, ArithmeticError):  # a signalling NaN where a float goes
        raise ConfigError(f"{source}: engine: a value is not a number here") from None
    check_engine(engine, f"{source}: engine.")
    hedge = _hedge(data, source, venues)
    risk = _table(data, "risk", RiskSettings, source)
    assert isinstance(risk, RiskSettings)
    _check_risk(risk, source)
    problems = risk.problems()
    if problems:
        field, what = problems[0]
        raise ConfigError(f"{source}: risk.{field}: {what}")
    collateral = _table(data, "collateral", CollateralSettings, source)
    assert isinstance(collateral, CollateralSettings)
    _check_collateral(collateral, venues, source)
    audit = _table(data, "audit", AuditSettings, source)
    assert isinstance(audit, AuditSettings)
    audit = check_audit(audit, f"{source}: audit.", base_dir)
    return ClusterConfig(
        venues=venues,
        engine=engine,
        hedge=hedge,
        risk=risk,
        collateral=collateral,
        audit=audit,
        source=source,
    )


def check_audit(audit: AuditSettings, where: str, base_dir: Path | None = None) -> AuditSettings:
    """`[audit]` checked, its file path made absolute (from `base_dir`, the configuration
    file's directory): every actor on the machine appends to the same file whatever its
    working directory. `ConfigError` names the field (after `where`) and what is accepted."""
    if audit.level not in AUDIT_LEVELS:
        accepted = "; ".join(f'"{k}" ({v})' for k, v in AUDIT_MEANING.items())
        raise ConfigError(f"{where}level: {audit.level!r} is not accepted; accepted: {accepted}")
    target = audit.destination
    if target in ("", *AUDIT_TARGETS):
        return audit
    if "\x00" in target or len(target) > 4096 or target.endswith(("/", "\\")):
        raise ConfigError(
            f"{where}destination: {target!r} is not accepted; accepted: a file path (at most "
            '4,096 characters, without NUL), "stderr", or "off"'
        )
    path = Path(target).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return msgspec.structs.replace(audit, destination=str(path.absolute()))


def _check_collateral(c: CollateralSettings, venues: VenuesConfig, source: str) -> None:
    names = sorted(venues.venues)
    accepted = ", ".join(names)
    for i, text in enumerate(c.routes):
        pair = _route(text)
        if pair is None:
            raise ConfigError(
                f'{source}: collateral.routes[{i}]: {text!r} is not accepted; accepted: "FROM '
                f'-> TO", two venue names, e.g. "{names[0] if names else "alpha"} -> ..."'
            )
        for venue in pair:
            if venue not in venues.venues:
                raise ConfigError(
                    f"{source}: collateral.routes[{i}]: {venue!r} is not a venue of this "
                    f"file; accepted: {accepted}"
                )
    for venue, amount in c.buffers.items():
        if venue not in venues.venues:
            raise ConfigError(
                f"{source}: collateral.buffers.{venue}: not a venue of this file; accepted: "
                f"{accepted}"
            )
        if not amount.is_finite() or not 0 <= amount <= MAX_BUFFER_USD:
            raise ConfigError(
                f"{source}: collateral.buffers.{venue}: {amount} is not accepted; accepted: "
                f"dollars from 0 to {MAX_BUFFER_USD:,}"
            )
    if c.routes and not c.withdrawals:
        raise ConfigError(
            f"{source}: collateral.routes: routes between venues are listed but withdrawals "
            "= false; set withdrawals = true to use them, or remove them"
        )


def _check_risk(risk: RiskSettings, source: str) -> None:
    low, high = VOL_RANGE
    for name, vol in risk.factors.items():
        if not (math.isfinite(vol) and low <= vol <= high):
            raise ConfigError(
                f"{source}: risk.factors.{name}: {vol:g} is not accepted; accepted: an annual "
                f"volatility from {low:g} to {high:g} (0.1 % to 1,000 % a year)"
            )
    for symbol, betas in risk.betas.items():
        for factor, beta in betas.items():
            if not (math.isfinite(beta) and abs(beta) <= MAX_BETA):
                raise ConfigError(
                    f"{source}: risk.betas.{symbol}.{factor}: {beta:g} is not accepted; "
                    f"accepted: a beta from -{MAX_BETA:g} to {MAX_BETA:g}"
                )


def _table(data: dict[str, Any], name: str, kind: type, source: str) -> Any:
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {name}: expected a table [{name}], got {type(raw).__name__}")
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as e:
        raise ConfigError(_explain(source, e, name, kind)) from None
    except (ValueError, ArithmeticError):  # a signalling NaN where a float goes
        raise ConfigError(f"{source}: {name}: a value is not a number here") from None


def _hedge(data: dict[str, Any], source: str, venues: VenuesConfig) -> HedgeSpec | None:
    """`[hedge]`: the hedge of every basket that names none (its instruments are checked
    against the venue's listing when a basket is validated)."""
    if "hedge" not in data:
        return None
    hedge = _table(data, "hedge", HedgeSpec, source)
    assert isinstance(hedge, HedgeSpec)
    if hedge.venue not in venues.venues:
        raise ConfigError(
            f"{source}: hedge.venue: {hedge.venue!r} is not a venue of this file; "
            f"accepted: {', '.join(sorted(venues.venues))}"
        )
    if not hedge.instruments:
        raise ConfigError(
            f'{source}: hedge.instruments: empty; list at least one, e.g. ["IDXUSDT"]'
        )
    errors: list[FieldError] = []
    check_hedge_values(hedge, errors)  # the bounds a basket's own [hedge] has
    if errors:
        raise ConfigError(f"{source}: {errors[0]}")
    return hedge


def _explain(
    source: str, error: msgspec.ValidationError, table: str = "engine", kind: type = EngineSettings
) -> str:
    message, _, at = str(error).partition(" - at `$")
    field = at.rstrip("`").lstrip(".")
    message = message.replace("`", "")
    if field.endswith("[...]"):  # msgspec does not name a dict's key: say which values
        field = field.removesuffix("[...]")
        message = "each value: " + message[0].lower() + message[1:]
    where = f"{table}.{field}" if field else table
    if message.startswith("Object contains unknown field"):
        unknown = message.rsplit(" ", 1)[-1]
        where = f"{where}.{unknown}"
        if not field:
            accepted = ", ".join(kind.__struct_fields__)
            return f"{source}: {where}: unknown field; accepted here: {accepted}"
        return f"{source}: {where}: unknown field"
    if message.startswith("Object missing required field"):
        missing = message.rsplit(" ", 1)[-1]
        return f"{source}: {where}.{missing}: required, and missing"
    message = message[0].lower() + message[1:]
    if where == "engine.placement":
        return f"{source}: engine.placement: {message}; accepted: auto, labels, anywhere"
    if where.removeprefix("engine.") in POOL_FIELDS:
        return f"{source}: {where}: {message}; accepted: a whole number from 0 to {MAX_WARM}"
    return f"{source}: {where}: {message}"
