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
  a message.

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
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from PIL import Image
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message
from telegram.constants import ChatAction, FileSizeLimit, MessageLimit, ReplyLimit
from telegram.error import BadRequest, TelegramError

from bot.telegram_inbound import message_ref, parse_message_ref
from handlers.events import Origin
from handlers.replies import Reply

log = logging.getLogger(__name__)

#: Telegram's photo limits: bytes, sum of width and height, aspect ratio.
PHOTO_MAX_BYTES = int(FileSizeLimit.PHOTOSIZE_UPLOAD)
PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20

_NOT_MODIFIED = "message is not modified"
#: What Telegram answers editMessageText on a photo message.
_NO_TEXT = "there is no text in the message to edit"
#: Photo messages and re-posted messages remembered (the newest ones).
REMEMBERED = 4096


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


class TelegramMessenger:
    """The :class:`handlers.replies.Messenger` for Telegram chats."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._tasks: set[asyncio.Task[bool]] = set()
        #: Our messages that show a picture (their text is a caption), newest last.
        self._pictures: OrderedDict[str, None] = OrderedDict()
        #: Status messages posted anew as a photo: old reference -> the photo's.
        self._moved: OrderedDict[str, str] = OrderedDict()

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post ``reply``; returns ``"chat_id:message_id"``."""
        chat_id = int(origin.chat_id)
        if reply.image_png is not None:
            message = await self._send_image(chat_id, reply, reply.image_png)
            return self._remember_picture(message_ref(message.chat_id, message.message_id))
        if reply.kind == "progress":
            await self._chat_action(chat_id, ChatAction.TYPING)
        message = await self.bot.send_message(chat_id, message_text(reply), reply_markup=reply_markup(reply))
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
            message = await self._send_image(chat_id, reply, image)
        except TelegramError as error:
            log.warning("could not post the preview of message %s: %s", current, error)
            return
        moved = self._remember_picture(message_ref(message.chat_id, message.message_id))
        for old in {ref, current}:
            self._moved[old] = moved
            self._moved.move_to_end(old)
        while len(self._moved) > REMEMBERED:
            self._moved.popitem(last=False)
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
        self._pictures.move_to_end(ref)
        while len(self._pictures) > REMEMBERED:
            self._pictures.popitem(last=False)
        return ref

    async def notify(self, origin: Origin, text: str) -> None:
        """Answer the button press being handled with a toast, else post ``text``."""
        pending = _pressed.get()
        if pending is not None and await pending.answer(text):
            return
        await self.bot.send_message(int(origin.chat_id), text)

    @asynccontextmanager
    async def answering(self, query_id: str, *, within: float) -> AsyncIterator[None]:
        """Handle a callback query: :meth:`notify` inside answers it; it is answered (empty) on exit, or after
        ``within`` seconds if handling takes longer (Telegram shows a spinner until then)."""
        pending = _PendingAnswer(self.bot, query_id)
        token = _pressed.set(pending)
        timer = asyncio.get_running_loop().call_later(within, self._answer_soon, pending)
        try:
            yield
        finally:
            timer.cancel()
            _pressed.reset(token)
            await pending.answer()

    def _answer_soon(self, pending: _PendingAnswer) -> None:
        task = asyncio.create_task(pending.answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_image(self, chat_id: int, reply: Reply, image: bytes) -> Message:
        markup = keyboard(reply)
        if fits_as_photo(image):
            await self._chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
            try:
                return await self.bot.send_photo(chat_id, image, caption=caption(reply), reply_markup=markup)
            except BadRequest as error:
                log.warning("Telegram rejected the photo (%s); sending it as a file", error.message)
        await self._chat_action(chat_id, ChatAction.UPLOAD_DOCUMENT)
        name = f"anime-{reply.request_id}.png" if reply.request_id else "anime.png"
        return await self.bot.send_document(chat_id, image, filename=name, caption=caption(reply), reply_markup=markup)

    async def _chat_action(self, chat_id: int, action: str) -> None:
        """Show "typing…"/"sending a photo…" (best effort: a failure here must not lose the reply)."""
        try:
            await self.bot.send_chat_action(chat_id, action)
        except TelegramError as error:
            log.debug("chat action %s failed: %s", action, error)
