"""The Telegram adapter: a python-telegram-bot ``Application`` wired to the neutral conversation.

Updates arrive by long polling, or by webhook when ``TELEGRAM_WEBHOOK_URL`` is
set. The webhook always checks a secret: ``TELEGRAM_WEBHOOK_SECRET``, or a
random one made at start; it is registered with ``setWebhook`` so Telegram
sends it in ``X-Telegram-Bot-Api-Secret-Token``, and a request without it
(or with another one) is answered 403 and logged (without the secret) —
nobody who merely knows the URL can post updates as any user. Translation lives in :mod:`bot.telegram_inbound` (update -> event) and
:mod:`bot.telegram_render` (reply -> message); this module only runs the
client: it downloads voice notes and photos (refusing files over
``TELEGRAM_MAX_DOWNLOAD_BYTES`` before downloading them), drops updates
delivered twice, answers every callback query, and publishes the command
menu in English and Chinese. Whatever a message or a press causes is handled
with it as the message being answered, so private replies in a group land in
its reply thread (:mod:`bot.telegram_render`).

The token is kept out of logs by :func:`bot.redact.install_token_redaction`.
A token the Bot API rejects (401) or a Bot API that is not found (404) stops
the start with one line for the operator (:mod:`bot.startup_errors`), never the token.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import tornado.httpserver
import tornado.web
from cachetools import LRUCache
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.adapter import EventHandler
from bot.redact import add_secret, install_token_redaction
from bot.settings import Settings
from bot.startup_errors import BadInputError, DependencyError, reaching
from bot.telegram_inbound import PLATFORM, Attachment, from_callback, from_message
from bot.telegram_render import TelegramMessenger
from engine.errors import AudioTooLargeError, ImageTooLargeError, UserError
from handlers.conversation.routes import COMMANDS
from handlers.events import Event, PhotoMessage, Rejected, VoiceMessage
from handlers.i18n import t

log = logging.getLogger(__name__)

#: Update types the bot asks Telegram for: member changes too (sent only where the bot is an administrator),
#: so a demoted administrator loses the group's settings at once.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.CHAT_MEMBER]
#: Updates handled at once (a voice note is transcribed while others are answered).
CONCURRENT_UPDATES = 16
#: Retries of a request that got "429 Too Many Requests" (after waiting ``retry_after``).
RATE_LIMIT_RETRIES = 3
#: A callback query still unanswered after this many seconds is answered empty (stops the client's spinner).
ANSWER_WITHIN = 5.0
#: How many recent update / callback query ids are remembered to drop redeliveries.
SEEN_IDS = 2048
#: UI languages the "/" menu is published in -> the language code Telegram takes for it (two letters only, so no
#: "zh-Hant"; None: the default menu).
MENU_LANGUAGES = {"en": None, "zh-Hans": "zh"}
#: One byte count per "MB" as the conversation's messages count them.

def _without_credentials(url: str) -> str:
    """``url`` without user, password, query or fragment (what an error message may show of it)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


#: The header Telegram sends the webhook secret in.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: What setWebhook accepts as ``secret_token``: 1-256 characters A-Z, a-z, 0-9, _ and -.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def new_webhook_secret() -> str:
    """A random webhook secret: 256 bits, URL-safe base64 (only characters :data:`SECRET_PATTERN` allows)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Webhook:
    """Where Telegram posts updates (``url``), where our server listens for them, and the secret it must send."""

    url: str
    listen: str = "0.0.0.0"
    port: int = 8443
    secret: str = field(default_factory=new_webhook_secret, repr=False)

    @property
    def path(self) -> str:
        """The URL's path, which the server answers (with or without a trailing slash)."""
        return urlsplit(self.url).path.rstrip("/")


#: ``receive(secret header or None, body, remote address) -> HTTP status``.
Receiver = Callable[[str | None, bytes, str | None], Awaitable[int]]


