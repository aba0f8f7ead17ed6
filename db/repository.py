"""Every read and write the bot makes to the history database, one method per use.

Each method runs in its own short transaction and returns plain values or
immutable records (``db.records``, ``db.preferences``), never live ORM objects.
Writes that can race (two handlers, a redelivered job, two bot processes) are
single guarded statements: ``INSERT ... ON CONFLICT`` for get-or-create and
upserts, ``UPDATE ... WHERE state IN (...)`` for state transitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from db.columns import utcnow
from db.enums import DERIVED_KINDS, ChatKind, ImageRole, RequestKind
from db.files import ImageStore
from db.limits import Cap, CapReached, Caps
from db.models import Chat, ChatSettings, Identity, Image, Request, Transcript, User, UserSettings
from db.preferences import (
    DEFAULT_PREFERENCES,
    KEEP,
    ChatOverrides,
    Keep,
    Preferences,
    check_language,
    check_policy,
    effective_preferences,
)
from db.records import ImageRecord, RequestAddress, RequestRecord
from db.session import Database
from db.states import ACTIVE_STATES, INITIAL_STATES, TERMINAL_STATES, RequestState, allowed_sources

#: Columns a transition may set besides ``state`` (and the automatic timestamps).
TRANSITION_FIELDS = frozenset(
    {
        "style",
        "seed",
        "prompt_positive",
        "prompt_negative",
        "source_language",
        "error_key",
        "card_expires_at",
        "started_at",
        "finished_at",
    }
)


#: PostgreSQL advisory lock key serialising admissions (cap checks + the write they guard): "v2a\0".
ADMISSION_LOCK_KEY = 0x76326100


class SpokenWord(Protocol):
    """Anything with a word's text and confidence (``engine.api.Word`` fits)."""

    @property
    def text(self) -> str: ...

    @property
    def probability(self) -> float: ...


def _dialect_insert(dialect: str) -> Callable[..., Any]:
    """The ``insert()`` that supports ``ON CONFLICT`` for this backend."""
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise ValueError(f"unsupported database {dialect!r}: use sqlite+aiosqlite or postgresql+asyncpg")


def _with_details(statement: Select[Any]) -> Select[Any]:
    """Load a request's transcript and images along with it."""
    return statement.options(selectinload(Request.transcript), selectinload(Request.images))


