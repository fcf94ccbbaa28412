"""The `legato` command line: one entry point, a subcommand for each way in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Where the recorded Binance data lives: $LEGATO_DATA_DIR, else ../shared/data/..."""
    env = os.environ.get("LEGATO_DATA_DIR")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "binance-20240808"


class UserError(Exception):
    """A mistake of the user's: printed as one line, never as a traceback."""


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _write_json(path: str | None, payload: object) -> None:
    if path:
        Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(payload)) + b"\n")
        print(f"wrote {path}")


def cmd_venues_simulate(args: argparse.Namespace) -> int:
    from venues.sim import showcase

    if args.replay:
        directory = Path(args.replay)
        if not directory.is_dir():
            raise UserError(f"--replay: {directory} is not a directory of recorded data")
        result = showcase.replay(args.seconds, directory, args.kind)
    else:
        result = showcase.synthetic(args.seconds, args.seed)
    print(showcase.format_result(result))
    _write_json(args.json, result)
    return 0


def cmd_venues_up(args: argparse.Namespace) -> int:
    from venues.sim.up import run_up

    return run_up(Path(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from venues.sim import showcase

    print("legato demo: the simulated venues (the basket engine is not built yet)\n")
    results = {"synthetic": showcase.synthetic(args.seconds, args.seed)}
    print(showcase.format_result(results["synthetic"]))
    data = default_data_dir()
    if data.is_dir():
        print()
        results["replay"] = showcase.replay(float("inf"), data, "usdm")
        print(showcase.format_result(results["replay"]))
    else:
        print(f"\n(recorded data not found at {data}; set LEGATO_DATA_DIR to replay it)")
    _write_json(args.json, results)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legato",
        description="Coordinated basket and multi-leg order execution for crypto, on Ray.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the embedded default on this machine",
        description="Run the embedded default: simulated venues on this "
        "machine, no cluster and no credentials.",
    )
    demo.add_argument(
        "--seconds",
        type=_positive(float),
        default=300.0,
        help="simulated seconds of synthetic market (default 300)",
    )
    demo.add_argument("--seed", type=int, default=7, help="synthetic market seed (default 7)")
    demo.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    demo.set_defaults(func=cmd_demo)

    venues = sub.add_parser(
        "venues", help="simulated venues", description="Run and inspect simulated venues."
    )
    vsub = venues.add_subparsers(dest="venues_command", required=True, metavar="COMMAND")
    sim = vsub.add_parser(
        "simulate",
        help="run a simulated market as fast as it goes and measure it",
        description="Run the market for N seconds of simulated time through the exchange "
        "core and print realised vol, correlations, spread and top-of-book depth "
        "beside the calibration targets.",
    )
    sim.add_argument(
        "--seconds", type=_positive(float), default=600.0, help="simulated seconds (default 600)"
    )
    sim.add_argument("--seed", type=int, default=7, help="synthetic market seed (default 7)")
    sim.add_argument(
        "--replay",
        metavar="DIR",
        help="replay recorded Binance data from DIR instead of the synthetic market",
    )
    sim.add_argument(
        "--kind",
        choices=("usdm", "spot"),
        default="usdm",
        help="which recorded venue to replay (default usdm)",
    )
    sim.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    sim.set_defaults(func=cmd_venues_simulate)
    up = vsub.add_parser(
        "up",
        help="serve the venues of a config over the Binance USD-M API",
        description="Start every simulated venue of CONFIG on its own 127.0.0.1 port, print "
        "their URLs, and serve until Ctrl-C.",
    )
    up.add_argument("config", metavar="CONFIG.toml", help="venues configuration file")
    up.set_defaults(func=cmd_venues_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"legato: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        print(f"legato: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        from venues.config import ConfigError

        if not isinstance(e, ConfigError):
            raise  # a bug, not the user's mistake: keep its traceback
        print(f"legato: error: {e}", file=sys.stderr)  # names the file and the field
        return 2


if __name__ == "__main__":
    sys.exit(main())
