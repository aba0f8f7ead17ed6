"""History database: migrations, pragmas, race-safe writes, guarded transitions, files, queries.

Every test runs on SQLite and, when a server is available, on PostgreSQL
(fixtures in ``tests/support/database.py``).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from PIL import Image as PILImage
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from db import (
    ChatKind,
    ChatOverrides,
    Database,
    ImageRole,
    Preferences,
    Repository,
    RequestKind,
    RequestState,
    create_database,
)
from db.identities import Identified, RecentIdentities
from db.limits import CapReached, Caps
from db.migrate import alembic_config, upgrade, upgrade_async
from db.models import Base, Identity, User
from db.states import TRANSITIONS
from engine.api import Word

S = RequestState


class Clock:
    """A controllable UTC clock for the repository."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def png(color: tuple[int, int, int], size: tuple[int, int] = (4, 3)) -> bytes:
    """A tiny PNG of one colour."""
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'history.db'}"
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def url(empty_url: str) -> str:
    """URL of a database migrated to the latest revision."""
    upgrade(empty_url)
    return empty_url


@pytest.fixture
async def database(url: str) -> AsyncIterator[Database]:
    db = create_database(url)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def repo(database: Database, data_dir: Path, clock: Clock) -> Repository:
    return Repository(database, data_dir, clock=clock)


@pytest.fixture
def sqlite_only(url: str) -> Iterator[None]:
    if not url.startswith("sqlite"):
        pytest.skip("SQLite-specific")
    yield


async def make_request(
    repo: Repository, *, user: str = "alice", state: RequestState = S.TRANSCRIBING
) -> tuple[int, str]:
    user_id = await repo.get_or_create_user("telegram", user, user.title())
    chat_id = await repo.get_or_create_chat("telegram", f"chat-{user}", ChatKind.PRIVATE)
    return user_id, await repo.create_request(user_id=user_id, chat_id=chat_id, kind=RequestKind.VOICE, state=state)


async def deliver(repo: Repository, request_id: str, *, from_state: RequestState = S.TRANSCRIBING) -> None:
    path = {S.TRANSCRIBING: [S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING, S.DELIVERED], S.QUEUED: [S.RUNNING, S.DELIVERED]}[from_state]
    for state in path:
        assert await repo.transition(request_id, state)


async def table_names(url: str) -> set[str]:
    db = create_database(url)
    try:
        async with db.engine.connect() as connection:
            return await connection.run_sync(lambda c: set(c.dialect.get_table_names(c)))
    finally:
        await db.dispose()


# --- migrations and connections ------------------------------------------------------------


async def test_migrations_from_empty_match_the_models(url: str) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    db = create_database(url)
    try:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(diff) == []
            revision = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await db.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def test_upgrade_async_from_the_event_loop_is_idempotent(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the migrations are found without relying on the working directory
    await upgrade_async(empty_url)
    await upgrade_async(empty_url)
    tables = await table_names(empty_url)
    assert {"users", "identities", "chats", "requests", "transcripts", "images", "user_settings"} <= tables


def test_downgrade_to_base_and_upgrade_again(url: str) -> None:
    command.downgrade(alembic_config(url), "base")
    assert asyncio.run(table_names(url)) == {"alembic_version"}
    upgrade(url)
    assert "requests" in asyncio.run(table_names(url))


async def test_the_simplified_chinese_ui_language_was_zh_and_is_migrated_to_zh_hans(
    url: str, repo: Repository, database: Database
) -> None:
    amy = await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP)
    await repo.update_user_settings(amy.user_id, language="zh-Hans")
    await repo.update_chat_settings(amy.chat_id, language="zh-Hans")
    bo = await repo.identify("telegram", "8", "Bo", "8", ChatKind.PRIVATE)
    await repo.update_user_settings(bo.user_id, language="zh-Hant")

    async def stored() -> list[tuple[str, str | None]]:
        async with database.engine.connect() as connection:
            users = await connection.execute(text("SELECT language FROM user_settings ORDER BY user_id"))
            chats = await connection.execute(text("SELECT language FROM chat_settings"))
            return [("user", language) for (language,) in users] + [("chat", language) for (language,) in chats]

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0002")
    assert await stored() == [("user", "zh"), ("user", "zh-Hant"), ("chat", "zh")], "as the choice was stored before"
    await upgrade_async(url)
    assert await stored() == [("user", "zh-Hans"), ("user", "zh-Hant"), ("chat", "zh-Hans")]
    assert (await repo.effective_settings(amy.user_id, amy.chat_id)).language == "zh-Hans"


