"""`legato venues up`: serve every simulated venue of a configuration on its own port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TextIO

from venues.config import (
    ConfigError,
    SimVenueConfig,
    VenuesConfig,
    build_sim_venue,
    load_venues,
    profile_from,
    sim_credentials,
)
from venues.sim.server import BinanceServer


@contextlib.asynccontextmanager
async def serve(
    config: VenuesConfig,
    *,
    names: Sequence[str] | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> AsyncIterator[dict[str, BinanceServer]]:
    """Start the simulated venues of `config` (all, or those in `names`), each on its port.

    Yields the running servers by venue name and stops them all on exit, also when one of
    them fails to start.
    """
    wanted = list(names) if names is not None else config.sim_names()
    for name in wanted:
        if not isinstance(config.venues.get(name), SimVenueConfig):
            raise ConfigError(
                f"venue {name!r} is not a simulated venue of this configuration; "
                f"those are: {', '.join(config.sim_names()) or '(none)'}"
            )
    servers: dict[str, BinanceServer] = {}
    origin = clock()  # one instant for all: synthetic markets with origin "start" agree
    try:
        for name in wanted:
            cfg = config.venues[name]
            assert isinstance(cfg, SimVenueConfig)
            venue = build_sim_venue(name, cfg, clock=clock, origin_ns=origin)
            server = BinanceServer(venue, sim_credentials(name, cfg), port=cfg.port)
            try:
                await server.start()
            except OSError as e:
                await server.stop()
                raise OSError(
                    e.errno, f"venue {name}: cannot listen on {server.rest_url} ({e.strerror})"
                ) from None
            servers[name] = server
        yield servers
    finally:
        for server in reversed(servers.values()):
            await server.stop()


def describe(name: str, cfg: SimVenueConfig, server: BinanceServer) -> str:
    """One line about a running venue: its URLs, ack semantics, instruments, accounts."""
    instruments = ",".join(server.venue.exchange.instruments)
    accounts = ",".join(a.account_id for a in cfg.accounts) or "(none)"
    ack = profile_from(cfg.profile).ack.value
    return (
        f"{name:<10} rest {server.rest_url}  ws {server.ws_url}  ack {ack}  "
        f"instruments {instruments}  accounts {accounts}"
    )


async def _serve_until_signal(config: VenuesConfig, out: TextIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serve(config) as servers:
            print(f"legato venues up: {len(servers)} simulated venue(s); Ctrl-C stops", file=out)
            for name, server in servers.items():
                cfg = config.venues[name]
                assert isinstance(cfg, SimVenueConfig)
                print(describe(name, cfg, server), file=out)
            skipped = [n for n in config.venues if n not in servers]
            if skipped:
                print(f"(not simulated, not served here: {', '.join(skipped)})", file=out)
            out.flush()
            await stop.wait()
        print("legato venues up: stopped", file=out)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_up(path: str | Path, *, out: TextIO | None = None) -> int:
    """Serve the configuration's simulated venues until SIGINT or SIGTERM; 0 once stopped.

    Raises `ConfigError` (a ValueError) for a bad configuration, OSError for a busy port.
    """
    config = load_venues(path)
    if not config.sim_names():
        raise ConfigError(f'{path}: no simulated venues (kind = "sim") to serve')
    asyncio.run(_serve_until_signal(config, out or sys.stdout))
    return 0
