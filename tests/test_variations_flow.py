"""🔀 Variations and V1..V4 through the conversation: one request, one job of four seeds, a grid, keeping one.

The real conversation, repository (SQLite; the main flow on PostgreSQL too)
and local engine on the tiny models (64x64), except where a scripted engine
lets many presses race for the caps.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from db import ImageRole, RequestKind, RequestState
from db.enums import variation_roles
from engine.image import png_info
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine

S = RequestState
TEXT = "a girl with blue hair under cherry blossoms at night"


def size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


async def delivered_picture(h: Harness, user: str, text: str = TEXT):
    """``/anime text`` as ``user``, Draw it, and the picture that came."""
    await h.command(user, "anime", text)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    await h.settle()
    return h.messenger.images(user)[-1].reply


async def test_variations_are_one_job_shown_as_a_grid_and_v2_is_kept_with_its_own_actions(
    any_db_url, local_engine, make_harness, flow_text_to_image
):
    h = await make_harness(any_db_url, local_engine)
    picture = await delivered_picture(h, "alice")
    assert [b.label for b in picture.buttons[-1]] == [t("button.variations", "en"), t("button.upscale", "en"), t("button.remix", "en")]
    runs = flow_text_to_image.calls

    mark = h.messenger.mark()
    await h.press("alice", button(picture, Action.VARIATIONS))
    await h.settle()
    assert flow_text_to_image.calls == runs + 1 and flow_text_to_image.batches[-1] == 4, "four pictures in one diffusion call"
    shown = [c.reply.text for c in h.messenger.since(mark, "alice") if c.reply and c.reply.kind == "progress"]
    assert t("queued.waiting", "en") in shown and any("%" in text for text in shown), "the usual progress"
    grid = h.messenger.images("alice")[-1].reply
    record = await h.request(grid.request_id)
    assert (record.kind, record.parent_id, record.state) == (RequestKind.VARIATIONS, picture.request_id, S.DELIVERED)
    assert size(grid.image_png) == (128, 128), "a 2x2 grid of 64x64 pictures"
    assert [b.label for b in grid.buttons[0]] == ["V1", "V2", "V3", "V4"]
    seeds = [record.seed + n for n in range(4)]
    assert f"seeds {seeds[0]}–{seeds[3]}" in grid.text and "Keep one: V1 top left" in grid.text
    assert len(grid.tiles) == 4 and len(set(grid.tiles)) == 4
    for number, tile in enumerate(grid.tiles, start=1):
        anime, base = (record.image(role) for role in variation_roles(number))
        assert anime.path.read_bytes() == tile and anime.seed == seeds[number - 1] and base.seed == seeds[number - 1]
        chunk = png_info.read(tile, ours_only=True)
        assert chunk is not None and chunk.seed == seeds[number - 1] and chunk.transcript == TEXT

    # V2: the second picture as one of its own, with Restyle, Reroll, Original and Variations.
    await h.press("alice", button(grid, Action.KEEP, "2"))
    kept = h.messenger.images("alice")[-1].reply
    assert kept.image_png == grid.tiles[1] and f"seed {seeds[1]}" in kept.text
    assert {b.action for row in kept.buttons for b in row} == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
    child = await h.request(kept.request_id)
    assert (child.kind, child.parent_id, child.state, child.seed) == (RequestKind.KEPT, record.id, S.DELIVERED, seeds[1])
    assert child.image(ImageRole.BASE).sha256 == record.image(ImageRole.V2_BASE).sha256
    assert flow_text_to_image.calls == runs + 1, "keeping draws nothing"

    await h.press("alice", button(kept, Action.BASE))
    assert h.messenger.images("alice")[-1].reply.image_png == record.image(ImageRole.V2_BASE).path.read_bytes()
    await h.press("alice", button(kept, Action.RESTYLE))
    await h.press("alice", button(h.messenger.calls[-1].reply, Action.RESTYLE_AS, "paprika"))
    await h.settle()
    restyled = await h.request(h.messenger.images("alice")[-1].reply.request_id)
    assert (restyled.kind, restyled.parent_id, restyled.state) == (RequestKind.RESTYLE, child.id, S.DELIVERED)

    # /history: the grid and the kept picture, each described by the words; the grid comes back with its buttons.
    await h.command("alice", "history")
    listing = h.messenger.calls[-1].reply
    assert listing.text.count(TEXT[:20]) == 4
    resend = next(b for row in listing.buttons for b in row if b.request_id == record.id)
    await h.press("alice", resend)
    again = h.messenger.images("alice")[-1].reply
    assert again.image_png == grid.image_png and again.tiles == grid.tiles and again.buttons == grid.buttons


async def test_keep_refuses_a_number_that_is_not_a_variation(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("bob", "anime", TEXT)
    ref, card = h.messenger.last("card", "bob")
    await h.press("bob", button(card, Action.CONFIRM), ref)
    engine.finish(engine.specs[-1].job_id)
    await h.settle()
    picture = h.messenger.images("bob")[-1].reply
    await h.press("bob", button(picture, Action.VARIATIONS))
    spec = engine.specs[-1]
    assert len(spec.seeds) == 4 and spec.transcript == TEXT and spec.language == "en"
    engine.finish(spec.job_id)
    await h.settle()
    grid = h.messenger.images("bob")[-1].reply
    for value in ("0", "5", "x"):
        await h.press("bob", Button("V", Action.KEEP, grid.request_id, value))
        assert h.messenger.calls[-1].shown == t("history.gone", "en")
    await h.press("bob", Button("V1", Action.KEEP, picture.request_id, "1"))
    assert h.messenger.calls[-1].shown == t("history.gone", "en"), "a picture that is no grid has nothing to keep"


async def test_simultaneous_variations_presses_never_pass_the_caps(any_db_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(any_db_url, engine, max_active_per_user=1, max_active_total=2, requests_per_minute=100)
    users = ["ann", "ben", "cat"]
    pictures = {}
    for user in users:
        await h.command(user, "anime", f"{TEXT} for {user}")
        ref, card = h.messenger.last("card", user)
        await h.press(user, button(card, Action.CONFIRM), ref)
        engine.finish(engine.specs[-1].job_id)
        await h.settle()
        pictures[user] = h.messenger.images(user)[-1].reply
    before = len(engine.specs)
    await asyncio.gather(*(h.press(user, button(pictures[user], Action.VARIATIONS)) for user in users for _ in range(4)))

    jobs = engine.specs[before:]
    assert len(jobs) == 2 and all(len(spec.seeds) == 4 for spec in jobs), "a press is one request: two may wait at once"
    assert len({spec.user_key for spec in jobs}) == 2, "one per user"
    records = await h.repository.requests_in_states(list(S))
    assert sorted(r.state for r in records if r.kind is RequestKind.VARIATIONS) == [S.QUEUED, S.QUEUED]
    told = [c for c in h.messenger.calls if c.reply and c.reply.kind == "error"]
    assert len(told) == 10 and all("waiting" in c.shown or "busy" in c.shown for c in told)
