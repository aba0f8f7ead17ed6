"""The studio's gallery: a browser's finished pictures, read from the history database.

A browser's cookie id is its platform user id on the ``web`` platform; only
requests of that user are listed or served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bot.web import PLATFORM, GalleryItem
from db import Repository
from db.enums import ImageRole
from db.records import RequestRecord
from db.states import RequestState
from handlers.cards import style_name
from handlers.i18n import LANGUAGES
from handlers.jobs import POLICY_SPOILER


class RepositoryGallery:
    """:class:`bot.web.Gallery` over the conversation's :class:`Repository`."""

    def __init__(self, repository: Repository, style_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._repository = repository
        self._style_names = style_names or {}

    async def _user_id(self, user: str) -> int:
        return await self._repository.get_or_create_user(PLATFORM, user)

    async def pictures(self, user: str, limit: int) -> list[GalleryItem]:
        """``user``'s delivered pictures, newest first (those whose file is gone are left out)."""
        records = await self._repository.history(await self._user_id(user), limit)
        items = []
        for record in records:
            anime = record.image(ImageRole.ANIME)
            if anime is None or not anime.path.exists():
                continue
            style = record.style or ""
            names = {lang: style_name(style, lang, self._style_names) for lang in LANGUAGES}
            words = _cut(await self._words(record), 80)
            items.append(GalleryItem(record.id, record.created_at.isoformat(), names, words, record.error_key == POLICY_SPOILER))
        return items

    async def picture(self, user: str, request_id: str) -> bytes | None:
        """The finished picture of ``request_id`` when it is ``user``'s and delivered."""
        record = await self._repository.get_request(request_id)
        if record is None or record.state is not RequestState.DELIVERED or record.user_id != await self._user_id(user):
            return None
        anime = record.image(ImageRole.ANIME)
        if anime is None or not anime.path.exists():
            return None
        return await asyncio.to_thread(anime.path.read_bytes)

    async def _words(self, record: RequestRecord) -> str:
        """What the picture was asked for (a restyle/reroll: its origin's words; a photo: nothing)."""
        described: RequestRecord | None = record
        for _ in range(10):
            if described is None or described.transcript is not None or not described.parent_id:
                break
            described = await self._repository.get_request(described.parent_id)
        transcript = described.transcript if described is not None else None
        if transcript is None:
            return ""
        return transcript.final_text or transcript.edited_text or transcript.heard_text


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (with "…" when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
