"""Who may look at the web view and who may act through it: the binding and token rules.

Pure: no sockets, no aiohttp. The token is a secret: it is never put into a message, a log
line or a page; the errors here name where it comes from, never what it is.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from pathlib import Path

TOKEN_ENV = "LEGATO_WEB_TOKEN"
MIN_TOKEN_CHARS = 16
SESSION_COOKIE = "legato_web_session"
_HOW_TO_ENABLE = f"set {TOKEN_ENV} or give --token-file FILE when starting `legato web`"


class WebError(Exception):
    """The web view cannot start as asked (a bad binding, an unreadable token): one line."""


def load_token(environ: Mapping[str, str], token_file: str | Path | None = None) -> str | None:
    """The token from `token_file` when given, else from `$LEGATO_WEB_TOKEN`; None when
    neither is set. Surrounding whitespace (a file's final newline) is not part of it."""
    if token_file is not None:
        path = Path(token_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise WebError(f"--token-file {path}: cannot read it ({reason})") from None
        return check_token(text.strip(), f"--token-file {path}")
    value = environ.get(TOKEN_ENV, "").strip()
    return check_token(value, f"${TOKEN_ENV}") if value else None


def check_token(token: str, where: str) -> str:
    """`token` if it is long enough and printable; an error naming `where` otherwise."""
    if len(token) < MIN_TOKEN_CHARS:
        raise WebError(
            f"{where}: the token must be at least {MIN_TOKEN_CHARS} characters, got "
            f"{len(token)} (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if not token.isprintable() or any(c.isspace() for c in token):
        raise WebError(f"{where}: the token must be one word of printable characters")
    return token


def is_loopback(host: str) -> bool:
    """`host` reaches this machine only (127.0.0.0/8, ::1, `localhost`)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not host:
        raise WebError("--host: give an address to listen on (default 127.0.0.1)")
    if not is_loopback(host) and token is None:
        raise WebError(
            f"--host {host}: listening on an address other than the loopback needs a token "
            f"(anyone who can reach it could read the desk): {_HOW_TO_ENABLE}"
        )


class Denied(Exception):
    """A request the token rules turn away: `status` (401 or 403) and why, for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"legato-web-session", hashlib.sha256).hexdigest()


class Guard:
    """The rules for one server: actions need `Authorization: Bearer <token>` (never a
    cookie, so that another site cannot make a browser act); reads are open on a loopback
    binding and need the token (bearer, or the session cookie that `POST /api/session`
    sets) on any other."""

    def __init__(self, token: str | None, host: str) -> None:
        check_bind(host, token)
        self._token = token
        self.reads_need_token = not is_loopback(host)

    @property
    def actions_enabled(self) -> bool:
        return self._token is not None

    def check_action(self, authorization: str | None) -> None:
        """Raise `Denied` unless `authorization` carries the token."""
        if self._token is None:
            raise Denied(
                403,
                "actions are disabled: this web view was started without a token; to allow "
                f"cancelling baskets and releasing hedges, {_HOW_TO_ENABLE}",
            )
        self._check_bearer(authorization)

    def check_read(self, authorization: str | None, cookie: str | None) -> None:
        """Raise `Denied` if this binding needs the token for reads and none came."""
        if not self.reads_need_token or self._token is None:
            return
        if cookie and _same(cookie, session_value(self._token)):
            return
        self._check_bearer(authorization)

    def _check_bearer(self, authorization: str | None) -> None:
        assert self._token is not None
        given = _bearer(authorization)
        if given is None:
            raise Denied(401, "this needs the token: send `Authorization: Bearer <token>`")
        if not _same(given, self._token):
            raise Denied(401, "the token does not match")

    def session_cookie(self) -> str:
        assert self._token is not None
        return session_value(self._token)
