"""The Telegram adapter end to end over real HTTP, plus unit tests of its translation and rendering.

The real python-telegram-bot client talks to the fake Bot API server of
``tests/support/fake_telegram.py``; behind the adapter run the real
``Conversation``, ``Repository`` (SQLite) and ``LocalJobQueue`` on the tiny
models (fixtures in ``tests/support/conversation.py``).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image
from telegram import ForceReply, InlineKeyboardMarkup, Message, User
from telegram.error import BadRequest

from bot.redact import REDACTED, TokenRedactingFilter
from bot.settings import Settings
from bot.telegram import TelegramAdapter
from bot.telegram_inbound import Attachment, from_message
from bot.telegram_render import TelegramMessenger, fits_as_photo, message_text, reply_markup
from db import ChatKind, Repository, create_database
from db.preferences import ChatOverrides
from engine.speech.tts import Narrator, TtsConfig
from handlers import cards
from handlers.actions import MAX_BUTTON_DATA, Action
from handlers.conversation import Conversation
from handlers.conversation.routes import COMMAND_NAMES
from handlers.events import Command, Event, Origin, Rejected, TextMessage
from handlers.i18n import t
from handlers.replies import Button, Reply
from tests.support import fake_vits
from tests.support.conversation import config
from tests.support.fake_telegram import BOT, TOKEN, FakeTelegram, group_chat, private_chat, user
from tests.support.scripted_engine import RED_SAN, ScriptedEngine, SpeechAndJobs, whisper_wrote

PNG = b"\x89PNG\r\n\x1a\n"
TEXT = "a girl with blue hair under cherry blossoms at night"
MENTION = f"@{BOT['username']}"


# --- harness --------------------------------------------------------------------------------


@dataclass
class RunningBot:
    """A started adapter + conversation against the fake server; ``events`` = what reached the conversation."""

    server: FakeTelegram
    adapter: TelegramAdapter
    conversation: Conversation
    events: list[Event] = field(default_factory=list)


@asynccontextmanager
async def telegram_bot(
    server: FakeTelegram, engine: SpeechAndJobs, url: str, data_dir: Path, *, narrator: Any = None, **settings: Any
) -> AsyncIterator[RunningBot]:
    """Build the adapter from settings (as ``voice2anime run`` does), start it, stop everything afterwards.

    ``narrator``: the voice of spoken replies (none by default).
    """
    database = create_database(url)
    adapter = TelegramAdapter.from_settings(
        Settings(
            telegram_bot_token=TOKEN, telegram_api_base_url=server.api_url, telegram_file_base_url=server.file_url, **settings
        )
    )
    conversation = Conversation(Repository(database, data_dir), engine, engine, adapter.messenger, config(), narrator=narrator)
    bot = RunningBot(server, adapter, conversation)

    async def on_event(event: Event) -> None:
        bot.events.append(event)
        await conversation.handle(event)

    await adapter.start(on_event)
    try:
        yield bot
    finally:
        await adapter.stop()
        await conversation.wait_idle()
        await database.dispose()


@pytest.fixture
async def bot(
    fake_telegram: FakeTelegram, local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The Telegram bot, polling the fake server."""
    async with telegram_bot(fake_telegram, local_engine, sqlite_url, tmp_path / "data") as running:
        yield running


def buttons(message: dict[str, Any]) -> list[str]:
    """The callback_data of a message's inline keyboard."""
    keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in keyboard for b in row]


def with_button(server: FakeTelegram, chat_id: int, action: str, after: int = 0) -> Any:
    """A ``check`` for :meth:`FakeTelegram.wait_for`: the newest bot message (id > ``after``) with an ``action`` button."""

    def check() -> dict[str, Any] | None:
        for message in reversed(server.sent(chat_id)):
            if message["message_id"] > after and any(d.startswith(f"{action}:") for d in buttons(message)):
                return message
        return None

    return check


def delivered_photos(server: FakeTelegram) -> list[Any]:
    """The sendPhoto calls of finished pictures (they carry follow-up buttons; a status photo carries Cancel)."""
    return [c for c in server.called("sendPhoto") if any(d.startswith(f"{Action.RESTYLE}:") for d in c.callback_data())]


def photo_message_id(server: FakeTelegram, chat_id: int) -> int:
    """The message id of the finished picture in ``chat_id`` (the photo with follow-up buttons)."""
    pictures = [m for m in server.sent(chat_id) if "photo" in m and f"{Action.RESTYLE}:" in str(m.get("reply_markup"))]
    return pictures[0]["message_id"]


def data_of(message: dict[str, Any], action: str) -> str:
    return next(d for d in buttons(message) if d.startswith(f"{action}:"))


async def anime_card(server: FakeTelegram, chat: dict[str, Any], sender: dict[str, Any], text: str = TEXT) -> dict[str, Any]:
    """Send ``/anime text`` and wait for the confirmation card."""
    await server.push(server.message(chat, sender, text=f"/anime {text}"))
    return await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))


def assert_callback_data_fits(server: FakeTelegram) -> None:
    sent = [d for c in server.calls for d in c.callback_data()]
    assert sent, "no inline keyboard was sent"
    assert all(len(d.encode()) <= MAX_BUTTON_DATA for d in sent)


# --- end to end -------------------------------------------------------------------------------


