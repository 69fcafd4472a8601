"""Hostile DEALERs: a flood of garbage next to good CRITICAL traffic on the same ROUTER.

Every garbage frame that reaches the ROUTER as ``[identity][frame]`` is answered
with an ACK_ERROR naming the rejection code (and the event id when it was
readable); a message of the wrong frame count cannot be answered and is dropped.
Both are counted in ``tradewire_inputs_rejected_total``. The decoder's own
verdict (:func:`decode_user_event`, property-tested in the unit suite) is the
oracle for what each frame must get.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.userevents import (
    Container,
    Session,
    container,
    make_event,
    metrics,
    sample,
    session,
)
from tradewire.wire import (
    AckStatus,
    EventAck,
    Rejection,
    decode_user_event,
    encode_event_ack,
    encode_user_event,
)
from tradewire.wire._pb import user_events_pb2 as pb

GARBAGE = 5_000
GOOD = 200
USER = "victim"
REJECTED = "tradewire_inputs_rejected_total"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path / "data", env={"TRADEWIRE_DURABILITY": "os"}) as proc:
        yield proc
        assert proc.stop() == 0, "\n".join(proc.stderr_lines)


def crafted(**fields: object) -> bytes:
    """A ``0x20`` frame built field by field, so out-of-range enums can be sent."""
    delivery = fields.pop("delivery", None)
    message = pb.UserEvent(**fields)  # type: ignore[arg-type]
    if delivery is not None:
        message.delivery.CopyFrom(delivery)  # type: ignore[arg-type]
    return b"\x20" + message.SerializeToString()


def garbage_frame(rng: random.Random, n: int) -> list[bytes]:
    """One hostile DEALER message (usually one frame) of a kind chosen by ``n``."""
    event_id = f"bad-{n}"
    good = encode_user_event(make_event("x", event_id=event_id))
    kinds = [
        lambda: [rng.randbytes(rng.randint(1, 200))],
        lambda: [bytes([rng.choice([0x00, 0x7F, 0x99, 0xFF])]) + rng.randbytes(40)],
        lambda: [good[: rng.randint(1, len(good) - 1)]],
        lambda: [b""],
        lambda: [encode_event_ack(EventAck(event_id=event_id, status=AckStatus.DELIVERED))],
        lambda: [encode_user_event(make_event("x", event_id=event_id))[:-1] + b"\xff"],
        lambda: [crafted(user_id="x", event_id=event_id, event_type=99, payload=b"{}")],
        lambda: [
            crafted(
                user_id="x",
                event_id=event_id,
                event_type=1,
                payload=b"{}",
                delivery=pb.DeliverySpec(priority=7),  # type: ignore[arg-type]
            )
        ],
        lambda: [crafted(user_id="x", event_id=event_id, event_type=1, payload=b"{not json")],
        lambda: [good, b"a second frame"],  # three parts at the ROUTER: unanswerable
    ]
    return kinds[n % len(kinds)]()


def expected_answer(frames: list[bytes]) -> Rejection | None:
    """The rejection a one-frame message must be answered with (None: dropped silently)."""
    if len(frames) != 1:
        return None
    verdict = decode_user_event(frames[0])
    assert isinstance(verdict, Rejection), "a garbage generator produced a valid event"
    return verdict


def hostile_messages(seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    messages: list[list[bytes]] = []
    while len(messages) < GARBAGE:
        frames = garbage_frame(rng, len(messages))
        if len(frames) == 1 and not isinstance(decode_user_event(frames[0]), Rejection):
            continue  # a random truncation that happens to be valid: not garbage
        messages.append(frames)
    return messages


async def read_error_acks(c: Container, count: int) -> list[tuple[str, AckStatus, str]]:
    """The next ``count`` acks as (event_id, status, rejection code)."""
    out = []
    for _ in range(count):
        ack = await c.raw_ack()
        out.append((ack.event_id, ack.status, ack.error_message.split(":", 1)[0]))
    return out


async def good_acks(c: Container, count: int) -> dict[str, list[AckStatus]]:
    """Acks of the good DEALER until each of ``count`` events is DELIVERED."""
    seen: dict[str, list[AckStatus]] = {}
    delivered = 0
    while delivered < count:
        ack = await c.ack()
        assert isinstance(ack, EventAck), ack
        seen.setdefault(ack.event_id, []).append(ack.status)
        delivered += ack.status == AckStatus.DELIVERED
    return seen


async def ack_everything(s: Session, count: int) -> list[str]:
    got = []
    for _ in range(count):
        event_id = (await s.next())["msg_id"]
        got.append(event_id)
        await s.ack(event_id)
    return got


async def test_a_garbage_flood_is_answered_and_counted_while_good_events_get_through(
    gw: GatewayProcess,
) -> None:
    hostile = hostile_messages(seed=20260103)
    sentinel = [b"\x99 end of the flood"]  # answered last: everything before it was read
    answers = [expected_answer(m) for m in [*hostile, sentinel]]
    expected = [(r.msg_id or "", AckStatus.ACK_ERROR, r.code) for r in answers if r is not None]
    codes = Counter(r.code for r in answers if r is not None)
    codes["WRONG_FRAME_COUNT"] += sum(r is None for r in answers)
    assert len(codes) >= 8  # the flood really mixes kinds of garbage

    good = [make_event(USER, event_id=f"good-{uuid.uuid4()}") for _ in range(GOOD)]
    before = await metrics(gw)
    async with container(gw) as bad, container(gw) as c, session(gw, USER) as s:
        answered = asyncio.create_task(read_error_acks(bad, len(expected)))
        settled = asyncio.create_task(good_acks(c, GOOD))
        shown = asyncio.create_task(ack_everything(s, GOOD))
        every = GARBAGE // GOOD
        for n, frames in enumerate(hostile):
            await bad.send_raw(*frames)
            if n % every == every - 1:
                await c.send(good[n // every])
        await bad.send_raw(*sentinel)
        got, statuses, shown_ids = await asyncio.wait_for(
            asyncio.gather(answered, settled, shown), 120
        )
        after = await metrics(gw)

    assert got == expected  # every answerable frame, in order, with its code and id
    assert shown_ids == [e.event_id for e in good]  # in order, none lost, none twice
    assert statuses == {e.event_id: [AckStatus.QUEUED, AckStatus.DELIVERED] for e in good}
    for code, count in codes.items():
        delta = sample(after, REJECTED, endpoint="zmq_router", code=code) - sample(
            before, REJECTED, endpoint="zmq_router", code=code
        )
        assert delta == count, code
    total = sample(after, REJECTED, endpoint="zmq_router") - sample(
        before, REJECTED, endpoint="zmq_router"
    )
    assert total == GARBAGE + 1  # nothing else was refused: no ACK_NOT_SENT either
    frames = "tradewire_zmq_frames_received_total"
    received = sample(after, frames, socket="router") - sample(before, frames, socket="router")
    assert received == GARBAGE + 1 + GOOD


async def test_a_readable_event_id_comes_back_on_the_error_ack(gw: GatewayProcess) -> None:
    async with container(gw) as c:
        await c.send_raw(crafted(user_id="x", event_id="e-1", event_type=1, payload=b"[1, 2"))
        ack = await c.ack()  # the strict decoder accepts it: the id is there
        assert isinstance(ack, EventAck)
        assert (ack.event_id, ack.status) == ("e-1", AckStatus.ACK_ERROR)
        assert ack.error_message.startswith("INVALID_PAYLOAD: ")
