"""API keys kept in the store: created and revoked as records, projected to ``api_keys``.

Key changes are records of the ``api_keys`` stream (``key_created`` with the
secret's hash, never the secret; ``key_revoked``), so they are durable like
any message, survive ``tradewire rebuild`` and work from the CLI while the
gateway runs (both write through the store's transactions). The
:class:`KeysProjector` keeps the ``api_keys`` table in step; the gateway
reads it for every handshake or request, so a revoked key stops working at
once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec

from tradewire.ingest.keys import (
    IssuedKey,
    KeyRejected,
    StoredKey,
    issue_key,
    parse_key,
    verify_key,
)
from tradewire.store import AppendResult, Record, Refusal, SqlExecutor, StoredRecord

__all__ = [
    "KEYS_STREAM",
    "KeyStore",
    "KeysProjector",
    "authenticate",
    "create_key",
    "list_keys",
    "lookup_key",
    "revoke_key",
]

KEYS_STREAM: Final = "api_keys"


class KeyStore(Protocol):
    """What key management needs of a store: appends and read queries."""

    async def append(self, record: Record) -> AppendResult:
        """Store a record durably."""
        ...

    async def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        ...


class _KeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    user_id: str
    secret_sha256: str
    label: str | None = None


class _KeyRevoked(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str


_INSERT: Final = (
    "INSERT INTO api_keys (key_id, user_id, secret_sha256, label, created_at_ms) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING"
)
_REVOKE: Final = "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, ?) WHERE key_id = ?"
_SELECT: Final = (
    "SELECT key_id, user_id, secret_sha256, created_at_ms, revoked_at_ms, label FROM api_keys"
)


class KeysProjector:
    """Keeps ``api_keys`` in step with the ``api_keys`` stream."""

    streams: frozenset[str] = frozenset({KEYS_STREAM})

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        """Insert a created key, or mark a key revoked."""
        if record.kind == "key_created":
            key = msgspec.json.decode(record.body, type=_KeyCreated)
            args = (key.key_id, key.user_id, key.secret_sha256, key.label, record.created_at_ms)
            db.execute(_INSERT, args)
        elif record.kind == "key_revoked":
            revoked = msgspec.json.decode(record.body, type=_KeyRevoked)
            db.execute(_REVOKE, (record.created_at_ms, revoked.key_id))
        return None

    def reset(self, db: SqlExecutor) -> None:
        """Empty ``api_keys``."""
        db.execute("DELETE FROM api_keys")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def create_key(store: KeyStore, user_id: str, *, label: str | None = None) -> IssuedKey:
    """Create a key for ``user_id``; the returned ``text`` is the only copy of the secret."""
    issued = issue_key(user_id)
    body = _KeyCreated(
        key_id=issued.key_id, user_id=user_id, secret_sha256=issued.secret_sha256, label=label
    )
    record = Record(
        stream=KEYS_STREAM,
        key=f"created:{issued.key_id}",
        body=msgspec.json.encode(body),
        kind="key_created",
        created_at_ms=_now_ms(),
        user_id=user_id,
    )
    await store.append(record)
    return issued


async def revoke_key(store: KeyStore, key_id: str) -> StoredKey | None:
    """Revoke ``key_id`` (idempotent); ``None`` when no such key exists."""
    stored = await lookup_key(store, key_id)
    if stored is None:
        return None
    record = Record(
        stream=KEYS_STREAM,
        key=f"revoked:{key_id}",
        body=msgspec.json.encode(_KeyRevoked(key_id=key_id)),
        kind="key_revoked",
        created_at_ms=_now_ms(),
        user_id=stored.user_id,
    )
    await store.append(record)
    return await lookup_key(store, key_id)


async def lookup_key(store: KeyStore, key_id: str) -> StoredKey | None:
    """The stored key ``key_id``, or ``None``."""
    rows = await store.query(_SELECT + " WHERE key_id = ?", (key_id,))
    return _row_to_key(rows[0]) if rows else None


async def list_keys(store: KeyStore, user_id: str | None = None) -> list[StoredKey]:
    """Every key (of ``user_id`` when given), oldest first."""
    if user_id is None:
        rows = await store.query(_SELECT + " ORDER BY created_at_ms, key_id")
    else:
        rows = await store.query(
            _SELECT + " WHERE user_id = ? ORDER BY created_at_ms, key_id", (user_id,)
        )
    return [_row_to_key(row) for row in rows]


async def authenticate(store: KeyStore, presented: str | None) -> str | KeyRejected:
    """The ``user_id`` owning the presented key, or why it is refused."""
    parsed = parse_key(presented)
    if isinstance(parsed, KeyRejected):
        return parsed
    key_id, secret = parsed
    return verify_key(secret, await lookup_key(store, key_id))


def _row_to_key(row: Sequence[Any]) -> StoredKey:
    key_id, user_id, secret_sha256, created_at_ms, revoked_at_ms, label = row
    return StoredKey(
        key_id=key_id,
        user_id=user_id,
        secret_sha256=secret_sha256,
        created_at_ms=created_at_ms,
        revoked_at_ms=revoked_at_ms,
        label=label,
    )
