"""Every read and write the bot makes to the history database, one method per use.

Each method is one unit of work (``Database.run``, see ``db.units``): one short
transaction — on SQLite on the event loop, on PostgreSQL on one kept
connection — running statements built once (``db.statements``) through
SQLAlchemy's ``Connection.execute``. Methods return plain values or immutable records
(``db.records``, ``db.preferences``), never live ORM objects. Writes that can
race (two handlers, a redelivered job, two bot processes) are guarded single
statements: ``INSERT ... ON CONFLICT`` for get-or-create and upserts,
``UPDATE ... WHERE state IN (...)`` for state transitions; caps are checked
under an admission lock in the same transaction as the write they guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from db import statements as sql
from db.columns import utcnow
from db.enums import DERIVED_KINDS, STYLED_ROLES, ChatKind, ImageRole, RequestKind
from db.files import ImageStore, StoredImage
from db.identities import Identified, RecentIdentities
from db.limits import Cap, CapReached, Caps
from db.models import new_request_id
from db.preferences import (
    DEFAULT_PREFERENCES,
    KEEP,
    ChatOverrides,
    Keep,
    Preferences,
    check_language,
    check_policy,
    check_voice_mode,
    effective_preferences,
)
from db.records import ImageRecord, RequestAddress, RequestRecord, TranscriptRecord, WordRecord
from db.session import Database
from db.statements import ADMISSION_LOCK_KEY
from db.states import ACTIVE_STATES, INITIAL_STATES, TERMINAL_STATES, RequestState, allowed_sources
from db.waiting_audio import WaitingAudio

__all__ = ["ADMISSION_LOCK_KEY", "TRANSITION_FIELDS", "Identified", "Repository"]

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
        "control",
        "width",
        "height",
        "strength",
        "steps",
        "guidance",
    }
)

Work = Callable[[Connection], Any]


class SpokenWord(Protocol):
    """Anything with a word's text, confidence and the engine's verdict on it (``engine.api.Word`` fits)."""

    @property
    def text(self) -> str: ...

    @property
    def probability(self) -> float: ...

    @property
    def unsure(self) -> bool: ...

    @property
    def corrected_from(self) -> str | None: ...


def _changes(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not ``KEEP``."""
    return {name: value for name, value in values.items() if value is not KEEP}


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = fields.keys() - TRANSITION_FIELDS
    if unknown:
        raise ValueError(f"transition cannot set {sorted(unknown)}")


class _Shape:
    """Where a request's, its transcript's and its image's columns are in the rows of one statement.

    A record is built from a row's values by position (``Row._fields``: the statement's column names), with no
    lookup by name per column: ``sql.REQUESTS`` rows hold a request and, prefixed ``t_``, its transcript;
    ``sql.REQUEST_BY_ID`` rows an image too, prefixed ``i_``; ``sql.images_of`` rows an image unprefixed.
    """

    __slots__ = ("has_image", "has_transcript", "image", "request", "transcript")

    def __init__(self, fields: tuple[str, ...]) -> None:
        at = {name: i for i, name in enumerate(fields)}
        is_request = "kind" in at  # else an image row of its own
        self.request = itemgetter(*(at[name] for name in _REQUEST_FIELDS)) if is_request else None
        self.has_transcript = at.get("t_request_id")
        self.transcript = itemgetter(*(at["t_" + name] for name in _TRANSCRIPT_FIELDS)) if self.has_transcript else None
        prefix = "i_" if is_request else ""
        self.has_image = at.get(prefix + "id")
        self.image = itemgetter(*(at[prefix + name] for name in _IMAGE_FIELDS)) if prefix + "role" in at else None


#: The columns behind the fields of the records (``db.records``); a transcript's and an image's in their records' order.
_REQUEST_FIELDS = (
    "id", "user_id", "chat_id", "kind", "parent_id", "state", "style", "seed", "prompt_positive", "prompt_negative",
    "source_language", "error_key", "card_expires_at", "created_at", "updated_at", "started_at", "finished_at", "upscale",
    "control",
    "width", "height", "strength", "steps", "guidance",
)  # fmt: skip
_TRANSCRIPT_FIELDS = ("heard_text", "language", "language_probability", "translation", "words", "edited_text", "final_text")
_IMAGE_FIELDS = ("id", "request_id", "role", "path", "sha256", "width", "height", "seed", "model", "style", "created_at")


@cache
def _shape(fields: tuple[str, ...]) -> _Shape:
    return _Shape(fields)


def _image_record(shape: _Shape, row: Row[Any], store: ImageStore) -> ImageRecord:
    assert shape.image is not None
    id_, request_id, role, path, sha256, width, height, seed, model, style, created_at = shape.image(row)
    return ImageRecord(id_, request_id, ImageRole(role), store.path_of(path), sha256, width, height, seed, model, style, created_at)


