"""Text to image with diffusers (Stable Diffusion 1.5-class models).

One entry point: ``TextToImage(config).generate(prompts, ...) -> list[GeneratedImage]``.

* The model is a Hugging Face id, a local diffusers directory (``model_index.json``
  plus ``unet/ vae/ text_encoder/ tokenizer/ scheduler/``) or a single
  ``.safetensors``/``.ckpt`` checkpoint (``from_single_file``; that path also needs
  the SD 1.5 component configs, fetched from the hub or its cache).
* Weights are loaded once per process, lazily, under a lock, and shared by every
  ``TextToImage`` with the same model/LoRA/device; each instance only owns its
  scheduler. CUDA runs in fp16, a CPU in fp32 (bfloat16: below).
* Reproducible: every image has its own CPU ``torch.Generator`` seeded
  ``seed + i``; the seed used is reported on the result, and asking again with
  that seed, prompt and settings gives the same picture (up to floating-point
  rounding: a batch of 4 and a batch of 1 may round a few values the other way).
* Batches (:meth:`TextToImage.generate_each`): several requests, each with its
  own prompt, negative prompt, seed, progress, preview and cancel, drawn in one
  diffusers call. A request cancelled mid-run is masked (its rows keep being
  computed, its result is dropped, it is not decoded); one whose callback fails
  fails alone; a batch that fails as a whole is drawn again one request at a time.
* Progress ``("diffusion", fraction)`` and cooperative cancel through
  ``callback_on_step_end``; a cancelled run raises :class:`engine.errors.Cancelled`.
* CUDA fast paths: fp16, scaled-dot-product attention, channels_last, optional
  ``torch.compile`` of the UNet; the VAE decodes in tiles above a size.
* CPU fast paths: the tiny decoder (TAESD, :mod:`engine.image.tiny_vae`) instead
  of the model's VAE (``vae="tiny"``, or ``"auto"`` on a CPU); bfloat16 on a CPU
  that computes it in hardware (``cpu_dtype="bfloat16"``, or ``"auto"`` there);
  the UNet on ONNX Runtime only when asked (:mod:`engine.image.onnx_unet`;
  ``backend="onnx"``), exported once after the LoRA is fused and cached next
  to the models. ``backend="auto"`` is torch everywhere: ControlNets
  (:mod:`engine.image.control`) need the torch UNet, and ONNX Runtime's float32
  step is only a few per cent faster than torch's
  (``docs/decisions/cpu-drawing.md``).
* Live previews (optional): every few steps the same callback turns the
  current latents into a small JPEG with a fixed linear latent -> RGB map
  (:func:`latent_preview`; no VAE, no extra weights).
* Load failures become :class:`engine.errors.ModelUnavailableError` with an
  operator message saying which model failed and what to do about it.

The safety checker is deliberately not loaded (``safety_checker=None``,
``requires_safety_checker=False``): filtering what the bot produces is the
operator's responsibility.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.api import LOADING, PREPARING, CancelCheck, PreviewCallback, ProgressCallback
from engine.errors import Cancelled, DrawingModelUnavailableError, library_reason, scrub_secrets
from engine.hub import HUB_ID
from engine.image.tiny_vae import TINY_VAE, VAE_CHOICES

if TYPE_CHECKING:  # heavy imports stay lazy: importing this module must be cheap
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL.Image import Image

log = logging.getLogger(__name__)

#: Scheduler names accepted by :class:`DiffusionConfig`.
SCHEDULERS = ("dpmpp", "euler_a", "lcm", "turbo", "hyper")

#: (steps, guidance) used when the config leaves them unset: what each sampler is made for.
SCHEDULER_DEFAULTS: dict[str, tuple[int, float]] = {
    "dpmpp": (25, 7.0),  # DPM-Solver++ 2M Karras: good images in 20-30 steps
    "euler_a": (25, 7.0),
    "lcm": (4, 1.0),  # LCM / LCM-LoRA: 2-8 steps, guidance 1 (= no CFG) to 2
    "turbo": (1, 0.0),  # SD-Turbo (ADD): 1-4 steps, no classifier-free guidance
    "hyper": (8, 0.0),  # Hyper-SD 1.5 N-step LoRA: DDIM with trailing timesteps, steps = the LoRA's N, no guidance
}

#: Longest side of a preview of the latents (pixels). SD 1.5 latents are 1/8 of the image (64x64 for 512x512),
#: so this is already twice the detail the linear decode has; as JPEG it is 2-4 KB.
PREVIEW_SIDE = 128
#: Longest side of the sketch (the drawing before the anime style) sent as the last preview.
SKETCH_SIDE = 256
#: JPEG quality of previews and the sketch.
PREVIEW_QUALITY = 75
#: About this many previews per run: one every ceil(steps / PREVIEWS_PER_RUN) steps, never after the last
#: step (the sketch follows it). The conversation's edit throttle shows at most one per PROGRESS_INTERVAL_SECONDS.
PREVIEWS_PER_RUN = 4
#: SD 1.x latent channels -> RGB in [-1, 1], applied to the model-space latents (the VAE latents times 0.18215,
#: which is what diffusers' denoising loop holds): the linear approximation of the VAE decoder fitted by
#: ComfyUI (comfy/latent_formats.py, ``SD15.latent_rgb_factors``; its Latent2RGB previewer maps the result
#: to pixels as ``(x + 1) / 2``, clamped). Rows are latent channels, columns R, G, B.
SD15_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)

#: Where the UNet runs: ``torch``, ``onnx`` (ONNX Runtime, CPU only) or ``auto`` (torch: what ControlNets need;
#: ONNX Runtime is the operator's explicit choice).
BACKENDS = ("auto", "torch", "onnx")
#: The dtype on a CPU: ``float32``, ``bfloat16`` or ``auto`` (bfloat16 when the CPU computes it in hardware).
CPU_DTYPES = ("auto", "float32", "bfloat16")

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_SEED_LIMIT = 2**64  # torch.Generator.manual_seed accepts 0 .. 2**64-1
#: One weights file in a hub repository (``org/repo/file.safetensors``), e.g. one of the Hyper-SD LoRAs.
_HUB_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9_])/([\w.-]+\.safetensors)$")
_ADAPTER = "voice2anime"


@dataclass(frozen=True)
class DiffusionConfig:
    """How to build and run the text-to-image pipeline.

    ``steps``/``guidance`` of ``None`` mean "the scheduler's usual value"
    (:data:`SCHEDULER_DEFAULTS`): 25 / 7.0 for ``dpmpp`` and ``euler_a``, 4 / 1.0
    for ``lcm``, 1 / 0.0 for ``turbo``.

    Schedulers:

    * ``dpmpp`` — DPM-Solver++ 2M with Karras sigmas (default).
    * ``euler_a`` — Euler ancestral.
    * ``lcm`` — LCMScheduler, for LCM-distilled models or a model plus an LCM-LoRA
      (``lora="latent-consistency/lcm-lora-sdv1-5"``); few steps, low guidance.
    * ``turbo`` — Euler ancestral with ``trailing`` timesteps for SD-Turbo-style
      (adversarially distilled) models; 1-4 steps, guidance 0.
    * ``hyper`` — DDIM with ``trailing`` timesteps, for a Hyper-SD 1.5 N-step LoRA
      (``lora="ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"``); steps = N, guidance 0.
    """

    model: str = "stablediffusionapi/anything-v5"
    scheduler: str = "dpmpp"
    steps: int | None = None
    guidance: float | None = None
    width: int = 512
    height: int = 512
    lora: str | None = None
    lora_scale: float = 0.8
    device: str = "auto"
    cache_dir: str | Path | None = None
    #: ``torch.compile`` the UNet (``reduce-overhead`` on CUDA): faster steps after a slow first run per batch size.
    compile: bool = False
    #: Decode in tiles (less memory, seams blended) when the picture's longest side is above this; 0 = never.
    vae_tiling_above: int = 1024
    #: Decoder: ``full`` (the model's VAE), ``tiny`` (``tiny_vae``), ``auto`` (tiny on a CPU, full on a GPU).
    vae: str = "full"
    #: The tiny decoder: a Hugging Face id or a local ``AutoencoderTiny`` directory.
    tiny_vae: str = TINY_VAE
    #: Where the UNet runs: one of :data:`BACKENDS`.
    backend: str = "torch"
    #: The dtype on a CPU (one of :data:`CPU_DTYPES`); the ONNX UNet always runs in float32.
    cpu_dtype: str = "float32"

    def __post_init__(self) -> None:
        if not str(self.model).strip():
            raise ValueError("model must name a Hugging Face id, a diffusers directory or a checkpoint file")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if self.steps is not None:
            _check_steps(self.steps)
        if self.guidance is not None:
            _check_guidance(self.guidance)
        _check_size(self.width, self.height)
        if self.lora is not None and not str(self.lora).strip():
            raise ValueError("lora must be None or a Hugging Face id / local path")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if not 0 <= self.lora_scale <= 4:
            raise ValueError(f"lora_scale must be between 0 and 4, got {self.lora_scale}")
        if not isinstance(self.vae_tiling_above, int) or self.vae_tiling_above < 0:
            raise ValueError(f"vae_tiling_above must be 0 (never) or a side in pixels, got {self.vae_tiling_above!r}")
        if self.vae not in VAE_CHOICES:
            raise ValueError(f"vae must be one of {', '.join(VAE_CHOICES)}, got {self.vae!r}")
        if not str(self.tiny_vae).strip():
            raise ValueError("tiny_vae must name a Hugging Face id or a local AutoencoderTiny directory")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.cpu_dtype not in CPU_DTYPES:
            raise ValueError(f"cpu_dtype must be one of {', '.join(CPU_DTYPES)}, got {self.cpu_dtype!r}")

    @property
    def resolved_steps(self) -> int:
        """Steps to use: the configured value or the scheduler default."""
        return self.steps if self.steps is not None else SCHEDULER_DEFAULTS[self.scheduler][0]

    @property
    def resolved_guidance(self) -> float:
        """Guidance to use: the configured value or the scheduler default."""
        return self.guidance if self.guidance is not None else SCHEDULER_DEFAULTS[self.scheduler][1]


@dataclass(frozen=True)
class GeneratedImage:
    """One generated picture and everything needed to make it again.

    ``seed`` is the seed of this image's own generator: running ``generate``
    with the same prompt, negative prompt, model, scheduler, steps, guidance,
    size and this seed reproduces the pixels. ``seconds`` is the wall time of
    the ``generate`` call that produced it (shared by a batch).
    """

    image: Image = field(repr=False)
    prompt: str
    negative: str
    seed: int
    model: str
    scheduler: str
    steps: int
    guidance: float
    width: int
    height: int
    seconds: float


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 150:
        raise ValueError(f"steps must be an integer between 1 and 150, got {steps!r}")


def _check_guidance(guidance: float) -> None:
    if not 0 <= guidance <= 30:
        raise ValueError(f"guidance must be between 0 and 30, got {guidance!r}")


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 64 or value > 2048 or value % 8:
            raise ValueError(f"{name} must be a multiple of 8 between 64 and 2048, got {value!r}")


# --------------------------------------------------------------------------- loading


@dataclass
class _Loaded:
    """A loaded pipeline shared by every TextToImage with the same load key."""

    pipe: StableDiffusionPipeline
    #: Serialises denoising on these weights (one job at a time per model copy).
    run_lock: threading.Lock = field(default_factory=threading.Lock)


_LOAD_LOCK = threading.Lock()
#: Called, in the thread that loads, just before a one-time conversion of the model (the ONNX export) starts.
_PREPARING: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("preparing", default=None)
_LOADED: dict[tuple, _Loaded] = {}


def clear_cache() -> None:
    """Forget every loaded pipeline (tests; switching models in a long-lived process).

    ``TextToImage`` instances that already loaded keep their pipeline; drop them
    too to free the memory.
    """
    with _LOAD_LOCK:
        _LOADED.clear()


def _load_key(config: DiffusionConfig) -> tuple:
    from engine.image.device import resolve_device

    return (
        str(config.model),
        None if config.lora is None else str(config.lora),
        config.lora_scale if config.lora else None,
        str(resolve_device(config.device)),
        None if config.cache_dir is None else str(config.cache_dir),
        config.compile,
        config.vae,
        str(config.tiny_vae) if config.vae != "full" else None,
        config.backend,
        config.cpu_dtype,
    )


def _shared_pipeline(config: DiffusionConfig) -> _Loaded:
    key = _load_key(config)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _Loaded(_load_pipeline(config))
            _LOADED[key] = loaded
        return loaded


def _dtype_kwarg() -> str:
    """diffusers >= 0.36 takes ``dtype=``; older releases only ``torch_dtype=`` (now deprecated)."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _load_pipeline(config: DiffusionConfig) -> StableDiffusionPipeline:
    import torch
    from diffusers import StableDiffusionPipeline

    from engine.image.device import dtype_for, resolve_device
    from engine.image.tiny_vae import uses_tiny_vae

    device = resolve_device(config.device)
    bf16 = _cpu_bf16(config, device)
    dtype = torch.bfloat16 if bf16 else dtype_for(device)
    model = str(config.model)
    kwargs: dict[str, Any] = {
        _dtype_kwarg(): dtype,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    if config.cache_dir is not None:
        kwargs["cache_dir"] = str(config.cache_dir)
    started = time.perf_counter()
    tiny_missing: DrawingModelUnavailableError | None = None
    if uses_tiny_vae(config.vae, device):
        try:
            # Passed as the pipeline's VAE, so the model's own VAE is never loaded.
            kwargs["vae"] = _load_tiny_vae(config, dtype)
        except DrawingModelUnavailableError as error:
            tiny_missing = error  # the model itself is checked first: a missing model is what to fix first
    try:
        if _is_single_file(model):
            pipe = StableDiffusionPipeline.from_single_file(str(Path(model).expanduser()), **kwargs)
        else:
            local = Path(model).expanduser()
            source = str(local) if local.is_dir() else model
            pipe = StableDiffusionPipeline.from_pretrained(source, **kwargs)
    except _load_errors() as exc:
        raise DrawingModelUnavailableError(_model_message(model, exc)) from exc
    if tiny_missing is not None:
        if config.vae == "tiny":
            raise tiny_missing
        log.warning("%s Meanwhile the model's own VAE decodes (slower on a CPU).", tiny_missing)

    pipe.to(device)
    if config.lora:
        _apply_lora(pipe, config)
    onnx = _uses_onnx(config, device, pipe.unet.config)
    if onnx:
        pipe.unet = _onnx_unet(pipe, config)
    # Attention slicing would only slow SDPA down. Decode a batch one image at a time (less VRAM, and
    # each image decodes exactly as it would alone).
    pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    paths = _fast_paths(pipe, device, compile=config.compile and not onnx)
    if onnx:
        paths.insert(0, "onnxruntime unet")
    log.info(
        "loaded %s on %s (%s; %s) in %.1f s", _display(model), device, dtype, ", ".join(paths), time.perf_counter() - started
    )
    return pipe


def _cpu_bf16(config: DiffusionConfig, device: torch.device) -> bool:
    """Whether the pipeline runs in bfloat16 on the CPU: ``cpu_dtype`` says so, or ``auto`` on a CPU that computes it.

    Not with ``backend="onnx"``: the ONNX UNet is float32, and so is everything around it.
    """
    from engine.image.device import cpu_computes_bf16

    if device.type != "cpu" or config.backend == "onnx" or config.cpu_dtype == "float32":
        return False
    return config.cpu_dtype == "bfloat16" or cpu_computes_bf16()


def _uses_onnx(config: DiffusionConfig, device: torch.device, unet_config: Any) -> bool:
    """Whether the UNet runs on ONNX Runtime: only with ``backend="onnx"``, for a UNet and size the export covers.

    ``auto`` is torch on every device and dtype: a ControlNet cannot steer an
    ONNX UNet, and in float32 the two are within a few per cent of each other per step.
    """
    from engine.image.onnx_unet import SIDE_MULTIPLE, exportable

    if config.backend != "onnx":
        return False
    if device.type != "cpu":
        raise ValueError(f"the onnx backend runs on the CPU, not {device}: set TORCH_DEVICE=cpu or SD_BACKEND=torch")
    if not exportable(unet_config):
        log.warning("%s has a UNet with extra conditioning the ONNX export does not cover; it runs on torch", _display(str(config.model)))
        return False
    if config.width % SIDE_MULTIPLE or config.height % SIDE_MULTIPLE:
        log.warning("%dx%d is not a multiple of %d on both sides, which the ONNX UNet needs; it runs on torch", config.width, config.height, SIDE_MULTIPLE)
        return False
    return True


def _onnx_unet(pipe: StableDiffusionPipeline, config: DiffusionConfig) -> Any:
    """The pipeline's UNet (LoRA fused) on ONNX Runtime, from the cache in the models directory or exported into it."""
    import torch

    from engine.image.onnx_unet import export_key, load_or_export

    key = export_key(str(config.model), config.lora, config.lora_scale, pipe.unet.config)
    return load_or_export(pipe.unet, _onnx_cache_root(config), key, threads=torch.get_num_threads(), preparing=_PREPARING.get())


def _onnx_cache_root(config: DiffusionConfig) -> Path:
    """Where ONNX exports are kept: the models directory, else ``$XDG_CACHE_HOME/voice2anime``."""
    import os

    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "voice2anime"


def _fast_paths(pipe: StableDiffusionPipeline, device: torch.device, *, compile: bool) -> list[str]:
    """Scaled-dot-product attention everywhere; on CUDA channels_last; optionally ``torch.compile`` (UNet). Returns what is on.

    SDPA (flash / memory-efficient kernels) is diffusers' default on torch 2; it
    is set explicitly in case a LoRA or an older config left another processor.
    ``torch.compile`` compiles once per input shape (batch size, CFG on/off,
    size): the first picture at each batch size takes tens of seconds longer.
    """
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    for module in (pipe.unet, pipe.vae):
        processors = getattr(module, "attn_processors", {})  # the tiny decoder has no attention
        if any(not isinstance(p, AttnProcessor2_0) for p in processors.values()):
            module.set_attn_processor(AttnProcessor2_0())
    paths = ["sdpa"]
    if not hasattr(pipe.vae, "attn_processors"):
        paths.append("tiny decoder")
    if device.type == "cuda":
        paths.insert(0, "fp16")
        # Convolutions in NHWC use the tensor cores without layout transposes.
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        paths.append("channels_last")
    if compile:
        # One compiled graph per shape (no dynamic shapes): batch sizes are few and each gets its own fast graph.
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in torch 2.6
        setattr(config, name, max(getattr(config, name), 32))
        pipe.unet.compile(mode="reduce-overhead" if device.type == "cuda" else "default", dynamic=False)
        paths.append("torch.compile")
    return paths


def _apply_lora(pipe: StableDiffusionPipeline, config: DiffusionConfig) -> None:
    """Load the configured LoRA, fuse it at ``lora_scale`` and drop the adapter layers."""
    lora = str(config.lora)
    try:
        path = Path(lora).expanduser()
        if path.is_file():
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=_ADAPTER)
        elif path.is_dir():
            pipe.load_lora_weights(str(path), adapter_name=_ADAPTER)
        elif hub_file := _HUB_FILE.match(lora):
            # One file of a repository that holds many (Hyper-SD: SD 1.5 and SDXL LoRAs of every step count).
            from huggingface_hub import hf_hub_download

            local = Path(
                hf_hub_download(
                    hub_file[1], hub_file[2], cache_dir=None if config.cache_dir is None else str(config.cache_dir)
                )
            )
            pipe.load_lora_weights(str(local.parent), weight_name=local.name, adapter_name=_ADAPTER)
        elif _looks_like_path(lora) or not HUB_ID.match(lora):
            raise FileNotFoundError(f"no such file or directory: {lora}")
        else:
            # Resolve the repo to local files first: diffusers cannot guess the weight
            # file of a hub LoRA in offline mode, even when it is cached.
            from huggingface_hub import snapshot_download

            local_dir = snapshot_download(
                lora,
                allow_patterns=["*.safetensors", "*.json"],
                cache_dir=None if config.cache_dir is None else str(config.cache_dir),
            )
            pipe.load_lora_weights(local_dir, adapter_name=_ADAPTER)
        # Fusing bakes the LoRA into the weights: no per-step cost afterwards.
        pipe.fuse_lora(lora_scale=config.lora_scale, adapter_names=[_ADAPTER])
        pipe.unload_lora_weights()
    except _load_errors() + (RuntimeError, KeyError) as exc:
        raise DrawingModelUnavailableError(_lora_message(lora, str(config.model), exc)) from exc


