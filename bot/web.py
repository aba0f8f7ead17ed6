"""The web studio: a third adapter, a page in the browser over the same conversation as the chat bots.

``voice2anime run`` serves it when no platform token is set (or with
``WEB_ENABLED=true`` beside the bots) on ``http://WEB_HOST:WEB_PORT`` —
127.0.0.1:7860 by default. One aiohttp application:

* ``GET /`` the page (``bot/static/``: plain HTML, JS and CSS; no build step, nothing from a CDN);
* ``GET /ws`` a WebSocket: the page sends neutral events as JSON (``command``, ``text``,
  ``press``, ``locale``) and gets the replies (:mod:`bot.web_messenger`);
* ``POST /upload/voice`` and ``/upload/photo`` a recording or a file (the raw bytes as the body; a photo's
  ``?caption=`` words are drawn keeping its composition, ``&sketch=1`` from the sketch pad),
  at most ``AUDIO_MAX_BYTES`` / ``WEB_PHOTO_MAX_BYTES``; the conversation decides what it is
  (a photo is kept in the feed as the user's own bubble: the answer's ``ref``);
* ``GET /img/<id>`` a picture of this browser's messages, ``GET /api/gallery`` and
  ``GET /gallery/<request id>`` its finished pictures from the history database
  (:data:`GALLERY_SIZE` at a time, newest first; ``?before=<request id>`` the next page).

The feed a page gets when it connects is the conversation as the history database
holds it: the messages the studio keeps in memory (a cache, see :mod:`bot.web_messenger`),
and the newest requests it no longer holds (after a restart: all of them) shown
again — see :meth:`WebAdapter._restore`. A prompt still waiting for its words (a Remix's,
an Edit's whose card is still open) is marked ``live`` in it (its field is shown again).

Safe by default: it listens on loopback only; any other ``WEB_HOST`` needs
``WEB_PASSWORD`` (the start is refused otherwise: one line, exit 2). On
loopback, requests must name a loopback host (a DNS-rebinding page cannot
reach it). A browser is identified by a signed cookie (:mod:`bot.web_session`);
every message, picture and button press is checked against it, so one browser
never sees another's requests or images. The WebSocket and uploads must come
from the page itself (``Origin`` = our host). A strict Content-Security-Policy
allows only our own scripts, styles and images.

At the network edge (:mod:`bot.web_session` counts by client address, behind
``WEB_TRUSTED_PROXIES`` the forwarded one): a connection must send its request
within :data:`IDLE_SECONDS`; open connections are capped per address and in
total; an upload body must keep arriving and be done in time, and only a few
are read at once, so unfinished uploads hold at most
``UPLOADS_TOTAL x the size limit`` of memory; password tries are counted before
they are checked. JSON nested too deep for the parser and text that is no
Unicode (lone surrogates) are malformed input like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from bot.adapter import EventHandler
from bot.redact import add_secret
from bot.settings import Settings
from bot.startup_errors import BadInputError
from bot.web_i18n import page_strings, page_word
from bot.web_messenger import WebMessenger, content_type_of
from bot.web_session import (
    COOKIE,
    COOKIE_MAX_AGE,
    Caps,
    ConnectionGuard,
    LoginThrottle,
    Signer,
    address_key,
    client_address,
    is_loopback,
    load_secret,
    networks,
)
from engine.errors import AudioTooLargeError, ImageTooLargeError
from handlers import cards
from handlers.actions import Action, Payload
from handlers.conversation.routes import STUDIO_CHIPS
from handlers.events import ButtonPress, Command, Event, Origin, PhotoMessage, Rejected, TextMessage, VoiceMessage, fetched
from handlers.i18n import pick_language, t
from handlers.keyed_lock import KeyedLock
from handlers.replies import Button, Reply

log = logging.getLogger(__name__)

PLATFORM = "web"
STATIC_DIR = Path(__file__).with_name("static")
#: Files the page is made of (nothing else under ``/static`` is served).
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
#: Largest WebSocket message a page may send (events are small JSON).
MAX_WS_MESSAGE = 64 * 1024
#: Events one browser may have in the conversation at once (a voice note is transcribed meanwhile).
MAX_IN_FLIGHT = 8
#: WebSocket messages per second a tab may send on average, and in a burst.
WS_RATE, WS_BURST = 5.0, 20
#: Finished pictures in one page of the gallery (the page asks for the next one with the last one's request id).
GALLERY_SIZE = 48
#: A browser's newest requests the feed shows when the page connects, from the history database where the
#: studio's memory no longer holds them (after a restart): open cards, statuses of queued and running requests,
#: delivered pictures. Bounded so a connect costs a few reads, and well within what the memory keeps
#: (:data:`bot.web_messenger.FEED_LIMIT` messages), so shown requests are not dropped again at once.
FEED_REQUESTS = 16
#: How long :meth:`WebAdapter.stop` lets events being handled finish.
STOP_GRACE_SECONDS = 10.0
#: Seconds a new connection has to send its first request, and an idle kept-alive one its next (then it is closed).
IDLE_SECONDS = 30.0
#: Connections one client address may have open at once (a browser opens up to 6, plus a WebSocket per tab).
CONNECTIONS_PER_ADDRESS = 32
#: Connections open at once for everyone together (each holds a file descriptor).
CONNECTIONS_TOTAL = 256
#: Seconds an upload (or a login) body may send nothing before it is dropped.
UPLOAD_STALL_SECONDS = 30.0
#: Seconds a whole upload body may take (20 MB needs about 0.6 Mbit/s).
UPLOAD_SECONDS = 300.0
#: Upload bodies read at once per client address and for everyone (unfinished ones are held in memory).
UPLOADS_PER_ADDRESS, UPLOADS_TOTAL = 2, 8

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,3}")
_COMMAND = re.compile(r"[a-z_]{1,32}")
#: What a request id given back by the page (a gallery cursor) may look like.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: UTF-16 surrogates: valid as JSON escapes, but alone they are no character (and cannot be stored or sent).
_SURROGATES = re.compile("[\ud800-\udfff]")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class GalleryItem:
    """A finished picture of the browser's user (newest first in a listing)."""

    request_id: str
    #: ISO 8601 time it was asked for.
    created: str
    #: The style's display name by UI language.
    style: Mapping[str, str]
    description: str
    #: The content policy flagged it: the tile is blurred until clicked.
    spoiler: bool = False
    #: What kind of picture it is by UI language ("🔀 Four variations", "⬆️ Upscaled ×2"...); empty: a plain drawing.
    kind: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GalleryPage:
    """One page of a browser's finished pictures, newest first."""

    items: list[GalleryItem]
    #: The request id to ask for the next (older) page with; None on the last page.
    next: str | None = None


