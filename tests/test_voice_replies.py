"""Voice replies through the conversation: the card first, then a spoken line in the language the user spoke.

The voices are the tiny fake VITS graphs of ``tests/support/fake_vits.py``
run by the real sherpa-onnx (one English, one Chinese: :class:`TwoVoices`
hands each language to the voice that can read it); the engine is scripted.
The adapters' side: ``test_telegram.py`` (sendVoice), ``test_discord.py``
(an .ogg attachment), ``test_web_browser.py`` (the studio's player).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import av
import pytest

from db import ChatKind
from engine.api import Segment, Transcript, Word
from engine.speech.tts import Narrator, TtsConfig
from engine.speech.tts_models import VoiceModelUnavailableError
from handlers.actions import Action
from handlers.chat_settings import VOICE_CHOICES
from handlers.conversation.voice import spoken_in
from handlers.events import VoiceMessage, fetched
from tests.support import fake_vits
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import RED_SAN, ScriptedEngine

GROUP = "g1"


class TwoVoices:
    """A narrator of two real (fake-VITS) voices: English for ``en``, Chinese for the rest; records what it was asked."""

    def __init__(self, english: Path, chinese: Path) -> None:
        self.english = Narrator(TtsConfig(model=str(english), threads=1))
        self.chinese = Narrator(TtsConfig(model=str(chinese), threads=1))
        self.asked: list[tuple[str, str]] = []

    def _voice(self, language: str) -> Narrator:
        return self.english if language == "en" else self.chinese

    async def voice_note_async(self, text: str, language: str) -> bytes:
        self.asked.append((text, language))
        return await self._voice(language).voice_note_async(text, language)

    def phrase(self, text: str, language: str) -> bytes:
        self.asked.append((text, language))
        return self._voice(language).phrase(text, language)


class BrokenVoice:
    """A narrator whose voice fails: ``error`` on every call."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def voice_note_async(self, text: str, language: str) -> bytes:
        self.calls += 1
        raise self.error

    def phrase(self, text: str, language: str) -> bytes:
        self.calls += 1
        raise self.error


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return fake_vits.build(tmp_path_factory.mktemp("en")), fake_vits.build(tmp_path_factory.mktemp("zh"), language="Chinese")


@pytest.fixture
def narrator(voices: tuple[Path, Path]) -> TwoVoices:
    return TwoVoices(*voices)


def heard(text: str, language: str, confidence: float = 0.97) -> Transcript:
    words = tuple(Word(w, 0.0, 0.0, 0.9) for w in text.split())
    return Transcript(text, language, confidence, 3.0, (Segment(text, 0.0, 3.0, words),), text if language == "en" else None)


def seconds(note: bytes) -> float:
    """How long an OGG/Opus voice note lasts, as PyAV decodes it (and that it is Opus)."""
    with av.open(io.BytesIO(note)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


async def voice_note(h: Harness, user: str = "amy", *, group: str | None = None) -> None:
    """``user`` sends a voice note (in ``group``); every reply, spoken ones too, has been sent on return."""
    await h.send(VoiceMessage(h.origin(user, group=group), fetched(b"ogg")))
    await spoken(h)


async def spoken(h: Harness) -> None:
    """Wait until every voice reply being made has been sent (jobs the scripted engine holds keep waiting)."""
    if h.conversation.context.voice is not None:
        await h.conversation.context.voice.wait_idle()


async def test_a_voice_note_gets_its_card_then_a_spoken_reply(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=narrator)
    await voice_note(h)
    ops = [c.op for c in h.messenger.calls]
    assert ops == ["send", "edit", "voice"], "a status, the card in its place, then the voice"
    assert h.messenger.calls[1].reply.kind == "card"
    [note] = h.messenger.voices("amy")
    assert note.text == "I heard: hello world. Shall I draw it?"
    assert note.seconds == pytest.approx(seconds(note.ogg), abs=0.03) and note.seconds > 0
    _, card = h.messenger.last("card")
    assert note.request_id == card.request_id and note.file_name == f"voice2anime-{card.request_id[:8]}-voice"


async def test_the_reply_is_in_the_language_spoken_with_corrections_said(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=RED_SAN, review=True), narrator=narrator)
    await voice_note(h)  # an English UI: the card is English, the voice Chinese, in the script of the words
    _, card = h.messenger.last("card")
    assert card.text.startswith("I heard (Mandarin, 97% sure):\n“一個長頭髮的女孩在雨中撐著紅[傘]”")
    [note] = h.messenger.voices("amy")
    assert note.text == "我聽到的是：一個長頭髮的女孩在雨中撐著紅傘。我把“散”改成了“傘”。要畫嗎？"
    assert narrator.asked == [(note.text, "zh-Hans")]
    assert seconds(note.ogg) > 0


async def test_a_traditional_reader_hears_mandarin_and_cantonese_asks_for_cantonese(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("你好世界", "yue")), narrator=narrator)
    h.locales["li"] = "zh-HK"
    await voice_note(h, "li")
    [note] = h.messenger.voices("li")
    assert note.text == "我聽到的是：你好世界。要畫嗎？"
    assert narrator.asked[-1][1] == "yue"  # the Narrator reads it in Mandarin unless TTS_MODEL_YUE is set
    assert spoken_in("ja", "en") is None, "no voice speaks Japanese: text only"


