"""A request's picture size, a remix's strength, its own steps and guidance (requests.width, height, strength, steps,
guidance); the kind ``remix``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


KINDS_BEFORE = ("voice", "text", "photo", "restyle", "reroll", "variations", "kept", "upscale")
KINDS_AFTER = (*KINDS_BEFORE, "remix")


def _kinds(batch: object, kinds: tuple[str, ...]) -> None:
    """The check on ``requests.kind`` allows ``kinds``."""
    batch.drop_constraint(op.f("ck_requests_kind"), type_="check")  # type: ignore[attr-defined]
    allowed = ", ".join(f"'{kind}'" for kind in kinds)
    batch.create_check_constraint(op.f("ck_requests_kind"), f"kind IN ({allowed})")  # type: ignore[attr-defined]


def upgrade() -> None:
    """Add the columns (NULL: the deployment's size, steps and guidance; not a remix) and the kind."""
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("height", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("strength", sa.Float(), nullable=True))
        batch.add_column(sa.Column("steps", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("guidance", sa.Float(), nullable=True))
        _kinds(batch, KINDS_AFTER)


def downgrade() -> None:
    """Drop the columns and the kind (remixes become rerolls of their picture: same words, new drawing)."""
    requests = sa.table("requests", sa.column("kind", sa.String(16)))
    op.execute(requests.update().where(requests.c.kind == "remix").values(kind="reroll"))
    with op.batch_alter_table("requests") as batch:
        _kinds(batch, KINDS_BEFORE)
        batch.drop_column("guidance")
        batch.drop_column("steps")
        batch.drop_column("strength")
        batch.drop_column("height")
        batch.drop_column("width")
