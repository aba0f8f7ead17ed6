"""The studio's history: a browser's finished pictures and newest requests, read from the history database.

A browser's cookie id is its platform user id on the ``web`` platform; only
requests of that user are listed or served. Nothing here writes: a browser
that never asked for anything has no user yet, and an empty history.

* :meth:`RepositoryGallery.pictures` — the Gallery, a page at a time (a cursor: the last request id shown);
* :meth:`RepositoryGallery.recent` — what the feed shows of the newest requests when a page connects
  (:meth:`bot.web.WebAdapter._restore`): an open card and a delivered picture as the conversation
  shows them when their buttons are pressed, a queued or running request by its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bot.web import PLATFORM, GalleryItem, GalleryPage, Recent
from db import Repository
from db.columns import utcnow
from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from handlers.actions import Action
from handlers.cards import style_name
from handlers.i18n import LANGUAGES, pick_language, t
from handlers.jobs import POLICY_SPOILER, StatusView
from handlers.replies import Button

S = RequestState

#: The states of the requests the feed shows: open cards, queued and running requests, delivered pictures.
FEED_STATES = (S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING, S.DELIVERED)
#: Message kinds that show a queued or running request: its status, and what it became (cancelled, failed...).
STATUS_KINDS = frozenset({"progress", "text", "error"})


class RepositoryGallery:
    """:class:`bot.web.Gallery` over the conversation's :class:`Repository`."""

    def __init__(self, repository: Repository, style_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._repository = repository
        self._style_names = style_names or {}

    async def _user_id(self, user: str) -> int | None:
        return await self._repository.find_user(PLATFORM, user)

    async def pictures(self, user: str, limit: int, before: str | None = None) -> GalleryPage:
        """``user``'s delivered pictures, newest first: the newest ``limit``, or the ``limit`` after request ``before``.

        A picture whose file is gone is left out (the page is shorter; the cursor still moves on).
        """
        user_id = await self._user_id(user)
        if user_id is None:
            return GalleryPage([])
        if before is None:
            records = await self._repository.history(user_id, limit + 1)
        else:
            records = await self._repository.history_before(user_id, before, limit + 1)
        page, more = records[:limit], len(records) > limit
        items = []
        for record in page:
            anime = record.image(ImageRole.ANIME)
            if anime is None or not anime.path.exists():
                continue
            style = record.style or ""
            names = {lang: style_name(style, lang, self._style_names) for lang in LANGUAGES}
            words = _cut(await self._words(record), 80)
            kind = {lang: label for lang in LANGUAGES if (label := kind_label(record, lang))}
            spoiler = record.error_key == POLICY_SPOILER
            items.append(GalleryItem(record.id, record.created_at.isoformat(), names, words, spoiler, kind))
        return GalleryPage(items, page[-1].id if more else None)

    async def picture(self, user: str, request_id: str) -> bytes | None:
        """The finished picture of ``request_id`` when it is ``user``'s and delivered."""
        record = await self._repository.get_request(request_id)
        if record is None or record.state is not RequestState.DELIVERED or record.user_id != await self._user_id(user):
            return None
        anime = record.image(ImageRole.ANIME)
        if anime is None or not anime.path.exists():
            return None
        return await asyncio.to_thread(anime.path.read_bytes)

    async def recent(self, user: str, limit: int, locale: str | None) -> list[Recent]:
        """``user``'s newest ``limit`` requests in :data:`FEED_STATES`, oldest first, each with how the feed shows it.

        An open card: its Details toggle (the conversation answers with the card, details folded);
        one whose time ran out is left out (pressing it would only say so). A delivered picture: the
        Gallery's button (the picture with its buttons); one whose file is gone is left out. A queued or
        running request: its status as the job's status message starts (:class:`handlers.jobs.StatusView`),
        in the user's language (their setting, else ``locale``). Cancelled, failed and expired requests
        are not shown.
        """
        user_id = await self._user_id(user)
        if user_id is None:
            return []
        records = await self._repository.recent_requests(user_id, FEED_STATES, limit)
        now = utcnow()
        lang: str | None = None
        shown: list[Recent] = []
        for record in reversed(records):
            if record.state is S.AWAITING_CONFIRMATION:
                if record.card_expires_at is not None and record.card_expires_at < now:
                    continue
                shown.append(Recent(record.id, frozenset({"card"}), press=Button("", Action.DETAILS, record.id, "0")))
            elif record.state is S.DELIVERED:
                anime = record.image(ImageRole.ANIME)
                if anime is None or not anime.path.exists():
                    continue
                shown.append(Recent(record.id, frozenset({"image"}), press=Button("", Action.RESEND, record.id)))
            else:
                if lang is None:
                    lang = pick_language((await self._repository.get_user_settings(user_id)).language, locale)
                view = StatusView(record.id, lang)
                if record.state is S.RUNNING:
                    view.advance("styling" if record.kind in (RequestKind.PHOTO, RequestKind.RESTYLE) else "drawing")
                shown.append(Recent(record.id, STATUS_KINDS, status=view.reply()))
        return shown

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


#: The gallery's label of each kind of request that is more than a drawing of its words (the page's ``studio.gallery.kind.*``).
_KIND_LABELS = {
    RequestKind.VARIATIONS: "variations",
    RequestKind.KEPT: "kept",
    RequestKind.UPSCALE: "upscale",
    RequestKind.REMIX: "remix",
    RequestKind.PHOTO: "photo",
}


def kind_label(record: RequestRecord, lang: str) -> str:
    """What kind of picture ``record`` is, in ``lang`` ("🔀 Four variations", "✏️ From your sketch"...); "" for a plain drawing."""
    kind = _KIND_LABELS.get(record.kind)
    if kind is None and record.control:  # words drawn keeping a sketch's strokes or a photo's outline
        kind = "sketch" if record.control == "scribble" else "photo"
    if kind is None:
        return ""
    return t(f"studio.gallery.kind.{kind}", lang, scale=record.upscale or 0)


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (with "…" when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
