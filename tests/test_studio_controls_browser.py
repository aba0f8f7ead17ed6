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
from tests.support.browser import PHONE, Page, illustration, next_spec, open_page
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


async def finger(page: Page, points: list[tuple[float, float]]) -> None:
    """A finger put down on the first point, moved through the others and lifted (Chromium's own touch input, over CDP)."""
    cdp = await page.page.context.new_cdp_session(page.page)
    touch = [{"x": x, "y": y, "id": 1} for x, y in points]
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [touch[0]]})
    for point in touch[1:]:
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await cdp.detach()
    await page.page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )  # handled and painted


INKED = """([x, y]) => { const c = document.getElementById('sketch-canvas'); const r = c.getBoundingClientRect();
    const px = c.getContext('2d').getImageData(Math.round((x - r.left) * c.width / r.width), Math.round((y - r.top) * c.height / r.height), 1, 1).data;
    return px[0] < 128; }"""


async def test_a_finger_draws_on_the_sketch_pad_without_scrolling_the_page_and_the_card_keeps_the_sketch(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots, locale="zh-CN", viewport=PHONE, has_touch=True, is_mobile=True)
    p = page.page
    for i in range(3):  # a feed long enough to scroll
        await ask(page, f"a girl with blue hair under cherry blossoms #{i}")
    await p.locator("#sketch-open").tap()
    dialog = await page.box("#sketch")
    assert (
        dialog["top"] >= 0 and dialog["bottom"] <= PHONE["height"] and dialog["left"] >= 0 and dialog["right"] <= PHONE["width"]
    )
    assert await p.locator("#sketch-form button[type='submit']").is_visible()
    canvas = await page.box("#sketch-canvas")
    assert canvas["right"] - canvas["left"] >= 0.7 * PHONE["width"], "the canvas takes most of the phone's width"
    scrolled = "() => [window.scrollY, document.getElementById('sketch').scrollTop]"
    before = await p.evaluate(scrolled)

    left, top = canvas["left"] + 20, canvas["top"] + 20
    stroke = [(left + i * 8, top + i * 10) for i in range(20)]  # down and to the right: a scroll gesture anywhere else
    await finger(page, stroke)
    assert await p.evaluate(scrolled) == before, "drawing with a finger does not scroll the page or the dialog"
    assert all([await p.evaluate(INKED, list(point)) for point in stroke[2:-2]]), "the finger's stroke is on the canvas"
    await page.shot("finger-stroke")

    # the tools by mouse: in headless Chromium a tap right after a finger stroke on the canvas gives no click
    await p.locator("#sketch-eraser").click()
    await p.locator("#sketch-eraser[aria-pressed='true']").wait_for()
    await finger(page, [stroke[10], (stroke[10][0] + 1, stroke[10][1] + 1)])
    assert not await p.evaluate(INKED, list(stroke[10])), "the eraser takes the ink away"
    await p.locator("#sketch-undo").click()
    assert await p.evaluate(INKED, list(stroke[10])), "Undo takes the eraser's stroke back"
    await p.locator("#sketch-clear").click()
    assert not await p.evaluate(INKED, list(stroke[5]))
    assert await p.locator("#sketch-undo").is_disabled() and await p.locator("#sketch-clear").is_disabled()
    await p.locator("#sketch-pen").click()
    await p.locator("#sketch-pen[aria-pressed='true']").wait_for()
    await finger(page, stroke)
    await p.locator("#sketch-text").fill("屋顶上的猫")
    await page.shot("finger-sketch")
    await p.locator("#sketch-form button[type='submit']").click()
    card = p.locator(".msg.kind-card", has_text="屋顶上的猫").last
    await card.wait_for()
    keeps = t("card.field", "zh-Hans", label=t("card.keeps", "zh-Hans"), value=t("control.scribble", "zh-Hans"))
    assert keeps in await card.inner_text()
    await page.shot("sketch-card")
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, 1)
    assert spec.control is not None
    assert page.errors == [], page.errors


