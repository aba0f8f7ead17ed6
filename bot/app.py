"""The bot process: database, engine, conversation and every adapter that has a token, in one event loop.

With no platform token (or ``WEB_ENABLED=true``) the web studio (:mod:`bot.web`)
is one of the adapters: a page in the browser over the same conversation.

Start order: migrate the database, start the engine, resume jobs left over
from the last run, then connect the adapters. Stop order is the reverse; jobs
that are still queued or running stay so in the database and are resumed by
the next start (nothing is silently lost).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from bot import event_loop, factory
from bot.adapter import Adapter, PlatformRouter
from bot.settings import Settings
from bot.startup_errors import BadInputError, database_location, reaching, require_engine, url_location
from bot.web import WebAdapter
from bot.web_gallery import RepositoryGallery
from db import Repository, create_database
from db.migrate import upgrade_async
from engine.api import JobQueue, Transcriber
from engine.language.prompt import warm_up
from engine.policy.levels import Level
from engine.policy.text import PromptChecker
from engine.speech.asr import whisper_device
from handlers.conversation import Conversation

log = logging.getLogger(__name__)


class NoAdapterError(BadInputError):
    """``run`` was asked to start with no platform token and the web studio turned off."""


def web_wanted(settings: Settings) -> bool:
    """``WEB_ENABLED``: true = always, false = never, unset = only when no platform token is set."""
    if settings.web_enabled is not None:
        return settings.web_enabled
    return not (settings.telegram_bot_token or settings.discord_bot_token)


def adapters_from(settings: Settings) -> list[Adapter]:
    """An adapter for every platform whose token is set, and the web studio when :func:`web_wanted`."""
    adapters: list[Adapter] = []
    if web_wanted(settings):  # first: a non-loopback WEB_HOST without WEB_PASSWORD is refused before anything connects
        adapters.append(WebAdapter.from_settings(settings))
    if settings.telegram_bot_token:
        from bot.telegram import TelegramAdapter

        adapters.append(TelegramAdapter.from_settings(settings))
    if settings.discord_bot_token:
        from bot.discord import DiscordAdapter

        adapters.append(DiscordAdapter.from_settings(settings))
    return adapters


class BotApp:
    """Everything a running bot holds; :meth:`start` and :meth:`stop` bring it up and down."""

    def __init__(self, settings: Settings, adapters: Sequence[Adapter], transcriber: Transcriber, jobs: JobQueue) -> None:
        self.settings = settings
        self.adapters = list(adapters)
        self.transcriber = transcriber
        self.jobs = jobs
        with self._database_step():
            self.database = create_database(settings.database_url)
        self.repository = Repository(self.database, settings.data_dir)
        router = PlatformRouter({adapter.platform: adapter.messenger for adapter in self.adapters})
        config = factory.conversation_config(settings)
        narrator = factory.narrator(settings) if settings.voice_replies != "off" else None  # its voices load on first use
        self.conversation = Conversation(self.repository, transcriber, jobs, router, config, narrator=narrator)
        self._warming: asyncio.Task[None] | None = None  # held: a task nobody references may be collected
        for adapter in self.adapters:
            if isinstance(adapter, WebAdapter) and adapter.gallery is None:
                adapter.gallery = RepositoryGallery(self.repository, config.style_names)
            if isinstance(adapter, WebAdapter):
                adapter.awaited_words = self.conversation.awaited_words

    async def start(self) -> None:
        """Migrate, start the engine, connect the adapters, then resume what the last run left unfinished.

        The leftovers are read before any adapter delivers events (so a new
        request is never resumed as well), and resumed after the adapters are
        connected (so the users can be told).

        A database, Redis or platform that cannot be reached raises
        :class:`~bot.startup_errors.DependencyError` naming it (no password).
        """
        with self._database_step():
            await upgrade_async(self.settings.database_url)
        with self._engine_step():
            await self.jobs.start()
        with self._database_step():
            leftovers = await self.conversation.unfinished()
        for adapter in self.adapters:
            with self._adapter_step(adapter.platform):
                await adapter.start(self.conversation.handle)
            log.info("%s adapter started", adapter.platform)
        await self.conversation.recover(leftovers)
        checker = self.conversation.config.policy.checker
        self._warming = asyncio.create_task(_warm_up(checker), name="voice2anime-warm-up")

    def _database_step(self) -> AbstractContextManager[None]:
        url = self.settings.database_url
        sqlite = url.startswith("sqlite")
        return reaching(f"the database {database_location(url)}", "DATABASE_URL", verb="open" if sqlite else "reach")

    def _engine_step(self) -> AbstractContextManager[None]:
        if self.settings.engine != "redis":
            return nullcontext()
        return reaching(f"Redis at {url_location(self.settings.redis_url.get_secret_value())}", "REDIS_URL")

    def _adapter_step(self, platform: str) -> AbstractContextManager[None]:
        if platform == "web":
            where = f"{self.settings.web_host}:{self.settings.web_port}"
            return reaching(where, "WEB_HOST, WEB_PORT", verb="listen on")
        if platform == "telegram":
            where = url_location(self.settings.telegram_api_base_url)
            return reaching(f"the Telegram Bot API at {where}", "TELEGRAM_API_BASE_URL")
        return reaching(platform.capitalize(), None)

    async def stop(self) -> None:
        """Disconnect, stop following jobs (they stay queued/running for the next start), close the engine and DB."""
        await self.conversation.finish_handovers()
        for adapter in reversed(self.adapters):
            try:
                await adapter.stop()
            except Exception:
                log.exception("stopping the %s adapter failed", adapter.platform)
        await self.conversation.close()
        await self.jobs.close()
        await self.database.dispose()


async def _warm_up(checker: PromptChecker) -> None:
    """:func:`engine.language.prompt.warm_up` and the content policy's checks (its classifier trains on first use, ~1 s) in a
    thread, then what start-up loaded is frozen out of the GC (``bot.event_loop``).

    A failure to load only means the first description loads (and reports) it.
    """
    try:
        await asyncio.to_thread(warm_up)
        await asyncio.to_thread(checker.check_text, "a girl with blue hair", Level.STRICT)
    except Exception:
        log.warning("loading the dictionaries at start failed; the first description will try again", exc_info=True)
    frozen = event_loop.freeze_start_up_heap()
    log.info("dictionaries loaded; %d objects of the start-up heap left out of garbage collection", frozen)


async def run(settings: Settings, ready: Callable[[BotApp], None] | None = None) -> None:
    """Run the bot until SIGINT/SIGTERM; ``ready`` is called once every adapter has started (the CLI prints where)."""
    if settings.engine == "local":  # first: without the engine extra nothing is built, written or connected (exit 3)
        require_engine("ENGINE=local", factory.LOCAL_ENGINE_HINT)
    whisper_device(settings.whisper_device)  # WHISPER_DEVICE=cuda without a GPU: said now, not at the first voice note
    adapters = adapters_from(settings)
    if not adapters:
        raise NoAdapterError(
            "WEB_ENABLED=false and no platform token: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN, or WEB_ENABLED"
        )
    await asyncio.to_thread(factory.use_machine_translator, settings)
    app = BotApp(settings, adapters, factory.transcriber(settings), factory.job_queue(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        platforms = ", ".join(a.platform for a in adapters)
        log.info("voice2anime is running (%s) on %s's event loop; Ctrl+C to stop", platforms, event_loop.name_of(loop))
        if ready is not None:
            ready(app)
        await stop.wait()
    finally:
        log.info("shutting down")
        await app.stop()
