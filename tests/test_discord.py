"""Discord adapter end-to-end: simcord's Discord <-> real adapter <-> real Conversation, SQLite and tiny models."""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import replace
from typing import Any

import av
import discord
import pytest
import simcord
import simcord.interactions
from PIL import Image

from bot.discord import DiscordAdapter
from bot.discord_messenger import DiscordMessenger, literal_content
from bot.settings import Settings
from db import ChatKind, ImageRole
from db.preferences import ChatOverrides
from engine.api import JobHandle, JobSpec
from engine.image.diffusion import preview_jpeg
from engine.language.chinese import simplified, taiwan_phrasing, to_script
from engine.speech.tts import Narrator, TtsConfig
from handlers import cards
from handlers.actions import Action
from handlers.conversation.routes import BY_COMMAND, COMMAND_NAMES
from handlers.conversation.voice import VoiceReplies
from handlers.events import Origin
from handlers.i18n import t
from handlers.replies import Reply
from tests.support import fake_vits
from tests.support.conversation import config
from tests.support.discord_sim import DiscordWorld, components, custom_id, send_voice_message
from tests.support.scripted_engine import RED_SAN, ScriptedEngine, whisper_wrote

pytestmark = pytest.mark.simcord(settle_timeout=240)


def scene(env: simcord.Env) -> tuple[simcord.ChannelHandle, simcord.MemberActor, simcord.MemberActor]:
    """A guild with an #art channel and two members, alice and bob."""
    guild = env.create_guild()
    channel = guild.create_text_channel("art")
    return channel, guild.add_member(env.create_user("alice")), guild.add_member(env.create_user("bob"))


def webhook_edits(env: simcord.Env) -> list[simcord.HttpLogEntry]:
    """Every edit the bot made through an interaction token."""
    return [r for r in env.http_requests if r.method == "PATCH" and r.path.startswith("/webhooks/")]


def callback_types(env: simcord.Env) -> list[int]:
    """The type of every interaction response the bot made (5 = deferred "thinking", 6 = deferred update, 9 = modal)."""
    return [r.json["type"] for r in env.http_requests if r.method == "POST" and r.path.startswith("/interactions/")]


async def attachment_bytes(message: discord.Message) -> bytes:
    (attachment,) = message.attachments
    return await attachment.read()


async def test_anime_command_card_confirm_progress_and_image(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, _ = scene(simcord_env)

    shown = await alice.slash(channel, "anime", text="a girl with blue hair")

    assert shown.acknowledged and callback_types(simcord_env) == [5]
    card = shown.response
    assert card is not None and "a girl with blue hair" in card.content
    assert {c["label"] for c in card.components[0]["components"]} >= {"✅ Draw it", "✏️ Edit"}
    assert "Who/what: girl" in card.content and "Style: Portrait (face paint v2)" in card.content
    assert "anime style" not in card.content, "the prompt hides behind Details"
    assert {c["label"] for c in card.components[1]["components"]} >= {"🔍 Details", "🎨 Style"}

    edits_before = len(webhook_edits(simcord_env))
    request_id = request_of(card)
    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))

    assert pressed.acknowledged and callback_types(simcord_env) == [5, 6]
    progress = channel.history()[-2]
    assert progress.id == card.id  # the card became the status message ...
    assert progress.content == t("progress.done_sketch", "en") and not progress.components  # ... and ended in one line
    status_edits = webhook_edits(simcord_env)[edits_before:]
    assert len(status_edits) >= 5  # queued, started, steps ..., styling, sending, done
    assert [r.json["content"] for r in status_edits[:2]] == [t("queued.waiting", "en"), t("queued", "en", position=1)]
    # live previews: edits that replace the message's attachment, the picture forming, then the sketch
    uploads = [r for r in status_edits if r.json.get("attachments")]
    assert len(uploads) >= 2 and all(r.json["attachments"] == [{"id": 0, "filename": "preview.jpg"}] for r in uploads)
    assert uploads[-1].json["content"] == t("styling", "en")
    (sketch,) = progress.attachments  # edits without a picture kept it
    record = await discord_world.conversation.repository.get_request(request_id)
    assert sketch.filename == "preview.jpg"
    assert await sketch.read() == preview_jpeg(Image.open(record.image(ImageRole.BASE).path), 64), "it shows the sketch"
    (picture,) = pressed.followups
    assert picture.attachments[0].filename == f"voice2anime-{request_id[:8]}.png"
    image = Image.open(io.BytesIO(await attachment_bytes(picture.message)))
    assert image.size == (64, 64)
    assert custom_id(picture, "rr")  # follow-up actions (reroll) are buttons on the picture


