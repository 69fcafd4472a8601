"""The user directory: profiles (addresses, preferences) and Web Push subscriptions.

Revision ID: 0005_users
Revises: 0004_delivery

Both tables are derived from the ``users`` stream by
:class:`tradewire.users.UsersProjector`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_users"
down_revision: str | None = "0004_delivery"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the profile, push subscription and Telegram tables."""
    op.create_table(
        "user_profiles",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "push_subscriptions",
        sa.Column("endpoint", sa.String(2048), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("p256dh", sa.String(255), nullable=False),
        sa.Column("auth", sa.String(255), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_push_subscriptions_user", "push_subscriptions", ["user_id"])
    op.create_table(
        "telegram_chats",
        sa.Column("chat_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_telegram_chats_user", "telegram_chats", ["user_id"])
    op.create_table(
        "telegram_link_codes",
        sa.Column("code_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    """Drop the user directory tables."""
    op.drop_table("telegram_link_codes")
    op.drop_index("ix_telegram_chats_user", table_name="telegram_chats")
    op.drop_table("telegram_chats")
    op.drop_index("ix_push_subscriptions_user", table_name="push_subscriptions")
    op.drop_table("push_subscriptions")
    op.drop_table("user_profiles")
