"""Neutral replies on Discord: interaction responses while a token is valid, channel messages otherwise.

Every event the adapter forwards from an interaction runs with that
interaction's :class:`Responder` in the context variable :data:`current`
(tasks the conversation starts, such as job watchers, inherit it). The
:class:`DiscordMessenger` then answers through the interaction — filling the
"thinking…" placeholder first, follow-ups after — and edits messages through
the interaction webhook. A component interaction answered with a form (the
Edit button's modal) has no message of its own: its message is edited the way
it was before the press. Interaction tokens live 15 minutes: once a message's
interaction has expired, an edit of a server channel's message is posted as a
new channel message and the message reference is re-pointed to it, so later
edits land there; a DM's message is edited as the bot's own message in the DM.
An ephemeral message (someone's /settings, a picker) can only be changed
through its interaction: once that has expired, an edit of it raises
:class:`MessageGoneError` — it is never posted anew where everyone sees it.

Message references are ``"<channel id>:<message id>"``; a reference the
messenger does not track (e.g. after a restart) is edited as a plain bot
message in its channel.

An edit with an image replaces the message's attachment (``attachments=[file]``:
a status message's live preview, ``preview.jpg``); an edit without one leaves
the attachment as it is, so a status message keeps its last preview (the
sketch) under its final line.

A ``private`` reply in a server is ephemeral while an interaction is being
answered (only the person who caused it sees it); without one it is posted in
the channel. :meth:`DiscordMessenger.is_admin` reads the member's permissions
in the channel — Manage Server or Manage Channels (Administrator implies
both) — from the interaction being answered, which Discord resolves for it,
else from the member as the guild has them. Pictures are uploaded under
:attr:`Reply.file_name` (``voice2anime-1a2b3c4d.png``; a status message's
preview stays ``preview.jpg``).

A voice reply (:meth:`DiscordMessenger.send_voice`) is an ``.ogg`` attachment,
which Discord shows with a player, its words as the attachment's description
(alt text). Not a Discord voice message: that needs the attachment's
``duration_secs`` and ``waveform`` and the message flag ``IS_VOICE_MESSAGE``,
none of which discord.py 2.7 can send (``Messageable.send`` takes no flags,
``File`` no duration: discord.py#10165) short of its private HTTP layer.

A reply's text is plain text (see :class:`handlers.replies.Reply`), and much
of it is the user's (a description, a transcript, a prompt):
:func:`literal_content` escapes all of it so Discord shows it literally — no
masked link ``[Free Nitro](…)``, no bold or spoilers, no ``@everyone`` — and
every message goes out with ``AllowedMentions.none()``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import discord
from cachetools import LRUCache

from bot.discord_media import Upload, fit_image
from bot.discord_views import edit_again_button, edit_modal, view_for
from handlers.events import Origin
from handlers.i18n import pick_language, t
from handlers.replies import Reply, VoiceNote

log = logging.getLogger(__name__)

#: Discord's message content limit.
MAX_CONTENT = 2000
#: How many message references are remembered for edits through their interaction.
MAX_TRACKED = 2048
#: Nobody is ever pinged by the bot's messages (user text can say "@everyone").
NO_MENTIONS = discord.AllowedMentions.none()
#: Longest description (alt text) of an attachment.
MAX_DESCRIPTION = 1024

#: A ``[`` or ``]`` not already escaped (preceded by an even number of backslashes).
_UNESCAPED_BRACKET = re.compile(r"(?<!\\)((?:\\\\)*)([\[\]])")


class MessageGoneError(LookupError):
    """A message that can no longer be changed: ephemeral, and its interaction has expired (or is not known)."""


def literal_content(text: str, limit: int = MAX_CONTENT) -> str:
    """Plain ``text`` as Discord message content that shows it literally, cut to ``limit`` characters.

    ``escape_markdown`` (not leaving URLs alone: a URL can end in markup) escapes emphasis, code,
    spoilers, quotes, headings and lists; it escapes only the first ``[`` of what it takes for a
    masked link, so every remaining bracket is escaped too (``[a](x) [b](y)`` would otherwise leave
    ``[b](y)`` live). ``escape_mentions`` breaks ``@everyone``, ``@here`` and user/role mentions.
    """
    escaped = discord.utils.escape_markdown(text, ignore_links=False)
    escaped = discord.utils.escape_mentions(_UNESCAPED_BRACKET.sub(r"\1\\\2", escaped))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[:limit]
    trailing = len(cut) - len(cut.rstrip("\\"))
    return cut[:-1] if trailing % 2 else cut  # never end on half an escape


class Responder:
    """One interaction: its acknowledgement (within 3 s), the "thinking" placeholder and follow-ups."""

    def __init__(self, interaction: discord.Interaction, *, thinking: bool, ephemeral: bool = False) -> None:
        self.interaction = interaction
        self.thinking = thinking
        self.ephemeral = ephemeral
        self._placeholder = False
        #: Answered with a form: this interaction has no message of its own to edit.
        self.showed_modal = False
        self._lock = asyncio.Lock()

    @property
    def channel_id(self) -> int | None:
        """The channel the interaction happened in."""
        return self.interaction.channel_id

    @property
    def can_show_modal(self) -> bool:
        """True until the interaction has been answered (a modal must be the first response)."""
        return not self.interaction.response.is_done() and not self.interaction.is_expired()

    def expired(self) -> bool:
        """True once the 15-minute interaction token can no longer be used."""
        return self.interaction.is_expired()

    async def acknowledge(self) -> None:
        """Defer unless answered already: "thinking" for commands and modals, a silent update for components."""
        async with self._lock:
            if self.interaction.response.is_done():
                return
            await self.interaction.response.defer(thinking=self.thinking, ephemeral=self.ephemeral)
            self._placeholder = self.thinking

    async def acknowledge_after(self, seconds: float) -> None:
        """Defer after ``seconds`` unless something answered first (the modal path)."""
        await asyncio.sleep(seconds)
        await self.acknowledge()

    async def show_modal(self, modal: discord.ui.Modal) -> bool:
        """Answer with ``modal``; False when the interaction was answered already."""
        async with self._lock:
            if not self.can_show_modal:
                return False
            await self.interaction.response.send_modal(modal)
            self.showed_modal = True
            return True

    async def send(self, payload: _Payload, *, ephemeral: bool = False) -> tuple[discord.Message, bool]:
        """Post ``payload``; returns the message and whether it is the interaction's original response."""
        async with self._lock:
            if not self.interaction.response.is_done():
                await self.interaction.response.send_message(**payload.send_kwargs(), ephemeral=ephemeral)
                return await self.interaction.original_response(), True
            if self._placeholder and ephemeral == self.ephemeral:
                self._placeholder = False
                return await self.interaction.edit_original_response(**payload.edit_kwargs()), True
            message = await self.interaction.followup.send(**payload.send_kwargs(), ephemeral=ephemeral, wait=True)
            return message, False

    async def finish(self) -> None:
        """After the event: make sure it was acknowledged and drop an unused "thinking" placeholder."""
        await self.acknowledge()
        async with self._lock:
            if self._placeholder:
                self._placeholder = False
                await self.interaction.delete_original_response()


#: The interaction being answered, set by the adapter around each forwarded event.
current: ContextVar[Responder | None] = ContextVar("discord_responder", default=None)


@dataclass(frozen=True)
class _Payload:
    """A reply rendered for Discord."""

    content: str
    view: discord.ui.View | None
    upload: Upload | None
    #: The upload's description (alt text).
    description: str | None = None

    def _file(self) -> discord.File | None:
        return discord.File(io.BytesIO(self.upload.data), self.upload.filename, description=self.description) if self.upload else None

    def send_kwargs(self) -> dict[str, Any]:
        """Arguments for ``send``/``send_message``/``followup.send``."""
        kwargs: dict[str, Any] = {"content": self.content, "allowed_mentions": NO_MENTIONS}
        if self.view is not None:
            kwargs["view"] = self.view
        if self.upload is not None:
            kwargs["file"] = self._file()
        return kwargs

    def edit_kwargs(self) -> dict[str, Any]:
        """Arguments for ``edit``: replaces text and components (and the file, when there is one)."""
        kwargs: dict[str, Any] = {"content": self.content, "view": self.view, "allowed_mentions": NO_MENTIONS}
        if self.upload is not None:
            kwargs["attachments"] = [self._file()]
        return kwargs


@dataclass(frozen=True)
class _Target:
    """Where a message reference points, and the interaction that may edit it."""

    channel_id: int
    message_id: int
    responder: Responder | None = None
    #: The message is the interaction's original response (for a component: the message it sits on).
    original: bool = False
    #: Only its user sees it: only its interaction can change it.
    ephemeral: bool = False
    #: How it could be edited before a press re-pointed it (used when that press was answered with a form).
    previous: _Target | None = None

    def editable(self) -> _Target:
        """The way to edit the message: never through an interaction answered with a form (it has no message)."""
        target = self
        while target.original and target.responder is not None and target.responder.showed_modal:
            target = target.previous or _Target(target.channel_id, target.message_id, ephemeral=target.ephemeral)
        return target


def _administers(permissions: discord.Permissions) -> bool:
    """Who may change a server channel's settings of the bot: Manage Server or Manage Channels (or Administrator)."""
    return permissions.administrator or permissions.manage_guild or permissions.manage_channels


def message_ref(channel_id: int, message_id: int) -> str:
    """The neutral reference of a Discord message."""
    return f"{channel_id}:{message_id}"


class DiscordMessenger:
    """:class:`handlers.replies.Messenger` for Discord."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._targets: LRUCache[str, _Target] = LRUCache(maxsize=MAX_TRACKED)

    # --- Messenger ------------------------------------------------------------

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Answer the current interaction (or post in the origin's channel)."""
        responder = self._responder(origin)
        if reply.kind == "edit_prompt":
            return await self._edit_prompt(origin, reply, responder)
        if responder is None:
            ref = await self._post(int(origin.chat_id), reply)
        else:
            payload = await self._render(reply, responder.interaction.filesize_limit)
            ephemeral = reply.private and origin.is_group
            message, original = await responder.send(payload, ephemeral=ephemeral)
            ref = self._track(_Target(message.channel.id, message.id, responder, original, ephemeral))
        return ref

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Edit through the message's interaction while valid; after expiry see the module docstring.

        Raises :class:`MessageGoneError` for an ephemeral message its interaction can no longer change.
        """
        target = self._target(message_ref)
        if target is None:
            log.warning("edit of a message reference that is not ours: %r", message_ref)
            return
        target = target.editable()
        responder = target.responder
        if responder is not None and responder.expired():
            if target.ephemeral:
                raise MessageGoneError(f"ephemeral message {message_ref}: its interaction has expired")
            if origin.is_group:
                self._targets[message_ref] = await self._post_target(target.channel_id, reply)
                return
            responder = None  # a DM: the bot's own message there can be edited without the interaction
        if target.ephemeral and responder is None:
            raise MessageGoneError(f"ephemeral message {message_ref}: no interaction can change it")
        if responder is not None:
            payload = await self._render(reply, responder.interaction.filesize_limit)
            if target.original:
                await responder.interaction.edit_original_response(**payload.edit_kwargs())
            else:
                await responder.interaction.followup.edit_message(target.message_id, **payload.edit_kwargs())
            return
        payload = await self._render(reply, self._channel_limit(target.channel_id))
        try:
            await self._messageable(target.channel_id).get_partial_message(target.message_id).edit(**payload.edit_kwargs())
        except (discord.NotFound, discord.Forbidden):
            self._targets[message_ref] = await self._post_target(target.channel_id, reply)

    async def notify(self, origin: Origin, text: str) -> None:
        """An ephemeral answer to the current interaction, or a plain message."""
        responder = self._responder(origin)
        if responder is None:
            await self._post(int(origin.chat_id), Reply(text))
            return
        await responder.send(_Payload(literal_content(text), None, None), ephemeral=True)

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """An ``.ogg`` attachment (see the module docstring), through the current interaction or in the channel."""
        upload = Upload(voice.ogg, f"{voice.file_name or 'voice2anime'}.ogg")
        payload = _Payload("", None, upload, voice.text[:MAX_DESCRIPTION])
        responder = self._responder(origin)
        if responder is None:
            await self._messageable(int(origin.chat_id)).send(**payload.send_kwargs())
        else:
            await responder.send(payload)

    async def is_admin(self, origin: Origin) -> bool:
        """Manage Server or Manage Channels in the origin's channel; a DM is its user's."""
        if not origin.is_group:
            return True
        responder = self._responder(origin)
        if responder is not None and str(responder.interaction.user.id) == origin.user_id:
            return _administers(responder.interaction.permissions)
        channel = self._client.get_channel(int(origin.chat_id))
        if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            return False
        guild = channel.guild
        try:
            member = guild.get_member(int(origin.user_id)) or await guild.fetch_member(int(origin.user_id))
        except discord.HTTPException as error:
            log.warning("could not look up member %s of guild %s: %s", origin.user_id, guild.id, error)
            return False
        return _administers(channel.permissions_for(member))

    # --- adapter side -----------------------------------------------------------

    def track_source(self, responder: Responder) -> str:
        """Remember that ``responder`` (a component interaction) may edit the message it came from."""
        message = responder.interaction.message
        if message is None:
            return ""
        known = self._targets.get(message_ref(message.channel.id, message.id))
        previous = replace(known.editable(), previous=None) if known is not None else None
        ephemeral = message.flags.ephemeral or (known is not None and known.ephemeral)
        return self._track(_Target(message.channel.id, message.id, responder, True, ephemeral, previous))

    # --- internals --------------------------------------------------------------

    @staticmethod
    def _responder(origin: Origin) -> Responder | None:
        responder = current.get()
        if responder is None or responder.expired() or str(responder.channel_id) != origin.chat_id:
            return None
        return responder

    async def _edit_prompt(self, origin: Origin, reply: Reply, responder: Responder | None) -> str:
        """Open the edit modal as the interaction's response; else offer a button that opens it.

        The title is the reply's (in the user's chosen language); without one, "Edit" in the client's language.
        """
        title = reply.title or t("button.edit", pick_language(None, origin.locale))
        if responder is not None and await responder.show_modal(edit_modal(title, reply.prefill, reply.request_id)):
            return ""
        payload = _Payload(literal_content(reply.text), edit_again_button(reply, title), None)
        if responder is None:
            message = await self._messageable(int(origin.chat_id)).send(**payload.send_kwargs())
        else:
            message, _ = await responder.send(payload, ephemeral=True)
        return self._track(_Target(message.channel.id, message.id))

    async def _post(self, channel_id: int, reply: Reply) -> str:
        return self._track(await self._post_target(channel_id, reply))

    async def _post_target(self, channel_id: int, reply: Reply) -> _Target:
        payload = await self._render(reply, self._channel_limit(channel_id))
        message = await self._messageable(channel_id).send(**payload.send_kwargs())
        return _Target(channel_id, message.id)

    @staticmethod
    async def _render(reply: Reply, limit: int) -> _Payload:
        """Text, buttons and the picture; a status message's preview is ``preview.jpg`` (its edits replace the attachment)."""
        stem = "preview" if reply.kind == "progress" else reply.file_name or "voice2anime"
        if reply.spoiler:
            stem = f"SPOILER_{stem}"  # Discord blurs an attachment named so until it is clicked
        upload = await asyncio.to_thread(fit_image, reply.image_png, limit, stem) if reply.image_png else None
        return _Payload(literal_content(reply.text), view_for(reply), upload)

    def _channel_limit(self, channel_id: int) -> int:
        channel = self._client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.filesize_limit if guild is not None else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    def _messageable(self, channel_id: int) -> Any:
        return self._client.get_channel(channel_id) or self._client.get_partial_messageable(channel_id)

    def _track(self, target: _Target) -> str:
        ref = message_ref(target.channel_id, target.message_id)
        self._targets[ref] = target
        return ref

    def _target(self, ref: str) -> _Target | None:
        target = self._targets.get(ref)
        if target is not None:
            return target
        channel, _, message = ref.partition(":")
        if not (channel.isdigit() and message.isdigit()):
            return None
        return _Target(int(channel), int(message))
