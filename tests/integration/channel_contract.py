"""The registry of the shared channel contract suite (``test_channel_contract.py``).

Every channel adapter adds one :class:`ContractCase` to :data:`CONTRACT_CASES`:
a name and a factory, an async context manager that starts the adapter's
loopback server and yields a :class:`ContractRig`:

* ``channel`` - the adapter, talking to the live loopback server, built with
  a short timeout (``SLOW_TIMEOUT_S``);
* ``unreachable`` - the same adapter kind aimed at a closed port;
* ``arrange(scenario)`` - make the server answer the *next* send with that
  scenario (``SUCCESS`` needs nothing);
* the users: ``reachable`` has an address, ``addressless`` is known but has
  none for this channel (``UNKNOWN_USER`` is in no directory);
* ``retry_after_ms`` - what ``Retryable.retry_after_ms`` must be after
  ``RETRY`` (``None`` for a protocol without one, like SMTP);
* ``secrets`` - strings that must never appear in an outcome's error or a
  log line (tokens, webhook URLs, passwords).

To add a channel (email, push, ...), write a factory like the ones below and
append ``ContractCase("name", factory)``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

from tests.integration.mail_push_servers import SmtpRecorder, push_service, smtp_server
from tests.loopback.discord_api import FakeDiscord, rate_limited
from tests.loopback.json_sink import FakeJsonSink
from tests.loopback.server import Scripted, closed_port
from tests.loopback.slack_api import FakeSlack, slack_error
from tests.loopback.telegram_api import TOKEN, FakeTelegram, error
from tests.loopback.webhook_receiver import SECRET, FakeReceiver
from tradewire.channels import InMemoryDirectory, UserProfile
from tradewire.channels.apprise_channel import AppriseChannel
from tradewire.channels.discord import DiscordChannel
from tradewire.channels.email import EmailChannel, SmtpSettings
from tradewire.channels.push import VapidSettings, WebPushChannel, generate_vapid_keys
from tradewire.channels.slack import SlackChannel
from tradewire.channels.telegram import TelegramBotApi, TelegramChannel
from tradewire.channels.templates import TemplateRenderer
from tradewire.channels.webhook import WebhookChannel
from tradewire.delivery.model import ChannelType
from tradewire.delivery.ports import Channel, RateLimit

__all__ = ["CONTRACT_CASES", "ContractCase", "ContractRig", "Scenario"]

UNKNOWN_USER = "u-unknown"
SLOW_TIMEOUT_S = 0.3
"""Adapters under contract use this timeout; ``Scenario.SLOW`` answers later than it."""
SLOW_DELAY_S = 0.8
RENDERER = TemplateRenderer()


class Scenario(enum.Enum):
    """What the server does with the next send."""

    SUCCESS = "success"
    RETRY = "retry"
    """Rate limited (429 with a retry-after), or the protocol's "try later"."""
    SERVER_ERROR = "server_error"
    """The service failed (5xx): retryable."""
    PERMANENT = "permanent"
    """The service refuses for good (blocked bot, deleted webhook, 410, 550)."""
    SLOW = "slow"
    """No answer within the adapter's timeout."""


@dataclass
class ContractRig:
    """One adapter wired to its loopback server, as the contract suite needs it."""

    channel: Channel
    unreachable: Channel
    arrange: Callable[[Scenario], Awaitable[None]]
    reachable: str
    addressless: str
    retry_after_ms: int | None
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class ContractCase:
    """A channel under the contract: its name and how to build its rig."""

    name: str
    rig: Callable[[], AbstractAsyncContextManager[ContractRig]]


# -- Telegram --------------------------------------------------------------------------


@asynccontextmanager
async def telegram_rig() -> AsyncIterator[ContractRig]:
    scripts = {
        Scenario.RETRY: error(429, "Too Many Requests: retry after 3", retry_after=3),
        Scenario.SERVER_ERROR: error(500, "Internal Server Error"),
        Scenario.PERMANENT: error(403, "Forbidden: bot was blocked by the user"),
        Scenario.SLOW: Scripted.json(200, {"ok": True, "result": {}}, delay_s=SLOW_DELAY_S),
    }
    directory = InMemoryDirectory(
        [UserProfile("u-ok", telegram_chat_id="1001"), UserProfile("u-none", email="a@b.c")]
    )
    fast = RateLimit(1, 10)
    async with (
        FakeTelegram() as fake,
        TelegramBotApi(TOKEN, api_base=fake.base_url, timeout_s=SLOW_TIMEOUT_S) as api,
        TelegramBotApi(TOKEN, api_base=f"http://127.0.0.1:{closed_port()}") as down_api,
        TelegramChannel(api, directory, RENDERER, per_chat=fast) as channel,
        TelegramChannel(down_api, directory, RENDERER, per_chat=fast) as unreachable,
    ):

        async def arrange(scenario: Scenario) -> None:
            if scenario in scripts:
                fake.script.append(scripts[scenario])

        yield ContractRig(
            channel, unreachable, arrange, "u-ok", "u-none", 3_000, (TOKEN, f"bot{TOKEN}")
        )


