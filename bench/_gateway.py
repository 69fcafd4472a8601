"""A real ``tradewire serve`` subprocess for the benchmarks.

Each benchmark that measures the gateway starts its own process on a fresh
temporary data directory and ephemeral ports, exactly as an operator would
run it, and stops it with SIGTERM afterwards. Helpers here also mint session
tokens from the data directory's secret (as ``tradewire token`` does,
without one CLI process per user) and read a process's resident memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tradewire.auth import SessionTokens, load_or_create_secret

__all__ = ["Gateway", "raise_nofile", "rss_kib", "running_gateway"]

READY = re.compile(r"^tradewire ready http=(\S+) zmq_sub=(\S+) zmq_router=(\S+)$")
_STDERR_KEEP = 200


@dataclass
class Gateway:
    """A running gateway subprocess and where it listens."""

    proc: subprocess.Popen[str]
    data_dir: Path
    http: str
    zmq_sub: str
    zmq_router: str
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://", 1)

    def session_url(self, user_id: str, query: str = "") -> str:
        """A ``/ws/session`` URL with a fresh token for ``user_id``."""
        tokens = SessionTokens(load_or_create_secret(self.data_dir))
        token = tokens.issue(user_id, now=int(time.time()), ttl_seconds=3600)
        return f"{self.ws}/ws/session?token={token}{query}"

    def session_urls(self, user_ids: list[str], query: str = "") -> list[str]:
        """Many session URLs at once (one secret read)."""
        tokens = SessionTokens(load_or_create_secret(self.data_dir))
        now = int(time.time())
        return [
            f"{self.ws}/ws/session?token={tokens.issue(u, now=now, ttl_seconds=3600)}{query}"
            for u in user_ids
        ]

    def rss_kib(self) -> int:
        return rss_kib(self.pid)


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's soft RLIMIT_NOFILE (to the hard limit by default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None or hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target == resource.RLIM_INFINITY:
        target = 1 << 20
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))
        if len(sink) > _STDERR_KEEP:
            del sink[: len(sink) - _STDERR_KEEP]


def _read_ready(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0].rstrip("\n") if result else ""


def _preexec(nofile: int | None) -> Callable[[], None] | None:
    if nofile is None:
        return None

    def raise_limit() -> None:
        raise_nofile(nofile)

    return raise_limit


@contextlib.contextmanager
def running_gateway(
    durability: Literal["fsync", "os"] = "fsync",
    *,
    nofile: int | None = None,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    """Start ``tradewire serve`` on a fresh data dir and ephemeral ports; stop it after."""
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        data_dir = Path(tmp)
        load_or_create_secret(data_dir)  # before the gateway, so both read one secret
        args = [
            sys.executable, "-m", "tradewire", "serve", "--data-dir", str(data_dir),
            "--http-port", "0", "--zmq-sub-port", "0", "--zmq-router-port", "0",
            "--durability", durability,
        ]  # fmt: skip
        env = {**os.environ, "TRADEWIRE_LOG_FORMAT": "json", **(env or {})}
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_preexec(nofile),
        )
        stderr: list[str] = []
        threading.Thread(target=_pump, args=(proc.stderr, stderr), daemon=True).start()
        try:
            match = READY.match(_read_ready(proc, timeout))
            if match is None:
                raise RuntimeError("gateway did not get ready:\n" + "\n".join(stderr[-20:]))
            threading.Thread(target=_pump, args=(proc.stdout, []), daemon=True).start()
            yield Gateway(proc, data_dir, *match.groups(), stderr_tail=stderr)
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
