"""The trimmed uvicorn protocol's message queue: FIFO, one waiting reader (no sockets)."""

from __future__ import annotations

import asyncio

from tradewire.server._ws_protocol import _MessageQueue


async def test_messages_come_out_in_order_and_wake_a_waiting_reader() -> None:
    queue = _MessageQueue()
    assert queue.empty()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait({"type": "websocket.connect"})
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await reader == {"type": "websocket.connect"}
    assert not queue.empty()
    assert await queue.get() == {"type": "websocket.disconnect", "code": 1000}
    assert queue.empty()


async def test_a_cancelled_reader_leaves_the_queue_usable() -> None:
    queue = _MessageQueue()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    queue.put_nowait({"type": "websocket.connect"})
    assert await queue.get() == {"type": "websocket.connect"}
