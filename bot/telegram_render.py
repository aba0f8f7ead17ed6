"""Neutral replies -> Telegram messages: the :class:`TelegramMessenger`.

* buttons -> ``InlineKeyboardMarkup`` (``callback_data`` = :attr:`Button.data`, at most 64 bytes);
* ``progress`` -> a "typing" chat action, then the message (edits go through ``edit_message_text``;
  "message is not modified" is not an error);
* ``image`` -> ``send_photo``, or ``send_document`` when the picture is over Telegram's photo
  limits or Telegram rejects it;
* ``edit_prompt`` -> a ``ForceReply`` (the prefill as placeholder); the user's answer comes back
  as an ordinary text message;
* :meth:`TelegramMessenger.notify` answers the callback query being handled (a toast), else posts
  a message.

Message references are ``"chat_id:message_id"``. Rate limits (429 + ``retry_after``) are handled
by the bot's ``AIORateLimiter``.

Texts and captions go out without ``parse_mode`` (and the bot has no ``Defaults``): Telegram parses
no markup in them, so user text needs no escaping — ``[Free Nitro](https://…)`` shows as typed; only
what Telegram detects on its own (a visible URL, an @username) becomes an entity.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from PIL import Image
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message
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

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post ``reply``; returns ``"chat_id:message_id"``."""
        chat_id = int(origin.chat_id)
        if reply.image_png is not None:
            message = await self._send_image(chat_id, reply, reply.image_png)
        else:
            if reply.kind == "progress":
                await self._chat_action(chat_id, ChatAction.TYPING)
            message = await self.bot.send_message(chat_id, message_text(reply), reply_markup=reply_markup(reply))
        return message_ref(message.chat_id, message.message_id)

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Replace the text and buttons of a message; pictures and edit prompts are posted anew."""
        if reply.image_png is not None or reply.kind == "edit_prompt":
            await self.send(origin, reply)
            return
        chat_id, message_id = parse_message_ref(message_ref)
        if reply.kind == "progress":
            await self._chat_action(chat_id, ChatAction.TYPING)
        try:
            await self.bot.edit_message_text(
                message_text(reply), chat_id=chat_id, message_id=message_id, reply_markup=keyboard(reply)
            )
        except BadRequest as error:
            if _NOT_MODIFIED in error.message.lower():
                return
            log.warning("could not edit message %s: %s", message_ref, error.message)
            if reply.kind != "progress":  # a card or an error must reach the user; a progress tick may be skipped
                await self.send(origin, reply)

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
