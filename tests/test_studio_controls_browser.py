"""The studio's creative controls in Chromium, as a person uses them: the status bar of a drawing and of an upscale
(filled to its percentage, before and after a reload), the sketch pad drawn with a finger on a phone, and the gallery
naming what each picture is.

Behind the page: the real studio and conversation over a :class:`ScriptedEngine` the test drives (the fixtures of
:mod:`tests.test_web_page`). The assertions are on what the user sees: pixels of the bar and the canvas, the words.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.api import UPSCALING, JobFinished, JobProgress, JobResult, JobStarted
from handlers.actions import Action
from handlers.i18n import t
from tests import test_web_page
from tests.support.browser import Page, illustration, next_spec, open_page
from tests.support.scripted_engine import ScriptedEngine
from tests.support.web import Studio
from tests.test_web_page import ask, picture_of

# The studio page's fixtures: the studio on a loopback port over the scripted engine, Chromium, the screenshots.
served = test_web_page.served
engine = test_web_page.engine
chromium = test_web_page.chromium
microphone_wav = test_web_page.microphone_wav
shots = test_web_page.shots
keep_screenshots = test_web_page.keep_screenshots

pytestmark = pytest.mark.slow
PICTURE = illustration()
#: The page's accent colour (style.css ``--accent``, light scheme): the filled part of a bar.
ACCENT = (0x6D, 0x3E, 0xF5)


def close_to(colour: tuple[int, ...], target: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=False))


async def bar_fill(page: Page, request_id: str) -> list[bool]:
    """Whether the status bar of ``request_id`` is accent-coloured at 10 %, 30 %, … 90 % of its width (a screenshot)."""
    bar = page.page.locator(f".msg[data-request-id='{request_id}'] progress.bar")
    await page.page.wait_for_timeout(400)  # the bar's fill eases in
    shot = Image.open(io.BytesIO(await bar.screenshot())).convert("RGB")
    return [close_to(shot.getpixel((int(shot.width * x / 10), shot.height // 2)), ACCENT) for x in (1, 3, 5, 7, 9)]


async def reload(page: Page) -> None:
    await page.page.reload()
    await page.page.wait_for_selector("body[data-connected='true']")


async def test_the_status_bar_fills_to_its_percentage_for_a_drawing_and_an_upscale_and_after_a_reload(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    card = await ask(page, "a girl with blue hair under cherry blossoms")
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, 1)
    engine.handles[spec.job_id].publish(JobStarted())
    engine.handles[spec.job_id].publish(JobProgress(0.5, "diffusion"))
    await p.locator(f".msg[data-request-id='{spec.job_id}'] progress.bar[value='50']").wait_for()
    assert await bar_fill(page, spec.job_id) == [True, True, False, False, False], "half the bar is filled at 50 %"
    await page.shot("drawing-half")
    handle = engine.handles.pop(spec.job_id)
    handle.publish(JobFinished(JobResult(spec.job_id, PICTURE, spec.style, base_png=PICTURE, seed=spec.seed, model="scripted")))
    picture = await picture_of(page, spec.job_id)

    # ⬆️ Upscale ×2: "Making it bigger… n%" with its bar, the same after a reload, then the bigger picture to download
    await picture.locator(f"button[data-action='{Action.UPSCALE}']").click()
    await p.locator(f".msg button[data-action='{Action.UPSCALE}'][data-press$=':2']").last.click()
    spec = await next_spec(engine, 2)
    assert spec.kind == "upscale" and spec.scale == 2
    engine.handles[spec.job_id].publish(JobStarted())
    engine.handles[spec.job_id].publish(JobProgress(0.75, UPSCALING))
    status = p.locator(f".msg.kind-progress[data-request-id='{spec.job_id}']")
    bigger = t("progress.upscaling", "en", percent=75)
    await status.filter(has_text=bigger).wait_for()
    assert await bar_fill(page, spec.job_id) == [True, True, True, True, False]
    await page.shot("upscaling")
    await reload(page)
    await status.filter(has_text=bigger).wait_for()
    assert await bar_fill(page, spec.job_id) == [True, True, True, True, False], "the bar is back, as full, after a reload"
    assert await status.locator(f"button[data-action='{Action.CANCEL}']").is_visible()
    await page.shot("upscaling-reloaded")

    big = io.BytesIO()
    Image.open(io.BytesIO(PICTURE)).resize((1024, 1024)).save(big, format="PNG")
    handle = engine.handles.pop(spec.job_id)
    handle.publish(JobFinished(JobResult(spec.job_id, big.getvalue(), spec.style, seed=spec.seed, model="scripted")))
    upscaled = await picture_of(page, spec.job_id)
    assert t("upscaled", "en", scale=2, width=1024, height=1024) in await upscaled.inner_text()
    async with p.expect_download() as download_info:
        await upscaled.locator("a.download").click()
    download = await download_info.value
    assert download.suggested_filename.endswith("-x2.png"), download.suggested_filename
    assert page.errors == [], page.errors
