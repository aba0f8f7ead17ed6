"""Discord (simcord): ``/anime`` with an image attached, 🏔 Depth chosen on the card, drawn keeping the photo's depth."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import simcord
from PIL import Image

from engine.image.pipeline import AnimePipeline
from engine.speech.asr import SpeechRecognizer
from handlers.actions import Action
from tests.support.conversation import SpeechAndJobs
from tests.support.discord_sim import DiscordWorld, custom_id
from tests.test_control_chat import engine_with, photo_jpeg
from tests.test_depth_chat import CountingDepth, depth_nets, keeps_line
from tests.test_remix_discord import valued

pytestmark = pytest.mark.simcord(settle_timeout=240)


@pytest.fixture
async def local_engine(
    recognizer: SpeechRecognizer, anime_pipeline: AnimePipeline, tiny_controlnet_dir: Path, tiny_depth_dir: Path, tiny_pose_dir: Path
) -> AsyncIterator[SpeechAndJobs]:
    """The session models with the tiny ControlNets and depth estimator (this module's bot draws with them)."""
    engine = await engine_with(recognizer, anime_pipeline, depth_nets(tiny_controlnet_dir, str(tiny_depth_dir), str(tiny_pose_dir)))
    yield engine
    await engine.close()


async def test_depth_on_the_card_of_an_attached_image(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))

    shown = await alice.slash(channel, "anime", text="a cat in the rain", image=("photo.jpg", photo_jpeg()))
    card = shown.response
    assert card is not None and keeps_line("lineart") in card.content
    await alice.click(card.message, custom_id=valued(card, Action.KEEPS, "depth"))
    card = channel.history()[-1]
    assert keeps_line("depth") in card.content
    made = CountingDepth.made
    pressed = await alice.click(card, custom_id=custom_id(card, Action.CONFIRM))
    (picture,) = pressed.followups
    assert Image.open(io.BytesIO(await picture.attachments[0].read())).size == (80, 64)
    assert CountingDepth.made == made + 1
