"""Telegram: the Bot API client and the TELEGRAM notification channel.

Theory of operation
-------------------
:class:`TelegramBotApi` calls ``{api_base}/bot{token}/{method}`` with a JSON
body (``api_base`` is configurable so a local Bot API server or a test
server works) and returns the reply as a value; the token is redacted from
every error string.

:class:`TelegramChannel` sends one ``sendMessage`` per event, formatted with
``parse_mode=HTML``:

* the user's chat comes from the directory (no chat linked: permanent
  failure, the engine escalates at once);
* every send first waits for its turn in a :class:`~tradewire.channels._pacer.Pacer`
  (about 1 message/s per chat, 30/s overall, CRITICAL ahead of queued
  traffic), so a burst to one chat drains at the chat's rate, nothing dropped;
* a message longer than 4096 characters (counted after entity parsing, in
  UTF-16 units as Telegram counts) is sent as truncated plain text: one
  message per event, never split;
* CRITICAL messages carry an inline "Acknowledge" button
  (``callback_data = "ack:<event_id>"``) and are reported as
  ``Delivered(needs_client_ack=True)``: the press, read by
  :class:`~tradewire.channels.telegram_updates.TelegramPoller`, acks the event;
* a ``400 can't parse entities`` is answered by resending once as plain text;
  ``403`` (bot blocked, chat deactivated) is permanent; ``429`` holds the chat
  for ``parameters.retry_after`` and is retryable.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from tradewire.channels._http import (
    DEFAULT_TIMEOUT_S,
    ClosesOnExit,
    HttpClient,
    HttpReply,
    OwnsHttpClient,
    Redactor,
    failure_for,
    retry_after_ms,
)
from tradewire.channels._pacer import Pacer
from tradewire.channels._recipient import find_profile
from tradewire.channels.directory import UserDirectory, UserProfile
from tradewire.channels.escaping import ELLIPSIS
from tradewire.channels.message import RenderedMessage, Renderer
from tradewire.channels.ratelimit import RateGate
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    PermanentFailure,
    RateLimit,
    Retryable,
    SystemClock,
)
from tradewire.errors import ConfigError

__all__ = [
    "ACK_CALLBACK_PREFIX",
    "DEFAULT_API_BASE",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_MESSAGE_LENGTH",
    "TelegramBotApi",
    "TelegramChannel",
    "ack_keyboard",
    "fit_message",
]

DEFAULT_API_BASE: Final = "https://api.telegram.org"
MAX_MESSAGE_LENGTH: Final = 4096
"""Telegram's limit on a message's text, after entity parsing."""
MAX_CALLBACK_DATA_BYTES: Final = 64
ACK_CALLBACK_PREFIX: Final = "ack:"
PER_CHAT: Final = RateLimit(1, 1_000)
OVERALL: Final = RateLimit(30, 1_000)
_TAG: Final = re.compile(r"<[^>]*>")
_TOKEN: Final = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
_ENCODER: Final = msgspec.json.Encoder()


class TelegramBotApi(OwnsHttpClient):
    """A Bot API client: ``await api.call("sendMessage", {...})`` returns a value."""

    def __init__(
        self,
        token: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: HttpClient | None = None,
    ) -> None:
        if not _TOKEN.match(token):
            raise ConfigError(
                "telegram_bot_token must look like 123456:ABC-DEF (from @BotFather)",
                setting="telegram_bot_token",
            )
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.redact = Redactor([token, f"bot{token}"])
        super().__init__(http=http, timeout_s=timeout_s)

    def __repr__(self) -> str:
        return f"TelegramBotApi(api_base={self.api_base!r})"

    async def call(
        self, method: str, params: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> HttpReply | Retryable | PermanentFailure:
        """POST ``params`` as JSON to ``method``; the reply, or why none came."""
        url = f"{self.api_base}/bot{self._token}/{method}"
        return await self._http.post(
            url, body=_ENCODER.encode(params), redact=self.redact, timeout_s=timeout_s
        )

    async def send_message(
        self, chat_id: str, text: str, **extra: Any
    ) -> HttpReply | Retryable | PermanentFailure:
        """``sendMessage`` to ``chat_id`` (plain text unless ``parse_mode`` is given)."""
        return await self.call(
            "sendMessage", {"chat_id": chat_value(chat_id), "text": text, **extra}
        )


def chat_value(chat_id: str) -> int | str:
    """A chat id as the Bot API wants it: an integer, or ``@channelusername``."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id


def visible_length(telegram_html: str) -> int:
    """Length of Telegram HTML after entity parsing, in UTF-16 code units."""
    return _utf16_len(html.unescape(_TAG.sub("", telegram_html)))


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _truncate_utf16(text: str, limit: int) -> str:
    if _utf16_len(text) <= limit:
        return text
    budget = limit - 1  # room for the ellipsis
    kept: list[str] = []
    for char in text:
        units = 2 if ord(char) > 0xFFFF else 1
        if units > budget:
            break
        kept.append(char)
        budget -= units
    return "".join(kept) + ELLIPSIS


