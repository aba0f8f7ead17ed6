"""Cards stay true: a settings card shows a setting as it is now, and a card replaced by a newer one has no buttons left.

Through ``Conversation.handle`` with the real repository and a scripted
engine; the recording messenger keeps every message as it reads now. The same
through the real adapters: ``test_telegram.py`` (fake Bot API) and
``test_discord.py`` (simcord).
"""

from __future__ import annotations

from handlers import cards
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Reply
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine, whisper_wrote

GROUP = "g1"
BLUE_HAIR = whisper_wrote([("a", 0.9), ("girl", 0.9), ("with", 0.9), ("blue", 0.9), ("hair", 0.9)], "en")


def last(h: Harness) -> tuple[str, Reply]:
    """The message the newest call sent or edited, as it reads now."""
    ref = h.messenger.calls[-1].ref
    return ref, h.messenger.messages[ref]


def labels(reply: Reply) -> list[str]:
    return [b.label for row in reply.buttons for b in row]


def live(h: Harness) -> list[str]:
    """The messages that still carry buttons."""
    return [ref for ref, reply in h.messenger.messages.items() if reply.buttons]


async def test_a_language_chosen_on_the_picker_shows_on_the_settings_card_in_that_language(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("alice", "settings")
    card_ref, card = last(h)
    assert card.text.splitlines()[1] == "Language: automatic (follows your app: English)"
    await h.press("alice", button(card, Action.SET_LANGUAGE), card_ref)
    picker_ref, picker = last(h)

    await h.press("alice", button(picker, Action.SET_LANGUAGE, "zh-Hant"), picker_ref)

    card = h.messenger.messages[card_ref]
    assert card.text.splitlines() == [
        "設定",
        "語言：中文（繁體）",
        "預設風格：人像（face paint v2）",
        "作畫前確認：開",
        "這裡的內容尺度：嚴格——適合所有人；圖片會檢查",
    ], "the card the picker was opened from reads the choice, in it"
    assert labels(card) == [t("settings.language", "zh-Hant"), "🎨 風格", "切換作畫前確認"]
    assert h.messenger.messages[picker_ref] == card, "the picker shows the settings as they are now too"

    # a change made on either card shows on both
    await h.press("alice", button(card, Action.TOGGLE_CONFIRM), picker_ref)
    for ref in (card_ref, picker_ref):
        assert "作畫前確認：關" in h.messenger.messages[ref].text.splitlines(), ref


async def test_every_settings_message_of_the_chooser_follows_and_nobody_else_s(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("alice", "settings", group=GROUP)
    card_ref, card = last(h)
    await h.command("alice", "settings")
    private_ref, _ = last(h)
    await h.command("alice", "style", group=GROUP)
    styles_ref, styles = last(h)
    await h.command("bob", "settings", group=GROUP)
    bob_ref, bob_card = last(h)
    await h.press("alice", button(card, Action.SET_LANGUAGE), card_ref, group=GROUP)
    picker_ref, picker = last(h)

    await h.press("alice", button(picker, Action.SET_LANGUAGE, "zh-Hant"), picker_ref, group=GROUP)

    messages = h.messenger.messages
    assert "• 語言：中文（繁體）" in messages[card_ref].text.splitlines(), "her card in the group"
    assert labels(messages[card_ref])[:2] == ["🌐 我的語言", "🎨 我的風格"]
    assert "語言：中文（繁體）" in messages[private_ref].text.splitlines(), "her card in her private chat"
    assert messages[styles_ref].text == t("style.choose", "zh-Hant"), "her open style picker, in her language now"
    assert labels(messages[styles_ref]) == ["✅ 人像（face paint v2）", "紅辣椒 Paprika"]
    assert messages[bob_ref] == bob_card, "bob's card is his: untouched"

    # her default style, picked on the open picker: every card of hers reads it, and only what changed is edited
    mark = h.messenger.mark()
    await h.press("alice", button(styles, Action.DEFAULT_STYLE, "paprika"), styles_ref, group=GROUP)
    for ref in (card_ref, private_ref, picker_ref, styles_ref):
        assert any(line.endswith("預設風格：紅辣椒 Paprika") for line in messages[ref].text.splitlines()), ref
    edited = [c.ref for c in h.messenger.since(mark) if c.op == "edit"]
    assert sorted(edited) == sorted([card_ref, private_ref, picker_ref, styles_ref]) and bob_ref not in edited


async def test_a_card_replaced_by_a_newer_one_has_no_buttons_left(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=BLUE_HAIR)
    h = await make_harness(sqlite_url, engine)
    await h.voice("alice", b"ogg")
    card_ref, card = h.messenger.last("card")

    # Edit: the corrected words come as a new card, the old one says so, without buttons
    await h.press("alice", button(card, Action.EDIT), card_ref)
    await h.text("alice", "a boy reading a book")
    new_ref, new = h.messenger.last("card")
    assert new_ref != card_ref and "a boy reading a book" in new.text
    assert h.messenger.messages[card_ref] == cards.retired_card(card.request_id, "en", "card.superseded")
    assert live(h) == [new_ref]

    # Heard wrong language: that card is replaced at once, the picker becomes the status and then the new card
    await h.voice("alice", b"ogg")
    card_ref, card = h.messenger.last("card")
    await h.press("alice", button(card, Action.RETRY), card_ref)
    picker_ref, picker = last(h)
    await h.press("alice", button(picker, Action.RETRY_AS, "zh"), picker_ref)
    assert h.messenger.messages[card_ref] == cards.retired_card(card.request_id, "en", "card.superseded")
    assert [c.shown for c in h.messenger.calls if c.ref == picker_ref][-2] == t("transcribing", "en")
    assert h.messenger.last("card") == (picker_ref, h.messenger.messages[picker_ref])
    assert live(h) == [new_ref, picker_ref], "the first request's card and the second's newest, nothing else"
