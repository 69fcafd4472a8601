"""The intake journal inside the delivery driver: real store, real sockets, real files.

The driver's engine task is started late on purpose: until then the ROUTER
reader journals and acks, and the engine has not seen anything yet. That is
the window in which a resend, a full queue or a crash would show a wrong ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import zmq
import zmq.asyncio

from tests.integration.userevents import make_event
from tradewire.delivery.config import DeliveryConfig
from tradewire.projections import all_projectors
from tradewire.server.delivery_driver import DeliveryDriver
from tradewire.server.delivery_store import USER_EVENT_STREAM
from tradewire.server.intake_journal import IntakeJournal
from tradewire.server.metrics import GatewayMetrics
from tradewire.store.sqlite import SqliteStore, open_store
from tradewire.wire import AckStatus, EventAck, decode_event_ack, encode_user_event

ACK_WAIT = 20.0
QUIET = 0.5  # how long "no further ack" is watched for


@dataclass
class Rig:
    driver: DeliveryDriver
    journal: IntakeJournal
    store: SqliteStore
    dealer: zmq.asyncio.Socket
    tasks: list[asyncio.Task[None]]

    def start_engine(self) -> None:
        self.tasks.append(asyncio.create_task(self.driver.run()))

    async def ack(self) -> EventAck:
        ack = decode_event_ack(await asyncio.wait_for(self.dealer.recv(), ACK_WAIT))
        assert isinstance(ack, EventAck), ack
        return ack

    async def quiet(self) -> bool:
        return await self.dealer.poll(int(QUIET * 1000)) == 0

    async def stored(self) -> list[str]:
        return await _stored_keys(self.driver)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = DeliveryConfig(max_critical_per_user=2)
    async with restarted(tmp_path / "data", "fsync", config) as driver:
        assert driver.journal is not None
        router = driver.router
        router.bind("tcp://127.0.0.1:0")
        dealer = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
        tasks = [asyncio.create_task(driver.pump_router())]
        try:
            yield Rig(driver, driver.journal, driver.store, dealer, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            dealer.close(0)


@asynccontextmanager
async def restarted(
    data: Path, durability: Literal["fsync", "os"], config: DeliveryConfig | None = None
) -> AsyncIterator[DeliveryDriver]:
    """A driver restored (journal replayed) on ``data``, as a gateway's start does; closed after."""
    store = await open_store(data, durability, projectors=all_projectors())
    ctx = zmq.asyncio.Context()
    router, sub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.SUB)
    for sock in (router, sub):
        sock.setsockopt(zmq.LINGER, 0)
    try:
        driver = DeliveryDriver(
            store=store,
            router=router,
            sub=sub,
            metrics=GatewayMetrics(),
            config=config or DeliveryConfig(),
            max_frame_bytes=65536,
            journal=IntakeJournal(data / "intake", sync=durability == "fsync"),
        )
        await driver.restore()
        yield driver
        await driver.close()
    finally:
        router.close(0)
        sub.close(0)
        ctx.term()
        await store.close()


async def _stored_keys(driver: DeliveryDriver) -> list[str]:
    rows = await driver.store.query(
        "SELECT key FROM records WHERE stream = ?", (USER_EVENT_STREAM,)
    )
    return [str(row[0]) for row in rows]


async def test_a_resend_before_the_engine_took_the_event_is_queued_once_and_stored_once(
    rig: Rig,
) -> None:
    event = make_event("resender")
    frame = encode_user_event(event)
    await rig.dealer.send(frame)
    first = await rig.ack()
    assert (first.event_id, first.status) == (event.event_id, AckStatus.QUEUED)
    assert await rig.stored() == []  # acked from the journal: the engine has not run
    await rig.dealer.send(frame)  # the container did not get the ack, say
    again = await rig.ack()
    assert (again.event_id, again.status) == (event.event_id, AckStatus.QUEUED)
    rig.start_engine()
    while not await rig.stored():  # noqa: ASYNC110 - the store has no change feed
        await asyncio.sleep(0.01)
    assert await rig.stored() == [event.event_id]
    assert await rig.quiet(), "the engine's own QUEUED went out again"
    assert rig.journal.unreleased() == 0


async def test_an_event_the_queue_would_refuse_is_not_journaled_and_gets_only_its_refusal(
    rig: Rig,
) -> None:
    """max_critical_per_user=2: the third CRITICAL of a user waits for the engine's answer."""
    events = [make_event("busy") for _ in range(3)]
    for event in events:
        await rig.dealer.send(encode_user_event(event))
    acks = [await rig.ack(), await rig.ack()]
    assert [(a.event_id, a.status) for a in acks] == [
        (e.event_id, AckStatus.QUEUED) for e in events[:2]
    ]
    assert await rig.quiet()  # the third: no ack from the journal
    assert rig.driver.metrics.journaled._value.get() == 2
    rig.start_engine()
    refusal = await rig.ack()
    assert (refusal.event_id, refusal.status) == (events[2].event_id, AckStatus.ACK_ERROR)
    assert "too many pending CRITICAL" in refusal.error_message
    assert await rig.quiet()
    assert sorted(await rig.stored()) == sorted(e.event_id for e in events[:2])


async def test_what_the_journal_held_at_a_crash_is_replayed_once(tmp_path: Path) -> None:
    """Entries journaled and never stored (the process died) are stored by the next start."""
    data = tmp_path / "data"
    events = [make_event("crashed") for _ in range(3)]
    journal = IntakeJournal(data / "intake", sync=True)
    journal.append([encode_user_event(e) for e in events])
    journal.append([encode_user_event(events[0])])  # a resend that made it in twice
    journal.close()
    async with restarted(data, "fsync") as driver:
        assert sorted(await _stored_keys(driver)) == sorted(e.event_id for e in events)
        assert driver.engine.pending_count() == 3  # delivering goes on from here
    assert [p.name for p in (data / "intake").iterdir()] == ["intake-00000002.journal"]


async def test_an_entry_that_is_not_an_event_is_skipped_and_the_rest_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only decoded frames are journaled; a foreign entry (intact CRC) must not stop a start."""
    data = tmp_path / "data"
    good = make_event("after-junk")
    journal = IntakeJournal(data / "intake", sync=False)
    journal.append([b"\x20not a user event", encode_user_event(good)])
    journal.close()
    async with restarted(data, "os") as driver:
        assert await _stored_keys(driver) == [good.event_id]
    assert "undecodable entry skipped" in caplog.text
