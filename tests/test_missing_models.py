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
from engine.api import JobEvent, JobFailed, JobHandle, JobSpec
from engine.diffusion import DiffusionConfig, TextToImage
from engine.local import LocalEngine
from engine.missing_models import MODEL_UNAVAILABLE
from engine.pipeline import AnimePipeline
from tests.support.scripted_engine import png


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
        assert failed.error_key == MODEL_UNAVAILABLE
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
    assert (failed.error_key, dict(failed.params)) == (MODEL_UNAVAILABLE, {"model": "style"})
    assert "face_paint_512_v2" in failed.detail
