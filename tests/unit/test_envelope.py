"""Envelope decoding rules, rejection codes and field paths, replies, extras."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.test_envelope_seed import EXAMPLES
from tradewire.wire import Rejection
from tradewire.wire.envelope import (
    MAX_DEPTH,
    Ack,
    Envelope,
    ErrorReport,
    IngestEvent,
    RejectionCode,
    decode_envelope,
    decode_many,
    encode_envelope,
    make_ack,
    make_error,
)
from tradewire.wire.ingest_payloads import (
    AccountUpdate,
    Execution,
    Money,
    Order,
    PositionUpdate,
    StrategyEvent,
    SystemEvent,
    Timestamp,
)

ORDER, EXECUTION, BAR = (json.loads(EXAMPLES[i]) for i in range(3))
BATCH = json.loads(EXAMPLES[10])
NOW = dt.datetime(2026, 1, 3, 12, 41, 35, tzinfo=dt.UTC)


def rejected(message: Any) -> Rejection:
    result = decode_envelope(json.dumps(message) if not isinstance(message, bytes) else message)
    assert isinstance(result, Rejection), result
    return result


def accepted(message: Any) -> Envelope:
    result = decode_envelope(json.dumps(message))
    assert isinstance(result, Envelope), result
    return result


def with_json(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of an ingest ``message`` with ``payload_json`` keys changed (None drops)."""
    copy = json.loads(json.dumps(message))
    data = copy["payload"]["payload_json"]
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return copy


# --- rejection codes -------------------------------------------------------------


@pytest.mark.parametrize("text", [b"{", b"", b"not json", b'{"a":1} x', b"\xff\xfe"])
def test_invalid_json(text: bytes) -> None:
    r = rejected(text)
    assert r.code == RejectionCode.INVALID_JSON
    assert "not valid JSON" in r.message


@pytest.mark.parametrize("value", [[1], 5, "x", None, [ORDER]])
def test_not_an_object_is_invalid_message(value: Any) -> None:
    r = rejected(value)
    assert (r.code, r.field) == (RejectionCode.INVALID_MESSAGE, None)
    assert "msg_id, msg_type, timestamp, source, target and payload" in r.message


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("msg_id", 5, "msg_id"),
        ("msg_id", "", "msg_id"),
        ("timestamp", "yesterday", "timestamp"),
        ("source", None, "source"),
        ("target", 3, "target"),
        ("payload", [], "payload"),
    ],
)
def test_envelope_field_errors_are_invalid_message(key: str, value: Any, field: str) -> None:
    r = rejected({**ORDER, key: value})
    assert (r.code, r.field) == (RejectionCode.INVALID_MESSAGE, field)
    assert f"`{field}`" in r.message


def test_missing_envelope_field_names_it_and_keeps_msg_id() -> None:
    message = dict(ORDER)
    del message["source"]
    r = rejected(message)
    assert (r.code, r.field, r.msg_id) == (RejectionCode.INVALID_MESSAGE, "source", ORDER["msg_id"])
    assert "missing" in r.message


def test_unknown_msg_type() -> None:
    r = rejected({**ORDER, "msg_type": "ingest"})
    assert (r.code, r.field, r.msg_id) == (
        RejectionCode.UNKNOWN_MSG_TYPE,
        "msg_type",
        ORDER["msg_id"],
    )
    assert "ingest_event" in r.message


def test_unknown_event_type() -> None:
    message = json.loads(json.dumps(ORDER))
    message["payload"]["event_type"] = "trade"
    r = rejected(message)
    assert (r.code, r.field) == (RejectionCode.UNKNOWN_EVENT_TYPE, "payload.event_type")
    assert "position_update" in r.message


def test_unknown_event_type_inside_a_batch() -> None:
    message = json.loads(json.dumps(BATCH))
    message["payload"]["payload_json"]["events"][1]["event_type"] = "fill"
    r = rejected(message)
    assert r.code == RejectionCode.UNKNOWN_EVENT_TYPE
    assert r.field == "payload.payload_json.events[1].event_type"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"quantity": "NaN"}, "payload.payload_json.quantity", "JSON number"),
        ({"quantity": True}, "payload.payload_json.quantity", "JSON number"),
        ({"quantity": None}, "payload.payload_json.quantity", "missing"),
        ({"price": [1]}, "payload.payload_json.price", "JSON number"),
        ({"order_id": 456}, "payload.payload_json.order_id", "a string"),
    ],
)
def test_validation_error_paths(changes: dict[str, Any], field: str, words: str) -> None:
    r = rejected(with_json(EXECUTION, **changes))
    assert (r.code, r.field, r.msg_id) == (
        RejectionCode.VALIDATION_ERROR,
        field,
        EXECUTION["msg_id"],
    )
    assert words in r.message and "resend" in r.message


def test_validation_error_in_nested_bar_and_batch() -> None:
    bar = with_json(BAR)
    bar["payload"]["payload_json"]["bar"]["ts_utc"] = "12:41"
    assert rejected(bar).field == "payload.payload_json.bar.ts_utc"
    batch = json.loads(json.dumps(BATCH))
    del batch["payload"]["payload_json"]["events"][0]["order_id"]
    assert rejected(batch).field == "payload.payload_json.events[0].order_id"


