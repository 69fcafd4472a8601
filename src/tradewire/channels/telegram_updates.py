"""What users tell the bot: a pure ``Update`` parser and a ``getUpdates`` poller.

Theory of operation
-------------------
:func:`parse_update` turns one Bot API ``Update`` object (from long polling
or a webhook) into domain values, and :func:`parse_updates` a whole
``getUpdates`` answer plus the next ``offset``:

* :class:`LinkRequest` - ``/start CODE`` (a deep link ``t.me/<bot>?start=CODE``):
  the gateway looks the one-time code up and links the chat to its user;
* :class:`AckPress` - the "Acknowledge" button of a CRITICAL message
  (``callback_data = "ack:<event_id>"``); it must be answered with
  ``answerCallbackQuery``, which the poller does;
* :class:`ChatActivity` - the user wrote to (or pressed a button of) the bot:
  their Telegram "session" is active for a while (see :class:`RecentChats`);
* :class:`BotBlocked` - the user blocked the bot (``my_chat_member`` kicked);
* :class:`IgnoredCallback` - any other button press, answered and otherwise ignored.

Anything else is ignored. :class:`TelegramPoller` runs ``getUpdates`` with
the offset (each update is confirmed by the next call, so a crash
re-delivers at most one batch: handlers must be idempotent) and hands the
values to a :class:`TelegramUpdateHandler`. No network code lives in the
parser, so it is tested on plain dicts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

import msgspec

from tradewire.channels._http import HttpReply, retry_after_ms
from tradewire.channels.telegram import ACK_CALLBACK_PREFIX, TelegramBotApi
from tradewire.delivery.ports import Clock, SystemClock

__all__ = [
    "AckPress",
    "BotBlocked",
    "ChatActivity",
    "IgnoredCallback",
    "LinkRequest",
    "RecentChats",
    "TelegramPoller",
    "TelegramUpdate",
    "TelegramUpdateHandler",
    "UpdateBatch",
    "parse_update",
    "parse_updates",
]

log = logging.getLogger(__name__)

_START: Final = re.compile(r"^/start(?:@[A-Za-z0-9_]+)?(?:\s+(\S+))?\s*$")
_CODE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What Telegram allows in a deep-link ``start`` parameter."""
ALLOWED_UPDATES: Final = ("message", "edited_message", "callback_query", "my_chat_member")
_DECODER: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """``/start CODE`` in chat ``chat_id``: link this chat to the code's user."""

    chat_id: str
    code: str
    at_ms: int
    username: str = ""


@dataclass(frozen=True, slots=True)
class AckPress:
    """The "Acknowledge" button of event ``event_id`` was pressed in ``chat_id``."""

    callback_query_id: str
    chat_id: str
    event_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ChatActivity:
    """Someone wrote to the bot in ``chat_id`` (or pressed one of its buttons)."""

    chat_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class BotBlocked:
    """The user of ``chat_id`` blocked the bot: stop sending there."""

    chat_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class IgnoredCallback:
    """A button press that is not ours to act on; still answered (stops the spinner)."""

    callback_query_id: str


TelegramUpdate: TypeAlias = LinkRequest | AckPress | ChatActivity | BotBlocked | IgnoredCallback
"""One fact read from an ``Update``."""


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    """A parsed ``getUpdates`` answer: the facts and the offset to confirm them with."""

    updates: tuple[TelegramUpdate, ...]
    next_offset: int | None
    """``max(update_id) + 1``; ``None`` when the batch held no update."""


