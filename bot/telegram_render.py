"""Neutral replies -> Telegram messages: the :class:`TelegramMessenger`.

* buttons -> ``InlineKeyboardMarkup`` (``callback_data`` = :attr:`Button.data`, at most 64 bytes);
* ``progress`` -> a "typing" chat action, then the message (edits go through ``edit_message_text``;
  "message is not modified" is not an error). A progress edit with an image (a live preview) goes
  through ``edit_message_media`` on a photo message; a text message cannot gain a photo, so the first
  one posts the status anew as a photo (caption + buttons), deletes the text message and re-points its
  reference: later edits of the old reference reach the photo. Edits without an image keep a photo
  message's picture and change its caption (``edit_message_caption``);
* ``image`` -> ``send_photo``, or ``send_document`` when the picture is over Telegram's photo
  limits or Telegram rejects it;
* ``edit_prompt`` -> a ``ForceReply`` (the prefill as placeholder); the user's answer comes back
  as an ordinary text message;
* :meth:`TelegramMessenger.notify` answers the callback query being handled (a toast), else posts
  a message;
* a ``private`` reply in a group is posted in the reply thread of the message being answered (the
  user's command, or the bot message whose button was pressed): Telegram has no per-user messages
  in a group, a bot cannot open a private chat with someone who never started it, and a settings
  card moved to a DM could no longer change the group's settings. What a button press answers
  privately goes through ``notify`` (the toast only the presser sees);
* :meth:`TelegramMessenger.is_admin` asks ``getChatMember`` (creator or administrator), trusting
  the answer for :data:`ADMIN_TTL` seconds — or until a ``chat_member`` update says the member's
  status changed (:meth:`TelegramMessenger.member_changed`; Telegram sends those only to a bot that
  administers the group);
* pictures sent as files are named from :attr:`Reply.file_name` (``voice2anime-1a2b3c4d.png``);
* a :class:`~handlers.replies.VoiceNote` -> ``send_voice`` (OGG/Opus, its duration). A user who allows
  nobody to send them voice messages makes Telegram answer ``Voice_messages_forbidden``: that is
  :class:`~handlers.replies.VoiceRefusedError` (the conversation sends that chat none again).

Message references are ``"chat_id:message_id"``. Rate limits (429 + ``retry_after``) are handled
by the bot's ``AIORateLimiter``. Which of our messages are photos, and which were re-posted where,
is remembered in memory for the newest :data:`REMEMBERED` messages (a restart forgets it: an edit of
an unknown message is tried as text first, then as a caption).

Texts and captions go out without ``parse_mode`` (and the bot has no ``Defaults``): Telegram parses
no markup in them, so user text needs no escaping — ``[Free Nitro](https://…)`` shows as typed; only
what Telegram detects on its own (a visible URL, an @username) becomes an entity.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from cachetools import LRUCache, TTLCache
from PIL import Image
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, ReplyParameters
from telegram.constants import ChatAction, ChatMemberStatus, FileSizeLimit, MessageLimit, ReplyLimit
from telegram.error import BadRequest, TelegramError

from bot.telegram_inbound import message_ref, parse_message_ref
from handlers.events import Origin
from handlers.replies import Reply, VoiceNote, VoiceRefusedError

log = logging.getLogger(__name__)

#: Telegram's photo limits: bytes, sum of width and height, aspect ratio.
PHOTO_MAX_BYTES = int(FileSizeLimit.PHOTOSIZE_UPLOAD)
PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20

_NOT_MODIFIED = "message is not modified"
#: What Telegram answers editMessageText on a photo message.
_NO_TEXT = "there is no text in the message to edit"
#: What Telegram answers sendVoice to a user who takes no voice messages (``Bad Request: VOICE_MESSAGES_FORBIDDEN``).
_VOICE_FORBIDDEN = "voice_messages_forbidden"
#: Photo messages and re-posted messages remembered (the newest ones).
REMEMBERED = 4096
#: Seconds a getChatMember answer is trusted: a demoted admin loses the right within this time, at once
#: where the bot administers the group (a chat_member update replaces the answer).
ADMIN_TTL = 60.0
#: (chat, user) admin answers remembered.
ADMINS_REMEMBERED = 4096
#: The first bytes of a JPEG (a preview); pictures are PNG.
JPEG_MAGIC = b"\xff\xd8"
#: Who may change a group's settings.
ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's button rows as an inline keyboard (None without buttons)."""
    if not reply.buttons:
        return None
    rows = [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in reply.buttons]
    return InlineKeyboardMarkup(rows)


