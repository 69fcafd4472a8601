"""Where user-event delivery meets the store (SQL adapter).

Theory of operation: delivery state is event-sourced like everything else.
A guaranteed event is appended to the ``user_event`` stream (its frame as
received, key = event_id) before it is acknowledged QUEUED; every attempt
and the final outcome are appended to the ``delivery`` stream. The
:class:`DeliveryProjector` keeps two query tables in step inside the same
transactions: ``deliveries`` (one row per event: state, attempts, channel
that delivered) and ``delivery_attempts`` (the attempt log). After a restart
the unfinished rows, with their frames, rebuild the engine's state.

Everything is keyed so that the writer's inserts append: a delivery by the
seq of its event's record (records' ``(stream, key)`` index answers
event_id -> seq), an attempt row by its own seq and its delivery's seq. An
attempt or settle record written when the driver knows the event's seq
carries it, in its body and at the head of its key (zero-padded, so its
records index entry appends too); one written without it (an older log, a
late channel result) keeps the event_id key, and the projector looks the
seq up. The two key forms never collide: the new one ends in
``:<outcome>``/``:final``, the old one in ``/<outcome>``/``/final``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from tradewire.delivery import (
    ChannelPreference,
    ChannelType,
    DeliveryState,
    Event,
    Priority,
    RecordAttempt,
    Settle,
    StoredDelivery,
)
from tradewire.store import (
    DecodedBody,
    Record,
    Refusal,
    SqlExecutor,
    StoredRecord,
    execute_many,
)
from tradewire.wire import ChannelPreference as WirePreference
from tradewire.wire import EventType, UserEvent, decode_user_event, encode_user_event

__all__ = [
    "PENDING",
    "DeliveryProjector",
    "attempt_record",
    "domain_event",
    "settle_record",
    "stored_delivery",
    "user_event_record",
]

USER_EVENT_STREAM = "user_event"
DELIVERY_STREAM = "delivery"
PENDING = "pending"
"""``deliveries.state`` of an event that has not settled yet."""


class _AttemptBody(msgspec.Struct, array_like=True, omit_defaults=True):
    event_id: str
    attempt: int
    channel: int
    outcome: str
    error: str | None
    at_ms: int
    event_seq: int | None = None  # absent from records written before 0007


class _SettleBody(msgspec.Struct, array_like=True, omit_defaults=True):
    event_id: str
    state: str
    delivered_via: int | None
    reason: str | None
    at_ms: int
    event_seq: int | None = None


_attempt_decoder = msgspec.json.Decoder(_AttemptBody)
_settle_decoder = msgspec.json.Decoder(_SettleBody)
_encoder = msgspec.json.Encoder()


def domain_event(wire: UserEvent) -> Event:
    """The delivery core's view of a decoded ``UserEvent`` frame."""
    return Event(
        event_id=wire.event_id,
        user_id=wire.user_id,
        event_type=int(wire.event_type),
        priority=wire.priority,
        channels=tuple(ChannelPreference(c.channel, c.only_if_active) for c in wire.channels),
        payload=wire.payload,
        timestamp_ms=wire.timestamp_ms,
    )


def _wire_event(event: Event) -> UserEvent:
    from tradewire.wire import ChannelType as WireChannel
    from tradewire.wire import EventType
    from tradewire.wire import Priority as WirePriority

    return UserEvent(
        user_id=event.user_id,
        event_id=event.event_id,
        timestamp_ms=event.timestamp_ms,
        event_type=EventType(event.event_type),
        payload=event.payload,
        priority=WirePriority(int(event.priority)),
        channels=tuple(
            WirePreference(WireChannel(int(c.channel)), c.only_if_active) for c in event.channels
        ),
    )


class EventFrame(DecodedBody[Event]):
    """A ``user_event`` record body that carries its event (see ``DecodedBody``)."""


def user_event_record(event: Event, now_ms: int, frame: bytes | None = None) -> Record:
    """The record that makes a guaranteed event durable.

    ``frame`` is the ``0x20`` frame the event was decoded from, stored as
    received; without it (an event that did not come as a frame) the event
    is encoded.
    """
    body = frame if frame is not None else encode_user_event(_wire_event(event))
    return Record(
        stream=USER_EVENT_STREAM,
        key=event.event_id,
        body=EventFrame.of(body, event),
        kind=event.priority.name,
        created_at_ms=now_ms,
        user_id=event.user_id,
    )


def _event_key(event_id: str, event_seq: int | None, tail: str) -> str:
    """``<seq, 12 digits>:<tail>`` when the event's seq is known, else ``<event_id>/<tail>``.

    ``tail`` is written with ``:`` between its parts; the older form uses ``/``.
    """
    if event_seq is None:
        return f"{event_id}/{tail.replace(':', '/')}"
    return f"{event_seq:012d}:{tail}"