def _request_record(shape: _Shape, row: Row[Any], images: tuple[ImageRecord, ...]) -> RequestRecord:
    """The record of a request row of ``shape`` (with its transcript's columns) and its ``images``."""
    assert shape.request is not None
    transcript = None
    if shape.transcript is not None and shape.has_transcript is not None and row[shape.has_transcript] is not None:
        heard, language, probability, translation, words, edited, final = shape.transcript(row)
        said = tuple(WordRecord(w["text"], w["probability"], w.get("unsure", False), w.get("corrected_from")) for w in words)
        transcript = TranscriptRecord(heard, language, probability, translation, said, edited, final)
    values = dict(zip(_REQUEST_FIELDS, shape.request(row), strict=True))
    values["kind"], values["state"] = RequestKind(values["kind"]), RequestState(values["state"])
    return RequestRecord(**values, transcript=transcript, images=images)


class Repository:
    """The history database as the bot uses it.

    ``data_dir`` holds the image files (``<data_dir>/images/...``) and the voice notes waiting for the speech
    model (:mod:`db.waiting_audio`); ``clock`` supplies timestamps (timezone-aware UTC) and is replaceable in tests.
    """

    def __init__(self, database: Database, data_dir: Path, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = database
        self._upserts = sql.upserts(database.dialect)
        self._images = ImageStore(data_dir)
        self._waiting_audio = WaitingAudio(data_dir)
        self._clock = clock
        self._recent = RecentIdentities()

    async def keep_waiting_audio(self, request_id: str, audio: bytes) -> None:
        """Keep the recording of a voice note that waits for the speech model, across restarts."""
        await asyncio.to_thread(self._waiting_audio.keep, request_id, audio)

    async def take_waiting_audio(self, request_id: str) -> bytes | None:
        """The recording kept for ``request_id`` (gone from the disk once taken), or None."""
        return await asyncio.to_thread(self._waiting_audio.take, request_id)

    async def _run(self, work: Work, *, write: bool = True, single: bool = False, exclusive: bool = False) -> Any:
        return await self._db.run(work, write=write, single=single, exclusive=exclusive)

    # --- users and chats -------------------------------------------------------------------

    async def identify(
        self,
        platform: str,
        platform_user_id: str,
        display_name: str | None,
        platform_chat_id: str,
        kind: ChatKind,
    ) -> Identified:
        """User id, chat id and effective settings behind an event, creating user and chat on first contact.

        A sender identified in the last few seconds is answered from memory
        (``db.identities``: settings changed through this repository are seen at
        once). Otherwise one statement when both are known and the display
        name is unchanged (identity, chat and both settings rows joined); else
        one writing transaction that creates what is missing (race-safe, as
        :meth:`get_or_create_user` and :meth:`get_or_create_chat`) and stores a
        new ``display_name``. A group's settings apply as :meth:`effective_settings`
        says; a private chat has none.
        """
        kind = ChatKind(kind)
        sender = (platform, platform_user_id, platform_chat_id, kind.value)
        known = self._recent.recall(sender, display_name)
        if known is not None:
            return known
        generation = self._recent.generation
        keys = {"b_platform": platform, "b_user": platform_user_id, "b_chat": platform_chat_id}

        def create(connection: Connection) -> Any:  # the IDENTIFY row
            self._user_in(connection, platform, platform_user_id, display_name)
            self._chat_in(connection, platform, platform_chat_id, kind)
            return connection.execute(sql.IDENTIFY, keys).one()

        row = await self._run(lambda connection: connection.execute(sql.IDENTIFY, keys).one_or_none(), write=False)
        if row is None or row.chat_id is None or (display_name is not None and display_name != row.display_name):
            row = await self._run(create)
        user = DEFAULT_PREFERENCES
        if row.u_confirm is not None:  # NOT NULL in the table: None means the user has no settings row
            user = Preferences(row.u_language, row.u_style, row.u_confirm, voice_replies=row.u_voice)
        chat = ChatOverrides(row.c_language, row.c_style, row.c_confirm, row.c_policy, row.c_voice) if kind is ChatKind.GROUP else None
        known = Identified(row.user_id, row.chat_id, effective_preferences(user, chat))
        self._recent.remember(sender, row.display_name, known, generation)
        return known

    async def get_or_create_user(self, platform: str, platform_user_id: str, display_name: str | None = None) -> int:
        """The user id behind a platform account, creating the user on first contact.

        Safe under concurrent calls for the same account: exactly one user is
        created and every caller gets its id. A changed ``display_name`` is
        stored.
        """
        keys = {"b_platform": platform, "b_user": platform_user_id}
        found = await self._run(lambda connection: connection.execute(sql.IDENTITY, keys).one_or_none(), write=False)
        if found is not None and (display_name is None or display_name == found.display_name):
            return int(found.user_id)
        return await self._run(lambda connection: self._user_in(connection, platform, platform_user_id, display_name))

    def _user_in(self, connection: Connection, platform: str, platform_user_id: str, display_name: str | None) -> int:
        """Get-or-create of a user inside a writing unit."""
        keys = {"b_platform": platform, "b_user": platform_user_id}
        found = connection.execute(sql.IDENTITY, keys).one_or_none()
        if found is not None:
            if display_name is not None and display_name != found.display_name:
                connection.execute(sql.RENAME, keys | {"b_name": display_name})
            return int(found.user_id)
        now = self._clock()
        new_user_id = connection.execute(sql.NEW_USER, {"created_at": now}).scalar_one()
        identity = {
            "user_id": new_user_id,
            "platform": platform,
            "platform_user_id": platform_user_id,
            "display_name": display_name,
            "created_at": now,
        }
        if connection.execute(self._upserts.claim_identity, identity).scalar_one_or_none() is not None:
            return int(new_user_id)
        # Another process registered this account first (PostgreSQL; SQLite's write lock rules that out): use theirs.
        connection.execute(sql.DROP_USER, {"b_id": new_user_id})
        winner = connection.execute(sql.IDENTITY, keys).one_or_none()
        if winner is None:
            raise RuntimeError(f"identity {platform}:{platform_user_id} vanished after a conflicting insert")
        return int(winner.user_id)

    async def get_or_create_chat(self, platform: str, platform_chat_id: str, kind: ChatKind) -> int:
        """The chat id for a platform chat, creating it on first contact (race-safe)."""
        kind = ChatKind(kind)
        keys = {"b_platform": platform, "b_chat": platform_chat_id}
        chat_id = await self._run(lambda connection: connection.execute(sql.CHAT, keys).scalar_one_or_none(), write=False)
        if chat_id is not None:
            return int(chat_id)
        return await self._run(lambda connection: self._chat_in(connection, platform, platform_chat_id, kind))

    def _chat_in(self, connection: Connection, platform: str, platform_chat_id: str, kind: ChatKind) -> int:
        """Get-or-create of a chat inside a writing unit."""
        keys = {"b_platform": platform, "b_chat": platform_chat_id}
        chat_id = connection.execute(sql.CHAT, keys).scalar_one_or_none()
        if chat_id is None:
            chat = {"platform": platform, "platform_chat_id": platform_chat_id, "kind": kind.value, "created_at": self._clock()}
            connection.execute(self._upserts.new_chat, chat)
            chat_id = connection.execute(sql.CHAT, keys).scalar_one()
        return int(chat_id)

    async def voice_refused(self, platform: str, platform_chat_id: str) -> bool:
        """Whether the chat refused a voice message (a Telegram user who takes none), remembered across restarts."""
        keys = {"b_platform": platform, "b_chat": platform_chat_id}
        refused = await self._run(lambda connection: connection.execute(sql.VOICE_REFUSED, keys).scalar_one_or_none(), write=False)
        return refused is not None

    async def set_voice_refused(self, platform: str, platform_chat_id: str, refused: bool) -> None:
        """Remember that the chat refuses voice messages (``refused``), or forget it; an unknown chat is left alone."""
        keys = {"b_platform": platform, "b_chat": platform_chat_id, "b_at": self._clock() if refused else None}
        await self._run(lambda connection: connection.execute(sql.SET_VOICE_REFUSED, keys))

    # --- settings --------------------------------------------------------------------------

    async def get_user_settings(self, user_id: int) -> Preferences:
        """A user's preferences (defaults if never changed)."""
        return await self._run(lambda connection: _user_settings(connection, user_id), write=False)

    async def update_user_settings(
        self,
        user_id: int,
        *,
        language: str | Keep | None = KEEP,
        default_style: str | Keep | None = KEEP,
        confirm_before_generate: bool | Keep = KEEP,
        voice_replies: str | Keep | None = KEEP,
    ) -> Preferences:
        """Change some of a user's preferences (``KEEP`` = unchanged, ``None`` = back to default)."""
        check_language(language)
        check_voice_mode(voice_replies)
        changes = _changes(
            language=language,
            default_style=default_style,
            confirm_before_generate=confirm_before_generate,
            voice_replies=voice_replies,
        )
        upsert, row = self._upsert_settings(sql.US, "user_id", user_id, DEFAULT_PREFERENCES, changes)

        def unit(connection: Connection) -> Preferences:
            connection.execute(upsert, row)
            return _user_settings(connection, user_id)

        try:
            return await self._run(unit)
        finally:
            self._recent.forget(user_id=user_id)  # after the write: a sender read meanwhile is not remembered

    async def get_chat_settings(self, chat_id: int) -> ChatOverrides:
        """A group's overrides (all ``None`` if never changed)."""
        return await self._run(lambda connection: _chat_settings(connection, chat_id), write=False)

    async def update_chat_settings(
        self,
        chat_id: int,
        *,
        language: str | Keep | None = KEEP,
        default_style: str | Keep | None = KEEP,
        confirm_before_generate: bool | Keep | None = KEEP,
        content_policy: str | Keep | None = KEEP,
        voice_replies: bool | Keep | None = KEEP,
    ) -> ChatOverrides:
        """Change some of a group's overrides (``KEEP`` = unchanged, ``None`` = no override)."""
        check_language(language)
        check_policy(content_policy)
        changes = _changes(
            language=language,
            default_style=default_style,
            confirm_before_generate=confirm_before_generate,
            content_policy=content_policy,
            voice_replies=voice_replies,
        )
        upsert, row = self._upsert_settings(sql.CS, "chat_id", chat_id, ChatOverrides(), changes)

        def unit(connection: Connection) -> ChatOverrides:
            connection.execute(upsert, row)
            return _chat_settings(connection, chat_id)

        try:
            return await self._run(unit)
        finally:
            self._recent.forget(chat_id=chat_id)  # after the write: a sender read meanwhile is not remembered

    def _upsert_settings(
        self, table: Any, key: str, key_value: int, defaults: Preferences | ChatOverrides, changes: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """The insert-or-update of a settings row and its parameters: the defaults with ``changes`` applied."""
        settings = {name: getattr(defaults, name) for name in table.c.keys() if name not in (key, "updated_at")}
        row = {key: key_value, **settings, "updated_at": self._clock()} | changes
        return self._upserts.settings(table, key, frozenset(changes)), row

    async def effective_settings(self, user_id: int, chat_id: int | None = None) -> Preferences:
        """The preferences that apply to ``user_id`` in ``chat_id`` (``db.preferences.effective_preferences``).

        Pass ``chat_id`` only for group chats; private chats have no overrides.
        """

        def unit(connection: Connection) -> Preferences:
            user = _user_settings(connection, user_id)
            chat = _chat_settings(connection, chat_id) if chat_id is not None else None
            return effective_preferences(user, chat)

        return await self._run(unit, write=False)

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
        upscale: int | None = None,
        control: str | None = None,
        width: int | None = None,
        height: int | None = None,
        strength: float | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> str:
        """Record a new request and return its id.

        ``state`` must be an initial state (transcribing, awaiting_confirmation
        or queued). Restyle and reroll requests must name their ``parent_id``.
        ``control``: what a text request's drawing keeps of its ``control`` image.
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
        request = {
            "id": new_request_id(),
            "user_id": user_id,
            "chat_id": chat_id,
            "kind": kind.value,
            "parent_id": parent_id,
            "state": state.value,
            "style": style,
            "seed": seed,
            "prompt_positive": prompt_positive,
            "prompt_negative": prompt_negative,
            "source_language": source_language,
            "card_expires_at": card_expires_at,
            "upscale": upscale,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "finished_at": None,
            "error_key": None,
            "control": control,
            "width": width,
            "height": height,
            "strength": strength,
            "steps": steps,
            "guidance": guidance,
        }

        def unit(connection: Connection) -> str:
            if caps is None:
                connection.execute(sql.NEW_REQUEST, request)
            elif connection.execute(sql.ADMIT_REQUEST, request | _limits(caps, user_id, now)).rowcount != 1:
                self._admit(connection, user_id, caps, new_request=True)  # which cap is full: raises CapReached
                raise RuntimeError("a request was refused by caps its admission finds room in")
            return str(request["id"])

        return await self._run(unit, exclusive=caps is not None)

    def _admit(
        self, connection: Connection, user_id: int, caps: Caps, *, new_request: bool, moving_in: bool = False
    ) -> None:
        """Raise ``CapReached`` for the first cap that is full: why an admitting statement wrote nothing.

        The unit is exclusive (``Database.run(exclusive=True)``): on
        PostgreSQL it took a transaction-scoped advisory lock with its
        ``BEGIN`` (the statements run after it, so they see every admission
        committed before); on SQLite it began with ``BEGIN IMMEDIATE`` and
        holds the database's write lock. Either way these counts are those the
        admitting statement (``sql.ADMIT_REQUEST``, ``sql.update_request_admitted``)
        saw: no concurrent admission in between. ``moving_in``: the request
        being moved is active itself (its own count is left out, as there).
        """
        since = self._clock() - sql.PER_MINUTE
        recent, mine, everyone = connection.execute(sql.CAP_COUNTS, {"b_user": user_id, "b_since": since}).one()
        if moving_in:
            mine, everyone = mine - 1, everyone - 1
        checks = [(Cap.ACTIVE_PER_USER, mine), (Cap.ACTIVE_TOTAL, everyone)]
        if new_request:
            checks.insert(0, (Cap.PER_MINUTE, recent))
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
        move = self._move(request_id, to_state, from_states, caps, fields)
        return await self._run(move, single=caps is None, exclusive=caps is not None)

    def _move(
        self,
        request_id: str,
        to_state: RequestState,
        from_states: Iterable[RequestState] | None,
        caps: Caps | None,
        fields: dict[str, Any],
    ) -> Callable[[Connection], bool]:
        """:meth:`transition` as a function of a connection in a writing unit (checked and prepared at once)."""
        to_state = RequestState(to_state)
        sources = allowed_sources(to_state, from_states)
        _check_fields(fields)
        values = self._move_values(request_id, to_state, fields)
        states = tuple(sorted(s.value for s in sources))

        def move(connection: Connection) -> bool:
            if caps is None:
                return connection.execute(sql.update_request(states), values).rowcount == 1
            # The move and the active caps' counts in one statement; when nothing moved, was a cap full?
            if connection.execute(sql.update_request_admitted(states), values | _limits(caps)).rowcount == 1:
                return True
            return self._not_admitted(connection, request_id, states, caps)

        return move

    def _not_admitted(self, connection: Connection, request_id: str, states: tuple[str, ...], caps: Caps) -> bool:
        """Why a move with ``caps`` out of ``states`` moved nothing: False when the request was not in them, else
        :class:`~db.limits.CapReached` for the cap that is full (in the exclusive unit of the move, see :meth:`_admit`)."""
        found = connection.execute(sql.REQUEST_STATE, {"b_id": request_id}).one_or_none()
        if found is None or found.state not in states:
            return False  # not in a source state: a duplicate or late event
        self._admit(connection, found.user_id, caps, new_request=False, moving_in=found.state in _ACTIVE)
        raise RuntimeError(f"request {request_id} was refused by caps its admission finds room in")

    async def transition_read(
        self, request_id: str, to_state: RequestState, *, from_states: Iterable[RequestState] | None = None, **fields: Any
    ) -> RequestRecord | None:
        """:meth:`transition` (without caps) returning the request as stored after the move; None if it did not move.

        One statement on PostgreSQL (the guarded ``UPDATE`` a CTE of the read, ``sql.update_request_read``); on
        SQLite, whose ``UPDATE`` cannot be a CTE, the ``UPDATE`` and the read in one transaction.
        """
        to_state = RequestState(to_state)
        sources = tuple(sorted(s.value for s in allowed_sources(to_state, from_states)))
        _check_fields(fields)
        values = self._move_values(request_id, to_state, fields)
        if self._db.dialect == "postgresql":
            statement = sql.update_request_read(sources, frozenset(values) - {"b_id"})
            return await self._run(lambda connection: self._record_of(connection.execute(statement, values).all()), single=True)

        def unit(connection: Connection) -> RequestRecord | None:
            if connection.execute(sql.update_request(sources), values).rowcount != 1:
                return None
            return self._request_in(connection, request_id)

        return await self._run(unit)

    def _move_values(self, request_id: str, to_state: RequestState, fields: dict[str, Any]) -> dict[str, Any]:
        """The parameters of the guarded ``UPDATE`` moving ``request_id`` to ``to_state`` with ``fields`` (checked)."""
        now = self._clock()
        values: dict[str, Any] = {"state": to_state.value, "updated_at": now}
        if to_state is RequestState.RUNNING:
            values["started_at"] = now
        elif to_state is RequestState.QUEUED:
            values["started_at"] = None
        elif to_state in TERMINAL_STATES:
            values["finished_at"] = now
        return values | fields | {"b_id": request_id}

    async def queue(self, request_id: str, *, seed: int, caps: Caps | None = None) -> RequestRecord | None:
        """Draw it: an open card's request moves to ``queued``, in one transaction with what goes with it.

        The guarded move awaiting_confirmation -> queued as :meth:`transition`
        makes it (``caps`` checked atomically; :class:`~db.limits.CapReached`
        leaves it put), with ``seed`` (fixed now, so a job resumed after a
        restart draws the same picture); its transcript's final text becomes
        the user's edit, else what was heard. Returns the request as stored
        now (what gets drawn), or None when it was not awaiting confirmation
        (a second press).
        """
        if self._db.dialect == "postgresql":
            return await self._queue_read(request_id, seed, caps)
        move = self._move(request_id, RequestState.QUEUED, [RequestState.AWAITING_CONFIRMATION], caps, {"seed": seed})
        final = {"updated_at": self._clock(), "b_id": request_id}

        def unit(connection: Connection) -> RequestRecord | None:
            if not move(connection):
                return None
            connection.execute(sql.FINAL_TEXT, final)
            return self._request_in(connection, request_id)

        return await self._run(unit, exclusive=caps is not None)

    async def _queue_read(self, request_id: str, seed: int, caps: Caps | None) -> RequestRecord | None:
        """:meth:`queue` on PostgreSQL: the move, the final text and the read in one statement (``sql.queue_read``)."""
        states = (RequestState.AWAITING_CONFIRMATION.value,)
        values = self._move_values(request_id, RequestState.QUEUED, {"seed": seed})
        statement = sql.queue_read(frozenset(values) - {"b_id"}, capped=caps is not None)
        parameters = values | {"b_final_at": self._clock()} | (_limits(caps) if caps is not None else {})

        def unit(connection: Connection) -> RequestRecord | None:
            record = self._record_of(connection.execute(statement, parameters).all())
            if record is None and caps is not None:
                self._not_admitted(connection, request_id, states, caps)
            return record

        return await self._run(unit, single=caps is None, exclusive=caps is not None)

    async def update_in_state(self, request_id: str, in_states: Iterable[RequestState], **fields: Any) -> bool:
        """Set ``fields`` (see :data:`TRANSITION_FIELDS`) only while the request is in ``in_states``.

        The same guarded single ``UPDATE`` as :meth:`transition`, without a move:
        e.g. a new style or an edited prompt on a card that is still open.
        """
        statement, values = self._set_in_state(request_id, in_states, fields)
        return await self._run(lambda connection: connection.execute(statement, values).rowcount == 1, single=True)

    def _set_in_state(
        self, request_id: str, in_states: Iterable[RequestState], fields: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """The statement and parameters of :meth:`update_in_state`."""
        if not fields:
            raise ValueError("cannot set nothing")
        _check_fields(fields)
        statement = sql.update_request(tuple(sorted(RequestState(s).value for s in in_states)))
        return statement, {"updated_at": self._clock(), **fields, "b_id": request_id}

    async def request_address(self, request_id: str) -> RequestAddress | None:
        """Where a request came from in platform terms (to message its user after a restart)."""
        keys = {"b_id": request_id}
        row = await self._run(lambda connection: connection.execute(sql.REQUEST_ADDRESS, keys).first(), write=False)
        if row is None:
            return None
        return RequestAddress(row.platform, row.platform_chat_id, row.platform_user_id, ChatKind(row.kind))

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """A request with its transcript and images, or None if there is no such request."""
        return await self._run(lambda connection: self._request_in(connection, request_id), write=False)

    def _request_in(self, connection: Connection, request_id: str) -> RequestRecord | None:
        return self._record_of(connection.execute(sql.REQUEST_BY_ID, {"b_id": request_id}).all())

    def _record_of(self, rows: Sequence[Row[Any]]) -> RequestRecord | None:
        """The request of rows shaped as ``sql.REQUEST_BY_ID``'s (a row per image), or None without any."""
        if not rows:
            return None
        shape = _shape(rows[0]._fields)
        found = (row for row in rows if shape.has_image is not None and row[shape.has_image] is not None)
        images = tuple(_image_record(shape, row, self._images) for row in found)
        return _request_record(shape, rows[0], images)

    def _load(self, connection: Connection, statement: Any, parameters: dict[str, Any]) -> list[RequestRecord]:
        """The requests ``statement`` selects (``sql.REQUESTS...``) with their transcripts and images: two statements."""
        rows = connection.execute(statement, parameters).all()
        if not rows:
            return []
        images: dict[str, list[ImageRecord]] = {row.id: [] for row in rows}
        found = connection.execute(sql.images_of(list(images))).all()
        if found:
            image_shape = _shape(found[0]._fields)
            for image in found:
                images[image.request_id].append(_image_record(image_shape, image, self._images))
        shape = _shape(rows[0]._fields)
        return [_request_record(shape, row, tuple(images[row.id])) for row in rows]

    async def history(self, user_id: int, limit: int = 10) -> list[RequestRecord]:
        """A user's delivered requests with their images, newest first, at most ``limit``."""
        keys = {"b_user": user_id, "b_limit": limit}
        return await self._run(lambda connection: self._load(connection, sql.HISTORY, keys), write=False)

    async def requests_in_states(self, states: Iterable[RequestState], *, user_id: int | None = None) -> list[RequestRecord]:
        """Requests currently in ``states`` (of one user, or everyone's), oldest first (restart recovery, /cancel)."""
        statement = sql.requests_in_states(sorted(RequestState(s).value for s in states), user_id)
        return await self._run(lambda connection: self._load(connection, statement, {}), write=False)

    async def count_active(self, user_id: int | None = None) -> int:
        """Requests queued or running: of ``user_id``, or of everyone when None (for limits)."""
        if user_id is None:
            return await self._scalar(sql.COUNT_ACTIVE, {})
        return await self._scalar(sql.COUNT_ACTIVE_OF, {"b_user": user_id})

    async def count_requests_since(self, user_id: int, since: datetime) -> int:
        """How many requests ``user_id`` created at or after ``since`` (rate limiting)."""
        return await self._scalar(sql.COUNT_SINCE, {"b_user": user_id, "b_since": since})

    async def _scalar(self, statement: Any, parameters: dict[str, Any]) -> Any:
        return await self._run(lambda connection: connection.execute(statement, parameters).scalar_one(), write=False)

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
        transcript = {
            "request_id": request_id,
            "heard_text": heard_text,
            "language": language,
            "language_probability": language_probability,
            "translation": translation,
            "words": [
                {"text": w.text, "probability": w.probability, "unsure": w.unsure, "corrected_from": w.corrected_from}
                for w in words
            ],
            "edited_text": None,
            "final_text": None,
            "created_at": now,
            "updated_at": now,
        }
        await self._run(lambda connection: connection.execute(self._upserts.transcript, transcript), single=True)

    async def record_edit(self, request_id: str, edited_text: str) -> bool:
        """Store the user's correction of the transcript; False if the request has no transcript."""
        return await self._update_transcript(request_id, edited_text=edited_text)

    async def set_final_text(self, request_id: str, final_text: str) -> bool:
        """Store the text the picture is drawn from; False if the request has no transcript."""
        return await self._update_transcript(request_id, final_text=final_text)

    async def _update_transcript(self, request_id: str, **values: str) -> bool:
        changes = {"updated_at": self._clock(), **values, "b_id": request_id}
        return await self._run(lambda connection: connection.execute(sql.UPDATE_TRANSCRIPT, changes).rowcount == 1, single=True)

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
        stored = await asyncio.to_thread(self._images.put_png, png)
        return await self._run(self._image_row(request_id, role, stored, seed=seed, model=model, style=style), single=True)

    def _image_row(
        self, request_id: str, role: ImageRole, stored: StoredImage, *, seed: int | None, model: str | None, style: str | None
    ) -> Callable[[Connection], ImageRecord]:
        """The function of a writing unit that records the stored file ``stored`` as ``request_id``'s image with ``role``."""
        row = _image_values(request_id, ImageRole(role), stored, seed, model, style, self._clock())

        def unit(connection: Connection) -> ImageRecord:
            return self._image_record(connection.execute(self._upserts.image, row).scalar_one(), row)

        return unit

    def _image_record(self, image_id: int, row: dict[str, Any]) -> ImageRecord:
        """The record of an image row just written (``row``: its column values, ``request_id`` and ``role`` included)."""
        return ImageRecord(
            id=image_id,
            request_id=row["request_id"],
            role=ImageRole(row["role"]),
            path=self._images.path_of(row["path"]),
            sha256=row["sha256"],
            width=row["width"],
            height=row["height"],
            seed=row["seed"],
            model=row["model"],
            style=row["style"],
            created_at=row["created_at"],
        )

    async def link_image(
        self, from_request_id: str, to_request_id: str, role: ImageRole, *, as_role: ImageRole | None = None
    ) -> ImageRecord | None:
        """Record ``from_request_id``'s image with ``role`` for ``to_request_id`` too; None when it has none.

        The new row points at the same stored file (same path and sha256, no
        bytes read or written), with the same seed, model and style: e.g. a
        restyle's base image is its parent's. It has ``role`` again, or
        ``as_role`` (a kept variation's ``v2`` is its ``anime``). Idempotent
        per (request, role) like :meth:`add_image`.
        """
        role = ImageRole(role)
        target = ImageRole(as_role or role)
        created_at = self._clock()

        def unit(connection: Connection) -> ImageRecord | None:
            found = connection.execute(sql.IMAGE_OF, {"b_id": from_request_id, "b_role": role.value}).one_or_none()
            if found is None:
                return None
            copied = {name: getattr(found, name) for name in ("path", "sha256", "width", "height", "seed", "model", "style")}
            row = copied | {"request_id": to_request_id, "role": target.value, "created_at": created_at}
            return self._image_record(connection.execute(self._upserts.image, row).scalar_one(), row)

        return await self._run(unit)

    # --- a job's result ----------------------------------------------------------------------

    async def store_result(
        self,
        request_id: str,
        images: Sequence[tuple[ImageRole, bytes]],
        *,
        seed: int | None,
        model: str | None,
        style: str,
        error_key: str | None = None,
        image_seeds: Mapping[ImageRole, int] | None = None,
    ) -> RequestRecord | None:
        """What a finished job made, in one transaction; the request as stored, or None when it is not running.

        ``image_seeds`` gives images a seed of their own (a variation's), else they have ``seed``.

        The files are written first (by content, as :meth:`add_image`), then
        in one transaction: the image rows (``style`` on the anime image
        only), the move queued -> running (a cached result may finish without
        ever "starting"), and ``style``, ``seed`` and ``error_key`` (when
        given) set on the request while it is running. None: cancelled
        meanwhile, or a duplicate result of a request already delivered (the
        image rows are stored all the same).
        """
        stored = await asyncio.to_thread(lambda: [self._images.put_png(png) for _, png in images])
        created_at = self._clock()
        rows = [
            _image_values(
                request_id,
                ImageRole(role),
                file,
                (image_seeds or {}).get(role, seed),
                model,
                style if role in STYLED_ROLES else None,
                created_at,
            )
            for (role, _), file in zip(images, stored, strict=True)
        ]
        finish = {"style": style, "b_now": self._clock(), "b_id": request_id}
        finish |= ({"seed": seed} if seed is not None else {}) | ({"error_key": error_key} if error_key is not None else {})
        read_back = self._db.dialect == "postgresql"  # the move and the read in one statement there
        finish_read = sql.finish_job_read(frozenset(finish) - {"b_now", "b_id"}) if read_back else None

        def unit(connection: Connection) -> RequestRecord | None:
            if rows:  # one execution for every row
                connection.execute(self._upserts.images, rows)
            if finish_read is not None:
                return self._record_of(connection.execute(finish_read, finish).all())
            if connection.execute(sql.FINISH_JOB, finish).rowcount != 1:
                return None
            return self._request_in(connection, request_id)

        return await self._run(unit)

    # --- reading a user's history (the studio's feed and gallery; read-only) ----------------------------

    async def find_user(self, platform: str, platform_user_id: str) -> int | None:
        """The user id behind a platform account, or None when it never made contact (nothing is created)."""
        keys = {"b_platform": platform, "b_user": platform_user_id}
        found = await self._run(lambda connection: connection.execute(sql.IDENTITY, keys).one_or_none(), write=False)
        return None if found is None else int(found.user_id)

    async def recent_requests(self, user_id: int, states: Iterable[RequestState], limit: int) -> list[RequestRecord]:
        """A user's newest requests in ``states`` with their transcripts and images, newest first, at most ``limit``."""
        statement = _recent_in(tuple(sorted(RequestState(s).value for s in states)))
        keys = {"b_user": user_id, "b_limit": limit}
        return await self._run(lambda connection: self._load(connection, statement, keys), write=False)

    async def history_before(self, user_id: int, before: str, limit: int) -> list[RequestRecord]:
        """The page of :meth:`history` after request ``before``: older delivered requests, newest first, at most ``limit``.

        Ordered as :meth:`history` (creation time, then id), so pages neither
        overlap nor skip. Empty when ``before`` is not one of the user's requests.
        """

        def unit(connection: Connection) -> list[RequestRecord]:
            at = connection.execute(_CREATED_AT, {"b_id": before, "b_user": user_id}).scalar_one_or_none()
            if at is None:
                return []
            return self._load(connection, _DELIVERED_BEFORE, {"b_user": user_id, "b_at": at, "b_id": before, "b_limit": limit})

        return await self._run(unit, write=False)


_ACTIVE = frozenset(s.value for s in ACTIVE_STATES)


def _image_values(
    request_id: str, role: ImageRole, stored: StoredImage, seed: int | None, model: str | None, style: str | None, at: datetime
) -> dict[str, Any]:
    """The columns of an image row recording the stored file ``stored`` as ``request_id``'s image with ``role``."""
    return {
        "request_id": request_id,
        "role": role.value,
        "path": str(stored.relative_path),
        "sha256": stored.sha256,
        "width": stored.width,
        "height": stored.height,
        "seed": seed,
        "model": model,
        "style": style,
        "created_at": at,
    }


def _limits(caps: Caps, user_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The parameters of the caps in ``sql.ADMIT_REQUEST`` (with the user and the time) and ``sql.update_request_admitted``."""
    limits: dict[str, Any] = {"b_mine": caps.limit(Cap.ACTIVE_PER_USER), "b_everyone": caps.limit(Cap.ACTIVE_TOTAL)}
    if user_id is not None and now is not None:
        limits |= {"b_user": user_id, "b_since": now - sql.PER_MINUTE, "b_per_minute": caps.limit(Cap.PER_MINUTE)}
    return limits


def _user_settings(connection: Connection, user_id: int) -> Preferences:
    row = connection.execute(sql.USER_SETTINGS, {"b_id": user_id}).one_or_none()
    if row is None:
        return DEFAULT_PREFERENCES
    return Preferences(row.language, row.default_style, row.confirm_before_generate, voice_replies=row.voice_replies)


def _chat_settings(connection: Connection, chat_id: int) -> ChatOverrides:
    row = connection.execute(sql.CHAT_SETTINGS, {"b_id": chat_id}).one_or_none()
    return ChatOverrides() if row is None else ChatOverrides(*row)


# --- reading a user's history: the statements of the read-only methods above, built once -------------------


@cache
def _recent_in(states: tuple[str, ...]) -> Any:
    """A user's (``b_user``) requests in ``states`` (sorted values), newest first, at most ``b_limit``.

    One statement per set of states (a handful exist), so none is re-rendered per call.
    """
    return (
        sql.REQUESTS.where(sql.R.c.user_id == bindparam("b_user"), sql.state_in(states))
        .order_by(sql.R.c.created_at.desc(), sql.R.c.id.desc())
        .limit(bindparam("b_limit"))
    )


#: When request ``b_id`` of user ``b_user`` was created (no row: there is no such request of theirs).
_CREATED_AT = select(sql.R.c.created_at).where(sql.R.c.id == bindparam("b_id"), sql.R.c.user_id == bindparam("b_user"))
#: ``sql.HISTORY`` after a request created at ``b_at`` with id ``b_id``: the delivered requests that come after it there.
_DELIVERED_BEFORE = (
    sql.REQUESTS.where(
        sql.R.c.user_id == bindparam("b_user"),
        sql.R.c.state == "delivered",
        or_(sql.R.c.created_at < bindparam("b_at"), and_(sql.R.c.created_at == bindparam("b_at"), sql.R.c.id < bindparam("b_id"))),
    )
    .order_by(sql.R.c.created_at.desc(), sql.R.c.id.desc())
    .limit(bindparam("b_limit"))
)
