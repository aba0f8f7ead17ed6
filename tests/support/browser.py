"""The studio page in a real browser: Debian's Chromium driven by Playwright, and what the tests look at.

* :func:`chromium_args` — headless Chromium with a fake microphone playing a WAV file and the
  permission prompt answered yes; nothing fetched from the network.
* :class:`Page` — a Playwright page with its console errors collected and numbered screenshots.
* :func:`illustration` — a stand-in "finished picture" (cherry blossoms under a full moon), so
  screenshots show what a picture looks like in the studio without the real models.
* :func:`finish_job` — ends a :class:`~tests.support.scripted_engine.ScriptedEngine` job the way
  an engine does: started, progress (with previews), the picture.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``scripts/setup.sh dev``
installs it); the browser tests skip with a reason without it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from engine.api import JobFinished, JobProgress, JobResult, JobStarted
from tests.support.scripted_engine import ScriptedEngine
from tests.support.web import Studio

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def chromium_args(wav: Path | None = None) -> list[str]:
    """Headless, no sandbox (root in CI), a fake microphone playing ``wav``, nothing fetched from the network."""
    microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if wav is not None:
        microphone.append(f"--use-file-for-fake-audio-capture={wav}")
    return [
        "--headless",
        "--no-sandbox",
        *microphone,
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-gpu",
    ]


class Page:
    """A page with its console errors collected and numbered screenshots."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.set_default_timeout(TIMEOUT_MS)

    async def shot(self, name: str, *, full_page: bool = False) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{len(list(self.shots.glob('*.png'))) + 1:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def texts(self, selector: str) -> list[str]:
        return await self.page.locator(selector).all_inner_texts()

    async def box(self, selector: str) -> dict[str, float]:
        """The bounding box of the first element ``selector`` matches, in viewport pixels."""
        return await self.page.locator(selector).first.evaluate(
            "e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; }"
        )


async def dropped_files(page: Any, data: bytes, name: str) -> Any:
    """A ``DataTransfer`` holding one PNG file ``name`` with ``data``, for ``dragenter``/``drop`` events on the page."""
    return await page.evaluate_handle(
        """([b64, name]) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                             const files = new DataTransfer();
                             files.items.add(new File([bytes], name, {type: "image/png"}));
                             return files; }""",
        [base64.b64encode(data).decode(), name],
    )


async def open_page(
    browser: Any,
    studio: Studio,
    shots: Path,
    *,
    locale: str = "en-US",
    viewport: dict[str, int] | None = None,
    **context: Any,
) -> Page:
    """A new browser context (its own cookie: a new studio user) with the studio loaded and connected."""
    made = await browser.new_context(locale=locale, viewport=viewport or DESKTOP, accept_downloads=True, **context)
    page = Page(await made.new_page(), shots)
    await page.page.goto(studio.adapter.url)
    await page.page.wait_for_selector("body[data-connected='true']")
    return page


def illustration(size: int = 512, seed: int = 7) -> bytes:
    """A PNG "anime picture" stand-in: a night sky, a full moon, hills and a cherry tree in blossom."""
    rng = random.Random(seed)
    picture = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(picture)
    top, bottom = (28, 30, 88), (236, 150, 190)
    for y in range(size):
        f = y / size
        draw.line([(0, y), (size, y)], fill=tuple(int(a + (b - a) * f**1.4) for a, b in zip(top, bottom, strict=True)))
    for _ in range(70):  # stars
        x, y = rng.randrange(size), rng.randrange(int(size * 0.55))
        draw.point((x, y), fill=(255, 255, 240))
    glow = Image.new("L", (size, size))
    ImageDraw.Draw(glow).ellipse((300, 50, 450, 200), fill=150)
    picture.paste((255, 240, 210), mask=glow.filter(ImageFilter.GaussianBlur(28)))
    draw.ellipse((320, 70, 430, 180), fill=(255, 246, 222))
    draw.polygon([(0, 400), (140, 330), (300, 380), (512, 320), (512, 512), (0, 512)], fill=(74, 52, 110))
    draw.polygon([(0, 450), (200, 410), (380, 455), (512, 430), (512, 512), (0, 512)], fill=(52, 36, 82))
    trunk = [(120, 470), (130, 380), (110, 300), (140, 250), (160, 300), (150, 380), (165, 470)]
    draw.polygon(trunk, fill=(60, 34, 44))
    for start, end in (((135, 300), (60, 230)), ((140, 270), (230, 200)), ((130, 330), (220, 300))):
        draw.line([start, end], fill=(60, 34, 44), width=9)
    blossoms = Image.new("RGBA", (size, size))
    petals = ImageDraw.Draw(blossoms)
    for _ in range(260):
        angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(0, 1) ** 0.6
        x, y = 145 + math.cos(angle) * radius * 120, 230 + math.sin(angle) * radius * 80
        r = rng.randint(6, 14)
        shade = rng.choice([(255, 183, 213), (250, 160, 200), (255, 214, 232), (240, 140, 185)])
        petals.ellipse((x - r, y - r, x + r, y + r), fill=(*shade, 215))
    for _ in range(40):  # falling petals
        x, y = rng.randrange(size), rng.randrange(200, size)
        petals.ellipse((x, y, x + 6, y + 4), fill=(255, 200, 225, 230))
    picture.paste(blossoms, mask=blossoms)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def sketch_of(picture: bytes, size: int = 128) -> bytes:
    """A small JPEG "sketch" of ``picture``: its drawing before the anime style (grey, soft), as an engine sends it."""
    drawn = ImageOps.autocontrast(ImageOps.grayscale(Image.open(io.BytesIO(picture)))).filter(ImageFilter.SMOOTH_MORE)
    out = io.BytesIO()
    ImageOps.colorize(drawn, black=(50, 44, 60), white=(246, 240, 230)).resize((size, size)).save(out, format="JPEG")
    return out.getvalue()


def preview(colour: tuple[int, int, int] = (120, 110, 170), size: int = 96) -> bytes:
    """A small JPEG, as an engine's preview (the picture forming, or the sketch)."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="JPEG")
    return out.getvalue()


async def next_spec(engine: ScriptedEngine, count: int, timeout: float = 30.0) -> Any:
    """The engine's job number ``count`` (1-based) once it was submitted."""
    for _ in range(int(timeout / 0.05)):
        if len(engine.specs) >= count:
            return engine.specs[count - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {count} was never submitted ({len(engine.specs)} so far)")


def progress(engine: ScriptedEngine, job_id: str, fraction: float, stage: str = "diffusion", shown: bytes | None = None) -> None:
    """Job ``job_id`` reports ``fraction`` done (``shown``: with a preview)."""
    engine.handles[job_id].publish(JobProgress(fraction, stage, preview=shown))


def start_job(engine: ScriptedEngine, job_id: str) -> None:
    engine.handles[job_id].publish(JobStarted())


def finish_job(engine: ScriptedEngine, job_id: str, picture: bytes, steps: Sequence[float] = (), *, start: bool = True) -> None:
    """Job ``job_id`` starts (unless it did), reports ``steps``, and ends with ``picture`` (a text job's drawing too)."""
    spec = next(s for s in engine.specs if s.job_id == job_id)
    handle = engine.handles.pop(job_id)
    if start:
        handle.publish(JobStarted())
    for fraction in steps:
        handle.publish(JobProgress(fraction, "diffusion"))
    base = picture if spec.kind == "text" else None
    handle.publish(JobFinished(JobResult(job_id, picture, spec.style, base_png=base, seed=spec.seed, model="scripted")))
