"""Voice replies: after a card (and, for those who want it, a picture) a short spoken line, in the language spoken.

A voice note's card is read back — "I heard: <words>. Shall I draw it?" —
with the words as the card shows them, corrections said out loud ("I changed
'fuck' to 'fox'"). It is spoken in the language the user spoke (English, or
Mandarin for Chinese; Cantonese with the operator's Cantonese voice, else in
Mandarin), whatever the interface language; a language the voice cannot speak
gets none. When the card is not there to be confirmed the ending says so:
drawing already (confirmation off), or "have a look at the card" (a doubtful
hearing, a refusal, a missing model).

Who hears what (:meth:`VoiceReplies.mode`): the user's own setting, else the
operator's ``VOICE_REPLIES``; a group whose admins turned them off hears none.
``voice`` reads the cards of voice notes; ``always`` also the cards of typed
``/anime`` text and a line when each picture is ready ("Here is your picture,
in the Paprika style", a fixed phrase the voice keeps cached).

The card is never delayed: each reply is made on a task of its own after the
card is shown, and synthesis runs off the event loop. A reply that cannot be
made never fails the request: a missing voice is told to the operator once
(:func:`engine.missing_models.tell_operator`), any other failure is one log
line, and the user keeps the text. A chat that does not take voice messages
(:class:`~handlers.replies.VoiceRefusedError`) is remembered in the database
(:class:`RefusedChats`, across restarts) and gets none from then on, until
its user chooses voice replies again in /settings (they may have allowed
voice messages since).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache

from db.enums import RequestKind
from db.records import RequestRecord
from db.states import RequestState
from engine.errors import ModelUnavailableError
from engine.language.chinese import script_of
from engine.missing_models import tell_operator
from engine.speech.opus import seconds_of
from handlers import cards
from handlers.conversation.context import Context, Who
from handlers.conversation.readings import reading_of
from handlers.events import Origin
from handlers.i18n import is_chinese, t
from handlers.replies import OwnedMessages, VoiceNote, VoiceRefusedError

log = logging.getLogger(__name__)

S = RequestState

#: Chats known not to take voice messages, kept in memory too (the newest remembered; the database has them all).
REFUSALS_REMEMBERED = 10_000
#: Punctuation around words that the spoken line puts its own after.
_TRAILING = " \t\n.,;:!?。，、；：！？…"


class Narrator(Protocol):
    """What the voice replies need of :class:`engine.speech.tts.Narrator`."""

    async def voice_note_async(self, text: str, language: str) -> bytes:
        """``text`` read aloud in ``language`` as an OGG/Opus voice note, off the event loop."""

    def phrase(self, text: str, language: str) -> bytes:
        """The voice note of a fixed phrase, cached (blocking)."""


class RefusedChats(Protocol):
    """Where chats that refuse voice messages are remembered (:class:`db.repository.Repository`)."""

    async def voice_refused(self, platform: str, platform_chat_id: str) -> bool:
        """Whether the chat refused a voice message."""

    async def set_voice_refused(self, platform: str, platform_chat_id: str, refused: bool) -> None:
        """Remember that the chat refuses voice messages, or forget it."""


@dataclass(frozen=True)
class Spoken:
    """A language to speak in: the catalog the words come from and the narrator's language."""

    ui: str
    voice: str

    def join(self, parts: list[str]) -> str:
        """Sentences one after another: spaced in English, not in Chinese."""
        return ("" if is_chinese(self.ui) else " ").join(parts)


def spoken_in(language: str, ui: str, words: str = "") -> Spoken | None:
    """How to answer someone who spoke ``language`` (a Whisper code) and reads ``ui``; None when no voice speaks it.

    Chinese is answered in the script its ``words`` are written in (else the UI's, else Simplified).
    """
    script = script_of(words) or (ui if is_chinese(ui) else None)
    if language == "en":
        return Spoken("en", "en")
    if language == "zh":
        return Spoken(script or "zh-Hans", "zh-Hans")
    if language == "yue":  # read by TTS_MODEL_YUE when there is one, else in Mandarin
        return Spoken(script or "zh-Hant", "yue")
    return None


