"""The `legato` command line: one entry point, a subcommand for each way in."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from actors.report import BasketReport

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_VENUES = REPO_ROOT / "examples" / "venues.toml"
DEMO_BASKET = REPO_ROOT / "examples" / "synthetic_eth_quick.toml"


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


def _run_basket(
    basket: str | Path,
    venues: str | Path,
    *,
    address: str | None,
    json_path: str | None,
    png_path: str | None,
    html_path: str | None,
    progress: bool,
    every_s: float,
    overrides: Sequence[str] = (),
) -> int:
    """Submit one basket, show its progress, print its report; 0 if it completed."""
    from actors.lifecycle import BasketState
    from actors.spec import SpecError
    from actors.spec.overrides import load_basket_with_overrides
    from cluster import present
    from cluster.engine import Engine, EngineError

    try:
        spec = load_basket_with_overrides(Path(basket), overrides)
    except SpecError as e:
        raise UserError(str(e)) from None
    _show_overrides(overrides)
    try:
        engine = Engine.start(venues, address=address)
    except EngineError as e:
        raise UserError(str(e)) from None
    with engine:
        try:
            handle = engine.submit(spec, submitted_by="legato run")
        except (SpecError, EngineError) as e:
            raise UserError(str(e)) from None
        if handle.run_id:
            print(f"legato: run {handle.run_id} (journal: {engine.journal_shown})", flush=True)
        try:
            _show_progress(handle, progress, every_s, present)
        except KeyboardInterrupt:
            print("\nlegato: cancelling the basket (Ctrl-C again does not wait)", file=sys.stderr)
            handle.cancel("cancelled from the terminal")
        report = handle.result()
    _show_report(report, png_path, html_path, json_path=json_path)
    return 0 if report.status is BasketState.COMPLETED else 1


def _show_overrides(overrides: Sequence[str]) -> None:
    """One line of the `--set`s applied, so that a result can be traced to its command."""
    if overrides:
        print(f"overrides: {' '.join(shlex.quote(o) for o in overrides)}", flush=True)


def _show_report(
    report: BasketReport,
    png_path: str | None,
    html_path: str | None,
    *,
    json_path: str | None = None,
) -> None:
    """Print the report's summary; write it as JSON, its chart and its HTML page where asked."""
    from cluster import render

    print(render.summary(report))
    if json_path:  # first: a chart that cannot be written must not cost the report itself
        report.write(json_path)
        print(f"wrote {json_path}")
    if png_path:
        render.chart_png(report, png_path)
        print(f"wrote {png_path}")
    if html_path:
        render.write_html(report, html_path)
        print(f"wrote {html_path}")


def _show_progress(handle: object, tty: bool, every_s: float, present: object) -> None:
    drawn = 0
    last_plain = 0.0
    for status in handle.progress(every_s=0.25 if tty else every_s):  # type: ignore[attr-defined]
        if tty:
            lines = present.status_lines(status)  # type: ignore[attr-defined]
            if drawn:
                sys.stdout.write(f"\x1b[{drawn}F")  # back to the top of the block
            sys.stdout.write("".join(f"{line}\x1b[K\n" for line in lines))
            sys.stdout.flush()
            drawn = len(lines)
        else:
            now = time.monotonic()
            if now - last_plain >= every_s or status.state.is_terminal:
                print(present.status_line(status), flush=True)  # type: ignore[attr-defined]
                last_plain = now


def cmd_run(args: argparse.Namespace) -> int:
    progress = not args.no_progress and sys.stdout.isatty()
    return _run_basket(
        args.basket,
        args.venues,
        address=args.address,
        json_path=args.json,
        png_path=args.png,
        html_path=args.html,
        progress=progress,
        every_s=args.every,
        overrides=args.overrides or (),
    )


