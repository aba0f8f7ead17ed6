"""A chat that refused a voice message (chats.voice_refused_at), remembered across restarts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column (NULL: the chat takes voice messages, as every chat was assumed to)."""
    op.add_column("chats", sa.Column("voice_refused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("voice_refused_at")
