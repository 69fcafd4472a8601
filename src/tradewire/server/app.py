"""The HTTP + WebSocket application served on ``--http-port``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tradewire import __version__
from tradewire.server.analytics_routes import create_analytics_router
from tradewire.server.events_routes import create_events_router
from tradewire.server.ingest_routes import create_ingest_router
from tradewire.server.metrics import CONTENT_TYPE_LATEST
from tradewire.server.session_ws import serve_session
from tradewire.server.users_routes import create_users_router

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["SESSION_PATH", "SessionFastPath", "create_app", "create_asgi"]

SESSION_PATH = "/ws/session"


def create_app(gateway: Gateway) -> FastAPI:
    """Build the ASGI app bound to one running ``gateway``."""
    app = FastAPI(
        title="tradewire",
        version=__version__,
        summary="Event backbone of a trading platform",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, object]:
        """Liveness and readiness: 200 while every socket listens."""
        return {"status": "ok", "version": __version__, "listen": gateway.addresses.as_dict()}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition format."""
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(create_events_router(gateway))  # user-event delivery
    app.include_router(create_ingest_router(gateway, gateway.ingest_hub))  # platform ingest
    app.include_router(create_users_router(gateway))  # user directory (#4)
    app.include_router(create_analytics_router(gateway))  # run analytics (#6)
    return app


class SessionFastPath:
    """``/ws/session`` straight to its handler, everything else to FastAPI.

    A live session's handler stays suspended for as long as its WebSocket is
    open, and so would every frame of FastAPI's request handling around it
    (routing, dependency solving, exit stacks, exception middleware): several
    KiB per idle session. The session endpoint takes no dependencies and has
    no OpenAPI entry, so it is served as a plain ASGI app in front.
    """

    __slots__ = ("app", "session")

    def __init__(self, app: ASGIApp, session: ASGIApp) -> None:
        self.app = app
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == SESSION_PATH:
            await self.session(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_asgi(gateway: Gateway) -> ASGIApp:
    """What the gateway serves: ``/ws/session`` (``?token=T``, ``&batch=1``) and the API."""
    session = functools.partial(
        serve_session,
        tokens=gateway.tokens,
        listener=gateway.delivery,
        heartbeats=gateway.session_heartbeats,
    )
    return SessionFastPath(create_app(gateway), session)
