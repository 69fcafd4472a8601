"""The DISCORD channel: one execute-webhook call per event.

Each user gives an incoming webhook URL (``https://discord.com/api/webhooks/
<id>/<token>``); the URL is the credential, so it never appears in an error.
The body is Discord's documented shape::

    {"content": "<title>",
     "embeds": [{"title", "description", "color", "timestamp", "fields"}],
     "allowed_mentions": {"parse": []}}

within Discord's limits (content 2000, embed title 256, description 4096,
field name 256, value 1024, 6000 characters per embed), every string escaped
for Discord markdown and mentions disabled. ``?wait=true`` makes Discord
answer 200 with the created message, so a 2xx is a confirmed post. A 429 is
retried after its JSON ``retry_after`` (seconds, a float) or ``Retry-After``;
404 (webhook deleted), 401/403 and 400 are permanent; 5xx retryable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
from tradewire.channels.escaping import escape_discord, truncate_discord
from tradewire.channels.message import RenderedMessage, Renderer
from tradewire.channels.templates import event_type_name, priority_name
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    RateLimit,
    SystemClock,
)

__all__ = ["DiscordChannel", "discord_payload", "with_wait"]

CONTENT_LIMIT: Final = 2000
TITLE_LIMIT: Final = 256
DESCRIPTION_LIMIT: Final = 4096
COLORS: Final = {Priority.CRITICAL: 0xE74C3C, Priority.NORMAL: 0x3498DB}
"""Embed colour by priority (INFORMATIONAL: grey)."""
_GREY: Final = 0x95A5A6
_ENCODER: Final = msgspec.json.Encoder()


def with_wait(url: str) -> str:
    """``url`` with ``wait=true`` added to its query (other parameters kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _iso(ms: int) -> str | None:
    if ms <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def discord_payload(event: Event, message: RenderedMessage) -> dict[str, Any]:
    """The execute-webhook JSON body for ``event``, within Discord's limits."""
    title = escape_discord(message.title)
    embed: dict[str, Any] = {
        "title": truncate_discord(title, TITLE_LIMIT),
        "color": COLORS.get(event.priority, _GREY),
        "fields": [
            {"name": "Priority", "value": priority_name(event.priority), "inline": True},
            {
                "name": "Event",
                "value": escape_discord(event_type_name(event.event_type)),
                "inline": True,
            },
        ],
    }
    if message.discord_markdown:
        embed["description"] = truncate_discord(message.discord_markdown, DESCRIPTION_LIMIT)
    timestamp = _iso(event.timestamp_ms)
    if timestamp is not None:
        embed["timestamp"] = timestamp
    return {
        "content": truncate_discord(title, CONTENT_LIMIT),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


class DiscordChannel(OwnsHttpClient):
    """The DISCORD channel: posts each event to the user's incoming webhook."""

    def __init__(
        self,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        clock: Clock | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: HttpClient | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self._directory = directory
        self._allowed_hosts = allowed_hosts
        self._renderer = renderer
        self._clock = clock or SystemClock()
        super().__init__(http=http, timeout_s=timeout_s)

    @property
    def channel_type(self) -> ChannelType:
        """``DISCORD``."""
        return ChannelType.DISCORD

    @property
    def limits(self) -> ChannelLimits:
        """Embed description 4096 characters; Discord's 5 requests / 2 s per webhook."""
        return ChannelLimits(
            max_message_length=DESCRIPTION_LIMIT, per_recipient=RateLimit(5, 2_000)
        )

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Post ``event`` to the user's Discord webhook and report the outcome."""
        found = await find_url(
            self._directory,
            event.user_id,
            lambda p: p.discord_webhook_url,
            "Discord webhook",
            self._allowed_hosts,
        )
        if not isinstance(found, tuple):
            return found
        _, url = found
        redact = Redactor(url_secrets(url))
        body = _ENCODER.encode(discord_payload(event, self._renderer.render(event)))
        reply = await self._http.post(with_wait(url), body=body, redact=redact)
        if not isinstance(reply, HttpReply):
            return reply
        if reply.ok:
            return Delivered(ChannelType.DISCORD)
        return failure_for(reply, service="discord", now_ms=self._clock.now_ms(), redact=redact)
