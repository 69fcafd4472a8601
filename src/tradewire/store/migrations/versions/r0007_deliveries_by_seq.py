"""Key ``deliveries`` by the event's seq, and attempts by their delivery's seq.

Revision ID: 0007_deliveries_by_seq
Revises: 0006_sources_per_user

Keyed by ``event_id`` (a random UUID), every guaranteed event cost a random
B-tree insert into the primary key of ``deliveries`` and every attempt one
into ``ix_delivery_attempts_event``: each lands on a different leaf page, so
a commit of a few hundred events dirtied (and wrote to the WAL) a few
hundred pages per index. Keyed by seq, the same inserts append.

* ``deliveries.seq`` (the seq of the event's ``user_event`` record) becomes
  the primary key (SQLite's rowid). ``event_id`` stays, unindexed: records'
  ``uq_records_stream_key`` already answers event_id -> seq.
* ``delivery_attempts.delivery_seq`` names the delivery (NULL for an
  attempt whose event has no delivery row, as an INFORMATIONAL event's late
  channel result can be); ``event_id`` stays, unindexed, so such a row keeps
  its meaning. ``ix_delivery_attempts_delivery`` on (delivery_seq, seq)
  replaces ``ix_delivery_attempts_event``.
* ``ix_deliveries_state_seq`` is dropped: ``max(seq)`` now reads the rowid
  and no query filters by state without a user (``ix_deliveries_user_seq``).

The rows are copied into the new tables, so an upgraded data dir keeps every
delivery and attempt.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007_deliveries_by_seq"
down_revision: str | None = "0006_sources_per_user"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_DELIVERY = (
    "user_id, event_type, priority, state, delivered_via, attempts, reason,"
    " accepted_at_ms, updated_at_ms"
)
_ATTEMPT = "attempt, channel, outcome, error, at_ms"


def _delivery_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("delivered_via", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("accepted_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    ]


def _attempt_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    ]


def _swap(old: str, new: str) -> None:
    op.drop_table(old)  # drops its indexes: their names are free again
    op.rename_table(new, old)


def upgrade() -> None:
    """Copy both tables into their seq-keyed forms."""
    op.create_table(
        "deliveries_by_seq",
        sa.Column("seq", _SEQ, autoincrement=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        *_delivery_columns(),
        sa.PrimaryKeyConstraint("seq", name="pk_deliveries"),
    )
    op.execute(
        f"INSERT INTO deliveries_by_seq (seq, event_id, {_DELIVERY}) "
        f"SELECT seq, event_id, {_DELIVERY} FROM deliveries"
    )
    op.create_table(
        "delivery_attempts_by_seq",
        sa.Column("seq", _SEQ, autoincrement=False),
        sa.Column("delivery_seq", _SEQ, nullable=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        *_attempt_columns(),
        sa.PrimaryKeyConstraint("seq", name="pk_delivery_attempts"),
    )
    op.execute(
        f"INSERT INTO delivery_attempts_by_seq (seq, delivery_seq, event_id, {_ATTEMPT}) "
        f"SELECT a.seq, d.seq, a.event_id, {', '.join('a.' + c for c in _ATTEMPT.split(', '))} "
        "FROM delivery_attempts a LEFT JOIN deliveries d ON d.event_id = a.event_id"
    )
    _swap("delivery_attempts", "delivery_attempts_by_seq")
    _swap("deliveries", "deliveries_by_seq")
    op.create_index("ix_deliveries_user_seq", "deliveries", ["user_id", "seq"])
    op.create_index("ix_delivery_attempts_delivery", "delivery_attempts", ["delivery_seq", "seq"])


def downgrade() -> None:
    """Back to tables keyed by ``event_id``."""
    op.create_table(
        "deliveries_by_event",
        sa.Column("event_id", sa.String(255)),
        *_delivery_columns(),
        sa.Column("seq", _SEQ, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="deliveries_pkey"),  # 0004's name on PostgreSQL
    )
    op.execute(
        f"INSERT INTO deliveries_by_event (event_id, {_DELIVERY}, seq) "
        f"SELECT event_id, {_DELIVERY}, seq FROM deliveries"
    )
    op.create_table(
        "delivery_attempts_by_event",
        sa.Column("seq", _SEQ),
        sa.Column("event_id", sa.String(255), nullable=False),
        *_attempt_columns(),
        sa.PrimaryKeyConstraint("seq", name="delivery_attempts_pkey"),
    )
    op.execute(
        f"INSERT INTO delivery_attempts_by_event (seq, event_id, {_ATTEMPT}) "
        f"SELECT seq, event_id, {_ATTEMPT} FROM delivery_attempts"
    )
    _swap("delivery_attempts", "delivery_attempts_by_event")
    _swap("deliveries", "deliveries_by_event")
    op.create_index("ix_deliveries_user_seq", "deliveries", ["user_id", "seq"])
    op.create_index("ix_deliveries_state_seq", "deliveries", ["state", "seq"])
    op.create_index("ix_delivery_attempts_event", "delivery_attempts", ["event_id", "seq"])
