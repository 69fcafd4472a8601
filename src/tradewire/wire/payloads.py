"""Typed JSON payloads carried in ``UserEvent.payload``.

Theory of operation
-------------------
The seed defines the ``*EventPayload`` messages "for documentation"; on the
wire a payload is a JSON object with the seed's field names. Each model here
is an immutable msgspec Struct with every seed field optional and a
proto3-like default (``""``, ``0``; ``None`` for a decimal). Rules:

* Decimal-string fields (money, sizes, ratios) decode to ``decimal.Decimal``
  exactly, never through ``float``. A JSON string is the canonical form; a
  JSON number is accepted too and parsed exactly from its text. ``null`` or an
  absent key is ``None``; an empty string, ``NaN`` and infinities are refused.
  Encoding always writes a decimal string (``str(Decimal)``).
* ``int64`` / ``int32`` fields are JSON integers; a decimal-digit string is
  accepted too (proto3's JSON mapping writes int64 as a string). Encoding
  writes numbers.
* ``null`` for any field means its default. Fields equal to their default are
  omitted when encoding, as proto3's JSON mapping does.
* Unknown keys are kept, byte for byte, in ``extras`` (``msgspec.Raw``) and
  written back after the known fields: a newer container's fields survive a
  hop through this gateway.

Each model has a private *wire* twin (same fields, each also accepting
``null``, no ``extras``) that msgspec decodes in C; :func:`validate_payload`
only runs that decode, so the frame hot path never builds the domain value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeAlias, get_args

import msgspec

from tradewire.errors import WireError
from tradewire.wire._pb import user_events_pb2 as _pb
from tradewire.wire._rejection import Rejection

__all__ = [
    "PAYLOAD_TYPES",
    "AlertEventPayload",
    "BacktestEventPayload",
    "EventPayload",
    "Int32",
    "Int64",
    "OrderEventPayload",
    "Payload",
    "PositionEventPayload",
    "StrategyEventPayload",
    "WorkspaceEventPayload",
    "decode_payload",
    "encode_payload",
    "payload_type",
    "validate_payload",
]

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""A proto ``int64`` (Unix milliseconds and the like)."""
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
"""A proto ``int32`` (trade counts)."""


class EventPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the typed payloads: holds the unknown keys, kept verbatim."""

    extras: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_extras(self)
        _check_decimals(self)


class OrderEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``ORDER_*`` events."""

    order_id: str = ""
    symbol: str = ""
    side: str = ""
    order_type: str = ""
    quantity: Decimal | None = None
    price: Decimal | None = None
    fill_price: Decimal | None = None
    fill_quantity: Decimal | None = None
    status: str = ""
    exchange: str = ""
    timestamp: Int64 = 0
    strategy_id: str = ""
    error_message: str = ""


class AlertEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``ALERT_*`` events."""

    alert_id: str = ""
    symbol: str = ""
    condition: str = ""
    triggered_price: Decimal | None = None
    timestamp: Int64 = 0


class PositionEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``POSITION_*`` events.

    ``liquidation_price`` is a plain string in the seed with no "Decimal
    string" note; it is a price, so it is decoded as a decimal like the others.
    """

    position_id: str = ""
    symbol: str = ""
    side: str = ""
    size: Decimal | None = None
    entry_price: Decimal | None = None
    current_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    leverage: Decimal | None = None
    liquidation_price: Decimal | None = None
    exchange: str = ""
    timestamp: Int64 = 0


class WorkspaceEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``WORKSPACE_CHANGED``, ``CHART_ANNOTATION_*``, ``INDICATOR_UPDATED``.

    ``annotation_data`` and ``indicator_params`` are JSON *strings* in the
    seed and stay strings here.
    """

    workspace_id: str = ""
    change_type: str = ""
    symbol: str = ""
    timeframe: str = ""
    annotation_id: str = ""
    annotation_type: str = ""
    annotation_data: str = ""
    indicator_name: str = ""
    indicator_params: str = ""
    timestamp: Int64 = 0


class StrategyEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``STRATEGY_STARTED/STOPPED/LOG/ERROR`` events."""

    strategy_id: str = ""
    strategy_name: str = ""
    log_level: str = ""
    message: str = ""
    details: str = ""
    timestamp: Int64 = 0


class BacktestEventPayload(EventPayload, frozen=True, kw_only=True):
    """Payload of ``BACKTEST_COMPLETED``."""

    backtest_id: str = ""
    strategy_id: str = ""
    strategy_name: str = ""
    symbol: str = ""
    timeframe: str = ""
    start_time: Int64 = 0
    end_time: Int64 = 0
    total_trades: Int32 = 0
    winning_trades: Int32 = 0
    losing_trades: Int32 = 0
    total_pnl: Decimal | None = None
    win_rate: Decimal | None = None
    sharpe_ratio: Decimal | None = None
    max_drawdown: Decimal | None = None
    results_path: str = ""
    completed_at: Int64 = 0


Payload: TypeAlias = EventPayload | dict[str, Any]
"""A decoded payload: a typed model, or a free JSON object for system events."""


def _model_for(event_type_name: str) -> type[EventPayload] | None:
    """The payload rule of the brief, by the seed's ``EventType`` names."""
    if event_type_name == "BACKTEST_COMPLETED":
        return BacktestEventPayload
    if event_type_name == "WORKSPACE_CHANGED" or event_type_name.startswith(
        ("CHART_", "INDICATOR_")
    ):
        return WorkspaceEventPayload
    for prefix, model in _BY_PREFIX:
        if event_type_name.startswith(prefix):
            return model
    return None  # system events: CONTAINER_*, EVENT_ERROR


