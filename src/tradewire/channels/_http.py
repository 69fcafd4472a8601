"""The HTTP edge shared by the Telegram, Discord, Slack and webhook channels.

Theory of operation
-------------------
:class:`HttpClient` wraps one ``httpx.AsyncClient`` and turns a request into
a value: an :class:`HttpReply` (any status, body read up to a bound) or a
:class:`~tradewire.delivery.ports.Retryable` /
:class:`~tradewire.delivery.ports.PermanentFailure` when no answer came
(timeout, refused connection, broken URL). Every call has a timeout and
nothing raises for a network failure.

What a status means is mostly shared, so :func:`failure_for` maps a reply
that is not a success: 429 (with ``Retry-After`` as seconds or an HTTP date,
Telegram's ``parameters.retry_after`` or Discord's ``retry_after``), 408,
425 and 5xx are retryable; a redirect and every other 4xx are permanent.
Each adapter decides what *success* looks like (Telegram ``ok: true``,
Slack ``ok``, Discord's message JSON).

Secrets travel in URLs here (the bot token is a path segment, a Discord or
Slack webhook URL is its own credential), so no error string is built from
a URL or an exception text without passing through a :class:`Redactor`, and
httpx's own INFO line per request (which shows the URL) is filtered out.
"""

from __future__ import annotations

import abc
import email.utils
import logging
import math
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self
from urllib.parse import urlsplit

import httpx
import msgspec

from tradewire.delivery.ports import PermanentFailure, Retryable

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_REPLY_BYTES",
    "HttpClient",
    "HttpReply",
    "Redactor",
    "describe",
    "failure_for",
    "retry_after_ms",
    "url_secrets",
]

DEFAULT_TIMEOUT_S: Final = 10.0
"""Timeout of one HTTP call (connect, write, read each) unless a channel sets another."""
MAX_REPLY_BYTES: Final = 64 * 1024
"""Bodies are read up to this size: a misbehaving receiver cannot flood the gateway."""
MAX_RETRY_AFTER_MS: Final = 24 * 3_600_000
"""A ``Retry-After`` longer than a day is treated as a day."""
_REDACTED: Final = "[redacted]"
# Shapes of credentials that may show up in text we did not build ourselves.
_PATTERNS: Final = (
    re.compile(r"bot\d+:[A-Za-z0-9_-]+"),  # Telegram bot token in a URL path
    re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}"),  # a bare Telegram bot token
    re.compile(r"(/api/webhooks/\d+/)[A-Za-z0-9_.-]+"),  # Discord webhook token
    re.compile(r"(/services/)[A-Za-z0-9/_-]+"),  # Slack webhook path
)
_JSON_ANY: Final = msgspec.json.Decoder()
_USER_AGENT: Final = "tradewire/0.1"


class _NoRequestLines(logging.Filter):
    """Drops httpx's ``HTTP Request: POST <url>`` INFO lines: our URLs carry secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HTTP Request:")


logging.getLogger("httpx").addFilter(_NoRequestLines())


class Redactor:
    """Removes known secrets (and credential-shaped substrings) from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a URL is removed whole before its path is looked for.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + _REDACTED, text)
        return text

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that also removes ``secrets``."""
        return Redactor([*self._secrets, *secrets])


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a credential-bearing URL to redact: the URL, its path and query."""
    parts = urlsplit(url)
    pieces = [url, parts.path, parts.query]
    pieces += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    return tuple(p for p in pieces if p and p != "/")


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A response: status, headers (lower-case names) and the body (bounded)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return _JSON_ANY.decode(self.body) if self.body else None
        except msgspec.DecodeError:
            return None

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300


class ClosesOnExit(abc.ABC):
    """``async with`` for anything that is released by ``await aclose()``."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds (idempotent)."""