def cmd_backtest(args: argparse.Namespace) -> int:
    from actors.backtest import BacktestError, check_venues, compare, parse_modes, results_table
    from actors.spec import SpecError
    from actors.spec.overrides import load_basket_with_overrides
    from cluster.config import load_cluster

    overrides = args.overrides or []
    try:
        modes = parse_modes(args.compare)
        spec = load_basket_with_overrides(Path(args.basket), overrides)
        cluster = load_cluster(args.venues)
        replay = None
        if args.replay:
            replay = Path(args.replay)
            if not replay.is_dir():
                raise UserError(f"--replay: {replay} is not a directory of recorded data")
        config = check_venues(cluster.venues, replay)
        if spec.hedge is None and cluster.hedge is not None:
            spec = msgspec.structs.replace(spec, hedge=cluster.hedge)  # the config's [hedge]

        def progress(r: object) -> None:
            if args.quiet:
                return
            m = r.metrics()  # type: ignore[attr-defined]
            risk = m["legging_risk_usd"]
            print(
                f"  seed {r.seed:3d} {r.mode.value:12s} {r.report.status.value:10s} "  # type: ignore[attr-defined]
                f"legging risk ${risk if risk is not None else float('nan'):,.2f}  "
                f"shortfall {m['shortfall_bps'] or 0:.2f} bp",
                flush=True,
            )

        print(
            f"legato backtest: {spec.basket_id} on {args.venues}"
            + (f" replaying {replay}" if replay else "")
            + f", {args.seeds} seed(s), modes {', '.join(m.value for m in modes)}",
            flush=True,
        )
        _show_overrides(overrides)
        doc = compare(
            spec,
            config,
            modes,
            args.seeds,
            risk=cluster.risk,
            progress=progress,
            routing=cluster.collateral.rules(),
        )
    except (SpecError, BacktestError) as e:
        raise UserError(str(e)) from None
    print()
    print(results_table(doc))
    print(
        f"\n{doc['market_events']:,} market events in {doc['wall_s']:.1f} s: "
        f"{doc['events_per_s']:,.0f} events/s"
    )
    if overrides:
        doc["overrides"] = overrides  # with the basket file, what the figures were run on
    _write_json(args.json, doc)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from actors.report import load_report

    path = Path(args.report)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        report = load_report(data)
    except msgspec.DecodeError as e:  # ValidationError too: it names the bad field's path
        what = " ".join(str(e).split())
        raise UserError(f"{path} is not a basket report: {what}") from None
    _show_report(report, args.png, args.html)
    return 0


def _connect(address: str | None) -> None:
    import ray

    from cluster.engine import EngineError, check_reachable

    where = address or os.environ.get("RAY_ADDRESS")
    if not where:
        raise UserError(
            "no cluster to ask: give --address (e.g. 127.0.0.1:6379) or set RAY_ADDRESS; "
            "a basket run by `legato run` without a cluster lives only in that process"
        )
    try:
        check_reachable(where)
    except EngineError as e:
        raise UserError(str(e)) from None
    try:
        ray.init(address=where, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError) as e:
        raise UserError(f"cannot connect to the Ray cluster at {where}: {e}") from None


def cmd_status(args: argparse.Namespace) -> int:
    import ray

    from cluster import present
    from cluster.engine import running_baskets

    _connect(args.address)
    # The registry knows every live basket, those on unnamed warm-pool actors included.
    running = running_baskets(args.namespace)
    if not running:
        print(f"no basket running in namespace {args.namespace!r}")
        return 0
    for basket_id in sorted(running):
        try:
            status = ray.get(running[basket_id].status.remote(), timeout=10)
        except Exception:  # it ended between the listing and the call
            continue
        print("\n".join(present.status_lines(status)))
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    """Follow a basket run by another driver (one that died too) to its end."""
    import ray

    from actors.lifecycle import BasketState
    from actors.shells.remote import REGISTRY_NAME, basket_actor_name
    from cluster import present

    _connect(args.address)
    try:
        supervisor = ray.get_actor(REGISTRY_NAME, namespace=args.namespace)
    except ValueError:
        raise UserError(f"no engine ever ran in namespace {args.namespace!r}") from None
    try:
        run_id = ray.get(supervisor.resolve.remote(args.run), timeout=30)
    except Exception as e:
        raise UserError(_remote_cause(e)) from None
    print(f"legato: following run {run_id}", flush=True)
    follow = supervisor.follow.remote(run_id)
    basket_id = run_id.partition("#")[0]
    every_s = 0.5 if sys.stdout.isatty() else args.every
    last = 0.0
    while not ray.wait([follow], timeout=every_s)[0]:
        if args.no_progress:
            continue
        try:
            actor = ray.get_actor(basket_actor_name(basket_id), namespace=args.namespace)
            status = ray.get(actor.status.remote(), timeout=10)
        except Exception:  # between actors (a take-over), or ending: the report comes next
            continue
        if time.monotonic() - last >= every_s:
            print(present.status_line(status), flush=True)
            last = time.monotonic()
    try:
        report = ray.get(follow)
    except Exception as e:
        raise UserError(f"run {run_id}: {_remote_cause(e)}") from None
    _show_report(report, args.png, args.html, json_path=args.json)
    return 0 if report.status is BasketState.COMPLETED else 1


