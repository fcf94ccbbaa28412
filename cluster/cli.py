"""The `legato` command line: one entry point, a subcommand for each way in."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from actors.report import BasketReport

REPO_ROOT = Path(__file__).resolve().parent.parent
# The examples travel inside the package (examples/ of a checkout links here), so that an
# installed legato runs `legato demo` with no checkout.
EXAMPLES = Path(__file__).resolve().parent / "examples"
DEMO_VENUES = EXAMPLES / "venues.toml"
DEMO_BASKET = EXAMPLES / "synthetic_eth_quick.toml"


def default_data_dir() -> Path:
    """Where the recorded Binance data lives: $LEGATO_DATA_DIR, else ../shared/data/..."""
    env = os.environ.get("LEGATO_DATA_DIR")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "binance-20240808"


# Exit statuses, the same for every command (docs/operations.md, "Exit codes").
EXIT_OK = 0  # done: the basket (every run, every run followed) completed
EXIT_NOT_COMPLETED = 1  # the command worked, but a basket or a run did not complete
EXIT_USER_ERROR = 2  # bad input, a basket that fails validation, no cluster to reach
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_STATUSES = (
    "Exit status: 0 done; 1 a basket or run did not complete; 2 a mistake in the input, "
    "a basket that fails its checks, or no cluster to reach; 130 interrupted."
)


class UserError(Exception):
    """A mistake of the user's: printed as one line, never as a traceback."""


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


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
    web: bool = False,
) -> int:
    """Submit one basket, show its progress, print its report; 0 if it completed. With
    `web`, the web view is served while it runs (and, on a terminal, after it, until
    Ctrl-C)."""
    from actors.spec import SpecError
    from actors.spec.overrides import load_basket_with_overrides

    try:
        spec = load_basket_with_overrides(Path(basket), overrides)
    except SpecError as e:
        raise UserError(str(e)) from None
    _show_overrides(overrides)
    # Ray is imported (a second or two) only for a basket that passed its checks.
    from actors.lifecycle import BasketState
    from cluster import present
    from cluster.engine import Engine, EngineError

    try:
        engine = Engine.start(venues, address=address)
    except EngineError as e:
        raise UserError(str(e)) from None
    with engine:
        view = _serve_web(engine) if web else None
        try:
            try:
                handle = engine.submit(spec, submitted_by="legato run")
            except (SpecError, EngineError) as e:
                raise UserError(str(e)) from None
            if handle.run_id:
                print(f"legato: run {handle.run_id} (journal: {engine.journal_shown})", flush=True)
            try:
                _show_progress(handle, progress, every_s, present)
            except KeyboardInterrupt:
                print(
                    "\nlegato: cancelling the basket (Ctrl-C again does not wait)", file=sys.stderr
                )
                handle.cancel("cancelled from the terminal")
            report = handle.result()
            if view is not None:  # shown while the engine (and so the view's data) is up
                _show_report(report, png_path, html_path, json_path=json_path)
                _keep_serving(view)
        finally:
            if view is not None:
                view.close()
    if view is None:
        _show_report(report, png_path, html_path, json_path=json_path)
    return EXIT_OK if report.status is BasketState.COMPLETED else EXIT_NOT_COMPLETED


def _serve_web(engine: object) -> object:
    """The web view of the engine's namespace on 127.0.0.1 (any free port); its URL printed."""
    from cluster.web import WebError, serve_in_thread

    try:
        view = serve_in_thread(
            engine.namespace,  # type: ignore[attr-defined]
            host="127.0.0.1",
            port=0,
            journal=engine.journal,  # type: ignore[attr-defined]
        )
    except (WebError, OSError) as e:
        raise UserError(f"--web: cannot serve the web view: {e}") from None
    print(f"legato: web view at {view.url}", flush=True)
    return view


