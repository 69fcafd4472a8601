"""Session liveness without timers: the pure verdict, the sweep, the lazy writer (no sockets)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tradewire.server.session_ws import LiveSession, SessionHeartbeats
from tradewire.sessions.liveness import DEAD_AFTER_INTERVALS, Liveness, check_liveness

INTERVAL = 10.0
DEAD = DEAD_AFTER_INTERVALS * INTERVAL


@pytest.mark.parametrize(
    ("now", "last_received", "last_sent", "send_started", "verdict"),
    [
        (5.0, 0.0, 0.0, None, Liveness.FINE),
        (INTERVAL, 0.0, 0.0, None, Liveness.HEARTBEAT_DUE),
        (INTERVAL, 0.0, 0.0, 1.0, Liveness.FINE),  # a send in progress is no silence
        (DEAD + 1, DEAD, DEAD, None, Liveness.FINE),
        (DEAD + 1, 0.0, DEAD, None, Liveness.SILENT),
        (DEAD + 1, 0.0, 0.0, 0.5, Liveness.STALLED),  # stalled beats silent: no close fits
        (DEAD + 1, DEAD, 0.0, 0.5, Liveness.STALLED),
        (DEAD, DEAD, 0.0, 0.0, Liveness.FINE),  # exactly 3 intervals is not yet dead
    ],
)
def test_every_verdict(
    now: float,
    last_received: float,
    last_sent: float,
    send_started: float | None,
    verdict: Liveness,
) -> None:
    got = check_liveness(
        now,
        last_received=last_received,
        last_sent=last_sent,
        send_started=send_started,
        interval=INTERVAL,
    )
    assert got is verdict


class FakeTransport:
    """An ASGI ``send`` that records messages; it blocks while ``stalled``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.flowing.wait()
        self.sent.append(message)

    def texts(self) -> list[str]:
        return [json.loads(m["text"])["msg_type"] for m in self.sent if "text" in m]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_writer_exists_only_while_there_is_something_to_write() -> None:
    transport = FakeTransport()
    session = LiveSession("u", batch=False)
    session.attach(transport, None)
    assert session.push(b'{"msg_type": "user_event"}', guaranteed=True)
    await settle()
    assert transport.texts() == ["user_event"]
    assert len(session.outbox) == 0
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await session.detach()


async def test_the_sweep_heartbeats_closes_and_drops() -> None:
    transport = FakeTransport()
    heartbeats = SessionHeartbeats(INTERVAL)
    session = LiveSession("u", batch=False)
    session.attach(transport, None)
    heartbeats.add(session)
    t0 = session.last_seen
    heartbeats.sweep(t0 + INTERVAL / 2)
    await settle()
    assert transport.sent == []
    heartbeats.sweep(t0 + INTERVAL)
    await settle()
    assert transport.texts() == ["heartbeat"]
    session.last_seen = t0  # the client never answered
    heartbeats.sweep(t0 + DEAD + 1)
    await settle()
    assert transport.sent[-1] == {
        "type": "websocket.close",
        "code": 4408,
        "reason": "no message for 3 heartbeat intervals",
    }
    assert session.closed and not session.push(b"{}", guaranteed=True)
    heartbeats.discard(session)
    await session.detach()


async def test_a_send_that_waits_three_intervals_drops_the_session() -> None:
    transport = FakeTransport()
    transport.flowing.clear()  # the client reads nothing
    heartbeats = SessionHeartbeats(INTERVAL)
    reader = asyncio.create_task(asyncio.sleep(3600))  # stands for the ASGI task
    session = LiveSession("u", batch=False)
    session.attach(transport, reader)
    heartbeats.add(session)
    session.push(b'{"msg_type": "user_event"}', guaranteed=True)
    await settle()
    assert session.writing
    heartbeats.sweep(session.send_started + DEAD + 1)
    await settle()
    assert session.dropped and session.closed and reader.cancelled()
    assert transport.sent == []  # no close frame could get through
    heartbeats.discard(session)
    await session.detach()
