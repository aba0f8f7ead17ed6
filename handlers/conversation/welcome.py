"""/start, /help, and what is said to a command the bot does not know."""

from __future__ import annotations

from handlers import cards
from handlers.conversation.context import Context, Who
from handlers.events import Command
from handlers.i18n import t
from handlers.replies import Reply


async def on_start(ctx: Context, who: Who, command: Command) -> None:
    """/start: what the bot does, by name."""
    await ctx.messenger.send(who.origin, Reply(t("start", who.lang, name=who.origin.user_name or "👋")))


async def on_help(ctx: Context, who: Who, command: Command) -> None:
    """/help: the buttons by their labels, and in groups how to call the bot there."""
    help_text = cards.help_text(who.lang, group=who.origin.is_group, commands=ctx.commands)
    await ctx.messenger.send(who.origin, help_text)


async def on_unknown(ctx: Context, who: Who, command: Command) -> None:
    """A command that is not in the table (typed by hand)."""
    await ctx.messenger.send(who.origin, Reply(t("unknown_command", who.lang)))
