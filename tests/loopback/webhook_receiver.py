"""A receiver of tradewire's signed webhooks, verifying as the docs tell receivers to."""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.loopback.server import LoopbackServer, json_response
from tradewire.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

__all__ = ["FakeReceiver"]

SECRET = "whsec_receiver-shared-secret-0123456789"


class FakeReceiver(LoopbackServer):
    """Accepts correctly signed POSTs on ``/hooks/{name}``; 401 otherwise."""

    def __init__(self, secret: str = SECRET) -> None:
        super().__init__()
        self.secret = secret
        self.accepted: list[dict[str, Any]] = []
        self.checks: list[str] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{name}", self._post, methods=["POST"])])

    def url(self, name: str = "user-1") -> str:
        return f"{self.base_url}/hooks/{name}"

    async def _post(self, request: Request) -> Response:
        received = await self.record(request)
        check = verify_signature(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER),
            received.body,
            request.headers.get(SIGNATURE_HEADER),
            now=time.time(),
        )
        self.checks.append(check.value)
        if not check:
            return json_response(401, {"error": f"signature {check.value}"})
        scripted = await self.next_scripted()
        if scripted is not None:
            return scripted
        self.accepted.append(received.json())
        return json_response(200, {"received": True})