@pytest.mark.usefixtures("sqlite_only")
async def test_sqlite_pragmas_are_set_on_every_connection(database: Database) -> None:
    async def pragmas() -> tuple[object, ...]:
        async with database.engine.connect() as connection:
            values = []
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
                values.append((await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one())
            await asyncio.sleep(0.05)  # keep this connection checked out so the other one is new
            return tuple(values)

    first, second = await asyncio.gather(pragmas(), pragmas())
    assert first == second == ("wal", 1, 5000, 1)  # synchronous 1 = NORMAL


async def test_timestamps_are_timezone_aware_utc(repo: Repository, clock: Clock) -> None:
    clock.now = datetime(2025, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=8)))
    _, request_id = await make_request(repo)
    record = await repo.get_request(request_id)
    assert record is not None
    assert record.created_at == clock.now
    assert record.created_at.tzinfo == UTC


# --- users and chats -----------------------------------------------------------------------


async def test_get_or_create_user_is_idempotent_under_concurrency(repo: Repository, database: Database) -> None:
    ids = await asyncio.gather(*(repo.get_or_create_user("discord", "42", "Alice") for _ in range(12)))
    assert len(set(ids)) == 1
    assert await repo.get_or_create_user("discord", "42") == ids[0]
    assert await repo.get_or_create_user("telegram", "42") != ids[0]
    async with database.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(User))).scalar_one() == 2
        assert (await session.execute(select(func.count()).select_from(Identity))).scalar_one() == 2


async def test_get_or_create_user_stores_a_new_display_name(repo: Repository, database: Database) -> None:
    user_id = await repo.get_or_create_user("telegram", "7", "Old")
    assert await repo.get_or_create_user("telegram", "7", "New") == user_id
    async with database.sessions() as session:
        assert (await session.execute(select(Identity.display_name))).scalar_one() == "New"


async def test_get_or_create_chat_is_idempotent_under_concurrency(repo: Repository) -> None:
    ids = await asyncio.gather(*(repo.get_or_create_chat("telegram", "-100", ChatKind.GROUP) for _ in range(12)))
    assert len(set(ids)) == 1
    assert await repo.get_or_create_chat("discord", "-100", ChatKind.GROUP) != ids[0]


# --- state machine -------------------------------------------------------------------------


async def test_transition_applies_once(repo: Repository) -> None:
    _, request_id = await make_request(repo)
    assert await repo.transition(request_id, S.AWAITING_CONFIRMATION)
    assert not await repo.transition(request_id, S.AWAITING_CONFIRMATION)  # duplicate event
    assert await repo.transition(request_id, S.QUEUED)
    assert not await repo.transition(request_id, S.EXPIRED)  # a late expiry timer does nothing
    record = await repo.get_request(request_id)
    assert record is not None and record.state is S.QUEUED


