"""The studio page in a real browser: Debian's Chromium driven by Playwright, with a fake microphone.

Chromium plays an espeak-ng clip as its microphone (``--use-fake-device-for-media-stream
--use-file-for-fake-audio-capture``; ``--use-fake-ui-for-media-stream`` grants the
permission), so the page records it with MediaRecorder exactly as it would a voice:
hold the button → the card shows the transcript → Edit in the card → Draw it →
progress → the picture, downloadable; a photo dropped on the page → an anime
picture; the gallery; the Chinese page on a phone-sized screen, recording by
click-to-start / click-to-send. Behind the page: the real
studio, conversation and engine on the tiny models. Each state is saved as a
screenshot in the test's tmp dir; the assertions are on the DOM.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``
(``scripts/setup.sh dev`` installs it); without it the test is skipped with a reason.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handlers.actions import Action
from handlers.i18n import t
from tests.support.browser import CHROMIUM, PHONE, Page, chromium_args, dropped_files
from tests.support.browser import open_page as open_browser_page
from tests.support.conversation import CountingTextToImage
from tests.support.scripted_engine import SpeechAndJobs
from tests.support.speech import ENGLISH_TEXT
from tests.support.web import Studio, studio_over

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (scripts/setup.sh dev installs Debian's chromium)", allow_module_level=True)

TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1000, "height": 900}


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The English sentence as 16-bit mono WAV (what Chromium's fake audio capture plays)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed for the microphone clip")
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), ENGLISH_TEXT], check=True, capture_output=True)
    return path


@pytest.fixture
async def served(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Studio]:
    """The studio listening on a free loopback port."""
    async with studio_over(local_engine, sqlite_url, tmp_path / "data") as studio:
        await studio.adapter.start(studio.conversation.handle)
        yield studio


@pytest.fixture
async def chromium(microphone_wav: Path) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=chromium_args(microphone_wav), timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, studio: Studio, shots: Path, *, locale: str, viewport: dict[str, int] | None = None) -> Page:
    page = await open_browser_page(browser, studio, shots, locale=locale, viewport=viewport or VIEWPORT)
    page.page.set_default_timeout(TIMEOUT_MS)
    return page


async def test_voice_edit_draw_download_photo_gallery_and_the_chinese_page(
    served: Studio, chromium: Any, flow_text_to_image: CountingTextToImage, microphone_wav: Path, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    en = await open_page(chromium, served, shots, locale="en-US")
    page = en.page
    assert await page.locator("#mic-label").inner_text() == "🎙 Hold to talk"
    assert await page.locator("#text").get_attribute("placeholder") == t("command.anime.text", "en")
    await en.shot("empty-en")

    # hold to talk: the fake microphone speaks while the button is held
    await page.locator("#mic").hover()
    await page.mouse.down()
    await page.wait_for_selector("#mic.recording")
    await page.wait_for_timeout(1_500)
    await en.shot("recording")
    with wave.open(str(microphone_wav)) as clip:  # hold as long as the clip (Chromium plays it in a loop)
        seconds = clip.getnframes() / clip.getframerate()
    await page.wait_for_timeout(seconds * 1000 - 1_000)
    await page.mouse.up()

    card = page.locator(".msg.kind-card").last
    await card.wait_for()
    heard = await card.locator(".text").inner_text()
    assert "blue hair" in heard.lower() and "\n" in heard, heard
    assert await card.locator(f"button[data-action='{Action.CONFIRM}']").count() == 1
    await en.shot("card")

    # Edit in place: a text field inside the card, filled with what was heard
    await card.locator(f"button[data-action='{Action.EDIT}']").click()
    field = card.locator("form.editor textarea")
    await field.wait_for()
    assert "blue hair" in (await field.input_value()).lower()
    await en.shot("edit")
    await field.fill("a girl with green hair reading a book")
    await card.locator("form.editor button[type='submit']").click()
    edited = page.locator(".msg.kind-card", has_text="green hair")
    await edited.wait_for()
    await en.shot("edited")

    # Draw it: the card becomes the status (held at the first step for its screenshot), then the picture
    flow_text_to_image.hold()
    await edited.locator(f"button[data-action='{Action.CONFIRM}']").click()
    status = page.locator(".msg.kind-progress").last
    await status.wait_for()
    assert await status.locator(f"button[data-action='{Action.CANCEL}']").count() == 1, "progress has a Cancel button"
    await en.shot("progress")
    await page.evaluate(
        """() => { window.previews = 0; new MutationObserver(() => {
              if (document.querySelector('.msg.kind-progress img')) window.previews += 1;
           }).observe(document.getElementById('feed'), {childList: true, subtree: true}); }"""
    )
    flow_text_to_image.release()
    finished = page.locator(".msg.kind-image").last
    await finished.wait_for()
    await page.wait_for_function("() => document.querySelector('.msg.kind-image img').naturalWidth > 0")
    assert await page.evaluate("window.previews") > 0, "a preview of the picture forming was shown"
    actions = await finished.locator("button").evaluate_all("buttons => buttons.map(b => b.dataset.action)")
    assert set(actions) == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
    await en.shot("picture")
    async with page.expect_download() as download_info:
        await finished.locator("a.download").click()
    download = await download_info.value
    assert download.suggested_filename.startswith("voice2anime-") and download.suggested_filename.endswith(".png")
    saved = tmp_path / "downloaded.png"
    await download.save_as(str(saved))
    assert saved.read_bytes().startswith(b"\x89PNG")

    # a photo dropped on the page -> an anime picture
    photo = io.BytesIO()
    Image.new("RGB", (120, 90), (240, 170, 120)).save(photo, format="PNG")
    dropped = await dropped_files(page, photo.getvalue(), "holiday.png")
    await page.dispatch_event("body", "dragenter", {"dataTransfer": dropped})
    assert await page.locator("#drop").is_visible(), "dragging a file over the page shows where to drop it"
    await page.dispatch_event("body", "drop", {"dataTransfer": dropped})
    await page.wait_for_function("() => document.querySelectorAll('.msg.kind-image').length >= 2")
    assert await page.locator("#drop").is_hidden()
    assert await page.locator(".msg.mine img").count() == 1, "the dropped photo is the user's own bubble in the feed"
    await en.shot("photo")

    # the gallery: both pictures, newest first; a tile shows its picture again in the studio, with its buttons
    await page.locator("#tab-gallery").click()
    await page.wait_for_function("() => document.querySelectorAll('#gallery-grid .tile').length === 2")
    loaded = "() => [...document.querySelectorAll('#gallery-grid img')].every(i => i.complete && i.naturalWidth)"
    await page.wait_for_function(loaded)  # the tiles' pictures come from the history database
    await en.shot("gallery")
    await page.locator("#gallery-grid .tile button.open").last.click()
    await page.wait_for_function("() => document.querySelectorAll('.msg.kind-image').length >= 3")
    assert await page.locator("#studio").is_visible()
    assert await page.locator(".msg.kind-image").last.locator(f"button[data-action='{Action.REROLL}']").count() == 1

    # the language switch turns the page Chinese
    await page.locator("#lang").select_option("zh-Hans")
    assert await page.locator("#mic-label").inner_text() == "🎙 按住说话"
    assert en.errors == [], en.errors

    # a new browser that prefers Chinese, on a phone: its own empty studio, in Chinese
    zh = await open_page(chromium, served, shots, locale="zh-CN", viewport=PHONE)
    assert await zh.page.locator("h1").inner_text() == "voice2anime 工作室"
    assert await zh.page.locator(".msg").count() == 0, "another browser sees nothing of the first one's"
    # click once to start recording, again to send (the fake microphone speaks English; the card is in Chinese)
    await zh.page.locator("#mic").click()
    await zh.page.wait_for_selector("#mic.recording")
    await zh.page.wait_for_timeout(3_000)
    assert "录音中" in await zh.page.locator("#mic-label").inner_text(), "a click keeps recording after the button is let go"
    await zh.page.locator("#mic").click()
    heard_card = zh.page.locator(".msg.kind-card").last
    await heard_card.wait_for()
    assert t("card.understood", "zh-Hans") in await heard_card.inner_text()
    retry = heard_card.locator(f"button[data-action='{Action.RETRY}']")
    assert await retry.count() == 1, "a voice card offers 'Heard wrong language'"
    await zh.page.locator("#text").fill("樱花树下蓝色头发的女孩")
    await zh.page.locator("#send").click()
    zh_card = zh.page.locator(".msg.kind-card", has_text="樱花树下蓝色头发的女孩")
    await zh_card.wait_for()
    assert t("card.understood", "zh-Hans") in await zh_card.inner_text()
    assert await zh.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "nothing wider than a phone"
    await zh.shot("zh-phone")
    assert zh.errors == [], zh.errors
    assert len(list(shots.glob("*.png"))) == 10
