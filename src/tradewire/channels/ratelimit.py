"""Pacing messages under per-recipient and overall rate limits, CRITICAL first.

Theory of operation
-------------------
:class:`RateGate` is a pure scheduler: callers :meth:`~RateGate.offer` a
message for a key (a Telegram chat) with a priority and get a ticket;
:meth:`~RateGate.next` says, for a given time, which ticket may go now
(:class:`Admitted`) or when to ask again (:class:`WaitUntil`). Nothing
sleeps here and the time is an argument, so tests drive it with a manual
clock and a burst of 50 messages is checked in microseconds.

Each limit is a sliding window (:class:`RateWindow`): at most ``count``
messages in *any* ``per_ms`` window, in integer milliseconds. Telegram's
"about 1 message per second per chat" is ``RateLimit(1, 1000)`` and its "30
messages per second" overall is ``RateLimit(30, 1000)``: 30 may go at once,
the 31st a second after the first.

Ordering: among the keys whose window allows a message now, the one whose head
message has the highest priority goes first, then the oldest; within one
key, CRITICAL messages overtake queued NORMAL and INFORMATIONAL ones, then
FIFO. The overall window gates every release. A key has at most one message
in flight: after :class:`Admitted`, the next message to that key waits for
:meth:`~RateGate.finished`, so messages to one chat arrive in the order
chosen here even when a request is slow. A ``429`` from the service
:meth:`~RateGate.hold` s a key (or everything) until its ``retry_after``.

The queue is bounded (``max_queued``, plus ``critical_reserve`` places only
CRITICAL may take): :meth:`~RateGate.offer` answers ``None`` when full, a
counted refusal the channel turns into a ``Retryable``.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from tradewire.delivery.model import Priority
from tradewire.delivery.ports import RateLimit

__all__ = ["Admitted", "RateGate", "RateWindow", "WaitUntil"]

_SWEEP_EVERY: Final = 1024


class RateWindow:
    """At most ``count`` uses in any ``per_ms`` window, for one :class:`RateLimit`.

    A sliding log of the last ``count`` use times: a use at ``t`` is allowed
    when the ``count``-th previous one is at or before ``t - per_ms``. Unlike
    a token bucket (which lets ``2 * count - 1`` through in the worst window),
    this never exceeds the documented rate in any window.
    """

    __slots__ = ("_count", "_not_before", "_per_ms", "_uses")

    def __init__(self, limit: RateLimit) -> None:
        if limit.count < 1 or limit.per_ms < 1:
            raise ValueError("a rate limit needs count >= 1 and per_ms >= 1")
        self._count = limit.count
        self._per_ms = limit.per_ms
        self._uses: deque[int] = deque(maxlen=limit.count)
        self._not_before = 0

    def ready_at(self, now_ms: int) -> int:
        """The earliest time (>= ``now_ms``) at which one more use is allowed."""
        at = max(now_ms, self._not_before)
        if len(self._uses) == self._count:
            at = max(at, self._uses[0] + self._per_ms)
        return at

    def take(self, now_ms: int) -> None:
        """Record a use at ``now_ms`` (the caller checked :meth:`ready_at`)."""
        self._uses.append(now_ms)

    def hold_until(self, until_ms: int) -> None:
        """No use before ``until_ms`` (a service said "retry after")."""
        self._not_before = max(self._not_before, until_ms)

    def is_idle(self, now_ms: int) -> bool:
        """Whether nothing recent constrains it (it can then be forgotten)."""
        recent = bool(self._uses) and self._uses[-1] + self._per_ms > now_ms
        return not recent and self._not_before <= now_ms


@dataclass(frozen=True, slots=True)
class Admitted:
    """Ticket ``ticket`` (for ``key``) may be sent now."""

    ticket: int
    key: str


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing may go before ``at_ms``."""

    at_ms: int


@dataclass(slots=True)
class _KeyQueue:
    """The queued tickets of one key, as a heap of (rank, seq, ticket)."""

    heap: list[tuple[int, int, int]] = field(default_factory=list)
    version: int = 0


def _rank(priority: Priority) -> int:
    """Lower goes first: CRITICAL 0, NORMAL 1, INFORMATIONAL 2."""
    return int(Priority.CRITICAL) - int(priority)


