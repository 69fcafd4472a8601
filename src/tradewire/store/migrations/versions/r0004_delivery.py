"""User-event delivery: the status of every guaranteed event and its attempt log.

Revision ID: 0004_delivery
Revises: 0003_ingest

Both tables are derived from the ``records`` log (streams ``user_event``
and ``delivery``) by :class:`tradewire.server.delivery_store.DeliveryProjector`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_delivery"
down_revision: str | None = "0003_ingest"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``deliveries`` and ``delivery_attempts``."""
    op.create_table(
        "deliveries",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("delivered_via", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("accepted_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
    )
    op.create_index("ix_deliveries_user_seq", "deliveries", ["user_id", "seq"])
    op.create_index("ix_deliveries_state_seq", "deliveries", ["state", "seq"])
    op.create_table(
        "delivery_attempts",
        sa.Column("seq", _SEQ, primary_key=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_delivery_attempts_event", "delivery_attempts", ["event_id", "seq"])


def downgrade() -> None:
    """Drop the delivery tables."""
    op.drop_table("delivery_attempts")
    op.drop_table("deliveries")
