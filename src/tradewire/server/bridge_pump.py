"""The gateway side of the ingest bridge: committed ingest records -> user events.

Theory of operation
-------------------
One task owns the pure :class:`~tradewire.bridge.IngestBridge`. It reads the
``ingest`` stream from the store after its *cursor* (the last seq bridged,
kept in the store's meta as ``bridge.ingest_cursor``), translates each
record, and hands the events to the delivery driver with
``DeliveryDriver.submit``. The store *wakes* it after each commit that holds
ingest records (``SqliteStore.commit_listeners``), handing over the
envelopes the transports decoded, so live records and a replay after a
restart take the same path and only a replay decodes what it reads. The
listener is queued to the loop as the commit returns, so a page read right
after a commit almost always finds its envelopes handed over (a miss costs
a decode, nothing else). The cursor
moves past a page only once every guaranteed (NORMAL / CRITICAL) event of
that page is in the ``user_event`` stream (or after ``persist_timeout_s``,
logged). The cursor is written to the meta at most every
``cursor_interval_s`` (each write is a commit of its own, so not once per
page), and when the pump falls idle: a crash replays the records bridged
since the last write, and the event ids, derived from the causes, make the
replay notify nothing twice. INFORMATIONAL events are never stored (fire and
forget), so a crash may lose those.

A data dir that has no cursor yet (first start with the bridge) starts at the
current end of the ``ingest`` stream: history is not notified.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final, cast

from tradewire.bridge import (
    IngestBridge,
    OrderInfo,
    RunEnded,
    RunInfo,
    RunSnapshot,
    Translation,
)
from tradewire.delivery.model import Event, Priority
from tradewire.ingest.heartbeats import HealthChange
from tradewire.ingest.projector import INGEST_STREAM, EnvelopeBody
from tradewire.ingest.run_analytics import RunAnalyticsCache, load_fills, load_run_row
from tradewire.store import AppendResult
from tradewire.store.sqlite import SqliteStore
from tradewire.wire import Envelope, Rejection
from tradewire.wire.envelope import decode_envelope

__all__ = ["CURSOR_META", "BridgePump"]

log = logging.getLogger("tradewire.bridge")

CURSOR_META: Final = "bridge.ingest_cursor"
_NO_LIMIT: Final = 1 << 40
_ORDERS_SQL: Final = (
    "SELECT o.order_id, o.symbol, o.side, o.order_type, o.quantity, o.price, o.strategy_id, "
    "(SELECT h.status FROM order_status_history h WHERE h.order_id = o.order_id "
    "AND h.seq < ? AND h.applied = 1 ORDER BY h.seq DESC, h.ordinal DESC LIMIT 1) "
    "FROM orders o WHERE o.run_id = ? AND o.first_seq < ?"
)
_CHUNK: Final = 400
_PAGE_SQL: Final = (
    "SELECT seq, user_id FROM records WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?"
)
_DECODED_MAX: Final = 8192
# Pages are large because the pump shares the event loop with the transports: each
# page costs two loop iterations (the query on a reader thread, then the result),
# and under ingest load an iteration takes 10-20 ms. With pages of 256 the pump
# bridged at most ~10,000 records/s, fell behind the ingest, out of the decoded
# cache, and then had to decode what it read back: slower still.


class BridgePump:
    """Feeds committed ingest records through the bridge into the delivery driver."""

    def __init__(
        self,
        store: SqliteStore,
        submit: Callable[[Event], None],
        bridge: IngestBridge,
        analytics: RunAnalyticsCache,
        *,
        live: Callable[[str], bool] = lambda _user: True,
        page: int = 2048,
        persist_timeout_s: float = 10.0,
        cursor_interval_s: float = 0.5,
    ) -> None:
        self.store = store
        self.submit = submit
        self.bridge = bridge
        self.analytics = analytics
        self.live = live
        self.page = page
        self.persist_timeout_s = persist_timeout_s
        self.cursor_interval_s = cursor_interval_s
        self.cursor = 0
        self._saved = 0
        self._saved_at = -float("inf")
        self.submitted = 0
        self._wake = asyncio.Event()
        self._decoded: OrderedDict[int, Envelope | Rejection] = OrderedDict()
        self._saving: asyncio.Task[None] | None = None

    def committed(self, results: Sequence[AppendResult]) -> None:
        """A store commit listener: bridge the batch's new ingest records soon.

        Their decoded envelopes are kept (bounded) so the pump need not decode
        the bodies it reads back from the store again.
        """
        decoded = self._decoded
        woken = False
        for result in results:
            record = result.record
            if record.stream != INGEST_STREAM or result.duplicate or result.refusal is not None:
                continue
            woken = True
            if isinstance(record.body, EnvelopeBody):
                decoded[record.seq] = record.body.decoded
                if len(decoded) > _DECODED_MAX:  # the oldest goes, in O(1) (a plain
                    decoded.popitem(last=False)  # dict's next(iter()) rescans deletions)
        if woken:
            self._wake.set()

    def health_changed(self, change: HealthChange) -> None:
        """A ``HealthWatch.change_sinks`` entry: a source down becomes EVENT_ERROR."""
        if change.user_id is None:  # every ingest path authenticates: not expected
            log.warning("source down without owner", extra={"source": change.source})
            return
        for event in self.bridge.source_down(change, change.user_id, dt.datetime.now(dt.UTC)):
            self._submit(event)

    async def start(self) -> None:
        """Listen to the store's commits; read the cursor (first start: the end of ingest)."""
        self.store.commit_listeners.append(self.committed)
        stored = await self.store.get_meta(CURSOR_META)
        if stored is not None:
            self.cursor = self._saved = int(stored)
            return
        rows = await self.store.query(
            "SELECT COALESCE(max(seq), 0) FROM records WHERE stream = ?", (INGEST_STREAM,)
        )
        self.cursor = int(rows[0][0])
        await self._save_cursor()

    async def run(self) -> None:
        """Bridge every record after the cursor, then wait for a wake-up; until cancelled."""
        try:
            await self._run()
        finally:
            if self._saving is not None:
                self._saving.cancel()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                bridged = await self._bridge_page()
                if self.cursor != self._saved and self._save_due() <= 0:
                    self._save_soon()
            except Exception:  # the store failed: keep the cursor, try again shortly
                log.exception("ingest bridge page failed", extra={"cursor": self.cursor})
                await asyncio.sleep(1.0)
                continue
            if not bridged:
                await self._idle()

    async def _idle(self) -> None:
        """Wait for a wake-up; save a moved cursor meanwhile when it falls due."""
        if self.cursor == self._saved:
            await self._wake.wait()
            return
        saving = self._saving
        if saving is not None and not saving.done():
            await saving
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(self._save_due(), 0.0))
            return
        await self._save_cursor()

    def _save_due(self) -> float:
        """Seconds until the cursor may be written again."""
        return self._saved_at + self.cursor_interval_s - time.monotonic()

    def _save_soon(self) -> None:
        """Write the cursor in the background: bridging goes on while the commit waits.

        Under load a commit takes as long as the writer's whole batch (100 ms and
        more); awaiting it here let the pump fall behind by that much each time.
        At most one write is in flight; a failed one is logged and retried when
        due again.
        """
        if self._saving is not None and not self._saving.done():
            return
        self._saving = asyncio.create_task(self._save_logged(), name="bridge-cursor")

    async def _save_logged(self) -> None:
        try:
            await self._save_cursor()
        except Exception:  # the store failed: the next save retries
            log.exception("cannot save the bridge cursor", extra={"cursor": self.cursor})
            self._saved_at = time.monotonic()

    async def _save_cursor(self) -> None:
        cursor = self.cursor
        await self.store.set_meta(CURSOR_META, str(cursor))
        self._saved, self._saved_at = cursor, time.monotonic()

    async def _bridge_page(self) -> bool:
        """Bridge one page after the cursor; ``True`` when a full page was read (more may follow).

        A short page means the pump has caught up with what was committed when
        it read, and every later commit wakes it, so it need not read again.
        """
        rows = await self._page()
        if not rows:
            return False
        guaranteed: list[str] = []
        submit = self._submit
        for seq, user_id, envelope in rows:
            out = self._translate_loaded(seq, user_id, envelope)
            # Most records need no query: no coroutine for them (one per record cost
            # as much loop time as translating an order).
            if out is None:
                events = await self._translate(seq, user_id, envelope)
            elif out.ended:
                events = await self._complete(seq, out)
            else:
                events = out.events
            for event in events:
                submit(event)
                if event.priority is not Priority.INFORMATIONAL:
                    guaranteed.append(event.event_id)
        await self._await_persisted(guaranteed)
        self.cursor = rows[-1][0]
        return len(rows) >= self.page

    async def _page(self) -> list[tuple[int, str | None, Envelope | Rejection]]:
        """``(seq, user_id, envelope)`` of the next page; bodies read only when not cached.

        Live records were decoded by their transport (:meth:`committed`), so
        only a replay after a restart reads and decodes bodies.
        """
        heads = await self.store.query(_PAGE_SQL, (INGEST_STREAM, self.cursor, self.page))
        pop = self._decoded.pop
        # Taken out before any await: committed() may evict entries meanwhile.
        cached = [(seq, user_id, pop(seq, None)) for seq, user_id in heads]
        missing = [seq for seq, _, envelope in cached if envelope is None]
        if not missing:  # the live case: every envelope was handed over
            return cast("list[tuple[int, str | None, Envelope | Rejection]]", cached)
        bodies: dict[int, bytes] = {}
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT seq, body FROM records WHERE seq IN ({marks})"
            bodies.update(await self.store.query(sql, chunk))
        return [
            (seq, user_id, decode_envelope(bodies[seq], max_bytes=_NO_LIMIT))
            if envelope is None
            else (seq, user_id, envelope)
            for seq, user_id, envelope in cached
        ]

    def _submit(self, event: Event) -> None:
        self.submit(event)
        self.submitted += 1

    def _translate_loaded(
        self, seq: int, user_id: str | None, envelope: Envelope | Rejection
    ) -> Translation | None:
        """The translation of a record whose run is loaded; ``None``: its run must be loaded."""
        if isinstance(envelope, Rejection) or user_id is None:
            return Translation()
        try:
            return self.bridge.translate_loaded(
                seq, user_id, envelope, informational=self.live(user_id)
            )
        except Exception:  # a bug must not stop the bridge: log it, skip the record
            log.exception("cannot bridge ingest record", extra={"seq": seq})
            return Translation()

    async def _translate(
        self, seq: int, user_id: str | None, envelope: Envelope | Rejection
    ) -> list[Event]:
        if isinstance(envelope, Rejection) or user_id is None:
            return []
        try:
            run_id = self.bridge.unknown_run(envelope)
            if run_id is not None:
                self.bridge.load_run(run_id, user_id, await self._snapshot(run_id, seq))
            out = self.bridge.translate(seq, user_id, envelope, informational=self.live(user_id))
        except Exception:  # a bug must not stop the bridge: log it, skip the record
            log.exception("cannot bridge ingest record", extra={"seq": seq})
            return []
        return await self._complete(seq, out)

    async def _complete(self, seq: int, out: Translation) -> list[Event]:
        """``out``'s events, then BACKTEST_COMPLETED of the runs it ended."""
        events = list(out.events)
        try:
            for ended in out.ended:
                events += await self._completed(ended)
        except Exception:  # a bug must not stop the bridge: log it, skip the record
            log.exception("cannot bridge ingest record", extra={"seq": seq})
            return []
        return events

    async def _snapshot(self, run_id: str, seq: int) -> RunSnapshot:
        fills = await load_fills(self.store, run_id, before_seq=seq)
        rows = await self.store.query(_ORDERS_SQL, (seq, run_id, seq))
        orders = {
            row[0]: OrderInfo(
                symbol=row[1],
                side=str(row[2]).upper(),
                order_type=row[3] or "",
                quantity=_decimal(row[4]),
                price=_decimal(row[5]),
                strategy_id=row[6] or "",
                status=row[7] or "NEW",
            )
            for row in rows
        }
        run = await load_run_row(self.store, run_id)
        return RunSnapshot(fills, orders, exchange=(run.venue or "") if run else "")

    async def _completed(self, ended: RunEnded) -> list[Event]:
        run = await load_run_row(self.store, ended.run_id)
        if run is None:
            return []
        analysis = await self.analytics.analysis(run)
        traded = sorted({t.symbol for t in analysis.book.trades})
        info = RunInfo(
            strategy_id=run.strategy_id or "",
            strategy_name=run.instance_name or run.strategy_id or "",
            symbol=",".join(run.symbols or traded),
            timeframe=run.timeframe or "",
        )
        return self.bridge.run_completed(ended, analysis.metrics, info)

    async def _await_persisted(self, event_ids: list[str]) -> None:
        pending = set(event_ids)
        deadline = time.monotonic() + self.persist_timeout_s
        delay = 0.002
        while pending:
            ids = sorted(pending)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = await self.store.query(
                    f'SELECT "key" FROM records WHERE stream = ? AND "key" IN ({marks})',
                    ("user_event", *chunk),
                )
                pending.difference_update(row[0] for row in rows)
            if not pending:
                return
            if time.monotonic() > deadline:
                log.warning("bridged events not persisted in time", extra={"missing": len(pending)})
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


def _decimal(value: object) -> Decimal | None:
    return Decimal(value) if isinstance(value, str) and value else None
