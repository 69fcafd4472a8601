"""The container's durable outbox and its resend schedule.

Theory of operation
-------------------
Two parts, both free of asyncio and ZeroMQ:

* :class:`OutboxFile` is a SQLite file (WAL, ``synchronous=FULL`` by
  default) with one row per guaranteed event that has no *final* ack yet:
  the ``0x20`` frame exactly as it is sent. :meth:`OutboxFile.commit`
  writes a batch of new frames and removes a batch of finished ids in one
  transaction, so a busy container pays one fsync per loop turn, not one per
  event. A row is written before its frame is ever sent and deleted only
  when its final ack (DELIVERED or ACK_ERROR) arrived: after a crash,
  :meth:`OutboxFile.pending` is exactly what must be sent again.

* :class:`ResendSchedule` decides *when* each frame goes (again). An event
  is ``unsent`` (waiting for room in the window), ``sent`` (on the wire, no
  ack yet: resent with exponential backoff, same event_id) or ``queued``
  (the gateway stored it and answered QUEUED: no more backoff resends, but
  the event stays until its final ack; an optional slow *recheck* resends it
  as a status poll in case a final ack was lost). A reconnect makes every
  unfinished event ``unsent`` again, since a restarted gateway only knows
  where to send a final ack once the event is resent to it; the gateway
  deduplicates by event_id and answers the current status.

  At most ``window`` events are ``sent`` at a time, which bounds what sits
  in ZeroMQ buffers and what a gateway must take in one burst.

Time is the caller's: every method takes ``now_ms``; the delays come from
the pure :func:`tradewire.delivery.backoff.backoff_delay_ms`.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final, Literal

from tradewire.delivery.backoff import BackoffPolicy, backoff_delay_ms
from tradewire.wire import AckStatus, EventAck

__all__ = [
    "DEFAULT_RESEND_POLICY",
    "AckEffect",
    "OutboxEntry",
    "OutboxFile",
    "ResendSchedule",
    "SendState",
    "resend_delay_ms",
]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

DEFAULT_RESEND_POLICY: Final = BackoffPolicy(base_ms=1_000, cap_ms=15_000, jitter=0.2)
"""Resend delays of an unacked event: 1 s, 2 s, 4 s, ... up to 15 s (jittered)."""

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE,"
    " frame BLOB NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One guaranteed event waiting for its final ack: its id and ``0x20`` frame."""

    event_id: str
    frame: bytes


