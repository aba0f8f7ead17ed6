"""Creative control as a user goes through it (the conversation harness): the shape a picture keeps through
Variations, V1..V4, Reroll and a remix's Edit, Retry of a spoken remix that waited for the speech model,
/anime words after Remix, a photo composition card's shape, and a dropped PNG waiting for its check."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from db import RequestKind, RequestState
from db.enums import variation_roles
from engine.api import Transcript
from engine.errors import SpeechModelUnavailableError
from engine.image.imageio import png_bytes
from engine.image.png_info import PictureParameters
from engine.policy.levels import Level
from engine.policy.text import ChatPolicy
from handlers.actions import Action
from handlers.events import PhotoMessage, fetched
from handlers.i18n import t
from handlers.replies import Button
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, whisper_wrote

S = RequestState
LANDSCAPE = (768, 512)


def size(png: bytes | None) -> tuple[int, int]:
    assert png is not None
    return Image.open(io.BytesIO(png)).size


async def drawn(h: Any, user: str, text: str) -> Any:
    """``user`` types ``/anime text`` and presses Draw: the delivered picture's reply."""
    await h.command(user, "anime", text)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    await h.settle()
    return h.messenger.images(user)[-1].reply


async def test_variations_a_kept_one_and_its_reroll_keep_the_pictures_shape(sqlite_url: str, local_engine: Any, make_harness: Any) -> None:
    h = await make_harness(sqlite_url, local_engine)
    picture = await drawn(h, "alice", "a castle on a hill, landscape")
    assert size(picture.image_png) == LANDSCAPE

    await h.press("alice", button(picture, Action.VARIATIONS))
    await h.settle()
    grid = h.messenger.images("alice")[-1].reply
    assert t("variations.delivered", "en", style="", first="", last="").split("·")[0] in grid.text
    record = await h.request(grid.request_id)
    assert record.kind is RequestKind.VARIATIONS and (record.width, record.height) == LANDSCAPE
    tiles = [image for number in range(1, 5) for image in record.images if image.role in variation_roles(number)]
    assert len(tiles) == 8 and all(size(tile.path.read_bytes()) == LANDSCAPE for tile in tiles), "four landscape pictures"

    await h.press("alice", button(grid, Action.KEEP, "2"))
    await h.settle()
    kept = h.messenger.images("alice")[-1].reply
    assert size(kept.image_png) == LANDSCAPE and Action.REROLL in {b.action for row in kept.buttons for b in row}
    await h.press("alice", button(kept, Action.REROLL))
    await h.settle()
    assert size(h.messenger.images("alice")[-1].reply.image_png) == LANDSCAPE, "a Reroll of the kept one is landscape too"


async def test_a_shape_word_in_a_remixs_edit_keeps_the_pictures_shape(sqlite_url: str, local_engine: Any, make_harness: Any) -> None:
    h = await make_harness(sqlite_url, local_engine)
    picture = await drawn(h, "bob", "a cat in a garden, landscape")
    await h.press("bob", button(picture, Action.REMIX))
    await h.text("bob", "a cat in the snow")
    ref, card = h.messenger.last("card", "bob")
    await h.press("bob", button(card, Action.EDIT), ref)
    await h.text("bob", "a cat in the snow, portrait")
    ref, card = h.messenger.last("card", "bob")
    assert "portrait" in card.text and "Remix of your picture: Subtle" in card.text
    assert not any(b.action is Action.ASPECT for row in card.buttons for b in row)
    await h.press("bob", button(card, Action.CONFIRM), ref)
    await h.settle()
    remixed = h.messenger.images("bob")[-1].reply
    assert size(remixed.image_png) == LANDSCAPE
    await h.press("bob", button(remixed, Action.REROLL))
    await h.settle()
    assert size(h.messenger.images("bob")[-1].reply.image_png) == LANDSCAPE, "the remix's Reroll keeps the picture's shape"


class SpeechModelLater(ScriptedEngine):
    """The scripted engine whose speech model is missing until :attr:`installed`."""

    installed: bool = False

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        if not self.installed:
            raise SpeechModelUnavailableError("put the Whisper model in /models/whisper")
        return await super().transcribe(audio, language=language, script=script)


async def test_retry_of_a_spoken_remix_that_waited_for_the_speech_model_listens_again(
    sqlite_url: str, make_harness: Any, tmp_path: Path
) -> None:
    engine = SpeechModelLater(transcript=whisper_wrote([("a", 0.9), ("fox", 0.9), ("in", 0.9), ("the", 0.9), ("snow", 0.9)], "en"))
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "amy")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    engine.finish(card.request_id)
    await h.settle()
    picture = h.messenger.images("amy")[-1].reply
    await h.press("amy", button(picture, Action.REMIX))

    await h.voice("amy", b"OggS voice note")
    ref, waiting = h.messenger.last("card", "amy")
    assert waiting.text == t("model.unavailable.speech", "en")
    engine.installed = True
    await h.press("amy", button(waiting, Action.RETRY_MISSING), ref)
    ref_after, remix = h.messenger.last("card", "amy")
    assert ref_after == ref and "a fox in the snow" in remix.text and "Remix of your picture: Subtle" in remix.text
    record = await h.request(remix.request_id)
    assert record.kind is RequestKind.REMIX and record.state is S.AWAITING_CONFIRMATION and record.error_key is None
    assert len(engine.specs) == 1, "nothing drawn before the words were heard"


