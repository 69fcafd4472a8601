"""Retry delays: exponential with a cap and deterministic jitter.

Pure functions of their arguments (no clock, no global random state), so a
test can assert the exact delay and two gateway nodes compute the same
schedule for the same event. The jitter comes from a hash of the event id
and the round number: different events spread out, one event is repeatable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["BackoffPolicy", "backoff_delay_ms", "retry_delay_ms"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Parameters of :func:`backoff_delay_ms`.

    Round ``n`` (1-based) waits ``min(cap_ms, base_ms * multiplier ** (n - 1))``,
    reduced by up to ``jitter`` of itself (0 = no jitter, 0.5 = up to half).
    """

    base_ms: int = 1_000
    cap_ms: int = 60_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base_ms < 0 or self.cap_ms < self.base_ms:
            raise ValueError("backoff needs 0 <= base_ms <= cap_ms")
        if self.multiplier < 1.0 or not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff needs multiplier >= 1 and 0 <= jitter <= 1")


def _unit_fraction(seed: str, round_number: int) -> float:
    """A stable number in [0, 1) derived from ``seed`` and ``round_number``."""
    digest = hashlib.blake2b(f"{seed}:{round_number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def backoff_delay_ms(policy: BackoffPolicy, round_number: int, seed: str = "") -> int:
    """How long to wait before retry round ``round_number`` (1 = first retry)."""
    if round_number < 1:
        raise ValueError("round_number starts at 1")
    # Cap the exponent first so huge round numbers cannot overflow a float.
    exponent = min(round_number - 1, 64)
    raw = min(float(policy.cap_ms), policy.base_ms * policy.multiplier**exponent)
    return int(raw * (1.0 - policy.jitter * _unit_fraction(seed, round_number)))


def retry_delay_ms(
    policy: BackoffPolicy, round_number: int, retry_after_ms: int | None, seed: str = ""
) -> int:
    """The backoff delay, but never shorter than a channel's ``retry_after_ms``."""
    delay = backoff_delay_ms(policy, round_number, seed)
    return max(delay, retry_after_ms or 0)
