"""Who may change what in a group, help that matches the buttons, the Traditional-Chinese UI, file names.

Through ``Conversation.handle`` with the real repository and a scripted
engine; the recording messenger says who administers the group
(``RecordingMessenger.admins``). The same rules through the real adapters:
``test_telegram.py`` (getChatMember) and ``test_discord.py`` (member permissions).
"""

from __future__ import annotations

from db import ChatKind, RequestState
from db.preferences import ChatOverrides, Preferences
from handlers import cards
from handlers.actions import Action
from handlers.chat_settings import CHAT_SETTINGS
from handlers.conversation.routes import COMMAND_NAMES
from handlers.i18n import LANGUAGES, pick_language, t
from handlers.replies import Button
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine

S = RequestState
GROUP = "g1"
TEXT = "a girl with blue hair under cherry blossoms"


async def group_harness(sqlite_url, make_harness, *, admins: set[str]) -> Harness:
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.messenger.admins |= admins
    return h


async def settings_card(h: Harness, user: str, *, group: str | None = GROUP):
    await h.command(user, "settings", group=group)
    call = h.messenger.calls[-1]
    return call.ref, call.reply


async def test_a_member_cannot_change_chat_wide_settings_and_is_told_privately(sqlite_url, make_harness):
    h = await group_harness(sqlite_url, make_harness, admins={"bob"})
    ref, card = await settings_card(h, "alice")
    mark = h.messenger.mark()

    await h.press("alice", button(card, Action.TOGGLE_CONFIRM), ref, group=GROUP)
    await h.press("alice", button(card, Action.CHAT_LANGUAGE), ref, group=GROUP)
    await h.press("alice", Button("forged", Action.CHAT_LANGUAGE, cards.NO_REQUEST, "zh-Hans"), ref, group=GROUP)  # the picker's

    refusal = t("settings.admins_only", "en", language="🌐 My language", style="🎨 My style")
    calls = h.messenger.since(mark)
    assert [(c.op, c.origin.user_id, c.text) for c in calls] == [("notify", "alice", refusal)] * 3, "only private refusals"
    chat_id = await h.repository.get_or_create_chat("telegram", GROUP, ChatKind.GROUP)
    assert await h.repository.get_chat_settings(chat_id) == ChatOverrides(), "nothing changed"
    assert h.messenger.admin_checks == [(GROUP, "alice")] * 3

    await h.command("alice", "anime", TEXT, group=GROUP)
    assert h.messenger.last("card", "alice"), "confirmation is still on for everyone"


async def test_admins_change_the_chat_for_everyone_members_their_own_settings_for_themselves(sqlite_url, make_harness):
    h = await group_harness(sqlite_url, make_harness, admins={"bob"})
    ref, card = await settings_card(h, "bob")
    await h.press("bob", button(card, Action.TOGGLE_CONFIRM), ref, group=GROUP)
    assert h.messenger.calls[-2].text == t("settings.saved", "en") and h.messenger.calls[-2].op == "notify"
    assert (h.messenger.calls[-1].op, h.messenger.calls[-1].ref) == ("edit", ref), "the card shows the change in place"
    assert "• Confirm before drawing: off" in h.messenger.calls[-1].reply.text and h.messenger.calls[-1].reply.private

    # the chat's language: a picker (private), then the choice; members who chose nothing follow it
    await h.press("bob", button(card, Action.CHAT_LANGUAGE), ref, group=GROUP)
    picker_ref, picker = h.messenger.calls[-1].ref, h.messenger.calls[-1].reply
    assert picker.private and picker.text == t("settings.choose_chat_language", "en")
    await h.press("bob", button(picker, Action.CHAT_LANGUAGE, "zh-Hans"), picker_ref, group=GROUP)
    assert h.messenger.calls[-1].ref == picker_ref and "• 聊天语言：中文（简体）" in h.messenger.calls[-1].reply.text

    # alice (a member) chooses her own language: it applies to her, in the group and everywhere, and to nobody else
    ref, card = await settings_card(h, "alice")
    assert "• 语言：自动（跟随这里的设置：中文（简体））" in card.text
    await h.press("alice", button(card, Action.SET_LANGUAGE), ref, group=GROUP)
    picker_ref, picker = h.messenger.calls[-1].ref, h.messenger.calls[-1].reply
    await h.press("alice", button(picker, Action.SET_LANGUAGE, "zh-Hant"), picker_ref, group=GROUP)
    assert "• 語言：中文（繁體）" in h.messenger.calls[-1].reply.text
    await h.command("alice", "help", group=GROUP)
    assert h.messenger.calls[-1].reply.text == cards.help_text("zh-Hant", group=True, commands=COMMAND_NAMES).text, "her own choice wins over the chat's"
    await h.command("carol", "help", group=GROUP)
    assert h.messenger.calls[-1].reply.text == cards.help_text("zh-Hans", group=True, commands=COMMAND_NAMES).text, "carol chose nothing: the chat's"
    await h.command("alice", "help")
    assert h.messenger.calls[-1].reply.text == cards.help_text("zh-Hant", group=False, commands=COMMAND_NAMES).text, "and in her private chat"

    # chat-wide: confirmation is off for every member here; alice's private chat is hers (on)
    mark = h.messenger.mark()
    await h.command("carol", "anime", TEXT, group=GROUP)
    assert not [c for c in h.messenger.since(mark) if c.reply and c.reply.kind == "card"], "queued at once"
    await h.command("alice", "anime", TEXT)
    assert h.messenger.calls[-1].reply.kind == "card"