class HttpClient(ClosesOnExit):
    """One pooled ``httpx.AsyncClient``; requests become values, never exceptions.

    Pass ``client`` to share an existing ``httpx.AsyncClient`` (it is then
    not closed by :meth:`aclose`). Redirects are not followed: a webhook
    that moved is a configuration problem to surface, not to chase.
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 100,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("an HTTP timeout must be positive")
        self.timeout_s = timeout_s
        self._owned = client is None
        self._client = client or _new_client(timeout_s, max_connections)

    async def aclose(self) -> None:
        """Close the connection pool (when this object created it)."""
        if self._owned:
            await self._client.aclose()

    async def post(
        self,
        url: str,
        *,
        body: bytes,
        redact: Redactor,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        content_type: str = "application/json",
    ) -> HttpReply | Retryable | PermanentFailure:
        """POST ``body`` to ``url``; the reply, or why none came (redacted)."""
        all_headers = {"content-type": content_type, **(headers or {})}
        timeout = httpx.Timeout(timeout_s if timeout_s is not None else self.timeout_s)
        try:
            async with self._client.stream(
                "POST", url, content=body, headers=all_headers, timeout=timeout
            ) as response:
                data = await _read_bounded(response)
                reply_headers = {k.lower(): v for k, v in response.headers.items()}
                return HttpReply(response.status_code, reply_headers, data)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return PermanentFailure(f"invalid URL: {redact(str(exc))}")
        except httpx.TimeoutException as exc:
            return Retryable(f"timed out ({type(exc).__name__}) after {timeout.read}s")
        except httpx.HTTPError as exc:
            return Retryable(f"network error ({type(exc).__name__}): {redact(str(exc))}")
        except OSError as exc:  # raised outside httpx's mapping (e.g. while resolving)
            return Retryable(f"network error ({type(exc).__name__}): {redact(str(exc))}")
        except ValueError as exc:  # a header or URL that cannot be encoded
            return PermanentFailure(f"request could not be built ({type(exc).__name__})")


def _new_client(timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    # TCP_NODELAY: a request's headers and body may go out as separate writes;
    # with Nagle on, the second waits for the peer's delayed ACK (~40 ms).
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=max_connections),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        headers={"user-agent": _USER_AGENT},
    )


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_REPLY_BYTES:
            break
    return b"".join(chunks)[:MAX_REPLY_BYTES]


def retry_after_ms(reply: HttpReply, now_ms: int) -> int | None:
    """How long the service asked us to wait, in milliseconds, if it said.

    Looks at Telegram's ``parameters.retry_after`` (seconds), Discord's JSON
    ``retry_after`` (seconds, a float) and the ``Retry-After`` header
    (delay-seconds or an HTTP date, compared with ``now_ms``).
    """
    document = reply.json()
    if isinstance(document, dict):
        parameters = document.get("parameters")
        if isinstance(parameters, dict) and _is_number(parameters.get("retry_after")):
            return _seconds_to_ms(parameters["retry_after"])
        if _is_number(document.get("retry_after")):
            return _seconds_to_ms(document["retry_after"])
    header = reply.headers.get("retry-after", "").strip()
    return _parse_retry_after(header, now_ms) if header else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seconds_to_ms(seconds: float) -> int:
    return max(0, min(MAX_RETRY_AFTER_MS, math.ceil(seconds * 1000)))


def _parse_retry_after(header: str, now_ms: int) -> int | None:
    try:
        seconds = float(header)
    except ValueError:
        pass
    else:
        return _seconds_to_ms(seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0, min(MAX_RETRY_AFTER_MS, int(moment.timestamp() * 1000) - now_ms))


def describe(reply: HttpReply, redact: Redactor) -> str:
    """A short, redacted account of what the service said."""
    document = reply.json()
    if isinstance(document, dict):
        for key in ("description", "message", "error"):
            if isinstance(document.get(key), str):
                return redact(document[key][:200])
    text = reply.body[:200].decode("utf-8", "replace").strip()
    return redact(text) if text else "(empty body)"


def failure_for(
    reply: HttpReply, *, service: str, now_ms: int, redact: Redactor
) -> Retryable | PermanentFailure:
    """The outcome of a reply that is not a success."""
    what = f"{service} answered {reply.status}: {describe(reply, redact)}"
    if reply.status == 429:
        return Retryable(what, retry_after_ms=retry_after_ms(reply, now_ms))
    if reply.status in (408, 425) or reply.status >= 500:
        return Retryable(what, retry_after_ms=retry_after_ms(reply, now_ms))
    return PermanentFailure(what)


class OwnsHttpClient(ClosesOnExit):
    """Lifecycle of an adapter that may have made its own :class:`HttpClient`.

    Subclasses set ``_http`` and ``_owned`` (True when they created the
    client); ``async with`` and :meth:`aclose` close it only then.
    """

    _http: HttpClient
    _owned: bool

    def __init__(self, *, http: HttpClient | None, timeout_s: float) -> None:
        self._owned = http is None
        self._http = http or HttpClient(timeout_s=timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP client (when this channel created it)."""
        if self._owned:
            await self._http.aclose()
