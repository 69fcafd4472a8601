"""A bounded, priority-aware send queue for one live session.

Theory of operation: a session that reads slower than events arrive must not
make the gateway grow without bound. Each session owns an :class:`Outbox` of
at most ``capacity`` items. When it is full, INFORMATIONAL items are dropped
first (the newest arrival if it is INFORMATIONAL itself, otherwise the oldest
queued one) and counted. Guaranteed items (NORMAL, CRITICAL) are never
dropped: when the outbox is full of them, :meth:`Outbox.put` reports
``overflow`` and does not take the item; the caller either disconnects the
session as a slow consumer or leaves the item to a later retry. Either way
the event stays unacknowledged in the store, so nothing guaranteed is lost.

Most sessions are idle most of the time: the deque (about 600 bytes even
when empty) exists only while something is queued, so an idle session's
outbox costs a few dozen bytes.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import TypeAlias

__all__ = ["Outbox", "PutResult", "QueuedItem"]


class PutResult(Enum):
    """What :meth:`Outbox.put` did."""

    QUEUED = "queued"
    QUEUED_DROPPED_OLDER = "queued, an older informational item was dropped"
    DROPPED = "dropped (informational, outbox full)"
    OVERFLOW = "overflow (outbox full of guaranteed items)"


_QUEUED = PutResult.QUEUED  # the hot path: a module global, no enum class lookup

QueuedItem: TypeAlias = tuple[bytes, bool]
"""One encoded envelope waiting to be written, and whether it is guaranteed.

A plain tuple: every event delivered to a session is one, and a tuple costs a
fraction of a dataclass instance to make.
"""


class Outbox:
    """FIFO of encoded envelopes with the drop policy described above."""

    __slots__ = ("_items", "capacity", "dropped")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[QueuedItem] | None = None  # created on demand, see above

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    def put(self, data: bytes, *, guaranteed: bool) -> PutResult:
        """Queue ``data``; see the module docstring for what happens when full."""
        items = self._items
        if items is None:
            items = self._items = deque()
        if len(items) < self.capacity:
            items.append((data, guaranteed))
            return _QUEUED
        if not guaranteed:
            self.dropped += 1
            return PutResult.DROPPED
        if self._drop_oldest_informational(items):
            items.append((data, guaranteed))
            return PutResult.QUEUED_DROPPED_OLDER
        return PutResult.OVERFLOW

    def _drop_oldest_informational(self, items: deque[QueuedItem]) -> bool:
        for index, (_data, guaranteed) in enumerate(items):
            if not guaranteed:
                del items[index]
                self.dropped += 1
                return True
        return False

    def take(self, limit: int) -> list[bytes]:
        """Remove and return up to ``limit`` items, oldest first."""
        items = self._items
        if items is None:
            return []
        popleft = items.popleft
        taken = [popleft()[0] for _ in range(min(limit, len(items)))]
        if not items:
            self._items = None  # idle again: give the deque back
        return taken
