"""The EMAIL channel: SMTP with aiosmtplib, one mail per CRITICAL event, digests for the rest.

Theory of operation
-------------------
A CRITICAL event is sent at once as its own ``multipart/alternative`` mail
(text and HTML). NORMAL and INFORMATIONAL events join the user's digest
window (a pure :class:`~tradewire.channels.digest.DigestBuffer` driven by the
injected clock): the first one opens a window of ``digest_window_ms``, every
event for that user arriving before it closes joins it, and on close one
mail reports them all (a window holding one event sends it as a plain
single mail). ``send`` for such an event awaits the SMTP transaction of the
mail that reports it, so its outcome is the truth about that mail; all
events of one digest share one outcome.

A background task wakes at the earliest window deadline; :meth:`flush_due`
does the same on demand (tests with a manual clock). Closing the channel
sends every open window at once, so no ``send`` is left waiting.

SMTP answers are translated here and nowhere else: 4xx, connection
failures and timeouts are :class:`Retryable`, 5xx replies (550 recipient
rejected, 535 authentication failed) and a server lacking a required
extension (STARTTLS, AUTH) are :class:`PermanentFailure`. Error texts carry
the reply code and the server's words with any address masked; the password
appears nowhere (``repr`` hides it, errors never see it).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal

import aiosmtplib

from tradewire.channels._email_message import MailItem, compose_message
from tradewire.channels._http import ClosesOnExit
from tradewire.channels._recipient import find_profile
from tradewire.channels.digest import Digest, DigestBuffer
from tradewire.channels.directory import UserDirectory, UserProfile
from tradewire.channels.message import Renderer
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Clock,
    Delivered,
    DeliveryOutcome,
    PermanentFailure,
    Retryable,
    SystemClock,
)
from tradewire.errors import ConfigError

__all__ = ["EmailChannel", "SmtpSecurity", "SmtpSettings"]

SmtpSecurity = Literal["starttls", "tls", "none"]
"""``starttls``: plain connect then mandatory STARTTLS (port 587); ``tls``: TLS
from the first byte (port 465); ``none``: no TLS (a local relay only)."""

_SECURITIES: tuple[SmtpSecurity, ...] = ("starttls", "tls", "none")
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    """How the deployment reaches its SMTP server (one per gateway)."""

    host: str
    from_address: str
    """``From`` header and envelope sender, e.g. ``Tradewire <alerts@example.com>``."""
    port: int | None = None
    """``None``: 587 for ``starttls``, 465 for ``tls``, 25 for ``none``."""
    username: str = ""
    """Empty: no AUTH."""
    password: str = field(default="", repr=False)
    security: SmtpSecurity = "starttls"
    timeout_s: float = 10.0
    """Limit for connecting and for each SMTP command, in seconds."""
    digest_window_ms: int = 60_000
    """How long the first non-critical event waits for others to join its digest; 0 = never."""
    digest_max_events: int = 50
    """A digest holding this many events goes out at once."""
    max_connections: int = 4
    """SMTP connections open at the same time."""
    ca_file: str | None = None
    """Extra trust anchors (PEM) for a server with a private CA; system CAs otherwise."""
    local_hostname: str | None = None
    """The name sent with EHLO; ``None`` = this machine's FQDN."""

    def __post_init__(self) -> None:
        if self.security not in _SECURITIES:
            raise ConfigError(
                f"unknown SMTP security {self.security!r}",
                setting="smtp.security",
                hint="use one of starttls, tls, none",
            )
        if not parseaddr(self.from_address)[1]:
            raise ConfigError("SMTP from_address is not an address", setting="smtp.from_address")
        if bool(self.username) != bool(self.password):
            raise ConfigError("SMTP username and password go together", setting="smtp.username")
        if self.timeout_s <= 0 or self.max_connections < 1:
            raise ConfigError("SMTP timeout and connections must be positive", setting="smtp")
        if self.digest_window_ms < 0 or self.digest_max_events < 1:
            raise ConfigError("digest window must be >= 0 and max events >= 1", setting="smtp")


