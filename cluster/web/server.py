"""The web view's HTTP server (aiohttp): the page, its JSON, its event stream, its actions.

One `Feed` task reads the desk every `every_s` and hands each new `DeskState` to the pages
listening on `GET /api/events` (server-sent events); `GET /api/state` answers the latest.
`serve_in_thread` runs the server on a thread and loop of its own, in a process that is
already connected to Ray (`legato web`, `legato demo --web`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from cluster.journal_cli import JournalLookupError
from cluster.web.security import SESSION_COOKIE, Denied, Guard, is_loopback
from cluster.web.sources import DeskReader, NotFound, SourceError, run_link
from cluster.web.view import DeskState

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
EVERY_S = 1.0  # how often the desk is read while the server runs
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing a quiet stream
FIRST_STATE_S = 10.0  # how long `GET /api/state` waits for the first reading
MAX_REASON = 200

_PAGE_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The report page is self-contained: inline styles and an inline SVG chart, no scripts.
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


class BadRequest(Exception):
    """The request is malformed: 400, with what is wrong and what would be accepted."""


class Feed:
    """The latest desk state, read again every `every_s`, and who waits for the next one."""

    def __init__(self, reader: DeskReader, guard: Guard, every_s: float = EVERY_S) -> None:
        self.reader = reader
        self.guard = guard
        self.every_s = every_s
        self.version = 0
        self.latest: bytes | None = None
        self._last: DeskState | None = None
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Read, publish when it changed, wait; never dies of one bad reading."""
        while not self._stopping.is_set():
            try:
                state = await self.reader.state(actions_enabled=self.guard.actions_enabled)
                await self._publish(state)
            except Exception:
                log.exception("web view: reading the desk failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every_s)

    async def _publish(self, state: DeskState) -> None:
        same = self._last is not None and msgspec.structs.replace(
            state, ts_ns=0
        ) == msgspec.structs.replace(self._last, ts_ns=0)
        if same:
            return
        self._last = state
        async with self._changed:
            self.latest = msgspec.json.encode(state)
            self.version += 1
            self._changed.notify_all()

    async def after(self, version: int, timeout: float) -> tuple[int, bytes] | None:
        """The first state newer than `version`, within `timeout` s; None at a timeout or
        when the server stops."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self.version > version or self._stopping.is_set()
                    ),
                    timeout,
                )
            if self._stopping.is_set() or self.version <= version or self.latest is None:
                return None
            return self.version, self.latest

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self) -> None:
        self._stopping.set()
        async with self._changed:
            self._changed.notify_all()


READER = web.AppKey("reader", DeskReader)
GUARD = web.AppKey("guard", Guard)
FEED = web.AppKey("feed", Feed)
HOSTS = web.AppKey("hosts", frozenset)


# -- answers -------------------------------------------------------------------------------
def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload), status=status, content_type="application/json"
    )


@web.middleware
async def _guarded(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Errors as JSON; the Host check; the read rule on every read; security headers."""
    hosts = request.app[HOSTS]
    if hosts and (request.url.host or "").lower() not in hosts:
        # A page of another site that rebinds its name to 127.0.0.1 must not read the desk.
        return _error(421, f"this server answers for {', '.join(sorted(hosts))} only")
    try:
        if request.method == "GET" and request.path != "/api/session":
            request.app[GUARD].check_read(
                request.headers.get("Authorization"), request.cookies.get(SESSION_COOKIE)
            )
        response = await handler(request)
    except Denied as e:
        response = _error(e.status, e.message)
        if e.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="legato"'
    except BadRequest as e:
        response = _error(400, str(e))
    except NotFound as e:
        response = _error(404, str(e))
    except SourceError as e:
        response = _error(503, str(e))
    except JournalLookupError as e:
        response = _error(503, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = _error(e.status, e.reason)
    except msgspec.DecodeError as e:
        response = _error(500, f"the journal holds a record this legato cannot read ({e})")
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- the handlers --------------------------------------------------------------------------
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def state(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    if feed.latest is None:
        await feed.after(0, FIRST_STATE_S)
    if feed.latest is None:
        return _error(503, "the desk has not been read yet; try again")
    return web.Response(body=feed.latest, content_type="application/json")


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `state` events, each a whole `DeskState`, as it changes."""
    feed = request.app[FEED]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    version = 0
    try:
        await response.write(b"retry: 2000\n\n")
        while not feed.stopping:
            got = await feed.after(version, KEEPALIVE_S)
            if got is None:
                await response.write(b": keepalive\n\n")
                continue
            version, body = got
            await response.write(b"event: state\nid: %d\ndata: %s\n\n" % (version, body))
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away, or the server is stopping
    return response


async def runs(request: web.Request) -> web.Response:
    limit_text = request.query.get("limit", "50")
    try:
        limit = int(limit_text)
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        return _error(400, f"limit: expected a whole number from 1 to 1000, got {limit_text!r}")
    found = await request.app[READER].runs(limit)
    return _json({"runs": [run_link(r) for r in found]})


async def report(request: web.Request) -> web.Response:
    page = await request.app[READER].report_html(request.match_info["run_id"])
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": _REPORT_CSP},
    )


async def session(request: web.Request) -> web.Response:
    """Trade the bearer token for a session cookie, so that the page's event stream (which
    cannot send headers) may read where reads need the token."""
    guard = request.app[GUARD]
    guard.check_action(request.headers.get("Authorization"))
    response = _json({"session": True})
    response.set_cookie(
        SESSION_COOKIE,
        guard.session_cookie(),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure,
    )
    return response


async def _reason(request: web.Request, default: str) -> str:
    if not request.can_read_body:
        return default
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest('the body must be JSON, e.g. {"reason": "..."}') from None
    reason = body.get("reason", default) if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise BadRequest("reason: expected a string")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise BadRequest(f"reason: at most {MAX_REASON} characters, got {len(reason)}")
    return reason or default


async def cancel(request: web.Request) -> web.Response:
    request.app[GUARD].check_action(request.headers.get("Authorization"))
    basket_id = request.match_info["basket_id"]
    reason = await _reason(request, "cancelled from the web view")
    was = await request.app[READER].cancel(basket_id, reason)
    log.info("web view: cancel of basket %s requested (it was %s)", basket_id, was.value)
    return _json(
        {"basket_id": basket_id, "cancel_requested": True, "was": was.value, "reason": reason}
    )


async def release(request: web.Request) -> web.Response:
    request.app[GUARD].check_action(request.headers.get("Authorization"))
    basket_id = request.match_info["basket_id"]
    statements = await request.app[READER].release(basket_id)
    if not statements:
        raise NotFound(f"the hedge desk holds no hedge for basket {basket_id!r}")
    log.info("web view: hedge of basket %s released", basket_id)
    return _json({"basket_id": basket_id, "released": statements})


async def _not_found(request: web.Request) -> web.Response:
    raise NotFound(f"no page {request.path!r} for {request.method}; the view is at /")


# -- the app -------------------------------------------------------------------------------
def make_app(
    namespace: str,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    journal: str | None = None,
    every_s: float = EVERY_S,
    reader: DeskReader | None = None,
) -> web.Application:
    """The web view of `namespace`. Raises `WebError` for a binding the token rules refuse."""
    guard = Guard(token, host)
    app = web.Application(middlewares=[_guarded], client_max_size=64 * 1024)
    app[GUARD] = guard
    app[READER] = reader or DeskReader(namespace, journal=journal)
    app[FEED] = Feed(app[READER], guard, every_s)
    loopback = {"127.0.0.1", "localhost", "::1", "[::1]"}
    app[HOSTS] = frozenset(loopback | {host.lower()}) if is_loopback(host) else frozenset()

    async def feeding(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[FEED].run(), name="legato-web-feed")
        yield
        await app[FEED].stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app[READER].close()

    async def stopping(app: web.Application) -> None:
        await app[FEED].stop()  # the event streams end, so that shutdown need not wait

    app.cleanup_ctx.append(feeding)
    app.on_shutdown.append(stopping)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/api/state", state),
            web.get("/api/events", events),
            web.get("/api/runs", runs),
            web.get("/runs/{run_id}/report.html", report),
            web.post("/api/session", session),
            web.post("/api/baskets/{basket_id}/cancel", cancel),
            web.post("/api/hedges/{basket_id}/release", release),
            web.static("/static", STATIC, follow_symlinks=False),
            web.route("*", "/{tail:.*}", _not_found),
        ]
    )
    return app


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


class RunningWeb:
    """A web view serving on its own thread: its `url`, and `close()` to stop it."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.url = url
        self._loop = loop
        self._thread = thread

    def close(self) -> None:
        """Stop serving (the event streams end) and wait for the thread; idempotent."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)

    def __enter__(self) -> RunningWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_in_thread(
    namespace: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    journal: str | None = None,
    every_s: float = EVERY_S,
) -> RunningWeb:
    """Serve the web view of `namespace` on `host:port` (0: any free port) from a thread
    of its own, in a process already connected to Ray. Raises `WebError` for a binding the
    token rules refuse and `OSError` when the address cannot be bound."""
    app = make_app(namespace, host=host, token=token, journal=journal, every_s=every_s)
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[web.AppRunner] = concurrent.futures.Future()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(start())
        except BaseException as e:
            started.set_exception(e)
            loop.close()
            return
        started.set_result(runner)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=serve, name="legato-web", daemon=True)
    thread.start()
    runner = started.result(timeout=60)
    bound: Any = runner.addresses[0]
    return RunningWeb(url_of(host, int(bound[1])), loop, thread)