def attempt_record(row: RecordAttempt, user_id: str | None, event_seq: int | None = None) -> Record:
    """The record of one attempt (idempotent per event, attempt, channel and outcome).

    ``event_seq`` is the seq of the event's ``user_event`` record, when known.
    """
    body = _AttemptBody(
        row.event_id,
        row.attempt,
        int(row.channel),
        row.outcome.value,
        row.error,
        row.at_ms,
        event_seq,
    )
    return Record(
        stream=DELIVERY_STREAM,
        key=_event_key(
            row.event_id, event_seq, f"{row.attempt}:{int(row.channel)}:{row.outcome.value}"
        ),
        body=_encoder.encode(body),
        kind="attempt",
        created_at_ms=row.at_ms,
        user_id=user_id,
    )


def settle_record(action: Settle, event_seq: int | None = None) -> Record:
    """The record of an event's final state (one per event; ``event_seq`` as for attempts)."""
    via = int(action.delivered_via) if action.delivered_via is not None else None
    event_id = action.event.event_id
    body = _SettleBody(event_id, action.state.value, via, action.reason, action.at_ms, event_seq)
    return Record(
        stream=DELIVERY_STREAM,
        key=_event_key(event_id, event_seq, "final"),
        body=_encoder.encode(body),
        kind="settle",
        created_at_ms=action.at_ms,
        user_id=action.event.user_id,
    )


_INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, user_id, event_type, priority, state, delivered_via,"
    " attempts, reason, accepted_at_ms, updated_at_ms, seq)"
    " VALUES (?, ?, ?, ?, ?, NULL, 0, NULL, ?, ?, ?) ON CONFLICT (seq) DO NOTHING"
)
_INSERT_ATTEMPT = (
    "INSERT INTO delivery_attempts"
    " (seq, delivery_seq, event_id, attempt, channel, outcome, error, at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT_ATTEMPT = (
    "UPDATE deliveries SET attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END,"
    " updated_at_ms = ? WHERE seq = ?"
)
_SETTLE = (
    "UPDATE deliveries SET state = ?, delivered_via = ?, reason = ?, updated_at_ms = ?"
    " WHERE seq = ?"
)
_EVENT_SEQ = "SELECT seq FROM records WHERE stream = 'user_event' AND \"key\" = ?"
"""The seq of an event's record (and so of its delivery), by event_id."""


_EVENT = "event"
_STATEMENTS = {_EVENT: _INSERT_DELIVERY, "attempt": _INSERT_ATTEMPT, "settle": _SETTLE}


def _delivery_row(record: StoredRecord) -> tuple[object, ...]:
    body = record.body
    event = body.decoded if isinstance(body, EventFrame) else _decoded_event(body, record.key)
    return (
        event.event_id,
        event.user_id,
        int(event.event_type),
        int(event.priority),
        PENDING,
        record.created_at_ms,
        record.created_at_ms,
        record.seq,
    )


def _decoded_event(body: bytes, key: str = "") -> Event:
    """The event of a stored frame (stored frames were valid when accepted)."""
    wire = decode_user_event(body, validate_payloads=False)
    if not isinstance(wire, UserEvent):
        where = f" {key}" if key else ""
        raise ValueError(f"stored user_event{where} does not decode: {wire}")
    return domain_event(wire)


def _event_seq(db: SqlExecutor, event_id: str, known: int | None) -> int | None:
    """The seq of the event's delivery: from the record's body, else looked up."""
    if known is not None:
        return known
    row = db.execute(_EVENT_SEQ, (event_id,)).fetchone()
    return int(row[0]) if row is not None else None


def _flush(
    db: SqlExecutor,
    kind: str | None,
    rows: list[tuple[object, ...]],
    counts: list[tuple[object, ...]],
) -> None:
    """Write one run of rows of ``kind`` (attempts also bump their delivery's count)."""
    if kind is None or not rows:
        return
    execute_many(db, _STATEMENTS[kind], rows)
    if counts:
        execute_many(db, _COUNT_ATTEMPT, counts)


