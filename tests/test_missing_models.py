"""A model that is not there: the job fails with its own kind, the operator is told once, never with a traceback.

Through the real engine: a LocalEngine over the real AnimePipeline, with a drawing model directory that does not
exist and a style whose weights are missing while downloads are off.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from engine.animegan import AnimeGAN
from engine.api import JobEvent, JobFailed, JobHandle, JobSpec, Transcript
from engine.asr import AsrConfig, SpeechRecognizer
from engine.audio import AudioLimits
from engine.diffusion import DiffusionConfig, TextToImage
from engine.local import LocalEngine
from engine.pipeline import AnimePipeline
from handlers import cards
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, png


async def drain(handle: JobHandle) -> list[JobEvent]:
    async with asyncio.timeout(60):
        return [event async for event in handle.events()]


def text_job(job_id: str) -> JobSpec:
    return JobSpec(job_id, "amy", "text", "face_paint_512_v2", positive="a girl with blue hair", negative="", seed=1)


async def test_a_missing_drawing_model_fails_as_such_and_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "no-such-sd-model"
    text_to_image = TextToImage(DiffusionConfig(model=str(missing), width=64, height=64, steps=2))
    animegan = AnimeGAN(tmp_path / "checkpoints", backend="torch", download=False)
    engine = LocalEngine(None, AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2"))  # type: ignore[arg-type]  # no speech here
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
    text_to_image = TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))
    animegan = AnimeGAN(tmp_path / "empty-checkpoints", backend="torch", download=False)
    engine = LocalEngine(None, AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2"))  # type: ignore[arg-type]  # no speech here
    await engine.start()
    try:
        photo = JobSpec("p1", "amy", "photo", "face_paint_512_v2", source_png=png())
        (*_, failed) = await drain(await engine.submit(photo))
    finally:
        await engine.close()
    assert isinstance(failed, JobFailed)
    assert (failed.error_key, dict(failed.params)) == ("model.unavailable.style", {"model": "style"})
    assert "face_paint_512_v2" in failed.detail


class NoWhisperHere(ScriptedEngine):
    """The scripted job queue, with the real speech recognizer pointed at a Whisper model directory that does not exist."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        self.recognizer = SpeechRecognizer(AsrConfig(model=str(model_dir)), AudioLimits(max_bytes=10_000_000, max_seconds=60))

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        return await self.recognizer.transcribe_async(audio, language=language)


async def test_a_voice_note_without_the_speech_model_says_so(
    sqlite_url, make_harness, tmp_path: Path, english_voice_notes, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "Something went wrong": the user reads which part is missing, the operator's log has the fix once, no traceback."""
    h = await make_harness(sqlite_url, NoWhisperHere(tmp_path / "whisper-base"))
    clip = next(iter(english_voice_notes.values()))
    caplog.set_level(logging.INFO)
    for _ in range(2):
        await h.voice("amy", clip.path.read_bytes())
        assert h.messenger.calls[-1].reply.text == (
            "The speech model isn't installed on this server yet; the operator has been told how to add it."
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("the speech model is not available: "), warnings
    assert str(tmp_path / "whisper-base") in warnings[0]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_drawing_without_the_drawing_model_says_so(sqlite_url, make_harness) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a girl with blue hair")
    _, card = h.messenger.last("card")
    await h.press("amy", button(card, cards.CONFIRM))
    (spec,) = engine.specs
    engine.handles.pop(spec.job_id).publish(
        JobFailed("model.unavailable.drawing", "SD_MODEL=/models/sd: put a diffusers model there", {"model": "drawing"})
    )
    await h.settle()
    assert h.messenger.calls[-1].reply.text == (
        "The drawing model isn't installed on this server yet; the operator has been told how to add it."
    )