def fit_message(message: RenderedMessage, limit: int = MAX_MESSAGE_LENGTH) -> tuple[str, bool]:
    """The text to send and whether it is HTML: formatted if it fits, else truncated plain."""
    if message.telegram_html and visible_length(message.telegram_html) <= limit:
        return message.telegram_html, True
    return _truncate_utf16(message.text or message.title, limit), False


def ack_keyboard(event_id: str) -> dict[str, Any] | None:
    """The inline "Acknowledge" keyboard, or ``None`` if the id does not fit in 64 bytes."""
    data = ACK_CALLBACK_PREFIX + event_id
    if len(data.encode()) > MAX_CALLBACK_DATA_BYTES:
        return None
    return {"inline_keyboard": [[{"text": "Acknowledge", "callback_data": data}]]}


def _cannot_parse(reply: HttpReply) -> bool:
    document = reply.json()
    description = document.get("description", "") if isinstance(document, dict) else ""
    return reply.status == 400 and "can't parse entities" in str(description).lower()


class TelegramChannel(ClosesOnExit):
    """The TELEGRAM channel: ``sendMessage`` to the user's linked chat, paced."""

    def __init__(
        self,
        api: TelegramBotApi,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        clock: Clock | None = None,
        per_chat: RateLimit = PER_CHAT,
        overall: RateLimit = OVERALL,
        max_queued: int = 10_000,
    ) -> None:
        self.api = api
        self._directory = directory
        self._renderer = renderer
        self._clock = clock or SystemClock()
        self._limits = ChannelLimits(
            max_message_length=MAX_MESSAGE_LENGTH,
            per_recipient=per_chat,
            overall=overall,
            supports_ack=True,
        )
        gate = RateGate(per_key=per_chat, overall=overall, max_queued=max_queued)
        self.pacer = Pacer(gate, self._clock)

    @property
    def channel_type(self) -> ChannelType:
        """``TELEGRAM``."""
        return ChannelType.TELEGRAM

    @property
    def limits(self) -> ChannelLimits:
        """4096 characters, the per-chat and overall rates, acks via the button."""
        return self._limits

    async def aclose(self) -> None:
        """Stop pacing (queued sends return ``Retryable``); the API client is the caller's."""
        await self.pacer.aclose()

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Send ``event`` to the user's Telegram chat and report the outcome."""
        profile = await find_profile(self._directory, event.user_id)
        if not isinstance(profile, UserProfile):
            return profile
        if not profile.telegram_chat_id:
            return PermanentFailure("user has no Telegram chat linked")
        chat = profile.telegram_chat_id
        keyboard = ack_keyboard(event.event_id) if event.priority is Priority.CRITICAL else None
        message = self._renderer.render(event)  # before the turn: the slot is for sending
        async with self.pacer.turn(chat, event.priority) as admitted:
            if not admitted:
                return Retryable("telegram send queue is full or closed", retry_after_ms=1_000)
            reply = await self._send(chat, message, keyboard)
            return self._outcome(reply, chat, needs_ack=keyboard is not None)

    async def _send(
        self, chat: str, message: RenderedMessage, keyboard: dict[str, Any] | None
    ) -> HttpReply | Retryable | PermanentFailure:
        text, is_html = fit_message(message)
        extra: dict[str, Any] = {} if keyboard is None else {"reply_markup": keyboard}
        if not is_html:
            return await self.api.send_message(chat, text, **extra)
        reply = await self.api.send_message(chat, text, parse_mode="HTML", **extra)
        if isinstance(reply, HttpReply) and _cannot_parse(reply):
            # Formatted text refused: the same words once more, as plain text.
            plain = _truncate_utf16(message.text or message.title, MAX_MESSAGE_LENGTH)
            reply = await self.api.send_message(chat, plain, **extra)
        return reply

    def _outcome(
        self, reply: HttpReply | Retryable | PermanentFailure, chat: str, *, needs_ack: bool
    ) -> DeliveryOutcome:
        if not isinstance(reply, HttpReply):
            return reply
        document = reply.json()
        if reply.ok and isinstance(document, dict) and document.get("ok") is True:
            return Delivered(ChannelType.TELEGRAM, needs_client_ack=needs_ack)
        now = self._clock.now_ms()
        if reply.ok:
            return Retryable(f"telegram answered {reply.status} without ok: true")
        if reply.status == 429:
            wait = retry_after_ms(reply, now)
            self.pacer.hold(chat, now + (wait if wait is not None else 1_000))
        return failure_for(reply, service="telegram", now_ms=now, redact=self.api.redact)
