"""The studio in Chromium: Variations come as four tiles, each with its keep button; keeping one shows it with its actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.actions import Action
from tests import test_web_browser
from tests.support.web import Studio

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

# The browser tests' fixtures: the studio on a loopback port, Chromium.
served = test_web_browser.served
chromium = test_web_browser.chromium
microphone_wav = test_web_browser.microphone_wav


async def test_variations_are_four_tiles_and_v3_is_kept(served: Studio, chromium: Any, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    opened = await test_web_browser.open_page(chromium, served, shots, locale="en-US")
    page = opened.page
    await page.locator("#text").fill("a girl with blue hair under cherry blossoms")
    await page.locator("#text").press("Enter")
    card = page.locator(".msg.kind-card").last
    await card.locator(f"button[data-action='{Action.CONFIRM}']").click()
    picture = page.locator(".msg.kind-image").last
    await picture.wait_for()
    await picture.locator(f"button[data-action='{Action.VARIATIONS}']").click()

    grid = page.locator(".msg.kind-image:has(.tiles)")
    await grid.wait_for()
    tiles = grid.locator(".tiles .tile")
    await page.wait_for_function("() => [...document.querySelectorAll('.tiles .tile img')].filter(i => i.naturalWidth > 0).length === 4")
    assert await tiles.count() == 4
    labels = await grid.locator(f"button[data-action='{Action.KEEP}']").evaluate_all("bs => bs.map(b => b.textContent)")
    assert labels == ["V1", "V2", "V3", "V4"], "one keep button under each tile, none elsewhere"
    assert await tiles.nth(2).locator("a.download").count() == 1
    await opened.shot("variations")

    await tiles.nth(2).locator(f"button[data-action='{Action.KEEP}']").click()
    kept = page.locator(".msg.kind-image:not(:has(.tiles))").last
    await page.wait_for_function("() => document.querySelectorAll('.msg.kind-image:not(:has(.tiles))').length === 2")
    actions = await kept.locator("button").evaluate_all("bs => bs.map(b => b.dataset.action)")
    assert set(actions) == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
