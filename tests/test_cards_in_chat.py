"""What a user reads: transcript spacing, the card in both languages, stale cards retired, /history, /settings.

Through ``Conversation.handle`` with the real repository and a scripted engine
(pictures finish when the test says so); the real engines are covered in
``test_flow.py``.
"""

from __future__ import annotations

from db import RequestState
from engine.api import Segment, Transcript, Word
from handlers import cards
from handlers.actions import Action
from handlers.events import Command
from handlers.i18n import t
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, png

S = RequestState


def heard(text_words: list[tuple[str, float]], language: str) -> Transcript:
    """A transcript as the speech engine gives it (English words carry their leading space; below 0.5 the engine is unsure)."""
    words = tuple(Word(w, 0.0, 0.0, p, unsure=p < 0.5) for w, p in text_words)
    text = "".join(w for w, _ in text_words).strip()
    return Transcript(text, language, 0.97, 3.0, (Segment(text, 0.0, 3.0, words),))


ENGLISH = heard(
    [(" A", 0.3), (" small", 0.9), (" girl", 0.95), (" with", 0.9), (" long", 0.9), (" silver", 0.4), (" hair", 0.9),
     (" folding", 0.9), (" a", 0.9), (" paper", 0.9), (" lantern.", 0.9)],
    "en",
)
MANDARIN = heard([("一个", 0.9), ("蓝色", 0.9), ("头发", 0.9), ("的", 0.9), ("女孩", 0.3), ("在", 0.9), ("雨中", 0.9)], "zh")


async def test_an_english_transcript_keeps_its_spaces_and_marks_unsure_words(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=ENGLISH))
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1] == "“[A] small girl with long [silver] hair folding a paper lantern.”"


async def test_a_chinese_transcript_stays_unspaced_and_the_card_speaks_chinese(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=MANDARIN))
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    _, card = h.messenger.last("card")
    lines = card.text.splitlines()
    assert lines[1] == "“一个蓝色头发的[女孩]在雨中”"
    assert "• 主体：女孩" in lines and "• 外观：蓝头发" in lines and "• 场景：下雨" in lines
    assert "• 风格：人像（face paint v2）" in lines
    assert [b.label for b in card.buttons[1]] == ["🔁 语言识别错了", "🎨 风格", "🔍 详情", "✖️ 取消"]


async def test_a_re_transcribed_card_retires_the_old_one(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=ENGLISH)
    h = await make_harness(sqlite_url, engine)
    await h.voice("ben", b"ogg")
    first_ref, first = h.messenger.last("card")
    await h.press("ben", button(first, Action.RETRY), first_ref)
    picker = h.messenger.calls[-1].reply
    engine.transcript = MANDARIN
    await h.press("ben", button(picker, Action.RETRY_AS, "zh"))
    second_ref, second = h.messenger.last("card")
    assert second_ref != first_ref and second.request_id == first.request_id
    assert h.messenger.messages[first_ref] == cards.retired_card(first.request_id, "en", "card.superseded")
    assert h.messenger.messages[first_ref].buttons == ()


async def test_cancel_turns_the_open_card_into_a_note(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("cat", "anime", "a fox spirit on a mossy rock")
    ref, card = h.messenger.last("card")
    await h.send(Command(h.origin("cat"), "cancel"))
    assert h.messenger.messages[ref].text == t("cancelled", "en") and h.messenger.messages[ref].buttons == ()
    assert (await h.request(card.request_id)).state is S.CANCELLED


async def test_an_expired_card_says_so_in_place(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("dan", "anime", "a fox spirit on a mossy rock")
    ref, card = h.messenger.last("card")
    h.clock.advance(hours=1)
    await h.press("dan", button(card, Action.CONFIRM), ref)
    assert h.messenger.messages[ref].text == t("card.expired", "en") and h.messenger.messages[ref].buttons == ()


async def test_history_lists_descriptions_styles_and_dates_cut_between_words(sqlite_url, make_harness):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("eve", "anime", "a fox spirit sitting on a mossy rock beside a waterfall at dawn")
    ref, card = h.messenger.last("card")
    await h.press("eve", button(card, Action.CONFIRM), ref)
    engine.finish(card.request_id)
    await h.settle()
    (picture,) = h.messenger.images("eve")
    h.clock.advance(days=1)
    await h.press("eve", button(picture.reply, Action.RESTYLE))
    await h.press("eve", button(h.messenger.calls[-1].reply, Action.RESTYLE_AS, "paprika"))
    engine.finish(engine.specs[-1].job_id)
    h.clock.advance(minutes=1)
    await h.photo("eve", png())
    engine.finish(engine.specs[-1].job_id)
    await h.settle()

    await h.command("eve", "history")
    assert h.messenger.calls[-1].reply.text.splitlines() == [
        "Your last pictures:",
        "#1 📷 your photo · Portrait (face paint v2) · 2025-01-02",
        "#2 “a fox spirit sitting on a mossy rock…” · Paprika · 2025-01-02",
        "#3 “a fox spirit sitting on a mossy rock…” · Portrait (face paint v2) · 2025-01-01",
    ]
    h.locales["eve"] = "zh-CN"
    await h.command("eve", "history")
    assert h.messenger.calls[-1].reply.text.splitlines()[2] == "#2 “a fox spirit sitting on a mossy rock…” · 红辣椒 Paprika · 2025-01-02"


async def test_settings_explain_automatic_language_in_both_languages(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("fay", "settings")
    assert h.messenger.calls[-1].reply.text.splitlines() == [
        "Settings",
        "Language: automatic (follows your app: English)",
        "Default style: Portrait (face paint v2)",
        "Confirm before drawing: on",
        "Content policy here: strict — for everyone; pictures are checked",
    ]
    h.locales["gus"] = "zh-CN"
    await h.command("gus", "settings")
    assert h.messenger.calls[-1].reply.text.splitlines()[:3] == [
        "设置", "语言：自动（跟随应用：中文（简体））", "默认风格：人像（face paint v2）"
    ]
    await h.press("gus", button(h.messenger.calls[-1].reply, Action.SET_LANGUAGE))  # opens the picker
    picker = h.messenger.calls[-1].reply
    assert [b.label for row in picker.buttons for b in row] == ["✅ 自动", "English", "中文（简体）", "中文（繁體）"]
    await h.press("gus", button(picker, Action.SET_LANGUAGE, "en"))
    assert "Language: English" in h.messenger.calls[-1].reply.text
    h.locales["hui"] = "zh-TW"
    await h.command("hui", "settings")
    assert h.messenger.calls[-1].reply.text.splitlines()[:3] == [
        "設定", "語言：自動（跟隨應用：中文（繁體））", "預設風格：人像（face paint v2）"
    ]


def test_shorten_cuts_between_words_and_anywhere_in_chinese():
    assert cards.shorten("a fox spirit sitting on a mossy rock beside a waterfall", 20) == "a fox spirit…"
    assert cards.shorten("短句", 20) == "短句"
    assert cards.shorten("一只狐狸精坐在长满青苔的石头上看瀑布", 10) == "一只狐狸精坐在长满…"
