"""The conversation, written once for every platform.

```mermaid
stateDiagram-v2
    [*] --> transcribing: voice note
    [*] --> awaiting_confirmation: /anime text
    [*] --> queued: photo, Restyle, Reroll
    transcribing --> awaiting_confirmation: card shown, the speech model is missing (Retry)
    transcribing --> failed: bad audio, nothing heard
    awaiting_confirmation --> queued: Draw it (at once when confirmation is off)
    awaiting_confirmation --> transcribing: Heard wrong language
    awaiting_confirmation --> cancelled: Cancel, /cancel
    awaiting_confirmation --> expired: pressed after CARD_TTL
    awaiting_confirmation --> failed: the card cannot be stored or shown, /anime text the content policy refuses
    queued --> running: a worker picks it up
    queued --> cancelled: Cancel, /cancel
    queued --> failed: inputs gone, engine refused, a reroll the policy refuses, a flagged photo
    queued --> awaiting_confirmation: a model the drawing needs is missing (the card again, with Retry)
    running --> delivered: the platform accepted the picture
    running --> failed: the job failed, the image check flagged the picture
    running --> cancelled: Cancel, /cancel
    running --> queued: resumed after a restart, the picture could not be stored
    running --> awaiting_confirmation: a model the drawing needs is missing (the card again, with Retry)
    delivered --> [*]
    failed --> [*]
    cancelled --> [*]
    expired --> [*]
```

Edit, Style and Keep what I said (the words the engine corrected put back)
keep a card in ``awaiting_confirmation``; a picture whose upload failed stays
``running`` (kept, resent on request or after a restart); a finished picture
that could not be stored (a full disk) goes back to ``queued`` (run again on
"Try again" or after a restart). A model that is not installed (Whisper, Stable
Diffusion, a style's weights: the operator's to fix) keeps the request open:
its card comes back, saying which part is missing, with Retry.
The content policy (:mod:`engine.policy`) is asked before anything is queued:
typed ``/anime`` text it refuses fails at once with ``error_key``
``policy.refused``; a voice note's card (or an edited card) it refuses stays
open without Draw, saying why (a misheard word can be fixed with Edit) and
carrying ``policy.refused`` until an edit passes. Pictures are checked where
they are made (:mod:`engine.jobs.runner`).
The moves are :data:`db.states.TRANSITIONS` (a test checks this diagram
against it); every move is a guarded transition in the database, so a
duplicate button press or a redelivered event never applies twice. Which
button works in which state is the table :data:`BUTTONS`. Queued requests are
handed to :class:`handlers.jobs.JobTracker`, which follows each job to its end.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from db.columns import utcnow
from db.enums import ChatKind, ImageRole, RequestKind
from db.limits import Cap, CapReached, Caps
from db.records import RequestRecord
from db.repository import Repository
from db.states import TERMINAL_STATES, RequestState
from engine.api import (
    JobQueue,
    JobSpec,
    Prompt,
    Transcriber,
    Transcript,
)
from engine.errors import (
    ModelUnavailableError,
    QueueFullError,
    TextTooLongError,
    UnknownStyleError,
    UserError,
    UserQueueFullError,
)
from engine.image.imageio import open_image, png_bytes
from engine.language.prompt import build_prompt
from engine.missing_models import is_unavailable, tell_operator, unavailable_key
from engine.policy.levels import Level, Verdict, off_allowed
from engine.policy.text import ChatPolicy
from handlers import cards
from handlers.chat_settings import BY_ACTION as CHAT_SETTINGS_BY_ACTION
from handlers.chat_settings import LANGUAGE_CHOICES, ChatSetting, choice_for
from handlers.events import ButtonPress, Command, Event, Origin, PhotoMessage, Rejected, TextMessage, VoiceMessage
from handlers.i18n import error_text, pick_language, reader_script, t
from handlers.jobs import POLICY_SPOILER, JobTracker, delivered_reply
from handlers.keyed_lock import KeyedLock
from handlers.replies import Messenger, OwnedMessages, Reply

log = logging.getLogger(__name__)

S = RequestState


@dataclass(frozen=True)
class ConversationConfig:
    """Limits and timings of the conversation (from settings)."""

    styles: tuple[str, ...]
    default_style: str
    #: Style id -> {UI language: display name}; ids without names are shown as they are.
    style_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    card_ttl: timedelta = timedelta(minutes=10)
    progress_interval: float = 2.0
    #: Show preview images of the picture being drawn in its status message (``PREVIEWS``).
    previews: bool = True
    max_text_chars: int = 500
    requests_per_minute: int = 6
    max_active_per_user: int = 3
    max_active_total: int = 100
    history_limit: int = 5
    #: Voice notes kept in memory for "Heard wrong language" while their card is open (oldest dropped first).
    audio_cache_bytes: int = 256 * 1024 * 1024
    #: Largest photo accepted, in pixels (read from its header before decoding).
    photo_max_pixels: int = 40_000_000
    #: Photos are decoded scaled down to this longest side (what the anime style is applied at).
    photo_max_side: int = 1024
    #: Waits (seconds) before each new try of a picture upload that failed.
    delivery_retry_delays: tuple[float, ...] = (2.0, 10.0, 30.0)
    #: The content policy (``CONTENT_POLICY``, ``POLICY_*``): levels, where ``off`` may apply, the term list.
    policy: ChatPolicy = ChatPolicy()

    @property
    def caps(self) -> Caps:
        """The request caps the database enforces."""
        return Caps(self.requests_per_minute, self.max_active_per_user, self.max_active_total)


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
    #: The content policy level of this chat.
    policy: Level = Level.STRICT


class Conversation:
    """Handles every neutral event; replies go out through the :class:`Messenger`."""

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
    ) -> None:
        self.repository = repository
        self.transcriber = transcriber
        #: Every message goes out through this, which remembers whose each one is (see :meth:`_press_target`).
        self.messenger = OwnedMessages(messenger)
        self.config = config
        self._clock = clock
        self._pending_edits: dict[tuple[str, str, str], str] = {}
        self._audio: OrderedDict[str, bytes] = OrderedDict()
        #: One handler at a time per request (an Edit and a Draw pressed together never interleave).
        self._request_locks = KeyedLock()
        #: The message showing each open card (request id -> message ref), so an older one can be retired.
        self._cards: OrderedDict[str, str] = OrderedDict()
        #: The settings cards and pickers on screen ((platform, message ref) -> whose, which, what it shows), kept true.
        self._settings_shown: OrderedDict[tuple[str, str], _SettingsView] = OrderedDict()
        self.jobs = JobTracker(
            repository,
            jobs,
            self.messenger,
            default_style=config.default_style,
            style_names=config.style_names,
            progress_interval=config.progress_interval,
            retry_delays=config.delivery_retry_delays,
            monotonic=monotonic,
            previews=config.previews,
            policy=config.policy,
            reopen=self._reopen_for_model,
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

    async def finish_handovers(self) -> None:
        """Shutdown, before the adapters disconnect: let pictures being uploaded be taken and marked delivered."""
        await self.jobs.finish_handovers()

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
        anime = record.image(ImageRole.ANIME)
        if record.state is S.RUNNING and anime is not None and anime.path.exists():
            log.info("resending the picture of request %s after restart", record.id)
            await self.jobs.send_picture(origin, who.lang, record, await asyncio.to_thread(anime.path.read_bytes))
            return
        if record.state is S.RUNNING:
            await self.repository.transition(record.id, S.QUEUED, from_states=[S.RUNNING])
        spec = None if record.state is S.TRANSCRIBING else await self.jobs.spec_for(record, who.policy)
        if spec is None:
            if await self.repository.transition(record.id, S.FAILED, error_key="job.lost"):
                await self.messenger.send(origin, Reply(t("job.lost", who.lang), kind="error"))
            return
        log.info("resuming request %s after restart", record.id)
        status = await self._put(who, None, cards.progress(record.id, who.lang, "queued"))
        await self.jobs.submit(who.origin, who.lang, record.id, spec, status)

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
        kind = ChatKind.GROUP if origin.is_group else ChatKind.PRIVATE
        known = await self.repository.identify(origin.platform, origin.user_id, origin.user_name or None, origin.chat_id, kind)
        prefs = known.preferences
        style = prefs.default_style if prefs.default_style in self.config.styles else self.config.default_style
        return _Who(
            origin,
            known.user_id,
            known.chat_id,
            pick_language(prefs.language, origin.locale),
            style,
            prefs.confirm_before_generate,
            prefs.language,
            policy=self.config.policy.level_for(
                origin.platform, origin.chat_id, age_restricted=origin.age_restricted, override=prefs.content_policy
            ),
        )

    async def _create(self, who: _Who, **fields: object) -> str:
        """A new request of ``who``, created only while their caps leave room (checked atomically)."""
        try:
            return await self.repository.create_request(
                user_id=who.user_id, chat_id=who.chat_id, caps=self.config.caps, **fields  # type: ignore[arg-type]  # the callers pass create_request keywords
            )
        except CapReached as hit:
            raise cap_error(hit) from None

    async def _fail(self, who: _Who, request_id: str, ref: str | None, error: Exception, *, from_states: list[S]) -> None:
        """A request that cannot go on: mark it failed and tell the user why (editing ``ref`` when there is one)."""
        if isinstance(error, UserError):
            key, params = error.key, error.params
            log.info("request %s: %s", request_id, key)
        else:
            key, params = "error.generic", {}
            log.error("request %s failed", request_id, exc_info=error)
        self._audio.pop(request_id, None)
        await self.repository.transition(request_id, S.FAILED, from_states=from_states, error_key=key)
        reply = Reply(error_text(key, who.lang, params), kind="error")
        try:
            if ref is None:
                raise LookupError("no status message")
            await self.messenger.edit(who.origin, ref, reply)
        except Exception:
            await self.messenger.send(who.origin, reply)

    # --- voice, text, photo -----------------------------------------------------

    async def _on_voice(self, event: VoiceMessage, who: _Who) -> None:
        request_id = await self._create(who, kind=RequestKind.VOICE, state=S.TRANSCRIBING, style=who.style)
        ref: str | None = None
        try:
            ref = await self.messenger.send(who.origin, Reply(t("transcribing", who.lang), kind="progress"))
            audio = await event.fetch()  # downloaded only now: the request was admitted
        except Exception as error:
            await self._fail(who, request_id, ref, error, from_states=[S.TRANSCRIBING])
            return
        self._remember_audio(request_id, audio)
        await self._transcribe(who, request_id, ref, audio, language=None)

    async def _transcribe(self, who: _Who, request_id: str, ref: str, audio: bytes, language: str | None) -> None:
        """Transcribe ``audio`` (in ``language`` when the user said which) in the script ``who`` reads, and offer the card."""
        script = reader_script(who.language_setting, who.origin.locale, spoken=language)
        try:
            transcript = await self.transcriber.transcribe(audio, language=language, script=script)
            prompt = build_prompt(transcript.text, translation=transcript.translation, language=transcript.language)
            await self.repository.save_transcript(
                request_id,
                heard_text=transcript.text,
                language=transcript.language,
                language_probability=transcript.language_probability,
                translation=transcript.translation,
                words=transcript.words,
            )
        except ModelUnavailableError as error:
            await self._wait_for_model(who, request_id, ref, error)
            return
        except Exception as error:
            await self._fail(who, request_id, ref, error, from_states=[S.TRANSCRIBING])
            return
        await self._offer(who, request_id, ref, prompt, transcript=transcript)

    async def _wait_for_model(self, who: _Who, request_id: str, ref: str, error: ModelUnavailableError) -> None:
        """The speech model is missing: the voice note waits, its card saying so with Retry, instead of failing."""
        tell_operator(error)
        key = unavailable_key(error)
        if await self.repository.transition(
            request_id, S.AWAITING_CONFIRMATION, from_states=[S.TRANSCRIBING], error_key=key, card_expires_at=self._clock() + self.config.card_ttl
        ):
            await self._show_card(who, request_id, ref, cards.waiting_for_model(request_id, who.lang, key, fix=error.fix))

    async def _reopen_for_model(self, origin: Origin, request_id: str, ref: str | None, key: str, fix: str) -> bool:
        """A job failed for a missing model: its card comes back (in the status message) saying so, with Retry.

        Only a request with a card (a voice note or typed text) can wait; a
        photo, restyle or reroll fails as usual, saying which model is missing.
        """
        record = await self.repository.get_request(request_id)
        if record is None or record.transcript is None:
            return False
        who = await self._who(origin)
        if await self.repository.transition(
            request_id,
            S.AWAITING_CONFIRMATION,
            from_states=[S.QUEUED, S.RUNNING],
            error_key=key,
            card_expires_at=self._clock() + self.config.card_ttl,
        ):
            await self._show_card(who, request_id, ref, await self._card_for(who, request_id, fix=fix))
        return True

    async def _on_text(self, event: TextMessage, who: _Who) -> None:
        key = (who.origin.platform, who.origin.chat_id, who.origin.user_id)
        request_id = event.request_id or self._pending_edits.get(key)
        if request_id is not None:
            async with self._request_locks(request_id):
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
        verdict = self.config.policy.checker.check_prompt(prompt, who.policy)
        request_id = await self._create(
            who,
            kind=RequestKind.TEXT,
            state=S.AWAITING_CONFIRMATION,
            style=who.style,
            prompt_positive=prompt.positive,
            prompt_negative=prompt.negative,
            source_language=prompt.language,
            card_expires_at=self._clock() + self.config.card_ttl,
        )
        try:
            await self.repository.save_transcript(request_id, heard_text=text, language=prompt.language, language_probability=1.0)
        except Exception as error:
            await self._fail(who, request_id, None, error, from_states=[S.AWAITING_CONFIRMATION])
            return
        if not verdict.allowed:  # typed words are what the user meant: refused at once, and kept as refused
            await self._refuse(who, request_id, None, verdict, from_states=[S.AWAITING_CONFIRMATION])
            return
        await self._present(who, request_id, None, await self._card_for(who, request_id))

    async def _refuse(self, who: _Who, request_id: str, ref: str | None, verdict: Verdict, *, from_states: list[S]) -> None:
        """The content policy refuses ``request_id`` outright: it fails as ``policy.refused`` and the user is told why."""
        log.info("request %s refused by the %s content policy: %s", request_id, verdict.level, "; ".join(verdict.reasons))
        await self.repository.transition(request_id, S.FAILED, from_states=from_states, error_key=POLICY_REFUSED)
        await self._put(who, ref, cards.refused(request_id, who.lang, verdict))

    def _check(self, who: _Who, prompt: Prompt) -> Verdict:
        """The content policy's verdict on ``prompt`` in ``who``'s chat."""
        return self.config.policy.checker.check_prompt(prompt, who.policy)

    def _check_stored(self, who: _Who, record: RequestRecord) -> Verdict:
        """The verdict on a stored request: its words as the card reads them, else (a reroll of a reroll) its prompt."""
        transcript = record.transcript
        if transcript is None:
            checker = self.config.policy.checker
            return checker.check_text("", who.policy, prompt=record.prompt_positive or "", negated=record.prompt_negative or "")
        if record.kind is RequestKind.VOICE and not transcript.edited_text:
            prompt = build_prompt(transcript.heard_text, translation=transcript.translation, language=transcript.language)
        else:
            prompt = build_prompt(transcript.edited_text or transcript.heard_text)
        return self._check(who, prompt)

    async def _offer(self, who: _Who, request_id: str, ref: str, prompt: Prompt, *, transcript: Transcript) -> None:
        """A voice note was understood: its card is open from now on."""
        moved = await self.repository.transition(
            request_id,
            S.AWAITING_CONFIRMATION,
            from_states=[S.TRANSCRIBING],
            prompt_positive=prompt.positive,
            prompt_negative=prompt.negative,
            source_language=prompt.language,
            card_expires_at=self._clock() + self.config.card_ttl,
            error_key=None if self._check(who, prompt).allowed else POLICY_REFUSED,  # the card says why; Edit can fix it
        )
        if moved:
            doubtful = cards.is_doubtful(transcript.language, transcript.language_probability)
            await self._present(who, request_id, ref, await self._card_for(who, request_id), doubtful=doubtful)

    async def _present(self, who: _Who, request_id: str, ref: str | None, card: Reply, *, doubtful: bool = False) -> None:
        """Show the confirmation card (in message ``ref`` when given), or go straight on when confirmation is off.

        A ``doubtful`` hearing is shown even with confirmation off: drawing words nobody said helps no one.
        """
        if not who.confirm and not doubtful:
            try:
                await self._confirm(who, request_id, ref)
                return
            except UserError:  # over a cap: show the card so it can be confirmed later
                await self._show_card(who, request_id, ref, card)
                raise
        await self._show_card(who, request_id, ref, card)

    async def _show_card(self, who: _Who, request_id: str, ref: str | None, card: Reply) -> None:
        """Show ``card`` (in message ``ref`` when given); an older message of the same card loses its buttons."""
        shown = await self._put(who, ref, card)
        if shown is None:
            await self.repository.transition(request_id, S.FAILED, from_states=[S.AWAITING_CONFIRMATION], error_key="error.generic")
            return
        if self._cards.get(request_id, shown) != shown:
            await self._retire_card(who, request_id, "card.superseded")
        self._cards[request_id] = shown
        while len(self._cards) > OPEN_CARDS_REMEMBERED:
            self._cards.popitem(last=False)

    async def _retire_card(self, who: _Who, request_id: str, key: str) -> None:
        """The card of ``request_id`` can no longer be acted on: replace it with a line saying why (best effort)."""
        ref = self._cards.pop(request_id, None)
        if ref is None:
            return
        try:
            await self.messenger.edit(who.origin, ref, cards.retired_card(request_id, who.lang, key))
        except Exception:
            log.info("request %s: could not retire its card", request_id, exc_info=True)

    async def _card_for(self, who: _Who, request_id: str, *, details: bool = False, fix: str = "", asking: bool = False) -> Reply:
        """The confirmation card of a request, rendered from what the database holds (so every update shows the same).

        A request waiting for a missing model says so, with Retry (``fix``: the operator's, for the studio).
        """
        record = await self.repository.get_request(request_id)
        assert record is not None
        missing = record.error_key if is_unavailable(record.error_key) else None
        if record.transcript is None:
            assert missing is not None, "only a voice note waiting for the speech model has a card without words"
            return cards.waiting_for_model(request_id, who.lang, missing, fix=fix)
        transcript = record.transcript
        heard = record.kind is RequestKind.VOICE and not transcript.edited_text
        text = transcript.heard_text if heard else transcript.edited_text or transcript.heard_text
        if heard:
            prompt = build_prompt(text, translation=transcript.translation, language=transcript.language)
            said = cards.mark_unsure(transcript.words) if transcript.words else text
        else:
            said = text
            prompt = build_prompt(text)
        verdict = self._check(who, prompt)
        return cards.confirmation_card(
            request_id,
            who.lang,
            said=said,
            parsed=prompt.parsed,
            prompt=record.prompt_positive or prompt.positive,
            style=cards.style_name(record.style or who.style, who.lang, self.config.style_names),
            heard_language=transcript.language if heard else None,
            confidence=transcript.language_probability,
            has_unsure=heard and any(w.unsure for w in transcript.words),
            corrections=transcript.corrections if heard else (),
            untranslated=[cards.as_written(word, text) for word in prompt.untranslated],
            glossary=[(english, cards.as_written(chinese, text)) for english, chinese in prompt.glossary],
            details=details,
            refusal=() if verdict.allowed else cards.policy_refusal(who.lang, verdict, heard=heard),
            missing=error_text(missing, who.lang) if missing else "",
            fix=fix,
            asking=asking,
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
            error_key=None if self._check(who, prompt).allowed else POLICY_REFUSED,
        ):
            return
        await self.repository.record_edit(request_id, text)
        await self._show_card(who, request_id, None, await self._card_for(who, request_id))

    async def _on_photo(self, event: PhotoMessage, who: _Who) -> None:
        # Admitted (rate limit, caps) before anything is downloaded or decoded.
        request_id = await self._create(who, kind=RequestKind.PHOTO, state=S.QUEUED, style=who.style)
        ref: str | None = None
        try:
            ref = await self.messenger.send(who.origin, cards.progress(request_id, who.lang, "queued"))
            data = await event.fetch()
            limits = {"max_pixels": self.config.photo_max_pixels, "max_side": self.config.photo_max_side}
            png = await asyncio.to_thread(lambda: png_bytes(open_image(data, **limits)))
            await self.repository.add_image(request_id, ImageRole.BASE, png)
        except Exception as error:
            await self._fail(who, request_id, ref, error, from_states=[S.QUEUED])
            return
        spec = JobSpec(request_id, str(who.user_id), "photo", who.style, source_png=png, policy=who.policy.value)
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
                await send(who.origin, cards.help_text(who.lang, group=who.origin.is_group))
            case "anime":
                await self._on_anime(who, event.args, event.style)
            case "style":
                await self._send_settings(who, cards.DEFAULT_STYLE)
            case "history":
                await self._show_history(who)
            case "settings":
                await self._send_settings(who)
            case "cancel":
                await self._cancel_latest(who)
            case _:
                await send(who.origin, Reply(t("unknown_command", who.lang)))

    async def _settings_card(self, who: _Who) -> Reply:
        """/settings for ``who``: their own settings and, in a group, the group's (as stored: unset ones say so)."""
        user = await self.repository.get_user_settings(who.user_id)
        chat = await self.repository.get_chat_settings(who.chat_id) if who.origin.is_group else None
        return cards.settings_card(
            who.lang,
            user=user,
            chat=chat,
            style=cards.style_name(who.style, who.lang, self.config.style_names),
            app_language=pick_language(None, who.origin.locale),
            name=who.origin.user_name or "👤",
            policy=who.policy,
        )

    async def _settings_view(self, who: _Who, picker: str = "") -> Reply:
        """What ``who``'s settings card (``picker`` empty) or settings picker (the action its choices carry) shows now."""
        if not picker:
            return await self._settings_card(who)
        if picker == cards.DEFAULT_STYLE:
            return self._style_picker(who, cards.NO_REQUEST, cards.DEFAULT_STYLE, who.style)
        user = await self.repository.get_user_settings(who.user_id)
        if picker == cards.SET_LANGUAGE:
            return cards.language_choice_picker(who.lang, user.language)
        entry = CHAT_SETTINGS_BY_ACTION[picker]
        chat = await self.repository.get_chat_settings(who.chat_id) if who.origin.is_group else None
        return cards.choice_picker(entry.action, who.lang, entry.question, entry.choices, entry.current(chat, user))

    async def _send_settings(self, who: _Who, picker: str = "") -> None:
        """Post ``who``'s settings card or a settings picker (see :meth:`_settings_view`), remembered to be kept true."""
        reply = await self._settings_view(who, picker)
        self._remember_settings(who.origin, await self.messenger.send(who.origin, reply), picker, reply)

    async def _show_history(self, who: _Who) -> None:
        records = await self.repository.history(who.user_id, self.config.history_limit)
        entries = []
        for record in records:
            described = record
            while described.transcript is None and described.parent_id:  # a restyle/reroll shows its origin's words
                parent = await self.repository.get_request(described.parent_id)
                if parent is None:
                    break
                described = parent
            transcript = described.transcript
            text = (transcript.final_text or transcript.edited_text or transcript.heard_text) if transcript else ""
            style = cards.style_name(record.style or "", who.lang, self.config.style_names)
            entries.append(cards.HistoryEntry(record.id, text, style, record.created_at))
        await self.messenger.send(who.origin, cards.history_list(who.lang, entries))

    def _style_picker(self, who: _Who, request_id: str, action: str, current: str | None) -> Reply:
        return cards.style_picker(request_id, action, self.config.styles, who.lang, self.config.style_names, current)

    async def _cancel_latest(self, who: _Who) -> None:
        open_states = [S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING]
        mine = await self.repository.requests_in_states(open_states, user_id=who.user_id)
        if not mine:
            await self.messenger.send(who.origin, Reply(t("cancel.nothing", who.lang)))
            return
        await self._cancel(who, mine[-1])

    # --- buttons ----------------------------------------------------------------

    async def _on_button(self, press: ButtonPress, who: _Who) -> None:
        press = replace(press, message_ref=self._press_target(press, who))
        if press.request_id == cards.NO_REQUEST:
            await self._on_settings_button(press, who)
            return
        rule = BUTTONS.get(press.action)
        if rule is None:
            log.warning("unknown button action %r", press.action)
            return
        async with self._request_locks(press.request_id):
            record = await self.repository.get_request(press.request_id)
            if record is None:
                await self.messenger.notify(who.origin, t("card.expired", who.lang))
                return
            if record.user_id != who.user_id:
                await self.messenger.notify(who.origin, t("not_yours", who.lang))
                return
            if await self._allows(rule, who, record):
                await rule.handler(self, press, who, record)

    def _press_target(self, press: ButtonPress, who: _Who) -> str:
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

    async def _allows(self, rule: ButtonRule, who: _Who, record: RequestRecord) -> bool:
        """True if the button's action applies in the request's state; tells the user why not otherwise."""
        if rule.states == CARD_STATES:
            return await self._card_is_open(who, record)
        if record.state in rule.states:
            return True
        await self.messenger.notify(who.origin, t("already_handled" if record.state in TERMINAL_STATES else "not_ready", who.lang))
        return False

    async def _card_is_open(self, who: _Who, record: RequestRecord) -> bool:
        """True while the card can be acted on; answers "expired"/"already done" otherwise."""
        if record.state is S.AWAITING_CONFIRMATION and record.card_expires_at and record.card_expires_at < self._clock():
            await self.repository.transition(record.id, S.EXPIRED, from_states=[S.AWAITING_CONFIRMATION])
            self._audio.pop(record.id, None)
            await self._retire_card(who, record.id, "card.expired")
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
        if press.value == cards.DRAW_ASK:  # a doubtful hearing: the card asks once more before drawing
            await self._show_card(who, record.id, press.message_ref or self._cards.get(record.id), await self._card_for(who, record.id, asking=True))
            return
        await self._confirm(who, record.id, press.message_ref or None, record)

    async def _confirm(self, who: _Who, request_id: str, ref: str | None, record: RequestRecord | None = None) -> None:
        """Queue an open card's request (the guarded move makes a second press a no-op).

        ``record``: the request as just read under its lock (a button press), else it is read here.
        Once queued, the request either really runs or fails with a message:
        the job is submitted even when no status message can be posted.
        """
        if record is None:
            record = await self.repository.get_request(request_id)
            assert record is not None
        verdict = self._check_stored(who, record)
        if not verdict.allowed:  # the policy (or the chat's level) says no now: the card says why, Edit can fix it
            await self.repository.update_in_state(request_id, [S.AWAITING_CONFIRMATION], error_key=POLICY_REFUSED)
            await self._show_card(who, request_id, ref or self._cards.get(request_id), await self._card_for(who, request_id))
            return
        # The seed is fixed now, so a job resumed after a restart draws the same picture.
        seed = record.seed if record.seed is not None else new_seed()
        try:
            # One transaction: the move (caps checked), the seed and the final text; what is stored now gets drawn.
            record = await self.repository.queue(request_id, seed=seed, caps=self.config.caps)
        except CapReached as hit:
            raise cap_error(hit) from None
        if record is None:
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        self._audio.pop(request_id, None)
        try:
            spec = await self.jobs.spec_for(record, who.policy)
            if spec is None:
                raise PictureGoneError()
        except Exception as error:
            await self._fail(who, request_id, ref, error, from_states=[S.QUEUED])
            return
        card = self._cards.pop(request_id, None)
        status = await self._put(who, ref or card, cards.progress(request_id, who.lang, "queued"))
        await self.jobs.submit(who.origin, who.lang, request_id, spec, status)

    async def _put(self, who: _Who, ref: str | None, reply: Reply) -> str | None:
        """Replace message ``ref`` with ``reply``, else post it; None when the chat cannot be reached (logged)."""
        if ref is not None:
            try:
                await self.messenger.edit(who.origin, ref, reply)
                return ref
            except Exception:
                log.info("request %s: the reply goes to a new message", reply.request_id, exc_info=True)
        try:
            return await self.messenger.send(who.origin, reply)
        except Exception:
            log.warning("request %s: could not reach the chat", reply.request_id, exc_info=True)
            return None

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
        """Listen again in the language picked: the card is replaced at once, the picker becomes the status (no buttons left)."""
        audio = self._audio.get(record.id)
        if audio is None or press.value not in cards.RETRY_LANGUAGES:
            await self.messenger.notify(who.origin, t("card.expired", who.lang))
            return
        if not await self.repository.transition(record.id, S.TRANSCRIBING, from_states=[S.AWAITING_CONFIRMATION]):
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        await self._retire_card(who, record.id, "card.superseded")
        ref = await self._put(who, press.message_ref or None, Reply(t("transcribing", who.lang), kind="progress"))
        await self._transcribe(replace(who, style=record.style or who.style), record.id, ref or "", audio, language=press.value)

    async def _on_style(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        await self.messenger.send(who.origin, self._style_picker(who, record.id, cards.STYLE_SET, record.style))

    async def _on_style_set(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        """The card itself shows the new style at once; the picker says what was chosen."""
        if press.value not in self.config.styles:
            return
        if not await self.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], style=press.value):
            return
        name = cards.style_name(press.value, who.lang, self.config.style_names)
        if press.message_ref and press.message_ref != self._cards.get(record.id):
            await self._put(who, press.message_ref, Reply(t("style.set", who.lang, style=name), request_id=record.id))
        await self._show_card(who, record.id, self._cards.get(record.id), await self._card_for(who, record.id))
        await self.messenger.notify(who.origin, t("style.set", who.lang, style=name))

    async def _on_keep_said(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        """Put back the words the engine corrected: the card shows (and will draw) what the recogniser heard."""
        transcript = record.transcript
        if transcript is None or transcript.edited_text or not transcript.corrections:
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        said = transcript.as_said()
        prompt = build_prompt(said.heard_text, translation=said.translation, language=said.language)
        if not await self.repository.update_in_state(
            record.id,
            [S.AWAITING_CONFIRMATION],
            prompt_positive=prompt.positive,
            prompt_negative=prompt.negative,
            source_language=prompt.language,
            error_key=None if self._check(who, prompt).allowed else POLICY_REFUSED,
        ):
            return
        await self.repository.save_transcript(
            record.id,
            heard_text=said.heard_text,
            language=said.language,
            language_probability=said.language_probability,
            translation=said.translation,
            words=said.words,
        )
        await self._show_card(who, record.id, press.message_ref or self._cards.get(record.id), await self._card_for(who, record.id))

    async def _on_details(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        card = await self._card_for(who, record.id, details=press.value == "1")
        await self._show_card(who, record.id, press.message_ref or self._cards.get(record.id), card)

    async def _on_cancel(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        await self._cancel(who, record)

    async def _cancel(self, who: _Who, record: RequestRecord) -> None:
        if record.state is S.AWAITING_CONFIRMATION:
            if await self.repository.transition(record.id, S.CANCELLED, from_states=[S.AWAITING_CONFIRMATION]):
                self._audio.pop(record.id, None)
                if record.id in self._cards:
                    await self._retire_card(who, record.id, "cancelled")
                else:
                    await self.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
                return
        elif record.state in (S.QUEUED, S.RUNNING):
            if await self.jobs.queue.cancel(record.id):
                return  # the job's watcher records the cancel and tells the user
            if await self.repository.transition(record.id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING]):
                await self.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
                return
        await self.messenger.notify(who.origin, t("already_handled", who.lang))

    async def _on_restyle(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        await self.messenger.send(who.origin, self._style_picker(who, record.id, cards.RESTYLE_AS, record.style))

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
        request_id = await self._create(
            who,
            kind=kind,
            state=S.QUEUED,
            parent_id=parent.id,
            style=style,
            seed=parent.seed if kind is RequestKind.RESTYLE else new_seed(),
            prompt_positive=parent.prompt_positive,
            prompt_negative=parent.prompt_negative,
            source_language=parent.source_language,
        )
        if kind is RequestKind.REROLL:  # the same words again: the chat's level may have changed since
            verdict = self._check_stored(who, parent)
            if not verdict.allowed:
                await self._refuse(who, request_id, None, verdict, from_states=[S.QUEUED])
                return
        try:
            record = await self.repository.get_request(request_id)
            assert record is not None
            spec = await self.jobs.spec_for(record, who.policy)
            if spec is None:
                raise PictureGoneError()
        except Exception as error:
            await self._fail(who, request_id, None, error, from_states=[S.QUEUED])
            return
        status = await self._put(who, None, cards.progress(request_id, who.lang, "queued"))
        await self.jobs.submit(who.origin, who.lang, request_id, spec, status)

    async def _on_retry_missing(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        """Retry a request that waited for a missing model: draw its card, or listen to its voice note again."""
        if record.transcript is not None:
            await self.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], error_key=None)
            await self._confirm(who, record.id, press.message_ref or None, record)
            return
        audio = self._audio.get(record.id)
        if audio is None:
            await self.messenger.notify(who.origin, t("voice.gone", who.lang))
            return
        if not await self.repository.transition(record.id, S.TRANSCRIBING, from_states=[S.AWAITING_CONFIRMATION]):
            await self.messenger.notify(who.origin, t("already_handled", who.lang))
            return
        ref = await self._put(who, press.message_ref or self._cards.get(record.id), Reply(t("transcribing", who.lang), kind="progress"))
        await self._transcribe(replace(who, style=record.style or who.style), record.id, ref or "", audio, language=None)

    async def _on_try_again(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        """A finished picture that could not be stored: run the job again (the engine may answer from its cache)."""
        if self.jobs.following(record.id):
            await self.messenger.notify(who.origin, t("not_ready", who.lang))
            return
        try:
            spec = await self.jobs.spec_for(record, who.policy)
            if spec is None:
                raise PictureGoneError()
        except Exception as error:
            await self._fail(who, record.id, press.message_ref or None, error, from_states=[S.QUEUED])
            return
        status = await self._put(who, press.message_ref or None, cards.progress(record.id, who.lang, "queued"))
        await self.jobs.submit(who.origin, who.lang, record.id, spec, status)

    async def _on_base(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        base = record.image(ImageRole.BASE)
        if base is None or not base.path.exists():
            await self.messenger.notify(who.origin, t("history.gone", who.lang))
            return
        png = await asyncio.to_thread(base.path.read_bytes)
        original = cards.original(record.id, who.lang, png)
        await self.messenger.send(who.origin, cards.as_spoiler(original, who.lang) if record.error_key == POLICY_SPOILER else original)

    async def _on_resend(self, press: ButtonPress, who: _Who, record: RequestRecord) -> None:
        anime = record.image(ImageRole.ANIME)
        if anime is None or not anime.path.exists():
            await self.messenger.notify(who.origin, t("not_ready" if record.state is S.RUNNING else "history.gone", who.lang))
            return
        png = await asyncio.to_thread(anime.path.read_bytes)
        if record.state is S.RUNNING:  # drawn, but every upload failed so far
            await self.jobs.send_picture(who.origin, who.lang, record, png)
            return
        await self.messenger.send(who.origin, delivered_reply(record, who.lang, png, self.config.style_names))

    async def _on_settings_button(self, press: ButtonPress, who: _Who) -> None:
        """/settings and its pickers: personal settings for whoever presses, chat-wide ones for the chat's admins."""
        entry = CHAT_SETTINGS_BY_ACTION.get(press.action)
        if entry is not None:
            await self._on_chat_setting(press, who, entry)
        elif press.action == cards.SET_LANGUAGE:
            choice = choice_for(LANGUAGE_CHOICES, press.value)
            if choice is None:
                await self._send_settings(who, cards.SET_LANGUAGE)
                return
            await self.repository.update_user_settings(who.user_id, language=choice.value)  # type: ignore[arg-type]  # a choice of the language list: a str
            await self._settings_saved(who, press)
        elif press.action == cards.DEFAULT_STYLE and press.value in self.config.styles:
            await self.repository.update_user_settings(who.user_id, default_style=press.value)
            await self._settings_saved(who, press)
        elif press.action == cards.DEFAULT_STYLE:
            await self._send_settings(who, cards.DEFAULT_STYLE)

    async def _on_chat_setting(self, press: ButtonPress, who: _Who, entry: ChatSetting) -> None:
        """A chat-wide setting: in a group only its admins change it (others are told privately); a private chat is its user's."""
        group = who.origin.is_group
        if not group and not entry.in_private:
            return
        if group and not await self._is_admin(who.origin):
            mine = {"language": t("settings.my_language", who.lang), "style": t("settings.my_style", who.lang)}
            await self.messenger.notify(who.origin, t("settings.admins_only", who.lang, **mine))
            return
        user = await self.repository.get_user_settings(who.user_id)
        chat = await self.repository.get_chat_settings(who.chat_id) if group else None
        current = entry.current(chat, user)
        choice = entry.choice_for(press.value)
        if choice is None and entry.toggles:
            if press.value:
                return
            choice = entry.other(current)  # a toggle from before buttons carried the value they switch to
        if choice is None:
            await self._send_settings(who, entry.action)
            return
        if entry.field == "content_policy" and choice.value == Level.OFF and not self._off_allowed(who.origin):
            await self.messenger.notify(who.origin, t("policy.off_not_allowed", who.lang))
            return
        if group:
            await self.repository.update_chat_settings(who.chat_id, **{entry.field: choice.value})  # type: ignore[arg-type]  # the settings table pairs a field with a value of its type
        else:
            await self.repository.update_user_settings(who.user_id, **{entry.field: choice.value})  # type: ignore[arg-type]  # the settings table pairs a field with a value of its type
        await self._settings_saved(who, press)

    def _off_allowed(self, origin: Origin) -> bool:
        """May this chat's content policy be ``off`` (a Discord age-restricted channel, a chat in ``POLICY_OFF_CHATS``)?"""
        policy = self.config.policy
        return off_allowed(origin.platform, origin.chat_id, age_restricted=origin.age_restricted, off_chats=policy.off_chats)

    async def _is_admin(self, origin: Origin) -> bool:
        """May ``origin``'s user change their chat's settings? A private chat is theirs; in a group the platform says."""
        if not origin.is_group:
            return True
        try:
            return await self.messenger.is_admin(origin)
        except Exception:
            log.warning("could not tell whether %s user %s administers %s", origin.platform, origin.user_id, origin.chat_id, exc_info=True)
            return False

    async def _settings_saved(self, who: _Who, press: ButtonPress) -> None:
        """Keep ``who``'s other settings cards and pickers true (:meth:`_refresh_settings`), say so privately, and show
        the settings as they are now where the button was (the card, or the picker), in their language as it is now."""
        who = await self._who(who.origin)
        await self._refresh_settings(who.origin, but=press.message_ref)
        await self.messenger.notify(who.origin, t("settings.saved", who.lang))
        card = await self._settings_card(who)
        shown = await self._put(who, press.message_ref or None, card)
        if shown is not None:
            self._remember_settings(who.origin, shown, "", card)

    def _remember_settings(self, origin: Origin, ref: str, picker: str, reply: Reply) -> None:
        """Message ``ref`` shows ``origin``'s user their settings card (``picker`` empty) or a settings picker, as ``reply``."""
        if not ref:
            return
        key = (origin.platform, ref)
        self._settings_shown[key] = _SettingsView(origin, picker, reply)
        self._settings_shown.move_to_end(key)
        while len(self._settings_shown) > SETTINGS_REMEMBERED:
            self._settings_shown.popitem(last=False)

    async def _refresh_settings(self, origin: Origin, *, but: str = "") -> None:
        """After a change: every other settings card and picker of ``origin``'s user (in any of their chats on the platform)
        that no longer shows what is true is edited in place, in their language as it is now.

        Only their own messages: someone else's card stays as its owner last saw it. A message
        that can no longer be edited (deleted, or the platform no longer allows it) is forgotten.
        """
        mine = [
            (key, view) for key, view in self._settings_shown.items()
            if key[0] == origin.platform and key[1] != but and view.origin.user_id == origin.user_id
        ]
        for key, view in mine:
            try:
                reply = await self._settings_view(await self._who(view.origin), view.picker)
                if reply != view.reply:
                    await self.messenger.edit(view.origin, key[1], reply)
                    self._remember_settings(view.origin, key[1], view.picker, reply)
            except Exception:
                log.info("could not update settings message %s", key[1], exc_info=True)
                self._settings_shown.pop(key, None)

    def _remember_audio(self, request_id: str, audio: bytes) -> None:
        self._audio[request_id] = audio
        while sum(map(len, self._audio.values())) > self.config.audio_cache_bytes:
            self._audio.popitem(last=False)


class RateLimitedError(UserError):
    """Too many new requests in the last minute."""

    key = "rate_limited"


class PictureGoneError(UserError):
    """What a request needs (its base image, its prompt) is no longer stored."""

    key = "history.gone"


def cap_error(hit: CapReached) -> UserError:
    """What to tell the user about a cap the database refused."""
    match hit.cap:
        case Cap.PER_MINUTE:
            return RateLimitedError()
        case Cap.ACTIVE_PER_USER:
            return UserQueueFullError(limit=hit.limit)
        case _:
            return QueueFullError(limit=hit.limit)


#: ``error_key`` of a request the content policy refused (failed at once, or a card showing the refusal).
POLICY_REFUSED = "policy.refused"

#: Open cards whose message is remembered (to retire or update it); older ones just keep their buttons.
OPEN_CARDS_REMEMBERED = 10_000
#: Settings cards and pickers remembered to be kept true (the newest); older ones keep what they showed.
SETTINGS_REMEMBERED = 4096


@dataclass(frozen=True)
class _SettingsView:
    """A settings card or picker on screen: whose it is (their origin when it was shown), which one, and what it shows."""

    origin: Origin
    #: Empty for the /settings card, else the action its choices carry (a picker).
    picker: str
    reply: Reply


def new_seed() -> int:
    """A random Stable Diffusion seed (32 bits: fits every database and is easy to read out)."""
    return secrets.randbelow(2**32)


Handler = Callable[[Conversation, ButtonPress, _Who, RequestRecord], Awaitable[None]]


@dataclass(frozen=True)
class ButtonRule:
    """What a button does and in which states of its request it may."""

    handler: Handler
    states: frozenset[RequestState]


#: An open confirmation card (expiry is checked too).
CARD_STATES = frozenset({S.AWAITING_CONFIRMATION})
#: A picture that was delivered.
DONE_STATES = frozenset({S.DELIVERED})

#: Which button works in which state of its request: the one table the conversation consults.
BUTTONS: dict[str, ButtonRule] = {
    cards.CONFIRM: ButtonRule(Conversation._on_confirm, CARD_STATES),
    cards.EDIT: ButtonRule(Conversation._on_edit, CARD_STATES),
    cards.RETRY: ButtonRule(Conversation._on_retry, CARD_STATES),
    cards.RETRY_AS: ButtonRule(Conversation._on_retry_as, CARD_STATES),
    cards.STYLE: ButtonRule(Conversation._on_style, CARD_STATES),
    cards.STYLE_SET: ButtonRule(Conversation._on_style_set, CARD_STATES),
    cards.DETAILS: ButtonRule(Conversation._on_details, CARD_STATES),
    cards.KEEP_SAID: ButtonRule(Conversation._on_keep_said, CARD_STATES),
    cards.CANCEL: ButtonRule(Conversation._on_cancel, frozenset({S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING})),
    cards.RESTYLE: ButtonRule(Conversation._on_restyle, DONE_STATES),
    cards.RESTYLE_AS: ButtonRule(Conversation._on_restyle_as, DONE_STATES),
    cards.REROLL: ButtonRule(Conversation._on_reroll, DONE_STATES),
    cards.BASE: ButtonRule(Conversation._on_base, DONE_STATES),
    cards.RESEND: ButtonRule(Conversation._on_resend, DONE_STATES | {S.RUNNING}),  # running: drawn, upload failed
    cards.TRY_AGAIN: ButtonRule(Conversation._on_try_again, frozenset({S.QUEUED})),  # drawn, but could not be stored
    cards.RETRY_MISSING: ButtonRule(Conversation._on_retry_missing, CARD_STATES),  # waited for a missing model
}
