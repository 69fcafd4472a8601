"""Notification channels: notifications/s per HTTP channel, and a Telegram burst.

Throughput. Each channel adapter (Telegram, Discord, Slack, signed webhook,
Apprise)
sends ORDER_FILLED events to its loopback server from ``tests/loopback``
(real uvicorn + Starlette apps speaking the documented API shapes, in the
same process and event loop as the sender), ``CONCURRENCY`` sends in flight,
one user per event so no per-recipient pacing applies (Telegram's limits are
lifted for this row; the burst below measures them). Every send renders the
Jinja2 templates, looks the user up, encodes the documented JSON body,
POSTs it and classifies the reply. The baseline is a bare ``httpx`` POST of
a fixed small JSON body to the same kind of server: the ratio is what the
adapter's work costs on top of the HTTP round trip. The peer a user would
otherwise pick is Apprise, used directly (``Apprise.notify`` per event in a
thread pool) against the same ``json://`` endpoint as our Apprise channel.

Burst. 50 events to ONE Telegram chat at once (two of them CRITICAL, queued
behind NORMAL ones), the fake Bot API answering 429 to any message closer
than the per-chat interval to the previous one. Reported: drain time against
the minimum the limit allows (49 intervals), messages delivered and dropped,
429s seen, and where the CRITICAL messages landed. The per-chat interval is
Telegram's 1 s in a full run and 20 ms with ``--quick``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import msgspec
from rich.progress import Progress

from bench._harness import Row, Section, progress, rate
from tests.loopback.discord_api import FakeDiscord
from tests.loopback.json_sink import FakeJsonSink
from tests.loopback.slack_api import FakeSlack
from tests.loopback.telegram_api import TOKEN, FakeTelegram
from tests.loopback.webhook_receiver import SECRET, FakeReceiver
from tradewire.channels import InMemoryDirectory, UserProfile
from tradewire.channels.apprise_channel import AppriseChannel, apprise
from tradewire.channels.discord import DiscordChannel
from tradewire.channels.slack import SlackChannel
from tradewire.channels.telegram import TelegramBotApi, TelegramChannel
from tradewire.channels.templates import TemplateRenderer
from tradewire.channels.webhook import WebhookChannel
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import Channel, Delivered, RateLimit
from tradewire.wire import EventType

__all__ = ["run"]

CONCURRENCY = 32
BURST = 50
CRITICAL_AT = (17, 41)
_RENDERER = TemplateRenderer()
_UNLIMITED = RateLimit(1_000_000, 1_000)
_BASELINE = "bare httpx POST"


def _event(n: int, user: str, priority: Priority = Priority.NORMAL) -> Event:
    payload = {
        "order_id": f"ord-{n}",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "0.1",
        "fill_price": "45000.10",
        "fill_quantity": "0.1",
        "exchange": "binance",
        "timestamp": 1_767_444_060_000,
    }
    body = msgspec.json.encode(payload)
    return Event(f"evt-{n}", user, EventType.ORDER_FILLED, priority, payload=body)


@dataclass
class _Contender:
    name: str
    note: str
    rig: Callable[[int], AbstractAsyncContextManager[tuple[Channel, list[str]]]]


@asynccontextmanager
async def _telegram(users: int) -> AsyncIterator[tuple[Channel, list[str]]]:
    chats = tuple(10_000 + n for n in range(users))
    names = [f"u{n}" for n in range(users)]
    directory = InMemoryDirectory(
        UserProfile(u, telegram_chat_id=str(c)) for u, c in zip(names, chats, strict=True)
    )
    async with (
        FakeTelegram(chats=chats) as fake,
        TelegramBotApi(TOKEN, api_base=fake.base_url) as api,
        TelegramChannel(api, directory, _RENDERER, per_chat=_UNLIMITED, overall=_UNLIMITED) as ch,
    ):
        yield ch, names


@asynccontextmanager
async def _discord(users: int) -> AsyncIterator[tuple[Channel, list[str]]]:
    names = [f"u{n}" for n in range(users)]
    async with FakeDiscord() as fake:
        directory = InMemoryDirectory(UserProfile(u, discord_webhook_url=fake.url()) for u in names)
        async with DiscordChannel(directory, _RENDERER) as channel:
            yield channel, names


@asynccontextmanager
async def _slack(users: int) -> AsyncIterator[tuple[Channel, list[str]]]:
    names = [f"u{n}" for n in range(users)]
    async with FakeSlack() as fake:
        directory = InMemoryDirectory(UserProfile(u, slack_webhook_url=fake.url()) for u in names)
        async with SlackChannel(directory, _RENDERER) as channel:
            yield channel, names


@asynccontextmanager
async def _apprise(users: int) -> AsyncIterator[tuple[Channel, list[str]]]:
    names = [f"u{n}" for n in range(users)]
    async with FakeJsonSink() as fake:
        url = f"json://127.0.0.1:{fake.port}/hooks/user"
        directory = InMemoryDirectory(UserProfile(u, apprise_url=url) for u in names)
        kind = ChannelType.DISCORD
        async with AppriseChannel(
            directory, _RENDERER, channel_type=kind, max_threads=CONCURRENCY
        ) as ch:
            yield ch, names


@asynccontextmanager
async def _webhook(users: int) -> AsyncIterator[tuple[Channel, list[str]]]:
    names = [f"u{n}" for n in range(users)]
    async with FakeReceiver() as fake:
        directory = InMemoryDirectory(UserProfile(u, webhook_url=fake.url(u)) for u in names)
        kind = ChannelType.SLACK
        async with WebhookChannel(directory, _RENDERER, channel_type=kind, secret=SECRET) as ch:
            yield ch, names


CONTENDERS = [
    _Contender("telegram", "sendMessage, parse_mode=HTML; limits lifted", _telegram),
    _Contender("discord", "execute webhook ?wait=true, content + embed", _discord),
    _Contender("slack", "incoming webhook, text + blocks", _slack),
    _Contender("webhook (signed)", "JSON + HMAC-SHA256; receiver verifies", _webhook),
    _Contender(
        "apprise json://", "tradewire's Apprise channel: Apprise.notify in threads", _apprise
    ),
]


async def _pump(count: int, send: Callable[[int], object], advance: Callable[[int], None]) -> float:
    """Run ``send(n)`` for n < count, CONCURRENCY at a time; seconds taken."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await send(n)  # type: ignore[misc]
            advance(1)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def _channel_rate(contender: _Contender, count: int, advance: Callable[[int], None]) -> float:
    async with contender.rig(CONCURRENCY * 4) as (channel, users):
        await channel.send(_event(-1, users[0]), 1)  # warm: templates compiled, connection open
        failures: list[object] = []

        async def send(n: int) -> None:
            outcome = await channel.send(_event(n, users[n % len(users)]), 1)
            if not isinstance(outcome, Delivered):
                failures.append(outcome)

        elapsed = await _pump(count, send, advance)
    if failures:
        raise RuntimeError(f"{contender.name}: {len(failures)} sends failed, e.g. {failures[0]}")
    return rate(count, elapsed)


