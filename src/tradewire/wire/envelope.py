"""Wire protocol 2: the JSON socket envelope of platform ingest.

Theory of operation
-------------------
Every message is an object ``{msg_id, msg_type, timestamp, source, target,
payload}``. Decoding happens in stages so that a bad message is refused with
the right code and the most precise field path:

1. *Guards* on the raw bytes, before any parsing: size (``PAYLOAD_TOO_LARGE``)
   and bracket nesting (``NESTING_TOO_DEEP``, so that ``[[[[...`` never
   recurses).
2. *Envelope*: the six keys are decoded with ``payload`` kept as raw JSON
   (``INVALID_JSON``, ``INVALID_MESSAGE``); ``msg_type`` picks the payload
   model (``UNKNOWN_MSG_TYPE``).
3. *Payload*: decoded against its model (``VALIDATION_ERROR``). For an
   ``ingest_event``, ``event_type`` (``UNKNOWN_EVENT_TYPE``) and the optional
   ``event`` key of ``payload_json`` pick the ``payload_json`` model.

Each stage is one msgspec pass over a slice of the input (raw JSON is skipped,
not parsed, by the stage before). Unknown fields are kept (see
:mod:`tradewire.wire.ingest_payloads`), so ``encode_envelope(decode_envelope(b))``
is the same JSON value as ``b``. Failures are values: every decoder returns a
:class:`~tradewire.wire.Rejection` instead of raising.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from itertools import accumulate
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from tradewire.wire._rejection import Rejection
from tradewire.wire.ingest_payloads import (
    EVENT_TYPES,
    IngestPayload,
    Timestamp,
    WireModel,
    allowed_payload_types,
    decode_model,
    encode_model,
    has_event_key,
    payload_type_for,
)

__all__ = [
    "GATEWAY",
    "MAX_BATCH_BYTES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MSG_TYPES",
    "Ack",
    "Envelope",
    "ErrorReport",
    "Heartbeat",
    "IngestEvent",
    "LogRecord",
    "MessagePayload",
    "RejectionCode",
    "decode_envelope",
    "decode_many",
    "encode_envelope",
    "make_ack",
    "make_error",
    "split_many",
]

MAX_BYTES: Final = 1024 * 1024
"""Default size limit of one message, in bytes."""
MAX_BATCH_BYTES: Final = 16 * MAX_BYTES
"""Default size limit of a JSON array or NDJSON body, in bytes."""
MAX_DEPTH: Final = 64
"""Deepest bracket nesting accepted; the envelope itself is depth 1."""
GATEWAY: Final = "api-gateway"
"""The ``source`` of the gateway's own replies."""

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class RejectionCode:
    """The stable ``code`` values of the rejections this module returns."""

    INVALID_JSON: Final = "INVALID_JSON"
    INVALID_MESSAGE: Final = "INVALID_MESSAGE"
    UNKNOWN_MSG_TYPE: Final = "UNKNOWN_MSG_TYPE"
    UNKNOWN_EVENT_TYPE: Final = "UNKNOWN_EVENT_TYPE"
    VALIDATION_ERROR: Final = "VALIDATION_ERROR"
    PAYLOAD_TOO_LARGE: Final = "PAYLOAD_TOO_LARGE"
    NESTING_TOO_DEEP: Final = "NESTING_TOO_DEEP"


# --- models ------------------------------------------------------------------------


class IngestEvent(WireModel, kw_only=True):
    """``ingest_event``: one fact of run ``run_id``, shaped by ``event_type``."""

    run_id: str
    event_type: str
    event_utc: Timestamp
    payload_json: IngestPayload
    received_utc: Timestamp | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.payload_json, allowed_payload_types(self.event_type)):
            kind = type(self.payload_json).__name__
            raise ValueError(f"event_type {self.event_type!r} cannot carry a {kind}")


class LogRecord(WireModel, kw_only=True):
    """``log_record``: one log line of a connector or service."""

    timestamp: Timestamp
    level: str
    name: str
    message: str
    meta: dict[str, Any] | UnsetType = UNSET


class Heartbeat(WireModel, kw_only=True):
    """``heartbeat``: the sender is alive (``status``, e.g. ``alive``)."""

    status: str
    timestamp: Timestamp


class ErrorReport(WireModel, kw_only=True):
    """``error``: a failure, by stable ``code``, with free-form ``details``."""

    code: str
    message: str
    details: dict[str, Any] | UnsetType = UNSET


