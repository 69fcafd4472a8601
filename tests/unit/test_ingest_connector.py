"""The connector SDK's pure parts: backoff, unacked messages, reply matching, builders."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.ingest.replay import ReplaySummary, envelope_line
from tradewire.sdk.connector import (
    Acked,
    ConnectorState,
    Refused,
    backoff_delay,
    heartbeat,
    ingest_event,
    log_record,
    refusals_by_code,
)
from tradewire.wire import Envelope, decode_envelope


def ack(msg_id: str, duplicate: bool = False) -> str:
    payload = {"acknowledged_msg_id": msg_id, **({"duplicate": True} if duplicate else {})}
    return json.dumps({"msg_id": "a", "msg_type": "ack", "payload": payload})


def error(msg_id: str | None, code: str = "VALIDATION_ERROR") -> str:
    details = {"msg_id": msg_id, "field": "payload.status"}
    payload = {"code": code, "message": "fix it", "details": details}
    return json.dumps({"msg_id": "e", "msg_type": "error", "payload": payload})


def test_backoff_doubles_up_to_the_cap_within_its_jitter_band() -> None:
    assert [backoff_delay(n, jitter=1.0) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff_delay(3, jitter=0.0) == 0.4
    assert backoff_delay(100, jitter=1.0) == 10.0


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=-1, max_value=2))
def test_backoff_is_positive_bounded_and_monotonic(attempt: int, jitter: float) -> None:
    delay = backoff_delay(attempt, jitter=jitter)
    assert 0.05 <= delay <= 10.0
    assert backoff_delay(attempt + 1, jitter=1.0) >= backoff_delay(attempt, jitter=1.0)


def test_messages_stay_unacked_until_their_outcome_in_send_order() -> None:
    state = ConnectorState()
    ids = [state.submit(heartbeat(source="s"))[0] for _ in range(3)]
    assert state.unacked == 3
    outcomes, others, retry = state.receive(ack(ids[1], duplicate=True))
    assert outcomes == [Acked(ids[1], duplicate=True)] and others == [] and not retry
    assert [json.loads(f)["msg_id"] for f in state.resend()] == [ids[0], ids[2]]
    batch = "[" + ",".join([ack(ids[0]), error(ids[2])]) + "]"
    outcomes, _, _ = state.receive(batch)
    assert outcomes == [
        Acked(ids[0]),
        Refused(ids[2], "VALIDATION_ERROR", "fix it", "payload.status"),
    ]
    assert state.unacked == 0 and state.resend() == []


def test_store_unavailable_is_a_retry_not_an_outcome() -> None:
    state = ConnectorState()
    msg_id, _ = state.submit(heartbeat(source="s"))
    outcomes, others, retry = state.receive(error(msg_id, "STORE_UNAVAILABLE"))
    assert (outcomes, others, retry) == ([], [], True)
    assert state.unacked == 1


def test_frames_that_are_not_replies_are_handed_on() -> None:
    state = ConnectorState()
    routed = json.dumps({"msg_id": "x", "msg_type": "log_record", "payload": {"level": "INFO"}})
    for frame in (routed, ack("unknown-id"), error(None, "INVALID_JSON"), "not json"):
        assert state.receive(frame) == ([], [frame], False)


def test_submit_keeps_a_given_text_and_refuses_a_msg_id_in_flight() -> None:
    state = ConnectorState()
    text = '{"msg_id": "m-1", "msg_type": "heartbeat"}'
    assert state.submit(text) == ("m-1", text)
    with pytest.raises(ValueError, match="already waiting"):
        state.submit({"msg_id": "m-1"})
    msg_id, frame = state.submit({"msg_type": "heartbeat"})
    assert json.loads(frame)["msg_id"] == msg_id


def test_builders_make_valid_envelopes() -> None:
    for doc in (
        heartbeat(source="feed"),
        log_record("ERROR", "n", "m", source="feed", meta={"run_id": "r"}),
        ingest_event(
            "r",
            "order",
            {"order_id": "o", "symbol": "S", "side": "BUY", "quantity": 1},
            source="feed",
        ),
    ):
        assert isinstance(decode_envelope(json.dumps(doc)), Envelope), doc


def test_refusals_are_grouped_by_code() -> None:
    outcomes = [Acked("a"), Refused("b", "X", ""), Refused("c", "X", ""), Refused("d", "Y", "")]
    assert refusals_by_code(outcomes) == {"X": 2, "Y": 1}
    summary = ReplaySummary()
    for outcome in [*outcomes, Acked("e", duplicate=True)]:
        summary.count(outcome)
    summary.reject("INVALID_JSON", "line 3: not JSON")
    assert (summary.accepted, summary.duplicates, summary.total_rejected) == (1, 1, 4)
    assert summary.rejected == {"X": 2, "Y": 1, "INVALID_JSON": 1}


def test_a_line_without_msg_id_gets_one_derived_from_its_content() -> None:
    line = json.dumps(heartbeat(source="s") | {"msg_id": ""})
    first, again = envelope_line(line, 1), envelope_line(line, 7)
    assert isinstance(first, dict) and isinstance(again, dict)
    assert first["msg_id"] == again["msg_id"] != ""
    assert str(envelope_line("{oops", 3)).startswith("line 3: not JSON (Expecting")
    assert envelope_line("[1]", 4) == "line 4: not a JSON object"