async def test_personal_style_is_its_owner_s_and_chat_settings_are_not_offered_in_private_chats(sqlite_url, make_harness):
    h = await group_harness(sqlite_url, make_harness, admins=set())
    ref, card = await settings_card(h, "alice")
    await h.press("alice", button(card, Action.DEFAULT_STYLE), ref, group=GROUP)
    picker_ref, picker = h.messenger.calls[-1].ref, h.messenger.calls[-1].reply
    assert picker.private
    await h.press("alice", button(picker, Action.DEFAULT_STYLE, "paprika"), picker_ref, group=GROUP)
    assert "• Default style: Paprika" in h.messenger.calls[-1].reply.text
    _, bob_card = await settings_card(h, "bob")
    assert "• Default style: Portrait (face paint v2)" in bob_card.text

    _, private = await settings_card(h, "alice", group=None)
    assert private.text.splitlines() == [
        "Settings",
        "Language: automatic (follows your app: English)",
        "Default style: Paprika",
        "Confirm before drawing: on",
        "Content policy here: strict — for everyone; pictures are checked",
    ]
    assert [b.action for row in private.buttons for b in row] == [Action.SET_LANGUAGE, Action.DEFAULT_STYLE, Action.TOGGLE_CONFIRM]
    assert not h.messenger.admin_checks, "nobody is asked about a private chat"


def test_every_chat_wide_setting_is_one_entry():
    actions = [entry.action for entry in CHAT_SETTINGS]
    assert len(set(actions)) == len(actions) and not set(actions) & {Action.SET_LANGUAGE, Action.DEFAULT_STYLE, Action.VOICE_REPLIES}
    for entry in CHAT_SETTINGS:
        assert entry.toggles or entry.question, entry.field
        for choice in entry.choices:
            assert ":" not in choice.token and t(choice.label, "en"), choice
    card = cards.settings_card(
        "en", user=Preferences(), chat=ChatOverrides(), style="Paprika", app_language="en", name="Ann", voice_default="voice"
    )
    assert [b.action for b in card.buttons[1]] == actions


async def test_buttons_sent_when_simplified_chinese_was_zh_still_choose_it(sqlite_url, make_harness):
    h = await group_harness(sqlite_url, make_harness, admins={"bob"})
    ref, card = await settings_card(h, "bob")
    await h.press("bob", Button("sent before", Action.SET_LANGUAGE, cards.NO_REQUEST, "zh"), ref, group=GROUP)
    await h.press("bob", Button("sent before", Action.CHAT_LANGUAGE, cards.NO_REQUEST, "zh"), ref, group=GROUP)
    user_id = await h.repository.get_or_create_user("telegram", "bob")
    chat_id = await h.repository.get_or_create_chat("telegram", GROUP, ChatKind.GROUP)
    assert (await h.repository.get_user_settings(user_id)).language == "zh-Hans"
    assert (await h.repository.get_chat_settings(chat_id)).language == "zh-Hans"
    assert h.messenger.calls[-1].reply.text.startswith(t("settings.heading", "zh-Hans"))


