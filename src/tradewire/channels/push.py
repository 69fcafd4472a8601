"""The PUSH channel: Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm (RFC 8291).

Theory of operation
-------------------
pywebpush is used for what it is good at, building the message: its
``WebPusher.encode`` encrypts the JSON payload for one subscription
(``aes128gcm``), and py-vapid signs the VAPID JWT. The request itself goes
out over an ``httpx.AsyncClient`` (pywebpush's own senders are blocking or
bring a second HTTP stack), with a timeout on every request.

One event goes to every subscription of the user, concurrently. The answers
combine into one outcome:

* any subscription accepted (2xx) -> :class:`Delivered`;
* 404 / 410 -> the subscription is gone: removed from the directory;
* 429, 5xx, 408, timeouts, connection errors -> :class:`Retryable`
  (with ``Retry-After`` when the service sent one);
* 413 and the other 4xx -> permanent for that subscription;
* no subscription took it: :class:`Retryable` if any may later, else
  :class:`PermanentFailure` (also when none is left after removals).

The VAPID JWT is cached per push-service origin and re-signed an hour before
it expires (it lives 12 hours; the clock is injected). Endpoints are
capability URLs: errors name the service's host, never the path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import WebPusher, WebPushException

from tradewire.channels._http import ClosesOnExit
from tradewire.channels._recipient import find_profile
from tradewire.channels.directory import PushSubscription, UserDirectory, UserProfile
from tradewire.channels.message import Renderer
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    PermanentFailure,
    Retryable,
    SystemClock,
)
from tradewire.errors import ConfigError, TradewireError

__all__ = [
    "PUSH_URGENCY",
    "VapidKeyPair",
    "VapidSettings",
    "WebPushChannel",
    "generate_vapid_keys",
]

log = logging.getLogger(__name__)

PUSH_URGENCY: dict[Priority, str] = {
    Priority.CRITICAL: "high",
    Priority.NORMAL: "normal",
    Priority.INFORMATIONAL: "low",
}
"""The ``Urgency`` header (RFC 8030 section 5.3) sent for each priority."""

MAX_BODY_CHARS = 1000
"""Push bodies longer than this are cut (a notification shows a few lines anyway)."""
_MAX_TITLE_CHARS = 200
_MAX_PLAINTEXT_BYTES = 3993  # 4096 minus the aes128gcm header, padding delimiter and tag
_JWT_LIFETIME_S = 12 * 3600
_JWT_RENEW_BEFORE_S = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class VapidSettings:
    """The deployment's Web Push identity and sending policy."""

    private_key: str = field(repr=False)
    """The VAPID private key: raw 32-byte URL-safe base64, DER base64 or PEM."""
    subject: str
    """Contact for the push services: ``mailto:ops@example.com`` or an ``https:`` URL."""
    ttl_s: int = 86_400
    """How long a push service keeps a CRITICAL/NORMAL message for an offline device."""
    informational_ttl_s: int = 60
    """The same for INFORMATIONAL events (stale soon)."""
    timeout_s: float = 10.0
    """Limit for each request to a push service."""
    allow_http_endpoints: bool = False
    """Accept ``http:`` endpoints (loopback tests only; browsers always give ``https:``)."""

    def __post_init__(self) -> None:
        if not self.subject.startswith(("mailto:", "https:")):
            raise ConfigError(
                "VAPID subject must be a mailto: or https: URL",
                setting="push.vapid_subject",
                hint="for example mailto:ops@example.com",
            )
        if self.ttl_s < 0 or self.informational_ttl_s < 0 or self.timeout_s <= 0:
            raise ConfigError("push TTLs must be >= 0 and the timeout positive", setting="push")


class VapidKeyPair(NamedTuple):
    """A fresh VAPID identity."""

    private_key: str
    """Raw 32-byte private scalar, URL-safe base64 without padding (keep secret)."""
    public_key: str
    """Uncompressed P-256 point, URL-safe base64 without padding: the browser's
    ``applicationServerKey``."""

    def __repr__(self) -> str:
        return f"VapidKeyPair(private_key=<hidden>, public_key={self.public_key!r})"