def reply_markup(reply: Reply) -> InlineKeyboardMarkup | ForceReply | None:
    """ForceReply for an ``edit_prompt`` (placeholder = prefill, cut to Telegram's 64 characters), else the keyboard."""
    if reply.kind == "edit_prompt":
        placeholder = reply.prefill[: ReplyLimit.MAX_INPUT_FIELD_PLACEHOLDER] or None
        return ForceReply(input_field_placeholder=placeholder)
    return keyboard(reply)


def message_text(reply: Reply) -> str:
    """The text to post: an ``edit_prompt`` also shows the full current text (to copy), cut to 4096 characters."""
    text = f"{reply.text}\n\n{reply.prefill}" if reply.kind == "edit_prompt" and reply.prefill else reply.text
    return text[: MessageLimit.MAX_TEXT_LENGTH]


def caption(reply: Reply) -> str:
    """The picture's caption, cut to Telegram's 1024 characters."""
    return reply.text[: MessageLimit.CAPTION_LENGTH]


def fits_as_photo(image: bytes) -> bool:
    """Whether Telegram accepts ``image`` as a photo (10 MB, width + height <= 10000, ratio <= 20)."""
    if len(image) > PHOTO_MAX_BYTES:
        return False
    with Image.open(io.BytesIO(image)) as picture:
        width, height = picture.size
    return width + height <= PHOTO_MAX_SIDES and max(width, height) <= PHOTO_MAX_RATIO * min(width, height)


