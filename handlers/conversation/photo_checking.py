"""The content check of a picture a user sent, run where pictures are checked, for a request that keeps it as it is.

Pictures are checked where they are made (:mod:`engine.jobs.runner`), so the
local engine and Redis workers behave alike. A photo is checked there by its
``photo`` job before it is styled. A picture the conversation keeps as it is
(a dropped PNG with its drawing parameters) goes through that same job: it
passes when the job finishes with nothing flagged; the styled picture the job
made is not used. A refused picture fails its request with the refusal a photo
gets; a job that fails otherwise (a missing check model...) fails it saying
why; a cancelled one is cancelled. The request stays ``queued`` meanwhile, so
the caps and /cancel hold as for any photo.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from db.states import RequestState
from engine.api import JobCancelled, JobFailed, JobFinished, JobSpec
from engine.policy.levels import PhotoFlaggedError
from handlers.conversation.context import Context, Who
from handlers.i18n import error_text, t
from handlers.replies import Reply

log = logging.getLogger(__name__)

S = RequestState


async def photo_passes(ctx: Context, who: Who, request_id: str, ref: str | None, png: bytes) -> bool:
    """Whether ``png``, sent by ``who`` for the queued request ``request_id``, passes the photo check (see the module
    docstring); when it does not, the request has ended and the user was told why in message ``ref``."""
    spec = JobSpec(request_id, str(who.user_id), "photo", who.style, source_png=png, policy=who.policy.value)
    try:
        handle = await ctx.jobs.queue.submit(spec)
        async for event in handle.events():
            match event:
                case JobFinished(result=result) if not result.flagged:
                    return True
                case JobFinished(result=result):
                    log.info("request %s: the picture check flagged a sent picture (%s)", request_id, ", ".join(result.flagged))
                    return await _refused(ctx, who, request_id, ref, PhotoFlaggedError.key, {})
                case JobFailed(error_key=key, params=params):
                    log.info("request %s: a sent picture was not kept (%s)", request_id, key)
                    return await _refused(ctx, who, request_id, ref, "job.failed" if key == "error.generic" else key, params)
                case JobCancelled():
                    if await ctx.repository.transition(request_id, S.CANCELLED, from_states=[S.QUEUED]):
                        await ctx.put(who, ref, Reply(t("cancelled", who.lang)))
                    return False
    except Exception:
        log.exception("request %s: the check of a sent picture failed", request_id)
        await ctx.jobs.queue.cancel(request_id)
        return await _refused(ctx, who, request_id, ref, "job.failed", {})
    return False


async def _refused(ctx: Context, who: Who, request_id: str, ref: str | None, key: str, params: Mapping[str, object]) -> bool:
    """End ``request_id`` as failed with ``key`` and tell the user (False: the picture is not kept)."""
    if await ctx.repository.transition(request_id, S.FAILED, from_states=[S.QUEUED], error_key=key):
        await ctx.put(who, ref, Reply(error_text(key, who.lang, params), kind="error", request_id=request_id))
    return False
