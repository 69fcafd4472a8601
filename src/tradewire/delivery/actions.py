"""What the delivery engine asks its driver to do.

The engine never does I/O: every input method returns a list of these
actions and the driver (the asyncio gateway) carries them out **in order**.
Order matters: a :class:`Settle` precedes the final :class:`SendAck` of the
same event so the store records the outcome before the container hears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from tradewire.delivery.model import AckStatus, ChannelType, Event
from tradewire.delivery.ports import Delivered, PermanentFailure, Retryable
from tradewire.delivery.states import DeliveryState

__all__ = [
    "Action",
    "AttemptOutcome",
    "Persist",
    "RecordAttempt",
    "SendAck",
    "SendTo",
    "Settle",
    "attempt_row",
]


class AttemptOutcome(Enum):
    """What became of one attempt, as recorded."""

    SENT = "sent"
    """The channel took it; the client's ack is awaited."""
    DELIVERED = "delivered"
    """The channel delivered it; no client ack needed."""
    ACKED = "acked"
    """The client acknowledged it."""
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    TIMED_OUT = "timed_out"
    """Neither a result nor a client ack within the attempt timeout."""


@dataclass(frozen=True, slots=True)
class Persist:
    """Commit ``event`` to the store, then call ``DeliveryEngine.persisted``."""

    event: Event


@dataclass(frozen=True, slots=True)
class SendTo:
    """Hand ``event`` to the adapter of ``channel``; report via ``attempt_result``."""

    event: Event
    channel: ChannelType
    attempt: int


@dataclass(frozen=True, slots=True)
class SendAck:
    """Send an ``EventAck`` to the container that sent ``event_id`` (if it can be reached)."""

    event_id: str
    status: AckStatus
    delivered_via: ChannelType | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    """Append one row to the attempt log."""

    event_id: str
    channel: ChannelType
    attempt: int
    outcome: AttemptOutcome
    error: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Settle:
    """The delivery reached a final state: record it (dropped/expired/failed/delivered)."""

    event: Event
    state: DeliveryState
    delivered_via: ChannelType | None
    reason: str | None
    at_ms: int


Action: TypeAlias = Persist | SendTo | SendAck | RecordAttempt | Settle
"""Any output of the engine."""


def attempt_row(
    event_id: str,
    channel: ChannelType,
    attempt: int,
    outcome: Delivered | Retryable | PermanentFailure,
    now_ms: int,
) -> RecordAttempt:
    """The attempt-log row for a channel's reported ``outcome``."""
    if isinstance(outcome, Delivered):
        kind = AttemptOutcome.SENT if outcome.needs_client_ack else AttemptOutcome.DELIVERED
        return RecordAttempt(event_id, channel, attempt, kind, None, now_ms)
    if isinstance(outcome, PermanentFailure):
        return RecordAttempt(
            event_id, channel, attempt, AttemptOutcome.PERMANENT, outcome.error, now_ms
        )
    return RecordAttempt(
        event_id, channel, attempt, AttemptOutcome.RETRYABLE, outcome.error, now_ms
    )
