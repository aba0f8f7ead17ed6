"""A model that is not there: the job fails with its own kind, the operator is told once, never with a traceback.

Through the real engine: a LocalJobQueue over the real AnimePipeline, with a drawing model directory that does not
exist and a style whose weights are missing while downloads are off.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from db import RequestState as S
from engine.api import LOADING, JobEvent, JobFailed, JobFinished, JobHandle, JobProgress, JobSpec, JobStarted, Transcript
from engine.image.animegan import AnimeGAN
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.speech.asr import AsrConfig, SpeechRecognizer
from engine.speech.audio import AudioLimits
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, png


async def drain(handle: JobHandle) -> list[JobEvent]:
    async with asyncio.timeout(60):
        return [event async for event in handle.events()]


def text_job(job_id: str) -> JobSpec:
    return JobSpec(job_id, "amy", "text", "face_paint_512_v2", positive="a girl with blue hair", negative="", seed=1)


async def last_event(model: Path, checkpoints: Path, spec: JobSpec) -> JobEvent:
    """The terminal event of ``spec`` on the real engine with drawing model ``model`` and style weights in ``checkpoints``
    (downloads off)."""
    text_to_image = TextToImage(DiffusionConfig(model=str(model), width=64, height=64, steps=2))
    animegan = AnimeGAN(checkpoints, backend="torch", download=False)
    engine = LocalJobQueue(AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2"))
    await engine.start()
    try:
        return (await drain(await engine.submit(spec)))[-1]
    finally:
        await engine.close()


async def test_a_missing_drawing_model_fails_as_such_and_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "no-such-sd-model"
    text_to_image = TextToImage(DiffusionConfig(model=str(missing), width=64, height=64, steps=2))
    animegan = AnimeGAN(tmp_path / "checkpoints", backend="torch", download=False)
    engine = LocalJobQueue(AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2"))
    caplog.set_level(logging.INFO)
    await engine.start()
    try:
        failures = []
        for job_id in ("r1", "r2"):
            events = await drain(await engine.submit(text_job(job_id)))
            failures.append(events[-1])
    finally:
        await engine.close()
    for failed in failures:
        assert isinstance(failed, JobFailed)
        assert failed.error_key == "model.unavailable.drawing"
        assert dict(failed.params) == {"model": "drawing"}
        assert str(missing) in failed.detail  # the operator's fix names the path
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].getMessage().startswith("the drawing model is not available: ")
    assert not any(r.exc_info for r in caplog.records)


async def test_missing_style_weights_with_downloads_off_fail_as_a_style(tmp_path: Path, tiny_sd_dir: Path) -> None:
    photo = JobSpec("p1", "amy", "photo", "face_paint_512_v2", source_png=png())
    failed = await last_event(tiny_sd_dir, tmp_path / "empty-checkpoints", photo)
    assert isinstance(failed, JobFailed)
    assert (failed.error_key, dict(failed.params)) == ("model.unavailable.style", {"model": "style"})
    assert "face_paint_512_v2" in failed.detail


async def test_the_fix_also_names_the_other_models_not_here_yet(tmp_path: Path) -> None:
    """A newcomer with nothing installed learns every missing model at once, not one per failed request."""
    missing = tmp_path / "no-such-sd-model"
    photo = JobSpec("p1", "amy", "photo", "face_paint_512_v2", source_png=png())
    failed = await last_event(missing, tmp_path / "empty-checkpoints", photo)
    assert isinstance(failed, JobFailed) and failed.error_key == "model.unavailable.style"
    fix, rest = failed.detail.split("\n\nAlso not on this machine yet (each is fetched on first use when it can be):\n")
    assert "face_paint_512_v2" in fix, failed.detail
    assert rest.splitlines()[0] == f"• drawing: {missing}: no Stable Diffusion model at {missing} (SD_MODEL)"
    assert any(line.startswith("• style: ") and "AnimeGANv2 styles" in line for line in rest.splitlines())


async def test_the_fix_names_what_a_composition_needs_too(tmp_path: Path) -> None:
    """Models fetched only when asked for are named when the job asks for them: a photo's depth needs its ControlNet and estimator."""
    missing = tmp_path / "no-such-sd-model"
    depth = JobSpec("d1", "amy", "text", "face_paint_512_v2", positive="a castle", seed=1, control="depth", control_png=png())
    failed = await last_event(missing, tmp_path / "empty-checkpoints", depth)
    assert isinstance(failed, JobFailed) and failed.error_key == "model.unavailable.control"  # the depth map comes first
    fix, rest = failed.detail.split("Also not on this machine yet")
    assert "depth-anything/Depth-Anything-V2-Small-hf" in fix and "Depth-Anything" not in rest
    assert f"• drawing: {missing}: no Stable Diffusion model at {missing} (SD_MODEL)" in rest
    assert "• composition (depth): lllyasviel/control_v11f1p_sd15_depth (about 1.4 GB)" in rest
    assert "lineart" not in rest and "upscale" not in rest  # not what this picture needs


