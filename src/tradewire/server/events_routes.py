"""REST views of user-event delivery: one event's history and a user's inbox.

Both need the user's session token (``tradewire token USER``) in
``Authorization: Bearer T`` or ``?token=T``: a user only sees their own
events. INFORMATIONAL events are never stored, so they never appear here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from tradewire.auth import TokenRejected
from tradewire.server.delivery_store import event_history, user_inbox

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_events_router", "session_user"]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


def session_user(gateway: Gateway, request: Request) -> str:
    """The user whose session token the request carries, or a 401."""
    verdict = gateway.tokens.verify(_token(request), now=int(time.time()))
    if isinstance(verdict, TokenRejected):
        raise HTTPException(
            401,
            detail={"code": f"TOKEN_{verdict.reason.upper()}", "message": verdict.message},
            headers={"WWW-Authenticate": "Bearer"},
        )
    return verdict


def create_events_router(gateway: Gateway) -> APIRouter:
    """Routes under ``/api/events`` and ``/api/users/{user_id}/events``."""
    router = APIRouter(tags=["user events"])

    @router.get("/api/events/{event_id}")
    async def get_event(event_id: str, request: Request) -> dict[str, Any]:
        """Delivery status of one event and every attempt (channel, outcome, error, time)."""
        user = session_user(gateway, request)
        doc = await event_history(gateway.store, event_id)
        if doc is None or doc["user_id"] != user:
            raise HTTPException(404, detail={"code": "NOT_FOUND", "message": "no such event"})
        return doc

    @router.get("/api/users/{user_id}/events")
    async def inbox(
        user_id: str,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(description="cursor of the last page")] = None,
        state: Annotated[str | None, Query(description="pending, delivered, ...")] = None,
    ) -> dict[str, Any]:
        """The user's guaranteed events, newest first; page with ``before=<cursor>``."""
        if session_user(gateway, request) != user_id:
            raise HTTPException(403, detail={"code": "FORBIDDEN", "message": "not your inbox"})
        events = await user_inbox(gateway.store, user_id, limit=limit, before=before, state=state)
        next_cursor = events[-1]["cursor"] if len(events) == limit else None
        return {"events": events, "next_before": next_cursor}

    return router
