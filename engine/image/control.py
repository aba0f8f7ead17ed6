"""Drawing a description while keeping a picture's composition: ControlNet on the drawing model.

One entry point: ``ControlNets(config).draw(text_to_image, kind, image, prompt, ...) -> GeneratedImage``.

* Kinds (:data:`CONTROL_KINDS`): ``lineart`` keeps a photo's outline (the anime
  line-art ControlNet, trained with CLIP skip 2 and run so), ``canny`` its edges,
  ``scribble`` a drawing's strokes, ``pose`` an OpenPose skeleton given as the
  control image or found in a photo (by :mod:`engine.image.pose`),
  ``depth`` a photo's near and far (a depth map by :mod:`engine.image.depth`).
* The control image is made with OpenCV (no extra weights): edges for
  ``canny``, an ink-line extraction for ``lineart``, the dark strokes of a
  sketch for ``scribble``; every ControlNet gets white lines on black.
* The ControlNet pipeline is made with ``StableDiffusionControlNetPipeline.from_pipe``
  from the drawing model's own pipeline: the UNet (its LoRA fused), text
  encoder and VAE are shared, not loaded twice. Each ControlNet loads once per
  process on first use (a hub id downloads into the models directory) and a
  failure is a :class:`~engine.errors.ControlModelUnavailableError` saying what to put where.
* The picture keeps the control image's proportions at about the configured
  drawing size (sides a multiple of 8), or is drawn at a size of the caller's:
  the control image is then resized to it, or cropped (centred) to its
  proportions first (A1111's "Just Resize" and "Crop and Resize").
* Progress, cooperative cancel and live previews (:func:`engine.image.diffusion.latent_preview`
  every few steps) go through ``callback_on_step_end``, as for a text picture.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.api import CancelCheck, PreviewCallback, ProgressCallback
from engine.errors import Cancelled, ControlModelUnavailableError, ControlNeedsTorchError, library_reason
from engine.hub import HUB_ID
from engine.image.depth import DEFAULT_ESTIMATOR, DepthEstimator
from engine.image.pose import DEFAULT_DETECTOR, PoseDetector

if TYPE_CHECKING:  # heavy imports stay lazy
    from PIL.Image import Image

    from engine.image.diffusion import GeneratedImage, TextToImage

log = logging.getLogger(__name__)

#: What a control image can keep: the ``--control`` choices and the ``JobSpec.control`` values.
CONTROL_KINDS = ("lineart", "canny", "pose", "scribble", "depth")
#: The ControlNet of each kind when the settings name none (Hugging Face ids; SD 1.5 ControlNet v1.1).
DEFAULT_MODELS: dict[str, str] = {
    "lineart": "lllyasviel/control_v11p_sd15s2_lineart_anime",
    "canny": "lllyasviel/control_v11p_sd15_canny",
    "pose": "lllyasviel/control_v11p_sd15_openpose",
    "scribble": "lllyasviel/control_v11p_sd15_scribble",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
}
#: Kinds whose ControlNet was trained with the text encoder's penultimate layer (CLIP skip 2).
CLIP_SKIP_2 = frozenset({"lineart"})
#: Canny thresholds (OpenCV ``Canny``), as in the ControlNet v1.1 demos.
CANNY_LOW, CANNY_HIGH = 100, 200
#: A pixel darker than this (0..255) is a stroke of a sketch.
INK = 128
#: The preprocessor of each kind as AUTOMATIC1111's ControlNet extension names its nearest one, for a PNG's
#: ``ControlNet 0`` infotext (:mod:`engine.image.png_info`): Canny; a model-free line extraction from dark lines on a
#: light ground; the strokes of a sketch turned white on black; DWPose; Depth Anything V2.
A1111_MODULES: dict[str, str] = {
    "canny": "canny",
    "lineart": "lineart_standard (from white bg & black line)",
    "scribble": "invert (from white bg & black line)",
    "pose": "dw_openpose_full",
    "depth": "depth_anything_v2",
}
#: A1111's preprocessor of a control image used as it is (a pose given as a skeleton picture).
AS_IT_IS = "none"
#: Words in an A1111 ControlNet model's name that say its kind (``control_v11p_sd15_openpose [cab727d4]``).
MODEL_HINTS: dict[str, str] = {"lineart": "lineart", "canny": "canny", "openpose": "pose", "scribble": "scribble", "depth": "depth"}


@dataclass(frozen=True)
class ControlConfig:
    """Which ControlNet each kind uses (hub id or local diffusers directory), how strongly, and where downloads go.

    ``depth_estimator``: the model making a photo's depth map for ``depth`` (hub id or local directory);
    ``pose_detector``: the models finding a photo's pose for ``pose`` (hub repo or local directory).
    """

    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    scale: float = 1.0
    cache_dir: str | Path | None = None
    depth_estimator: str = DEFAULT_ESTIMATOR
    pose_detector: str = DEFAULT_DETECTOR

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(CONTROL_KINDS)
        if unknown:
            raise ValueError(f"unknown control kinds {sorted(unknown)}; choose from {', '.join(CONTROL_KINDS)}")
        if not 0 <= self.scale <= 2:
            raise ValueError(f"scale must be between 0 and 2, got {self.scale}")

    def model(self, kind: str) -> str:
        """The ControlNet of ``kind``."""
        check_kind(kind)
        return str(self.models.get(kind) or DEFAULT_MODELS[kind])


def check_kind(kind: str) -> None:
    """Raise ``ValueError`` for a kind that is not one of :data:`CONTROL_KINDS`."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control {kind!r}; choose one of {', '.join(CONTROL_KINDS)}")


