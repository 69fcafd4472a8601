"""The asyncio pump around the pure :class:`~tradewire.channels.ratelimit.RateGate`.

A sender enters ``async with pacer.turn(key, priority) as admitted:`` and
sends inside the block when ``admitted``; leaving the block tells the gate
the key may go again. One dispatcher task asks the gate what may go, wakes
the admitted senders and sleeps until the gate's next ``WaitUntil`` or a
new offer. The dispatcher runs only while something is
queued (it ends itself when the gate is empty) and :meth:`Pacer.aclose`
stops it, so an idle channel holds no task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tradewire.channels.ratelimit import Admitted, RateGate
from tradewire.delivery.model import Priority
from tradewire.delivery.ports import Clock

__all__ = ["Pacer"]


class Pacer:
    """Makes senders wait for their turn under a :class:`RateGate`."""

    def __init__(self, gate: RateGate, clock: Clock) -> None:
        self.gate = gate
        self._clock = clock
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @contextlib.asynccontextmanager
    async def turn(self, key: str, priority: Priority) -> AsyncIterator[bool]:
        """Wait until a message to ``key`` may go; ``False`` if the queue is full or closed."""
        admitted = await self._wait(key, priority)
        try:
            yield admitted
        finally:
            if admitted:
                self.gate.finished(key, self._clock.now_ms())
                if not self._closed:
                    self._kick()

    async def _wait(self, key: str, priority: Priority) -> bool:
        if self._closed:
            return False
        ticket = self.gate.offer(key, priority, self._clock.now_ms())
        if ticket is None:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        self._kick()
        try:
            await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket, None)
            if not self.gate.withdraw(ticket, self._clock.now_ms()):
                self.gate.finished(key, self._clock.now_ms())  # admitted as we were cancelled
            raise
        return not self._closed

    def hold(self, key: str | None, until_ms: int) -> None:
        """Send nothing to ``key`` (to anyone when ``None``) before ``until_ms``."""
        self.gate.hold(key, until_ms, self._clock.now_ms())
        self._kick()

    async def aclose(self) -> None:
        """Stop the dispatcher; queued senders get ``False`` from :meth:`turn`."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ticket, future in list(self._waiters.items()):
            self.gate.withdraw(ticket, self._clock.now_ms())
            if not future.done():
                future.set_result(None)
        self._waiters.clear()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatch(), name="tradewire-pacer")

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            step = self.gate.next(self._clock.now_ms())
            if isinstance(step, Admitted):
                future = self._waiters.pop(step.ticket, None)
                if future is not None and not future.done():
                    future.set_result(None)
                continue
            if step is None:
                return
            delay_s = max(0, step.at_ms - self._clock.now_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay_s)
