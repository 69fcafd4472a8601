"""A killed gateway loses nothing it acknowledged, and still knows what it delivered."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.integration.gateway_proc import running_gateway
from tests.integration.userevents import container, make_event, session
from tradewire.wire import AckStatus, EventAck


async def test_queued_events_survive_sigkill_and_duplicates_keep_their_status(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    delivered, pending = make_event("kim"), [make_event("kim") for _ in range(3)]
    with running_gateway(data) as gw:
        async with container(gw) as c, session(gw, "kim") as s:
            await c.send(delivered)
            assert (await s.next())["msg_id"] == delivered.event_id
            await s.ack(delivered.event_id)
            await c.acks_until(delivered.event_id, AckStatus.DELIVERED)
        async with container(gw) as c:
            for event in pending:
                await c.send(event)
                await c.acks_until(event.event_id, AckStatus.QUEUED)
        assert gw.stop(signal.SIGKILL) == -signal.SIGKILL

    with running_gateway(data) as gw:
        async with container(gw) as c:
            await c.send(delivered)  # a resend after the crash
            again = await c.ack()
            assert isinstance(again, EventAck)
            assert (again.event_id, again.status) == (delivered.event_id, AckStatus.DELIVERED)
            async with session(gw, "kim") as s:
                got = [(await s.next())["msg_id"] for _ in pending]
                assert got == [e.event_id for e in pending]
        assert gw.stop() == 0
