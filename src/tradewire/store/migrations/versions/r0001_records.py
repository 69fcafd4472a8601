"""Create the records log and the key-value meta table.

Revision ID: 0001_records
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_records"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# INTEGER PRIMARY KEY is SQLite's rowid alias (AUTOINCREMENT: never reused);
# BIGINT identity everywhere else.
_SEQ_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``records`` (seq, stream, key, ...) and ``meta`` (name -> value)."""
    op.create_table(
        "records",
        sa.Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("stream", "key", name="uq_records_stream_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_records_stream_seq", "records", ["stream", "seq"])
    meta = op.create_table(
        "meta",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.bulk_insert(meta, [{"name": "schema", "value": "tradewire"}])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("meta")
    op.drop_index("ix_records_stream_seq", table_name="records")
    op.drop_table("records")
