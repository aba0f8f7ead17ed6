"""Which words a request means, and writing a new reading of them onto its card.

A voice note means what was heard (with Whisper's translation and the
language it heard) until the user edits it; an edit, or typed ``/anime``
text, means what was written. "Keep what I said" makes the words as said
the heard ones. The content policy judges the prompt built from those words:
:func:`judge` and :func:`judge_stored` off the event loop (its classifier
scores each description, a few milliseconds of CPU), the same verdict as
:func:`verdict_on` and :func:`verdict_on_stored`, which block.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from db.enums import RequestKind
from db.records import RequestRecord, TranscriptRecord
from db.states import RequestState
from engine.api import Prompt
from engine.language.prompt import build_prompt
from engine.policy.levels import Verdict
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import POLICY_REFUSED
from handlers.conversation.shape_view import shape_size

S = RequestState


@dataclass(frozen=True)
class Reading:
    """The words a request means and the prompt made of them; ``heard``: as the recogniser heard them."""

    text: str
    prompt: Prompt
    heard: bool


def heard(text: str, *, translation: str | None, language: str) -> Prompt:
    """The prompt of words as heard: Whisper's English translation and the language it heard go with them."""
    return build_prompt(text, translation=translation, language=language)


def reading_of(kind: RequestKind, transcript: TranscriptRecord) -> Reading:
    """What a request's words mean now: a voice note's as heard until edited, else the edit (or the typed text)."""
    spoken = kind is RequestKind.VOICE or (kind is RequestKind.REMIX and bool(transcript.words))  # a remix said in a voice note
    if spoken and not transcript.edited_text:
        text = transcript.heard_text
        return Reading(text, heard(text, translation=transcript.translation, language=transcript.language), heard=True)
    text = transcript.edited_text or transcript.heard_text
    return Reading(text, build_prompt(text), heard=False)


def verdict_on(ctx: Context, who: Who, prompt: Prompt) -> Verdict:
    """The content policy's verdict on ``prompt`` in ``who``'s chat (blocking: async code awaits :func:`judge`)."""
    return ctx.config.policy.checker.check_prompt(prompt, who.policy)


def verdict_on_stored(ctx: Context, who: Who, record: RequestRecord) -> Verdict:
    """The verdict on a stored request: its words as the card reads them, else (a reroll of a reroll) its prompt.

    Blocking: async code awaits :func:`judge_stored`.
    """
    if record.transcript is None:
        checker = ctx.config.policy.checker
        return checker.check_text("", who.policy, prompt=record.prompt_positive or "", negated=record.prompt_negative or "")
    return verdict_on(ctx, who, reading_of(record.kind, record.transcript).prompt)


async def judge(ctx: Context, who: Who, prompt: Prompt) -> Verdict:
    """:func:`verdict_on` on a worker thread, off the event loop."""
    return await asyncio.to_thread(verdict_on, ctx, who, prompt)


async def judge_stored(ctx: Context, who: Who, record: RequestRecord) -> Verdict:
    """:func:`verdict_on_stored` on a worker thread, off the event loop."""
    return await asyncio.to_thread(verdict_on_stored, ctx, who, record)


async def _keeps_its_shape(ctx: Context, request_id: str) -> bool:
    """Whether ``request_id`` is drawn at its picture's shape whatever its words say (a remix, drawn over its picture;
    a photo's composition, drawn in the photo's shape)."""
    record = await ctx.repository.get_request(request_id)
    return record is not None and (record.kind is RequestKind.REMIX or bool(record.control))


async def write_reading(ctx: Context, who: Who, request_id: str, prompt: Prompt, *, renew: bool = True) -> bool:
    """Store ``prompt`` as what the open card of ``request_id`` draws; False when the card is no longer open.

    A shape word in the words ("landscape", 竖版) picks the card's shape, except a remix's or a kept composition's (its picture's).
    A prompt the content policy refuses is stored too, marked ``policy.refused``
    (the card says why; Edit can fix it). ``renew``: the card expires a full ``card_ttl`` from now.
    """
    fields = await _reading_fields(ctx, who, request_id, prompt, renew=renew)
    return await ctx.repository.update_in_state(request_id, [S.AWAITING_CONFIRMATION], **fields)


async def open_with_reading(ctx: Context, who: Who, request_id: str, prompt: Prompt) -> RequestRecord | None:
    """A voice note was understood: its card opens drawing ``prompt`` (as :func:`write_reading` stores it).

    The request as stored then (what the card shows), in the same round trip; None when it was no longer
    being transcribed (cancelled meanwhile).
    """
    fields = await _reading_fields(ctx, who, request_id, prompt, renew=True)
    return await ctx.repository.transition_read(request_id, S.AWAITING_CONFIRMATION, from_states=[S.TRANSCRIBING], **fields)


async def _reading_fields(ctx: Context, who: Who, request_id: str, prompt: Prompt, *, renew: bool) -> dict[str, Any]:
    """The columns that make ``prompt`` what the card of ``request_id`` draws (see :func:`write_reading`)."""
    fields: dict[str, Any] = {
        "prompt_positive": prompt.positive,
        "prompt_negative": prompt.negative,
        "source_language": prompt.language,
        "error_key": None if (await judge(ctx, who, prompt)).allowed else POLICY_REFUSED,
    }
    if prompt.aspect is not None and not await _keeps_its_shape(ctx, request_id):  # "landscape", 竖版: the card's shape follows
        fields.update(shape_size(prompt.aspect))
    if renew:
        fields["card_expires_at"] = ctx.clock() + ctx.config.card_ttl
    return fields
