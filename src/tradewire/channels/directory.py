"""Where each user can be reached: the user directory port.

The channel adapters ask a :class:`UserDirectory` for a user's
:class:`UserProfile` (email address, Telegram chat, Web Push subscriptions,
webhook URLs, preferences). The SQLite/PostgreSQL store implements the port
for the gateway; :class:`InMemoryDirectory` serves tests and embedding.

Addresses and webhook URLs are secrets in the sense of the logs: ``repr`` of a
profile never shows them (a Discord or Slack webhook URL *is* its credential).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Protocol, runtime_checkable

from tradewire.channels.preferences import OptOut, QuietHours

__all__ = [
    "UNKNOWN",
    "InMemoryDirectory",
    "PushSubscription",
    "Unknown",
    "UserDirectory",
    "UserProfile",
    "cached_profile",
]


class Unknown:
    """The type of :data:`UNKNOWN`: a directory cannot tell without I/O."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's Web Push subscription (the ``PushSubscription.toJSON()`` shape)."""

    endpoint: str = field(repr=False)
    p256dh: str = field(repr=False)
    """The user agent's public ECDH key (URL-safe base64, uncompressed P-256 point)."""
    auth: str = field(repr=False)
    """The 16-byte authentication secret (URL-safe base64)."""


@dataclass(frozen=True, slots=True)
class UserProfile:
    """How to reach one user, per channel. Empty means "not reachable there"."""

    user_id: str
    email: str = field(default="", repr=False)
    telegram_chat_id: str = field(default="", repr=False)
    discord_webhook_url: str = field(default="", repr=False)
    slack_webhook_url: str = field(default="", repr=False)
    webhook_url: str = field(default="", repr=False)
    apprise_url: str = field(default="", repr=False)
    push_subscriptions: tuple[PushSubscription, ...] = field(default=(), repr=False)
    timezone: str = "UTC"
    """IANA time zone name used for quiet hours."""
    display_name: str = ""
    opt_outs: tuple[OptOut, ...] = ()
    """Event types / channels the user does not want notifications for (never CRITICAL)."""
    quiet_hours: QuietHours | None = None
    """Daily local window when only CRITICAL events notify."""
    webhook_secret: str = field(default="", repr=False)
    """HMAC-SHA256 key signing this user's generic webhook (empty: the deployment's key)."""


@runtime_checkable
class UserDirectory(Protocol):
    """Looks users up for the channel adapters."""

    async def profile(self, user_id: str) -> UserProfile | None:
        """The user's profile, or ``None`` for a user the directory does not know."""
        ...

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> None:
        """Forget a subscription the push service answered 404/410 for."""
        ...


class InMemoryDirectory:
    """A :class:`UserDirectory` held in a dict (tests, embedding)."""

    def __init__(self, profiles: Iterable[UserProfile] = ()) -> None:
        self._profiles: dict[str, UserProfile] = {p.user_id: p for p in profiles}

    @property
    def profiles(self) -> Mapping[str, UserProfile]:
        """The profiles by user id (read-only view)."""
        return self._profiles

    def put(self, profile: UserProfile) -> None:
        """Add or replace a profile."""
        self._profiles[profile.user_id] = profile

    async def profile(self, user_id: str) -> UserProfile | None:
        """The user's profile, or ``None``."""
        return self._profiles.get(user_id)

    def cached(self, user_id: str) -> UserProfile | None:
        """The same, without I/O (everything is in memory)."""
        return self._profiles.get(user_id)

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> None:
        """Drop the subscription with ``endpoint`` from the user's profile."""
        current = self._profiles.get(user_id)
        if current is None:
            return
        kept = tuple(s for s in current.push_subscriptions if s.endpoint != endpoint)
        self._profiles[user_id] = replace(current, push_subscriptions=kept)


def cached_profile(directory: UserDirectory, user_id: str) -> UserProfile | Unknown | None:
    """What ``directory`` knows of ``user_id`` without I/O (``UNKNOWN`` if it must look).

    Directories may offer ``cached(user_id)``; one that does not is always
    ``UNKNOWN``, and callers take the ``async`` path.
    """
    cached = getattr(directory, "cached", None)
    if cached is None:
        return UNKNOWN
    found: UserProfile | Unknown | None = cached(user_id)
    return found
