"""The studio: a photo with a description (over HTTP/WebSocket) and the sketch pad (in Chromium), drawn with ControlNet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.image.control import ControlConfig, ControlNets
from engine.image.pipeline import AnimePipeline
from engine.speech.asr import SpeechRecognizer
from handlers.actions import Action
from handlers.i18n import t
from tests.support.browser import CHROMIUM
from tests.support.browser import open_page as open_browser_page
from tests.support.conversation import SpeechAndJobs
from tests.support.web import Studio, browsers, studio_over
from tests.test_control import sketch
from tests.test_control_chat import engine_with, photo_jpeg, png_of

KEEPS = t("card.keeps", "en")


@pytest.fixture
async def local_engine(
    recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path
) -> AsyncIterator[SpeechAndJobs]:
    """The session models with the tiny ControlNets."""
    nets = ControlNets(ControlConfig(models={kind: str(tiny_controlnet_dir) for kind in ("lineart", "scribble")}))
    engine = await engine_with(recognizer, anime_pipeline, nets)
    yield engine
    await engine.close()


@pytest.fixture
async def studio(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Studio]:
    async with studio_over(local_engine, sqlite_url, tmp_path / "data") as made:
        yield made


async def test_a_photo_with_a_description_keeps_its_outline(studio: Studio) -> None:
    async with browsers(studio) as (browser,):
        response = await browser.client.post(
            "/upload/photo?locale=en-US&caption=a+fox+in+the+snow",
            data=photo_jpeg(),
            headers={"Origin": browser.origin, "Content-Type": "image/jpeg"},
        )
        assert response.status == 202
        card = await browser.wait_message(browser.with_button(Action.CONFIRM))
        assert "a fox in the snow" in card["text"]
        assert t("card.field", "en", label=KEEPS, value=t("control.lineart", "en")) in card["text"]
        await browser.press(card, Action.CONFIRM)
        picture = await browser.wait_message(lambda m: m["kind"] == "image")
        assert picture["buttons"]


async def test_a_sketch_sent_without_words_waits_for_a_voice_note(studio: Studio, english_voice_notes: dict[str, Any]) -> None:
    async with browsers(studio) as (browser,):
        response = await browser.client.post(
            "/upload/photo?locale=en-US&sketch=1", data=png_of(sketch()), headers={"Origin": browser.origin, "Content-Type": "image/png"}
        )
        assert response.status == 202
        await browser.wait_message(lambda m: m["text"] == t("sketch.ask", "en"))
        assert (await browser.upload("voice", english_voice_notes["ogg"].path.read_bytes(), "audio/ogg")).status == 202
        card = await browser.wait_message(browser.with_button(Action.CONFIRM))
        assert "blue hair" in card["text"].lower()
        assert t("card.field", "en", label=KEEPS, value=t("control.scribble", "en")) in card["text"]


@pytest.mark.slow
async def test_the_sketch_pad_in_chromium(studio: Studio, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (scripts/setup.sh dev installs Debian's chromium)")
    await studio.adapter.start(studio.conversation.handle)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, timeout=60_000)
        try:
            shown = await open_browser_page(chromium, studio, shots, locale="en-US")
            page: Any = shown.page
            page.set_default_timeout(120_000)
            await page.locator("#sketch-open").click()
            canvas = page.locator("#sketch-canvas")
            await canvas.wait_for()
            box = await canvas.bounding_box()

            async def stroke(points: list[tuple[float, float]]) -> None:
                x, y = points[0]
                await page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
                await page.mouse.down()
                for x, y in points[1:]:
                    await page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=5)
                await page.mouse.up()

            async def ink() -> float:
                return await page.evaluate(
                    """() => { const c = document.getElementById('sketch-canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++; return dark / (d.length / 4); }"""
                )

            assert await page.locator("#sketch-undo").is_disabled()
            await stroke([(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)])
            one = await ink()
            await stroke([(0.1, 0.5), (0.9, 0.5)])
            two = await ink()
            assert 0 < one < two
            await page.locator("#sketch-undo").click()
            assert abs(await ink() - one) < 1e-3, "Undo took the last stroke back"
            await shown.shot("sketch")
            await page.locator("#sketch-send").click()  # no words yet: the studio asks what it is
            await page.locator(".msg", has_text=t("sketch.ask", "en")).wait_for()
            assert not await page.locator("#sketch").evaluate("dialog => dialog.open")
            assert await page.locator(".msg.mine-photo img").count() == 1, "the sketch shows as the user's own picture"
            await page.locator("#text").fill("a house with a garden")
            await page.locator("#text").press("Enter")
            card = page.locator(".msg.kind-card", has_text="a house with a garden")
            await card.wait_for()
            assert t("control.scribble", "en") in await card.inner_text()
            await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
            finished = page.locator(".msg.kind-image").last
            await finished.wait_for()
            await page.wait_for_function("() => document.querySelector('.msg.kind-image img').naturalWidth > 0")
            await shown.shot("sketch-picture")
        finally:
            await chromium.close()
