"""Telegram, Discord, Slack and signed-webhook channels against real loopback servers.

Each fake service (``tests/loopback``) speaks the documented API shape,
including its error bodies, and records what it received, so these tests
assert the exact requests the adapters make and the outcome they report.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import re
import threading
import time
from collections.abc import AsyncIterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.integration.gateway_proc import running_gateway
from tests.integration.userevents import token_for
from tests.loopback.discord_api import FakeDiscord, rate_limited
from tests.loopback.json_sink import FakeJsonSink
from tests.loopback.server import Scripted
from tests.loopback.slack_api import FakeSlack, slack_error
from tests.loopback.telegram_api import TOKEN, FakeTelegram, error
from tests.loopback.webhook_receiver import SECRET, FakeReceiver
from tradewire.channels import InMemoryDirectory, UserProfile
from tradewire.channels.apprise_channel import AppriseChannel
from tradewire.channels.discord import DiscordChannel
from tradewire.channels.slack import SlackChannel
from tradewire.channels.telegram import TelegramBotApi, TelegramChannel
from tradewire.channels.telegram_updates import (
    AckPress,
    BotBlocked,
    ChatActivity,
    LinkRequest,
    TelegramPoller,
)
from tradewire.channels.templates import TemplateRenderer
from tradewire.channels.webhook import EVENT_ID_HEADER, WebhookChannel
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import Delivered, PermanentFailure, RateLimit, Retryable
from tradewire.wire import EventType

RENDERER = TemplateRenderer()
FILL = {
    "order_id": "ord-1",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "fill_price": "45000.10",
    "fill_quantity": "0.1",
    "exchange": "binance",
}


def event(
    event_id: str = "evt-1",
    *,
    user: str = "u1",
    priority: Priority = Priority.NORMAL,
    event_type: int = EventType.ORDER_FILLED,
    payload: dict[str, Any] | None = None,
) -> Event:
    body = msgspec.json.encode(FILL if payload is None else payload)
    return Event(
        event_id, user, int(event_type), priority, payload=body, timestamp_ms=1_767_444_060_000
    )


# -- Telegram ------------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(blocked=(2002,)) as fake:
        yield fake


def telegram_directory() -> InMemoryDirectory:
    return InMemoryDirectory(
        [
            UserProfile("u1", telegram_chat_id="1001"),
            UserProfile("blocked", telegram_chat_id="2002"),
            UserProfile("gone", telegram_chat_id="999999"),
            UserProfile("nochat"),
        ]
    )


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[TelegramBotApi]:
    async with TelegramBotApi(TOKEN, api_base=telegram.base_url, timeout_s=2) as api:
        yield api


@pytest.fixture
async def tg_channel(bot: TelegramBotApi) -> AsyncIterator[TelegramChannel]:
    fast = RateLimit(1, 5)
    async with TelegramChannel(bot, telegram_directory(), RENDERER, per_chat=fast) as channel:
        yield channel


async def test_telegram_sends_formatted_message(
    telegram: FakeTelegram, tg_channel: TelegramChannel
) -> None:
    outcome = await tg_channel.send(event(), 1)
    assert outcome == Delivered(ChannelType.TELEGRAM, needs_client_ack=False)
    (request,) = telegram.received
    assert request.method == "POST"
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body == {
        "chat_id": 1001,
        "text": RENDERER.render(event()).telegram_html,
        "parse_mode": "HTML",
    }
    assert body["text"].startswith("<b>BUY 0.1 BTCUSDT filled at 45000.10 on binance</b>\n")


async def test_telegram_critical_carries_acknowledge_button(
    telegram: FakeTelegram, tg_channel: TelegramChannel
) -> None:
    outcome = await tg_channel.send(event("evt-crit", priority=Priority.CRITICAL), 1)
    assert outcome == Delivered(ChannelType.TELEGRAM, needs_client_ack=True)
    assert telegram.received[0].json()["reply_markup"] == {
        "inline_keyboard": [[{"text": "Acknowledge", "callback_data": "ack:evt-crit"}]]
    }


async def test_telegram_refused_formatting_is_resent_as_plain_text(
    tmp_path: Path, telegram: FakeTelegram, bot: TelegramBotApi
) -> None:
    # A deployment template with markup Telegram does not know: Telegram
    # answers 400 "can't parse entities" and the words go again as plain text.
    (tmp_path / "order_filled.j2").write_text(
        '{% extends "_order.j2" %}{% block title %}Filled <blink>{{ p.symbol }}</blink>'
        "{% endblock %}"
    )
    renderer = TemplateRenderer(override_dir=tmp_path)
    crit = event("evt-p", priority=Priority.CRITICAL)
    async with TelegramChannel(bot, telegram_directory(), renderer) as channel:
        outcome = await channel.send(crit, 1)
    assert outcome == Delivered(ChannelType.TELEGRAM, needs_client_ack=True)
    first, second = (r.json() for r in telegram.received)
    assert first["parse_mode"] == "HTML"
    assert "parse_mode" not in second
    assert second["text"] == renderer.render(crit).text
    assert second["reply_markup"] == first["reply_markup"]
    assert len(telegram.sent) == 1


async def test_telegram_blocked_bot_is_permanent(tg_channel: TelegramChannel) -> None:
    outcome = await tg_channel.send(event(user="blocked"), 1)
    assert isinstance(outcome, PermanentFailure)
    assert "403" in outcome.error and "blocked" in outcome.error


async def test_telegram_unknown_chat_is_permanent(tg_channel: TelegramChannel) -> None:
    outcome = await tg_channel.send(event(user="gone"), 1)
    assert isinstance(outcome, PermanentFailure)
    assert "chat not found" in outcome.error


async def test_telegram_429_honours_retry_after(
    telegram: FakeTelegram, tg_channel: TelegramChannel
) -> None:
    telegram.script.append(error(429, "Too Many Requests: retry after 3", retry_after=3))
    outcome = await tg_channel.send(event(), 1)
    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms == 3_000
    assert TOKEN not in outcome.error


@pytest.mark.parametrize("status", [500, 502])
async def test_telegram_server_errors_are_retryable(
    status: int, telegram: FakeTelegram, tg_channel: TelegramChannel
) -> None:
    telegram.script.append(error(status, "Internal Server Error"))
    outcome = await tg_channel.send(event(), 1)
    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms is None


async def test_telegram_wrong_token_is_permanent_and_redacted(telegram: FakeTelegram) -> None:
    wrong = "654321:WRONG-token_abcdefghijklmnopqrstuvwxyz"
    async with (
        TelegramBotApi(wrong, api_base=telegram.base_url) as api,
        TelegramChannel(api, telegram_directory(), RENDERER) as channel,
    ):
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, PermanentFailure)
    assert "401" in outcome.error and wrong not in outcome.error
    assert wrong not in repr(api)


async def test_telegram_long_message_is_truncated_plain_text_not_split(
    telegram: FakeTelegram, tg_channel: TelegramChannel
) -> None:
    long = event(
        priority=Priority.CRITICAL,
        event_type=EventType.STRATEGY_ERROR,
        payload={"strategy_name": "mr7", "message": "boom <&> " * 1_000},
    )
    outcome = await tg_channel.send(long, 1)
    assert outcome == Delivered(ChannelType.TELEGRAM, needs_client_ack=True)
    (sent,) = telegram.sent
    assert sent.parse_mode is None
    assert len(sent.text) == 4096 and sent.text.endswith("…")
    assert sent.text.startswith("Strategy mr7 error: boom <&>")


async def test_telegram_timeout_is_retryable(telegram: FakeTelegram) -> None:
    telegram.script.append(Scripted.json(200, {"ok": True, "result": {}}, delay_s=1.0))
    async with (
        TelegramBotApi(TOKEN, api_base=telegram.base_url, timeout_s=0.2) as api,
        TelegramChannel(api, telegram_directory(), RENDERER) as channel,
    ):
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, Retryable)
    assert "timed out" in outcome.error


async def test_telegram_burst_to_one_chat_drains_at_the_chat_rate_critical_first() -> None:
    interval_s = 0.03
    async with (
        FakeTelegram(min_interval_s=interval_s, jitter_allowance=0.5) as fake,
        TelegramBotApi(TOKEN, api_base=fake.base_url) as api,
    ):
        await api.send_message("1002", "warm-up")  # the connection exists before the burst
        per_chat = RateLimit(1, int(interval_s * 1000))
        channel = TelegramChannel(api, telegram_directory(), RENDERER, per_chat=per_chat)
        critical = {17, 41}
        burst = [
            event(
                f"evt-{n}",
                priority=Priority.CRITICAL if n in critical else Priority.NORMAL,
                payload={**FILL, "order_id": f"ord-{n}"},
            )
            for n in range(50)
        ]
        started = asyncio.get_running_loop().time()
        outcomes = await asyncio.gather(*(channel.send(e, 1) for e in burst))
        drained = asyncio.get_running_loop().time() - started
        await channel.aclose()
    assert all(isinstance(o, Delivered) for o in outcomes), outcomes
    assert fake.floods == 0, "the fake saw messages faster than the per-chat limit"
    sent = [s for s in fake.sent if s.chat_id == 1001]
    assert len(sent) == 50
    order = [int(s.text.split("ord-")[1].split("\n")[0]) for s in sent]
    assert order[:2] == [17, 41]
    assert order[2:] == [n for n in range(50) if n not in critical]
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= interval_s * 0.5
    assert drained >= 49 * interval_s


# -- Telegram updates ----------------------------------------------------------


class Handler:
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def link_requested(self, request: LinkRequest) -> str | None:
        self.seen.append(request)
        return "Linked to tradewire."

    async def ack_pressed(self, press: AckPress) -> str:
        self.seen.append(press)
        return "Acknowledged"

    async def chat_active(self, activity: ChatActivity) -> None:
        self.seen.append(activity)

    async def bot_blocked(self, blocked: BotBlocked) -> None:
        self.seen.append(blocked)


async def test_poller_reads_links_acks_and_activity(
    telegram: FakeTelegram, bot: TelegramBotApi
) -> None:
    user = {"id": 1001, "is_bot": False, "first_name": "Ann", "username": "ann"}
    chat = {"id": 1001, "type": "private"}
    telegram.add_update(
        {
            "message": {
                "message_id": 1,
                "from": user,
                "chat": chat,
                "date": 1_767_444_000,
                "text": "/start 7F3A9C21",
            }
        }
    )
    last = telegram.add_update(
        {
            "callback_query": {
                "id": "cbq-1",
                "from": user,
                "message": {"message_id": 9, "chat": chat, "date": 1_767_444_001},
                "chat_instance": "ci",
                "data": "ack:evt-crit",
            }
        }
    )
    poller = TelegramPoller(bot, long_poll_s=0)
    facts = await poller.poll_once()
    assert facts is not None
    link, activity, press, pressed_activity = facts
    assert link == LinkRequest("1001", "7F3A9C21", 1_767_444_000_000, "ann")
    assert activity == ChatActivity("1001", 1_767_444_000_000)
    assert isinstance(press, AckPress) and press.event_id == "evt-crit"
    assert press.callback_query_id == "cbq-1" and press.chat_id == "1001"
    assert isinstance(pressed_activity, ChatActivity)
    assert poller.offset == last + 1

    handler = Handler()
    for fact in facts:
        await poller.dispatch(fact, handler)
    assert handler.seen == list(facts)
    assert telegram.answered == [{"callback_query_id": "cbq-1", "text": "Acknowledged"}]
    assert telegram.sent[-1].text == "Linked to tradewire." and telegram.sent[-1].chat_id == 1001

    assert await poller.poll_once() == ()
    get_updates = [r.json() for r in telegram.received if r.path.endswith("/getUpdates")]
    assert get_updates[0] == {"timeout": 0, "allowed_updates": list(poller.allowed_updates)}
    assert get_updates[1]["offset"] == last + 1


async def test_poller_long_poll_wakes_on_new_update(
    telegram: FakeTelegram, bot: TelegramBotApi
) -> None:
    poller = TelegramPoller(bot, long_poll_s=5)
    pending = asyncio.create_task(poller.poll_once())
    await asyncio.sleep(0.1)
    assert not pending.done()
    telegram.add_update(
        {"my_chat_member": {"chat": {"id": 1001}, "new_chat_member": {"status": "kicked"}}}
    )
    facts = await asyncio.wait_for(pending, 5)
    assert facts is not None and isinstance(facts[0], BotBlocked)


async def test_poller_waits_after_a_429(telegram: FakeTelegram, bot: TelegramBotApi) -> None:
    telegram.updates_script.append(error(429, "Too Many Requests: retry after 1", retry_after=1))
    poller = TelegramPoller(bot, long_poll_s=0, error_delay_ms=10)
    started = time.monotonic()
    assert await poller.poll_once() is None
    assert time.monotonic() - started >= 0.9
    assert poller.offset is None


# -- Discord -------------------------------------------------------------------


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def dc_channel(discord: FakeDiscord) -> AsyncIterator[DiscordChannel]:
    directory = InMemoryDirectory(
        [
            UserProfile("u1", discord_webhook_url=discord.url()),
            UserProfile("deleted", discord_webhook_url=discord.url("111111111111111111", "t" * 68)),
        ]
    )
    async with DiscordChannel(directory, RENDERER, timeout_s=2) as channel:
        yield channel


async def test_discord_posts_documented_shape_and_waits(
    discord: FakeDiscord, dc_channel: DiscordChannel
) -> None:
    outcome = await dc_channel.send(event(priority=Priority.CRITICAL), 1)
    assert outcome == Delivered(ChannelType.DISCORD)
    (request,) = discord.received
    assert request.query == {"wait": "true"}
    body = request.json()
    message = RENDERER.render(event())
    assert body == {
        "content": "BUY 0.1 BTCUSDT filled at 45000.10 on binance",
        "embeds": [
            {
                "title": "BUY 0.1 BTCUSDT filled at 45000.10 on binance",
                "color": 0xE74C3C,
                "fields": [
                    {"name": "Priority", "value": "CRITICAL", "inline": True},
                    {"name": "Event", "value": "ORDER\\_FILLED", "inline": True},
                ],
                "description": message.discord_markdown,
                "timestamp": "2026-01-03T12:41:00.000+00:00",
            }
        ],
        "allowed_mentions": {"parse": []},
    }
    assert len(discord.messages) == 1


async def test_discord_escapes_markdown_and_mentions(
    discord: FakeDiscord, dc_channel: DiscordChannel
) -> None:
    hostile = {**FILL, "symbol": "**@everyone** [x](http://evil) `y`"}
    assert isinstance(await dc_channel.send(event(payload=hostile), 1), Delivered)
    body = discord.received[0].json()
    assert "\\*\\*\\@everyone\\*\\* \\[x\\](http://evil) \\`y\\`" in body["content"]
    assert body["allowed_mentions"] == {"parse": []}


async def test_discord_long_text_stays_within_limits(
    discord: FakeDiscord, dc_channel: DiscordChannel
) -> None:
    long = event(
        event_type=EventType.STRATEGY_ERROR,
        payload={"strategy_name": "s" * 300, "message": "*_" * 3_000},
    )
    assert isinstance(await dc_channel.send(long, 1), Delivered)
    embed = discord.received[0].json()["embeds"][0]
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert len(embed["description"]) <= 4096 and embed["description"].endswith("…")


async def test_discord_429_json_retry_after(
    discord: FakeDiscord, dc_channel: DiscordChannel
) -> None:
    discord.script.append(rate_limited(0.25))
    outcome = await dc_channel.send(event(), 1)
    assert isinstance(outcome, Retryable) and outcome.retry_after_ms == 250


async def test_discord_deleted_webhook_is_permanent_and_redacted(
    discord: FakeDiscord, dc_channel: DiscordChannel
) -> None:
    outcome = await dc_channel.send(event(user="deleted"), 1)
    assert isinstance(outcome, PermanentFailure)
    assert "404" in outcome.error and "Unknown Webhook" in outcome.error
    assert "t" * 68 not in outcome.error and "111111111111111111" not in outcome.error


async def test_discord_5xx_is_retryable(discord: FakeDiscord, dc_channel: DiscordChannel) -> None:
    discord.script.append(Scripted.json(502, {"message": "Bad Gateway"}))
    assert isinstance(await dc_channel.send(event(), 1), Retryable)


# -- Slack ---------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def sl_channel(slack: FakeSlack) -> AsyncIterator[SlackChannel]:
    directory = InMemoryDirectory([UserProfile("u1", slack_webhook_url=slack.url())])
    async with SlackChannel(directory, RENDERER, timeout_s=2) as channel:
        yield channel


async def test_slack_posts_text_and_blocks(slack: FakeSlack, sl_channel: SlackChannel) -> None:
    outcome = await sl_channel.send(event(), 1)
    assert outcome == Delivered(ChannelType.SLACK)
    body = slack.received[0].json()
    title = "BUY 0.1 BTCUSDT filled at 45000.10 on binance"
    assert body == {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": RENDERER.render(event()).slack_mrkdwn},
            },
            {
                "type": "context",
                "elements": [{"type": "plain_text", "text": "NORMAL · ORDER_FILLED"}],
            },
        ],
    }


async def test_slack_escapes_control_sequences(slack: FakeSlack, sl_channel: SlackChannel) -> None:
    hostile = {**FILL, "symbol": "<!channel> & <http://evil|click>"}
    assert isinstance(await sl_channel.send(event(payload=hostile), 1), Delivered)
    body = slack.received[0].json()
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in body["text"]
    assert "<!channel>" not in body["blocks"][1]["text"]["text"]


async def test_slack_429_retry_after_header(slack: FakeSlack, sl_channel: SlackChannel) -> None:
    slack.script.append(slack_error(429, "rate_limited", {"Retry-After": "3"}))
    outcome = await sl_channel.send(event(), 1)
    assert isinstance(outcome, Retryable) and outcome.retry_after_ms == 3_000


@pytest.mark.parametrize(
    ("status", "word"),
    [(404, "no_service"), (410, "channel_is_archived"), (403, "action_prohibited")],
)
async def test_slack_permanent_errors(
    status: int, word: str, slack: FakeSlack, sl_channel: SlackChannel
) -> None:
    slack.script.append(slack_error(status, word))
    outcome = await sl_channel.send(event(), 1)
    assert isinstance(outcome, PermanentFailure)
    assert word in outcome.error and "XXXXXXXX" not in outcome.error


async def test_slack_archived_channel_from_the_server(
    slack: FakeSlack, sl_channel: SlackChannel
) -> None:
    slack.archived.add(next(iter(slack.hooks)))
    outcome = await sl_channel.send(event(), 1)
    assert outcome == PermanentFailure("slack answered 410: channel_is_archived")


async def test_slack_rollup_error_is_retryable(slack: FakeSlack, sl_channel: SlackChannel) -> None:
    slack.script.append(slack_error(500, "rollup_error"))
    assert isinstance(await sl_channel.send(event(), 1), Retryable)


# -- signed webhooks -----------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    async with FakeReceiver() as fake:
        yield fake


def webhook_channel(directory: InMemoryDirectory, secret: str = SECRET) -> WebhookChannel:
    return WebhookChannel(
        directory, RENDERER, channel_type=ChannelType.SLACK, secret=secret, timeout_s=2
    )


async def test_webhook_is_signed_and_carries_the_event(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory([UserProfile("u1", webhook_url=receiver.url())])
    raw_payload = b'{"symbol":"BTCUSDT","side":"BUY","fill_price":"45000.10","fill_quantity":0.10}'
    evt = Event(
        "evt-w",
        "u1",
        EventType.ORDER_FILLED,
        Priority.CRITICAL,
        payload=raw_payload,
        timestamp_ms=1_767_444_060_000,
    )
    async with webhook_channel(directory) as channel:
        outcome = await channel.send(evt, 3)
    assert outcome == Delivered(ChannelType.SLACK)
    assert receiver.checks == ["valid"]
    request = receiver.received[0]
    assert request.headers[EVENT_ID_HEADER.lower()] == "evt-w"
    assert request.headers["x-tradewire-signature"].startswith("sha256=")
    assert b'"payload":' + raw_payload in request.body  # verbatim: 0.10 stays 0.10
    message = RENDERER.render(evt)
    assert receiver.accepted == [
        {
            "event_id": "evt-w",
            "user_id": "u1",
            "event_type": "ORDER_FILLED",
            "priority": "CRITICAL",
            "timestamp_ms": 1_767_444_060_000,
            "timestamp": "2026-01-03T12:41:00.000Z",
            "attempt": 3,
            "title": message.title,
            "text": message.text,
            "payload": msgspec.json.decode(raw_payload),
        }
    ]


async def test_webhook_user_secret_wins_over_deployment_secret(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory(
        [UserProfile("u1", webhook_url=receiver.url(), webhook_secret=SECRET)]
    )
    async with webhook_channel(directory, secret="deployment-secret") as channel:
        assert isinstance(await channel.send(event(), 1), Delivered)


async def test_webhook_rejected_signature_is_permanent(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory([UserProfile("u1", webhook_url=receiver.url())])
    async with webhook_channel(directory, secret="not-the-receivers-secret") as channel:
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, PermanentFailure) and "401" in outcome.error
    assert "not-the-receivers-secret" not in outcome.error
    assert receiver.checks == ["mismatch"]


async def test_webhook_without_any_secret_sends_nothing(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory([UserProfile("u1", webhook_url=receiver.url())])
    async with webhook_channel(directory, secret="") as channel:
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, PermanentFailure)
    assert receiver.received == []


async def test_webhook_503_with_http_date_retry_after(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory([UserProfile("u1", webhook_url=receiver.url())])
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    receiver.script.append(Scripted.json(503, {"error": "busy"}, {"Retry-After": later}))
    async with webhook_channel(directory) as channel:
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms is not None and 115_000 <= outcome.retry_after_ms <= 121_000


async def test_webhook_redirect_is_permanent(receiver: FakeReceiver) -> None:
    directory = InMemoryDirectory([UserProfile("u1", webhook_url=receiver.url())])
    receiver.script.append(Scripted(301, b"", {"Location": "http://elsewhere.invalid/"}))
    async with webhook_channel(directory) as channel:
        outcome = await channel.send(event(), 1)
    assert isinstance(outcome, PermanentFailure) and "301" in outcome.error


def _docs_receiver() -> dict[str, Any]:
    """Exec the receiver example of docs/reference/webhooks.md (the block marked # receiver)."""
    doc = (Path(__file__).resolve().parents[2] / "docs/reference/webhooks.md").read_text()
    (code,) = [
        b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if b.startswith("# receiver")
    ]
    namespace: dict[str, Any] = {"__name__": "docs_receiver"}
    exec(compile(code, "webhooks.md", "exec"), namespace)
    return namespace


async def test_the_documented_receiver_accepts_what_the_channel_sends() -> None:
    receiver = _docs_receiver()
    server = HTTPServer(("127.0.0.1", 0), receiver["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        directory = InMemoryDirectory([UserProfile("u1", webhook_url=url)])
        secret = receiver["SECRET"].decode()
        async with webhook_channel(directory, secret=secret) as channel:
            assert isinstance(await channel.send(event("evt-doc"), 1), Delivered)
            assert isinstance(await channel.send(event("evt-doc"), 2), Delivered)  # a retry
        async with webhook_channel(directory, secret="wrong") as channel:
            outcome = await channel.send(event("evt-doc-2"), 1)
        assert isinstance(outcome, PermanentFailure) and "401" in outcome.error
        assert receiver["seen_event_ids"] == {"evt-doc"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- Apprise -------------------------------------------------------------------


async def test_apprise_posts_through_its_json_plugin() -> None:
    async with FakeJsonSink() as sink:
        url = f"json://127.0.0.1:{sink.port}/hooks/user-1"
        directory = InMemoryDirectory(
            [UserProfile("u1", apprise_url=url), UserProfile("odd", apprise_url="nope://x")]
        )
        kind = ChannelType.DISCORD
        async with AppriseChannel(directory, RENDERER, channel_type=kind, timeout_s=5) as channel:
            outcome = await channel.send(event(priority=Priority.CRITICAL), 1)
            refused = await channel.send(event(user="odd"), 1)
    assert outcome == Delivered(ChannelType.DISCORD)
    message = RENDERER.render(event())
    (document,) = sink.accepted
    assert document["title"] == message.title
    assert document["message"] == message.text
    assert document["type"] == "warning"
    assert refused == PermanentFailure("apprise does not understand the nope:// URL")


# -- webhook_allowed_hosts: a user's URL on a host the operator did not list -------------


async def test_user_webhook_urls_on_hosts_not_allowed_are_never_posted_to(
    discord: FakeDiscord, slack: FakeSlack, receiver: FakeReceiver
) -> None:
    """Each adapter refuses at send time (a profile stored before the setting changed).

    The loopback servers listen on 127.0.0.1: with rules that do not list it,
    every attempt is a permanent failure naming the host and nothing reaches
    them; listing it lets the same sends through.
    """
    directory = InMemoryDirectory(
        [
            UserProfile(
                "u1",
                discord_webhook_url=discord.url(),
                slack_webhook_url=slack.url(),
                webhook_url=receiver.url(),
            )
        ]
    )

    def adapters(rules: tuple[str, ...]) -> list[DiscordChannel | SlackChannel | WebhookChannel]:
        return [
            DiscordChannel(directory, RENDERER, timeout_s=2, allowed_hosts=rules),
            SlackChannel(directory, RENDERER, timeout_s=2, allowed_hosts=rules),
            WebhookChannel(
                directory,
                RENDERER,
                channel_type=ChannelType.SLACK,
                secret=SECRET,
                timeout_s=2,
                allowed_hosts=rules,
            ),
        ]

    for adapter in adapters(("discord.com", ".slack.com")):
        async with adapter:
            outcome = await adapter.send(event(), 1)
        assert isinstance(outcome, PermanentFailure), outcome
        assert "127.0.0.1" in outcome.error and "webhook_allowed_hosts" in outcome.error
    assert (discord.received, slack.received, receiver.received) == ([], [], [])
    for adapter in adapters(("127.0.0.1",)):
        async with adapter:
            outcome = await adapter.send(event(), 1)
        assert not isinstance(outcome, PermanentFailure | Retryable), outcome
    assert [len(s.received) for s in (discord, slack, receiver)] == [1, 1, 1]


async def test_the_profile_api_refuses_a_webhook_url_on_a_host_not_allowed(
    tmp_path: Path,
) -> None:
    """A real gateway with ``TRADEWIRE_WEBHOOK_ALLOWED_HOSTS``: 422 naming the field, or 200."""
    env = {"TRADEWIRE_WEBHOOK_ALLOWED_HOSTS": ".slack.com"}
    with running_gateway(tmp_path / "data", env=env) as gw:
        url = f"{gw.http}/api/users/alice/profile"
        headers = {"Authorization": f"Bearer {token_for(gw, 'alice')}"}
        async with httpx.AsyncClient(timeout=30) as client:
            refused = await client.patch(
                url, json={"webhook_url": "http://10.0.0.5:8080/hook"}, headers=headers
            )
            taken = await client.patch(
                url, json={"slack_webhook_url": "https://hooks.slack.com/T/B/x"}, headers=headers
            )
        assert gw.stop() == 0
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert (detail["code"], detail["field"]) == ("VALIDATION_ERROR", "webhook_url")
    assert "10.0.0.5" in detail["message"] and "webhook_allowed_hosts" in detail["message"]
    assert taken.status_code == 200, taken.text
