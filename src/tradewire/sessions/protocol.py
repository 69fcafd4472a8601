"""The live-session protocol of ``/ws/session`` (pure encoding and decoding).

The session speaks the same JSON envelope as platform ingest.

Server to client, one envelope per WebSocket text message, or, when the
client connected with ``?batch=1``, a JSON array of envelopes whenever more
than one is waiting (a client that opts in must accept both shapes):

* ``user_event``: ``msg_id`` is the event id; ``payload`` holds ``event_id``,
  ``user_id``, ``event_type`` and ``priority`` by name, ``timestamp`` (Unix
  ms, the container's), ``delivery_attempt`` and ``payload`` (the event's
  decoded JSON payload, verbatim).
* ``heartbeat``: sent every heartbeat interval; any client message counts as
  a sign of life.
* ``error``: a client message the server could not use.

Client to server (``msg_id``, ``timestamp``, ``source``, ``target`` are
optional here), one object or an array of them per message:

* ``{"msg_type": "ack", "payload": {"acknowledged_msg_id": EVENT_ID}}``
* ``{"msg_type": "heartbeat"}``
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgspec

from tradewire.wire import EventType, Priority, Rejection

__all__ = [
    "ClientAck",
    "ClientHeartbeat",
    "ClientMessage",
    "decode_client_message",
    "encode_batch",
    "encode_error",
    "encode_heartbeat",
    "encode_user_event",
]

GATEWAY = "api-gateway"
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class ClientAck:
    """The client has shown the events with these ids."""

    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientHeartbeat:
    """The client is alive."""


ClientMessage: TypeAlias = ClientAck | ClientHeartbeat | Rejection


@functools.lru_cache(maxsize=4)
def _iso(now_ms: int) -> str:
    # cached: a turn of the driver encodes thousands of envelopes with one ``now``
    stamp = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# By value: looking members up (EventType(n).name) costs more than the rest of the encoding.
_TYPE_NAMES: dict[int, str] = {member.value: member.name for member in EventType}
_PRIORITY_NAMES: dict[int, str] = {member.value: member.name for member in Priority}


def _type_name(event_type: int) -> str | int:
    return _TYPE_NAMES.get(event_type, event_type)


class _UserEventBody(msgspec.Struct, gc=False):
    # field order is the wire's key order
    event_id: str
    user_id: str
    event_type: str | int
    priority: str
    timestamp: int
    delivery_attempt: int
    payload: msgspec.Raw


class _UserEventEnvelope(msgspec.Struct, gc=False):
    msg_id: str
    msg_type: str
    timestamp: str
    source: str
    target: str
    payload: _UserEventBody


def encode_user_event(
    *,
    event_id: str,
    user_id: str,
    event_type: int,
    priority: int,
    timestamp_ms: int,
    payload: bytes,
    attempt: int,
    now_ms: int,
) -> bytes:
    """One ``user_event`` envelope; ``payload`` (JSON bytes) is embedded verbatim.

    Built from two structs rather than dicts (the same bytes, the key order
    being the field order): one of these per event delivered to a session.
    """
    body = _UserEventBody(
        event_id,
        user_id,
        _type_name(event_type),
        _PRIORITY_NAMES[priority],
        timestamp_ms,
        attempt,
        msgspec.Raw(payload.strip() or b"{}"),
    )
    envelope = _UserEventEnvelope(event_id, "user_event", _iso(now_ms), GATEWAY, user_id, body)
    return _encoder.encode(envelope)


def encode_heartbeat(now_ms: int, user_id: str) -> bytes:
    """A server heartbeat envelope."""
    stamp = _iso(now_ms)
    return _encoder.encode(
        {
            "msg_id": f"hb-{now_ms}",
            "msg_type": "heartbeat",
            "timestamp": stamp,
            "source": GATEWAY,
            "target": user_id,
            "payload": {"status": "alive", "timestamp": stamp},
        }
    )


def encode_error(rejection: Rejection, now_ms: int, user_id: str) -> bytes:
    """An ``error`` envelope telling the client what was wrong with its message."""
    details: dict[str, Any] = {}
    if rejection.msg_id is not None:
        details["msg_id"] = rejection.msg_id
    if rejection.field is not None:
        details["field"] = rejection.field
    return _encoder.encode(
        {
            "msg_id": f"err-{now_ms}",
            "msg_type": "error",
            "timestamp": _iso(now_ms),
            "source": GATEWAY,
            "target": user_id,
            "payload": {"code": rejection.code, "message": rejection.message, "details": details},
        }
    )


def encode_batch(items: list[bytes]) -> bytes:
    """Several encoded envelopes as one JSON array."""
    return b"[" + b",".join(items) + b"]"


def decode_client_message(data: str | bytes) -> list[ClientMessage]:
    """Decode one WebSocket message from the client into what it asks for."""
    if len(data) > MAX_CLIENT_MESSAGE_BYTES:
        return [
            Rejection(
                code="PAYLOAD_TOO_LARGE",
                message=f"client messages are limited to {MAX_CLIENT_MESSAGE_BYTES} bytes",
            )
        ]
    try:
        doc = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        return [Rejection(code="INVALID_JSON", message=f"not valid JSON: {exc}")]
    items = doc if isinstance(doc, list) else [doc]
    return [
        _decode_item(item, f"[{i}]" if isinstance(doc, list) else "")
        for i, item in enumerate(items)
    ]


def _decode_item(item: object, where: str) -> ClientMessage:
    if not isinstance(item, dict):
        return Rejection(
            code="INVALID_MESSAGE", message="expected a JSON object", field=where or None
        )
    msg_type = item.get("msg_type")
    if msg_type == "heartbeat":
        return ClientHeartbeat()
    if msg_type == "ack":
        return _decode_ack(item, where)
    return Rejection(
        code="UNKNOWN_MSG_TYPE",
        message=f"msg_type {msg_type!r} is not one a session sends: use 'ack' or 'heartbeat'",
        field=f"{where}.msg_type".lstrip("."),
    )


def _decode_ack(item: dict[str, Any], where: str) -> ClientMessage:
    payload = item.get("payload")
    acked = payload.get("acknowledged_msg_id") if isinstance(payload, dict) else None
    if isinstance(acked, str) and acked:
        return ClientAck((acked,))
    if isinstance(acked, list) and acked and all(isinstance(a, str) and a for a in acked):
        return ClientAck(tuple(acked))
    return Rejection(
        code="VALIDATION_ERROR",
        message="an ack needs payload.acknowledged_msg_id: the event id (or a list of them)",
        field=f"{where}.payload.acknowledged_msg_id".lstrip("."),
    )
