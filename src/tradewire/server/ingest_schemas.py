"""OpenAPI response models of the ingest REST views (documentation and validation only).

Money and quantities are exact decimal *strings* (``"0.1"``), times are
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` strings (UTC). Each listing answers a
:class:`Page`: ``items`` and ``next_cursor`` (``null`` on the last page).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "BarOut",
    "ExecutionOut",
    "InstanceOut",
    "LogOut",
    "OcoGroupOut",
    "OrderOut",
    "Page",
    "Problem",
    "RunOut",
    "SourceHealthOut",
    "SourcesOut",
    "StrategyOut",
]

T = TypeVar("T")
Money = str | None


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(description="null on the last page")


class Problem(BaseModel):
    """An error answer: a stable ``code``, what to do, and the offending parameter."""

    code: str
    message: str
    field: str | None = None


class RunOut(BaseModel):
    """A run: created by its first ingest event, owned by the key's user."""

    run_id: str
    status: str
    strategy_id: str | None
    instance_id: str | None
    first_seen_utc: str
    started_utc: str | None
    ended_utc: str | None
    first_seq: int


class OrderOut(BaseModel):
    """An order's latest state (its status never moves backwards)."""

    order_id: str
    run_id: str
    symbol: str
    side: str
    order_type: str | None
    quantity: Money
    price: Money
    stop_price: Money
    time_in_force: str | None
    status: str
    submit_time: str | None
    event_utc: str
    parent_order_id: str | None
    strategy_id: str | None
    account_id: str | None
    first_seq: int
    last_seq: int


class ExecutionOut(BaseModel):
    """A fill, stored once (ordered by time, then arrival)."""

    execution_id: str
    order_id: str
    run_id: str
    symbol: str | None
    side: str | None
    quantity: Money
    price: Money
    commission: Money
    fee: Money
    fee_currency: str | None
    exec_time: str
    strategy_id: str | None
    account_id: str | None
    liquidity_flag: str | None
    seq: int


class BarOut(BaseModel):
    """One OHLCV bar of a series."""

    series_id: str
    ts_utc: str
    symbol: str
    timeframe: str
    run_id: str | None
    open: Money
    high: Money
    low: Money
    close: Money
    volume: Money


class OcoGroupOut(BaseModel):
    """A one-cancels-other group of orders."""

    oco_group_id: str
    run_id: str
    created_utc: str | None
    label: str | None
    order_ids: list[str]
    extra: dict[str, Any] | None


class InstanceOut(BaseModel):
    """A strategy instance (its latest update)."""

    instance_id: str
    strategy_id: str
    run_id: str | None
    instance_name: str | None
    parameters: dict[str, Any] | None
    symbols: list[Any] | None
    timeframe: str | None
    venue: str | None
    created_utc: str | None
    updated_utc: str | None


class StrategyOut(BaseModel):
    """A strategy seen in instance updates."""

    strategy_id: str
    first_seq: int
    last_seq: int


class LogOut(BaseModel):
    """A log record sent by a connector (``seq`` is its arrival order)."""

    seq: int
    msg_id: str
    source: str
    ts_utc: str
    level: str
    name: str
    message: str
    run_id: str | None
    meta: dict[str, Any] | None


class SourceHealthOut(BaseModel):
    """A connector that sent heartbeats, and whether it is up now.

    ``state`` is ``unknown`` for a source not heard from since the gateway
    started; ``cadence_s``, ``silent_s`` and ``down_after_s`` are then null.
    """

    source: str
    state: Literal["up", "down", "unknown"]
    status: str = Field(description="the status field of its last heartbeat")
    last_heartbeat_utc: str | None
    heartbeats: int
    cadence_s: float | None
    silent_s: float | None
    down_after_s: float | None


class SourcesOut(BaseModel):
    """Every source of the user, by name."""

    sources: list[SourceHealthOut]
