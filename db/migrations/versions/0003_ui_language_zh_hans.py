"""The Simplified Chinese UI language is "zh-Hans" (as the Traditional one is "zh-Hant"), no longer "zh".

Rewrites the stored choices of users (user_settings.language) and chats
(chat_settings.language).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables whose ``language`` column holds a UI language.
TABLES = ("user_settings", "chat_settings")


def _rename(old: str, new: str) -> None:
    """Every stored UI language ``old`` becomes ``new``."""
    for name in TABLES:
        table = sa.table(name, sa.column("language", sa.String(16)))
        op.execute(table.update().where(table.c.language == old).values(language=new))


def upgrade() -> None:
    """Stored "zh" becomes "zh-Hans"."""
    _rename("zh", "zh-Hans")


def downgrade() -> None:
    """Stored "zh-Hans" becomes "zh" again."""
    _rename("zh-Hans", "zh")
