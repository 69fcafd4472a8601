"""The ``tradewire.send_texts`` extension of the gateway's WebSocket protocol, over real sockets.

A real uvicorn server with :class:`LeanWebSocketProtocol` and a real
``websockets`` client: several messages handed over at once arrive as that
many text messages, in order; once the peer is gone, sending raises an
``OSError`` as uvicorn's own ``send`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from tradewire.server._ws_protocol import SEND_TEXTS, LeanWebSocketProtocol

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


@contextlib.asynccontextmanager
async def _server(app: _App) -> AsyncIterator[str]:
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
