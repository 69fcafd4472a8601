"""Session tokens: signed, expiring, bound to one user and one secret."""

from __future__ import annotations

import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tradewire.auth import SessionTokens, TokenRejected, load_or_create_secret

NOW = 1_800_000_000


def test_round_trip_names_the_user() -> None:
    tokens = SessionTokens(b"k" * 32)
    assert tokens.verify(tokens.issue("u1", now=NOW), now=NOW + 10) == "u1"


def test_expired_token_is_refused_with_reason() -> None:
    tokens = SessionTokens(b"k" * 32)
    token = tokens.issue("u1", now=NOW, ttl_seconds=60)
    result = tokens.verify(token, now=NOW + 60)
    assert isinstance(result, TokenRejected)
    assert result.reason == "expired"


def test_token_of_another_secret_is_invalid() -> None:
    token = SessionTokens(b"a" * 32).issue("u1", now=NOW)
    result = SessionTokens(b"b" * 32).verify(token, now=NOW)
    assert isinstance(result, TokenRejected)
    assert result.reason == "invalid"


def test_missing_token() -> None:
    result = SessionTokens(b"k" * 32).verify(None, now=NOW)
    assert isinstance(result, TokenRejected)
    assert result.reason == "missing"


@given(st.text(max_size=300))
def test_any_garbage_is_refused_not_raised(garbage: str) -> None:
    result = SessionTokens(b"k" * 32).verify(garbage, now=NOW)
    assert isinstance(result, TokenRejected)


@given(st.text(min_size=1, max_size=64))
def test_any_user_id_round_trips(user_id: str) -> None:
    tokens = SessionTokens(b"k" * 32)
    assert tokens.verify(tokens.issue(user_id, now=NOW), now=NOW) == user_id


def test_secret_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    mode = (tmp_path / "session.secret").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
