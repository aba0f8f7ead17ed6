"""Variations and upscaling: requests of kind "variations", "kept" and "upscale", images "v1" .. "v4", "v1b" .. "v4b".

Widens the CHECK constraints on requests.kind and images.role (SQLite
rebuilds the tables in batch mode) and adds requests.upscale (an upscale
request's factor).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, the values before, the values added).
CHECKS = (
    ("requests", "kind", ("voice", "text", "photo", "restyle", "reroll"), ("variations", "kept", "upscale")),
    ("images", "role", ("base", "anime"), ("v1", "v2", "v3", "v4", "v1b", "v2b", "v3b", "v4b")),
)


def _allow(table: str, column: str, values: Sequence[str]) -> None:
    """The CHECK constraint of ``table.column`` allows exactly ``values``."""
    name = f"ck_{table}_{column}"
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(name), f"{column} IN ({', '.join(repr(v) for v in values)})")


def upgrade() -> None:
    """Allow the new kinds and roles; add the upscale factor."""
    for table, column, before, added in CHECKS:
        _allow(table, column, (*before, *added))
    op.add_column("requests", sa.Column("upscale", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Back to the old kinds and roles (variations and upscale requests and their images must be deleted first)."""
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("upscale")
    for table, column, before, _ in CHECKS:
        _allow(table, column, before)
