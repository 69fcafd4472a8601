"""The batching extensions of the gateway's WebSocket protocol, over real sockets.

A real uvicorn server with :class:`LeanWebSocketProtocol` and a real
``websockets`` client:

* ``tradewire.send_texts``: several messages handed over at once arrive as
  that many text messages, in order; once the peer is gone, sending raises
  an ``OSError`` as uvicorn's own ``send`` does.
* ``tradewire.receive_many`` and flow control: a client that sends far more
  than the app takes has the server stop reading (the waiting messages stay
  near ``PAUSE_BYTES``), and then every message arrives once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from tradewire.server._ws_protocol import (
    PAUSE_BYTES,
    RECEIVE_MANY,
    SEND_TEXTS,
    LeanWebSocketProtocol,
)

BATCH = [b'{"n":1}', '{"n":2,"s":"\u00e9"}'.encode(), b"[]"]


class _App:
    """Accepts, sends BATCH with one call, then waits for the client to leave."""

    def __init__(self) -> None:
        self.after_close: BaseException | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        send_texts = scope["extensions"][SEND_TEXTS]
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send_texts(BATCH)
        message = await receive()
        assert message["type"] == "websocket.disconnect"
        try:
            await send_texts([b'{"late":true}'])
        except OSError as exc:
            self.after_close = exc
        self.done.set()


BIG = 10_000  # bytes per message of the flow-control test
COUNT = 2_000  # 20 MB in all: far beyond the socket buffers


class _SlowReader:
    """Lets the client send before taking anything, then takes everything in batches."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.client_sending = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        receive_many = scope["extensions"][RECEIVE_MANY]
        await receive()
        await send({"type": "websocket.accept"})
        await self.client_sending.wait()
        await asyncio.sleep(0.5)  # the client pushes as much as the server reads
        taken = 0
        while taken < COUNT:
            batch = [m["text"] for m in await receive_many()]
            self.batches.append(batch)
            taken += len(batch)
        await send({"type": "websocket.send", "text": "done"})


@contextlib.asynccontextmanager
async def _server(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # the client may connect before uvicorn serves: the kernel queues it
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ws=LeanWebSocketProtocol, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


async def test_several_messages_in_one_call_arrive_one_by_one_and_a_gone_peer_raises() -> None:
    app = _App()
    async with _server(app) as url:
        async with connect(url) as ws:
            received = [await ws.recv() for _ in BATCH]
        await asyncio.wait_for(app.done.wait(), 10)
    assert received == [m.decode() for m in BATCH]
    assert isinstance(app.after_close, OSError)


async def test_reading_pauses_while_the_app_does_not_take_and_nothing_is_lost() -> None:
    app = _SlowReader()
    sent = [f"{n:08d}" + "x" * (BIG - 8) for n in range(COUNT)]
    async with _server(app) as url, connect(url, max_size=None, compression=None) as ws:

        async def push() -> None:
            for text in sent:
                await ws.send(text)

        pushing = asyncio.create_task(push())
        app.client_sending.set()
        assert await asyncio.wait_for(ws.recv(), 60) == "done"
        await pushing
    first = sum(len(m) for m in app.batches[0])
    assert first < PAUSE_BYTES + 512 * 1024 < COUNT * BIG  # one read past the mark at most
    assert [m for batch in app.batches for m in batch] == sent
