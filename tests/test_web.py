"""The web studio's protocol over aiohttp's test client: every action, browsers kept apart, limits, password mode.

Behind the adapter run the real ``Conversation``, ``Repository`` (SQLite) and
``LocalJobQueue`` on the tiny models (tests/support/conversation.py); each
:class:`~tests.support.web.Browser` is a separate cookie jar speaking the
page's protocol. The real page in a real browser: tests/test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bot import factory
from bot.app import NoAdapterError, adapters_from, run
from bot.cli import main
from bot.settings import Settings
from bot.startup_errors import BadInputError
from bot.web import WebConfig
from bot.web_session import LOGIN_TRIES, Signer, load_secret
from handlers import cards
from handlers.actions import Action
from handlers.conversation.routes import COMMAND_NAMES
from handlers.i18n import error_text, t
from tests.support.scripted_engine import RED_SAN, ScriptedEngine, SpeechAndJobs
from tests.support.web import SECRET, Browser, Studio, browsers, studio_over, webm_voice_note

TEXT = "a girl with blue hair under cherry blossoms at night"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def studio(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> Any:
    async with studio_over(local_engine, sqlite_url, tmp_path / "data") as running:
        yield running


def photo_png(size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (230, 120, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


async def card_for(browser: Browser, text: str = TEXT) -> dict[str, Any]:
    await browser.command("anime", text)
    return await browser.wait_message(lambda m: m["kind"] == "card" and text in m["text"])


async def picture(browser: Browser, count: int = 1) -> dict[str, Any]:
    """The newest finished picture once ``count`` of them are shown."""
    await browser.wait_for(lambda: len(browser.of_kind("image")) >= count)
    return browser.of_kind("image")[-1]


# --- the conversation in the studio -------------------------------------------------------------


async def test_voice_note_recorded_as_webm_edit_draw_restyle_reroll_original_download_gallery(
    studio: Studio, english_voice_notes, tmp_path: Path
) -> None:
    webm = webm_voice_note(english_voice_notes["wav"].path, tmp_path / "recording.webm")
    async with browsers(studio) as (alice,):
        response = await alice.upload("voice", webm.read_bytes(), "audio/webm;codecs=opus")
        assert response.status == 202

        card = await alice.wait_message(alice.with_button(Action.CONFIRM))
        assert card["kind"] == "card" and "girl with blue hair" in card["text"].lower()
        assert "\n" in card["text"], "the card's lines travel as they are (the page keeps the line breaks)"
        transcribing = next(m for m in alice.received if m.get("op") == "send")
        assert transcribing["kind"] == "progress" and transcribing["text"] == t("transcribing", "en")
        assert transcribing["ref"] == card["ref"], "the 'listening' message became the card in place"

        # Edit: an edit prompt for this card, prefilled with what was heard
        await alice.press(card, Action.EDIT)
        prompt = await alice.wait_message(lambda m: m["kind"] == "edit_prompt")
        assert prompt["request_id"] == card["request_id"] and "blue hair" in prompt["prefill"].lower()
        await alice.send({"type": "text", "text": "a girl with green hair reading a book", "request_id": prompt["request_id"]})
        edited = await alice.wait_message(lambda m: m["kind"] == "card" and "green hair" in m["text"])
        await alice.wait_for(lambda: alice.messages[card["ref"]]["kind"] != "card")  # the old card was retired
        assert alice.messages[card["ref"]]["buttons"] == []

        # Draw it: progress (with previews) in one message, then the picture with its buttons and a download link
        await alice.press(edited, Action.CONFIRM)
        finished = await picture(alice)
        status = await alice.wait_for(lambda: (m := alice.messages[edited["ref"]])["kind"] != "progress" and m)
        progress = [m for m in alice.received if m.get("ref") == edited["ref"] and m["kind"] == "progress"]
        assert progress, "the card became the status message"
        assert any(m["image"] for m in progress), "a preview of the picture forming was shown"
        assert status["buttons"] == [], "no Cancel left once delivered"
        assert {b["data"].split(":")[0] for row in finished["buttons"] for b in row} == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
        image = await alice.client.get(finished["image"])
        assert image.status == 200 and image.headers["Content-Type"] == "image/png" and (await image.read()).startswith(PNG)
        download = await alice.client.get(finished["download"])
        assert download.headers["Content-Disposition"] == f'attachment; filename="voice2anime-{edited["request_id"][:8]}.png"'

        # Restyle -> a style picker -> another style
        await alice.press(finished, Action.RESTYLE)
        picker = await alice.wait_message(alice.with_button(Action.RESTYLE_AS))
        await alice.press(picker, Action.RESTYLE_AS, "paprika")
        restyled = await picture(alice, 2)
        assert "Paprika" in restyled["text"]
        # Reroll and Original
        await alice.press(finished, Action.REROLL)
        await picture(alice, 3)
        await alice.press(finished, Action.BASE)
        base = await picture(alice, 4)
        assert base["text"] == t("base_image", "en") and base["download"]

        # the gallery lists the finished pictures from the database, newest first
        page = await (await alice.client.get("/api/gallery")).json()
        gallery = page["items"]
        assert page["next"] is None and len(gallery) == 3 and gallery[-1]["request_id"] == edited["request_id"]
        assert gallery[-1]["description"] == "a girl with green hair reading a book"
        assert gallery[0]["style"]["zh-Hans"]
        stored = await alice.client.get(gallery[-1]["image"])
        assert (await stored.read()).startswith(PNG)
        saved = await alice.client.get(gallery[-1]["download"])
        assert saved.headers["Content-Disposition"] == f'attachment; filename="voice2anime-{edited["request_id"][:8]}.png"'
        # pressing a gallery tile shows the picture again with its buttons
        await alice.send({"type": "press", "data": gallery[-1]["press"], "ref": ""})
        again = await picture(alice, 5)
        assert again["request_id"] == edited["request_id"] and again["buttons"]

        # a reloaded page (a new socket) gets the conversation as it is
        await alice.close()
        await alice.connect()
        assert alice.messages[again["ref"]]["image"] == again["image"]


async def test_heard_wrong_language_style_details_cancel(studio: Studio, english_voice_notes) -> None:
    async with browsers(studio) as (alice,):
        await alice.upload("voice", english_voice_notes["ogg"].path.read_bytes(), "audio/ogg")
        card = await alice.wait_message(alice.with_button(Action.CONFIRM))

        await alice.press(card, Action.RETRY)
        picker = await alice.wait_message(alice.with_button(Action.RETRY_AS))
        before = len(alice.received)
        await alice.press(picker, Action.RETRY_AS, "en")
        again = await alice.wait_for(
            lambda: next(
                (m for m in alice.received[before:] if m.get("kind") == "card" and m["request_id"] == card["request_id"]), None
            )
        )

        await alice.press(again, Action.STYLE)
        styles = await alice.wait_message(alice.with_button(Action.STYLE_SET))
        await alice.press(styles, Action.STYLE_SET, "paprika")
        await alice.wait_for(lambda: t("style.set", "en", style="Paprika") in alice.notes)
        current = await alice.wait_message(lambda m: m["kind"] == "card" and "Paprika" in m["text"])

        await alice.press(current, Action.DETAILS, "1")
        detailed = await alice.wait_message(lambda m: m["kind"] == "card" and t("card.prompt", "en") in m["text"])
        await alice.press(detailed, Action.CANCEL)
        await alice.wait_for(lambda: alice.messages[detailed["ref"]]["text"] == t("cancelled", "en"))
        assert alice.messages[detailed["ref"]]["buttons"] == []


async def test_keep_what_i_said_round_trips(sqlite_url: str, tmp_path: Path) -> None:
    """A corrected word's card carries "Keep what I said"; pressing it changes the card in place, without the button."""
    engine = ScriptedEngine(transcript=RED_SAN, review=True)
    async with studio_over(engine, sqlite_url, tmp_path / "data") as studio, browsers(studio) as (alice,):
        await alice.upload("voice", b"OggS", "audio/ogg")
        card = await alice.wait_message(alice.with_button(Action.KEEP_SAID))
        assert "I changed 散 → " in card["text"]
        await alice.press(card, Action.KEEP_SAID)
        kept = await alice.wait_for(lambda: "紅散" in alice.messages[card["ref"]]["text"] and alice.messages[card["ref"]])
        assert kept["text"].splitlines()[1] == "“一個長頭髮的女孩在雨中撐著紅散”"
        assert not alice.with_button(Action.KEEP_SAID)(kept) and alice.with_button(Action.CONFIRM)(kept)


