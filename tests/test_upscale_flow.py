"""⬆️ Upscale ×2 / ×4 through the conversation and the adapters: a picker, one job, the picture as a file.

The real conversation, repository and local engine on the tiny models (64x64
pictures); the upscaler is a random-weight Real-ESRGAN SRVGGNetCompact (its
architecture, not its training, is what runs). Its model missing is the
missing-model path: which part, what the operator must do, and Retry.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import simcord
from PIL import Image

from db import ImageRole, RequestKind, RequestState
from engine.image import png_info
from engine.image.upscale import UpscaleConfig, Upscaler
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button
from tests import test_telegram, test_web
from tests.support.conversation import Harness, button
from tests.support.discord_sim import DiscordWorld, custom_id
from tests.support.fake_telegram import private_chat, user
from tests.support.scripted_engine import ScriptedEngine
from tests.support.web import browsers
from tests.test_telegram import anime_card, data_of, with_button
from tests.test_upscale import random_compact

S = RequestState
TEXT = "a girl with blue hair under cherry blossoms at night"

# The adapters' own fixtures: the Telegram bot polling the fake server, the studio.
bot = test_telegram.bot
studio = test_web.studio


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


@pytest.mark.simcord(settle_timeout=240)
async def test_discord_picks_x4_from_a_select_and_attaches_the_upscaled_picture_as_it_is(
    simcord_env: simcord.Env, discord_world: DiscordWorld, upscaling
) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))
    card = (await alice.slash(channel, "anime", text="a girl with blue hair")).response
    (picture,) = (await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))).followups
    (picker,) = (await alice.click(picture.message, custom_id=custom_id(picture, Action.UPSCALE))).followups
    pressed = await alice.select(picker.message, ["4"], custom_id=custom_id(picker, Action.UPSCALE))
    (upscaled,) = [m for m in pressed.followups if m.attachments and m.attachments[0].filename.endswith("-x4.png")]
    assert size(await upscaled.attachments[0].read()) == (256, 256)
    assert upscaled.content == t("upscaled", "en", scale=4, width=256, height=256)


async def test_the_studio_offers_the_upscaled_picture_as_a_download(studio, upscaling) -> None:
    async with browsers(studio) as (alice,):
        card = await test_web.card_for(alice)
        await alice.press(card, Action.CONFIRM)
        finished = await test_web.picture(alice)
        await alice.press(finished, Action.UPSCALE)
        picker = await alice.wait_message(lambda m: m["kind"] == "picker" and m["request_id"] == finished["request_id"])
        await alice.press(picker, Action.UPSCALE, "2")
        upscaled = await alice.wait_message(lambda m: m["kind"] == "image" and m["text"].startswith("Upscaled"))
        async with alice.client.get(upscaled["download"]) as download:
            assert download.headers["Content-Disposition"].endswith('-x2.png"')
            assert size(await download.read()) == (128, 128)


async def test_simultaneous_upscale_presses_never_pass_the_caps(any_db_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(any_db_url, engine, max_active_per_user=1, max_active_total=2, requests_per_minute=100)
    pictures = {}
    for name in ("ann", "ben", "cat"):
        await h.command(name, "anime", f"{TEXT} for {name}")
        ref, card = h.messenger.last("card", name)
        await h.press(name, button(card, Action.CONFIRM), ref)
        engine.finish(engine.specs[-1].job_id)
        await h.settle()
        pictures[name] = h.messenger.images(name)[-1].reply
    before = len(engine.specs)
    await asyncio.gather(
        *(h.press(name, Button("×4", Action.UPSCALE, pictures[name].request_id, "4")) for name in pictures for _ in range(4))
    )
    jobs = engine.specs[before:]
    assert len(jobs) == 2 and all(spec.kind == "upscale" and spec.scale == 4 for spec in jobs), "a press is one request"
    assert len({spec.user_key for spec in jobs}) == 2
    told = [c for c in h.messenger.calls if c.reply and c.reply.kind == "error"]
    assert len(told) == 10 and all("waiting" in c.shown or "busy" in c.shown for c in told)
