"""The Python SDK of tradewire.

* :mod:`tradewire.sdk.container` - :class:`Container`, for strategy
  containers that publish user events (ZeroMQ DEALER + XPUB, durable outbox).
* :mod:`tradewire.sdk.connector` - :class:`Connector`, for ingest connectors
  that stream envelopes to ``/ws/ingest`` (an outcome per message, resends).
"""

from tradewire.sdk.connector import Acked, Connector, ConnectorClosed, Outcome, Refused
from tradewire.sdk.container import (
    DEFAULT_ROUTER,
    DEFAULT_SUB,
    Container,
    ContainerStats,
    OutboxError,
    PayloadLike,
    Publication,
    Route,
)
from tradewire.wire import AckStatus, ChannelPreference, ChannelType, EventAck, EventType, Priority

__all__ = [
    "DEFAULT_ROUTER",
    "DEFAULT_SUB",
    "AckStatus",
    "Acked",
    "ChannelPreference",
    "ChannelType",
    "Connector",
    "ConnectorClosed",
    "Container",
    "ContainerStats",
    "EventAck",
    "EventType",
    "OutboxError",
    "Outcome",
    "PayloadLike",
    "Priority",
    "Publication",
    "Refused",
    "Route",
]
