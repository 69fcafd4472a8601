"""The store writer in a process of its own (``SqliteStore(writer="process")``).

Why
---
On a thread, the writer shares the gateway's GIL with the event loop. It
releases the GIL for every SQLite statement and then waits to win it back
while the loop decodes, replies and bridges: under the 8-connector ingest
load a commit's wall time was about twice its CPU time, and every record of
the batch waited for it. A child process has a GIL of its own and a core
of its own.

Theory of operation
-------------------
* The parent keeps the same queues as the thread writer
  (:class:`~tradewire.store._group_commit.GroupCommitWriter`): callers on
  the loop submit, the store wakes the writer once per loop iteration. On
  the loop, with no batch in flight, everything queued goes to the child as
  one msgpack message (plain bytes: the record fields, bodies as received);
  the loop reads the reply when the link turns readable, settles the batch,
  and sends what queued up meanwhile. No thread in between: an append costs
  the same wake-ups as with the thread writer (the child's, then the
  loop's), and nothing in the gateway competes with the loop for its GIL.
* The child (``python -m tradewire.store._writer_process``) owns the only
  write connection and runs the very same
  :class:`~tradewire.store._group_commit.BatchWriter` as the thread writer:
  one transaction per batch, the projectors (received pickled at start;
  they decode bodies themselves), then ``COMMIT``. Its reply holds each
  record's seq, and the stored row only for duplicates, so a committed
  record comes back to its caller as the parent's own object (the decoded
  envelope a transport attached stays with it). The child also runs the
  :class:`~tradewire.store._group_commit.Checkpointer`.
* Acknowledged means durable, as with the thread: the reply is sent after
  ``COMMIT`` returned, and callers are released only on the reply.
* Failure: a batch that fails in the child is rolled back there and fails
  every caller (:class:`~tradewire.errors.StoreError`), as on the thread. If
  the child dies (killed, out of memory), the batch in flight fails the same
  way (nothing of it was acknowledged; a commit it finished anyway makes the
  resend a duplicate, stored once) and the next batch starts a new child.
  If the parent dies, the child reads end-of-file and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final, cast

import msgspec

from tradewire.errors import StoreError
from tradewire.store import AppendResult, Durability, Projector, Record, Refusal, StoredRecord
from tradewire.store._group_commit import (
    BatchWriter,
    Checkpointer,
    MetaWrite,
    PendingAppend,
    Settle,
    _resolve,
    drain,
    fail_metas,
    resolve_metas,
)

__all__ = ["ProcessWriter", "WriterConfig"]

log = logging.getLogger("tradewire.store")


class WriterConfig(msgspec.Struct, frozen=True):
    """What the child needs to open the write connection (sent pickled, once)."""

    path: str
    durability: Durability
    busy_timeout: float


class _Batch(msgspec.Struct, array_like=True):
    records: list[Record]
    metas: list[tuple[str, str]]


class _Outcome(msgspec.Struct, array_like=True):
    """One record's result: its seq; the stored row when a duplicate; a refusal."""

    seq: int
    duplicate: bool
    stored: StoredRecord | None = None
    refusal: Refusal | None = None


class _Reply(msgspec.Struct, array_like=True):
    outcomes: list[_Outcome]
    error: str | None = None
    error_type: str = ""  # the class name of an sqlite3 error, raised again in the parent


def _plain_bytes(value: object) -> bytes:
    """A body that also carries its decoded value (``DecodedBody``) crosses as its bytes."""
    if isinstance(value, bytes):
        return bytes(value)
    raise TypeError(f"cannot send {type(value).__name__} to the store writer process")


_BATCH_ENCODER: Final = msgspec.msgpack.Encoder(enc_hook=_plain_bytes)
_REPLY_DECODER: Final = msgspec.msgpack.Decoder(_Reply)
_BATCH_DECODER: Final = msgspec.msgpack.Decoder(_Batch)
_STOP: Final = b""


