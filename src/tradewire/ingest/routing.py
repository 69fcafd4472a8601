"""Routing of ingested messages to connected ingest clients (no I/O).

Every ``/ws/ingest`` connection is a :class:`Subscriber` with a *name*
(``?name=`` at connect, else the ``source`` of its first valid message) and
a set of *topics*. Once a message is committed (never before), the
:class:`Hub` forwards its bytes, unchanged:

* ``target`` names a connected client (other than the sender): to that
  client only. ``target`` = ``api-gateway`` (or a name nobody holds): the
  gateway consumes it, nobody else gets it.
* ``target`` is ``null``: to every subscriber of the message's topics:
  ``ingest_events`` (every ``ingest_event``), ``run:<run_id>`` (ingest
  events and log records of that run), ``logs`` (``log_record``),
  ``health`` (``heartbeat``), ``errors`` (``error``). The gateway's own
  alerts (``CONNECTION_LOST`` from the heartbeat watcher) go to ``health``
  and ``errors``.

Subscribing is a control message on the same socket, an extension of the
seed's message types (which all keep working)::

    {"msg_id": "c-1", "msg_type": "subscribe", "payload": {"topics": ["logs", "run:run-123"]}}

``unsubscribe`` takes the same payload. The gateway answers with an ``ack``
(not stored) or an ``error`` (``UNKNOWN_TOPIC``, ``INVALID_MESSAGE``).

Routing never crosses users: a client only receives messages stored under
its own API key's user (names are per user too, so two users may both run a
``quantower-connector``).

Each subscriber's ``outbox`` is bounded: when it is full, the new message is
dropped for that subscriber and counted in ``dropped`` (a slow reader never
grows the gateway's memory, nor slows other clients or the acks).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

import msgspec

from tradewire.ingest.pipeline import encode_ack, encode_error
from tradewire.store import AppendResult
from tradewire.wire import Envelope, IngestEvent, Rejection
from tradewire.wire.envelope import GATEWAY

__all__ = [
    "CONTROL_TYPES",
    "TOPICS",
    "Control",
    "HeartbeatSink",
    "Hub",
    "Subscriber",
    "parse_control",
    "topics_of",
]

TOPICS: Final = frozenset({"ingest_events", "logs", "health", "errors"})
"""Fixed topic names; ``run:<run_id>`` topics come in addition."""
CONTROL_TYPES: Final = frozenset({"subscribe", "unsubscribe"})
DEFAULT_OUTBOX: Final = 4096
HeartbeatSink = Callable[[str, "str | None"], None]
"""Told ``(source, user_id)`` of every committed heartbeat (the health watcher)."""
_TOPIC_OF_TYPE: Final = {
    "ingest_event": "ingest_events",
    "log_record": "logs",
    "heartbeat": "health",
    "error": "errors",
}


class _ControlPayload(msgspec.Struct, frozen=True):
    topics: list[str]


class Control(msgspec.Struct, frozen=True, kw_only=True):
    """A ``subscribe`` / ``unsubscribe`` control message."""

    msg_id: str
    msg_type: str
    payload: _ControlPayload


_CONTROL_DECODER: Final = msgspec.json.Decoder(Control)
_MARKS: Final = ('"subscribe"', '"unsubscribe"')


def parse_control(frame: str) -> Control | Rejection | None:
    """The control message in ``frame``; ``None`` when it is not one."""
    if _MARKS[0] not in frame and _MARKS[1] not in frame:  # per frame: no generator
        return None
    try:
        control = _CONTROL_DECODER.decode(frame)
    except msgspec.DecodeError as exc:
        head = msgspec.json.decode(frame) if _is_object(frame) else None
        if isinstance(head, dict) and head.get("msg_type") in CONTROL_TYPES:
            msg_id = head.get("msg_id") if isinstance(head.get("msg_id"), str) else None
            return Rejection(
                code="INVALID_MESSAGE",
                message=f"A {head['msg_type']} message is "
                '{"msg_id": ..., "msg_type": ..., "payload": {"topics": [...]}}: '
                f"{exc}",
                field="payload.topics",
                msg_id=msg_id,
            )
        return None
    return control if control.msg_type in CONTROL_TYPES else None


def _is_object(frame: str) -> bool:
    try:
        return isinstance(msgspec.json.decode(frame), dict)
    except msgspec.DecodeError:
        return False


def _bad_topic(topic: str) -> bool:
    return topic not in TOPICS and not (topic.startswith("run:") and len(topic) > 4)


def topics_of(envelope: Envelope) -> list[str]:
    """The topics a broadcast (``target`` null) message is published on."""
    topics = [_TOPIC_OF_TYPE.get(envelope.msg_type, "")]
    payload = envelope.payload
    if isinstance(payload, IngestEvent):
        topics.append(f"run:{payload.run_id}")
    elif envelope.msg_type == "log_record":
        meta = getattr(payload, "meta", None)
        run_id = meta.get("run_id") if isinstance(meta, dict) else None
        if isinstance(run_id, str):
            topics.append(f"run:{run_id}")
    return [t for t in topics if t]


class Subscriber:
    """One connected ingest client as the hub sees it."""

    def __init__(self, *, name: str | None, user_id: str, capacity: int = DEFAULT_OUTBOX) -> None:
        self.name = name
        self.user_id = user_id
        self.topics: set[str] = set()
        self.outbox: deque[bytes] = deque()
        self.capacity = capacity
        self.dropped = 0

    def offer(self, data: bytes) -> bool:
        """Queue ``data`` for this client; ``False`` (and counted) when full."""
        if len(self.outbox) >= self.capacity:
            self.dropped += 1
            return False
        self.outbox.append(data)
        self.wake()
        return True

    def wake(self) -> None:
        """Tell the transport that ``outbox`` has data (overridden by transports)."""


class Hub:
    """Who is connected, under which name, subscribed to what (per user)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._by_name: dict[tuple[str, str], Subscriber] = {}
        self.heartbeat_sinks: list[HeartbeatSink] = []
        """Called with every newly stored (not duplicate) message and its append result."""

    def attach(self, sub: Subscriber) -> None:
        """A client connected."""
        self._subscribers.add(sub)
        if sub.name:
            self._by_name[(sub.user_id, sub.name)] = sub

    def detach(self, sub: Subscriber) -> None:
        """A client left."""
        self._subscribers.discard(sub)
        key = (sub.user_id, sub.name or "")
        if sub.name and self._by_name.get(key) is sub:
            del self._by_name[key]

    def name_connection(self, sub: Subscriber, name: str) -> None:
        """Name ``sub`` after the ``source`` of its first valid message."""
        if sub.name is None and name and name != GATEWAY:
            sub.name = name
            self._by_name[(sub.user_id, name)] = sub

    def named(self, user_id: str, name: str) -> Subscriber | None:
        """The connected client of ``user_id`` called ``name``."""
        return self._by_name.get((user_id, name))

    def control(self, sub: Subscriber, control: Control | Rejection) -> bytes:
        """Apply a control message; the encoded reply."""
        if isinstance(control, Rejection):
            return encode_error(control, sub.name)
        bad = [t for t in control.payload.topics if _bad_topic(t)]
        if bad:
            known = ", ".join(sorted(TOPICS)) + ", run:<run_id>"
            rejection = Rejection(
                code="UNKNOWN_TOPIC",
                message=f"Unknown topic {bad[0]!r}: use {known}.",
                field="payload.topics",
                msg_id=control.msg_id,
            )
            return encode_error(rejection, sub.name)
        if control.msg_type == "subscribe":
            sub.topics.update(control.payload.topics)
        else:
            sub.topics.difference_update(control.payload.topics)
        return encode_ack(control.msg_id, sub.name)

    def publish(
        self, envelope: Envelope, body: bytes, result: AppendResult, *, origin: Subscriber | None
    ) -> int:
        """Forward a newly committed message; how many clients it was queued for."""
        if result.refusal is not None:
            return 0
        owner = result.record.user_id
        if envelope.msg_type == "heartbeat":  # a resent heartbeat still proves life
            for sink in self.heartbeat_sinks:
                sink(envelope.source, owner)
        if result.duplicate or envelope.msg_type == "ack" or owner is None:
            return 0
        target = envelope.target
        if target is not None:
            sub = self.named(owner, target)
            return int(sub is not None and sub is not origin and sub.offer(body))
        return self.broadcast(body, topics_of(envelope), user_id=owner, origin=origin)

    def broadcast(
        self,
        body: bytes,
        topics: list[str],
        *,
        user_id: str,
        origin: Subscriber | None = None,
    ) -> int:
        """Queue ``body`` for every client of ``user_id`` subscribed to any of ``topics``."""
        wanted = set(topics)
        return sum(
            sub.offer(body)
            for sub in list(self._subscribers)
            if sub is not origin and sub.user_id == user_id and sub.topics & wanted
        )

    @property
    def connected(self) -> int:
        """Number of connected clients."""
        return len(self._subscribers)
