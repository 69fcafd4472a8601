"""REST of the user directory: a user's own profile, preferences and push subscriptions.

Every route needs the user's session token (``Authorization: Bearer T``): a
user reads and changes only their own profile. Webhook URLs come back
masked (they are credentials).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from tradewire.channels._recipient import parse_allowed_hosts
from tradewire.channels.directory import PushSubscription
from tradewire.server.events_routes import session_user
from tradewire.users import ProfileChange, StoreDirectory, add_push_subscription, update_profile
from tradewire.users.view import profile_view

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_users_router"]


class ProfilePatch(BaseModel):
    """Fields to change; absent fields stay as they are, ``""`` clears a value."""

    email: str | None = None
    telegram_chat_id: str | None = None
    discord_webhook_url: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = Field(None, description="HMAC key signing your webhook calls")
    apprise_url: str | None = None
    timezone: str | None = Field(None, examples=["Europe/Rome"])
    display_name: str | None = None
    quiet_hours: str | None = Field(None, examples=["22:00-07:00"])
    opt_outs: list[str] | None = Field(None, examples=[["ORDER_PLACED:TELEGRAM", "*:EMAIL"]])


class SubscriptionKeys(BaseModel):
    """``keys`` of a browser's ``PushSubscription.toJSON()``."""

    p256dh: str = Field(min_length=1)
    auth: str = Field(min_length=1)


class PushSubscriptionIn(BaseModel):
    """A browser's ``PushSubscription.toJSON()``."""

    endpoint: str = Field(pattern=r"^https?://")
    keys: SubscriptionKeys


def _own(gateway: Gateway, request: Request, user_id: str) -> None:
    if session_user(gateway, request) != user_id:
        raise HTTPException(403, detail={"code": "FORBIDDEN", "message": "not your profile"})


def create_users_router(gateway: Gateway) -> APIRouter:
    """Routes under ``/api/users/{user_id}/profile`` and ``.../push-subscriptions``."""
    router = APIRouter(tags=["users"])
    hosts = parse_allowed_hosts(gateway.settings.webhook_allowed_hosts)

    @router.get("/api/push/vapid-public-key")
    async def vapid_public_key() -> dict[str, str]:
        """The key a web page passes to ``pushManager.subscribe({applicationServerKey})``."""
        push = gateway.notifications.push
        if push is None:
            raise HTTPException(404, detail={"code": "NOT_CONFIGURED", "message": "no Web Push"})
        return {"public_key": push.application_server_key}

    @router.get("/api/users/{user_id}/profile")
    async def get_profile(user_id: str, request: Request) -> dict[str, Any]:
        """The user's addresses and preferences (webhook URLs masked)."""
        _own(gateway, request, user_id)
        profile = await StoreDirectory(gateway.store).profile(user_id)
        if profile is None:
            raise HTTPException(404, detail={"code": "NOT_FOUND", "message": "no profile yet"})
        return profile_view(profile)

    @router.patch("/api/users/{user_id}/profile")
    async def patch_profile(user_id: str, patch: ProfilePatch, request: Request) -> dict[str, Any]:
        """Change some fields of the profile; 422 names the invalid field."""
        _own(gateway, request, user_id)
        change = ProfileChange(**patch.model_dump(exclude_unset=True))
        try:
            profile = await update_profile(gateway.store, user_id, change, hosts)
        except ValueError as exc:
            field, message = exc.args
            raise HTTPException(
                422, detail={"code": "VALIDATION_ERROR", "message": message, "field": field}
            ) from None
        return profile_view(profile)

    @router.post("/api/users/{user_id}/push-subscriptions", status_code=201)
    async def subscribe(
        user_id: str, subscription: PushSubscriptionIn, request: Request
    ) -> dict[str, Any]:
        """Register a browser's Web Push subscription (idempotent by endpoint)."""
        _own(gateway, request, user_id)
        value = PushSubscription(
            endpoint=subscription.endpoint,
            p256dh=subscription.keys.p256dh,
            auth=subscription.keys.auth,
        )
        await add_push_subscription(gateway.store, user_id, value)
        return {"registered": True}

    @router.delete("/api/users/{user_id}/push-subscriptions", status_code=204)
    async def unsubscribe(user_id: str, endpoint: str, request: Request) -> None:
        """Forget the subscription with ``?endpoint=...``."""
        _own(gateway, request, user_id)
        await StoreDirectory(gateway.store).remove_push_subscription(user_id, endpoint)

    return router
