"""The PUSH channel against a loopback Web Push service that decrypts what it gets."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import socket
from collections.abc import AsyncIterator
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.integration.mail_push_servers import (
    WAIT,
    FieldsRenderer,
    PushService,
    push_service,
)
from tradewire.channels import InMemoryDirectory, PushSubscription, UserProfile
from tradewire.channels.push import (
    MAX_BODY_CHARS,
    VapidKeyPair,
    VapidSettings,
    WebPushChannel,
    generate_vapid_keys,
    push_payload,
)
from tradewire.channels.templates import TemplateRenderer
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    Channel,
    Delivered,
    ManualClock,
    PermanentFailure,
    Retryable,
    SystemClock,
)
from tradewire.errors import ConfigError

SUBJECT = "mailto:ops@tradewire.test"
PAYLOAD = b'{"symbol": "BTCUSDT", "qty": "0.1"}'


def event(
    user: str = "alice",
    priority: Priority = Priority.CRITICAL,
    event_id: str = "evt-1",
    payload: bytes = PAYLOAD,
) -> Event:
    return Event(event_id=event_id, user_id=user, event_type=1, priority=priority, payload=payload)


@pytest.fixture(scope="module")
def vapid() -> VapidKeyPair:
    return generate_vapid_keys()


@pytest.fixture
async def service(vapid: VapidKeyPair) -> AsyncIterator[PushService]:
    async with push_service(vapid.public_key) as running:
        yield running


@pytest.fixture
def directory() -> InMemoryDirectory:
    return InMemoryDirectory()


@pytest.fixture
async def channel(
    vapid: VapidKeyPair, directory: InMemoryDirectory
) -> AsyncIterator[WebPushChannel]:
    settings = VapidSettings(
        private_key=vapid.private_key,
        subject=SUBJECT,
        timeout_s=WAIT,
        allow_http_endpoints=True,
    )
    async with WebPushChannel(settings, directory, FieldsRenderer()) as opened:
        yield opened


def register(directory: InMemoryDirectory, user: str, *subs: PushSubscription) -> None:
    directory.put(UserProfile(user, push_subscriptions=subs))


def remaining(directory: InMemoryDirectory, user: str) -> list[str]:
    return [s.endpoint for s in directory.profiles[user].push_subscriptions]


# ------------------------------------------------------------ keys and config


def test_generated_vapid_keys_are_a_p256_pair() -> None:
    keys = generate_vapid_keys()

    private = base64.urlsafe_b64decode(keys.private_key + "==")
    public = base64.urlsafe_b64decode(keys.public_key + "=")
    assert len(private) == 32
    assert len(public) == 65 and public[0] == 4
    assert "=" not in keys.public_key
    other = generate_vapid_keys()
    assert other.private_key != keys.private_key
    assert keys.private_key not in repr(keys)
    assert keys.public_key in repr(keys)


async def test_channel_publishes_the_application_server_key(
    vapid: VapidKeyPair, directory: InMemoryDirectory
) -> None:
    settings = VapidSettings(private_key=vapid.private_key, subject=SUBJECT)
    async with httpx.AsyncClient() as http:
        channel = WebPushChannel(settings, directory, FieldsRenderer(), http=http)
        await channel.aclose()  # leaves a shared client open
        assert not http.is_closed

    assert channel.application_server_key == vapid.public_key
    assert isinstance(channel, Channel)
    assert channel.channel_type is ChannelType.PUSH
    assert channel.limits.max_message_length == MAX_BODY_CHARS
    assert vapid.private_key not in repr(settings)


async def test_a_pem_private_key_is_accepted(directory: InMemoryDirectory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    settings = VapidSettings(private_key=pem, subject=SUBJECT)
    async with WebPushChannel(settings, directory, FieldsRenderer()) as channel:
        assert channel.application_server_key == base64.urlsafe_b64encode(public).decode().rstrip(
            "="
        )


def test_a_bad_private_key_is_a_config_error_that_does_not_echo_it(
    directory: InMemoryDirectory,
) -> None:
    secret = "not-a-key-but-secret-looking"
    with pytest.raises(ConfigError) as raised:
        WebPushChannel(
            VapidSettings(private_key=secret, subject=SUBJECT), directory, FieldsRenderer()
        )
    assert secret not in str(raised.value)
    assert raised.value.__cause__ is None


def test_the_subject_must_be_a_contact_url(vapid: VapidKeyPair) -> None:
    with pytest.raises(ConfigError):
        VapidSettings(private_key=vapid.private_key, subject="ops@tradewire.test")


# ------------------------------------------------------------ delivery


@pytest.mark.parametrize(
    ("priority", "urgency", "ttl"),
    [
        (Priority.CRITICAL, "high", "86400"),
        (Priority.NORMAL, "normal", "86400"),
        (Priority.INFORMATIONAL, "low", "60"),
    ],
)
async def test_encrypted_payload_reaches_the_browser(
    service: PushService,
    channel: WebPushChannel,
    directory: InMemoryDirectory,
    priority: Priority,
    urgency: str,
    ttl: str,
) -> None:
    browser = service.subscribe()
    register(directory, "alice", browser.subscription)

    outcome = await channel.send(event(priority=priority), attempt=1)

    assert outcome == Delivered(ChannelType.PUSH)
    assert service.refused == []
    [push] = service.received
    assert push.payload == {
        "event_id": "evt-1",
        "title": f"Event 1 for alice ({priority.name})",
        "body": f"Event 1 for alice ({priority.name})\nid: evt-1\n" + PAYLOAD.decode(),
        "priority": priority.name,
        "event_type": 1,
    }
    assert push.headers["content-encoding"] == "aes128gcm"
    assert push.headers["urgency"] == urgency
    assert push.headers["ttl"] == ttl
    assert push.claims["aud"] == service.origin
    assert push.claims["sub"] == SUBJECT


async def test_every_subscription_gets_it_and_one_acceptance_is_enough(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    laptop, phone, broken = service.subscribe(), service.subscribe(), service.subscribe("error")
    register(directory, "alice", laptop.subscription, phone.subscription, broken.subscription)

    outcome = await channel.send(event(), attempt=1)

    assert outcome == Delivered(ChannelType.PUSH)
    assert sorted(p.name for p in service.received) == sorted([laptop.name, phone.name])
    assert service.hits[broken.name] == 1
    assert len(remaining(directory, "alice")) == 3


async def test_vapid_token_is_reused_for_one_origin(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(directory, "alice", service.subscribe().subscription)

    await channel.send(event(event_id="one"), attempt=1)
    await channel.send(event(event_id="two"), attempt=1)

    first, second = service.received
    assert first.headers["authorization"] == second.headers["authorization"]


@pytest.mark.parametrize("behaviour", ["gone", "not_found"])
async def test_gone_subscriptions_are_removed(
    service: PushService,
    channel: WebPushChannel,
    directory: InMemoryDirectory,
    behaviour: Any,
) -> None:
    gone, alive = service.subscribe(behaviour), service.subscribe()
    register(directory, "alice", gone.subscription, alive.subscription)

    outcome = await channel.send(event(), attempt=1)

    assert outcome == Delivered(ChannelType.PUSH)
    assert remaining(directory, "alice") == [alive.subscription.endpoint]


async def test_when_the_last_subscription_is_gone_the_failure_is_permanent(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(
        directory,
        "alice",
        service.subscribe("gone").subscription,
        service.subscribe("not_found").subscription,
    )

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert remaining(directory, "alice") == []
    assert await channel.send(event(), attempt=2) == PermanentFailure(
        "user has no push subscription"
    )


async def test_rate_limit_is_retryable_after_the_given_delay(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(directory, "alice", service.subscribe("rate_limited", retry_after="7").subscription)

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms == 7_000
    assert "429" in outcome.error
    assert "/push/" not in outcome.error  # the endpoint is a capability URL


async def test_retry_after_as_an_http_date(
    service: PushService, vapid: VapidKeyPair, directory: InMemoryDirectory
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    when = dt.datetime.fromtimestamp(clock.now_ms() // 1000 + 120, dt.UTC)
    sub = service.subscribe("rate_limited", retry_after=format_datetime(when, usegmt=True))
    register(directory, "alice", sub.subscription)
    settings = VapidSettings(
        private_key=vapid.private_key, subject=SUBJECT, allow_http_endpoints=True
    )
    async with WebPushChannel(settings, directory, FieldsRenderer(), clock=clock) as channel:
        outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms is not None
    assert 119_000 <= outcome.retry_after_ms <= 120_000


async def test_server_error_is_retryable_and_keeps_the_subscription(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(directory, "alice", service.subscribe("error").subscription)

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms is None
    assert len(remaining(directory, "alice")) == 1


async def test_payload_too_large_is_permanent(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(directory, "alice", service.subscribe("too_large").subscription)

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert "413" in outcome.error


async def test_retryable_wins_over_permanent_when_nothing_was_accepted(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    register(
        directory,
        "alice",
        service.subscribe("too_large").subscription,
        service.subscribe("rate_limited", retry_after="3").subscription,
    )

    outcome = await channel.send(event(), attempt=1)

    assert outcome == Retryable(outcome.error, 3_000)  # type: ignore[union-attr]


async def test_user_without_subscriptions_is_permanent(
    channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    directory.put(UserProfile("alice", email="alice@example.com"))

    assert await channel.send(event(), attempt=1) == PermanentFailure(
        "user has no push subscription"
    )
    assert isinstance(await channel.send(event("stranger"), attempt=1), PermanentFailure)


async def test_with_the_deployment_templates(
    service: PushService, vapid: VapidKeyPair, directory: InMemoryDirectory
) -> None:
    browser = service.subscribe()
    register(directory, "alice", browser.subscription)
    fill = {
        "order_id": "o-1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.1",
        "fill_price": "45000",
        "exchange": "binance",
    }
    templated = WebPushChannel(
        VapidSettings(private_key=vapid.private_key, subject=SUBJECT, allow_http_endpoints=True),
        directory,
        TemplateRenderer(),
    )
    async with templated:
        outcome = await templated.send(event(payload=json.dumps(fill).encode()), attempt=1)

    assert outcome == Delivered(ChannelType.PUSH)
    [push] = service.received
    assert push.payload["title"] == "BUY 0.1 BTCUSDT filled at 45000 on binance"
    assert "<" not in push.payload["body"]


async def test_unreachable_service_is_retryable(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sub = service.subscribe().subscription
    dead = PushSubscription(f"http://127.0.0.1:{port}/push/x", sub.p256dh, sub.auth)
    register(directory, "alice", dead)

    outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, Retryable)
    assert remaining(directory, "alice") == [dead.endpoint]


async def test_plain_http_endpoints_are_refused_by_default(
    service: PushService, vapid: VapidKeyPair, directory: InMemoryDirectory
) -> None:
    register(directory, "alice", service.subscribe().subscription)
    settings = VapidSettings(private_key=vapid.private_key, subject=SUBJECT)
    async with WebPushChannel(settings, directory, FieldsRenderer()) as channel:
        outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert service.hits == {}


async def test_invalid_subscription_keys_are_permanent(
    service: PushService, channel: WebPushChannel, directory: InMemoryDirectory
) -> None:
    sub = service.subscribe().subscription
    register(directory, "alice", PushSubscription(sub.endpoint, "bm90LWEta2V5", sub.auth))

    outcome = await channel.send(event(), attempt=1)

    assert outcome == PermanentFailure("push subscription keys are invalid")


async def test_a_foreign_vapid_key_is_refused_by_the_service(
    service: PushService, directory: InMemoryDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(directory, "alice", service.subscribe().subscription)
    other = generate_vapid_keys()
    settings = VapidSettings(
        private_key=other.private_key, subject=SUBJECT, allow_http_endpoints=True
    )
    async with WebPushChannel(settings, directory, FieldsRenderer()) as channel:
        outcome = await channel.send(event(), attempt=1)

    assert isinstance(outcome, PermanentFailure)
    assert "403" in outcome.error
    assert other.private_key not in caplog.text


# ------------------------------------------------------------ payload size


@given(text=st.text(min_size=0, max_size=6_000), title=st.text(max_size=400))
def test_payload_always_fits_a_push_message(text: str, title: str) -> None:
    class Long(FieldsRenderer):
        def render(self, event: Event) -> Any:
            base = super().render(event)
            return type(base)(title, text, base.html, "", "", "")

    data = push_payload(event(), Long())

    assert len(data) <= 3993
    decoded = json.loads(data)
    assert set(decoded) == {"event_id", "title", "body", "priority", "event_type"}
    assert len(decoded["body"]) <= MAX_BODY_CHARS
    assert text.startswith(decoded["body"].removesuffix("…"))