async def test_voice_note_to_picture(bot: RunningBot, english_voice_notes) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    voice = server.add_file(english_voice_notes["ogg"].path.read_bytes()) | {"duration": 7, "mime_type": "audio/ogg"}
    await server.push(server.message(chat, alice, voice=voice))

    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
    assert "girl with blue hair" in card["text"].splitlines()[1].lower(), "the transcript line keeps its spaces"
    assert "• Style: Portrait (face paint v2)" in card["text"] and t("card.question", "en") in card["text"]
    assert "anime style" not in card["text"], "the prompt hides behind Details"
    assert len(server.called("getFile", file_id=voice["file_id"])) == 1 and server.called("download")
    assert server.called("sendChatAction", action="typing")
    kept = {Action.KEEP_SAID} if t("button.keep_said", "en") in card["text"] else set()  # a word the engine corrected
    assert {d.split(":")[0] for d in buttons(card)} == {Action.CONFIRM, Action.EDIT, Action.RETRY, Action.STYLE, Action.DETAILS, Action.CANCEL, Action.ASPECT} | kept

    server.fail_next("editMessageText", 429, "Too Many Requests: retry after 1", retry_after=1)
    press = server.press(alice, card, data_of(card, Action.CONFIRM))
    await server.push(press)
    photo = await server.wait_for(lambda: delivered_photos(server))
    await bot.conversation.wait_idle()

    assert photo[0].files["photo"].startswith(PNG)
    assert "Style: " in photo[0].params["caption"]
    assert {d.split(":")[0] for d in photo[0].callback_data()} == {Action.RESTYLE, Action.REROLL, Action.BASE, Action.VARIATIONS, Action.UPSCALE, Action.REMIX}
    assert server.called("sendChatAction", action="upload_photo")
    assert len(server.called("answerCallbackQuery", callback_query_id=press["callback_query"]["id"])) == 1

    # the 429 was honoured: the same edit was retried after retry_after seconds
    edits = [c for c in server.calls if c.method == "editMessageText"]
    limited = next(c for c in edits if c.status == 429)
    retried = next(c for c in edits if c.ok and c.at > limited.at)
    assert retried.params == limited.params and retried.at - limited.at >= 1.0
    # the card became the status message: queued, drawing with percentages ...
    shown = [c.params["text"] for c in edits if c.ok and c.params["message_id"] == str(card["message_id"])]
    shown = shown[shown.index(t("queued.waiting", "en")) :]
    assert shown[:3] == [t("queued.waiting", "en"), t("queued", "en", position=1), t("generating", "en", percent=0)]
    # ... until the first preview: a text message cannot gain a photo, so the status was posted anew as one
    assert (chat["id"], card["message_id"]) in server.deleted
    (posted,) = [c for c in server.called("sendPhoto") if [d.split(":")[0] for d in c.callback_data()] == [Action.CANCEL]]
    assert posted.params["caption"].startswith("🖌 Drawing… ") and posted.files["photo"].startswith(b"\xff\xd8")
    status = next(m for m in server.sent(chat["id"]) if m.get("caption") == t("progress.done_sketch", "en"))
    assert status["message_id"] < photo_message_id(server, chat["id"]), "the status stays above the picture"
    # later previews replace the photo in place (editMessageMedia): the sketch, then text-only updates edit the caption
    media = server.called("editMessageMedia", message_id=str(status["message_id"]))
    assert media and all(json.loads(c.params["media"])["type"] == "photo" for c in media)
    assert json.loads(media[-1].params["media"])["caption"] == t("styling", "en")
    assert server.pictures[(chat["id"], status["message_id"])] == media[-1].files["media"] != posted.files["photo"]
    captions = [c.params["caption"] for c in server.called("editMessageCaption", message_id=str(status["message_id"]))]
    assert captions[-2:] == [t("progress.sending", "en"), t("progress.done_sketch", "en")]
    assert "reply_markup" not in status, "no Cancel button left once delivered"
    assert_callback_data_fits(server)


async def test_edit_with_force_reply(bot: RunningBot) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    card = await anime_card(server, chat, alice)

    await server.push(server.press(alice, card, data_of(card, Action.EDIT)))
    prompt = await server.wait_for(lambda: server.called("sendMessage", text=f"{t('edit.prompt', 'en')}\n\n{TEXT}"))
    markup = prompt[0].json("reply_markup")
    assert markup["force_reply"] is True and markup["input_field_placeholder"] == TEXT[:64]

    asked = next(m for m in server.sent(chat["id"]) if m["text"] == prompt[0].params["text"])
    corrected = "a boy with glasses reading a book"
    await server.push(server.message(chat, alice, text=corrected, reply_to=asked))
    new_card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM, after=asked["message_id"]))
    assert corrected in new_card["text"]
    assert TextMessage(bot.events[-1].origin, corrected) == bot.events[-1]
    assert_callback_data_fits(server)


async def test_group_chat_only_listens_when_addressed(bot: RunningBot, english_voice_notes) -> None:
    server = bot.server
    alice, group = user(language_code="zh-hans"), group_chat()
    voice = server.add_file(english_voice_notes["ogg"].path.read_bytes()) | {"duration": 7, "mime_type": "audio/ogg"}
    await server.push(
        server.message(group, alice, text="hello everyone, nice weather"),
        server.message(group, alice, voice=voice),
        server.message(group, alice, text="/anime@some_other_bot a cat"),
        server.message(group, alice, text="/weather"),
    )
    await server.push(server.message(group, alice, text=f"{MENTION} hello there"))
    await server.wait_for(lambda: bot.events)
    assert bot.events == [TextMessage(bot.events[0].origin, "hello there")]
    origin = bot.events[0].origin
    assert (origin.chat_id, origin.user_id, origin.user_name, origin.locale, origin.is_group) == (
        str(group["id"]),
        "111",
        "Alice",
        "zh-hans",
        True,
    )
    assert not server.called("getFile") and not server.called("sendMessage")

    await server.push(server.message(group, alice, voice=voice, caption=MENTION))
    card = await server.wait_for(with_button(server, group["id"], Action.CONFIRM))
    assert card["text"].startswith("我听到的是")  # the user's Telegram language
    await server.push(server.message(group, alice, text=f"/anime@{BOT['username']} {TEXT}"))
    await server.wait_for(with_button(server, group["id"], Action.CONFIRM, after=card["message_id"]))
    assert [e.name for e in bot.events if isinstance(e, Command)] == ["anime"]
    assert_callback_data_fits(server)


async def test_keep_what_i_said_round_trips(fake_telegram: FakeTelegram, sqlite_url: str, tmp_path: Path) -> None:
    """A corrected word's card carries "Keep what I said"; pressing it edits the card in place, without the button."""
    server = fake_telegram
    engine = ScriptedEngine(transcript=RED_SAN, review=True)
    async with telegram_bot(server, engine, sqlite_url, tmp_path / "data"):
        li = user(222, "Li", "zh-hans")
        chat = private_chat(li)
        voice = server.add_file(b"OggS") | {"duration": 3, "mime_type": "audio/ogg"}
        await server.push(server.message(chat, li, voice=voice))
        card = await server.wait_for(with_button(server, chat["id"], Action.KEEP_SAID))
        assert card["text"].splitlines()[1] == "“一个长头发的女孩在雨中撑着红[伞]”"
        assert keyboard_labels(card)[0] == ["✅ 开始画", "✏️ 修改", "↩️ 保留原话"]
        await server.push(server.press(li, card, data_of(card, Action.KEEP_SAID)))
        kept = await server.wait_for(
            lambda: next((m for m in server.sent(chat["id"]) if m["message_id"] == card["message_id"] and "红散" in m["text"]), None)
        )
        assert kept["text"].splitlines()[1] == "“一个长头发的女孩在雨中撑着红散”"
        assert Action.KEEP_SAID not in {d.split(":")[0] for d in buttons(kept)}


