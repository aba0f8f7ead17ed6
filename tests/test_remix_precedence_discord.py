"""Discord (simcord): after Remix, words replying to a picture the user sent are the remix's new words."""

from __future__ import annotations

import pytest
import simcord

from handlers.actions import Action
from handlers.i18n import t
from tests.support.discord_sim import DiscordWorld, custom_id
from tests.test_control_chat import photo_jpeg
from tests.test_control_discord import local_engine  # noqa: F401  # the fixture: this module's bot draws with ControlNets

pytestmark = pytest.mark.simcord(settle_timeout=240)


async def test_words_replying_to_a_picture_answer_a_pending_remix(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    alice = simcord_env.create_user("alice")
    channel = alice.dm_channel
    attachments = simcord_env.backend.store_attachments(channel.id, [("cat.jpg", photo_jpeg())])
    photo = await alice.send_dm("", attachments=attachments)  # restyled, as any photo
    reference = {"channel_id": str(channel.id), "message_id": str(photo.id)}
    shown = await alice.slash("anime", text="a fox under the moon")
    card = shown.response
    assert card is not None
    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))
    (picture,) = pressed.followups
    asked = await alice.click(picture.message, custom_id=custom_id(picture, Action.REMIX))
    assert asked.modal is not None  # closed without an answer: the words come in a message instead

    await alice.send_dm("a fox in the snow", reference=reference)

    remix = next(m for m in reversed(channel.history()) if "a fox in the snow" in m.content and m.author.bot)
    assert "Remix of your picture: Subtle" in remix.content
    assert t("card.keeps", "en") not in remix.content, "not a card keeping the photo's composition"