class ProcessWriter:
    """The parent's side: the same interface as the thread writer (see module docs).

    Everything here runs on the event loop: a batch is sent when the store
    wakes the writer (once per loop iteration) and no batch is in flight, and
    the reply is read when the loop sees the link readable. No thread sits
    between the loop and the child, so an append costs the same wake-ups as
    with the thread writer: the child's, then the loop's.
    """

    def __init__(
        self,
        config: WriterConfig,
        loop: asyncio.AbstractEventLoop,
        settle: Settle,
        projectors: Sequence[Projector] = (),
    ) -> None:
        self._config = config
        self._projectors = tuple(projectors)
        self._loop = loop
        self._settle = settle
        self._appends: deque[PendingAppend] = deque()
        self._metas: deque[MetaWrite] = deque()
        self._in_flight: tuple[list[PendingAppend], list[MetaWrite], list[Record]] | None = None
        self._send_scheduled = False
        self._stopping = False
        self._child: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None  # the child's end: handed to the loop by listen()
        self._link: _Link | None = None
        self._spawning: asyncio.Future[None] | None = None
        self.children = 0
        """Child processes started so far (a new one after a child died)."""
        self.stopped: asyncio.Future[None] = loop.create_future()
        """Resolved on the loop once the child has exited."""

    def start(self) -> None:
        """Start the child, blocking until it has opened the database (off the loop)."""
        self._spawn()

    async def listen(self) -> None:
        """On the loop, after :meth:`start`: the link to the child as an asyncio transport.

        Sends never block the loop (the transport buffers what the socket does
        not take at once) and replies are read as they arrive.
        """
        sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.setblocking(False)
        _, self._link = await self._loop.connect_accepted_socket(
            lambda: _Link(self._on_reply, self._on_lost), sock
        )

    def submit(self, item: PendingAppend) -> None:
        """Queue one caller's records; see ``GroupCommitWriter.submit``."""
        self._appends.append(item)

    def wake(self) -> None:
        """Send everything queued so far, unless a batch is in flight (then on its reply)."""
        self._send_next()

    def submit_meta(self, item: MetaWrite) -> None:
        """Queue a metadata write; it commits with the next batch."""
        self._metas.append(item)
        if not self._send_scheduled:  # with the appends of this loop iteration
            self._send_scheduled = True
            self._loop.call_soon(self._send_next)

    def stop(self) -> None:
        """Commit what is queued, then stop the child."""
        self._stopping = True
        self._send_next()

    @property
    def queued(self) -> int:
        """Records submitted but not yet taken into a batch."""
        return sum(len(records) for records, _ in self._appends)

    @property
    def child_pid(self) -> int | None:
        """The current child's process id (``None`` before start or after it died)."""
        return self._child.pid if self._child is not None else None

    # -- on the loop -----------------------------------------------------

    def _send_next(self) -> None:
        self._send_scheduled = False
        if self._in_flight is not None or self._spawning is not None or self.stopped.done():
            return
        if not self._appends and not self._metas:
            if self._stopping:
                self._loop.create_task(self._shut_down())
            return
        if self._link is None:  # the last child died: start another, then send
            self._respawn()
            return
        appends, metas = drain(self._appends, self._metas)
        records = [r for recs, _ in appends for r in recs]
        batch = _Batch(records, [(name, value) for name, value, _ in metas])
        self._in_flight = (appends, metas, records)
        self._link.send(_BATCH_ENCODER.encode(batch))

    def _on_reply(self, message: bytes) -> None:
        in_flight = self._in_flight
        try:
            reply = _REPLY_DECODER.decode(message)
        except msgspec.DecodeError as exc:
            self._child_gone(exc)
            return
        if in_flight is None:  # nothing asked: a confused child, start afresh
            self._child_gone(StoreError("the store writer process replied out of turn"))
            return
        self._in_flight = None
        appends, metas, records = in_flight
        if reply.error is not None:
            self._settle_failed(appends, metas, _error(reply))
        else:
            results = [_result(r, o) for r, o in zip(records, reply.outcomes, strict=True)]
            self._settle(appends, results)
            resolve_metas(metas)
        self._send_next()  # what queued up meanwhile: one batch, as with the thread

    def _on_lost(self, exc: BaseException | None) -> None:
        if self._link is not None:  # not closed by us: the child went away
            self._child_gone(exc or EOFError("end of file"))

    def _settle_failed(
        self, appends: list[PendingAppend], metas: list[MetaWrite], exc: BaseException
    ) -> None:
        self._settle(appends, exc)
        fail_metas(metas, exc)

    def _child_gone(self, exc: BaseException) -> None:
        """The link broke: fail the batch in flight; the next batch starts a new child."""
        code = self._forget_child()
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            error = StoreError(f"the store writer process exited ({code}): {exc}")
            self._settle_failed(in_flight[0], in_flight[1], error)
        log.warning("store writer process gone (exit code %s): %s", code, exc)
        self._send_next()

    def _forget_child(self) -> int | None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
        child, self._child = self._child, None
        if child is None:
            return None
        code = child.poll()
        if code is None:  # not reaped yet (or stuck): wait for it off the loop
            self._loop.run_in_executor(None, _wait, child)
        return code

    def _respawn(self) -> None:
        self._spawning = spawning = self._loop.run_in_executor(None, self._spawn)
        spawning.add_done_callback(self._spawned)

    def _spawned(self, spawning: asyncio.Future[None]) -> None:
        exc = spawning.exception()
        if exc is not None:  # fail what waits; the next wake tries again
            self._spawning = None
            appends, metas = drain(self._appends, self._metas)
            self._settle_failed(appends, metas, exc)
            return
        self._loop.create_task(self._listen_then_send())

    async def _listen_then_send(self) -> None:
        try:
            await self.listen()
        finally:
            self._spawning = None
        self._send_next()

    async def _shut_down(self) -> None:
        if self.stopped.done():
            return
        if self._link is not None:
            self._link.send(_STOP)
        child, self._child = self._child, None
        self._forget_child()
        if child is not None:
            code = await self._loop.run_in_executor(None, _wait, child)
            if code != 0:
                log.warning("store writer process exited with code %s", code)
        _resolve(self.stopped)

    # -- off the loop ----------------------------------------------------

    def _spawn(self) -> None:
        """Start a child and hand it the config and projectors; return once it is ready."""
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "tradewire.store._writer_process", str(theirs.fileno())]
        try:
            child = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        handshake = Connection(os.dup(ours.fileno()))  # blocking, on this thread
        try:
            handshake.send_bytes(pickle.dumps((self._config, self._projectors)))
            ready = handshake.recv_bytes()  # the child opened the database (or says why not)
        except (OSError, EOFError) as exc:
            ready = f"the store writer process did not start: {exc}".encode()
        finally:
            handshake.close()
        if ready:
            ours.close()
            _wait(child)
            raise StoreError(ready.decode())
        self._child, self._sock = child, ours
        self.children += 1


