"""API keys of ingest connectors: format, hashing and verification (pure).

A key reads ``twk_<key_id>_<secret>``: ``key_id`` is 16 hex digits (public,
the row to look up, what ``keys list`` and ``keys revoke`` show), ``secret``
is 43 URL-safe base64 characters (256 random bits). The store keeps only
``sha256(secret)`` in hex: the secret is shown once, when the key is created.
A plain SHA-256 is enough because the secret is a uniformly random 256-bit
value, not a password (no dictionary to grind through).

Verification is a pure function of the presented text and the stored row,
returning the owner's ``user_id`` or a :class:`KeyRejected` value saying why.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

import msgspec

__all__ = [
    "KEY_PREFIX",
    "IssuedKey",
    "KeyRejected",
    "StoredKey",
    "hash_secret",
    "issue_key",
    "key_from_headers",
    "parse_key",
    "verify_key",
]

KEY_PREFIX: Final = "twk_"
_KEY: Final = re.compile(r"twk_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})")


class KeyRejected(msgspec.Struct, frozen=True, kw_only=True):
    """Why a presented key was refused; ``code`` is stable, ``message`` says what to do."""

    code: str
    message: str


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A freshly created key: ``text`` is shown once, only the hash is kept."""

    key_id: str
    user_id: str
    text: str
    secret_sha256: str


class StoredKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as the store keeps it (no secret)."""

    key_id: str
    user_id: str
    secret_sha256: str
    created_at_ms: int
    revoked_at_ms: int | None = None
    label: str | None = None


MISSING: Final = KeyRejected(
    code="KEY_MISSING",
    message="No API key: send `Authorization: Bearer twk_...` or `?key=twk_...` "
    "(create one with `tradewire keys create --user USER_ID`).",
)
MALFORMED: Final = KeyRejected(
    code="KEY_MALFORMED",
    message="The API key is not of the form twk_<16 hex>_<43 characters>: "
    "copy the whole key printed by `tradewire keys create`.",
)
UNKNOWN: Final = KeyRejected(
    code="KEY_UNKNOWN",
    message="The API key is wrong or unknown: check it, or create a new one.",
)
REVOKED: Final = KeyRejected(
    code="KEY_REVOKED",
    message="The API key was revoked: create a new one with `tradewire keys create`.",
)


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(
    user_id: str, *, token_hex: str | None = None, secret: str | None = None
) -> IssuedKey:
    """A new random key for ``user_id`` (``token_hex``/``secret`` fix it, for tests)."""
    key_id = token_hex or secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(32)
    return IssuedKey(
        key_id=key_id,
        user_id=user_id,
        text=f"{KEY_PREFIX}{key_id}_{secret}",
        secret_sha256=hash_secret(secret),
    )


def parse_key(text: str | None) -> tuple[str, str] | KeyRejected:
    """``(key_id, secret)`` of a presented key, or why it cannot be one."""
    if not text:
        return MISSING
    match = _KEY.fullmatch(text.strip())
    if match is None:
        return MALFORMED
    return match["key_id"], match["secret"]


def verify_key(secret: str, stored: StoredKey | None) -> str | KeyRejected:
    """The owner's ``user_id`` if ``secret`` matches ``stored`` and it is live."""
    if stored is None or not hmac.compare_digest(hash_secret(secret), stored.secret_sha256):
        return UNKNOWN
    if stored.revoked_at_ms is not None:
        return REVOKED
    return stored.user_id


def key_from_headers(authorization: str | None, query_key: str | None) -> str | None:
    """The presented key: ``Authorization: Bearer K`` first, else ``?key=K``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return authorization.strip()
    return query_key or None