async def test_commands_settings_and_language(studio: Studio) -> None:
    async with browsers(studio) as (alice,):
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("en", group=False, commands=COMMAND_NAMES).text)
        await alice.command("history")
        await alice.wait_message(lambda m: m["text"] == t("history.empty", "en"))

        await alice.send({"type": "locale", "locale": "zh-CN"})
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("zh-Hans", group=False, commands=COMMAND_NAMES).text)

        await alice.command("settings")
        settings = await alice.wait_message(alice.with_button(Action.SET_LANGUAGE))
        await alice.press(settings, Action.SET_LANGUAGE)  # opens the picker
        picker = await alice.wait_message(lambda m: m["text"] == t("settings.choose_language", "zh-Hans"))
        await alice.press(picker, Action.SET_LANGUAGE, "zh-Hant")
        await alice.wait_for(lambda: t("settings.saved", "zh-Hant") in alice.notes)
        await alice.wait_for(lambda: alice.messages[picker["ref"]]["text"].startswith("設定\n語言：中文（繁體）"))
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("zh-Hant", group=False, commands=COMMAND_NAMES).text)
        await alice.press(alice.messages[picker["ref"]], Action.SET_LANGUAGE)
        picker = await alice.wait_message(lambda m: m["text"] == t("settings.choose_language", "zh-Hant"))
        await alice.press(picker, Action.SET_LANGUAGE, "en")
        await alice.wait_for(lambda: t("settings.saved", "en") in alice.notes)
        await alice.command("nonsense")
        await alice.wait_message(lambda m: m["text"] == t("unknown_command", "en"))


