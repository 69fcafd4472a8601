"""HTTP ingest with bad messages mixed in, revoked keys on the WebSocket, log queries.

Against a real ``tradewire serve``: replies are checked one by one against
what was sent, and stored rows are read back from the gateway's database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.gateway_proc import GatewayProcess, run_cli, running_gateway
from tests.integration.test_ingest_endpoints import (
    TIMEOUT,
    create_key,
    message,
    order,
    query,
    ws_url,
)
from tests.integration.test_ingest_rest import get


@pytest.fixture
def ingest_gw(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data, env={"TRADEWIRE_DURABILITY": "os"}) as gw:
        yield gw, key
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


def post_raw(gw: GatewayProcess, key: str, body: str, content_type: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    resp = httpx.post(f"{gw.http}/api/ingest", content=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    replies: list[dict[str, Any]] = resp.json()
    return replies


def without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


def bad_quantity(msg_id: str) -> dict[str, Any]:
    doc = order(msg_id, "o-bad")
    doc["payload"]["payload_json"]["quantity"] = "a lot"
    return doc


# (message as JSON text, expected reply): ("ack", msg_id) or (code, details)
MIXED: list[tuple[str, tuple[str, Any]]] = [
    (json.dumps(order("g-1", "o-1")), ("ack", "g-1")),
    ("42", ("INVALID_MESSAGE", {})),
    (json.dumps({**message(msg_id="w-1"), "payload": {"status": 1}}),
     ("VALIDATION_ERROR", {"msg_id": "w-1", "field": "payload.status"})),
    (json.dumps(message(msg_id="g-2")), ("ack", "g-2")),
    (json.dumps({**message(msg_id="u-1"), "msg_type": "telemetry"}),
     ("UNKNOWN_MSG_TYPE", {"msg_id": "u-1", "field": "msg_type"})),
    (json.dumps(without(message(msg_id="m-1"), "source")),
     ("INVALID_MESSAGE", {"msg_id": "m-1", "field": "source"})),
    (json.dumps({**message(), "msg_id": 7}), ("INVALID_MESSAGE", {"field": "msg_id"})),
    (json.dumps(bad_quantity("q-1")),
     ("VALIDATION_ERROR", {"msg_id": "q-1", "field": "payload.payload_json.quantity"})),
    (json.dumps({**message(msg_id="t-1"), "timestamp": "yesterday"}),
     ("INVALID_MESSAGE", {"msg_id": "t-1", "field": "timestamp"})),
    (json.dumps(order("g-3", "o-3")), ("ack", "g-3")),
]  # fmt: skip
GOOD_IDS = [want[1] for _, want in MIXED if want[0] == "ack"]


def check_replies(replies: list[dict[str, Any]], wanted: list[tuple[str, Any]]) -> None:
    """One reply per message, in the order sent, each the expected ack or error."""
    assert len(replies) == len(wanted)
    for reply, (kind, detail) in zip(replies, wanted, strict=True):
        assert reply["source"] == "api-gateway"
        if kind == "ack":
            assert reply["msg_type"] == "ack", reply
            assert reply["payload"]["acknowledged_msg_id"] == detail
        else:
            assert reply["msg_type"] == "error", reply
            assert reply["payload"]["code"] == kind, reply
            details = reply["payload"]["details"]
            assert {k: v for k, v in details.items() if v is not None} == detail, reply
            assert reply["payload"]["message"]  # says what to fix


def test_a_mixed_json_array_is_answered_message_by_message(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    body = "[" + ",".join(text for text, _ in MIXED) + "]"
    check_replies(post_raw(gw, key, body, "application/json"), [want for _, want in MIXED])
    stored = query(gw.data_dir, "SELECT key FROM records WHERE stream = 'ingest' ORDER BY seq")
    assert [k for (k,) in stored] == GOOD_IDS  # in order, and none of the bad ones
    assert query(gw.data_dir, "SELECT order_id FROM orders ORDER BY order_id") == [
        ("o-1",),
        ("o-3",),
    ]


def test_malformed_ndjson_lines_cost_only_themselves(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    lines = [
        (json.dumps(order("n-1", "on-1")), ("ack", "n-1")),
        ("{not json", ("INVALID_JSON", {})),
        (json.dumps({**message(msg_id="n-w"), "payload": {"status": 1}}),
         ("VALIDATION_ERROR", {"msg_id": "n-w", "field": "payload.status"})),
        ("[1, 2]", ("INVALID_MESSAGE", {})),
        (json.dumps({**message(msg_id="n-u"), "msg_type": "telemetry"}),
         ("UNKNOWN_MSG_TYPE", {"msg_id": "n-u", "field": "msg_type"})),
        (json.dumps(order("n-1", "on-1")), ("ack", "n-1")),  # a resend: acked again
        (json.dumps(order("n-2", "on-2")), ("ack", "n-2")),
    ]  # fmt: skip
    body = "\n".join(text for text, _ in lines) + "\n"
    replies = post_raw(gw, key, body, "application/x-ndjson")
    check_replies(replies, [want for _, want in lines])
    assert replies[5]["payload"].get("duplicate") is True
    assert "duplicate" not in replies[0]["payload"]
    stored = query(gw.data_dir, "SELECT key FROM records WHERE stream = 'ingest' ORDER BY seq")
    assert stored == [("n-1",), ("n-2",)]


async def test_a_revoked_key_is_refused_on_the_websocket_with_its_reason(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    async with connect(ws_url(gw, key), open_timeout=TIMEOUT) as ws:
        await ws.send(json.dumps(message(msg_id="before")))
        assert json.loads(await ws.recv())["payload"]["acknowledged_msg_id"] == "before"
    assert run_cli("keys", "revoke", key.split("_")[1], data_dir=gw.data_dir).returncode == 0
    headers = {"Authorization": f"Bearer {key}"}
    for url, extra in ((ws_url(gw, key), {}), (ws_url(gw), {"additional_headers": headers})):
        async with connect(url, open_timeout=TIMEOUT, **extra) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert closed.value.rcvd.reason.startswith("KEY_REVOKED: "), closed.value.rcvd.reason
    assert query(gw.data_dir, "SELECT key FROM records WHERE stream = 'ingest'") == [("before",)]


# --- /api/logs against the stored rows ---------------------------------------------------


def log(msg_id: str, source: str, at: str, level: str = "INFO", sent: str | None = None) -> str:
    """A log_record written at ``at`` (its own time), sent at ``sent``."""
    doc = message(msg_id=msg_id)
    doc.update(msg_type="log_record", source=source, timestamp=sent or "2026-02-01T00:00:00Z")
    doc["payload"] = {"timestamp": at, "level": level, "name": "svc", "message": f"m {msg_id}"}
    return json.dumps(doc)


LOGS = [  # msg_id, source, the record's own time, level
    ("l-1", "feed-a", "2026-01-03T12:00:00.000Z", "INFO"),
    ("l-2", "feed-b", "2026-01-03T12:00:30.000Z", "WARNING"),
    ("l-3", "feed-a", "2026-01-03T12:01:00.000Z", "ERROR"),
    ("l-4", "feed-c", "2026-01-03T12:01:00.500Z", "INFO"),
    ("l-5", "feed-a", "2026-01-03T13:01:00+01:00", "INFO"),  # = 12:01:00Z, other zone
    ("l-6", "feed-b", "2026-01-03T12:02:00.000Z", "ERROR"),
]


def stored_logs(
    data: Path,
    *,
    sources: set[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    levels: set[str] | None = None,
) -> list[str]:
    """What a filter must return, computed from alice's stored rows (arrival order).

    ``since``/``until`` are in the stored form (``...T12:00:30.000000Z``).
    """
    rows = query(
        data, "SELECT msg_id, source, ts_utc, level FROM logs WHERE user_id = 'alice' ORDER BY seq"
    )
    return [
        msg_id
        for msg_id, source, ts, level in rows
        if (sources is None or source in sources)
        and (since is None or ts >= since)
        and (until is None or ts < until)
        and (levels is None or level in levels)
    ]


def test_logs_filter_by_source_and_time_range_over_stored_rows(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    other = create_key(gw.data_dir, "bob")
    body = "[" + ",".join(log(*entry) for entry in LOGS) + "]"
    assert [r["msg_type"] for r in post_raw(gw, key, body, "application/json")] == ["ack"] * 6
    post_raw(gw, other, log("l-bob", "feed-a", "2026-01-03T12:00:10Z"), "application/json")
    stored = query(gw.data_dir, "SELECT msg_id, ts_utc FROM logs WHERE user_id = 'alice'")
    assert ("l-5", "2026-01-03T12:01:00.000000Z") in stored  # kept in UTC

    def ids(**params: Any) -> list[str]:
        resp = get(gw, key, "/api/logs", **params)
        assert resp.status_code == 200, resp.text
        return [item["msg_id"] for item in resp.json()["items"]]

    everything = ids()
    assert everything == [m for m, *_ in LOGS] == stored_logs(gw.data_dir)  # not bob's
    assert ids(source="feed-a") == ["l-1", "l-3", "l-5"]
    assert ids(source="feed-a") == stored_logs(gw.data_dir, sources={"feed-a"})
    assert ids(source="feed-b,feed-c") == ["l-2", "l-4", "l-6"]
    assert ids(source="feed-z") == []
    # the range is on the record's own time (not the envelope's): since in, until out
    since, until = "2026-01-03T12:00:30Z", "2026-01-03T12:01:00.500Z"
    assert ids(since=since, until=until) == ["l-2", "l-3", "l-5"]
    assert ids(since=since, until=until) == stored_logs(
        gw.data_dir, since="2026-01-03T12:00:30.000000Z", until="2026-01-03T12:01:00.500000Z"
    )
    assert ids(since="2026-01-03T13:01:00+01:00") == ["l-3", "l-4", "l-5", "l-6"]  # zoned
    assert ids(since="2026-01-03T12:01:00") == ["l-3", "l-4", "l-5", "l-6"]  # naive = UTC
    assert ids(until="2026-01-03T12:00:00Z") == []  # nothing before the first record
    assert ids(since="2026-01-03T12:02:00.001Z") == []
    # filters combine
    assert ids(source="feed-a", since=since) == ["l-3", "l-5"]
    assert ids(source="feed-a,feed-b", level="error", until="2026-01-03T12:02:00Z") == ["l-3"]
    assert ids(source="feed-a,feed-b", level="error") == stored_logs(
        gw.data_dir, sources={"feed-a", "feed-b"}, levels={"ERROR"}
    )
    assert ids(source="feed-b", desc="true") == ["l-6", "l-2"]
    # a filtered range pages without losing or repeating a row
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"source": "feed-a,feed-b", "since": since, "limit": 2}
        page = get(gw, key, "/api/logs", **params, **({"cursor": cursor} if cursor else {}))
        seen += [item["msg_id"] for item in page.json()["items"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    assert seen == ["l-2", "l-3", "l-5", "l-6"]
