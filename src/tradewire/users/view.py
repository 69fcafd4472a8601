"""How a profile is shown to people: addresses masked where they are credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tradewire.channels.directory import UserProfile

__all__ = ["mask_url", "profile_view"]


def mask_url(url: str) -> str:
    """``https://discord.com/***``: a webhook URL is its own password, so keep only its origin."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/***" if parts.netloc else "***"


def profile_view(profile: UserProfile) -> dict[str, Any]:
    """The profile as JSON for the CLI and REST: secrets masked, preferences readable."""
    return {
        "user_id": profile.user_id,
        "display_name": profile.display_name,
        "email": profile.email,
        "telegram_chat_id": profile.telegram_chat_id,
        "discord_webhook_url": mask_url(profile.discord_webhook_url),
        "slack_webhook_url": mask_url(profile.slack_webhook_url),
        "webhook_url": mask_url(profile.webhook_url),
        "webhook_secret": "***" if profile.webhook_secret else "",
        "apprise_url": "***" if profile.apprise_url else "",
        "push_subscriptions": [mask_url(s.endpoint) for s in profile.push_subscriptions],
        "timezone": profile.timezone,
        "quiet_hours": str(profile.quiet_hours) if profile.quiet_hours else None,
        "opt_outs": [f"{o.event_type}:{o.channel}" for o in profile.opt_outs],
    }
