"""Running one image job on a pipeline: the part shared by the local engine and the distributed worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, cast

from engine.api import (
    LOADING,
    PREPARING,
    CancelCheck,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgress,
    JobResult,
    JobSpec,
    PreviewCallback,
    ProgressCallback,
)
from engine.errors import Cancelled, ControlModelUnavailableError, ModelUnavailableError, UserError
from engine.image import png_info
from engine.image.imageio import open_image, png_bytes
from engine.image.png_info import PictureParameters
from engine.jobs.still_missing import fix_with_the_rest
from engine.missing_models import tell_operator, unavailable_key
from engine.policy.image_check import PictureCheck, check_photo
from engine.policy.levels import ImageFlaggedError, Level, PhotoFlaggedError, Verdict, checks_images, combine

if TYPE_CHECKING:  # engine.image.pipeline needs torch (the engine extra); a worker with another pipeline does not
    from engine.image.diffusion import GeneratedImage
    from engine.image.pipeline import AnimePipeline, AnimeResult, PromptJob

log = logging.getLogger(__name__)

#: Share of a text job's progress bar taken by diffusion (the rest is styling).
DIFFUSION_SHARE = 0.9


#: Where a running job's progress goes (the engine publishes it): one event per report, previews included.
ProgressReport = Callable[[JobProgress], None]


class ImagePipeline(Protocol):
    """What running a job needs from a pipeline: :class:`engine.image.pipeline.AnimePipeline`, or a stand-in (tests,
    benchmarks, ``voice2anime worker --pipeline``), which declares the same three attributes."""

    @property
    def previews(self) -> bool:
        """Whether :meth:`from_prompt` makes previews: it is then called with ``preview=``, else without."""
        ...

    @property
    def image_check(self) -> PictureCheck | None:
        """The content policy's check of this pipeline's pictures (see :func:`run_job`); None: not checked."""
        ...

    @property
    def draws_batches(self) -> bool:
        """Whether this is a :class:`BatchingPipeline` (several text jobs drawn in one diffusion call)."""
        ...

    def from_prompt(
        self,
        positive: str,
        negative: str,
        *,
        style: str | None,
        seed: int | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
        preview: PreviewCallback | None = None,
    ) -> AnimeResult: ...

    def from_photo(
        self, photo: bytes, *, style: str | None, progress: ProgressCallback, cancelled: CancelCheck
    ) -> AnimeResult: ...


class ControlPipeline(ImagePipeline, Protocol):
    """A pipeline that draws a description keeping a picture's composition (a text job with ``control``), as
    :class:`engine.image.pipeline.AnimePipeline` does."""

    def from_control(
        self,
        positive: str,
        negative: str,
        *,
        control: str,
        control_png: bytes,
        style: str | None,
        seed: int | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
        preview: PreviewCallback | None = None,
    ) -> AnimeResult:
        """Draw ``positive`` keeping what ``control`` says of ``control_png``, then style it."""
        ...


class BatchingPipeline(ImagePipeline, Protocol):
    """A pipeline that draws several text jobs in one call, then finishes each drawing on its own (as
    :class:`engine.image.pipeline.AnimePipeline` does); it says so with a true ``draws_batches``."""

    def draw_batch(self, jobs: Sequence[PromptJob]) -> Sequence[GeneratedImage | Exception]:
        """Each job's drawing, in order, or what stopped it."""
        ...

    def from_drawing(
        self,
        generated: GeneratedImage,
        *,
        style: str | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
        preview: PreviewCallback | None,
    ) -> AnimeResult:
        """A text job whose picture is drawn, finished: the sketch preview, then the style."""
        ...


if TYPE_CHECKING:  # the engine's own pipeline is one (mypy checks it here)
    _ANIME_PIPELINE: type[BatchingPipeline] = AnimePipeline
    _ANIME_CONTROL: type[ControlPipeline] = AnimePipeline


