"""The content check of a picture a user sent, run where pictures are checked, for a request that keeps it as it is.

Pictures are checked where they are made (:mod:`engine.jobs.runner`), so the
local engine and Redis workers behave alike. A photo is checked there by its
``photo`` job before it is styled. A picture the conversation keeps as it is
(a dropped PNG with its drawing parameters) goes through that same job: it
passes when the job finishes with nothing flagged; the styled picture the job
made is not used. A refused picture fails its request with the refusal a photo
gets; a job that fails otherwise (a missing check model...) fails it saying
why; a cancelled one is cancelled. The request stays ``queued`` meanwhile, so
the caps and /cancel hold as for any photo. In a chat whose content policy is
``off`` no picture is checked, and no job runs. The job is followed on a task of
its own (:attr:`Context.checks`): the handler does not wait while it queues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from db.states import RequestState
from engine.api import JobCancelled, JobFailed, JobFinished, JobHandle, JobSpec
from engine.policy.levels import PhotoFlaggedError, checks_images
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import fail
from handlers.i18n import error_text, t
from handlers.replies import Reply

log = logging.getLogger(__name__)

S = RequestState

#: What to do with a picture that passed.
Passed = Callable[[], Awaitable[None]]


async def check_photo(ctx: Context, who: Who, request_id: str, ref: str | None, png: bytes, passed: Passed) -> None:
    """Check ``png``, sent by ``who`` for the queued request ``request_id``, as a photo (see the module docstring), and
    call ``passed`` once it passes; when it does not, the request ends and the user is told why in message ``ref``."""
    if not checks_images(who.policy):  # a chat whose level is off checks no pictures: no job to run
        await passed()
        return
    spec = JobSpec(request_id, str(who.user_id), "photo", who.style, source_png=png, policy=who.policy.value)
    try:
        handle = await ctx.jobs.queue.submit(spec)
    except Exception as error:
        await fail(ctx, who, request_id, ref, error, from_states=[S.QUEUED])
        return
    task = asyncio.create_task(_follow(ctx, who, request_id, ref, handle, passed), name=f"check-{request_id}")
    ctx.checks.add(task)
    task.add_done_callback(ctx.checks.discard)


async def _follow(ctx: Context, who: Who, request_id: str, ref: str | None, handle: JobHandle, passed: Passed) -> None:
    """Follow the check's job to its end: ``passed`` when nothing was flagged, else the request ends saying why."""
    try:
        async for event in handle.events():
            match event:
                case JobFinished(result=result) if not result.flagged:
                    await passed()
                case JobFinished(result=result):
                    log.info("request %s: the picture check flagged a sent picture (%s)", request_id, ", ".join(result.flagged))
                    await _refused(ctx, who, request_id, ref, PhotoFlaggedError.key, {})
                case JobFailed(error_key=key, params=params):
                    log.info("request %s: a sent picture was not kept (%s)", request_id, key)
                    await _refused(ctx, who, request_id, ref, "job.failed" if key == "error.generic" else key, params)
                case JobCancelled():
                    if await ctx.repository.transition(request_id, S.CANCELLED, from_states=[S.QUEUED]):
                        await ctx.put(who, ref, Reply(t("cancelled", who.lang)))
    except Exception:
        log.exception("request %s: the check of a sent picture failed", request_id)
        await ctx.jobs.queue.cancel(request_id)
        await _refused(ctx, who, request_id, ref, "job.failed", {})


async def _refused(ctx: Context, who: Who, request_id: str, ref: str | None, key: str, params: Mapping[str, object]) -> None:
    """End ``request_id`` as failed with ``key`` and tell the user."""
    if await ctx.repository.transition(request_id, S.FAILED, from_states=[S.QUEUED], error_key=key):
        await ctx.put(who, ref, Reply(error_text(key, who.lang, params), kind="error", request_id=request_id))