def cmd_recover(args: argparse.Namespace) -> int:
    """Start the engine (which carries on every unfinished run of its journal) and wait
    until those runs end."""
    import ray

    from actors.lifecycle import BasketState
    from cluster.engine import Engine, EngineError

    try:
        engine = Engine.start(args.venues, address=args.address)
    except EngineError as e:
        raise UserError(str(e)) from None
    with engine:
        runs = engine.recovered
        if not runs:
            print(f"legato: no unfinished run in the journal at {engine.journal_shown}")
            return 0
        print(f"legato: carrying on {len(runs)} unfinished run(s): {', '.join(runs)}", flush=True)
        failed = 0
        for run_id in runs:
            try:
                report = ray.get(engine.registry.follow.remote(run_id))
            except Exception as e:
                print(f"{run_id}: could not be carried on: {_remote_cause(e)}")
                failed += 1
                continue
            print(f"{run_id}: {report.status.value}: {report.reason}", flush=True)
            failed += report.status is not BasketState.COMPLETED
    return 0 if failed == 0 else 1


def _remote_cause(e: BaseException) -> str:
    """The message of what a remote call raised, without Ray's wrapping and traceback."""
    cause = getattr(e, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def cmd_cancel(args: argparse.Namespace) -> int:
    import ray

    from cluster.engine import running_baskets

    _connect(args.address)
    actor = running_baskets(args.namespace).get(args.basket_id)
    if actor is None:
        raise UserError(
            f"no basket {args.basket_id!r} is running in namespace {args.namespace!r} "
            "(`legato status` lists them)"
        )
    try:
        state = ray.get(actor.cancel.remote("cancelled with legato cancel"), timeout=10)
    except Exception as e:  # it ended (or its driver went) between the lookup and the call
        raise UserError(
            f"basket {args.basket_id}: could not be reached ({type(e).__name__})"
        ) from None
    print(f"basket {args.basket_id}: cancel requested (it was {state.value}); its policy applies")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    print(
        "legato demo: the synthetic ETH basket (long ETH perp on alpha, long stETH on beta, "
        "short BTC perp on gamma) on three simulated venues, on a local Ray\n"
    )
    return _run_basket(
        DEMO_BASKET,
        DEMO_VENUES,
        address=None,
        json_path=args.json,
        png_path=args.png,
        html_path=args.html,
        progress=not args.no_progress and sys.stdout.isatty(),
        every_s=2.0,
        overrides=args.overrides or (),
    )


def _report_outputs(cmd: argparse.ArgumentParser, json: bool = True) -> None:
    if json:
        cmd.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    cmd.add_argument(
        "--png", metavar="PATH", help="also draw the basket's path (completion, imbalance, hedge)"
    )
    cmd.add_argument(
        "--html", metavar="PATH", help="also write the report as a self-contained HTML page"
    )


def _overrides_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override a field of the basket file before it is validated; repeatable. KEY is "
        "a dotted path (params.horizon_s, legs.0.quantity or legs.eth.quantity by leg_id), "
        "VALUE a TOML value or a plain string: --set params.horizon_s=120 "
        "--set policy=unwind",
    )