class WhisperNotYetHere(ScriptedEngine):
    """The scripted job queue, with the real speech recognizer pointed at a Whisper model directory (missing at first)."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        self.recognizer = SpeechRecognizer(
            AsrConfig(model=str(model_dir), device="cpu", compute_type="float32", beam_size=2, cpu_threads=1),
            AudioLimits(max_bytes=10_000_000, max_seconds=60),
        )

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        return await self.recognizer.transcribe_async(audio, language=language)


def actions(reply) -> list[str]:
    return [b.action for row in reply.buttons for b in row]


async def test_a_voice_note_waits_for_the_speech_model_and_retry_listens_again(
    sqlite_url, make_harness, tmp_path: Path, english_voice_notes, whisper_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "Something went wrong": the user reads which part is missing, the request waits with Retry, nothing is lost.

    The operator's log has the fix once, no traceback; once the model is in place, Retry shows what was heard.
    """
    model_dir = tmp_path / "whisper-base"
    engine = WhisperNotYetHere(model_dir)
    h = await make_harness(sqlite_url, engine)
    clip = english_voice_notes["ogg"]
    caplog.set_level(logging.INFO)
    for _ in range(2):
        await h.voice("amy", clip.path.read_bytes())
        ref, card = h.messenger.last("card")
        assert card.text == "The speech model isn't installed on this server yet; the operator has been told how to add it."
        assert [b.label for row in card.buttons for b in row] == ["🔁 Retry", "✖️ Cancel"]
        assert str(model_dir) in card.fix  # the studio shows the operator's fix
        assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("the speech model is not available: "), warnings
    assert str(model_dir) in warnings[0]
    assert not any(r.exc_info for r in caplog.records)

    shutil.copytree(whisper_model_dir, model_dir)  # the operator puts the model in place
    await h.press("amy", button(card, Action.RETRY_MISSING), ref)
    ref_after, heard = h.messenger.last("card")
    assert ref_after == ref and heard.text.startswith("I heard (English, ")
    assert Action.CONFIRM in actions(heard)
    record = await h.request(card.request_id)
    assert record.state is S.AWAITING_CONFIRMATION and record.error_key is None


async def test_a_voice_note_waiting_for_the_speech_model_survives_a_restart(
    sqlite_url, make_harness, tmp_path: Path, english_voice_notes, whisper_model_dir: Path
) -> None:
    """The fix (WHISPER_MODEL) takes a restart: Retry after it still listens to the voice note, not "it is gone"."""
    model_dir = tmp_path / "whisper-base"
    before = await make_harness(sqlite_url, WhisperNotYetHere(model_dir))
    await before.voice("amy", english_voice_notes["ogg"].path.read_bytes())
    ref, card = before.messenger.last("card")
    assert card.text == "The speech model isn't installed on this server yet; the operator has been told how to add it."

    shutil.copytree(whisper_model_dir, model_dir)  # the operator puts the model in place and restarts
    after = await make_harness(sqlite_url, WhisperNotYetHere(model_dir))
    await after.press("amy", button(card, Action.RETRY_MISSING), ref)
    _, heard = after.messenger.last("card")
    assert heard.text.startswith("I heard (English, ") and "blue hair" in heard.text.lower()
    assert not list((tmp_path / "data" / "waiting-audio").iterdir()), "the recording is not kept once listened to"