class OutboxFile:
    """The outbox on one SQLite file (one writer: the container that owns it)."""

    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The container drives this from one worker thread at a time.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(_SCHEMA)

    def commit(self, added: Sequence[OutboxEntry], finished: Sequence[str]) -> list[bool]:
        """Store ``added`` and drop ``finished`` in one transaction.

        Returns, per added entry, whether it is new (``False``: that event_id
        is already waiting in the outbox and keeps its first frame).
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = [self._insert(entry) for entry in added]
            db.executemany("DELETE FROM outbox WHERE event_id = ?", [(i,) for i in finished])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return fresh

    def _insert(self, entry: OutboxEntry) -> bool:
        cursor = self._db.execute(
            "INSERT INTO outbox (event_id, frame) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING",
            (entry.event_id, entry.frame),
        )
        return cursor.rowcount == 1

    def pending(self) -> list[OutboxEntry]:
        """Every event still waiting for its final ack, oldest first."""
        rows = self._db.execute("SELECT event_id, frame FROM outbox ORDER BY seq")
        return [OutboxEntry(event_id, bytes(frame)) for event_id, frame in rows]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        """Close the file (everything committed is already durable)."""
        self._db.close()


def resend_delay_ms(policy: BackoffPolicy, sends: int, event_id: str) -> int:
    """How long to wait for an ack after the ``sends``-th transmission of ``event_id``."""
    return backoff_delay_ms(policy, max(1, sends), seed=event_id)


class SendState(Enum):
    """Where an unfinished event stands on the guaranteed path."""

    UNSENT = "unsent"
    SENT = "sent"
    QUEUED = "queued"


class AckEffect(Enum):
    """What an incoming ack meant for the schedule."""

    FIRST = "first"
    """The first ack of the event (QUEUED, or an immediate final status)."""
    REPEAT = "repeat"
    """Another QUEUED for an event already known to be queued."""
    FINAL = "final"
    """The event is done (DELIVERED or ACK_ERROR); it left the schedule."""
    UNKNOWN = "unknown"
    """Not an event of this schedule (already finished, or foreign)."""


@dataclass(slots=True)
class _Tracked:
    entry: OutboxEntry
    order: int
    state: SendState = SendState.UNSENT
    sends: int = 0
    generation: int = 0
    first_acked: bool = False


@dataclass(slots=True)
class ResendSchedule:
    """Which frames to (re)send when; a pure state machine (see module docs)."""

    policy: BackoffPolicy = DEFAULT_RESEND_POLICY
    window: int = 1_000
    recheck_ms: int | None = 60_000
    _events: dict[str, _Tracked] = field(default_factory=dict)
    _unsent: deque[str] = field(default_factory=deque)
    _timers: list[tuple[int, int, str, int]] = field(default_factory=list)
    _in_window: int = 0
    _unconfirmed: int = 0
    _order: int = 0
    resends: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")

    # -- queries -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def state_of(self, event_id: str) -> SendState | None:
        """The event's state, or ``None`` once it is final (or was never added)."""
        tracked = self._events.get(event_id)
        return tracked.state if tracked is not None else None

    def unconfirmed(self) -> int:
        """Events the gateway has not confirmed storing yet (no first ack)."""
        return self._unconfirmed

    def next_deadline(self) -> int | None:
        """When :meth:`due` has something to send next (ms), ``None`` if only acks can help."""
        if self._unsent and self._in_window < self.window:
            return 0
        self._drop_stale_timers()
        return self._timers[0][0] if self._timers else None

    # -- inputs ----------------------------------------------------------------

    def add(self, entries: Iterable[OutboxEntry]) -> None:
        """Schedule new (or restored) events for their first transmission."""
        for entry in entries:
            if entry.event_id in self._events:
                continue
            self._order += 1
            self._events[entry.event_id] = _Tracked(entry, self._order)
            self._unsent.append(entry.event_id)
            self._unconfirmed += 1

    def on_ack(self, ack: EventAck, now_ms: int) -> AckEffect:
        """Account for an ack from the gateway."""
        tracked = self._events.get(ack.event_id)
        if tracked is None:
            return AckEffect.UNKNOWN
        first = not tracked.first_acked
        if first:
            tracked.first_acked = True
            self._unconfirmed -= 1
        if ack.status is AckStatus.QUEUED:
            self._to_queued(tracked, now_ms)
            return AckEffect.FIRST if first else AckEffect.REPEAT
        self._leave_window(tracked)
        del self._events[ack.event_id]
        return AckEffect.FINAL

    def reconnected(self) -> None:
        """The link to the gateway was re-established: resend everything unfinished."""
        self._timers.clear()
        self._unsent.clear()
        self._in_window = 0
        for tracked in sorted(self._events.values(), key=lambda t: t.order):
            tracked.state = SendState.UNSENT
            tracked.generation += 1
            self._unsent.append(tracked.entry.event_id)

    def due(self, now_ms: int) -> list[OutboxEntry]:
        """The frames to transmit now (resends first, then new ones into the window)."""
        out = self._expired(now_ms)
        while self._unsent and self._in_window < self.window:
            tracked = self._events.get(self._unsent.popleft())
            if tracked is None or tracked.state is not SendState.UNSENT:
                continue  # finished, or acked, while it waited
            tracked.state = SendState.SENT
            self._in_window += 1
            out.append(self._transmit(tracked, now_ms))
        return out

    def not_sent(self, event_id: str, now_ms: int) -> None:
        """A transmission could not leave (socket buffer full): try again soon."""
        tracked = self._events.get(event_id)
        if tracked is not None and tracked.state is SendState.SENT:
            self._schedule(tracked, now_ms + self.policy.base_ms)

    # -- internals -------------------------------------------------------------

    def _expired(self, now_ms: int) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
        while self._timers and self._timers[0][0] <= now_ms:
            _, _, event_id, generation = heapq.heappop(self._timers)
            tracked = self._events.get(event_id)
            if tracked is None or tracked.generation != generation:
                continue
            self.resends += 1
            out.append(self._transmit(tracked, now_ms))
        return out

    def _transmit(self, tracked: _Tracked, now_ms: int) -> OutboxEntry:
        tracked.sends += 1
        if tracked.state is SendState.QUEUED:
            assert self.recheck_ms is not None, "only rechecks resend queued events"
            self._schedule(tracked, now_ms + self.recheck_ms)
        else:
            delay = resend_delay_ms(self.policy, tracked.sends, tracked.entry.event_id)
            self._schedule(tracked, now_ms + delay)
        return tracked.entry

    def _to_queued(self, tracked: _Tracked, now_ms: int) -> None:
        if tracked.state is SendState.QUEUED:
            return
        self._leave_window(tracked)
        tracked.state = SendState.QUEUED
        tracked.generation += 1  # cancels the backoff timer
        if self.recheck_ms is not None:
            self._schedule(tracked, now_ms + self.recheck_ms)

    def _leave_window(self, tracked: _Tracked) -> None:
        if tracked.state is SendState.SENT:
            self._in_window -= 1

    def _schedule(self, tracked: _Tracked, at_ms: int) -> None:
        tracked.generation += 1
        item = (at_ms, tracked.order, tracked.entry.event_id, tracked.generation)
        heapq.heappush(self._timers, item)

    def _drop_stale_timers(self) -> None:
        while self._timers:
            _, _, event_id, generation = self._timers[0]
            tracked = self._events.get(event_id)
            if tracked is not None and tracked.generation == generation:
                return
            heapq.heappop(self._timers)