def generate_vapid_keys() -> VapidKeyPair:
    """Make a new VAPID key pair for :class:`VapidSettings` and the web page."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw_private = key.private_numbers().private_value.to_bytes(32, "big")
    return VapidKeyPair(_b64url(raw_private), _public_key_b64url(key))


@dataclass(frozen=True, slots=True)
class _Gone:
    """The push service forgot the subscription (404/410)."""

    status: int


_Answer = Delivered | Retryable | PermanentFailure | _Gone


class WebPushChannel(ClosesOnExit):
    """The PUSH :class:`~tradewire.delivery.ports.Channel` (an async context manager).

    ``http`` may be a shared ``httpx.AsyncClient``; without one the channel
    opens its own and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        settings: VapidSettings,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._renderer = renderer
        self._clock: Clock = clock or SystemClock()
        self._vapid = _load_vapid(settings.private_key)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=settings.timeout_s)
        self._jwt_cache: dict[str, tuple[str, int]] = {}

    @property
    def channel_type(self) -> ChannelType:
        """Always :attr:`ChannelType.PUSH`."""
        return ChannelType.PUSH

    @property
    def limits(self) -> ChannelLimits:
        """Bodies over :data:`MAX_BODY_CHARS` are cut; no rate limit of its own."""
        return ChannelLimits(max_message_length=MAX_BODY_CHARS)

    @property
    def application_server_key(self) -> str:
        """The VAPID public key a web page passes to ``pushManager.subscribe``."""
        return _public_key_b64url(self._vapid.private_key)

    async def aclose(self) -> None:
        """Close the HTTP client if the channel opened it."""
        if self._owns_http:
            await self._http.aclose()

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Push ``event`` to every subscription of its user and combine the answers."""
        profile = await find_profile(self._directory, event.user_id)
        if not isinstance(profile, UserProfile):
            return profile
        subscriptions = profile.push_subscriptions
        if not subscriptions:
            return PermanentFailure("user has no push subscription")
        payload = push_payload(event, self._renderer)
        answers = await asyncio.gather(*(self._push(s, payload, event) for s in subscriptions))
        for subscription, answer in zip(subscriptions, answers, strict=True):
            if isinstance(answer, _Gone):
                await self._forget(event.user_id, subscription)
        return _combine(answers)

    async def _forget(self, user_id: str, subscription: PushSubscription) -> None:
        try:
            await self._directory.remove_push_subscription(user_id, subscription.endpoint)
        except TradewireError as exc:  # the next 404/410 removes it again
            log.warning(
                "could not remove a gone push subscription",
                extra={"user_id": user_id, "error": type(exc).__name__},
            )

    async def _push(self, subscription: PushSubscription, payload: bytes, event: Event) -> _Answer:
        parts = urlsplit(subscription.endpoint)
        allowed = ("https", "http") if self._settings.allow_http_endpoints else ("https",)
        if parts.scheme not in allowed or not parts.netloc:
            return PermanentFailure("push endpoint is not an https URL")
        try:
            body = _encrypt(subscription, payload)
        except (WebPushException, ValueError, TypeError):
            return PermanentFailure("push subscription keys are invalid")
        headers = {
            "Authorization": self._vapid_authorization(f"{parts.scheme}://{parts.netloc}"),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl(event.priority)),
            "Urgency": PUSH_URGENCY[event.priority],
        }
        try:
            response = await self._http.post(
                subscription.endpoint,
                content=body,
                headers=headers,
                timeout=self._settings.timeout_s,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return PermanentFailure("push endpoint is not a usable URL")
        except httpx.TimeoutException:
            return Retryable(f"push service {parts.hostname} timed out")
        except httpx.TransportError as exc:
            return Retryable(f"push service {parts.hostname} unreachable: {type(exc).__name__}")
        return _answer_for(response, parts.hostname or "?", self._clock.now_ms())

    def _ttl(self, priority: Priority) -> int:
        if priority is Priority.INFORMATIONAL:
            return self._settings.informational_ttl_s
        return self._settings.ttl_s

    def _vapid_authorization(self, audience: str) -> str:
        now_s = self._clock.now_ms() // 1000
        cached = self._jwt_cache.get(audience)
        if cached is not None and cached[1] - now_s > _JWT_RENEW_BEFORE_S:
            return cached[0]
        expires = now_s + _JWT_LIFETIME_S
        claims = {"aud": audience, "exp": expires, "sub": self._settings.subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        self._jwt_cache[audience] = (header, expires)
        return header


def push_payload(event: Event, renderer: Renderer) -> bytes:
    """The JSON a service worker receives: ``event_id, title, body, priority, event_type``."""
    message = renderer.render(event)
    fields: dict[str, Any] = {
        "event_id": event.event_id,
        "title": _cut(message.title, _MAX_TITLE_CHARS),
        "body": _cut(message.text, MAX_BODY_CHARS),
        "priority": event.priority.name,
        "event_type": event.event_type,
    }
    body = fields["body"]
    while len(_json(fields)) > _MAX_PLAINTEXT_BYTES and body:
        body = body[: len(body) // 2]
        fields["body"] = body + "…"
    return _json(fields)


def _answer_for(response: httpx.Response, host: str, now_ms: int) -> _Answer:
    status = response.status_code
    if 200 <= status < 300:
        return Delivered(ChannelType.PUSH)
    if status in (404, 410):
        return _Gone(status)
    if status in (408, 429) or status >= 500:
        retry_after = _retry_after_ms(response.headers.get("Retry-After"), now_ms)
        return Retryable(f"push service {host} answered {status}", retry_after)
    if status == 413:
        return PermanentFailure(f"push service {host} answered 413: payload too large")
    return PermanentFailure(f"push service {host} answered {status}")


def _combine(answers: list[_Answer]) -> DeliveryOutcome:
    if any(isinstance(a, Delivered) for a in answers):
        return Delivered(ChannelType.PUSH)
    retryable = [a for a in answers if isinstance(a, Retryable)]
    if retryable:
        waits = [a.retry_after_ms for a in retryable if a.retry_after_ms is not None]
        return Retryable(retryable[0].error, max(waits) if waits else None)
    permanent = [a for a in answers if isinstance(a, PermanentFailure)]
    if permanent:
        return permanent[0]
    return PermanentFailure("every push subscription is gone (404/410) and was removed")


def _retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """``Retry-After`` as milliseconds from now: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int(when.timestamp() * 1000) - now_ms)


def _encrypt(subscription: PushSubscription, payload: bytes) -> bytes:
    info = {
        "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
    }
    encoded = WebPusher(info).encode(payload, content_encoding="aes128gcm")
    return bytes(encoded["body"])


def _load_vapid(private_key: str) -> Any:
    try:
        if "-----BEGIN" in private_key:
            return Vapid.from_pem(private_key.strip().encode())
        return Vapid.from_string(private_key.strip())
    except Exception:  # py-vapid raises assorted errors; `from None` keeps the key out
        raise ConfigError(
            "VAPID private key is not a P-256 key (raw base64url, DER base64 or PEM)",
            setting="push.vapid_private_key",
            hint="make one with generate_vapid_keys()",
        ) from None


def _public_key_b64url(key: ec.EllipticCurvePrivateKey) -> str:
    return _b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