class Ack(WireModel, kw_only=True):
    """``ack``: the message ``acknowledged_msg_id`` is stored."""

    acknowledged_msg_id: NonEmptyStr
    timestamp: Timestamp | UnsetType = UNSET


MessagePayload = IngestEvent | LogRecord | Heartbeat | ErrorReport | Ack
"""Every envelope payload model."""

_PAYLOADS: Final[dict[str, type[WireModel]]] = {
    "ingest_event": IngestEvent,
    "log_record": LogRecord,
    "heartbeat": Heartbeat,
    "error": ErrorReport,
    "ack": Ack,
}
MSG_TYPES: Final = frozenset(_PAYLOADS)
"""The ``msg_type`` values of an envelope."""


class Envelope(WireModel, kw_only=True):
    """One socket message; ``target`` ``None`` means every subscriber."""

    msg_id: NonEmptyStr
    msg_type: str
    timestamp: Timestamp
    source: str
    target: str | None
    payload: MessagePayload

    def __post_init__(self) -> None:
        expected = _PAYLOADS.get(self.msg_type)
        if expected is None or type(self.payload) is not expected:
            kind = type(self.payload).__name__
            raise ValueError(f"msg_type {self.msg_type!r} cannot carry a {kind}")


class _EnvelopeHead(WireModel, kw_only=True):
    msg_id: NonEmptyStr
    msg_type: str
    timestamp: Timestamp
    source: str
    target: str | None
    payload: msgspec.Raw


class _IngestHead(WireModel, kw_only=True):
    run_id: str
    event_type: str
    event_utc: Timestamp
    payload_json: msgspec.Raw
    received_utc: Timestamp | UnsetType = UNSET


class _EventProbe(msgspec.Struct):
    event: Any = None


class _MsgIdProbe(msgspec.Struct):
    msg_id: Any = None


M = TypeVar("M", bound=WireModel)
_RAW_DECODER: Final = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])

# --- guards -----------------------------------------------------------------------

_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def _too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _guard(raw: bytes, max_bytes: int) -> Rejection | None:
    if len(raw) > max_bytes:
        return Rejection(
            code=RejectionCode.PAYLOAD_TOO_LARGE,
            message=f"The message is {len(raw)} bytes, over the limit of {max_bytes}: "
            "send fewer events per message (split the batch).",
        )
    if _too_deep(raw):
        return Rejection(
            code=RejectionCode.NESTING_TOO_DEEP,
            message=f"The JSON nests deeper than {MAX_DEPTH} levels: flatten the payload.",
        )
    return None


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes | Rejection:
    if isinstance(data, str):
        try:
            return data.encode()
        except UnicodeEncodeError:
            return _invalid_json("the text is not valid Unicode")
    return bytes(data)


# --- rejections -------------------------------------------------------------------

_AT: Final = re.compile(r"(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING: Final = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_EXPECTED: Final = re.compile(
    r"Expected `(?P<want>[^`]*)`(?P<how>[^,]*)(?:, got `(?P<got>.*)`)?", re.DOTALL
)
_ENVELOPE_SHAPE: Final = (
    "A message must be one JSON object with msg_id, msg_type, timestamp, source, target and payload"
)
_WORDS: Final = {
    "str": "a string",
    "str of length >= 1": "a non-empty string",
    "int": "an integer",
    "float": "a number",
    "number": 'a JSON number such as 0.1 (or a decimal string such as "0.1")',
    "object": "a JSON object",
    "array": "a JSON array",
    "null": "null",
    "bool": "true or false",
    "timestamp": "an ISO-8601 timestamp string such as 2026-01-03T12:41:00.000Z",
}


def _words(kinds: str) -> str:
    return " or ".join(_WORDS.get(kind, kind) for kind in kinds.split(" | "))


def _invalid_json(detail: str) -> Rejection:
    return Rejection(
        code=RejectionCode.INVALID_JSON,
        message=f"The message is not valid JSON ({detail}): send one UTF-8 JSON object.",
    )


