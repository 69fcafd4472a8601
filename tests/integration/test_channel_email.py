"""The EMAIL channel against a real aiosmtpd server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mail_push_servers import (
    WAIT,
    CertFiles,
    FieldsRenderer,
    SmtpServer,
    self_signed_certificate,
    smtp_server,
)
from tradewire.channels import InMemoryDirectory, UserProfile
from tradewire.channels._email_message import EVENT_ID_HEADER, message_id_for
from tradewire.channels.email import EmailChannel, SmtpSettings
from tradewire.channels.templates import TemplateRenderer
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    Channel,
    Delivered,
    ManualClock,
    PermanentFailure,
    Retryable,
)
from tradewire.errors import ConfigError, StoreError

FROM = "Tradewire <alerts@tradewire.test>"
ALICE = "alice@example.com"
BOB = "bob@example.com"


def event(
    user: str = "alice",
    priority: Priority = Priority.CRITICAL,
    event_id: str = "evt-1",
    payload: bytes = b'{"symbol": "BTC<USDT>", "qty": "0.1"}',
) -> Event:
    return Event(event_id=event_id, user_id=user, event_type=1, priority=priority, payload=payload)


@pytest.fixture
def directory() -> InMemoryDirectory:
    return InMemoryDirectory(
        [
            UserProfile("alice", email=ALICE),
            UserProfile("bob", email=BOB),
            UserProfile("nomail"),
        ]
    )


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as running:
        yield running


def settings_for(server: SmtpServer, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "from_address": FROM,
        "security": "none",
        "timeout_s": WAIT,
        "local_hostname": "localhost",
        "digest_window_ms": 0,
    }
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
async def make_channel(
    directory: InMemoryDirectory,
) -> AsyncIterator[Callable[..., EmailChannel]]:
    opened: list[EmailChannel] = []

    def make(settings: SmtpSettings, **kwargs: Any) -> EmailChannel:
        channel = EmailChannel(settings, directory, FieldsRenderer(), **kwargs)
        opened.append(channel)
        return channel

    yield make
    for channel in opened:
        await channel.aclose()


async def until(condition: Callable[[], bool]) -> None:
    """Let the send tasks run until ``condition`` (the channel offers no event to await)."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def parts_of(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


# ------------------------------------------------------------ single mails


async def test_is_a_channel_with_limits_as_data(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server))
    assert isinstance(channel, Channel)
    assert channel.channel_type is ChannelType.EMAIL
    assert channel.limits.supports_ack is False


async def test_critical_event_is_one_multipart_mail(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server))

    outcome = await channel.send(event(), attempt=1)

    assert outcome == Delivered(ChannelType.EMAIL)
    [mail] = server.recorder.received
    assert mail.mail_from == "alerts@tradewire.test"
    assert mail.rcpt_tos == (ALICE,)
    msg = mail.message
    assert msg["From"] == FROM
    assert msg["To"] == ALICE
    assert msg["Subject"] == "Event 1 for alice (CRITICAL)"
    assert msg["Message-ID"] == message_id_for(["evt-1"], FROM)
    assert msg["Message-ID"].endswith("@tradewire.test>")
    assert msg.get_all(EVENT_ID_HEADER) == ["evt-1"]
    assert msg.get_content_type() == "multipart/alternative"
    parts = parts_of(msg)
    assert list(parts) == ["text/plain", "text/html"]
    assert "BTC<USDT>" in parts["text/plain"]
    assert "BTC&lt;USDT&gt;" in parts["text/html"]
    assert "<USDT>" not in parts["text/html"]


async def test_a_retried_event_keeps_its_message_id(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server))

    assert isinstance(await channel.send(event(), attempt=1), Delivered)
    assert isinstance(await channel.send(event(), attempt=2), Delivered)

    ids = {mail.message["Message-ID"] for mail in server.recorder.received}
    assert len(server.recorder.received) == 2
    assert len(ids) == 1


# ------------------------------------------------------------ failures


async def test_rejected_recipient_550_is_permanent_without_the_address(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    server.recorder.rcpt_replies[ALICE] = f"550 5.1.1 <{ALICE}>: Recipient address rejected"
    channel = make_channel(settings_for(server))

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert "550" in outcome.error
    assert ALICE not in outcome.error
    assert server.recorder.received == []


async def test_temporary_rejection_451_is_retryable(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    server.recorder.rcpt_replies[ALICE] = "451 4.7.1 Greylisted, try again later"
    channel = make_channel(settings_for(server))

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)
    assert "451" in outcome.error


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("554 5.7.1 Message rejected as spam", PermanentFailure),
        ("452 4.3.1 Out of memory", Retryable),
    ],
)
async def test_data_reply_decides_the_outcome(
    server: SmtpServer,
    make_channel: Callable[..., EmailChannel],
    reply: str,
    kind: type[object],
) -> None:
    server.recorder.data_reply = reply
    channel = make_channel(settings_for(server))

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, kind)
    assert reply[:3] in getattr(outcome, "error", "")


