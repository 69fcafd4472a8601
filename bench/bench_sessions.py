"""Server memory per open idle live session, next to a plain ``websockets`` server.

For each server and each count N, a fresh server process is started (the
gateway with ``tradewire serve`` on a fresh data dir; the reference is a
``websockets`` asyncio echo server on uvloop, as the gateway runs), warmed up
with a few sessions opened and closed, and its resident memory (``VmRSS`` of
``/proc/<pid>/status``) read. Client processes (websockets' asyncio client,
``compression=None``, no keepalive pings, up to 2,500 connections each) then
open N connections (for the gateway: ``/ws/session?token=T``, one user
each) and hold them idle; once the server's RSS has settled it is read
again. Memory per session = (RSS after - RSS before) / N. Both server and
client processes raise ``RLIMIT_NOFILE`` to the hard limit.

The gateway does not offer permessage-deflate on ``/ws/session`` (see
docs/concepts/architecture.md): with it offered and negotiated by the
client, an idle session measured 45 KiB here at 1,000 sessions, against 12
KiB without.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rich.progress import Progress

from bench._gateway import raise_nofile, rss_kib, running_gateway
from bench._harness import Row, Section, progress
from bench._peers import run_async

__all__ = ["run"]

_PER_CLIENT = 2_500
_CONCURRENT_HANDSHAKES = 64
_TARGET_KIB = 16
_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class _Server:
    """A server under test: its pid, URLs for N sessions, and how many it counts open."""

    pid: int
    urls: Callable[[int], list[str]]
    open_sessions: Callable[[], int | None]


# -- client processes ----------------------------------------------------------------------


def _hold_sessions(urls: list[str], conn: Connection) -> None:
    """Child process: open every URL, report, hold them idle until told to stop."""
    raise_nofile()
    run_async(_hold(urls, conn))
    os._exit(0)  # no graceful close of thousands of sockets: the kernel resets them


async def _hold(urls: list[str], conn: Connection) -> None:
    import websockets

    slots = asyncio.Semaphore(_CONCURRENT_HANDSHAKES)
    errors: list[str] = []
    held: list[Any] = []

    async def open_one(url: str) -> None:
        async with slots:
            try:
                held.append(
                    await websockets.connect(
                        url, compression=None, ping_interval=None, open_timeout=60
                    )
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(open_one(u) for u in urls))
    conn.send((len(held), errors[:1]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
    await stop.wait()


@contextmanager
def _clients(urls: list[str], advance: Callable[[int], None]) -> Iterator[tuple[int, list[str]]]:
    """Spread ``urls`` over client processes; yield (opened, first errors) once all report."""
    pipes: list[Connection] = []
    procs = []
    for start in range(0, len(urls), _PER_CLIENT):
        here, there = _SPAWN.Pipe()
        proc = _SPAWN.Process(
            target=_hold_sessions, args=(urls[start : start + _PER_CLIENT], there)
        )
        proc.start()
        pipes.append(here)
        procs.append(proc)
    try:
        opened, errors = 0, []
        for here in pipes:
            if not here.poll(180):
                raise RuntimeError("a client process did not report")
            n, errs = here.recv()
            opened, errors = opened + n, errors + errs
            advance(n)
        yield opened, errors
    finally:
        for here in pipes:
            with contextlib.suppress(OSError):
                here.send("stop")
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()


# -- servers ------------------------------------------------------------------------------------


@contextmanager
def _tradewire() -> Iterator[_Server]:
    with running_gateway("fsync", nofile=1 << 20) as gw:

        def urls(n: int) -> list[str]:
            return gw.session_urls([f"user-{i}" for i in range(n)])

        def open_sessions() -> int | None:
            with urllib.request.urlopen(f"{gw.http}/metrics", timeout=10) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith("tradewire_live_sessions "):
                        return int(float(line.split()[1]))
            return None

        yield _Server(gw.pid, urls, open_sessions)


def _echo_server(conn: Connection) -> None:
    """Child process: a plain ``websockets`` echo server on an ephemeral port."""
    raise_nofile()
    run_async(_serve_echo(conn))


async def _serve_echo(conn: Connection) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # clients leave without a close frame
            async for message in ws:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        conn.send(next(iter(server.sockets)).getsockname()[1])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
        await stop.wait()


@contextmanager
def _websockets_echo() -> Iterator[_Server]:
    here, there = _SPAWN.Pipe()
    proc = _SPAWN.Process(target=_echo_server, args=(there,))
    proc.start()
    try:
        if not here.poll(30):
            raise RuntimeError("echo server did not start")
        port = here.recv()
        yield _Server(proc.pid, lambda n: [f"ws://127.0.0.1:{port}/"] * n, lambda: None)
    finally:
        here.send("stop")
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- measurement -------------------------------------------------------------------------------


def _settled_rss(pid: int, timeout: float = 10.0) -> int:
    """RSS once two reads 0.5 s apart differ by less than 0.5% (or at ``timeout``)."""
    last = rss_kib(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) <= 0.005 * last:
            return now
        last = now
    return last


def _measure(server: _Server, n: int, bar: Progress, label: str) -> Row:
    with _clients(server.urls(16), lambda _n: None):  # warm-up: imports, first allocations
        time.sleep(0.5)
    before = _settled_rss(server.pid)
    task = bar.add_task(label, total=n)
    with _clients(server.urls(n), lambda k: bar.advance(task, k)) as (opened, errors):
        after = _settled_rss(server.pid)
        counted = server.open_sessions()
    bar.remove_task(task)
    per = (after - before) / opened if opened else float("nan")
    note = f"{opened:,} of {n:,} open" + (f", server counted {counted:,}" if counted else "")
    if errors:
        note += f"; first error: {errors[0][:120]}"
    values: dict[str, float | str] = {
        "sessions": float(opened),
        "RSS before MiB": before / 1024,
        "RSS after MiB": after / 1024,
        "KiB per session": per,
    }
    return Row(label, values, note)


_SERVERS: tuple[tuple[str, Callable[[], contextlib.AbstractContextManager[_Server]]], ...] = (
    ("tradewire /ws/session", _tradewire),
    ("websockets echo server", _websockets_echo),
)


def run(quick: bool) -> Section:
    """Memory per idle session at two counts, for the gateway and the reference."""
    raise_nofile()
    counts = (200, 1_000) if quick else (1_000, 10_000)
    rows: list[Row] = []
    with progress() as bar:
        for n in counts:
            for name, start in _SERVERS:
                label = f"{name}, {n:,} sessions"
                try:
                    with start() as server:
                        rows.append(_measure(server, n, bar, label))
                except Exception as exc:
                    rows.append(Row(label, {}, f"failed: {type(exc).__name__}: {exc}"))
    biggest = f"websockets echo server, {counts[-1]:,} sessions"
    section = Section(
        title="Sessions: server memory per open idle session",
        columns=["sessions", "RSS before MiB", "RSS after MiB", "KiB per session"],
        rows=rows,
        baseline=biggest,
        ratio_of="KiB per session",
        lower_is_better=True,
        intro=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    section.conclusions.extend(_verdict(rows, counts[-1]))
    return section


def _verdict(rows: list[Row], n: int) -> list[str]:
    out = []
    for row in rows:
        per = row.values.get("KiB per session")
        if row.name.startswith("tradewire") and isinstance(per, float):
            held = "holds" if per < _TARGET_KIB else "does NOT hold"
            out.append(
                f"Target < {_TARGET_KIB} KiB per session ({row.name}): {held}, {per:.1f} KiB."
            )
    return out
