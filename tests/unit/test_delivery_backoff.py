"""Backoff is a pure function: exponential, capped, deterministic jitter, honours retry-after."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.delivery import BackoffPolicy, backoff_delay_ms, retry_delay_ms

NO_JITTER = BackoffPolicy(base_ms=100, cap_ms=1_000, multiplier=2.0, jitter=0.0)


def test_exponential_until_the_cap() -> None:
    delays = [backoff_delay_ms(NO_JITTER, n) for n in range(1, 7)]
    assert delays == [100, 200, 400, 800, 1_000, 1_000]


def test_huge_round_numbers_stay_at_the_cap() -> None:
    assert backoff_delay_ms(NO_JITTER, 10_000) == 1_000


def test_jitter_is_deterministic_per_seed_and_round() -> None:
    policy = BackoffPolicy(base_ms=1_000, cap_ms=60_000, jitter=0.5)
    assert backoff_delay_ms(policy, 3, "evt-1") == backoff_delay_ms(policy, 3, "evt-1")
    spread = {backoff_delay_ms(policy, 3, f"evt-{i}") for i in range(20)}
    assert len(spread) > 10


def test_retry_after_wins_when_longer() -> None:
    assert retry_delay_ms(NO_JITTER, 1, 5_000) == 5_000
    assert retry_delay_ms(NO_JITTER, 1, 10) == 100
    assert retry_delay_ms(NO_JITTER, 1, None) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_ms": -1},
        {"base_ms": 10, "cap_ms": 5},
        {"multiplier": 0.5},
        {"jitter": 1.5},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_round_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay_ms(NO_JITTER, 0)


@given(
    base=st.integers(0, 10_000),
    extra=st.integers(0, 100_000),
    jitter=st.floats(0.0, 1.0),
    round_number=st.integers(1, 200),
    seed=st.text(max_size=20),
    retry_after=st.none() | st.integers(0, 1_000_000),
)
def test_delay_is_bounded(
    base: int, extra: int, jitter: float, round_number: int, seed: str, retry_after: int | None
) -> None:
    policy = BackoffPolicy(base_ms=base, cap_ms=base + extra, jitter=jitter)
    delay = backoff_delay_ms(policy, round_number, seed)
    assert 0 <= delay <= policy.cap_ms
    assert (
        delay >= int(min(policy.cap_ms, base * 2 ** min(round_number - 1, 64)) * (1 - jitter)) - 1
    )
    assert retry_delay_ms(policy, round_number, retry_after, seed) >= (retry_after or 0)
