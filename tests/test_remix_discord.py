"""Remix and the picture's shape on Discord: simcord <-> the real adapter, conversation, SQLite and tiny models."""

from __future__ import annotations

import io
from typing import Any

import pytest
import simcord
from PIL import Image

from handlers.actions import Action
from tests.support.discord_sim import DiscordWorld, components, custom_id

pytestmark = pytest.mark.simcord(settle_timeout=240)


def valued(message: Any, action: str, value: str) -> str:
    """The custom id of our ``action`` component whose value is ``value``."""
    return next(str(c["custom_id"]) for c in components(message) if str(c.get("custom_id", "")).split(":", 1)[-1].startswith(f"{action}:") and str(c["custom_id"]).endswith(f":{value}"))


async def test_shape_on_the_card_then_remix_through_the_form(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))

    shown = await alice.slash(channel, "anime", text="a fox under the moon, landscape")
    card = shown.response
    assert card is not None and "Shape: ▭ Landscape" in card.content
    await alice.click(card.message, custom_id=valued(card, Action.ASPECT, "portrait"))
    card = channel.history()[-1]
    assert "Shape: ▯ Portrait" in card.content
    pressed = await alice.click(card, custom_id=custom_id(card, Action.CONFIRM))
    (picture,) = pressed.followups
    assert Image.open(io.BytesIO(await picture.attachments[0].read())).size == (512, 768)

    asked = await alice.click(picture.message, custom_id=custom_id(picture, Action.REMIX))
    assert asked.modal is not None, "Remix answers with the form for the new words"
    submitted = await alice.submit_modal(asked, {"text": "a fox in the snow"})
    remix_card = submitted.response
    assert remix_card is not None and "a fox in the snow" in remix_card.content and "Remix of your picture: Subtle" in remix_card.content
    await alice.click(remix_card.message, custom_id=valued(remix_card, Action.REMIX_STRENGTH, "strong"))
    remix_card = next(m for m in reversed(channel.history()) if "Remix of your picture" in m.content)
    assert "Remix of your picture: Strong" in remix_card.content
    pressed = await alice.click(remix_card, custom_id=custom_id(remix_card, Action.CONFIRM))
    (remixed,) = pressed.followups
    assert "a fox in the snow" in remixed.content
    assert Image.open(io.BytesIO(await remixed.attachments[0].read())).size == (512, 768)


def test_where_the_form_cannot_open_at_once_its_button_asks_again_for_the_same_thing() -> None:
    from bot.discord_views import edit_again_button
    from handlers.replies import Reply

    remix = Reply("new words?", kind="edit_prompt", request_id="r1", asks_again=Action.REMIX)
    edit = Reply("corrected words?", kind="edit_prompt", request_id="r2")
    assert [item.custom_id.split(":", 1)[-1] for item in edit_again_button(remix, "Remix").children] == ["rx:r1"]  # type: ignore[attr-defined]
    assert [item.custom_id.split(":", 1)[-1] for item in edit_again_button(edit, "Edit").children] == ["ed:r2"]  # type: ignore[attr-defined]
