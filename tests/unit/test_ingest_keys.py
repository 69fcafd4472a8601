"""API keys: format, hashing, verification (pure) and the keyring on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewire.ingest import ingest_projectors
from tradewire.ingest.keyring import authenticate, create_key, list_keys, lookup_key, revoke_key
from tradewire.ingest.keys import (
    MALFORMED,
    MISSING,
    REVOKED,
    UNKNOWN,
    StoredKey,
    hash_secret,
    issue_key,
    key_from_headers,
    parse_key,
    verify_key,
)
from tradewire.store.sqlite import open_store


def test_issued_key_has_the_documented_shape_and_keeps_only_a_hash() -> None:
    key = issue_key("alice")
    assert key.text.startswith(f"twk_{key.key_id}_")
    secret = key.text[21:]
    assert parse_key(key.text) == (key.key_id, secret)
    assert key.secret_sha256 == hash_secret(secret)
    assert secret not in key.secret_sha256
    assert issue_key("alice").text != key.text


@pytest.mark.parametrize(
    ("text", "verdict"),
    [(None, MISSING), ("", MISSING), ("twk_abc", MALFORMED), ("Bearer x", MALFORMED)],
)
def test_parse_refuses_missing_and_malformed_keys(text: str | None, verdict: object) -> None:
    assert parse_key(text) == verdict


def test_verify_checks_hash_and_revocation() -> None:
    key = issue_key("bob")
    key_id, secret = parse_key(key.text)  # type: ignore[misc]
    stored = StoredKey(
        key_id=key_id, user_id="bob", secret_sha256=key.secret_sha256, created_at_ms=1
    )
    assert verify_key(secret, stored) == "bob"
    assert verify_key(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored) == UNKNOWN
    assert verify_key(secret, None) == UNKNOWN
    revoked = StoredKey(
        key_id=key_id, user_id="bob", secret_sha256=key.secret_sha256, created_at_ms=1,
        revoked_at_ms=2,
    )  # fmt: skip
    assert verify_key(secret, revoked) == REVOKED


def test_key_from_headers_prefers_bearer() -> None:
    assert key_from_headers("Bearer twk_x", "twk_y") == "twk_x"
    assert key_from_headers("bearer  twk_x ", None) == "twk_x"
    assert key_from_headers(None, "twk_y") == "twk_y"
    assert key_from_headers(None, None) is None


async def test_keyring_create_list_revoke_on_a_store(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os", projectors=ingest_projectors()) as store:
        key = await create_key(store, "alice", label="laptop")
        other = await create_key(store, "bob")
        assert await authenticate(store, key.text) == "alice"
        assert await authenticate(store, other.text) == "bob"
        assert await authenticate(store, key.text[:-2] + "zz") == UNKNOWN
        assert {k.key_id for k in await list_keys(store)} == {key.key_id, other.key_id}
        assert [k.label for k in await list_keys(store, "alice")] == ["laptop"]
        revoked = await revoke_key(store, key.key_id)
        assert revoked is not None and revoked.revoked_at_ms is not None
        assert await revoke_key(store, key.key_id) == revoked  # idempotent
        assert await revoke_key(store, "0" * 16) is None
        assert await authenticate(store, key.text) == REVOKED
        assert await authenticate(store, other.text) == "bob"
        stored = await lookup_key(store, key.key_id)
        assert stored is not None and key.text[21:] not in repr(stored)
