"""The studio's network edge against a real listening studio: the password throttle, timeouts, caps, hostile input.

Every test starts the studio's own listener (``WebAdapter.start`` on a free
loopback port, as ``voice2anime run`` does) and talks to it over real TCP:
aiohttp clients for the page's requests, raw sockets for what no browser sends
(a stalled body, an idle connection). A "client on another machine" is a
connection from another loopback address (127.0.0.2): Linux routes all of
127.0.0.0/8 to loopback. The conversation behind it is the real one over
SQLite, on the scripted engine (no models: these tests are about the edge).
Waits are bounded generously; nothing asserts how long something took.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from bot.web_i18n import page_word
from bot.web_session import LOGIN_TRIES, address_key, client_address, networks
from handlers import cards
from handlers.actions import Action
from handlers.conversation.routes import COMMAND_NAMES
from tests.support.scripted_engine import ScriptedEngine
from tests.support.web import Browser, LiveClient, Studio, listening, live_browser, studio_over

#: Bound on any wait in these tests (a generous one: a slow CI box must never fail them).
WAIT = 60.0
PASSWORD = "hunter2-of-the-studio"


@asynccontextmanager
async def running(sqlite_url: str, tmp_path: Path, engine: ScriptedEngine | None = None, **web: Any) -> AsyncIterator[Studio]:
    """A listening studio over the scripted engine; ``web`` overrides :class:`bot.web.WebConfig` fields."""
    async with studio_over(engine or ScriptedEngine(), sqlite_url, tmp_path / "data", **web) as studio:
        await listening(studio)
        yield studio


async def raw_connection(studio: Studio, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to the studio from ``source`` (nothing sent yet)."""
    assert studio.adapter.port is not None
    return await asyncio.open_connection("127.0.0.1", studio.adapter.port, local_addr=(source, 0))


