"""⬆️ Upscale ×2 / ×4 of a delivered picture: a picker, then one request under the caps whose job runs Real-ESRGAN.

The upscale request's base image is the picture (its parent's anime image,
recorded for it too); the job runs where jobs run (the local engine or a
worker, which loads the upscaler) with the usual status, progress and
Cancel; the result is sent as a file (:func:`handlers.cards.upscaled`). A
missing upscaling model fails the request saying so, with Retry
(:func:`handlers.conversation.recovery.reopen_for_model`).
"""

from __future__ import annotations

from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from handlers import cards
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create, job_for, submit
from handlers.events import ButtonPress
from handlers.i18n import t

S = RequestState

#: The factors offered.
SCALES = {"2": 2, "4": 4}


async def on_upscale(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Without a value: the ×2 / ×4 picker; with one: the picture upscaled that many times."""
    if not press.value:
        await ctx.messenger.send(who.origin, cards.upscale_picker(record.id, who.lang))
        return
    anime = record.image(ImageRole.ANIME)
    scale = SCALES.get(press.value)
    if scale is None or anime is None or not anime.path.exists() or record.kind is RequestKind.UPSCALE:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    request_id = await create(
        ctx,
        who,
        kind=RequestKind.UPSCALE,
        state=S.QUEUED,
        parent_id=record.id,
        style=record.style,
        seed=record.seed,
        upscale=scale,
    )
    await ctx.repository.link_image(record.id, request_id, ImageRole.ANIME, as_role=ImageRole.BASE)
    spec = await job_for(ctx, who, request_id, None)
    if spec is not None:
        await submit(ctx, who, request_id, spec, None)
