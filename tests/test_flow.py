"""The conversation end to end: neutral events in, recorded replies out.

Everything goes through ``Conversation.handle`` with the real ``Repository``
(SQLite; the main flow also on PostgreSQL) and the real ``LocalJobQueue`` on the
tiny models (Whisper base, tiny Stable Diffusion at 64x64, AnimeGANv2 test
checkpoints). Fixtures live in ``tests/support/conversation.py``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from PIL import Image

from db import ImageRole, RequestKind, RequestState
from engine.jobs.local import LocalJobQueue
from engine.speech.transcriber import WhisperTranscriber
from handlers import cards
from handlers.actions import Action
from handlers.conversation.routes import COMMAND_NAMES
from handlers.events import ButtonPress, Command
from handlers.i18n import t
from tests.support.conversation import STYLES, Harness, button, origin
from tests.support.scripted_engine import SpeechAndJobs

S = RequestState
PNG = b"\x89PNG\r\n\x1a\n"
TEXT = "a girl with blue hair under cherry blossoms at night"


def photo_bytes(size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll ``check`` until it is true (for states reached on the engine's thread)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def in_state(h: Harness, request_id: str, state: RequestState) -> None:
    async def check() -> bool:
        return (await h.request(request_id)).state is state

    await until(check)


async def wait_running(text_to_image) -> None:
    assert await asyncio.to_thread(text_to_image.running.wait, 60), "the held job never started"


def percents(h: Harness, ref: str) -> list[int]:
    """The progress percentages shown on the status message ``ref``, in order."""
    shown = []
    for call in h.messenger.calls:
        if call.op == "edit" and call.ref == ref and call.reply and call.reply.kind == "progress" and "%" in call.reply.text:
            shown.append(int(call.reply.text.rsplit(" ", 1)[1].rstrip("%")))
    return shown


async def anime_without_card(h: Harness, user: str, text: str = TEXT) -> str:
    """Send ``/anime text`` as ``user`` whose confirmation is off; returns the new request id."""
    mark = h.messenger.mark()
    await h.command(user, "anime", text)
    status = next(c for c in h.messenger.since(mark, user) if c.reply and c.reply.request_id)
    return status.reply.request_id


async def turn_confirmation_off(h: Harness, user: str) -> None:
    await h.command(user, "settings")
    await h.press(user, button(h.messenger.calls[-1].reply, Action.TOGGLE_CONFIRM))


# --- the main flow ----------------------------------------------------------------------------


async def test_voice_to_picture_and_follow_ups(any_db_url, local_engine, make_harness, english_voice_notes, flow_text_to_image):
    h = await make_harness(any_db_url, local_engine)
    await h.voice("alice", english_voice_notes["ogg"].path.read_bytes())

    first = h.messenger.calls[0]
    assert (first.op, first.reply.text) == ("send", t("transcribing", "en"))
    ref, card = h.messenger.last("card")
    assert ref == first.ref, "the 'listening' message becomes the card"
    heard_line = card.text.splitlines()[1]
    assert "girl with blue hair" in heard_line.lower(), "English words keep their spaces"
    assert "English" in card.text
    for label in ("Who/what: girl", "Style: Portrait (face paint v2)", "Shall I draw it?"):
        assert label in card.text
    assert "anime style" not in card.text and "face_paint_512_v2" not in card.text, "no prompt tags, no style ids"
    request_id = card.request_id
    record = await h.request(request_id)
    actions = {Action.CONFIRM, Action.EDIT, Action.RETRY, Action.STYLE, Action.DETAILS, Action.CANCEL, Action.ASPECT}
    kept = {Action.KEEP_SAID} if record.transcript.corrections else set()  # Whisper base: "at the height" -> "hat"
    assert {b.action for row in card.buttons for b in row} == actions | kept
    assert record.state is S.AWAITING_CONFIRMATION and record.kind is RequestKind.VOICE
    assert record.transcript.language == "en" and "blue hair" in record.transcript.heard_text.lower()

    # Edit -> corrected text -> a new card.
    await h.press("alice", button(card, Action.EDIT), ref)
    ask = h.messenger.calls[-1].reply
    assert ask.kind == "edit_prompt" and ask.prefill == record.transcript.heard_text
    await h.text("alice", "a boy with green hair riding a bicycle in the rain")
    ref2, card2 = h.messenger.last("card")
    assert ref2 != ref and card2.request_id == request_id
    assert "You asked for:" in card2.text and "green hair" in card2.text
    old_card = h.messenger.messages[ref]
    assert old_card.buttons == () and old_card.text == t("card.superseded", "en"), "the replaced card cannot be pressed"

    # Details shows the English prompt on the same card; pressing again hides it.
    await h.press("alice", button(card2, Action.DETAILS), ref2)
    assert "Prompt for the model (English): a boy with green hair" in h.messenger.messages[ref2].text
    await h.press("alice", button(h.messenger.messages[ref2], Action.DETAILS), ref2)
    card2 = h.messenger.messages[ref2]
    assert "Prompt for the model" not in card2.text
    record = await h.request(request_id)
    assert record.transcript.edited_text == "a boy with green hair riding a bicycle in the rain"
    assert "green hair" in record.prompt_positive

    # Confirm -> queue position -> progress -> picture.
    runs = flow_text_to_image.calls
    await h.press("alice", button(card2, Action.CONFIRM), ref2)
    await h.settle()
    assert flow_text_to_image.calls == runs + 1
    status = [c.reply.text for c in h.messenger.calls if c.op == "edit" and c.ref == ref2 and c.reply.kind == "progress"]
    assert status[:2] == [t("queued.waiting", "en"), t("queued", "en", position=1)]
    shown = percents(h, ref2)
    assert shown[0] == 0 and len(shown) >= 3 and shown == sorted(shown)
    assert t("styling", "en") in status and t("progress.sending", "en") in status
    assert h.messenger.messages[ref2].text == t("progress.done_sketch", "en"), "the status ends, it does not stay at a stage"
    assert h.messenger.messages[ref2].buttons == (), "no Cancel button left once delivered"
    (picture,) = h.messenger.images("alice")
    image = picture.reply
    assert image.image_png.startswith(PNG) and Image.open(io.BytesIO(image.image_png)).size == (64, 64)
    record = await h.request(request_id)
    assert record.state is S.DELIVERED and record.seed is not None
    assert f"seed {record.seed}" in image.text and "Portrait (face paint v2)" in image.text
    assert "“a boy with green hair riding a bicycle in the rain”" in image.text
    assert record.transcript.final_text == record.transcript.edited_text
    assert record.image(ImageRole.ANIME).path.read_bytes() == image.image_png
    assert record.image(ImageRole.BASE) is not None

    # /history lists it; re-send sends the same picture.
    await h.command("alice", "history")
    listing = h.messenger.calls[-1].reply
    assert "#1 “a boy with green hair riding a bicycle…” · Portrait (face paint v2) · 2025-01-01" in listing.text
    await h.press("alice", button(listing, Action.RESEND))
    assert h.messenger.images("alice")[-1].reply.image_png == image.image_png

    # Restyle: another style on the same base picture, no diffusion.
    await h.press("alice", button(image, Action.RESTYLE))
    picker = h.messenger.calls[-1].reply
    await h.press("alice", button(picker, Action.RESTYLE_AS, "paprika"))
    await h.settle()
    assert flow_text_to_image.calls == runs + 1, "restyle must not run diffusion again"
    restyled = h.messenger.images("alice")[-1].reply
    assert "Paprika" in restyled.text and restyled.image_png != image.image_png
    assert restyled.text.splitlines()[0] == image.text.splitlines()[0], "a restyle quotes the words it draws"
    child = await h.request(restyled.request_id)
    assert (child.kind, child.parent_id, child.state, child.seed) == (RequestKind.RESTYLE, request_id, S.DELIVERED, record.seed)
    assert child.image(ImageRole.BASE).sha256 == record.image(ImageRole.BASE).sha256

    # Reroll: same prompt, new seed, another picture.
    await h.press("alice", button(image, Action.REROLL))
    await h.settle()
    assert flow_text_to_image.calls == runs + 2
    rerolled = h.messenger.images("alice")[-1].reply
    again = await h.request(rerolled.request_id)
    assert again.kind is RequestKind.REROLL and again.state is S.DELIVERED
    assert again.seed != record.seed and again.prompt_positive == record.prompt_positive
    assert rerolled.image_png != image.image_png
    assert rerolled.text.splitlines()[0] == image.text.splitlines()[0], "so does a reroll"

    await h.command("alice", "history")
    assert h.messenger.calls[-1].reply.text.count("\n#") == 3


async def test_mandarin_voice_with_chinese_interface(sqlite_url, local_engine, make_harness, zh_voice_notes):
    h = await make_harness(sqlite_url, local_engine)
    h.locales["li"] = "zh-CN"
    clip = next(c for c in zh_voice_notes if c.path.stem == "blue_hair_girl")
    await h.voice("li", clip.path.read_bytes())
    assert h.messenger.calls[0].reply.text == t("transcribing", "zh-Hans")
    ref, card = h.messenger.last("card")
    assert "我听到的是（普通话" in card.text and "要开始画吗？" in card.text
    # What we understood is shown in Chinese, with Chinese punctuation.
    assert "• 主体：女孩" in card.text and "• 外观：蓝头发" in card.text and "• 场景：樱花树" in card.text and "• 风格：人像（face paint v2）" in card.text
    assert "girl" not in card.text and ": " not in card.text
    assert [b.label for b in card.buttons[0]] == ["✅ 开始画", "✏️ 修改"]
    record = await h.request(card.request_id)
    assert record.transcript.language == "zh" and record.source_language == "zh"
    # Whisper base's translation of this clip is wrong and varies; the lexicon reading of what was heard carries the prompt.
    assert record.prompt_positive.startswith("a girl with blue hair") and "cherry blossom" in record.prompt_positive
    assert any("\u4e00" <= ch <= "\u9fff" for ch in record.transcript.heard_text)
    await h.press("li", button(card, Action.CONFIRM), ref)
    await h.settle()
    (picture,) = h.messenger.images("li")
    assert "\n风格：人像（face paint v2） · 种子" in picture.reply.text
    assert (await h.request(card.request_id)).state is S.DELIVERED


async def test_retry_in_another_language_and_style_on_the_card(sqlite_url, local_engine, make_harness, zh_voice_notes):
    h = await make_harness(sqlite_url, local_engine)
    clip = next(c for c in zh_voice_notes if c.path.stem == "glasses_boy")
    await h.voice("mei", clip.path.read_bytes())
    ref, card = h.messenger.last("card")
    assert "(Mandarin" in card.text

    await h.press("mei", button(card, Action.RETRY), ref)
    picker = h.messenger.calls[-1].reply
    assert [b.value for row in picker.buttons for b in row] == list(cards.RETRY_LANGUAGES)
    await h.press("mei", next(b for row in picker.buttons for b in row if b.value == "yue"))
    _, again = h.messenger.last("card")
    assert again.request_id == card.request_id and "(Cantonese" in again.text
    record = await h.request(card.request_id)
    assert record.state is S.AWAITING_CONFIRMATION and record.transcript.language == "yue"

    await h.press("mei", button(again, Action.STYLE))
    styles = h.messenger.calls[-1].reply
    assert [b.label for row in styles.buttons for b in row] == ["✅ Portrait (face paint v2)", "Paprika"], "display names"
    card_ref = h.messenger.last("card", "mei")[0]
    await h.press("mei", next(b for row in styles.buttons for b in row if b.value == "paprika"))
    assert h.messenger.calls[-1].shown == t("style.set", "en", style="Paprika")
    assert "• Style: Paprika" in h.messenger.messages[card_ref].text, "the card itself shows the new style"
    await h.press("mei", button(again, Action.CONFIRM))
    await h.settle()
    (picture,) = h.messenger.images("mei")
    assert "Style: Paprika · seed" in picture.reply.text


# --- other ways in ------------------------------------------------------------------------------


async def test_anime_text_without_confirmation_goes_straight_to_the_queue(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await h.command("bob", "settings")
    settings = h.messenger.calls[-1].reply
    assert "Confirm before drawing: on" in settings.text
    await h.press("bob", button(settings, Action.TOGGLE_CONFIRM))
    assert h.messenger.calls[-2].shown == t("settings.saved", "en")
    assert "Confirm before drawing: off" in h.messenger.calls[-1].reply.text

    request_id = await anime_without_card(h, "bob")
    await h.settle()
    assert not any(c.reply and c.reply.kind == "card" for c in h.messenger.calls), "no confirmation card"
    (picture,) = h.messenger.images("bob")
    record = await h.request(request_id)
    assert record.kind is RequestKind.TEXT and record.state is S.DELIVERED
    assert record.transcript.final_text == TEXT and "blue hair" in picture.reply.text


async def test_a_group_s_language_applies_to_members_who_chose_none(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    h.messenger.admins.add("bob")
    bob_in_group, alice_in_group = origin("bob", chat="g1", group=True), origin("alice", chat="g1", group=True)
    await h.send(Command(bob_in_group, "settings"))
    await h.send(ButtonPress(bob_in_group, cards.NO_REQUEST, Action.CHAT_LANGUAGE, "zh-Hans"))
    await h.send(Command(alice_in_group, "help"))
    assert h.messenger.calls[-1].shown == cards.help_text("zh-Hans", group=True, commands=COMMAND_NAMES).text, "the group's language applies to every member"
    await h.command("alice", "help")
    assert h.messenger.calls[-1].shown == cards.help_text("en", group=False, commands=COMMAND_NAMES).text, "alice's own chat keeps her language"


async def test_anime_command_style_option(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await h.send(Command(h.origin("cai"), "anime", "a cat on the beach", style="paprika"))
    ref, card = h.messenger.last("card", "cai")
    assert "Style: Paprika" in card.text
    await h.press("cai", button(card, Action.CONFIRM), ref)
    await h.settle()
    (picture,) = h.messenger.images("cai")
    assert "Paprika" in picture.reply.text
    assert (await h.request(card.request_id)).style == "paprika"

    await h.send(Command(h.origin("cai"), "anime", "a cat", style="no-such-style"))
    assert "no-such-style" in h.messenger.calls[-1].shown and "paprika" in h.messenger.calls[-1].shown


async def test_photo_is_restyled_directly_with_throttled_progress(sqlite_url, local_engine, make_harness, flow_text_to_image):
    h = await make_harness(sqlite_url, local_engine, progress_interval=3600.0)
    runs = flow_text_to_image.calls
    await h.photo("carol", photo_bytes())
    await h.settle()
    assert flow_text_to_image.calls == runs
    (picture,) = h.messenger.images("carol")
    assert picture.reply.text == "Style: Portrait (face paint v2)"
    assert Image.open(io.BytesIO(picture.reply.image_png)).size == (48, 40)
    assert {b.action for b in picture.reply.buttons[0]} == {Action.RESTYLE, Action.BASE}
    record = await h.request(picture.reply.request_id)
    assert record.kind is RequestKind.PHOTO and record.state is S.DELIVERED and record.seed is None
    # Throttled: queue position and start are always shown, the steps in between are not (clock stands still).
    status_ref = h.messenger.calls[0].ref
    edits = [c.reply.text for c in h.messenger.calls if c.op == "edit" and c.ref == status_ref]
    assert edits == [t("queued", "en", position=1), t("styling", "en"), t("progress.sending", "en"), t("progress.done", "en")]
    # The original picture button sends the photo back.
    await h.press("carol", button(picture.reply, Action.BASE))
    assert h.messenger.calls[-1].reply.image_png == record.image(ImageRole.BASE).path.read_bytes()


# --- cancel, expiry, duplicates, strangers ------------------------------------------------------


async def test_cancel_while_queued_and_while_running(sqlite_url, local_engine, make_harness, flow_text_to_image):
    h = await make_harness(sqlite_url, local_engine)
    await turn_confirmation_off(h, "dave")
    flow_text_to_image.hold()
    running = await anime_without_card(h, "dave", "a red fox in the snow")
    await wait_running(flow_text_to_image)
    await in_state(h, running, S.RUNNING)
    queued = await anime_without_card(h, "dave", "a blue whale in the sky")
    queued_ref, queued_status = h.messenger.last("progress", "dave")
    assert queued_status.request_id == queued

    async def shows_position() -> bool:
        return h.messenger.messages[queued_ref].text == t("queued", "en", position=1)

    await until(shows_position)

    await h.press("dave", button(queued_status, Action.CANCEL), queued_ref)
    await in_state(h, queued, S.CANCELLED)
    await h.command("dave", "cancel")  # the newest open request is now the running one
    flow_text_to_image.release()
    await h.settle()

    for request_id in (running, queued):
        record = await h.request(request_id)
        assert record.state is S.CANCELLED and not record.images
    assert h.messenger.images("dave") == []
    told = [c for c in h.messenger.calls if c.op == "edit" and c.reply.text == t("cancelled", "en")]
    assert len(told) == 2
    await h.command("dave", "cancel")
    assert h.messenger.calls[-1].reply.text == t("cancel.nothing", "en")


async def test_expired_card(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await h.command("erin", "anime", TEXT)
    ref, card = h.messenger.last("card")
    h.clock.advance(minutes=11)
    await h.press("erin", button(card, Action.CONFIRM), ref)
    assert h.messenger.calls[-1].shown == t("card.expired", "en")
    assert (await h.request(card.request_id)).state is S.EXPIRED
    await h.press("erin", button(card, Action.EDIT), ref)
    assert h.messenger.calls[-1].shown == t("card.expired", "en")


async def test_duplicate_presses_make_one_job(sqlite_url, local_engine, make_harness, flow_text_to_image):
    h = await make_harness(sqlite_url, local_engine)
    runs = flow_text_to_image.calls
    await h.command("frank", "anime", TEXT)
    ref, card = h.messenger.last("card")
    await h.press("frank", button(card, Action.CONFIRM), ref)
    await h.press("frank", button(card, Action.CONFIRM), ref)
    assert h.messenger.calls[-1].shown == t("already_handled", "en")

    await h.command("frank", "anime", "a cat sleeping on a sofa")
    ref2, card2 = h.messenger.last("card")
    await asyncio.gather(*(h.press("frank", button(card2, Action.CONFIRM), ref2) for _ in range(3)))
    await h.settle()
    assert flow_text_to_image.calls == runs + 2
    assert sorted(c.reply.request_id for c in h.messenger.images("frank")) == sorted([card.request_id, card2.request_id])
    assert sum(c.shown == t("already_handled", "en") for c in h.messenger.calls) == 3


async def test_someone_else_cannot_press_my_buttons(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await h.command("gina", "anime", TEXT)
    ref, card = h.messenger.last("card")
    for action in (Action.CONFIRM, Action.CANCEL, Action.EDIT):
        await h.press("mallory", button(card, action), ref)
        assert h.messenger.calls[-1].shown == t("not_yours", "en")
    assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION


# --- limits -------------------------------------------------------------------------------------


async def test_limits_are_explained(sqlite_url, local_engine, make_harness, flow_text_to_image):
    h = await make_harness(sqlite_url, local_engine, requests_per_minute=3, max_active_per_user=1, max_active_total=1)
    await h.command("ivy", "anime", "a picture for ivy")  # a card made while the server is idle
    ref, card = h.messenger.last("card", "ivy")
    await turn_confirmation_off(h, "hank")
    flow_text_to_image.hold()
    await anime_without_card(h, "hank")
    await h.command("hank", "anime", "a second picture")
    assert h.messenger.calls[-1].reply.text == t("queue.user_full", "en", limit=1)
    await h.command("ivy", "anime", "another picture for ivy")
    assert h.messenger.calls[-1].reply.text == t("queue.full", "en", limit=1)
    await h.press("ivy", button(card, Action.CONFIRM), ref)
    assert h.messenger.calls[-1].reply.text == t("queue.full", "en", limit=1)
    assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION, "the card can be confirmed later"
    flow_text_to_image.release()
    await h.settle()
    await h.press("ivy", button(card, Action.CONFIRM), ref)
    await h.settle()
    assert len(h.messenger.images("ivy")) == 1
    for text in ("a third picture", "a fourth picture"):  # refused requests were never made: 3 this minute
        await h.command("hank", "anime", text)
        await h.settle()
    await h.command("hank", "anime", "one too many")
    assert h.messenger.calls[-1].reply.text == t("rate_limited", "en")
    await h.settle()
    h.clock.advance(minutes=2)
    await h.command("hank", "anime", "a fifth picture, a minute later")
    assert h.messenger.calls[-1].reply.text != t("rate_limited", "en")
    await h.settle()


# --- restart ------------------------------------------------------------------------------------


async def test_restart_resumes_jobs_and_reports_lost_requests(
    sqlite_url, local_engine, make_harness, flow_text_to_image, recognizer, anime_pipeline
):
    h1 = await make_harness(sqlite_url, local_engine)
    await turn_confirmation_off(h1, "jane")
    flow_text_to_image.hold()
    running = await anime_without_card(h1, "jane", "a castle on a hill")
    await wait_running(flow_text_to_image)
    await in_state(h1, running, S.RUNNING)
    queued = await anime_without_card(h1, "jane", "a dragon over the sea")
    user_id = (await h1.request(running)).user_id
    chat_id = (await h1.request(running)).chat_id
    transcribing = await h1.repository.create_request(user_id=user_id, chat_id=chat_id, kind=RequestKind.VOICE)
    # The process dies: nobody follows the jobs any more, the engine goes away.
    await h1.conversation.close()
    flow_text_to_image.release()
    await local_engine.close()
    assert (await h1.request(running)).state is S.RUNNING and (await h1.request(queued)).state is S.QUEUED
    seeds = {r: (await h1.request(r)).seed for r in (running, queued)}
    assert None not in seeds.values(), "the seed is fixed when the request is queued"

    engine = SpeechAndJobs(WhisperTranscriber(recognizer), LocalJobQueue(anime_pipeline))
    await engine.start()
    try:
        h2 = await make_harness(sqlite_url, engine, clock=h1.clock)
        await h2.conversation.recover()
        await h2.settle()
    finally:
        await engine.close()
    assert sorted(c.reply.request_id for c in h2.messenger.images("jane")) == sorted([running, queued])
    assert (await h2.request(running)).state is S.DELIVERED and (await h2.request(queued)).state is S.DELIVERED
    assert {r: (await h2.request(r)).seed for r in (running, queued)} == seeds, "resumed with the same seeds"
    lost = await h2.request(transcribing)
    assert (lost.state, lost.error_key) == (S.FAILED, "job.lost")
    assert [c.reply.text for c in h2.messenger.calls if c.reply and c.reply.kind == "error"] == [t("job.lost", "en")]


async def test_shutdown_during_an_upload_records_the_picture_as_delivered(sqlite_url, local_engine, make_harness):
    """The platform already has the picture when the bot is stopped: it is marked delivered, not sent again after the restart."""
    h = await make_harness(sqlite_url, local_engine)
    await turn_confirmation_off(h, "max")
    uploading, taken = asyncio.Event(), asyncio.Event()
    send = h.messenger.send

    async def slow_upload(origin, reply):
        if reply.kind == "image":
            uploading.set()
            await taken.wait()  # the platform is still answering when shutdown begins
        return await send(origin, reply)

    h.messenger.send = slow_upload
    request_id = await anime_without_card(h, "max", "a lighthouse at dusk")
    await asyncio.wait_for(uploading.wait(), 120)
    closing = asyncio.create_task(h.conversation.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "shutdown waits for the upload in flight"
    taken.set()
    await asyncio.wait_for(closing, 30)
    assert (await h.request(request_id)).state is S.DELIVERED
    await h.conversation.recover()
    await h.settle()
    assert [c.reply.request_id for c in h.messenger.images("max")] == [request_id], "not sent a second time"


async def test_recovery_goes_on_past_a_user_it_cannot_reach(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    for user in ("kim", "lou"):
        await turn_confirmation_off(h, user)
    await h.conversation.close()  # as if the process had died with both requests queued
    ids = {}
    for user in ("kim", "lou"):
        who = await h.conversation.context.who(h.origin(user))
        ids[user] = await h.repository.create_request(
            user_id=who.user_id, chat_id=who.chat_id, kind=RequestKind.TEXT, state=S.QUEUED,
            style="paprika", seed=1, prompt_positive="a cat, anime style", prompt_negative="lowres",
        )
    h.messenger.unreachable = {"kim"}
    await h.conversation.recover()
    await h.settle()
    assert [c.reply.request_id for c in h.messenger.images()] == [ids["lou"]]
    kim = await h.request(ids["kim"])
    assert kim.state is S.RUNNING and kim.image(ImageRole.ANIME) is not None, "drawn and kept: resent at the next start"

    h.messenger.unreachable = set()
    await h.conversation.recover()
    await h.settle()
    assert [c.reply.request_id for c in h.messenger.images()] == [ids["lou"], ids["kim"]]
    assert (await h.request(ids["kim"])).state is S.DELIVERED


async def test_a_job_error_is_explained_with_its_details(sqlite_url, local_engine, make_harness):
    """The bot offers a style the image engine does not have (registries out of step): the user learns which exist."""
    h = await make_harness(sqlite_url, local_engine, styles=(*STYLES, "hayao"))
    await turn_confirmation_off(h, "ned")
    await h.send(Command(h.origin("ned"), "anime", "a cat", style="hayao"))
    await h.settle()
    _, shown = h.messenger.last("error", "ned")
    assert "hayao" in shown.text and "paprika" in shown.text


async def test_a_failing_progress_update_does_not_fail_the_picture(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await turn_confirmation_off(h, "max")
    h.messenger.failing_progress = True
    request_id = await anime_without_card(h, "max")
    await h.settle()
    assert (await h.request(request_id)).state is S.DELIVERED
    assert [c.reply.request_id for c in h.messenger.images("max")] == [request_id]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "key"), [("garbage", "audio.unsupported"), ("silence", "audio.no_speech")])
async def test_bad_voice_notes_fail_politely(sqlite_url, local_engine, make_harness, bad_audio_files, silence_ogg, kind, key):
    h = await make_harness(sqlite_url, local_engine)
    audio = silence_ogg.read_bytes() if kind == "silence" else bad_audio_files[kind].read_bytes()
    await h.voice("kim", audio)
    (sent,) = [c for c in h.messenger.calls if c.op == "send"]
    assert h.messenger.messages[sent.ref].kind == "error"
    assert h.messenger.messages[sent.ref].text in (t(key, "en"), t("audio.unreadable", "en"))
    (record,) = await h.repository.requests_in_states(list(S))
    assert record.state is S.FAILED and record.error_key in (key, "audio.unreadable")


async def test_bad_text_and_photo(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine, max_text_chars=100)
    await h.command("leo", "anime", "x" * 150)
    assert h.messenger.calls[-1].reply.text == t("text.too_long", "en", length=150, limit=100)
    await h.command("leo", "anime", "")
    assert h.messenger.calls[-1].reply.text == t("anime.usage", "en")
    await h.photo("leo", b"definitely not a picture")
    assert h.messenger.calls[-1].reply.text == t("image.unreadable", "en")
    # A photo is admitted (and counted) before it is downloaded and decoded: kept as failed.
    (photo,) = await h.repository.requests_in_states(list(S))
    assert photo.state is S.FAILED and photo.error_key == "image.unreadable"

    # A too-long edit keeps the edit pending: the next message is the edit.
    await h.command("leo", "anime", TEXT)
    ref, card = h.messenger.last("card")
    await h.press("leo", button(card, Action.EDIT), ref)
    await h.text("leo", "y" * 150)
    assert h.messenger.calls[-1].reply.text == t("text.too_long", "en", length=150, limit=100)
    await h.text("leo", "a small robot watering flowers")
    assert "small robot" in h.messenger.last("card")[1].text


# --- strings ------------------------------------------------------------------------------------


def _keys_used_in_handlers() -> set[str]:
    """Message keys named literally in handlers/*.py and handlers/conversation/*.py: t()/error_text() arguments,
    progress keys, ``key = ...``, error_key=."""
    import ast
    import re

    keys: set[str] = set()
    handlers = Path(cards.__file__).parent
    for path in [*handlers.glob("*.py"), *(handlers / "conversation").glob("*.py")]:
        if path.name == "i18n.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[a-z_]+\.[a-z_.]+", node.value):
                keys.add(node.value)  # every dotted literal in the handlers is a message key
            candidates: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("t", "error_text") and node.args:
                    candidates.append(node.args[0])
                if name == "progress" and len(node.args) >= 3:
                    candidates.append(node.args[2])
                candidates += [k.value for k in node.keywords if k.arg == "error_key"]
            if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "key" for target in node.targets):
                candidates.append(node.value)
            for candidate in candidates:
                branches = [candidate.body, candidate.orelse] if isinstance(candidate, ast.IfExp) else [candidate]
                keys |= {b.value for b in branches if isinstance(b, ast.Constant) and isinstance(b.value, str)}
    return keys


def test_every_message_exists_in_english_and_chinese():
    from handlers.i18n import LANGUAGES, message_keys, template

    used = _keys_used_in_handlers() | {f"language.{code}" for code in cards.RETRY_LANGUAGES}
    assert {"transcribing", "queued", "generating", "styling", "job.lost", "card.heard"} <= used
    assert used - set(message_keys()) == set()
    same = ("settings.language", "ui_language.en", "ui_language.zh-Hans", "ui_language.zh-Hant")
    for key in message_keys():
        english, chinese = template(key, "en"), template(key, "zh-Hans")
        assert all(template(key, lang) for lang in LANGUAGES), key
        assert chinese != english or "{" in english or key in same, key
        # every language takes the same parameters
        assert _fields(template(key, "zh-Hant")) == _fields(chinese) == _fields(english), key


def _fields(text: str) -> set[str]:
    import string

    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_user_error_has_a_translatable_message():
    import string

    import engine.errors
    import engine.image.styles
    from handlers.conversation.lifecycle import RateLimitedError
    from handlers.i18n import error_text, has_message, template

    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for sub in cls.__subclasses__() for s in subclasses(sub)}

    errors = subclasses(engine.errors.UserError)
    assert {RateLimitedError, engine.image.styles.UnknownStyleError, engine.errors.NoSpeechError} <= errors
    for error in errors:
        assert has_message(error.key), error
        fields = {name for _, name, _, _ in string.Formatter().parse(template(error.key, "en")) if name}
        instance = error(**dict.fromkeys(fields, 2.5))  # the words live once, in i18n
        for lang in ("en", "zh-Hans"):
            text = t(error.key, lang, **instance.params)  # raises if the translation wants other parameters
            assert "{" not in text and text != t("error.generic", lang) or error.key == "error.generic", (error, lang)
            assert error_text(error.key, lang, instance.params) == text
    assert error_text("audio.too_long", "zh-Hans") == t("error.generic", "zh-Hans"), "missing parameters degrade, never crash"
    assert error_text("no.such.key", "en") == t("error.generic", "en")


@pytest.mark.parametrize(
    ("setting", "locale", "expected"),
    [("zh-Hans", "en-US", "zh-Hans"), ("en", "zh-CN", "en"), (None, "zh-CN", "zh-Hans"), (None, "zh", "zh-Hans"), (None, "zh_TW", "zh-Hant"), (None, "yue", "zh-Hant"),
     (None, "zh-HK", "zh-Hant"), ("zh-Hant", "zh-CN", "zh-Hant"), (None, "en-GB", "en"), (None, None, "en"), (None, "fr", "en")],
)
def test_interface_language(setting, locale, expected):
    from handlers.i18n import pick_language

    assert pick_language(setting, locale) == expected


# --- the status message: stages, previews, its last line ---------------------------------------------


def _stage_of(reply, lang: str) -> str:
    """Which stage (or end) a status reply shows, from its text."""
    text = reply.text
    for stage, prefix in (
        ("queued", t("queued.waiting", lang)),
        ("drawing", t("generating", lang, percent=0).rsplit(" ", 1)[0]),
        ("styling", t("styling", lang)),
        ("sending", t("progress.sending", lang)),
        ("done", t("progress.done", lang)),
        ("done", t("progress.done_sketch", lang)),
    ):
        if text.startswith(prefix):
            return stage
    raise AssertionError(f"not a status text: {text!r}")


async def _status_of_new_request(h: Harness, user: str, text: str = TEXT) -> tuple[str, str]:
    """``/anime text`` as ``user`` (confirmation off) until delivered: (request id, status message ref)."""
    mark = h.messenger.mark()
    await h.command(user, "anime", text)
    await h.settle()
    first = next(c for c in h.messenger.since(mark, user) if c.reply and c.reply.request_id)
    return first.reply.request_id, first.ref


@pytest.mark.parametrize("lang", ["en", "zh-Hans"])
async def test_the_status_message_moves_forward_with_previews_and_ends_in_one_line(
    sqlite_url, local_engine, make_harness, lang
):
    h = await make_harness(sqlite_url, local_engine)
    h.locales["pia"] = "zh-CN" if lang == "zh-Hans" else "en-US"
    await turn_confirmation_off(h, "pia")
    request_id, ref = await _status_of_new_request(h, "pia")
    updates = [c.reply for c in h.messenger.status_edits(ref)]
    print(f"\nstatus message ({lang}):\n" + "\n".join(
        f"  {r.text}" + (f"   [+ picture {len(r.image_png)} B]" if r.image_png else "") + (" [Cancel]" if r.buttons else "")
        for r in updates
    ))

    # queued (the position is not known at first: no "#…") -> drawing -> styling -> sending -> one final line
    assert updates[0].text == t("queued.waiting", lang) and "#" not in updates[0].text and "…" in updates[0].text
    assert updates[1].text == t("queued", lang, position=1)
    stages = [_stage_of(r, lang) for r in updates]
    in_order = [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    assert in_order == ["queued", "drawing", "styling", "sending", "done"]
    assert percents(h, ref) == sorted(percents(h, ref)) and percents(h, ref)[0] == 0
    assert all(r.buttons for r in updates[:-1]) and updates[-1].buttons == (), "Cancel until the end, then no buttons"

    # the picture forming while drawing, then the sketch while styling, each a small JPEG shown in the same message
    drawing = [r.image_png for r, s in zip(updates, stages, strict=True) if s == "drawing" and r.image_png]
    sketch = [r.image_png for r, s in zip(updates, stages, strict=True) if s == "styling" and r.image_png]
    assert len(drawing) >= 1 and len(sketch) == 1
    for image in (*drawing, *sketch):
        assert image.startswith(b"\xff\xd8") and len(image) < 8192
        assert Image.open(io.BytesIO(image)).size == (64, 64)
    record = await h.request(request_id)
    from engine.image.diffusion import preview_jpeg

    assert sketch[0] == preview_jpeg(Image.open(record.image(ImageRole.BASE).path), 64), "the sketch is the drawing"
    assert all(r.image_png is None for r in updates[stages.index("sending"):]), "the sketch is not uploaded again"

    # the final picture is its own message; the status keeps the sketch with a last line saying so
    final = h.messenger.messages[ref]
    assert final.text == t("progress.done_sketch", lang) and final.image_png == sketch[0]
    assert [c.reply.request_id for c in h.messenger.images("pia")] == [request_id]
    assert record.state is S.DELIVERED


async def test_with_previews_off_the_status_is_text_only(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine, previews=False)
    await turn_confirmation_off(h, "quin")
    _, ref = await _status_of_new_request(h, "quin")
    updates = [c.reply for c in h.messenger.status_edits(ref)]
    assert updates and all(r.image_png is None for r in updates)
    assert h.messenger.messages[ref].text == t("progress.done", "en") and h.messenger.messages[ref].image_png is None


async def test_progress_never_goes_back_even_when_the_engine_does(sqlite_url, make_harness):
    """A job re-run from the start (a worker lost its lease), late events: percentages and stages only move on."""
    from engine.api import JobProgress, JobQueued, JobStarted
    from tests.support.scripted_engine import ScriptedEngine

    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await turn_confirmation_off(h, "rue")
    mark = h.messenger.mark()
    await h.command("rue", "anime", TEXT)
    first = next(c for c in h.messenger.since(mark, "rue") if c.reply and c.reply.request_id)
    request_id, ref = first.reply.request_id, first.ref
    handle = engine.handles[request_id]
    preview = b"\xff\xd8 a preview"
    for event in (
        JobStarted(),
        JobProgress(0.45, "diffusion"),
        JobProgress(0.2, "diffusion", preview=preview),  # the re-run starts over
        JobQueued(3),  # late: the job already runs
        JobProgress(0.9, "style"),
        JobProgress(0.6, "diffusion"),
    ):
        handle.publish(event)
    await asyncio.sleep(0.1)
    engine.finish(request_id)
    await h.settle()
    updates = [c.reply for c in h.messenger.status_edits(ref)]
    assert [r.text for r in updates] == [
        t("queued.waiting", "en"),
        t("queued", "en", position=1),
        t("generating", "en", percent=0),
        t("generating", "en", percent=45),
        t("generating", "en", percent=45),  # the preview, at the percentage already reached
        t("styling", "en"),
        t("progress.sending", "en"),
        t("progress.done", "en"),  # the last picture shown was a preview, not the sketch
    ]
    assert [r.image_png for r in updates].count(preview) == 1
