"""The slash commands: :data:`handlers.conversation.routes.COMMANDS`, described in English and Chinese.

Command names are the same everywhere (``/anime``, ``/cancel``, ... — the
ones the help text names). Descriptions come from ``handlers.i18n``
(``command.<name>``, and ``command.anime.<option>`` for ``/anime``'s
options): the English text is the default and :class:`CommandTranslator`
supplies the Chinese one: Simplified for zh-CN clients, Traditional (the
zh-Hant UI texts) for zh-TW ones. Each command only hands
its name and text to a :data:`CommandRunner`; the conversation does the rest.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str

from handlers.conversation.routes import COMMANDS, CommandRoute
from handlers.i18n import t

#: ``runner(interaction, command name, text argument, style option, image option)``.
CommandRunner = Callable[[discord.Interaction, str, str, str | None, discord.Attachment | None], Awaitable[None]]

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
    """One command per route of :data:`~handlers.conversation.routes.COMMANDS`, with its options:
    ``text`` up to ``max_text_chars`` and ``style`` choosing from ``styles`` (Discord allows 25)."""
    return [_command(route, styles, run, max_text_chars) for route in COMMANDS]


def _command(
    route: CommandRoute, styles: Sequence[str], run: CommandRunner, max_text_chars: int
) -> app_commands.Command[None, ..., None]:
    """The command of ``route``: its callback's signature lists the route's options, which discord.py makes typed options."""

    async def callback(interaction: discord.Interaction, **options: Any) -> None:
        await run(interaction, route.name, options.get("text") or "", options.get("style"), options.get("image"))

    parameters = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)]
    for option in route.options:
        # The length limit is a setting, so the annotation is made here rather than written in a signature.
        kind: Any = {
            "text": app_commands.Range[str, 1, min(max_text_chars, MAX_OPTION_LENGTH)],
            "image": discord.Attachment,
        }.get(option.name, str)
        parameters.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=kind if option.required else kind | None,
                default=inspect.Parameter.empty if option.required else None,
            )
        )
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # read by inspect.signature
    command = app_commands.Command(name=route.name, description=described(route.description), callback=callback)
    if route.options:
        descriptions = {option.name: described(f"{route.description}.{option.name}") for option in route.options}
        command = app_commands.describe(**descriptions)(command)
    if any(option.name == "style" for option in route.options):
        command = app_commands.choices(style=[app_commands.Choice(name=style, value=style) for style in styles[:25]])(command)
    return command
