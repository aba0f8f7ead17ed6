"""The content policy in the conversation: refusals kept in the history, the misheard word on the card, spoilers, levels per chat.

Through ``Conversation.handle`` with the real repository and a scripted
engine (the image check itself runs in the engine: ``test_policy_image.py``).
"""

from __future__ import annotations

import threading
from dataclasses import replace

from db import RequestState
from engine.api import JobFailed, JobFinished, JobResult, JobStarted, Segment, Transcript, Word
from engine.policy.levels import Level
from engine.policy.text import ChatPolicy
from handlers import cards
from handlers.actions import Action
from handlers.events import ButtonPress, Command, Origin, TextMessage
from handlers.replies import Button
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, png

S = RequestState


def heard(words: list[tuple[str, float]], language: str = "en") -> Transcript:
    parts = tuple(Word(w, 0.0, 0.0, p, unsure=p < 0.5) for w, p in words)
    text = "".join(w for w, _ in words).strip()
    return Transcript(text, language, 0.97, 3.0, (Segment(text, 0.0, 3.0, parts),))


#: Our own clip of "fox spirit in the forest", as a small Whisper model writes it.
MISHEARD = heard([(" fuck", 0.31), (" spirit", 0.9), (" in", 0.9), (" the", 0.9), (" forest", 0.9)])


def actions(reply) -> list[str]:
    return [b.action for row in reply.buttons for b in row]


def finish(engine: ScriptedEngine, job_id: str, *, flagged: tuple[str, ...] = ()) -> None:
    """Finish a scripted job with a picture the image check flagged (at ``standard``) or not."""
    spec = next(s for s in engine.specs if s.job_id == job_id)
    handle = engine.handles.pop(job_id)
    handle.publish(JobStarted())
    result = JobResult(job_id, png((200, 80, 120)), spec.style, base_png=png(), seed=spec.seed, model="m", flagged=flagged)
    handle.publish(JobFinished(result))


async def test_typed_text_the_policy_refuses_is_answered_and_kept_as_refused(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a nude elf in the forest")
    reply = h.messenger.calls[-1].reply
    assert reply.kind == "error"
    assert reply.text == "🚫 I can't draw that in this chat: “nude” (sexual content)."
    assert engine.specs == []
    (record,) = await h.repository.requests_in_states([S.FAILED])
    assert record.error_key == "policy.refused"
    assert record.transcript is not None and record.transcript.heard_text == "a nude elf in the forest"


async def test_the_refusal_speaks_the_users_language(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.locales["li"] = "zh-CN"
    await h.command("li", "anime", "一个裸体的女孩")
    assert h.messenger.calls[-1].reply.text == "🚫 在这个聊天里不能画这个：“裸体、naked”（色情内容）。"


async def test_a_misheard_word_is_shown_on_the_card_and_edit_fixes_it(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=MISHEARD)
    h = await make_harness(sqlite_url, engine)
    await h.voice("amy", b"ogg")
    ref, card = h.messenger.last("card")
    lines = card.text.splitlines()
    assert lines[1] == "“[fuck] spirit in the forest”"
    assert lines[-2:] == [
        "🚫 I can't draw that in this chat: “fuck” (sexual content).",
        "If I misheard you, press ✏️ Edit and correct it.",
    ]
    assert Action.CONFIRM not in actions(card) and Action.EDIT in actions(card)
    request_id = card.request_id
    assert (await h.request(request_id)).error_key == "policy.refused"

    await h.press("amy", button(card, Action.EDIT), ref)
    await h.send(TextMessage(h.origin("amy"), "fox spirit in the forest"))
    _, card = h.messenger.last("card")
    assert Action.CONFIRM in actions(card) and "🚫" not in card.text
    assert (await h.request(request_id)).error_key is None

    await h.press("amy", button(card, Action.CONFIRM))
    (spec,) = engine.specs
    assert spec.policy == "strict"
    assert spec.negative.startswith("nsfw, nude, naked")  # the policy's negative terms go first


async def test_a_stale_draw_button_is_refused_too(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=MISHEARD)
    h = await make_harness(sqlite_url, engine)
    await h.voice("amy", b"ogg")
    ref, card = h.messenger.last("card")
    await h.press("amy", Button("old", Action.CONFIRM, card.request_id), ref)
    assert engine.specs == []
    assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION
    assert "🚫" in h.messenger.messages[ref].text


async def test_with_confirmation_off_a_refused_voice_note_still_shows_its_card(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=MISHEARD)
    h = await make_harness(sqlite_url, engine)
    h_user = await h.repository.get_or_create_user("telegram", "amy", "Amy")
    await h.repository.update_user_settings(h_user, confirm_before_generate=False)
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert engine.specs == [] and Action.CONFIRM not in actions(card)


async def test_the_level_is_the_chats(sqlite_url, make_harness):
    """standard lets suggestive words through; strict does not; the job carries the level."""
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.STANDARD))
    await h.command("amy", "anime", "a sexy nurse")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM))
    (spec,) = engine.specs
    assert spec.policy == "standard" and spec.negative.startswith("nsfw, nude, naked, nipples, genitals")
    strict = await make_harness(sqlite_url, ScriptedEngine())
    await strict.command("bob", "anime", "a sexy nurse")
    assert strict.messenger.calls[-1].reply.kind == "error"


