"""A photo with words: draw the words keeping the photo's composition (its outline or edges; a sketch's strokes).

A photo's caption, a text replying to it or ``/anime`` with it attached is a
typed description with a control image (a voice note replying to a photo is
a voice request with one: :func:`keep_composition`). It is admitted first, its
card opens at once (it says what will be kept), then the photo is downloaded,
read within the photo caps and stored; a drawing (mostly white with dark
strokes) is kept as a sketch. Draw queues a text job carrying the image.
"""

from __future__ import annotations

import asyncio

from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from engine.errors import TextTooLongError
from engine.image.control import is_sketch
from engine.image.imageio import open_image, png_bytes
from engine.language.prompt import build_prompt
from handlers.actions import Action
from handlers.conversation.card_view import card_for
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create, fail, refuse
from handlers.conversation.queueing import present
from handlers.conversation.readings import judge
from handlers.conversation.voice import speak_card
from handlers.events import ButtonPress, PhotoMessage, fetched
from handlers.i18n import t
from handlers.replies import Button, Reply

S = RequestState


async def on_described_photo(ctx: Context, who: Who, event: PhotoMessage) -> None:
    """Open a card for the photo's words that keeps its composition (refused outright when the policy says no)."""
    text = event.caption.strip()
    check_length(ctx, text)
    prompt = build_prompt(text)
    verdict = await judge(ctx, who, prompt)
    request_id = await create(
        ctx,
        who,
        kind=RequestKind.TEXT,
        state=S.AWAITING_CONFIRMATION,
        style=who.style,
        prompt_positive=prompt.positive,
        prompt_negative=prompt.negative,
        source_language=prompt.language,
        card_expires_at=ctx.clock() + ctx.config.card_ttl,
        control=ctx.config.control_photo,
    )
    try:
        await ctx.repository.save_transcript(request_id, heard_text=text, language=prompt.language, language_probability=1.0)
        if not verdict.allowed:
            await refuse(ctx, who, request_id, None, verdict, from_states=[S.AWAITING_CONFIRMATION])
            return
        await keep_composition(ctx, request_id, await event.fetch(), S.AWAITING_CONFIRMATION, sketch=event.sketch)
    except Exception as error:
        await fail(ctx, who, request_id, None, error, from_states=[S.AWAITING_CONFIRMATION])
        return
    await present(ctx, who, request_id, None, await card_for(ctx, who, request_id))
    await speak_card(ctx, who, request_id)


async def keep_composition(ctx: Context, request_id: str, data: bytes, state: S, *, sketch: bool = False) -> None:
    """Store ``data`` (read within the photo caps) as the picture whose composition ``request_id`` keeps.

    A drawing (``sketch``, or a picture that looks like one) is kept as a sketch.
    """
    limits = {"max_pixels": ctx.config.photo_max_pixels, "max_side": ctx.config.photo_max_side}
    png, drawn = await asyncio.to_thread(read_photo, data, limits)
    await ctx.repository.add_image(request_id, ImageRole.CONTROL, png)
    if sketch or drawn:
        await ctx.repository.update_in_state(request_id, [state], control="scribble")


def read_photo(data: bytes, limits: dict[str, int]) -> tuple[bytes, bool]:
    """The photo as PNG (pixel caps checked from its header before decoding) and whether it is a drawing (a sketch)."""
    picture = open_image(data, **limits)
    return png_bytes(picture), is_sketch(picture)


async def offer_sketch(ctx: Context, who: Who, request_id: str) -> None:
    """A drawing sent without words: offer to draw from it as a sketch (it is restyled meanwhile, as any photo)."""
    button = Button(t("button.use_sketch", who.lang), Action.USE_SKETCH, request_id)
    await ctx.messenger.send(who.origin, Reply(t("sketch.offer", who.lang), buttons=((button,),), request_id=request_id))


async def on_use_sketch(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """"Use as a sketch": the user's next words (typed, or a voice note) say what the drawing is."""
    base = record.image(ImageRole.BASE)
    if base is None or not base.path.exists():
        await ctx.messenger.notify(who.origin, t("card.expired", who.lang))
        return
    await ask_what_it_is(ctx, who, await asyncio.to_thread(base.path.read_bytes))


async def ask_what_it_is(ctx: Context, who: Who, drawing: bytes) -> None:
    """Keep ``drawing`` until ``who``'s next words or voice note say what it is, and ask."""
    ctx.pending_sketches[_key(who)] = drawing
    await ctx.messenger.send(who.origin, Reply(t("sketch.ask", who.lang)))


async def pending_sketch(ctx: Context, who: Who) -> bytes | None:
    """The drawing ``who`` is to say what it is (taken: asked once), if any."""
    return ctx.pending_sketches.pop(_key(who), None)


async def on_sketch_words(ctx: Context, who: Who, drawing: bytes, text: str) -> None:
    """The words saying what a chosen sketch is: a card that draws them from the sketch."""
    await on_described_photo(ctx, who, PhotoMessage(who.origin, fetched(drawing), text, sketch=True))


def _key(who: Who) -> tuple[str, str, str]:
    return (who.origin.platform, who.origin.chat_id, who.origin.user_id)


def check_length(ctx: Context, text: str) -> None:
    """Refuse words longer than ``MAX_TEXT_CHARS``."""
    if len(text) > ctx.config.max_text_chars:
        raise TextTooLongError(length=len(text), limit=ctx.config.max_text_chars)