async def test_anime_words_after_remix_are_the_remixs_words(sqlite_url: str, make_harness: Any) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "amy")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    engine.finish(card.request_id)
    await h.settle()
    await h.press("amy", button(h.messenger.images("amy")[-1].reply, Action.REMIX))
    await h.command("amy", "anime", "a fox in the snow")
    _, remix = h.messenger.last("card", "amy")
    assert "a fox in the snow" in remix.text and "Remix of your picture: Subtle" in remix.text
    assert (await h.request(remix.request_id)).kind is RequestKind.REMIX

    await h.command("amy", "anime", "a castle on a hill")  # asked once: the next words are a new picture
    _, card = h.messenger.last("card", "amy")
    assert "a castle on a hill" in card.text and "Remix of your picture" not in card.text


async def test_a_card_keeping_a_photos_composition_offers_no_shape_it_would_not_draw(sqlite_url: str, make_harness: Any) -> None:
    h = await make_harness(sqlite_url, ScriptedEngine())
    photo = io.BytesIO()
    Image.new("RGB", (96, 64), (90, 160, 220)).save(photo, "PNG")
    await h.send(PhotoMessage(h.origin("amy"), fetched(photo.getvalue()), "a robot in a field, portrait"))
    ref, card = h.messenger.last("card", "amy")
    assert t("card.field", "en", label=t("card.keeps", "en"), value=t("control.lineart", "en")) in card.text
    assert t("card.shape", "en") not in card.text, "drawn in the photo's shape: no shape line"
    assert not any(b.action is Action.ASPECT for row in card.buttons for b in row), "no shape buttons that would do nothing"
    await h.press("amy", Button("", Action.ASPECT, card.request_id, "landscape"), ref)  # an old client's button
    await h.press("amy", button(card, Action.EDIT), ref)
    await h.text("amy", "a robot in a field, landscape")
    _, card = h.messenger.last("card", "amy")
    record = await h.request(card.request_id)
    assert t("card.shape", "en") not in card.text and (record.width, record.height) == (None, None)


def dropped_png() -> bytes:
    """A PNG carrying the parameters chunk of a drawing, as voice2anime writes it."""
    drawn = PictureParameters(
        prompt="a red fox, anime style", negative="lowres", steps=3, scheduler="dpmpp", guidance=1.5, seed=1234,
        width=64, height=96, model="tiny", style="paprika", transcript="a red fox", language="en",
    )
    return png_bytes(Image.new("RGB", (64, 96), (200, 90, 40)), drawn)


async def test_a_dropped_png_waits_for_its_check_without_holding_the_chat_and_cancel_ends_it(
    sqlite_url: str, make_harness: Any
) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.photo("amy", dropped_png())  # returns while the check's job waits in the queue
    (spec,) = engine.specs
    assert spec.kind == "photo", "checked as any photo"
    ref, status = h.messenger.last("progress", "amy")
    assert status.text == t("queued.waiting", "en")
    await h.command("amy", "cancel")
    await h.settle()
    assert h.messenger.messages[ref].text == t("cancelled", "en")
    record = await h.request(spec.job_id)
    assert record.state is S.CANCELLED and not record.images

    await h.photo("amy", dropped_png())
    engine.finish(engine.specs[-1].job_id)
    await h.settle()
    ref, offer = h.messenger.last("text", "amy")
    assert t("dropped.offer", "en") in offer.text and [b.action for row in offer.buttons for b in row] == [Action.DRAW_AGAIN, Action.REMIX]


async def test_a_dropped_pngs_words_are_prefilled_by_remix_and_listed_by_history(sqlite_url: str, make_harness: Any) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.photo("amy", dropped_png())
    engine.finish(engine.specs[-1].job_id)
    await h.settle()
    _, offer = h.messenger.last("text", "amy")
    await h.press("amy", button(offer, Action.REMIX))
    _, ask = h.messenger.last("edit_prompt", "amy")
    assert ask.text == t("remix.prompt", "en") and ask.prefill == "a red fox"
    await h.command("amy", "history")
    _, listed = h.messenger.last("text", "amy")
    assert "“a red fox”" in listed.text and t("history.photo", "en") not in listed.text


async def test_where_pictures_are_not_checked_a_dropped_png_is_offered_at_once(sqlite_url: str, make_harness: Any) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine, policy=ChatPolicy(level=Level.OFF, off_chats=frozenset({"chat-amy"})))
    await h.photo("amy", dropped_png())
    _, offer = h.messenger.last("text", "amy")
    assert t("dropped.offer", "en") in offer.text and not engine.specs, "offered without a job: the chat checks no pictures"


async def test_an_edit_left_unanswered_before_draw_does_not_swallow_a_photo_with_words(sqlite_url: str, make_harness: Any) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "amy")
    await h.press("amy", button(card, Action.EDIT), ref)
    await h.press("amy", button(card, Action.CONFIRM), ref)  # drawn as it was: the Edit was not answered
    engine.finish(card.request_id)
    await h.settle()
    photo = io.BytesIO()
    Image.new("RGB", (96, 64), (90, 160, 220)).save(photo, "PNG")
    await h.send(PhotoMessage(h.origin("amy"), fetched(photo.getvalue()), "a robot in a field"))
    _, composed = h.messenger.last("card", "amy")
    assert composed.request_id != card.request_id and "a robot in a field" in composed.text
    assert t("card.field", "en", label=t("card.keeps", "en"), value=t("control.lineart", "en")) in composed.text
