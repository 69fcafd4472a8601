"""Key the ``sources`` health table by (user, source), not by source name alone.

Revision ID: 0006_sources_per_user
Revises: 0005_users

Two users' connectors may share a name ("quantower-connector"); keyed by the
name alone, the second user's heartbeats took the first user's row over.
The rows are copied into the new table (a missing owner becomes ``""``), so
an upgraded data dir keeps its health history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_sources_per_user"
down_revision: str | None = "0005_users"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = "status, last_heartbeat_utc, last_seen_utc, heartbeats"


def _create(name: str, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("user_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("last_heartbeat_utc", sa.String(32), nullable=True),
        sa.Column("last_seen_utc", sa.String(32), nullable=False),
        sa.Column("heartbeats", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    )


def upgrade() -> None:
    """Copy ``sources`` into a table keyed by (user_id, source)."""
    _create("sources_by_user", ("user_id", "source"))
    op.execute(
        f"INSERT INTO sources_by_user (user_id, source, {_COLUMNS}) "
        f"SELECT COALESCE(user_id, ''), source, {_COLUMNS} FROM sources"
    )
    op.drop_table("sources")
    op.rename_table("sources_by_user", "sources")


def downgrade() -> None:
    """Back to one row per source name (the most recently seen owner wins)."""
    _create("sources_by_name", ("source",))
    op.execute(
        f"INSERT INTO sources_by_name (user_id, source, {_COLUMNS}) "
        f"SELECT user_id, source, {_COLUMNS} FROM sources s WHERE last_seen_utc = "
        "(SELECT max(last_seen_utc) FROM sources t WHERE t.source = s.source)"
    )
    op.drop_table("sources")
    op.rename_table("sources_by_name", "sources")
