"""Web studio test kit: the studio over the real conversation, and "browsers" that talk to it like the page does.

* :func:`studio_over` — a :class:`bot.web.WebAdapter` with the real ``Conversation``,
  ``Repository`` (SQLite) and whatever engine the test gives (the ``LocalJobQueue`` on
  the tiny models, usually), its gallery reading the same database.
* :class:`Browser` — one browser (its own cookie jar) on aiohttp's test client: loads the
  page, opens the WebSocket with the page's ``Origin``, sends what ``app.js`` sends and
  keeps the messages as the page shows them (by message reference; an edit without a
  picture keeps the picture).
* :class:`LiveClient` / :func:`live_browser` — a browser on a studio that listens itself
  (``WebAdapter.start``: its own connection guard, timeouts and caps), from a chosen loopback
  source address (Linux routes all of 127.0.0.0/8 to loopback, so 127.0.0.2 is "another machine").
* :func:`webm_voice_note` — speech as WebM/Opus written the way Chrome's MediaRecorder
  writes it (a live stream: no duration, no cues).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from bot.web import WebAdapter, WebConfig
from bot.web_gallery import RepositoryGallery
from db import Repository, create_database
from handlers.conversation import Conversation
from tests.support.conversation import STYLE_NAMES, config

SECRET = b"test-secret-test-secret-test-secret-!"
WAIT = 120.0


@dataclass
class Studio:
    """A studio adapter wired to a conversation (not listening yet: serve :attr:`adapter.app` or ``start`` it)."""

    adapter: WebAdapter
    conversation: Conversation
    repository: Repository


@asynccontextmanager
async def studio_over(engine: Any, url: str, data_dir: Path, *, narrator: Any = None, **web: Any) -> AsyncIterator[Studio]:
    """The studio over the real conversation and ``engine`` (``narrator``: spoken replies); ``web`` overrides :class:`WebConfig` fields."""
    database = create_database(url)
    repository = Repository(database, data_dir)
    adapter = WebAdapter(WebConfig(**({"secret": SECRET, "port": 0} | web)))
    conversation = Conversation(repository, engine, engine, adapter.messenger, config(), narrator=narrator)
    adapter.gallery = RepositoryGallery(repository, STYLE_NAMES)
    adapter.awaited_words = conversation.awaited_words
    adapter.attach(conversation.handle)
    try:
        yield Studio(adapter, conversation, repository)
    finally:
        await adapter.stop()
        await conversation.wait_idle()
        await database.dispose()


@dataclass
class Browser:
    """One browser on the studio (see the module docstring)."""

    client: TestClient | LiveClient
    socket: aiohttp.ClientWebSocketResponse | None = None
    #: message ref -> the message as the page shows it now.
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def origin(self) -> str:
        """What the page's ``Origin`` header is."""
        return str(self.client.make_url("/")).rstrip("/")

    async def open(self) -> None:
        """Load the page (gets the cookie) and open the WebSocket."""
        page = await self.client.get("/")
        assert page.status == 200, page.status
        await self.connect()

    async def connect(self) -> None:
        self.socket = await self.client.ws_connect("/ws", headers={"Origin": self.origin})
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda: any(m.get("type") == "hello" for m in self.received))

    async def reconnect(self) -> None:
        """A reload: the socket closed and opened again; what the page shows is the feed it gets then."""
        await self.close()
        self.received.clear()
        await self.connect()

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            await self._reader

    async def _read(self) -> None:
        assert self.socket is not None
        async for frame in self.socket:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            self.received.append(message)
            if message["type"] == "hello":
                self.messages = {m["ref"]: m for m in message["feed"]}
            elif message["type"] == "message":
                self.messages[message["ref"]] = message
            elif message["type"] == "notify":
                self.notes.append(message["text"])
            self._changed.set()

    async def send(self, event: dict[str, Any]) -> None:
        assert self.socket is not None
        await self.socket.send_str(json.dumps(event))

    async def command(self, name: str, args: str = "") -> None:
        await self.send({"type": "command", "name": name, "args": args})

    async def press(self, message: dict[str, Any], action: str, value: str | None = None) -> None:
        """Press the button with ``action`` (and ``value``) on ``message``, as the page does."""
        await self.send({"type": "press", "data": button(message, action, value)["data"], "ref": message["ref"]})

    async def upload(self, kind: str, data: bytes, content_type: str = "application/octet-stream") -> aiohttp.ClientResponse:
        return await self.client.post(
            f"/upload/{kind}?locale=en-US", data=data, headers={"Origin": self.origin, "Content-Type": content_type}
        )

    async def wait_for(self, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        """The first truthy ``check()``, re-checked whenever a message arrives."""

        async def poll() -> Any:
            while True:
                self._changed.clear()
                found = check()
                if found:
                    return found
                await self._changed.wait()

        return await asyncio.wait_for(poll(), timeout)

    async def wait_message(self, check: Callable[[dict[str, Any]], bool], timeout: float = WAIT) -> dict[str, Any]:
        """The newest message (as shown now) for which ``check`` holds, once there is one."""
        return await self.wait_for(lambda: next((m for m in reversed(self.messages.values()) if check(m)), None), timeout)

    def with_button(self, action: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: any(b["data"].startswith(f"{action}:") for row in m["buttons"] for b in row)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["kind"] == kind]


def button(message: dict[str, Any], action: str, value: str | None = None) -> dict[str, Any]:
    """The button with ``action`` (and ``value``) on a rendered message."""
    for row in message["buttons"]:
        for b in row:
            parts = b["data"].split(":", 2)
            if parts[0] == action and (value is None or (len(parts) == 3 and parts[2] == value)):
                return b
    raise AssertionError(f"no {action!r} button on {message['text']!r}: {message['buttons']}")


@asynccontextmanager
async def browsers(studio: Studio, count: int = 1) -> AsyncIterator[list[Browser]]:
    """``count`` separate browsers on one test server of the studio, pages loaded and sockets open."""
    server = TestServer(studio.adapter.app, host="127.0.0.1")
    clients = [TestClient(server) for _ in range(count)]
    await server.start_server()
    opened: list[Browser] = []
    try:
        for client in clients:
            await client.start_server()
            browser = Browser(client)
            await browser.open()
            opened.append(browser)
        yield opened
    finally:
        for browser in opened:
            await browser.close()
        for client in clients:
            await client.close()
        await server.close()


class LiveClient:
    """What a :class:`Browser` uses of aiohttp's ``TestClient``, over real connections to a listening studio.

    ``source`` is the local address the connections come from (any 127.x.y.z on Linux).
    """

    def __init__(self, base_url: str, source: str = "127.0.0.1") -> None:
        self.base = URL(base_url)
        self.source = source
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=False)
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)

    def make_url(self, path: str) -> URL:
        return self.base.join(URL(path))

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.session.get(self.make_url(path), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.session.post(self.make_url(path), **kwargs)

    def ws_connect(self, path: str, **kwargs: Any) -> Any:
        return self.session.ws_connect(self.make_url(path), **kwargs)

    async def close(self) -> None:
        await self.session.close()


async def listening(studio: Studio) -> str:
    """Start ``studio``'s own listener (on a free port) unless it listens already; its URL."""
    if studio.adapter.port is None:
        await studio.adapter.start(studio.conversation.handle)
    return studio.adapter.url


@asynccontextmanager
async def live_browser(studio: Studio, source: str = "127.0.0.1", *, open_page: bool = True) -> AsyncIterator[Browser]:
    """A browser from ``source`` on the listening ``studio`` (page loaded and socket open when ``open_page``)."""
    client = LiveClient(await listening(studio), source)
    browser = Browser(client)
    try:
        if open_page:
            await browser.open()
        yield browser
    finally:
        await browser.close()
        await client.close()


def webm_voice_note(source: Path, target: Path) -> Path:
    """``source`` audio as WebM/Opus 48 kHz mono, written as a live stream (no duration, no cues), like MediaRecorder."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-c:a", "libopus", "-ar", "48000", "-ac", "1",
         "-f", "webm", "-live", "1", "-cluster_time_limit", "250", str(target)],
        check=True,
        capture_output=True,
    )
    return target
