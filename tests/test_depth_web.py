"""The studio over HTTP/WebSocket: a photo uploaded with a description, 🏔 Depth chosen on its card, drawn with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.image.pipeline import AnimePipeline
from engine.speech.asr import SpeechRecognizer
from handlers.actions import Action
from handlers.i18n import t
from tests.support.web import Studio, browsers, studio_over
from tests.test_control_chat import engine_with, photo_jpeg
from tests.test_depth_chat import CountingDepth, depth_nets, keeps_line


@pytest.fixture
async def studio(
    recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path, tiny_depth_dir: Path, tiny_pose_dir: Path,
    sqlite_url: str, tmp_path: Path,
) -> AsyncIterator[Studio]:
    engine = await engine_with(recognizer, anime_pipeline, depth_nets(tiny_controlnet_dir, str(tiny_depth_dir), str(tiny_pose_dir)))
    try:
        async with studio_over(engine, sqlite_url, tmp_path / "data") as made:
            yield made
    finally:
        await engine.close()


async def test_a_photo_with_a_description_keeps_its_depth(studio: Studio) -> None:
    async with browsers(studio) as (browser,):
        response = await browser.client.post(
            "/upload/photo?locale=en-US&caption=a+fox+in+the+snow",
            data=photo_jpeg(),
            headers={"Origin": browser.origin, "Content-Type": "image/jpeg"},
        )
        assert response.status == 202
        card = await browser.wait_message(browser.with_button(Action.KEEPS))
        assert keeps_line("lineart") in card["text"]
        labels = [b["label"] for row in card["buttons"] for b in row if b["data"].startswith(f"{Action.KEEPS}:")]
        assert labels == [t("button.on", "en", label="✏️ Outline"), "🏔 Depth", "🧍 Pose"]
        await browser.press(card, Action.KEEPS, "depth")
        card = await browser.wait_message(lambda m: keeps_line("depth") in m["text"])
        made = CountingDepth.made
        await browser.press(card, Action.CONFIRM)
        picture = await browser.wait_message(lambda m: m["kind"] == "image")
        assert picture["buttons"] and CountingDepth.made == made + 1
