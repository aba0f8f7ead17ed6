"""The slash commands and their Chinese localisations (zh-CN, zh-TW).

Names and descriptions are written as :class:`app_commands.locale_str` in
English; :class:`CommandTranslator` supplies the Chinese versions Discord
shows to users whose client language is Chinese. Each command only hands its
name and text to a :data:`CommandRunner`; the conversation does the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord
from discord import app_commands
from discord.app_commands import locale_str

#: ``runner(interaction, command name, text argument, style option)``.
CommandRunner = Callable[[discord.Interaction, str, str, str | None], Awaitable[None]]

#: English string -> (simplified, traditional). Command and option names must be lower case, no spaces.
ZH: dict[str, tuple[str, str]] = {
    "anime": ("动漫", "動漫"),
    "Draw an anime picture from a description": ("根据描述画一张动漫图", "根據描述畫一張動漫圖"),
    "text": ("描述", "描述"),
    "What to draw, e.g. a girl with blue hair under cherry blossoms": ("要画什么，例如：樱花下的蓝发女孩", "要畫什麼，例如：櫻花下的藍髮女孩"),
    "style": ("风格", "風格"),
    "Anime style for this picture": ("这张图的动漫风格", "這張圖的動漫風格"),
    "Choose your default anime style": ("选择默认的动漫风格", "選擇預設的動漫風格"),
    "history": ("历史", "歷史"),
    "Your last pictures": ("你最近的图片", "你最近的圖片"),
    "settings": ("设置", "設定"),
    "Language, default style and confirmation": ("语言、默认风格与确认", "語言、預設風格與確認"),
    "help": ("帮助", "幫助"),
    "How to use the bot": ("如何使用本机器人", "如何使用本機器人"),
}


class CommandTranslator(app_commands.Translator):
    """Chinese names and descriptions for the commands (English is the source text)."""

    async def translate(
        self, string: locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        pair = ZH.get(string.message)
        if pair is None:
            return None
        if locale is discord.Locale.chinese:
            return pair[0]
        if locale is discord.Locale.taiwan_chinese:
            return pair[1]
        return None


def build_commands(styles: Sequence[str], run: CommandRunner) -> list[app_commands.Command[None, ..., None]]:
    """``/anime text style``, ``/style``, ``/history``, ``/settings``, ``/help``; styles become choices."""
    choices = [app_commands.Choice(name=style, value=style) for style in styles[:25]]

    @app_commands.command(name=locale_str("anime"), description=locale_str("Draw an anime picture from a description"))
    @app_commands.rename(text=locale_str("text"), style=locale_str("style"))
    @app_commands.describe(
        text=locale_str("What to draw, e.g. a girl with blue hair under cherry blossoms"),
        style=locale_str("Anime style for this picture"),
    )
    @app_commands.choices(style=choices)
    async def anime(interaction: discord.Interaction, text: app_commands.Range[str, 1, 1000], style: str | None = None) -> None:
        await run(interaction, "anime", text, style)

    def simple(name: str, description: str) -> app_commands.Command[None, ..., None]:
        async def callback(interaction: discord.Interaction) -> None:
            await run(interaction, name, "", None)

        return app_commands.Command(name=locale_str(name), description=locale_str(description), callback=callback)

    return [
        anime,
        simple("style", "Choose your default anime style"),
        simple("history", "Your last pictures"),
        simple("settings", "Language, default style and confirmation"),
        simple("help", "How to use the bot"),
    ]
