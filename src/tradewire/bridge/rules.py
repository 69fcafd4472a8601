"""Per event type priority, channels and on/off switch of the ingest bridge.

The defaults follow the mission: a fill, a rejection, a lost connector are
CRITICAL; a new order is INFORMATIONAL; the rest is NORMAL. An operator
overrides them in the TOML file only (a nested table has no flag or
environment form)::

    [bridge.ORDER_FILLED]
    priority = "NORMAL"
    channels = ["ACTIVE_SESSION", "TELEGRAM"]

    [bridge.ORDER_PLACED]
    enabled = false

An empty ``channels`` list means the delivery defaults of the priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradewire.delivery.model import ChannelPreference, ChannelType, Priority
from tradewire.errors import TradewireError
from tradewire.wire.frames import EventType

__all__ = [
    "BRIDGED_TYPES",
    "DEFAULT_RULES",
    "BridgeConfigError",
    "BridgeRule",
    "parse_bridge_rules",
]


class BridgeConfigError(TradewireError, ValueError):
    """A ``[bridge.*]`` table of the config file is invalid; ``field`` names the key."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BridgeRule(msgspec.Struct, frozen=True):
    """How the bridge emits one event type."""

    priority: Priority
    channels: tuple[ChannelPreference, ...] = ()
    enabled: bool = True


_C, _N, _I = Priority.CRITICAL, Priority.NORMAL, Priority.INFORMATIONAL
DEFAULT_RULES: Final[Mapping[EventType, BridgeRule]] = MappingProxyType(
    {
        EventType.ORDER_PLACED: BridgeRule(_I),
        EventType.ORDER_FILLED: BridgeRule(_C),
        EventType.ORDER_CANCELLED: BridgeRule(_N),
        EventType.ORDER_REJECTED: BridgeRule(_C),
        EventType.ORDER_EXPIRED: BridgeRule(_N),
        EventType.POSITION_OPENED: BridgeRule(_N),
        EventType.POSITION_CLOSED: BridgeRule(_N),
        EventType.STRATEGY_ERROR: BridgeRule(_C),
        EventType.BACKTEST_COMPLETED: BridgeRule(_N),
        EventType.EVENT_ERROR: BridgeRule(_C),
    }
)
"""The rule of every event type the bridge can emit, before configuration."""
BRIDGED_TYPES: Final = frozenset(DEFAULT_RULES)
_KEYS: Final = frozenset({"priority", "channels", "enabled"})


def parse_bridge_rules(raw: Mapping[str, object]) -> dict[EventType, BridgeRule]:
    """The effective rules: :data:`DEFAULT_RULES` overridden by the ``[bridge]`` tables.

    Raises :class:`BridgeConfigError` naming the offending key.
    """
    rules = dict(DEFAULT_RULES)
    known = ", ".join(sorted(t.name for t in BRIDGED_TYPES))
    for name, table in raw.items():
        where = f"bridge.{name}"
        kind = EventType.__members__.get(str(name).upper())
        if kind is None or kind not in BRIDGED_TYPES:
            raise BridgeConfigError(
                f"[{where}]: the bridge emits no {name!r}; use one of {known}", field=where
            )
        if not isinstance(table, Mapping):
            raise BridgeConfigError(f"[{where}] must be a table", field=where)
        rules[kind] = _rule(where, table, rules[kind])
    return rules


def _rule(where: str, table: Mapping[str, object], base: BridgeRule) -> BridgeRule:
    unknown = sorted(set(map(str, table)) - _KEYS)
    if unknown:
        raise BridgeConfigError(
            f"{where}.{unknown[0]} is not a bridge setting; use priority, channels or enabled",
            field=f"{where}.{unknown[0]}",
        )
    priority, channels, enabled = base.priority, base.channels, base.enabled
    if "priority" in table:
        priority = _priority(where, table["priority"])
    if "channels" in table:
        channels = _channels(where, table["channels"])
    if "enabled" in table:
        value = table["enabled"]
        if not isinstance(value, bool):
            raise BridgeConfigError(
                f"{where}.enabled must be true or false", field=f"{where}.enabled"
            )
        enabled = value
    return BridgeRule(priority, channels, enabled)


def _priority(where: str, value: object) -> Priority:
    member = Priority.__members__.get(value.upper()) if isinstance(value, str) else None
    if member is None:
        names = ", ".join(Priority.__members__)
        raise BridgeConfigError(
            f"{where}.priority {value!r} is not one of {names}", field=f"{where}.priority"
        )
    return member


def _channels(where: str, value: object) -> tuple[ChannelPreference, ...]:
    if not isinstance(value, list):
        raise BridgeConfigError(
            f"{where}.channels must be a list of channel names", field=f"{where}.channels"
        )
    out: list[ChannelPreference] = []
    for item in value:
        member = ChannelType.__members__.get(item.upper()) if isinstance(item, str) else None
        if member is None:
            names = ", ".join(ChannelType.__members__)
            raise BridgeConfigError(
                f"{where}.channels: {item!r} is not one of {names}", field=f"{where}.channels"
            )
        out.append(ChannelPreference(member))
    return tuple(out)
