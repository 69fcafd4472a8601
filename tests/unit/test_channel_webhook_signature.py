"""Signed webhooks: what a receiver verifies; round trip, tampering, replay."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.message import RenderedMessage
from tradewire.channels.webhook import SignatureCheck, sign, verify_signature, webhook_body
from tradewire.delivery.model import Event, Priority
from tradewire.wire import EventType

SECRET = "whsec_test"
NOW = 1_767_444_060
BODY = b'{"event_id":"e1"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec_test", b"1767444060." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1767444060", BODY) == "sha256=" + expected


def test_valid_signature_round_trip() -> None:
    header = sign(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 299) is SignatureCheck.VALID
    assert verify_signature(SECRET.encode(), str(NOW), BODY, header, now=NOW)
    rotated = f"sha256={'0' * 64}, {header}"
    assert verify_signature(SECRET, str(NOW), BODY, rotated, now=NOW)


def test_tampering_fails() -> None:
    header = sign(SECRET, str(NOW), BODY)
    mismatch = SignatureCheck.MISMATCH
    assert verify_signature(SECRET, str(NOW), BODY + b" ", header, now=NOW) is mismatch
    assert verify_signature(SECRET, str(NOW + 1), BODY, header, now=NOW) is mismatch
    assert verify_signature("other", str(NOW), BODY, header, now=NOW) is mismatch
    assert not verify_signature("other", str(NOW), BODY, header, now=NOW)


def test_replay_outside_the_tolerance_is_expired() -> None:
    header = sign(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 301) is SignatureCheck.EXPIRED
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW - 301) is SignatureCheck.EXPIRED
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 3_000, tolerance_s=3_600)


def test_malformed_headers() -> None:
    header = sign(SECRET, str(NOW), BODY)
    malformed = SignatureCheck.MALFORMED
    assert verify_signature(SECRET, None, BODY, header, now=NOW) is malformed
    assert verify_signature(SECRET, "12.5", BODY, header, now=NOW) is malformed
    assert verify_signature(SECRET, "١٢٣", BODY, header, now=NOW) is malformed  # non-ASCII digits
    assert verify_signature(SECRET, str(NOW), BODY, None, now=NOW) is malformed
    assert (
        verify_signature(SECRET, str(NOW), BODY, header.removeprefix("sha256="), now=NOW)
        is malformed
    )


@given(st.binary(max_size=500), st.text(min_size=1, max_size=40), st.integers(0, 2**40))
def test_round_trip_and_any_single_byte_change_fails(body: bytes, secret: str, ts: int) -> None:
    header = sign(secret, str(ts), body)
    assert verify_signature(secret, str(ts), body, header, now=ts)
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        assert verify_signature(secret, str(ts), flipped, header, now=ts) is SignatureCheck.MISMATCH


def test_body_carries_the_event_and_the_payload_verbatim() -> None:
    payload = b'{"fill_price": 45000.10, "symbol": "BTCUSDT"}'
    event = Event(
        "e1", "u1", EventType.ORDER_FILLED, Priority.CRITICAL, payload=payload, timestamp_ms=1
    )
    message = RenderedMessage("t", "x", "", "", "", "")
    body = webhook_body(event, message, 2)
    assert payload in body
    document = msgspec.json.decode(body)
    assert document["event_type"] == "ORDER_FILLED" and document["priority"] == "CRITICAL"
    assert document["attempt"] == 2 and document["title"] == "t"
    broken = Event("e2", "u1", 999, Priority.NORMAL, payload=b"\xff not json")
    document = msgspec.json.decode(webhook_body(broken, message, 1))
    assert document["payload"] is None and document["event_type"] == "EVENT_TYPE_999"
    assert "payload_error" in document