async def test_photo_upload_becomes_an_anime_picture_under_the_photo_kept_in_the_feed(studio: Studio) -> None:
    async with browsers(studio, 2) as (alice, bob):
        response = await alice.upload("photo", photo_png(), "image/png")
        assert response.status == 202
        finished = await picture(alice)
        assert {b["data"].split(":")[0] for row in finished["buttons"] for b in row} == {Action.RESTYLE, Action.BASE, Action.UPSCALE}
        assert (await (await alice.client.get(finished["image"])).read()).startswith(PNG)

        kept = (await response.json())["ref"]
        assert kept not in alice.messages, "not sent to the tab that shows it already"
        await alice.reconnect()
        feed = list(alice.messages.values())
        assert feed[0]["ref"] == kept and feed[0]["kind"] == "mine", "the user's photo first, above the replies about it"
        assert await (await alice.client.get(feed[0]["image"])).read() == photo_png()
        assert (await bob.client.get(feed[0]["image"])).status == 404, "only its sender's browser gets it"


async def test_two_browsers_never_see_each_others_requests_or_pictures(studio: Studio) -> None:
    async with browsers(studio, 2) as (alice, bob):
        card = await card_for(alice)
        await alice.upload("photo", photo_png(), "image/png")
        finished = await picture(alice)
        await studio.conversation.wait_idle()
        alice_gallery = (await (await alice.client.get("/api/gallery")).json())["items"]
        assert len(alice_gallery) == 1

        # bob presses alice's buttons (he learned the payload and the message reference somehow)
        await bob.press(card, Action.CONFIRM)
        await bob.press(finished, Action.RESTYLE)
        await bob.send({"type": "text", "text": "mine now", "request_id": card["request_id"]})
        await bob.wait_for(lambda: bob.notes.count(t("not_yours", "en")) >= 2)
        await asyncio.sleep(0.2)
        assert alice.messages[card["ref"]]["kind"] == "card", "alice's card is untouched"
        assert (await studio.repository.get_request(card["request_id"])).state.value == "awaiting_confirmation"

        # nothing of alice's reaches bob: no message, no picture, no gallery entry
        alices = (card["request_id"], finished["request_id"])
        assert not any(m.get("request_id") in alices for m in bob.received if m.get("type") == "message")
        assert all(TEXT not in str(m) for m in bob.received)
        assert (await bob.client.get(finished["image"])).status == 404
        assert (await bob.client.get(alice_gallery[0]["image"])).status == 404
        assert await (await bob.client.get("/api/gallery")).json() == {"items": [], "next": None}
        assert (await bob.client.get(f"/api/gallery?before={alice_gallery[0]['request_id']}")).status == 200
        assert (await (await bob.client.get(f"/api/gallery?before={alice_gallery[0]['request_id']}")).json())["items"] == []
        assert (await bob.client.get("/api/gallery?before=../x")).status == 400
        assert (await alice.client.get(finished["image"])).status == 200


