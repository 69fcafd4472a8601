"""Platform ingest over HTTP: ``GET /ws/ingest`` and ``POST /api/ingest``.

Authentication: an API key (``tradewire keys create --user USER_ID``) in
``Authorization: Bearer K`` or ``?key=K``. HTTP refuses a missing, malformed,
unknown or revoked key with ``401`` and a JSON body ``{code, message}``; the
WebSocket accepts the handshake then closes with ``4401`` and
``"<code>: <message>"`` as the reason (see :mod:`.ingest_ws`).

``POST /api/ingest`` takes one envelope, a JSON array of envelopes, or NDJSON
(``Content-Type: application/x-ndjson``, or detected from the shape), and
answers ``200`` with a JSON array holding one reply per message, in the same
order: an ``ack`` once the message is committed, or an ``error``. A body over
the batch limit is refused whole with ``413`` ``{code: PAYLOAD_TOO_LARGE}``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response

from tradewire.ingest.keyring import authenticate
from tradewire.ingest.keys import KeyRejected, key_from_headers
from tradewire.ingest.pipeline import Accepted, admit_body, now_stamp, reply_for
from tradewire.ingest.routing import Hub
from tradewire.server.ingest_rest import create_ingest_rest_router
from tradewire.server.ingest_ws import serve_ingest_ws
from tradewire.store import AppendResult
from tradewire.wire.envelope import MAX_BATCH_BYTES

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_ingest_router"]

_BODY_DOC: Final = {
    "requestBody": {
        "required": True,
        "description": "One envelope, a JSON array of envelopes, or NDJSON (one per line).",
        "content": {
            "application/json": {"schema": {"type": ["object", "array"]}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
    "responses": {
        "401": {"description": "API key missing, malformed, unknown or revoked."},
        "413": {"description": "Body over the batch size limit."},
    },
}


def _unauthorized(verdict: KeyRejected) -> JSONResponse:
    return JSONResponse(
        {"code": verdict.code, "message": verdict.message},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _too_large(size: int, limit: int) -> JSONResponse:
    message = f"The body is {size} bytes, over the limit of {limit}: split the batch."
    return JSONResponse({"code": "PAYLOAD_TOO_LARGE", "message": message}, status_code=413)


def create_ingest_router(gateway: Gateway, hub: Hub) -> APIRouter:
    """The ingest endpoints of one running ``gateway`` (and its REST views)."""
    router = APIRouter(tags=["ingest"])
    router.include_router(create_ingest_rest_router(gateway))
    max_bytes = gateway.settings.max_message_bytes

    @router.websocket("/ws/ingest")
    async def ingest_ws(ws: WebSocket) -> None:
        """Stream envelopes; every message gets an ack (after commit) or an error."""
        await serve_ingest_ws(ws, store=gateway.store, hub=hub, max_bytes=max_bytes)

    @router.post("/api/ingest", openapi_extra=_BODY_DOC, response_class=Response)
    async def ingest_post(request: Request) -> Response:
        """Ingest one envelope, an array or NDJSON; one reply per message, in order."""
        store = gateway.store
        presented = key_from_headers(
            request.headers.get("authorization"), request.query_params.get("key")
        )
        verdict = await authenticate(store, presented)
        if isinstance(verdict, KeyRejected):
            return _unauthorized(verdict)
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_BATCH_BYTES:
            return _too_large(declared, MAX_BATCH_BYTES)
        body = await request.body()
        if len(body) > MAX_BATCH_BYTES:
            return _too_large(len(body), MAX_BATCH_BYTES)
        now_ms = time.time_ns() // 1_000_000
        items = admit_body(
            body, request.headers.get("content-type"), verdict, now_ms, max_bytes=max_bytes
        )
        records = [item.record for item in items if isinstance(item, Accepted)]
        outcome: list[AppendResult] | BaseException
        try:
            outcome = await store.append_many(records) if records else []
        except Exception as exc:  # nothing of the batch was stored: every message says so
            outcome = exc
        results = iter(outcome) if isinstance(outcome, list) else None
        replies: list[bytes] = []
        stamp = now_stamp()
        for item in items:
            result: AppendResult | BaseException | None = None
            if isinstance(item, Accepted):
                result = next(results) if results is not None else outcome  # type: ignore[assignment]
                if isinstance(result, AppendResult):
                    hub.publish(item.envelope, item.record.body, result, origin=None)
            replies.append(reply_for(item, result, None, stamp))
        return Response(b"[" + b",".join(replies) + b"]", media_type="application/json")

    return router
