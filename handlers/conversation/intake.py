"""What comes in: a voice note, typed ``/anime`` text, the corrected words after Edit, a photo."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from db.enums import ImageRole, RequestKind
from db.states import RequestState
from engine.api import JobSpec
from engine.errors import UnknownStyleError
from engine.language.prompt import build_prompt
from handlers import cards
from handlers.conversation.card_view import card_for, card_is_open, show_card
from handlers.conversation.composition import (
    ask_what_it_is,
    check_length,
    keep_composition,
    offer_sketch,
    on_described_photo,
    on_sketch_words,
    pending_sketch,
    read_photo,
)
from handlers.conversation.context import Context, Who
from handlers.conversation.dropped import drawn_parameters, offer_checked
from handlers.conversation.lifecycle import create, fail, refuse
from handlers.conversation.queueing import present
from handlers.conversation.readings import judge, write_reading
from handlers.conversation.remix import pending_remix, remix_request
from handlers.conversation.shape_view import shape_size
from handlers.conversation.transcription import transcribe
from handlers.conversation.voice import speak_card
from handlers.events import Command, Origin, PhotoMessage, Rejected, TextMessage, VoiceMessage, fetched
from handlers.i18n import t
from handlers.replies import Reply

S = RequestState


async def on_voice(ctx: Context, who: Who, event: VoiceMessage) -> None:
    """A voice note: admitted first, then downloaded and listened to (with the photo it replies to, as its control image;
    after Remix, the new words of the picture being remixed, whatever the voice note replies to)."""
    remixed = pending_remix(ctx, who)
    if remixed is not None:
        remix_id = await remix_request(ctx, who, remixed, S.TRANSCRIBING)
        if remix_id is None:
            return
        request_id = remix_id
        event = replace(event, photo=None)  # the words asked for are the remix's: drawn over its picture, not a photo's composition
    else:
        drawing = await pending_sketch(ctx, who)  # after "Use as a sketch", the voice note says what the drawing is
        if drawing is not None:
            event = replace(event, photo=fetched(drawing))
        control = ctx.config.control_photo if event.photo is not None else None
        request_id = await create(ctx, who, kind=RequestKind.VOICE, state=S.TRANSCRIBING, style=who.style, control=control)
    ref: str | None = None
    try:
        ref = await ctx.messenger.send(who.origin, Reply(t("transcribing", who.lang), kind="progress"))
        if event.photo is not None:
            await keep_composition(ctx, request_id, await event.photo(), S.TRANSCRIBING)
        audio = await event.fetch()  # downloaded only now: the request was admitted
    except Exception as error:
        await fail(ctx, who, request_id, ref, error, from_states=[S.TRANSCRIBING])
        return
    ctx.remember_audio(request_id, audio)
    await transcribe(ctx, who, request_id, ref, audio, language=None)


async def on_text(ctx: Context, who: Who, event: TextMessage) -> None:
    """Text: the new words of a picture being remixed, the corrected words of the card being edited; else, in a private chat, a hint."""
    remixed = pending_remix(ctx, who, event.request_id)
    if remixed is not None:
        await _typed_card(ctx, who, event.text.strip(), remix_of=remixed)
        return
    key = (who.origin.platform, who.origin.chat_id, who.origin.user_id)
    request_id = event.request_id or ctx.pending_edits.get(key)
    if request_id is not None:
        async with ctx.request_locks(request_id):
            await _apply_edit(ctx, who, request_id, event.text)  # a UserError (too long...) keeps the edit pending
        if ctx.pending_edits.get(key) == request_id:
            del ctx.pending_edits[key]
    elif (drawing := await pending_sketch(ctx, who)) is not None:
        await on_sketch_words(ctx, who, drawing, event.text)
    elif not who.origin.is_group:
        await ctx.messenger.send(who.origin, Reply(t("text.hint", who.lang)))


async def awaits_words(ctx: Context, who: Who) -> bool:
    """Whether ``who`` was asked for words and has not given them yet (see :func:`awaited_words`)."""
    return await awaited_words(ctx, who.origin) is not None


async def awaited_words(ctx: Context, origin: Origin) -> str | None:
    """The request whose words ``origin``'s user was asked for and has not given yet: the picture of a Remix, the card
    of an Edit still open (an Edit left unanswered before Draw or Cancel is forgotten); None when none waits."""
    key = (origin.platform, origin.chat_id, origin.user_id)
    remixed = ctx.pending_remixes.get(key)
    if remixed is not None:
        return remixed
    edited = ctx.pending_edits.get(key)
    if edited is None:
        return None
    record = await ctx.repository.get_request(edited)
    if record is not None and record.state is S.AWAITING_CONFIRMATION:
        return edited
    ctx.pending_edits.pop(key, None)
    return None


async def _apply_edit(ctx: Context, who: Who, request_id: str, text: str) -> None:
    """The user's own words replace what the card reads, if the card is theirs and still open."""
    text = text.strip()
    check_length(ctx, text)
    prompt = build_prompt(text)
    record = await ctx.repository.get_request(request_id)
    if record is None:
        await ctx.messenger.send(who.origin, Reply(t("card.expired", who.lang)))
        return
    if record.user_id != who.user_id:
        await ctx.messenger.notify(who.origin, t("not_yours", who.lang))
        return
    if not await card_is_open(ctx, who, record):
        return
    if not await write_reading(ctx, who, request_id, prompt):
        return
    await ctx.repository.record_edit(request_id, text)
    await show_card(ctx, who, request_id, None, await card_for(ctx, who, request_id))


