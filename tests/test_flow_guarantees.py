"""What the conversation guarantees under concurrency and failure: caps hold, nothing is stuck, nothing is lost.

Driven through ``Conversation.handle`` with the real ``Repository`` (SQLite and
PostgreSQL) and a :class:`ScriptedEngine` whose jobs end when the test says
so, so the counts below are the conversation's and the database's doing alone.
"""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from db import ImageRole, RequestState
from handlers import cards
from handlers.actions import Action
from handlers.conversation import Conversation
from handlers.events import ButtonPress, Command, PhotoMessage, TextMessage
from handlers.i18n import t
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine, png

S = RequestState


async def card_for(h: Harness, user: str, text: str = "a cat on a roof") -> str:
    """``/anime text`` as ``user``; the id of the card's request."""
    mark = h.messenger.mark()
    await h.command(user, "anime", text)
    return next(c.reply.request_id for c in h.messenger.since(mark, user) if c.reply and c.reply.kind == "card")


def draw(h: Harness, user: str, request_id: str) -> ButtonPress:
    return ButtonPress(h.origin(user), request_id, Action.CONFIRM, "", "")


async def states(h: Harness) -> list[S]:
    records = await h.repository.requests_in_states(list(S))
    return [r.state for r in records]


# --- caps hold under concurrency -----------------------------------------------------------------


async def test_simultaneous_requests_never_pass_the_rate_limit(any_db_url, make_harness):
    h = await make_harness(any_db_url, ScriptedEngine(), requests_per_minute=3)
    await h.command("amy", "start")  # the user exists before the burst
    await asyncio.gather(*(h.command("amy", "anime", f"a cat number {i}") for i in range(10)))
    assert len(await states(h)) == 3
    refusals = [c for c in h.messenger.calls if c.shown == t("rate_limited", "en")]
    assert len(refusals) == 7


