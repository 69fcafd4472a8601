"""Notification channels end to end: a real gateway, a Bot API server and an SMTP server.

The gateway runs as a subprocess configured with the loopback Telegram Bot
API (``telegram_api_base``) and the aiosmtpd server; a container's DEALER
sends CRITICAL and NORMAL events and reads its acks, exactly as in
production. Nothing is mocked: the fake Bot API speaks the documented HTTP
shapes and the SMTP server is aiosmtpd.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_proc import GatewayProcess, run_cli, start_gateway
from tests.integration.mail_push_servers import SmtpServer, smtp_server
from tests.integration.userevents import WAIT, Container, container, make_event, token_for
from tests.loopback.server import Scripted
from tests.loopback.telegram_api import TOKEN, FakeTelegram
from tradewire.wire import AckStatus, ChannelPreference, ChannelType, EventAck, Priority

ALICE_CHAT = 1001
CHANNELS = (
    ChannelPreference(ChannelType.ACTIVE_SESSION),
    ChannelPreference(ChannelType.TELEGRAM),
    ChannelPreference(ChannelType.EMAIL),
)


@dataclass
class Rig:
    gw: GatewayProcess
    telegram: FakeTelegram
    smtp: SmtpServer


def users_set(data_dir: Path, user: str, *args: str) -> None:
    result = run_cli("users", "set", user, *args, data_dir=data_dir)
    assert result.returncode == 0, result.stderr


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    data = tmp_path / "data"
    users_set(data, "alice", "--email", "alice@example.com", "--telegram-chat", str(ALICE_CHAT))
    async with FakeTelegram() as telegram, smtp_server() as smtp:
        env = {
            "TRADEWIRE_TELEGRAM_BOT_TOKEN": TOKEN,
            "TRADEWIRE_TELEGRAM_API_BASE": telegram.base_url,
            "TRADEWIRE_TELEGRAM_LONG_POLL_SECONDS": "1",
            "TRADEWIRE_SMTP_HOST": smtp.host,
            "TRADEWIRE_SMTP_PORT": str(smtp.port),
            "TRADEWIRE_SMTP_SECURITY": "none",
            "TRADEWIRE_SMTP_FROM": "tradewire <alerts@example.com>",
            "TRADEWIRE_EMAIL_DIGEST_SECONDS": "0",
            "TRADEWIRE_CRITICAL_ACK_TIMEOUT_SECONDS": "4",
        }
        gw = await asyncio.to_thread(start_gateway, data, env=env)
        try:
            yield Rig(gw, telegram, smtp)
        finally:
            code = await asyncio.to_thread(gw.stop)
            assert code == 0, "\n".join(gw.stderr_lines)


async def until(predicate: object, what: str) -> None:
    """Poll ``predicate()`` (a state, not a speed) until true or WAIT passes."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def final_ack(c: Container, event_id: str) -> EventAck:
    """Skip QUEUED; the settled ack of ``event_id``."""
    while True:
        ack = await c.ack()
        assert isinstance(ack, EventAck), ack
        if ack.event_id == event_id and ack.status != AckStatus.QUEUED:
            return ack


def sent_to(telegram: FakeTelegram, chat: int) -> list[str]:
    return [s.text for s in telegram.sent if s.chat_id == chat]


def mails_for(smtp: SmtpServer, event_id: str) -> list[str]:
    return [
        m.message["X-Tradewire-Event-Id"]
        for m in smtp.recorder.received
        if m.message["X-Tradewire-Event-Id"] == event_id
    ]


def press_ack(telegram: FakeTelegram, chat: int, event_id: str) -> None:
    message = {"message_id": 1, "chat": {"id": chat, "type": "private"}, "date": 1}
    telegram.add_update(
        {
            "callback_query": {
                "id": f"cq-{event_id}",
                "from": {"id": chat, "is_bot": False, "first_name": "Alice"},
                "message": message,
                "chat_instance": "1",
                "data": f"ack:{event_id}",
            }
        }
    )


async def test_critical_without_a_session_reaches_telegram_and_the_button_acks_it(
    rig: Rig,
) -> None:
    event = make_event("alice", Priority.CRITICAL, channels=CHANNELS)
    async with container(rig.gw) as c:
        await c.send(event)
        await until(lambda: sent_to(rig.telegram, ALICE_CHAT), "the Telegram message")
        (sent,) = [s for s in rig.telegram.sent if s.chat_id == ALICE_CHAT]
        button = sent.reply_markup["inline_keyboard"][0][0]
        assert button == {"text": "Acknowledge", "callback_data": f"ack:{event.event_id}"}
        assert "BTCUSDT" in sent.text and "45000.10" in sent.text
        press_ack(rig.telegram, ALICE_CHAT, event.event_id)
        ack = await final_ack(c, event.event_id)
    assert ack.status == AckStatus.DELIVERED
    assert ack.delivered_via == ChannelType.TELEGRAM
    assert rig.telegram.answered[0]["callback_query_id"] == f"cq-{event.event_id}"
    assert rig.telegram.answered[0]["text"] == "Acknowledged"
    # the press settled the event: escalation to email never happened
    assert mails_for(rig.smtp, event.event_id) == []