async def test_off_only_in_an_age_restricted_discord_channel(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.OFF))
    adult = Origin("discord", "100", "amy", "Amy", "en-US", is_group=True, age_restricted=True)
    general = Origin("discord", "200", "amy", "Amy", "en-US", is_group=True)
    await h.send(Command(adult, "anime", "a nude model"))
    assert h.messenger.calls[-1].reply.kind == "card"
    await h.send(Command(general, "anime", "a nude model"))  # off is standard here
    assert h.messenger.calls[-1].reply.kind == "error"
    await h.send(Command(adult, "anime", "a little girl in lingerie"))  # never, at any level
    assert "sexual content with children" in h.messenger.calls[-1].reply.text


async def test_a_reroll_is_checked_again(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.STANDARD))
    await h.command("amy", "anime", "a sexy nurse")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM))
    finish(engine, engine.specs[0].job_id)
    await h.settle()
    _, picture = h.messenger.last("image")
    h.conversation.context.config = replace(h.conversation.config, policy=ChatPolicy(level=Level.STRICT))  # the chat got stricter
    await h.press("amy", button(picture, Action.REROLL))
    assert len(engine.specs) == 1
    assert h.messenger.calls[-1].reply.text == "🚫 I can't draw that in this chat: “sexy” (suggestive content)."
    refused = [r for r in await h.repository.requests_in_states([S.FAILED]) if r.error_key == "policy.refused"]
    assert len(refused) == 1


async def test_a_flagged_picture_comes_behind_a_spoiler_and_stays_there(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.STANDARD))
    await h.command("amy", "anime", "a girl at the beach")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM))
    finish(engine, engine.specs[0].job_id, flagged=("BUTTOCKS_EXPOSED 0.71",))
    await h.settle()
    (sent,) = h.messenger.images("amy")
    assert sent.reply.spoiler and sent.reply.text.startswith("⚠️ The content check flagged this picture")
    record = await h.request(sent.reply.request_id)
    assert record.state is S.DELIVERED and record.error_key == "policy.spoiler"
    await h.press("amy", button(sent.reply, Action.BASE))
    assert h.messenger.calls[-1].reply.spoiler  # the original too
    await h.command("amy", "history")
    await h.press("amy", button(h.messenger.calls[-1].reply, Action.RESEND))
    assert h.messenger.calls[-1].reply.spoiler  # and when sent again


async def test_without_spoilers_a_flagged_picture_is_not_sent(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.STANDARD, spoilers=False))
    await h.command("amy", "anime", "a girl at the beach")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM))
    finish(engine, engine.specs[0].job_id, flagged=("BUTTOCKS_EXPOSED 0.71",))
    await h.settle()
    assert h.messenger.images("amy") == []
    (record,) = await h.repository.requests_in_states([S.FAILED])
    assert record.error_key == "policy.image_flagged"
    assert h.messenger.calls[-1].reply.text.startswith("🚫 I can't use that picture here")


