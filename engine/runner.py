"""Running one image job on a pipeline: the part shared by the local engine and the distributed worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from engine.api import (
    CancelCheck,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgress,
    JobResult,
    JobSpec,
    ProgressCallback,
)
from engine.errors import Cancelled, UserError
from engine.imageio import png_bytes
from engine.pipeline import AnimeResult

log = logging.getLogger(__name__)

#: Share of a text job's progress bar taken by diffusion (the rest is styling).
DIFFUSION_SHARE = 0.9


#: Where a running job's progress goes (the engine publishes it): one event per report, previews included.
ProgressReport = Callable[[JobProgress], None]


class ImagePipeline(Protocol):
    """What running a job needs from :class:`engine.pipeline.AnimePipeline` (fakes for tests and benchmarks fit too).

    A pipeline that makes previews says so with a true ``previews`` attribute;
    its ``from_prompt`` then also takes ``preview=`` (an
    :data:`engine.api.PreviewCallback`). Pipelines without the attribute are
    called without it.
    """

    def from_prompt(
        self,
        positive: str,
        negative: str,
        *,
        style: str | None,
        seed: int | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
    ) -> AnimeResult: ...

    def from_photo(
        self, photo: bytes, *, style: str | None, progress: ProgressCallback, cancelled: CancelCheck
    ) -> AnimeResult: ...


def run_job(pipeline: ImagePipeline, spec: JobSpec, report: ProgressReport, cancelled: CancelCheck) -> JobResult:
    """Run ``spec`` (blocking, on the model thread), reporting progress to ``report``. Raises Cancelled.

    Every report is a :class:`JobProgress` with the overall fraction of the job
    (diffusion takes :data:`DIFFUSION_SHARE` of a text job, styling the rest),
    which never falls, and its stage; previews (when the pipeline makes them)
    arrive as reports with the fraction reached so far and the preview's stage.

    The result carries only what the job made: a text job's drawing as ``base_png``; a ``photo``/``restyle``
    job's base is its source, which the conversation already has, so ``base_png`` is ``None``.
    """
    share = DIFFUSION_SHARE if spec.kind == "text" else 0.0
    reached = 0.0

    def overall(stage: str, fraction: float) -> None:
        nonlocal reached
        reached = max(reached, min(1.0, fraction * share if stage == "diffusion" else share + fraction * (1 - share)))
        report(JobProgress(reached, stage))

    def preview(stage: str, image: bytes) -> None:
        report(JobProgress(reached, stage, preview=image))

    drawn = spec.kind == "text"
    if drawn:
        extra: dict[str, Any] = {"preview": preview} if getattr(pipeline, "previews", False) else {}
        result = pipeline.from_prompt(
            spec.positive, spec.negative, style=spec.style, seed=spec.seed, progress=overall, cancelled=cancelled, **extra
        )
    else:
        assert spec.source_png is not None  # JobSpec guarantees it
        result = pipeline.from_photo(spec.source_png, style=spec.style, progress=overall, cancelled=cancelled)
    if cancelled():
        raise Cancelled
    return JobResult(
        job_id=spec.job_id,
        anime_png=png_bytes(result.anime_image),
        style=result.style,
        base_png=png_bytes(result.base_image) if drawn else None,
        seed=result.seed,
        model=result.model,
        timings=result.timings,
    )


def run_job_event(pipeline: ImagePipeline, spec: JobSpec, report: ProgressReport, cancelled: CancelCheck) -> JobEvent:
    """Run ``spec`` like :func:`run_job` and turn its outcome into the job's terminal event; never raises.

    ``JobFinished`` with the result; ``JobCancelled``; ``JobFailed`` with a
    :class:`UserError`'s key, detail and params; any other exception is
    logged with its traceback and becomes ``JobFailed("error.generic", <exception type>)``
    (a failed job must never take the model thread or the worker down).
    """
    try:
        return JobFinished(run_job(pipeline, spec, report, cancelled))
    except Cancelled:
        return JobCancelled()
    except UserError as error:
        log.info("job %s rejected: %s", spec.job_id, error.key)
        return JobFailed(error.key, error.detail or "", error.params)
    except Exception as error:
        log.exception("job %s failed", spec.job_id)
        return JobFailed("error.generic", type(error).__name__)
