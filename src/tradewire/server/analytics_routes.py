"""REST analytics of a run: ``/api/runs/{run_id}/trades``, ``/metrics``, ``/equity``.

Authentication is that of the ingest REST views (:func:`.ingest_rest.caller`:
an API key or a session token); a run that is not the caller's is a ``404``
exactly like an unknown one. Results come from the gateway's
:class:`~tradewire.ingest.run_analytics.RunAnalyticsCache`, recomputed only
when the run's watermark moved. Money is decimal strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, HTTPException, Request

from tradewire.ingest.analytics_json import equity_document, metrics_document, trades_document
from tradewire.ingest.run_analytics import RunAnalysis, load_run_row
from tradewire.server.ingest_rest import caller
from tradewire.server.ingest_schemas import Problem

if TYPE_CHECKING:
    from tradewire.server.runtime import Gateway

__all__ = ["create_analytics_router"]

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": Problem, "description": "No valid API key or session token."},
    404: {"model": Problem, "description": "No such run among the caller's runs."},
}


async def _analysis(gateway: Gateway, request: Request, run_id: str) -> RunAnalysis:
    user = await caller(gateway, request)
    run = await load_run_row(gateway.store, run_id)
    if run is None or run.user_id != user:
        detail = {
            "code": "RUN_NOT_FOUND",
            "message": f"No run {run_id!r} among your runs: list them with GET /api/runs.",
            "field": "run_id",
        }
        raise HTTPException(404, detail=detail)
    return await gateway.run_analytics.analysis(run)


def create_analytics_router(gateway: Gateway) -> APIRouter:
    """The analytics routes of one running ``gateway``."""
    router = APIRouter(tags=["analytics"], responses=_ERRORS)

    @router.get("/api/runs/{run_id}/trades")
    async def run_trades(request: Request, run_id: str) -> dict[str, Any]:
        """Closed trades (flat to flat, with their FIFO legs) and open positions."""
        return trades_document(await _analysis(gateway, request, run_id))

    @router.get("/api/runs/{run_id}/metrics")
    async def run_metrics(request: Request, run_id: str) -> dict[str, Any]:
        """Run metrics on net PnL (see docs/concepts/analytics.md for every formula)."""
        return metrics_document(await _analysis(gateway, request, run_id))

    @router.get("/api/runs/{run_id}/equity")
    async def run_equity(request: Request, run_id: str) -> dict[str, Any]:
        """The equity curve (one point per closed trade) with its drawdown."""
        return equity_document(await _analysis(gateway, request, run_id))

    return router