class DeliveryProjector:
    """Keeps ``deliveries`` and ``delivery_attempts`` in step with the log."""

    streams = frozenset({USER_EVENT_STREAM, DELIVERY_STREAM})

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        """Project one newly stored record."""
        self.apply_batch(db, (record,))
        return None

    def apply_batch(self, db: SqlExecutor, records: Sequence[StoredRecord]) -> int | None:
        """Project a batch: one ``executemany`` per run of records of one kind, in order.

        Never refuses (every record was valid when appended): always ``None``.
        """
        statement: str | None = None
        rows: list[tuple[object, ...]] = []
        counts: list[tuple[object, ...]] = []
        for record in records:
            kind = _EVENT if record.stream == USER_EVENT_STREAM else record.kind
            if kind != statement:
                _flush(db, statement, rows, counts)
                statement, rows, counts = kind, [], []
            if kind == _EVENT:
                rows.append(_delivery_row(record))
            elif kind == "attempt":
                a = _attempt_decoder.decode(record.body)
                seq = _event_seq(db, a.event_id, a.event_seq)
                rows.append(
                    (record.seq, seq, a.event_id, a.attempt, a.channel, a.outcome, a.error, a.at_ms)
                )
                counts.append((a.attempt, a.attempt, a.at_ms, seq))
            elif kind == "settle":
                f = _settle_decoder.decode(record.body)
                seq = _event_seq(db, f.event_id, f.event_seq)
                rows.append((f.state, f.delivered_via, f.reason, f.at_ms, seq))
        _flush(db, statement, rows, counts)
        return None

    def reset(self, db: SqlExecutor) -> None:
        """Empty both tables (``tradewire rebuild`` replays the log into them)."""
        db.execute("DELETE FROM delivery_attempts")
        db.execute("DELETE FROM deliveries")


RESTORE_ONE_SQL = (
    "SELECT r.body, d.state, d.accepted_at_ms, d.attempts, d.delivered_via, d.reason, d.seq"
    " FROM records r JOIN deliveries d ON d.seq = r.seq"
    " WHERE r.stream = 'user_event' AND r.\"key\" = ?"
)
"""One event as :func:`stored_delivery` reads it (its first six columns), and its seq."""

RESTORE_SQL = (
    "SELECT r.body, d.state, d.accepted_at_ms, d.attempts, d.delivered_via, d.reason, d.seq"
    " FROM deliveries d JOIN records r ON r.seq = d.seq"
    " WHERE d.seq > ? AND (d.state = 'pending' OR d.seq > ?) ORDER BY d.seq LIMIT ?"
)


def stored_delivery(row: Sequence[Any]) -> StoredDelivery:
    """A row of :data:`RESTORE_SQL` as the engine's restore input."""
    body, state, accepted_at_ms, attempts, via, reason = row
    return StoredDelivery(
        event=_decoded_event(body),
        state=DeliveryState.PERSISTED if state == PENDING else DeliveryState(state),
        accepted_at_ms=accepted_at_ms,
        attempts=attempts,
        delivered_via=ChannelType(via) if via is not None else None,
        reason=reason,
    )


_EVENT_SQL = (
    "SELECT event_id, user_id, event_type, priority, state, delivered_via, attempts, reason,"
    " accepted_at_ms, updated_at_ms, seq FROM deliveries"
)
_ATTEMPTS_SQL = (
    "SELECT attempt, channel, outcome, error, at_ms FROM delivery_attempts"
    " WHERE delivery_seq = ? ORDER BY seq"
)


def _channel_name(value: int | None) -> str | None:
    return ChannelType(value).name if value is not None else None


def _event_doc(row: Sequence[Any]) -> dict[str, Any]:
    event_id, user_id, event_type, priority, state, via, attempts, reason, acc, upd, seq = row
    try:
        type_name: str | int = EventType(event_type).name
    except ValueError:
        type_name = event_type
    return {
        "event_id": event_id,
        "user_id": user_id,
        "event_type": type_name,
        "priority": Priority(priority).name,
        "state": state,
        "delivered_via": _channel_name(via),
        "attempt_count": attempts,
        "reason": reason,
        "accepted_at_ms": acc,
        "updated_at_ms": upd,
        "cursor": seq,
    }


async def event_history(store: Any, event_id: str) -> dict[str, Any] | None:
    """One event's delivery status and every attempt, or ``None`` if unknown."""
    rows = await store.query(f"{_EVENT_SQL} WHERE seq = ({_EVENT_SEQ})", (event_id,))
    if not rows:
        return None
    doc = _event_doc(rows[0])
    doc["attempts"] = [
        {
            "attempt": a,
            "channel": _channel_name(ch),
            "outcome": outcome,
            "error": error,
            "at_ms": at,
        }
        for a, ch, outcome, error, at in await store.query(_ATTEMPTS_SQL, (doc["cursor"],))
    ]
    return doc


async def user_inbox(
    store: Any, user_id: str, *, limit: int, before: int | None, state: str | None
) -> list[dict[str, Any]]:
    """A user's guaranteed events, newest first, with their statuses."""
    where, args = "user_id = ?", list[object]([user_id])
    if before is not None:
        where += " AND seq < ?"
        args.append(before)
    if state is not None:
        where += " AND state = ?"
        args.append(state)
    sql = f"{_EVENT_SQL} WHERE {where} ORDER BY seq DESC LIMIT ?"
    return [_event_doc(row) for row in await store.query(sql, (*args, limit))]
