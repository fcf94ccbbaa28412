"""The ccxt.pro exchange object the adapter drives: configured from legato's fields, told to
note the HTTP answer behind each error, to say which sockets are up, and to log no secret."""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import ccxt
import ccxt.pro

from venues.adapter_kit import insecure_url
from venues.ccxt import parse
from venues.ccxt.rules import ExchangeRules, rebase_urls

# Which of the client's streams a ccxt `watch` call serves: the private one (orders and
# trades) or market data. Each stream task sets it; the exchange class reads it where ccxt
# opens the socket, so the client knows which socket is the private one.
STREAM: contextvars.ContextVar[str] = contextvars.ContextVar("legato_ccxt_stream", default="")
PRIVATE = "private"
WIRE_LOG = "venues.ccxt.wire"  # ccxt's own log lines (requests and answers), secrets hidden


class SocketHooks(Protocol):
    """What the exchange tells of its WebSockets (ccxt's `Client` objects, one per socket):
    the private streams listen."""

    def private_watch(self, socket: Any, message_hash: str) -> None: ...

    def socket_up(self, socket: Any) -> None: ...

    def socket_down(self, socket: Any) -> None: ...


def _note_answer(exc: BaseException, status: int, headers: Mapping[str, str] | None) -> None:
    """Keep the HTTP status and Retry-After of the answer an exception was raised for."""
    retry_after = None
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            retry_after = parse.dec(value)
    seconds = float(retry_after) if retry_after is not None else None
    exc.legato_http = (status, seconds)  # type: ignore[attr-defined]


def answer_of(exc: BaseException) -> tuple[int | None, float | None]:
    """(HTTP status, Retry-After seconds) of the answer `exc` was raised for, if noted."""
    noted = getattr(exc, "legato_http", None)
    return noted if isinstance(noted, tuple) else (None, None)


@functools.cache
def exchange_class(exchange_id: str) -> type[Any]:
    """ccxt.pro's class for `exchange_id`, made to note the HTTP answer behind each error
    (ccxt's exceptions carry only text) and to tell its `legato_hooks` which sockets are up
    and which serve the private streams."""
    base = getattr(ccxt.pro, exchange_id)

    class Exchange(base):  # type: ignore[misc, valid-type]
        legato_hooks: SocketHooks | None = None
        _legato_answer: tuple[int, Mapping[str, str]] | None = None

        def handle_errors(self, code: int, reason: str, url: str, method: str, headers: Any,
                          body: Any, response: Any, request_headers: Any,
                          request_body: Any) -> Any:  # fmt: skip
            self._legato_answer = (code, headers)
            try:
                return super().handle_errors(
                    code, reason, url, method, headers, body, response, request_headers,
                    request_body,
                )  # fmt: skip
            except ccxt.BaseError as e:
                _note_answer(e, code, headers)
                raise

        def handle_http_status_code(
            self, code: int, reason: str, url: str, method: str, body: Any
        ) -> Any:
            try:
                return super().handle_http_status_code(code, reason, url, method, body)
            except ccxt.BaseError as e:
                # handle_errors saw this answer's headers just before (no await between).
                answer = self._legato_answer
                _note_answer(e, code, answer[1] if answer and answer[0] == code else None)
                raise

        def watch(self, url: str, message_hash: Any, *args: Any, **kwargs: Any) -> Any:
            if self.legato_hooks is not None and STREAM.get() == PRIVATE:
                # The socket `watch` is about to use (ccxt makes it here if there is none).
                self.legato_hooks.private_watch(self.client(url), str(message_hash))
            return super().watch(url, message_hash, *args, **kwargs)

        def on_connected(self, client: Any, message: Any = None) -> None:
            super().on_connected(client, message)
            if self.legato_hooks is not None:
                self.legato_hooks.socket_up(client)

        def on_error(self, client: Any, error: Any) -> None:
            super().on_error(client, error)
            if self.legato_hooks is not None:
                self.legato_hooks.socket_down(client)

        def on_close(self, client: Any, error: Any) -> None:
            super().on_close(client, error)
            if self.legato_hooks is not None:
                self.legato_hooks.socket_down(client)

    Exchange.__name__ = Exchange.__qualname__ = base.__name__
    return Exchange


class Redact(logging.Filter):
    """Takes the secrets out of ccxt's log lines (its debug lines show headers and bodies)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = parse.redact(text, self._secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def check_urls(urls: Mapping[str, str]) -> None:
    """Keys and signatures travel over these: https/wss, or plain only to a loopback address
    (the simulators); the same rule as every real venue's URLs in the configuration."""
    for key, url in urls.items():
        if key not in ("rest", "ws"):
            raise ValueError(
                f"urls: unknown key {key!r}; accepted: rest (http(s) root), ws (ws(s) root)"
            )
        problem = insecure_url(url, websocket=key == "ws")
        if problem is not None:
            raise ValueError(f"urls.{key}: {problem}")


def make_exchange(
    exchange_id: str,
    rules: ExchangeRules,
    *,
    api_key: str,
    secret: str,
    password: str | None,
    sandbox: bool,
    urls: Mapping[str, str] | None,
    options: Mapping[str, Any] | None,
    timeout_s: float,
    rate_limit: bool,
) -> tuple[Any, Redact]:
    """The configured exchange object, and the log filter that hides its secrets (attached to
    `WIRE_LOG`; remove it when the exchange is closed)."""
    if urls:
        check_urls(urls)
    if exchange_id == "hyperliquid":  # a wallet signs there, not an HMAC key
        credentials: dict[str, Any] = {"walletAddress": api_key, "privateKey": secret}
    else:
        credentials = {"apiKey": api_key, "secret": secret}
        if password:
            credentials["password"] = password
    ex = exchange_class(exchange_id)(
        credentials
        | {
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": rate_limit,
            "options": rules.defaults | dict(options or {}),
        }
    )
    ex.timeout_on_exit = 0  # ccxt waits 250 ms on close for TLS goodbyes; nothing needs it
    if sandbox:
        try:
            ex.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise ValueError(f"ccxt exchange {exchange_id!r} has no sandbox") from None
    if urls:
        ex.urls["api"] = rebase_urls(ex.urls["api"], urls)
    redact = Redact([api_key, secret, password or ""])
    ex.logger = logging.getLogger(WIRE_LOG)
    ex.logger.addFilter(redact)
    return ex, redact