async def test_a_voice_note_is_answered_with_a_voice_message_and_a_refusal_remembered(
    fake_telegram: FakeTelegram, sqlite_url: str, tmp_path: Path
) -> None:
    """sendVoice with OGG/Opus after the card; a user who takes no voice messages gets the text only, and no more tries."""
    server = fake_telegram
    narrator = Narrator(TtsConfig(model=str(fake_vits.build(tmp_path / "voice")), threads=1))
    engine = ScriptedEngine(transcript=whisper_wrote([("hello", 0.9), ("world", 0.9)], "en"))
    async with telegram_bot(server, engine, sqlite_url, tmp_path / "data", narrator=narrator) as running:
        amy, bo = user(333, "Amy"), user(444, "Bo")
        server.no_voice.add(bo["id"])
        for who in (amy, bo, bo):
            cards_before = len(cards_in(server, who["id"]))
            voice = server.add_file(b"OggS") | {"duration": 2, "mime_type": "audio/ogg"}
            await server.push(server.message(private_chat(who), who, voice=voice))
            await server.wait_for(lambda who=who, n=cards_before: len(cards_in(server, who["id"])) > n)
            await running.conversation.wait_idle()  # and its voice reply

        [(key, note)] = server.voices.items()
        assert key[0] == amy["id"]
        message = server.messages[key]
        card = with_button(server, amy["id"], Action.CONFIRM)()
        assert card["message_id"] < message["message_id"], "the card first, then the voice"
        with av.open(io.BytesIO(note)) as container:
            stream = container.streams.audio[0]
            assert (container.format.name, stream.codec_context.name) == ("ogg", "opus")
            heard = sum(frame.samples for frame in container.decode(stream)) / stream.rate
        assert message["voice"]["duration"] == math.ceil(heard) and heard > 0

        tries = [c for c in server.calls if c.method == "sendVoice" and c.params.get("chat_id") == str(bo["id"])]
        assert [c.status for c in tries] == [400], "refused once, then remembered: no second try"
        assert len(server.sent(bo["id"])) == len(cards_in(server, bo["id"])) == 2, "two cards, nothing else (no error)"


async def test_a_refusal_of_voice_messages_outlives_a_restart_until_the_user_chooses_voice_replies_again(
    fake_telegram: FakeTelegram, sqlite_url: str, tmp_path: Path
) -> None:
    server = fake_telegram
    narrator = Narrator(TtsConfig(model=str(fake_vits.build(tmp_path / "voice")), threads=1))
    bo = user(444, "Bo")
    chat = private_chat(bo)
    server.no_voice.add(bo["id"])

    async def voice_note(running: RunningBot) -> None:
        cards_before = len(cards_in(server, bo["id"]))
        voice = server.add_file(b"OggS") | {"duration": 2, "mime_type": "audio/ogg"}
        await server.push(server.message(chat, bo, voice=voice))
        await server.wait_for(lambda: len(cards_in(server, bo["id"])) > cards_before)
        await running.conversation.wait_idle()  # and its voice reply

    def tries() -> list[int]:
        return [c.status for c in server.calls if c.method == "sendVoice" and c.params.get("chat_id") == str(bo["id"])]

    def bot() -> Any:
        engine = ScriptedEngine(transcript=whisper_wrote([("hello", 0.9), ("world", 0.9)], "en"))
        return telegram_bot(server, engine, sqlite_url, tmp_path / "data", narrator=narrator)

    async with bot() as running:
        await voice_note(running)
    assert tries() == [400]

    async with bot() as running:  # a restart: nothing in memory, the same database
        await voice_note(running)
        assert tries() == [400], "remembered across the restart: no second try"

        server.no_voice.discard(bo["id"])  # Bo allows voice messages now, and asks for voice replies again
        await server.push(server.message(chat, bo, text="/settings"))
        card = await server.wait_for(with_button(server, chat["id"], Action.VOICE_REPLIES))
        await server.push(server.press(bo, card, data_of(card, Action.VOICE_REPLIES)))
        picker = await server.wait_for(with_button(server, chat["id"], Action.VOICE_REPLIES, after=card["message_id"]))
        voice_choice = next(d for d in buttons(picker) if d.startswith(f"{Action.VOICE_REPLIES}:") and d.endswith(":voice"))
        await server.push(server.press(bo, picker, voice_choice))
        await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "en")))
        await voice_note(running)
    assert tries() == [400, 200], "tried again once the user chose voice replies"
    assert [key[0] for key in server.voices] == [bo["id"]]


def cards_in(server: FakeTelegram, chat_id: int) -> list[dict[str, Any]]:
    """The bot's messages in ``chat_id`` that show a card (a Draw it button)."""
    return [m for m in server.sent(chat_id) if any(d.startswith(f"{Action.CONFIRM}:") for d in buttons(m))]


async def test_voice_over_the_download_limit_is_refused_before_downloading(bot: RunningBot) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    huge = {
        "file_id": "never-fetched",
        "file_unique_id": "x",
        "file_size": 25 * 1024 * 1024,
        "duration": 60,
        "mime_type": "audio/ogg",
    }
    await server.push(server.message(chat, alice, voice=huge))
    told = await server.wait_for(lambda: server.called("sendMessage"))
    assert told[0].params["text"] == t("audio.too_large", "en", size_mb=25.0, limit_mb=20.0)
    assert not server.called("getFile") and [type(e) for e in bot.events] == [Rejected]

    # The refusal comes from the conversation, so it follows the user's /settings language, not the app's.
    await server.push(server.message(chat, alice, text="/settings"))
    card = await server.wait_for(with_button(server, chat["id"], Action.SET_LANGUAGE))
    await server.push(server.press(alice, card, data_of(card, Action.SET_LANGUAGE)))
    picker = await server.wait_for(with_button(server, chat["id"], Action.SET_LANGUAGE, after=card["message_id"]))
    await server.push(server.press(alice, picker, f"{Action.SET_LANGUAGE}:{cards.NO_REQUEST}:zh"))
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "zh-Hans")))
    await server.push(server.message(chat, alice, voice=huge | {"file_id": "also-never-fetched"}))
    zh = t("audio.too_large", "zh-Hans", size_mb=25.0, limit_mb=20.0)
    await server.wait_for(lambda: server.called("sendMessage", text=zh))
    assert not server.called("getFile")


