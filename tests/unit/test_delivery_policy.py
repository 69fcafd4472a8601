"""Pure policy pieces: channel resolution, admission, presence, clocks, config."""

from __future__ import annotations

import pytest

from tradewire.delivery import (
    Channel,
    ChannelLimits,
    ChannelPreference,
    ChannelType,
    Clock,
    Delivered,
    DeliveryConfig,
    DeliveryOutcome,
    DeliveryState,
    Event,
    LocalPresence,
    ManualClock,
    Presence,
    Priority,
    SystemClock,
)
from tradewire.delivery.policy import (
    PendingView,
    admit,
    may_become_usable,
    preferences,
    stop_at_ms,
    usable_channels,
)
from tradewire.errors import ConfigError

C = ChannelType
P = ChannelPreference
CONFIG = DeliveryConfig()


def ev(priority: Priority, *channels: ChannelPreference) -> Event:
    return Event("e1", "u1", 1, priority, channels)


def online(*channels: ChannelType) -> LocalPresence:
    presence = LocalPresence()
    for channel in channels:
        presence.open("u1", channel)
    return presence


def test_active_session_expands_and_duplicates_collapse() -> None:
    event = ev(Priority.CRITICAL, P(C.EMAIL), P(C.ACTIVE_SESSION), P(C.WEB), P(C.EMAIL))
    assert usable_channels(event, online(C.TELEGRAM, C.WEB), CONFIG) == [C.EMAIL, C.TELEGRAM, C.WEB]


def test_only_if_active_and_session_channels_need_presence() -> None:
    event = ev(Priority.CRITICAL, P(C.WEB), P(C.TELEGRAM, True), P(C.PUSH))
    assert usable_channels(event, online(), CONFIG) == [C.PUSH]
    assert usable_channels(event, online(C.WEB, C.TELEGRAM), CONFIG) == [C.WEB, C.TELEGRAM, C.PUSH]


def test_informational_treats_every_channel_as_only_if_active() -> None:
    event = ev(Priority.INFORMATIONAL, P(C.TELEGRAM), P(C.EMAIL))
    assert usable_channels(event, online(), CONFIG) == []
    assert usable_channels(event, online(C.EMAIL), CONFIG) == [C.EMAIL]


def test_dead_and_disabled_channels_are_left_out() -> None:
    config = DeliveryConfig(enabled_channels=frozenset({C.WEB, C.EMAIL}))
    event = ev(Priority.CRITICAL, P(C.SLACK), P(C.EMAIL), P(C.ACTIVE_SESSION))
    assert usable_channels(event, online(C.WEB, C.TELEGRAM), config) == [C.EMAIL, C.WEB]
    assert usable_channels(event, online(C.WEB), config, dead={C.EMAIL}) == [C.WEB]


def test_defaults_apply_only_to_empty_lists() -> None:
    assert preferences(ev(Priority.CRITICAL), CONFIG) == CONFIG.channels_for(Priority.CRITICAL)
    assert preferences(ev(Priority.NORMAL, P(C.EMAIL)), CONFIG) == (P(C.EMAIL),)


def test_may_become_usable() -> None:
    assert may_become_usable(ev(Priority.CRITICAL, P(C.ACTIVE_SESSION)), CONFIG)
    assert may_become_usable(ev(Priority.CRITICAL, P(C.TELEGRAM, True)), CONFIG)
    assert not may_become_usable(ev(Priority.CRITICAL, P(C.EMAIL)), CONFIG)
    assert not may_become_usable(ev(Priority.CRITICAL, P(C.WEB)), CONFIG, dead={C.WEB})


def test_stop_times_per_priority() -> None:
    assert stop_at_ms(ev(Priority.NORMAL), 10, CONFIG) == 10 + CONFIG.normal_ttl_ms
    assert stop_at_ms(ev(Priority.CRITICAL), 10, CONFIG) == 10 + CONFIG.critical_deadline_ms
    assert stop_at_ms(ev(Priority.INFORMATIONAL), 10, CONFIG) is None


def _views(*specs: tuple[str, Priority, DeliveryState]) -> list[PendingView]:
    return [PendingView(*spec) for spec in specs]


Q, D = DeliveryState.QUEUED, DeliveryState.DELIVERING


def test_admission_prefers_informational_then_oldest_waiting_normal() -> None:
    config = DeliveryConfig(max_pending_per_user=3)
    full = _views(
        ("n1", Priority.NORMAL, D), ("i1", Priority.INFORMATIONAL, D), ("n2", Priority.NORMAL, Q)
    )
    assert admit(Priority.NORMAL, full, config).victim == "i1"
    no_info = _views(
        ("n1", Priority.NORMAL, D), ("c1", Priority.CRITICAL, Q), ("n2", Priority.NORMAL, Q)
    )
    assert admit(Priority.CRITICAL, no_info, config).victim == "n2"
    assert not admit(Priority.INFORMATIONAL, no_info, config).admitted
    all_critical = _views(*((f"c{i}", Priority.CRITICAL, Q) for i in range(3)))
    assert not admit(Priority.NORMAL, all_critical, config).admitted
    assert admit(Priority.CRITICAL, all_critical, config).admitted
    assert admit(Priority.NORMAL, all_critical[:2], config).victim is None


def test_local_presence_counts_sessions() -> None:
    presence = LocalPresence()
    assert presence.open("u1", C.WEB) is True
    assert presence.open("u1", C.WEB) is False
    assert presence.open("u1", C.TELEGRAM) is True
    assert presence.open_channels("u1") == (C.WEB, C.TELEGRAM)
    assert presence.close("u1", C.WEB) is False
    assert presence.is_active("u1", C.WEB)
    assert presence.close("u1", C.WEB) is True
    assert presence.close("u1", C.WEB) is False
    assert presence.close("u1", C.TELEGRAM) is True
    assert presence.open_channels("u1") == ()
    assert isinstance(presence, Presence)


def test_clocks() -> None:
    clock = ManualClock(5)
    assert clock.advance(10) == 15
    clock.set(20)
    assert clock.now_ms() == 20
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(19)
    assert isinstance(clock, Clock) and isinstance(SystemClock(), Clock)
    assert SystemClock().now_ms() > 1_600_000_000_000


class _Echo:
    """The smallest thing that satisfies the Channel port."""

    channel_type = C.WEB
    limits = ChannelLimits(max_message_length=4096, supports_ack=True)

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        return Delivered(C.WEB, needs_client_ack=True)


def test_channel_port_is_a_protocol() -> None:
    channel: Channel = _Echo()
    assert isinstance(channel, Channel)
    assert channel.limits.supports_ack


@pytest.mark.parametrize(
    "kwargs",
    [
        {"normal_ttl_ms": 0},
        {"critical_deadline_ms": -1},
        {"max_pending_per_user": 0},
        {"enabled_channels": frozenset({C.ACTIVE_SESSION})},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DeliveryConfig(**kwargs)  # type: ignore[arg-type]
