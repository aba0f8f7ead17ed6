"""The studio over HTTP and WebSocket: a dropped PNG with its drawing parameters offers Draw again / Remix;
the card's shape buttons and a remix through the page's edit box."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.image.control import A1111_MODULES
from engine.image.imageio import png_bytes
from engine.image.png_info import PictureParameters, read
from handlers.actions import Action
from handlers.i18n import t
from tests.support.scripted_engine import SpeechAndJobs
from tests.support.web import Browser, browsers, studio_over


@pytest.fixture
async def studio(local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> Any:
    async with studio_over(local_engine, sqlite_url, tmp_path / "data") as running:
        yield running


def drawn_png(**parameters: Any) -> bytes:
    """A picture carrying the parameters chunk of a drawing, as voice2anime writes it."""
    drawn = PictureParameters(
        prompt="a red fox, anime style", negative="lowres", steps=3, scheduler="dpmpp", guidance=1.5, seed=1234,
        width=64, height=96, model="tiny", style="paprika", transcript="a red fox", language="en", **parameters,
    )
    return png_bytes(Image.new("RGB", (64, 96), (200, 90, 40)), drawn)


async def pictures(browser: Browser, count: int) -> dict[str, Any]:
    await browser.wait_for(lambda: len(browser.of_kind("image")) >= count)
    return browser.of_kind("image")[-1]


async def test_a_dropped_png_with_parameters_offers_draw_again_and_remix(studio: Any) -> None:
    async with browsers(studio) as (alice,):
        assert (await alice.upload("photo", drawn_png(), "image/png")).status == 202
        offer = await alice.wait_message(alice.with_button(Action.DRAW_AGAIN))
        assert t("dropped.offer", "en") in offer["text"] and "a red fox" in offer["text"]
        assert [b["label"] for row in offer["buttons"] for b in row] == [t("button.draw_again", "en"), t("button.remix", "en")]

        await alice.press(offer, Action.DRAW_AGAIN)
        again = await pictures(alice, 1)
        png = await (await alice.client.get(again["image"])).read()
        drawn = read(png)
        assert drawn is not None and drawn.seed == 1234 and drawn.prompt.startswith("a red fox") and drawn.style
        assert (drawn.steps, drawn.guidance) == (3, 1.5), "its own steps and guidance, not the studio's (2, 1.0)"
        assert "Paprika" in again["text"] and Image.open(io.BytesIO(png)).size == (64, 96), "the same seed, style and size"

        await alice.press(offer, Action.REMIX)
        ask = await alice.wait_message(lambda m: m["kind"] == "edit_prompt")
        await alice.send({"type": "text", "text": "a red fox in the snow", "request_id": ask["request_id"]})
        card = await alice.wait_message(lambda m: m["kind"] == "card" and "in the snow" in m["text"])
        assert "Remix of your picture: Subtle" in card["text"]
        await alice.press(card, Action.REMIX_STRENGTH, "strong")
        await alice.wait_for(lambda: "Remix of your picture: Strong" in alice.messages[card["ref"]]["text"])
        await alice.press(alice.messages[card["ref"]], Action.CONFIRM)
        remixed = await pictures(alice, 2)
        png = await (await alice.client.get(remixed["image"])).read()
        assert Image.open(io.BytesIO(png)).size == (64, 96) and read(png).seed == 1234


@pytest.mark.parametrize(("control", "offer_key"), [("lineart", "dropped.offer_photo"), ("scribble", "dropped.offer_sketch")])
async def test_a_dropped_png_drawn_with_a_controlnet_says_draw_again_goes_without_its_composition(
    studio: Any, control: str, offer_key: str
) -> None:
    kept = {"control": control, "control_module": A1111_MODULES[control], "control_model": f"control_{control}"}
    async with browsers(studio) as (alice,):
        assert (await alice.upload("photo", drawn_png(**kept), "image/png")).status == 202
        offer = await alice.wait_message(alice.with_button(Action.DRAW_AGAIN))
        assert t(offer_key, "en") in offer["text"] and "a red fox" in offer["text"]
        assert "Draw again draws your words without it" in offer["text"] and "Remix keeps this picture's composition" in offer["text"]

        await alice.press(offer, Action.DRAW_AGAIN)
        again = await pictures(alice, 1)
        drawn = read(await (await alice.client.get(again["image"])).read())
        assert drawn is not None and drawn.seed == 1234 and drawn.prompt.startswith("a red fox")
        assert not drawn.controlled, "drawn from the words alone"


async def test_a_png_without_parameters_is_restyled_as_before(studio: Any) -> None:
    async with browsers(studio) as (alice,):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (230, 120, 160)).save(buffer, format="PNG")
        assert (await alice.upload("photo", buffer.getvalue(), "image/png")).status == 202
        finished = await pictures(alice, 1)
        assert {b["data"].split(":")[0] for row in finished["buttons"] for b in row} == {Action.RESTYLE, Action.BASE, Action.UPSCALE}


async def test_the_shape_buttons_on_the_studio_card(studio: Any) -> None:
    async with browsers(studio) as (alice,):
        await alice.command("anime", "a castle, 竖版")
        card = await alice.wait_message(lambda m: m["kind"] == "card")
        assert "Shape: ▯ Portrait" in card["text"]
        await alice.press(card, Action.ASPECT, "square")
        await alice.wait_for(lambda: "Shape: ⬜ Square" in alice.messages[card["ref"]]["text"])


async def test_a_reconnecting_page_gets_the_remix_prompt_still_waiting_for_its_words_live(studio: Any) -> None:
    async def reconnect(browser: Browser) -> list[dict[str, Any]]:
        await browser.reconnect()
        return browser.of_kind("edit_prompt")

    async with browsers(studio) as (alice,):
        assert (await alice.upload("photo", drawn_png(), "image/png")).status == 202
        offer = await alice.wait_message(alice.with_button(Action.DRAW_AGAIN))
        await alice.press(offer, Action.REMIX)
        await alice.wait_message(lambda m: m["kind"] == "edit_prompt")
        await alice.press(offer, Action.REMIX)  # asked again: only the newest prompt waits
        await alice.wait_for(lambda: len(alice.of_kind("edit_prompt")) == 2)

        prompts = await reconnect(alice)
        assert [bool(m.get("live")) for m in prompts] == [False, True]
        await alice.send({"type": "text", "text": "a red fox in the snow", "request_id": prompts[-1]["request_id"]})
        await alice.wait_message(lambda m: m["kind"] == "card" and "in the snow" in m["text"])

        assert not any(m.get("live") for m in await reconnect(alice)), "answered: no prompt waits any more"
