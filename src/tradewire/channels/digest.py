"""Combining a user's events that arrive close together: the digest buffer.

Theory of operation
-------------------
A :class:`DigestBuffer` keeps at most one *open window* per key (a user).
The first item for a key opens its window at ``now_ms``; the window closes
``window_ms`` later, and every item added to that key before then joins it.
A closed window becomes a :class:`Digest` with all its items in the order
they were added. The window is fixed, not sliding, so no item waits longer
than ``window_ms`` however busy the user is.

Windows close in three ways:

* their deadline passes (noticed by :meth:`DigestBuffer.due` or by the next
  :meth:`~DigestBuffer.add` for that key);
* they reach ``max_items`` (the buffer is bounded: a burst becomes several
  digests, never one unbounded one);
* :meth:`~DigestBuffer.drain` closes everything (shutdown).

The buffer is pure: no asyncio, no clock of its own. Time comes in as
``now_ms`` arguments, so an adapter drives it from its injected
:class:`~tradewire.delivery.ports.Clock` and tests from a manual one.
A ``window_ms`` of 0 turns digests off: every item is its own digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Digest", "DigestBuffer"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Digest(Generic[T]):
    """The items one window collected for one key, in arrival order."""

    key: str
    items: tuple[T, ...]
    item_ids: tuple[str, ...]
    opened_ms: int
    """When the window's first item arrived."""


@dataclass(slots=True)
class _Window(Generic[T]):
    opened_ms: int
    deadline_ms: int
    items: dict[str, T] = field(default_factory=dict)

    def close(self, key: str) -> Digest[T]:
        return Digest(key, tuple(self.items.values()), tuple(self.items), self.opened_ms)


class DigestBuffer(Generic[T]):
    """Per-key windows of items, closed by time or size (see the module docstring).

    Items carry an id unique within their key; adding an id that is already
    waiting in the key's open window is a no-op, and :meth:`withdraw` takes
    an item back out before its window closes.
    """

    def __init__(self, window_ms: int, max_items: int = 50) -> None:
        if window_ms < 0:
            raise ValueError("window_ms must be >= 0")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.window_ms = window_ms
        self.max_items = max_items
        self._open: dict[str, _Window[T]] = {}
        self._closed: list[Digest[T]] = []

    def __len__(self) -> int:
        """Items waiting in open windows or in closed digests not yet taken."""
        return sum(len(w.items) for w in self._open.values()) + sum(
            len(d.items) for d in self._closed
        )

    def add(self, key: str, item_id: str, item: T, now_ms: int) -> int:
        """Put ``item`` in ``key``'s window (opening one if needed); return its deadline.

        The returned deadline is when the digest holding the item becomes due
        (``now_ms`` when the window closed at once because it filled up).
        """
        window = self._open.get(key)
        if window is not None and now_ms >= window.deadline_ms:
            self._close(key)
            window = None
        if window is None:
            window = _Window(opened_ms=now_ms, deadline_ms=now_ms + self.window_ms)
            self._open[key] = window
        window.items.setdefault(item_id, item)
        if len(window.items) >= self.max_items or self.window_ms == 0:
            self._close(key)
            return now_ms
        return window.deadline_ms

    def withdraw(self, key: str, item_id: str) -> bool:
        """Take a waiting item back out; ``False`` if its window already closed."""
        window = self._open.get(key)
        if window is None or window.items.pop(item_id, None) is None:
            return False
        if not window.items:
            del self._open[key]
        return True

    def is_waiting(self, key: str, item_id: str) -> bool:
        """Whether ``item_id`` sits in ``key``'s open window."""
        window = self._open.get(key)
        return window is not None and item_id in window.items

    def next_deadline(self) -> int | None:
        """When :meth:`due` next has something: the earliest deadline, or ``None``."""
        if self._closed:
            return min(d.opened_ms for d in self._closed)
        return min((w.deadline_ms for w in self._open.values()), default=None)

    def due(self, now_ms: int) -> list[Digest[T]]:
        """Close the windows whose deadline has passed and hand out every closed digest."""
        for key in [k for k, w in self._open.items() if now_ms >= w.deadline_ms]:
            self._close(key)
        return self._take_closed()

    def drain(self) -> list[Digest[T]]:
        """Close every window now and hand out all digests (for shutdown)."""
        for key in list(self._open):
            self._close(key)
        return self._take_closed()

    def _close(self, key: str) -> None:
        self._closed.append(self._open.pop(key).close(key))

    def _take_closed(self) -> list[Digest[T]]:
        closed, self._closed = self._closed, []
        return closed
