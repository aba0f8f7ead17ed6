"""Conversation test kit (pytest plugin module): a recording messenger, clocks, the real engine on tiny models.

* :class:`RecordingMessenger` — a fake :class:`handlers.replies.Messenger` that
  keeps every send/edit/notify and the current content of every message.
* :class:`Clock` / :class:`Monotonic` — controllable wall and monotonic clocks.
* :class:`CountingTextToImage` — the real ``TextToImage`` that counts its
  ``generate`` calls and can hold a run at its first denoising step
  (``hold``/``release``) so a test can cancel a job while it is really running.
* :class:`Harness` — repository + engine + messenger + :class:`Conversation`
  with one-line helpers to send events as a user.

Fixtures: ``flow_text_to_image``, ``anime_pipeline`` (session; tiny SD at
64x64/2 steps + AnimeGANv2 test checkpoints), ``local_engine`` (a started
``LocalJobQueue`` over them and the session Whisper ``recognizer``), and
``sqlite_url`` (a migrated SQLite database in the test's tmp dir) and ``any_db_url`` (the same on
SQLite and on PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from db import Repository, RequestRecord, create_database
from db.migrate import upgrade
from db.session import Database
from engine.image.animegan import AnimeGAN
from engine.image.diffusion import DiffusionConfig, GeneratedImage, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.speech.asr import SpeechRecognizer
from engine.speech.transcriber import WhisperTranscriber
from handlers.conversation import Conversation, ConversationConfig
from handlers.events import ButtonPress, Command, Event, Origin, PhotoMessage, TextMessage, VoiceMessage, fetched
from handlers.replies import Button, Reply, VoiceNote, VoiceRefusedError
from tests.support.scripted_engine import SpeechAndJobs

STYLES = ("face_paint_512_v2", "paprika")
STYLE_NAMES = {
    "face_paint_512_v2": {"en": "Portrait (face paint v2)", "zh": "人像（face paint v2）"},
    "paprika": {"en": "Paprika", "zh": "红辣椒 Paprika"},
}


# --- messenger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call the conversation made: ``send``/``edit`` carry a reply, ``notify`` a text, ``voice`` a voice note."""

    op: str
    origin: Origin
    ref: str
    reply: Reply | None = None
    text: str = ""
    voice: VoiceNote | None = None

    @property
    def shown(self) -> str:
        """The user-visible text of the call."""
        return self.reply.text if self.reply is not None else self.text