#: The /settings card in a Telegram group, as its member Alice gets it (a reply to her /settings; Bob's reads the same).
MEMBER_CARD = """Settings
Just for you, Alice:
• Language: automatic (follows your app: English)
• Default style: Portrait (face paint v2)

For everyone here (only admins can change these):
• Chat language: automatic (each member's app)
• Confirm before drawing: on
• Content policy: as the bot is set
• Content policy here: strict — for everyone; pictures are checked"""


def replying_to(server: FakeTelegram, chat_id: int, message_id: int) -> Any:
    """A ``check``: the bot's message in the reply thread of ``message_id``."""
    return lambda: next((m for m in server.sent(chat_id) if m.get("reply_to_message", {}).get("message_id") == message_id), None)


def keyboard_labels(message: dict[str, Any]) -> list[list[str]]:
    return [[b["text"] for b in row] for row in message.get("reply_markup", {}).get("inline_keyboard", [])]


async def test_in_a_group_members_change_only_their_own_settings_and_admins_the_group_s(bot: RunningBot) -> None:
    server = bot.server
    group = group_chat()
    alice, bob = user(111, "Alice", "en"), user(222, "Bob", "en")
    server.set_status(group, bob, "administrator")

    # alice, a member: her /settings comes in the reply thread of her command
    asked = server.message(group, alice, text="/settings")
    await server.push(asked)
    card = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
    print(f"\n--- Telegram /settings, member ---\n{card['text']}\n{keyboard_labels(card)}")
    assert card["text"] == MEMBER_CARD
    assert keyboard_labels(card) == [["🌐 My language", "🎨 My style"], ["🌐 Chat language", "Confirm on/off", "🛡 Content policy"]]

    # the group's settings are not hers: each press is refused in a toast only she sees; nothing changes
    posted = len(server.called("sendMessage"))
    refusal = t("settings.admins_only", "en", language="🌐 My language", style="🎨 My style")
    for action in (Action.TOGGLE_CONFIRM, Action.CHAT_LANGUAGE):
        await server.push(server.press(alice, card, data_of(card, action)))
    await server.wait_for(lambda: len(server.called("answerCallbackQuery", text=refusal)) == 2)
    assert len(server.called("sendMessage")) == posted and not server.called("editMessageText")
    assert len(server.called("getChatMember", chat_id=str(group["id"]), user_id="111")) == 1, "asked once, then remembered"
    chat_id = await bot.conversation.repository.get_or_create_chat("telegram", str(group["id"]), ChatKind.GROUP)
    assert await bot.conversation.repository.get_chat_settings(chat_id) == ChatOverrides()

    # her own language: a picker under the card, which then shows her settings in Traditional Chinese
    await server.push(server.press(alice, card, data_of(card, Action.SET_LANGUAGE)))
    picker = await server.wait_for(replying_to(server, group["id"], card["message_id"]))
    assert keyboard_labels(picker) == [["✅ Automatic", "English"], ["中文（简体）", "中文（繁體）"]]
    await server.push(server.press(alice, picker, f"{Action.SET_LANGUAGE}:{cards.NO_REQUEST}:zh-Hant"))
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "zh-Hant")))
    key = (group["id"], picker["message_id"])
    mine = await server.wait_for(lambda: "只對你（Alice）生效：" in server.messages[key]["text"] and server.messages[key])
    assert "• 語言：中文（繁體）" in mine["text"]
    assert server.messages[(group["id"], card["message_id"])]["text"] == mine["text"], "and so does the card it came from"

    # bob, an administrator, turns confirmation off for the group: his card changes in place
    asked = server.message(group, bob, text="/settings")
    await server.push(asked)
    bob_card = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
    assert bob_card["text"] == MEMBER_CARD.replace("Alice", "Bob")
    await server.push(server.press(bob, bob_card, data_of(bob_card, Action.TOGGLE_CONFIRM)))
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "en")))
    after = await server.wait_for(
        lambda: "drawing: off" in server.messages[(group["id"], bob_card["message_id"])]["text"]
        and server.messages[(group["id"], bob_card["message_id"])]
    )
    print(f"--- Telegram /settings, admin, after turning confirmation off ---\n{after['text']}")
    assert after["text"] == MEMBER_CARD.replace("Alice", "Bob").replace("drawing: on", "drawing: off")
    assert (await bot.conversation.repository.get_chat_settings(chat_id)).confirm_before_generate is False
    assert server.called("getChatMember", chat_id=str(group["id"]), user_id="222")

    # personal settings stay their owner's
    for sender, lang in ((bob, "en"), (alice, "zh-Hant")):
        asked = server.message(group, sender, text="/help")
        await server.push(asked)
        helped = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
        assert helped["text"] == cards.help_text(lang, group=True, commands=COMMAND_NAMES).text, lang


async def test_a_settings_card_reads_the_language_chosen_on_its_picker(fake_telegram: FakeTelegram, sqlite_url: str, tmp_path: Path) -> None:
    """The card the picker was opened from is edited in place, in the language chosen (not left at "automatic")."""
    server = fake_telegram
    async with telegram_bot(server, ScriptedEngine(), sqlite_url, tmp_path / "data"):
        alice = user(111, "Alice", "en")
        chat = private_chat(alice)
        await server.push(server.message(chat, alice, text="/settings"))
        card = await server.wait_for(with_button(server, chat["id"], Action.SET_LANGUAGE))
        assert card["text"].splitlines()[:2] == ["Settings", "Language: automatic (follows your app: English)"]
        await server.push(server.press(alice, card, data_of(card, Action.SET_LANGUAGE)))
        picker = await server.wait_for(with_button(server, chat["id"], Action.SET_LANGUAGE, after=card["message_id"]))

        await server.push(server.press(alice, picker, f"{Action.SET_LANGUAGE}:{cards.NO_REQUEST}:zh-Hant"))

        await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "zh-Hant")))
        # the toast answers the press; the card and the picker are edited just after it
        await server.wait_for(
            lambda: all(server.messages[(chat["id"], m["message_id"])]["text"].startswith("設定") for m in (card, picker))
        )
        shown = server.messages[(chat["id"], card["message_id"])]
        print(f"\n--- Telegram /settings after choosing 中文（繁體） on its picker ---\n{shown['text']}\n{keyboard_labels(shown)}")
        assert shown["text"].splitlines() == [
            "設定",
            "語言：中文（繁體）",
            "預設風格：人像（face paint v2）",
            "作畫前確認：開",
            "這裡的內容尺度：嚴格——適合所有人；圖片會檢查",
        ]
        assert keyboard_labels(shown) == [[t("settings.language", "zh-Hant"), "🎨 風格"], ["切換作畫前確認"]]
        assert server.messages[(chat["id"], picker["message_id"])]["text"] == shown["text"]