# --- limits and bad input -----------------------------------------------------------------------


async def test_uploads_over_the_limits_and_bad_files_get_a_reason(
    local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path, bad_audio_files: dict[str, Path]
) -> None:
    limits = {"audio_max_bytes": 50_000, "photo_max_bytes": 40_000}
    async with studio_over(local_engine, sqlite_url, tmp_path / "data", **limits) as studio, browsers(studio) as (alice,):
        big = await alice.upload("voice", b"\0" * 50_001, "audio/webm")
        assert big.status == 413
        too_long = error_text("audio.too_large", "en", {"size_mb": 50_001 / 2**20, "limit_mb": 50_000 / 2**20})
        await alice.wait_message(lambda m: m["kind"] == "error" and m["text"] == too_long)
        big = await alice.upload("photo", b"\0" * 40_001, "image/png")
        assert big.status == 413
        too_big = error_text("image.too_large", "en", {"size_mb": 40_001 / 2**20, "limit_mb": 40_000 / 2**20})
        await alice.wait_message(lambda m: m["kind"] == "error" and m["text"] == too_big)

        # a body that is longer than it said (chunked, no Content-Length) is cut off at the limit too
        async def chunks() -> Any:
            for _ in range(20):
                yield b"\0" * 4096

        streamed = await alice.client.post(
            "/upload/photo", data=chunks(), headers={"Origin": alice.origin, "Content-Type": "image/png"}
        )
        assert streamed.status == 413

        assert (await alice.upload("photo", b"this is not a picture at all", "image/png")).status == 202
        assert (await alice.upload("voice", bad_audio_files["garbage"].read_bytes(), "audio/ogg")).status == 202
        assert (await alice.upload("voice", b"", "audio/ogg")).status == 202
        expected = {t("image.unreadable", "en"), t("audio.unsupported", "en"), t("audio.empty", "en")}
        await alice.wait_for(lambda: expected <= {m["text"] for m in alice.of_kind("error")})
        assert (await alice.upload("video", b"x")).status == 404


async def test_malformed_socket_messages_are_ignored_and_floods_closed(studio: Studio) -> None:
    async with browsers(studio) as (alice,):
        for junk in ("not json", "[]", '{"type": "command", "name": "DROP TABLE", "args": ""}', '{"type": "press", "data": "x"}',
                     '{"type": "locale", "locale": "<script>"}', '{"type": "teleport"}'):
            await alice.socket.send_str(junk)
        await alice.command("help")
        await alice.wait_message(lambda m: m["text"] == cards.help_text("en", group=False, commands=COMMAND_NAMES).text)
        assert not alice.socket.closed

        for _ in range(60):  # far over the rate a page sends
            await alice.socket.send_str('{"type": "locale", "locale": "en"}')
        await asyncio.wait_for(alice._reader, 10)
        assert alice.socket.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION

        await alice.connect()
        await alice.socket.send_bytes(b"\x00\x01")
        await asyncio.wait_for(alice._reader, 10)
        assert alice.socket.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA


