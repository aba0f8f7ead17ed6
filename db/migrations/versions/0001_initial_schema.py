"""Initial schema: users, identities, chats, settings, requests, transcripts, images.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("platform_user_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_identities_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("platform", "platform_user_id", name=op.f("uq_identities_platform_platform_user_id")),
    )
    op.create_index(op.f("ix_identities_user_id"), "identities", ["user_id"])
    op.create_table(
        "chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("platform_chat_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint("kind IN ('private', 'group')", name=op.f("ck_chats_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
        sa.UniqueConstraint("platform", "platform_chat_id", name=op.f("uq_chats_platform_platform_chat_id")),
    )
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("default_style", sa.String(length=64), nullable=True),
        sa.Column("confirm_before_generate", sa.Boolean(), server_default=sa.true(), nullable=False),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_settings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_settings")),
    )
    op.create_table(
        "chat_settings",
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("default_style", sa.String(length=64), nullable=True),
        sa.Column("confirm_before_generate", sa.Boolean(), nullable=True),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_chat_settings_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_settings")),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("style", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("prompt_positive", sa.Text(), nullable=True),
        sa.Column("prompt_negative", sa.Text(), nullable=True),
        sa.Column("source_language", sa.String(length=16), nullable=True),
        sa.Column("error_key", sa.String(length=64), nullable=True),
        _timestamp("card_expires_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint("kind IN ('voice', 'text', 'photo', 'restyle', 'reroll')", name=op.f("ck_requests_kind")),
        sa.CheckConstraint(
            "state IN ('transcribing', 'awaiting_confirmation', 'queued', 'running', "
            "'delivered', 'failed', 'cancelled', 'expired')",
            name=op.f("ck_requests_state"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_requests_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["chat_id"], ["chats.id"], name=op.f("fk_requests_chat_id_chats"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["requests.id"], name=op.f("fk_requests_parent_id_requests"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index(op.f("ix_requests_state"), "requests", ["state"])
    op.create_index(op.f("ix_requests_user_id_created_at"), "requests", ["user_id", "created_at"])
    op.create_table(
        "transcripts",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("heard_text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("language_probability", sa.Float(), nullable=False),
        sa.Column("translation", sa.Text(), nullable=True),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("final_text", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_transcripts_request_id_requests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_transcripts")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("style", sa.String(length=64), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("role IN ('base', 'anime')", name=op.f("ck_images_role")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_images_request_id_requests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("request_id", "role", name=op.f("uq_images_request_id_role")),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    op.drop_table("images")
    op.drop_table("transcripts")
    op.drop_index(op.f("ix_requests_user_id_created_at"), table_name="requests")
    op.drop_index(op.f("ix_requests_state"), table_name="requests")
    op.drop_table("requests")
    op.drop_table("chat_settings")
    op.drop_table("user_settings")
    op.drop_table("chats")
    op.drop_index(op.f("ix_identities_user_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_table("users")
