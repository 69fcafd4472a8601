"""A plain JSON endpoint (what Apprise's ``json://`` plugin posts to)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.loopback.server import LoopbackServer, json_response

__all__ = ["FakeJsonSink"]


class FakeJsonSink(LoopbackServer):
    """Accepts any JSON POST under ``/hooks/{name}`` (200), unless scripted otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{name}", self._post, methods=["POST"])])

    async def _post(self, request: Request) -> Response:
        received = await self.record(request)
        scripted = await self.next_scripted()
        if scripted is not None:
            return scripted
        self.accepted.append(received.json())
        return json_response(200, {"ok": True})