# -- Discord ---------------------------------------------------------------------------


@asynccontextmanager
async def discord_rig() -> AsyncIterator[ContractRig]:
    scripts = {
        Scenario.RETRY: rate_limited(3.0),
        Scenario.SERVER_ERROR: Scripted.json(500, {"message": "500: Internal Server Error"}),
        Scenario.PERMANENT: Scripted.json(404, {"message": "Unknown Webhook", "code": 10015}),
        Scenario.SLOW: Scripted.json(200, {"id": "1"}, delay_s=SLOW_DELAY_S),
    }
    async with FakeDiscord() as fake:
        url = fake.url()
        down = url.replace(fake.base_url, f"http://127.0.0.1:{closed_port()}")
        live = InMemoryDirectory(
            [UserProfile("u-ok", discord_webhook_url=url), UserProfile("u-none")]
        )
        dead = InMemoryDirectory([UserProfile("u-ok", discord_webhook_url=down)])
        async with (
            DiscordChannel(live, RENDERER, timeout_s=SLOW_TIMEOUT_S) as channel,
            DiscordChannel(dead, RENDERER) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                if scenario in scripts:
                    fake.script.append(scripts[scenario])

            token = url.rsplit("/", 1)[1]
            yield ContractRig(
                channel, unreachable, arrange, "u-ok", "u-none", 3_000, (url, down, token)
            )


# -- Slack -----------------------------------------------------------------------------


@asynccontextmanager
async def slack_rig() -> AsyncIterator[ContractRig]:
    scripts = {
        Scenario.RETRY: slack_error(429, "rate_limited", {"Retry-After": "3"}),
        Scenario.SERVER_ERROR: slack_error(500, "rollup_error"),
        Scenario.PERMANENT: slack_error(410, "channel_is_archived"),
        Scenario.SLOW: Scripted(200, b"ok", content_type="text/html", delay_s=SLOW_DELAY_S),
    }
    async with FakeSlack() as fake:
        url = fake.url()
        down = url.replace(fake.base_url, f"http://127.0.0.1:{closed_port()}")
        live = InMemoryDirectory(
            [UserProfile("u-ok", slack_webhook_url=url), UserProfile("u-none")]
        )
        dead = InMemoryDirectory([UserProfile("u-ok", slack_webhook_url=down)])
        async with (
            SlackChannel(live, RENDERER, timeout_s=SLOW_TIMEOUT_S) as channel,
            SlackChannel(dead, RENDERER) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                if scenario in scripts:
                    fake.script.append(scripts[scenario])

            path = url.split("/services/", 1)[1]
            yield ContractRig(
                channel, unreachable, arrange, "u-ok", "u-none", 3_000, (url, down, path)
            )


# -- signed webhook --------------------------------------------------------------------


@asynccontextmanager
async def webhook_rig() -> AsyncIterator[ContractRig]:
    scripts = {
        Scenario.RETRY: Scripted.json(429, {"error": "slow down"}, {"Retry-After": "3"}),
        Scenario.SERVER_ERROR: Scripted.json(503, {"error": "unavailable"}),
        Scenario.PERMANENT: Scripted.json(410, {"error": "gone"}),
        Scenario.SLOW: Scripted.json(200, {}, delay_s=SLOW_DELAY_S),
    }
    async with FakeReceiver() as fake:
        url = fake.url("tok_0123456789abcdef")
        down = url.replace(fake.base_url, f"http://127.0.0.1:{closed_port()}")
        live = InMemoryDirectory([UserProfile("u-ok", webhook_url=url), UserProfile("u-none")])
        dead = InMemoryDirectory([UserProfile("u-ok", webhook_url=down)])
        kind = ChannelType.SLACK  # the seed has no generic-webhook slot; any one will do
        async with (
            WebhookChannel(
                live, RENDERER, channel_type=kind, secret=SECRET, timeout_s=SLOW_TIMEOUT_S
            ) as channel,
            WebhookChannel(dead, RENDERER, channel_type=kind, secret=SECRET) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                if scenario in scripts:
                    fake.script.append(scripts[scenario])

            yield ContractRig(
                channel, unreachable, arrange, "u-ok", "u-none", 3_000, (url, down, SECRET)
            )


# -- Apprise (json:// to a loopback endpoint) -------------------------------------------


@asynccontextmanager
async def apprise_rig() -> AsyncIterator[ContractRig]:
    # Apprise only answers "sent" or "not sent": a refusing server is
    # indistinguishable from a failing one, and no retry-after comes back. Its
    # permanent failure is a URL Apprise does not understand, so PERMANENT
    # changes the user's URL rather than the server's answer.
    scripts = {
        Scenario.RETRY: Scripted.json(429, {"error": "slow down"}, {"Retry-After": "3"}),
        Scenario.SERVER_ERROR: Scripted.json(500, {"error": "boom"}),
        Scenario.SLOW: Scripted.json(200, {}, delay_s=SLOW_DELAY_S),
    }
    async with FakeJsonSink() as fake:
        url = f"json://127.0.0.1:{fake.port}/hooks/tok_apprise0123456789"
        down = url.replace(str(fake.port), str(closed_port()))
        live = InMemoryDirectory([UserProfile("u-ok", apprise_url=url), UserProfile("u-none")])
        dead = InMemoryDirectory([UserProfile("u-ok", apprise_url=down)])
        kind = ChannelType.DISCORD  # the seed has no Apprise slot; any one will do
        async with (
            AppriseChannel(live, RENDERER, channel_type=kind, timeout_s=SLOW_TIMEOUT_S) as ch,
            AppriseChannel(dead, RENDERER, channel_type=kind, timeout_s=10) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                if scenario is Scenario.PERMANENT:
                    live.put(
                        UserProfile("u-ok", apprise_url="nosuchservice://tok_apprise0123456789")
                    )
                elif scenario in scripts:
                    live.put(UserProfile("u-ok", apprise_url=url))
                    fake.script.append(scripts[scenario])

            secrets = (url, down, "tok_apprise0123456789")
            yield ContractRig(ch, unreachable, arrange, "u-ok", "u-none", None, secrets)


# -- Email -----------------------------------------------------------------------------


@asynccontextmanager
async def email_rig() -> AsyncIterator[ContractRig]:
    # SMTP has no retry-after: a 4xx reply is "try later" without a time.
    password = "smtp-pass-0123456789"
    recorder = SmtpRecorder()
    address = "alice@example.com"

    def settings(port: int, timeout_s: float) -> SmtpSettings:
        return SmtpSettings(
            host="127.0.0.1",
            port=port,
            from_address="alerts@example.com",
            security="none",
            username="tw",
            password=password,
            timeout_s=timeout_s,
            digest_window_ms=0,
        )

    async with smtp_server(recorder, credentials=("tw", password)) as server:
        directory = InMemoryDirectory([UserProfile("u-ok", email=address), UserProfile("u-none")])
        async with (
            EmailChannel(settings(server.port, SLOW_TIMEOUT_S), directory, RENDERER) as channel,
            EmailChannel(settings(closed_port(), 2.0), directory, RENDERER) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                recorder.rcpt_replies.clear()
                recorder.data_reply, recorder.data_delay_s = None, 0.0
                if scenario is Scenario.RETRY:
                    recorder.rcpt_replies[address] = "451 4.7.1 Try again later"
                elif scenario is Scenario.SERVER_ERROR:
                    recorder.data_reply = "421 4.3.0 Service not available"
                elif scenario is Scenario.PERMANENT:
                    recorder.rcpt_replies[address] = "550 5.1.1 Recipient address rejected"
                elif scenario is Scenario.SLOW:
                    recorder.data_delay_s = SLOW_DELAY_S

            yield ContractRig(channel, unreachable, arrange, "u-ok", "u-none", None, (password,))


# -- Web Push --------------------------------------------------------------------------


@asynccontextmanager
async def push_rig() -> AsyncIterator[ContractRig]:
    keys = generate_vapid_keys()
    vapid = VapidSettings(
        private_key=keys.private_key,
        subject="mailto:ops@example.com",
        timeout_s=SLOW_TIMEOUT_S,
        allow_http_endpoints=True,
    )
    async with push_service(keys.public_key) as service:
        good = service.subscribe("accept")
        endpoint_of = {
            Scenario.SUCCESS: good,
            Scenario.RETRY: service.subscribe("rate_limited", retry_after="7"),
            Scenario.SERVER_ERROR: service.subscribe("error"),
            Scenario.PERMANENT: service.subscribe("gone"),
            Scenario.SLOW: service.subscribe("slow"),
        }
        down = UserProfile(
            "u-ok",
            push_subscriptions=(
                replace(good.subscription, endpoint=f"http://127.0.0.1:{closed_port()}/push/x"),
            ),
        )
        live = InMemoryDirectory([UserProfile("u-ok", push_subscriptions=(good.subscription,))])
        live.put(UserProfile("u-none", email="a@b.c"))
        async with (
            WebPushChannel(vapid, live, RENDERER) as channel,
            WebPushChannel(vapid, InMemoryDirectory([down]), RENDERER) as unreachable,
        ):

            async def arrange(scenario: Scenario) -> None:
                browser = endpoint_of[scenario]
                live.put(UserProfile("u-ok", push_subscriptions=(browser.subscription,)))

            private = (keys.private_key, good.subscription.auth)
            yield ContractRig(channel, unreachable, arrange, "u-ok", "u-none", 7_000, private)


CONTRACT_CASES: list[ContractCase] = [
    ContractCase("telegram", telegram_rig),
    ContractCase("discord", discord_rig),
    ContractCase("slack", slack_rig),
    ContractCase("webhook", webhook_rig),
    ContractCase("apprise", apprise_rig),
    ContractCase("email", email_rig),
    ContractCase("push", push_rig),
]
"""Every adapter under the shared contract; append yours."""
