"""Values the engine shares with the store and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass

from tradewire.delivery.model import ChannelType, Event
from tradewire.delivery.states import DeliveryState

__all__ = ["DeliveryCounters", "StoredDelivery"]


@dataclass(slots=True)
class DeliveryCounters:
    """Running totals for ``/metrics`` (plain attributes, only ever incremented)."""

    accepted: int = 0
    """Events admitted (any priority), duplicates and refusals excluded."""
    duplicates: int = 0
    """Resent event ids answered with their current status."""
    rejected: int = 0
    """Events refused at the door (invalid, or the user's queue is full)."""
    attempts: int = 0
    """Send attempts started, over all channels."""
    delivered: int = 0
    dropped: int = 0
    expired: int = 0
    failed: int = 0

    def count_final(self, state: DeliveryState) -> None:
        """Count one delivery that settled in ``state``."""
        if state is DeliveryState.DELIVERED:
            self.delivered += 1
        elif state is DeliveryState.DROPPED:
            self.dropped += 1
        elif state is DeliveryState.EXPIRED:
            self.expired += 1
        else:
            self.failed += 1


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """An event as the store returns it after a restart, for ``DeliveryEngine.restore``."""

    event: Event
    state: DeliveryState
    accepted_at_ms: int
    """The gateway's clock when the event was first accepted (TTL/deadline count from it)."""
    attempts: int = 0
    delivered_via: ChannelType | None = None
    reason: str | None = None