async def test_help_names_the_real_buttons_and_how_to_call_the_bot_in_groups(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    for lang, locale in (("en", "en-US"), ("zh-Hans", "zh-CN"), ("zh-Hant", "zh-TW")):
        user = f"u-{lang}"
        h.locales[user] = locale
        await h.command(user, "help")
        private = h.messenger.calls[-1].reply
        await h.command(user, "help", group=GROUP)
        group = h.messenger.calls[-1].reply
        for label in ("button.confirm", "button.edit", "button.cancel"):
            assert t(label, lang) in private.text and t(label, lang) in group.text
        assert t("help.group", lang) not in private.text and group.text.endswith(t("help.group", lang))
        assert private.private and group.private
        if lang == "en":
            english = (private.text, group.text)
    assert "✅ Draw it, ✏️ Edit or ✖️ Cancel" in cards.help_text("en", group=False, commands=COMMAND_NAMES).text
    assert "✅ 开始画、✏️ 修改 或 ✖️ 取消" in cards.help_text("zh-Hans", group=False, commands=COMMAND_NAMES).text
    assert "✅ 開始畫、✏️ 修改 或 ✖️ 取消" in cards.help_text("zh-Hant", group=False, commands=COMMAND_NAMES).text
    assert "mention me (@ and my name) or reply to one of my messages" in cards.help_text("en", group=True, commands=COMMAND_NAMES).text
    assert "在群組和伺服器頻道裡" in cards.help_text("zh-Hant", group=True, commands=COMMAND_NAMES).text

    # the commands' lines come from the routes' table, in its order, the group's /settings line in groups
    lines = [line for line in english[0].splitlines() if line.startswith("• /")]
    assert lines == ["• /style — pick your default style", "• /history — your last pictures",
                     "• /settings — language, default style, confirm before drawing", "• /cancel — stop what is running"]
    assert "• /settings — your own language and style; for admins also this chat's language" in english[1]


def test_traditional_chinese_is_chosen_from_the_locale():
    assert LANGUAGES == ("en", "zh-Hans", "zh-Hant")
    for locale in ("zh-TW", "zh-HK", "zh-MO", "zh-Hant", "zh_TW", "zh-hant"):
        assert pick_language(None, locale) == "zh-Hant", locale
    for locale in ("zh-CN", "zh-SG", "zh", "zh-Hans", "zh-hans"):
        assert pick_language(None, locale) == "zh-Hans", locale
    assert pick_language(None, "en-GB") == pick_language(None, None) == "en"
    assert pick_language("zh-Hant", "en-US") == "zh-Hant" and pick_language("en", "zh-TW") == "en"
    # generated with OpenCC s2twp (Taiwan wording), reviewed: a few as they read
    assert t("command.settings", "zh-Hant") == "語言、風格、作畫前確認"
    assert t("settings.saved", "zh-Hant") == "已儲存。"
    assert t("audio.unreadable", "zh-Hant") == "無法讀取這個音訊檔案。請傳送語音訊息或 OGG/MP3/M4A/WAV 檔案。"
    assert t("ui_language.zh-Hans", "zh-Hant") == "中文（简体）", "a language's own name is not converted"


async def test_the_card_speaks_traditional_chinese_to_taiwan(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.locales["mei"] = "zh-TW"
    await h.command("mei", "anime", TEXT)
    _, card = h.messenger.last("card")
    assert "• 主體：女孩" in card.text and "藍頭髮" in card.text and "櫻花" in card.text
    assert "要開始畫嗎？" in card.text
    assert [b.label for b in card.buttons[0]] == ["✅ 開始畫", "✏️ 修改"]


async def test_pictures_are_uploaded_under_names_that_say_what_they_are(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("ivy", "anime", TEXT)
    _, card = h.messenger.last("card")
    await h.press("ivy", button(card, Action.CONFIRM))
    engine.finish(card.request_id)
    await h.settle()
    (picture,) = h.messenger.images("ivy")
    short = card.request_id[: cards.SHORT_ID]
    assert picture.reply.file_name == f"voice2anime-{short}"
    await h.press("ivy", button(picture.reply, Action.BASE))
    original = h.messenger.calls[-1].reply
    assert original.kind == "image" and original.file_name == f"voice2anime-{short}-original"
