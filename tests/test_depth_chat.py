"""A photo's card chooses what is kept: ✏️ Outline or 🏔 Depth (the conversation harness and Telegram, tiny models).

What the user sees: the card of a photo with words says what will be kept and
offers the choice, the tick and the "Keeps" line follow a press, Draw keeps
the choice (Depth runs the depth estimator), Reroll keeps it too; a sketch gets
no choice; a missing depth model keeps the card with Retry, and Outline still draws.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from db import RequestState
from engine.image.control import ControlConfig, ControlNets
from engine.image.depth import DepthEstimator
from engine.image.pipeline import AnimePipeline
from engine.speech.asr import SpeechRecognizer
from handlers.actions import Action
from handlers.events import PhotoMessage, fetched
from handlers.i18n import t
from handlers.replies import Button
from tests.support.conversation import SpeechAndJobs, button
from tests.support.fake_telegram import FakeTelegram
from tests.test_control import sketch
from tests.test_control_chat import engine_with, photo_jpeg, png_of, send_photo
from tests.test_telegram import RunningBot, buttons, data_of, delivered_photos, telegram_bot, with_button

S = RequestState


def keeps_line(kind: str) -> str:
    """The card's line saying what is kept."""
    return t("card.field", "en", label=t("card.keeps", "en"), value=t(f"control.{kind}", "en"))


def choice(card: Any) -> list[str]:
    """The labels of the card's keep buttons, in order."""
    return [b.label for row in card.buttons for b in row if b.action is Action.KEEPS]


class CountingDepth(DepthEstimator):
    """The depth estimator, counting the maps it makes."""

    made = 0

    def depth_map(self, picture: Image.Image, *, device: Any = "cpu") -> Image.Image:
        CountingDepth.made += 1
        return super().depth_map(picture, device=device)


def depth_nets(controlnet: Path, estimator: str, pose_detector: str) -> ControlNets:
    """The tiny ControlNet for every kind, ``estimator`` (counted) for depth, ``pose_detector`` for pose."""
    models = {kind: str(controlnet) for kind in ("lineart", "scribble", "depth", "pose")}
    nets = ControlNets(ControlConfig(models=models, depth_estimator=estimator, pose_detector=pose_detector))
    nets.depth = CountingDepth(estimator)
    return nets


@pytest.fixture
async def depth_engine(
    recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path, tiny_depth_dir: Path, tiny_pose_dir: Path
) -> AsyncIterator[SpeechAndJobs]:
    engine = await engine_with(recognizer, anime_pipeline, depth_nets(tiny_controlnet_dir, str(tiny_depth_dir), str(tiny_pose_dir)))
    yield engine
    await engine.close()


async def test_depth_chosen_on_the_card_is_drawn_and_kept_by_reroll(sqlite_url, depth_engine, make_harness):  # type: ignore[no-untyped-def]
    h = await make_harness(sqlite_url, depth_engine)
    await h.send(PhotoMessage(h.origin("alice"), fetched(photo_jpeg()), "a cat in the rain"))
    ref, card = h.messenger.last("card", "alice")
    assert keeps_line("lineart") in card.text
    assert choice(card) == [t("button.on", "en", label="✏️ Outline"), "🏔 Depth", "🧍 Pose"]

    await h.press("alice", button(card, Action.KEEPS, "depth"), ref)
    card = h.messenger.messages[ref]
    assert keeps_line("depth") in card.text and keeps_line("lineart") not in card.text
    assert choice(card) == ["✏️ Outline", t("button.on", "en", label="🏔 Depth"), "🧍 Pose"]
    assert (await h.request(card.request_id)).control == "depth"

    made = CountingDepth.made
    await h.press("alice", button(card, Action.CONFIRM), ref)
    await h.settle()
    picture = h.messenger.images("alice")[-1].reply
    assert Image.open(io.BytesIO(picture.image_png)).size == (80, 64)  # drawn at the photo's proportions
    assert CountingDepth.made == made + 1, "the photo's depth map was made"

    await h.press("alice", button(picture, Action.REROLL))
    await h.settle()
    rerolled = h.messenger.images("alice")[-1].reply
    record = await h.request(rerolled.request_id)
    assert record.state is S.DELIVERED and record.control == "depth" and record.id != card.request_id
    assert CountingDepth.made == made + 2, "Reroll keeps the depth"
    assert Image.open(io.BytesIO(rerolled.image_png)).size == (80, 64)


