"""Prompt text -> base image -> anime image; photo -> anime image; restyle.

One object ties the diffusion and style engines together and reports, for
every result, both images and what produced them (seed, model, style, seconds
per stage; the prompt is the caller's) so a result can be reproduced or
restyled later without running diffusion again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from engine.api import CancelCheck, PreviewCallback, ProgressCallback
from engine.image.animegan import AnimeGAN
from engine.image.control import ControlNets, a1111_module, model_name
from engine.image.diffusion import SKETCH_SIDE, DrawRequest, GeneratedImage, TextToImage, preview_jpeg
from engine.image.imageio import open_image
from engine.image.img2img import ImageToImage, RedrawRequest
from engine.image.png_info import CROP_AND_RESIZE, JUST_RESIZE, PictureParameters
from engine.image.upscale import Upscaler
from engine.policy.image_check import PictureCheck


@dataclass(frozen=True)
class AnimeResult:
    """A finished picture: the styled image, the image it was made from, and how.

    ``seed``/``model`` are ``None`` for photos (no diffusion ran).
    ``timings`` maps stage name ("diffusion", "style") to seconds.
    ``parameters`` is what the picture was made with, as its PNG carries it
    (:mod:`engine.image.png_info`): the drawing's prompt, sampler, steps,
    guidance, seed, size and model, and the style; a photo's size and style.
    """

    anime_image: Image.Image
    base_image: Image.Image
    style: str
    seed: int | None
    model: str | None
    timings: tuple[tuple[str, float], ...]
    parameters: PictureParameters | None = None

    @property
    def seconds(self) -> float:
        """Total seconds over all stages."""
        return sum(seconds for _, seconds in self.timings)


@dataclass(frozen=True)
class PromptJob:
    """One text job of :meth:`AnimePipeline.draw_batch`: what :meth:`AnimePipeline.from_prompt` takes, as a record."""

    positive: str
    negative: str = ""
    style: str | None = None
    seed: int | None = None
    progress: ProgressCallback | None = field(default=None, compare=False)
    cancelled: CancelCheck | None = field(default=None, compare=False)
    preview: PreviewCallback | None = field(default=None, compare=False)
    #: The picture's size (``None``: the engine's); every job of one batch has the same.
    width: int | None = None
    height: int | None = None


class AnimePipeline:
    """Stable Diffusion + AnimeGANv2, with the default style from settings.

    With ``previews`` (the ``PREVIEWS`` setting) :meth:`from_prompt` hands its
    ``preview`` callback a few small JPEGs of the picture forming and then the
    sketch (the drawing before the anime style); without, it makes none.
    ``image_check`` (an :class:`engine.policy.image_check.ContentCheck`, ``POLICY_IMAGE_*``,
    ``POLICY_ANIME_MODEL``) is the content policy's picture check: :func:`engine.jobs.runner.run_job`
    checks this pipeline's pictures with it at each job's policy level. It draws
    batches (:meth:`draw_batch`, then :meth:`from_drawing` for each job): an
    :class:`engine.jobs.runner.BatchingPipeline`.
    """

    draws_batches = True

    def __init__(
        self,
        text_to_image: TextToImage,
        animegan: AnimeGAN,
        *,
        default_style: str,
        previews: bool = True,
        image_check: PictureCheck | None = None,
        upscaler: Upscaler | None = None,
        control: ControlNets | None = None,
    ) -> None:
        self.text_to_image = text_to_image
        self.control = control or ControlNets()
        self.animegan = animegan
        self.default_style = default_style
        self.previews = previews
        self.image_check = image_check
        #: Real-ESRGAN for upscale jobs (:mod:`engine.jobs.upscaling`); None: this pipeline upscales nothing.
        self.upscaler = upscaler
        self.image_to_image = ImageToImage(text_to_image)

    def from_prompt(
        self,
        positive: str,
        negative: str = "",
        *,
        style: str | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
        width: int | None = None,
        height: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> AnimeResult:
        """Draw ``positive`` (steering away from ``negative``) with Stable Diffusion, then restyle the drawing.

        ``width``/``height`` (``None``: the engine's size) are the picture's
        (portrait and landscape pictures); ``steps``/``guidance`` (``None``: the
        engine's) draw a picture again as it was drawn. ``preview`` (used when :attr:`previews` is on) gets ``("diffusion", jpeg)``
        previews while drawing, then ``("style", jpeg)``: the sketch, at most
        :data:`engine.image.diffusion.SKETCH_SIDE` pixels a side, before the style runs.
        """
        style = style or self.default_style
        self.animegan.style(style)  # fail on an unknown style before minutes of diffusion
        preview = preview if self.previews else None
        (generated,) = self.text_to_image.generate(
            positive, negative=negative, seed=seed, progress=progress, cancelled=cancelled, preview=preview, width=width, height=height,
            steps=steps, guidance=guidance,
        )
        return self.from_drawing(generated, style=style, progress=progress, cancelled=cancelled, preview=preview)

    def draw_batch(self, jobs: Sequence[PromptJob]) -> list[GeneratedImage | Exception]:
        """Draw several text jobs' pictures in one diffusion call (the first half of :meth:`from_prompt` for each).

        Returns, in order, each job's drawing — to be finished with
        :meth:`from_drawing` — or what stopped it: an unknown style (checked
        before anything is drawn, like :meth:`from_prompt`), :class:`engine.errors.Cancelled`,
        a failure of its own (see :meth:`engine.image.diffusion.TextToImage.generate_each`),
        or the model failing to load (every job).
        """
        outcomes: list[GeneratedImage | Exception | None] = [None] * len(jobs)
        drawn: list[int] = []
        requests: list[DrawRequest] = []
        for index, job in enumerate(jobs):
            try:
                self.animegan.style(job.style or self.default_style)
            except Exception as error:  # this job's own failure
                outcomes[index] = error
                continue
            drawn.append(index)
            requests.append(
                DrawRequest(
                    job.positive,
                    job.negative,
                    job.seed,
                    progress=job.progress,
                    cancelled=job.cancelled,
                    preview=job.preview if self.previews else None,
                )
            )
        if requests:
            sizes = {(jobs[index].width, jobs[index].height) for index in drawn}
            if len(sizes) > 1:
                raise ValueError("the jobs of one batch must have one size")
            ((width, height),) = sizes
            size = {"width": width, "height": height} if width is not None and height is not None else {}
            try:
                results: list[GeneratedImage | Exception] = list(self.text_to_image.generate_each(requests, **size))
            except Exception as error:  # e.g. the model cannot be loaded: every drawn job fails with it
                results = [error] * len(requests)
            for index, result in zip(drawn, results, strict=True):
                outcomes[index] = result
        return outcomes  # type: ignore[return-value]  # every slot is filled

    def remix(
        self,
        init_png: bytes,
        positive: str,
        negative: str = "",
        *,
        strength: float,
        style: str | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
    ) -> AnimeResult:
        """Draw ``positive`` over the picture ``init_png`` (img2img, ``strength`` 0..1 of the way to new noise), then restyle it.

        The picture keeps ``init_png``'s size; progress, previews and cancel as in :meth:`from_prompt`.
        """
        style = style or self.default_style
        self.animegan.style(style)
        preview = preview if self.previews else None
        request = RedrawRequest(
            open_image(init_png), positive, negative, seed, strength, progress=progress, cancelled=cancelled, preview=preview
        )
        generated = self.image_to_image.redraw(request)
        return self.from_drawing(generated, style=style, progress=progress, cancelled=cancelled, preview=preview)

    def from_drawing(
        self,
        generated: GeneratedImage,
        *,
        style: str | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
    ) -> AnimeResult:
        """Finish a text job whose picture is drawn: the sketch preview, then the style (the second half of :meth:`from_prompt`).

        Batched jobs (:meth:`draw_batch`) end here as well: whatever a text
        job's drawing must go through belongs here, not in :meth:`from_prompt`.
        """
        style = style or self.default_style
        preview = preview if self.previews else None
        if preview is not None:
            preview("style", preview_jpeg(generated.image, min(SKETCH_SIDE, max(generated.image.size))))
        result = self._stylize(generated.image, style, progress, cancelled)
        config = self.text_to_image.config
        parameters = PictureParameters(
            prompt=generated.prompt,
            negative=generated.negative,
            steps=generated.steps,
            scheduler=generated.scheduler,
            guidance=generated.guidance,
            seed=generated.seed,
            width=generated.width,
            height=generated.height,
            model=generated.model,
            lora=config.lora,
            lora_scale=config.lora_scale if config.lora else None,
            style=result.style,
        )
        return replace(
            result,
            seed=generated.seed,
            model=generated.model,
            timings=(("diffusion", generated.seconds), *result.timings),
            parameters=parameters,
        )

    def from_control(
        self,
        positive: str,
        negative: str = "",
        *,
        control: str,
        control_png: bytes | Path | Image.Image,
        style: str | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
        width: int | None = None,
        height: int | None = None,
        crop: bool = False,
    ) -> AnimeResult:
        """Draw ``positive`` keeping ``control_png``'s composition as ``control`` says (a ControlNet), then style it.

        ``width``/``height`` (``None``: ``control_png``'s proportions at about
        the engine's size) are the picture's; ``crop`` cuts the control image
        to their proportions (centred) before it is resized to them.

        ``control``: one of :data:`engine.image.control.CONTROL_KINDS`. The
        style is checked before anything is drawn; previews (when :attr:`previews`
        is on) come as a text job's do, and the drawing goes on as a text job's
        does (:meth:`from_drawing`). Its parameters name the ControlNet (kind,
        preprocessor, model, weight), as A1111's ControlNet extension writes them.
        """
        self.animegan.style(style or self.default_style)
        preview = preview if self.previews else None
        picture = open_image(control_png)
        generated = self.control.draw(
            self.text_to_image,
            control,
            picture,
            positive,
            negative,
            seed=seed,
            progress=progress,
            cancelled=cancelled,
            preview=preview,
            size=(width, height) if width is not None and height is not None else None,
            crop=crop,
        )
        result = self.from_drawing(generated, style=style, progress=progress, cancelled=cancelled, preview=preview)
        assert result.parameters is not None  # from_drawing always says how the picture was drawn
        kept = replace(
            result.parameters,
            control=control,
            control_module=a1111_module(control, picture),
            control_model=model_name(self.control.config.model(control)),
            control_weight=self.control.config.scale,
            control_resize=CROP_AND_RESIZE if crop and width is not None and height is not None else JUST_RESIZE,
        )
        return replace(result, parameters=kept)

    def from_photo(
        self,
        photo: bytes | Path | Image.Image,
        *,
        style: str | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> AnimeResult:
        """Restyle a photo (any size, orientation or colour mode) directly."""
        return self._stylize(open_image(photo), style or self.default_style, progress, cancelled)

    def restyle(
        self,
        previous: AnimeResult,
        style: str,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> AnimeResult:
        """Apply another style to ``previous.base_image``; diffusion does not run again."""
        result = self._stylize(previous.base_image, style, progress, cancelled)
        parameters = replace(previous.parameters, style=result.style) if previous.parameters else result.parameters
        return replace(result, seed=previous.seed, model=previous.model, parameters=parameters)

    def _stylize(
        self,
        base: Image.Image,
        style: str,
        progress: ProgressCallback | None,
        cancelled: CancelCheck | None,
    ) -> AnimeResult:
        started = time.perf_counter()
        anime = self.animegan.stylize(base, style, progress=progress, cancelled=cancelled)
        name = self.animegan.style(style).name
        return AnimeResult(
            anime_image=anime,
            base_image=base,
            style=name,
            seed=None,
            model=None,
            timings=(("style", time.perf_counter() - started),),
            parameters=PictureParameters(width=base.width, height=base.height, style=name),
        )