async def test_concurrent_duplicate_transitions_apply_exactly_once(repo: Repository) -> None:
    _, request_id = await make_request(repo, state=S.QUEUED)
    results = await asyncio.gather(*(repo.transition(request_id, S.RUNNING) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_transition_sets_timestamps_and_fields(repo: Repository, clock: Clock) -> None:
    _, request_id = await make_request(repo, state=S.QUEUED)
    started = clock.advance()
    assert await repo.transition(request_id, S.RUNNING, seed=1234567890123, prompt_positive="1girl")
    finished = clock.advance()
    assert await repo.transition(request_id, S.FAILED, error_key="engine.out_of_memory")
    record = await repo.get_request(request_id)
    assert record is not None
    assert (record.state, record.seed, record.prompt_positive, record.error_key) == (
        S.FAILED,
        1234567890123,
        "1girl",
        "engine.out_of_memory",
    )
    assert (record.started_at, record.finished_at, record.updated_at) == (started, finished, finished)


async def test_illegal_transitions_raise(repo: Repository) -> None:
    _, request_id = await make_request(repo, state=S.QUEUED)
    with pytest.raises(ValueError):
        await repo.transition(request_id, S.DELIVERED, from_states=[S.QUEUED])  # queued -> delivered is not a move
    with pytest.raises(ValueError):
        await repo.transition(request_id, S.RUNNING, user_id=2)  # not a transition field
    with pytest.raises(ValueError):
        await repo.create_request(user_id=1, chat_id=1, kind=RequestKind.TEXT, state=S.RUNNING)
    with pytest.raises(ValueError):
        await repo.create_request(user_id=1, chat_id=1, kind=RequestKind.REROLL)  # needs parent_id


async def test_from_states_narrow_the_guard(repo: Repository) -> None:
    _, request_id = await make_request(repo, state=S.QUEUED)
    assert not await repo.transition(request_id, S.CANCELLED, from_states=[S.RUNNING])
    assert await repo.transition(request_id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING])


def test_terminal_states_have_no_way_out() -> None:
    assert all(not TRANSITIONS[s] for s in (S.DELIVERED, S.FAILED, S.CANCELLED, S.EXPIRED))


async def test_requests_in_states_for_restart_recovery(repo: Repository, clock: Clock) -> None:
    _, running = await make_request(repo, state=S.QUEUED)
    await repo.transition(running, S.RUNNING)
    clock.advance()
    _, queued = await make_request(repo, user="bob", state=S.QUEUED)
    clock.advance()
    _, done = await make_request(repo, state=S.QUEUED)
    await deliver(repo, done, from_state=S.QUEUED)

    pending = await repo.requests_in_states([S.RUNNING, S.QUEUED])
    assert [r.id for r in pending] == [running, queued]  # oldest first

    assert await repo.transition(running, S.QUEUED)  # re-queue after a restart
    record = await repo.get_request(running)
    assert record is not None and record.state is S.QUEUED and record.started_at is None


# --- integrity -----------------------------------------------------------------------------


async def test_foreign_keys_are_enforced(repo: Repository) -> None:
    user_id, request_id = await make_request(repo)
    with pytest.raises(IntegrityError):
        await repo.create_request(user_id=user_id + 1000, chat_id=1, kind=RequestKind.TEXT)
    with pytest.raises(IntegrityError):
        await repo.save_transcript("0" * 32, heard_text="hi", language="en", language_probability=0.9)
    with pytest.raises(IntegrityError):
        await repo.add_image("0" * 32, ImageRole.ANIME, png((1, 2, 3)))
    with pytest.raises(IntegrityError):
        await repo.create_request(
            user_id=user_id, chat_id=1, kind=RequestKind.RESTYLE, state=S.QUEUED, parent_id="f" * 32
        )
    assert await repo.create_request(
        user_id=user_id, chat_id=1, kind=RequestKind.RESTYLE, state=S.QUEUED, parent_id=request_id
    )


# --- transcripts ---------------------------------------------------------------------------


async def test_transcript_heard_edited_final(repo: Repository) -> None:
    _, request_id = await make_request(repo)
    assert not await repo.record_edit(request_id, "nothing to edit yet")
    words = [Word("猫", 0.0, 0.4, 0.92), Word("女孩", 0.4, 0.9, 0.41)]
    await repo.save_transcript(
        request_id, heard_text="猫女孩", language="zh", language_probability=0.97, translation="cat girl", words=words
    )
    assert await repo.record_edit(request_id, "猫耳女孩")
    assert await repo.set_final_text(request_id, "猫耳女孩")
    record = await repo.get_request(request_id)
    assert record is not None and record.transcript is not None
    transcript = record.transcript
    assert (transcript.heard_text, transcript.edited_text, transcript.final_text) == ("猫女孩", "猫耳女孩", "猫耳女孩")
    assert [(w.text, w.probability) for w in transcript.words] == [("猫", 0.92), ("女孩", 0.41)]
    assert (transcript.language, transcript.translation) == ("zh", "cat girl")

    await repo.save_transcript(request_id, heard_text="猫耳朵女孩", language="zh", language_probability=0.99)
    record = await repo.get_request(request_id)
    assert record is not None and record.transcript is not None
    assert (record.transcript.heard_text, record.transcript.edited_text, record.transcript.words) == (
        "猫耳朵女孩",
        None,
        (),
    )


# --- images --------------------------------------------------------------------------------


async def test_images_are_stored_once_per_content(repo: Repository, data_dir: Path) -> None:
    _, first = await make_request(repo)
    _, second = await make_request(repo, user="bob")
    red, blue = png((255, 0, 0)), png((0, 0, 255), size=(8, 5))

    a = await repo.add_image(first, ImageRole.BASE, red, seed=7, model="anything-v5")
    b = await repo.add_image(second, ImageRole.BASE, red)
    c = await repo.add_image(first, ImageRole.ANIME, blue, style="hayao")

    assert a.path == b.path != c.path
    assert a.path == data_dir / "images" / a.sha256[:2] / a.sha256[2:4] / f"{a.sha256}.png"
    assert a.path.read_bytes() == red and c.path.read_bytes() == blue
    assert (c.width, c.height) == (8, 5)
    stored = sorted(p for p in data_dir.rglob("*") if p.is_file())  # noqa: ASYNC240 (a test reading its tmp dir)
    assert stored == sorted({a.path, c.path})  # no duplicates, no temporary files left behind

    record = await repo.get_request(first)
    assert record is not None
    assert [(i.role, i.path, i.seed, i.model, i.style) for i in record.images] == [
        (ImageRole.BASE, a.path, 7, "anything-v5", None),
        (ImageRole.ANIME, c.path, None, None, "hayao"),
    ]


async def test_add_image_is_idempotent_per_role(repo: Repository) -> None:
    _, request_id = await make_request(repo)
    await repo.add_image(request_id, ImageRole.ANIME, png((1, 1, 1)), seed=1)
    again = await repo.add_image(request_id, ImageRole.ANIME, png((2, 2, 2)), seed=2)  # redelivered job
    record = await repo.get_request(request_id)
    assert record is not None
    assert [(i.sha256, i.seed) for i in record.images] == [(again.sha256, 2)]
    assert record.image(ImageRole.ANIME) == again and record.image(ImageRole.BASE) is None


async def test_add_image_rejects_non_png(repo: Repository) -> None:
    _, request_id = await make_request(repo)
    with pytest.raises(ValueError):
        await repo.add_image(request_id, ImageRole.BASE, b"GIF89a not a png at all")


# --- queries -------------------------------------------------------------------------------


async def test_history_is_newest_first_delivered_only_and_limited(repo: Repository, clock: Clock) -> None:
    delivered = []
    for i in range(5):
        clock.advance(60)
        user_id, request_id = await make_request(repo)
        if i == 2:
            await repo.transition(request_id, S.FAILED)
            continue
        await deliver(repo, request_id)
        await repo.add_image(request_id, ImageRole.ANIME, png((i, i, i)))
        delivered.append(request_id)
    _, other = await make_request(repo, user="bob")
    await deliver(repo, other)

    history = await repo.history(user_id, limit=3)
    assert [r.id for r in history] == delivered[::-1][:3]
    assert all(r.state is S.DELIVERED and r.image(ImageRole.ANIME) is not None for r in history)
    assert len(await repo.history(user_id, limit=10)) == 4


async def test_active_and_recent_counts(repo: Repository, clock: Clock) -> None:
    start = clock.now
    alice, _ = await make_request(repo, state=S.QUEUED)
    _, running = await make_request(repo, state=S.QUEUED)
    await repo.transition(running, S.RUNNING)
    await make_request(repo, state=S.AWAITING_CONFIRMATION)
    clock.advance(3600)
    bob, _ = await make_request(repo, user="bob", state=S.QUEUED)
    _, late = await make_request(repo, state=S.QUEUED)

    assert await repo.count_active(alice) == 3
    assert await repo.count_active(bob) == 1
    assert await repo.count_active() == 4
    assert await repo.transition(late, S.CANCELLED)
    assert await repo.count_active() == 3

    assert await repo.count_requests_since(alice, start) == 4
    assert await repo.count_requests_since(alice, clock.now - timedelta(minutes=1)) == 1


# --- settings ------------------------------------------------------------------------------


async def test_settings_precedence_personal_over_chat_and_chat_wide_from_the_chat(repo: Repository) -> None:
    user_id = await repo.get_or_create_user("telegram", "1")
    group = await repo.get_or_create_chat("telegram", "-1", ChatKind.GROUP)
    assert await repo.effective_settings(user_id, group) == Preferences(None, None, True)

    # the group's language and style apply to members who chose none; confirmation is the group's
    assert await repo.update_chat_settings(group, language="zh-Hans", default_style="paprika", confirm_before_generate=False) == (
        ChatOverrides("zh-Hans", "paprika", False)
    )
    assert await repo.effective_settings(user_id, group) == Preferences("zh-Hans", "paprika", False)

    # a member's own language and style win over the group's, for them; confirmation stays the group's
    assert await repo.update_user_settings(user_id, language="zh-Hant", default_style="hayao", confirm_before_generate=True) == (
        Preferences("zh-Hant", "hayao", True)
    )
    assert await repo.effective_settings(user_id, group) == Preferences("zh-Hant", "hayao", False)
    assert await repo.effective_settings(user_id) == Preferences("zh-Hant", "hayao", True), "a private chat is theirs"

    await repo.update_chat_settings(group, confirm_before_generate=None)  # not set: the default
    await repo.update_user_settings(user_id, language=None, confirm_before_generate=False)
    assert await repo.effective_settings(user_id, group) == Preferences("zh-Hans", "hayao", True)
    assert await repo.get_user_settings(user_id) == Preferences(None, "hayao", False)


async def test_settings_reject_unknown_language(repo: Repository) -> None:
    user_id = await repo.get_or_create_user("telegram", "1")
    with pytest.raises(ValueError):
        await repo.update_user_settings(user_id, language="xx")


# --- units of work: one transaction per call, run where the database is cheapest to reach ----------


async def test_identify_is_get_or_create_and_effective_settings_in_one(repo: Repository, database: Database) -> None:
    first = await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP)
    assert first.user_id == await repo.get_or_create_user("telegram", "7")
    assert first.chat_id == await repo.get_or_create_chat("telegram", "-5", ChatKind.GROUP)
    assert first.preferences == Preferences()

    await repo.update_chat_settings(first.chat_id, language="zh-Hans", confirm_before_generate=False)
    await repo.update_user_settings(first.user_id, default_style="paprika")
    again = await repo.identify("telegram", "7", "Amy B.", "-5", ChatKind.GROUP)
    assert (again.user_id, again.chat_id) == (first.user_id, first.chat_id)
    assert again.preferences == await repo.effective_settings(first.user_id, first.chat_id) == Preferences("zh-Hans", "paprika", False)
    private = await repo.identify("telegram", "7", None, "7", ChatKind.PRIVATE)
    assert private.user_id == first.user_id and private.preferences == await repo.effective_settings(first.user_id)
    async with database.sessions() as session:
        assert (await session.execute(select(Identity.display_name))).scalar_one() == "Amy B."

    many = await asyncio.gather(*(repo.identify("discord", "9", "Bo", "c9", ChatKind.PRIVATE) for _ in range(12)))
    assert len({(known.user_id, known.chat_id) for known in many}) == 1