async def closed_with(reader: asyncio.StreamReader) -> bytes:
    """Everything the studio sends before it closes the connection (waits at most :data:`WAIT`)."""
    return await asyncio.wait_for(reader.read(), WAIT)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR (and worse) records and tracebacks logged so far."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def until(check: Callable[[], object]) -> None:
    """Return once ``check()`` holds (polled; waits at most :data:`WAIT`)."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)


async def login(client: LiveClient, password: str, headers: dict[str, str] | None = None) -> int:
    origin = str(client.make_url("/")).rstrip("/")
    async with client.post("/api/login", json={"password": password}, headers={"Origin": origin} | (headers or {})) as response:
        return response.status


# --- the password throttle --------------------------------------------------------------------------


async def login_headers_taken(studio: Studio, body: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw login whose headers the studio has taken (it answered ``100 Continue``), its body not sent yet."""
    reader, writer = await raw_connection(studio)
    host = f"127.0.0.1:{studio.adapter.port}"
    writer.write(
        f"POST /api/login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    await writer.drain()
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == b"HTTP/1.1 100 Continue\r\n\r\n"
    return reader, writer


async def test_concurrent_wrong_passwords_are_counted_before_they_are_checked(sqlite_url: str, tmp_path: Path) -> None:
    """60 wrong passwords at once (every request in the studio's hands before any body arrives): at most LOGIN_TRIES
    are checked (403), every other one is throttled (429)."""
    body = json.dumps({"password": "a wrong guess"}).encode()
    async with running(sqlite_url, tmp_path, password=PASSWORD, connections_per_address=100) as studio:
        tries = await asyncio.gather(*(login_headers_taken(studio, body) for _ in range(60)))
        for _, writer in tries:
            writer.write(body)
        statuses = []
        for reader, writer in tries:
            status_line = await asyncio.wait_for(reader.readline(), WAIT)
            statuses.append(int(status_line.split()[1]))
            writer.close()
        assert statuses.count(403) <= LOGIN_TRIES, statuses
        assert statuses.count(403) + statuses.count(429) == 60, statuses
        client = LiveClient(studio.adapter.url)
        try:
            assert await login(client, PASSWORD) == 429, "the right password waits too once the tries are used up"
        finally:
            await client.close()


async def test_a_right_password_does_not_use_up_a_try(sqlite_url: str, tmp_path: Path) -> None:
    async with running(sqlite_url, tmp_path, password=PASSWORD) as studio:
        client = LiveClient(studio.adapter.url)
        try:
            for _ in range(LOGIN_TRIES - 1):
                assert await login(client, "wrong") == 403
            for _ in range(3):
                assert await login(client, PASSWORD) == 200
            assert await login(client, "wrong") == 403
            assert await login(client, "wrong") == 429
        finally:
            await client.close()


# --- behind a reverse proxy ---------------------------------------------------------------------------


async def test_forwarded_addresses_count_only_from_trusted_proxies(sqlite_url: str, tmp_path: Path) -> None:
    """X-Forwarded-For from a listed proxy names the client for the throttle; from anyone else it is ignored."""
    async with running(sqlite_url, tmp_path, password=PASSWORD, trusted_proxies=("127.0.0.1/32",)) as studio:
        proxy, stranger = LiveClient(studio.adapter.url, "127.0.0.1"), LiveClient(studio.adapter.url, "127.0.0.2")
        try:
            # a client that is not a trusted proxy cannot dodge the throttle by naming other addresses
            for n in range(LOGIN_TRIES):
                assert await login(stranger, "wrong", {"X-Forwarded-For": f"203.0.113.{n}"}) == 403
            assert await login(stranger, "wrong", {"X-Forwarded-For": "203.0.113.99"}) == 429

            # behind the trusted proxy, each forwarded client has its own tries
            behind = {"X-Forwarded-For": "198.51.100.7"}
            for _ in range(LOGIN_TRIES):
                assert await login(proxy, "wrong", behind) == 403
            assert await login(proxy, "wrong", behind) == 429
            # a forged hop added in front by the client itself is not believed: the proxy's own entry (the last) counts
            assert await login(proxy, "wrong", {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}) == 429
            assert await login(proxy, PASSWORD, {"X-Forwarded-For": "198.51.100.8"}) == 200
            assert await login(proxy, "wrong") == 403, "the proxy's own requests (no header) are its own address"
        finally:
            await proxy.close()
            await stranger.close()


def test_who_a_request_is_from() -> None:
    """The forwarded client only behind a trusted proxy, read from the right; an IPv6 client counts by its /64."""
    proxies = networks(["10.0.0.0/8", "fd00::1"])
    assert client_address("203.0.113.5", ["198.51.100.1"], proxies) == "203.0.113.5"
    assert client_address("10.1.2.3", ["198.51.100.1"], proxies) == "198.51.100.1"
    assert client_address("10.1.2.3", ["192.0.2.9, 198.51.100.1, 10.0.0.7"], proxies) == "198.51.100.1"
    assert client_address("10.1.2.3", ["192.0.2.9", "198.51.100.1"], proxies) == "198.51.100.1"
    assert client_address("10.1.2.3", ["garbage, 10.0.0.7"], proxies) == "10.0.0.7"
    assert client_address("::ffff:10.1.2.3", ["2001:db8::5"], proxies) == "2001:db8::5"
    assert client_address("10.1.2.3", [], proxies) == "10.1.2.3"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"


def test_trusted_proxies_setting_takes_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/24,fd00::/8")
    assert Settings().web_trusted_proxies == ("10.0.0.1/32", "192.168.0.0/24", "fd00::/8")
    monkeypatch.delenv("WEB_TRUSTED_PROXIES")
    assert Settings().web_trusted_proxies == ()
    monkeypatch.setenv("WEB_TRUSTED_PROXIES", "10.0.0.1, proxy.lan")
    with pytest.raises(ValueError, match="proxy.lan"):
        Settings()


# --- timeouts and caps ------------------------------------------------------------------------------


async def stalled_upload(
    studio: Studio, browser: Browser, kind: str = "photo", size: int = 19 * 2**20
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw upload with ``browser``'s cookie that declares ``size`` bytes, sends a few and then nothing: its reader and writer."""
    reader, writer = await raw_connection(studio)
    cookies = "; ".join(f"{c.key}={c.value}" for c in browser.client.session.cookie_jar)
    writer.write(
        (
            f"POST /upload/{kind}?locale=en-US HTTP/1.1\r\nHost: 127.0.0.1:{studio.adapter.port}\r\n"
            f"Origin: {browser.origin}\r\nCookie: {cookies}\r\nContent-Type: image/png\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n\x1a\n" * 128
    )
    await writer.drain()
    return reader, writer


async def test_a_stalled_upload_is_closed_and_said_so(sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running(sqlite_url, tmp_path, upload_stall_seconds=1.0) as studio, live_browser(studio) as alice:
        reader, writer = await stalled_upload(studio, alice)
        answer = await closed_with(reader)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        writer.close()
        await alice.wait_for(lambda: page_word("upload.stalled", "en") in alice.notes)  # the page is told why
        # the studio goes on as before
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("en", group=False, commands=COMMAND_NAMES).text)
    assert errors_logged(caplog) == []


async def test_a_connection_that_sends_nothing_or_half_a_request_is_closed(sqlite_url: str, tmp_path: Path) -> None:
    async with running(sqlite_url, tmp_path, idle_seconds=1.0) as studio:
        silent_reader, silent = await raw_connection(studio)
        slow_reader, slow = await raw_connection(studio)
        slow.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await slow.drain()
        assert await closed_with(silent_reader) == b""
        assert not (await closed_with(slow_reader)).startswith(b"HTTP/1.1 200")
        for writer in (silent, slow):
            writer.close()


async def test_connections_over_the_caps_are_refused_others_still_get_the_page(sqlite_url: str, tmp_path: Path) -> None:
    async with running(sqlite_url, tmp_path, connections_per_address=4, connections_total=6) as studio:
        held = [await raw_connection(studio) for _ in range(4)]
        await until(lambda: studio.adapter.connections_open == 4)
        reader, writer = await raw_connection(studio)
        refused = await closed_with(reader)
        assert refused.startswith(b"HTTP/1.1 503 ") and "稍后再试".encode() in refused, refused[:300]
        writer.close()

        async with live_browser(studio, "127.0.0.2") as bob:  # another address still gets the page and a socket
            await bob.command("help")
            await bob.wait_message(lambda m: m["text"] == cards.help_text("en", group=False, commands=COMMAND_NAMES).text)
            room = 6 - studio.adapter.connections_open
            filling = [await raw_connection(studio, "127.0.0.3") for _ in range(room)]
            await until(lambda: studio.adapter.connections_open == 6)
            reader, writer = await raw_connection(studio, "127.0.0.4")  # over the total
            assert (await closed_with(reader)).startswith(b"HTTP/1.1 503 ")
            for _, other in [*filling, (reader, writer)]:
                other.close()

        for _, held_writer in held:
            held_writer.close()
        await until(lambda: studio.adapter.connections_open == 0)
        async with live_browser(studio) as alice:  # the address's connections were given back
            assert alice.socket is not None and not alice.socket.closed


async def test_a_trusted_proxy_counts_only_towards_the_total(sqlite_url: str, tmp_path: Path) -> None:
    caps = {"connections_per_address": 2, "connections_total": 10, "trusted_proxies": ("127.0.0.1",)}
    async with running(sqlite_url, tmp_path, **caps) as studio:
        proxied = [await raw_connection(studio, "127.0.0.1") for _ in range(4)]
        direct = [await raw_connection(studio, "127.0.0.2") for _ in range(2)]
        await until(lambda: studio.adapter.connections_open == 6)
        reader, writer = await raw_connection(studio, "127.0.0.2")
        assert (await closed_with(reader)).startswith(b"HTTP/1.1 503 ")
        for _, other in [*proxied, *direct, (reader, writer)]:
            other.close()


async def test_concurrent_uploads_of_one_address_are_capped(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(sqlite_url, tmp_path, uploads_per_address=2) as studio, live_browser(studio) as alice:
        stalled = [await stalled_upload(studio, alice) for _ in range(2)]
        await until(lambda: studio.adapter.uploads_in_progress == 2)
        response = await alice.upload("photo", b"\x89PNG\r\n\x1a\n", "image/png")
        assert response.status == 503 and (await response.json())["reason"] == "busy"
        await alice.wait_for(lambda: page_word("upload.busy", "en") in alice.notes)
        for _, writer in stalled:
            writer.close()
        await until(lambda: studio.adapter.uploads_in_progress == 0)
        assert (await alice.upload("photo", b"not a picture", "image/png")).status == 202
    assert errors_logged(caplog) == [], "a browser that went away mid-upload is no error"


# --- hostile messages ---------------------------------------------------------------------------------


async def test_deeply_nested_json_is_a_bad_message_not_a_dead_socket(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(sqlite_url, tmp_path) as studio, live_browser(studio) as alice:
        assert alice.socket is not None
        for nested in ("[" * 20_000, '{"type": ' + "[" * 20_000, '{"type": ' + "[" * 900 + "]" * 900 + "}"):
            await alice.socket.send_str(nested)
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("en", group=False, commands=COMMAND_NAMES).text)
        assert not alice.socket.closed
    assert errors_logged(caplog) == []


async def test_deeply_nested_json_login_is_a_bad_request(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(sqlite_url, tmp_path, password=PASSWORD) as studio:
        client = LiveClient(studio.adapter.url)
        origin = str(client.make_url("/")).rstrip("/")
        try:
            body = "[" * 20_000
            async with client.post("/api/login", data=body, headers={"Origin": origin}) as response:
                assert response.status == 400
            assert await login(client, "\ud800") == 403, "a lone surrogate is just a wrong password"
            assert await login(client, PASSWORD) == 200
        finally:
            await client.close()
    assert errors_logged(caplog) == []


async def test_a_lone_surrogate_in_a_description_is_dropped_and_the_conversation_goes_on(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A "\\ud800" escape is valid JSON but no character: it is left out, and the request is drawn as usual."""
    engine = ScriptedEngine()
    async with running(sqlite_url, tmp_path, engine) as studio, live_browser(studio) as alice:
        await alice.command("anime", "a girl with \ud800blue hair")
        card = await alice.wait_message(lambda m: m["kind"] == "card")
        assert "a girl with blue hair" in card["text"]
        await alice.press(card, Action.EDIT)
        prompt = await alice.wait_message(lambda m: m["kind"] == "edit_prompt")
        await alice.send({"type": "text", "text": "a cat\udfff on a roof", "request_id": prompt["request_id"]})
        edited = await alice.wait_message(lambda m: m["kind"] == "card" and "a cat on a roof" in m["text"])
        await alice.press(edited, Action.CONFIRM)
        await until(lambda: engine.handles)
        engine.finish(next(iter(engine.handles)))
        finished = await alice.wait_message(lambda m: m["kind"] == "image")
        assert finished["request_id"] == edited["request_id"]
        assert not [m["text"] for m in alice.messages.values() if m["kind"] == "error"]
    assert errors_logged(caplog) == []


# --- starting ------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a real `voice2anime run` process
@pytest.mark.parametrize("blank", [" ", "\t  "])
def test_run_refuses_a_blank_password_on_an_open_host(tmp_path: Path, blank: str) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings} | {
        "WEB_HOST": "0.0.0.0",
        "WEB_PASSWORD": blank,
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "HF_HUB_OFFLINE": "1",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("voice2anime run served the studio on 0.0.0.0 with a blank password instead of refusing")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: WEB_HOST=0.0.0.0") and "WEB_PASSWORD" in lines[0], done.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was made"
