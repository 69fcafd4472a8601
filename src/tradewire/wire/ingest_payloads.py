"""The ``payload_json`` documents of platform ingest events, and their value types.

Theory of operation
-------------------
Every model here is a frozen :class:`WireModel`: a msgspec ``Struct`` that
forbids unknown fields *at decode time* and keeps them anyway in ``extra``.
The decoder in :mod:`tradewire.wire.envelope` first tries a plain typed
decode (the fast path: one C pass, no Python per field). Only when a document
carries a field the model does not know does it fall back to decoding the
document as plain JSON and moving the unknown keys into ``extra``, level by
level, before converting. Encoding writes ``extra`` back as sibling keys, so
``decode -> encode`` gives back the same JSON value, connector fields included.

Two value types keep numbers and times exact:

* :class:`Money` is a ``Decimal`` decoded straight from a JSON *number*
  (never through ``float``) and written back as a JSON number. Connectors
  commonly send decimal *strings*, so a plain decimal string such as
  ``"0.1"`` or ``"-1.5e-3"`` is accepted too (exactly, as ``Decimal("0.1")``)
  and re-encoded as the JSON number ``0.1``: the one place where
  ``decode -> encode`` changes the JSON value. Anything else in a string
  (``"NaN"``, ``"1,5"``, ``" 1"``, ``"1_000"``) is refused.
* :class:`Timestamp` is the ISO-8601 string exactly as received (``Z``,
  offsets, or naive Quantower times such as ``2025-11-19 23:01:00.123456``),
  validated on decode; :attr:`Timestamp.utc` parses it to an aware UTC
  ``datetime`` (naive times are UTC).

Optional fields default to ``msgspec.UNSET``: absent on input, absent on output.
Fields are declared in the seed's key order, so a compact seed message
re-encodes byte for byte.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import UNSET, UnsetType

__all__ = [
    "EVENT_TYPES",
    "AccountUpdate",
    "Bar",
    "BatchAccountUpdate",
    "BatchEvent",
    "BatchExecution",
    "BatchIngest",
    "BatchMarketData",
    "BatchOrder",
    "BatchPositionUpdate",
    "Execution",
    "IngestPayload",
    "InstanceUpdated",
    "MarketData",
    "Money",
    "OcoGroup",
    "OcoGroupCreated",
    "Order",
    "PositionUpdate",
    "StrategyEvent",
    "StrategyInstance",
    "SystemEvent",
    "Timestamp",
    "WireModel",
    "payload_type_for",
]

EXTRA_KEY: Final = "__extra__"
"""Internal JSON name of the ``extra`` field; never written on the wire."""


class Money(Decimal):
    """A price, quantity or amount: a ``Decimal`` that travels as a JSON number."""

    __slots__ = ()


class Timestamp(str):
    """An ISO-8601 timestamp, kept as the exact string that was received."""

    __slots__ = ()

    @property
    def utc(self) -> dt.datetime:
        """The instant as an aware UTC ``datetime``; a naive time is read as UTC."""
        return parse_utc(self)

    @classmethod
    def from_datetime(cls, value: dt.datetime) -> Timestamp:
        """Format ``value`` (naive means UTC) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = aware.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        return cls(text.replace("+00:00", "Z"))


def parse_utc(text: str) -> dt.datetime:
    """Parse an ISO-8601 string to an aware UTC ``datetime`` (naive = UTC).

    Raises ``ValueError`` when ``text`` is not an ISO-8601 date or date-time.
    """
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text[:40]!r} is out of range once converted to UTC") from None