def _batching(pipeline: ImagePipeline) -> TypeGuard[BatchingPipeline]:
    """A pipeline that declares ``draws_batches`` is a :class:`BatchingPipeline`."""
    return pipeline.draws_batches


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
    styling (a photo as a picture a user sent, :func:`engine.policy.image_check.check_photo`;
    a restyle's, the bot's own drawing or a photo checked when it came, as drawn),
    every preview before it is reported (a flagged one is dropped),
    and the drawing and the styled picture before the result is returned. At
    ``strict`` a flagged picture raises :class:`~engine.policy.levels.ImageFlaggedError`
    (:class:`~engine.policy.levels.PhotoFlaggedError` for a user's photo) and the
    operator's log says what was seen; at ``standard`` the result lists it in
    ``flagged`` (the conversation shows it as a spoiler).

    A variations job (``spec.seeds``) is run by :func:`engine.jobs.variations.run_variations`,
    an upscale job by :func:`engine.jobs.upscaling.run_upscale`.
    """
    if spec.seeds:
        from engine.jobs.variations import run_variations  # it builds on this module

        return run_variations(pipeline, spec, report, cancelled)
    if spec.kind == "upscale":
        from engine.jobs.upscaling import run_upscale

        return run_upscale(pipeline, spec, report, cancelled)
    share = DIFFUSION_SHARE if spec.kind == "text" else 0.0
    reached = 0.0
    check = pipeline.image_check if checks_images(spec.policy) else None
    level = Level(spec.policy)

    def overall(stage: str, fraction: float) -> None:
        nonlocal reached
        if stage in (LOADING, PREPARING):  # before drawing: no part of the job is done yet
            report(JobProgress(reached, stage))
            return
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
    extra: dict[str, Any] = {"preview": preview} if pipeline.previews else {}
    if drawn and spec.control_png is not None:
        if check is not None:  # the picture whose composition is kept is one a user sent
            _refuse_flagged(spec, check_photo(check)(open_image(spec.control_png), level), PhotoFlaggedError, "the photo")
        result = _controlled(pipeline).from_control(
            spec.positive,
            spec.negative,
            control=spec.control,
            control_png=spec.control_png,
            style=spec.style,
            seed=spec.seed,
            progress=overall,
            cancelled=cancelled,
            **extra,
        )
        checked = [result.base_image, result.anime_image]
    elif drawn and spec.init_png is not None and spec.strength is not None:
        result = _remix(pipeline, spec, overall, cancelled, extra)
        checked = [result.base_image, result.anime_image]
    elif drawn:
        if spec.width is not None and spec.height is not None:
            extra.update(width=spec.width, height=spec.height)
        if spec.steps is not None or spec.guidance is not None:
            extra.update(steps=spec.steps, guidance=spec.guidance)
        result = pipeline.from_prompt(
            spec.positive, spec.negative, style=spec.style, seed=spec.seed, progress=overall, cancelled=cancelled, **extra
        )
        checked = [result.base_image, result.anime_image]
    else:
        assert spec.source_png is not None  # JobSpec guarantees it
        if check is not None:
            judge = check_photo(check) if spec.kind == "photo" else check.check
            _refuse_flagged(spec, judge(open_image(spec.source_png), level), PhotoFlaggedError, "the photo")
        result = pipeline.from_photo(spec.source_png, style=spec.style, progress=overall, cancelled=cancelled)
        checked = [result.anime_image]
    if cancelled():
        raise Cancelled
    verdict = combine((check.check(image, level) for image in checked), level) if check is not None else None
    if verdict is not None:
        _refuse_flagged(spec, verdict, ImageFlaggedError if drawn else PhotoFlaggedError, "the picture")
        if verdict.spoiler:
            log.warning("job %s: the image check flagged the picture (%s); it is sent behind a spoiler (%s)", spec.job_id, _seen(verdict), level)
    parameters = _parameters(spec, result)
    return JobResult(
        job_id=spec.job_id,
        anime_png=png_bytes(result.anime_image, parameters),
        style=result.style,
        base_png=png_bytes(result.base_image, replace(parameters, style=None) if parameters else None) if drawn else None,
        seed=result.seed,
        model=result.model,
        timings=result.timings,
        flagged=tuple(str(finding) for finding in verdict.findings) if verdict is not None and verdict.spoiler else (),
    )


def _controlled(pipeline: ImagePipeline) -> ControlPipeline:
    """``pipeline`` as one that draws with a control image; a pipeline without ControlNets makes the job fail as a missing model."""
    if not hasattr(pipeline, "from_control"):
        raise ControlModelUnavailableError(f"{type(pipeline).__name__} draws no control images: run the image engine's AnimePipeline")
    return cast("ControlPipeline", pipeline)


def _remix(pipeline: ImagePipeline, spec: JobSpec, progress: ProgressCallback, cancelled: CancelCheck, extra: dict[str, Any]) -> AnimeResult:
    """A remix job on ``pipeline``: its ``remix`` (img2img), which a stand-in pipeline may not have (then it fails plainly)."""
    remix = getattr(pipeline, "remix", None)
    if remix is None:
        raise TypeError(f"{type(pipeline).__name__} cannot remix a picture")
    assert spec.init_png is not None and spec.strength is not None
    result: AnimeResult = remix(
        spec.init_png,
        spec.positive,
        spec.negative,
        strength=spec.strength,
        style=spec.style,
        seed=spec.seed,
        progress=progress,
        cancelled=cancelled,
        **extra,
    )
    return result


def _parameters(spec: JobSpec, result: AnimeResult) -> PictureParameters | None:
    """What the job's picture was made with, for its PNG: the pipeline's account, with the job's transcript.

    A restyled picture keeps how its source was drawn (the source's own
    chunks, when the bot made it) under its new style. ``None`` when the
    pipeline does not say (a stand-in's result).
    """
    if spec.kind == "restyle" and spec.source_png is not None:
        drawn = png_info.read(spec.source_png, ours_only=True)
        if drawn is not None:
            return replace(drawn, style=result.style, upscale=None, upscaler=None)
    if result.parameters is None or spec.kind != "text":
        return result.parameters
    return replace(result.parameters, transcript=spec.transcript or None, language=spec.language or None)


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


def run_job_event(
    pipeline: ImagePipeline, spec: JobSpec, report: ProgressReport, cancelled: CancelCheck, *, engine: ImagePipeline | None = None
) -> JobEvent:
    """Run ``spec`` like :func:`run_job` and turn its outcome into the job's terminal event; never raises.

    ``JobFinished`` with the result; ``JobCancelled``; ``JobFailed`` with a
    :class:`UserError`'s key, detail and params; a missing model is
    ``JobFailed("model.unavailable.<which>", <the operator's fix, then the other models not here yet>, {"model": <which>})``,
    told to the operator once (:func:`engine.missing_models.tell_operator`); any other exception is
    logged with its traceback and becomes ``JobFailed("error.generic", <exception type>)``
    (a failed job must never take the model thread or the worker down). ``engine``: the pipeline whose
    models the fix lists (default ``pipeline``).
    """
    try:
        return JobFinished(run_job(pipeline, spec, report, cancelled))
    except Cancelled:
        return JobCancelled()
    except UserError as error:
        log.info("job %s rejected: %s", spec.job_id, error.key)
        return JobFailed(error.key, error.detail or "", error.params)
    except ModelUnavailableError as error:
        tell_operator(error)
        return JobFailed(unavailable_key(error), fix_with_the_rest(engine or pipeline, error, spec), {"model": error.model})
    except Exception as error:
        log.exception("job %s failed", spec.job_id)
        return JobFailed("error.generic", type(error).__name__)


# --- batches: several text jobs drawn in one diffusion call ---------------------------------------------------------


@dataclass(frozen=True)
class BatchJob:
    """One job of :func:`run_batch`: its spec, where its progress goes, its cancel check, and where its outcome goes."""

    spec: JobSpec
    report: ProgressReport
    cancelled: CancelCheck
    #: Called once with the job's terminal event, as soon as it is known.
    finish: Callable[[JobEvent], None]


def can_batch(pipeline: ImagePipeline, spec: JobSpec) -> bool:
    """Whether ``spec`` may share one diffusion call with other jobs on ``pipeline``.

    Text jobs drawn from noise on a pipeline that draws batches (``draws_batches``, as
    :class:`engine.image.pipeline.AnimePipeline` does). Model, scheduler and
    steps are the engine's settings, not the job's; :func:`run_batch` draws
    jobs of one size together. Photo and restyle jobs draw nothing; a remix
    starts from its own picture; a job with its own steps or guidance, or with
    a control image, is drawn alone; a variations job (``seeds``) is a batch of its own.
    """
    own = spec.init_png is not None or spec.steps is not None or spec.guidance is not None
    return spec.kind == "text" and not spec.seeds and not spec.control and not own and pipeline.draws_batches


def run_batch(pipeline: ImagePipeline, jobs: Sequence[BatchJob]) -> None:
    """Run ``jobs`` (blocking, on the model thread): text jobs drawn in one diffusion call, then each on its own; never raises.

    Each job gets the progress reports, previews and terminal event that
    :func:`run_job_event` would give it alone (same fractions, never falling;
    previews of its own picture). Its ``finish`` is called exactly once, as
    soon as its outcome is known: a job cancelled while the batch draws ends at
    once (its picture is dropped, the others go on), a finished drawing goes
    through the rest of the job (sketch preview, style, checks) as if drawn
    alone, and a job that fails fails alone. Jobs that :func:`can_batch` refuses
    run one after another afterwards.
    """
    sizes: dict[tuple[int | None, int | None], list[BatchJob]] = {}
    rest: list[BatchJob] = []
    for job in jobs:
        if can_batch(pipeline, job.spec):
            sizes.setdefault((job.spec.width, job.spec.height), []).append(job)
        else:
            rest.append(job)
    for together in sizes.values():
        if len(together) >= 2 and _batching(pipeline):
            _run_drawn_together(pipeline, together)
        else:
            rest.extend(together)
    rest.sort(key=jobs.index)
    for job in rest:
        _finish(job, run_job_event(pipeline, job.spec, job.report, job.cancelled))


class _BatchMember:
    """A job's progress (the overall fraction, as :func:`run_job` reports it) and whether it has ended, while its batch draws."""

    def __init__(self, job: BatchJob, shown: Callable[[bytes], bool] | None) -> None:
        self.job = job
        self.shown = shown
        self.reached = 0.0
        self.finished = False

    def progress(self, stage: str, fraction: float) -> None:
        self.reached = max(self.reached, min(1.0, fraction * DIFFUSION_SHARE))
        self.job.report(JobProgress(self.reached, stage))

    def preview(self, stage: str, image: bytes) -> None:
        if self.shown is not None and not self.shown(image):
            log.info("job %s: a preview was flagged by the image check; not shown", self.job.spec.job_id)
            return
        self.job.report(JobProgress(self.reached, stage, preview=image))

    def cancelled(self) -> bool:
        if self.finished:
            return True
        if self.job.cancelled():
            self.finished = True
            _finish(self.job, JobCancelled())  # at once: the others keep drawing
            return True
        return False


def _run_drawn_together(pipeline: BatchingPipeline, batch: list[BatchJob]) -> None:
    from engine.image.pipeline import PromptJob  # the engine extra; only batching pipelines get here

    members = [_BatchMember(job, _preview_vetting(pipeline, job.spec)) for job in batch]
    previews = pipeline.previews
    requests = [
        PromptJob(
            m.job.spec.positive,
            m.job.spec.negative,
            m.job.spec.style,
            m.job.spec.seed,
            progress=m.progress,
            cancelled=m.cancelled,
            preview=m.preview if previews else None,
            width=m.job.spec.width,
            height=m.job.spec.height,
        )
        for m in members
    ]
    log.info("drawing %d jobs in one batch: %s", len(batch), ", ".join(job.spec.job_id for job in batch))
    try:
        outcomes: list[GeneratedImage | Exception] = list(pipeline.draw_batch(requests))
    except Exception as error:  # draw_batch reports per job; this is a bug, and it fails every job
        log.exception("drawing a batch failed")
        outcomes = [error] * len(members)
    # Jobs that drew nothing end first; then each drawing is finished (sketch, style) in the batch's order.
    ordered = sorted(zip(members, outcomes), key=lambda pair: not isinstance(pair[1], BaseException))
    for member, outcome in ordered:
        if not member.finished:
            member.finished = True
            job = member.job
            _finish(job, run_job_event(_Drawn(pipeline, outcome), job.spec, job.report, job.cancelled, engine=pipeline))


def _preview_vetting(pipeline: ImagePipeline, spec: JobSpec) -> Callable[[bytes], bool] | None:
    """Which of a batched job's previews may be shown: what :func:`run_job` lets through for a job drawn alone.

    With an image check on the pipeline and a ``policy`` that checks pictures,
    a preview is shown only when the check passes it without a spoiler; else
    every preview is (None).
    """
    check = pipeline.image_check if checks_images(spec.policy) else None
    if check is None:
        return None
    level = Level(spec.policy)

    def shown(image: bytes) -> bool:
        verdict = check.check(open_image(image), level)
        return verdict.allowed and not verdict.spoiler

    return shown


def _finish(job: BatchJob, event: JobEvent) -> None:
    try:
        job.finish(event)
    except Exception:  # one job's delivery failing must not stop the others'
        log.exception("job %s: reporting its outcome failed", job.spec.job_id)


class _Drawn:
    """One batched job's view of the pipeline: its drawing is done (or what stopped it), :func:`run_job` does the rest.

    ``from_prompt`` raises the job's failure (so :func:`run_job_event` turns
    it into the event it would be for a job drawn alone), or reports the
    drawing complete and finishes it with the pipeline's ``from_drawing``.
    """

    draws_batches = False

    def __init__(self, pipeline: BatchingPipeline, outcome: GeneratedImage | Exception) -> None:
        self.pipeline = pipeline
        self.outcome = outcome
        self.previews = pipeline.previews
        self.image_check = pipeline.image_check

    def from_prompt(
        self,
        positive: str,
        negative: str,
        *,
        style: str | None,
        seed: int | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
        preview: PreviewCallback | None = None,
    ) -> AnimeResult:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        progress("diffusion", 1.0)
        return self.pipeline.from_drawing(self.outcome, style=style, progress=progress, cancelled=cancelled, preview=preview)

    def from_photo(self, photo: bytes, *, style: str | None, progress: ProgressCallback, cancelled: CancelCheck) -> AnimeResult:
        raise TypeError("a batch draws text jobs only")  # pragma: no cover - run_batch never sends others here
