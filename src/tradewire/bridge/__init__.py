"""The ingest bridge: what was ingested becomes user events (pure core).

Committed ``ingest`` records go through :class:`IngestBridge`, which turns
fills, order updates, position changes, run ends and error logs into
:class:`~tradewire.delivery.model.Event` values for the run's owner, under
per event type :class:`BridgeRule` values (TOML ``[bridge.<TYPE>]``). No
I/O: the gateway's pump (:mod:`tradewire.server.bridge_pump`) feeds it.
See ``docs/concepts/bridge.md``.
"""

from tradewire.bridge.events import OrderInfo, RunInfo
from tradewire.bridge.rules import (
    BRIDGED_TYPES,
    DEFAULT_RULES,
    BridgeConfigError,
    BridgeRule,
    parse_bridge_rules,
)
from tradewire.bridge.translate import (
    END_EVENTS,
    IngestBridge,
    RunEnded,
    RunSnapshot,
    Translation,
    base_order_id,
)

__all__ = [
    "BRIDGED_TYPES",
    "DEFAULT_RULES",
    "END_EVENTS",
    "BridgeConfigError",
    "BridgeRule",
    "IngestBridge",
    "OrderInfo",
    "RunEnded",
    "RunInfo",
    "RunSnapshot",
    "Translation",
    "base_order_id",
    "parse_bridge_rules",
]