async def test_identify_answers_a_repeat_from_memory_and_sees_its_own_settings_changes_at_once(
    repo: Repository, database: Database
) -> None:
    units: Any = database.units
    ran = 0
    run = units.run

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal ran
        ran += 1
        return await run(*args, **kwargs)

    units.run = counted
    first = await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP)
    before = ran
    assert await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP) == first
    assert await repo.identify("telegram", "7", None, "-5", ChatKind.GROUP) == first, "no name given: the same sender"
    assert ran == before, "a repeat within seconds is answered from memory"

    await repo.update_user_settings(first.user_id, language="zh-Hans")
    assert (await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP)).preferences.language == "zh-Hans"
    await repo.update_chat_settings(first.chat_id, confirm_before_generate=False)
    assert (await repo.identify("telegram", "7", "Amy", "-5", ChatKind.GROUP)).preferences.confirm_before_generate is False
    renamed = ran
    await repo.identify("telegram", "7", "Amy B.", "-5", ChatKind.GROUP)
    assert ran > renamed, "a new display name goes to the database"
    async with database.sessions() as session:
        assert (await session.execute(select(Identity.display_name))).scalar_one() == "Amy B."


def test_recent_identities_expire_drop_the_oldest_and_never_keep_a_read_older_than_a_change() -> None:
    now = [100.0]
    recent = RecentIdentities(seconds=10, at_most=2, monotonic=lambda: now[0])
    amy, bo, cy = (("telegram", name, "c", "private") for name in ("amy", "bo", "cy"))
    known = Identified(1, 1, Preferences())
    recent.remember(amy, "Amy", known, recent.generation)
    assert recent.recall(amy, "Amy") == known and recent.recall(amy, "Amy B.") is None
    now[0] += 10
    assert recent.recall(amy, "Amy") is None, "expired"

    recent.remember(amy, "Amy", known, recent.generation)
    recent.remember(bo, "Bo", Identified(2, 2, Preferences()), recent.generation)
    recent.recall(amy, None)  # amy is now the more recently used
    recent.remember(cy, "Cy", Identified(3, 3, Preferences()), recent.generation)
    assert recent.recall(bo, None) is None and recent.recall(amy, None) == known, "at most 2: the least recent went"

    read_began = recent.generation  # a read from the database starts ...
    recent.forget(user_id=1)  # ... a settings change of that user lands meanwhile ...
    recent.remember(amy, "Amy", known, read_began)  # ... so what the read saw is not kept
    assert recent.recall(amy, None) is None
    recent.forget(chat_id=3)
    assert recent.recall(cy, None) is None, "a chat's change forgets everyone in it"