@dataclass(frozen=True)
class Recent:
    """One of a browser's newest requests as the history database holds it, and how the feed shows it."""

    request_id: str
    #: The kinds of message (``Reply.kind``) that already show it: one of them in the feed and it is not shown again.
    shown_as: frozenset[str]
    #: The button whose press makes the conversation show it as it stands (an open card, a delivered picture) ...
    press: Button | None = None
    #: ... or, where no button does (a queued or running request), its status, standing in until the conversation
    #: says something about the request (:meth:`bot.web_messenger.WebMessenger.stand_in`).
    status: Reply | None = None


class Gallery(Protocol):
    """Where the studio reads a browser's history: the history database (see :mod:`bot.web_gallery`)."""

    async def pictures(self, user: str, limit: int, before: str | None = None) -> GalleryPage:
        """``user``'s delivered pictures, newest first, at most ``limit``: the newest, or those after request ``before``."""

    async def picture(self, user: str, request_id: str) -> bytes | None:
        """The finished picture of ``request_id`` when it is ``user``'s, else None."""

    async def recent(self, user: str, limit: int, locale: str | None) -> list[Recent]:
        """``user``'s newest requests (at most ``limit``) that the feed shows, oldest first (``locale``: the page's)."""


@dataclass(frozen=True)
class WebConfig:
    """Where the studio listens and what it accepts."""

    secret: bytes
    host: str = "127.0.0.1"
    port: int = 7860
    password: str | None = None
    audio_max_bytes: int = 20 * 1024 * 1024
    audio_max_seconds: float = 60.0
    photo_max_bytes: int = 20 * 1024 * 1024
    #: Reverse proxies whose ``X-Forwarded-For`` is believed (addresses or CIDR networks).
    trusted_proxies: tuple[str, ...] = ()
    idle_seconds: float = IDLE_SECONDS
    connections_per_address: int = CONNECTIONS_PER_ADDRESS
    connections_total: int = CONNECTIONS_TOTAL
    upload_stall_seconds: float = UPLOAD_STALL_SECONDS
    upload_seconds: float = UPLOAD_SECONDS
    uploads_per_address: int = UPLOADS_PER_ADDRESS
    uploads_total: int = UPLOADS_TOTAL

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not (self.password or "").strip():
            blank = " (WEB_PASSWORD is blank)" if self.password else ""
            raise BadInputError(
                f"WEB_HOST={self.host} would open the studio to the network without a password{blank}:"
                " set WEB_PASSWORD too (or keep WEB_HOST=127.0.0.1)"
            )
        try:
            networks(self.trusted_proxies)
        except ValueError as error:
            raise BadInputError(f"WEB_TRUSTED_PROXIES: {error}") from None

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect."""
        return is_loopback(self.host)


class _Bucket:
    """A token bucket: ``rate`` messages a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class WebAdapter:
    """The browser <-> the conversation (see the module docstring)."""

    platform = PLATFORM

    def __init__(self, config: WebConfig, *, gallery: Gallery | None = None) -> None:
        self.config = config
        self.gallery = gallery
        #: The request whose words a user was asked for and has not given yet (the conversation knows: a Remix's
        #: picture, an open card's Edit): its prompt is shown live again, with its field, on a reloaded page or a new tab.
        self.awaited_words: Callable[[Origin], Awaitable[str | None]] | None = None
        self._messenger = WebMessenger()
        self._signer = Signer(config.secret, config.password)
        self._throttle = LoginThrottle()
        self._trusted = networks(config.trusted_proxies)
        self._uploads = Caps(config.uploads_per_address, config.uploads_total)
        self._connections: ConnectionGuard | None = None
        self._server: asyncio.Server | None = None
        self._cookie = f"{COOKIE}_{config.port}"
        self._locales: dict[str, str] = {}
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        #: One restore of the feed at a time per browser (two tabs connecting at once show nothing twice).
        self._restoring = KeyedLock()
        self._on_event: EventHandler | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.app = self._application()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebAdapter:
        """The studio for ``WEB_*`` settings; refuses (exit 2) a non-loopback ``WEB_HOST`` without ``WEB_PASSWORD``."""
        password = settings.web_password.get_secret_value() if settings.web_password else None
        configured = settings.web_secret.get_secret_value() if settings.web_secret else None
        add_secret(password)
        add_secret(configured)
        config = WebConfig(
            secret=b"",
            host=settings.web_host,
            port=settings.web_port,
            password=password,
            audio_max_bytes=settings.audio_max_bytes,
            audio_max_seconds=settings.audio_max_seconds,
            photo_max_bytes=settings.web_photo_max_bytes,
            trusted_proxies=settings.web_trusted_proxies,
        )  # checked before the secret file is touched
        return cls(replace(config, secret=load_secret(settings.data_dir, configured)))

    @property
    def messenger(self) -> WebMessenger:
        """Renders the conversation's replies in the browsers."""
        return self._messenger

    @property
    def url(self) -> str:
        """Where to open the studio (a browser on this machine), once started."""
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port or self.config.port}/"

    @property
    def connections_open(self) -> int:
        """Connections to the studio's own listener open now."""
        return len(self._connections) if self._connections is not None else 0

    @property
    def uploads_in_progress(self) -> int:
        """Upload bodies being read now."""
        return len(self._uploads)

    def attach(self, on_event: EventHandler) -> None:
        """Deliver events to ``on_event`` (:meth:`start` does this; tests serving :attr:`app` themselves call it)."""
        self._on_event = on_event

    async def start(self, on_event: EventHandler) -> None:
        """Listen on ``WEB_HOST:WEB_PORT`` (port 0: any free port, see :attr:`port`), connections guarded (module docstring)."""
        self.attach(on_event)
        config = self.config
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, keepalive_timeout=config.idle_seconds)
        await self._runner.setup()
        assert self._runner.server is not None
        self._connections = ConnectionGuard(
            self._runner.server,
            per_address=config.connections_per_address,
            total=config.connections_total,
            first_request_seconds=config.idle_seconds,
            trusted=self._trusted,
            refusal=_refusal(),
        )
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._connections, config.host, config.port, backlog=128
            )
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else config.port  # the port bound (WEB_PORT=0)
        log.info("web studio listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening, close the tabs' sockets, let events being handled finish (a while)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for socket in self._messenger.sockets():
            await socket.close(code=WSCloseCode.GOING_AWAY)
        tasks = [task for tasks in self._in_flight.values() for task in tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the application ----------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_WS_MESSAGE)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/strings.json", self._strings)
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/login", self._login)
        app.router.add_get("/ws", self._websocket)
        app.router.add_post("/upload/{kind}", self._upload)
        app.router.add_get("/img/{image_id}", self._image)
        app.router.add_get("/api/gallery", self._gallery)
        app.router.add_get("/gallery/{request_id}", self._gallery_picture)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Loopback studios answer only requests for a loopback host; every answer gets the security headers."""
        if self._connections is not None:
            self._connections.request_started(request.transport)
        if self.config.loopback and not is_loopback(_hostname(request.host)):
            log.warning("refused a request for host %r (the studio listens on loopback only)", request.host[:80])
            return web.Response(status=421, text="This studio only answers http://127.0.0.1 / http://localhost.\n")
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _address(self, request: web.Request) -> str:
        """Who sent ``request`` as limits per address count it (the forwarded client behind a trusted proxy)."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return address_key(client_address(request.remote or "", forwarded, self._trusted))

    def _user(self, request: web.Request) -> str | None:
        return self._signer.user_of(request.cookies.get(self._cookie))

    def _set_cookie(self, request: web.Request, response: web.StreamResponse) -> str:
        user, value = self._signer.new_cookie()
        response.set_cookie(
            self._cookie, value, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="Strict", secure=request.secure
        )
        return user

    async def _index(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})
        if self._user(request) is None and not self._signer.needs_password:
            self._set_cookie(request, response)
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / name, headers={"Content-Type": f"{STATIC_FILES[name]}; charset=utf-8"})

    async def _strings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(page_strings(), dumps=_dumps)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        """Whether this browser is in, the limits the page checks before uploading and its command chips."""
        user = self._user(request)
        response = web.json_response(
            {
                "signed_in": user is not None or not self._signer.needs_password,
                "password": self._signer.needs_password,
                "limits": {
                    "audio_bytes": self.config.audio_max_bytes,
                    "audio_seconds": self.config.audio_max_seconds,
                    "photo_bytes": self.config.photo_max_bytes,
                },
                "commands": STUDIO_CHIPS,
            }
        )
        if user is None and not self._signer.needs_password:
            self._set_cookie(request, response)
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            raise web.HTTPForbidden(text="wrong origin")
        address = self._address(request)
        if not self._throttle.reserve(address):  # counted before the body is even read
            return web.json_response({"ok": False, "reason": "throttled"}, status=429)
        try:
            async with asyncio.timeout(self.config.upload_stall_seconds):
                data = _loads(await request.read())
        except TimeoutError:
            return _closing(web.json_response({"ok": False, "reason": "timeout"}, status=408))
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected JSON with a password")
        given = data.get("password", "")
        if not isinstance(given, str) or not self._signer.password_matches(given):
            log.warning("wrong studio password from %s", address)
            return web.json_response({"ok": False, "reason": "wrong"}, status=403)
        self._throttle.release(address)
        response = web.json_response({"ok": True})
        self._set_cookie(request, response)
        return response

    # --- events in ----------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="no studio cookie: open the page first")
        if not _same_origin(request):
            log.warning("refused a WebSocket from origin %r", (request.headers.get("Origin") or "")[:80])
            raise web.HTTPForbidden(text="wrong origin")
        socket = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE, heartbeat=30.0)
        await socket.prepare(request)
        locale = request.query.get("locale", "")
        if _LOCALE.fullmatch(locale):  # the page's language, so what is shown again is in it
            self._locales[user] = locale
        try:
            await self._restore(user)
        except Exception:
            log.exception("could not show a studio browser's requests again from the history database")
        self._messenger.connect(user, socket)
        bucket = _Bucket(WS_RATE, WS_BURST)
        try:
            awaited = await self._awaited(user)
            await socket.send_str(_dumps({"type": "hello", "feed": self._messenger.feed(user, awaiting=awaited)}))
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    await socket.close(code=WSCloseCode.UNSUPPORTED_DATA)
                    break
                if not bucket.take():
                    log.warning("closed a studio tab that sent too many messages")
                    await socket.close(code=WSCloseCode.POLICY_VIOLATION)
                    break
                await self._on_message(user, socket, message.data)
        finally:
            self._messenger.disconnect(user, socket)
        return socket

    async def _awaited(self, user: str) -> str | None:
        """The request whose words ``user`` was asked for and has not given yet (None: none, or it cannot be known)."""
        if self.awaited_words is None:
            return None
        try:
            return await self.awaited_words(self._origin(user))
        except Exception:
            log.exception("could not tell whether a studio browser's prompt still waits for its words")
            return None

    async def _on_message(self, user: str, socket: web.WebSocketResponse, raw: str) -> None:
        """One message of a tab: a neutral event for the conversation, or a new locale. Malformed ones are ignored."""
        data = _loads(raw)
        if not isinstance(data, dict):
            log.info("ignored a studio message that is not a JSON object")
            return
        kind = data.get("type")
        if kind == "locale":
            locale = data.get("locale")
            if isinstance(locale, str) and _LOCALE.fullmatch(locale):
                self._locales[user] = locale
            return
        event = self._event(user, kind, data)
        if event is None:
            log.info("ignored a studio message of type %r", kind[:20] if isinstance(kind, str) else type(kind).__name__)
            return
        await self._deliver(event)

    def _event(self, user: str, kind: object, data: dict[str, Any]) -> Event | None:
        origin = self._origin(user)
        if kind == "command":
            name, args = _text(data.get("name")), _text(data.get("args", ""))
            if name is not None and _COMMAND.fullmatch(name) and args is not None:
                return Command(origin, name, args.strip())
        elif kind == "text":
            text, request_id = _text(data.get("text")), _text(data.get("request_id", ""))
            if text is not None and request_id is not None and len(request_id) <= 64:
                return TextMessage(origin, text.strip(), request_id)
        elif kind == "press":
            payload, ref = _text(data.get("data")), _text(data.get("ref", ""))
            pressed = Payload.unpack(payload) if payload is not None else None
            if pressed is not None:
                # A message reference is passed on only when it is this browser's own message.
                ref = ref if ref is not None and self._messenger.owns(user, ref) else ""
                return ButtonPress(origin, pressed.request_id, pressed.action, pressed.value, ref)
        return None

    def _origin(self, user: str) -> Origin:
        return Origin(PLATFORM, user, user, "", self._locales.get(user))

    async def _restore(self, user: str) -> None:
        """Show again ``user``'s newest requests (:data:`FEED_REQUESTS`) that the feed in memory no longer holds.

        The database holds the conversation; the feed in memory is a cache of it
        (empty after a restart, its oldest messages dropped in a long session).
        The conversation itself shows each missing request as it stands, asked
        the way its buttons ask: an open card by its Details toggle (the same
        card, with working buttons), a delivered picture as a Gallery tile asks
        (with Restyle, Reroll, Original and Download). A queued or running
        request, which no button shows, gets its status, replaced by the next
        thing the conversation says about it (a resumed job's status, its
        picture's end). Each goes where its request is among the others, so the
        feed stays in order with the newest at the bottom.
        """
        if self.gallery is None or self._on_event is None:
            return
        async with self._restoring(user):
            recent = await self.gallery.recent(user, FEED_REQUESTS, self._locales.get(user))
            shown = self._messenger.shown(user)
            origin = self._origin(user)
            restored: list[str] = []
            for entry in recent:
                if shown.get(entry.request_id, frozenset()) & entry.shown_as:
                    continue
                before = set(self._messenger.about(user, entry.request_id))
                if entry.press is not None:
                    press = entry.press
                    await self._on_event(ButtonPress(origin, press.request_id, press.action, press.value, ""))
                elif entry.status is not None:
                    await self._messenger.stand_in(origin, entry.status)
                restored += [ref for ref in self._messenger.about(user, entry.request_id) if ref not in before]
            if restored:
                log.info("showed %d of a studio browser's requests again from the history database", len(restored))
                self._messenger.place(user, restored, [entry.request_id for entry in recent])

    async def _deliver(self, event: Event) -> None:
        """Hand ``event`` to the conversation in the background (a transcription must not hold up the socket)."""
        assert self._on_event is not None, "start() or attach() was not called"
        user = event.origin.user_id
        tasks = self._in_flight.setdefault(user, set())
        if len(tasks) >= MAX_IN_FLIGHT:
            lang = pick_language(None, event.origin.locale)
            await self._messenger.notify(event.origin, t("rate_limited", lang))
            return
        task: asyncio.Task[None] = asyncio.ensure_future(self._on_event(event))
        tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            tasks.discard(finished)
            if not tasks:
                self._in_flight.pop(user, None)

        task.add_done_callback(done)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """A recording, an audio file or a photo: its bytes, read up to the limit, become a voice or photo event."""
        user = self._user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="no studio cookie: open the page first")
        if not _same_origin(request):
            raise web.HTTPForbidden(text="wrong origin")
        kind = request.match_info["kind"]
        if kind not in ("voice", "photo"):
            raise web.HTTPNotFound()
        locale = request.query.get("locale", "")
        if _LOCALE.fullmatch(locale):
            self._locales[user] = locale
        origin = self._origin(user)
        if len(self._in_flight.get(user, ())) >= MAX_IN_FLIGHT:
            return web.json_response({"ok": False, "reason": "busy"}, status=429)
        limit = self.config.audio_max_bytes if kind == "voice" else self.config.photo_max_bytes
        too_big = AudioTooLargeError if kind == "voice" else ImageTooLargeError
        declared = request.content_length
        if declared is not None and declared > limit:
            await self._deliver(Rejected(origin, too_big.of(declared, limit)))
            return web.json_response({"ok": False, "reason": "too_large"}, status=413)
        address = self._address(request)
        if not self._uploads.take(address):
            log.warning("refused a studio upload from %s: %d being received", address, len(self._uploads))
            await self._messenger.notify(origin, page_word("upload.busy", pick_language(None, origin.locale)))
            return web.json_response({"ok": False, "reason": "busy"}, status=503)
        try:
            data = await _read_at_most(request, limit, self.config.upload_stall_seconds, self.config.upload_seconds)
        except TimeoutError:
            log.warning("dropped a studio upload from %s: it stopped arriving or took too long", address)
            await self._messenger.notify(origin, page_word("upload.stalled", pick_language(None, origin.locale)))
            return _closing(web.json_response({"ok": False, "reason": "timeout"}, status=408))
        except (ConnectionError, web.RequestPayloadError):
            log.info("a studio upload from %s broke off (the browser went away)", address)
            return _closing(web.json_response({"ok": False, "reason": "incomplete"}, status=400))
        finally:
            self._uploads.give_back(address)
        if data is None:
            await self._deliver(Rejected(origin, too_big.of(limit + 1, limit)))
            return web.json_response({"ok": False, "reason": "too_large"}, status=413)
        mine: dict[str, str] = {}
        if kind == "voice":
            event: Event = VoiceMessage(origin, fetched(data))
        else:  # words sent with a photo, or a sketch from the pad: drawn keeping the picture's composition
            event = PhotoMessage(origin, fetched(data), request.query.get("caption", ""), sketch=request.query.get("sketch") == "1")
            mine = {"ref": self._messenger.keep_mine(user, data)}  # in the feed before the replies about it
        await self._deliver(event)
        return web.json_response({"ok": True, **mine}, status=202)

    # --- pictures -------------------------------------------------------------------------

    async def _image(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        stored = None if user is None else self._messenger.image(user, request.match_info["image_id"])
        if stored is None:
            raise web.HTTPNotFound()
        return _picture_response(request, stored.data, stored.content_type, stored.filename)

    async def _gallery(self, request: web.Request) -> web.StreamResponse:
        """A page of this browser's finished pictures: ``{"items": [...], "next": request id | null}`` (``?before=``: the next)."""
        user = self._user(request)
        if user is None:
            raise web.HTTPUnauthorized()
        before = request.query.get("before") or None
        if before is not None and not _REQUEST_ID.fullmatch(before):
            raise web.HTTPBadRequest(text="before: a request id")
        page = GalleryPage([]) if self.gallery is None else await self.gallery.pictures(user, GALLERY_SIZE, before)
        items = [
            {
                "request_id": item.request_id,
                "image": f"/gallery/{item.request_id}",
                "download": f"/gallery/{item.request_id}?download=1",
                "created": item.created,
                "style": dict(item.style),
                "description": item.description,
                "spoiler": item.spoiler,
                "kind": dict(item.kind),
                # Pressing it asks the conversation to show the picture again, with its buttons.
                "press": Button("", Action.RESEND, item.request_id).data,
            }
            for item in page.items
        ]
        return web.json_response({"items": items, "next": page.next}, dumps=_dumps)

    async def _gallery_picture(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        request_id = request.match_info["request_id"]
        data = None if user is None or self.gallery is None else await self.gallery.picture(user, request_id)
        if data is None:
            raise web.HTTPNotFound()
        content_type, extension = content_type_of(data)
        return _picture_response(request, data, content_type, f"{cards.file_name(request_id)}.{extension}")


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _loads(raw: str | bytes) -> object:
    """``raw`` as JSON, or None when it is not JSON (nested too deep for the parser included)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _text(value: object) -> str | None:
    """A string of a page's message without lone surrogates (None when it is no string)."""
    return _SURROGATES.sub("", value) if isinstance(value, str) else None


def _closing(response: web.Response) -> web.Response:
    """``response``, and the connection closed after it (its request body was not read to the end)."""
    response.force_close()
    return response


def _refusal() -> bytes:
    """What a connection over the caps gets before it is closed: a complete 503 in English and Chinese."""
    text = "\n".join(page_word("connections.busy", lang) for lang in ("en", "zh-Hans")) + "\n"
    body = text.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 10\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _hostname(host: str) -> str:
    """The host name of a ``Host`` header (``127.0.0.1:7860`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``)."""
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""


def _same_origin(request: web.Request) -> bool:
    """Whether the request comes from our own page: its ``Origin`` names the host it was sent to."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    try:
        return urlsplit(origin).netloc.lower() == request.host.lower()
    except ValueError:
        return False


async def _read_at_most(request: web.Request, limit: int, stall: float, deadline: float) -> bytes | None:
    """The request body, or None as soon as it is longer than ``limit`` bytes (the rest is not read).

    Raises ``TimeoutError`` when nothing arrives for ``stall`` seconds or the whole takes over ``deadline``.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            while True:
                async with asyncio.timeout(stall):
                    chunk = await request.content.readany()
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except BaseException:
        # The error's traceback keeps this frame, and with it what was read, until Python's cycle
        # collector happens to run (an idle studio may not run it for a long time).
        chunks.clear()
        raise


def _picture_response(request: web.Request, data: bytes, content_type: str, filename: str) -> web.Response:
    headers = {"Content-Type": content_type, "Cache-Control": "private, max-age=3600"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return web.Response(body=data, headers=headers)
