"""A voice note heard doubtfully — an unexpected language, or low confidence — is not one keypress from drawing.

Through the conversation: the card names the language (never its code), puts "Heard wrong language" and Edit
first, and Draw asks once more before anything is queued; confirmation off does not skip such a card.
"""

from __future__ import annotations

from db import RequestState as S
from engine.api import Segment, Transcript, Word
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine


def heard(text: str, language: str, confidence: float) -> Transcript:
    words = tuple(Word(w, 0.0, 0.0, 0.6) for w in text.split())
    return Transcript(text, language, confidence, 3.0, (Segment(text, 0.0, 3.0, words),))


def labels(reply) -> list[list[str]]:
    return [[b.label for b in row] for row in reply.buttons]


async def test_thai_at_31_percent_asks_before_drawing(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=heard("enjoy", "th", 0.31))
    h = await make_harness(sqlite_url, engine)
    await h.voice("amy", b"ogg")
    ref, card = h.messenger.last("card")
    assert card.text.splitlines()[0] == "I heard (Thai, 31% sure):"
    assert "(th" not in card.text
    assert card.text.splitlines()[-1] == (
        "I'm not sure I heard you right — please check the words. "
        "Wrong language? Press 🔁 Heard wrong language. Wrong words? Press ✏️ Edit."
    )
    assert labels(card)[0] == ["🔁 Heard wrong language", "✏️ Edit"]  # fixing it comes first
    assert labels(card)[1][0] == "✅ Draw it"

    await h.press("amy", button(card, Action.CONFIRM), ref)
    assert engine.specs == []  # asked once more, nothing queued
    ref_again, asking = h.messenger.last("card")
    assert ref_again == ref
    assert asking.text.splitlines()[-1] == "I'm only 31% sure I heard you right. Draw it anyway?"
    assert labels(asking)[0] == ["✅ Yes, draw it", "✏️ Edit"]

    await h.press("amy", button(asking, Action.CONFIRM), ref)
    assert len(engine.specs) == 1
    assert (await h.request(card.request_id)).state is S.QUEUED


async def test_a_sure_hearing_in_an_expected_language_draws_at_one_press(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=heard("a girl with blue hair", "en", 0.97))
    h = await make_harness(sqlite_url, engine)
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert labels(card)[0] == ["✅ Draw it", "✏️ Edit"]
    assert card.text.splitlines()[-1] == "Shall I draw it?"
    await h.press("amy", button(card, Action.CONFIRM))
    assert len(engine.specs) == 1


async def test_low_confidence_in_mandarin_is_doubtful_too_and_names_in_chinese(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=heard("一个 女孩", "zh", 0.42))
    h = await make_harness(sqlite_url, engine)
    h.locales["li"] = "zh-TW"
    await h.voice("li", b"ogg")
    _, card = h.messenger.last("card")
    assert labels(card)[0][:2] == ["🔁 語言識別錯了", "✏️ 修改"]


async def test_a_language_only_whisper_spells_so_is_named(sqlite_url, make_harness):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("aku seneng", "jw", 0.6)))
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert card.text.splitlines()[0] == "I heard (Javanese, 60% sure):"


async def test_confirmation_off_still_shows_a_doubtful_card(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=heard("enjoy", "th", 0.31))
    h = await make_harness(sqlite_url, engine)
    user = await h.repository.get_or_create_user("telegram", "amy", "Amy")
    await h.repository.update_user_settings(user, confirm_before_generate=False)
    await h.voice("amy", b"ogg")
    _, card = h.messenger.last("card")
    assert engine.specs == [] and (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION
