"""Book-keeping of the engine: one mutable record per pending event, and its timers."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TypeAlias

from tradewire.delivery.actions import SendAck
from tradewire.delivery.model import AckStatus, ChannelType, Event, Priority
from tradewire.delivery.states import DeliveryState

__all__ = ["Outcome", "PendingDelivery", "SettledWindow", "TimerQueue", "UserQueue", "final_ack"]


@dataclass(slots=True, eq=False)
class PendingDelivery:
    """Everything the engine remembers about one unfinished event."""

    event: Event
    seq: int
    """Acceptance order; ties between timers and flushes are broken by it."""
    accepted_at_ms: int
    state: DeliveryState
    stop_at_ms: int | None
    attempt: int = 0
    """Number of the last attempt started (1-based, over all channels and rounds)."""
    channel: ChannelType | None = None
    """Channel of the last attempt started."""
    rounds: int = 0
    """Rounds that tried at least one channel and ended without delivery."""
    tried: set[ChannelType] = field(default_factory=set)
    """Channels tried in the current round."""
    dead: set[ChannelType] = field(default_factory=set)
    """Channels that failed permanently for this event."""
    awaiting_ack_on: dict[ChannelType, int] = field(default_factory=dict)
    """Channel -> attempt that reached the client and may still be acked."""
    not_before: dict[ChannelType, int] = field(default_factory=dict)
    """Channel -> earliest time it may be tried again (its ``retry_after``)."""
    timer_token: int = 0
    """Token of the one live timer; older heap entries are stale."""


class UserQueue:
    """One user's unfinished events in acceptance order, with what admission counts.

    Admission needs the user's pending count, CRITICAL count and oldest
    evictable event for every new event; keeping them here as the queue
    changes makes that O(1) instead of a walk over the whole queue (which
    made accepting a burst for one user quadratic).
    """

    __slots__ = ("critical", "deliveries", "informational", "normal")

    def __init__(self) -> None:
        self.deliveries: dict[str, PendingDelivery] = {}
        """Event id -> delivery, in acceptance order."""
        self.critical = 0
        self.informational: dict[str, PendingDelivery] = {}
        self.normal: dict[str, PendingDelivery] = {}

    def __len__(self) -> int:
        return len(self.deliveries)

    def add(self, delivery: PendingDelivery) -> None:
        """Append ``delivery`` (the newest accepted)."""
        event = delivery.event
        self.deliveries[event.event_id] = delivery
        if event.priority is Priority.CRITICAL:
            self.critical += 1
        elif event.priority is Priority.INFORMATIONAL:
            self.informational[event.event_id] = delivery
        else:
            self.normal[event.event_id] = delivery

    def remove(self, delivery: PendingDelivery) -> None:
        """Forget ``delivery`` (it must be in the queue)."""
        event = delivery.event
        del self.deliveries[event.event_id]
        if event.priority is Priority.CRITICAL:
            self.critical -= 1
        elif event.priority is Priority.INFORMATIONAL:
            del self.informational[event.event_id]
        else:
            del self.normal[event.event_id]

    def victim(self, priority: Priority) -> str | None:
        """Who makes room for a new ``priority`` event: same rule as ``policy._victim``.

        The oldest INFORMATIONAL; else, for a guaranteed newcomer, the oldest
        NORMAL waiting in ``queued``; CRITICAL never.
        """
        for event_id in self.informational:
            return event_id
        if priority is Priority.INFORMATIONAL:
            return None
        for event_id, delivery in self.normal.items():
            if delivery.state is DeliveryState.QUEUED:
                return event_id
        return None


class TimerQueue:
    """One live timer per event on a heap; rescheduling leaves stale entries behind."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, PendingDelivery]] = []
        self._next_token = 0

    def schedule(self, delivery: PendingDelivery, at_ms: int) -> None:
        """Make ``at_ms`` the only live timer of ``delivery``."""
        self._next_token += 1
        delivery.timer_token = self._next_token
        heapq.heappush(self._heap, (at_ms, delivery.seq, self._next_token, delivery))

    def cancel(self, delivery: PendingDelivery) -> None:
        """Forget the live timer of ``delivery``."""
        delivery.timer_token = 0

    def _drop_stale(self) -> None:
        while self._heap and self._heap[0][3].timer_token != self._heap[0][2]:
            heapq.heappop(self._heap)

    def next_at(self) -> int | None:
        """When the earliest live timer fires, if any."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> PendingDelivery | None:
        """The next delivery whose live timer is due at ``now_ms``, or ``None``."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        delivery = heapq.heappop(self._heap)[3]
        delivery.timer_token = 0
        return delivery


Outcome: TypeAlias = tuple[DeliveryState, ChannelType | None, str | None]
"""How an event ended: its final state, the channel that delivered it, the reason if not."""


class SettledWindow:
    """How the last ``capacity`` finished events ended, to answer duplicates.

    An entry is an :data:`Outcome`; the final ack is built only when a
    duplicate asks for it, because most events never see one. The SUB fast
    path settles tens of thousands of events per second with one of two
    shared outcome tuples, so a full window of them adds no object for the
    cyclic GC to track (a tuple per entry made the collections that pass
    over a 100,000-entry window cost as much as the rest of settling).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, Outcome] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._entries

    def remember(self, event_id: str, outcome: Outcome) -> None:
        """Keep how ``event_id`` ended, forgetting the oldest entry when full."""
        entries = self._entries
        entries[event_id] = outcome
        entries.move_to_end(event_id)
        if len(entries) > self._capacity:
            entries.popitem(last=False)

    def get(self, event_id: str) -> tuple[DeliveryState, SendAck] | None:
        """The remembered state and final ack of ``event_id``, if still in the window."""
        entry = self._entries.get(event_id)
        if entry is None:
            return None
        state, via, reason = entry
        return state, final_ack(event_id, state, via, reason)


def final_ack(
    event_id: str, state: DeliveryState, via: ChannelType | None, reason: str | None
) -> SendAck:
    """The one final ack of an event that ended in ``state``."""
    if state is DeliveryState.DELIVERED:
        return SendAck(event_id, AckStatus.DELIVERED, delivered_via=via)
    return SendAck(event_id, AckStatus.ACK_ERROR, error=reason)
