"""A newcomer's first minutes with no models, in Chromium: the studio shows its operator what to put where.

The studio's user is its operator. A voice note with no speech model, and a drawing with no drawing model,
each answer with a card that says which part is missing, a panel with the operator's fix (the model, the
path, the setting) and Retry; nothing said is lost. Behind the page: the real studio and conversation, the
real speech recognizer pointed at a Whisper directory that is not there yet, and a scripted job queue that
fails the drawing the way the engine does (``model.unavailable.drawing`` with the fix).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import JobFailed
from handlers.actions import Action
from tests.support.browser import CHROMIUM, Page, chromium_args, next_spec, open_page
from tests.support.web import Studio, studio_over
from tests.test_missing_models import WhisperNotYetHere

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh dev installs it)", allow_module_level=True)

SD_FIX = "SD_MODEL=models/anything-v5: put the diffusers model there (hf download stablediffusionapi/anything-v5 --local-dir models/anything-v5)"


@pytest.fixture
async def served(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[Studio, WhisperNotYetHere]]:
    engine = WhisperNotYetHere(tmp_path / "whisper-base")
    async with studio_over(engine, sqlite_url, tmp_path / "data") as studio:
        await studio.adapter.start(studio.conversation.handle)
        yield studio, engine
        for job_id in list(engine.handles):
            await engine.cancel(job_id)


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=chromium_args(), timeout=60_000)
        try:
            yield browser
        finally:
            await browser.close()


async def test_no_models_the_page_says_what_to_put_where_and_retry_finds_the_words(
    served: tuple[Studio, WhisperNotYetHere], chromium: Any, tmp_path: Path, english_voice_notes, whisper_model_dir: Path
) -> None:
    studio, engine = served
    page: Page = await open_page(chromium, studio, tmp_path / "shots")
    p = page.page

    # the first voice note: the speech model is missing
    await p.locator("#audio-file").set_input_files(str(english_voice_notes["ogg"].path))
    card = p.locator(".msg.kind-card", has_text="The speech model isn't installed on this server yet").last
    await card.wait_for()
    panel = card.locator(".fix")
    assert await panel.is_visible()
    fix = await panel.locator(".fix-text").inner_text()
    assert str(tmp_path / "whisper-base") in fix and "WHISPER_MODEL" in fix
    assert "terminal" not in (await card.inner_text()).lower()
    await page.shot("no-speech-model")

    # the operator puts the model there; Retry listens again, and the words are there
    shutil.copytree(whisper_model_dir, tmp_path / "whisper-base")
    await card.locator(f"button[data-action='{Action.RETRY_MISSING}']").click()
    heard = p.locator(".msg.kind-card", has_text="I heard (English").last
    await heard.wait_for(timeout=120_000)

    # Draw: the drawing model is missing; the card comes back with its words, the fix and Retry
    jobs = len(engine.specs)
    await heard.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, jobs + 1)
    engine.handles.pop(spec.job_id).publish(JobFailed("model.unavailable.drawing", SD_FIX, {"model": "drawing"}))
    again = p.locator(".msg.kind-card", has_text="The drawing model isn't installed on this server yet").last
    await again.wait_for()
    assert "girl with blue hair" in (await again.inner_text()).lower()
    assert await again.locator(".fix .fix-text").inner_text() == SD_FIX
    assert await again.locator(f"button[data-action='{Action.RETRY_MISSING}']").is_visible()
    await page.shot("no-drawing-model")
    assert page.errors == []