async def _apprise_peer_rate(count: int, advance: Callable[[int], None]) -> float:
    """Apprise used directly, as a user would without tradewire: one notify per event."""
    async with FakeJsonSink() as fake:
        url = f"json://127.0.0.1:{fake.port}/hooks/user"
        message = _RENDERER.render(_event(0, "u"))
        pool = ThreadPoolExecutor(max_workers=CONCURRENCY)

        def notify() -> None:
            sender = apprise.Apprise()
            sender.add(url)
            if not sender.notify(body=message.text, title=message.title):
                raise RuntimeError("apprise peer: a notification failed")

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, notify)

        async def send(n: int) -> None:
            await loop.run_in_executor(pool, notify)

        try:
            elapsed = await _pump(count, send, advance)
        finally:
            pool.shutdown(wait=True)
    return rate(count, elapsed)


async def _baseline_rate(count: int, advance: Callable[[int], None]) -> float:
    body = b'{"content":"BUY 0.1 BTCUSDT filled at 45000.10 on binance"}'
    async with FakeDiscord() as fake, httpx.AsyncClient() as client:
        url = fake.url() + "?wait=true"
        await client.post(url, content=body, headers={"content-type": "application/json"})

        async def send(n: int) -> None:
            response = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
            response.raise_for_status()

        elapsed = await _pump(count, send, advance)
    return rate(count, elapsed)


