"""A PostgreSQL DSN as it may be shown: its password never is (in messages, logs, reports).

Kept apart from the backend so that code without the `postgres` extra can show one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def shown(location: str) -> str:
    """Where a journal lives, fit to show: a DSN without its password, a directory as is."""
    return redact_dsn(location) if location.startswith(POSTGRES_SCHEMES) else location


def redact_dsn(dsn: str) -> str:
    """`dsn` with its password (in the URL, its query or a `password=` pair, and wherever
    else the same text appears in it) as `***`."""
    if "://" not in dsn:  # key=value form: host=… password=…
        shown = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn, flags=re.I)
    else:
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if parts.password is not None:
                user, _, host = netloc.rpartition("@")
                netloc = f"{user.partition(':')[0]}:***@{host}"
            query = re.sub(r"(password=)[^&]*", r"\1***", parts.query, flags=re.I)
            shown = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "<a DSN that cannot be parsed>"
    return scrub(shown, secrets_of(dsn))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` in it replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def secrets_of(dsn: str) -> list[str]:
    """Every spelling of the DSN's password that could show up in a message, longest first."""
    found: set[str] = set()
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            if parts.password:
                found.update({parts.password, unquote(parts.password)})
            for key, value in parse_qsl(parts.query):
                if key.lower() == "password" and value:
                    found.update({value, unquote(value)})
            raw = parts.netloc.rpartition("@")[0].partition(":")[2]
            if raw:
                found.add(raw)
        except ValueError:
            pass
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]+)", dsn, flags=re.I):
        value = match.group(1)
        found.update({value, value.strip("'"), unquote(value)})
    return sorted((s for s in found if s), key=len, reverse=True)
