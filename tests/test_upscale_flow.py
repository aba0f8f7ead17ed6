"""⬆️ Upscale ×2 / ×4 through the conversation and the adapters: a picker, one job, the picture as a file.

The real conversation, repository and local engine on the tiny models (64x64
pictures); the upscaler is a random-weight Real-ESRGAN SRVGGNetCompact (its
architecture, not its training, is what runs). Its model missing is the
missing-model path: which part, what the operator must do, and Retry.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from db import ImageRole, RequestKind, RequestState
from engine.image import png_info
from engine.image.upscale import UpscaleConfig, Upscaler
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button
from tests import test_telegram
from tests.support.conversation import Harness, button
from tests.support.fake_telegram import private_chat, user
from tests.test_telegram import anime_card, data_of, with_button
from tests.test_upscale import random_compact

S = RequestState
TEXT = "a girl with blue hair under cherry blossoms at night"

bot = test_telegram.bot


@pytest.fixture
def upscaling(anime_pipeline, tmp_path: Path) -> Iterator[Upscaler]:
    """The session's pipeline with an upscaler (a random-weight model) for this test only."""
    upscaler = Upscaler(UpscaleConfig(model=str(random_compact(tmp_path / "compact.pth")), device="cpu", tile=32))
    anime_pipeline.upscaler = upscaler
    yield upscaler
    anime_pipeline.upscaler = None


def size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


async def delivered_picture(h: Harness, user_name: str):
    await h.command(user_name, "anime", TEXT)
    ref, card = h.messenger.last("card", user_name)
    await h.press(user_name, button(card, Action.CONFIRM), ref)
    await h.settle()
    return h.messenger.images(user_name)[-1].reply


async def test_upscale_x4_is_one_job_whose_picture_comes_as_a_file(sqlite_url, local_engine, make_harness, upscaling):
    h = await make_harness(sqlite_url, local_engine)
    picture = await delivered_picture(h, "alice")
    await h.press("alice", button(picture, Action.UPSCALE))
    picker = h.messenger.calls[-1].reply
    assert picker.kind == "picker" and [b.label for b in picker.buttons[0]] == ["×2", "×4"]
    mark = h.messenger.mark()
    await h.press("alice", button(picker, Action.UPSCALE, "4"))
    await h.settle()
    shown = [c.reply.text for c in h.messenger.since(mark, "alice") if c.reply and c.reply.kind == "progress"]
    assert t("queued.waiting", "en") in shown, "the usual status"
    upscaled = h.messenger.images("alice")[-1].reply
    assert upscaled.as_file and size(upscaled.image_png) == (256, 256)
    assert upscaled.text == t("upscaled", "en", scale=4, width=256, height=256)
    assert upscaled.file_name.endswith("-x4")
    record = await h.request(upscaled.request_id)
    assert (record.kind, record.parent_id, record.state, record.upscale) == (RequestKind.UPSCALE, picture.request_id, S.DELIVERED, 4)
    assert record.image(ImageRole.BASE).sha256 == (await h.request(picture.request_id)).image(ImageRole.ANIME).sha256
    chunk = png_info.read(upscaled.image_png, ours_only=True)
    assert chunk is not None and chunk.upscale == 4 and chunk.upscaler == "compact" and chunk.transcript == TEXT


async def test_a_missing_upscaler_says_what_to_do_and_retry_upscales_once_it_is_there(
    sqlite_url, local_engine, make_harness, anime_pipeline, tmp_path
):
    h = await make_harness(sqlite_url, local_engine)
    picture = await delivered_picture(h, "bob")
    missing = tmp_path / "models" / "realesr-animevideov3.pth"
    anime_pipeline.upscaler = Upscaler(UpscaleConfig(model=str(missing), device="cpu"))
    try:
        await h.press("bob", Button("×2", Action.UPSCALE, picture.request_id, "2"))
        await h.settle()
        _, failed = h.messenger.last("error", "bob")
        assert failed.text == t("model.unavailable.upscale", "en") and str(missing) in failed.fix
        retry = button(failed, Action.UPSCALE, "2")
        assert retry.label == t("button.retry_missing", "en") and retry.request_id == picture.request_id
        assert (await h.request(failed.request_id)).error_key == "model.unavailable.upscale"

        random_compact(missing.parent.mkdir(parents=True) or missing)  # the operator put the file there
        await h.press("bob", retry)
        await h.settle()
        upscaled = h.messenger.images("bob")[-1].reply
        assert upscaled.as_file and size(upscaled.image_png) == (128, 128)
    finally:
        anime_pipeline.upscaler = None


async def test_telegram_sends_the_upscaled_picture_as_a_document(bot, upscaling) -> None:
    server, alice = bot.server, user()
    chat = private_chat(alice)
    card = await anime_card(server, chat, alice)
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    picture = await server.wait_for(with_button(server, chat["id"], Action.UPSCALE))
    await bot.conversation.wait_idle()
    await server.push(server.press(alice, picture, data_of(picture, Action.UPSCALE)))
    picker = await server.wait_for(with_button(server, chat["id"], Action.UPSCALE, after=picture["message_id"]))
    times_two = [d for d in test_telegram.buttons(picker) if d.endswith(":2")][0]
    await server.push(server.press(alice, picker, times_two))
    await server.wait_for(lambda: server.called("sendDocument"))
    await bot.conversation.wait_idle()
    (document,) = server.called("sendDocument")
    assert size(document.files["document"]) == (128, 128)
    assert document.params["caption"] == t("upscaled", "en", scale=2, width=128, height=128)
