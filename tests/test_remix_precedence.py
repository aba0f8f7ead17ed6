"""Words asked for win over a photo they reply to: after Remix (or Edit), a voice note or text replying to a photo
is the answer, not a description to draw keeping the photo's composition (Telegram's fake Bot API, the harness)."""

from __future__ import annotations

from typing import Any

from db.enums import ImageRole, RequestKind
from handlers.actions import Action
from handlers.events import PhotoMessage, VoiceMessage, fetched
from handlers.i18n import t
from tests.support.conversation import button
from tests.support.fake_telegram import FakeTelegram
from tests.test_control_chat import control_bot, photo_jpeg, send_photo  # noqa: F401  # control_bot: the fixture
from tests.test_telegram import RunningBot, anime_card, data_of, delivered_photos, with_button

KEEPS = t("card.keeps", "en")


async def picture_to_remix(server: FakeTelegram) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Alice sends a photo (restyled), then draws a picture and presses its Remix: her, the chat, the photo and the ask."""
    alice, chat, photo_message = await send_photo(server, photo_jpeg(), "")
    await server.wait_for(lambda: delivered_photos(server))
    card = await anime_card(server, chat, alice, "a fox under the moon")
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 2 or None)
    picture = next(m for m in reversed(server.sent(chat["id"])) if "photo" in m and data_of(m, Action.REMIX))
    await server.push(server.press(alice, picture, data_of(picture, Action.REMIX)))
    asked = await server.wait_for(
        lambda: next((m for m in server.sent(chat["id"]) if m.get("text", "").startswith(t("remix.prompt", "en"))), None)
    )
    return alice, chat, photo_message, asked


async def test_a_voice_note_replying_to_a_photo_answers_a_pending_remix(
    control_bot: RunningBot, english_voice_notes: dict[str, Any]  # noqa: F811
) -> None:
    server = control_bot.server
    alice, chat, photo_message, asked = await picture_to_remix(server)
    voice = server.add_file(english_voice_notes["ogg"].path.read_bytes()) | {"duration": 7, "mime_type": "audio/ogg"}
    await server.push(server.message(chat, alice, voice=voice, reply_to=photo_message))
    card = await server.wait_for(with_button(server, chat["id"], Action.REMIX_STRENGTH, after=asked["message_id"]))
    assert "blue hair" in card["text"].lower() and "Remix of your picture: Subtle" in card["text"]
    assert KEEPS not in card["text"], "not a card that keeps the photo's composition"
    await server.push(server.press(alice, card, data_of(card, Action.CONFIRM)))
    await server.wait_for(lambda: len(delivered_photos(server)) == 3 or None)
    await control_bot.conversation.wait_idle()
    assert "blue hair" in delivered_photos(server)[-1].params["caption"].lower()


async def test_text_replying_to_a_photo_answers_a_pending_remix(control_bot: RunningBot) -> None:  # noqa: F811
    server = control_bot.server
    alice, chat, photo_message, asked = await picture_to_remix(server)
    await server.push(server.message(chat, alice, text="a fox in the snow", reply_to=photo_message))
    card = await server.wait_for(with_button(server, chat["id"], Action.REMIX_STRENGTH, after=asked["message_id"]))
    assert "a fox in the snow" in card["text"] and "Remix of your picture: Subtle" in card["text"]
    assert KEEPS not in card["text"]
    await control_bot.conversation.wait_idle()

    # the remix was answered once: the next words replying to the photo keep its composition again
    await server.push(server.message(chat, alice, text="a robot in a field", reply_to=photo_message))
    card = await server.wait_for(lambda: next((m for m in server.sent(chat["id"]) if "a robot in a field" in m.get("text", "")), None))
    assert t("control.lineart", "en") in card["text"]
    await control_bot.conversation.wait_idle()


async def test_a_new_photo_with_a_caption_is_a_new_picture_even_while_a_remix_waits(control_bot: RunningBot) -> None:  # noqa: F811
    server = control_bot.server
    alice, chat, _, asked = await picture_to_remix(server)
    sizes = [server.add_file(photo_jpeg(), kind="photo", ext="jpg") | {"width": 96, "height": 64}]
    await server.push(server.message(chat, alice, photo=sizes, caption="a castle in the clouds"))
    card = await server.wait_for(lambda: next((m for m in server.sent(chat["id"]) if "a castle in the clouds" in m.get("text", "")), None))
    assert t("control.lineart", "en") in card["text"] and "Remix" not in card["text"]
    await server.push(server.message(chat, alice, text="a fox in the snow"))  # the remix still waits for its words
    card = await server.wait_for(with_button(server, chat["id"], Action.REMIX_STRENGTH, after=asked["message_id"]))
    assert "a fox in the snow" in card["text"] and "Remix of your picture: Subtle" in card["text"]
    await control_bot.conversation.wait_idle()


async def test_in_the_harness_a_voice_note_with_a_photo_answers_a_pending_remix(
    sqlite_url: str, local_engine: Any, make_harness: Any, english_voice_notes: dict[str, Any]
) -> None:
    h = await make_harness(sqlite_url, local_engine)
    await h.command("alice", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "alice")
    await h.press("alice", button(card, Action.CONFIRM), ref)
    await h.settle()
    await h.press("alice", button(h.messenger.images("alice")[-1].reply, Action.REMIX))
    audio = english_voice_notes["ogg"].path.read_bytes()
    await h.send(VoiceMessage(h.origin("alice"), fetched(audio), photo=fetched(photo_jpeg())))
    ref, remix = h.messenger.last("card", "alice")
    assert "blue hair" in remix.text.lower() and "Remix of your picture: Subtle" in remix.text and KEEPS not in remix.text
    record = await h.request(remix.request_id)
    assert record.kind is RequestKind.REMIX and record.image(ImageRole.CONTROL) is None and not record.control


async def test_in_the_harness_words_with_a_photo_answer_a_pending_remix_or_edit(
    sqlite_url: str, local_engine: Any, make_harness: Any
) -> None:
    h = await make_harness(sqlite_url, local_engine)
    await h.command("alice", "anime", "a fox under the moon")
    ref, card = h.messenger.last("card", "alice")
    await h.press("alice", button(card, Action.CONFIRM), ref)
    await h.settle()
    await h.press("alice", button(h.messenger.images("alice")[-1].reply, Action.REMIX))
    await h.send(PhotoMessage(h.origin("alice"), fetched(photo_jpeg()), "a castle in the clouds"))  # a new photo: a new picture
    _, composed = h.messenger.last("card", "alice")
    assert "a castle in the clouds" in composed.text and KEEPS in composed.text and "Remix" not in composed.text
    await h.send(PhotoMessage(h.origin("alice"), fetched(photo_jpeg()), "a fox in the snow", replying=True))
    _, remix = h.messenger.last("card", "alice")
    assert "a fox in the snow" in remix.text and "Remix of your picture: Subtle" in remix.text and KEEPS not in remix.text

    await h.command("alice", "anime", "a castle on a hill")
    ref, card = h.messenger.last("card", "alice")
    await h.press("alice", button(card, Action.EDIT), ref)
    await h.send(PhotoMessage(h.origin("alice"), fetched(photo_jpeg()), "a castle by the sea", replying=True))
    _, edited = h.messenger.last("card", "alice")
    assert edited.request_id == card.request_id and "a castle by the sea" in edited.text and KEEPS not in edited.text
    record = await h.request(card.request_id)
    assert record.image(ImageRole.CONTROL) is None
