"""The studio keeps its conversation: what a page gets is the history database's, not only what one run remembers.

Each test runs real studios (``WebAdapter.start``: listening on a loopback port,
over the real ``Conversation`` and ``Repository`` on SQLite, with the scripted
engine) and talks to them as the page does, over HTTP and the WebSocket. A
"restart" is a studio stopped and a new one — new adapter, conversation and
engine — started on the same port over the same database and data directory,
with the same cookie secret; the browser keeps its cookie jar, so it is the same
user. Its page in Chromium: tests/test_web_page.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.web import FEED_REQUESTS, GALLERY_SIZE, PLATFORM
from bot.web_session import COOKIE, Signer
from db import Repository, create_database
from db.enums import ChatKind, ImageRole, RequestKind
from db.states import RequestState
from handlers.actions import Action
from handlers.i18n import t
from tests.support.browser import next_spec
from tests.support.conversation import STYLE_NAMES
from tests.support.scripted_engine import ScriptedEngine, png
from tests.support.web import SECRET, WAIT, Browser, LiveClient, Studio, listening, studio_over

S = RequestState


def free_port() -> int:
    """A loopback port nothing listens on now (a studio's ``WEB_PORT``: its cookie's name, so it stays for the restart)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def running(engine: ScriptedEngine, sqlite_url: str, data_dir: Path, port: int = 0) -> AsyncIterator[Studio]:
    """A listening studio over ``engine`` on ``port`` (0: any); when it stops, its jobs are left as they are (as when the process ends)."""
    async with studio_over(engine, sqlite_url, data_dir, port=port) as studio:
        await listening(studio)
        try:
            yield studio
        finally:
            await studio.conversation.close()  # stop following jobs: what is queued stays queued in the database


def user_of(client: LiveClient) -> str:
    """The studio user id in ``client``'s cookie (the platform user id of its requests)."""
    cookie = next(c for c in client.session.cookie_jar if c.key.startswith(f"{COOKIE}_"))
    user = Signer(SECRET).user_of(cookie.value)
    assert user is not None
    return user


async def card(browser: Browser, text: str) -> dict[str, Any]:
    await browser.command("anime", text)
    return await browser.wait_message(lambda m: m["kind"] == "card" and text in m["text"])


def hello(browser: Browser) -> list[dict[str, Any]]:
    """The feed of the browser's latest ``hello`` (what a page shows when its socket opens)."""
    return next(m for m in reversed(browser.received) if m["type"] == "hello")["feed"]


def actions(message: dict[str, Any]) -> list[str]:
    return [b["data"].split(":")[0] for row in message["buttons"] for b in row]


async def seed_pictures(sqlite_url: str, data_dir: Path, user: str, count: int) -> list[str]:
    """``count`` delivered pictures of studio user ``user``, written straight to the database a second apart; their ids, oldest first."""
    ticks = itertools.count()
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    database = create_database(sqlite_url)
    repository = Repository(database, data_dir, clock=lambda: start + timedelta(seconds=next(ticks)))
    try:
        known = await repository.identify(PLATFORM, user, None, user, ChatKind.PRIVATE)
        ids = []
        for i in range(count):
            request_id = await repository.create_request(
                user_id=known.user_id, chat_id=known.chat_id, kind=RequestKind.TEXT, state=S.QUEUED,
                style="paprika", seed=i, prompt_positive=f"picture number {i}",
            )
            await repository.save_transcript(request_id, heard_text=f"picture number {i}", language="en", language_probability=1.0)
            drawn = [(ImageRole.ANIME, png((i * 4 % 256, 90, 160))), (ImageRole.BASE, png((90, i * 4 % 256, 160)))]
            assert await repository.store_result(request_id, drawn, seed=i, model="scripted", style="paprika")
            assert await repository.transition(request_id, S.DELIVERED, from_states=[S.RUNNING])
            ids.append(request_id)
        return ids
    finally:
        await database.dispose()


