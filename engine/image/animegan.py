"""AnimeGANv2 style transfer: photo or generated image -> anime image.

:class:`AnimeGAN` is the one entry point. It reads the style registry of the
checkpoints directory (:mod:`engine.image.styles`), makes sure the checkpoint is
present and verified (downloading it on first use when allowed), loads the
generator strictly (:mod:`engine.image.animegan_model`) and runs it on any image
(:mod:`engine.image.imageio`).

Backends for ``torch-state-dict`` styles (the ``.pt`` files):

* ``torch`` — eager PyTorch; channels_last memory format; fp16 on CUDA, fp32
  on CPU (half precision is ~190x slower on AVX2 CPUs, never used there).
* ``onnx`` — ONNX Runtime; the graph is exported once from the loaded weights
  (dynamic height/width) and cached as ``<file stem>.<sha256[:12]>.onnx`` next
  to the checkpoint, so a changed checkpoint is re-exported. Session options:
  :func:`onnx_session_options` (why each is set: ``docs/decisions/animegan-onnx-*.md``).
* ``auto`` — ``onnx`` on CPU when onnxruntime is importable, else ``torch``.

``onnx-nhwc`` styles (the AnimeGANv2 authors' TensorFlow generators exported
to ONNX, e.g. Hayao and Shinkai) always run on ONNX Runtime, whatever the
backend setting: CPU with ``threads`` intra-op threads, CUDA when the device is
CUDA and onnxruntime has the CUDA provider. Their pre/post-processing is their
own (:class:`_NhwcOnnxRunner`): RGB in ``[-1, 1]``, ``1 x H x W x 3``, sides
mirror-padded to multiples of 32 and the result cropped back, so no pixel is
resampled (the authors' reference resizes to multiples of 32 instead).

Models and sessions are loaded once per style and kept for the process.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from engine.api import CancelCheck, ProgressCallback
from engine.errors import Cancelled, ModelUnavailableError, StyleUnavailableError, UnknownStyleError
from engine.files import atomic_write
from engine.image import animegan_model as gen
from engine.image.device import dtype_for, resolve_device
from engine.image.imageio import ImageSource, crop, fit_within, open_image, pad_for_network, resize
from engine.image.styles import ONNX_NHWC, CheckpointStore, Style, StyleRegistry

__all__ = ["BACKENDS", "AnimeGAN", "Style", "UnknownStyleError", "onnx_session_options", "open_image"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
#: Sides of ``onnx-nhwc`` inputs are multiples of this (the authors' reference code uses 32).
NHWC_SIZE_MULTIPLE = 32
#: Progress stage name reported to :data:`engine.api.ProgressCallback`.
STAGE = "style"
_META_SHA = "voice2anime.checkpoint_sha256"
_META_GRAPH = "voice2anime.graph_version"


def onnxruntime_available() -> bool:
    """Whether ``import onnxruntime`` would succeed."""
    return importlib.util.find_spec("onnxruntime") is not None


#: ONNX Runtime session config key: whether idle intra-op pool threads busy-wait for work.
ORT_ALLOW_SPINNING = "session.intra_op.allow_spinning"


def onnx_session_options(threads: int = 0):
    """ONNX Runtime options used for the generator (both formats): all graph optimisations, ``threads`` intra-op threads.

    Pool threads do not spin and the CPU memory arena is off. Why each is set,
    with the measurements: ``docs/decisions/animegan-onnx-*.md``.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry(ORT_ALLOW_SPINNING, "0")
    return options