def card_line(record: RequestRecord, ui: str) -> tuple[str, Spoken] | None:
    """What to say about ``record``'s card, and in what; None when there is nothing to say or no voice for it."""
    transcript = record.transcript
    ending = _ending(record)
    if transcript is None or ending is None:
        return None
    reading = reading_of(record.kind, transcript)
    spoken = spoken_in(transcript.language, ui, reading.text)
    if spoken is None:
        return None
    parts = [t("voice.heard" if reading.heard else "voice.typed", spoken.ui, text=reading.text.strip(_TRAILING))]
    if reading.heard and transcript.corrections:
        separator = t("card.list_separator", spoken.ui)
        changes = separator.join(
            t("voice.correction", spoken.ui, heard=heard.strip(_TRAILING), meant=meant.strip(_TRAILING))
            for heard, meant in transcript.corrections
        )
        parts.append(t("voice.corrected", spoken.ui, changes=changes))
    doubtful = reading.heard and cards.is_doubtful(transcript.language, transcript.language_probability)
    if ending == "voice.question" and doubtful:
        ending = "voice.check"
    parts.append(t(ending, spoken.ui))
    return spoken.join(parts), spoken


def _ending(record: RequestRecord) -> str | None:
    """How the line about a card ends: a question, "have a look" (it cannot be drawn as it is), or "drawing it"."""
    if record.state is S.AWAITING_CONFIRMATION:
        return "voice.check" if record.error_key else "voice.question"
    if record.state in (S.QUEUED, S.RUNNING, S.DELIVERED):  # confirmation is off: it went straight on
        return "voice.drawing"
    return None  # failed or gone: the text says why


def picture_line(record: RequestRecord, ui: str, style_names: cards.StyleNames) -> tuple[str, Spoken] | None:
    """What to say when ``record``'s picture is ready: in the language its words were spoken, else the UI's."""
    transcript = record.transcript
    spoken = spoken_in(transcript.language, ui, transcript.heard_text) if transcript else Spoken(ui, ui)
    if spoken is None:
        return None
    style = cards.style_name(record.style or "", spoken.ui, style_names)
    return t("voice.picture", spoken.ui, style=style), spoken


#: Makes a voice reply: (its words, the voice note).
Making = Callable[[], Awaitable[tuple[str, bytes]]]