def spoiler_photo(image: bytes) -> bytes:
    """``image`` as a JPEG Telegram takes as a photo (a picture for a spoiler must be a photo: files have none)."""
    with Image.open(io.BytesIO(image)) as source:
        picture = source.convert("RGB")
    picture.thumbnail((2560, 2560))
    width, height = picture.size
    short = max(width, height) // PHOTO_MAX_RATIO + 1
    if min(width, height) < short:  # too narrow for a photo: on a black band
        framed = Image.new("RGB", (max(width, short), max(height, short)))
        framed.paste(picture, ((framed.width - width) // 2, (framed.height - height) // 2))
        picture = framed
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class _PendingAnswer:
    """The callback query being handled; it can be answered once."""

    def __init__(self, bot: Bot, query_id: str) -> None:
        self._bot = bot
        self._query_id = query_id
        self.answered = False

    async def answer(self, text: str | None = None) -> bool:
        """Answer it (with a toast ``text``); False when it was answered before or Telegram refused."""
        if self.answered:
            return False
        self.answered = True
        try:
            await self._bot.answer_callback_query(self._query_id, text=text)
        except TelegramError as error:
            log.warning("could not answer callback query: %s", error)
            return False
        return True


_pressed: contextvars.ContextVar[_PendingAnswer | None] = contextvars.ContextVar("telegram_pressed", default=None)
#: The message being answered, as (chat id, message id): where a private reply goes in a group.
_answering: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("telegram_answering", default=None)


class TelegramMessenger:
    """The :class:`handlers.replies.Messenger` for Telegram chats."""

    def __init__(self, bot: Bot, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self._monotonic = monotonic
        self._tasks: set[asyncio.Task[bool]] = set()
        #: (chat id, user id) -> is admin, trusted for ADMIN_TTL seconds.
        self._admins: TTLCache[tuple[int, int], bool] = TTLCache(maxsize=ADMINS_REMEMBERED, ttl=ADMIN_TTL, timer=monotonic)
        self._asking: dict[tuple[int, int], asyncio.Future[bool]] = {}
        #: Our messages that show a picture (their text is a caption), newest last.
        self._pictures: LRUCache[str, None] = LRUCache(maxsize=REMEMBERED)
        #: Status messages posted anew as a photo: old reference -> the photo's.
        self._moved: LRUCache[str, str] = LRUCache(maxsize=REMEMBERED)

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post ``reply``; returns ``"chat_id:message_id"``."""
        chat_id = int(origin.chat_id)
        thread = _thread(origin) if reply.private else None
        if reply.image_png is not None:
            message = await self._send_image(chat_id, reply, reply.image_png, thread)
            return self._remember_picture(message_ref(message.chat_id, message.message_id))
        if reply.kind == "progress":
            await self._chat_action(chat_id, ChatAction.TYPING)
        message = await self.bot.send_message(
            chat_id, message_text(reply), reply_markup=reply_markup(reply), reply_parameters=thread
        )
        return message_ref(message.chat_id, message.message_id)

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Replace the text (or caption) and buttons of a message, and a progress message's picture.

        A finished picture and an edit prompt are posted anew; see the module docstring for previews.
        """
        if reply.kind == "edit_prompt" or (reply.image_png is not None and reply.kind != "progress"):
            await self.send(origin, reply)
            return
        current = self._current(message_ref)
        if reply.image_png is not None:
            await self._show_picture(origin, message_ref, current, reply, reply.image_png)
            return
        chat_id, message_id = parse_message_ref(current)
        if reply.kind == "progress":
            await self._chat_action(chat_id, ChatAction.TYPING)
        try:
            await self._edit_words(chat_id, message_id, reply, picture=current in self._pictures)
        except BadRequest as error:
            if _NOT_MODIFIED in error.message.lower():
                return
            log.warning("could not edit message %s: %s", current, error.message)
            if reply.kind != "progress":  # a card or an error must reach the user; a progress tick may be skipped
                await self.send(origin, reply)

    async def _edit_words(self, chat_id: int, message_id: int, reply: Reply, *, picture: bool) -> None:
        """The text and buttons of a text message, or the caption and buttons of a picture (tried when text fails)."""
        if not picture:
            try:
                await self.bot.edit_message_text(
                    message_text(reply), chat_id=chat_id, message_id=message_id, reply_markup=keyboard(reply)
                )
                return
            except BadRequest as error:
                if _NO_TEXT not in error.message.lower():
                    raise
                self._remember_picture(message_ref(chat_id, message_id))  # a photo we did not know of (restart)
        await self.bot.edit_message_caption(
            chat_id=chat_id, message_id=message_id, caption=caption(reply), reply_markup=keyboard(reply)
        )

    async def _show_picture(self, origin: Origin, ref: str, current: str, reply: Reply, image: bytes) -> None:
        """Show ``image`` in status message ``ref`` (now ``current``): edit the photo, or turn the text message into one.

        Best effort, like every progress edit: a failure is logged and the next update tries again.
        """
        chat_id, message_id = parse_message_ref(current)
        if current in self._pictures:
            try:
                media = InputMediaPhoto(image, caption=caption(reply))
                await self.bot.edit_message_media(media, chat_id=chat_id, message_id=message_id, reply_markup=keyboard(reply))
            except BadRequest as error:
                if _NOT_MODIFIED not in error.message.lower():
                    log.warning("could not show a preview in message %s: %s", current, error.message)
            return
        # A text message cannot gain a photo: post the status as one, then drop the text message.
        try:
            message = await self._send_image(chat_id, reply, image, None)
        except TelegramError as error:
            log.warning("could not post the preview of message %s: %s", current, error)
            return
        moved = self._remember_picture(message_ref(message.chat_id, message.message_id))
        for old in {ref, current}:
            self._moved[old] = moved
        try:
            await self.bot.delete_message(chat_id, message_id)
        except TelegramError as error:  # e.g. already deleted by the user
            log.info("could not delete message %s after posting it as a photo: %s", current, error)

    def _current(self, ref: str) -> str:
        """Where message ``ref`` is now (it may have been posted anew as a photo)."""
        seen = {ref}
        while (moved := self._moved.get(ref)) is not None and moved not in seen:
            seen.add(moved)
            ref = moved
        return ref

    def _remember_picture(self, ref: str) -> str:
        self._pictures[ref] = None
        return ref

    async def notify(self, origin: Origin, text: str) -> None:
        """Answer the button press being handled with a toast, else post ``text`` (in a group: in the reply thread)."""
        pending = _pressed.get()
        if pending is not None and await pending.answer(text):
            return
        thread = _thread(origin)
        if thread is None:
            await self.bot.send_message(int(origin.chat_id), text)
        else:
            await self.bot.send_message(int(origin.chat_id), text, reply_parameters=thread)

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """A voice message (``sendVoice``: OGG/Opus, its whole seconds); :class:`VoiceRefusedError` for a user who takes none."""
        chat_id = int(origin.chat_id)
        await self._chat_action(chat_id, ChatAction.RECORD_VOICE)
        try:
            await self.bot.send_voice(
                chat_id, voice.ogg, duration=max(1, math.ceil(voice.seconds)), filename=f"{voice.file_name or 'voice2anime'}.ogg"
            )
        except BadRequest as error:
            if _VOICE_FORBIDDEN in error.message.lower():
                raise VoiceRefusedError(error.message) from error
            raise

    async def is_admin(self, origin: Origin) -> bool:
        """True for the creator and administrators of a group (getChatMember, trusted for :data:`ADMIN_TTL` s).

        A private chat is its user's. When Telegram cannot be asked the answer is no (not remembered).
        """
        if not origin.is_group:
            return True
        key = (int(origin.chat_id), int(origin.user_id))
        known = self._admins.get(key)
        if known is not None:
            return known
        asking = self._asking.get(key)
        if asking is None:  # presses handled at the same time share one question
            asking = self._asking[key] = asyncio.ensure_future(self._ask_admin(key))
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        return await asyncio.shield(asking)

    async def _ask_admin(self, key: tuple[int, int]) -> bool:
        try:
            member = await self.bot.get_chat_member(*key)
        except TelegramError as error:
            log.warning("could not ask whether user %s administers chat %s: %s", key[1], key[0], error)
            return False
        return self._remember_admin(key, member.status)

    def member_changed(self, chat_id: int, user_id: int, status: str) -> None:
        """A ``chat_member`` update: ``user_id``'s status in ``chat_id`` is now ``status`` (promoted, demoted, left ...).

        It replaces what :meth:`is_admin` remembered, so a demoted administrator
        loses the chat's settings at once, not after :data:`ADMIN_TTL`.
        """
        self._remember_admin((chat_id, user_id), status)

    def _remember_admin(self, key: tuple[int, int], status: str) -> bool:
        admin = status in ADMIN_STATUSES
        self._admins[key] = admin
        return admin

    @contextmanager
    def replying_to(self, chat_id: int, message_id: int) -> Iterator[None]:
        """While handling message ``message_id``: private replies in its group go to its reply thread."""
        token = _answering.set((chat_id, message_id))
        try:
            yield
        finally:
            _answering.reset(token)

    @asynccontextmanager
    async def answering(self, query_id: str, *, within: float, message: tuple[int, int] | None = None) -> AsyncIterator[None]:
        """Handle a callback query: :meth:`notify` inside answers it; it is answered (empty) on exit, or after
        ``within`` seconds if handling takes longer (Telegram shows a spinner until then). ``message``
        (chat id, message id) is the one the button sits on: private replies go to its thread."""
        pending = _PendingAnswer(self.bot, query_id)
        token = _pressed.set(pending)
        thread = _answering.set(message)
        timer = asyncio.get_running_loop().call_later(within, self._answer_soon, pending)
        try:
            yield
        finally:
            timer.cancel()
            _answering.reset(thread)
            _pressed.reset(token)
            await pending.answer()

    def _answer_soon(self, pending: _PendingAnswer) -> None:
        task = asyncio.create_task(pending.answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_image(self, chat_id: int, reply: Reply, image: bytes, thread: ReplyParameters | None) -> Message:
        markup = keyboard(reply)
        extension = "jpg" if image.startswith(JPEG_MAGIC) else "png"
        name = f"{reply.file_name or 'voice2anime'}.{extension}"
        if reply.spoiler and not fits_as_photo(image):  # a file cannot be hidden behind a spoiler; a smaller photo can
            image, name = await asyncio.to_thread(spoiler_photo, image), f"{reply.file_name or 'voice2anime'}.jpg"
        if fits_as_photo(image) and not reply.as_file:  # a file is never recompressed (an upscaled picture)
            await self._chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
            try:
                return await self.bot.send_photo(
                    chat_id,
                    image,
                    caption=caption(reply),
                    reply_markup=markup,
                    filename=name,
                    reply_parameters=thread,
                    has_spoiler=reply.spoiler,
                )
            except BadRequest as error:
                if reply.spoiler:
                    raise  # never as an uncovered file
                log.warning("Telegram rejected the photo (%s); sending it as a file", error.message)
        await self._chat_action(chat_id, ChatAction.UPLOAD_DOCUMENT)
        return await self.bot.send_document(
            chat_id, image, filename=name, caption=caption(reply), reply_markup=markup, reply_parameters=thread
        )

    async def _chat_action(self, chat_id: int, action: str) -> None:
        """Show "typing…"/"sending a photo…" (best effort: a failure here must not lose the reply)."""
        try:
            await self.bot.send_chat_action(chat_id, action)
        except TelegramError as error:
            log.debug("chat action %s failed: %s", action, error)


def _thread(origin: Origin) -> ReplyParameters | None:
    """In a group: a reply to the message being answered (sent anyway if it was deleted); elsewhere none."""
    answering = _answering.get()
    if not origin.is_group or answering is None or answering[0] != int(origin.chat_id):
        return None
    return ReplyParameters(answering[1], allow_sending_without_reply=True)
