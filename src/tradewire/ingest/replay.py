"""Replaying a file of envelopes through a :class:`~tradewire.sdk.connector.Connector`.

Used by ``tradewire ingest FILE.jsonl``. Every line is one envelope; a line
without a ``msg_id`` gets one derived from its content (UUIDv5), so a replay
interrupted at any point (even ``kill -9``) is finished by running it again:
what was stored comes back as duplicates, nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tradewire.sdk.connector import Acked, Connector, Outcome

__all__ = ["ReplaySummary", "envelope_line", "replay_file"]


class ReplaySummary:
    """What a replay got back: accepted, duplicates, and refusals by code."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}  # code -> messages
        self.examples: dict[str, str] = {}  # code -> the first reason

    def count(self, outcome: Outcome) -> None:
        """Count one outcome."""
        if isinstance(outcome, Acked):
            self.duplicates += outcome.duplicate
            self.accepted += not outcome.duplicate
        else:
            self.reject(outcome.code, f"{outcome.msg_id}: {outcome.message}")

    def reject(self, code: str, reason: str) -> None:
        """Count one refusal (the first reason of each code is kept as its example)."""
        self.rejected[code] = self.rejected.get(code, 0) + 1
        self.examples.setdefault(code, reason)

    @property
    def total_rejected(self) -> int:
        """Refusals of every code."""
        return sum(self.rejected.values())

    def rows(self) -> list[tuple[str, int, str]]:
        """``(outcome, messages, example reason)`` rows for a summary table."""
        rows = [
            ("accepted", self.accepted, ""),
            ("duplicates (already stored)", self.duplicates, ""),
        ]
        for code in sorted(self.rejected):
            rows.append((f"rejected {code}", self.rejected[code], self.examples[code]))
        return rows


def envelope_line(line: str, number: int) -> dict[str, Any] | str:
    """The envelope on one line (a stable ``msg_id`` when it has none), or why not."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        return f"line {number}: not JSON ({exc})"
    if not isinstance(doc, dict):
        return f"line {number}: not a JSON object"
    if not isinstance(doc.get("msg_id"), str) or not doc["msg_id"]:
        # derived from the content, so replaying the file again never duplicates it
        doc["msg_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "tradewire-line:" + line.strip()))
    return doc


async def replay_file(
    path: Path, connector: Connector, summary: ReplaySummary, advance: Callable[[], None]
) -> None:
    """Send every line of ``path`` through ``connector`` and count the outcomes."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            doc = envelope_line(line, number)
            if isinstance(doc, str):
                summary.reject("INVALID_JSON", doc)
                advance()
                continue
            earlier = connector.outcome_of(doc["msg_id"])
            if earlier is not None:  # the same msg_id twice in the file: resend once settled
                await asyncio.wait([earlier])
            future = await connector.send(doc)
            future.add_done_callback(lambda f: _settled(f, summary, advance))
    await connector.flush()


def _settled(
    future: asyncio.Future[Outcome], summary: ReplaySummary, advance: Callable[[], None]
) -> None:
    if not future.cancelled() and future.exception() is None:
        summary.count(future.result())
        advance()
