"""The SLACK channel: one incoming-webhook post per event.

Each user gives an incoming webhook URL (``https://hooks.slack.com/services/
T.../B.../...``); the URL is the credential and never appears in an error.
The body is Slack's documented shape: ``text`` (the notification and
fallback, at most 40,000 characters) plus ``blocks``: a ``header``
(plain text, 150 characters), a ``section`` with the ``mrkdwn`` body (3,000
characters) and a ``context`` line. Text is escaped for mrkdwn (``& < >``).

Slack answers ``200 ok``. Its errors are words in the body: ``400
invalid_payload`` / ``invalid_blocks``, ``403 action_prohibited``, ``404
no_service`` / ``channel_not_found``, ``410 channel_is_archived`` are
permanent; ``429`` (with ``Retry-After``) and ``5xx`` (``rollup_error``)
retryable.
"""

from __future__ import annotations

from typing import Any, Final

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
from tradewire.channels.escaping import escape_slack, truncate_entities, truncate_plain
from tradewire.channels.message import RenderedMessage, Renderer
from tradewire.channels.templates import event_type_name, priority_name
from tradewire.delivery.model import ChannelType, Event
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    RateLimit,
    SystemClock,
)

__all__ = ["SlackChannel", "slack_payload"]

TEXT_LIMIT: Final = 40_000
SECTION_LIMIT: Final = 3_000
HEADER_LIMIT: Final = 150
_ENCODER: Final = msgspec.json.Encoder()


def slack_payload(event: Event, message: RenderedMessage) -> dict[str, Any]:
    """The incoming-webhook JSON body for ``event``, within Slack's limits."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate_plain(message.title, HEADER_LIMIT)},
        }
    ]
    if message.slack_mrkdwn:
        body = truncate_entities(message.slack_mrkdwn, SECTION_LIMIT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    context = f"{priority_name(event.priority)} · {event_type_name(event.event_type)}"
    blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": context}]})
    return {"text": truncate_entities(escape_slack(message.title), TEXT_LIMIT), "blocks": blocks}


class SlackChannel(OwnsHttpClient):
    """The SLACK channel: posts each event to the user's incoming webhook."""

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
        """``SLACK``."""
        return ChannelType.SLACK

    @property
    def limits(self) -> ChannelLimits:
        """Section text 3000 characters; Slack's 1 message/s per webhook."""
        return ChannelLimits(max_message_length=SECTION_LIMIT, per_recipient=RateLimit(1, 1_000))

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Post ``event`` to the user's Slack webhook and report the outcome."""
        found = await find_url(
            self._directory,
            event.user_id,
            lambda p: p.slack_webhook_url,
            "Slack webhook",
            self._allowed_hosts,
        )
        if not isinstance(found, tuple):
            return found
        _, url = found
        redact = Redactor(url_secrets(url))
        body = _ENCODER.encode(slack_payload(event, self._renderer.render(event)))
        reply = await self._http.post(url, body=body, redact=redact)
        if not isinstance(reply, HttpReply):
            return reply
        if reply.ok:
            return Delivered(ChannelType.SLACK)
        return failure_for(reply, service="slack", now_ms=self._clock.now_ms(), redact=redact)
