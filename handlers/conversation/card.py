"""The confirmation card's buttons: Draw, Edit, Heard wrong language, Style, Details, Keep what I said."""

from __future__ import annotations

from dataclasses import replace

from db.records import RequestRecord
from db.states import RequestState
from handlers import cards
from handlers.actions import Action
from handlers.conversation.card_view import card_for, retire_card, show_card, style_picker
from handlers.conversation.context import Context, Who
from handlers.conversation.queueing import confirm
from handlers.conversation.readings import heard, write_reading
from handlers.conversation.transcription import transcribe
from handlers.events import ButtonPress
from handlers.i18n import t
from handlers.replies import Reply

S = RequestState


async def on_confirm(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Draw it; a doubtful hearing's card asks once more first."""
    if press.value == cards.DRAW_ASK:
        card = await card_for(ctx, who, record.id, asking=True)
        await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), card)
        return
    await confirm(ctx, who, record.id, press.message_ref or None, record)


async def on_edit(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Ask for the corrected words (the user's next text, or the platform's form), prefilled with the current ones."""
    ctx.pending_edits[(who.origin.platform, who.origin.chat_id, who.origin.user_id)] = record.id
    ctx.pending_remixes.pop((who.origin.platform, who.origin.chat_id, who.origin.user_id), None)
    transcript = record.transcript
    current = (transcript.edited_text or transcript.heard_text) if transcript else ""
    await ctx.messenger.send(
        who.origin, Reply(
            t("edit.prompt", who.lang), kind="edit_prompt", prefill=current, request_id=record.id, title=t("edit.title", who.lang)
        )
    )


async def on_retry(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Heard wrong language: which language was it? (only while the voice note is still in memory)."""
    if record.id not in ctx.audio:
        await ctx.messenger.notify(who.origin, t("card.expired", who.lang))
        return
    await ctx.messenger.send(who.origin, cards.language_picker(record.id, who.lang))


async def on_retry_as(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Listen again in the language picked: the card is replaced at once, the picker becomes the status (no buttons left)."""
    audio = ctx.audio.get(record.id)
    if audio is None or press.value not in cards.RETRY_LANGUAGES:
        await ctx.messenger.notify(who.origin, t("card.expired", who.lang))
        return
    if not await ctx.repository.transition(record.id, S.TRANSCRIBING, from_states=[S.AWAITING_CONFIRMATION]):
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return
    await retire_card(ctx, who, record.id, "card.superseded")
    ref = await ctx.put(who, press.message_ref or None, Reply(t("transcribing", who.lang), kind="progress"))
    await transcribe(ctx, replace(who, style=record.style or who.style), record.id, ref or "", audio, language=press.value)


async def on_style(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The styles to draw this card in."""
    await ctx.messenger.send(who.origin, style_picker(ctx, who, record.id, Action.STYLE_SET, record.style))


async def on_style_set(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The card itself shows the new style at once; the picker says what was chosen."""
    if press.value not in ctx.config.styles:
        return
    if not await ctx.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], style=press.value):
        return
    name = cards.style_name(press.value, who.lang, ctx.config.style_names)
    if press.message_ref and press.message_ref != ctx.cards.get(record.id):
        await ctx.put(who, press.message_ref, Reply(t("style.set", who.lang, style=name), request_id=record.id))
    await show_card(ctx, who, record.id, ctx.cards.get(record.id), await card_for(ctx, who, record.id))
    await ctx.messenger.notify(who.origin, t("style.set", who.lang, style=name))


async def on_keep_said(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Put back the words the engine corrected: the card shows (and will draw) what the recogniser heard."""
    transcript = record.transcript
    if transcript is None or transcript.edited_text or not transcript.corrections:
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return
    said = transcript.as_said()
    prompt = heard(said.heard_text, translation=said.translation, language=said.language)
    if not await write_reading(ctx, who, record.id, prompt, renew=False):
        return
    await ctx.repository.save_transcript(
        record.id,
        heard_text=said.heard_text,
        language=said.language,
        language_probability=said.language_probability,
        translation=said.translation,
        words=said.words,
    )
    await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), await card_for(ctx, who, record.id))


async def on_details(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Show or hide the English prompt."""
    card = await card_for(ctx, who, record.id, details=press.value == "1")
    await show_card(ctx, who, record.id, press.message_ref or ctx.cards.get(record.id), card)
