"""The SDK's Container against a real gateway: every priority path, a crash, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

from tests.integration.gateway_proc import GatewayProcess, run_cli
from tests.integration.userevents import WAIT, Session, session, token_for
from tradewire.sdk import (
    AckStatus,
    ChannelType,
    Container,
    EventAck,
    EventType,
    Priority,
    Route,
)
from tradewire.wire.payloads import OrderEventPayload

FILL = {"symbol": "BTCUSDT", "fill_price": Decimal("45000.10")}


@contextlib.asynccontextmanager
async def sdk(gw: GatewayProcess, outbox: Path) -> AsyncIterator[Container]:
    async with Container(outbox, router=gw.zmq_router, sub=gw.zmq_sub) as container:
        yield container


async def test_informational_reaches_a_subscribed_user_and_is_dropped_otherwise(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    async with sdk(gateway, tmp_path / "outbox.db") as c:
        dropped = await c.publish("ann", EventType.INDICATOR_UPDATED, {}, Priority.INFORMATIONAL)
        assert (dropped.route, dropped.outcome) == (Route.DROPPED, "dropped: no subscriber")
        assert await dropped.final() is None
        assert c.stats.dropped == 1
        async with session(gateway, "ann") as s:
            await c.wait_subscribed("ann")
            assert not c.is_subscribed("an")  # exact ids, not prefixes
            pub = await c.publish(
                "ann", "INDICATOR_UPDATED", {"indicator_name": "rsi"}, "INFORMATIONAL"
            )
            assert pub.route is Route.FAST
            env = await s.next()
            assert env["msg_id"] == pub.event_id
            assert env["payload"]["payload"] == {"indicator_name": "rsi"}
        assert c.pending == 0  # nothing of this went through the outbox


async def test_normal_takes_the_fast_path_when_subscribed_and_the_dealer_otherwise(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    async with sdk(gateway, tmp_path / "outbox.db") as c:
        queued = await c.publish("bea", EventType.ALERT_TRIGGERED, {"alert_id": "a1"})
        assert queued.route is Route.GUARANTEED
        first = await asyncio.wait_for(queued.first_ack(), WAIT)
        assert first is not None and first.status is AckStatus.QUEUED
        async with session(gateway, "bea") as s:
            env = await s.next()  # the queued one is replayed on connect
            assert env["msg_id"] == queued.event_id
            await s.ack(queued.event_id)
            final = await asyncio.wait_for(queued.final(), WAIT)
            assert final is not None
            assert (final.status, final.delivered_via) == (AckStatus.DELIVERED, ChannelType.WEB)
            await c.wait_subscribed("bea")
            fast = await c.publish("bea", EventType.ALERT_TRIGGERED, {"alert_id": "a2"})
            assert fast.route is Route.FAST
            assert (await s.next())["msg_id"] == fast.event_id
        await asyncio.wait_for(c.drain(), WAIT)
        assert c.pending == 0


async def test_critical_goes_dealer_queued_then_delivered_after_the_session_acks(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    seen: list[EventAck] = []
    async with sdk(gateway, tmp_path / "outbox.db") as c, session(gateway, "cid") as s:
        await c.wait_subscribed("cid")  # subscribed or not, CRITICAL takes the DEALER
        payload = OrderEventPayload(order_id="o1", fill_price=Decimal("1.25"))
        pub = await c.publish("cid", EventType.ORDER_FILLED, payload, Priority.CRITICAL)
        pub.add_callback(seen.append)
        assert pub.route is Route.GUARANTEED
        env = await s.next()
        assert env["payload"]["payload"] == {"order_id": "o1", "fill_price": "1.25"}
        assert env["payload"]["priority"] == "CRITICAL"
        await s.ack(pub.event_id)
        final = await asyncio.wait_for(pub.final(), WAIT)
        assert final is not None and final.status is AckStatus.DELIVERED
        assert [a.status for a in pub.acks] == [AckStatus.QUEUED, AckStatus.DELIVERED]
        assert seen == pub.acks
        assert pub.outcome == "delivered via WEB"


async def test_a_bad_payload_is_refused_before_anything_is_stored(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    from tradewire.errors import WireError

    async with sdk(gateway, tmp_path / "outbox.db") as c:
        try:
            await c.publish("dan", "ORDER_FILLED", {"fill_price": [1]}, "CRITICAL")
        except WireError as exc:
            assert exc.field == "payload.fill_price"
        else:
            raise AssertionError("an invalid payload was accepted")
        assert c.pending == 0


# -- a container killed with SIGKILL and restarted ------------------------------

CONTAINER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from tradewire.sdk import Container

async def main(outbox, router, sub, count, mode):
    async with Container(Path(outbox), router=router, sub=sub) as c:
        if mode == "publish":
            for i in range(int(count)):
                await c.publish("kim", "ORDER_FILLED", {"fill_price": str(i)}, "CRITICAL",
                                event_id=f"kill-{i}")
                print("durable", f"kill-{i}", flush=True)
            await asyncio.Event().wait()  # never finally acked: no session yet
        print("restored", c.pending, flush=True)
        await c.drain()
        print("drained", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def start_container(
    gw: GatewayProcess, outbox: Path, mode: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CONTAINER_SCRIPT, str(outbox), gw.zmq_router, gw.zmq_sub, "200",
        mode, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
    assert line, "the container process ended early"
    return line.decode().strip()


async def ack_everything(s: Session, received: list[str]) -> None:
    while True:
        env = await s.next()
        received.append(env["msg_id"])
        await s.ack(env["msg_id"])


async def test_a_killed_container_resends_its_outbox_and_each_event_arrives_once(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.db"
    first = await start_container(gateway, outbox, "publish")
    durable = [(await read_line(first)).split()[1] for _ in range(100)]
    first.kill()  # SIGKILL, mid-publish: some events never reached the gateway
    assert first.stdout is not None
    await first.stdout.read()
    await first.wait()
    second = await start_container(gateway, outbox, "drain")
    restored = int((await read_line(second)).split()[1])
    assert restored >= len(durable)
    received: list[str] = []
    async with session(gateway, "kim") as s:
        reader = asyncio.create_task(ack_everything(s, received))
        assert await read_line(second) == "drained"  # every final ack arrived
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert await asyncio.wait_for(second.wait(), WAIT) == 0
    assert len(received) == len(set(received)) == restored  # each event exactly once
    assert set(durable) <= set(received) <= {f"kill-{i}" for i in range(200)}


# -- the CLI ------------------------------------------------------------------------


async def cli(*args: str) -> tuple[int, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradewire", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 2 * WAIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


async def test_cli_send_prints_each_ack_and_status_shows_the_history(
    gateway: GatewayProcess,
) -> None:
    token_for(gateway, "eve")  # the CLI must not race the session's token
    async with session(gateway, "eve") as s:
        sending = asyncio.create_task(
            cli("send", "--user", "eve", "--type", "ORDER_FILLED", "--priority", "CRITICAL",
                "--payload", '{"fill_price": 45000.10}', "--channels", "WEB,TELEGRAM",
                "--event-id", "e-cli-1", "--gateway", gateway.zmq_router, "--sub", gateway.zmq_sub)
        )  # fmt: skip
        env = await s.next()
        assert env["payload"]["payload"] == {"fill_price": "45000.10"}
        await s.ack(env["msg_id"])
        code, lines, err = await sending
    assert (code, lines) == (0, ["QUEUED e-cli-1", "DELIVERED e-cli-1 via WEB"]), err
    shown = run_cli("status", "e-cli-1", data_dir=gateway.data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "state=delivered" in shown.stdout and "via=WEB" in shown.stdout
    assert "acked" in shown.stdout
    unknown = run_cli("status", "nope", data_dir=gateway.data_dir)
    assert unknown.returncode == 1
    assert "no event 'nope'" in unknown.stderr


async def test_cli_send_exit_codes(gateway: GatewayProcess) -> None:
    target = ("--gateway", gateway.zmq_router, "--sub", gateway.zmq_sub)
    code, lines, _ = await cli(
        "send", "--user", "fay", "--type", "ORDER_FILLED", "--channels", "TELEGRAM",
        "--event-id", "e-cli-2", *target,
    )  # fmt: skip
    assert code == 1
    assert lines[-1].startswith("ACK_ERROR e-cli-2: undeliverable")
    code, lines, err = await cli(
        "send", "--user", "fay", "--type", "ORDER_FILLED", "--event-id", "e-cli-3",
        "--timeout", "2", *target,
    )  # fmt: skip
    assert (code, lines) == (3, ["QUEUED e-cli-3"])
    assert "no final ack within 2 s" in err
    code, _, err = await cli("send", "--user", "fay", "--type", "ORDER_FILLED", "--payload", "[")
    assert code == 2 and "--payload" in err
    code, _, err = await cli(
        "send", "--user", "fay", "--type", "ORDER_FILLED", "--payload", '{"fill_price": "x"}'
    )
    assert code == 2 and "payload.fill_price" in err
