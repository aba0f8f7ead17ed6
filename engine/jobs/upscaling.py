"""Running an upscale job: a delivered picture made 2 or 4 times larger by the engine's Real-ESRGAN upscaler.

The pipeline that runs jobs carries the upscaler (``upscaler``: an
:class:`engine.image.upscale.Upscaler`, whose model loads, and downloads, on
first use); a pipeline without one (a stand-in) or a model that cannot be had
is the missing-model path (:class:`~engine.errors.UpscaleModelUnavailableError`).
Progress is one bar over the tiles (stage :data:`~engine.api.UPSCALING`); cancel stops between tiles.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.api import UPSCALING, CancelCheck, JobProgress, JobResult, JobSpec
from engine.errors import Cancelled, UpscaleModelUnavailableError
from engine.image import png_info
from engine.image.imageio import open_image, png_bytes
from engine.jobs.runner import ImagePipeline, ProgressReport

log = logging.getLogger(__name__)


def run_upscale(pipeline: ImagePipeline, spec: JobSpec, report: ProgressReport, cancelled: CancelCheck) -> JobResult:
    """``spec.source_png`` ``spec.scale`` times larger; its PNG keeps how the picture was made, noting the upscale."""
    upscaler: Any = getattr(pipeline, "upscaler", None)
    if upscaler is None:
        raise UpscaleModelUnavailableError("this engine has no upscaler: run the jobs where the image engine (voice2anime[engine]) is")
    assert spec.source_png is not None  # JobSpec guarantees it
    image = open_image(spec.source_png)
    report(JobProgress(0.0, UPSCALING))
    reached = 0.0

    def progress(_stage: str, fraction: float) -> None:
        nonlocal reached
        reached = max(reached, min(1.0, fraction))
        report(JobProgress(reached, UPSCALING))

    larger = upscaler.upscale(image, spec.scale, progress=progress, cancelled=cancelled)
    if cancelled():
        raise Cancelled
    made = png_info.read(spec.source_png, ours_only=True)
    parameters = made.upscaled(spec.scale, upscaler.name) if made is not None else None
    log.info("job %s: upscaled %dx%d to %dx%d", spec.job_id, *image.size, *larger.size)
    return JobResult(
        job_id=spec.job_id,
        anime_png=png_bytes(larger, parameters),
        style=(made.style if made is not None else None) or spec.style,
        seed=made.seed if made is not None else None,
        model=upscaler.name,
    )