def onnx_providers(device: torch.device) -> list[str]:
    """ONNX Runtime execution providers for ``device``: CUDA first when asked for and available, always CPU."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return providers


class _Runner(Protocol):
    backend: str
    #: The runner takes sides that are multiples of ``multiple`` and at least ``minimum``.
    multiple: int
    minimum: int

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """``H x W x 3`` uint8 RGB (sides as above) -> same-shape uint8 anime RGB."""


class _TorchRunner:
    backend = "torch"
    multiple = gen.SIZE_MULTIPLE
    minimum = gen.MIN_SIDE

    def __init__(self, model: gen.Generator, device: torch.device) -> None:
        self.device = device
        self.dtype = dtype_for(device)
        # Module.to's overloads omit memory_format, which it takes at run time (documented as to(memory_format=...)).
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # HWC -> 1CHW view is already channels_last in memory: no copy before the first conv
            x = torch.from_numpy(pixels).to(self.device).permute(2, 0, 1).unsqueeze(0)
            x = x.to(self.dtype).div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
            y = self.model(x)[0].permute(1, 2, 0).float()
            y = y.add_(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            return y.cpu().numpy()


class _OnnxRunner:
    """Our own NCHW export of a torch-state-dict checkpoint."""

    backend = "onnx"
    multiple = gen.SIZE_MULTIPLE
    minimum = gen.MIN_SIDE

    def __init__(self, session) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = pixels.astype(np.float32).transpose(2, 0, 1)[None]
        x = np.ascontiguousarray(x / np.float32(127.5) - np.float32(1.0))
        (y,) = self.session.run(None, {self.input_name: x})
        y = (y[0].transpose(1, 2, 0) + 1.0) * 127.5
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)


class _NhwcOnnxRunner:
    """An ``onnx-nhwc`` style: the AnimeGANv2 authors' TF generator exported with tf2onnx.

    Input ``1 x H x W x 3`` float32 RGB in ``[-1, 1]`` (``pixel / 127.5 - 1``,
    as the authors' ``test_by_onnx.py``), sides multiples of 32; output the
    same shape in ``[-1, 1]``, mapped back with ``(y + 1) * 127.5``.
    """

    backend = "onnx"
    multiple = NHWC_SIZE_MULTIPLE
    minimum = NHWC_SIZE_MULTIPLE

    def __init__(self, session, source: str) -> None:
        self.session = session
        self.source = source
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        height, width = pixels.shape[:2]
        x = pixels.astype(np.float32)[None]  # 1 x H x W x 3: already NHWC, RGB
        x /= np.float32(127.5)
        x -= np.float32(1.0)
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        if y.shape != (1, height, width, 3):
            raise StyleUnavailableError(
                f"{self.source} returned an output of shape {tuple(y.shape)} for an input of shape {x.shape}; "
                f"an {ONNX_NHWC} style must return 1 x H x W x 3"
            )
        y = (y[0] + np.float32(1.0)) * np.float32(127.5)
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def read_nhwc_session(path: Path, *, threads: int = 0, providers: list[str] | None = None):
    """An ONNX Runtime session for an ``onnx-nhwc`` style file, after checking its signature.

    Raises :class:`ModelUnavailableError` when the file is not a loadable ONNX
    model or does not look like ``1 x H x W x 3`` float in, ``1 x H x W x 3`` out
    with dynamic height and width (e.g. an NCHW export, or a fixed input size).
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), onnx_session_options(threads), providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for any unreadable model
        raise StyleUnavailableError(f"{path} is not a loadable ONNX model ({_first_line(exc)})") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    problem = None
    if len(inputs) != 1 or len(outputs) < 1:
        problem = f"{len(inputs)} inputs and {len(outputs)} outputs (expected 1 input, 1 output)"
    elif inputs[0].type != "tensor(float)":
        problem = f"input {inputs[0].name!r} is {inputs[0].type}, not float32"
    elif len(inputs[0].shape) != 4 or inputs[0].shape[3] != 3:
        problem = f"input {inputs[0].name!r} has shape {inputs[0].shape}, not N x H x W x 3 (NHWC)"
    elif isinstance(inputs[0].shape[1], int) and isinstance(inputs[0].shape[2], int):
        size = f"{inputs[0].shape[1]}x{inputs[0].shape[2]}"
        problem = f"input {inputs[0].name!r} has a fixed size {size}; height and width must be dynamic"
    elif len(outputs[0].shape or ()) != 4:
        problem = f"output {outputs[0].name!r} has shape {outputs[0].shape}, not N x H x W x 3"
    if problem:
        raise StyleUnavailableError(f"{path} is not an AnimeGANv2 {ONNX_NHWC} model: {problem}")
    return session


@dataclass(frozen=True)
class _Loaded:
    style: Style
    path: Path
    sha256: str
    runner: _Runner