def control_image(kind: str, picture: Image) -> Image:
    """The ControlNet input of ``kind`` made from ``picture``: white lines on black, the picture's size.

    ``canny``: OpenCV's edges. ``lineart``: the dark ink lines of the picture
    (adaptive threshold on a smoothed grey image), a light stand-in for the
    learned line-art detector (whose weights would be another 200 MB).
    ``scribble``: the dark strokes of a sketch on a light ground, thickened a
    little. ``pose``: the picture is taken as an OpenPose skeleton as it is.
    ``depth`` needs a model: :meth:`ControlNets.condition` makes it.
    """
    import cv2
    import numpy as np
    from PIL import Image as PILImage

    check_kind(kind)
    if kind == "depth":
        raise ValueError("a depth map is made by a model: ControlNets.condition")
    rgb = picture.convert("RGB")
    if kind == "pose":
        return rgb
    grey = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2GRAY)
    if kind == "canny":
        lines = cv2.Canny(grey, CANNY_LOW, CANNY_HIGH)
    elif kind == "lineart":
        smooth = cv2.GaussianBlur(grey, (3, 3), 0)
        lines = cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 9, 6)
    else:
        lines = np.where(grey < INK, 255, 0).astype(np.uint8)
        lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    return PILImage.fromarray(cv2.cvtColor(lines, cv2.COLOR_GRAY2RGB))


def model_name(model: str) -> str:
    """A ControlNet's name as A1111 shows one: the last part of a hub id or local path (no comma or colon)."""
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or model
    return re.sub(r"[,:\s]+", "_", name)


def a1111_module(kind: str, picture: Image) -> str:
    """The A1111 preprocessor that makes what ``kind`` makes of ``picture`` (:data:`A1111_MODULES`; a skeleton: as it is)."""
    check_kind(kind)
    return AS_IT_IS if kind == "pose" and is_skeleton(picture) else A1111_MODULES[kind]


def kind_of(module: str | None, model: str | None) -> str | None:
    """The kind of a ControlNet an infotext names: by its model's name, else by its preprocessor; None: none of ours."""
    lowered = (model or "").lower()
    hinted = next((kind for hint, kind in MODEL_HINTS.items() if hint in lowered), None)
    return hinted or next((kind for kind, name in A1111_MODULES.items() if module == name), None)


def fitted(picture: Image, size: tuple[int, int], *, crop: bool) -> Image:
    """``picture`` at ``size``: resized as it is, or (``crop``) cut to ``size``'s proportions around its centre first."""
    width, height = picture.size
    if crop:
        scale = min(width / size[0], height / size[1])
        cut_w, cut_h = round(size[0] * scale), round(size[1] * scale)
        left, top = (width - cut_w) // 2, (height - cut_h) // 2
        picture = picture.crop((left, top, left + cut_w, top + cut_h))
    return picture.resize(size)


def is_sketch(picture: Image, *, white: float = 0.8, ink: float = 0.01) -> bool:
    """Whether ``picture`` looks like a drawing: mostly white (``white`` of its pixels) with some dark strokes (``ink``)."""
    import numpy as np

    grey = np.asarray(picture.convert("L").resize((128, 128)))
    return float((grey > 220).mean()) >= white and float((grey < INK).mean()) >= ink


