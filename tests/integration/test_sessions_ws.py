"""``/ws/session`` lifecycle against a real gateway: auth, heartbeats, slow consumers, topics.

The close codes are the documented ones (``tradewire.server.session_ws``):
4401 refused token, 4408 heartbeat timeout, 1013 slow consumer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.userevents import (
    WAIT,
    Container,
    Session,
    container,
    make_event,
    metrics,
    sample,
    session,
    token_for,
)
from tradewire.auth import SessionTokens, load_or_create_secret
from tradewire.wire import AckStatus, EventAck, Priority, UserEvent

HEARTBEAT_S = 0.2
SETTLED = "tradewire_deliveries_settled_total"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway whose sessions heartbeat every 0.2 s (dead after 0.6 s of silence)."""
    env = {"TRADEWIRE_SESSION_HEARTBEAT_SECONDS": str(HEARTBEAT_S)}
    with running_gateway(tmp_path / "data", env=env) as proc:
        yield proc
        assert proc.stop() == 0, "\n".join(proc.stderr_lines)


@pytest.fixture
def roomy_gw(tmp_path: Path) -> Iterator[GatewayProcess]:
    """Default 15 s heartbeats, no ack timeout within a test: sessions close only on purpose."""
    env = {"TRADEWIRE_DURABILITY": "os", "TRADEWIRE_CRITICAL_ACK_TIMEOUT_SECONDS": "600"}
    with running_gateway(tmp_path / "data", env=env) as proc:
        yield proc
        assert proc.stop() == 0, "\n".join(proc.stderr_lines)


async def closed_with(url: str) -> tuple[int, str]:
    """Connect, read until the server closes; its close code and reason."""
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


# --- tokens ---------------------------------------------------------------------------


def foreign_token(tmp_path: Path) -> str:
    """A well-formed token signed with another data dir's secret."""
    tokens = SessionTokens(load_or_create_secret(tmp_path / "elsewhere"))
    return tokens.issue("alice", now=int(time.time()))


def expired_token(gw: GatewayProcess) -> str:
    """A token of the gateway's own secret that expired an hour ago."""
    tokens = SessionTokens(load_or_create_secret(gw.data_dir))
    return tokens.issue("alice", now=int(time.time()) - 7200, ttl_seconds=3600)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda gw, tmp: None, "no token"),
        (lambda gw, tmp: "not-a-jwt", "invalid token"),
        (lambda gw, tmp: foreign_token(tmp), "invalid token"),
        (lambda gw, tmp: token_for(gw, "alice")[:-4] + "AAAA", "invalid token"),
        (lambda gw, tmp: expired_token(gw), "token expired"),
    ],
    ids=["missing", "garbage", "other-secret", "tampered", "expired"],
)
async def test_a_refused_token_is_closed_with_4401_and_a_reason(
    gw: GatewayProcess, tmp_path: Path, make: Any, reason: str
) -> None:
    token = make(gw, tmp_path)
    query = "" if token is None else f"?token={token}"
    code, text = await closed_with(f"{gw.ws}/ws/session{query}")
    assert code == 4401
    assert text.startswith(reason), text
    assert "tradewire token" in text  # says how to get a good one
    body = await metrics(gw)
    assert sample(body, "tradewire_live_sessions") == 0


async def test_a_refused_token_never_receives_the_users_events(
    roomy_gw: GatewayProcess,
) -> None:
    gw = roomy_gw
    async with container(gw) as c:
        event = make_event("alice")
        await c.send(event)
        await c.acks_until(event.event_id, AckStatus.QUEUED)
        code, _ = await closed_with(f"{gw.ws}/ws/session?token={expired_token(gw)}")
        assert code == 4401
        async with session(gw, "alice") as s:  # the event is still waiting for alice
            assert (await s.next())["msg_id"] == event.event_id
            await s.ack(event.event_id)
            await c.acks_until(event.event_id, AckStatus.DELIVERED)


