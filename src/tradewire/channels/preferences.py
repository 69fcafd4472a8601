"""A user's notification preferences: opt-outs and quiet hours (pure).

Theory of operation
-------------------
Preferences govern *notifications*: the channels that reach a user outside
the app (Telegram, email, push, Discord, Slack, webhooks). The live web
session is the user's inbox and always shows every event, so preferences
are applied by :class:`~tradewire.channels.gate.GatedChannel` around each
notification adapter and never to ``WEB``.

:func:`decide` is the one rule, evaluated at every attempt:

* ``CRITICAL`` is never suppressed: not by an opt-out, not by quiet hours.
* An opt-out matching (event type, channel) - either may be ``*`` - skips
  the channel for that event (the engine moves on to the next one).
* During quiet hours a NORMAL event is *deferred* until they end: the
  engine keeps it queued (it may still reach a live session meanwhile) and
  retries the channel then, unless the event's TTL runs out first.
  INFORMATIONAL is skipped (it is never queued).

Quiet hours are a daily window in the user's IANA time zone; a window whose
end is not after its start spans midnight (22:00-07:00).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tradewire.delivery.model import ChannelType, Event, Priority

__all__ = ["WILDCARD", "Allow", "Defer", "OptOut", "QuietHours", "Skip", "Verdict", "decide"]

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class OptOut:
    """Do not notify ``event_type`` (an EventType name or ``*``) on ``channel`` (or ``*``)."""

    event_type: str = WILDCARD
    channel: str = WILDCARD

    def matches(self, event_type: str, channel: str) -> bool:
        """Whether this opt-out covers ``event_type`` on ``channel``."""
        return self.event_type in (WILDCARD, event_type) and self.channel in (WILDCARD, channel)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local time when only CRITICAL events notify."""

    start: dt.time
    end: dt.time

    def remaining_ms(self, now_ms: int, tz: dt.tzinfo) -> int:
        """Milliseconds until the window ends, or 0 when ``now_ms`` is outside it."""
        local = dt.datetime.fromtimestamp(now_ms / 1000, tz)
        start = local.replace(
            hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0
        )
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if self.end > self.start:
            inside = start <= local < end
        else:  # spans midnight: inside after start or before end
            inside = local >= start or local < end
            if local >= start:
                end += dt.timedelta(days=1)
        if not inside:
            return 0
        # aware datetimes of one zone subtract as wall time: compare in UTC (DST)
        left = end.astimezone(dt.UTC) - local.astimezone(dt.UTC)
        return max(1, math.ceil(left / dt.timedelta(milliseconds=1)))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"22:00-07:00"``; raises ``ValueError`` naming the expected shape."""
        try:
            first, second = text.split("-")
            start, end = dt.time.fromisoformat(first.strip()), dt.time.fromisoformat(second.strip())
        except ValueError:
            raise ValueError(f"quiet hours must look like 22:00-07:00, got {text!r}") from None
        if start == end:
            raise ValueError("quiet hours must not start and end at the same time")
        return cls(start, end)


@dataclass(frozen=True, slots=True)
class Allow:
    """Send now."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Never send this event on this channel."""

    reason: str


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: try again in ``delay_ms``."""

    delay_ms: int
    reason: str


Verdict = Allow | Skip | Defer


def zone(name: str) -> dt.tzinfo:
    """The time zone ``name``; raises ``ValueError`` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like Europe/Rome") from None


def decide(
    *,
    event: Event,
    event_type_name: str,
    channel: ChannelType,
    opt_outs: tuple[OptOut, ...],
    quiet_hours: QuietHours | None,
    timezone: str,
    now_ms: int,
) -> Verdict:
    """Whether ``event`` may notify the user on ``channel`` now."""
    if event.priority is Priority.CRITICAL:
        return Allow()
    if any(o.matches(event_type_name, channel.name) for o in opt_outs):
        return Skip(f"user opted out of {event_type_name} on {channel.name}")
    if quiet_hours is None:
        return Allow()
    try:
        tz = zone(timezone)
    except ValueError:
        tz = dt.UTC
    remaining = quiet_hours.remaining_ms(now_ms, tz)
    if remaining == 0:
        return Allow()
    if event.priority is Priority.INFORMATIONAL:
        return Skip(f"quiet hours {quiet_hours} ({timezone})")
    return Defer(remaining, f"quiet hours {quiet_hours} ({timezone})")
