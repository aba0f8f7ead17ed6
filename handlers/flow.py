"""The conversation, written once for every platform.

```mermaid
stateDiagram-v2
    [*] --> transcribing: voice note, /anime text
    [*] --> queued: photo, restyle, reroll
    transcribing --> awaiting_confirmation: card shown (typed text: at once)
    awaiting_confirmation --> queued: at once when confirm-before-generate is off
    transcribing --> failed: bad audio / nothing heard
    awaiting_confirmation --> awaiting_confirmation: Edit (new text), Style
    awaiting_confirmation --> transcribing: Retry in another language
    awaiting_confirmation --> queued: Confirm
    awaiting_confirmation --> cancelled: Cancel
    awaiting_confirmation --> expired: pressed after CARD_TTL
    queued --> running: worker picks it up (position updates while waiting)
    running --> delivered: image sent (Restyle / Reroll / Original)
    queued --> cancelled: Cancel or /cancel
    running --> cancelled: Cancel or /cancel
    queued --> failed
    running --> failed
    running --> queued: bot restarted, job resumed
```

Every move is a guarded transition in the database (``db.states``), so a
duplicate button press or a redelivered event never applies twice. Queued
requests are handed to :class:`handlers.jobs.JobTracker`, which follows each
job to its end.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from db.columns import utcnow
from db.enums import ChatKind, ImageRole, RequestKind
from db.records import RequestRecord
from db.repository import Repository
from db.states import RequestState
from engine.api import (
    Engine,
    JobSpec,
    Prompt,
    Transcript,
)
from engine.errors import QueueFullError, TextTooLongError, UnknownStyleError, UserError, UserQueueFullError
from engine.imageio import open_image, png_bytes
from engine.prompt import build_prompt
from handlers import cards
from handlers.events import ButtonPress, Command, Event, Origin, PhotoMessage, Rejected, TextMessage, VoiceMessage
from handlers.i18n import error_text, pick_language, t
from handlers.jobs import JobTracker, delivered_reply
from handlers.replies import Messenger, Reply

log = logging.getLogger(__name__)

S = RequestState


class RateLimitedError(UserError):
    """Too many new requests in the last minute."""

    key = "rate_limited"
    template = "You're sending requests too fast. Please wait a minute."


@dataclass(frozen=True)
class ConversationConfig:
    """Limits and timings of the conversation (from settings)."""

    styles: tuple[str, ...]
    default_style: str
    card_ttl: timedelta = timedelta(minutes=10)
    progress_interval: float = 2.0
    max_text_chars: int = 500
    requests_per_minute: int = 6
    max_active_per_user: int = 3
    max_active_total: int = 100
    history_limit: int = 5
    unsure_below: float = 0.5
    #: Voice notes kept in memory for "Heard wrong language" while their card is open (oldest dropped first).
    audio_cache_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class _Who:
    """The requester as the database knows them, with their effective settings."""

    origin: Origin
    user_id: int
    chat_id: int
    lang: str
    style: str
    confirm: bool
    language_setting: str | None


class Conversation:
    """Handles every neutral event; replies go out through the :class:`Messenger`."""

    def __init__(
        self,
        repository: Repository,
        engine: Engine,
        messenger: Messenger,
        config: ConversationConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.engine = engine
        self.messenger = messenger
        self.config = config
        self._clock = clock
        self._pending_edits: dict[tuple[str, str, str], str] = {}
        self._audio: OrderedDict[str, bytes] = OrderedDict()
        self.jobs = JobTracker(
            repository,
            engine,
            messenger,
            default_style=config.default_style,
            progress_interval=config.progress_interval,
            monotonic=monotonic,
        )

    # --- entry points -------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Process one event. Never raises: users get a message, operators a log line."""
        try:
            who = await self._who(event.origin)
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
        """Wait until every running job watcher has finished (tests, shutdown)."""
        await self.jobs.wait_idle()

    async def close(self) -> None:
        """Stop following jobs (shutdown) without touching their state: :meth:`recover` resumes them."""
        await self.jobs.close()

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
                await self._recover_one(record)
            except Exception:
                log.exception("could not recover request %s", record.id)

    async def _recover_one(self, record: RequestRecord) -> None:
        address = await self.repository.request_address(record.id)
        if address is None:
            log.error("request %s has no address to answer; failing it", record.id)
            await self.repository.transition(record.id, S.FAILED, error_key="job.lost")
            return
        origin = Origin(
            address.platform, address.platform_chat_id, address.platform_user_id, is_group=address.chat_kind is ChatKind.GROUP
        )
        who = await self._who(origin)
        if record.state is S.RUNNING:
            await self.repository.transition(record.id, S.QUEUED, from_states=[S.RUNNING])
        spec = None if record.state is S.TRANSCRIBING else await self.jobs.spec_for(record)
        if spec is None:
            if await self.repository.transition(record.id, S.FAILED, error_key="job.lost"):
                await self.messenger.send(origin, Reply(t("job.lost", who.lang), kind="error"))
            return
        log.info("resuming request %s after restart", record.id)
        ref = await self.messenger.send(origin, cards.progress(record.id, who.lang, "queued", position="…"))
        await self.jobs.submit(who.origin, who.lang, record.id, spec, ref)

    # --- dispatch -------------------------------------------------------------

    async def _dispatch(self, event: Event, who: _Who) -> None:
        match event:
            case VoiceMessage():
                await self._on_voice(event, who)
            case TextMessage():
                await self._on_text(event, who)
            case PhotoMessage():
                await self._on_photo(event, who)
            case Command():
                await self._on_command(event, who)
            case ButtonPress():
                await self._on_button(event, who)
            case Rejected(error=error):
                raise error

    async def _who(self, origin: Origin) -> _Who:
        user_id = await self.repository.get_or_create_user(origin.platform, origin.user_id, origin.user_name or None)
        kind = ChatKind.GROUP if origin.is_group else ChatKind.PRIVATE
        chat_id = await self.repository.get_or_create_chat(origin.platform, origin.chat_id, kind)
        prefs = await self.repository.effective_settings(user_id, chat_id if origin.is_group else None)
        style = prefs.default_style if prefs.default_style in self.config.styles else self.config.default_style
        return _Who(
            origin,
            user_id,
            chat_id,
            pick_language(prefs.language, origin.locale),
            style,
            prefs.confirm_before_generate,
            prefs.language,
        )

    async def _check_limits(self, who: _Who, *, new_request: bool = True) -> None:
        """Raise the UserError for the first limit hit; the rate limit only counts ``new_request``s."""
        if new_request:
            since = self._clock() - timedelta(minutes=1)
            if await self.repository.count_requests_since(who.user_id, since) >= self.config.requests_per_minute:
                raise RateLimitedError()
        if await self.repository.count_active(who.user_id) >= self.config.max_active_per_user:
            raise UserQueueFullError(limit=self.config.max_active_per_user)
        if await self.repository.count_active() >= self.config.max_active_total:
            raise QueueFullError(limit=self.config.max_active_total)

    # --- voice, text, photo -----------------------------------------------------

    async def _on_voice(self, event: VoiceMessage, who: _Who) -> None:
        await self._check_limits(who)
        request_id = await self.repository.create_request(
            user_id=who.user_id, chat_id=who.chat_id, kind=RequestKind.VOICE, state=S.TRANSCRIBING, style=who.style
        )
        ref = await self.messenger.send(who.origin, Reply(t("transcribing", who.lang), kind="progress"))
        self._remember_audio(request_id, event.audio)
        await self._transcribe(who, request_id, ref, event.audio, language=None)

    async def _transcribe(self, who: _Who, request_id: str, ref: str, audio: bytes, language: str | None) -> None:
        try:
            transcript = await self.engine.transcribe(audio, language=language)
            prompt = build_prompt(transcript.text, translation=transcript.translation, language=transcript.language)
        except Exception as error:
            if not isinstance(error, UserError):
                log.exception("transcribing request %s failed", request_id)
            key, params = (error.key, error.params) if isinstance(error, UserError) else ("error.generic", {})
            await self.repository.transition(request_id, S.FAILED, from_states=[S.TRANSCRIBING], error_key=key)
            self._audio.pop(request_id, None)
            await self.messenger.edit(who.origin, ref, Reply(error_text(key, who.lang, params), kind="error"))
            return
        await self.repository.save_transcript(
            request_id,
            heard_text=transcript.text,
            language=transcript.language,
            language_probability=transcript.language_probability,
            translation=transcript.translation,
            words=transcript.words,
        )
        await self._offer(who, request_id, ref, prompt, transcript=transcript)

    async def _on_text(self, event: TextMessage, who: _Who) -> None:
        key = (who.origin.platform, who.origin.chat_id, who.origin.user_id)
        request_id = event.request_id or self._pending_edits.get(key)
        if request_id is not None:
            await self._apply_edit(who, request_id, event.text)  # a UserError (too long...) keeps the edit pending
            if self._pending_edits.get(key) == request_id:
                del self._pending_edits[key]
        elif not who.origin.is_group:
            await self.messenger.send(who.origin, Reply(t("text.hint", who.lang)))

    async def _on_anime(self, who: _Who, text: str, style: str) -> None:
        text = text.strip()
        if not text:
            await self.messenger.send(who.origin, Reply(t("anime.usage", who.lang)))
            return
        self._check_text(text)
        if style:
            if style not in self.config.styles:
                raise UnknownStyleError(style=style, styles=", ".join(self.config.styles))
            who = replace(who, style=style)
        prompt = build_prompt(text)
        await self._check_limits(who)
        request_id = await self.repository.create_request(
            user_id=who.user_id, chat_id=who.chat_id, kind=RequestKind.TEXT, state=S.TRANSCRIBING, style=who.style
        )
        await self.repository.save_transcript(
            request_id, heard_text=text, language=prompt.language, language_probability=1.0
        )
        ref = await self.messenger.send(who.origin, Reply("…", kind="progress"))
        await self._offer(who, request_id, ref, prompt, transcript=None)

    async def _offer(self, who: _Who, request_id: str, ref: str, prompt: Prompt, *, transcript: Transcript | None) -> None:
        """Show the confirmation card, or go straight on when the user turned confirmation off."""
        moved = await self.repository.transition(
            request_id,
            S.AWAITING_CONFIRMATION,
            from_states=[S.TRANSCRIBING],
            prompt_positive=prompt.positive,
            prompt_negative=prompt.negative,
            source_language=prompt.language,
            card_expires_at=self._clock() + self.config.card_ttl,
        )
        if not moved:
            return
        if not who.confirm:
            try:
                await self._confirm(who, request_id, ref)
                return
            except UserError:  # over a limit: show the card so it can be confirmed later
                await self.messenger.edit(who.origin, ref, self._card(who, request_id, prompt, transcript))
                raise
        await self.messenger.edit(who.origin, ref, self._card(who, request_id, prompt, transcript))

    def _card(self, who: _Who, request_id: str, prompt: Prompt, transcript: Transcript | None) -> Reply:
        style = who.style
        if transcript is None:
            return cards.confirmation_card(request_id, who.lang, text=prompt.description, prompt=prompt, style=style)
        marked = cards.mark_unsure(transcript.words, self.config.unsure_below) if transcript.words else transcript.text
        return cards.confirmation_card(
            request_id,
            who.lang,
            text=marked,
            prompt=prompt,
            style=style,
            heard_language=transcript.language,
            confidence=transcript.language_probability,
            has_unsure=any(w.probability < self.config.unsure_below for w in transcript.words),
        )

    async def _apply_edit(self, who: _Who, request_id: str, text: str) -> None:
        text = text.strip()
        self._check_text(text)
        prompt = build_prompt(text)
        record = await self.repository.get_request(request_id)
        if record is None:
            await self.messenger.send(who.origin, Reply(t("card.expired", who.lang)))
            return
        if record.user_id != who.user_id:
            await self.messenger.notify(who.origin, t("not_yours", who.lang))
            return
        if not await self._card_is_open(who, record):
            return
        if not await self.repository.update_in_state(
            request_id,
            [S.AWAITING_CONFIRMATION],
            prompt_positive=prompt.positive,
            prompt_negative=prompt.negative,
            source_language=prompt.language,
            card_expires_at=self._clock() + self.config.card_ttl,
        ):
            return
        await self.repository.record_edit(request_id, text)
        await self.messenger.send(
            who.origin, cards.confirmation_card(request_id, who.lang, text=text, prompt=prompt, style=record.style or who.style)
        )

    async def _on_photo(self, event: PhotoMessage, who: _Who) -> None:
        png = await asyncio.to_thread(lambda: png_bytes(open_image(event.image)))
        await self._check_limits(who)
        request_id = await self.repository.create_request(
            user_id=who.user_id, chat_id=who.chat_id, kind=RequestKind.PHOTO, state=S.QUEUED, style=who.style
        )
        await self.repository.add_image(request_id, ImageRole.BASE, png)
        spec = JobSpec(request_id, str(who.user_id), "photo", who.style, source_png=png)
        ref = await self.messenger.send(who.origin, cards.progress(request_id, who.lang, "queued", position="…"))
        await self.jobs.submit(who.origin, who.lang, request_id, spec, ref)

    def _check_text(self, text: str) -> None:
        if len(text) > self.config.max_text_chars:
            raise TextTooLongError(length=len(text), limit=self.config.max_text_chars)

    # --- commands ---------------------------------------------------------------

    async def _on_command(self, event: Command, who: _Who) -> None:
        send = self.messenger.send
        match event.name.lower():
            case "start":
                await send(who.origin, Reply(t("start", who.lang, name=who.origin.user_name or "👋")))
            case "help":
                await send(who.origin, Reply(t("help", who.lang)))
            case "anime":
                await self._on_anime(who, event.args, event.style)
            case "style":
                await send(who.origin, cards.style_picker(cards.NO_REQUEST, cards.DEFAULT_STYLE, self.config.styles, who.lang, who.style))
            case "history":
                await self._show_history(who)
            case "settings":
                await send(who.origin, self._settings_card(who))
            case "cancel":
                await self._cancel_latest(who)
            case _:
                await send(who.origin, Reply(t("unknown_command", who.lang)))

    def _settings_card(self, who: _Who) -> Reply:
        return cards.settings_card(who.lang, language=who.language_setting, style=who.style, confirm=who.confirm)

    async def _show_history(self, who: _Who) -> None:
        records = await self.repository.history(who.user_id, self.config.history_limit)
        entries = [(r.id, _label(r)) for r in records]
        await self.messenger.send(who.origin, cards.history_list(who.lang, entries))

    async def _cancel_latest(self, who: _Who) -> None:
        open_states = [S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING]
        mine = await self.repository.requests_in_states(open_states, user_id=who.user_id)
        if not mine:
            await self.messenger.send(who.origin, Reply(t("cancel.nothing", who.lang)))
            return
        await self._cancel(who, mine[-1])

    async def _update_preferences(self, who: _Who, **changes: object) -> None:
        if who.origin.is_group:
            await self.repository.update_chat_settings(who.chat_id, **changes)  # type: ignore[arg-type]
        else:
            await self.repository.update_user_settings(who.user_id, **changes)  # type: ignore[arg-type]

    # --- buttons ----------------------------------------------------------------

    async def _on_button(self, press: ButtonPress, who: _Who) -> None:
        if press.request_id == cards.NO_REQUEST:
            await self._on_settings_button(press, who)
            return
        record = await self.repository.get_request(press.request_id)
        if record is None:
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return
        if record.user_id != who.user_id:
            await self.messenger.notify(who.origin, t("not_yours", who.lang))
            return
        card_actions = (cards.CONFIRM, cards.EDIT, cards.RETRY, cards.RETRY_AS, cards.STYLE, cards.STYLE_SET)
        if press.action in card_actions and not await self._card_is_open(who, record):
            return
        handlers = {
            cards.CONFIRM: self._on_confirm,
            cards.EDIT: self._on_edit,
            cards.RETRY: self._on_retry,
            cards.RETRY_AS: self._on_retry_as,
            cards.STYLE: self._on_style,
            cards.STYLE_SET: self._on_style_set,
            cards.CANCEL: self._on_cancel,
            cards.RESTYLE: self._on_restyle,
            cards.RESTYLE_AS: self._on_restyle_as,
            cards.REROLL: self._on_reroll,
            cards.BASE: self._on_base,
            cards.RESEND: self._on_resend,
        }
        handler = handlers.get(press.action)
        if handler is None:
            log.warning("unknown button action %r", press.action)
            return
        await handler(press, who, record)

    async def _card_is_open(self, who: _Who, record: RequestRecord) -> bool:
        """True while the card can be acted on; answers "expired"/"already done" otherwise."""
        if record.state is S.AWAITING_CONFIRMATION and record.card_expires_at and record.card_expires_at < self._clock():
            await self.repository.transition(record.id, S.EXPIRED, from_states=[S.AWAITING_CONFIRMATION])
            self._audio.pop(record.id, None)
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return False
        if record.state is S.EXPIRED:
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return False
        if record.state is not S.AWAITING_CONFIRMATION:
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return False
        return True

    async def _on_confirm(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        await self._confirm(who, record.id, press.message_ref or None)

    async def _confirm(self, who: _Who, request_id: str, ref: str | None) -> None:
        """Queue an open card's request (the guarded move makes a second press a no-op)."""
        record = await self.repository.get_request(request_id)
        assert record is not None
        await self._check_limits(who, new_request=False)  # the request was counted when it was made
        # The seed is fixed now, so a job resumed after a restart draws the same picture.
        seed = record.seed if record.seed is not None else new_seed()
        if not await self.repository.transition(request_id, S.QUEUED, from_states=[S.AWAITING_CONFIRMATION], seed=seed):
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        record = replace(record, seed=seed)
        self._audio.pop(request_id, None)
        transcript = record.transcript
        if transcript is not None:
            await self.repository.set_final_text(request_id, transcript.edited_text or transcript.heard_text)
        spec = await self.jobs.spec_for(record)
        assert spec is not None
        waiting = cards.progress(request_id, who.lang, "queued", position="…")
        try:
            if ref is None:
                raise LookupError("no card to turn into the status message")
            await self.messenger.edit(who.origin, ref, waiting)  # the card's buttons go away at once
        except Exception:
            log.info("request %s: status goes to a new message", request_id, exc_info=ref is not None)
            ref = await self.messenger.send(who.origin, waiting)
        await self.jobs.submit(who.origin, who.lang, request_id, spec, ref)

    async def _on_edit(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        self._pending_edits[(who.origin.platform, who.origin.chat_id, who.origin.user_id)] = record.id
        transcript = record.transcript
        current = (transcript.edited_text or transcript.heard_text) if transcript else ""
        await self.messenger.send(
            who.origin, Reply(
                t("edit.prompt", who.lang), kind="edit_prompt", prefill=current, request_id=record.id, title=t("edit.title", who.lang)
            )
        )

    async def _on_retry(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        if record.id not in self._audio:
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return
        await self.messenger.send(who.origin, cards.language_picker(record.id, who.lang))

    async def _on_retry_as(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        audio = self._audio.get(record.id)
        if audio is None or press.value not in cards.RETRY_LANGUAGES:
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return
        if not await self.repository.transition(record.id, S.TRANSCRIBING, from_states=[S.AWAITING_CONFIRMATION]):
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        ref = await self.messenger.send(who.origin, Reply(t("transcribing", who.lang), kind="progress"))
        await self._transcribe(replace(who, style=record.style or who.style), record.id, ref, audio, language=press.value)

    async def _on_style(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        picker = cards.style_picker(record.id, cards.STYLE_SET, self.config.styles, who.lang, record.style)
        await self.messenger.send(who.origin, picker)

    async def _on_style_set(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        if press.value not in self.config.styles:
            return
        if await self.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], style=press.value):
            await self.messenger.notify(who.origin, t("style.set", who.lang, style=press.value))

    async def _on_cancel(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        await self._cancel(who, record)

    async def _cancel(self, who: _Who, record: RequestRecord) -> None:
        if record.state is S.AWAITING_CONFIRMATION:
            if await self.repository.transition(record.id, S.CANCELLED, from_states=[S.AWAITING_CONFIRMATION]):
                self._audio.pop(record.id, None)
                await self.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
                return
        elif record.state in (S.QUEUED, S.RUNNING):
            if await self.engine.cancel(record.id):
                return  # the job's watcher records the cancel and tells the user
            if await self.repository.transition(record.id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING]):
                await self.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
                return
        await self.messenger.notify(who.origin, t("already_handled", who.lang))

    async def _on_restyle(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        picker = cards.style_picker(record.id, cards.RESTYLE_AS, self.config.styles, who.lang, record.style)
        await self.messenger.send(who.origin, picker)

    async def _on_restyle_as(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        base = record.image(ImageRole.BASE)
        if press.value not in self.config.styles or base is None:
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        await self._derive(who, record, RequestKind.RESTYLE, style=press.value)

    async def _on_reroll(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        if not record.prompt_positive:
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        await self._derive(who, record, RequestKind.REROLL, style=record.style or who.style)

    async def _derive(self, who: _Who, parent: RequestRecord, kind: RequestKind, *, style: str) -> None:
        """A restyle (same base image, new style) or reroll (same prompt, new seed) of ``parent``."""
        await self._check_limits(who)
        request_id = await self.repository.create_request(
            user_id=who.user_id,
            chat_id=who.chat_id,
            kind=kind,
            state=S.QUEUED,
            parent_id=parent.id,
            style=style,
            seed=parent.seed if kind is RequestKind.RESTYLE else new_seed(),
            prompt_positive=parent.prompt_positive,
            prompt_negative=parent.prompt_negative,
            source_language=parent.source_language,
        )
        record = await self.repository.get_request(request_id)
        assert record is not None
        spec = await self.jobs.spec_for(record)
        if spec is None:
            await self.repository.transition(request_id, S.FAILED, error_key="history.gone")
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        ref = await self.messenger.send(who.origin, cards.progress(request_id, who.lang, "queued", position="…"))
        await self.jobs.submit(who.origin, who.lang, request_id, spec, ref)

    async def _on_base(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        base = record.image(ImageRole.BASE)
        if base is None or not base.path.exists():
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        png = await asyncio.to_thread(base.path.read_bytes)
        await self.messenger.send(who.origin, Reply(t("base_image", who.lang), kind="image", image_png=png))

    async def _on_resend(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        anime = record.image(ImageRole.ANIME)
        if anime is None or not anime.path.exists():
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        await self.messenger.send(who.origin, delivered_reply(record, who.lang, await asyncio.to_thread(anime.path.read_bytes)))

    async def _on_settings_button(self, press: ButtonPress, who: _Who) -> None:
        if press.action == cards.SET_LANGUAGE and press.value in ("zh", "en"):
            await self._update_preferences(who, language=press.value)
        elif press.action == cards.TOGGLE_CONFIRM:
            await self._update_preferences(who, confirm_before_generate=not who.confirm)
        elif press.action == cards.DEFAULT_STYLE and press.value in self.config.styles:
            await self._update_preferences(who, default_style=press.value)
        elif press.action == cards.DEFAULT_STYLE:
            await self.messenger.send(who.origin, cards.style_picker(cards.NO_REQUEST, cards.DEFAULT_STYLE, self.config.styles, who.lang, who.style))
            return
        else:
            return
        who = await self._who(who.origin)
        await self.messenger.notify(who.origin, t("settings.saved", who.lang))
        await self.messenger.send(who.origin, self._settings_card(who))

    def _remember_audio(self, request_id: str, audio: bytes) -> None:
        self._audio[request_id] = audio
        while sum(map(len, self._audio.values())) > self.config.audio_cache_bytes:
            self._audio.popitem(last=False)


def new_seed() -> int:
    """A random Stable Diffusion seed (32 bits: fits every database and is easy to read out)."""
    return secrets.randbelow(2**32)


def _label(record: RequestRecord) -> str:
    transcript = record.transcript
    text = (transcript.final_text or transcript.edited_text or transcript.heard_text) if transcript else record.kind.value
    return f"{text[:40]} · {record.style or ''}"
