"""Acknowledged-publish contenders a user would otherwise pick, and the driver loops.

Every contender publishes the same pre-encoded messages (the gateway's
``0x20 + UserEvent`` frames carrying a ~200-byte ORDER_FILLED JSON) from one
Python producer and waits for the broker's acknowledgement, with at most
``window`` messages unacknowledged. What the acknowledgement waits for (and
so what an acknowledged message survives) differs per broker and is stated
by each :class:`Peer`:

* raw pyzmq DEALER/ROUTER echo: the echo from a ROUTER in another process
  that drains its socket in batches. Nothing is stored: the ceiling.
* raw pyzmq + fdatasync: the same ROUTER, but each drained batch is first
  appended to a file with one ``write`` and one ``fdatasync`` (the file is
  preallocated, so a sync carries no size change). No store, no engine: the
  floor of an ack that survives a power loss, sent from Python on this disk.
  A ceiling too: never "the fastest peer".
* RabbitMQ: durable classic queue, persistent messages, publisher confirms.
  The broker confirms a persistent message routed to a durable queue once
  its message store has written and fsynced it (it batches fsyncs).
* NATS JetStream: a file-storage stream, R1. The PubAck comes after the
  write to the stream's file, without fsync (nats-server 2.9 has no
  ``sync_interval``/``sync: always``; later versions default to a 2-minute
  sync): survives a process kill, not a power loss.
* Redis Streams: XADD with ``appendonly yes`` + ``appendfsync always``; the
  reply is sent after the AOF write and fsync.

A peer that cannot be reached raises :class:`Unreachable`; the caller turns
it into a row noting the error.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import zmq

from bench._harness import percentile

__all__ = [
    "FSYNC_FLOOR",
    "PEERS",
    "AckRun",
    "Budget",
    "Peer",
    "Unreachable",
    "async_window",
    "run_async",
    "serial_window",
    "zmq_window",
]

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
QUEUE = "tradewire-bench-acks"
STREAM = "TWBENCH"
SUBJECT = "twbench.acks"
REDIS_KEY = "tradewire-bench-acks"
RECV_TIMEOUT_MS = 15_000
FSYNC_FLOOR = "raw pyzmq + fdatasync"
_ADVANCE_EVERY = 256

try:
    import uvloop

    run_async: Callable[[Awaitable[Any]], Any] = uvloop.run  # type: ignore[assignment]
except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
    run_async = asyncio.run  # type: ignore[assignment]


class Unreachable(Exception):
    """The peer's server could not be reached (or refused the setup)."""


@dataclass(frozen=True)
class Budget:
    """How much one measurement may send and for how long, plus its progress hook."""

    window: int
    seconds: float
    advance: Callable[[int], None]


@dataclass(frozen=True)
class AckRun:
    """One measurement: ``acked`` messages in ``seconds``, with per-message ack latency."""

    acked: int
    seconds: float
    latencies_s: Sequence[float]

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def p(self, q: float) -> float:
        """The ``q``-th percentile latency in milliseconds."""
        return percentile(sorted(self.latencies_s), q) * 1000


Measure = Callable[[list[bytes], Budget], AckRun]


@dataclass(frozen=True)
class Peer:
    """A contender: its name, what its ack waits for, and how to measure it."""

    name: str
    survives: str  # "power loss", "process kill" or "nothing"
    ack_means: str
    measure: Measure
    windows: tuple[int, ...] = (1, 256)
    ceiling: bool = False  # a bound that does the least work, not a product a user would pick


class _Progress:
    """Counts acks and forwards them to the progress bar in chunks."""

    __slots__ = ("advance", "pending")

    def __init__(self, advance: Callable[[int], None]) -> None:
        self.advance = advance
        self.pending = 0

    def tick(self) -> None:
        self.pending += 1
        if self.pending >= _ADVANCE_EVERY:
            self.advance(self.pending)
            self.pending = 0

    def flush(self) -> None:
        self.advance(self.pending)
        self.pending = 0