#: An English voice note as the scripted engine hears it.
BLUE_HAIR = whisper_wrote([("a", 0.9), ("girl", 0.9), ("with", 0.9), ("blue", 0.9), ("hair", 0.9)], "en")


async def test_a_replaced_card_has_no_buttons_left(fake_telegram: FakeTelegram, sqlite_url: str, tmp_path: Path) -> None:
    """Edit, and Heard wrong language: only the newest card of a request keeps its keyboard; the used picker keeps none."""
    server = fake_telegram
    async with telegram_bot(server, ScriptedEngine(transcript=BLUE_HAIR), sqlite_url, tmp_path / "data"):
        alice = user(111, "Alice", "en")
        chat = private_chat(alice)
        voice = server.add_file(b"OggS") | {"duration": 3, "mime_type": "audio/ogg"}
        await server.push(server.message(chat, alice, voice=voice))
        card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))
        await server.push(server.press(alice, card, data_of(card, Action.EDIT)))
        asked = await server.wait_for(lambda: next((m for m in server.sent(chat["id"]) if m["text"].startswith(t("edit.prompt", "en"))), None))
        await server.push(server.message(chat, alice, text="a boy reading a book", reply_to=asked))
        edited = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM, after=asked["message_id"]))
        old = await superseded(server, card)
        assert "reply_markup" not in old

        await server.push(server.message(chat, alice, voice=voice))
        card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM, after=edited["message_id"]))
        await server.push(server.press(alice, card, data_of(card, Action.RETRY)))
        picker = await server.wait_for(with_button(server, chat["id"], Action.RETRY_AS))
        await server.push(server.press(alice, picker, data_of(picker, Action.RETRY_AS)))
        again = await server.wait_for(lambda: with_button(server, chat["id"], Action.CONFIRM, after=card["message_id"])())
        assert again["message_id"] == picker["message_id"], "the picker became the status, then the new card"
        assert again["text"].splitlines()[0] == t("card.heard", "en", language="English", confidence=0.97)
        old = await superseded(server, card)
        assert "reply_markup" not in old
        keyboards = [m["message_id"] for m in server.sent(chat["id"]) if m.get("reply_markup")]
        assert keyboards == [edited["message_id"], picker["message_id"]], "the newest card of each request, nothing else"


async def superseded(server: FakeTelegram, card: dict[str, Any]) -> dict[str, Any]:
    """``card`` once it says it was replaced (the new card is posted first, the old one edited just after)."""
    key = (card["chat"]["id"], card["message_id"])
    return await server.wait_for(
        lambda: server.messages[key] if server.messages[key]["text"] == t("card.superseded", "en") else None, timeout=10
    )


def touched(server: FakeTelegram, message: dict[str, Any]) -> list[str]:
    """The Bot API methods called on ``message``: edits and deletes."""
    chat_id, message_id = str(message["chat"]["id"]), str(message["message_id"])
    return [
        c.method for c in server.calls
        if (c.method.startswith("edit") or c.method == "deleteMessage")
        and c.params.get("chat_id") == chat_id and c.params.get("message_id") == message_id
    ]


async def test_a_press_never_changes_someone_else_s_message(bot: RunningBot) -> None:
    server = bot.server
    group = group_chat()
    alice, bob = user(111, "Alice", "en"), user(222, "Bob", "en")

    # bob chooses a language on alice's picker: it is his choice, told in a toast, with a card of his own
    asked = server.message(group, alice, text="/settings")
    await server.push(asked)
    card = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
    await server.push(server.press(alice, card, data_of(card, Action.SET_LANGUAGE)))
    picker = await server.wait_for(replying_to(server, group["id"], card["message_id"]))
    await server.push(server.press(bob, picker, f"{Action.SET_LANGUAGE}:{cards.NO_REQUEST}:zh-Hant"))
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "zh-Hant")))
    his_or_hers = replying_to(server, group["id"], picker["message_id"])
    await server.wait_for(lambda: his_or_hers() or touched(server, picker))
    assert touched(server, picker) == [] and server.messages[(group["id"], picker["message_id"])]["text"] == picker["text"]
    assert "只對你（Bob）生效：" in his_or_hers()["text"]

    # alice's request named in presses on bob's settings card: they act on her own card, never on his
    asked = server.message(group, bob, text="/settings")
    await server.push(asked)
    bob_card = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
    alice_card = await anime_card(server, group, alice)
    request_id = data_of(alice_card, Action.CONFIRM).split(":")[1]
    for data in (f"{Action.DETAILS}:{request_id}:1", f"{Action.STYLE_SET}:{request_id}:paprika", f"{Action.CONFIRM}:{request_id}"):
        await server.push(server.press(alice, bob_card, data))
    await server.wait_for(lambda: delivered_photos(server))
    await bot.conversation.wait_idle()
    assert touched(server, bob_card) == [], "bob's card was edited or deleted by alice's press"
    assert server.messages[(group["id"], bob_card["message_id"])]["text"] == bob_card["text"]
    assert touched(server, alice_card), "her presses showed in her own card"
    assert (await bot.conversation.repository.get_request(request_id)).style == "paprika"


async def test_a_demoted_administrator_loses_the_group_s_settings_at_once(bot: RunningBot) -> None:
    """Where the bot administers the group, Telegram says who was demoted (chat_member): no 60 s of rights left."""
    server = bot.server
    group = group_chat()
    owner, bob = user(100, "Olga", "en"), user(222, "Bob", "en")
    server.set_status(group, bob, "administrator")
    asked = server.message(group, bob, text="/settings")
    await server.push(asked)
    card = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
    await server.push(server.press(bob, card, data_of(card, Action.TOGGLE_CONFIRM)))
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=t("settings.saved", "en")))

    await server.push(server.member_update(group, bob, "member", by=owner))
    await server.push(server.press(bob, card, data_of(card, Action.TOGGLE_CONFIRM)))
    refusal = t("settings.admins_only", "en", language="🌐 My language", style="🎨 My style")
    await server.wait_for(lambda: server.called("answerCallbackQuery", text=refusal) or len(server.called("answerCallbackQuery")) > 1)
    assert server.called("answerCallbackQuery", text=refusal), "still an administrator after the demotion"
    assert len(server.called("getChatMember")) == 1, "the update said so: nobody had to ask"
    chat_id = await bot.conversation.repository.get_or_create_chat("telegram", str(group["id"]), ChatKind.GROUP)
    assert (await bot.conversation.repository.get_chat_settings(chat_id)).confirm_before_generate is False, "his first change"
    assert '"chat_member"' in server.called("getUpdates")[-1].params.get("allowed_updates", "")


