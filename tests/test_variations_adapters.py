"""🔀 Variations and V1..V4 through each adapter: Telegram (fake Bot API), Discord (simcord), the studio (WebSocket).

Real adapters, the real conversation, SQLite and the local engine on the tiny
models (64x64 pictures, so a 128x128 grid): what the user sees is the grid with
V1..V4 (four tiles in the studio), and the kept picture with its own actions.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import simcord
from PIL import Image

from handlers.actions import Action
from tests import test_telegram, test_web
from tests.support.discord_sim import DiscordWorld, components, custom_id
from tests.support.fake_telegram import private_chat, user
from tests.support.web import browsers
from tests.test_telegram import anime_card, buttons, data_of, with_button

# The adapters' own fixtures: the Telegram bot polling the fake server, the studio.
bot = test_telegram.bot
studio = test_web.studio


def size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def keep_ids(message: Any) -> list[str]:
    return [c["custom_id"] for c in components(message) if str(c.get("custom_id", "")).split(":", 1)[-1].startswith(f"{Action.KEEP}:")]


async def test_telegram_shows_the_grid_with_v1_to_v4_and_keeps_v3_as_a_picture_with_its_actions(bot) -> None:
    server, alice = bot.server, user()
    chat = private_chat(alice)
    card = await anime_card(server, chat, alice)
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    picture = await server.wait_for(with_button(server, chat["id"], Action.VARIATIONS))
    await bot.conversation.wait_idle()

    await server.push(server.press(alice, picture, data_of(picture, Action.VARIATIONS)))
    grid = await server.wait_for(with_button(server, chat["id"], Action.KEEP, after=picture["message_id"]))
    await bot.conversation.wait_idle()
    assert [b["text"] for row in grid["reply_markup"]["inline_keyboard"] for b in row] == ["V1", "V2", "V3", "V4"]
    (sent,) = [c for c in server.called("sendPhoto") if any(d.startswith(f"{Action.KEEP}:") for d in c.callback_data())]
    assert size(sent.files["photo"]) == (128, 128) and "Keep one: V1 top left" in sent.params["caption"]

    third = [d for d in buttons(grid) if d.startswith(f"{Action.KEEP}:")][2]
    await server.push(server.press(alice, grid, third))
    kept = await server.wait_for(with_button(server, chat["id"], Action.VARIATIONS, after=grid["message_id"]))
    await bot.conversation.wait_idle()
    assert {d.split(":")[0] for d in buttons(kept)} == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
    record = await bot.conversation.repository.get_request(third.split(":")[1])
    (upload,) = [c for c in server.called("sendPhoto") if c.params.get("caption") == kept.get("caption")]
    assert upload.files["photo"] == record.image("v3").path.read_bytes()


@pytest.mark.simcord(settle_timeout=240)
async def test_discord_shows_the_grid_with_v1_to_v4_and_keeps_v1(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(simcord_env.create_user("alice"))
    card = (await alice.slash(channel, "anime", text="a girl with blue hair")).response
    (picture,) = (await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))).followups
    pressed = await alice.click(picture.message, custom_id=custom_id(picture, Action.VARIATIONS))
    (grid,) = [m for m in pressed.followups if keep_ids(m)]  # after the status message, which ends in one line

    assert [c["label"] for c in components(grid) if c.get("custom_id") in keep_ids(grid)] == ["V1", "V2", "V3", "V4"]
    assert size(await grid.attachments[0].read()) == (128, 128), "the grid is sent as it is"
    (kept,) = (await alice.click(grid.message, custom_id=keep_ids(grid)[0])).followups
    assert custom_id(kept, Action.RESTYLE) and custom_id(kept, Action.REROLL) and custom_id(kept, Action.VARIATIONS)
    record = await discord_world.conversation.repository.get_request(keep_ids(grid)[0].split(":")[2])
    assert await kept.attachments[0].read() == record.image("v1").path.read_bytes()


async def test_the_studio_shows_four_tiles_each_with_its_keep_button(studio, tmp_path: Path) -> None:
    async with browsers(studio) as (alice,):
        card = await test_web.card_for(alice)
        await alice.press(card, Action.CONFIRM)
        finished = await test_web.picture(alice)
        await alice.press(finished, Action.VARIATIONS)
        grid = await alice.wait_message(lambda m: m["kind"] == "image" and m.get("tiles"))
        assert len(grid["tiles"]) == 4
        for number, tile in enumerate(grid["tiles"], start=1):
            assert tile["keep"].startswith(f"{Action.KEEP}:") and tile["keep"].endswith(f":{number}")
            async with alice.client.get(tile["image"]) as image:
                assert image.status == 200 and size(await image.read()) == (64, 64)
            async with alice.client.get(tile["download"]) as download:
                assert download.headers["Content-Disposition"].endswith(f'-variations-v{number}.png"')
        await alice.press(grid, Action.KEEP, "4")
        kept = await test_web.picture(alice, 3)
        assert {b["data"].split(":")[0] for row in kept["buttons"] for b in row} == {
            Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX,
        }
        async with alice.client.get(kept["image"]) as image, alice.client.get(grid["tiles"][3]["image"]) as tile:
            assert await image.read() == await tile.read()