async def test_voice_message_edit_modal_new_card_image(
    simcord_env: simcord.Env, discord_world: DiscordWorld, english_voice_notes: dict[str, Any]
) -> None:
    alice = simcord_env.create_user("alice")
    voice = english_voice_notes["ogg"].path.read_bytes()

    await send_voice_message(simcord_env, alice, voice)

    card = alice.dm_channel.last_message
    assert card is not None and "I heard" in card.content and "blue hair" in card.content.lower()
    shown = await alice.click(card, custom_id=custom_id(card, Action.EDIT))
    assert shown.modal is not None, "Edit must answer with the modal itself"
    (text_input,) = [c for row in shown.modal["components"] for c in row.get("components", [row.get("component", {})])]
    assert "blue hair" in text_input["value"].lower()  # prefilled with the transcript

    submitted = await alice.submit_modal(shown, {"text": "a boy with glasses reading a book"})

    assert submitted.acknowledged
    new_card = submitted.response
    assert new_card is not None and "a boy with glasses reading a book" in new_card.content
    pressed = await alice.click(new_card.message, custom_id=custom_id(new_card, Action.CONFIRM))
    (picture,) = pressed.followups
    assert picture.attachments and picture.attachments[0].filename.endswith(".png")


async def test_a_voice_message_is_answered_with_an_ogg_attachment_after_the_card(
    simcord_env: simcord.Env, discord_world: DiscordWorld, tmp_path: Any
) -> None:
    """The card, then the spoken reply as an .ogg attachment (Discord's player) whose description is its words."""
    context = discord_world.conversation.context
    context.transcriber = ScriptedEngine(transcript=whisper_wrote([("hello", 0.9), ("world", 0.9)], "en"))
    narrator = Narrator(TtsConfig(model=str(fake_vits.build(tmp_path / "voice")), threads=1))
    context.voice = VoiceReplies(narrator, context.messenger, default="voice", style_names={})
    alice = simcord_env.create_user("alice")
    await send_voice_message(simcord_env, alice, b"OggS")
    await context.voice.wait_idle()

    *_, card, spoken = alice.dm_channel.history()
    assert "I heard" in card.content and not spoken.content
    (attachment,) = spoken.attachments
    assert attachment.filename == f"{cards.file_name(request_of(card), 'voice')}.ogg"
    assert attachment.description == "I heard: hello world. Shall I draw it?"
    with av.open(io.BytesIO(await attachment.read())) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
    assert not spoken.flags.voice, "discord.py 2.7 cannot send a voice message: an attachment it is"


