"""The venue layer's exception family: what can go wrong talking to a venue."""

from __future__ import annotations

from venues.model import RejectReason


class VenueError(Exception):
    """Base of every error a venue client raises. `venue` names where it happened."""

    def __init__(self, message: str, *, venue: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.venue = venue
        self.code = code

    def __str__(self) -> str:
        where = f"[{self.venue}] " if self.venue else ""
        code = f" (code {self.code})" if self.code is not None else ""
        return f"{where}{self.message}{code}"


class OrderRejected(VenueError):
    """The venue refused the order; nothing was placed."""

    def __init__(
        self,
        message: str,
        *,
        reason: RejectReason,
        venue: str = "",
        code: int | None = None,
        client_order_id: str | None = None,
    ) -> None:
        super().__init__(message, venue=venue, code=code)
        self.reason = reason
        self.client_order_id = client_order_id


class UnknownOrder(VenueError):
    """The venue has no order with that id for this account."""


class InvalidRequest(VenueError):
    """The request itself was malformed (missing or garbage parameter)."""


class VenueUnavailable(VenueError):
    """The venue could not be reached or answered 5xx; nothing is known to have happened."""


class OutcomeUnknown(VenueUnavailable):
    """The request reached the venue but its outcome is unknown (Binance -1007).

    The order may still have been applied: resolve it by querying the client order id,
    never by sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        venue: str = "",
        code: int | None = None,
        client_order_id: str | None = None,
    ) -> None:
        super().__init__(message, venue=venue, code=code)
        self.client_order_id = client_order_id


class RateLimited(VenueError):
    """Too many requests; `retry_after_s` says when the venue will take more."""

    def __init__(
        self,
        message: str,
        *,
        venue: str = "",
        code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, venue=venue, code=code)
        self.retry_after_s = retry_after_s


class AuthError(VenueError):
    """Bad or missing credentials, signature or timestamp."""


class Unsupported(VenueError):
    """The venue, or this adapter, cannot do what was asked (a transfer where the venue
    offers none): nothing was sent."""
