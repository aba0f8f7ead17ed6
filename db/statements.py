"""The repository's SQL, built once per dialect and executed with parameters.

Building a SQLAlchemy statement costs more than running it on SQLite (every
value is coerced into a bound parameter, ORM-entity DML goes through the ORM's
bulk-persistence plugin, and the cache key is computed again), so the
statements the conversation runs for every event are built once here, against
the Core tables, with named parameters (``b_*`` in WHERE clauses; ``INSERT``
and ``UPDATE`` take their columns from the parameters given, so one statement
serves every combination of fields). A statement built once keeps its cache
key, so SQLAlchemy's compiled cache serves it after its first run with each
set of parameter names. Values are part of the statement where they are fixed (the
states a guarded ``UPDATE`` moves from), never in expanding ``IN`` lists,
which would have to be rendered again on every call. The few statements that
depend on a call's values (a list of ids or states) are built with
``lambda_stmt``: their structure is cached, the values are bound.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    FromClause,
    StatementLambdaElement,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    lambda_stmt,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from db.models import Chat, ChatSettings, Identity, Image, Request, Transcript, User, UserSettings
from db.states import ACTIVE_STATES

R = cast(Table, Request.__table__)
T = cast(Table, Transcript.__table__)
I = cast(Table, Image.__table__)  # noqa: E741 - the images table
ID = cast(Table, Identity.__table__)
C = cast(Table, Chat.__table__)
U = cast(Table, User.__table__)
US = cast(Table, UserSettings.__table__)
CS = cast(Table, ChatSettings.__table__)

#: PostgreSQL advisory lock key serialising admissions (cap checks + the write they guard): "v2a\0".
ADMISSION_LOCK_KEY = 0x76326100
#: The window of the requests-per-minute cap.
PER_MINUTE = timedelta(minutes=1)


def state_in(states: tuple[str, ...], table: FromClause = R) -> ColumnElement[bool]:
    """``state`` of ``table`` (``requests`` or an alias) is one of ``states``, the values written into the statement.

    Neither bound parameters (each would be processed at every execution) nor an expanding ``IN`` (rendered
    again at every execution): the states are this module's own words (``db.states``), never a user's.
    """
    for state in states:
        if not state.replace("_", "").isalpha():
            raise ValueError(f"not a request state: {state!r}")
    if len(states) == 1:
        return table.c.state == literal_column(f"'{states[0]}'")
    return table.c.state.in_([literal_column(f"'{state}'") for state in states])


_ACTIVE = state_in(tuple(sorted(s.value for s in ACTIVE_STATES)))

#: A request's columns and, prefixed ``t_``, its transcript's (NULL when it has none).
REQUEST_COLUMNS = (*R.c, *(c.label(f"t_{c.name}") for c in T.c))
#: ``requests`` with their transcripts joined; add WHERE and ORDER BY.
REQUESTS = select(*REQUEST_COLUMNS).select_from(R.outerjoin(T, T.c.request_id == R.c.id))
#: One request with its transcript and, prefixed ``i_``, its images: a row per image (one with NULLs without any).
REQUEST_BY_ID = (
    select(*REQUEST_COLUMNS, *(c.label(f"i_{c.name}") for c in I.c))
    .select_from(R.outerjoin(T, T.c.request_id == R.c.id).outerjoin(I, I.c.request_id == R.c.id))
    .where(R.c.id == bindparam("b_id"))
    .order_by(I.c.id)
)
HISTORY = (
    REQUESTS.where(R.c.user_id == bindparam("b_user"), R.c.state == "delivered")
    .order_by(R.c.created_at.desc(), R.c.id.desc())
    .limit(bindparam("b_limit"))
)
IMAGE_OF = select(I).where(I.c.request_id == bindparam("b_id"), I.c.role == bindparam("b_role"))

#: Identity, chat and both settings rows behind an event in one row (chat and settings NULL when missing).
IDENTIFY = (
    select(
        ID.c.user_id,
        ID.c.display_name,
        C.c.id.label("chat_id"),
        US.c.language.label("u_language"),
        US.c.default_style.label("u_style"),
        US.c.confirm_before_generate.label("u_confirm"),
        US.c.voice_replies.label("u_voice"),
        CS.c.language.label("c_language"),
        CS.c.default_style.label("c_style"),
        CS.c.confirm_before_generate.label("c_confirm"),
        CS.c.content_policy.label("c_policy"),
        CS.c.voice_replies.label("c_voice"),
    )
    .select_from(
        ID.outerjoin(C, (C.c.platform == ID.c.platform) & (C.c.platform_chat_id == bindparam("b_chat")))
        .outerjoin(US, US.c.user_id == ID.c.user_id)
        .outerjoin(CS, CS.c.chat_id == C.c.id)
    )
    .where(ID.c.platform == bindparam("b_platform"), ID.c.platform_user_id == bindparam("b_user"))
)
IDENTITY = select(ID.c.user_id, ID.c.display_name).where(
    ID.c.platform == bindparam("b_platform"), ID.c.platform_user_id == bindparam("b_user")
)
RENAME = (
    update(ID)
    .where(ID.c.platform == bindparam("b_platform"), ID.c.platform_user_id == bindparam("b_user"))
    .values(display_name=bindparam("b_name"))
)
NEW_USER = insert(U).returning(U.c.id)
DROP_USER = delete(U).where(U.c.id == bindparam("b_id"))
CHAT = select(C.c.id).where(C.c.platform == bindparam("b_platform"), C.c.platform_chat_id == bindparam("b_chat"))
#: When chat ``b_chat`` of ``b_platform`` refused a voice message (NULL: it takes them; no row: an unknown chat).
VOICE_REFUSED = select(C.c.voice_refused_at).where(C.c.platform == bindparam("b_platform"), C.c.platform_chat_id == bindparam("b_chat"))
#: Remember (``b_at``: when) or forget (NULL) that chat ``b_chat`` of ``b_platform`` refuses voice messages.
SET_VOICE_REFUSED = (
    update(C)
    .where(C.c.platform == bindparam("b_platform"), C.c.platform_chat_id == bindparam("b_chat"))
    .values(voice_refused_at=bindparam("b_at"))
)

USER_SETTINGS = select(US.c.language, US.c.default_style, US.c.confirm_before_generate, US.c.voice_replies).where(
    US.c.user_id == bindparam("b_id")
)
CHAT_SETTINGS = select(CS.c.language, CS.c.default_style, CS.c.confirm_before_generate, CS.c.content_policy, CS.c.voice_replies).where(
    CS.c.chat_id == bindparam("b_id")
)

NEW_REQUEST = insert(R)
REQUEST_ADDRESS = (
    select(C.c.platform, C.c.platform_chat_id, C.c.kind, ID.c.platform_user_id)
    .select_from(C.join(R, R.c.chat_id == C.c.id).join(ID, (ID.c.user_id == R.c.user_id) & (ID.c.platform == C.c.platform)))
    .where(R.c.id == bindparam("b_id"))
)

_COUNT = select(func.count()).select_from(R)
#: The user's requests of the last minute, the user's active requests, everyone's active requests.
CAP_COUNTS = select(
    _COUNT.where(R.c.user_id == bindparam("b_user"), R.c.created_at >= bindparam("b_since")).scalar_subquery(),
    _COUNT.where(R.c.user_id == bindparam("b_user"), _ACTIVE).scalar_subquery(),
    _COUNT.where(_ACTIVE).scalar_subquery(),
)
#: ``requests`` as the caps count them beside a request being written.
_OTHER = R.alias("other")
_OTHER_ACTIVE = state_in(tuple(sorted(s.value for s in ACTIVE_STATES)), _OTHER)


def _count_other(*where: ColumnElement[bool]) -> Any:
    return select(func.count()).select_from(_OTHER).where(*where).scalar_subquery()


#: A new request (the parameters: every column) only while user ``b_user`` made fewer than ``b_per_minute``
#: requests since ``b_since`` and has fewer than ``b_mine`` active ones, and everyone fewer than ``b_everyone``:
#: the caps' counts and the insert in one statement (no row inserted: a cap is full).
ADMIT_REQUEST = insert(R).from_select(
    [c.name for c in R.c],
    select(*(bindparam(c.name, type_=c.type) for c in R.c)).where(
        _count_other(_OTHER.c.user_id == bindparam("b_user"), _OTHER.c.created_at >= bindparam("b_since"))
        < bindparam("b_per_minute"),
        _count_other(_OTHER.c.user_id == bindparam("b_user"), _OTHER_ACTIVE) < bindparam("b_mine"),
        _count_other(_OTHER_ACTIVE) < bindparam("b_everyone"),
    ),
)
#: The state and user of request ``b_id``.
REQUEST_STATE = select(R.c.state, R.c.user_id).where(R.c.id == bindparam("b_id"))
COUNT_ACTIVE = _COUNT.where(_ACTIVE)
COUNT_ACTIVE_OF = COUNT_ACTIVE.where(R.c.user_id == bindparam("b_user"))
COUNT_SINCE = _COUNT.where(R.c.user_id == bindparam("b_user"), R.c.created_at >= bindparam("b_since"))

#: A job's result is in: queued or running -> running (``started_at`` kept if it ran), with the columns given.
FINISH_JOB = (
    update(R)
    .where(R.c.id == bindparam("b_id"), state_in(("queued", "running")))
    .values(
        state="running",
        started_at=case((R.c.state == "queued", bindparam("b_now")), else_=R.c.started_at),
        updated_at=bindparam("b_now"),
    )
)

#: Set the columns given as parameters on a request's transcript.
UPDATE_TRANSCRIPT = update(T).where(T.c.request_id == bindparam("b_id"))
#: The text a picture is drawn from: the user's edit, else what was heard.
FINAL_TEXT = (
    update(T)
    .where(T.c.request_id == bindparam("b_id"))
    .values(final_text=func.coalesce(func.nullif(T.c.edited_text, ""), T.c.heard_text))
)


def images_of(request_ids: list[str]) -> StatementLambdaElement:
    """The images of ``request_ids`` (lists, /history, restart recovery), oldest first."""
    return lambda_stmt(lambda: select(I).where(I.c.request_id.in_(request_ids)).order_by(I.c.id))


def requests_in_states(states: list[str], user_id: int | None) -> StatementLambdaElement:
    """``REQUESTS`` in one of ``states`` (of ``user_id``, or everyone's when None), oldest first."""
    statement = lambda_stmt(lambda: REQUESTS.where(R.c.state.in_(states)))
    if user_id is not None:
        statement += lambda s: s.where(R.c.user_id == user_id)
    return statement + (lambda s: s.order_by(R.c.created_at, R.c.id))


@cache
def update_request(states: tuple[str, ...]) -> Any:
    """Set the columns given as parameters on request ``b_id`` while it is in one of ``states`` (sorted values).

    One statement per set of states (a handful exist), so none is re-rendered per call as an expanding IN would be.
    """
    return update(R).where(R.c.id == bindparam("b_id"), state_in(states))


@cache
def update_request_admitted(states: tuple[str, ...]) -> Any:
    """:func:`update_request` only while the request's user has fewer than ``b_mine`` other active requests and
    everyone fewer than ``b_everyone``: the active caps' counts and the move in one statement.

    The counts leave the request itself out, so they are the same before and after its move.
    """
    others = _OTHER.c.id != R.c.id
    return update_request(states).where(
        _count_other(others, _OTHER.c.user_id == R.c.user_id, _OTHER_ACTIVE) < bindparam("b_mine"),
        _count_other(others, _OTHER_ACTIVE) < bindparam("b_everyone"),
    )


def _bound(fields: frozenset[str]) -> dict[str, Any]:
    """``fields`` of ``requests`` set from the parameters of the same names."""
    return {name: bindparam(name, type_=R.c[name].type) for name in sorted(fields)}


def _read_back(statement: Any, *, final_text: bool = False) -> Any:
    """``statement`` (an ``UPDATE`` of one request, PostgreSQL) and the request as it is then, in one statement.

    Rows as :data:`REQUEST_BY_ID`'s (none: nothing was updated): the ``UPDATE``, a data-modifying CTE, returns
    the row as it wrote it, and the transcript and images are joined to that. ``final_text``: the moved
    request's transcript gets its final text too (as :data:`FINAL_TEXT`, ``b_final_at`` its time), in a
    second CTE whose returned row is the transcript joined.
    """
    moved = statement.returning(*R.c).cte("moved")
    transcript: Any = T
    if final_text:
        transcript = (
            update(T)
            .where(T.c.request_id.in_(select(moved.c.id)))
            .values(final_text=func.coalesce(func.nullif(T.c.edited_text, ""), T.c.heard_text), updated_at=bindparam("b_final_at"))
            .returning(*T.c)
            .cte("final")
        )
    return (
        select(*moved.c, *(c.label(f"t_{c.name}") for c in transcript.c), *(c.label(f"i_{c.name}") for c in I.c))
        .select_from(
            moved.outerjoin(transcript, transcript.c.request_id == moved.c.id).outerjoin(I, I.c.request_id == moved.c.id)
        )
        .order_by(I.c.id)
    )


@cache
def update_request_read(states: tuple[str, ...], fields: frozenset[str]) -> Any:
    """:func:`update_request` setting ``fields``, and the request as it is then (PostgreSQL; see :func:`_read_back`).

    One statement per set of states and of fields (a handful exist).
    """
    return _read_back(update_request(states).values(_bound(fields)))


@cache
def finish_job_read(fields: frozenset[str]) -> Any:
    """:data:`FINISH_JOB` setting ``fields`` too, and the request as it is then (PostgreSQL; see :func:`_read_back`)."""
    return _read_back(FINISH_JOB.values(_bound(fields)))


@cache
def queue_read(fields: frozenset[str], *, capped: bool) -> Any:
    """Draw it (PostgreSQL): awaiting_confirmation -> queued setting ``fields`` (``capped``: only while the active
    caps leave room, as :func:`update_request_admitted`), the transcript's final text, and the request as it is
    then, in one statement (see :func:`_read_back`)."""
    guarded = update_request_admitted if capped else update_request
    return _read_back(guarded(("awaiting_confirmation",)).values(_bound(fields)), final_text=True)


_HEARD = ("heard_text", "language", "language_probability", "translation", "words", "edited_text", "final_text", "updated_at")
_IMAGE = ("path", "sha256", "width", "height", "seed", "model", "style", "created_at")


class Upserts:
    """The ``INSERT ... ON CONFLICT`` statements of one dialect (see :func:`upserts`)."""

    def __init__(self, dialect: str) -> None:
        dialect_insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
        if dialect_insert is None:
            raise ValueError(f"unsupported database {dialect!r}: use sqlite+aiosqlite or postgresql+asyncpg")
        self.insert = dialect_insert
        claim = dialect_insert(ID)
        self.claim_identity = claim.on_conflict_do_nothing(index_elements=[ID.c.platform, ID.c.platform_user_id]).returning(
            ID.c.id
        )
        self.new_chat = dialect_insert(C).on_conflict_do_nothing(index_elements=[C.c.platform, C.c.platform_chat_id])
        heard = dialect_insert(T)
        #: A transcript, replacing an earlier one (and its edits) of the same request.
        self.transcript = heard.on_conflict_do_update(
            index_elements=[T.c.request_id], set_={name: heard.excluded[name] for name in _HEARD}
        )
        image = dialect_insert(I)
        #: Image rows, each replacing the request's earlier one of the same role (one execution for several rows:
        #: the driver's ``executemany``, or several ``VALUES`` in one statement where SQLAlchemy does that).
        self.images = image.on_conflict_do_update(
            index_elements=[I.c.request_id, I.c.role], set_={name: image.excluded[name] for name in _IMAGE}
        )
        #: An image row as :attr:`images`, returning its id.
        self.image = self.images.returning(I.c.id)
        self._settings: dict[tuple[str, frozenset[str]], Any] = {}

    def settings(self, table: Table, key: str, changed: frozenset[str]) -> Any:
        """A settings row of ``table`` (every column from the parameters), or on ``key``'s conflict ``changed`` set in it.

        The row that exists keeps its other columns; ``updated_at`` goes with any change. No ``changed``: an
        existing row stays as it is. One statement per table and set of changed columns (a handful exist).
        """
        found = self._settings.get((table.name, changed))
        if found is None:
            row = self.insert(table)
            conflict = [table.c[key]]
            if changed:
                set_ = {name: row.excluded[name] for name in sorted(changed | {"updated_at"})}
                found = row.on_conflict_do_update(index_elements=conflict, set_=set_)
            else:
                found = row.on_conflict_do_nothing(index_elements=conflict)
            self._settings[(table.name, changed)] = found
        return found


@cache
def upserts(dialect: str) -> Upserts:
    """The upserts for ``dialect`` (``sqlite`` or ``postgresql``), built once."""
    return Upserts(dialect)