async def test_a_sketch_gets_no_choice_and_a_stale_press_changes_nothing(sqlite_url, depth_engine, make_harness):  # type: ignore[no-untyped-def]
    h = await make_harness(sqlite_url, depth_engine)
    await h.send(PhotoMessage(h.origin("bob"), fetched(png_of(sketch())), "a house"))
    ref, card = h.messenger.last("card", "bob")
    assert keeps_line("scribble") in card.text and choice(card) == []
    mark = h.messenger.mark()
    await h.press("bob", Button("🏔 Depth", Action.KEEPS, card.request_id, "depth"), ref)
    assert [c.shown for c in h.messenger.since(mark)] == [t("already_handled", "en")]
    assert (await h.request(card.request_id)).control == "scribble"
    await h.command("bob", "anime", "a plain cat")
    _, typed = h.messenger.last("card", "bob")
    assert choice(typed) == [] and t("card.keeps", "en") not in typed.text


async def test_a_missing_depth_model_keeps_the_card_and_outline_still_draws(  # type: ignore[no-untyped-def]
    sqlite_url, recognizer, anime_pipeline, tiny_controlnet_dir, tmp_path, make_harness
):
    engine = await engine_with(recognizer, anime_pipeline, depth_nets(tiny_controlnet_dir, str(tmp_path / "no-depth"), str(tmp_path / "no-pose")))
    try:
        h = await make_harness(sqlite_url, engine)
        await h.send(PhotoMessage(h.origin("carol"), fetched(photo_jpeg()), "a fox"))
        ref, card = h.messenger.last("card", "carol")
        await h.press("carol", button(card, Action.KEEPS, "depth"), ref)
        await h.press("carol", button(h.messenger.messages[ref], Action.CONFIRM), ref)
        await h.settle()
        _, card = h.messenger.last("card", "carol")
        assert t("model.unavailable.control", "en") in card.text and button(card, Action.RETRY_MISSING)
        assert choice(card) == ["✏️ Outline", t("button.on", "en", label="🏔 Depth"), "🧍 Pose"], "the choice stays on the card"
        ref, _ = h.messenger.last("card", "carol")
        await h.press("carol", button(card, Action.KEEPS, "lineart"), ref)
        await h.press("carol", button(h.messenger.messages[ref], Action.RETRY_MISSING), ref)
        await h.settle()
        record = await h.request(card.request_id)
        assert record.state is S.DELIVERED and record.control == "lineart"
    finally:
        await engine.close()


@pytest.fixture
async def depth_bot(
    fake_telegram: FakeTelegram, depth_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    async with telegram_bot(fake_telegram, depth_engine, sqlite_url, tmp_path / "data") as running:
        yield running


async def test_telegram_the_card_offers_depth_and_draws_with_it(depth_bot: RunningBot) -> None:
    server = depth_bot.server
    alice, chat, _ = await send_photo(server, photo_jpeg(), "a cat in the rain")
    card = await server.wait_for(with_button(server, chat["id"], Action.KEEPS))
    assert keeps_line("lineart") in card["text"]
    depth = next(d for d in buttons(card) if d.startswith(f"{Action.KEEPS}:") and d.endswith(":depth"))
    await server.push(server.press(alice, card, depth))
    edited = await server.wait_for(lambda: next((m for m in server.sent(chat["id"]) if keeps_line("depth") in m["text"]), None))
    await server.push(server.press(alice, edited, data_of(edited, Action.CONFIRM)))
    photo = await server.wait_for(lambda: delivered_photos(server))
    await depth_bot.conversation.wait_idle()
    assert Image.open(io.BytesIO(photo[0].files["photo"])).size == (80, 64)

