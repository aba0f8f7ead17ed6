"""The studio page in Chromium: a card's Edit field still waiting for its words is there again after a reload,
and one whose words were given, or whose card was drawn, is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handlers.actions import Action
from tests.support.browser import CHROMIUM, chromium_args
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


async def test_an_edit_still_waiting_for_its_words_is_open_again_on_its_card_after_a_reload(served: Studio, tmp_path: Path) -> None:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=chromium_args(None), timeout=60_000)
        try:
            shots = tmp_path / "screenshots"
            shots.mkdir()
            opened = await open_browser_page(browser, served, shots, locale="en-US", viewport={"width": 1000, "height": 900})
            page: Any = opened.page
            page.set_default_timeout(120_000)
            await page.locator("#text").fill("a girl with blue hair")
            await page.locator("#text").press("Enter")
            card = page.locator(".msg.kind-card", has_text="blue hair")
            await card.locator(f"button[data-action='{Action.EDIT}']").click()
            await card.locator("form.editor textarea").wait_for()

            await page.reload()
            field = page.locator(".msg.kind-card", has_text="blue hair").locator("form.editor textarea")
            await field.wait_for()
            assert await field.input_value() == "a girl with blue hair", "the card's words, as before the reload"
            assert await page.locator(".msg.kind-edit_prompt:not([hidden])").count() == 0, "the card holds the field"
            await opened.shot("edit-reloaded")
            await field.fill("a girl with green hair")
            await field.press("Enter")
            edited = page.locator(".msg.kind-card", has_text="green hair")
            await edited.wait_for()

            await page.reload()
            await page.locator(".msg.kind-card", has_text="green hair").wait_for()
            assert await page.locator("form.editor").count() == 0, "answered: nothing waits for words any more"

            edited = page.locator(".msg.kind-card", has_text="green hair")
            await edited.locator(f"button[data-action='{Action.EDIT}']").click()
            await edited.locator("form.editor textarea").wait_for()
            await edited.locator(f"button[data-action='{Action.CONFIRM}']").click()
            await page.locator(".msg.kind-image").last.wait_for()
            await page.reload()
            await page.locator(".msg.kind-image").last.wait_for()
            assert await page.locator("form.editor").count() == 0, "drawn: the card is closed, its Edit is forgotten"
            await opened.shot("drawn-reloaded")
        finally:
            await browser.close()