def _throughput(quick: bool, bar: Progress) -> Section:
    count = 300 if quick else 3_000
    rows: list[Row] = []
    task = bar.add_task(_BASELINE, total=count)
    per_s = asyncio.run(_baseline_rate(count, lambda n: bar.advance(task, n)))
    rows.append(Row(_BASELINE, {"notifications/s": per_s}, "fixed 60-byte JSON, no adapter"))
    for contender in CONTENDERS:
        task = bar.add_task(contender.name, total=count)
        per_s = asyncio.run(_channel_rate(contender, count, lambda n, t=task: bar.advance(t, n)))
        rows.append(Row(contender.name, {"notifications/s": per_s}, contender.note))
    task = bar.add_task("apprise, used directly", total=count)
    per_s = asyncio.run(_apprise_peer_rate(count, lambda n: bar.advance(task, n)))
    note = f"peer: Apprise.notify to the same json:// endpoint, {CONCURRENCY} threads"
    rows.append(Row("apprise (peer), used directly", {"notifications/s": per_s}, note))
    return Section(
        title="Notification channels: notifications/s against loopback servers",
        columns=["notifications/s"],
        rows=rows,
        baseline=_BASELINE,
        ratio_of="notifications/s",
        intro=(
            f"{count:,} ORDER_FILLED events per channel, {CONCURRENCY} sends in flight, "
            "server and sender in one process and event loop (the server's work is in every "
            "row). Each adapter send = directory lookup + Jinja2 render of six formats + "
            "documented JSON body + POST + reply classification."
        ),
    )


@dataclass
class _BurstResult:
    drain_s: float
    delivered: int
    floods: int
    critical_positions: list[int]


async def _burst(interval_ms: int, advance: Callable[[int], None]) -> _BurstResult:
    chat = 1001
    directory = InMemoryDirectory([UserProfile("trader", telegram_chat_id=str(chat))])
    per_chat = RateLimit(1, interval_ms)
    async with (
        FakeTelegram(chats=(chat, 1002), min_interval_s=interval_ms / 1000) as fake,
        TelegramBotApi(TOKEN, api_base=fake.base_url) as api,
        TelegramChannel(api, directory, _RENDERER, per_chat=per_chat) as channel,
    ):
        await api.send_message("1002", "warm-up")
        events = [
            _event(n, "trader", Priority.CRITICAL if n in CRITICAL_AT else Priority.NORMAL)
            for n in range(BURST)
        ]

        async def send(event: Event) -> object:
            outcome = await channel.send(event, 1)
            advance(1)
            return outcome

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(send(e) for e in events))
        drain = time.perf_counter() - started
    sent = [s for s in fake.sent if s.chat_id == chat]
    order = [int(s.text.split("ord-")[1].split("\n")[0]) for s in sent]
    return _BurstResult(
        drain_s=drain,
        delivered=sum(isinstance(o, Delivered) for o in outcomes),
        floods=fake.floods,
        critical_positions=[order.index(n) + 1 for n in CRITICAL_AT if n in order],
    )


def _burst_section(quick: bool, bar: Progress) -> Section:
    interval_ms = 20 if quick else 1_000
    task = bar.add_task(f"telegram burst, 1 msg / {interval_ms} ms", total=BURST)
    result = asyncio.run(_burst(interval_ms, lambda n: bar.advance(task, n)))
    floor_s = (BURST - 1) * interval_ms / 1000
    row = Row(
        "tradewire TelegramChannel",
        {
            "drain s": result.drain_s,
            "minimum s": floor_s,
            "drain / minimum": result.drain_s / floor_s,
            "delivered": float(result.delivered),
            "dropped": float(BURST - result.delivered),
            "429s": float(result.floods),
            "CRITICAL at": ", ".join(str(p) for p in result.critical_positions),
        },
        f"per-chat limit 1 message / {interval_ms} ms; CRITICAL were events {CRITICAL_AT}",
    )
    ok = (
        result.delivered == BURST
        and result.floods == 0
        and result.critical_positions == [1, 2]
        and result.drain_s >= floor_s
    )
    verdict = "holds" if ok else "does NOT hold"
    return Section(
        title="Telegram: a burst of 50 events to one chat",
        columns=[
            "drain s",
            "minimum s",
            "drain / minimum",
            "delivered",
            "dropped",
            "429s",
            "CRITICAL at",
        ],
        rows=[row],
        intro=(
            f"{BURST} ORDER_FILLED events for one chat sent at once; events {CRITICAL_AT} are "
            "CRITICAL. The fake Bot API answers 429 to a message that comes sooner than the "
            "per-chat interval after the previous one."
        ),
        conclusions=[
            f"Target (all {BURST} delivered, no 429, CRITICAL first, never faster than the "
            f"limit) {verdict}: drain {result.drain_s:.2f} s for a {floor_s:.2f} s minimum."
        ],
    )


def run(quick: bool) -> list[Section]:
    """Channel throughput and the Telegram burst."""
    with progress() as bar:
        return [_throughput(quick, bar), _burst_section(quick, bar)]
