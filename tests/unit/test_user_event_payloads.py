"""JSON payloads of user events: decimals exact, extras kept, proto3-like defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_proto_contract import EXPECTED_MESSAGES
from tradewire.errors import WireError
from tradewire.wire import Rejection
from tradewire.wire.frames import EventType
from tradewire.wire.payloads import (
    PAYLOAD_TYPES,
    AlertEventPayload,
    BacktestEventPayload,
    EventPayload,
    OrderEventPayload,
    PositionEventPayload,
    StrategyEventPayload,
    WorkspaceEventPayload,
    decode_payload,
    encode_payload,
    payload_type,
    validate_payload,
)

MODELS: list[type[EventPayload]] = [
    OrderEventPayload,
    AlertEventPayload,
    PositionEventPayload,
    WorkspaceEventPayload,
    StrategyEventPayload,
    BacktestEventPayload,
]


def _order(data: bytes) -> OrderEventPayload:
    payload = decode_payload(EventType.ORDER_FILLED, data)
    assert isinstance(payload, OrderEventPayload), payload
    return payload


def _rejected(data: bytes, event_type: EventType = EventType.ORDER_FILLED) -> Rejection:
    result = decode_payload(event_type, data)
    assert isinstance(result, Rejection), result
    assert result.code == "INVALID_PAYLOAD"
    assert validate_payload(event_type, data) == result
    return result


# -- the event type -> model table --------------------------------------------

EXPECTED_MODEL = {
    "ORDER_": OrderEventPayload,
    "ALERT_": AlertEventPayload,
    "POSITION_": PositionEventPayload,
    "WORKSPACE_CHANGED": WorkspaceEventPayload,
    "CHART_": WorkspaceEventPayload,
    "INDICATOR_UPDATED": WorkspaceEventPayload,
    "BACKTEST_COMPLETED": BacktestEventPayload,
    "STRATEGY_": StrategyEventPayload,
    "CONTAINER_": None,
    "EVENT_ERROR": None,
}


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.name)
def test_every_event_type_has_its_model(event_type: EventType) -> None:
    expected = [m for prefix, m in EXPECTED_MODEL.items() if event_type.name.startswith(prefix)]
    assert len(expected) == 1
    assert payload_type(event_type) is expected[0]
    assert PAYLOAD_TYPES[event_type] is expected[0]


def test_the_table_covers_exactly_the_event_types() -> None:
    assert sorted(PAYLOAD_TYPES) == sorted(t.value for t in EventType)


@pytest.mark.parametrize("model", MODELS)
def test_models_have_the_seed_field_names(model: type[EventPayload]) -> None:
    names = [f.name for f in msgspec.structs.fields(model) if f.name != "extras"]
    assert names == [name for name, *_ in EXPECTED_MESSAGES[model.__name__]]


# -- decimals -----------------------------------------------------------------


def test_decimal_strings_decode_exactly() -> None:
    order = _order(b'{"fill_price": "0.1000000000000000000000001", "quantity": "2.50"}')
    assert order.fill_price == Decimal("0.1000000000000000000000001")
    assert str(order.quantity) == "2.50"


def test_json_numbers_are_accepted_exactly_never_through_float() -> None:
    order = _order(b'{"price": 0.1000000000000000055511151231257827, "quantity": 3}')
    assert str(order.price) == "0.1000000000000000055511151231257827"
    assert order.quantity == Decimal(3)


def test_null_and_absent_decimals_are_none() -> None:
    order = _order(b'{"price": null}')
    assert order.price is None and order.fill_price is None


@pytest.mark.parametrize("bad", [b'""', b'"NaN"', b'"Infinity"', b'"-Infinity"', b'"abc"', b"true"])
def test_bad_decimals_are_refused_with_their_path(bad: bytes) -> None:
    assert _rejected(b'{"fill_price": ' + bad + b"}").field == "payload.fill_price"


def test_liquidation_price_is_a_decimal() -> None:
    position = decode_payload(EventType.POSITION_LIQUIDATED, b'{"liquidation_price": "9.5"}')
    assert isinstance(position, PositionEventPayload)
    assert position.liquidation_price == Decimal("9.5")


def test_encoding_writes_decimal_strings_and_omits_defaults() -> None:
    order = OrderEventPayload(order_id="o-1", fill_price=Decimal("64000.10"), timestamp=5)
    assert encode_payload(order) == b'{"order_id":"o-1","fill_price":"64000.10","timestamp":5}'
    assert encode_payload(OrderEventPayload()) == b"{}"


def test_non_finite_decimal_cannot_be_built() -> None:
    with pytest.raises(WireError) as caught:
        OrderEventPayload(price=Decimal("NaN"))
    assert caught.value.field == "payload.price"


# -- integers -----------------------------------------------------------------


def test_int64_accepts_a_number_or_a_digit_string() -> None:
    assert _order(b'{"timestamp": 1700000000123}').timestamp == 1_700_000_000_123
    assert _order(b'{"timestamp": "1700000000123"}').timestamp == 1_700_000_000_123


@pytest.mark.parametrize("bad", [b"1.5", b'"soon"', b"9223372036854775808", b"[]"])
def test_bad_int64_is_refused(bad: bytes) -> None:
    assert _rejected(b'{"timestamp": ' + bad + b"}").field == "payload.timestamp"


def test_int32_bounds() -> None:
    ok = decode_payload(EventType.BACKTEST_COMPLETED, b'{"total_trades": 2147483647}')
    assert isinstance(ok, BacktestEventPayload) and ok.total_trades == 2**31 - 1
    bad = _rejected(b'{"total_trades": 2147483648}', EventType.BACKTEST_COMPLETED)
    assert bad.field == "payload.total_trades"


# -- strings, defaults, shape -------------------------------------------------


def test_null_means_the_default() -> None:
    order = _order(b'{"symbol": null, "timestamp": null}')
    assert (order.symbol, order.timestamp) == ("", 0)


def test_wrong_type_names_the_field() -> None:
    rejection = _rejected(b'{"symbol": 5}')
    assert rejection.field == "payload.symbol"
    assert "null" not in rejection.message


@pytest.mark.parametrize("bad", [b"[]", b'"x"', b"1", b"{", b'{"a": 1} x', b"\xff"])
def test_payload_must_be_one_json_object(bad: bytes) -> None:
    assert _rejected(bad).field == "payload"


def test_empty_payload_is_the_empty_object() -> None:
    assert decode_payload(EventType.ORDER_FILLED, b"") == OrderEventPayload()
    assert decode_payload(EventType.CONTAINER_READY, b"") == {}
    assert validate_payload(EventType.ORDER_FILLED, b"") is None


def test_system_events_carry_a_free_json_object() -> None:
    data = b'{"version": "1.2", "nested": {"a": [1, null]}}'
    decoded = decode_payload(EventType.CONTAINER_STARTING, data)
    assert decoded == {"version": "1.2", "nested": {"a": [1, None]}}
    assert isinstance(decoded, dict)
    assert encode_payload(decoded) == b'{"version":"1.2","nested":{"a":[1,null]}}'
    assert _rejected(b"[1]", EventType.EVENT_ERROR).field == "payload"


# -- extras -------------------------------------------------------------------


def test_unknown_fields_are_kept_verbatim_and_written_back() -> None:
    data = b'{"order_id": "o-1", "venue_fee": 0.10, "tags": ["a", {"b": null}], "extras": 1}'
    order = _order(data)
    assert {k: bytes(v) for k, v in order.extras.items()} == {
        "venue_fee": b"0.10",
        "tags": b'["a", {"b": null}]',
        "extras": b"1",
    }
    assert (
        encode_payload(order)
        == b'{"order_id":"o-1","venue_fee":0.10,"tags":["a", {"b": null}],"extras":1}'
    )


def test_extras_may_not_shadow_a_known_field() -> None:
    with pytest.raises(WireError):
        OrderEventPayload(extras={"price": msgspec.Raw(b'"1"')})


# -- properties ---------------------------------------------------------------

finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def _field_strategy(annotation: Any) -> st.SearchStrategy[Any]:
    if Decimal in get_args(annotation):
        return st.none() | finite_decimals
    if annotation is str:
        return st.text()
    low, high = (-(2**31), 2**31 - 1) if "2147483647" in repr(annotation) else (-(2**63), 2**63 - 1)
    return st.integers(min_value=low, max_value=high)


@st.composite
def payloads(draw: st.DrawFn, model: type[EventPayload] | None = None) -> EventPayload:
    chosen: type[EventPayload] = model or draw(st.sampled_from(MODELS))
    fields = [f for f in msgspec.structs.fields(chosen) if f.name != "extras"]
    values = {f.name: draw(_field_strategy(f.type)) for f in fields}
    known = {f.name for f in fields}
    extras = draw(
        st.dictionaries(
            st.text().filter(lambda k: k not in known),
            json_values.map(lambda v: msgspec.Raw(msgspec.json.encode(v))),
            max_size=4,
        )
    )
    return chosen(extras=extras, **values)


def _event_type_of(model: type[EventPayload]) -> int:
    return next(t for t, m in PAYLOAD_TYPES.items() if m is model)


def _decimal_texts(payload: EventPayload) -> dict[str, str]:
    return {
        name: str(value)
        for name in payload.__struct_fields__
        if isinstance(value := getattr(payload, name), Decimal)
    }


@given(payloads())
def test_payload_round_trip_keeps_decimals_exact_and_extras(payload: EventPayload) -> None:
    decoded = decode_payload(_event_type_of(type(payload)), encode_payload(payload))
    assert decoded == payload
    assert isinstance(decoded, EventPayload)
    assert _decimal_texts(decoded) == _decimal_texts(payload)
    assert {k: bytes(v) for k, v in decoded.extras.items()} == {
        k: bytes(v) for k, v in payload.extras.items()
    }


@given(finite_decimals)
def test_any_finite_decimal_number_literal_decodes_exactly(value: Decimal) -> None:
    order = _order(b'{"price": ' + str(value).encode() + b"}")
    assert str(order.price) == str(value)


@given(st.sampled_from(list(EventType)), st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_validate_agrees(
    event_type: EventType, data: bytes
) -> None:
    _check_agreement(event_type, data)


@given(
    st.sampled_from(list(EventType)),
    st.dictionaries(
        st.sampled_from(["price", "timestamp", "symbol", "total_trades", "size", "x"]) | st.text(),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_json_objects_never_raise(event_type: EventType, document: Any) -> None:
    _check_agreement(event_type, msgspec.json.encode(document))


def _check_agreement(event_type: EventType, data: bytes) -> None:
    decoded = decode_payload(event_type, data)
    checked = validate_payload(event_type, data)
    if isinstance(decoded, Rejection):
        assert checked == decoded
    else:
        assert checked is None
        assert isinstance(encode_payload(decoded), bytes)
