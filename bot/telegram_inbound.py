"""Telegram updates -> neutral events: pure translation, no I/O.

Voice notes, audio files and audio documents become an :class:`Attachment`
of kind ``voice``; photos (largest size) and image documents one of kind
``photo`` -- the adapter downloads them and makes the ``VoiceMessage`` /
``PhotoMessage``. Text becomes a :class:`Command` or a ``TextMessage``;
callback queries become a ``ButtonPress``.

In groups the bot only listens when spoken to: commands (``/anime`` or
``/anime@ourbot``), replies to its own messages, and messages mentioning it
(the mention is stripped from the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from telegram import CallbackQuery, Chat, Message, MessageEntity, User

from handlers.actions import Payload
from handlers.conversation.routes import BY_COMMAND
from handlers.events import ButtonPress, Command, Event, Origin, TextMessage

PLATFORM = "telegram"

#: The commands of the conversation, in menu order.
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{3,32}))?(?:\s+(.*))?", re.DOTALL)
_GROUP_TYPES = (Chat.GROUP, Chat.SUPERGROUP)


@dataclass(frozen=True)
class Attachment:
    """A file to download before it becomes a ``VoiceMessage`` (``voice``) or ``PhotoMessage`` (``photo``)."""

    origin: Origin
    kind: Literal["voice", "photo"]
    file_id: str
    #: Size as announced in the update (None when Telegram did not say).
    file_size: int | None
    #: A photo's caption (our mention stripped), or the text replying to it: words to draw keeping its composition.
    caption: str = ""
    #: A voice note replying to a photo: that photo (its words are drawn keeping the photo's composition).
    photo: Attachment | None = None
    #: A photo sent before, which ``caption`` (a text message) replies to.
    replying: bool = False


def message_ref(chat_id: int, message_id: int) -> str:
    """The neutral message reference ``"chat_id:message_id"``."""
    return f"{chat_id}:{message_id}"


def parse_message_ref(ref: str) -> tuple[int, int]:
    """Inverse of :func:`message_ref` (chat ids may be negative)."""
    chat_id, message_id = ref.rsplit(":", 1)
    return int(chat_id), int(message_id)


def origin_of(chat: Chat, user: User) -> Origin:
    """Who wrote, where: the user's Telegram ``language_code`` is the locale."""
    return Origin(
        PLATFORM,
        str(chat.id),
        str(user.id),
        user.first_name,
        user.language_code,
        chat.type in _GROUP_TYPES,
    )


def from_message(message: Message, me: User) -> Event | Attachment | None:
    """The event a new message stands for, or None when it is not for us (or not something we handle)."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    origin = origin_of(message.chat, user)
    if message.text is not None:
        command = _command(message.text, me, origin)
        if command is not None:
            return command
    if origin.is_group and not (_replies_to(message, me) or _our_mentions(message, me)):
        return None
    attachment = _attachment(message, origin, _strip_mentions(message, me))
    replied = _replied_photo(message, origin, me)
    if attachment is not None and attachment.kind == "voice" and replied is not None:
        return Attachment(origin, "voice", attachment.file_id, attachment.file_size, photo=replied)
    if attachment is not None or message.text is None:
        return attachment
    text = _strip_mentions(message, me) if origin.is_group else message.text.strip()
    if replied is not None and text:  # words replying to a photo: draw them keeping its composition
        return Attachment(origin, "photo", replied.file_id, replied.file_size, text, replying=True)
    if origin.is_group:
        command = _command(text, me, origin)
        if command is not None:
            return command
    return TextMessage(origin, text) if text else None


def from_callback(query: CallbackQuery) -> ButtonPress | None:
    """The press on one of our buttons, or None when the data is not ours or the message is unknown."""
    payload = Payload.unpack(query.data or "")
    if payload is None or query.message is None:
        return None
    chat = query.message.chat
    return ButtonPress(
        origin_of(chat, query.from_user), payload.request_id, payload.action, payload.value, message_ref(chat.id, query.message.message_id)
    )


def _command(text: str, me: User, origin: Origin) -> Command | None:
    """``/name[@bot] args``, when meant for us: in groups only our commands, plain or addressed to us."""
    match = _COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    name, target, args = match.group(1).lower(), match.group(2), (match.group(3) or "").strip()
    if target is not None and target.lower() != (me.username or "").lower():
        return None
    if origin.is_group and target is None and name not in BY_COMMAND:
        return None
    return Command(origin, name, args)


def _replies_to(message: Message, me: User) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == me.id


def _our_mentions(message: Message, me: User) -> list[str]:
    """The substrings of the text/caption that mention us (``@ourbot`` or a text mention of our account)."""
    types: list[str | None] = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    found = message.parse_entities(types) | message.parse_caption_entities(types)
    username = f"@{me.username}".lower()
    return [
        text
        for entity, text in found.items()
        if (entity.type == MessageEntity.MENTION and text.lower() == username)
        or (entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == me.id)
    ]


def _strip_mentions(message: Message, me: User) -> str:
    """The message's text (or caption) without our mentions."""
    text = message.text or message.caption or ""
    for mention in _our_mentions(message, me):
        text = text.replace(mention, " ", 1)
    return " ".join(text.split())


def _replied_photo(message: Message, origin: Origin, me: User) -> Attachment | None:
    """The photo a user's message replies to (one a person sent, not our pictures), if any."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id == me.id:
        return None
    found = _attachment(replied, origin, "")
    return found if found is not None and found.kind == "photo" else None


def _attachment(message: Message, origin: Origin, caption: str) -> Attachment | None:
    """The voice/audio or photo file the message carries, if any (a photo with its ``caption``)."""
    document = message.document
    mime = (document.mime_type or "") if document else ""
    voice = message.voice or message.audio or (document if mime.startswith("audio/") else None)
    if voice is not None:
        return Attachment(origin, "voice", voice.file_id, voice.file_size)
    photo = message.photo[-1] if message.photo else (document if mime.startswith("image/") else None)
    if photo is not None:
        return Attachment(origin, "photo", photo.file_id, photo.file_size, caption)
    return None
