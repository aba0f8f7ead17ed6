"""The studio over HTTP and WebSocket: a dropped PNG with its drawing parameters goes through the photo check
(the real job queue and pipeline, with a picture check that flags dark pictures) before it is kept or offered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from db.states import RequestState
from engine.image.animegan import AnimeGAN
from engine.image.imageio import png_bytes
from engine.image.pipeline import AnimePipeline
from engine.image.png_info import PictureParameters
from engine.jobs.local import LocalJobQueue
from engine.speech.asr import SpeechRecognizer
from engine.speech.transcriber import WhisperTranscriber
from handlers.actions import Action
from handlers.i18n import t
from tests.support.conversation import STYLES, CountingTextToImage, SpeechAndJobs
from tests.support.web import Studio, browsers, studio_over
from tests.test_control import FlagsDarkPictures


def dropped(colour: tuple[int, int, int]) -> bytes:
    """A PNG of ``colour`` carrying the parameters chunk of a drawing, as voice2anime writes it."""
    drawn = PictureParameters(
        prompt="a red fox, anime style", negative="lowres", steps=3, scheduler="dpmpp", guidance=1.5, seed=1234,
        width=64, height=96, model="tiny", style="paprika", transcript="a red fox", language="en",
    )
    return png_bytes(Image.new("RGB", (64, 96), colour), drawn)


@pytest.fixture
def check() -> FlagsDarkPictures:
    return FlagsDarkPictures()


@pytest.fixture
async def studio(
    recognizer: SpeechRecognizer,
    flow_text_to_image: CountingTextToImage,
    animegan_checkpoints_dir: Path,
    check: FlagsDarkPictures,
    sqlite_url: str,
    tmp_path: Path,
) -> AsyncIterator[Studio]:
    """The studio over the tiny models with a picture check."""
    animegan = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", download=False)
    pipeline = AnimePipeline(flow_text_to_image, animegan, default_style=STYLES[0], image_check=check, previews=False)
    engine = SpeechAndJobs(WhisperTranscriber(recognizer), LocalJobQueue(pipeline))
    await engine.start()
    try:
        async with studio_over(engine, sqlite_url, tmp_path / "data") as running:
            yield running
    finally:
        await engine.close()


async def gallery(browser: Any) -> list[Any]:
    async with browser.client.get("/api/gallery") as response:
        assert response.status == 200
        return list((await response.json())["items"])


async def test_a_dropped_png_the_check_refuses_gets_the_photo_refusal_and_is_not_kept(
    studio: Studio, check: FlagsDarkPictures
) -> None:
    async with browsers(studio) as (alice,):
        assert (await alice.upload("photo", dropped((20, 20, 30)), "image/png")).status == 202
        refusal = await alice.wait_message(lambda m: m["kind"] == "error")
        assert refusal["text"] == t("policy.photo_flagged", "en")
        await studio.conversation.wait_idle()
        assert check.seen == 1, "checked once, as a photo"
        assert not alice.with_button(Action.DRAW_AGAIN)(refusal) and not any(
            alice.with_button(action)(m) for m in alice.messages.values() for action in (Action.DRAW_AGAIN, Action.REMIX)
        ), "nothing offered"
        (record,) = await studio.repository.requests_in_states(list(RequestState))
        assert record.state is RequestState.FAILED and record.error_key == "policy.photo_flagged"
        assert not record.images, "nothing stored"
        assert await gallery(alice) == []
        await alice.command("history")
        await alice.wait_message(lambda m: m["text"] == t("history.empty", "en"))


async def test_a_dropped_png_that_passes_is_offered_after_its_check(studio: Studio, check: FlagsDarkPictures) -> None:
    async with browsers(studio) as (alice,):
        assert (await alice.upload("photo", dropped((200, 90, 40)), "image/png")).status == 202
        offer = await alice.wait_message(alice.with_button(Action.DRAW_AGAIN))
        assert t("dropped.offer", "en") in offer["text"]
        assert check.seen >= 1, "checked before it was offered"
        assert [item["request_id"] for item in await gallery(alice)] == [offer["request_id"]]