async def test_confirmation_off_says_it_is_drawing(sqlite_url, make_harness, narrator):
    engine = ScriptedEngine(transcript=heard("hello world", "en"))
    h = await make_harness(sqlite_url, engine, narrator=narrator)
    uid = await h.repository.get_or_create_user("telegram", "amy", "Amy")
    await h.repository.update_user_settings(uid, confirm_before_generate=False)
    await voice_note(h)
    assert [n.text for n in h.messenger.voices("amy")] == ["I heard: hello world. I'm drawing it now."]
    assert len(engine.specs) == 1


async def test_off_in_settings_sends_none_and_the_picker_changes_it(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=narrator)
    await h.command("amy", "settings")
    ref, card = h.messenger.calls[-1].ref, h.messenger.calls[-1].reply
    assert "Voice replies: after voice notes (default)" in card.text
    await h.press("amy", button(card, Action.VOICE_REPLIES), ref)
    picker = h.messenger.calls[-1].reply
    assert [b.label for row in picker.buttons for b in row] == ["off", "✅ after voice notes", "always"]
    await h.press("amy", button(picker, Action.VOICE_REPLIES, "off"), h.messenger.calls[-1].ref)
    assert "Voice replies: off" in h.messenger.last("text", "amy")[1].text

    await voice_note(h)
    assert h.messenger.last("card", "amy") and h.messenger.voices() == []
    assert [c.value for c in VOICE_CHOICES] == ["off", "voice", "always"]


def test_the_voice_buttons_have_codes_of_their_own():
    assert len(Action.__members__) == len(set(Action)), "no action is another's alias"
    assert {Action.VOICE_REPLIES.value, Action.CHAT_VOICE.value} == {"vc", "cv"}


async def test_the_operators_off_means_none_and_no_setting(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=narrator, voice_replies="off")
    await voice_note(h)
    await h.command("amy", "settings")
    card = h.messenger.calls[-1].reply
    assert "Voice replies" not in card.text
    assert Action.VOICE_REPLIES not in {b.action for row in card.buttons for b in row}
    assert h.messenger.voices() == [] and narrator.asked == []


async def test_a_group_admin_turns_them_off_for_everyone_there(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=narrator)
    h.messenger.admins.add("bob")
    await h.command("bob", "settings", group=GROUP)
    ref, card = h.messenger.calls[-1].ref, h.messenger.calls[-1].reply
    assert "Voice replies here: as each member chose" in card.text
    await h.press("bob", button(card, Action.CHAT_VOICE), ref, group=GROUP)
    chat_id = await h.repository.get_or_create_chat("telegram", GROUP, ChatKind.GROUP)
    assert (await h.repository.get_chat_settings(chat_id)).voice_replies is False

    await voice_note(h, "amy", group=GROUP)
    assert h.messenger.voices() == []
    await voice_note(h, "amy")  # her own chat: her own setting
    assert len(h.messenger.voices("amy")) == 1


async def test_always_reads_typed_cards_and_says_when_the_picture_is_ready(sqlite_url, make_harness, narrator):
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, narrator=narrator, voice_replies="always")
    await h.command("amy", "anime", "hello world")
    await spoken(h)
    ref, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    engine.finish(card.request_id)
    await h.settle()
    assert [n.text for n in h.messenger.voices("amy")] == [
        "You asked for: hello world. Shall I draw it?",
        "Here is your picture, in the Portrait (face paint v2) style.",
    ]
    calls = h.messenger.calls
    picture = next(i for i, c in enumerate(calls) if c.reply and c.reply.kind == "image")
    assert [c.op for c in calls[picture:]].count("voice") == 1, "the picture, then its line"


async def test_failing_speech_leaves_the_text_alone(sqlite_url, make_harness, caplog):
    broken = BrokenVoice(RuntimeError("onnxruntime went away"))
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=broken)
    with caplog.at_level(logging.WARNING):
        await voice_note(h)
    assert h.messenger.last("card", "amy") and h.messenger.voices() == []
    lines = [r for r in caplog.records if "voice" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        f"request {h.messenger.last('card')[1].request_id}: no voice reply, text only (RuntimeError: onnxruntime went away)"
    ]
    assert not any(r.exc_info for r in lines)


async def test_a_missing_voice_is_told_to_the_operator_once(sqlite_url, make_harness, caplog):
    broken = BrokenVoice(VoiceModelUnavailableError("put the voice at /models/tts/x (unit test)"))
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=broken)
    with caplog.at_level(logging.WARNING):
        await voice_note(h)
        await voice_note(h)
    assert broken.calls == 2 and h.messenger.voices() == []
    told = [r.getMessage() for r in caplog.records if "unit test" in r.getMessage()]
    assert told == ["the voice model is not available: put the voice at /models/tts/x (unit test)"]


async def test_a_chat_that_refuses_voice_messages_gets_text_from_then_on(sqlite_url, make_harness, narrator):
    h = await make_harness(sqlite_url, ScriptedEngine(transcript=heard("hello world", "en")), narrator=narrator)
    h.messenger.no_voice.add("amy")
    await voice_note(h)
    await voice_note(h)
    assert [c.op for c in h.messenger.calls if c.op.startswith("voice")] == ["voice-refused"], "tried once, then remembered"
    assert len(narrator.asked) == 1
