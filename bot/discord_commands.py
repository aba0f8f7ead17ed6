"""The slash commands: :data:`handlers.events.COMMANDS`, described in English and Chinese.

Command names are the same everywhere (``/anime``, ``/cancel``, ... — the
ones the help text names). Descriptions come from ``handlers.i18n``
(``command.<name>``, and ``command.anime.<option>`` for ``/anime``'s
options): the English text is the default and :class:`CommandTranslator`
supplies the Chinese one: Simplified for zh-CN clients, Traditional (the
zh-Hant UI texts) for zh-TW ones. Each command only hands
its name and text to a :data:`CommandRunner`; the conversation does the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord
from discord import app_commands
from discord.app_commands import locale_str

from handlers.events import COMMANDS
from handlers.i18n import t

#: ``runner(interaction, command name, text argument, style option)``.
CommandRunner = Callable[[discord.Interaction, str, str, str | None], Awaitable[None]]

#: Discord's limit on a string option's length.
MAX_OPTION_LENGTH = 6000
#: Discord locales with descriptions of their own -> the UI language they are written in.
TRANSLATED = {discord.Locale.chinese: "zh-Hans", discord.Locale.taiwan_chinese: "zh-Hant"}


def described(key: str) -> locale_str:
    """The English text of i18n ``key``, remembering the key for :class:`CommandTranslator`."""
    return locale_str(t(key, "en"), key=key)


class CommandTranslator(app_commands.Translator):
    """Chinese descriptions for zh-CN (Simplified) and zh-TW (Traditional) clients (English is the source text)."""

    async def translate(
        self, string: locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        key = string.extras.get("key")
        lang = TRANSLATED.get(locale)
        if key is None or lang is None:
            return None
        return t(key, lang)


def build_commands(
    styles: Sequence[str], run: CommandRunner, *, max_text_chars: int
) -> list[app_commands.Command[None, ..., None]]:
    """One command per name in ``COMMANDS``; ``/anime`` takes ``text`` (up to ``max_text_chars``) and ``style``."""
    return [anime_command(styles, run, max_text_chars) if name == "anime" else simple_command(name, run) for name in COMMANDS]


def simple_command(name: str, run: CommandRunner) -> app_commands.Command[None, ..., None]:
    """A command without options."""

    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, name, "", None)

    return app_commands.Command(name=name, description=described(f"command.{name}"), callback=callback)


def anime_command(styles: Sequence[str], run: CommandRunner, max_text_chars: int) -> app_commands.Command[None, ..., None]:
    """``/anime text [style]``; the styles become the style option's choices (Discord allows 25)."""

    async def anime(interaction: discord.Interaction, text: str, style: str | None = None) -> None:
        await run(interaction, "anime", text, style)

    # The length limit is a setting, so the annotation is made here rather than written in the signature.
    anime.__annotations__["text"] = app_commands.Range[str, 1, min(max_text_chars, MAX_OPTION_LENGTH)]
    command = app_commands.Command(name="anime", description=described("command.anime"), callback=anime)
    command = app_commands.describe(text=described("command.anime.text"), style=described("command.anime.style"))(command)
    choices = [app_commands.Choice(name=style, value=style) for style in styles[:25]]
    return app_commands.choices(style=choices)(command)