# -- generic sliding windows ---------------------------------------------------


def zmq_window(
    sock: zmq.Socket[bytes],
    frames: list[bytes],
    keys: Sequence[Hashable],
    reply_key: Callable[[bytes], Hashable | None],
    budget: Budget,
) -> AckRun:
    """Send ``frames`` on a sync socket keeping ``budget.window`` unacked; time the acks.

    ``reply_key`` maps a reply to the key of the frame it acknowledges, or
    None for replies that are not the awaited ack (they are skipped).
    """
    sent: dict[Hashable, float] = {}
    latencies: list[float] = []
    bar = _Progress(budget.advance)
    clock = time.perf_counter
    limit, i = len(frames), 0
    t0 = clock()
    deadline = t0 + budget.seconds
    while i < limit or sent:
        while i < limit and len(sent) < budget.window:
            sent[keys[i]] = clock()
            sock.send(frames[i], copy=False)
            i += 1
        key = reply_key(sock.recv())
        start = sent.pop(key, None) if key is not None else None
        if start is None:
            continue
        now = clock()
        latencies.append(now - start)
        bar.tick()
        if now > deadline:
            limit = i  # stop sending; drain what is in flight
    elapsed = clock() - t0
    bar.flush()
    return AckRun(len(latencies), elapsed, latencies)


def serial_window(
    publish: Callable[[bytes], object], frames: list[bytes], budget: Budget
) -> AckRun:
    """Window 1 for a blocking client: ``publish`` returns once acked."""
    latencies: list[float] = []
    bar = _Progress(budget.advance)
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + budget.seconds
    for frame in frames:
        start = clock()
        publish(frame)
        now = clock()
        latencies.append(now - start)
        bar.tick()
        if now > deadline:
            break
    elapsed = clock() - t0
    bar.flush()
    return AckRun(len(latencies), elapsed, latencies)


async def async_window(
    publish: Callable[[bytes], Awaitable[object]], frames: list[bytes], budget: Budget
) -> AckRun:
    """Publish with at most ``budget.window`` unacked; ``publish`` returns once acked."""
    latencies: list[float] = []
    bar = _Progress(budget.advance)
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + budget.seconds
    if budget.window == 1:
        for frame in frames:
            start = clock()
            await publish(frame)
            now = clock()
            latencies.append(now - start)
            bar.tick()
            if now > deadline:
                break
    else:
        await _async_pipelined(publish, frames, budget.window, deadline, latencies, bar)
    elapsed = clock() - t0
    bar.flush()
    return AckRun(len(latencies), elapsed, latencies)


async def _async_pipelined(
    publish: Callable[[bytes], Awaitable[object]],
    frames: list[bytes],
    window: int,
    deadline: float,
    latencies: list[float],
    bar: _Progress,
) -> None:
    slots = asyncio.Semaphore(window)
    clock = time.perf_counter
    tasks: set[asyncio.Task[None]] = set()

    async def one(frame: bytes) -> None:
        start = clock()
        try:
            await publish(frame)
            latencies.append(clock() - start)
            bar.tick()
        finally:
            slots.release()

    for frame in frames:
        await slots.acquire()
        if clock() > deadline:
            slots.release()
            break
        task = asyncio.ensure_future(one(frame))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


# -- raw pyzmq echo (the ceiling) ---------------------------------------------------


