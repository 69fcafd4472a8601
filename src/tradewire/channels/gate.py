"""Apply a user's preferences around a notification channel.

:class:`GatedChannel` wraps any :class:`~tradewire.delivery.ports.Channel`
and asks :func:`~tradewire.channels.preferences.decide` before each
attempt: a skipped channel is a :class:`PermanentFailure` for that event
(the engine escalates to the next channel), a deferred one a
:class:`Retryable` whose ``retry_after_ms`` is the end of the quiet hours.
"""

from __future__ import annotations

from tradewire.channels.directory import UserDirectory
from tradewire.channels.preferences import Allow, Defer, decide
from tradewire.delivery.model import ChannelType, Event
from tradewire.delivery.ports import (
    Channel,
    ChannelLimits,
    Clock,
    DeliveryOutcome,
    PermanentFailure,
    Retryable,
    SystemClock,
)
from tradewire.wire import EventType

__all__ = ["GatedChannel"]


def _type_name(event_type: int) -> str:
    try:
        return EventType(event_type).name
    except ValueError:
        return str(event_type)


class GatedChannel:
    """A channel that first checks the user's opt-outs and quiet hours."""

    def __init__(
        self,
        inner: Channel,
        directory: UserDirectory,
        clock: Clock | None = None,
    ) -> None:
        self.inner = inner
        self.directory = directory
        self._clock = clock or SystemClock()

    @property
    def channel_type(self) -> ChannelType:
        """The wrapped channel's type."""
        return self.inner.channel_type

    @property
    def limits(self) -> ChannelLimits:
        """The wrapped channel's limits."""
        return self.inner.limits

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Send through the wrapped channel unless the user's preferences say otherwise."""
        profile = await self.directory.profile(event.user_id)
        if profile is not None:
            verdict = decide(
                event=event,
                event_type_name=_type_name(event.event_type),
                channel=self.channel_type,
                opt_outs=profile.opt_outs,
                quiet_hours=profile.quiet_hours,
                timezone=profile.timezone,
                now_ms=self._clock.now_ms(),
            )
            if isinstance(verdict, Defer):
                return Retryable(verdict.reason, retry_after_ms=verdict.delay_ms)
            if not isinstance(verdict, Allow):
                return PermanentFailure(verdict.reason)
        return await self.inner.send(event, attempt)
