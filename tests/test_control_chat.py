"""A photo with words in the chats: the card says what is kept, Draw draws the words keeping the photo's composition."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from telegram import Message, User

from bot.telegram_inbound import Attachment, from_message
from engine.image.control import ControlConfig, ControlNets
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.speech.asr import SpeechRecognizer
from engine.speech.transcriber import WhisperTranscriber
from handlers.actions import Action
from handlers.i18n import t
from tests.support.conversation import SpeechAndJobs
from tests.support.fake_telegram import BOT, FakeTelegram, group_chat, private_chat, user
from tests.test_control import sketch
from tests.test_telegram import MENTION, RunningBot, buttons, data_of, delivered_photos, telegram_bot, with_button

PNG = b"\x89PNG\r\n\x1a\n"


def photo_jpeg() -> bytes:
    """A photo-like picture: a gradient with a dark figure."""
    picture = Image.linear_gradient("L").convert("RGB").resize((96, 64))
    ImageDraw.Draw(picture).rectangle((30, 10, 60, 60), fill=(40, 30, 20))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    return buffer.getvalue()


def png_of(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


async def engine_with(recognizer: SpeechRecognizer, pipeline: AnimePipeline, nets: ControlNets) -> SpeechAndJobs:
    controlled = AnimePipeline(pipeline.text_to_image, pipeline.animegan, default_style=pipeline.default_style, control=nets)
    engine = SpeechAndJobs(WhisperTranscriber(recognizer), LocalJobQueue(controlled))
    await engine.start()
    return engine


@pytest.fixture
async def control_bot(
    fake_telegram: FakeTelegram, recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path,
    sqlite_url: str, tmp_path: Path,
) -> AsyncIterator[RunningBot]:
    nets = ControlNets(ControlConfig(models={kind: str(tiny_controlnet_dir) for kind in ("lineart", "scribble")}))
    engine = await engine_with(recognizer, anime_pipeline, nets)
    try:
        async with telegram_bot(fake_telegram, engine, sqlite_url, tmp_path / "data") as running:
            yield running
    finally:
        await engine.close()


async def send_photo(server: FakeTelegram, data: bytes, caption: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Alice sends a photo (with ``caption``); returns her, the chat and her message."""
    alice = user()
    chat = private_chat(alice)
    sizes = [server.add_file(data, kind="photo", ext="jpg") | {"width": 96, "height": 64}]
    update = server.message(chat, alice, photo=sizes, caption=caption or None)
    await server.push(update)
    return alice, chat, update["message"]


