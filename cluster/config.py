"""The cluster configuration: the venues file, plus the engine's settings in `[engine]`.

One TOML file serves `legato venues up` (which reads its `[venues.<name>]` tables) and the
engine (which also reads `[engine]`). Any other top-level table is a mistake and is named as
one. docs/deploy.md documents the settings.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.shells.basket import BasketOptions
from venues.config import ConfigError, VenuesConfig, parse_venues

TABLES = ("venues", "engine")


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[engine]`: where the engine's actors live and how baskets are driven."""

    namespace: str = "legato"  # the Ray namespace of the singletons and named actors
    placement: Literal["auto", "labels", "anywhere"] = "auto"
    fire_lead_ms: float = 50.0  # how far ahead of arming the legs fire, at least
    arm_timeout_s: float = 60.0  # a leg not armed by then fails its basket (nothing sent)
    tick_ms: float = 100.0  # the basket's periodic coordination step
    unwind_deadline_s: float = 30.0  # how long policy `unwind` keeps trying
    leg_silence_s: float = 3.0  # a leg unheard of this long is pinged; no answer: lost
    min_overrun_s: float = 60.0  # how long past horizon + grace a basket may run on

    def basket_options(self) -> BasketOptions:
        return BasketOptions(
            namespace=self.namespace,
            fire_lead_ms=self.fire_lead_ms,
            arm_timeout_s=self.arm_timeout_s,
            tick_ms=self.tick_ms,
            unwind_deadline_s=self.unwind_deadline_s,
            leg_silence_s=self.leg_silence_s,
            min_overrun_s=self.min_overrun_s,
        )


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True):
    venues: VenuesConfig
    engine: EngineSettings = EngineSettings()
    source: str = "<config>"


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read a configuration file; `ConfigError` names the file, the field and what is
    accepted."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
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
    for name in EngineSettings.__struct_fields__[2:]:  # every figure after the two names
        value = getattr(engine, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{source}: engine.{name}: {value} is not a number > 0")
    return ClusterConfig(venues=venues, engine=engine, source=source)


def _explain(source: str, error: msgspec.ValidationError) -> str:
    message, _, at = str(error).partition(" - at `$.")
    field = at.rstrip("`")
    message = message.replace("`", "")
    if message.startswith("Object contains unknown field"):
        field = message.rsplit(" ", 1)[-1]
        accepted = ", ".join(EngineSettings.__struct_fields__)
        return f"{source}: engine.{field}: unknown field; accepted here: {accepted}"
    message = message[0].lower() + message[1:]
    if field == "placement":
        return f"{source}: engine.placement: {message}; accepted: auto, labels, anywhere"
    return f"{source}: engine.{field}: {message}"