async def test_after_a_restart_the_page_gets_the_card_the_status_and_the_picture_and_the_card_still_draws(
    sqlite_url: str, tmp_path: Path
) -> None:
    data, port = tmp_path / "data", free_port()
    first = ScriptedEngine()
    async with running(first, sqlite_url, data, port) as studio:
        client = LiveClient(studio.adapter.url)
        alice = Browser(client)
        await alice.open()
        drawn = await card(alice, "a girl with blue hair")
        await alice.press(drawn, Action.CONFIRM)
        first.finish((await next_spec(first, 1)).job_id)
        await alice.wait_message(lambda m: m["kind"] == "image")
        still_open = await card(alice, "a red umbrella in the rain")
        waiting = await card(alice, "a cat on a piano")
        await alice.press(waiting, Action.CONFIRM)
        await next_spec(first, 2)
        await alice.wait_for(lambda: alice.messages[waiting["ref"]]["kind"] == "progress")
        await alice.close()
    assert first.handles, "the third request was still queued when the studio stopped"

    second = ScriptedEngine()
    async with running(second, sqlite_url, data, port) as studio:
        tabs = [alice, Browser(client)]  # the same browser (its cookie): the old tab reconnects, another one opens
        alice.received.clear()
        await asyncio.gather(*(tab.connect() for tab in tabs))
        for tab in tabs:
            feed = hello(tab)
            assert [(m["request_id"], m["kind"]) for m in feed] == [
                (drawn["request_id"], "image"),
                (still_open["request_id"], "card"),
                (waiting["request_id"], "progress"),
            ], "each request once, in order, the newest at the bottom"
        picture, open_card, status = (alice.messages[m["ref"]] for m in feed)
        assert actions(picture) == [Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX] and picture["download"]
        assert "a girl with blue hair" in picture["text"]
        async with client.get(picture["image"]) as image:
            assert image.status == 200 and (await image.read()).startswith(b"\x89PNG")
        async with client.get(picture["download"]) as download:
            assert download.headers["Content-Disposition"].startswith('attachment; filename="voice2anime-')
        assert "a red umbrella in the rain" in open_card["text"] and actions(open_card)[0] == Action.CONFIRM
        assert status["text"] == t("queued.waiting", "en") and actions(status) == [Action.CANCEL]

        # the queued job is resumed (as `voice2anime run` does after a start): its status is the one shown, not a second
        await studio.conversation.recover()
        assert (await next_spec(second, 1)).job_id == waiting["request_id"]
        await alice.wait_for(lambda: alice.messages[status["ref"]]["text"] != t("queued.waiting", "en"))
        about = [m for m in alice.messages.values() if m["request_id"] == waiting["request_id"]]
        assert [m["ref"] for m in about] == [status["ref"]] and about[0]["kind"] == "progress", about

        # the card shown again works: Draw queues its request, and the card becomes its status
        await alice.press(open_card, Action.CONFIRM)
        assert (await next_spec(second, 2)).job_id == still_open["request_id"]
        assert (await studio.repository.get_request(still_open["request_id"])).state is S.QUEUED
        await alice.wait_for(lambda: alice.messages[open_card["ref"]]["kind"] == "progress")
        # and so do the picture's buttons
        await alice.press(picture, Action.RESTYLE)
        await alice.wait_message(alice.with_button(Action.RESTYLE_AS))

        # a reload: the same messages in the same order, nothing shown twice
        shown = list(alice.messages)
        assert len(shown) == 4  # and the style picker
        await alice.close()
        alice.received.clear()
        await alice.connect()
        assert [m["ref"] for m in hello(alice)] == shown

        # the resumed job ends in the status that stood in for it
        second.finish(waiting["request_id"])
        await alice.wait_for(lambda: alice.messages[status["ref"]]["text"] == t("progress.done", "en"))
        second.finish(still_open["request_id"])
        await alice.wait_for(lambda: len(alice.of_kind("image")) == 3)

        # another browser sees none of it
        bob = Browser(LiveClient(studio.adapter.url))
        try:
            await bob.open()
            assert hello(bob) == []
        finally:
            await bob.close()
            await bob.client.close()
        for tab in tabs:
            await tab.close()
    await client.close()


