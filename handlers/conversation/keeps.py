"""A photo's card: the choice of what the drawing keeps of the photo, stored with the request.

The buttons are :mod:`handlers.conversation.keeps_view`'s; Reroll keeps the
choice with the photo (:mod:`handlers.conversation.followups`).
"""

from __future__ import annotations

from db.records import RequestRecord
from db.states import RequestState
from handlers.conversation.card_view import card_for, show_card
from handlers.conversation.context import Context, Who
from handlers.conversation.keeps_view import choices
from handlers.events import ButtonPress
from handlers.i18n import t

S = RequestState


async def on_keeps(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Keep the photo's outline, its depth or its pose: stored with the request, the card shows it at once."""
    offered = choices(ctx.config.control_photo)
    if press.value not in offered or record.control not in offered:  # a sketch, or a card without a photo
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return
    if await ctx.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], control=press.value):
        await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), await card_for(ctx, who, record.id))
