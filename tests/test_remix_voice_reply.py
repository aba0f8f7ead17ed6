"""A remix's new words said in a voice note get their card read back, as any voice note's (voice replies ``voice``)."""

from __future__ import annotations

from typing import Any

from handlers.actions import Action
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine
from tests.test_voice_replies import TwoVoices, heard, narrator, spoken, voices  # noqa: F401  # narrator, voices: fixtures


async def test_a_spoken_remix_gets_its_card_read_back(sqlite_url: str, make_harness: Any, narrator: TwoVoices) -> None:  # noqa: F811
    engine = ScriptedEngine(transcript=heard("a fox in the snow", "en"))
    h = await make_harness(sqlite_url, engine, narrator=narrator)
    await h.command("amy", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "amy")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    engine.finish(card.request_id)
    await h.settle()
    await h.press("amy", button(h.messenger.images("amy")[-1].reply, Action.REMIX))
    await h.voice("amy", b"OggS remix words")
    await spoken(h)
    _, remix = h.messenger.last("card", "amy")
    assert "Remix of your picture: Subtle" in remix.text
    [note] = h.messenger.voices("amy")
    assert note.request_id == remix.request_id and note.text == "I heard: a fox in the snow. Shall I draw it?"