async def test_queue_is_the_move_the_seed_and_the_final_text_at_once(repo: Repository) -> None:
    _, request_id = await make_request(repo, state=S.AWAITING_CONFIRMATION)
    await repo.save_transcript(request_id, heard_text="a cat", language="en", language_probability=0.9)
    await repo.record_edit(request_id, "a black cat")
    caps = Caps(requests_per_minute=100, active_per_user=1, active_total=100)

    record = await repo.queue(request_id, seed=7, caps=caps)
    assert record is not None and record.state is S.QUEUED and record.seed == 7
    assert record.transcript is not None and record.transcript.final_text == "a black cat"
    assert await repo.queue(request_id, seed=8, caps=caps) is None, "a second press moves nothing"

    _, other = await make_request(repo, state=S.AWAITING_CONFIRMATION)  # the same user: their active cap is 1
    with pytest.raises(CapReached):
        await repo.queue(other, seed=9, caps=caps)
    stays = await repo.get_request(other)
    assert stays is not None and stays.state is S.AWAITING_CONFIRMATION and stays.seed is None, "refused: nothing changed"


async def test_caps_are_checked_in_the_statement_that_admits(repo: Repository, clock: Clock) -> None:
    from db.limits import Cap

    alice, first = await make_request(repo, state=S.QUEUED)
    chat = await repo.get_or_create_chat("telegram", "chat-alice", ChatKind.PRIVATE)
    bob, bobs = await make_request(repo, user="bob", state=S.QUEUED)
    assert await repo.transition(bobs, S.RUNNING)

    def create(user_id: int, caps: Caps, state: RequestState = S.TRANSCRIBING) -> Any:
        return repo.create_request(user_id=user_id, chat_id=chat, kind=RequestKind.VOICE, state=state, caps=caps)

    roomy = 100
    with pytest.raises(CapReached) as per_minute:  # alice made 1 request this minute
        await create(alice, Caps(requests_per_minute=1, active_per_user=roomy, active_total=roomy))
    assert per_minute.value.cap is Cap.PER_MINUTE
    with pytest.raises(CapReached) as mine:  # alice has 1 active request
        await create(alice, Caps(requests_per_minute=roomy, active_per_user=1, active_total=roomy))
    assert mine.value.cap is Cap.ACTIVE_PER_USER
    with pytest.raises(CapReached) as everyone:  # 2 are active in all
        await create(alice, Caps(requests_per_minute=roomy, active_per_user=roomy, active_total=2))
    assert everyone.value.cap is Cap.ACTIVE_TOTAL
    assert len(await repo.requests_in_states(list(S), user_id=alice)) == 1, "nothing was created"
    created = await create(alice, Caps(requests_per_minute=2, active_per_user=2, active_total=3), S.QUEUED)
    assert (await repo.get_request(created)) is not None
    clock.advance(120)
    assert await create(bob, Caps(requests_per_minute=1, active_per_user=2, active_total=roomy)), "the minute is over"

    # A move counts every other active request, never the moved one itself (active before its move or not).
    tight = Caps(requests_per_minute=roomy, active_per_user=2, active_total=roomy)
    assert await repo.transition(first, S.RUNNING, caps=tight), "queued -> running: alice's other active one is 1 < 2"
    assert not await repo.transition(first, S.RUNNING, caps=tight), "not in a source state: False, no cap raised"
    _, opened = await make_request(repo, state=S.AWAITING_CONFIRMATION)
    with pytest.raises(CapReached) as moving:  # alice has 2 active already
        await repo.queue(opened, seed=1, caps=tight)
    assert moving.value.cap is Cap.ACTIVE_PER_USER
    assert (await repo.get_request(opened)).state is S.AWAITING_CONFIRMATION  # type: ignore[union-attr]
    with pytest.raises(CapReached) as total:
        await repo.queue(opened, seed=1, caps=Caps(requests_per_minute=roomy, active_per_user=roomy, active_total=3))
    assert total.value.cap is Cap.ACTIVE_TOTAL
    assert await repo.queue(opened, seed=1, caps=Caps(requests_per_minute=roomy, active_per_user=3, active_total=4))


