"""Voice replies: a user's choice (user_settings.voice_replies) and a group's "off" (chat_settings.voice_replies).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns (NULL: the deployment's VOICE_REPLIES; in a group, each member's own)."""
    op.add_column("user_settings", sa.Column("voice_replies", sa.String(length=16), nullable=True))
    op.add_column("chat_settings", sa.Column("voice_replies", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    for table in ("chat_settings", "user_settings"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("voice_replies")
