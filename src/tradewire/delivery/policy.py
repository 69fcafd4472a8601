"""The delivery policy as pure functions: which channels, who is evicted, when to stop.

Nothing here keeps state; :class:`~tradewire.delivery.DeliveryEngine` calls
these with the current presence and the event's history and acts on the
answer. Keeping the decisions here keeps the engine a plain state pump.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from tradewire.delivery.config import DeliveryConfig
from tradewire.delivery.model import ChannelPreference, ChannelType, Event, Priority
from tradewire.delivery.ports import Presence
from tradewire.delivery.states import DeliveryState

__all__ = [
    "Admission",
    "PendingView",
    "admit",
    "admit_counted",
    "first_usable_channel",
    "may_become_usable",
    "preferences",
    "stop_at_ms",
    "usable_channels",
]


def preferences(event: Event, config: DeliveryConfig) -> tuple[ChannelPreference, ...]:
    """The event's channel list, or the configured default for its priority when empty."""
    return event.channels or config.channels_for(event.priority)


def _needs_presence(pref: ChannelPreference, priority: Priority, config: DeliveryConfig) -> bool:
    # INFORMATIONAL never leaves for a channel the user is not looking at.
    return (
        pref.only_if_active
        or pref.channel in config.session_channels
        or priority is Priority.INFORMATIONAL
    )


def _expand(
    pref: ChannelPreference,
    user_id: str,
    priority: Priority,
    presence: Presence,
    config: DeliveryConfig,
) -> tuple[ChannelType, ...]:
    if pref.channel is ChannelType.ACTIVE_SESSION:
        return presence.open_channels(user_id)
    if _needs_presence(pref, priority, config) and not presence.is_active(user_id, pref.channel):
        return ()
    return (pref.channel,)


def usable_channels(
    event: Event,
    presence: Presence,
    config: DeliveryConfig,
    dead: Collection[ChannelType] = (),
) -> list[ChannelType]:
    """The channels to try now, in preference order, each once.

    ``ACTIVE_SESSION`` expands to the user's open channels; a channel marked
    ``only_if_active`` (or a session-only channel such as WEB) is skipped
    while the user is not connected to it; channels without an adapter and
    channels in ``dead`` (failed permanently for this event) are left out.
    """
    found: dict[ChannelType, None] = {}
    for pref in preferences(event, config):
        for channel in _expand(pref, event.user_id, event.priority, presence, config):
            if channel in config.enabled_channels and channel not in dead:
                found.setdefault(channel)
    return list(found)


def first_usable_channel(
    user_id: str,
    priority: Priority,
    channels: tuple[ChannelPreference, ...],
    presence: Presence,
    config: DeliveryConfig,
) -> ChannelType | None:
    """The first of :func:`usable_channels` for a fresh event (no dead channel), or ``None``.

    Where the one attempt of an INFORMATIONAL event goes; takes the event's
    fields rather than an :class:`Event` so that the SUB fast path needs none.
    """
    for pref in channels or config.channels_for(priority):
        for channel in _expand(pref, user_id, priority, presence, config):
            if channel in config.enabled_channels:
                return channel
    return None


def may_become_usable(
    event: Event, config: DeliveryConfig, dead: Collection[ChannelType] = ()
) -> bool:
    """Whether a session opening could still give this event a channel."""
    live = config.enabled_channels - set(dead)
    for pref in preferences(event, config):
        if pref.channel is ChannelType.ACTIVE_SESSION and live:
            return True
        if pref.channel in live and _needs_presence(pref, event.priority, config):
            return True
    return False


def stop_at_ms(event: Event, accepted_at_ms: int, config: DeliveryConfig) -> int | None:
    """When no new attempt may start: NORMAL TTL, CRITICAL deadline, none for INFORMATIONAL."""
    if event.priority is Priority.NORMAL:
        return accepted_at_ms + config.normal_ttl_ms
    if event.priority is Priority.CRITICAL:
        return accepted_at_ms + config.critical_deadline_ms
    return None


@dataclass(frozen=True, slots=True)
class PendingView:
    """What admission needs to know about one pending event of the user."""

    event_id: str
    priority: Priority
    state: DeliveryState


@dataclass(frozen=True, slots=True)
class Admission:
    """Outcome of :func:`admit`: take the event (evicting ``victim`` first) or refuse it."""

    admitted: bool
    victim: str | None = None
    reason: str | None = None


def _oldest(
    pending: Sequence[PendingView], priority: Priority, state: DeliveryState | None
) -> str | None:
    for view in pending:
        if view.priority is priority and (state is None or view.state is state):
            return view.event_id
    return None


def _victim(priority: Priority, pending: Sequence[PendingView]) -> str | None:
    """INFORMATIONAL goes first; then the oldest waiting NORMAL; CRITICAL never."""
    victim = _oldest(pending, Priority.INFORMATIONAL, None)
    if victim is None and priority is not Priority.INFORMATIONAL:
        victim = _oldest(pending, Priority.NORMAL, DeliveryState.QUEUED)
    return victim


def admit(priority: Priority, pending: Sequence[PendingView], config: DeliveryConfig) -> Admission:
    """Decide whether a new event of ``priority`` fits the user's bounded queue.

    ``pending`` lists the user's unfinished events, oldest first. CRITICAL is
    never evicted and is admitted past the soft bound, up to
    ``max_critical_per_user``.
    """
    critical = sum(view.priority is Priority.CRITICAL for view in pending)
    return admit_counted(
        priority, len(pending), critical, lambda: _victim(priority, pending), config
    )


def admit_counted(
    priority: Priority,
    pending: int,
    critical: int,
    find_victim: Callable[[], str | None],
    config: DeliveryConfig,
) -> Admission:
    """:func:`admit` from counts the caller keeps: ``pending`` events, ``critical`` of them.

    ``find_victim`` is asked only when the queue is full and must answer as
    :func:`admit` would (the oldest INFORMATIONAL, else for a guaranteed
    newcomer the oldest NORMAL in ``queued``).
    """
    if priority is Priority.CRITICAL and critical >= config.max_critical_per_user:
        return Admission(False, reason="refused: too many pending CRITICAL events for user")
    if pending < config.max_pending_per_user:
        return Admission(True)
    victim = find_victim()
    if victim is not None:
        return Admission(True, victim=victim)
    if priority is Priority.CRITICAL:
        return Admission(True)
    return Admission(False, reason="refused: user queue full")