async def test_concurrent_admissions_never_go_over_a_cap(repo: Repository) -> None:
    user_id, _ = await make_request(repo)
    chat = await repo.get_or_create_chat("telegram", "chat-alice", ChatKind.PRIVATE)
    caps = Caps(requests_per_minute=100, active_per_user=3, active_total=100)

    async def attempt() -> bool:
        try:
            await repo.create_request(user_id=user_id, chat_id=chat, kind=RequestKind.VOICE, state=S.QUEUED, caps=caps)
        except CapReached:
            return False
        return True

    assert sum(await asyncio.gather(*(attempt() for _ in range(12)))) == 3
    assert await repo.count_active(user_id) == 3


def test_records_are_built_from_rows_with_every_field() -> None:
    import dataclasses

    from db import repository
    from db.records import ImageRecord, RequestRecord, TranscriptRecord

    def names(record: type) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(record))

    assert {*repository._REQUEST_FIELDS, "transcript", "images"} == set(names(RequestRecord))
    assert repository._TRANSCRIPT_FIELDS == names(TranscriptRecord) and repository._IMAGE_FIELDS == names(ImageRecord)


async def test_store_result_is_one_transaction_and_none_once_the_request_left_running(repo: Repository) -> None:
    _, request_id = await make_request(repo, state=S.QUEUED)
    images = [(ImageRole.BASE, png((1, 1, 1))), (ImageRole.ANIME, png((2, 2, 2)))]
    record = await repo.store_result(request_id, images, seed=5, model="m", style="paprika", error_key="policy.spoiler")
    assert record is not None and record.state is S.RUNNING and record.started_at is not None
    assert (record.seed, record.style, record.error_key) == (5, "paprika", "policy.spoiler")
    base, anime = record.image(ImageRole.BASE), record.image(ImageRole.ANIME)
    assert base is not None and base.style is None and anime is not None and anime.style == "paprika" and anime.path.exists()

    assert await repo.transition(request_id, S.CANCELLED)
    assert await repo.store_result(request_id, images, seed=6, model="m", style="hayao") is None
    cancelled = await repo.get_request(request_id)
    assert cancelled is not None and cancelled.state is S.CANCELLED and cancelled.seed == 5