async def test_keep_what_i_said_round_trips(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    """A corrected word's card carries "Keep what I said"; clicking it edits the card in place, without the button."""
    discord_world.conversation.context.transcriber = ScriptedEngine(transcript=RED_SAN, review=True)
    alice = simcord_env.create_user("alice")
    await send_voice_message(simcord_env, alice, b"OggS")
    card = alice.dm_channel.last_message
    assert card is not None and "I changed 散 → " in card.content
    assert "↩️ Keep what I said" in {c.get("label") for c in components(card)}
    pressed = await alice.click(card, custom_id=custom_id(card, Action.KEEP_SAID))
    assert pressed.acknowledged
    kept = alice.dm_channel.last_message
    assert kept.id == card.id and kept.content.splitlines()[1] == "“一個長頭髮的女孩在雨中撐著紅散”"  # as heard: not a Chinese UI
    assert Action.KEEP_SAID not in {str(c.get("custom_id", "")).split(":")[1] for c in components(kept) if c.get("custom_id")}


def request_of(message: Any) -> str:
    """The request id a card's buttons name."""
    return custom_id(message, Action.CONFIRM).split(":")[2]


async def test_the_edit_form_names_its_card_across_a_restart_and_with_two_forms_open(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)
    first = (await alice.slash(channel, "anime", text="a cat in a hat")).response
    second = (await alice.slash(channel, "anime", text="a dog on a skateboard")).response
    assert first is not None and second is not None
    first_form = await alice.click(first.message, custom_id=custom_id(first, Action.EDIT))
    second_form = await alice.click(second.message, custom_id=custom_id(second, Action.EDIT))  # the newer pending edit
    assert first_form.modal is not None and second_form.modal is not None

    await discord_world.restart(simcord_env)  # the conversation's memory of pending edits is gone
    submitted = await alice.submit_modal(first_form, {"text": "a cat wearing a crown"})

    assert submitted.acknowledged
    new_card = submitted.response
    assert new_card is not None and "a cat wearing a crown" in new_card.content
    assert request_of(new_card) == request_of(first)
    repository = discord_world.conversation.repository
    assert (await repository.get_request(request_of(first))).transcript.edited_text == "a cat wearing a crown"
    assert (await repository.get_request(request_of(second))).transcript.edited_text is None


async def test_the_edit_form_title_comes_from_the_reply(
    simcord_env: simcord.Env, discord_world: DiscordWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversation titles the form in the user's chosen language; without a title the client's language decides."""
    channel, alice, _ = scene(simcord_env)
    card = (await alice.slash(channel, "anime", text="a cat in a hat")).response
    assert card is not None
    titled = await alice.click(card.message, custom_id=custom_id(card, Action.EDIT))
    assert titled.modal is not None and titled.modal["title"] == t("edit.title", "en")

    send = DiscordMessenger.send

    async def untitled(self: DiscordMessenger, origin: Origin, reply: Reply) -> str:
        return await send(self, origin, replace(reply, title="") if reply.kind == "edit_prompt" else reply)

    monkeypatch.setattr(DiscordMessenger, "send", untitled)
    shown = await alice.click(card.message, custom_id=custom_id(card, Action.EDIT))
    assert shown.modal is not None and shown.modal["title"] == t("button.edit", "en")


async def test_other_users_are_refused_ephemerally(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, bob = scene(simcord_env)
    card = (await alice.slash(channel, "anime", text="a cat in a hat")).response
    assert card is not None

    confirm = await bob.click(card.message, custom_id=custom_id(card, Action.CONFIRM))
    edit = await bob.click(card.message, custom_id=custom_id(card, Action.EDIT))

    (refusal,) = confirm.followups
    assert refusal.ephemeral and "Only the person who asked" in refusal.content
    assert edit.modal is None and edit.ephemeral and "Only the person who asked" in edit.response.content
    assert channel.history()[-1].content == card.content  # the card is untouched
    request_id = custom_id(card, Action.CONFIRM).split(":")[2]
    assert (await discord_world.conversation.repository.get_request(request_id)).state.value == "awaiting_confirmation"


async def test_a_press_never_changes_someone_else_s_message(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, bob = scene(simcord_env)
    backend = simcord_env.backend

    # alice's settings are hers alone: ephemeral, bob cannot even see them to press them
    settings = (await alice.slash(channel, "settings")).response
    assert settings is not None and settings.ephemeral
    with pytest.raises(simcord.SetupError, match="not visible"):
        await bob.click(settings.message, custom_id=custom_id(settings, Action.SET_LANGUAGE))

    # her card and the style picker it opened are public: bob's choice is refused privately and neither changes
    card = (await alice.slash(channel, "anime", text="a cat in a hat")).response
    assert card is not None
    (picker,) = (await alice.click(card.message, custom_id=custom_id(card, Action.STYLE))).followups
    refused = await bob.select(picker.message, ["paprika"], custom_id=custom_id(picker, Action.STYLE_SET))
    (refusal,) = refused.followups
    assert refusal.ephemeral and "Only the person who asked" in refusal.content
    assert backend.get_message(channel.id, picker.id).content == picker.content
    assert backend.get_message(channel.id, card.id).content == card.content
    request_id = custom_id(card, Action.CONFIRM).split(":")[2]
    assert (await discord_world.conversation.repository.get_request(request_id)).style == "face_paint_512_v2"

    # a press naming her request on bob's card cannot be made: Discord takes only the components a message carries
    bob_card = (await bob.slash(channel, "anime", text="a red fox in the snow")).response
    assert bob_card is not None
    with pytest.raises(simcord.SetupError, match="No matching component"):
        await alice.click(bob_card.message, custom_id=custom_id(card, Action.CONFIRM))
    assert backend.get_message(channel.id, bob_card.id).content == bob_card.content


async def test_buttons_survive_a_restart(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, _ = scene(simcord_env)
    card = (await alice.slash(channel, "anime", text="a red fox in the snow")).response
    assert card is not None

    await discord_world.restart(simcord_env)
    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))

    assert pressed.acknowledged
    (picture,) = pressed.followups
    assert picture.attachments


async def test_style_picker_is_a_select_and_the_anime_style_option_applies(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)

    shown = await alice.slash(channel, "anime", text="a dragon over a castle", style="paprika")

    card = shown.response
    request_id = custom_id(card, Action.CONFIRM).split(":")[2]
    assert (await discord_world.conversation.repository.get_request(request_id)).style == "paprika"
    picked = await alice.click(card.message, custom_id=custom_id(card, Action.STYLE))
    (picker,) = picked.followups
    (select,) = [c for c in _flat(picker.components) if c["type"] == discord.ComponentType.select.value]
    assert [o["value"] for o in select["options"]] == ["face_paint_512_v2", "paprika"]
    await alice.select(picker.message, ["face_paint_512_v2"], custom_id=custom_id(picker, Action.STYLE_SET))
    assert (await discord_world.conversation.repository.get_request(request_id)).style == "face_paint_512_v2"


def _flat(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for row in components for c in row.get("components", [])]


class SlowEngine:
    """The real engine behind a queue that takes 10 s (virtual) to accept a job."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def submit(self, spec: JobSpec) -> JobHandle:
        await asyncio.sleep(10)
        return await self._engine.submit(spec)


async def test_a_slow_engine_never_misses_the_three_second_deadline(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)
    discord_world.conversation.jobs.queue = SlowEngine(discord_world.engine)
    card = (await alice.slash(channel, "anime", text="a lighthouse in a storm")).response
    assert card is not None

    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))
    assert pressed.acknowledged  # deferred at once; the engine is still "submitting"
    await simcord_env.advance_time(10)  # simcord rejects any first response after 3 s

    (picture,) = pressed.followups
    assert picture.attachments
    assert not simcord_env.errors


