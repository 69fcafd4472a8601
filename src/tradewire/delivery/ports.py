"""The ports of the delivery core: channels, presence and the clock.

Adapters (the WebSocket session, Telegram, SMTP, Web Push, Discord, Slack, a
NATS-backed presence) implement these ``typing.Protocol`` interfaces and are
the only code that imports their library; the core never imports an adapter.

A channel reports what happened as a value, never as an exception:

* :class:`Delivered` - the channel took the event (``needs_client_ack`` when
  the far end still has to confirm it, as a browser session does);
* :class:`Retryable` - try again later, no sooner than ``retry_after_ms``
  when the service said so (HTTP 429 ``Retry-After``, SMTP 4xx);
* :class:`PermanentFailure` - this channel will never deliver this event
  (blocked bot, 410 Gone push subscription, rejected address).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from tradewire.delivery.model import ChannelType, Event

__all__ = [
    "Channel",
    "ChannelLimits",
    "Clock",
    "Delivered",
    "DeliveryOutcome",
    "ManualClock",
    "PermanentFailure",
    "Presence",
    "RateLimit",
    "Retryable",
    "SystemClock",
]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` messages per ``per_ms`` milliseconds."""

    count: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """What a channel declares about itself, as data (checked by the contract tests)."""

    max_message_length: int | None = None
    """Largest rendered message in characters; ``None`` = no limit."""
    per_recipient: RateLimit | None = None
    """Rate limit towards one user (Telegram: about 1 message/second per chat)."""
    overall: RateLimit | None = None
    """Rate limit of the whole channel (Telegram: about 30 messages/second)."""
    supports_ack: bool = False
    """Whether the far end confirms receipt (``Delivered.needs_client_ack``)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """The channel took the event; ``needs_client_ack`` if the client must still confirm."""

    channel: ChannelType
    needs_client_ack: bool = False


@dataclass(frozen=True, slots=True)
class Retryable:
    """A transient failure; retry no sooner than ``retry_after_ms`` if given."""

    error: str
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """This channel will never deliver this event."""

    error: str


DeliveryOutcome: TypeAlias = Delivered | Retryable | PermanentFailure
"""What one attempt on one channel produced."""


@runtime_checkable
class Channel(Protocol):
    """One way to reach a user (an adapter does I/O, hence ``async``).

    ``send`` must not raise for expected failures: it returns a
    :data:`DeliveryOutcome`, and translates its library's exceptions into one.

    An adapter may also offer ``precheck(event) -> DeliveryOutcome | None``,
    without I/O: the outcome when it is already known (the user has no
    address for this channel, an opt-out), else ``None``. The driver then
    records that outcome at once instead of running ``send`` in a task
    (``tradewire.channels.gate`` and ``.slot`` implement it).
    """

    @property
    def channel_type(self) -> ChannelType:
        """Which channel this adapter serves."""
        ...

    @property
    def limits(self) -> ChannelLimits:
        """The channel's declared limits."""
        ...

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Deliver ``event`` (attempt number ``attempt``) and report the outcome."""
        ...


@runtime_checkable
class Presence(Protocol):
    """Which channels each user has open right now, on any gateway node.

    Reads are synchronous: a multi-node implementation answers from a local
    replica (for example a NATS KV watch) and tells the engine about changes
    through ``DeliveryEngine.session_opened`` / ``session_closed``.
    """

    def open_channels(self, user_id: str) -> tuple[ChannelType, ...]:
        """The user's open channels, in the order they were opened."""
        ...

    def is_active(self, user_id: str, channel: ChannelType) -> bool:
        """Whether the user has ``channel`` open now."""
        ...


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time in milliseconds (injected so tests never sleep)."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (for tests)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        """The current manual time."""
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` and return the new time."""
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self._now += ms
        return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (not earlier than the current time)."""
        if now_ms < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = now_ms