class RateGate:
    """Decides which queued message goes next under the limits (pure, clock as argument).

    ``per_key``: the limit towards one recipient; ``overall``: the limit of
    the whole channel. ``None`` means unlimited.
    """

    def __init__(
        self,
        *,
        per_key: RateLimit | None,
        overall: RateLimit | None,
        max_queued: int = 10_000,
        critical_reserve: int = 1_000,
    ) -> None:
        if max_queued < 1 or critical_reserve < 0:
            raise ValueError("a rate gate needs max_queued >= 1 and critical_reserve >= 0")
        self.per_key = per_key
        self.max_queued = max_queued
        self.critical_reserve = critical_reserve
        self._overall = RateWindow(overall) if overall is not None else None
        self._windows: dict[str, RateWindow] = {}
        self._queues: dict[str, _KeyQueue] = {}
        self._key_of: dict[int, str] = {}
        # Keys with queued tickets: by the time their window allows one, and
        # ready ones by their head's (rank, seq). Entries carry the key's
        # version; an outdated entry is skipped when it surfaces.
        self._waiting: list[tuple[int, int, int, str, int]] = []
        self._ready: list[tuple[int, int, str, int]] = []
        self._in_flight: set[str] = set()
        self._paused_until = 0
        self._seq = 0
        self._released = 0
        self.refused = 0
        """Offers refused because the queue was full (a counted drop)."""

    def __len__(self) -> int:
        """How many tickets are queued."""
        return len(self._key_of)

    def offer(self, key: str, priority: Priority, now_ms: int) -> int | None:
        """Queue a message for ``key``; its ticket, or ``None`` when the queue is full."""
        bound = self.max_queued + (self.critical_reserve if priority is Priority.CRITICAL else 0)
        if len(self._key_of) >= bound:
            self.refused += 1
            return None
        self._seq += 1
        ticket = self._seq
        queue = self._queues.setdefault(key, _KeyQueue())
        heapq.heappush(queue.heap, (_rank(priority), ticket, ticket))
        self._key_of[ticket] = key
        self._schedule(key, queue, now_ms)
        return ticket

    def withdraw(self, ticket: int, now_ms: int) -> bool:
        """Take a queued ticket back (its sender gave up); ``False`` if not queued."""
        key = self._key_of.pop(ticket, None)
        if key is None:
            return False
        queue = self._queues[key]
        queue.heap = [entry for entry in queue.heap if entry[2] != ticket]
        heapq.heapify(queue.heap)
        self._schedule(key, queue, now_ms)
        return True

    def hold(self, key: str | None, until_ms: int, now_ms: int) -> None:
        """Send nothing to ``key`` (everything when ``None``) before ``until_ms``."""
        if key is None:
            self._paused_until = max(self._paused_until, until_ms)
            return
        self._window(key).hold_until(until_ms)
        queue = self._queues.get(key)
        if queue is not None:
            self._schedule(key, queue, now_ms)

    def next(self, now_ms: int) -> Admitted | WaitUntil | None:
        """The ticket that may go at ``now_ms``, else when to ask again (``None``: empty)."""
        self._promote(now_ms)
        head = self._valid_ready()
        if head is None:
            waiting = self._valid_waiting()
            return None if waiting is None else WaitUntil(waiting[0])
        at = max(self._paused_until, now_ms)
        if self._overall is not None:
            at = max(at, self._overall.ready_at(now_ms))
        if at > now_ms:
            return WaitUntil(at)
        _, _, key, _ = heapq.heappop(self._ready)
        queue = self._queues[key]
        _, _, ticket = heapq.heappop(queue.heap)
        del self._key_of[ticket]
        self._take(key, now_ms)
        self._in_flight.add(key)
        self._schedule(key, queue, now_ms)
        return Admitted(ticket, key)

    def finished(self, key: str, now_ms: int) -> None:
        """The admitted message to ``key`` was sent (or failed): the key may go again."""
        self._in_flight.discard(key)
        queue = self._queues.get(key)
        if queue is not None:
            self._schedule(key, queue, now_ms)

    # -- internals -------------------------------------------------------------

    def _window(self, key: str) -> RateWindow:
        window = self._windows.get(key)
        if window is None:
            window = RateWindow(self.per_key or RateLimit(1, 1))
            self._windows[key] = window
        return window

    def _take(self, key: str, now_ms: int) -> None:
        if self.per_key is not None:
            self._window(key).take(now_ms)
        if self._overall is not None:
            self._overall.take(now_ms)
        self._released += 1
        if self._released % _SWEEP_EVERY == 0:
            self._sweep(now_ms)

    def _schedule(self, key: str, queue: _KeyQueue, now_ms: int) -> None:
        """(Re)place ``key`` in the waiting heap after its queue or window changed."""
        queue.version += 1
        if not queue.heap:
            del self._queues[key]
            return
        if key in self._in_flight:
            return  # finished() schedules it
        window = self._windows.get(key)
        ready_at = window.ready_at(now_ms) if window is not None else now_ms
        rank, seq, _ = queue.heap[0]
        heapq.heappush(self._waiting, (ready_at, rank, seq, key, queue.version))

    def _current(self, key: str, version: int) -> bool:
        queue = self._queues.get(key)
        return queue is not None and queue.version == version

    def _promote(self, now_ms: int) -> None:
        while self._waiting and self._waiting[0][0] <= now_ms:
            _, rank, seq, key, version = heapq.heappop(self._waiting)
            if self._current(key, version):
                heapq.heappush(self._ready, (rank, seq, key, version))

    def _valid_ready(self) -> tuple[int, int, str, int] | None:
        while self._ready and not self._current(self._ready[0][2], self._ready[0][3]):
            heapq.heappop(self._ready)
        return self._ready[0] if self._ready else None

    def _valid_waiting(self) -> tuple[int, int, int, str, int] | None:
        while self._waiting and not self._current(self._waiting[0][3], self._waiting[0][4]):
            heapq.heappop(self._waiting)
        return self._waiting[0] if self._waiting else None

    def _sweep(self, now_ms: int) -> None:
        """Forget idle windows of keys with nothing queued (bounded memory)."""
        idle = [
            k
            for k, b in self._windows.items()
            if k not in self._queues and k not in self._in_flight and b.is_idle(now_ms)
        ]
        for key in idle:
            del self._windows[key]