class _Link(asyncio.Protocol):
    """The parent's end of the link: messages framed as ``multiprocessing.connection`` does.

    A 4-byte big-endian signed length, then the message (the child reads and
    writes with a blocking :class:`~multiprocessing.connection.Connection`).
    """

    def __init__(
        self,
        on_message: Callable[[bytes], None],
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def send(self, message: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.writelines((_HEADER.pack(len(message)), message))

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            end = _HEADER.size + size
            if len(buffer) < end:
                return
            message = bytes(buffer[_HEADER.size : end])
            del buffer[:end]
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._transport = None
            self._on_lost(exc)


_HEADER: Final = struct.Struct("!i")


def _wait(child: subprocess.Popen[bytes]) -> int:
    try:
        return child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _error(reply: _Reply) -> Exception:
    """The child's exception as the thread writer would have raised it (sqlite3's own class)."""
    cls = getattr(sqlite3, reply.error_type, None)
    if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
        return cls(reply.error)
    return StoreError(reply.error)


def _result(record: Record, outcome: _Outcome) -> AppendResult:
    """The caller's result; a committed record is the caller's own object, stored."""
    stored = outcome.stored if outcome.stored is not None else record.stored(outcome.seq)
    return AppendResult(stored, outcome.duplicate, outcome.refusal)


# -- the child ----------------------------------------------------------------


def _outcome(result: AppendResult) -> _Outcome:
    record = result.record
    return _Outcome(
        seq=record.seq,
        duplicate=result.duplicate,
        stored=record if result.duplicate else None,  # else the parent has it already
        refusal=result.refusal,
    )


def _open(config: WriterConfig) -> sqlite3.Connection:
    from tradewire.store.sqlite import configure_writer, connect

    conn = connect(Path(config.path), config.busy_timeout)
    configure_writer(conn, config.durability)
    return conn


def serve(link: Connection) -> None:
    """The child's loop: one batch in, one reply out, until told to stop or end of file."""
    config, projectors = pickle.loads(link.recv_bytes())
    try:
        conn = _open(config)
    except Exception as exc:  # tell the parent why, then exit
        link.send_bytes(f"cannot open the store in the writer process: {exc}".encode())
        return
    checkpointer = Checkpointer(lambda: _open_reader(config))
    checkpointer.start()
    writer = BatchWriter(conn, projectors, checkpointer.committed)
    link.send_bytes(b"")
    try:
        while True:
            try:
                message = link.recv_bytes()
            except EOFError:  # the parent is gone
                return
            if message == _STOP:
                return
            batch = _BATCH_DECODER.decode(message)
            records = batch.records
            try:
                results = writer.commit(records, batch.metas)
            except Exception as exc:  # rolled back: every caller of the batch hears of it
                name = type(exc).__name__ if isinstance(exc, sqlite3.Error) else ""
                reply = _Reply([], error=str(exc), error_type=name)
                link.send_bytes(_BATCH_ENCODER.encode(reply))
                continue
            link.send_bytes(_BATCH_ENCODER.encode(_Reply([_outcome(r) for r in results])))
    finally:
        checkpointer.stop()
        conn.close()


def _open_reader(config: WriterConfig) -> sqlite3.Connection:
    from tradewire.store.sqlite import connect

    return connect(Path(config.path), config.busy_timeout)


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    """Entry point of the child: ``python -m tradewire.store._writer_process FD``.

    SIGINT and SIGTERM are ignored: a Ctrl-C in the terminal, or a service
    manager signalling the whole group, reaches the gateway too, and the
    gateway's graceful stop still needs its writer to commit what it admitted.
    The child exits when the gateway says so, or when the gateway is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    link = Connection(int(argv[0]))
    try:
        serve(link)
    finally:
        link.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
