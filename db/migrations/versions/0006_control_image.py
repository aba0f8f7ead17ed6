"""Drawing keeping a picture's composition: requests.control and the ``control`` image role.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The image roles before this revision (as 0004 left them; 0005 did not change them).
ROLES = ("base", "anime", "v1", "v2", "v3", "v4", "v1b", "v2b", "v3b", "v4b")


def upgrade() -> None:
    """Add the column (NULL: drawn from the words alone) and allow images of role ``control``."""
    op.add_column("requests", sa.Column("control", sa.String(length=16), nullable=True))
    with op.batch_alter_table("images") as batch:
        batch.drop_constraint(op.f("ck_images_role"), type_="check")
        batch.create_check_constraint(op.f("ck_images_role"), f"role IN ({', '.join(repr(role) for role in (*ROLES, 'control'))})")


def downgrade() -> None:
    """Drop the control images and the column."""
    op.execute("DELETE FROM images WHERE role = 'control'")
    with op.batch_alter_table("images") as batch:
        batch.drop_constraint(op.f("ck_images_role"), type_="check")
        batch.create_check_constraint(op.f("ck_images_role"), f"role IN ({', '.join(repr(role) for role in ROLES)})")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("control")