def _changes(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not ``KEEP``."""
    return {name: value for name, value in values.items() if value is not KEEP}


class Repository:
    """The history database as the bot uses it.

    ``data_dir`` holds the image files (``<data_dir>/images/...``); ``clock``
    supplies timestamps (timezone-aware UTC) and is replaceable in tests.
    """

    def __init__(self, database: Database, data_dir: Path, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = database
        self._insert = _dialect_insert(database.dialect)
        self._images = ImageStore(data_dir)
        self._clock = clock

    # --- users and chats -------------------------------------------------------------------

    async def get_or_create_user(self, platform: str, platform_user_id: str, display_name: str | None = None) -> int:
        """The user id behind a platform account, creating the user on first contact.

        Safe under concurrent calls for the same account: exactly one user is
        created and every caller gets its id. A changed ``display_name`` is
        stored.
        """
        async with self._db.sessions() as session:
            found = await self._identity(session, platform, platform_user_id)
            if found is not None:
                user_id, known_name = found
                if display_name is not None and display_name != known_name:
                    await session.execute(
                        update(Identity)
                        .where(Identity.platform == platform, Identity.platform_user_id == platform_user_id)
                        .values(display_name=display_name)
                    )
                    await session.commit()
                return user_id

            now = self._clock()
            new_user_id = (await session.execute(insert(User).values(created_at=now).returning(User.id))).scalar_one()
            claimed = await session.execute(
                self._insert(Identity)
                .values(
                    user_id=new_user_id,
                    platform=platform,
                    platform_user_id=platform_user_id,
                    display_name=display_name,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=[Identity.platform, Identity.platform_user_id])
                .returning(Identity.id)
            )
            if claimed.scalar_one_or_none() is not None:
                await session.commit()
                return new_user_id
            # Another caller registered this account first: drop our user row, use theirs.
            await session.rollback()
            winner = await self._identity(session, platform, platform_user_id)
            if winner is None:
                raise RuntimeError(f"identity {platform}:{platform_user_id} vanished after a conflicting insert")
            return winner[0]

    @staticmethod
    async def _identity(session: AsyncSession, platform: str, platform_user_id: str) -> tuple[int, str | None] | None:
        row = (
            await session.execute(
                select(Identity.user_id, Identity.display_name).where(
                    Identity.platform == platform, Identity.platform_user_id == platform_user_id
                )
            )
        ).one_or_none()
        return None if row is None else (row.user_id, row.display_name)

    async def get_or_create_chat(self, platform: str, platform_chat_id: str, kind: ChatKind) -> int:
        """The chat id for a platform chat, creating it on first contact (race-safe)."""
        kind = ChatKind(kind)
        lookup = select(Chat.id).where(Chat.platform == platform, Chat.platform_chat_id == platform_chat_id)
        async with self._db.sessions() as session:
            chat_id = (await session.execute(lookup)).scalar_one_or_none()
            if chat_id is not None:
                return chat_id
            await session.execute(
                self._insert(Chat)
                .values(platform=platform, platform_chat_id=platform_chat_id, kind=kind.value, created_at=self._clock())
                .on_conflict_do_nothing(index_elements=[Chat.platform, Chat.platform_chat_id])
            )
            await session.commit()
            return (await session.execute(lookup)).scalar_one()

    # --- settings --------------------------------------------------------------------------

    async def get_user_settings(self, user_id: int) -> Preferences:
        """A user's preferences (defaults if never changed)."""
        async with self._db.sessions() as session:
            row = await session.get(UserSettings, user_id)
        if row is None:
            return DEFAULT_PREFERENCES
        return Preferences(row.language, row.default_style, row.confirm_before_generate)

    async def update_user_settings(
        self,
        user_id: int,
        *,
        language: str | Keep | None = KEEP,
        default_style: str | Keep | None = KEEP,
        confirm_before_generate: bool | Keep = KEEP,
    ) -> Preferences:
        """Change some of a user's preferences (``KEEP`` = unchanged, ``None`` = back to default)."""
        check_language(language)
        changes = _changes(
            language=language, default_style=default_style, confirm_before_generate=confirm_before_generate
        )
        await self._upsert_settings(UserSettings, UserSettings.user_id, user_id, DEFAULT_PREFERENCES, changes)
        return await self.get_user_settings(user_id)

    async def get_chat_settings(self, chat_id: int) -> ChatOverrides:
        """A group's overrides (all ``None`` if never changed)."""
        async with self._db.sessions() as session:
            row = await session.get(ChatSettings, chat_id)
        if row is None:
            return ChatOverrides()
        return ChatOverrides(row.language, row.default_style, row.confirm_before_generate, row.content_policy)

    async def update_chat_settings(
        self,
        chat_id: int,
        *,
        language: str | Keep | None = KEEP,
        default_style: str | Keep | None = KEEP,
        confirm_before_generate: bool | Keep | None = KEEP,
        content_policy: str | Keep | None = KEEP,
    ) -> ChatOverrides:
        """Change some of a group's overrides (``KEEP`` = unchanged, ``None`` = no override)."""
        check_language(language)
        check_policy(content_policy)
        changes = _changes(
            language=language,
            default_style=default_style,
            confirm_before_generate=confirm_before_generate,
            content_policy=content_policy,
        )
        await self._upsert_settings(ChatSettings, ChatSettings.chat_id, chat_id, ChatOverrides(), changes)
        return await self.get_chat_settings(chat_id)

    async def _upsert_settings(
        self,
        model: type[UserSettings | ChatSettings],
        key: InstrumentedAttribute[int],
        key_value: int,
        defaults: Preferences | ChatOverrides,
        changes: dict[str, Any],
    ) -> None:
        now = self._clock()
        row = {
            key.key: key_value,
            "language": defaults.language,
            "default_style": defaults.default_style,
            "confirm_before_generate": defaults.confirm_before_generate,
            "updated_at": now,
        } | changes
        statement = self._insert(model).values(**row)
        if changes:
            statement = statement.on_conflict_do_update(index_elements=[key], set_=changes | {"updated_at": now})
        else:
            statement = statement.on_conflict_do_nothing(index_elements=[key])
        async with self._db.engine.begin() as connection:
            await connection.execute(statement)

    async def effective_settings(self, user_id: int, chat_id: int | None = None) -> Preferences:
        """The preferences that apply to ``user_id`` in ``chat_id``: group override > user > default.

        Pass ``chat_id`` only for group chats; private chats have no overrides.
        """
        user = await self.get_user_settings(user_id)
        chat = await self.get_chat_settings(chat_id) if chat_id is not None else None
        return effective_preferences(user, chat)

    # --- requests --------------------------------------------------------------------------

    async def create_request(
        self,
        *,
        user_id: int,
        chat_id: int,
        kind: RequestKind,
        state: RequestState = RequestState.TRANSCRIBING,
        parent_id: str | None = None,
        style: str | None = None,
        seed: int | None = None,
        prompt_positive: str | None = None,
        prompt_negative: str | None = None,
        source_language: str | None = None,
        card_expires_at: datetime | None = None,
        caps: Caps | None = None,
    ) -> str:
        """Record a new request and return its id.

        ``state`` must be an initial state (transcribing, awaiting_confirmation
        or queued). Restyle and reroll requests must name their ``parent_id``.
        With ``caps`` the request is only created while the user made fewer
        than ``requests_per_minute`` requests in the last minute and the active
        caps leave room, checked atomically with the insert (raises
        :class:`~db.limits.CapReached` otherwise).
        """
        kind, state = RequestKind(kind), RequestState(state)
        if state not in INITIAL_STATES:
            raise ValueError(f"a request cannot start in state {state.value!r}")
        if (kind in DERIVED_KINDS) != (parent_id is not None):
            raise ValueError(f"parent_id is required for, and only for, {sorted(k.value for k in DERIVED_KINDS)}")
        now = self._clock()
        request = Request(
            user_id=user_id,
            chat_id=chat_id,
            kind=kind.value,
            parent_id=parent_id,
            state=state.value,
            style=style,
            seed=seed,
            prompt_positive=prompt_positive,
            prompt_negative=prompt_negative,
            source_language=source_language,
            card_expires_at=card_expires_at,
            created_at=now,
            updated_at=now,
        )
        async with self._db.sessions() as session:
            if caps is not None:
                await self._admit(await session.connection(), user_id, caps, new_request=True)
            session.add(request)
            await session.commit()
        return request.id

    async def _admit(self, connection: AsyncConnection, user_id: int, caps: Caps, *, new_request: bool) -> None:
        """Take the admission lock in ``connection``'s transaction, then raise ``CapReached`` for the first cap hit.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: a write first
        (pysqlite only opens a transaction before a write), which takes the
        database's write lock, so the counts below and the caller's write see
        no concurrent admission in between.
        """
        if self._db.dialect == "postgresql":
            await connection.execute(select(func.pg_advisory_xact_lock(ADMISSION_LOCK_KEY)))
        else:
            await connection.execute(update(User).where(User.id == user_id).values(created_at=User.created_at))
        active = Request.state.in_(sorted(s.value for s in ACTIVE_STATES))
        since = self._clock() - timedelta(minutes=1)
        count = select(func.count()).select_from(Request)
        row = (
            await connection.execute(
                select(
                    count.where(Request.user_id == user_id, Request.created_at >= since).scalar_subquery(),
                    count.where(Request.user_id == user_id, active).scalar_subquery(),
                    count.where(active).scalar_subquery(),
                )
            )
        ).one()
        checks = [(Cap.ACTIVE_PER_USER, row[1]), (Cap.ACTIVE_TOTAL, row[2])]
        if new_request:
            checks.insert(0, (Cap.PER_MINUTE, row[0]))
        for cap, used in checks:
            if used >= caps.limit(cap):
                raise CapReached(cap, caps.limit(cap))

    async def transition(
        self,
        request_id: str,
        to_state: RequestState,
        *,
        from_states: Iterable[RequestState] | None = None,
        caps: Caps | None = None,
        **fields: Any,
    ) -> bool:
        """Move a request to ``to_state`` if it is in an allowed source state; True if it moved.

        A single guarded ``UPDATE ... WHERE id = :id AND state IN (:sources)``:
        a duplicate or late event (a redelivered job, a double click) finds the
        request already moved and returns False without touching it. Sources
        default to every state the table allows; ``from_states`` narrows them.
        ``fields`` sets other columns at the same time (see
        :data:`TRANSITION_FIELDS`). ``updated_at`` is always set; moving to
        ``running`` sets ``started_at``, back to ``queued`` clears it, and a
        terminal state sets ``finished_at`` (unless given in ``fields``).

        With ``caps`` (a move into an active state, e.g. confirm) the move is
        only made while the user's and everyone's active caps leave room,
        checked atomically with it; a request in an allowed state that would
        go over a cap raises :class:`~db.limits.CapReached` and stays put.

        Raises ``ValueError`` for a move the state table does not allow or an
        unknown field: those are programming errors, not races.
        """
        to_state = RequestState(to_state)
        sources = allowed_sources(to_state, from_states)
        unknown = fields.keys() - TRANSITION_FIELDS
        if unknown:
            raise ValueError(f"transition cannot set {sorted(unknown)}")
        now = self._clock()
        values: dict[str, Any] = {"state": to_state.value, "updated_at": now}
        if to_state is RequestState.RUNNING:
            values["started_at"] = now
        elif to_state is RequestState.QUEUED:
            values["started_at"] = None
        elif to_state in TERMINAL_STATES:
            values["finished_at"] = now
        values |= fields
        statement = (
            update(Request)
            .where(Request.id == request_id, Request.state.in_(sorted(s.value for s in sources)))
            .values(**values)
        )
        async with self._db.engine.begin() as connection:
            if caps is not None:
                current = select(Request.user_id, Request.state).where(Request.id == request_id)
                found = (await connection.execute(current)).one_or_none()
                if found is None or RequestState(found.state) not in sources:
                    return False
                await self._admit(connection, found.user_id, caps, new_request=False)
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def update_in_state(self, request_id: str, in_states: Iterable[RequestState], **fields: Any) -> bool:
        """Set ``fields`` (see :data:`TRANSITION_FIELDS`) only while the request is in ``in_states``.

        The same guarded single ``UPDATE`` as :meth:`transition`, without a move:
        e.g. a new style or an edited prompt on a card that is still open.
        """
        unknown = fields.keys() - TRANSITION_FIELDS
        if unknown or not fields:
            raise ValueError(f"cannot set {sorted(unknown) or 'nothing'}")
        statement = (
            update(Request)
            .where(Request.id == request_id, Request.state.in_(sorted(RequestState(s).value for s in in_states)))
            .values(updated_at=self._clock(), **fields)
        )
        async with self._db.engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def request_address(self, request_id: str) -> RequestAddress | None:
        """Where a request came from in platform terms (to message its user after a restart)."""
        statement = (
            select(Chat.platform, Chat.platform_chat_id, Chat.kind, Identity.platform_user_id)
            .join(Request, Request.chat_id == Chat.id)
            .join(Identity, (Identity.user_id == Request.user_id) & (Identity.platform == Chat.platform))
            .where(Request.id == request_id)
        )
        async with self._db.sessions() as session:
            row = (await session.execute(statement)).first()
        if row is None:
            return None
        return RequestAddress(row.platform, row.platform_chat_id, row.platform_user_id, ChatKind(row.kind))

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """A request with its transcript and images, or None if there is no such request."""
        async with self._db.sessions() as session:
            statement = _with_details(select(Request).where(Request.id == request_id))
            row = (await session.execute(statement)).scalar_one_or_none()
        return None if row is None else RequestRecord.from_row(row, self._images)

    async def history(self, user_id: int, limit: int = 10) -> list[RequestRecord]:
        """A user's delivered requests with their images, newest first, at most ``limit``."""
        statement = (
            select(Request)
            .where(Request.user_id == user_id, Request.state == RequestState.DELIVERED.value)
            .order_by(Request.created_at.desc(), Request.id.desc())
            .limit(limit)
        )
        return await self._records(statement)

    async def requests_in_states(self, states: Iterable[RequestState], *, user_id: int | None = None) -> list[RequestRecord]:
        """Requests currently in ``states`` (of one user, or everyone's), oldest first (restart recovery, /cancel)."""
        values = sorted(RequestState(s).value for s in states)
        statement = select(Request).where(Request.state.in_(values))
        if user_id is not None:
            statement = statement.where(Request.user_id == user_id)
        return await self._records(statement.order_by(Request.created_at, Request.id))

    async def _records(self, statement: Select[Any]) -> list[RequestRecord]:
        async with self._db.sessions() as session:
            rows = (await session.execute(_with_details(statement))).scalars().all()
        return [RequestRecord.from_row(row, self._images) for row in rows]

    async def count_active(self, user_id: int | None = None) -> int:
        """Requests queued or running: of ``user_id``, or of everyone when None (for limits)."""
        statement = (
            select(func.count()).select_from(Request).where(Request.state.in_(sorted(s.value for s in ACTIVE_STATES)))
        )
        if user_id is not None:
            statement = statement.where(Request.user_id == user_id)
        async with self._db.sessions() as session:
            return (await session.execute(statement)).scalar_one()

    async def count_requests_since(self, user_id: int, since: datetime) -> int:
        """How many requests ``user_id`` created at or after ``since`` (rate limiting)."""
        statement = (
            select(func.count()).select_from(Request).where(Request.user_id == user_id, Request.created_at >= since)
        )
        async with self._db.sessions() as session:
            return (await session.execute(statement)).scalar_one()

    # --- transcripts -----------------------------------------------------------------------

    async def save_transcript(
        self,
        request_id: str,
        *,
        heard_text: str,
        language: str,
        language_probability: float,
        translation: str | None = None,
        words: Iterable[SpokenWord] = (),
    ) -> None:
        """Store what was heard for a request, replacing an earlier transcript (re-transcribe) and its edits."""
        now = self._clock()
        heard = {
            "heard_text": heard_text,
            "language": language,
            "language_probability": language_probability,
            "translation": translation,
            "words": [{"text": w.text, "probability": w.probability} for w in words],
            "edited_text": None,
            "final_text": None,
            "updated_at": now,
        }
        statement = (
            self._insert(Transcript)
            .values(request_id=request_id, created_at=now, **heard)
            .on_conflict_do_update(index_elements=[Transcript.request_id], set_=heard)
        )
        async with self._db.engine.begin() as connection:
            await connection.execute(statement)

    async def record_edit(self, request_id: str, edited_text: str) -> bool:
        """Store the user's correction of the transcript; False if the request has no transcript."""
        return await self._update_transcript(request_id, edited_text=edited_text)

    async def set_final_text(self, request_id: str, final_text: str) -> bool:
        """Store the text the picture is drawn from; False if the request has no transcript."""
        return await self._update_transcript(request_id, final_text=final_text)

    async def _update_transcript(self, request_id: str, **values: str) -> bool:
        statement = (
            update(Transcript).where(Transcript.request_id == request_id).values(updated_at=self._clock(), **values)
        )
        async with self._db.engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    # --- images ----------------------------------------------------------------------------

    async def add_image(
        self,
        request_id: str,
        role: ImageRole,
        png: bytes,
        *,
        seed: int | None = None,
        model: str | None = None,
        style: str | None = None,
    ) -> ImageRecord:
        """Store a PNG for a request: the file under the data dir (by sha256, deduplicated), then its row.

        Idempotent per (request, role): a redelivered job replaces the row.
        Raises ``ValueError`` if ``png`` is not a PNG.
        """
        role = ImageRole(role)
        stored = await asyncio.to_thread(self._images.put_png, png)
        created_at = self._clock()
        row = {
            "path": str(stored.relative_path),
            "sha256": stored.sha256,
            "width": stored.width,
            "height": stored.height,
            "seed": seed,
            "model": model,
            "style": style,
            "created_at": created_at,
        }
        statement = (
            self._insert(Image)
            .values(request_id=request_id, role=role.value, **row)
            .on_conflict_do_update(index_elements=[Image.request_id, Image.role], set_=row)
            .returning(Image.id)
        )
        async with self._db.engine.begin() as connection:
            image_id = (await connection.execute(statement)).scalar_one()
        return ImageRecord(
            id=image_id,
            request_id=request_id,
            role=role,
            path=self._images.path_of(stored.relative_path),
            sha256=stored.sha256,
            width=stored.width,
            height=stored.height,
            seed=seed,
            model=model,
            style=style,
            created_at=created_at,
        )

    async def link_image(self, from_request_id: str, to_request_id: str, role: ImageRole) -> ImageRecord | None:
        """Record ``from_request_id``'s image with ``role`` for ``to_request_id`` too; None when it has none.

        The new row points at the same stored file (same path and sha256, no
        bytes read or written), with the same seed, model and style: e.g. a
        restyle's base image is its parent's. Idempotent per (request, role)
        like :meth:`add_image`.
        """
        role = ImageRole(role)
        source = select(Image).where(Image.request_id == from_request_id, Image.role == role.value)
        async with self._db.engine.begin() as connection:
            found = (await connection.execute(source)).one_or_none()
            if found is None:
                return None
            created_at = self._clock()
            row = {
                "path": found.path,
                "sha256": found.sha256,
                "width": found.width,
                "height": found.height,
                "seed": found.seed,
                "model": found.model,
                "style": found.style,
                "created_at": created_at,
            }
            statement = (
                self._insert(Image)
                .values(request_id=to_request_id, role=role.value, **row)
                .on_conflict_do_update(index_elements=[Image.request_id, Image.role], set_=row)
                .returning(Image.id)
            )
            image_id = (await connection.execute(statement)).scalar_one()
        return ImageRecord(
            id=image_id,
            request_id=to_request_id,
            role=role,
            path=self._images.path_of(found.path),
            sha256=found.sha256,
            width=found.width,
            height=found.height,
            seed=found.seed,
            model=found.model,
            style=found.style,
            created_at=created_at,
        )
