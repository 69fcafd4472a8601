"""Signed, expiring session tokens (JWT, HS256) for ``/ws/session``.

A token names one user (``sub``) and expires (``exp``); it is signed with a
secret kept in ``<data-dir>/session.secret`` (created on first use, mode
0600), so ``tradewire token USER`` and the gateway agree as long as they
share the data dir. A refused token is a value (:class:`TokenRejected`) with
a reason a person can act on, never an exception.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt

__all__ = ["DEFAULT_TTL_SECONDS", "SessionTokens", "TokenRejected", "load_or_create_secret"]

DEFAULT_TTL_SECONDS = 24 * 3600
_ALGORITHM = "HS256"
_AUDIENCE = "tradewire-session"
SECRET_FILE = "session.secret"


@dataclass(frozen=True)
class TokenRejected:
    """Why a token was refused: ``expired``, ``invalid`` or ``missing``."""

    reason: str
    message: str


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing secret of ``data_dir``, created with mode 0600 if absent."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


class SessionTokens:
    """Issue and verify session tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, user_id: str, *, now: int, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
        """A token for ``user_id`` valid from ``now`` (Unix seconds) for ``ttl_seconds``."""
        if not user_id:
            raise ValueError("user_id must not be empty")
        claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds, "aud": _AUDIENCE}
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str | None, *, now: int) -> str | TokenRejected:
        """The user id the token names, or why it is refused."""
        if not token:
            return TokenRejected(
                "missing", "no token: connect with ?token=T (tradewire token USER)"
            )
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={
                    "require": ["sub", "exp"],
                    "verify_exp": False,  # checked below against the injected clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            return TokenRejected(
                "invalid", f"invalid token ({exc}): get a new one with tradewire token"
            )
        if int(claims["exp"]) <= now:
            return TokenRejected(
                "expired", "token expired: get a new one with tradewire token USER"
            )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            return TokenRejected(
                "invalid", "token names no user: get a new one with tradewire token"
            )
        return sub
