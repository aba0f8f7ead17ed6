"""A chat's content policy level, set by its admins: chat_settings.content_policy.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column (NULL: the deployment's CONTENT_POLICY applies)."""
    op.add_column("chat_settings", sa.Column("content_policy", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("chat_settings") as batch:
        batch.drop_column("content_policy")
