"""``/anime`` with an image attached on Discord (simcord): the words drawn keeping the picture's composition."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import simcord
from PIL import Image

from engine.image.control import ControlConfig, ControlNets
from engine.image.pipeline import AnimePipeline
from engine.speech.asr import SpeechRecognizer
from handlers.actions import Action
from handlers.i18n import t
from tests.support.conversation import SpeechAndJobs
from tests.support.discord_sim import DiscordWorld, custom_id
from tests.test_control_chat import engine_with, photo_jpeg

pytestmark = pytest.mark.simcord(settle_timeout=240)


@pytest.fixture
async def local_engine(
    recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path
) -> AsyncIterator[SpeechAndJobs]:
    """The session models with the tiny ControlNets (this module's bot draws with them)."""
    nets = ControlNets(ControlConfig(models={"lineart": str(tiny_controlnet_dir)}))
    engine = await engine_with(recognizer, anime_pipeline, nets)
    yield engine
    await engine.close()


async def test_anime_with_an_image_keeps_its_outline(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))

    shown = await alice.slash(channel, "anime", text="a cat in the rain", image=("photo.jpg", photo_jpeg()))

    card = shown.response
    assert card is not None and "a cat in the rain" in card.content
    assert t("card.field", "en", label=t("card.keeps", "en"), value=t("control.lineart", "en")) in card.content
    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))
    (picture,) = pressed.followups
    message: discord.Message = picture.message
    image = Image.open(io.BytesIO(await message.attachments[0].read()))
    assert image.size == (80, 64)  # drawn at the photo's proportions


async def test_words_replying_to_a_picture_keep_its_outline(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    """In a DM (in a server the bot sees a picture's attachments only when the message is addressed to it)."""
    alice = simcord_env.create_user("alice")
    channel = alice.dm_channel
    attachments = simcord_env.backend.store_attachments(channel.id, [("cat.jpg", photo_jpeg())])
    photo = await alice.send_dm("", attachments=attachments)  # restyled, as any photo
    reference = {"channel_id": str(channel.id), "message_id": str(photo.id)}

    await alice.send_dm("a tiger in the jungle", reference=reference)

    card = next(m for m in reversed(channel.history()) if "a tiger in the jungle" in m.content and m.author.bot)
    assert t("card.field", "en", label=t("card.keeps", "en"), value=t("control.lineart", "en")) in card.content
