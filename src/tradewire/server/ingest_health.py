"""The gateway's heartbeat watch: an asyncio task pumping :mod:`tradewire.ingest.heartbeats`.

The hub reports every committed heartbeat (``Hub.heartbeat_sinks``); the task
sleeps until the earliest moment a source could turn down (or a heartbeat
arrives), asks the pure :class:`~tradewire.ingest.heartbeats.HeartbeatWatcher`
what changed, and broadcasts each change to the owner's ingest clients
subscribed to ``health`` / ``errors``.

Tunables (settings, so flag, ``TRADEWIRE_*`` environment or TOML):
``heartbeat_miss_factor`` (default 3) and ``heartbeat_cadence_seconds`` (the
cadence assumed before two heartbeats were seen, default 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Final

from tradewire.config import Settings
from tradewire.ingest.heartbeats import (
    HealthChange,
    HeartbeatPolicy,
    HeartbeatWatcher,
    alert_for,
)
from tradewire.ingest.routing import Hub

__all__ = ["HealthWatch", "heartbeat_policy"]

_MARGIN_S: Final = 0.001  # wake just after a deadline: is_silent() is a strict comparison
Clock = Callable[[], float]


def heartbeat_policy(settings: Settings) -> HeartbeatPolicy:
    """The heartbeat policy of the process settings."""
    return HeartbeatPolicy(
        miss_factor=settings.heartbeat_miss_factor,
        default_cadence_s=settings.heartbeat_cadence_seconds,
    )


class HealthWatch:
    """Feeds the watcher from the hub and announces its changes."""

    def __init__(
        self, hub: Hub, policy: HeartbeatPolicy | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.hub = hub
        self.watcher = HeartbeatWatcher(policy)
        self.clock = clock
        self.announced = 0
        self._wake = asyncio.Event()
        self.change_sinks: list[Callable[[HealthChange], None]] = []
        hub.heartbeat_sinks.append(self.beat)

    def beat(self, source: str, user_id: str | None) -> None:
        """A heartbeat of ``source`` was committed now."""
        change = self.watcher.beat(source, user_id, self.clock())
        if change is not None:
            self._announce(change)
        self._wake.set()

    def check(self) -> list[HealthChange]:
        """Mark silent sources down now and announce them."""
        changes = self.watcher.check(self.clock())
        for change in changes:
            self._announce(change)
        return changes

    def _announce(self, change: HealthChange) -> None:
        for sink in self.change_sinks:
            sink(change)
        if change.user_id is None:
            return
        body, topics = alert_for(change, self.watcher.policy.miss_factor, dt.datetime.now(dt.UTC))
        self.hub.broadcast(body, topics, user_id=change.user_id)
        self.announced += 1

    async def run(self) -> None:
        """Check at every deadline until cancelled."""
        while True:
            self.check()
            deadline = self.watcher.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock()) + _MARGIN_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
