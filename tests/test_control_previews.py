"""Live previews of a picture drawn with a ControlNet (a photo with words, a sketch), through the job system."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.api import JobFinished, JobProgress, JobSpec
from engine.image.animegan import AnimeGAN
from engine.image.control import ControlConfig, ControlNets
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.jobs.runner import DIFFUSION_SHARE, run_job
from tests.test_control import png_of, sketch

STEPS = 4


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pipeline(tiny_sd_dir: Path, tiny_controlnet_dir: Path, checkpoints: Path, *, previews: bool) -> AnimePipeline:
    text_to_image = TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=STEPS, scheduler="lcm"))
    nets = ControlNets(ControlConfig(models={"scribble": str(tiny_controlnet_dir)}))
    animegan = AnimeGAN(checkpoints, device="cpu", backend="torch", download=False)
    return AnimePipeline(text_to_image, animegan, default_style="paprika", previews=previews, control=nets)


def control_spec(job_id: str) -> JobSpec:
    return JobSpec(job_id, "u1", "text", "paprika", positive="a cat", seed=2, control="scribble", control_png=png_of(sketch()))


async def test_a_control_job_reports_previews_then_the_sketch_through_the_job_queue(
    tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path
) -> None:
    engine = LocalJobQueue(pipeline(tiny_sd_dir, tiny_controlnet_dir, animegan_checkpoints_dir, previews=True))
    await engine.start()
    try:
        handle = await engine.submit(control_spec("p1"))
        events = [event async for event in handle.events()]
    finally:
        await engine.close()
    assert isinstance(events[-1], JobFinished), events
    reports = [event for event in events if isinstance(event, JobProgress)]
    fractions = [report.fraction for report in reports]
    assert fractions == sorted(fractions)
    shown = [report for report in reports if report.preview is not None]
    assert [report.stage for report in shown] == ["diffusion"] * 3 + ["style"]
    *drawing, drawn = shown
    assert [report.fraction for report in drawing] == pytest.approx([f * DIFFUSION_SHARE for f in (0.25, 0.5, 0.75)])
    for report in shown:
        picture = Image.open(io.BytesIO(report.preview or b""))
        assert picture.format == "JPEG" and picture.size == (80, 64), "the sketch's proportions, from the first preview"
    assert max(len(report.preview or b"") for report in shown) < 8192, "previews stay a few KB (they cross Redis)"


def test_with_previews_off_a_control_job_makes_none(tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path) -> None:
    reports: list[JobProgress] = []
    result = run_job(pipeline(tiny_sd_dir, tiny_controlnet_dir, animegan_checkpoints_dir, previews=False), control_spec("p2"), reports.append, lambda: False)
    assert result.base_png is not None and reports and all(report.preview is None for report in reports)
