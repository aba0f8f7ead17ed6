"""Neutral replies -> the studio page: the :class:`WebMessenger`.

Every reply becomes one JSON message on the user's WebSockets (every tab of
that browser), keyed by a message reference ``w<run>-<n>`` (``run``: random per
messenger, so a page never takes a message of the studio's next run for one it
knew) so later edits replace it in place:

``{"type": "message", "op": "send"|"edit", "ref", "kind", "text", "buttons": [[{"label", "data"}]],
"image", "download", "prefill", "request_id", "title", "tiles": [{"image", "download", "keep"}]}``
(and, in the feed a page gets when it connects, ``"live": true`` on a prompt still waiting for its words).

``tiles`` are the pictures of a variations grid, each with the payload of
the button that keeps it (the page shows four tiles instead of the grid).

``image`` is the URL of the reply's picture (``/img/<random id>``, served
only to the browser it was made for; ``download`` adds ``?download=1``). An
edit without a picture keeps the one the message shows (a progress preview,
then the sketch). Texts travel as plain strings and the page sets them with
``textContent``: nothing a user typed is ever parsed as HTML.

The user's own photo or sketch is kept too, as a message of kind ``mine`` whose
``image`` is that picture (:meth:`WebMessenger.keep_mine`; a voice note is not).

``notify`` is ``{"type": "notify", "text"}`` (a toast). A voice note is
``{"type": "voice", "request_id", "ref", "audio", "text", "seconds"}``: ``audio`` a URL
like a picture's (``/img/<random id>``, OGG/Opus), played under message ``ref``,
the newest about the request. The message keeps it as ``"voice": {"audio",
"text", "seconds"}`` (through its edits too), so a reloaded page or a second
tab puts the player back under it, without playing it. Each browser's last
:data:`FEED_LIMIT` messages are kept (pictures up to :data:`IMAGE_CACHE_BYTES`
for everyone together, oldest dropped first), so a reloaded page or a second
tab shows the conversation as it is. That is a cache of the history database:
what it no longer holds (after a restart: everything) the adapter shows again
from the database when a page connects (:meth:`bot.web.WebAdapter._restore`),
placed where its request is (:meth:`WebMessenger.place`); a queued request's
status shown that way is a stand-in, which the conversation's next message about
the request replaces (:meth:`WebMessenger.stand_in`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cachetools import LRUCache

from handlers.actions import Action
from handlers.events import Origin
from handlers.replies import Reply, VoiceNote

log = logging.getLogger(__name__)

#: Messages remembered per browser (replayed to a new tab / a reloaded page).
FEED_LIMIT = 80
#: Bytes of pictures kept in memory for every browser together (oldest dropped first).
IMAGE_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class StoredImage:
    """A picture (or a voice note) one browser may fetch."""

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


def _image_size(image: StoredImage) -> int:
    return len(image.data)


class WebMessenger:
    """The :class:`handlers.replies.Messenger` for the studio's browsers (see the module docstring)."""

    def __init__(self, *, feed_limit: int = FEED_LIMIT, image_cache_bytes: int = IMAGE_CACHE_BYTES) -> None:
        self._feed_limit = feed_limit
        self._run = secrets.token_hex(3)
        self._numbers = itertools.count(1)
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        #: user -> ref -> the message as the page shows it now.
        self._feeds: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._owners: dict[str, str] = {}
        #: user -> request id -> the status standing in for the request's own (see :meth:`stand_in`).
        self._stand_ins: dict[str, dict[str, str]] = {}
        self._images: LRUCache[str, StoredImage] = LRUCache(maxsize=image_cache_bytes, getsizeof=_image_size)

    # --- the Messenger protocol ---------------------------------------------------------

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Show ``reply`` as a new message in every tab of the origin's browser; returns its reference.

        A reply about a request whose status stands in (:meth:`stand_in`) replaces that status instead,
        unless it is a picture: the request's own message is where the stand-in was.
        """
        user = origin.user_id
        feed = self._feeds.setdefault(user, OrderedDict())
        stand_ins = self._stand_ins.get(user, {})
        if reply.request_id in stand_ins and reply.kind != "image":
            ref = stand_ins.pop(reply.request_id)
            if ref in feed:
                await self.edit(origin, ref, reply)
                return ref
        ref = f"w{self._run}-{next(self._numbers)}"
        message = self._render(user, ref, reply, None)
        feed[ref] = message
        self._owners[ref] = user
        self._trim(user, feed)
        await self._broadcast(user, {"type": "message", "op": "send", **message})
        return ref

    def keep_mine(self, user: str, picture: bytes) -> str:
        """Keep the photo or sketch ``user`` sent as their own bubble in their feed (``"kind": "mine"``); its reference.

        Not sent to the tabs: the one that sent it shows it already (the reference lets it be that message); a
        reloaded page or a new tab gets it in the feed, in its place before the replies about it.
        """
        feed = self._feeds.setdefault(user, OrderedDict())
        ref = f"w{self._run}-{next(self._numbers)}"
        image_id = self._store_png(user, picture, "mine")
        feed[ref] = {
            "ref": ref, "kind": "mine", "text": "", "buttons": [], "image": f"/img/{image_id}", "download": None,
            "prefill": "", "request_id": "", "title": "", "spoiler": False, "fix": None, "tiles": [], "voice": None,
        }
        self._owners[ref] = user
        self._trim(user, feed)
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
        stand_ins = self._stand_ins.get(user, {})
        for request_id in [r for r, ref in stand_ins.items() if ref == message_ref]:
            del stand_ins[request_id]  # the conversation changed it: it is the request's own message now
        await self._broadcast(user, {"type": "message", "op": "edit", **message})

    async def notify(self, origin: Origin, text: str) -> None:
        """A toast in every tab of the origin's browser."""
        await self._broadcast(origin.user_id, {"type": "notify", "text": text})

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """Play ``voice`` under its request's message in every tab of the origin's browser (see the module docstring)."""
        user = origin.user_id
        audio_id = secrets.token_urlsafe(12)
        self._images[audio_id] = StoredImage(user, voice.ogg, "audio/ogg", f"{voice.file_name or 'voice2anime'}.ogg")
        spoken = {"audio": f"/img/{audio_id}", "text": voice.text, "seconds": voice.seconds}
        about = self.about(user, voice.request_id) if voice.request_id else []
        ref = about[-1] if about else None
        if ref is not None:
            self._feeds[user][ref]["voice"] = spoken  # a reloaded page shows the player again
        await self._broadcast(user, {"type": "voice", "request_id": voice.request_id, "ref": ref, **spoken})

    async def is_admin(self, origin: Origin) -> bool:
        """Always: each browser is a private chat of its own (``private`` replies need nothing special here either)."""
        return True

    # --- what the adapter asks ------------------------------------------------------------

    def owns(self, user: str, message_ref: str) -> bool:
        """Whether ``message_ref`` is one of ``user``'s messages."""
        return self._owners.get(message_ref) == user

    def feed(self, user: str, *, awaiting: str | None = None) -> list[dict[str, Any]]:
        """``user``'s remembered messages, oldest first (their pictures may have been dropped since).

        The newest prompt for words (``edit_prompt``) about request ``awaiting``, the one the conversation
        still waits for, is marked ``"live": true``: the page shows its field again; older ones stay answered.
        """
        messages = list(self._feeds.get(user, {}).values())
        waiting = [i for i, m in enumerate(messages) if awaiting and m["kind"] == "edit_prompt" and m.get("request_id") == awaiting]
        if waiting:
            messages[waiting[-1]] = {**messages[waiting[-1]], "live": True}
        return messages

    def shown(self, user: str) -> dict[str, frozenset[str]]:
        """Request id -> the kinds of ``user``'s remembered messages about it (a card, a status, a picture...)."""
        kinds: dict[str, set[str]] = {}
        for message in self._feeds.get(user, {}).values():
            if message.get("request_id"):
                kinds.setdefault(message["request_id"], set()).add(message["kind"])
        return {request_id: frozenset(found) for request_id, found in kinds.items()}

    def about(self, user: str, request_id: str) -> list[str]:
        """The references of ``user``'s remembered messages about request ``request_id``, oldest first."""
        return [ref for ref, message in self._feeds.get(user, {}).items() if message.get("request_id") == request_id]

    async def stand_in(self, origin: Origin, reply: Reply) -> str:
        """Show ``reply``, a status of its request made from the history database, until the conversation speaks.

        The next message the conversation sends about the request (a resumed job's status, "Cancelled", a
        failure) replaces it in place, as does an edit of it; only a picture comes as a message of its own.
        """
        ref = await self.send(origin, reply)
        if reply.request_id:
            self._stand_ins.setdefault(origin.user_id, {})[reply.request_id] = ref
        return ref

    def place(self, user: str, refs: Sequence[str], order: Sequence[str]) -> None:
        """Move ``user``'s messages ``refs`` to where their requests are in ``order`` (request ids, oldest first).

        Each goes right before the first other message about a request that
        comes later in ``order`` (at the end when there is none); messages about
        other requests, or none, keep their places. Tabs see the new order when
        they (re)connect (the page follows the order of its ``hello`` feed).
        """
        feed = self._feeds.get(user)
        if not feed:
            return
        rank = {request_id: index for index, request_id in enumerate(order)}
        moving = [ref for ref in refs if ref in feed]
        items = [(ref, message) for ref, message in feed.items() if ref not in moving]
        for ref in moving:
            message = feed[ref]
            own = rank.get(message.get("request_id") or "", -1)
            later = (i for i, (_, other) in enumerate(items) if rank.get(other.get("request_id") or "", -1) > own)
            items.insert(next(later, len(items)), (ref, message))
        feed.clear()
        feed.update(items)

    def image(self, user: str, image_id: str) -> StoredImage | None:
        """Picture ``image_id`` when it belongs to ``user`` (None otherwise, or once it was dropped)."""
        stored = self._images.get(image_id)
        if stored is None or stored.user != user:
            return None
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

    def _trim(self, user: str, feed: OrderedDict[str, dict[str, Any]]) -> None:
        """Forget ``user``'s oldest messages beyond the feed's limit."""
        stand_ins = self._stand_ins.get(user, {})
        while len(feed) > self._feed_limit:
            old, dropped = feed.popitem(last=False)
            self._owners.pop(old, None)
            if stand_ins.get(dropped.get("request_id") or "") == old:
                del stand_ins[dropped["request_id"]]

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
            # Variations: each picture of the grid as a tile of its own, with the button that keeps it.
            "tiles": [self._tile(user, reply, index, png) for index, png in enumerate(reply.tiles)],
            # The spoken reply played under this message (send_voice), kept through its edits.
            "voice": shown.get("voice") if shown is not None else None,
        }

    def _tile(self, user: str, reply: Reply, index: int, png: bytes) -> dict[str, Any]:
        """Picture ``index`` of a grid (``reply.tiles``): its address, its download and its keep button's payload."""
        image_id = self._store_png(user, png, f"{reply.file_name or 'voice2anime'}-v{index + 1}")
        keep = next((b.data for row in reply.buttons for b in row if b.action is Action.KEEP and b.value == str(index + 1)), None)
        return {"image": f"/img/{image_id}", "download": f"/img/{image_id}?download=1", "keep": keep}

    def _store_image(self, user: str, reply: Reply) -> str:
        assert reply.image_png is not None
        return self._store_png(user, reply.image_png, reply.file_name or "voice2anime")

    def _store_png(self, user: str, png: bytes, stem: str) -> str:
        """Keep picture ``png`` of ``user`` to be fetched as ``stem``.<its type>; its id."""
        content_type, extension = content_type_of(png)
        image_id = secrets.token_urlsafe(12)
        stored = StoredImage(user, png, content_type, f"{stem}.{extension}")
        self._images[image_id] = stored
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
