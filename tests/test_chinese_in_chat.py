"""Issue 13 in the conversation: what a Chinese (or English) speaker reads on the card.

Through ``Conversation.handle`` with the real repository and a scripted
engine whose transcripts are finished the way the speech engine finishes
Whisper's (:func:`engine.asr.finish`: the reader's script, and with
``review`` the corrections and unsure flags).
"""

from __future__ import annotations

import pytest

from engine.api import Segment, Transcript, Word
from handlers import cards
from handlers.replies import Button
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine


def heard(text_words: list[tuple[str, float]], language: str) -> Transcript:
    """A transcript as faster-whisper writes it (English words carry their leading space)."""
    words = tuple(Word(w, 0.0, 0.0, p) for w, p in text_words)
    text = "".join(w for w, _ in text_words).strip()
    return Transcript(text, language, 0.97, 3.0, (Segment(text, 0.0, 3.0, words),))


#: Whisper base writes Mandarin in Traditional characters, whoever listens.
AS_WHISPER_WRITES = heard(
    [("一個", 0.9), ("長頭髮", 0.9), ("的", 0.9), ("女孩", 0.9), ("在", 0.9), ("雨中", 0.9), ("撐著", 0.9), ("紅傘", 0.9)], "zh"
)
SIMPLIFIED = "“一个长头发的女孩在雨中撑着红伞”"
TRADITIONAL = "“一個長頭髮的女孩在雨中撐著紅傘”"


async def choose_language(h: Harness, user: str, language: str) -> None:
    """``user`` picks their language in /settings."""
    await h.press(user, Button("", cards.SET_LANGUAGE, cards.NO_REQUEST, language))


@pytest.mark.parametrize(
    ("locale", "setting", "script", "shown"),
    [
        ("zh-CN", None, "zh-Hans", SIMPLIFIED),
        ("zh-TW", None, "zh-Hant", TRADITIONAL),
        ("zh-Hant", None, "zh-Hant", TRADITIONAL),
        ("en-US", "zh", "zh-Hans", SIMPLIFIED),
        ("zh-TW", "zh", "zh-Hans", SIMPLIFIED),
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
    await h.press("wai", button(card, cards.RETRY), ref)
    await h.press("wai", button(h.messenger.calls[-1].reply, cards.RETRY_AS, "yue"))
    _, card = h.messenger.last("card")
    assert engine.scripts == ["zh-Hans", "zh-Hant"]
    assert "長頭髮" in card.text and "紅傘" in card.text


async def test_unsure_marks_are_the_engines_verdict(sqlite_url, make_harness):
    """Whisper was fairly sure (0.7) of 膜 after 白; a lone character that is no word there: the engine marks it, so does the card."""
    white_film = heard([("一只", 0.9), ("白", 0.9), ("膜", 0.7), ("在", 0.9), ("屋顶", 0.9), ("上", 0.9)], "zh")
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=white_film, review=True))
    h.locales["li"] = "zh-CN"
    await h.voice("li", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[1:3] == ["“一只白[膜]在屋顶上”", "[方括号] 里是我不太确定的词。"]
