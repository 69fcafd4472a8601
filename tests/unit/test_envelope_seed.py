"""Every example of the socket-message seed decodes, types and round-trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import SEEDS
from tradewire.wire import Rejection
from tradewire.wire.envelope import (
    Ack,
    Envelope,
    ErrorReport,
    Heartbeat,
    IngestEvent,
    LogRecord,
    decode_envelope,
    decode_many,
    encode_envelope,
)
from tradewire.wire.ingest_payloads import (
    BatchExecution,
    BatchIngest,
    BatchOrder,
    Execution,
    InstanceUpdated,
    MarketData,
    OcoGroupCreated,
    Order,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "socket_messages.md"
SEED = SEEDS / "004_0ce3f4bc914bd4ac.txt"


def seed_examples() -> list[str]:
    """The ```json blocks of the vendored seed, in document order."""
    return re.findall(r"```json\n(.*?)```", FIXTURE.read_text(), re.DOTALL)


EXAMPLES = seed_examples()
EXPECTED_TYPES = [
    (IngestEvent, Order),
    (IngestEvent, Execution),
    (IngestEvent, MarketData),
    (LogRecord, None),
    (LogRecord, None),
    (Heartbeat, None),
    (ErrorReport, None),
    (Ack, None),
    (IngestEvent, InstanceUpdated),
    (IngestEvent, OcoGroupCreated),
    (IngestEvent, BatchIngest),
]


def decoded(text: str) -> Envelope:
    env = decode_envelope(text)
    assert isinstance(env, Envelope), env
    return env


@pytest.mark.skipif(not SEED.exists(), reason="shared seeds not present")
def test_vendored_copy_equals_shared_seed() -> None:
    assert FIXTURE.read_text() == SEED.read_text()


def test_seed_has_eleven_examples() -> None:
    assert len(EXAMPLES) == len(EXPECTED_TYPES) == 11


@pytest.mark.parametrize(("text", "types"), list(zip(EXAMPLES, EXPECTED_TYPES, strict=True)))
def test_example_decodes_to_its_model(text: str, types: tuple[type, type | None]) -> None:
    env = decoded(text)
    payload_type, data_type = types
    assert type(env.payload) is payload_type
    assert env.msg_type == json.loads(text)["msg_type"]
    if data_type is not None:
        assert isinstance(env.payload, IngestEvent)
        assert type(env.payload.payload_json) is data_type


@pytest.mark.parametrize("text", EXAMPLES)
def test_example_round_trips_to_the_same_json_value(text: str) -> None:
    assert json.loads(encode_envelope(decoded(text))) == json.loads(text)


@pytest.mark.parametrize("text", EXAMPLES)
def test_example_round_trips_byte_for_byte_when_compact(text: str) -> None:
    compact = json.dumps(json.loads(text), separators=(",", ":")).encode()
    assert encode_envelope(decoded(text)) == compact


def test_all_examples_as_a_json_array_and_as_ndjson() -> None:
    values = [json.loads(t) for t in EXAMPLES]
    as_array = decode_many(json.dumps(values))
    as_ndjson = decode_many("\n".join(json.dumps(v) for v in values))
    assert as_array == as_ndjson == [decoded(t) for t in EXAMPLES]


def test_execution_money_is_exact_decimal() -> None:
    env = decoded(EXAMPLES[1])
    assert isinstance(env.payload, IngestEvent)
    fill = env.payload.payload_json
    assert isinstance(fill, Execution)
    assert str(fill.quantity) == "0.1"
    assert str(fill.commission) == "0.045"
    assert str(fill.price) == "45000.0"


def test_batch_events_are_typed_by_event_type() -> None:
    env = decoded(EXAMPLES[10])
    assert isinstance(env.payload, IngestEvent)
    batch = env.payload.payload_json
    assert isinstance(batch, BatchIngest)
    order, fill = batch.events
    assert isinstance(order, BatchOrder) and order.order_id == "ord-500"
    assert isinstance(fill, BatchExecution) and str(fill.price) == "2800.0"


def test_market_data_target_null_is_kept() -> None:
    env = decoded(EXAMPLES[2])
    assert env.target is None
    assert b'"target":null' in encode_envelope(env)


def test_timestamps_keep_their_text_and_parse_to_utc() -> None:
    env = decoded(EXAMPLES[0])
    assert env.timestamp == "2026-01-03T12:41:00.000Z"
    assert env.timestamp.utc.isoformat() == "2026-01-03T12:41:00+00:00"


def test_rejection_is_never_returned_for_seed() -> None:
    assert not any(isinstance(decode_envelope(t), Rejection) for t in EXAMPLES)
