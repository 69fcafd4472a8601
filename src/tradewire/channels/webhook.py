"""The generic webhook channel: a signed JSON POST per event, and its verifier.

Theory of operation
-------------------
Each user gives a URL; every event is POSTed there as JSON (see
:func:`webhook_body`) with three headers:

* ``X-Tradewire-Timestamp``: Unix seconds when the request was signed;
* ``X-Tradewire-Signature``: ``sha256=<hex>``, the HMAC-SHA256 of
  ``f"{timestamp}.".encode() + body`` under the user's webhook secret (or
  the deployment's when the user has none);
* ``X-Tradewire-Event-Id``: the event id (percent-encoded), the same on
  every retry: receivers dedupe on it.

A receiver checks a request with the pure :func:`verify_signature`: the
signature must match (constant-time compare) and the timestamp must be
within ``tolerance_s`` of the receiver's clock, so a captured request cannot
be replayed later. ``docs/reference/webhooks.md`` has a receiver example.

The seed's ``ChannelType`` has no generic-webhook member, so the deployment
says which slot this adapter fills (``channel_type``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from enum import Enum
from typing import Any, Final
from urllib.parse import quote

import msgspec

from tradewire.channels._http import (
    DEFAULT_TIMEOUT_S,
    HttpClient,
    HttpReply,
    OwnsHttpClient,
    Redactor,
    failure_for,
    url_secrets,
)
from tradewire.channels._recipient import find_url
from tradewire.channels.directory import UserDirectory
from tradewire.channels.message import RenderedMessage, Renderer
from tradewire.channels.templates import event_type_name, priority_name
from tradewire.delivery.model import ChannelType, Event
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    PermanentFailure,
    SystemClock,
)

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureCheck",
    "WebhookChannel",
    "sign",
    "verify_signature",
    "webhook_body",
]

TIMESTAMP_HEADER: Final = "X-Tradewire-Timestamp"
SIGNATURE_HEADER: Final = "X-Tradewire-Signature"
EVENT_ID_HEADER: Final = "X-Tradewire-Event-Id"
_SCHEME: Final = "sha256="
_ENCODER: Final = msgspec.json.Encoder()
_ANY_JSON: Final = msgspec.json.Decoder()


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Tradewire-Signature`` value: ``sha256=`` + hex HMAC of ``timestamp.body``."""
    mac = hmac.new(_key(secret), timestamp.encode() + b"." + body, hashlib.sha256)
    return _SCHEME + mac.hexdigest()


class SignatureCheck(Enum):
    """What :func:`verify_signature` found; only ``VALID`` is truthy."""

    VALID = "valid"
    MALFORMED = "malformed"
    """A header is missing or not in the documented form."""
    EXPIRED = "expired"
    """The timestamp is further than the tolerance from the receiver's clock."""
    MISMATCH = "mismatch"
    """Wrong secret, or the body or timestamp was altered."""

    def __bool__(self) -> bool:
        return self is SignatureCheck.VALID


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    now: float,
    tolerance_s: float = 300,
) -> SignatureCheck:
    """Check a received webhook request.

    ``timestamp`` and ``header`` are the ``X-Tradewire-Timestamp`` and
    ``X-Tradewire-Signature`` header values, ``body`` the raw request body
    (before any JSON parsing), ``now`` the receiver's Unix time in seconds.
    Several comma-separated ``sha256=`` signatures are accepted (secret
    rotation): one match is enough.
    """
    if not timestamp or not header or not timestamp.isascii() or not timestamp.isdigit():
        return SignatureCheck.MALFORMED
    candidates = [part.strip() for part in header.split(",")]
    if not any(c.startswith(_SCHEME) for c in candidates):
        return SignatureCheck.MALFORMED
    if abs(now - int(timestamp)) > tolerance_s:
        return SignatureCheck.EXPIRED
    expected = sign(secret, timestamp, body)
    for candidate in candidates:
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return SignatureCheck.VALID
    return SignatureCheck.MISMATCH


def webhook_body(event: Event, message: RenderedMessage, attempt: int) -> bytes:
    """The JSON document POSTed for ``event``.

    ``payload`` is the event's JSON payload verbatim (decimal strings and
    numbers exactly as the container wrote them), or ``null`` with
    ``payload_error`` when it is not JSON.
    """
    document: dict[str, Any] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "event_type": event_type_name(event.event_type),
        "priority": priority_name(event.priority),
        "timestamp_ms": event.timestamp_ms,
        "timestamp": _iso(event.timestamp_ms),
        "attempt": attempt,
        "title": message.title,
        "text": message.text,
    }
    try:
        _ANY_JSON.decode(event.payload or b"{}")
        document["payload"] = msgspec.Raw(event.payload or b"{}")
    except msgspec.DecodeError:
        document["payload"] = None
        document["payload_error"] = "the event payload is not valid JSON"
    return _ENCODER.encode(document)


def _iso(ms: int) -> str | None:
    if ms <= 0:
        return None
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookChannel(OwnsHttpClient):
    """POSTs each event, signed, to the user's webhook URL.

    ``secret`` is the deployment's signing key, used for users without their
    own ``webhook_secret``; with neither, the event fails permanently (an
    unsigned request is never sent).
    """

    def __init__(
        self,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        channel_type: ChannelType,
        secret: str | bytes = "",
        clock: Clock | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: HttpClient | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self._directory = directory
        self._renderer = renderer
        self._channel_type = channel_type
        self._allowed_hosts = allowed_hosts
        self._secret = secret
        self._clock = clock or SystemClock()
        super().__init__(http=http, timeout_s=timeout_s)

    def __repr__(self) -> str:
        return f"WebhookChannel(channel_type={self._channel_type.name})"

    @property
    def channel_type(self) -> ChannelType:
        """The slot this adapter fills (chosen by the deployment)."""
        return self._channel_type

    @property
    def limits(self) -> ChannelLimits:
        """No length or rate limit of its own: the receiver's 429 is honoured."""
        return ChannelLimits()

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """POST ``event`` to the user's webhook and report the outcome."""
        found = await find_url(
            self._directory, event.user_id, lambda p: p.webhook_url, "webhook", self._allowed_hosts
        )
        if not isinstance(found, tuple):
            return found
        profile, url = found
        secret = profile.webhook_secret or self._secret
        if not secret:
            return PermanentFailure("no webhook signing secret (user or deployment)")
        body = webhook_body(event, self._renderer.render(event), attempt)
        timestamp = str(self._clock.now_ms() // 1000)
        headers = {
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: quote(event.event_id, safe=""),
        }
        redact = Redactor([*url_secrets(url), _text(secret)])
        reply = await self._http.post(url, body=body, headers=headers, redact=redact)
        if not isinstance(reply, HttpReply):
            return reply
        if reply.ok:
            return Delivered(self._channel_type)
        now = self._clock.now_ms()
        return failure_for(reply, service="webhook receiver", now_ms=now, redact=redact)


def _text(secret: str | bytes) -> str:
    return secret if isinstance(secret, str) else secret.decode("utf-8", "replace")