# --- heartbeats -------------------------------------------------------------------------


async def test_a_silent_client_is_dropped_with_4408(gw: GatewayProcess) -> None:
    url = f"{gw.ws}/ws/session?token={token_for(gw, 'sam')}"
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        beats = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # reads every heartbeat, answers none
                doc = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                assert doc["msg_type"] == "heartbeat"
                assert doc["target"] == "sam" and doc["payload"]["status"] == "alive"
                beats += 1
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    assert closed.value.rcvd.reason == "no message for 3 heartbeat intervals"
    assert beats >= 1


async def test_a_silent_client_is_dropped_even_while_events_flow(gw: GatewayProcess) -> None:
    """The heartbeat deadline holds while the writer is busy, not only when idle."""
    async with container(gw) as c:
        url = f"{gw.ws}/ws/session?token={token_for(gw, 'busy')}"
        async with websockets.connect(url, open_timeout=WAIT) as ws:
            await c.wait_subscribed("busy")
            feeder = asyncio.create_task(feed_informational(c, "busy", HEARTBEAT_S / 4))
            events = 0
            try:
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        doc = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                        events += doc["msg_type"] == "user_event"
            finally:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    assert events > 0


async def feed_informational(c: Container, user: str, every_s: float) -> None:
    """Publish INFORMATIONAL events to ``user`` at a steady pace (until cancelled)."""
    while True:
        await c.publish_fast(make_event(user, Priority.INFORMATIONAL))
        await asyncio.sleep(every_s)


async def test_a_client_answering_heartbeats_stays_connected(gw: GatewayProcess) -> None:
    # 12 heartbeats is four times the 3-interval deadline a silent client gets
    async with session(gw, "hana") as s:
        for _ in range(12):
            beat = await s.next("heartbeat")
            assert beat["target"] == "hana"
            await s.ws.send(json.dumps({"msg_type": "heartbeat"}))
        await s.ws.send(json.dumps({"msg_type": "telemetry"}))  # still served: an error reply
        error = await s.next("error")
        assert error["payload"]["code"] == "UNKNOWN_MSG_TYPE"
        assert error["payload"]["details"] == {"field": "msg_type"}


# --- slow consumers ----------------------------------------------------------------------

BIG_PAYLOAD = {"note": "x" * 500_000}  # 24 of them: more than loopback TCP buffers hold
OUTBOX = 1024  # LiveSession's outbox capacity


@asynccontextmanager
async def stalled_client(gw: GatewayProcess, user: str) -> AsyncIterator[Any]:
    """A session client that reads nothing until told to (tiny receive buffer, no deflate)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    host, port = gw.http.removeprefix("http://").rsplit(":", 1)
    sock.connect((host, int(port)))
    url = f"{gw.ws}/ws/session?token={token_for(gw, user)}"
    ws = await websockets.connect(
        url, sock=sock, max_queue=1, compression=None, open_timeout=WAIT, close_timeout=1
    )
    try:
        yield ws
    finally:
        ws.transport.abort()
        await ws.wait_closed()


# Each window is settled (or acked) before the next one: the tests publish and
# send in windows well under what one turn of the gateway takes.
WINDOW = 250


async def informational_settled(gw: GatewayProcess, total: int) -> str:
    """Wait until ``total`` INFORMATIONAL events are settled; the metrics then."""
    deadline = time.monotonic() + WAIT
    while True:
        body = await metrics(gw)
        if sample(body, SETTLED, priority="INFORMATIONAL") >= total:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def publish_settled(gw: GatewayProcess, c: Container, events: list[UserEvent]) -> str:
    """Publish on the fast path in windows, each settled (delivered or dropped) before the next."""
    done = sample(await metrics(gw), SETTLED, priority="INFORMATIONAL")
    body = ""
    for start in range(0, len(events), WINDOW):
        window = events[start : start + WINDOW]
        for event in window:
            await c.publish_fast(event)
        done += len(window)
        body = await informational_settled(gw, int(done))
    return body


async def send_queued(c: Container, events: list[UserEvent]) -> None:
    """Send on the guaranteed path in windows; each event is acked QUEUED."""
    for start in range(0, len(events), WINDOW):
        window = events[start : start + WINDOW]
        for event in window:
            await c.send(event)
        acks = [await c.ack() for _ in window]
        assert {(a.event_id, a.status) for a in acks if isinstance(a, EventAck)} == {
            (e.event_id, AckStatus.QUEUED) for e in window
        }


def big_events(user: str) -> list[UserEvent]:
    """Enough INFORMATIONAL bulk that a session writer whose client reads nothing blocks."""
    return [make_event(user, Priority.INFORMATIONAL, payload=BIG_PAYLOAD) for _ in range(24)]


async def stall_writer(gw: GatewayProcess, c: Container, user: str) -> None:
    """Block the session's writer on a client that reads nothing."""
    await c.wait_subscribed(user)
    await publish_settled(gw, c, big_events(user))


