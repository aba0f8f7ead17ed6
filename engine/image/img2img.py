"""Draw a new description over an existing picture (img2img), on the weights :class:`TextToImage` loaded.

A remix keeps a delivered picture's composition and colours and moves it
towards new words: Stable Diffusion starts from the picture with noise added
(``strength`` of the way back to pure noise) instead of from noise alone.
The img2img pipeline is ``StableDiffusionImg2ImgPipeline.from_pipe`` of the
text-to-image one: the same modules (UNet on whichever backend it runs,
LoRA fused, the tiny decoder, the dtype), no second copy in memory. Its runs
take the same lock as text-to-image ones on those weights.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.api import LOADING, CancelCheck, PreviewCallback, ProgressCallback
from engine.errors import Cancelled

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.image.diffusion import GeneratedImage, TextToImage

log = logging.getLogger(__name__)

#: The strengths a remix may use: above 0 (something must change) and at most 1 (from noise: a new picture).
STRENGTH_RANGE = (0.05, 1.0)


@dataclass(frozen=True)
class RedrawRequest:
    """One img2img picture: the picture to start from, what to draw, how far to move, and where its progress goes."""

    init: Image
    prompt: str
    negative: str = ""
    seed: int | None = None
    strength: float = 0.5
    progress: ProgressCallback | None = None
    cancelled: CancelCheck | None = None
    preview: PreviewCallback | None = None


class ImageToImage:
    """img2img on the weights of one :class:`TextToImage` (loaded on first use, shared with it)."""

    def __init__(self, text_to_image: TextToImage) -> None:
        self.text_to_image = text_to_image
        self._lock = threading.Lock()
        self._pipe: Any = None

    def pipeline(self) -> Any:
        """The img2img pipeline sharing the text-to-image pipeline's modules (made once)."""
        with self._lock:
            if self._pipe is None:
                from diffusers import StableDiffusionImg2ImgPipeline

                base = self.text_to_image.pipeline
                # The UNet and VAE by name: from_pipe passes on only modules of the declared types, and the
                # tiny decoder (AutoencoderTiny) or the ONNX Runtime UNet are not.
                pipe = StableDiffusionImg2ImgPipeline.from_pipe(base, unet=base.unet, vae=base.vae)
                pipe.set_progress_bar_config(disable=True)
                self._pipe = pipe
            return self._pipe

    def redraw(self, request: RedrawRequest, *, steps: int | None = None, guidance: float | None = None) -> GeneratedImage:
        """Draw ``request.prompt`` over ``request.init`` (resized to the config's size unless it has one of its own).

        The picture keeps its own size (sides cropped to multiples of 8). As many
        denoising steps run as a drawing from noise takes (the schedule is
        ``steps / strength`` long and starts ``strength`` from its end).
        ``progress("diffusion", f)`` follows every step, ``preview`` gets a few
        JPEGs of the picture forming, ``cancelled`` is polled after every step
        (:class:`Cancelled` is raised). Raises ``ValueError`` for a strength
        out of :data:`STRENGTH_RANGE`.
        """
        import secrets

        import torch

        from engine.image.diffusion import GeneratedImage, _check_size, _decode, _preview_steps

        low, high = STRENGTH_RANGE
        if not low <= request.strength <= high:
            raise ValueError(f"strength must be between {low} and {high}, got {request.strength!r}")
        cfg = self.text_to_image.config
        steps = cfg.resolved_steps if steps is None else steps
        guidance = cfg.resolved_guidance if guidance is None else guidance
        width, height = (side - side % 8 for side in request.init.size)
        _check_size(width, height)
        init = request.init.convert("RGB")
        if init.size != (width, height):
            init = init.crop((0, 0, width, height))
        seed = secrets.randbelow(2**32) if request.seed is None else request.seed
        if request.cancelled is not None and request.cancelled():
            raise Cancelled
        if request.progress is not None and self._pipe is None:
            request.progress(LOADING, 0.0)
        pipe = self.pipeline()
        stopped = False

        def on_step_end(p: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            nonlocal stopped
            total = getattr(p, "_num_timesteps", None) or steps
            if request.progress is not None:
                request.progress("diffusion", min(1.0, (i + 1) / total))
            if request.preview is not None and (i + 1) % _preview_steps(total) == 0 and i + 1 < total:
                self._preview(p, callback_kwargs.get("latents"), width, height, request.preview)
            if request.cancelled is not None and request.cancelled():
                stopped = True
                p._interrupt = True
            return callback_kwargs

        shared = self.text_to_image._shared
        lock = shared.run_lock if shared is not None else threading.Lock()
        started = time.perf_counter()
        with lock:
            pipe.vae.disable_tiling()
            out = pipe(
                prompt=request.prompt,
                negative_prompt=request.negative,
                image=init,
                strength=request.strength,
                # Scheduled so the steps that run (the last ``strength`` of them) are the configured number.
                num_inference_steps=math.ceil(steps / request.strength),
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="latent",
                callback_on_step_end=on_step_end,
            )
            if stopped:
                raise Cancelled
            image = _decode(pipe, out.images[0:1])
        return GeneratedImage(
            image=image,
            prompt=request.prompt,
            negative=request.negative,
            seed=seed,
            model=cfg.model,
            scheduler=cfg.scheduler,
            steps=steps,
            guidance=float(guidance),
            width=width,
            height=height,
            seconds=time.perf_counter() - started,
        )

    def _preview(self, pipe: Any, latents: Any, width: int, height: int, preview: PreviewCallback) -> None:
        """Hand ``preview`` a JPEG of the picture forming; making it may fail (logged, skipped)."""
        from engine.image.diffusion import _denoised, latent_preview

        if latents is None:
            return
        try:
            image = latent_preview(_denoised(pipe, latents), width, height)
        except Exception:  # a preview is a nicety
            log.warning("could not make a preview of a remix", exc_info=True)
            return
        preview("diffusion", image)
