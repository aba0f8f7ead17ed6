"""Styles whose weights are missing while downloads are off are not offered: the /style picker lists what can work."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.factory import conversation_config
from bot.settings import Settings
from engine.image.styles import StyleRegistry
from handlers.actions import Action
from tests.support.scripted_engine import ScriptedEngine


def settings(checkpoints: Path, **values: object) -> Settings:
    return Settings(_env_file=None, checkpoints_dir=checkpoints, **values)  # type: ignore[call-arg]  # pydantic-settings keyword


def style_buttons(reply) -> list[str]:
    return [b.value for row in reply.buttons for b in row if b.action == Action.DEFAULT_STYLE or b.action == Action.STYLE_SET]


async def test_only_styles_with_weights_are_offered_when_downloads_are_off(
    tmp_path: Path, sqlite_url, make_harness, caplog: pytest.LogCaptureFixture
) -> None:
    registry = StyleRegistry.for_directory(tmp_path)
    present = registry.styles[1]
    (tmp_path / present.file).write_bytes(b"weights")  # only its presence matters to the picker
    caplog.set_level(logging.WARNING)
    config = conversation_config(settings(tmp_path, anime_download=False, engine="local"))
    assert config.styles == (present.name,)
    assert config.default_style == present.name  # ANIME_STYLE's weights are missing: a style that works
    assert any("are not offered (ANIME_DOWNLOAD is off)" in r.getMessage() for r in caplog.records)

    h = await make_harness(sqlite_url, ScriptedEngine(), styles=config.styles, style_names=config.style_names, default_style=config.default_style)
    await h.command("amy", "style")
    assert style_buttons(h.messenger.calls[-1].reply) == [present.name]


def test_every_style_is_offered_when_it_can_be_fetched_or_none_is_here(tmp_path: Path) -> None:
    every = tuple(style.name for style in StyleRegistry.for_directory(tmp_path).styles)
    assert conversation_config(settings(tmp_path, anime_download=True, engine="local")).styles == every
    assert conversation_config(settings(tmp_path, anime_download=False, engine="local")).styles == every  # each says what to put where
    assert conversation_config(settings(tmp_path, anime_download=False, engine="redis")).styles == every  # the workers' checkpoints