class WireModel(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    """Base of every JSON wire model: unknown fields are kept in ``extra``."""

    extra: dict[str, Any] = msgspec.field(default_factory=dict, name=EXTRA_KEY)


# --- JSON codec: custom value types ------------------------------------------------------------

_JSON_KINDS: Final = {str: "str", bool: "bool", list: "array", dict: "object", type(None): "null"}


def _json_kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


# A JSON number's grammar, as text: what a connector's decimal string may hold.
_DECIMAL_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _decode_custom(type_: type, value: Any) -> Any:
    if type_ is Money:
        if type(value) is Decimal or type(value) is int:
            return Money(value)
        if type(value) is str and _DECIMAL_TEXT.fullmatch(value):
            return Money(value)
        raise TypeError(f"Expected `number`, got `{_json_kind(value)}`")
    if type_ is Timestamp:
        return _to_timestamp(value)
    # Money and Timestamp are the only custom types of the payload models.
    raise TypeError(f"no decoder for {type_.__name__}")


def _to_timestamp(value: Any) -> Timestamp:
    if not isinstance(value, str):
        raise TypeError(f"Expected `timestamp`, got `{_json_kind(value)}`")
    try:
        parse_utc(value)
    except ValueError:
        raise ValueError(f"Expected `timestamp`, got `{value[:40]!r}`") from None
    return Timestamp(value)


def _encode_custom(value: Any) -> Any:
    if isinstance(value, Decimal):
        return Decimal(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


# --- codec: fast typed path, extras-keeping slow path ------------------------------

M = TypeVar("M", bound="WireModel")
_EXTRA_MARK: Final = f'"{EXTRA_KEY}"'.encode()
_ENCODER: Final = msgspec.json.Encoder(enc_hook=_encode_custom, decimal_format="number")
_ANY_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)
_UNKNOWN_FIELD: Final = "Object contains unknown field"


@functools.cache
def _decoder(model: type[M]) -> msgspec.json.Decoder[M]:
    return msgspec.json.Decoder(model, dec_hook=_decode_custom, float_hook=Decimal)


@functools.cache
def _type_info(model: type[WireModel]) -> mi.Type:
    return mi.type_info(model)


def decode_model(raw: bytes, model: type[M]) -> M:
    """Decode ``raw`` as ``model``; raises msgspec's errors."""
    if _EXTRA_MARK not in raw:
        try:
            decoded: M = _decoder(model).decode(raw)
            return decoded
        except msgspec.ValidationError as exc:
            if not str(exc).startswith(_UNKNOWN_FIELD):
                raise
    document = _ANY_DECODER.decode(raw)
    kept = _split(_type_info(model), document)
    return msgspec.convert(kept, model, dec_hook=_decode_custom)


def _split(info: mi.Type, value: Any) -> Any:
    """Move unknown keys of every struct level of ``value`` under ``EXTRA_KEY``."""
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        return _split_struct(info, value)
    if isinstance(info, mi.ListType) and isinstance(value, list):
        return [_split(info.item_type, item) for item in value]
    if isinstance(info, mi.UnionType) and isinstance(value, dict):
        return _split_union(info, value)
    if isinstance(info, mi.RawType):
        return msgspec.Raw(_ENCODER.encode(value))
    return value


def _split_struct(info: mi.StructType, value: dict[str, Any]) -> dict[str, Any]:
    fields = {f.encode_name: f for f in info.fields if f.encode_name != EXTRA_KEY}
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is not None:
            known[key] = _split(field.type, item)
        elif key == info.tag_field:
            known[key] = item
        else:
            extra[key] = item
    if extra:
        known[EXTRA_KEY] = extra
    return known


def _split_union(info: mi.UnionType, value: dict[str, Any]) -> Any:
    for member in info.types:
        if isinstance(member, mi.StructType) and (
            member.tag_field is None or value.get(member.tag_field) == member.tag
        ):
            return _split_struct(member, value)
    return value


def encode_model(model: WireModel) -> bytes:
    """Encode ``model`` as compact JSON, writing ``extra`` back as sibling keys."""
    out = _ENCODER.encode(model)
    if _EXTRA_MARK in out:  # only when some level holds extras (or that very key)
        out = _ENCODER.encode(_flatten(model))
    return out


def _flatten(value: Any) -> Any:
    """Builtins of ``value`` with every model's ``extra`` back as sibling keys."""
    if isinstance(value, WireModel):
        return _flatten_model(value)
    if isinstance(value, list):
        return [_flatten(item) for item in value]
    return value


def _flatten_model(model: WireModel) -> dict[str, Any]:
    config = model.__struct_config__
    out: dict[str, Any] = {}
    if config.tag_field is not None:
        out[config.tag_field] = config.tag
    for name, key in zip(model.__struct_fields__, model.__struct_encode_fields__, strict=True):
        item = getattr(model, name)
        if item is not UNSET and key != EXTRA_KEY:
            out[key] = _flatten(item)
    for key, item in model.extra.items():
        out.setdefault(key, item)
    return out


# --- facts: orders, fills, bars, account and position snapshots ------------------


class Order(WireModel, kw_only=True):
    """An order event (``event_type: order``); ``event`` names an update kind."""

    order_id: str
    symbol: str
    side: str
    order_type: str | UnsetType = UNSET
    quantity: Money
    price: Money | UnsetType | None = UNSET
    stop_price: Money | UnsetType | None = UNSET
    time_in_force: str | UnsetType | None = UNSET
    status: str | UnsetType | None = UNSET
    submit_time: Timestamp | UnsetType | None = UNSET
    parent_order_id: str | UnsetType | None = UNSET
    strategy_id: str | UnsetType | None = UNSET
    account_id: str | UnsetType | None = UNSET
    event: str | UnsetType = UNSET


class Execution(WireModel, kw_only=True):
    """A fill (``event_type: execution``) of ``quantity`` at ``price``."""

    execution_id: str
    order_id: str
    symbol: str | UnsetType = UNSET
    side: str | UnsetType = UNSET
    quantity: Money
    price: Money
    commission: Money | UnsetType | None = UNSET
    fee: Money | UnsetType | None = UNSET
    fee_currency: str | UnsetType | None = UNSET
    exec_time: Timestamp | UnsetType | None = UNSET
    strategy_id: str | UnsetType | None = UNSET
    account_id: str | UnsetType | None = UNSET
    liquidity_flag: str | UnsetType | None = UNSET


class Bar(WireModel, kw_only=True):
    """One OHLCV bar opening at ``ts_utc``."""

    ts_utc: Timestamp
    open: Money
    high: Money
    low: Money
    close: Money
    volume: Money


class MarketData(WireModel, kw_only=True):
    """A bar of series ``series_id`` (``event_type: market_data``)."""

    series_id: str
    symbol: str
    timeframe: str
    bar: Bar


class AccountUpdate(WireModel, kw_only=True):
    """A snapshot of an account's money (``event_type: account_update``)."""

    account_id: str
    balance: Money
    currency: str | UnsetType | None = UNSET
    equity: Money | UnsetType | None = UNSET
    margin: Money | UnsetType | None = UNSET
    free_margin: Money | UnsetType | None = UNSET
    unrealized_pnl: Money | UnsetType | None = UNSET
    realized_pnl: Money | UnsetType | None = UNSET
    updated_utc: Timestamp | UnsetType | None = UNSET


class PositionUpdate(WireModel, kw_only=True):
    """A snapshot of one open position (``event_type: position_update``)."""

    symbol: str
    side: str
    quantity: Money
    avg_price: Money | UnsetType | None = UNSET
    unrealized_pnl: Money | UnsetType | None = UNSET
    realized_pnl: Money | UnsetType | None = UNSET
    account_id: str | UnsetType | None = UNSET
    position_id: str | UnsetType | None = UNSET
    updated_utc: Timestamp | UnsetType | None = UNSET


# --- domain entities carried by an ``event`` discriminator ------------------------


class StrategyInstance(WireModel, kw_only=True):
    """A strategy instance: its parameters, symbols, timeframe and venue."""

    instance_id: str
    strategy_id: str
    instance_name: str | UnsetType = UNSET
    parameters_json: dict[str, Any] | UnsetType = UNSET
    symbols_json: list[str] | UnsetType = UNSET
    timeframe: str | UnsetType = UNSET
    venue: str | UnsetType = UNSET
    created_utc: Timestamp | UnsetType = UNSET


class InstanceUpdated(WireModel, kw_only=True, tag="instance_updated", tag_field="event"):
    """``strategy_event`` / ``instance_updated``: the instance's new state."""

    instance: StrategyInstance


class StrategyEvent(WireModel, kw_only=True):
    """Any other ``strategy_event``: its ``event`` name, the rest in ``extra``."""

    event: str


class OcoGroup(WireModel, kw_only=True):
    """A one-cancels-other group of orders."""

    oco_group_id: str
    run_id: str | UnsetType = UNSET
    created_utc: Timestamp | UnsetType = UNSET
    label: str | UnsetType = UNSET
    order_ids: list[str]
    extra_json: dict[str, Any] | UnsetType = UNSET


class OcoGroupCreated(WireModel, kw_only=True, tag="oco_group_created", tag_field="event"):
    """``order`` / ``oco_group_created``: a new OCO group."""

    oco_group: OcoGroup


class BatchOrder(Order, kw_only=True, tag="order", tag_field="event_type"):
    """An order inside a batch: ``event_type`` plus the order's fields."""


class BatchExecution(Execution, kw_only=True, tag="execution", tag_field="event_type"):
    """A fill inside a batch."""


class BatchMarketData(MarketData, kw_only=True, tag="market_data", tag_field="event_type"):
    """A bar inside a batch."""


class BatchAccountUpdate(AccountUpdate, kw_only=True, tag="account_update", tag_field="event_type"):
    """An account snapshot inside a batch."""


class BatchPositionUpdate(
    PositionUpdate, kw_only=True, tag="position_update", tag_field="event_type"
):
    """A position snapshot inside a batch."""


BatchEvent = (
    BatchOrder | BatchExecution | BatchMarketData | BatchAccountUpdate | BatchPositionUpdate
)
"""One event of a batch, told apart by its ``event_type`` key."""


class BatchIngest(WireModel, kw_only=True, tag="batch_ingest", tag_field="event"):
    """``system_event`` / ``batch_ingest``: several facts in one message."""

    events: list[BatchEvent]


class SystemEvent(WireModel, kw_only=True):
    """Any other ``system_event``: its ``event`` name, the rest in ``extra``."""

    event: str


IngestPayload = (
    Order
    | OcoGroupCreated
    | Execution
    | MarketData
    | InstanceUpdated
    | StrategyEvent
    | BatchIngest
    | SystemEvent
    | AccountUpdate
    | PositionUpdate
)
"""Every ``payload_json`` model."""

_BY_EVENT: Final[dict[str, dict[str | None, type[WireModel]]]] = {
    "order": {None: Order, "oco_group_created": OcoGroupCreated},
    "execution": {None: Execution},
    "market_data": {None: MarketData},
    "strategy_event": {None: StrategyEvent, "instance_updated": InstanceUpdated},
    "system_event": {None: SystemEvent, "batch_ingest": BatchIngest},
    "account_update": {None: AccountUpdate},
    "position_update": {None: PositionUpdate},
}

_ALLOWED: Final = {name: tuple(models.values()) for name, models in _BY_EVENT.items()}

EVENT_TYPES: Final = frozenset(_BY_EVENT)
"""The ``event_type`` values an ingest event may carry."""


def payload_type_for(event_type: str, event: object = None) -> type[WireModel] | None:
    """The ``payload_json`` model of ``event_type`` whose ``event`` key is ``event``.

    Returns ``None`` for an unknown ``event_type``; an ``event`` value without a
    dedicated model gets the event type's general model.
    """
    by_event = _BY_EVENT.get(event_type)
    if by_event is None:
        return None
    chosen = by_event.get(event) if isinstance(event, str) else None
    return chosen or by_event[None]


def allowed_payload_types(event_type: str) -> tuple[type[WireModel], ...]:
    """Every ``payload_json`` model that ``event_type`` may carry."""
    return _ALLOWED.get(event_type, ())


def has_event_key(event_type: str) -> bool:
    """Whether ``payload_json``'s ``event`` key picks the model of ``event_type``."""
    return len(_BY_EVENT.get(event_type, ())) > 1