class AnimeGAN:
    """AnimeGANv2 generators for every registered style, loaded on first use.

    ``checkpoints_dir`` holds ``styles.json`` and the weights. ``device`` is
    ``auto``/``cpu``/``cuda[:N]``; ``backend`` one of :data:`BACKENDS`;
    ``max_side`` bounds the longest side fed to the network (larger images are
    scaled down, and the result scaled back up to the input size);
    ``download`` allows fetching missing official weights; ``threads`` is
    ONNX Runtime's intra-op thread count (0 = its default; torch threads are
    process-wide and set by the caller).
    """

    def __init__(
        self,
        checkpoints_dir: Path | str,
        *,
        device: str = "auto",
        backend: str = "auto",
        max_side: int = 1024,
        download: bool = True,
        threads: int = 0,
        registry: StyleRegistry | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown AnimeGANv2 backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if max_side < gen.MIN_SIDE:
            raise ValueError(f"max_side must be at least {gen.MIN_SIDE}")
        if threads < 0:
            raise ValueError("threads must be >= 0")
        self.checkpoints_dir = Path(checkpoints_dir)
        self.device = resolve_device(device)
        self.max_side = max_side
        self.threads = threads
        self.registry = registry or StyleRegistry.for_directory(self.checkpoints_dir)
        self.store = CheckpointStore(self.checkpoints_dir, download=download)
        self._requested_backend = backend
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and onnxruntime_available() else "torch"
        elif backend == "onnx" and not onnxruntime_available():
            raise StyleUnavailableError("AnimeGANv2 backend 'onnx' needs the onnxruntime package (pip install onnxruntime)")
        self.backend = backend
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    # ----- styles -------------------------------------------------------------------------

    @property
    def styles(self) -> list[Style]:
        """Every registered style (whether or not its weights are present yet)."""
        return self.registry.styles

    def style(self, name: str) -> Style:
        """The style called ``name`` or one of its aliases; :class:`UnknownStyleError` otherwise."""
        return self.registry.get(name)

    def is_available(self, name: str) -> bool:
        """Whether the style's checkpoint file is already on disk (no download needed)."""
        return self.store.path(self.style(name)).is_file()

    # ----- running ------------------------------------------------------------------------

    def load(self, name: str) -> Style:
        """Make sure ``name`` is loaded (download, verify, build the backend); returns the style."""
        return self._get(name).style

    def backend_of(self, name: str) -> str:
        """The backend actually used for a style (``torch`` or ``onnx``); loads it."""
        return self._get(name).runner.backend

    def stylize(
        self,
        image: ImageSource,
        style: str,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> Image.Image:
        """``image`` restyled with ``style``, as an RGB image of the same (upright) size.

        Accepts a PIL image, encoded bytes or a path. Raises
        :class:`~engine.errors.ImageError` for unreadable images,
        :class:`UnknownStyleError` for unknown styles,
        :class:`~engine.errors.ModelUnavailableError` when the weights cannot be
        had, and :class:`~engine.errors.Cancelled` when ``cancelled()`` turns true.
        """
        self.style(style)  # unknown style: fail before decoding anything
        _check(cancelled)
        _report(progress, 0.0)
        picture = open_image(image)
        loaded = self._get(style)
        _check(cancelled)
        _report(progress, 0.1)
        original = picture.size
        work = resize(picture, fit_within(original, self.max_side))
        pixels = np.array(work, dtype=np.uint8)  # writable copy (torch.from_numpy wants one)
        height, width = pixels.shape[:2]
        padded = pad_for_network(pixels, loaded.runner.multiple, loaded.runner.minimum)
        out = crop(loaded.runner(np.ascontiguousarray(padded)), height, width)
        _check(cancelled)
        result = resize(Image.fromarray(np.ascontiguousarray(out), "RGB"), original)
        _report(progress, 1.0)
        return result

    # ----- loading ------------------------------------------------------------------------

    def _get(self, name: str) -> _Loaded:
        style = self.style(name)
        loaded = self._loaded.get(style.name)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._loaded.get(style.name)
            if loaded is None:
                loaded = self._load(style)
                self._loaded[style.name] = loaded
            return loaded

    def _load(self, style: Style) -> _Loaded:
        if style.format == ONNX_NHWC:
            return self._load_nhwc(style)
        # The checkpoint is read and built at most once: by the validation of a new file (which
        # then is the file in place: same bytes), else when a backend first needs the network.
        built: list[gen.Generator] = []

        def validate(path: Path) -> None:
            built.append(_read_model(path))

        def model() -> gen.Generator:
            if not built:
                built.append(_read_model(path))
            return built[-1]

        path, sha = self.store.ensure(style, validate=validate)
        runner: _Runner | None = None
        if self.backend == "onnx":
            try:
                runner = self._onnx_runner(style, sha, model)
            except Exception as exc:
                if self._explicit_onnx:
                    raise StyleUnavailableError(f"AnimeGANv2 style {style.name!r}: ONNX backend failed: {exc}") from exc
                log.warning("AnimeGANv2 style %r: ONNX backend failed (%s); using torch", style.name, exc)
        if runner is None:
            runner = _TorchRunner(model(), self.device)
        log.info("AnimeGANv2 style %r loaded from %s (%s, %s)", style.name, path, runner.backend, self.device)
        return _Loaded(style, path, sha, runner)

    def _load_nhwc(self, style: Style) -> _Loaded:
        """An ``onnx-nhwc`` style: verified file -> ONNX Runtime session (built once, also when validating)."""
        if not onnxruntime_available():
            raise StyleUnavailableError(
                f"AnimeGANv2 style {style.name!r} is an ONNX model and needs the onnxruntime package (pip install onnxruntime)"
            )
        providers = onnx_providers(self.device)
        sessions: list = []

        def validate(path: Path) -> None:
            sessions.append(read_nhwc_session(path, threads=self.threads, providers=providers))

        path, sha = self.store.ensure(style, validate=validate)
        if not sessions:
            try:
                sessions.append(read_nhwc_session(path, threads=self.threads, providers=providers))
            except ModelUnavailableError as exc:
                raise StyleUnavailableError(f"AnimeGANv2 style {style.name!r}: {exc}") from exc
        runner = _NhwcOnnxRunner(sessions[-1], str(path))
        log.info("AnimeGANv2 style %r loaded from %s (onnx-nhwc, %s)", style.name, path, ", ".join(sessions[-1].get_providers()))
        return _Loaded(style, path, sha, runner)

    @property
    def _explicit_onnx(self) -> bool:
        return self._requested_backend == "onnx"

    def onnx_path(self, style: Style, sha256: str) -> Path:
        """Where the ONNX export of a checkpoint with ``sha256`` is cached."""
        return self.checkpoints_dir / f"{Path(style.file).stem}.{sha256[:12]}.onnx"

    def _onnx_runner(self, style: Style, sha: str, model: Callable[[], gen.Generator]) -> _OnnxRunner:
        """A session from the cached export of checkpoint ``sha``, else from exporting ``model()`` (built only then)."""
        import onnxruntime as ort

        options = onnx_session_options(self.threads)
        providers = onnx_providers(self.device)

        cached = self.onnx_path(style, sha)
        if cached.is_file():
            try:
                session = ort.InferenceSession(str(cached), options, providers=providers)
                meta = session.get_modelmeta().custom_metadata_map
                if meta.get(_META_SHA) == sha and meta.get(_META_GRAPH) == gen.GRAPH_VERSION:
                    return _OnnxRunner(session)
                log.info("ONNX cache %s is from another checkpoint/graph version; re-exporting", cached)
            except Exception as exc:  # a broken cache is rebuilt
                log.warning("ONNX cache %s is unusable (%s); re-exporting", cached, exc)

        data = gen.export_onnx(model(), {_META_SHA: sha, _META_GRAPH: gen.GRAPH_VERSION})
        session = ort.InferenceSession(data, options, providers=providers)
        self._write_onnx_cache(style, cached, data)
        return _OnnxRunner(session)

    def _write_onnx_cache(self, style: Style, cached: Path, data: bytes) -> None:
        try:
            atomic_write(cached, data)
        except OSError as exc:
            log.warning("cannot cache the ONNX export at %s (%s); it will be rebuilt next start", cached, exc)
            return
        stale = re.compile(rf"^{re.escape(Path(style.file).stem)}\.[0-9a-f]{{12}}\.onnx$")
        for other in cached.parent.glob(f"{Path(style.file).stem}.*.onnx"):
            if other != cached and stale.match(other.name):
                other.unlink(missing_ok=True)
                log.info("removed stale ONNX export %s", other)


def _read_model(path: Path) -> gen.Generator:
    """The generator of checkpoint ``path`` (CPU, fp32, eval).

    Raises ModelUnavailableError if it is not a strict AnimeGANv2 state_dict.
    """
    return gen.build_generator(gen.read_state_dict(path), source=str(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check(cancelled: CancelCheck | None) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled()


def _report(progress: ProgressCallback | None, fraction: float) -> None:
    if progress is not None:
        progress(STAGE, fraction)
