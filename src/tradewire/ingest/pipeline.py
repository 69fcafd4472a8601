"""From received bytes to records, and from append results to replies (pure).

The transports (WebSocket, HTTP) only move bytes: every decision is here.

* :func:`admit` decodes one message and, when it is valid, pairs it with the
  :class:`~tradewire.store.Record` to append (stream ``ingest``, key =
  ``msg_id``, kind = ``msg_type``, user = the API key's owner, body = the
  bytes as received).
* :func:`reply_for` turns the outcome into the reply envelope: an ``ack``
  once the record is committed (also for a resent ``msg_id``), or an
  ``error`` for a rejected message, a projector's refusal, a ``msg_id``
  already used by another user, or a store failure.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

import msgspec

from tradewire.ingest.projector import INGEST_STREAM, EnvelopeBody
from tradewire.store import AppendResult, Record
from tradewire.wire import (
    Envelope,
    Rejection,
    decode_envelope,
    encode_envelope,
    make_error,
    split_many,
)
from tradewire.wire.envelope import GATEWAY, MAX_BYTES
from tradewire.wire.ingest_payloads import Timestamp

__all__ = [
    "NDJSON_TYPES",
    "Accepted",
    "ErrorCode",
    "admit",
    "admit_body",
    "binary_frame",
    "encode_ack",
    "encode_error",
    "now_stamp",
    "reply_for",
    "to_record",
]


class ErrorCode:
    """Codes of errors the ingest transports add to the wire's rejection codes."""

    BINARY_FRAME: Final = "BINARY_FRAME"
    MSG_ID_CONFLICT: Final = "MSG_ID_CONFLICT"
    STORE_UNAVAILABLE: Final = "STORE_UNAVAILABLE"


class Accepted(msgspec.Struct, frozen=True, gc=False):
    """A valid message and the record that stores it."""

    envelope: Envelope
    record: Record


def to_record(envelope: Envelope, body: bytes, user_id: str, now_ms: int) -> Record:
    """The ``ingest`` record of a valid message (``body`` is what was received)."""
    return Record(
        stream=INGEST_STREAM,
        key=envelope.msg_id,
        body=EnvelopeBody.of(body, envelope),
        kind=envelope.msg_type,
        created_at_ms=now_ms,
        user_id=user_id,
    )


def admit(
    raw: bytes | str, user_id: str, now_ms: int, *, max_bytes: int = MAX_BYTES
) -> Accepted | Rejection:
    """Decode one received message; the record to append, or why it is refused."""
    body = raw.encode() if isinstance(raw, str) else raw
    decoded = decode_envelope(body, max_bytes=max_bytes)
    if isinstance(decoded, Rejection):
        return decoded
    return Accepted(decoded, to_record(decoded, body, user_id, now_ms))


def binary_frame() -> Rejection:
    """The rejection of a binary WebSocket frame."""
    return Rejection(
        code=ErrorCode.BINARY_FRAME,
        message="Binary frames are not read: send each message as one UTF-8 JSON text frame.",
    )


def reply_for(
    item: Accepted | Rejection,
    result: AppendResult | BaseException | None,
    target: str | None,
    stamp: str | None = None,
) -> bytes:
    """The encoded reply to one message, given its append outcome (``None``: not appended)."""
    if isinstance(item, Rejection):
        return encode_error(item, target)
    msg_id = item.envelope.msg_id
    if isinstance(result, BaseException) or result is None:
        return encode_error(_store_failed(msg_id), target)
    if result.refusal is not None:
        refusal = result.refusal
        rejection = Rejection(
            code=refusal.code, message=refusal.message, field=refusal.field, msg_id=msg_id
        )
        return encode_error(rejection, target)
    if result.duplicate and result.record.user_id != item.record.user_id:
        return encode_error(_conflict(msg_id), target)
    return encode_ack(msg_id, target, duplicate=result.duplicate, stamp=stamp)


def _store_failed(msg_id: str) -> Rejection:
    return Rejection(
        code=ErrorCode.STORE_UNAVAILABLE,
        message="The store could not commit this message (nothing was stored): resend it.",
        msg_id=msg_id,
    )


def _conflict(msg_id: str) -> Rejection:
    return Rejection(
        code=ErrorCode.MSG_ID_CONFLICT,
        message="This msg_id is already used by a message of another user: "
        "use a fresh, unique msg_id (a UUID).",
        field="msg_id",
        msg_id=msg_id,
    )


# --- fast reply encoding ---------------------------------------------------------------
# One ack per message at tens of thousands per second: built from a template
# rather than an Envelope struct. Same JSON as encode_envelope(make_ack(...)).

_STR: Final = msgspec.json.Encoder()
_AFTER_ID: Final = b'","msg_type":"ack","timestamp":'


class AckIds:
    """Fresh ack ``msg_id`` values: UUID-shaped, unique, cheap.

    ``uuid.uuid4()`` reads the OS random source once per ack (a syscall per
    message); here one random UUID gives the first 20 hex digits and a
    counter the last 12 (a random start, so two processes' ids do not meet).
    """

    def __init__(self) -> None:
        head = uuid.uuid4().hex
        self._prefix = f"{head[:8]}-{head[8:12]}-{head[12:16]}-{head[16:20]}-".encode()
        self._next = int(head[20:], 16)

    def next(self) -> bytes:
        """The next id, as the ASCII bytes of a UUID."""
        self._next = (self._next + 1) & 0xFFFFFFFFFFFF
        return self._prefix + b"%012x" % self._next


_ACK_IDS: Final = AckIds()


def now_stamp() -> str:
    """The current time as the wire's timestamp text (one per reply window will do)."""
    return str(Timestamp.from_datetime(dt.datetime.now(dt.UTC)))


def encode_ack(
    msg_id: str, target: str | None, *, duplicate: bool = False, stamp: str | None = None
) -> bytes:
    """``ack`` of ``msg_id`` from the gateway, as compact JSON.

    A resent message (already stored) is acked again with the extension field
    ``"duplicate": true`` in the payload, so a connector can count resends.
    ``stamp`` (from :func:`now_stamp`) spares a clock read per ack of a window.
    """
    at = _STR.encode(stamp or now_stamp())
    return b"".join(
        (
            b'{"msg_id":"',
            _ACK_IDS.next(),
            _AFTER_ID,
            at,
            b',"source":"' + GATEWAY.encode() + b'","target":',
            _STR.encode(target),
            b',"payload":{"acknowledged_msg_id":',
            _STR.encode(msg_id),
            b',"timestamp":',
            at,
            b',"duplicate":true}}' if duplicate else b"}}",
        )
    )


def encode_error(rejection: Rejection, target: str | None) -> bytes:
    """``error`` envelope ``{code, message, details: {msg_id, field}}`` as compact JSON."""
    return encode_envelope(make_error(rejection, target=target))


NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


def admit_body(
    body: bytes,
    content_type: str | None,
    user_id: str,
    now_ms: int,
    *,
    max_bytes: int = MAX_BYTES,
) -> list[Accepted | Rejection]:
    """Every message of an HTTP body: one envelope, a JSON array, or NDJSON.

    NDJSON is read line by line when the content type says so
    (``application/x-ndjson``), else the shape decides (see
    :func:`~tradewire.wire.split_many`). As over the WebSocket, each record
    holds its message's bytes as received (an array element's own text).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        lines = [line for line in body.splitlines() if line.strip()]
        return [admit(line, user_id, now_ms, max_bytes=max_bytes) for line in lines]
    return [
        admit(part, user_id, now_ms, max_bytes=max_bytes) if isinstance(part, bytes) else part
        for part in split_many(body)
    ]
