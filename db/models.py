"""The history database schema (SQLAlchemy 2.0 typed declarative models).

Ids: users, identities, chats and images use integer keys (internal only).
Requests use a random uuid4 hex string: the id travels inside chat buttons
(Discord ``custom_id``, Telegram ``callback_data``, both client-visible), so it
must not be guessable or reveal how many requests exist; it doubles as the
engine's job id (so a re-delivered job is recognised) and fits comfortably in
Telegram's 64-byte callback data.

Enumerated columns are strings guarded by CHECK constraints; their Python
vocabularies live in ``db.states`` and ``db.enums``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.columns import UTCDateTime, utcnow
from db.enums import ChatKind, ImageRole, RequestKind
from db.states import RequestState

#: Deterministic constraint names (Alembic needs them, SQLite batch mode above all).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: type[Any]) -> str:
    """SQL for ``column IN ('a', 'b', ...)`` from a StrEnum."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def new_request_id() -> str:
    """A fresh request id: 32 lowercase hex characters (uuid4)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention and the UTC timestamp type."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class User(Base):
    """A person, possibly known on several platforms."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    identities: Mapped[list[Identity]] = relationship(back_populates="user", lazy="raise")


class Identity(Base):
    """A user's account on one platform (``telegram``, ``discord``, ...)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="identities", lazy="raise")


class Chat(Base):
    """A conversation the bot is in: a private chat or a group/channel."""

    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("platform", "platform_chat_id"),
        CheckConstraint(_one_of("kind", ChatKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_chat_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the chat refused a voice message (a Telegram user who takes none); NULL: it takes them.
    voice_refused_at: Mapped[datetime | None] = mapped_column()


class UserSettings(Base):
    """A user's preferences. ``language`` NULL = follow the platform locale; ``default_style`` NULL = server default."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    default_style: Mapped[str | None] = mapped_column(String(64))
    confirm_before_generate: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: ``off`` / ``voice`` / ``always`` (``db.preferences.VOICE_MODES``); NULL: the deployment's ``VOICE_REPLIES``.
    voice_replies: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatSettings(Base):
    """A group's overrides of its members' preferences (NULL = no override)."""

    __tablename__ = "chat_settings"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    default_style: Mapped[str | None] = mapped_column(String(64))
    confirm_before_generate: Mapped[bool | None]
    #: The chat's content policy level (``engine.policy.levels.Level``); NULL: the deployment's ``CONTENT_POLICY``.
    content_policy: Mapped[str | None] = mapped_column(String(16))
    #: False: no voice replies in this group; NULL: each member's own setting.
    voice_replies: Mapped[bool | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Request(Base):
    """One thing a user asked for, from the first message to the delivered image."""

    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint(_one_of("kind", RequestKind), name="kind"),
        CheckConstraint(_one_of("state", RequestState), name="state"),
        Index(None, "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_request_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(32), index=True)
    style: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    prompt_positive: Mapped[str | None] = mapped_column(Text)
    prompt_negative: Mapped[str | None] = mapped_column(Text)
    source_language: Mapped[str | None] = mapped_column(String(16))
    #: An upscale request's factor (2 or 4); NULL for every other kind.
    upscale: Mapped[int | None] = mapped_column()
    error_key: Mapped[str | None] = mapped_column(String(64))
    card_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    #: What a text request's drawing keeps of its ``control`` image (``engine.api.ControlKind``); NULL: none.
    control: Mapped[str | None] = mapped_column(String(16))
    #: The picture's size (NULL: the deployment's); portrait and landscape pictures set it.
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    #: A remix: how far (0..1) it moves from its parent's picture towards the new words (NULL: not a remix).
    strength: Mapped[float | None] = mapped_column(Float)
    #: Drawing steps and guidance of its own (a picture drawn again as its PNG says; NULL: the deployment's).
    steps: Mapped[int | None] = mapped_column()
    guidance: Mapped[float | None] = mapped_column(Float)

    transcript: Mapped[Transcript | None] = relationship(lazy="raise", passive_deletes=True)
    images: Mapped[list[Image]] = relationship(lazy="raise", passive_deletes=True, order_by="Image.id")


class Transcript(Base):
    """What was heard in a voice note, how the user edited it, and the text finally used."""

    __tablename__ = "transcripts"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True)
    heard_text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16))
    language_probability: Mapped[float] = mapped_column(Float)
    translation: Mapped[str | None] = mapped_column(Text)
    #: ``[{"text": str, "probability": float}, ...]`` in spoken order.
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    edited_text: Mapped[str | None] = mapped_column(Text)
    final_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Image(Base):
    """A picture produced for (or sent with) a request; the file lives under the data dir."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("request_id", "role"),
        CheckConstraint(_one_of("role", ImageRole), name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))
    #: POSIX path relative to the data dir, e.g. ``images/ab/cd/<sha256>.png``.
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int]
    height: Mapped[int]
    seed: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(255))
    style: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