def test_validation_error_in_payload_fields() -> None:
    message = json.loads(json.dumps(ORDER))
    message["payload"]["run_id"] = 123
    r = rejected(message)
    assert (r.code, r.field) == (RejectionCode.VALIDATION_ERROR, "payload.run_id")
    message = json.loads(EXAMPLES[7])
    message["payload"] = {}
    r = rejected(message)
    assert (r.code, r.field) == (RejectionCode.VALIDATION_ERROR, "payload.acknowledged_msg_id")


def test_payload_json_must_be_an_object() -> None:
    message = json.loads(json.dumps(ORDER))
    message["payload"]["payload_json"] = [1, 2]
    r = rejected(message)
    assert (r.code, r.field) == (RejectionCode.VALIDATION_ERROR, "payload.payload_json")


def test_payload_too_large() -> None:
    text = json.dumps(ORDER).encode()
    r = decode_envelope(text, max_bytes=len(text) - 1)
    assert isinstance(r, Rejection) and r.code == RejectionCode.PAYLOAD_TOO_LARGE
    assert str(len(text)) in r.message
    assert isinstance(decode_envelope(text, max_bytes=len(text)), Envelope)


def test_nesting_too_deep_before_parsing() -> None:
    r = decode_envelope(b"[" * 10_000_000, max_bytes=20_000_000)
    assert isinstance(r, Rejection) and r.code == RejectionCode.NESTING_TOO_DEEP


def test_nesting_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    log = json.loads(EXAMPLES[3])
    log["payload"]["meta"] = {"x": nested(MAX_DEPTH - 3), "s": "[[[[" * 100}
    assert isinstance(decode_envelope(json.dumps(log)), Envelope)
    log["payload"]["meta"] = {"x": nested(MAX_DEPTH - 2)}
    assert rejected(log).code == RejectionCode.NESTING_TOO_DEEP


# --- rules: extras, money, timestamps ---------------------------------------------


def test_unknown_fields_are_kept_at_every_level_and_round_trip() -> None:
    message = with_json(EXECUTION, venue_fill_id="f-1", fee_tier={"bps": 1.5})
    message["routing"] = {"hops": [1, 2]}
    message["payload"]["connector_seq"] = 77
    env = accepted(message)
    assert env.extra == {"routing": {"hops": [1, 2]}}
    assert isinstance(env.payload, IngestEvent)
    assert env.payload.extra == {"connector_seq": 77}
    fill = env.payload.payload_json
    assert fill.extra == {"venue_fill_id": "f-1", "fee_tier": {"bps": Decimal("1.5")}}
    assert json.loads(encode_envelope(env)) == message


def test_extras_in_nested_batch_events_and_bars_round_trip() -> None:
    batch = json.loads(json.dumps(BATCH))
    batch["payload"]["payload_json"]["events"][0]["client_tag"] = "t"
    bar = with_json(BAR)
    bar["payload"]["payload_json"]["bar"]["open_interest"] = None
    for message in (batch, bar):
        assert json.loads(encode_envelope(accepted(message))) == message


def test_a_connector_key_named_like_the_internal_extra_key_round_trips() -> None:
    message = with_json(ORDER, __extra__={"a": 1})
    env = accepted(message)
    assert env.payload.payload_json.extra == {"__extra__": {"a": 1}}  # type: ignore[union-attr]
    assert json.loads(encode_envelope(env)) == message


def test_money_decodes_exactly_and_encodes_as_a_number() -> None:
    digits = "0.100000000000000000000000000001"
    text = json.dumps(with_json(EXECUTION, quantity=0)).replace(
        '"quantity": 0', f'"quantity": {digits}'
    )
    env = decode_envelope(text)
    assert isinstance(env, Envelope) and isinstance(env.payload, IngestEvent)
    assert env.payload.payload_json.quantity == Decimal(digits)  # type: ignore[union-attr]
    assert f'"quantity":{digits}'.encode() in encode_envelope(env)


def test_quantower_dust_fill_and_naive_timestamp() -> None:
    message = with_json(EXECUTION, quantity=1.110223024625e-16, exec_time="2025-11-20 15:11:00.5")
    env = accepted(message)
    fill = env.payload.payload_json  # type: ignore[union-attr]
    assert isinstance(fill, Execution)
    assert fill.quantity == Decimal("1.110223024625E-16")
    assert isinstance(fill.exec_time, Timestamp)
    assert fill.exec_time == "2025-11-20 15:11:00.5"
    assert fill.exec_time.utc == dt.datetime(2025, 11, 20, 15, 11, 0, 500000, tzinfo=dt.UTC)
    assert json.loads(encode_envelope(env)) == message


def test_timestamp_with_offset_converts_to_utc() -> None:
    assert Timestamp("2026-01-03T14:41:00+02:00").utc == dt.datetime(
        2026, 1, 3, 12, 41, tzinfo=dt.UTC
    )
    assert Timestamp.from_datetime(NOW) == "2026-01-03T12:41:35.000Z"


