"""Which live sessions each user has open (pure bookkeeping)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["SessionRegistry"]

S = TypeVar("S", bound=Hashable)


class SessionRegistry(Generic[S]):
    """user id -> the user's open sessions, in the order they opened.

    ``add`` says whether it was the user's first session and ``remove``
    whether it was the last: the gateway subscribes and unsubscribes the
    user's ZeroMQ topic on exactly those edges.
    """

    def __init__(self) -> None:
        self._by_user: dict[str, dict[S, None]] = {}

    def add(self, user_id: str, session: S) -> bool:
        """Register ``session``; True when it is the user's first one."""
        sessions = self._by_user.setdefault(user_id, {})
        first = not sessions
        sessions[session] = None
        return first

    def remove(self, user_id: str, session: S) -> bool:
        """Forget ``session``; True when the user has no session left."""
        sessions = self._by_user.get(user_id)
        if sessions is None or session not in sessions:
            return False
        del sessions[session]
        if sessions:
            return False
        del self._by_user[user_id]
        return True

    def sessions_of(self, user_id: str) -> list[S]:
        """The user's open sessions, oldest first."""
        return list(self._by_user.get(user_id, ()))

    def is_active(self, user_id: str) -> bool:
        """Whether the user has at least one open session."""
        return user_id in self._by_user

    def users(self) -> list[str]:
        """Every user with an open session."""
        return list(self._by_user)

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_user.values())
