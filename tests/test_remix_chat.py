"""Remix and the picture's shape in the chat (the conversation harness, the real tiny engine and database).

What the user sees: Remix asks for new words; a voice note or typed text opens
a remix card with those words and the strength choice; the remixed picture is
drawn over the first one (its size, seed and style); a spoken "landscape" and
the card's shape buttons pick the picture's shape; Reroll keeps it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from db import ImageRole, RequestKind, RequestState
from handlers.actions import Action
from handlers.i18n import t
from tests.support.conversation import button
from tests.support.speech import _CODECS, _ffmpeg, _run

S = RequestState


def _spoken(directory: Path, text: str) -> bytes:
    """``text`` said by espeak-ng, as a Telegram-style Opus voice note."""
    source, note = directory / "said.wav", directory / "said.ogg"
    _run("espeak-ng", "-v", "en-us", "-s", "140", "-w", str(source), text)
    _ffmpeg("-i", str(source), *_CODECS["ogg"], str(note))
    return note.read_bytes()


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


async def _delivered(h, user: str, text: str):  # type: ignore[no-untyped-def]
    await h.command(user, "anime", text)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    await h.settle()
    picture = h.messenger.images(user)[-1].reply
    return picture, await h.request(card.request_id)


async def test_remix_a_picture_with_typed_words_and_a_strength(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    picture, first = await _delivered(h, "alice", "a girl with blue hair")
    assert {b.action for row in picture.buttons for b in row} >= {Action.REMIX}
    await h.press("alice", button(picture, Action.REMIX))
    ask = h.messenger.calls[-1].reply
    assert ask.kind == "edit_prompt" and ask.text == t("remix.prompt", "en") and ask.prefill == "a girl with blue hair"

    await h.text("alice", "a girl with red hair under the moon")
    ref, card = h.messenger.last("card", "alice")
    assert "red hair" in card.text and "Remix of your picture: Subtle" in card.text
    strength = [b for row in card.buttons for b in row if b.action is Action.REMIX_STRENGTH]
    assert [b.label for b in strength] == [t("button.on", "en", label="Subtle"), "Strong"]
    assert not any(b.action is Action.ASPECT for row in card.buttons for b in row), "a remix keeps its picture's shape"
    await h.press("alice", button(card, Action.REMIX_STRENGTH, "strong"), ref)
    card = h.messenger.messages[ref]
    assert "Remix of your picture: Strong" in card.text
    record = await h.request(card.request_id)
    assert record.kind is RequestKind.REMIX and record.parent_id == first.id and record.strength == 0.65
    assert record.seed == first.seed and record.style == first.style

    await h.press("alice", button(card, Action.CONFIRM), ref)
    await h.settle()
    remixed = h.messenger.images("alice")[-1].reply
    record = await h.request(card.request_id)
    assert record.state is S.DELIVERED and "red hair" in remixed.text
    assert _size(remixed.image_png) == _size(picture.image_png)
    base = record.image(ImageRole.BASE)
    assert base is not None and base.path.read_bytes() != first.image(ImageRole.BASE).path.read_bytes()


async def test_remix_with_a_voice_note_and_a_refused_description(sqlite_url, local_engine, make_harness, tmp_path):
    h = await make_harness(sqlite_url, local_engine)
    picture, first = await _delivered(h, "bob", "a cat in a garden")
    await h.press("bob", button(picture, Action.REMIX))
    await h.voice("bob", _spoken(tmp_path, "A black dog in the snow."))
    ref, card = h.messenger.last("card", "bob")
    assert "dog" in card.text.lower() and "Remix of your picture: Subtle" in card.text
    record = await h.request(card.request_id)
    assert record.kind is RequestKind.REMIX and record.parent_id == first.id and record.transcript.words
    await h.press("bob", button(card, Action.CONFIRM), ref)
    await h.settle()
    assert (await h.request(card.request_id)).state is S.DELIVERED
    # The next text is no remix any more: one description per press.
    mark = h.messenger.mark()
    await h.text("bob", "a horse")
    assert [c.shown for c in h.messenger.since(mark)] == [t("text.hint", "en")]


async def test_the_shape_from_a_typed_word_and_from_the_card(sqlite_url, local_engine, make_harness):
    h = await make_harness(sqlite_url, local_engine)
    await h.command("carol", "anime", "a castle on a hill, landscape")
    ref, card = h.messenger.last("card", "carol")
    assert "Shape: ▭ Landscape" in card.text and "landscape" not in card.text.split("\n")[1].lower().replace("a castle on a hill, landscape", "")
    record = await h.request(card.request_id)
    assert (record.width, record.height) == (768, 512) and "landscape" not in record.prompt_positive
    await h.press("carol", button(card, Action.ASPECT, "portrait"), ref)
    card = h.messenger.messages[ref]
    assert "Shape: ▯ Portrait" in card.text
    assert t("button.on", "en", label="▯ Portrait") in [b.label for row in card.buttons for b in row]
    await h.press("carol", button(card, Action.CONFIRM), ref)
    await h.settle()
    picture = h.messenger.images("carol")[-1].reply
    assert _size(picture.image_png) == (512, 768)
    await h.press("carol", button(picture, Action.REROLL))
    await h.settle()
    assert _size(h.messenger.images("carol")[-1].reply.image_png) == (512, 768), "Reroll keeps the shape"


@pytest.mark.parametrize("words", ["横版的猫", "一隻貓，豎版"])
async def test_the_shape_from_chinese_words(sqlite_url, local_engine, make_harness, words):
    h = await make_harness(sqlite_url, local_engine)
    await h.command("dan", "anime", words)
    _, card = h.messenger.last("card", "dan")
    record = await h.request(card.request_id)
    assert (record.width, record.height) == ((768, 512) if "横" in words else (512, 768))
    assert "cat" in record.prompt_positive and "版" not in record.prompt_positive


async def test_a_spoken_landscape_picks_the_shape(sqlite_url, local_engine, make_harness, tmp_path):
    h = await make_harness(sqlite_url, local_engine)
    await h.voice("erin", _spoken(tmp_path, "A red fox in the forest, landscape."))
    _, card = h.messenger.last("card", "erin")
    assert "fox" in card.text.lower() and "Shape: ▭ Landscape" in card.text
    record = await h.request(card.request_id)
    assert (record.width, record.height) == (768, 512) and "landscape" not in record.prompt_positive
