"""Remix a delivered picture with new words, and a card's shape and strength buttons.

Remix asks for the new description; the user's next words (a voice note,
typed text, the platform's form) open a remix card: a request of kind
``remix`` deriving from the picture, with its seed and style, which goes
through the usual card (Edit, Style, Draw...) and is drawn over the picture's
drawing (img2img) with the strength picked on the card.
"""

from __future__ import annotations

from db.enums import RequestKind
from db.records import RequestRecord
from db.states import RequestState
from engine.language.aspect import aspects
from handlers.actions import Action
from handlers.conversation.card_view import card_for, show_card
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create
from handlers.conversation.shape_view import DEFAULT_STRENGTH, STRENGTHS, shape_size
from handlers.events import ButtonPress
from handlers.i18n import t
from handlers.replies import Reply

S = RequestState


def _key(who: Who) -> tuple[str, str, str]:
    return (who.origin.platform, who.origin.chat_id, who.origin.user_id)


async def on_remix(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Ask for the new description of a delivered picture (the next voice note or text is it), prefilled with its words."""
    if not record.prompt_positive:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    ctx.pending_edits.pop(_key(who), None)
    ctx.pending_remixes[_key(who)] = record.id
    transcript = record.transcript
    words = (transcript.final_text or transcript.edited_text or transcript.heard_text) if transcript else ""
    await ctx.messenger.send(
        who.origin,
        Reply(
            t("remix.prompt", who.lang),
            kind="edit_prompt",
            prefill=words,
            request_id=record.id,
            title=t("remix.title", who.lang),
            asks_again=Action.REMIX,
        ),
    )


def pending_remix(ctx: Context, who: Who, request_id: str = "") -> str | None:
    """The picture ``who`` is remixing (taken: one description per press), if their words are for it (``request_id``:
    the picture the platform's form answers, empty when it does not say)."""
    parent = ctx.pending_remixes.get(_key(who))
    if parent is None or (request_id and request_id != parent):
        return None
    del ctx.pending_remixes[_key(who)]
    return parent


async def remix_request(ctx: Context, who: Who, parent_id: str, state: RequestState, **fields: object) -> str | None:
    """A new remix request of ``parent_id`` (its seed, style and shape, the default strength); None when the picture is gone."""
    parent = await ctx.repository.get_request(parent_id)
    if parent is None or parent.state is not S.DELIVERED:
        await ctx.messenger.send(who.origin, Reply(t("history.gone", who.lang)))
        return None
    return await create(
        ctx,
        who,
        kind=RequestKind.REMIX,
        state=state,
        parent_id=parent.id,
        style=parent.style or who.style,
        seed=parent.seed,
        strength=STRENGTHS[DEFAULT_STRENGTH],
        width=parent.width,  # drawn at its picture's size; a Reroll of it keeps the shape
        height=parent.height,
        **fields,
    )


async def on_strength(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """A remix card's strength: the card shows it at once."""
    if press.value not in STRENGTHS or record.strength is None:
        return
    if await ctx.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], strength=STRENGTHS[press.value]):
        await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), await card_for(ctx, who, record.id))


async def on_aspect(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """A card's picture shape: the card shows it at once."""
    if press.value not in aspects() or record.strength is not None or record.control:  # a remix keeps its picture's shape, a photo's composition its photo's
        return
    if await ctx.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], **shape_size(press.value)):
        await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), await card_for(ctx, who, record.id))
