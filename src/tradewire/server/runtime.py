"""Lifecycle of one gateway process.

Theory of operation: :class:`Gateway` binds every listening socket *before*
anything is served, so a taken port fails at once with the flag that changes
it, and ``tradewire ready`` is printed only when all of them listen. Serving
is a set of asyncio tasks (the HTTP server and the ZeroMQ pumps). A stop
request (SIGTERM / SIGINT) stops accepting new input, lets in-flight work
finish within ``shutdown_grace_seconds``, closes the store (which commits
what it holds) and returns, so the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import uvicorn
import zmq
import zmq.asyncio

from tradewire.auth import SessionTokens, load_or_create_secret
from tradewire.bridge import IngestBridge, parse_bridge_rules
from tradewire.config import Settings
from tradewire.delivery import ChannelType, DeliveryConfig
from tradewire.errors import PortInUseError
from tradewire.ingest.routing import Hub
from tradewire.ingest.run_analytics import RunAnalyticsCache
from tradewire.projections import all_projectors
from tradewire.server._ws_protocol import LeanWebSocketProtocol
from tradewire.server.app import create_asgi
from tradewire.server.bridge_pump import BridgePump
from tradewire.server.delivery_driver import DeliveryDriver
from tradewire.server.ingest_health import HealthWatch, heartbeat_policy
from tradewire.server.intake_journal import IntakeJournal
from tradewire.server.metrics import GatewayMetrics
from tradewire.server.notifications import (
    TelegramLink,
    build_channels,
    default_channels,
    run_telegram_poller,
)
from tradewire.server.session_ws import SessionHeartbeats
from tradewire.store import Projector
from tradewire.store.sqlite import SqliteStore, open_store

__all__ = ["Gateway", "ListenAddresses", "run_gateway"]

log = logging.getLogger("tradewire.gateway")

ZMQ_QUEUE_DEPTH = 100_000
"""Messages a ZeroMQ socket of the gateway queues per peer (SNDHWM/RCVHWM)."""


@dataclass(frozen=True)
class ListenAddresses:
    """Where a running gateway listens (actual ports, also when 0 was asked)."""

    http: str
    zmq_sub: str
    zmq_router: str

    def as_dict(self) -> dict[str, str]:
        return {"http": self.http, "zmq_sub": self.zmq_sub, "zmq_router": self.zmq_router}

    def ready_line(self) -> str:
        """The one line printed once every socket listens."""
        return (
            f"tradewire ready http={self.http} zmq_sub={self.zmq_sub} zmq_router={self.zmq_router}"
        )


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind_http(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                what="HTTP/WebSocket server", address=f"{host}:{port}", flag="--http-port"
            ) from None
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _bind_zmq(sock: zmq.asyncio.Socket, host: str, port: int, *, what: str, flag: str) -> str:
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    endpoint = f"tcp://{_host_for_url(host)}:{port if port else '*'}"
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(what=what, address=f"{host}:{port}", flag=flag) from None
        raise
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """One tradewire gateway: ZMQ SUB + ROUTER, HTTP + WebSocket, the store.

    Use as an async context manager; ``addresses`` is valid inside it.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self._zctx = zmq.asyncio.Context()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http_sock: socket.socket | None = None
        self._addresses: ListenAddresses | None = None
        self.store: SqliteStore
        self.ingest_hub = Hub()  # platform ingest (#5): connected ingest clients
        self.ingest_health = HealthWatch(self.ingest_hub, heartbeat_policy(settings))  # (#5)
        # one sweep keeps every live session's heartbeat: no timer per session
        self.session_heartbeats = SessionHeartbeats(settings.session_heartbeat_seconds)

    @property
    def addresses(self) -> ListenAddresses:
        if self._addresses is None:
            raise RuntimeError("gateway is not listening")
        return self._addresses

    async def __aenter__(self) -> Self:
        try:
            self._bind_all()
            self.store = await open_store(
                self.settings.data_dir,
                self.settings.durability,
                projectors=self._projectors(),
                writer=self.settings.store_writer,
            )
            self.tokens = SessionTokens(load_or_create_secret(self.settings.data_dir))
            self.notifications = build_channels(self.settings, self.store)  # (#4)
            self.delivery = DeliveryDriver(
                store=self.store,
                router=self.router,
                sub=self.sub,
                metrics=self.metrics,
                config=delivery_config(self.settings, frozenset(self.notifications.channels)),
                channels=self.notifications.channels,
                max_frame_bytes=self.settings.max_frame_bytes,
                journal=self._intake_journal(),
            )
            await self.delivery.restore()
            await self._start_bridge()
        except BaseException:
            self._close_sockets()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.request_stop()
        await self._drain_tasks()
        await self.delivery.close()
        await self.notifications.aclose()
        self._close_sockets()
        await self.store.close()

    def _intake_journal(self) -> IntakeJournal | None:
        """Guaranteed events are acked once in it (docs/concepts/delivery.md#the-intake-journal)."""
        if not self.settings.intake_journal:
            return None
        directory = self.settings.data_dir / "intake"
        return IntakeJournal(directory, sync=self.settings.durability == "fsync")

    def _bind_all(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.sub = self._zctx.socket(zmq.SUB)
        self.router = self._zctx.socket(zmq.ROUTER)
        for sock in (self.sub, self.router):
            sock.setsockopt(zmq.LINGER, 0)
        # One turn of the delivery driver may ack thousands of events to one
        # DEALER: the default SNDHWM (1,000) silently dropped the excess. A deep
        # bound plus ROUTER_MANDATORY makes an ack that still does not fit (or
        # whose peer is gone) a counted ACK_NOT_SENT instead of a silent loss.
        self.router.setsockopt(zmq.SNDHWM, ZMQ_QUEUE_DEPTH)
        self.router.setsockopt(zmq.RCVHWM, ZMQ_QUEUE_DEPTH)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sub.setsockopt(zmq.RCVHWM, ZMQ_QUEUE_DEPTH)  # fast-path bursts wait, not drop
        sub = _bind_zmq(
            self.sub, s.host, s.zmq_sub_port, what="ZeroMQ SUB socket", flag="--zmq-sub-port"
        )
        router = _bind_zmq(
            self.router,
            s.host,
            s.zmq_router_port,
            what="ZeroMQ ROUTER socket",
            flag="--zmq-router-port",
        )
        self._http_sock = _bind_http(s.host, s.http_port)
        port = self._http_sock.getsockname()[1]
        self._addresses = ListenAddresses(
            http=f"http://{_host_for_url(s.host)}:{port}", zmq_sub=sub, zmq_router=router
        )

    async def _start_bridge(self) -> None:
        """Run analytics and the ingest -> user event bridge (#6)."""
        self.run_analytics = RunAnalyticsCache(self.store)
        rules = parse_bridge_rules(self.settings.bridge)
        self.bridge = BridgePump(
            self.store,
            self.delivery.submit,
            IngestBridge(rules),
            self.run_analytics,
            live=self.delivery.sessions.is_active,  # INFORMATIONAL needs a live session
        )
        await self.bridge.start()
        self.ingest_health.change_sinks.append(self.bridge.health_changed)

    def _projectors(self) -> list[Projector]:
        return all_projectors()

    def _close_sockets(self) -> None:
        for name in ("sub", "router"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=0)
        if self._http_sock is not None:
            self._http_sock.close()
        self._zctx.term()

    def request_stop(self) -> None:
        """Ask the gateway to finish in-flight work and stop (idempotent)."""
        self._stop.set()

    async def serve(self) -> None:
        """Serve until :meth:`request_stop`, then shut down gracefully."""
        assert self._http_sock is not None
        config = uvicorn.Config(
            create_asgi(self),
            log_config=None,
            access_log=False,
            lifespan="off",
            ws=LeanWebSocketProtocol,  # uvicorn's websockets-sansio, trimmed for idle sessions
            ws_ping_interval=None,  # the session protocol has its own heartbeats
            # No permessage-deflate: browsers would negotiate it and each connection
            # would then hold two zlib contexts (~46 KiB instead of ~13 KiB per idle
            # socket with plain websockets here), while session messages are small
            # JSON envelopes that ?batch=1 already packs together.
            ws_per_message_deflate=False,
        )
        http = _EmbeddedServer(config)
        self._tasks = [
            asyncio.create_task(http.serve(sockets=[self._http_sock]), name="http"),
            asyncio.create_task(self.delivery.run(), name="delivery"),
            asyncio.create_task(self.delivery.pump_sub(), name="zmq-sub"),
            asyncio.create_task(self.delivery.pump_router(), name="zmq-router"),
            asyncio.create_task(self.session_heartbeats.run(), name="session-heartbeats"),
        ]
        # platform ingest (#5): the heartbeat watch, cancelled with the others on stop
        self._tasks.append(asyncio.create_task(self.ingest_health.run(), name="ingest-health"))
        self._tasks.append(asyncio.create_task(self.bridge.run(), name="ingest-bridge"))  # (#6)
        telegram = self.notifications.telegram
        if telegram is not None and self.settings.telegram_poll:  # (#4) the bot's updates
            active_ms = int(self.settings.telegram_active_minutes * 60_000)
            link = TelegramLink(self.store, self.delivery, active_ms)
            poll = run_telegram_poller(self.settings, telegram, link)
            self._tasks.append(asyncio.create_task(poll, name="telegram-updates"))
        while not http.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        self.metrics.up.set(1)
        self.ready.set()
        await self._stop.wait()
        self.metrics.up.set(0)
        http.should_exit = True
        await self._drain_tasks()

    async def _drain_tasks(self) -> None:
        if not self._tasks:
            return
        grace = self.settings.shutdown_grace_seconds
        _, pending = await asyncio.wait(self._tasks[:1], timeout=grace)
        for task in self._tasks[1:] + list(pending):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def delivery_config(
    settings: Settings, external: frozenset[ChannelType] = frozenset()
) -> DeliveryConfig:
    """The delivery engine's tunables from the process settings.

    ``external`` are the notification channels that have an adapter; the
    live session (``WEB``) always has one.
    """

    def ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    return DeliveryConfig(
        normal_ttl_ms=ms(settings.normal_ttl_seconds),
        ack_timeout_ms=ms(settings.ack_timeout_seconds),
        critical_ack_timeout_ms=ms(settings.critical_ack_timeout_seconds),
        critical_deadline_ms=ms(settings.critical_deadline_seconds),
        default_channels=default_channels(settings),
        enabled_channels=frozenset({ChannelType.WEB}) | external,
    )


GC_THRESHOLDS: Final = (25_000, 20, 20)
"""Cyclic GC thresholds of a running gateway (CPython's default: 700, 10, 10)."""

SWITCH_INTERVAL_S: Final = 0.0005
"""How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).

The store writer gives up the GIL for every SQLite statement and then waits for
the event loop to hand it back; with 5 ms per hand-over a commit under ingest
load spent about half its wall time waiting (see docs/concepts/architecture.md).
"""


def run_gateway(settings: Settings) -> int:
    """Run ``tradewire serve`` in the foreground; the process exit code."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(_serve_forever(settings))
    return uvloop.run(_serve_forever(settings))


async def _serve_forever(settings: Settings) -> int:
    async with Gateway(settings) as gateway:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.request_stop)
        serving = asyncio.create_task(gateway.serve())
        await _announce_when_ready(gateway, serving)
        # Everything loaded at start-up lives as long as the process: keep it out
        # of the cyclic GC's full passes, which the delivery hot path triggers.
        gc.freeze()
        # Messages in flight (a window of 2,048 per ingest connection, events in
        # outboxes) live a few ms to a few hundred: with the default gen-0 threshold
        # (700) each is traversed by several young collections before it dies,
        # about a third of the decode cost. See docs/concepts/architecture.md.
        gc.set_threshold(*GC_THRESHOLDS)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        await serving
        log.info("stopped", extra={"reason": "signal"})
    return 0


async def _announce_when_ready(gateway: Gateway, serving: asyncio.Task[None]) -> None:
    ready = asyncio.create_task(gateway.ready.wait())
    await asyncio.wait([ready, serving], return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if gateway.ready.is_set():
        print(gateway.addresses.ready_line(), flush=True)
        sys.stdout.flush()
        log.info("ready", extra=gateway.addresses.as_dict())
