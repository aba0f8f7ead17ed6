"""After the picture: Restyle, Reroll, Original, the last pictures (/history) and sending one again."""

from __future__ import annotations

import asyncio

from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from handlers import cards
from handlers.actions import Action
from handlers.conversation.card_view import style_picker
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create, drawn_like, job_for, new_seed, refuse, submit
from handlers.conversation.readings import judge_stored
from handlers.events import ButtonPress, Command
from handlers.i18n import t
from handlers.jobs import POLICY_SPOILER, delivered_reply, description_of, variation_tiles

S = RequestState


async def on_restyle(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The styles to draw the picture again in."""
    await ctx.messenger.send(who.origin, style_picker(ctx, who, record.id, Action.RESTYLE_AS, record.style))


async def on_restyle_as(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The same base image in the style picked."""
    base = record.image(ImageRole.BASE)
    if press.value not in ctx.config.styles or base is None:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    await _derive(ctx, who, record, RequestKind.RESTYLE, style=press.value)


async def on_reroll(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The same words with a new seed."""
    if not record.prompt_positive:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    await _derive(ctx, who, record, RequestKind.REROLL, style=record.style or who.style)


async def _derive(ctx: Context, who: Who, parent: RequestRecord, kind: RequestKind, *, style: str) -> None:
    """A restyle (same base image, new style) or reroll (same prompt, new seed, the same composition kept) of ``parent``."""
    control = parent.control if kind is RequestKind.REROLL else None
    request_id = await create(
        ctx,
        who,
        kind=kind,
        state=S.QUEUED,
        parent_id=parent.id,
        style=style,
        seed=parent.seed if kind is RequestKind.RESTYLE else new_seed(),
        control=control,
        **drawn_like(parent),
    )
    if control:  # the picture whose composition the parent kept (the same file)
        await ctx.repository.link_image(parent.id, request_id, ImageRole.CONTROL)
    if kind is RequestKind.REROLL:  # the same words again: the chat's level may have changed since
        verdict = await judge_stored(ctx, who, parent)
        if not verdict.allowed:
            await refuse(ctx, who, request_id, None, verdict, from_states=[S.QUEUED])
            return
    spec = await job_for(ctx, who, request_id, None)
    if spec is not None:
        await submit(ctx, who, request_id, spec, None)


async def on_base(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The picture before the anime style (behind a spoiler when the picture is)."""
    base = record.image(ImageRole.BASE)
    if base is None or not base.path.exists():
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    png = await asyncio.to_thread(base.path.read_bytes)
    original = cards.original(record.id, who.lang, png)
    await ctx.messenger.send(who.origin, cards.as_spoiler(original, who.lang) if record.error_key == POLICY_SPOILER else original)


async def on_resend(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """A picture again: from /history, or one whose every upload failed so far."""
    anime = record.image(ImageRole.ANIME)
    if anime is None or not anime.path.exists():
        await ctx.messenger.notify(who.origin, t("not_ready" if record.state is S.RUNNING else "history.gone", who.lang))
        return
    png = await asyncio.to_thread(anime.path.read_bytes)
    if record.state is S.RUNNING:  # drawn, but every upload failed so far
        await ctx.jobs.send_picture(who.origin, who.lang, record, png)
        return
    tiles = await variation_tiles(record)
    description = await description_of(ctx.repository, record)
    await ctx.messenger.send(who.origin, delivered_reply(record, who.lang, png, ctx.config.style_names, tiles, description))


async def on_history(ctx: Context, who: Who, command: Command) -> None:
    """/history: the last pictures, each described by its words (a restyle or reroll by its origin's) and its style."""
    records = await ctx.repository.history(who.user_id, ctx.config.history_limit)
    entries = []
    for record in records:
        described = record
        while described.transcript is None and described.parent_id:  # a restyle/reroll shows its origin's words
            parent = await ctx.repository.get_request(described.parent_id)
            if parent is None:
                break
            described = parent
        transcript = described.transcript
        text = (transcript.final_text or transcript.edited_text or transcript.heard_text) if transcript else ""
        style = cards.style_name(record.style or "", who.lang, ctx.config.style_names)
        entries.append(cards.HistoryEntry(record.id, text, style, record.created_at))
    await ctx.messenger.send(who.origin, cards.history_list(who.lang, entries))
