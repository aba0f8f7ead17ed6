"""A fake Telegram Bot API server for end-to-end adapter tests (pytest plugin module).

Runs on 127.0.0.1 with aiohttp and behaves like Telegram where the adapter
can tell: ``{"ok": true, "result": ...}`` envelopes, ``{"ok": false,
"error_code", "description"[, "parameters": {"retry_after"}]}`` errors
(401 for a token it does not know, 404 for any path that is not
``/bot<token>/<method>``, as with a wrong base URL),
``getUpdates`` long polling with ``offset`` confirmation, ``getFile`` +
downloads at ``/file/bot<token>/<path>``, messages with ids per chat, "message
is not modified" on identical edits, text edits only of text messages and
caption/media edits (``editMessageCaption``, ``editMessageMedia`` with an
uploaded photo) only of photo/document messages, ``deleteMessage``, one
answer per callback query, replies (``reply_parameters``: the message carries
``reply_to_message``), ``getChatMember`` (everyone is a ``member`` of a group
unless :meth:`~FakeTelegram.set_status` says otherwise; the chat's creator
and administrators as Telegram describes them), the
20 MB download limit, and text as Telegram shows it: plain unless the call
sets ``parse_mode``, with which Markdown ``[label](url)`` / HTML ``<a href>``
become ``text_link`` entities (clickable text hiding its URL), ``sendVoice``
(the audio kept in :attr:`FakeTelegram.voices`; ``VOICE_MESSAGES_FORBIDDEN`` for
a chat in :attr:`FakeTelegram.no_voice`, like a user who allows nobody to
send them voice messages). Every API call is recorded (:attr:`FakeTelegram.calls`).

Tests script it: :meth:`~FakeTelegram.push` updates built with
:meth:`~FakeTelegram.message` / :meth:`~FakeTelegram.press`,
:meth:`~FakeTelegram.add_file` for downloadable files,
:meth:`~FakeTelegram.fail_next` to inject errors (e.g. a 429), and
:meth:`~FakeTelegram.wait_for` to wait for the bot's reaction.

Fixture: ``fake_telegram`` (a started server, closed afterwards).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

TOKEN = "123456789:AAHfake-Token_for_the_test_suite_0123"
BOT = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Voice2Anime",
    "username": "voice2anime_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
DOWNLOAD_LIMIT = 20 * 1024 * 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_MENTION = re.compile(r"@[A-Za-z0-9_]{3,32}")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HTML_LINK = re.compile(r"<a\s+href=\"([^\"]*)\"\s*>(.*?)</a>", re.S)


class ApiError(Exception):
    """An error response of the fake API."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class ApiCall:
    """One request to the Bot API: form fields as sent (strings), uploaded files, status code returned."""

    method: str
    params: dict[str, str]
    files: dict[str, bytes]
    at: float
    status: int = 200

    def json(self, name: str) -> Any:
        """A JSON-encoded field (``reply_markup``), or None when absent."""
        return json.loads(self.params[name]) if name in self.params else None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def callback_data(self) -> list[str]:
        """Every ``callback_data`` of the inline keyboard sent with this call."""
        markup = self.json("reply_markup") or {}
        return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row if "callback_data" in b]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram computes: a leading bot command and @mentions (UTF-16 offsets)."""
    entities = []
    command = _COMMAND.match(text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": _utf16_len(command.group(0))})
    for match in _MENTION.finditer(text):
        if command and match.start() < command.end():
            continue
        entities.append({"type": "mention", "offset": _utf16_len(text[: match.start()]), "length": _utf16_len(match.group(0))})
    return entities


def _parsed(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """``text`` as Telegram shows it and its ``text_link`` entities: without ``parse_mode`` exactly as sent."""
    if not parse_mode:
        return text, []
    html = parse_mode.lower() == "html"
    pattern, label_group, url_group = (_HTML_LINK, 2, 1) if html else (_MARKDOWN_LINK, 1, 2)
    shown, entities, position = "", [], 0
    for match in pattern.finditer(text):
        shown += text[position : match.start()]
        label = match.group(label_group)
        entities.append({"type": "text_link", "offset": _utf16_len(shown), "length": _utf16_len(label), "url": match.group(url_group)})
        shown += label
        position = match.end()
    return shown + text[position:], entities


@dataclass
class FakeTelegram:
    """The server; see the module docstring."""

    token: str = TOKEN
    calls: list[ApiCall] = field(default_factory=list)
    #: Messages the bot sent, by (chat id, message id), as returned to it (edits applied).
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    #: Reject every sendPhoto with PHOTO_INVALID_DIMENSIONS (to test the document fallback).
    reject_photos: bool = False
    #: The picture each photo message shows now (sendPhoto, then editMessageMedia), by (chat id, message id).
    pictures: dict[tuple[int, int], bytes] = field(default_factory=dict)
    #: Messages the bot deleted, as they were.
    deleted: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    #: Chat member statuses by (chat id, user id): "creator", "administrator", "member" (the default), "left" ...
    statuses: dict[tuple[int, int], str] = field(default_factory=dict)
    #: The audio of each voice message the bot sent, by (chat id, message id).
    voices: dict[tuple[int, int], bytes] = field(default_factory=dict)
    #: Private chats whose user takes no voice messages (sendVoice fails with VOICE_MESSAGES_FORBIDDEN).
    no_voice: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._offset = 0
        self._new_update = asyncio.Condition()
        self._closing = asyncio.Event()
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        #: Messages users sent (made by :meth:`message`), by (chat id, message id): what a bot message can reply to.
        self._received: dict[tuple[int, int], dict[str, Any]] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._files: dict[str, tuple[str, bytes, int]] = {}
        self._failures: dict[str, list[ApiError]] = {}
        self._answered: set[str] = set()
        self._update_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/{path:.*}", self._not_found)  # e.g. a wrong TELEGRAM_API_BASE_URL
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        self._closing.set()
        async with self._new_update:
            self._new_update.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What to give as the bot's ``base_url`` (the token is appended)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        """What to give as the bot's ``base_file_url``."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # --- scripting ----------------------------------------------------------------

    def add_file(self, data: bytes, *, kind: str = "voice", ext: str = "oga") -> dict[str, Any]:
        """Make ``data`` downloadable; returns the file object (``file_id``, ``file_unique_id``, ``file_size``)."""
        n = next(self._ids)
        file_id = f"{kind}-file-{n}"
        self._files[file_id] = (f"{kind}/file_{n}.{ext}", data, len(data))
        return {"file_id": file_id, "file_unique_id": f"u{n}", "file_size": len(data)}

    def set_status(self, chat: dict[str, Any], member: dict[str, Any], status: str) -> None:
        """``member``'s status in ``chat`` as getChatMember reports it ("creator", "administrator", "member" ...)."""
        self._chats[chat["id"]] = chat
        self._users[member["id"]] = member
        self.statuses[(chat["id"], member["id"])] = status

    def member_update(self, chat: dict[str, Any], member: dict[str, Any], status: str, *, by: dict[str, Any]) -> dict[str, Any]:
        """A ``chat_member`` update: ``by`` changed ``member``'s status in ``chat`` to ``status`` (getChatMember says so too).

        Telegram sends these only to a bot that administers the chat, and only when asked for them (allowed_updates).
        """
        old = self.statuses.get((chat["id"], member["id"]), "member")
        self.set_status(chat, member, status)
        rights = {  # what an administrator's entry carries (all off: only the status matters here)
            "can_be_edited": False, "is_anonymous": False, "can_manage_chat": False, "can_delete_messages": False,
            "can_manage_video_chats": False, "can_restrict_members": False, "can_promote_members": False,
            "can_change_info": False, "can_invite_users": False, "can_post_stories": False, "can_edit_stories": False,
            "can_delete_stories": False,
        }

        def entry(state: str) -> dict[str, Any]:
            return {"user": member, "status": state, **(rights if state == "administrator" else {})}

        changed = {"chat": chat, "from": by, "date": int(time.time()), "old_chat_member": entry(old), "new_chat_member": entry(status)}
        return {"update_id": next(self._update_ids), "chat_member": changed}

    def fail_next(self, method: str, code: int, description: str, *, retry_after: int | None = None) -> None:
        """Answer the next call of ``method`` with an error (queued; one error per call)."""
        self._failures.setdefault(method, []).append(ApiError(code, description, retry_after))

    async def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates for getUpdates (the same dict twice = the same update delivered twice)."""
        async with self._new_update:
            self._updates.extend(updates)
            self._new_update.notify_all()

    def message(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        *,
        text: str | None = None,
        caption: str | None = None,
        reply_to: dict[str, Any] | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        """A new-message update (``voice=``, ``audio=``, ``photo=``, ``document=`` ...), with Telegram's entities."""
        self._chats[chat["id"]] = chat
        self._users[sender["id"]] = sender
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }
        if text is not None:
            message["text"] = text
            if entities := _entities(text):
                message["entities"] = entities
        if caption is not None:
            message["caption"] = caption
            if entities := _entities(caption):
                message["caption_entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self._received[(chat["id"], message["message_id"])] = message
        return {"update_id": next(self._update_ids), "message": message}

    def press(self, sender: dict[str, Any], on: dict[str, Any], data: str, *, query_id: str | None = None) -> dict[str, Any]:
        """A callback-query update: ``sender`` pressed the button with ``data`` on the bot's message ``on``."""
        self._users[sender["id"]] = sender
        query = {
            "id": query_id or f"cq{next(self._ids)}",
            "from": sender,
            "message": on,
            "chat_instance": f"ci{on['chat']['id']}",
            "data": data,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    # --- inspection -----------------------------------------------------------------

    def called(self, method: str, **params: str) -> list[ApiCall]:
        """Successful calls of ``method`` whose fields include ``params``."""
        return [c for c in self.calls if c.method == method and c.ok and all(c.params.get(k) == v for k, v in params.items())]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 90.0) -> Any:
        """Poll ``check`` until it returns something truthy (returned)."""
        async with asyncio.timeout(timeout):
            while not (result := check()):
                await asyncio.sleep(0.02)
        return result

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in ``chat_id``, oldest first, as they are now."""
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]

    # --- HTTP -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        call = ApiCall(method, params, files, time.monotonic())
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if failures := self._failures.get(method):
                raise failures.pop(0)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params, files)
        except ApiError as error:
            call.status = error.code
            return web.json_response(error.payload(), status=error.code)
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        for path, data, _ in self._files.values():
            if path == request.match_info["path"]:
                self.calls.append(ApiCall("download", {"path": path}, {}, time.monotonic()))
                return web.Response(body=data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _not_found(self, request: web.Request) -> web.Response:
        """What the Bot API answers for a path that is not ``/bot<token>/<method>``."""
        self.calls.append(ApiCall(request.path, {}, {}, time.monotonic(), status=404))
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[dict[str, str], dict[str, bytes]]:
        params: dict[str, str] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            body = await request.json()
            params |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
        elif request.can_read_body:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = value.file.read()
                else:
                    params[name] = str(value)
        for name, value in list(params.items()):  # "attach://<part>" references an uploaded part
            if value.startswith("attach://") and value[9:] in files:
                files[name] = files[value[9:]]
        return params, files

    # --- methods --------------------------------------------------------------------

    async def _m_getMe(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        return BOT

    async def _m_deleteWebhook(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        return True

    async def _m_setWebhook(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        return True

    async def _m_setMyCommands(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        return True

    async def _m_sendChatAction(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        self._chat(params)
        return True

    async def _m_getUpdates(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset", 0))
        timeout = float(params.get("timeout", 0))
        limit = int(params.get("limit", 100))
        async with self._new_update:
            if offset:
                self._offset = max(self._offset, offset)
                self._updates = [u for u in self._updates if u["update_id"] >= self._offset]
            if not self._updates and timeout and not self._closing.is_set():
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
            return self._updates[:limit]

    async def _m_getFile(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        file_id = params.get("file_id", "")
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, _, size = self._files[file_id]
        if size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": size, "file_path": path}

    async def _m_sendMessage(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        text = params.get("text", "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._new_message(params, text=text)

    async def _m_sendPhoto(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        photo = files.get("photo")
        if photo is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if self.reject_photos:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        message = self._new_message(params, photo=self._photo_sizes(photo), caption=params.get("caption"))
        self.pictures[(message["chat"]["id"], message["message_id"])] = photo
        return message

    async def _m_sendDocument(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        if "document" not in files:
            raise ApiError(400, "Bad Request: there is no document in the request")
        n = next(self._ids)
        document = {"file_id": f"doc-{n}", "file_unique_id": f"d{n}", "file_size": len(files["document"])}
        return self._new_message(params, document=document, caption=params.get("caption"))

    async def _m_sendVoice(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        audio = files.get("voice")
        if audio is None:
            raise ApiError(400, "Bad Request: there is no voice in the request")
        if int(params.get("chat_id", 0)) in self.no_voice:
            raise ApiError(400, "Bad Request: VOICE_MESSAGES_FORBIDDEN")
        n = next(self._ids)
        voice = {"file_id": f"voice-{n}", "file_unique_id": f"v{n}", "duration": int(params.get("duration", 0)),
                 "mime_type": "audio/ogg", "file_size": len(audio)}
        message = self._new_message(params, voice=voice, caption=params.get("caption"))
        self.voices[(message["chat"]["id"], message["message_id"])] = audio
        return message

    async def _m_editMessageText(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        markup = json.loads(params["reply_markup"]) if "reply_markup" in params else None
        text, entities = _parsed(params.get("text", ""), params.get("parse_mode"))
        if message["text"] == text and message.get("entities", []) == entities and message.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        message["text"] = text
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        message["edit_date"] = int(time.time())
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return message

    async def _m_editMessageCaption(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        _, message = self._to_edit(params)
        if "photo" not in message and "document" not in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        markup = json.loads(params["reply_markup"]) if "reply_markup" in params else None
        caption, entities = _parsed(params.get("caption", ""), params.get("parse_mode"))
        if message.get("caption", "") == caption and message.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        self._set_caption(message, caption, entities, markup)
        return message

    async def _m_editMessageMedia(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        key, message = self._to_edit(params)
        media = json.loads(params.get("media", "{}"))
        source = str(media.get("media", ""))
        photo = files.get(source[len("attach://") :]) if source.startswith("attach://") else None
        if media.get("type") != "photo" or photo is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        files["media"] = photo  # the call's record: the uploaded photo under the field that references it
        if "photo" not in message and "document" not in message:
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        message.pop("document", None)
        message["photo"] = self._photo_sizes(photo)
        markup = json.loads(params["reply_markup"]) if "reply_markup" in params else None
        self._set_caption(message, *_parsed(str(media.get("caption", "")), media.get("parse_mode")), markup)
        self.pictures[key] = photo
        return message

    async def _m_deleteMessage(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        if key not in self.messages:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.deleted[key] = self.messages.pop(key)
        self.pictures.pop(key, None)
        return True

    async def _m_getChatMember(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        chat = self._chat(params)
        user_id = int(params.get("user_id", 0))
        member = self._users.get(user_id)
        if member is None:
            raise ApiError(400, "Bad Request: user not found")
        default = "creator" if chat["type"] == "private" and chat["id"] == user_id else "member"
        status = self.statuses.get((chat["id"], user_id), default)
        answer: dict[str, Any] = {"status": status, "user": member}
        if status == "creator":
            answer |= {"is_anonymous": False}
        elif status == "administrator":
            rights = (
                "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories",
            )
            answer |= {"can_be_edited": False, "is_anonymous": False, "can_promote_members": False} | dict.fromkeys(rights, True)
        return answer

    async def _m_answerCallbackQuery(self, params: dict[str, str], files: dict[str, bytes]) -> Any:
        query_id = params.get("callback_query_id", "")
        if query_id in self._answered:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._answered.add(query_id)
        return True

    # --- helpers --------------------------------------------------------------------

    def _to_edit(self, params: dict[str, str]) -> tuple[tuple[int, int], dict[str, Any]]:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return key, message

    def _photo_sizes(self, photo: bytes) -> list[dict[str, Any]]:
        n = next(self._ids)
        return [{"file_id": f"photo-{n}", "file_unique_id": f"p{n}", "width": 64, "height": 64, "file_size": len(photo)}]

    @staticmethod
    def _set_caption(message: dict[str, Any], caption: str, entities: list[dict[str, Any]], markup: Any) -> None:
        for name, value in (("caption", caption), ("caption_entities", entities), ("reply_markup", markup)):
            if value:
                message[name] = value
            else:
                message.pop(name, None)
        message["edit_date"] = int(time.time())

    def _chat(self, params: dict[str, str]) -> dict[str, Any]:
        chat = self._chats.get(int(params.get("chat_id", 0)))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _new_message(self, params: dict[str, str], **content: Any) -> dict[str, Any]:
        chat = self._chat(params)
        message = {"message_id": self._next_message_id(chat["id"]), "date": int(time.time()), "chat": chat, "from": BOT}
        message |= {k: v for k, v in content.items() if v is not None}
        for name, entities_name in (("text", "entities"), ("caption", "caption_entities")):
            if name in message:
                message[name], entities = _parsed(message[name], params.get("parse_mode"))
                if entities:
                    message[entities_name] = entities
        markup = json.loads(params.get("reply_markup", "{}"))
        if "inline_keyboard" in markup:  # like Telegram, a message only carries an inline keyboard
            message["reply_markup"] = markup
        reply = json.loads(params.get("reply_parameters", "null"))
        if reply is not None:
            key = (chat["id"], int(reply["message_id"]))
            replied = self.messages.get(key) or self._received.get(key)
            if replied is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
            if replied is not None:
                message["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
        self.messages[(chat["id"], message["message_id"])] = message
        return message


def user(user_id: int = 111, first_name: str = "Alice", language_code: str | None = "en") -> dict[str, Any]:
    """A Telegram user object."""
    return {"id": user_id, "is_bot": False, "first_name": first_name} | (
        {"language_code": language_code} if language_code else {}
    )


def private_chat(of: dict[str, Any]) -> dict[str, Any]:
    """The private chat with ``of``."""
    return {"id": of["id"], "type": "private", "first_name": of["first_name"]}


def group_chat(chat_id: int = -1001234567890, title: str = "Anime fans") -> dict[str, Any]:
    """A supergroup."""
    return {"id": chat_id, "type": "supergroup", "title": title}


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A running fake Bot API server on 127.0.0.1 (closed after the test)."""
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()