async def test_a_photo_with_a_caption_is_drawn_keeping_its_outline(control_bot: RunningBot) -> None:
    server = control_bot.server
    alice, chat, _ = await send_photo(server, photo_jpeg(), "a cat in the rain")
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert "a cat in the rain" in card["text"]
    keeps = t("card.field", "en", label=t("card.keeps", "en"), value=t("control.lineart", "en"))
    assert keeps in card["text"], card["text"]
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    photo = await server.wait_for(lambda: delivered_photos(server))
    await control_bot.conversation.wait_idle()
    assert photo[0].files["photo"].startswith(PNG)
    assert Image.open(io.BytesIO(photo[0].files["photo"])).size == (80, 64)  # drawn at the photo's proportions
    picture = next(m for m in server.sent(chat["id"]) if any(d.startswith(f"{Action.REROLL}:") for d in buttons(m)))
    await server.push(server.press(alice, picture, data_of(picture, Action.REROLL)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 2)
    await control_bot.conversation.wait_idle()
    rerolled = Image.open(io.BytesIO(delivered_photos(server)[-1].files["photo"]))
    assert rerolled.size == (80, 64), "Reroll keeps the composition"


async def test_a_sent_drawing_is_kept_as_a_sketch(control_bot: RunningBot) -> None:
    server = control_bot.server
    _, chat, _ = await send_photo(server, png_of(sketch()), "a house")
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert t("control.scribble", "en") in card["text"]


async def test_a_photo_without_words_is_restyled_as_before(control_bot: RunningBot) -> None:
    server = control_bot.server
    await send_photo(server, photo_jpeg(), "")
    photo = await server.wait_for(lambda: delivered_photos(server))
    assert Image.open(io.BytesIO(photo[0].files["photo"])).size == (96, 64)
    assert not server.called("sendMessage", text=t("card.question", "en"))


async def test_a_missing_controlnet_keeps_the_card_with_retry(
    fake_telegram: FakeTelegram, recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, sqlite_url: str, tmp_path: Path
) -> None:
    nets = ControlNets(ControlConfig(models={"lineart": str(tmp_path / "no-controlnet")}))
    engine = await engine_with(recognizer, anime_pipeline, nets)
    try:
        async with telegram_bot(fake_telegram, engine, sqlite_url, tmp_path / "data") as running:
            server = running.server
            alice, chat, _ = await send_photo(server, photo_jpeg(), "a cat")
            card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
            await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
            retry = await server.wait_for(with_button(server, chat["id"], Action.RETRY_MISSING))
            assert t("model.unavailable.control", "en") in retry["text"]
            await running.conversation.wait_idle()
    finally:
        await engine.close()


def test_a_group_photo_caption_loses_our_mention() -> None:
    server, me = FakeTelegram(), User.de_json(BOT, None)
    image_doc = {"file_id": "d1", "file_unique_id": "u", "mime_type": "image/png", "file_size": 10}
    message = Message.de_json(server.message(group_chat(), user(), document=image_doc, caption=f"{MENTION} a  cat")["message"], None)
    attachment = from_message(message, me)
    assert isinstance(attachment, Attachment) and attachment.caption == "a cat"


async def test_words_replying_to_a_photo_are_drawn_keeping_it(control_bot: RunningBot) -> None:
    server = control_bot.server
    alice, chat, photo_message = await send_photo(server, photo_jpeg(), "")
    await server.wait_for(lambda: delivered_photos(server))  # the photo alone: restyled, as before
    await control_bot.conversation.wait_idle()
    await server.push(server.message(chat, alice, text="a robot in a field", reply_to=photo_message))
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert "a robot in a field" in card["text"] and t("control.lineart", "en") in card["text"]


async def test_a_voice_note_replying_to_a_photo_keeps_it(control_bot: RunningBot, english_voice_notes: dict[str, Any]) -> None:
    server = control_bot.server
    alice, chat, photo_message = await send_photo(server, photo_jpeg(), "")
    await server.wait_for(lambda: delivered_photos(server))
    await control_bot.conversation.wait_idle()
    voice = server.add_file(english_voice_notes["ogg"].path.read_bytes()) | {"duration": 7, "mime_type": "audio/ogg"}
    await server.push(server.message(chat, alice, voice=voice, reply_to=photo_message))
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert "blue hair" in card["text"].lower() and t("control.lineart", "en") in card["text"]
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 2)
    await control_bot.conversation.wait_idle()
    assert Image.open(io.BytesIO(delivered_photos(server)[-1].files["photo"])).size == (80, 64)


async def test_a_drawing_sent_alone_is_offered_as_a_sketch(control_bot: RunningBot) -> None:
    server = control_bot.server
    alice, chat, _ = await send_photo(server, png_of(sketch()), "")
    offer = await server.wait_for(with_button(server, chat["id"], Action.USE_SKETCH))
    assert offer["text"] == t("sketch.offer", "en")
    await server.wait_for(lambda: delivered_photos(server))  # restyled meanwhile, as any photo
    await control_bot.conversation.wait_idle()
    await server.push(server.press(alice, offer, data_of(offer, Action.USE_SKETCH)))
    await server.wait_for(lambda: server.called("sendMessage", text=t("sketch.ask", "en")))
    await server.push(server.message(chat, alice, text="a castle on a hill"))
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert "a castle on a hill" in card["text"] and t("control.scribble", "en") in card["text"]
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 2)
    await control_bot.conversation.wait_idle()
    assert Image.open(io.BytesIO(delivered_photos(server)[-1].files["photo"])).size == (80, 64)


async def test_a_photo_is_not_offered_as_a_sketch(control_bot: RunningBot) -> None:
    server = control_bot.server
    _, chat, _ = await send_photo(server, photo_jpeg(), "")
    await server.wait_for(lambda: delivered_photos(server))
    await control_bot.conversation.wait_idle()
    assert not with_button(server, chat["id"], Action.USE_SKETCH)()
