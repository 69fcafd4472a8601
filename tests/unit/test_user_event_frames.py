"""User-event frames (0x20 UserEvent, 0x21 EventAck): golden bytes, rejections, properties."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_user_event_payloads import payloads
from tradewire.wire import Rejection
from tradewire.wire._pb import user_events_pb2 as pb
from tradewire.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    EVENT_ACK_TYPE_ID,
    REJECTION_CODES,
    USER_EVENT_TYPE_ID,
    AckStatus,
    ChannelPreference,
    ChannelType,
    EventAck,
    EventType,
    Priority,
    UserEvent,
    decode_event_ack,
    decode_fast_path,
    decode_frame,
    decode_user_event,
    encode_event_ack,
    encode_fast_path,
    encode_user_event,
)
from tradewire.wire.payloads import Payload, encode_payload, payload_type

# -- golden vectors: any change to these bytes is a wire change ---------------

GOLDEN_EVENT = UserEvent(
    user_id="user-42",
    event_id="evt-0001",
    timestamp_ms=1_700_000_000_123,
    event_type=EventType.ORDER_FILLED,
    payload=b'{"order_id":"o-1","fill_price":"64000.10","fill_quantity":"0.5"}',
    priority=Priority.CRITICAL,
    channels=(ChannelPreference(ChannelType.WEB, True), ChannelPreference(ChannelType.TELEGRAM)),
)
GOLDEN_EVENT_FRAME = bytes.fromhex(
    "20"  # type id: UserEvent
    "0a07757365722d3432"  # 1 user_id "user-42"
    "12086576742d30303031"  # 2 event_id "evt-0001"
    "18fbd095ffbc31"  # 3 timestamp 1700000000123
    "2001"  # 4 event_type ORDER_FILLED
    "2a40"  # 5 payload, 64 bytes of JSON
    "7b226f726465725f6964223a226f2d31222c2266696c6c5f7072696365223a2236"
    "343030302e3130222c2266696c6c5f7175616e74697479223a22302e35227d"
    "320c"  # 6 delivery, 12 bytes
    "0802"  # 1 priority CRITICAL
    "120408011001"  # 2 channels {WEB, only_if_active}
    "12020802"  # 2 channels {TELEGRAM}
)
GOLDEN_ACK = EventAck(
    event_id="evt-0001",
    status=AckStatus.ACK_ERROR,
    error_message="all channels failed",
    delivered_via=ChannelType.EMAIL,
)
GOLDEN_ACK_FRAME = bytes.fromhex(
    "21"  # type id: EventAck
    "0a086576742d30303031"  # 1 event_id "evt-0001"
    "1002"  # 2 status ACK_ERROR
    "1a13616c6c206368616e6e656c73206661696c6564"  # 3 error_message
    "2003"  # 4 delivered_via EMAIL
)


def test_golden_user_event_encodes_to_the_golden_bytes() -> None:
    assert encode_user_event(GOLDEN_EVENT) == GOLDEN_EVENT_FRAME


def test_golden_user_event_bytes_decode_to_the_value() -> None:
    assert decode_frame(GOLDEN_EVENT_FRAME) == GOLDEN_EVENT
    assert decode_user_event(GOLDEN_EVENT_FRAME) == GOLDEN_EVENT


def test_golden_ack_round_trips() -> None:
    assert encode_event_ack(GOLDEN_ACK) == GOLDEN_ACK_FRAME
    assert decode_frame(GOLDEN_ACK_FRAME) == GOLDEN_ACK
    assert decode_event_ack(GOLDEN_ACK_FRAME) == GOLDEN_ACK


def test_golden_bytes_read_by_the_generated_classes() -> None:
    message = pb.UserEvent.FromString(GOLDEN_EVENT_FRAME[1:])
    assert message.user_id == "user-42"
    assert message.event_type == pb.ORDER_FILLED
    assert message.delivery.priority == pb.CRITICAL
    assert [(c.channel, c.only_if_active) for c in message.delivery.channels] == [
        (pb.WEB, True),
        (pb.TELEGRAM, False),
    ]
    assert pb.EventAck.FromString(GOLDEN_ACK_FRAME[1:]).status == pb.ACK_ERROR


def test_type_ids_are_the_contract() -> None:
    assert (USER_EVENT_TYPE_ID, EVENT_ACK_TYPE_ID) == (0x20, 0x21)
    assert DEFAULT_MAX_FRAME_SIZE == 1024 * 1024


def test_decoders_accept_any_buffer() -> None:
    assert decode_frame(bytearray(GOLDEN_EVENT_FRAME)) == GOLDEN_EVENT
    assert decode_frame(memoryview(GOLDEN_EVENT_FRAME)) == GOLDEN_EVENT


# -- rejections ---------------------------------------------------------------


def _frame(message: pb.UserEvent) -> bytes:
    return b"\x20" + message.SerializeToString()


def _event(**fields: object) -> pb.UserEvent:
    base: dict[str, object] = {"user_id": "u", "event_id": "e", "event_type": pb.CONTAINER_READY}
    return pb.UserEvent(**(base | fields))  # type: ignore[arg-type]


def _rejected(result: object, code: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.code == code, result
    assert code in REJECTION_CODES
    return result


def test_empty_frame() -> None:
    _rejected(decode_frame(b""), "EMPTY_FRAME")


@pytest.mark.parametrize("type_id", [0x00, 0x1F, 0x22, 0xFF])
def test_unknown_type_id(type_id: int) -> None:
    rejection = _rejected(decode_frame(bytes([type_id]) + b"\x0a\x01u"), "UNKNOWN_TYPE_ID")
    assert f"0x{type_id:02x}" in rejection.message


def test_known_type_id_in_the_wrong_direction() -> None:
    _rejected(decode_user_event(GOLDEN_ACK_FRAME), "UNEXPECTED_TYPE_ID")
    _rejected(decode_event_ack(GOLDEN_EVENT_FRAME), "UNEXPECTED_TYPE_ID")
    _rejected(decode_user_event(b"\x07"), "UNKNOWN_TYPE_ID")


def test_invalid_protobuf() -> None:
    _rejected(decode_frame(b"\x20\xff\xff"), "INVALID_PROTOBUF")
    _rejected(decode_frame(b"\x21\x0a\x05ab"), "INVALID_PROTOBUF")


def test_type_byte_alone_is_an_empty_message_missing_its_ids() -> None:
    assert _rejected(decode_frame(b"\x20"), "MISSING_FIELD").field == "user_id"
    assert _rejected(decode_frame(b"\x21"), "MISSING_FIELD").field == "event_id"


def test_missing_user_id_names_the_field_and_keeps_the_event_id() -> None:
    rejection = _rejected(decode_frame(_frame(_event(user_id=""))), "MISSING_FIELD")
    assert (rejection.field, rejection.msg_id) == ("user_id", "e")


def test_missing_event_id() -> None:
    rejection = _rejected(decode_frame(_frame(_event(event_id=""))), "MISSING_FIELD")
    assert rejection.field == "event_id"


def test_unknown_event_type_is_refused() -> None:
    rejection = _rejected(decode_frame(_frame(_event(event_type=5))), "UNKNOWN_EVENT_TYPE")
    assert (rejection.field, rejection.msg_id) == ("event_type", "e")


def test_unknown_priority_is_refused() -> None:
    frame = _frame(_event(delivery=pb.DeliverySpec(priority=3)))  # type: ignore[arg-type]
    assert _rejected(decode_frame(frame), "UNKNOWN_PRIORITY").field == "delivery.priority"


def test_unknown_channel_is_refused_with_its_index() -> None:
    channels = [pb.ChannelPreference(channel=pb.WEB), pb.ChannelPreference(channel=7)]  # type: ignore[arg-type]
    frame = _frame(_event(delivery=pb.DeliverySpec(channels=channels)))
    rejection = _rejected(decode_frame(frame), "UNKNOWN_CHANNEL")
    assert rejection.field == "delivery.channels[1].channel"


def test_unknown_ack_status_and_channel_are_refused() -> None:
    bad_status = b"\x21" + pb.EventAck(event_id="e", status=9).SerializeToString()  # type: ignore[arg-type]
    assert _rejected(decode_frame(bad_status), "UNKNOWN_ACK_STATUS").field == "status"
    bad_via = b"\x21" + pb.EventAck(event_id="e", delivered_via=42).SerializeToString()  # type: ignore[arg-type]
    assert _rejected(decode_frame(bad_via), "UNKNOWN_CHANNEL").field == "delivered_via"


def test_invalid_payload_names_the_path_inside_the_payload() -> None:
    frame = _frame(_event(event_type=pb.ORDER_FILLED, payload=b'{"fill_price": 1.5e}'))
    _rejected(decode_frame(frame), "INVALID_PAYLOAD")
    frame = _frame(_event(event_type=pb.ORDER_FILLED, payload=b'{"fill_price": "abc"}'))
    rejection = _rejected(decode_frame(frame), "INVALID_PAYLOAD")
    assert (rejection.field, rejection.msg_id) == ("payload.fill_price", "e")


def test_payload_validation_can_be_skipped() -> None:
    frame = _frame(_event(event_type=pb.ORDER_FILLED, payload=b"not json"))
    event = decode_frame(frame, validate_payloads=False)
    assert isinstance(event, UserEvent) and event.payload == b"not json"


def test_system_event_payload_must_be_a_json_object() -> None:
    _rejected(decode_frame(_frame(_event(payload=b"[1, 2]"))), "INVALID_PAYLOAD")
    assert isinstance(decode_frame(_frame(_event(payload=b'{"any": [1]}'))), UserEvent)


def test_frame_too_large_is_configurable() -> None:
    frame = _frame(_event(payload=b'{"pad": "' + b"x" * 100 + b'"}'))
    assert isinstance(decode_frame(frame), UserEvent)
    _rejected(decode_frame(frame, max_size=len(frame) - 1), "FRAME_TOO_LARGE")
    assert isinstance(decode_frame(frame, max_size=len(frame)), UserEvent)
    huge = b"\x20" + b"\x00" * DEFAULT_MAX_FRAME_SIZE
    _rejected(decode_frame(huge), "FRAME_TOO_LARGE")


def test_delivery_defaults_when_absent() -> None:
    event = decode_frame(_frame(_event()))
    assert isinstance(event, UserEvent)
    assert (event.priority, event.channels, event.payload) == (Priority.INFORMATIONAL, (), b"")


# -- fast path: [user_id][0x20 + UserEvent] ------------------------------------


def test_fast_path_round_trip() -> None:
    topic, frame = encode_fast_path(GOLDEN_EVENT)
    assert (topic, frame) == (b"user-42", GOLDEN_EVENT_FRAME)
    assert decode_fast_path([topic, frame]) == GOLDEN_EVENT


@pytest.mark.parametrize("topic", [b"user-4", b"user-420", b"USER-42", b"", b"user-42\x00"])
def test_fast_path_topic_must_equal_the_user_id(topic: bytes) -> None:
    rejection = _rejected(decode_fast_path([topic, GOLDEN_EVENT_FRAME]), "TOPIC_MISMATCH")
    assert (rejection.field, rejection.msg_id) == ("user_id", "evt-0001")


@pytest.mark.parametrize("count", [0, 1, 3])
def test_fast_path_needs_two_frames(count: int) -> None:
    frames = [b"user-42", GOLDEN_EVENT_FRAME, b""][:count]
    _rejected(decode_fast_path(frames), "WRONG_FRAME_COUNT")


def test_fast_path_rejects_an_ack_frame() -> None:
    _rejected(decode_fast_path([b"evt-0001", GOLDEN_ACK_FRAME]), "UNEXPECTED_TYPE_ID")


# -- properties ---------------------------------------------------------------

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ids = st.text(min_size=1, max_size=40)
channels = st.lists(
    st.builds(ChannelPreference, st.sampled_from(ChannelType), st.booleans()), max_size=8
).map(tuple)
user_events = st.builds(
    UserEvent,
    user_id=ids,
    event_id=ids,
    timestamp_ms=int64s,
    event_type=st.sampled_from(EventType),
    payload=st.binary(max_size=300),
    priority=st.sampled_from(Priority),
    channels=channels,
)
event_acks = st.builds(
    EventAck,
    event_id=ids,
    status=st.sampled_from(AckStatus),
    error_message=st.text(max_size=80),
    delivered_via=st.sampled_from(ChannelType),
)


def _is_outcome(result: object) -> bool:
    if isinstance(result, Rejection):
        return result.code in REJECTION_CODES
    return isinstance(result, UserEvent | EventAck)


@given(user_events)
def test_user_event_round_trip(event: UserEvent) -> None:
    assert decode_frame(encode_user_event(event), validate_payloads=False) == event


@given(event_acks)
def test_event_ack_round_trip(ack: EventAck) -> None:
    assert decode_frame(encode_event_ack(ack)) == ack


@given(user_events, st.data())
def test_user_event_with_a_valid_payload_round_trips_validated(
    event: UserEvent, data: st.DataObject
) -> None:
    model = payload_type(event.event_type)
    payload: Payload = data.draw(payloads(model) if model else st.just({"k": [1, "v"]}))
    valid = msgspec.structs.replace(event, payload=encode_payload(payload))
    assert decode_frame(encode_user_event(valid)) == valid


@given(user_events)
def test_fast_path_round_trip_property(event: UserEvent) -> None:
    result = decode_fast_path(encode_fast_path(event), validate_payloads=False)
    assert result == event


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for prefix in (b"", b"\x20", b"\x21"):
        assert _is_outcome(decode_frame(prefix + data))
    assert _is_outcome(decode_user_event(data))
    assert _is_outcome(decode_event_ack(data))


@given(st.lists(st.binary(max_size=60), max_size=4))
def test_arbitrary_multipart_never_raises(frames: list[bytes]) -> None:
    assert _is_outcome(decode_fast_path(frames))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(
        draw(st.one_of(user_events.map(encode_user_event), event_acks.map(encode_event_ack)))
    )
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.integers(min_value=0, max_value=max(0, len(frame) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and frame:
            frame[where] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "insert":
            frame[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del frame[where : where + draw(st.integers(min_value=1, max_value=4))]
        else:
            del frame[where:]
    return bytes(frame)


@given(mutated_frames())
def test_mutated_frames_never_raise(frame: bytes) -> None:
    assert _is_outcome(decode_frame(frame))
    assert _is_outcome(decode_frame(frame, validate_payloads=False))