async def test_simultaneous_draw_presses_never_pass_the_queue_caps(any_db_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(any_db_url, engine, max_active_per_user=1, max_active_total=2, requests_per_minute=100)
    users = ["ann", "ben", "cat", "dan"]
    cards_of = {user: [await card_for(h, user), await card_for(h, user)] for user in users}
    await asyncio.gather(*(h.send(draw(h, user, rid)) for user in users for rid in cards_of[user]))

    assert len(engine.specs) == 2, "only two pictures may wait or run"
    assert sorted(await states(h)).count(S.QUEUED) == 2
    assert len({s.user_key for s in engine.specs}) == 2, "one per user"
    told = [c for c in h.messenger.calls if c.reply and c.reply.kind == "error"]
    assert len(told) == 6 and all("waiting" in c.shown or "busy" in c.shown for c in told)


# --- nothing stuck ------------------------------------------------------------------------------


async def test_draw_runs_and_delivers_even_when_no_status_message_can_be_posted(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    request_id = await card_for(h, "eve")
    h.messenger.failures["progress"] = 10**6  # every status send/edit fails
    await h.send(draw(h, "eve", request_id))
    assert [s.job_id for s in engine.specs] == [request_id], "the job really runs"
    engine.finish(request_id)
    await h.settle()
    assert (await h.request(request_id)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("eve")] == [request_id]


async def test_a_photo_that_cannot_be_stored_fails_with_a_message_and_frees_the_user(sqlite_url, make_harness, monkeypatch):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, max_active_per_user=1)

    async def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(h.repository, "add_image", disk_full)
        await h.photo("fay", png())
    assert await states(h) == [S.FAILED]
    _, shown = h.messenger.last("error", "fay")
    assert shown.text == t("error.generic", "en")

    await h.photo("fay", png())  # not locked out by a phantom "queued" request
    assert sorted(await states(h)) == sorted([S.FAILED, S.QUEUED]) and len(engine.specs) == 1


async def test_rate_limited_photos_are_never_downloaded(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(), requests_per_minute=1)
    downloads = 0

    async def fetch() -> bytes:
        nonlocal downloads
        downloads += 1
        return png()

    await h.send(PhotoMessage(h.origin("gil"), fetch))
    await h.send(PhotoMessage(h.origin("gil"), fetch))
    assert downloads == 1
    assert h.messenger.calls[-1].shown == t("rate_limited", "en")


async def test_a_decompression_bomb_is_refused_from_its_header(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(), photo_max_pixels=1_000_000)
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")  # 16 Mpx in a few KB
    await h.photo("hal", buffer.getvalue())
    assert await states(h) == [S.FAILED]
    _, shown = h.messenger.last("error", "hal")
    assert "4000" in shown.text


# --- nothing lost -------------------------------------------------------------------------------


async def test_a_failed_upload_is_retried_and_delivered(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    request_id = await card_for(h, "ivy")
    await h.send(draw(h, "ivy", request_id))
    h.messenger.failures["image"] = 2  # two rejected uploads, the third goes through (two retries configured)
    engine.finish(request_id)
    await h.settle()
    assert (await h.request(request_id)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("ivy")] == [request_id]


async def test_a_picture_that_cannot_be_uploaded_is_kept_and_sent_again_on_request(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    request_id = await card_for(h, "joe")
    await h.send(draw(h, "joe", request_id))
    h.messenger.failures["image"] = 3  # every try fails
    engine.finish(request_id)
    await h.settle()

    record = await h.request(request_id)
    assert record.state is S.RUNNING, "not delivered: the platform never took it"
    assert record.image(ImageRole.ANIME) is not None
    ref, notice = h.messenger.last("error", "joe")
    assert notice.text == t("delivery.failed", "en")

    await h.press("joe", button(notice, Action.RESEND), ref)
    assert (await h.request(request_id)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("joe")] == [request_id]


def block_the_image_store(data_dir: Path) -> Path:
    """Make the real image store unwritable, for root too: a file where its ``images`` directory goes."""
    images = data_dir / "images"
    images.parent.mkdir(parents=True, exist_ok=True)
    images.write_text("a file where the image directory should be")
    return images


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_picture_that_cannot_be_stored_says_so_and_is_drawn_again_on_try_again(
    sqlite_url, make_harness, tmp_path, caplog
):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    request_id = await card_for(h, "kim")
    await h.send(draw(h, "kim", request_id))
    status_ref, _ = h.messenger.last("progress", "kim")
    images = block_the_image_store(tmp_path / "data")

    for attempt in (1, 2):  # the second "Try again" comes before the disk is fixed
        caplog.clear()
        with caplog.at_level(logging.INFO):
            engine.finish(request_id)
            await h.settle()
        record = await h.request(request_id)
        assert record.state is S.QUEUED and record.image(ImageRole.ANIME) is None, "not failed: it waits to be tried again"
        shown = h.messenger.messages[status_ref]
        assert (shown.kind, shown.text) == ("error", t("job.not_stored", "en")), "the status says it ended, no live progress"
        assert [b.action for row in shown.buttons for b in row] == [Action.TRY_AGAIN, Action.CANCEL]
        (warning,) = warnings_of(caplog)
        assert warning.exc_info is None and request_id in warning.getMessage() and str(images) in warning.getMessage()
        assert not h.messenger.images("kim")
        await h.press("kim", button(shown, Action.TRY_AGAIN), status_ref)
        assert len(engine.specs) == attempt + 1 and h.messenger.messages[status_ref].kind == "progress"

    images.unlink()  # the operator made room
    engine.finish(request_id)
    await h.settle()
    assert (await h.request(request_id)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("kim")] == [request_id]
    assert h.messenger.messages[status_ref].text == cards.progress_done(request_id, "en", sketch=False).text


async def test_a_picture_that_could_not_be_stored_is_drawn_again_after_a_restart_or_cancelled(
    sqlite_url, make_harness, tmp_path
):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    kept, dropped = await card_for(h, "lou"), await card_for(h, "lou", "a dog on a boat")
    for request_id in (kept, dropped):
        await h.send(draw(h, "lou", request_id))
    images = block_the_image_store(tmp_path / "data")
    for request_id in (kept, dropped):
        engine.finish(request_id)
    await h.settle()
    assert [(await h.request(r)).state for r in (kept, dropped)] == [S.QUEUED, S.QUEUED]

    ref, notice = next((c.ref, c.reply) for c in reversed(h.messenger.calls) if c.reply and c.reply.request_id == dropped)
    await h.press("lou", button(notice, Action.CANCEL), ref)
    assert (await h.request(dropped)).state is S.CANCELLED, "nothing runs it: it is cancelled at once"

    images.unlink()
    h.conversation = Conversation(h.repository, engine, engine, h.messenger, h.config, clock=h.clock, monotonic=h.monotonic)
    await h.conversation.recover()
    assert [s.job_id for s in engine.specs].count(kept) == 2, "resumed at the start"
    engine.finish(kept)
    await h.settle()
    assert (await h.request(kept)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("lou")] == [kept]


async def test_edit_and_draw_pressed_together_draw_the_stored_prompt(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, requests_per_minute=100)
    for round_ in range(4):
        request_id = await card_for(h, "kit", "a cat on a roof")
        await h.press("kit", button(h.messenger.last("card", "kit")[1], Action.EDIT))
        edit = TextMessage(h.origin("kit"), f"a dog in the snow {round_}")
        press = draw(h, "kit", request_id)
        pair = (edit, press) if round_ % 2 else (press, edit)
        await asyncio.gather(*(h.send(event) for event in pair))
        record = await h.request(request_id)
        drawn = [s for s in engine.specs if s.job_id == request_id]
        assert record.state is S.QUEUED and len(drawn) == 1
        assert drawn[0].positive == record.prompt_positive
        engine.finish(request_id)
        await h.settle()
        caption = h.messenger.images("kit")[-1].reply.text
        assert record.transcript.final_text in caption


async def test_reroll_on_an_unconfirmed_card_does_not_draw(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    request_id = await card_for(h, "lee")
    await h.send(ButtonPress(h.origin("lee"), request_id, Action.REROLL))
    assert engine.specs == []
    assert h.messenger.calls[-1].shown == t("not_ready", "en")
    assert (await h.request(request_id)).state is S.AWAITING_CONFIRMATION


async def test_cancel_command_frees_the_slot_at_once(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, max_active_per_user=1)
    first = await card_for(h, "mia")
    await h.send(draw(h, "mia", first))
    await h.send(Command(h.origin("mia"), "cancel"))
    await h.settle()
    assert (await h.request(first)).state is S.CANCELLED
    second = await card_for(h, "mia")
    await h.send(draw(h, "mia", second))
    assert (await h.request(second)).state is S.QUEUED