async def test_a_move_that_reads_back_returns_the_request_as_stored_then(repo: Repository) -> None:
    _, request_id = await make_request(repo)
    await repo.save_transcript(request_id, heard_text="a cat", language="en", language_probability=0.9)
    control = await repo.add_image(request_id, ImageRole.CONTROL, png((3, 3, 3)))

    opened = await repo.transition_read(request_id, S.AWAITING_CONFIRMATION, from_states=[S.TRANSCRIBING], prompt_positive="cat")
    assert opened is not None and opened.state is S.AWAITING_CONFIRMATION and opened.prompt_positive == "cat"
    assert opened.transcript is not None and opened.transcript.heard_text == "a cat"
    assert opened.images == (control,)
    assert opened == await repo.get_request(request_id), "what a read would find"
    assert await repo.transition_read(request_id, S.AWAITING_CONFIRMATION, from_states=[S.TRANSCRIBING]) is None, "moved once"

    assert await repo.transition_read(request_id, S.FAILED, from_states=[S.TRANSCRIBING]) is None, "guarded like transition"
    unchanged = await repo.get_request(request_id)
    assert unchanged is not None and unchanged.state is S.AWAITING_CONFIRMATION
    with pytest.raises(ValueError):
        await repo.transition_read(request_id, S.DELIVERED, from_states=[S.AWAITING_CONFIRMATION])