@pytest.mark.parametrize(
    ("event_type", "data", "model"),
    [
        ("account_update", {"account_id": "A1", "balance": 1000.5, "equity": 990}, AccountUpdate),
        (
            "position_update",
            {"symbol": "BTCUSDT", "side": "LONG", "quantity": 0.5, "avg_price": 45000.1},
            PositionUpdate,
        ),
        ("strategy_event", {"event": "run_started", "note": "x"}, StrategyEvent),
        ("system_event", {"event": "connector_restarted"}, SystemEvent),
        ("order", {"event": "order_updated", **ORDER["payload"]["payload_json"]}, Order),
    ],
)
def test_other_payload_shapes(event_type: str, data: dict[str, Any], model: type) -> None:
    message = json.loads(json.dumps(ORDER))
    message["payload"].update(event_type=event_type, payload_json=data)
    env = accepted(message)
    assert type(env.payload.payload_json) is model  # type: ignore[union-attr]
    assert json.loads(encode_envelope(env)) == message


def test_strategy_event_needs_an_event_name() -> None:
    message = json.loads(json.dumps(ORDER))
    message["payload"].update(event_type="strategy_event", payload_json={"x": 1})
    assert rejected(message).field == "payload.payload_json.event"


def test_target_must_be_present_but_may_be_null() -> None:
    message = dict(ORDER)
    del message["target"]
    assert rejected(message).field == "target"
    assert accepted({**ORDER, "target": None}).target is None


def test_envelope_rejects_a_payload_that_does_not_match_msg_type() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        Envelope(
            msg_id="m",
            msg_type="heartbeat",
            timestamp=Timestamp("2026-01-03"),
            source="s",
            target=None,
            payload=Ack(acknowledged_msg_id="x"),
        )


# --- decode_many -----------------------------------------------------------------


def test_decode_many_keeps_good_messages_around_bad_ones() -> None:
    lines = [json.dumps(ORDER), "{bad", json.dumps(EXECUTION), "[1]", json.dumps(BAR)]
    results = decode_many("\n".join(lines) + "\n")
    kinds = [r.code if isinstance(r, Rejection) else "ok" for r in results]
    assert kinds == ["ok", "INVALID_JSON", "ok", "INVALID_MESSAGE", "ok"]


def test_decode_many_array_with_a_bad_element() -> None:
    results = decode_many(json.dumps([ORDER, {"msg_id": "x"}, 7, EXECUTION]))
    assert isinstance(results[0], Envelope) and isinstance(results[3], Envelope)
    assert [r.code for r in results[1:3]] == ["INVALID_MESSAGE", "INVALID_MESSAGE"]  # type: ignore[union-attr]
    assert results[1].msg_id == "x"  # type: ignore[union-attr]


def test_decode_many_single_pretty_printed_envelope_and_edge_cases() -> None:
    assert decode_many(EXAMPLES[0]) == [decode_envelope(EXAMPLES[0])]
    assert [r.code for r in decode_many(EXAMPLES[0][:-20])] == ["INVALID_JSON"]  # type: ignore[union-attr]
    assert decode_many("[]") == []
    assert [r.code for r in decode_many("  ")] == ["INVALID_JSON"]  # type: ignore[union-attr]
    assert [r.code for r in decode_many("x" * 20, max_bytes=10)] == ["PAYLOAD_TOO_LARGE"]  # type: ignore[union-attr]


# --- replies ----------------------------------------------------------------------


def test_make_ack_matches_the_seed_shape() -> None:
    ack = make_ack(ORDER["msg_id"], target="quantower-connector", msg_id="a-1", now=NOW)
    assert json.loads(encode_envelope(ack)) == {
        "msg_id": "a-1",
        "msg_type": "ack",
        "timestamp": "2026-01-03T12:41:35.000Z",
        "source": "api-gateway",
        "target": "quantower-connector",
        "payload": {
            "acknowledged_msg_id": ORDER["msg_id"],
            "timestamp": "2026-01-03T12:41:35.000Z",
        },
    }
    assert decode_envelope(encode_envelope(ack)) == ack


def test_make_error_carries_code_message_and_field() -> None:
    rejection = rejected(with_json(EXECUTION, quantity="NaN"))
    error = make_error(rejection, target="quantower-connector", msg_id="e-1", now=NOW)
    body = json.loads(encode_envelope(error))
    assert body["msg_type"] == "error" and body["target"] == "quantower-connector"
    assert body["payload"] == {
        "code": "VALIDATION_ERROR",
        "message": rejection.message,
        "details": {"msg_id": EXECUTION["msg_id"], "field": "payload.payload_json.quantity"},
    }
    assert isinstance(error.payload, ErrorReport)
    assert decode_envelope(encode_envelope(error)) == error


def test_make_ack_defaults_to_fresh_id_and_now() -> None:
    ack = make_ack("m")
    assert ack.msg_id and ack.target is None
    assert abs(ack.timestamp.utc - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_money_type_is_a_decimal() -> None:
    assert Money("0.1") + Decimal("0.2") == Decimal("0.3")
