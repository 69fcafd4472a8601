"""Heartbeat watching: is a connector up or down? (pure, no clock of its own)

Theory of operation
-------------------
Every committed ``heartbeat`` message is reported with :meth:`HeartbeatWatcher.beat`
and the time it *arrived* (the gateway's clock, never the payload's
timestamp, which a replaying connector may set to anything). A source's
*cadence* is the median of the intervals between its last few heartbeats
(at least ``min_cadence_s``), or ``default_cadence_s`` until two heartbeats
were seen. A source is *down* when it has been silent longer than
``miss_factor`` (default 3) times its cadence::

    is_silent(last_seen, cadence, now, factor) = now - last_seen > factor * cadence

Transitions are returned as :class:`HealthChange` values, at most one per
edge: :meth:`check` yields ``up -> down`` (the driver broadcasts an ``error``
``CONNECTION_LOST``), :meth:`beat` yields ``down -> up`` (the driver
broadcasts a ``heartbeat`` from the gateway saying the source is back);
:func:`alert_for` builds both envelopes. The
asyncio driver (:mod:`tradewire.server.ingest_health`) only calls these
with ``time.monotonic()`` and sleeps until :meth:`next_deadline`.
"""

from __future__ import annotations

import datetime as dt
import statistics
import uuid
from collections import deque
from typing import Any, Final, Literal

import msgspec

from tradewire.wire.envelope import GATEWAY
from tradewire.wire.ingest_payloads import Timestamp

__all__ = [
    "DEFAULT_MISS_FACTOR",
    "HealthChange",
    "HeartbeatPolicy",
    "HeartbeatWatcher",
    "SourceHealth",
    "alert_for",
    "derive_cadence",
    "is_silent",
]

DEFAULT_MISS_FACTOR: Final = 3.0
CONNECTION_LOST: Final = "CONNECTION_LOST"
State = Literal["up", "down"]


class HeartbeatPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables: a source is down after ``miss_factor`` x its cadence of silence."""

    miss_factor: float = DEFAULT_MISS_FACTOR
    default_cadence_s: float = 30.0
    min_cadence_s: float = 0.05
    history: int = 5

    def __post_init__(self) -> None:
        if self.miss_factor <= 0 or self.default_cadence_s <= 0 or self.min_cadence_s <= 0:
            raise ValueError("heartbeat miss factor and cadences must be positive")
        if self.history < 1:
            raise ValueError("heartbeat history must hold at least one interval")


class HealthChange(msgspec.Struct, frozen=True, kw_only=True):
    """A source went ``down`` (silent too long) or came back ``up``."""

    source: str
    user_id: str | None
    state: State
    cadence_s: float
    silent_s: float


class SourceHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What the watcher knows of one source at a given time."""

    source: str
    user_id: str | None
    state: State
    cadence_s: float
    silent_s: float
    down_after_s: float


def is_silent(last_seen: float, cadence: float, now: float, factor: float) -> bool:
    """Whether a source last seen at ``last_seen`` has missed ``factor`` cadences by ``now``."""
    return now - last_seen > factor * cadence


def derive_cadence(intervals: list[float], policy: HeartbeatPolicy) -> float:
    """The median interval between recent heartbeats, or the default when none is known."""
    if not intervals:
        return policy.default_cadence_s
    return max(policy.min_cadence_s, statistics.median(intervals))


class _Tracked:
    __slots__ = ("intervals", "last_seen", "state", "user_id")

    def __init__(self, user_id: str | None, now: float, history: int) -> None:
        self.user_id = user_id
        self.last_seen = now
        self.state: State = "up"
        self.intervals: deque[float] = deque(maxlen=history)


def _order(key: tuple[str, str | None]) -> tuple[str, str]:
    return key[0], key[1] or ""