async def on_anime(ctx: Context, who: Who, command: Command) -> None:
    """``/anime <text> [style]``: typed words open a card at once (refused outright when the policy says no);
    after Remix they are the remix's new words; words a drawing waits for ("Use as a sketch", the studio's pad) draw it."""
    text = command.args.strip()
    if not text:
        await ctx.messenger.send(who.origin, Reply(t("anime.usage", who.lang)))
        return
    check_length(ctx, text)
    if command.style:
        if command.style not in ctx.config.styles:
            raise UnknownStyleError(style=command.style, styles=", ".join(ctx.config.styles))
        who = replace(who, style=command.style)
    if (remixed := pending_remix(ctx, who)) is not None:  # the words Remix asked for
        await _typed_card(ctx, who, text, remix_of=remixed)
        return
    if (drawing := await pending_sketch(ctx, who)) is not None:  # the words a drawing waited for
        await on_sketch_words(ctx, who, drawing, text)
        return
    await _typed_card(ctx, who, text)


async def _typed_card(ctx: Context, who: Who, text: str, *, remix_of: str | None = None) -> None:
    """Typed words open a card at once (refused outright when the policy says no): a new picture, or a remix of ``remix_of``."""
    check_length(ctx, text)
    prompt = build_prompt(text)
    verdict = await judge(ctx, who, prompt)
    fields: dict[str, object] = {
        "prompt_positive": prompt.positive,
        "prompt_negative": prompt.negative,
        "source_language": prompt.language,
        "card_expires_at": ctx.clock() + ctx.config.card_ttl,
    }
    if remix_of is not None:
        made = await remix_request(ctx, who, remix_of, S.AWAITING_CONFIRMATION, **fields)
        if made is None:
            return
        request_id = made
    else:
        shape = shape_size(prompt.aspect) if prompt.aspect else {}
        request_id = await create(ctx, who, kind=RequestKind.TEXT, state=S.AWAITING_CONFIRMATION, style=who.style, **fields, **shape)
    try:
        await ctx.repository.save_transcript(request_id, heard_text=text, language=prompt.language, language_probability=1.0)
    except Exception as error:
        await fail(ctx, who, request_id, None, error, from_states=[S.AWAITING_CONFIRMATION])
        return
    if not verdict.allowed:  # typed words are what the user meant: refused at once, and kept as refused
        await refuse(ctx, who, request_id, None, verdict, from_states=[S.AWAITING_CONFIRMATION])
        return
    await present(ctx, who, request_id, None, await card_for(ctx, who, request_id))
    await speak_card(ctx, who, request_id)


async def on_photo(ctx: Context, who: Who, event: PhotoMessage) -> None:
    """A photo to restyle: admitted (rate limit, caps) before anything is downloaded or decoded, then queued.

    A photo with words (:attr:`PhotoMessage.caption`) is a description to draw keeping its composition instead,
    unless they reply to a photo sent before while the user was asked for words (Remix, Edit): then the words are
    the answer, as typed text would be (a new photo is a new picture, whatever was asked);
    a sketch from the studio's pad without words waits for them (the next text or voice note).
    """
    if event.caption.strip() and event.replying and not event.sketch and await awaits_words(ctx, who):
        await on_text(ctx, who, TextMessage(who.origin, event.caption))
        return
    if event.caption.strip():
        await on_described_photo(ctx, who, event)
        return
    if event.sketch:  # from the studio's pad, without words yet: they come next, typed or said
        await ask_what_it_is(ctx, who, await event.fetch())
        return
    request_id = await create(ctx, who, kind=RequestKind.PHOTO, state=S.QUEUED, style=who.style)
    ref: str | None = None
    try:
        ref = await ctx.messenger.send(who.origin, cards.progress(request_id, who.lang, "queued"))
        data = await event.fetch()
        limits = {"max_pixels": ctx.config.photo_max_pixels, "max_side": ctx.config.photo_max_side}
        png, drawing = await asyncio.to_thread(read_photo, data, limits)
        drawn = await asyncio.to_thread(drawn_parameters, data)  # read after the checked decode: a picture of ours
        if drawn is None:
            await ctx.repository.add_image(request_id, ImageRole.BASE, png)
    except Exception as error:
        await fail(ctx, who, request_id, ref, error, from_states=[S.QUEUED, S.RUNNING])
        return
    if drawn is not None:  # checked as any photo before it is kept or offered
        await offer_checked(ctx, who, request_id, ref, png, drawn)
        return
    spec = JobSpec(request_id, str(who.user_id), "photo", who.style, source_png=png, policy=who.policy.value)
    await ctx.jobs.submit(who.origin, who.lang, request_id, spec, ref)
    if drawing:
        await offer_sketch(ctx, who, request_id)


async def on_rejected(ctx: Context, who: Who, event: Rejected) -> None:
    """Something the platform would not hand over (e.g. over its download limit): the user is told why."""
    raise event.error