async def test_cookie_origin_and_host_are_checked(studio: Studio) -> None:
    server = TestServer(studio.adapter.app, host="127.0.0.1")
    async with TestClient(server) as client:
        origin = str(client.make_url("/")).rstrip("/")
        # no cookie yet: no socket, no upload, no gallery
        assert (await client.get("/ws", headers={"Origin": origin})).status == 401
        assert (await client.post("/upload/voice", data=b"x", headers={"Origin": origin})).status == 401
        assert (await client.get("/api/gallery")).status == 401

        page = await client.get("/")
        assert page.status == 200 and "<title>" in await page.text()
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        for name in ("app.js", "style.css", "icon.svg"):
            assert (await client.get(f"/static/{name}")).status == 200
        assert (await client.get("/static/../web.py")).status == 404
        assert (await client.get("/static/index.html")).status == 404
        strings = await (await client.get("/strings.json")).json()
        assert set(strings) == {"en", "zh-Hans", "zh-Hant"} and set(strings["en"]) == set(strings["zh-Hans"]) == set(strings["zh-Hant"])
        assert strings["zh-Hant"]["mic.idle"] == "🎙 按住說話"

        # a page on another site cannot open a socket or upload with this browser's cookie
        for bad in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
            assert (await client.get("/ws", headers=bad)).status == 403
            assert (await client.post("/upload/voice", data=b"x", headers=bad)).status == 403
        socket = await client.ws_connect("/ws", headers={"Origin": origin})
        assert (await socket.receive_json())["type"] == "hello"
        await socket.close()

        # a forged cookie is a stranger
        client.session.cookie_jar.clear()
        forged = Signer(b"another-secret-another-secret-!!!").new_cookie()[1]
        response = await client.get("/ws", headers={"Origin": origin, "Cookie": f"{studio.adapter._cookie}={forged}"})
        assert response.status == 401

        # a name that is not loopback (DNS rebinding) gets nothing from a loopback studio
        rebound = await client.get("/", headers={"Host": "evil.example:7860"})
        assert rebound.status == 421 and "Set-Cookie" not in rebound.headers


async def test_password_mode(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="WEB_PASSWORD"):
        WebConfig(secret=SECRET, host="0.0.0.0")
    async with studio_over(local_engine, sqlite_url, tmp_path / "data", host="0.0.0.0", password="hunter2") as studio:
        server = TestServer(studio.adapter.app, host="127.0.0.1")
        async with TestClient(server) as client:
            origin = str(client.make_url("/")).rstrip("/")
            page = await client.get("/", headers={"Host": "studio.lan:7860"})
            assert page.status == 200, "a network studio answers any host name ..."
            assert "Set-Cookie" not in page.headers, "... but signs nobody in without the password"
            session = await (await client.get("/api/session")).json()
            assert session["password"] and not session["signed_in"]
            assert (await client.get("/ws", headers={"Origin": origin})).status == 401

            elsewhere = {"Origin": "http://evil.example"}
            assert (await client.post("/api/login", json={"password": "hunter2"}, headers=elsewhere)).status == 403
            for _ in range(LOGIN_TRIES):
                assert (await client.post("/api/login", json={"password": "guess"}, headers={"Origin": origin})).status == 403
            assert (await client.post("/api/login", json={"password": "hunter2"}, headers={"Origin": origin})).status == 429
            studio.adapter._throttle = type(studio.adapter._throttle)()  # a minute later

            assert (await client.post("/api/login", json={"password": "hunter2"}, headers={"Origin": origin})).status == 200
            assert (await (await client.get("/api/session")).json())["signed_in"]
            socket = await client.ws_connect("/ws", headers={"Origin": origin})
            assert (await socket.receive_json())["type"] == "hello"
            await socket.close()

    # a cookie from before the password (or from an old one) no longer opens the studio
    before = Signer(SECRET).new_cookie()[1]
    assert Signer(SECRET, "hunter2").user_of(before) is None
    assert Signer(SECRET, "hunter2").user_of(Signer(SECRET, "hunter2").new_cookie()[1])


