"""Property tests: every input ends as an Envelope or a Rejection, never an exception."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.unit.test_envelope_seed import EXAMPLES
from tradewire.wire import Rejection
from tradewire.wire.envelope import (
    Envelope,
    IngestEvent,
    RejectionCode,
    decode_envelope,
    decode_many,
    encode_envelope,
)
from tradewire.wire.ingest_payloads import Execution, Money, Timestamp

SEEDS = [json.loads(text) for text in EXAMPLES]
CODES = {v for k, v in vars(RejectionCode).items() if k.isupper()}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(data: bytes | str) -> Envelope | Rejection:
    result = decode_envelope(data)
    assert isinstance(result, Envelope | Rejection)
    if isinstance(result, Rejection):
        assert result.code in CODES and result.message
    else:
        assert json.loads(encode_envelope(result)) is not None
    return result


@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    outcome(data)
    assert all(isinstance(r, Envelope | Rejection) for r in decode_many(data))


@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    outcome(json.dumps(value))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside ``value``."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found += paths(child, (*prefix, key))
    return found


def mutate(message: Any, path: tuple[Any, ...], action: str, junk: Any) -> Any:
    copy = json.loads(json.dumps(message))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if action == "drop":
        del parent[path[-1]]
    elif action == "retype":
        parent[path[-1]] = junk
    elif isinstance(parent, dict):
        parent[f"junk_{path[-1]}"] = junk
    else:
        parent.insert(path[-1], junk)
    return copy


@st.composite
def mutated_seeds(draw: st.DrawFn) -> Any:
    message = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(message)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["drop", "retype", "insert"]))
        message = mutate(message, path, action, draw(json_values))
    return message


@given(mutated_seeds())
def test_mutated_seed_messages(message: Any) -> None:
    result = outcome(json.dumps(message))
    if isinstance(result, Envelope):
        assert json.loads(encode_envelope(result)) == json.loads(json.dumps(message))


@given(st.sampled_from(EXAMPLES), st.data())
def test_truncated_seed_messages(text: str, data: st.DataObject) -> None:
    text = text.rstrip()
    cut = data.draw(st.integers(0, len(text) - 1))
    result = outcome(text[:cut])
    assert isinstance(result, Rejection)


@given(st.sampled_from(EXAMPLES), st.data())
def test_junk_inserted_in_seed_text(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(text)))
    outcome(text[:at] + data.draw(st.text(min_size=1, max_size=5)) + text[at:])


money = st.decimals(allow_nan=False, allow_infinity=False).map(Money)
timestamps = st.datetimes(timezones=st.just(dt.UTC) | st.none()).map(Timestamp.from_datetime)
names = st.text(min_size=1, max_size=12)
extras = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in Execution.__struct_encode_fields__),
    json_values.map(lambda v: json.loads(json.dumps(v), parse_float=Decimal)),
    max_size=3,
)


@st.composite
def executions(draw: st.DrawFn) -> Envelope:
    fill = Execution(
        execution_id=draw(names),
        order_id=draw(names),
        quantity=draw(money),
        price=draw(money),
        commission=draw(st.none() | money),
        exec_time=draw(timestamps),
        extra=draw(extras),
    )
    event = IngestEvent(
        run_id=draw(names),
        event_type="execution",
        event_utc=draw(timestamps),
        payload_json=fill,
    )
    return Envelope(
        msg_id=draw(names),
        msg_type="ingest_event",
        timestamp=draw(timestamps),
        source=draw(names),
        target=draw(st.none() | names),
        payload=event,
    )


@given(executions())
def test_generated_envelopes_round_trip(env: Envelope) -> None:
    encoded = encode_envelope(env)
    decoded = decode_envelope(encoded)
    assert decoded == env
    assert isinstance(decoded, Envelope)
    assert encode_envelope(decoded) == encoded


offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@given(st.sampled_from(SEEDS), st.datetimes(timezones=st.none() | offsets), st.booleans())
@example(SEEDS[0], dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), False)
@example(SEEDS[0], dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2))), True)
def test_any_iso_timestamp_is_an_envelope_or_a_rejection(
    seed: Any, when: dt.datetime, in_payload: bool
) -> None:
    """Offsets near year 1 or 9999 overflow when converted to UTC: a rejection, not a crash."""
    message = json.loads(json.dumps(seed))
    holder = message["payload"] if in_payload and "event_utc" in message["payload"] else message
    holder["event_utc" if holder is not message else "timestamp"] = when.isoformat()
    result = outcome(json.dumps(message))
    if isinstance(result, Rejection):
        assert result.field in ("timestamp", "payload.event_utc"), result
