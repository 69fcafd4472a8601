"""User-event frames: protocol 1 between containers and the gateway.

Theory of operation
-------------------
A frame is one type byte followed by protobuf bytes (``user_events.proto``):

* ``0x20`` + ``UserEvent`` - container to gateway (guaranteed path: one
  ZeroMQ frame from the DEALER; fast path: two frames
  ``[user_id][0x20 + UserEvent]`` from the XPUB, the first being the topic).
* ``0x21`` + ``EventAck`` - gateway to container.

The generated protobuf classes never leave this module: :func:`encode_user_event`
/ :func:`decode_frame` convert between bytes and the immutable domain values
:class:`UserEvent` and :class:`EventAck`. Decoding never raises on bad
input; it returns a :class:`~tradewire.wire.Rejection` whose ``code`` is one of
:data:`REJECTION_CODES`.

Proto3 enums are open: a parser keeps numbers it does not know. tradewire
refuses them instead (``UNKNOWN_EVENT_TYPE``, ``UNKNOWN_PRIORITY``,
``UNKNOWN_CHANNEL``, ``UNKNOWN_ACK_STATUS``): an event the gateway cannot
route must go back to its sender as an error, not be guessed at.

The decoder is the gateway's hot path, so it does only what is required: size
check, one protobuf parse, required ids, enum lookups in dicts, and (unless
``validate_payloads=False``) one msgspec decode of the JSON payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Final, NamedTuple, TypeAlias

import msgspec
from google.protobuf.message import DecodeError

from tradewire.delivery.model import AckStatus, ChannelType, Priority
from tradewire.wire._pb import user_events_pb2 as _pb
from tradewire.wire._rejection import Rejection
from tradewire.wire.payloads import validate_payload

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "EVENT_ACK_TYPE_ID",
    "REJECTION_CODES",
    "USER_EVENT_TYPE_ID",
    "AckStatus",
    "ChannelPreference",
    "ChannelType",
    "EventAck",
    "EventType",
    "Frame",
    "FrameBytes",
    "Priority",
    "UserEvent",
    "decode_event_ack",
    "decode_fast_path",
    "decode_frame",
    "decode_user_event",
    "encode_event_ack",
    "encode_fast_path",
    "encode_user_event",
]

USER_EVENT_TYPE_ID: Final = 0x20
"""Type byte of a ``UserEvent`` frame (container to gateway)."""
EVENT_ACK_TYPE_ID: Final = 0x21
"""Type byte of an ``EventAck`` frame (gateway to container)."""
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20
"""Largest frame accepted by default (1 MiB, type byte included)."""

REJECTION_CODES: Final = frozenset(
    {
        "EMPTY_FRAME",
        "FRAME_TOO_LARGE",
        "UNKNOWN_TYPE_ID",
        "UNEXPECTED_TYPE_ID",
        "INVALID_PROTOBUF",
        "MISSING_FIELD",
        "UNKNOWN_EVENT_TYPE",
        "UNKNOWN_PRIORITY",
        "UNKNOWN_CHANNEL",
        "UNKNOWN_ACK_STATUS",
        "INVALID_PAYLOAD",
        "WRONG_FRAME_COUNT",
        "TOPIC_MISMATCH",
    }
)
"""Every ``Rejection.code`` this module returns (stable)."""


class EventType(IntEnum):
    """What happened; mirrors ``EventType`` of the seed (same names, numbers)."""

    ORDER_PLACED = 0
    ORDER_FILLED = 1
    ORDER_CANCELLED = 2
    ORDER_REJECTED = 3
    ORDER_EXPIRED = 4
    ALERT_TRIGGERED = 10
    ALERT_CREATED = 11
    ALERT_DELETED = 12
    POSITION_OPENED = 20
    POSITION_CLOSED = 21
    POSITION_UPDATED = 22
    POSITION_LIQUIDATED = 23
    WORKSPACE_CHANGED = 30
    CHART_ANNOTATION_ADDED = 31
    CHART_ANNOTATION_REMOVED = 32
    INDICATOR_UPDATED = 33
    STRATEGY_STARTED = 40
    STRATEGY_STOPPED = 41
    STRATEGY_LOG = 42
    STRATEGY_ERROR = 43
    BACKTEST_COMPLETED = 44
    CONTAINER_STARTING = 50
    CONTAINER_READY = 51
    CONTAINER_SHUTTING_DOWN = 52
    EVENT_ERROR = 53


class ChannelPreference(NamedTuple):
    """One step of the escalation list: a channel, and whether to skip it
    when the user is not actively connected to it."""

    channel: ChannelType
    only_if_active: bool = False


class UserEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A user event, as a domain value (wire: ``UserEvent`` + ``DeliverySpec``).

    ``payload`` is the raw JSON document; decode it with
    :func:`tradewire.wire.payloads.decode_payload`. ``channels`` is the
    ordered escalation list of ``DeliverySpec.channels``.
    """

    user_id: str
    event_id: str
    timestamp_ms: int
    event_type: EventType
    payload: bytes = b""
    priority: Priority = Priority.INFORMATIONAL
    channels: tuple[ChannelPreference, ...] = ()


