"""`legato web`: serve the web view of a running cluster until Ctrl-C.

Nothing heavy is imported until the command runs, so that `legato --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
DEFAULT_NAMESPACE = "legato"


class _Refused(Exception):
    """The command cannot go on: one line on stderr, exit status 2."""


def _connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (else $RAY_ADDRESS), as `legato status` does
    (`cluster.address.join`)."""
    from cluster.address import AddressError, join  # noqa: PLC0415

    try:
        join(
            address,
            none_given="no cluster to show: give --address (e.g. 127.0.0.1:6379) or set "
            "RAY_ADDRESS; for the demo's own cluster use `legato demo --web`",
        )
    except AddressError as e:
        raise _Refused(str(e)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0: any free port), got {value}")
    return value


def cmd_web(args: argparse.Namespace) -> int:
    """`legato web`: check the binding and token first (before touching Ray), then serve."""
    from cluster.web.security import WebError, check_bind, load_token  # noqa: PLC0415

    try:
        token = load_token(os.environ, args.token_file)
        check_bind(args.host, token)
        _connect(args.address)
        from cluster.web.server import serve_in_thread  # noqa: PLC0415

        running = serve_in_thread(
            args.namespace, host=args.host, port=args.port, token=token, journal=args.journal
        )
    except (WebError, _Refused) as e:
        print(f"legato: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the port is taken, the address is not this machine's
        print(
            f"legato: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
            file=sys.stderr,
        )
        return 2
    actions = "cancel and release need the token" if token else "read-only (no token)"
    print(f"legato web: namespace {args.namespace!r} at {running.url}  ({actions}); Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    return 0


def add_web_command(sub: argparse._SubParsersAction) -> None:
    """Register `web` on the `legato` command's subparsers."""
    web = sub.add_parser(
        "web",
        help="serve a live web view of a running cluster (baskets, hedges, collateral, runs)",
        description="Serve a web page of the baskets running and queued in a namespace, with "
        "live progress (legs against the band, imbalance, hedge), the hedge desk, collateral "
        "per venue, transfers in flight and past runs from the journal with their reports "
        "(docs/web.md). Listens on 127.0.0.1 unless --host says otherwise; any other address "
        "needs a token ($LEGATO_WEB_TOKEN or --token-file), which is also what cancelling a "
        "basket or releasing a held hedge from the page asks for. Serves until Ctrl-C. "
        "Exit status: 0 stopped with Ctrl-C; 2 a mistake in the input (a bind without a "
        "token, a bad token file) or no cluster to reach.",
    )
    web.add_argument(
        "--address", help="the Ray cluster (default $RAY_ADDRESS), e.g. 127.0.0.1:6379"
    )
    web.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"the engine's namespace (default {DEFAULT_NAMESPACE!r})",
    )
    web.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on (default {DEFAULT_HOST}; any other needs a token)",
    )
    web.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"the port to listen on (default {DEFAULT_PORT}; 0: any free port)",
    )
    web.add_argument(
        "--token-file",
        metavar="FILE",
        help="a file holding the token (default: $LEGATO_WEB_TOKEN); without one the view "
        "is read-only and binds to the loopback only",
    )
    web.add_argument(
        "--journal",
        metavar="LOC",
        help="read past runs from this journal (a data directory or a postgresql:// DSN) "
        "instead of the one the engine's registry names",
    )
    web.set_defaults(func=cmd_web)