def _id(value: object) -> str:
    """A Telegram integer id as text (``""`` when absent or not an id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""


def _get(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _message_facts(message: Mapping[str, Any], now_ms: int) -> list[TelegramUpdate]:
    chat_id = _id(_get(message, "chat", "id"))
    if not chat_id:
        return []
    date = message.get("date")
    at_ms = date * 1000 if isinstance(date, int) and date > 0 else now_ms
    facts: list[TelegramUpdate] = [ChatActivity(chat_id, at_ms)]
    text = message.get("text")
    match = _START.match(text) if isinstance(text, str) else None
    if match and match.group(1) and _CODE.match(match.group(1)):
        username = _get(message, "from", "username")
        name = username if isinstance(username, str) else ""
        facts.insert(0, LinkRequest(chat_id, match.group(1), at_ms, name))
    return facts


def _callback_facts(query: Mapping[str, Any], now_ms: int) -> list[TelegramUpdate]:
    query_id = _id(query.get("id"))
    if not query_id:
        return []
    chat_id = _id(_get(query, "message", "chat", "id")) or _id(_get(query, "from", "id"))
    data = query.get("data")
    facts: list[TelegramUpdate] = [ChatActivity(chat_id, now_ms)] if chat_id else []
    if isinstance(data, str) and data.startswith(ACK_CALLBACK_PREFIX) and chat_id:
        event_id = data.removeprefix(ACK_CALLBACK_PREFIX)
        if event_id:
            return [AckPress(query_id, chat_id, event_id, now_ms), *facts]
    return [IgnoredCallback(query_id), *facts]


def _member_facts(member: Mapping[str, Any], now_ms: int) -> list[TelegramUpdate]:
    chat_id = _id(_get(member, "chat", "id"))
    if chat_id and _get(member, "new_chat_member", "status") == "kicked":
        return [BotBlocked(chat_id, now_ms)]
    return []


def parse_update(update: object, now_ms: int) -> tuple[TelegramUpdate, ...]:
    """The facts in one ``Update`` object (``now_ms`` dates those Telegram does not)."""
    if not isinstance(update, Mapping):
        return ()
    for key in ("message", "edited_message"):
        if isinstance(update.get(key), Mapping):
            return tuple(_message_facts(update[key], now_ms))
    if isinstance(update.get("callback_query"), Mapping):
        return tuple(_callback_facts(update["callback_query"], now_ms))
    if isinstance(update.get("my_chat_member"), Mapping):
        return tuple(_member_facts(update["my_chat_member"], now_ms))
    return ()


def parse_updates(document: object, now_ms: int) -> UpdateBatch:
    """Parse a ``getUpdates`` answer (``{"ok": true, "result": [Update, ...]}``)."""
    if isinstance(document, bytes | str):
        try:
            document = _DECODER.decode(document)
        except msgspec.DecodeError:
            return UpdateBatch((), None)
    result = _get(document, "result")
    if not isinstance(result, Sequence) or isinstance(result, str):
        return UpdateBatch((), None)
    facts: list[TelegramUpdate] = []
    last: int | None = None
    for update in result:
        update_id = _get(update, "update_id")
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            last = update_id if last is None else max(last, update_id)
        facts.extend(parse_update(update, now_ms))
    return UpdateBatch(tuple(facts), None if last is None else last + 1)


class RecentChats:
    """Which chats wrote to the bot within ``window_ms`` (presence for ACTIVE_SESSION).

    Bounded: beyond ``capacity`` chats the least recently active is forgotten.
    """

    def __init__(self, window_ms: int, capacity: int = 100_000) -> None:
        if window_ms <= 0 or capacity <= 0:
            raise ValueError("RecentChats needs a positive window and capacity")
        self.window_ms = window_ms
        self.capacity = capacity
        self._last: OrderedDict[str, int] = OrderedDict()

    def saw(self, activity: ChatActivity) -> None:
        """Record that ``activity.chat_id`` was active at ``activity.at_ms``."""
        previous = self._last.pop(activity.chat_id, None)
        self._last[activity.chat_id] = max(activity.at_ms, previous or 0)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)

    def is_active(self, chat_id: str, now_ms: int) -> bool:
        """Whether ``chat_id`` was active in the last ``window_ms``."""
        last = self._last.get(chat_id)
        return last is not None and now_ms - last < self.window_ms

    def forget(self, chat_id: str) -> None:
        """Drop ``chat_id`` (the user blocked the bot or unlinked the chat)."""
        self._last.pop(chat_id, None)


class TelegramUpdateHandler(Protocol):
    """What the gateway does with the updates (:meth:`TelegramPoller.run` calls it)."""

    async def link_requested(self, request: LinkRequest) -> str | None:
        """Link ``request.chat_id`` to the code's user; text to reply in the chat, if any."""
        ...

    async def ack_pressed(self, press: AckPress) -> str:
        """Acknowledge ``press.event_id``; the short text Telegram shows to the user."""
        ...

    async def chat_active(self, activity: ChatActivity) -> None:
        """The chat wrote to the bot (presence)."""
        ...

    async def bot_blocked(self, blocked: BotBlocked) -> None:
        """The user blocked the bot."""
        ...