def _explain(text: str, field: str) -> str:
    name = f"`{field}`"
    if _MISSING.fullmatch(text):
        return f"{name} is missing: add it and resend the message."
    if (expected := _EXPECTED.fullmatch(text)) is not None:
        got = f", not {_words(expected['got'])}" if expected["got"] else ""
        if not field:
            return f"{_ENVELOPE_SHAPE}{got}: send one such object per message."
        want = _words(expected["want"] + expected["how"])
        return f"{name} must be {want}{got}: fix it and resend the message."
    if text.startswith("Invalid value"):
        return f"{name} has an unsupported value ({text[14:]}): fix it and resend the message."
    return f"{name} is invalid ({text}): fix it and resend the message."


def _translate(
    exc: msgspec.ValidationError, prefix: str, code: str, msg_id: str | None
) -> Rejection:
    """Turn msgspec's error (``... - at `$.a[0].b```) into a Rejection."""
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any string
    text, path = match["text"], match["path"] or ""
    if missing := _MISSING.fullmatch(text):
        path += f".{missing['name']}"
    field = f"{prefix}{path}".lstrip(".")
    if field == "payload":  # the payload itself is not an object: the envelope is malformed
        code = RejectionCode.INVALID_MESSAGE
    if path.endswith(".event_type") and text.startswith("Invalid value"):
        return _unknown_event_type(text[15:-1], field, msg_id)
    return Rejection(code=code, message=_explain(text, field), field=field or None, msg_id=msg_id)


def _unknown_event_type(value: str, field: str, msg_id: str | None) -> Rejection:
    known = ", ".join(sorted(EVENT_TYPES))
    return Rejection(
        code=RejectionCode.UNKNOWN_EVENT_TYPE,
        message=f"`{field}` is {value!r}, which is not an event type: use one of {known}.",
        field=field,
        msg_id=msg_id,
    )


def _probe_msg_id(raw: bytes) -> str | None:
    try:
        msg_id = msgspec.json.decode(raw, type=_MsgIdProbe).msg_id
    except (msgspec.DecodeError, RecursionError):
        return None
    return msg_id if isinstance(msg_id, str) and msg_id else None


# --- decoding stages --------------------------------------------------------------


def _read_head(raw: bytes) -> _EnvelopeHead | Rejection:
    try:
        return decode_model(raw, _EnvelopeHead)
    except msgspec.ValidationError as exc:
        return _translate(exc, "", RejectionCode.INVALID_MESSAGE, _probe_msg_id(raw))
    except msgspec.DecodeError as exc:
        return _invalid_json(str(exc))
    except RecursionError:
        return _guard(raw, len(raw)) or _invalid_json("nesting too deep")


def _read_payload(head: _EnvelopeHead) -> MessagePayload | Rejection:
    model = _PAYLOADS.get(head.msg_type)
    if model is None:
        return Rejection(
            code=RejectionCode.UNKNOWN_MSG_TYPE,
            message=f"`msg_type` {head.msg_type!r} is not a message type: "
            f"use one of {', '.join(sorted(MSG_TYPES))}.",
            field="msg_type",
            msg_id=head.msg_id,
        )
    if model is IngestEvent:
        return _read_ingest(head)
    return _read_part(bytes(head.payload), model, "payload", head.msg_id)  # type: ignore[return-value]


def _read_part(raw: bytes, model: type[M], prefix: str, msg_id: str) -> M | Rejection:
    try:
        return decode_model(raw, model)
    except msgspec.ValidationError as exc:
        return _translate(exc, prefix, RejectionCode.VALIDATION_ERROR, msg_id)


def _read_ingest(head: _EnvelopeHead) -> IngestEvent | Rejection:
    ingest = _read_part(bytes(head.payload), _IngestHead, "payload", head.msg_id)
    if isinstance(ingest, Rejection):
        return ingest
    raw_json = bytes(ingest.payload_json)
    event = _probe_event(raw_json) if has_event_key(ingest.event_type) else None
    model = payload_type_for(ingest.event_type, event)
    if model is None:
        return _unknown_event_type(ingest.event_type, "payload.event_type", head.msg_id)
    data = _read_part(raw_json, model, "payload.payload_json", head.msg_id)
    if isinstance(data, Rejection):
        return data
    return IngestEvent(
        run_id=ingest.run_id,
        event_type=ingest.event_type,
        event_utc=ingest.event_utc,
        payload_json=data,  # type: ignore[arg-type]
        received_utc=ingest.received_utc,
        extra=ingest.extra,
    )


