"""A message belongs to the user it was sent for: a press by anyone else never edits it.

Through ``Conversation.handle`` with the real repository and a scripted
engine, in a group where everyone sees everyone's messages (Telegram). The
same through the real adapters: ``test_telegram.py`` (the fake Bot API) and
``test_discord.py`` (simcord).
"""

from __future__ import annotations

from db import RequestState
from handlers import cards
from handlers.actions import Action
from handlers.conversation import Conversation
from handlers.i18n import t
from handlers.replies import Button, Reply
from tests.support.conversation import Call, Harness, button
from tests.support.scripted_engine import ScriptedEngine

S = RequestState
GROUP = "g1"
TEXT = "a girl with blue hair under cherry blossoms"


def last(h: Harness) -> tuple[str, Reply]:
    call = h.messenger.calls[-1]
    assert call.reply is not None
    return call.ref, call.reply


def changes_of(calls: list[Call], *refs: str) -> list[Call]:
    """The calls that changed one of the messages ``refs``."""
    return [c for c in calls if c.op == "edit" and c.ref in refs]


async def test_a_press_on_someone_else_s_settings_never_changes_them_and_the_presser_gets_their_own(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.messenger.admins.add("carol")
    await h.command("alice", "settings", group=GROUP)
    card_ref, card = last(h)
    await h.press("alice", button(card, Action.SET_LANGUAGE), card_ref, group=GROUP)
    picker_ref, picker = last(h)
    await h.command("alice", "style", group=GROUP)
    styles_ref, styles = last(h)
    shown = {ref: h.messenger.messages[ref] for ref in (card_ref, picker_ref, styles_ref)}
    mark = h.messenger.mark()

    # bob chooses a language on alice's picker: his own language, told privately, in a card of his own
    await h.press("bob", button(picker, Action.SET_LANGUAGE, "zh-Hant"), picker_ref, group=GROUP)
    calls = h.messenger.since(mark)
    assert [(c.op, c.origin.user_id) for c in calls] == [("notify", "bob"), ("send", "bob")]
    assert calls[0].text == t("settings.saved", "zh-Hant")
    bob_card = calls[1].reply
    assert bob_card is not None and bob_card.private and "只對你（Bob）生效：" in bob_card.text and calls[1].ref not in shown

    # ... a default style on her /style picker, and the chat's confirmation (carol, an admin) on her card
    await h.press("bob", button(styles, Action.DEFAULT_STYLE, "paprika"), styles_ref, group=GROUP)
    await h.press("carol", button(card, Action.TOGGLE_CONFIRM), card_ref, group=GROUP)
    # ... and buttons that open a picker: the picker is a new message, theirs
    await h.press("bob", button(card, Action.DEFAULT_STYLE), card_ref, group=GROUP)
    await h.press("carol", button(card, Action.CHAT_LANGUAGE), card_ref, group=GROUP)

    calls = h.messenger.since(mark)
    assert not changes_of(calls, *shown), "alice's messages were changed by someone else's press"
    assert {ref: h.messenger.messages[ref] for ref in shown} == shown
    assert {c.origin.user_id for c in calls} == {"bob", "carol"}, "only the pressers were answered"
    assert [c.op for c in h.messenger.since(mark, "carol")] == ["notify", "send", "send"]
    assert "• Confirm before drawing: off" in h.messenger.since(mark, "carol")[1].shown
    await h.command("bob", "settings", group=GROUP)
    assert "• 預設風格：紅辣椒 Paprika" in last(h)[1].text, "bob's choices were his own"

    # alice's own presses still change her messages in place: the picker, and her card that now reads otherwise
    mark = h.messenger.mark()
    await h.press("alice", button(picker, Action.SET_LANGUAGE, "en"), picker_ref, group=GROUP)
    assert [(c.op, c.ref) for c in h.messenger.since(mark)] == [("edit", card_ref), ("notify", ""), ("edit", picker_ref)]
    assert "Just for you, Alice:" in h.messenger.messages[picker_ref].text
    assert "• Language: English" in h.messenger.messages[card_ref].text


async def test_a_press_naming_another_request_never_repurposes_the_message(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("bob", "settings", group=GROUP)
    bob_ref, bob_card = last(h)
    await h.command("alice", "anime", TEXT, group=GROUP)
    first_ref, first = h.messenger.last("card", "alice")
    await h.command("alice", "anime", "a red fox in the snow", group=GROUP)
    second_ref, second = h.messenger.last("card", "alice")
    request_id = first.request_id
    mark = h.messenger.mark()

    # alice's first request named in presses on bob's settings card and on her own second card
    for on in (bob_ref, second_ref):
        await h.press("alice", Button("forged", Action.DETAILS, request_id, "1"), on, group=GROUP)
        await h.press("alice", Button("forged", Action.STYLE_SET, request_id, "paprika"), on, group=GROUP)
        await h.press("alice", Button("forged", Action.KEEP_SAID, request_id), on, group=GROUP)
    await h.press("alice", Button("forged", Action.CONFIRM, request_id), bob_ref, group=GROUP)
    engine.finish(request_id)
    await h.settle()

    calls = h.messenger.since(mark)
    assert not changes_of(calls, bob_ref, second_ref), "a press changed a message it does not belong to"
    assert h.messenger.messages[bob_ref] == bob_card and h.messenger.messages[second_ref] == second
    # the presses acted on her first request, in its own card
    assert (await h.request(request_id)).state is S.DELIVERED
    assert (await h.request(request_id)).style == "paprika"
    assert changes_of(calls, first_ref), "her own card shows what her presses did"
    assert h.messenger.messages[first_ref].text == cards.progress_done(request_id, "en", sketch=False).text
    (picture,) = h.messenger.images("alice")
    assert picture.reply is not None and picture.reply.request_id == request_id
    assert (await h.request(second.request_id)).state is S.AWAITING_CONFIRMATION


async def test_after_a_restart_a_card_still_changes_in_place_but_settings_in_a_group_answer_anew(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("alice", "settings", group=GROUP)
    settings_ref, settings = last(h)
    await h.command("alice", "anime", TEXT, group=GROUP)
    card_ref, card = h.messenger.last("card", "alice")
    await h.command("bob", "settings")
    private_ref, private = last(h)

    # a restart: the messages are no longer remembered
    h.conversation = Conversation(h.repository, engine, engine, h.messenger, h.config, clock=h.clock, monotonic=h.monotonic)
    mark = h.messenger.mark()
    await h.press("bob", button(settings, Action.TOGGLE_CONFIRM), settings_ref, group=GROUP)  # not an admin
    await h.press("bob", Button("English", Action.SET_LANGUAGE, cards.NO_REQUEST, "en"), settings_ref, group=GROUP)
    await h.press("bob", button(card, Action.CONFIRM), card_ref, group=GROUP)
    assert not changes_of(h.messenger.since(mark), settings_ref, card_ref)
    assert [c.op for c in h.messenger.since(mark)] == ["notify", "notify", "send", "notify"], "bob got a card of his own"
    assert h.messenger.since(mark)[3].text == t("not_yours", "en")

    # her card is hers: its request's owner presses it
    await h.press("alice", button(card, Action.DETAILS, "1"), card_ref, group=GROUP)
    assert h.messenger.calls[-1].op == "edit" and h.messenger.calls[-1].ref == card_ref
    # a private chat's messages are its user's
    await h.press("bob", Button("Paprika", Action.DEFAULT_STYLE, cards.NO_REQUEST, "paprika"), private_ref)
    assert h.messenger.calls[-1].op == "edit" and h.messenger.calls[-1].ref == private_ref
