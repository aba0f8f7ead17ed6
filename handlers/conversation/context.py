"""What a handler needs: the requester, the services, and what the conversation keeps in memory.

Every handler is ``async def handler(ctx, who, ...)``: ``ctx`` is the one
:class:`Context` of the conversation (repository, transcriber, jobs,
messenger, config, clock and the bounded memory of messages on screen),
``who`` the :class:`Who` of the event being handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cachetools import LRUCache

from db.enums import ChatKind
from db.repository import Repository
from engine.api import Transcriber
from engine.policy.levels import Level
from handlers.actions import Action
from handlers.conversation.config import ConversationConfig
from handlers.events import Origin
from handlers.i18n import pick_language
from handlers.jobs import JobTracker
from handlers.keyed_lock import KeyedLock
from handlers.replies import OwnedMessages, Reply

if TYPE_CHECKING:
    from handlers.conversation.voice import VoiceReplies

log = logging.getLogger(__name__)

#: Open cards whose message is remembered (to retire or update it); older ones just keep their buttons.
OPEN_CARDS_REMEMBERED = 10_000
#: Drawings waiting to be told what they are, kept in memory up to this many bytes in all.
SKETCHES_KEPT_BYTES = 64 * 1024 * 1024
#: Settings cards and pickers remembered to be kept true (the newest); older ones keep what they showed.
SETTINGS_REMEMBERED = 4096


@dataclass(frozen=True)
class Who:
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
    #: Their voice replies as they apply in this chat (``off`` in a group that turned them off); None: the operator's.
    voice_replies: str | None = None


@dataclass(frozen=True)
class SettingsView:
    """A settings card or picker on screen: whose it is (their origin when it was shown), which one, and what it shows."""

    origin: Origin
    #: None for the /settings card, else the action its choices carry (a picker).
    picker: Action | None
    reply: Reply


@dataclass
class Context:
    """The services every handler uses and the conversation's memory (bounded, lost on restart)."""

    repository: Repository
    transcriber: Transcriber
    #: Queued requests are handed to it; it follows each job to its end.
    jobs: JobTracker
    #: Every message goes out through this, which remembers whose each one is.
    messenger: OwnedMessages
    config: ConversationConfig
    clock: Callable[[], datetime]
    #: The commands, in the order the menus show them (:data:`handlers.conversation.routes.COMMANDS`), for /help.
    commands: tuple[str, ...] = ()
    #: Voice notes of open cards, for "Heard wrong language" and Retry (at most ``config.audio_cache_bytes``).
    audio: LRUCache[str, bytes] = field(init=False)
    #: The message showing each open card (request id -> message ref), so an older one can be retired.
    cards: LRUCache[str, str] = field(default_factory=lambda: LRUCache(maxsize=OPEN_CARDS_REMEMBERED))
    #: The settings cards and pickers on screen ((platform, message ref) -> whose, which, what it shows), kept true.
    settings_shown: LRUCache[tuple[str, str], SettingsView] = field(default_factory=lambda: LRUCache(maxsize=SETTINGS_REMEMBERED))
    #: Whose next text is the corrected words of which card ((platform, chat, user) -> request id), after Edit.
    pending_edits: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Whose next words (or voice note) say what which drawing is ((platform, chat, user) -> the drawing's bytes), after
    #: "Use as a sketch" or a sketch sent from the studio's pad without words (least recently used dropped first).
    pending_sketches: LRUCache[tuple[str, str, str], bytes] = field(
        default_factory=lambda: LRUCache(maxsize=SKETCHES_KEPT_BYTES, getsizeof=len)
    )
    #: (platform, chat, user) -> the delivered picture whose Remix they pressed: their next words remix it.
    pending_remixes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: One handler at a time per request (an Edit and a Draw pressed together never interleave).
    request_locks: KeyedLock = field(default_factory=KeyedLock)
    #: Sent pictures being checked before they are kept (:mod:`handlers.conversation.photo_checking`), one task each.
    checks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Spoken replies (:mod:`handlers.conversation.voice`); None when the deployment has none.
    voice: VoiceReplies | None = None

    def __post_init__(self) -> None:
        self.audio = LRUCache(maxsize=self.config.audio_cache_bytes, getsizeof=len)

    async def who(self, origin: Origin) -> Who:
        """The requester of ``origin`` (recorded on first sight) with their settings as they apply in this chat."""
        kind = ChatKind.GROUP if origin.is_group else ChatKind.PRIVATE
        known = await self.repository.identify(origin.platform, origin.user_id, origin.user_name or None, origin.chat_id, kind)
        prefs = known.preferences
        style = prefs.default_style if prefs.default_style in self.config.styles else self.config.default_style
        return Who(
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
            voice_replies=prefs.voice_replies,
        )

    async def put(self, who: Who, ref: str | None, reply: Reply) -> str | None:
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

    def remember_audio(self, request_id: str, audio: bytes) -> None:
        """Keep a voice note while its card is open; one larger than the whole cache is not kept."""
        with suppress(ValueError):  # raised for one over ``audio_cache_bytes`` on its own
            self.audio[request_id] = audio
