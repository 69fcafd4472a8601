"""The ``user_event`` envelope a live session receives: its bytes and what they say."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tradewire.sessions.protocol import GATEWAY, _iso, encode_batch, encode_user_event
from tradewire.wire import EventType, Priority

INT64 = st.integers(-(2**63), 2**63 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
payloads = st.one_of(
    st.just(b""),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
        lambda d: json.dumps(d, ensure_ascii=False).encode()
    ),
).flatmap(lambda doc: st.sampled_from([doc, b"  " + doc + b"\n"]))  # whitespace is trimmed


def reference(**kw: Any) -> bytes:
    """The envelope as a plain dict (what the struct-based encoder must match byte for byte)."""
    names = {m.value: m.name for m in EventType}
    return msgspec.json.encode(
        {
            "msg_id": kw["event_id"],
            "msg_type": "user_event",
            "timestamp": _iso(kw["now_ms"]),
            "source": GATEWAY,
            "target": kw["user_id"],
            "payload": {
                "event_id": kw["event_id"],
                "user_id": kw["user_id"],
                "event_type": names.get(kw["event_type"], kw["event_type"]),
                "priority": Priority(kw["priority"]).name,
                "timestamp": kw["timestamp_ms"],
                "delivery_attempt": kw["attempt"],
                "payload": msgspec.Raw(kw["payload"].strip() or b"{}"),
            },
        }
    )


@given(
    event_id=st.text(min_size=1),
    user_id=st.text(min_size=1),
    event_type=st.sampled_from(list(EventType)) | st.integers(0, 2**31 - 1),
    priority=st.sampled_from(list(Priority)),
    timestamp_ms=INT64,
    payload=payloads,
    attempt=st.integers(1, 10_000),
    now_ms=st.integers(0, 253_402_300_799_000),  # up to the year 9999
)
def test_the_envelope_is_the_documented_json_byte_for_byte(**kw: Any) -> None:
    data = encode_user_event(**kw)
    assert data == reference(**kw)
    doc = json.loads(data)
    assert doc["payload"]["payload"] == json.loads(kw["payload"].strip() or b"{}")
    assert json.loads(encode_batch([data, data])) == [doc, doc]