class EventAck(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's answer to a ``UserEvent`` on the guaranteed path."""

    event_id: str
    status: AckStatus
    error_message: str = ""
    delivered_via: ChannelType = ChannelType.ACTIVE_SESSION


Frame: TypeAlias = UserEvent | EventAck
"""A decoded frame."""
FrameBytes: TypeAlias = bytes | bytearray | memoryview
"""What the decoders accept (a ZeroMQ frame's buffer works as is)."""

_USER_EVENT_PREFIX: Final = bytes([USER_EVENT_TYPE_ID])
_EVENT_ACK_PREFIX: Final = bytes([EVENT_ACK_TYPE_ID])
_EVENT_TYPES: Final = {m.value: m for m in EventType}
_PRIORITIES: Final = {m.value: m for m in Priority}
_CHANNELS: Final = {m.value: m for m in ChannelType}
_ACK_STATUSES: Final = {m.value: m for m in AckStatus}

_Delivery: TypeAlias = tuple[Priority, tuple[ChannelPreference, ...]]
_DELIVERY_CACHE: Final[dict[bytes, _Delivery]] = {}
_DELIVERY_FIELDS: Final[dict[_Delivery, bytes]] = {}
_DELIVERY_CACHE_SIZE: Final = 4096


# -- encoding -----------------------------------------------------------------


def encode_user_event(event: UserEvent) -> bytes:
    """Encode ``event`` as a ``0x20 + UserEvent`` frame.

    The ``delivery`` sub-message is always written, even when it holds only
    defaults. Raises ``ValueError`` if a field is out of its protobuf range
    (a caller bug, e.g. a timestamp beyond int64).
    """
    message = _pb.UserEvent(
        user_id=event.user_id,
        event_id=event.event_id,
        timestamp=event.timestamp_ms,
        event_type=event.event_type,  # type: ignore[arg-type]
        payload=event.payload,
    )
    delivery = _delivery_field(event.priority, event.channels)
    return _USER_EVENT_PREFIX + message.SerializeToString() + delivery


def _delivery_field(priority: Priority, channels: tuple[ChannelPreference, ...]) -> bytes:
    # ``delivery`` is field 6, the last one, and protobuf writes fields in
    # number order: appending its serialized form to the other fields gives
    # the same bytes as serializing the whole message (the golden vector
    # test pins this). Containers reuse a few specs, so they are memoized.
    key = (priority, channels)
    cached = _DELIVERY_FIELDS.get(key)
    if cached is not None:
        return cached
    spec = _pb.DeliverySpec(
        priority=priority,  # type: ignore[arg-type]
        channels=[
            _pb.ChannelPreference(channel=c, only_if_active=a)  # type: ignore[arg-type]
            for c, a in channels
        ],
    )
    field = _pb.UserEvent(delivery=spec).SerializeToString()
    if len(_DELIVERY_FIELDS) < _DELIVERY_CACHE_SIZE:
        _DELIVERY_FIELDS[key] = field
    return field


def encode_event_ack(ack: EventAck) -> bytes:
    """Encode ``ack`` as a ``0x21 + EventAck`` frame."""
    message = _pb.EventAck(
        event_id=ack.event_id,
        status=ack.status,  # type: ignore[arg-type]
        error_message=ack.error_message,
        delivered_via=ack.delivered_via,  # type: ignore[arg-type]
    )
    return _EVENT_ACK_PREFIX + message.SerializeToString()


def encode_fast_path(event: UserEvent) -> tuple[bytes, bytes]:
    """The two XPUB frames of the fast path: ``(user_id topic, 0x20 frame)``."""
    return event.user_id.encode(), encode_user_event(event)


# -- decoding -----------------------------------------------------------------


def decode_frame(
    frame: FrameBytes,
    *,
    max_size: int = DEFAULT_MAX_FRAME_SIZE,
    validate_payloads: bool = True,
) -> Frame | Rejection:
    """Decode a ``0x20`` or ``0x21`` frame into a value, or a ``Rejection``.

    ``validate_payloads`` checks a ``UserEvent``'s JSON payload against the
    model of its event type (``INVALID_PAYLOAD``).
    """
    rejection = _check_envelope(frame, max_size)
    if rejection is not None:
        return rejection
    if frame[0] == USER_EVENT_TYPE_ID:
        return _user_event_from(frame[1:], validate_payloads)
    if frame[0] == EVENT_ACK_TYPE_ID:
        return _event_ack_from(frame[1:])
    return _reject("UNKNOWN_TYPE_ID", f"unknown message type id 0x{frame[0]:02x}")


def decode_user_event(
    frame: FrameBytes,
    *,
    max_size: int = DEFAULT_MAX_FRAME_SIZE,
    validate_payloads: bool = True,
) -> UserEvent | Rejection:
    """Decode a frame that must be a ``0x20 UserEvent`` (the gateway's ROUTER side)."""
    rejection = _check_envelope(frame, max_size) or _check_type(frame, USER_EVENT_TYPE_ID)
    if rejection is not None:
        return rejection
    return _user_event_from(frame[1:], validate_payloads)


def decode_event_ack(
    frame: FrameBytes, *, max_size: int = DEFAULT_MAX_FRAME_SIZE
) -> EventAck | Rejection:
    """Decode a frame that must be a ``0x21 EventAck`` (the container's side)."""
    rejection = _check_envelope(frame, max_size) or _check_type(frame, EVENT_ACK_TYPE_ID)
    if rejection is not None:
        return rejection
    return _event_ack_from(frame[1:])


def decode_fast_path(
    frames: Sequence[FrameBytes],
    *,
    max_size: int = DEFAULT_MAX_FRAME_SIZE,
    validate_payloads: bool = True,
) -> UserEvent | Rejection:
    """Decode the fast path's ``[user_id][0x20 + UserEvent]`` message.

    The topic frame must equal the event's ``user_id`` (UTF-8) byte for byte,
    otherwise ``TOPIC_MISMATCH``: a container may only publish on its user's
    topic.
    """
    if len(frames) != 2:
        return _reject(
            "WRONG_FRAME_COUNT", f"expected 2 frames [user_id][event], got {len(frames)}"
        )
    topic, frame = frames
    event = decode_user_event(frame, max_size=max_size, validate_payloads=validate_payloads)
    if isinstance(event, UserEvent) and bytes(topic) != event.user_id.encode():
        return _reject(
            "TOPIC_MISMATCH",
            "topic frame differs from the event's user_id",
            field="user_id",
            msg_id=event.event_id,
        )
    return event


def _check_envelope(frame: FrameBytes, max_size: int) -> Rejection | None:
    if not frame:
        return _reject("EMPTY_FRAME", "empty frame: expected a type byte and a protobuf message")
    if len(frame) > max_size:
        return _reject("FRAME_TOO_LARGE", f"frame of {len(frame)} bytes exceeds {max_size}")
    return None


def _check_type(frame: FrameBytes, expected: int) -> Rejection | None:
    type_id = frame[0]
    if type_id == expected:
        return None
    if type_id in (USER_EVENT_TYPE_ID, EVENT_ACK_TYPE_ID):
        return _reject(
            "UNEXPECTED_TYPE_ID", f"expected type id 0x{expected:02x}, got 0x{type_id:02x}"
        )
    return _reject("UNKNOWN_TYPE_ID", f"unknown message type id 0x{type_id:02x}")


def _user_event_from(body: FrameBytes, validate_payloads: bool) -> UserEvent | Rejection:
    message = _pb.UserEvent()
    try:
        message.ParseFromString(body)  # type: ignore[arg-type]  # upb takes any buffer
    except DecodeError:
        return _reject("INVALID_PROTOBUF", "bytes after type id 0x20 are not a UserEvent")
    # each field is read once: upb builds a new Python object on every read
    user_id, event_id = message.user_id, message.event_id
    msg_id = event_id or None
    if not user_id:
        return _reject("MISSING_FIELD", "user_id is required", field="user_id", msg_id=msg_id)
    if not event_id:
        return _reject("MISSING_FIELD", "event_id is required", field="event_id")
    event_type = _EVENT_TYPES.get(message.event_type)
    if event_type is None:
        return _unknown("UNKNOWN_EVENT_TYPE", "event_type", message.event_type, EventType, msg_id)
    payload = message.payload
    if validate_payloads:
        rejection = validate_payload(event_type, payload)
        if rejection is not None:
            return msgspec.structs.replace(rejection, msg_id=msg_id)
    delivery = _delivery_from(message.delivery, event_id)
    if isinstance(delivery, Rejection):
        return delivery
    return UserEvent(
        user_id=user_id,
        event_id=event_id,
        timestamp_ms=message.timestamp,
        event_type=event_type,
        payload=payload,
        priority=delivery[0],
        channels=delivery[1],
    )


def _delivery_from(spec: _pb.DeliverySpec, msg_id: str) -> _Delivery | Rejection:
    # Containers reuse a handful of delivery specs; walking the repeated field
    # costs more than the rest of the decode, so known specs are memoized by
    # their bytes (bounded: once full, new specs are just not remembered).
    key = spec.SerializeToString()
    cached = _DELIVERY_CACHE.get(key)
    if cached is not None:
        return cached
    delivery = _delivery_of(spec, msg_id)
    if not isinstance(delivery, Rejection) and len(_DELIVERY_CACHE) < _DELIVERY_CACHE_SIZE:
        _DELIVERY_CACHE[key] = delivery
    return delivery


def _delivery_of(spec: _pb.DeliverySpec, msg_id: str) -> _Delivery | Rejection:
    priority = _PRIORITIES.get(spec.priority)
    if priority is None:
        return _unknown("UNKNOWN_PRIORITY", "delivery.priority", spec.priority, Priority, msg_id)
    channels = []
    for index, preference in enumerate(spec.channels):
        channel = _CHANNELS.get(preference.channel)
        if channel is None:
            field = f"delivery.channels[{index}].channel"
            return _unknown("UNKNOWN_CHANNEL", field, preference.channel, ChannelType, msg_id)
        channels.append(ChannelPreference(channel, preference.only_if_active))
    return priority, tuple(channels)


def _event_ack_from(body: FrameBytes) -> EventAck | Rejection:
    message = _pb.EventAck()
    try:
        message.ParseFromString(body)  # type: ignore[arg-type]  # upb takes any buffer
    except DecodeError:
        return _reject("INVALID_PROTOBUF", "bytes after type id 0x21 are not an EventAck")
    if not message.event_id:
        return _reject("MISSING_FIELD", "event_id is required", field="event_id")
    status = _ACK_STATUSES.get(message.status)
    if status is None:
        return _unknown("UNKNOWN_ACK_STATUS", "status", message.status, AckStatus, message.event_id)
    channel = _CHANNELS.get(message.delivered_via)
    if channel is None:
        via = message.delivered_via
        return _unknown("UNKNOWN_CHANNEL", "delivered_via", via, ChannelType, message.event_id)
    return EventAck(
        event_id=message.event_id,
        status=status,
        error_message=message.error_message,
        delivered_via=channel,
    )


def _reject(
    code: str, message: str, *, field: str | None = None, msg_id: str | None = None
) -> Rejection:
    return Rejection(code=code, message=message, field=field, msg_id=msg_id)


def _unknown(
    code: str, field: str, number: int, enum: type[IntEnum], msg_id: str | None
) -> Rejection:
    message = f"{field} {number} is not a known {enum.__name__}"
    return Rejection(code=code, message=message, field=field, msg_id=msg_id)