async def test_slow_consumer_drops_informational_first_then_is_closed_with_1013(
    roomy_gw: GatewayProcess,
) -> None:
    gw = roomy_gw
    async with container(gw) as c:
        async with stalled_client(gw, "slow") as ws:
            await stall_writer(gw, c, "slow")
            small = [make_event("slow", Priority.INFORMATIONAL) for _ in range(OUTBOX + 76)]
            body = await publish_settled(gw, c, small)
            # the outbox holds at most 1024: the newest informational ones were dropped
            dropped = sample(body, SETTLED, priority="INFORMATIONAL", state="dropped")
            assert dropped >= len(small) - OUTBOX
            # each critical event takes the place of a queued informational one; once
            # the outbox is all critical, the rest overflows: a slow consumer
            critical = [make_event("slow") for _ in range(OUTBOX + 76)]
            await send_queued(c, critical)
            received, code, reason = await read_until_closed(ws)

        assert (code, reason) == (
            1013,
            "slow consumer: reconnect to receive your undelivered events",
        )
        info = [e["msg_id"] for e in received if e["payload"]["priority"] == "INFORMATIONAL"]
        got = [e["msg_id"] for e in received if e["payload"]["priority"] == "CRITICAL"]
        # the full outbox went out in order, and not one of the small informational events
        assert got[:OUTBOX] == [e.event_id for e in critical[:OUTBOX]]
        assert len(got) == len(set(got))
        assert not set(info) & {e.event_id for e in small}

        # nothing guaranteed was lost: a reconnect replays every unacked critical event
        async with session(gw, "slow") as s:
            replayed = await receive_all(s, len(critical))
            assert sorted(replayed) == sorted(e.event_id for e in critical)
            await ack_delivered(s, c, replayed)
    body = await metrics(gw)
    assert sample(body, SETTLED, priority="CRITICAL") == len(critical)
    assert sample(body, SETTLED, priority="CRITICAL", state="delivered") == len(critical)


async def test_a_replay_longer_than_the_outbox_is_not_a_slow_consumer(
    roomy_gw: GatewayProcess,
) -> None:
    """1,100 events waiting at connect: they all arrive in one session, which stays open."""
    gw = roomy_gw
    async with container(gw) as c:
        waiting = [make_event("back") for _ in range(OUTBOX + 76)]
        await send_queued(c, waiting)
        async with session(gw, "back") as s:
            got = await receive_all(s, len(waiting))
            await ack_delivered(s, c, got)
            assert sample(await metrics(gw), "tradewire_live_sessions") == 1
    # what fit the outbox came in order; the rest was retried after it, once each
    assert got[:OUTBOX] == [e.event_id for e in waiting[:OUTBOX]]
    assert sorted(got) == sorted(e.event_id for e in waiting)


async def receive_all(s: Session, count: int) -> list[str]:
    """The ids of the next ``count`` user events (not acked yet)."""
    return [(await s.next())["msg_id"] for _ in range(count)]


