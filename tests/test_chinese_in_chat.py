"""Issue 13 in the conversation: what a Chinese (or English) speaker reads on the card.

Through ``Conversation.handle`` with the real repository and a scripted
engine whose transcripts are finished the way the speech engine finishes
Whisper's (:func:`engine.speech.asr.finish`: the reader's script, and with
``review`` the corrections and unsure flags).
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from db import RequestState
from db.models import Transcript as TranscriptRow
from engine.api import Transcript
from engine.language.prompt import build_prompt
from engine.speech.asr import SpeechRecognizer
from engine.speech.transcriber import WhisperTranscriber
from handlers import cards
from handlers.actions import Action
from handlers.replies import Button
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import RED_SAN, ScriptedEngine, whisper_wrote
from tests.support.speech import zh_clips

S = RequestState


#: Whisper base writes Mandarin in Traditional characters, whoever listens.
AS_WHISPER_WRITES = whisper_wrote(
    [("一個", 0.9), ("長頭髮", 0.9), ("的", 0.9), ("女孩", 0.9), ("在", 0.9), ("雨中", 0.9), ("撐著", 0.9), ("紅傘", 0.9)], "zh"
)
SIMPLIFIED = "“一个长头发的女孩在雨中撑着红伞”"
TRADITIONAL = "“一個長頭髮的女孩在雨中撐著紅傘”"


async def choose_language(h: Harness, user: str, language: str) -> None:
    """``user`` picks their language in /settings."""
    await h.press(user, Button("", Action.SET_LANGUAGE, cards.NO_REQUEST, language))


@pytest.mark.parametrize(
    ("locale", "setting", "script", "shown"),
    [
        ("zh-CN", None, "zh-Hans", SIMPLIFIED),
        ("zh-TW", None, "zh-Hant", TRADITIONAL),
        ("zh-Hant", None, "zh-Hant", TRADITIONAL),
        ("en-US", "zh-Hans", "zh-Hans", SIMPLIFIED),
        ("zh-TW", "zh-Hans", "zh-Hans", SIMPLIFIED),
        ("zh-CN", "zh-Hant", "zh-Hant", TRADITIONAL),
        ("zh-TW", "en", "zh-Hant", TRADITIONAL),  # an English UI says nothing about the script: the locale does
        ("en-US", None, None, TRADITIONAL),  # not a Chinese reader: as heard
    ],
)
async def test_the_card_is_in_the_script_the_user_reads(sqlite_url, make_harness, locale, setting, script, shown):
    engine = ScriptedEngine(transcript=AS_WHISPER_WRITES)
    h = await make_harness(sqlite_url, engine)
    h.locales["li"] = locale
    if setting is not None:
        await choose_language(h, "li", setting)
    await h.voice("li", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1] == shown
    assert engine.scripts == [script]


async def test_cantonese_asked_for_by_a_bare_zh_reader_is_written_in_traditional(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=AS_WHISPER_WRITES)
    h = await make_harness(sqlite_url, engine)
    h.locales["wai"] = "zh"
    await h.voice("wai", b"ogg")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[1] == SIMPLIFIED
    await h.press("wai", button(card, Action.RETRY), ref)
    await h.press("wai", button(h.messenger.calls[-1].reply, Action.RETRY_AS, "yue"))
    _, card = h.messenger.last("card")
    assert engine.scripts == ["zh-Hans", "zh-Hant"]
    assert "長頭髮" in card.text and "紅傘" in card.text


async def test_unsure_marks_are_the_engines_verdict(sqlite_url, make_harness):
    """Whisper was fairly sure (0.7) of 膜 after 白; a lone character that is no word there: the engine marks it, so does the card."""
    white_film = whisper_wrote([("一只", 0.9), ("白", 0.9), ("膜", 0.7), ("在", 0.9), ("屋顶", 0.9), ("上", 0.9)], "zh")
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=white_film, review=True))
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1:3] == ["“一只白[膜]在屋顶上”", "[方括号] 里是我不太确定的词。"]


def labels(reply) -> list[list[str]]:
    return [[b.label for b in row] for row in reply.buttons]


async def test_a_corrected_word_is_shown_and_keep_what_i_said_puts_it_back(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=RED_SAN, review=True)
    h = await make_harness(sqlite_url, engine)
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[1:4] == [
        "“一个长头发的女孩在雨中撑着红[伞]”",
        "[方括号] 里是我不太确定的词。",
        "我把“散”改成了“伞”。不是你说的？点“↩️ 保留原话”。",
    ]
    assert labels(card)[0] == ["✅ 开始画", "✏️ 修改", "↩️ 保留原话"]
    assert "umbrella" in (await h.request(card.request_id)).prompt_positive

    await h.press("li", button(card, Action.KEEP_SAID), ref)
    kept_ref, kept = h.messenger.last("card")
    assert kept_ref == ref  # updated in place
    assert kept.text.splitlines()[1] == "“一个长头发的女孩在雨中撑着红散”"
    assert "改成了" not in kept.text and "[" not in kept.text.splitlines()[1]
    assert labels(kept)[0] == ["✅ 开始画", "✏️ 修改"]
    said = build_prompt("一个长头发的女孩在雨中撑着红散", language="zh")

    await h.press("li", button(kept, Action.CONFIRM), ref)
    (spec,) = engine.specs
    assert spec.positive == said.positive and "umbrella" not in spec.positive
    record = await h.request(card.request_id)
    assert record.state is S.QUEUED and record.transcript.final_text == "一个长头发的女孩在雨中撑着红散"


async def test_an_english_near_miss_kept_as_said_in_english(sqlite_url, make_harness):
    """"fox spirit" misheard as "fuck spirit": corrected on the card; kept, it is what the content policy judges (and refuses)."""
    misheard = whisper_wrote([("A", 0.9), ("fuck", 0.48), ("spirit", 0.94), ("in", 0.9), ("the", 0.9), ("forest.", 1.0)], "en")
    engine = ScriptedEngine(transcript=misheard, review=True)
    h = await make_harness(sqlite_url, engine)
    await h.voice("amy", b"ogg")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[1:4] == [
        "“A [fox] spirit in the forest.”",
        "Words in [brackets] are ones I'm unsure of.",
        "I changed fuck → fox. Not what you said? Press ↩️ Keep what I said.",
    ]
    assert labels(card)[0] == ["✅ Draw it", "✏️ Edit", "↩️ Keep what I said"]
    await h.press("amy", button(card, Action.KEEP_SAID), ref)
    kept = h.messenger.messages[ref]
    assert kept.text.splitlines()[1] == "“A fuck spirit in the forest.”"
    assert "🚫 I can't draw that in this chat: “fuck” (sexual content)." in kept.text
    assert labels(kept)[0] == ["✏️ Edit"]
    assert (await h.request(card.request_id)).error_key == "policy.refused"


async def test_a_real_english_word_heard_unsurely_is_marked_not_replaced(sqlite_url, make_harness):
    """Whisper's "at the height" (for "at night") sounds like the lexicon's "hat", but "height" is a word: unsure, kept."""
    heard = whisper_wrote([("A", 0.9), ("girl", 0.9), ("at", 0.9), ("the", 0.6), ("height.", 0.41)], "en")
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard, review=True))
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1:3] == ["“A girl at the [height].”", "Words in [brackets] are ones I'm unsure of."]
    assert "I changed" not in card.text and labels(card)[0] == ["✅ Draw it", "✏️ Edit"]


async def test_keep_what_i_said_twice_changes_nothing_more(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=RED_SAN, review=True))
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    ref, card = h.messenger.last("card")
    keep = button(card, Action.KEEP_SAID)
    await h.press("li", keep, ref)
    mark = h.messenger.mark()
    await h.press("li", keep, ref)  # a stale button (another device, a double tap)
    assert [c.op for c in h.messenger.since(mark)] == ["notify"]
    assert h.messenger.messages[ref].text.splitlines()[1] == "“一个长头发的女孩在雨中撑着红散”"


async def test_a_card_stored_before_the_flags_still_renders(any_db_url, make_harness):
    """Words stored without ``unsure`` / ``corrected_from`` (rows from before) read as sure and uncorrected."""
    h = await make_harness(any_db_url, ScriptedEngine(transcript=RED_SAN, review=True))
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    ref, card = h.messenger.last("card")
    old_words = [{"text": w.text, "probability": w.probability} for w in (await h.request(card.request_id)).transcript.words]
    async with h.database.engine.begin() as connection:
        await connection.execute(update(TranscriptRow).values(words=old_words))
    await h.press("li", button(card, Action.DETAILS, "1"), ref)
    shown = h.messenger.messages[ref]
    assert shown.text.splitlines()[1:3] == ["“一个长头发的女孩在雨中撑着红伞”", ""]
    assert labels(shown)[0] == ["✅ 开始画", "✏️ 修改"]


class HeardByWhisper(ScriptedEngine):
    """Real speech recognition (Whisper base, the test model) in front of scripted pictures."""

    def __init__(self, recognizer: SpeechRecognizer) -> None:
        ScriptedEngine.__init__(self)
        self.whisper = WhisperTranscriber(recognizer)

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        return await self.whisper.transcribe(audio, language=language, script=script)


async def test_a_real_voice_note_corrected_then_kept(sqlite_url, make_harness, recognizer):
    """Whisper base hears 一个长头发的女孩在雨中撑着红伞 as 一個掌頭發的女孩在一中撐著紅散: the card shows it fixed, and undoes it."""
    engine = HeardByWhisper(recognizer)
    h = await make_harness(sqlite_url, engine)
    h.locales["li"] = "zh-CN"
    clip = next(c for c in zh_clips("dev") if c.path.stem == "long_hair_umbrella")
    await h.voice("li", clip.path.read_bytes())
    ref, card = h.messenger.last("card")
    said, corrected = card.text.splitlines()[1], card.text.splitlines()[3]
    assert "[雨中]" in said and "[伞]" in said and "長" not in said  # Simplified, the corrections marked
    assert "“一中”改成了“雨中”" in corrected and "“散”改成了“伞”" in corrected
    await h.press("li", button(card, Action.KEEP_SAID), ref)
    kept = h.messenger.messages[ref]
    assert "一中" in kept.text.splitlines()[1] and "散" in kept.text.splitlines()[1]
    assert not any(b.action == Action.KEEP_SAID for row in kept.buttons for b in row)
    record = await h.request(card.request_id)
    assert "一中" in record.transcript.heard_text and not record.transcript.corrections


async def test_words_nothing_could_translate_are_named_on_a_typed_card(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.locales["li"] = "zh-CN"
    await h.command("li", "anime", "皮卡丘在海边吃拉面")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[2] == "“皮卡丘”我没能翻译，不会画进去。可以点“✏️ 修改”换个说法。"
    assert "皮卡丘" not in (await h.request(card.request_id)).prompt_positive
    await h.press("li", button(card, Action.DETAILS, "1"), ref)  # shown again from what the database holds
    assert "“皮卡丘”我没能翻译" in h.messenger.messages[ref].text

    await h.command("amy", "anime", "王麗華在海邊")  # named as written, in Traditional
    _, card = h.messenger.last("card", "amy")
    assert card.text.splitlines()[2] == (
        "I could not translate “王麗華”, so that is left out of the picture. Press ✏️ Edit to put it another way."
    )


async def test_an_edit_nothing_could_translate_is_named_and_rephrasing_clears_it(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine())
    await h.command("amy", "anime", "a cat on the grass")
    ref, card = h.messenger.last("card")
    assert "could not translate" not in card.text
    await h.press("amy", button(card, Action.EDIT), ref)
    await h.text("amy", "小明的猫在草地上")
    _, card = h.messenger.last("card")
    assert "I could not translate “小明”" in card.text
    await h.press("amy", button(card, Action.EDIT))
    await h.text("amy", "一个男孩的猫在草地上")
    _, card = h.messenger.last("card")
    assert "could not translate" not in card.text


async def test_a_voice_note_s_untranslatable_words_are_named_as_heard(sqlite_url, make_harness):
    pikachu = whisper_wrote([("皮卡丘", 0.9), ("在", 0.9), ("海邊", 0.9), ("吃", 0.9), ("拉麵", 0.9)], "zh")
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=pikachu))
    h.locales["mei"] = "zh-TW"
    await h.voice("mei", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1:3] == ["“皮卡丘在海邊吃拉麵”", "“皮卡丘”我沒能翻譯，不會畫進去。可以點“✏️ 修改”換個說法。"]


async def test_dictionary_translated_words_are_shown_in_chinese_on_a_chinese_card(sqlite_url, make_harness):
    """What we understood speaks the user's language: 宇航员/月球 (translated with CC-CEDICT) are not shown as astronaut/moon."""
    h = await make_harness(sqlite_url, ScriptedEngine())
    h.locales["li"] = "zh-CN"
    await h.command("li", "anime", "宇航员在月球上骑马")
    _, card = h.messenger.last("card")
    assert {"• 主体：宇航员", "• 动作：骑马", "• 场景：月球"} <= set(card.text.splitlines())
    assert "astronaut" in (await h.request(card.request_id)).prompt_positive
    h.locales["mei"] = "zh-TW"
    await h.command("mei", "anime", "宇航員在月球上騎馬")
    _, card = h.messenger.last("card", "mei")
    assert {"• 主體：宇航員", "• 動作：騎馬", "• 場景：月球"} <= set(card.text.splitlines())
