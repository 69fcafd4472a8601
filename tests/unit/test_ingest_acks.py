"""Ack encoding: the template gives the envelope's JSON, with fresh UUID-shaped ids."""

from __future__ import annotations

import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from tradewire.ingest.pipeline import AckIds, encode_ack, now_stamp
from tradewire.wire import decode_envelope


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