def test_the_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    assert load_secret(tmp_path) == first and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "web_secret").stat().st_mode) == 0o600
    assert load_secret(tmp_path, "configured-secret") == b"configured-secret"


# --- starting ---------------------------------------------------------------------------------------


def test_which_adapters_run(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "web_secret": "s" * 40}
    assert [a.platform for a in adapters_from(Settings(**base))] == ["web"]
    with_token = Settings(**base, telegram_bot_token="123:abc", telegram_api_base_url="http://127.0.0.1:9/bot")
    assert [a.platform for a in adapters_from(with_token)] == ["telegram"]
    both = Settings(**base, telegram_bot_token="123:abc", web_enabled=True)
    assert [a.platform for a in adapters_from(both)] == ["web", "telegram"]
    with pytest.raises(NoAdapterError):
        asyncio.run(run(Settings(**base, web_enabled=False)))


def test_run_refuses_an_open_host_without_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: WEB_HOST=0.0.0.0") and "WEB_PASSWORD" in err
    assert not (tmp_path / "data").exists(), "refused before anything was made"


def test_cpu_gets_a_few_step_default_and_explicit_choices_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    config = factory.text_to_image(Settings()).config
    fast = (config.scheduler, config.lora, config.lora_scale, config.resolved_steps, config.resolved_guidance)
    assert fast == ("lcm", factory.CPU_LCM_LORA, 1.0, 4, 1.0)
    assert factory.text_to_image(Settings(sd_steps=20)).config.scheduler == "dpmpp"
    assert factory.text_to_image(Settings(sd_model="models/mine")).config.lora is None
    assert factory.text_to_image(Settings(torch_device="cpu", sd_scheduler="euler_a")).config.scheduler == "euler_a"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    gpu = factory.text_to_image(Settings()).config
    assert (gpu.scheduler, gpu.lora, gpu.resolved_steps) == ("dpmpp", None, 25), "a GPU keeps the full-quality default"


@pytest.mark.slow  # a real `voice2anime run` process
async def test_run_without_a_token_serves_the_studio_and_prints_its_address(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")} | {
        "WEB_PORT": "0",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "HF_HUB_OFFLINE": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        match = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", line)
        assert match, line
        async with aiohttp.ClientSession() as session, session.get(match.group(1)) as page:
            assert page.status == 200 and "app.js" in await page.text()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_reconnecting_page_gets_the_edit_prompt_of_an_open_card_live(studio: Studio) -> None:
    async def live_prompts(browser: Browser) -> list[bool]:
        await browser.reconnect()
        return [bool(m.get("live")) for m in browser.of_kind("edit_prompt")]

    async with browsers(studio) as (alice,):
        card = await card_for(alice)
        await alice.press(card, Action.EDIT)
        await alice.wait_message(lambda m: m["kind"] == "edit_prompt")
        await alice.press(card, Action.EDIT)  # asked again: only the newest prompt waits
        await alice.wait_for(lambda: len(alice.of_kind("edit_prompt")) == 2)
        assert await live_prompts(alice) == [False, True]

        await alice.send({"type": "text", "text": "a girl with green hair", "request_id": card["request_id"]})
        edited = await alice.wait_message(lambda m: m["kind"] == "card" and "green hair" in m["text"])
        assert await live_prompts(alice) == [False, False], "answered: no prompt waits any more"

        await alice.press(edited, Action.EDIT)
        await alice.wait_for(lambda: len(alice.of_kind("edit_prompt")) == 3)
        await alice.press(edited, Action.CONFIRM)
        await picture(alice)
        assert await live_prompts(alice) == [False, False, False], "drawn: the card is no longer open, its Edit is forgotten"
