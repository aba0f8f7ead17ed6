"""From an open card to a queued job: shown for confirmation, or drawn at once when the chat does not ask."""

from __future__ import annotations

from db.limits import CapReached
from db.records import RequestRecord
from db.states import RequestState
from engine.errors import UserError
from handlers.conversation.card_view import card_for, show_card
from handlers.conversation.context import Context, Who
from handlers.conversation.lifecycle import POLICY_REFUSED, cap_error, job_for, new_seed, submit
from handlers.conversation.readings import judge_stored
from handlers.i18n import t
from handlers.replies import Reply

S = RequestState


async def present(ctx: Context, who: Who, request_id: str, ref: str | None, card: Reply, *, doubtful: bool = False) -> None:
    """Show the confirmation card (in message ``ref`` when given), or go straight on when confirmation is off.

    A ``doubtful`` hearing is shown even with confirmation off: drawing words nobody said helps no one.
    """
    if not who.confirm and not doubtful:
        try:
            await confirm(ctx, who, request_id, ref)
            return
        except UserError:  # over a cap: show the card so it can be confirmed later
            await show_card(ctx, who, request_id, ref, card)
            raise
    await show_card(ctx, who, request_id, ref, card)


async def confirm(ctx: Context, who: Who, request_id: str, ref: str | None, record: RequestRecord | None = None) -> None:
    """Queue an open card's request (the guarded move makes a second press a no-op).

    ``record``: the request as just read under its lock (a button press), else it is read here.
    Once queued, the request either really runs or fails with a message:
    the job is submitted even when no status message can be posted.
    """
    if record is None:
        record = await ctx.repository.get_request(request_id)
        assert record is not None
    if not (await judge_stored(ctx, who, record)).allowed:  # the policy (or the chat's level) says no now: the card says why
        await ctx.repository.update_in_state(request_id, [S.AWAITING_CONFIRMATION], error_key=POLICY_REFUSED)
        await show_card(ctx, who, request_id, ref or ctx.cards.get(request_id), await card_for(ctx, who, request_id))
        return
    # The seed is fixed now, so a job resumed after a restart draws the same picture.
    seed = record.seed if record.seed is not None else new_seed()
    try:
        # One transaction: the move (caps checked), the seed and the final text; what is stored now gets drawn.
        queued = await ctx.repository.queue(request_id, seed=seed, caps=ctx.config.caps)
    except CapReached as hit:
        raise cap_error(hit) from None
    if queued is None:
        await ctx.messenger.notify(who.origin, t("already_handled", who.lang))
        return
    ctx.audio.pop(request_id, None)
    spec = await job_for(ctx, who, request_id, ref, queued)
    if spec is None:
        return
    card = ctx.cards.pop(request_id, None)
    await submit(ctx, who, request_id, spec, ref or card)
