"""The confirmation card on screen: rendered from the database, shown in one message, retired when it is over."""

from __future__ import annotations

import logging

from db.records import RequestRecord
from db.states import RequestState
from engine.missing_models import is_unavailable
from handlers import cards
from handlers.actions import Action
from handlers.conversation.context import Context, Who
from handlers.conversation.keeps_view import with_keep_choice
from handlers.conversation.readings import judge, reading_of
from handlers.conversation.shape_view import with_shape_and_strength
from handlers.i18n import error_text, t
from handlers.replies import Reply

log = logging.getLogger(__name__)

S = RequestState


async def card_for(
    ctx: Context,
    who: Who,
    request_id: str,
    *,
    details: bool = False,
    fix: str = "",
    asking: bool = False,
    stored: RequestRecord | None = None,
) -> Reply:
    """The confirmation card of a request, rendered from what the database holds (so every update shows the same).

    ``stored``: the request as the write that changed it just returned it (else it is read).
    A request waiting for a missing model says so, with Retry (``fix``: the operator's, for the studio).
    """
    record = stored or await ctx.repository.get_request(request_id)
    assert record is not None
    missing = record.error_key if is_unavailable(record.error_key) else None
    if record.transcript is None:
        assert missing is not None, "only a voice note waiting for the speech model has a card without words"
        return cards.waiting_for_model(request_id, who.lang, missing, fix=fix)
    transcript = record.transcript
    reading = reading_of(record.kind, transcript)
    heard, text, prompt = reading.heard, reading.text, reading.prompt
    said = cards.mark_unsure(transcript.words) if heard and transcript.words else text
    verdict = await judge(ctx, who, prompt)
    card = cards.confirmation_card(
        request_id,
        who.lang,
        said=said,
        parsed=prompt.parsed,
        prompt=record.prompt_positive or prompt.positive,
        style=cards.style_name(record.style or who.style, who.lang, ctx.config.style_names),
        heard_language=transcript.language if heard else None,
        confidence=transcript.language_probability,
        has_unsure=heard and any(w.unsure for w in transcript.words),
        corrections=transcript.corrections if heard else (),
        untranslated=[cards.as_written(word, text) for word in prompt.untranslated],
        glossary=[(english, cards.as_written(chinese, text)) for english, chinese in prompt.glossary],
        details=details,
        refusal=() if verdict.allowed else cards.policy_refusal(who.lang, verdict, heard=heard),
        missing=error_text(missing, who.lang) if missing else "",
        fix=fix,
        asking=asking,
        keeps=record.control,
    )
    return with_keep_choice(with_shape_and_strength(card, record, who.lang), record, who.lang, ctx.config.control_photo)


async def show_card(ctx: Context, who: Who, request_id: str, ref: str | None, card: Reply) -> None:
    """Show ``card`` (in message ``ref`` when given); an older message of the same card loses its buttons."""
    shown = await ctx.put(who, ref, card)
    if shown is None:
        await ctx.repository.transition(request_id, S.FAILED, from_states=[S.AWAITING_CONFIRMATION], error_key="error.generic")
        return
    if ctx.cards.get(request_id, shown) != shown:
        await retire_card(ctx, who, request_id, "card.superseded")
    ctx.cards[request_id] = shown


async def retire_card(ctx: Context, who: Who, request_id: str, key: str) -> None:
    """The card of ``request_id`` can no longer be acted on: replace it with a line saying why (best effort)."""
    ref = ctx.cards.pop(request_id, None)
    if ref is None:
        return
    try:
        await ctx.messenger.edit(who.origin, ref, cards.retired_card(request_id, who.lang, key))
    except Exception:
        log.info("request %s: could not retire its card", request_id, exc_info=True)


async def card_is_open(ctx: Context, who: Who, record: RequestRecord) -> bool:
    """True while the card can be acted on; answers "expired"/"already done" otherwise."""
    if record.state is S.AWAITING_CONFIRMATION and record.card_expires_at and record.card_expires_at < ctx.clock():
        await ctx.repository.transition(record.id, S.EXPIRED, from_states=[S.AWAITING_CONFIRMATION])
        ctx.audio.pop(record.id, None)
        await retire_card(ctx, who, record.id, "card.expired")
        await ctx.messenger.notify(who.origin, t("card.expired", who.lang))
        return False
    if record.state is S.EXPIRED:
        await ctx.messenger.notify(who.origin, t("card.expired", who.lang))
        return False
    if record.state is not S.AWAITING_CONFIRMATION:
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return False
    return True


def style_picker(ctx: Context, who: Who, request_id: str, action: Action, current: str | None) -> Reply:
    """The styles to pick from for ``action`` (a card's style, a restyle, the default style), ``current`` ticked."""
    return cards.style_picker(request_id, action, ctx.config.styles, who.lang, ctx.config.style_names, current)
