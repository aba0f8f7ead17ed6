"""A request's life outside its card: created within the caps, handed to the job queue, or failed with a reason."""

from __future__ import annotations

import logging
import secrets

from db.limits import Cap, CapReached
from db.records import RequestRecord
from db.states import RequestState
from engine.api import JobSpec
from engine.errors import QueueFullError, UserError, UserQueueFullError
from engine.policy.levels import Verdict
from handlers import cards
from handlers.conversation.context import Context, Who
from handlers.i18n import error_text
from handlers.replies import Reply

log = logging.getLogger(__name__)

S = RequestState

#: ``error_key`` of a request the content policy refused (failed at once, or a card showing the refusal).
POLICY_REFUSED = "policy.refused"


class RateLimitedError(UserError):
    """Too many new requests in the last minute."""

    key = "rate_limited"


class PictureGoneError(UserError):
    """What a request needs (its base image, its prompt) is no longer stored."""

    key = "history.gone"


def cap_error(hit: CapReached) -> UserError:
    """What to tell the user about a cap the database refused."""
    match hit.cap:
        case Cap.PER_MINUTE:
            return RateLimitedError()
        case Cap.ACTIVE_PER_USER:
            return UserQueueFullError(limit=hit.limit)
        case _:
            return QueueFullError(limit=hit.limit)


def new_seed() -> int:
    """A random Stable Diffusion seed (32 bits: fits every database and is easy to read out)."""
    return secrets.randbelow(2**32)


def drawn_like(parent: RequestRecord) -> dict[str, object]:
    """The fields a request derived from ``parent`` draws with as it did: its words (prompt, negative, language) and shape."""
    return {
        "prompt_positive": parent.prompt_positive,
        "prompt_negative": parent.prompt_negative,
        "source_language": parent.source_language,
        "width": parent.width,
        "height": parent.height,
    }


async def create(ctx: Context, who: Who, **fields: object) -> str:
    """A new request of ``who``, created only while their caps leave room (checked atomically)."""
    try:
        return await ctx.repository.create_request(
            user_id=who.user_id, chat_id=who.chat_id, caps=ctx.config.caps, **fields  # type: ignore[arg-type]  # the callers pass create_request keywords
        )
    except CapReached as hit:
        raise cap_error(hit) from None


async def fail(ctx: Context, who: Who, request_id: str, ref: str | None, error: Exception, *, from_states: list[S]) -> None:
    """A request that cannot go on: mark it failed and tell the user why (editing ``ref`` when there is one)."""
    if isinstance(error, UserError):
        key, params = error.key, error.params
        log.info("request %s: %s", request_id, key)
    else:
        key, params = "error.generic", {}
        log.error("request %s failed", request_id, exc_info=error)
    ctx.audio.pop(request_id, None)
    await ctx.repository.transition(request_id, S.FAILED, from_states=from_states, error_key=key)
    reply = Reply(error_text(key, who.lang, params), kind="error")
    try:
        if ref is None:
            raise LookupError("no status message")
        await ctx.messenger.edit(who.origin, ref, reply)
    except Exception:
        await ctx.messenger.send(who.origin, reply)


async def refuse(ctx: Context, who: Who, request_id: str, ref: str | None, verdict: Verdict, *, from_states: list[S]) -> None:
    """The content policy refuses ``request_id`` outright: it fails as ``policy.refused`` and the user is told why."""
    log.info("request %s refused by the %s content policy: %s", request_id, verdict.level, "; ".join(verdict.reasons))
    await ctx.repository.transition(request_id, S.FAILED, from_states=from_states, error_key=POLICY_REFUSED)
    await ctx.put(who, ref, cards.refused(request_id, who.lang, verdict))


async def job_for(ctx: Context, who: Who, request_id: str, ref: str | None, record: RequestRecord | None = None) -> JobSpec | None:
    """The job of a queued request (``record``: as just read, else read here); when what it needs is gone
    (or cannot be read) the request fails, saying so in ``ref``, and there is none."""
    try:
        if record is None:
            record = await ctx.repository.get_request(request_id)
            assert record is not None
        spec = await ctx.jobs.spec_for(record, who.policy)
        if spec is None:
            raise PictureGoneError()
    except Exception as error:
        await fail(ctx, who, request_id, ref, error, from_states=[S.QUEUED])
        return None
    return spec


async def submit(ctx: Context, who: Who, request_id: str, spec: JobSpec, ref: str | None) -> None:
    """Hand a queued request's job over to be drawn, its status shown in message ``ref`` (else a new one)."""
    status = await ctx.put(who, ref, cards.progress(request_id, who.lang, "queued"))
    await ctx.jobs.submit(who.origin, who.lang, request_id, spec, status)