def _echo_router(conn: Connection, journal: str | None = None) -> None:
    """A ROUTER that echoes every frame back, draining its socket in batches.

    With ``journal`` (a directory), each batch is appended to a preallocated
    file there and fdatasync'd before its echoes go out.
    """
    fd = _journal(journal) if journal is not None else None
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:0")
    conn.send(router.getsockopt(zmq.LAST_ENDPOINT).decode())
    poller = zmq.Poller()
    router.RCVTIMEO = 200
    poller.register(router, zmq.POLLIN)
    while not conn.poll():
        if not poller.poll(200):
            continue
        batch = []
        for _ in range(4096):
            try:
                batch.append(router.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        if fd is not None and batch:
            os.write(fd, b"".join(parts[-1].buffer for parts in batch))
            os.fdatasync(fd)
        for parts in batch:
            router.send_multipart(parts, copy=False)
    router.close(0)
    ctx.term()
    if fd is not None:
        os.close(fd)


_JOURNAL_BYTES = 256 << 20  # more than any measurement appends


def _journal(directory: str) -> int:
    """A file preallocated with zeros (synced), open for writing from its start."""
    fd = os.open(os.path.join(directory, "journal"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\0" * (1 << 20)
    for _ in range(_JOURNAL_BYTES // len(chunk)):
        os.write(fd, chunk)
    os.fsync(fd)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _measure_raw_zmq(frames: list[bytes], budget: Budget) -> AckRun:
    return _measure_echo(frames, budget, None)


def _measure_raw_zmq_fdatasync(frames: list[bytes], budget: Budget) -> AckRun:
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as journal:
        return _measure_echo(frames, budget, journal)


def _measure_echo(frames: list[bytes], budget: Budget, journal: str | None) -> AckRun:
    spawn = multiprocessing.get_context("spawn")
    here, there = spawn.Pipe()
    proc = spawn.Process(target=_echo_router, args=(there, journal), daemon=True)
    proc.start()
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    try:
        if not here.poll(60):  # (the journal's preallocation takes a moment)
            raise Unreachable("echo ROUTER did not start")
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.RCVTIMEO = RECV_TIMEOUT_MS
        dealer.connect(here.recv())
        _warm_zmq(dealer, frames[:64])
        return zmq_window(dealer, frames, frames, lambda reply: reply, budget)
    finally:
        dealer.close(0)
        ctx.term()
        here.send("stop")
        proc.join(10)


def _warm_zmq(dealer: zmq.Socket[bytes], frames: list[bytes]) -> None:
    for frame in frames:
        dealer.send(frame)
        dealer.recv()


# -- RabbitMQ ----------------------------------------------------------------------


def _rabbit_params() -> Any:
    import pika

    return pika.URLParameters(RABBIT_URL + "?heartbeat=0&connection_attempts=1")


def _rabbit_fresh_queue() -> None:
    import pika

    try:
        conn = pika.BlockingConnection(_rabbit_params())
    except Exception as exc:  # pika raises several unrelated classes for "no broker"
        raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
    try:
        ch = conn.channel()
        ch.queue_delete(QUEUE)
        ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "classic"})
    finally:
        conn.close()


def _rabbit_drop_queue() -> None:
    import pika

    conn = pika.BlockingConnection(_rabbit_params())
    try:
        conn.channel().queue_delete(QUEUE)
    finally:
        conn.close()


def _measure_pika_blocking(frames: list[bytes], budget: Budget) -> AckRun:
    import pika

    _rabbit_fresh_queue()
    conn = pika.BlockingConnection(_rabbit_params())
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

        return serial_window(
            lambda frame: ch.basic_publish("", QUEUE, frame, props), frames, budget
        )
    finally:
        conn.close()
        _rabbit_drop_queue()


class _PikaSelectRun:
    """pika's callback ``SelectConnection`` with a sliding window of confirms."""

    def __init__(self, frames: list[bytes], budget: Budget) -> None:
        import pika

        self.frames, self.budget = frames, budget
        self.props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        self.outstanding: dict[int, float] = {}  # delivery tag -> send time, in tag order
        self.next_tag = 1  # delivery tags count publishes from 1
        self.latencies: list[float] = []
        self.bar = _Progress(budget.advance)
        self.limit = len(frames)
        self.error: str | None = None
        self.t0 = self.t1 = self.deadline = 0.0
        self.channel: Any = None
        self.conn = pika.SelectConnection(
            _rabbit_params(),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )

    def run(self) -> AckRun:
        self.conn.ioloop.start()
        if self.error is not None:
            raise Unreachable(self.error) if not self.latencies else RuntimeError(self.error)
        self.bar.flush()
        return AckRun(len(self.latencies), self.t1 - self.t0, self.latencies)

    def _on_open_error(self, _conn: Any, exc: BaseException) -> None:
        self.error = f"connect failed: {exc}"
        self.conn.ioloop.stop()

    def _on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirming)

    def _on_confirming(self, _frame: Any) -> None:
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + self.budget.seconds
        self._fill()

    def _fill(self) -> None:
        while self.next_tag <= self.limit and len(self.outstanding) < self.budget.window:
            self.outstanding[self.next_tag] = time.perf_counter()
            self.channel.basic_publish("", QUEUE, self.frames[self.next_tag - 1], self.props)
            self.next_tag += 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if type(method).__name__ != "Ack":
            self.error = f"broker nacked delivery tag {method.delivery_tag}"
            self._finish(time.perf_counter())
            return
        now = time.perf_counter()
        for tag in self._confirmed_tags(method.delivery_tag, method.multiple):
            start = self.outstanding.pop(tag, None)
            if start is not None:
                self.latencies.append(now - start)
                self.bar.tick()
        if now > self.deadline:
            self.limit = self.next_tag - 1
        if not self.outstanding and self.next_tag > self.limit:
            self._finish(now)
        else:
            self._fill()

    def _confirmed_tags(self, tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [tag]
        tags = []
        for t in self.outstanding:  # in tag order
            if t > tag:
                break
            tags.append(t)
        return tags

    def _finish(self, now: float) -> None:
        self.t1 = now
        self.conn.close()

    def _on_closed(self, _conn: Any, _reason: BaseException) -> None:
        self.conn.ioloop.stop()


def _measure_pika_select(frames: list[bytes], budget: Budget) -> AckRun:
    _rabbit_fresh_queue()
    try:
        return _PikaSelectRun(frames, budget).run()
    finally:
        _rabbit_drop_queue()


def _measure_aio_pika(frames: list[bytes], budget: Budget) -> AckRun:
    _rabbit_fresh_queue()
    try:
        return run_async(_aio_pika(frames, budget))  # type: ignore[no-any-return]
    finally:
        _rabbit_drop_queue()


async def _aio_pika(frames: list[bytes], budget: Budget) -> AckRun:
    import aio_pika

    conn = await aio_pika.connect(RABBIT_URL)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        persistent = aio_pika.DeliveryMode.PERSISTENT

        async def publish(frame: bytes) -> None:
            await exchange.publish(
                aio_pika.Message(frame, delivery_mode=persistent), routing_key=QUEUE
            )

        return await async_window(publish, frames, budget)
    finally:
        await conn.close()


# -- NATS JetStream -------------------------------------------------------------------


def _measure_nats(frames: list[bytes], budget: Budget) -> AckRun:
    return run_async(_nats(frames, budget))  # type: ignore[no-any-return]


async def _nats(frames: list[bytes], budget: Budget) -> AckRun:
    import nats
    from nats.js.api import StorageType

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
    try:
        js = nc.jetstream(publish_async_max_pending=max(budget.window, 1) * 2)
        await _nats_fresh_stream(js, StorageType.FILE)
        try:
            if budget.window == 1:

                async def publish(frame: bytes) -> None:
                    await js.publish(SUBJECT, frame)
            else:

                async def publish(frame: bytes) -> None:
                    await (await js.publish_async(SUBJECT, frame))

            return await async_window(publish, frames, budget)
        finally:
            await js.delete_stream(STREAM)
    finally:
        await nc.close()


async def _nats_fresh_stream(js: Any, storage: Any) -> None:
    import nats.js.errors

    try:
        await js.delete_stream(STREAM)
    except nats.js.errors.NotFoundError:
        pass
    except nats.js.errors.ServiceUnavailableError as exc:
        raise Unreachable(f"JetStream not enabled: {exc}") from exc
    await js.add_stream(name=STREAM, subjects=[SUBJECT], storage=storage)


# -- Redis Streams --------------------------------------------------------------------


def _measure_redis(frames: list[bytes], budget: Budget) -> AckRun:
    import redis

    client = redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=2)
    try:
        saved = client.config_get("append*")
    except redis.ConnectionError as exc:
        raise Unreachable(str(exc)) from exc
    try:
        client.config_set("appendonly", "yes")
        client.config_set("appendfsync", "always")
        _wait_aof_ready(client)
        client.delete(REDIS_KEY)
        return _redis_window(client, frames, budget)
    finally:
        client.delete(REDIS_KEY)
        client.config_set("appendfsync", saved.get("appendfsync", "everysec"))
        client.config_set("appendonly", saved.get("appendonly", "no"))
        client.close()


def _wait_aof_ready(client: Any) -> None:
    """Switching AOF on starts a rewrite; measure only once it is done."""
    for _ in range(300):
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        time.sleep(0.1)


def _redis_window(client: Any, frames: list[bytes], budget: Budget) -> AckRun:
    """Window 1: XADD and wait. Window W: pipelines of W XADDs, each timed as a whole."""
    latencies: list[float] = []
    bar = _Progress(budget.advance)
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + budget.seconds
    for start in range(0, len(frames), budget.window):
        chunk = frames[start : start + budget.window]
        sent = clock()
        if budget.window == 1:
            client.xadd(REDIS_KEY, {"e": chunk[0]})
        else:
            pipe = client.pipeline(transaction=False)
            for frame in chunk:
                pipe.xadd(REDIS_KEY, {"e": frame})
            pipe.execute()
        now = clock()
        for _ in chunk:
            latencies.append(now - sent)
            bar.tick()
        if now > deadline:
            break
    elapsed = clock() - t0
    bar.flush()
    return AckRun(len(latencies), elapsed, latencies)


# -- the list ---------------------------------------------------------------------------

_RABBIT_ACK = (
    "publisher confirm of a persistent message on a durable classic queue: "
    "sent after the message store fsynced it (RabbitMQ 3.10)"
)

PEERS: tuple[Peer, ...] = (
    Peer(
        "raw pyzmq DEALER/ROUTER echo",
        "nothing",
        "echo from a ROUTER process draining in batches; nothing stored (ceiling)",
        _measure_raw_zmq,
        ceiling=True,
    ),
    Peer(
        FSYNC_FLOOR,
        "power loss",
        "the same echo after each drained batch is appended to a preallocated file with one "
        "write + fdatasync; no store, no engine (the floor of a durable ack from Python)",
        _measure_raw_zmq_fdatasync,
        ceiling=True,
    ),
    Peer(
        "RabbitMQ, pika BlockingConnection",
        "power loss",
        _RABBIT_ACK + "; basic_publish blocks for each confirm (window 1 only)",
        _measure_pika_blocking,
        windows=(1,),
    ),
    Peer("RabbitMQ, pika SelectConnection", "power loss", _RABBIT_ACK, _measure_pika_select),
    Peer("RabbitMQ, aio-pika", "power loss", _RABBIT_ACK, _measure_aio_pika),
    Peer(
        "NATS JetStream, nats-py",
        "process kill",
        "PubAck after the write to the file stream, no fsync (nats-server 2.9.10, R1); "
        "window > 1 uses publish_async futures",
        _measure_nats,
    ),
    Peer(
        "Redis Streams, redis-py",
        "power loss",
        "XADD reply after the AOF write + fsync (appendfsync always, Redis 7.0); "
        "window > 1 = pipelines of W XADDs, each message timed as its pipeline",
        _measure_redis,
    ),
)
