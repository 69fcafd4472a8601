"""JSON Schema of the ingest envelope, for docs and the wire snapshot test.

``python -m tradewire.wire.schema`` prints it; ``docs/reference/envelope.schema.json``
is the committed snapshot, and a test fails when the models drift from it, so
a wire change is always deliberate.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from tradewire.wire import envelope as env
from tradewire.wire import ingest_payloads as ip

__all__ = ["envelope_json_schema"]

_MESSAGE_MODELS: dict[str, type[Any]] = {
    "log_record": env.LogRecord,
    "heartbeat": env.Heartbeat,
    "error": env.ErrorReport,
    "ack": env.Ack,
}
_PAYLOAD_MODELS: tuple[type[Any], ...] = (
    ip.Order,
    ip.OcoGroupCreated,
    ip.Execution,
    ip.MarketData,
    ip.InstanceUpdated,
    ip.StrategyEvent,
    ip.BatchIngest,
    ip.SystemEvent,
    ip.AccountUpdate,
    ip.PositionUpdate,
)


def _hook(kind: type[Any]) -> dict[str, Any]:
    if issubclass(kind, ip.Money):
        return {
            "type": ["number", "string"],
            "description": "exact decimal: a JSON number, or a string spelling one",
        }
    if issubclass(kind, ip.Timestamp):
        return {"type": "string", "format": "date-time", "description": "ISO-8601; naive = UTC"}
    # Money and Timestamp are the only custom types of the payload models.
    raise TypeError(f"no JSON Schema for {kind.__name__}")


def _ref(kind: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/$defs/{kind.__name__}"}


def envelope_json_schema() -> dict[str, Any]:
    """The envelope and every message and payload model, as one JSON Schema document."""
    models = (*_MESSAGE_MODELS.values(), *_PAYLOAD_MODELS)
    _, defs = msgspec.json.schema_components(
        models, schema_hook=_hook, ref_template="#/$defs/{name}"
    )
    defs["IngestEvent"] = {
        "type": "object",
        "required": ["run_id", "event_type", "event_utc", "payload_json"],
        "properties": {
            "run_id": {"type": "string"},
            "event_type": {"enum": sorted(ip.EVENT_TYPES)},
            "event_utc": _hook(ip.Timestamp),
            "payload_json": {"anyOf": [_ref(m) for m in _PAYLOAD_MODELS]},
            "received_utc": _hook(ip.Timestamp),
        },
    }
    payloads = [_ref(m) for m in _MESSAGE_MODELS.values()] + [{"$ref": "#/$defs/IngestEvent"}]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tradewire socket envelope",
        "type": "object",
        "required": ["msg_id", "msg_type", "timestamp", "source", "target", "payload"],
        "properties": {
            "msg_id": {"type": "string", "minLength": 1},
            "msg_type": {"enum": sorted(env.MSG_TYPES)},
            "timestamp": _hook(ip.Timestamp),
            "source": {"type": "string"},
            "target": {"type": ["string", "null"]},
            "payload": {"anyOf": payloads},
        },
        "$defs": dict(sorted(defs.items())),
    }


if __name__ == "__main__":
    print(json.dumps(envelope_json_schema(), indent=2, sort_keys=True))
