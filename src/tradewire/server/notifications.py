"""The gateway's notification channels, built from the settings.

Theory of operation
-------------------
:func:`build_channels` turns the ``[channels]`` settings into one adapter
per seed ``ChannelType`` and wraps each in a
:class:`~tradewire.channels.gate.GatedChannel`, so every notification obeys
the user's opt-outs and quiet hours (``WEB``, the live session, is the
user's inbox and is never gated). A channel whose settings are missing is
left out, and the engine skips it (``enabled_channels``):

=========  ===================================================  ==========================
channel    adapters, first the user has an address for           enabled when
=========  ===================================================  ==========================
TELEGRAM   Bot API ``sendMessage``                                ``telegram_bot_token``
EMAIL      SMTP (aiosmtplib), digests for non-critical events     ``smtp_host``, ``smtp_from``
PUSH       Web Push (VAPID), else the user's Apprise URL          always (VAPID key kept in
                                                                  the data dir if not given)
DISCORD    Discord webhook, else the generic signed webhook       ``chat_webhooks`` (default)
SLACK      Slack webhook, else the generic signed webhook         ``chat_webhooks`` (default)
=========  ===================================================  ==========================

:class:`TelegramLink` is the gateway's side of the bot: ``/start CODE``
links a chat, the Acknowledge button acks the event, and a chat that wrote
recently counts as an open Telegram session for ``ACTIVE_SESSION``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewire.channels._recipient import parse_allowed_hosts
from tradewire.channels.apprise_channel import AppriseChannel
from tradewire.channels.discord import DiscordChannel
from tradewire.channels.email import EmailChannel, SmtpSettings
from tradewire.channels.gate import GatedChannel
from tradewire.channels.push import VapidSettings, WebPushChannel, generate_vapid_keys
from tradewire.channels.slack import SlackChannel
from tradewire.channels.slot import SlotChannel, SlotMember
from tradewire.channels.telegram import TelegramBotApi, TelegramChannel
from tradewire.channels.telegram_updates import (
    AckPress,
    BotBlocked,
    ChatActivity,
    LinkRequest,
    TelegramPoller,
)
from tradewire.channels.templates import TemplateRenderer
from tradewire.channels.webhook import WebhookChannel
from tradewire.config import Settings
from tradewire.delivery import Channel, ChannelPreference, ChannelType, Priority
from tradewire.delivery.ports import RateLimit
from tradewire.errors import ConfigError
from tradewire.users import ProfileChange, StoreDirectory, redeem_telegram_code, update_profile

if TYPE_CHECKING:
    from tradewire.server.delivery_driver import DeliveryDriver
    from tradewire.store.sqlite import SqliteStore

__all__ = ["NotificationChannels", "TelegramLink", "build_channels", "channel_list"]

log = logging.getLogger("tradewire.channels")
VAPID_FILE = "vapid.json"


def channel_list(text: str, setting: str) -> tuple[ChannelPreference, ...]:
    """``"ACTIVE_SESSION,TELEGRAM,EMAIL?"``: a trailing ``?`` means only_if_active."""
    prefs: list[ChannelPreference] = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        name, only_if_active = raw.removesuffix("?"), raw.endswith("?")
        if name not in ChannelType.__members__:
            raise ConfigError(
                f"unknown channel {name!r} in {setting}",
                setting=setting,
                hint=f"use names from {', '.join(ChannelType.__members__)}",
            )
        prefs.append(ChannelPreference(ChannelType[name], only_if_active))
    return tuple(prefs)


def default_channels(settings: Settings) -> dict[Priority, tuple[ChannelPreference, ...]]:
    """The per-priority channel lists of events that name none."""
    return {
        Priority.CRITICAL: channel_list(settings.critical_channels, "critical_channels"),
        Priority.NORMAL: channel_list(settings.normal_channels, "normal_channels"),
        Priority.INFORMATIONAL: channel_list(
            settings.informational_channels, "informational_channels"
        ),
    }


def vapid_private_key(settings: Settings) -> str:
    """The configured VAPID key, else the one kept in the data dir (made on first use)."""
    if settings.vapid_private_key:
        return settings.vapid_private_key
    path = settings.data_dir / VAPID_FILE
    if path.exists():
        return str(json.loads(path.read_text())["private_key"])
    pair = generate_vapid_keys()
    keys = {"private_key": pair.private_key, "public_key": pair.public_key}
    _write_private(path, json.dumps(keys))
    return pair.private_key


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass
class NotificationChannels:
    """The adapters of one gateway, by seed channel, and what to close at the end."""

    channels: dict[ChannelType, Channel] = field(default_factory=dict)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    telegram: TelegramBotApi | None = None
    push: WebPushChannel | None = None

    async def aclose(self) -> None:
        """Close every adapter (sends open email digests first)."""
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


def build_channels(settings: Settings, store: SqliteStore) -> NotificationChannels:
    """Every configured channel, gated by the users' preferences."""
    directory = StoreDirectory(store, cache_ms=1000)
    renderer = TemplateRenderer(settings.templates_dir)
    timeout = settings.channel_http_timeout_seconds
    built = NotificationChannels()
    raw: dict[ChannelType, Channel] = {}
    if settings.telegram_bot_token:
        built.telegram = TelegramBotApi(
            settings.telegram_bot_token, api_base=settings.telegram_api_base, timeout_s=timeout
        )
        telegram = TelegramChannel(
            built.telegram,
            directory,
            renderer,
            per_chat=RateLimit(1, settings.telegram_per_chat_interval_ms),
            overall=RateLimit(settings.telegram_overall_per_second, 1000),
        )
        raw[ChannelType.TELEGRAM] = SlotChannel(  # one member: for the cheap precheck
            ChannelType.TELEGRAM,
            [SlotMember("Telegram", telegram, lambda p: bool(p.telegram_chat_id))],
            directory,
        )
        built.closers += [built.telegram.aclose, telegram.aclose]
    if settings.smtp_host:
        if not settings.smtp_from:
            raise ConfigError("smtp_from is required with smtp_host", setting="smtp_from")
        email = EmailChannel(_smtp(settings), directory, renderer)
        raw[ChannelType.EMAIL] = SlotChannel(
            ChannelType.EMAIL, [SlotMember("email", email, lambda p: bool(p.email))], directory
        )
        built.closers.append(email.aclose)
    built.push = WebPushChannel(_vapid(settings), directory, renderer)
    apprise = AppriseChannel(directory, renderer, channel_type=ChannelType.PUSH)
    built.closers += [built.push.aclose, apprise.aclose]
    raw[ChannelType.PUSH] = SlotChannel(
        ChannelType.PUSH,
        [
            SlotMember("Web Push", built.push, lambda p: bool(p.push_subscriptions)),
            SlotMember("Apprise", apprise, lambda p: bool(p.apprise_url)),
        ],
        directory,
    )
    if settings.chat_webhooks:
        raw.update(_chat_slots(settings, directory, renderer, built))
    built.channels = {kind: GatedChannel(adapter, directory) for kind, adapter in raw.items()}
    return built


