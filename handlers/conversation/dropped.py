"""A picture that carries its drawing parameters (the A1111 ``parameters`` PNG chunk): offer to draw it again or remix it.

A PNG this project (or another Stable Diffusion tool) made says how it was
drawn: its prompt, negative prompt, seed and size, and our style. Sent as a
photo (the studio's drop, a file), it is kept as a finished picture of its
own, the drawing it describes, once it passed the check any photo gets
(a refused one is never stored), and the user is offered **Draw again** (the
same prompt, seed, steps, guidance, size and style: a new request like
Reroll, but with the picture's own seed; a picture drawn keeping a photo's or
a sketch's composition is drawn from its words alone, as the offer says, for
that picture is not in the PNG) or **Remix** (new words drawn over it:
:mod:`handlers.conversation.remix`). A picture without the chunk is a photo
to restyle, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from engine.image.png_info import PictureParameters, read
from engine.language.prompt import build_prompt
from handlers.actions import Action
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create, drawn_like, fail, job_for, refuse, submit
from handlers.conversation.photo_checking import check_photo
from handlers.conversation.readings import judge_stored
from handlers.events import ButtonPress
from handlers.i18n import t
from handlers.replies import Button, Reply

log = logging.getLogger(__name__)

S = RequestState

_PNG = b"\x89PNG\r\n\x1a\n"
#: Sides a drawing may have (what the drawing engine accepts).
_SIDES = range(64, 2049, 8)
#: Steps a drawing may take (what the drawing engine accepts).
_STEPS = range(1, 151)


def drawn_parameters(data: bytes) -> PictureParameters | None:
    """The drawing parameters ``data`` carries, when it is a PNG of a drawing (prompt, seed, steps); else None."""
    if not data.startswith(_PNG):
        return None
    parameters = read(data)
    return parameters if parameters is not None and parameters.drawn else None


async def offer_checked(ctx: Context, who: Who, request_id: str, ref: str | None, png: bytes, parameters: PictureParameters) -> None:
    """Check ``png`` as any photo (:mod:`~handlers.conversation.photo_checking`); when it passes, keep the photo request
    ``request_id`` as the drawing ``parameters`` describe and offer Draw again / Remix (a refused one is never stored)."""

    async def passed() -> None:
        try:
            await _offer(ctx, who, request_id, ref, png, parameters)
        except Exception as error:
            await fail(ctx, who, request_id, ref, error, from_states=[S.QUEUED, S.RUNNING])

    await check_photo(ctx, who, request_id, ref, png, passed)


async def _offer(ctx: Context, who: Who, request_id: str, ref: str | None, png: bytes, parameters: PictureParameters) -> None:
    """Keep the photo request ``request_id`` (its picture stored) as the drawing ``parameters`` describe, and offer Draw again / Remix."""
    sized = parameters.width in _SIDES and parameters.height in _SIDES
    fields: dict[str, Any] = {
        "prompt_positive": parameters.prompt,
        "prompt_negative": parameters.negative,
        "seed": parameters.seed,
        "style": parameters.style if parameters.style in ctx.config.styles else who.style,
        "width": parameters.width if sized else None,
        "height": parameters.height if sized else None,
        "steps": parameters.steps if parameters.steps in _STEPS else None,
        "guidance": parameters.guidance if parameters.guidance is not None and 0 <= parameters.guidance <= 30 else None,
    }
    words = parameters.transcript or parameters.prompt
    if words:  # what it shows: quoted on its picture and in /history, prefilled by Remix
        language = parameters.language or build_prompt(words).language
        fields["source_language"] = language
        await ctx.repository.save_transcript(request_id, heard_text=words, language=language, language_probability=1.0)
    await ctx.repository.add_image(request_id, ImageRole.BASE, png)
    await ctx.repository.add_image(request_id, ImageRole.ANIME, png)
    if not (
        await ctx.repository.transition(request_id, S.RUNNING, from_states=[S.QUEUED])
        and await ctx.repository.transition(request_id, S.DELIVERED, from_states=[S.RUNNING], **fields)
    ):
        return
    log.info("request %s: a picture with its drawing parameters (seed %s); offered to draw it again", request_id, parameters.seed)
    row = (
        Button(t("button.draw_again", who.lang), Action.DRAW_AGAIN, request_id),
        Button(t("button.remix", who.lang), Action.REMIX, request_id),
    )
    text = t(_offer_key(parameters), who.lang)
    if words:
        text = t("card.quote", who.lang, text=words) + "\n" + text
    await ctx.put(who, ref, Reply(text, buttons=(row,), request_id=request_id))


def _offer_key(parameters: PictureParameters) -> str:
    """The offer's message: a picture drawn keeping a sketch's or a photo's composition says Draw again goes without it
    (the control image is not in the PNG), while Remix, drawn over the picture itself, keeps its composition."""
    if not parameters.controlled:
        return "dropped.offer"
    return "dropped.offer_sketch" if parameters.control == "scribble" else "dropped.offer_photo"


async def on_draw_again(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """The same prompt, negative prompt, seed, steps, guidance, size and style as the picture: a new request, queued at once."""
    if not record.prompt_positive or record.seed is None:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    request_id = await create(
        ctx,
        who,
        kind=RequestKind.REROLL,
        state=S.QUEUED,
        parent_id=record.id,
        style=record.style or who.style,
        seed=record.seed,
        **drawn_like(record),
        steps=record.steps,
        guidance=record.guidance,
    )
    verdict = await judge_stored(ctx, who, record)
    if not verdict.allowed:
        await refuse(ctx, who, request_id, None, verdict, from_states=[S.QUEUED])
        return
    spec = await job_for(ctx, who, request_id, None)
    if spec is not None:
        await submit(ctx, who, request_id, spec, None)