class HeartbeatWatcher:
    """Up/down state of every source that sent a heartbeat (see module docs).

    A source is tracked per user: two users' connectors may share a name.
    """

    def __init__(self, policy: HeartbeatPolicy | None = None) -> None:
        self.policy = policy or HeartbeatPolicy()
        self._sources: dict[tuple[str, str | None], _Tracked] = {}  # (source, user)

    def beat(self, source: str, user_id: str | None, now: float) -> HealthChange | None:
        """A heartbeat from ``source`` arrived at ``now``; the change if it was down."""
        tracked = self._sources.get((source, user_id))
        if tracked is None:
            self._sources[(source, user_id)] = _Tracked(user_id, now, self.policy.history)
            return None
        if now > tracked.last_seen:
            tracked.intervals.append(now - tracked.last_seen)
        silent = now - tracked.last_seen
        tracked.last_seen = max(tracked.last_seen, now)
        if tracked.state == "down":
            tracked.state = "up"
            return self._change(source, tracked, silent)
        return None

    def check(self, now: float) -> list[HealthChange]:
        """Mark down every up source silent for too long; the changes, by source name."""
        changes = []
        for key in sorted(self._sources, key=_order):
            tracked, source = self._sources[key], key[0]
            cadence = self.cadence(tracked)
            if tracked.state == "up" and is_silent(
                tracked.last_seen, cadence, now, self.policy.miss_factor
            ):
                tracked.state = "down"
                changes.append(self._change(source, tracked, now - tracked.last_seen))
        return changes

    def next_deadline(self) -> float | None:
        """The earliest time at which an up source would turn down (``None``: nothing up)."""
        deadlines = [
            t.last_seen + self.policy.miss_factor * self.cadence(t)
            for t in self._sources.values()
            if t.state == "up"
        ]
        return min(deadlines, default=None)

    def snapshot(self, now: float, user_id: str | None = None) -> list[SourceHealth]:
        """Every tracked source (of ``user_id`` when given), by name then user."""
        return [
            self._health(key[0], self._sources[key], now)
            for key in sorted(self._sources, key=_order)
            if user_id is None or key[1] == user_id
        ]

    def cadence(self, tracked: _Tracked) -> float:
        """The cadence of one tracked source."""
        return derive_cadence(list(tracked.intervals), self.policy)

    def _change(self, source: str, tracked: _Tracked, silent: float) -> HealthChange:
        return HealthChange(
            source=source,
            user_id=tracked.user_id,
            state=tracked.state,
            cadence_s=self.cadence(tracked),
            silent_s=max(0.0, silent),
        )

    def _health(self, source: str, tracked: _Tracked, now: float) -> SourceHealth:
        cadence = self.cadence(tracked)
        return SourceHealth(
            source=source,
            user_id=tracked.user_id,
            state=tracked.state,
            cadence_s=cadence,
            silent_s=max(0.0, now - tracked.last_seen),
            down_after_s=self.policy.miss_factor * cadence,
        )


_ENCODER: Final = msgspec.json.Encoder()


def alert_for(
    change: HealthChange, miss_factor: float, now: dt.datetime, msg_id: str | None = None
) -> tuple[bytes, list[str]]:
    """The envelope the gateway broadcasts for ``change``, and its topics.

    ``down``: an ``error`` ``CONNECTION_LOST`` on ``health`` and ``errors``;
    ``up``: a ``heartbeat`` with status ``source_up`` on ``health``. Both come
    from ``api-gateway`` with ``target`` null; ``payload.details`` (or the
    heartbeat payload) names the source and its cadence.
    """
    stamp = str(Timestamp.from_datetime(now))
    facts = {
        "source": change.source,
        "state": change.state,
        "cadence_s": round(change.cadence_s, 3),
        "silent_s": round(change.silent_s, 3),
    }
    payload: dict[str, Any]
    if change.state == "down":
        message = (
            f"Source {change.source!r} sent no heartbeat for {change.silent_s:.1f} s "
            f"({miss_factor:g} x its cadence of {change.cadence_s:.1f} s): marked down."
        )
        payload = {"code": CONNECTION_LOST, "message": message, "details": facts}
        kind, topics = "error", ["health", "errors"]
    else:
        payload = {"status": "source_up", "timestamp": stamp, **facts}
        kind, topics = "heartbeat", ["health"]
    envelope = {
        "msg_id": msg_id or str(uuid.uuid4()),
        "msg_type": kind,
        "timestamp": stamp,
        "source": GATEWAY,
        "target": None,
        "payload": payload,
    }
    return _ENCODER.encode(envelope), topics
