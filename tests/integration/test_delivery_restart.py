"""A killed gateway loses nothing it acknowledged, and still knows what it delivered;
``tradewire rebuild`` replays the log into the same delivery rows."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.integration.gateway_proc import GatewayProcess, run_cli, running_gateway
from tests.integration.test_ingest_endpoints import query
from tests.integration.userevents import container, make_event, session
from tradewire.wire import AckStatus, EventAck, UserEvent


async def _deliver_to_kim(gw: GatewayProcess, event: UserEvent) -> None:
    """Send ``event`` to kim's live session, ack it there, wait for DELIVERED."""
    async with container(gw) as c, session(gw, "kim") as s:
        await c.send(event)
        assert (await s.next())["msg_id"] == event.event_id
        await s.ack(event.event_id)
        await c.acks_until(event.event_id, AckStatus.DELIVERED)


async def test_queued_events_survive_sigkill_and_duplicates_keep_their_status(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    delivered, pending = make_event("kim"), [make_event("kim") for _ in range(3)]
    with running_gateway(data) as gw:
        await _deliver_to_kim(gw, delivered)
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


def _delivery_rows(data: Path) -> list[list[tuple[object, ...]]]:
    return [
        query(data, "SELECT * FROM deliveries ORDER BY seq"),
        query(data, "SELECT * FROM delivery_attempts ORDER BY seq"),
    ]


async def test_rebuild_replays_deliveries_and_attempts_into_the_same_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    delivered, pending = make_event("kim"), make_event("kim")
    with running_gateway(data) as gw:
        await _deliver_to_kim(gw, delivered)
        async with container(gw) as c:
            await c.send(pending)
            await c.acks_until(pending.event_id, AckStatus.QUEUED)
        assert gw.stop() == 0
    before = _delivery_rows(data)
    assert [row[5] for row in before[0]] == ["delivered", "pending"]
    seqs = {row[0] for row in before[0]}
    assert before[1] and {row[1] for row in before[1]} <= seqs  # attempts name their delivery
    # the driver knew each event's seq: every attempt/settle key is the appending form
    keys = [k for (k,) in query(data, "SELECT \"key\" FROM records WHERE stream = 'delivery'")]
    assert keys and all(k[12] == ":" and int(k[:12]) in seqs for k in keys)
    done = run_cli("rebuild", data_dir=data)
    assert done.returncode == 0, done.stderr
    assert _delivery_rows(data) == before
