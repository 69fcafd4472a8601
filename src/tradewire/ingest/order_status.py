"""Order status precedence: a status never moves backwards (pure).

Ranks, lowest first::

    PENDING_NEW (0) < NEW (1) < PENDING_CANCEL / PENDING_REPLACE (2)
        < PARTIALLY_FILLED (3) < FILLED | CANCELED | REJECTED | EXPIRED (4, terminal)

Aliases: ``SUBMITTED``, ``ACCEPTED``, ``OPEN``, ``WORKING`` rank as ``NEW``;
``CANCELLED`` as ``CANCELED``; ``PARTIALLY_FILLED``'s ``PARTIAL`` /
``PARTIALLY_FILLED`` likewise. An unknown status ranks as ``NEW``. An update
is *applied* when its rank is at least the current one and the current
status is not terminal; a terminal status is final (the first terminal
status the log delivers wins, later ones are kept in the history only). An
order event without a status means ``NEW``.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["TERMINAL_RANK", "StatusDecision", "decide_status", "normalize_status", "status_rank"]

TERMINAL_RANK: Final = 4
_RANKS: Final = {
    "PENDING_NEW": 0,
    "NEW": 1,
    "PENDING_CANCEL": 2,
    "PENDING_REPLACE": 2,
    "PARTIALLY_FILLED": 3,
    "FILLED": TERMINAL_RANK,
    "CANCELED": TERMINAL_RANK,
    "REJECTED": TERMINAL_RANK,
    "EXPIRED": TERMINAL_RANK,
}
_ALIASES: Final = {
    "SUBMITTED": "NEW",
    "ACCEPTED": "NEW",
    "OPEN": "NEW",
    "WORKING": "NEW",
    "CANCELLED": "CANCELED",
    "PARTIAL": "PARTIALLY_FILLED",
    "PARTIALLY_FILLED": "PARTIALLY_FILLED",
    "PARTIAL_FILL": "PARTIALLY_FILLED",
}


class StatusDecision(msgspec.Struct, frozen=True):
    """The order's status after an update, and whether the update moved it."""

    status: str
    rank: int
    applied: bool


def normalize_status(status: str | None) -> str:
    """Upper-case, aliases folded; ``None`` or empty means ``NEW``."""
    if not status:
        return "NEW"
    upper = status.strip().upper().replace(" ", "_")
    return _ALIASES.get(upper, upper)


def status_rank(status: str) -> int:
    """Rank of a normalized status (unknown statuses rank as ``NEW``)."""
    return _RANKS.get(status, _RANKS["NEW"])


def decide_status(current: str | None, incoming: str | None) -> StatusDecision:
    """Where an order goes when ``incoming`` arrives while it is at ``current``."""
    new = normalize_status(incoming)
    new_rank = status_rank(new)
    if current is None:
        return StatusDecision(new, new_rank, True)
    rank = status_rank(current)
    if rank >= TERMINAL_RANK or new_rank < rank:
        return StatusDecision(current, rank, False)
    return StatusDecision(new, new_rank, True)
