"""User-event delivery: the pure, socket-free core.

:class:`DeliveryEngine` decides where each :class:`Event` goes and what its
sender is told; it returns :data:`Action` values for an I/O driver to carry
out. Channels, presence and the clock are ports (``typing.Protocol``) that
adapters implement. See ``docs/concepts/delivery.md``.
"""

from tradewire.delivery.actions import (
    Action,
    AttemptOutcome,
    Persist,
    RecordAttempt,
    SendAck,
    SendTo,
    Settle,
)
from tradewire.delivery.backoff import BackoffPolicy, backoff_delay_ms, retry_delay_ms
from tradewire.delivery.config import DEFAULT_CHANNELS, DeliveryConfig
from tradewire.delivery.engine import DeliveryEngine
from tradewire.delivery.model import AckStatus, ChannelPreference, ChannelType, Event, Priority
from tradewire.delivery.ports import (
    Channel,
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    ManualClock,
    PermanentFailure,
    Presence,
    RateLimit,
    Retryable,
    SystemClock,
)
from tradewire.delivery.presence import LocalPresence
from tradewire.delivery.records import DeliveryCounters, StoredDelivery
from tradewire.delivery.states import (
    FINAL_STATES,
    TRANSITIONS,
    DeliveryState,
    DeliveryStateError,
    DeliveryTrigger,
    advance,
    is_final,
    render_state_doc,
)

__all__ = [
    "DEFAULT_CHANNELS",
    "FINAL_STATES",
    "TRANSITIONS",
    "AckStatus",
    "Action",
    "AttemptOutcome",
    "BackoffPolicy",
    "Channel",
    "ChannelLimits",
    "ChannelPreference",
    "ChannelType",
    "Clock",
    "Delivered",
    "DeliveryConfig",
    "DeliveryCounters",
    "DeliveryEngine",
    "DeliveryOutcome",
    "DeliveryState",
    "DeliveryStateError",
    "DeliveryTrigger",
    "Event",
    "LocalPresence",
    "ManualClock",
    "PermanentFailure",
    "Persist",
    "Presence",
    "Priority",
    "RateLimit",
    "RecordAttempt",
    "Retryable",
    "SendAck",
    "SendTo",
    "Settle",
    "StoredDelivery",
    "SystemClock",
    "advance",
    "backoff_delay_ms",
    "is_final",
    "render_state_doc",
    "retry_delay_ms",
]