def _keep_serving(view: object) -> None:
    """On a terminal the web view stays up after the report, until Ctrl-C; elsewhere (a
    pipe, a job log) nobody is there to look, and the command ends."""
    if not sys.stdin.isatty():
        return
    url = view.url  # type: ignore[attr-defined]
    print(f"legato: the web view stays at {url} until Ctrl-C", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


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
    """On a terminal, the basket's block redrawn in place (rich's `Live`); elsewhere a plain
    line every `every_s` seconds and at the end."""
    statuses = handle.progress(every_s=0.25 if tty else every_s)  # type: ignore[attr-defined]
    if tty:
        from rich.live import Live

        with Live(auto_refresh=False, transient=False, redirect_stdout=False) as live:
            for status in statuses:
                live.update(present.status_view(status), refresh=True)  # type: ignore[attr-defined]
        return
    last_plain = 0.0
    for status in statuses:
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
    from actors.backtest import (
        BacktestError,
        RunResult,
        check_venues,
        compare,
        parse_modes,
        results_table,
    )
    from actors.lifecycle import BasketState
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

        failed: list[str] = []

        def progress(r: RunResult) -> None:
            report = r.report
            if report.status is not BasketState.COMPLETED:
                failed.append(
                    f"seed {r.seed} {r.variant or r.mode.value}: {report.status.value}: "
                    f"{report.reason}"
                )
            if args.quiet:
                return
            m = r.metrics()
            risk = m["legging_risk_usd"]
            print(
                f"  seed {r.seed:3d} {r.variant or r.mode.value:12s} "
                f"{r.report.status.value:10s} "
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
        if args.lose_basket_after is not None:
            print(
                f"  the basket actor is lost {args.lose_basket_after:g} s after the legs fire, "
                "and taken over (docs/backtest.md)",
                flush=True,
            )
        doc = compare(
            spec,
            config,
            modes,
            args.seeds,
            risk=cluster.risk,
            progress=progress,
            routing=cluster.collateral.rules(),
            jobs=args.jobs,
            lose_basket_after_s=args.lose_basket_after,
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
    if failed:
        # A run that did not end COMPLETED failed, a basket refused at its check (FAILED
        # with nothing sent) included: the figures above leave it out of nothing.
        print(f"\n{len(failed)} run(s) did not complete:")
        for line in failed:
            print(f"  {line}")
        return EXIT_NOT_COMPLETED
    return EXIT_OK


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
    """Join the cluster at `address` (else $RAY_ADDRESS), the address checked before Ray is
    imported (`cluster.address.join`)."""
    from cluster.address import AddressError, join

    try:
        join(
            address,
            none_given="no cluster to ask: give --address (e.g. 127.0.0.1:6379) or set "
            "RAY_ADDRESS; a basket run by `legato run` without a cluster lives only in that "
            "process",
        )
    except AddressError as e:
        raise UserError(str(e)) from None


def cmd_status(args: argparse.Namespace) -> int:
    _connect(args.address)  # before the imports: they load Ray
    import ray

    from actors.journal import JournalError
    from actors.shells.remote import REGISTRY_NAME
    from cluster import present
    from cluster.config import journal_location
    from cluster.engine import running_baskets
    from cluster.journal_cli import JournalLookupError, history_text, recent_runs, where

    # The registry knows every live basket, those on unnamed warm-pool actors included.
    live = running_baskets(args.namespace)
    admission: dict[str, list[str]] = {"arming": [], "running": [], "waiting": []}
    if live:
        registry = ray.get_actor(REGISTRY_NAME, namespace=args.namespace)
        admission = ray.get(registry.admission_queue.remote(), timeout=10)
    statuses = {}
    for basket_id in sorted(live):
        try:
            statuses[basket_id] = ray.get(live[basket_id].status.remote(), timeout=10)
        except Exception:  # it ended between the listing and the call
            continue
    waiting = [b for b in admission.get("waiting", []) if b in statuses]
    running = [statuses[b] for b in sorted(statuses) if b not in waiting]
    queued = [statuses[b] for b in waiting]
    location = args.journal or _cluster_journal(args.namespace) or journal_location()
    recent: list[present.RunRow] = []
    trouble = None
    if args.recent:
        try:
            recent = recent_runs(location, args.recent)
        except (JournalLookupError, JournalError, OSError) as e:
            trouble = str(e)
    if args.json:
        view = present.StatusView(
            namespace=args.namespace,
            running=running,
            queued=queued,
            admission=admission,
            recent=recent,
            journal=where(location),
            journal_error=trouble,
        )
        print(msgspec.json.format(msgspec.json.encode(view), indent=2).decode())
        return EXIT_OK
    if not running and not queued:
        print(f"no basket running in namespace {args.namespace!r}")
    for status in running:
        print("\n".join(present.status_lines(status)))
    if queued:
        print(f"queued ({len(queued)}), first in line first:")
        for place, status in enumerate(queued, 1):
            print(f"  {place}. {status.basket_id}: {status.reason or status.state.value}")
    if args.recent:
        print()
        if trouble is not None:
            print(f"recent runs: none shown ({trouble})")
        elif recent:
            print(f"recent runs (journal at {where(location)}):")
            print(history_text(recent))
        else:
            print(f"recent runs: none finished in the journal at {where(location)}")
    return EXIT_OK


def _cluster_journal(namespace: str) -> str | None:
    """Where the engine of `namespace` keeps its journal, as its registry says (None when no
    engine ever ran there): the cluster's journal, not this machine's default."""
    import ray

    from actors.shells.remote import REGISTRY_NAME

    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=namespace)
        return str(ray.get(registry.journal_location.remote(), timeout=10))
    except Exception:  # no engine ever ran there, or its registry is restarting
        return None


def cmd_release_hedge(args: argparse.Namespace) -> int:
    """Trade away the hedge a finished basket holds (policy `hedge_and_hold`)."""
    _connect(args.address)  # before the imports: they load Ray
    import ray

    from actors.shells.remote import HEDGE_NAME

    try:
        hedger = ray.get_actor(HEDGE_NAME, namespace=args.namespace)
    except ValueError:
        raise UserError(
            f"no hedge actor in namespace {args.namespace!r}: no engine ever ran there"
        ) from None
    try:
        statements = ray.get(hedger.release.remote(args.basket_id), timeout=args.timeout)
    except ray.exceptions.GetTimeoutError:
        print(
            f"basket {args.basket_id}: the hedge actor did not answer within "
            f"{args.timeout:g} s; the release may still be under way",
            file=sys.stderr,
        )
        return EXIT_NOT_COMPLETED
    except Exception as e:
        raise UserError(f"basket {args.basket_id}: {_remote_cause(e)}") from None
    if not statements:
        raise UserError(
            f"basket {args.basket_id!r} holds no hedge in namespace {args.namespace!r} (it "
            "never had one, or it was already released)"
        )
    for st in statements:
        print(
            f"basket {st.basket_id}: hedge released: {st.orders} order(s), largest position "
            f"${st.max_abs_position:,.0f}, P&L ${st.pnl_usd:,.2f}, fees ${st.fees_usd:,.2f}, "
            + ("flat" if st.flat else "NOT flat")
        )
    return EXIT_OK if all(st.flat for st in statements) else EXIT_NOT_COMPLETED


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a basket against its venues' instruments and collateral; nothing is sent."""
    from actors.spec import RebalanceSpec, SpecError
    from actors.spec.overrides import load_basket_with_overrides
    from cluster import validate as checks
    from cluster.config import load_cluster

    path = Path(args.basket)
    overrides = args.overrides or []
    try:
        spec = load_basket_with_overrides(path, overrides)
    except SpecError as e:
        raise UserError(str(e)) from None
    cluster = load_cluster(args.venues)  # a ConfigError names the file and the field
    if spec.hedge is None and cluster.hedge is not None:
        spec = msgspec.structs.replace(spec, hedge=cluster.hedge)  # the config's [hedge]
    source = f"{path} with --set {' '.join(overrides)}" if overrides else str(path)
    rules = cluster.collateral.rules()
    names = checks.venues_of(spec, cluster.venues, rules)
    now = time.time_ns()
    figures, trouble = checks.read_venues(
        cluster.venues,
        names,
        checks.symbols_of(spec),
        cluster.risk,
        positions=isinstance(spec, RebalanceSpec),
        now_ns=now,
    )
    if trouble:
        lines = "\n".join(f"  {e}" for e in trouble)
        raise UserError(f"{source}: cannot check basket {spec.basket_id!r}: {lines.strip()}")
    try:
        checked = checks.check(
            spec, figures, list(cluster.venues.venues), rules, now, risk=cluster.risk
        )
    except SpecError as e:
        raise UserError(str(SpecError(e.errors, source=source, basket_id=e.basket_id))) from None
    _show_checked(checked, source, args.venues)
    return EXIT_OK


def _show_checked(checked: object, source: str, venues: str) -> None:
    from actors.margin import fmt_amount
    from cluster.render import Table, _num, _price, _qty, text_table

    basket = checked.basket  # type: ignore[attr-defined]
    print(
        f"{source}: basket {basket.basket_id} ok against {venues}: {len(basket.legs)} leg(s), "
        "nothing was sent"
    )
    legs = Table(
        ("leg", "venue", "symbol", "side", "quantity", "price", "notional $"),
        [
            (
                leg.leg_id,
                leg.venue,
                leg.symbol,
                leg.side.value,
                _qty(leg.quantity),
                _price(leg.price),
                _num(leg.instrument.notional(leg.price, leg.quantity) if leg.price else None),
            )
            for leg in basket.legs
        ],
        right=frozenset({4, 5, 6}),
    )
    print("\n".join(text_table(legs)))

    pools = Table(
        ("venue", "notional $", "needs", "available"),
        [
            (
                v.venue,
                _num(v.notional_usd),
                fmt_amount(need, asset),
                fmt_amount(v.available.get(asset, 0), asset),
            )
            for v in checked.venues  # type: ignore[attr-defined]
            for asset, need in sorted(v.needs.items())
        ],
        right=frozenset({1, 2, 3}),
    )
    print("collateral (margin with the collateral actor's buffer and fees):")
    print("\n".join(text_table(pools)))
    routing = checked.routing  # type: ignore[attr-defined]
    if routing:
        print(f"  short: under [collateral] routing these transfers would fund it: {routing}")
        waits = basket.params.on_unfunded.value == "wait"
        print(
            f"  meanwhile (params.on_unfunded = {basket.params.on_unfunded.value}): "
            + (
                "the basket waits in CHECKING, nothing sent"
                if waits
                else "the funded legs start, the hedge holds the others' exposure"
            )
        )
    else:
        print("  reservable now on every venue")
    for warning in basket.warnings:
        print(f"  warning: {warning}")
    for note in basket.notes:
        if not note.startswith("warning: "):  # each warning is a note too: shown above
            print(f"  note: {note}")


def cmd_attach(args: argparse.Namespace) -> int:
    """Follow a basket run by another driver (one that died too) to its end."""
    _connect(args.address)  # before the imports: they load Ray
    import ray

    from actors.lifecycle import BasketState
    from actors.shells.remote import REGISTRY_NAME, basket_actor_name
    from cluster import present

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
    _connect(args.address)  # before the imports: they load Ray
    import ray

    from cluster.engine import running_baskets

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
        web=args.web,
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


def _cluster_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--address", metavar="ADDR", help="the Ray cluster (default: $RAY_ADDRESS)")
    cmd.add_argument(
        "--namespace", default="legato", help="the engine's Ray namespace (default legato)"
    )


def build_parser() -> argparse.ArgumentParser:
    from cluster.journal_cli import add_journal_commands
    from cluster.web import add_web_command

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
        "No cluster and no credentials needed. (`legato venues simulate` shows the markets.) "
        "--web also serves the web view on 127.0.0.1 while it runs. " + EXIT_STATUSES,
    )
    _report_outputs(demo)
    _overrides_option(demo)
    demo.add_argument("--no-progress", action="store_true", help="no live progress display")
    demo.add_argument(
        "--web",
        action="store_true",
        help="serve the web view on 127.0.0.1 (its URL is printed) while the demo runs; on a "
        "terminal it stays up after the report until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="execute a basket and print its report",
        description="Submit BASKET.toml to the engine, show its progress (bars on a terminal, "
        "a plain line every few seconds otherwise, as in Ray job logs) and print its report. "
        + EXIT_STATUSES,
    )
    run.add_argument("basket", metavar="BASKET.toml", help="the basket (docs/basket.md)")
    run.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default: the packaged examples/venues.toml)",
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
        "(docs/backtest.md). Deterministic per seed. A run fails unless it ends COMPLETED "
        "(a basket its collateral check refuses fails too): exit 1 lists the seeds and modes "
        "that failed. " + EXIT_STATUSES,
    )
    backtest.add_argument("basket", metavar="BASKET.toml", help="the basket (docs/basket.md)")
    backtest.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default: the packaged examples/venues.toml); "
        "simulated venues only",
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
        help="execution modes, comma-separated, each optionally with a child style as "
        "mode:style, e.g. coordinated:twap,coordinated:passive (a row per entry; a bare mode "
        "runs the basket's own style; default coordinated,independent,sequential)",
    )
    backtest.add_argument(
        "--jobs",
        type=_positive(int),
        default=1,
        help="runs at once, each in a process of its own (default 1); the figures are the "
        "same, the lines per run come as runs end",
    )
    backtest.add_argument(
        "--lose-basket-after",
        metavar="SECONDS",
        type=_not_negative,
        default=None,
        help="every run loses its basket actor (and its legs' actors) this long after the "
        "legs fire; a successor takes the run over, as the supervisor has one do live, and "
        "the basket ends under its policy (docs/backtest.md, 'A lost basket actor')",
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
        "operations (docs/report.md). --png and --html also write its chart and an HTML page. "
        + EXIT_STATUSES,
    )
    report.add_argument("report", metavar="REPORT.json", help="a basket report")
    _report_outputs(report, json=False)
    report.set_defaults(func=cmd_report)

    status = sub.add_parser(
        "status",
        help="list the running and queued baskets of a cluster, and the runs that ended last",
        description="List the baskets running on a cluster (a block each: state, schedule, "
        "skew against the band, hedge, a bar per leg), those queued for their turn to arm, "
        "and the --recent runs that finished last, from the journal. --json prints one "
        "object {namespace, running, queued, admission, recent, journal, journal_error} "
        "(docs/operations.md). " + EXIT_STATUSES,
    )
    _cluster_options(status)
    status.add_argument("--json", action="store_true", help="print the status as one JSON object")
    status.add_argument(
        "--recent",
        type=_count,
        default=5,
        metavar="N",
        help="the N runs that finished last, from the journal (default 5; 0: none)",
    )
    status.add_argument(
        "--journal",
        metavar="LOC",
        help="the journal: a data directory (SQLite) or a postgresql:// DSN (default: the "
        "one the namespace's engine keeps, else $LEGATO_JOURNAL or the local default)",
    )
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser(
        "cancel",
        help="cancel a running basket (its failure policy applies)",
        description="Cancel the running basket BASKET_ID: its legs stop and its failure "
        "policy applies (unwind, complete or hedge_and_hold). " + EXIT_STATUSES,
    )
    cancel.add_argument("basket_id", metavar="BASKET_ID", help="the basket's id")
    _cluster_options(cancel)
    cancel.set_defaults(func=cmd_cancel)

    release = sub.add_parser(
        "release-hedge",
        help="trade away the hedge a finished basket holds",
        description="The hedge actor lets go of the hedge BASKET_ID holds (policy "
        "hedge_and_hold, or complete after a failure) and trades it away; prints what it "
        "released. A basket that holds no hedge is an error (2); a hedge not flat after the "
        "release exits 1. " + EXIT_STATUSES,
    )
    release.add_argument("basket_id", metavar="BASKET_ID", help="the basket's id")
    _cluster_options(release)
    release.add_argument(
        "--timeout",
        type=_positive(float),
        default=120.0,
        metavar="S",
        help="seconds to wait for the hedge to be traded away (default 120)",
    )
    release.set_defaults(func=cmd_release_hedge)

    validate = sub.add_parser(
        "validate",
        help="check a basket against its venues' instruments and collateral; sends nothing",
        description="Check BASKET.toml as the engine checks it at submission: every field, "
        "each leg's symbol against its venue's listing, the lot grid and the minimum "
        "notional at the venue's price, the hedge's instruments, and the collateral: the "
        "margin (with the collateral actor's buffer and fees) against each venue's account, "
        "or the transfers [collateral] routing would make. Simulated venues are built in "
        "this process; real ones are read through their clients' read-only calls (their "
        "keys from the environment). Prints the legs and the collateral per venue, or every "
        "error with its field. Nothing is sent to any venue. " + EXIT_STATUSES,
    )
    validate.add_argument("basket", metavar="BASKET.toml", help="the basket (docs/basket.md)")
    validate.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default: the packaged examples/venues.toml)",
    )
    _overrides_option(validate)
    validate.set_defaults(func=cmd_validate)

    attach = sub.add_parser(
        "attach",
        help="follow a running basket (submitted by any driver) and print its report",
        description="Follow RUN (a run id such as synth-eth-quick#3, or a basket id: its "
        "latest run) on a cluster until it ends, then print its report. A run whose basket "
        "actor was lost is carried on from the journal first. " + EXIT_STATUSES,
    )
    attach.add_argument("run", metavar="RUN", help="a run id, or a basket id (its latest run)")
    _cluster_options(attach)
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
        "on under its policy. Exits when those runs end: 0 if every one completed. "
        + EXIT_STATUSES,
    )
    recover.add_argument(
        "--venues",
        metavar="VENUES.toml",
        default=str(DEMO_VENUES),
        help="the venues configuration (default: the packaged examples/venues.toml)",
    )
    recover.add_argument("--address", metavar="ADDR", help="a Ray cluster (default: a local Ray)")
    recover.set_defaults(func=cmd_recover)

    add_journal_commands(sub)
    add_web_command(sub)

    venues = sub.add_parser(
        "venues",
        help="simulated venues",
        description="Run and inspect simulated venues. " + EXIT_STATUSES,
    )
    vsub = venues.add_subparsers(dest="venues_command", required=True, metavar="COMMAND")
    sim = vsub.add_parser(
        "simulate",
        help="run a simulated market as fast as it goes and measure it",
        description="Run the market for N seconds of simulated time through the exchange "
        "core and print realised vol, correlations, spread and top-of-book depth "
        "beside the calibration targets. " + EXIT_STATUSES,
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
        "their URLs, and serve until Ctrl-C. " + EXIT_STATUSES,
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
