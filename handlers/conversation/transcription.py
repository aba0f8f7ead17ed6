"""Listening to a voice note: the transcript is stored and its card opens (or waits for a missing speech model)."""

from __future__ import annotations

import logging

from db.states import RequestState
from engine.errors import ModelUnavailableError
from engine.missing_models import tell_operator, unavailable_key
from handlers import cards
from handlers.conversation.card_view import card_for, show_card
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import fail
from handlers.conversation.queueing import present
from handlers.conversation.readings import heard, open_with_reading
from handlers.conversation.voice import speak_card
from handlers.i18n import reader_script

log = logging.getLogger(__name__)

S = RequestState


async def transcribe(ctx: Context, who: Who, request_id: str, ref: str, audio: bytes, language: str | None) -> None:
    """Transcribe ``audio`` (in ``language`` when the user said which) in the script ``who`` reads, and offer the card."""
    script = reader_script(who.language_setting, who.origin.locale, spoken=language)
    try:
        transcript = await ctx.transcriber.transcribe(audio, language=language, script=script)
        prompt = heard(transcript.text, translation=transcript.translation, language=transcript.language)
        await ctx.repository.save_transcript(
            request_id,
            heard_text=transcript.text,
            language=transcript.language,
            language_probability=transcript.language_probability,
            translation=transcript.translation,
            words=transcript.words,
        )
    except ModelUnavailableError as error:
        await wait_for_model(ctx, who, request_id, ref, error, audio)
        return
    except Exception as error:
        await fail(ctx, who, request_id, ref, error, from_states=[S.TRANSCRIBING])
        return
    if stored := await open_with_reading(ctx, who, request_id, prompt):  # understood: the card is open from now on
        doubtful = cards.is_doubtful(transcript.language, transcript.language_probability)
        await present(ctx, who, request_id, ref, await card_for(ctx, who, request_id, stored=stored), doubtful=doubtful)
        await speak_card(ctx, who, request_id)  # after the card, never before it


async def wait_for_model(ctx: Context, who: Who, request_id: str, ref: str, error: ModelUnavailableError, audio: bytes) -> None:
    """The speech model is missing: the voice note waits, its card saying so with Retry, instead of failing.

    Its recording is kept on disk too: the operator's fix (``WHISPER_MODEL``) takes a restart, and Retry after it
    still listens to it.
    """
    tell_operator(error)
    key = unavailable_key(error)
    try:
        await ctx.repository.keep_waiting_audio(request_id, audio)
    except OSError:
        log.warning("request %s: could not keep its voice note on disk; a restart loses it", request_id, exc_info=True)
    if await ctx.repository.transition(
        request_id, S.AWAITING_CONFIRMATION, from_states=[S.TRANSCRIBING], error_key=key, card_expires_at=ctx.clock() + ctx.config.card_ttl
    ):
        await show_card(ctx, who, request_id, ref, cards.waiting_for_model(request_id, who.lang, key, fix=error.fix))