async def test_a_picture_over_the_reported_limit_is_re_encoded(
    simcord_env: simcord.Env, discord_world: DiscordWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """simcord always reports 25 MiB (and does not enforce it): the interactions it creates here report 3000 bytes."""
    channel, alice, _ = scene(simcord_env)
    card = (await alice.slash(channel, "anime", text="a neon city at night")).response
    assert card is not None
    request_id = request_of(card)
    limit = 3000
    original = simcord.interactions.base_payload

    def small_limit(*args: Any, **kwargs: Any) -> Any:
        record, payload = original(*args, **kwargs)
        return record, payload | {"attachment_size_limit": limit}

    monkeypatch.setattr(simcord.interactions, "base_payload", small_limit)

    pressed = await alice.click(card.message, custom_id=custom_id(card, Action.CONFIRM))

    (picture,) = pressed.followups
    attachment = picture.attachments[0]
    data = await attachment.read()
    assert attachment.filename == f"voice2anime-{request_id[:8]}.jpg" and len(data) <= limit
    assert Image.open(io.BytesIO(data)).format == "JPEG"


async def test_after_the_token_expires_an_edit_is_posted_as_a_new_message(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    """The progress edit a job watcher makes after 15 minutes goes to a new channel message."""
    channel, alice, _ = scene(simcord_env)
    shown = await alice.slash(channel, "anime", text="a koi pond")
    card = shown.response
    assert card is not None
    ref = f"{channel.id}:{card.id}"
    messenger = discord_world.stack.adapter.messenger
    origin = Origin("discord", str(channel.id), str(alice.id), "alice", "en-US", True)

    await simcord_env.advance_time(16 * 60)
    await messenger.edit(origin, ref, Reply("🖌 Drawing… 50%", kind="progress"))
    await messenger.edit(origin, ref, Reply("🖌 Drawing… 100%", kind="progress"))

    history = channel.history()
    assert history[-1].id != card.id and history[-1].content == "🖌 Drawing… 100%"  # re-pointed: edited, not re-posted
    assert [m.content for m in history].count("🖌 Drawing… 50%") == 0
    assert channel.history()[-2].content == card.content  # the old message is left as it was


async def test_voice_in_a_guild_needs_a_mention_and_photos_become_photo_events(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)
    photo = io.BytesIO()
    Image.new("RGB", (48, 48), "orange").save(photo, "PNG")

    await alice.send(channel, "look", attachments=[("cat.png", photo.getvalue())])
    assert channel.last_message.author.id == alice.id  # not addressed to the bot: ignored

    await alice.send(channel, f"{simcord_env.bot.user.mention} restyle this", attachments=[("cat.png", photo.getvalue())])

    picture = channel.last_message
    assert picture.author.id == simcord_env.bot.user.id and picture.attachments


async def test_guilds_off_the_allow_list_are_answered_privately_and_otherwise_ignored(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)
    adapter = discord_world.stack.adapter
    adapter.config = replace(adapter.config, guild_allowlist=frozenset({1}))

    refused = await alice.slash(channel, "anime", text="a castle")
    await alice.send(channel, f"{simcord_env.bot.user.mention} hello", attachments=[("a.ogg", b"OggS")])

    assert refused.acknowledged and refused.ephemeral  # no "interaction failed" for the user
    assert refused.response is not None and refused.response.content == t("guild.not_allowed", "en")
    assert channel.last_message.author.id == alice.id
    assert not simcord_env.errors


async def test_components_the_bot_cannot_read_are_still_acknowledged(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    """A button from an older bot version, or ours with a payload that does not parse: deferred, not "interaction failed"."""
    channel, alice, _ = scene(simcord_env)
    buttons = [
        {"type": 2, "style": 2, "label": label, "custom_id": cid} for label, cid in (("old", "legacy:7"), ("bad", "v2a:x"))
    ]
    stored = simcord_env.backend.create_message(
        channel.id, simcord_env.bot.user.id, "old buttons", components=[{"type": 1, "components": buttons}]
    )
    await simcord_env.settle()
    message = channel.history()[-1]
    assert message.id == stored.id

    old = await alice.click(message, custom_id="legacy:7")
    bad = await alice.click(message, custom_id="v2a:x")

    assert old.acknowledged and bad.acknowledged
    assert callback_types(simcord_env)[-2:] == [6, 6]
    assert not simcord_env.errors


async def test_oversized_audio_is_refused_without_downloading_it(
    simcord_env: simcord.Env, discord_world: DiscordWorld, downloads: list[str]
) -> None:
    alice = simcord_env.create_user("alice")
    adapter = discord_world.stack.adapter
    adapter.config = replace(adapter.config, audio_max_bytes=1024 * 1024)

    await send_voice_message(simcord_env, alice, b"OggS" + bytes(2 * 1024 * 1024))

    answer = alice.dm_channel.last_message
    assert answer.author.id == simcord_env.bot.user.id
    assert answer.content == t("audio.too_large", "en", size_mb=2.0, limit_mb=1.0)
    assert downloads == []


async def test_oversized_photos_are_refused_without_downloading_them(
    simcord_env: simcord.Env, discord_world: DiscordWorld, downloads: list[str]
) -> None:
    channel, alice, _ = scene(simcord_env)
    adapter = discord_world.stack.adapter
    adapter.config = replace(adapter.config, image_max_bytes=1000)
    photo = io.BytesIO()
    Image.effect_noise((64, 64), 100).convert("RGB").save(photo, "PNG")
    assert len(photo.getvalue()) > 1000

    await alice.send(channel, f"{simcord_env.bot.user.mention} restyle this", attachments=[("cat.png", photo.getvalue())])

    answer = channel.last_message
    size_mb = len(photo.getvalue()) / 1024 / 1024
    assert answer.author.id == simcord_env.bot.user.id
    assert answer.content == t("image.too_large", "en", size_mb=size_mb, limit_mb=1000 / 1024 / 1024)
    assert downloads == []
    await alice.send(channel, f"{simcord_env.bot.user.mention} this one is small", attachments=[("dot.png", tiny_png())])
    assert downloads == ["dot.png"] and channel.last_message.attachments  # under the limit: fetched and restyled


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names of the attachments the bot fetches."""
    fetched: list[str] = []
    read = discord.Attachment.read

    async def spy(self: discord.Attachment, **kwargs: Any) -> bytes:
        fetched.append(self.filename)
        return await read(self, **kwargs)

    monkeypatch.setattr(discord.Attachment, "read", spy)
    return fetched


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(buffer, "PNG")
    return buffer.getvalue()


async def test_the_conversations_commands_are_synced_with_zh_descriptions(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    channel, alice, _ = scene(simcord_env)
    assert set(alice.available_commands(channel)) == set(BY_COMMAND)
    commands = {c["name"]: c for c in simcord_env.backend.visible_commands(user_id=alice.id, channel_id=channel.id)}
    assert set(commands) == set(BY_COMMAND)
    described = [(f"command.{name}", command) for name, command in commands.items()]
    described += [(f"command.anime.{option['name']}", option) for option in commands["anime"]["options"]]
    for key, item in described:
        zh = t(key, "zh-Hans")
        assert item["description"] == t(key, "en")
        # zh-TW clients read the Traditional text OpenCC makes from the Simplified one (s2twp), with nothing Simplified left
        assert item["description_localizations"] == {"zh-CN": zh, "zh-TW": taiwan_phrasing(zh)}, key
        assert simplified(zh) == zh and to_script(taiwan_phrasing(zh), "zh-Hant") == taiwan_phrasing(zh), key
        assert not item.get("name_localizations")  # /anime, /cancel ... as the help text names them
    options = {o["name"]: o for o in commands["anime"]["options"]}
    assert options["text"]["max_length"] == config().max_text_chars
    assert options["text"]["description_localizations"]["zh-CN"] == t("command.anime.text", "zh-Hans")
    assert options["text"]["description_localizations"]["zh-TW"] == "要畫什麼，例如：櫻花樹下藍色頭髮的女孩"
    assert commands["settings"]["description_localizations"]["zh-TW"] == "語言、風格、作畫前確認"
    assert [c["value"] for c in options["style"]["choices"]] == ["face_paint_512_v2", "paprika"]


async def test_start_and_cancel(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, _ = scene(simcord_env)

    started = await alice.slash(channel, "start")
    cancelled = await alice.slash(channel, "cancel")

    assert started.response is not None and started.response.content == t("start", "en", name="alice")
    assert cancelled.response is not None and cancelled.response.content == t("cancel.nothing", "en")


def test_from_settings_and_minimal_intents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "secret-token")
    monkeypatch.setenv("DISCORD_GUILD_ALLOWLIST", "111, 222")
    adapter = DiscordAdapter.from_settings(Settings())
    assert adapter.config.guild_allowlist == {111, 222}
    assert adapter.allows(None) and adapter.allows(111) and not adapter.allows(333)
    intents = adapter.client.intents
    assert intents.guilds and intents.guild_messages and intents.dm_messages
    assert not (intents.message_content or intents.members or intents.presences)
    assert "secret-token" not in repr(adapter.config)


async def test_user_text_is_shown_literally_never_as_a_link_or_a_ping(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    channel, alice, _ = scene(simcord_env)
    hostile = "[Free Nitro](https://evil.example) [Nitro 2](https://evil.example/2) @everyone @here **bold** ||spoiler|| a cat"

    card = (await alice.slash(channel, "anime", text=hostile)).response

    assert card is not None
    content = card.content
    # Discord shows an escaped character as itself: the card reads like the description, but nothing in it is markup.
    assert unescaped(content).count(hostile) == 1
    assert not re.search(r"(?<!\\)(?:\\\\)*\[[^\]]*\]\(", content), f"a live masked link in {content!r}"
    assert "@everyone" not in content and "@here" not in content
    assert "**bold**" not in content and "||spoiler||" not in content
    sends = [r for r in simcord_env.http_requests if r.method in ("POST", "PATCH") and isinstance(r.json, dict) and "content" in r.json]
    assert sends and all(r.json.get("allowed_mentions") == {"parse": []} for r in sends)  # and nobody is pinged anyway


def unescaped(content: str) -> str:
    """Message content as Discord shows it: backslash escapes and the zero-width spaces that break mentions removed."""
    return re.sub(r"\\(.)", r"\1", content).replace("\u200b", "")


# --- a server with a member and an admin ------------------------------------------------------

#: The /settings card in a server channel, as its member alice and its admin bob see it (ephemeral to each).
MEMBER_CARD = """Settings
Just for you, alice:
• Language: automatic (follows your app: English)
• Default style: Portrait (face paint v2)

For everyone here (only admins can change these):
• Chat language: automatic (each member's app)
• Confirm before drawing: on
• Content policy: as the bot is set
• Content policy here: strict — for everyone; pictures are checked"""
ADMIN_CARD_AFTER = MEMBER_CARD.replace("alice", "bob").replace("drawing: on", "drawing: off")


def labels(message: Any) -> list[str]:
    return [str(c.get("label")) for c in components(message) if c.get("type") == discord.ComponentType.button.value]


async def chat_settings_of(world: DiscordWorld, channel: simcord.ChannelHandle) -> Any:
    repository = world.conversation.repository
    return await repository.get_chat_settings(await repository.get_or_create_chat("discord", str(channel.id), ChatKind.GROUP))


async def test_in_a_server_members_change_only_their_own_settings_and_admins_the_channel_s(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    mods = guild.create_role("mods", permissions=discord.Permissions(manage_channels=True))
    alice_user, bob_user = simcord_env.create_user("alice"), simcord_env.create_user("bob")
    alice, bob = guild.add_member(alice_user), guild.add_member(bob_user, roles=[mods])

    # alice, a member: her /settings is for her eyes only
    shown = await alice.slash(channel, "settings")
    card = shown.response
    assert card is not None and card.ephemeral and card.content == MEMBER_CARD  # nothing in it needed escaping
    print(f"\n--- Discord /settings, member ---\n{card.content}\n{labels(card)}")
    assert labels(card) == ["🌐 My language", "🎨 My style", "🌐 Chat language", "Confirm on/off", "🛡 Content policy"]
    public = len(channel.history())

    # ... so are the refusals of the channel's settings
    for action in (Action.TOGGLE_CONFIRM, Action.CHAT_LANGUAGE):
        refused = await alice.click(card.message, custom_id=custom_id(card, action))
        (refusal,) = refused.followups
        assert refusal.ephemeral and unescaped(refusal.content) == t(
            "settings.admins_only", "en", language="🌐 My language", style="🎨 My style"
        )
    assert await chat_settings_of(discord_world, channel) == ChatOverrides(), "nothing changed"

    # her own language: a select (ephemeral), and the card again in Traditional Chinese
    opened = await alice.click(card.message, custom_id=custom_id(card, Action.SET_LANGUAGE))
    (picker,) = opened.followups
    assert picker.ephemeral
    (select,) = [c for c in components(picker) if c["type"] == discord.ComponentType.select.value]
    assert [o["value"] for o in select["options"]] == ["auto", "en", "zh-Hans", "zh-Hant"]
    picked = await alice.select(picker.message, ["zh-Hant"], custom_id=custom_id(picker, Action.SET_LANGUAGE))
    assert [f.content for f in picked.followups] == [t("settings.saved", "zh-Hant")] and picked.followups[0].ephemeral
    assert "• 語言：中文（繁體）" in unescaped(simcord_env.backend.get_message(channel.id, picker.id).content)
    assert len(channel.history()) == public, "nothing public was posted"

    # bob (Manage Channels) turns confirmation off for the channel; his card changes in place
    shown = await bob.slash(channel, "settings")
    card = shown.response
    assert card is not None and card.ephemeral
    toggled = await bob.click(card.message, custom_id=custom_id(card, Action.TOGGLE_CONFIRM))
    assert [f.content for f in toggled.followups] == [t("settings.saved", "en")]
    after = simcord_env.backend.get_message(channel.id, card.id).content
    print(f"--- Discord /settings, admin, after turning confirmation off ---\n{after}")
    assert after == ADMIN_CARD_AFTER
    assert (await chat_settings_of(discord_world, channel)).confirm_before_generate is False
    assert len(channel.history()) == public

    # personal settings stay their owner's: bob still reads English, alice Traditional Chinese
    assert (await bob.slash(channel, "help")).response.content == literal(cards.help_text("en", group=True, commands=COMMAND_NAMES).text)
    assert (await alice.slash(channel, "help")).response.content == literal(cards.help_text("zh-Hant", group=True, commands=COMMAND_NAMES).text)


def literal(text: str) -> str:
    return literal_content(text)


async def test_help_in_a_server_and_in_dms_in_english_simplified_and_traditional(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("art")
    for name, lang in (("ann", "en"), ("bo", "zh-Hans"), ("cy", "zh-Hant")):
        user = simcord_env.create_user(name)
        member = guild.add_member(user)
        if lang != "en":  # simcord's clients are en-US: the language comes from /settings
            card = (await user.slash("settings")).response
            picker = (await user.click(card.message, custom_id=custom_id(card, Action.SET_LANGUAGE))).followups[0]
            await user.select(picker.message, [lang], custom_id=custom_id(picker, Action.SET_LANGUAGE))
        in_dm = await user.slash("help")
        in_server = await member.slash(channel, "help")
        assert in_dm.response.content == literal(cards.help_text(lang, group=False, commands=COMMAND_NAMES).text), lang
        assert in_server.response.content == literal(cards.help_text(lang, group=True, commands=COMMAND_NAMES).text), lang
        assert in_server.response.ephemeral and not in_dm.response.ephemeral
        print(f"\n--- Discord /help {lang}, server ---\n{unescaped(in_server.response.content)}")


# --- cards that stay true ---------------------------------------------------------------------


def choose_language(user: Any, card: Any, lang: str) -> Any:
    """Open the language picker on settings ``card`` and choose ``lang`` on it (``user`` in the card's channel)."""

    async def choose() -> Any:
        (picker,) = (await user.click(card.message, custom_id=custom_id(card, Action.SET_LANGUAGE))).followups
        await user.select(picker.message, [lang], custom_id=custom_id(picker, Action.SET_LANGUAGE))
        return picker

    return choose()


async def test_a_settings_card_reads_the_language_chosen_on_its_picker(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    """In a server (ephemeral) and in a DM: the card the picker was opened from is edited in place, in the language chosen."""
    channel, alice, _ = scene(simcord_env)
    backend = simcord_env.backend
    card = (await alice.slash(channel, "settings")).response
    assert card is not None and card.ephemeral and "• Language: automatic (follows your app: English)" in card.content

    picker = await choose_language(alice, card, "zh-Hant")

    shown = backend.get_message(channel.id, card.id)
    print(f"\n--- Discord /settings after choosing 中文（繁體） on its picker ---\n{unescaped(shown.content)}\n{labels(shown)}")
    assert unescaped(shown.content).splitlines()[:4] == ["設定", "只對你（alice）生效：", "• 語言：中文（繁體）", "• 預設風格：人像（face paint v2）"]
    assert labels(shown) == ["🌐 我的語言", "🎨 我的風格", "🌐 聊天語言", "切換作畫前確認", "🛡 內容尺度"]
    assert backend.get_message(channel.id, picker.id).content == shown.content

    carol = simcord_env.create_user("carol")
    card = (await carol.slash("settings")).response
    assert card is not None and not card.ephemeral
    await choose_language(carol, card, "zh-Hans")
    shown = backend.get_message(carol.dm_channel.id, card.id)
    assert unescaped(shown.content).splitlines()[:2] == ["设置", "语言：中文（简体）"]
    assert labels(shown)[1:] == ["🎨 风格", "切换作画前确认"]


async def test_a_card_replaced_through_the_edit_form_has_no_buttons_left(simcord_env: simcord.Env, discord_world: DiscordWorld) -> None:
    """The Edit press was answered with the form, so its interaction has no message: the old card is edited as before."""
    discord_world.conversation.context.transcriber = ScriptedEngine(
        transcript=whisper_wrote([("a", 0.9), ("girl", 0.9), ("with", 0.9), ("blue", 0.9), ("hair", 0.9)], "en")
    )
    backend = simcord_env.backend
    alice = simcord_env.create_user("alice")
    await send_voice_message(simcord_env, alice, b"OggS")
    voice_card = alice.dm_channel.last_message
    channel, member, _ = scene(simcord_env)
    typed_card = (await member.slash(channel, "anime", text="a cat in a hat")).response
    assert typed_card is not None

    for user, where, card in ((alice, alice.dm_channel, voice_card), (member, channel, typed_card)):
        form = await user.click(card if card is voice_card else card.message, custom_id=custom_id(card, Action.EDIT))
        assert form.modal is not None
        new_card = (await user.submit_modal(form, {"text": "a boy reading a book"})).response
        assert new_card is not None and "a boy reading a book" in new_card.content and custom_id(new_card, Action.CONFIRM)
        old = backend.get_message(where.id, card.id)
        assert unescaped(old.content) == t("card.superseded", "en"), where
        assert not list(components(old)), f"the replaced card in {where} still has buttons"
    assert not simcord_env.errors


async def test_after_15_minutes_a_private_card_is_never_posted_for_everyone(
    simcord_env: simcord.Env, discord_world: DiscordWorld
) -> None:
    """An ephemeral card whose interaction expired cannot be changed, so it is left as it is; a DM's card is edited in place."""
    channel, alice, _ = scene(simcord_env)
    backend = simcord_env.backend
    old = (await alice.slash(channel, "settings")).response
    carol = simcord_env.create_user("carol")
    old_dm = (await carol.slash("settings")).response
    assert old is not None and old_dm is not None
    await simcord_env.advance_time(16 * 60)
    public, in_dm = len(channel.history()), len(carol.dm_channel.history())

    card = (await alice.slash(channel, "settings")).response
    await choose_language(alice, card, "zh-Hant")
    card_dm = (await carol.slash("settings")).response
    await choose_language(carol, card_dm, "zh-Hant")

    assert len(channel.history()) == public, "nothing of alice's was posted in the channel"
    assert backend.get_message(channel.id, old.id).content == old.content
    assert "• 語言：中文（繁體）" in unescaped(backend.get_message(channel.id, card.id).content)
    assert "語言：中文（繁體）" in unescaped(backend.get_message(carol.dm_channel.id, old_dm.id).content).splitlines()
    assert len(carol.dm_channel.history()) == in_dm + 2, "her new card and its picker; the old card changed in place"
