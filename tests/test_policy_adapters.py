"""Spoilers as each platform shows them: Telegram ``has_spoiler``, a Discord ``SPOILER_`` file, a blurred picture in the studio."""

from __future__ import annotations

import io
from types import SimpleNamespace

from PIL import Image

from bot.discord import age_restricted
from bot.discord_messenger import DiscordMessenger
from bot.telegram_render import TelegramMessenger
from bot.web_messenger import WebMessenger
from handlers.replies import Reply
from tests.test_telegram import ORIGIN, StubBot


def png(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "pink").save(buffer, format="PNG")
    return buffer.getvalue()


def picture(spoiler: bool, image: bytes | None = None) -> Reply:
    return Reply("⚠️ flagged", kind="image", image_png=image or png(), request_id="r1", spoiler=spoiler)


async def test_telegram_hides_a_flagged_picture_behind_a_spoiler() -> None:
    stub = StubBot()
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    await messenger.send(ORIGIN, picture(True))
    name, _, kwargs = stub.calls[-1]
    assert name == "send_photo" and kwargs["has_spoiler"] is True
    await messenger.send(ORIGIN, picture(False))
    assert stub.calls[-1][2]["has_spoiler"] is False


async def test_telegram_never_sends_a_flagged_picture_as_an_uncovered_file() -> None:
    """A picture too wide for a photo is sent as a file, which has no spoiler: a flagged one becomes a photo instead."""
    stub = StubBot()
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    await messenger.send(ORIGIN, picture(True, png(2100, 100)))
    name, args, kwargs = stub.calls[-1]
    assert name == "send_photo" and kwargs["has_spoiler"] is True and args[1].startswith(b"\xff\xd8")
    assert "send_document" not in stub.methods()


async def test_discord_names_a_flagged_picture_spoiler() -> None:
    payload = await DiscordMessenger._render(picture(True), 8 * 1024 * 1024)
    assert payload.upload is not None and payload.upload.filename.startswith("SPOILER_")
    payload = await DiscordMessenger._render(picture(False), 8 * 1024 * 1024)
    assert payload.upload is not None and not payload.upload.filename.startswith("SPOILER_")


def test_discord_age_restricted_channels() -> None:
    assert age_restricted(SimpleNamespace(is_nsfw=lambda: True))
    assert not age_restricted(SimpleNamespace(is_nsfw=lambda: False))
    assert not age_restricted(None)  # a DM or an unknown channel
    assert not age_restricted(SimpleNamespace())


def test_the_studio_blurs_a_flagged_picture() -> None:
    messenger = WebMessenger()
    assert messenger._render("u1", "m1", picture(True), None)["spoiler"] is True
    assert messenger._render("u1", "m2", picture(False), None)["spoiler"] is False
