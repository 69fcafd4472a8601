"""Ack encoding: the template gives the envelope's JSON, with fresh UUID-shaped ids."""

from __future__ import annotations

import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from tradewire.ingest.pipeline import Accepted, AckIds, admit_body, encode_ack, now_stamp
from tradewire.wire import Rejection, decode_envelope


def test_ack_ids_are_unique_uuids() -> None:
    ids = AckIds()
    seen = [ids.next().decode() for _ in range(10_000)]
    assert len(set(seen)) == len(seen)
    assert all(str(uuid.UUID(i)) == i for i in seen[:100])
    assert AckIds().next() != ids.next()  # another random start


@given(msg_id=st.text(min_size=1, max_size=40), target=st.none() | st.text(max_size=20))
def test_ack_decodes_as_an_ack_envelope(msg_id: str, target: str | None) -> None:
    stamp = now_stamp()
    raw = encode_ack(msg_id, target, stamp=stamp, duplicate=True)
    body = json.loads(raw)
    assert body["timestamp"] == body["payload"]["timestamp"] == stamp
    assert body["payload"]["acknowledged_msg_id"] == msg_id
    assert body["target"] == target and body["payload"]["duplicate"] is True
    decoded = decode_envelope(raw)
    assert getattr(decoded, "msg_type", None) == "ack", decoded


def test_a_batch_element_is_stored_as_its_own_bytes() -> None:
    """Array and NDJSON elements keep the text they were sent as, like single messages."""
    element = (
        b'{ "msg_id": "m-1", "msg_type": "ingest_event", "timestamp": "2026-01-03T12:41:00Z",'
        b' "source": "qt", "target": "api-gateway", "payload": {"run_id": "r-1",'
        b' "event_type": "order", "event_utc": "2026-01-03T12:41:00Z", "payload_json":'
        b' {"order_id": "o-1", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.10"}}}'
    )
    body = b"[\n  " + element + b",\n  7\n]"
    first, second = admit_body(body, "application/json", "u1", 0)
    assert isinstance(first, Accepted)
    assert bytes(first.record.body) == element  # not re-encoded: "0.10" stays a string
    assert first.record.key == "m-1" and first.record.user_id == "u1"
    assert isinstance(second, Rejection) and second.code == "INVALID_MESSAGE"
    assert [bytes(r.record.body) for r in admit_body(element, None, "u1", 0)] == [element]  # type: ignore[union-attr]
