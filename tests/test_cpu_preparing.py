"""The first picture after the drawing model is converted for this CPU says so: engine stages and the status message."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.api import LOADING, PREPARING, JobEvent, JobFinished, JobHandle, JobProgress, JobSpec, JobStarted
from engine.image import diffusion
from engine.image.animegan import AnimeGAN
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine


async def drain(handle: JobHandle) -> list[JobEvent]:
    async with asyncio.timeout(60):
        return [event async for event in handle.events()]


async def draw_once(tiny_sd_dir: Path, animegan_checkpoints_dir: Path, models: Path) -> list[JobEvent]:
    """One text job through a fresh local engine whose drawing model runs its UNet on ONNX Runtime."""
    diffusion.clear_cache()
    config = DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2, device="cpu", backend="onnx", cache_dir=models)
    animegan = AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False)
    engine = LocalJobQueue(AnimePipeline(TextToImage(config), animegan, default_style="face_paint_512_v2"))
    await engine.start()
    try:
        spec = JobSpec("r1", "amy", "text", "face_paint_512_v2", positive="a girl with blue hair", negative="", seed=1)
        return await drain(await engine.submit(spec))
    finally:
        await engine.close()
        diffusion.clear_cache()


async def test_the_export_is_reported_once_before_drawing_with_no_progress(
    tmp_path: Path, tiny_sd_dir: Path, animegan_checkpoints_dir: Path
) -> None:
    first = await draw_once(tiny_sd_dir, animegan_checkpoints_dir, tmp_path / "models")
    progress = [event for event in first if isinstance(event, JobProgress)]
    assert [event.stage for event in progress[:3]] == [LOADING, PREPARING, "diffusion"]
    assert progress[1].fraction == 0.0 and isinstance(first[-1], JobFinished)
    # The next start finds the export in the models directory: loading, but nothing to prepare.
    again = await draw_once(tiny_sd_dir, animegan_checkpoints_dir, tmp_path / "models")
    stages = [event.stage for event in again if isinstance(event, JobProgress)]
    assert stages[0] == LOADING and PREPARING not in stages and isinstance(again[-1], JobFinished)


async def test_the_status_says_the_model_is_being_prepared_then_drawing(sqlite_url, make_harness) -> None:
    engine = ScriptedEngine()
    h = await make_harness(sqlite_url, engine)
    await h.command("amy", "anime", "a girl with blue hair")
    ref, card = h.messenger.last("card")
    await h.press("amy", button(card, Action.CONFIRM), ref)
    (spec,) = engine.specs
    handle = engine.handles[spec.job_id]
    handle.publish(JobStarted())
    handle.publish(JobProgress(0.0, LOADING))
    handle.publish(JobProgress(0.0, PREPARING))
    await shown(h, ref, lambda text: text.startswith("📦 Preparing the drawing model for this CPU (once, a few minutes)…"))
    handle.publish(JobProgress(0.4, "diffusion"))
    await shown(h, ref, lambda text: text.startswith("🖌 Drawing… "))


async def shown(h, ref: str, check) -> None:
    """Wait (at most 30 s) until message ``ref`` reads as ``check`` wants."""
    async with asyncio.timeout(30):
        while not check(h.messenger.messages[ref].text):
            await asyncio.sleep(0.01)
