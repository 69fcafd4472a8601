"""Apply a user's preferences around a notification channel.

:class:`GatedChannel` wraps any :class:`~tradewire.delivery.ports.Channel`
and asks :func:`~tradewire.channels.preferences.decide` before each
attempt: a skipped channel is a :class:`PermanentFailure` for that event
(the engine escalates to the next channel), a deferred one a
:class:`Retryable` whose ``retry_after_ms`` is the end of the quiet hours.
:meth:`GatedChannel.precheck` gives the same verdict without I/O when the
directory's cache knows the user, then asks the wrapped channel's own
``precheck`` (see :mod:`tradewire.channels.slot`).
"""

from __future__ import annotations

from tradewire.channels.directory import Unknown, UserDirectory, UserProfile, cached_profile
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

    def precheck(self, event: Event) -> DeliveryOutcome | None:
        """The outcome if it is known without I/O, else ``None`` (then :meth:`send`)."""
        profile = cached_profile(self.directory, event.user_id)
        if isinstance(profile, Unknown):
            return None
        held = self._held(event, profile)
        if held is not None:
            return held
        inner = getattr(self.inner, "precheck", None)
        return inner(event) if inner is not None else None

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Send through the wrapped channel unless the user's preferences say otherwise."""
        profile = await self.directory.profile(event.user_id)
        return self._held(event, profile) or await self.inner.send(event, attempt)

    def _held(self, event: Event, profile: UserProfile | None) -> DeliveryOutcome | None:
        """Why the user's preferences hold this event back here, if they do."""
        if profile is None:
            return None
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
        return None
