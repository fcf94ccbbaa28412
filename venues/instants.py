"""Instants as legato keeps them (integer ns since the epoch), read from what people write."""

from __future__ import annotations

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_instant(value: object, *, keyword: str, what: str) -> int | None:
    """ns since the epoch for `value`, or None when it is the `keyword` ("now", "start").

    Accepts the keyword, an int of ns >= 0, or a date-time with a zone: a TOML offset
    date-time, a `datetime`, or an ISO-8601 string such as "2025-06-01T12:00:00Z". A
    date-time without a zone is refused: an instant must not depend on where it is read.
    Raises ValueError naming the value and what is accepted (`what` says what it is for).
    """
    if value == keyword:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value} is before the epoch; ns since the epoch must be >= 0")
        return value
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
    shown = value.isoformat() if isinstance(value, datetime) else repr(value)
    if not isinstance(when, datetime):
        raise ValueError(
            f'{shown} is not {what}; accepted: "{keyword}", an ISO-8601 date-time in UTC such '
            'as "2025-06-01T12:00:00Z", or ns since the epoch'
        )
    if when.tzinfo is None:
        raise ValueError(f"{shown} has no time zone; add Z (UTC) or an offset such as +00:00")
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
