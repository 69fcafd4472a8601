"""A user event rendered for people: the renderer port.

The delivery core carries events as bytes; the channels need words. A
:class:`Renderer` turns an :class:`~tradewire.delivery.model.Event` into a
:class:`RenderedMessage` once per attempt, in every format a channel may
want, each already escaped for that format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tradewire.delivery.model import Event

__all__ = ["RenderedMessage", "Renderer"]


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One event in words, in each format a channel may send."""

    title: str
    """One line, plain text ("BUY 0.1 BTCUSDT filled at 45000")."""
    text: str
    """Plain-text body (email text part, push body, Telegram fallback)."""
    html: str
    """HTML body, escaped (email HTML part)."""
    telegram_html: str
    """Telegram Bot API ``parse_mode=HTML`` subset, escaped."""
    discord_markdown: str
    """Discord markdown (``content`` / embed description), escaped."""
    slack_mrkdwn: str
    """Slack ``mrkdwn`` (``text`` / section blocks), with ``& < >`` escaped."""


@runtime_checkable
class Renderer(Protocol):
    """Turns an event into words."""

    def render(self, event: Event) -> RenderedMessage:
        """Render ``event``; never raises for a payload it cannot read (falls back to raw)."""
        ...