async def test_an_unacknowledged_telegram_message_escalates_to_email(rig: Rig) -> None:
    event = make_event("alice", Priority.CRITICAL, channels=CHANNELS)
    async with container(rig.gw) as c:
        await c.send(event)
        ack = await final_ack(c, event.event_id)
    assert sent_to(rig.telegram, ALICE_CHAT), "Telegram was tried first"
    assert (ack.status, ack.delivered_via) == (AckStatus.DELIVERED, ChannelType.EMAIL)
    (mail,) = [m for m in rig.smtp.recorder.received]
    assert mail.rcpt_tos == ("alice@example.com",)
    assert mail.message["X-Tradewire-Event-Id"] == event.event_id


async def test_telegram_answering_500_escalates_to_email_at_once(rig: Rig) -> None:
    for _ in range(3):
        rig.telegram.script.append(
            Scripted.json(500, {"ok": False, "error_code": 500, "description": "Internal"})
        )
    event = make_event("alice", Priority.CRITICAL, channels=CHANNELS)
    async with container(rig.gw) as c:
        await c.send(event)
        ack = await final_ack(c, event.event_id)
    assert (ack.status, ack.delivered_via) == (AckStatus.DELIVERED, ChannelType.EMAIL)
    assert sent_to(rig.telegram, ALICE_CHAT) == []
    history = await event_history(rig.gw, "alice", event.event_id)
    outcomes = [(a["channel"], a["outcome"]) for a in history["attempts"]]
    assert ("TELEGRAM", "retryable") in outcomes, outcomes
    assert outcomes[-1] == ("EMAIL", "delivered"), outcomes


async def event_history(gw: GatewayProcess, user: str, event_id: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token_for(gw, user)}"}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        resp = await client.get(f"{gw.http}/api/events/{event_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    doc: dict[str, object] = resp.json()
    return doc


def quiet_now() -> str:
    """A quiet-hours window around the current UTC time."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_normal_waits_in_quiet_hours_but_critical_goes_through(rig: Rig) -> None:
    users_set(rig.gw.data_dir, "alice", "--quiet-hours", quiet_now(), "--timezone", "UTC")
    telegram_only = (ChannelPreference(ChannelType.TELEGRAM),)
    normal = make_event("alice", Priority.NORMAL, channels=telegram_only)
    critical = make_event("alice", Priority.CRITICAL, channels=telegram_only)
    async with container(rig.gw) as c:
        await c.send(normal)
        first = await c.ack()
        assert isinstance(first, EventAck) and first.status == AckStatus.QUEUED
        await c.send(critical)
        await until(lambda: sent_to(rig.telegram, ALICE_CHAT), "the CRITICAL message")
    history = await event_history(rig.gw, "alice", normal.event_id)
    assert history["state"] == "pending", history
    attempts = history["attempts"]
    assert isinstance(attempts, list) and attempts, history
    assert attempts[0]["outcome"] == "retryable" and "quiet hours" in attempts[0]["error"]
    texts = sent_to(rig.telegram, ALICE_CHAT)
    assert len(texts) == 1, "only the CRITICAL event went out during quiet hours"


async def test_an_opted_out_type_skips_the_channel_but_critical_does_not(rig: Rig) -> None:
    users_set(rig.gw.data_dir, "alice", "--opt-out", "ORDER_FILLED:TELEGRAM")
    to_telegram_then_email = CHANNELS[1:]
    normal = make_event("alice", Priority.NORMAL, channels=to_telegram_then_email)
    async with container(rig.gw) as c:
        await c.send(normal)
        ack = await final_ack(c, normal.event_id)
        assert (ack.status, ack.delivered_via) == (AckStatus.DELIVERED, ChannelType.EMAIL)
        assert sent_to(rig.telegram, ALICE_CHAT) == []
        critical = make_event("alice", Priority.CRITICAL, channels=to_telegram_then_email)
        await c.send(critical)
        await until(lambda: sent_to(rig.telegram, ALICE_CHAT), "the CRITICAL message")
    history = await event_history(rig.gw, "alice", normal.event_id)
    errors = [a["error"] for a in history["attempts"]]  # type: ignore[attr-defined]
    assert "user opted out of ORDER_FILLED on TELEGRAM" in errors


async def test_start_code_links_a_chat_and_writing_to_the_bot_is_a_session(rig: Rig) -> None:
    result = run_cli("users", "telegram-code", "bob", data_dir=rig.gw.data_dir)
    assert result.returncode == 0, result.stderr
    code = result.stdout.strip()
    rig.telegram.add_update(
        {
            "message": {
                "message_id": 7,
                "from": {"id": 1002, "is_bot": False, "first_name": "Bob"},
                "chat": {"id": 1002, "type": "private"},
                "date": 1,
                "text": f"/start {code}",
            }
        }
    )
    await until(lambda: sent_to(rig.telegram, 1002), "the link confirmation")
    assert "Linked" in sent_to(rig.telegram, 1002)[0]
    shown = run_cli("users", "show", "bob", data_dir=rig.gw.data_dir)
    assert json.loads(shown.stdout)["telegram_chat_id"] == "1002"
    # bob just wrote to the bot: ACTIVE_SESSION now includes Telegram
    event = make_event("bob", Priority.NORMAL, channels=(CHANNELS[0],))
    async with container(rig.gw) as c:
        await c.send(event)
        await until(lambda: len(sent_to(rig.telegram, 1002)) == 2, "the event on Telegram")
        ack = await final_ack(c, event.event_id)
    assert (ack.status, ack.delivered_via) == (AckStatus.DELIVERED, ChannelType.TELEGRAM)
