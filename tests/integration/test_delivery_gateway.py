"""User-event delivery end to end: real gateway, real DEALER/XPUB, real WebSockets."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zmq

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.userevents import (
    WAIT,
    Session,
    container,
    make_event,
    metrics,
    sample,
    session,
    token_for,
)
from tradewire.wire import (
    AckStatus,
    ChannelPreference,
    ChannelType,
    EventAck,
    Priority,
    Rejection,
    decode_user_event,
    encode_user_event,
)

REJECTED = "tradewire_inputs_rejected_total"
SETTLED = "tradewire_deliveries_settled_total"


async def get(url: str, *, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, headers=headers)


def auth(gw: GatewayProcess, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(gw, user)}"}


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway with short timers so that TTL and retry paths run in a test."""
    env = {
        "TRADEWIRE_NORMAL_TTL_SECONDS": "1.5",
        "TRADEWIRE_CRITICAL_ACK_TIMEOUT_SECONDS": "1.0",
        "TRADEWIRE_ACK_TIMEOUT_SECONDS": "1.0",
    }
    with running_gateway(tmp_path / "data", env=env) as proc:
        yield proc
        assert proc.stop() == 0, "\n".join(proc.stderr_lines)


async def test_critical_is_queued_then_delivered_after_the_session_acks(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c, session(gw, "alice") as s:
        event = make_event("alice")
        await c.send(event)
        first = await c.ack()
        assert isinstance(first, EventAck)
        assert (first.event_id, first.status) == (event.event_id, AckStatus.QUEUED)
        env = await s.next()
        assert env["msg_id"] == event.event_id
        assert env["payload"]["event_type"] == "ORDER_FILLED"
        assert env["payload"]["priority"] == "CRITICAL"
        assert env["payload"]["payload"] == {"symbol": "BTCUSDT", "fill_price": "45000.10"}
        await s.ack(event.event_id)
        final = await c.ack()
        assert isinstance(final, EventAck)
        assert (final.status, final.delivered_via) == (AckStatus.DELIVERED, ChannelType.WEB)


async def test_duplicate_is_answered_with_status_and_never_delivered_twice(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c, session(gw, "bob") as s:
        event = make_event("bob")
        await c.send(event)
        await c.acks_until(event.event_id, AckStatus.QUEUED)
        assert (await s.next())["msg_id"] == event.event_id
        await s.ack(event.event_id)
        await c.acks_until(event.event_id, AckStatus.DELIVERED)
        await c.send(event)  # resent with the same event_id
        again = await c.ack()
        assert isinstance(again, EventAck)
        assert (again.event_id, again.status) == (event.event_id, AckStatus.DELIVERED)
        marker = make_event("bob")
        await c.send(marker)
        assert (await s.next())["msg_id"] == marker.event_id  # not the duplicate


async def test_events_queued_without_a_session_are_replayed_in_order_on_connect(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c:
        events = [make_event("carol") for _ in range(5)]
        for event in events:
            await c.send(event)
        for event in events:
            await c.acks_until(event.event_id, AckStatus.QUEUED)
        async with session(gw, "carol") as s:
            got = [(await s.next())["msg_id"] for _ in events]
            assert got == [e.event_id for e in events]
            await s.ack(*got)
            for event in events:
                await c.acks_until(event.event_id, AckStatus.DELIVERED)


async def test_a_user_only_receives_their_own_events(gw: GatewayProcess) -> None:
    async with container(gw) as c, session(gw, "u1") as s1, session(gw, "u2") as s2:
        for_u1, for_u2 = make_event("u1"), make_event("u2")
        await c.send(for_u1)
        await c.send(for_u2)
        assert (await s2.next())["msg_id"] == for_u2.event_id
        assert (await s1.next())["msg_id"] == for_u1.event_id


async def test_fast_path_reaches_a_live_session_and_respects_exact_topics(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c, session(gw, "u1") as s:
        await c.wait_subscribed("u1")
        # "u10" matches the SUB prefix "u1" but is another user: never delivered
        await c.publish_fast(make_event("u10", Priority.INFORMATIONAL))
        mine = make_event("u1", Priority.INFORMATIONAL)
        await c.publish_fast(mine)
        env = await s.next()
        assert env["msg_id"] == mine.event_id
        assert env["payload"]["priority"] == "INFORMATIONAL"
    metrics = (await get(f"{gw.http}/metrics")).text
    assert 'tradewire_inputs_rejected_total{code="NO_SESSION",endpoint="zmq_sub"} 1.0' in metrics


async def user_events(s: Session, count: int) -> list[dict[str, Any]]:
    """The next ``count`` user_event envelopes, whether batched in arrays or not."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        doc = json.loads(await asyncio.wait_for(s.ws.recv(), WAIT))
        got += [
            e for e in (doc if isinstance(doc, list) else [doc]) if e["msg_type"] == "user_event"
        ]
    return got


async def test_fast_path_informational_reaches_every_session_in_order_counted_exactly(
    gw: GatewayProcess,
) -> None:
    mine = [make_event("erin", Priority.INFORMATIONAL) for _ in range(300)]
    others = [make_event("erin2", Priority.INFORMATIONAL) for _ in range(30)]  # prefix, no session
    async with (
        container(gw) as c,
        session(gw, "erin", "&batch=1") as a,
        session(gw, "erin") as b,
    ):
        await c.wait_subscribed("erin")
        marker = make_event("erin")  # both sessions are registered once both get it
        await c.send(marker)
        for s in (a, b):
            assert (await s.next())["msg_id"] == marker.event_id
        for n, event in enumerate(mine):
            await c.publish_fast(event)
            if n % 10 == 0:
                await c.publish_fast(others[n // 10])
            if n == 150:
                await c.publish_fast(mine[0])  # a duplicate id: never delivered twice
        for s in (a, b):
            got = await user_events(s, len(mine))
            assert [e["msg_id"] for e in got] == [e.event_id for e in mine]
            assert {e["payload"]["delivery_attempt"] for e in got} == {1}
        body = await metrics(gw)
    settled = {"priority": "INFORMATIONAL"}
    assert sample(body, SETTLED, **settled, state="delivered") == len(mine)
    assert sample(body, SETTLED, **settled) == len(mine)
    assert sample(body, REJECTED, endpoint="zmq_sub", code="NO_SESSION") == len(others)


async def test_every_session_of_a_user_gets_the_event_and_one_ack_settles_it(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c, session(gw, "dana") as a, session(gw, "dana") as b:
        await asyncio.sleep(0)  # both sessions are open before the event is sent
        event = make_event("dana")
        await c.send(event)
        assert (await a.next())["msg_id"] == event.event_id
        assert (await b.next())["msg_id"] == event.event_id
        await b.ack(event.event_id)
        final = (await c.acks_until(event.event_id, AckStatus.DELIVERED))[-1]
        assert final.delivered_via == ChannelType.WEB


async def test_only_if_active_channel_without_an_adapter_fails_at_once(
    gw: GatewayProcess,
) -> None:
    async with container(gw) as c:
        prefs = (ChannelPreference(ChannelType.TELEGRAM, only_if_active=True),)
        event = make_event("erin", channels=prefs)
        await c.send(event)
        acks = await c.acks_until(event.event_id, AckStatus.ACK_ERROR)
        assert "undeliverable" in acks[-1].error_message


async def test_only_if_active_web_waits_for_the_user_to_connect(gw: GatewayProcess) -> None:
    async with container(gw) as c:
        prefs = (ChannelPreference(ChannelType.WEB, only_if_active=True),)
        event = make_event("erin", channels=prefs)
        await c.send(event)
        await c.acks_until(event.event_id, AckStatus.QUEUED)
        async with session(gw, "erin") as s:
            assert (await s.next())["msg_id"] == event.event_id
            await s.ack(event.event_id)
            await c.acks_until(event.event_id, AckStatus.DELIVERED)


async def test_normal_event_expires_after_its_ttl(gw: GatewayProcess) -> None:
    async with container(gw) as c:
        event = make_event("frank", Priority.NORMAL)
        await c.send(event)
        acks = await c.acks_until(event.event_id, AckStatus.ACK_ERROR)
        assert acks[0].status == AckStatus.QUEUED
        assert "expired" in acks[-1].error_message
        body = await get(f"{gw.http}/api/events/{event.event_id}", headers=auth(gw, "frank"))
        assert body.json()["state"] == "expired"


async def test_unacked_critical_is_retried_after_the_ack_timeout(gw: GatewayProcess) -> None:
    async with container(gw) as c, session(gw, "gina") as s:
        event = make_event("gina")
        await c.send(event)
        first = await s.next()
        assert first["payload"]["delivery_attempt"] == 1
        second = await s.next()  # no ack: the gateway tries again
        assert second["msg_id"] == event.event_id
        assert second["payload"]["delivery_attempt"] > 1
        await s.ack(event.event_id)
        await c.acks_until(event.event_id, AckStatus.DELIVERED)
    history = (await get(f"{gw.http}/api/events/{event.event_id}", headers=auth(gw, "gina"))).json()
    outcomes = [a["outcome"] for a in history["attempts"]]
    assert "timed_out" in outcomes
    assert outcomes[-1] == "acked"


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([os.urandom(64)], None),  # whatever the decoder finds wrong first
        ([b"\x99" + encode_user_event(make_event("x"))[1:]], "UNKNOWN_TYPE_ID"),
        ([encode_user_event(make_event("x"))[:9]], "INVALID_PROTOBUF"),  # truncated
        ([b""], "EMPTY_FRAME"),
        ([b"\x20" + b"\x0a" * (2 << 20)], "FRAME_TOO_LARGE"),  # over the 1 MiB limit
    ],
    ids=["random", "unknown-type", "truncated", "empty", "oversized"],
)
async def test_hostile_frames_get_ack_error_and_good_traffic_goes_on(
    gw: GatewayProcess, frames: list[bytes], code: str | None
) -> None:
    verdict = decode_user_event(frames[0])
    assert isinstance(verdict, Rejection)
    assert code in (None, verdict.code)
    before = await get(f"{gw.http}/metrics")
    async with container(gw) as c, session(gw, "hank") as s:
        await c.send_raw(*frames)
        bad = await c.raw_ack()  # its event id is empty when unreadable
        assert bad.status == AckStatus.ACK_ERROR
        assert bad.event_id == (verdict.msg_id or "")
        assert bad.error_message.startswith(f"{verdict.code}: "), bad.error_message
        good = make_event("hank")
        await c.send(good)
        assert (await s.next())["msg_id"] == good.event_id
    after = await get(f"{gw.http}/metrics")
    counted = sample(after.text, REJECTED, endpoint="zmq_router", code=verdict.code)
    assert counted - sample(before.text, REJECTED, endpoint="zmq_router", code=verdict.code) == 1


async def test_inbox_and_event_history_are_private_to_their_user(gw: GatewayProcess) -> None:
    async with container(gw) as c, session(gw, "ivy") as s:
        event = make_event("ivy", Priority.NORMAL)
        await c.send(event)
        assert (await s.next())["msg_id"] == event.event_id
        await s.ack(event.event_id)
        await c.acks_until(event.event_id, AckStatus.DELIVERED)
    inbox = (await get(f"{gw.http}/api/users/ivy/events", headers=auth(gw, "ivy"))).json()
    assert [(e["event_id"], e["state"], e["delivered_via"]) for e in inbox["events"]] == [
        (event.event_id, "delivered", "WEB")
    ]
    other = auth(gw, "mallory")
    assert (await get(f"{gw.http}/api/users/ivy/events", headers=other)).status_code == 403
    assert (await get(f"{gw.http}/api/events/{event.event_id}", headers=other)).status_code == 404
    assert (await get(f"{gw.http}/api/users/ivy/events")).status_code == 401


BURST = 3_000  # well past ZeroMQ's default HWM of 1,000 on either side


async def test_a_burst_from_one_dealer_gets_every_queued_ack(gw: GatewayProcess) -> None:
    """Acks queued faster than the DEALER reads them are kept, not silently dropped.

    The ROUTER once ran with the default SNDHWM and ROUTER_MANDATORY off: past
    about 1,000 acks waiting for one DEALER the rest vanished without a trace.
    """
    events = [make_event(f"burst-{i % 50}") for i in range(BURST)]
    async with container(gw) as c:
        c.dealer.setsockopt(zmq.SNDHWM, BURST)
        for event in events:  # the whole burst at once, before reading a single ack
            await c.dealer.send(encode_user_event(event), zmq.NOBLOCK)  # done at once: no yield
        queued: list[str] = []
        while len(queued) < BURST:
            ack = await c.ack()
            assert isinstance(ack, EventAck), ack
            if ack.status == AckStatus.QUEUED:
                queued.append(ack.event_id)
    assert sorted(queued) == sorted(e.event_id for e in events)  # each once, none lost
    after = await get(f"{gw.http}/metrics")
    assert sample(after.text, REJECTED, endpoint="zmq_router", code="ACK_NOT_SENT") == 0