async def test_the_feed_after_a_restart_holds_the_newest_requests_in_order_in_the_pages_language(
    sqlite_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with running(ScriptedEngine(), sqlite_url, data) as studio:
        client = LiveClient(studio.adapter.url)
        await (await client.get("/")).release()  # the page: a cookie
        ids = await seed_pictures(sqlite_url, data, user_of(client), FEED_REQUESTS + 4)
        socket = await client.ws_connect("/ws?locale=zh-CN", headers={"Origin": str(client.make_url("/")).rstrip("/")})
        try:
            hello = json.loads((await asyncio.wait_for(socket.receive(), WAIT)).data)
        finally:
            await socket.close()
    assert hello["type"] == "hello"
    feed = hello["feed"]
    assert [m["request_id"] for m in feed] == ids[-FEED_REQUESTS:], "the newest requests, oldest first, the newest at the bottom"
    assert all(m["kind"] == "image" and actions(m) == [Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX] for m in feed)
    assert t("delivered", "zh-Hans", style=STYLE_NAMES["paprika"]["zh"], seed=len(ids) - 1) in feed[-1]["text"], feed[-1]["text"]
    await client.close()


async def test_the_gallery_pages_through_every_picture(sqlite_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running(ScriptedEngine(), sqlite_url, data) as studio:
        alice, bob = LiveClient(studio.adapter.url), LiveClient(studio.adapter.url, "127.0.0.2")
        try:
            for client in (alice, bob):
                await (await client.get("/")).release()
            ids = await seed_pictures(sqlite_url, data, user_of(alice), 60)
            await seed_pictures(sqlite_url, data, user_of(bob), 3)

            pages, cursor = [], None
            while True:
                async with alice.get("/api/gallery" + (f"?before={cursor}" if cursor else "")) as response:
                    assert response.status == 200
                    page = await response.json()
                pages.append([item["request_id"] for item in page["items"]])
                cursor = page["next"]
                if cursor is None:
                    break
                assert cursor == pages[-1][-1]
            assert [len(p) for p in pages] == [GALLERY_SIZE, 60 - GALLERY_SIZE]
            assert [i for p in pages for i in p] == ids[::-1], "every picture once, newest first"
            async with alice.get(f"/gallery/{pages[-1][-1]}") as oldest:
                assert oldest.status == 200 and (await oldest.read()).startswith(b"\x89PNG")

            # another browser's cursor into alice's pictures gets nothing of hers
            async with bob.get(f"/api/gallery?before={ids[-1]}") as response:
                assert await response.json() == {"items": [], "next": None}
            async with bob.get("/api/gallery") as response:
                assert len((await response.json())["items"]) == 3
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.parametrize("state", [S.CANCELLED, S.EXPIRED])
async def test_requests_that_ended_without_a_picture_are_not_shown_again(sqlite_url: str, tmp_path: Path, state: S) -> None:
    data, port = tmp_path / "data", free_port()
    engine = ScriptedEngine()
    async with running(engine, sqlite_url, data, port) as studio:
        client = LiveClient(studio.adapter.url)
        alice = Browser(client)
        await alice.open()
        ended = await card(alice, "a lighthouse in a storm")
        kept = await card(alice, "a fox in the snow")
        assert await studio.repository.transition(ended["request_id"], state, from_states=[S.AWAITING_CONFIRMATION])
        await alice.close()
    async with running(ScriptedEngine(), sqlite_url, data, port):
        alice.received.clear()
        await alice.connect()
        feed = hello(alice)
        assert [m["request_id"] for m in feed] == [kept["request_id"]]
        await alice.close()
    await client.close()
