"""Client helpers for user-event tests: a DEALER container and a live session."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets
import zmq
import zmq.asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway_proc import GatewayProcess, run_cli
from tradewire.wire import (
    EVENT_ACK_TYPE_ID,
    AckStatus,
    ChannelPreference,
    ChannelType,
    EventAck,
    EventType,
    Priority,
    Rejection,
    UserEvent,
    decode_event_ack,
    encode_fast_path,
    encode_user_event,
)
from tradewire.wire._pb import user_events_pb2

WAIT = 30.0  # generous: the machine is shared; never a timing assertion


def make_event(
    user: str,
    priority: Priority = Priority.CRITICAL,
    *,
    event_id: str | None = None,
    channels: tuple[ChannelPreference, ...] = (),
    payload: dict[str, Any] | None = None,
    event_type: EventType = EventType.ORDER_FILLED,
) -> UserEvent:
    body = payload if payload is not None else {"symbol": "BTCUSDT", "fill_price": "45000.10"}
    return UserEvent(
        user_id=user,
        event_id=event_id or str(uuid.uuid4()),
        timestamp_ms=1_767_443_000_000,
        event_type=event_type,
        payload=json.dumps(body).encode(),
        priority=priority,
        channels=channels,
    )


def token_for(gw: GatewayProcess, user: str, ttl: int = 3600) -> str:
    result = run_cli("token", user, "--ttl", str(ttl), data_dir=gw.data_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Container:
    """A container's DEALER (guaranteed path) and PUB-like XPUB (fast path)."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.ctx = zmq.asyncio.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(gw.zmq_router)
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.xpub.connect(gw.zmq_sub)

    async def send(self, event: UserEvent) -> None:
        await self.dealer.send(encode_user_event(event))

    async def send_raw(self, *frames: bytes) -> None:
        await self.dealer.send_multipart(list(frames))

    async def ack(self) -> EventAck | Rejection:
        raw = await asyncio.wait_for(self.dealer.recv(), WAIT)
        return decode_event_ack(raw)

    async def raw_ack(self) -> EventAck:
        """The next ack as the gateway sent it, without the strict decoder's checks.

        An ACK_ERROR for a frame whose event id was unreadable carries an empty
        ``event_id``, which :func:`decode_event_ack` refuses (``MISSING_FIELD``).
        """
        raw = await asyncio.wait_for(self.dealer.recv(), WAIT)
        assert raw[:1] == bytes([EVENT_ACK_TYPE_ID]), raw[:16]
        message = user_events_pb2.EventAck()
        message.ParseFromString(raw[1:])
        return EventAck(
            event_id=message.event_id,
            status=AckStatus(message.status),
            error_message=message.error_message,
            delivered_via=ChannelType(message.delivered_via),
        )

    async def acks_until(self, event_id: str, status: int) -> list[EventAck]:
        """Read acks until one for ``event_id`` has ``status``; return all read."""
        seen: list[EventAck] = []
        while True:
            ack = await self.ack()
            assert isinstance(ack, EventAck), ack
            seen.append(ack)
            if ack.event_id == event_id and ack.status == status:
                return seen

    async def wait_subscribed(self, user: str) -> None:
        """Wait for the gateway's SUB to subscribe to ``user``'s topic."""
        while True:
            msg = await asyncio.wait_for(self.xpub.recv(), WAIT)
            if msg == b"\x01" + user.encode():
                return

    async def wait_unsubscribed(self, user: str) -> list[bytes]:
        """Wait for the gateway's SUB to drop ``user``'s topic; the messages read before."""
        seen: list[bytes] = []
        while True:
            msg = await asyncio.wait_for(self.xpub.recv(), WAIT)
            if msg == b"\x00" + user.encode():
                return seen
            seen.append(msg)

    async def publish_fast(self, event: UserEvent) -> None:
        await self.xpub.send_multipart(list(encode_fast_path(event)))

    def close(self) -> None:
        self.dealer.close(0)
        self.xpub.close(0)
        self.ctx.term()


@asynccontextmanager
async def container(gw: GatewayProcess) -> AsyncIterator[Container]:
    c = Container(gw)
    try:
        yield c
    finally:
        c.close()


class Session:
    """A live ``/ws/session`` client."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    async def next(self, msg_type: str = "user_event") -> dict[str, Any]:
        """The next envelope of ``msg_type`` (heartbeats and others skipped)."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), WAIT)
            doc = json.loads(raw)
            for env in doc if isinstance(doc, list) else [doc]:
                if env["msg_type"] == msg_type:
                    return env  # type: ignore[no-any-return]

    async def ack(self, *event_ids: str) -> None:
        for event_id in event_ids:
            await self.ws.send(
                json.dumps({"msg_type": "ack", "payload": {"acknowledged_msg_id": event_id}})
            )


@asynccontextmanager
async def session(gw: GatewayProcess, user: str, query: str = "") -> AsyncIterator[Session]:
    url = f"{gw.ws}/ws/session?token={token_for(gw, user)}{query}"
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        yield Session(ws)


async def metrics(gw: GatewayProcess) -> str:
    """The gateway's ``/metrics`` text."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return (await client.get(f"{gw.http}/metrics")).text


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for point in family.samples:
            if point.name == name and labels.items() <= point.labels.items():
                total += point.value
    return total


def data_dir_of(gw: GatewayProcess) -> Path:
    return gw.data_dir