def _probe_event(raw: bytes) -> object:
    try:
        return msgspec.json.decode(raw, type=_EventProbe).event
    except msgspec.DecodeError:
        return None  # the typed decode that follows reports the problem


# --- public API -------------------------------------------------------------------


def decode_envelope(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_BYTES
) -> Envelope | Rejection:
    """Decode one JSON message; return the :class:`Envelope` or why it was refused."""
    raw = _as_bytes(data)
    if isinstance(raw, Rejection):
        return raw
    refused = _guard(raw, max_bytes)
    if refused is not None:
        return refused
    head = _read_head(raw)
    if isinstance(head, Rejection):
        return head
    payload = _read_payload(head)
    if isinstance(payload, Rejection):
        return payload
    return Envelope(
        msg_id=head.msg_id,
        msg_type=head.msg_type,
        timestamp=head.timestamp,
        source=head.source,
        target=head.target,
        payload=payload,
        extra=head.extra,
    )


def decode_many(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    max_message_bytes: int = MAX_BYTES,
) -> list[Envelope | Rejection]:
    """Decode one envelope, a JSON array of envelopes, or NDJSON (one per line).

    Results come in input order; a bad element becomes a Rejection in its place
    and never costs the good ones.
    """
    return [
        decode_envelope(part, max_bytes=max_message_bytes) if isinstance(part, bytes) else part
        for part in split_many(data, max_bytes=max_bytes)
    ]


def split_many(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_BATCH_BYTES
) -> list[bytes | Rejection]:
    """The bytes of each message of one envelope, a JSON array or NDJSON (not decoded).

    What :func:`decode_many` decodes, one :func:`decode_envelope` each; a body
    that cannot be split at all is one Rejection.
    """
    raw = _as_bytes(data)
    if isinstance(raw, Rejection):
        return [raw]
    if len(raw) > max_bytes:
        return [_guard(raw, max_bytes) or _invalid_json("too large")]
    body = raw.strip()
    if not body:
        return [_invalid_json("the body is empty")]
    if body.startswith(b"["):
        return _split_array(body)
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) == 1 or not _is_ndjson(body, lines):
        return [body]
    return list(lines)


def _split_array(body: bytes) -> list[bytes | Rejection]:
    try:
        items = _RAW_LIST_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        return [_invalid_json(str(exc))]
    except RecursionError:
        return [_guard(body, len(body)) or _invalid_json("nesting too deep")]
    return [bytes(item) for item in items]


def _is_ndjson(body: bytes, lines: list[bytes]) -> bool:
    """Several lines that are not one (pretty-printed) JSON document."""
    try:
        _RAW_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        if "trailing characters" in str(exc):
            return True
        return all(line.strip()[:1] == b"{" and line.strip()[-1:] == b"}" for line in lines)
    except RecursionError:
        return False
    return False


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode ``envelope`` as compact JSON; ``extra`` fields come back as siblings."""
    return encode_model(envelope)


def make_ack(
    acknowledged_msg_id: str,
    *,
    target: str | None = None,
    source: str = GATEWAY,
    msg_id: str | None = None,
    now: dt.datetime | None = None,
) -> Envelope:
    """The ``ack`` the gateway sends once ``acknowledged_msg_id`` is stored."""
    stamp = _stamp(now)
    return Envelope(
        msg_id=msg_id or str(uuid.uuid4()),
        msg_type="ack",
        timestamp=stamp,
        source=source,
        target=target,
        payload=Ack(acknowledged_msg_id=acknowledged_msg_id, timestamp=stamp),
    )


def make_error(
    rejection: Rejection,
    *,
    target: str | None = None,
    source: str = GATEWAY,
    msg_id: str | None = None,
    now: dt.datetime | None = None,
) -> Envelope:
    """The ``error`` envelope answering a refused message.

    The payload is ``{code, message, details: {msg_id, field}}``, where
    ``details.msg_id`` is the refused message's id (``null`` if unreadable).
    """
    details = {"msg_id": rejection.msg_id, "field": rejection.field}
    report = ErrorReport(code=rejection.code, message=rejection.message, details=details)
    return Envelope(
        msg_id=msg_id or str(uuid.uuid4()),
        msg_type="error",
        timestamp=_stamp(now),
        source=source,
        target=target,
        payload=report,
    )


def _stamp(now: dt.datetime | None) -> Timestamp:
    return Timestamp.from_datetime(now or dt.datetime.now(dt.UTC))