class EmailChannel(ClosesOnExit):
    """The EMAIL :class:`~tradewire.delivery.ports.Channel` (an async context manager).

    ``directory`` gives each user's address, ``renderer`` the words;
    ``clock`` times the digest windows (the system clock by default).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        directory: UserDirectory,
        renderer: Renderer,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._renderer = renderer
        self._clock: Clock = clock or SystemClock()
        self._tls_context = _tls_context(settings)
        self._digests: DigestBuffer[MailItem] = DigestBuffer(
            settings.digest_window_ms, settings.digest_max_events
        )
        self._waiting: dict[str, asyncio.Future[DeliveryOutcome]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._connections = asyncio.Semaphore(settings.max_connections)
        self._timer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def channel_type(self) -> ChannelType:
        """Always :attr:`ChannelType.EMAIL`."""
        return ChannelType.EMAIL

    @property
    def limits(self) -> ChannelLimits:
        """No length limit and no rate limit of its own (the server's replies govern)."""
        return ChannelLimits()

    @property
    def waiting(self) -> int:
        """Events sitting in digest windows that have not gone out yet."""
        return len(self._digests)

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Mail ``event`` (alone if CRITICAL, else in the user's digest) and report the outcome."""
        profile = await find_profile(self._directory, event.user_id)
        if self._closed:  # checked after the look-up: aclose() may have run meanwhile
            return Retryable("email channel is closed")
        if not isinstance(profile, UserProfile):
            return profile
        if not profile.email:
            return PermanentFailure("user has no email address")
        item = MailItem(event.event_id, profile.email, self._renderer.render(event))
        if event.priority is Priority.CRITICAL or self._settings.digest_window_ms == 0:
            return await self._deliver([item])
        return await self._join_digest(event.user_id, item)

    async def flush_due(self) -> None:
        """Send the digests whose window has closed by the clock, and wait for them."""
        tasks = self._start_due()
        if tasks:
            await asyncio.wait(tasks)

    async def aclose(self) -> None:
        """Send every open digest now, wait for all mail in flight, refuse new sends."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        for digest in self._digests.drain():
            self._start_digest(digest)
        if self._sending:
            await asyncio.wait(set(self._sending))

    async def _join_digest(self, user_id: str, item: MailItem) -> DeliveryOutcome:
        waiter = self._waiting.get(item.event_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[item.event_id] = waiter
            self._digests.add(user_id, item.event_id, item, self._clock.now_ms())
            self._start_due()
            self._arm_timer()
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            # Taken back before its mail went out: it will not be sent at all.
            if self._digests.withdraw(user_id, item.event_id):
                self._resolve([item.event_id], Retryable("send cancelled before the digest"))
            raise

    def _arm_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._run_timer(), name="email-digest-timer")

    async def _run_timer(self) -> None:
        while (deadline := self._digests.next_deadline()) is not None:
            await asyncio.sleep(max(0, deadline - self._clock.now_ms()) / 1000)
            self._start_due()

    def _start_due(self) -> list[asyncio.Task[None]]:
        return [self._start_digest(d) for d in self._digests.due(self._clock.now_ms())]

    def _start_digest(self, digest: Digest[MailItem]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._send_digest(digest))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _send_digest(self, digest: Digest[MailItem]) -> None:
        try:
            outcome = await self._deliver(list(digest.items))
        except Exception as exc:  # a bug: hand it to every waiter, which re-raises it
            for event_id in digest.item_ids:
                waiter = self._waiting.pop(event_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
            return
        self._resolve(digest.item_ids, outcome)

    def _resolve(self, event_ids: Sequence[str], outcome: DeliveryOutcome) -> None:
        for event_id in event_ids:
            waiter = self._waiting.pop(event_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(outcome)

    async def _deliver(self, items: list[MailItem]) -> DeliveryOutcome:
        message = compose_message(items, self._settings.from_address, self._clock.now_ms())
        async with self._connections:
            try:
                await self._transmit(message, items[-1].address)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                return _outcome_for_reply(refused.code, refused.message)
            except aiosmtplib.SMTPResponseException as exc:
                return _outcome_for_reply(exc.code, exc.message)
            except (
                aiosmtplib.SMTPTimeoutError,
                aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPConnectError,
            ) as exc:
                return Retryable(f"SMTP connection failed: {_masked(exc.message)}")
            except aiosmtplib.SMTPException as exc:
                # STARTTLS or AUTH missing on the server: configuration, not luck.
                return PermanentFailure(f"SMTP server unsuitable: {_masked(exc.message)}")
            except (OSError, TimeoutError) as exc:
                return Retryable(f"SMTP connection failed: {type(exc).__name__}")
        return Delivered(ChannelType.EMAIL)

    async def _transmit(self, message: EmailMessage, recipient: str) -> None:
        s = self._settings
        await aiosmtplib.send(
            message,
            sender=parseaddr(s.from_address)[1],
            recipients=[recipient],
            hostname=s.host,
            port=s.port,
            username=s.username or None,
            password=s.password or None,
            local_hostname=s.local_hostname,
            timeout=s.timeout_s,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=self._tls_context,
        )


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.security == "none" or settings.ca_file is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=settings.ca_file)
    return context


def _outcome_for_reply(code: int, message: str) -> DeliveryOutcome:
    error = f"SMTP {code}: {_masked(message)}"
    if 500 <= code <= 599:
        return PermanentFailure(error)
    return Retryable(error)


def _masked(text: str) -> str:
    """The server's words without any mail address in them (addresses are secrets in logs)."""
    return _ADDRESS.sub("<address>", " ".join(text.split()))[:300]