@dataclass
class RecordingMessenger:
    """A fake platform that records everything and hands out message refs ``m1``, ``m2``, ..."""

    calls: list[Call] = field(default_factory=list)
    messages: dict[str, Reply] = field(default_factory=dict)
    #: Users whose chat cannot be reached (blocked the bot, network down): send/edit raise.
    unreachable: set[str] = field(default_factory=set)
    #: Progress edits raise (a deleted status message, a timeout).
    failing_progress: bool = False
    #: Reply kind -> how many more sends/edits of that kind raise (an upload rejected, a flaky network).
    failures: dict[str, int] = field(default_factory=dict)
    #: Users who administer every group chat (``is_admin``); a private chat is always its user's.
    admins: set[str] = field(default_factory=set)
    #: Every ``is_admin`` question asked, as (chat id, user id).
    admin_checks: list[tuple[str, str]] = field(default_factory=list)
    #: Users who take no voice messages (``send_voice`` raises :class:`VoiceRefusedError`, like Telegram's).
    no_voice: set[str] = field(default_factory=set)

    def _maybe_fail(self, reply: Reply) -> None:
        if self.failures.get(reply.kind, 0) > 0:
            self.failures[reply.kind] -= 1
            raise ConnectionError(f"sending a {reply.kind} failed")

    async def send(self, origin: Origin, reply: Reply) -> str:
        if origin.user_id in self.unreachable:
            raise ConnectionError(f"{origin.user_id} cannot be reached")
        self._maybe_fail(reply)
        ref = f"m{len(self.messages) + 1}"
        self.messages[ref] = reply
        self.calls.append(Call("send", origin, ref, reply))
        return ref

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Like the platforms: an edit without an image keeps the picture the message shows (``messages``)."""
        assert message_ref in self.messages, f"edit of unknown message {message_ref!r}"
        if origin.user_id in self.unreachable or (self.failing_progress and reply.kind == "progress"):
            raise ConnectionError("edit failed")
        self._maybe_fail(reply)
        shown = self.messages[message_ref].image_png
        self.messages[message_ref] = reply if reply.image_png is not None or shown is None else replace(reply, image_png=shown)
        self.calls.append(Call("edit", origin, message_ref, reply))

    async def notify(self, origin: Origin, text: str) -> None:
        self.calls.append(Call("notify", origin, "", text=text))

    async def is_admin(self, origin: Origin) -> bool:
        self.admin_checks.append((origin.chat_id, origin.user_id))
        return not origin.is_group or origin.user_id in self.admins

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        self.calls.append(Call("voice-refused" if origin.user_id in self.no_voice else "voice", origin, "", text=voice.text, voice=voice))
        if origin.user_id in self.no_voice:
            raise VoiceRefusedError(f"{origin.user_id} takes no voice messages")

    def voices(self, user: str | None = None) -> list[VoiceNote]:
        """Every voice note sent (to ``user``)."""
        return [c.voice for c in self.calls if c.op == "voice" and c.voice and (user is None or c.origin.user_id == user)]

    def mark(self) -> int:
        """A position in :attr:`calls`, for :meth:`since`."""
        return len(self.calls)

    def since(self, mark: int, user: str | None = None) -> list[Call]:
        """Calls after ``mark`` (to ``user`` only, when given)."""
        return [c for c in self.calls[mark:] if user is None or c.origin.user_id == user]

    def status_edits(self, ref: str) -> list[Call]:
        """Every send/edit of message ``ref`` (its status updates), in order."""
        return [c for c in self.calls if c.ref == ref and c.op in ("send", "edit")]

    def images(self, user: str | None = None) -> list[Call]:
        """Every picture sent (to ``user``)."""
        return [c for c in self.calls if c.op == "send" and c.reply and c.reply.kind == "image" and c.reply.image_png
                and (user is None or c.origin.user_id == user)]

    def last(self, kind: str, user: str | None = None) -> tuple[str, Reply]:
        """(ref, current content) of the newest message whose current kind is ``kind``."""
        for ref in reversed(self.messages):
            reply = self.messages[ref]
            if reply.kind == kind and (user is None or self._owner(ref) == user):
                return ref, reply
        raise AssertionError(f"no {kind!r} message" + (f" for {user}" if user else ""))

    def _owner(self, ref: str) -> str:
        return next(c.origin.user_id for c in self.calls if c.ref == ref)


def button(reply: Reply, action: str, value: str | None = None) -> Button:
    """The button with ``action`` (and ``value``) on ``reply``."""
    for row in reply.buttons:
        for b in row:
            if b.action == action and (value is None or b.value == value):
                return b
    raise AssertionError(f"no {action!r} button on {reply.text!r}: {[[b.data for b in r] for r in reply.buttons]}")


# --- clocks ---------------------------------------------------------------------------------


class Clock:
    """A controllable timezone-aware UTC wall clock (shared by the repository and the conversation)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Monotonic:
    """A monotonic clock that only moves when told to (progress throttling)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- models ---------------------------------------------------------------------------------


class CountingTextToImage(TextToImage):
    """The real diffusion engine, counting runs; :meth:`hold` parks the next run at its first step."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__(config)
        self.calls = 0
        self.batches: list[int] = []
        self.running = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        """Make runs wait at their first denoising step until :meth:`release`."""
        self._gate.clear()
        self.running.clear()

    def release(self) -> None:
        """Let held runs continue."""
        self._gate.set()

    def generate(self, prompts: Any, *, progress: Any = None, **kwargs: Any) -> list[GeneratedImage]:
        self.calls += 1

        def gated(stage: str, fraction: float) -> None:
            self.running.set()
            assert self._gate.wait(60), "held diffusion run was never released"
            if progress is not None:
                progress(stage, fraction)

        return super().generate(prompts, progress=gated, **kwargs)

    def generate_each(self, requests: Any, **kwargs: Any) -> Any:
        """Every run ends here: ``batches`` is how many pictures each drew; a batch drawn directly is a run too."""
        self.batches.append(len(requests))
        if not kwargs:  # generate() passes its settings and counted its run already
            self.calls += 1
        return super().generate_each(requests, **kwargs)


@pytest.fixture(scope="session")
def flow_text_to_image(tiny_sd_dir: Path) -> CountingTextToImage:
    """Tiny Stable Diffusion at 64x64, 2 steps, on the CPU, counting its runs."""
    config = DiffusionConfig(model=str(tiny_sd_dir), scheduler="dpmpp", steps=2, guidance=1.0, width=64, height=64, device="cpu")
    text_to_image = CountingTextToImage(config)
    text_to_image.load()
    return text_to_image


