"""REST views of what was ingested: runs, orders, fills, bars, ..., logs, source health.

Every route needs the caller's identity: an API key (``twk_...``, as for
ingest) or a session token (``tradewire token USER``), in
``Authorization: Bearer X`` (or ``?key=`` / ``?token=``). A user only ever
sees rows of their own runs. Listings are keyset-paginated (``limit`` and
``cursor``, see :mod:`tradewire.ingest.queries`) and filtered by ``run_id``,
``symbol``, ``since`` (inclusive) and ``until`` (exclusive) where the
resource has them; errors are ``{code, message, field}``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request

from tradewire.auth import TokenRejected
from tradewire.ingest.keyring import authenticate
from tradewire.ingest.keys import KEY_PREFIX, KeyRejected, key_from_headers
from tradewire.ingest.queries import LISTINGS, ListRequest, QueryError, build_query, rows_to_page
from tradewire.server.ingest_schemas import (
    BarOut,
    ExecutionOut,
    InstanceOut,
    LogOut,
    OcoGroupOut,
    OrderOut,
    Page,
    Problem,
    RunOut,
    SourceHealthOut,
    SourcesOut,
    StrategyOut,
)

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_ingest_rest_router"]

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": Problem, "description": "A bad cursor, time or filter."},
    401: {"model": Problem, "description": "No valid API key or session token."},
}
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Since = Annotated[str | None, Query(description="ISO-8601 time, inclusive (naive = UTC)")]
Until = Annotated[str | None, Query(description="ISO-8601 time, exclusive")]
Order = Annotated[bool, Query(description="newest (highest key) first")]
RunId = Annotated[str | None, Query(description="only this run")]
Symbol = Annotated[str | None, Query(description="only this symbol")]


def _problem(status: int, code: str, message: str, field: str | None = None) -> HTTPException:
    detail = {"code": code, "message": message, "field": field}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail=detail, headers=headers)


async def caller(gateway: Gateway, request: Request) -> str:
    """The user behind the request's API key or session token (else 401)."""
    query = request.query_params
    presented = key_from_headers(
        request.headers.get("authorization"), query.get("key") or query.get("token")
    )
    if presented is not None and not presented.startswith(KEY_PREFIX):
        verdict = gateway.tokens.verify(presented, now=int(time.time()))
        if isinstance(verdict, TokenRejected):
            raise _problem(401, f"TOKEN_{verdict.reason.upper()}", verdict.message)
        return verdict
    found = await authenticate(gateway.store, presented)
    if isinstance(found, KeyRejected):
        raise _problem(401, found.code, found.message)
    return found


async def list_rows(gateway: Gateway, listing_name: str, request: ListRequest) -> dict[str, Any]:
    """One page of a listing as ``{items, next_cursor}`` (400 on a bad parameter)."""
    listing = LISTINGS[listing_name]
    built = build_query(listing, request)
    if isinstance(built, QueryError):
        raise _problem(400, built.code, built.message, built.field)
    sql, args = built
    rows = await gateway.store.query(sql, args)
    items, next_cursor = rows_to_page(listing, request, rows)
    return {"items": items, "next_cursor": next_cursor}


def create_ingest_rest_router(gateway: Gateway) -> APIRouter:
    """Routes under ``/api/runs``, ``/api/orders``, ..., ``/api/logs``, ``/api/health``."""
    router = APIRouter(tags=["ingest views"], responses=_ERRORS)
    _add_trading_routes(router, gateway)
    _add_entity_routes(router, gateway)
    _add_operation_routes(router, gateway)
    return router


def _ask(
    user: str,
    limit: int,
    cursor: str | None,
    desc: bool,
    *,
    since: str | None = None,
    until: str | None = None,
    **filters: str | None,
) -> ListRequest:
    return ListRequest(
        user_id=user,
        limit=limit,
        cursor=cursor,
        since=since,
        until=until,
        descending=desc,
        filters=filters,
    )


