"""The Discord adapter: discord.py events and interactions in, neutral events out.

* Slash commands (:mod:`bot.discord_commands`) become :class:`Command` events.
* Voice messages (flag ``IS_VOICE_MESSAGE``) and audio attachments become
  :class:`VoiceMessage`, images :class:`PhotoMessage` — in DMs always, in
  guild channels only when the message mentions the bot (a reply to the bot
  counts only with the mention on: without it Discord sends neither content
  nor attachments to a bot lacking the message_content intent). Text in those
  places becomes :class:`TextMessage`. An attachment over its size limit
  (``audio_max_bytes``, ``image_max_bytes``) is not downloaded: it becomes
  :class:`Rejected`, which the conversation explains.
* Buttons/selects (:mod:`bot.discord_views`) become :class:`ButtonPress`;
  the edit modal's submission becomes :class:`TextMessage` with the request
  id its form was opened for.

Every interaction is acknowledged before the conversation runs ("thinking"
for commands and modal submissions, a deferred update for components), so
slow work never misses Discord's 3-second deadline; interactions the bot
does not serve (a guild off the allow-list, a component or form it cannot
read) are acknowledged too, so the user never sees "interaction failed".
The one exception is the Edit and Remix buttons: a modal can only be the *first*
response, so that press is forwarded without deferring and the conversation's ``edit_prompt`` reply is
answered with the modal (:meth:`DiscordMessenger.send`); if the conversation
has not answered within :data:`MODAL_BUDGET` seconds the press is deferred
after all and the prompt arrives as an ephemeral message with a button that
opens the modal.

Minimal intents: ``guilds`` (channels and the guild allow-list),
``guild_messages`` and ``dm_messages`` (voice notes). ``message_content`` is
not requested: Discord delivers content and attachments without it for DMs
and for messages that mention the bot (a reply with the mention on counts).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import discord
from discord import app_commands
from pydantic import SecretStr

from bot.adapter import EventHandler
from bot.discord_commands import CommandTranslator, build_commands
from bot.discord_messenger import DiscordMessenger, Responder, current
from bot.discord_views import DYNAMIC_ITEMS, is_ours, modal_submission
from bot.settings import Settings
from bot.startup_errors import BadInputError
from engine.errors import MEGABYTE, AudioTooLargeError, ImageTooLargeError
from handlers.actions import Action, Payload
from handlers.conversation.routes import BY_COMMAND
from handlers.events import (
    ButtonPress,
    Command,
    Event,
    Origin,
    PhotoMessage,
    Rejected,
    TextMessage,
    VoiceMessage,
)
from handlers.i18n import pick_language, t
from handlers.replies import Messenger

log = logging.getLogger(__name__)

#: Longest the Edit button waits for the conversation before deferring (Discord allows 3 s in all).
MODAL_BUDGET = 2.0
#: Bytes per "MB" in the size messages.
#: Largest photo downloaded for restyling (not a setting: Discord's own upload limits are in this range).
IMAGE_MAX_BYTES = 20 * MEGABYTE


def intents() -> discord.Intents:
    """guilds, guild_messages, dm_messages — nothing privileged."""
    return discord.Intents(guilds=True, guild_messages=True, dm_messages=True)


@dataclass(frozen=True)
class DiscordConfig:
    """What the adapter needs from the settings."""

    token: SecretStr
    styles: tuple[str, ...]
    guild_allowlist: frozenset[int] = frozenset()
    sync_commands: bool = True
    #: ``/anime text`` length limit (the conversation's ``PROMPT_MAX_CHARS``).
    max_text_chars: int = 500
    #: Largest audio attachment downloaded (``AUDIO_MAX_BYTES``).
    audio_max_bytes: int = 20 * MEGABYTE
    #: Largest image attachment downloaded.
    image_max_bytes: int = IMAGE_MAX_BYTES


class DiscordClient(discord.Client):
    """discord.py client that hands everything to its :class:`DiscordAdapter`."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        super().__init__(intents=intents(), allowed_mentions=discord.AllowedMentions.none())
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        """Register the persistent components and the commands (and publish them when configured)."""
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.tree.set_translator(CommandTranslator())
        config = self.adapter.config
        for command in build_commands(config.styles, self.adapter.on_command, max_text_chars=config.max_text_chars):
            self.tree.add_command(command)
        if self.adapter.config.sync_commands:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Edit-form submissions; anything no other handler will answer is acknowledged here."""
        if interaction.type is discord.InteractionType.modal_submit:
            submission = modal_submission(interaction)
            if submission is None or submission.text is None:
                await _acknowledge(interaction)
            else:
                await self.adapter.on_modal_text(interaction, submission.request_id, submission.text)
        elif interaction.type is discord.InteractionType.component:
            custom_id = str(interaction.data.get("custom_id", "")) if interaction.data else ""
            if not is_ours(custom_id):  # no DynamicItem callback will run for it
                await _acknowledge(interaction)

    async def on_press(self, interaction: discord.Interaction, data: str) -> None:
        """:class:`bot.discord_views.ComponentSink`: a button or select."""
        await self.adapter.on_press(interaction, data)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if not self.adapter.allows(guild.id):
            log.info("leaving guild %s: not in DISCORD_GUILD_ALLOWLIST", guild.id)
            await guild.leave()


class DiscordAdapter:
    """:class:`bot.adapter.Adapter` for Discord."""

    platform = "discord"

    def __init__(self, config: DiscordConfig) -> None:
        self.config = config
        self.client = DiscordClient(self)
        self._messenger = DiscordMessenger(self.client)
        self._on_event: EventHandler | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordAdapter:
        """The adapter for ``DISCORD_BOT_TOKEN``, with the styles of the AnimeGANv2 registry."""
        from bot.factory import conversation_config

        assert settings.discord_bot_token is not None
        return cls(
            DiscordConfig(
                token=settings.discord_bot_token,
                styles=conversation_config(settings).styles,
                guild_allowlist=settings.discord_guild_allowlist,
                sync_commands=settings.discord_sync_commands,
                max_text_chars=settings.prompt_max_chars,
                audio_max_bytes=settings.audio_max_bytes,
            )
        )

    @property
    def messenger(self) -> Messenger:
        """Replies for Discord chats."""
        return self._messenger

    def bind(self, on_event: EventHandler) -> None:
        """Deliver events to ``on_event`` (``start`` does this; tests that connect the client themselves too)."""
        self._on_event = on_event

    async def start(self, on_event: EventHandler) -> None:
        """Log in, connect in the background, return once ready.

        A rejected token (``discord.LoginFailure``) is a :class:`bot.startup_errors.BadInputError`:
        one line without the token, exit code 2.
        """
        self.bind(on_event)
        try:
            await self.client.login(self.config.token.get_secret_value())
        except discord.LoginFailure:
            raise BadInputError("Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized) — check the token") from None
        self._task = asyncio.create_task(self.client.connect(), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        await asyncio.wait((self._task, ready), return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            ready.cancel()
            self._task.result()  # e.g. PrivilegedIntentsRequired; the token is never logged

    async def stop(self) -> None:
        """Disconnect."""
        await self.client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def allows(self, guild_id: int | None) -> bool:
        """DMs always; guilds only when on the allow-list (an empty list allows every guild)."""
        return guild_id is None or not self.config.guild_allowlist or guild_id in self.config.guild_allowlist

    # --- inbound ----------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Voice/audio, image or text addressed to the bot -> one neutral event."""
        if message.author.bot or not self.allows(message.guild.id if message.guild else None):
            return
        if message.guild is not None and not self._addressed(message):
            return
        locale = message.guild.preferred_locale.value if message.guild else None
        origin = _origin(message.author, message.channel.id, locale, is_group=message.guild is not None)
        origin = replace(origin, age_restricted=age_restricted(message.channel))
        event: Event | None = None
        replied = _replied_image(message)
        for attachment in message.attachments:
            kind = (attachment.content_type or "").split("/")[0]
            if message.flags.voice or kind == "audio":
                event = self._attachment_event(origin, attachment, audio=True, photo=replied)
                break
            if kind == "image":
                event = self._attachment_event(origin, attachment, audio=False)
                break
        if event is None and (text := self._without_mention(message.content)):
            # words replying to a user's picture: drawn keeping its composition
            event = self._attachment_event(origin, replied, audio=False, caption=text, replying=True) if replied else TextMessage(origin, text)
        if event is not None:
            await self._deliver(event)

    async def on_command(
        self, interaction: discord.Interaction, name: str, text: str, style: str | None, image: discord.Attachment | None = None
    ) -> None:
        """A slash command; ``/anime``'s style option is applied to the request it creates, and with an ``image``
        attached its text is drawn keeping the picture's composition (a :class:`PhotoMessage` with the text as caption)."""
        if not self.allows(interaction.guild_id):
            await _refuse(interaction)
            return
        # The answers that are only the asker's (help, settings ...) are ephemeral in servers from the "thinking…" on.
        route = BY_COMMAND.get(name)
        private = route is not None and route.private and interaction.guild_id is not None
        responder = Responder(interaction, thinking=True, ephemeral=private)
        origin = _interaction_origin(interaction)
        if image is not None:
            await self._answer(responder, self._attachment_event(origin, image, audio=False, caption=text))
            return
        await self._answer(responder, Command(origin, name, text, style=style or ""))

    async def on_press(self, interaction: discord.Interaction, data: str) -> None:
        """A component press -> :class:`ButtonPress` on the message it sits on."""
        if not self.allows(interaction.guild_id):
            await _refuse(interaction)
            return
        payload = Payload.unpack(data)
        if payload is None:
            await _acknowledge(interaction)
            return
        responder = Responder(interaction, thinking=False)
        ref = self._messenger.track_source(responder)
        press = ButtonPress(_interaction_origin(interaction), payload.request_id, payload.action, payload.value, ref)
        await self._answer(responder, press, modal=payload.action in (Action.EDIT, Action.REMIX))  # both ask for words: a modal

    async def on_modal_text(self, interaction: discord.Interaction, request_id: str, text: str) -> None:
        """The edit modal's text -> :class:`TextMessage` for the request the form was opened for."""
        if not self.allows(interaction.guild_id):
            await _refuse(interaction)
            return
        event = TextMessage(_interaction_origin(interaction), text, request_id=request_id)
        await self._answer(Responder(interaction, thinking=True), event)

    # --- internals --------------------------------------------------------------

    async def _answer(self, responder: Responder, event: Event, *, modal: bool = False) -> None:
        """Run the conversation for ``event`` with ``responder`` acknowledging it in time."""
        token = current.set(responder)
        fallback: asyncio.Task[None] | None = None
        try:
            if modal:
                fallback = asyncio.create_task(responder.acknowledge_after(MODAL_BUDGET))
            else:
                await responder.acknowledge()
            await self._deliver(event)
        finally:
            if fallback is not None:
                fallback.cancel()
            await responder.finish()
            current.reset(token)

    def _attachment_event(
        self,
        origin: Origin,
        attachment: discord.Attachment,
        *,
        audio: bool,
        caption: str = "",
        photo: discord.Attachment | None = None,
        replying: bool = False,
    ) -> Event:
        """A voice/photo event that downloads once the conversation admits it, or :class:`Rejected` when over its limit.

        ``caption``: words sent with a photo (``/anime`` with an image attached, a reply to a picture);
        ``photo``: the picture a voice message replies to; ``replying``: ``caption`` is a reply to the picture, sent before."""
        limit = self.config.audio_max_bytes if audio else self.config.image_max_bytes
        if attachment.size > limit:
            error = (AudioTooLargeError if audio else ImageTooLargeError).of(attachment.size, limit)
            return Rejected(origin, error)
        if photo is not None and photo.size > self.config.image_max_bytes:
            return Rejected(origin, ImageTooLargeError.of(photo.size, self.config.image_max_bytes))
        if audio:
            return VoiceMessage(origin, attachment.read, photo=photo.read if photo is not None else None)
        return PhotoMessage(origin, attachment.read, caption, replying=replying)

    async def _deliver(self, event: Event) -> None:
        if self._on_event is None:
            raise RuntimeError("DiscordAdapter.start() (or bind()) was not called")
        await self._on_event(event)

    def _addressed(self, message: discord.Message) -> bool:
        me = self.client.user
        return me is not None and me in message.mentions

    def _without_mention(self, content: str) -> str:
        me = self.client.user
        if me is not None:
            content = content.replace(f"<@{me.id}>", "").replace(f"<@!{me.id}>", "")
        return content.strip()


