"""Neutral replies -> the studio page: the :class:`WebMessenger`.

Every reply becomes one JSON message on the user's WebSockets (every tab of
that browser), keyed by a message reference ``w<n>`` so later edits replace
it in place:

``{"type": "message", "op": "send"|"edit", "ref", "kind", "text", "buttons": [[{"label", "data"}]],
"image", "download", "prefill", "request_id", "title"}``

``image`` is the URL of the reply's picture (``/img/<random id>``, served
only to the browser it was made for; ``download`` adds ``?download=1``). An
edit without a picture keeps the one the message shows (a progress preview,
then the sketch). Texts travel as plain strings and the page sets them with
``textContent``: nothing a user typed is ever parsed as HTML.

``notify`` is ``{"type": "notify", "text"}`` (a toast). Each browser's last
:data:`FEED_LIMIT` messages are kept (pictures up to :data:`IMAGE_CACHE_BYTES`
for everyone together, oldest dropped first), so a reloaded page or a second
tab shows the conversation as it is; a restart forgets them (the gallery
reads finished pictures from the database).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from handlers.events import Origin
from handlers.replies import Reply

log = logging.getLogger(__name__)

#: Messages remembered per browser (replayed to a new tab / a reloaded page).
FEED_LIMIT = 60
#: Bytes of pictures kept in memory for every browser together (oldest dropped first).
IMAGE_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class StoredImage:
    """A picture one browser may fetch."""

    user: str
    data: bytes
    content_type: str
    filename: str


def content_type_of(data: bytes) -> tuple[str, str]:
    """``(MIME type, file extension)`` of a picture the conversation sent (PNG, or JPEG for previews)."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", "jpg"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "image/png", "png"


class WebMessenger:
    """The :class:`handlers.replies.Messenger` for the studio's browsers (see the module docstring)."""

    def __init__(self, *, feed_limit: int = FEED_LIMIT, image_cache_bytes: int = IMAGE_CACHE_BYTES) -> None:
        self._feed_limit = feed_limit
        self._image_cache_bytes = image_cache_bytes
        self._numbers = itertools.count(1)
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        #: user -> ref -> the message as the page shows it now.
        self._feeds: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._owners: dict[str, str] = {}
        self._images: OrderedDict[str, StoredImage] = OrderedDict()
        self._image_bytes = 0

    # --- the Messenger protocol ---------------------------------------------------------

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Show ``reply`` as a new message in every tab of the origin's browser; returns its reference."""
        user = origin.user_id
        ref = f"w{next(self._numbers)}"
        message = self._render(user, ref, reply, None)
        feed = self._feeds.setdefault(user, OrderedDict())
        feed[ref] = message
        self._owners[ref] = user
        while len(feed) > self._feed_limit:
            old, _ = feed.popitem(last=False)
            self._owners.pop(old, None)
        await self._broadcast(user, {"type": "message", "op": "send", **message})
        return ref

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Replace message ``message_ref`` (text, buttons, and the picture when the reply has one).

        Raises ``LookupError`` for a message this browser does not have (forgotten, or
        another browser's): the conversation then posts the reply as a new message.
        """
        user = origin.user_id
        feed = self._feeds.get(user, OrderedDict())
        if self._owners.get(message_ref) != user or message_ref not in feed:
            raise LookupError(f"no message {message_ref!r} in this browser")
        message = self._render(user, message_ref, reply, feed[message_ref])
        feed[message_ref] = message
        await self._broadcast(user, {"type": "message", "op": "edit", **message})

    async def notify(self, origin: Origin, text: str) -> None:
        """A toast in every tab of the origin's browser."""
        await self._broadcast(origin.user_id, {"type": "notify", "text": text})

    async def is_admin(self, origin: Origin) -> bool:
        """Always: each browser is a private chat of its own (``private`` replies need nothing special here either)."""
        return True

    # --- what the adapter asks ------------------------------------------------------------

    def owns(self, user: str, message_ref: str) -> bool:
        """Whether ``message_ref`` is one of ``user``'s messages."""
        return self._owners.get(message_ref) == user

    def feed(self, user: str) -> list[dict[str, Any]]:
        """``user``'s remembered messages, oldest first (their pictures may have been dropped since)."""
        return list(self._feeds.get(user, {}).values())

    def image(self, user: str, image_id: str) -> StoredImage | None:
        """Picture ``image_id`` when it belongs to ``user`` (None otherwise, or once it was dropped)."""
        stored = self._images.get(image_id)
        if stored is None or stored.user != user:
            return None
        self._images.move_to_end(image_id)
        return stored

    def connect(self, user: str, socket: web.WebSocketResponse) -> None:
        """Deliver ``user``'s messages to ``socket`` from now on."""
        self._sockets.setdefault(user, set()).add(socket)

    def disconnect(self, user: str, socket: web.WebSocketResponse) -> None:
        """Stop delivering to ``socket``."""
        sockets = self._sockets.get(user)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[user]

    def sockets(self) -> list[web.WebSocketResponse]:
        """Every connected socket (to close them at shutdown)."""
        return [socket for sockets in self._sockets.values() for socket in sockets]

    # --- rendering ------------------------------------------------------------------------

    def _render(self, user: str, ref: str, reply: Reply, shown: dict[str, Any] | None) -> dict[str, Any]:
        image = download = None
        if reply.image_png is not None:
            image_id = self._store_image(user, reply)
            image, download = f"/img/{image_id}", f"/img/{image_id}?download=1"
        elif shown is not None:  # an edit without a picture keeps the one shown
            image, download = shown.get("image"), shown.get("download")
        return {
            "ref": ref,
            "kind": reply.kind,
            "text": reply.text,
            "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in reply.buttons],
            "image": image,
            # Only finished pictures are offered for download (a preview is a passing sketch).
            "download": download if reply.kind == "image" or (shown is not None and shown.get("kind") == "image") else None,
            "prefill": reply.prefill,
            "request_id": reply.request_id,
            "title": reply.title,
            "spoiler": reply.spoiler,
            # The studio's user is its operator: a missing model's fix is shown to them, not hidden in the terminal.
            "fix": reply.fix,
        }

    def _store_image(self, user: str, reply: Reply) -> str:
        assert reply.image_png is not None
        content_type, extension = content_type_of(reply.image_png)
        stem = reply.file_name or "voice2anime"
        image_id = secrets.token_urlsafe(12)
        self._images[image_id] = StoredImage(user, reply.image_png, content_type, f"{stem}.{extension}")
        self._image_bytes += len(reply.image_png)
        while self._image_bytes > self._image_cache_bytes and len(self._images) > 1:
            _, dropped = self._images.popitem(last=False)
            self._image_bytes -= len(dropped.data)
        return image_id

    async def _broadcast(self, user: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to every open tab of ``user`` (a tab that went away is skipped)."""
        sockets = list(self._sockets.get(user, ()))
        if not sockets:
            return
        text = json.dumps(payload, ensure_ascii=False)
        results = await asyncio.gather(*(socket.send_str(text) for socket in sockets), return_exceptions=True)
        for socket, result in zip(sockets, results, strict=True):
            if isinstance(result, Exception):
                log.debug("a studio tab went away: %s", result)
                self.disconnect(user, socket)