@pytest.fixture(scope="session")
def anime_pipeline(flow_text_to_image: CountingTextToImage, animegan_checkpoints_dir: Path) -> AnimePipeline:
    """The real pipeline on the tiny models (AnimeGANv2 on torch, CPU)."""
    animegan = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", download=False)
    return AnimePipeline(flow_text_to_image, animegan, default_style=STYLES[0])


@pytest.fixture
async def local_engine(recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline) -> AsyncIterator[SpeechAndJobs]:
    """The session Whisper and a started LocalJobQueue over the session models (closed afterwards)."""
    engine = SpeechAndJobs(WhisperTranscriber(recognizer), LocalJobQueue(anime_pipeline))
    await engine.start()
    yield engine
    anime_pipeline.text_to_image.release()  # type: ignore[attr-defined]
    await engine.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database on each backend (PostgreSQL skips when no server is available)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'flow.db'}"
    else:
        url = str(request.getfixturevalue("postgres_database_url"))
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in the test's tmp dir."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'flow.db'}"
    upgrade(url)
    return url


# --- harness --------------------------------------------------------------------------------


def origin(user: str = "alice", *, locale: str | None = "en-US", chat: str | None = None, group: bool = False) -> Origin:
    """A Telegram origin for ``user`` (private chat ``chat-<user>`` unless ``chat`` is given)."""
    return Origin("telegram", chat or f"chat-{user}", user, user.title(), locale, group)


class Harness:
    """Everything a conversation test needs, with helpers that speak as a user."""

    def __init__(
        self,
        database: Database,
        data_dir: Path,
        engine: Any,
        config: ConversationConfig,
        *,
        clock: Clock | None = None,
        narrator: Any = None,
    ) -> None:
        self.database = database
        self.clock = clock or Clock()
        self.monotonic = Monotonic()
        self.repository = Repository(database, data_dir, clock=self.clock)
        self.engine = engine
        self.messenger = RecordingMessenger()
        self.config = config
        self.conversation = Conversation(
            self.repository, engine, engine, self.messenger, config, clock=self.clock, monotonic=self.monotonic, narrator=narrator
        )
        self.locales: dict[str, str | None] = {}

    def origin(self, user: str, *, group: str | None = None) -> Origin:
        """``user``'s origin with their locale (``locales``, default en-US): their private chat, or group chat ``group``."""
        return origin(user, locale=self.locales.get(user, "en-US"), chat=group, group=group is not None)

    async def send(self, event: Event) -> None:
        await self.conversation.handle(event)

    async def voice(self, user: str, audio: bytes) -> None:
        await self.send(VoiceMessage(self.origin(user), fetched(audio)))

    async def text(self, user: str, text: str) -> None:
        await self.send(TextMessage(self.origin(user), text))

    async def photo(self, user: str, image: bytes) -> None:
        await self.send(PhotoMessage(self.origin(user), fetched(image)))

    async def command(self, user: str, name: str, args: str = "", *, group: str | None = None) -> None:
        await self.send(Command(self.origin(user, group=group), name, args))

    async def press(self, user: str, b: Button, message_ref: str = "", *, group: str | None = None) -> None:
        """Press ``b`` as ``user`` (``message_ref``: the message the button sits on; ``group``: in that group chat)."""
        await self.send(ButtonPress(self.origin(user, group=group), b.request_id, b.action, b.value, message_ref))

    async def request(self, request_id: str) -> RequestRecord:
        """The request as the database has it now."""
        record = await self.repository.get_request(request_id)
        assert record is not None
        return record

    async def settle(self) -> None:
        """Wait for every job watcher to finish."""
        await self.conversation.wait_idle()


def config(**overrides: Any) -> ConversationConfig:
    """The test conversation config: both test styles, progress edits unthrottled and upload retries at once unless overridden."""
    base = ConversationConfig(
        styles=STYLES, style_names=STYLE_NAMES, default_style=STYLES[0], progress_interval=0.0, delivery_retry_delays=(0.0, 0.0)
    )
    return replace(base, **overrides)


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Any]:
    """``await make_harness(url, engine, clock=..., narrator=..., **config)`` -> :class:`Harness`; databases disposed afterwards."""
    databases: list[Database] = []

    async def make(url: str, engine: Any, *, clock: Clock | None = None, narrator: Any = None, **overrides: Any) -> Harness:
        database = create_database(url)
        databases.append(database)
        return Harness(database, tmp_path / "data", engine, config(**overrides), clock=clock, narrator=narrator)

    yield make
    for database in databases:
        await database.dispose()
