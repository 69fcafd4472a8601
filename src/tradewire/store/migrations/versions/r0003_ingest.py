"""Platform ingest: API keys and the projection tables of ingested messages.

Revision ID: 0003_ingest
Revises: 0002_user_index

Every table except ``api_keys``'s hash is derived from the ``records`` log
(streams ``ingest`` and ``api_keys``) by the projectors of
:mod:`tradewire.ingest`, so ``tradewire rebuild`` can empty and refill them.
Money is ``TEXT`` holding an exact decimal; times are ``TEXT`` in the
sortable form ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_ingest"
down_revision: str | None = "0002_user_index"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TEXT = sa.Text()


def _money(name: str) -> sa.Column[str]:
    return sa.Column(name, _TEXT, nullable=True)


def _ts(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(32), nullable=nullable)


def upgrade() -> None:
    """Create the key table and every ingest projection table."""
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("label", _TEXT, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_api_keys_user", "api_keys", ["user_id"])
    _create_entities()
    _create_trading()
    _create_market()
    _create_operations()


def _create_entities() -> None:
    op.create_table(
        "strategies",
        sa.Column("strategy_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(255), primary_key=True),
        sa.Column("strategy_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("instance_name", _TEXT, nullable=True),
        sa.Column("parameters_json", _TEXT, nullable=True),
        sa.Column("symbols_json", _TEXT, nullable=True),
        sa.Column("timeframe", sa.String(32), nullable=True),
        sa.Column("venue", sa.String(255), nullable=True),
        _ts("created_utc"),
        _ts("updated_utc"),
        sa.Column("last_seq", _SEQ, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("strategy_id", sa.String(255), nullable=True),
        sa.Column("instance_id", sa.String(255), nullable=True),
        _ts("first_seen_utc", nullable=False),
        _ts("started_utc"),
        _ts("ended_utc"),
        sa.Column("first_seq", _SEQ, nullable=False),
    )
    op.create_index("ix_runs_user", "runs", ["user_id", "run_id"])


def _create_trading() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("order_type", sa.String(32), nullable=True),
        _money("quantity"),
        _money("price"),
        _money("stop_price"),
        sa.Column("time_in_force", sa.String(16), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_rank", sa.Integer(), nullable=False),
        _ts("submit_time"),
        _ts("event_utc", nullable=False),
        sa.Column("parent_order_id", sa.String(255), nullable=True),
        sa.Column("strategy_id", sa.String(255), nullable=True),
        sa.Column("account_id", sa.String(255), nullable=True),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
    )
    op.create_index("ix_orders_run", "orders", ["run_id", "event_utc"])
    op.create_index("ix_orders_symbol", "orders", ["symbol", "event_utc"])
    op.create_table(
        "order_status_history",
        sa.Column("order_id", sa.String(255), primary_key=True),
        sa.Column("seq", _SEQ, primary_key=True),
        sa.Column("ordinal", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        _ts("event_utc", nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(255), primary_key=True),
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("side", sa.String(16), nullable=True),
        _money("quantity"),
        _money("price"),
        _money("commission"),
        _money("fee"),
        sa.Column("fee_currency", sa.String(16), nullable=True),
        _ts("exec_time", nullable=False),
        sa.Column("strategy_id", sa.String(255), nullable=True),
        sa.Column("account_id", sa.String(255), nullable=True),
        sa.Column("liquidity_flag", sa.String(16), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
    )
    op.create_index("ix_executions_run", "executions", ["run_id", "exec_time", "seq"])
    op.create_index("ix_executions_order", "executions", ["order_id"])
    op.create_table(
        "oco_groups",
        sa.Column("oco_group_id", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        _ts("created_utc"),
        sa.Column("label", _TEXT, nullable=True),
        sa.Column("order_ids_json", _TEXT, nullable=False),
        sa.Column("extra_json", _TEXT, nullable=True),
        sa.Column("last_seq", _SEQ, nullable=False),
    )
    op.create_index("ix_oco_groups_run", "oco_groups", ["run_id"])


def _create_market() -> None:
    op.create_table(
        "series",
        sa.Column("series_id", sa.String(255), primary_key=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
    )
    op.create_table(
        "bars",
        sa.Column("series_id", sa.String(255), nullable=False),
        _ts("ts_utc", nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=True),
        _money("open"),
        _money("high"),
        _money("low"),
        _money("close"),
        _money("volume"),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts_utc", name="pk_bars"),
    )
    op.create_index("ix_bars_symbol", "bars", ["symbol", "ts_utc"])
    op.create_table(
        "accounts",
        sa.Column("run_id", sa.String(255), primary_key=True),
        sa.Column("account_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("currency", sa.String(16), nullable=True),
        _money("balance"),
        _money("equity"),
        _money("margin"),
        _money("free_margin"),
        _money("unrealized_pnl"),
        _money("realized_pnl"),
        _ts("updated_utc", nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
    )
    op.create_table(
        "positions",
        sa.Column("run_id", sa.String(255), primary_key=True),
        sa.Column("account_id", sa.String(255), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("side", sa.String(16), nullable=False),
        _money("quantity"),
        _money("avg_price"),
        _money("unrealized_pnl"),
        _money("realized_pnl"),
        sa.Column("position_id", sa.String(255), nullable=True),
        _ts("updated_utc", nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
    )


def _create_operations() -> None:
    op.create_table(
        "logs",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("msg_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        _ts("ts_utc", nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("message", _TEXT, nullable=False),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("meta_json", _TEXT, nullable=True),
    )
    op.create_index("ix_logs_ts", "logs", ["ts_utc"])
    op.create_index("ix_logs_source", "logs", ["source", "ts_utc"])
    op.create_index("ix_logs_run", "logs", ["run_id", "ts_utc"])
    op.create_table(
        "ingest_errors",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("msg_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        _ts("ts_utc", nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", _TEXT, nullable=False),
        sa.Column("details_json", _TEXT, nullable=True),
    )
    op.create_table(
        "sources",
        sa.Column("source", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("last_heartbeat_utc"),
        _ts("last_seen_utc", nullable=False),
        sa.Column("heartbeats", sa.BigInteger(), nullable=False),
    )


_TABLES = (
    "sources",
    "ingest_errors",
    "logs",
    "positions",
    "accounts",
    "bars",
    "series",
    "oco_groups",
    "executions",
    "order_status_history",
    "orders",
    "runs",
    "instances",
    "strategies",
    "api_keys",
)


def downgrade() -> None:
    """Drop every table this revision created."""
    for table in _TABLES:
        op.drop_table(table)
