"""The conversation's entry: each event goes to the handler its route names (:mod:`handlers.conversation.routes`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from db.columns import utcnow
from db.records import RequestRecord
from db.repository import Repository
from db.states import TERMINAL_STATES, RequestState
from engine.api import JobQueue, Transcriber
from engine.errors import UserError
from handlers import cards
from handlers.conversation import intake, recovery, voice
from handlers.conversation.card_view import card_is_open
from handlers.conversation.config import ConversationConfig
from handlers.conversation.context import Context, Who
from handlers.conversation.routes import (
    BUTTONS,
    BY_COMMAND,
    CARD_STATES,
    COMMAND_NAMES,
    EVENTS,
    SETTINGS_BUTTONS,
    UNKNOWN_COMMAND,
    ButtonRoute,
)
from handlers.events import ButtonPress, Command, Event, Origin
from handlers.i18n import error_text, pick_language, t
from handlers.jobs import JobTracker
from handlers.replies import Messenger, OwnedMessages, Reply

log = logging.getLogger(__name__)

S = RequestState


class Conversation:
    """Handles every neutral event; replies go out through the :class:`Messenger`.

    Speech goes to ``transcriber``; queued requests to ``jobs``, followed by a
    :class:`~handlers.jobs.JobTracker` to their end. With a ``narrator`` (and
    ``config.voice_replies`` not ``off``) replies are also spoken
    (:mod:`handlers.conversation.voice`).
    """

    def __init__(
        self,
        repository: Repository,
        transcriber: Transcriber,
        jobs: JobQueue,
        messenger: Messenger,
        config: ConversationConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        narrator: voice.Narrator | None = None,
    ) -> None:
        owned = OwnedMessages(messenger)  # remembers whose each message is (see _press_target)
        tracker = JobTracker(
            repository,
            jobs,
            owned,
            default_style=config.default_style,
            style_names=config.style_names,
            progress_interval=config.progress_interval,
            retry_delays=config.delivery_retry_delays,
            monotonic=monotonic,
            previews=config.previews,
            policy=config.policy,
            reopen=self._reopen_for_model,
            delivered=self._picture_delivered,
        )
        #: What every handler is given.
        self.context = Context(repository, transcriber, tracker, owned, config, clock, COMMAND_NAMES)
        if narrator is not None and config.voice_replies != "off":
            self.context.voice = voice.VoiceReplies(
                narrator, owned, default=config.voice_replies, style_names=config.style_names, refusals=repository
            )

    @property
    def repository(self) -> Repository:
        """The history database."""
        return self.context.repository

    @property
    def config(self) -> ConversationConfig:
        """Limits and timings."""
        return self.context.config

    @property
    def jobs(self) -> JobTracker:
        """Follows the queued requests' jobs."""
        return self.context.jobs

    @property
    def messenger(self) -> OwnedMessages:
        """Where replies go, remembering whose each message is."""
        return self.context.messenger

    # --- entry points -------------------------------------------------------

    async def awaited_words(self, origin: Origin) -> str | None:
        """The request whose words ``origin``'s user was asked for and has not given yet: the picture of a Remix,
        the card of an Edit still open (None: none)."""
        return await intake.awaited_words(self.context, origin)

    async def handle(self, event: Event) -> None:
        """Process one event. Never raises: users get a message, operators a log line."""
        try:
            who = await self.context.who(event.origin)
            try:
                await self._dispatch(event, who)
            except UserError as error:
                log.info("user %s: %s", who.user_id, error.key)
                await self.messenger.send(event.origin, Reply(error_text(error.key, who.lang, error.params), kind="error"))
        except Exception:
            log.exception("failed to handle %s", type(event).__name__)
            try:
                lang = pick_language(None, event.origin.locale)
                await self.messenger.send(event.origin, Reply(t("error.generic", lang), kind="error"))
            except Exception:
                log.exception("could not tell the user about the failure")

    async def wait_idle(self) -> None:
        """Wait until every running job watcher and picture check has finished, and every voice reply been sent (tests, shutdown)."""
        while self.context.checks:
            await asyncio.gather(*list(self.context.checks), return_exceptions=True)
        await self.jobs.wait_idle()
        if self.context.voice is not None:
            await self.context.voice.wait_idle()

    async def finish_handovers(self) -> None:
        """Shutdown, before the adapters disconnect: let pictures being uploaded be taken and marked delivered."""
        await self.jobs.finish_handovers()

    async def close(self) -> None:
        """Stop following jobs (shutdown) without touching their state: :meth:`recover` resumes them."""
        for check in list(self.context.checks):
            check.cancel()
        await asyncio.gather(*list(self.context.checks), return_exceptions=True)
        await self.jobs.close()
        if self.context.voice is not None:
            await self.context.voice.close()

    async def unfinished(self) -> list[RequestRecord]:
        """Requests a previous run left transcribing, queued or running (take this before events flow)."""
        return await self.repository.requests_in_states([S.TRANSCRIBING, S.QUEUED, S.RUNNING])

    async def recover(self, records: list[RequestRecord] | None = None) -> None:
        """After a restart: resume queued/running jobs, fail what cannot be resumed, and say so.

        ``records`` defaults to :meth:`unfinished`; the bot process snapshots
        them before its adapters start so a request made meanwhile is not
        submitted twice. A request caught transcribing cannot be resumed (the
        audio lived in memory only); neither can a job whose inputs are gone.
        One request that cannot be resumed or answered never stops the others.
        """
        for record in await self.unfinished() if records is None else records:
            try:
                await recovery.resume(self.context, record)
            except Exception:
                log.exception("could not recover request %s", record.id)

    async def _reopen_for_model(self, origin: Origin, request_id: str, ref: str | None, key: str, fix: str) -> bool:
        """The job tracker's :data:`~handlers.jobs.Reopen`: see :func:`handlers.conversation.recovery.reopen_for_model`."""
        return await recovery.reopen_for_model(self.context, origin, request_id, ref, key, fix)

    async def _picture_delivered(self, origin: Origin, request_id: str) -> None:
        """The job tracker's :data:`~handlers.jobs.Delivered`: see :func:`handlers.conversation.voice.speak_picture`."""
        await voice.speak_picture(self.context, origin, request_id)

    # --- dispatch -------------------------------------------------------------

    async def _dispatch(self, event: Event, who: Who) -> None:
        match event:
            case Command():
                route = BY_COMMAND.get(event.name.lower())
                await (route.handler if route else UNKNOWN_COMMAND)(self.context, who, event)
            case ButtonPress():
                await self._on_button(event, who)
            case _:
                await EVENTS[type(event)](self.context, who, event)

    async def _on_button(self, press: ButtonPress, who: Who) -> None:
        press = replace(press, message_ref=self._press_target(press, who))
        if press.request_id == cards.NO_REQUEST:
            settings_handler = SETTINGS_BUTTONS.get(press.action)
            if settings_handler is not None:
                await settings_handler(self.context, who, press)
            return
        route = BUTTONS.get(press.action)
        if route is None:
            log.warning("button action %r is not about a request", press.action)
            return
        async with self.context.request_locks(press.request_id):
            record = await self.repository.get_request(press.request_id)
            if record is None:
                await self.messenger.notify(who.origin, t("card.expired", who.lang))
                return
            if record.user_id != who.user_id:
                await self.messenger.notify(who.origin, t("not_yours", who.lang))
                return
            if await self._allows(route, who, record):
                await route.handler(self.context, who, press, record)

    def _press_target(self, press: ButtonPress, who: Who) -> str:
        """The message a press may change: the one it was made on, if that is the presser's and about the press's request.

        A message belongs to the user it was sent for. A press on it by anyone
        else (Bob choosing a language on Alice's settings picker) never edits
        it: the presser is answered privately or in a message of their own.
        Neither does a press whose payload names a request the message is not
        about (Alice's request on Bob's settings card): it acts on its own
        request's messages. A message that is not remembered (sent before a
        restart, or long ago) is its chat's in a private chat; in a group it
        may be changed by a request's buttons only — the handler has found the
        request to be the presser's, and the platforms deliver only buttons
        the message carries — never by settings buttons, whose owner is unknown.
        """
        ref = press.message_ref
        if not ref:
            return ""
        owner = self.messenger.owner(who.origin.platform, ref)
        if owner is None:
            return ref if not who.origin.is_group or press.request_id != cards.NO_REQUEST else ""
        return ref if owner.user_id == who.origin.user_id and press.request_id in owner.requests else ""

    async def _allows(self, route: ButtonRoute, who: Who, record: RequestRecord) -> bool:
        """True if the button's action applies in the request's state; tells the user why not otherwise."""
        if route.states == CARD_STATES:
            return await card_is_open(self.context, who, record)
        if record.state in route.states:
            return True
        await self.messenger.notify(who.origin, t("already_handled" if record.state in TERMINAL_STATES else "not_ready", who.lang))
        return False
