"""Who sent the last events, remembered for a few seconds: a chat's events come in bursts from the same people.

A voice note, its Confirm and the next voice note of one user arrive
seconds apart; each needs the user's and chat's ids and the settings that
apply (``Repository.identify``: a joined read, one database round trip per
event). :class:`RecentIdentities` answers repeats from memory for
:data:`REMEMBER_SECONDS`.

It stays right within the process: a settings change made through the
repository forgets every sender it concerns, and an answer read while such
a change was being made is not kept (a generation count: the read that
began before the change may have seen the old settings). A change made by
another process sharing the database is seen within
:data:`REMEMBER_SECONDS`. Ids never change once created (nothing deletes
users or chats); a new display name goes to the database as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from db.preferences import Preferences

#: How long (s) an identified sender is answered from memory.
REMEMBER_SECONDS = 10.0
#: At most this many senders are remembered (the least recently identified go first).
REMEMBER_AT_MOST = 10_000

#: platform, platform user id, platform chat id, chat kind.
SenderKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class Identified:
    """Who sent an event, as the database knows them: user and chat ids and the settings that apply."""

    user_id: int
    chat_id: int
    preferences: Preferences


class RecentIdentities:
    """Senders identified in the last :data:`REMEMBER_SECONDS`, with the display name they had."""

    def __init__(
        self,
        *,
        seconds: float = REMEMBER_SECONDS,
        at_most: int = REMEMBER_AT_MOST,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[SenderKey, tuple[str | None, Identified]] = TTLCache(
            maxsize=at_most, ttl=seconds, timer=monotonic
        )
        self._generation = 0

    @property
    def generation(self) -> int:
        """Changes so far: take it before reading from the database, hand it to :meth:`remember`."""
        return self._generation

    def recall(self, key: SenderKey, display_name: str | None) -> Identified | None:
        """The sender ``key`` as identified less than :data:`REMEMBER_SECONDS` ago under ``display_name``, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        name, identified = entry
        if display_name is not None and display_name != name:
            return None  # renamed: the database stores the new name
        return identified

    def remember(self, key: SenderKey, display_name: str | None, identified: Identified, generation: int) -> None:
        """Keep ``identified`` (as read from the database) unless settings changed since ``generation`` was taken."""
        if generation != self._generation:
            return
        self._entries[key] = (display_name, identified)

    def forget(self, *, user_id: int | None = None, chat_id: int | None = None) -> None:
        """Settings of ``user_id`` or ``chat_id`` are changing: forget every sender they apply to."""
        self._generation += 1
        stale = [
            key
            for key, (_, known) in self._entries.items()
            if known.user_id == user_id or known.chat_id == chat_id
        ]
        for key in stale:
            del self._entries[key]