@contextmanager
def cursor_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every statement SQLAlchemy sends to a driver meanwhile, with its execution context (any engine)."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        seen.append((statement, context))

    event.listen(Engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", listen)


async def test_units_run_every_statement_through_sqlalchemy_and_its_compiled_cache(repo: Repository, database: Database) -> None:
    from db import statements as sql

    user_id, request_id = await make_request(repo)
    await repo.add_image(request_id, ImageRole.ANIME, png((1, 2, 3)), seed=2**40, style="paprika")
    count = text("SELECT count(*) AS n, max(seed) AS seed FROM images WHERE request_id = :r")
    with cursor_statements() as seen:
        for write in (False, True):  # a text() SELECT returns its rows in reading and in writing units
            found = await database.run(lambda c: tuple(c.execute(count, {"r": request_id}).one()), write=write)
            assert found == (1, 2**40)
        record = await repo.get_request(request_id)
        assert record is not None and record.image(ImageRole.ANIME) is not None
        for ids in ([request_id], [request_id, "nothing", "else"]):  # a statement built per call (lambda_stmt)
            rows = await database.run(lambda c: c.execute(sql.images_of(ids)).all(), write=False)  # noqa: B023
            assert [row.request_id for row in rows] == [request_id]
        assert [r.id for r in await repo.requests_in_states([S.TRANSCRIBING], user_id=user_id)] == [request_id]
        assert await repo.requests_in_states([S.QUEUED], user_id=user_id) == []
    assert any("FROM images" in statement and "count(" in statement for statement, _ in seen), "cursor events see them"
    images = [context.compiled for statement, context in seen if "FROM images" in statement and " IN " in statement]
    assert len(images) >= 2 and len({id(compiled) for compiled in images}) == 1, "one compiled form for every list of ids"
    listed = [context.compiled for statement, context in seen if "FROM requests" in statement and " IN " in statement]
    assert len(listed) == 2 and listed[0] is listed[1]


async def test_postgresql_units_begin_only_where_a_unit_writes_several_statements(
    url: str, repo: Repository, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL-specific")
    import asyncpg

    from db.statements import ADMISSION_LOCK_KEY

    user_id, request_id = await make_request(repo)
    chat_id = await repo.get_or_create_chat("telegram", "chat-alice", ChatKind.PRIVATE)
    caps = Caps(requests_per_minute=100, active_per_user=100, active_total=100)
    simple: list[str] = []  # what asyncpg sends as simple queries (BEGIN, COMMIT: no statement of SQLAlchemy's)
    execute = asyncpg.Connection.execute

    def recorded(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        simple.append(query)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", recorded)

    async def sent(call: Any) -> list[str]:
        simple.clear()
        with cursor_statements() as seen:
            await call
        return simple + [statement if statement.startswith("SELECT") else statement.split()[0] for statement, _ in seen]

    assert not any(s.startswith("BEGIN") for s in await sent(repo.get_request(request_id))), "a read runs without a transaction"
    assert await sent(repo.update_in_state(request_id, [S.TRANSCRIBING], style="paprika")) == ["UPDATE"], "one statement"
    capped = await sent(repo.create_request(user_id=user_id, chat_id=chat_id, kind=RequestKind.VOICE, caps=caps))
    # BEGIN and the admission lock in one round trip, the insert with the caps' counts in it, COMMIT.
    assert capped == [f"BEGIN; SELECT pg_advisory_xact_lock({ADMISSION_LOCK_KEY})", "COMMIT", "INSERT"]
    assert (await sent(repo.store_result(request_id, [], seed=None, model=None, style="x")))[:2] == ["BEGIN", "COMMIT"]
    # A move that returns the request: one statement, the UPDATE a CTE of the read.
    assert await sent(repo.transition_read(request_id, S.FAILED, from_states=[S.RUNNING], error_key="e")) == ["WITH"]
    _, card = await make_request(repo, state=S.AWAITING_CONFIRMATION)
    _, other = await make_request(repo, state=S.AWAITING_CONFIRMATION)
    # Draw: the move (with the caps' counts), the final text and the read in one statement.
    assert await sent(repo.queue(card, seed=1)) == ["WITH"]
    assert await sent(repo.queue(other, seed=1, caps=caps)) == [f"BEGIN; SELECT pg_advisory_xact_lock({ADMISSION_LOCK_KEY})", "COMMIT", "WITH"]

    held = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = :k")
    locks = lambda connection: connection.execute(held, {"k": ADMISSION_LOCK_KEY}).scalar_one()  # noqa: E731
    assert await database.run(locks, exclusive=True) == 1, "an exclusive unit holds the admission lock"
    assert await database.run(locks) == 0 and await database.run(locks, write=False) == 0
    assert await database.run(locks, exclusive=True) == 1, "and lets it go when its transaction ends"


async def test_postgresql_writing_units_begin_again_on_a_server_that_dropped_every_connection(url: str, repo: Repository) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL-specific")
    import asyncpg
    from sqlalchemy.engine import make_url

    user_id, request_id = await make_request(repo)
    chat_id = await repo.get_or_create_chat("telegram", "chat-alice", ChatKind.PRIVATE)
    await asyncio.gather(*(repo.get_request(request_id) for _ in range(5)))  # several pooled connections
    address = make_url(url)
    admin = await asyncpg.connect(address.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            address.database,
        )
    finally:
        await admin.close()
    caps = Caps(requests_per_minute=100, active_per_user=100, active_total=100)
    created = await repo.create_request(user_id=user_id, chat_id=chat_id, kind=RequestKind.VOICE, caps=caps)  # BEGIN + lock
    found = await repo.get_request(created)
    assert found is not None and found.state is S.TRANSCRIBING


@pytest.mark.usefixtures("sqlite_only")
async def test_sqlite_units_wait_for_another_connection_s_lock_without_blocking_the_loop(repo: Repository, database: Database) -> None:
    _, request_id = await make_request(repo)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(tick())
    try:
        async with database.engine.connect() as other:  # another connection (another process, a migration) writes
            await other.exec_driver_sql("BEGIN IMMEDIATE")
            await other.exec_driver_sql("UPDATE users SET created_at = created_at")
            moving = asyncio.create_task(repo.transition(request_id, S.FAILED))
            reading = asyncio.create_task(repo.get_request(request_id))
            await asyncio.sleep(0.3)
            assert not moving.done(), "the write waits for the lock (in the thread, with busy_timeout)"
            assert ticks >= 10, "while the event loop goes on"
            await other.exec_driver_sql("COMMIT")
        assert await moving
        read = await reading
        assert read is not None
    finally:
        ticking.cancel()
    found = await repo.get_request(request_id)
    assert found is not None and found.state is S.FAILED
    assert await repo.transition(request_id, S.FAILED) is False, "and units run on the loop again"


async def test_postgresql_units_keep_their_connections_and_never_wait_for_an_idle_one(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL-specific")
    database = create_database(url, pool_size=3)
    pool: Any = database.engine.pool

    def backend(connection: Any) -> int:
        return int(connection.execute(select(func.pg_backend_pid())).scalar_one())

    def slow(connection: Any) -> int:
        connection.execute(select(func.pg_sleep(0.05)))
        return backend(connection)

    try:
        first = await database.run(backend, write=False)
        assert await database.run(backend, write=False) == first, "the connection stays open between units"
        assert pool.checkedout() == 1, "kept out of the pool: no checkout and checkin per unit"
        # Four times more units than connections: they wait their turn, none for a connection kept idle.
        backends = await asyncio.wait_for(asyncio.gather(*(database.run(slow, write=False) for _ in range(12))), 20)
        assert len(set(backends)) == 3 and pool.checkedout() == 3, "every connection opened stays open, none more"
    finally:
        await database.units.close()
        assert pool.checkedout() == 0, "closing gives every kept connection back"
        await database.dispose()


async def test_postgresql_units_survive_a_server_that_dropped_every_connection(url: str, repo: Repository) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL-specific")
    import asyncpg
    from sqlalchemy.engine import make_url

    _, request_id = await make_request(repo)
    await asyncio.gather(*(repo.get_request(request_id) for _ in range(5)))  # several pooled connections
    address = make_url(url)
    admin = await asyncpg.connect(address.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False))
    try:  # as a restart would: every connection of the database ends
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            address.database,
        )
    finally:
        await admin.close()
    record = await repo.get_request(request_id)
    assert record is not None and record.state is S.TRANSCRIBING
    assert await repo.transition(request_id, S.FAILED)
    assert len(await asyncio.gather(*(repo.get_request(request_id) for _ in range(5)))) == 5