def _load_tiny_vae(config: DiffusionConfig, dtype: torch.dtype) -> Any:
    """The tiny decoder of ``config`` in ``dtype``; a failure is a :class:`DrawingModelUnavailableError` saying what to do."""
    from engine.image.tiny_vae import load_tiny_vae

    load_kwargs: dict[str, Any] = {_dtype_kwarg(): dtype}
    if config.cache_dir is not None:
        load_kwargs["cache_dir"] = str(config.cache_dir)
    source = str(config.tiny_vae)
    try:
        return load_tiny_vae(source, load_kwargs=load_kwargs)
    except _load_errors() as exc:
        raise DrawingModelUnavailableError(_tiny_vae_message(source, exc)) from exc


def _load_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:
        from huggingface_hub.errors import EntryNotFoundError

        errors.append(EntryNotFoundError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


# --------------------------------------------------------------------------- messages


def _is_single_file(model: str) -> bool:
    return model.lower().endswith(SINGLE_FILE_SUFFIXES)


def _looks_like_path(model: str) -> bool:
    """True when ``model`` can only be a filesystem path (not a hub ``org/name`` id)."""
    return (
        model.startswith(("/", ".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or (len(model) > 1 and model[1] == ":")
        or _is_single_file(model)
    )


def _display(model: str) -> str:
    return scrub_secrets(model)


def _download_hint(model: str, *, setting: str = "SD_MODEL") -> str:
    """How to get ``model`` onto an offline machine (hub id when we know it, a placeholder otherwise)."""
    if _looks_like_path(model) and not HUB_ID.match(model):
        local = _display(model)
        return (
            f"on a machine with internet access run `hf download <hub-id> --local-dir {local}` "
            f"(older huggingface_hub: `huggingface-cli download`) and copy the directory to {local}"
        )
    name = re.sub(r"[^\w.-]+", "-", model.rstrip("/").split("/")[-1]) or "model"
    return (
        f"on a machine with internet access run `hf download {_display(model)} --local-dir models/{name}` "
        f"(older huggingface_hub: `huggingface-cli download`), copy models/{name} here and set {setting}=models/{name}"
    )


def _model_message(model: str, exc: BaseException) -> str:
    shown = _display(model)
    local = Path(model).expanduser()
    if _is_single_file(model):
        if not local.is_file():
            what = f"the checkpoint file {shown} does not exist"
            todo = "check SD_MODEL points at an existing .safetensors/.ckpt file"
        else:
            what = (
                f"the single-file checkpoint {shown} could not be turned into a pipeline "
                "(it is damaged, not a Stable Diffusion 1.x/2.x checkpoint, or its component configs "
                "are not in the Hugging Face cache and the hub is unreachable)"
            )
            todo = "use a diffusers-format directory instead, or run once with internet access so the configs are cached"
    elif local.is_dir():
        if not (local / "model_index.json").is_file():
            what = f"the directory {shown} is not a diffusers model (no model_index.json)"
        else:
            what = f"the diffusers directory {shown} is incomplete or damaged (a component's config or weights are missing or unreadable)"
        todo = f"download the whole model again: {_download_hint(model)}"
    elif _looks_like_path(model):
        what = f"the local model directory {shown} does not exist"
        todo = f"check SD_MODEL, or {_download_hint(model)}"
    else:
        what = (
            f"{shown} is neither an existing local directory (relative to {Path.cwd()}) nor a model the "
            "Hugging Face hub could provide (offline / HF_HUB_OFFLINE set and not in the cache, "
            "private or gated, or no such repository)"
        )
        todo = _download_hint(model)
    return f"Stable Diffusion model {shown!r} could not be loaded: {what}. To fix: {todo}. Cause: {library_reason(exc)}"


def _lora_message(lora: str, model: str, exc: BaseException) -> str:
    shown = _display(lora)
    path = Path(lora).expanduser()
    if path.exists():
        what = f"{shown} exists but is not a LoRA that fits {_display(model)} (wrong format, damaged, or made for another base model)"
        todo = "use a diffusers/kohya LoRA trained for this SD 1.5-class model, or unset SD_LORA"
    elif hub_file := _HUB_FILE.match(lora):
        what = f"{shown} is not a local file and could not be fetched from the Hugging Face hub (offline or not cached?)"
        todo = (
            f"on a machine with internet access run `hf download {_display(hub_file[1])} {hub_file[2]} --local-dir models/lora`, "
            f"copy models/lora/{hub_file[2]} here and set SD_LORA=models/lora/{hub_file[2]}; or unset SD_LORA"
        )
    elif _looks_like_path(lora) or not HUB_ID.match(lora):
        what = f"the LoRA file/directory {shown} does not exist"
        todo = "check SD_LORA, or unset it"
    else:
        what = f"{shown} is not a local path and could not be fetched from the Hugging Face hub (offline or not cached?)"
        todo = f"{_download_hint(lora, setting='SD_LORA')}; or unset SD_LORA"
    return f"LoRA {shown!r} could not be loaded: {what}. To fix: {todo}. Cause: {library_reason(exc)}"


def _tiny_vae_message(source: str, exc: BaseException) -> str:
    shown = _display(source)
    local = Path(source).expanduser()
    if local.is_dir():
        what = f"the directory {shown} is not a complete AutoencoderTiny (config.json, diffusion_pytorch_model.safetensors)"
        todo = f"download it again: {_download_hint(source, setting='SD_TINY_VAE')}"
    elif _looks_like_path(source) or not HUB_ID.match(source):
        what = f"the local directory {shown} does not exist"
        todo = f"check SD_TINY_VAE, or {_download_hint(TINY_VAE, setting='SD_TINY_VAE')}"
    else:
        what = f"{shown} is not a local directory and could not be fetched from the Hugging Face hub (offline or not cached?)"
        todo = _download_hint(source, setting="SD_TINY_VAE")
    return (
        f"Tiny decoder {shown!r} (TAESD, which turns the drawing into pixels on the CPU) could not be loaded: {what}. "
        f"To fix: {todo}; or set SD_VAE=full to decode with the model's own VAE (slower on a CPU). Cause: {library_reason(exc)}"
    )


# --------------------------------------------------------------------------- previews


def _fitted(width: int, height: int, side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled so the longest side is ``side``."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def preview_jpeg(image: Image, side: int) -> bytes:
    """``image`` scaled to ``side`` pixels on its longest side (up or down) as a small RGB JPEG."""
    import io

    from PIL import Image as PILImage

    size = _fitted(*image.size, side)
    if size != image.size:
        image = image.resize(size, PILImage.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def latent_preview(latents: torch.Tensor, width: int, height: int, index: int = 0) -> bytes:
    """A JPEG preview of image ``index`` of ``latents`` (model space, 4 channels) for a ``width`` x ``height`` picture.

    Each latent pixel becomes one RGB pixel through :data:`SD15_LATENT_RGB`
    (a 4x3 matrix product: no VAE, microseconds), then the thumbnail is
    scaled to :data:`PREVIEW_SIDE` on its longest side (never past the picture's own size).
    """
    import torch
    from PIL import Image as PILImage

    sample = latents[index].detach()
    factors = torch.tensor(SD15_LATENT_RGB, dtype=torch.float32, device=sample.device)
    rgb = torch.einsum("chw,cr->hwr", sample.float(), factors)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    thumbnail = PILImage.fromarray(pixels, "RGB").resize(
        _fitted(width, height, min(PREVIEW_SIDE, max(width, height))), PILImage.Resampling.BILINEAR
    )
    return preview_jpeg(thumbnail, max(thumbnail.size))


def _denoised(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """What the picture is becoming: the scheduler's prediction of the clean latents when it keeps one.

    DPM-Solver++ (``dpmpp``) stores its x0 prediction of the step just taken
    (``model_outputs[-1]``); early steps of the noisy ``latents`` themselves
    would show mostly noise. Other schedulers keep none: their current latents are used.
    """
    scheduler = pipe.scheduler
    if getattr(scheduler.config, "algorithm_type", None) in ("dpmsolver++", "sde-dpmsolver++"):
        outputs = getattr(scheduler, "model_outputs", None) or [None]
        predicted = outputs[-1]
        if predicted is not None and tuple(predicted.shape) == tuple(latents.shape):
            return predicted
    return latents


def _preview_steps(total: int) -> int:
    """Make a preview after every this many steps."""
    return max(1, -(-total // PREVIEWS_PER_RUN))


# --------------------------------------------------------------------------- generation


def _make_scheduler(name: str, base_config: Any) -> Any:
    from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, LCMScheduler

    if name == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(
            base_config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
        )
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(base_config)
    if name == "lcm":
        return LCMScheduler.from_config(base_config)
    if name == "turbo":
        return EulerAncestralDiscreteScheduler.from_config(base_config, timestep_spacing="trailing")
    if name == "hyper":
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(base_config, timestep_spacing="trailing")
    raise ValueError(f"unknown scheduler {name!r}")  # pragma: no cover - DiffusionConfig validates


class TextToImage:
    """Stable Diffusion text-to-image for one :class:`DiffusionConfig`.

    Nothing is loaded until the first :meth:`generate` (or :meth:`load`). The
    weights are loaded once per process and shared between instances with the
    same model, LoRA, device and cache dir; concurrent ``generate`` calls on
    the same weights run one after another. Call from a worker thread, never
    from the event loop.

    The safety checker is not loaded: the operator is responsible for what the
    deployment generates.
    """

    def __init__(self, config: DiffusionConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._pipe: StableDiffusionPipeline | None = None
        self._shared: _Loaded | None = None

    def load(self) -> StableDiffusionPipeline:
        """Load the weights now (e.g. when a worker starts); returns the pipeline.

        Raises :class:`ModelUnavailableError` when the model or LoRA cannot be loaded.
        """
        with self._lock:
            if self._pipe is None:
                shared = _shared_pipeline(self.config)
                from diffusers import StableDiffusionPipeline

                components = dict(shared.pipe.components)
                components["scheduler"] = _make_scheduler(self.config.scheduler, shared.pipe.scheduler.config)
                # Same modules (no copy), own scheduler and own interrupt flag.
                pipe = StableDiffusionPipeline(**components, requires_safety_checker=False)
                pipe.set_progress_bar_config(disable=True)
                self._shared, self._pipe = shared, pipe
            return self._pipe

    @property
    def run_lock(self) -> threading.Lock:
        """Held while these weights denoise (one run at a time per model copy); loads the model first."""
        self.pipeline  # noqa: B018  # loads (once)
        assert self._shared is not None
        return self._shared.run_lock

    @property
    def pipeline(self) -> StableDiffusionPipeline:
        """The diffusers pipeline (loaded on first access; the same object afterwards)."""
        return self._pipe if self._pipe is not None else self.load()

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        negative: str = "",
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        preview: PreviewCallback | None = None,
    ) -> list[GeneratedImage]:
        """Generate one image per prompt.

        Image ``i`` uses seed ``seed + i``; ``seed=None`` picks a random one
        (reported on each result). ``steps``/``guidance``/``width``/``height``
        override the config for this call. ``progress("diffusion", f)`` is
        called after every denoising step with ``f`` rising to 1.0.
        ``cancelled()`` is polled after every step; when it returns True the
        run stops and :class:`Cancelled` is raised.

        With ``preview``, ``preview("diffusion", jpeg)`` follows the progress
        call of every ``ceil(steps / PREVIEWS_PER_RUN)``-th step but the last:
        a :func:`latent_preview` of the first image (what the scheduler predicts
        it becomes, where it says). A preview that fails is logged and skipped;
        it never fails the run.

        With guidance <= 1 classifier-free guidance is off and ``negative`` has
        no effect (LCM / turbo defaults).

        Several prompts with their own negative prompts, seeds and callbacks:
        :meth:`generate_each`.
        """
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompt_list or not all(isinstance(p, str) for p in prompt_list):
            raise ValueError("prompts must be a string or a non-empty sequence of strings")
        n = len(prompt_list)
        if seed is None:
            seed = secrets.randbelow(2**32)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0 or seed + n > _SEED_LIMIT:
            raise ValueError(f"seed must be an integer in [0, 2**64 - {n}], got {seed!r}")
        # One run: the callbacks ride on the first picture; every picture stops when the run is cancelled.
        requests = [
            DrawRequest(
                prompt,
                negative,
                seed + i,
                progress=progress if i == 0 else None,
                cancelled=cancelled,
                preview=preview if i == 0 else None,
            )
            for i, prompt in enumerate(prompt_list)
        ]
        outcomes = self.generate_each(requests, steps=steps, guidance=guidance, width=width, height=height)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise next((f for f in failures if not isinstance(f, Cancelled)), failures[0])
        return outcomes  # type: ignore[return-value]  # no failures: all images

    def generate_each(
        self,
        requests: Sequence[DrawRequest],
        *,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> list[GeneratedImage | Exception]:
        """Draw every request in one diffusers call; returns, in order, each one's picture or what stopped it.

        Each request has its own prompt, negative prompt and seed (``None``: a
        random one, reported on its result): its picture is the one
        :meth:`generate` draws for that prompt, negative prompt and seed alone,
        up to floating-point rounding. Steps, guidance and size are shared.

        Each request's ``progress`` gets ``("diffusion", f)`` after every step,
        its ``preview`` a JPEG of its own picture forming (as in :meth:`generate`),
        and its ``cancelled`` is polled after every step. A request cancelled
        before the run does not take part; one cancelled during it ends as
        :class:`Cancelled` at once (no more callbacks) while the others go on:
        its rows are still computed (dropping them would upset multistep
        schedulers' history) but it is not decoded. When every request is
        over the run stops. A request whose callback raises ends with that
        exception; the others go on. When the diffusers call itself fails with
        several requests, each is drawn again on its own, so a failure that
        belongs to one request (e.g. out of memory at this batch size) stays
        with the requests it happens to alone.

        Raises ``ValueError`` for bad arguments and
        :class:`ModelUnavailableError` when the model cannot be loaded.
        """
        requests = list(requests)
        if not requests or not all(isinstance(r, DrawRequest) and isinstance(r.prompt, str) for r in requests):
            raise ValueError("requests must be a non-empty sequence of DrawRequest")
        cfg = self.config
        steps = cfg.resolved_steps if steps is None else steps
        guidance = cfg.resolved_guidance if guidance is None else guidance
        width = cfg.width if width is None else width
        height = cfg.height if height is None else height
        _check_steps(steps)
        _check_guidance(guidance)
        _check_size(width, height)
        members = []
        for row, request in enumerate(requests):
            seed = secrets.randbelow(2**32) if request.seed is None else request.seed
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < _SEED_LIMIT:
                raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {seed!r}")
            members.append(_Member(row, request, seed))

        if _poll_cancelled(members):
            if self._pipe is None:  # the first picture waits for the model to load (and maybe download): say so
                _tell(members, LOADING)
            told = _PREPARING.set(lambda: _tell(members, PREPARING))  # and when it is converted for this CPU first
            try:
                pipe = self.pipeline  # loads (once); raises ModelUnavailableError
            finally:
                _PREPARING.reset(told)
            assert self._shared is not None
            with self._shared.run_lock:
                live = _poll_cancelled(members)
                if live:
                    self._draw_live(pipe, live, steps, guidance, width, height)
        return [
            member.outcome
            if member.outcome is not None
            else GeneratedImage(
                image=cast("Image", member.image),  # drawn: every member without an outcome has its picture
                prompt=member.request.prompt,
                negative=member.request.negative,
                seed=member.seed,
                model=cfg.model,
                scheduler=cfg.scheduler,
                steps=steps,
                guidance=float(guidance),
                width=width,
                height=height,
                seconds=member.seconds,
            )
            for member in members
        ]

    def _draw_live(self, pipe: Any, live: list[_Member], steps: int, guidance: float, width: int, height: int) -> None:
        """Run ``live`` as one batch (holding the run lock); when the call fails with several, each alone."""
        try:
            self._run(pipe, live, steps, guidance, width, height)
        except Exception as error:  # attributed below
            if len(live) == 1:
                live[0].outcome = error
                return
            log.warning(
                "a batch of %d pictures failed (%s: %s); drawing each on its own", len(live), type(error).__name__, error
            )
            _free_cuda_cache()
            for member in live:
                if not isinstance(member.outcome, Cancelled):
                    member.outcome = None  # a callback that failed inside the failed batch gets another chance
                if _poll_cancelled([member]):
                    try:
                        self._run(pipe, [member], steps, guidance, width, height)
                    except Exception as alone:  # this request's own failure
                        member.outcome = alone

    def _run(self, pipe: Any, live: list[_Member], steps: int, guidance: float, width: int, height: int) -> None:
        """One diffusers call for ``live`` (row ``i`` is ``live[i]``); sets each member's image or outcome."""
        import torch

        generators = [torch.Generator("cpu").manual_seed(member.seed) for member in live]

        def on_step_end(p: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            total = getattr(p, "_num_timesteps", None) or steps
            fraction = min(1.0, (i + 1) / total)
            previewing = (i + 1) % _preview_steps(total) == 0 and i + 1 < total
            latents = callback_kwargs.get("latents")
            for row, member in enumerate(live):
                if member.outcome is not None:
                    continue
                request = member.request
                try:
                    if request.progress is not None:
                        request.progress("diffusion", fraction)
                    if request.preview is not None and previewing:
                        self._preview(p, latents, row, width, height, request.preview)
                    if request.cancelled is not None and request.cancelled():
                        member.outcome = Cancelled()
                except Exception as error:  # this request's callback: it alone fails
                    log.warning("a callback of picture %d of %d failed: %r", row + 1, len(live), error)
                    member.outcome = error
            if all(member.outcome is not None for member in live):
                p._interrupt = True  # the denoising loop skips the remaining steps
            return callback_kwargs

        vae = pipe.vae
        if self.config.vae_tiling_above and max(width, height) > self.config.vae_tiling_above:
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        started = time.perf_counter()
        out = pipe(
            prompt=[member.request.prompt for member in live],
            negative_prompt=[member.request.negative for member in live],
            num_inference_steps=steps,
            guidance_scale=guidance,
            width=width,
            height=height,
            generator=generators,
            output_type="latent",  # decoded below, only the pictures still wanted
            callback_on_step_end=on_step_end,
        )
        latents = out.images
        for row, member in enumerate(live):
            if member.outcome is None:
                try:
                    if member.request.cancelled is not None and member.request.cancelled():
                        member.outcome = Cancelled()
                        continue
                except Exception as error:
                    member.outcome = error
                    continue
                member.image = _decode(pipe, latents[row : row + 1])
        seconds = time.perf_counter() - started
        for member in live:
            member.seconds = seconds

    def _preview(self, pipe: Any, latents: Any, row: int, width: int, height: int, preview: PreviewCallback) -> None:
        """Hand ``preview`` a JPEG of picture ``row`` forming; making it may fail (logged, skipped), ``preview`` may raise."""
        if latents is None:
            return
        try:
            image = latent_preview(_denoised(pipe, latents), width, height, row)
        except Exception:  # a preview is a nicety: the drawing goes on without it
            log.warning("could not make a preview of %s", _display(str(self.config.model)), exc_info=True)
            return
        preview("diffusion", image)


@dataclass(frozen=True)
class DrawRequest:
    """One picture of :meth:`TextToImage.generate_each`: what to draw and where its progress, previews and cancel go.

    ``seed`` ``None`` means a random one (reported on the result).
    """

    prompt: str
    negative: str = ""
    seed: int | None = None
    progress: ProgressCallback | None = field(default=None, compare=False)
    cancelled: CancelCheck | None = field(default=None, compare=False)
    preview: PreviewCallback | None = field(default=None, compare=False)


class _Member:
    """A request's state during :meth:`TextToImage.generate_each`: its picture, or what ended it."""

    def __init__(self, row: int, request: DrawRequest, seed: int) -> None:
        self.row = row
        self.request = request
        self.seed = seed
        self.outcome: Exception | None = None
        self.image: Image | None = None
        self.seconds = 0.0


def _tell(members: list[_Member], stage: str) -> None:
    """Report ``stage`` (:data:`LOADING`, :data:`PREPARING`) with no progress to every member that listens."""
    for member in members:
        if member.request.progress is not None:
            member.request.progress(stage, 0.0)


def _poll_cancelled(members: list[_Member]) -> list[_Member]:
    """Mark the members that are cancelled (or whose check fails) as over; the ones still live."""
    for member in members:
        check = member.request.cancelled
        if member.outcome is None and check is not None:
            try:
                if check():
                    member.outcome = Cancelled()
            except Exception as error:  # this request's callback: it alone fails
                member.outcome = error
    return [member for member in members if member.outcome is None]


def _decode(pipe: Any, latents: torch.Tensor) -> Image:
    """The picture of one row of model-space latents: what diffusers' pipeline does after its loop, for one image."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil", do_denormalize=[True])[0]


def _free_cuda_cache() -> None:
    """Give memory a failed (e.g. out-of-memory) batch held back to CUDA before the pictures are drawn alone."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
