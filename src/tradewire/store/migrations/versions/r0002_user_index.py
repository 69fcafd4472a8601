"""Index records by user, for a user's history and replay.

Revision ID: 0002_user_index
Revises: 0001_records
"""

from __future__ import annotations

from alembic import op

revision: str = "0002_user_index"
down_revision: str | None = "0001_records"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``ix_records_user_seq`` on (user_id, seq)."""
    op.create_index("ix_records_user_seq", "records", ["user_id", "seq"])


def downgrade() -> None:
    """Drop ``ix_records_user_seq``."""
    op.drop_index("ix_records_user_seq", table_name="records")
