"""Tunables of the delivery policy (timers, defaults, bounds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tradewire.delivery.backoff import BackoffPolicy
from tradewire.delivery.model import ChannelPreference, ChannelType, Priority
from tradewire.errors import ConfigError

__all__ = ["DEFAULT_CHANNELS", "DeliveryConfig"]

_P = ChannelPreference
DEFAULT_CHANNELS: Mapping[Priority, tuple[ChannelPreference, ...]] = {
    Priority.INFORMATIONAL: (_P(ChannelType.ACTIVE_SESSION),),
    Priority.NORMAL: (_P(ChannelType.ACTIVE_SESSION),),
    Priority.CRITICAL: (
        _P(ChannelType.ACTIVE_SESSION),
        _P(ChannelType.PUSH),
        _P(ChannelType.TELEGRAM),
        _P(ChannelType.EMAIL),
    ),
}
"""Channels used when an event's own list is empty."""

_CONCRETE = frozenset(ChannelType) - {ChannelType.ACTIVE_SESSION}


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Timers, defaults and bounds of :class:`~tradewire.delivery.DeliveryEngine`.

    All durations are milliseconds of the gateway's clock, counted from the
    moment the engine accepted the event.
    """

    normal_ttl_ms: int = 5 * 60_000
    """How long a NORMAL event may wait for a session before it expires."""
    ack_timeout_ms: int = 10_000
    """NORMAL/INFORMATIONAL: time for a channel to take the event, then for the client's ack."""
    critical_ack_timeout_ms: int = 15_000
    """CRITICAL: the same per channel (take, then client ack) before the next channel."""
    critical_deadline_ms: int = 60 * 60_000
    """CRITICAL: no new attempt after this; then the event fails with ACK_ERROR."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    """Delay between retry rounds once every channel of a round was tried."""
    default_channels: Mapping[Priority, tuple[ChannelPreference, ...]] = field(
        default_factory=lambda: dict(DEFAULT_CHANNELS)
    )
    """Channel list per priority for events that name none."""
    enabled_channels: frozenset[ChannelType] = _CONCRETE
    """Channels that have an adapter; others in a list are skipped."""
    session_channels: frozenset[ChannelType] = frozenset({ChannelType.WEB})
    """Channels that only reach a live session: skipped while the user has none."""
    max_pending_per_user: int = 1_000
    """Bound of a user's queue; when full, INFORMATIONAL goes first, then old NORMAL."""
    max_critical_per_user: int = 10_000
    """CRITICAL events are never evicted; beyond this many, new ones are refused."""
    dedup_capacity: int = 100_000
    """How many finished event ids are remembered to answer duplicates."""

    def __post_init__(self) -> None:
        for name in (
            "normal_ttl_ms",
            "ack_timeout_ms",
            "critical_ack_timeout_ms",
            "critical_deadline_ms",
            "max_pending_per_user",
            "max_critical_per_user",
            "dedup_capacity",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"delivery setting {name} must be positive", setting=name)
        if ChannelType.ACTIVE_SESSION in self.enabled_channels:
            raise ConfigError(
                "ACTIVE_SESSION is a placeholder, not a channel with an adapter",
                setting="enabled_channels",
            )

    def channels_for(self, priority: Priority) -> tuple[ChannelPreference, ...]:
        """The default channel list of ``priority``."""
        return tuple(self.default_channels.get(priority, ()))

    def attempt_timeout_ms(self, priority: Priority) -> int:
        """How long one attempt of an event of ``priority`` may stay unconfirmed."""
        if priority is Priority.CRITICAL:
            return self.critical_ack_timeout_ms
        return self.ack_timeout_ms
