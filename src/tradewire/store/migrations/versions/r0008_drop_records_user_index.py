"""Drop ``ix_records_user_seq``: every append paid for it, no query of the product reads it.

Revision ID: 0008_drop_records_user_index
Revises: 0007_deliveries_by_seq

Each record's insert also went into (user_id, seq). With many users, the
records of one commit land on as many leaf pages of that index as they have
users: a commit of a few hundred user events to a thousand users dirtied
(and wrote to the WAL, 4 KiB each) a few hundred pages of it. Nothing of the
gateway reads it: a user's events are read from ``deliveries``
(``ix_deliveries_user_seq``), a run's from the ingest projections.
``SqliteStore.read(stream, user_id=...)`` still answers, from the
(stream, seq) index and a filter.
"""

from __future__ import annotations

from alembic import op

revision: str = "0008_drop_records_user_index"
down_revision: str | None = "0007_deliveries_by_seq"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Drop ``ix_records_user_seq``."""
    op.drop_index("ix_records_user_seq", table_name="records")


def downgrade() -> None:
    """Create ``ix_records_user_seq`` on (user_id, seq) again."""
    op.create_index("ix_records_user_seq", "records", ["user_id", "seq"])
