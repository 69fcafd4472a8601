"""The routing hub (pure): control messages, targeted and topic delivery, bounds, users."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_envelope_seed import EXAMPLES
from tradewire.ingest.routing import Control, Hub, Subscriber, parse_control, topics_of
from tradewire.store import AppendResult, Refusal, StoredRecord
from tradewire.wire import Envelope, Rejection, decode_envelope

SEED = [json.loads(text) for text in EXAMPLES]
ORDER, INFO_LOG, HEARTBEAT = SEED[0], SEED[3], SEED[5]


def envelope(doc: dict[str, Any], **changes: Any) -> Envelope:
    decoded = decode_envelope(json.dumps({**doc, **changes}))
    assert isinstance(decoded, Envelope), decoded
    return decoded


def stored(user: str = "alice", *, duplicate: bool = False, refused: bool = False) -> AppendResult:
    record = StoredRecord(
        seq=1, stream="ingest", key="k", body=b"{}", kind="x", created_at_ms=0, user_id=user
    )
    refusal = Refusal(code="NOPE", message="no") if refused else None
    return AppendResult(record, duplicate, refusal)


def client(
    hub: Hub, name: str | None, *topics: str, user: str = "alice", cap: int = 8
) -> Subscriber:
    sub = Subscriber(name=name, user_id=user, capacity=cap)
    sub.topics.update(topics)
    hub.attach(sub)
    return sub


def control(msg_type: str, *topics: str) -> str:
    return json.dumps({"msg_id": "c-1", "msg_type": msg_type, "payload": {"topics": list(topics)}})


# --- control messages ----------------------------------------------------------------


def test_parse_control_recognises_only_control_messages() -> None:
    parsed = parse_control(control("subscribe", "logs"))
    assert isinstance(parsed, Control) and parsed.payload.topics == ["logs"]
    assert parse_control(EXAMPLES[0]) is None
    assert parse_control('{"note": "subscribe"}') is None  # the word alone is not enough
    bad = parse_control('{"msg_id": "c-2", "msg_type": "subscribe", "payload": {}}')
    assert isinstance(bad, Rejection)
    assert (bad.code, bad.field, bad.msg_id) == ("INVALID_MESSAGE", "payload.topics", "c-2")


def test_subscribe_unsubscribe_and_unknown_topics() -> None:
    hub = Hub()
    sub = client(hub, "dash")
    reply = json.loads(hub.control(sub, parse_control(control("subscribe", "logs", "run:r1"))))  # type: ignore[arg-type]
    assert reply["msg_type"] == "ack" and reply["payload"]["acknowledged_msg_id"] == "c-1"
    assert sub.topics == {"logs", "run:r1"}
    hub.control(sub, parse_control(control("unsubscribe", "logs")))  # type: ignore[arg-type]
    assert sub.topics == {"run:r1"}
    for topic in ("trades", "run:"):
        reply = json.loads(hub.control(sub, parse_control(control("subscribe", topic))))  # type: ignore[arg-type]
        assert reply["payload"]["code"] == "UNKNOWN_TOPIC", topic
    assert sub.topics == {"run:r1"}


def test_topics_of_each_message_type() -> None:
    assert topics_of(envelope(ORDER)) == ["ingest_events", "run:run-123"]
    assert topics_of(envelope(INFO_LOG)) == ["logs", "run:run-123"]
    assert topics_of(envelope(HEARTBEAT)) == ["health"]
    assert topics_of(envelope(SEED[6])) == ["errors"]


# --- delivery ------------------------------------------------------------------------


def test_a_targeted_message_goes_to_the_named_client_only() -> None:
    hub = Hub()
    sender, named = client(hub, "connector"), client(hub, "log-aggregator", "logs")
    bystander = client(hub, "other", "logs")
    assert hub.publish(envelope(INFO_LOG), b"LOG", stored(), origin=sender) == 1
    assert list(named.outbox) == [b"LOG"] and not bystander.outbox and not sender.outbox


def test_a_target_nobody_holds_or_the_gateway_is_consumed_silently() -> None:
    hub = Hub()
    listener = client(hub, "x", "ingest_events")
    assert hub.publish(envelope(ORDER), b"O", stored(), origin=None) == 0  # api-gateway
    assert hub.publish(envelope(ORDER, target="gone"), b"O", stored(), origin=None) == 0
    assert not listener.outbox


def test_a_null_target_reaches_every_subscriber_of_its_topics_but_the_sender() -> None:
    hub = Hub()
    sender = client(hub, "feed", "ingest_events")
    events, run = client(hub, "a", "ingest_events"), client(hub, "b", "run:run-123")
    other_run, logs = client(hub, "c", "run:run-9"), client(hub, "d", "logs")
    both = client(hub, "e", "ingest_events", "run:run-123")
    assert hub.publish(envelope(ORDER, target=None), b"O", stored(), origin=sender) == 3
    assert [list(s.outbox) for s in (events, run, both)] == [[b"O"]] * 3
    assert not sender.outbox and not other_run.outbox and not logs.outbox


def test_duplicates_refusals_and_acks_are_never_routed() -> None:
    hub = Hub()
    listener = client(hub, "x", "ingest_events", "errors")
    msg = envelope(ORDER, target=None)
    assert hub.publish(msg, b"O", stored(duplicate=True), origin=None) == 0
    assert hub.publish(msg, b"O", stored(refused=True), origin=None) == 0
    assert hub.publish(envelope(SEED[7], target="x"), b"A", stored(), origin=None) == 0
    assert not listener.outbox


def test_routing_never_crosses_users() -> None:
    hub = Hub()
    alices = client(hub, "dash", "logs")
    bobs = client(hub, "dash", "logs", user="bob")
    assert hub.publish(envelope(INFO_LOG, target=None), b"L", stored("bob"), origin=None) == 1
    assert hub.publish(envelope(INFO_LOG, target="dash"), b"T", stored("bob"), origin=None) == 1
    assert list(bobs.outbox) == [b"L", b"T"] and not alices.outbox
    hub.detach(bobs)
    assert hub.named("alice", "dash") is alices and hub.named("bob", "dash") is None


def test_a_full_outbox_drops_and_counts_without_affecting_others() -> None:
    hub = Hub()
    slow, fast = client(hub, "slow", "logs", cap=2), client(hub, "fast", "logs", cap=100)
    for n in range(5):
        hub.broadcast(str(n).encode(), ["logs"], user_id="alice")
    assert list(slow.outbox) == [b"0", b"1"] and slow.dropped == 3
    assert len(fast.outbox) == 5 and fast.dropped == 0


def test_a_connection_is_named_after_its_first_source_unless_named() -> None:
    hub = Hub()
    anonymous, named = client(hub, None), client(hub, "given")
    hub.name_connection(anonymous, "feed")
    hub.name_connection(anonymous, "other")
    hub.name_connection(named, "feed-2")
    assert (anonymous.name, named.name) == ("feed", "given")
    assert hub.named("alice", "feed") is anonymous and hub.connected == 2


@pytest.mark.parametrize("kind", ["heartbeat", "ingest_event"])
def test_heartbeat_sinks_hear_committed_heartbeats_also_resent(kind: str) -> None:
    hub, heard = Hub(), []
    hub.heartbeat_sinks.append(lambda source, user: heard.append((source, user)))
    doc = HEARTBEAT if kind == "heartbeat" else ORDER
    hub.publish(envelope(doc), b"H", stored(duplicate=True), origin=None)
    hub.publish(envelope(doc), b"H", stored(refused=True), origin=None)
    expected = [("quantower-connector", "alice")] if kind == "heartbeat" else []
    assert heard == expected