async def test_help_in_a_group_and_in_private_in_english_simplified_and_traditional(bot: RunningBot) -> None:
    server = bot.server
    group = group_chat()
    for user_id, (code, lang) in enumerate((("en", "en"), ("zh-hans", "zh-Hans"), ("zh-hant", "zh-Hant"), ("zh-TW", "zh-Hant")), 300):
        sender = user(user_id, f"U{user_id}", code)
        await server.push(server.message(private_chat(sender), sender, text="/help"))
        private = await server.wait_for(lambda s=sender: server.sent(s["id"]))
        assert private[0]["text"] == cards.help_text(lang, group=False, commands=COMMAND_NAMES).text, code
        asked = server.message(group, sender, text=f"/help@{BOT['username']}")
        await server.push(asked)
        helped = await server.wait_for(replying_to(server, group["id"], asked["message"]["message_id"]))
        assert helped["text"] == cards.help_text(lang, group=True, commands=COMMAND_NAMES).text, code
        print(f"\n--- Telegram /help {code}, group ---\n{helped['text']}")


async def test_is_admin_asks_get_chat_member_and_remembers_briefly() -> None:
    clock = SimpleNamespace(now=0.0)
    statuses = {7: "member", 8: "administrator", 9: "creator"}

    class Members(StubBot):
        async def get_chat_member(self, chat_id: int, user_id: int) -> Any:
            self.calls.append(("get_chat_member", (chat_id, user_id), {}))
            if user_id == 10:
                raise BadRequest("Bad Request: user not found")
            return SimpleNamespace(status=statuses[user_id])

    stub = Members()
    messenger = TelegramMessenger(stub, monotonic=lambda: clock.now)  # type: ignore[arg-type]
    who = {n: Origin("telegram", "-100", str(n), "", "en", True) for n in (7, 8, 9, 10)}
    assert [await messenger.is_admin(who[n]) for n in (7, 8, 9, 10)] == [False, True, True, False]
    assert await messenger.is_admin(Origin("telegram", "7", "7", "", "en", False)), "a private chat is its user's"
    statuses[8] = "member"  # demoted
    assert await messenger.is_admin(who[8]), "remembered for a while"
    clock.now += 61
    assert not await messenger.is_admin(who[8])
    assert stub.methods().count("get_chat_member") == 5
    messenger.member_changed(-100, 9, "member")  # a chat_member update: the creator left
    assert not await messenger.is_admin(who[9]), "an update replaces what was remembered"
    messenger.member_changed(-100, 7, "administrator")  # promoted
    assert await messenger.is_admin(who[7]) and stub.methods().count("get_chat_member") == 5


async def test_corrupt_voice_gets_a_friendly_error(bot: RunningBot, bad_audio_files: dict[str, Path]) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    voice = server.add_file(bad_audio_files["garbage"].read_bytes()) | {"duration": 3, "mime_type": "audio/ogg"}
    await server.push(server.message(chat, alice, voice=voice))
    audio_errors = {t(key, "en") for key in ("audio.unreadable", "audio.unsupported", "audio.empty")}
    await server.wait_for(lambda: any(m["text"] in audio_errors for m in server.sent(chat["id"])))


async def test_duplicate_updates_and_presses_are_handled_once(bot: RunningBot) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    command = server.message(chat, alice, text=f"/anime {TEXT}")
    await server.push(command, command)  # the same update delivered twice
    card = await server.wait_for(with_button(server, chat["id"], Action.CONFIRM))

    press = server.press(alice, card, data_of(card, Action.CONFIRM))
    again = server.press(alice, card, data_of(card, Action.CONFIRM))  # a second tap: new query, same button
    await server.push(press, press, again)
    await server.wait_for(lambda: delivered_photos(server))
    await bot.conversation.wait_idle()

    assert len([e for e in bot.events if isinstance(e, Command)]) == 1
    assert len(delivered_photos(server)) == 1
    answers = [c for c in server.calls if c.method == "answerCallbackQuery"]
    assert all(c.ok for c in answers) and len(answers) == 2
    assert any(c.params.get("text") == t("already_handled", "en") for c in answers)


async def test_photo_largest_size_restyled_and_sent_as_file_when_telegram_rejects_it(bot: RunningBot) -> None:
    server = bot.server
    alice = user()
    chat = private_chat(alice)
    small, large = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (16, 12), "red").save(small, format="JPEG")
    Image.new("RGB", (48, 40), (200, 120, 90)).save(large, format="JPEG")
    sizes = [
        server.add_file(small.getvalue(), kind="photo", ext="jpg") | {"width": 16, "height": 12},
        server.add_file(large.getvalue(), kind="photo", ext="jpg") | {"width": 48, "height": 40},
    ]
    server.reject_photos = True
    await server.push(server.message(chat, alice, photo=sizes))
    document = await server.wait_for(lambda: server.called("sendDocument"))
    await bot.conversation.wait_idle()
    assert [c.params["file_id"] for c in server.called("getFile")] == [sizes[1]["file_id"]]
    assert [c.status for c in server.calls if c.method == "sendPhoto"] == [400]
    assert document[0].files["document"].startswith(PNG)
    assert document[0].callback_data()


