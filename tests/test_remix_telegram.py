"""Remix and the picture's shape on Telegram, over real HTTP against the fake Bot API (the real conversation, tiny models)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from handlers.actions import Action
from handlers.i18n import t
from tests.support.fake_telegram import FakeTelegram, private_chat, user
from tests.support.scripted_engine import SpeechAndJobs
from tests.test_telegram import RunningBot, anime_card, buttons, data_of, delivered_photos, telegram_bot, with_button


@pytest.fixture
async def bot(fake_telegram: FakeTelegram, local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> AsyncIterator[RunningBot]:
    """The Telegram bot, polling the fake server."""
    async with telegram_bot(fake_telegram, local_engine, sqlite_url, tmp_path / "data") as running:
        yield running


async def test_shape_from_a_word_and_the_card_then_remix_with_a_reply(bot: RunningBot) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    card = await anime_card(server, chat, alice, "a fox under the moon, landscape")
    assert "Shape: ▭ Landscape" in card["text"]
    assert data_of(card, Action.ASPECT) and any(b.endswith(":portrait") for b in buttons(card))
    await server.push(server.press(alice, card, next(b for b in buttons(card) if b.endswith(":portrait"))))
    await server.wait_for(lambda: any("Shape: ▯ Portrait" in m.get("text", "") for m in server.sent(chat["id"])))
    card = next(m for m in reversed(server.sent(chat["id"])) if "Shape: ▯ Portrait" in m.get("text", ""))
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    (photo,) = await server.wait_for(lambda: delivered_photos(server))
    await bot.conversation.wait_idle()
    assert Image.open(io.BytesIO(photo.files["photo"])).size == (512, 768)

    picture = next(m for m in server.sent(chat["id"]) if "photo" in m and any(d.startswith(f"{Action.REMIX}:") for d in buttons(m)))
    await server.push(server.press(alice, picture, data_of(picture, Action.REMIX)))
    asked = await server.wait_for(lambda: next((m for m in server.sent(chat["id"]) if m.get("text", "").startswith(t("remix.prompt", "en"))), None))
    await server.push(server.message(chat, alice, text="a fox in the snow", reply_to=asked))
    remix_card = await server.wait_for(with_button(server, chat["id"], Action.REMIX_STRENGTH, after=asked["message_id"]))
    assert "a fox in the snow" in remix_card["text"] and "Remix of your picture: Subtle" in remix_card["text"]
    await server.push(server.press(alice, remix_card, next(b for b in buttons(remix_card) if b.endswith(":strong"))))
    await server.wait_for(lambda: any("Remix of your picture: Strong" in m.get("text", "") for m in server.sent(chat["id"])))
    await server.push(server.press(alice, remix_card, data_of(remix_card, Action.CONFIRM)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 2 or None)
    await bot.conversation.wait_idle()
    remixed = delivered_photos(server)[-1]
    assert "a fox in the snow" in remixed.params["caption"]
    assert Image.open(io.BytesIO(remixed.files["photo"])).size == (512, 768), "a remix keeps its picture's shape"
