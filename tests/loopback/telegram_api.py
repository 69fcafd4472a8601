"""A Telegram Bot API server: sendMessage, getUpdates, answerCallbackQuery.

Follows the documented shapes (``https://core.telegram.org/bots/api``): every
answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "..."}`` (plus ``parameters.retry_after`` on 429). It checks
what the real service checks that our channel relies on: the token, the chat
(unknown: 400 chat not found; blocked: 403), ``parse_mode=HTML`` entity
parsing (only Telegram's tags, balanced; otherwise 400 can't parse entities),
the 4096-character limit after parsing, 64-byte ``callback_data`` and,
optionally, per-chat flood control (429 when a chat gets messages faster
than ``min_interval_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.loopback.server import LoopbackServer, Scripted, json_response

__all__ = ["FakeTelegram", "Sent"]

TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz"
_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip


def error(status: int, description: str, retry_after: int | None = None) -> Scripted:
    document: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        document["parameters"] = {"retry_after": retry_after}
    return Scripted.json(status, document)


class _EntityParser(HTMLParser):
    """Telegram's HTML subset: known tags, properly nested; collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            self.problem = self.problem or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problem = self.problem or f'Unmatched end tag "{tag}"'
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_entities(text: str) -> tuple[str, str | None]:
    """The visible text and, if Telegram would refuse it, why."""
    parser = _EntityParser()
    parser.feed(text)
    parser.close()
    if parser.problem is None and parser.stack:
        parser.problem = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    return "".join(parser.text), parser.problem


@dataclass(frozen=True)
class Sent:
    """A message the fake accepted."""

    chat_id: int | str
    text: str
    parse_mode: str | None
    reply_markup: Any
    at: float


class FakeTelegram(LoopbackServer):
    """The Bot API for one bot (``TOKEN``), with known, blocked and flood-limited chats."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        chats: tuple[int, ...] = (1001, 1002, 1003),
        blocked: tuple[int, ...] = (),
        min_interval_s: float | None = None,
        jitter_allowance: float = 0.1,
    ) -> None:
        super().__init__()
        self.token = token
        self.chats = set(chats) | set(blocked)
        self.blocked = set(blocked)
        self.min_interval_s = min_interval_s
        self.jitter_allowance = jitter_allowance
        """Share of ``min_interval_s`` forgiven (request latency varies on loopback too)."""
        self.sent: list[Sent] = []
        self.answered: list[dict[str, Any]] = []
        self.floods = 0
        self.updates_script: deque[Scripted] = deque()
        """Answers to give to ``getUpdates`` instead of the updates."""
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 500
        self._new_update = asyncio.Event()
        self._last_sent: dict[int | str, float] = {}

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/bot{token}/{method}", self._call, methods=["POST", "GET"])]
        )

    def add_update(self, update: dict[str, Any]) -> int:
        """Queue an ``Update`` for ``getUpdates``; its ``update_id``."""
        self._next_update_id += 1
        self._updates.append({"update_id": self._next_update_id, **update})
        self._new_update.set()
        return self._next_update_id

    async def _call(self, request: Request) -> Response:
        received = await self.record(request)
        if request.path_params["token"] != self.token:
            return error(401, "Unauthorized").response()
        try:
            params = received.json() if received.body else {}
        except msgspec.DecodeError:
            return error(400, "Bad Request: invalid JSON").response()
        method = request.path_params["method"]
        if method == "sendMessage":
            return (await self.next_scripted()) or self._send_message(params)
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "answerCallbackQuery":
            self.answered.append(params)
            return json_response(200, {"ok": True, "result": True})
        return error(404, "Not Found").response()

    def _send_message(self, params: dict[str, Any]) -> Response:
        chat_id = params.get("chat_id")
        text = params.get("text") or ""
        if chat_id in (None, ""):
            return error(400, "Bad Request: chat_id is empty").response()
        if not text:
            return error(400, "Bad Request: message text is empty").response()
        if chat_id not in self.chats:
            return error(400, "Bad Request: chat not found").response()
        if chat_id in self.blocked:
            return error(403, "Forbidden: bot was blocked by the user").response()
        visible = text
        if params.get("parse_mode") == "HTML":
            visible, problem = parse_entities(text)
            if problem:
                return error(400, f"Bad Request: can't parse entities: {problem}").response()
        if len(visible.encode("utf-16-le")) // 2 > 4096:
            return error(400, "Bad Request: message is too long").response()
        problem = _markup_problem(params.get("reply_markup"))
        if problem:
            return error(400, f"Bad Request: {problem}").response()
        now = asyncio.get_running_loop().time()
        last = self._last_sent.get(chat_id)
        floor = (self.min_interval_s or 0) * (1 - self.jitter_allowance)
        if self.min_interval_s is not None and last is not None and now - last < floor:
            self.floods += 1
            return error(429, "Too Many Requests: retry after 1", retry_after=1).response()
        self._last_sent[chat_id] = now
        self.sent.append(
            Sent(chat_id, text, params.get("parse_mode"), params.get("reply_markup"), now)
        )
        message = {
            "message_id": len(self.sent),
            "from": {"id": 42, "is_bot": True, "first_name": "tradewire", "username": "tw_bot"},
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": visible,
        }
        return json_response(200, {"ok": True, "result": message})

    async def _get_updates(self, params: dict[str, Any]) -> Response:
        offset = params.get("offset")
        if isinstance(offset, int):
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = min(float(params.get("timeout") or 0), 5.0)
        if not self._updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        if self.updates_script:
            return self.updates_script.popleft().response()
        return json_response(200, {"ok": True, "result": self._updates})


def _markup_problem(markup: Any) -> str | None:
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
    for row in rows:
        for button in row:
            data = button.get("callback_data", "")
            if not button.get("text"):
                return "BUTTON_TEXT_INVALID"
            if len(data.encode()) > 64:
                return "BUTTON_DATA_INVALID"
    return None