async def test_a_drawing_without_the_drawing_model_keeps_its_card_with_retry(sqlite_url, make_harness) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a girl with blue hair")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM))
    (spec,) = engine.specs
    engine.handles.pop(spec.job_id).publish(
        JobFailed("model.unavailable.drawing", "SD_MODEL=/models/sd: put a diffusers model there", {"model": "drawing"})
    )
    await h.settle()
    ref, again = h.messenger.last("card")
    lines = again.text.splitlines()
    assert lines[1] == "“a girl with blue hair”"  # the card keeps its words
    assert lines[-1] == "The drawing model isn't installed on this server yet; the operator has been told how to add it."
    assert actions(again)[0] == Action.RETRY_MISSING and Action.CONFIRM not in actions(again)
    assert again.fix == "SD_MODEL=/models/sd: put a diffusers model there"
    record = await h.request(spec.job_id)
    assert (record.state, record.error_key) == (S.AWAITING_CONFIRMATION, "model.unavailable.drawing")

    await h.press("amy", button(again, Action.RETRY_MISSING), ref)  # the operator added it: Retry draws the same card
    assert [s.job_id for s in engine.specs] == [spec.job_id, spec.job_id]
    assert engine.specs[1].seed == spec.seed and engine.specs[1].positive == spec.positive
    assert (await h.request(spec.job_id)).state is S.QUEUED


async def test_a_photo_without_its_model_waits_with_retry_and_retry_restyles_it(sqlite_url, make_harness) -> None:
    """A photo has no card, yet it is not lost either: it says which part is missing with Retry and Cancel."""
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.photo("amy", png())
    (spec,) = engine.specs
    engine.handles.pop(spec.job_id).publish(
        JobFailed("model.unavailable.image_check", "POLICY_ANIME_MODEL=/models/wd: put the tagger there", {"model": "image_check"})
    )
    await h.settle()
    ref, waiting = h.messenger.last("card")
    assert waiting.text == "The picture check isn't installed on this server yet; the operator has been told how to add it."
    assert [b.label for row in waiting.buttons for b in row] == ["🔁 Retry", "✖️ Cancel"]
    assert waiting.fix == "POLICY_ANIME_MODEL=/models/wd: put the tagger there"  # the studio shows the operator's fix
    record = await h.request(spec.job_id)
    assert (record.state, record.error_key) == (S.AWAITING_CONFIRMATION, "model.unavailable.image_check")

    await h.press("amy", button(waiting, Action.RETRY_MISSING), ref)  # the operator added it: Retry restyles the same photo
    assert [s.job_id for s in engine.specs] == [spec.job_id, spec.job_id]
    assert engine.specs[1].kind == "photo" and engine.specs[1].source_png == spec.source_png
    assert (await h.request(spec.job_id)).state is S.QUEUED


async def test_the_first_picture_says_the_drawing_model_is_loading(tmp_path: Path, tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> None:
    """The engine reports "loading" once, before the first drawing; later pictures go straight to drawing."""
    text_to_image = TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))
    animegan = AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False)
    engine = LocalJobQueue(AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2"))
    await engine.start()
    try:
        first = await drain(await engine.submit(text_job("r1")))
        second = await drain(await engine.submit(replace(text_job("r2"), seed=2)))
    finally:
        await engine.close()
    stages = [event.stage for event in first if isinstance(event, JobProgress)]
    assert stages[0] == LOADING and stages[1] == "diffusion" and stages.count(LOADING) == 1
    assert LOADING not in [event.stage for event in second if isinstance(event, JobProgress)]
    assert isinstance(first[-1], JobFinished) and isinstance(second[-1], JobFinished)


async def test_the_status_says_loading_not_drawing_zero_percent(sqlite_url, make_harness) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a girl with blue hair")
    ref, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    (spec,) = engine.specs
    handle = engine.handles[spec.job_id]
    handle.publish(JobStarted())
    handle.publish(JobProgress(0.0, LOADING))
    loading = "📦 Loading the drawing model… The first time it is downloaded (a few GB), which can take a while."
    await shown(h, ref, lambda text: text == loading)
    handle.publish(JobProgress(0.4, "diffusion"))
    await shown(h, ref, lambda text: text.startswith("🖌 Drawing… "))


async def shown(h, ref: str, check) -> None:
    """Wait (at most 30 s) until message ``ref`` reads as ``check`` wants."""
    async with asyncio.timeout(30):
        while not check(h.messenger.messages[ref].text):
            await asyncio.sleep(0.01)
