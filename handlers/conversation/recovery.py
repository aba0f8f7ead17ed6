"""When things go wrong or are called off: Retry after a missing model, Try again, Cancel, and a restart.

A model that is not installed (Whisper, Stable Diffusion, a style's weights:
the operator's to fix) keeps the request open: its card comes back, saying
which part is missing, with Retry. A finished picture that could not be
stored waits with "Try again". After a restart, queued and running jobs are
resumed; what cannot be resumed fails, saying so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from db.enums import ChatKind, ImageRole, RequestKind
from db.records import RequestRecord
from db.states import RequestState
from handlers import cards
from handlers.actions import Action
from handlers.conversation.card_view import card_for, retire_card, show_card
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import job_for, submit
from handlers.conversation.queueing import confirm
from handlers.conversation.transcription import transcribe
from handlers.events import ButtonPress, Command, Origin
from handlers.i18n import error_text, t
from handlers.replies import Button, Reply

log = logging.getLogger(__name__)

S = RequestState


async def on_retry_missing(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Retry a request that waited for a missing model: draw it (its card, photo, ...), or listen to its voice note again."""
    if record.transcript is not None or record.kind not in (RequestKind.VOICE, RequestKind.REMIX):  # a remix without words was said
        await ctx.repository.update_in_state(record.id, [S.AWAITING_CONFIRMATION], error_key=None)
        await confirm(ctx, who, record.id, press.message_ref or None, record)
        return
    kept = await ctx.repository.take_waiting_audio(record.id)  # what survived a restart
    audio = ctx.audio.get(record.id) or kept
    if audio is None:
        await ctx.messenger.notify(who.origin, t("voice.gone", who.lang))
        return
    if not await ctx.repository.transition(record.id, S.TRANSCRIBING, from_states=[S.AWAITING_CONFIRMATION]):
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return
    ref = await ctx.put(who, press.message_ref or ctx.cards.get(record.id), Reply(t("transcribing", who.lang), kind="progress"))
    await transcribe(ctx, replace(who, style=record.style or who.style), record.id, ref or "", audio, language=None)


async def on_try_again(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """A finished picture that could not be stored: run the job again (the engine may answer from its cache)."""
    if ctx.jobs.following(record.id):
        await ctx.messenger.notify(who.origin, t("not_ready", who.lang))
        return
    spec = await job_for(ctx, who, record.id, press.message_ref or None, record)
    if spec is not None:
        await submit(ctx, who, record.id, spec, press.message_ref or None)


async def on_cancel(ctx: Context, who: Who, press: ButtonPress, record: RequestRecord) -> None:
    """Cancel: a card, a queued or a running request."""
    await _cancel(ctx, who, record)


async def on_cancel_command(ctx: Context, who: Who, command: Command) -> None:
    """/cancel: the newest of the user's open requests."""
    open_states = [S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING]
    mine = await ctx.repository.requests_in_states(open_states, user_id=who.user_id)
    if not mine:
        await ctx.messenger.send(who.origin, Reply(t("cancel.nothing", who.lang)))
        return
    await _cancel(ctx, who, mine[-1])


async def _cancel(ctx: Context, who: Who, record: RequestRecord) -> None:
    if record.state is S.AWAITING_CONFIRMATION:
        if await ctx.repository.transition(record.id, S.CANCELLED, from_states=[S.AWAITING_CONFIRMATION]):
            ctx.audio.pop(record.id, None)
            await ctx.repository.take_waiting_audio(record.id)
            if record.id in ctx.cards:
                await retire_card(ctx, who, record.id, "cancelled")
            else:
                await ctx.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
            return
    elif record.state in (S.QUEUED, S.RUNNING):
        if await ctx.jobs.queue.cancel(record.id):
            return  # the job's watcher records the cancel and tells the user
        if await ctx.repository.transition(record.id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING]):
            await ctx.messenger.send(who.origin, Reply(t("cancelled", who.lang)))
            return
    await ctx.messenger.notify(who.origin, t("already_handled", who.lang))


async def reopen_for_model(ctx: Context, origin: Origin, request_id: str, ref: str | None, key: str, fix: str) -> bool:
    """A job failed for a missing model: the request waits (in the status message) saying which part, with Retry.

    A request with words (a voice note or typed text) gets its card back; a
    photo, restyle, reroll or variations says which model is missing with
    Retry and Cancel; an upscale fails with Retry (a new upscale of the picture).
    """
    record = await ctx.repository.get_request(request_id)
    if record is None:
        return False
    if record.kind is RequestKind.UPSCALE and record.parent_id:
        await _upscale_waits(ctx, origin, record, ref, key, fix)
        return True
    who = await ctx.who(origin)
    if await ctx.repository.transition(
        request_id,
        S.AWAITING_CONFIRMATION,
        from_states=[S.QUEUED, S.RUNNING],
        error_key=key,
        card_expires_at=ctx.clock() + ctx.config.card_ttl,
    ):
        if record.transcript is None:
            card = cards.waiting_for_model(request_id, who.lang, key, fix=fix)
        else:
            card = await card_for(ctx, who, request_id, fix=fix)
        await show_card(ctx, who, request_id, ref, card)
    return True


async def _upscale_waits(ctx: Context, origin: Origin, record: RequestRecord, ref: str | None, key: str, fix: str) -> None:
    """An upscale whose model is missing fails saying which part and what the operator must do, with Retry (the same factor)."""
    who = await ctx.who(origin)
    if not await ctx.repository.transition(record.id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key=key):
        return
    assert record.parent_id is not None
    retry = Button(t("button.retry_missing", who.lang), Action.UPSCALE, record.parent_id, str(record.upscale or ""))
    await ctx.put(who, ref, Reply(error_text(key, who.lang), kind="error", buttons=((retry,),), request_id=record.id, fix=fix))


async def resume(ctx: Context, record: RequestRecord) -> None:
    """After a restart: resend a drawn picture, resume a queued or running job, or fail what cannot be resumed."""
    address = await ctx.repository.request_address(record.id)
    if address is None:
        log.error("request %s has no address to answer; failing it", record.id)
        await ctx.repository.transition(record.id, S.FAILED, error_key="job.lost")
        return
    origin = Origin(
        address.platform, address.platform_chat_id, address.platform_user_id, is_group=address.chat_kind is ChatKind.GROUP
    )
    who = await ctx.who(origin)
    anime = record.image(ImageRole.ANIME)
    if record.state is S.RUNNING and anime is not None and anime.path.exists():
        log.info("resending the picture of request %s after restart", record.id)
        await ctx.jobs.send_picture(origin, who.lang, record, await asyncio.to_thread(anime.path.read_bytes))
        return
    if record.state is S.RUNNING:
        await ctx.repository.transition(record.id, S.QUEUED, from_states=[S.RUNNING])
    spec = None if record.state is S.TRANSCRIBING else await ctx.jobs.spec_for(record, who.policy)
    if spec is None:
        if await ctx.repository.transition(record.id, S.FAILED, error_key="job.lost"):
            await ctx.messenger.send(origin, Reply(t("job.lost", who.lang), kind="error"))
        return
    log.info("resuming request %s after restart", record.id)
    await submit(ctx, who, record.id, spec, None)
