"""The studio page as a finished app, in Chromium: what the user sees on a desktop and a phone, in English and Chinese.

Behind the page is the real studio (:class:`bot.web.WebAdapter` listening on a free loopback
port) and the real conversation, over a :class:`ScriptedEngine` the test drives: it hears a
fixed sentence and draws a picture when the test says so, with progress in between. The
assertions are on what the user sees: where the picture's buttons are, what has focus, the words.
Screenshots go to the test's tmp dir (and to ``$STUDIO_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.web import GALLERY_SIZE
from bot.web_i18n import page_strings, page_word
from bot.web_session import Signer
from handlers import cards
from handlers.actions import Action
from handlers.i18n import pick_language, t
from tests.support.browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    Page,
    chromium_args,
    finish_job,
    illustration,
    next_spec,
    open_page,
    preview,
    progress,
    sketch_of,
    start_job,
)
from tests.support.conversation import STYLE_NAMES
from tests.support.scripted_engine import ScriptedEngine, whisper_wrote
from tests.support.speech import ENGLISH_TEXT
from tests.support.web import SECRET, Studio, studio_over
from tests.test_web_history import free_port, seed_pictures

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (scripts/setup.sh dev installs Debian's chromium)", allow_module_level=True)

STRINGS = page_strings()
DESCRIPTION = "cherry blossoms under a full moon at night"
PICTURE = illustration()


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An English sentence as 16-bit mono WAV (what Chromium's fake audio capture plays, in a loop)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed for the microphone clip")
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), ENGLISH_TEXT], check=True, capture_output=True)
    return path


@pytest.fixture
def engine() -> ScriptedEngine:
    """Hears "a girl with blue hair …" in any recording; draws when the test says so."""
    words = [(w, 0.95) for w in "a girl with blue hair under cherry blossoms at night".split()]
    return ScriptedEngine(transcript=whisper_wrote(words, "en"))


@pytest.fixture
async def served(engine: ScriptedEngine, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Studio]:
    """The studio listening on a free loopback port, over the scripted engine."""
    async with studio_over(engine, sqlite_url, tmp_path / "data") as studio:
        await studio.adapter.start(studio.conversation.handle)
        yield studio
        for job_id in list(engine.handles):  # a test that stopped half-way: its jobs end, so the studio can stop
            await engine.cancel(job_id)


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


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path / "screenshots"


@pytest.fixture(autouse=True)
def keep_screenshots(shots: Path, request: pytest.FixtureRequest) -> Any:
    """With ``STUDIO_SCREENSHOTS=<dir>`` the screenshots are kept there too (named after the test)."""
    yield
    target = os.environ.get("STUDIO_SCREENSHOTS")
    if target and shots.exists():
        folder = Path(target) / request.node.name.replace("[", "-").rstrip("]")
        shutil.copytree(shots, folder, dirs_exist_ok=True)


# ---------------------------------------------------------------- helpers


async def ask(page: Page, description: str) -> Any:
    """Type ``description`` and send it; the card that answers."""
    await page.page.locator("#text").fill(description)
    await page.page.locator("#text").press("Enter")
    card = page.page.locator(".msg.kind-card", has_text=description).last
    await card.wait_for()
    return card


async def draw(page: Page, engine: ScriptedEngine, description: str, *, steps: tuple[float, ...] = (0.4,)) -> Any:
    """Ask for ``description``, press Draw, let the engine finish; the picture's message once its picture loaded."""
    card = await ask(page, description)
    jobs = len(engine.specs)
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, jobs + 1)
    finish_job(engine, spec.job_id, PICTURE, steps)
    return await picture_of(page, spec.job_id)


async def picture_of(page: Page, request_id: str) -> Any:
    finished = page.page.locator(f".msg.kind-image[data-request-id='{request_id}']").last
    await finished.wait_for()
    await page.page.wait_for_function(
        "id => { const i = document.querySelector(`.msg.kind-image[data-request-id='${id}'] img`); return i && i.complete && i.naturalWidth > 0; }",
        arg=request_id,
    )
    await settled(page)
    return finished


async def settled(page: Page) -> None:
    """Two animation frames: layout, resize observers and scrolling are done."""
    await page.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


async def above_composer(page: Page, selector: str) -> list[dict[str, float]]:
    """The boxes of everything ``selector`` matches; each is asserted between the header and the composer."""
    header = await page.box("#bar")
    composer = await page.box("#composer")
    boxes = await page.page.locator(selector).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, what: e.outerHTML.slice(0, 80)}; })"
    )
    assert boxes, f"nothing matches {selector}"
    for box in boxes:
        assert box["top"] >= header["bottom"] - 0.5, (box, header)
        assert box["bottom"] <= composer["top"] + 0.5, (box, composer)
    return boxes


