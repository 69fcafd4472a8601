"""Slack incoming webhooks: ``POST /services/T.../B.../secret``.

Shapes from Slack's documentation (Sending messages using incoming webhooks,
Handling errors, Rate limits): success is ``200`` with the body ``ok``;
errors are plain words: ``400 invalid_payload`` / ``invalid_blocks`` /
``no_text``, ``403 action_prohibited``, ``404 no_service`` /
``channel_not_found``, ``410 channel_is_archived``, ``500 rollup_error``;
rate limiting is ``429`` with a ``Retry-After`` header (seconds).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.loopback.server import LoopbackServer, Scripted

__all__ = ["FakeSlack", "slack_error"]

HOOK = ("T00000000", "B00000000", "XXXXXXXXXXXXXXXXXXXXXXXX")


def slack_error(status: int, word: str, headers: dict[str, str] | None = None) -> Scripted:
    return Scripted.text(status, word, headers)


def _blocks_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return "invalid_blocks"
        elif kind == "section":
            text = block.get("text") or {}
            if text.get("type") not in ("mrkdwn", "plain_text"):
                return "invalid_blocks"
            if not 0 < len(text.get("text", "")) <= 3000:
                return "invalid_blocks"
        elif kind == "context":
            if not block.get("elements"):
                return "invalid_blocks"
        else:
            return "invalid_blocks"
    return None


class FakeSlack(LoopbackServer):
    """Slack incoming webhooks; ``archived`` hooks answer 410 channel_is_archived."""

    def __init__(self, hooks: set[tuple[str, str, str]] | None = None) -> None:
        super().__init__()
        self.hooks = hooks if hooks is not None else {HOOK}
        self.archived: set[tuple[str, str, str]] = set()
        self.messages: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        route = Route("/services/{team}/{bot}/{secret}", self._post, methods=["POST"])
        return Starlette(routes=[route])

    def url(self, hook: tuple[str, str, str] = HOOK) -> str:
        return f"{self.base_url}/services/{'/'.join(hook)}"

    async def _post(self, request: Request) -> Response:
        received = await self.record(request)
        hook = (
            request.path_params["team"],
            request.path_params["bot"],
            request.path_params["secret"],
        )
        if hook not in self.hooks:
            return slack_error(404, "no_service").response()
        if hook in self.archived:
            return slack_error(410, "channel_is_archived").response()
        scripted = await self.next_scripted()
        if scripted is not None:
            return scripted
        try:
            body = received.json()
        except msgspec.DecodeError:
            return slack_error(400, "invalid_payload").response()
        if not isinstance(body, dict):
            return slack_error(400, "invalid_payload").response()
        if not body.get("text") and not body.get("blocks"):
            return slack_error(400, "no_text").response()
        if "blocks" in body:
            problem = _blocks_problem(body["blocks"])
            if problem:
                return slack_error(400, problem).response()
        self.messages.append(body)
        return Scripted.text(200, "ok").response()
