"""The delivery driver never leaves a ROUTER frame unread: real gateway, real DEALERs.

The driver reads the ROUTER from the event loop's reader callback on
ZeroMQ's edge-triggered FD. A lost wake-up (a send that took the FD's
signal, a full input queue that was never read again) leaves frames sitting
in the socket while the driver sleeps: here, an ack that never comes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.userevents import Container, container, make_event
from tradewire.delivery import SendAck
from tradewire.delivery.actions import AttemptOutcome
from tradewire.delivery.config import DeliveryConfig
from tradewire.projections import all_projectors
from tradewire.server.delivery_driver import DeliveryDriver
from tradewire.server.metrics import GatewayMetrics
from tradewire.store.sqlite import open_store
from tradewire.wire import AckStatus, EventAck, decode_event_ack, encode_user_event

DEALERS = 6
ROUNDS = 25
BIG_BURST = 700  # past the driver's input queue (512): the reader pauses, then resumes
ACK_WAIT = 20.0  # generous (shared machine); a lost wake-up waits forever


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path / "data") as proc:
        yield proc
        assert proc.stop() == 0, "\n".join(proc.stderr_lines)


async def _read_acks(c: Container, want: set[str], errors: int, queued: Counter[str]) -> None:
    """Read acks until every event of ``want`` is QUEUED and ``errors`` ACK_ERRORs came."""
    while not want <= queued.keys() or errors > 0:
        ack = decode_event_ack(await asyncio.wait_for(c.dealer.recv(), ACK_WAIT))
        if not isinstance(ack, EventAck) or ack.status is AckStatus.ACK_ERROR:
            errors -= 1
        elif ack.status is AckStatus.QUEUED:
            queued[ack.event_id] += 1


async def _producer(c: Container, seed: int) -> Counter[str]:
    """Bursts, one-at-a-time stretches, idle gaps and bad frames; every ack read back."""
    rng = random.Random(seed)
    queued: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        size = BIG_BURST if round_ == ROUNDS // 2 else rng.choice((1, 1, 2, 7, 40))
        events = [make_event(f"wake-{seed}-{i % 5}") for i in range(size)]
        bad = size > 1 and rng.random() < 0.3
        for event in events:
            await c.dealer.send(encode_user_event(event), zmq.NOBLOCK)
        if bad:  # answered from the read path itself: a send between two reads
            await c.dealer.send(b"\x20not a user event", zmq.NOBLOCK)
            await c.dealer.send_multipart([b"a", b"b"], zmq.NOBLOCK)  # 3 parts: no ack
        await _read_acks(c, {e.event_id for e in events}, int(bad), queued)
        if rng.random() < 0.5:  # idle: the driver goes back to sleep
            await asyncio.sleep(rng.uniform(0.001, 0.02))
    assert all(n == 1 for n in queued.values())
    return queued


async def test_many_dealers_with_bursts_and_idle_gaps_get_every_ack(
    gw: GatewayProcess,
) -> None:
    async with (
        container(gw) as c0,
        container(gw) as c1,
        container(gw) as c2,
        container(gw) as c3,
        container(gw) as c4,
        container(gw) as c5,
    ):
        dealers = [c0, c1, c2, c3, c4, c5]
        assert len(dealers) == DEALERS
        for c in dealers:
            c.dealer.setsockopt(zmq.SNDHWM, 10 * BIG_BURST)
        results = await asyncio.gather(*(_producer(c, seed) for seed, c in enumerate(dealers)))
    total = sum(len(r) for r in results)
    assert total == len(set().union(*results))  # every event acked once, to its own dealer


# -- the send that takes the FD's signal, made to happen -------------------------------


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[tuple[DeliveryDriver, str]]:
    """An in-process driver on a real store and real sockets; its ROUTER's address."""
    store = await open_store(tmp_path / "data", "os", projectors=all_projectors())
    ctx = zmq.asyncio.Context()
    router, sub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.SUB)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.bind("tcp://127.0.0.1:0")
    driver = DeliveryDriver(
        store=store,
        router=router,
        sub=sub,
        metrics=GatewayMetrics(),
        config=DeliveryConfig(),
        max_frame_bytes=65536,
    )
    tasks = [asyncio.create_task(driver.run()), asyncio.create_task(driver.pump_router())]
    try:
        yield driver, router.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await driver.close()
        router.close(0)
        sub.close(0)
        ctx.term()
        await store.close()


async def _queued(dealer: zmq.asyncio.Socket) -> str:
    ack = decode_event_ack(await asyncio.wait_for(dealer.recv(), ACK_WAIT))
    assert isinstance(ack, EventAck) and ack.status is AckStatus.QUEUED, ack
    return ack.event_id


async def test_a_frame_whose_signal_a_send_took_is_still_read(
    driver: tuple[DeliveryDriver, str],
) -> None:
    """A frame arrives, then (before the loop polls) an ack goes out: its send takes the signal.

    ZeroMQ's FD is edge-triggered: the send processes the socket's pending
    commands, the FD goes quiet with the frame unread, and only a look at
    ``EVENTS`` after the sends finds it.
    """
    drv, address = driver
    ctx = zmq.asyncio.Context()
    first, second = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    try:
        for dealer in (first, second):
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(address)
        event = make_event("race-a")
        await first.send(encode_user_event(event))
        assert await _queued(first) == event.event_id
        for _ in range(20):
            late = make_event("race-b")
            await second.send(encode_user_event(late))
            # Block the loop (on purpose): the frame reaches the ROUTER, its reader does not run.
            time.sleep(0.02)  # noqa: ASYNC251
            # the end of a turn, as after a commit: an ack, then the re-arm
            await drv._carry_out([SendAck(event.event_id, AckStatus.QUEUED)])
            assert await _queued(second) == late.event_id
            assert await _queued(first) == event.event_id
    finally:
        first.close(0)
        second.close(0)
        ctx.term()


# -- commits: rows that nothing waits for ride along with the next event -----------------


async def test_attempt_rows_known_at_once_share_the_next_events_commit(
    driver: tuple[DeliveryDriver, str],
) -> None:
    """One event at a time to a user with no channel that works (no adapter: known at once).

    Each event's attempt rows come back in the turn that persisted it; nothing
    waits for them, so they are held for the next event's commit instead of
    paying one (an fsync) of their own: one commit per event, and after the
    driver closes every attempt is in the store.
    """
    drv, address = driver
    commits = 0
    append_many = drv.store.append_many

    async def counting(records):  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        return await append_many(records)

    drv.store.append_many = counting  # type: ignore[method-assign]
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(address)
    events = 30
    try:
        for _ in range(events):
            event = make_event("nowhere")
            await dealer.send(encode_user_event(event))
            assert await _queued(dealer) == event.event_id
    finally:
        dealer.close(0)
        ctx.term()
    assert commits <= events + 1  # each commit: this event, the previous one's attempts
    await drv.close()  # writes what is still held
    rows = await drv.store.query("SELECT channel, outcome FROM delivery_attempts")
    defaults = DeliveryConfig().channels_for(make_event("x").priority)
    external = len(defaults) - 1  # all but ACTIVE_SESSION
    assert len(rows) == events * external
    assert {outcome for _, outcome in rows} == {AttemptOutcome.PERMANENT.value}