# ---------------------------------------------------------------- layout


#: What the voice note says on each page of the screenshots (the stand-in picture shows it).
SAID = {
    "en-US": whisper_wrote([(w, 0.95) for w in DESCRIPTION.split()], "en"),
    "zh-TW": whisper_wrote([("月夜", 0.95), ("下", 0.95), ("盛開", 0.95), ("的", 0.95), ("櫻花樹", 0.95)], "zh"),
}


@pytest.mark.parametrize(("viewport", "locale"), [(DESKTOP, "en-US"), (PHONE, "en-US"), (DESKTOP, "zh-TW"), (PHONE, "zh-TW")])
async def test_the_finished_picture_and_its_buttons_are_in_view_and_a_reload_opens_at_the_newest(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path, viewport: dict[str, int], locale: str
) -> None:
    page = await open_page(chromium, served, shots, locale=locale, viewport=viewport)
    p = page.page
    name = f"{'phone' if viewport is PHONE else 'desktop'}-{locale}"
    for i in range(2):
        await draw(page, engine, f"{DESCRIPTION} #{i + 1}")

    # a voice note (the fake microphone, held with Space), its card, Draw: previews, the sketch, the picture
    engine.transcript = SAID[locale]
    said = SAID[locale].text
    await p.locator("#mic").focus()
    await p.keyboard.down("Space")
    await p.wait_for_selector("#mic.recording")
    await p.wait_for_timeout(1_500)
    await p.keyboard.up("Space")
    card = p.locator(".msg.kind-card", has_text=said).last
    await card.wait_for()
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, 3)
    start_job(engine, spec.job_id)
    progress(engine, spec.job_id, 0.5, shown=preview())
    progress(engine, spec.job_id, 0.9, "style", shown=sketch_of(PICTURE))
    finish_job(engine, spec.job_id, PICTURE, start=False)
    finished = await picture_of(page, spec.job_id)
    await p.mouse.move(0, 0)
    # the whole picture message — picture, caption and every button — sits between the header and the composer
    await above_composer(page, f".msg.kind-image[data-request-id='{spec.job_id}']")
    await above_composer(page, f".msg.kind-image[data-request-id='{spec.job_id}'] :is(img, button, a.download, .about)")
    actions = await finished.locator("button").evaluate_all("buttons => buttons.map(b => b.dataset.action)")
    assert actions == [Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX]
    assert await finished.locator("img").get_attribute("alt") == said, "the picture's alt text is the description"
    await page.shot(f"picture-{name}")

    # a reload opens at the newest message, and stays there while the pictures load
    await p.reload()
    await p.wait_for_selector("body[data-connected='true']")
    await p.wait_for_function(
        "() => [...document.querySelectorAll('.msg.kind-image img')].slice(-2).every(i => i.complete && i.naturalWidth > 0)"
    )
    await settled(page)
    boxes = await above_composer(page, ".msg.kind-image:last-of-type :is(button, a.download)")
    composer = await page.box("#composer")
    assert composer["top"] - max(b["bottom"] for b in boxes) < 40, "the newest picture's buttons are right above the composer"
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- keyboard and focus