def _add_trading_routes(router: APIRouter, gateway: Gateway) -> None:
    @router.get("/api/orders", response_model=Page[OrderOut])
    async def orders(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        symbol: Symbol = None,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """Orders (latest state), by first appearance; time range on ``event_utc``."""
        user = await caller(gateway, request)
        ask = _ask(
            user,
            limit,
            cursor,
            desc,
            since=since,
            until=until,
            run_id=run_id,
            symbol=symbol,
            status=status,
        )
        return await list_rows(gateway, "orders", ask)

    @router.get("/api/executions", response_model=Page[ExecutionOut])
    async def executions(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        symbol: Symbol = None,
        order_id: Annotated[str | None, Query(description="only fills of this order")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """Fills by ``exec_time``, ties in arrival order; time range on ``exec_time``."""
        user = await caller(gateway, request)
        ask = _ask(
            user,
            limit,
            cursor,
            desc,
            since=since,
            until=until,
            run_id=run_id,
            symbol=symbol,
            order_id=order_id,
        )
        return await list_rows(gateway, "executions", ask)

    @router.get("/api/bars", response_model=Page[BarOut])
    async def bars(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        symbol: Symbol = None,
        series_id: Annotated[str | None, Query(description="only this series")] = None,
        timeframe: Annotated[str | None, Query(description="e.g. 1m")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """OHLCV bars by ``ts_utc``; time range on ``ts_utc``."""
        user = await caller(gateway, request)
        filters = {"series_id": series_id, "timeframe": timeframe}
        ask = _ask(
            user,
            limit,
            cursor,
            desc,
            since=since,
            until=until,
            run_id=run_id,
            symbol=symbol,
            **filters,
        )
        return await list_rows(gateway, "bars", ask)

    @router.get("/api/oco-groups", response_model=Page[OcoGroupOut])
    async def oco_groups(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """OCO groups by ``created_utc``; time range on ``created_utc``."""
        user = await caller(gateway, request)
        ask = _ask(user, limit, cursor, desc, since=since, until=until, run_id=run_id)
        return await list_rows(gateway, "oco_groups", ask)


def _add_entity_routes(router: APIRouter, gateway: Gateway) -> None:
    @router.get("/api/runs", response_model=Page[RunOut])
    async def runs(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """The caller's runs, oldest first; time range on ``first_seen_utc``."""
        user = await caller(gateway, request)
        ask = _ask(
            user, limit, cursor, desc, since=since, until=until, run_id=run_id, status=status
        )
        return await list_rows(gateway, "runs", ask)

    @router.get("/api/instances", response_model=Page[InstanceOut])
    async def instances(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        strategy_id: Annotated[str | None, Query(description="only this strategy")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """Strategy instances by id; time range on ``updated_utc``."""
        user = await caller(gateway, request)
        ask = _ask(
            user,
            limit,
            cursor,
            desc,
            since=since,
            until=until,
            run_id=run_id,
            strategy_id=strategy_id,
        )
        return await list_rows(gateway, "instances", ask)

    @router.get("/api/strategies", response_model=Page[StrategyOut])
    async def strategies(
        request: Request, limit: Limit = 100, cursor: Cursor = None, desc: Order = False
    ) -> dict[str, Any]:
        """Strategies seen in the caller's instance updates, by id."""
        user = await caller(gateway, request)
        return await list_rows(gateway, "strategies", _ask(user, limit, cursor, desc))


def _add_operation_routes(router: APIRouter, gateway: Gateway) -> None:
    @router.get("/api/logs", response_model=Page[LogOut])
    async def logs(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = None,
        desc: Order = False,
        run_id: RunId = None,
        source: Annotated[str | None, Query(description="comma-separated sources")] = None,
        level: Annotated[
            str | None, Query(description="comma-separated, e.g. ERROR,WARNING")
        ] = None,
        text: Annotated[str | None, Query(description="substring of the message")] = None,
        since: Since = None,
        until: Until = None,
    ) -> dict[str, Any]:
        """Log records in arrival order (``desc=true``: newest first); range on ``ts_utc``."""
        user = await caller(gateway, request)
        levels = level.upper() if level else None
        filters = {"source": source, "level": levels, "text": text}
        ask = _ask(user, limit, cursor, desc, since=since, until=until, run_id=run_id, **filters)
        return await list_rows(gateway, "logs", ask)

    @router.get("/api/health/sources", response_model=SourcesOut)
    async def sources(request: Request) -> dict[str, Any]:
        """Every source that sent the caller's heartbeats: up, down, or unknown since start."""
        user = await caller(gateway, request)
        rows = await gateway.store.query(
            "SELECT source, status, last_heartbeat_utc, heartbeats FROM sources "
            "WHERE user_id = ? ORDER BY source",
            (user,),
        )
        live = {h.source: h for h in gateway.ingest_health.watcher.snapshot(time.monotonic(), user)}
        return {"sources": [_source(row, live) for row in rows]}


def _source(row: tuple[Any, ...], live: dict[str, Any]) -> dict[str, Any]:
    source, status, last_heartbeat, heartbeats = row
    health = live.get(source)
    out = SourceHealthOut(
        source=source,
        state=health.state if health is not None else "unknown",
        status=status,
        last_heartbeat_utc=last_heartbeat,
        heartbeats=heartbeats,
        cadence_s=health.cadence_s if health is not None else None,
        silent_s=health.silent_s if health is not None else None,
        down_after_s=health.down_after_s if health is not None else None,
    )
    return out.model_dump()