class VoiceReplies:
    """Spoken replies, each on a task of its own (see the module docstring).

    ``default`` is the operator's ``VOICE_REPLIES`` (``voice`` or ``always``;
    with ``off`` there is no :class:`VoiceReplies` at all). ``refusals``
    remembers the chats that take no voice messages (None: in memory only).
    """

    def __init__(
        self,
        narrator: Narrator,
        messenger: OwnedMessages,
        *,
        default: str,
        style_names: cards.StyleNames,
        refusals: RefusedChats | None = None,
    ) -> None:
        self.narrator = narrator
        self.messenger = messenger
        self.default = default
        self.style_names = style_names
        self.refusals = refusals
        self._tasks: set[asyncio.Task[None]] = set()
        #: (platform, chat id) of chats that refused a voice note.
        self._refused: LRUCache[tuple[str, str], None] = LRUCache(maxsize=REFUSALS_REMEMBERED)

    def mode(self, voice_replies: str | None) -> str:
        """What a user whose (effective) setting is ``voice_replies`` hears: ``off``, ``voice`` or ``always``."""
        return voice_replies or self.default

    def after_card(self, origin: Origin, ui: str, voice_replies: str | None, record: RequestRecord) -> None:
        """Read ``record``'s card aloud (just shown): a voice note's (a remix's said ones too) for ``voice`` and ``always``,
        typed words' for ``always``."""
        said = record.kind is RequestKind.VOICE or (record.kind is RequestKind.REMIX and bool(record.transcript and record.transcript.words))
        wanted = ("voice", "always") if said else ("always",)  # a remix's words said in a voice note are read as any
        if self.mode(voice_replies) not in wanted:
            return
        line = card_line(record, ui)
        if line is not None:
            text, spoken = line
            self._start(origin, record.id, self._reading(text, spoken))

    def after_picture(self, origin: Origin, ui: str, voice_replies: str | None, record: RequestRecord) -> None:
        """Say that ``record``'s picture is here (``always`` only)."""
        if self.mode(voice_replies) != "always":
            return
        line = picture_line(record, ui, self.style_names)
        if line is not None:
            text, spoken = line
            self._start(origin, record.id, self._phrase(text, spoken))

    async def accept_again(self, origin: Origin) -> None:
        """Try voice messages in the origin's chat again (its user chose voice replies): forget a refusal."""
        self._refused.pop((origin.platform, origin.chat_id), None)
        await self._remember(origin, refused=False)

    async def wait_idle(self) -> None:
        """Wait until every voice reply being made has been sent (or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Drop the voice replies still being made (shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _reading(self, text: str, spoken: Spoken) -> Making:
        async def make() -> tuple[str, bytes]:
            return text, await self.narrator.voice_note_async(text, spoken.voice)

        return make

    def _phrase(self, text: str, spoken: Spoken) -> Making:
        async def make() -> tuple[str, bytes]:
            return text, await asyncio.to_thread(self.narrator.phrase, text, spoken.voice)

        return make

    def _start(self, origin: Origin, request_id: str, make: Making) -> None:
        if (origin.platform, origin.chat_id) in self._refused:
            return
        task = asyncio.create_task(self._speak(origin, request_id, make), name=f"voice-{request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuses(self, origin: Origin) -> bool:
        """Whether the origin's chat is known to take no voice messages (in memory, else in the database)."""
        chat = (origin.platform, origin.chat_id)
        if chat in self._refused:
            return True
        if self.refusals is None:
            return False
        try:
            refused = await self.refusals.voice_refused(*chat)
        except Exception as error:  # the voice is a bonus: without the database's word it is tried
            log.warning("%s chat %s: could not read whether it takes voice messages (%s: %s)", *chat, type(error).__name__, error)
            return False
        if refused:
            self._refused[chat] = None
        return refused

    async def _remember(self, origin: Origin, *, refused: bool) -> None:
        """Store in the database that the origin's chat refuses voice messages, or no longer does (a failure is one log line)."""
        if self.refusals is None:
            return
        try:
            await self.refusals.set_voice_refused(origin.platform, origin.chat_id, refused)
        except Exception as error:
            log.warning("%s chat %s: could not store its voice messages refusal (%s: %s)", origin.platform, origin.chat_id, type(error).__name__, error)

    async def _speak(self, origin: Origin, request_id: str, make: Making) -> None:
        """Make the voice note and send it; a failure only costs the voice (see the module docstring)."""
        if await self._refuses(origin):
            return
        try:
            text, ogg = await make()
        except ModelUnavailableError as error:
            tell_operator(error)
            return
        except Exception as error:
            log.warning("request %s: no voice reply, text only (%s: %s)", request_id, type(error).__name__, error)
            return
        note = VoiceNote(ogg, seconds_of(ogg), text, request_id, cards.file_name(request_id, "voice"))
        try:
            await self.messenger.send_voice(origin, note)
        except VoiceRefusedError:
            log.info("%s chat %s takes no voice messages: text only from now on", origin.platform, origin.chat_id)
            self._refused[(origin.platform, origin.chat_id)] = None
            await self._remember(origin, refused=True)
        except Exception as error:
            log.warning("request %s: the voice reply could not be sent (%s: %s)", request_id, type(error).__name__, error)


async def speak_card(ctx: Context, who: Who, request_id: str) -> None:
    """Read the card of ``request_id``, just shown, to ``who`` when they hear voice replies (see :meth:`VoiceReplies.after_card`)."""
    if ctx.voice is None or ctx.voice.mode(who.voice_replies) == "off":
        return
    record = await ctx.repository.get_request(request_id)
    if record is not None:
        ctx.voice.after_card(who.origin, who.lang, who.voice_replies, record)


async def speak_picture(ctx: Context, origin: Origin, request_id: str) -> None:
    """Say that the picture of ``request_id`` was delivered, to a user who hears ``always`` (never raises)."""
    if ctx.voice is None:
        return
    try:
        who = await ctx.who(origin)
        if ctx.voice.mode(who.voice_replies) != "always":
            return
        record = await ctx.repository.get_request(request_id)
        if record is not None:
            ctx.voice.after_picture(origin, who.lang, who.voice_replies, record)
    except Exception as error:
        log.warning("request %s: no voice reply for the picture (%s: %s)", request_id, type(error).__name__, error)