async def test_focus_stays_through_draw_and_progress_and_statuses_keep_the_description(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    card = await ask(page, DESCRIPTION)
    await card.locator(f"button[data-action='{Action.CONFIRM}']").focus()
    await p.keyboard.press("Enter")
    spec = await next_spec(engine, 1)
    status = p.locator(f".msg[data-request-id='{spec.job_id}']").first
    # Draw turned the card into its status: focus moved to the status's Cancel, it did not fall to the page
    await p.wait_for_function(f"() => document.activeElement.dataset.action === '{Action.CANCEL}'")
    await p.evaluate("() => { window.focused = document.activeElement; }")
    start_job(engine, spec.job_id)
    for fraction, shown in ((0.1, None), (0.4, preview()), (0.7, preview((90, 140, 200)))):
        progress(engine, spec.job_id, fraction, shown=shown)
        await p.wait_for_function("v => document.querySelector('.msg.kind-progress progress')?.value === v", arg=round(fraction * 100))
        assert await p.evaluate("() => document.activeElement === window.focused"), "the same Cancel button keeps focus"
        words = await status.inner_text()
        assert t("card.quote", "en", text=DESCRIPTION) in words and f"{round(fraction * 100)}%" in words, words
    assert await status.locator("img").get_attribute("alt") == DESCRIPTION
    await page.shot("progress-40")
    finish_job(engine, spec.job_id, PICTURE, start=False)
    finished = await picture_of(page, spec.job_id)
    # the status is done (and out of the way); focus went on to the picture's first button
    focused = await p.evaluate("() => [document.activeElement.dataset.action, document.activeElement.closest('.msg')?.dataset.kind]")
    assert focused == [Action.RESTYLE, "image"], focused
    assert await finished.locator("img").get_attribute("alt") == DESCRIPTION

    # Cancel from the keyboard: the status says what was cancelled, and focus stays on it
    other = "a red umbrella in the rain"
    card = await ask(page, other)
    await card.locator(f"button[data-action='{Action.CONFIRM}']").focus()
    await p.keyboard.press("Enter")
    spec = await next_spec(engine, 2)
    await p.wait_for_function(f"() => document.activeElement.dataset.action === '{Action.CANCEL}'")
    await p.keyboard.press("Enter")
    cancelled = p.locator(f".msg[data-request-id='{spec.job_id}']", has_text=t("cancelled", "en")).first
    await cancelled.wait_for()
    words = await cancelled.inner_text()
    assert t("card.quote", "en", text=other) in words, words
    assert await p.evaluate("() => document.activeElement !== document.body && document.activeElement.dataset.requestId") == spec.job_id
    assert page.errors == [], page.errors


async def test_space_and_enter_hold_to_talk_or_toggle_escape_discards_and_a_recording_can_be_heard_first(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    uploads: list[str] = []
    p.on("request", lambda request: "/upload/voice" in request.url and uploads.append(request.url))
    en = STRINGS["en"]

    async def uploaded(count: int) -> None:
        for _ in range(200):
            if len(uploads) >= count:
                break
            await p.wait_for_timeout(50)
        assert len(uploads) == count, uploads

    await p.locator("#mic").focus()
    # holding Space records while it is held (not once it is let go), with a level meter and the time of the limit
    await p.keyboard.down("Space")
    await p.wait_for_selector("#mic.recording", timeout=5_000)
    assert await p.locator("#mic-label").inner_text() == en["mic.hold"]
    await p.wait_for_function("() => Number(document.getElementById('level').dataset.level) > 0.02")
    await p.wait_for_timeout(1_200)
    elapsed = await p.locator("#elapsed").inner_text()
    assert elapsed.endswith(" / 1:00") and elapsed != "0:00 / 1:00", elapsed
    assert await p.locator("#discard").is_visible()
    await page.shot("recording")
    await p.keyboard.up("Space")
    await uploaded(1)
    await p.wait_for_selector("#mic:not(.recording)")
    mine = p.locator(".msg.mine audio")
    await mine.wait_for()
    assert (await mine.get_attribute("src") or "").startswith("blob:"), "the user's own voice note is in the feed, playable"
    await p.locator(".msg.kind-card").last.wait_for()
    assert await p.evaluate("() => document.activeElement.id") == "mic"

    # a short press of Space starts, the next one sends; Enter does the same
    for key in ("Space", "Enter"):
        before = len(uploads)
        await p.keyboard.press(key)
        await p.wait_for_selector("#mic.recording")
        await p.wait_for_timeout(1_200)
        assert await p.locator("#mic.recording").count() == 1, f"a short press of {key} keeps recording"
        assert await p.locator("#mic-label").inner_text() == en["mic.toggle"]
        await p.keyboard.press(key)
        await uploaded(before + 1)
        await p.wait_for_selector("#mic:not(.recording)")

    # Esc discards: nothing is sent
    await p.keyboard.press("Space")
    await p.wait_for_selector("#mic.recording")
    await p.wait_for_timeout(900)
    await p.keyboard.press("Escape")
    await p.wait_for_selector("#composer[data-mode='idle'] #mic:not(.recording)")
    await p.locator(".toast", has_text=en["recorder.discarded"]).wait_for()
    await p.wait_for_timeout(800)
    assert len(uploads) == 3
    assert await p.locator(".msg.mine").count() == 3

    # "Listen first": played back before sending, then Send
    await p.keyboard.press("Space")
    await p.wait_for_selector("#mic.recording")
    await p.wait_for_timeout(1_200)
    await p.locator("#listen").click()
    review = p.locator("#review")
    await review.wait_for()
    assert (await review.get_attribute("src") or "").startswith("blob:")
    await p.wait_for_function("() => document.getElementById('review').readyState >= 1")
    assert await p.evaluate("() => document.activeElement.id") == "review-send"
    await page.shot("review")
    await p.keyboard.press("Enter")
    await uploaded(4)

    # at the length limit the recording stops for playback; Esc then discards it
    await p.evaluate("() => { state.limits.audio_seconds = 1.5; }")
    await p.locator("#mic").focus()
    await p.keyboard.press("Space")
    await p.wait_for_selector("#composer[data-mode='review']", timeout=10_000)
    await p.locator(".toast", has_text=en["recorder.limit"].format(seconds=2)).wait_for()
    await p.keyboard.press("Escape")
    await p.wait_for_selector("#composer[data-mode='idle']")
    await p.wait_for_timeout(500)
    assert len(uploads) == 4
    assert await p.evaluate("() => document.activeElement.id") == "mic"
    assert page.errors == [], page.errors


async def test_microphone_errors_say_how_to_allow_it_and_touch_screens_read_tap_not_click(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    async def refused(page: Page, name: str) -> str:
        await page.page.evaluate(
            "name => { navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('refused', name)); }", name
        )
        await page.page.evaluate("() => document.getElementById('toasts').replaceChildren()")
        await page.page.locator("#mic").click()
        toast = page.page.locator(".toast.error").last
        await toast.wait_for()
        assert await page.page.locator("#mic.recording").count() == 0
        return await toast.inner_text()

    desktop = await open_page(chromium, served, shots)
    en = STRINGS["en"]
    assert await desktop.page.locator("#mic-hint").inner_text() == en["mic.hint"]
    assert await refused(desktop, "NotAllowedError") == en["mic.denied"]
    assert await refused(desktop, "NotFoundError") == en["mic.missing"]
    assert en["mic.denied"] != en["mic.missing"]

    phone = await open_page(chromium, served, shots, viewport=PHONE, has_touch=True, is_mobile=True)
    p = phone.page
    assert await p.evaluate("() => matchMedia('(pointer: coarse)').matches")
    assert await p.locator("#mic-hint").inner_text() == en["mic.hint.touch"]
    await p.locator("#mic").tap()  # a tap starts a recording that the next tap sends
    await p.wait_for_selector("#mic.recording")
    await p.wait_for_timeout(1_000)
    assert await p.locator("#mic-label").inner_text() == en["mic.toggle.touch"]
    await phone.shot("phone-recording")
    assert "click" not in (await p.locator("body").inner_text()).lower()
    await p.locator("#mic").tap()
    await p.locator(".msg.kind-card").last.wait_for()
    assert "click" not in (await p.locator("body").inner_text()).lower()
    assert await refused(phone, "NotAllowedError") == en["mic.denied.touch"]
    assert "click" not in en["mic.denied.touch"].lower() and "click" not in en["mic.toggle.touch"].lower()
    assert desktop.errors == [] and phone.errors == [], (desktop.errors, phone.errors)


# ---------------------------------------------------------------- languages


async def test_a_traditional_chinese_browser_reads_traditional_and_the_page_follows_the_chats_language(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots, locale="zh-TW")
    p = page.page
    for tag in ("zh-TW", "zh-HK", "zh-MO", "zh-Hant", "zh-Hant-CN", "zh", "zh-CN", "zh-SG", "zh-Hans", "zh-Hans-TW", "yue", "yue-Hans"):
        assert await p.evaluate("tag => languageOf(tag)", tag) == pick_language(None, tag), tag
    hant, hans = STRINGS["zh-Hant"], STRINGS["zh-Hans"]
    assert await p.evaluate("() => document.documentElement.lang") == "zh-TW"
    assert await p.locator("#lang").input_value() == "zh-Hant"
    assert await p.locator("#lang option").all_inner_texts() == ["English", "简体", "繁體"]
    assert await p.locator("#mic-label").inner_text() == hant["mic.idle"] == "🎙 按住說話"
    assert await p.locator("#text").get_attribute("placeholder") == hant["placeholder"] == t("command.anime.text", "zh-Hant")
    assert await p.locator("#tab-gallery").inner_text() == hant["tab.gallery"] == "畫廊"
    assert await p.locator(".upload.audio .word").inner_text() == hant["upload.audio"]
    card = await ask(page, "月夜下的櫻花樹")
    words = await card.inner_text()
    assert t("card.typed", "zh-Hant") in words and t("card.question", "zh-Hant") in words, words
    await page.shot("zh-TW-card")

    # 简体 in the header: the page and the bot's next messages are Simplified
    await p.locator("#lang").select_option("zh-Hans")
    assert await p.locator("#mic-label").inner_text() == hans["mic.idle"]
    assert await p.evaluate("() => document.documentElement.lang") == "zh-CN"
    card = await ask(page, "樱花树下的女孩")
    assert t("card.question", "zh-Hans") in await card.inner_text()

    # 繁體 chosen in the chat's /settings: the page follows the chat's language
    await p.locator("#commands button[data-command='settings']").click()
    await p.locator(f"button[data-press='{Action.SET_LANGUAGE}:{cards.NO_REQUEST}']").last.click()
    await p.locator(f"button[data-press='{Action.SET_LANGUAGE}:{cards.NO_REQUEST}:zh-Hant']").last.click()
    await p.wait_for_function("() => document.documentElement.lang === 'zh-TW'")
    assert await p.locator("#mic-label").inner_text() == hant["mic.idle"]
    assert await p.locator("#lang").input_value() == "zh-Hant"
    settings = p.locator(".msg", has_text=t("settings.heading", "zh-Hant")).last
    await settings.wait_for()
    await p.reload()
    await p.wait_for_selector("body[data-connected='true']")
    assert await p.locator("#mic-label").inner_text() == hant["mic.idle"], "the choice is remembered"
    assert page.errors == [], page.errors


@pytest.mark.parametrize("locale", ["en-US", "zh-TW"])
async def test_on_a_phone_the_header_and_the_composer_take_at_most_a_quarter_of_the_screen(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path, locale: str
) -> None:
    page = await open_page(chromium, served, shots, locale=locale, viewport=PHONE, has_touch=True, is_mobile=True)
    p = page.page
    await draw(page, engine, DESCRIPTION)
    header, composer = await page.box("#bar"), await page.box("#composer")
    assert header["height"] + composer["height"] <= PHONE["height"] * 0.25, (header, composer)
    assert composer["bottom"] == PHONE["height"]
    assert await p.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), "nothing wider than the phone"
    for control in ("#tab-studio", "#tab-gallery", "#lang", "#mic", "#send", ".upload.audio", ".upload.photo"):
        assert await p.locator(control).is_visible(), control
    await page.shot(f"phone-{locale}")
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- background tabs


HIDE = """hidden => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


async def test_a_picture_finished_in_a_background_tab_changes_the_title_and_icon_and_notifies(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    await p.evaluate(
        """() => { window.notes = [];
            window.Notification = class { static permission = 'granted';
                static requestPermission() { return Promise.resolve('granted'); }
                constructor(title, options) { window.notes.push([title, options.body]); } }; }"""
    )
    card = await ask(page, DESCRIPTION)
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, 1)
    await p.evaluate(HIDE, True)
    finish_job(engine, spec.job_id, PICTURE)
    ready = STRINGS["en"]["ready.title"]
    await p.wait_for_function("title => document.title === title", arg=ready)
    assert (await p.locator("#favicon").get_attribute("href") or "").startswith("blob:"), "the tab's icon shows a badge"
    assert await p.evaluate("() => window.notes") == [[ready, t("card.quote", "en", text=DESCRIPTION)]]
    await p.evaluate(HIDE, False)
    assert await p.title() == STRINGS["en"]["title"]
    assert await p.locator("#favicon").get_attribute("href") == "/static/icon.svg"
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- clutter


async def test_used_pickers_retire_one_style_confirmation_no_empty_done_a_small_sketch_and_captions_keep_the_description(
    served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    requests: list[str] = []
    p.on("request", lambda request: requests.append(request.url))
    card = await ask(page, DESCRIPTION)

    # the card's Style: choosing from the picker retires it and says so once (not a bubble and a toast)
    await card.locator(f"button[data-action='{Action.STYLE}']").click()
    picker = p.locator(".msg", has=p.locator(f"button[data-action='{Action.STYLE_SET}']")).last
    await picker.locator("button[data-press$=':paprika']").click()
    style_set = t("style.set", "en", style=STYLE_NAMES["paprika"]["en"])
    await p.locator(".msg", has_text=style_set).wait_for()
    await p.wait_for_function("name => document.querySelector('.msg.kind-card').innerText.includes(name)", arg=STYLE_NAMES["paprika"]["en"])
    await p.wait_for_timeout(600)
    assert style_set not in " ".join(await page.texts(".toast")), "no toast repeating the confirmation"
    assert await p.locator(".msg", has_text=style_set).count() == 1

    # Draw: the status keeps the description; the sketch stays, small, once the picture is there
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    spec = await next_spec(engine, 1)
    start_job(engine, spec.job_id)
    progress(engine, spec.job_id, 0.4, shown=preview())
    status = p.locator(f".msg[data-request-id='{spec.job_id}']").first
    await p.wait_for_function("() => document.querySelector('.msg.kind-progress progress')?.value === 40")
    assert t("card.quote", "en", text=DESCRIPTION) in await status.inner_text()
    progress(engine, spec.job_id, 0.9, "style", shown=preview((240, 200, 220)))
    finish_job(engine, spec.job_id, PICTURE, start=False)
    finished = await picture_of(page, spec.job_id)
    sketch = p.locator(f".msg.with-preview[data-request-id='{spec.job_id}']")
    assert t("progress.done_sketch", "en") in await sketch.inner_text()
    assert (await page.box(f".msg.with-preview[data-request-id='{spec.job_id}'] img"))["height"] <= 160, "the sketch is small"
    assert (await page.box(f".msg.kind-image[data-request-id='{spec.job_id}'] img"))["height"] >= 300

    # Restyle: its picker retires after the choice; the restyled picture's caption keeps the description;
    # no empty "Done" bubble is left behind
    await finished.locator(f"button[data-action='{Action.RESTYLE}']").click()
    restyle = p.locator(".msg", has=p.locator(f"button[data-action='{Action.RESTYLE_AS}']")).last
    await restyle.locator("button[data-press$=':face_paint_512_v2']").click()
    await p.wait_for_function(
        "() => [...document.querySelectorAll('.msg.used')].some(m => m.querySelectorAll('button').length === 1)"
    )
    assert await restyle.locator("button").count() == 1
    assert await restyle.locator("button").get_attribute("aria-pressed") == "true"
    spec = await next_spec(engine, 2)
    finish_job(engine, spec.job_id, PICTURE)
    restyled = await picture_of(page, spec.job_id)
    assert await restyled.locator(".about").inner_text() == t("card.quote", "en", text=DESCRIPTION)
    done = t("progress.done", "en")
    shown = "text => [...document.querySelectorAll('.msg:not([hidden]) .text')].filter(p => p.innerText.trim() === text).length"
    assert await p.evaluate(shown, done) == 0, "no empty “Done” bubble"

    # Reroll: its status and its picture keep the description too
    await restyled.locator(f"button[data-action='{Action.REROLL}']").click()
    spec = await next_spec(engine, 3)
    queued = p.locator(f".msg.kind-progress[data-request-id='{spec.job_id}']")
    await queued.wait_for()
    assert t("card.quote", "en", text=DESCRIPTION) in await queued.inner_text()
    finish_job(engine, spec.job_id, PICTURE)
    rerolled = await picture_of(page, spec.job_id)
    assert await rerolled.locator(".about").inner_text() == t("card.quote", "en", text=DESCRIPTION)
    assert await rerolled.locator("img").get_attribute("alt") == DESCRIPTION
    await page.shot("clutter", full_page=True)
    assert await p.evaluate(shown, done) == 0
    origin = served.adapter.url.rstrip("/")
    assert all(url.startswith((origin, "blob:")) for url in requests), "everything comes from the studio itself"
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- contrast

CONTRAST = """() => {
    const parse = (c) => { const m = /rgba?\\(([^)]+)\\)/.exec(c); if (!m) return null;
        const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
    const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
    const backdrop = (el) => { const chain = []; for (let e = el; e; e = e.parentElement) chain.unshift(e);
        let colour = [255, 255, 255, 1];
        for (const e of chain) { const bg = parse(getComputedStyle(e).backgroundColor); if (bg && bg[3] > 0) colour = over(bg, colour); }
        return colour; };
    const lum = (c) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const low = [];
    const check = (el, colour, what) => {
        let opacity = 1; for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
        const bg = backdrop(el); const fg = over([colour[0], colour[1], colour[2], colour[3] * opacity], bg);
        const r = ratio(fg, bg); if (r < 4.5) low.push(`${r.toFixed(2)} ${what}`);
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.nodeValue.trim()) continue;
        const el = node.parentElement;
        if (el.closest('[hidden], .sr-only, option, button:disabled')) continue;
        const box = el.getBoundingClientRect();
        if (box.width <= 1 || box.height <= 1 || getComputedStyle(el).visibility === 'hidden') continue;
        check(el, parse(getComputedStyle(el).color), `${el.tagName}.${el.className}: ${node.nodeValue.trim().slice(0, 40)}`);
    }
    for (const input of document.querySelectorAll('input[placeholder]:not([hidden])')) {
        if (input.getBoundingClientRect().width > 1) check(input, parse(getComputedStyle(input, '::placeholder').color), 'placeholder');
    }
    return low;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_text_contrast_is_at_least_4_5_to_1(served: Studio, engine: ScriptedEngine, chromium: Any, shots: Path, scheme: str) -> None:
    page = await open_page(chromium, served, shots, color_scheme=scheme)
    p = page.page
    await draw(page, engine, DESCRIPTION)
    await ask(page, "a red umbrella in the rain")
    await p.locator("#text").fill("/anime nude")
    await p.locator("#text").press("Enter")
    await p.locator(".msg.kind-error").wait_for()
    await p.evaluate("() => { toast('A toast'); toast('An error toast', 'error'); }")
    assert await p.evaluate(CONTRAST) == []
    await page.shot(f"contrast-{scheme}")
    await p.locator("#mic").focus()
    await p.keyboard.press("Space")
    await p.wait_for_selector("#mic.recording")
    assert await p.evaluate(CONTRAST) == [], "while recording"
    await p.keyboard.press("Escape")
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- the conversation kept


async def test_after_a_restart_the_page_reconnects_to_its_card_status_and_picture_and_the_card_still_draws(
    engine: ScriptedEngine, chromium: Any, shots: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """The studio stops and a new one starts (new adapter, conversation and engine; the same database, cookie secret and
    port); the same page reconnects by itself and shows its requests as the database holds them, in order."""
    data, port = tmp_path / "data", free_port()
    async with studio_over(engine, sqlite_url, data, port=port) as first:
        await first.adapter.start(first.conversation.handle)
        page = await open_page(chromium, first, shots)
        p = page.page
        drawn = await draw(page, engine, DESCRIPTION)
        delivered = await drawn.get_attribute("data-request-id")
        still_open = await (await ask(page, "a red umbrella in the rain")).get_attribute("data-request-id")
        waiting_card = await ask(page, "a cat on a piano")
        waiting = await waiting_card.get_attribute("data-request-id")
        await waiting_card.locator(f"button[data-action='{Action.CONFIRM}']").click()
        await next_spec(engine, 2)
        await p.locator(f".msg.kind-progress[data-request-id='{waiting}']").wait_for()
        await first.conversation.close()  # the process ends: the queued request stays queued in the database
    await p.wait_for_selector("body[data-connected='false']")

    second_engine = ScriptedEngine()
    async with studio_over(second_engine, sqlite_url, data, port=port) as second:
        leftovers = await second.conversation.unfinished()  # as `voice2anime run` starts: leftovers, listen, resume
        await second.adapter.start(second.conversation.handle)
        await second.conversation.recover(leftovers)
        try:
            await p.wait_for_selector("body[data-connected='true']")
            shown = "() => [...document.querySelectorAll('#feed > .msg:not([hidden])')].map(m => [m.dataset.requestId, m.dataset.kind])"
            await p.wait_for_function(f"() => ({shown})().length === 3")
            assert await p.evaluate(shown) == [[delivered, "image"], [still_open, "card"], [waiting, "progress"]]
            picture = await picture_of(page, delivered)
            assert await picture.locator("button").evaluate_all("bs => bs.map(b => b.dataset.action)") == [
                Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX,
            ]
            assert await picture.locator("a.download").is_visible()
            assert await picture.locator("img").get_attribute("alt") == DESCRIPTION
            status = p.locator(f".msg.kind-progress[data-request-id='{waiting}']")
            assert await status.locator(f"button[data-action='{Action.CANCEL}']").is_visible()
            await page.shot("restarted")

            # Draw on the card shown again queues its request; the card becomes its status
            card = p.locator(f".msg.kind-card[data-request-id='{still_open}']")
            await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
            await next_spec(second_engine, 2)
            assert [spec.job_id for spec in second_engine.specs] == [waiting, still_open]  # resumed, then drawn
            await p.locator(f".msg.kind-progress[data-request-id='{still_open}']").wait_for()
            assert (await second.repository.get_request(still_open)).state.value == "queued"
            # the picture's buttons work too
            await picture.locator(f"button[data-action='{Action.RESTYLE}']").click()
            await p.locator(".msg", has=p.locator(f"button[data-action='{Action.RESTYLE_AS}']")).wait_for()

            # a reload opens at the newest message
            await p.reload()
            await p.wait_for_selector("body[data-connected='true']")
            await p.wait_for_function(f"() => ({shown})().length === 4")
            await picture_of(page, delivered)
            assert await p.evaluate("() => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48")
            boxes = await above_composer(page, "#feed > .msg:not([hidden]):last-of-type")
            composer = await page.box("#composer")
            assert composer["top"] - boxes[-1]["bottom"] < 40, "the newest message is right above the composer"
        finally:
            await second.conversation.close()
    assert [e for e in page.errors if "WebSocket" not in e] == [], page.errors  # the socket failing while it was down is expected


async def test_the_gallery_shows_every_picture_a_page_at_a_time(
    served: Studio, chromium: Any, shots: Path, sqlite_url: str, tmp_path: Path
) -> None:
    page = await open_page(chromium, served, shots)
    p = page.page
    cookie = next(c for c in await p.context.cookies() if c["name"].startswith("v2a_studio"))
    user = Signer(SECRET).user_of(cookie["value"])
    assert user is not None
    ids = await seed_pictures(sqlite_url, tmp_path / "data", user, 60)
    await p.locator("#tab-gallery").click()
    tiles = "() => [...document.querySelectorAll('#gallery-grid .tile')].map(t => t.dataset.requestId)"
    await p.wait_for_function(f"() => ({tiles})().length === {GALLERY_SIZE}")
    more = p.locator("#gallery-more")
    assert await more.is_visible() and await more.inner_text() == STRINGS["en"]["gallery.more"]
    await more.focus()
    await p.keyboard.press("Enter")
    await p.wait_for_function(f"() => ({tiles})().length === 60")
    assert await p.evaluate(tiles) == ids[::-1], "every picture once, newest first"
    assert await more.is_hidden()
    assert await p.evaluate("() => document.activeElement.closest('.tile')?.dataset.requestId") == ids[-1 - GALLERY_SIZE]
    await page.shot("gallery-paged", full_page=True)
    # the oldest one's tile shows it in the studio with its buttons
    await p.locator(f"#gallery-grid .tile[data-request-id='{ids[0]}'] button.open").click()
    await picture_of(page, ids[0])
    assert page.errors == [], page.errors


# ---------------------------------------------------------------- uploads the studio refuses


@pytest.mark.parametrize("refusal", ["upload.busy", "upload.stalled"])
async def test_an_upload_the_studio_refuses_with_a_notice_shows_only_the_notice(
    engine: ScriptedEngine, chromium: Any, shots: Path, sqlite_url: str, tmp_path: Path, refusal: str
) -> None:
    """503 (too many uploads at once) and 408 (the body stopped arriving): the studio's own notice, not also "The upload
    failed (503)". A browser cannot stall its own upload, so for the 408 the page's request is sent on by the test as
    one that stops half-way, and the page gets the studio's real answer to it."""
    web = {"uploads_per_address": 0} if refusal == "upload.busy" else {"upload_stall_seconds": 0.5}
    async with studio_over(engine, sqlite_url, tmp_path / "data", **web) as studio:
        await studio.adapter.start(studio.conversation.handle)
        page = await open_page(chromium, studio, shots)
        p = page.page
        if refusal == "upload.stalled":
            port = studio.adapter.port

            async def stalled(route: Any) -> None:
                cookie = "; ".join(f"{c['name']}={c['value']}" for c in await p.context.cookies())
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                host = f"127.0.0.1:{port}"
                writer.write(
                    f"POST /upload/photo?locale=en-US HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nCookie: {cookie}\r\n"
                    f"Content-Type: image/png\r\nContent-Length: {len(PICTURE)}\r\n\r\n".encode() + PICTURE[:1000]
                )
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)  # once the body stalled (read by length: it lingers)
                length = re.search(rb"Content-Length: (\d+)", head)
                assert length is not None, head
                body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), 30)
                writer.close()
                await route.fulfill(status=int(head.split()[1]), body=body, content_type="application/json; charset=utf-8")

            await p.route("**/upload/photo**", stalled)
        status = 503 if refusal == "upload.busy" else 408
        async with p.expect_response(lambda response: "/upload/photo" in response.url) as answered:
            await p.set_input_files("#photo-file", files=[{"name": "moon.png", "mimeType": "image/png", "buffer": PICTURE}])
        assert (await answered.value).status == status
        notice = page_word(refusal, "en")
        await p.locator(".toast", has_text=notice).wait_for()
        await p.wait_for_timeout(500)  # the page has read the answer
        toasts = await page.texts(".toast")
        assert toasts == [notice], toasts
        failed = STRINGS["en"]["upload.failed"].split("(")[0].strip()
        assert not any(failed in text for text in toasts)
        # (the browser itself logs a failed request: not the page's error)
        assert [e for e in page.errors if not e.startswith("Failed to load resource")] == [], page.errors