def build_parser() -> argparse.ArgumentParser:
    from cluster.journal_cli import add_journal_commands

    parser = argparse.ArgumentParser(
        prog="legato",
        description="Coordinated basket and multi-leg order execution for crypto, on Ray.",
    )
    parser.add_argument(
        "--version", action="version", version=f"legato {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a basket on simulated venues on this machine",
        description="The embedded default: a local Ray, three simulated venues "
        "(examples/venues.toml: colocated, same-region, cross-region) and the synthetic ETH "
        "basket (examples/synthetic_eth_quick.toml), with live progress and the report. "
        "No cluster and no credentials needed. (`legato venues simulate` shows the markets.)",
    )
    _report_outputs(demo)
    _overrides_option(demo)
    demo.add_argument("--no-progress", action="store_true", help="no live progress display")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="execute a basket and print its report",
        description="Submit BASKET.toml to the engine, show its progress (bars on a terminal, "
        "a plain line every few seconds otherwise, as in Ray job logs) and print its report. "
        "Exit status 0 only if the basket completed.",
    )
    run.add_argument("basket", metavar="BASKET.toml", help="the basket (docs/basket.md)")
    run.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default examples/venues.toml)",
    )
    run.add_argument(
        "--address",
        metavar="ADDR",
        help='a Ray cluster ("auto", "ray://host:10001"); default: $RAY_ADDRESS or a local Ray',
    )
    _report_outputs(run)
    _overrides_option(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    run.add_argument(
        "--every",
        type=_positive(float),
        default=5.0,
        help="seconds between progress lines when not on a terminal (default 5)",
    )
    run.set_defaults(func=cmd_run)

    backtest = sub.add_parser(
        "backtest",
        help="replay a basket through legato's cores on simulated time, per execution mode",
        description="Run BASKET.toml on the simulated venues of VENUES.toml (synthetic, or "
        "--replay of recorded data) through the same pure cores as the actors, on simulated "
        "time with no Ray, once per seed and execution mode, and print per mode the mean and "
        "p95 of legging risk, peak imbalance, shortfall, completion time and hedge cost "
        "(docs/backtest.md). Deterministic per seed.",
    )
    backtest.add_argument("basket", metavar="BASKET.toml", help="the basket (docs/basket.md)")
    backtest.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default examples/venues.toml); simulated venues only",
    )
    backtest.add_argument(
        "--seeds", type=_positive(int), default=20, help="runs per mode, seeds 0..N-1 (default 20)"
    )
    backtest.add_argument(
        "--replay", metavar="DIR", help="every venue replays the recorded data in DIR"
    )
    backtest.add_argument(
        "--compare",
        metavar="MODES",
        default="coordinated,independent,sequential",
        help="execution modes, comma-separated (default coordinated,independent,sequential)",
    )
    backtest.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    backtest.add_argument("--quiet", action="store_true", help="no line per run")
    _overrides_option(backtest)
    backtest.set_defaults(func=cmd_backtest)

    report = sub.add_parser(
        "report",
        help="print a basket report's summary; draw its chart",
        description="Read REPORT.json (written by `legato run --json`, or by "
        "BasketReport.write) and print its summary: outcome, cost, legs, integrity, hedge and "
        "operations (docs/report.md). --png and --html also write its chart and an HTML page.",
    )
    report.add_argument("report", metavar="REPORT.json", help="a basket report")
    _report_outputs(report, json=False)
    report.set_defaults(func=cmd_report)

    for name, helptext, func in (
        ("status", "list the running baskets of a cluster and their progress", cmd_status),
        ("cancel", "cancel a running basket (its failure policy applies)", cmd_cancel),
    ):
        cmd = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:])
        if name == "cancel":
            cmd.add_argument("basket_id", metavar="BASKET_ID", help="the basket's id")
        cmd.add_argument(
            "--address", metavar="ADDR", help="the Ray cluster (default: $RAY_ADDRESS)"
        )
        cmd.add_argument(
            "--namespace", default="legato", help="the engine's Ray namespace (default legato)"
        )
        cmd.set_defaults(func=func)

    attach = sub.add_parser(
        "attach",
        help="follow a running basket (submitted by any driver) and print its report",
        description="Follow RUN (a run id such as synth-eth-quick#3, or a basket id: its "
        "latest run) on a cluster until it ends, then print its report. A run whose basket "
        "actor was lost is carried on from the journal first. Exit status 0 only if it "
        "completed.",
    )
    attach.add_argument("run", metavar="RUN", help="a run id, or a basket id (its latest run)")
    attach.add_argument("--address", metavar="ADDR", help="the Ray cluster (default: $RAY_ADDRESS)")
    attach.add_argument(
        "--namespace", default="legato", help="the engine's Ray namespace (default legato)"
    )
    attach.add_argument("--no-progress", action="store_true", help="no progress lines")
    attach.add_argument(
        "--every", type=_positive(float), default=5.0, help="seconds between progress lines"
    )
    _report_outputs(attach)
    attach.set_defaults(func=cmd_attach)

    recover = sub.add_parser(
        "recover",
        help="carry on every basket the journal shows unfinished, and wait for them",
        description="Start the engine of VENUES.toml (a local Ray, or --address): its "
        "supervisor takes every run of the journal that did not finish (a machine that "
        "restarted, a cluster that was lost), checks it against its venues and carries it "
        "on under its policy. Exits when those runs end: 0 if every one completed.",
    )
    recover.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default examples/venues.toml)",
    )
    recover.add_argument("--address", metavar="ADDR", help="a Ray cluster (default: a local Ray)")
    recover.set_defaults(func=cmd_recover)

    add_journal_commands(sub)

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


def _version() -> str:
    """The installed package's version (the checkout's, for an editable install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("legato")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


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