def _chat_slots(
    settings: Settings,
    directory: StoreDirectory,
    renderer: TemplateRenderer,
    built: NotificationChannels,
) -> dict[ChannelType, Channel]:
    timeout = settings.channel_http_timeout_seconds
    hosts = parse_allowed_hosts(settings.webhook_allowed_hosts)
    discord = DiscordChannel(directory, renderer, timeout_s=timeout, allowed_hosts=hosts)
    slack = SlackChannel(directory, renderer, timeout_s=timeout, allowed_hosts=hosts)
    slots: dict[ChannelType, Channel] = {}
    for kind, native, name, has_native in (
        (ChannelType.DISCORD, discord, "Discord", lambda p: bool(p.discord_webhook_url)),
        (ChannelType.SLACK, slack, "Slack", lambda p: bool(p.slack_webhook_url)),
    ):
        hook = WebhookChannel(
            directory,
            renderer,
            channel_type=kind,
            secret=settings.webhook_secret,
            allowed_hosts=hosts,
        )
        built.closers.append(hook.aclose)
        slots[kind] = SlotChannel(
            kind,
            [
                SlotMember(name, native, has_native),
                SlotMember("webhook", hook, lambda p: bool(p.webhook_url)),
            ],
            directory,
        )
    built.closers += [discord.aclose, slack.aclose]
    return slots