def is_skeleton(picture: Image, *, black: float = 0.7) -> bool:
    """Whether ``picture`` looks like an OpenPose skeleton: mostly black (``black`` of its pixels), a few coloured limbs."""
    import numpy as np

    grey = np.asarray(picture.convert("L").resize((128, 128)))
    return float((grey < 20).mean()) >= black


def drawing_size(width: int, height: int, area: int) -> tuple[int, int]:
    """A size with the proportions of ``width`` x ``height`` and about ``area`` pixels, both sides multiples of 8 (64..2048)."""
    scale = (area / (width * height)) ** 0.5
    return tuple(min(2048, max(64, round(side * scale / 8) * 8)) for side in (width, height))


class ControlNets:
    """The ControlNets of a :class:`ControlConfig`, loaded once each, drawing on a :class:`TextToImage`'s model."""

    def __init__(self, config: ControlConfig | None = None) -> None:
        self.config = config or ControlConfig()
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, Any, Any], Any] = {}
        self.depth = DepthEstimator(self.config.depth_estimator, cache_dir=self.config.cache_dir)
        self.pose = PoseDetector(self.config.pose_detector, cache_dir=self.config.cache_dir)

    def condition(self, kind: str, picture: Image, *, device: Any = "cpu") -> Image:
        """The ControlNet input of ``kind`` made from ``picture``: a depth map by the depth estimator (on ``device``),
        a photo's skeleton by the pose detector (a skeleton picture is taken as it is), else :func:`control_image`."""
        if kind == "depth":
            return self.depth.depth_map(picture, device=device)
        if kind == "pose" and not is_skeleton(picture):
            return self.pose.skeleton(picture, device=device)
        return control_image(kind, picture)

    def draw(
        self,
        text_to_image: TextToImage,
        kind: str,
        picture: Image,
        positive: str,
        negative: str = "",
        *,
        seed: int | None = None,
        scale: float | None = None,
        size: tuple[int, int] | None = None,
        crop: bool = False,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
    ) -> GeneratedImage:
        """Draw ``positive`` keeping ``picture``'s composition as ``kind`` says; raises Cancelled, ControlModelUnavailableError.

        ``scale`` (default: the config's) is how strongly the control image
        steers the drawing; 0 draws as if there were none. ``size`` (width,
        height; default: ``picture``'s proportions at about the configured
        drawing size) is the picture's; the control image is resized to it, or
        with ``crop`` cut to its proportions first (:func:`fitted`). ``preview`` gets
        ``("diffusion", jpeg)`` every ``ceil(steps / PREVIEWS_PER_RUN)`` steps
        but the last, as :meth:`engine.image.diffusion.TextToImage.generate`
        sends them; one that cannot be made is logged and skipped.
        """
        import torch

        from engine.image.device import resolve_device
        from engine.image.diffusion import GeneratedImage, _check_size, _preview_steps

        check_kind(kind)
        cfg = text_to_image.config
        seed = secrets.randbelow(2**32) if seed is None else seed
        if size is not None:
            _check_size(*size)
        width, height = size or drawing_size(picture.width, picture.height, cfg.width * cfg.height)
        condition = fitted(self.condition(kind, picture, device=resolve_device(cfg.device)), (width, height), crop=crop)
        base = text_to_image.pipeline  # loads the drawing model (once); raises DrawingModelUnavailableError
        pipe = self._pipeline(base, kind)
        steps, guidance = cfg.resolved_steps, cfg.resolved_guidance

        def on_step_end(p: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            total = getattr(p, "_num_timesteps", None) or steps
            if progress is not None:
                progress("diffusion", min(1.0, (i + 1) / total))
            if preview is not None and (i + 1) % _preview_steps(total) == 0 and i + 1 < total:
                _preview(p, callback_kwargs.get("latents"), width, height, preview)
            if cancelled is not None and cancelled():
                p._interrupt = True
            return callback_kwargs

        started = time.perf_counter()
        with text_to_image.run_lock:
            if kind in CLIP_SKIP_2:
                texts: dict[str, Any] = {
                    "prompt_embeds": _penultimate(pipe, positive),
                    "negative_prompt_embeds": _penultimate(pipe, negative),
                }
            else:
                texts = {"prompt": positive, "negative_prompt": negative}
            image = pipe(
                **texts,
                image=condition,
                num_inference_steps=steps,
                guidance_scale=guidance,
                width=width,
                height=height,
                generator=torch.Generator("cpu").manual_seed(seed),
                controlnet_conditioning_scale=self.config.scale if scale is None else scale,
                callback_on_step_end=on_step_end,
            ).images[0]
        if cancelled is not None and cancelled():
            raise Cancelled
        return GeneratedImage(
            image=image,
            prompt=positive,
            negative=negative,
            seed=seed,
            model=cfg.model,
            scheduler=cfg.scheduler,
            steps=steps,
            guidance=float(guidance),
            width=width,
            height=height,
            seconds=time.perf_counter() - started,
        )

    def _pipeline(self, base: Any, kind: str) -> Any:
        """The ControlNet pipeline of ``kind`` sharing ``base``'s modules (made once per base pipeline and kind)."""
        from diffusers import StableDiffusionControlNetPipeline

        key = (kind, id(base.unet), id(base.scheduler))
        with self._lock:
            pipe = self._loaded.get(key)
            if pipe is None:
                if not hasattr(base.unet, "parameters"):
                    raise ControlNeedsTorchError(
                        "the drawing model's UNet runs on ONNX Runtime (SD_BACKEND=onnx), which takes no ControlNet: set "
                        "SD_BACKEND=torch (or auto, the default) and restart to draw from a photo's composition or a sketch"
                    )
                controlnet = self._controlnet(kind, dtype=base.unet.dtype, device=base.unet.device)
                # The VAE is passed on by hand: from_pipe drops one of another class than the pipeline declares (the tiny decoder).
                pipe = StableDiffusionControlNetPipeline.from_pipe(base, controlnet=controlnet, vae=base.vae)
                pipe.set_progress_bar_config(disable=True)
                self._loaded[key] = pipe
            return pipe

    def _controlnet(self, kind: str, *, dtype: Any, device: Any) -> Any:
        from diffusers import ControlNetModel

        model = self.config.model(kind)
        local = Path(model).expanduser()
        kwargs: dict[str, Any] = {"torch_dtype": dtype}
        if self.config.cache_dir is not None:
            kwargs["cache_dir"] = str(self.config.cache_dir)
        started = time.perf_counter()
        try:
            controlnet = ControlNetModel.from_pretrained(str(local) if local.is_dir() else model, **kwargs)
        except (OSError, ValueError) as exc:
            raise ControlModelUnavailableError(_missing(kind, model, exc)) from exc
        log.info("loaded the %s ControlNet %s in %.1f s", kind, model, time.perf_counter() - started)
        return controlnet.to(device)


def _preview(pipe: Any, latents: Any, width: int, height: int, preview: PreviewCallback) -> None:
    """Hand ``preview`` a JPEG of the picture forming; making it may fail (logged, skipped), ``preview`` may raise."""
    from engine.image.diffusion import _denoised, latent_preview

    if latents is None:
        return
    try:
        image = latent_preview(_denoised(pipe, latents), width, height)
    except Exception:  # a preview is a nicety: the drawing goes on without it
        log.warning("could not make a preview of a drawing with a ControlNet", exc_info=True)
        return
    preview("diffusion", image)


def _penultimate(pipe: Any, text: str) -> Any:
    """``text`` encoded by the text encoder's penultimate layer (A1111's "CLIP skip 2"), final layer norm applied.

    Done here rather than with the pipeline's ``clip_skip``, which reaches for
    ``text_encoder.text_model``, a module transformers 5 no longer has.
    """
    import torch

    tokens = pipe.tokenizer(
        text, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(pipe.text_encoder.device)
    encoder = pipe.text_encoder
    with torch.no_grad():
        hidden = encoder(tokens, output_hidden_states=True).hidden_states[-2]
        return getattr(encoder, "text_model", encoder).final_layer_norm(hidden)


def _missing(kind: str, model: str, exc: BaseException) -> str:
    """What to put where when the ControlNet of ``kind`` cannot be loaded."""
    setting = f"CONTROLNET_{kind.upper()}"
    reason = library_reason(exc)
    if HUB_ID.match(model) and not Path(model).expanduser().exists():
        name = model.rsplit("/", 1)[-1]
        return (
            f"the {kind} ControlNet {model} could not be loaded ({type(exc).__name__}: {reason}); on a machine with "
            f"internet access run `hf download {model} --local-dir models/{name}`, copy models/{name} here and set "
            f"{setting}=models/{name} (or let it download into MODELS_DIR)"
        )
    return (
        f"the {kind} ControlNet at {model} could not be loaded ({type(exc).__name__}: {reason}); put a diffusers "
        f"ControlNet directory there (config.json and diffusion_pytorch_model.safetensors) or point {setting} at one"
    )
