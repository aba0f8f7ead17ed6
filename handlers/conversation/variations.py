"""🔀 Variations of a delivered picture (four new seeds, one job, a grid) and V1 .. V4 to keep one of them.

A Variations press is one request (kind ``variations``) under the caps, like
a Reroll: the same words, four seeds drawn in one batch, delivered as a 2×2
grid whose images (each picture and its drawing) are stored with the
request. Keeping one is a request of its own (kind ``kept``, also under the
caps) that runs no job: its picture and drawing are the variation's stored
files, and it is delivered as a picture with its own Restyle, Reroll,
Original and Variations.
"""

from __future__ import annotations

import asyncio
import logging

from db.enums import VARIATIONS, ImageRole, RequestKind, variation_roles
from db.records import RequestRecord
from db.states import RequestState
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import create, drawn_like, job_for, new_seed, refuse, submit
from handlers.conversation.readings import judge_stored
from handlers.events import ButtonPress
from handlers.i18n import t

log = logging.getLogger(__name__)

S = RequestState


async def on_variations(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Four pictures of the words of ``record`` with new seeds, as one request and one job."""
    if not record.prompt_positive:
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    request_id = await create(
        ctx,
        who,
        kind=RequestKind.VARIATIONS,
        state=S.QUEUED,
        parent_id=record.id,
        style=record.style or who.style,
        seed=new_seed(),
        **drawn_like(record),  # the picture's words and shape
    )
    verdict = await judge_stored(ctx, who, record)  # the same words again: the chat's level may have changed since
    if not verdict.allowed:
        await refuse(ctx, who, request_id, None, verdict, from_states=[S.QUEUED])
        return
    spec = await job_for(ctx, who, request_id, None)
    if spec is not None:
        await submit(ctx, who, request_id, spec, None)


def _number(value: str) -> int | None:
    """The variation a Keep button names (1 .. 4), or None."""
    return int(value) if value.isdigit() and 1 <= int(value) <= VARIATIONS else None


async def on_keep(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Keep variation ``press.value`` of a variations request: sent as a picture of its own, with its own actions."""
    number = _number(press.value) if record.kind is RequestKind.VARIATIONS else None
    roles = variation_roles(number) if number is not None else None
    anime = record.image(roles[0]) if roles else None
    if roles is None or anime is None or not anime.path.exists():
        await ctx.messenger.notify(who.origin, t("history.gone", who.lang))
        return
    request_id = await create(
        ctx,
        who,
        kind=RequestKind.KEPT,
        state=S.QUEUED,
        parent_id=record.id,
        style=record.style,
        seed=anime.seed,
        **drawn_like(record),  # a Reroll or Remix of the kept one keeps its shape
    )
    await ctx.repository.link_image(record.id, request_id, roles[0], as_role=ImageRole.ANIME)
    await ctx.repository.link_image(record.id, request_id, roles[1], as_role=ImageRole.BASE)
    if not await ctx.repository.transition(request_id, S.RUNNING, from_states=[S.QUEUED]):
        return  # cancelled meanwhile
    kept = await ctx.repository.get_request(request_id)
    assert kept is not None
    log.info("request %s keeps variation %d of %s", request_id, number, record.id)
    png = await asyncio.to_thread(anime.path.read_bytes)
    await ctx.jobs.send_picture(who.origin, who.lang, kept, png)