async def test_token_never_logged_and_menus_published(
    fake_telegram: FakeTelegram, local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = fake_telegram
    async with telegram_bot(server, local_engine, sqlite_url, tmp_path / "data"):
        logging.getLogger("httpx").setLevel(logging.DEBUG)  # even request lines, which carry the URL
        li = user(222, "Li", "zh-CN")
        await server.push(server.message(private_chat(li), li, text="/start"))
        await server.wait_for(lambda: server.called("sendMessage", text=t("start", "zh-Hans", name="Li")))
        await server.push(server.message(private_chat(li), li, text="/nonsense"))
        await server.wait_for(lambda: server.called("sendMessage", text=t("unknown_command", "zh-Hans")))
    logging.getLogger("httpx").setLevel(logging.WARNING)

    secret = TOKEN.split(":")[1]
    assert secret not in caplog.text and all(secret not in r.getMessage() for r in caplog.records)
    assert REDACTED in caplog.text and "getUpdates" in caplog.text
    menus = {c.params.get("language_code"): c.json("commands") for c in server.called("setMyCommands")}
    assert set(menus) == {None, "zh"}
    assert [c["command"] for c in menus["zh"]] == ["start", "help", "anime", "style", "history", "settings", "cancel"]
    assert menus["zh"][0]["description"] == t("command.start", "zh-Hans")
    assert menus[None][0]["description"] == t("command.start", "en")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_mode(fake_telegram: FakeTelegram, local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path) -> None:
    server, port = fake_telegram, _free_port()
    hook = f"http://127.0.0.1:{port}/telegram-hook"
    settings = {
        "telegram_webhook_url": hook,
        "telegram_webhook_listen": "127.0.0.1",
        "telegram_webhook_port": port,
        "telegram_webhook_secret": "s3cret-value",
    }
    async with telegram_bot(server, local_engine, sqlite_url, tmp_path / "data", **settings):
        registered = server.called("setWebhook")
        assert registered and registered[0].params["url"] == hook and registered[0].params["secret_token"] == "s3cret-value"
        assert not server.called("getUpdates")
        alice = user()
        update = server.message(private_chat(alice), alice, text="/help")
        async with aiohttp.ClientSession() as http:
            async with http.post(hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as response:
                assert response.status == 403
            async with http.post(hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}) as response:
                assert response.status == 200
        await server.wait_for(lambda: server.called("sendMessage", text=cards.help_text("en", group=False, commands=COMMAND_NAMES).text))
        assert len(server.called("sendMessage")) == 1


async def test_webhook_without_a_configured_secret_makes_one_and_refuses_forged_updates(
    fake_telegram: FakeTelegram, local_engine: SpeechAndJobs, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, port = fake_telegram, _free_port()
    hook = f"http://127.0.0.1:{port}/telegram-hook"
    settings = {"telegram_webhook_url": hook, "telegram_webhook_listen": "127.0.0.1", "telegram_webhook_port": port}
    async with telegram_bot(server, local_engine, sqlite_url, tmp_path / "data", **settings) as bot:
        (registered,) = server.called("setWebhook")
        secret = registered.params.get("secret_token", "")
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret), f"setWebhook got no usable secret_token: {registered.params}"
        alice = user()
        forged = server.message(private_chat(alice), alice, text="/help")
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
                async with http.post(hook, json=forged, headers=headers) as response:
                    assert response.status == 403, headers
            await asyncio.sleep(0.5)
            assert bot.events == [] and not server.called("sendMessage")  # nothing reached the conversation

            genuine = server.message(private_chat(alice), alice, text="/help")
            async with http.post(hook, json=genuine, headers={"X-Telegram-Bot-Api-Secret-Token": secret}) as response:
                assert response.status == 200
        await server.wait_for(lambda: server.called("sendMessage", text=cards.help_text("en", group=False, commands=COMMAND_NAMES).text))
        assert len(bot.events) == 1
    refusals = [r.getMessage() for r in caplog.records if "refused a webhook request" in r.getMessage()]
    assert len(refusals) == 3 and all(r.levelno == logging.WARNING for r in caplog.records if "refused a webhook" in r.getMessage())
    assert "guess" not in caplog.text and secret not in caplog.text


#: A description that is also markup: a masked link, a mass mention, HTML and Markdown emphasis.
HOSTILE = "[Free Nitro](https://evil.example) @everyone <b>bold</b> *stars* a cat"


async def test_user_text_is_shown_as_typed_never_as_a_hidden_link(bot: RunningBot) -> None:
    server, alice = bot.server, user()
    card = await anime_card(server, private_chat(alice), alice, text=HOSTILE)

    assert HOSTILE in card["text"]  # shown exactly as typed ...
    assert not [e for e in card.get("entities", []) if e["type"] == "text_link"]  # ... with no clickable text hiding a URL
    sent = [c for c in server.calls if c.method in ("sendMessage", "editMessageText", "sendPhoto", "sendDocument")]
    assert sent and all("parse_mode" not in c.params for c in sent)  # plain text: Telegram parses no markup


# --- translation and rendering, no network ------------------------------------------------------------


ORIGIN = Origin("telegram", "-100", "7", "Alice", "en", True)


class StubBot:
    """Records Bot API calls; ``fail`` maps a method to the exception it raises."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail = fail or {}

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            if method in self.fail:
                raise self.fail[method]
            return SimpleNamespace(chat_id=-100, message_id=len(self.calls))

        return call

    def methods(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_replies_render_to_keyboards_and_force_reply() -> None:
    card = Reply("Draw?", kind="card", buttons=((Button("✅", "ok", "r1"), Button("✏️", "ed", "r1")), (Button("x", "x", "r1"),)))
    markup = reply_markup(card)
    assert isinstance(markup, InlineKeyboardMarkup)
    assert [[b.callback_data for b in row] for row in markup.inline_keyboard] == [["ok:r1", "ed:r1"], ["x:r1"]]
    assert reply_markup(Reply("plain")) is None

    long_text = "word " * 40
    prompt = Reply("Send the corrected text.", kind="edit_prompt", prefill=long_text, request_id="r1")
    force = reply_markup(prompt)
    assert isinstance(force, ForceReply) and force.input_field_placeholder == long_text[:64]
    assert message_text(prompt) == f"Send the corrected text.\n\n{long_text}"
    assert len(message_text(Reply("x" * 5000))) == 4096


def test_photo_limits() -> None:
    assert fits_as_photo(png(512, 512))
    assert not fits_as_photo(png(8000, 2100))  # width + height over 10000
    assert not fits_as_photo(png(2100, 100))  # aspect ratio over 20


async def test_messenger_sends_edits_and_falls_back() -> None:
    stub = StubBot(fail={"edit_message_text": BadRequest("Message is not modified: specified new message content ...")})
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    assert await messenger.send(ORIGIN, Reply("…", kind="progress")) == "-100:2"
    assert stub.methods() == ["send_chat_action", "send_message"]
    await messenger.edit(ORIGIN, "-100:2", Reply("same", kind="card"))  # "not modified" is fine
    assert stub.methods()[-1] == "edit_message_text"

    stub.fail["edit_message_text"] = BadRequest("Message to edit not found")
    await messenger.edit(ORIGIN, "-100:2", Reply("card", kind="card"))  # a card must still reach the user
    assert stub.methods()[-1] == "send_message"
    await messenger.edit(ORIGIN, "-100:2", Reply("50%", kind="progress"))  # a progress tick may be skipped
    assert stub.methods()[-1] == "edit_message_text"

    wide = Reply("caption", kind="image", image_png=png(2100, 100), request_id="r9", file_name="voice2anime-r9")
    await messenger.send(ORIGIN, wide)
    name, args, kwargs = stub.calls[-1]
    assert name == "send_document" and args == (-100, wide.image_png) and kwargs["filename"] == "voice2anime-r9.png"


def jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_a_status_message_becomes_a_photo_at_its_first_preview_then_changes_in_place() -> None:
    stub = StubBot()
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    cancel = ((Button("Cancel", "x", "r1"),),)
    ref = await messenger.send(ORIGIN, Reply("⏳ In the queue…", kind="progress", buttons=cancel))
    assert ref == "-100:2"

    # the first preview: a text message cannot gain a photo -> posted anew as a photo, the text message deleted
    await messenger.edit(ORIGIN, ref, Reply("🖌 Drawing… 40%", kind="progress", buttons=cancel, image_png=jpeg("red")))
    assert stub.methods()[2:] == ["send_chat_action", "send_photo", "delete_message"]
    _, args, kwargs = stub.calls[3]
    assert args == (-100, jpeg("red")) and kwargs["caption"] == "🖌 Drawing… 40%" and kwargs["reply_markup"] is not None
    assert stub.calls[4][1] == (-100, 2)

    # later previews of the same reference replace the photo (editMessageMedia on the new message)
    styling = Reply("🎨 Applying the anime style…", kind="progress", buttons=cancel, image_png=jpeg("blue"))
    await messenger.edit(ORIGIN, ref, styling)
    name, args, kwargs = stub.calls[-1]
    assert name == "edit_message_media" and kwargs["message_id"] == 4 and kwargs["reply_markup"] is not None
    assert args[0].caption == "🎨 Applying the anime style…" and args[0].type == "photo"

    # text-only edits keep the picture: its caption changes, on the old reference and on the photo's own
    await messenger.edit(ORIGIN, ref, Reply("✅ Done — your picture is below."))
    name, _, kwargs = stub.calls[-1]
    assert name == "edit_message_caption" and kwargs["message_id"] == 4 and kwargs["reply_markup"] is None
    await messenger.edit(ORIGIN, "-100:4", Reply("Cancelled."))
    assert stub.calls[-1][0] == "edit_message_caption" and stub.calls[-1][2]["caption"] == "Cancelled."

    # a photo it does not know of (e.g. after a restart): tried as text, then as a caption
    stub.fail["edit_message_text"] = BadRequest("Bad Request: there is no text in the message to edit")
    await messenger.edit(ORIGIN, "-100:77", Reply("Cancelled."))
    assert stub.methods()[-2:] == ["edit_message_text", "edit_message_caption"]
    await messenger.edit(ORIGIN, "-100:77", Reply("Cancelled!"))
    assert stub.methods()[-1] == "edit_message_caption", "remembered as a photo"

    # a finished picture is never edited into a status message: it is its own message
    await messenger.edit(ORIGIN, "-100:4", Reply("Style: x", kind="image", image_png=png(8, 8)))
    assert stub.methods()[-1] == "send_photo"


async def test_notify_answers_the_press_being_handled_else_posts() -> None:
    stub = StubBot()
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    async with messenger.answering("q1", within=30):
        await messenger.notify(ORIGIN, "Saved.")
        await messenger.notify(ORIGIN, "And more.")  # a query is answered once; the rest is posted
    async with messenger.answering("q2", within=30):
        pass  # always answered, even without a toast
    await messenger.notify(ORIGIN, "Later.")
    assert stub.calls == [
        ("answer_callback_query", ("q1",), {"text": "Saved."}),
        ("send_message", (-100, "And more."), {}),
        ("answer_callback_query", ("q2",), {"text": None}),
        ("send_message", (-100, "Later."), {}),
    ]


async def test_a_slow_press_is_answered_in_time() -> None:
    stub = StubBot()
    messenger = TelegramMessenger(stub)  # type: ignore[arg-type]
    async with messenger.answering("q1", within=0.01):
        await asyncio.sleep(0.2)  # e.g. re-transcribing takes a while
        await messenger.notify(ORIGIN, "Saved.")  # too late for a toast: posted instead
    assert stub.calls == [("answer_callback_query", ("q1",), {"text": None}), ("send_message", (-100, "Saved."), {})]


def _message(server: FakeTelegram, chat: dict[str, Any], **fields: Any) -> Message:
    return Message.de_json(server.message(chat, user(), **fields)["message"], None)


def test_inbound_translation() -> None:
    server, me = FakeTelegram(), User.de_json(BOT, None)
    group, private = group_chat(), private_chat(user())
    assert from_message(_message(server, private, text="/Anime  a cat "), me) == Command(
        Origin("telegram", "111", "111", "Alice", "en", False), "anime", "a cat"
    )
    assert from_message(_message(server, group, text=f"/cancel@{BOT['username']}"), me).name == "cancel"
    assert from_message(_message(server, group, text=f"{MENTION} /anime a dog"), me).args == "a dog"
    assert from_message(_message(server, group, text="/unknown"), me) is None
    audio_doc = {"file_id": "d1", "file_unique_id": "u", "mime_type": "audio/mpeg", "file_size": 10}
    assert from_message(_message(server, group, document=audio_doc), me) is None  # not addressed to us
    attachment = from_message(_message(server, private, document=audio_doc), me)
    assert isinstance(attachment, Attachment) and (attachment.kind, attachment.file_id, attachment.file_size) == (
        "voice",
        "d1",
        10,
    )
    image_doc = audio_doc | {"mime_type": "image/png"}
    assert from_message(_message(server, group, document=image_doc, caption=MENTION), me).kind == "photo"


def test_redacting_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TokenRedactingFilter({TOKEN}))
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    try:
        logger.warning("GET https://api.telegram.org/bot%s/getMe", TOKEN)
        logger.warning("another bot: bot987654321:%s", "A" * 35)
        try:
            raise RuntimeError(f"failed: https://api.telegram.org/file/bot{TOKEN}/voice/1.oga")
        except RuntimeError:
            logger.exception("download failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN.split(":")[1] not in output and "A" * 35 not in output
    assert output.count(REDACTED) == 3
