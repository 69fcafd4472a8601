"""Discord's execute-webhook endpoint: ``POST /api/webhooks/{id}/{token}``.

Shapes from Discord's developer documentation (Webhook resource, Rate
Limits, JSON error codes): ``?wait=true`` answers 200 with the message
object, otherwise 204; an unknown webhook is ``404 {"message": "Unknown
Webhook", "code": 10015}``, a wrong token ``401 {"code": 50027}``, a body
over the limits ``400 {"message": "Invalid Form Body", "code": 50035,
"errors": ...}``, rate limiting ``429 {"message": "You are being rate
limited.", "retry_after": 0.5, "global": false}`` with a ``Retry-After``
header.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.loopback.server import LoopbackServer, Scripted, json_response

__all__ = ["FakeDiscord", "rate_limited"]

WEBHOOK_ID = "1234567890123456789"
WEBHOOK_TOKEN = "dIsCoRd-WeBhOoK-tOkEn_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


def rate_limited(retry_after: float = 0.5) -> Scripted:
    document = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": False,
    }
    return Scripted.json(429, document, {"Retry-After": str(int(retry_after) + 1)})


def _form_errors(body: Any) -> dict[str, Any]:
    """Field path -> problem, for Discord's documented limits."""
    problems: dict[str, Any] = {}
    if not isinstance(body, dict):
        return {"_errors": "not an object"}
    if len(body.get("content") or "") > 2000:
        problems["content"] = "Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        problems["embeds"] = "Must be 10 or fewer in length."
    for n, embed in enumerate(embeds):
        total = 0
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key) or ""
            total += len(value)
            if len(value) > limit:
                problems[f"embeds.{n}.{key}"] = f"Must be {limit} or fewer in length."
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems[f"embeds.{n}.fields"] = "Must be 25 or fewer in length."
        for m, item in enumerate(fields):
            total += len(item.get("name", "")) + len(item.get("value", ""))
            if not item.get("name") or len(item["name"]) > 256:
                problems[f"embeds.{n}.fields.{m}.name"] = "Must be between 1 and 256 in length."
            if not item.get("value") or len(item["value"]) > 1024:
                problems[f"embeds.{n}.fields.{m}.value"] = "Must be between 1 and 1024 in length."
        if total > 6000:
            problems[f"embeds.{n}"] = "Embed size exceeds maximum size of 6000"
    return problems


class FakeDiscord(LoopbackServer):
    """Discord incoming webhooks; ``webhooks`` maps id -> token."""

    def __init__(self, webhooks: dict[str, str] | None = None) -> None:
        super().__init__()
        self.webhooks = webhooks if webhooks is not None else {WEBHOOK_ID: WEBHOOK_TOKEN}
        self.messages: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/webhooks/{id}/{token}", self._execute, methods=["POST"])]
        )

    def url(self, webhook_id: str = WEBHOOK_ID, token: str | None = None) -> str:
        token = token if token is not None else self.webhooks.get(webhook_id, "x" * 68)
        return f"{self.base_url}/api/webhooks/{webhook_id}/{token}"

    async def _execute(self, request: Request) -> Response:
        received = await self.record(request)
        webhook_id, token = request.path_params["id"], request.path_params["token"]
        if webhook_id not in self.webhooks:
            return json_response(404, {"message": "Unknown Webhook", "code": 10015})
        if self.webhooks[webhook_id] != token:
            return json_response(401, {"message": "Invalid Webhook Token", "code": 50027})
        scripted = await self.next_scripted()
        if scripted is not None:
            return scripted
        try:
            body = received.json()
        except msgspec.DecodeError:
            return json_response(400, {"message": "Cannot send an empty message", "code": 50006})
        if not body.get("content") and not body.get("embeds"):
            return json_response(400, {"message": "Cannot send an empty message", "code": 50006})
        problems = _form_errors(body)
        if problems:
            document = {"message": "Invalid Form Body", "code": 50035, "errors": problems}
            return json_response(400, document)
        message = {
            "id": str(1_100_000_000_000_000_000 + len(self.messages)),
            "type": 0,
            "channel_id": "987654321098765432",
            "webhook_id": webhook_id,
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "author": {"id": webhook_id, "username": "tradewire", "bot": True},
        }
        self.messages.append(message)
        if request.query_params.get("wait") == "true":
            return json_response(200, message)
        return Response(status_code=204)
