"""Running one image job on a pipeline: the part shared by the local engine and the distributed worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

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
from engine.imageio import open_image, png_bytes
from engine.policy import ImageCheck, ImageFlaggedError, Level, PhotoFlaggedError, Verdict, checks_images, combine

if TYPE_CHECKING:  # engine.pipeline needs torch (the engine extra); a worker with another pipeline does not
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
    called without it. A pipeline with an ``image_check`` attribute (an
    :class:`engine.policy.ImageCheck`) has its pictures checked (see :func:`run_job`).
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

    **Image check** (the pipeline's ``image_check``, at the job's ``policy``
    level unless it is ``off``): a photo or restyle source is checked before
    styling, every preview before it is reported (a flagged one is dropped),
    and the drawing and the styled picture before the result is returned. At
    ``strict`` a flagged picture raises :class:`~engine.policy.ImageFlaggedError`
    (:class:`~engine.policy.PhotoFlaggedError` for a user's photo) and the
    operator's log says what was seen; at ``standard`` the result lists it in
    ``flagged`` (the conversation shows it as a spoiler).
    """
    share = DIFFUSION_SHARE if spec.kind == "text" else 0.0
    reached = 0.0
    check = image_check_of(pipeline) if checks_images(spec.policy) else None
    level = Level(spec.policy)

    def overall(stage: str, fraction: float) -> None:
        nonlocal reached
        reached = max(reached, min(1.0, fraction * share if stage == "diffusion" else share + fraction * (1 - share)))
        report(JobProgress(reached, stage))

    def preview(stage: str, image: bytes) -> None:
        if check is not None:
            verdict = check.check(open_image(image), level)
            if not verdict.allowed or verdict.spoiler:
                log.info("job %s: a preview was flagged by the image check (%s); not shown", spec.job_id, _seen(verdict))
                return
        report(JobProgress(reached, stage, preview=image))

    drawn = spec.kind == "text"
    if drawn:
        extra: dict[str, Any] = {"preview": preview} if getattr(pipeline, "previews", False) else {}
        result = pipeline.from_prompt(
            spec.positive, spec.negative, style=spec.style, seed=spec.seed, progress=overall, cancelled=cancelled, **extra
        )
        checked = [result.base_image, result.anime_image]
    else:
        assert spec.source_png is not None  # JobSpec guarantees it
        if check is not None:
            _refuse_flagged(spec, check.check(open_image(spec.source_png), level), PhotoFlaggedError, "the photo")
        result = pipeline.from_photo(spec.source_png, style=spec.style, progress=overall, cancelled=cancelled)
        checked = [result.anime_image]
    if cancelled():
        raise Cancelled
    verdict = combine((check.check(image, level) for image in checked), level) if check is not None else None
    if verdict is not None:
        _refuse_flagged(spec, verdict, ImageFlaggedError if drawn else PhotoFlaggedError, "the picture")
        if verdict.spoiler:
            log.warning("job %s: the image check flagged the picture (%s); it is sent behind a spoiler (%s)", spec.job_id, _seen(verdict), level)
    return JobResult(
        job_id=spec.job_id,
        anime_png=png_bytes(result.anime_image),
        style=result.style,
        base_png=png_bytes(result.base_image) if drawn else None,
        seed=result.seed,
        model=result.model,
        timings=result.timings,
        flagged=tuple(str(finding) for finding in verdict.findings) if verdict is not None and verdict.spoiler else (),
    )


def image_check_of(pipeline: object) -> ImageCheck | None:
    """The pipeline's image check: its ``image_check``, or that of the pipeline it wraps (``.pipeline``), else None."""
    check = getattr(pipeline, "image_check", None)
    if check is None:
        check = getattr(getattr(pipeline, "pipeline", None), "image_check", None)
    return check


def _seen(verdict: Verdict) -> str:
    return ", ".join(str(finding) for finding in verdict.findings)


def _refuse_flagged(spec: JobSpec, verdict: Verdict, error: type[ImageFlaggedError], what: str) -> None:
    """Raise ``error`` for a picture the check refuses, with a log line for the operator."""
    if verdict.allowed:
        return
    log.warning(
        "job %s: the image check flagged %s (%s) at the %s content policy; not delivered", spec.job_id, what, _seen(verdict), verdict.level
    )
    raise error(_seen(verdict))


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
