"""The user directory kept in the store (profiles, push subscriptions, link codes)."""

from tradewire.users.profiles import (
    USERS_STREAM,
    ProfileChange,
    StoreDirectory,
    UsersProjector,
    add_push_subscription,
    issue_telegram_code,
    list_profiles,
    redeem_telegram_code,
    update_profile,
)

__all__ = [
    "USERS_STREAM",
    "ProfileChange",
    "StoreDirectory",
    "UsersProjector",
    "add_push_subscription",
    "issue_telegram_code",
    "list_profiles",
    "redeem_telegram_code",
    "update_profile",
]