@pytest.mark.parametrize("user", ["nomail", "stranger"])
async def test_user_without_an_address_is_permanent(
    server: SmtpServer, make_channel: Callable[..., EmailChannel], user: str
) -> None:
    channel = make_channel(settings_for(server))

    for priority in (Priority.CRITICAL, Priority.NORMAL):
        outcome = await channel.send(event(user, priority), attempt=1)
        assert isinstance(outcome, PermanentFailure)
    assert channel.waiting == 0
    assert server.recorder.received == []


class FailingDirectory(InMemoryDirectory):
    """A directory whose store is down."""

    async def profile(self, user_id: str) -> UserProfile | None:
        raise StoreError("store closed")


async def test_a_failing_directory_is_retryable(server: SmtpServer) -> None:
    async with EmailChannel(settings_for(server), FailingDirectory(), FieldsRenderer()) as channel:
        outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)


async def test_with_the_deployment_templates(
    server: SmtpServer, directory: InMemoryDirectory
) -> None:
    fill = {
        "order_id": "o-1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.1",
        "fill_price": "45000",
        "exchange": "binance",
    }
    renderer = TemplateRenderer()
    async with EmailChannel(settings_for(server), directory, renderer) as channel:
        outcome = await channel.send(event(payload=json.dumps(fill).encode()), attempt=1)

    assert outcome == Delivered(ChannelType.EMAIL)
    [mail] = server.recorder.received
    assert mail.message["Subject"] == "BUY 0.1 BTCUSDT filled at 45000 on binance"
    parts = parts_of(mail.message)
    assert "Fill price: 45000" in parts["text/plain"]
    assert "<strong>" in parts["text/html"]


async def test_refused_connection_is_retryable(
    make_channel: Callable[..., EmailChannel],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = make_channel(
        SmtpSettings(host="127.0.0.1", port=port, from_address=FROM, security="none")
    )

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)


async def test_silent_server_times_out_as_retryable(
    make_channel: Callable[..., EmailChannel],
) -> None:
    connected = asyncio.Event()

    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    silent = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    try:
        port = silent.sockets[0].getsockname()[1]
        channel = make_channel(
            SmtpSettings(
                host="127.0.0.1",
                port=port,
                from_address=FROM,
                security="none",
                timeout_s=0.2,
                local_hostname="localhost",
            )
        )

        outcome = await channel.send(event(), attempt=1)

        assert connected.is_set()
        assert isinstance(outcome, Retryable)
    finally:
        silent.close()
        await silent.wait_closed()


# ------------------------------------------------------------ AUTH and TLS


async def test_auth_with_username_and_password(
    make_channel: Callable[..., EmailChannel],
) -> None:
    async with smtp_server(credentials=("mailer", "s3cret-pw")) as server:
        channel = make_channel(settings_for(server, username="mailer", password="s3cret-pw"))

        outcome = await channel.send(event(), attempt=1)

        assert outcome == Delivered(ChannelType.EMAIL)
        [mail] = server.recorder.received
        assert mail.authenticated_as == "mailer"


async def test_wrong_password_is_permanent_and_never_shown(
    make_channel: Callable[..., EmailChannel], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with smtp_server(credentials=("mailer", "s3cret-pw")) as server:
        settings = settings_for(server, username="mailer", password="wrong-pw-123")
        channel = make_channel(settings)

        outcome = await channel.send(event(), attempt=1)

        assert isinstance(outcome, PermanentFailure)
        assert "535" in outcome.error
        assert "wrong-pw-123" not in outcome.error
        assert "wrong-pw-123" not in repr(settings)
        assert "wrong-pw-123" not in caplog.text
        assert server.recorder.received == []


async def test_server_without_auth_and_required_auth_is_permanent(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server, username="mailer", password="pw"))

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert "AUTH" in outcome.error


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return self_signed_certificate(tmp_path)


async def test_starttls_with_a_trusted_certificate(
    cert: CertFiles, make_channel: Callable[..., EmailChannel]
) -> None:
    async with smtp_server(starttls=cert, credentials=("mailer", "pw")) as server:
        channel = make_channel(
            settings_for(
                server,
                security="starttls",
                ca_file=str(cert.cert),
                username="mailer",
                password="pw",
            )
        )

        outcome = await channel.send(event(), attempt=1)

        assert outcome == Delivered(ChannelType.EMAIL)
        [mail] = server.recorder.received
        assert mail.over_tls
        assert mail.authenticated_as == "mailer"


async def test_starttls_refuses_an_untrusted_certificate(
    cert: CertFiles, make_channel: Callable[..., EmailChannel]
) -> None:
    async with smtp_server(starttls=cert) as server:
        channel = make_channel(settings_for(server, security="starttls"))

        outcome = await channel.send(event(), attempt=1)

        # An expired or replaced certificate gets fixed: retry, then escalate.
        assert isinstance(outcome, Retryable)
        assert "SSLCertVerificationError" in outcome.error
        assert server.recorder.received == []


async def test_starttls_required_but_not_offered_is_permanent(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server, security="starttls"))

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert "STARTTLS" in outcome.error