class _WebhookHandler(tornado.web.RequestHandler):
    """POSTs to the webhook path; what to answer is the receiver's."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, receive: Receiver) -> None:
        self._receive = receive

    async def post(self) -> None:
        request = self.request
        self.set_status(await self._receive(request.headers.get(SECRET_HEADER), request.body, request.remote_ip))


class TelegramAdapter:
    """Telegram <-> the conversation (see the module docstring)."""

    platform = PLATFORM

    def __init__(
        self,
        application: Application,
        *,
        max_download_bytes: int,
        webhook: Webhook | None = None,
        api_base_url: str = "TELEGRAM_API_BASE_URL",
    ) -> None:
        self.application = application
        self.api_base_url = api_base_url
        self.max_download_bytes = max_download_bytes
        self.webhook = webhook
        self._messenger = TelegramMessenger(application.bot)
        self._on_event: EventHandler | None = None
        self._seen: LRUCache[Hashable, None] = LRUCache(maxsize=SEEN_IDS)
        self._webhook_server: tornado.httpserver.HTTPServer | None = None
        # Not blocking: a long transcription must not hold up button presses or /cancel behind it.
        application.add_handler(CallbackQueryHandler(self._on_callback, block=False))
        application.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message, block=False))
        application.add_handler(ChatMemberHandler(self._on_chat_member, ChatMemberHandler.CHAT_MEMBER))
        application.add_error_handler(self._on_error)

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramAdapter:
        """The adapter for ``TELEGRAM_*`` settings (redacts the token from logs before anything is built)."""
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        token = settings.telegram_bot_token.get_secret_value()
        install_token_redaction(token)
        application = (
            Application.builder()
            .token(token)
            .base_url(settings.telegram_api_base_url)
            .base_file_url(settings.telegram_file_base_url)
            .local_mode(settings.telegram_local_mode)
            .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
            .concurrent_updates(CONCURRENT_UPDATES)
            .build()
        )
        webhook = None
        if settings.telegram_webhook_url:
            secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
            if secret and not SECRET_PATTERN.fullmatch(secret):
                raise BadInputError(
                    "TELEGRAM_WEBHOOK_SECRET: Telegram accepts 1-256 characters A-Z, a-z, 0-9, _ and - (or leave it unset)"
                )
            webhook = Webhook(
                settings.telegram_webhook_url,
                settings.telegram_webhook_listen,
                settings.telegram_webhook_port,
                secret or new_webhook_secret(),
            )
            add_secret(webhook.secret)
        return cls(
            application,
            max_download_bytes=settings.telegram_max_download_bytes,
            webhook=webhook,
            api_base_url=settings.telegram_api_base_url,
        )

    @property
    def messenger(self) -> TelegramMessenger:
        """Renders the conversation's replies in Telegram chats."""
        return self._messenger

    async def start(self, on_event: EventHandler) -> None:
        """Log in (getMe), publish the command menu, then poll or listen for the webhook."""
        self._on_event = on_event
        await self._log_in()
        await self._publish_commands()
        await self.application.start()
        updater = self.application.updater
        assert updater is not None
        if self.webhook is None:
            await updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        else:
            await self._start_webhook(self.webhook)
        log.info("Telegram bot @%s is %s", self.application.bot.username, "polling" if self.webhook is None else "on its webhook")

    async def _log_in(self) -> None:
        """``initialize`` (getMe); a refusal becomes one operator-readable line without the token.

        python-telegram-bot raises ``InvalidToken`` for both 401 (a well-formed token Telegram
        does not know: a bad setting, exit 2) and 404 (nothing at that URL: a wrong base URL, or
        a malformed token; the Bot API is not where the setting says, exit 3); the cause's
        message says which. Unreachable is the caller's (:func:`bot.startup_errors.reaching`).
        """
        try:
            await self.application.initialize()
        except InvalidToken as error:
            cause = str(error.__cause__ or error)
            if "not found" in cause.lower() or "404" in cause:
                raise DependencyError(
                    f"Telegram Bot API not found at {_without_credentials(self.api_base_url)} (TELEGRAM_API_BASE_URL):"
                    " 404 Not Found — check the URL (a malformed TELEGRAM_BOT_TOKEN gets this answer too)"
                ) from None
            raise BadInputError("Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized) — check the token") from None

    async def _start_webhook(self, webhook: Webhook) -> None:
        """Listen on the webhook address, then register the URL and the secret with setWebhook.

        Our own small server rather than ``Updater.start_webhook``: python-telegram-bot's refuses a
        request without the secret too, but only says so at DEBUG level (with the token presented).
        """
        app = tornado.web.Application(
            [(rf"{re.escape(webhook.path)}/?", _WebhookHandler, {"receive": self._receive})],
            log_function=lambda handler: None,  # _receive logs what matters, never a secret
        )
        self._webhook_server = tornado.httpserver.HTTPServer(app)
        # Said here: the start's own reaching() (bot.app) would blame the Bot API for a port that is taken.
        where = f"{webhook.listen}:{webhook.port} for Telegram's webhook"
        with reaching(where, "TELEGRAM_WEBHOOK_LISTEN, TELEGRAM_WEBHOOK_PORT", verb="listen on"):
            self._webhook_server.listen(webhook.port, address=webhook.listen)
        await self.application.bot.set_webhook(webhook.url, allowed_updates=ALLOWED_UPDATES, secret_token=webhook.secret)

    async def _receive(self, secret: str | None, body: bytes, remote: str | None) -> int:
        """One webhook request: 403 without the right secret, 400 when it is not an update, else queued (200)."""
        assert self.webhook is not None
        if secret is None or not hmac.compare_digest(secret.encode(), self.webhook.secret.encode()):
            log.warning(
                "refused a webhook request from %s: %s %s header (403)", remote, "wrong" if secret else "no", SECRET_HEADER
            )
            return 403
        try:
            update = Update.de_json(json.loads(body), self.application.bot)
        except Exception as error:  # whatever a malformed body makes the parser raise
            log.warning("ignored a webhook request from %s that is not an update (%s)", remote, type(error).__name__)
            return 400
        if update is None:
            return 400
        await self.application.update_queue.put(update)
        return 200

    async def stop(self) -> None:
        """Stop fetching updates, finish the ones being handled, close the connections."""
        if self._webhook_server is not None:
            self._webhook_server.stop()
            await self._webhook_server.close_all_connections()
            self._webhook_server = None
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    # --- updates ----------------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message is None or not self._first_time(("update", update.update_id)):
            return
        inbound = from_message(update.message, self.application.bot.bot)
        event = self._attachment_event(inbound) if isinstance(inbound, Attachment) else inbound
        if event is not None:
            with self._messenger.replying_to(update.message.chat_id, update.message.message_id):
                await self._deliver(event)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not self._first_time(("update", update.update_id)) or not self._first_time(("query", query.id)):
            return
        on = (query.message.chat.id, query.message.message_id) if query.message is not None else None
        async with self._messenger.answering(query.id, within=ANSWER_WITHIN, message=on):
            press = from_callback(query)
            if press is not None:
                await self._deliver(press)

    async def _on_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Someone's status in a group changed: what the messenger remembers of its administrators follows."""
        changed = update.chat_member
        if changed is not None:
            new = changed.new_chat_member
            self._messenger.member_changed(changed.chat.id, new.user.id, new.status)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("handling a Telegram update failed", exc_info=context.error)

    async def _deliver(self, event: Event) -> None:
        assert self._on_event is not None, "start() was not called"
        await self._on_event(event)

    def _first_time(self, key: Hashable) -> bool:
        """False for an update or callback query seen before (Telegram may deliver one twice)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        return True

    # --- files ------------------------------------------------------------------

    def _attachment_event(self, attachment: Attachment) -> Event:
        """A voice/photo event whose download waits until the conversation admits it, or why not (size from the update)."""
        if attachment.file_size is not None and attachment.file_size > self.max_download_bytes:
            return Rejected(attachment.origin, self._too_big(attachment, attachment.file_size))

        async def fetch() -> bytes:
            return await self._download(attachment)

        if attachment.kind == "photo":
            return PhotoMessage(attachment.origin, fetch, attachment.caption, replying=attachment.replying)
        photo = attachment.photo
        if photo is None:
            return VoiceMessage(attachment.origin, fetch)

        async def fetch_photo() -> bytes:  # the photo the voice note replies to
            assert photo is not None
            return await self._download(photo)

        return VoiceMessage(attachment.origin, fetch, photo=fetch_photo)

    async def _download(self, attachment: Attachment) -> bytes:
        """The file's bytes (size checked again from getFile); raises the ``UserError`` to show otherwise."""
        try:
            file = await self.application.bot.get_file(attachment.file_id)
            if file.file_size is not None and file.file_size > self.max_download_bytes:
                raise self._too_big(attachment, file.file_size)
            return bytes(await file.download_as_bytearray())
        except BadRequest as error:
            if "too big" in error.message.lower():
                raise self._too_big(attachment, attachment.file_size or self.max_download_bytes + 1) from None
            log.warning("could not download a %s: %s", attachment.kind, error.message)
            raise UserError(detail=error.message) from None
        except TelegramError as error:
            log.warning("could not download a %s: %s", attachment.kind, error)
            raise UserError(detail=str(error)) from None

    def _too_big(self, attachment: Attachment, size: int) -> UserError:
        error = AudioTooLargeError if attachment.kind == "voice" else ImageTooLargeError
        return error.of(size, self.max_download_bytes)

    async def _publish_commands(self) -> None:
        """The "/" menu in English (default) and Chinese; a failure only costs the menu.

        setMyCommands takes only two-letter ISO 639-1 language codes, so there is no menu for zh-Hant:
        "zh" (the zh-Hans texts) is what every Chinese client gets; the bot's answers still follow the
        user's locale or /settings, Traditional included.
        """
        bot = self.application.bot
        try:
            for lang, code in MENU_LANGUAGES.items():
                commands = [BotCommand(route.name, t(route.description, lang)) for route in COMMANDS]
                await bot.set_my_commands(commands, language_code=code)
        except TelegramError as error:
            log.warning("could not publish the command menu: %s", error)