async def test_the_gallery_says_which_pictures_are_variations_a_kept_one_an_upscale_and_a_sketch(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    card = await ask(page, "a girl with blue hair under cherry blossoms")
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    engine.finish((await next_spec(engine, 1)).job_id)
    picture = p.locator(".msg.kind-image").last
    await picture.locator(f"button[data-action='{Action.VARIATIONS}']").click()
    engine.finish((await next_spec(engine, 2)).job_id)
    grid = p.locator(".msg.kind-image:has(.tiles)")
    await grid.locator(f"button[data-action='{Action.KEEP}']").nth(2).click()
    kept = p.locator(".msg.kind-image:not(:has(.tiles))").nth(1)
    await kept.locator(f"button[data-action='{Action.UPSCALE}']").click()
    await p.locator(f".msg button[data-action='{Action.UPSCALE}'][data-press$=':2']").last.click()
    engine.finish((await next_spec(engine, 3)).job_id)
    await p.locator(".msg.kind-image", has_text=t("upscaled", "en", scale=2, width=16, height=16)).wait_for()

    await p.locator("#sketch-open").click()
    canvas = await page.box("#sketch-canvas")
    await p.mouse.move(canvas["left"] + 30, canvas["top"] + 30)
    await p.mouse.down()
    await p.mouse.move(canvas["left"] + 200, canvas["top"] + 120, steps=8)
    await p.mouse.up()
    await p.locator("#sketch-text").fill("a cat on a roof")
    await p.locator("#sketch-form button[type='submit']").click()
    sketched = p.locator(".msg.kind-card", has_text="a cat on a roof").last
    await sketched.locator(f"button[data-action='{Action.CONFIRM}']").click()
    engine.finish((await next_spec(engine, 4)).job_id)
    await p.locator(".msg.kind-image", has_text="a cat on a roof").wait_for()

    await p.locator("#tab-gallery").click()
    await p.wait_for_function("() => document.querySelectorAll('#gallery-grid .tile').length === 5")
    captions = await page.texts("#gallery-grid .tile .caption")
    kinds = [t(f"studio.gallery.kind.{kind}", "en", scale=2) for kind in ("sketch", "upscale", "kept", "variations")]
    for caption, kind in zip(captions, [*kinds, None], strict=True):  # newest first
        assert caption.startswith(kind + " · ") if kind else not caption.startswith(tuple(kinds)), (caption, kind)
    assert kinds[0] == "✏️ From your sketch" and kinds[1] == "⬆️ Upscaled ×2"
    await page.shot("gallery-kinds")

    await p.locator("#lang").select_option("zh-Hans")
    await p.locator("#tab-gallery").click()
    await p.wait_for_function(
        "label => document.querySelector('#gallery-grid .tile .caption').innerText.startsWith(label)",
        arg=t("studio.gallery.kind.sketch", "zh-Hans"),
    )
    await page.shot("gallery-kinds-zh")
    assert page.errors == [], page.errors


async def test_a_reload_while_an_upscale_runs_shows_it_making_the_picture_bigger_not_drawing(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots, locale="zh-CN", viewport=PHONE)
    p = page.page
    card = await ask(page, "a girl with blue hair under cherry blossoms")
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    engine.finish((await next_spec(engine, 1)).job_id)
    await p.locator(".msg.kind-image").last.locator(f"button[data-action='{Action.UPSCALE}']").click()
    await p.locator(f".msg button[data-action='{Action.UPSCALE}'][data-press$=':4']").last.click()
    spec = await next_spec(engine, 2)
    engine.handles[spec.job_id].publish(JobStarted())  # running, no tile done yet
    status = p.locator(f".msg.kind-progress[data-request-id='{spec.job_id}']")
    await status.wait_for()
    await reload(page)
    await status.wait_for()
    bigger = t("progress.upscaling", "zh-Hans", percent=0)
    assert bigger in await status.inner_text(), await status.inner_text()
    await page.shot("upscale-running-reloaded")
    engine.handles[spec.job_id].publish(JobProgress(0.5, UPSCALING))
    await status.filter(has_text=t("progress.upscaling", "zh-Hans", percent=50)).wait_for()
    assert page.errors == [], page.errors


@pytest.mark.parametrize(
    "screen", [{"width": 844, "height": 390}, {"width": 390, "height": 480}, PHONE], ids=["sideways", "keyboard-up", "phone"]
)
async def test_the_whole_sketch_pad_fits_a_short_phone_screen(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path, screen: dict[str, int]
) -> None:
    """A phone held sideways, or upright with its keyboard taking half the screen: the pad, its tools, the words and
    Draw it / Close are all on the screen at once, nothing to scroll to."""
    page = await open_page(chromium, served, shots, viewport=screen, has_touch=True)
    p = page.page
    await p.locator("#sketch-open").tap()
    await p.locator("#sketch-text").focus()
    for part in (
        "#sketch-title",
        "#sketch-canvas",
        "#sketch-clear",
        "#sketch-text",
        "#sketch-close",
        "#sketch-form button[type='submit']",
    ):
        box = await page.box(part)
        assert box["top"] >= 0 and box["bottom"] <= screen["height"], (part, box, screen)
    assert await p.evaluate("() => { const d = document.getElementById('sketch'); return d.scrollHeight <= d.clientHeight + 1; }")
    assert (await page.box("#sketch-canvas"))["height"] >= 140, "still room to draw"
    await page.shot(f"sketch-{screen['width']}x{screen['height']}")


async def test_a_photo_sent_with_words_on_a_phone_is_a_card_that_keeps_the_photos_outline_shown_under_it_after_a_reload(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots, locale="zh-TW", viewport=PHONE, has_touch=True)
    p = page.page
    photo = io.BytesIO()
    Image.new("RGB", (120, 90), (240, 170, 120)).save(photo, format="PNG")
    await p.locator("#text").fill("黃昏的城堡")
    await p.locator("#photo-file").set_input_files(
        files=[{"name": "castle.png", "mimeType": "image/png", "buffer": photo.getvalue()}]
    )
    assert await p.locator("#text").input_value() == "", "the words went with the photo"
    await p.locator(".msg.mine img").wait_for()
    card = p.locator(".msg.kind-card").last
    await card.wait_for()
    keeps = t("card.field", "zh-Hant", label=t("card.keeps", "zh-Hant"), value=t("control.lineart", "zh-Hant"))
    assert keeps in await card.inner_text()
    await page.shot("photo-card")
    await p.locator(".msg.mine[data-ref]").wait_for()  # the studio kept it: this bubble is that message of the feed

    await reload(page)
    mine = p.locator(".msg.mine img")
    await mine.wait_for()
    await p.wait_for_function("() => document.querySelector('.msg.mine img').naturalWidth === 120", polling=100)
    assert await mine.count() == 1, "the photo once, as the studio kept it"
    card = p.locator(".msg.kind-card").last
    assert keeps in await card.inner_text()
    assert await p.evaluate(
        "() => Boolean(document.querySelector('.msg.mine').compareDocumentPosition(document.querySelector('.msg.kind-card'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING)"
    ), "the photo above the card about it"
    await page.shot("photo-card-reloaded")
    await card.locator(f"button[data-action='{Action.CONFIRM}']").tap()
    spec = await next_spec(engine, 1)
    assert spec.kind == "text" and spec.control == "lineart" and spec.control_png
    assert page.errors == [], page.errors
