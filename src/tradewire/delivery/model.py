"""Domain values of user-event delivery.

These mirror the names and numbers of ``user_events.proto`` (the wire
contract with containers) but are *domain* types: the gateway converts a
decoded ``UserEvent`` frame into an :class:`Event` once, at the edge, and the
delivery core never sees protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["AckStatus", "ChannelPreference", "ChannelType", "Event", "Priority"]


class Priority(IntEnum):
    """How hard the gateway tries (``Priority`` in the seed)."""

    INFORMATIONAL = 0
    """Fire-and-forget: delivered to a live session or dropped."""
    NORMAL = 1
    """Best effort: queued for a while, delivered when possible, else expired."""
    CRITICAL = 2
    """Must deliver: retried and escalated until acknowledged or the deadline."""


class ChannelType(IntEnum):
    """Where an event can go (``ChannelType`` in the seed)."""

    ACTIVE_SESSION = 0
    """Whatever channels the user has open right now."""
    WEB = 1
    TELEGRAM = 2
    EMAIL = 3
    PUSH = 4
    DISCORD = 5
    SLACK = 6


class AckStatus(IntEnum):
    """Status carried by an ``EventAck`` to the container (``AckStatus`` in the seed)."""

    DELIVERED = 0
    QUEUED = 1
    ACK_ERROR = 2


@dataclass(frozen=True, slots=True)
class ChannelPreference:
    """One entry of an event's ordered channel list.

    ``only_if_active`` skips the channel when the user is not connected to it.
    """

    channel: ChannelType
    only_if_active: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """A user event as the delivery core sees it.

    ``channels`` is the ordered preference list; empty means "use the
    configured defaults for this priority". ``timestamp_ms`` is the
    container's clock and is informational only: every timer of the core
    counts from the gateway's own accept time.
    """

    event_id: str
    user_id: str
    event_type: int
    priority: Priority
    channels: tuple[ChannelPreference, ...] = ()
    payload: bytes = b""
    timestamp_ms: int = 0