_BY_PREFIX: Final[tuple[tuple[str, type[EventPayload]], ...]] = (
    ("ORDER_", OrderEventPayload),
    ("ALERT_", AlertEventPayload),
    ("POSITION_", PositionEventPayload),
    ("STRATEGY_", StrategyEventPayload),
)

PAYLOAD_TYPES: Final[Mapping[int, type[EventPayload] | None]] = MappingProxyType(
    {v.number: _model_for(v.name) for v in _pb.DESCRIPTOR.enum_types_by_name["EventType"].values}
)
"""Payload model by ``EventType`` number (an ``EventType`` member works as the
key); ``None`` means a free JSON object (system events)."""


class _Codec:
    """The compiled pieces for one payload model."""

    __slots__ = ("decimals", "known", "model", "wire")

    def __init__(self, model: type[EventPayload]) -> None:
        fields = [f for f in msgspec.structs.fields(model) if f.name != "extras"]
        self.model = model
        self.known = frozenset(f.encode_name for f in fields)
        self.decimals = tuple(f.name for f in fields if Decimal in get_args(f.type))
        wire_type = msgspec.defstruct(
            f"_{model.__name__}Wire",
            [(f.name, f.type | None, None) for f in fields],
            frozen=True,
            kw_only=True,
        )
        self.wire = msgspec.json.Decoder(wire_type, strict=False)


_CODECS: Final = {m: _Codec(m) for m in {m for m in PAYLOAD_TYPES.values() if m}}
_OBJECT = msgspec.json.Decoder(dict[str, Any])
_RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_ERROR_PATH = re.compile(r" - at `\$(.*)`$")
_DECODE_ERRORS = (msgspec.MsgspecError, UnicodeDecodeError)


def payload_type(event_type: int) -> type[EventPayload] | None:
    """The payload model of ``event_type`` (``None``: free JSON object).

    Raises ``KeyError`` for a number that is not an ``EventType``.
    """
    return PAYLOAD_TYPES[event_type]


def validate_payload(event_type: int, data: bytes) -> Rejection | None:
    """Check ``data`` is a valid payload for ``event_type``; ``None`` if it is.

    The lean check the frame decoder runs: one msgspec decode into the wire
    twin, no domain value built. Empty bytes are the empty object.
    """
    if not data:
        return None
    model = PAYLOAD_TYPES.get(event_type)
    try:
        if model is None:
            _OBJECT.decode(data)
            return None
        codec = _CODECS[model]
        return _non_finite(codec, codec.wire.decode(data))
    except _DECODE_ERRORS as exc:
        return _invalid(exc)


def decode_payload(event_type: int, data: bytes) -> Payload | Rejection:
    """Decode ``data`` into the payload model of ``event_type``.

    Returns the model (unknown keys in ``extras``), a ``dict`` for system
    events, or a ``Rejection`` (``INVALID_PAYLOAD``, ``field`` is the path
    inside the payload such as ``payload.fill_price``).
    """
    model = PAYLOAD_TYPES.get(event_type)
    try:
        if model is None:
            return _OBJECT.decode(data) if data else {}
        return _decode_model(_CODECS[model], data) if data else model()
    except _DECODE_ERRORS as exc:
        return _invalid(exc)


def _decode_model(codec: _Codec, data: bytes) -> EventPayload | Rejection:
    wire = codec.wire.decode(data)
    rejection = _non_finite(codec, wire)
    if rejection is not None:
        return rejection
    raw = _RAW_OBJECT.decode(data)
    extras = {k: v for k, v in raw.items() if k not in codec.known}
    values = msgspec.structs.asdict(wire)
    return codec.model(extras=extras, **{k: v for k, v in values.items() if v is not None})


def encode_payload(payload: Payload) -> bytes:
    """Encode a payload as JSON: decimals as strings, defaults omitted, extras kept."""
    if isinstance(payload, dict):
        return _ENCODER.encode(payload)
    document: dict[str, Any] = {}
    for field in msgspec.structs.fields(payload):
        value = getattr(payload, field.name)
        if field.name != "extras" and value != field.default:
            document[field.encode_name] = value
    document.update(payload.extras)
    return _ENCODER.encode(document)


def _non_finite(codec: _Codec, wire: Any) -> Rejection | None:
    for name in codec.decimals:
        value = getattr(wire, name)
        if value is not None and not value.is_finite():
            return Rejection(
                code="INVALID_PAYLOAD",
                message=f"decimal {value} is not a finite number",
                field=f"payload.{name}",
            )
    return None


def _invalid(exc: Exception) -> Rejection:
    text = str(exc)
    match = _ERROR_PATH.search(text)
    path = "payload" + match.group(1) if match else "payload"
    message = (text[: match.start()] if match else text).replace(" | null", "")
    return Rejection(code="INVALID_PAYLOAD", message=f"invalid payload: {message}", field=path)


def _check_extras(payload: EventPayload) -> None:
    known = _CODECS[type(payload)].known if type(payload) in _CODECS else frozenset()
    shadowed = sorted(known.intersection(payload.extras))
    if shadowed:
        raise WireError(
            "INVALID_PAYLOAD",
            f"extras may not hold a known field: {', '.join(shadowed)}",
            field=f"payload.{shadowed[0]}",
        )


def _check_decimals(payload: EventPayload) -> None:
    codec = _CODECS.get(type(payload))
    rejection = None if codec is None else _non_finite(codec, payload)
    if rejection is not None:
        rejection.raise_()
