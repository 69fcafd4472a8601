"""Run a real ``tradewire serve`` process for integration tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"^tradewire ready http=(\S+) zmq_sub=(\S+) zmq_router=(\S+)$")


@dataclass
class GatewayProcess:
    """A running gateway subprocess and where it listens."""

    proc: subprocess.Popen[str]
    data_dir: Path
    http: str
    zmq_sub: str
    zmq_router: str
    stderr_lines: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://", 1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.close_pipes()
        return code

    def close_pipes(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


@contextmanager
def running_gateway(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[GatewayProcess]:
    """Start ``tradewire serve`` on ephemeral ports; stop it with SIGTERM after."""
    proc = start_gateway(data_dir, *extra, env=env, timeout=timeout)
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop()
        proc.close_pipes()


def start_gateway(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> GatewayProcess:
    """Start the gateway and return once it printed its ready line."""
    args = [
        sys.executable, "-m", "tradewire", "serve", "--data-dir", str(data_dir),
        "--http-port", "0", "--zmq-sub-port", "0", "--zmq-router-port", "0", *extra,
    ]  # fmt: skip
    full_env = {**os.environ, "TRADEWIRE_LOG_FORMAT": "json", **(env or {})}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
    )
    stderr: list[str] = []
    err_thread = threading.Thread(target=_pump, args=(proc.stderr, stderr), daemon=True)
    err_thread.start()
    line = _read_ready(proc, timeout)
    match = READY.match(line)
    if match is None:
        proc.kill()
        proc.wait()
        err_thread.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        raise AssertionError(f"gateway did not get ready: {line!r}\n" + "\n".join(stderr))
    out_thread = threading.Thread(target=_pump, args=(proc.stdout, []), daemon=True)
    out_thread.start()
    return GatewayProcess(
        proc, data_dir, *match.groups(), stderr_lines=stderr, threads=[err_thread, out_thread]
    )


def _read_ready(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0].rstrip("\n") if result else ""


def run_cli(
    *args: str, data_dir: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tradewire ARGS`` to completion."""
    cmd: Sequence[str] = [sys.executable, "-m", "tradewire", *args]
    if data_dir is not None:
        cmd = [*cmd, "--data-dir", str(data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def lines_until_kill(
    child: subprocess.Popen[str], count: int, kill_pid: int, timeout: float = 60.0
) -> list[str]:
    """Every complete stdout line of ``child``; ``kill_pid`` gets SIGKILL after ``count`` lines.

    The rest is read through the same file object until the child exits: ``communicate()``
    reads the raw descriptor and would skip what the text wrapper had already buffered, leaving
    a line cut in two. A line without its newline was cut by a kill and is dropped. ``child`` is
    killed if it is still running after ``timeout`` seconds.
    """
    assert child.stdout is not None
    watchdog = threading.Timer(timeout, child.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        for line in child.stdout:
            lines.append(line)
            if len(lines) == count:
                os.kill(kill_pid, signal.SIGKILL)
        child.wait()
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    return [line.rstrip("\n") for line in lines if line.endswith("\n")]
