"""Running a variations job: one description drawn with several seeds in one diffusion call, each picture styled.

A variations job is a text :class:`~engine.api.JobSpec` with ``seeds``. Its
progress, previews, cancel and image check are those of a picture drawn
alone (:func:`engine.jobs.runner.run_job`): one bar for the whole job (the
drawing takes :data:`~engine.jobs.runner.DIFFUSION_SHARE`, styling the four
pictures the rest), previews of the first picture, and every picture checked.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.api import LOADING, PREPARING, CancelCheck, JobProgress, JobResult, JobSpec, ProgressCallback, Variation
from engine.errors import Cancelled
from engine.image.grid import grid
from engine.image.imageio import png_bytes
from engine.jobs.runner import (
    DIFFUSION_SHARE,
    ImagePipeline,
    ProgressReport,
    _batching,
    _parameters,
    _preview_vetting,
    _refuse_flagged,
    _seen,
)
from engine.policy.levels import ImageFlaggedError, Level, checks_images, combine

if TYPE_CHECKING:
    from engine.image.pipeline import AnimeResult

log = logging.getLogger(__name__)


class _Progress:
    """The one progress bar of a variations job: every picture's drawing and styling, never falling."""

    def __init__(self, report: ProgressReport, count: int) -> None:
        self.report = report
        self.count = count
        self.reached = 0.0
        self.drawn = [0.0] * count

    def drawing(self, index: int) -> ProgressCallback:
        """Where picture ``index`` reports its drawing (and, drawn alone, its styling: see :meth:`alone`)."""

        def progress(stage: str, fraction: float) -> None:
            if stage in (LOADING, PREPARING):
                self.report(JobProgress(self.reached, stage))
            elif stage == "diffusion":
                self.drawn[index] = fraction
                self._reach(DIFFUSION_SHARE * sum(self.drawn) / self.count, stage)
            else:
                self._reach(DIFFUSION_SHARE + (1 - DIFFUSION_SHARE) * (index + fraction) / self.count, stage)

        return progress

    def alone(self, index: int) -> ProgressCallback:
        """Where picture ``index`` reports when drawn on its own (a pipeline that draws no batches): its share of the bar."""

        def progress(stage: str, fraction: float) -> None:
            if stage in (LOADING, PREPARING):
                self.report(JobProgress(self.reached, stage))
                return
            part = fraction * DIFFUSION_SHARE if stage == "diffusion" else DIFFUSION_SHARE + fraction * (1 - DIFFUSION_SHARE)
            self._reach((index + part) / self.count, stage)

        return progress

    def preview(self, stage: str, image: bytes) -> None:
        self.report(JobProgress(self.reached, stage, preview=image))

    def _reach(self, fraction: float, stage: str) -> None:
        self.reached = max(self.reached, min(1.0, fraction))
        self.report(JobProgress(self.reached, stage))


def run_variations(pipeline: ImagePipeline, spec: JobSpec, report: ProgressReport, cancelled: CancelCheck) -> JobResult:
    """Run a variations job (blocking, on the model thread); raises like :func:`engine.jobs.runner.run_job`.

    On a batching pipeline the pictures are drawn in one diffusion call, then
    each is styled; otherwise one after another. Previews are the first
    picture's. At ``strict`` a flagged picture refuses the whole job; at
    ``standard`` the result lists what was seen (the grid goes behind a spoiler).
    """
    bar = _Progress(report, len(spec.seeds))
    vetted = _preview_vetting(pipeline, spec)

    def first_preview(stage: str, image: bytes) -> None:
        if vetted is None or vetted(image):
            bar.preview(stage, image)

    def previews(index: int) -> dict[str, Any]:
        return {"preview": first_preview if index == 0 else _no_preview} if pipeline.previews else {}

    results: list[AnimeResult] = []
    if _batching(pipeline):
        from engine.image.pipeline import PromptJob  # the engine extra; only batching pipelines get here

        jobs = [
            PromptJob(
                spec.positive,
                spec.negative,
                spec.style,
                seed,
                progress=bar.drawing(i),
                cancelled=cancelled,
                width=spec.width,
                height=spec.height,
                **previews(i),
            )
            for i, seed in enumerate(spec.seeds)
        ]
        log.info("job %s: drawing %d variations in one batch", spec.job_id, len(jobs))
        for index, outcome in enumerate(pipeline.draw_batch(jobs)):
            if isinstance(outcome, BaseException):
                raise outcome
            extra = previews(index) or {"preview": None}
            results.append(pipeline.from_drawing(outcome, style=spec.style, progress=bar.drawing(index), cancelled=cancelled, **extra))
    else:
        for index, seed in enumerate(spec.seeds):
            results.append(
                pipeline.from_prompt(
                    spec.positive, spec.negative, style=spec.style, seed=seed, progress=bar.alone(index), cancelled=cancelled, **previews(index)
                )
            )
    if cancelled():
        raise Cancelled
    return _result(pipeline, spec, results)


def _no_preview(stage: str, image: bytes) -> None:
    """The previews of every picture but the first: not shown (one picture forms in the status message)."""


def _result(pipeline: ImagePipeline, spec: JobSpec, results: list[AnimeResult]) -> JobResult:
    """The checked pictures as a result: each with its own PNG chunk, and the grid of them."""
    check = pipeline.image_check if checks_images(spec.policy) else None
    level = Level(spec.policy)
    images = [image for result in results for image in (result.base_image, result.anime_image)]
    verdict = combine((check.check(image, level) for image in images), level) if check is not None else None
    if verdict is not None:
        _refuse_flagged(spec, verdict, ImageFlaggedError, "a variation")
        if verdict.spoiler:
            log.warning("job %s: the image check flagged a variation (%s); sent behind a spoiler (%s)", spec.job_id, _seen(verdict), level)
    variations = []
    for result, seed in zip(results, spec.seeds, strict=True):
        parameters = _parameters(spec, result)
        base = replace(parameters, style=None) if parameters else None
        variations.append(
            Variation(png_bytes(result.anime_image, parameters), png_bytes(result.base_image, base), result.seed if result.seed is not None else seed)
        )
    seconds: dict[str, float] = {}
    for result in results:
        for stage, spent in result.timings:
            seconds[stage] = seconds.get(stage, 0.0) + spent
    return JobResult(
        job_id=spec.job_id,
        anime_png=png_bytes(grid([result.anime_image for result in results])),
        style=results[0].style,
        seed=variations[0].seed,
        model=results[0].model,
        timings=tuple(seconds.items()),
        flagged=tuple(str(finding) for finding in verdict.findings) if verdict is not None and verdict.spoiler else (),
        variations=tuple(variations),
    )