async def test_a_flagged_photo_is_explained(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.photo("amy", png(size=(64, 64)))
    (spec,) = engine.specs
    assert spec.kind == "photo" and spec.policy == "strict"
    engine.handles.pop(spec.job_id).publish(JobFailed("policy.photo_flagged", "FEMALE_BREAST_EXPOSED 0.90"))
    await h.settle()
    (record,) = await h.repository.requests_in_states([S.FAILED])
    assert record.error_key == "policy.photo_flagged"
    assert h.messenger.calls[-1].reply.text == (
        "🚫 I can't use that picture here: the automatic picture check held it back. You can send another one."
    )


# --- a chat's level, chosen by its admins (the chat-wide settings of handlers.chat_settings) -----------------

GROUP = "g1"


async def choose_level(h, user: str, token: str, *, group: str = GROUP) -> None:
    """/settings in the group, then the content policy button's picker, then ``token``'s choice."""
    await h.command(user, "settings", group=group)
    card = h.messenger.calls[-1].reply
    await h.press(user, button(card, Action.CHAT_POLICY), group=group)
    picker = h.messenger.calls[-1].reply
    if picker.buttons and any(b.action == Action.CHAT_POLICY for row in picker.buttons for b in row):
        await h.press(user, button(picker, Action.CHAT_POLICY, token), group=group)


async def chat_level(h, group: str = GROUP, platform: str = "telegram") -> str | None:
    from db import ChatKind

    chat_id = await h.repository.get_or_create_chat(platform, group, ChatKind.GROUP)
    return (await h.repository.get_chat_settings(chat_id)).content_policy


async def test_an_admin_sets_the_chats_level_and_settings_shows_it(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    h.messenger.admins.add("bob")
    await h.command("bob", "settings", group=GROUP)
    assert "Content policy here: strict — for everyone; pictures are checked" in h.messenger.calls[-1].reply.text
    await choose_level(h, "bob", "standard")
    assert await chat_level(h) == "standard"
    await h.command("bob", "settings", group=GROUP)
    assert "Content policy here: standard — nothing explicit; flagged pictures come behind a spoiler" in h.messenger.calls[-1].reply.text
    await h.command("amy", "anime", "a sexy nurse", group=GROUP)  # anyone in the group, at the group's level
    assert h.messenger.calls[-1].reply.kind == "card"
    await h.command("amy", "anime", "a sexy nurse")  # her private chat keeps the deployment's
    assert h.messenger.calls[-1].reply.kind == "error"


async def test_only_admins_change_the_level(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.messenger.admins.add("bob")
    mark = h.messenger.mark()
    await h.command("amy", "settings", group=GROUP)
    card = h.messenger.calls[-1].reply
    await h.press("amy", button(card, Action.CHAT_POLICY), group=GROUP)
    await h.press("amy", Button("forged", Action.CHAT_POLICY, cards.NO_REQUEST, "off"), group=GROUP)
    refusals = [c for c in h.messenger.since(mark) if c.op == "notify"]
    assert len(refusals) == 2 and all("admin" in c.text for c in refusals)
    assert await chat_level(h) is None


async def test_off_is_refused_where_the_chat_may_not_be_off(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.messenger.admins.add("bob")
    await choose_level(h, "bob", "off")
    assert h.messenger.calls[-1].op == "notify" and "age-restricted" in h.messenger.calls[-1].text
    assert await chat_level(h) is None


async def test_off_in_an_age_restricted_discord_channel(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.messenger.admins.add("bob")
    adult = Origin("discord", "300", "bob", "Bob", "en-US", is_group=True, age_restricted=True)
    await h.send(Command(adult, "settings"))
    card = h.messenger.calls[-1].reply
    await h.send(ButtonPress(adult, cards.NO_REQUEST, Action.CHAT_POLICY, "off"))
    assert await chat_level(h, "300", "discord") == "off"
    await h.send(Command(adult, "anime", "a nude model"))
    assert h.messenger.calls[-1].reply.kind == "card"
    assert "Content policy" in card.text


async def test_the_classifier_refuses_what_it_refused_from_a_worker_thread(sqlite_url, make_harness, monkeypatch):
    """A word outside the list ("nakked") is the classifier's to refuse: on the card, and on a stale Draw, as before,
    each time scored on a worker thread, never on the event loop."""
    engine = ScriptedEngine(transcript=heard([(" a", 0.9), (" nakked", 0.9), (" elf", 0.9), (" by", 0.9), (" the", 0.9), (" pond", 0.9)]))
    h = await make_harness(sqlite_url, engine)
    second_check = h.conversation.config.policy.checker.second_check
    scored_on: list[int] = []
    score = second_check.hits

    def hits(*args, **kwargs):
        scored_on.append(threading.get_ident())
        return score(*args, **kwargs)

    monkeypatch.setattr(second_check, "hits", hits)
    await h.voice("amy", b"ogg")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[-2] == "🚫 I can't draw that in this chat: “nakked” (sexual content)."
    assert Action.CONFIRM not in actions(card)
    assert (await h.request(card.request_id)).error_key == "policy.refused"

    await h.press("amy", Button("old", Action.CONFIRM, card.request_id), ref)
    assert engine.specs == []
    assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION
    assert scored_on and threading.get_ident() not in scored_on
