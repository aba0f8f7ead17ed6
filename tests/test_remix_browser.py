"""The studio page in Chromium: a PNG with its drawing parameters dropped on the page offers Draw again / Remix,
and Remix's words are typed in a field under its prompt (there is no card to hold it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.image.imageio import png_bytes
from engine.image.png_info import PictureParameters
from handlers.actions import Action
from handlers.i18n import t
from tests.support.browser import CHROMIUM, chromium_args, dropped_files
from tests.support.browser import open_page as open_browser_page
from tests.support.scripted_engine import SpeechAndJobs
from tests.support.web import Studio, studio_over

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (scripts/setup.sh dev installs Debian's chromium)", allow_module_level=True)


@pytest.fixture
async def served(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Studio]:
    async with studio_over(local_engine, sqlite_url, tmp_path / "data") as studio:
        await studio.adapter.start(studio.conversation.handle)
        yield studio


async def test_a_dropped_drawing_offers_draw_again_and_remix_in_the_page(served: Studio, tmp_path: Path) -> None:
    drawn = PictureParameters(prompt="a red fox, anime style", steps=2, scheduler="dpmpp", guidance=1.0, seed=77, width=64, height=64, style="paprika")
    picture = png_bytes(Image.new("RGB", (64, 64), (200, 90, 40)), drawn)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=chromium_args(None), timeout=60_000)
        try:
            shots = tmp_path / "screenshots"
            shots.mkdir()
            opened = await open_browser_page(browser, served, shots, locale="en-US", viewport={"width": 1000, "height": 900})
            page: Any = opened.page
            page.set_default_timeout(120_000)
            files = await dropped_files(page, picture, "fox.png")
            await page.dispatch_event("body", "dragenter", {"dataTransfer": files})
            await page.dispatch_event("body", "drop", {"dataTransfer": files})
            offer = page.locator(f".msg:has(button[data-action='{Action.DRAW_AGAIN}'])").last
            await offer.wait_for()
            assert t("dropped.offer", "en") in await offer.inner_text()
            await opened.shot("png-offer")

            await offer.locator(f"button[data-action='{Action.DRAW_AGAIN}']").click()
            await page.wait_for_function("() => document.querySelectorAll('.msg.kind-image').length >= 1")

            await offer.locator(f"button[data-action='{Action.REMIX}']").click()
            field = page.locator("form.editor textarea").last
            await field.wait_for()
            await field.fill("a red fox in the snow")
            await field.press("Enter")
            card = page.locator(".msg.kind-card").last
            await card.wait_for()
            assert "Remix of your picture: Subtle" in await card.inner_text()
            await opened.shot("remix-card")
            await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
            await page.wait_for_function("() => document.querySelectorAll('.msg.kind-image').length >= 2")
            await opened.shot("remixed")
        finally:
            await browser.close()


async def test_a_remix_prompt_still_waiting_for_its_words_is_live_again_after_a_reload(served: Studio, tmp_path: Path) -> None:
    drawn = PictureParameters(prompt="a red fox, anime style", steps=2, scheduler="dpmpp", guidance=1.0, seed=77, width=64, height=64, style="paprika")
    picture = png_bytes(Image.new("RGB", (64, 64), (200, 90, 40)), drawn)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=chromium_args(None), timeout=60_000)
        try:
            shots = tmp_path / "screenshots"
            shots.mkdir()
            opened = await open_browser_page(browser, served, shots, locale="en-US", viewport={"width": 1000, "height": 900})
            page: Any = opened.page
            page.set_default_timeout(120_000)
            files = await dropped_files(page, picture, "fox.png")
            await page.dispatch_event("body", "drop", {"dataTransfer": files})
            offer = page.locator(f".msg:has(button[data-action='{Action.DRAW_AGAIN}'])").last
            await offer.locator(f"button[data-action='{Action.REMIX}']").click()
            await page.locator("form.editor textarea").last.wait_for()

            await page.reload()
            field = page.locator(".msg.kind-edit_prompt:not([hidden]) form.editor textarea")
            await field.wait_for()
            assert t("remix.prompt", "en") in await page.locator(".msg.kind-edit_prompt:not([hidden])").inner_text()
            assert await field.input_value() == "a red fox, anime style", "prefilled with the picture's words, as before the reload"
            await opened.shot("remix-prompt-reloaded")
            await field.fill("a red fox in the snow")
            await field.press("Enter")
            card = page.locator(".msg.kind-card").last
            await card.wait_for()
            assert "in the snow" in await card.inner_text() and "Remix of your picture: Subtle" in await card.inner_text()

            await page.reload()
            await page.locator(".msg.kind-card").last.wait_for()
            assert await page.locator("form.editor").count() == 0, "answered: the prompt is an old one now"
        finally:
            await browser.close()
