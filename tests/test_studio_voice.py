"""The studio's spoken replies in Chromium: a player under the card that plays after the user's gesture, and 🔊 again.

Behind the page: the real studio and conversation, a scripted engine that hears "hello world", and the
fake VITS voice (``tests/support/fake_vits.py``) run by the real sherpa-onnx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.speech.opus import ogg_opus
from engine.speech.tts import Narrator, TtsConfig
from tests.support import fake_vits
from tests.support.browser import CHROMIUM, chromium_args, open_page
from tests.support.scripted_engine import ScriptedEngine, whisper_wrote
from tests.support.web import Studio, studio_over

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh dev installs it)", allow_module_level=True)

#: Counts the page's audio starting to play (``play`` does not bubble: listened for while capturing).
COUNT_PLAYS = "() => { window.plays = 0; document.addEventListener('playing', () => { window.plays += 1; }, true); }"


@pytest.fixture
async def served(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Studio]:
    engine = ScriptedEngine(transcript=whisper_wrote([("hello", 0.9), ("world", 0.9)], "en"))
    narrator = Narrator(TtsConfig(model=str(fake_vits.build(tmp_path / "voice")), threads=1))
    async with studio_over(engine, sqlite_url, tmp_path / "data", narrator=narrator) as studio:
        await studio.adapter.start(studio.conversation.handle)
        yield studio


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=chromium_args(), timeout=60_000)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "note.ogg"
    path.write_bytes(ogg_opus(np.zeros(16_000, dtype=np.float32), 16_000))
    return path


async def test_the_card_speaks_after_a_gesture_and_the_button_replays_it(
    served: Studio, chromium: Any, recording: Path, tmp_path: Path
) -> None:
    page = await open_page(chromium, served, tmp_path / "shots")
    p = page.page
    await p.evaluate(COUNT_PLAYS)
    await p.locator("#text").click()  # the user's gesture: the page may make sounds from now on
    await p.locator("#audio-file").set_input_files(str(recording))

    card = p.locator(".msg.kind-card").last
    await card.wait_for()
    player = card.locator(".voice")
    await player.wait_for(state="attached")
    assert await player.locator("audio").get_attribute("title") == "I heard: hello world. Shall I draw it?"
    await p.wait_for_function("() => window.plays === 1")
    replay = player.locator("button.replay")
    assert await replay.inner_text() == "🔊 Play again"
    await page.shot("spoken-card")

    await replay.click()
    await p.wait_for_function("() => window.plays === 2")
    seconds = await player.locator("audio").evaluate("a => a.duration")
    assert 0 < seconds < 10
    assert page.errors == [], page.errors


async def test_without_a_gesture_nothing_plays_until_the_button_is_pressed(
    served: Studio, chromium: Any, recording: Path, tmp_path: Path
) -> None:
    page = await open_page(chromium, served, tmp_path / "shots", locale="zh-CN")
    p = page.page
    await p.evaluate(COUNT_PLAYS)
    await p.locator("#audio-file").set_input_files(str(recording))  # no click, no key: no gesture yet

    player = p.locator(".msg.kind-card .voice").last
    await player.wait_for(state="attached")
    await p.wait_for_timeout(500)
    assert await p.evaluate("window.plays") == 0
    replay = player.locator("button.replay")
    assert await replay.inner_text() == "🔊 再听一遍"
    await replay.click()
    await p.wait_for_function("() => window.plays === 1")
    assert page.errors == [], page.errors


async def test_a_reloaded_page_puts_the_cards_player_back_without_playing_it(
    served: Studio, chromium: Any, recording: Path, tmp_path: Path
) -> None:
    page = await open_page(chromium, served, tmp_path / "shots")
    p = page.page
    await p.add_init_script(f"({COUNT_PLAYS})()")  # counted on every load of the page
    await p.reload()
    await p.locator("#text").click()
    await p.locator("#audio-file").set_input_files(str(recording))
    await p.locator(".msg.kind-card .voice").last.wait_for(state="attached")
    await p.wait_for_function("() => window.plays === 1")

    await p.reload()
    card = p.locator(".msg.kind-card").last
    await card.wait_for()
    player = card.locator(".voice")
    await player.wait_for(state="attached")
    assert await p.locator(".voice").count() == 1
    assert await player.locator("audio").get_attribute("title") == "I heard: hello world. Shall I draw it?"
    await p.wait_for_timeout(500)
    assert await p.evaluate("window.plays") == 0  # a reload does not speak again
    await player.locator("button.replay").click()
    await p.wait_for_function("() => window.plays === 1")
    assert 0 < await player.locator("audio").evaluate("a => a.duration") < 10
    await page.shot("spoken-card-after-reload")
    assert page.errors == [], page.errors