async def test_implicit_tls(cert: CertFiles, make_channel: Callable[..., EmailChannel]) -> None:
    async with smtp_server(implicit_tls=cert) as server:
        channel = make_channel(settings_for(server, security="tls", ca_file=str(cert.cert)))

        outcome = await channel.send(event(), attempt=1)

        assert outcome == Delivered(ChannelType.EMAIL)
        [mail] = server.recorder.received
        assert mail.over_tls


# ------------------------------------------------------------ digests


async def test_two_normal_events_close_together_make_one_digest(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server, digest_window_ms=250))

    outcomes = await asyncio.gather(
        channel.send(event(priority=Priority.NORMAL, event_id="n-1"), attempt=1),
        channel.send(event(priority=Priority.NORMAL, event_id="n-2"), attempt=1),
        channel.send(event("bob", Priority.NORMAL, event_id="b-1"), attempt=1),
    )

    assert outcomes == [Delivered(ChannelType.EMAIL)] * 3
    by_rcpt = {mail.rcpt_tos: mail.message for mail in server.recorder.received}
    assert set(by_rcpt) == {(ALICE,), (BOB,)}
    digest = by_rcpt[(ALICE,)]
    assert digest.get_all(EVENT_ID_HEADER) == ["n-1", "n-2"]
    assert digest["Message-ID"] == message_id_for(["n-1", "n-2"], FROM)
    assert digest["Subject"] == "Event 1 for alice (NORMAL) (+1 more)"
    parts = parts_of(digest)
    assert parts["text/plain"].startswith("2 notifications")
    assert "id: n-1" in parts["text/plain"]
    assert "id: n-2" in parts["text/plain"]
    assert parts["text/html"].count("<section>") == 2
    single = by_rcpt[(BOB,)]
    assert single.get_all(EVENT_ID_HEADER) == ["b-1"]
    assert single["Subject"] == "Event 1 for bob (NORMAL)"


async def test_digest_waits_for_the_window_on_an_injected_clock(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    clock = ManualClock(1_000_000)
    channel = make_channel(settings_for(server, digest_window_ms=60_000), clock=clock)
    first = asyncio.create_task(channel.send(event(priority=Priority.NORMAL, event_id="a"), 1))
    await until(lambda: channel.waiting == 1)
    clock.advance(30_000)
    second = asyncio.create_task(channel.send(event(priority=Priority.NORMAL, event_id="b"), 1))
    await until(lambda: channel.waiting == 2)

    critical = await channel.send(event(event_id="c"), attempt=1)  # never waits for a digest
    await channel.flush_due()
    assert critical == Delivered(ChannelType.EMAIL)
    assert not first.done() and not second.done()

    clock.advance(30_000)
    await channel.flush_due()

    assert await first == await second == Delivered(ChannelType.EMAIL)
    assert [m.message.get_all(EVENT_ID_HEADER) for m in server.recorder.received] == [
        ["c"],
        ["a", "b"],
    ]


async def test_a_failed_digest_fails_every_event_in_it(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    server.recorder.rcpt_replies[ALICE] = "550 5.1.1 no such user"
    channel = make_channel(settings_for(server, digest_window_ms=250))

    outcomes = await asyncio.gather(
        channel.send(event(priority=Priority.NORMAL, event_id="n-1"), attempt=1),
        channel.send(event(priority=Priority.INFORMATIONAL, event_id="n-2"), attempt=1),
    )

    assert isinstance(outcomes[0], PermanentFailure)
    assert outcomes[0] == outcomes[1]


async def test_closing_sends_open_digests_and_then_refuses(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    channel = make_channel(settings_for(server, digest_window_ms=3_600_000))
    waiting = asyncio.create_task(channel.send(event(priority=Priority.NORMAL), attempt=1))
    await until(lambda: channel.waiting == 1)

    await channel.aclose()

    assert await waiting == Delivered(ChannelType.EMAIL)
    assert len(server.recorder.received) == 1
    assert isinstance(await channel.send(event(), attempt=2), Retryable)


async def test_a_cancelled_send_leaves_the_digest(
    server: SmtpServer, make_channel: Callable[..., EmailChannel]
) -> None:
    clock = ManualClock(0)
    channel = make_channel(settings_for(server, digest_window_ms=1_000), clock=clock)
    kept = asyncio.create_task(channel.send(event(priority=Priority.NORMAL, event_id="k"), 1))
    dropped = asyncio.create_task(channel.send(event(priority=Priority.NORMAL, event_id="d"), 1))
    await until(lambda: channel.waiting == 2)

    dropped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dropped
    clock.advance(1_000)
    await channel.flush_due()

    assert await kept == Delivered(ChannelType.EMAIL)
    [mail] = server.recorder.received
    assert mail.message.get_all(EVENT_ID_HEADER) == ["k"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"security": "ssl"},
        {"username": "mailer"},
        {"password": "pw"},
        {"from_address": ""},
        {"timeout_s": 0},
        {"digest_window_ms": -1},
    ],
)
def test_bad_settings_are_config_errors(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {"host": "127.0.0.1", "from_address": FROM}
    with pytest.raises(ConfigError) as raised:
        SmtpSettings(**(values | overrides))
    assert "pw" not in str(raised.value)
