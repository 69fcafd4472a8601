"""User-event frames: encode + decode per second, against raw protobuf.

One ``UserEvent`` (ORDER_FILLED, CRITICAL, two channel preferences, a
~230-byte JSON payload) is encoded to a ``0x20`` frame and decoded back to
the domain value, with and without payload validation. The ceiling is the
generated class alone: ``SerializeToString`` + ``ParseFromString`` of the
same message, no type byte, no domain value, no checks.
"""

from __future__ import annotations

from collections.abc import Callable

from bench._harness import Row, Section, rate, timed, track
from tradewire.wire._pb import user_events_pb2 as pb
from tradewire.wire.frames import (
    ChannelPreference,
    ChannelType,
    EventType,
    Priority,
    UserEvent,
    decode_frame,
    encode_user_event,
)

__all__ = ["run"]

PAYLOAD = (
    b'{"order_id":"ord-7f3a","symbol":"BTC-USD","side":"buy","order_type":"limit",'
    b'"quantity":"0.50000000","price":"64000.10","fill_price":"63999.95",'
    b'"fill_quantity":"0.50000000","status":"filled","exchange":"binance",'
    b'"timestamp":1700000000120,"strategy_id":"mean-revert-2"}'
)
EVENT = UserEvent(
    user_id="user-42",
    event_id="0b8e3f2c-5a61-4c1e-9d7a-2f4b8c9e1a33",
    timestamp_ms=1_700_000_000_123,
    event_type=EventType.ORDER_FILLED,
    payload=PAYLOAD,
    priority=Priority.CRITICAL,
    channels=(ChannelPreference(ChannelType.WEB, True), ChannelPreference(ChannelType.TELEGRAM)),
)


def _tradewire(validate: bool) -> tuple[Callable[[], object], Callable[[], object]]:
    frame = encode_user_event(EVENT)

    def round_trip() -> object:
        return decode_frame(encode_user_event(EVENT), validate_payloads=validate)

    def decode() -> object:
        return decode_frame(frame, validate_payloads=validate)

    assert round_trip() == decode() == EVENT
    return round_trip, decode


def _raw_protobuf() -> tuple[Callable[[], object], Callable[[], object]]:
    body = encode_user_event(EVENT)[1:]
    message = pb.UserEvent.FromString(body)

    def round_trip() -> object:
        return pb.UserEvent.FromString(message.SerializeToString())

    def decode() -> object:
        return pb.UserEvent.FromString(body)

    return round_trip, decode


def _per_second(once: Callable[[], object], count: int) -> float:
    def loop() -> None:
        for _ in range(count):
            once()

    return rate(count, timed(loop, repeat=3))


def run(quick: bool) -> Section:
    """Measure the three contenders; the raw protobuf round trip is the baseline."""
    count = 20_000 if quick else 200_000
    contenders = [
        ("raw protobuf Serialize+Parse", _raw_protobuf(), "ceiling: generated class only"),
        ("tradewire frame, no payload check", _tradewire(False), "validate_payloads=False"),
        ("tradewire frame + payload check", _tradewire(True), "gateway default"),
    ]
    rows = []
    for name, (round_trip, decode), note in track(contenders, "frames: encode+decode"):
        per_second = _per_second(round_trip, count)
        decode_us = 1e6 / _per_second(decode, count)
        values: dict[str, float | str] = {
            "round trips/s": per_second,
            "µs each": 1e6 / per_second,
            "decode only, µs": decode_us,
        }
        rows.append(Row(name, values, note))
    return Section(
        title="User-event frames (0x20 UserEvent encode + decode)",
        columns=["round trips/s", "µs each", "decode only, µs"],
        rows=rows,
        baseline="raw protobuf Serialize+Parse",
        ratio_of="round trips/s",
        intro=__doc__ or "",
        conclusions=[
            f"{count:,} round trips per contender, best of 3; single thread. "
            "'decode only' is the gateway's side (frame bytes to value).",
            "The gap to the ceiling is building the domain value (Struct, enum lookups) "
            "and the msgspec payload check.",
        ],
    )
