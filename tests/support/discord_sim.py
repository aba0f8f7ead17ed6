"""Discord test kit (pytest plugin module): the real adapter, conversation and engine against simcord.

simcord (https://pypi.org/project/simcord/) runs discord.py's real client
against an in-memory Discord: gateway events, REST routes, interaction
tokens with the 3-second / 15-minute rules, components and modals.

* :class:`DiscordWorld` — one SQLite database, the session's tiny-model
  :class:`LocalJobQueue`, and a :class:`Stack` (adapter + conversation) that
  :meth:`DiscordWorld.restart` replaces with a fresh one over the same
  database, as a bot restart would.
* Fixtures: ``discord_world`` and ``simcord_bot`` (the current stack's
  client, which simcord's own ``simcord_env`` fixture connects).
* Helpers to find our components on a message and to post a voice message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord
from pydantic import SecretStr

from bot.discord import DiscordAdapter, DiscordConfig
from db import Repository, create_database
from db.session import Database
from handlers.conversation import Conversation
from tests.support.conversation import STYLES, config
from tests.support.scripted_engine import SpeechAndJobs

#: Discord's IS_VOICE_MESSAGE message flag.
VOICE_MESSAGE_FLAG = 1 << 13


@dataclass
class Stack:
    """One bot process: adapter and conversation."""

    adapter: DiscordAdapter
    conversation: Conversation


class DiscordWorld:
    """Database + engine that outlive bot restarts, and the current :class:`Stack`."""

    def __init__(self, database: Database, data_dir: Path, engine: SpeechAndJobs) -> None:
        self.database = database
        self.data_dir = data_dir
        self.engine = engine
        self.stack = self.build()

    def build(self) -> Stack:
        """A fresh adapter and conversation over the shared database and engine."""
        conversation_config = config()
        adapter = DiscordAdapter(
            DiscordConfig(token=SecretStr("simcord-token"), styles=STYLES, max_text_chars=conversation_config.max_text_chars)
        )
        conversation = Conversation(
            Repository(self.database, self.data_dir), self.engine, self.engine, adapter.messenger, conversation_config
        )
        adapter.bind(conversation.handle)
        return Stack(adapter, conversation)

    @property
    def conversation(self) -> Conversation:
        return self.stack.conversation

    async def restart(self, env: simcord.Env) -> None:
        """Stop following jobs, then connect a brand-new client/adapter/conversation (same database)."""
        await self.stack.conversation.close()
        self.stack = self.build()
        await env.restart_bot(self.stack.adapter.client)


@pytest.fixture
async def discord_world(sqlite_url: str, local_engine: SpeechAndJobs, tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    """The shared database and engine, with a first bot stack."""
    database = create_database(sqlite_url)
    world = DiscordWorld(database, tmp_path / "data", local_engine)
    yield world
    await world.stack.conversation.close()
    await database.dispose()


@pytest.fixture
def simcord_bot(discord_world: DiscordWorld) -> discord.Client:
    """The client simcord's ``simcord_env`` fixture connects."""
    return discord_world.stack.adapter.client


# --- helpers ---------------------------------------------------------------------------------


def components(message: Any) -> Iterator[dict[str, Any]]:
    """Every component (buttons, selects) on a message or simcord response, nested ones too."""
    raw = message.components
    stack = [c if isinstance(c, dict) else c.to_dict() for c in raw]
    while stack:
        component = stack.pop(0)
        yield component
        stack.extend(component.get("components", []))


def custom_id(message: Any, action: str) -> str:
    """The custom id of our component for ``action`` (``v2a:<action>:…`` or ``v2a-s:<action>:…``)."""
    for component in components(message):
        cid = str(component.get("custom_id", ""))
        if cid.split(":", 1)[-1].startswith(f"{action}:"):
            return cid
    raise AssertionError(f"no {action!r} component on {message.content!r}: {[c.get('custom_id') for c in components(message)]}")


async def send_voice_message(env: simcord.Env, user: simcord.UserHandle, audio: bytes) -> discord.Message:
    """DM the bot a voice message: an OGG/Opus attachment with the IS_VOICE_MESSAGE flag, as the client sends it.

    simcord's ``send``/``send_dm`` verbs take attachments but no flags, so the
    message is stored through the backend (what ``send_dm`` itself does) with the flag set.
    """
    channel = user.dm_channel
    attachments = env.backend.store_attachments(channel.id, [("voice-message.ogg", audio)])
    return await user.send_dm("", attachments=attachments, flags=VOICE_MESSAGE_FLAG)