async def ack_delivered(s: Session, c: Container, event_ids: list[str]) -> None:
    """Ack in windows; each acked event's container gets its final DELIVERED ack."""
    for start in range(0, len(event_ids), WINDOW):
        window = event_ids[start : start + WINDOW]
        await s.ack(*window)
        acks = [await c.ack() for _ in window]
        assert {(a.event_id, a.status) for a in acks if isinstance(a, EventAck)} == {
            (event_id, AckStatus.DELIVERED) for event_id in window
        }


async def read_until_closed(ws: Any) -> tuple[list[dict[str, Any]], int, str]:
    """Every user_event until the server closes; with its close code and reason."""
    events: list[dict[str, Any]] = []
    try:
        while True:
            doc = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            for env in doc if isinstance(doc, list) else [doc]:
                if env["msg_type"] == "user_event":
                    events.append(env)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return events, closed.rcvd.code, closed.rcvd.reason


async def test_a_client_that_reads_nothing_is_dropped_though_it_sends_heartbeats(
    gw: GatewayProcess,
) -> None:
    """A stalled writer cannot send a close frame; the gateway drops the session anyway."""
    async with container(gw) as c, stalled_client(gw, "stuck") as ws:
        beater = asyncio.create_task(beat(ws, HEARTBEAT_S / 4))  # alive, but never reads
        try:
            await c.wait_subscribed("stuck")
            for event in big_events("stuck"):
                await c.publish_fast(event)
            await c.wait_unsubscribed("stuck")  # the gateway let go of the user's topic
        finally:
            beater.cancel()
            await asyncio.gather(beater, return_exceptions=True)
        assert sample(await metrics(gw), "tradewire_live_sessions") == 0


async def beat(ws: Any, every_s: float) -> None:
    while True:
        await ws.send(json.dumps({"msg_type": "heartbeat"}))
        await asyncio.sleep(every_s)


# --- topics follow sessions ----------------------------------------------------------------


async def test_the_users_topic_is_dropped_when_their_last_session_closes(
    roomy_gw: GatewayProcess,
) -> None:
    gw = roomy_gw  # 15 s heartbeats: these sessions stay open however slow the machine
    async with container(gw) as c:
        async with session(gw, "olga") as first:
            await c.wait_subscribed("olga")
            async with session(gw, "olga"):
                await live_sessions(gw, 2)
            await live_sessions(gw, 1)
            # one session left: the topic is still subscribed (the XPUB filters by it)
            still = make_event("olga", Priority.INFORMATIONAL)
            await c.publish_fast(still)
            assert (await first.next())["msg_id"] == still.event_id
        assert await c.wait_unsubscribed("olga") == []  # unsubscribed once, at the last close

        before = await metrics(gw)
        async with session(gw, "mark") as marker_session:
            await c.wait_subscribed("mark")
            await c.publish_fast(make_event("olga", Priority.INFORMATIONAL))
            # the marker follows on the same pipe: once it is through, olga's was too
            marker = make_event("mark", Priority.INFORMATIONAL)
            await c.publish_fast(marker)
            assert (await marker_session.next())["msg_id"] == marker.event_id
        after = await metrics(gw)
    frames, rejected = "tradewire_zmq_frames_received_total", "tradewire_inputs_rejected_total"
    assert sample(after, frames, socket="sub") - sample(before, frames, socket="sub") == 1
    assert sample(after, rejected, endpoint="zmq_sub") == sample(
        before, rejected, endpoint="zmq_sub"
    )
    assert (
        sample(after, SETTLED, priority="INFORMATIONAL")
        - sample(before, SETTLED, priority="INFORMATIONAL")
        == 1
    )  # the marker only


async def live_sessions(gw: GatewayProcess, count: int) -> None:
    """Wait until the gateway counts ``count`` open sessions."""
    deadline = time.monotonic() + WAIT
    while sample(body := await metrics(gw), "tradewire_live_sessions") != count:
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.02)
