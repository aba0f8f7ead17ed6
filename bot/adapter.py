"""What every platform adapter provides to the bot process, and the reply router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from handlers.events import Event, Origin
from handlers.replies import Messenger, Reply, VoiceNote

EventHandler = Callable[[Event], Awaitable[None]]


class Adapter(Protocol):
    """A chat platform: turns its updates into neutral events and renders replies."""

    platform: str

    @property
    def messenger(self) -> Messenger:
        """Where replies for this platform's chats go."""

    async def start(self, on_event: EventHandler) -> None:
        """Connect and begin delivering events to ``on_event`` (returns once running)."""

    async def stop(self) -> None:
        """Stop receiving updates and close connections."""


class PlatformRouter:
    """A :class:`Messenger` that forwards each reply to the adapter of the origin's platform."""

    def __init__(self, messengers: Mapping[str, Messenger]) -> None:
        self._messengers = dict(messengers)

    def _for(self, origin: Origin) -> Messenger:
        try:
            return self._messengers[origin.platform]
        except KeyError:
            raise LookupError(f"no adapter is running for platform {origin.platform!r}") from None

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post a reply through the origin's platform."""
        return await self._for(origin).send(origin, reply)

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Edit a message through the origin's platform."""
        await self._for(origin).edit(origin, message_ref, reply)

    async def notify(self, origin: Origin, text: str) -> None:
        """Short answer through the origin's platform."""
        await self._for(origin).notify(origin, text)

    async def is_admin(self, origin: Origin) -> bool:
        """Whether the origin's user administers its chat, as the origin's platform says."""
        return await self._for(origin).is_admin(origin)

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """A voice note through the origin's platform."""
        await self._for(origin).send_voice(origin, voice)
