"""The Apprise channel: the services Apprise knows, one URL per user.

A user's profile may hold an Apprise URL (``tgram://token/chat``,
``discord://id/token``, ``mailto://...``, ``json://host/path``, ...). Each
event becomes one ``Apprise.notify(title, body)`` call, run in a bounded
thread pool because Apprise is blocking, under a timeout.

Apprise answers with a bool, so the outcome is coarser than the native
channels': a URL Apprise does not understand is a permanent failure; a
failed notification is retryable (Apprise does not say whether the service
refused for good or only for now, nor for how long); no answer within
``timeout_s`` is retryable (the thread may still finish the call: at least
once, never lost). Apprise URLs embed their credentials, so errors only
name the URL's scheme, and the DEBUG lines of Apprise and urllib3 (which
print URLs) are dropped.

The seed's ``ChannelType`` has no Apprise member: the deployment says which
slot this adapter fills.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Final
from urllib.parse import urlsplit

from tradewire.channels._http import ClosesOnExit
from tradewire.channels._recipient import find_profile
from tradewire.channels.directory import UserDirectory, UserProfile
from tradewire.channels.message import RenderedMessage, Renderer
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Delivered,
    DeliveryOutcome,
    PermanentFailure,
    Retryable,
)

# Apprise imports modules that newer Pythons deprecate, partly when it first
# loads its plugins: do both here, once, with those warnings silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import apprise
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Apprise channel needs the apprise extra: pip install 'tradewire[apprise]'"
        ) from exc
    apprise.Apprise().add("json://localhost")  # loads every plugin now

__all__ = ["AppriseChannel"]

DEFAULT_TIMEOUT_S: Final = 30.0


class _NoDebug(logging.Filter):
    """Drops DEBUG records: Apprise and urllib3 log full URLs (credentials) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_NoDebug())


class _Result(enum.Enum):
    SENT = "sent"
    NOT_UNDERSTOOD = "not understood"
    FAILED = "failed"


def _notify(url: str, message: RenderedMessage, priority: Priority) -> _Result:
    """One blocking Apprise notification (runs in the pool); Apprise's errors become values."""
    try:
        sender = apprise.Apprise()
        if not sender.add(url):
            return _Result.NOT_UNDERSTOOD
        critical = priority is Priority.CRITICAL
        sent = sender.notify(
            body=message.text or message.title,
            title=message.title,
            notify_type=apprise.NotifyType.WARNING if critical else apprise.NotifyType.INFO,
            body_format=apprise.NotifyFormat.TEXT,
        )
    except Exception:  # a plugin bug must not escape the adapter
        return _Result.FAILED
    return _Result.SENT if sent else _Result.FAILED


def _scheme(url: str) -> str:
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    return f"{scheme}://" if scheme.isalnum() else "(no scheme)"


class AppriseChannel(ClosesOnExit):
    """Sends each event through Apprise to the user's ``apprise_url``."""

    def __init__(
        self,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        channel_type: ChannelType,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_threads: int = 8,
    ) -> None:
        if timeout_s <= 0 or max_threads < 1:
            raise ValueError("AppriseChannel needs a positive timeout and at least one thread")
        self._directory = directory
        self._renderer = renderer
        self._channel_type = channel_type
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="apprise")

    def __repr__(self) -> str:
        return f"AppriseChannel(channel_type={self._channel_type.name})"

    @property
    def channel_type(self) -> ChannelType:
        """The slot this adapter fills (chosen by the deployment)."""
        return self._channel_type

    @property
    def limits(self) -> ChannelLimits:
        """Apprise knows each service's limits and splits or truncates itself."""
        return ChannelLimits()

    async def aclose(self) -> None:
        """Stop the pool (a notification still running finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Notify the user's Apprise URL and report the outcome."""
        profile = await find_profile(self._directory, event.user_id)
        if not isinstance(profile, UserProfile):
            return profile
        url = profile.apprise_url
        if not url:
            return PermanentFailure("user has no Apprise URL")
        message = self._renderer.render(event)
        loop = asyncio.get_running_loop()
        try:
            call = loop.run_in_executor(self._pool, _notify, url, message, event.priority)
            result = await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            return Retryable(f"apprise {_scheme(url)} gave no answer within {self.timeout_s}s")
        except RuntimeError:  # the pool was shut down
            return Retryable("apprise channel is closed")
        if result is _Result.SENT:
            return Delivered(self._channel_type)
        if result is _Result.NOT_UNDERSTOOD:
            return PermanentFailure(f"apprise does not understand the {_scheme(url)} URL")
        return Retryable(f"apprise could not notify {_scheme(url)}")