def _smtp(settings: Settings) -> SmtpSettings:
    return SmtpSettings(
        host=settings.smtp_host,
        from_address=settings.smtp_from,
        port=settings.smtp_port or None,
        username=settings.smtp_username,
        password=settings.smtp_password,
        security=settings.smtp_security,
        timeout_s=settings.channel_http_timeout_seconds,
        digest_window_ms=int(settings.email_digest_seconds * 1000),
    )


def _vapid(settings: Settings) -> VapidSettings:
    return VapidSettings(
        private_key=vapid_private_key(settings),
        subject=settings.vapid_subject,
        allow_http_endpoints=settings.push_allow_http,
    )


class TelegramLink:
    """The gateway's side of the Telegram bot (a :class:`TelegramUpdateHandler`)."""

    def __init__(self, store: SqliteStore, driver: DeliveryDriver, active_ms: int) -> None:
        self.store = store
        self.driver = driver
        self.directory = StoreDirectory(store)
        self.active_ms = active_ms

    async def link_requested(self, request: LinkRequest) -> str | None:
        """``/start CODE``: link the chat to the code's user."""
        user_id = await redeem_telegram_code(self.store, request.code, request.chat_id)
        if user_id is None:
            return "Unknown or expired code: get a new one (tradewire users telegram-code)."
        self.driver.channel_active(user_id, ChannelType.TELEGRAM, self.active_ms)
        return f"Linked: tradewire notifications for {user_id} arrive in this chat."

    async def ack_pressed(self, press: AckPress) -> str:
        """The Acknowledge button: ack the event if it belongs to the chat's user."""
        user_id = await self.directory.user_of_chat(press.chat_id)
        rows = await self.store.query(
            "SELECT d.user_id FROM records r JOIN deliveries d ON d.seq = r.seq"
            " WHERE r.stream = 'user_event' AND r.\"key\" = ?",
            (press.event_id,),
        )
        if user_id is None or not rows or rows[0][0] != user_id:
            return "Unknown event"
        self.driver.channel_acked(user_id, ChannelType.TELEGRAM, (press.event_id,))
        return "Acknowledged"

    async def chat_active(self, activity: ChatActivity) -> None:
        """The user wrote to the bot: Telegram counts as an open session for a while."""
        user_id = await self.directory.user_of_chat(activity.chat_id)
        if user_id is not None:
            self.driver.channel_active(user_id, ChannelType.TELEGRAM, self.active_ms)

    async def bot_blocked(self, blocked: BotBlocked) -> None:
        """The user blocked the bot: unlink the chat."""
        user_id = await self.directory.user_of_chat(blocked.chat_id)
        if user_id is not None:
            await update_profile(self.store, user_id, ProfileChange(telegram_chat_id=""))


async def run_telegram_poller(settings: Settings, api: TelegramBotApi, link: TelegramLink) -> None:
    """Long-poll the bot's updates until cancelled."""
    poller = TelegramPoller(api, long_poll_s=int(settings.telegram_long_poll_seconds))
    log.info("telegram poller started", extra={"api_base": settings.telegram_api_base})
    with contextlib.suppress(asyncio.CancelledError):
        await poller.run(link)