async def _acknowledge(interaction: discord.Interaction) -> None:
    """Answer an interaction nothing else will answer (a silent deferral), so the client shows no failure."""
    if not interaction.response.is_done():
        try:
            await interaction.response.defer()
        except discord.HTTPException as error:
            log.warning("could not acknowledge an interaction: %s", error)


def _replied_image(message: discord.Message) -> discord.Attachment | None:
    """The picture a user's message replies to (one a person sent, not the bot's), if any."""
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    if not isinstance(replied, discord.Message) or replied.author.bot:
        return None
    return next((a for a in replied.attachments if (a.content_type or "").startswith("image/")), None)


async def _refuse(interaction: discord.Interaction) -> None:
    """Tell the user, privately, that this server is not served (a guild off the allow-list)."""
    if not interaction.response.is_done():
        text = t("guild.not_allowed", pick_language(None, interaction.locale.value))
        try:
            await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as error:
            log.warning("could not answer an interaction from a guild off the allow-list: %s", error)


def _origin(user: discord.abc.User, channel_id: int, locale: str | None, *, is_group: bool) -> Origin:
    return Origin("discord", str(channel_id), str(user.id), user.display_name, locale, is_group)


def _interaction_origin(interaction: discord.Interaction[Any]) -> Origin:
    """Who and where; the user's client language as locale; DMs are private chats."""
    origin = _origin(
        interaction.user, interaction.channel_id or 0, interaction.locale.value, is_group=interaction.guild_id is not None
    )
    return replace(origin, age_restricted=age_restricted(interaction.channel))


def age_restricted(channel: object) -> bool:
    """Whether Discord marks ``channel`` age-restricted (NSFW; a thread follows its parent). Unknown or a DM: no."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    try:
        return bool(is_nsfw()) if callable(is_nsfw) else False
    except Exception:  # a partial channel without the data: treated as not age-restricted
        return False
