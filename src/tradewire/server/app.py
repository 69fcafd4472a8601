"""The HTTP + WebSocket application served on ``--http-port``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response

from tradewire import __version__
from tradewire.server.analytics_routes import create_analytics_router
from tradewire.server.events_routes import create_events_router
from tradewire.server.ingest_routes import create_ingest_router
from tradewire.server.metrics import CONTENT_TYPE_LATEST
from tradewire.server.session_ws import serve_session
from tradewire.server.users_routes import create_users_router

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_app"]


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

    @app.websocket("/ws/session")
    async def session(ws: WebSocket) -> None:
        """A user's live session: ``?token=T`` (``tradewire token USER``), ``&batch=1``."""
        await serve_session(
            ws,
            tokens=gateway.tokens,
            listener=gateway.delivery,
            heartbeat_s=gateway.settings.session_heartbeat_seconds,
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition format."""
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(create_events_router(gateway))  # user-event delivery
    app.include_router(create_ingest_router(gateway, gateway.ingest_hub))  # platform ingest
    app.include_router(create_users_router(gateway))  # user directory (#4)
    app.include_router(create_analytics_router(gateway))  # run analytics (#6)
    return app