class TelegramPoller:
    """Long-polls ``getUpdates`` and yields (or dispatches) the parsed facts.

    ``long_poll_s`` is the ``timeout`` Telegram holds an empty poll open;
    the HTTP timeout of the call is that plus ``timeout_margin_s``. After a
    failed poll it waits ``error_delay_ms`` (or the 429's ``retry_after``).
    """

    def __init__(
        self,
        api: TelegramBotApi,
        *,
        clock: Clock | None = None,
        long_poll_s: int = 30,
        timeout_margin_s: float = 10.0,
        error_delay_ms: int = 5_000,
        allowed_updates: Sequence[str] = ALLOWED_UPDATES,
    ) -> None:
        self.api = api
        self._clock = clock or SystemClock()
        self.long_poll_s = long_poll_s
        self.timeout_margin_s = timeout_margin_s
        self.error_delay_ms = error_delay_ms
        self.allowed_updates = list(allowed_updates)
        self.offset: int | None = None
        """The next ``getUpdates`` offset: every update before it is confirmed."""

    async def poll_once(self) -> tuple[TelegramUpdate, ...] | None:
        """One ``getUpdates`` round; ``None`` when it failed (after waiting the delay)."""
        params: dict[str, Any] = {
            "timeout": self.long_poll_s,
            "allowed_updates": self.allowed_updates,
        }
        if self.offset is not None:
            params["offset"] = self.offset
        timeout = self.long_poll_s + self.timeout_margin_s
        reply = await self.api.call("getUpdates", params, timeout_s=timeout)
        now = self._clock.now_ms()
        document = reply.json() if isinstance(reply, HttpReply) else None
        if not isinstance(reply, HttpReply) or not reply.ok or _get(document, "ok") is not True:
            await self._pause(reply, now)
            return None
        batch = parse_updates(document, now)
        if batch.next_offset is not None:
            self.offset = batch.next_offset
        return batch.updates

    async def _pause(self, reply: object, now_ms: int) -> None:
        delay = self.error_delay_ms
        if isinstance(reply, HttpReply):
            delay = max(delay, retry_after_ms(reply, now_ms) or 0)
            if reply.status in (401, 404):
                log.error("telegram getUpdates refused: check the bot token and api base")
            elif reply.status == 409:
                log.error("telegram getUpdates conflict: a webhook or another poller is active")
        else:
            log.warning("telegram getUpdates failed", extra={"error": getattr(reply, "error", "")})
        await asyncio.sleep(delay / 1000)

    async def updates(self) -> AsyncIterator[TelegramUpdate]:
        """Every fact, forever (until the consumer stops iterating or is cancelled)."""
        while True:
            batch = await self.poll_once()
            for fact in batch or ():
                yield fact

    async def answer(self, callback_query_id: str, text: str = "") -> bool:
        """``answerCallbackQuery``: stop the button's spinner, show ``text`` briefly."""
        params: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text:
            params["text"] = text[:200]
        reply = await self.api.call("answerCallbackQuery", params)
        return isinstance(reply, HttpReply) and reply.ok

    async def dispatch(self, fact: TelegramUpdate, handler: TelegramUpdateHandler) -> None:
        """Hand one fact to ``handler``; answers button presses and replies to links."""
        if isinstance(fact, AckPress):
            await self.answer(fact.callback_query_id, await handler.ack_pressed(fact))
        elif isinstance(fact, IgnoredCallback):
            await self.answer(fact.callback_query_id)
        elif isinstance(fact, LinkRequest):
            reply = await handler.link_requested(fact)
            if reply:
                await self.api.send_message(fact.chat_id, reply)
        elif isinstance(fact, ChatActivity):
            await handler.chat_active(fact)
        else:
            await handler.bot_blocked(fact)

    async def run(self, handler: TelegramUpdateHandler) -> None:
        """Poll and dispatch until cancelled."""
        async for fact in self.updates():
            await self.dispatch(fact, handler)
